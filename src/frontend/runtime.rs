//! What every front-end's process needs around the engine: the async runtime it runs on, and
//! the first SIGINT/SIGTERM as a future with the exit code a shell expects.

use crate::foundation::error::{Error, Result};

/// The first SIGINT or SIGTERM (Ctrl-C on Windows), with the exit code a shell expects.
///
/// The handlers are installed when this is called, not when it is first polled: a caller
/// that announces it is ready (the service's `listening on`) after calling it cannot be killed
/// by a SIGTERM that arrives in between. Must be called inside the tokio runtime.
pub(crate) fn until_signal() -> impl std::future::Future<Output = (i32, &'static str)> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            let (Ok(mut term), Ok(mut int)) = handlers else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = term.recv() => (143, "SIGTERM"),
                _ = int.recv() => (130, "SIGINT"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_err() {
                return std::future::pending().await;
            }
            (130, "Ctrl-C")
        }
    }
}

/// The one-shot CLI runs one job: a current-thread runtime has no other job to stall, so its
/// blocking work runs in place ([`crate::foundation::blocking::run`]) and no cross-thread wake-up is paid
/// for each network chunk (the multi-thread runtime cost the 32 MiB benchmark about 20 %).
pub(crate) fn one_shot_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("Cannot start the async runtime: {e}")))
}

/// The front-ends' runtime (batch, `--count`, the service): many jobs at once, so a job's
/// blocking work (decoding, hashing, writing) moves off the async threads.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("Cannot start the async runtime: {e}")))
}
