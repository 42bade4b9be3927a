//! Everything a batch prints while it runs: saved paths on stdout, progress on stderr.
//!
//! Design: one `Display` is shared by the scheduler and every job's event sink, so all methods
//! take `&self` and are cheap (events arrive synchronously from job tasks). Output goes through
//! `SharedWriter`s rather than the process streams so tests capture it. On a terminal stderr
//! carries an indicatif `MultiProgress`: one overall bar (done / failed / running, ETA) plus one
//! spinner line per running job showing its stage; lines that must stay (saved paths, failures)
//! are printed above the bars with `MultiProgress::println`, and stdout writes happen inside
//! `suspend` so a terminal shared by both streams is not garbled. Elsewhere stderr gets the
//! plain `codex-imagen: [...]` lines. `--quiet` turns both off; `--json` moves stdout to one
//! summary at the end (written by the caller through `print_stdout`).

use std::{
    collections::HashMap,
    io::Write,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A writer shared between tasks; a poisoned lock only means an earlier print panicked.
#[derive(Clone)]
pub(crate) struct SharedWriter(Arc<Mutex<Box<dyn Write + Send>>>);

impl SharedWriter {
    pub(crate) fn new(w: impl Write + Send + 'static) -> SharedWriter {
        SharedWriter(Arc::new(Mutex::new(Box::new(w))))
    }

    /// Writes one line and flushes; print errors (a closed pipe) are not worth failing a job.
    pub(crate) fn line(&self, text: &str) {
        let mut w = match self.0.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        let _ = writeln!(w, "{text}");
        let _ = w.flush();
    }
}

/// Counts the overall bar and the plain progress line show.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) done: usize,
    pub(crate) failed: usize,
    pub(crate) running: usize,
    pub(crate) total: usize,
}

struct Bars {
    multi: MultiProgress,
    main: ProgressBar,
    jobs: Mutex<HashMap<String, ProgressBar>>,
}

enum Mode {
    Quiet,
    Plain,
    Bars(Bars),
}

pub(crate) struct Display {
    mode: Mode,
    stdout: SharedWriter,
    stderr: SharedWriter,
    /// With `--json`, stdout is kept for the final summary.
    paths_on_stdout: bool,
    /// Set by `finish`: the bars are final, later lines go straight below them.
    finished: AtomicBool,
}

impl Display {
    /// `bars`: a draw target when stderr is a terminal (tests pass a hidden one), else None.
    /// `to_run`: jobs that will be sent (skipped ones are not), the length of the overall bar.
    pub(crate) fn new(
        stdout: SharedWriter,
        stderr: SharedWriter,
        bars: Option<ProgressDrawTarget>,
        quiet: bool,
        json: bool,
        to_run: usize,
    ) -> Display {
        let mode = match (quiet, bars) {
            (true, _) => Mode::Quiet,
            (false, None) => Mode::Plain,
            (false, Some(target)) => {
                let multi = MultiProgress::with_draw_target(target);
                let main = multi.add(ProgressBar::new(to_run as u64));
                main.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{bar:30}] {pos}/{len} done, {msg} (ETA {eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                main.enable_steady_tick(Duration::from_millis(120));
                Mode::Bars(Bars {
                    multi,
                    main,
                    jobs: Mutex::new(HashMap::new()),
                })
            }
        };
        Display {
            mode,
            stdout,
            stderr,
            paths_on_stdout: !json,
            finished: AtomicBool::new(false),
        }
    }

    /// A stderr line that survives `--quiet`: it explains the exit status.
    pub(crate) fn important(&self, text: &str) {
        match &self.mode {
            Mode::Bars(b) if !self.finished.load(Ordering::Relaxed) => {
                if b.multi.println(text).is_err() {
                    self.stderr.line(text);
                }
            }
            _ => self.stderr.line(text),
        }
    }

    /// A stderr line silenced by `--quiet`.
    pub(crate) fn note(&self, text: &str) {
        if !matches!(self.mode, Mode::Quiet) {
            self.important(text);
        }
    }

    /// A stdout line (a saved path, the JSON summary), kept clear of the bars.
    pub(crate) fn print_stdout(&self, text: &str) {
        match &self.mode {
            Mode::Bars(b) if !self.finished.load(Ordering::Relaxed) => {
                b.multi.suspend(|| self.stdout.line(text))
            }
            _ => self.stdout.line(text),
        }
    }

    pub(crate) fn job_started(&self, id: &str, counts: Counts) {
        if let Mode::Bars(b) = &self.mode {
            let bar = b.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} [{prefix}] {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(id.to_string());
            bar.set_message("starting");
            bar.enable_steady_tick(Duration::from_millis(120));
            if let Ok(mut jobs) = b.jobs.lock() {
                jobs.insert(id.to_string(), bar);
            }
            self.set_counts(b, counts);
        }
    }

    /// The job's current stage, e.g. "generating" or "waiting to retry 1/4: HTTP 502".
    pub(crate) fn job_stage(&self, id: &str, stage: &str) {
        if let Mode::Bars(b) = &self.mode {
            if let Some(bar) = b.jobs.lock().ok().and_then(|j| j.get(id).cloned()) {
                bar.set_message(stage.to_string());
            }
        }
    }

    /// `index` is 0-based, as in the engine's event; people count from 1.
    pub(crate) fn image_saved(&self, id: &str, index: usize, path: &Path) {
        let shown = path.display().to_string();
        if self.paths_on_stdout {
            self.print_stdout(&shown);
        }
        self.note(&format!(
            "codex-imagen: [{id}] saved image {}: {shown}",
            index + 1
        ));
    }

    /// An image an interrupted run saved and a rerun adopted without a request.
    pub(crate) fn image_adopted(&self, id: &str, index: usize, path: &Path) {
        let shown = path.display().to_string();
        if self.paths_on_stdout {
            self.print_stdout(&shown);
        }
        self.note(&format!(
            "codex-imagen: [{id}] adopted image {} saved by an interrupted run (no request): \
             {shown}",
            index + 1
        ));
    }

    /// `text` is the engine's warning line, which carries its own `codex-imagen: warning: `.
    pub(crate) fn warning(&self, id: &str, text: &str) {
        let text = text
            .strip_prefix("codex-imagen: warning: ")
            .or_else(|| text.strip_prefix("codex-imagen: "))
            .unwrap_or(text);
        self.note(&format!("codex-imagen: [{id}] warning: {text}"));
    }

    /// `failure`: the error's message when the job failed.
    pub(crate) fn job_finished(&self, id: &str, failure: Option<&str>, counts: Counts) {
        if let Some(message) = failure {
            let first = message.lines().next().unwrap_or("");
            self.note(&format!("codex-imagen: [{id}] failed: {first}"));
        }
        match &self.mode {
            Mode::Bars(b) => {
                let bar = b.jobs.lock().ok().and_then(|mut j| j.remove(id));
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                    b.multi.remove(&bar);
                }
                b.main.inc(1);
                self.set_counts(b, counts);
            }
            Mode::Plain => self.stderr.line(&format!(
                "codex-imagen: batch {}/{} done, {} failed",
                counts.done, counts.total, counts.failed
            )),
            Mode::Quiet => {}
        }
    }

    fn set_counts(&self, b: &Bars, counts: Counts) {
        b.main.set_message(format!(
            "{} failed, {} running",
            counts.failed, counts.running
        ));
    }

    /// Stops the bars so the summary prints below a still, final state.
    pub(crate) fn finish(&self) {
        if let Mode::Bars(b) = &self.mode {
            if let Ok(mut jobs) = b.jobs.lock() {
                for (_, bar) in jobs.drain() {
                    bar.finish_and_clear();
                }
            }
            b.main.abandon();
            self.finished.store(true, Ordering::Relaxed);
        }
    }
}
