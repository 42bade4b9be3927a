//! codex-imagen: generate and edit images with gpt-image through a ChatGPT subscription, using
//! the Codex or OpenClaw OAuth credentials already on the machine.
//!
//! The binary only calls [`run`]. Modules, by concern:
//! - [`cli`] parses argv; [`config`] resolves it against `--cwd` and the environment; [`paths`]
//!   knows home, `~` and the OpenClaw directory layout.
//! - [`auth`] finds, reads and selects credentials (and is where refresh plugs in).
//! - [`backend`] builds requests and turns the event stream into saved images ([`output`]).
//! - [`generate`] runs attempts with their timer ([`watchdog`]) and retries ([`retry`]).
//! - [`report`] prints results; [`error`] maps every failure to an exit code.

pub mod app;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod config;
pub mod error;
pub mod exit;
pub mod generate;
pub mod output;
pub mod paths;
pub mod progress;
pub mod report;
pub mod retry;
pub mod watchdog;

pub use app::run;
pub use error::{Error, Result};
