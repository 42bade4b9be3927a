//! Checking, before anything is paid for, that images can be written where they will go
//! (issue #20, "check before paying"): the directory is created (as saving would), then a probe
//! file with a name unique to this check ([`paths::unique_temp_name`]) is created and removed.
//! Every front-end reaches this through the engine before the first backend request, so an
//! output location that cannot be written costs nothing; the caller words the error and names
//! its own flag or field.
//!
//! A probe proves the directory was writable a moment ago, no more: a disk that fills up or a
//! folder removed while the image streams in is handled when the image is saved
//! ([`super::rescue`]).

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use crate::foundation::paths;

/// Create `dir` if needed and prove a file can be created and removed in it. The error is the
/// operating system's (`Permission denied`, `Not a directory`, `No space left on device`, ...).
pub(crate) fn check_writable(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir_all(dir) {
        // A file where a folder should be: "File exists" would puzzle more than it explains.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Err(not_a_directory()),
        other => other?,
    }
    let probe = dir.join(paths::unique_temp_name("probe"));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

fn not_a_directory() -> io::Error {
    #[cfg(unix)]
    return io::Error::from_raw_os_error(libc::ENOTDIR);
    #[cfg(not(unix))]
    return io::Error::new(io::ErrorKind::NotADirectory, "Not a directory");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_directory_is_created_and_left_empty() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b");
        check_writable(&out).unwrap();
        assert!(out.is_dir());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    }

    #[test]
    fn a_path_under_a_regular_file_is_refused_with_the_os_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file.txt");
        std::fs::write(&file, b"x").unwrap();
        for dir in [file.join("out"), file.clone()] {
            let err = check_writable(&dir).unwrap_err();
            assert!(err.to_string().starts_with("Not a directory"), "{err}");
        }
    }
}
