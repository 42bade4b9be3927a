//! Where callbacks may go: `http(s)` to public addresses and to loopback; anything else
//! (private, shared/CGNAT, link-local and metadata, unspecified, multicast, reserved, v4 and v6,
//! and IPv4 written in a numeric form such as `2130706433` or `0x7f.1`) only with
//! `--allow-private-callbacks`.
//!
//! The rule is checked three times: on the URL at submission (a 400 naming `callback.url`; a
//! name is resolved then too, when it resolves), on the URL before every delivery, and inside
//! the callback client's DNS resolver ([`GuardedResolver`]), which hands the connector only
//! allowed addresses. That client resolves on every connection (no pooled connections), follows
//! no redirect and uses no proxy, so a name that rebinds to a private address between the
//! check and the delivery still cannot be reached.
//!
//! Credentials in a callback URL are used for delivery but never shown: [`redacted`] is what a
//! job object carries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::foundation::error::{Error, Result};

/// What an address is when it is not allowed by default; `None` for public and loopback.
pub(crate) fn refused_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (127, _, _) => None,
        (0, _, _) => Some("unspecified"),
        (10, _, _) | (192, 168, _) => Some("private"),
        (172, b, _) if (16..32).contains(&b) => Some("private"),
        (100, b, _) if (64..128).contains(&b) => Some("shared (CGNAT)"),
        (169, 254, _) => Some("link-local"),
        (224..=239, _, _) => Some("multicast"),
        (240..=255, _, _) => Some("reserved"),
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Some("reserved"),
        (198, 18 | 19, _) => Some("reserved"),
        _ => None,
    }
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    if ip == Ipv6Addr::LOCALHOST {
        return None;
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_kind(v4);
    }
    let s = ip.segments();
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s[0] {
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address inside them.
        0x64 if s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] => v4_kind(embedded(s[6], s[7])),
        0x2002 => v4_kind(embedded(s[1], s[2])),
        0 if s[1..6] == [0, 0, 0, 0, 0] => Some("reserved"),
        0x100 if s[1..4] == [0, 0, 0] => Some("reserved"),
        0x2001 if s[1] == 0 || s[1] == 0xdb8 => Some("reserved"),
        x if x & 0xfe00 == 0xfc00 => Some("private"),
        x if x & 0xffc0 == 0xfe80 => Some("link-local"),
        x if x & 0xffc0 == 0xfec0 => Some("site-local"),
        x if x & 0xff00 == 0xff00 => Some("multicast"),
        _ => None,
    }
}

/// The host exactly as typed in `url` (lower case): what is between `://` (and any
/// credentials) and the port or path.
fn typed_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#', '\\']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next()?
    } else {
        host_port.split(':').next()?
    };
    Some(host.to_ascii_lowercase())
}

/// The URL's host when it is an IP address (the parser has already normalised numeric forms).
fn host_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Whether `url` may be a callback before any name is resolved: `Err` says why not.
pub(crate) fn check_url(url: &str, allow_private: bool) -> std::result::Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "not a valid URL".to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("only http and https are allowed".into());
    }
    if allow_private {
        return Ok(());
    }
    let ip = match host_ip(&parsed) {
        Some(IpAddr::V4(v4)) => {
            if typed_host(url).as_deref() != Some(v4.to_string().as_str()) {
                return Err(format!(
                    "the address is written in a numeric form ({v4}); write it as a dotted quad"
                ));
            }
            IpAddr::V4(v4)
        }
        Some(v6) => v6,
        None if parsed.host_str().is_some_and(|h| !h.is_empty()) => return Ok(()),
        None => return Err("the URL has no host".into()),
    };
    match refused_kind(ip) {
        Some(kind) => Err(format!("it points to a {kind} address")),
        None => Ok(()),
    }
}

/// The submission check: [`check_url`], then, for a name that resolves within 3 s, at least
/// one allowed address. A name that does not resolve now is checked again at delivery.
pub(crate) async fn check_submission(
    url: &str,
    allow_private: bool,
) -> std::result::Result<(), String> {
    check_url(url, allow_private)?;
    if allow_private {
        return Ok(());
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Ok(());
    };
    if host_ip(&parsed).is_some() {
        return Ok(());
    }
    let Some(name) = parsed.host_str() else {
        return Ok(());
    };
    let lookup = tokio::net::lookup_host((name.to_string(), 0));
    if let Ok(Ok(addrs)) = tokio::time::timeout(Duration::from_secs(3), lookup).await {
        let all: Vec<SocketAddr> = addrs.collect();
        if !all.is_empty() && allowed(all.clone(), false).is_empty() {
            let kind = all
                .iter()
                .find_map(|a| refused_kind(a.ip()))
                .unwrap_or("non-public");
            return Err(format!("its name resolves to a {kind} address"));
        }
    }
    Ok(())
}

/// The addresses of `addrs` a callback may connect to.
pub(crate) fn allowed(
    addrs: impl IntoIterator<Item = SocketAddr>,
    allow_private: bool,
) -> Vec<SocketAddr> {
    addrs
        .into_iter()
        .filter(|a| allow_private || refused_kind(a.ip()).is_none())
        .collect()
}

/// The callback client's resolver: the system's answer, less what is not allowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept = allowed(addrs, allow_private);
            if kept.is_empty() {
                return Err("the callback's name resolves to no allowed address".into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client every callback is sent with.
pub(crate) fn client(allow_private: bool) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .build()
        .map_err(|e| Error::Io(format!("Cannot create the HTTP client: {e}")))
}

/// `url` without its credentials (`user:pass@` becomes `***@`), as job objects show it.
pub(crate) fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("***");
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "<invalid URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn public_and_loopback_pass_everything_else_is_named() {
        for ok in [
            "8.8.8.8",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert_eq!(refused_kind(ip(ok)), None, "{ok}");
        }
        for (bad, kind) in [
            ("169.254.169.254", "link-local"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fd00::1", "private"),
            ("fc00::1", "private"),
            ("ff02::1", "multicast"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:c0a8:0101::1", "private"),
        ] {
            assert_eq!(refused_kind(ip(bad)), Some(kind), "{bad}");
        }
        assert_eq!(refused_kind(ip("172.32.0.1")), None);
        assert_eq!(refused_kind(ip("100.128.0.1")), None);
    }

    #[test]
    fn urls_are_judged_as_typed() {
        assert!(check_url("http://127.0.0.1:9/hook", false).is_ok());
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://localhost:9/hook", false).is_ok());
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[fe80::1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://0.0.0.0:4312/",
            "http://user:pw@10.0.0.1/",
            "ftp://example.com/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://2130706433/", true).is_ok());
        assert!(check_url("http://192.168.1.1/", true).is_ok());
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let addrs: Vec<SocketAddr> = [
            "10.0.0.1:0",
            "93.184.216.34:0",
            "127.0.0.1:0",
            "[fe80::1]:0",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let kept = allowed(addrs.clone(), false);
        assert_eq!(kept, vec![addrs[1], addrs[2]]);
        assert_eq!(allowed(addrs.clone(), true), addrs);
    }

    #[test]
    fn credentials_are_never_shown() {
        assert_eq!(
            redacted("https://alice:s3cret@hooks.example.com/x?y=1"),
            "https://***@hooks.example.com/x?y=1"
        );
        assert_eq!(redacted("http://127.0.0.1:9/h"), "http://127.0.0.1:9/h");
    }
}
