//! What a job tells its front-end while it runs: one [`Event`] enum delivered to an
//! [`EventSink`]. The engine never prints; the CLI's sink turns events back into the SPEC's
//! stderr lines byte for byte, and other front-ends aggregate, persist or forward them.
//!
//! Inside the crate, code reports through a [`Reporter`], a cheap clonable handle on the job's
//! sink. Most progress is still a SPEC line (`Event::Progress`), because agents and scripts read
//! those lines and their wording is a contract; the events a front-end acts on (stages, attempts,
//! retries, saved images, refreshes, warnings) are typed. A stage is derived from the fixed
//! progress texts in one table ([`stage_for`]), so no call site can forget to announce one.

use std::sync::Arc;

use super::job::SavedImage;

/// Where a job is. Stage changes are what live displays and MCP progress notifications show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Starting,
    Refreshing,
    Sending,
    Accepted,
    Generating,
    Receiving,
    Saved,
    WaitingToRetry,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Starting => "starting",
            Stage::Refreshing => "refreshing",
            Stage::Sending => "sending",
            Stage::Accepted => "accepted",
            Stage::Generating => "generating",
            Stage::Receiving => "receiving",
            Stage::Saved => "saved",
            Stage::WaitingToRetry => "waiting to retry",
        }
    }
}

/// One thing a job reports. Delivered synchronously from the job's task: sinks keep
/// [`EventSink::event`] cheap and never block on it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The job moved to another stage.
    Stage(Stage),
    /// Attempt `attempt` (1-based) of `total` starts; it is abandoned after `timeout_ms`.
    AttemptStarted {
        attempt: u32,
        total: u32,
        timeout_ms: u64,
    },
    /// Attempt `attempt` settled (succeeded, failed, or timed out).
    AttemptFinished { attempt: u32 },
    /// A transient failure; attempt `retry + 1` follows after `delay_ms`.
    RetryScheduled {
        retry: u32,
        retries: u32,
        reason: String,
        delay_ms: u64,
    },
    /// A streamed preview of image `index` (0-based), as the backend's base64 text.
    PartialImage { index: usize, b64: Arc<String> },
    /// Image `index` (0-based) is on disk, complete and renamed into place.
    ImageSaved { index: usize, image: SavedImage },
    /// A refresh of the credentials finished (or was found unnecessary under the lock).
    Refresh {
        refreshed: bool,
        skipped: Option<String>,
    },
    /// Something the user should see even with `--quiet`.
    Warning(String),
    /// One of the SPEC's progress lines (`codex-imagen: ...`), silenced by `--quiet`.
    Progress(String),
    /// Detail for `--verbose`.
    Verbose(String),
}

/// Receives a job's events.
pub trait EventSink: Send + Sync {
    fn event(&self, event: &Event);
}

/// A sink that drops everything (tests, `auth_status`).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl EventSink for NullSink {
    fn event(&self, _event: &Event) {}
}

/// The crate's handle on a job's sink.
#[derive(Clone)]
pub(crate) struct Reporter {
    sink: Arc<dyn EventSink>,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter::new(Arc::new(NullSink))
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter")
    }
}

impl Reporter {
    pub(crate) fn new(sink: Arc<dyn EventSink>) -> Self {
        Reporter { sink }
    }

    pub(crate) fn emit(&self, event: Event) {
        self.sink.event(&event);
    }

    /// A SPEC progress line; announces the stage it implies first.
    pub(crate) fn info(&self, line: &str) {
        if let Some(stage) = stage_for(line) {
            self.emit(Event::Stage(stage));
        }
        self.emit(Event::Progress(line.to_string()));
    }

    pub(crate) fn verbose(&self, line: &str) {
        self.emit(Event::Verbose(line.to_string()));
    }

    pub(crate) fn warn(&self, line: &str) {
        self.emit(Event::Warning(line.to_string()));
    }

    pub(crate) fn stage(&self, stage: Stage) {
        self.emit(Event::Stage(stage));
    }
}

/// The stage one of the SPEC's fixed progress texts implies.
pub(crate) fn stage_for(line: &str) -> Option<Stage> {
    let rest = line.strip_prefix("codex-imagen: ")?;
    Some(if rest.starts_with("POST ") {
        Stage::Sending
    } else if rest == "request accepted" {
        Stage::Accepted
    } else if rest == "image generation started" || rest == "image generation running" {
        Stage::Generating
    } else if rest == "image bytes received" {
        Stage::Receiving
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_follow_the_progress_texts() {
        assert_eq!(
            stage_for("codex-imagen: POST http://x/responses"),
            Some(Stage::Sending)
        );
        assert_eq!(
            stage_for("codex-imagen: request accepted"),
            Some(Stage::Accepted)
        );
        assert_eq!(
            stage_for("codex-imagen: image generation running"),
            Some(Stage::Generating)
        );
        assert_eq!(
            stage_for("codex-imagen: image bytes received"),
            Some(Stage::Receiving)
        );
        assert_eq!(stage_for("codex-imagen: model gpt-5.4"), None);
        assert_eq!(stage_for("warning: auth_mode is apikey"), None);
    }
}
