//! The results file: one JSON line per finished job, written so that a run killed at any moment
//! (SIGKILL included) leaves valid JSON Lines, and read back to decide what a rerun may skip.
//!
//! Design: a line is serialised whole and handed to the kernel in one `write` on a file opened
//! for append, then `sync_data`, so the only damage a kill can do is a torn last line. Opening
//! for a new run repairs such a tail first: if the bytes after the last newline still parse as
//! JSON (killed between the write and the newline being seen) they get their newline, else they
//! are cut, so the next line is never glued to garbage. Reading ignores any line that does not
//! parse. Resume trusts only what is on disk now: a job is skipped when some `succeeded` (or
//! `adopted`, or a `skipped` line older runs wrote) line for its id lists images that all exist
//! with the recorded SHA-256, re-hashed. A skip writes no line (the earlier one still says it
//! all), so reruns do not grow the file. Records keep keys in the documented order via
//! struct field order (serde_json is built with `preserve_order`).

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::foundation::job::SavedImage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Succeeded,
    Failed,
    /// Written by earlier versions for a job a rerun skipped; still read, never written now.
    Skipped,
    NotStarted,
    /// Its images were found on disk under the job's names, saved by an interrupted run that
    /// could not record them; adopted without a request.
    Adopted,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    pub(crate) format: Option<String>,
    pub(crate) revised_prompt: Option<String>,
    /// With `--pool`: the account that made it (email or redacted account id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) account: Option<String>,
    /// With `--backend auto`: the route that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) route: Option<String>,
}

impl From<&SavedImage> for ImageRecord {
    fn from(image: &SavedImage) -> Self {
        ImageRecord {
            path: image.path.clone(),
            bytes: image.bytes as u64,
            sha256: image.sha256.clone(),
            width: image.width,
            height: image.height,
            format: image.format.clone(),
            revised_prompt: image.revised_prompt.clone(),
            account: None,
            route: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ErrorRecord {
    pub(crate) message: String,
    /// The engine's ErrorKind in snake_case, or a batch-only kind such as `interrupted`.
    pub(crate) kind: String,
    pub(crate) exit_code: i32,
}

/// One results line. Field order is the documented key order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResultRecord {
    pub(crate) id: String,
    pub(crate) line: usize,
    pub(crate) status: Status,
    pub(crate) prompt: String,
    pub(crate) images: Vec<ImageRecord>,
    pub(crate) error: Option<ErrorRecord>,
    pub(crate) attempts: u32,
    pub(crate) started_at: Option<String>,
    pub(crate) finished_at: Option<String>,
    pub(crate) seconds: Option<f64>,
}

/// The results file opened for appending, its torn tail (if any) already repaired.
pub(crate) struct ResultsFile {
    file: File,
    path: PathBuf,
}

impl ResultsFile {
    pub(crate) fn open(path: &Path) -> io::Result<ResultsFile> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        repair_tail(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(ResultsFile {
            file,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and makes it durable before returning.
    pub(crate) fn append(&mut self, record: &ResultRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()?;
        self.file.sync_data()
    }
}

/// Terminates or truncates a last line that lacks its newline. Missing file: nothing to do.
pub(crate) fn repair_tail(path: &Path) -> io::Result<()> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    // Scan back in blocks for the last newline; results lines are short, so this reads little.
    let mut end = len;
    let mut tail_start = 0u64;
    let mut buf = vec![0u8; 8192];
    'scan: while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(pos) = buf[..n].iter().rposition(|&b| b == b'\n') {
            tail_start = start + pos as u64 + 1;
            break 'scan;
        }
        end = start;
    }
    file.seek(SeekFrom::Start(tail_start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let complete = serde_json::from_slice::<serde_json::Value>(&tail)
        .map(|v| v.is_object())
        .unwrap_or(false);
    if complete {
        file.seek(SeekFrom::End(0))?;
        file.write_all(b"\n")?;
    } else {
        file.set_len(tail_start)?;
    }
    file.sync_data()
}

/// Earlier results, by id: the image sets that a rerun may trust if they still verify.
#[derive(Default)]
pub(crate) struct ResumeIndex {
    by_id: HashMap<String, Vec<Candidate>>,
}

#[derive(Clone)]
struct Candidate {
    prompt: String,
    images: Vec<ImageRecord>,
}

/// What the index says about one job.
pub(crate) struct Verified {
    /// The earlier run's prompt differed: the skip is by id, as documented, but worth a warning.
    pub(crate) prompt_changed: bool,
}

impl ResumeIndex {
    /// Reads every parseable line; a torn or foreign line is ignored, never fatal.
    pub(crate) fn load(path: &Path) -> io::Result<ResumeIndex> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ResumeIndex::default()),
            Err(e) => return Err(e),
        };
        let mut index = ResumeIndex::default();
        for raw in text.split(|&b| b == b'\n') {
            let Ok(record) = serde_json::from_slice::<ResultRecord>(raw) else {
                continue;
            };
            if matches!(
                record.status,
                Status::Succeeded | Status::Skipped | Status::Adopted
            ) && !record.images.is_empty()
            {
                index.by_id.entry(record.id).or_default().push(Candidate {
                    prompt: record.prompt,
                    images: record.images,
                });
            }
        }
        Ok(index)
    }

    /// Newest candidate first, since a later run may have overwritten an earlier run's files.
    pub(crate) fn verify(&self, id: &str, prompt: &str) -> Option<Verified> {
        let candidates = self.by_id.get(id)?;
        candidates
            .iter()
            .rev()
            .find(|c| c.images.iter().all(image_intact))
            .map(|c| Verified {
                prompt_changed: c.prompt != prompt,
            })
    }
}

fn image_intact(image: &ImageRecord) -> bool {
    match sha256_file(&image.path) {
        Ok(sha) => sha.eq_ignore_ascii_case(&image.sha256),
        Err(_) => false,
    }
}

pub(crate) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> ResultRecord {
        ResultRecord {
            id: id.into(),
            line: 1,
            status: Status::Failed,
            prompt: "p".into(),
            images: vec![],
            error: None,
            attempts: 1,
            started_at: None,
            finished_at: None,
            seconds: None,
        }
    }

    #[test]
    fn keys_are_in_documented_order() {
        let line = serde_json::to_string(&record("a")).unwrap();
        let keys: Vec<String> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line)
                .unwrap()
                .keys()
                .cloned()
                .collect();
        assert_eq!(
            keys,
            [
                "id",
                "line",
                "status",
                "prompt",
                "images",
                "error",
                "attempts",
                "started_at",
                "finished_at",
                "seconds"
            ]
        );
    }

    #[test]
    fn torn_invalid_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let good = serde_json::to_string(&record("a")).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"id\":\"b\",\"li")).unwrap();
        let mut f = ResultsFile::open(&path).unwrap();
        f.append(&record("c")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(text.ends_with('\n'));
        for l in lines {
            serde_json::from_str::<ResultRecord>(l).unwrap();
        }
    }

    #[test]
    fn torn_complete_tail_is_terminated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let good = serde_json::to_string(&record("a")).unwrap();
        std::fs::write(&path, &good).unwrap();
        let mut f = ResultsFile::open(&path).unwrap();
        f.append(&record("c")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn torn_single_line_without_newline_is_cut_to_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"id\":").unwrap();
        repair_tail(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn load_ignores_garbage_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "not json\n{\"id\":\"x\"}\n{\"id\":\"y\",\"sta").unwrap();
        let index = ResumeIndex::load(&path).unwrap();
        assert!(index.by_id.is_empty());
    }
}
