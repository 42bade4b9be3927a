//! The scheduler: runs validated jobs on the shared Engine, at most `--jobs` at once, and turns
//! each ending into a results line the moment it happens.
//!
//! Design: one loop owns all state (counts, the queue position, why we stopped) and waits on
//! two things only: a job ending (a `JoinSet`) and a shutdown request. New jobs are started
//! only at the top of the loop, and only while nothing has asked us to stop, so the bound and
//! the "no new job after the usage limit / first signal" rules are one `while` condition.
//! Running jobs are never aborted from here: the second signal cancels their tokens (children of
//! one root token) and we still wait for the engine to return, so images it already saved are
//! recorded. Each job's sink remembers attempts and saved images, because a failed or cancelled
//! run returns only an Error. Results are written from the loop through `spawn_blocking`
//! (append + fsync), in ending order; jobs never started are written last as `not_started`.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    display::{Counts, Display},
    input::Job,
    results::{ErrorRecord, ImageRecord, ResultRecord, ResultsFile, Status},
    signals::{ShutdownSignal, ShutdownSignals},
};
use crate::engine::shared::Engine;
use crate::foundation::error::{Error, ErrorKind};
use crate::foundation::events::{Event, EventSink};
use crate::foundation::job::JobResult;
use crate::foundation::job::SavedImage;

/// Per-job event sink: forwards to the display under the job's id and keeps what a failed run's
/// Error cannot carry.
struct JobSink {
    id: String,
    display: Arc<Display>,
    attempts: AtomicU32,
    saved: Mutex<Vec<SavedImage>>,
}

impl EventSink for JobSink {
    fn event(&self, event: &Event) {
        match event {
            Event::Stage(stage) => self.display.job_stage(&self.id, stage.as_str()),
            Event::AttemptStarted { attempt, .. } => {
                self.attempts.fetch_max(*attempt, Ordering::Relaxed);
            }
            Event::RetryScheduled {
                retry,
                retries,
                reason,
                ..
            } => self.display.job_stage(
                &self.id,
                &format!("waiting to retry {retry}/{retries}: {reason}"),
            ),
            Event::ImageSaved { index, image } => {
                if let Ok(mut saved) = self.saved.lock() {
                    saved.push(image.clone());
                }
                self.display.image_saved(&self.id, *index, &image.path);
            }
            Event::Warning(text) => self.display.warning(&self.id, text),
            _ => {}
        }
    }
}

struct Ended {
    index: usize,
    started_at: DateTime<Utc>,
    seconds: f64,
    result: Result<JobResult, Error>,
    sink: Arc<JobSink>,
}

/// What the run did, for the summary and the exit code.
#[derive(Debug, Default)]
pub(crate) struct RunReport {
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) not_started: usize,
    pub(crate) images: Vec<String>,
    /// Some when a job hit the usage limit; inside, the latest reset time any job reported.
    pub(crate) usage_limit: Option<Option<DateTime<Utc>>>,
    pub(crate) signal: Option<ShutdownSignal>,
    /// Results lines that could not be written (the run goes on; the caller reports it).
    pub(crate) write_errors: Vec<String>,
    /// Every job that ran, by its index in the job list: what the engine returned, or the
    /// error recorded (in ending order).
    pub(crate) finished: Vec<(usize, Result<JobResult, ErrorRecord>)>,
}

pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The sentence telling when to rerun after the usage limit.
pub(crate) fn rerun_advice(resets_at: Option<DateTime<Utc>>) -> String {
    match resets_at {
        Some(t) => format!(
            "the usage limit resets at {}; rerun the same command after then to continue",
            iso(t)
        ),
        None => "rerun the same command once the usage limit has reset to continue".to_string(),
    }
}

pub(crate) struct Scheduler {
    pub(crate) engine: Engine,
    pub(crate) display: Arc<Display>,
    /// None for `--count` without `--batch`: nothing is recorded.
    pub(crate) results: Option<Arc<Mutex<ResultsFile>>>,
    pub(crate) max_jobs: usize,
    /// Jobs already counted as done (skipped), so the progress line counts the whole batch.
    pub(crate) done_before: usize,
    pub(crate) total: usize,
}

impl Scheduler {
    pub(crate) async fn run(self, jobs: Vec<Job>, mut signals: ShutdownSignals) -> RunReport {
        let jobs: Vec<Arc<Job>> = jobs.into_iter().map(Arc::new).collect();
        let mut report = RunReport::default();
        let abort_hook = if cfg!(debug_assertions) {
            self.engine
                .environment()
                .var("CODEX_IMAGEN_TEST_KILL_BEFORE_RECORD")
        } else {
            None
        };
        let root = CancellationToken::new();
        let mut set: JoinSet<Ended> = JoinSet::new();
        let mut task_job: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut next = 0usize;
        let mut signals_open = true;
        let mut cancelling = false;
        let mut counts = Counts {
            done: self.done_before,
            total: self.total,
            ..Counts::default()
        };

        loop {
            while report.usage_limit.is_none()
                && report.signal.is_none()
                && set.len() < self.max_jobs
                && next < jobs.len()
            {
                let index = next;
                next += 1;
                let job = jobs[index].clone();
                let sink = Arc::new(JobSink {
                    id: job.id.clone(),
                    display: self.display.clone(),
                    attempts: AtomicU32::new(0),
                    saved: Mutex::new(Vec::new()),
                });
                let engine = self.engine.clone();
                let token = root.child_token();
                counts.running = set.len() + 1;
                self.display.job_started(&job.id, counts);
                let handle = set.spawn(async move {
                    let started_at = Utc::now();
                    let clock = Instant::now();
                    let result = engine.run(job.spec.clone(), sink.clone(), token).await;
                    Ended {
                        index,
                        started_at,
                        seconds: clock.elapsed().as_secs_f64(),
                        result,
                        sink,
                    }
                });
                task_job.insert(handle.id(), index);
            }
            if set.is_empty() {
                break;
            }
            tokio::select! {
                joined = set.join_next_with_id() => {
                    let record = match joined {
                        Some(Ok((_, ended))) => {
                            let job = &jobs[ended.index];
                            self.record_ended(job, ended, cancelling, &mut report)
                        }
                        Some(Err(e)) => {
                            let Some(index) = task_job.get(&e.id()).copied() else { continue };
                            report.failed += 1;
                            failed_record(&jobs[index], None, 0, Vec::new(), ErrorRecord {
                                message: format!("internal error: the job's task ended: {e}"),
                                kind: "internal".into(),
                                exit_code: 1,
                            })
                        }
                        None => break,
                    };
                    counts.done += 1;
                    counts.failed = report.failed;
                    counts.running = set.len();
                    let failure = record.error.as_ref().map(|e| e.message.clone());
                    if abort_hook.as_deref() == Some(record.id.as_str()) {
                        kill_before_recording();
                    }
                    self.write(&record, &mut report).await;
                    self.display.job_finished(&record.id, failure.as_deref(), counts);
                }
                sig = signals.recv(), if signals_open => match sig {
                    None => signals_open = false,
                    Some(sig) if report.signal.is_none() => {
                        report.signal = Some(sig);
                        self.display.important(&format!(
                            "codex-imagen: {}: starting no new jobs; waiting for {} running \
                             (send it again to cancel them)",
                            sig.name(),
                            set.len()
                        ));
                    }
                    Some(sig) => {
                        if !cancelling {
                            cancelling = true;
                            root.cancel();
                            self.display.important(&format!(
                                "codex-imagen: {} again: cancelling {} running jobs",
                                sig.name(),
                                set.len()
                            ));
                        }
                    }
                },
            }
        }

        let error = not_started_error(&report);
        for job in &jobs[next..] {
            let record = ResultRecord {
                id: job.id.clone(),
                line: job.line,
                status: Status::NotStarted,
                prompt: job.spec.prompt.clone(),
                images: Vec::new(),
                error: Some(error.clone()),
                attempts: 0,
                started_at: None,
                finished_at: None,
                seconds: None,
            };
            report.not_started += 1;
            self.write(&record, &mut report).await;
        }
        report
    }

    fn record_ended(
        &self,
        job: &Job,
        ended: Ended,
        cancelling: bool,
        report: &mut RunReport,
    ) -> ResultRecord {
        let finished_at = Utc::now();
        let attempts = ended.sink.attempts.load(Ordering::Relaxed).max(1);
        match ended.result {
            Ok(result) => {
                report.succeeded += 1;
                report
                    .images
                    .extend(result.images.iter().map(|i| i.path.display().to_string()));
                let record = ResultRecord {
                    id: job.id.clone(),
                    line: job.line,
                    status: Status::Succeeded,
                    prompt: job.spec.prompt.clone(),
                    images: result
                        .images
                        .iter()
                        .map(|image| ImageRecord {
                            account: result.account.clone(),
                            route: result.route.clone(),
                            ..ImageRecord::from(image)
                        })
                        .collect(),
                    error: None,
                    attempts: result.retry_attempts + 1,
                    started_at: Some(iso(ended.started_at)),
                    finished_at: Some(iso(finished_at)),
                    seconds: Some(round_ms(ended.seconds)),
                };
                report.finished.push((ended.index, Ok(result)));
                record
            }
            Err(err) => {
                report.failed += 1;
                let saved: Vec<ImageRecord> = ended
                    .sink
                    .saved
                    .lock()
                    .map(|s| s.iter().map(ImageRecord::from).collect())
                    .unwrap_or_default();
                let error = if cancelling && err.kind() == ErrorKind::Cancelled {
                    ErrorRecord {
                        message: format!(
                            "interrupted: cancelled by a second {}; images already saved were kept",
                            report.signal.map_or("signal", |s| s.name())
                        ),
                        kind: "interrupted".into(),
                        exit_code: report.signal.map_or(130, |s| s.exit_code()),
                    }
                } else {
                    if let Some(limit) = err.usage_limit() {
                        let latest = match (report.usage_limit.flatten(), limit.resets_at) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            (a, b) => a.or(b),
                        };
                        report.usage_limit = Some(latest);
                    }
                    ErrorRecord {
                        message: err.to_string(),
                        kind: kind_name(err.kind()),
                        exit_code: err.exit_code(),
                    }
                };
                report.finished.push((ended.index, Err(error.clone())));
                let mut record = failed_record(job, Some(ended.started_at), attempts, saved, error);
                record.finished_at = Some(iso(finished_at));
                record.seconds = Some(round_ms(ended.seconds));
                record
            }
        }
    }

    async fn write(&self, record: &ResultRecord, report: &mut RunReport) {
        let Some(results) = self.results.clone() else {
            return;
        };
        let line = record.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut file = results
                .lock()
                .map_err(|_| "results file lock poisoned".to_string())?;
            let path = file.path().display().to_string();
            file.append(&line)
                .map_err(|e| format!("cannot write {path}: {e}"))
        })
        .await;
        let message = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(message)) => message,
            Err(e) => format!("cannot write the results file: {e}"),
        };
        self.display
            .important(&format!("codex-imagen: [{}] {message}", record.id));
        report.write_errors.push(message);
    }
}

/// Test-only hook (debug builds): `CODEX_IMAGEN_TEST_KILL_BEFORE_RECORD=<job id>` kills the
/// process with SIGKILL once that job's images are saved and before its results line is
/// written, the moment a rerun must recover from without paying again.
fn kill_before_recording() {
    #[cfg(unix)]
    // SAFETY: sending a signal to this very process; nothing is borrowed.
    unsafe {
        libc::kill(std::process::id() as libc::pid_t, libc::SIGKILL);
    }
    std::process::abort();
}

fn failed_record(
    job: &Job,
    started_at: Option<DateTime<Utc>>,
    attempts: u32,
    images: Vec<ImageRecord>,
    error: ErrorRecord,
) -> ResultRecord {
    ResultRecord {
        id: job.id.clone(),
        line: job.line,
        status: Status::Failed,
        prompt: job.spec.prompt.clone(),
        images,
        error: Some(error),
        attempts,
        started_at: started_at.map(iso),
        finished_at: Some(iso(Utc::now())),
        seconds: None,
    }
}

fn not_started_error(report: &RunReport) -> ErrorRecord {
    match (report.usage_limit, report.signal) {
        (Some(resets_at), _) => ErrorRecord {
            message: format!(
                "not started: another job hit the usage limit; {}",
                rerun_advice(resets_at)
            ),
            kind: "usage_limit".into(),
            exit_code: 1,
        },
        (None, Some(sig)) => ErrorRecord {
            message: format!(
                "not started: interrupted by {}; rerun the same command to continue",
                sig.name()
            ),
            kind: "interrupted".into(),
            exit_code: sig.exit_code(),
        },
        (None, None) => ErrorRecord {
            message: "not started".into(),
            kind: "not_started".into(),
            exit_code: 1,
        },
    }
}

fn kind_name(kind: ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}
