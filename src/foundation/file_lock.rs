//! Advisory whole-file locks between processes (`flock` on Unix).
//!
//! The kernel releases such a lock when its descriptor closes, however the process ends, so a
//! lock file left behind never blocks anyone. Elsewhere than Unix there is no lock (each caller
//! says what that costs).

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

/// Take the exclusive lock on `file` without waiting: `Ok(true)` when taken, `Ok(false)` when
/// another descriptor holds it.
#[cfg(unix)]
pub(crate) fn try_exclusive(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor the caller owns for as long as the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(err)
}

#[cfg(not(unix))]
pub(crate) fn try_exclusive(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

/// Open (creating, 0600) the lock file at `path`.
pub(crate) fn open(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Hold the lock file at `path` for a short critical section, waiting up to `wait` for another
/// holder. `None` when it could not be had in time (or opened): the caller goes on without it.
pub(crate) fn hold(path: &Path, wait: Duration) -> Option<File> {
    let file = open(path).ok()?;
    let deadline = Instant::now() + wait;
    loop {
        match try_exclusive(&file) {
            Ok(true) => return Some(file),
            Ok(false) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => return None,
        }
    }
}
