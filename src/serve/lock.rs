//! The data directory is the service's alone and private.
//!
//! One service per data directory: `<data dir>/serve.lock` is held with `flock` for the life of
//! the process and records its pid, so a second `--serve` on the same directory stops at once
//! (exit 2) naming the process that holds it, instead of marking the first one's running jobs
//! `service_restarted` while the first finishes them. The kernel drops the lock when the
//! process ends, however it ends, so a stale file never blocks a restart.
//!
//! Private by default: the service runs with umask 077 (unless `--shared-files`), so the
//! directories it creates are 0700 and its images 0600, and an existing data directory owned by
//! the user is narrowed to 0700. `jobs.sqlite` is 0600 in any case (`store.rs`): it holds
//! callback secrets.

use std::fs::File;
use std::path::Path;

use crate::foundation::error::{Error, Result};
#[cfg(unix)]
use crate::foundation::file_lock;

/// Held for the life of the service; dropping it (or exiting) releases the directory.
#[derive(Debug)]
pub(crate) struct DataLock {
    _file: File,
}

impl DataLock {
    #[cfg(unix)]
    pub(crate) fn take(data_dir: &Path) -> Result<DataLock> {
        use std::io::{Read, Seek, Write};

        let path = data_dir.join("serve.lock");
        let mut file = file_lock::open(&path)
            .map_err(|e| Error::io(format!("Cannot open {}", path.display()), e))?;
        match file_lock::try_exclusive(&file) {
            Ok(true) => {}
            Ok(false) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "another process".to_string(),
                };
                return Err(Error::Usage(format!(
                    "The data directory {} is in use by another codex-imagen --serve ({holder}); stop it or give another --data-dir.",
                    data_dir.display()
                )));
            }
            Err(err) => return Err(Error::io(format!("Cannot lock {}", path.display()), err)),
        }
        let written = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|_| file.flush());
        written.map_err(|e| Error::io(format!("Cannot write {}", path.display()), e))?;
        Ok(DataLock { _file: file })
    }

    #[cfg(not(unix))]
    pub(crate) fn take(data_dir: &Path) -> Result<DataLock> {
        let path = data_dir.join("serve.lock");
        let file = File::create(&path)
            .map_err(|e| Error::io(format!("Cannot open {}", path.display()), e))?;
        Ok(DataLock { _file: file })
    }
}

/// Files and directories the service creates are for its user only.
pub(crate) fn private_umask() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file mode mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Narrow `dir` to 0700 when the user owns it and it is not a shared sticky directory such as
/// `/tmp`.
pub(crate) fn narrow_dir(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let Ok(meta) = std::fs::metadata(dir) else {
            return;
        };
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() == me && meta.mode() & 0o1000 == 0 && meta.mode() & 0o077 != 0 {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}
