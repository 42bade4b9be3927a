//! Reading an auth store (SPEC §4): the three JSON formats, their field aliases, and the
//! credentials they yield. The raw document is kept so a refresh can merge into it without
//! losing a field or changing the key order.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::select::{
    profile_access, profile_account_id, profile_refresh, profile_str, select_profile,
    SelectOptions, CODEX_PROVIDER,
};
use super::token::{jwt_exp, jwt_payload, normalize_expires_ms, now_ms};
use crate::foundation::error::{AuthErrorKind, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFormat {
    CodexAuthJson,
    OpenClawAuthProfiles,
    OpenClawOAuthJson,
    OpenClawLegacyAuthJson,
    /// OpenClaw 2026.6.5+: the `profiles` document in `<agent dir>/openclaw-agent.sqlite`
    /// (see `auth::sqlite`).
    OpenClawAgentSqlite,
    /// OpenClaw 2026.8+: the shared `profiles` document in `<state>/state/openclaw.sqlite`.
    OpenClawStateSqlite,
    /// Codex's `auth.json` document kept in the OS keyring (`cli_auth_credentials_store`
    /// `keyring` or `auto`; see `auth::keyring`).
    CodexKeyring,
}

impl AuthFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFormat::CodexAuthJson => "codex-auth-json",
            AuthFormat::OpenClawAuthProfiles => "openclaw-auth-profiles",
            AuthFormat::OpenClawOAuthJson => "openclaw-oauth-json",
            AuthFormat::OpenClawLegacyAuthJson => "openclaw-legacy-auth-json",
            AuthFormat::OpenClawAgentSqlite => "openclaw-agent-sqlite",
            AuthFormat::OpenClawStateSqlite => "openclaw-state-sqlite",
            AuthFormat::CodexKeyring => "codex-keyring",
        }
    }

    /// Stores that hold OpenClaw `profiles` (selected by id, refreshed under OpenClaw's locks).
    pub fn holds_profiles(self) -> bool {
        match self {
            AuthFormat::OpenClawAuthProfiles
            | AuthFormat::OpenClawAgentSqlite
            | AuthFormat::OpenClawStateSqlite => true,
            AuthFormat::CodexAuthJson
            | AuthFormat::CodexKeyring
            | AuthFormat::OpenClawOAuthJson
            | AuthFormat::OpenClawLegacyAuthJson => false,
        }
    }
}

/// Usable credentials read from one store.
#[derive(Debug, Clone)]
pub struct Auth {
    pub path: PathBuf,
    pub format: AuthFormat,
    pub auth_mode: Option<String>,
    /// The OpenClaw profile id, or `<provider>:default` for a provider map; none for Codex.
    pub profile_id: Option<String>,
    pub provider: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub account_id: String,
    pub email: Option<String>,
    pub last_refresh: Option<String>,
    /// From the `expires` field, else the JWT `exp`.
    pub expires_ms: Option<i64>,
    pub jwt_exp: Option<i64>,
}

impl Auth {
    /// Seconds until the access token expires: JWT `exp` first, else `expires` (SPEC §4).
    pub fn seconds_left(&self) -> Option<i64> {
        let now = now_ms();
        match (self.jwt_exp, self.expires_ms) {
            (Some(exp), _) => Some(exp - now / 1000),
            (None, Some(ms)) => Some((ms - now).div_euclid(1000)),
            (None, None) => None,
        }
    }

    /// [`Auth::seconds_left`] as reported to people and agents: an `expires` before the year 2000
    /// cannot be a real expiry (OpenClaw writes `expires: 1` beside a refresh fence), so it is
    /// unknown rather than a huge negative number. The JWT `exp` still wins when present.
    pub fn reported_seconds_left(&self) -> Option<i64> {
        const YEAR_2000_MS: i64 = 946_684_800_000;
        match (self.jwt_exp, self.expires_ms) {
            (None, Some(ms)) if ms < YEAR_2000_MS => None,
            _ => self.seconds_left(),
        }
    }

    /// True when any credential field differs (used to notice another process's refresh).
    pub fn credentials_differ(&self, other: &Auth) -> bool {
        self.access_token != other.access_token
            || self.refresh_token != other.refresh_token
            || self.expires_ms != other.expires_ms
            || self.last_refresh != other.last_refresh
    }
}

/// Read and parse a store file, naming it in every error. The keyring store's path reads the
/// keyring entry instead.
pub fn read_document(path: &Path) -> Result<Value> {
    if let Some(entry) = super::keyring::entry_of(path) {
        return entry.document();
    }
    let text = std::fs::read_to_string(path).map_err(|err| {
        Error::auth(
            AuthErrorKind::Unreadable,
            format!("Cannot read auth file {}: {err}", path.display()),
        )
    })?;
    serde_json::from_str(&text).map_err(|err| {
        Error::auth(
            AuthErrorKind::Invalid,
            format!("Invalid JSON in auth file {}: {err}", path.display()),
        )
    })
}

pub fn read_auth(path: &Path, options: &SelectOptions) -> Result<Auth> {
    let document = read_document(path)?;
    parse_auth(path, &document, options)
}

/// Which format a document is, and where its credential object lives.
pub(crate) enum Located<'a> {
    Codex,
    Profile { id: String, profile: &'a Value },
    ProviderMap { key: String, profile: &'a Value },
}

pub(crate) fn locate<'a>(
    path: &Path,
    document: &'a Value,
    options: &SelectOptions,
) -> Result<Located<'a>> {
    if document.get("tokens").is_some_and(Value::is_object) {
        return Ok(Located::Codex);
    }
    if let Some(profiles) = document.get("profiles").and_then(Value::as_object) {
        let id = select_profile(profiles, path, options)?;
        let profile = &profiles[id.as_str()];
        return Ok(Located::Profile { id, profile });
    }
    let requested = options
        .requested
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let key = requested
        .map(|r| r.split_once(':').map(|(p, _)| p).unwrap_or(r))
        .filter(|k| !k.is_empty())
        .unwrap_or(CODEX_PROVIDER)
        .to_string();
    match document.get(&key).filter(|v| v.is_object()) {
        Some(profile) => Ok(Located::ProviderMap { key, profile }),
        None => Err(Error::auth(
            AuthErrorKind::ProfileNotFound,
            format!("No {key} OAuth credential found in {}", path.display()),
        )),
    }
}

pub fn parse_auth(path: &Path, document: &Value, options: &SelectOptions) -> Result<Auth> {
    let (format, profile_id, provider, profile, auth_mode, last_refresh, id_token) =
        match locate(path, document, options)? {
            Located::Codex => {
                let tokens = &document["tokens"];
                (
                    match super::keyring::entry_of(path) {
                        Some(_) => AuthFormat::CodexKeyring,
                        None => AuthFormat::CodexAuthJson,
                    },
                    None,
                    CODEX_PROVIDER.to_string(),
                    codex_profile(tokens),
                    document
                        .get("auth_mode")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    document
                        .get("last_refresh")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    tokens.get("id_token").and_then(Value::as_str),
                )
            }
            Located::Profile { id, profile } => {
                let provider = profile
                    .get("provider")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| provider_of(&id));
                (
                    AuthFormat::OpenClawAuthProfiles,
                    Some(id),
                    provider,
                    profile.clone(),
                    None,
                    None,
                    profile_str(profile, &["idToken", "id_token"]),
                )
            }
            Located::ProviderMap { key, profile } => {
                let format = if path.file_name().is_some_and(|n| n == "oauth.json") {
                    AuthFormat::OpenClawOAuthJson
                } else {
                    AuthFormat::OpenClawLegacyAuthJson
                };
                (
                    format,
                    Some(format!("{key}:default")),
                    key,
                    profile.clone(),
                    None,
                    None,
                    profile_str(profile, &["idToken", "id_token"]),
                )
            }
        };

    let access_token = profile_access(&profile)
        .ok_or_else(|| {
            Error::auth(
                AuthErrorKind::NoAccessToken,
                format!("No access token found in {}", path.display()),
            )
        })?
        .to_string();
    let account_id = profile_account_id(&profile)
        .ok_or_else(|| {
            Error::auth(
                AuthErrorKind::NoAccountId,
                format!("No accountId found in {}", path.display()),
            )
        })?
        .to_string();
    let jwt_exp = jwt_exp(&access_token);
    let expires_ms = profile
        .get("expires")
        .and_then(normalize_expires_ms)
        .or(jwt_exp.map(|exp| exp * 1000));
    // Codex stores carry no email field; the id token names the signed-in account.
    let email = profile_str(&profile, &["email"])
        .map(str::to_string)
        .or_else(|| {
            id_token
                .and_then(jwt_payload)
                .and_then(|p| p.get("email").and_then(Value::as_str).map(str::to_string))
        });

    Ok(Auth {
        path: path.to_path_buf(),
        format,
        auth_mode,
        profile_id,
        provider,
        refresh_token: profile_refresh(&profile).map(str::to_string),
        access_token,
        account_id,
        email,
        last_refresh,
        expires_ms,
        jwt_exp,
    })
}

fn provider_of(profile_id: &str) -> String {
    match profile_id.split_once(':') {
        Some((provider, _)) => provider.to_string(),
        None => CODEX_PROVIDER.to_string(),
    }
}

/// A Codex `tokens` object seen through the profile field names.
fn codex_profile(tokens: &Value) -> Value {
    let mut profile = serde_json::Map::new();
    for (from, to) in [
        ("access_token", "access"),
        ("refresh_token", "refresh"),
        ("account_id", "accountId"),
    ] {
        if let Some(v) = tokens.get(from) {
            profile.insert(to.to_string(), v.clone());
        }
    }
    Value::Object(profile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::fake_jwt;
    use serde_json::json;

    fn parse(name: &str, doc: Value) -> Result<Auth> {
        let dir = tempfile::tempdir().unwrap();
        parse_auth(&dir.path().join(name), &doc, &SelectOptions::default())
    }

    #[test]
    fn codex_store_reads_tokens_and_top_level_fields() {
        let exp = now_ms() / 1000 + 1000;
        let auth = parse(
            "auth.json",
            json!({
                "auth_mode": "chatgpt", "last_refresh": "2026-01-01T00:00:00Z",
                "tokens": {"access_token": fake_jwt(exp), "refresh_token": "r", "account_id": "acc"}
            }),
        )
        .unwrap();
        assert_eq!(auth.format, AuthFormat::CodexAuthJson);
        assert_eq!(auth.account_id, "acc");
        assert_eq!(auth.refresh_token.as_deref(), Some("r"));
        assert_eq!(auth.provider, "openai-codex");
        assert!((998..=1000).contains(&auth.seconds_left().unwrap()));
    }

    #[test]
    fn provider_map_uses_aliases_and_reports_default_profile() {
        let auth = parse("oauth.json", json!({
            "openai-codex": {"access_token": "opaque", "refresh_token": "r", "account": "a", "expires": 4_000_000_000_i64}
        })).unwrap();
        assert_eq!(auth.format, AuthFormat::OpenClawOAuthJson);
        assert_eq!(auth.profile_id.as_deref(), Some("openai-codex:default"));
        assert_eq!(auth.expires_ms, Some(4_000_000_000_000));
        let legacy = parse(
            "auth.json",
            json!({"openai-codex": {"token": "t", "accountId": "a"}}),
        )
        .unwrap();
        assert_eq!(legacy.format, AuthFormat::OpenClawLegacyAuthJson);
        assert_eq!(legacy.seconds_left(), None);
    }

    #[test]
    fn missing_pieces_name_the_file() {
        let err = parse("auth.json", json!({"tokens": {"account_id": "a"}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("No access token found in") && err.ends_with("auth.json"),
            "{err}"
        );
        let err = parse("auth.json", json!({"tokens": {"access_token": "t"}}))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("No accountId found in"), "{err}");
        let err = parse("x.json", json!({"other": {}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("No openai-codex OAuth credential found in"),
            "{err}"
        );
    }
}
