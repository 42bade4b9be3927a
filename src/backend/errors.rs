//! Errors the backend reports inside a response or stream (SPEC §11), collected so the final
//! message can explain why no image arrived and the retry policy can tell transient from final.

use serde_json::Value;

use crate::foundation::error::BackendError;

fn scalar(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(false) => None,
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        other => Some(other.to_string()),
    }
}

fn compact_json(value: &Value, max: usize) -> String {
    let text = value.to_string();
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}...")
    }
}

fn normalize(source: &str, value: Option<&Value>) -> Option<BackendError> {
    let value = value?;
    let plain = |message: String| BackendError {
        source: source.to_string(),
        code: None,
        kind: None,
        status: None,
        param: None,
        message,
    };
    match value {
        Value::Null | Value::Bool(false) => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(plain(s.clone())),
        Value::Object(_) => {
            let message = [
                "message",
                "error_description",
                "reason",
                "detail",
                "code",
                "status",
            ]
            .iter()
            .find_map(|k| scalar(value.get(*k)))
            .unwrap_or_else(|| compact_json(value, 1200));
            Some(BackendError {
                source: source.to_string(),
                code: scalar(value.get("code")),
                kind: scalar(value.get("type")),
                status: scalar(value.get("status")),
                param: scalar(value.get("param")),
                message,
            })
        }
        other => Some(plain(other.to_string())),
    }
}

/// The errors one payload carries.
pub fn from_payload(payload: &Value, payload_type: &str) -> Vec<BackendError> {
    let mut errors = Vec::new();
    let error_field = payload.get("error").filter(|e| truthy(e));
    if payload_type == "error" || error_field.is_some() {
        errors.extend(normalize("error", Some(error_field.unwrap_or(payload))));
    }
    let response = payload.get("response");
    let failed = payload_type == "response.failed"
        || response
            .and_then(|r| r.get("status"))
            .and_then(Value::as_str)
            == Some("failed");
    if failed {
        let error = response.and_then(|r| r.get("error")).filter(|e| truthy(e));
        let incomplete = response
            .and_then(|r| r.get("incomplete_details"))
            .filter(|e| truthy(e));
        errors.extend(normalize("response.error", error));
        errors.extend(normalize("response.incomplete_details", incomplete));
        if error.is_none() && incomplete.is_none() {
            let mut summary = serde_json::Map::new();
            for key in ["status", "id"] {
                if let Some(v) = response.and_then(|r| r.get(key)) {
                    summary.insert(key.to_string(), v.clone());
                }
            }
            errors.extend(normalize("response.failed", Some(&Value::Object(summary))));
        }
    }
    errors.extend(normalize(
        "item.error",
        payload.get("item").and_then(|i| i.get("error")),
    ));
    errors
}

fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
        && value.as_str() != Some("")
        && value.as_f64() != Some(0.0)
}

/// Drop repeats of the same (code, param, message).
pub fn dedupe(errors: &[BackendError]) -> Vec<BackendError> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for e in errors {
        let key = (e.code.clone(), e.param.clone(), e.message.clone());
        if !seen.contains(&key) {
            seen.push(key);
            out.push(e.clone());
        }
    }
    out
}

/// `  - <source> status=.. code=.. type=.. param=.. <message>`, one per line.
pub fn format(errors: &[BackendError]) -> String {
    dedupe(errors)
        .iter()
        .map(|e| {
            let mut parts = vec![e.source.clone()];
            if let Some(s) = &e.status {
                parts.push(format!("status={s}"));
            }
            if let Some(c) = &e.code {
                parts.push(format!("code={c}"));
            }
            if let Some(t) = &e.kind {
                parts.push(format!("type={t}"));
            }
            if let Some(p) = &e.param {
                parts.push(format!("param={p}"));
            }
            parts.push(e.message.clone());
            format!("  - {}", parts.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn response_failed_collects_error_and_formats_it() {
        let payload = json!({"type": "response.failed", "response": {"id": "r1", "status": "failed",
            "error": {"code": "server_error", "message": "boom"}}});
        let errors = from_payload(&payload, "response.failed");
        assert_eq!(format(&errors), "  - response.error code=server_error boom");
    }

    #[test]
    fn failed_without_details_reports_status_and_id() {
        let payload =
            json!({"type": "response.failed", "response": {"id": "r1", "status": "failed"}});
        let errors = from_payload(&payload, "response.failed");
        assert_eq!(format(&errors), "  - response.failed status=failed failed");
    }

    #[test]
    fn error_events_and_duplicates() {
        let payload = json!({"type": "error", "code": "rate", "message": "slow down"});
        let mut errors = from_payload(&payload, "error");
        errors.extend(from_payload(&payload, "error"));
        assert_eq!(format(&errors), "  - error code=rate type=error slow down");
    }

    #[test]
    fn long_objects_are_cut() {
        let payload = json!({"error": {"blob": "x".repeat(2000)}});
        let errors = from_payload(&payload, "x");
        assert!(errors[0].message.ends_with("..."));
        assert_eq!(errors[0].message.chars().count(), 1203);
    }
}
