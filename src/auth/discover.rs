//! Which auth store is used (SPEC §3): the candidates in order, the first existing file wins.
//! `--auth` is the only candidate when given: an explicit path is never bypassed.
//!
//! A Codex home whose `config.toml` sets `cli_auth_credentials_store` is looked up the way Codex
//! looks it up: `keyring` means the keyring entry instead of `auth.json`; `auto` means the
//! keyring entry first, then `auth.json`. The entry stands in the list as its store path
//! (`auth::keyring`); in `keyring` mode it counts as present unless the keyring says it is
//! empty (a locked or absent keyring is then reported by the read, never as "not found"); in
//! `auto` mode only an entry the keyring actually returns counts, so anything else falls back
//! to `auth.json`, as Codex does.

use std::path::{Path, PathBuf};

use super::codex_config::{self, StoreMode};
use super::keyring::{self, KeyringError};
use crate::foundation::error::{AuthErrorKind, Error, Result};
use crate::foundation::paths::{self, Environment, OpenClawDirs};

/// The discovery list, duplicates removed, in SPEC order.
pub fn candidates(dirs: &OpenClawDirs, env: &Environment) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = Vec::new();
    for name in [
        "CODEX_IMAGEN_AUTH_JSON",
        "OPENCLAW_CODEX_AUTH_JSON",
        "CODEX_AUTH_JSON",
    ] {
        if let Some(value) = env.var(name) {
            list.push(env.resolve(&value));
        }
    }
    list.push(dirs.agent_dir.join("auth-profiles.json"));
    list.push(dirs.agent_dir.join("auth.json"));
    list.push(dirs.oauth_dir.join("oauth.json"));
    if let Some(codex_home) = env.var("CODEX_HOME") {
        list.extend(codex_stores(&env.resolve(&codex_home)));
    }
    list.extend(codex_stores(&env.home().join(".codex")));

    let mut unique: Vec<PathBuf> = Vec::with_capacity(list.len());
    for path in list {
        if !unique.contains(&path) {
            unique.push(path);
        }
    }
    unique
}

/// The stores of one Codex home, in the order Codex reads them.
fn codex_stores(codex_home: &Path) -> Vec<PathBuf> {
    let file = codex_home.join("auth.json");
    match codex_config::store_mode(codex_home) {
        StoreMode::Keyring => vec![keyring::store_path(codex_home)],
        StoreMode::Auto => vec![keyring::store_path(codex_home), file],
        StoreMode::File | StoreMode::Ephemeral => vec![file],
    }
}

/// What the keyring said about a keyring candidate.
fn keyring_probe(path: &Path) -> Option<(StoreMode, std::result::Result<bool, KeyringError>)> {
    let entry = keyring::entry_of(path)?;
    let mode = codex_config::store_mode(&entry.codex_home);
    if !mode.uses_keyring() {
        return Some((mode, Ok(false)));
    }
    Some((mode, entry.read().map(|secret| secret.is_some())))
}

/// Whether discovery counts `path` as an existing store.
pub(crate) fn present(path: &Path) -> bool {
    match keyring_probe(path) {
        None => paths::is_file(path),
        Some((StoreMode::Keyring, found)) => !matches!(found, Ok(false)),
        Some((_, found)) => matches!(found, Ok(true)),
    }
}

/// A line of the `Tried:` list: the path, and for a keyring entry which one and what it said.
fn tried_line(path: &Path) -> String {
    let Some(entry) = keyring::entry_of(path) else {
        return format!("  - {}", path.display());
    };
    let said = match keyring_probe(path) {
        Some((_, Ok(false))) => "no entry".to_string(),
        Some((_, Ok(true))) => "present".to_string(),
        Some((_, Err(err))) => err.to_string(),
        None => "not consulted".to_string(),
    };
    format!(
        "  - {} (OS keyring entry \"{}\" / \"{}\": {said})",
        path.display(),
        keyring::SERVICE,
        entry.account
    )
}

/// [`candidates`] with the OpenClaw SQLite stores that hold credentials spliced in ahead of the
/// active agent's JSON files, newest layout first (OpenClaw 2026.6.5+ no longer reads those JSON
/// files). Only existing stores are added, so a JSON-only machine gets exactly [`candidates`].
pub fn candidates_with_sqlite(dirs: &OpenClawDirs, env: &Environment) -> Vec<PathBuf> {
    let list = candidates(dirs, env);
    let databases = crate::auth::sqlite::discover(dirs);
    if databases.is_empty() {
        return list;
    }
    let agent_json = dirs.agent_dir.join("auth-profiles.json");
    let at = list
        .iter()
        .position(|p| *p == agent_json)
        .unwrap_or(list.len());
    let mut merged: Vec<PathBuf> = list[..at].to_vec();
    for path in databases.into_iter().chain(list[at..].iter().cloned()) {
        if !merged.contains(&path) {
            merged.push(path);
        }
    }
    merged
}

/// The auth store to read first.
pub fn resolve_auth_path(
    explicit: Option<&Path>,
    dirs: &OpenClawDirs,
    env: &Environment,
) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(found) = candidates_with_sqlite(dirs, env)
        .into_iter()
        .find(|p| present(p))
    {
        return Ok(found);
    }
    // The JSON candidates with OpenClaw's databases where discovery consults them: ahead of
    // the active agent's JSON files.
    let mut list = candidates(dirs, env);
    let agent_json = dirs.agent_dir.join("auth-profiles.json");
    let at = list
        .iter()
        .position(|p| *p == agent_json)
        .unwrap_or(list.len());
    for (offset, db) in crate::auth::sqlite::looked_for(dirs)
        .into_iter()
        .enumerate()
    {
        list.insert(at + offset, db);
    }
    let tried: Vec<String> = list.iter().map(|p| tried_line(p)).collect();
    Err(Error::auth(
        AuthErrorKind::NotFound,
        format!(
            "No auth JSON found. Tried:\n{}\n{NO_AUTH_FIX}",
            tried.join("\n")
        ),
    ))
}

/// What a newcomer does when no credentials exist yet.
const NO_AUTH_FIX: &str = "fix: sign in with `codex login` (Codex CLI) or \
`openclaw models auth login --provider openai` (OpenClaw), or pass --auth <path>";

/// Every existing candidate, the resolved path first: the order fallback walks (SPEC §15).
pub fn fallback_order(
    first: &Path,
    explicit: bool,
    dirs: &OpenClawDirs,
    env: &Environment,
) -> Vec<PathBuf> {
    let mut order = vec![first.to_path_buf()];
    if explicit {
        return order;
    }
    for candidate in candidates_with_sqlite(dirs, env) {
        if !order.contains(&candidate) && present(&candidate) {
            order.push(candidate);
        }
    }
    order
}
