//! `codex-imagen --batch` (issue #12) with the real binary against the loopback backend, each
//! test in its own sandbox: both line formats, defaults and overrides, path resolution, every
//! validation error, the `--jobs` bound seen at the server, `--count`, the results file, resume
//! (also after SIGKILL), the usage-limit stop, one refresh for many jobs, and both signals.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// What the backend saw: prompts in arrival order, and the most requests open at once.
#[derive(Default)]
struct Seen {
    prompts: Mutex<Vec<String>>,
    open: AtomicUsize,
    max_open: AtomicUsize,
    serial: AtomicUsize,
}

impl Seen {
    fn prompts(&self) -> Vec<String> {
        self.prompts.lock().unwrap().clone()
    }
    fn count(&self, prompt: &str) -> usize {
        self.prompts().iter().filter(|p| *p == prompt).count()
    }
}

/// The prompt text of a Responses request (the last `input_text`).
fn prompt_of(req: &Request) -> String {
    let body = req.json();
    let content = body["input"][0]["content"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    content
        .last()
        .and_then(|c| c["text"].as_str())
        .unwrap_or("")
        .to_string()
}

/// What the backend answers a prompt with.
enum Answer {
    /// An image after this many milliseconds.
    Image(u64),
    /// HTTP 400 at once.
    Fail,
    /// The subscription's usage limit (HTTP 429 `usage_limit_reached`).
    Quota,
    /// One image saved, then half of a `response.completed` repeating it at 300 KiB (so its
    /// base64 is being decoded to a temporary file), then silence until the client goes away.
    ImageThenHang,
}

fn usage_limit_body() -> Value {
    json!({"error": {"type": "usage_limit_reached", "plan_type": "plus",
        "message": "The usage limit has been reached", "resets_in_seconds": 2 * 3600 + 13 * 60}})
}

/// A backend that answers each prompt as `rule` says and counts requests open at once. The
/// count drops before the stream's last event, so a finished job's successor is never counted
/// together with it.
fn backend(server: &Server, rule: impl Fn(&str) -> Answer + Send + 'static) -> Arc<Seen> {
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    server.handle(move |req| {
        if req.path.starts_with("/oauth/token") {
            return Reply::json(
                200,
                &json!({"access_token": jwt(now_secs() + 3600), "refresh_token": "refresh-next", "expires_in": 3600}),
            );
        }
        let prompt = prompt_of(req);
        state.prompts.lock().unwrap().push(prompt.clone());
        let n = state.serial.fetch_add(1, Ordering::SeqCst) as u8;
        let png = png_bytes(n, 300);
        let id = format!("ig_{n}");
        match rule(&prompt) {
            Answer::Fail => Reply::json(400, &json!({"error": {"message": "bad prompt"}})),
            Answer::Quota => Reply::json(429, &usage_limit_body()),
            Answer::ImageThenHang => {
                let large = png_bytes(n, 300 * 1024);
                let text = sse_event(&completed(&[(&id, &large)]));
                let half = text.as_bytes()[..text.len() / 2].to_vec();
                Reply::sse()
                    .event(&created())
                    .event(&image_done(&id, &png))
                    .step(Step::Chunk(half))
                    .step(Step::Hang)
            }
            Answer::Image(ms) => {
                let now = state.open.fetch_add(1, Ordering::SeqCst) + 1;
                state.max_open.fetch_max(now, Ordering::SeqCst);
                let done = state.clone();
                Reply::sse()
                    .event(&created())
                    .sleep_ms(ms)
                    .event(&image_done(&id, &png))
                    .step(Step::Check(Box::new(move || {
                        done.open.fetch_sub(1, Ordering::SeqCst);
                    })))
                    .event(&completed(&[(&id, &png)]))
                    .end()
            }
        }
    });
    seen
}

fn fast(server: &Server) -> Arc<Seen> {
    backend(server, |_| Answer::Image(0))
}

fn write(sandbox: &Sandbox, rel: &str, text: &str) -> PathBuf {
    let path = sandbox.work().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Every results line, parsed (a torn line would fail the test).
fn results(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn by_id(records: &[Value]) -> HashMap<String, Value> {
    records
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn out(sandbox: &Sandbox) -> PathBuf {
    real_work(sandbox).join("out")
}

fn spawn(sandbox: &Sandbox, server: &Server, args: &[&str]) -> Child {
    let sargs = server_args(server);
    sandbox.command(&with_server(&sargs, args)).spawn().unwrap()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, sig) };
}

fn finish(child: Child) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: Duration::ZERO,
    }
}

/// Nothing but images and the results file in `dir`: no temp file, no lock.
fn assert_no_leftovers(sandbox: &Sandbox, dir: &Path) {
    for name in file_names(dir) {
        assert!(
            name.ends_with(".png") || name == "results.jsonl",
            "leftover {name} in {}",
            dir.display()
        );
    }
    let locks = files_named(&sandbox.home(), ".lock");
    assert!(locks.is_empty(), "lock files left: {locks:?}");
}

#[test]
fn both_line_formats_with_command_line_defaults_and_line_overrides() {
    let server = Server::start();
    let seen = fast(&server);
    let sandbox = authed_sandbox();
    write(
        &sandbox,
        "b.jsonl",
        "# a comment\n\na plain prompt\n  {\"id\": \"j\", \"prompt\": \"a json prompt\", \"model\": \"m-line\", \"retries\": 0, \"timeout\": 30}\n\"quoted\" is text\n",
    );
    let run = run_against(
        &sandbox,
        &server,
        &["--batch", "b.jsonl", "--out-dir", "out", "--model", "m-cli"],
    );
    assert_eq!(run.code, 0, "{run}");
    let mut prompts = seen.prompts();
    prompts.sort();
    assert_eq!(
        prompts,
        ["\"quoted\" is text", "a json prompt", "a plain prompt"]
    );
    let models: HashMap<String, String> = server
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(|r| {
            (
                prompt_of(r),
                r.json()["model"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(models["a plain prompt"], "m-cli");
    assert_eq!(models["a json prompt"], "m-line");
    let dir = out(&sandbox);
    assert_eq!(
        file_names(&dir),
        ["j-1.png", "line-3-1.png", "line-5-1.png", "results.jsonl"]
    );
    // stdout: each saved path, as saved.
    let mut paths = stdout_paths(&run);
    paths.sort();
    assert_eq!(
        paths,
        ["j-1.png", "line-3-1.png", "line-5-1.png"].map(|n| dir.join(n))
    );
    let records = by_id(&results(&dir.join("results.jsonl")));
    assert_eq!(records["line-3"]["line"], 3);
    assert_eq!(records["j"]["line"], 4);
    assert_eq!(records["line-5"]["prompt"], "\"quoted\" is text");
}

#[test]
fn paths_resolve_against_the_batch_file_and_stdin_against_the_working_directory() {
    let server = Server::start();
    let _seen = fast(&server);
    let sandbox = authed_sandbox();
    let ref_line = png_bytes(41, 50);
    let ref_cli = png_bytes(42, 50);
    std::fs::create_dir_all(sandbox.work().join("sub")).unwrap();
    std::fs::write(sandbox.work().join("sub/ref.png"), &ref_line).unwrap();
    std::fs::write(sandbox.work().join("cli.png"), &ref_cli).unwrap();
    write(
        &sandbox,
        "sub/b.jsonl",
        "{\"id\": \"own\", \"prompt\": \"own refs\", \"images\": [\"ref.png\"], \"output\": \"o/x.png\"}\n{\"id\": \"inherit\", \"prompt\": \"cli refs\", \"out_dir\": \"d\"}\n",
    );
    let run = run_against(
        &sandbox,
        &server,
        &[
            "--batch",
            "sub/b.jsonl",
            "-i",
            "cli.png",
            "--out-dir",
            "out",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let work = real_work(&sandbox);
    assert!(work.join("sub/o/x.png").is_file(), "{run}");
    assert!(work.join("sub/d/inherit-1.png").is_file(), "{run}");
    let bodies: HashMap<String, String> = server
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(|r| (prompt_of(r), String::from_utf8_lossy(&r.body).into_owned()))
        .collect();
    assert!(bodies["own refs"].contains(&b64(&ref_line)));
    assert!(
        !bodies["own refs"].contains(&b64(&ref_cli)),
        "a line's images replace -i"
    );
    assert!(
        bodies["cli refs"].contains(&b64(&ref_cli)),
        "-i stays relative to the cwd"
    );

    // stdin: relative paths are the working directory's (here --cwd).
    std::fs::create_dir_all(sandbox.work().join("w")).unwrap();
    std::fs::write(sandbox.work().join("w/r.png"), &ref_line).unwrap();
    let sargs = server_args(&server);
    let mut cmd = sandbox.command(&with_server(
        &sargs,
        &["--batch", "-", "--cwd", "w", "--out-dir", "o2"],
    ));
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"id\":\"s\",\"prompt\":\"from stdin\",\"images\":[\"r.png\"]}\n")
        .unwrap();
    let run = finish(child);
    assert_eq!(run.code, 0, "{run}");
    assert!(work.join("w/o2/s-1.png").is_file(), "{run}");
    assert!(work.join("w/o2/results.jsonl").is_file(), "{run}");

    // stdin errors are named after it.
    let mut cmd = sandbox.command(&with_server(&sargs, &["--batch", "-"]));
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"id\": 1}\n")
        .unwrap();
    let run = finish(child);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("<stdin>:1: missing \"prompt\""),
        "{run}"
    );
}

#[test]
fn every_bad_line_is_reported_and_nothing_is_sent() {
    let server = Server::start();
    let seen = fast(&server);
    let sandbox = authed_sandbox();
    let lines = [
        r#"{"id": "a", "prompt": "ok"}"#,
        r#"{"prompt": "x""#,
        r#"{"id": "b"}"#,
        r#"{"prompt": "x", "colour": "red"}"#,
        r#"{"prompt": 7}"#,
        r#"{"prompt": "x", "id": "no/slash"}"#,
        r#"{"prompt": "x", "images": ["missing.png"]}"#,
        r#"{"prompt": "x", "images": "one.png"}"#,
        r#"{"id": "a", "prompt": "again"}"#,
        r#"{"prompt": "x", "timeout": 0}"#,
        r#"{"prompt": "x", "retries": 101}"#,
        r#"{"prompt": "x", "image_detail": "max"}"#,
        r#"{"prompt": "   "}"#,
        r#"{"prompt": "x", "output": "a.png"}"#,
        r#"{"prompt": "y", "output": "a.png"}"#,
    ];
    write(&sandbox, "b.jsonl", &format!("{}\n", lines.join("\n")));
    let run = run_against(&sandbox, &server, &["--batch", "b.jsonl", "--json"]);
    assert_eq!(run.code, 2, "{run}");
    let expected = [
        "b.jsonl:2: invalid JSON: EOF while parsing an object at line 1 column 14",
        "b.jsonl:3: missing \"prompt\"",
        "b.jsonl:4: unknown key \"colour\"",
        "b.jsonl:5: \"prompt\" must be a string, not a number",
        "b.jsonl:6: id \"no/slash\" may hold only letters, digits, '-', '_' and '.' (not first)",
        &format!(
            "b.jsonl:7: \"images\"[0]: no such file: {}",
            real_work(&sandbox).join("missing.png").display()
        ),
        "b.jsonl:8: \"images\" must be an array of paths or URLs, not a string",
        "b.jsonl:9: duplicate id \"a\" (first on line 1)",
        "b.jsonl:10: \"timeout\" must be a number of seconds above 0 (at most 86400), not 0",
        "b.jsonl:11: \"retries\" must be an integer from 0 to 100, not 101",
        "b.jsonl:12: \"image_detail\" must be one of: auto, low, high, original",
        "b.jsonl:13: \"prompt\" is empty",
        &format!(
            "b.jsonl:15: output \"{}\" is also written by line 14",
            real_work(&sandbox).join("a.png").display()
        ),
    ];
    let got: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(got, expected, "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert!(seen.prompts().is_empty());
    assert!(!sandbox.work().join("codex-imagen-output").exists());

    // An empty batch, a missing file, and bad flags are usage errors too.
    write(&sandbox, "empty.jsonl", "# nothing\n\n");
    for (args, message) in [
        (vec!["--batch", "empty.jsonl"], "empty.jsonl: no prompts"),
        (vec!["--batch", "nope.jsonl"], "nope.jsonl: cannot read: No such file or directory (os error 2)"),
        (vec!["--batch", "b.jsonl", "--jobs", "17"], "Error: --jobs must be an integer from 1 to 16"),
        (vec!["--batch", "b.jsonl", "--jobs", "0"], "Error: --jobs must be an integer from 1 to 16"),
        (vec!["--batch", "b.jsonl", "--count", "11"], "Error: --count must be an integer from 1 to 10"),
        (vec!["--batch", "b.jsonl", "--count", "1.5"], "Error: --count must be an integer from 1 to 10"),
        (vec!["--batch", "b.jsonl", "a prompt"], "Error: --batch reads the prompts from its file; remove the prompt (positional words, --prompt or --prompt-file)"),
        (vec!["--batch", "b.jsonl", "-o", "x.png"], "Error: --output names one image; with --batch use --out-dir, or an \"output\" key on a line"),
        (vec!["--batch", "b.jsonl", "--smoke"], "Error: --smoke cannot be used with --batch"),
        (vec!["x", "--results", "r.jsonl"], "Error: --results needs --batch"),
        (vec!["x", "--fresh"], "Error: --fresh needs --batch"),
        (vec!["x", "--jobs", "2"], "Error: --jobs needs --batch or --count"),
    ] {
        let run = run_against(&sandbox, &server, &args);
        assert_eq!(run.code, 2, "{args:?}: {run}");
        assert_eq!(run.stderr.trim_end(), message, "{args:?}");
    }
    let run = sandbox.run(&["--batch"]);
    assert_eq!(
        (run.code, run.stderr.trim_end()),
        (2, "Error: Missing value for --batch")
    );
    assert!(seen.prompts().is_empty());
}

#[test]
fn no_more_than_jobs_requests_are_open_at_once() {
    let server = Server::start();
    let seen = backend(&server, |_| Answer::Image(300));
    let sandbox = authed_sandbox();
    let text: String = (1..=8).map(|n| format!("prompt {n}\n")).collect();
    write(&sandbox, "b.txt", &text);
    let run = run_against(
        &sandbox,
        &server,
        &[
            "--batch",
            "b.txt",
            "--jobs",
            "3",
            "--out-dir",
            "out",
            "--quiet",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(seen.prompts().len(), 8);
    assert_eq!(
        seen.max_open.load(Ordering::SeqCst),
        3,
        "the bound is reached and kept"
    );
    assert!(run.stderr.is_empty(), "--quiet: {run}");
}

#[test]
fn count_makes_numbered_jobs_for_every_line() {
    let server = Server::start();
    let seen = fast(&server);
    let sandbox = authed_sandbox();
    write(
        &sandbox,
        "b.jsonl",
        "{\"id\": \"cat\", \"prompt\": \"a cat\"}\na dog\n",
    );
    let run = run_against(
        &sandbox,
        &server,
        &[
            "--batch",
            "b.jsonl",
            "--count",
            "3",
            "--out-dir",
            "out",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(seen.count("a cat"), 3);
    assert_eq!(seen.count("a dog"), 3);
    let mut ids: Vec<String> = results(&out(&sandbox).join("results.jsonl"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["cat-1", "cat-2", "cat-3", "line-2-1", "line-2-2", "line-2-3"]
    );
    assert!(out(&sandbox).join("cat-2-1.png").is_file());
    let summary = run.json();
    assert_eq!(summary["jobs"], 6);
    assert_eq!(summary["succeeded"], 6);
    assert_eq!(summary["images"].as_array().unwrap().len(), 6);
}

#[test]
fn results_lines_and_the_summary_say_what_happened() {
    let server = Server::start();
    let _seen = backend(&server, |p| {
        if p == "bad" {
            Answer::Fail
        } else {
            Answer::Image(0)
        }
    });
    let sandbox = authed_sandbox();
    write(
        &sandbox,
        "b.jsonl",
        "{\"id\": \"good\", \"prompt\": \"good\"}\n{\"id\": \"bad\", \"prompt\": \"bad\"}\n",
    );
    let run = run_against(
        &sandbox,
        &server,
        &["--batch", "b.jsonl", "--out-dir", "out", "--jobs", "1"],
    );
    assert_eq!(run.code, 1, "{run}");
    let dir = out(&sandbox);
    let records = results(&dir.join("results.jsonl"));
    assert_eq!(records.len(), 2);
    let keys = object_keys(&records[0]);
    assert_eq!(
        keys,
        [
            "id",
            "line",
            "status",
            "prompt",
            "images",
            "error",
            "attempts",
            "started_at",
            "finished_at",
            "seconds"
        ]
    );
    let records = by_id(&records);
    let good = &records["good"];
    assert_eq!(good["status"], "succeeded");
    assert_eq!(good["line"], 1);
    assert_eq!(good["error"], Value::Null);
    assert_eq!(good["attempts"], 1);
    let image = &good["images"][0];
    let path = dir.join("good-1.png");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(image["path"], path.display().to_string());
    assert_eq!(image["bytes"], bytes.len());
    assert_eq!(image["sha256"], sha256_hex(&bytes));
    assert_eq!(image["revised_prompt"], "a revised prompt");
    for key in ["width", "height", "format"] {
        assert!(image.get(key).is_some(), "{key} in {image}");
    }
    assert!(good["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(good["finished_at"].as_str().unwrap() >= good["started_at"].as_str().unwrap());
    assert!(good["seconds"].as_f64().unwrap() >= 0.0);
    let bad = &records["bad"];
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["images"], json!([]));
    assert_eq!(bad["error"]["kind"], "http");
    assert_eq!(bad["error"]["exit_code"], 1);
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("400"),
        "{bad}"
    );

    // Plain progress lines off a terminal, and the paths on stdout.
    let lines = progress_lines(&run);
    let saved = format!("codex-imagen: [good] saved image 1: {}", path.display());
    assert!(lines.contains(&saved), "{run}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("codex-imagen: [bad] failed: ")),
        "{run}"
    );
    assert!(
        lines.contains(&"codex-imagen: batch 1/2 done, 0 failed".to_string()),
        "{run}"
    );
    assert!(
        lines.contains(&"codex-imagen: batch 2/2 done, 1 failed".to_string()),
        "{run}"
    );
    assert_eq!(stdout_paths(&run), std::slice::from_ref(&path));

    // --json: one summary on stdout; --fresh runs both again.
    let run = run_against(
        &sandbox,
        &server,
        &[
            "--batch",
            "b.jsonl",
            "--out-dir",
            "out",
            "--json",
            "--fresh",
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    let summary = run.json();
    let keys = object_keys(&summary);
    assert_eq!(
        keys,
        [
            "jobs",
            "succeeded",
            "failed",
            "skipped",
            "not_started",
            "images",
            "results_path",
            "seconds",
            "usage_limit"
        ]
    );
    assert_eq!(summary["jobs"], 2);
    assert_eq!(summary["succeeded"], 1);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["skipped"], 0);
    assert_eq!(summary["images"], json!([path.display().to_string()]));
    assert_eq!(
        summary["results_path"],
        dir.join("results.jsonl").display().to_string()
    );
    assert_eq!(summary["usage_limit"], Value::Null);
}

#[test]
fn a_rerun_skips_verified_jobs_and_fresh_ignores_them() {
    let server = Server::start();
    let seen = fast(&server);
    let sandbox = authed_sandbox();
    write(&sandbox, "b.txt", "one\ntwo\nthree\n");
    let args = [
        "--batch",
        "b.txt",
        "--out-dir",
        "out",
        "--results",
        "r.jsonl",
    ];
    let run = run_against(&sandbox, &server, &args);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(seen.prompts().len(), 3);
    let results_path = real_work(&sandbox).join("r.jsonl");

    // A torn last line (a kill mid-write) is ignored and repaired.
    let mut text = std::fs::read_to_string(&results_path).unwrap();
    text.push_str("{\"id\":\"line-1\",\"sta");
    std::fs::write(&results_path, text).unwrap();
    let run = run_against(&sandbox, &server, &[&args[..], &["--json"]].concat());
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(seen.prompts().len(), 3, "no request for a finished job");
    assert_eq!(run.json()["skipped"], 3);
    // Skipping writes no line: reruns do not grow the results file (issue #20).
    let records = results(&results_path);
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r["status"] == "succeeded"));

    // An image changed on disk: that job runs again, the others stay skipped.
    std::fs::write(out(&sandbox).join("line-2-1.png"), b"changed").unwrap();
    let run = run_against(&sandbox, &server, &args);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(seen.prompts()[3..], ["two".to_string()]);

    let run = run_against(&sandbox, &server, &[&args[..], &["--fresh"]].concat());
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(seen.prompts().len(), 7);
}

#[test]
fn a_batch_killed_with_sigkill_resumes_without_repeating_finished_jobs() {
    let server = Server::start();
    let seen = backend(&server, |_| Answer::Image(400));
    let sandbox = authed_sandbox();
    let text: String = (1..=10).map(|n| format!("p{n}\n")).collect();
    write(&sandbox, "b.txt", &text);
    let args = ["--batch", "b.txt", "--out-dir", "out", "--jobs", "2"];
    let mut child = spawn(&sandbox, &server, &args);
    let results_path = out(&sandbox).join("results.jsonl");
    let finished = || {
        std::fs::read_to_string(&results_path)
            .unwrap_or_default()
            .matches("\"succeeded\"")
            .count()
    };
    assert!(wait_for(Duration::from_secs(20), || finished() >= 3));
    let pid = child.id();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // What a kill in the middle of a large image leaves: its half-decoded spill file. The
    // next run in that directory removes it (its process is gone and it is no longer written).
    let spill = out(&sandbox).join(format!(".image.{pid}.1796000000000.0123456789ab.tmp"));
    let file = std::fs::File::create(&spill).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(file);

    // Whatever the moment, the file is JSON Lines but for at most a torn last line.
    let text = std::fs::read_to_string(&results_path).unwrap();
    let mut done = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(record) => {
                assert_eq!(record["status"], "succeeded");
                done.push(record["prompt"].as_str().unwrap().to_string());
            }
            Err(_) => assert!(!line.ends_with('\n'), "line {i} is not JSON: {line:?}"),
        }
    }
    assert!(done.len() >= 3);

    let run = run_against(&sandbox, &server, &[&args[..], &["--json"]].concat());
    assert_eq!(run.code, 0, "{run}");
    for prompt in &done {
        assert_eq!(seen.count(prompt), 1, "{prompt} was generated again\n{run}");
    }
    for n in 1..=10 {
        assert!(seen.count(&format!("p{n}")) >= 1);
    }
    let summary = run.json();
    assert_eq!(summary["skipped"].as_u64().unwrap() as usize, done.len());
    results(&results_path); // every line parses now
    assert_no_leftovers(&sandbox, &out(&sandbox));
}

/// The tester's run from issue #20: 500 jobs, two `kill -9`s, then a run to the end. Nothing
/// is lost (every job ends with its image on disk and one `succeeded` or `adopted` line) and
/// nothing is billed twice: a job recorded before a kill is never sent again, and only jobs
/// that were in flight at a kill (at most `--jobs` per kill) are sent a second time.
#[test]
fn five_hundred_jobs_survive_two_sigkills_without_losing_or_paying_twice() {
    const JOBS: usize = 500;
    const PARALLEL: usize = 8;
    let server = Server::start();
    let seen = backend(&server, |_| Answer::Image(10));
    let sandbox = authed_sandbox();
    let text: String = (1..=JOBS).map(|n| format!("p{n}\n")).collect();
    write(&sandbox, "b.txt", &text);
    let args = [
        "--batch",
        "b.txt",
        "--out-dir",
        "out",
        "--jobs",
        "8",
        "--quiet",
    ];
    let results_path = out(&sandbox).join("results.jsonl");
    let done_prompts = || -> Vec<String> {
        std::fs::read_to_string(&results_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|r| r["status"] == "succeeded" || r["status"] == "adopted")
            .filter_map(|r| r["prompt"].as_str().map(str::to_string))
            .collect()
    };
    // What each prompt had cost when it was recorded as done before a kill: no later request.
    let mut cost_when_recorded: HashMap<String, usize> = HashMap::new();
    let mut killed = Vec::new();
    for kill_at in [120, 320] {
        let mut child = spawn(&sandbox, &server, &args);
        killed.push(child.id());
        assert!(
            wait_for(Duration::from_secs(60), || done_prompts().len() >= kill_at),
            "only {} jobs recorded",
            done_prompts().len()
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for prompt in done_prompts() {
            let cost = seen.count(&prompt);
            cost_when_recorded.entry(prompt).or_insert(cost);
        }
    }
    let run = run_against(&sandbox, &server, &[&args[..], &["--json"]].concat());
    assert_eq!(run.code, 0, "{run}");

    let mut sent_twice = 0;
    for n in 1..=JOBS {
        let prompt = format!("p{n}");
        let count = seen.count(&prompt);
        assert!((1..=2).contains(&count), "{prompt} was sent {count} times");
        if let Some(cost) = cost_when_recorded.get(&prompt) {
            assert_eq!(
                count, *cost,
                "{prompt} was recorded before a kill, then sent again"
            );
        }
        if count == 2 {
            sent_twice += 1;
        }
    }
    assert!(
        sent_twice <= 2 * PARALLEL,
        "{sent_twice} jobs sent twice; only those in flight at the two kills may be"
    );
    let records = results(&results_path);
    let mut finished: Vec<&str> = records
        .iter()
        .filter(|r| r["status"] == "succeeded" || r["status"] == "adopted")
        .filter_map(|r| r["prompt"].as_str())
        .collect();
    finished.sort_unstable();
    finished.dedup();
    assert_eq!(finished.len(), JOBS, "every job ends recorded once as done");
    for record in &records {
        for image in record["images"].as_array().into_iter().flatten() {
            let path = image["path"].as_str().unwrap();
            assert!(Path::new(path).is_file(), "{path} is missing");
        }
    }
    // A kill between creating a temporary sibling and its rename leaves that file; the next
    // run that streams into the folder removes it once it is 10 minutes old (spill.rs), so
    // here only the killed processes' own temporary files may remain.
    for name in file_names(&out(&sandbox)) {
        let killed_temp = name.starts_with('.')
            && name.ends_with(".tmp")
            && killed.iter().any(|pid| name.contains(&format!(".{pid}.")));
        assert!(
            name.ends_with(".png") || name == "results.jsonl" || killed_temp,
            "leftover {name}"
        );
    }
    assert!(files_named(&sandbox.home(), ".lock").is_empty());
}

#[test]
fn the_usage_limit_stops_new_jobs_and_records_the_rest_as_not_started() {
    let server = Server::start();
    let seen = backend(&server, |p| {
        if p == "quota" {
            Answer::Quota
        } else {
            Answer::Image(800)
        }
    });
    let sandbox = authed_sandbox();
    write(&sandbox, "b.txt", "slow\nquota\nthree\nfour\nfive\nsix\n");
    let run = run_against(
        &sandbox,
        &server,
        &[
            "--batch",
            "b.txt",
            "--out-dir",
            "out",
            "--jobs",
            "2",
            "--json",
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        seen.prompts().len(),
        2,
        "no job starts after the limit\n{run}"
    );
    let records = by_id(&results(&out(&sandbox).join("results.jsonl")));
    assert_eq!(
        records["line-1"]["status"], "succeeded",
        "running jobs finish"
    );
    assert_eq!(records["line-2"]["status"], "failed");
    assert_eq!(records["line-2"]["error"]["kind"], "usage_limit");
    let summary = run.json();
    let resets_at = summary["usage_limit"]["resets_at"]
        .as_str()
        .unwrap()
        .to_string();
    for id in ["line-3", "line-4", "line-5", "line-6"] {
        let r = &records[id];
        assert_eq!(r["status"], "not_started");
        assert_eq!(r["error"]["kind"], "usage_limit");
        assert_eq!(r["attempts"], 0);
        assert!(
            r["error"]["message"].as_str().unwrap().contains(&resets_at),
            "{r}"
        );
    }
    assert_eq!(summary["not_started"], 4);
    assert_eq!(summary["succeeded"], 1);
    assert!(
        run.stderr.contains(&format!(
            "codex-imagen: usage limit reached; 4 jobs not started; the usage limit resets at {resets_at}; rerun the same command after then to continue"
        )),
        "{run}"
    );
}

#[test]
fn eight_jobs_with_an_expired_token_make_one_refresh() {
    let server = Server::start();
    let used = single_use_oauth(&server);
    let sandbox = Sandbox::new();
    write_json(&sandbox.home().join(".codex/auth.json"), &codex_auth(-60));
    let text: String = (1..=8).map(|n| format!("p{n}\n")).collect();
    write(&sandbox, "b.txt", &text);
    let run = run_against(
        &sandbox,
        &server,
        &[
            "--batch",
            "b.txt",
            "--out-dir",
            "out",
            "--jobs",
            "8",
            "--quiet",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(used.lock().unwrap().as_slice(), ["refresh-0"], "{run}");
    assert_eq!(server.requests_to("/oauth/token").len(), 1);
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 8);
}

#[test]
fn a_first_signal_lets_running_jobs_finish_and_starts_no_more() {
    let server = Server::start();
    let seen = backend(&server, |_| Answer::Image(1500));
    let sandbox = authed_sandbox();
    write(&sandbox, "b.txt", "a\nb\nc\nd\n");
    let child = spawn(
        &sandbox,
        &server,
        &[
            "--batch",
            "b.txt",
            "--out-dir",
            "out",
            "--jobs",
            "2",
            "--json",
        ],
    );
    assert!(wait_for(Duration::from_secs(10), || seen.prompts().len() == 2));
    signal(&child, libc::SIGINT);
    let run = finish(child);
    assert_eq!(run.code, 130, "{run}");
    assert_eq!(seen.prompts().len(), 2, "{run}");
    let records = by_id(&results(&out(&sandbox).join("results.jsonl")));
    assert_eq!(records["line-1"]["status"], "succeeded");
    assert_eq!(records["line-2"]["status"], "succeeded");
    for id in ["line-3", "line-4"] {
        assert_eq!(records[id]["status"], "not_started");
        assert_eq!(records[id]["error"]["kind"], "interrupted");
    }
    assert_eq!(run.json()["not_started"], 2);
    assert!(run.stderr.contains("SIGINT: starting no new jobs"), "{run}");
    assert_no_leftovers(&sandbox, &out(&sandbox));
}

#[test]
fn a_second_signal_cancels_running_jobs_and_keeps_their_images() {
    let server = Server::start();
    let seen = backend(&server, |_| Answer::ImageThenHang);
    let sandbox = authed_sandbox();
    write(&sandbox, "b.txt", "a\nb\nc\n");
    let dir = out(&sandbox);
    let child = spawn(
        &sandbox,
        &server,
        &["--batch", "b.txt", "--out-dir", "out", "--jobs", "2"],
    );
    assert!(wait_for(Duration::from_secs(10), || seen.prompts().len()
        == 2
        && count_pngs(&dir) == 2));
    // Both repeats are being decoded to temporary files when the signals come.
    assert!(wait_for(Duration::from_secs(10), || files_named(
        &dir, ".tmp"
    )
    .len()
        == 2));
    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    let run = finish(child);
    assert_eq!(run.code, 143, "{run}");
    let records = by_id(&results(&dir.join("results.jsonl")));
    for id in ["line-1", "line-2"] {
        let r = &records[id];
        assert_eq!(r["status"], "failed", "{r}");
        assert_eq!(r["error"]["kind"], "interrupted", "{r}");
        let path = r["images"][0]["path"].as_str().unwrap();
        assert!(Path::new(path).is_file(), "saved images stay: {r}");
    }
    assert_eq!(records["line-3"]["status"], "not_started");
    assert_eq!(seen.prompts().len(), 2);
    assert_no_leftovers(&sandbox, &dir);
}

#[test]
fn count_without_batch_reports_every_image_together() {
    let server = Server::start();
    let seen = backend(&server, |_| Answer::Image(200));
    let sandbox = authed_sandbox();
    let run = run_against(
        &sandbox,
        &server,
        &[
            "a fox",
            "--count",
            "3",
            "--jobs",
            "3",
            "--out-dir",
            "out",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(seen.count("a fox"), 3);
    assert_eq!(seen.max_open.load(Ordering::SeqCst), 3);
    let summary = run.json();
    assert_eq!(summary["count"], 3);
    assert_eq!(summary["succeeded"], 3);
    assert_eq!(summary["image_count"], 3);
    let images = summary["images"].as_array().unwrap();
    let mut jobs: Vec<u64> = images.iter().map(|i| i["job"].as_u64().unwrap()).collect();
    jobs.sort();
    assert_eq!(jobs, [1, 2, 3]);
    let mut names: Vec<String> = images
        .iter()
        .map(|i| {
            let path = Path::new(i["path"].as_str().unwrap());
            path.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "one file per job: {names:?}");
    for (k, name) in names.iter().enumerate() {
        assert!(name.starts_with("codex-imagen-"), "{name}");
        assert!(name.ends_with(&format!("-{}-1.png", k + 1)), "{name}");
    }
    for image in images {
        assert!(Path::new(image["path"].as_str().unwrap()).is_file());
        assert_eq!(image["path"], image["decodedPath"]);
    }
    assert_eq!(summary["jobs"].as_array().unwrap().len(), 3);
    assert_eq!(summary["jobs"][0]["status"], "succeeded");
    assert!(!out(&sandbox).join("results.jsonl").exists());

    // Without --json: every path on stdout; -o numbers the files.
    let run = run_against(
        &sandbox,
        &server,
        &["a fox", "--count", "2", "-o", "o/fox.png"],
    );
    assert_eq!(run.code, 0, "{run}");
    let mut paths = stdout_paths(&run);
    paths.sort();
    let work = real_work(&sandbox);
    assert_eq!(paths, [work.join("o/fox-1.png"), work.join("o/fox-2.png")]);
}

#[test]
fn image_controls_come_from_the_command_line_and_lines_override_them() {
    let server = Server::start();
    let seen = fast(&server);
    let sandbox = authed_sandbox();
    std::fs::write(sandbox.work().join("ref.png"), png_bytes(5, 40)).unwrap();
    std::fs::write(sandbox.work().join("mask.png"), png_bytes(6, 40)).unwrap();
    write(
        &sandbox,
        "b.jsonl",
        "plain\n{\"id\": \"own\", \"prompt\": \"own\", \"quality\": \"high\", \"size\": \"16:9\", \"compression\": 50, \"format\": \"webp\"}\n",
    );
    let run = run_against(
        &sandbox,
        &server,
        &["--batch", "b.jsonl", "--quality", "low", "--out-dir", "out"],
    );
    assert_eq!(run.code, 0, "{run}");
    let tools: HashMap<String, Value> = server
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(|r| (prompt_of(r), r.json()["tools"][0].clone()))
        .collect();
    assert_eq!(tools["plain"]["quality"], "low", "{}", tools["plain"]);
    assert!(tools["plain"].get("size").is_none());
    assert_eq!(tools["own"]["quality"], "high");
    assert_eq!(tools["own"]["size"], "1536x864");
    assert_eq!(tools["own"]["output_format"], "webp");
    assert_eq!(tools["own"]["output_compression"], 50);
    let records = by_id(&results(&out(&sandbox).join("results.jsonl")));
    assert_eq!(records["line-1"]["images"][0]["format"], "png");

    // Bad values get the CLI's words, prefixed by the key; nothing is sent.
    let sent = seen.prompts().len();
    write(
        &sandbox,
        "bad.jsonl",
        &[
            r#"{"prompt": "x", "quality": "ultra"}"#,
            r#"{"prompt": "x", "compression": 50}"#,
            r#"{"prompt": "x", "mask": "mask.png"}"#,
            r#"{"prompt": "x", "mask": "nomask.png", "images": ["ref.png"]}"#,
            r#"{"prompt": "x", "size": 1024}"#,
            r#"{"prompt": "x", "mask": "mask.png", "images": ["ref.png"]}"#,
        ]
        .join("\n"),
    );
    let run = run_against(&sandbox, &server, &["--batch", "bad.jsonl"]);
    assert_eq!(run.code, 2, "{run}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{run}");
    assert!(
        lines[0].starts_with("bad.jsonl:1: \"quality\": --quality must be one of:"),
        "{run}"
    );
    assert!(
        lines[1].starts_with("bad.jsonl:2: --compression needs --format jpeg or webp"),
        "{run}"
    );
    assert!(
        lines[2].starts_with("bad.jsonl:3: --mask needs at least one reference image"),
        "{run}"
    );
    assert!(
        lines[3].starts_with("bad.jsonl:4: \"mask\": no such file: "),
        "{run}"
    );
    assert_eq!(
        lines[4], "bad.jsonl:5: \"size\" must be a string, not a number",
        "{run}"
    );
    assert_eq!(seen.prompts().len(), sent);
}

#[cfg(target_os = "linux")]
#[test]
fn on_a_terminal_one_bar_counts_the_jobs_and_each_running_job_shows_its_stage() {
    let server = Server::start();
    let seen = backend(&server, |_| Answer::Image(700));
    let mut sandbox = authed_sandbox();
    sandbox.env("TERM", "xterm-256color");
    write(&sandbox, "b.txt", "a\nb\nc\n");
    let sargs = server_args(&server);
    let (code, screen) = run_on_terminal(
        &sandbox,
        &with_server(
            &sargs,
            &["--batch", "b.txt", "--out-dir", "out", "--jobs", "2"],
        ),
    );
    assert_eq!(code, Some(0), "{screen:?}");
    assert_eq!(seen.prompts().len(), 3);
    // The overall bar: done of total, failed and running counts, an ETA.
    assert!(
        screen.contains("/3 done, 0 failed, 2 running (ETA "),
        "{screen:?}"
    );
    assert!(screen.contains("3/3 done"), "{screen:?}");
    // A line per running job, with its stage while the backend thinks.
    for id in ["line-1", "line-2", "line-3"] {
        assert!(
            screen.contains(&format!("[{id}] accepted")),
            "{id}: {screen:?}"
        );
        assert!(
            screen.contains(&format!("codex-imagen: [{id}] saved image 1: ")),
            "saved paths print above the bars: {screen:?}"
        );
    }
    // Drawn and redrawn in place, not the plain lines meant for logs.
    assert!(screen.contains("\u{1b}["), "{screen:?}");
    assert!(
        !screen.contains("codex-imagen: batch 1/3 done"),
        "{screen:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_terminal_that_cannot_draw_bars_gets_the_plain_lines() {
    // No TERM (cron with a tty, some containers): indicatif would hide its bars, and with them
    // the saved and failed lines printed above them.
    let server = Server::start();
    let _seen = backend(&server, |prompt| {
        if prompt == "bad" {
            Answer::Fail
        } else {
            Answer::Image(0)
        }
    });
    let sandbox = authed_sandbox();
    write(&sandbox, "b.txt", "a\nbad\n");
    let sargs = server_args(&server);
    let (code, screen) = run_on_terminal(
        &sandbox,
        &with_server(&sargs, &["--batch", "b.txt", "--out-dir", "out"]),
    );
    assert_eq!(code, Some(1), "{screen:?}");
    assert!(
        screen.contains("codex-imagen: [line-1] saved image 1: "),
        "{screen:?}"
    );
    assert!(
        screen.contains("codex-imagen: [line-2] failed: "),
        "{screen:?}"
    );
    assert!(
        screen.contains("codex-imagen: batch 2/2 done, 1 failed"),
        "{screen:?}"
    );
    assert!(!screen.contains("\u{1b}["), "{screen:?}");
}

#[test]
fn a_job_warning_is_one_line_naming_the_job() {
    let png = encode(
        image::DynamicImage::ImageRgb8(image::RgbImage::new(16, 8)),
        image::ImageFormat::Png,
    );
    let server = Server::start();
    server.handle(move |_| image_stream(&[("ig_1", &png)]));
    let sandbox = authed_sandbox();
    write(
        &sandbox,
        "b.jsonl",
        "{\"id\": \"wide\", \"prompt\": \"a\", \"size\": \"1536x1024\"}\n",
    );
    let run = run_against(
        &sandbox,
        &server,
        &["--batch", "b.jsonl", "--out-dir", "out"],
    );
    assert_eq!(run.code, 0, "{run}");
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("warning"))
        .collect();
    assert_eq!(
        warnings,
        ["codex-imagen: [wide] warning: requested 1536x1024, the backend returned 16x8"],
        "{run}"
    );
}

#[test]
fn a_batch_reference_with_an_unsupported_scheme_is_named_as_such() {
    let server = Server::start();
    fast(&server);
    let sandbox = authed_sandbox();
    write(
        &sandbox,
        "u.jsonl",
        "{\"prompt\": \"x\", \"images\": [\"ftp://host/y.png\"]}\n",
    );
    let run = run_against(&sandbox, &server, &["--batch", "u.jsonl", "--json"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains(
            "u.jsonl:1: \"images\"[0]: Unsupported reference ftp://host/y.png: the URL scheme ftp: is not supported"
        ),
        "{run}"
    );
    assert!(server.requests().is_empty());
}
