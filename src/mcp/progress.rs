//! Engine events to MCP `notifications/progress`, with a heartbeat.
//!
//! The engine calls `EventSink::event` synchronously from its job task, so the sink does
//! nothing but push onto an unbounded channel (never blocks, never awaits). One reporter
//! task per tool call owns the peer and the progress token: it sends a notification on
//! every stage change, and again whenever `heartbeat` passes without one, so a client with
//! a progress-reset timeout keeps waiting through a long "generating" phase. The progress
//! value is a counter, so it strictly increases as the spec requires; there is no total.
//!
//! The sink also remembers each job's `ImageSaved` events: when a job later fails (timeout,
//! cancellation) the tool result can still name the files that are already on disk.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::foundation::events::{Event, EventSink, Stage};
use crate::foundation::job::SavedImage;
use crate::frontend::report;

enum Update {
    Stage(Stage),
    Saved,
    /// A line for `--verbose`.
    Note(String),
}

/// One per engine job; all jobs of a tool call feed the same reporter.
pub(super) struct JobSink {
    tx: mpsc::UnboundedSender<Update>,
    saved: Mutex<Vec<SavedImage>>,
}

impl JobSink {
    /// Images this job reported as saved, in arrival order.
    pub(super) fn saved_images(&self) -> Vec<SavedImage> {
        match self.saved.lock() {
            Ok(saved) => saved.clone(),
            // A panic while pushing cannot leave the Vec half-written; keep what is there.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl EventSink for JobSink {
    fn event(&self, event: &Event) {
        // Send errors only mean the reporter has finished; events after that are moot.
        match event {
            Event::Stage(stage) => {
                let _ = self.tx.send(Update::Stage(*stage));
            }
            Event::ImageSaved { image, .. } => {
                match self.saved.lock() {
                    Ok(mut saved) => saved.push(image.clone()),
                    Err(poisoned) => poisoned.into_inner().push(image.clone()),
                }
                let _ = self.tx.send(Update::Saved);
            }
            // What the user must see even with --quiet, as the CLI prints it.
            Event::Warning(text) => report::eprint_line(text),
            Event::RetryScheduled {
                retry,
                retries,
                reason,
                delay_ms,
            } => {
                let _ = self.tx.send(Update::Note(format!(
                    "retry {retry}/{retries} in {delay_ms} ms: {reason}"
                )));
            }
            _ => {}
        }
    }
}

pub(super) struct Reporter {
    tx: mpsc::UnboundedSender<Update>,
    done: CancellationToken,
    task: JoinHandle<()>,
}

impl Reporter {
    /// `token` None (the client asked for no progress): stage changes still reach stderr
    /// when `verbose`, nothing goes to the client.
    pub(super) fn start(
        peer: Peer<RoleServer>,
        token: Option<ProgressToken>,
        heartbeat: Duration,
        jobs: usize,
        verbose: bool,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let done = CancellationToken::new();
        let task = tokio::spawn(report(
            peer,
            token,
            heartbeat,
            jobs,
            verbose,
            rx,
            done.clone(),
        ));
        Self { tx, done, task }
    }

    pub(super) fn sink(&self) -> Arc<JobSink> {
        Arc::new(JobSink {
            tx: self.tx.clone(),
            saved: Mutex::new(Vec::new()),
        })
    }

    /// Stops the reporter and waits for it, so no progress notification can follow the
    /// tool result (the spec forbids progress after the response).
    pub(super) async fn finish(self) {
        self.done.cancel();
        let _ = self.task.await;
    }
}

async fn report(
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    heartbeat: Duration,
    jobs: usize,
    verbose: bool,
    mut rx: mpsc::UnboundedReceiver<Update>,
    done: CancellationToken,
) {
    // The engine announces the stages from "sending" on; "starting" (auth, references) and
    // "saved" (an `ImageSaved` event) are this reporter's own.
    let mut stage = Stage::Starting;
    let mut saved = 0usize;
    let mut out = Notifier {
        peer,
        token,
        started: Instant::now(),
        jobs,
        verbose,
        sent: 0,
    };
    let heartbeat = heartbeat.max(Duration::from_millis(10));
    let next_beat = tokio::time::sleep(heartbeat);
    tokio::pin!(next_beat);
    let mut changed = true;
    loop {
        if changed {
            out.send(stage, saved).await;
            next_beat.as_mut().reset(Instant::now() + heartbeat);
        }
        // Queued updates first, so a final "saved" is not lost to `done`.
        changed = tokio::select! {
            biased;
            update = rx.recv() => match update {
                Some(Update::Stage(new)) if stage != new => {
                    stage = new;
                    true
                }
                Some(Update::Stage(_)) => false,
                Some(Update::Saved) => {
                    saved += 1;
                    stage = Stage::Saved;
                    true
                }
                Some(Update::Note(text)) => {
                    if verbose {
                        report::eprint_line(&format!("codex-imagen: mcp: {text}"));
                    }
                    false
                }
                None => break,
            },
            _ = done.cancelled() => break,
            _ = &mut next_beat => true,
        };
    }
}

/// Where one call's progress goes: the client (with a token) and `--verbose` stderr.
struct Notifier {
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    started: Instant,
    jobs: usize,
    verbose: bool,
    /// Notifications sent so far; the next one's progress value.
    sent: u64,
}

impl Notifier {
    async fn send(&mut self, stage: Stage, saved: usize) {
        let elapsed = self.started.elapsed().as_secs();
        let mut message = format!("{}, {elapsed} s", stage.as_str());
        if self.jobs > 1 {
            message.push_str(&format!(" ({saved}/{} saved)", self.jobs));
        }
        if self.verbose {
            report::eprint_line(&format!("codex-imagen: mcp: {message}"));
        }
        let Some(token) = &self.token else {
            return;
        };
        self.sent += 1;
        let param =
            ProgressNotificationParam::new(token.clone(), self.sent as f64).with_message(message);
        // A client that went away is noticed by the service loop, not here.
        let _ = self.peer.notify_progress(param).await;
    }
}
