//! `codex-imagen --serve [ADDR]`: a local image service on the engine, speaking the OpenAI Images
//! API (`/v1/images/generations`, `/v1/images/edits`) and the seed's async job API (`/v1/jobs`,
//! callbacks), with every job persisted in `<data dir>/jobs.sqlite` (issue #13).
//!
//! One process, one [`Engine`] (so one refresh serves every job), `--jobs` workers pulling from a
//! bounded in-memory queue whose truth is the store. A sync request is a job like any other: it
//! is admitted, queued and run the same way, and its handler waits on the job's live channel.
//!
//! Start-up order: private umask (unless `--shared-files`) → data dir (0700) → its lock
//! (`serve.lock`: a second service on the same directory exits 2 naming the first one's pid) →
//! store (recovery: running → failed `service_restarted`, queued resumed, expired rows
//! removed, pending callbacks resumed) → bind → workers → serve (`connections.rs`). Shutdown
//! (SIGTERM/SIGINT): stop accepting and stop taking queued jobs, give running jobs
//! `--shutdown-grace`, then cancel them (failed `service_stopped`), and return so the process
//! exits 0. Queued jobs stay queued for the next start.

pub(crate) mod auth;
pub(crate) mod callbacks;
pub(crate) mod config;
pub(crate) mod connections;
pub(crate) mod destinations;
pub(crate) mod error;
pub(crate) mod files;
pub(crate) mod guard;
pub(crate) mod inputs;
pub(crate) mod lock;
pub(crate) mod openai;
pub(crate) mod queue;
pub(crate) mod routes;
pub(crate) mod service;
pub(crate) mod store;
pub(crate) mod stream;
pub(crate) mod workers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::engine::shared::Engine;
use crate::foundation::error::{Error, Result};
use crate::foundation::job::JobSpec;
use crate::foundation::sync::lock;
use crate::frontend::config::Config;
use crate::frontend::runtime;
use config::ServeConfig;
use queue::Queue;
use service::{Log, Service};
use store::Store;

/// Run the service until SIGTERM/SIGINT. `cli` is the CLI's resolved configuration (auth,
/// backend URL, job defaults).
pub(crate) fn run(config: ServeConfig, cli: &Config) -> Result<()> {
    if !config.shared_files {
        lock::private_umask();
    }
    for dir in [
        config.data_dir.clone(),
        config.data_dir.join("artifacts"),
        config.data_dir.join("inputs"),
    ] {
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::io(
                format!("Cannot create the data directory {}", dir.display()),
                e,
            )
        })?;
        if !config.shared_files {
            lock::narrow_dir(&dir);
        }
    }
    let _held = lock::DataLock::take(&config.data_dir)?;
    let store = Store::open(&config.data_dir.join("jobs.sqlite"))?;
    let settings = cli.engine_settings();
    let engine = Engine::new(settings)?;
    let runtime = runtime::runtime()?;
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
    let http = destinations::client(config.allow_private_callbacks)?;
    let guard = guard::Guard {
        bound,
        allow_hosts: Arc::new(config.allow_hosts.clone()),
        cors_origins: Arc::new(config.cors_origins.clone()),
        token: config.token.is_some(),
    };
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
        guard,
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
        workers.push(tokio::spawn(workers::supervised(service.clone())));
    }
    tokio::spawn(workers::expire_periodically(service.clone()));

    // Before `listening on`: a supervisor may send SIGTERM as soon as it reads that line.
    let shutdown = runtime::until_signal();
    let accepting = CancellationToken::new();
    let app = routes::router(service.clone());
    let server = tokio::spawn(connections::serve(
        listener,
        app,
        service.config.connections,
        log,
        accepting.clone(),
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
