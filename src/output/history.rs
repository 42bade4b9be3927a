//! The history: one small row per saved image in `<data dir>/history.sqlite`, written by the
//! engine for every front-end (one-shot CLI, `--count`, `--batch`, `--serve`, `--mcp`) and read
//! by `--history` and the studio's gallery.
//!
//! Design:
//! - A row holds what the provenance record says (prompt, revised prompt, requested controls,
//!   format, size, alpha, C2PA, references with their SHA-256, account) and the image's path —
//!   file paths, never image bytes, so the file stays small with tens of thousands of images.
//! - The parent of an edit is found, not passed: the newest row whose image has the SHA-256 of
//!   one of the job's references. So an edit made by the CLI from a file the studio showed, or
//!   by the studio from a gallery image, links the same way.
//! - WAL, `synchronous=NORMAL`, a busy timeout (several processes record at once), and the
//!   file created 0600 before SQLite opens it (the WAL and SHM files inherit its mode): prompts
//!   are private.
//! - Newest first is `ORDER BY id DESC` with keyset paging (`id < before`) on the primary key,
//!   so the first page costs the same with 10 rows or 100,000. Search is `LIKE` over prompt and
//!   revised prompt (escaped), which scans but stays in milliseconds at that size.
//! - Recording is best effort: the caller logs a failure and the job goes on.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::foundation::error::{Error, Result};
use crate::foundation::sync::lock;

/// The history file's name inside the data directory.
pub(crate) const FILE_NAME: &str = "history.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    path TEXT NOT NULL,
    prompt TEXT NOT NULL,
    revised_prompt TEXT,
    requested TEXT NOT NULL DEFAULT '{}',
    format TEXT,
    width INTEGER,
    height INTEGER,
    has_alpha INTEGER,
    c2pa INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    model TEXT,
    backend TEXT,
    refs TEXT NOT NULL DEFAULT '[]',
    parent INTEGER,
    account TEXT
);
CREATE INDEX IF NOT EXISTS images_sha256 ON images(sha256);
CREATE INDEX IF NOT EXISTS images_parent ON images(parent);
CREATE INDEX IF NOT EXISTS images_created ON images(created_ms);
";

const COLUMNS: &str = "id, created_ms, path, prompt, revised_prompt, requested, format, width, \
                       height, has_alpha, c2pa, sha256, bytes, model, backend, refs, parent, account";

/// One image to record.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewImage {
    pub created_ms: i64,
    pub path: String,
    pub prompt: String,
    pub revised_prompt: Option<String>,
    /// The requested controls (`ImageControls::requested_json`).
    pub requested: Value,
    pub format: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub has_alpha: Option<bool>,
    pub c2pa: bool,
    pub sha256: String,
    pub bytes: u64,
    pub model: Option<String>,
    pub backend: Option<String>,
    /// `(source as recorded, SHA-256 when known)` of each reference.
    pub references: Vec<(String, Option<String>)>,
    pub account: Option<String>,
}

/// One recorded image.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub id: i64,
    pub created_ms: i64,
    pub path: String,
    pub prompt: String,
    pub revised_prompt: Option<String>,
    pub requested: Value,
    pub format: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub has_alpha: Option<bool>,
    pub c2pa: bool,
    pub sha256: String,
    pub bytes: u64,
    pub model: Option<String>,
    pub backend: Option<String>,
    pub references: Value,
    pub parent: Option<i64>,
    pub account: Option<String>,
}

impl Row {
    /// The row as the JSON `--history --json` prints and the studio reads.
    pub(crate) fn to_json(&self) -> Value {
        let created = chrono::DateTime::from_timestamp_millis(self.created_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        json!({
            "id": self.id,
            "created": created,
            "created_ms": self.created_ms,
            "path": self.path,
            "missing": !Path::new(&self.path).is_file(),
            "prompt": self.prompt,
            "revised_prompt": self.revised_prompt,
            "requested": self.requested,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "has_alpha": self.has_alpha,
            "c2pa": self.c2pa,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "model": self.model,
            "backend": self.backend,
            "references": self.references,
            "parent": self.parent,
            "account": self.account,
        })
    }
}

/// What to list: newest first, `limit` rows older than `before` (an id), matching the rest.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    /// Words that must all appear in the prompt or the revised prompt (case-insensitive).
    pub text: Option<String>,
    pub format: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub before: Option<i64>,
    pub limit: usize,
}

/// The history file, opened on first use.
pub(crate) struct History {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("path", &self.path).finish()
    }
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("history {}: {e}", path.display()))
}

impl History {
    /// The history at `path`; nothing is touched until the first call.
    pub(crate) fn at(path: PathBuf) -> History {
        History {
            path,
            conn: Mutex::new(None),
        }
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn with<R>(&self, work: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R> {
        let mut guard = lock(&self.conn);
        if guard.is_none() {
            *guard = Some(open(&self.path)?);
        }
        match guard.as_ref() {
            Some(conn) => work(conn).map_err(|e| db_err(&self.path, e)),
            None => Err(db_err(&self.path, "not open")),
        }
    }

    /// Record one image; returns its id.
    pub(crate) fn record(&self, image: &NewImage) -> Result<i64> {
        let refs: Vec<Value> = image
            .references
            .iter()
            .map(|(source, sha)| json!({"source": source, "sha256": sha}))
            .collect();
        self.with(|conn| {
            let mut parent = None;
            for sha in image.references.iter().filter_map(|(_, s)| s.as_deref()) {
                parent = conn
                    .query_row(
                        "SELECT id FROM images WHERE sha256 = ?1 ORDER BY id DESC LIMIT 1",
                        [sha],
                        |r| r.get::<_, i64>(0),
                    )
                    .optional()?;
                if parent.is_some() {
                    break;
                }
            }
            conn.execute(
                "INSERT INTO images (created_ms, path, prompt, revised_prompt, requested, format, \
                 width, height, has_alpha, c2pa, sha256, bytes, model, backend, refs, parent, \
                 account) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
                 ?15, ?16, ?17)",
                params![
                    image.created_ms,
                    image.path,
                    image.prompt,
                    image.revised_prompt,
                    image.requested.to_string(),
                    image.format,
                    image.width,
                    image.height,
                    image.has_alpha,
                    image.c2pa,
                    image.sha256,
                    image.bytes as i64,
                    image.model,
                    image.backend,
                    Value::Array(refs).to_string(),
                    parent,
                    image.account,
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    /// Newest first, as `query` asks.
    pub(crate) fn list(&self, query: &Query) -> Result<Vec<Row>> {
        let mut sql = format!("SELECT {COLUMNS} FROM images WHERE 1=1");
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(text) = query.text.as_deref() {
            for word in text.split_whitespace() {
                let pattern = format!("%{}%", escape_like(word));
                values.push(pattern.clone().into());
                let a = values.len();
                values.push(pattern.into());
                let b = values.len();
                sql.push_str(&format!(
                    " AND (prompt LIKE ?{a} ESCAPE '\\' OR IFNULL(revised_prompt, '') LIKE ?{b} ESCAPE '\\')"
                ));
            }
        }
        if let Some(format) = query.format.as_deref() {
            values.push(format.to_string().into());
            sql.push_str(&format!(" AND format = ?{}", values.len()));
        }
        if let Some(since) = query.since_ms {
            values.push(since.into());
            sql.push_str(&format!(" AND created_ms >= ?{}", values.len()));
        }
        if let Some(until) = query.until_ms {
            values.push(until.into());
            sql.push_str(&format!(" AND created_ms < ?{}", values.len()));
        }
        if let Some(before) = query.before {
            values.push(before.into());
            sql.push_str(&format!(" AND id < ?{}", values.len()));
        }
        values.push((query.limit.clamp(1, 1000) as i64).into());
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", values.len()));
        self.with(|conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = statement.query_map(rusqlite::params_from_iter(values), row)?;
            rows.collect()
        })
    }

    pub(crate) fn get(&self, id: i64) -> Result<Option<Row>> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM images WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
        })
    }

    /// The images made from image `id` (edits whose reference it was), oldest first.
    pub(crate) fn children(&self, id: i64) -> Result<Vec<Row>> {
        self.with(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM images WHERE parent = ?1 ORDER BY id LIMIT 100"
            ))?;
            let rows = statement.query_map([id], row)?;
            rows.collect()
        })
    }

    /// Forget image `id` (the caller removes its files); returns the row it was.
    pub(crate) fn forget(&self, id: i64) -> Result<Option<Row>> {
        let found = self.get(id)?;
        if found.is_some() {
            self.with(|conn| {
                conn.execute("UPDATE images SET parent = NULL WHERE parent = ?1", [id])?;
                conn.execute("DELETE FROM images WHERE id = ?1", [id])
            })?;
        }
        Ok(found)
    }
}

fn escape_like(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let json_of = |text: Option<String>, empty: Value| {
        text.and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(empty)
    };
    Ok(Row {
        id: r.get(0)?,
        created_ms: r.get(1)?,
        path: r.get(2)?,
        prompt: r.get(3)?,
        revised_prompt: r.get(4)?,
        requested: json_of(r.get(5)?, json!({})),
        format: r.get(6)?,
        width: r.get(7)?,
        height: r.get(8)?,
        has_alpha: r.get(9)?,
        c2pa: r.get::<_, Option<bool>>(10)?.unwrap_or(false),
        sha256: r.get(11)?,
        bytes: r.get::<_, Option<i64>>(12)?.unwrap_or(0).max(0) as u64,
        model: r.get(13)?,
        backend: r.get(14)?,
        references: json_of(r.get(15)?, json!([])),
        parent: r.get(16)?,
        account: r.get(17)?,
    })
}

fn open(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| db_err(path, e))?;
    }
    create_private(path).map_err(|e| db_err(path, e))?;
    let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| db_err(path, e))?;
    let _: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| db_err(path, e))?;
    conn.execute_batch("PRAGMA synchronous=NORMAL;")
        .map_err(|e| db_err(path, e))?;
    conn.execute_batch(SCHEMA).map_err(|e| db_err(path, e))?;
    Ok(conn)
}

/// Create the file 0600 if it does not exist yet (SQLite's WAL and SHM files copy its mode).
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(prompt: &str, sha: &str, refs: &[&str]) -> NewImage {
        NewImage {
            created_ms: 1_700_000_000_000,
            path: format!("/nowhere/{sha}.png"),
            prompt: prompt.into(),
            requested: json!({"size": "1024x1024"}),
            format: Some("png".into()),
            sha256: sha.into(),
            references: refs
                .iter()
                .map(|r| (format!("/in/{r}.png"), Some(r.to_string())))
                .collect(),
            ..NewImage::default()
        }
    }

    #[test]
    fn rows_page_newest_first_search_and_link_edits_to_their_parent() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::at(dir.path().join("sub").join(FILE_NAME));
        let a = history.record(&image("a red fox", "aaa", &[])).unwrap();
        let b = history
            .record(&image("a blue 100% cat_", "bbb", &[]))
            .unwrap();
        let c = history
            .record(&image("the fox in snow", "ccc", &["zzz", "aaa"]))
            .unwrap();
        let all = history
            .list(&Query {
                limit: 10,
                ..Query::default()
            })
            .unwrap();
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [c, b, a]);
        let page = history
            .list(&Query {
                limit: 1,
                before: Some(c),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(page[0].id, b);
        let fox = history
            .list(&Query {
                text: Some("FOX".into()),
                limit: 10,
                ..Query::default()
            })
            .unwrap();
        assert_eq!(fox.len(), 2);
        let literal = history
            .list(&Query {
                text: Some("100% cat_".into()),
                limit: 10,
                ..Query::default()
            })
            .unwrap();
        assert_eq!(literal.len(), 1);
        assert_eq!(history.get(c).unwrap().unwrap().parent, Some(a));
        assert_eq!(history.children(a).unwrap()[0].id, c);
        assert_eq!(history.forget(a).unwrap().unwrap().id, a);
        assert_eq!(history.get(c).unwrap().unwrap().parent, None);
        assert!(history.get(a).unwrap().is_none());
        let count = |q: Query| history.list(&Query { limit: 10, ..q }).unwrap().len();
        assert_eq!(
            count(Query {
                format: Some("webp".into()),
                ..Query::default()
            }),
            0
        );
        assert_eq!(
            count(Query {
                since_ms: Some(1_700_000_000_000),
                until_ms: Some(1_700_000_000_001),
                ..Query::default()
            }),
            2
        );
        assert_eq!(
            count(Query {
                since_ms: Some(1_700_000_000_001),
                ..Query::default()
            }),
            0
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(history.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
