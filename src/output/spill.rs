//! Image base64 decoded to disk while it streams in.
//!
//! An image arrives as one JSON string of 8–40 MB of base64 inside one SSE event. Held whole,
//! each image in flight costs its base64 text plus its decoded bytes (about 2.3× the image), so
//! a batch with four 8 MiB images in flight peaked at 55–81 MiB. Instead, once a string grows
//! past the lifting threshold ([`crate::backend::sse`]'s lifter), its text goes to a
//! [`SpillWriter`] chunk by chunk as the network delivers it: each whole base64 quad is decoded
//! at once, SHA-256'd and written to a temporary file beside where the image will be saved, and
//! only a handful of characters are ever held. When the string ends, the [`Spill`] is the image:
//! its length, digest, first bytes (the format) and a fingerprint of its text (to recognise the
//! repeat in `response.completed` without keeping either copy). Saving it is a rename, so no
//! reader sees half an image; a spill that is never saved removes its file when dropped.
//!
//! Decoding follows the whole-text decode exactly ([`super::decode_base64`]): a lifted string
//! holds only base64 alphabet characters and `=`, every quad but the last must be four alphabet
//! characters, and the last one (kept back until the string ends) is decoded by the same engine,
//! so an invalid text fails with the same error and offset as decoding it in one piece would.
//! The text is recoverable too: the decoded quads re-encode to exactly the characters they came
//! from, and everything else is kept as text ([`SpillWriter::into_text`]).

use std::collections::HashSet;
use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;

use super::decode::{hex, invalid_base64, Fingerprint, B64};
use crate::foundation::error::{Error, Result};

/// Decoded bytes gathered before each write, shared by the images in flight in one engine:
/// each gets `SPILL_BUDGET / images in flight`, between [`MIN_BLOCK`] and [`MAX_BLOCK`]. A
/// lone image writes in 192 KiB blocks (32 KiB blocks cost it 8 % more time, in write calls,
/// on a 32 MiB image: `cargo bench --bench e2e`); 64 images in flight through the service
/// hold 32 KiB each, not 12 MiB together (`cargo bench --bench pool`).
const SPILL_BUDGET: usize = 2 * 1024 * 1024;
const MIN_BLOCK: usize = 32 * 1024;
const MAX_BLOCK: usize = 192 * 1024;

fn block_for(in_flight: usize) -> usize {
    (SPILL_BUDGET / in_flight.max(1)).clamp(MIN_BLOCK, MAX_BLOCK)
}

/// Base64 characters decoded into the block at a time, so it never grows past its capacity.
const DECODE_PIECE: usize = 32 * 1024;

/// Base64 characters (256 KiB decoded) decoded at a time from a chunk large enough to be
/// written at once (a fast stream's chunks reach 400 KiB when many images are in flight).
const BIG_PIECE: usize = 256 * 1024 / 3 * 4;

thread_local! {
    /// Where large chunks are decoded before they are written: one per thread rather than
    /// one per image in flight.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many decoded bytes are kept for format detection.
const HEAD: usize = 64;

/// The spill files of one engine that exist right now, so a forced exit (the CLI's watchdog,
/// which never runs the jobs' destructors) can remove them: [`TempFiles::remove_all`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TempFiles {
    live: Arc<Mutex<HashSet<PathBuf>>>,
    /// Directories already swept for files a killed run left ([`TempFiles::sweep_once`]).
    swept: Arc<Mutex<HashSet<PathBuf>>>,
}

/// A spill file whose process is gone and that has not been written to for this long was left
/// by a run that was killed (SIGKILL, a crash, a power cut): nothing will ever rename it. The
/// age guards against a live writer on another host sharing the directory (its pid means
/// nothing here), as a spill in progress is written to continuously and renamed at once.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(10 * 60);

impl TempFiles {
    /// Remove the temporary files (spills and atomic writes' siblings) a killed run left in
    /// `dir`, once per directory per process, so they do not pile up across reruns (a batch
    /// resumed after SIGKILL, say).
    pub(crate) fn sweep_once(&self, dir: &Path) {
        let first = match self.swept.lock() {
            Ok(mut swept) => swept.insert(dir.to_path_buf()),
            Err(_) => false,
        };
        if !first {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let own = i64::from(std::process::id());
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(crate::foundation::paths::temp_name_pid)
            else {
                continue;
            };
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > STALE_AFTER);
            if pid != own && old && !crate::foundation::process::pid_alive(pid) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn add(&self, path: &Path) {
        if let Ok(mut live) = self.live.lock() {
            live.insert(path.to_path_buf());
        }
    }

    /// How many spill files are being written or waiting to be saved: the images in flight.
    fn in_flight(&self) -> usize {
        self.live.lock().map(|live| live.len()).unwrap_or(1)
    }

    fn forget(&self, path: &Path) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(path);
        }
    }

    /// Remove every spill file not yet saved or dropped.
    pub(crate) fn remove_all(&self) {
        if let Ok(mut live) = self.live.lock() {
            for path in live.drain() {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }
}

/// A temporary file that is removed when dropped, unless it was moved into place.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
    kept: bool,
    registry: TempFiles,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
        self.registry.forget(&self.path);
    }
}

/// Where an attempt's spill files go: the directory its images are saved in, and the engine's
/// record of live spill files.
#[derive(Debug, Clone)]
pub(crate) struct SpillTarget {
    pub(crate) dir: PathBuf,
    pub(crate) temps: TempFiles,
}

/// A lifted string being decoded to disk.
pub(crate) struct SpillWriter {
    temp: TempFile,
    file: std::fs::File,
    /// When `out` is written: [`block_for`] the images in flight, checked at each write.
    block: usize,
    /// Decoded bytes not written yet (after a write error: every byte not in the file).
    out: Vec<u8>,
    /// Text not decoded yet: the last quad and any part quad (at most 7 characters), or,
    /// after a decode error, everything from the failing quad on.
    tail: Vec<u8>,
    /// Characters decoded (always whole quads until `finish`).
    decoded_chars: usize,
    /// Decoded bytes hashed so far.
    decoded_len: usize,
    /// How many bytes at the start of `out` are hashed already (after a write error).
    out_hashed: usize,
    head: Vec<u8>,
    sha256: ring::digest::Context,
    text_hash: std::collections::hash_map::DefaultHasher,
    text_len: usize,
    error: Option<base64::DecodeError>,
    io_error: Option<std::io::Error>,
}

impl std::fmt::Debug for SpillWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillWriter")
            .field("path", &self.temp.path)
            .field("text_len", &self.text_len)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

fn round_up4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

impl SpillWriter {
    /// A spill file in `target`'s directory (created when missing). `None` when that cannot
    /// be done: the caller keeps the text in memory instead, and saving reports the problem
    /// as before.
    pub(crate) fn create(target: &SpillTarget) -> Option<SpillWriter> {
        let dir = &target.dir;
        std::fs::create_dir_all(dir).ok()?;
        let path = dir.join(crate::foundation::paths::unique_temp_name("image"));
        target.temps.add(&path);
        let temp = TempFile {
            path,
            kept: false,
            registry: target.temps.clone(),
        };
        // Readable too: a rescue ([`super::rescue`]) reads the image back through this handle.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp.path)
            .ok()?;
        let block = block_for(target.temps.in_flight());
        Some(SpillWriter {
            temp,
            file,
            block,
            out: Vec::with_capacity(block + DECODE_PIECE / 4 * 3),
            tail: Vec::new(),
            decoded_chars: 0,
            decoded_len: 0,
            out_hashed: 0,
            head: Vec::with_capacity(HEAD),
            sha256: ring::digest::Context::new(&ring::digest::SHA256),
            text_hash: Default::default(),
            text_len: 0,
            error: None,
            io_error: None,
        })
    }

    /// More characters of the string (base64 alphabet and `=` only: the lifter's rule).
    pub(crate) fn push(&mut self, text: &[u8]) {
        if text.is_empty() {
            return;
        }
        self.text_hash.write(text);
        self.text_len += text.len();
        if self.error.is_some() {
            self.tail.extend_from_slice(text);
            return;
        }
        // Every quad that ends 4 or more characters before the end seen so far is not the
        // text's last quad, whatever follows: decode those, keep the rest (4 to 7 characters).
        let kept = self.tail.len();
        let decodable = (kept + text.len()).saturating_sub(4) / 4 * 4;
        if decodable <= kept {
            let tail = std::mem::take(&mut self.tail);
            self.decode_quads(&tail[..decodable]);
            self.tail.extend_from_slice(&tail[decodable..]);
            self.tail.extend_from_slice(text);
            return;
        }
        // Complete the kept characters to whole quads with the first few of `text`.
        let fill = round_up4(kept) - kept;
        let mut first = std::mem::take(&mut self.tail);
        first.extend_from_slice(&text[..fill]);
        self.decode_quads(&first);
        let (quads, rest) = text[fill..].split_at(decodable - kept - fill);
        self.decode_quads(quads);
        self.tail.extend_from_slice(rest);
    }

    /// Decode whole quads that are not the text's last. A `=` in them is the first invalid
    /// byte (nothing but the alphabet and `=` reaches here), as the whole-text decode reports
    /// it. On an error, the quads from the failing one on are kept as text.
    fn decode_quads(&mut self, quads: &[u8]) {
        debug_assert!(quads.len().is_multiple_of(4));
        if self.error.is_some() {
            self.tail.extend_from_slice(quads);
            return;
        }
        let (good, bad) = match memchr::memchr(b'=', quads) {
            Some(at) => quads.split_at(at / 4 * 4),
            None => (quads, &[][..]),
        };
        let failed = if good.len() / 4 * 3 >= self.block {
            // Write what the block holds first, then the chunk straight from the scratch buffer.
            self.flush();
            SCRATCH.with_borrow_mut(|scratch| {
                for (i, piece) in good.chunks(BIG_PIECE).enumerate() {
                    scratch.resize(piece.len() / 4 * 3, 0);
                    match B64.decode_slice(piece, &mut scratch[..]) {
                        Ok(n) => {
                            self.decoded_chars += piece.len();
                            keep_head(&mut self.head, &scratch[..n]);
                            self.emit(&scratch[..n]);
                        }
                        Err(err) => return Some((i * BIG_PIECE, err)),
                    }
                }
                None
            })
        } else {
            self.decode_into_block(good)
        };
        if let Some((at, err)) = failed {
            // Not for alphabet-only whole quads; kept as text all the same.
            self.error = Some(shift(err, self.decoded_chars));
            self.tail.extend_from_slice(&quads[at..]);
            return;
        }
        if !bad.is_empty() {
            let at = memchr::memchr(b'=', bad).unwrap_or(0);
            self.error = Some(base64::DecodeError::InvalidByte(
                self.decoded_chars + at,
                b'=',
            ));
            self.tail.extend_from_slice(bad);
        }
    }

    /// Decode whole quads into the block, writing it out when full; on an error, where the
    /// failing piece starts.
    fn decode_into_block(&mut self, good: &[u8]) -> Option<(usize, base64::DecodeSliceError)> {
        for (i, piece) in good.chunks(DECODE_PIECE).enumerate() {
            let start = self.out.len();
            self.out.resize(start + piece.len() / 4 * 3, 0);
            match B64.decode_slice(piece, &mut self.out[start..]) {
                Ok(n) => {
                    self.out.truncate(start + n);
                    self.decoded_chars += piece.len();
                    keep_head(&mut self.head, &self.out[start..]);
                    if self.out.len() >= self.block {
                        self.flush();
                    }
                }
                Err(err) => {
                    self.out.truncate(start);
                    return Some((i * DECODE_PIECE, err));
                }
            }
        }
        None
    }

    /// Hash and write decoded bytes that are not in the block (which must be empty, or hold
    /// only bytes kept after a write error). After a write error they are kept in the block.
    fn emit(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.decoded_len += bytes.len();
        let written = match &self.io_error {
            Some(_) => 0,
            None => self.write_out(bytes),
        };
        self.out.extend_from_slice(&bytes[written..]);
        self.out_hashed = self.out.len();
    }

    /// Write `bytes` to the file; how many were written (all but after a write error, which
    /// is kept).
    fn write_out(&mut self, bytes: &[u8]) -> usize {
        let mut written = 0;
        while written < bytes.len() {
            match self.file.write(&bytes[written..]) {
                Ok(0) => {
                    self.io_error = Some(std::io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(n) => written += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.io_error = Some(err);
                    break;
                }
            }
        }
        written
    }

    /// Hash and write the decoded bytes gathered so far. After a write error they stay here.
    fn flush(&mut self) {
        let fresh = &self.out[self.out_hashed..];
        self.sha256.update(fresh);
        self.decoded_len += fresh.len();
        self.out_hashed = self.out.len();
        if self.io_error.is_some() {
            return;
        }
        let out = std::mem::take(&mut self.out);
        let written = self.write_out(&out);
        self.out = out;
        self.out.drain(..written);
        self.out_hashed -= written;
        // More images in flight than when this one started: give back the block's surplus.
        self.block = block_for(self.temp.registry.in_flight());
        let room = self.block + DECODE_PIECE / 4 * 3;
        if self.out.is_empty() && self.out.capacity() > room {
            self.out.shrink_to(room);
        }
    }

    /// The string did not end as an image string after all: its text as it came, to go back
    /// into the event's text. Whole quads re-encode to exactly the characters they came from.
    pub(crate) fn into_text(self) -> Vec<u8> {
        let mut bytes = std::fs::read(&self.temp.path).unwrap_or_default();
        bytes.extend_from_slice(&self.out);
        let quads = self.decoded_chars / 4 * 3;
        let mut text = base64::engine::general_purpose::STANDARD
            .encode(&bytes[..quads.min(bytes.len())])
            .into_bytes();
        text.extend_from_slice(&self.tail);
        text
    }

    /// The string ended: decode its last quad and close the file.
    pub(crate) fn finish(mut self) -> Spill {
        if self.error.is_none() {
            let tail = std::mem::take(&mut self.tail);
            let start = self.out.len();
            self.out
                .resize(start + base64::decoded_len_estimate(tail.len()), 0);
            match B64.decode_slice(&tail, &mut self.out[start..]) {
                Ok(n) => {
                    self.out.truncate(start + n);
                    keep_head(&mut self.head, &self.out[start..]);
                }
                Err(err) => {
                    self.out.truncate(start);
                    self.error = Some(shift(err, self.decoded_chars));
                }
            }
        }
        self.flush();
        let sha256 = hex(self.sha256.finish().as_ref());
        Spill {
            temp: self.temp,
            file: self.file,
            len: self.decoded_len,
            sha256,
            head: self.head,
            fingerprint: Fingerprint {
                len: self.text_len,
                hash: self.text_hash.finish(),
            },
            error: self.error,
            io_error: self.io_error,
        }
    }
}

/// Keep the first [`HEAD`] decoded bytes (the format's magic number).
fn keep_head(head: &mut Vec<u8>, bytes: &[u8]) {
    if head.len() < HEAD {
        let n = (HEAD - head.len()).min(bytes.len());
        head.extend_from_slice(&bytes[..n]);
    }
}

/// An error of decoding a piece that starts `offset` characters into the text, as decoding the
/// whole text reports it.
fn shift(err: base64::DecodeSliceError, offset: usize) -> base64::DecodeError {
    use base64::DecodeError::*;
    let err = match err {
        base64::DecodeSliceError::DecodeError(err) => err,
        // The output always has room (`decoded_len_estimate`); reported as a length error.
        base64::DecodeSliceError::OutputSliceTooSmall => return InvalidLength(offset),
    };
    match err {
        InvalidByte(at, byte) => InvalidByte(at + offset, byte),
        InvalidLength(len) => InvalidLength(len + offset),
        InvalidLastSymbol(at, byte) => InvalidLastSymbol(at + offset, byte),
        InvalidPadding => InvalidPadding,
    }
}

/// A whole image string, decoded to a temporary file.
#[derive(Debug)]
pub(crate) struct Spill {
    temp: TempFile,
    /// Still open: it reads the image even after the folder around it was removed.
    file: std::fs::File,
    /// Decoded bytes.
    len: usize,
    sha256: String,
    head: Vec<u8>,
    fingerprint: Fingerprint,
    error: Option<base64::DecodeError>,
    io_error: Option<std::io::Error>,
}

impl PartialEq for Spill {
    fn eq(&self, other: &Self) -> bool {
        self.temp.path == other.temp.path
    }
}

impl Spill {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The first decoded bytes: enough for the magic number.
    pub(crate) fn head(&self) -> &[u8] {
        &self.head
    }

    pub(super) fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The decode error, as decoding the whole text would report it.
    #[cfg(test)]
    fn decode_error(&self) -> Option<&base64::DecodeError> {
        self.error.as_ref()
    }

    /// A text that did not decode fails as the same image held in memory would.
    pub(crate) fn check_decoded(&self, call_id: Option<&str>) -> Result<()> {
        match &self.error {
            Some(err) => Err(invalid_base64(call_id, err)),
            None => Ok(()),
        }
    }

    /// For a rescue ([`super::rescue`]): the whole image from its start, read through the
    /// handle this spill still holds; an image whose bytes could not all be written is not.
    pub(crate) fn reader(&mut self) -> std::io::Result<&mut std::fs::File> {
        use std::io::Seek;
        if let Some(err) = &self.io_error {
            return Err(std::io::Error::new(err.kind(), err.to_string()));
        }
        self.file.seek(std::io::SeekFrom::Start(0))?;
        Ok(&mut self.file)
    }

    #[cfg(test)]
    pub(crate) fn temp_path(&self) -> &Path {
        &self.temp.path
    }

    /// Move the image into place at `path` (same directory, so a rename): atomic, and it
    /// replaces what was there. A failed write of the temporary file, or of the rename, is
    /// `Cannot write image <path>`, as for an image written from memory; the temporary file
    /// is removed then.
    pub(crate) fn persist(&mut self, path: &Path) -> Result<()> {
        let placed = match self.io_error.take() {
            Some(err) => Err(err),
            None => std::fs::rename(&self.temp.path, path),
        };
        placed.map_err(|err| Error::io(format!("Cannot write image {}", path.display()), err))?;
        self.temp.kept = true;
        self.temp.registry.forget(&self.temp.path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn target(dir: &Path) -> SpillTarget {
        SpillTarget {
            dir: dir.to_path_buf(),
            temps: TempFiles::default(),
        }
    }

    fn spill_in_pieces(dir: &Path, text: &[u8], size: usize) -> Spill {
        let mut writer = SpillWriter::create(&target(dir)).unwrap();
        for piece in text.chunks(size.max(1)) {
            writer.push(piece);
        }
        writer.finish()
    }

    fn bytes(n: usize, seed: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 7 + seed) as u8).collect()
    }

    #[test]
    fn decodes_hashes_and_fingerprints_as_the_whole_text_in_any_pieces() {
        let dir = dir();
        let two_big_pieces = BIG_PIECE / 4 * 3 * 2 + 5;
        for n in [
            0,
            1,
            2,
            3,
            4,
            5,
            100,
            MAX_BLOCK + 7,
            3 * MAX_BLOCK,
            two_big_pieces,
        ] {
            let image = bytes(n, n);
            let padded = STANDARD.encode(&image);
            for text in [padded.clone(), padded.trim_end_matches('=').to_string()] {
                for size in [1, 2, 3, 5, 7, 4096, 16 * 1024 + 1, text.len().max(1)] {
                    if n > 1000 && size < 1000 {
                        continue;
                    }
                    let spill = spill_in_pieces(dir.path(), text.as_bytes(), size);
                    assert!(spill.decode_error().is_none(), "n {n} size {size}");
                    assert_eq!(spill.len(), n);
                    assert_eq!(spill.sha256(), crate::output::decode::sha256_hex(&image));
                    assert_eq!(spill.head(), &image[..image.len().min(HEAD)]);
                    assert_eq!(spill.fingerprint(), Fingerprint::of(&text));
                    let written = std::fs::read(spill.temp_path()).unwrap();
                    assert!(written == image, "n {n} size {size}");
                }
            }
        }
    }

    #[test]
    fn a_large_network_chunk_does_not_grow_the_write_block() {
        let dir = dir();
        let image = bytes(1 << 20, 3);
        let text = STANDARD.encode(&image);
        let mut writer = SpillWriter::create(&target(dir.path())).unwrap();
        let bound = writer.out.capacity();
        writer.push(text.as_bytes());
        assert_eq!(writer.out.capacity(), bound, "one 1.3 MB push");
        let spill = writer.finish();
        assert_eq!(std::fs::read(spill.temp_path()).unwrap(), image);
    }

    #[test]
    fn the_block_shrinks_as_more_images_are_in_flight() {
        let dir = dir();
        let target = target(dir.path());
        let mut first = SpillWriter::create(&target).unwrap();
        assert_eq!(
            first.block, MAX_BLOCK,
            "a lone image writes in large blocks"
        );
        let others: Vec<SpillWriter> = (1..64)
            .map(|_| SpillWriter::create(&target).unwrap())
            .collect();
        let last = others.last().unwrap();
        assert_eq!(last.block, MIN_BLOCK, "the 64th image in flight");
        assert!(last.out.capacity() <= MIN_BLOCK + DECODE_PIECE);
        // The first one gives back its surplus at its next write.
        let image = bytes(MAX_BLOCK + 1000, 9);
        let text = STANDARD.encode(&image);
        for piece in text.as_bytes().chunks(4096) {
            first.push(piece);
        }
        assert_eq!(first.block, MIN_BLOCK);
        assert!(first.out.capacity() <= MIN_BLOCK + DECODE_PIECE);
        drop(others);
        let spill = first.finish();
        assert_eq!(std::fs::read(spill.temp_path()).unwrap(), image);
    }

    #[test]
    fn invalid_text_fails_with_the_whole_decode_error() {
        let dir = dir();
        let good = STANDARD.encode(bytes(3000, 1));
        let mut cases: Vec<String> = vec![
            format!("{good}A"),
            format!("{good}AB="),
            format!("{good}A==="),
            format!("{good}===="),
            format!("{good}AB=A"),
            "A".to_string(),
            "=".to_string(),
            "AB=C".to_string(),
            "AAA=AAAA".to_string(),
            // Non-zero trailing bits in the last symbol.
            "AB==".replace('B', "F"),
            "AAF=".to_string(),
        ];
        for at in [
            0,
            1,
            2,
            3,
            4,
            100,
            2001,
            good.len() - 5,
            good.len() - 4,
            good.len() - 1,
        ] {
            let mut text = good.clone().into_bytes();
            text[at] = b'=';
            cases.push(String::from_utf8(text).unwrap());
            let mut text = good.clone().into_bytes();
            text[at] = b'=';
            text[at + 1..].iter_mut().take(2).for_each(|b| *b = b'=');
            cases.push(String::from_utf8(text).unwrap());
        }
        for text in cases {
            let whole = B64.decode(&text);
            for size in [1, 3, 4, 5, 13, 1000, text.len()] {
                let spill = spill_in_pieces(dir.path(), text.as_bytes(), size);
                match &whole {
                    Ok(decoded) => {
                        assert!(spill.decode_error().is_none(), "{text:.40} size {size}");
                        assert!(&std::fs::read(spill.temp_path()).unwrap() == decoded);
                    }
                    Err(err) => assert_eq!(
                        spill.decode_error(),
                        Some(err),
                        "{:?} at size {size}",
                        &text[text.len().saturating_sub(12)..]
                    ),
                }
            }
        }
    }

    #[test]
    fn a_writer_gives_back_its_text_exactly() {
        let dir = dir();
        let good = STANDARD.encode(bytes(MAX_BLOCK * 2, 3));
        let mut with_pad_inside = good.clone();
        with_pad_inside.insert_str(5000, "==");
        for text in [
            good.clone(),
            good.trim_end_matches('=').to_string(),
            with_pad_inside,
        ] {
            for size in [7, 16 * 1024, text.len()] {
                let mut writer = SpillWriter::create(&target(dir.path())).unwrap();
                for piece in text.as_bytes().chunks(size) {
                    writer.push(piece);
                }
                let path = writer.temp.path.clone();
                assert!(writer.into_text() == text.as_bytes(), "size {size}");
                assert!(!path.exists(), "the file goes with the writer");
            }
        }
    }

    #[test]
    fn a_spill_is_renamed_into_place_or_removed() {
        let dir = dir();
        let text = STANDARD.encode(b"an image");
        let mut kept = spill_in_pieces(dir.path(), text.as_bytes(), 3);
        let target = dir.path().join("x.png");
        kept.persist(&target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"an image");
        let dropped = spill_in_pieces(dir.path(), text.as_bytes(), 3);
        drop(dropped);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.png")]);
    }

    #[test]
    fn no_writer_when_the_directory_cannot_be_made() {
        let dir = dir();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        assert!(SpillWriter::create(&target(&file.join("sub"))).is_none());
    }

    #[test]
    fn stale_spill_files_of_dead_processes_are_swept_once_per_directory() {
        let dir = dir();
        let temps = TempFiles::default();
        // A pid that cannot be alive, and ours.
        let dead = i64::from(i32::MAX);
        let own = std::process::id();
        let make = |name: &str, age_secs: u64| {
            let path = dir.path().join(name);
            let file = std::fs::File::create(&path).unwrap();
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
            file.set_modified(when).unwrap();
            path
        };
        let stale = make(&format!(".image.{dead}.1.abc.tmp"), 3600);
        let young = make(&format!(".image.{dead}.1.def.tmp"), 10);
        let ours = make(&format!(".image.{own}.1.abc.tmp"), 3600);
        let write = make(&format!(".pic.png.{dead}.1.abc.tmp"), 3600);
        let image = make("a.png", 3600);
        let lookalike = make(&format!(".notes.{dead}.tmp"), 3600);
        temps.sweep_once(dir.path());
        assert!(!stale.exists());
        assert!(
            !write.exists(),
            "an atomic write's sibling left by a killed run goes too"
        );
        for kept in [&young, &ours, &image, &lookalike] {
            assert!(kept.exists(), "{}", kept.display());
        }
        let again = make(&format!(".image.{dead}.2.abc.tmp"), 3600);
        temps.sweep_once(dir.path());
        assert!(again.exists(), "once per directory per process");
    }

    #[test]
    fn live_spill_files_are_known_until_saved_or_dropped_and_can_be_removed_at_once() {
        let dir = dir();
        let target = target(dir.path());
        let text = STANDARD.encode(b"an image");
        let mut writers: Vec<SpillWriter> = (0..3)
            .map(|_| SpillWriter::create(&target).unwrap())
            .collect();
        writers.iter_mut().for_each(|w| w.push(text.as_bytes()));
        assert_eq!(target.temps.len(), 3);
        let mut saved = writers.pop().unwrap().finish();
        saved.persist(&dir.path().join("a.png")).unwrap();
        drop(writers.pop());
        assert_eq!(target.temps.len(), 1);
        // A forced exit: the last writer's destructor never runs.
        std::mem::forget(writers.pop());
        target.temps.remove_all();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.png")]);
    }
}
