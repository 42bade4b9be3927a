//! The message for a non-2xx answer (SPEC §11, §16): `HTTP <status> <reason>` and the body, with
//! a plain-words explanation first for the two refusals users meet and misread most.
//!
//! - 429 `usage_limit_reached` is the subscription's image quota, not a bug and not something a
//!   retry fixes; what the user needs is *when* it resets, in their own clock.
//! - 403 with `cf-mitigated: challenge` (or a Cloudflare challenge page) is Cloudflare in front
//!   of ChatGPT asking for a browser check. It looks like an auth failure but is not one: signing
//!   in again does not help, waiting or changing network usually does.

use chrono::{DateTime, Duration, TimeZone, Timelike};
use reqwest::header::HeaderMap;
use serde_json::Value;

const BODY_PREVIEW_CHARS: usize = 4000;

pub const CLOUDFLARE_CHALLENGE: &str = "ChatGPT's Cloudflare protection answered with a browser \
challenge instead of running the request. This is not a problem with your credentials: signing \
in again will not help. Wait a few minutes and try again; if it keeps happening, check your \
network (a VPN, proxy or shared/datacenter IP address is often challenged; try without it or \
from another connection); with --base-url, check that it points at the ChatGPT backend.";

/// The whole error message for a non-2xx response.
pub fn http_error_message<Tz: TimeZone>(
    status: u16,
    reason: &str,
    headers: &HeaderMap,
    body: &str,
    now: DateTime<Tz>,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let http_line = format!("HTTP {status} {reason}");
    let plain = format!("{http_line}\n{}", preview(body));
    match status {
        429 => match usage_limit_notice(body, now) {
            Some(notice) => format!("{notice}\n{plain}"),
            None => plain,
        },
        403 if is_cloudflare_challenge(headers, body) => {
            // A challenge page is kilobytes of HTML and script: nothing in it helps the reader.
            if looks_like_html(body) {
                format!("{CLOUDFLARE_CHALLENGE}\n{http_line}")
            } else {
                format!("{CLOUDFLARE_CHALLENGE}\n{plain}")
            }
        }
        _ => plain,
    }
}

/// The body cut at 4000 chars, then `...`.
fn preview(body: &str) -> String {
    match body.char_indices().nth(BODY_PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}...", &body[..cut]),
        None => body.to_string(),
    }
}

/// `cf-mitigated: challenge`, or an HTML page that is Cloudflare's challenge.
pub fn is_cloudflare_challenge(headers: &HeaderMap, body: &str) -> bool {
    let header = headers
        .get_all("cf-mitigated")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.trim().eq_ignore_ascii_case("challenge"));
    header || is_challenge_page(body)
}

fn looks_like_html(body: &str) -> bool {
    let head: String = body
        .chars()
        .take(1024)
        .collect::<String>()
        .to_ascii_lowercase();
    head.contains("<!doctype html") || head.contains("<html")
}

/// Markers Cloudflare's interstitial pages carry (the managed challenge, the JS challenge and
/// the older "Attention Required" page).
fn is_challenge_page(body: &str) -> bool {
    if !looks_like_html(body) {
        return false;
    }
    let lower = body.to_ascii_lowercase();
    [
        "challenges.cloudflare.com",
        "/cdn-cgi/challenge-platform",
        "_cf_chl_opt",
        "cf-browser-verification",
        "cf_chl_",
        "attention required! | cloudflare",
    ]
    .iter()
    .any(|m| lower.contains(m))
        || (lower.contains("just a moment") && lower.contains("cloudflare"))
}

/// `You've hit your ChatGPT <plan> usage limit for image generation. Try again at <time> (in
/// <duration>).` for a `usage_limit_reached` body; `None` for any other 429.
pub fn usage_limit_notice<Tz: TimeZone>(body: &str, now: DateTime<Tz>) -> Option<String>
where
    Tz::Offset: std::fmt::Display,
{
    let parsed: Value = serde_json::from_str(body).ok()?;
    let error = parsed.get("error")?;
    let is_usage_limit = ["type", "code"]
        .iter()
        .any(|k| error.get(*k).and_then(Value::as_str) == Some("usage_limit_reached"));
    if !is_usage_limit {
        return None;
    }
    let plan = error
        .get("plan_type")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let who = match plan {
        Some(plan) => format!("You've hit your ChatGPT {plan} usage limit for image generation."),
        None => "You've hit your ChatGPT usage limit for image generation.".to_string(),
    };
    let when = match reset_time(error, &now) {
        Some(reset) if reset > now => {
            // Rounded up to the minute: "try again at" must not name a moment before the reset.
            let reset = ceil_to_minute(reset);
            let minutes = (reset.clone() - now.clone())
                .num_seconds()
                .div_euclid(60)
                .max(1);
            format!(
                "Try again at {} (in {}).",
                clock_time(&reset, &now),
                human_minutes(minutes)
            )
        }
        _ => "Try again later.".to_string(),
    };
    Some(format!("{who} {when}"))
}

/// The usage limit's reset time from a `usage_limit_reached` body; `None` for any other body.
pub fn usage_limit(
    body: &str,
    now: DateTime<chrono::Utc>,
) -> Option<crate::foundation::error::UsageLimit> {
    let parsed: Value = serde_json::from_str(body).ok()?;
    let error = parsed.get("error")?;
    let is_usage_limit = ["type", "code"]
        .iter()
        .any(|k| error.get(*k).and_then(Value::as_str) == Some("usage_limit_reached"));
    is_usage_limit.then(|| crate::foundation::error::UsageLimit {
        resets_at: reset_time(error, &now),
    })
}

/// `error.resets_at` (epoch seconds), else now + `error.resets_in_seconds`.
fn reset_time<Tz: TimeZone>(error: &Value, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
    let number = |key: &str| {
        let v = error.get(key)?;
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
            .filter(|n| n.is_finite())
    };
    if let Some(at) = number("resets_at") {
        let utc = DateTime::from_timestamp(at.ceil() as i64, 0)?;
        return Some(utc.with_timezone(&now.timezone()));
    }
    let seconds = number("resets_in_seconds")?;
    Some(now.clone() + Duration::milliseconds((seconds * 1000.0).ceil() as i64))
}

fn ceil_to_minute<Tz: TimeZone>(t: DateTime<Tz>) -> DateTime<Tz> {
    let exact = t.second() == 0 && t.nanosecond() == 0;
    let floor = t
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t);
    if exact {
        floor
    } else {
        floor + Duration::minutes(1)
    }
}

/// `3:41 PM` today; `Nov 23, 3:41 PM` on another day: the `--usage` report's style.
fn clock_time<Tz: TimeZone>(reset: &DateTime<Tz>, now: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    super::usage::local_time_text(reset, now)
}

/// `13m`, `2h 13m`, `2h`, `3d 4h`: the `--usage` report's wording.
fn human_minutes(minutes: i64) -> String {
    super::usage::duration_text(minutes.max(0) as u64 * 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn at(
        offset_hours: i32,
        y: i32,
        mo: u32,
        d: u32,
        h: u32,
        mi: u32,
        s: u32,
    ) -> DateTime<FixedOffset> {
        FixedOffset::east_opt(offset_hours * 3600)
            .unwrap()
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
    }

    #[test]
    fn usage_limit_with_seconds_left_names_plan_time_and_wait() {
        let now = at(0, 2026, 11, 22, 13, 28, 0);
        let body = json!({"error": {"type": "usage_limit_reached", "plan_type": "plus",
            "resets_in_seconds": 2 * 3600 + 13 * 60}})
        .to_string();
        assert_eq!(
            usage_limit_notice(&body, now).as_deref(),
            Some("You've hit your ChatGPT plus usage limit for image generation. Try again at 3:41 PM (in 2h 13m).")
        );
    }

    #[test]
    fn usage_limit_reset_epoch_is_shown_in_local_time() {
        // 15:41 UTC is 22:41 at UTC+7: the user's clock, not the server's.
        let reset = at(0, 2026, 11, 22, 15, 41, 0).timestamp();
        let now = at(7, 2026, 11, 22, 20, 28, 0);
        let body = json!({"error": {"code": "usage_limit_reached", "plan_type": "pro",
            "resets_at": reset}})
        .to_string();
        assert_eq!(
            usage_limit_notice(&body, now).as_deref(),
            Some("You've hit your ChatGPT pro usage limit for image generation. Try again at 10:41 PM (in 2h 13m).")
        );
    }

    #[test]
    fn usage_limit_on_another_day_names_the_date_and_rounds_up() {
        let now = at(-5, 2026, 11, 22, 23, 50, 0);
        let body = json!({"error": {"type": "usage_limit_reached",
            "resets_in_seconds": 3 * 86400 + 3600 + 30}})
        .to_string();
        assert_eq!(
            usage_limit_notice(&body, now).as_deref(),
            Some("You've hit your ChatGPT usage limit for image generation. Try again at Nov 26, 12:51 AM (in 3d 1h).")
        );
        let soon = json!({"error": {"type": "usage_limit_reached", "resets_in_seconds": 20}});
        assert_eq!(
            usage_limit_notice(&soon.to_string(), now).as_deref(),
            Some("You've hit your ChatGPT usage limit for image generation. Try again at 11:51 PM (in 1m).")
        );
    }

    #[test]
    fn usage_limit_without_or_past_reset_says_later() {
        let now = at(0, 2026, 11, 22, 13, 28, 0);
        for error in [
            json!({"type": "usage_limit_reached", "plan_type": "team"}),
            json!({"type": "usage_limit_reached", "plan_type": "team", "resets_at": 1}),
        ] {
            assert_eq!(
                usage_limit_notice(&json!({ "error": error }).to_string(), now).as_deref(),
                Some("You've hit your ChatGPT team usage limit for image generation. Try again later.")
            );
        }
    }

    #[test]
    fn other_429s_get_no_notice() {
        let now = at(0, 2026, 11, 22, 13, 28, 0);
        for body in [
            json!({"error": {"type": "rate_limit_exceeded", "message": "slow down"}}).to_string(),
            json!({"detail": "usage_limit_reached"}).to_string(),
            "Too Many Requests".to_string(),
            String::new(),
        ] {
            assert_eq!(usage_limit_notice(&body, now), None, "{body}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_minutes(1), "1m");
        assert_eq!(human_minutes(59), "59m");
        assert_eq!(human_minutes(60), "1h");
        assert_eq!(human_minutes(133), "2h 13m");
        assert_eq!(human_minutes(1440), "1d");
        assert_eq!(human_minutes(1440 * 3 + 61), "3d 1h");
    }

    #[test]
    fn http_messages_put_the_explanation_first() {
        let now = at(0, 2026, 11, 22, 13, 28, 0);
        let body = json!({"error": {"type": "usage_limit_reached", "plan_type": "plus",
            "resets_in_seconds": 600}})
        .to_string();
        let msg = http_error_message(429, "Too Many Requests", &HeaderMap::new(), &body, now);
        assert_eq!(
            msg,
            format!("You've hit your ChatGPT plus usage limit for image generation. Try again at 1:38 PM (in 10m).\nHTTP 429 Too Many Requests\n{body}")
        );
        let other = http_error_message(429, "Too Many Requests", &HeaderMap::new(), "{}", now);
        assert_eq!(other, "HTTP 429 Too Many Requests\n{}");
        let long = "x".repeat(4001);
        let cut = http_error_message(500, "Internal Server Error", &HeaderMap::new(), &long, now);
        assert_eq!(
            cut,
            format!("HTTP 500 Internal Server Error\n{}...", "x".repeat(4000))
        );
    }

    #[test]
    fn cloudflare_challenges_are_explained_not_blamed_on_credentials() {
        let now = at(0, 2026, 11, 22, 13, 28, 0);
        let mut headers = HeaderMap::new();
        headers.insert("cf-mitigated", HeaderValue::from_static("challenge"));
        let page = "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>\
            <script src=\"/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1\"></script></body></html>";
        let msg = http_error_message(403, "Forbidden", &headers, page, now);
        assert_eq!(msg, format!("{CLOUDFLARE_CHALLENGE}\nHTTP 403 Forbidden"));
        assert!(msg.contains("not a problem with your credentials"));
        // The page alone is enough.
        let msg = http_error_message(403, "Forbidden", &HeaderMap::new(), page, now);
        assert!(msg.starts_with(CLOUDFLARE_CHALLENGE), "{msg}");
        // The header with a JSON body keeps the body.
        let msg = http_error_message(403, "Forbidden", &headers, "{\"detail\":\"x\"}", now);
        assert_eq!(
            msg,
            format!("{CLOUDFLARE_CHALLENGE}\nHTTP 403 Forbidden\n{{\"detail\":\"x\"}}")
        );
        // An ordinary 403 is left alone.
        let plain = "{\"detail\":\"Forbidden\"}";
        assert_eq!(
            http_error_message(403, "Forbidden", &HeaderMap::new(), plain, now),
            format!("HTTP 403 Forbidden\n{plain}")
        );
        let mut managed = HeaderMap::new();
        managed.insert("cf-mitigated", HeaderValue::from_static("block"));
        assert!(!is_cloudflare_challenge(&managed, plain));
        assert!(!is_cloudflare_challenge(
            &HeaderMap::new(),
            "<html><body>Forbidden</body></html>"
        ));
    }
}
