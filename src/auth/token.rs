//! Token expiry: the `expires` field (seconds or milliseconds) and the access token's JWT `exp`
//! (SPEC §4). A token that is not a decodable JWT simply has no known expiry.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// `expires` above 10,000,000,000 is milliseconds, otherwise seconds.
pub(crate) fn normalize_expires_ms(value: &Value) -> Option<i64> {
    let n = value.as_f64().filter(|n| n.is_finite())?;
    let ms = if n > 10_000_000_000.0 { n } else { n * 1000.0 };
    Some(ms as i64)
}

/// The payload of a JWT as JSON, when the token is one.
pub(crate) fn jwt_payload(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub(crate) fn jwt_exp(token: &str) -> Option<i64> {
    let exp = jwt_payload(token)?.get("exp")?.as_f64()?;
    (exp > 0.0).then_some(exp as i64)
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// ISO-8601 UTC with milliseconds and `Z`, as JavaScript's `toISOString()`.
pub(crate) fn iso_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
pub(crate) fn fake_jwt(exp: i64) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{exp}}}"));
    format!("eyJhbGciOiJub25lIn0.{payload}.sig")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expires_is_seconds_or_milliseconds() {
        assert_eq!(
            normalize_expires_ms(&json!(1_700_000_000)),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            normalize_expires_ms(&json!(1_700_000_000_000_i64)),
            Some(1_700_000_000_000)
        );
        assert_eq!(normalize_expires_ms(&json!("soon")), None);
    }

    #[test]
    fn jwt_exp_tolerates_padding_and_garbage() {
        assert_eq!(jwt_exp(&fake_jwt(42)), Some(42));
        let padded = format!("{}==.x", fake_jwt(42).rsplit_once('.').unwrap().0);
        assert_eq!(jwt_exp(&padded), Some(42));
        assert_eq!(jwt_exp("not-a-jwt"), None);
        assert_eq!(jwt_exp("a.%%%.c"), None);
    }
}
