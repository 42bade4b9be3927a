//! The job store: `<data dir>/jobs.sqlite`, one row per job, in WAL mode.
//!
//! Every state change is one committed statement before anyone is told of it (the HTTP answer,
//! the log line, a stream event, a callback), so a `kill -9` at any moment loses nothing that
//! was reported. `synchronous=NORMAL` is enough for that: in WAL mode a committed transaction
//! survives the process dying; only a power cut can lose the last ones.
//!
//! One connection behind a mutex: statements take microseconds, and SQLite serialises writers
//! anyway. Images are a JSON array on the row, appended as each file lands, so a job that dies
//! mid-way still lists what it saved. Restart recovery ([`Store::recover`]) fails what a previous
//! process left running (never re-run, so never billed twice) and hands back what was queued.
//!
//! The file holds callback secrets, so it is created 0600 before SQLite opens it (its `-wal` and
//! `-shm` files take the database's mode), and an existing one is narrowed to 0600. Job objects
//! show inputs as `{source, bytes, sha256}` and callback URLs without credentials, whatever an
//! older row holds.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::destinations;
use crate::foundation::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    request TEXT NOT NULL,
    images TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    callback TEXT,
    notification_status TEXT,
    notification_attempts INTEGER NOT NULL DEFAULT 0,
    notification_error TEXT,
    notification_sent_ms INTEGER,
    notification_last_attempt_ms INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_ms);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_ms);
";

/// Job states, as stored and reported.
pub(crate) const QUEUED: &str = "queued";
pub(crate) const RUNNING: &str = "running";
pub(crate) const COMPLETED: &str = "completed";
pub(crate) const FAILED: &str = "failed";
pub(crate) const CANCELLED: &str = "cancelled";

/// One saved image of a job. `index` is 1-based, the `k` of `/v1/files/{id}/{k}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ImageRecord {
    pub index: usize,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub format: String,
    pub revised_prompt: Option<String>,
    /// With `--pool`: the account that made it (email or redacted account id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// Where a job's callback is to be sent. The secret stays in the store: it is never part of a
/// job object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Callback {
    pub url: String,
    pub events: Vec<String>,
    pub secret: Option<String>,
}

/// A job's error: OpenAI's `message`, `type`, `code`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct JobError {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Notification {
    pub status: Option<String>,
    pub attempts: u32,
    pub error: Option<String>,
    pub sent_ms: Option<i64>,
    pub last_attempt_ms: Option<i64>,
}

/// One row.
#[derive(Debug, Clone)]
pub(crate) struct JobRow {
    pub id: String,
    pub status: String,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub request: Value,
    pub images: Vec<ImageRecord>,
    pub error: Option<JobError>,
    pub attempts: u32,
    pub callback: Option<Callback>,
    pub notification: Notification,
}

impl JobRow {
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), COMPLETED | FAILED | CANCELLED)
    }

    /// The job object of the API. `files_base` is `http://host` for image URLs.
    pub(crate) fn to_json(&self, files_base: &str) -> Value {
        let images: Vec<Value> = self
            .images
            .iter()
            .map(|image| {
                let mut value = json!({
                    "index": image.index,
                    "path": image.path,
                    "url": format!("{files_base}/v1/files/{}/{}", self.id, image.index),
                    "bytes": image.bytes,
                    "sha256": image.sha256,
                    "width": image.width,
                    "height": image.height,
                    "format": image.format,
                    "revised_prompt": image.revised_prompt,
                });
                if let (Some(account), Some(map)) = (&image.account, value.as_object_mut()) {
                    map.insert("account".into(), json!(account));
                }
                value
            })
            .collect();
        let callback = self
            .callback
            .as_ref()
            .map(|c| json!({"url": destinations::redacted(&c.url), "events": c.events, "signed": c.secret.is_some()}));
        json!({
            "id": self.id,
            "object": "image.job",
            "status": self.status,
            "created_at": secs(self.created_ms),
            "started_at": self.started_ms.map(secs),
            "finished_at": self.finished_ms.map(secs),
            "request": shown_request(&self.request),
            "images": images,
            "error": self.error,
            "attempts": self.attempts,
            "callback": callback,
            "notificationStatus": self.notification.status,
            "notificationAttempts": self.notification.attempts,
            "notificationError": self.notification.error,
            "notificationSentAt": self.notification.sent_ms.map(secs),
            "notificationLastAttemptAt": self.notification.last_attempt_ms.map(secs),
        })
    }
}

/// The request as a job object shows it: each input as `{source, bytes, sha256}`. Rows from
/// before inputs were judged hold the reference text itself; a data URL shows only its media
/// type.
fn shown_request(request: &Value) -> Value {
    let mut request = request.clone();
    if let Some(map) = request.as_object_mut() {
        if let Some(Value::Array(items)) = map.get_mut("images") {
            for item in items.iter_mut() {
                *item = shown_input(item);
            }
        }
        if let Some(mask) = map.get_mut("mask") {
            *mask = shown_input(mask);
        }
    }
    request
}

fn shown_input(input: &Value) -> Value {
    match input {
        Value::String(text) => {
            let source = if text
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
            {
                let media = text[5..].split([';', ',']).next().unwrap_or_default();
                format!("data:{}", media.chars().take(100).collect::<String>())
            } else {
                text.chars().take(2048).collect()
            };
            json!({"source": source, "bytes": null, "sha256": null})
        }
        Value::Object(map) => json!({
            "source": map.get("source"),
            "bytes": map.get("bytes"),
            "sha256": map.get("sha256"),
        }),
        _ => Value::Null,
    }
}

/// Where a page of the job list starts: after (older than) or before (newer than) a job.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cursor<'a> {
    After(&'a str),
    Before(&'a str),
}

fn secs(ms: i64) -> i64 {
    ms / 1000
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What a restart found.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// Jobs a previous process left running, now failed `service_restarted`.
    pub restarted: Vec<String>,
    /// Jobs still queued, oldest first.
    pub queued: Vec<String>,
    /// Callback deliveries that had not finished.
    pub pending_deliveries: Vec<String>,
    /// Finished rows past the TTL, removed.
    pub expired: usize,
}

pub(crate) struct Store {
    conn: Mutex<Connection>,
}

/// `jobs.sqlite` and any `-wal`/`-shm` beside it exist and are 0600 before SQLite opens them.
fn private_files(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let narrow = |p: &Path| -> std::io::Result<()> {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .and_then(|_| narrow(path))
            .map_err(|e| Error::io(format!("Cannot create the job store {}", path.display()), e))?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = std::path::PathBuf::from(side);
            if side.exists() {
                narrow(&side)
                    .map_err(|e| Error::io(format!("Cannot make {} private", side.display()), e))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn db_err(context: &str, e: rusqlite::Error) -> Error {
    Error::Io(format!("jobs.sqlite: {context}: {e}"))
}

const COLUMNS: &str = "id, status, created_ms, started_ms, finished_ms, request, images, error, \
    attempts, callback, notification_status, notification_attempts, notification_error, \
    notification_sent_ms, notification_last_attempt_ms";

fn row_to_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let request: String = row.get(5)?;
    let images: String = row.get(6)?;
    let error: Option<String> = row.get(7)?;
    let callback: Option<String> = row.get(9)?;
    Ok(JobRow {
        id: row.get(0)?,
        status: row.get(1)?,
        created_ms: row.get(2)?,
        started_ms: row.get(3)?,
        finished_ms: row.get(4)?,
        request: serde_json::from_str(&request).unwrap_or(Value::Null),
        images: serde_json::from_str(&images).unwrap_or_default(),
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        attempts: row.get(8)?,
        callback: callback.and_then(|c| serde_json::from_str(&c).ok()),
        notification: Notification {
            status: row.get(10)?,
            attempts: row.get(11)?,
            error: row.get(12)?,
            sent_ms: row.get(13)?,
            last_attempt_ms: row.get(14)?,
        },
    })
}

fn to_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

impl Store {
    pub(crate) fn open(path: &Path) -> Result<Store> {
        private_files(path)?;
        let conn = Connection::open(path)
            .map_err(|e| Error::Io(format!("Cannot open the job store {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| db_err("busy timeout", e))?;
        // `journal_mode` answers with a row, so it is queried rather than executed.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| db_err("WAL", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Io(format!(
                "jobs.sqlite: WAL mode refused (journal_mode={mode})"
            )));
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(|e| db_err("synchronous", e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| db_err("schema", e))?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&conn).map_err(|e| db_err("statement", e))
    }

    pub(crate) fn insert(
        &self,
        id: &str,
        created_ms: i64,
        request: &Value,
        callback: Option<&Callback>,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO jobs (id, status, created_ms, request, callback) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, QUEUED, created_ms, to_text(request), callback.map(to_text)],
            )
            .map(|_| ())
        })
    }

    /// Queued → running; false when the job is no longer queued (cancelled meanwhile).
    pub(crate) fn start(&self, id: &str, at_ms: i64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET status = ?2, started_ms = ?3 WHERE id = ?1 AND status = ?4",
                params![id, RUNNING, at_ms, QUEUED],
            )
            .map(|n| n == 1)
        })
    }

    /// Running → queued again: the job was taken while every account was at its usage limit,
    /// sent nothing that made an image, and waits for the reset like the jobs behind it.
    pub(crate) fn requeue(&self, id: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET status = ?2, started_ms = NULL WHERE id = ?1 AND status = ?3",
                params![id, QUEUED, RUNNING],
            )
            .map(|n| n == 1)
        })
    }

    pub(crate) fn add_image(&self, id: &str, image: &ImageRecord) -> Result<()> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let images: Option<String> = tx
                .query_row("SELECT images FROM jobs WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let mut list: Vec<ImageRecord> = images
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            list.retain(|existing| existing.index != image.index);
            list.push(image.clone());
            list.sort_by_key(|i| i.index);
            tx.execute(
                "UPDATE jobs SET images = ?2 WHERE id = ?1",
                params![id, to_text(&list)],
            )?;
            tx.commit()
        })
    }

    /// A job reaches `status` (completed, failed, cancelled). Only a job not already finished
    /// changes: false otherwise.
    pub(crate) fn finish(
        &self,
        id: &str,
        status: &str,
        error: Option<&JobError>,
        attempts: u32,
        at_ms: i64,
    ) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET status = ?2, error = ?3, attempts = ?4, finished_ms = ?5 \
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![id, status, error.map(to_text), attempts, at_ms],
            )
            .map(|n| n == 1)
        })
    }

    pub(crate) fn get(&self, id: &str) -> Result<Option<JobRow>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                row_to_job,
            )
            .optional()
        })
    }

    /// Newest first, at most `limit`, from `cursor` on.
    pub(crate) fn list(
        &self,
        status: Option<&str>,
        limit: usize,
        cursor: Option<Cursor<'_>>,
    ) -> Result<Vec<JobRow>> {
        let (bound, order, id) = match cursor {
            None => ("", "DESC", None),
            Some(Cursor::After(id)) => (
                "AND (created_ms, rowid) < (SELECT created_ms, rowid FROM jobs WHERE id = ?3)",
                "DESC",
                Some(id),
            ),
            Some(Cursor::Before(id)) => (
                "AND (created_ms, rowid) > (SELECT created_ms, rowid FROM jobs WHERE id = ?3)",
                "ASC",
                Some(id),
            ),
        };
        let mut rows = self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE (?1 IS NULL OR status = ?1) {bound} \
                 ORDER BY created_ms {order}, rowid {order} LIMIT ?2"
            ))?;
            let rows = match id {
                Some(id) => stmt
                    .query_map(params![status, limit as i64, id], row_to_job)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => stmt
                    .query_map(params![status, limit as i64], row_to_job)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            Ok(rows)
        })?;
        if matches!(cursor, Some(Cursor::Before(_))) {
            rows.reverse();
        }
        Ok(rows)
    }

    pub(crate) fn set_notification(&self, id: &str, n: &Notification) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET notification_status = ?2, notification_attempts = ?3, \
                 notification_error = ?4, notification_sent_ms = ?5, notification_last_attempt_ms = ?6 \
                 WHERE id = ?1",
                params![id, n.status, n.attempts, n.error, n.sent_ms, n.last_attempt_ms],
            )
            .map(|_| ())
        })
    }

    /// Finished rows older than `cutoff_ms` go; their artifacts stay on disk.
    pub(crate) fn expire(&self, cutoff_ms: i64) -> Result<usize> {
        self.with(|c| {
            c.execute(
                "DELETE FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') \
                 AND finished_ms < ?1 AND (notification_status IS NULL OR notification_status != 'pending')",
                [cutoff_ms],
            )
        })
    }

    /// Start-up: running → failed `service_restarted`; the queued and the undelivered listed.
    pub(crate) fn recover(&self, now: i64, ttl_cutoff_ms: i64) -> Result<Recovered> {
        let error = JobError {
            message: "The service stopped while this job was running; images saved before that are listed. It is not run again.".into(),
            kind: "server_error".into(),
            code: "service_restarted".into(),
        };
        let expired = self.expire(ttl_cutoff_ms)?;
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let restarted: Vec<String> = {
                let mut stmt = tx.prepare("SELECT id FROM jobs WHERE status = 'running'")?;
                let ids = stmt.query_map([], |r| r.get(0))?;
                ids.collect::<rusqlite::Result<_>>()?
            };
            tx.execute(
                "UPDATE jobs SET status = 'failed', error = ?1, finished_ms = ?2 WHERE status = 'running'",
                params![to_text(&error), now],
            )?;
            let queued: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_ms, rowid",
                )?;
                let ids = stmt.query_map([], |r| r.get(0))?;
                ids.collect::<rusqlite::Result<_>>()?
            };
            let pending_deliveries: Vec<String> = {
                let mut stmt = tx
                    .prepare("SELECT id FROM jobs WHERE notification_status = 'pending'")?;
                let ids = stmt.query_map([], |r| r.get(0))?;
                ids.collect::<rusqlite::Result<_>>()?
            };
            tx.commit()?;
            Ok(Recovered {
                restarted,
                queued,
                pending_deliveries,
                expired,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("jobs.sqlite")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_job_moves_through_its_states_and_recovers() {
        let (_dir, store) = store();
        store.insert("a", 1, &json!({"prompt": "x"}), None).unwrap();
        store.insert("b", 2, &json!({"prompt": "y"}), None).unwrap();
        assert!(store.start("a", 3).unwrap());
        assert!(!store.start("a", 3).unwrap());
        let image = ImageRecord {
            index: 1,
            path: "/x/1.png".into(),
            bytes: 3,
            sha256: "00".into(),
            width: None,
            height: None,
            format: "png".into(),
            revised_prompt: None,
            account: None,
        };
        store.add_image("a", &image).unwrap();
        let found = store.recover(10, 0).unwrap();
        assert_eq!(found.restarted, vec!["a"]);
        assert_eq!(found.queued, vec!["b"]);
        let a = store.get("a").unwrap().unwrap();
        assert_eq!(a.status, FAILED);
        assert_eq!(a.images, vec![image]);
        assert_eq!(a.error.unwrap().code, "service_restarted");
        let listed: Vec<String> = store
            .list(None, 10, None)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(listed, vec!["b", "a"]);
        assert_eq!(store.expire(11).unwrap(), 1);
        assert!(store.get("a").unwrap().is_none());
    }
}
