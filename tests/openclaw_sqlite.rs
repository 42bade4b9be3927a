//! Current OpenClaw credential stores: machines set up like OpenClaw 2026.4 (JSON files), 2026.6
//! (`<agent dir>/openclaw-agent.sqlite`) and 2026.9 (`<state>/state/openclaw.sqlite`), each used
//! for `--smoke`, generation with refresh and `--refresh-only`; selection of `openai:` profiles;
//! refreshes that change nothing but the profile inside the row; both OpenClaw refresh locks; and
//! OpenClaw 2026.9.4+ refresh fences. The tests build the databases themselves with the schema
//! the OpenClaw packages create.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};
use support::*;

const RESPONSES: &str = "/backend-api/codex/responses";
const TOKEN: &str = "/oauth/token";

/// `sha256-` and `lock-` names for (`openai`, `openai:default`), computed by OpenClaw's own code
/// with node: `createHash("sha256")` over `provider\0profileId` (2026.6.5
/// `resolveOAuthRefreshLockPath`), and `oauthLockPathDigest(JSON.stringify([provider,
/// profileId]))` extracted from the 2026.6.6, 2026.6.8, 2026.8.2 and 2026.9.6 bundles.
const SHA256_LOCK: &str =
    "sha256-5745659ffbfd6177a09e335e5c3da5e6bc0c2ed19b67af51f537ea171e03ccd0.lock";
const TUPLE_LOCK: &str = "lock-5440fa0b86d2697ef1152f7cb32a8157.lock";

/// OpenClaw 2026.6.5's per-agent schema (`src/state/openclaw-agent-schema.generated.ts`).
const AGENT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_meta (
  meta_key TEXT NOT NULL PRIMARY KEY, role TEXT NOT NULL, schema_version INTEGER NOT NULL,
  agent_id TEXT, app_version TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cache_entries (
  scope TEXT NOT NULL, key TEXT NOT NULL, value_json TEXT, blob BLOB, expires_at INTEGER,
  updated_at INTEGER NOT NULL, PRIMARY KEY (scope, key));
CREATE INDEX IF NOT EXISTS idx_agent_cache_expiry ON cache_entries(scope, expires_at, key)
  WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_agent_cache_updated ON cache_entries(scope, updated_at DESC, key);
CREATE TABLE IF NOT EXISTS auth_profile_store (
  store_key TEXT NOT NULL PRIMARY KEY, store_json TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS auth_profile_state (
  state_key TEXT NOT NULL PRIMARY KEY, state_json TEXT NOT NULL, updated_at INTEGER NOT NULL);
PRAGMA user_version = 1;
INSERT INTO schema_meta VALUES ('primary', 'agent', 1, 'main', NULL, 1700000000000, 1700000000000);
INSERT INTO cache_entries VALUES ('models', 'list', '{\"a\":[1,2]}', x'00ff10', NULL, 5);
";

/// The part of OpenClaw 2026.9.6's state schema these tests need (`config_machine_state` as its
/// migration creates it) and one unrelated table with data.
const STATE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS config_machine_state (
  state_key TEXT NOT NULL PRIMARY KEY, value_json TEXT NOT NULL, updated_at_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS diagnostic_events (
  scope TEXT NOT NULL, event_key TEXT NOT NULL, payload_json TEXT NOT NULL,
  created_at INTEGER NOT NULL, sequence INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (scope, event_key)
) STRICT;
PRAGMA user_version = 13;
INSERT INTO config_machine_state VALUES ('update.check', '{\"lastCheckedAt\":1}', 7);
INSERT INTO diagnostic_events VALUES ('gateway', 'e1', '{\"ok\":true}', 9, 1);
";

// ---------------------------------------------------------------------------------------------
// Machines
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// OpenClaw 2026.4: `auth-profiles.json`, provider `openai-codex`.
    Json,
    /// OpenClaw 2026.6.5–2026.7: the main agent's `openclaw-agent.sqlite`, provider `openai`.
    Agent,
    /// OpenClaw 2026.8+: the shared state database owns the store.
    State,
}

impl Layout {
    fn format(self) -> &'static str {
        match self {
            Layout::Json => "openclaw-auth-profiles",
            Layout::Agent => "openclaw-agent-sqlite",
            Layout::State => "openclaw-state-sqlite",
        }
    }

    fn profile_id(self) -> &'static str {
        match self {
            Layout::Json => "openai-codex:default",
            Layout::Agent | Layout::State => "openai:default",
        }
    }
}

fn main_agent_dir(sandbox: &Sandbox) -> PathBuf {
    sandbox.home().join(".openclaw/agents/main/agent")
}

fn agent_db_path(sandbox: &Sandbox) -> PathBuf {
    main_agent_dir(sandbox).join("openclaw-agent.sqlite")
}

fn state_db_path(sandbox: &Sandbox) -> PathBuf {
    sandbox.home().join(".openclaw/state/openclaw.sqlite")
}

/// A store document as OpenClaw 2026.6+ keeps it: an `openai` OAuth profile with every field the
/// packages write, an `openai` API key, another provider, and an unknown top-level key.
fn store_doc(provider: &str, access: &str, refresh: &str, expires_ms: i64) -> Value {
    let id = format!("{provider}:default");
    let mut profiles = serde_json::Map::new();
    profiles.insert(
        "anthropic:default".into(),
        json!({"type": "oauth", "provider": "anthropic", "access": "a-tok", "refresh": "a-ref", "expires": 1}),
    );
    profiles.insert(
        format!("{provider}:api"),
        json!({"type": "api_key", "provider": provider, "key": "sk-test"}),
    );
    profiles.insert(
        id,
        json!({
            "type": "oauth", "provider": provider, "access": access, "refresh": refresh,
            "expires": expires_ms, "accountId": "acct-123", "email": "me@example.com",
            "displayName": "Zoë / ✓", "chatgptPlanType": "plus", "clientId": "app_EMoamEEZ73f0CkXaXp7hrann",
            "idToken": "id-0", "copyToAgents": true
        }),
    );
    json!({"version": 1, "profiles": profiles, "zz_unknown": {"keep": [1.5, "x"]}})
}

fn expired_store(provider: &str) -> Value {
    store_doc(
        provider,
        &jwt(now_secs() - 60),
        "refresh-0",
        (now_secs() - 60) * 1000,
    )
}

fn fresh_store(provider: &str, account: &str) -> Value {
    let mut doc = store_doc(
        provider,
        &jwt(now_secs() + 3600),
        "refresh-fresh",
        (now_secs() + 3600) * 1000,
    );
    doc["profiles"][format!("{provider}:default")]["accountId"] = json!(account);
    doc
}

fn open_rw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// `<dir>/openclaw-agent.sqlite` in WAL mode (as OpenClaw sets it) holding `store` and `state`.
fn write_agent_db(path: &Path, store: &Value, state: Option<&Value>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = open_rw(path);
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(AGENT_SCHEMA).unwrap();
    // Compact, as OpenClaw's JSON.stringify writes it.
    conn.execute(
        "INSERT INTO auth_profile_store VALUES ('primary', ?1, 1700000000001)",
        [serde_json::to_string(store).unwrap()],
    )
    .unwrap();
    if let Some(state) = state {
        conn.execute(
            "INSERT INTO auth_profile_state VALUES ('primary', ?1, 1700000000002)",
            [serde_json::to_string(state).unwrap()],
        )
        .unwrap();
    }
}

/// `<state>/state/openclaw.sqlite` owning the shared store (`auth.sharedStore` = state-db).
fn write_state_db(path: &Path, store: &Value, state: Option<&Value>, owned: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = open_rw(path);
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch(STATE_SCHEMA).unwrap();
    let put = |key: &str, value: &Value| {
        conn.execute(
            "INSERT INTO config_machine_state VALUES (?1, ?2, 1700000000003)",
            rusqlite::params![key, serde_json::to_string(value).unwrap()],
        )
        .unwrap();
    };
    if owned {
        put("auth.sharedStore", &json!({"location": "state-db"}));
    }
    put("authProfiles.store", store);
    if let Some(state) = state {
        put("authProfiles.state", state);
    }
}

/// Set up a machine of `layout` whose main store holds `store`; returns the store's path.
fn machine(sandbox: &Sandbox, layout: Layout, store: &Value) -> PathBuf {
    let state = json!({"version": 1, "lastGood": {"anthropic": "anthropic:default"},
        "usageStats": {"anthropic:default": {"lastUsed": 5}}});
    match layout {
        Layout::Json => {
            let path = main_agent_dir(sandbox).join("auth-profiles.json");
            write_json(&path, store);
            path
        }
        Layout::Agent => {
            let path = agent_db_path(sandbox);
            write_agent_db(&path, store, Some(&state));
            path
        }
        Layout::State => {
            let path = state_db_path(sandbox);
            write_state_db(&path, store, Some(&state), true);
            path
        }
    }
}

fn expired_machine(sandbox: &Sandbox, layout: Layout) -> PathBuf {
    let provider = match layout {
        Layout::Json => "openai-codex",
        Layout::Agent | Layout::State => "openai",
    };
    machine(sandbox, layout, &expired_store(provider))
}

/// The store document as it is now, whatever the layout.
fn read_store(layout: Layout, path: &Path) -> Value {
    match layout {
        Layout::Json => read_json(path),
        Layout::Agent | Layout::State => serde_json::from_str(&store_text(layout, path)).unwrap(),
    }
}

fn store_text(layout: Layout, path: &Path) -> String {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let sql = match layout {
        Layout::Agent => "SELECT store_json FROM auth_profile_store WHERE store_key = 'primary'",
        Layout::State => {
            "SELECT value_json FROM config_machine_state WHERE state_key = 'authProfiles.store'"
        }
        Layout::Json => unreachable!(),
    };
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Every row of every table (and the schema), except the store row itself, as text.
fn dump_except_store(path: &Path) -> BTreeMap<String, Vec<String>> {
    use rusqlite::types::Value as Sql;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.push("sqlite_master".into());
    let mut dump = BTreeMap::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let rows: Vec<Vec<Sql>> = stmt
            .query_map([], |r| (0..columns).map(|i| r.get::<_, Sql>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let kept = rows
            .into_iter()
            .filter(|row| {
                let key = match row.first() {
                    Some(Sql::Text(key)) => key.as_str(),
                    _ => "",
                };
                !(table == "auth_profile_store" && key == "primary"
                    || table == "config_machine_state" && key == "authProfiles.store")
            })
            .map(|row| format!("{row:?}"))
            .collect();
        dump.insert(table, kept);
    }
    for pragma in ["journal_mode", "user_version", "page_size"] {
        let value: rusqlite::types::Value = conn
            .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .unwrap();
        dump.insert(format!("pragma {pragma}"), vec![format!("{value:?}")]);
    }
    dump
}

fn store_updated_at(layout: Layout, path: &Path) -> i64 {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let sql = match layout {
        Layout::Agent => "SELECT updated_at FROM auth_profile_store WHERE store_key = 'primary'",
        Layout::State => {
            "SELECT updated_at_ms FROM config_machine_state WHERE state_key = 'authProfiles.store'"
        }
        Layout::Json => unreachable!(),
    };
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[cfg(unix)]
fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

fn lock_dir(sandbox: &Sandbox) -> PathBuf {
    sandbox.home().join(".openclaw/locks/oauth-refresh")
}

// ---------------------------------------------------------------------------------------------
// Discovery and --smoke
// ---------------------------------------------------------------------------------------------

#[test]
fn each_layout_is_found_where_that_openclaw_keeps_it_and_reported_by_smoke() {
    for layout in [Layout::Json, Layout::Agent, Layout::State] {
        let sandbox = Sandbox::new();
        let provider = if layout == Layout::Json {
            "openai-codex"
        } else {
            "openai"
        };
        let path = machine(&sandbox, layout, &fresh_store(provider, "acct-main"));
        let run = sandbox.run(&["--smoke", "--json"]);
        assert_eq!(run.code, 0, "{layout:?}: {run}");
        let smoke = run.json();
        assert_eq!(smoke["auth_format"], layout.format(), "{layout:?}");
        assert_eq!(smoke["auth_path"], path.display().to_string());
        assert_eq!(smoke["profile_id"], layout.profile_id());
        assert_eq!(smoke["provider"], provider);
        assert_eq!(smoke["account_id"], "acct-main");
        assert!(!run.stdout.contains("refresh-fresh"), "no token printed");
    }
}

#[test]
fn a_machine_without_any_store_lists_the_json_candidates_and_the_databases_looked_for() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["--smoke"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .starts_with("Error: No auth JSON found. Tried:\n"),
        "{run}"
    );
    assert!(
        run.stderr.ends_with(
            "\nfix: sign in with `codex login` (Codex CLI) or `openclaw models auth login \
             --provider openai` (OpenClaw), or pass --auth <path>\n"
        ),
        "{run}"
    );
    let home = sandbox.home();
    for path in [
        state_db_path(&sandbox),
        agent_db_path(&sandbox),
        home.join(".openclaw/agents/main/agent/auth-profiles.json"),
        home.join(".openclaw/agents/main/agent/auth.json"),
        home.join(".openclaw/credentials/oauth.json"),
        home.join(".codex/auth.json"),
    ] {
        assert!(
            run.stderr.contains(&format!("  - {}\n", path.display())),
            "{run}"
        );
    }
}

#[test]
fn the_agent_database_wins_over_the_json_files_of_the_same_agent() {
    let sandbox = Sandbox::new();
    let json = main_agent_dir(&sandbox).join("auth-profiles.json");
    write_json(&json, &fresh_store("openai-codex", "acct-json"));
    let db = machine(
        &sandbox,
        Layout::Agent,
        &fresh_store("openai", "acct-sqlite"),
    );
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["auth_path"], db.display().to_string());
    assert_eq!(run.json()["account_id"], "acct-sqlite");

    // An explicit --auth is used as given: the JSON file, or the database by its .sqlite name.
    let run = sandbox.run(&["--smoke", "--json", "--auth", json.to_str().unwrap()]);
    assert_eq!(run.json()["auth_format"], "openclaw-auth-profiles", "{run}");
    assert_eq!(run.json()["account_id"], "acct-json");
    let run = sandbox.run(&["--smoke", "--json", "--auth", db.to_str().unwrap()]);
    assert_eq!(run.json()["auth_format"], "openclaw-agent-sqlite", "{run}");

    // A database that holds no store row is not a store: the JSON file is used.
    let conn = open_rw(&db);
    conn.execute("DELETE FROM auth_profile_store", []).unwrap();
    drop(conn);
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(run.json()["auth_path"], json.display().to_string(), "{run}");
    let run = sandbox.run(&["--smoke", "--auth", db.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "No OpenClaw auth profile store in {}",
            db.display()
        )),
        "{run}"
    );
}

#[test]
fn the_state_database_is_used_once_openclaw_records_that_it_owns_the_store() {
    let sandbox = Sandbox::new();
    // The main agent's database still holds the pre-migration row, as after an upgrade.
    let db = machine(
        &sandbox,
        Layout::Agent,
        &fresh_store("openai", "acct-legacy"),
    );
    let state = state_db_path(&sandbox);
    write_state_db(&state, &fresh_store("openai", "acct-state"), None, false);
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(
        run.json()["auth_path"],
        db.display().to_string(),
        "no ownership row: OpenClaw still reads the agent database\n{run}"
    );
    open_rw(&state)
        .execute(
            "INSERT INTO config_machine_state VALUES ('auth.sharedStore', '{\"location\":\"state-db\"}', 1)",
            [],
        )
        .unwrap();
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(
        run.json()["auth_path"],
        state.display().to_string(),
        "{run}"
    );
    assert_eq!(run.json()["auth_format"], "openclaw-state-sqlite");
    assert_eq!(run.json()["account_id"], "acct-state");

    // Another agent without its own store inherits the shared one, as OpenClaw layers them.
    let mut sandbox = sandbox;
    let worker = sandbox.home().join(".openclaw/agents/worker/agent");
    std::fs::create_dir_all(&worker).unwrap();
    sandbox.env("PI_CODING_AGENT_DIR", &worker);
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(
        run.json()["auth_path"],
        state.display().to_string(),
        "{run}"
    );
    // ... and its own database comes first once it has one.
    let own = worker.join("openclaw-agent.sqlite");
    write_agent_db(&own, &fresh_store("openai", "acct-worker"), None);
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(run.json()["auth_path"], own.display().to_string(), "{run}");
}

// ---------------------------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------------------------

#[test]
fn openai_profiles_are_selected_with_the_last_good_and_order_of_their_layout() {
    let sandbox = Sandbox::new();
    let later = (now_secs() + 7200) * 1000;
    let oauth = |account: &str, expires: i64| {
        json!({"type": "oauth", "provider": "openai", "access": jwt(expires / 1000),
            "refresh": "r", "expires": expires, "accountId": account})
    };
    let store = json!({"version": 1, "profiles": {
        "openai:api": {"type": "api_key", "provider": "openai", "key": "sk", "access": "not-oauth"},
        "openai:a@example.com": oauth("acct-a", later - 3_600_000),
        "openai:b@example.com": oauth("acct-b", later),
        "openai-codex:old": oauth("acct-old", later - 1_800_000),
    }});
    let db = agent_db_path(&sandbox);
    let smoke_profile = |sandbox: &Sandbox| {
        let run = sandbox.run(&["--smoke", "--json"]);
        assert_eq!(run.code, 0, "{run}");
        run.json()["profile_id"].as_str().unwrap().to_string()
    };

    // No state: the longest-lived OAuth profile wins; the API key never does.
    write_agent_db(&db, &store, None);
    assert_eq!(smoke_profile(&sandbox), "openai:b@example.com");

    // lastGood lives in the auth_profile_state row; one naming the API key is passed over.
    std::fs::remove_file(&db).unwrap();
    let state = json!({"version": 1, "lastGood": {"openai": "openai:api", "openai-codex": "openai-codex:old"}});
    write_agent_db(&db, &store, Some(&state));
    assert_eq!(smoke_profile(&sandbox), "openai-codex:old");

    // The config's auth.order.openai beats lastGood.
    write_json(
        &sandbox.home().join(".openclaw/openclaw.json"),
        &json!({"auth": {"order": {"openai": ["openai:api", "openai:a@example.com"]}}}),
    );
    assert_eq!(smoke_profile(&sandbox), "openai:a@example.com");

    // OpenClaw's own stored order (the state row) comes before the config's.
    std::fs::remove_file(&db).unwrap();
    let state = json!({"version": 1, "order": {"openai": ["openai-codex:old"]}});
    write_agent_db(&db, &store, Some(&state));
    assert_eq!(smoke_profile(&sandbox), "openai-codex:old");

    // The state database keeps lastGood under authProfiles.state.
    std::fs::remove_file(&db).unwrap();
    std::fs::remove_file(sandbox.home().join(".openclaw/openclaw.json")).unwrap();
    write_state_db(
        &state_db_path(&sandbox),
        &store,
        Some(&json!({"version": 1, "lastGood": {"openai": "openai:a@example.com"}})),
        true,
    );
    assert_eq!(smoke_profile(&sandbox), "openai:a@example.com");

    // A requested API-key profile is used as asked, and has no OAuth access token.
    let run = sandbox.run(&["--smoke", "--auth-profile", "openai:api"]);
    assert_eq!(run.code, 1, "{run}");
}

// ---------------------------------------------------------------------------------------------
// Refresh
// ---------------------------------------------------------------------------------------------

#[test]
fn refresh_only_changes_nothing_but_the_profile_inside_the_row() {
    for layout in [Layout::Agent, Layout::State] {
        let server = Server::start();
        single_use_oauth(&server);
        let sandbox = Sandbox::new();
        let db = expired_machine(&sandbox, layout);
        let before_text = store_text(layout, &db);
        let before_rest = dump_except_store(&db);
        let before_updated = store_updated_at(layout, &db);
        #[cfg(unix)]
        let before_inode = inode(&db);

        let sargs = server_args(&server);
        let run = sandbox.run(&with_server(&sargs, &["--refresh-only", "--json"]));
        assert_eq!(run.code, 0, "{layout:?}: {run}");
        let report = run.json();
        assert_eq!(report["refreshed"], true);
        assert_eq!(report["auth_format"], layout.format());
        assert_eq!(report["profile_id"], "openai:default");
        assert_eq!(report["auth_path"], db.display().to_string());

        // The row's JSON is the old one with exactly the four refreshed fields replaced, byte
        // for byte in compact form: every other field, key and character is kept.
        let after_text = store_text(layout, &db);
        let after: Value = serde_json::from_str(&after_text).unwrap();
        let profile = &after["profiles"]["openai:default"];
        assert_eq!(profile["refresh"], "refresh-1");
        assert_eq!(profile["idToken"], "id-1");
        let expires = profile["expires"].as_i64().unwrap();
        assert!((expires / 1000 - now_secs() - 3600).abs() < 30);
        let mut expected: Value = serde_json::from_str(&before_text).unwrap();
        for key in ["access", "refresh", "expires", "idToken"] {
            expected["profiles"]["openai:default"][key] = profile[key].clone();
        }
        assert_eq!(after_text, serde_json::to_string(&expected).unwrap());
        assert!(after_text.contains("\"displayName\":\"Zoë / ✓\""));

        // Every other row, table, the schema and the pragmas are untouched; the file is the same
        // file (not rewritten or replaced) and still in WAL mode.
        assert_eq!(dump_except_store(&db), before_rest, "{layout:?}");
        assert!(store_updated_at(layout, &db) > before_updated);
        #[cfg(unix)]
        assert_eq!(inode(&db), before_inode);
        assert!(files_named(&sandbox.home(), ".lock").is_empty());
        assert!(files_named(&sandbox.home(), ".tmp").is_empty());
    }
}

#[test]
fn generation_refreshes_an_expired_token_on_each_openclaw_layout() {
    for layout in [Layout::Json, Layout::Agent, Layout::State] {
        let server = Server::start();
        let used = single_use_oauth(&server);
        let sandbox = Sandbox::new();
        let path = expired_machine(&sandbox, layout);
        let sargs = server_args(&server);
        let run = sandbox.run(&with_server(&sargs, &["--json", "a cat"]));
        assert_eq!(run.code, 0, "{layout:?}: {run}");
        assert_eq!(*used.lock().unwrap(), vec!["refresh-0"], "{layout:?}");
        let summary = run.json();
        assert_eq!(summary["auth_refresh"]["refreshed"], true);
        let store = read_store(layout, &path);
        let new_access = store["profiles"][layout.profile_id()]["access"]
            .as_str()
            .unwrap()
            .to_string();
        let gen = &server.requests_to(RESPONSES)[0];
        assert_eq!(
            gen.header("authorization"),
            Some(format!("Bearer {new_access}").as_str()),
            "{layout:?}"
        );
        assert_eq!(gen.header("chatgpt-account-id"), Some("acct-123"));
        assert_eq!(
            store["profiles"][layout.profile_id()]["refresh"],
            "refresh-1"
        );
        assert!(files_named(&sandbox.home(), ".lock").is_empty());
    }
}

#[test]
fn eight_processes_on_one_expired_sqlite_profile_refresh_exactly_once() {
    for layout in [Layout::Agent, Layout::State] {
        let server = Server::start();
        let used = single_use_oauth(&server);
        let sandbox = Sandbox::new();
        let db = expired_machine(&sandbox, layout);
        let before_rest = dump_except_store(&db);
        run_concurrently_expecting_success(&sandbox, &server, 8, &format!("{layout:?}"));
        assert_eq!(
            *used.lock().unwrap(),
            vec!["refresh-0"],
            "{layout:?}: exactly one refresh request"
        );
        let after = read_store(layout, &db);
        assert_eq!(after["profiles"]["openai:default"]["refresh"], "refresh-1");
        let new_access = after["profiles"]["openai:default"]["access"]
            .as_str()
            .unwrap();
        let auths: HashSet<String> = server
            .requests_to(RESPONSES)
            .iter()
            .map(|r| r.header("authorization").unwrap().to_string())
            .collect();
        assert_eq!(auths, HashSet::from([format!("Bearer {new_access}")]));
        assert_eq!(dump_except_store(&db), before_rest);
        assert!(files_named(&sandbox.home(), ".lock").is_empty());
    }
}

#[test]
fn both_refresh_locks_are_held_and_the_database_is_free_during_the_request() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    let db = expired_machine(&sandbox, Layout::State);
    let locks = lock_dir(&sandbox);
    let seen: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let (dir, database) = (locks.clone(), db.clone());
    server.enqueue(
        TOKEN,
        Reply {
            steps: vec![Step::Check(Box::new(move || {
                let mut seen = record.lock().unwrap();
                let mut names: Vec<String> = std::fs::read_dir(&dir)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                seen.extend(names);
                // Nobody holds SQLite's write lock across the network call: OpenClaw can write.
                let conn = Connection::open(&database).unwrap();
                conn.busy_timeout(Duration::from_millis(200)).unwrap();
                let free = conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").is_ok();
                seen.push(format!("database free: {free}"));
            }))],
        }
        .step(Step::Raw(http_json(
            200,
            &json!({"access_token": jwt(now_secs() + 3600), "refresh_token": "refresh-1", "expires_in": 3600}),
        ))),
    );
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--refresh-only", "--verbose"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            TUPLE_LOCK.to_string(),
            SHA256_LOCK.to_string(),
            "database free: true".to_string()
        ]
    );
    for name in [SHA256_LOCK, TUPLE_LOCK] {
        assert!(
            run.stderr.contains(&format!(
                "openclaw_refresh_lock: {}",
                locks.join(name).display()
            )),
            "{run}"
        );
        assert!(!locks.join(name).exists(), "{name} released");
    }
    assert!(
        run.stderr.contains(&format!(
            "openclaw_auth_store: {} (config_machine_state row 'authProfiles.store', BEGIN IMMEDIATE)",
            db.display()
        )),
        "{run}"
    );
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
fn a_live_lock_on_the_new_lock_path_delays_the_refresh() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    expired_machine(&sandbox, Layout::Agent);
    let lock = lock_dir(&sandbox).join(TUPLE_LOCK);
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
        "the refresh waited for OpenClaw 2026.6.6+'s lock"
    );
    assert!(!lock.exists());
}

// ---------------------------------------------------------------------------------------------
// OpenClaw 2026.9.4+ refresh fences
// ---------------------------------------------------------------------------------------------

fn fence_token(claim: &str, failed: bool, kind: &str) -> String {
    let failed = if failed { "failed:" } else { "" };
    format!(
        "openclaw-oauth-refresh-fence:v1:{claim}:{failed}{kind}:{}",
        "ab".repeat(32)
    )
}

fn fenced_store(failed: bool) -> Value {
    let claim = "0123456789abcdef0123456789abcdef";
    let mut doc = store_doc(
        "openai",
        &fence_token(claim, failed, "access"),
        &fence_token(claim, failed, "refresh"),
        1,
    );
    let profile = doc["profiles"]["openai:default"].as_object_mut().unwrap();
    profile.remove("idToken");
    profile.remove("copyToAgents");
    doc
}

#[test]
fn a_profile_openclaw_is_refreshing_is_waited_for_and_adopted() {
    let server = Server::start();
    let used = single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let db = machine(&sandbox, Layout::State, &fenced_store(false));
    let settled_access = jwt(now_secs() + 3600);
    let settler = {
        let (db, access) = (db.clone(), settled_access.clone());
        std::thread::spawn(move || {
            // OpenClaw settles its claim under its refresh lock, in one write transaction.
            std::thread::sleep(Duration::from_millis(1200));
            let conn = Connection::open(&db).unwrap();
            let fresh = store_doc("openai", &access, "refresh-9", (now_secs() + 3600) * 1000);
            conn.execute(
                "UPDATE config_machine_state SET value_json = ?1 WHERE state_key = 'authProfiles.store'",
                [serde_json::to_string(&fresh).unwrap()],
            )
            .unwrap();
        })
    };
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--json", "a cat"]));
    settler.join().unwrap();
    assert_eq!(run.code, 0, "{run}");
    assert!(
        used.lock().unwrap().is_empty(),
        "the fence is never sent as a refresh token"
    );
    assert_eq!(run.json()["auth_refresh"]["skipped"], "auth changed");
    let gen = &server.requests_to(RESPONSES)[0];
    assert_eq!(
        gen.header("authorization"),
        Some(format!("Bearer {settled_access}").as_str())
    );
    assert!(files_named(&sandbox.home(), ".lock").is_empty());
}

#[test]
fn a_profile_whose_openclaw_refresh_failed_asks_for_a_new_sign_in() {
    let server = Server::start();
    let used = single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let db = machine(&sandbox, Layout::Agent, &fenced_store(true));
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--refresh-only"]));
    assert_eq!(run.code, 1, "{run}");
    assert!(used.lock().unwrap().is_empty());
    assert!(
        run.stderr.starts_with(
            "Error: Refresh token was rejected. Sign in again with Codex or OpenClaw OAuth."
        ),
        "{run}"
    );
    assert!(
        run.stderr.contains(&format!(
            "auth store: {} (profile openai:default)",
            db.display()
        )),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("openclaw models auth login --provider openai"),
        "{run}"
    );
    assert!(files_named(&sandbox.home(), ".lock").is_empty());
}

// ---------------------------------------------------------------------------------------------
// What --smoke says about a fenced profile (issue #15)
// ---------------------------------------------------------------------------------------------

const LAYOUTS: [Layout; 3] = [Layout::Json, Layout::Agent, Layout::State];

/// A fenced store of `layout`: the JSON layout's provider is `openai-codex`, the databases'
/// `openai`, as each OpenClaw version writes them.
fn fenced_machine(sandbox: &Sandbox, layout: Layout, failed: bool) -> (PathBuf, &'static str) {
    let mut store = fenced_store(failed);
    let provider = match layout {
        Layout::Json => "openai-codex",
        Layout::Agent | Layout::State => "openai",
    };
    if provider == "openai-codex" {
        let profiles = store["profiles"].as_object_mut().unwrap();
        let mut profile = profiles.remove("openai:default").unwrap();
        profile["provider"] = json!("openai-codex");
        profiles.insert("openai-codex:default".into(), profile);
    }
    (machine(sandbox, layout, &store), provider)
}

#[test]
fn smoke_reports_a_failed_fence_as_refresh_failed_with_no_token_and_prints_the_fix() {
    for layout in LAYOUTS {
        let sandbox = Sandbox::new();
        let (store, provider) = fenced_machine(&sandbox, layout, true);
        let run = sandbox.run(&["--smoke", "--json"]);
        assert_eq!(run.code, 0, "{layout:?}: {run}");
        let report = run.json();
        assert_eq!(
            report["auth_path"],
            store.display().to_string(),
            "{layout:?}"
        );
        assert_eq!(report["credential_state"], "refresh_failed", "{layout:?}");
        assert_eq!(report["refresh_token_present"], false, "{layout:?}");
        assert_eq!(
            report["access_token_expires_in_seconds"],
            Value::Null,
            "{layout:?}"
        );
        let keys = object_keys(&report);
        assert_eq!(
            *keys.last().unwrap(),
            "credential_state",
            "after the existing keys"
        );
        assert!(
            run.stderr.contains(&format!(
                "fix: run `openclaw models auth login --provider {provider}`, then try again"
            )),
            "{layout:?}: {run}"
        );
        let text = sandbox.run(&["--smoke"]);
        assert_eq!(text.code, 0, "{text}");
        assert!(
            text.stdout.contains("\ncredential_state: refresh_failed\n"),
            "{text}"
        );
        assert!(
            text.stdout.contains("\nrefresh_token_present: false\n"),
            "{text}"
        );
        assert!(
            text.stdout
                .contains("\naccess_token_expires_in_seconds: \n"),
            "{text}"
        );
    }
}

#[test]
fn smoke_reports_a_pending_fence_as_refreshing_without_a_token() {
    for layout in LAYOUTS {
        let sandbox = Sandbox::new();
        fenced_machine(&sandbox, layout, false);
        let run = sandbox.run(&["--smoke", "--json"]);
        assert_eq!(run.code, 0, "{layout:?}: {run}");
        let report = run.json();
        assert_eq!(report["credential_state"], "refreshing", "{layout:?}");
        assert_eq!(report["refresh_token_present"], false, "{layout:?}");
        assert_eq!(
            report["access_token_expires_in_seconds"],
            Value::Null,
            "{layout:?}"
        );
        assert!(!run.stderr.contains("fix:"), "{layout:?}: {run}");
    }
}

#[test]
fn smoke_says_ok_or_expired_for_ordinary_profiles() {
    let sandbox = Sandbox::new();
    expired_machine(&sandbox, Layout::State);
    let report = sandbox.run(&["--smoke", "--json"]).json();
    assert_eq!(report["credential_state"], "expired");
    assert_eq!(report["refresh_token_present"], true);
    assert!(report["access_token_expires_in_seconds"].as_i64().unwrap() < 0);
    let sandbox = Sandbox::new();
    machine(&sandbox, Layout::Agent, &fresh_store("openai", "acct-123"));
    let report = sandbox.run(&["--smoke", "--json"]).json();
    assert_eq!(report["credential_state"], "ok");
}

#[test]
fn generation_with_a_failed_fence_fails_at_once_without_a_backend_request() {
    for layout in LAYOUTS {
        let server = Server::start();
        let used = single_use_oauth(&server);
        let sandbox = Sandbox::new();
        fenced_machine(&sandbox, layout, true);
        let sargs = server_args(&server);
        let run = sandbox.run(&with_server(&sargs, &["a cat"]));
        assert_eq!(run.code, 1, "{layout:?}: {run}");
        assert!(
            run.stderr.starts_with(
                "Error: Refresh token was rejected. Sign in again with Codex or OpenClaw OAuth. \
                 (OpenClaw's own refresh of this profile failed and spent its refresh token.)"
            ),
            "{layout:?}: {run}"
        );
        assert!(server.requests_to(RESPONSES).is_empty(), "{layout:?}");
        assert!(used.lock().unwrap().is_empty(), "{layout:?}");
        assert!(files_named(&sandbox.home(), ".lock").is_empty());
    }
}

#[test]
fn generation_falls_back_from_a_failed_fence_to_the_next_compatible_store() {
    let server = Server::start();
    let used = single_use_oauth(&server);
    let sandbox = Sandbox::new();
    fenced_machine(&sandbox, Layout::Agent, true);
    let codex = sandbox.home().join(".codex/auth.json");
    write_json(&codex, &codex_auth(3600));
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--json", "a cat"]));
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "codex-imagen: using fallback auth {}",
            codex.display()
        )),
        "{run}"
    );
    assert!(used.lock().unwrap().is_empty());
    assert_eq!(server.requests_to(RESPONSES).len(), 1);
}

#[test]
fn refresh_only_json_reports_the_credential_state_after_the_existing_keys() {
    let server = Server::start();
    single_use_oauth(&server);
    let sandbox = Sandbox::new();
    expired_machine(&sandbox, Layout::State);
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--refresh-only", "--json"]));
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["credential_state"], "ok");
    let keys = object_keys(&report);
    assert_eq!(*keys.last().unwrap(), "credential_state");
}
