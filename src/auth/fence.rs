//! OpenClaw 2026.9.4+ refresh *fences*: while OpenClaw refreshes a profile outside its lock it
//! parks an inert marker in place of both tokens; a failed refresh leaves a `failed:` marker.
//! A fence is never a token: it is never sent, never refreshed past, and never reported as one.

use super::store::Auth;

/// OpenClaw 2026.9.4+ claims a refresh by replacing the profile's tokens with
/// `openclaw-oauth-refresh-fence:v1:<claim>:[failed:]access|refresh:<sha256>` (and `expires: 1`),
/// refreshes without holding its lock, then settles the claim under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fence {
    /// An OpenClaw process is refreshing right now: wait, never spend the fence as a token.
    Pending,
    /// OpenClaw's refresh failed and spent the refresh token: only a new sign-in helps.
    Failed,
}

pub(crate) const FENCE_PREFIX: &str = "openclaw-oauth-refresh-fence:v1:";

pub(crate) fn fence(auth: &Auth) -> Option<Fence> {
    let access = fence_token(&auth.access_token, "access")?;
    let refresh = fence_token(auth.refresh_token.as_deref()?, "refresh")?;
    if access != refresh {
        return None;
    }
    Some(if access.1 {
        Fence::Failed
    } else {
        Fence::Pending
    })
}

impl Auth {
    /// A refresh token is present, and it is a token: a fence marker never counts as one.
    pub fn refresh_token_present(&self) -> bool {
        self.refresh_token.is_some() && fence(self).is_none()
    }
}

/// `(claim id, failed)` of one fence token.
fn fence_token<'a>(token: &'a str, kind: &str) -> Option<(&'a str, bool)> {
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let (claim, rest) = token.strip_prefix(FENCE_PREFIX)?.split_once(':')?;
    let (failed, rest) = match rest.strip_prefix("failed:") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let digest = rest.strip_prefix(kind)?.strip_prefix(':')?;
    (hex(claim, 32) && hex(digest, 64)).then_some((claim, failed))
}

/// What `--smoke`, `--refresh-only --json`, the service's `/health` and the MCP `auth_status`
/// say about a profile's credentials (`credential_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialState {
    Ok,
    /// The access token's expiry has passed (a refresh will be tried).
    Expired,
    /// OpenClaw is refreshing the profile right now (a pending fence).
    Refreshing,
    /// OpenClaw's refresh failed and spent the refresh token (a failed fence).
    RefreshFailed,
}

impl CredentialState {
    pub(crate) fn of(auth: &Auth) -> CredentialState {
        match fence(auth) {
            Some(Fence::Pending) => CredentialState::Refreshing,
            Some(Fence::Failed) => CredentialState::RefreshFailed,
            None if auth.reported_seconds_left().is_some_and(|left| left <= 0) => {
                CredentialState::Expired
            }
            None => CredentialState::Ok,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CredentialState::Ok => "ok",
            CredentialState::Expired => "expired",
            CredentialState::Refreshing => "refreshing",
            CredentialState::RefreshFailed => "refresh_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::store::AuthFormat;
    use std::path::PathBuf;

    #[test]
    fn fences_are_recognised_only_in_their_exact_shape() {
        let claim = "0123456789abcdef0123456789abcdef";
        let digest = "a".repeat(64);
        let auth = |access: String, refresh: String| Auth {
            path: PathBuf::from("/x"),
            format: AuthFormat::OpenClawStateSqlite,
            auth_mode: None,
            profile_id: Some("openai:default".into()),
            provider: "openai".into(),
            access_token: access,
            refresh_token: Some(refresh),
            account_id: "a".into(),
            email: None,
            last_refresh: None,
            expires_ms: Some(1000),
            jwt_exp: None,
        };
        let token =
            |failed: &str, kind: &str| format!("{FENCE_PREFIX}{claim}:{failed}{kind}:{digest}");
        assert_eq!(
            fence(&auth(token("", "access"), token("", "refresh"))),
            Some(Fence::Pending)
        );
        assert_eq!(
            fence(&auth(
                token("failed:", "access"),
                token("failed:", "refresh")
            )),
            Some(Fence::Failed)
        );
        assert_eq!(
            fence(&auth(token("failed:", "access"), token("", "refresh"))),
            None
        );
        assert_eq!(
            fence(&auth(token("", "refresh"), token("", "refresh"))),
            None
        );
        assert_eq!(fence(&auth("eyJ.a.b".into(), "r".into())), None);
    }
}
