//! `--usage --pool`: every account's quota windows in one table, or (`--json`) an array of the
//! `--usage --json` objects, each with `account` appended (and `cooldown_until` when this
//! machine has the account on cooldown; `error` instead of the windows when it could not be
//! asked).

use serde_json::{json, Value};

use crate::backend::usage::{self, Usage, UsageWindow};
use crate::foundation::error::{Error, Result};

type Report = (String, Option<i64>, Result<Usage>);

fn iso(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The `--json` array.
pub(crate) fn pool_json(reports: &[Report]) -> Value {
    let items = reports
        .iter()
        .map(|(account, cooldown, report)| {
            let mut value = match report {
                Ok(found) => usage::to_json(found),
                Err(err) => json!({"error": err.to_string()}),
            };
            if let Some(map) = value.as_object_mut() {
                map.insert("account".into(), json!(account));
                if let Some(until) = cooldown {
                    map.insert("cooldown_until".into(), json!(iso(*until)));
                }
            }
            value
        })
        .collect();
    Value::Array(items)
}

fn window_cell(window: &Option<UsageWindow>) -> String {
    match window {
        None => "-".into(),
        Some(w) => {
            let name = w
                .window_seconds
                .map(usage::window_name)
                .unwrap_or_else(|| "window".into());
            let used = if w.used_percent.fract() == 0.0 {
                format!("{:.0}%", w.used_percent)
            } else {
                format!("{:.1}%", w.used_percent)
            };
            match w.resets_in_seconds {
                Some(secs) => format!("{name} {used} (resets in {})", usage::duration_text(secs)),
                None => format!("{name} {used}"),
            }
        }
    }
}

/// The plain table: one row per account.
pub(crate) fn pool_text(reports: &[Report]) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "ACCOUNT".into(),
        "PLAN".into(),
        "PRIMARY".into(),
        "SECONDARY".into(),
        "STATE".into(),
    ]];
    for (account, cooldown, report) in reports {
        let state = match (cooldown.and_then(iso), report) {
            (Some(until), _) => format!("cooldown until {until}"),
            (None, Ok(u)) if u.limit_reached || !u.allowed => "limit reached".into(),
            (None, Ok(_)) => "ok".into(),
            (None, Err(err)) => format!(
                "error: {}",
                err.to_string().lines().next().unwrap_or_default()
            ),
        };
        let (plan, primary, secondary) = match report {
            Ok(u) => (
                u.plan_type.clone().unwrap_or_else(|| "unknown".into()),
                window_cell(&u.primary),
                window_cell(&u.secondary),
            ),
            Err(_) => ("-".into(), "-".into(), "-".into()),
        };
        rows.push([account.clone(), plan, primary, secondary, state]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// The run fails only when no account could be asked: the first error.
pub(crate) fn outcome(reports: Vec<Report>) -> Result<Vec<Report>> {
    if reports.iter().any(|(_, _, r)| r.is_ok()) {
        return Ok(reports);
    }
    let first = reports.into_iter().find_map(|(_, _, r)| r.err());
    Err(first.unwrap_or_else(|| Error::Usage("--pool: no account to ask".into())))
}
