//! A batch line's paths: relative to the batch file's directory (or `--cwd` for stdin), and
//! local references that must exist before anything is sent.

use std::path::{Path, PathBuf};

use crate::foundation::job::Reference;

/// Joins `path` onto `base` unless it is absolute.
pub(crate) fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

pub(crate) fn check_local(base: &Path, key: &str, reference: &str) -> Result<(), String> {
    let Reference::Path(path) = Reference::classify(reference) else {
        return Ok(());
    };
    let path = resolve(base, &path);
    if path.is_file() {
        Ok(())
    } else if let Some(scheme) = crate::foundation::url::unsupported_scheme(reference) {
        let message = crate::foundation::url::unsupported_message("reference", reference, &scheme);
        Err(format!("{key}: {message}"))
    } else {
        Err(format!("{key}: no such file: {}", path.display()))
    }
}
