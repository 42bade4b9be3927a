//! ChatGPT Cloudflare cookies (SPEC §10.3).
//!
//! Cloudflare in front of chatgpt.com sometimes answers a request with a 403 challenge that sets
//! bot-management cookies (`__cf_bm`, `cf_clearance`, ...) and expects them back. Codex keeps
//! exactly those cookies, for exactly the ChatGPT hosts, for the life of the process; so do we.
//! The jar is deliberately narrow: it is keyed by cookie name only, never stores a cookie from
//! another host or over plain http, never stores a session or auth cookie (those would let a
//! token-like secret ride along on every request), and lives in memory only — nothing is written
//! to disk, so a challenge answer never outlives the run.

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::Url;

/// Cloudflare's documented service cookies; `cf_chl_*` challenge cookies are allowed by prefix.
const ALLOWED_NAMES: [&str; 9] = [
    "__cf_bm",
    "__cflb",
    "__cfruid",
    "__cfseq",
    "__cfwaitingroom",
    "_cfuvid",
    "cf_clearance",
    "cf_ob_info",
    "cf_use_ob",
];
const CHALLENGE_PREFIX: &str = "cf_chl_";

const EXACT_HOSTS: [&str; 3] = ["chatgpt.com", "chat.openai.com", "chatgpt-staging.com"];
const HOST_SUFFIXES: [&str; 2] = [".chatgpt.com", ".chatgpt-staging.com"];

/// Whether cookies may be remembered from, and sent to, this URL: `https` and a ChatGPT host.
pub fn is_chatgpt_cookie_url(url: &str) -> bool {
    let Ok(url) = Url::parse(url) else {
        return false;
    };
    if url.scheme() != "https" {
        return false;
    }
    // `Url` lowercases domain names, so `ChatGPT.com` matches; IP addresses never do.
    let Some(host) = url.domain() else {
        return false;
    };
    EXACT_HOSTS.contains(&host) || HOST_SUFFIXES.iter().any(|s| host.ends_with(s))
}

/// Whether a cookie with this name is one of the Cloudflare cookies we may keep.
pub fn is_allowed_cookie_name(name: &str) -> bool {
    ALLOWED_NAMES.contains(&name) || name.starts_with(CHALLENGE_PREFIX)
}

/// The remembered `name=value` pairs of one run, in the order they were first set.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CookieJar {
    pairs: Vec<(String, String)>,
}

impl CookieJar {
    /// Remember the allowed cookies a response from `url` set. Returns how many values it set
    /// (a cookie it only cleared does not count): the caller's 403 retry depends on it.
    pub fn remember(&mut self, url: &str, headers: &HeaderMap) -> usize {
        if !is_chatgpt_cookie_url(url) {
            return 0;
        }
        headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|line| self.remember_line(line))
            .count()
    }

    /// One `Set-Cookie` value: only the pair before the first `;` matters (attributes such as
    /// Domain or Path cannot widen where it is sent: the jar only ever talks to ChatGPT hosts).
    fn remember_line(&mut self, line: &str) -> bool {
        let pair = line.split(';').next().unwrap_or("");
        let Some((name, value)) = pair.split_once('=') else {
            return false;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || !is_allowed_cookie_name(name) {
            return false;
        }
        let expired = line.split(';').skip(1).any(|attr| {
            let attr = attr.trim().to_ascii_lowercase();
            attr.strip_prefix("max-age=")
                .is_some_and(|age| age.trim().parse::<i64>().is_ok_and(|s| s <= 0))
        });
        if value.is_empty() || expired {
            // Cloudflare clears a cookie by setting it empty or already expired.
            self.pairs.retain(|(n, _)| n != name);
            return false;
        }
        match self.pairs.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.pairs.push((name.to_string(), value.to_string())),
        }
        true
    }

    /// The `cookie` header value for a request to `url`, when there is anything to send.
    pub fn header_for(&self, url: &str) -> Option<String> {
        if self.pairs.is_empty() || !is_chatgpt_cookie_url(url) {
            return None;
        }
        Some(
            self.pairs
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Re-send a request once, at once, when it was answered 403 and that answer set ChatGPT
/// Cloudflare cookies (`cookies_set`, from the jar); never a second time for the same request.
pub fn retry_with_cookies(status: u16, cookies_set: usize, already_retried: bool) -> bool {
    status == 403 && cookies_set > 0 && !already_retried
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const API: &str = "https://chatgpt.com/backend-api/codex/responses";

    fn set_cookies(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(SET_COOKIE, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[test]
    fn only_https_chatgpt_hosts_and_their_subdomains_qualify() {
        for url in [
            "https://chatgpt.com/backend-api/codex",
            "https://CHATGPT.com/x",
            "https://chat.openai.com/backend-api",
            "https://chatgpt-staging.com/a",
            "https://ab.chatgpt.com/a",
            "https://a.b.chatgpt-staging.com/a",
            "https://chatgpt.com:8443/a",
        ] {
            assert!(is_chatgpt_cookie_url(url), "{url}");
        }
        for url in [
            "http://chatgpt.com/backend-api/codex",
            "ws://chatgpt.com/x",
            "https://evilchatgpt.com/x",
            "https://chatgpt.com.evil.test/x",
            "https://openai.com/x",
            "https://api.openai.com/v1",
            "https://x.chat.openai.com/x",
            "https://staging.chatgpt-staging.co/x",
            "https://127.0.0.1/x",
            "http://127.0.0.1:4000/backend-api/codex",
            "not a url",
        ] {
            assert!(!is_chatgpt_cookie_url(url), "{url}");
        }
    }

    #[test]
    fn only_cloudflare_names_are_allowed() {
        for name in ALLOWED_NAMES {
            assert!(is_allowed_cookie_name(name), "{name}");
        }
        assert!(is_allowed_cookie_name("cf_chl_rc_m"));
        for name in [
            "__Secure-next-auth.session-token",
            "session",
            "oai-did",
            "__oailb",
            "cf_chl",
            "CF_CLEARANCE",
            "cf_clearance2",
            "_cfuvid_x",
        ] {
            assert!(!is_allowed_cookie_name(name), "{name}");
        }
    }

    #[test]
    fn remembers_allowed_pairs_and_sends_them_back() {
        let mut jar = CookieJar::default();
        let headers = set_cookies(&[
            "__cf_bm=abc.def; path=/; expires=Sat, 01 Jan 2050 00:00:00 GMT; domain=.chatgpt.com; HttpOnly; Secure",
            "__Secure-next-auth.session-token=secret; Path=/; Secure",
            "_cfuvid=v1; path=/; domain=.chatgpt.com",
            "oai-did=device; Path=/",
            "cf_chl_2=challenge; Path=/",
        ]);
        assert_eq!(jar.remember(API, &headers), 3);
        assert_eq!(
            jar.header_for(API).as_deref(),
            Some("__cf_bm=abc.def; _cfuvid=v1; cf_chl_2=challenge")
        );
        // Sent to every ChatGPT host, never anywhere else.
        assert!(jar.header_for("https://ab.chatgpt.com/x").is_some());
        assert_eq!(jar.header_for("http://chatgpt.com/backend-api"), None);
        assert_eq!(jar.header_for("https://auth.openai.com/oauth/token"), None);
        assert_eq!(jar.header_for("http://127.0.0.1:9/backend-api/codex"), None);
    }

    #[test]
    fn later_values_replace_earlier_ones_and_clears_remove_them() {
        let mut jar = CookieJar::default();
        jar.remember(API, &set_cookies(&["__cf_bm=one", "cf_clearance=c"]));
        assert_eq!(jar.remember(API, &set_cookies(&["__cf_bm=two; Secure"])), 1);
        assert_eq!(
            jar.header_for(API).as_deref(),
            Some("__cf_bm=two; cf_clearance=c")
        );
        assert_eq!(jar.remember(API, &set_cookies(&["__cf_bm=; Max-Age=0"])), 0);
        assert_eq!(jar.header_for(API).as_deref(), Some("cf_clearance=c"));
        jar.remember(API, &set_cookies(&["cf_clearance=gone; Max-Age=0"]));
        assert!(jar.is_empty());
        assert_eq!(jar.header_for(API), None);
    }

    #[test]
    fn nothing_is_stored_from_other_hosts_or_plain_http() {
        let mut jar = CookieJar::default();
        let headers = set_cookies(&["cf_clearance=x; Path=/", "__cf_bm=y"]);
        for url in [
            "http://chatgpt.com/backend-api/codex/responses",
            "https://auth.openai.com/oauth/token",
            "https://example.com/",
            "http://127.0.0.1:4000/backend-api/codex/responses",
        ] {
            assert_eq!(jar.remember(url, &headers), 0, "{url}");
        }
        assert!(jar.is_empty());
    }

    #[test]
    fn malformed_set_cookie_lines_are_ignored() {
        let mut jar = CookieJar::default();
        let headers = set_cookies(&["cf_clearance", "=value", "; __cf_bm=x", ""]);
        assert_eq!(jar.remember(API, &headers), 0);
        assert!(jar.is_empty());
    }

    #[test]
    fn nothing_is_persisted() {
        // A later run starts from nothing: the jar has no file behind it.
        let mut jar = CookieJar::default();
        jar.remember(API, &set_cookies(&["cf_clearance=x"]));
        assert!(!jar.is_empty());
        assert!(CookieJar::default().is_empty());
        // And a guard against someone giving it one: the non-test code touches no file system.
        let source = include_str!("cookies.rs");
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        for io in [
            "std::fs",
            "tokio::fs",
            "File",
            "dirs::",
            "paths::",
            "OpenOptions",
        ] {
            assert!(!code.contains(io), "cookies.rs must not use {io}");
        }
    }

    #[test]
    fn a_cookie_403_is_sent_again_exactly_once() {
        assert!(retry_with_cookies(403, 1, false));
        assert!(retry_with_cookies(403, 3, false));
        assert!(!retry_with_cookies(403, 1, true), "only once");
        assert!(
            !retry_with_cookies(403, 0, false),
            "no cookies, nothing to send back"
        );
        for status in [200, 401, 429, 500, 503] {
            assert!(!retry_with_cookies(status, 2, false), "{status}");
        }
    }

    #[test]
    fn a_cookie_403_follows_the_jar() {
        use reqwest::header::{HeaderMap, HeaderValue, SET_COOKIE};
        let challenge = |line: &str| {
            let mut h = HeaderMap::new();
            h.append(SET_COOKIE, HeaderValue::from_str(line).unwrap());
            h
        };
        let chatgpt = "https://chatgpt.com/backend-api/codex/responses";
        let mut jar = CookieJar::default();
        // The first 403 hands out cf_clearance: send again with it.
        let set = jar.remember(chatgpt, &challenge("cf_clearance=ok; Path=/; Secure"));
        assert!(retry_with_cookies(403, set, false));
        assert_eq!(jar.header_for(chatgpt).as_deref(), Some("cf_clearance=ok"));
        // The second 403 of the same request is final, whatever it sets.
        let set = jar.remember(chatgpt, &challenge("__cf_bm=again"));
        assert!(!retry_with_cookies(403, set, true));
        // A 403 that sets only other cookies, or comes from elsewhere, is final at once.
        let mut jar = CookieJar::default();
        let set = jar.remember(chatgpt, &challenge("session=secret"));
        assert!(!retry_with_cookies(403, set, false));
        let set = jar.remember(
            "http://127.0.0.1:8080/backend-api/codex/responses",
            &challenge("cf_clearance=ok"),
        );
        assert!(!retry_with_cookies(403, set, false));
        assert!(jar.is_empty());
    }
}
