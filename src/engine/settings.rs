//! What an [`super::shared::Engine`] is made from: the environment snapshot, which credentials,
//! the backend URL, and the delays between tries.

use std::time::Duration;

use crate::auth::lock::LockOptions;
use crate::auth::refresh::AuthDelays;
use crate::auth::AuthSettings;
use crate::foundation::paths::Environment;

pub const DEFAULT_BASE_URL: &str = "https://chatgpt.com/backend-api/codex";
pub const DEFAULT_REFRESH_URL: &str = "https://auth.openai.com/oauth/token";

/// How long the engine waits between tries. The defaults are the SPEC's; tests shorten them so
/// the suite does not sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delays {
    /// The first retry's base delay (doubled for each further retry, ±10 % jitter).
    pub retry_base_ms: u64,
    /// Scale for the lock backoff (100 ms … 10 s by default): both bounds are multiplied by
    /// `lock_scale_percent / 100`.
    pub lock_scale_percent: u64,
    /// How often a pending OpenClaw refresh fence is looked at again.
    pub fence_poll_ms: u64,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            retry_base_ms: 200,
            lock_scale_percent: 100,
            fence_poll_ms: 250,
        }
    }
}

impl Delays {
    pub(crate) fn auth(self) -> AuthDelays {
        let scale = |o: LockOptions| LockOptions {
            min_delay_ms: (o.min_delay_ms * self.lock_scale_percent / 100).max(1),
            max_delay_ms: (o.max_delay_ms * self.lock_scale_percent / 100).max(1),
            ..o
        };
        let defaults = AuthDelays::default();
        AuthDelays {
            store_lock: scale(defaults.store_lock),
            refresh_lock: scale(defaults.refresh_lock),
            fence_poll: Duration::from_millis(self.fence_poll_ms),
        }
    }
}

/// Everything an engine is made from.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// The environment snapshot (variables, home, base directory), taken once.
    pub env: Environment,
    pub auth: AuthSettings,
    /// The Codex backend base URL, without a trailing `/`.
    pub base_url: String,
    pub delays: Delays,
    /// Where every saved image is recorded (`<data dir>/history.sqlite`); `None`: nowhere.
    pub history: Option<std::path::PathBuf>,
    /// `--pool`: many accounts (`auth/pool.rs`); `None`: the one store of `auth`.
    pub pool: Option<crate::auth::pool::PoolSettings>,
    /// The data directory (`--data-dir`): an image that cannot be written where it should go
    /// after it arrived is kept in its `rescued/`. `None`: such an image is lost and the
    /// write's error is the job's.
    pub data_dir: Option<std::path::PathBuf>,
}

impl EngineSettings {
    /// The defaults for this environment: discovered auth, refresh on, the ChatGPT backend.
    pub fn new(env: Environment) -> Self {
        EngineSettings {
            env,
            auth: AuthSettings {
                auth_path: None,
                profile: None,
                refresh_url: DEFAULT_REFRESH_URL.to_string(),
                refresh: true,
            },
            base_url: DEFAULT_BASE_URL.to_string(),
            delays: Delays::default(),
            history: None,
            pool: None,
            data_dir: None,
        }
    }
}
