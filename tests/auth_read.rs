//! Reading credentials without refreshing them, seen through `--smoke` (SPEC §2-5, §9.1, §9.3,
//! §14): which store is discovered, how each format and field alias is read, which OpenClaw
//! profile is selected, and what the smoke report says. Every run has its own HOME; no token may
//! ever appear on stdout or stderr.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::*;

/// The `--smoke` keys in order; `credential_state` was appended by issue #15.
const SMOKE_KEYS: [&str; 23] = [
    "auth_path",
    "auth_format",
    "auth_mode",
    "profile_id",
    "provider",
    "email",
    "account_id",
    "last_refresh",
    "access_token_expires_in_seconds",
    "refresh_token_present",
    "backend",
    "endpoint",
    "responses_endpoint",
    "generation_endpoint",
    "edit_endpoint",
    "model",
    "user_agent",
    "out_dir",
    "retries",
    "total_attempts",
    "timeout_seconds",
    "timeout_ms",
    "credential_state",
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn now_ms() -> i64 {
    now_secs() * 1000
}

/// The working directory as the binary sees it (symlinks resolved).
fn work(sandbox: &Sandbox) -> PathBuf {
    sandbox.work().canonicalize().unwrap()
}

fn main_agent(sandbox: &Sandbox) -> PathBuf {
    sandbox.home().join(".openclaw/agents/main/agent")
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

/// A Codex store whose tokens are unique to `tag`, so a report can be traced to its file.
fn codex_store(tag: &str) -> Value {
    json!({
        "auth_mode": "chatgpt",
        "tokens": {
            "access_token": jwt(now_secs() + 3600),
            "refresh_token": format!("refresh-{tag}"),
            "account_id": format!("acct-{tag}")
        },
        "last_refresh": "2026-11-20T10:00:00.000Z"
    })
}

/// An `openai-codex` OAuth profile with an opaque access token.
fn oauth(tag: &str) -> Value {
    json!({"type": "oauth", "provider": "openai-codex", "access": format!("access-{tag}"),
        "refresh": format!("refresh-{tag}"), "accountId": format!("acct-{tag}")})
}

fn with(mut value: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            value.as_object_mut().unwrap().remove(k);
        } else {
            value[k] = v.clone();
        }
    }
    value
}

fn profiles_store(profiles: Value) -> Value {
    json!({"version": 1, "profiles": profiles})
}

/// Every string in a store that is a secret: access, refresh and id tokens.
fn secrets_of(store: &Value) -> Vec<String> {
    let mut found = Vec::new();
    fn walk(v: &Value, key: &str, found: &mut Vec<String>) {
        match v {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, k, found)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, key, found)),
            Value::String(s)
                if [
                    "access",
                    "access_token",
                    "token",
                    "refresh",
                    "refresh_token",
                    "id_token",
                    "idToken",
                ]
                .contains(&key) =>
            {
                found.push(s.clone())
            }
            _ => {}
        }
    }
    walk(store, "", &mut found);
    found
}

#[track_caller]
fn assert_no_secrets(run: &Run, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
            "a token leaked: {secret}\n{run}"
        );
    }
}

/// Every token (8 chars or more, so it cannot occur by chance) in the sandbox's JSON files.
fn sandbox_secrets(sandbox: &Sandbox) -> Vec<String> {
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if let Ok(value) = serde_json::from_str::<Value>(&text) {
                    found.extend(secrets_of(&value).into_iter().filter(|s| s.len() >= 8));
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(sandbox.dir.path(), &mut found);
    found
}

/// `--smoke --json` plus `args`, the command's environment edited by `edit`; must succeed,
/// print the keys in SPEC order as pretty JSON, and leak no token of any store in the sandbox.
#[track_caller]
fn smoke_with(
    sandbox: &Sandbox,
    args: &[&str],
    edit: impl FnOnce(&mut std::process::Command),
) -> Value {
    let mut all = vec!["--smoke", "--json"];
    all.extend_from_slice(args);
    let mut cmd = sandbox.command(&all);
    edit(&mut cmd);
    let run = run_command(cmd);
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    let keys = object_keys(&report);
    assert_eq!(keys, SMOKE_KEYS, "{run}");
    // Pretty JSON with a 2-space indent and a trailing newline.
    let pretty = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(run.stdout, format!("{pretty}\n"), "{run}");
    assert_no_secrets(&run, &sandbox_secrets(sandbox));
    report
}

#[track_caller]
fn smoke(sandbox: &Sandbox, args: &[&str]) -> Value {
    smoke_with(sandbox, args, |_| {})
}

/// `--smoke` that must fail with exit 1; returns stderr.
#[track_caller]
fn smoke_error(sandbox: &Sandbox, args: &[&str]) -> String {
    let mut all = vec!["--smoke", "--json"];
    all.extend_from_slice(args);
    let run = sandbox.run(&all);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "", "{run}");
    run.stderr
}

#[track_caller]
fn assert_near(value: &Value, expected: i64) {
    let n = value
        .as_i64()
        .unwrap_or_else(|| panic!("not an integer: {value}"));
    assert!(
        (expected - 3..=expected + 1).contains(&n),
        "{n} is not about {expected}"
    );
}

// ---------------------------------------------------------------------------------------------
// Discovery (SPEC §3)
// ---------------------------------------------------------------------------------------------

const NO_AUTH_FIX: &str = "fix: sign in with `codex login` (Codex CLI) or \
`openclaw models auth login --provider openai` (OpenClaw), or pass --auth <path>";

/// The "no auth found" error: the JSON candidates with the OpenClaw databases discovery looked
/// for spliced in ahead of the active agent's `auth-profiles.json`, then the fix line (both
/// added by issue #11 so a newcomer's first error helps).
fn no_auth_error(json: &[PathBuf], databases: &[PathBuf]) -> String {
    let at = json
        .iter()
        .position(|p| p.ends_with("auth-profiles.json"))
        .unwrap_or(json.len());
    let listed: String = json[..at]
        .iter()
        .chain(databases)
        .chain(&json[at..])
        .map(|p| format!("  - {}\n", p.display()))
        .collect();
    format!("Error: No auth JSON found. Tried:\n{listed}{NO_AUTH_FIX}\n")
}

/// The databases looked for with the default main agent.
fn default_databases(sandbox: &Sandbox) -> Vec<PathBuf> {
    let home = sandbox.home();
    vec![
        home.join(".openclaw/state/openclaw.sqlite"),
        home.join(".openclaw/agents/main/agent/openclaw-agent.sqlite"),
    ]
}

#[test]
fn discovery_walks_every_candidate_in_order_and_the_first_existing_file_wins() {
    let mut sandbox = Sandbox::new();
    let dir = sandbox.path("stores");
    let stores: Vec<PathBuf> = vec![
        dir.join("imagen.json"),
        dir.join("openclaw-codex.json"),
        dir.join("codex-auth.json"),
        dir.join("agent/auth-profiles.json"),
        dir.join("agent/auth.json"),
        dir.join("oauth/oauth.json"),
        dir.join("codex-home/auth.json"),
        sandbox.home().join(".codex/auth.json"),
    ];
    sandbox
        .env("CODEX_IMAGEN_AUTH_JSON", &stores[0])
        .env("OPENCLAW_CODEX_AUTH_JSON", &stores[1])
        .env("CODEX_AUTH_JSON", &stores[2])
        .env("OPENCLAW_AGENT_DIR", dir.join("agent"))
        .env("OPENCLAW_OAUTH_DIR", dir.join("oauth"))
        .env("CODEX_HOME", dir.join("codex-home"));
    // The main agent's stores are not candidates once OPENCLAW_AGENT_DIR is set.
    write_json(
        &main_agent(&sandbox).join("auth.json"),
        &json!({"openai-codex": oauth("main")}),
    );
    for (i, path) in stores.iter().enumerate() {
        let store = match i {
            3 => profiles_store(json!({"openai-codex:default": oauth("3")})),
            4 | 5 => json!({"openai-codex": oauth(&i.to_string())}),
            _ => codex_store(&i.to_string()),
        };
        write_json(path, &store);
    }
    for (i, path) in stores.iter().enumerate() {
        let report = smoke(&sandbox, &[]);
        assert_eq!(report["auth_path"], show(path), "step {i}");
        assert_eq!(report["account_id"], format!("acct-{i}"), "step {i}");
        std::fs::remove_file(path).unwrap();
    }
    let stderr = smoke_error(&sandbox, &[]);
    let databases = [
        sandbox.home().join(".openclaw/state/openclaw.sqlite"),
        dir.join("agent/openclaw-agent.sqlite"),
    ];
    assert_eq!(stderr, no_auth_error(&stores, &databases));
}

#[test]
fn with_nothing_configured_the_error_lists_the_four_default_places() {
    let sandbox = Sandbox::new();
    let home = sandbox.home();
    let run = sandbox.run(&["--smoke"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        run.stderr,
        no_auth_error(
            &[
                home.join(".openclaw/agents/main/agent/auth-profiles.json"),
                home.join(".openclaw/agents/main/agent/auth.json"),
                home.join(".openclaw/credentials/oauth.json"),
                home.join(".codex/auth.json"),
            ],
            &default_databases(&sandbox)
        )
    );
    // A generation run fails the same way, before it looks for a prompt.
    let run = sandbox.run(&["a prompt"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .starts_with("Error: No auth JSON found. Tried:\n"),
        "{run}"
    );
}

#[test]
fn the_main_agent_stores_are_found_in_order_under_the_default_state_dir() {
    let sandbox = Sandbox::new();
    let agent = main_agent(&sandbox);
    let profiles = agent.join("auth-profiles.json");
    let legacy = agent.join("auth.json");
    let oauth_json = sandbox.home().join(".openclaw/credentials/oauth.json");
    let codex = sandbox.with_codex_auth();
    write_json(
        &profiles,
        &profiles_store(json!({"openai-codex:default": oauth("p")})),
    );
    write_json(&legacy, &json!({"openai-codex": oauth("l")}));
    write_json(&oauth_json, &json!({"openai-codex": oauth("o")}));
    for (path, format) in [
        (&profiles, "openclaw-auth-profiles"),
        (&legacy, "openclaw-legacy-auth-json"),
        (&oauth_json, "openclaw-oauth-json"),
        (&codex, "codex-auth-json"),
    ] {
        let report = smoke(&sandbox, &[]);
        assert_eq!(report["auth_path"], show(path));
        assert_eq!(report["auth_format"], format);
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn the_pi_agent_dir_is_used_when_openclaw_agent_dir_is_not_set() {
    let mut sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let openclaw_agent = sandbox.path("openclaw-agent");
    let pi_agent = sandbox.path("pi-agent");
    write_json(
        &pi_agent.join("auth.json"),
        &json!({"openai-codex": oauth("pi")}),
    );
    write_json(
        &openclaw_agent.join("auth-profiles.json"),
        &profiles_store(json!({"openai-codex:default": oauth("oc")})),
    );
    sandbox.env("PI_CODING_AGENT_DIR", &pi_agent);
    let report = smoke(&sandbox, &[]);
    assert_eq!(report["auth_path"], show(&pi_agent.join("auth.json")));

    sandbox.env("OPENCLAW_AGENT_DIR", &openclaw_agent);
    let report = smoke(&sandbox, &[]);
    assert_eq!(
        report["auth_path"],
        show(&openclaw_agent.join("auth-profiles.json")),
        "OPENCLAW_AGENT_DIR wins over PI_CODING_AGENT_DIR"
    );
}

#[test]
fn the_openclaw_state_dir_moves_the_agent_and_credentials_directories() {
    let mut sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    // Files under the default ~/.openclaw no longer count.
    write_json(
        &main_agent(&sandbox).join("auth.json"),
        &json!({"openai-codex": oauth("home")}),
    );
    let state = sandbox.path("state");
    sandbox.env("OPENCLAW_STATE_DIR", &state);
    let agent_store = state.join("agents/main/agent/auth-profiles.json");
    let oauth_store = state.join("credentials/oauth.json");
    write_json(
        &agent_store,
        &profiles_store(json!({"openai-codex:default": oauth("a")})),
    );
    write_json(&oauth_store, &json!({"openai-codex": oauth("o")}));
    assert_eq!(smoke(&sandbox, &[])["auth_path"], show(&agent_store));
    std::fs::remove_file(&agent_store).unwrap();
    assert_eq!(smoke(&sandbox, &[])["auth_path"], show(&oauth_store));

    // OPENCLAW_OAUTH_DIR overrides the credentials directory alone.
    let oauth_dir = sandbox.path("oauth-dir");
    let moved = oauth_dir.join("oauth.json");
    write_json(&moved, &json!({"openai-codex": oauth("m")}));
    sandbox.env("OPENCLAW_OAUTH_DIR", &oauth_dir);
    let report = smoke(&sandbox, &[]);
    assert_eq!(report["auth_path"], show(&moved));
    assert_eq!(report["auth_format"], "openclaw-oauth-json");
}

#[test]
fn clawdbot_is_the_state_dir_only_when_openclaw_is_absent() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let legacy = sandbox
        .home()
        .join(".clawdbot/agents/main/agent/auth-profiles.json");
    write_json(
        &legacy,
        &profiles_store(json!({"openai-codex:default": oauth("c")})),
    );
    assert_eq!(smoke(&sandbox, &[])["auth_path"], show(&legacy));

    // Once ~/.openclaw exists (even empty), ~/.clawdbot is not looked at.
    std::fs::create_dir_all(sandbox.home().join(".openclaw")).unwrap();
    let report = smoke(&sandbox, &[]);
    assert_eq!(
        report["auth_path"],
        show(&sandbox.home().join(".codex/auth.json"))
    );
}

#[test]
fn blank_variables_do_not_count_and_duplicates_are_listed_once() {
    let mut sandbox = Sandbox::new();
    let codex = sandbox.home().join(".codex/auth.json");
    let codex_home = sandbox.home().join(".codex");
    sandbox
        .env("CODEX_IMAGEN_AUTH_JSON", "   ")
        .env("OPENCLAW_AGENT_DIR", " ")
        .env("CODEX_AUTH_JSON", "~/.codex/auth.json")
        .env("CODEX_HOME", codex_home);
    let run = sandbox.run(&["--smoke"]);
    assert_eq!(run.code, 1, "{run}");
    let home = sandbox.home();
    assert_eq!(
        run.stderr,
        no_auth_error(
            &[
                codex.clone(),
                home.join(".openclaw/agents/main/agent/auth-profiles.json"),
                home.join(".openclaw/agents/main/agent/auth.json"),
                home.join(".openclaw/credentials/oauth.json"),
            ],
            &default_databases(&sandbox)
        )
    );
}

#[test]
fn environment_paths_resolve_from_cwd_and_tilde() {
    let mut sandbox = Sandbox::new();
    let store = sandbox.work().join("project/creds/a.json");
    write_json(&store, &codex_store("rel"));
    sandbox.env("CODEX_IMAGEN_AUTH_JSON", "creds/a.json");
    std::fs::create_dir_all(sandbox.work().join("project")).unwrap();
    let report = smoke(&sandbox, &["--cwd", "project"]);
    assert_eq!(
        report["auth_path"],
        show(&work(&sandbox).join("project/creds/a.json"))
    );

    let mut sandbox = Sandbox::new();
    let home_store = sandbox.home().join("keys/codex.json");
    write_json(&home_store, &codex_store("home"));
    sandbox.env("CODEX_AUTH_JSON", "~/keys/codex.json");
    assert_eq!(smoke(&sandbox, &[])["auth_path"], show(&home_store));
}

#[test]
fn an_environment_path_that_is_a_directory_is_skipped() {
    let mut sandbox = Sandbox::new();
    let codex = sandbox.with_codex_auth();
    std::fs::create_dir_all(sandbox.path("adir")).unwrap();
    sandbox.env("CODEX_IMAGEN_AUTH_JSON", sandbox.path("adir"));
    assert_eq!(smoke(&sandbox, &[])["auth_path"], show(&codex));
}

#[test]
fn an_explicit_auth_is_the_only_candidate() {
    let mut sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let env_store = sandbox.path("env.json");
    write_json(&env_store, &codex_store("env"));
    sandbox.env("CODEX_IMAGEN_AUTH_JSON", &env_store);
    let explicit = sandbox.path("explicit/auth.json");
    write_json(&explicit, &codex_store("explicit"));
    let report = smoke(&sandbox, &["--auth", explicit.to_str().unwrap()]);
    assert_eq!(report["auth_path"], show(&explicit));
    assert_eq!(report["account_id"], "acct-explicit");

    // A missing --auth file is an error naming it, even though other stores exist.
    let missing = sandbox.path("explicit/missing.json");
    let stderr = smoke_error(&sandbox, &["--auth", missing.to_str().unwrap()]);
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(stderr.contains(&show(&missing)), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // Generation does not fall back either.
    let run = sandbox.run(&["--auth", missing.to_str().unwrap(), "a prompt"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains(&show(&missing)), "{run}");
}

// ---------------------------------------------------------------------------------------------
// Formats and fields (SPEC §4)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_codex_store_reports_its_fields_without_any_token() {
    let sandbox = Sandbox::new();
    let path = sandbox.home().join(".codex/auth.json");
    let store = codex_auth(3600);
    write_json(&path, &store);
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stderr, "", "{run}");
    assert_no_secrets(&run, &secrets_of(&store));
    let report = run.json();
    assert_eq!(report["auth_path"], show(&path));
    assert_eq!(report["auth_format"], "codex-auth-json");
    assert_eq!(report["auth_mode"], "chatgpt");
    assert_eq!(report["profile_id"], Value::Null);
    assert_eq!(report["provider"], "openai-codex");
    assert_eq!(report["account_id"], "acct-123");
    assert_eq!(report["last_refresh"], "2026-11-20T10:00:00.000Z");
    assert_near(&report["access_token_expires_in_seconds"], 3600);
    assert_eq!(report["refresh_token_present"], true);
}

#[test]
fn an_auth_mode_other_than_chatgpt_is_warned_about_even_with_quiet() {
    let sandbox = Sandbox::new();
    let store = with(codex_store("k"), json!({"auth_mode": "apikey"}));
    write_json(&sandbox.home().join(".codex/auth.json"), &store);
    for args in [&["--smoke"][..], &["--smoke", "--json", "--quiet"]] {
        let run = sandbox.run(args);
        assert_eq!(run.code, 0, "{run}");
        assert_eq!(
            run.stderr, "warning: auth_mode is apikey, expected chatgpt.\n",
            "{run}"
        );
        assert_no_secrets(&run, &secrets_of(&store));
    }
    assert_eq!(smoke(&sandbox, &[])["auth_mode"], "apikey");

    // No auth_mode at all: no warning, null in the report.
    let sandbox = Sandbox::new();
    let mut store = codex_store("n");
    store.as_object_mut().unwrap().remove("auth_mode");
    write_json(&sandbox.home().join(".codex/auth.json"), &store);
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(run.stderr, "", "{run}");
    assert_eq!(run.json()["auth_mode"], Value::Null);
}

#[test]
fn an_openclaw_profile_store_reports_the_selected_profile() {
    let sandbox = Sandbox::new();
    let path = main_agent(&sandbox).join("auth-profiles.json");
    let expires = now_ms() + 5_400_000;
    let store = profiles_store(json!({
        "openai-codex:me@example.com": with(oauth("me"), json!({"email": "me@example.com", "expires": expires}))
    }));
    write_json(&path, &store);
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert_no_secrets(&run, &secrets_of(&store));
    let report = run.json();
    assert_eq!(report["auth_format"], "openclaw-auth-profiles");
    assert_eq!(report["auth_mode"], Value::Null);
    assert_eq!(report["profile_id"], "openai-codex:me@example.com");
    assert_eq!(report["provider"], "openai-codex");
    assert_eq!(report["email"], "me@example.com");
    assert_eq!(report["account_id"], "acct-me");
    assert_eq!(report["last_refresh"], Value::Null);
    assert_near(&report["access_token_expires_in_seconds"], 5400);
    assert_eq!(report["refresh_token_present"], true);
}

#[test]
fn profile_field_aliases_are_read() {
    let sandbox = Sandbox::new();
    let path = sandbox.path("aliases/auth-profiles.json");
    let auth = path.to_str().unwrap();
    let store = profiles_store(json!({
        "openai-codex:a": {"type": "oauth", "provider": "openai-codex",
            "access_token": "opaque-a", "refresh_token": "r-a", "account_id": "acct-a"},
        "openai-codex:b": {"type": "oauth", "provider": "openai-codex",
            "token": "opaque-b", "account": "acct-b"},
    }));
    write_json(&path, &store);
    let a = smoke(
        &sandbox,
        &["--auth", auth, "--auth-profile", "openai-codex:a"],
    );
    assert_eq!(a["account_id"], "acct-a");
    assert_eq!(a["refresh_token_present"], true);
    let b = smoke(
        &sandbox,
        &["--auth", auth, "--auth-profile", "openai-codex:b"],
    );
    assert_eq!(b["account_id"], "acct-b");
    assert_eq!(b["refresh_token_present"], false);
    assert_eq!(b["access_token_expires_in_seconds"], Value::Null);
}

#[test]
fn provider_maps_are_named_by_their_file_and_report_a_default_profile() {
    let sandbox = Sandbox::new();
    let oauth_json = sandbox.home().join(".openclaw/credentials/oauth.json");
    let store = json!({
        "anthropic": {"access": "anthropic-access", "accountId": "x"},
        "openai-codex": {"access_token": "map-access", "refresh_token": "map-refresh",
            "account_id": "acct-map", "email": "map@example.com"}
    });
    write_json(&oauth_json, &store);
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert_no_secrets(&run, &secrets_of(&store));
    let report = run.json();
    assert_eq!(report["auth_format"], "openclaw-oauth-json");
    assert_eq!(report["profile_id"], "openai-codex:default");
    assert_eq!(report["provider"], "openai-codex");
    assert_eq!(report["account_id"], "acct-map");
    assert_eq!(report["email"], "map@example.com");

    // Any other file name is the legacy format.
    let legacy = sandbox.path("legacy/auth.json");
    write_json(&legacy, &store);
    let report = smoke(&sandbox, &["--auth", legacy.to_str().unwrap()]);
    assert_eq!(report["auth_format"], "openclaw-legacy-auth-json");
    assert_eq!(report["profile_id"], "openai-codex:default");
}

#[test]
fn a_requested_profile_picks_the_provider_of_a_provider_map() {
    let sandbox = Sandbox::new();
    let path = sandbox.path("map/oauth.json");
    let auth = path.to_str().unwrap();
    write_json(
        &path,
        &json!({"acme": {"access": "acme-access", "accountId": "acct-acme"},
            "openai-codex": {"access": "codex-access", "accountId": "acct-codex"}}),
    );
    let report = smoke(
        &sandbox,
        &["--auth", auth, "--auth-profile", "acme:someone"],
    );
    assert_eq!(report["profile_id"], "acme:default");
    assert_eq!(report["provider"], "acme");
    assert_eq!(report["account_id"], "acct-acme");
    // A bare provider name works too.
    assert_eq!(
        smoke(&sandbox, &["--auth", auth, "--auth-profile", "acme"])["provider"],
        "acme"
    );

    let stderr = smoke_error(&sandbox, &["--auth", auth, "--auth-profile", "nobody:x"]);
    assert_eq!(
        stderr,
        format!("Error: No nobody OAuth credential found in {auth}\n")
    );
    let other = sandbox.path("map/auth.json");
    write_json(
        &other,
        &json!({"anthropic": {"access": "t", "accountId": "a"}}),
    );
    let stderr = smoke_error(&sandbox, &["--auth", other.to_str().unwrap()]);
    assert_eq!(
        stderr,
        format!(
            "Error: No openai-codex OAuth credential found in {}\n",
            other.display()
        )
    );
}

#[test]
fn expires_is_read_as_seconds_or_milliseconds() {
    let sandbox = Sandbox::new();
    let path = sandbox.path("x/oauth.json");
    let auth = path.to_str().unwrap();
    let cases = [
        (json!(now_secs() + 7200), 7200),
        (json!(now_ms() + 5_400_000), 5400),
        (json!(now_secs() - 100), -100),
        // Just below the 10,000,000,000 boundary is seconds (2286).
        (json!(9_999_999_999_i64), 9_999_999_999 - now_secs()),
    ];
    for (expires, left) in cases {
        write_json(
            &path,
            &json!({"openai-codex": {"access": "opaque", "accountId": "a", "expires": expires}}),
        );
        let report = smoke(&sandbox, &["--auth", auth]);
        assert_near(&report["access_token_expires_in_seconds"], left);
    }
    // Just above it is milliseconds: 1970, which cannot be a real expiry, so it is unknown
    // (issue #15), as is OpenClaw's `expires: 1` beside a refresh fence.
    for expires in [json!(10_000_000_001_i64), json!(1)] {
        write_json(
            &path,
            &json!({"openai-codex": {"access": "opaque", "accountId": "a", "expires": expires}}),
        );
        let report = smoke(&sandbox, &["--auth", auth]);
        assert_eq!(report["access_token_expires_in_seconds"], Value::Null);
        assert_eq!(report["credential_state"], "ok");
    }
}

#[test]
fn the_jwt_exp_gives_the_expiry_and_wins_over_expires() {
    let sandbox = Sandbox::new();
    let path = sandbox.path("x/oauth.json");
    let auth = path.to_str().unwrap();
    let put = |access: &str, expires: Option<i64>| {
        let mut entry = json!({"access": access, "accountId": "a"});
        if let Some(e) = expires {
            entry["expires"] = json!(e);
        }
        write_json(&path, &json!({"openai-codex": entry}));
    };
    put(&jwt(now_secs() + 1234), None);
    assert_near(
        &smoke(&sandbox, &["--auth", auth])["access_token_expires_in_seconds"],
        1234,
    );
    put(&jwt(now_secs() + 1234), Some(now_ms() + 9_000_000));
    assert_near(
        &smoke(&sandbox, &["--auth", auth])["access_token_expires_in_seconds"],
        1234,
    );

    // Padding on the payload is optional.
    // `{"exp":<10 digits>, "x":1}` is 25 bytes: base64 of it needs "==".
    let payload = b64url(format!("{{\"exp\":{}, \"x\":1}}", now_secs() + 777).as_bytes());
    let padding = "=".repeat((4 - payload.len() % 4) % 4);
    assert!(!padding.is_empty(), "the test needs a payload that pads");
    put(&format!("eyJhbGciOiJub25lIn0.{payload}{padding}.sig"), None);
    assert_near(
        &smoke(&sandbox, &["--auth", auth])["access_token_expires_in_seconds"],
        777,
    );

    // Not a JWT, or a JWT without exp: no known expiry.
    for access in [
        "opaque-token".to_string(),
        "a.%%%.c".to_string(),
        format!("h.{}.s", b64url(b"{\"sub\":\"x\"}")),
    ] {
        put(&access, None);
        let report = smoke(&sandbox, &["--auth", auth]);
        assert_eq!(
            report["access_token_expires_in_seconds"],
            Value::Null,
            "{access}"
        );
    }
}

#[test]
fn a_store_that_is_not_json_is_an_error_naming_it() {
    let sandbox = Sandbox::new();
    let path = sandbox.home().join(".codex/auth.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        "{\"tokens\": {\"access_token\": \"secret-in-broken-file\"",
    )
    .unwrap();
    let run = sandbox.run(&["--smoke"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.starts_with("Error: ") && run.stderr.contains(&show(&path)),
        "{run}"
    );
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert_no_secrets(&run, &["secret-in-broken-file".to_string()]);
}

#[test]
fn a_store_without_an_access_token_or_account_id_is_an_error_naming_it() {
    let sandbox = Sandbox::new();
    let path = sandbox.home().join(".codex/auth.json");
    write_json(
        &path,
        &json!({"tokens": {"refresh_token": "r", "account_id": "a"}}),
    );
    assert_eq!(
        smoke_error(&sandbox, &[]),
        format!("Error: No access token found in {}\n", path.display())
    );
    write_json(
        &path,
        &json!({"tokens": {"access_token": "secret-access", "refresh_token": "r"}}),
    );
    let run = sandbox.run(&["--smoke"]);
    assert_eq!(
        run.stderr,
        format!("Error: No accountId found in {}\n", path.display())
    );
    assert_eq!(run.code, 1);
    assert_no_secrets(&run, &["secret-access".to_string()]);

    // An empty string is no token.
    write_json(
        &path,
        &json!({"tokens": {"access_token": "", "account_id": "a"}}),
    );
    assert_eq!(
        smoke_error(&sandbox, &[]),
        format!("Error: No access token found in {}\n", path.display())
    );
}

#[test]
fn smoke_reads_only_the_first_store_and_never_refreshes() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    // The first discovered store has no account id; smoke does not fall back to ~/.codex.
    let first = main_agent(&sandbox).join("auth.json");
    write_json(
        &first,
        &json!({"openai-codex": {"access": "t", "refresh": "r"}}),
    );
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--smoke"]));
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        run.stderr,
        format!("Error: No accountId found in {}\n", first.display())
    );

    // An expired token is reported as it is, without a refresh request.
    std::fs::remove_file(&first).unwrap();
    write_json(&sandbox.home().join(".codex/auth.json"), &codex_auth(-120));
    let run = sandbox.run(&with_server(&sargs, &["--smoke", "--json"]));
    assert_eq!(run.code, 0, "{run}");
    assert_near(&run.json()["access_token_expires_in_seconds"], -120);
    assert!(server.requests().is_empty(), "smoke made a request");
}

// ---------------------------------------------------------------------------------------------
// Profile selection (SPEC §5)
// ---------------------------------------------------------------------------------------------

/// Three selectable profiles; `openai-codex:default` wins by score alone.
fn three_profiles() -> Value {
    profiles_store(json!({
        "openai-codex:a": oauth("a"),
        "openai-codex:default": oauth("default"),
        "openai-codex:c": oauth("c"),
    }))
}

#[test]
fn a_requested_profile_comes_from_the_flag_then_the_two_variables() {
    let mut sandbox = Sandbox::new();
    write_json(
        &main_agent(&sandbox).join("auth-profiles.json"),
        &three_profiles(),
    );
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:default");
    sandbox.env("OPENCLAW_AUTH_PROFILE", "openai-codex:c");
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:c");
    sandbox.env("CODEX_IMAGEN_AUTH_PROFILE", " openai-codex:a ");
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:a");
    let report = smoke(&sandbox, &["--auth-profile", "openai-codex:default"]);
    assert_eq!(report["profile_id"], "openai-codex:default");
    assert_eq!(report["account_id"], "acct-default");
    // A blank variable does not count.
    let report = smoke_with(&sandbox, &[], |cmd| {
        cmd.env("CODEX_IMAGEN_AUTH_PROFILE", "  ");
    });
    assert_eq!(report["profile_id"], "openai-codex:c");
}

#[test]
fn an_unknown_requested_profile_is_an_error_naming_store_and_id() {
    let mut sandbox = Sandbox::new();
    let path = main_agent(&sandbox).join("auth-profiles.json");
    write_json(&path, &three_profiles());
    let stderr = smoke_error(&sandbox, &["--auth-profile", "openai-codex:nobody"]);
    assert_eq!(
        stderr,
        format!(
            "Error: OpenClaw auth profile not found in {}: openai-codex:nobody\n",
            path.display()
        )
    );
    sandbox.env("OPENCLAW_AUTH_PROFILE", "openai-codex:ghost");
    let stderr = smoke_error(&sandbox, &[]);
    assert_eq!(
        stderr,
        format!(
            "Error: OpenClaw auth profile not found in {}: openai-codex:ghost\n",
            path.display()
        )
    );
}

#[test]
fn a_requested_profile_is_used_as_is_and_its_provider_comes_from_its_id() {
    let sandbox = Sandbox::new();
    let path = sandbox.path("s/auth-profiles.json");
    let auth = path.to_str().unwrap();
    write_json(
        &path,
        &profiles_store(json!({
            "acme:me": {"type": "token", "access": "acme-token", "accountId": "acct-acme"},
            "plain": {"access": "plain-token", "accountId": "acct-plain"},
            "openai-codex:default": oauth("default"),
        })),
    );
    let report = smoke(&sandbox, &["--auth", auth, "--auth-profile", "acme:me"]);
    assert_eq!(report["profile_id"], "acme:me");
    assert_eq!(report["provider"], "acme");
    let report = smoke(&sandbox, &["--auth", auth, "--auth-profile", "plain"]);
    assert_eq!(report["provider"], "openai-codex");
}

#[test]
fn the_configured_order_wins_for_a_discovered_store() {
    let mut sandbox = Sandbox::new();
    let state = sandbox.home().join(".openclaw");
    write_json(
        &state.join("agents/main/agent/auth-profiles.json"),
        &three_profiles(),
    );
    let config = state.join("openclaw.json");
    write_json(
        &config,
        &json!({"auth": {"order": {"openai-codex": ["  openai-codex:missing ", 7, " openai-codex:c "]},
            "profiles": {"openai-codex:a": {"provider": "openai-codex"}}}}),
    );
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:c");

    // Without an order, the configured openai-codex profiles, in their order.
    write_json(
        &config,
        &json!({"auth": {"profiles": {
            "anthropic:x": {"provider": "anthropic"},
            "custom-name": {"provider": "openai-codex"},
            "openai-codex:c": {"mode": "oauth"},
            "openai-codex:a": {"provider": "openai-codex"}}}}),
    );
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:c");

    // A profile the config names that is not selectable is passed over.
    write_json(
        &config,
        &json!({"auth": {"order": {"openai-codex": ["openai-codex:x", "openai-codex:a"]}}}),
    );
    let mut store = three_profiles();
    store["profiles"]["openai-codex:x"] =
        json!({"type": "api_key", "provider": "openai-codex", "access": "k", "accountId": "x"});
    write_json(&state.join("agents/main/agent/auth-profiles.json"), &store);
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:a");

    // OPENCLAW_CONFIG_PATH moves the config.
    let moved = sandbox.path("elsewhere.json");
    write_json(
        &moved,
        &json!({"auth": {"order": {"openai-codex": ["openai-codex:c"]}}}),
    );
    sandbox.env("OPENCLAW_CONFIG_PATH", &moved);
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:c");
}

#[test]
fn a_broken_config_counts_as_none() {
    let sandbox = Sandbox::new();
    let state = sandbox.home().join(".openclaw");
    write_json(
        &state.join("agents/main/agent/auth-profiles.json"),
        &three_profiles(),
    );
    std::fs::write(state.join("openclaw.json"), "{ not json").unwrap();
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:default");
}

#[test]
fn the_configured_order_applies_to_an_explicit_path_only_when_it_is_the_main_agent_store() {
    let sandbox = Sandbox::new();
    let state = sandbox.home().join(".openclaw");
    let main = state.join("agents/main/agent/auth-profiles.json");
    write_json(&main, &three_profiles());
    write_json(
        &state.join("openclaw.json"),
        &json!({"auth": {"order": {"openai-codex": ["openai-codex:a"]}}}),
    );
    // The main agent's own store, named explicitly (in any spelling): the order applies.
    assert_eq!(
        smoke(&sandbox, &["--auth", main.to_str().unwrap()])["profile_id"],
        "openai-codex:a"
    );
    assert_eq!(
        smoke(
            &sandbox,
            &["--auth", "~/.openclaw/agents/main/agent/auth-profiles.json"]
        )["profile_id"],
        "openai-codex:a"
    );
    assert_eq!(
        smoke(
            &sandbox,
            &[
                "--cwd",
                "~/.openclaw/agents",
                "--auth",
                "main/agent/../agent/auth-profiles.json"
            ]
        )["profile_id"],
        "openai-codex:a"
    );
    // Any other explicit store: the order is not used.
    let copy = sandbox.path("copy/auth-profiles.json");
    write_json(&copy, &three_profiles());
    assert_eq!(
        smoke(&sandbox, &["--auth", copy.to_str().unwrap()])["profile_id"],
        "openai-codex:default"
    );
    // Nor for a per-agent store named explicitly.
    let agent_store = state.join("agents/worker/agent/auth-profiles.json");
    write_json(&agent_store, &three_profiles());
    assert_eq!(
        smoke(&sandbox, &["--auth", agent_store.to_str().unwrap()])["profile_id"],
        "openai-codex:default"
    );
}

#[test]
fn the_configured_order_applies_to_a_discovered_per_agent_store() {
    let mut sandbox = Sandbox::new();
    let state = sandbox.home().join(".openclaw");
    let agent = state.join("agents/worker/agent");
    write_json(&agent.join("auth-profiles.json"), &three_profiles());
    write_json(
        &state.join("openclaw.json"),
        &json!({"auth": {"order": {"openai-codex": ["openai-codex:c"]}}}),
    );
    sandbox.env("OPENCLAW_AGENT_DIR", &agent);
    let report = smoke(&sandbox, &[]);
    assert_eq!(report["auth_path"], show(&agent.join("auth-profiles.json")));
    assert_eq!(report["profile_id"], "openai-codex:c");
}

#[test]
fn last_good_from_the_sibling_auth_state_is_next() {
    let sandbox = Sandbox::new();
    let agent = main_agent(&sandbox);
    write_json(&agent.join("auth-profiles.json"), &three_profiles());
    write_json(
        &agent.join("auth-state.json"),
        &json!({"lastGood": {"openai-codex": "openai-codex:a", "anthropic": "anthropic:x"}}),
    );
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:a");

    // The configured order comes before lastGood.
    write_json(
        &sandbox.home().join(".openclaw/openclaw.json"),
        &json!({"auth": {"order": {"openai-codex": ["openai-codex:c"]}}}),
    );
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:c");
    std::fs::remove_file(sandbox.home().join(".openclaw/openclaw.json")).unwrap();

    // A lastGood that is not selectable (no access token) is passed over.
    let mut store = three_profiles();
    store["profiles"]["openai-codex:a"]
        .as_object_mut()
        .unwrap()
        .remove("access");
    write_json(&agent.join("auth-profiles.json"), &store);
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:default");

    // A broken auth-state.json counts as none.
    write_json(&agent.join("auth-profiles.json"), &three_profiles());
    std::fs::write(agent.join("auth-state.json"), "lastGood?").unwrap();
    assert_eq!(smoke(&sandbox, &[])["profile_id"], "openai-codex:default");
}

#[test]
fn last_good_is_read_next_to_an_explicit_store() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("agent-x");
    write_json(&dir.join("auth-profiles.json"), &three_profiles());
    write_json(
        &dir.join("auth-state.json"),
        &json!({"lastGood": {"openai-codex": "openai-codex:c"}}),
    );
    let path = dir.join("auth-profiles.json");
    assert_eq!(
        smoke(&sandbox, &["--auth", path.to_str().unwrap()])["profile_id"],
        "openai-codex:c"
    );
}

/// The profile `--smoke` selects from `profiles`, read through `--auth`.
fn selected(profiles: Value) -> Value {
    let sandbox = Sandbox::new();
    let path = sandbox.path("s/auth-profiles.json");
    write_json(&path, &profiles_store(profiles));
    smoke(&sandbox, &["--auth", path.to_str().unwrap()])["profile_id"].clone()
}

#[test]
fn scoring_prefers_the_default_id_then_later_expiry_then_an_email() {
    // openai-codex:default (+1000) beats an otherwise equal profile.
    assert_eq!(
        selected(json!({"openai-codex:x": oauth("x"), "openai-codex:default": oauth("d")})),
        "openai-codex:default"
    );
    // More than 1000 s of extra lifetime beats the default id ...
    assert_eq!(
        selected(json!({
            "openai-codex:default": with(oauth("d"), json!({"expires": now_ms() + 100_000})),
            "openai-codex:later": with(oauth("l"), json!({"expires": now_ms() + 1_300_000})),
        })),
        "openai-codex:later"
    );
    // ... less does not.
    assert_eq!(
        selected(json!({
            "openai-codex:default": with(oauth("d"), json!({"expires": now_ms() + 100_000})),
            "openai-codex:later": with(oauth("l"), json!({"expires": now_ms() + 900_000})),
        })),
        "openai-codex:default"
    );
    // `expires` in seconds counts the same way.
    assert_eq!(
        selected(json!({
            "openai-codex:default": with(oauth("d"), json!({"expires": now_secs() + 100})),
            "openai-codex:later": with(oauth("l"), json!({"expires": now_secs() + 5_000})),
        })),
        "openai-codex:later"
    );
    // An expired profile loses nothing for it (clamped at 0): its email still counts.
    assert_eq!(
        selected(json!({
            "openai-codex:plain": oauth("p"),
            "openai-codex:expired": with(oauth("e"), json!({"expires": now_secs() - 50_000, "email": "e@x"})),
        })),
        "openai-codex:expired"
    );
    // An email breaks a tie.
    assert_eq!(
        selected(json!({
            "openai-codex:plain": oauth("p"),
            "openai-codex:mail": with(oauth("m"), json!({"email": "m@example.com"})),
        })),
        "openai-codex:mail"
    );
    // A full tie goes to the first profile in the file.
    assert_eq!(
        selected(json!({"openai-codex:z": oauth("z"), "openai-codex:y": oauth("y")})),
        "openai-codex:z"
    );
}

#[test]
fn only_profiles_with_an_account_id_are_ranked_when_some_have_one() {
    let no_account = |tag: &str, extra: Value| {
        let mut p = with(oauth(tag), extra);
        p.as_object_mut().unwrap().remove("accountId");
        p
    };
    assert_eq!(
        selected(json!({
            "openai-codex:default": no_account("d", json!({"email": "d@x", "expires": now_ms() + 900_000_000})),
            "openai-codex:acct": oauth("a"),
        })),
        "openai-codex:acct"
    );
    // When none has one, the best is still chosen, and then it lacks the account id.
    let sandbox = Sandbox::new();
    let path = sandbox.path("s/auth-profiles.json");
    write_json(
        &path,
        &profiles_store(
            json!({"openai-codex:a": no_account("a", json!({})), "openai-codex:b": no_account("b", json!({}))}),
        ),
    );
    assert_eq!(
        smoke_error(&sandbox, &["--auth", path.to_str().unwrap()]),
        format!("Error: No accountId found in {}\n", path.display())
    );
}

#[test]
fn non_oauth_other_provider_and_tokenless_profiles_are_never_selected() {
    let expires = now_ms() + 900_000_000;
    assert_eq!(
        selected(json!({
            "openai-codex:key": {"type": "api_key", "provider": "openai-codex", "access": "k",
                "accountId": "k", "email": "k@x", "expires": expires},
            "anthropic:default": {"type": "oauth", "provider": "anthropic", "access": "a",
                "accountId": "a", "email": "a@x", "expires": expires},
            "openai-codex:default": with(oauth("empty"), json!({"access": ""})),
            "openai-codex:notype": {"provider": "openai-codex", "access": "n", "accountId": "n"},
            "openai-codex:chosen": oauth("chosen"),
        })),
        "openai-codex:chosen"
    );

    let sandbox = Sandbox::new();
    let path = sandbox.path("s/auth-profiles.json");
    write_json(
        &path,
        &profiles_store(json!({
            "openai-codex:key": {"type": "api_key", "provider": "openai-codex", "access": "k", "accountId": "k"},
            "anthropic:default": {"type": "oauth", "provider": "anthropic", "access": "a", "accountId": "a"},
        })),
    );
    assert_eq!(
        smoke_error(&sandbox, &["--auth", path.to_str().unwrap()]),
        format!(
            "Error: No openai-codex OAuth profile found in {}\n",
            path.display()
        )
    );
    write_json(&path, &profiles_store(json!({})));
    assert_eq!(
        smoke_error(&sandbox, &["--auth", path.to_str().unwrap()]),
        format!(
            "Error: No openai-codex OAuth profile found in {}\n",
            path.display()
        )
    );
}

#[test]
fn no_token_of_any_profile_ever_appears_in_the_output() {
    let sandbox = Sandbox::new();
    let path = main_agent(&sandbox).join("auth-profiles.json");
    let store = profiles_store(json!({
        "openai-codex:default": with(oauth("d"), json!({"access": jwt(now_secs() + 3600), "idToken": "id-token-secret"})),
        "openai-codex:b": oauth("b"),
        "anthropic:x": {"type": "oauth", "provider": "anthropic", "access": "anthropic-access", "refresh": "anthropic-refresh"},
    }));
    write_json(&path, &store);
    let secrets = secrets_of(&store);
    assert_eq!(secrets.len(), 7, "{secrets:?}");
    for args in [
        &["--smoke"][..],
        &["--smoke", "--json"],
        &["--smoke", "--verbose"],
        &[
            "--smoke",
            "--json",
            "--verbose",
            "--auth-profile",
            "openai-codex:b",
        ],
        &["--smoke", "--auth-profile", "openai-codex:nobody"],
    ] {
        let run = sandbox.run(args);
        assert_no_secrets(&run, &secrets);
    }
}

// ---------------------------------------------------------------------------------------------
// The smoke report (SPEC §14, §9.1, §9.3)
// ---------------------------------------------------------------------------------------------

#[test]
fn smoke_text_prints_one_key_value_line_per_key_with_null_as_empty() {
    let sandbox = Sandbox::new();
    // An opaque token with no expiry keeps every value stable between the two runs.
    let store = json!({"tokens": {"access_token": "opaque-access", "account_id": "acct-t"}});
    write_json(&sandbox.home().join(".codex/auth.json"), &store);
    let json_run = sandbox.run(&["--smoke", "--json"]);
    let text_run = sandbox.run(&["--smoke"]);
    assert_eq!(text_run.code, 0, "{text_run}");
    assert_eq!(text_run.stderr, "", "{text_run}");
    let report = json_run.json();
    let expected: String = SMOKE_KEYS
        .iter()
        .map(|key| {
            let shown = match &report[*key] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{key}: {shown}\n")
        })
        .collect();
    assert_eq!(text_run.stdout, expected);
    assert!(
        text_run.stdout.contains("\nauth_mode: \nprofile_id: \n"),
        "{text_run}"
    );
    assert!(
        text_run.stdout.contains("\nrefresh_token_present: false\n"),
        "{text_run}"
    );
    assert!(
        text_run
            .stdout
            .contains("\ntimeout_seconds: 900\ntimeout_ms: 900000\n"),
        "{text_run}"
    );
    assert_no_secrets(&text_run, &["opaque-access".to_string()]);
}

#[test]
fn smoke_reports_the_backend_endpoints_model_and_retry_settings() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let report = smoke(&sandbox, &[]);
    assert_eq!(report["backend"], "responses");
    assert_eq!(
        report["endpoint"],
        "https://chatgpt.com/backend-api/codex/responses"
    );
    assert_eq!(
        report["responses_endpoint"],
        "https://chatgpt.com/backend-api/codex/responses"
    );
    assert_eq!(
        report["generation_endpoint"],
        "https://chatgpt.com/backend-api/codex/images/generations"
    );
    assert_eq!(
        report["edit_endpoint"],
        "https://chatgpt.com/backend-api/codex/images/edits"
    );
    assert_eq!(report["model"], "gpt-5.4");
    assert_eq!(report["retries"], 4);
    assert_eq!(report["total_attempts"], 5);
    let ua = report["user_agent"].as_str().unwrap();
    assert!(ua.starts_with("codex_cli_rs/0.153.2 ("), "{ua}");
    assert!(ua.ends_with(") unknown"), "no TERM in the sandbox: {ua}");
}

#[test]
fn the_default_timeout_is_300_seconds_in_an_openclaw_runtime_detected_by_environment() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let report = smoke(&sandbox, &[]);
    assert_eq!(
        (
            report["timeout_seconds"].clone(),
            report["timeout_ms"].clone()
        ),
        (json!(900), json!(900_000))
    );
    let somewhere = sandbox.path("oc");
    for var in [
        "OPENCLAW_AGENT_DIR",
        "PI_CODING_AGENT_DIR",
        "OPENCLAW_STATE_DIR",
        "OPENCLAW_OUTPUT_DIR",
    ] {
        let report = smoke_with(&sandbox, &[], |cmd| {
            cmd.env(var, &somewhere);
        });
        assert_eq!(report["timeout_seconds"], 300, "{var}");
        assert_eq!(report["timeout_ms"], 300_000, "{var}");
        // Blank does not count.
        let report = smoke_with(&sandbox, &[], |cmd| {
            cmd.env(var, " ");
        });
        assert_eq!(report["timeout_seconds"], 900, "{var} blank");
    }
    // An explicit timeout wins over the runtime default.
    let report = smoke_with(&sandbox, &["--timeout", "42"], |cmd| {
        cmd.env("OPENCLAW_STATE_DIR", &somewhere);
    });
    assert_eq!(report["timeout_seconds"], 42);
}

#[test]
fn the_default_timeout_is_300_seconds_in_a_working_directory_inside_openclaw() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    for (dir, seconds) in [
        ("ws/.openclaw/workspace", 300),
        ("ws/.clawdbot", 300),
        (".openclaw", 300),
        ("ws/.openclaw-backup/x", 900),
        ("ws/openclaw", 900),
    ] {
        std::fs::create_dir_all(sandbox.work().join(dir)).unwrap();
        let report = smoke(&sandbox, &["--cwd", dir]);
        assert_eq!(report["timeout_seconds"], seconds, "{dir}");
        // Started there directly, without --cwd, it is the same.
        let mut cmd = sandbox.command(&["--smoke", "--json"]);
        cmd.current_dir(sandbox.work().join(dir));
        let run = run_command(cmd);
        assert_eq!(run.json()["timeout_seconds"], seconds, "{dir} as cwd");
    }
}

#[test]
fn the_out_dir_follows_the_spec_chain() {
    let mut sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    for (var, dir) in [
        ("CODEX_IMAGEN_OUT_DIR", "imagen-out"),
        ("OPENCLAW_OUTPUT_DIR", "openclaw-out"),
        ("OPENCLAW_AGENT_DIR", "agent"),
        ("PI_CODING_AGENT_DIR", "pi"),
        ("OPENCLAW_STATE_DIR", "state"),
    ] {
        let path = sandbox.path(dir);
        sandbox.env(var, path);
    }
    let steps: [(&str, PathBuf); 6] = [
        ("CODEX_IMAGEN_OUT_DIR", sandbox.path("imagen-out")),
        ("OPENCLAW_OUTPUT_DIR", sandbox.path("openclaw-out")),
        (
            "OPENCLAW_AGENT_DIR",
            sandbox.path("agent/artifacts/codex-imagen"),
        ),
        (
            "PI_CODING_AGENT_DIR",
            sandbox.path("pi/artifacts/codex-imagen"),
        ),
        (
            "OPENCLAW_STATE_DIR",
            sandbox.path("state/artifacts/codex-imagen"),
        ),
        ("", work(&sandbox).join("codex-imagen-output")),
    ];
    // --out-dir beats every variable.
    let report = smoke(&sandbox, &["--out-dir", "mine"]);
    assert_eq!(report["out_dir"], show(&work(&sandbox).join("mine")));
    let mut removed: Vec<&str> = Vec::new();
    for (var, expected) in &steps {
        let report = smoke_with(&sandbox, &[], |cmd| {
            for r in &removed {
                cmd.env_remove(r);
            }
        });
        assert_eq!(
            report["out_dir"],
            show(expected),
            "with {var} the first set"
        );
        removed.push(var);
    }
    // Nothing is created by a smoke run.
    assert!(!sandbox.path("imagen-out").exists());
}

#[test]
fn out_dir_variables_resolve_from_cwd_and_tilde_and_blank_ones_do_not_count() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    std::fs::create_dir_all(sandbox.work().join("project")).unwrap();
    let report = smoke_with(&sandbox, &["--cwd", "project"], |cmd| {
        cmd.env("CODEX_IMAGEN_OUT_DIR", "  ")
            .env("OPENCLAW_OUTPUT_DIR", "rel/out");
    });
    assert_eq!(
        report["out_dir"],
        show(&work(&sandbox).join("project/rel/out"))
    );
    let report = smoke_with(&sandbox, &[], |cmd| {
        cmd.env("PI_CODING_AGENT_DIR", "~/agent");
    });
    assert_eq!(
        report["out_dir"],
        show(&sandbox.home().join("agent/artifacts/codex-imagen"))
    );
}

// ---------------------------------------------------------------------------------------------
// Reading during a generation run (SPEC §15, no refresh involved)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_discovered_store_without_an_account_id_falls_back_for_generation_but_not_for_smoke() {
    let server = Server::start();
    let png = png_bytes(5, 500);
    server.handle(move |_| image_stream(&[("ig_1", &png)]));
    let sandbox = Sandbox::new();
    let codex = sandbox.with_codex_auth();
    let first = main_agent(&sandbox).join("auth.json");
    write_json(
        &first,
        &json!({"openai-codex": {"access": "first-access", "refresh": "first-refresh"}}),
    );
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["a cat"]));
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "codex-imagen: using fallback auth {}\n",
            codex.display()
        )),
        "{run}"
    );
    let requests = server.requests_to("/backend-api/codex/responses");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("chatgpt-account-id"), Some("acct-123"));
    assert!(server.requests_to("/oauth/token").is_empty(), "no refresh");
    assert_no_secrets(&run, &["first-access".into(), "first-refresh".into()]);

    // Named explicitly, the same store is final.
    let run = sandbox.run(&with_server(
        &sargs,
        &["--auth", first.to_str().unwrap(), "a cat"],
    ));
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        run.stderr,
        format!("Error: No accountId found in {}\n", first.display()),
        "{run}"
    );
    assert_eq!(server.requests_to("/backend-api/codex/responses").len(), 1);
}

#[test]
fn a_broken_discovered_store_is_not_skipped_for_generation() {
    // Only the SPEC's irrecoverable errors fall back; invalid JSON is reported as it is.
    let server = Server::start();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let first = main_agent(&sandbox).join("auth-profiles.json");
    std::fs::create_dir_all(first.parent().unwrap()).unwrap();
    std::fs::write(&first, "{").unwrap();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["a cat"]));
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.starts_with("Error: ") && run.stderr.contains(&show(&first)),
        "{run}"
    );
    assert!(server.requests().is_empty());
}
