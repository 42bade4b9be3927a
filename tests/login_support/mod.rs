//! Shared by tests/login.rs and tests/keyring.rs: a loopback issuer (authorize, token and
//! device endpoints), a running `--login` whose stderr is read as it comes, the test playing
//! the browser with plain HTTP to 127.0.0.1, and a real Secret Service (dbus-daemon and
//! gnome-keyring-daemon in a private session) for the keyring tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

/// A JWT whose payload is `claims` (unsigned, as the tests' issuer hands out).
pub fn jwt_with(claims: &Value) -> String {
    format!(
        "eyJhbGciOiJub25lIn0.{}.sig",
        b64url(claims.to_string().as_bytes())
    )
}

/// An id token for `email` in ChatGPT account `account` on `plan`.
pub fn id_token(email: &str, account: &str, plan: &str) -> String {
    jwt_with(&json!({"email": email, "exp": now_secs() + 3600,
        "https://api.openai.com/auth": {"chatgpt_account_id": account, "chatgpt_plan_type": plan}}))
}

/// A token endpoint answer for `email`/`account`.
pub fn token_answer(email: &str, account: &str, refresh: &str) -> Value {
    json!({"id_token": id_token(email, account, "plus"),
        "access_token": jwt_with(&json!({"exp": now_secs() + 3600, "chatgpt_plan_type": "plus"})),
        "refresh_token": refresh, "expires_in": 3600})
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else if bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// `a=1&b=2` as ordered pairs, decoded.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn param(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// A plain HTTP/1.1 GET; `localhost` is sent to 127.0.0.1 (no test leaves the loopback).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn http_get(url: &str) -> Answer {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let port = host.rsplit_once(':').map(|(_, p)| p).unwrap_or("80");
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The loopback issuer: `/oauth/authorize` redirects to the client's redirect URI with
/// `code-1` and the state it was given; `/oauth/token` answers with `token`; the device
/// endpoints answer from `device` (a queue of replies per path is also possible).
pub struct Issuer {
    pub server: Server,
    pub token: Arc<Mutex<(u16, Value)>>,
}

impl Issuer {
    pub fn start(token: Value) -> Issuer {
        let server = Server::start();
        let token = Arc::new(Mutex::new((200u16, token)));
        let answer = token.clone();
        let png = png_bytes(5, 300);
        server.handle(move |req| {
            if req.path.starts_with("/oauth/authorize") {
                let query = req.path.split_once('?').map(|(_, q)| q).unwrap_or("");
                let pairs = query_pairs(query);
                let redirect = param(&pairs, "redirect_uri").unwrap_or_default();
                let state = param(&pairs, "state").unwrap_or_default();
                let location = format!("{redirect}?code=code-1&state={state}");
                return Reply::head(
                    302,
                    &[
                        ("location", &location),
                        ("content-length", "0"),
                        ("connection", "close"),
                    ],
                );
            }
            if req.path.starts_with("/oauth/token") {
                let (status, body) = answer.lock().unwrap().clone();
                return Reply::json(status, &body);
            }
            image_stream(&[("ig_1", &png)])
        });
        Issuer { server, token }
    }

    pub fn url(&self) -> String {
        self.server.addr.clone()
    }

    pub fn set_token(&self, status: u16, body: Value) {
        *self.token.lock().unwrap() = (status, body);
    }

    /// The form fields of the `n`th token request, in order.
    pub fn token_form(&self, n: usize) -> Vec<(String, String)> {
        let requests = self.server.requests_to("/oauth/token");
        query_pairs(&String::from_utf8_lossy(&requests[n].body))
    }
}

/// The device endpoints: the user code, then `pending` pending polls (403, then 404), then the
/// grant; later refreshes answer `refresh-9`, anything else an image.
pub fn device_issuer(pending: usize, email: &str, account: &str) -> Server {
    device_issuer_granting(pending, email, account, "refresh-0")
}

/// [`device_issuer`] whose grant carries the refresh token `refresh`.
pub fn device_issuer_granting(pending: usize, email: &str, account: &str, refresh: &str) -> Server {
    let server = Server::start();
    server.enqueue(
        "/api/accounts/deviceauth/usercode",
        Reply::json(
            200,
            &json!({"device_auth_id": "dev-1", "user_code": "ABCD-1234", "interval": "0"}),
        ),
    );
    for n in 0..pending {
        let status = if n % 2 == 0 { 403 } else { 404 };
        server.enqueue(
            "/api/accounts/deviceauth/token",
            Reply::json(status, &json!({"error": "authorization_pending"})),
        );
    }
    server.enqueue(
        "/api/accounts/deviceauth/token",
        Reply::json(
            200,
            &json!({"authorization_code": "dev-code", "code_challenge": "ch", "code_verifier": "server-verifier"}),
        ),
    );
    server.enqueue(
        "/oauth/token",
        Reply::json(200, &token_answer(email, account, refresh)),
    );
    let png = png_bytes(3, 200);
    server.handle(move |req| {
        if req.path.starts_with("/oauth/token") {
            return Reply::json(200, &token_answer("x@example.com", "acct-dev", "refresh-9"));
        }
        image_stream(&[("ig_1", &png)])
    });
    server
}

/// A running codex-imagen whose stderr is collected as it arrives.
pub struct Running {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let into = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

impl Running {
    pub fn spawn(sandbox: &Sandbox, args: &[&str]) -> Running {
        let mut cmd: Command = sandbox.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn codex-imagen");
        let stderr = collect(child.stderr.take().unwrap());
        let stdout = collect(child.stdout.take().unwrap());
        Running {
            child,
            stderr,
            stdout,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first stderr line containing `needle` (waits up to 20 s).
    pub fn line_with(&self, needle: &str) -> String {
        let found = wait_for(Duration::from_secs(20), || self.stderr().contains(needle));
        assert!(
            found,
            "no line with {needle:?} on stderr:\n{}",
            self.stderr()
        );
        self.stderr()
            .lines()
            .find(|l| l.contains(needle))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Wait for the exit (at most 60 s): the code, stdout and stderr.
    pub fn finish(mut self) -> Run {
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("codex-imagen did not exit:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50));
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
            elapsed: start.elapsed(),
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Play the browser: open the authorize URL at the issuer, follow its redirect to the
/// callback (with `state` replaced when given), and return the callback's answer.
pub fn browse(authorize_url: &str, state: Option<&str>) -> Answer {
    let at_issuer = http_get(authorize_url);
    assert_eq!(at_issuer.status, 302, "{}", at_issuer.body);
    let mut location = at_issuer.header("location").unwrap().to_string();
    if let Some(state) = state {
        let (base, query) = location.split_once('?').unwrap();
        let pairs: Vec<String> = query_pairs(query)
            .into_iter()
            .map(|(k, v)| {
                if k == "state" {
                    format!("state={state}")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        location = format!("{base}?{}", pairs.join("&"));
    }
    http_get(&location)
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------------------------
// A real Secret Service
// ---------------------------------------------------------------------------------------------

/// dbus-daemon and gnome-keyring-daemon on a private session bus, children of the test that
/// are stopped by pid when it is dropped (and die with the test process: `--pdeathsig`).
pub struct Keyring {
    pub dir: tempfile::TempDir,
    children: Vec<Child>,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// The programs a private Secret Service session needs.
const KEYRING_PROGRAMS: [&str; 5] = [
    "dbus-daemon",
    "gnome-keyring-daemon",
    "secret-tool",
    "dbus-send",
    "setpriv",
];

impl Keyring {
    pub fn start() -> Keyring {
        if let Some(program) = KEYRING_PROGRAMS.iter().find(|p| !on_path(p)) {
            panic!(
                "the keyring tests need {program} (apt-get install -y dbus gnome-keyring \
                 libsecret-tools; .ci/run installs them)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("codex-imagen-keyring")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["home", "xdg", "run", "ctl"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        for sub in ["run", "ctl"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d.join(sub), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let bus = d.join("bus");
        std::fs::write(
            d.join("bus.conf"),
            format!(
                "<busconfig><type>session</type><listen>unix:path={}</listen>\
                 <auth>EXTERNAL</auth><policy context=\"default\"><allow send_destination=\"*\" \
                 eavesdrop=\"true\"/><allow eavesdrop=\"true\"/><allow own=\"*\"/></policy>\
                 </busconfig>",
                bus.display()
            ),
        )
        .unwrap();
        let mut children = Vec::new();
        let dbus = Command::new("setpriv")
            .args([
                "--pdeathsig",
                "TERM",
                "dbus-daemon",
                "--nofork",
                "--config-file",
            ])
            .arg(d.join("bus.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        children.push(dbus);
        assert!(
            wait_for(Duration::from_secs(10), || bus.exists()),
            "dbus-daemon did not start"
        );
        let address = format!("unix:path={}", bus.display());
        let mut keyring = Command::new("setpriv")
            .args([
                "--pdeathsig",
                "TERM",
                "gnome-keyring-daemon",
                "--foreground",
                "--unlock",
                "--components=secrets",
                "--control-directory",
            ])
            .arg(d.join("ctl"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", d.join("home"))
            .env("XDG_DATA_HOME", d.join("xdg"))
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            let mut stdin = keyring.stdin.take().unwrap();
            stdin.write_all(b"test-password").unwrap();
        }
        children.push(keyring);
        let ring = Keyring { dir, children };
        let up = wait_for(Duration::from_secs(10), || {
            ring.secret_tool(&["search", "--all", "service", "probe"]).0
        });
        assert!(
            up,
            "gnome-keyring-daemon did not come up on the private bus"
        );
        ring
    }

    /// A session, or `None` after saying why `test` is skipped (a program is missing).
    pub fn start_or_skip(test: &str) -> Option<Keyring> {
        if let Some(program) = KEYRING_PROGRAMS.iter().find(|p| !on_path(p)) {
            eprintln!(
                "skipping {test}: no {program} on PATH (apt-get install -y dbus gnome-keyring \
                 libsecret-tools)"
            );
            return None;
        }
        Some(Keyring::start())
    }

    pub fn address(&self) -> String {
        format!("unix:path={}", self.dir.path().join("bus").display())
    }

    fn tool(&self, program: &str, args: &[&str], input: Option<&str>) -> (bool, String) {
        let mut child = Command::new(program)
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", self.address())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut stdin = child.stdin.take().unwrap();
            if let Some(input) = input {
                stdin.write_all(input.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    pub fn secret_tool(&self, args: &[&str]) -> (bool, String) {
        self.tool("secret-tool", args, None)
    }

    /// Write an item the way Codex's `keyring` 3.6 does: service, username, target, application.
    pub fn store_as_codex(&self, account: &str, secret: &str) {
        // The label Codex 0.171 (keyring 3.6.3) gives its item.
        let label = format!("{account}@Codex Auth:default (keyring v3.6.3)");
        let (ok, out) = self.tool(
            "secret-tool",
            &[
                "store",
                "--label",
                &label,
                "service",
                "Codex Auth",
                "username",
                account,
                "target",
                "default",
                "application",
                "rust-keyring",
            ],
            Some(secret),
        );
        assert!(ok, "secret-tool store: {out}");
    }

    /// The secret of Codex's item for `account`, if any.
    pub fn lookup(&self, account: &str) -> Option<String> {
        let (ok, out) = self.secret_tool(&["lookup", "service", "Codex Auth", "username", account]);
        ok.then_some(out)
    }

    /// Everything `secret-tool search` shows about Codex's items.
    pub fn search(&self) -> String {
        self.secret_tool(&["search", "--all", "service", "Codex Auth"])
            .1
    }

    /// Lock the default collection (it cannot be unlocked again without a prompter).
    pub fn lock(&self) {
        let (ok, out) = self.tool(
            "dbus-send",
            &[
                "--session",
                "--dest=org.freedesktop.secrets",
                "--print-reply",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                "array:objpath:/org/freedesktop/secrets/collection/login",
            ],
            None,
        );
        assert!(ok, "locking the collection: {out}");
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Codex's keyring account for `codex_home`: `cli|` + 16 hex of SHA-256 of its real path.
pub fn codex_account(codex_home: &Path) -> String {
    let real: PathBuf = codex_home.canonicalize().unwrap();
    format!(
        "cli|{}",
        &sha256_hex(real.to_string_lossy().as_bytes())[..16]
    )
}
