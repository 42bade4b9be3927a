//! OpenClaw's SQLite credential stores (2026.6.5 and later): where they are, how one is read, and
//! how its document is changed without disturbing anything else in the database.
//!
//! OpenClaw keeps the same `{version, profiles}` document it once wrote to `auth-profiles.json`,
//! now as compact JSON in one row, and the former `auth-state.json` (`lastGood`, `order`,
//! `usageStats`) in a second row:
//!
//! | layout | database | store row | state row |
//! | --- | --- | --- | --- |
//! | agent (2026.6.5+) | `<agent dir>/openclaw-agent.sqlite` | `auth_profile_store` `primary` | `auth_profile_state` `primary` |
//! | state (2026.8+) | `<state>/state/openclaw.sqlite` | `config_machine_state` `authProfiles.store` | `config_machine_state` `authProfiles.state` |
//!
//! The state layout holds only the shared (main) store, and only while the ownership row
//! `config_machine_state` `auth.sharedStore` says `{"location":"state-db"}`; otherwise the main
//! agent's own database is the shared store. Other agents keep theirs in their agent database and
//! OpenClaw layers them over the shared one.
//!
//! No OpenClaw version takes a lock file for these stores: every writer runs one
//! `BEGIN IMMEDIATE` transaction (busy timeout 30 s up to 2026.7, 5 s from 2026.8). So do we, and
//! we change nothing but the one row: no schema, no `journal_mode` (OpenClaw chose WAL, or DELETE
//! on network volumes), no `VACUUM`. The JSON is written compactly, as `JSON.stringify` does, so
//! every field we do not touch keeps its bytes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value};

use super::select::SelectOptions;
use super::store::{parse_auth, Auth, AuthFormat};
use super::token::now_ms;
use crate::foundation::paths::{self, OpenClawDirs};

/// Each agent's database, inside its agent directory.
pub const AGENT_DB_FILE: &str = "openclaw-agent.sqlite";

/// How long one statement waits for another connection (OpenClaw 2026.8+ uses 5 s; its writes
/// are a few statements long).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `BEGIN IMMEDIATE` may wait for OpenClaw's writer in all (OpenClaw up to 2026.7 waits
/// 30 s). The wait is a loop of short tries so the async runtime, and with it the SIGINT/SIGTERM
/// handler that releases our refresh locks, keeps running meanwhile.
const WRITE_WAIT: Duration = Duration::from_secs(30);
const WRITE_TRY: Duration = Duration::from_millis(50);

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Which of OpenClaw's two SQLite layouts a database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `auth_profile_store` / `auth_profile_state`, key `primary` (per-agent database).
    Agent,
    /// `config_machine_state`, keys `authProfiles.store` / `authProfiles.state` (shared state).
    State,
}

impl Layout {
    pub fn format(self) -> AuthFormat {
        match self {
            Layout::Agent => AuthFormat::OpenClawAgentSqlite,
            Layout::State => AuthFormat::OpenClawStateSqlite,
        }
    }

    pub fn of_format(format: AuthFormat) -> Option<Layout> {
        match format {
            AuthFormat::OpenClawAgentSqlite => Some(Layout::Agent),
            AuthFormat::OpenClawStateSqlite => Some(Layout::State),
            AuthFormat::CodexAuthJson
            | AuthFormat::CodexKeyring
            | AuthFormat::OpenClawAuthProfiles
            | AuthFormat::OpenClawOAuthJson
            | AuthFormat::OpenClawLegacyAuthJson => None,
        }
    }

    /// The store row, as named in error messages.
    pub fn store_row(self) -> &'static str {
        match self {
            Layout::Agent => "auth_profile_store row 'primary'",
            Layout::State => "config_machine_state row 'authProfiles.store'",
        }
    }

    fn select_store(self) -> &'static str {
        match self {
            Layout::Agent => {
                "SELECT store_json FROM auth_profile_store WHERE store_key = 'primary'"
            }
            Layout::State => {
                "SELECT value_json FROM config_machine_state WHERE state_key = 'authProfiles.store'"
            }
        }
    }

    fn select_state(self) -> &'static str {
        match self {
            Layout::Agent => {
                "SELECT state_json FROM auth_profile_state WHERE state_key = 'primary'"
            }
            Layout::State => {
                "SELECT value_json FROM config_machine_state WHERE state_key = 'authProfiles.state'"
            }
        }
    }

    fn state_table(self) -> &'static str {
        match self {
            Layout::Agent => "auth_profile_state",
            Layout::State => "config_machine_state",
        }
    }

    /// `updated_at` is milliseconds in both layouts, as OpenClaw writes `Date.now()`.
    fn update_store(self) -> &'static str {
        match self {
            Layout::Agent => {
                "UPDATE auth_profile_store SET store_json = ?1, updated_at = ?2 WHERE store_key = 'primary'"
            }
            Layout::State => {
                "UPDATE config_machine_state SET value_json = ?1, updated_at_ms = ?2 \
                 WHERE state_key = 'authProfiles.store'"
            }
        }
    }
}

/// A failure in an OpenClaw database, naming the file and the row so the user can look.
#[derive(Debug, thiserror::Error)]
pub enum SqliteStoreError {
    #[error("Cannot open OpenClaw auth database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("Cannot read the {row} in OpenClaw auth database {}: {source}", path.display())]
    Read {
        path: PathBuf,
        row: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "No OpenClaw auth profile store in {}: neither an auth_profile_store row 'primary' nor a \
         config_machine_state row 'authProfiles.store'",
        path.display()
    )]
    NoStore { path: PathBuf },
    #[error("Invalid JSON in the {row} of OpenClaw auth database {}: {source}", path.display())]
    Json {
        path: PathBuf,
        row: &'static str,
        source: serde_json::Error,
    },
    #[error("The {row} of OpenClaw auth database {} has no profiles object", path.display())]
    NoProfiles { path: PathBuf, row: &'static str },
    #[error("The {row} of OpenClaw auth database {} disappeared during refresh", path.display())]
    Vanished { path: PathBuf, row: &'static str },
    #[error("Cannot write the {row} of OpenClaw auth database {}: {source}", path.display())]
    Write {
        path: PathBuf,
        row: &'static str,
        source: rusqlite::Error,
    },
}

impl From<SqliteStoreError> for crate::foundation::error::Error {
    fn from(err: SqliteStoreError) -> Self {
        use crate::foundation::error::AuthErrorKind;
        let kind = match &err {
            SqliteStoreError::Open { .. } | SqliteStoreError::Read { .. } => {
                AuthErrorKind::Unreadable
            }
            SqliteStoreError::Write { .. } | SqliteStoreError::Vanished { .. } => {
                AuthErrorKind::Unreadable
            }
            SqliteStoreError::NoStore { .. }
            | SqliteStoreError::Json { .. }
            | SqliteStoreError::NoProfiles { .. } => AuthErrorKind::Invalid,
        };
        crate::foundation::error::Error::auth(kind, err.to_string())
    }
}

type Result<T, E = SqliteStoreError> = std::result::Result<T, E>;

/// True when `path` names a SQLite store rather than a JSON file: by extension, else by the
/// file's first bytes. A `.json` path is never opened here, so JSON stores cost nothing extra.
pub fn is_sqlite_store(path: &Path) -> bool {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => false,
        Some("sqlite" | "sqlite3" | "db") => true,
        _ => has_sqlite_magic(path),
    }
}

fn has_sqlite_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| &head == SQLITE_MAGIC)
        .unwrap_or(false)
}

/// Open for reading only: never creates the file, never writes, never checkpoints.
fn open_read(path: &Path) -> Result<Connection> {
    open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// Open for one write transaction. Without `SQLITE_OPEN_CREATE` a missing file is an error,
/// not a new empty database.
fn open_write(path: &Path) -> Result<Connection> {
    open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
}

fn open(path: &Path, mode: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(
        |source| SqliteStoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    )?;
    configure(&conn, path)?;
    Ok(conn)
}

fn configure(conn: &Connection, path: &Path) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|source| SqliteStoreError::Open {
            path: path.to_path_buf(),
            source,
        })
}

fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// One text cell, or `None` when the table or the row is absent.
fn text_cell(conn: &Connection, table: &str, sql: &str) -> rusqlite::Result<Option<String>> {
    if !table_exists(conn, table)? {
        return Ok(None);
    }
    conn.query_row(sql, [], |row| row.get::<_, String>(0))
        .optional()
}

/// Which layout `conn` holds a store in; the state layout wins when both would match, as the
/// shared state database is the newer home.
fn detect(conn: &Connection, path: &Path) -> Result<Layout> {
    for layout in [Layout::State, Layout::Agent] {
        let table = match layout {
            Layout::Agent => "auth_profile_store",
            Layout::State => "config_machine_state",
        };
        let found = text_cell(conn, table, layout.select_store()).map_err(|source| {
            SqliteStoreError::Read {
                path: path.to_path_buf(),
                row: layout.store_row(),
                source,
            }
        })?;
        if found.is_some() {
            return Ok(layout);
        }
    }
    Err(SqliteStoreError::NoStore {
        path: path.to_path_buf(),
    })
}

fn read_store_doc(conn: &Connection, path: &Path, layout: Layout) -> Result<Value> {
    let table = match layout {
        Layout::Agent => "auth_profile_store",
        Layout::State => "config_machine_state",
    };
    let text = text_cell(conn, table, layout.select_store())
        .map_err(|source| SqliteStoreError::Read {
            path: path.to_path_buf(),
            row: layout.store_row(),
            source,
        })?
        .ok_or_else(|| SqliteStoreError::Vanished {
            path: path.to_path_buf(),
            row: layout.store_row(),
        })?;
    let doc: Value = serde_json::from_str(&text).map_err(|source| SqliteStoreError::Json {
        path: path.to_path_buf(),
        row: layout.store_row(),
        source,
    })?;
    if !doc.get("profiles").is_some_and(Value::is_object) {
        return Err(SqliteStoreError::NoProfiles {
            path: path.to_path_buf(),
            row: layout.store_row(),
        });
    }
    Ok(doc)
}

/// The runtime state row; an absent or unreadable one counts as none, as in OpenClaw.
fn read_state_doc(conn: &Connection, layout: Layout) -> Option<Value> {
    let text = text_cell(conn, layout.state_table(), layout.select_state())
        .ok()
        .flatten()?;
    serde_json::from_str(&text).ok()
}

/// What one store database holds.
#[derive(Debug, Clone)]
pub struct StoreDocuments {
    pub layout: Layout,
    /// `{version, profiles, ...}`, exactly as stored.
    pub store: Value,
    /// `lastGood` and `order`, merged as OpenClaw merges them: the store document's own, then the
    /// state row's on top (OpenClaw 2026.6.5 `loadPersistedAuthProfileStore`).
    pub state: Value,
}

/// Read the store and state rows of `path` (read-only connection).
pub fn read_documents(path: &Path) -> Result<StoreDocuments> {
    let conn = open_read(path)?;
    let layout = detect(&conn, path)?;
    let store = read_store_doc(&conn, path, layout)?;
    let state = merged_state(&store, read_state_doc(&conn, layout).as_ref());
    Ok(StoreDocuments {
        layout,
        store,
        state,
    })
}

fn merged_state(store: &Value, state_row: Option<&Value>) -> Value {
    let mut merged = Map::new();
    for key in ["lastGood", "order"] {
        let mut record = Map::new();
        for source in [Some(store), state_row].into_iter().flatten() {
            if let Some(map) = source.get(key).and_then(Value::as_object) {
                record.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        if !record.is_empty() {
            merged.insert(key.to_string(), Value::Object(record));
        }
    }
    Value::Object(merged)
}

/// Read the credentials of one SQLite store (SPEC §4–5 applied to the row's document).
pub fn read_auth(path: &Path, options: &SelectOptions) -> crate::foundation::error::Result<Auth> {
    let docs = read_documents(path)?;
    parse_store(path, &docs, options)
}

/// Parse a store document of `docs.layout`, selecting with that layout's own `lastGood`/`order`.
pub fn parse_store(
    path: &Path,
    docs: &StoreDocuments,
    options: &SelectOptions,
) -> crate::foundation::error::Result<Auth> {
    let mut options = options.clone();
    options.state = Some(docs.state.clone());
    let mut auth = parse_auth(path, &docs.store, &options)?;
    auth.format = docs.layout.format();
    Ok(auth)
}

/// One `BEGIN IMMEDIATE` transaction on a store row: read the document, replace it, commit.
/// Dropped without [`WriteTxn::commit`], it rolls back, so an error never leaves a half-change.
pub struct WriteTxn {
    conn: Connection,
    path: PathBuf,
    layout: Layout,
    open: bool,
}

impl WriteTxn {
    /// Take SQLite's write lock on `path`, waiting up to [`WRITE_WAIT`] for another writer.
    pub async fn begin(path: &Path, layout: Layout) -> Result<WriteTxn> {
        let conn = open_write(path)?;
        let deadline = std::time::Instant::now() + WRITE_WAIT;
        let failed = |source| SqliteStoreError::Write {
            path: path.to_path_buf(),
            row: layout.store_row(),
            source,
        };
        conn.busy_timeout(WRITE_TRY).map_err(failed)?;
        loop {
            // IMMEDIATE takes the write lock now, so the row we read cannot change before we
            // write it back.
            match conn.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => break,
                Err(err) if is_busy(&err) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(WRITE_TRY).await;
                }
                Err(err) => return Err(failed(err)),
            }
        }
        conn.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
        Ok(WriteTxn {
            conn,
            path: path.to_path_buf(),
            layout,
            open: true,
        })
    }

    /// The store and state documents as of now, inside the transaction.
    pub fn documents(&self) -> Result<StoreDocuments> {
        let store = read_store_doc(&self.conn, &self.path, self.layout)?;
        let state = merged_state(&store, read_state_doc(&self.conn, self.layout).as_ref());
        Ok(StoreDocuments {
            layout: self.layout,
            store,
            state,
        })
    }

    /// Replace the store document (compact JSON, as OpenClaw's `JSON.stringify`) and stamp
    /// `updated_at` with now in milliseconds. Only that one row changes.
    pub fn replace(&mut self, doc: &Value) -> Result<()> {
        let text = serde_json::to_string(doc).map_err(|source| SqliteStoreError::Json {
            path: self.path.clone(),
            row: self.layout.store_row(),
            source,
        })?;
        let changed = self
            .conn
            .execute(
                self.layout.update_store(),
                rusqlite::params![text, now_ms()],
            )
            .map_err(|source| SqliteStoreError::Write {
                path: self.path.clone(),
                row: self.layout.store_row(),
                source,
            })?;
        if changed != 1 {
            return Err(SqliteStoreError::Vanished {
                path: self.path.clone(),
                row: self.layout.store_row(),
            });
        }
        Ok(())
    }

    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.conn
            .execute_batch("COMMIT")
            .map_err(|source| SqliteStoreError::Write {
                path: self.path.clone(),
                row: self.layout.store_row(),
                source,
            })
    }
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Drop for WriteTxn {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Where the installed OpenClaw keeps them
// ---------------------------------------------------------------------------------------------

/// `<state>/state/openclaw.sqlite`.
pub fn state_db_path(dirs: &OpenClawDirs) -> PathBuf {
    dirs.state_dir.join("state").join("openclaw.sqlite")
}

/// OpenClaw 2026.8+ treats `OPENCLAW_AGENT_DIR` (else the main agent) as the home of the shared
/// store (`resolveSharedMainAuthAgentDir`); `PI_CODING_AGENT_DIR` names an ordinary agent.
fn shared_main_dir(dirs: &OpenClawDirs) -> PathBuf {
    dirs.shared_main_dir.clone()
}

/// The state database, when it exists and OpenClaw's ownership row puts the shared store there.
fn state_store(dirs: &OpenClawDirs) -> Option<PathBuf> {
    let path = state_db_path(dirs);
    if !paths::is_file(&path) {
        return None;
    }
    let conn = open_read(&path).ok()?;
    let owner = text_cell(
        &conn,
        "config_machine_state",
        "SELECT value_json FROM config_machine_state WHERE state_key = 'auth.sharedStore'",
    )
    .ok()
    .flatten()?;
    let owner: Value = serde_json::from_str(&owner).ok()?;
    if owner.get("location").and_then(Value::as_str) != Some("state-db") {
        return None;
    }
    let store = text_cell(&conn, "config_machine_state", Layout::State.select_store()).ok()??;
    Some(path).filter(|_| !store.is_empty())
}

/// `<dir>/openclaw-agent.sqlite`, when it exists and holds the `primary` store row.
fn agent_store(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(AGENT_DB_FILE);
    if !paths::is_file(&path) {
        return None;
    }
    let conn = open_read(&path).ok()?;
    text_cell(&conn, "auth_profile_store", Layout::Agent.select_store())
        .ok()
        .flatten()
        .map(|_| path)
}

/// The shared (main) store of a SQLite-era OpenClaw: the state database when it owns the store,
/// else the shared main agent's database. `None` on a JSON-only machine.
pub fn shared_store(dirs: &OpenClawDirs) -> Option<PathBuf> {
    state_store(dirs).or_else(|| agent_store(&shared_main_dir(dirs)))
}

/// Every SQLite store holding credentials for the active agent, in the order OpenClaw consults
/// them: the agent's own database, then the shared store it inherits from. For the shared main
/// agent, a state-database store supersedes its agent database (OpenClaw 2026.8+ moved the row
/// there and no longer reads the old one). Files that do not exist cost one `stat` each.
pub fn discover(dirs: &OpenClawDirs) -> Vec<PathBuf> {
    let main = shared_main_dir(dirs);
    let is_main = dirs.agent_dir == main;
    let state = state_store(dirs);
    let mut found = Vec::new();
    if is_main {
        if let Some(state) = state {
            found.push(state);
        } else if let Some(own) = agent_store(&dirs.agent_dir) {
            found.push(own);
        }
        return found;
    }
    found.extend(agent_store(&dirs.agent_dir));
    found.extend(state.or_else(|| agent_store(&main)));
    found
}

/// Every database path discovery looks at, existing or not, in the order it consults them: what
/// a "no auth found" error lists, so a newcomer sees where OpenClaw 2026.6+ keeps credentials.
pub fn looked_for(dirs: &OpenClawDirs) -> Vec<PathBuf> {
    let mut paths = vec![state_db_path(dirs), dirs.agent_dir.join(AGENT_DB_FILE)];
    let main = shared_main_dir(dirs).join(AGENT_DB_FILE);
    if !paths.contains(&main) {
        paths.push(main);
    }
    paths
}

/// The databases that are OpenClaw's main store (for SPEC §5's "main agent's store" rule).
pub fn main_store_paths(dirs: &OpenClawDirs) -> [PathBuf; 2] {
    [
        state_db_path(dirs),
        shared_main_dir(dirs).join(AGENT_DB_FILE),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AGENT_DDL: &str = "
        CREATE TABLE auth_profile_store (store_key TEXT NOT NULL PRIMARY KEY, store_json TEXT NOT NULL, updated_at INTEGER NOT NULL);
        CREATE TABLE auth_profile_state (state_key TEXT NOT NULL PRIMARY KEY, state_json TEXT NOT NULL, updated_at INTEGER NOT NULL);";

    fn agent_db(dir: &Path, store: &Value, state: Option<&Value>) -> PathBuf {
        let path = dir.join(AGENT_DB_FILE);
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(AGENT_DDL).unwrap();
        conn.execute(
            "INSERT INTO auth_profile_store VALUES ('primary', ?1, 1)",
            [store.to_string()],
        )
        .unwrap();
        if let Some(state) = state {
            conn.execute(
                "INSERT INTO auth_profile_state VALUES ('primary', ?1, 1)",
                [state.to_string()],
            )
            .unwrap();
        }
        path
    }

    #[test]
    fn sqlite_stores_are_recognised_by_name_or_header() {
        let dir = tempfile::tempdir().unwrap();
        let db = agent_db(dir.path(), &json!({"version": 1, "profiles": {}}), None);
        assert!(is_sqlite_store(&db));
        let renamed = dir.path().join("credentials");
        std::fs::copy(&db, &renamed).unwrap();
        assert!(is_sqlite_store(&renamed));
        let json = dir.path().join("auth.json");
        std::fs::write(&json, "{}").unwrap();
        assert!(!is_sqlite_store(&json));
        assert!(!is_sqlite_store(&dir.path().join("missing")));
    }

    #[test]
    fn state_from_the_row_overrides_the_store_document() {
        let dir = tempfile::tempdir().unwrap();
        let store = json!({"version": 1, "profiles": {}, "lastGood": {"openai": "a", "x": "y"}});
        let state = json!({"version": 1, "lastGood": {"openai": "b"}, "order": {"openai": ["c"]}});
        let db = agent_db(dir.path(), &store, Some(&state));
        let docs = read_documents(&db).unwrap();
        assert_eq!(docs.layout, Layout::Agent);
        assert_eq!(
            docs.state,
            json!({"lastGood": {"openai": "b", "x": "y"}, "order": {"openai": ["c"]}})
        );
    }

    #[test]
    fn a_database_without_a_store_row_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch(AGENT_DDL)
            .unwrap();
        let err = read_documents(&path).unwrap_err().to_string();
        assert!(
            err.starts_with("No OpenClaw auth profile store in") && err.contains("empty.sqlite"),
            "{err}"
        );
        let err = read_documents(&dir.path().join("missing.sqlite"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("Cannot open OpenClaw auth database"),
            "{err}"
        );
        assert!(!dir.path().join("missing.sqlite").exists(), "never created");
    }

    #[tokio::test]
    async fn a_rolled_back_transaction_changes_nothing_and_a_commit_only_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = json!({"version": 1, "profiles": {"p": {"access": "a"}}, "z": [1.5, "é/"]});
        let db = agent_db(dir.path(), &store, None);
        {
            let mut txn = WriteTxn::begin(&db, Layout::Agent).await.unwrap();
            txn.replace(&json!({"version": 1, "profiles": {}})).unwrap();
            // dropped: rolled back
        }
        assert_eq!(read_documents(&db).unwrap().store, store);
        let mut txn = WriteTxn::begin(&db, Layout::Agent).await.unwrap();
        let mut doc = txn.documents().unwrap().store;
        doc["profiles"]["p"]["access"] = json!("b");
        txn.replace(&doc).unwrap();
        txn.commit().unwrap();
        let conn = open_read(&db).unwrap();
        let text: String = conn
            .query_row(
                "SELECT store_json FROM auth_profile_store WHERE store_key = 'primary'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            text,
            r#"{"version":1,"profiles":{"p":{"access":"b"}},"z":[1.5,"é/"]}"#
        );
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
