//! OAuth refresh (SPEC §6–8): when a token needs refreshing, the refresh request, every recovery
//! path, and the merge back into the store without losing a field.
//!
//! The order of operations is what keeps a single-use refresh token from being burnt twice:
//! take the per-profile refresh locks (OpenClaw's, so its agents wait for us and we for them),
//! re-read the store under its own exclusion, and only if it is still stale send the request.
//! The store's exclusion is not held across the network call: OpenClaw takes over a store lock
//! older than 30 s, and everything it writes meanwhile is re-read before our merge.
//!
//! Versions differ in what they lock, so we take the union, always in this order: both refresh
//! locks ([`super::lock_paths`]), then the store's own: `<store>.lock` for a JSON file, or one
//! SQLite `BEGIN IMMEDIATE` transaction for a database (no OpenClaw version has a lock file for
//! those). Locks are not re-entrant: a path that already holds the store lock passes that down
//! ([`StoreLock::Held`]) instead of asking again.
//!
//! Both kinds of store go through [`Exclusive`], so the re-read → merge → write path is written
//! once. OpenClaw 2026.9.4+ refreshes outside its lock after parking an inert *fence* in the
//! profile; we never refresh a fenced profile, we wait for OpenClaw to settle it
//! ([`super::fence`]). The token request is [`super::oauth`], the merge [`super::merge`], the
//! write [`super::write`]; in-process single flight is the auth manager's ([`super::manager`]).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fence::{fence, Fence};
use super::lock::{self, FileLock, LockOptions, LockRegistry, REFRESH_LOCK, STORE_LOCK};
use super::lock_paths::refresh_lock_files;
use super::merge::merge_response;
use super::oauth::{self, is_reuse_error, refresh_failure_kind, refresh_failure_text};
use super::select::SelectOptions;
use super::sqlite::{self, Layout, WriteTxn};
use super::store::{parse_auth, read_document, Auth, AuthFormat};
use super::token::now_ms;
use super::write::write_store_atomic;
use super::{AuthContext, RefreshOutcome};
use crate::foundation::error::{Error, RefreshErrorKind, Result};
use crate::foundation::events::Reporter;

const REFRESH_SKEW_SECONDS: i64 = 300;
const EIGHT_DAYS_MS: i64 = 8 * 24 * 60 * 60 * 1000;

/// OpenClaw waits this long for another process's fenced refresh (`OAUTH_REFRESH_CALL_TIMEOUT_MS`);
/// we allow a little more before giving up.
const FENCE_WAIT_LIMIT: Duration = Duration::from_secs(130);

/// How long refresh waits between looks: lock backoff and the fence poll. Tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct AuthDelays {
    pub store_lock: LockOptions,
    pub refresh_lock: LockOptions,
    pub fence_poll: Duration,
}

impl Default for AuthDelays {
    fn default() -> Self {
        AuthDelays {
            store_lock: STORE_LOCK,
            refresh_lock: REFRESH_LOCK,
            fence_poll: Duration::from_millis(250),
        }
    }
}

/// Whether the caller already holds the store's own lock (a JSON store's `<store>.lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreLock {
    Held,
    Take,
}
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
    if fence(auth).is_some() {
        // Never sent as a token: settled by OpenClaw (pending) or refused under the lock (failed).
        return Some("OpenClaw refresh fence in the profile".to_string());
    }
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

/// Exclusive access to one store document for a re-read → merge → write, held briefly.
enum Exclusive {
    /// A JSON file: OpenClaw's store lock file (or `None` when the caller holds it); the write
    /// itself is an atomic rename.
    File { _lock: Option<FileLock> },
    /// A database row: one `BEGIN IMMEDIATE` transaction, committed by [`Exclusive::finish`].
    Row(WriteTxn),
}

impl Exclusive {
    async fn take(refresher: &Refresher<'_>, auth: &Auth, lock: StoreLock) -> Result<Exclusive> {
        match Layout::of_format(auth.format) {
            Some(layout) => Ok(Exclusive::Row(WriteTxn::begin(&auth.path, layout).await?)),
            None => Ok(Exclusive::File {
                _lock: match lock {
                    StoreLock::Held => None,
                    StoreLock::Take => Some(
                        refresher
                            .acquire(&auth.path, refresher.delays.store_lock)
                            .await?,
                    ),
                },
            }),
        }
    }

    /// The store document and the credentials it now holds for `options`.
    fn load(&self, path: &Path, options: &SelectOptions) -> Result<(Value, Auth)> {
        crate::foundation::blocking::run(|| self.load_now(path, options))
    }

    fn load_now(&self, path: &Path, options: &SelectOptions) -> Result<(Value, Auth)> {
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
        crate::foundation::blocking::run(|| match self {
            Exclusive::File { .. } => write_store_atomic(path, doc),
            Exclusive::Row(txn) => Ok(txn.replace(doc)?),
        })
    }

    /// Commit (a database) or release (a file lock).
    fn finish(self) -> Result<()> {
        crate::foundation::blocking::run(|| match self {
            Exclusive::File { .. } => Ok(()),
            Exclusive::Row(txn) => Ok(txn.commit()?),
        })
    }
}

/// What the locked re-read decided.
enum Checked {
    Done(Refreshed),
    /// Another OpenClaw process holds a fence on the profile: wait without our locks.
    OpenClawRefreshing,
    Stale(Auth),
}

/// Refreshes one store's credentials; made by the auth manager for each refresh it runs.
pub(crate) struct Refresher<'a> {
    pub ctx: &'a AuthContext,
    pub refresh_url: &'a str,
    pub enabled: bool,
    pub user_agent: &'a str,
    pub http: &'a crate::foundation::http::HttpClient,
    pub locks: &'a LockRegistry,
    pub delays: &'a AuthDelays,
    pub progress: Reporter,
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

impl Refresher<'_> {
    async fn acquire(&self, file: &Path, options: LockOptions) -> Result<FileLock> {
        let locked = lock::acquire(file, options, self.locks).await;
        locked.map_err(|e| {
            let kind = match e {
                lock::LockError::TimedOut(_) => RefreshErrorKind::LockTimeout,
                lock::LockError::Io(..) => RefreshErrorKind::Store,
            };
            Error::refresh(kind, e.to_string())
        })
    }

    /// Selection that finds the same credentials again.
    fn reread_options(&self, auth: &Auth) -> SelectOptions {
        let mut options = self.ctx.select_options(&auth.path);
        options.requested = auth.profile_id.clone();
        if !auth.format.holds_profiles() {
            // A provider map's "profile id" is `<key>:default`; its key selects the entry.
            options.requested = Some(auth.provider.clone());
        }
        options
    }

    fn reread(&self, auth: &Auth) -> Result<Auth> {
        let options = self.reread_options(auth);
        crate::foundation::blocking::run(|| super::read_store(&auth.path, &options))
    }

    /// Refresh `auth` for `reason`, under the locks its store format calls for.
    pub async fn refresh(&self, auth: &Auth, reason: &str) -> Result<Refreshed> {
        if !self.enabled {
            return Err(Error::refresh(
                RefreshErrorKind::Unavailable,
                format!("Codex OAuth refresh is disabled, but refresh is required: {reason}"),
            ));
        }
        if auth.refresh_token.is_none() {
            return Err(Error::refresh(
                RefreshErrorKind::Unavailable,
                format!("No refresh token found in {}", auth.path.display()),
            ));
        }
        self.progress.verbose(&format!("refresh: {reason}"));
        self.progress
            .verbose(&format!("refresh_endpoint: {}", self.refresh_url));
        match auth.profile_id.as_deref() {
            Some(profile_id) if auth.format.holds_profiles() => {
                self.refresh_openclaw(auth, profile_id, reason).await
            }
            _ => self.refresh_plain(auth, reason).await,
        }
    }

    /// Codex and provider-map stores: nobody else honours a lock on them, but our own concurrent
    /// runs do, so the store lock is held across the whole refresh.
    async fn refresh_plain(&self, auth: &Auth, reason: &str) -> Result<Refreshed> {
        let _store = self.acquire(&auth.path, self.delays.store_lock).await?;
        let current = self.reread(auth)?;
        if let Some(why) = skip_after_reload(auth, &current, reason) {
            self.progress.verbose(&format!("refresh skipped: {why}"));
            return Ok(skipped(current, why));
        }
        self.request_and_merge(&current, reason, true, StoreLock::Held)
            .await
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
            let _legacy = self
                .acquire(&lock_files[0], self.delays.refresh_lock)
                .await?;
            let _tuple = self
                .acquire(&lock_files[1], self.delays.refresh_lock)
                .await?;
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
            let merged = self
                .request_and_merge(&current, reason, true, StoreLock::Take)
                .await;
            return match merged {
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
        let mut store = Exclusive::take(self, auth, StoreLock::Take).await?;
        let (doc, current) = store.load(&auth.path, &self.reread_options(auth))?;
        match fence(&current) {
            Some(Fence::Pending) => return Ok(Checked::OpenClawRefreshing),
            Some(Fence::Failed) => {
                return Err(self.failure(
                    auth,
                    RefreshErrorKind::OpenClawFailed,
                    OPENCLAW_REFRESH_FAILED,
                ))
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
        let mut store = Exclusive::take(self, auth, StoreLock::Take).await.ok()?;
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
                return Err(self.failure(
                    auth,
                    RefreshErrorKind::LockTimeout,
                    &format!("Timed out waiting for OpenClaw to finish refreshing {profile_id}"),
                ));
            }
            tokio::time::sleep(self.delays.fence_poll).await;
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
        store_lock: StoreLock,
    ) -> Result<Refreshed> {
        let refresh_token = auth.refresh_token.clone().unwrap_or_default();
        let (status, body) = oauth::post(
            &self.http.get()?,
            self.refresh_url,
            self.user_agent,
            &refresh_token,
        )
        .await?;

        if (200..300).contains(&status) {
            let response: Value = serde_json::from_str(&body).map_err(|_| {
                self.failure(
                    auth,
                    RefreshErrorKind::Failed,
                    &format!("Refresh request failed: HTTP {status}: response is not JSON"),
                )
            })?;
            let mut store = Exclusive::take(self, auth, store_lock).await?;
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
                    store_lock,
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
        Err(self.failure(
            auth,
            refresh_failure_kind(status, &body),
            &refresh_failure_text(status, &body),
        ))
    }

    fn failure(&self, auth: &Auth, kind: RefreshErrorKind, text: &str) -> Error {
        Error::refresh(kind, failure_message(auth, kind, text))
    }
}

/// OpenClaw's own refresh failed and left a `failed:` fence: the same words `--refresh-only`
/// and `--smoke` use.
pub(crate) const OPENCLAW_REFRESH_FAILED: &str = "Refresh token was rejected. Sign in again with \
Codex or OpenClaw OAuth. (OpenClaw's own refresh of this profile failed and spent its refresh \
token.)";

/// The fix a user can act on for a failed refresh of `auth`: sign in again when the token is
/// spent or refused, else try again later.
pub(crate) fn fix_line(auth: &Auth, kind: RefreshErrorKind) -> String {
    if kind.store_is_spent() && kind != RefreshErrorKind::Failed {
        sign_in_line(auth)
    } else {
        format!(
            "fix: try again later with `codex-imagen --refresh-only --auth {}`",
            auth.path.display()
        )
    }
}

/// The fix when only a new sign-in helps: the command of the tool that owns the store.
pub(crate) fn sign_in_line(auth: &Auth) -> String {
    match auth.format {
        AuthFormat::CodexAuthJson => "fix: run `codex login`, then try again".to_string(),
        AuthFormat::CodexKeyring => {
            "fix: run `codex-imagen --login` (or `codex login`), then try again".to_string()
        }
        _ => format!(
            "fix: run `openclaw models auth login --provider {}`, then try again",
            auth.provider
        ),
    }
}

/// A backend 401 that a refresh did not cure: the HTTP text, then which store and profile, then
/// the sign-in fix.
pub(crate) fn still_unauthorized_message(auth: &Auth, http_text: &str) -> String {
    let profile = auth.profile_id.as_deref().unwrap_or("(none)");
    format!(
        "{http_text}\nThe backend still refuses these credentials after a refresh.\nauth store: {} (profile {profile})\n{}",
        auth.path.display(),
        sign_in_line(auth)
    )
}

/// The SPEC text, then which store and profile failed and how to fix it (seed 002).
fn failure_message(auth: &Auth, kind: RefreshErrorKind, text: &str) -> String {
    let profile = auth.profile_id.as_deref().unwrap_or("(none)");
    format!(
        "{text}\nauth store: {} (profile {profile})\n{}",
        auth.path.display(),
        fix_line(auth, kind)
    )
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
