//! The image quota's headroom from a `wham/usage` answer, for `--pool`'s choice of account.
//!
//! The image quota is separate from the main windows (image 429s arrive while those still show
//! room), and is most likely one of `additional_rate_limits[]`, whose `metered_feature` name is
//! not documented: any entry whose `metered_feature` or `limit_name` contains "image" counts.
//! Its headroom is 100 minus the fullest of its windows' `used_percent` (0 when
//! `limit_reached`). No such entry: unknown, and the pool takes turns instead.

use serde_json::Value;

/// Percent of the image quota left, when the answer says.
pub(crate) fn image_headroom(body: &str) -> Option<f64> {
    let root: Value = serde_json::from_str(body).ok()?;
    let entries = root.get("additional_rate_limits")?.as_array()?;
    let entry = entries.iter().find(|e| {
        ["metered_feature", "limit_name"].iter().any(|k| {
            e.get(*k)
                .and_then(Value::as_str)
                .is_some_and(|v| v.to_ascii_lowercase().contains("image"))
        })
    })?;
    let limit = entry.get("rate_limit")?;
    if limit.get("limit_reached").and_then(Value::as_bool) == Some(true) {
        return Some(0.0);
    }
    let used = ["primary_window", "secondary_window"]
        .iter()
        .filter_map(|w| limit.get(*w)?.get("used_percent")?.as_f64())
        .fold(None, |acc: Option<f64>, p| {
            Some(acc.map_or(p, |a| a.max(p)))
        })?;
    Some((100.0 - used).clamp(0.0, 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_image_entry_decides() {
        let body = json!({"rate_limit": {"allowed": true, "limit_reached": false},
        "additional_rate_limits": [
            {"limit_name": "Other", "metered_feature": "x", "rate_limit": {"primary_window": {"used_percent": 1}}},
            {"limit_name": "Image generation", "metered_feature": "image_gen", "rate_limit": {
                "limit_reached": false, "primary_window": {"used_percent": 30}, "secondary_window": {"used_percent": 55.5}}}
        ]});
        assert_eq!(image_headroom(&body.to_string()), Some(44.5));
        let reached = json!({"additional_rate_limits": [{"metered_feature": "images",
            "rate_limit": {"limit_reached": true, "primary_window": {"used_percent": 10}}}]});
        assert_eq!(image_headroom(&reached.to_string()), Some(0.0));
        assert_eq!(image_headroom(r#"{"rate_limit": {}}"#), None);
        assert_eq!(image_headroom("not json"), None);
    }
}
