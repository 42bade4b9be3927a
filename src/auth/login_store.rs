//! Where a sign-in's credential goes and how it is removed (issue #21): Codex's own stores in
//! Codex's own format, so Codex CLI uses what `--login` made and codex-imagen finds it next time.
//!
//! The target is `--auth PATH` (a Codex-format file there), else the Codex home's store as its
//! `config.toml` says (`auth::codex_config`): `auth.json`, the keyring entry (`keyring`; a
//! successful save deletes `auth.json`, as Codex does), or the keyring with `auth.json` as the
//! fallback when the keyring refuses (`auto`). The document is Codex's `AuthDotJson`, key for
//! key: `auth_mode`, `OPENAI_API_KEY` (always written, null), `tokens` (with `account_id`),
//! `last_refresh` (RFC 3339, UTC). Files are written atomically, 0600 (`auth::write`).
//!
//! A store that already holds another account's credential is replaced only when the caller
//! says so (`--force`); the same account is simply updated. OpenClaw stores are never written
//! or removed here: `--auth` naming one is refused.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::codex_config::{self, StoreMode};
use super::keyring::{KeyringEntry, KeyringError};
use super::login_exchange::{account_of, Account, Tokens};
use super::write::write_store_atomic;
use crate::foundation::error::{Error, Result};
use crate::foundation::paths::Environment;

/// Where a sign-in is saved, or a sign-out removes from.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A Codex `auth.json`-format file.
    File(PathBuf),
    /// The Codex home's keyring entry (`mode` is `Keyring` or `Auto`), and its `auth.json`.
    Keyring {
        entry: KeyringEntry,
        file: PathBuf,
        mode: StoreMode,
    },
}

impl Target {
    /// `--auth PATH` when given, else the store Codex's config names for the Codex home.
    pub(crate) fn resolve(explicit: Option<&Path>, env: &Environment) -> Target {
        if let Some(path) = explicit {
            return Target::File(path.to_path_buf());
        }
        let home = codex_config::codex_home(env);
        let file = home.join("auth.json");
        match codex_config::store_mode(&home) {
            mode @ (StoreMode::Keyring | StoreMode::Auto) => Target::Keyring {
                entry: KeyringEntry::for_home(&home),
                file,
                mode,
            },
            StoreMode::File | StoreMode::Ephemeral => Target::File(file),
        }
    }
}

/// Where a credential went.
#[derive(Debug, Clone)]
pub(crate) struct Saved {
    /// `file` or `keyring`.
    pub store: &'static str,
    /// The file, or the keyring store's path (`auth::keyring::store_path`).
    pub path: PathBuf,
    /// For people: the file, or the keyring entry.
    pub place: String,
    /// The account the store held before, when it was the same one (an update).
    pub updated: bool,
    /// Things the user should know (a keyring that refused in `auto` mode, a stale file).
    pub notes: Vec<String>,
}

/// Codex's `AuthDotJson` for a ChatGPT sign-in, in Codex's field order.
pub(crate) fn codex_document(tokens: &Tokens) -> Value {
    let account = account_of(&tokens.id_token);
    json!({
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": null,
        "tokens": {
            "id_token": tokens.id_token,
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "account_id": account.account_id,
        },
        "last_refresh": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    })
}

/// What a store holds now.
enum Holder {
    Nothing,
    Codex(Account),
    /// Something that is not a Codex ChatGPT credential: an API key, or unreadable text.
    Other(String),
}

fn is_openclaw(doc: &Value) -> bool {
    doc.get("profiles").is_some() || doc.get("openai-codex").is_some()
}

fn holder_of(text: &str, place: &str) -> Result<Holder> {
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return Ok(Holder::Other("something that is not JSON".into()));
    };
    if is_openclaw(&doc) {
        return Err(Error::Usage(format!(
            "{place} is an OpenClaw credential store; --login writes Codex-format credentials \
             only and never changes OpenClaw stores. Choose another --auth path."
        )));
    }
    let Some(tokens) = doc.get("tokens").filter(|t| t.is_object()) else {
        return Ok(if doc.get("OPENAI_API_KEY").is_some_and(Value::is_string) {
            Holder::Other("an API key".into())
        } else {
            Holder::Other("no ChatGPT credential".into())
        });
    };
    let mut account = tokens
        .get("id_token")
        .and_then(Value::as_str)
        .map(account_of)
        .unwrap_or_default();
    if let Some(id) = tokens.get("account_id").and_then(Value::as_str) {
        account.account_id = Some(id.to_string());
    }
    Ok(Holder::Codex(account))
}

fn same_account(a: &Account, b: &Account) -> bool {
    if let (Some(x), Some(y)) = (&a.account_id, &b.account_id) {
        return x == y;
    }
    match (&a.email, &b.email) {
        (Some(x), Some(y)) => x.trim().eq_ignore_ascii_case(y.trim()),
        _ => false,
    }
}

fn read_file(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io(format!("Cannot read {}", path.display()), err)),
    }
}

/// Refuse to replace another account's credential without `force`. True when the store held
/// the same account (an update).
fn check_holder(holder: Holder, place: &str, new: &Account, force: bool) -> Result<bool> {
    let held = match holder {
        Holder::Nothing => return Ok(false),
        Holder::Codex(old) if same_account(&old, new) => return Ok(true),
        Holder::Codex(old) => old.describe(),
        Holder::Other(what) => what,
    };
    if force {
        return Ok(false);
    }
    Err(Error::Usage(format!(
        "{place} already holds {held}; this sign-in is {}. Nothing was changed. Run again with \
         --force to replace it, or choose another store with --auth PATH.",
        new.describe()
    )))
}

fn write_file(path: &Path, doc: &Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("Cannot create {}", dir.display()), e))?;
    }
    write_store_atomic(path, doc)
}

/// Codex deletes `auth.json` once the keyring holds the credential; a failure is only a note.
fn remove_stale_file(file: &Path, notes: &mut Vec<String>) {
    match std::fs::remove_file(file) {
        Ok(()) => notes.push(format!(
            "removed {} (Codex keeps the credential in the keyring)",
            file.display()
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => notes.push(format!("could not remove {}: {err}", file.display())),
    }
}

/// Save a sign-in's tokens to `target`, refusing another account's store unless `force`.
pub(crate) fn save(target: &Target, tokens: &Tokens, force: bool) -> Result<Saved> {
    let new = account_of(&tokens.id_token);
    let doc = codex_document(tokens);
    match target {
        Target::File(path) => {
            let place = path.display().to_string();
            let holder = match read_file(path)? {
                Some(text) => holder_of(&text, &place)?,
                None => Holder::Nothing,
            };
            let updated = check_holder(holder, &place, &new, force)?;
            write_file(path, &doc)?;
            Ok(Saved {
                store: "file",
                path: path.clone(),
                place,
                updated,
                notes: Vec::new(),
            })
        }
        Target::Keyring { entry, file, mode } => {
            save_keyring(entry, file, *mode, &doc, &new, force)
        }
    }
}

fn save_keyring(
    entry: &KeyringEntry,
    file: &Path,
    mode: StoreMode,
    doc: &Value,
    new: &Account,
    force: bool,
) -> Result<Saved> {
    let place = entry.describe();
    let keyring_error = |err: &KeyringError| {
        Error::Io(format!(
            "Cannot use the {place}: {err}. Codex's config.toml sets cli_auth_credentials_store \
             = \"keyring\"; unlock the keyring, or pass --auth PATH to save a file instead."
        ))
    };
    let held = entry.read();
    let holder = match (&held, mode) {
        (Ok(Some(text)), _) => holder_of(text, &place)?,
        (Err(err), StoreMode::Keyring) => return Err(keyring_error(err)),
        // `auto`: an empty or unusable keyring means Codex reads the file.
        _ => match read_file(file)? {
            Some(text) => holder_of(&text, &file.display().to_string())?,
            None => Holder::Nothing,
        },
    };
    let updated = check_holder(holder, &place, new, force)?;
    let mut notes = Vec::new();
    let written = match &held {
        Err(err) => Err(err.clone()),
        Ok(_) => entry.write(&doc.to_string()),
    };
    match written {
        Ok(()) => {
            remove_stale_file(file, &mut notes);
            Ok(Saved {
                store: "keyring",
                path: super::keyring::store_path(&entry.codex_home),
                place,
                updated,
                notes,
            })
        }
        Err(err) if mode == StoreMode::Auto => {
            notes.push(format!(
                "the OS keyring could not be used ({err}); saved to {} instead, as Codex does",
                file.display()
            ));
            write_file(file, doc)?;
            Ok(Saved {
                store: "file",
                path: file.to_path_buf(),
                place: file.display().to_string(),
                updated,
                notes,
            })
        }
        Err(err) => Err(keyring_error(&err)),
    }
}

/// What a sign-out removed, and what the user should know.
#[derive(Debug, Default)]
pub(crate) struct Removed {
    pub removed: Vec<String>,
    pub notes: Vec<String>,
}

/// Remove the Codex credential `target` holds (the keyring entry and the Codex home's
/// `auth.json`, as Codex's own logout does). An OpenClaw store is refused.
pub(crate) fn remove(target: &Target) -> Result<Removed> {
    let mut out = Removed::default();
    let remove_file = |path: &Path, out: &mut Removed| -> Result<()> {
        let Some(text) = read_file(path)? else {
            return Ok(());
        };
        if serde_json::from_str::<Value>(&text).is_ok_and(|doc| is_openclaw(&doc)) {
            return Err(Error::Usage(format!(
                "{} is an OpenClaw credential store; --logout never changes OpenClaw stores. \
                 Sign out of OpenClaw with `openclaw models auth logout <profile id>` \
                 (`openclaw models auth list` shows the ids).",
                path.display()
            )));
        }
        std::fs::remove_file(path)
            .map_err(|e| Error::io(format!("Cannot remove {}", path.display()), e))?;
        out.removed.push(path.display().to_string());
        Ok(())
    };
    match target {
        Target::File(path) => remove_file(path, &mut out)?,
        Target::Keyring { entry, file, mode } => {
            let deleted = entry.delete();
            remove_file(file, &mut out)?;
            match deleted {
                Ok(true) => out.removed.push(entry.describe()),
                Ok(false) => {}
                Err(err) if *mode == StoreMode::Keyring => {
                    return Err(Error::Io(format!(
                        "Cannot remove the {}: {err}",
                        entry.describe()
                    )))
                }
                Err(err) => out.notes.push(format!(
                    "the {} could not be checked: {err}",
                    entry.describe()
                )),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn id_token(email: &str, account: &str) -> String {
        let claims = json!({"email": email,
            "https://api.openai.com/auth": {"chatgpt_account_id": account, "chatgpt_plan_type": "plus"}});
        format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    fn tokens(email: &str, account: &str) -> Tokens {
        Tokens {
            id_token: id_token(email, account),
            access_token: "a".into(),
            refresh_token: "r".into(),
        }
    }

    #[test]
    fn the_document_has_codexs_keys_in_order() {
        let doc = codex_document(&tokens("a@x", "acct-a"));
        let keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]
        );
        let inner: Vec<&str> = doc["tokens"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            inner,
            ["id_token", "access_token", "refresh_token", "account_id"]
        );
        assert_eq!(doc["tokens"]["account_id"], "acct-a");
        assert!(doc["OPENAI_API_KEY"].is_null());
    }

    #[test]
    fn another_account_needs_force_and_the_same_one_is_updated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let target = Target::File(path.clone());
        assert!(
            !save(&target, &tokens("a@x", "acct-a"), false)
                .unwrap()
                .updated
        );
        assert!(
            save(&target, &tokens("a@x", "acct-a"), false)
                .unwrap()
                .updated
        );
        let err = save(&target, &tokens("b@x", "acct-b"), false).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("a@x (account acct-a)") && text.contains("b@x (account acct-b)"),
            "{text}"
        );
        save(&target, &tokens("b@x", "acct-b"), true).unwrap();
        let removed = remove(&target).unwrap();
        assert_eq!(removed.removed, [path.display().to_string()]);
        assert!(remove(&target).unwrap().removed.is_empty());
    }

    #[test]
    fn openclaw_stores_are_never_written_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth-profiles.json");
        std::fs::write(&path, r#"{"profiles":{}}"#).unwrap();
        let target = Target::File(path.clone());
        assert_eq!(
            save(&target, &tokens("a@x", "a"), true)
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(remove(&target).unwrap_err().exit_code(), 2);
        assert!(path.exists());
    }
}
