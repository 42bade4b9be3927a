//! Foundations: what every layer above may use and what uses nothing of the crate above it.
//! Typed errors and exit codes, the environment snapshot and paths, the events a job reports,
//! the job's own types (`JobSpec` and its parts, image controls and the size limits, URL classification), and
//! moving blocking work off the async threads, and the C allocator's settings.

pub(crate) mod allocator;
pub(crate) mod blocking;
pub(crate) mod controls;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod file_lock;
pub(crate) mod http;
pub(crate) mod job;
pub(crate) mod paths;
pub(crate) mod process;
pub(crate) mod size_limits;
pub(crate) mod sync;
pub(crate) mod url;
