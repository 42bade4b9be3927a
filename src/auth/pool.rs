//! `--pool`: many ChatGPT accounts, one job at a time on the best one.
//!
//! Members come from the stores given with `--auth` (repeatable), else from every store
//! discovery finds ([`super::discover::candidates_with_sqlite`]: the Codex homes — `auth.json`
//! or the Codex keyring entry, which stands in the list as a path — and OpenClaw's JSON and
//! SQLite stores; whatever discovery learns later joins the pool the same way). A store that holds profiles gives one member per OAuth
//! profile of the OpenAI providers, in OpenClaw's order (its `order`, then the config's, then the
//! rest); any other store gives its one credential. The same ChatGPT account found twice (two
//! stores, two profiles) is one member: the first one found.
//!
//! Choosing ([`Pool::choose`]): accounts on cooldown are skipped — ours in
//! `<data dir>/cooldowns.json` ([`super::cooldown`]), and the ones OpenClaw recorded for its
//! profiles (`usageStats.<id>.cooldownUntil`, `disabledUntil`, `blockedUntil`, ms epoch). Among
//! the rest, when every one's image headroom is known (from `wham/usage`, refreshed at most once
//! a minute per account by the engine, never per job) the most headroom wins; otherwise they take
//! turns (round robin). Each member is an [`AuthContext`] naming its store and profile
//! explicitly, so refresh, locks and fences work exactly as for `--auth PATH --auth-profile ID`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cooldown::{account_key, Cooldown, CooldownStore};
use super::{discover, select, sqlite, store, AuthContext, SelectOptions};
use crate::foundation::error::{AuthErrorKind, Error, Result, UsageLimit};
use crate::foundation::paths::{Environment, OpenClawDirs};
use crate::foundation::sync::lock;

/// How often one account's `wham/usage` may be asked.
pub(crate) const HEADROOM_EVERY: Duration = Duration::from_secs(60);

/// One account of the pool.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// [`account_key`] of the account id: the cooldown key.
    pub key: String,
    /// For reports: the email, else the redacted account id. Never a token.
    pub label: String,
    /// For messages and the cooldown file: the email or account id, redacted.
    pub redacted: String,
    pub path: PathBuf,
    /// The OpenClaw profile id; `None` for a store with one credential.
    pub profile: Option<String>,
    /// OpenClaw's own record: unusable until then (Unix seconds).
    pub openclaw_until: Option<i64>,
}

impl Member {
    /// The auth context that reads exactly this account.
    pub(crate) fn context(&self, dirs: &OpenClawDirs) -> AuthContext {
        AuthContext {
            dirs: dirs.clone(),
            path: self.path.clone(),
            explicit: true,
            requested_profile: self.profile.clone(),
        }
    }
}

/// What [`Pool::choose`] found.
#[derive(Debug)]
pub(crate) enum Choice {
    Use(Member),
    /// Every account is on cooldown (or already tried): each one's redacted name and reset.
    Exhausted(Vec<(String, i64)>),
}

/// `--pool`'s settings: the stores named with `--auth` (none: discovery) and the data
/// directory that holds `cooldowns.json`.
#[derive(Debug, Clone, Default)]
pub struct PoolSettings {
    pub auth_paths: Vec<PathBuf>,
    pub data_dir: PathBuf,
}

pub(crate) struct Pool {
    dirs: OpenClawDirs,
    members: Vec<Member>,
    cooldowns: CooldownStore,
    next: AtomicUsize,
    /// Per member key: when `wham/usage` was last asked, and the image headroom (percent left).
    headroom: Mutex<HashMap<String, (Instant, Option<f64>)>>,
}

impl Pool {
    /// Find the members. An error when none is usable, naming every store tried.
    pub(crate) fn load(settings: &PoolSettings, env: &Environment) -> Result<Pool> {
        let dirs = OpenClawDirs::from_env(env);
        let explicit = !settings.auth_paths.is_empty();
        let stores: Vec<PathBuf> = if explicit {
            settings.auth_paths.clone()
        } else {
            discover::candidates_with_sqlite(&dirs, env)
                .into_iter()
                // `present`: a file, or the Codex keyring entry (#21) standing in as its path.
                .filter(|p| discover::present(p))
                .collect()
        };
        let mut members: Vec<Member> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        for path in &stores {
            let ctx = AuthContext {
                dirs: dirs.clone(),
                path: path.clone(),
                explicit,
                requested_profile: None,
            };
            match members_of(path, &ctx.select_options(path)) {
                Ok(found) => {
                    for member in found {
                        if !members.iter().any(|m| m.key == member.key) {
                            members.push(member);
                        }
                    }
                }
                Err(err) => errors.push(format!("  - {}: {err}", path.display())),
            }
        }
        if members.is_empty() {
            let tried = if stores.is_empty() {
                "no auth store was found".to_string()
            } else {
                format!(
                    "none of these stores holds a usable ChatGPT account:\n{}",
                    errors.join("\n")
                )
            };
            return Err(Error::auth(
                AuthErrorKind::NotFound,
                format!("--pool: {tried}"),
            ));
        }
        Ok(Pool {
            dirs,
            members,
            cooldowns: CooldownStore::new(&settings.data_dir),
            next: AtomicUsize::new(0),
            headroom: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn members(&self) -> &[Member] {
        &self.members
    }

    pub(crate) fn dirs(&self) -> &OpenClawDirs {
        &self.dirs
    }

    /// When each member is usable again (Unix seconds), if it is on cooldown at `now`.
    fn unusable_until(&self, now: i64) -> Vec<Option<i64>> {
        let active = self.cooldowns.active(now);
        self.members
            .iter()
            .map(|m| {
                let ours = active.get(&m.key).map(|c| c.until);
                let theirs = m.openclaw_until.filter(|t| *t > now);
                ours.max(theirs)
            })
            .collect()
    }

    /// The account for the next request of a job; `tried` are the keys this job already moved
    /// away from.
    pub(crate) fn choose(&self, tried: &[String], now: i64) -> Choice {
        let until = self.unusable_until(now);
        let candidates: Vec<&Member> = self
            .members
            .iter()
            .zip(&until)
            .filter(|(m, u)| u.is_none() && !tried.contains(&m.key))
            .map(|(m, _)| m)
            .collect();
        if candidates.is_empty() {
            let list = self
                .members
                .iter()
                .zip(&until)
                .map(|(m, u)| (m.redacted.clone(), u.unwrap_or(now)))
                .collect();
            return Choice::Exhausted(list);
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let headroom = lock(&self.headroom);
        let known: Option<Vec<f64>> = candidates
            .iter()
            .map(|m| headroom.get(&m.key).and_then(|(_, h)| *h))
            .collect();
        let index = match known {
            Some(values) => {
                let best = values.iter().cloned().fold(f64::MIN, f64::max);
                let ties: Vec<usize> = (0..values.len()).filter(|i| values[*i] >= best).collect();
                ties[turn % ties.len()]
            }
            None => turn % candidates.len(),
        };
        Choice::Use(candidates[index].clone())
    }

    /// When `member` is usable again, if it is on cooldown at `now`.
    pub(crate) fn cooldown_of(&self, member: &Member, now: i64) -> Option<i64> {
        let ours = self.cooldowns.active(now).get(&member.key).map(|c| c.until);
        ours.max(member.openclaw_until.filter(|t| *t > now))
    }

    /// The earliest time an account is usable again when every one is on cooldown now.
    pub(crate) fn paused_until(&self, now: i64) -> Option<i64> {
        let until = self.unusable_until(now);
        if until.iter().any(Option::is_none) {
            return None;
        }
        until.into_iter().flatten().min()
    }

    /// Put `member` on cooldown until `until` (Unix seconds), for every process.
    pub(crate) fn cool_down(&self, member: &Member, until: i64, now: i64) -> Result<()> {
        let cooldown = Cooldown {
            until,
            account: member.redacted.clone(),
            reason: "usage_limit".into(),
        };
        self.cooldowns.set(&member.key, cooldown, now)
    }

    /// True (and remembered) when `member`'s headroom may be asked now: at most once a minute.
    pub(crate) fn headroom_due(&self, member: &Member) -> bool {
        let mut headroom = lock(&self.headroom);
        let due = headroom
            .get(&member.key)
            .is_none_or(|(at, _)| at.elapsed() >= HEADROOM_EVERY);
        if due {
            let known = headroom.get(&member.key).and_then(|(_, h)| *h);
            headroom.insert(member.key.clone(), (Instant::now(), known));
        }
        due
    }

    /// What `wham/usage` said about `member`'s image quota (percent left), if anything.
    pub(crate) fn record_headroom(&self, member: &Member, percent_left: Option<f64>) {
        lock(&self.headroom).insert(member.key.clone(), (Instant::now(), percent_left));
    }
}

/// The error a run ends with when every account is on cooldown: a usage limit (exit 1, batch
/// stops) naming each account and when it resets.
pub(crate) fn exhausted_error(list: &[(String, i64)], now: i64) -> Error {
    let earliest = list.iter().map(|(_, u)| *u).min().unwrap_or(now);
    let lines: Vec<String> = list
        .iter()
        .map(|(name, until)| {
            let at = chrono::DateTime::from_timestamp(*until, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            let wait = (*until - now).max(0);
            format!("  - {name}: resets at {at} (in {} min)", (wait + 59) / 60)
        })
        .collect();
    Error::Http {
        status: 429,
        message: format!(
            "Every account in the pool is on cooldown (usage limit):\n{}",
            lines.join("\n")
        ),
        usage_limit: Some(UsageLimit {
            resets_at: chrono::DateTime::from_timestamp(earliest, 0),
        }),
        retry_after_secs: None,
    }
}

/// `jane@example.com` → `j***@example.com`; other text keeps its first 4 and last 4 characters.
pub(crate) fn redact(text: &str) -> String {
    if let Some((user, domain)) = text.split_once('@') {
        let first: String = user.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 8 {
        let head: String = chars.iter().take(2).collect();
        return format!("{head}…");
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// The members one store gives.
fn members_of(path: &Path, options: &SelectOptions) -> Result<Vec<Member>> {
    let (document, state) = if sqlite::is_sqlite_store(path) {
        let docs = sqlite::read_documents(path)?;
        (docs.store, Some(docs.state))
    } else {
        (store::read_document(path)?, None)
    };
    let Some(profiles) = document.get("profiles").and_then(Value::as_object) else {
        let auth = super::read_store(path, options)?;
        return Ok(vec![member(&auth, None)]);
    };
    let stats = usage_stats(path, &document);
    let mut options = options.clone();
    // OpenClaw's `order`: the SQLite state, else the JSON store's own, else (None) its
    // sibling `auth-state.json`.
    options.state = state.or_else(|| {
        document
            .get("order")
            .map(|order| serde_json::json!({ "order": order }))
    });
    let ids = select::pool_profile_ids(profiles, path, &options);
    let mut found = Vec::new();
    for id in ids {
        let mut one = options.clone();
        one.requested = Some(id.clone());
        // A profile without an account id cannot be told apart from the others: skipped.
        if let Ok(auth) = super::read_store(path, &one) {
            found.push(member(&auth, openclaw_until(stats.as_ref(), &id)));
        }
    }
    Ok(found)
}

fn member(auth: &super::Auth, openclaw_until: Option<i64>) -> Member {
    let redacted_id = redact(&auth.account_id);
    Member {
        key: account_key(&auth.account_id),
        label: auth.email.clone().unwrap_or_else(|| redacted_id.clone()),
        redacted: auth.email.as_deref().map(redact).unwrap_or(redacted_id),
        path: auth.path.clone(),
        profile: auth.profile_id.clone(),
        openclaw_until,
    }
}

/// OpenClaw's `usageStats`: in the store document, else its sibling `auth-state.json`.
fn usage_stats(path: &Path, document: &Value) -> Option<Value> {
    if let Some(stats) = document.get("usageStats") {
        return Some(stats.clone());
    }
    let sibling = path.parent()?.join("auth-state.json");
    let text = std::fs::read_to_string(sibling).ok()?;
    serde_json::from_str::<Value>(&text)
        .ok()?
        .get("usageStats")
        .cloned()
}

/// The latest of `cooldownUntil`, `disabledUntil` and `blockedUntil` (ms) as Unix seconds.
fn openclaw_until(stats: Option<&Value>, id: &str) -> Option<i64> {
    let entry = stats?.get(id)?;
    ["cooldownUntil", "disabledUntil", "blockedUntil"]
        .iter()
        .filter_map(|k| entry.get(*k).and_then(Value::as_f64))
        .map(|ms| (ms / 1000.0).ceil() as i64)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn test_member(id: &str) -> Member {
        Member {
            key: account_key(id),
            label: id.into(),
            redacted: redact(id),
            path: PathBuf::from("/x"),
            profile: None,
            openclaw_until: None,
        }
    }

    fn test_pool(dir: &Path, members: Vec<Member>) -> Pool {
        Pool {
            dirs: OpenClawDirs::from_env(&Environment::from_vars([], "/h".into(), "/w".into())),
            members,
            cooldowns: CooldownStore::new(dir),
            next: AtomicUsize::new(0),
            headroom: Mutex::new(HashMap::new()),
        }
    }

    fn chosen(pool: &Pool, tried: &[String], now: i64) -> String {
        match pool.choose(tried, now) {
            Choice::Use(m) => m.label,
            Choice::Exhausted(list) => format!("exhausted {list:?}"),
        }
    }

    #[test]
    fn choice_takes_turns_skips_cooldowns_and_prefers_headroom() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            test_member("acct-a"),
            test_member("acct-b"),
            test_member("acct-c"),
        );
        let pool = test_pool(dir.path(), vec![a.clone(), b.clone(), c.clone()]);
        let turns: Vec<String> = (0..4).map(|_| chosen(&pool, &[], 100)).collect();
        assert_eq!(turns, ["acct-a", "acct-b", "acct-c", "acct-a"]);
        pool.cool_down(&b, 500, 100).unwrap();
        assert_eq!(chosen(&pool, std::slice::from_ref(&a.key), 100), "acct-c");
        assert_eq!(pool.paused_until(100), None);
        // Every headroom known: the most wins.
        pool.record_headroom(&a, Some(10.0));
        pool.record_headroom(&c, Some(70.0));
        assert_eq!(chosen(&pool, &[], 100), "acct-c");
        assert_eq!(chosen(&pool, &[], 100), "acct-c");
        // Everyone out: exhausted, paused until the earliest reset.
        pool.cool_down(&a, 300, 100).unwrap();
        pool.cool_down(&c, 400, 100).unwrap();
        assert!(chosen(&pool, &[], 100).starts_with("exhausted"));
        assert_eq!(pool.paused_until(100), Some(300));
        assert_eq!(pool.paused_until(300), None);
        assert!(!pool.headroom_due(&a));
    }

    #[test]
    fn redaction_keeps_little() {
        assert_eq!(redact("jane@example.com"), "j***@example.com");
        assert_eq!(redact("acct-1234567890"), "acct…7890");
        assert_eq!(redact("acct-1"), "ac…");
    }

    #[test]
    fn openclaw_cooldowns_are_the_latest_field() {
        let stats = json!({"p": {"cooldownUntil": 5_000, "blockedUntil": 9_500, "errorCount": 2}});
        assert_eq!(openclaw_until(Some(&stats), "p"), Some(10));
        assert_eq!(openclaw_until(Some(&stats), "q"), None);
    }

    #[test]
    fn exhausted_lists_every_account() {
        let err = exhausted_error(&[("a***@x".into(), 1_000), ("b***@x".into(), 700)], 600);
        let text = err.to_string();
        assert!(
            text.contains("a***@x: resets at 1970-01-01T00:16:40Z (in 7 min)"),
            "{text}"
        );
        assert!(
            text.contains("b***@x: resets at 1970-01-01T00:11:40Z (in 2 min)"),
            "{text}"
        );
        assert_eq!(
            err.usage_limit()
                .and_then(|l| l.resets_at)
                .map(|t| t.timestamp()),
            Some(700)
        );
    }
}
