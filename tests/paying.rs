//! Nothing paid for is lost (issue #20): the output location is checked before any request in
//! every front-end (the backend's hit count stays 0), an image whose write fails after it
//! arrived is kept under the data directory's `rescued/`, and a batch killed between saving an
//! image and recording it does not pay for that image again.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

fn real_png(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([seed, x as u8 * 30, y as u8 * 30]));
    encode(image::DynamicImage::ImageRgb8(img), image::ImageFormat::Png)
}

/// A backend answering every generation with a real PNG (distinct per prompt) and every
/// refresh with a fresh token.
fn serving_real_images() -> Server {
    let server = Server::start();
    server.handle(|req| {
        if req.path.starts_with("/oauth/token") {
            return Reply::json(
                200,
                &json!({"access_token": jwt(now_secs() + 3600), "refresh_token": "r", "expires_in": 3600}),
            );
        }
        let prompt = prompt_of(req);
        let png = real_png(prompt.len() as u8);
        image_stream(&[("ig_1", &png)])
    });
    server
}

/// The prompt text of a Responses request.
fn prompt_of(req: &Request) -> String {
    let body = req.json();
    let content = &body["input"][0]["content"];
    content
        .as_array()
        .and_then(|parts| {
            parts
                .iter()
                .find_map(|p| p["text"].as_str().map(str::to_string))
        })
        .unwrap_or_default()
}

fn generations(server: &Server) -> Vec<String> {
    server
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(prompt_of)
        .collect()
}

#[test]
fn an_unwritable_output_fails_with_exit_1_before_any_request() {
    let server = serving_real_images();
    let sandbox = authed_sandbox();
    std::fs::write(sandbox.work().join("file.txt"), b"not a folder").unwrap();
    std::fs::write(sandbox.work().join("prompt.txt"), b"a fox").unwrap();
    let cases: [&[&str]; 4] = [
        &["a fox", "-o", "file.txt/x.png"],
        &["a fox", "-o", "/proc/x.png"],
        &["a fox", "--out-dir", "file.txt/sub"],
        &["--prompt-file", "prompt.txt", "-o", "file.txt/x.png"],
    ];
    for args in cases {
        let run = run_against(&sandbox, &server, args);
        assert_eq!(run.code, 1, "{args:?}\n{run}");
        let shown = if args.contains(&"/proc/x.png") {
            "/proc".to_string()
        } else {
            real_work(&sandbox).join("file.txt").display().to_string()
        };
        assert!(run.stderr.contains(&shown), "{args:?}\n{run}");
        assert!(run.stderr.contains("os error"), "the OS reason\n{run}");
        assert!(run.stderr.contains("Nothing was sent"), "{run}");
        assert!(run.stdout.is_empty(), "{run}");
    }
    // The flag that chose the directory is named when the prompt is on the command line.
    let run = run_against(&sandbox, &server, &["a fox", "-o", "file.txt/x.png"]);
    assert!(run.stderr.contains("(--output)"), "{run}");
    let run = run_against(&sandbox, &server, &["a fox", "--out-dir", "file.txt/sub"]);
    assert!(run.stderr.contains("(--out-dir)"), "{run}");
    // A usage error keeps its exit code 2 and comes first.
    let run = run_against(&sandbox, &server, &["-o", "file.txt/x.png"]);
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(server.requests().len(), 0, "the backend saw a request");
    // Nothing was left behind by the probe where it could write.
    let run = run_against(&sandbox, &server, &["a fox", "-o", "fine/x.png"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(file_names(&real_work(&sandbox).join("fine")), ["x.png"]);
}

#[test]
fn a_batch_line_whose_output_cannot_be_written_fails_alone_and_is_not_sent() {
    let server = serving_real_images();
    let sandbox = authed_sandbox();
    std::fs::write(sandbox.work().join("file.txt"), b"not a folder").unwrap();
    std::fs::write(
        sandbox.work().join("b.jsonl"),
        "{\"id\": \"bad\", \"prompt\": \"blocked\", \"output\": \"file.txt/a.png\"}\n\
         {\"id\": \"good\", \"prompt\": \"fine\"}\n",
    )
    .unwrap();
    let run = run_against(
        &sandbox,
        &server,
        &["--batch", "b.jsonl", "--out-dir", "out", "--json"],
    );
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(generations(&server), ["fine"]);
    let results = read_lines(&real_work(&sandbox).join("out/results.jsonl"));
    let bad = results.iter().find(|r| r["id"] == "bad").unwrap();
    assert_eq!(bad["status"], "failed");
    let message = bad["error"]["message"].as_str().unwrap();
    assert!(message.contains("file.txt"), "{message}");
    assert!(message.contains("Nothing was sent"), "{message}");
    let good = results.iter().find(|r| r["id"] == "good").unwrap();
    assert_eq!(good["status"], "succeeded");
}

#[test]
fn an_mcp_output_dir_that_cannot_be_written_is_an_error_result_naming_it() {
    let server = serving_real_images();
    let sandbox = authed_sandbox();
    std::fs::write(sandbox.work().join("file.txt"), b"not a folder").unwrap();
    let sargs = server_args(&server);
    let mut child = sandbox
        .command(&with_server(&sargs, &["--mcp", "--out-dir", "out"]))
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(value);
            }
        }
    });
    let mut send = |value: Value| {
        writeln!(stdin, "{value}").unwrap();
        stdin.flush().unwrap();
    };
    let answer = |id: i64| loop {
        let value = rx.recv_timeout(Duration::from_secs(20)).expect("an answer");
        if value["id"] == id {
            return value;
        }
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}}),
    );
    answer(1);
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "generate_image",
        "arguments": {"prompt": "a fox", "output_dir": "file.txt/sub"}}}),
    );
    let result = answer(2)["result"].clone();
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("output_dir"), "{text}");
    assert!(text.contains("file.txt"), "{text}");
    assert!(text.contains("os error"), "{text}");
    assert_eq!(server.requests().len(), 0, "the backend saw a request");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_image_that_cannot_be_written_after_it_arrived_is_kept_under_rescued() {
    let server = Server::start();
    let png = real_png(7);
    let sandbox = authed_sandbox();
    let out = real_work(&sandbox).join("out");
    {
        let (png, out) = (png.clone(), out.clone());
        server.handle(move |_| {
            let out = out.clone();
            // While the image is on its way, the output folder becomes a file: the probe passed,
            // the write cannot.
            let replace = Step::Check(Box::new(move || {
                std::fs::remove_dir_all(&out).unwrap();
                std::fs::write(&out, b"in the way").unwrap();
            }));
            Reply::sse()
                .event(&created())
                .step(replace)
                .event(&image_done("ig_1", &png))
                .event(&completed(&[("ig_1", &png)]))
                .end()
        });
    }
    let run = run_against(
        &sandbox,
        &server,
        &["a fox", "-o", "out/pic.png", "--data-dir", "data", "--json"],
    );
    assert_eq!(run.code, 0, "{run}");
    let rescued = real_work(&sandbox).join("data/rescued/pic.png");
    assert_eq!(std::fs::read(&rescued).unwrap(), png, "{run}");
    let image = &run.json()["images"][0];
    assert_eq!(image["path"], rescued.display().to_string());
    assert_eq!(image["rescued"], true);
    assert_eq!(
        image["rescued_from"],
        out.join("pic.png").display().to_string()
    );
    assert!(
        run.stderr
            .contains(&format!("the image is kept at {}", rescued.display())),
        "{run}"
    );
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1);
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_batch_killed_between_saving_and_recording_adopts_the_image_without_paying_again() {
    let server = serving_real_images();
    let mut sandbox = authed_sandbox();
    std::fs::write(sandbox.work().join("b.txt"), "first\nsecond\n").unwrap();
    let args = ["--batch", "b.txt", "--out-dir", "out", "--jobs", "1"];
    let results_path = real_work(&sandbox).join("out/results.jsonl");

    // The hook kills the process once line-1's image is saved, before its line is written.
    sandbox.env("CODEX_IMAGEN_TEST_KILL_BEFORE_RECORD", "line-1");
    let run = run_against(&sandbox, &server, &args);
    assert_ne!(run.code, 0, "{run}");
    let saved = real_work(&sandbox).join("out/line-1-1.png");
    assert!(saved.is_file(), "{run}");
    let text = std::fs::read_to_string(&results_path).unwrap_or_default();
    assert!(
        !text.contains("line-1"),
        "the kill came before the record: {text}"
    );
    assert_eq!(generations(&server), ["first"]);

    // The rerun adopts it: no request for "first", one `adopted` line, the image reported.
    let mut sandbox = sandbox;
    sandbox.env("CODEX_IMAGEN_TEST_KILL_BEFORE_RECORD", "");
    let run = run_against(&sandbox, &server, &[&args[..], &["--json"]].concat());
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(generations(&server), ["first", "second"]);
    let summary = run.json();
    assert_eq!(summary["succeeded"], 2, "{run}");
    assert_eq!(summary["skipped"], 0, "{run}");
    assert!(summary["images"]
        .as_array()
        .unwrap()
        .contains(&json!(saved.display().to_string())));
    assert!(run.stderr.contains("adopted image 1"), "{run}");
    let records = read_lines(&results_path);
    let adopted: Vec<&Value> = records.iter().filter(|r| r["id"] == "line-1").collect();
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0]["status"], "adopted");
    assert_eq!(adopted[0]["attempts"], 0);
    assert_eq!(
        adopted[0]["images"][0]["sha256"],
        sha256_hex(&std::fs::read(&saved).unwrap())
    );

    // Further reruns send nothing and add no line.
    let before = std::fs::read(&results_path).unwrap();
    for _ in 0..2 {
        let run = run_against(&sandbox, &server, &[&args[..], &["--json"]].concat());
        assert_eq!(run.code, 0, "{run}");
        assert_eq!(run.json()["skipped"], 2, "{run}");
    }
    assert_eq!(std::fs::read(&results_path).unwrap(), before);
    assert_eq!(generations(&server).len(), 2);
}

#[test]
fn a_second_image_arriving_after_its_folder_was_replaced_is_rescued_too() {
    let server = Server::start();
    let (one, two) = (real_png(1), real_png(2));
    let sandbox = authed_sandbox();
    let out = real_work(&sandbox).join("out");
    {
        let (one, two, out) = (one.clone(), two.clone(), out.clone());
        server.handle(move |_| {
            let (out, out_dir) = (out.clone(), out.clone());
            // Once the first image is saved, its folder becomes a file.
            let replace = Step::Check(Box::new(move || {
                std::fs::remove_dir_all(&out).unwrap();
                std::fs::write(&out, b"in the way").unwrap();
            }));
            Reply::sse()
                .event(&created())
                .event(&image_done("ig_1", &one))
                .step(Step::AwaitPng(out_dir))
                .step(replace)
                .event(&image_done("ig_2", &two))
                .event(&completed(&[("ig_1", &one), ("ig_2", &two)]))
                .end()
        });
    }
    let run = run_against(
        &sandbox,
        &server,
        &["a fox", "-o", "out/pic.png", "--data-dir", "data", "--json"],
    );
    assert_eq!(run.code, 0, "{run}");
    let images = run.json()["images"].as_array().unwrap().clone();
    assert_eq!(images.len(), 2, "{run}");
    let rescued = real_work(&sandbox).join("data/rescued/pic-2.png");
    assert_eq!(images[1]["path"], rescued.display().to_string(), "{run}");
    assert_eq!(images[1]["rescued"], true);
    assert_eq!(std::fs::read(&rescued).unwrap(), two);
    assert!(images[0].get("rescued").is_none(), "{run}");
}
