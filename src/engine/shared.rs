//! The [`Engine`]: one per process, cheap to clone, shared by every job of every front-end. It
//! owns what jobs share: the HTTP client, the user agent, the environment snapshot taken once,
//! the auth manager (one refresh per profile for all jobs) and the live temporary files.

use std::sync::Arc;

use super::settings::{Delays, EngineSettings};
use crate::auth::manager::AuthManager;
use crate::auth::Auth;
use crate::backend::request::{self, RequestIdentity};
use crate::foundation::error::Result;
use crate::foundation::paths::Environment;

pub(crate) struct Inner {
    pub(crate) env: Environment,
    pub(crate) base_url: String,
    pub(crate) http: crate::foundation::http::HttpClient,
    pub(crate) user_agent: String,
    pub(crate) codex_version: String,
    pub(crate) auth: AuthManager,
    pub(crate) delays: Delays,
    /// Images being decoded to disk right now ([`crate::output::spill`]).
    pub(crate) temp_files: crate::output::spill::TempFiles,
    /// `--pool`: the accounts and their cooldowns; `None`: the one store of the auth settings.
    pub(crate) pool: Option<crate::auth::pool::Pool>,
    /// A usage limit seen without `--pool`: no request before then (Unix seconds), so a
    /// long-running front-end stops sending until the reset.
    pub(crate) paused: std::sync::Mutex<Option<i64>>,
    /// `<data dir>/rescued/`: where an image that could not be written is kept.
    pub(crate) rescue_dir: Option<std::path::PathBuf>,
    /// Debug builds only: the SSE event type that blocks the job's thread (proves the CLI's
    /// hard watchdog), from `CODEX_IMAGEN_TEST_BLOCK_ON_EVENT`.
    pub(crate) test_block_on_event: Option<String>,
    /// Every saved image is recorded here ([`crate::output::history`]); best effort.
    pub(crate) history: Option<crate::output::history::History>,
}

/// Runs jobs. Cheap to clone (`Arc` inside), `Send` and `Sync`: spawn jobs freely.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("base_url", &self.inner.base_url)
            .finish()
    }
}

impl Engine {
    pub fn new(settings: EngineSettings) -> Result<Engine> {
        let http = crate::foundation::http::HttpClient::default();
        let codex_version = request::codex_version(&settings.env);
        let user_agent = request::user_agent(&settings.env, &codex_version);
        let auth = AuthManager::new(
            settings.env.clone(),
            settings.auth,
            http.clone(),
            user_agent.clone(),
            settings.delays.auth(),
        );
        let pool = match &settings.pool {
            Some(pool) => Some(crate::auth::pool::Pool::load(pool, &settings.env)?),
            None => None,
        };
        let test_block_on_event = if cfg!(debug_assertions) {
            settings.env.var("CODEX_IMAGEN_TEST_BLOCK_ON_EVENT")
        } else {
            None
        };
        Ok(Engine {
            inner: Arc::new(Inner {
                base_url: settings.base_url.trim_end_matches('/').to_string(),
                env: settings.env,
                http,
                user_agent,
                codex_version,
                auth,
                delays: settings.delays,
                temp_files: Default::default(),
                pool,
                paused: std::sync::Mutex::new(None),
                rescue_dir: settings.data_dir.map(|dir| dir.join("rescued")),
                test_block_on_event,
                history: settings.history.map(crate::output::history::History::at),
            }),
        })
    }

    /// The environment snapshot this engine was made with.
    pub fn environment(&self) -> &Environment {
        &self.inner.env
    }

    /// The Codex backend base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn auth(&self) -> &AuthManager {
        &self.inner.auth
    }

    /// Remove every lock file a refresh holds right now, and every temporary file of an image
    /// still streaming in. For a forced exit (the CLI's watchdog), when the jobs' own guards
    /// will never run.
    pub fn release_locks(&self) {
        self.inner.auth.locks().release_all();
        self.inner.temp_files.remove_all();
    }

    pub(crate) fn identity_for(&self, auth: &Auth) -> RequestIdentity {
        RequestIdentity {
            access_token: auth.access_token.clone(),
            account_id: auth.account_id.clone(),
            user_agent: self.inner.user_agent.clone(),
            codex_version: self.inner.codex_version.clone(),
        }
    }
}
