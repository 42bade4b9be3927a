//! The hard watchdog (SPEC §13), a CLI-only guard: if an attempt has not settled 10 s after its
//! timer fired, the process exits 124. It runs on a plain thread, so it fires even when the
//! async runtime is stuck (a blocked write, a busy loop) and the attempt's own timer cannot.
//! The engine never exits the process; only this guard of the one-shot CLI does, after it has
//! released the lock files a refresh may hold.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

pub const FORCE_EXIT_AFTER_ABORT_MS: u64 = 10_000;

/// What to do just before the forced exit (release held locks).
pub(crate) type BeforeExit = Arc<dyn Fn() + Send + Sync>;

/// Armed for one attempt; dropping it (the attempt settled) disarms it.
pub(crate) struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    pub(crate) fn arm(timeout_ms: u64, grace_ms: u64, before_exit: BeforeExit) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let deadline = Duration::from_millis(timeout_ms.saturating_add(grace_ms));
        let spawned = std::thread::Builder::new()
            .name("codex-imagen-watchdog".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(deadline) {
                    super::report::eprint_line(&format!(
                        "codex-imagen: forced exit {grace_ms}ms after timeout; fetch did not settle"
                    ));
                    before_exit();
                    std::process::exit(124);
                }
            });
        // Without a thread there is no hard watchdog, but the attempt's own timer still works.
        drop(spawned);
        Watchdog { _disarm: tx }
    }
}
