//! The Responses stream at its edges: SSE framing however the bytes arrive, streams that end
//! early or break, backends that report errors instead of images, and the timeouts (including
//! the hard watchdog).

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

/// Append `text` to a chunked reply in pieces of `size` bytes, one chunk (TCP write) each.
fn raw_in_pieces(mut reply: Reply, text: &str, size: usize) -> Reply {
    for piece in text.as_bytes().chunks(size) {
        reply = reply
            .step(Step::Chunk(piece.to_vec()))
            .step(Step::Sleep(Duration::from_millis(1)));
    }
    reply
}

fn last_line(run: &Run) -> &str {
    run.stderr.lines().last().unwrap_or("")
}

fn only_png(run: &Run, sandbox: &Sandbox) -> Vec<u8> {
    let dir = default_out_dir(sandbox);
    assert_eq!(count_pngs(&dir), 1, "{run}");
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "png"))
        .unwrap();
    std::fs::read(entry.path()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// SSE framing
// ---------------------------------------------------------------------------------------------

#[test]
fn crlf_framed_events_are_understood_in_any_piece_size() {
    let png = png_bytes(1, 300);
    let text = format!(
        "event: response.created\r\ndata: {}\r\n\r\n\
event: response.output_item.done\r\ndata: {}\r\n\r\n\
event: response.completed\r\ndata: {}\r\n\r\n",
        created(),
        image_done("ig_1", &png),
        completed(&[("ig_1", &png)])
    );
    for size in [1, 2, 7, 13, 333, text.len()] {
        let server = Server::start();
        server.enqueue(
            RESPONSES_PATH,
            raw_in_pieces(Reply::sse(), &text, size).end(),
        );
        let sandbox = authed_sandbox();
        let run = run_against(&sandbox, &server, &["x", "--json"]);
        assert_eq!(run.code, 0, "piece size {size}\n{run}");
        assert_eq!(only_png(&run, &sandbox), png, "piece size {size}");
        assert_eq!(
            run.json()["seen_event_types"],
            json!([
                "response.created",
                "response.output_item.done",
                "response.completed"
            ]),
            "piece size {size}"
        );
    }
}

#[test]
fn one_event_split_over_many_writes_is_reassembled() {
    for size in [1, 7, 64, 1000] {
        let server = Server::start();
        let png = png_bytes(2, 400);
        server.enqueue(
            RESPONSES_PATH,
            Reply::sse()
                .event(&created())
                .event_in_pieces(&image_done("ig_1", &png), size)
                .event_in_pieces(&completed(&[("ig_1", &png)]), size)
                .end(),
        );
        let sandbox = authed_sandbox();
        let run = run_against(&sandbox, &server, &["x"]);
        assert_eq!(run.code, 0, "piece size {size}\n{run}");
        assert_eq!(only_png(&run, &sandbox), png, "piece size {size}");
        assert!(!run.stderr.contains("updated image"), "{run}");
    }
}

#[test]
fn a_large_image_in_odd_sized_writes_arrives_intact() {
    let server = Server::start();
    let png = png_bytes(3, 1 << 20);
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event_in_pieces(&image_done("ig_1", &png), 4093)
            .event(&completed(&[("ig_1", &png)]))
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let image = &run.json()["images"][0];
    assert_eq!(image["bytes"], png.len());
    assert_eq!(image["sha256"], sha256_hex(&png));
    assert_eq!(only_png(&run, &sandbox), png);
}

#[test]
fn comments_multi_line_data_non_json_and_done_markers() {
    let server = Server::start();
    let png = png_bytes(4, 200);
    let done = image_done("ig_1", &png).to_string();
    let text = format!(
        ": a comment line\n\n\
: another comment\nevent: response.created\ndata: {{\"type\": \"response.created\",\ndata: \"response\": {{\"id\": \"resp_1\"}}}}\n\n\
event: keepalive\ndata: ping\n\n\
data: not json either\n\n\
event: response.in_progress\n\n\
data:{{\"type\":\"response.in_progress\"}}\n\n\
data: [DONE]\n\n\
event: whatever\ndata: {done}\n\n\
{}",
        sse_event(&completed(&[("ig_1", &png)]))
    );
    server.enqueue(RESPONSES_PATH, raw_in_pieces(Reply::sse(), &text, 5).end());
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json", "--verbose"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(only_png(&run, &sandbox), png);
    let json = run.json();
    assert_eq!(
        json["seen_event_types"],
        json!([
            "response.created",
            "unparsed:keepalive",
            "unparsed:message",
            "response.in_progress",
            "response.output_item.done",
            "response.completed"
        ]),
        "{run}"
    );
    // The payload's own type names it, not the SSE `event:` field; unparsed events are not echoed.
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
            "response.output_item.done",
            "response.completed"
        ],
        "{run}"
    );
}

#[test]
fn a_last_event_without_a_blank_line_is_still_processed() {
    let png = png_bytes(5, 200);
    let tail = format!(
        "event: response.completed\ndata: {}",
        completed(&[("ig_1", &png)])
    );
    let chunked = Reply::sse()
        .event(&created())
        .event(&image_done("ig_1", &png))
        .chunk(&tail)
        .end();
    let until_close = Reply::sse_until_close()
        .step(Step::Raw(sse_event(&created()).into_bytes()))
        .step(Step::Raw(sse_event(&image_done("ig_1", &png)).into_bytes()))
        .step(Step::Raw(format!("{tail}\n").into_bytes()));
    for (name, reply) in [("chunked", chunked), ("until close", until_close)] {
        let server = Server::start();
        server.enqueue(RESPONSES_PATH, reply);
        let sandbox = authed_sandbox();
        let run = run_against(&sandbox, &server, &["x", "--json"]);
        assert_eq!(run.code, 0, "{name}\n{run}");
        assert_eq!(
            run.json()["seen_event_types"],
            json!([
                "response.created",
                "response.output_item.done",
                "response.completed"
            ]),
            "{name}"
        );
        assert!(
            progress_lines(&run).contains(&"codex-imagen: response completed".to_string()),
            "{name}\n{run}"
        );
    }
}

#[test]
fn the_image_is_on_disk_before_response_completed_is_sent() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    let dir = default_out_dir(&sandbox);
    let (a, b) = (png_bytes(1, 5000), png_bytes(2, 5000));
    let both = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&image_done("ig_a", &a))
            .step(Step::AwaitPng(dir.clone()))
            .step(Step::Check(Box::new({
                let dir = dir.clone();
                move || {
                    // Once a file is visible it is whole: written beside, then renamed.
                    let names = file_names(&dir);
                    assert!(names.iter().all(|n| n.ends_with(".png")), "{names:?}");
                }
            })))
            .sleep_ms(50)
            .event(&image_done("ig_b", &b))
            .step(Step::Check(Box::new({
                let dir = dir.clone();
                let both = both.clone();
                move || {
                    let ok = wait_for(Duration::from_secs(10), || count_pngs(&dir) == 2);
                    both.store(ok, std::sync::atomic::Ordering::SeqCst);
                }
            })))
            .step(Step::AwaitPng(dir.clone()))
            .event(&completed(&[("ig_a", &a), ("ig_b", &b)]))
            .end(),
    );
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(server.awaited(), vec![true, true], "{run}");
    assert!(
        both.load(std::sync::atomic::Ordering::SeqCst),
        "both images were on disk before response.completed was sent"
    );
    assert_eq!(stdout_paths(&run).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Streams that end early or break
// ---------------------------------------------------------------------------------------------

#[test]
fn a_stream_closed_after_an_image_is_a_stream_error_and_keeps_the_file() {
    let server = Server::start();
    let png = png_bytes(6, 300);
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&image_done("ig_1", &png))
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "", "{run}");
    assert_eq!(
        last_line(&run),
        "Error: stream error: stream closed before response.completed",
        "{run}"
    );
    assert_eq!(only_png(&run, &sandbox), png);
    assert!(
        run.stderr.contains("codex-imagen: saved image 1: "),
        "{run}"
    );
    assert_eq!(
        server.requests_to(RESPONSES_PATH).len(),
        1,
        "never retried after an image was saved"
    );
}

#[test]
fn a_chunked_body_broken_mid_event_after_an_image_is_a_stream_error() {
    let server = Server::start();
    let png = png_bytes(7, 300);
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&image_done("ig_1", &png))
            .step(Step::Raw(
                b"400\r\nevent: response.output_item.done\ndata: {\"type\":".to_vec(),
            )),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "", "{run}");
    let last = last_line(&run);
    assert!(last.starts_with("Error: stream error: "), "{run}");
    assert!(!last.ends_with("stream error: "), "{run}");
    assert_eq!(only_png(&run, &sandbox), png);
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1, "not retried");
}

#[test]
fn a_chunked_body_broken_before_any_image_is_a_transport_failure() {
    let broken = || {
        Reply::sse().event(&created()).step(Step::Raw(
            b"400\r\nevent: response.output_item.done\ndata: {\"type\":".to_vec(),
        ))
    };
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, broken());
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--no-retry"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "");
    let last = last_line(&run);
    assert!(last.starts_with("Error: "), "{run}");
    assert!(
        !last.contains("stream error"),
        "no image yet: not a stream error\n{run}"
    );
    assert!(
        !last.contains("No completed image_generation_call"),
        "{run}"
    );
    assert_eq!(count_pngs(&default_out_dir(&sandbox)), 0);

    // A transport failure before any image is retried.
    server.enqueue(RESPONSES_PATH, broken());
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png_bytes(1, 64))]));
    let run = run_against(&sandbox, &server, &["x", "--retries", "1"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("codex-imagen: transient generation failure (transport); retrying 1/1 in "),
        "{run}"
    );
}

#[test]
fn a_refused_connection_is_a_transport_failure() {
    // Bind, learn the port, close: nothing listens there now.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let sandbox = authed_sandbox();
    let base = format!("http://{addr}/backend-api/codex");
    let run = sandbox.run(&["x", "--no-retry", "--base-url", &base]);
    assert_eq!(run.code, 1, "{run}");
    assert!(last_line(&run).starts_with("Error: "), "{run}");
    let run = sandbox.run(&["x", "--retries", "1", "--base-url", &base]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("codex-imagen: transient generation failure (transport); retrying 1/1 in "),
        "{run}"
    );
}

#[test]
fn a_stream_without_images_reports_the_seen_event_types() {
    let server = Server::start();
    let empty_completed = json!({"type": "response.completed",
        "response": {"id": "resp_1", "status": "completed", "output": []}});
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse().event(&created()).event(&empty_completed).end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        last_line(&run),
        "Error: No completed image_generation_call with result found. Seen event types: response.created, response.completed",
        "{run}"
    );
    assert_eq!(
        server.requests_to(RESPONSES_PATH).len(),
        1,
        "a completed response without image is final"
    );
}

#[test]
fn backend_errors_are_listed_once_each_under_the_message() {
    let server = Server::start();
    let error_event = json!({"type": "error", "error": {"type": "invalid_request_error",
        "code": "moderation_blocked", "message": "Your request was rejected", "param": null}});
    let item_error = json!({"type": "response.output_item.done", "output_index": 0,
        "item": {"type": "image_generation_call", "id": "ig_1", "status": "failed",
            "error": {"code": "content_policy", "message": "blocked"}}});
    let failed = json!({"type": "response.failed", "response": {"id": "resp_1", "status": "failed",
        "error": {"code": "image_generation_failed", "message": "Image generation failed"}}});
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&error_event)
            .event(&item_error)
            .event(&failed)
            .event(&error_event)
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--no-retry"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "");
    let expected = concat!(
        "Error: No completed image_generation_call with result found. ",
        "Seen event types: response.created, error, response.output_item.done, response.failed\n",
        "Backend error details:\n",
        "  - error code=moderation_blocked type=invalid_request_error Your request was rejected\n",
        "  - item.error code=content_policy blocked\n",
        "  - response.error code=image_generation_failed Image generation failed\n",
    );
    assert!(run.stderr.ends_with(expected), "{run}");
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1);
}

#[test]
fn a_failed_response_without_details_reports_its_status_and_id() {
    let server = Server::start();
    let failed =
        json!({"type": "response.failed", "response": {"id": "resp_9", "status": "failed"}});
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse().event(&created()).event(&failed).end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--no-retry"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.ends_with(
            "Seen event types: response.created, response.failed\n\
Backend error details:\n  - response.failed status=failed failed\n"
        ),
        "{run}"
    );
}

#[test]
fn failures_without_an_image_are_retried_with_their_reason() {
    let png = png_bytes(1, 64);
    let failed = json!({"type": "response.failed", "response": {"id": "resp_1", "status": "failed",
        "error": {"code": "image_generation_failed", "message": "no"}}});
    let overloaded =
        json!({"type": "error", "error": {"code": "server_overloaded", "message": "busy"}});
    let cases: Vec<(&str, Reply)> = vec![
        ("empty_response_stream", Reply::sse().end()),
        (
            "stream_ended_before_completed_image",
            Reply::sse().event(&created()).end(),
        ),
        (
            "unparsed_stream_event",
            Reply::sse().chunk("event: keepalive\ndata: ping\n\n").end(),
        ),
        (
            "response.failed",
            Reply::sse().event(&created()).event(&failed).end(),
        ),
        (
            "server_overloaded",
            Reply::sse().event(&created()).event(&overloaded).end(),
        ),
        ("HTTP 502", Reply::status(502, "text/plain", "bad gateway")),
    ];
    for (reason, first) in cases {
        let server = Server::start();
        server.enqueue(RESPONSES_PATH, first);
        server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png)]));
        let sandbox = authed_sandbox();
        let run = run_against(&sandbox, &server, &["x", "--retries", "2", "--json"]);
        assert_eq!(run.code, 0, "{reason}\n{run}");
        let line = progress_lines(&run)
            .into_iter()
            .find(|l| l.contains("transient generation failure"))
            .unwrap_or_default();
        let prefix =
            format!("codex-imagen: transient generation failure ({reason}); retrying 1/2 in ");
        assert!(line.starts_with(&prefix), "{reason}\n{run}");
        // 200 ms ± 10 %, in seconds with up to three decimals.
        let secs: f64 = line[prefix.len()..line.len() - 1].parse().unwrap();
        assert!((0.18..=0.22).contains(&secs), "{line}");
        assert_eq!(run.json()["retry_attempts"], 1, "{reason}");
        assert_eq!(server.requests_to(RESPONSES_PATH).len(), 2, "{reason}");
    }
}

#[test]
fn an_empty_stream_says_none_were_seen() {
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, Reply::sse().end());
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--no-retry"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        last_line(&run),
        "Error: No completed image_generation_call with result found. Seen event types: (none)",
        "{run}"
    );
}

#[test]
fn http_errors_show_status_reason_and_a_cut_body() {
    let server = Server::start();
    let body = "x".repeat(5000);
    server.enqueue(
        RESPONSES_PATH,
        Reply::status(404, "text/plain", body.clone()),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x"]);
    assert_eq!(run.code, 1, "{run}");
    let expected = format!("Error: HTTP 404 Not Found\n{}...\n", "x".repeat(4000));
    assert!(run.stderr.ends_with(&expected), "{run}");
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1, "4xx is final");
}

// ---------------------------------------------------------------------------------------------
// Timeouts and the watchdog
// ---------------------------------------------------------------------------------------------

#[test]
fn a_timeout_after_an_image_returns_it_with_timed_out() {
    let server = Server::start();
    let png = png_bytes(8, 300);
    let hanging = || {
        Reply::sse()
            .event(&created())
            .event(&image_done("ig_1", &png_bytes(8, 300)))
            .step(Step::Hang)
    };
    server.enqueue(RESPONSES_PATH, hanging());
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--timeout-ms", "500", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.elapsed < Duration::from_secs(10), "{run}");
    let json = run.json();
    assert_eq!(json["timed_out"], true);
    assert_eq!(json["image_count"], 1);
    assert_eq!(json["images"][0]["sha256"], sha256_hex(&png));
    assert_eq!(
        json["seen_event_types"],
        json!(["response.created", "response.output_item.done"])
    );
    assert!(
        progress_lines(&run).contains(
            &"codex-imagen: timed out after 0.5s (500ms); returning 1 saved image(s)".to_string()
        ),
        "{run}"
    );
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1);

    // Without --json the saved path is printed as usual.
    server.enqueue(RESPONSES_PATH, hanging());
    let run = run_against(&sandbox, &server, &["x", "--timeout", "0.25"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(stdout_paths(&run).len(), 1, "{run}");
    assert!(
        run.stderr
            .contains("codex-imagen: timed out after 0.25s (250ms); returning 1 saved image(s)"),
        "{run}"
    );
}

#[test]
fn a_timeout_before_any_image_exits_124_without_retrying() {
    let server = Server::start();
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse().event(&created()).step(Step::Hang),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--timeout-ms", "500"]);
    assert_eq!(run.code, 124, "{run}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        last_line(&run),
        "Error: Timed out after 0.5s (500ms) before any image was saved.",
        "{run}"
    );
    assert!(run.elapsed < Duration::from_secs(10), "{run}");
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1, "not retried");
}

#[test]
fn a_server_that_never_sends_headers_times_out_quickly() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    for extra in [&["--json"][..], &["--no-stream"][..]] {
        server.enqueue(RESPONSES_PATH, silent_reply());
        let mut args = vec!["x", "--timeout-ms", "500"];
        args.extend_from_slice(extra);
        let run = run_against(&sandbox, &server, &args);
        assert_eq!(run.code, 124, "{extra:?}\n{run}");
        assert_eq!(run.stdout, "");
        assert_eq!(
            last_line(&run),
            "Error: Timed out after 0.5s (500ms) before any image was saved.",
            "{run}"
        );
        assert!(run.elapsed < Duration::from_secs(5), "{run}");
    }
}

#[test]
fn a_no_stream_body_that_never_ends_times_out() {
    let server = Server::start();
    server.enqueue(
        RESPONSES_PATH,
        Reply::head(
            200,
            &[
                ("content-type", "application/json"),
                ("content-length", "100000"),
            ],
        )
        .step(Step::Raw(b"{\"id\": \"resp_1\", \"output\": [".to_vec()))
        .step(Step::Hang),
    );
    let sandbox = authed_sandbox();
    let run = run_against(
        &sandbox,
        &server,
        &["x", "--no-stream", "--timeout-ms", "400"],
    );
    assert_eq!(run.code, 124, "{run}");
    assert_eq!(
        last_line(&run),
        "Error: Timed out after 0.4s (400ms) before any image was saved.",
        "{run}"
    );
}

#[test]
fn a_connection_closed_after_an_image_without_chunking_is_a_stream_error() {
    let server = Server::start();
    let png = png_bytes(11, 100);
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse_until_close()
            .step(Step::Raw(sse_event(&created()).into_bytes()))
            .step(Step::Raw(sse_event(&image_done("ig_1", &png)).into_bytes())),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        last_line(&run),
        "Error: stream error: stream closed before response.completed",
        "{run}"
    );
    assert_eq!(only_png(&run, &sandbox), png);
}

#[test]
fn the_hard_watchdog_exits_124_when_the_attempt_cannot_settle() {
    let server = Server::start();
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse().event(&created()).step(Step::Hang),
    );
    let mut sandbox = authed_sandbox();
    // Debug-build hook: blocks the runtime thread on this event, so only the watchdog can act.
    sandbox.env("CODEX_IMAGEN_TEST_BLOCK_ON_EVENT", "response.created");
    let run = run_against(&sandbox, &server, &["x", "--timeout-ms", "300"]);
    assert_eq!(run.code, 124, "{run}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        last_line(&run),
        "codex-imagen: forced exit 10000ms after timeout; fetch did not settle",
        "{run}"
    );
    assert!(run.elapsed >= Duration::from_millis(10_000), "{run}");
    assert!(run.elapsed < Duration::from_secs(20), "{run}");
}

#[test]
fn the_watchdog_line_shows_even_with_quiet_and_saved_images_stay() {
    // The forced-exit line is what an agent sees when a run is cut short: it is always printed.
    // As in the Node tool, the forced exit is 124 even when an image was already saved.
    // The image is large, so the repeat in `response.completed` is being decoded to a
    // temporary file when the thread blocks: the forced exit removes that file too.
    let server = Server::start();
    let png = png_bytes(12, LARGE);
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&image_done("ig_1", &png))
            .event(&completed(&[("ig_1", &png)]))
            .step(Step::Hang),
    );
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_TEST_BLOCK_ON_EVENT", "response.completed");
    // The timeout only has to outlast saving the first image (a debug build on a loaded
    // machine can take longer than 100 ms for that); the thread then blocks on the repeat.
    let run = run_against(&sandbox, &server, &["x", "--timeout-ms", "1500", "--quiet"]);
    assert_eq!(run.code, 124, "{run}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr, "codex-imagen: forced exit 10000ms after timeout; fetch did not settle\n",
        "{run}"
    );
    assert!(only_png(&run, &sandbox) == png);
    assert_eq!(
        file_names(&default_out_dir(&sandbox)).len(),
        1,
        "no temporary file is left: {:?}",
        file_names(&default_out_dir(&sandbox))
    );
    assert!(run.elapsed < Duration::from_secs(20), "{run}");
}

#[test]
fn a_byte_order_mark_and_lone_carriage_returns_are_framing_too() {
    let server = Server::start();
    let png = png_bytes(9, 100);
    let text = format!(
        "\u{feff}event: response.created\rdata: {}\r\r\
event: response.output_item.done\ndata: {}\r\n\n\
event: response.completed\r\ndata: {}\r\r",
        created(),
        image_done("ig_1", &png),
        completed(&[("ig_1", &png)])
    );
    for size in [1, 3, text.len()] {
        server.enqueue(
            RESPONSES_PATH,
            raw_in_pieces(Reply::sse(), &text, size).end(),
        );
        let sandbox = authed_sandbox();
        let run = run_against(&sandbox, &server, &["x", "--json"]);
        assert_eq!(run.code, 0, "piece size {size}\n{run}");
        assert_eq!(
            run.json()["seen_event_types"],
            json!([
                "response.created",
                "response.output_item.done",
                "response.completed"
            ]),
            "piece size {size}"
        );
        assert_eq!(only_png(&run, &sandbox), png);
    }
}

#[test]
fn bytes_that_are_not_utf8_do_not_lose_the_image() {
    // The Node tool decoded the stream with replacement characters: a stray byte in a comment,
    // an unparsed event or a JSON string never cost the user the image.
    let server = Server::start();
    let png = png_bytes(10, 100);
    let mut done = image_done("ig_1", &png);
    done["item"]["revised_prompt"] = json!("caf@");
    let done_text = sse_event(&done).replace("caf@", "caf\u{1}");
    let mut bytes: Vec<u8> = Vec::new();
    bytes.extend_from_slice(sse_event(&created()).as_bytes());
    bytes.extend_from_slice(b": comment \xff\xfe\n\n");
    bytes.extend_from_slice(b"event: keepalive\ndata: \xc3(\n\n");
    bytes.extend_from_slice(done_text.replace('\u{1}', "\u{2}").as_bytes());
    let done_at = bytes.len() - done_text.len();
    // Put one invalid byte inside the revised_prompt string.
    let marker = bytes[done_at..]
        .iter()
        .position(|b| *b == 2)
        .map(|p| p + done_at)
        .unwrap();
    bytes[marker] = 0xe9;
    let empty_completed = json!({"type": "response.completed",
        "response": {"id": "resp_1", "status": "completed", "output": []}});
    bytes.extend_from_slice(sse_event(&empty_completed).as_bytes());
    server.enqueue(RESPONSES_PATH, Reply::sse().step(Step::Chunk(bytes)).end());
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--json", "--no-retry"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(only_png(&run, &sandbox), png);
    let json = run.json();
    assert_eq!(json["images"][0]["revised_prompt"], "caf\u{fffd}");
    assert_eq!(
        json["seen_event_types"],
        json!([
            "response.created",
            "unparsed:keepalive",
            "response.output_item.done",
            "response.completed"
        ])
    );
}

#[test]
fn a_connection_broken_after_response_completed_is_still_a_success() {
    let server = Server::start();
    let png = png_bytes(4, 900);
    let reply = Reply::sse()
        .event(&created())
        .event(&image_done("ig_1", &png))
        .event(&completed(&[("ig_1", &png)]))
        // A chunk header promising more than is sent, then the connection closes.
        .step(Step::Raw(b"ff\r\ndata: {\"type\":\"trail".to_vec()));
    server.enqueue("/backend-api/codex/responses", reply);
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--no-retry", "a cat"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(std::fs::read(run.stdout.trim()).unwrap(), png);
}

// ---------------------------------------------------------------------------------------------
// Large images, decoded to disk as they stream in (src/output/spill.rs)
// ---------------------------------------------------------------------------------------------

/// Large enough to be lifted out of its event and decoded to a temporary file as it arrives.
const LARGE: usize = 300 * 1024;

#[test]
fn a_large_image_with_bad_base64_fails_as_a_small_one_does_and_leaves_no_file() {
    use base64::Engine;
    let good = b64(&png_bytes(4, LARGE));
    let mut bad = good.clone();
    // Padding inside the text: invalid at that offset for a whole-text decode.
    bad.replace_range(200_001..200_002, "=");
    let whole = base64::engine::general_purpose::STANDARD
        .decode(&bad)
        .unwrap_err();
    let server = Server::start();
    let event = json!({"type": "response.output_item.done", "output_index": 0, "item": {
        "type": "image_generation_call", "id": "ig_bad", "status": "completed", "result": bad}});
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event_in_pieces(&event, 16 * 1024)
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--no-retry"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        last_line(&run),
        format!("Error: Image call ig_bad returned base64 that does not decode: {whole}"),
        "{run}"
    );
    assert!(whole.to_string().contains("200001"), "{whole}");
    assert_eq!(
        file_names(&default_out_dir(&sandbox)),
        Vec::<String>::new(),
        "no image, no temporary file"
    );
}

#[test]
fn a_stream_broken_inside_a_large_image_leaves_no_temporary_file() {
    let server = Server::start();
    let text = sse_event(&image_done("ig_1", &png_bytes(5, LARGE)));
    let half = text.as_bytes()[..text.len() / 2].to_vec();
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .step(Step::Chunk(half))
            .sleep_ms(50),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["x", "--no-retry"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "", "{run}");
    assert_eq!(
        file_names(&default_out_dir(&sandbox)),
        Vec::<String>::new(),
        "{run}"
    );
}

#[test]
fn large_images_land_at_their_names_with_previews_replaced_and_repeats_not_rewritten() {
    let server = Server::start();
    let preview = png_bytes(6, LARGE / 2);
    let first = png_bytes(7, LARGE);
    let second = png_bytes(8, LARGE + 1);
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event_in_pieces(&partial_image("ig_1", &preview), 5000)
            .event_in_pieces(&image_done("ig_1", &first), 16 * 1024)
            .event_in_pieces(&image_done("ig_2", &second), 16 * 1024)
            .event_in_pieces(
                &completed(&[("ig_1", &first), ("ig_2", &second)]),
                16 * 1024,
            )
            .end(),
    );
    let sandbox = authed_sandbox();
    let run = run_against(
        &sandbox,
        &server,
        &["x", "-o", "new/dir/pic.png", "--json", "--verbose"],
    );
    assert_eq!(run.code, 0, "{run}");
    let dir = sandbox.work().join("new/dir");
    assert_eq!(file_names(&dir), vec!["pic-1.png", "pic-2.png"], "{run}");
    assert!(std::fs::read(dir.join("pic-1.png")).unwrap() == first);
    assert!(std::fs::read(dir.join("pic-2.png")).unwrap() == second);
    let json = run.json();
    assert_eq!(json["images"][0]["sha256"], sha256_hex(&first));
    assert_eq!(json["images"][0]["bytes"], first.len());
    assert_eq!(json["images"][0]["format"], "png");
    assert_eq!(json["images"][1]["sha256"], sha256_hex(&second));
    assert_eq!(
        run.stderr
            .matches("repeated unchanged; not rewritten")
            .count(),
        2,
        "{run}"
    );
}
