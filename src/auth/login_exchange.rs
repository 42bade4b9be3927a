//! Signing in, the protocol half (issue #21): PKCE and `state`, the authorize URL, the
//! authorization-code exchange at `{issuer}/oauth/token`, and what the id token says about the
//! account. Byte for byte what Codex sends (`codex-rs/login/src/server.rs`, `pkce.rs`), because
//! the issuer only knows Codex's client: same client id, scopes, parameter order, redirect URI.
//!
//! Nothing here listens, prints or writes a file: the callback server and the device flow are
//! the `login/` front-end's, saving the credential is [`super::login_store`]'s.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::oauth::CODEX_OAUTH_CLIENT_ID;
use super::token::jwt_payload;
use crate::foundation::error::{AuthErrorKind, Error, Result};

/// Codex's `DEFAULT_ISSUER`.
pub(crate) const DEFAULT_ISSUER: &str = "https://auth.openai.com";
/// The callback port the issuer's redirect allow-list accepts (Codex's `DEFAULT_PORT`).
pub(crate) const DEFAULT_CALLBACK_PORT: u16 = 1455;
/// Codex's `FALLBACK_PORT`, also on the allow-list: used when 1455 stays busy.
pub(crate) const FALLBACK_CALLBACK_PORT: u16 = 1457;
const SCOPES: &str =
    "openid profile email offline_access api.connectors.read api.connectors.invoke";
const ORIGINATOR: &str = "codex_cli_rs";
/// How long the code exchange may take.
const EXCHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A PKCE pair: the verifier we keep, the S256 challenge we send.
#[derive(Debug, Clone)]
pub(crate) struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

fn random_b64(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .map_err(|_| Error::Io("Cannot read random bytes for the sign-in".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// 64 random bytes as base64url (86 characters), and its challenge: Codex's `generate_pkce`.
pub(crate) fn pkce() -> Result<Pkce> {
    let verifier = random_b64(64)?;
    Ok(Pkce {
        challenge: challenge_for(&verifier),
        verifier,
    })
}

/// `base64url(SHA-256(verifier))` without padding (43 characters).
pub(crate) fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// 32 random bytes as base64url (43 characters).
pub(crate) fn random_state() -> Result<String> {
    random_b64(32)
}

/// `urlencoding::encode`: everything but `A-Z a-z 0-9 - _ . ~` is percent-escaped.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The browser flow's redirect URI: `localhost`, although the server listens on 127.0.0.1 only.
pub(crate) fn redirect_uri(port: u16) -> String {
    format!("http://localhost:{port}/auth/callback")
}

/// Codex's `build_authorize_url`: the issuer as given, the parameters in Codex's order.
pub(crate) fn authorize_url(issuer: &str, port: u16, challenge: &str, state: &str) -> String {
    let redirect = redirect_uri(port);
    let pairs = [
        ("response_type", "code"),
        ("client_id", CODEX_OAUTH_CLIENT_ID),
        ("redirect_uri", redirect.as_str()),
        ("scope", SCOPES),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("id_token_add_organizations", "true"),
        ("codex_cli_simplified_flow", "true"),
        ("state", state),
        ("originator", ORIGINATOR),
    ];
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{issuer}/oauth/authorize?{}", query.join("&"))
}

/// The three tokens a sign-in yields. Never printed.
#[derive(Clone)]
pub(crate) struct Tokens {
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(redacted)")
    }
}

/// Who signed in, from the id token's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Account {
    pub email: Option<String>,
    pub plan: Option<String>,
    pub account_id: Option<String>,
}

impl Account {
    /// `me@example.com (account acct-1)`, or whatever part is known.
    pub(crate) fn describe(&self) -> String {
        match (&self.email, &self.account_id) {
            (Some(email), Some(id)) => format!("{email} (account {id})"),
            (Some(email), None) => email.clone(),
            (None, Some(id)) => format!("account {id}"),
            (None, None) => "an unknown account".to_string(),
        }
    }
}

/// Codex's id-token parsing: `email` at the top (else in the profile claim), the plan and the
/// ChatGPT account id in the `https://api.openai.com/auth` claim.
pub(crate) fn account_of(id_token: &str) -> Account {
    let Some(claims) = jwt_payload(id_token) else {
        return Account::default();
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let auth = claims.get("https://api.openai.com/auth");
    Account {
        email: text(claims.get("email")).or_else(|| {
            text(
                claims
                    .get("https://api.openai.com/profile")
                    .and_then(|p| p.get("email")),
            )
        }),
        plan: text(auth.and_then(|a| a.get("chatgpt_plan_type"))),
        account_id: text(auth.and_then(|a| a.get("chatgpt_account_id"))),
    }
}

fn sign_in_error(message: String) -> Error {
    Error::auth(AuthErrorKind::SignInFailed, message)
}

/// Codex's `exchange_code_for_tokens`: a form POST in Codex's field order. A refusal names the
/// issuer's own words (`error_description`, `error.message`, `error`, `error.code`, the body).
pub(crate) async fn exchange_code(
    client: &reqwest::Client,
    issuer: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Tokens> {
    let url = format!("{}/oauth/token", issuer.trim_end_matches('/'));
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={}",
        encode(code),
        encode(redirect_uri),
        encode(CODEX_OAUTH_CLIENT_ID),
        encode(verifier)
    );
    let response = client
        .post(&url)
        .timeout(EXCHANGE_TIMEOUT)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            sign_in_error(format!(
                "The token request to {url} failed: {}",
                crate::foundation::http::transport_message(&e)
            ))
        })?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(sign_in_error(format!(
            "The issuer refused the sign-in: token endpoint returned status {status}: {}",
            error_detail(&text)
        )));
    }
    let parsed: Value = serde_json::from_str(&text).map_err(|_| {
        sign_in_error(format!(
            "The token endpoint {url} answered {status} with a body that is not JSON"
        ))
    })?;
    let field = |name: &str| {
        parsed
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| sign_in_error(format!("The token endpoint's answer has no {name}")))
    };
    Ok(Tokens {
        id_token: field("id_token")?,
        access_token: field("access_token")?,
        refresh_token: field("refresh_token")?,
    })
}

/// Codex's error detail: `error_description`, `error.message`, `error` (a string), `error.code`,
/// the raw body, else "unknown error".
pub(crate) fn error_detail(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let at = |path: &[&str]| {
        let mut v = parsed.as_ref()?;
        for key in path {
            v = v.get(*key)?;
        }
        v.as_str()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    at(&["error_description"])
        .or_else(|| at(&["error", "message"]))
        .or_else(|| at(&["error"]))
        .or_else(|| at(&["error", "code"]))
        .or_else(|| Some(body.trim().to_string()).filter(|b| !b.is_empty()))
        .unwrap_or_else(|| "unknown error".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_and_state_have_codexs_lengths() {
        let pair = pkce().unwrap();
        assert_eq!(pair.verifier.len(), 86);
        assert_eq!(pair.challenge.len(), 43);
        assert_eq!(pair.challenge, challenge_for(&pair.verifier));
        assert_eq!(random_state().unwrap().len(), 43);
        // RFC 7636 appendix B.
        assert_eq!(
            challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_authorize_url_is_codexs() {
        let url = authorize_url("https://auth.openai.com", 1455, "CH", "ST");
        assert_eq!(
            url,
            "https://auth.openai.com/oauth/authorize?response_type=code\
             &client_id=app_EMoamEEZ73f0CkXaXp7hrann\
             &redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fauth%2Fcallback\
             &scope=openid%20profile%20email%20offline_access%20api.connectors.read%20api.connectors.invoke\
             &code_challenge=CH&code_challenge_method=S256&id_token_add_organizations=true\
             &codex_cli_simplified_flow=true&state=ST&originator=codex_cli_rs"
        );
    }

    #[test]
    fn error_details_follow_codexs_order() {
        assert_eq!(
            error_detail(r#"{"error":"invalid_grant","error_description":"bad code"}"#),
            "bad code"
        );
        assert_eq!(error_detail(r#"{"error":{"message":"m","code":"c"}}"#), "m");
        assert_eq!(error_detail(r#"{"error":{"code":"c"}}"#), "c");
        assert_eq!(
            error_detail(r#"{"error":"invalid_grant"}"#),
            "invalid_grant"
        );
        assert_eq!(error_detail(" plain "), "plain");
        assert_eq!(error_detail(""), "unknown error");
    }

    #[test]
    fn the_account_comes_from_the_id_token() {
        let claims = serde_json::json!({"https://api.openai.com/profile": {"email": "p@x"},
            "https://api.openai.com/auth": {"chatgpt_plan_type": "plus", "chatgpt_account_id": "a1"}});
        let token = format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let account = account_of(&token);
        assert_eq!(account.email.as_deref(), Some("p@x"));
        assert_eq!(account.plan.as_deref(), Some("plus"));
        assert_eq!(account.account_id.as_deref(), Some("a1"));
        assert_eq!(account.describe(), "p@x (account a1)");
        assert_eq!(account_of("garbage"), Account::default());
    }
}
