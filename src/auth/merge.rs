//! Merging a token-endpoint answer into a store document (SPEC §7): only the credential fields
//! change; every other field, and the key order (serde_json `preserve_order`), is kept.

use serde_json::{json, Value};

use super::oauth::refreshed_expires_ms;
use super::store::{Auth, AuthFormat};
use super::token::iso_now;
use crate::foundation::error::{Error, RefreshErrorKind, Result};

fn response_str<'a>(response: &'a Value, key: &str) -> Option<&'a str> {
    response
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Merge a refresh response into the store document, touching only the credential fields.
pub(crate) fn merge_response(doc: &mut Value, current: &Auth, response: &Value) -> Result<()> {
    let set = |target: &mut Value, key: &str, value: Option<Value>| {
        if let (Some(obj), Some(value)) = (target.as_object_mut(), value) {
            obj.insert(key.to_string(), value);
        }
    };
    let as_json = |s: Option<&str>| s.map(|s| json!(s));
    match current.format {
        AuthFormat::CodexAuthJson | AuthFormat::CodexKeyring => {
            let tokens = doc.get_mut("tokens").ok_or_else(|| Error::Refresh {
                kind: RefreshErrorKind::Store,
                message: format!(
                    "Codex tokens disappeared during refresh from {}",
                    current.path.display()
                ),
            })?;
            for key in ["id_token", "access_token", "refresh_token"] {
                set(tokens, key, as_json(response_str(response, key)));
            }
            set(doc, "last_refresh", Some(json!(iso_now())));
        }
        AuthFormat::OpenClawAuthProfiles
        | AuthFormat::OpenClawAgentSqlite
        | AuthFormat::OpenClawStateSqlite
        | AuthFormat::OpenClawOAuthJson
        | AuthFormat::OpenClawLegacyAuthJson => {
            let profile = if current.format.holds_profiles() {
                let id = current.profile_id.clone().unwrap_or_default();
                doc.get_mut("profiles")
                    .and_then(|p| p.get_mut(&id))
                    .ok_or_else(|| Error::Refresh {
                        kind: RefreshErrorKind::Store,
                        message: format!("OpenClaw profile disappeared during refresh: {id}"),
                    })?
            } else {
                doc.get_mut(&current.provider)
                    .ok_or_else(|| Error::Refresh {
                        kind: RefreshErrorKind::Store,
                        message: format!(
                            "OpenClaw OAuth entry disappeared during refresh: {}",
                            current.provider
                        ),
                    })?
            };
            set(
                profile,
                "access",
                as_json(response_str(response, "access_token")),
            );
            set(
                profile,
                "refresh",
                as_json(response_str(response, "refresh_token")),
            );
            set(
                profile,
                "expires",
                refreshed_expires_ms(response).map(|ms| json!(ms)),
            );
            set(
                profile,
                "idToken",
                as_json(response_str(response, "id_token")),
            );
        }
    }
    Ok(())
}
