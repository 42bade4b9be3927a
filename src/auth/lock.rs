//! OpenClaw's lock-file protocol (SPEC §8), so codex-imagen and running OpenClaw processes
//! exclude each other when they refresh the same single-use refresh token.
//!
//! The lock for file F is `<realpath(dirname F)>/<basename F>.lock`, created exclusively and
//! holding `{"pid", "createdAt"}` (plus `starttime` on Linux, as OpenClaw 5.28+ writes). A lock is
//! stale when its process is gone, it is older than the limit, or it is empty and old. Locks are
//! re-entrant inside the process and are removed only while they are still ours: after a long
//! stall another process may have taken a stale lock over, and deleting its lock would let a
//! third one in. [`release_all_held`] is called on forced exits (signals, the watchdog) so a
//! killed run never leaves a lock that blocks OpenClaw agents for minutes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

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
    count: usize,
    lock_path: PathBuf,
    content: String,
    #[cfg(unix)]
    ino: u64,
}

static HELD: Mutex<Option<HashMap<PathBuf, Held>>> = Mutex::new(None);

fn with_held<R>(f: impl FnOnce(&mut HashMap<PathBuf, Held>) -> R) -> R {
    let mut guard = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// A held lock; dropping it releases one level of re-entrancy.
#[derive(Debug)]
pub struct FileLock {
    key: PathBuf,
    pub lock_path: PathBuf,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let release = with_held(|held| {
            let entry = held.get_mut(&self.key)?;
            entry.count -= 1;
            if entry.count > 0 {
                return None;
            }
            held.remove(&self.key)
        });
        if let Some(entry) = release {
            remove_if_ours(&entry);
        }
    }
}

/// Remove every lock this process holds (forced exit paths).
pub fn release_all_held() {
    let all: Vec<Held> = with_held(|held| held.drain().map(|(_, v)| v).collect());
    for entry in &all {
        remove_if_ours(entry);
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
    let file = crate::paths::absolute(file);
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

/// Acquire the lock for `file`, waiting with jittered backoff while another live process holds it.
pub async fn acquire(file: &Path, options: LockOptions) -> Result<FileLock, LockError> {
    let key = normalized_file(file).map_err(|e| LockError::Io(file.to_path_buf(), e))?;
    let lock_path = append_lock_suffix(&key);
    let reentered = with_held(|held| match held.get_mut(&key) {
        Some(entry) => {
            entry.count += 1;
            true
        }
        None => false,
    });
    if reentered {
        return Ok(FileLock { key, lock_path });
    }

    let mut attempt: u32 = 0;
    loop {
        match try_create(&lock_path) {
            Ok(held) => {
                with_held(|map| map.insert(key.clone(), held));
                return Ok(FileLock { key, lock_path });
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
        count: 1,
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

/// Signal 0: EPERM means the process exists but is not ours.
#[cfg(unix)]
pub fn pid_alive(pid: i64) -> bool {
    if pid <= 0 || pid > i32::MAX as i64 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(windows)]
pub fn pid_alive(pid: i64) -> bool {
    // Without a cheap liveness probe, age is what ends a lock on Windows.
    pid > 0
}

/// Field 22 of `/proc/<pid>/stat`, exactly as OpenClaw computes it; `None` elsewhere.
#[cfg(target_os = "linux")]
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
pub fn process_start_time(_pid: u32) -> Option<u64> {
    None
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
    async fn locks_are_reentrant_and_removed_on_last_release() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth-profiles.json");
        let outer = acquire(&file, STORE_LOCK).await.unwrap();
        let inner = acquire(&file, STORE_LOCK).await.unwrap();
        let lock = outer.lock_path.clone();
        assert!(lock.exists());
        drop(inner);
        assert!(lock.exists());
        drop(outer);
        assert!(!lock.exists());
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
        let held = acquire(&file, STORE_LOCK).await.unwrap();
        let payload: Value =
            serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
        assert_eq!(payload["pid"], json!(std::process::id()));
        drop(held);
        std::fs::write(&lock, r#"{"pid": 1, "createdAt": "not a date"}"#).unwrap();
        drop(acquire(&file, STORE_LOCK).await.unwrap());
    }

    #[tokio::test]
    async fn a_lock_that_is_no_longer_ours_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store.json");
        let held = acquire(&file, STORE_LOCK).await.unwrap();
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
        // Not re-entrant: the registry does not know this lock.
        let quick = LockOptions {
            retries: 1,
            stale_ms: 30_000,
            min_delay_ms: 1,
            max_delay_ms: 2,
        };
        let err = acquire(&file, quick).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "Timed out waiting for OpenClaw OAuth refresh lock: {}",
                lock.display()
            )
        );
    }
}
