//! The engine: one [`Engine`] per process runs any number of jobs at once, for every front-end
//! (the one-shot CLI, batch, the HTTP service, the MCP server).
//!
//! It owns what jobs share: the HTTP client, the user agent, the environment snapshot taken
//! once, and the auth manager (one refresh per profile for all jobs). A job is an owned
//! [`JobSpec`]; it reports through an [`EventSink`] and stops when its [`CancellationToken`]
//! fires. Nothing here touches process state: no working-directory change, no exit, no
//! statics, no environment reads after [`Engine::new`].
//!
//! A job's order (SPEC §14): prepare auth → load references → attempts with retries
//! ([`generation`], [`retry`]) → on a 401, one refresh ("if the token is still the one I used")
//! and one more round.

pub(crate) mod generation;
pub(crate) mod retry;
pub(crate) mod status;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::lock::LockOptions;
use crate::auth::manager::AuthManager;
use crate::auth::refresh::{AuthDelays, REASON_BACKEND_401};
use crate::auth::{Auth, AuthContext, AuthSettings, Fallback, PreparedAuth, RefreshOutcome};
use crate::backend::references;
use crate::backend::request::{self, RequestIdentity};
use crate::foundation::error::{Error, Result};
use crate::foundation::paths::Environment;
use crate::foundation::events::{EventSink, Reporter};

use generation::Generation;
use crate::foundation::job::{JobResult, JobSpec, RefreshReport};

pub const DEFAULT_BASE_URL: &str = "https://chatgpt.com/backend-api/codex";
pub const DEFAULT_REFRESH_URL: &str = "https://auth.openai.com/oauth/token";

/// How long `--usage` waits for the backend's answer.
const USAGE_TIMEOUT: Duration = Duration::from_secs(60);

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
    fn auth(self) -> AuthDelays {
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
        }
    }
}

pub(crate) struct Inner {
    pub(crate) env: Environment,
    pub(crate) base_url: String,
    pub(crate) http: crate::backend::HttpClient,
    pub(crate) user_agent: String,
    pub(crate) codex_version: String,
    pub(crate) auth: AuthManager,
    pub(crate) delays: Delays,
    /// Images being decoded to disk right now ([`crate::output::spill`]).
    pub(crate) temp_files: crate::output::spill::TempFiles,
    /// Debug builds only: the SSE event type that blocks the job's thread (proves the CLI's
    /// hard watchdog), from `CODEX_IMAGEN_TEST_BLOCK_ON_EVENT`.
    pub(crate) test_block_on_event: Option<String>,
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
        let http = crate::backend::HttpClient::default();
        let codex_version = request::codex_version(&settings.env);
        let user_agent = request::user_agent(&settings.env, &codex_version);
        let auth = AuthManager::new(
            settings.env.clone(),
            settings.auth,
            http.clone(),
            user_agent.clone(),
            settings.delays.auth(),
        );
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
                test_block_on_event,
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

    /// Run one job to its end. When `cancel` fires, the job stops at once (its request is
    /// dropped, its locks released) and returns [`Error::Cancelled`]; images saved before that
    /// stay on disk and were reported as `ImageSaved` events.
    pub async fn run(
        &self,
        job: JobSpec,
        sink: Arc<dyn EventSink>,
        cancel: CancellationToken,
    ) -> Result<JobResult> {
        let progress = Reporter::new(sink);
        let work = async {
            let ctx = self.auth().context()?;
            let prepared = self
                .auth()
                .prepare(&ctx, job.force_refresh, Fallback::Allowed, &progress)
                .await?;
            self.run_prepared(&ctx, prepared, &job, &progress).await
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Error::Cancelled("Cancelled before the job finished.".into())),
            result = work => result,
        }
    }

    /// A job whose credentials are ready (the CLI prepares them before it reads the prompt).
    pub(crate) async fn run_prepared(
        &self,
        ctx: &AuthContext,
        prepared: PreparedAuth,
        job: &JobSpec,
        progress: &Reporter,
    ) -> Result<JobResult> {
        job.require_prompt()?;
        let PreparedAuth {
            mut auth,
            mut refresh,
        } = prepared;
        let loaded = crate::foundation::blocking::run(|| {
            references::load_all(&job.references, &self.inner.env, &job.base_dir, progress)
        })?;
        let mask = match job.mask.as_deref() {
            Some(mask) => Some(crate::foundation::blocking::run(|| {
                load_mask(mask, job, &self.inner.env)
            })?),
            None => None,
        };
        let mut generation =
            Generation::new(self, ctx, job, &auth, &loaded, mask, progress.clone());
        let mut result = match generation.run_with_retries().await {
            Err(Error::Http { status: 401, .. }) if self.auth().settings().refresh => {
                // The backend rejected a token we thought valid: refresh it unless another job
                // already did, then one more round.
                let used = generation.auth.clone();
                let (fresh, outcome) = self
                    .auth()
                    .refresh(ctx, &used, REASON_BACKEND_401, progress)
                    .await?;
                auth = fresh;
                refresh = Some(outcome);
                generation.auth = auth.clone();
                generation.run_with_retries().await?
            }
            other => other?,
        };
        result.refresh = refresh.map(|outcome| refresh_report(&outcome, &auth));
        crate::output::provenance::apply(job, &mut result, &loaded, progress)?;
        if let Some(warning) = generation::unmet_request(&job.controls, &result.images) {
            progress.warn(&warning);
        }
        Ok(result)
    }

    /// The `--smoke` report: which store and profile `job` would use and the state of its
    /// credentials, as a JSON object. Reads the first store only; no network, never a token.
    pub async fn auth_status(&self, job: &JobSpec) -> Result<serde_json::Value> {
        let ctx = self.auth().context()?;
        let auth = crate::foundation::blocking::run(|| ctx.read(&ctx.path))?;
        Ok(self.smoke_report(&auth, job))
    }

    /// The `--usage` report: the plan and its quota windows, as a JSON object (`plan_type`,
    /// `allowed`, `limit_reached`, `primary`, `secondary`). Costs no image quota.
    pub async fn usage(&self, sink: Arc<dyn EventSink>) -> Result<serde_json::Value> {
        let progress = Reporter::new(sink);
        Ok(crate::backend::usage::to_json(
            &self.usage_report(&progress).await?,
        ))
    }

    /// `GET <base without /codex>/wham/usage` with fresh credentials; a 401 refreshes once.
    pub(crate) async fn usage_report(
        &self,
        progress: &Reporter,
    ) -> Result<crate::backend::usage::Usage> {
        use crate::backend::usage;
        let ctx = self.auth().context()?;
        let prepared = self
            .auth()
            .prepare(&ctx, false, Fallback::Allowed, progress)
            .await?;
        let url = usage::usage_url(&self.inner.base_url);
        let mut auth = prepared.auth;
        let mut refreshed = false;
        loop {
            progress.info(&format!("codex-imagen: GET {url}"));
            let headers = request::base_headers(&self.identity_for(&auth), "application/json");
            let response = self
                .inner
                .http
                .get()?
                .get(&url)
                .headers(headers)
                // A quota look-up is one small JSON answer: it must not hang a script.
                .timeout(USAGE_TIMEOUT)
                .send()
                .await
                .map_err(|e| match e.is_timeout() {
                    true => Error::Timeout(format!(
                        "{url} did not answer within {} s.",
                        USAGE_TIMEOUT.as_secs()
                    )),
                    false => Error::Transport(crate::backend::transport_message(&e)),
                })?;
            let status = response.status().as_u16();
            if status == 401 && !refreshed && self.auth().settings().refresh {
                let (fresh, _) = self
                    .auth()
                    .refresh(&ctx, &auth, REASON_BACKEND_401, progress)
                    .await?;
                auth = fresh;
                refreshed = true;
                continue;
            }
            if !response.status().is_success() {
                return Err(crate::backend::http_error(response).await);
            }
            let body = response
                .text()
                .await
                .map_err(|e| Error::Transport(crate::backend::transport_message(&e)))?;
            return usage::parse(&body, chrono::Utc::now())
                .map_err(|e| Error::BadResponse(format!("{e} (from {url})")));
        }
    }

    pub(crate) fn smoke_report(&self, auth: &Auth, job: &JobSpec) -> serde_json::Value {
        status::smoke_report(&self.inner.base_url, &self.inner.user_agent, auth, job)
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

/// The mask as a `data:` URL. It is read here, after auth, like the references (SPEC §14); a
/// file that cannot be used is an input error naming it.
fn load_mask(mask: &str, job: &JobSpec, env: &Environment) -> Result<String> {
    if job.references.is_empty() {
        // Front-ends other than the CLI reach this without its validation.
        return Err(Error::Usage(
            "--mask needs at least one reference image (--image or --image-url)".into(),
        ));
    }
    let path = env.clone().with_cwd(job.base_dir.clone()).resolve(mask);
    let bytes = std::fs::read(&path)
        .map_err(|e| Error::Input(format!("Cannot read --mask {}: {e}", path.display())))?;
    crate::backend::mask::mask_data_url(&bytes, &path.display().to_string())
        .map_err(|e| Error::Input(e.to_string()))
}

pub(crate) fn refresh_report(outcome: &RefreshOutcome, auth: &Auth) -> RefreshReport {
    RefreshReport {
        refreshed: outcome.refreshed,
        skipped: outcome.skipped.clone(),
        last_refresh: auth.last_refresh.clone(),
        access_token_expires_in_seconds: auth.reported_seconds_left(),
    }
}
