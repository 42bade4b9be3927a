//! What is printed on stdout (SPEC §14): image paths or the JSON summary, the `--smoke` report and
//! the `--refresh-only` report. Keys keep the SPEC's order (serde_json `preserve_order`).

use std::io::Write;

use serde_json::{json, Map, Value};

use crate::auth::fence::CredentialState;
use crate::auth::{Auth, RefreshOutcome};
use crate::foundation::job::SavedImage;
use crate::foundation::job::{JobResult, JobSpec, RefreshReport};

/// One image: the SPEC's keys, then what the bytes turned out to be (issue #11).
pub(crate) fn image_json(image: &SavedImage) -> Value {
    let path = image.path.display().to_string();
    let mut value = json!({
        "path": path,
        "decodedPath": path,
        "bytes": image.bytes,
        "sha256": image.sha256,
        "call_id": image.call_id,
        "status": image.status,
        "partial": image.partial,
        "revised_prompt": image.revised_prompt,
    });
    if let Some(map) = value.as_object_mut() {
        map.insert("format".into(), json!(image.format));
        map.insert("width".into(), json!(image.width));
        map.insert("height".into(), json!(image.height));
        map.insert("has_alpha".into(), json!(image.has_alpha));
        map.insert("c2pa".into(), json!(image.c2pa));
        if let Some(intended) = &image.rescued_from {
            // Only on a rescued image, so every other summary keeps its keys.
            map.insert("rescued".into(), json!(true));
            map.insert("rescued_from".into(), json!(intended.display().to_string()));
        }
    }
    value
}

fn auth_refresh_json(report: &RefreshReport) -> Value {
    json!({
        "refreshed": report.refreshed,
        "skipped": report.skipped,
        "last_refresh": report.last_refresh,
        "access_token_expires_in_seconds": report.access_token_expires_in_seconds,
    })
}

/// The `--json` summary. Issue #11 appended `format`, `width`, `height`, `has_alpha`, `c2pa`
/// to each image and `requested` to the summary (`{}` without controls): after every SPEC key,
/// so a parser of the old summary reads the new one unchanged.
pub fn generation_json(result: &JobResult, job: &JobSpec) -> Value {
    let mut map = Map::new();
    map.insert("request_id".into(), json!(result.request_id));
    map.insert("session_id".into(), json!(result.session_id));
    map.insert("endpoint".into(), json!(result.endpoint));
    map.insert("operation".into(), json!(result.operation));
    map.insert("model".into(), json!(result.model));
    map.insert("image_count".into(), json!(result.images.len()));
    map.insert("imageCount".into(), json!(result.images.len()));
    map.insert(
        "images".into(),
        Value::Array(result.images.iter().map(image_json).collect()),
    );
    map.insert("seen_event_types".into(), json!(result.seen_event_types));
    map.insert("timed_out".into(), json!(result.timed_out));
    map.insert(
        "response_metadata".into(),
        result.response_metadata.clone().unwrap_or(Value::Null),
    );
    if result.retry_attempts > 0 {
        map.insert("retry_attempts".into(), json!(result.retry_attempts));
        map.insert("retryAttempts".into(), json!(result.retry_attempts));
    }
    if let Some(report) = &result.refresh {
        map.insert("auth_refresh".into(), auth_refresh_json(report));
    }
    // Last, so every existing key keeps its position.
    map.insert("requested".into(), job.controls.requested_json());
    if let Some(Value::Array(images)) = map.get_mut("images") {
        for image in images.iter_mut() {
            add_origin(image, result);
        }
    }
    add_origin_summary(&mut map, result);
    Value::Object(map)
}

/// Issue #22, appended after every other key and only when set: `account` (with `--pool`: the
/// email or redacted account id that made the image, never a token) and `route` (with
/// `--backend auto`: `images` or `responses`).
pub(crate) fn add_origin(image: &mut Value, result: &JobResult) {
    if let Some(map) = image.as_object_mut() {
        if let Some(account) = &result.account {
            map.insert("account".into(), json!(account));
        }
        if let Some(route) = &result.route {
            map.insert("route".into(), json!(route));
        }
    }
}

/// The summary's `account`, `route` and `route_fallback` (why `auto` left the Images route,
/// null when it did not), each only when set.
pub(crate) fn add_origin_summary(map: &mut Map<String, Value>, result: &JobResult) {
    if let Some(account) = &result.account {
        map.insert("account".into(), json!(account));
    }
    if let Some(route) = &result.route {
        map.insert("route".into(), json!(route));
        map.insert("route_fallback".into(), json!(result.route_fallback));
    }
}

pub fn refresh_only_json(auth: &Auth, outcome: &RefreshOutcome) -> Value {
    json!({
        "auth_path": auth.path.display().to_string(),
        "refreshed": outcome.refreshed,
        "skipped": outcome.skipped,
        "auth_format": auth.format.as_str(),
        "auth_mode": auth.auth_mode,
        "profile_id": auth.profile_id,
        "account_id": auth.account_id,
        "last_refresh": auth.last_refresh,
        "access_token_expires_in_seconds": auth.reported_seconds_left(),
        "credential_state": CredentialState::of(auth).as_str(),
    })
}

/// A line on stderr with no sink at hand (the watchdog thread, early errors).
pub(crate) fn eprint_line(message: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{message}");
    let _ = stderr.flush();
}

/// Write to stdout; a closed pipe (`| head`) is not an error worth a crash.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Pretty JSON, 2-space indent, trailing newline.
pub fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_string());
    print_stdout(&format!("{text}\n"));
}

/// `key: value` per line, null as empty, strings unquoted.
pub fn print_key_values(value: &Value) {
    let mut text = String::new();
    if let Some(map) = value.as_object() {
        for (key, v) in map {
            let shown = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.push_str(&format!("{key}: {shown}\n"));
        }
    }
    print_stdout(&text);
}

pub fn print_paths(images: &[SavedImage]) {
    let text: String = images
        .iter()
        .map(|i| format!("{}\n", i.path.display()))
        .collect();
    print_stdout(&text);
}
