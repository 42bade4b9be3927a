//! Diagnostics on stderr: progress lines (silenced by `--quiet`), verbose details, and warnings
//! that are always shown. A closed stderr is never a crash.
//!
//! When stderr is a terminal, a live status line sits below those lines: a spinner, the current
//! stage and the elapsed seconds, redrawn by a small ticker thread. The plain lines are the
//! contract agents and scripts read, so the live line is only a view of them: the stage is
//! derived from the SPEC's fixed progress texts in [`stage_for`], and when stderr is not a
//! terminal nothing but those lines is written, byte for byte.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub quiet: bool,
    pub verbose: bool,
}

impl Progress {
    pub fn new(quiet: bool, verbose: bool) -> Self {
        Progress { quiet, verbose }
    }

    /// A `codex-imagen: ...` progress line.
    pub fn info(&self, message: &str) {
        if !self.quiet {
            if let Some(stage) = stage_for(message) {
                set_stage(stage);
            }
            write_line(message);
        }
    }

    /// Only with `--verbose`.
    pub fn verbose(&self, message: &str) {
        if self.verbose {
            write_line(message);
        }
    }

    /// Always shown.
    pub fn warn(&self, message: &str) {
        write_line(message);
    }
}

/// The live line's stage for one of the SPEC's progress texts.
fn stage_for(message: &str) -> Option<String> {
    let rest = message.strip_prefix("codex-imagen: ")?;
    let stage = if rest.starts_with("POST ") {
        "sending".to_string()
    } else if rest == "request accepted" {
        "accepted".to_string()
    } else if rest == "image generation started" || rest == "image generation running" {
        "generating".to_string()
    } else if rest == "image bytes received" {
        "receiving".to_string()
    } else if let Some(saved) = rest.strip_prefix("saved image ") {
        format!("saved {}", saved.split(':').next().unwrap_or(saved))
    } else if rest.starts_with("transient generation failure") {
        "waiting to retry".to_string()
    } else {
        return None;
    };
    Some(stage)
}

struct Live {
    stage: String,
    started: Instant,
    frame: usize,
}

static LIVE: Mutex<Option<Live>> = Mutex::new(None);
static TICKING: AtomicBool = AtomicBool::new(false);
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Start the live line when stderr is a terminal and progress is wanted.
pub fn start_live_line(progress: &Progress) {
    if progress.quiet || !std::io::stderr().is_terminal() {
        return;
    }
    if let Ok(mut live) = LIVE.lock() {
        *live = Some(Live {
            stage: "starting".to_string(),
            started: Instant::now(),
            frame: 0,
        });
    }
    if TICKING.swap(true, Ordering::SeqCst) {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("codex-imagen-progress".into())
        .spawn(|| {
            while TICKING.load(Ordering::SeqCst) {
                if let Ok(mut live) = LIVE.lock() {
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
pub fn finish_live_line() {
    TICKING.store(false, Ordering::SeqCst);
    if let Ok(mut live) = LIVE.lock() {
        if live.take().is_some() {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
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

fn set_stage(stage: String) {
    if let Ok(mut live) = LIVE.lock() {
        if let Some(state) = live.as_mut() {
            state.stage = stage;
        }
    }
}

fn write_line(message: &str) {
    // Holding LIVE keeps the ticker from drawing in the middle of this line.
    let live = LIVE.lock();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_follow_the_progress_texts() {
        assert_eq!(
            stage_for("codex-imagen: POST http://x/responses").as_deref(),
            Some("sending")
        );
        assert_eq!(
            stage_for("codex-imagen: request accepted").as_deref(),
            Some("accepted")
        );
        assert_eq!(
            stage_for("codex-imagen: image generation running").as_deref(),
            Some("generating")
        );
        assert_eq!(
            stage_for("codex-imagen: image bytes received").as_deref(),
            Some("receiving")
        );
        assert_eq!(
            stage_for("codex-imagen: saved image 2: /tmp/x.png").as_deref(),
            Some("saved 2")
        );
        assert_eq!(stage_for("codex-imagen: model gpt-5.4"), None);
        assert_eq!(stage_for("warning: auth_mode is apikey"), None);
    }
}
