//! Writing a file so no reader (and no crash) ever sees half of it: a temporary sibling with a
//! name unique per write (`paths::unique_temp_name`), then a rename.

use std::io::Write;
use std::path::Path;

use crate::foundation::error::{Error, Result};
use crate::foundation::paths;

/// Write `bytes` to `path` atomically: a temp file in the same directory, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_parts(path, &[bytes])
}

/// [`write_atomic`] for bytes held in consecutive parts.
pub fn write_atomic_parts(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("Cannot create {}", dir.display()), e))?;
    replace_file(path, parts, false)
        .map_err(|err| Error::io(format!("Cannot write image {}", path.display()), err))
}

/// The one atomic replace for files the tool writes beside an image: a temporary sibling with
/// a name unique per write ([`paths::unique_temp_name`]), then a rename, so no reader sees half
/// a file and concurrent writers never share a temporary. `sync` flushes it to disk before the
/// rename. The temporary is removed on any failure.
pub(crate) fn replace_file(path: &Path, parts: &[&[u8]], sync: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(paths::unique_temp_name(&name));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        parts.iter().try_for_each(|part| f.write_all(part))?;
        if sync {
            f.sync_all()?;
        }
        Ok(())
    });
    let result = written.and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
