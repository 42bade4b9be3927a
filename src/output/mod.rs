//! Saving images (SPEC §9): where each image goes, and writing it the moment it arrives.
//!
//! Files are written to a temporary sibling and renamed into place, so a reader (or a crash)
//! never sees half an image, and a final image replaces its partial preview in one step.
//!
//! Cost (measured with `cargo bench --bench e2e`, see bench/RESULTS.md): an image is 8–40 MB of
//! base64, and on CPUs without SHA extensions SHA-256 is the slowest step of saving it (sha2:
//! 190 MB/s, ring: 350–450 MB/s; base64 decoding runs at 1.1 GB/s). So the SHA-256 that §9.4
//! asks for is computed with ring, on a second thread that follows the decoder block by block
//! while this one decodes and writes; and a byte-identical repeat (`response.completed` repeats
//! every image) is recognised by a SipHash fingerprint of its base64 text (3.6 GB/s) instead of
//! a second SHA-256, without decoding it.
//!
//! That describes an image held in memory as base64 ([`ImageData::Inline`]: the Images endpoint,
//! `--no-stream`, small images). A large image streamed in arrives already decoded to a
//! temporary file beside its destination ([`ImageData::Spilled`], [`spill`]), hashed and
//! fingerprinted on the way, and saving it is a rename.

pub(crate) mod inspect;
pub(crate) mod metadata;
pub(crate) mod provenance;
pub(crate) mod spill;

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use crate::backend::calls::CallState;
use crate::foundation::events::{Event, Reporter};
use crate::foundation::job::{Naming, SavedImage};
use crate::foundation::error::{Error, Result};
use crate::foundation::paths;
use inspect::ImageFormat;

/// Standard alphabet; padding optional, as Node's `Buffer.from(b64, "base64")` accepted.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl SavedImage {
    /// A new record for `bytes` written to `path`, annotated from the bytes' headers.
    fn new(path: PathBuf, bytes: &[u8], sha256: String) -> Self {
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
        };
        image.set_inspection(info);
        image
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

/// Where images go for one attempt.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    /// `--output` as typed, and resolved against the job's base directory.
    output: Option<(String, PathBuf)>,
    out_dir: PathBuf,
    timestamp: String,
    naming: Naming,
    temps: spill::TempFiles,
}

impl OutputPlan {
    /// `env` is the engine's environment with the job's base directory.
    pub fn new(output: Option<String>, out_dir: PathBuf, env: &paths::Environment) -> Self {
        OutputPlan {
            output: output.map(|typed| {
                let resolved = env.resolve(&typed);
                (typed, resolved)
            }),
            out_dir,
            timestamp: chrono::Utc::now().format("%Y%m%d-%H%M%SZ").to_string(),
            naming: Naming::Spec,
            temps: spill::TempFiles::default(),
        }
    }

    /// Automatic names follow `naming` instead of the SPEC's.
    pub fn with_naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// `--output` naming one exact file (not a directory).
    fn exact_file(&self) -> Option<PathBuf> {
        let (typed, resolved) = self.output.as_ref()?;
        (!looks_like_directory(typed)).then(|| resolved.clone())
    }

    /// Live spill files are recorded in `temps` (the engine's), for a forced exit.
    pub(crate) fn with_temp_files(mut self, temps: spill::TempFiles) -> Self {
        self.temps = temps;
        self
    }

    /// Where a large image is decoded while it streams in ([`spill`]): the directory every
    /// image of this plan is saved in, so saving it is a rename.
    pub(crate) fn spill_target(&self) -> spill::SpillTarget {
        let dir = match self.exact_file() {
            Some(file) => file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            None => self.auto_dir(),
        };
        spill::SpillTarget {
            dir,
            temps: self.temps.clone(),
        }
    }

    fn auto_dir(&self) -> PathBuf {
        match &self.output {
            Some((_, resolved)) => resolved.clone(),
            None => self.out_dir.clone(),
        }
    }

    /// Path for image `index` (0-based) of a PNG; `total` is known only when not streaming.
    #[cfg(test)]
    pub fn path_for(&self, call_id: Option<&str>, index: usize, total: Option<usize>) -> PathBuf {
        self.path_for_format(call_id, index, total, Some(ImageFormat::Png))
    }

    /// Path for image `index` whose bytes are `format`: automatic and numbered names take its
    /// extension (PNG when unrecognised); an exact `--output` file is used as given.
    pub(crate) fn path_for_format(
        &self,
        call_id: Option<&str>,
        index: usize,
        total: Option<usize>,
        format: Option<ImageFormat>,
    ) -> PathBuf {
        let ext = format.unwrap_or(ImageFormat::Png).extension();
        match self.exact_file() {
            Some(file) if total.is_none() && index == 0 => file,
            Some(file) if total == Some(1) => file,
            Some(file) => numbered(&file, index, total, ext),
            None => self.auto_dir().join(match &self.naming {
                Naming::Spec => auto_name(call_id, index, total, &self.timestamp, ext),
                Naming::Stem(stem) => format!("{}-{}.{ext}", safe_name(stem), index + 1),
                Naming::Index => format!("{}.{ext}", index + 1),
            }),
        }
    }

    /// The warning for an exact `--output` file whose extension is not the image's format.
    fn extension_warning(&self, path: &Path, format: Option<ImageFormat>) -> Option<String> {
        let (typed, _) = self.output.as_ref()?;
        let format = format?;
        if self.exact_file().as_deref() != Some(path) {
            return None;
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        if ImageFormat::from_extension(&ext) == Some(format) {
            return None;
        }
        Some(format!(
            "codex-imagen: warning: --output {typed} has extension .{ext} but the image is {}",
            format.as_str()
        ))
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

/// A file-name part from a caller's id: only `[A-Za-z0-9_.-]` survive (no separators, no `..`).
fn safe_name(stem: &str) -> String {
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match cleaned.trim_start_matches('.') {
        "" => "image".to_string(),
        rest => rest.to_string(),
    }
}

fn auto_name(
    call_id: Option<&str>,
    index: usize,
    total: Option<usize>,
    timestamp: &str,
    ext: &str,
) -> String {
    let index_part = match total {
        Some(1) => String::new(),
        _ => format!("{}-", padded_index(index, total)),
    };
    format!(
        "codex-imagen-{timestamp}-{index_part}{}.{ext}",
        safe_call_id(call_id)
    )
}

/// `<stem>-<n>.<ext>` beside the exact file, `ext` being the image's own format: once the
/// name is generated anyway, it should say what the file is. The exact file's extension is
/// kept when it already names that format (`pic.jpeg` stays `pic-1.jpeg`).
fn numbered(file: &Path, index: usize, total: Option<usize>, ext: &str) -> PathBuf {
    if total == Some(1) {
        return file.to_path_buf();
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let own = file.extension().map(|e| e.to_string_lossy().into_owned());
    let ext = match own {
        Some(own) if ImageFormat::from_extension(&own) == ImageFormat::from_extension(ext) => own,
        _ => ext.to_string(),
    };
    file.with_file_name(format!("{stem}-{}.{ext}", padded_index(index, total)))
}

pub fn decode_base64(b64: &str, call_id: Option<&str>) -> Result<Vec<u8>> {
    B64.decode(b64.trim_end())
        .map_err(|err| invalid_base64(call_id, &err))
}

fn invalid_base64(call_id: Option<&str>, err: &base64::DecodeError) -> Error {
    Error::InvalidImage(format!(
        "Image call {} returned base64 that does not decode: {err}",
        call_id.unwrap_or("(no id)")
    ))
}

/// One image's data as the backend sent it: its base64 text, or (for a large image streamed
/// in) already decoded to a temporary file beside the output ([`spill`]).
#[derive(Debug, PartialEq)]
pub enum ImageData {
    Inline(String),
    Spilled(spill::Spill),
}

impl From<String> for ImageData {
    fn from(b64: String) -> Self {
        ImageData::Inline(b64)
    }
}

impl ImageData {
    fn fingerprint(&self) -> Fingerprint {
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

/// Put one image at the path `place` chooses for its format (atomically), and describe it.
/// Nothing is placed unless the whole image decoded.
fn store_image<F>(data: ImageData, call_id: Option<&str>, mut place: F) -> Result<SavedImage>
where
    F: FnMut(Option<ImageFormat>) -> Result<PathBuf>,
{
    match data {
        ImageData::Inline(b64) => {
            let mut written = None;
            let Decoded { bytes, sha256 } = decode_image(&b64, call_id, |parts| {
                // The magic bytes are at the start of the first part.
                let format = parts.first().and_then(|p| ImageFormat::detect(p));
                let path = place(format)?;
                write_atomic_parts(&path, parts)?;
                written = Some(path);
                Ok(())
            })?;
            drop(b64);
            let Some(path) = written else {
                // `decode_image` returns Ok only after `with_bytes` ran and succeeded.
                return Err(Error::Io("image was decoded but not written".to_string()));
            };
            Ok(SavedImage::new(path, &bytes, sha256))
        }
        ImageData::Spilled(spill) => {
            spill.check_decoded(call_id)?;
            let path = place(ImageFormat::detect(spill.head()))?;
            let (len, sha256) = (spill.len(), spill.sha256().to_string());
            spill.persist(&path)?;
            Ok(SavedImage::from_file(path, len, sha256))
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn hex(digest: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    digest
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// An image's bytes and the hex SHA-256 of them.
pub struct Decoded {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// Base64 characters decoded per block; the hasher thread follows one block behind.
const DECODE_BLOCK: usize = 256 * 1024;

/// Decode an image, hand its bytes (as consecutive parts) to `with_bytes` — which typically
/// writes them — and SHA-256 them. Nothing reaches `with_bytes` unless the whole text decodes.
///
/// Small images go step by step. From two blocks up, the hash runs on a scoped thread that
/// takes each block as soon as it is decoded, while this thread decodes the next one and then
/// runs `with_bytes`: the hash, the slowest step, overlaps both (32 MiB of base64 decoded and
/// hashed: 120 ms one after the other, 80 ms overlapped, on the 2-core bench machine).
pub fn decode_image<F>(b64: &str, call_id: Option<&str>, mut with_bytes: F) -> Result<Decoded>
where
    F: FnMut(&[&[u8]]) -> Result<()>,
{
    let text = b64.trim_end().as_bytes();
    if text.len() < 2 * DECODE_BLOCK {
        return decode_step_by_step(b64, call_id, with_bytes);
    }
    let mut bytes = vec![0u8; base64::decoded_len_estimate(text.len())];
    let (len, used, digest) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<&[u8]>();
        // Without a thread (the OS refused one) the blocks go nowhere and are hashed below.
        let hasher = std::thread::Builder::new()
            .name("codex-imagen-sha256".into())
            .spawn_scoped(scope, move || {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                for block in rx {
                    ctx.update(block);
                }
                ctx.finish()
            });
        let parts = decode_blocks(text, &mut bytes, &tx);
        drop(tx);
        let len = parts
            .as_ref()
            .map(|p| p.iter().map(|b| b.len()).sum::<usize>());
        let used = parts.map(|p| with_bytes(&p));
        (len, used, hasher.ok().and_then(|h| h.join().ok()))
    });
    let (Some(len), Some(used)) = (len, used) else {
        // A block failed, so the text does not decode as a whole either: this reports that
        // error, with its offset into the whole text.
        return decode_step_by_step(b64, call_id, with_bytes);
    };
    used?;
    bytes.truncate(len);
    let sha256 = match digest {
        Some(digest) => hex(digest.as_ref()),
        None => sha256_hex(&bytes),
    };
    Ok(Decoded { bytes, sha256 })
}

fn decode_step_by_step<F>(b64: &str, call_id: Option<&str>, mut with_bytes: F) -> Result<Decoded>
where
    F: FnMut(&[&[u8]]) -> Result<()>,
{
    let bytes = decode_base64(b64, call_id)?;
    with_bytes(&[&bytes])?;
    let sha256 = sha256_hex(&bytes);
    Ok(Decoded { bytes, sha256 })
}

/// Decode `text` into `out` block by block, sending each decoded part to `tx` at once. `None`
/// when a block does not decode, or decodes short (padding inside the text).
fn decode_blocks<'a>(
    text: &[u8],
    out: &'a mut [u8],
    tx: &std::sync::mpsc::Sender<&'a [u8]>,
) -> Option<Vec<&'a [u8]>> {
    let mut parts = Vec::with_capacity(text.len() / DECODE_BLOCK + 1);
    let mut rest = out;
    let mut blocks = text.chunks(DECODE_BLOCK).peekable();
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none();
        let room = if last {
            rest.len()
        } else {
            block.len() / 4 * 3
        };
        let (part, tail) = std::mem::take(&mut rest).split_at_mut(room);
        let n = B64.decode_slice(block, part).ok()?;
        if !last && n != room {
            return None;
        }
        let part: &'a [u8] = part;
        let part = &part[..n];
        let _ = tx.send(part);
        parts.push(part);
        rest = tail;
    }
    Some(parts)
}

/// Identifies base64 text without keeping it: its length and SipHash-1-3 (std's fixed-key
/// `DefaultHasher`, the same in every run of this binary). Only ever compared with the
/// fingerprint of the same call's previous text, so a 2^-64 chance of a false match is moot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: usize,
    hash: u64,
}

impl Fingerprint {
    fn of(b64: &str) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        hasher.write(b64.as_bytes());
        Fingerprint {
            len: b64.len(),
            hash: hasher.finish(),
        }
    }
}

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
                        if changed {
                            write_atomic(&path, &bytes)?;
                        }
                        let image = &mut self.images[i];
                        image.bytes = bytes.len();
                        image.sha256 = sha;
                        image.refresh_inspection(&bytes);
                        changed
                    }
                    ImageData::Spilled(spill) => {
                        spill.check_decoded(state.id.as_deref())?;
                        let changed = spill.sha256() != self.images[i].sha256;
                        let image = &mut self.images[i];
                        image.bytes = spill.len();
                        image.sha256 = spill.sha256().to_string();
                        if changed {
                            spill.persist(&path)?;
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
        let mut image = store_image(data, state.id.as_deref(), |format| {
            self.renumber_first_for_multi()?;
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

impl crate::backend::stream::CallSink for StreamingSaver {
    fn on_call(&mut self, key: &str, state: &CallState, result: Option<ImageData>) -> Result<()> {
        StreamingSaver::on_call(self, key, state, result)
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
        let mut image = store_image(data, state.id.as_deref(), |format| {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(output: Option<&str>, dir: &Path) -> OutputPlan {
        let env = paths::Environment::from_vars([], "/home/me".into(), dir.to_path_buf());
        OutputPlan {
            timestamp: "20261122-024900Z".into(),
            ..OutputPlan::new(output.map(str::to_string), dir.to_path_buf(), &env)
        }
    }

    #[test]
    fn stem_and_index_naming_are_stable_and_take_the_format_extension() {
        let dir = Path::new("/out");
        let stem = plan(None, dir).with_naming(Naming::Stem("line-3".into()));
        assert_eq!(
            stem.path_for_format(Some("ig_x"), 0, None, Some(ImageFormat::Webp)),
            PathBuf::from("/out/line-3-1.webp")
        );
        assert_eq!(
            stem.path_for_format(None, 1, Some(2), Some(ImageFormat::Png)),
            PathBuf::from("/out/line-3-2.png")
        );
        let unsafe_stem = plan(None, dir).with_naming(Naming::Stem("../a/b c".into()));
        assert_eq!(
            unsafe_stem.path_for_format(None, 0, None, None),
            PathBuf::from("/out/_a_b_c-1.png")
        );
        let index = plan(None, dir).with_naming(Naming::Index);
        assert_eq!(
            index.path_for_format(None, 2, None, Some(ImageFormat::Jpeg)),
            PathBuf::from("/out/3.jpg")
        );
        // An exact --output file still wins.
        let exact = plan(Some("x.png"), dir).with_naming(Naming::Index);
        assert_eq!(
            exact.path_for_format(None, 0, None, None),
            PathBuf::from("/out/x.png")
        );
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
    fn large_images_decode_and_hash_the_same_in_blocks() {
        use base64::engine::general_purpose::STANDARD;
        let bytes: Vec<u8> = (0..3 * DECODE_BLOCK + 5)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let padded = STANDARD.encode(&bytes);
        for text in [
            padded.clone(),
            padded.trim_end_matches('=').to_string(),
            format!("{padded}\n"),
        ] {
            let mut parts_len = 0;
            let decoded = decode_image(&text, None, |parts| {
                parts_len = parts.iter().map(|p| p.len()).sum();
                Ok(())
            })
            .unwrap();
            assert_eq!(parts_len, bytes.len());
            assert!(decoded.bytes == bytes);
            assert_eq!(decoded.sha256, sha256_hex(&bytes));
        }
    }

    #[test]
    fn large_invalid_base64_fails_as_a_whole_decode_does() {
        use base64::engine::general_purpose::STANDARD;
        let good = STANDARD.encode(vec![1u8; 3 * DECODE_BLOCK]);
        // Padding at the end of an inner block, a bad byte, a bad length: each one error, with
        // the offset into the whole text.
        let mut padded_inside = good.clone();
        padded_inside.replace_range(DECODE_BLOCK - 2..DECODE_BLOCK, "==");
        let mut bad_byte = good.clone();
        bad_byte.replace_range(DECODE_BLOCK + 9..DECODE_BLOCK + 10, "!");
        let bad_length = format!("{good}A");
        for text in [padded_inside, bad_byte, bad_length] {
            let whole = decode_base64(&text, Some("ig_big"))
                .unwrap_err()
                .to_string();
            let blocks = decode_image(&text, Some("ig_big"), |_| panic!("nothing to write"))
                .err()
                .unwrap()
                .to_string();
            assert_eq!(blocks, whole);
            assert!(whole.contains("ig_big"), "{whole}");
        }
    }

    #[test]
    fn sha256_hex_is_lowercase_hex_of_the_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn fingerprints_tell_texts_apart_and_repeats_together() {
        assert_eq!(Fingerprint::of("AAAA"), Fingerprint::of("AAAA"));
        assert_ne!(Fingerprint::of("AAAA"), Fingerprint::of("AAAB"));
        assert_ne!(Fingerprint::of("AAAA"), Fingerprint::of("AAAA=="));
    }

    #[test]
    fn base64_decodes_with_or_without_padding_and_rejects_garbage() {
        assert_eq!(decode_base64("aGk=", None).unwrap(), b"hi");
        assert_eq!(decode_base64("aGk", None).unwrap(), b"hi");
        let err = decode_base64("!!!!", Some("ig_9")).unwrap_err().to_string();
        assert!(err.contains("ig_9"), "{err}");
    }
}
