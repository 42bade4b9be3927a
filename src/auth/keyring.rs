//! The Codex keyring store: the OS keyring entry Codex writes when its config says
//! `cli_auth_credentials_store = "keyring"` (or `"auto"`), read and written byte-compatibly.
//!
//! Codex (`codex-rs/login/src/auth/storage.rs`, `codex-rs/keyring-store`) keeps the whole
//! `auth.json` document, as compact JSON, in one `keyring` 3.6 entry: service `Codex Auth`,
//! account `cli|` + the first 16 hex digits of SHA-256 of the canonical Codex home (the path as
//! given when it cannot be canonicalized). We use the same crate with the same backend per
//! platform (Keychain, Windows Credential Manager, Secret Service), so the entry is the same item.
//!
//! The rest of `auth/` knows stores by path. The keyring store gets a path of its own,
//! `<codex home>/codex-auth.keyring`, which never exists as a file: [`entry_of`] recognises it,
//! `read_store` and the refresh's write go to the keyring for it, and its `.lock` sibling is
//! where our own runs exclude each other while refreshing (as they do for `auth.json`).
//!
//! Every call runs on a thread of its own with a time limit: a keyring that wants to prompt
//! (a locked collection on a desktop) must not hang a script; it is reported as locked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::foundation::error::{AuthErrorKind, Error, Result};

/// Codex's `KEYRING_SERVICE`.
pub(crate) const SERVICE: &str = "Codex Auth";
/// The file name of the keyring store's path inside the Codex home (never a real file).
pub(crate) const STORE_NAME: &str = "codex-auth.keyring";
/// How long one keyring call may take before it counts as locked (a prompt nobody answers).
const CALL_LIMIT: Duration = Duration::from_secs(15);

/// Why the keyring could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyringError {
    /// The keyring exists but refuses access (locked, or a prompt was dismissed or timed out).
    Locked(String),
    /// No keyring service answers (no Secret Service on the session bus, no session bus).
    Unavailable(String),
    /// Anything else the platform reported.
    Failed(String),
}

impl std::fmt::Display for KeyringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyringError::Locked(why) => write!(f, "the OS keyring is locked ({why})"),
            KeyringError::Unavailable(why) => write!(f, "no OS keyring is available ({why})"),
            KeyringError::Failed(why) => write!(f, "the OS keyring failed ({why})"),
        }
    }
}

/// One Codex keyring entry: the Codex home it belongs to and its account key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyringEntry {
    pub codex_home: PathBuf,
    pub account: String,
}

/// Codex's `compute_store_key`: `cli|` + 16 hex digits of SHA-256 of the canonical Codex home.
pub(crate) fn account_for(codex_home: &Path) -> String {
    let canonical = std::fs::canonicalize(codex_home).unwrap_or_else(|_| codex_home.to_path_buf());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cli|{}", &hex[..16])
}

/// The path that stands for the keyring store of `codex_home`.
pub(crate) fn store_path(codex_home: &Path) -> PathBuf {
    codex_home.join(STORE_NAME)
}

/// The keyring entry `path` stands for, when it is a keyring store's path.
pub(crate) fn entry_of(path: &Path) -> Option<KeyringEntry> {
    if path.file_name()? != STORE_NAME {
        return None;
    }
    let codex_home = path.parent()?.to_path_buf();
    Some(KeyringEntry {
        account: account_for(&codex_home),
        codex_home,
    })
}

impl KeyringEntry {
    pub(crate) fn for_home(codex_home: &Path) -> KeyringEntry {
        KeyringEntry {
            codex_home: codex_home.to_path_buf(),
            account: account_for(codex_home),
        }
    }

    /// How people are told about this entry.
    pub(crate) fn describe(&self) -> String {
        format!(
            "OS keyring entry \"{SERVICE}\" / \"{}\" (Codex home {})",
            self.account,
            self.codex_home.display()
        )
    }

    /// The secret (the compact `auth.json` document), or `None` when there is no entry.
    pub(crate) fn read(&self) -> std::result::Result<Option<String>, KeyringError> {
        let account = self.account.clone();
        call(move || match entry(&account)?.get_password() {
            Ok(secret) => Ok(Some(secret)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(err) => Err(classify(err)),
        })
    }

    /// Store `secret`, replacing what the entry held.
    pub(crate) fn write(&self, secret: &str) -> std::result::Result<(), KeyringError> {
        let account = self.account.clone();
        let secret = secret.to_string();
        call(move || entry(&account)?.set_password(&secret).map_err(classify))
    }

    /// Remove the entry; false when there was none.
    pub(crate) fn delete(&self) -> std::result::Result<bool, KeyringError> {
        let account = self.account.clone();
        call(move || match entry(&account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(err) => Err(classify(err)),
        })
    }
}

impl KeyringEntry {
    /// The `auth.json` document the entry holds, as a store read: a missing entry is "not
    /// found", a locked or absent keyring says so (never "not found").
    pub(crate) fn document(&self) -> Result<Value> {
        let secret = match self.read() {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Err(Error::auth(
                    AuthErrorKind::NotFound,
                    format!("No Codex credential in the {}", self.describe()),
                ))
            }
            Err(err) => {
                return Err(Error::auth(
                    AuthErrorKind::Unreadable,
                    format!(
                        "Cannot read the Codex credential from the {}: {err}. Codex's config.toml \
                         keeps it in the keyring (cli_auth_credentials_store); unlock the keyring \
                         or sign in again with `codex-imagen --login`.",
                        self.describe()
                    ),
                ))
            }
        };
        serde_json::from_str(&secret).map_err(|err| {
            Error::auth(
                AuthErrorKind::Invalid,
                format!("Invalid JSON in the {}: {err}", self.describe()),
            )
        })
    }

    /// Replace the entry's secret with `doc` as compact JSON, the way Codex writes it.
    pub(crate) fn save_document(&self, doc: &Value) -> Result<()> {
        let text = serde_json::to_string(doc)
            .map_err(|e| Error::Io(format!("Cannot encode the Codex credential: {e}")))?;
        self.write(&text).map_err(|err| {
            Error::Io(format!(
                "Cannot write the Codex credential to the {}: {err}",
                self.describe()
            ))
        })
    }
}

fn entry(account: &str) -> std::result::Result<keyring::Entry, KeyringError> {
    keyring::Entry::new(SERVICE, account).map_err(classify)
}

fn classify(err: keyring::Error) -> KeyringError {
    match err {
        keyring::Error::NoStorageAccess(why) => KeyringError::Locked(why.to_string()),
        keyring::Error::PlatformFailure(why) => KeyringError::Unavailable(why.to_string()),
        keyring::Error::Ambiguous(items) => KeyringError::Failed(format!(
            "{} entries match; remove the extra ones",
            items.len()
        )),
        other => KeyringError::Failed(other.to_string()),
    }
}

/// Run `op` on its own thread, giving up after [`CALL_LIMIT`] (the thread is left to finish).
fn call<T: Send + 'static>(
    op: impl FnOnce() -> std::result::Result<T, KeyringError> + Send + 'static,
) -> std::result::Result<T, KeyringError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("codex-imagen-keyring".into())
        .spawn(move || {
            let _ = tx.send(op());
        });
    if let Err(err) = spawned {
        return Err(KeyringError::Failed(format!(
            "cannot start a thread: {err}"
        )));
    }
    match rx.recv_timeout(CALL_LIMIT) {
        Ok(result) => result,
        Err(_) => Err(KeyringError::Locked(format!(
            "it did not answer within {} s; is it waiting for a password prompt?",
            CALL_LIMIT.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_codexs_store_key() {
        // A path that does not exist is hashed as given, as Codex does.
        let home = Path::new("/nonexistent/codex-home");
        let digest = Sha256::digest(b"/nonexistent/codex-home");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(account_for(home), format!("cli|{}", &hex[..16]));
        assert_eq!(account_for(home).len(), 20);
    }

    #[test]
    fn only_the_store_name_stands_for_the_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(dir.path());
        let entry = entry_of(&path).unwrap();
        assert_eq!(entry.codex_home, dir.path());
        assert_eq!(entry.account, account_for(dir.path()));
        assert!(entry_of(&dir.path().join("auth.json")).is_none());
    }
}
