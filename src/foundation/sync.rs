//! Mutexes whose holder panicked.

use std::sync::Mutex;

/// A poisoned lock only means a panicking thread held it; the data is still consistent for
/// these maps, so go on rather than take the service down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
