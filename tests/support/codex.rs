//! The real Codex CLI as a test peer, offline: where its binary is (skip when it is not), a
//! `config.toml` that points its model provider and ChatGPT backend at a loopback server, a
//! proxy that refuses (and records) everything else, and a run of the binary in its own
//! process group, killed with its children when it hangs.
//!
//! Shared by tests/codex_host.rs (Codex as the MCP host) and tests/keyring_codex.rs (Codex
//! reading and writing the keyring entry codex-imagen shares with it).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Reply, Server};

/// Where the model provider lives on the loopback server.
pub const MODEL_PATH: &str = "/v1/responses";
/// A hung Codex is killed (with its children) after this long.
pub const CODEX_LIMIT: Duration = Duration::from_secs(60);

/// The Codex CLI to drive: `$CODEX_IMAGEN_CODEX_BIN`, else the one `.ci/run` installs.
pub fn codex_bin() -> PathBuf {
    match std::env::var_os("CODEX_IMAGEN_CODEX_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/codex-cli/node_modules/.bin/codex")
        }
    }
}

/// The Codex binary, or `None` after saying why the test is skipped.
pub fn codex_or_skip(test: &str) -> Option<PathBuf> {
    let bin = codex_bin();
    if bin.exists() {
        return Some(bin);
    }
    eprintln!(
        "skipping {test}: no Codex CLI at {} (set CODEX_IMAGEN_CODEX_BIN, or `npm install \
         --prefix target/codex-cli @openai/codex@0.171.0` as .ci/run does)",
        bin.display()
    );
    None
}

/// A TOML basic string (JSON's escapes are TOML's).
pub fn toml_str(text: &str) -> String {
    Value::from(text).to_string()
}

/// Codex's `config.toml` for a loopback server at `addr`: the model provider `fake` on
/// [`MODEL_PATH`], the ChatGPT backend, no update check, no analytics. `top` holds more
/// top-level keys; tables may follow the result.
pub fn offline_config(addr: &str, top: &str) -> String {
    format!(
        "model = \"codex-imagen-test-model\"\n\
         model_provider = \"fake\"\n\
         chatgpt_base_url = {chatgpt}\n\
         check_for_update_on_startup = false\n\
         {top}\
         \n\
         [analytics]\n\
         enabled = false\n\
         \n\
         [model_providers.fake]\n\
         name = \"fake\"\n\
         base_url = {model}\n\
         wire_api = \"responses\"\n\
         env_key = \"CODEX_IMAGEN_TEST_MODEL_KEY\"\n\
         requires_openai_auth = false\n\
         \n",
        chatgpt = toml_str(&format!("{addr}/backend-api/")),
        model = toml_str(&format!("{addr}/v1")),
    )
}

/// One model turn: `items` as the output, then `response.completed`.
pub fn model_turn(id: &str, items: Vec<Value>) -> Reply {
    let mut reply =
        Reply::sse().event(&json!({"type": "response.created", "response": {"id": id}}));
    for (index, item) in items.into_iter().enumerate() {
        reply = reply.event(
            &json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
    }
    reply
        .event(
            &json!({"type": "response.completed", "response": {"id": id, "usage": {
            "input_tokens": 1, "input_tokens_details": null, "output_tokens": 1,
            "output_tokens_details": null, "total_tokens": 2}}}),
        )
        .end()
}

/// The assistant's final message `text`, as a model output item.
pub fn assistant_message(id: &str, text: &str) -> Value {
    json!({"type": "message", "role": "assistant", "id": id,
        "content": [{"type": "output_text", "text": text}]})
}

/// A proxy that forwards nothing: every request is recorded and refused.
pub fn dead_proxy() -> Server {
    let proxy = Server::start();
    proxy.handle(|_| Reply::json(403, &json!({"error": "this test stays on 127.0.0.1"})));
    proxy
}

/// Nothing went to `proxy`, so nothing went beyond 127.0.0.1.
pub fn assert_stayed_local(proxy: &Server) {
    let tried: Vec<String> = proxy
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(tried.is_empty(), "requests beyond 127.0.0.1: {tried:?}");
}

/// `codex ARGS` with a clean environment (`PATH`, `HOME`, `CODEX_HOME`, the model key), run in
/// `work` with stdin closed, every proxy variable naming `proxy` and only loopback exempt.
pub fn codex_command(
    codex: &Path,
    args: &[&str],
    home: &Path,
    codex_home: &Path,
    work: &Path,
    proxy: &Server,
) -> Command {
    let mut cmd = Command::new(codex);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CODEX_HOME", codex_home)
        .env("CODEX_IMAGEN_TEST_MODEL_KEY", "test-key")
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for key in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"] {
        cmd.env(key, &proxy.addr)
            .env(key.to_lowercase(), &proxy.addr);
    }
    for key in ["NO_PROXY", "no_proxy"] {
        cmd.env(key, "127.0.0.1,localhost");
    }
    cmd
}

/// What a Codex run did; `events` are the JSON lines of its stdout (`codex exec --json`).
pub struct CodexRun {
    pub code: Option<i32>,
    pub events: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl std::fmt::Display for CodexRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "codex exit {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Run `cmd` (from [`codex_command`]) to the end, its process group killed after
/// [`CODEX_LIMIT`].
pub fn run_codex(mut cmd: Command) -> CodexRun {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn codex");
    let group = child.id() as i32;
    let done = Arc::new(Mutex::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(CODEX_LIMIT);
        if !*flag.lock().unwrap() {
            // SAFETY: signalling the process group of a child we spawned.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    });
    let output = child.wait_with_output().expect("wait for codex");
    *done.lock().unwrap() = true;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let events = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    CodexRun {
        code: output.status.code(),
        events,
        stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}
