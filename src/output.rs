//! Saving images (SPEC §9): where each image goes, and writing it the moment it arrives.
//!
//! Files are written to a temporary sibling and renamed into place, so a reader (or a crash)
//! never sees half an image, and a final image replaces its partial preview in one step.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::backend::calls::CallState;
use crate::error::{Error, Result};
use crate::paths;
use crate::progress::Progress;

/// Standard alphabet; padding optional, as Node's `Buffer.from(b64, "base64")` accepted.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One saved image, as reported in the JSON summary (SPEC §9.4).
#[derive(Debug, Clone, PartialEq)]
pub struct SavedImage {
    pub path: PathBuf,
    pub bytes: usize,
    pub sha256: String,
    pub call_id: Option<String>,
    pub status: Option<String>,
    pub partial: Option<bool>,
    pub revised_prompt: Option<String>,
}

impl SavedImage {
    fn refresh_metadata(&mut self, state: &CallState) {
        self.call_id = state.id.clone();
        self.status = state.status.clone();
        self.partial = state.partial;
        self.revised_prompt = state.revised_prompt.clone();
    }
}

/// Where images go for one attempt.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    /// `--output` as typed.
    output: Option<String>,
    out_dir: PathBuf,
    timestamp: String,
}

impl OutputPlan {
    pub fn new(output: Option<String>, out_dir: PathBuf) -> Self {
        OutputPlan {
            output,
            out_dir,
            timestamp: chrono::Utc::now().format("%Y%m%d-%H%M%SZ").to_string(),
        }
    }

    /// `--output` naming one exact file (not a directory).
    fn exact_file(&self) -> Option<PathBuf> {
        let output = self.output.as_deref()?;
        (!looks_like_directory(output)).then(|| paths::resolve(output))
    }

    fn auto_dir(&self) -> PathBuf {
        match self.output.as_deref() {
            Some(output) => paths::resolve(output),
            None => self.out_dir.clone(),
        }
    }

    /// Path for image `index` (0-based); `total` is known only when not streaming.
    pub fn path_for(&self, call_id: Option<&str>, index: usize, total: Option<usize>) -> PathBuf {
        match self.exact_file() {
            Some(file) if total.is_none() && index == 0 => file,
            Some(file) => numbered(&file, index, total),
            None => self
                .auto_dir()
                .join(auto_name(call_id, index, total, &self.timestamp)),
        }
    }
}

/// `--output` ending in a separator or without an extension is a directory.
fn looks_like_directory(output: &str) -> bool {
    output.ends_with('/') || output.ends_with('\\') || Path::new(output).extension().is_none()
}

fn padded_index(index: usize, total: Option<usize>) -> String {
    let width = match total {
        Some(t) if t > 1 => t.to_string().len(),
        _ => 1,
    };
    format!("{:0width$}", index + 1)
}

fn safe_call_id(call_id: Option<&str>) -> String {
    match call_id {
        Some(id) => id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        None => "image".to_string(),
    }
}

fn auto_name(call_id: Option<&str>, index: usize, total: Option<usize>, timestamp: &str) -> String {
    let index_part = match total {
        Some(1) => String::new(),
        _ => format!("{}-", padded_index(index, total)),
    };
    format!(
        "codex-imagen-{timestamp}-{index_part}{}.png",
        safe_call_id(call_id)
    )
}

/// `<stem>-<n><ext>` beside the exact file (`.png` when it has no extension).
fn numbered(file: &Path, index: usize, total: Option<usize>) -> PathBuf {
    if total == Some(1) {
        return file.to_path_buf();
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = file
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_else(|| ".png".to_string());
    file.with_file_name(format!("{stem}-{}{ext}", padded_index(index, total)))
}

pub fn decode_base64(b64: &str, call_id: Option<&str>) -> Result<Vec<u8>> {
    B64.decode(b64.trim_end()).map_err(|err| {
        Error::InvalidImage(format!(
            "Image call {} returned base64 that does not decode: {err}",
            call_id.unwrap_or("(no id)")
        ))
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Write `bytes` to `path` atomically: a temp file in the same directory, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("Cannot create {}", dir.display()), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    if let Err(err) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(
            format!("Cannot write image {}", path.display()),
            err,
        ));
    }
    Ok(())
}

struct Entry {
    key: String,
    /// SHA-256 of the last base64 text written for this key: a byte-identical repeat (as in
    /// `response.completed`) is recognised without decoding it again.
    b64_digest: [u8; 32],
}

/// Saves images as a stream delivers them (SPEC §9.2, §11 "save as soon as it arrives").
pub struct StreamingSaver {
    plan: OutputPlan,
    progress: Progress,
    images: Vec<SavedImage>,
    entries: Vec<Entry>,
    /// How many times decoded bytes were written, for `--verbose` and the benchmark.
    pub writes: usize,
    pub skipped_repeats: usize,
}

impl StreamingSaver {
    pub fn new(plan: OutputPlan, progress: Progress) -> Self {
        StreamingSaver {
            plan,
            progress,
            images: Vec::new(),
            entries: Vec::new(),
            writes: 0,
            skipped_repeats: 0,
        }
    }

    pub fn images(&self) -> &[SavedImage] {
        &self.images
    }

    pub fn into_images(self) -> Vec<SavedImage> {
        self.images
    }

    /// React to one merged call. `result` is the base64 text this event carried, if any.
    pub fn on_call(&mut self, key: &str, state: &CallState, result: Option<String>) -> Result<()> {
        let progress = self.progress;
        let position = self.entries.iter().position(|e| e.key == key);
        match (position, result) {
            (Some(i), None) => {
                // Same image as before: only its metadata can have changed.
                self.images[i].refresh_metadata(state);
                Ok(())
            }
            (Some(i), Some(b64)) => {
                let digest: [u8; 32] = Sha256::digest(b64.as_bytes()).into();
                if digest == self.entries[i].b64_digest {
                    self.skipped_repeats += 1;
                    self.images[i].refresh_metadata(state);
                    progress.verbose(&format!(
                        "image {} repeated unchanged; not rewritten",
                        i + 1
                    ));
                    return Ok(());
                }
                let bytes = decode_base64(&b64, state.id.as_deref())?;
                drop(b64);
                let path = self.images[i].path.clone();
                let sha = sha256_hex(&bytes);
                let changed = sha != self.images[i].sha256;
                if changed {
                    write_atomic(&path, &bytes)?;
                    self.writes += 1;
                }
                self.entries[i].b64_digest = digest;
                let image = &mut self.images[i];
                image.bytes = bytes.len();
                image.sha256 = sha;
                image.refresh_metadata(state);
                if changed {
                    progress.info(&format!(
                        "codex-imagen: updated image {}: {}",
                        i + 1,
                        path.display()
                    ));
                }
                Ok(())
            }
            (None, Some(b64)) => self.save_new(key, state, b64),
            (None, None) => Ok(()),
        }
    }

    fn save_new(&mut self, key: &str, state: &CallState, b64: String) -> Result<()> {
        let progress = self.progress;
        let digest: [u8; 32] = Sha256::digest(b64.as_bytes()).into();
        let bytes = decode_base64(&b64, state.id.as_deref())?;
        drop(b64);
        self.renumber_first_for_multi()?;
        let index = self.images.len();
        let path = self.plan.path_for(state.id.as_deref(), index, None);
        write_atomic(&path, &bytes)?;
        self.writes += 1;
        let mut image = SavedImage {
            path,
            bytes: bytes.len(),
            sha256: sha256_hex(&bytes),
            call_id: None,
            status: None,
            partial: None,
            revised_prompt: None,
        };
        image.refresh_metadata(state);
        progress.info(&format!(
            "codex-imagen: saved image {}: {}",
            index + 1,
            image.path.display()
        ));
        self.images.push(image);
        self.entries.push(Entry {
            key: key.to_string(),
            b64_digest: digest,
        });
        Ok(())
    }

    /// With an exact `--output` file, a second image turns the first into `<stem>-1<ext>`.
    fn renumber_first_for_multi(&mut self) -> Result<()> {
        if self.images.len() != 1 {
            return Ok(());
        }
        let Some(exact) = self.plan.exact_file() else {
            return Ok(());
        };
        if self.images[0].path != exact {
            return Ok(());
        }
        let renamed = numbered(&exact, 0, None);
        std::fs::rename(&exact, &renamed)
            .map_err(|e| Error::io(format!("Cannot rename {}", exact.display()), e))?;
        self.progress.info(&format!(
            "codex-imagen: renamed first image for multi-output: {}",
            renamed.display()
        ));
        self.images[0].path = renamed;
        Ok(())
    }
}

impl crate::backend::stream::CallSink for StreamingSaver {
    fn on_call(&mut self, key: &str, state: &CallState, result: Option<String>) -> Result<()> {
        StreamingSaver::on_call(self, key, state, result)
    }
}

/// Save every image of a complete (non-streamed) response, with the total known.
pub fn save_all(
    plan: &OutputPlan,
    calls: Vec<(String, CallState, String)>,
) -> Result<Vec<SavedImage>> {
    let total = calls.len();
    let mut images = Vec::with_capacity(total);
    for (index, (_key, state, b64)) in calls.into_iter().enumerate() {
        let bytes = decode_base64(&b64, state.id.as_deref())?;
        let path = plan.path_for(state.id.as_deref(), index, Some(total));
        write_atomic(&path, &bytes)?;
        let mut image = SavedImage {
            path,
            bytes: bytes.len(),
            sha256: sha256_hex(&bytes),
            call_id: None,
            status: None,
            partial: None,
            revised_prompt: None,
        };
        image.refresh_metadata(&state);
        images.push(image);
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(output: Option<&str>, dir: &Path) -> OutputPlan {
        OutputPlan {
            output: output.map(str::to_string),
            out_dir: dir.to_path_buf(),
            timestamp: "20261122-024900Z".into(),
        }
    }

    #[test]
    fn automatic_names_follow_the_spec() {
        let dir = PathBuf::from("/out");
        let p = plan(None, &dir);
        assert_eq!(
            p.path_for(Some("ig 1/x"), 0, None),
            dir.join("codex-imagen-20261122-024900Z-1-ig_1_x.png")
        );
        assert_eq!(
            p.path_for(None, 0, Some(1)),
            dir.join("codex-imagen-20261122-024900Z-image.png")
        );
        assert_eq!(
            p.path_for(Some("a"), 2, Some(12)),
            dir.join("codex-imagen-20261122-024900Z-03-a.png")
        );
    }

    #[test]
    fn exact_output_files_are_numbered_for_many() {
        let p = plan(Some("/x/pic.png"), Path::new("/out"));
        assert_eq!(p.path_for(Some("a"), 0, None), PathBuf::from("/x/pic.png"));
        assert_eq!(
            p.path_for(Some("a"), 1, None),
            PathBuf::from("/x/pic-2.png")
        );
        assert_eq!(
            p.path_for(Some("a"), 0, Some(1)),
            PathBuf::from("/x/pic.png")
        );
        assert_eq!(
            p.path_for(Some("a"), 0, Some(10)),
            PathBuf::from("/x/pic-01.png")
        );
        let d = plan(Some("/x/dir"), Path::new("/out"));
        assert_eq!(
            d.path_for(Some("a"), 0, None),
            PathBuf::from("/x/dir/codex-imagen-20261122-024900Z-1-a.png")
        );
        let d = plan(Some("/x/dir.v2/"), Path::new("/out"));
        assert!(d.path_for(Some("a"), 0, None).starts_with("/x/dir.v2"));
    }

    #[test]
    fn base64_decodes_with_or_without_padding_and_rejects_garbage() {
        assert_eq!(decode_base64("aGk=", None).unwrap(), b"hi");
        assert_eq!(decode_base64("aGk", None).unwrap(), b"hi");
        let err = decode_base64("!!!!", Some("ig_9")).unwrap_err().to_string();
        assert!(err.contains("ig_9"), "{err}");
    }
}
