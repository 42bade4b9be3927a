//! Where OpenClaw's per-profile refresh locks live (SPEC §8, §8.1). Versions differ, so both
//! paths are computed and both locks are taken, always in the same order:
//! 1. `<state>/locks/oauth-refresh/sha256-<hex>.lock` (OpenClaw up to 2026.6.5),
//! 2. `<state>/locks/oauth-refresh/lock-<hex>.lock` (2026.6.6 and later).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `<state>/locks/oauth-refresh/sha256-<hex of provider NUL profile>`: the refresh lock of
/// OpenClaw up to 2026.6.5 (`resolveOAuthRefreshLockPath`).
pub fn refresh_lock_file(state_dir: &Path, provider: &str, profile_id: &str) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(provider.as_bytes());
    hasher.update([0u8]);
    hasher.update(profile_id.as_bytes());
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    state_dir
        .join("locks")
        .join("oauth-refresh")
        .join(format!("sha256-{hex}"))
}

/// `<state>/locks/oauth-refresh/lock-<digest of JSON.stringify([provider, profileId])>`: the
/// refresh lock of OpenClaw 2026.6.6 and later.
pub fn tuple_refresh_lock_file(state_dir: &Path, provider: &str, profile_id: &str) -> PathBuf {
    // serde_json escapes strings exactly as JSON.stringify does (quote, backslash, \b \f \n \r
    // \t, other controls as lower-case \u00xx, everything else raw), so the bytes hashed match.
    let tuple = serde_json::to_string(&[provider, profile_id]).unwrap_or_default();
    state_dir
        .join("locks")
        .join("oauth-refresh")
        .join(format!("lock-{}", oauth_lock_path_digest(&tuple)))
}

/// OpenClaw's `oauthLockPathDigest`: two 64-bit FNV-1a lanes over the UTF-8 bytes, the second
/// with its own offset basis and each byte first offset by 0x9e3779b97f4a7c15.
pub fn oauth_lock_path_digest(value: &str) -> String {
    const PRIME: u64 = 1_099_511_628_211;
    let mut left: u64 = 14_695_981_039_346_656_037;
    let mut right: u64 = 11_160_318_154_034_397_263;
    for &byte in value.as_bytes() {
        left = (left ^ byte as u64).wrapping_mul(PRIME);
        // JS: `right ^ octet + 11400714819323198485n` adds before it XORs; the sum stays < 2^64.
        right = (right ^ (byte as u64 + 11_400_714_819_323_198_485)).wrapping_mul(PRIME);
    }
    format!("{left:016x}{right:016x}")
}

/// Both refresh-lock files for a profile, in the order they are taken.
pub fn refresh_lock_files(state_dir: &Path, provider: &str, profile_id: &str) -> [PathBuf; 2] {
    [
        refresh_lock_file(state_dir, provider, profile_id),
        tuple_refresh_lock_file(state_dir, provider, profile_id),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_lock_digests_match_openclaws_function() {
        let cases = [
            (
                "openai",
                "openai:default",
                "5440fa0b86d2697ef1152f7cb32a8157",
            ),
            (
                "openai-codex",
                "openai-codex:default",
                "7b9da1f0ba485a46aaec13e8c09ceb27",
            ),
            (
                "openai",
                "openai:me@example.com",
                "98b549f98aa9ad78cf535d85c44baf72",
            ),
            (
                "openai",
                "openai:\u{e9}\u{e8} \"q\" \\ \n\t\u{1} \u{2028} \u{1f600}",
                "867688ffb6166bd624b94f3fea78b879",
            ),
            ("", "", "f3933dba1e878965d04b9a7098533222"),
        ];
        for (provider, profile, hex) in cases {
            assert_eq!(
                tuple_refresh_lock_file(Path::new("/s"), provider, profile),
                PathBuf::from(format!("/s/locks/oauth-refresh/lock-{hex}")),
                "{provider:?} {profile:?}"
            );
        }
        let both = refresh_lock_files(Path::new("/s"), "openai", "openai:default");
        assert_eq!(
            both[0],
            PathBuf::from(
                "/s/locks/oauth-refresh/sha256-5745659ffbfd6177a09e335e5c3da5e6bc0c2ed19b67af51f537ea171e03ccd0"
            )
        );
    }

    #[test]
    fn refresh_lock_path_is_openclaws() {
        let path = refresh_lock_file(Path::new("/s"), "openai-codex", "openai-codex:default");
        let hex: String = Sha256::digest(b"openai-codex\0openai-codex:default")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            path,
            PathBuf::from(format!("/s/locks/oauth-refresh/sha256-{hex}"))
        );
    }
}
