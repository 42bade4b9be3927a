//! OAuth refresh against a loopback OAuth endpoint: merges that keep every field, each recovery
//! path, the OpenClaw lock protocol, fallback, the 401 retry, and many processes at once.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const RESPONSES: &str = "/backend-api/codex/responses";
const TOKEN: &str = "/oauth/token";

fn expired_codex(sandbox: &Sandbox) -> PathBuf {
    let path = sandbox.home().join(".codex/auth.json");
    let mut auth = codex_auth(-60);
    auth["zz_unknown"] = json!({"keep": [1, 2, 3]});
    write_json(&path, &auth);
    path
}

fn main_store(sandbox: &Sandbox) -> PathBuf {
    sandbox
        .home()
        .join(".openclaw/agents/main/agent/auth-profiles.json")
}

/// An OpenClaw store with an expired `openai-codex:default`, another provider and unknown keys.
fn expired_openclaw(path: &Path) -> Value {
    let store = json!({
        "version": 1,
        "profiles": {
            "anthropic:default": {"type": "oauth", "provider": "anthropic", "access": "a-tok", "refresh": "a-ref", "expires": 1},
            "openai-codex:default": {
                "type": "oauth", "provider": "openai-codex",
                "access": jwt(now_secs() - 60), "refresh": "refresh-0",
                "expires": (now_secs() - 60) * 1000, "accountId": "acct-123",
                "email": "me@example.com", "chatgptPlanType": "plus", "copyToAgents": true
            }
        },
        "usageStats": {"openai-codex:default": {"lastUsed": 5}},
        "zz_trailing": "kept"
    });
    write_json(path, &store);
    store
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn an_expired_codex_token_is_refreshed_and_every_other_field_kept() {
    let server = Server::start();
    let used = single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let path = expired_codex(&sandbox);
    let before = read_json(&path);
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--json", "a cat"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(*used.lock().unwrap(), vec!["refresh-0"]);

    let token_req = &server.requests_to(TOKEN)[0];
    assert_eq!(
        token_req.json(),
        json!({"client_id": "app_EMoamEEZ73f0CkXaXp7hrann", "grant_type": "refresh_token", "refresh_token": "refresh-0"})
    );
    assert_eq!(token_req.header("originator"), Some("codex_cli_rs"));
    assert_eq!(token_req.header("accept"), Some("application/json"));

    let after = read_json(&path);
    assert_eq!(
        object_keys(&after),
        object_keys(&before),
        "top-level key order kept"
    );
    assert_eq!(
        object_keys(&after["tokens"]),
        object_keys(&before["tokens"])
    );
    assert_eq!(after["zz_unknown"], before["zz_unknown"]);
    assert_eq!(after["tokens"]["refresh_token"], "refresh-1");
    assert_eq!(after["tokens"]["id_token"], "id-1");
    assert_ne!(after["last_refresh"], before["last_refresh"]);
    assert!(after["last_refresh"].as_str().unwrap().ends_with('Z'));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("{\n  \"") && text.ends_with("}\n"),
        "2-space JSON with newline"
    );
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    assert!(files_named(&sandbox.home(), ".tmp").is_empty());
    assert!(files_named(&sandbox.home(), ".lock").is_empty());

    let gen = &server.requests_to(RESPONSES)[0];
    let new_access = after["tokens"]["access_token"].as_str().unwrap();
    assert_eq!(
        gen.header("authorization"),
        Some(format!("Bearer {new_access}").as_str())
    );
    let summary = run.json();
    assert_eq!(summary["auth_refresh"]["refreshed"], true);
    assert_eq!(summary["auth_refresh"]["skipped"], Value::Null);
    assert!(
        summary["auth_refresh"]["access_token_expires_in_seconds"]
            .as_i64()
            .unwrap()
            > 3500
    );
    assert!(!run.stderr.contains("refresh-0") && !run.stdout.contains(new_access));
}

#[test]
fn an_openclaw_refresh_touches_only_the_selected_profile() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let path = main_store(&sandbox);
    let before = expired_openclaw(&path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--refresh-only", "--json"]));
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["refreshed"], true);
    assert_eq!(report["profile_id"], "openai-codex:default");
    assert_eq!(report["auth_format"], "openclaw-auth-profiles");

    let after = read_json(&path);
    let profile = &after["profiles"]["openai-codex:default"];
    assert_eq!(profile["refresh"], "refresh-1");
    assert_eq!(profile["idToken"], "id-1");
    let expires = profile["expires"].as_i64().unwrap();
    assert!(
        (expires / 1000 - now_secs() - 3600).abs() < 30,
        "expires from expires_in"
    );
    for key in [
        "chatgptPlanType",
        "copyToAgents",
        "email",
        "accountId",
        "type",
        "provider",
    ] {
        assert_eq!(
            profile[key], before["profiles"]["openai-codex:default"][key],
            "{key}"
        );
    }
    assert_eq!(
        after["profiles"]["anthropic:default"],
        before["profiles"]["anthropic:default"]
    );
    assert_eq!(after["usageStats"], before["usageStats"]);
    let keys = object_keys(&after);
    assert_eq!(
        keys,
        vec!["version", "profiles", "usageStats", "zz_trailing"]
    );
    let profile_keys = object_keys(profile);
    assert_eq!(
        profile_keys,
        vec![
            "type",
            "provider",
            "access",
            "refresh",
            "expires",
            "accountId",
            "email",
            "chatgptPlanType",
            "copyToAgents",
            "idToken"
        ]
    );
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    assert!(files_named(&sandbox.home(), ".lock").is_empty());
}

#[test]
fn refresh_only_in_text_mode_prints_the_store_path() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let path = sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--refresh-only"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stdout, format!("{}\n", path.display()));
    // A fresh token is still refreshed: refresh-only demands it.
    assert_eq!(server.requests_to(TOKEN).len(), 1);
}

#[test]
fn force_refresh_with_smoke_refreshes_then_reports() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let path = sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(
        &sargs,
        &["--smoke", "--force-refresh", "--json"],
    ));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(server.requests_to(TOKEN).len(), 1);
    assert_eq!(read_json(&path)["tokens"]["refresh_token"], "refresh-1");
    assert_eq!(run.json()["auth_path"], path.display().to_string());
    assert!(server.requests_to(RESPONSES).is_empty());
}

#[test]
fn credentials_written_by_another_process_meanwhile_are_adopted() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    let path = expired_codex(&sandbox);
    let fresh_access = jwt(now_secs() + 7200);
    let store = path.clone();
    let written = fresh_access.clone();
    server.enqueue(
        TOKEN,
        Reply {
            steps: vec![Step::Check(Box::new(move || {
                let mut doc = read_json(&store);
                doc["tokens"]["access_token"] = json!(written);
                doc["tokens"]["refresh_token"] = json!("refresh-other");
                write_json(&store, &doc);
            }))],
        }
        .step(Step::Raw(http_json(
            401,
            &json!({"error": {"code": "refresh_token_reused"}}),
        ))),
    );
    let png = png_bytes(3, 100);
    server.enqueue(RESPONSES, image_stream(&[("ig_1", &png)]));
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--json", "x"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["auth_refresh"]["skipped"], "auth changed");
    let gen = &server.requests_to(RESPONSES)[0];
    assert_eq!(
        gen.header("authorization"),
        Some(format!("Bearer {fresh_access}").as_str())
    );
    assert_eq!(read_json(&path)["tokens"]["refresh_token"], "refresh-other");
}

fn http_json(status: u16, value: &Value) -> Vec<u8> {
    let body = value.to_string();
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn a_reuse_error_with_a_rotated_token_in_the_store_retries_once_with_it() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    let path = expired_codex(&sandbox);
    let store = path.clone();
    server.enqueue(
        TOKEN,
        Reply {
            steps: vec![Step::Check(Box::new(move || {
                // Someone rotated the refresh token but the access token is still expired.
                let mut doc = read_json(&store);
                doc["tokens"]["refresh_token"] = json!("refresh-rotated");
                write_json(&store, &doc);
            }))],
        }
        .step(Step::Raw(http_json(
            401,
            &json!({"error": "refresh_token_reused"}),
        ))),
    );
    server.enqueue(
        TOKEN,
        Reply::json(
            200,
            &json!({"access_token": jwt(now_secs() + 3600), "refresh_token": "refresh-9"}),
        ),
    );
    let png = png_bytes(3, 100);
    server.enqueue(RESPONSES, image_stream(&[("ig_1", &png)]));
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--json", "x"]));
    assert_eq!(run.code, 0, "{run}");
    let sent: Vec<Value> = server
        .requests_to(TOKEN)
        .iter()
        .map(|r| r.json()["refresh_token"].clone())
        .collect();
    assert_eq!(sent, vec![json!("refresh-0"), json!("refresh-rotated")]);
    assert_eq!(read_json(&path)["tokens"]["refresh_token"], "refresh-9");
    assert_eq!(run.json()["auth_refresh"]["refreshed"], true);
}

#[test]
fn a_reuse_error_carries_on_with_a_still_valid_token_unless_refresh_was_demanded() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    let path = sandbox.home().join(".codex/auth.json");
    write_json(&path, &codex_auth(120)); // valid, but inside the 300 s skew
    let reuse = || Reply::json(401, &json!({"error": {"code": "refresh_token_reused"}}));
    server.enqueue(TOKEN, reuse());
    let png = png_bytes(3, 100);
    server.enqueue(RESPONSES, image_stream(&[("ig_1", &png)]));
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--json", "x"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        run.json()["auth_refresh"]["skipped"],
        "refresh_token_reused; access token still valid"
    );

    server.enqueue(TOKEN, reuse());
    let run = sandbox.run(&with_server(&sargs, &["--force-refresh", "x"]));
    assert_eq!(run.code, 1, "{run}");
    let expected = format!(
        "Error: Refresh token was already used. Sign in again with Codex or OpenClaw OAuth.\nauth store: {} (profile (none))\nfix: run `codex login`, then try again\n",
        path.display()
    );
    assert_eq!(run.stderr, expected);
    assert_eq!(
        server.requests_to(RESPONSES).len(),
        1,
        "no generation after a failed refresh"
    );
}

#[test]
fn refresh_failures_name_the_store_profile_and_fix() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    let path = main_store(&sandbox);
    expired_openclaw(&path);
    server.enqueue(
        TOKEN,
        Reply::json(401, &json!({"error": {"code": "refresh_token_expired"}})),
    );
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--quiet", "x"]));
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.starts_with(
            "Error: Refresh token expired. Sign in again with Codex or OpenClaw OAuth.\n"
        ),
        "{run}"
    );
    assert!(
        run.stderr.contains(&format!(
            "auth store: {} (profile openai-codex:default)",
            path.display()
        )),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("openclaw models auth login --provider openai-codex"),
        "{run}"
    );
    assert!(files_named(&sandbox.home(), ".lock").is_empty());

    server.enqueue(
        TOKEN,
        Reply::json(500, &json!({"error": {"message": "upstream down"}})),
    );
    let run = sandbox.run(&with_server(&sargs, &["--quiet", "x"]));
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .starts_with("Error: Refresh request failed: HTTP 500: upstream down\n"),
        "{run}"
    );
    assert!(
        run.stderr.contains(&format!(
            "codex-imagen --refresh-only --auth {}",
            path.display()
        )),
        "{run}"
    );
}

#[test]
fn no_refresh_refuses_a_needed_refresh_and_a_backend_401_is_final() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    expired_codex(&sandbox);
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--no-refresh", "x"]));
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        run.stderr,
        "Error: Codex OAuth refresh is disabled, but refresh is required: access token expired\n"
    );

    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    server.enqueue(
        RESPONSES,
        Reply::json(401, &json!({"detail": "token revoked"})),
    );
    let run = sandbox.run(&with_server(&sargs, &["--no-refresh", "--quiet", "x"]));
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.starts_with("Error: HTTP 401 Unauthorized\n"),
        "{run}"
    );
    assert!(server.requests_to(TOKEN).is_empty());
    assert_eq!(server.requests_to(RESPONSES).len(), 1);
}

#[test]
fn a_backend_401_refreshes_once_and_runs_one_more_round() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let path = sandbox.with_codex_auth();
    server.enqueue(RESPONSES, Reply::json(401, &json!({"detail": "expired"})));
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--json", "x"]));
    assert_eq!(run.code, 0, "{run}");
    let gens = server.requests_to(RESPONSES);
    assert_eq!(gens.len(), 2);
    let new_access = read_json(&path)["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        gens[1].header("authorization"),
        Some(format!("Bearer {new_access}").as_str())
    );
    assert_ne!(
        gens[0].header("authorization"),
        gens[1].header("authorization")
    );
    assert_eq!(run.json()["auth_refresh"]["refreshed"], true);
}

#[test]
fn an_irrecoverable_discovered_store_falls_back_to_a_compatible_one() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    expired_openclaw(&main_store(&sandbox));
    let codex = sandbox.with_codex_auth(); // same account, fresh
    server.enqueue(
        TOKEN,
        Reply::json(
            401,
            &json!({"error": {"code": "refresh_token_invalidated"}}),
        ),
    );
    let png = png_bytes(3, 100);
    server.enqueue(RESPONSES, image_stream(&[("ig_1", &png)]));
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["x"]));
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "codex-imagen: using fallback auth {}",
            codex.display()
        )),
        "{run}"
    );

    // An explicit --auth store is never bypassed.
    server.enqueue(
        TOKEN,
        Reply::json(
            401,
            &json!({"error": {"code": "refresh_token_invalidated"}}),
        ),
    );
    let explicit = main_store(&sandbox);
    let run = sandbox.run(&with_server(
        &sargs,
        &["--auth", explicit.to_str().unwrap(), "x"],
    ));
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.starts_with("Error: Refresh token was revoked."),
        "{run}"
    );
}

#[test]
fn a_fallback_store_for_another_account_is_skipped() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    expired_openclaw(&main_store(&sandbox));
    let codex = sandbox.home().join(".codex/auth.json");
    let mut other = codex_auth(3600);
    other["tokens"]["account_id"] = json!("someone-else");
    write_json(&codex, &other);
    server.enqueue(
        TOKEN,
        Reply::json(401, &json!({"error": {"code": "refresh_token_expired"}})),
    );
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["x"]));
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("Refresh token expired."), "{run}");
    assert!(server.requests_to(RESPONSES).is_empty());
}

#[test]
fn a_per_agent_store_inherits_a_fresh_profile_from_the_main_agent() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    let agent_dir = sandbox.home().join(".openclaw/agents/worker/agent");
    let agent_store = agent_dir.join("auth-profiles.json");
    expired_openclaw(&agent_store);
    let mut main = expired_openclaw(&main_store(&sandbox));
    main["profiles"]["openai-codex:default"]["access"] = json!(jwt(now_secs() + 3600));
    main["profiles"]["openai-codex:default"]["refresh"] = json!("refresh-main");
    main["profiles"]["openai-codex:default"]["expires"] = json!((now_secs() + 3600) * 1000);
    write_json(&main_store(&sandbox), &main);
    let mut sandbox = sandbox;
    sandbox.env("OPENCLAW_AGENT_DIR", &agent_dir);
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--refresh-only", "--json"]));
    // refresh-only demands a refresh, so inheriting is checked on the proactive (stale) path:
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["skipped"], "inherited fresh OpenClaw main auth");
    assert!(server.requests_to(TOKEN).is_empty());
    let after = read_json(&agent_store);
    assert_eq!(
        after["profiles"]["openai-codex:default"],
        main["profiles"]["openai-codex:default"]
    );
    assert_eq!(after["profiles"]["anthropic:default"]["access"], "a-tok");
}

fn refresh_lock(sandbox: &Sandbox) -> PathBuf {
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(b"openai-codex\0openai-codex:default")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sandbox
        .home()
        .join(format!(".openclaw/locks/oauth-refresh/sha256-{hex}.lock"))
}

#[test]
fn a_lock_held_by_a_live_process_delays_the_refresh_until_it_is_removed() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    expired_openclaw(&main_store(&sandbox));
    let lock = refresh_lock(&sandbox);
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let payload = json!({"pid": std::process::id(), "createdAt": chrono_now()});
    std::fs::write(&lock, payload.to_string()).unwrap();
    let remover = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            std::fs::remove_file(lock).unwrap();
        })
    };
    let sargs = server_args(&server);
    let start = Instant::now();
    let run = sandbox.run(&with_server(&sargs, &["--refresh-only", "--json"]));
    remover.join().unwrap();
    assert_eq!(run.code, 0, "{run}");
    let token_at = server.requests_to(TOKEN)[0].at;
    assert!(
        token_at.duration_since(start) >= Duration::from_millis(1400),
        "refresh waited for the lock"
    );
    assert!(!lock.exists());
}

#[test]
fn a_lock_left_by_a_dead_process_is_taken_over_at_once() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    expired_openclaw(&main_store(&sandbox));
    let dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    let lock = refresh_lock(&sandbox);
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(
        &lock,
        json!({"pid": dead_pid, "createdAt": chrono_now()}).to_string(),
    )
    .unwrap();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--refresh-only"]));
    assert_eq!(run.code, 0, "{run}");
    assert!(run.elapsed < Duration::from_secs(3), "{run}");
    assert!(!lock.exists());
}

#[cfg(unix)]
#[test]
fn a_run_killed_while_holding_the_locks_leaves_none_behind() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    let path = main_store(&sandbox);
    expired_openclaw(&path);
    let before = std::fs::read(&path).unwrap();
    server.enqueue(
        TOKEN,
        Reply {
            steps: vec![Step::Sleep(Duration::from_secs(20))],
        },
    );
    let sargs = server_args(&server);
    let child = sandbox
        .command(&with_server(&sargs, &["--refresh-only"]))
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || !server
        .requests_to(TOKEN)
        .is_empty()));
    assert!(
        refresh_lock(&sandbox).exists(),
        "the refresh lock is held during the request"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143));
    assert!(files_named(&sandbox.home(), ".lock").is_empty());
    assert!(files_named(&sandbox.home(), ".tmp").is_empty());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "store untouched and valid"
    );
}

#[test]
fn eight_processes_on_one_expired_profile_refresh_exactly_once() {
    let server = Server::start();
    let used = single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let path = main_store(&sandbox);
    expired_openclaw(&path);
    run_concurrently_expecting_success(&sandbox, &server, 8, "json store");
    assert_eq!(
        *used.lock().unwrap(),
        vec!["refresh-0"],
        "exactly one refresh request"
    );
    let after = read_json(&path);
    assert_eq!(
        after["profiles"]["openai-codex:default"]["refresh"],
        "refresh-1"
    );
    let new_access = after["profiles"]["openai-codex:default"]["access"]
        .as_str()
        .unwrap();
    let auths: HashSet<String> = server
        .requests_to(RESPONSES)
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(auths, HashSet::from([format!("Bearer {new_access}")]));
    assert!(files_named(&sandbox.home(), ".lock").is_empty());
    assert!(files_named(&sandbox.home(), ".tmp").is_empty());
}

#[test]
fn a_legacy_provider_map_store_is_refreshed_in_place() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let path = sandbox.home().join(".openclaw/credentials/oauth.json");
    let before = json!({
        "anthropic": {"access": "a", "refresh": "b"},
        "openai-codex": {"access": jwt(now_secs() - 10), "refresh": "refresh-0", "accountId": "acct-123", "extra": 1}
    });
    write_json(&path, &before);
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--refresh-only", "--json"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["auth_format"], "openclaw-oauth-json");
    assert_eq!(run.json()["profile_id"], "openai-codex:default");
    let after = read_json(&path);
    assert_eq!(after["anthropic"], before["anthropic"]);
    assert_eq!(after["openai-codex"]["refresh"], "refresh-1");
    assert_eq!(after["openai-codex"]["extra"], 1);
    assert_eq!(after["openai-codex"]["idToken"], "id-1");
    assert!(files_named(&sandbox.home(), ".lock").is_empty());
}

#[test]
fn a_401_that_survives_the_refresh_ends_with_the_sign_in_fix() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let path = sandbox.with_codex_auth();
    for _ in 0..2 {
        server.enqueue(RESPONSES, Reply::json(401, &json!({"detail": "revoked"})));
    }
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["x"]));
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        server.requests_to(RESPONSES).len(),
        2,
        "one refresh, one more round"
    );
    assert_eq!(server.requests_to(TOKEN).len(), 1);
    assert!(
        run.stderr.contains("Error: HTTP 401 Unauthorized\n"),
        "{run}"
    );
    assert!(
        run.stderr.ends_with(&format!(
            "auth store: {} (profile (none))\nfix: run `codex login`, then try again\n",
            path.display()
        )),
        "{run}"
    );
}

#[test]
fn a_usage_401_that_survives_the_refresh_ends_with_the_sign_in_fix() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    for _ in 0..2 {
        server.enqueue(
            "/backend-api/wham/usage",
            Reply::json(401, &json!({"detail": "revoked"})),
        );
    }
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--usage"]));
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .ends_with("fix: run `codex login`, then try again\n"),
        "{run}"
    );
}
