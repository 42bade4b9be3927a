//! Issue #22: `--pool` (many accounts, cooldowns shared through the data directory, failover on
//! a usage limit), `--usage --pool`, the exact Codex Images request, and `--backend auto`.
//!
//! The loopback backend tells accounts apart by `ChatGPT-Account-ID`.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const IMAGES_GEN: &str = "/backend-api/codex/images/generations";
const IMAGES_EDIT: &str = "/backend-api/codex/images/edits";
const USAGE: &str = "/backend-api/wham/usage";

/// How one account answers an image request.
#[derive(Clone, Copy, PartialEq)]
enum Acts {
    Image,
    Limit,
}

fn limit_body(secs: i64) -> Value {
    json!({"error": {"type": "usage_limit_reached", "plan_type": "plus",
        "message": "The usage limit has been reached", "resets_in_seconds": secs}})
}

/// A Codex `auth.json` for `account` at `path`.
fn account_file(path: &Path, account: &str) -> String {
    let mut auth = codex_auth(3600);
    auth["tokens"]["account_id"] = json!(account);
    write_json(path, &auth);
    path.display().to_string()
}

/// A backend answering per account: `Image` makes one image, `Limit` is a usage-limit 429 that
/// resets in `reset_secs`. `wham/usage` answers a plan per account.
fn accounts_backend(server: &Server, acts: HashMap<&'static str, Acts>, reset_secs: i64) {
    let png = png_bytes(7, 300);
    server.handle(move |request| {
        let account = request.header("chatgpt-account-id").unwrap_or_default();
        if request.path.starts_with(USAGE) {
            return Reply::json(
                200,
                &json!({"plan_type": format!("plan-{account}"), "rate_limit": {
                    "allowed": true, "limit_reached": false,
                    "primary_window": {"used_percent": 10, "limit_window_seconds": 18000,
                        "reset_after_seconds": 600}, "secondary_window": null}}),
            );
        }
        match acts.get(account).copied().unwrap_or(Acts::Image) {
            Acts::Limit => Reply::json(429, &limit_body(reset_secs)),
            Acts::Image => image_stream(&[("ig_1", &png)]),
        }
    });
}

fn accounts_of(server: &Server, path: &str) -> Vec<String> {
    server
        .requests_to(path)
        .iter()
        .map(|r| {
            r.header("chatgpt-account-id")
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// A sandbox with two account files (`acct-aaaa-0001`, `acct-bbbb-0002`) and a data
/// directory: (sandbox, their paths, the data directory).
fn two_accounts() -> (Sandbox, Vec<String>, String) {
    let sandbox = Sandbox::new();
    let auths = vec![
        account_file(&sandbox.path("a/auth.json"), "acct-aaaa-0001"),
        account_file(&sandbox.path("b/auth.json"), "acct-bbbb-0002"),
    ];
    let data = sandbox.path("data").display().to_string();
    (sandbox, auths, data)
}

fn pool_args<'a>(data: &'a str, auths: &'a [String]) -> Vec<&'a str> {
    let mut args = vec!["--pool", "--data-dir", data];
    for auth in auths {
        args.push("--auth");
        args.push(auth);
    }
    args
}

#[test]
fn a_429_moves_the_job_and_the_cooldown_outlives_the_process() {
    let server = Server::start();
    accounts_backend(
        &server,
        HashMap::from([
            ("acct-aaaa-0001", Acts::Limit),
            ("acct-bbbb-0002", Acts::Image),
        ]),
        3600,
    );
    let (sandbox, auths, data) = two_accounts();
    let mut args = pool_args(&data, &auths);
    args.extend(["--json", "a fox"]);
    let run = run_against(&sandbox, &server, &args);
    assert_eq!(run.code, 0, "{run}");
    // One request on the throttled account, then the job moved at once.
    assert_eq!(
        accounts_of(&server, RESPONSES_PATH),
        ["acct-aaaa-0001", "acct-bbbb-0002"],
        "{run}"
    );
    let json = run.json();
    assert_eq!(json["account"], "acct…0002");
    assert_eq!(json["images"][0]["account"], "acct…0002");
    assert!(
        run.stderr.contains("acct…0001 reached its usage limit"),
        "{run}"
    );

    // The cooldown is in the data directory: no token, no account id, 0600.
    let file = sandbox.path("data/cooldowns.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("acct-aaaa-0001") && !text.contains("Bearer"),
        "{text}"
    );
    assert!(text.contains("acct…0001"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A second process starts on the healthy account: nothing more for the throttled one.
    let mut args = pool_args(&data, &auths);
    args.extend(["--count", "2", "--json", "a fox"]);
    let run = run_against(&sandbox, &server, &args);
    assert_eq!(run.code, 0, "{run}");
    let sent = accounts_of(&server, RESPONSES_PATH);
    assert_eq!(
        sent.iter().filter(|a| *a == "acct-aaaa-0001").count(),
        1,
        "{sent:?}"
    );
    assert_eq!(sent.len(), 4, "{sent:?}");
    let json = run.json();
    assert_eq!(json["images"][0]["account"], "acct…0002", "{json}");
}

#[test]
fn every_account_exhausted_exits_1_naming_each_reset() {
    let server = Server::start();
    accounts_backend(
        &server,
        HashMap::from([
            ("acct-aaaa-0001", Acts::Limit),
            ("acct-bbbb-0002", Acts::Limit),
        ]),
        3600,
    );
    let (sandbox, auths, data) = two_accounts();
    let mut args = pool_args(&data, &auths);
    args.push("a fox");
    let run = run_against(&sandbox, &server, &args);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(accounts_of(&server, RESPONSES_PATH).len(), 2, "{run}");
    assert!(
        run.stderr
            .contains("Every account in the pool is on cooldown"),
        "{run}"
    );
    for name in ["acct…0001: resets at ", "acct…0002: resets at "] {
        assert!(run.stderr.contains(name), "{name}\n{run}");
    }
    // The next run sends nothing at all.
    let run = run_against(&sandbox, &server, &args);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(accounts_of(&server, RESPONSES_PATH).len(), 2, "{run}");
}

#[test]
fn one_account_in_two_stores_is_one_member() {
    let server = Server::start();
    accounts_backend(
        &server,
        HashMap::from([
            ("acct-dup-000001", Acts::Limit),
            ("acct-other-0002", Acts::Limit),
        ]),
        3600,
    );
    let sandbox = Sandbox::new();
    // Discovery: the Codex home and an OpenClaw store holding the same account and one more.
    account_file(&sandbox.home().join(".codex/auth.json"), "acct-dup-000001");
    let expires = (now_secs() + 3600) * 1000;
    write_json(
        &sandbox
            .home()
            .join(".openclaw/agents/main/agent/auth-profiles.json"),
        &json!({"version": 1, "profiles": {
            "openai-codex:dup": openclaw_profile(&jwt(now_secs() + 3600), "r1", "acct-dup-000001", expires),
            "openai-codex:other": openclaw_profile(&jwt(now_secs() + 3600), "r2", "acct-other-0002", expires),
        }}),
    );
    let data = sandbox.path("data").display().to_string();
    let run = run_against(&sandbox, &server, &["--pool", "--data-dir", &data, "a fox"]);
    assert_eq!(run.code, 1, "{run}");
    let mut sent = accounts_of(&server, RESPONSES_PATH);
    sent.sort();
    assert_eq!(sent, ["acct-dup-000001", "acct-other-0002"], "{run}");
    // OpenClaw profiles have an email: that is the name shown (redacted in messages).
    assert!(run.stderr.contains("a***@example.com"), "{run}");
}

#[test]
fn usage_pool_reports_every_account() {
    let server = Server::start();
    accounts_backend(&server, HashMap::new(), 3600);
    let (sandbox, auths, data) = two_accounts();
    let mut args = pool_args(&data, &auths);
    args.extend(["--usage", "--json"]);
    let run = run_against(&sandbox, &server, &args);
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    let items = json.as_array().expect("an array");
    assert_eq!(items.len(), 2, "{json}");
    assert_eq!(
        object_keys(&items[0]),
        [
            "plan_type",
            "allowed",
            "limit_reached",
            "primary",
            "secondary",
            "account"
        ]
    );
    assert_eq!(items[0]["account"], "acct…0001");
    assert_eq!(items[0]["plan_type"], "plan-acct-aaaa-0001");
    assert_eq!(items[1]["plan_type"], "plan-acct-bbbb-0002");

    let mut args = pool_args(&data, &auths);
    args.push("--usage");
    let run = run_against(&sandbox, &server, &args);
    assert_eq!(run.code, 0, "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run}");
    assert!(lines[0].starts_with("ACCOUNT"), "{run}");
    assert!(
        lines[1].starts_with("acct…0001") && lines[1].contains("5-hour 10%"),
        "{run}"
    );
}

// ---------------------------------------------------------------------------------------------
// The Images route, exactly as Codex sends it
// ---------------------------------------------------------------------------------------------

fn images_answer(png: &[u8]) -> Value {
    json!({"created": 1_778_832_973, "background": "opaque", "data": [{"b64_json": b64(png)}],
        "output_format": "png", "quality": "medium", "size": "1024x1536",
        "usage": {"input_tokens": 17, "output_tokens": 1372, "total_tokens": 1389}})
}

#[test]
fn the_images_request_is_codexs_for_both_operations() {
    let server = Server::start();
    let png = png_bytes(3, 200);
    let answer = images_answer(&png);
    server.handle(move |_| Reply::json(200, &answer));
    let sandbox = authed_sandbox();
    let run = run_against(
        &sandbox,
        &server,
        &["--backend", "images", "--json", "a fox"],
    );
    assert_eq!(run.code, 0, "{run}");
    let request = &server.requests_to(IMAGES_GEN)[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        String::from_utf8_lossy(&request.body),
        r#"{"prompt":"a fox","background":"auto","model":"gpt-image-2","quality":"auto","size":"auto"}"#
    );
    let mut names: Vec<String> = request
        .headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    names.sort();
    for name in [
        "authorization",
        "chatgpt-account-id",
        "content-type",
        "originator",
        "user-agent",
        "version",
    ] {
        assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
    }
    // No Accept of its own: reqwest's default, as in Codex (also reqwest).
    assert_eq!(request.header("accept"), Some("*/*"));
    for absent in [
        "session-id",
        "thread-id",
        "x-client-request-id",
        "openai-beta",
    ] {
        assert!(!names.iter().any(|n| n == absent), "{absent}: {names:?}");
    }
    assert_eq!(request.header("chatgpt-account-id"), Some("acct-123"));
    let json = run.json();
    assert_eq!(json["response_metadata"]["output_format"], "png");
    assert_eq!(json["response_metadata"]["usage"]["total_tokens"], 1389);

    let reference = sandbox.work().join("ref.png");
    std::fs::write(&reference, png_bytes(4, 100)).unwrap();
    let run = run_against(
        &sandbox,
        &server,
        &[
            "--backend",
            "images",
            "--quality",
            "high",
            "-i",
            "ref.png",
            "an edit",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let request = &server.requests_to(IMAGES_EDIT)[0];
    let body = request.json();
    assert_eq!(
        object_keys(&body),
        ["images", "prompt", "background", "model", "quality", "size"]
    );
    let url = body["images"][0]["image_url"].as_str().unwrap();
    assert!(url.starts_with("data:image/png;base64,"), "{url}");
    assert_eq!(body["images"].as_array().unwrap().len(), 1);
    assert_eq!(body["quality"], "high");
    // The honest report: the backend says it made medium quality.
    assert!(
        run.stderr
            .contains("requested quality high, the backend returned medium"),
        "{run}"
    );
}

// ---------------------------------------------------------------------------------------------
// --backend auto
// ---------------------------------------------------------------------------------------------

/// The Images route answers `images`; `/responses` makes one image.
fn auto_backend(server: &Server, images: Reply) {
    server.enqueue(IMAGES_GEN, images);
    let png = png_bytes(5, 300);
    server.handle(move |_| image_stream(&[("ig_r", &png)]));
}

#[test]
fn auto_falls_back_once_on_each_route_failure() {
    let cases: Vec<(Reply, &str)> = vec![
        (
            Reply::json(404, &json!({"detail": "Not Found"})),
            "HTTP 404",
        ),
        (
            Reply::json(405, &json!({"detail": "Method Not Allowed"})),
            "HTTP 405",
        ),
        (Reply::json(410, &json!({"detail": "Gone"})), "HTTP 410"),
        (
            Reply::json(
                400,
                &json!({"error": {"message": "Unsupported parameter: 'background'"}}),
            ),
            "HTTP 400",
        ),
        (
            Reply::json(200, &json!({"created": 1, "data": []})),
            "without image data",
        ),
    ];
    for (reply, reason) in cases {
        let server = Server::start();
        auto_backend(&server, reply);
        let sandbox = authed_sandbox();
        let run = run_against(&sandbox, &server, &["--backend", "auto", "--json", "a fox"]);
        assert_eq!(run.code, 0, "{reason}: {run}");
        assert_eq!(server.requests_to(IMAGES_GEN).len(), 1, "{reason}: {run}");
        let responses = server.requests_to(RESPONSES_PATH);
        assert_eq!(responses.len(), 1, "{reason}: {run}");
        assert_eq!(responses[0].json()["model"], "gpt-5.4");
        let json = run.json();
        assert_eq!(json["route"], "responses", "{reason}");
        assert_eq!(json["images"][0]["route"], "responses", "{reason}");
        let why = json["route_fallback"].as_str().unwrap_or_default();
        assert!(why.contains(reason), "{reason}: {why}");
    }
}

#[test]
fn auto_stays_on_a_usage_limit_a_refusal_and_a_saved_image() {
    // A usage limit: the account is out, another route will not help.
    let server = Server::start();
    auto_backend(&server, Reply::json(429, &limit_body(600)));
    let run = run_against(&authed_sandbox(), &server, &["--backend", "auto", "a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(server.requests_to(RESPONSES_PATH).is_empty(), "{run}");

    // A content refusal in a 2xx answer.
    let server = Server::start();
    auto_backend(
        &server,
        Reply::json(
            200,
            &json!({"data": [], "error": {"code": "moderation_blocked", "message": "blocked by safety"}}),
        ),
    );
    let run = run_against(&authed_sandbox(), &server, &["--backend", "auto", "a fox"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(server.requests_to(RESPONSES_PATH).is_empty(), "{run}");

    // A saved image: done, on the Images route.
    let server = Server::start();
    auto_backend(
        &server,
        Reply::json(200, &images_answer(&png_bytes(6, 100))),
    );
    let run = run_against(
        &authed_sandbox(),
        &server,
        &["--backend", "auto", "--json", "a fox"],
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(server.requests_to(RESPONSES_PATH).is_empty(), "{run}");
    let json = run.json();
    assert_eq!(json["route"], "images");
    assert_eq!(json["route_fallback"], Value::Null);
    assert_eq!(json["model"], "gpt-image-2");

    // A control only /responses has: straight there, and said why.
    let server = Server::start();
    auto_backend(&server, Reply::json(404, &json!({})));
    let run = run_against(
        &authed_sandbox(),
        &server,
        &[
            "--backend",
            "auto",
            "--partial-images",
            "1",
            "--json",
            "a fox",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(server.requests_to(IMAGES_GEN).is_empty(), "{run}");
    assert_eq!(
        run.json()["route_fallback"],
        "--partial-images needs the responses route"
    );
}

// ---------------------------------------------------------------------------------------------
// The service: pause and resume
// ---------------------------------------------------------------------------------------------

async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

async fn post_job(svc: &Svc, prompt: &str) -> String {
    let response = reqwest::Client::new()
        .post(svc.url("/v1/jobs"))
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().expect("a job id").to_string()
}

async fn status_of(svc: &Svc, id: &str) -> Value {
    get_json(&svc.url(&format!("/v1/jobs/{id}"))).await
}

async fn until(svc: &Svc, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let job = status_of(svc, id).await;
        if done(&job) {
            return job;
        }
        assert!(start.elapsed() < limit, "{job}\n{}", svc.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first `n` image requests are a usage limit resetting in 3 s, then images.
fn limited_then_images(server: &Server, n: usize) {
    let png = png_bytes(9, 300);
    let seen = Arc::new(Mutex::new(0usize));
    server.handle(move |request| {
        if request.path.starts_with(USAGE) {
            return Reply::json(404, &json!({}));
        }
        let mut seen = seen.lock().unwrap();
        *seen += 1;
        if *seen <= n {
            Reply::json(429, &limit_body(3))
        } else {
            image_stream(&[("ig_1", &png)])
        }
    });
}

fn image_requests(server: &Server) -> usize {
    server.requests_to(RESPONSES_PATH).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_service_pauses_at_the_limit_and_resumes_by_itself() {
    let server = Server::start();
    limited_then_images(&server, 1);
    let sandbox = Sandbox::new();
    let auth = account_file(&sandbox.path("a/auth.json"), "acct-aaaa-0001");
    let data: PathBuf = sandbox.path("data");
    let svc = Svc::start(
        &sandbox,
        &server,
        &data,
        &["--pool", "--auth", &auth, "--jobs", "1"],
    );
    let first = post_job(&svc, "one").await;
    // The 429 sends the job back to the queue; the service reports the pause.
    let health = {
        let start = Instant::now();
        loop {
            let health = get_json(&svc.url("/health")).await;
            if !health["paused_until"].is_null() {
                break health;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{health}\n{}",
                svc.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    assert!(
        health["paused_until"].as_str().unwrap().ends_with('Z'),
        "{health}"
    );
    let second = post_job(&svc, "two").await;
    assert_eq!(status_of(&svc, &second).await["status"], "queued");
    assert_eq!(image_requests(&server), 1, "nothing sent during the pause");
    // At the reset both jobs run.
    for id in [&first, &second] {
        let job = until(&svc, id, Duration::from_secs(20), |j| {
            j["status"] == "completed"
        })
        .await;
        assert_eq!(job["images"][0]["account"], "acct…0001", "{job}");
    }
    assert_eq!(image_requests(&server), 3);
    assert!(get_json(&svc.url("/health")).await["paused_until"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_service_sends_nothing_until_the_reset() {
    let server = Server::start();
    limited_then_images(&server, 1);
    let sandbox = authed_sandbox();
    let data: PathBuf = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &["--jobs", "1"]);
    let first = post_job(&svc, "one").await;
    let job = until(&svc, &first, Duration::from_secs(10), |j| {
        j["status"] == "failed"
    })
    .await;
    assert_eq!(job["error"]["code"], "usage_limit_reached", "{job}");
    let second = post_job(&svc, "two").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_of(&svc, &second).await["status"], "queued");
    assert_eq!(image_requests(&server), 1);
    assert!(!get_json(&svc.url("/health")).await["paused_until"].is_null());
    until(&svc, &second, Duration::from_secs(20), |j| {
        j["status"] == "completed"
    })
    .await;
    assert_eq!(image_requests(&server), 2);
}

#[test]
fn openclaw_cooldowns_and_order_are_respected() {
    let server = Server::start();
    accounts_backend(&server, HashMap::new(), 3600);
    let sandbox = Sandbox::new();
    let expires = (now_secs() + 3600) * 1000;
    let later = (now_secs() + 3600) * 1000;
    let store = sandbox.path("openclaw/auth-profiles.json");
    write_json(
        &store,
        &json!({"version": 1,
            "order": {"openai-codex": ["openai-codex:second", "openai-codex:first", "openai-codex:cool"]},
            "usageStats": {"openai-codex:cool": {"cooldownUntil": later, "errorCount": 1}},
            "profiles": {
                "openai-codex:first": openclaw_profile(&jwt(now_secs() + 3600), "r1", "acct-first-0001", expires),
                "openai-codex:second": openclaw_profile(&jwt(now_secs() + 3600), "r2", "acct-second-002", expires),
                "openai-codex:cool": openclaw_profile(&jwt(now_secs() + 3600), "r3", "acct-cool-00003", expires),
        }}),
    );
    let data = sandbox.path("data").display().to_string();
    let auth = store.display().to_string();
    let run = run_against(
        &sandbox,
        &server,
        &[
            "--pool",
            "--auth",
            &auth,
            "--data-dir",
            &data,
            "--count",
            "3",
            "--jobs",
            "1",
            "a fox",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    // OpenClaw's order first; the profile OpenClaw has on cooldown is never asked.
    assert_eq!(
        accounts_of(&server, RESPONSES_PATH),
        ["acct-second-002", "acct-first-0001", "acct-second-002"],
        "{run}"
    );
}

#[test]
fn the_backend_variable_sets_auto_for_batch_too() {
    let server = Server::start();
    auto_backend(&server, Reply::json(404, &json!({"detail": "Not Found"})));
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_BACKEND", "auto");
    std::fs::write(
        sandbox.work().join("jobs.jsonl"),
        "{\"id\": \"one\", \"prompt\": \"a fox\"}\n",
    )
    .unwrap();
    let run = run_against(&sandbox, &server, &["--batch", "jobs.jsonl"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(server.requests_to(IMAGES_GEN).len(), 1, "{run}");
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1, "{run}");
    let found = files_named(&sandbox.work(), "results.jsonl");
    let results = std::fs::read_to_string(&found[0]).unwrap();
    let record: Value = serde_json::from_str(results.lines().next().unwrap()).unwrap();
    assert_eq!(record["images"][0]["route"], "responses", "{record}");
}
