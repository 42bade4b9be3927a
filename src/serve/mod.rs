//! `codex-imagen --serve [ADDR]`: a local image service on the engine, speaking the OpenAI Images
//! API (`/v1/images/generations`, `/v1/images/edits`) and the seed's async job API (`/v1/jobs`,
//! callbacks), with every job persisted in `<data dir>/jobs.sqlite` (issue #13).
//!
//! One process, one [`Engine`] (so one refresh serves every job), `--jobs` workers pulling from a
//! bounded in-memory queue whose truth is the store. A sync request is a job like any other: it
//! is admitted, queued and run the same way, and its handler waits on the job's live channel.
//!
//! Start-up order: data dir → store (recovery: running → failed `service_restarted`, queued
//! resumed, expired rows removed, pending callbacks resumed) → bind → workers → serve. Shutdown
//! (SIGTERM/SIGINT): stop accepting and stop taking queued jobs, give running jobs
//! `--shutdown-grace`, then cancel them (failed `service_stopped`), and return so the process
//! exits 0. Queued jobs stay queued for the next start.

pub(crate) mod auth;
pub(crate) mod callbacks;
pub(crate) mod config;
pub(crate) mod files;
pub(crate) mod openai;
pub(crate) mod routes;
pub(crate) mod store;
pub(crate) mod stream;
pub(crate) mod workers;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::cli::config::Config;
use crate::foundation::job::JobSpec;
use crate::engine::settings::EngineSettings;
use crate::engine::shared::Engine;
use crate::foundation::error::{Error, Result};
use config::ServeConfig;
use openai::{ApiError, Parsed};
use store::{ImageRecord, Store};
use workers::Queue;

/// What a running job tells the handlers waiting on it.
#[derive(Debug, Clone)]
pub(crate) enum Live {
    /// A streamed preview of image `image` (1-based).
    Partial { image: usize, b64: Arc<String> },
    /// Image saved (and recorded in the store).
    Saved(ImageRecord),
    /// The job reached a final state (committed to the store).
    Done,
}

/// stderr lines, one per request and per job state change; `--quiet` silences them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Log {
    quiet: bool,
}

impl Log {
    pub(crate) fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let stderr = std::io::stderr();
        let mut out = stderr.lock();
        let _ = writeln!(out, "codex-imagen serve: {text}");
    }
}

/// Everything the handlers and workers share.
pub(crate) struct Service {
    pub engine: Engine,
    pub store: Store,
    pub config: ServeConfig,
    /// The CLI's job settings (retries, per-attempt timeout, backend, model): every job starts
    /// from them.
    pub defaults: JobSpec,
    pub queue: Queue,
    pub live: Mutex<HashMap<String, broadcast::Sender<Live>>>,
    pub running: Mutex<HashMap<String, CancellationToken>>,
    /// Fires when the workers must take no further queued job.
    pub draining: CancellationToken,
    /// Fires when running jobs must stop (after the shutdown grace).
    pub stop: CancellationToken,
    pub log: Log,
    /// For callbacks: its own client, so a slow receiver never shares a pool with the backend.
    pub http: reqwest::Client,
    health: Mutex<Option<(Instant, std::result::Result<Value, String>)>>,
    /// `http://<bound address>`, for image URLs in callbacks (which have no Host header).
    pub public_base: String,
}

impl Service {
    pub(crate) fn new_id() -> String {
        format!("img_{}", uuid::Uuid::new_v4().simple())
    }

    /// Record a new job (queued) and put it on the queue; the receiver sees its progress.
    /// Refused with 503 when more than `--queue` jobs wait, or while shutting down.
    pub(crate) fn admit(
        &self,
        id: &str,
        parsed: &Parsed,
    ) -> std::result::Result<(i64, broadcast::Receiver<Live>), ApiError> {
        if self.draining.is_cancelled() {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "The service is shutting down.",
            )
            .code("service_stopping"));
        }
        let request = serde_json::to_value(&parsed.request).unwrap_or(Value::Null);
        let (sender, receiver) = broadcast::channel(32);
        let created = store::now_ms();
        let admitted = self.queue.push_with(self.config.queue, id, || {
            self.store
                .insert(id, created, &request, parsed.callback.as_ref())
                .map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        e.to_string(),
                    )
                })?;
            lock(&self.live).insert(id.to_string(), sender);
            Ok(())
        });
        match admitted {
            Ok(true) => {
                self.log.line(&format!("job {id} queued"));
                Ok((created, receiver))
            }
            Ok(false) => Err(ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    format!(
                        "The queue is full ({} jobs waiting). Try again later.",
                        self.config.queue
                    ),
                )
                .code("queue_full")
            }),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn publish(&self, id: &str, event: Live) {
        if let Some(sender) = lock(&self.live).get(id) {
            let _ = sender.send(event);
        }
    }

    pub(crate) fn has_listeners(&self, id: &str) -> bool {
        lock(&self.live)
            .get(id)
            .is_some_and(|sender| sender.receiver_count() > 0)
    }

    /// The job is final: tell its waiters and forget its channel.
    pub(crate) fn close_live(&self, id: &str) {
        if let Some(sender) = lock(&self.live).remove(id) {
            let _ = sender.send(Live::Done);
        }
    }

    /// The auth part of `/health`, read at most once a second (it reads the credential store).
    pub(crate) async fn auth_health(&self) -> std::result::Result<Value, String> {
        if let Some((at, value)) = lock(&self.health).as_ref() {
            if at.elapsed() < Duration::from_secs(1) {
                return value.clone();
            }
        }
        let value = self
            .engine
            .auth_status(&self.defaults)
            .await
            .map_err(|e| e.to_string());
        *lock(&self.health) = Some((Instant::now(), value.clone()));
        value
    }
}

/// A poisoned lock only means a panicking thread held it; the data is still consistent for
/// these maps, so go on rather than take the service down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run the service until SIGTERM/SIGINT. `cli` is the CLI's resolved configuration (auth,
/// backend URL, job defaults).
pub(crate) fn run(config: ServeConfig, cli: &Config) -> Result<()> {
    std::fs::create_dir_all(config.data_dir.join("artifacts")).map_err(|e| {
        Error::io(
            format!(
                "Cannot create the data directory {}",
                config.data_dir.display()
            ),
            e,
        )
    })?;
    let store = Store::open(&config.data_dir.join("jobs.sqlite"))?;
    let settings = EngineSettings {
        env: cli.env.clone(),
        auth: cli.auth.clone(),
        base_url: cli.base_url.clone(),
        ..EngineSettings::new(cli.env.clone())
    };
    let engine = Engine::new(settings)?;
    let runtime = crate::cli::runtime()?;
    let result = runtime.block_on(serve(config, store, engine, cli.job.clone()));
    // Pending callback deliveries and idle connections must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn serve(config: ServeConfig, store: Store, engine: Engine, defaults: JobSpec) -> Result<()> {
    let log = Log {
        quiet: config.quiet,
    };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| Error::Io(format!("Cannot listen on {}: {e}", config.addr)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Io(format!("Cannot read the bound address: {e}")))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Io(format!("Cannot create the HTTP client: {e}")))?;
    let now = store::now_ms();
    let cutoff = now - config.job_ttl.as_millis().min(i64::MAX as u128) as i64;
    let recovered = store.recover(now, cutoff)?;
    let service = Arc::new(Service {
        engine,
        store,
        defaults,
        queue: Queue::default(),
        live: Mutex::new(HashMap::new()),
        running: Mutex::new(HashMap::new()),
        draining: CancellationToken::new(),
        stop: CancellationToken::new(),
        log,
        http,
        health: Mutex::new(None),
        public_base: format!("http://{bound}"),
        config,
    });
    for id in &recovered.restarted {
        log.line(&format!("job {id} failed (service_restarted)"));
        callbacks::on_finished(&service, id);
    }
    for id in &recovered.queued {
        service.queue.push_recovered(id);
    }
    for id in &recovered.pending_deliveries {
        callbacks::spawn_delivery(&service, id);
    }
    if recovered.expired > 0 {
        log.line(&format!("{} expired job rows removed", recovered.expired));
    }
    if !recovered.queued.is_empty() {
        log.line(&format!("{} queued jobs resumed", recovered.queued.len()));
    }
    let mut workers = Vec::new();
    for _ in 0..service.config.jobs {
        workers.push(tokio::spawn(workers::worker(service.clone())));
    }
    tokio::spawn(workers::expire_periodically(service.clone()));

    // Before `listening on`: a supervisor may send SIGTERM as soon as it reads that line.
    let shutdown = crate::cli::until_signal();
    let accepting = CancellationToken::new();
    let app = routes::router(service.clone());
    let server = tokio::spawn(std::future::IntoFuture::into_future(
        axum::serve(listener, app).with_graceful_shutdown(accepting.clone().cancelled_owned()),
    ));
    log.line(&format!(
        "listening on http://{bound} (workers {}, queue {}, data {}, token {})",
        service.config.jobs,
        service.config.queue,
        service.config.data_dir.display(),
        if service.config.token.is_some() {
            "required"
        } else {
            "not required"
        }
    ));

    let (_, name) = shutdown.await;
    let grace = service.config.shutdown_grace;
    log.line(&format!(
        "{name}: no new requests; running jobs get {}s",
        grace.as_secs_f64()
    ));
    accepting.cancel();
    service.draining.cancel();
    let idle = wait_idle(&service, grace).await;
    if !idle {
        service.stop.cancel();
        wait_idle(&service, Duration::from_secs(10)).await;
    }
    for worker in workers {
        worker.abort();
    }
    // Handlers still waiting on queued jobs would hold the graceful shutdown forever.
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    log.line("stopped");
    Ok(())
}

/// True when no job is running, waiting at most `limit`.
async fn wait_idle(service: &Service, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if lock(&service.running).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
