//! The device-code sign-in, for machines without a browser (SSH, containers), as Codex runs it
//! (`codex-rs/login/src/device_code_auth.rs`): ask `{issuer}/api/accounts/deviceauth/usercode`
//! for a code, show the verification URL and the code, poll
//! `{issuer}/api/accounts/deviceauth/token` at the server's interval until the user has signed
//! in, then exchange the authorization code the poll returns, with the verifier it returns, at
//! `{issuer}/oauth/token` (redirect URI `{issuer}/deviceauth/callback`).
//!
//! Details Codex's source settles: `interval` arrives as a string of seconds (we also take a
//! number); a poll answered 403 or 404 is still pending; a 404 on the code request means device
//! sign-in is turned off for this account or server, which is said plainly.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::auth::login_exchange::{self, error_detail, Tokens};
use crate::auth::oauth::CODEX_OAUTH_CLIENT_ID;
use crate::foundation::error::{AuthErrorKind, Error, Result};
use crate::frontend::config::SignInConfig;
use crate::frontend::report;

/// Codex gives up on a device code after this long (the code expires).
const CODE_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Each request to the device endpoints.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The least time between two polls, whatever interval the server names.
const MIN_POLL: Duration = Duration::from_millis(100);

fn failed(message: String) -> Error {
    Error::auth(AuthErrorKind::SignInFailed, message)
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> Result<(u16, String)> {
    let response = client
        .post(url)
        .timeout(REQUEST_TIMEOUT)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| {
            failed(format!(
                "The request to {url} failed: {}",
                crate::foundation::http::transport_message(&e)
            ))
        })?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

/// The user code the issuer handed out.
struct UserCode {
    device_auth_id: String,
    user_code: String,
    interval: Duration,
}

fn parse_user_code(body: &str) -> Option<UserCode> {
    let value: Value = serde_json::from_str(body).ok()?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    let interval = match value.get("interval") {
        Some(Value::String(s)) => s.trim().parse::<u64>().ok()?,
        Some(Value::Number(n)) => n.as_u64()?,
        None | Some(Value::Null) => 0,
        Some(_) => return None,
    };
    Some(UserCode {
        device_auth_id: text("device_auth_id")?,
        user_code: text("user_code").or_else(|| text("usercode"))?,
        interval: Duration::from_secs(interval),
    })
}

/// Run the device-code sign-in to the tokens.
pub(crate) async fn sign_in(config: &SignInConfig, http: &reqwest::Client) -> Result<Tokens> {
    let base = config.issuer.trim_end_matches('/');
    let api = format!("{base}/api/accounts");
    let usercode_url = format!("{api}/deviceauth/usercode");
    let (status, body) = post_json(
        http,
        &usercode_url,
        &json!({ "client_id": CODEX_OAUTH_CLIENT_ID }),
    )
    .await?;
    if status == 404 {
        return Err(failed(format!(
            "Device code sign-in is not enabled for this account or server ({usercode_url} \
             answered 404). Enable device code sign-in for your ChatGPT account (or ask your \
             workspace admin), or sign in with the browser: codex-imagen --login"
        )));
    }
    if !(200..300).contains(&status) {
        return Err(failed(format!(
            "The device code request failed: {usercode_url} answered HTTP {status}: {}",
            error_detail(&body)
        )));
    }
    let code = parse_user_code(&body).ok_or_else(|| {
        failed(format!(
            "The device code answer from {usercode_url} is not what Codex's issuer sends \
             (device_auth_id, user_code, interval)"
        ))
    })?;

    report::eprint_line(&format!(
        "codex-imagen: sign in with ChatGPT using a device code:\n\n  1. Open this link in a \
         browser (on any device) and sign in:\n\n     {base}/codex/device\n\n  2. Enter this \
         one-time code (it expires in 15 minutes):\n\n     {}\n\nDevice codes are a common \
         phishing target. Never share this code.\n",
        code.user_code
    ));
    report::eprint_line(&format!(
        "codex-imagen: waiting for the sign-in (up to {} s; Ctrl-C stops)",
        config
            .timeout_ms
            .div_ceil(1000)
            .min(CODE_LIFETIME.as_secs())
    ));

    let grant = poll(http, &api, &code).await?;
    login_exchange::exchange_code(
        http,
        base,
        &grant.authorization_code,
        &format!("{base}/deviceauth/callback"),
        &grant.code_verifier,
    )
    .await
    .map_err(|err| match err {
        Error::Auth { kind, message } => Error::Auth {
            kind,
            message: format!("Device code exchange failed: {message}"),
        },
        other => other,
    })
}

/// What a finished poll hands over.
struct Grant {
    authorization_code: String,
    code_verifier: String,
}

async fn poll(http: &reqwest::Client, api: &str, code: &UserCode) -> Result<Grant> {
    let url = format!("{api}/deviceauth/token");
    let body = json!({ "device_auth_id": code.device_auth_id, "user_code": code.user_code });
    let deadline = Instant::now() + CODE_LIFETIME;
    loop {
        let (status, text) = post_json(http, &url, &body).await?;
        if (200..300).contains(&status) {
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let field = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
            return match (field("authorization_code"), field("code_verifier")) {
                (Some(authorization_code), Some(code_verifier)) => Ok(Grant {
                    authorization_code,
                    code_verifier,
                }),
                _ => Err(failed(format!(
                    "The device sign-in answer from {url} has no authorization_code and \
                     code_verifier"
                ))),
            };
        }
        if status != 403 && status != 404 {
            return Err(failed(format!(
                "Device sign-in failed: {url} answered HTTP {status}: {}",
                error_detail(&text)
            )));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout(
                "The device code expired (15 minutes) before the sign-in finished; run \
                 codex-imagen --login --device-auth again"
                    .into(),
            ));
        }
        tokio::time::sleep(code.interval.max(MIN_POLL).min(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_a_string_of_seconds() {
        let code =
            parse_user_code(r#"{"device_auth_id":"d","usercode":"U-1","interval":" 5 "}"#).unwrap();
        assert_eq!(code.user_code, "U-1");
        assert_eq!(code.interval, Duration::from_secs(5));
        let code = parse_user_code(r#"{"device_auth_id":"d","user_code":"U"}"#).unwrap();
        assert_eq!(code.interval, Duration::ZERO);
        assert!(
            parse_user_code(r#"{"device_auth_id":"d","user_code":"U","interval":"x"}"#).is_none()
        );
        assert!(parse_user_code(r#"{"user_code":"U"}"#).is_none());
    }
}
