//! The CLI's event sink: turns a job's events into stderr lines.
//!
//! When stderr is not a terminal (agents, scripts, CI) the output is the SPEC's progress lines,
//! byte for byte as the Node tool printed them: they are a contract. When it is a terminal, a
//! live status line (spinner, stage, elapsed seconds) is the progress; warnings, saved paths and
//! errors print above it, and the step-by-step SPEC lines appear only with `--verbose`.
//!
//! The live line belongs to this sink (no statics): a small ticker thread redraws it and stops
//! when the sink is finished or dropped. A closed stderr is never a crash.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::watchdog::{BeforeExit, Watchdog, FORCE_EXIT_AFTER_ABORT_MS};
use crate::engine::generation::format_seconds;
use crate::foundation::events::{Event, EventSink, Stage};

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

struct Live {
    stage: String,
    started: Instant,
    frame: usize,
}

struct Shared {
    /// `Some` while the live line is shown.
    live: Mutex<Option<Live>>,
    ticking: AtomicBool,
}

/// Prints a job's events on stderr for the one-shot CLI.
pub(crate) struct TerminalSink {
    quiet: bool,
    verbose: bool,
    /// True when stderr is a terminal and progress is wanted: the live line is drawn.
    live: bool,
    shared: Arc<Shared>,
    /// The hard watchdog of the attempt in flight, and what it does before it exits.
    watchdog: Mutex<Option<Watchdog>>,
    before_exit: Mutex<Option<BeforeExit>>,
}

impl TerminalSink {
    pub(crate) fn new(quiet: bool, verbose: bool) -> Self {
        Self::with_terminal(quiet, verbose, std::io::stderr().is_terminal())
    }

    fn with_terminal(quiet: bool, verbose: bool, terminal: bool) -> Self {
        TerminalSink {
            quiet,
            verbose,
            live: terminal && !quiet,
            shared: Arc::new(Shared {
                live: Mutex::new(None),
                ticking: AtomicBool::new(false),
            }),
            watchdog: Mutex::new(None),
            before_exit: Mutex::new(None),
        }
    }

    /// What the watchdog does before a forced exit (release the engine's lock files).
    pub(crate) fn on_forced_exit(&self, before_exit: BeforeExit) {
        if let Ok(mut slot) = self.before_exit.lock() {
            *slot = Some(before_exit);
        }
    }

    fn arm_watchdog(&self, timeout_ms: u64) {
        let shared = Arc::clone(&self.shared);
        let before = self.before_exit.lock().ok().and_then(|b| b.clone());
        let before_exit: BeforeExit = Arc::new(move || {
            shared.ticking.store(false, Ordering::SeqCst);
            if let Some(before) = &before {
                before();
            }
        });
        let armed = Watchdog::arm(timeout_ms, FORCE_EXIT_AFTER_ABORT_MS, before_exit);
        if let Ok(mut slot) = self.watchdog.lock() {
            *slot = Some(armed);
        }
    }

    fn disarm_watchdog(&self) {
        if let Ok(mut slot) = self.watchdog.lock() {
            slot.take();
        }
    }

    /// Show the live line (a no-op unless stderr is a terminal and progress is wanted).
    pub(crate) fn start_live_line(&self) {
        if !self.live {
            return;
        }
        if let Ok(mut live) = self.shared.live.lock() {
            *live = Some(Live {
                stage: Stage::Starting.as_str().to_string(),
                started: Instant::now(),
                frame: 0,
            });
        }
        if self.shared.ticking.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let _ = std::thread::Builder::new()
            .name("codex-imagen-progress".into())
            .spawn(move || {
                while shared.ticking.load(Ordering::SeqCst) {
                    if let Ok(mut live) = shared.live.lock() {
                        if let Some(state) = live.as_mut() {
                            state.frame += 1;
                            let mut stderr = std::io::stderr().lock();
                            let _ = write!(stderr, "\r\x1b[2K{}", render(state));
                            let _ = stderr.flush();
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
    }

    /// Clear the live line (before the final report or error).
    pub(crate) fn finish(&self) {
        self.shared.ticking.store(false, Ordering::SeqCst);
        if let Ok(mut live) = self.shared.live.lock() {
            if live.take().is_some() {
                let mut stderr = std::io::stderr().lock();
                let _ = write!(stderr, "\r\x1b[2K");
                let _ = stderr.flush();
            }
        }
    }

    /// A line above the live line (or a plain line).
    pub(crate) fn line(&self, message: &str) {
        // Holding the live state keeps the ticker from drawing in the middle of this line.
        let live = self.shared.live.lock();
        let mut stderr = std::io::stderr().lock();
        match live.as_ref().ok().and_then(|l| l.as_ref()) {
            Some(state) => {
                let _ = write!(stderr, "\r\x1b[2K{message}\n{}", render(state));
            }
            None => {
                let _ = writeln!(stderr, "{message}");
            }
        }
        let _ = stderr.flush();
    }

    fn set_stage(&self, stage: String) {
        if let Ok(mut live) = self.shared.live.lock() {
            if let Some(state) = live.as_mut() {
                state.stage = stage;
            }
        }
    }

    /// A SPEC step line: always when stderr is not a terminal (unless `--quiet`); on a terminal
    /// only with `--verbose`, since the live line already shows the step.
    fn step(&self, message: &str) {
        if self.quiet {
            return;
        }
        if !self.live || self.verbose || is_notice(message) {
            self.line(message);
        }
    }
}

impl Drop for TerminalSink {
    fn drop(&mut self) {
        self.shared.ticking.store(false, Ordering::SeqCst);
        self.disarm_watchdog();
    }
}

/// Step lines a person at a terminal still needs to read: warnings, saved paths, a timeout
/// that returns what was saved.
fn is_notice(message: &str) -> bool {
    [
        "codex-imagen: warning:",
        "codex-imagen: saved image ",
        "codex-imagen: updated image ",
        "codex-imagen: timed out",
    ]
    .iter()
    .any(|prefix| message.starts_with(prefix))
}

impl EventSink for TerminalSink {
    fn event(&self, event: &Event) {
        match event {
            Event::Stage(stage) => self.set_stage(stage.as_str().to_string()),
            Event::AttemptStarted {
                attempt,
                total,
                timeout_ms,
            } => {
                self.arm_watchdog(*timeout_ms);
                if *total > 1 {
                    self.step(&format!(
                        "codex-imagen: generation attempt {attempt}/{total}"
                    ));
                }
            }
            Event::AttemptFinished { .. } => self.disarm_watchdog(),
            Event::RetryScheduled {
                retry,
                retries,
                reason,
                delay_ms,
            } => {
                let delay = format_seconds(*delay_ms);
                self.set_stage(format!("waiting to retry {retry}/{retries} ({delay}s)"));
                self.step(&format!(
                    "codex-imagen: transient generation failure ({reason}); retrying {retry}/{retries} in {delay}s"
                ));
            }
            Event::PartialImage { .. } | Event::Refresh { .. } => {}
            // The saved-image line is a progress line of the stream (a `--no-stream` run has
            // none): the event only moves the live line on.
            Event::ImageSaved { index, .. } => self.set_stage(format!("saved {}", index + 1)),
            Event::Warning(message) => self.line(message),
            Event::Progress(message) => self.step(message),
            Event::Verbose(message) => {
                if self.verbose {
                    self.line(message);
                }
            }
        }
    }
}

fn render(state: &Live) -> String {
    format!(
        "{} {} {:.1}s",
        SPINNER[state.frame % SPINNER.len()],
        state.stage,
        state.started.elapsed().as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_hides_step_lines_but_not_notices() {
        let sink = TerminalSink::with_terminal(false, false, true);
        assert!(sink.live);
        assert!(is_notice("codex-imagen: warning: reference image is large"));
        assert!(is_notice("codex-imagen: saved image 1: /tmp/a.png"));
        assert!(!is_notice("codex-imagen: request accepted"));
        let quiet = TerminalSink::with_terminal(true, false, true);
        assert!(!quiet.live);
    }
}
