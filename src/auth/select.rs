//! Which OpenClaw profile is used (SPEC §5): the requested id, else the configured order, else
//! `lastGood`, else the best-scoring selectable profile.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::token::{normalize_expires_ms, now_ms};
use crate::foundation::error::{AuthErrorKind, Error, Result};

pub const CODEX_PROVIDER: &str = "openai-codex";
/// OpenClaw 2026.6.1 renamed the provider `openai-codex` to `openai` (`openclaw doctor --fix`
/// rewrites the ids); its OAuth profiles are the same ChatGPT sign-in.
pub const OPENAI_PROVIDER: &str = "openai";
/// Keys under which `auth.order` and `lastGood` name these profiles: the current name first.
const OAUTH_PROVIDERS: [&str; 2] = [OPENAI_PROVIDER, CODEX_PROVIDER];

/// How to pick a profile from an OpenClaw store.
#[derive(Debug, Clone, Default)]
pub struct SelectOptions {
    /// `--auth-profile` or its environment variables.
    pub requested: Option<String>,
    /// The OpenClaw config file, when its `auth.order` may be used for this store.
    pub config_path: Option<PathBuf>,
    /// The store's own runtime state (`lastGood`, `order`) when its layout keeps it in the store
    /// (OpenClaw's SQLite rows); `None` means the sibling `auth-state.json`.
    pub state: Option<Value>,
}

pub(crate) fn profile_str<'a>(profile: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| profile.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

pub(crate) fn profile_access(profile: &Value) -> Option<&str> {
    profile_str(profile, &["access", "access_token", "token"])
}

pub(crate) fn profile_refresh(profile: &Value) -> Option<&str> {
    profile_str(profile, &["refresh", "refresh_token"])
}

pub(crate) fn profile_account_id(profile: &Value) -> Option<&str> {
    profile_str(profile, &["accountId", "account_id", "account"])
}

/// An OAuth profile of `openai-codex` or, since OpenClaw 2026.6.1, `openai`. Only `type: oauth`:
/// an `openai` API-key profile is never a ChatGPT sign-in.
fn is_codex_oauth(profile: &Value) -> bool {
    profile.get("type").and_then(Value::as_str) == Some("oauth")
        && profile
            .get("provider")
            .and_then(Value::as_str)
            .is_some_and(|p| OAUTH_PROVIDERS.contains(&p))
}

fn is_selectable(profile: Option<&Value>) -> bool {
    profile.is_some_and(|p| is_codex_oauth(p) && profile_access(p).is_some())
}

fn provider_of_id(id: &str) -> &str {
    id.split_once(':').map(|(p, _)| p).unwrap_or(id)
}

/// `auth.order.openai` and `auth.order["openai-codex"]`, then the configured profiles of those
/// providers; a missing or broken config counts as none.
pub fn configured_order(config_path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(config_path) else {
        return Vec::new();
    };
    let Ok(config) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    let auth = config.get("auth");
    let mut order: Vec<String> = Vec::new();
    let mut push = |id: &str| {
        let id = id.trim();
        if !id.is_empty() && !order.iter().any(|o| o == id) {
            order.push(id.to_string());
        }
    };
    for provider in OAUTH_PROVIDERS {
        if let Some(list) = auth
            .and_then(|a| a.get("order"))
            .and_then(|o| o.get(provider))
            .and_then(Value::as_array)
        {
            list.iter().filter_map(Value::as_str).for_each(&mut push);
        }
    }
    if let Some(profiles) = auth
        .and_then(|a| a.get("profiles"))
        .and_then(Value::as_object)
    {
        for (id, profile) in profiles {
            let provider = profile
                .get("provider")
                .and_then(Value::as_str)
                .unwrap_or_else(|| provider_of_id(id));
            if OAUTH_PROVIDERS.contains(&provider) {
                push(id);
            }
        }
    }
    order
}

/// The sibling `auth-state.json` of a JSON store, if readable.
fn sibling_state(store_path: &Path) -> Option<Value> {
    let state_path = store_path.parent()?.join("auth-state.json");
    let text = std::fs::read_to_string(state_path).ok()?;
    serde_json::from_str(&text).ok()
}

/// The ids a state's `field` (`lastGood` or `order`) lists for the OpenAI OAuth providers.
fn state_ids(state: Option<&Value>, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for provider in OAUTH_PROVIDERS {
        let Some(entry) = state
            .and_then(|s| s.get(field))
            .and_then(|f| f.get(provider))
        else {
            continue;
        };
        let listed: Vec<&str> = match entry {
            Value::String(id) => vec![id.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for id in listed
            .into_iter()
            .map(str::trim)
            .filter(|id| !id.is_empty())
        {
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_string());
            }
        }
    }
    ids
}

/// Every selectable profile of a store, for `--pool`: the order OpenClaw would try them in (the
/// store's own `order`, then the config's), then the rest in the store's order.
pub(crate) fn pool_profile_ids(
    profiles: &Map<String, Value>,
    store_path: &Path,
    options: &SelectOptions,
) -> Vec<String> {
    let sibling = match &options.state {
        Some(_) => None,
        None => sibling_state(store_path),
    };
    let state = options.state.as_ref().or(sibling.as_ref());
    let mut ids = state_ids(state, "order");
    for id in options
        .config_path
        .as_deref()
        .map(configured_order)
        .unwrap_or_default()
    {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for id in profiles.keys() {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids.retain(|id| is_selectable(profiles.get(id.as_str())));
    ids
}

/// Pick the profile id to use from a store's `profiles` object.
pub fn select_profile(
    profiles: &Map<String, Value>,
    store_path: &Path,
    options: &SelectOptions,
) -> Result<String> {
    if let Some(requested) = options
        .requested
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        if profiles.contains_key(requested) {
            return Ok(requested.to_string());
        }
        return Err(Error::auth(
            AuthErrorKind::ProfileNotFound,
            format!(
                "OpenClaw auth profile not found in {}: {requested}",
                store_path.display()
            ),
        ));
    }

    // A SQLite store keeps OpenClaw's own `order` (set by `openclaw models auth order`), which
    // OpenClaw ranks ahead of the config's; JSON stores keep the Node tool's config-only order.
    let sibling;
    let state = match &options.state {
        Some(state) => Some(state),
        None => {
            sibling = sibling_state(store_path);
            sibling.as_ref()
        }
    };
    let mut order = match &options.state {
        Some(state) => state_ids(Some(state), "order"),
        None => Vec::new(),
    };
    for id in options
        .config_path
        .as_deref()
        .map(configured_order)
        .unwrap_or_default()
    {
        if !order.contains(&id) {
            order.push(id);
        }
    }
    if let Some(id) = order
        .iter()
        .find(|id| is_selectable(profiles.get(id.as_str())))
    {
        return Ok(id.clone());
    }

    // `lastGood.openai` may name an API-key profile; the first selectable one is what counts.
    let last_good = state_ids(state, "lastGood")
        .into_iter()
        .find(|id| is_selectable(profiles.get(id.as_str())));
    if let Some(id) = last_good.as_deref() {
        return Ok(id.to_string());
    }

    let selectable: Vec<(&String, &Value)> = profiles
        .iter()
        .filter(|(_, p)| is_selectable(Some(p)))
        .collect();
    let with_account: Vec<(&String, &Value)> = selectable
        .iter()
        .copied()
        .filter(|(_, p)| profile_account_id(p).is_some())
        .collect();
    let ranked = if with_account.is_empty() {
        selectable
    } else {
        with_account
    };

    let now = now_ms();
    let score = |id: &str, profile: &Value| -> i64 {
        let mut score = 0;
        if last_good.as_deref() == Some(id) {
            score += 1_000_000;
        }
        if let Some(index) = order.iter().position(|o| o == id) {
            score += 500_000 - index as i64;
        }
        if id == "openai-codex:default" || id == "openai:default" {
            score += 1000;
        }
        if let Some(expires) = profile.get("expires").and_then(normalize_expires_ms) {
            score += ((expires - now) / 1000).clamp(0, 999_999);
        }
        if profile_str(profile, &["email"]).is_some() {
            score += 100;
        }
        if profile_account_id(profile).is_some() {
            score += 100;
        }
        score
    };
    // max_by_key keeps the last maximum; iterate reversed so the earliest profile wins ties.
    ranked
        .iter()
        .rev()
        .max_by_key(|(id, p)| score(id, p))
        .map(|(id, _)| id.to_string())
        .ok_or_else(|| {
            Error::auth(
                AuthErrorKind::ProfileNotFound,
                format!(
                    "No openai-codex OAuth profile found in {}",
                    store_path.display()
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profiles(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn oauth(account: Option<&str>, email: Option<&str>, expires: Option<i64>) -> Value {
        let mut p = json!({"type": "oauth", "provider": "openai-codex", "access": "tok"});
        if let Some(a) = account {
            p["accountId"] = json!(a);
        }
        if let Some(e) = email {
            p["email"] = json!(e);
        }
        if let Some(x) = expires {
            p["expires"] = json!(x);
        }
        p
    }

    #[test]
    fn requested_profile_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth-profiles.json");
        let ps = profiles(json!({"openai-codex:a": oauth(Some("1"), None, None)}));
        let opts = SelectOptions {
            requested: Some("openai-codex:zz".into()),
            ..Default::default()
        };
        let err = select_profile(&ps, &path, &opts).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "OpenClaw auth profile not found in {}: openai-codex:zz",
                path.display()
            )
        );
    }

    #[test]
    fn scoring_prefers_default_then_expiry_then_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth-profiles.json");
        let later = now_ms() + 3_600_000;
        let ps = profiles(json!({
            "openai-codex:a": oauth(Some("1"), Some("a@x"), Some(later)),
            "openai-codex:default": oauth(Some("2"), None, None),
            "openai-codex:noacct": oauth(None, Some("n@x"), Some(later + 9_000_000)),
            "anthropic:x": {"type": "oauth", "provider": "anthropic", "access": "t", "accountId": "9"},
        }));
        // a: 3600 + 100 + 100 = 3800 beats default: 1000 + 100
        assert_eq!(
            select_profile(&ps, &path, &SelectOptions::default()).unwrap(),
            "openai-codex:a"
        );
    }

    #[test]
    fn last_good_and_config_order_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth-profiles.json");
        let ps = profiles(json!({
            "openai-codex:a": oauth(Some("1"), Some("a@x"), None),
            "openai-codex:b": oauth(Some("2"), None, None),
            "openai-codex:c": oauth(Some("3"), None, None),
        }));
        std::fs::write(
            dir.path().join("auth-state.json"),
            r#"{"lastGood":{"openai-codex":"openai-codex:b"}}"#,
        )
        .unwrap();
        assert_eq!(
            select_profile(&ps, &path, &SelectOptions::default()).unwrap(),
            "openai-codex:b"
        );
        let config = dir.path().join("openclaw.json");
        std::fs::write(
            &config,
            r#"{"auth":{"order":{"openai-codex":[" openai-codex:missing ","openai-codex:c"]}}}"#,
        )
        .unwrap();
        let opts = SelectOptions {
            config_path: Some(config),
            ..Default::default()
        };
        assert_eq!(select_profile(&ps, &path, &opts).unwrap(), "openai-codex:c");
    }

    #[test]
    fn openai_oauth_profiles_count_and_api_keys_never_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw-agent.sqlite");
        let ps = profiles(json!({
            "openai:api": {"type": "api_key", "provider": "openai", "key": "sk", "access": "t", "accountId": "1"},
            "openai:me@x": {"type": "oauth", "provider": "openai", "access": "t", "accountId": "2"},
            "openai:default": {"type": "oauth", "provider": "openai", "access": "t", "accountId": "3"},
        }));
        // lastGood.openai names the API key: skipped, so scoring picks openai:default (+1000).
        let opts = SelectOptions {
            state: Some(json!({"lastGood": {"openai": "openai:api"}})),
            ..Default::default()
        };
        assert_eq!(select_profile(&ps, &path, &opts).unwrap(), "openai:default");
        let opts = SelectOptions {
            state: Some(
                json!({"lastGood": {"openai": "openai:api", "openai-codex": "openai:me@x"}}),
            ),
            ..Default::default()
        };
        assert_eq!(select_profile(&ps, &path, &opts).unwrap(), "openai:me@x");
        // The store's own order (SQLite state row) is used even without a config.
        let opts = SelectOptions {
            state: Some(json!({"order": {"openai": ["openai:api", "openai:me@x"]}})),
            ..Default::default()
        };
        assert_eq!(select_profile(&ps, &path, &opts).unwrap(), "openai:me@x");
        let config = dir.path().join("openclaw.json");
        std::fs::write(
            &config,
            r#"{"auth":{"order":{"openai":["openai:api","openai:me@x"]}}}"#,
        )
        .unwrap();
        let opts = SelectOptions {
            config_path: Some(config),
            ..Default::default()
        };
        assert_eq!(select_profile(&ps, &path, &opts).unwrap(), "openai:me@x");
    }

    #[test]
    fn no_selectable_profile_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth-profiles.json");
        let ps =
            profiles(json!({"x": {"type": "api_key", "provider": "openai-codex", "access": "t"}}));
        let err = select_profile(&ps, &path, &SelectOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("No openai-codex OAuth profile found in"));
    }
}
