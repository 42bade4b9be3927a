//! Blocking work (decoding and hashing images, file writes, SQLite, store reads) must not stall
//! the async worker threads other jobs run on. [`run`] moves it off them when the runtime is
//! multi-threaded; on a current-thread runtime (or none) there is nothing else to stall, so it
//! runs in place.

pub(crate) fn run<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
