//! Account cooldowns every process shares: `<data dir>/cooldowns.json`.
//!
//! A usage-limit 429 puts one ChatGPT account on cooldown until its reset. The record is what
//! every other process of this machine (and the next run) reads before it picks an account, so
//! nothing is sent to an exhausted account until it resets. The file holds no token and no
//! account id: each account is keyed by a SHA-256 digest of its account id (first 16 hex
//! digits), with a redacted label for people (`j***@example.com`, `acct…f00d`). It is written
//! read-modify-write through a temporary sibling (0600) and a rename, so a reader never sees half
//! a file, under an exclusive lock on `cooldowns.json.lock` (`flock`), so two processes
//! recording at the same instant both keep their entry. The lock is waited for at most 2 s
//! (a holder only reads and renames a small file); past that, or where there are no locks,
//! the write goes ahead, and a lost entry would cost one more 429, never a wrong image.
//! Entries past their time are dropped on the next write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::foundation::error::{Error, Result};

/// The file's name in the data directory.
pub(crate) const FILE_NAME: &str = "cooldowns.json";

/// When no reset time is known (no `resets_at`, no `Retry-After`).
pub(crate) const DEFAULT_COOLDOWN_SECS: i64 = 15 * 60;

/// How long a writer waits for another one's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One account's cooldown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cooldown {
    /// Unix seconds: the account is usable again from then on.
    pub until: i64,
    /// Redacted, for people reading the file.
    pub account: String,
    /// Why: `usage_limit` (or `openclaw` for a cooldown OpenClaw recorded).
    pub reason: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CooldownFile {
    version: u32,
    /// Keyed by [`account_key`].
    accounts: BTreeMap<String, Cooldown>,
}

/// The key of an account in the file: no account id is ever written.
pub(crate) fn account_key(account_id: &str) -> String {
    let digest = Sha256::digest(account_id.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The cooldowns of one data directory.
#[derive(Debug, Clone)]
pub(crate) struct CooldownStore {
    path: PathBuf,
}

impl CooldownStore {
    pub(crate) fn new(data_dir: &Path) -> Self {
        CooldownStore {
            path: data_dir.join(FILE_NAME),
        }
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Every cooldown still running at `now` (Unix seconds). A missing or unreadable file is no
    /// cooldown at all: it only ever saves requests, it never gates correctness.
    pub(crate) fn active(&self, now: i64) -> BTreeMap<String, Cooldown> {
        let mut accounts = self.read().accounts;
        accounts.retain(|_, c| c.until > now);
        accounts
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    fn read(&self) -> CooldownFile {
        std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Record `cooldown` for `key` (keeping a later one already there), dropping expired ones.
    pub(crate) fn set(&self, key: &str, cooldown: Cooldown, now: i64) -> Result<()> {
        std::fs::create_dir_all(self.dir()).map_err(|e| self.cannot_write(e))?;
        let _lock = crate::foundation::file_lock::hold(&self.lock_path(), LOCK_WAIT);
        let mut file = self.read();
        file.version = 1;
        file.accounts.retain(|_, c| c.until > now);
        let keep_existing = file
            .accounts
            .get(key)
            .is_some_and(|old| old.until >= cooldown.until);
        if !keep_existing {
            file.accounts.insert(key.to_string(), cooldown);
        }
        self.write(&file)
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    fn cannot_write(&self, err: std::io::Error) -> Error {
        Error::io(format!("Cannot write {}", self.path.display()), err)
    }

    /// Write the whole file (its directory exists: [`Self::set`]).
    fn write(&self, file: &CooldownFile) -> Result<()> {
        let dir = self.dir();
        let text = serde_json::to_string_pretty(file)
            .map_err(|e| Error::Io(format!("Cannot encode {}: {e}", self.path.display())))?;
        let tmp = dir.join(crate::foundation::paths::unique_temp_name(FILE_NAME));
        let result = super::write::write_private(&tmp, format!("{text}\n").as_bytes())
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .and_then(|_| super::write::set_private(&self.path));
        if let Err(err) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.cannot_write(err));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hide_the_account_id() {
        let key = account_key("acct-123");
        assert_eq!(key.len(), 16);
        assert!(!key.contains("acct"));
        assert_eq!(key, account_key("acct-123"));
        assert_ne!(key, account_key("acct-124"));
    }

    #[test]
    fn set_keeps_the_later_reset_and_drops_expired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = CooldownStore::new(dir.path());
        let entry = |until| Cooldown {
            until,
            account: "a***@x".into(),
            reason: "usage_limit".into(),
        };
        store.set("k1", entry(200), 100).unwrap();
        store.set("k1", entry(150), 100).unwrap();
        assert_eq!(store.active(100)["k1"].until, 200);
        store.set("k2", entry(300), 250).unwrap();
        let active = store.active(250);
        assert_eq!(active.keys().collect::<Vec<_>>(), vec!["k2"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn writers_at_the_same_time_all_keep_their_entries() {
        // Each thread opens the lock file itself, as another process would.
        let dir = tempfile::tempdir().unwrap();
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let store = CooldownStore::new(dir.path());
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let cooldown = Cooldown {
                            until: 1_000,
                            account: format!("acct…{t}{i}"),
                            reason: "usage_limit".into(),
                        };
                        store.set(&format!("k{t}-{i}"), cooldown, 0).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(CooldownStore::new(dir.path()).active(0).len(), 200);
    }
}
