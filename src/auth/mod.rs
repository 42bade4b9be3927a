//! Credentials: which store is used ([`discover`]), how it is read ([`store`] for JSON files,
//! [`sqlite`] for OpenClaw 2026.6.5+ databases), which OpenClaw profile is picked ([`select`]),
//! and [`prepare`], the one place that turns the command line into usable credentials for a run.

pub mod discover;
pub mod lock;
pub mod refresh;
pub mod select;
pub mod sqlite;
pub mod store;
pub(crate) mod token;

use std::path::{Path, PathBuf};

pub use select::SelectOptions;
pub use store::{Auth, AuthFormat};

use crate::config::Config;
use crate::error::Result;
use crate::paths::OpenClawDirs;
use crate::progress::Progress;

/// Where auth comes from for this run.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub dirs: OpenClawDirs,
    /// The store read first (`--auth`, else the first discovered file).
    pub path: PathBuf,
    /// True when `--auth` named the store: it is then the only candidate.
    pub explicit: bool,
    pub requested_profile: Option<String>,
}

impl AuthContext {
    pub fn resolve(config: &Config) -> Result<AuthContext> {
        let dirs = OpenClawDirs::from_env();
        let path = discover::resolve_auth_path(config.auth_path.as_deref(), &dirs)?;
        Ok(AuthContext {
            explicit: config.auth_path.is_some(),
            requested_profile: config.auth_profile.clone(),
            dirs,
            path,
        })
    }

    /// Profile selection for a given store: the OpenClaw config order applies only to discovered
    /// stores and to the main agent's own store (SPEC §5), which since OpenClaw 2026.6.5 may also
    /// be the main agent's database or the shared state database.
    pub fn select_options(&self, store: &Path) -> SelectOptions {
        let use_config = !self.explicit || self.is_main_store(store);
        SelectOptions {
            requested: self.requested_profile.clone(),
            config_path: use_config.then(|| self.dirs.config_path.clone()),
            state: None,
        }
    }

    fn is_main_store(&self, store: &Path) -> bool {
        store == self.dirs.main_auth_profiles()
            || sqlite::main_store_paths(&self.dirs)
                .iter()
                .any(|main| main == store)
    }

    /// The main agent's store, newest layout first: what a per-agent store may inherit from
    /// (SPEC §8 step 2). `None` when none exists.
    pub fn main_store(&self) -> Option<PathBuf> {
        sqlite::shared_store(&self.dirs).or_else(|| {
            let json = self.dirs.main_auth_profiles();
            crate::paths::is_file(&json).then_some(json)
        })
    }

    pub fn read(&self, store: &Path) -> Result<Auth> {
        read_store(store, &self.select_options(store))
    }
}

/// Read any store: a SQLite database (OpenClaw 2026.6.5+) or a JSON file (SPEC §4).
pub fn read_store(path: &Path, options: &SelectOptions) -> Result<Auth> {
    if sqlite::is_sqlite_store(path) {
        sqlite::read_auth(path, options)
    } else {
        store::read_auth(path, options)
    }
}

/// What a refresh did, for `auth_refresh` in the JSON summary (SPEC §14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshOutcome {
    pub refreshed: bool,
    pub skipped: Option<String>,
}

/// Credentials ready for a request, and the refresh that produced them, if any.
#[derive(Debug, Clone)]
pub struct PreparedAuth {
    pub auth: Auth,
    pub refresh: Option<RefreshOutcome>,
}

/// Print the SPEC's warning when a Codex store is not in ChatGPT mode (even with `--quiet`).
pub fn warn_auth_mode(auth: &Auth, progress: &Progress) {
    if let Some(mode) = auth.auth_mode.as_deref().filter(|m| *m != "chatgpt") {
        progress.warn(&format!("warning: auth_mode is {mode}, expected chatgpt."));
    }
}

/// Error texts after which the next discovered store is worth trying (SPEC §15).
const FALLBACK_MARKERS: [&str; 6] = [
    "refresh token was already used",
    "refresh token expired",
    "refresh token was revoked",
    "refresh token was rejected",
    "refresh request failed",
    "no accountid found",
];

fn worth_falling_back(err: &crate::error::Error) -> bool {
    let text = err.to_string().to_lowercase();
    FALLBACK_MARKERS.iter().any(|m| text.contains(m))
}

/// How [`prepare`] treats the stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Walk the discovered stores when the first one is irrecoverably stale.
    Allowed,
    /// Only the first store (`--smoke`).
    FirstStoreOnly,
}

/// Read the credentials a run will use, refreshing them when they are stale or `forced`, and
/// falling back to the next discovered store when one is irrecoverably stale (SPEC §15).
pub async fn prepare(
    ctx: &AuthContext,
    refresher: &refresh::Refresher<'_>,
    forced: bool,
    fallback: Fallback,
    progress: &Progress,
) -> Result<PreparedAuth> {
    let explicit = ctx.explicit || fallback == Fallback::FirstStoreOnly;
    let order = discover::fallback_order(&ctx.path, explicit, &ctx.dirs);
    let mut first_error: Option<crate::error::Error> = None;
    let mut first_identity: Option<Auth> = None;
    for (index, path) in order.iter().enumerate() {
        let attempt = async {
            let auth = ctx.read(path).map_err(|e| ErrorWithAuth(e, None))?;
            if let Some(first) = &first_identity {
                if !refresh::identity_compatible(first, &auth) {
                    return Ok(None);
                }
            }
            warn_auth_mode(&auth, progress);
            let reason = if forced {
                Some(refresh::REASON_FORCED.to_string())
            } else {
                refresh::stale_reason(&auth)
            };
            let Some(reason) = reason else {
                return Ok(Some(PreparedAuth {
                    auth,
                    refresh: None,
                }));
            };
            match refresher.refresh(&auth, &reason).await {
                Ok((auth, outcome)) => Ok(Some(PreparedAuth {
                    auth,
                    refresh: Some(outcome),
                })),
                Err(err) => Err(ErrorWithAuth(err, Some(auth))),
            }
        };
        let result: std::result::Result<Option<PreparedAuth>, ErrorWithAuth> = attempt.await;
        match result {
            Ok(Some(prepared)) => {
                if index > 0 {
                    progress.info(&format!(
                        "codex-imagen: using fallback auth {}",
                        path.display()
                    ));
                }
                return Ok(prepared);
            }
            Ok(None) => continue,
            Err(ErrorWithAuth(err, auth)) => {
                let worth = worth_falling_back(&err);
                if first_error.is_none() {
                    first_error = Some(err);
                    first_identity = auth;
                }
                if explicit || !worth {
                    break;
                }
            }
        }
    }
    Err(first_error
        .unwrap_or_else(|| crate::error::Error::Auth("No usable auth store found".into())))
}

/// An error from preparing one store, with the credentials it had read, if any.
struct ErrorWithAuth(crate::error::Error, Option<Auth>);
