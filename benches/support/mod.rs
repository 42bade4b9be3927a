//! What the benchmarks share: the image response and the SSE wire formats the loopback servers
//! write, reading
//! one request, a sandbox HOME with non-expiring credentials, the binary under test, and the
//! launcher that measures a run's peak RSS.
//!
//! Why a launcher: Linux keeps the RSS high-water mark of the memory a process had before
//! `exec` (`setmax_mm_hiwater_rss` in `exec_mmap`, even for `vfork`), so a binary spawned
//! straight from a bench would report the bench's peak (its payloads) as its own `ru_maxrss`.
//! Spawned from the launcher (the bench binary re-run small), it inherits the launcher's ~2 MiB.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{json, Value};

/// The size of each write of the loopback servers: a realistic network chunk.
pub const PIECE: usize = 16 * 1024;

/// Set for the launcher: where it writes its report.
pub const LAUNCHER_REPORT: &str = "CODEX_IMAGEN_BENCH_LAUNCHER_REPORT";

/// The whole HTTP response as the pieces the server writes: the head, then every event cut in
/// [`PIECE`] pieces, each framed as one chunk, then the last chunk.
pub fn wire(events: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut pieces = vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
        .to_vec()];
    for event in events {
        for piece in event.chunks(PIECE) {
            let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
            framed.extend_from_slice(piece);
            framed.extend_from_slice(b"\r\n");
            pieces.push(framed);
        }
    }
    pieces.push(b"0\r\n\r\n".to_vec());
    pieces
}

/// A response with one finished image `call` (an `image_generation_call` item) as SSE events:
/// `response.created`, the call's `response.output_item.done`, and `response.completed`
/// repeating it, as the backend does.
pub fn image_events(call: &Value) -> Vec<Vec<u8>> {
    let events = [
        json!({"type": "response.created", "response": {"id": "resp", "status": "in_progress"}}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": call}),
        json!({"type": "response.completed", "response": {"id": "resp", "status": "completed",
            "output": [call]}}),
    ];
    events
        .iter()
        .map(|event| {
            let kind = event["type"].as_str().unwrap_or("message");
            format!("event: {kind}\ndata: {event}\n\n").into_bytes()
        })
        .collect()
}

/// `events` as one HTTP response with a `content-length`, closing the connection.
pub fn sse_reply(events: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = events.concat();
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(&body);
    reply
}

/// A loopback backend answering every request, after `delay`, with one finished image (`png`,
/// base64) in a `content-length` SSE reply; the call carries `revised_prompt` when given.
/// Returns `http://127.0.0.1:PORT`.
pub fn image_backend(png: String, delay: Duration, revised_prompt: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = format!("http://{}", listener.local_addr().expect("local address"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let png = png.clone();
            std::thread::spawn(move || {
                if !read_request(&mut stream) {
                    return;
                }
                std::thread::sleep(delay);
                let mut call = json!({"type": "image_generation_call", "id": "ig_1",
                    "status": "completed", "result": png});
                if let Some(revised) = revised_prompt {
                    call["revised_prompt"] = json!(revised);
                }
                let _ = stream.write_all(&sse_reply(&image_events(&call)));
            });
        }
    });
    addr
}

/// A PNG signature followed by noise (compressed PNG data is noise to base64), `len` bytes,
/// distinct per `seed`.
pub fn noise_png(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 8);
    bytes.extend_from_slice(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Read one request (head and Content-Length body) so the client is never cut off mid-send.
pub fn read_request(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = req.parse(&buf) {
            let length: usize = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < head + length {
                match stream.read(&mut tmp) {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
            return true;
        }
        match stream.read(&mut tmp) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

/// Write `<home>/.codex/auth.json` with an unsigned JWT expiring in 2100: no refresh is ever due.
pub fn write_bench_auth(home: &Path) {
    std::fs::create_dir_all(home.join(".codex")).expect("create bench HOME");
    let b64url = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let access = format!(
        "{}.{}.sig",
        b64url(r#"{"alg":"none"}"#),
        b64url(
            r#"{"exp":4102444800,"https://api.openai.com/auth":{"chatgpt_account_id":"acct-bench"}}"#
        )
    );
    let auth = json!({"auth_mode": "chatgpt", "OPENAI_API_KEY": null,
        "tokens": {"id_token": "id.token.value", "access_token": access,
            "refresh_token": "refresh-bench", "account_id": "acct-bench"},
        "last_refresh": "2026-11-20T10:00:00.000Z"});
    std::fs::write(home.join(".codex/auth.json"), auth.to_string()).expect("write auth.json");
}

/// A temporary directory with `home/` (credentials) and `work/` (the working directory).
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new(prefix: &str) -> Sandbox {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        write_bench_auth(&dir.join("home"));
        std::fs::create_dir_all(dir.join("work")).expect("create bench work dir");
        Sandbox { dir }
    }

    /// `program` with a clean environment, this sandbox's HOME and working directory.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", self.dir.join("home"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.dir.join("work"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Passed through for allocator experiments (`MALLOC_ARENA_MAX=2 cargo bench ...`).
        if let Some(arenas) = std::env::var_os("MALLOC_ARENA_MAX") {
            cmd.env("MALLOC_ARENA_MAX", arenas);
        }
        cmd
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The binary cargo built for this bench, or `CODEX_IMAGEN_BENCH_BIN` (to compare another build
/// under the same server and checks).
pub fn binary() -> PathBuf {
    std::env::var_os("CODEX_IMAGEN_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_codex-imagen")))
}

/// `CLOCK_MONOTONIC` in ns: the clock `Instant` uses, but readable in two processes (a server,
/// the launcher that reaps the binary) and comparable between them.
pub fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime writes the timespec it is given.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The launcher: the bench binary re-run in a small process that spawns the command in its
/// argv, reaps it with `wait4` and reports `wall_ns exit_ns status user_us sys_us maxrss_kib`.
/// A bench's `main` calls it first when [`LAUNCHER_REPORT`] is set.
pub fn launcher(report: &Path) -> ! {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_remove(LAUNCHER_REPORT);
    let start = monotonic_ns();
    let child = cmd.spawn().expect("spawn codex-imagen");
    let mut status = 0;
    // SAFETY: plain syscall on our own child; both out-params are valid for writes.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let exited = monotonic_ns();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    std::fs::write(
        report,
        format!(
            "{} {exited} {code} {} {} {}",
            exited - start,
            micros(usage.ru_utime),
            micros(usage.ru_stime),
            usage.ru_maxrss
        ),
    )
    .expect("write launcher report");
    std::process::exit(0);
}

/// A launcher report's fields, in order.
pub fn read_report(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .expect("launcher report")
        .split_whitespace()
        .map(|w| w.parse().expect("launcher report field"))
        .collect()
}
