//! Generation over the Responses backend: the binary against a loopback server.
//!
//! What a user checks: the exit code, the paths (or JSON) on stdout, the progress lines on
//! stderr, the files on disk and their bytes, and what the backend was sent. SSE framing, broken
//! streams and timeouts live in `tests/stream_edges.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use support::*;

fn is_uuid_v4(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'4'
        && text
            .chars()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------------------------
// One image, several images, where they go
// ---------------------------------------------------------------------------------------------

#[test]
fn one_image_is_saved_and_its_path_printed() {
    let server = Server::start();
    let png = png_bytes(1, 5000);
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png)]));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["a red cube"]);
    assert_eq!(run.code, 0, "{run}");
    let paths = stdout_paths(&run);
    assert_eq!(paths.len(), 1, "{run}");
    assert!(paths[0].is_absolute(), "{run}");
    assert_auto_name(&paths[0], &default_out_dir(&sandbox), Some("1"), "ig_1");
    assert_eq!(std::fs::read(&paths[0]).unwrap(), png);
    assert_eq!(
        file_names(&default_out_dir(&sandbox)).len(),
        1,
        "no temp files are left behind"
    );
    let requests = server.requests_to(RESPONSES_PATH);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    let body = requests[0].json();
    assert_eq!(body["input"][0]["content"][0]["text"], "a red cube");
    assert_eq!(requests[0].header("chatgpt-account-id"), Some("acct-123"));
}

#[test]
fn streamed_images_get_unpadded_indexes_in_arrival_order() {
    let server = Server::start();
    let pngs: Vec<(String, Vec<u8>)> = (1..=10)
        .map(|i| (format!("ig_{i}"), png_bytes(i as u8, 300 + i)))
        .collect();
    let images: Vec<(&str, &[u8])> = pngs
        .iter()
        .map(|(id, b)| (id.as_str(), b.as_slice()))
        .collect();
    server.enqueue(RESPONSES_PATH, image_stream(&images));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["ten frames"]);
    assert_eq!(run.code, 0, "{run}");
    let paths = stdout_paths(&run);
    assert_eq!(paths.len(), 10, "{run}");
    let dir = default_out_dir(&sandbox);
    for (i, path) in paths.iter().enumerate() {
        // The total is unknown while streaming: "1", never "01".
        assert_auto_name(path, &dir, Some(&(i + 1).to_string()), &pngs[i].0);
        assert_eq!(std::fs::read(path).unwrap(), pngs[i].1);
    }
    let saved: Vec<String> = progress_lines(&run)
        .into_iter()
        .filter(|l| l.starts_with("codex-imagen: saved image "))
        .collect();
    let expected: Vec<String> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| format!("codex-imagen: saved image {}: {}", i + 1, p.display()))
        .collect();
    assert_eq!(saved, expected, "{run}");
    assert!(!run.stderr.contains("updated image"), "{run}");
    assert_eq!(file_names(&dir).len(), 10);
}

#[test]
fn output_file_with_three_images_renames_the_first_and_numbers_the_rest() {
    let server = Server::start();
    let (a, b, c) = (png_bytes(1, 100), png_bytes(2, 200), png_bytes(3, 300));
    server.enqueue(
        RESPONSES_PATH,
        image_stream(&[("ig_a", &a), ("ig_b", &b), ("ig_c", &c)]),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["three", "--output", "art/pic.png"]);
    assert_eq!(run.code, 0, "{run}");
    let art = real_work(&sandbox).join("art");
    let expected: Vec<PathBuf> = ["pic-1.png", "pic-2.png", "pic-3.png"]
        .iter()
        .map(|n| art.join(n))
        .collect();
    assert_eq!(stdout_paths(&run), expected, "{run}");
    assert_eq!(std::fs::read(&expected[0]).unwrap(), a);
    assert_eq!(std::fs::read(&expected[1]).unwrap(), b);
    assert_eq!(std::fs::read(&expected[2]).unwrap(), c);
    assert_eq!(
        file_names(&art),
        vec!["pic-1.png", "pic-2.png", "pic-3.png"]
    );
    let lines = progress_lines(&run);
    let saved_and_renamed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("saved image") || l.contains("renamed"))
        .collect();
    assert_eq!(
        saved_and_renamed,
        vec![
            &format!(
                "codex-imagen: saved image 1: {}",
                art.join("pic.png").display()
            ),
            &format!(
                "codex-imagen: renamed first image for multi-output: {}",
                expected[0].display()
            ),
            &format!("codex-imagen: saved image 2: {}", expected[1].display()),
            &format!("codex-imagen: saved image 3: {}", expected[2].display()),
        ],
        "{run}"
    );
}

#[test]
fn output_file_with_one_image_is_written_exactly_there() {
    let server = Server::start();
    let png = png_bytes(4, 700);
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png)]));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["one", "-o", "deep/er/pic.png"]);
    assert_eq!(run.code, 0, "{run}");
    let expected = real_work(&sandbox).join("deep/er/pic.png");
    assert_eq!(stdout_paths(&run), vec![expected.clone()]);
    assert_eq!(std::fs::read(&expected).unwrap(), png);
    assert!(!run.stderr.contains("renamed"), "{run}");
}

#[test]
fn output_with_a_trailing_slash_or_without_extension_is_a_directory() {
    let server = Server::start();
    server.handle(|_| {
        let (a, b) = (png_bytes(1, 100), png_bytes(2, 100));
        image_stream(&[("ig_a", &a), ("ig_b", &b)])
    });
    let sandbox = authed_sandbox();
    for (flag, dir) in [("shots/", "shots"), ("frames", "frames"), ("v1.2/", "v1.2")] {
        let run = run_against(&sandbox, &server, &["two", "--output", flag]);
        assert_eq!(run.code, 0, "{run}");
        let dir = real_work(&sandbox).join(dir);
        let paths = stdout_paths(&run);
        assert_eq!(paths.len(), 2, "{run}");
        assert_auto_name(&paths[0], &dir, Some("1"), "ig_a");
        assert_auto_name(&paths[1], &dir, Some("2"), "ig_b");
        assert!(!run.stderr.contains("renamed"), "{run}");
    }
}

#[test]
fn out_dir_flag_and_environment_chain_choose_the_directory() {
    let server = Server::start();
    server.handle(|_| image_stream(&[("ig_1", &png_bytes(5, 64))]));
    // (env vars, extra args, expected directory relative to the working directory)
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![], vec!["--out-dir", "flagdir"], "flagdir"),
        (
            vec![("CODEX_IMAGEN_OUT_DIR", "envdir")],
            vec!["--out-dir", "flagdir"],
            "flagdir",
        ),
        (
            vec![
                ("CODEX_IMAGEN_OUT_DIR", "imagen"),
                ("OPENCLAW_OUTPUT_DIR", "claw-out"),
                ("OPENCLAW_AGENT_DIR", "agent"),
            ],
            vec![],
            "imagen",
        ),
        (
            vec![
                ("CODEX_IMAGEN_OUT_DIR", "  "),
                ("OPENCLAW_OUTPUT_DIR", "claw-out"),
                ("OPENCLAW_AGENT_DIR", "agent"),
            ],
            vec![],
            "claw-out",
        ),
        (
            vec![
                ("OPENCLAW_AGENT_DIR", "agent"),
                ("PI_CODING_AGENT_DIR", "pi"),
                ("OPENCLAW_STATE_DIR", "state"),
            ],
            vec![],
            "agent/artifacts/codex-imagen",
        ),
        (
            vec![
                ("PI_CODING_AGENT_DIR", "pi"),
                ("OPENCLAW_STATE_DIR", "state"),
            ],
            vec![],
            "pi/artifacts/codex-imagen",
        ),
        (
            vec![("OPENCLAW_STATE_DIR", "state")],
            vec![],
            "state/artifacts/codex-imagen",
        ),
        (vec![], vec![], "codex-imagen-output"),
    ];
    for (env, extra, expected) in cases {
        let mut sandbox = Sandbox::new();
        sandbox.with_codex_auth();
        for (k, v) in &env {
            sandbox.env(k, v);
        }
        let mut args = vec!["an owl"];
        args.extend(extra.iter().copied());
        let run = run_against(&sandbox, &server, &args);
        assert_eq!(run.code, 0, "{env:?} {extra:?}\n{run}");
        let paths = stdout_paths(&run);
        assert_eq!(paths.len(), 1, "{run}");
        assert_auto_name(
            &paths[0],
            &real_work(&sandbox).join(expected),
            Some("1"),
            "ig_1",
        );
    }
}

#[test]
fn cwd_flag_resolves_relative_output_paths() {
    let server = Server::start();
    let png = png_bytes(6, 64);
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png)]));
    let sandbox = authed_sandbox();
    let elsewhere = sandbox.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let run = run_against(
        &sandbox,
        &server,
        &["x", "--cwd", elsewhere.to_str().unwrap(), "-o", "o.png"],
    );
    assert_eq!(run.code, 0, "{run}");
    let expected = elsewhere.canonicalize().unwrap().join("o.png");
    assert_eq!(stdout_paths(&run), vec![expected.clone()]);
    assert_eq!(std::fs::read(expected).unwrap(), png);
}

#[test]
fn a_call_without_id_is_named_image_and_reports_null_fields() {
    let server = Server::start();
    let png = png_bytes(8, 64);
    let done = json!({"type": "response.output_item.done", "output_index": 0,
        "item": {"type": "image_generation_call", "status": "completed", "result": b64(&png)}});
    let completed = json!({"type": "response.completed",
        "response": {"id": "resp_1", "status": "completed", "output": []}});
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&done)
            .event(&completed)
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    let image = &json["images"][0];
    assert_auto_name(
        Path::new(image["path"].as_str().unwrap()),
        &default_out_dir(&sandbox),
        Some("1"),
        "image",
    );
    assert_eq!(image["call_id"], Value::Null);
    assert_eq!(image["revised_prompt"], Value::Null);
    assert_eq!(image["status"], "completed");
    assert_eq!(image["partial"], false);
}

#[test]
fn call_ids_are_made_safe_for_file_names() {
    let server = Server::start();
    let png = png_bytes(9, 64);
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig/../x y:z", &png)]));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let image = &run.json()["images"][0];
    assert_auto_name(
        Path::new(image["path"].as_str().unwrap()),
        &default_out_dir(&sandbox),
        Some("1"),
        "ig_.._x_y_z",
    );
    assert_eq!(image["call_id"], "ig/../x y:z");
}

// ---------------------------------------------------------------------------------------------
// Partial images, updates and repeats
// ---------------------------------------------------------------------------------------------

/// A server-side check that records the bytes of the single PNG in `dir` once it exists.
fn record_png(dir: PathBuf, into: Arc<Mutex<Vec<Vec<u8>>>>) -> Step {
    Step::Check(Box::new(move || {
        wait_for(std::time::Duration::from_secs(10), || count_pngs(&dir) > 0);
        let bytes = std::fs::read_dir(&dir)
            .ok()
            .and_then(|rd| {
                rd.filter_map(Result::ok)
                    .find(|e| e.path().extension().is_some_and(|x| x == "png"))
            })
            .and_then(|e| std::fs::read(e.path()).ok())
            .unwrap_or_default();
        into.lock().unwrap().push(bytes);
    }))
}

#[test]
fn a_partial_image_is_saved_then_overwritten_by_the_final_one() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    let dir = default_out_dir(&sandbox);
    let (preview, final_png) = (png_bytes(1, 400), png_bytes(2, 900));
    let seen = Arc::new(Mutex::new(Vec::new()));
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&item_added("ig_1"))
            .event(&partial_image("ig_1", &preview))
            .step(record_png(dir.clone(), seen.clone()))
            .event(&image_done("ig_1", &final_png))
            .event(&completed(&[("ig_1", &final_png)]))
            .end(),
    );
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![preview.clone()],
        "the preview was on disk before the final image arrived"
    );
    let json = run.json();
    assert_eq!(json["image_count"], 1);
    let image = &json["images"][0];
    let path = PathBuf::from(image["path"].as_str().unwrap());
    assert_auto_name(&path, &dir, Some("1"), "ig_1");
    assert_eq!(std::fs::read(&path).unwrap(), final_png);
    assert_eq!(image["bytes"], final_png.len());
    assert_eq!(image["sha256"], sha256_hex(&final_png));
    assert_eq!(image["status"], "completed");
    assert_eq!(image["partial"], false);
    assert_eq!(image["revised_prompt"], "a revised prompt");
    let lines = progress_lines(&run);
    let touched: Vec<&String> = lines.iter().filter(|l| l.contains(" image 1: ")).collect();
    assert_eq!(
        touched,
        vec![
            &format!("codex-imagen: saved image 1: {}", path.display()),
            &format!("codex-imagen: updated image 1: {}", path.display()),
        ],
        "one update, and none for the identical repeat in response.completed\n{run}"
    );
    assert_eq!(file_names(&dir).len(), 1);
}

#[test]
fn a_partial_image_alone_is_reported_as_partial() {
    let server = Server::start();
    let preview = png_bytes(3, 128);
    let completed = json!({"type": "response.completed",
        "response": {"id": "resp_1", "status": "completed", "output": []}});
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&partial_image("ig_1", &preview))
            .event(&completed)
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let image = &run.json()["images"][0];
    assert_eq!(image["status"], "partial_image");
    assert_eq!(image["partial"], true);
    assert_eq!(image["call_id"], "ig_1");
    assert_eq!(image["revised_prompt"], Value::Null);
    assert_eq!(image["sha256"], sha256_hex(&preview));
}

#[test]
fn a_final_image_identical_to_its_preview_is_not_announced_as_updated() {
    let server = Server::start();
    let png = png_bytes(4, 300);
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&partial_image("ig_1", &png))
            .event(&image_done("ig_1", &png))
            .event(&completed(&[("ig_1", &png)]))
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stderr.contains("updated image"), "{run}");
    let image = &run.json()["images"][0];
    // The metadata still follows the final call.
    assert_eq!(image["status"], "completed");
    assert_eq!(image["partial"], false);
    assert_eq!(image["revised_prompt"], "a revised prompt");
}

#[cfg(unix)]
#[test]
fn the_identical_repeat_in_response_completed_is_not_rewritten() {
    use std::os::unix::fs::MetadataExt;

    let server = Server::start();
    let sandbox = authed_sandbox();
    let dir = default_out_dir(&sandbox);
    let (a, b) = (png_bytes(1, 2000), png_bytes(2, 3000));
    let before = Arc::new(Mutex::new(Vec::new()));
    let snapshot = {
        let dir = dir.clone();
        let before = before.clone();
        Step::Check(Box::new(move || {
            wait_for(std::time::Duration::from_secs(10), || count_pngs(&dir) == 2);
            let mut stats: Vec<(String, u64, i64, i64)> = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| {
                    let m = e.metadata().unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        m.ino(),
                        m.mtime(),
                        m.mtime_nsec(),
                    )
                })
                .collect();
            stats.sort();
            *before.lock().unwrap() = stats;
            // Let the clock move on so a rewrite would show in the mtime.
            std::thread::sleep(std::time::Duration::from_millis(30));
        }))
    };
    // The repeat of `a` drops its padding: different base64 text, the same bytes.
    let mut repeat = completed(&[("ig_a", &a), ("ig_b", &b)]);
    let unpadded = b64(&a).trim_end_matches('=').to_string();
    repeat["response"]["output"][0]["result"] = json!(unpadded);
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&image_done("ig_a", &a))
            .event(&image_done("ig_b", &b))
            .step(snapshot)
            .event(&repeat)
            .end(),
    );
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stderr.contains("updated image"), "{run}");
    let mut after: Vec<(String, u64, i64, i64)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.ino(),
                m.mtime(),
                m.mtime_nsec(),
            )
        })
        .collect();
    after.sort();
    let before = before.lock().unwrap().clone();
    assert_eq!(before.len(), 2, "{run}");
    assert_eq!(after, before, "files untouched by the repeat");
}

#[test]
fn base64_that_does_not_decode_names_the_call_and_writes_nothing() {
    let server = Server::start();
    let mut done = image_done("ig_bad", b"x");
    done["item"]["result"] = json!("!!!! not base64 !!!!");
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse().event(&created()).event(&done).end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "");
    let last = run.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("Error: ") && last.contains("ig_bad"),
        "{run}"
    );
    assert_eq!(count_pngs(&default_out_dir(&sandbox)), 0);
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1, "not retried");
}

// ---------------------------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------------------------

#[test]
fn the_request_body_and_headers_follow_codex() {
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let sandbox = authed_sandbox();
    let access = read_json(&sandbox.home().join(".codex/auth.json"))["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let run = run_against(
        &sandbox,
        &server,
        &["--prompt", "  two  spaces  ", "--json"],
    );
    assert_eq!(run.code, 0, "{run}");
    let requests = server.requests_to(RESPONSES_PATH);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, RESPONSES_PATH);
    let body = request.json();
    assert_eq!(
        object_keys(&body),
        vec![
            "model",
            "instructions",
            "input",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "prompt_cache_key",
            "stream",
            "store",
            "reasoning"
        ]
    );
    let request_id = request.header("x-client-request-id").unwrap().to_string();
    let expected = json!({
        "model": "gpt-5.4",
        "instructions": "",
        "input": [{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "  two  spaces  "}
        ]}],
        "tools": [{"type": "image_generation", "output_format": "png"}],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "prompt_cache_key": request_id,
        "stream": true,
        "store": false,
        "reasoning": null,
    });
    assert_eq!(body, expected);

    let header = |name: &str| request.header(name).map(str::to_string);
    assert_eq!(
        header("accept").as_deref(),
        Some("text/event-stream, application/json")
    );
    assert_eq!(header("authorization"), Some(format!("Bearer {access}")));
    assert_eq!(header("chatgpt-account-id").as_deref(), Some("acct-123"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(header("originator").as_deref(), Some("codex_cli_rs"));
    assert_eq!(header("version").as_deref(), Some("0.153.2"));
    assert!(is_uuid_v4(&request_id), "{request_id}");
    assert_eq!(header("thread-id"), Some(request_id.clone()));
    let session = header("session-id").unwrap();
    assert!(is_uuid_v4(&session), "{session}");
    assert_ne!(session, request_id);
    assert_eq!(header("cookie"), None, "no cookie for a non-ChatGPT host");
    let ua = header("user-agent").unwrap();
    assert!(ua.starts_with("codex_cli_rs/0.153.2 ("), "{ua}");
    // HOME-only environment: no TERM_PROGRAM, no TERM.
    assert!(ua.ends_with(") unknown"), "{ua}");
    assert!(ua.chars().all(|c| (' '..='~').contains(&c)), "{ua}");

    let json = run.json();
    assert_eq!(json["request_id"], request_id.as_str());
    assert_eq!(json["session_id"], session.as_str());
}

#[test]
fn codex_version_and_terminal_come_from_the_environment() {
    let server = Server::start();
    server.handle(|_| image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let mut sandbox = authed_sandbox();
    sandbox
        .env("CODEX_IMAGEN_CODEX_VERSION", "9.8.7")
        .env("TERM_PROGRAM", "Tërm")
        .env("TERM_PROGRAM_VERSION", "3.5")
        .env("TERM", "xterm-256color");
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 0, "{run}");
    let request = &server.requests_to(RESPONSES_PATH)[0];
    let ua = request.header("user-agent").unwrap();
    assert!(ua.starts_with("codex_cli_rs/9.8.7 ("), "{ua}");
    assert!(ua.ends_with(") T_rm/3.5"), "{ua}");
    assert_eq!(request.header("version"), Some("9.8.7"));

    let mut sandbox = authed_sandbox();
    sandbox.env("TERM", "xterm-256color");
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 0, "{run}");
    let ua = server.requests_to(RESPONSES_PATH)[1]
        .header("user-agent")
        .unwrap()
        .to_string();
    assert!(ua.ends_with(") xterm-256color"), "{ua}");
}

#[test]
fn every_attempt_gets_fresh_ids() {
    let server = Server::start();
    server.enqueue(
        RESPONSES_PATH,
        Reply::json(503, &json!({"error": {"message": "busy"}})),
    );
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--retries", "1", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let requests = server.requests_to(RESPONSES_PATH);
    assert_eq!(requests.len(), 2);
    let ids: Vec<(String, String, String)> = requests
        .iter()
        .map(|r| {
            let request_id = r.header("x-client-request-id").unwrap().to_string();
            assert_eq!(r.header("thread-id"), Some(request_id.as_str()));
            assert_eq!(r.json()["prompt_cache_key"], request_id.as_str());
            (
                request_id,
                r.header("session-id").unwrap().to_string(),
                r.json()["input"].to_string(),
            )
        })
        .collect();
    assert_ne!(ids[0].0, ids[1].0, "request id per attempt");
    assert_ne!(ids[0].1, ids[1].1, "session id per attempt");
    assert_eq!(ids[0].2, ids[1].2, "same input each attempt");
    let json = run.json();
    assert_eq!(json["request_id"], ids[1].0.as_str());
    assert_eq!(json["session_id"], ids[1].1.as_str());
    assert_eq!(json["retry_attempts"], 1);
    assert_eq!(json["retryAttempts"], 1);
    let lines = progress_lines(&run);
    assert!(
        lines.iter().any(|l| l.starts_with(
            "codex-imagen: transient generation failure (HTTP 503); retrying 1/1 in "
        ) && l.ends_with('s')),
        "{run}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("codex-imagen: generation attempt "))
            .collect::<Vec<_>>(),
        vec![
            "codex-imagen: generation attempt 1/2",
            "codex-imagen: generation attempt 2/2"
        ]
    );
}

#[test]
fn references_are_sniffed_split_and_ordered_files_first() {
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let sandbox = authed_sandbox();
    let work = sandbox.work();
    let png = png_bytes(7, 40);
    let jpeg = [&[0xff, 0xd8, 0xff, 0xe0][..], b"jpeg body"].concat();
    let gif = b"GIF89a gif body".to_vec();
    let gif87 = b"GIF87a old gif".to_vec();
    let webp = b"RIFF\x10\x00\x00\x00WEBPVP8 webp body".to_vec();
    let unknown = b"no magic here".to_vec();
    std::fs::write(work.join("a.png"), &png).unwrap();
    // Magic bytes win over the extension.
    std::fs::write(work.join("photo.png"), &jpeg).unwrap();
    std::fs::write(work.join("anim.dat"), &gif).unwrap();
    std::fs::write(work.join("old.bin"), &gif87).unwrap();
    std::fs::write(work.join("noext"), &webp).unwrap();
    // No magic: the extension decides, case-insensitively.
    std::fs::write(work.join("legacy.JPG"), &unknown).unwrap();
    let data_url = "data:image/png;base64,AAAA,BBBB";
    let run = run_against(
        &sandbox,
        &server,
        &[
            "-i",
            "a.png,photo.png",
            "--image= anim.dat , ,old.bin",
            "--input-ref",
            "noext,https://example.com/ref.png",
            "--input-ref=legacy.JPG",
            "--image-url",
            data_url,
            "--image-url=HTTP://example.com/second.png",
            "--image-detail",
            "low",
            "--prompt",
            " put them together ",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let data = |mime: &str, bytes: &[u8]| format!("data:{mime};base64,{}", b64(bytes));
    let urls = vec![
        data("image/png", &png),
        data("image/jpeg", &jpeg),
        data("image/gif", &gif),
        data("image/gif", &gif87),
        data("image/webp", &webp),
        data("image/jpeg", &unknown),
        "https://example.com/ref.png".to_string(),
        data_url.to_string(),
        "HTTP://example.com/second.png".to_string(),
    ];
    let mut expected = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        expected.push(
            json!({"type": "input_text", "text": format!("<image name=[Image #{}]>", i + 1)}),
        );
        expected.push(json!({"type": "input_image", "image_url": url, "detail": "low"}));
        expected.push(json!({"type": "input_text", "text": "</image>"}));
    }
    expected.push(json!({"type": "input_text", "text": " put them together "}));
    let body = server.requests_to(RESPONSES_PATH)[0].json();
    assert_eq!(body["input"][0]["content"], Value::Array(expected));
    assert!(
        progress_lines(&run).contains(&"codex-imagen: attached 9 reference image(s)".to_string()),
        "{run}"
    );
}

#[test]
fn the_default_detail_is_high_and_no_references_means_no_attach_line() {
    let server = Server::start();
    server.handle(|_| image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stderr.contains("attached"), "{run}");
    let run = run_against(
        &sandbox,
        &server,
        &["x", "--image-url", "https://example.com/a.png"],
    );
    assert_eq!(run.code, 0, "{run}");
    let body = server.requests_to(RESPONSES_PATH)[1].json();
    assert_eq!(body["input"][0]["content"][1]["detail"], "high");
    assert!(
        progress_lines(&run).contains(&"codex-imagen: attached 1 reference image(s)".to_string()),
        "{run}"
    );
}

#[test]
fn an_unsupported_reference_fails_before_any_request() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    std::fs::write(sandbox.work().join("notes.txt"), "hello").unwrap();
    let run = run_against(&sandbox, &server, &["x", "-i", "notes.txt"]);
    assert_eq!(run.code, 1, "{run}");
    let expected = format!(
        "Error: Unsupported image format for {}. Supported: PNG, JPEG, GIF, WebP.",
        real_work(&sandbox).join("notes.txt").display()
    );
    assert_eq!(run.stderr.lines().last(), Some(expected.as_str()), "{run}");
    assert_eq!(run.stdout, "");
    assert!(server.requests_to(RESPONSES_PATH).is_empty());
}

#[test]
fn a_reference_url_that_is_not_http_or_data_image_is_refused() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--image-url", "ftp://host/a.png"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        run.stderr.lines().last(),
        Some("Error: --image-url must be http(s) or data:image URL: ftp://host/a.png"),
        "{run}"
    );
    assert!(server.requests_to(RESPONSES_PATH).is_empty());
}

#[test]
fn a_missing_reference_file_fails_before_any_request() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "-i", "missing.png"]);
    assert_eq!(run.code, 1, "{run}");
    let last = run.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("Error: ") && last.contains("missing.png"),
        "{run}"
    );
    assert!(server.requests_to(RESPONSES_PATH).is_empty());
}

// ---------------------------------------------------------------------------------------------
// --no-stream
// ---------------------------------------------------------------------------------------------

#[test]
fn no_stream_with_one_image_writes_the_exact_output_or_a_name_without_index() {
    let server = Server::start();
    let png = png_bytes(3, 500);
    server.handle(move |_| Reply::json(200, &response_object(&[("ig_1", &png)])));
    let sandbox = authed_sandbox();

    let run = run_against(&sandbox, &server, &["x", "--no-stream", "-o", "one.png"]);
    assert_eq!(run.code, 0, "{run}");
    let exact = real_work(&sandbox).join("one.png");
    assert_eq!(stdout_paths(&run), vec![exact.clone()]);
    assert_eq!(std::fs::read(&exact).unwrap(), png_bytes(3, 500));
    let body = server.requests_to(RESPONSES_PATH)[0].json();
    assert_eq!(body["stream"], false);

    let run = run_against(&sandbox, &server, &["x", "--no-stream", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    let image = &json["images"][0];
    assert_auto_name(
        Path::new(image["path"].as_str().unwrap()),
        &default_out_dir(&sandbox),
        None,
        "ig_1",
    );
    assert_eq!(image["status"], "completed");
    assert_eq!(image["revised_prompt"], "a revised prompt");
    assert_eq!(image["sha256"], sha256_hex(&png_bytes(3, 500)));
    // One payload without `type`/`event`/`item.type`: its type is the literal `object` (as in
    // the Node tool), not a final event, so `partial` is true.
    assert_eq!(image["partial"], true);
    assert_eq!(json["seen_event_types"], json!(["object"]));
    assert_eq!(json["timed_out"], false);
}

#[test]
fn no_stream_with_several_images_pads_the_numbers_to_the_total() {
    let server = Server::start();
    let pngs: Vec<(String, Vec<u8>)> = (1..=10)
        .map(|i| (format!("ig_{i}"), png_bytes(i as u8, 100 + i)))
        .collect();
    let body = {
        let images: Vec<(&str, &[u8])> = pngs
            .iter()
            .map(|(id, b)| (id.as_str(), b.as_slice()))
            .collect();
        response_object(&images)
    };
    server.handle(move |_| Reply::json(200, &body));
    let sandbox = authed_sandbox();

    let run = run_against(&sandbox, &server, &["x", "--no-stream"]);
    assert_eq!(run.code, 0, "{run}");
    let paths = stdout_paths(&run);
    assert_eq!(paths.len(), 10, "{run}");
    for (i, path) in paths.iter().enumerate() {
        assert_auto_name(
            path,
            &default_out_dir(&sandbox),
            Some(&format!("{:02}", i + 1)),
            &pngs[i].0,
        );
        assert_eq!(std::fs::read(path).unwrap(), pngs[i].1);
    }

    let run = run_against(
        &sandbox,
        &server,
        &["x", "--no-stream", "-o", "set/pic.png"],
    );
    assert_eq!(run.code, 0, "{run}");
    let set = real_work(&sandbox).join("set");
    let expected: Vec<PathBuf> = (1..=10)
        .map(|i| set.join(format!("pic-{i:02}.png")))
        .collect();
    assert_eq!(stdout_paths(&run), expected);
    assert!(!set.join("pic.png").exists());
    assert!(!run.stderr.contains("renamed"), "{run}");
}

#[test]
fn no_stream_with_three_images_numbers_without_padding() {
    let server = Server::start();
    let (a, b, c) = (png_bytes(1, 10), png_bytes(2, 10), png_bytes(3, 10));
    server.enqueue(
        RESPONSES_PATH,
        Reply::json(200, &response_object(&[("a", &a), ("b", &b), ("c", &c)])),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--no-stream", "-o", "pic"]);
    assert_eq!(run.code, 0, "{run}");
    let dir = real_work(&sandbox).join("pic");
    let paths = stdout_paths(&run);
    assert_auto_name(&paths[0], &dir, Some("1"), "a");
    assert_auto_name(&paths[1], &dir, Some("2"), "b");
    assert_auto_name(&paths[2], &dir, Some("3"), "c");
}

#[test]
fn no_stream_without_an_image_reports_what_was_seen() {
    let server = Server::start();
    let failed = json!({"id": "resp_1", "object": "response", "status": "failed",
        "error": {"code": "server_error", "message": "The image tool failed"}, "output": []});
    server.handle(move |_| Reply::json(200, &failed));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--no-stream", "--no-retry"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.ends_with(
            "Error: No completed image_generation_call with result found. Seen event types: object\n\
Backend error details:\n  - error code=server_error The image tool failed\n"
        ),
        "{run}"
    );
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1);

    // server_error is transient: with retries it is tried again.
    let run = run_against(&sandbox, &server, &["x", "--no-stream", "--retries", "1"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(
            "codex-imagen: transient generation failure (server_error); retrying 1/1 in "
        ),
        "{run}"
    );
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Progress, --quiet, --verbose, --json
// ---------------------------------------------------------------------------------------------

fn full_stream(preview: &[u8], png: &[u8]) -> Reply {
    Reply::sse()
        .event(&created())
        .event(&json!({"type": "response.in_progress", "response": {"id": "resp_1", "status": "in_progress"}}))
        .event(&item_added("ig_1"))
        .event(&in_progress("ig_1"))
        .event(&generating("ig_1"))
        .event(&generating("ig_1"))
        .event(&partial_image("ig_1", preview))
        .event(&partial_image("ig_1", preview))
        .event(&image_done("ig_1", png))
        .event(&completed(&[("ig_1", png)]))
        .end()
}

#[test]
fn progress_lines_follow_the_stream_once_each() {
    let server = Server::start();
    let (preview, png) = (png_bytes(1, 100), png_bytes(2, 200));
    server.enqueue(RESPONSES_PATH, full_stream(&preview, &png));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 0, "{run}");
    let path = stdout_paths(&run)[0].display().to_string();
    let endpoint = format!("{}{RESPONSES_PATH}", server.addr);
    assert_eq!(
        progress_lines(&run),
        vec![
            "codex-imagen: generation attempt 1/5".to_string(),
            format!("codex-imagen: POST {endpoint}"),
            "codex-imagen: backend responses".to_string(),
            "codex-imagen: model gpt-5.4".to_string(),
            "codex-imagen: request accepted".to_string(),
            "codex-imagen: image generation started".to_string(),
            "codex-imagen: image generation running".to_string(),
            "codex-imagen: image bytes received".to_string(),
            format!("codex-imagen: saved image 1: {path}"),
            format!("codex-imagen: updated image 1: {path}"),
            "codex-imagen: response completed".to_string(),
        ],
        "{run}"
    );
    assert_eq!(
        run.stderr.lines().count(),
        11,
        "nothing but progress lines\n{run}"
    );
    assert!(!run.stderr.contains("event: "), "{run}");
    assert!(!run.stderr.contains("request_id"), "{run}");
}

#[test]
fn model_flag_is_sent_and_announced() {
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let sandbox = authed_sandbox();
    let run = run_against(
        &sandbox,
        &server,
        &["x", "--model", "gpt-5.5", "--no-retry"],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        server.requests_to(RESPONSES_PATH)[0].json()["model"],
        "gpt-5.5"
    );
    let lines = progress_lines(&run);
    assert!(
        lines.contains(&"codex-imagen: model gpt-5.5".to_string()),
        "{run}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("generation attempt")),
        "one attempt in total: no attempt lines\n{run}"
    );
}

#[test]
fn quiet_prints_nothing_on_stderr() {
    let server = Server::start();
    let (preview, png) = (png_bytes(1, 100), png_bytes(2, 200));
    server.enqueue(RESPONSES_PATH, full_stream(&preview, &png));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--quiet"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stderr, "", "{run}");
    assert_eq!(stdout_paths(&run).len(), 1);
    assert_eq!(std::fs::read(stdout_paths(&run)[0].clone()).unwrap(), png);
}

#[test]
fn quiet_still_prints_the_error() {
    let server = Server::start();
    server.enqueue(
        RESPONSES_PATH,
        Reply::json(400, &json!({"error": {"message": "bad model"}})),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--quiet"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        run.stderr,
        "Error: HTTP 400 Bad Request\n{\"error\":{\"message\":\"bad model\"}}\n"
    );
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1, "4xx is final");
}

#[test]
fn verbose_adds_event_lines_and_the_request_id() {
    let server = Server::start();
    let (preview, png) = (png_bytes(1, 100), png_bytes(2, 200));
    server.enqueue(RESPONSES_PATH, full_stream(&preview, &png));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--verbose"]);
    assert_eq!(run.code, 0, "{run}");
    let request_id = server.requests_to(RESPONSES_PATH)[0]
        .header("x-client-request-id")
        .unwrap()
        .to_string();
    assert!(
        run.stderr
            .lines()
            .any(|l| l == format!("request_id: {request_id}")),
        "{run}"
    );
    let events: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        events,
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.image_generation_call.in_progress",
            "response.image_generation_call.generating",
            "response.image_generation_call.generating",
            "response.image_generation_call.partial_image",
            "response.image_generation_call.partial_image",
            "response.output_item.done",
            "response.completed",
        ],
        "{run}"
    );
    // The progress lines are all still there.
    assert!(progress_lines(&run).len() >= 11, "{run}");
}

#[test]
fn debug_is_an_alias_for_verbose() {
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--debug"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("\nevent: response.created\n"), "{run}");
}

#[test]
fn json_summary_has_the_spec_keys_in_order() {
    let server = Server::start();
    let (a, b) = (png_bytes(1, 1234), png_bytes(2, 4321));
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_a", &a), ("ig_b", &b)]));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.starts_with("{\n  \"request_id\": \""), "{run}");
    assert!(run.stdout.ends_with("}\n"), "{run}");
    let json = run.json();
    assert_eq!(
        object_keys(&json),
        vec![
            "request_id",
            "session_id",
            "endpoint",
            "operation",
            "model",
            "image_count",
            "imageCount",
            "images",
            "seen_event_types",
            "timed_out",
            "response_metadata",
            // Appended by issue #11: the controls asked for (`{}` here).
            "requested"
        ]
    );
    let request = &server.requests_to(RESPONSES_PATH)[0];
    assert_eq!(
        json["request_id"],
        request.header("x-client-request-id").unwrap()
    );
    assert_eq!(json["session_id"], request.header("session-id").unwrap());
    assert_eq!(
        json["endpoint"],
        format!("{}{RESPONSES_PATH}", server.addr).as_str()
    );
    assert_eq!(json["operation"], "responses image_generation");
    assert_eq!(json["model"], "gpt-5.4");
    assert_eq!(json["image_count"], 2);
    assert_eq!(json["imageCount"], 2);
    assert_eq!(
        json["seen_event_types"],
        json!([
            "response.created",
            "response.output_item.done",
            "response.completed"
        ])
    );
    assert_eq!(json["timed_out"], false);
    assert_eq!(json["response_metadata"], Value::Null);
    let dir = default_out_dir(&sandbox);
    for (i, (id, bytes)) in [("ig_a", &a), ("ig_b", &b)].iter().enumerate() {
        let image = &json["images"][i];
        assert_eq!(
            object_keys(image),
            vec![
                "path",
                "decodedPath",
                "bytes",
                "sha256",
                "call_id",
                "status",
                "partial",
                "revised_prompt",
                // Appended by issue #11: what the bytes are.
                "format",
                "width",
                "height",
                "has_alpha",
                "c2pa"
            ]
        );
        let path = PathBuf::from(image["path"].as_str().unwrap());
        assert_auto_name(&path, &dir, Some(&(i + 1).to_string()), id);
        assert_eq!(image["decodedPath"], image["path"]);
        assert_eq!(image["bytes"], bytes.len());
        assert_eq!(image["sha256"], sha256_hex(bytes));
        assert_eq!(
            sha256_hex(&std::fs::read(&path).unwrap()),
            sha256_hex(bytes)
        );
        assert_eq!(image["call_id"], *id);
        assert_eq!(image["status"], "completed");
        assert_eq!(image["partial"], false);
        assert_eq!(image["revised_prompt"], "a revised prompt");
    }
}

#[test]
fn references_keep_command_line_order_within_files_and_within_urls() {
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let sandbox = authed_sandbox();
    let work = sandbox.work();
    let (a, b, c) = (png_bytes(1, 10), png_bytes(2, 10), png_bytes(3, 10));
    std::fs::write(work.join("a.png"), &a).unwrap();
    std::fs::write(work.join("b.png"), &b).unwrap();
    std::fs::write(work.join("c.png"), &c).unwrap();
    let run = run_against(
        &sandbox,
        &server,
        &[
            "--image-url",
            "https://example.com/u1.png",
            "--input-ref",
            "b.png,https://example.com/u2.png",
            "-i",
            "a.png",
            "--image-url",
            "https://example.com/u3.png",
            "--input-ref",
            "c.png",
            "--prompt",
            "mix",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let body = server.requests_to(RESPONSES_PATH)[0].json();
    let urls: Vec<String> = body["input"][0]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "input_image")
        .map(|c| c["image_url"].as_str().unwrap().to_string())
        .collect();
    let data = |bytes: &[u8]| format!("data:image/png;base64,{}", b64(bytes));
    assert_eq!(
        urls,
        vec![
            data(&b),
            data(&a),
            data(&c),
            "https://example.com/u1.png".to_string(),
            "https://example.com/u2.png".to_string(),
            "https://example.com/u3.png".to_string(),
        ]
    );
}

#[test]
fn interleaved_partials_of_two_calls_with_an_output_file() {
    let server = Server::start();
    let (pa0, pa1, pb0) = (png_bytes(10, 50), png_bytes(11, 60), png_bytes(20, 50));
    let (fa, fb) = (png_bytes(12, 500), png_bytes(21, 600));
    let mut pa1_event = partial_image("ig_a", &pa1);
    pa1_event["partial_image_index"] = json!(1);
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&partial_image("ig_a", &pa0))
            .event(&partial_image("ig_b", &pb0))
            .event(&pa1_event)
            .event(&image_done("ig_a", &fa))
            .event(&image_done("ig_b", &fb))
            .event(&completed(&[("ig_a", &fa), ("ig_b", &fb)]))
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "-o", "pic.png", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let work = real_work(&sandbox);
    let (p1, p2) = (work.join("pic-1.png"), work.join("pic-2.png"));
    assert_eq!(std::fs::read(&p1).unwrap(), fa);
    assert_eq!(std::fs::read(&p2).unwrap(), fb);
    assert!(!work.join("pic.png").exists());
    let touched: Vec<String> = progress_lines(&run)
        .into_iter()
        .filter(|l| l.contains(" image 1: ") || l.contains(" image 2: ") || l.contains("renamed"))
        .collect();
    assert_eq!(
        touched,
        vec![
            format!(
                "codex-imagen: saved image 1: {}",
                work.join("pic.png").display()
            ),
            format!(
                "codex-imagen: renamed first image for multi-output: {}",
                p1.display()
            ),
            format!("codex-imagen: saved image 2: {}", p2.display()),
            format!("codex-imagen: updated image 1: {}", p1.display()),
            format!("codex-imagen: updated image 1: {}", p1.display()),
            format!("codex-imagen: updated image 2: {}", p2.display()),
        ],
        "{run}"
    );
    let json = run.json();
    assert_eq!(json["images"][0]["path"], p1.to_str().unwrap());
    assert_eq!(json["images"][0]["sha256"], sha256_hex(&fa));
    assert_eq!(json["images"][1]["sha256"], sha256_hex(&fb));
    assert_eq!(json["images"][1]["partial"], false);
}

#[test]
fn images_that_only_arrive_in_response_completed_are_saved() {
    let server = Server::start();
    let (a, b) = (png_bytes(1, 80), png_bytes(2, 90));
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&completed(&[("ig_a", &a), ("ig_b", &b)]))
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    assert_eq!(json["image_count"], 2);
    for (i, bytes) in [&a, &b].iter().enumerate() {
        let image = &json["images"][i];
        assert_eq!(image["sha256"], sha256_hex(bytes));
        assert_eq!(image["partial"], false);
        assert_eq!(
            std::fs::read(image["path"].as_str().unwrap()).unwrap(),
            **bytes
        );
    }
}

#[test]
fn a_revised_prompt_with_multibyte_text_survives_one_byte_writes() {
    let server = Server::start();
    let png = png_bytes(1, 50);
    let mut done = image_done("ig_1", &png);
    done["item"]["revised_prompt"] = json!("ein Würfel — 赤い立方体 🟥");
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event_in_pieces(&done, 1)
            .event(&json!({"type": "response.completed",
                "response": {"id": "resp_1", "status": "completed", "output": []}}))
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        run.json()["images"][0]["revised_prompt"],
        "ein Würfel — 赤い立方体 🟥"
    );
}

#[test]
fn an_output_directory_that_is_a_file_fails_with_its_path() {
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let sandbox = authed_sandbox();
    std::fs::write(sandbox.work().join("taken"), "a file").unwrap();
    let run = run_against(&sandbox, &server, &["x", "--out-dir", "taken"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "");
    let last = run.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("Error: ") && last.contains("taken"),
        "{run}"
    );
    // Checked before paying (issue #20): the image would have been lost, so nothing is sent.
    assert_eq!(server.requests().len(), 0, "the backend saw a request");
}

#[test]
fn a_tilde_in_output_paths_means_home() {
    let server = Server::start();
    server.handle(|_| image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let mut sandbox = authed_sandbox();
    let home = sandbox.home();
    let run = run_against(&sandbox, &server, &["x", "-o", "~/pics/one.png"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(stdout_paths(&run), vec![home.join("pics/one.png")]);
    let run = run_against(&sandbox, &server, &["x", "--out-dir", "~/flag"]);
    assert_eq!(run.code, 0, "{run}");
    assert_auto_name(
        &stdout_paths(&run)[0],
        &home.join("flag"),
        Some("1"),
        "ig_1",
    );
    sandbox.env("CODEX_IMAGEN_OUT_DIR", "~/env");
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 0, "{run}");
    assert_auto_name(&stdout_paths(&run)[0], &home.join("env"), Some("1"), "ig_1");
}

#[test]
fn reported_paths_are_normalised_like_node_path_resolve() {
    let server = Server::start();
    server.handle(|_| image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "-o", "./a/./b/../../pic.png"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        stdout_paths(&run),
        vec![real_work(&sandbox).join("pic.png")]
    );
    let run = run_against(&sandbox, &server, &["x", "--out-dir", "./d//e/../f/"]);
    assert_eq!(run.code, 0, "{run}");
    assert_auto_name(
        &stdout_paths(&run)[0],
        &real_work(&sandbox).join("d/f"),
        Some("1"),
        "ig_1",
    );
}

#[test]
fn a_large_reference_gets_a_warning_with_its_data_url_size() {
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let sandbox = authed_sandbox();
    let mut big = vec![0xff, 0xd8, 0xff, 0xe0];
    big.resize(12_000_000, 7);
    std::fs::write(sandbox.work().join("big.jpg"), &big).unwrap();
    let run = run_against(&sandbox, &server, &["x", "-i", "big.jpg"]);
    assert_eq!(run.code, 0, "{run}");
    let expected_len = "data:image/jpeg;base64,".len() + 16_000_000;
    let warning = format!(
        "codex-imagen: warning: reference image is large after base64 ({expected_len} bytes): {}",
        real_work(&sandbox).join("big.jpg").display()
    );
    assert!(progress_lines(&run).contains(&warning), "{run}");
    let body = server.requests_to(RESPONSES_PATH)[0].json();
    assert_eq!(
        body["input"][0]["content"][1]["image_url"]
            .as_str()
            .unwrap()
            .len(),
        expected_len
    );
}
