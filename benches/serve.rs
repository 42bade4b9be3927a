//! Service benchmark (issue #13, point 10): the release binary as `--serve` against a loopback
//! backend that answers every image request after 1 s. Run it with
//!
//! ```text
//! cargo bench --bench serve
//! ```
//!
//! Scenarios, each on a fresh service with its own HOME and data directory:
//! 1. idle RSS once `/health` answers;
//! 2. `GET /health` for 5 s over 4 keep-alive connections: requests/s and p99 latency;
//! 3. 1,000 `POST /v1/jobs` (4 connections, `--queue 1000`): time until all are accepted, and
//!    RSS right after;
//! 4. 40 jobs with `--jobs 4` against the 1 s backend: time until all are completed (ideal
//!    10 s).
//!
//! The load generator is plain threads over `std::net` (HTTP/1.1 keep-alive), on the same
//! 2 cores as the service, so figures include its own cost. Everything stays on 127.0.0.1 and
//! every loop is bounded in time and count.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

const BACKEND_DELAY: Duration = Duration::from_secs(1);

fn main() {
    let bin = PathBuf::from(
        std::env::var("CODEX_IMAGEN_BENCH_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_codex-imagen").to_string()),
    );
    let backend = start_backend();
    println!("service benchmark: {}", bin.display());

    let svc = Service::start(&bin, &backend, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let idle = svc.rss_kib();
    println!("idle RSS: {:.1} MiB (target <= 20)", idle as f64 / 1024.0);

    let (rps, p50, p99) = health_load(&svc.addr, 4, Duration::from_secs(5));
    println!(
        "GET /health: {rps:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms (targets >= 5000/s, p99 <= 5 ms)",
        p50 * 1000.0,
        p99 * 1000.0
    );
    drop(svc);

    let svc = Service::start(&bin, &backend, &["--queue", "1000", "--jobs", "2"]);
    let start = Instant::now();
    let accepted = post_jobs(&svc.addr, 1000, 4);
    let took = start.elapsed();
    let rss = svc.rss_kib();
    println!(
        "1000 POST /v1/jobs: {accepted} accepted in {:.3} s, RSS {:.1} MiB (targets <= 1 s, <= 60 MiB)",
        took.as_secs_f64(),
        rss as f64 / 1024.0
    );
    drop(svc);

    let svc = Service::start(&bin, &backend, &["--jobs", "4"]);
    let start = Instant::now();
    let accepted = post_jobs(&svc.addr, 40, 1);
    assert_eq!(accepted, 40);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = request(
            &svc.addr,
            "GET",
            "/v1/jobs?status=completed&limit=100",
            None,
        );
        let done = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["data"].as_array().map(Vec::len))
            .unwrap_or(0);
        if done == 40 {
            break;
        }
        assert!(Instant::now() < deadline, "40 jobs did not finish in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "40 jobs, --jobs 4, backend 1 s: {took:.2} s ({:+.1}% of the ideal 10 s; target within 5%)",
        (took / 10.0 - 1.0) * 100.0
    );
}

struct Service {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start(bin: &Path, backend: &str, extra: &[&str]) -> Service {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        support::write_bench_auth(&home);
        let data = dir.path().join("data");
        // A free port, so the service can run `--quiet` (its log is not part of the figures).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut args: Vec<String> = vec![
            "--serve".into(),
            addr.clone(),
            "--quiet".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--retries".into(),
            "0".into(),
            "--base-url".into(),
            format!("{backend}/backend-api/codex"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(bin)
            .args(&args)
            .env_clear()
            .env("HOME", &home)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the service");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "the service did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        let (status, _) = request(&addr, "GET", "/health", None);
        assert_eq!(status, 200, "health");
        Service {
            child,
            addr,
            _dir: dir,
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The `Host` header: the service answers only to its own address (issue #20).
    host: String,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).ok();
        Conn {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
            host: addr.to_string(),
        }
    }

    fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.writer.write_all(head.as_bytes()).expect("write");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((k, v)) = trimmed.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut out = vec![0; length];
        self.reader.read_exact(&mut out).expect("body");
        (status, out)
    }
}

fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    Conn::open(addr).send(method, path, body)
}

fn health_load(addr: &str, connections: usize, length: Duration) -> (f64, f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let addr = addr.to_string();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) && latencies.len() < 2_000_000 {
                    let start = Instant::now();
                    let (status, _) = conn.send("GET", "/health", None);
                    assert_eq!(status, 200);
                    latencies.push(start.elapsed().as_secs_f64());
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(length);
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("load thread"))
        .collect();
    all.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    (
        all.len() as f64 / length.as_secs_f64(),
        pick(0.5),
        pick(0.99),
    )
}

/// `count` jobs over `connections` connections; returns how many got 202.
fn post_jobs(addr: &str, count: usize, connections: usize) -> usize {
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                let mut ok = 0;
                for i in (c..count).step_by(connections) {
                    let body = format!(r#"{{"prompt": "bench job {i}"}}"#);
                    let (status, _) = conn.send("POST", "/v1/jobs", Some(&body));
                    if status == 202 {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().expect("poster")).sum()
}

/// The 1 s backend: every request gets one small image after [`BACKEND_DELAY`].
fn start_backend() -> String {
    let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nbench image");
    support::image_backend(png, BACKEND_DELAY, None)
}
