//! Leaving the process from anywhere (the watchdog, a signal): one place that knows what must be
//! cleaned up first.

use std::sync::Mutex;

type Cleanup = Box<dyn Fn() + Send + Sync>;

static CLEANUPS: Mutex<Vec<(u64, Cleanup)>> = Mutex::new(Vec::new());

/// Run `f` if the process exits through [`exit_now`] while the returned guard is alive.
pub fn on_forced_exit(f: impl Fn() + Send + Sync + 'static) -> CleanupGuard {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok(mut list) = CLEANUPS.lock() {
        list.push((id, Box::new(f)));
    }
    CleanupGuard { id }
}

pub struct CleanupGuard {
    id: u64,
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if let Ok(mut list) = CLEANUPS.lock() {
            list.retain(|(id, _)| *id != self.id);
        }
    }
}

/// Run the registered cleanups, then exit with `code`.
pub fn exit_now(code: i32) -> ! {
    if let Ok(list) = CLEANUPS.lock() {
        for (_, cleanup) in list.iter() {
            cleanup();
        }
    }
    std::process::exit(code)
}
