//! Quota at a glance (`--usage`): the ChatGPT plan and its rate-limit windows.
//!
//! The backend endpoint is `GET <base>/wham/usage` (the ChatGPT backend, next to `/codex`). Its
//! body is Codex's `RateLimitStatusPayload` (codex-rs/codex-backend-openapi-models):
//!
//! ```json
//! {"plan_type": "plus",
//!  "rate_limit": {"allowed": true, "limit_reached": false,
//!                 "primary_window":   {"used_percent": 42, "limit_window_seconds": 18000,
//!                                      "reset_after_seconds": 4320, "reset_at": 1764624600},
//!                 "secondary_window": {...} | null},
//!  "credits": {...} | null}
//! ```
//!
//! Design:
//! - The body is walked as a `serde_json::Value` rather than derived structs, so each missing
//!   or mistyped field gets an error naming it (`rate_limit.allowed`), and fields the backend
//!   adds later (credits, code-review limits, account ids) are simply ignored.
//! - `plan_type` stays a string: new plans appear without notice and must not break `--usage`.
//! - A window the backend did not send (absent or `null`) is `None` and shows as JSON `null`;
//!   the text report leaves it out.
//! - Reset time: the absolute `reset_at` is preferred for "resets at" and the relative
//!   `reset_after_seconds` for "resets in"; each is clock-skew free for what it answers. Either
//!   one falls back to the other using `now`.
//! - Windows are named by length, not position: the backend calls them primary/secondary, but
//!   users know them as the 5-hour and weekly limits.
//! - Text rendering takes `now` in any `chrono::TimeZone`, so the CLI passes `Local` and tests
//!   pass a fixed offset.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde_json::{json, Map, Value};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UsageError {
    #[error("usage response is not JSON: {0}")]
    NotJson(String),
    #[error("usage response has no {0}")]
    Missing(&'static str),
    #[error("usage response field {field} is not {expected}")]
    Invalid {
        field: String,
        expected: &'static str,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct UsageWindow {
    pub(crate) used_percent: f64,
    pub(crate) window_seconds: Option<u64>,
    pub(crate) resets_at: Option<DateTime<Utc>>,
    pub(crate) resets_in_seconds: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Usage {
    pub(crate) plan_type: Option<String>,
    pub(crate) allowed: bool,
    pub(crate) limit_reached: bool,
    pub(crate) primary: Option<UsageWindow>,
    pub(crate) secondary: Option<UsageWindow>,
}

/// `https://chatgpt.com/backend-api/codex` → `https://chatgpt.com/backend-api/wham/usage`.
pub(crate) fn usage_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let base = base.strip_suffix("/codex").unwrap_or(base);
    let base = base.trim_end_matches('/');
    format!("{base}/wham/usage")
}

pub(crate) fn parse(body: &str, now: DateTime<Utc>) -> Result<Usage, UsageError> {
    let root: Value = serde_json::from_str(body).map_err(|e| UsageError::NotJson(e.to_string()))?;
    let root = root.as_object().ok_or(UsageError::Invalid {
        field: "(top level)".into(),
        expected: "an object",
    })?;
    let plan_type = match root.get("plan_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(UsageError::Invalid {
                field: "plan_type".into(),
                expected: "a string",
            })
        }
    };
    let rate_limit = match root.get("rate_limit") {
        None | Some(Value::Null) => return Err(UsageError::Missing("rate_limit object")),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(UsageError::Invalid {
                field: "rate_limit".into(),
                expected: "an object",
            })
        }
    };
    Ok(Usage {
        plan_type,
        allowed: bool_field(rate_limit, "allowed", "rate_limit.allowed")?,
        limit_reached: bool_field(rate_limit, "limit_reached", "rate_limit.limit_reached")?,
        primary: window(rate_limit, "primary_window", now)?,
        secondary: window(rate_limit, "secondary_window", now)?,
    })
}

fn bool_field(m: &Map<String, Value>, key: &str, path: &'static str) -> Result<bool, UsageError> {
    match m.get(key) {
        Some(Value::Bool(b)) => Ok(*b),
        None | Some(Value::Null) => Err(UsageError::Missing(path)),
        Some(_) => Err(UsageError::Invalid {
            field: path.into(),
            expected: "true or false",
        }),
    }
}

/// A non-negative whole number of seconds; absent/null is `None`. Negative values (a reset
/// that is already due) clamp to 0 rather than failing the whole report.
fn seconds_field(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, UsageError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.round() as i64)
            })
            .map(Some)
            .ok_or_else(|| UsageError::Invalid {
                field: path.to_string(),
                expected: "a number of seconds",
            }),
    }
}

fn window(
    rate_limit: &Map<String, Value>,
    key: &'static str,
    now: DateTime<Utc>,
) -> Result<Option<UsageWindow>, UsageError> {
    let w = match rate_limit.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(w)) => w,
        Some(_) => {
            return Err(UsageError::Invalid {
                field: format!("rate_limit.{key}"),
                expected: "an object",
            })
        }
    };
    let field = |name: &str| format!("rate_limit.{key}.{name}");
    let used_percent = match w.get("used_percent") {
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| UsageError::Invalid {
                field: field("used_percent"),
                expected: "a number",
            })?,
        None => {
            return Err(UsageError::Missing(if key == "primary_window" {
                "rate_limit.primary_window.used_percent"
            } else {
                "rate_limit.secondary_window.used_percent"
            }))
        }
    };
    let window_seconds = seconds_field(w, "limit_window_seconds", &field("limit_window_seconds"))?
        .filter(|s| *s > 0)
        .map(|s| s as u64);
    let reset_after =
        seconds_field(w, "reset_after_seconds", &field("reset_after_seconds"))?.map(|s| s.max(0));
    let reset_at = seconds_field(w, "reset_at", &field("reset_at"))?
        .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0));
    // checked: an absurd value from the server must not panic the report.
    let resets_at = reset_at.or_else(|| {
        reset_after
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| now.checked_add_signed(d))
    });
    let resets_in = reset_after.or_else(|| reset_at.map(|t| (t - now).num_seconds().max(0)));
    Ok(Some(UsageWindow {
        used_percent,
        window_seconds,
        resets_at,
        resets_in_seconds: resets_in.map(|s| s as u64),
    }))
}

/// Whole percentages print as integers (`42`, not `42.0`), as the backend sends them.
fn percent_value(p: f64) -> Value {
    if p.fract() == 0.0 && p.abs() < 1e15 {
        json!(p as i64)
    } else {
        json!(p)
    }
}

fn window_json(w: &Option<UsageWindow>) -> Value {
    match w {
        None => Value::Null,
        Some(w) => json!({
            "used_percent": percent_value(w.used_percent),
            "window_seconds": w.window_seconds,
            "resets_at": w.resets_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "resets_in_seconds": w.resets_in_seconds,
        }),
    }
}

pub(crate) fn to_json(usage: &Usage) -> Value {
    json!({
        "plan_type": usage.plan_type,
        "allowed": usage.allowed,
        "limit_reached": usage.limit_reached,
        "primary": window_json(&usage.primary),
        "secondary": window_json(&usage.secondary),
    })
}

/// `18000` → `5-hour`, `604800` → `weekly`, otherwise whole days, hours or minutes.
pub(crate) fn window_name(seconds: u64) -> String {
    match seconds {
        604_800 => "weekly".into(),
        s if s % 86_400 == 0 => format!("{}-day", s / 86_400),
        s if s % 3_600 == 0 => format!("{}-hour", s / 3_600),
        s => format!("{}-minute", s.div_ceil(60)),
    }
}

/// Two most significant units: `1h 12m`, `2d 11h`, `45m`, `30s`.
/// A moment in local time, the one style of every reset time the tool prints (`--usage` and the
/// 429 message; SPEC §11 pins `3:41 PM`): the time alone today, `Nov 23, 3:41 PM` another day,
/// `Jan 2 2027, 3:41 PM` another year.
pub(crate) fn local_time_text<Tz: TimeZone>(at: &DateTime<Tz>, now: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    if at.date_naive() == now.date_naive() {
        at.format("%-I:%M %p").to_string()
    } else if at.year() == now.year() {
        at.format("%b %-d, %-I:%M %p").to_string()
    } else {
        at.format("%b %-d %Y, %-I:%M %p").to_string()
    }
}

pub(crate) fn duration_text(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3_600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        if h > 0 {
            format!("{d}d {h}h")
        } else {
            format!("{d}d")
        }
    } else if h > 0 {
        if m > 0 {
            format!("{h}h {m}m")
        } else {
            format!("{h}h")
        }
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

fn percent_text(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// Plain lines for a terminal, times in `now`'s time zone.
pub(crate) fn to_text<Tz: TimeZone>(usage: &Usage, now: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut lines = vec![format!(
        "plan: {}",
        usage.plan_type.as_deref().unwrap_or("unknown")
    )];
    if usage.limit_reached || !usage.allowed {
        lines.push("limit reached: requests are refused until a window resets".into());
    }
    for (fallback, w) in [("primary", &usage.primary), ("secondary", &usage.secondary)] {
        let Some(w) = w else { continue };
        let name = w
            .window_seconds
            .map(window_name)
            .unwrap_or_else(|| fallback.to_string());
        let mut line = format!("{name} window: {} used", percent_text(w.used_percent));
        if let Some(at) = &w.resets_at {
            let local = at.with_timezone(&now.timezone());
            let when = local_time_text(&local, &now);
            line.push_str(&format!(", resets {when}"));
            if let Some(secs) = w.resets_in_seconds {
                line.push_str(&format!(" (in {})", duration_text(secs)));
            }
        } else if let Some(secs) = w.resets_in_seconds {
            line.push_str(&format!(", resets in {}", duration_text(secs)));
        }
        lines.push(line);
    }
    if usage.primary.is_none() && usage.secondary.is_none() {
        lines.push("no quota windows reported".into());
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    /// 2026-12-01 20:18:00 UTC, a Tuesday.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 20, 18, 0).unwrap()
    }

    /// Shaped like a real `/wham/usage` body, extra fields included.
    fn body() -> String {
        let n = now().timestamp();
        json!({
            "user_id": "user-abc",
            "account_id": "acc-123",
            "email": "someone@example.com",
            "plan_type": "plus",
            "rate_limit": {
                "allowed": true,
                "limit_reached": false,
                "primary_window": {
                    "used_percent": 42,
                    "limit_window_seconds": 18000,
                    "reset_after_seconds": 4320,
                    "reset_at": n + 4320
                },
                "secondary_window": {
                    "used_percent": 7,
                    "limit_window_seconds": 604800,
                    "reset_after_seconds": 2 * 86400 + 11 * 3600 + 120,
                    "reset_at": n + 2 * 86400 + 11 * 3600 + 120
                }
            },
            "code_review_rate_limit": null,
            "credits": {"has_credits": false, "unlimited": false, "balance": "0"}
        })
        .to_string()
    }

    #[test]
    fn url() {
        for base in [
            "https://chatgpt.com/backend-api/codex",
            "https://chatgpt.com/backend-api/codex/",
            "https://chatgpt.com/backend-api",
            "https://chatgpt.com/backend-api//",
        ] {
            assert_eq!(
                usage_url(base),
                "https://chatgpt.com/backend-api/wham/usage",
                "{base}"
            );
        }
        assert_eq!(
            usage_url("http://127.0.0.1:8080/codex/codex"),
            "http://127.0.0.1:8080/codex/wham/usage"
        );
    }

    #[test]
    fn parse_real_shape() {
        let u = parse(&body(), now()).unwrap();
        assert_eq!(u.plan_type.as_deref(), Some("plus"));
        assert!(u.allowed && !u.limit_reached);
        let p = u.primary.as_ref().unwrap();
        assert_eq!(p.used_percent, 42.0);
        assert_eq!(p.window_seconds, Some(18000));
        assert_eq!(p.resets_in_seconds, Some(4320));
        assert_eq!(
            p.resets_at,
            Some(Utc.with_ymd_and_hms(2026, 12, 1, 21, 30, 0).unwrap())
        );
        assert_eq!(
            to_json(&u),
            json!({
                "plan_type": "plus",
                "allowed": true,
                "limit_reached": false,
                "primary": {"used_percent": 42, "window_seconds": 18000,
                            "resets_at": "2026-12-01T21:30:00Z", "resets_in_seconds": 4320},
                "secondary": {"used_percent": 7, "window_seconds": 604800,
                              "resets_at": "2026-12-04T07:20:00Z", "resets_in_seconds": 212520}
            })
        );
        // Key order is part of the output contract.
        assert!(to_json(&u).to_string().starts_with(r#"{"plan_type":"plus","allowed":true,"limit_reached":false,"primary":{"used_percent":42,"window_seconds""#));
    }

    #[test]
    fn text_in_a_time_zone() {
        let u = parse(&body(), now()).unwrap();
        let utc = to_text(&u, now());
        assert_eq!(
            utc,
            "plan: plus\n\
             5-hour window: 42% used, resets 9:30 PM (in 1h 12m)\n\
             weekly window: 7% used, resets Dec 4, 7:20 AM (in 2d 11h)\n"
        );
        // Same instant seen from UTC+3: local clock times, and the 5-hour reset is tomorrow.
        let tz = FixedOffset::east_opt(3 * 3600).unwrap();
        let text = to_text(&u, now().with_timezone(&tz));
        assert_eq!(
            text,
            "plan: plus\n\
             5-hour window: 42% used, resets Dec 2, 12:30 AM (in 1h 12m)\n\
             weekly window: 7% used, resets Dec 4, 10:20 AM (in 2d 11h)\n"
        );
    }

    #[test]
    fn missing_window_and_limit_reached() {
        let n = now().timestamp();
        let body = json!({
            "plan_type": "free",
            "rate_limit": {
                "allowed": false,
                "limit_reached": true,
                "primary_window": {"used_percent": 100.0, "limit_window_seconds": 86400 * 3,
                                   "reset_at": n + 90},
                "secondary_window": null
            }
        })
        .to_string();
        let u = parse(&body, now()).unwrap();
        let j = to_json(&u);
        assert_eq!(j["secondary"], Value::Null);
        assert_eq!(j["primary"]["resets_in_seconds"], 90);
        assert_eq!(j["primary"]["used_percent"], 100);
        assert_eq!(
            to_text(&u, now()),
            "plan: free\n\
             limit reached: requests are refused until a window resets\n\
             3-day window: 100% used, resets 8:19 PM (in 1m)\n"
        );
        // Only the relative time: resets_at is computed from now.
        let body = r#"{"plan_type":"pro","rate_limit":{"allowed":true,"limit_reached":false,
            "primary_window":{"used_percent":12.5,"limit_window_seconds":7200,"reset_after_seconds":30}}}"#;
        let u = parse(body, now()).unwrap();
        assert_eq!(to_json(&u)["primary"]["resets_at"], "2026-12-01T20:18:30Z");
        assert_eq!(to_json(&u)["secondary"], Value::Null);
        assert_eq!(
            to_text(&u, now()),
            "plan: pro\n2-hour window: 12.5% used, resets 8:18 PM (in 30s)\n"
        );
        let body = r#"{"rate_limit":{"allowed":true,"limit_reached":false}}"#;
        assert_eq!(
            to_text(&parse(body, now()).unwrap(), now()),
            "plan: unknown\nno quota windows reported\n"
        );
    }

    #[test]
    fn next_year_shows_the_year() {
        let n = Utc.with_ymd_and_hms(2026, 12, 30, 12, 0, 0).unwrap();
        let body =
            json!({"plan_type": "team", "rate_limit": {"allowed": true, "limit_reached": false,
            "secondary_window": {"used_percent": 1, "limit_window_seconds": 604800,
                                 "reset_after_seconds": 5 * 86400}}})
            .to_string();
        let u = parse(&body, n).unwrap();
        assert_eq!(
            to_text(&u, n),
            "plan: team\nweekly window: 1% used, resets Jan 4 2027, 12:00 PM (in 5d)\n"
        );
    }

    #[test]
    fn errors_name_what_is_missing() {
        assert_eq!(
            parse(r#"{"plan_type":"plus"}"#, now())
                .unwrap_err()
                .to_string(),
            "usage response has no rate_limit object"
        );
        assert_eq!(
            parse(r#"{"plan_type":"plus","rate_limit":null}"#, now()).unwrap_err(),
            UsageError::Missing("rate_limit object")
        );
        assert_eq!(
            parse(r#"{"rate_limit":{"limit_reached":false}}"#, now())
                .unwrap_err()
                .to_string(),
            "usage response has no rate_limit.allowed"
        );
        assert_eq!(
            parse(r#"{"rate_limit":{"allowed":true,"limit_reached":false,"primary_window":{"limit_window_seconds":1}}}"#, now())
                .unwrap_err()
                .to_string(),
            "usage response has no rate_limit.primary_window.used_percent"
        );
        assert_eq!(
            parse(
                r#"{"rate_limit":{"allowed":"yes","limit_reached":false}}"#,
                now()
            )
            .unwrap_err()
            .to_string(),
            "usage response field rate_limit.allowed is not true or false"
        );
        assert_eq!(
            parse(r#"{"rate_limit":{"allowed":true,"limit_reached":false,"secondary_window":{"used_percent":1,"reset_at":"soon"}}}"#, now())
                .unwrap_err()
                .to_string(),
            "usage response field rate_limit.secondary_window.reset_at is not a number of seconds"
        );
        assert!(parse("<html>", now())
            .unwrap_err()
            .to_string()
            .starts_with("usage response is not JSON: "));
        assert_eq!(
            parse("[]", now()).unwrap_err().to_string(),
            "usage response field (top level) is not an object"
        );
    }

    #[test]
    fn names_and_durations() {
        assert_eq!(window_name(18_000), "5-hour");
        assert_eq!(window_name(604_800), "weekly");
        assert_eq!(window_name(86_400), "1-day");
        assert_eq!(window_name(2_592_000), "30-day");
        assert_eq!(window_name(3_600), "1-hour");
        assert_eq!(window_name(5_400), "90-minute");
        assert_eq!(duration_text(0), "0s");
        assert_eq!(duration_text(59), "59s");
        assert_eq!(duration_text(4_320), "1h 12m");
        assert_eq!(duration_text(7_200), "2h");
        assert_eq!(duration_text(86_400 + 59), "1d");
        assert_eq!(duration_text(2 * 86_400 + 11 * 3_600 + 59 * 60), "2d 11h");
    }

    #[test]
    fn past_reset_clamps_to_zero() {
        let n = now().timestamp();
        let body = json!({"plan_type": "plus", "rate_limit": {"allowed": true, "limit_reached": false,
            "primary_window": {"used_percent": 0, "limit_window_seconds": 18000, "reset_at": n - 5}}})
        .to_string();
        let u = parse(&body, now()).unwrap();
        assert_eq!(u.primary.unwrap().resets_in_seconds, Some(0));
        // Absurd values give no reset time instead of a panic.
        let body = json!({"rate_limit": {"allowed": true, "limit_reached": false,
            "primary_window": {"used_percent": 0, "reset_after_seconds": i64::MAX}}})
        .to_string();
        let w = parse(&body, now()).unwrap().primary.unwrap();
        assert_eq!(w.resets_at, None);
    }
}
