//! The engine: one [`Engine`] per process runs any number of jobs at once, for every front-end
//! (the one-shot CLI, batch, the HTTP service, the MCP server).
//!
//! It owns what jobs share: the HTTP client, the user agent, the environment snapshot taken
//! once, and the auth manager (one refresh per profile for all jobs). A job is an owned
//! [`JobSpec`]; it reports through an [`EventSink`] and stops when its [`CancellationToken`]
//! fires. Nothing here touches process state: no working-directory change, no exit, no
//! statics, no environment reads after [`Engine::new`].
//!
//! A job's order (SPEC §14, `run`): prepare auth → load references → attempts with retries
//! ([`generation`], [`retry`]) → on a 401, one refresh ("if the token is still the one I used")
//! and one more round → provenance ([`provenance`]).
//!
//! - `settings`: what an engine is made from ([`EngineSettings`], [`Delays`], default URLs).
//! - `shared`: the [`Engine`] itself, what its jobs share.
//! - `run`: one job end to end. `status`: the `--smoke` and `--usage` reports.
//! - `history`: each finished image recorded in `history.sqlite`, for every front-end.

pub(crate) mod accounts;
pub(crate) mod generation;
pub(crate) mod history;
pub(crate) mod provenance;
pub(crate) mod retry;
pub(crate) mod route;
pub(crate) mod run;
pub(crate) mod settings;
pub(crate) mod shared;
pub(crate) mod status;
