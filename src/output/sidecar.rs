//! `--metadata sidecar`: the provenance record as `<image>.json` beside the image, written
//! atomically (unique temp file in the same directory, fsync, rename), so a crash or a
//! concurrent job never leaves a half-written `.json` next to an image.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::metadata::MetadataError;

/// `a.png` → `a.png.json`: keeps the pairing obvious and never collides with another image.
pub(crate) fn sidecar_path(image_path: &Path) -> PathBuf {
    let mut name = OsString::from(image_path.as_os_str());
    name.push(".json");
    PathBuf::from(name)
}

/// Writes `<image path>.json` atomically and returns its path.
pub(crate) fn write_sidecar(image_path: &Path, record: &Value) -> Result<PathBuf, MetadataError> {
    let target = sidecar_path(image_path);
    let mut text = serde_json::to_string_pretty(record).map_err(|e| MetadataError::Io {
        path: target.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    text.push('\n');
    // Synced before the rename: a crash right after it must not leave an empty record.
    super::atomic::replace_file(&target, &[text.as_bytes()], true).map_err(|source| {
        MetadataError::Io {
            path: target.display().to_string(),
            source,
        }
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::metadata::tests::record;
    use serde_json::json;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("imaging-meta-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn sidecar_written_atomically() {
        let dir = temp_dir("sidecar");
        let image = dir.join("a.png");
        let path = write_sidecar(&image, &record()).unwrap();
        assert_eq!(path, dir.join("a.png.json"));
        let back: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, record());
        // Overwrite in place, and no temp files left behind.
        write_sidecar(&image, &json!({"x": 1})).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("a.png.json")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sidecar_failure_leaves_no_temp() {
        let dir = temp_dir("fail");
        // The target is a directory, so rename fails after the temp file was written.
        std::fs::create_dir(dir.join("b.png.json")).unwrap();
        std::fs::write(dir.join("b.png.json").join("keep"), b"x").unwrap();
        let err = write_sidecar(&dir.join("b.png"), &json!({})).unwrap_err();
        assert!(err.to_string().starts_with("cannot write "), "{err}");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("b.png.json")]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(write_sidecar(Path::new("/nonexistent-dir-xyz/a.png"), &json!({})).is_err());
    }
}
