//! Resilience (SPEC §10.3, §10.4, §11 on 429, §12, §16): which failures are retried and how
//! fast, which never are (a generation costs quota), what a quota or Cloudflare refusal says, and
//! the typed Images backend. Every test runs the built binary against loopback servers only.
//!
//! Transport failures are produced for real, not simulated:
//! - *connection refused*: the base URL points at a port nobody listens on; a forwarder to the
//!   scripted server starts listening there only once the binary has announced its first retry.
//! - *connection reset*: a small front server answers the first connection itself and then
//!   closes it with `SO_LINGER 0`, which sends a TCP RST; later connections are forwarded to the
//!   scripted server.
//! - *dropped stream*: the scripted server closes the connection in the middle of a chunked body.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const RESPONSES: &str = "/backend-api/codex/responses";
const GENERATIONS: &str = "/backend-api/codex/images/generations";
const EDITS: &str = "/backend-api/codex/images/edits";

fn authed() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    sandbox
}

fn run_on(sandbox: &Sandbox, server: &Server, args: &[&str]) -> Run {
    let sargs = server_args(server);
    sandbox.run(&with_server(&sargs, args))
}

fn lines_with<'a>(run: &'a Run, needle: &str) -> Vec<&'a str> {
    run.stderr.lines().filter(|l| l.contains(needle)).collect()
}

fn transient_reasons(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("codex-imagen: transient generation failure ("))
        .filter_map(|rest| rest.split(')').next())
        .map(str::to_string)
        .collect()
}

fn error_event(code: &str, message: &str) -> Value {
    json!({"type": "response.failed", "response": {"id": "resp_1", "status": "failed",
        "error": {"code": code, "message": message}}})
}

// ---------------------------------------------------------------------------------------------
// Retried: 5xx, with the spec's backoff
// ---------------------------------------------------------------------------------------------

#[test]
fn a_500_then_success_reports_one_retry_in_the_json() {
    let server = Server::start();
    let png = png_bytes(1, 800);
    server.enqueue(
        RESPONSES,
        Reply::json(500, &json!({"error": {"message": "boom"}})),
    );
    server.enqueue(RESPONSES, image_stream(&[("ig_1", &png)]));
    let sandbox = authed();
    let run = run_on(&sandbox, &server, &["a fox", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    assert_eq!(json["retry_attempts"], 1, "{run}");
    assert_eq!(json["retryAttempts"], 1, "{run}");
    let keys = object_keys(&json);
    assert_eq!(
        &keys[keys.len() - 3..],
        ["retry_attempts", "retryAttempts", "requested"],
        "retry keys come right after response_metadata (then issue #11's requested)"
    );
    assert_eq!(
        std::fs::read(json["images"][0]["path"].as_str().unwrap()).unwrap(),
        png
    );
    assert_eq!(transient_reasons(&run), vec!["HTTP 500"], "{run}");
    let attempts = lines_with(&run, "codex-imagen: generation attempt ");
    assert_eq!(
        attempts,
        vec![
            "codex-imagen: generation attempt 1/5",
            "codex-imagen: generation attempt 2/5"
        ],
        "{run}"
    );
    let retry_line = lines_with(&run, "retrying 1/4 in ");
    assert_eq!(retry_line.len(), 1, "{run}");
    let requests = server.requests_to(RESPONSES);
    assert_eq!(requests.len(), 2);
    assert_ne!(
        requests[0].header("x-client-request-id"),
        requests[1].header("x-client-request-id"),
        "each attempt has a fresh request id"
    );
    assert_eq!(
        json["request_id"],
        requests[1].header("x-client-request-id").unwrap()
    );
}

#[test]
fn a_first_try_success_has_no_retry_keys() {
    let server = Server::start();
    server.enqueue(RESPONSES, image_stream(&[("ig_1", &png_bytes(2, 100))]));
    let run = run_on(&authed(), &server, &["a fox", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    assert!(json.get("retry_attempts").is_none(), "{run}");
    assert!(json.get("retryAttempts").is_none(), "{run}");
    assert_eq!(lines_with(&run, "generation attempt 1/5").len(), 1, "{run}");
}

/// The seconds printed in `retrying r/n in <s>s`, in milliseconds.
fn printed_delays_ms(run: &Run) -> Vec<f64> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("codex-imagen: transient generation failure"))
        .map(|l| {
            let secs = l
                .rsplit(" in ")
                .next()
                .and_then(|s| s.strip_suffix('s'))
                .unwrap_or_else(|| panic!("delay in {l}"));
            secs.parse::<f64>().unwrap() * 1000.0
        })
        .collect()
}

#[test]
fn a_503_on_every_attempt_gives_up_after_five_with_doubling_delays() {
    let server = Server::start();
    server.handle(|_| Reply::json(503, &json!({"error": {"message": "overloaded"}})));
    let run = run_on(&authed(), &server, &["a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(
            "Error: HTTP 503 Service Unavailable\n{\"error\":{\"message\":\"overloaded\"}}"
        ),
        "{run}"
    );
    assert_eq!(run.stdout, "", "{run}");
    assert_eq!(transient_reasons(&run), vec!["HTTP 503"; 4], "{run}");
    for r in 1..=4 {
        assert_eq!(
            lines_with(&run, &format!("retrying {r}/4 in ")).len(),
            1,
            "{run}"
        );
        assert_eq!(
            lines_with(&run, &format!("codex-imagen: generation attempt {r}/5")).len(),
            1
        );
    }
    assert_eq!(lines_with(&run, "generation attempt 5/5").len(), 1, "{run}");
    assert!(!run.stderr.contains("retrying 5/"), "{run}");

    let requests = server.requests_to(RESPONSES);
    assert_eq!(requests.len(), 5, "{run}");
    let nominal = [200.0, 400.0, 800.0, 1600.0];
    let printed = printed_delays_ms(&run);
    let gaps: Vec<f64> = requests
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at).as_secs_f64() * 1000.0)
        .collect();
    for i in 0..4 {
        // The printed delay is the jittered formula: 200 ms · 2^(r-1) · [0.9, 1.1].
        assert!(
            printed[i] >= nominal[i] * 0.9 - 1.0 && printed[i] <= nominal[i] * 1.1 + 1.0,
            "retry {}: printed {} ms, nominal {} ms\n{run}",
            i + 1,
            printed[i],
            nominal[i]
        );
        // The server saw at least that pause (a busy machine only adds to it).
        assert!(
            gaps[i] >= nominal[i] * 0.8 && gaps[i] + 5.0 >= printed[i],
            "gap {} was {:.0} ms (printed {} ms, nominal {} ms)\n{run}",
            i + 1,
            gaps[i],
            printed[i],
            nominal[i]
        );
        if i > 0 {
            assert!(gaps[i] > gaps[i - 1], "gaps must grow: {gaps:?}\n{run}");
        }
    }
}

#[test]
fn retries_flag_and_no_retry_bound_the_attempts() {
    let server = Server::start();
    server.handle(|_| Reply::json(502, &json!({"error": "bad gateway"})));
    let run = run_on(&authed(), &server, &["a fox", "--retries", "1"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 2, "{run}");
    assert_eq!(
        lines_with(
            &run,
            "transient generation failure (HTTP 502); retrying 1/1 in "
        )
        .len(),
        1,
        "{run}"
    );
    assert_eq!(lines_with(&run, "generation attempt 2/2").len(), 1, "{run}");

    let server = Server::start();
    server.handle(|_| Reply::json(502, &json!({"error": "bad gateway"})));
    let run = run_on(&authed(), &server, &["a fox", "--no-retry"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
    assert!(!run.stderr.contains("generation attempt"), "{run}");
    assert!(!run.stderr.contains("transient"), "{run}");
    assert!(run.stderr.contains("Error: HTTP 502 Bad Gateway"), "{run}");
}

// ---------------------------------------------------------------------------------------------
// Never retried: 4xx, quota, timeouts, refusals
// ---------------------------------------------------------------------------------------------

#[test]
fn a_400_is_not_retried() {
    let server = Server::start();
    server.handle(|_| Reply::json(400, &json!({"detail": "Unsupported model"})));
    let run = run_on(&authed(), &server, &["a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
    assert!(
        run.stderr
            .contains("Error: HTTP 400 Bad Request\n{\"detail\":\"Unsupported model\"}"),
        "{run}"
    );
    assert!(!run.stderr.contains("transient"), "{run}");
}

#[test]
fn a_401_under_no_refresh_is_not_retried_or_refreshed() {
    let server = Server::start();
    server.handle(|_| Reply::json(401, &json!({"detail": "token expired"})));
    let run = run_on(&authed(), &server, &["a fox", "--no-refresh"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
    assert_eq!(server.requests_to("/oauth/token").len(), 0, "{run}");
    assert!(run.stderr.contains("Error: HTTP 401 Unauthorized"), "{run}");
    assert!(!run.stderr.contains("transient"), "{run}");
}

#[test]
fn a_timeout_is_not_retried() {
    let server = Server::start();
    server.handle(|_| Reply {
        steps: vec![Step::Hang],
    });
    let run = run_on(&authed(), &server, &["a fox", "--timeout-ms", "300"]);
    assert_eq!(run.code, 124, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
    assert!(
        run.stderr
            .contains("Error: Timed out after 0.3s (300ms) before any image was saved."),
        "{run}"
    );
    assert!(!run.stderr.contains("transient"), "{run}");
}

#[test]
fn a_usage_limit_429_says_when_to_come_back_and_is_sent_once() {
    let server = Server::start();
    let body = json!({"error": {"type": "usage_limit_reached", "plan_type": "plus",
        "message": "The usage limit has been reached", "resets_in_seconds": 2 * 3600 + 13 * 60}});
    let text = body.to_string();
    server.handle(move |_| Reply::json(429, &body));
    let mut sandbox = authed();
    sandbox.env("TZ", "UTC");
    let run = run_on(&sandbox, &server, &["a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
    assert!(!run.stderr.contains("transient"), "{run}");
    let error = run
        .stderr
        .split("Error: ")
        .nth(1)
        .unwrap_or_else(|| panic!("an error line\n{run}"));
    let mut lines = error.lines();
    let first = lines.next().unwrap();
    let prefix = "You've hit your ChatGPT plus usage limit for image generation. Try again at ";
    assert!(first.starts_with(prefix), "{run}");
    assert!(first.ends_with(" (in 2h 13m)."), "{run}");
    // The reset, as a wall-clock time in the sandbox's zone (UTC): h:mm AM/PM.
    let clock = &first[prefix.len()..first.len() - " (in 2h 13m).".len()];
    // A reset on another day is shown with its date first ("Dec 2, 12:00 AM"): the test runs
    // at any time of day.
    let clock = clock.split_once(", ").map_or(clock, |(_, time)| time);
    let expected = chrono_free_clock(now_secs() + 2 * 3600 + 13 * 60);
    let later = chrono_free_clock(now_secs() + 2 * 3600 + 14 * 60);
    assert!(
        clock == expected || clock == later,
        "{clock} vs {expected}\n{run}"
    );
    assert_eq!(lines.next(), Some("HTTP 429 Too Many Requests"), "{run}");
    assert_eq!(lines.next(), Some(text.as_str()), "{run}");
}

/// `h:mm AM` for epoch seconds in UTC, rounded up to the minute as the message does.
fn chrono_free_clock(epoch: i64) -> String {
    let minutes = (epoch + 59) / 60;
    let (h24, m) = ((minutes / 60) % 24, minutes % 60);
    let (h12, ampm) = match h24 {
        0 => (12, "AM"),
        1..=11 => (h24, "AM"),
        12 => (12, "PM"),
        _ => (h24 - 12, "PM"),
    };
    format!("{h12}:{m:02} {ampm}")
}

#[test]
fn another_429_shows_the_http_line_and_body_only() {
    let server = Server::start();
    server.handle(|_| {
        Reply::json(
            429,
            &json!({"error": {"type": "rate_limit_exceeded", "message": "slow down"}}),
        )
    });
    let run = run_on(&authed(), &server, &["a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
    assert!(
        run.stderr.contains(
            "Error: HTTP 429 Too Many Requests\n{\"error\":{\"type\":\"rate_limit_exceeded\",\"message\":\"slow down\"}}"
        ),
        "{run}"
    );
    assert!(!run.stderr.contains("usage limit"), "{run}");
}

#[test]
fn a_response_failed_with_a_policy_error_is_not_retried() {
    let server = Server::start();
    server.handle(|_| {
        Reply::sse()
            .event(&created())
            .event(&error_event(
                "moderation_blocked",
                "Your request was rejected by the safety system.",
            ))
            .end()
    });
    let run = run_on(&authed(), &server, &["a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
    assert!(!run.stderr.contains("transient"), "{run}");
    assert!(
        run.stderr.contains(
            "Error: No completed image_generation_call with result found. Seen event types: response.created, response.failed\nBackend error details:\n  - response.error code=moderation_blocked Your request was rejected by the safety system."
        ),
        "{run}"
    );
}

#[test]
fn a_model_that_answers_in_words_is_not_retried() {
    let server = Server::start();
    server.handle(|_| {
        Reply::sse()
            .event(&created())
            .event(
                &json!({"type": "response.output_item.done", "item": {"type": "message",
                "content": [{"type": "output_text", "text": "I can't make that image."}]}}),
            )
            .event(
                &json!({"type": "response.completed", "response": {"id": "resp_1",
                "status": "completed", "output": []}}),
            )
            .end()
    });
    let run = run_on(&authed(), &server, &["a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
    assert!(!run.stderr.contains("transient"), "{run}");
}

// ---------------------------------------------------------------------------------------------
// Retried: broken or empty streams before any image
// ---------------------------------------------------------------------------------------------

/// A failing first reply, then a good stream: asserts one retry for `reason`.
fn retried_once_for(first: Reply, reason: &str) {
    let server = Server::start();
    let png = png_bytes(3, 400);
    server.enqueue(RESPONSES, first);
    server.enqueue(RESPONSES, image_stream(&[("ig_1", &png)]));
    let run = run_on(&authed(), &server, &["a fox", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(transient_reasons(&run), vec![reason], "{run}");
    assert_eq!(run.json()["retry_attempts"], 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 2, "{run}");
}

#[test]
fn a_response_failed_with_server_error_is_retried() {
    retried_once_for(
        Reply::sse()
            .event(&created())
            .event(&error_event(
                "server_error",
                "An error occurred while processing",
            ))
            .end(),
        "server_error",
    );
}

#[test]
fn an_empty_200_stream_is_retried() {
    retried_once_for(Reply::sse().end(), "empty_response_stream");
}

#[test]
fn a_stream_of_only_keepalives_that_closes_is_retried() {
    let keepalive = json!({"type": "keepalive"});
    retried_once_for(
        Reply::sse()
            .event(&keepalive)
            .chunk(": ping\n\n")
            .event(&keepalive)
            .end(),
        "stream_ended_before_completed_image",
    );
}

#[test]
fn a_stream_dropped_mid_body_before_any_image_is_retried() {
    // The chunked body stops without its last chunk: the connection just closes.
    retried_once_for(
        Reply::sse()
            .event(&created())
            .event(&in_progress("ig_1"))
            .chunk("event: response.image_generation_call.generating\ndata: {\"ty"),
        "transport",
    );
}

// ---------------------------------------------------------------------------------------------
// Retried: transport failures (real refused and reset connections)
// ---------------------------------------------------------------------------------------------

/// Relay one accepted connection to `upstream` (`host:port`) until either side closes.
fn relay(client: TcpStream, upstream: &str) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let _ = std::io::copy(&mut s_read, &mut c_write);
    let _ = c_write.shutdown(std::net::Shutdown::Both);
}

fn upstream_of(server: &Server) -> String {
    server.addr.trim_start_matches("http://").to_string()
}

/// Forward every connection on `listener` to the scripted server.
fn forward_all(listener: TcpListener, upstream: String) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let upstream = upstream.clone();
            std::thread::spawn(move || relay(stream, &upstream));
        }
    });
}

/// Run the binary, calling `on_line` with each stderr line as it is written.
fn run_watching(
    sandbox: &Sandbox,
    args: &[&str],
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> Run {
    let start = Instant::now();
    let mut child = sandbox
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn codex-imagen");
    let stderr = child.stderr.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let collected = Arc::new(Mutex::new(String::new()));
    let sink = collected.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            on_line(&line);
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    let out_reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_reader.join().unwrap();
    reader.join().unwrap();
    let stderr = collected.lock().unwrap().clone();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        elapsed: start.elapsed(),
    }
}

#[test]
fn connection_refused_then_success_is_retried() {
    let server = Server::start();
    let png = png_bytes(4, 300);
    server.enqueue(RESPONSES, image_stream(&[("ig_1", &png)]));
    // A port that was free a moment ago: nothing listens there, so connecting is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}/backend-api/codex");
    let upstream = upstream_of(&server);
    let opened = Arc::new(AtomicUsize::new(0));
    let opened_in = opened.clone();
    let sandbox = authed();
    let run = run_watching(
        &sandbox,
        &["a fox", "--json", "--base-url", &base],
        move |line| {
            // The first attempt has failed and the retry waits ≥180 ms: start listening now.
            if line.contains("transient generation failure (transport); retrying 1/4")
                && opened_in.fetch_add(1, Ordering::SeqCst) == 0
            {
                let listener = TcpListener::bind(("127.0.0.1", port)).expect("rebind the port");
                forward_all(listener, upstream.clone());
            }
        },
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(opened.load(Ordering::SeqCst), 1, "{run}");
    assert_eq!(transient_reasons(&run), vec!["transport"], "{run}");
    let json = run.json();
    assert_eq!(json["retry_attempts"], 1, "{run}");
    assert_eq!(
        std::fs::read(json["images"][0]["path"].as_str().unwrap()).unwrap(),
        png
    );
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
}

#[test]
fn a_refused_connection_without_retries_names_the_cause() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}/backend-api/codex");
    let run = authed().run(&["a fox", "--no-retry", "--base-url", &base]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.to_lowercase().contains("connection refused"),
        "{run}"
    );
}

/// Read one HTTP request (head and Content-Length body) from `stream`.
fn read_request(stream: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    loop {
        let n = stream.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut tmp).unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return;
        }
    }
}

/// Close with a TCP RST instead of a FIN: what "connection reset by peer" is.
#[cfg(unix)]
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd we own, and a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(stream);
}

/// A front server: the first connection gets `events` as an SSE stream and, once `ready` says
/// so, a reset; every later connection is forwarded to `server`. Returns the base URL and the
/// number of connections it accepted.
#[cfg(unix)]
fn reset_first_connection(
    server: &Server,
    events: Vec<Value>,
    ready: impl FnOnce() + Send + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!(
        "http://{}/backend-api/codex",
        listener.local_addr().unwrap()
    );
    let upstream = upstream_of(server);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        let mut ready = Some(ready);
        for stream in listener.incoming().flatten() {
            if counter.fetch_add(1, Ordering::SeqCst) > 0 {
                let upstream = upstream.clone();
                std::thread::spawn(move || relay(stream, &upstream));
                continue;
            }
            let mut stream = stream;
            read_request(&mut stream);
            let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
            for event in &events {
                let text = sse_event(event);
                out.extend_from_slice(format!("{:x}\r\n", text.len()).as_bytes());
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            stream.write_all(&out).unwrap();
            stream.flush().unwrap();
            if let Some(ready) = ready.take() {
                ready();
            }
            reset(stream);
        }
    });
    (base, accepted)
}

#[cfg(unix)]
#[test]
fn a_connection_reset_before_any_image_is_retried() {
    let server = Server::start();
    let png = png_bytes(5, 300);
    server.enqueue(RESPONSES, image_stream(&[("ig_1", &png)]));
    let (base, accepted) = reset_first_connection(
        &server,
        vec![created(), in_progress("ig_1")],
        // Long enough for the client to have read what was sent.
        || std::thread::sleep(Duration::from_millis(150)),
    );
    let sandbox = authed();
    let run = sandbox.run(&["a fox", "--json", "--base-url", &base]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(transient_reasons(&run), vec!["transport"], "{run}");
    assert_eq!(run.json()["retry_attempts"], 1, "{run}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
}

#[cfg(unix)]
#[test]
fn a_connection_reset_after_an_image_is_final_and_keeps_the_file() {
    let server = Server::start();
    server.handle(|_| image_stream(&[("ig_2", &png_bytes(9, 100))]));
    let png = png_bytes(6, 2000);
    let sandbox = authed();
    let out = sandbox.path("out");
    let watch = out.clone();
    let (base, accepted) = reset_first_connection(
        &server,
        vec![created(), image_done("ig_1", &png)],
        // Reset only once the image is on disk: "after an image was saved" is the point.
        move || {
            assert!(wait_for(Duration::from_secs(10), || count_pngs(&watch) > 0));
        },
    );
    let out_arg = out.to_str().unwrap().to_string();
    let run = sandbox.run(&["a fox", "--base-url", &base, "--out-dir", &out_arg]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("Error: stream error: "), "{run}");
    assert!(
        run.stderr.to_lowercase().contains("connection reset"),
        "a real reset, not a clean close: {run}"
    );
    assert!(!run.stderr.contains("transient"), "{run}");
    assert!(!run.stderr.contains("generation attempt 2/"), "{run}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "no second request: {run}"
    );
    assert!(server.requests().is_empty(), "{run}");
    let saved = saved_paths(&run);
    assert_eq!(saved.len(), 1, "{run}");
    assert_eq!(std::fs::read(&saved[0]).unwrap(), png, "the file stays");
    assert_eq!(count_pngs(&out), 1);
}

/// Paths from `codex-imagen: saved image <n>: <path>` lines.
fn saved_paths(run: &Run) -> Vec<PathBuf> {
    run.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("codex-imagen: saved image "))
        .filter_map(|rest| rest.split_once(": ").map(|(_, p)| PathBuf::from(p)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Cloudflare
// ---------------------------------------------------------------------------------------------

fn reply_with_headers(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
    let length = body.len().to_string();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("content-length", &length));
    all.push(("connection", "close"));
    Reply::head(status, &all).step(Step::Raw(body.as_bytes().to_vec()))
}

const CHALLENGE_PAGE: &str = "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title></head><body><noscript>Enable JavaScript and cookies to continue</noscript><script>(function(){window._cf_chl_opt={cvId: '3'};var a=document.createElement('script');a.src='/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1';document.head.appendChild(a);}());</script></body></html>";

#[test]
fn a_cloudflare_challenge_is_explained_as_not_a_credentials_problem() {
    let server = Server::start();
    server.handle(|_| {
        reply_with_headers(
            403,
            &[
                ("content-type", "text/html; charset=UTF-8"),
                ("cf-mitigated", "challenge"),
                ("server", "cloudflare"),
            ],
            CHALLENGE_PAGE,
        )
    });
    let run = run_on(&authed(), &server, &["a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");
    let error = run.stderr.split("Error: ").nth(1).unwrap_or_default();
    assert!(
        error.starts_with("ChatGPT's Cloudflare protection"),
        "{run}"
    );
    assert!(
        error.contains("not a problem with your credentials"),
        "{run}"
    );
    assert!(error.contains("VPN"), "{run}");
    assert!(error.trim_end().ends_with("\nHTTP 403 Forbidden"), "{run}");
    assert!(
        !error.contains("<html"),
        "the page itself is not shown: {run}"
    );
    assert!(!run.stderr.contains("transient"), "{run}");
}

#[test]
fn a_challenge_page_without_the_header_is_recognised_too() {
    let server = Server::start();
    server.handle(|_| reply_with_headers(403, &[("content-type", "text/html")], CHALLENGE_PAGE));
    let run = run_on(&authed(), &server, &["a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("Error: ChatGPT's Cloudflare protection"),
        "{run}"
    );
}

#[test]
fn a_plain_403_is_left_as_it_is() {
    let server = Server::start();
    server.handle(|_| Reply::json(403, &json!({"detail": "Forbidden"})));
    let run = run_on(&authed(), &server, &["a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("Error: HTTP 403 Forbidden\n{\"detail\":\"Forbidden\"}"),
        "{run}"
    );
    assert!(!run.stderr.contains("Cloudflare"), "{run}");
}

#[test]
fn cloudflare_cookies_from_a_non_chatgpt_host_are_neither_kept_nor_retried() {
    // The loopback server is plain http and not a ChatGPT host: its cookies must be ignored,
    // so the 403 stays final and no later request carries a cookie.
    let server = Server::start();
    server.enqueue(
        RESPONSES,
        reply_with_headers(
            403,
            &[
                ("content-type", "text/html"),
                ("cf-mitigated", "challenge"),
                ("set-cookie", "cf_clearance=abc; Path=/; Secure; HttpOnly"),
                ("set-cookie", "__cf_bm=def; Path=/"),
            ],
            CHALLENGE_PAGE,
        ),
    );
    let run = run_on(&authed(), &server, &["a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        !run.stderr
            .contains("retrying with ChatGPT Cloudflare cookies"),
        "{run}"
    );
    assert_eq!(server.requests_to(RESPONSES).len(), 1, "{run}");

    let server = Server::start();
    server.enqueue(
        RESPONSES,
        reply_with_headers(
            500,
            &[("set-cookie", "cf_clearance=abc; Path=/")],
            "{\"error\":\"x\"}",
        ),
    );
    server.enqueue(RESPONSES, image_stream(&[("ig_1", &png_bytes(1, 50))]));
    let run = run_on(&authed(), &server, &["a fox"]);
    assert_eq!(run.code, 0, "{run}");
    let requests = server.requests_to(RESPONSES);
    assert_eq!(requests.len(), 2, "{run}");
    assert!(
        requests.iter().all(|r| r.header("cookie").is_none()),
        "{run}"
    );
}

// ---------------------------------------------------------------------------------------------
// The typed Images backend
// ---------------------------------------------------------------------------------------------

fn images_response(items: Vec<Value>) -> Value {
    json!({"created": 1_763_779_740, "background": "opaque", "quality": "high",
        "size": "1024x1024", "output_format": "png", "data": items})
}

fn assert_images_headers(request: &Request) {
    // Codex's ImagesClient sets no Accept header, so reqwest's default goes (issue #22:
    // exactly what Codex sends).
    assert_eq!(request.header("accept"), Some("*/*"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(
        request
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer ey")),
        "{:?}",
        request.headers
    );
    assert_eq!(request.header("chatgpt-account-id"), Some("acct-123"));
    assert_eq!(request.header("originator"), Some("codex_cli_rs"));
    assert!(request.header("version").is_some());
    assert!(request
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("codex_cli_rs/")));
    for absent in [
        "session-id",
        "session_id",
        "thread-id",
        "x-client-request-id",
        "cookie",
    ] {
        assert_eq!(request.header(absent), None, "{absent} must not be sent");
    }
}

#[test]
fn typed_generation_posts_to_generations_and_reports_metadata() {
    let server = Server::start();
    let png = png_bytes(7, 1500);
    server.enqueue(
        GENERATIONS,
        Reply::json(
            200,
            &images_response(vec![
                json!({"b64_json": b64(&png), "revised_prompt": "a red fox"}),
            ]),
        ),
    );
    let sandbox = authed();
    let run = run_on(
        &sandbox,
        &server,
        &[
            "a fox",
            "--backend",
            "images",
            "--json",
            "--image-detail",
            "low",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    let keys = object_keys(&json);
    assert_eq!(
        keys,
        [
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
            "requested"
        ],
        "{run}"
    );
    assert_eq!(
        json["endpoint"],
        format!("{}/images/generations", server.base_url())
    );
    assert_eq!(json["operation"], "image generation");
    assert_eq!(json["model"], "gpt-image-2");
    assert_eq!(json["image_count"], 1);
    assert_eq!(json["seen_event_types"], json!(["image_response"]));
    assert_eq!(json["timed_out"], false);
    assert_eq!(
        json["response_metadata"],
        // Issue #22: `output_format` (and `usage`) are read when the answer has them.
        json!({"created": 1_763_779_740, "background": "opaque", "quality": "high", "size": "1024x1024", "output_format": "png"})
    );
    let image = &json["images"][0];
    assert_eq!(image["call_id"], "image");
    assert_eq!(image["status"], "completed");
    assert_eq!(image["partial"], false);
    assert_eq!(image["revised_prompt"], "a red fox");
    assert_eq!(image["bytes"], png.len());
    assert_eq!(image["sha256"], sha256_hex(&png));
    let path = PathBuf::from(image["path"].as_str().unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), png);
    // The total is known (one image): no index in the automatic name.
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("codex-imagen-") && name.ends_with("Z-image.png"),
        "{name}"
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{run}");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, GENERATIONS);
    assert_eq!(
        String::from_utf8(requests[0].body.clone()).unwrap(),
        r#"{"prompt":"a fox","background":"auto","model":"gpt-image-2","quality":"auto","size":"auto"}"#
    );
    assert_images_headers(&requests[0]);

    let progress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("codex-imagen: ") && !l.contains("generation attempt"))
        .collect();
    assert_eq!(
        &progress[..3],
        [
            format!(
                "codex-imagen: POST {}/images/generations",
                server.base_url()
            )
            .as_str(),
            "codex-imagen: operation image generation",
            "codex-imagen: model gpt-image-2",
        ],
        "{run}"
    );
    assert!(!run.stderr.contains("backend responses"), "{run}");
}

#[test]
fn typed_edit_from_the_environment_sends_references_first() {
    let server = Server::start();
    let (a, b) = (png_bytes(8, 300), png_bytes(9, 400));
    server.enqueue(
        EDITS,
        Reply::json(
            200,
            &json!({"revised_prompt": "top prompt", "data": [
                {"b64_json": b64(&a), "id": "img_a"},
                {"result": b64(&b)}
            ]}),
        ),
    );
    let mut sandbox = authed();
    sandbox.env("CODEX_IMAGEN_BACKEND", "images");
    let reference = png_bytes(1, 20);
    std::fs::write(sandbox.work().join("ref.png"), &reference).unwrap();
    let run = run_on(
        &sandbox,
        &server,
        &[
            "--prompt",
            "make it blue",
            "-i",
            "ref.png",
            "--image-url",
            "https://example.com/style.png",
            "--output",
            "art/out.png",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    assert_eq!(json["operation"], "image edit");
    assert_eq!(
        json["endpoint"],
        format!("{}/images/edits", server.base_url())
    );
    assert_eq!(json["image_count"], 2);
    assert_eq!(
        json["response_metadata"],
        json!({"created": null, "background": null, "quality": null, "size": null})
    );
    let images = json["images"].as_array().unwrap();
    assert_eq!(images[0]["call_id"], "img_a");
    assert_eq!(images[1]["call_id"], "image-2");
    assert_eq!(images[1]["revised_prompt"], "top prompt");
    let p0 = PathBuf::from(images[0]["path"].as_str().unwrap());
    let p1 = PathBuf::from(images[1]["path"].as_str().unwrap());
    assert!(p0.ends_with("art/out-1.png"), "{run}");
    assert!(p1.ends_with("art/out-2.png"), "{run}");
    assert_eq!(std::fs::read(p0).unwrap(), a);
    assert_eq!(std::fs::read(p1).unwrap(), b);

    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{run}");
    assert_eq!(requests[0].path, EDITS);
    assert_images_headers(&requests[0]);
    let body = requests[0].json();
    let keys = object_keys(&body);
    assert_eq!(
        keys,
        ["images", "prompt", "background", "model", "quality", "size"]
    );
    assert_eq!(
        body["images"],
        json!([
            {"image_url": format!("data:image/png;base64,{}", b64(&reference))},
            {"image_url": "https://example.com/style.png"}
        ])
    );
    assert_eq!(body["prompt"], "make it blue");
    assert!(
        run.stderr.contains("codex-imagen: operation image edit"),
        "{run}"
    );
}

#[test]
fn a_typed_response_without_image_data_is_retried_then_explained() {
    let server = Server::start();
    server.handle(|_| {
        Reply::json(
            200,
            &images_response(vec![json!({"url": "https://x/y.png"})]),
        )
    });
    let run = run_on(
        &authed(),
        &server,
        &["a fox", "--backend=images", "--retries", "1"],
    );
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(GENERATIONS).len(), 2, "{run}");
    assert_eq!(
        transient_reasons(&run),
        vec!["image_response_without_data"],
        "{run}"
    );
    assert!(
        run.stderr.ends_with(
            "Error: No image data found in Codex Images response. Seen event types: image_response\n"
        ),
        "{run}"
    );

    let server = Server::start();
    server.handle(|_| {
        Reply::json(
            200,
            &json!({"data": [], "error": {"code": "image_unavailable_now", "message": "no image this time"}}),
        )
    });
    let run = run_on(
        &authed(),
        &server,
        &["a fox", "--backend", "images", "--no-retry"],
    );
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(server.requests_to(GENERATIONS).len(), 1, "{run}");
    assert!(
        run.stderr.contains(
            "Error: No image data found in Codex Images response. Seen event types: image_response\nBackend error details:\n  - error code=image_unavailable_now no image this time"
        ),
        "{run}"
    );
}

#[test]
fn the_typed_backend_shares_the_retry_loop() {
    let server = Server::start();
    let png = png_bytes(2, 64);
    server.enqueue(GENERATIONS, Reply::json(503, &json!({"error": "busy"})));
    server.enqueue(
        GENERATIONS,
        Reply::json(200, &images_response(vec![json!({"b64_json": b64(&png)})])),
    );
    let run = run_on(
        &authed(),
        &server,
        &[
            "a fox",
            "--backend",
            "images",
            "--json",
            "--model",
            "gpt-image-1",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    assert_eq!(json["retry_attempts"], 1, "{run}");
    assert_eq!(json["model"], "gpt-image-1");
    assert_eq!(transient_reasons(&run), vec!["HTTP 503"], "{run}");
    let requests = server.requests_to(GENERATIONS);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].json()["model"], "gpt-image-1");
}
