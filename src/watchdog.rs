//! The hard watchdog (SPEC §13): if an attempt has not settled 10 s after its timer fired, the
//! process exits 124. It runs on a plain thread, so it fires even when the async runtime is
//! stuck (a blocked write, a busy loop) and the runtime's own timer cannot.

use std::sync::mpsc;
use std::time::Duration;

pub const FORCE_EXIT_AFTER_ABORT_MS: u64 = 10_000;

/// Armed for one attempt; dropping it (the attempt settled) disarms it.
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    pub fn arm(timeout_ms: u64) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let deadline = Duration::from_millis(timeout_ms.saturating_add(FORCE_EXIT_AFTER_ABORT_MS));
        let spawned = std::thread::Builder::new()
            .name("codex-imagen-watchdog".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(deadline) {
                    crate::progress::Progress::default().warn(&format!(
                        "codex-imagen: forced exit {FORCE_EXIT_AFTER_ABORT_MS}ms after timeout; fetch did not settle"
                    ));
                    crate::exit::exit_now(124);
                }
            });
        // Without a thread there is no hard watchdog, but the attempt's own timer still works.
        drop(spawned);
        Watchdog { _disarm: tx }
    }
}
