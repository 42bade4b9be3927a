//! A job across the accounts of `--pool`, and the pause a long-running front-end honours.
//!
//! With a pool, each job asks [`Pool::choose`] for an account, runs on exactly that store and
//! profile, and on a usage limit (a 429 `usage_limit_reached`, or a 429 rate limit naming
//! images) puts the account on cooldown for every process — until its reset, else
//! `Retry-After`, else 15 minutes — and moves at once to the next account. The failed request
//! produced no image (a 429 comes before any output, and an attempt that saved an image never
//! fails with one), so nothing is billed twice. When every account is on cooldown the job ends
//! with a usage-limit error naming each account (redacted) and its reset.
//!
//! [`Engine::paused_until`] is what the service and the MCP server read before they send: every
//! pool account on cooldown, or, without a pool, the reset of the last usage limit seen.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::shared::Engine;
use crate::auth::cooldown::DEFAULT_COOLDOWN_SECS;
use crate::auth::pool::{exhausted_error, Choice, Member, Pool};
use crate::auth::Fallback;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::{NullSink, Reporter};
use crate::foundation::job::{JobResult, JobSpec};
use crate::foundation::sync::lock;

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

fn rfc3339(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Until when a failure puts its account on cooldown; `None` when it is not a usage limit.
pub(crate) fn cooldown_until(err: &Error, now: i64) -> Option<i64> {
    let Error::Http {
        status: 429,
        message,
        usage_limit,
        retry_after_secs,
    } = err
    else {
        return None;
    };
    let lower = message.to_ascii_lowercase();
    let names_images =
        lower.contains("image") && (lower.contains("rate limit") || lower.contains("rate_limit"));
    if usage_limit.is_none() && !names_images {
        return None;
    }
    let reset = usage_limit
        .as_ref()
        .and_then(|l| l.resets_at)
        .map(|t| t.timestamp())
        .filter(|t| *t > now);
    let after = retry_after_secs.map(|s| now + s.min(i64::MAX as u64 / 2) as i64);
    Some(reset.or(after).unwrap_or(now + DEFAULT_COOLDOWN_SECS))
}

impl Engine {
    /// When this engine sends nothing until: every `--pool` account is on cooldown, or (one
    /// account) the last usage limit seen has not reset. `None`: go ahead.
    pub(crate) fn paused_until(&self) -> Option<DateTime<Utc>> {
        let now = now_secs();
        let until = match &self.inner().pool {
            Some(pool) => pool.paused_until(now),
            None => (*lock(&self.inner().paused)).filter(|t| *t > now),
        };
        until.and_then(|t| DateTime::from_timestamp(t, 0))
    }

    /// [`Engine::run`] after any pause is over (see [`Engine::paused_until`]): for front-ends
    /// that keep running (the MCP server), which wait out a usage limit instead of sending
    /// into it. Looks again at least every 30 s, so a cooldown another process lifted counts.
    pub(crate) async fn run_when_ready(
        &self,
        job: JobSpec,
        sink: Arc<dyn crate::foundation::events::EventSink>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<JobResult> {
        while let Some(until) = self.paused_until() {
            let left = (until - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(std::time::Duration::from_secs(30))
                + std::time::Duration::from_millis(50);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(left) => {}
            }
        }
        self.run(job, sink, cancel).await
    }

    /// True with `--pool`.
    pub(crate) fn has_pool(&self) -> bool {
        self.inner().pool.is_some()
    }

    /// Without a pool: remember a usage limit so [`Engine::paused_until`] reports it.
    pub(crate) fn note_failure(&self, err: &Error) {
        if self.inner().pool.is_some() || err.usage_limit().is_none() {
            return;
        }
        let now = now_secs();
        if let Some(until) = cooldown_until(err, now) {
            let mut paused = lock(&self.inner().paused);
            *paused = Some(paused.map_or(until, |p| p.max(until)));
        }
    }

    /// A job on the pool (the one-shot CLI, which prepares nothing itself with `--pool`).
    pub(crate) async fn run_pooled(&self, job: &JobSpec, progress: &Reporter) -> Result<JobResult> {
        match &self.inner().pool {
            // One job per process: a headroom look-up would be one request per run.
            Some(pool) => self.run_on_pool(pool, job, progress, false).await,
            None => Err(Error::Usage("--pool was not given".into())),
        }
    }

    /// Every pool account's `wham/usage` report (`--usage --pool`): its label, and the parsed
    /// answer or why there is none. Asked one account after the other.
    pub(crate) async fn pool_usage(
        &self,
        progress: &Reporter,
    ) -> Vec<(String, Option<i64>, Result<crate::backend::usage::Usage>)> {
        let Some(pool) = &self.inner().pool else {
            return Vec::new();
        };
        let now = now_secs();
        let mut reports = Vec::new();
        for member in pool.members() {
            let ctx = member.context(pool.dirs());
            let report = match self
                .usage_body(&ctx, Fallback::FirstStoreOnly, progress)
                .await
            {
                Ok((body, url)) => {
                    pool.record_headroom(member, crate::backend::headroom::image_headroom(&body));
                    crate::backend::usage::parse(&body, Utc::now())
                        .map_err(|e| Error::BadResponse(format!("{e} (from {url})")))
                }
                Err(err) => Err(err),
            };
            reports.push((member.label.clone(), pool.cooldown_of(member, now), report));
        }
        reports
    }

    /// One job on the pool's accounts (see the module docs). `probe`: ask `wham/usage` for the
    /// chosen account's headroom in the background (a process that runs many jobs).
    pub(crate) async fn run_on_pool(
        &self,
        pool: &Pool,
        job: &JobSpec,
        progress: &Reporter,
        probe: bool,
    ) -> Result<JobResult> {
        let mut tried: Vec<String> = Vec::new();
        let mut auth_error: Option<Error> = None;
        loop {
            let now = now_secs();
            let member = match pool.choose(&tried, now) {
                Choice::Use(member) => member,
                Choice::Exhausted(list) => {
                    return Err(auth_error.unwrap_or_else(|| exhausted_error(&list, now)));
                }
            };
            if probe {
                self.refresh_headroom_later(pool, &member);
            }
            progress.info(&format!("codex-imagen: account {}", member.label));
            let ctx = member.context(pool.dirs());
            let prepared = match self
                .auth()
                .prepare(&ctx, job.force_refresh, Fallback::FirstStoreOnly, progress)
                .await
            {
                Ok(prepared) => prepared,
                Err(err) => {
                    // This account cannot be used now; another one may.
                    progress.warn(&format!(
                        "codex-imagen: warning: account {} skipped: {}",
                        member.redacted,
                        err.to_string().lines().next().unwrap_or_default()
                    ));
                    tried.push(member.key.clone());
                    auth_error.get_or_insert(err);
                    continue;
                }
            };
            if pool.cooldown_of(&member, now_secs()).is_some() {
                // Another job met this account's limit while this one got ready: choose again,
                // so nothing more is sent to it before its reset.
                continue;
            }
            match self.run_prepared(&ctx, prepared, job, progress).await {
                Ok(mut result) => {
                    result.account = Some(member.label.clone());
                    return Ok(result);
                }
                Err(err) => {
                    let now = now_secs();
                    let Some(until) = cooldown_until(&err, now) else {
                        return Err(err);
                    };
                    if let Err(write) = pool.cool_down(&member, until, now) {
                        progress.warn(&format!("codex-imagen: warning: {write}"));
                    }
                    progress.warn(&format!(
                        "codex-imagen: account {} reached its usage limit; on cooldown until {}; \
                         moving to the next account",
                        member.redacted,
                        rfc3339(until)
                    ));
                    tried.push(member.key.clone());
                    auth_error = None;
                }
            }
        }
    }

    /// Ask `wham/usage` for `member`'s image headroom in the background, at most once a minute
    /// per account (never per job); the answer only steers later choices.
    fn refresh_headroom_later(&self, pool: &Pool, member: &Member) {
        if !pool.headroom_due(member) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let engine = self.clone();
        let member = member.clone();
        tokio::spawn(async move {
            let Some(pool) = &engine.inner().pool else {
                return;
            };
            let ctx = member.context(pool.dirs());
            let quiet = Reporter::new(Arc::new(NullSink));
            let headroom = engine
                .usage_body(&ctx, Fallback::FirstStoreOnly, &quiet)
                .await
                .ok()
                .and_then(|(body, _)| crate::backend::headroom::image_headroom(&body));
            pool.record_headroom(&member, headroom);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::error::UsageLimit;

    fn http(status: u16, message: &str, limit: Option<i64>, after: Option<u64>) -> Error {
        Error::Http {
            status,
            message: message.into(),
            usage_limit: limit.map(|t| UsageLimit {
                resets_at: DateTime::from_timestamp(t, 0),
            }),
            retry_after_secs: after,
        }
    }

    #[test]
    fn cooldowns_come_from_the_reset_then_retry_after_then_15_minutes() {
        assert_eq!(
            cooldown_until(&http(429, "x", Some(500), Some(9)), 100),
            Some(500)
        );
        assert_eq!(
            cooldown_until(&http(429, "x", Some(50), Some(9)), 100),
            Some(109)
        );
        assert_eq!(
            cooldown_until(&http(429, "x", Some(50), None), 100),
            Some(1000)
        );
        assert_eq!(
            cooldown_until(
                &http(
                    429,
                    "image generation request was rate limited",
                    None,
                    Some(60)
                ),
                100
            ),
            Some(160)
        );
        assert_eq!(
            cooldown_until(&http(429, "slow down", None, Some(60)), 100),
            None
        );
        assert_eq!(cooldown_until(&http(500, "x", Some(500), None), 100), None);
        assert_eq!(cooldown_until(&Error::Transport("x".into()), 100), None);
    }
}
