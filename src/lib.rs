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
mod cli;
mod dispatch;
mod engine;
mod foundation;
mod frontend;
mod history;
mod login;
mod mcp;
mod output;
mod serve;

pub use auth::pool::PoolSettings;
pub use auth::AuthSettings;
pub use dispatch::run;
pub use engine::settings::{Delays, EngineSettings, DEFAULT_BASE_URL, DEFAULT_REFRESH_URL};
pub use engine::shared::Engine;
pub use foundation::controls::ImageControls;
pub use foundation::error::{
    AuthErrorKind, Error, ErrorKind, RefreshErrorKind, Result, UsageLimit,
};
pub use foundation::events::{Event, EventSink, NullSink, Stage};
pub use foundation::job::SavedImage;
pub use foundation::job::{
    Backend, JobResult, JobSpec, MetadataMode, Naming, Reference, RefreshReport,
};
pub use foundation::paths::Environment;
pub use tokio_util::sync::CancellationToken;
