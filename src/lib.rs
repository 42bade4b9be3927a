//! codex-imagen: generate and edit images with gpt-image through a ChatGPT subscription, using
//! the Codex or OpenClaw OAuth credentials already on the machine.
//!
//! One engine, several front-ends. The public API is deliberately small: an [`Engine`] (made
//! from [`EngineSettings`]) runs owned [`JobSpec`]s, reports [`Event`]s to an [`EventSink`],
//! stops on a [`CancellationToken`], and returns a [`JobResult`] or a typed [`Error`]. The
//! binary only calls [`run`], the one-shot CLI. Everything else is crate-private; see
//! `ARCHITECTURE.md` for where each concern lives.

mod auth;
mod backend;
mod batch;
mod blocking;
mod cli;
mod engine;
mod error;
mod mcp;
mod output;
mod paths;
mod serve;

pub use auth::AuthSettings;
pub use cli::run;
pub use engine::controls::ImageControls;
pub use engine::events::{Event, EventSink, NullSink, Stage};
pub use engine::job::{
    Backend, JobResult, JobSpec, MetadataMode, Naming, Reference, RefreshReport,
};
pub use engine::{Delays, Engine, EngineSettings, DEFAULT_BASE_URL, DEFAULT_REFRESH_URL};
pub use error::{AuthErrorKind, Error, ErrorKind, RefreshErrorKind, Result, UsageLimit};
pub use output::SavedImage;
pub use paths::Environment;
pub use tokio_util::sync::CancellationToken;
