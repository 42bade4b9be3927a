//! Keeping an image whose write failed after it arrived (issue #20): it was paid for, so it is
//! never thrown away. The output location is probed before the request ([`super::probe`]), but
//! a disk can fill up or a folder be replaced while an image streams in; then the image goes to
//! `<data dir>/rescued/` under its own file name (made unique, never overwriting an earlier
//! rescue), a warning line names both paths, and the saved image carries the path it was meant
//! for ([`crate::foundation::job::SavedImage::rescued_from`]) so every report can say so.
//! Nothing here deletes a rescued file.
//!
//! An image held in memory is written again from its bytes. One decoded to a temporary file
//! while it streamed in ([`super::spill`]) is moved there, or copied through the handle the
//! spill still holds when its folder is gone; one whose temporary file could not be written
//! (the disk filled up under it) cannot be kept and fails as before.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::atomic::write_atomic_parts;
use super::spill::Spill;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::Reporter;
use crate::foundation::paths;

/// Where a rescued image goes: `dir` (the data directory's `rescued/`), under the intended
/// file name, or that name with a unique suffix when it is taken.
fn rescue_path(dir: &Path, intended: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = intended
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image.png".to_string());
    let plain = dir.join(&name);
    if !plain.exists() {
        return Ok(plain);
    }
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let stem = Path::new(&name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = Path::new(&name)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    Ok(dir.join(format!("{stem}-{}{ext}", &unique[..12])))
}

fn warn(progress: &Reporter, failed: &Error, kept: &Path) {
    progress.warn(&format!(
        "codex-imagen: warning: {failed}; the image is kept at {}",
        kept.display()
    ));
}

/// Write `parts` to `path`; when that fails and there is a rescue directory, keep them there.
/// `Ok(None)`: written at `path`; `Ok(Some(kept))`: rescued to `kept`; the write's own error
/// when the image could be kept nowhere.
pub(crate) fn write_or_keep(
    path: &Path,
    parts: &[&[u8]],
    rescue: Option<&Path>,
    progress: &Reporter,
) -> Result<Option<PathBuf>> {
    let failed = match write_atomic_parts(path, parts) {
        Ok(()) => return Ok(None),
        Err(err) => err,
    };
    let Some(dir) = rescue else {
        return Err(failed);
    };
    let kept = rescue_path(dir, path)
        .and_then(|kept| super::atomic::replace_file(&kept, parts, true).map(|()| kept));
    match kept {
        Ok(kept) => {
            warn(progress, &failed, &kept);
            Ok(Some(kept))
        }
        Err(_) => Err(failed),
    }
}

/// Move a spilled image into place at `path`, or keep it in `rescue` as [`write_or_keep`] does.
pub(crate) fn persist_or_keep(
    spill: &mut Spill,
    path: &Path,
    rescue: Option<&Path>,
    progress: &Reporter,
) -> Result<Option<PathBuf>> {
    let failed = match spill.persist(path) {
        Ok(()) => return Ok(None),
        Err(err) => err,
    };
    let Some(dir) = rescue else {
        return Err(failed);
    };
    let kept = rescue_path(dir, path).and_then(|kept| copy_spill(spill, &kept).map(|()| kept));
    match kept {
        Ok(kept) => {
            warn(progress, &failed, &kept);
            Ok(Some(kept))
        }
        Err(_) => Err(failed),
    }
}

/// The spill's bytes into `kept` through a temporary sibling (never half a file in place).
fn copy_spill(spill: &mut Spill, kept: &Path) -> std::io::Result<()> {
    let dir = kept.parent().unwrap_or(Path::new("."));
    let name = kept
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(paths::unique_temp_name(&name));
    let copied = (|| {
        let mut out = std::fs::File::create(&tmp)?;
        std::io::copy(spill.reader()?, &mut out)?;
        out.flush()?;
        out.sync_all()?;
        std::fs::rename(&tmp, kept)
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::events::{Event, EventSink};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);
    impl EventSink for Lines {
        fn event(&self, event: &Event) {
            if let Event::Warning(text) = event {
                self.0.lock().unwrap().push(text.clone());
            }
        }
    }

    #[test]
    fn an_image_that_cannot_be_written_is_kept_under_a_unique_name() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("out");
        std::fs::write(&blocker, b"a file where the folder was").unwrap();
        let intended = blocker.join("pic.png");
        let rescue = dir.path().join("data/rescued");
        let lines = Arc::new(Lines::default());
        let progress = Reporter::new(lines.clone());
        let first = write_or_keep(&intended, &[b"one"], Some(&rescue), &progress)
            .unwrap()
            .unwrap();
        assert_eq!(first, rescue.join("pic.png"));
        let second = write_or_keep(&intended, &[b"two"], Some(&rescue), &progress)
            .unwrap()
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(std::fs::read(&first).unwrap(), b"one");
        assert_eq!(std::fs::read(&second).unwrap(), b"two");
        let warnings = lines.0.lock().unwrap().clone();
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains(&first.display().to_string()));
        // Without a rescue directory the write's own error is the answer.
        let err = write_or_keep(&intended, &[b"x"], None, &progress).unwrap_err();
        assert!(
            err.to_string().contains(&blocker.display().to_string()),
            "{err}"
        );
        // A path that can be written is written, nothing rescued.
        let fine = dir.path().join("ok/pic.png");
        assert_eq!(
            write_or_keep(&fine, &[b"ok"], Some(&rescue), &progress).unwrap(),
            None
        );
    }

    #[test]
    fn a_spilled_image_whose_folder_was_removed_is_copied_out_through_its_handle() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let target = crate::output::spill::SpillTarget {
            dir: out.clone(),
            temps: Default::default(),
        };
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let mut writer = crate::output::spill::SpillWriter::create(&target).unwrap();
        writer.push(text.as_bytes());
        let mut spill = writer.finish();
        std::fs::remove_dir_all(&out).unwrap();
        let rescue = dir.path().join("data/rescued");
        let progress = Reporter::new(Arc::new(Lines::default()));
        let kept = persist_or_keep(&mut spill, &out.join("big.png"), Some(&rescue), &progress)
            .unwrap()
            .unwrap();
        assert_eq!(kept, rescue.join("big.png"));
        assert_eq!(std::fs::read(&kept).unwrap(), bytes);
    }
}
