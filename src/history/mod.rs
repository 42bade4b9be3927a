//! `codex-imagen --history [TEXT]`: the history every mode records (`<data dir>/history.sqlite`,
//! [`crate::output::history`]) listed for the terminal, newest first.
//!
//! Plain output is one line per image — created time, path, prompt on one line — with
//! `(missing)` when the file is gone, so `grep`/`cut` work on it; `--json` prints one array of
//! the rows the studio reads. A history that does not exist yet lists nothing (it is not an
//! error: nothing was made yet) and is not created by looking at it.

use serde_json::Value;

use crate::foundation::error::Result;
use crate::frontend::config::Config;
use crate::frontend::report;
use crate::output::history::{History, Query, FILE_NAME};

/// Rows read per page while listing everything that matches.
const PAGE: usize = 1000;

pub(crate) fn run(config: &Config, text: &str) -> Result<i32> {
    let path = config.data_dir.join(FILE_NAME);
    let mut rows = Vec::new();
    if path.is_file() {
        let history = History::at(path);
        let mut query = Query {
            text: Some(text.to_string()).filter(|t| !t.trim().is_empty()),
            limit: PAGE,
            ..Query::default()
        };
        loop {
            let page = history.list(&query)?;
            let done = page.len() < PAGE;
            query.before = page.last().map(|r| r.id);
            rows.extend(page);
            if done {
                break;
            }
        }
    }
    if config.json {
        report::print_json(&Value::Array(rows.iter().map(|r| r.to_json()).collect()));
        return Ok(0);
    }
    let mut out = String::new();
    for row in &rows {
        let created = chrono::DateTime::from_timestamp_millis(row.created_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        let missing = if std::path::Path::new(&row.path).is_file() {
            ""
        } else {
            " (missing)"
        };
        let prompt: String = row.prompt.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!("{created}\t{}{missing}\t{prompt}\n", row.path));
    }
    report::print_stdout(&out);
    Ok(0)
}
