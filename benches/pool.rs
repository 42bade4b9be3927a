//! `--pool` benchmark (issue #22): three loopback accounts, one of which answers a usage-limit
//! 429 after its fifth image. Run it with
//!
//! ```text
//! cargo bench --bench pool      # a few minutes after the build
//! ```
//!
//! It measures, in one run:
//! 1. `--pool --batch` of 60 jobs at `--jobs 6`, each answered after 1 s, with three healthy
//!    accounts, then with the throttled one: no job lost, no request to the throttled account
//!    after its 429 (until its reset, an hour away), and the throttled run's wall time against
//!    the healthy one (target: within 10%; the lost capacity is one 429 answered at once, since
//!    `--jobs` and not the number of accounts bounds the concurrency), then a rerun on the same
//!    data directory that must start on the healthy accounts;
//! 2. the same 60 jobs through `--serve --pool --jobs 6`;
//! 3. 64 concurrent 8 MiB images (decoded size) through `--serve --pool --jobs 64`: aggregate
//!    throughput against 64 concurrent `curl` processes reading the same streams from the
//!    backend, and the service's peak RSS (target <= 64 MiB), read with `wait4` through the
//!    launcher (see benches/support).
//!
//! `CODEX_IMAGEN_BENCH_PARTS=big` (a comma list of `batch`, `service`, `big`) runs only those parts.
//!
//! The backend listens on 127.0.0.1 only and tells the accounts apart by `ChatGPT-Account-ID`.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use support::{
    binary, image_events, launcher, noise_png, read_report, wire, Sandbox, LAUNCHER_REPORT,
};

const MIB: usize = 1 << 20;
const ACCOUNTS: [&str; 3] = ["acct-pool-1", "acct-pool-2", "acct-pool-3"];
const THROTTLED: &str = "acct-pool-3";

/// What the backend saw, per account.
#[derive(Default)]
struct Seen {
    images: HashMap<String, usize>,
    /// Set when the throttled account answered its 429.
    limited: bool,
    /// Requests to the throttled account after its 429.
    late: usize,
}

struct Backend {
    url: String,
    seen: Arc<Mutex<Seen>>,
    served: Arc<AtomicUsize>,
}

/// One SSE answer with one image of `len` bytes.
fn image_response(seed: u64, len: usize) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(noise_png(seed, len));
    let call = json!({"type": "image_generation_call", "id": format!("ig_{seed}"),
        "status": "completed", "result": b64});
    wire(&image_events(&call))
}

/// Read one request; its `ChatGPT-Account-ID` and path.
fn read_head(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = req.parse(&buf) {
            let find = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(|v| v.trim().to_string())
            };
            let length: usize = find("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let account = find("chatgpt-account-id").unwrap_or_default();
            let path = req.path.unwrap_or_default().to_string();
            while buf.len() < head + length {
                match stream.read(&mut tmp) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
            return Some((account, path));
        }
        match stream.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

/// The backend: every image request answered after `delay` with one image of `len` bytes;
/// with `throttle`, the throttled account answers a usage-limit 429 after its fifth image.
fn start_backend(delay: Duration, len: usize, throttle: bool) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let url = format!(
        "http://{}/backend-api/codex",
        listener.local_addr().expect("local address")
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let served = Arc::new(AtomicUsize::new(0));
    let (state, counter) = (seen.clone(), served.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let state = state.clone();
            let n = counter.fetch_add(1, Ordering::SeqCst) as u64;
            std::thread::spawn(move || {
                let Some((account, path)) = read_head(&mut stream) else {
                    return;
                };
                if path.contains("wham/usage") {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    );
                    return;
                }
                let limited = {
                    let mut seen = state.lock().unwrap_or_else(|p| p.into_inner());
                    if seen.limited && account == THROTTLED {
                        seen.late += 1;
                    }
                    let done = seen.images.get(&account).copied().unwrap_or(0);
                    if throttle && account == THROTTLED && done >= 5 {
                        seen.limited = true;
                        true
                    } else {
                        *seen.images.entry(account.clone()).or_default() += 1;
                        false
                    }
                };
                if limited {
                    let body = json!({"error": {"type": "usage_limit_reached", "plan_type": "plus",
                        "message": "The usage limit has been reached", "resets_in_seconds": 3600}})
                    .to_string();
                    let reply = format!(
                        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes());
                    return;
                }
                std::thread::sleep(delay);
                let _ = stream.set_nodelay(true);
                for piece in image_response(n, len) {
                    if stream.write_all(&piece).is_err() {
                        return;
                    }
                }
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let mut sink = [0u8; 1024];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    Backend { url, seen, served }
}

/// Three Codex `auth.json` files (tokens expiring in 2100), one per account; their paths.
fn write_accounts(sandbox: &Sandbox) -> Vec<String> {
    let b64url = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    ACCOUNTS
        .iter()
        .map(|account| {
            let dir = sandbox.dir.join("accounts").join(account);
            std::fs::create_dir_all(&dir).expect("account dir");
            let claims = format!(
                r#"{{"exp":4102444800,"https://api.openai.com/auth":{{"chatgpt_account_id":"{account}"}}}}"#
            );
            let access = format!("{}.{}.sig", b64url(r#"{"alg":"none"}"#), b64url(&claims));
            let auth = json!({"auth_mode": "chatgpt", "OPENAI_API_KEY": null,
                "tokens": {"id_token": "id.token.value", "access_token": access,
                    "refresh_token": "refresh-bench", "account_id": account},
                "last_refresh": "2026-11-20T10:00:00.000Z"});
            let path = dir.join("auth.json");
            std::fs::write(&path, auth.to_string()).expect("write auth.json");
            path.display().to_string()
        })
        .collect()
}

fn pool_args(auths: &[String], data: &Path) -> Vec<String> {
    let mut args = vec![
        "--pool".to_string(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    for auth in auths {
        args.push("--auth".into());
        args.push(auth.clone());
    }
    args
}

fn jobs_file(sandbox: &Sandbox, n: usize) -> String {
    let text: String = (1..=n)
        .map(|i| format!("{{\"id\": \"j{i}\", \"prompt\": \"bench {i}\"}}\n"))
        .collect();
    let name = format!("jobs-{n}.jsonl");
    std::fs::write(sandbox.dir.join("work").join(&name), text).expect("write jobs file");
    name
}

fn count_files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == ext))
                .count()
        })
        .unwrap_or(0)
}

/// `--pool --batch` of `n` jobs at `--jobs 6`: (wall, exit code).
fn batch(
    sandbox: &Sandbox,
    backend: &Backend,
    auths: &[String],
    data: &Path,
    n: usize,
    out: &str,
) -> (Duration, i32) {
    let file = jobs_file(sandbox, n);
    let mut cmd = sandbox.command(&binary());
    cmd.args(pool_args(auths, data)).args([
        "--batch",
        &file,
        "--jobs",
        "6",
        "--out-dir",
        out,
        "--quiet",
        "--results",
        &format!("{out}.results.jsonl"),
        "--base-url",
        &backend.url,
    ]);
    let start = Instant::now();
    let status = cmd.status().expect("run the batch");
    (start.elapsed(), status.code().unwrap_or(-1))
}

/// The service, through the launcher when `report` is given (for its peak RSS).
struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start(sandbox: &Sandbox, args: &[String], report: Option<&Path>) -> Service {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = match report {
            Some(report) => {
                let mut cmd = sandbox.command(&std::env::current_exe().expect("bench executable"));
                cmd.arg(binary()).env(LAUNCHER_REPORT, report);
                cmd
            }
            None => sandbox.command(&binary()),
        };
        cmd.args(["--serve", &addr, "--quiet"]).args(args);
        let child = cmd.spawn().expect("spawn the service");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "the service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Service { child, addr }
    }

    /// SIGTERM to the service (the launcher's child when launched), then wait for the exit.
    fn stop(mut self) {
        let pid = self.child.id();
        let target = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|c| {
                c.split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<i32>().ok())
            })
            .unwrap_or(pid as i32);
        // SAFETY: signalling a process this bench started.
        unsafe { libc::kill(target, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect to the service");
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => out[at + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

/// Post `n` jobs, wait until all are final; (wall, completed).
fn through_service(addr: &str, n: usize, images: usize, limit: Duration) -> (Duration, usize) {
    let start = Instant::now();
    for i in 0..n {
        let (status, _) = http(
            addr,
            "POST",
            "/v1/jobs",
            Some(&format!(r#"{{"prompt": "bench {i}", "n": {images}}}"#)),
        );
        assert_eq!(status, 202, "job {i} refused");
    }
    loop {
        let count = |status: &str| {
            let (_, body) = http(
                addr,
                "GET",
                &format!("/v1/jobs?status={status}&limit=100"),
                None,
            );
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["data"].as_array().map(Vec::len))
                .unwrap_or(0)
        };
        let (done, failed) = (count("completed"), count("failed"));
        if done + failed >= n {
            return (start.elapsed(), done);
        }
        assert!(
            start.elapsed() < limit,
            "{n} jobs did not finish in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 64 `curl` processes reading one 8 MiB stream each from the backend at once: the wall time.
fn curl_reference(backend: &Backend, streams: usize) -> Option<Duration> {
    let start = Instant::now();
    let children: Vec<Child> = (0..streams)
        .map(|_| {
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-X",
                    "POST",
                    "-H",
                    "chatgpt-account-id: acct-pool-1",
                    "--data",
                    "{}",
                    &format!("{}/responses", backend.url),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .collect::<Result<_, _>>()
        .ok()?;
    for mut child in children {
        child.wait().ok()?;
    }
    Some(start.elapsed())
}

/// Which parts to run: `CODEX_IMAGEN_BENCH_PARTS`, a comma list of `batch`, `service` and
/// `big` (default: all three).
fn wanted(part: &str) -> bool {
    match std::env::var("CODEX_IMAGEN_BENCH_PARTS") {
        Ok(parts) if !parts.trim().is_empty() => parts.split(',').any(|p| p.trim() == part),
        _ => true,
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// 1. Batch: healthy, then throttled, then a rerun on the throttled run's data directory.
fn batch_part(sandbox: &Sandbox, auths: &[String]) {
    let work: PathBuf = sandbox.dir.join("work");
    let healthy = start_backend(Duration::from_secs(1), 64 * 1024, false);
    let (healthy_wall, code) = batch(
        sandbox,
        &healthy,
        auths,
        &sandbox.dir.join("data-healthy"),
        60,
        "healthy",
    );
    assert_eq!(code, 0, "healthy batch failed");
    assert_eq!(count_files(&work.join("healthy"), "png"), 60);

    let throttled = start_backend(Duration::from_secs(1), 64 * 1024, true);
    let data = sandbox.dir.join("data-throttled");
    let (throttled_wall, code) = batch(sandbox, &throttled, auths, &data, 60, "throttled");
    assert_eq!(code, 0, "throttled batch failed");
    assert_eq!(
        count_files(&work.join("throttled"), "png"),
        60,
        "a job was lost"
    );
    let late = throttled.seen.lock().map(|s| s.late).unwrap_or(usize::MAX);
    assert_eq!(late, 0, "requests to the throttled account after its 429");
    let before = throttled.served.load(Ordering::SeqCst);
    let (_, code) = batch(sandbox, &throttled, auths, &data, 6, "rerun");
    assert_eq!(code, 0, "rerun failed");
    let late = throttled.seen.lock().map(|s| s.late).unwrap_or(usize::MAX);
    assert_eq!(late, 0, "the next run sent to the throttled account");
    let rerun_requests = throttled.served.load(Ordering::SeqCst) - before;
    println!(
        "| --pool --batch, 60 jobs x 1 s, --jobs 6, 3 healthy accounts | {:.2} s | |",
        secs(healthy_wall)
    );
    println!(
        "| same, one account 429 after 5 images | {:.2} s | {:+.1}% vs healthy (target within 10%), 0 late requests |",
        secs(throttled_wall),
        (secs(throttled_wall) / secs(healthy_wall) - 1.0) * 100.0
    );
    println!("| rerun of 6 jobs on that data directory | | {rerun_requests} requests (6 images, the rest `wham/usage`), none to the throttled account |");
}

/// 2. The same 60 jobs through the service.
fn service_part(sandbox: &Sandbox, auths: &[String]) {
    let service_backend = start_backend(Duration::from_secs(1), 64 * 1024, true);
    let mut args = pool_args(auths, &sandbox.dir.join("data-service"));
    args.extend(["--jobs", "6", "--queue", "1000", "--base-url"].map(String::from));
    args.push(service_backend.url.clone());
    let svc = Service::start(sandbox, &args, None);
    let (service_wall, completed) = through_service(&svc.addr, 60, 1, Duration::from_secs(120));
    svc.stop();
    let service_late = service_backend
        .seen
        .lock()
        .map(|s| s.late)
        .unwrap_or(usize::MAX);
    println!(
        "| --serve --pool --jobs 6, 60 jobs, one account 429 after 5 | {:.2} s | {completed}/60 completed, {service_late} late requests |",
        secs(service_wall)
    );
}

/// 3. 64 concurrent 8 MiB images through the service, and curl reading the same streams.
fn big_part(sandbox: &Sandbox, auths: &[String]) {
    let big = start_backend(Duration::from_millis(200), 8 * MIB, false);
    let report = sandbox.dir.join("service-report");
    let mut args = pool_args(auths, &sandbox.dir.join("data-big"));
    // `--jobs` is at most 16; a job's `n` images run at once, so 16 jobs of 4 are 64 in flight.
    args.extend(["--jobs", "16", "--queue", "1000", "--base-url"].map(String::from));
    args.push(big.url.clone());
    let svc = Service::start(sandbox, &args, Some(&report));
    let (big_wall, big_jobs) = through_service(&svc.addr, 16, 4, Duration::from_secs(300));
    let big_done = big_jobs * 4;
    svc.stop();
    let rss_kib = read_report(&report).get(5).copied().unwrap_or(0);
    let curl_wall = curl_reference(&big, 64);
    let gib = (64 * 8 * MIB) as f64 / (1u64 << 30) as f64;
    println!(
        "| --serve --pool --jobs 16, 16 jobs x n=4: 64 x 8 MiB in flight | {:.2} s | {big_done}/64, {:.2} GiB/s, peak RSS {:.1} MiB (target <= 64) |",
        secs(big_wall),
        gib / secs(big_wall),
        rss_kib as f64 / 1024.0
    );
    match curl_wall {
        Some(wall) => println!(
            "| 64 x curl reading the same streams | {:.2} s | {:.2} GiB/s |",
            secs(wall),
            gib / secs(wall)
        ),
        None => println!("| 64 x curl | | curl not available |"),
    }
}

fn main() {
    if let Some(report) = std::env::var_os(LAUNCHER_REPORT) {
        launcher(Path::new(&report));
    }
    println!("codex-imagen pool benchmark");
    println!("binary: {}", binary().display());
    let sandbox = Sandbox::new("codex-imagen-pool-bench");
    let auths = write_accounts(&sandbox);
    println!();
    println!("| run | wall | notes |");
    println!("| --- | ---: | --- |");
    if wanted("batch") {
        batch_part(&sandbox, &auths);
    }
    if wanted("service") {
        service_part(&sandbox, &auths);
    }
    if wanted("big") {
        big_part(&sandbox, &auths);
    }
}
