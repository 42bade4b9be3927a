//! Where Codex keeps its credential: the Codex home (`$CODEX_HOME`, else `~/.codex`) and the
//! `cli_auth_credentials_store` key of its `config.toml` (Codex's `AuthCredentialsStoreMode`).
//!
//! Codex reads the key as a lowercase enum with `file` as the default; an absent or unreadable
//! config, or a value Codex would not accept, means `file` here too, so a machine without the
//! key behaves exactly as before the keyring existed. Reading costs one `stat` when there is no
//! `config.toml`, which is what lets discovery consult it on every job.

use std::path::{Path, PathBuf};

use crate::foundation::paths::Environment;

/// `cli_auth_credentials_store`: where Codex loads and saves its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreMode {
    /// `auth.json` only (Codex's default).
    File,
    /// The OS keyring only; a successful save deletes `auth.json`.
    Keyring,
    /// The keyring when it holds an entry (or accepts a save), else `auth.json`.
    Auto,
    /// Codex keeps the credential in memory only: nothing on disk for us to read or write but
    /// `auth.json`, which is treated as `file`.
    Ephemeral,
}

impl StoreMode {
    fn parse(value: &str) -> Option<StoreMode> {
        match value {
            "file" => Some(StoreMode::File),
            "keyring" => Some(StoreMode::Keyring),
            "auto" => Some(StoreMode::Auto),
            "ephemeral" => Some(StoreMode::Ephemeral),
            _ => None,
        }
    }

    /// True when Codex looks in the keyring in this mode.
    pub(crate) fn uses_keyring(self) -> bool {
        matches!(self, StoreMode::Keyring | StoreMode::Auto)
    }
}

/// The Codex home this environment points at: `$CODEX_HOME` (resolved against `--cwd`), else
/// `~/.codex`.
pub(crate) fn codex_home(env: &Environment) -> PathBuf {
    match env.var("CODEX_HOME") {
        Some(home) => env.resolve(&home),
        None => env.home().join(".codex"),
    }
}

/// The store mode `codex_home/config.toml` asks for (`file` when it says nothing usable).
pub(crate) fn store_mode(codex_home: &Path) -> StoreMode {
    let Ok(text) = std::fs::read_to_string(codex_home.join("config.toml")) else {
        return StoreMode::File;
    };
    mode_in(&text).unwrap_or(StoreMode::File)
}

fn mode_in(text: &str) -> Option<StoreMode> {
    let table: toml::Table = text.parse().ok()?;
    StoreMode::parse(table.get("cli_auth_credentials_store")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_read_as_codex_reads_it() {
        assert_eq!(
            mode_in("cli_auth_credentials_store = \"keyring\"\n"),
            Some(StoreMode::Keyring)
        );
        assert_eq!(
            mode_in(
                "# c\nmodel = \"x\"\ncli_auth_credentials_store = 'auto'\n[profiles.a]\nb = 1\n"
            ),
            Some(StoreMode::Auto)
        );
        // Only the top-level key counts; unknown values and broken files mean the default.
        assert_eq!(
            mode_in("[x]\ncli_auth_credentials_store = \"keyring\"\n"),
            None
        );
        assert_eq!(mode_in("cli_auth_credentials_store = \"Keyring\"\n"), None);
        assert_eq!(mode_in("cli_auth_credentials_store = = \n"), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(store_mode(dir.path()), StoreMode::File);
    }
}
