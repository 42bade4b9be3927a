//! The Codex keyring store (issue #21) against a real Secret Service: gnome-keyring-daemon on a
//! private D-Bus session per test. Entries are written the way Codex's `keyring` 3.6 writes
//! them (service `Codex Auth`, account `cli|<16 hex of SHA-256 of the Codex home>`, attributes
//! `service`, `username`, `target=default`, `application=rust-keyring`, the compact `auth.json`
//! document as the secret), read back with `secret-tool`. Nothing is skipped: without
//! gnome-keyring the tests fail and say what to install.

#![cfg(target_os = "linux")]
mod login_support;
mod support;

use std::path::PathBuf;

use login_support::*;
use serde_json::{json, Value};
use support::*;

/// A sandbox whose Codex home says `cli_auth_credentials_store = mode`, on `ring`'s bus.
fn codex_sandbox(ring: &Keyring, mode: &str) -> (Sandbox, PathBuf) {
    let mut sandbox = Sandbox::new();
    let home = sandbox.home().join(".codex");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!("model = \"gpt-5\"\ncli_auth_credentials_store = \"{mode}\"\n"),
    )
    .unwrap();
    sandbox.env("DBUS_SESSION_BUS_ADDRESS", ring.address());
    (sandbox, home)
}

/// Codex's document for `account`, its access token valid for `expires_in` seconds.
fn codex_doc(account: &str, expires_in: i64, refresh: &str) -> Value {
    json!({
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": null,
        "tokens": {
            "id_token": id_token("ring@example.com", account, "pro"),
            "access_token": jwt(now_secs() + expires_in),
            "refresh_token": refresh,
            "account_id": account
        },
        "last_refresh": "2026-11-20T10:00:00.123456789Z"
    })
}

/// A token endpoint that hands out `refresh-<n+1>` for `refresh-<n>`, with a real id token.
fn refreshing_issuer() -> Server {
    let server = Server::start();
    let png = png_bytes(8, 300);
    server.handle(move |req| {
        if req.path.starts_with("/oauth/token") {
            let token = req.json()["refresh_token"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let n: u32 = token.trim_start_matches("refresh-").parse().unwrap_or(0);
            return Reply::json(
                200,
                &json!({"access_token": jwt(now_secs() + 3600),
                    "refresh_token": format!("refresh-{}", n + 1),
                    "id_token": id_token("ring@example.com", "acct-ring", "pro")}),
            );
        }
        image_stream(&[("ig_1", &png)])
    });
    server
}

#[test]
fn a_codex_keyring_entry_is_found_refreshed_and_written_back() {
    let ring = Keyring::start();
    let (sandbox, home) = codex_sandbox(&ring, "keyring");
    let account = codex_account(&home);
    let fresh = codex_doc("acct-ring", 3600, "refresh-0").to_string();
    ring.store_as_codex(&account, &fresh);
    let server = refreshing_issuer();

    // --smoke names the store; a run that does not refresh leaves the entry untouched.
    let smoke = run_against(&sandbox, &server, &["--smoke", "--json"]);
    assert_eq!(smoke.code, 0, "{smoke}");
    assert_eq!(smoke.json()["auth_format"], "codex-keyring");
    assert_eq!(
        smoke.json()["auth_path"],
        home.join("codex-auth.keyring").display().to_string()
    );
    assert_eq!(smoke.json()["account_id"], "acct-ring");
    let image = run_against(&sandbox, &server, &["a kite"]);
    assert_eq!(image.code, 0, "{image}");
    assert!(server.requests_to("/oauth/token").is_empty());
    assert_eq!(ring.lookup(&account).as_deref(), Some(fresh.as_str()));

    // Expired: refreshed once, and the new tokens land in the same keyring item.
    ring.store_as_codex(
        &account,
        &codex_doc("acct-ring", -60, "refresh-0").to_string(),
    );
    let image = run_against(&sandbox, &server, &["a kite"]);
    assert_eq!(image.code, 0, "{image}");
    assert_eq!(server.requests_to("/oauth/token").len(), 1);
    let secret = ring.lookup(&account).expect("the entry is still there");
    assert!(
        !secret.contains('\n'),
        "compact JSON, as Codex writes: {secret}"
    );
    let doc: Value = serde_json::from_str(&secret).unwrap();
    assert_eq!(
        object_keys(&doc),
        ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]
    );
    assert_eq!(doc["tokens"]["refresh_token"], "refresh-1");
    assert_eq!(doc["tokens"]["account_id"], "acct-ring");
    assert_ne!(doc["last_refresh"], "2026-11-20T10:00:00.123456789Z");
    // Codex reads the id token as a JWT: it still is one.
    assert_eq!(
        doc["tokens"]["id_token"]
            .as_str()
            .unwrap()
            .split('.')
            .count(),
        3
    );
    let items = ring.search();
    assert_eq!(items.matches("[/").count(), 1, "{items}");
    for attribute in [
        "attribute.service = Codex Auth",
        &format!("attribute.username = {account}"),
        "attribute.target = default",
        "attribute.application = rust-keyring",
    ] {
        assert!(items.contains(attribute), "{attribute}:\n{items}");
    }
    assert!(!home.join("auth.json").exists());
}

#[test]
fn sign_in_saves_to_the_keyring_when_codex_says_so_and_logout_removes_it() {
    let ring = Keyring::start();
    let (sandbox, home) = codex_sandbox(&ring, "keyring");
    write_json(&home.join("auth.json"), &codex_auth(3600));
    let server = device_issuer_granting(0, "ring@example.com", "acct-123", "refresh-new");
    let run = sandbox.run(&["--login", "--device-auth", "--issuer", &server.addr]);
    assert_eq!(run.code, 0, "{run}");
    let account = codex_account(&home);
    assert!(
        run.stdout.contains(&format!(
            "Updated OS keyring entry \"Codex Auth\" / \"{account}\""
        )),
        "{run}"
    );
    // Codex deletes auth.json once the keyring holds the credential.
    assert!(!home.join("auth.json").exists(), "{run}");
    let doc: Value = serde_json::from_str(&ring.lookup(&account).unwrap()).unwrap();
    assert_eq!(doc["tokens"]["refresh_token"], "refresh-new");
    assert_eq!(doc["auth_mode"], "chatgpt");

    let out = sandbox.run(&["--logout"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains(&format!(
            "Removed OS keyring entry \"Codex Auth\" / \"{account}\""
        )),
        "{out}"
    );
    assert_eq!(ring.lookup(&account), None);
}

#[test]
fn a_locked_keyring_is_reported_as_locked_and_auto_mode_falls_back_to_auth_json() {
    let ring = Keyring::start();
    let (sandbox, home) = codex_sandbox(&ring, "keyring");
    let account = codex_account(&home);
    ring.store_as_codex(
        &account,
        &codex_doc("acct-ring", 3600, "refresh-0").to_string(),
    );
    ring.lock();
    let run = sandbox.run(&["--smoke"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("the OS keyring is locked"), "{run}");
    assert!(!run.stderr.contains("No auth JSON found"), "{run}");

    std::fs::write(
        home.join("config.toml"),
        "cli_auth_credentials_store = \"auto\"\n",
    )
    .unwrap();
    write_json(&home.join("auth.json"), &codex_auth(3600));
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["auth_format"], "codex-auth-json");
}

#[test]
fn auto_mode_reads_the_keyring_first_and_an_empty_one_falls_back_to_auth_json() {
    let ring = Keyring::start();
    let (sandbox, home) = codex_sandbox(&ring, "auto");
    let account = codex_account(&home);
    let run = sandbox.run(&["--smoke"]);
    assert_eq!(run.code, 1, "{run}");
    let keyring_line = format!(
        "  - {} (OS keyring entry \"Codex Auth\" / \"{account}\": no entry)\n  - {}\n",
        home.join("codex-auth.keyring").display(),
        home.join("auth.json").display()
    );
    assert!(run.stderr.contains(&keyring_line), "{run}");

    write_json(&home.join("auth.json"), &codex_auth(3600));
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(run.json()["auth_format"], "codex-auth-json", "{run}");
    ring.store_as_codex(
        &account,
        &codex_doc("acct-ring", 3600, "refresh-0").to_string(),
    );
    let run = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(run.json()["auth_format"], "codex-keyring", "{run}");
    assert_eq!(run.json()["account_id"], "acct-ring");
}

#[test]
fn keyring_mode_without_any_keyring_says_so() {
    let sandbox = Sandbox::new();
    let home = sandbox.home().join(".codex");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        "cli_auth_credentials_store = \"keyring\"\n",
    )
    .unwrap();
    let run = sandbox.run(&["--smoke"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("no OS keyring is available"), "{run}");
}

#[test]
fn auto_mode_without_a_keyring_saves_the_sign_in_to_auth_json_as_codex_does() {
    let sandbox = Sandbox::new();
    let home = sandbox.home().join(".codex");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        "cli_auth_credentials_store = \"auto\"\n",
    )
    .unwrap();
    let server = device_issuer_granting(0, "auto@example.com", "acct-auto", "refresh-a");
    let run = sandbox.run(&["--login", "--device-auth", "--issuer", &server.addr]);
    assert_eq!(run.code, 0, "{run}");
    let file = home.join("auth.json");
    assert!(
        run.stdout.contains(&format!("Saved to {}", file.display())),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("note: the OS keyring could not be used"),
        "{run}"
    );
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(read_json(&file)["tokens"]["account_id"], "acct-auto");
}
