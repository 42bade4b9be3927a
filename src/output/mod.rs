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
//!
//! The files of this folder, by concern:
//! - `naming`: where each image goes (`--output`, `--out-dir`, automatic and numbered names,
//!   the extension that matches the bytes).
//! - `decode`: base64 to bytes with SHA-256 on a second thread, fingerprints of repeats.
//! - `spill`: a large image decoded to a temporary file while it streams in.
//! - `saver`: saving images as a stream delivers them, or all at once, and the report of each.
//! - `atomic`: writing a file through a temporary sibling and a rename.
//! - `probe`: before a request, that the output directory can be written at all.
//! - `rescue`: an image whose write failed after it arrived, kept under `<data dir>/rescued/`.
//! - `adopt`: images an interrupted batch run saved under a job's stable names, found again.
//! - `inspect`: what came back (format, dimensions, alpha, C2PA), read from the bytes.
//! - `metadata`, `sidecar`, `embed`, `xmp`: the provenance record, and where it is written.

pub(crate) mod adopt;
pub(crate) mod atomic;
pub(crate) mod decode;
pub(crate) mod embed;
pub(crate) mod history;
pub(crate) mod inspect;
pub(crate) mod metadata;
pub(crate) mod naming;
pub(crate) mod probe;
pub(crate) mod rescue;
pub(crate) mod saver;
pub(crate) mod sidecar;
pub(crate) mod spill;
pub(crate) mod thumbnail;
pub(crate) mod xmp;
