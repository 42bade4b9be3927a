//! The history every front-end records (`<data dir>/history.sqlite`) and `--history [TEXT]`:
//! the real binary against the loopback backend, each test with its own HOME and data dir.

mod support;

use serde_json::Value;
use support::*;

fn one_image(server: &Server) {
    server.handle(|request| {
        let seed = (request.body.len() % 200) as u8;
        let png = encode(
            image::DynamicImage::new_rgb8(32 + seed as u32 % 16, 32),
            image::ImageFormat::Png,
        );
        image_stream(&[("ig_1", &png)])
    });
}

#[test]
fn the_cli_count_and_batch_record_each_image_and_history_lists_them() {
    let server = Server::start();
    one_image(&server);
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let data_text = data.display().to_string();
    let run = run_against(
        &sandbox,
        &server,
        &["a quiet harbour", "--data-dir", &data_text],
    );
    assert_eq!(run.code, 0, "{run}");
    let run = run_against(
        &sandbox,
        &server,
        &["two cats", "--count", "2", "--data-dir", &data_text],
    );
    assert_eq!(run.code, 0, "{run}");
    std::fs::write(sandbox.work().join("jobs.txt"), "a batch owl\n").unwrap();
    let run = run_against(
        &sandbox,
        &server,
        &["--batch", "jobs.txt", "--data-dir", &data_text],
    );
    assert_eq!(run.code, 0, "{run}");

    let listed = sandbox.run(&["--history", "--json", "--data-dir", &data_text]);
    assert_eq!(listed.code, 0, "{listed}");
    let rows: Value = serde_json::from_str(&listed.stdout).unwrap();
    let prompts: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(
        prompts,
        ["a batch owl", "two cats", "two cats", "a quiet harbour"],
        "newest first"
    );
    let first = &rows[3];
    assert_eq!(first["revised_prompt"], "a revised prompt");
    assert_eq!(first["format"], "png");
    assert_eq!(first["height"], 32);
    assert_eq!(first["missing"], false);
    assert_eq!(first["account"], "acct-123", "{first}");
    assert!(std::path::Path::new(first["path"].as_str().unwrap()).is_absolute());

    // Text search, plain output.
    let cats = sandbox.run(&["--history", "two", "CATS", "--data-dir", &data_text]);
    assert_eq!(cats.code, 0, "{cats}");
    assert_eq!(cats.stdout.lines().count(), 2, "{cats}");
    assert!(
        cats.stdout.lines().all(|l| l.ends_with("\ttwo cats")),
        "{cats}"
    );

    // --open belongs to --serve.
    let open = sandbox.run(&["--open"]);
    assert_eq!(open.code, 2, "{open}");
    assert!(open.stderr.contains("--open requires --serve"), "{open}");

    // The file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("history.sqlite"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn an_edit_records_the_image_it_was_made_from_as_its_parent() {
    let server = Server::start();
    one_image(&server);
    let sandbox = authed_sandbox();
    let data_text = sandbox.path("data").display().to_string();
    let run = run_against(
        &sandbox,
        &server,
        &["the original", "--data-dir", &data_text],
    );
    assert_eq!(run.code, 0, "{run}");
    let original = stdout_paths(&run).remove(0);
    let original_text = original.display().to_string();
    let run = run_against(
        &sandbox,
        &server,
        &[
            "make it blue",
            "-i",
            &original_text,
            "--data-dir",
            &data_text,
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let rows: Value = serde_json::from_str(
        &sandbox
            .run(&["--history", "--json", "--data-dir", &data_text])
            .stdout,
    )
    .unwrap();
    assert_eq!(rows[0]["prompt"], "make it blue");
    assert_eq!(rows[0]["parent"], rows[1]["id"], "{rows}");
    assert_eq!(
        rows[0]["references"][0]["sha256"], rows[1]["sha256"],
        "{rows}"
    );
}

#[test]
fn no_history_and_the_variable_turn_recording_off_and_a_broken_history_fails_nothing() {
    let server = Server::start();
    one_image(&server);
    let mut sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let data_text = data.display().to_string();
    let run = run_against(
        &sandbox,
        &server,
        &["unrecorded", "--no-history", "--data-dir", &data_text],
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(!data.join("history.sqlite").exists());
    sandbox.env("CODEX_IMAGEN_HISTORY", "0");
    let run = run_against(&sandbox, &server, &["unrecorded", "--data-dir", &data_text]);
    assert_eq!(run.code, 0, "{run}");
    assert!(!data.join("history.sqlite").exists());
    // An empty history lists nothing and creates nothing.
    let listed = sandbox.run(&["--history", "--data-dir", &data_text]);
    assert_eq!((listed.code, listed.stdout.as_str()), (0, ""), "{listed}");
    assert!(!data.exists());

    // A data dir that is a file: the image is still made, exit 0.
    let blocked = sandbox.path("blocked");
    std::fs::write(&blocked, "not a directory").unwrap();
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_DATA_DIR", &blocked);
    let run = run_against(&sandbox, &server, &["still saved"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(stdout_paths(&run).len(), 1, "{run}");
}
