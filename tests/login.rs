//! `--login`, `--login --device-auth` and `--logout` (issue #21) against a loopback issuer: the
//! test plays the browser by opening the printed authorize URL at the issuer and following its
//! redirect to the callback. No test opens a browser (`--no-browser`, and no DISPLAY) and no
//! request leaves 127.0.0.1.

#![cfg(unix)]
mod login_support;
mod support;

use std::time::Duration;

use login_support::*;
use serde_json::{json, Value};
use support::*;

fn login_args<'a>(issuer: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--login",
        "--no-browser",
        "--issuer",
        issuer,
        "--callback-port",
        "0",
    ];
    args.extend_from_slice(extra);
    args
}

/// The authorize URL the running sign-in printed.
fn authorize_url(running: &Running, issuer: &str) -> String {
    running.line_with(&format!("{issuer}/oauth/authorize?"))
}

#[test]
fn browser_sign_in_sends_codexs_authorize_url_and_saves_a_codex_auth_json() {
    let issuer = Issuer::start(token_answer("kite@example.com", "acct-kite", "refresh-1"));
    let sandbox = Sandbox::new();
    let url = issuer.url();
    let running = Running::spawn(&sandbox, &login_args(&url, &[]));
    let authorize = authorize_url(&running, &url);

    // The authorize URL: Codex's parameters, in Codex's order.
    let (base, query) = authorize.split_once('?').unwrap();
    assert_eq!(base, format!("{url}/oauth/authorize"));
    let pairs = query_pairs(query);
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "code_challenge",
            "code_challenge_method",
            "id_token_add_organizations",
            "codex_cli_simplified_flow",
            "state",
            "originator"
        ]
    );
    assert_eq!(param(&pairs, "response_type").unwrap(), "code");
    assert_eq!(
        param(&pairs, "client_id").unwrap(),
        "app_EMoamEEZ73f0CkXaXp7hrann"
    );
    let redirect = param(&pairs, "redirect_uri").unwrap();
    assert!(
        redirect.starts_with("http://localhost:") && redirect.ends_with("/auth/callback"),
        "{redirect}"
    );
    assert_eq!(
        param(&pairs, "scope").unwrap(),
        "openid profile email offline_access api.connectors.read api.connectors.invoke"
    );
    assert!(query.contains("scope=openid%20profile%20email"), "{query}");
    assert_eq!(param(&pairs, "code_challenge_method").unwrap(), "S256");
    assert_eq!(param(&pairs, "id_token_add_organizations").unwrap(), "true");
    assert_eq!(param(&pairs, "codex_cli_simplified_flow").unwrap(), "true");
    assert_eq!(param(&pairs, "originator").unwrap(), "codex_cli_rs");
    assert_eq!(param(&pairs, "state").unwrap().len(), 43);
    let challenge = param(&pairs, "code_challenge").unwrap();
    assert_eq!(challenge.len(), 43);

    // Play the browser: the issuer redirects to the callback, which redirects to /success.
    let answer = browse(&authorize, None);
    assert_eq!(answer.status, 302, "{}", answer.body);
    assert_eq!(answer.header("location"), Some("/success"));
    let port = redirect
        .trim_start_matches("http://localhost:")
        .trim_end_matches("/auth/callback");
    let page = http_get(&format!("http://localhost:{port}/success"));
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Signed in to codex-imagen"),
        "{}",
        page.body
    );
    let run = running.finish();
    assert_eq!(run.code, 0, "{run}");

    // The code exchange: Codex's form, its field order, the verifier behind the challenge.
    let request = &issuer.server.requests_to("/oauth/token")[0];
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = issuer.token_form(0);
    let fields: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        fields,
        [
            "grant_type",
            "code",
            "redirect_uri",
            "client_id",
            "code_verifier"
        ]
    );
    assert_eq!(param(&form, "grant_type").unwrap(), "authorization_code");
    assert_eq!(param(&form, "code").unwrap(), "code-1");
    assert_eq!(param(&form, "redirect_uri").unwrap(), redirect);
    let verifier = param(&form, "code_verifier").unwrap();
    assert_eq!(verifier.len(), 86);
    assert_eq!(b64url(&sha256_bytes(verifier.as_bytes())), challenge);

    // Saved where Codex keeps it, in Codex's shape, 0600; the account is printed.
    let file = sandbox.home().join(".codex/auth.json");
    assert_eq!(mode_of(&file), 0o600);
    let doc = read_json(&file);
    assert_eq!(
        object_keys(&doc),
        ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]
    );
    assert_eq!(doc["auth_mode"], "chatgpt");
    assert!(doc["OPENAI_API_KEY"].is_null());
    assert_eq!(
        object_keys(&doc["tokens"]),
        ["id_token", "access_token", "refresh_token", "account_id"]
    );
    assert_eq!(doc["tokens"]["refresh_token"], "refresh-1");
    assert_eq!(doc["tokens"]["account_id"], "acct-kite");
    assert!(chrono::DateTime::parse_from_rfc3339(doc["last_refresh"].as_str().unwrap()).is_ok());
    assert!(
        run.stdout
            .contains("Signed in as kite@example.com (plan: plus, account: acct-kite)"),
        "{run}"
    );
    assert!(
        run.stdout.contains(&format!("Saved to {}", file.display())),
        "{run}"
    );
    assert!(!run.stderr.contains("refresh-1") && !run.stdout.contains("refresh-1"));

    // And codex-imagen finds it.
    let smoke = sandbox.run(&["--smoke", "--json"]);
    assert_eq!(smoke.code, 0, "{smoke}");
    assert_eq!(smoke.json()["auth_format"], "codex-auth-json");
    assert_eq!(smoke.json()["email"], "kite@example.com");
}

fn sha256_bytes(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

#[test]
fn a_callback_with_the_wrong_state_is_refused_and_the_sign_in_keeps_waiting() {
    let issuer = Issuer::start(token_answer("a@example.com", "acct-a", "refresh-1"));
    let sandbox = Sandbox::new();
    let url = issuer.url();
    let running = Running::spawn(&sandbox, &login_args(&url, &[]));
    let authorize = authorize_url(&running, &url);
    let refused = browse(&authorize, Some("not-the-state"));
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("State mismatch"), "{}", refused.body);
    assert!(issuer.server.requests_to("/oauth/token").is_empty());
    let accepted = browse(&authorize, None);
    assert_eq!(accepted.status, 302, "{}", accepted.body);
    let run = running.finish();
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("state does not match"), "{run}");
}

#[test]
fn a_token_error_is_answered_with_the_issuers_words() {
    let issuer = Issuer::start(json!({}));
    issuer.set_token(
        400,
        json!({"error": "invalid_grant", "error_description": "The code has expired"}),
    );
    let sandbox = Sandbox::new();
    let url = issuer.url();
    let running = Running::spawn(&sandbox, &login_args(&url, &[]));
    let answer = browse(&authorize_url(&running, &url), None);
    assert!(
        answer.body.contains("The code has expired"),
        "{}",
        answer.body
    );
    let run = running.finish();
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(
            "Error: Token exchange failed: The issuer refused the sign-in: token endpoint \
             returned status 400: The code has expired"
        ),
        "{run}"
    );
    assert!(!sandbox.home().join(".codex/auth.json").exists());
}

#[test]
fn an_error_the_issuer_sends_back_ends_the_sign_in() {
    let issuer = Issuer::start(json!({}));
    let sandbox = Sandbox::new();
    let url = issuer.url();
    let running = Running::spawn(&sandbox, &login_args(&url, &[]));
    let authorize = authorize_url(&running, &url);
    let pairs = query_pairs(authorize.split_once('?').unwrap().1);
    let callback = format!(
        "{}?error=access_denied&error_description=Nope&state={}",
        param(&pairs, "redirect_uri").unwrap(),
        param(&pairs, "state").unwrap()
    );
    let answer = http_get(&callback);
    assert!(
        answer.body.contains("Sign-in failed: Nope"),
        "{}",
        answer.body
    );
    let run = running.finish();
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("Error: Sign-in failed: Nope"), "{run}");
}

#[test]
fn the_sign_in_gives_up_after_the_timeout_with_exit_124() {
    let issuer = Issuer::start(json!({}));
    let sandbox = Sandbox::new();
    let url = issuer.url();
    let run = sandbox.run(&login_args(&url, &["--timeout", "1"]));
    assert_eq!(run.code, 124, "{run}");
    assert!(
        run.stderr
            .contains("did not finish within 1 s; nothing was saved"),
        "{run}"
    );
    assert!(run.elapsed < Duration::from_secs(10), "{run}");
}

#[test]
fn a_second_sign_in_cancels_the_first_through_cancel() {
    let issuer = Issuer::start(token_answer("a@example.com", "acct-a", "refresh-1"));
    let sandbox = Sandbox::new();
    let url = issuer.url();
    let port = free_port().to_string();
    let args = [
        "--login",
        "--no-browser",
        "--issuer",
        &url,
        "--callback-port",
        &port,
    ];
    let first = Running::spawn(&sandbox, &args);
    authorize_url(&first, &url);
    let second = Running::spawn(&sandbox, &args);
    let authorize = authorize_url(&second, &url);
    let first = first.finish();
    assert_eq!(first.code, 1, "{first}");
    assert!(
        first
            .stderr
            .contains("Sign-in cancelled: another sign-in took over"),
        "{first}"
    );
    assert_eq!(browse(&authorize, None).status, 302);
    let second = second.finish();
    assert_eq!(second.code, 0, "{second}");
}

#[test]
fn ctrl_c_stops_the_sign_in_with_130_and_saves_nothing() {
    let issuer = Issuer::start(json!({}));
    let sandbox = Sandbox::new();
    let url = issuer.url();
    let running = Running::spawn(&sandbox, &login_args(&url, &[]));
    authorize_url(&running, &url);
    unsafe { libc::kill(running.child.id() as i32, libc::SIGINT) };
    let run = running.finish();
    assert_eq!(run.code, 130, "{run}");
    assert!(
        run.stderr
            .contains("interrupted by SIGINT; nothing was saved"),
        "{run}"
    );
}

#[test]
fn device_code_sign_in_polls_until_the_user_has_signed_in_then_images_work() {
    let server = device_issuer(3, "dev@example.com", "acct-dev");
    let sandbox = Sandbox::new();
    let url = server.addr.clone();
    let running = Running::spawn(&sandbox, &["--login", "--device-auth", "--issuer", &url]);
    running.line_with(&format!("{url}/codex/device"));
    running.line_with("ABCD-1234");
    let run = running.finish();
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Signed in as dev@example.com"), "{run}");

    let usercode = &server.requests_to("/api/accounts/deviceauth/usercode")[0];
    assert_eq!(
        usercode.json(),
        json!({"client_id": "app_EMoamEEZ73f0CkXaXp7hrann"})
    );
    let polls = server.requests_to("/api/accounts/deviceauth/token");
    assert_eq!(polls.len(), 4);
    assert_eq!(
        polls[0].json(),
        json!({"device_auth_id": "dev-1", "user_code": "ABCD-1234"})
    );
    let exchange = &server.requests_to("/oauth/token")[0];
    let form = query_pairs(&String::from_utf8_lossy(&exchange.body));
    assert_eq!(param(&form, "code").unwrap(), "dev-code");
    assert_eq!(param(&form, "code_verifier").unwrap(), "server-verifier");
    assert_eq!(
        param(&form, "redirect_uri").unwrap(),
        format!("{url}/deviceauth/callback")
    );

    let file = sandbox.home().join(".codex/auth.json");
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(read_json(&file)["tokens"]["account_id"], "acct-dev");

    // Nothing but the binary: the sign-in, then an image.
    let image = run_against(&sandbox, &server, &["a red kite"]);
    assert_eq!(image.code, 0, "{image}");
    let generation = &server.requests_to(RESPONSES_PATH)[0];
    assert_eq!(generation.header("chatgpt-account-id"), Some("acct-dev"));
}

#[test]
fn device_sign_in_turned_off_is_said_plainly() {
    let server = Server::start();
    server.enqueue(
        "/api/accounts/deviceauth/usercode",
        Reply::json(404, &json!({"error": "not_found"})),
    );
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["--login", "--device-auth", "--issuer", &server.addr]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("Error: Device code sign-in is not enabled for this account or server"),
        "{run}"
    );
    assert!(run.stderr.contains("codex-imagen --login"), "{run}");
}

#[test]
fn another_accounts_credential_is_replaced_only_with_force() {
    let sandbox = Sandbox::new();
    let store = sandbox.path("stores/auth.json");
    let store_arg = store.display().to_string();
    let sign_in = |email: &str, account: &str, force: bool| {
        let server = device_issuer(0, email, account);
        let mut args = vec![
            "--login",
            "--device-auth",
            "--issuer",
            &server.addr,
            "--auth",
            &store_arg,
        ];
        if force {
            args.push("--force");
        }
        sandbox.run(&args)
    };
    let first = sign_in("old@example.com", "acct-old", false);
    assert_eq!(first.code, 0, "{first}");
    assert!(
        first.stdout.contains(&format!("Saved to {store_arg}")),
        "{first}"
    );
    assert_eq!(mode_of(&store), 0o600);
    let before = std::fs::read_to_string(&store).unwrap();

    let refused = sign_in("new@example.com", "acct-new", false);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused
            .stderr
            .contains("old@example.com (account acct-old)"),
        "{refused}"
    );
    assert!(
        refused
            .stderr
            .contains("new@example.com (account acct-new)"),
        "{refused}"
    );
    assert!(refused.stderr.contains("--force"), "{refused}");
    assert_eq!(std::fs::read_to_string(&store).unwrap(), before);

    let same = sign_in("old@example.com", "acct-old", false);
    assert_eq!(same.code, 0, "{same}");
    assert!(
        same.stdout.contains(&format!("Updated {store_arg}")),
        "{same}"
    );

    let forced = sign_in("new@example.com", "acct-new", true);
    assert_eq!(forced.code, 0, "{forced}");
    assert_eq!(read_json(&store)["tokens"]["account_id"], "acct-new");
    assert!(!sandbox.home().join(".codex/auth.json").exists());
}

#[test]
fn logout_removes_the_codex_credential_and_never_touches_openclaw() {
    let sandbox = Sandbox::new();
    let codex = sandbox.with_codex_auth();
    let openclaw = sandbox
        .home()
        .join(".openclaw/agents/main/agent/auth-profiles.json");
    let profiles = json!({"version": 1, "profiles": {
        "openai-codex:me": openclaw_profile(&jwt(now_secs() + 3600), "r", "acct-oc", 4_000_000_000_000)}});

    let run = sandbox.run(&["--logout"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stdout, format!("Removed {}\n", codex.display()));
    assert!(!codex.exists());
    let again = sandbox.run(&["--logout"]);
    assert_eq!(again.code, 0, "{again}");
    assert!(again.stdout.contains("Not signed in"), "{again}");

    write_json(&openclaw, &profiles);
    let before = std::fs::read_to_string(&openclaw).unwrap();
    let refused = sandbox.run(&["--logout"]);
    assert_eq!(refused.code, 0, "{refused}");
    assert!(
        refused.stdout.contains("never changes OpenClaw stores"),
        "{refused}"
    );
    assert!(
        refused
            .stdout
            .contains("`openclaw models auth logout openai-codex:me`"),
        "{refused}"
    );
    assert_eq!(std::fs::read_to_string(&openclaw).unwrap(), before);
    let pinned = sandbox.run(&["--logout", "--auth", &openclaw.display().to_string()]);
    assert_eq!(pinned.code, 0, "{pinned}");
    assert_eq!(std::fs::read_to_string(&openclaw).unwrap(), before);

    // A Codex credential in front of OpenClaw's: removed, and the user learns what is next.
    let codex = sandbox.with_codex_auth();
    sandbox.run(&["--logout"]);
    let mut env_sandbox = Sandbox::new();
    let front = env_sandbox.path("front/auth.json");
    write_json(&front, &codex_auth(3600));
    env_sandbox.env("CODEX_IMAGEN_AUTH_JSON", &front);
    let behind = env_sandbox
        .home()
        .join(".openclaw/agents/main/agent/auth-profiles.json");
    write_json(&behind, &profiles);
    let run = env_sandbox.run(&["--logout"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .starts_with(&format!("Removed {}\n", front.display())),
        "{run}"
    );
    assert!(
        run.stdout.contains("will now use OpenClaw's credential"),
        "{run}"
    );
    assert!(behind.exists() && !front.exists());
    let _ = codex;
}

#[test]
fn sign_in_flags_are_checked() {
    let sandbox = Sandbox::new();
    for (args, message) in [
        (vec!["--device-auth"], "--device-auth needs --login"),
        (vec!["--force", "x"], "--force needs --login"),
        (
            vec!["--login", "--logout"],
            "--login and --logout cannot be used together",
        ),
        (
            vec!["--login", "a", "prompt"],
            "--login cannot be used with a prompt",
        ),
        (
            vec!["--logout", "--smoke"],
            "--logout cannot be used with --smoke",
        ),
        (
            vec!["--login", "--callback-port", "70000"],
            "--callback-port must be an integer from 0 to 65535",
        ),
        (
            vec!["--login", "--issuer", "ftp://x"],
            "--issuer must be an http(s) URL",
        ),
    ] {
        let run = sandbox.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {run}");
        assert!(run.stderr.contains(message), "{args:?}: {run}");
    }
}

#[test]
fn a_callback_port_other_than_1455_is_warned_about() {
    let issuer = Issuer::start(json!({}));
    let sandbox = Sandbox::new();
    let run = sandbox.run(&login_args(&issuer.url(), &["--timeout", "0.3", "--quiet"]));
    assert_eq!(run.code, 124, "{run}");
    assert!(
        run.stderr
            .contains("the real issuer only accepts the callback on port 1455"),
        "{run}"
    );
    let _: Value = Value::Null;
}
