//! `--logout`: remove the credential codex-imagen would use, when it is in a Codex store.
//!
//! With `--auth PATH` that file; otherwise the store discovery picks first. A Codex `auth.json`
//! is removed; a keyring entry is removed together with its Codex home's `auth.json`, as
//! Codex's own logout does. An OpenClaw store is never changed: the user is told which
//! OpenClaw command signs out instead. Afterwards discovery runs again, so the user learns
//! which credential (if any) codex-imagen would use now.

use std::path::Path;

use serde_json::{json, Value};

use crate::auth::codex_config::{self, StoreMode};
use crate::auth::keyring::{self, KeyringEntry};
use crate::auth::login_store::{self, Target};
use crate::auth::{sqlite, store, AuthContext};
use crate::foundation::error::{AuthErrorKind, Error, Result};
use crate::frontend::config::Config;
use crate::frontend::report;

/// What discovery's first store is.
enum Found {
    Codex(Target),
    OpenClaw {
        path: String,
        profile: Option<String>,
    },
    Nothing,
}

fn openclaw_hint(profile: Option<&str>) -> String {
    match profile {
        Some(id) => format!("`openclaw models auth logout {id}`"),
        None => "`openclaw models auth logout <profile id>` (`openclaw models auth list` shows \
                 the ids)"
            .to_string(),
    }
}

fn classify(ctx: &AuthContext, path: &Path) -> Found {
    if let Some(entry) = keyring::entry_of(path) {
        return Found::Codex(keyring_target(entry));
    }
    let openclaw = || Found::OpenClaw {
        path: path.display().to_string(),
        profile: ctx.read(path).ok().and_then(|auth| auth.profile_id),
    };
    if sqlite::is_sqlite_store(path) {
        return openclaw();
    }
    match store::read_document(path) {
        Ok(doc) if doc.get("profiles").is_some() || doc.get("openai-codex").is_some() => openclaw(),
        Ok(_) | Err(_) => Found::Codex(Target::File(path.to_path_buf())),
    }
}

fn keyring_target(entry: KeyringEntry) -> Target {
    let mode = match codex_config::store_mode(&entry.codex_home) {
        StoreMode::Auto => StoreMode::Auto,
        _ => StoreMode::Keyring,
    };
    Target::Keyring {
        file: entry.codex_home.join("auth.json"),
        entry,
        mode,
    }
}

fn first_store(config: &Config) -> Result<Found> {
    let ctx = match AuthContext::resolve(&config.auth, &config.env) {
        Ok(ctx) => ctx,
        Err(Error::Auth {
            kind: AuthErrorKind::NotFound,
            ..
        }) => return Ok(Found::Nothing),
        Err(err) => return Err(err),
    };
    Ok(classify(&ctx, &ctx.path))
}

/// Run `--logout`; the exit code.
pub(crate) fn run(config: &Config) -> Result<i32> {
    let found = first_store(config)?;
    let (removed, notes) = match &found {
        Found::Codex(target) => {
            let removed = login_store::remove(target)?;
            (removed.removed, removed.notes)
        }
        Found::OpenClaw { .. } | Found::Nothing => (Vec::new(), Vec::new()),
    };
    let mut lines: Vec<String> = Vec::new();
    match &found {
        Found::OpenClaw { path, profile } => lines.push(format!(
            "Not signed out: codex-imagen uses OpenClaw's credential in {path}, and --logout \
             never changes OpenClaw stores. Sign out of OpenClaw with {}.",
            openclaw_hint(profile.as_deref())
        )),
        Found::Nothing => lines.push("Not signed in: codex-imagen finds no credential.".into()),
        Found::Codex(_) if removed.is_empty() => {
            lines.push("Not signed in: there was no Codex credential to remove.".into())
        }
        Found::Codex(_) => lines.extend(removed.iter().map(|r| format!("Removed {r}"))),
    }
    lines.extend(notes.iter().map(|n| format!("note: {n}")));
    // What a run would use now (only when something was removed and no --auth pinned it).
    let next = if removed.is_empty() || config.auth.auth_path.is_some() {
        None
    } else {
        match first_store(config) {
            Ok(Found::Codex(Target::File(path))) => Some((path.display().to_string(), None)),
            Ok(Found::Codex(Target::Keyring { entry, .. })) => Some((entry.describe(), None)),
            Ok(Found::OpenClaw { path, profile }) => Some((path, Some(profile))),
            Ok(Found::Nothing) | Err(_) => None,
        }
    };
    if let Some((place, openclaw)) = &next {
        lines.push(match openclaw {
            Some(profile) => format!(
                "codex-imagen will now use OpenClaw's credential in {place}; sign out of \
                 OpenClaw with {}.",
                openclaw_hint(profile.as_deref())
            ),
            None => format!("codex-imagen will now use {place}."),
        });
    }
    if config.json {
        report::print_json(&json!({
            "removed": removed,
            "notes": notes,
            "openclaw_store": match &found {
                Found::OpenClaw { path, .. } => Value::from(path.clone()),
                _ => Value::Null,
            },
            "now_using": next.map(|(place, _)| place),
        }));
    } else {
        report::print_stdout(&format!("{}\n", lines.join("\n")));
    }
    Ok(0)
}
