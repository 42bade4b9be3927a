//! Credentials: which store is used ([`discover`]), how it is read ([`store`]), which OpenClaw
//! profile is picked ([`select`]), and [`prepare`], the one place that turns the command line into
//! usable credentials for a run.

pub mod discover;
pub mod select;
pub mod store;
pub(crate) mod token;

use std::path::PathBuf;

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
    /// stores and to the main agent's own store (SPEC §5).
    pub fn select_options(&self, store: &std::path::Path) -> SelectOptions {
        let use_config = !self.explicit || store == self.dirs.main_auth_profiles();
        SelectOptions {
            requested: self.requested_profile.clone(),
            config_path: use_config.then(|| self.dirs.config_path.clone()),
        }
    }

    pub fn read(&self, store: &std::path::Path) -> Result<Auth> {
        store::read_auth(store, &self.select_options(store))
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

/// Read the credentials a generation will use.
pub async fn prepare(
    ctx: &AuthContext,
    _config: &Config,
    progress: &Progress,
) -> Result<PreparedAuth> {
    let auth = ctx.read(&ctx.path)?;
    warn_auth_mode(&auth, progress);
    Ok(PreparedAuth {
        auth,
        refresh: None,
    })
}
