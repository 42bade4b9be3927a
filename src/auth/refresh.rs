//! OAuth refresh (SPEC §6–8): when a token needs refreshing, the refresh request, every recovery
//! path, and the merge back into the store without losing a field.
//!
//! The order of operations is what keeps a single-use refresh token from being burnt twice:
//! take the per-profile refresh locks (OpenClaw's, so its agents wait for us and we for them),
//! re-read the store under its own exclusion, and only if it is still stale send the request.
//! The store's exclusion is not held across the network call: OpenClaw takes over a store lock
//! older than 30 s, and everything it writes meanwhile is re-read before our merge.
//!
//! Versions differ in what they lock, so we take the union, always in this order:
//! 1. `<state>/locks/oauth-refresh/sha256-<hex>.lock` (OpenClaw up to 2026.6.5),
//! 2. `<state>/locks/oauth-refresh/lock-<hex>.lock` (2026.6.6 and later),
//! 3. the store's own: `<store>.lock` for a JSON file, or one SQLite `BEGIN IMMEDIATE`
//!    transaction for a database (no OpenClaw version has a lock file for those).
//!
//! Both kinds of store go through [`Exclusive`], so the re-read → merge → write path is written
//! once. OpenClaw 2026.9.4+ refreshes outside its lock after parking an inert *fence* in the
//! profile; we never refresh a fenced profile, we wait for OpenClaw to settle it (see [`fence`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::lock::{self, FileLock, LockOptions, REFRESH_LOCK, STORE_LOCK};
use super::select::SelectOptions;
use super::sqlite::{self, Layout, WriteTxn};
use super::store::{parse_auth, read_document, Auth, AuthFormat};
use super::token::{iso_now, jwt_exp, normalize_expires_ms, now_ms};
use super::{AuthContext, RefreshOutcome};
use crate::error::{Error, Result};
use crate::progress::Progress;

pub const CODEX_OAUTH_CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
const REFRESH_SKEW_SECONDS: i64 = 300;
const REFRESH_CALL_TIMEOUT_MS: u64 = 120_000;
const EIGHT_DAYS_MS: i64 = 8 * 24 * 60 * 60 * 1000;

/// OpenClaw waits this long for another process's fenced refresh (`OAUTH_REFRESH_CALL_TIMEOUT_MS`);
/// we allow a little more before giving up.
const FENCE_WAIT_LIMIT: Duration = Duration::from_secs(130);
const FENCE_POLL: Duration = Duration::from_millis(250);
const INHERITED: &str = "inherited fresh OpenClaw main auth";

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

/// `<state>/locks/oauth-refresh/sha256-<hex of provider NUL profile>`: the refresh lock of
/// OpenClaw up to 2026.6.5 (`resolveOAuthRefreshLockPath`).
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

/// `<state>/locks/oauth-refresh/lock-<digest of JSON.stringify([provider, profileId])>`: the
/// refresh lock of OpenClaw 2026.6.6 and later.
pub fn tuple_refresh_lock_file(state_dir: &Path, provider: &str, profile_id: &str) -> PathBuf {
    // serde_json escapes strings exactly as JSON.stringify does (quote, backslash, \b \f \n \r
    // \t, other controls as lower-case \u00xx, everything else raw), so the bytes hashed match.
    let tuple = serde_json::to_string(&[provider, profile_id]).unwrap_or_default();
    state_dir
        .join("locks")
        .join("oauth-refresh")
        .join(format!("lock-{}", oauth_lock_path_digest(&tuple)))
}

/// OpenClaw's `oauthLockPathDigest`: two 64-bit FNV-1a lanes over the UTF-8 bytes, the second
/// with its own offset basis and each byte first offset by 0x9e3779b97f4a7c15.
pub fn oauth_lock_path_digest(value: &str) -> String {
    const PRIME: u64 = 1_099_511_628_211;
    let mut left: u64 = 14_695_981_039_346_656_037;
    let mut right: u64 = 11_160_318_154_034_397_263;
    for &byte in value.as_bytes() {
        left = (left ^ byte as u64).wrapping_mul(PRIME);
        // JS: `right ^ octet + 11400714819323198485n` adds before it XORs; the sum stays < 2^64.
        right = (right ^ (byte as u64 + 11_400_714_819_323_198_485)).wrapping_mul(PRIME);
    }
    format!("{left:016x}{right:016x}")
}

/// Both refresh-lock files for a profile, in the order they are taken.
pub fn refresh_lock_files(state_dir: &Path, provider: &str, profile_id: &str) -> [PathBuf; 2] {
    [
        refresh_lock_file(state_dir, provider, profile_id),
        tuple_refresh_lock_file(state_dir, provider, profile_id),
    ]
}

/// Stores that hold OpenClaw `profiles` (selected by id, refreshed under OpenClaw's locks).
fn is_profile_store(format: AuthFormat) -> bool {
    match format {
        AuthFormat::OpenClawAuthProfiles
        | AuthFormat::OpenClawAgentSqlite
        | AuthFormat::OpenClawStateSqlite => true,
        AuthFormat::CodexAuthJson
        | AuthFormat::OpenClawOAuthJson
        | AuthFormat::OpenClawLegacyAuthJson => false,
    }
}

/// OpenClaw 2026.9.4+ claims a refresh by replacing the profile's tokens with
/// `openclaw-oauth-refresh-fence:v1:<claim>:[failed:]access|refresh:<sha256>` (and `expires: 1`),
/// refreshes without holding its lock, then settles the claim under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fence {
    /// An OpenClaw process is refreshing right now: wait, never spend the fence as a token.
    Pending,
    /// OpenClaw's refresh failed and spent the refresh token: only a new sign-in helps.
    Failed,
}

const FENCE_PREFIX: &str = "openclaw-oauth-refresh-fence:v1:";

fn fence(auth: &Auth) -> Option<Fence> {
    let access = fence_token(&auth.access_token, "access")?;
    let refresh = fence_token(auth.refresh_token.as_deref()?, "refresh")?;
    if access != refresh {
        return None;
    }
    Some(if access.1 {
        Fence::Failed
    } else {
        Fence::Pending
    })
}

/// `(claim id, failed)` of one fence token.
fn fence_token<'a>(token: &'a str, kind: &str) -> Option<(&'a str, bool)> {
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let (claim, rest) = token.strip_prefix(FENCE_PREFIX)?.split_once(':')?;
    let (failed, rest) = match rest.strip_prefix("failed:") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let digest = rest.strip_prefix(kind)?.strip_prefix(':')?;
    (hex(claim, 32) && hex(digest, 64)).then_some((claim, failed))
}

/// Exclusive access to one store document for a re-read → merge → write, held briefly.
enum Exclusive {
    /// A JSON file: OpenClaw's store lock file; the write itself is an atomic rename.
    File { _lock: FileLock },
    /// A database row: one `BEGIN IMMEDIATE` transaction, committed by [`Exclusive::finish`].
    Row(WriteTxn),
}

impl Exclusive {
    async fn take(auth: &Auth) -> Result<Exclusive> {
        match Layout::of_format(auth.format) {
            Some(layout) => Ok(Exclusive::Row(WriteTxn::begin(&auth.path, layout).await?)),
            None => Ok(Exclusive::File {
                _lock: acquire(&auth.path, STORE_LOCK).await?,
            }),
        }
    }

    /// The store document and the credentials it now holds for `options`.
    fn load(&self, path: &Path, options: &SelectOptions) -> Result<(Value, Auth)> {
        match self {
            Exclusive::File { .. } => {
                let doc = read_document(path)?;
                let auth = parse_auth(path, &doc, options)?;
                Ok((doc, auth))
            }
            Exclusive::Row(txn) => {
                let docs = txn.documents()?;
                let auth = sqlite::parse_store(path, &docs, options)?;
                Ok((docs.store, auth))
            }
        }
    }

    fn write(&mut self, path: &Path, doc: &Value) -> Result<()> {
        match self {
            Exclusive::File { .. } => write_store_atomic(path, doc),
            Exclusive::Row(txn) => Ok(txn.replace(doc)?),
        }
    }

    /// Commit (a database) or release (a file lock).
    fn finish(self) -> Result<()> {
        match self {
            Exclusive::File { .. } => Ok(()),
            Exclusive::Row(txn) => Ok(txn.commit()?),
        }
    }
}

/// What the locked re-read decided.
enum Checked {
    Done(Refreshed),
    /// Another OpenClaw process holds a fence on the profile: wait without our locks.
    OpenClawRefreshing,
    Stale(Auth),
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
    /// Selection that finds the same credentials again.
    fn reread_options(&self, auth: &Auth) -> SelectOptions {
        let mut options = self.ctx.select_options(&auth.path);
        options.requested = auth.profile_id.clone();
        if !is_profile_store(auth.format) {
            // A provider map's "profile id" is `<key>:default`; its key selects the entry.
            options.requested = Some(auth.provider.clone());
        }
        options
    }

    fn reread(&self, auth: &Auth) -> Result<Auth> {
        super::read_store(&auth.path, &self.reread_options(auth))
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
        match auth.profile_id.as_deref() {
            Some(profile_id) if is_profile_store(auth.format) => {
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
        let lock_files = refresh_lock_files(&self.ctx.dirs.state_dir, &auth.provider, profile_id);
        for file in &lock_files {
            self.progress.verbose(&format!(
                "openclaw_refresh_lock: {}",
                lock::lock_path_for(file).display()
            ));
        }
        match Layout::of_format(auth.format) {
            Some(layout) => self.progress.verbose(&format!(
                "openclaw_auth_store: {} ({}, BEGIN IMMEDIATE)",
                auth.path.display(),
                layout.store_row()
            )),
            None => self.progress.verbose(&format!(
                "openclaw_auth_store_lock: {}",
                lock::lock_path_for(&auth.path).display()
            )),
        }
        let deadline = Instant::now() + FENCE_WAIT_LIMIT;
        loop {
            // Fixed order (older OpenClaw's lock first) so two of our runs can never deadlock;
            // any one OpenClaw version takes only one of them.
            let _legacy = acquire(&lock_files[0], REFRESH_LOCK).await?;
            let _tuple = acquire(&lock_files[1], REFRESH_LOCK).await?;
            let current = match self.check_under_locks(auth, reason).await? {
                Checked::Done(done) => return Ok(done),
                Checked::Stale(current) => current,
                Checked::OpenClawRefreshing => {
                    drop((_legacy, _tuple));
                    self.await_openclaw_refresh(auth, profile_id, deadline)
                        .await?;
                    continue;
                }
            };
            return match self.request_and_merge(&current, reason, true).await {
                Ok(done) => Ok(done),
                Err(err) => match self.inherit_after_failure(auth).await {
                    Some(inherited) => Ok(inherited),
                    None => Err(err),
                },
            };
        }
    }

    /// SPEC §8 steps 1–2 with the refresh locks held: re-read, skip, inherit, or go on.
    async fn check_under_locks(&self, auth: &Auth, reason: &str) -> Result<Checked> {
        let mut store = Exclusive::take(auth).await?;
        let (doc, current) = store.load(&auth.path, &self.reread_options(auth))?;
        match fence(&current) {
            Some(Fence::Pending) => return Ok(Checked::OpenClawRefreshing),
            Some(Fence::Failed) => {
                return Err(Error::Refresh {
                    message: self.failure_message(
                        auth,
                        "Refresh token was rejected. Sign in again with Codex or OpenClaw OAuth. \
                         (OpenClaw's own refresh of this profile failed and spent its refresh \
                         token.)",
                    ),
                })
            }
            None => {}
        }
        if let Some(why) = skip_after_reload(auth, &current, reason) {
            store.finish()?;
            self.progress.verbose(&format!("refresh skipped: {why}"));
            return Ok(Checked::Done(skipped(current, why)));
        }
        if self.inherit_from_main(&current, &mut store, doc)? {
            store.finish()?;
            return Ok(Checked::Done(skipped(self.reread(&current)?, INHERITED)));
        }
        store.finish()?;
        Ok(Checked::Stale(current))
    }

    /// SPEC §8 step 3: after a failed refresh, inheriting from main is tried once more.
    async fn inherit_after_failure(&self, auth: &Auth) -> Option<Refreshed> {
        let mut store = Exclusive::take(auth).await.ok()?;
        let (doc, current) = store.load(&auth.path, &self.reread_options(auth)).ok()?;
        if !self.inherit_from_main(&current, &mut store, doc).ok()? {
            return None;
        }
        store.finish().ok()?;
        Some(skipped(self.reread(&current).ok()?, INHERITED))
    }

    /// Poll (without any lock: OpenClaw needs its lock to settle) until the fence is gone.
    async fn await_openclaw_refresh(
        &self,
        auth: &Auth,
        profile_id: &str,
        deadline: Instant,
    ) -> Result<()> {
        self.progress.verbose(&format!(
            "refresh: waiting for OpenClaw to finish refreshing {profile_id}"
        ));
        loop {
            if Instant::now() >= deadline {
                return Err(Error::Refresh {
                    message: self.failure_message(
                        auth,
                        &format!(
                            "Timed out waiting for OpenClaw to finish refreshing {profile_id}"
                        ),
                    ),
                });
            }
            tokio::time::sleep(FENCE_POLL).await;
            if fence(&self.reread(auth)?) != Some(Fence::Pending) {
                return Ok(());
            }
        }
    }

    /// SPEC §8 step 2: a per-agent store may copy a fresh, matching profile from the main agent's
    /// store instead of spending the shared refresh token. Writes into `doc` under `store`'s
    /// exclusion and returns true when it did; the caller commits.
    fn inherit_from_main(
        &self,
        current: &Auth,
        store: &mut Exclusive,
        mut doc: Value,
    ) -> Result<bool> {
        let Some(profile_id) = current.profile_id.as_deref() else {
            return Ok(false);
        };
        let Some(main) = self.ctx.main_store() else {
            return Ok(false);
        };
        if same_file(&current.path, &main) {
            return Ok(false);
        }
        let mut options = self.ctx.select_options(&main);
        options.requested = Some(profile_id.to_string());
        let Ok(main_auth) = super::read_store(&main, &options) else {
            return Ok(false);
        };
        if main_auth.provider != current.provider
            || !identity_compatible(current, &main_auth)
            || stale_reason(&main_auth).is_some()
            || !main_auth.credentials_differ(current)
        {
            return Ok(false);
        }
        let main_doc = if sqlite::is_sqlite_store(&main) {
            sqlite::read_documents(&main)?.store
        } else {
            read_document(&main)?
        };
        let Some(profile) = main_doc
            .get("profiles")
            .and_then(|p| p.get(profile_id))
            .cloned()
        else {
            return Ok(false);
        };
        match doc.get_mut("profiles").and_then(Value::as_object_mut) {
            Some(profiles) => {
                profiles.insert(profile_id.to_string(), profile);
            }
            None => return Ok(false),
        }
        store.write(&current.path, &doc)?;
        self.progress
            .verbose("refresh skipped: inherited fresh OpenClaw main auth");
        Ok(true)
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
            let mut store = Exclusive::take(auth).await?;
            let (mut doc, current) = store.load(&auth.path, &self.reread_options(auth))?;
            if current.refresh_token != auth.refresh_token {
                // Another process refreshed first; its tokens are the live ones.
                store.finish()?;
                self.progress
                    .verbose("refresh skipped: auth changed before persist");
                return Ok(skipped(current, "auth changed"));
            }
            merge_response(&mut doc, &current, &response)?;
            store.write(&auth.path, &doc)?;
            store.finish()?;
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
            for key in ["id_token", "access_token", "refresh_token"] {
                set(tokens, key, as_json(response_str(response, key)));
            }
            set(doc, "last_refresh", Some(json!(iso_now())));
        }
        AuthFormat::OpenClawAuthProfiles
        | AuthFormat::OpenClawAgentSqlite
        | AuthFormat::OpenClawStateSqlite
        | AuthFormat::OpenClawOAuthJson
        | AuthFormat::OpenClawLegacyAuthJson => {
            let profile = if is_profile_store(current.format) {
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

    /// Outputs of OpenClaw's own `oauthLockPathDigest` (its source text, extracted from the
    /// 2026.6.6, 2026.6.8, 2026.8.2 and 2026.9.6 bundles and run with node over
    /// `JSON.stringify([provider, profileId])`; all four agree).
    #[test]
    fn tuple_lock_digests_match_openclaws_function() {
        let cases = [
            (
                "openai",
                "openai:default",
                "5440fa0b86d2697ef1152f7cb32a8157",
            ),
            (
                "openai-codex",
                "openai-codex:default",
                "7b9da1f0ba485a46aaec13e8c09ceb27",
            ),
            (
                "openai",
                "openai:me@example.com",
                "98b549f98aa9ad78cf535d85c44baf72",
            ),
            (
                "openai",
                "openai:\u{e9}\u{e8} \"q\" \\ \n\t\u{1} \u{2028} \u{1f600}",
                "867688ffb6166bd624b94f3fea78b879",
            ),
            ("", "", "f3933dba1e878965d04b9a7098533222"),
        ];
        for (provider, profile, hex) in cases {
            assert_eq!(
                tuple_refresh_lock_file(Path::new("/s"), provider, profile),
                PathBuf::from(format!("/s/locks/oauth-refresh/lock-{hex}")),
                "{provider:?} {profile:?}"
            );
        }
        let both = refresh_lock_files(Path::new("/s"), "openai", "openai:default");
        assert_eq!(
            both[0],
            PathBuf::from(
                "/s/locks/oauth-refresh/sha256-5745659ffbfd6177a09e335e5c3da5e6bc0c2ed19b67af51f537ea171e03ccd0"
            )
        );
    }

    #[test]
    fn fences_are_recognised_only_in_their_exact_shape() {
        let claim = "0123456789abcdef0123456789abcdef";
        let digest = "a".repeat(64);
        let auth = |access: String, refresh: String| Auth {
            path: PathBuf::from("/x"),
            format: AuthFormat::OpenClawStateSqlite,
            auth_mode: None,
            profile_id: Some("openai:default".into()),
            provider: "openai".into(),
            access_token: access,
            refresh_token: Some(refresh),
            account_id: "a".into(),
            email: None,
            last_refresh: None,
            expires_ms: Some(1000),
            jwt_exp: None,
        };
        let token =
            |failed: &str, kind: &str| format!("{FENCE_PREFIX}{claim}:{failed}{kind}:{digest}");
        assert_eq!(
            fence(&auth(token("", "access"), token("", "refresh"))),
            Some(Fence::Pending)
        );
        assert_eq!(
            fence(&auth(
                token("failed:", "access"),
                token("failed:", "refresh")
            )),
            Some(Fence::Failed)
        );
        assert_eq!(
            fence(&auth(token("failed:", "access"), token("", "refresh"))),
            None
        );
        assert_eq!(
            fence(&auth(token("", "refresh"), token("", "refresh"))),
            None
        );
        assert_eq!(fence(&auth("eyJ.a.b".into(), "r".into())), None);
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
