//! Test support: a scriptable HTTP/1.1 server on 127.0.0.1 that plays the Codex backend and the
//! OAuth endpoint, and a runner for the built binary with its own HOME and a clean environment.
//!
//! The server is plain threads over `std::net` so a test controls every byte and every pause:
//! chunk sizes, a connection closed mid-event, a response that never sends headers.

#![allow(dead_code)]

#[cfg(unix)]
pub mod codex;
pub mod service;
#[allow(unused_imports)]
pub use service::{finished, job_until, Svc};

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Requests and scripted responses
// ---------------------------------------------------------------------------------------------

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// One step of a scripted response.
pub enum Step {
    /// Write these bytes as they are.
    Raw(Vec<u8>),
    /// Write one chunk of a chunked body (the framing is added).
    Chunk(Vec<u8>),
    /// End a chunked body properly.
    EndChunks,
    Sleep(Duration),
    /// Wait (at most 10 s) until `dir` holds a `.png` file; records whether it did.
    AwaitPng(PathBuf),
    /// Run a check on the server thread (e.g. look at files) before going on.
    Check(Box<dyn FnOnce() + Send>),
    /// Keep the connection open and silent until the client goes away (max 60 s).
    Hang,
}

/// A whole scripted response. The connection is closed after the last step.
pub struct Reply {
    pub steps: Vec<Step>,
}

impl Reply {
    /// A complete response with a Content-Length body.
    pub fn status(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        let body = body.into();
        let head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            reason(status),
            body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body);
        Reply {
            steps: vec![Step::Raw(bytes)],
        }
    }

    pub fn json(status: u16, value: &Value) -> Reply {
        Reply::status(status, "application/json", value.to_string())
    }

    /// A response whose status line and headers are given, the body yet to be scripted.
    pub fn head(status: u16, headers: &[(&str, &str)]) -> Reply {
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        Reply {
            steps: vec![Step::Raw(head.into_bytes())],
        }
    }

    /// An SSE response with a chunked body; add events with [`Reply::event`] and friends.
    pub fn sse() -> Reply {
        Reply::head(
            200,
            &[
                ("content-type", "text/event-stream"),
                ("transfer-encoding", "chunked"),
            ],
        )
    }

    /// An SSE response delimited by closing the connection (no chunked framing).
    pub fn sse_until_close() -> Reply {
        Reply::head(
            200,
            &[
                ("content-type", "text/event-stream"),
                ("connection", "close"),
            ],
        )
    }

    pub fn step(mut self, step: Step) -> Reply {
        self.steps.push(step);
        self
    }

    /// One event in one chunk: `event: <type>\ndata: <json>\n\n`.
    pub fn event(self, payload: &Value) -> Reply {
        let chunk = sse_event(payload);
        self.step(Step::Chunk(chunk.into_bytes()))
    }

    /// One event split into pieces of `size` bytes, each its own chunk (TCP write).
    pub fn event_in_pieces(mut self, payload: &Value, size: usize) -> Reply {
        let text = sse_event(payload);
        for piece in text.as_bytes().chunks(size) {
            self.steps.push(Step::Chunk(piece.to_vec()));
            self.steps.push(Step::Sleep(Duration::from_millis(1)));
        }
        self
    }

    pub fn chunk(self, text: &str) -> Reply {
        self.step(Step::Chunk(text.as_bytes().to_vec()))
    }

    pub fn sleep_ms(self, ms: u64) -> Reply {
        self.step(Step::Sleep(Duration::from_millis(ms)))
    }

    pub fn end(self) -> Reply {
        self.step(Step::EndChunks)
    }
}

pub fn sse_event(payload: &Value) -> String {
    let kind = payload
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    format!("event: {kind}\ndata: {payload}\n\n")
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

type Handler = Box<dyn FnMut(&Request) -> Reply + Send>;

struct Shared {
    requests: Vec<Request>,
    /// Replies queued per path prefix, served in order; the handler answers the rest.
    queued: Vec<(String, VecDeque<Reply>)>,
    handler: Option<Handler>,
    /// Results of `AwaitPng` steps, in order.
    awaited: Vec<bool>,
}

/// A loopback server; dropped at the end of the test (its threads end with the process).
pub struct Server {
    pub addr: String,
    shared: Arc<Mutex<Shared>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared {
            requests: Vec::new(),
            queued: Vec::new(),
            handler: None,
            awaited: Vec::new(),
        }));
        let accept_shared = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = accept_shared.clone();
                std::thread::spawn(move || serve(stream, shared));
            }
        });
        Server { addr, shared }
    }

    /// Queue a reply for the next request whose path starts with `path`.
    pub fn enqueue(&self, path: &str, reply: Reply) {
        let mut shared = self.shared.lock().unwrap();
        match shared.queued.iter_mut().find(|(p, _)| p == path) {
            Some((_, q)) => q.push_back(reply),
            None => shared
                .queued
                .push((path.to_string(), VecDeque::from([reply]))),
        }
    }

    /// Answer requests with no queued reply.
    pub fn handle(&self, handler: impl FnMut(&Request) -> Reply + Send + 'static) {
        self.shared.lock().unwrap().handler = Some(Box::new(handler));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(path))
            .collect()
    }

    pub fn awaited(&self) -> Vec<bool> {
        self.shared.lock().unwrap().awaited.clone()
    }

    pub fn base_url(&self) -> String {
        format!("{}/backend-api/codex", self.addr)
    }

    pub fn refresh_url(&self) -> String {
        format!("{}/oauth/token", self.addr)
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = req.parse(&buf) {
            let method = req.method.unwrap_or("").to_string();
            let path = req.path.unwrap_or("").to_string();
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let length: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < head_len + length {
                let n = stream.read(&mut tmp).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            let body = buf[head_len..head_len + length].to_vec();
            return Some(Request {
                method,
                path,
                headers,
                body,
                at: Instant::now(),
            });
        }
        let n = stream.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn serve(mut stream: TcpStream, shared: Arc<Mutex<Shared>>) {
    let _ = stream.set_nodelay(true);
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    let reply = {
        let mut s = shared.lock().unwrap();
        s.requests.push(request.clone());
        let queued = s
            .queued
            .iter_mut()
            .find(|(p, q)| request.path.starts_with(p.as_str()) && !q.is_empty())
            .and_then(|(_, q)| q.pop_front());
        match queued {
            Some(reply) => reply,
            None => match s.handler.as_mut() {
                Some(h) => h(&request),
                None => Reply::json(404, &json!({"error": "no scripted reply"})),
            },
        }
    };
    for step in reply.steps {
        let ok = match step {
            Step::Raw(bytes) => stream
                .write_all(&bytes)
                .and_then(|_| stream.flush())
                .is_ok(),
            Step::Chunk(bytes) => {
                let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
                framed.extend_from_slice(&bytes);
                framed.extend_from_slice(b"\r\n");
                stream
                    .write_all(&framed)
                    .and_then(|_| stream.flush())
                    .is_ok()
            }
            Step::EndChunks => stream
                .write_all(b"0\r\n\r\n")
                .and_then(|_| stream.flush())
                .is_ok(),
            Step::Sleep(d) => {
                std::thread::sleep(d);
                true
            }
            Step::AwaitPng(dir) => {
                let found = wait_for(Duration::from_secs(10), || count_pngs(&dir) > 0);
                shared.lock().unwrap().awaited.push(found);
                true
            }
            Step::Check(f) => {
                f();
                true
            }
            Step::Hang => {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                let mut sink = [0u8; 1024];
                while let Ok(n) = stream.read(&mut sink) {
                    if n == 0 {
                        break;
                    }
                }
                false
            }
        };
        if !ok {
            return;
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

pub fn count_pngs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
                .count()
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Payloads the backend sends
// ---------------------------------------------------------------------------------------------

/// Bytes that look like a PNG, distinct per `seed`.
pub fn png_bytes(seed: u8, len: usize) -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    bytes.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    bytes
}

/// The keys of a JSON object, in order.
pub fn object_keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// A real image file in `format` (dimensions in its headers, unlike [`png_bytes`]).
pub fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn created() -> Value {
    json!({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}})
}

pub fn image_done(id: &str, bytes: &[u8]) -> Value {
    json!({"type": "response.output_item.done", "output_index": 0, "item": {
        "type": "image_generation_call", "id": id, "status": "completed",
        "revised_prompt": "a revised prompt", "result": b64(bytes)}})
}

pub fn partial_image(id: &str, bytes: &[u8]) -> Value {
    json!({"type": "response.image_generation_call.partial_image", "item_id": id,
        "partial_image_index": 0, "partial_image_b64": b64(bytes)})
}

/// `response.completed` repeating every image in full, as the real backend does.
pub fn completed(images: &[(&str, &[u8])]) -> Value {
    let output: Vec<Value> = images
        .iter()
        .map(|(id, bytes)| {
            json!({"type": "image_generation_call", "id": id, "status": "completed",
            "revised_prompt": "a revised prompt", "result": b64(bytes)})
        })
        .collect();
    json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "output": output}})
}

/// A complete, well-formed stream of `images`.
pub fn image_stream(images: &[(&str, &[u8])]) -> Reply {
    let mut reply = Reply::sse().event(&created());
    for (id, bytes) in images {
        reply = reply.event(&image_done(id, bytes));
    }
    reply.event(&completed(images)).end()
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An unsigned JWT whose payload has `exp` and an optional email.
pub fn jwt(exp: i64) -> String {
    let payload = b64url(format!("{{\"exp\":{exp}}}").as_bytes());
    format!("eyJhbGciOiJub25lIn0.{payload}.sig")
}

pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A Codex `auth.json` whose access token expires in `expires_in` seconds.
pub fn codex_auth(expires_in: i64) -> Value {
    json!({
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": null,
        "tokens": {
            "id_token": "id.token.value",
            "access_token": jwt(now_secs() + expires_in),
            "refresh_token": "refresh-0",
            "account_id": "acct-123"
        },
        "last_refresh": "2026-11-20T10:00:00.000Z"
    })
}

/// An OpenClaw OAuth profile.
pub fn openclaw_profile(access: &str, refresh: &str, account: &str, expires_ms: i64) -> Value {
    json!({"type": "oauth", "provider": "openai-codex", "access": access, "refresh": refresh,
        "expires": expires_ms, "accountId": account, "email": format!("{account}@example.com")})
}

pub fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        format!("{}\n", serde_json::to_string_pretty(value).unwrap()),
    )
    .unwrap();
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/// A test sandbox: its own HOME (and working directory) in a temp dir.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("codex-imagen-test")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Sandbox {
            dir,
            env: Vec::new(),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The working directory the binary runs in.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn env(&mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.env.push((
            key.to_string(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        self
    }

    /// Write `~/.codex/auth.json` with a token valid for an hour; returns its path.
    pub fn with_codex_auth(&self) -> PathBuf {
        let path = self.home().join(".codex/auth.json");
        write_json(&path, &codex_auth(3600));
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_codex-imagen"));
        cmd.args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.work())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run to completion (killed after 60 s so a hung binary fails the test, not CI).
    pub fn run(&self, args: &[&str]) -> Run {
        run_command(self.command(args))
    }
}

pub fn run_command(mut cmd: Command) -> Run {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn codex-imagen");
    let pid = child.id();
    let done = Arc::new(Mutex::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        if !*flag.lock().unwrap() {
            kill_hard(pid);
        }
    });
    let output: Output = child.wait_with_output().expect("wait for codex-imagen");
    *done.lock().unwrap() = true;
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

#[cfg(unix)]
fn kill_hard(pid: u32) {
    // SAFETY: signalling a child we spawned.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

#[cfg(not(unix))]
fn kill_hard(pid: u32) {
    let _ = Command::new("taskkill")
        .args(["/F", "/PID", &pid.to_string()])
        .status();
}

/// The usual flags pointing the binary at the test server.
pub fn server_args(server: &Server) -> Vec<String> {
    vec![
        "--base-url".into(),
        server.base_url(),
        "--refresh-url".into(),
        server.refresh_url(),
    ]
}

/// `args` plus the server flags, as `&str`s for [`Sandbox::run`].
pub fn with_server<'a>(server_args: &'a [String], args: &[&'a str]) -> Vec<&'a str> {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(server_args.iter().map(String::as_str));
    all
}

// ---------------------------------------------------------------------------------------------
// Generation helpers (tests/generate.rs, tests/stream_*.rs)
// ---------------------------------------------------------------------------------------------

/// The Responses endpoint path on the test server.
pub const RESPONSES_PATH: &str = "/backend-api/codex/responses";

/// A sandbox with a fresh `~/.codex/auth.json`.
pub fn authed_sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    sandbox
}

/// Run the binary against `server` with `args`.
pub fn run_against(sandbox: &Sandbox, server: &Server, args: &[&str]) -> Run {
    let sargs = server_args(server);
    sandbox.run(&with_server(&sargs, args))
}

/// The sandbox's working directory as the binary sees it (symlinks resolved).
pub fn real_work(sandbox: &Sandbox) -> PathBuf {
    sandbox.work().canonicalize().unwrap()
}

/// The default output directory, `./codex-imagen-output`.
pub fn default_out_dir(sandbox: &Sandbox) -> PathBuf {
    real_work(sandbox).join("codex-imagen-output")
}

/// stderr lines that start with `codex-imagen: `.
pub fn progress_lines(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("codex-imagen: "))
        .map(str::to_string)
        .collect()
}

/// stdout lines (image paths).
pub fn stdout_paths(run: &Run) -> Vec<PathBuf> {
    run.stdout.lines().map(PathBuf::from).collect()
}

/// Every file name in `dir`, sorted (hidden temp files included, so leftovers show up).
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Asserts `path` is `<dir>/codex-imagen-<YYYYMMDD-HHMMSSZ>-<index>-<id>.png` (no index part
/// when `index` is `None`).
pub fn assert_auto_name(path: &Path, dir: &Path, index: Option<&str>, id: &str) {
    assert_eq!(path.parent(), Some(dir), "{}", path.display());
    let name = path.file_name().unwrap().to_str().unwrap();
    let rest = name
        .strip_prefix("codex-imagen-")
        .unwrap_or_else(|| panic!("automatic name expected: {name}"));
    let (stamp, tail) = rest.split_at(16.min(rest.len()));
    let b = stamp.as_bytes();
    let stamp_ok = b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z';
    assert!(stamp_ok, "timestamp YYYYMMDD-HHMMSSZ expected in {name}");
    let expected = match index {
        Some(i) => format!("-{i}-{id}.png"),
        None => format!("-{id}.png"),
    };
    assert_eq!(tail, expected, "{name}");
}

pub fn in_progress(id: &str) -> Value {
    json!({"type": "response.image_generation_call.in_progress", "item_id": id, "output_index": 0})
}

pub fn generating(id: &str) -> Value {
    json!({"type": "response.image_generation_call.generating", "item_id": id, "output_index": 0})
}

pub fn item_added(id: &str) -> Value {
    json!({"type": "response.output_item.added", "output_index": 0,
        "item": {"type": "image_generation_call", "id": id, "status": "in_progress"}})
}

/// A non-streamed Responses body holding `images`.
pub fn response_object(images: &[(&str, &[u8])]) -> Value {
    let output: Vec<Value> = images
        .iter()
        .map(|(id, bytes)| {
            json!({"type": "image_generation_call", "id": id, "status": "completed",
            "revised_prompt": "a revised prompt", "result": b64(bytes)})
        })
        .collect();
    json!({"id": "resp_1", "object": "response", "status": "completed", "output": output})
}

/// A reply whose headers never come: the connection stays open and silent.
pub fn silent_reply() -> Reply {
    Reply {
        steps: vec![Step::Hang],
    }
}

// ---------------------------------------------------------------------------------------------
// Shared by the refresh suites
// ---------------------------------------------------------------------------------------------

/// An OAuth endpoint that hands out `refresh-<n+1>` for `refresh-<n>` once, and answers any
/// second use of a refresh token with `refresh_token_reused`, as the real one does.
pub fn single_use_oauth(server: &Server) -> Arc<Mutex<Vec<String>>> {
    let used: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let seen = used.clone();
    let png = png_bytes(7, 2000);
    server.handle(move |req| {
        if req.path.starts_with("/oauth/token") {
            let token = req.json()["refresh_token"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let mut used = seen.lock().unwrap();
            let reused = used.contains(&token);
            used.push(token.clone());
            if reused {
                return Reply::json(
                    401,
                    &json!({"error": {"code": "refresh_token_reused", "message": "already used"}}),
                );
            }
            let n: u32 = token.trim_start_matches("refresh-").parse().unwrap_or(0);
            return Reply::json(
                200,
                &json!({
                    "access_token": jwt(now_secs() + 3601 + n as i64),
                    "refresh_token": format!("refresh-{}", n + 1),
                    "id_token": format!("id-{}", n + 1),
                    "expires_in": 3600
                }),
            );
        }
        image_stream(&[("ig_1", &png)])
    });
    used
}

pub fn files_named(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_named(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found
}

pub fn chrono_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Start `n` generation runs at once (each with its own out dir) and assert every one exits 0.
pub fn run_concurrently_expecting_success(
    sandbox: &Sandbox,
    server: &Server,
    n: usize,
    label: &str,
) {
    let sargs = server_args(server);
    let children: Vec<_> = (0..n)
        .map(|i| {
            let out_dir = format!("out{i}");
            let mut cmd = sandbox.command(&with_server(
                &sargs,
                &["--quiet", "--out-dir", &out_dir, "x"],
            ));
            cmd.stdout(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{label} run {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Run the binary with stderr on a new pseudo-terminal; the exit code and what the terminal got.
#[cfg(target_os = "linux")]
pub fn run_on_terminal(sandbox: &Sandbox, args: &[&str]) -> (Option<i32>, String) {
    run_with_terminal(sandbox, args, false)
}

/// [`run_on_terminal`] with stdout on the same terminal too (as in an interactive shell).
#[cfg(target_os = "linux")]
pub fn run_with_stdout_on_terminal(sandbox: &Sandbox, args: &[&str]) -> (Option<i32>, String) {
    run_with_terminal(sandbox, args, true)
}

#[cfg(target_os = "linux")]
fn run_with_terminal(sandbox: &Sandbox, args: &[&str], stdout_too: bool) -> (Option<i32>, String) {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};

    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two new descriptors that we then own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    let mut master = unsafe { std::fs::File::from_raw_fd(master) };
    let mut cmd = sandbox.command(args);
    if stdout_too {
        cmd.stdout(std::process::Stdio::from(slave.try_clone().unwrap()));
    }
    cmd.stderr(std::process::Stdio::from(slave));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let output = child.wait_with_output().unwrap();
    (output.status.code(), reader.join().unwrap())
}
