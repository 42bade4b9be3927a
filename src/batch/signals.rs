//! Shutdown requests as a plain channel, so the scheduler is tested by sending values instead of
//! real signals, plus the adapter that feeds it from SIGINT/SIGTERM.
//!
//! Design: the scheduler only sees `ShutdownSignals::recv`. The OS adapter installs tokio's
//! handlers (which replace the default "die at once" action, so the first Ctrl-C can drain
//! gracefully) and forwards each delivery; what the first and second deliveries mean is the
//! scheduler's business, not this module's.

use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShutdownSignal {
    Interrupt,
    Terminate,
}

impl ShutdownSignal {
    /// The conventional 128 + signal number.
    pub(crate) fn exit_code(self) -> i32 {
        match self {
            ShutdownSignal::Interrupt => 130,
            ShutdownSignal::Terminate => 143,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            ShutdownSignal::Interrupt => "SIGINT",
            ShutdownSignal::Terminate => "SIGTERM",
        }
    }
}

pub(crate) type ShutdownSender = mpsc::UnboundedSender<ShutdownSignal>;

pub(crate) struct ShutdownSignals {
    rx: mpsc::UnboundedReceiver<ShutdownSignal>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl ShutdownSignals {
    /// A sender for tests (or another front-end) and the receiving end for the scheduler.
    pub(crate) fn channel() -> (ShutdownSender, ShutdownSignals) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            tx,
            ShutdownSignals {
                rx,
                forwarder: None,
            },
        )
    }

    /// SIGINT and SIGTERM (Ctrl-C only, off Unix). Must be called inside the tokio runtime.
    pub(crate) fn os() -> std::io::Result<ShutdownSignals> {
        let (tx, mut signals) = ShutdownSignals::channel();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut int = signal(SignalKind::interrupt())?;
            let mut term = signal(SignalKind::terminate())?;
            signals.forwarder = Some(tokio::spawn(async move {
                loop {
                    let sig = tokio::select! {
                        Some(()) = int.recv() => ShutdownSignal::Interrupt,
                        Some(()) = term.recv() => ShutdownSignal::Terminate,
                        else => break,
                    };
                    if tx.send(sig).is_err() {
                        break;
                    }
                }
            }));
        }
        #[cfg(not(unix))]
        {
            signals.forwarder = Some(tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    if tx.send(ShutdownSignal::Interrupt).is_err() {
                        break;
                    }
                }
            }));
        }
        Ok(signals)
    }

    /// The next request; None once no more can come.
    pub(crate) async fn recv(&mut self) -> Option<ShutdownSignal> {
        self.rx.recv().await
    }
}

impl Drop for ShutdownSignals {
    fn drop(&mut self) {
        if let Some(task) = self.forwarder.take() {
            task.abort();
        }
    }
}
