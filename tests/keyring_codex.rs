//! The Codex keyring entry shared with the real Codex CLI (0.171.0, found as tests/codex_host.rs
//! finds it), both ways, on a real Secret Service (gnome-keyring-daemon on a private D-Bus
//! session per test, as in tests/keyring.rs):
//!
//! - codex-imagen writes: `--login --device-auth` against a loopback issuer in `keyring` mode,
//!   then `codex login status` (same `CODEX_HOME`, same bus) says it is logged in with ChatGPT;
//! - Codex writes: in `auto` mode `codex exec` refreshes an expired `auth.json` against the
//!   loopback token endpoint and moves the credential into the keyring, then `codex-imagen
//!   --smoke` reports `codex-keyring` with Codex's new tokens and an image request sends them.
//!
//! Every request Codex makes goes to 127.0.0.1: the loopback server, or a proxy that refuses and
//! records. The tests skip (and pass) without a Codex binary or without gnome-keyring and dbus.

#![cfg(target_os = "linux")]
mod login_support;
mod support;

use std::path::PathBuf;
use std::time::Duration;

use login_support::*;
use serde_json::{json, Value};
use support::codex::*;
use support::*;

/// The final message of the loopback model.
const FINAL_TEXT: &str = "Done.";

/// Codex, a Secret Service and a sandbox whose Codex home (`~/.codex`, also `CODEX_HOME`) has
/// Codex's offline `config.toml` with `cli_auth_credentials_store = mode`; `None` (the test
/// skips) without Codex or a keyring.
struct Peer {
    codex: PathBuf,
    ring: Keyring,
    sandbox: Sandbox,
    home: PathBuf,
    server: Server,
    proxy: Server,
}

impl Peer {
    fn start(test: &str, mode: &str, server: Server) -> Option<Peer> {
        let codex = codex_or_skip(test)?;
        let ring = Keyring::start_or_skip(test)?;
        let mut sandbox = Sandbox::new();
        let home = sandbox.home().join(".codex");
        std::fs::create_dir_all(&home).unwrap();
        let store = format!("cli_auth_credentials_store = \"{mode}\"\n");
        std::fs::write(
            home.join("config.toml"),
            offline_config(&server.addr, &store),
        )
        .unwrap();
        sandbox
            .env("DBUS_SESSION_BUS_ADDRESS", ring.address())
            .env("CODEX_HOME", &home);
        Some(Peer {
            codex,
            ring,
            sandbox,
            home,
            server,
            proxy: dead_proxy(),
        })
    }

    /// `codex ARGS` on the same home, Codex home and bus, refreshing at the loopback server.
    fn codex(&self, args: &[&str]) -> CodexRun {
        let mut cmd = codex_command(
            &self.codex,
            args,
            &self.sandbox.home(),
            &self.home,
            &self.sandbox.work(),
            &self.proxy,
        );
        cmd.env("DBUS_SESSION_BUS_ADDRESS", self.ring.address())
            .env(
                "CODEX_REFRESH_TOKEN_URL_OVERRIDE",
                self.server.refresh_url(),
            );
        run_codex(cmd)
    }
}

/// Hex SHA-256 of a token: what a failing assertion may show instead of the token.
fn fingerprint(token: &str) -> String {
    sha256_hex(token.as_bytes())[..12].to_string()
}

#[test]
fn codex_login_status_accepts_the_entry_codex_imagen_signed_in_to_the_keyring() {
    let server = device_issuer(0, "ring@example.com", "acct-signin");
    let Some(peer) = Peer::start(
        "codex_login_status_accepts_the_entry_codex_imagen_signed_in_to_the_keyring",
        "keyring",
        server,
    ) else {
        return;
    };

    let login = peer
        .sandbox
        .run(&["--login", "--device-auth", "--issuer", &peer.server.addr]);
    assert_eq!(login.code, 0, "{login}");
    let account = codex_account(&peer.home);
    assert!(peer.ring.lookup(&account).is_some(), "{login}");
    assert!(!peer.home.join("auth.json").exists(), "{login}");

    let status = peer.codex(&["login", "status"]);
    assert_eq!(status.code, Some(0), "{status}");
    let said = format!("{}{}", status.stdout, status.stderr);
    assert!(said.contains("Logged in using ChatGPT"), "{status}");
    // Reading the store does not refresh, and nothing left the machine.
    assert_eq!(peer.server.requests_to("/oauth/token").len(), 1);
    assert_stayed_local(&peer.proxy);
    eprintln!("codex login status took {:?}", status.elapsed);
}

#[test]
fn codex_moves_its_refreshed_credential_into_the_keyring_and_codex_imagen_uses_it() {
    let issued = jwt_with(&json!({"exp": now_secs() + 7200, "marker": "issued-by-loopback"}));
    let answer = issued.clone();
    let png = png_bytes(8, 300);
    let server = Server::start();
    server.handle(move |req| {
        if req.path.starts_with("/oauth/token") {
            return Reply::json(
                200,
                &json!({"access_token": answer, "refresh_token": "refresh-codex",
                    "id_token": id_token("ring@example.com", "acct-ring", "pro")}),
            );
        }
        if req.path.starts_with(MODEL_PATH) {
            return model_turn("resp_1", vec![assistant_message("msg_1", FINAL_TEXT)]);
        }
        if req.path.starts_with(RESPONSES_PATH) {
            return image_stream(&[("ig_1", &png)]);
        }
        Reply::json(404, &json!({"error": "not scripted"}))
    });
    let Some(peer) = Peer::start(
        "codex_moves_its_refreshed_credential_into_the_keyring_and_codex_imagen_uses_it",
        "auto",
        server,
    ) else {
        return;
    };
    // An expired access token; the id token a real JWT, as Codex parses it.
    let auth = peer.home.join("auth.json");
    write_json(
        &auth,
        &json!({
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": id_token("ring@example.com", "acct-ring", "pro"),
                "access_token": jwt(now_secs() - 600),
                "refresh_token": "refresh-0",
                "account_id": "acct-ring"
            },
            "last_refresh": "2026-11-20T10:00:00.000Z"
        }),
    );

    let run = peer.codex(&["exec", "--skip-git-repo-check", "--json", "Say done."]);
    assert_eq!(run.code, Some(0), "{run}");
    let refreshes = peer.server.requests_to("/oauth/token");
    assert_eq!(refreshes.len(), 1, "{run}");
    assert_eq!(refreshes[0].json()["refresh_token"], "refresh-0");
    let account = codex_account(&peer.home);
    let moved = wait_for(Duration::from_secs(10), || {
        peer.ring.lookup(&account).is_some() && !auth.exists()
    });
    assert!(moved, "Codex did not move the credential:\n{run}");
    let doc: Value = serde_json::from_str(&peer.ring.lookup(&account).unwrap()).unwrap();
    let stored = doc["tokens"]["access_token"].as_str().unwrap_or("");
    assert_eq!(fingerprint(stored), fingerprint(&issued));
    assert_eq!(doc["tokens"]["refresh_token"], "refresh-codex");

    let smoke = run_against(&peer.sandbox, &peer.server, &["--smoke", "--json"]);
    assert_eq!(smoke.code, 0, "{smoke}");
    let report = smoke.json();
    assert_eq!(report["auth_format"], "codex-keyring", "{smoke}");
    assert_eq!(report["account_id"], "acct-ring", "{smoke}");
    assert_eq!(report["last_refresh"], doc["last_refresh"], "{smoke}");
    let left = report["access_token_expires_in_seconds"].as_i64().unwrap();
    assert!((7000..=7200).contains(&left), "{smoke}");

    let image = run_against(&peer.sandbox, &peer.server, &["a kite"]);
    assert_eq!(image.code, 0, "{image}");
    let requests = peer.server.requests_to(RESPONSES_PATH);
    assert_eq!(requests.len(), 1, "{image}");
    let sent = requests[0]
        .header("authorization")
        .unwrap_or("")
        .trim_start_matches("Bearer ");
    assert_eq!(fingerprint(sent), fingerprint(&issued), "{image}");
    // codex-imagen did not refresh again, and left Codex's entry as Codex wrote it.
    assert_eq!(peer.server.requests_to("/oauth/token").len(), 1);
    let after: Value = serde_json::from_str(&peer.ring.lookup(&account).unwrap()).unwrap();
    assert_eq!(after, doc);
    assert_stayed_local(&peer.proxy);
    eprintln!("codex exec took {:?}", run.elapsed);
}
