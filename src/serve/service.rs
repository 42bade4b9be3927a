//! The service's shared state: the engine, the store, the queue, the live channels of running
//! jobs and their cancel tokens, the log, and the admission of a new job.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::config::ServeConfig;
use super::guard::Guard;
use super::openai::{ApiError, Parsed};
use super::queue::Queue;
use super::store::{self, ImageRecord, Store};
use crate::engine::shared::Engine;
use crate::foundation::job::JobSpec;
use crate::foundation::sync::lock;

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
    pub(crate) quiet: bool,
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
    pub(crate) health: Mutex<Option<(Instant, std::result::Result<Value, String>)>>,
    /// `http://<bound address>`, for image URLs in callbacks (which have no Host header).
    pub public_base: String,
    /// Host, Origin and file URLs (`guard.rs`).
    pub guard: Guard,
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
