//! OAuth refresh (SPEC §6–8): when a token needs refreshing, the refresh request, every recovery
//! path, and the merge back into the store without losing a field.
//!
//! The order of operations is what keeps a single-use refresh token from being burnt twice:
//! take the per-profile refresh lock (OpenClaw's, so its agents wait for us and we for them),
//! re-read the store under its own lock, and only if it is still stale send the request. The
//! store lock is not held across the network call: OpenClaw takes over a store lock older than
//! 30 s, and everything it writes meanwhile is re-read before our merge.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::lock::{self, FileLock, LockOptions, REFRESH_LOCK, STORE_LOCK};
use super::store::{read_document, Auth, AuthFormat};
use super::token::{iso_now, jwt_exp, normalize_expires_ms, now_ms};
use super::{AuthContext, RefreshOutcome};
use crate::error::{Error, Result};
use crate::progress::Progress;

pub const CODEX_OAUTH_CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
const REFRESH_SKEW_SECONDS: i64 = 300;
const REFRESH_CALL_TIMEOUT_MS: u64 = 120_000;
const EIGHT_DAYS_MS: i64 = 8 * 24 * 60 * 60 * 1000;

pub const REASON_FORCED: &str = "forced refresh";
pub const REASON_REFRESH_ONLY: &str = "refresh-only";
pub const REASON_BACKEND_401: &str = "401 from Codex backend";

/// Reasons the user or the backend demanded: a still-valid token is no excuse to skip them.
fn is_demanded(reason: &str) -> bool {
    matches!(
        reason,
        REASON_FORCED | REASON_REFRESH_ONLY | REASON_BACKEND_401
    )
}

/// Why `auth` needs a refresh now, or `None` when it is fresh (SPEC §6).
pub fn stale_reason(auth: &Auth) -> Option<String> {
    if let Some(left) = auth.seconds_left() {
        return if left <= 0 {
            Some("access token expired".to_string())
        } else if left <= REFRESH_SKEW_SECONDS {
            Some(format!("access token expires soon ({left}s)"))
        } else {
            None
        };
    }
    let last = auth.last_refresh.as_deref()?;
    let at = chrono::DateTime::parse_from_rfc3339(last).ok()?;
    (at.timestamp_millis() < now_ms() - EIGHT_DAYS_MS)
        .then(|| "last_refresh is older than 8 days".to_string())
}

/// Same account (SPEC §8): account ids when both have one, else emails, else only if the first
/// has neither.
pub fn identity_compatible(first: &Auth, other: &Auth) -> bool {
    let norm = |e: &Option<String>| e.as_deref().map(|s| s.trim().to_lowercase());
    if !first.account_id.is_empty() && !other.account_id.is_empty() {
        return first.account_id == other.account_id;
    }
    if let (Some(a), Some(b)) = (norm(&first.email), norm(&other.email)) {
        return a == b;
    }
    first.account_id.is_empty() && first.email.is_none()
}

/// `<state>/locks/oauth-refresh/sha256-<hex of provider NUL profile>`: OpenClaw's path.
pub fn refresh_lock_file(state_dir: &Path, provider: &str, profile_id: &str) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(provider.as_bytes());
    hasher.update([0u8]);
    hasher.update(profile_id.as_bytes());
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    state_dir
        .join("locks")
        .join("oauth-refresh")
        .join(format!("sha256-{hex}"))
}

/// Refreshes credentials for one run.
pub struct Refresher<'a> {
    pub ctx: &'a AuthContext,
    pub refresh_url: &'a str,
    pub enabled: bool,
    pub progress: Progress,
}

type Refreshed = (Auth, RefreshOutcome);

fn refreshed(auth: Auth) -> Refreshed {
    (
        auth,
        RefreshOutcome {
            refreshed: true,
            skipped: None,
        },
    )
}

fn skipped(auth: Auth, why: &str) -> Refreshed {
    (
        auth,
        RefreshOutcome {
            refreshed: false,
            skipped: Some(why.to_string()),
        },
    )
}

async fn acquire(file: &Path, options: LockOptions) -> Result<FileLock> {
    lock::acquire(file, options)
        .await
        .map_err(|e| Error::Refresh {
            message: e.to_string(),
        })
}

impl Refresher<'_> {
    fn reread(&self, auth: &Auth) -> Result<Auth> {
        let mut options = self.ctx.select_options(&auth.path);
        options.requested = auth.profile_id.clone();
        if auth.format != AuthFormat::OpenClawAuthProfiles {
            // A provider map's "profile id" is `<key>:default`; its key selects the entry.
            options.requested = Some(auth.provider.clone());
        }
        super::store::read_auth(&auth.path, &options)
    }

    /// Refresh `auth` for `reason`, under the locks its store format calls for.
    pub async fn refresh(&self, auth: &Auth, reason: &str) -> Result<Refreshed> {
        if !self.enabled {
            return Err(Error::Refresh {
                message: format!(
                    "Codex OAuth refresh is disabled, but refresh is required: {reason}"
                ),
            });
        }
        if auth.refresh_token.is_none() {
            return Err(Error::Refresh {
                message: format!("No refresh token found in {}", auth.path.display()),
            });
        }
        self.progress.verbose(&format!("refresh: {reason}"));
        self.progress
            .verbose(&format!("refresh_endpoint: {}", self.refresh_url));
        match (auth.format, auth.profile_id.as_deref()) {
            (AuthFormat::OpenClawAuthProfiles, Some(profile_id)) => {
                self.refresh_openclaw(auth, profile_id, reason).await
            }
            _ => self.refresh_plain(auth, reason).await,
        }
    }

    /// Codex and provider-map stores: nobody else honours a lock on them, but our own concurrent
    /// runs do, so the store lock is held across the whole refresh.
    async fn refresh_plain(&self, auth: &Auth, reason: &str) -> Result<Refreshed> {
        let _store = acquire(&auth.path, STORE_LOCK).await?;
        let current = self.reread(auth)?;
        if let Some(why) = skip_after_reload(auth, &current, reason) {
            self.progress.verbose(&format!("refresh skipped: {why}"));
            return Ok(skipped(current, why));
        }
        self.request_and_merge(&current, reason, true).await
    }

    async fn refresh_openclaw(
        &self,
        auth: &Auth,
        profile_id: &str,
        reason: &str,
    ) -> Result<Refreshed> {
        let lock_file = refresh_lock_file(&self.ctx.dirs.state_dir, &auth.provider, profile_id);
        self.progress.verbose(&format!(
            "openclaw_refresh_lock: {}",
            lock::lock_path_for(&lock_file).display()
        ));
        self.progress.verbose(&format!(
            "openclaw_auth_store_lock: {}",
            auth.path.display()
        ));
        let _refresh_lock = acquire(&lock_file, REFRESH_LOCK).await?;

        let current = {
            let _store = acquire(&auth.path, STORE_LOCK).await?;
            let current = self.reread(auth)?;
            if let Some(why) = skip_after_reload(auth, &current, reason) {
                self.progress.verbose(&format!("refresh skipped: {why}"));
                return Ok(skipped(current, why));
            }
            if let Some(inherited) = self.inherit_from_main(&current)? {
                return Ok(inherited);
            }
            current
        };
        match self.request_and_merge(&current, reason, true).await {
            Ok(done) => Ok(done),
            Err(err) => {
                let _store = acquire(&auth.path, STORE_LOCK).await?;
                match self.inherit_from_main(&current) {
                    Ok(Some(inherited)) => Ok(inherited),
                    _ => Err(err),
                }
            }
        }
    }

    /// SPEC §8 step 2: a per-agent store may copy a fresh, matching profile from the main agent's
    /// store instead of spending the shared refresh token. Call with this store's lock held.
    fn inherit_from_main(&self, current: &Auth) -> Result<Option<Refreshed>> {
        let main = self.ctx.dirs.main_auth_profiles();
        let Some(profile_id) = current.profile_id.as_deref() else {
            return Ok(None);
        };
        if same_file(&current.path, &main) || !crate::paths::is_file(&main) {
            return Ok(None);
        }
        let mut options = self.ctx.select_options(&main);
        options.requested = Some(profile_id.to_string());
        let Ok(main_auth) = super::store::read_auth(&main, &options) else {
            return Ok(None);
        };
        if main_auth.provider != current.provider
            || !identity_compatible(current, &main_auth)
            || stale_reason(&main_auth).is_some()
            || !main_auth.credentials_differ(current)
        {
            return Ok(None);
        }
        let main_doc = read_document(&main)?;
        let Some(profile) = main_doc
            .get("profiles")
            .and_then(|p| p.get(profile_id))
            .cloned()
        else {
            return Ok(None);
        };
        let mut doc = read_document(&current.path)?;
        match doc.get_mut("profiles").and_then(Value::as_object_mut) {
            Some(profiles) => {
                profiles.insert(profile_id.to_string(), profile);
            }
            None => return Ok(None),
        }
        write_store_atomic(&current.path, &doc)?;
        self.progress
            .verbose("refresh skipped: inherited fresh OpenClaw main auth");
        Ok(Some(skipped(
            self.reread(current)?,
            "inherited fresh OpenClaw main auth",
        )))
    }

    /// SPEC §7: the request, the merge on success, and every recovery path on failure.
    async fn request_and_merge(
        &self,
        auth: &Auth,
        reason: &str,
        may_retry_rotated: bool,
    ) -> Result<Refreshed> {
        let refresh_token = auth.refresh_token.clone().unwrap_or_default();
        let (status, body) = self.post(&refresh_token).await?;

        if (200..300).contains(&status) {
            let response: Value = serde_json::from_str(&body).map_err(|_| Error::Refresh {
                message: self.failure_message(
                    auth,
                    &format!("Refresh request failed: HTTP {status}: response is not JSON"),
                ),
            })?;
            let _store = acquire(&auth.path, STORE_LOCK).await?;
            let current = self.reread(auth)?;
            if current.refresh_token != auth.refresh_token {
                // Another process refreshed first; its tokens are the live ones.
                self.progress
                    .verbose("refresh skipped: auth changed before persist");
                return Ok(skipped(current, "auth changed"));
            }
            let mut doc = read_document(&auth.path)?;
            merge_response(&mut doc, &current, &response)?;
            write_store_atomic(&auth.path, &doc)?;
            return Ok(refreshed(self.reread(&current)?));
        }

        let current = self.reread(auth).ok();
        let reused = is_reuse_error(status, &body);
        if let Some(current) = &current {
            if auth.credentials_differ(current) && stale_reason(current).is_none() {
                self.progress
                    .verbose("refresh skipped: auth changed while refresh was in progress");
                return Ok(skipped(current.clone(), "auth changed"));
            }
            let rotated =
                current.refresh_token.is_some() && current.refresh_token != auth.refresh_token;
            if reused && rotated && may_retry_rotated {
                self.progress
                    .verbose("refresh retry: refresh token changed after refresh_token_reused");
                return Box::pin(self.request_and_merge(
                    current,
                    "refresh_token_reused with rotated refresh token",
                    false,
                ))
                .await;
            }
        }
        if reused && !is_demanded(reason) {
            let fallback = current.unwrap_or_else(|| auth.clone());
            if fallback.seconds_left().is_some_and(|left| left > 0) {
                self.progress.verbose(
                    "refresh skipped: refresh_token_reused but access token is still usable",
                );
                return Ok(skipped(
                    fallback,
                    "refresh_token_reused; access token still valid",
                ));
            }
        }
        Err(Error::Refresh {
            message: self.failure_message(auth, &refresh_failure_text(status, &body)),
        })
    }

    async fn post(&self, refresh_token: &str) -> Result<(u16, String)> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(REFRESH_CALL_TIMEOUT_MS))
            .build()
            .map_err(|e| Error::Refresh {
                message: format!("Cannot create the HTTP client: {e}"),
            })?;
        let body = json!({
            "client_id": CODEX_OAUTH_CLIENT_ID,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        });
        let sent = client
            .post(self.refresh_url)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("originator", "codex_cli_rs")
            .header("user-agent", crate::backend::request::user_agent())
            .body(body.to_string())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(Error::Refresh {
                    message: format!("OAuth refresh exceeded {REFRESH_CALL_TIMEOUT_MS}ms."),
                })
            }
            Err(e) => {
                return Err(Error::Refresh {
                    message: format!(
                        "OAuth refresh request to {} could not be sent: {}",
                        self.refresh_url,
                        crate::backend::transport_message(&e)
                    ),
                })
            }
        };
        let status = response.status().as_u16();
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) if e.is_timeout() => {
                return Err(Error::Refresh {
                    message: format!("OAuth refresh exceeded {REFRESH_CALL_TIMEOUT_MS}ms."),
                })
            }
            Err(_) => String::new(),
        };
        Ok((status, text))
    }

    /// The SPEC text, then which store and profile failed and how to fix it (seed 002).
    fn failure_message(&self, auth: &Auth, text: &str) -> String {
        let profile = auth.profile_id.as_deref().unwrap_or("(none)");
        let fix = if text.contains("Sign in again") {
            match auth.format {
                AuthFormat::CodexAuthJson => "fix: run `codex login`, then try again".to_string(),
                _ => format!(
                    "fix: run `openclaw models auth login --provider {}`, then try again",
                    auth.provider
                ),
            }
        } else {
            format!(
                "fix: try again later with `codex-imagen --refresh-only --auth {}`",
                auth.path.display()
            )
        };
        format!(
            "{text}\nauth store: {} (profile {profile})\n{fix}",
            auth.path.display()
        )
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// SPEC §8 step 1: the store changed under us and is fresh, or is fresh and nobody demanded more.
fn skip_after_reload(original: &Auth, current: &Auth, reason: &str) -> Option<&'static str> {
    let fresh = stale_reason(current).is_none();
    if fresh && original.credentials_differ(current) {
        return Some("auth changed");
    }
    if fresh && !is_demanded(reason) {
        return Some("already fresh");
    }
    None
}

/// `error` when a string, else `error.code`, else `code`.
fn error_code(body: &str) -> Option<String> {
    let parsed: Value = serde_json::from_str(body).ok()?;
    if let Some(s) = parsed.get("error").and_then(Value::as_str) {
        return Some(s.to_string());
    }
    parsed
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .or_else(|| parsed.get("code").and_then(Value::as_str))
        .map(str::to_string)
}

fn is_reuse_error(status: u16, body: &str) -> bool {
    if status != 401 {
        return false;
    }
    if error_code(body).as_deref() == Some("refresh_token_reused") {
        return true;
    }
    let lower = body.to_lowercase();
    lower.contains("refresh_token_reused")
        || lower.contains("refresh token has already been used")
        || lower.contains("already been used to generate a new access token")
}

fn refresh_failure_text(status: u16, body: &str) -> String {
    const SIGN_IN: &str = "Sign in again with Codex or OpenClaw OAuth.";
    if status == 401 {
        return match error_code(body).as_deref() {
            Some("refresh_token_expired") => format!("Refresh token expired. {SIGN_IN}"),
            Some("refresh_token_reused") => format!("Refresh token was already used. {SIGN_IN}"),
            Some("refresh_token_invalidated") => format!("Refresh token was revoked. {SIGN_IN}"),
            _ if is_reuse_error(status, body) => {
                format!("Refresh token was already used. {SIGN_IN}")
            }
            _ => format!("Refresh token was rejected. {SIGN_IN}"),
        };
    }
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = |path: &[&str]| {
        let mut v = parsed.as_ref()?;
        for key in path {
            v = v.get(*key)?;
        }
        v.as_str().map(str::to_string)
    };
    let message = field(&["error", "message"])
        .or_else(|| field(&["error_description"]))
        .or_else(|| field(&["message"]))
        .unwrap_or_else(|| body.trim().to_string());
    format!("Refresh request failed: HTTP {status}: {message}")
}

/// New `expires` in ms: `expires_at`, else now + `expires_in`, else the new JWT's `exp`.
fn refreshed_expires_ms(response: &Value) -> Option<i64> {
    if let Some(at) = response.get("expires_at").filter(|v| v.is_number()) {
        return normalize_expires_ms(at);
    }
    if let Some(secs) = response.get("expires_in").and_then(Value::as_f64) {
        return Some(now_ms() + (secs * 1000.0) as i64);
    }
    response
        .get("access_token")
        .and_then(Value::as_str)
        .and_then(jwt_exp)
        .map(|e| e * 1000)
}

fn response_str<'a>(response: &'a Value, key: &str) -> Option<&'a str> {
    response
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Merge a refresh response into the store document, touching only the credential fields.
fn merge_response(doc: &mut Value, current: &Auth, response: &Value) -> Result<()> {
    let set = |target: &mut Value, key: &str, value: Option<Value>| {
        if let (Some(obj), Some(value)) = (target.as_object_mut(), value) {
            obj.insert(key.to_string(), value);
        }
    };
    let as_json = |s: Option<&str>| s.map(|s| json!(s));
    match current.format {
        AuthFormat::CodexAuthJson => {
            let tokens = doc.get_mut("tokens").ok_or_else(|| Error::Refresh {
                message: format!(
                    "Codex tokens disappeared during refresh from {}",
                    current.path.display()
                ),
            })?;
            set(
                tokens,
                "id_token",
                as_json(response_str(response, "id_token")),
            );
            set(
                tokens,
                "access_token",
                as_json(response_str(response, "access_token")),
            );
            set(
                tokens,
                "refresh_token",
                as_json(response_str(response, "refresh_token")),
            );
            set(doc, "last_refresh", Some(json!(iso_now())));
        }
        AuthFormat::OpenClawAuthProfiles
        | AuthFormat::OpenClawOAuthJson
        | AuthFormat::OpenClawLegacyAuthJson => {
            let profile = if current.format == AuthFormat::OpenClawAuthProfiles {
                let id = current.profile_id.clone().unwrap_or_default();
                doc.get_mut("profiles")
                    .and_then(|p| p.get_mut(&id))
                    .ok_or_else(|| Error::Refresh {
                        message: format!("OpenClaw profile disappeared during refresh: {id}"),
                    })?
            } else {
                doc.get_mut(&current.provider)
                    .ok_or_else(|| Error::Refresh {
                        message: format!(
                            "OpenClaw OAuth entry disappeared during refresh: {}",
                            current.provider
                        ),
                    })?
            };
            set(
                profile,
                "access",
                as_json(response_str(response, "access_token")),
            );
            set(
                profile,
                "refresh",
                as_json(response_str(response, "refresh_token")),
            );
            set(
                profile,
                "expires",
                refreshed_expires_ms(response).map(|ms| json!(ms)),
            );
            set(
                profile,
                "idToken",
                as_json(response_str(response, "id_token")),
            );
        }
    }
    Ok(())
}

/// Atomic write (SPEC §7): `.<name>.<pid>.<epoch ms>.tmp` beside the store, mode 0600, 2-space
/// JSON with a trailing newline, renamed over the store, then chmod 0600.
pub fn write_store_atomic(path: &Path, doc: &Value) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), now_ms()));
    let text = serde_json::to_string_pretty(doc)
        .map_err(|e| Error::Io(format!("Cannot encode {}: {e}", path.display())))?;
    let result = write_private(&tmp, format!("{text}\n").as_bytes())
        .and_then(|_| std::fs::rename(&tmp, path))
        .and_then(|_| set_private(path));
    if let Err(err) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(
            format!("Cannot write auth store {}", path.display()),
            err,
        ));
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(unix)]
fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_texts_follow_the_spec() {
        assert_eq!(
            refresh_failure_text(401, r#"{"error":{"code":"refresh_token_expired"}}"#),
            "Refresh token expired. Sign in again with Codex or OpenClaw OAuth."
        );
        assert_eq!(
            refresh_failure_text(401, r#"{"error":"refresh_token_invalidated"}"#),
            "Refresh token was revoked. Sign in again with Codex or OpenClaw OAuth."
        );
        assert_eq!(
            refresh_failure_text(401, r#"{"code":"refresh_token_reused"}"#),
            "Refresh token was already used. Sign in again with Codex or OpenClaw OAuth."
        );
        assert_eq!(
            refresh_failure_text(401, "nope"),
            "Refresh token was rejected. Sign in again with Codex or OpenClaw OAuth."
        );
        assert_eq!(
            refresh_failure_text(500, r#"{"error_description":"down"}"#),
            "Refresh request failed: HTTP 500: down"
        );
        assert_eq!(
            refresh_failure_text(502, "  bad gateway \n"),
            "Refresh request failed: HTTP 502: bad gateway"
        );
    }

    #[test]
    fn reuse_errors_are_recognised_by_code_or_wording() {
        assert!(is_reuse_error(
            401,
            r#"{"error":{"code":"refresh_token_reused"}}"#
        ));
        assert!(is_reuse_error(
            401,
            "Your refresh token has already been used"
        ));
        assert!(!is_reuse_error(400, r#"{"error":"refresh_token_reused"}"#));
    }

    #[test]
    fn refresh_lock_path_is_openclaws() {
        let path = refresh_lock_file(Path::new("/s"), "openai-codex", "openai-codex:default");
        let hex: String = Sha256::digest(b"openai-codex\0openai-codex:default")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            path,
            PathBuf::from(format!("/s/locks/oauth-refresh/sha256-{hex}"))
        );
    }
}
