//! Saving images (SPEC §9.2, §11 "save as soon as it arrives"): each image the moment its call
//! completes, a final image replacing its partial preview in one rename, a byte-identical
//! repeat recognised and skipped, numbered names once an attempt brings a second image; or every
//! image of a complete (non-streamed) answer at once. Each saved file is described from its own
//! bytes ([`super::inspect`]) and reported as an `ImageSaved` event.

use std::path::PathBuf;

use super::decode::{decode_image, Decoded, Fingerprint};
use super::inspect::{self, ImageFormat};
use super::naming::{numbered, OutputPlan};
use super::rescue;
use super::spill::Spill;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::{Event, Reporter};
use crate::foundation::job::SavedImage;

/// One image's data as the backend sent it: its base64 text, or (for a large image streamed
/// in) already decoded to a temporary file beside the output ([`super::spill`]).
#[derive(Debug, PartialEq)]
pub enum ImageData {
    Inline(String),
    Spilled(Spill),
}

impl From<String> for ImageData {
    fn from(b64: String) -> Self {
        ImageData::Inline(b64)
    }
}

impl ImageData {
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        match self {
            ImageData::Inline(b64) => Fingerprint::of(b64),
            ImageData::Spilled(spill) => spill.fingerprint(),
        }
    }

    /// The base64 text, for tests of what was received.
    #[cfg(test)]
    pub fn inline(&self) -> Option<&str> {
        match self {
            ImageData::Inline(b64) => Some(b64),
            ImageData::Spilled(_) => None,
        }
    }
}

/// The merged state of one call across every event so far (without its base64 text).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CallState {
    pub id: Option<String>,
    pub status: Option<String>,
    pub revised_prompt: Option<String>,
    pub partial: Option<bool>,
    pub has_result: bool,
}

impl SavedImage {
    /// A new record for `bytes` written to `path`, annotated from the bytes' headers.
    pub(super) fn new(path: PathBuf, bytes: &[u8], sha256: String) -> Self {
        SavedImage::with_info(path, bytes.len(), sha256, inspect::inspect(bytes))
    }

    /// A new record for an image of `len` bytes moved into place at `path` (a [`spill::Spill`]),
    /// annotated from the file's headers.
    fn from_file(path: PathBuf, len: usize, sha256: String) -> Self {
        let info = inspect::inspect_file(&path);
        SavedImage::with_info(path, len, sha256, info)
    }

    fn with_info(path: PathBuf, len: usize, sha256: String, info: inspect::ImageInfo) -> Self {
        let mut image = SavedImage {
            path,
            bytes: len,
            sha256,
            call_id: None,
            status: None,
            partial: None,
            revised_prompt: None,
            format: None,
            width: None,
            height: None,
            has_alpha: None,
            c2pa: false,
            rescued_from: None,
        };
        image.set_inspection(info);
        image
    }

    /// This image was meant for `intended` and kept at its `path` instead ([`rescue`]).
    fn rescued(mut self, intended: PathBuf) -> Self {
        self.rescued_from = Some(intended);
        self
    }

    fn refresh_inspection_from_file(&mut self) {
        self.set_inspection(inspect::inspect_file(&self.path));
    }

    fn refresh_inspection(&mut self, bytes: &[u8]) {
        self.set_inspection(inspect::inspect(bytes));
    }

    fn set_inspection(&mut self, info: inspect::ImageInfo) {
        self.format = info.format.map(|f| f.as_str().to_string());
        self.width = info.width;
        self.height = info.height;
        self.has_alpha = info.has_alpha;
        self.c2pa = info.c2pa;
    }

    fn refresh_metadata(&mut self, state: &CallState) {
        self.call_id = state.id.clone();
        self.status = state.status.clone();
        self.partial = state.partial;
        self.revised_prompt = state.revised_prompt.clone();
    }
}

/// Put one image at the path `place` chooses for its format (atomically), and describe it.
/// Nothing is placed unless the whole image decoded. When the write fails, the image is kept
/// in the plan's rescue directory ([`rescue`]) and described there.
fn store_image<F>(
    data: ImageData,
    call_id: Option<&str>,
    plan: &OutputPlan,
    progress: &Reporter,
    mut place: F,
) -> Result<SavedImage>
where
    F: FnMut(Option<ImageFormat>) -> Result<PathBuf>,
{
    let rescue_dir = plan.rescue_dir();
    match data {
        ImageData::Inline(b64) => {
            let mut written = None;
            let Decoded { bytes, sha256 } = decode_image(&b64, call_id, |parts| {
                // The magic bytes are at the start of the first part.
                let format = parts.first().and_then(|p| ImageFormat::detect(p));
                let path = place(format)?;
                let kept = rescue::write_or_keep(&path, parts, rescue_dir, progress)?;
                written = Some((path, kept));
                Ok(())
            })?;
            drop(b64);
            let Some((path, kept)) = written else {
                // `decode_image` returns Ok only after `with_bytes` ran and succeeded.
                return Err(Error::Io("image was decoded but not written".to_string()));
            };
            Ok(match kept {
                None => SavedImage::new(path, &bytes, sha256),
                Some(kept) => SavedImage::new(kept, &bytes, sha256).rescued(path),
            })
        }
        ImageData::Spilled(mut spill) => {
            spill.check_decoded(call_id)?;
            let path = place(ImageFormat::detect(spill.head()))?;
            let (len, sha256) = (spill.len(), spill.sha256().to_string());
            Ok(
                match rescue::persist_or_keep(&mut spill, &path, rescue_dir, progress)? {
                    None => SavedImage::from_file(path, len, sha256),
                    Some(kept) => SavedImage::from_file(kept, len, sha256).rescued(path),
                },
            )
        }
    }
}

struct Entry {
    key: String,
    /// Fingerprint of the last base64 text saved for this key: a byte-identical repeat (as in
    /// `response.completed`) is recognised without decoding it again.
    b64: Fingerprint,
}

/// Saves images as a stream delivers them (SPEC §9.2, §11 "save as soon as it arrives").
pub struct StreamingSaver {
    plan: OutputPlan,
    progress: Reporter,
    images: Vec<SavedImage>,
    entries: Vec<Entry>,
    /// How many times decoded bytes were written, for `--verbose` and the benchmark.
    pub writes: usize,
    pub skipped_repeats: usize,
}

impl StreamingSaver {
    pub fn new(plan: OutputPlan, progress: Reporter) -> Self {
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

    /// React to one merged call. `result` is the image data this event carried, if any.
    pub fn on_call(
        &mut self,
        key: &str,
        state: &CallState,
        result: Option<ImageData>,
    ) -> Result<()> {
        let progress = self.progress.clone();
        let position = self.entries.iter().position(|e| e.key == key);
        match (position, result) {
            (Some(i), None) => {
                // Same image as before: only its metadata can have changed.
                self.images[i].refresh_metadata(state);
                Ok(())
            }
            (Some(i), Some(data)) => {
                let fingerprint = data.fingerprint();
                if fingerprint == self.entries[i].b64 {
                    self.skipped_repeats += 1;
                    self.images[i].refresh_metadata(state);
                    progress.verbose(&format!(
                        "image {} repeated unchanged; not rewritten",
                        i + 1
                    ));
                    return Ok(());
                }
                let path = self.images[i].path.clone();
                let changed = match data {
                    ImageData::Inline(b64) => {
                        let Decoded { bytes, sha256: sha } =
                            decode_image(&b64, state.id.as_deref(), |_| Ok(()))?;
                        drop(b64);
                        let changed = sha != self.images[i].sha256;
                        let kept = match changed {
                            true => rescue::write_or_keep(
                                &path,
                                &[&bytes],
                                self.plan.rescue_dir(),
                                &progress,
                            )?,
                            false => None,
                        };
                        let image = &mut self.images[i];
                        if let Some(kept) = kept {
                            image.rescued_from = Some(std::mem::replace(&mut image.path, kept));
                        }
                        image.bytes = bytes.len();
                        image.sha256 = sha;
                        image.refresh_inspection(&bytes);
                        changed
                    }
                    ImageData::Spilled(mut spill) => {
                        spill.check_decoded(state.id.as_deref())?;
                        let changed = spill.sha256() != self.images[i].sha256;
                        let rescue_dir = self.plan.rescue_dir();
                        let image = &mut self.images[i];
                        image.bytes = spill.len();
                        image.sha256 = spill.sha256().to_string();
                        if changed {
                            let kept =
                                rescue::persist_or_keep(&mut spill, &path, rescue_dir, &progress)?;
                            if let Some(kept) = kept {
                                image.rescued_from = Some(std::mem::replace(&mut image.path, kept));
                            }
                            image.refresh_inspection_from_file();
                        }
                        changed
                    }
                };
                if changed {
                    self.writes += 1;
                }
                self.entries[i].b64 = fingerprint;
                self.images[i].refresh_metadata(state);
                if changed {
                    progress.info(&format!(
                        "codex-imagen: updated image {}: {}",
                        i + 1,
                        path.display()
                    ));
                }
                Ok(())
            }
            (None, Some(data)) => self.save_new(key, state, data),
            (None, None) => Ok(()),
        }
    }

    fn save_new(&mut self, key: &str, state: &CallState, data: ImageData) -> Result<()> {
        let progress = self.progress.clone();
        let index = self.images.len();
        let fingerprint = data.fingerprint();
        let plan = self.plan.clone();
        let mut image = store_image(data, state.id.as_deref(), &plan, &progress, |format| {
            if let Err(err) = self.renumber_first_for_multi() {
                // The first image keeps its name; this one is still saved (or rescued).
                self.progress.warn(&format!("codex-imagen: warning: {err}"));
            }
            let path = self
                .plan
                .path_for_format(state.id.as_deref(), index, None, format);
            if let Some(warning) = self.plan.extension_warning(&path, format) {
                self.progress.warn(&warning);
            }
            Ok(path)
        })?;
        self.writes += 1;
        image.refresh_metadata(state);
        progress.emit(Event::ImageSaved {
            index,
            image: image.clone(),
        });
        progress.info(&format!(
            "codex-imagen: saved image {}: {}",
            index + 1,
            image.path.display()
        ));
        self.images.push(image);
        self.entries.push(Entry {
            key: key.to_string(),
            b64: fingerprint,
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
        let format = self.images[0]
            .format
            .as_deref()
            .and_then(ImageFormat::from_extension);
        let ext = format.unwrap_or(ImageFormat::Png).extension();
        let renamed = numbered(&exact, 0, None, ext);
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

/// Save every image of a complete (non-streamed) response, with the total known.
pub fn save_all(
    plan: &OutputPlan,
    calls: Vec<(String, CallState, ImageData)>,
    progress: &Reporter,
) -> Result<Vec<SavedImage>> {
    let total = calls.len();
    let mut images = Vec::with_capacity(total);
    for (index, (_key, state, data)) in calls.into_iter().enumerate() {
        let mut image = store_image(data, state.id.as_deref(), plan, progress, |format| {
            let path = plan.path_for_format(state.id.as_deref(), index, Some(total), format);
            if let Some(warning) = plan.extension_warning(&path, format) {
                progress.warn(&warning);
            }
            Ok(path)
        })?;
        image.refresh_metadata(&state);
        progress.emit(Event::ImageSaved {
            index,
            image: image.clone(),
        });
        images.push(image);
    }
    Ok(images)
}
