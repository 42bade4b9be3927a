//! The auth manager every job of a process shares: which credentials a job uses, and one refresh
//! at a time per profile.
//!
//! Refresh tokens are single-use. Two jobs of one process that refresh the same profile at once
//! would both pass any lock their own process holds and spend the same token; the second then
//! fails with a false "Sign in again". So refreshes are single-flight per (canonical store,
//! profile): the first job refreshes; the others wait for it, then re-read the store under the
//! same locks and find it fresh and changed ("auth changed"), which costs no request. A 401 is
//! handled the same way: "refresh if the token is still the one I used", so N jobs that fail
//! together cause one refresh request. Toward other processes nothing changes: the OpenClaw lock
//! files and the SQLite transactions are taken exactly as before ([`super::refresh`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::lock::LockRegistry;
use super::refresh::{self, AuthDelays, Refresher};
use super::{discover, warn_auth_mode, Auth, AuthContext, AuthSettings, Fallback, PreparedAuth};
use super::{RefreshOutcome, SelectOptions};
use crate::foundation::error::{AuthErrorKind, Error, Result};
use crate::foundation::events::{Event, Reporter, Stage};
use crate::foundation::paths::Environment;

/// One profile in one store: what a refresh is single-flight over.
type FlightKey = (PathBuf, String);

pub(crate) struct AuthManager {
    env: Environment,
    settings: AuthSettings,
    http: crate::foundation::http::HttpClient,
    user_agent: String,
    locks: LockRegistry,
    delays: AuthDelays,
    flights: Mutex<HashMap<FlightKey, Arc<tokio::sync::Mutex<()>>>>,
    /// The credentials each profile had after its last refresh here: used when a re-read fails.
    cache: Mutex<HashMap<FlightKey, Auth>>,
}

impl AuthManager {
    pub(crate) fn new(
        env: Environment,
        settings: AuthSettings,
        http: crate::foundation::http::HttpClient,
        user_agent: String,
        delays: AuthDelays,
    ) -> Self {
        AuthManager {
            env,
            settings,
            http,
            user_agent,
            locks: LockRegistry::default(),
            delays,
            flights: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The lock files held now, for a forced exit.
    pub(crate) fn locks(&self) -> &LockRegistry {
        &self.locks
    }

    /// Discovery, now: which store is read first (SPEC §3). Cheap (a few `stat` calls), and done
    /// per job so a long-running service notices a sign-in that happened after it started.
    pub(crate) fn context(&self) -> Result<AuthContext> {
        crate::foundation::blocking::run(|| AuthContext::resolve(&self.settings, &self.env))
    }

    fn refresher<'a>(&'a self, ctx: &'a AuthContext, progress: &Reporter) -> Refresher<'a> {
        Refresher {
            ctx,
            refresh_url: &self.settings.refresh_url,
            enabled: self.settings.refresh,
            user_agent: &self.user_agent,
            http: &self.http,
            locks: &self.locks,
            delays: &self.delays,
            progress: progress.clone(),
        }
    }

    fn flight_key(auth: &Auth) -> FlightKey {
        let store = std::fs::canonicalize(&auth.path).unwrap_or_else(|_| auth.path.clone());
        let profile = auth
            .profile_id
            .clone()
            .unwrap_or_else(|| auth.provider.clone());
        (store, profile)
    }

    fn gate(&self, key: &FlightKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(flights.entry(key.clone()).or_default())
    }

    /// Refresh `auth` for `reason`, one refresh at a time per profile in this process. `auth` is
    /// the credentials the caller used: if another job refreshed them meanwhile, the re-read
    /// under the locks sees that and no request is sent.
    pub(crate) async fn refresh(
        &self,
        ctx: &AuthContext,
        auth: &Auth,
        reason: &str,
        progress: &Reporter,
    ) -> Result<(Auth, RefreshOutcome)> {
        let key = Self::flight_key(auth);
        let gate = self.gate(&key);
        let _flight = gate.lock().await;
        progress.stage(Stage::Refreshing);
        let (fresh, outcome) = self.refresher(ctx, progress).refresh(auth, reason).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, fresh.clone());
        }
        progress.emit(Event::Refresh {
            refreshed: outcome.refreshed,
            skipped: outcome.skipped.clone(),
        });
        Ok((fresh, outcome))
    }

    /// The credentials `auth`'s store holds now for the same profile: another job or process
    /// may have refreshed them since they were read. Falls back to what this process last
    /// refreshed, then to `auth` itself, when the store cannot be read.
    pub(crate) fn latest(&self, ctx: &AuthContext, auth: &Auth) -> Auth {
        let mut options: SelectOptions = ctx.select_options(&auth.path);
        options.requested = if auth.format.holds_profiles() {
            auth.profile_id.clone()
        } else {
            Some(auth.provider.clone())
        };
        let reread = crate::foundation::blocking::run(|| super::read_store(&auth.path, &options));
        match reread {
            Ok(current) if refresh::identity_compatible(auth, &current) => current,
            _ => self
                .cache
                .lock()
                .ok()
                .and_then(|cache| cache.get(&Self::flight_key(auth)).cloned())
                .unwrap_or_else(|| auth.clone()),
        }
    }

    /// Read the credentials a job will use, refreshing them when they are stale or `forced`, and
    /// falling back to the next discovered store when one is irrecoverably stale (SPEC §15).
    pub(crate) async fn prepare(
        &self,
        ctx: &AuthContext,
        forced: bool,
        fallback: Fallback,
        progress: &Reporter,
    ) -> Result<PreparedAuth> {
        let explicit = ctx.explicit || fallback == Fallback::FirstStoreOnly;
        let order = discover::fallback_order(&ctx.path, explicit, &ctx.dirs, &self.env);
        let mut first_error: Option<Error> = None;
        let mut first_identity: Option<Auth> = None;
        for (index, path) in order.iter().enumerate() {
            let auth = match crate::foundation::blocking::run(|| ctx.read(path)) {
                Ok(auth) => auth,
                Err(err) => {
                    let worth = err.worth_falling_back();
                    first_error.get_or_insert(err);
                    if explicit || !worth {
                        break;
                    }
                    continue;
                }
            };
            if let Some(first) = &first_identity {
                if !refresh::identity_compatible(first, &auth) {
                    continue;
                }
            }
            warn_auth_mode(&auth, progress);
            let reason = if forced {
                Some(refresh::REASON_FORCED.to_string())
            } else {
                refresh::stale_reason(&auth)
            };
            let prepared = match reason {
                None => Ok(PreparedAuth {
                    auth: auth.clone(),
                    refresh: None,
                }),
                Some(reason) => {
                    self.refresh(ctx, &auth, &reason, progress)
                        .await
                        .map(|(auth, outcome)| PreparedAuth {
                            auth,
                            refresh: Some(outcome),
                        })
                }
            };
            match prepared {
                Ok(prepared) => {
                    if index > 0 {
                        progress.info(&format!(
                            "codex-imagen: using fallback auth {}",
                            path.display()
                        ));
                    }
                    return Ok(prepared);
                }
                Err(err) => {
                    let worth = err.worth_falling_back();
                    if first_error.is_none() {
                        first_error = Some(err);
                        first_identity = Some(auth);
                    }
                    if explicit || !worth {
                        break;
                    }
                }
            }
        }
        Err(first_error
            .unwrap_or_else(|| Error::auth(AuthErrorKind::NotFound, "No usable auth store found")))
    }
}
