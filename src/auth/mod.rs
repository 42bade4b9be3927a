//! Credentials: which store is used ([`discover`]), how it is read ([`store`] for JSON files,
//! [`sqlite`] for OpenClaw 2026.6.5+ databases), which OpenClaw profile is picked ([`select`]),
//! when and how a token is refreshed ([`refresh`], with [`oauth`], [`merge`], [`write`],
//! [`lock`], [`lock_paths`] and [`fence`]), and the [`manager`] that every job of a process
//! shares: it turns the settings into usable credentials and runs one refresh per profile.

pub(crate) mod codex_config;
pub(crate) mod cooldown;
pub(crate) mod discover;
pub(crate) mod fence;
pub(crate) mod keyring;
pub(crate) mod lock;
pub(crate) mod lock_paths;
pub(crate) mod login_exchange;
pub(crate) mod login_store;
pub(crate) mod manager;
pub(crate) mod merge;
pub(crate) mod oauth;
pub mod pool;
pub(crate) mod refresh;
pub(crate) mod select;
pub(crate) mod sqlite;
pub(crate) mod store;
pub(crate) mod token;
pub(crate) mod write;

use std::path::{Path, PathBuf};

pub(crate) use select::SelectOptions;
pub(crate) use store::Auth;

use crate::foundation::error::Result;
use crate::foundation::events::Reporter;
use crate::foundation::paths::{Environment, OpenClawDirs};

/// Which credentials a process uses: `--auth`, `--auth-profile`, the token endpoint, and whether
/// refresh is allowed. Owned by the engine; every job uses the same.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuthSettings {
    /// `--auth`: the only store considered when given (never bypassed by fallback).
    pub auth_path: Option<PathBuf>,
    /// `--auth-profile` (or its environment variables).
    pub profile: Option<String>,
    /// The OAuth token endpoint.
    pub refresh_url: String,
    /// False with `--no-refresh`.
    pub refresh: bool,
}

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
    pub fn resolve(settings: &AuthSettings, env: &Environment) -> Result<AuthContext> {
        let dirs = OpenClawDirs::from_env(env);
        let path = discover::resolve_auth_path(settings.auth_path.as_deref(), &dirs, env)?;
        Ok(AuthContext {
            explicit: settings.auth_path.is_some(),
            requested_profile: settings.profile.clone(),
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
            crate::foundation::paths::is_file(&json).then_some(json)
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
pub(crate) fn warn_auth_mode(auth: &Auth, progress: &Reporter) {
    if let Some(mode) = auth.auth_mode.as_deref().filter(|m| *m != "chatgpt") {
        progress.warn(&format!("warning: auth_mode is {mode}, expected chatgpt."));
    }
}

/// How [`manager::AuthManager::prepare`] treats the stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// Walk the discovered stores when the first one is irrecoverably stale.
    Allowed,
    /// Only the first store (`--smoke`).
    FirstStoreOnly,
}
