//! OpenClaw's lock-file protocol (SPEC §8), so codex-imagen and running OpenClaw processes
//! exclude each other when they refresh the same single-use refresh token.
//!
//! The lock for file F is `<realpath(dirname F)>/<basename F>.lock`, created exclusively and
//! holding `{"pid", "createdAt"}` (plus `starttime` on Linux, as OpenClaw 5.28+ writes). A lock is
//! stale when its process is gone, it is older than the limit, or it is empty and old. Locks are
//! not re-entrant (a holder passes its guard down) and are removed only while they are still
//! ours: after a long stall another process may have taken a stale lock over, and deleting its
//! lock would let a third one in. Tasks of one process queue on an in-process gate per file, so
//! they never poll a lock their own process holds. The held set lives in a [`LockRegistry`]
//! owned by the engine's auth manager; the CLI's watchdog releases it before a forced exit so a
//! killed run never leaves a lock that blocks OpenClaw agents for minutes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::foundation::process::{pid_alive, process_start_time};

/// Retry and staleness settings for one kind of lock.
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    pub retries: u32,
    pub stale_ms: u64,
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
}

/// The auth store's own lock: held only for a re-read and a write, well under 30 s.
pub const STORE_LOCK: LockOptions = LockOptions {
    retries: 10,
    stale_ms: 30_000,
    min_delay_ms: 100,
    max_delay_ms: 10_000,
};

/// The per-profile refresh lock, held across the refresh request.
pub const REFRESH_LOCK: LockOptions = LockOptions {
    retries: 20,
    stale_ms: 180_000,
    min_delay_ms: 100,
    max_delay_ms: 10_000,
};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("Timed out waiting for OpenClaw OAuth refresh lock: {}", .0.display())]
    TimedOut(PathBuf),
    #[error("Cannot create lock {path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
}

struct Held {
    lock_path: PathBuf,
    content: String,
    #[cfg(unix)]
    ino: u64,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    held: HashMap<u64, Held>,
    /// One queue per lock file: tasks of this process wait here, in order, instead of polling
    /// a file their own process holds.
    gates: HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>,
}

/// The lock files one engine holds. Owned by the auth manager (never a static), so forced
/// exits can release exactly what is held ([`LockRegistry::release_all`]).
#[derive(Clone, Default)]
pub struct LockRegistry {
    inner: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for LockRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockRegistry")
    }
}

impl LockRegistry {
    fn with<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    fn gate(&self, key: &Path) -> Arc<tokio::sync::Mutex<()>> {
        self.with(|r| Arc::clone(r.gates.entry(key.to_path_buf()).or_default()))
    }

    /// Remove every lock file held now (a forced exit: the watchdog).
    pub fn release_all(&self) {
        let all: Vec<Held> = self.with(|r| r.held.drain().map(|(_, v)| v).collect());
        for entry in &all {
            remove_if_ours(entry);
        }
    }

    /// How many lock files are held now.
    #[cfg(test)]
    pub fn held_count(&self) -> usize {
        self.with(|r| r.held.len())
    }
}

/// A held lock; dropping it removes the lock file (if it is still ours). Locks are not
/// re-entrant: code that already holds one passes the guard down instead of asking again.
pub struct FileLock {
    registry: LockRegistry,
    id: u64,
    pub lock_path: PathBuf,
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

impl std::fmt::Debug for FileLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLock")
            .field("lock_path", &self.lock_path)
            .finish()
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if let Some(entry) = self.registry.with(|r| r.held.remove(&self.id)) {
            remove_if_ours(&entry);
        }
    }
}

fn remove_if_ours(entry: &Held) {
    let Ok(content) = std::fs::read_to_string(&entry.lock_path) else {
        return;
    };
    if content != entry.content {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&entry.lock_path) {
            Ok(meta) if meta.ino() == entry.ino => {}
            _ => return,
        }
    }
    let _ = std::fs::remove_file(&entry.lock_path);
}

/// `<realpath(dirname F)>/<basename F>`, creating the directory first.
fn normalized_file(file: &Path) -> std::io::Result<PathBuf> {
    let file = crate::foundation::paths::resolve_from(Path::new("/"), file);
    let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    std::fs::create_dir_all(&dir)?;
    let real = std::fs::canonicalize(&dir).unwrap_or(dir);
    Ok(match file.file_name() {
        Some(name) => real.join(name),
        None => real,
    })
}

pub fn lock_path_for(file: &Path) -> PathBuf {
    let normalized = normalized_file(file).unwrap_or_else(|_| file.to_path_buf());
    append_lock_suffix(&normalized)
}

fn append_lock_suffix(file: &Path) -> PathBuf {
    let mut os = file.as_os_str().to_owned();
    os.push(".lock");
    PathBuf::from(os)
}

/// Acquire the lock for `file`, waiting with jittered backoff while another live process holds
/// it, and in line behind this process's other tasks that want it.
pub async fn acquire(
    file: &Path,
    options: LockOptions,
    registry: &LockRegistry,
) -> Result<FileLock, LockError> {
    let key = normalized_file(file).map_err(|e| LockError::Io(file.to_path_buf(), e))?;
    let lock_path = append_lock_suffix(&key);
    let gate = registry.gate(&key).lock_owned().await;

    let mut attempt: u32 = 0;
    loop {
        match try_create(&lock_path) {
            Ok(held) => {
                let id = registry.with(|r| {
                    r.next_id += 1;
                    r.held.insert(r.next_id, held);
                    r.next_id
                });
                return Ok(FileLock {
                    registry: registry.clone(),
                    id,
                    lock_path,
                    _gate: gate,
                });
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                if is_stale(&lock_path, options.stale_ms) {
                    let _ = std::fs::remove_file(&lock_path);
                    continue;
                }
                if attempt >= options.retries {
                    return Err(LockError::TimedOut(lock_path));
                }
                tokio::time::sleep(Duration::from_millis(backoff_ms(options, attempt))).await;
                attempt += 1;
            }
            Err(err) => return Err(LockError::Io(lock_path, err)),
        }
    }
}

/// `min(max, max(min, min·2^k)) × (1 + random in [0,1))`, capped at max.
pub fn backoff_ms(options: LockOptions, attempt: u32) -> u64 {
    let exp = options.min_delay_ms.saturating_mul(1u64 << attempt.min(30));
    let base = options.max_delay_ms.min(options.min_delay_ms.max(exp));
    let jittered = (base as f64 * (1.0 + fastrand::f64())).round() as u64;
    jittered.min(options.max_delay_ms)
}

fn try_create(lock_path: &Path) -> std::io::Result<Held> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(lock_path)?;
    let pid = std::process::id();
    let mut payload = json!({"pid": pid, "createdAt": crate::auth::token::iso_now()});
    if let Some(start) = process_start_time(pid) {
        payload["starttime"] = json!(start);
    }
    let content = serde_json::to_string_pretty(&payload).unwrap_or_default();
    let written = file
        .write_all(content.as_bytes())
        .and_then(|_| file.sync_all());
    if let Err(err) = written {
        drop(file);
        let _ = std::fs::remove_file(lock_path);
        return Err(err);
    }
    #[cfg(unix)]
    let ino = {
        use std::os::unix::fs::MetadataExt;
        file.metadata()?.ino()
    };
    Ok(Held {
        lock_path: lock_path.to_path_buf(),
        content,
        #[cfg(unix)]
        ino,
    })
}

fn is_stale(lock_path: &Path, stale_ms: u64) -> bool {
    let payload = std::fs::read_to_string(lock_path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    let pid = payload
        .as_ref()
        .and_then(|p| p.get("pid"))
        .and_then(Value::as_i64);
    let created = payload
        .as_ref()
        .and_then(|p| p.get("createdAt"))
        .and_then(Value::as_str);
    if pid.is_some() || created.is_some() {
        if let Some(pid) = pid {
            if !pid_alive(pid) {
                return true;
            }
            let recorded = payload
                .as_ref()
                .and_then(|p| p.get("starttime"))
                .and_then(Value::as_u64);
            if let (Some(recorded), Some(actual)) = (recorded, process_start_time(pid as u32)) {
                if recorded != actual {
                    // The pid was reused by an unrelated process.
                    return true;
                }
            }
        }
        return match created.map(chrono::DateTime::parse_from_rfc3339) {
            Some(Ok(at)) => {
                let age = chrono::Utc::now()
                    .signed_duration_since(at)
                    .num_milliseconds();
                age > stale_ms as i64
            }
            Some(Err(_)) => true,
            None => false,
        };
    }
    match std::fs::metadata(lock_path).and_then(|m| m.modified()) {
        Ok(modified) => SystemTime::now()
            .duration_since(modified)
            .map(|age| age.as_millis() > stale_ms as u128)
            .unwrap_or(false),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..25 {
            let d = backoff_ms(REFRESH_LOCK, attempt);
            let base = (100u64 << attempt.min(20)).clamp(100, 10_000);
            assert!(
                d >= base && d <= (2 * base).min(10_000),
                "attempt {attempt}: {d}"
            );
        }
    }

    #[test]
    fn our_own_start_time_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_start_time(std::process::id()).is_some());
        }
    }

    #[tokio::test]
    async fn tasks_of_one_process_queue_for_a_lock_and_it_is_removed_on_release() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth-profiles.json");
        let registry = LockRegistry::default();
        let first = acquire(&file, STORE_LOCK, &registry).await.unwrap();
        let lock = first.lock_path.clone();
        assert!(lock.exists());
        let second = {
            let (file, registry) = (file.clone(), registry.clone());
            tokio::spawn(async move { acquire(&file, STORE_LOCK, &registry).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the second task waits for the first");
        drop(first);
        let second = second.await.unwrap().unwrap();
        assert!(lock.exists());
        assert_eq!(registry.held_count(), 1);
        drop(second);
        assert!(!lock.exists());
        assert_eq!(registry.held_count(), 0);
    }

    #[tokio::test]
    async fn release_all_removes_every_held_lock() {
        let dir = tempfile::tempdir().unwrap();
        let registry = LockRegistry::default();
        let a = acquire(&dir.path().join("a.json"), STORE_LOCK, &registry)
            .await
            .unwrap();
        let b = acquire(&dir.path().join("b.json"), STORE_LOCK, &registry)
            .await
            .unwrap();
        registry.release_all();
        assert!(!a.lock_path.exists() && !b.lock_path.exists());
        drop((a, b));
    }

    #[tokio::test]
    async fn a_dead_owner_or_garbage_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store.json");
        let lock = lock_path_for(&file);
        std::fs::write(
            &lock,
            r#"{"pid": 999999999, "createdAt": "2026-01-01T00:00:00.000Z"}"#,
        )
        .unwrap();
        let held = acquire(&file, STORE_LOCK, &LockRegistry::default())
            .await
            .unwrap();
        let payload: Value =
            serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
        assert_eq!(payload["pid"], json!(std::process::id()));
        drop(held);
        std::fs::write(&lock, r#"{"pid": 1, "createdAt": "not a date"}"#).unwrap();
        drop(
            acquire(&file, STORE_LOCK, &LockRegistry::default())
                .await
                .unwrap(),
        );
    }

    #[tokio::test]
    async fn a_lock_that_is_no_longer_ours_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store.json");
        let held = acquire(&file, STORE_LOCK, &LockRegistry::default())
            .await
            .unwrap();
        std::fs::write(&held.lock_path, "someone else").unwrap();
        let lock = held.lock_path.clone();
        drop(held);
        assert_eq!(std::fs::read_to_string(lock).unwrap(), "someone else");
    }

    #[tokio::test]
    async fn a_live_lock_times_out_with_the_spec_message() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store.json");
        let lock = lock_path_for(&file);
        let fresh = json!({"pid": std::process::id(), "createdAt": crate::auth::token::iso_now()});
        std::fs::write(&lock, fresh.to_string()).unwrap();
        let quick = LockOptions {
            retries: 1,
            stale_ms: 30_000,
            min_delay_ms: 1,
            max_delay_ms: 2,
        };
        let err = acquire(&file, quick, &LockRegistry::default())
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "Timed out waiting for OpenClaw OAuth refresh lock: {}",
                lock.display()
            )
        );
    }
}
