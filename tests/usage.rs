//! `--usage`: the plan and its quota windows from a loopback `GET /backend-api/wham/usage`, in
//! text and JSON; refresh before and on a 401; plain-words errors for a non-2xx answer and for a
//! body without `rate_limit`.

mod support;

use serde_json::{json, Value};
use support::*;

const USAGE_PATH: &str = "/backend-api/wham/usage";

fn usage_body() -> Value {
    let now = now_secs();
    json!({
        "plan_type": "plus",
        "rate_limit": {
            "allowed": true,
            "limit_reached": false,
            "primary_window": {"used_percent": 42, "limit_window_seconds": 18000,
                               "reset_after_seconds": 4320, "reset_at": now + 4320},
            "secondary_window": null
        },
        "credits": null
    })
}

#[test]
fn usage_json_reports_each_window_and_null_for_one_not_sent() {
    let server = Server::start();
    server.enqueue(USAGE_PATH, Reply::json(200, &usage_body()));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["--usage", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    let keys = object_keys(&report);
    assert_eq!(
        keys,
        [
            "plan_type",
            "allowed",
            "limit_reached",
            "primary",
            "secondary"
        ]
    );
    assert_eq!(report["plan_type"], "plus");
    assert_eq!(report["primary"]["used_percent"], 42);
    assert_eq!(report["primary"]["window_seconds"], 18000);
    let left = report["primary"]["resets_in_seconds"].as_i64().unwrap();
    assert!((4300..=4320).contains(&left), "{left}");
    assert!(report["primary"]["resets_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(report["secondary"], Value::Null);

    let requests = server.requests_to(USAGE_PATH);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert!(requests[0]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer ")));
    assert_eq!(requests[0].header("chatgpt-account-id"), Some("acct-123"));
    assert!(
        server.requests_to(RESPONSES_PATH).is_empty(),
        "no image quota spent"
    );
}

#[test]
fn usage_text_names_the_plan_and_the_five_hour_window() {
    let server = Server::start();
    server.enqueue(USAGE_PATH, Reply::json(200, &usage_body()));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["--usage"]);
    assert_eq!(run.code, 0, "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "plan: plus");
    assert!(
        lines[1].starts_with("5-hour window: 42% used, resets "),
        "{run}"
    );
    assert!(lines[1].contains("(in 1h 1"), "{run}");
}

#[test]
fn usage_refreshes_an_expired_token_first_and_once_more_on_a_401() {
    let server = Server::start();
    let used = single_use_oauth(&server);
    server.enqueue(
        USAGE_PATH,
        Reply::json(401, &json!({"error": {"message": "expired"}})),
    );
    server.enqueue(USAGE_PATH, Reply::json(200, &usage_body()));
    let sandbox = Sandbox::new();
    write_json(&sandbox.home().join(".codex/auth.json"), &codex_auth(-60));
    let run = run_against(&sandbox, &server, &["--usage", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        used.lock().unwrap().as_slice(),
        ["refresh-0", "refresh-1"],
        "stale first, then the 401"
    );
    assert_eq!(server.requests_to(USAGE_PATH).len(), 2);
}

#[test]
fn a_non_2xx_answer_is_explained_and_a_body_without_rate_limit_names_it() {
    let server = Server::start();
    server.enqueue(
        USAGE_PATH,
        Reply::json(503, &json!({"error": {"message": "down for maintenance"}})),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["--usage"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("\nError: HTTP 503 Service Unavailable\n{\"error\""),
        "{run}"
    );
    assert_eq!(run.stdout, "");

    server.enqueue(USAGE_PATH, Reply::json(200, &json!({"plan_type": "plus"})));
    let run = run_against(&sandbox, &server, &["--usage", "--json"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("\nError: usage response has no rate_limit"),
        "{run}"
    );
}

/// `--usage` writes reset times as the 429 message does (SPEC §11: `3:41 PM`).
#[test]
fn usage_reset_times_use_the_same_clock_style_as_the_usage_limit_message() {
    let server = Server::start();
    server.enqueue(USAGE_PATH, Reply::json(200, &usage_body()));
    let mut sandbox = authed_sandbox();
    sandbox.env("TZ", "UTC");
    let run = run_against(&sandbox, &server, &["--usage"]);
    assert_eq!(run.code, 0, "{run}");
    let line = run.stdout.lines().nth(1).unwrap();
    let when = line
        .split(", resets ")
        .nth(1)
        .and_then(|rest| rest.split(" (in ").next())
        .unwrap_or_else(|| panic!("{run}"));
    // "9:30 PM" today, "Dec 2, 12:30 AM" when the reset falls on another day.
    let clock = when.rsplit(", ").next().unwrap();
    let (time, half) = clock.split_once(' ').unwrap_or_else(|| panic!("{run}"));
    assert!(half == "AM" || half == "PM", "{run}");
    let (h, m) = time.split_once(':').unwrap_or_else(|| panic!("{run}"));
    assert!((1..=12).contains(&h.parse::<u32>().unwrap()), "{run}");
    assert_eq!(m.len(), 2, "{run}");
}
