//! The atomic store write (SPEC §7): a temporary file beside the store, mode 0600, renamed over
//! it. The temporary name is unique per write, not just per process, so two jobs of one
//! process (or two processes) writing next to each other never clobber each other's file.

use std::path::Path;

use serde_json::Value;

use crate::foundation::error::{Error, Result};

/// Atomic write (SPEC §7): `.<name>.<pid>.<epoch ms>.<unique>.tmp` beside the store, mode 0600,
/// 2-space JSON with a trailing newline, renamed over the store, then chmod 0600. The keyring
/// store's path replaces the keyring entry's secret instead (one call, atomic in the keyring).
pub fn write_store_atomic(path: &Path, doc: &Value) -> Result<()> {
    if let Some(entry) = super::keyring::entry_of(path) {
        return entry.save_document(doc);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(crate::foundation::paths::unique_temp_name(&name));
    let text = serde_json::to_string_pretty(doc)
        .map_err(|e| Error::Io(format!("Cannot encode {}: {e}", path.display())))?;
    let result = write_private(&tmp, format!("{text}\n").as_bytes())
        .and_then(|_| std::fs::rename(&tmp, path))
        .and_then(|_| set_private(path));
    if let Err(err) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(
            format!("Cannot write auth store {}", path.display()),
            err,
        ));
    }
    Ok(())
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(unix)]
pub(crate) fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
pub(crate) fn set_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}
