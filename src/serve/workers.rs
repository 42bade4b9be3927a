//! The queue and the workers: `--jobs` tasks take job ids in order and run each on the one
//! engine.
//!
//! A job is one API request: its `n` images are `n` engine runs at once, each writing
//! `<k>.png` in the job's artifacts folder. A job stops on its own token (`DELETE`), on the
//! service's stop token (after the shutdown grace) or on its `timeout_sec`; dropping the runs'
//! futures drops their requests and releases their locks, and images saved before that stay
//! listed. Each image is recorded in the store the moment it lands (from the event sink), so a
//! crash mid-job still lists it.
//!
//! No input may panic a worker (inputs are judged before a job is accepted); should a job panic
//! anyway, the panic is caught at the job's edge: the job fails with `internal_error` and the
//! worker takes the next one, so the service keeps its `--jobs` workers.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;

use super::callbacks;
use super::files;
use super::openai::{self, ImageRequest};
use super::service::{Live, Service};
use super::store::{self, ImageRecord, JobError};
use crate::foundation::error::Error;
use crate::foundation::events::{Event, EventSink};
use crate::foundation::job::SavedImage;
use crate::foundation::job::{JobResult, JobSpec, Naming, Reference};
use crate::foundation::sync::lock;

/// A worker, started again should it ever stop on a panic outside a job (a job's own panic is
/// caught in [`worker`]), so the service always has its `--jobs` workers.
pub(crate) async fn supervised(service: Arc<Service>) {
    loop {
        match tokio::spawn(worker(service.clone())).await {
            Err(e) if e.is_panic() => {
                service
                    .log
                    .line("a worker stopped on an internal error; starting another");
            }
            _ => return,
        }
    }
}

pub(crate) async fn worker(service: Arc<Service>) {
    loop {
        if !wait_while_paused(&service).await {
            return;
        }
        let id = tokio::select! {
            biased;
            _ = service.draining.cancelled() => return,
            id = service.queue.next() => id,
        };
        if service.draining.is_cancelled() {
            // Taken just as the shutdown began: it stays queued for the next start.
            return;
        }
        if service.engine.paused_until().is_some() {
            // A pause began while this worker waited: the job keeps its place.
            service.queue.push_front(&id);
            continue;
        }
        let caught = std::panic::AssertUnwindSafe(run_job(&service, &id))
            .catch_unwind()
            .await;
        if caught.is_err() {
            let error = JobError {
                message:
                    "The job stopped on an internal error; images saved before that are listed."
                        .into(),
                kind: "server_error".into(),
                code: "internal_error".into(),
            };
            service.log.line(&format!(
                "job {id}: internal error (a worker panicked); the worker goes on"
            ));
            finish(&service, &id, store::FAILED, Some(&error), 0);
        }
    }
}

/// While the engine is paused (a usage limit: every pool account on cooldown, or the one
/// account's limit), send nothing: queued jobs stay queued and the workers wake at the reset
/// (looking again at least every 30 s, so a cooldown another process lifted is noticed).
/// False when the service began shutting down meanwhile.
async fn wait_while_paused(service: &Service) -> bool {
    let mut logged = false;
    while let Some(until) = service.engine.paused_until() {
        if !logged {
            service.log.line(&format!(
                "usage limit: sending nothing until {}",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
            logged = true;
        }
        let left = (until - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(30))
            + Duration::from_millis(50);
        tokio::select! {
            _ = service.draining.cancelled() => return false,
            _ = tokio::time::sleep(left) => {}
        }
    }
    true
}

/// Removes finished rows past `--job-ttl`, hourly.
pub(crate) async fn expire_periodically(service: Arc<Service>) {
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let cutoff =
            store::now_ms() - service.config.job_ttl.as_millis().min(i64::MAX as u128) as i64;
        match service.store.expire(cutoff) {
            Ok(0) => {}
            Ok(n) => service.log.line(&format!("{n} expired job rows removed")),
            Err(e) => service.log.line(&format!("expiry failed: {e}")),
        }
    }
}

/// What a job's runs report, shared by their sinks.
struct Progress {
    service: Arc<Service>,
    id: String,
    n: usize,
    attempts: AtomicU32,
    /// Images beyond the first of a run get indexes after `n`.
    extra: AtomicUsize,
    /// The job's image index of each file, so a final image replacing its preview (which the
    /// engine reports once, as the preview) keeps its index.
    indexes: Mutex<HashMap<PathBuf, usize>>,
    /// Indexes already announced as final to the live channel.
    announced: Mutex<HashSet<usize>>,
}

impl Progress {
    fn index_for(&self, path: &Path, run: usize, engine_index: usize) -> usize {
        let mut indexes = lock(&self.indexes);
        if let Some(index) = indexes.get(path) {
            return *index;
        }
        let index = if engine_index == 0 {
            run + 1
        } else {
            self.n + 1 + self.extra.fetch_add(1, Ordering::Relaxed)
        };
        indexes.insert(path.to_path_buf(), index);
        index
    }

    /// Record image `index` in the store (before anyone hears of it: a crash after this still
    /// lists it), then announce a final one to the live channel, once.
    fn record(&self, index: usize, image: &SavedImage, account: Option<&str>) {
        // The engine inspected what it saved; bytes it does not recognise are saved (and
        // named) as PNG.
        let record = ImageRecord {
            index,
            path: image.path.display().to_string(),
            bytes: image.bytes as u64,
            sha256: image.sha256.clone(),
            width: image.width,
            height: image.height,
            format: image.format.clone().unwrap_or_else(|| "png".to_string()),
            revised_prompt: image.revised_prompt.clone(),
            account: account.map(str::to_string),
        };
        if let Err(e) = self.service.store.add_image(&self.id, &record) {
            self.service.log.line(&format!("job {}: {e}", self.id));
            return;
        }
        if image.partial == Some(true) {
            // The engine reports a streamed preview as a saved partial file; a stream wants it
            // as base64, read back only when someone listens.
            if self.service.has_listeners(&self.id) {
                if let Ok(bytes) = std::fs::read(&image.path) {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                    self.service.publish(
                        &self.id,
                        Live::Partial {
                            image: index,
                            b64: Arc::new(b64),
                        },
                    );
                }
            }
        } else if lock(&self.announced).insert(index) {
            self.service.publish(&self.id, Live::Saved(record));
        }
    }

    /// A run's final images (bytes, hash and revised prompt as they ended up).
    fn record_final(&self, run: usize, result: &JobResult) {
        for (i, image) in result.images.iter().enumerate() {
            let index = self.index_for(&image.path, run, i);
            let mut image = image.clone();
            image.partial = None;
            self.record(index, &image, result.account.as_deref());
        }
    }
}

struct RunSink {
    progress: Arc<Progress>,
    /// This run's first image is image `run + 1`.
    run: usize,
}

impl EventSink for RunSink {
    fn event(&self, event: &Event) {
        let p = &self.progress;
        match event {
            Event::AttemptStarted { .. } => {
                p.attempts.fetch_add(1, Ordering::Relaxed);
            }
            Event::PartialImage { index, b64 } => {
                let image = if *index == 0 {
                    self.run + 1
                } else {
                    p.n + *index
                };
                p.service.publish(
                    &p.id,
                    Live::Partial {
                        image,
                        b64: b64.clone(),
                    },
                );
            }
            Event::ImageSaved { index, image } => {
                let index = p.index_for(&image.path, self.run, *index);
                p.record(index, image, None);
            }
            _ => {}
        }
    }
}

/// The engine job for run `run` of `request`. One run names its files `<k>.<ext>` by their
/// real format (`Naming::Index`); with `n` > 1 the runs share the folder, so run `r` writes
/// exactly `<r+1>.<requested ext>`.
fn job_spec(
    service: &Service,
    id: &str,
    request: &ImageRequest,
    run: usize,
    mask: Option<String>,
) -> JobSpec {
    let dir = files::artifacts_dir(&service.config.data_dir, id);
    let mut job = service.defaults.clone();
    job.prompt = request.prompt.clone();
    job.references = request
        .images
        .iter()
        .map(|input| Reference::classify(input.reference()))
        .collect();
    if request.n > 1 {
        let ext = match request.output_format.as_deref() {
            Some("jpeg") => "jpg",
            Some("webp") => "webp",
            _ => "png",
        };
        job.output = Some(dir.join(format!("{}.{ext}", run + 1)).display().to_string());
    } else {
        job.output = None;
        job.naming = Naming::Index;
    }
    job.out_dir = dir;
    if let Some(secs) = request.timeout_sec {
        // Float-to-integer casts saturate, so even an old row's huge value stays a number.
        job.timeout_ms = job.timeout_ms.min((secs * 1000.0).ceil() as u64).max(1);
    }
    openai::apply_controls(request, mask, &mut job);
    job
}

/// The job's mask as a file: the checked copy; a row from before inputs were judged may hold a
/// data URL, written to the inputs folder here, or a path.
fn mask_file(service: &Service, id: &str, request: &ImageRequest) -> Result<Option<String>, Error> {
    let Some(mask) = &request.mask else {
        return Ok(None);
    };
    if let Some(file) = &mask.file {
        return Ok(Some(file.clone()));
    }
    let Some(rest) = mask.source.strip_prefix("data:") else {
        return Ok(Some(mask.source.clone()));
    };
    let b64 = rest
        .split_once(";base64,")
        .map(|(_, data)| data)
        .ok_or_else(|| {
            Error::Input("mask: a data URL must be base64 (data:image/png;base64,...)".into())
        })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| Error::Input(format!("mask: the data URL is not valid base64: {e}")))?;
    let dir = files::inputs_dir(&service.config.data_dir, id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("Cannot keep the mask", e))?;
    let path = dir.join(format!("mask.{}", files::extension_for(&bytes)));
    std::fs::write(&path, bytes).map_err(|e| Error::io("Cannot keep the mask", e))?;
    Ok(Some(path.display().to_string()))
}

/// Debug builds only: a job whose prompt is `$CODEX_IMAGEN_TEST_PANIC_PROMPT` panics here, so a
/// test can see that a panicking job is failed and its worker goes on.
fn panic_for_tests(service: &Service, request: &ImageRequest) {
    if cfg!(debug_assertions)
        && service
            .config
            .panic_prompt
            .as_deref()
            .is_some_and(|p| p == request.prompt)
    {
        panic!("test hook: CODEX_IMAGEN_TEST_PANIC_PROMPT");
    }
}

enum Outcome {
    Finished(Vec<crate::foundation::error::Result<JobResult>>),
    Cancelled,
    Stopped,
    TimedOut(f64),
}

async fn run_job(service: &Arc<Service>, id: &str) {
    let row = match service.store.get(id) {
        Ok(Some(row)) => row,
        Ok(None) => return,
        Err(e) => {
            service.log.line(&format!("job {id}: {e}"));
            return;
        }
    };
    let request: ImageRequest = match serde_json::from_value(row.request.clone()) {
        Ok(r) => r,
        Err(e) => {
            let error = JobError {
                message: format!("The stored request cannot be read: {e}"),
                kind: "server_error".into(),
                code: "io".into(),
            };
            finish(service, id, store::FAILED, Some(&error), 0);
            return;
        }
    };
    let cancel = CancellationToken::new();
    // Registered before the state changes, so a DELETE in between finds the token.
    lock(&service.running).insert(id.to_string(), cancel.clone());
    match service.store.start(id, store::now_ms()) {
        Ok(true) => {}
        Ok(false) => {
            // Cancelled while queued.
            lock(&service.running).remove(id);
            return;
        }
        Err(e) => {
            lock(&service.running).remove(id);
            service.log.line(&format!("job {id}: {e}"));
            return;
        }
    }
    service.log.line(&format!("job {id} running"));
    panic_for_tests(service, &request);

    let mask = match mask_file(service, id, &request) {
        Ok(mask) => mask,
        Err(err) => {
            lock(&service.running).remove(id);
            finish(
                service,
                id,
                store::FAILED,
                Some(&openai::job_error(&err).1),
                0,
            );
            return;
        }
    };
    let n = request.n.max(1) as usize;
    let progress = Arc::new(Progress {
        service: service.clone(),
        id: id.to_string(),
        n,
        attempts: AtomicU32::new(0),
        extra: AtomicUsize::new(0),
        indexes: Mutex::new(HashMap::new()),
        announced: Mutex::new(HashSet::new()),
    });
    let runs = (0..n).map(|run| {
        let job = job_spec(service, id, &request, run, mask.clone());
        let sink = Arc::new(RunSink {
            progress: progress.clone(),
            run,
        });
        let engine = service.engine.clone();
        let token = cancel.child_token();
        let progress = progress.clone();
        async move {
            let result = engine.run(job, sink, token).await;
            if let Ok(result) = &result {
                progress.record_final(run, result);
            }
            result
        }
    });
    let all = futures::future::join_all(runs);
    let limit = request
        .timeout_sec
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok());
    let timeout = async {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    // Biased: a run that returns `Cancelled` because the token fired must not win over it.
    let outcome = tokio::select! {
        biased;
        _ = cancel.cancelled() => Outcome::Cancelled,
        _ = service.stop.cancelled() => Outcome::Stopped,
        _ = timeout => Outcome::TimedOut(request.timeout_sec.unwrap_or_default()),
        results = all => Outcome::Finished(results),
    };
    let attempts = progress.attempts.load(Ordering::Relaxed);
    if let Outcome::Finished(results) = &outcome {
        if requeue_for_pause(service, id, results) {
            return;
        }
    }
    let (status, error) = match outcome {
        Outcome::Finished(results) => match results.iter().find_map(|r| r.as_ref().err()) {
            None => (store::COMPLETED, None),
            Some(err) => (store::FAILED, Some(openai::job_error(err).1)),
        },
        Outcome::Cancelled => (
            store::CANCELLED,
            Some(JobError {
                message: "The job was cancelled; images saved before that are listed.".into(),
                kind: "cancelled".into(),
                code: "cancelled".into(),
            }),
        ),
        Outcome::Stopped => (
            store::FAILED,
            Some(JobError {
                message: "The service stopped before this job finished; images saved before that are listed.".into(),
                kind: "server_error".into(),
                code: "service_stopped".into(),
            }),
        ),
        Outcome::TimedOut(secs) => (
            store::FAILED,
            Some(openai::job_error(&Error::Timeout(format!("The job did not finish within timeout_sec {secs}."))).1),
        ),
    };
    finish(service, id, status, error.as_ref(), attempts);
}

/// With `--pool`, a job whose every run ended on the usage limit of every account (and saved
/// nothing) goes back to the queue and waits for the reset like the jobs behind it. Without a
/// pool the job that met the limit fails as before; the ones behind it wait.
fn requeue_for_pause(
    service: &Arc<Service>,
    id: &str,
    results: &[crate::foundation::error::Result<JobResult>],
) -> bool {
    let all_limited = !results.is_empty()
        && results
            .iter()
            .all(|r| r.as_ref().err().is_some_and(|e| e.usage_limit().is_some()));
    if !service.engine.has_pool() || !all_limited {
        return false;
    }
    lock(&service.running).remove(id);
    match service.store.requeue(id) {
        Ok(true) => {
            service.queue.push_front(id);
            service.log.line(&format!(
                "job {id} queued again (every account at its usage limit)"
            ));
            true
        }
        _ => false,
    }
}

/// Commit the final state, then tell everyone: the log, waiters, the callback.
pub(crate) fn finish(
    service: &Arc<Service>,
    id: &str,
    status: &str,
    error: Option<&JobError>,
    attempts: u32,
) {
    match service
        .store
        .finish(id, status, error, attempts, store::now_ms())
    {
        Ok(true) => {
            let detail = error.map(|e| format!(" ({})", e.code)).unwrap_or_default();
            service.log.line(&format!("job {id} {status}{detail}"));
        }
        Ok(false) => {}
        Err(e) => service.log.line(&format!("job {id}: {e}")),
    }
    lock(&service.running).remove(id);
    service.close_live(id);
    callbacks::on_finished(service, id);
}

/// `DELETE /v1/jobs/{id}`: a queued job is cancelled at once; a running one is stopped and its
/// worker records the cancellation. False when the job is already finished.
pub(crate) fn cancel(service: &Arc<Service>, id: &str) -> bool {
    if let Some(token) = lock(&service.running).get(id) {
        token.cancel();
        return true;
    }
    if service.queue.remove(id) {
        let error = JobError {
            message: "The job was cancelled before it started.".into(),
            kind: "cancelled".into(),
            code: "cancelled".into(),
        };
        finish(service, id, store::CANCELLED, Some(&error), 0);
        return true;
    }
    false
}
