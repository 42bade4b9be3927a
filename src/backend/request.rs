//! What is sent (SPEC §10.1–10.2): the Responses request body, the Codex headers and the
//! Codex-style user agent. No subprocess is spawned to learn the OS: start-up stays fast.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use super::body;
use super::references::LoadedReference;
use crate::foundation::controls::ImageControls;
use crate::foundation::paths::Environment;

/// The Codex CLI version we present as (what codex-imagen 0.2.8 sends).
pub const PINNED_CODEX_VERSION: &str = "0.153.2";

pub fn codex_version(env: &Environment) -> String {
    env.var("CODEX_IMAGEN_CODEX_VERSION")
        .unwrap_or_else(|| PINNED_CODEX_VERSION.to_string())
}

/// `codex_cli_rs/<version> (<OS> <OS version>; <arch>) <terminal>`
pub fn user_agent(env: &Environment, codex_version: &str) -> String {
    let (os_name, os_version) = os_name_and_version();
    let raw = format!(
        "codex_cli_rs/{} ({} {}; {}) {}",
        codex_version,
        os_name,
        os_version,
        std::env::consts::ARCH,
        terminal(env)
    );
    sanitize_header(&raw)
}

/// Every char outside printable ASCII becomes `_`.
pub fn sanitize_header(value: &str) -> String {
    value
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '_' })
        .collect()
}

fn terminal(env: &Environment) -> String {
    if let Some(program) = env.var("TERM_PROGRAM") {
        return match env.var("TERM_PROGRAM_VERSION") {
            Some(version) => format!("{program}/{version}"),
            None => program,
        };
    }
    env.var("TERM").unwrap_or_else(|| "unknown".to_string())
}

#[cfg(target_os = "linux")]
fn os_name_and_version() -> (String, String) {
    // /etc/os-release names the distribution the way os_info (used by Codex) does.
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    let name = field("NAME").unwrap_or_else(|| "Linux".to_string());
    let name = name.trim_end_matches(" GNU/Linux").to_string();
    let version = field("VERSION_ID").unwrap_or_else(|| "Rolling Release".to_string());
    (name, version)
}

#[cfg(target_os = "macos")]
fn os_name_and_version() -> (String, String) {
    let plist = std::fs::read_to_string("/System/Library/CoreServices/SystemVersion.plist")
        .unwrap_or_default();
    let version = plist
        .split("<key>ProductVersion</key>")
        .nth(1)
        .and_then(|rest| rest.split("<string>").nth(1))
        .and_then(|rest| rest.split("</string>").next())
        .unwrap_or("Unknown")
        .to_string();
    ("Mac OS".to_string(), version)
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn os_name_and_version() -> (String, String) {
    let name = match std::env::consts::OS {
        "windows" => "Windows",
        other => other,
    };
    (name.to_string(), "Unknown".to_string())
}

/// The message content: each reference wrapped in `<image name=[Image #i]>` tags, then the prompt.
pub fn prompt_content(references: &[LoadedReference], detail: &str, prompt: &str) -> Vec<Value> {
    let mut content = Vec::with_capacity(references.len() * 3 + 1);
    for (i, r) in references.iter().enumerate() {
        content.push(
            json!({"type": "input_text", "text": format!("<image name=[Image #{}]>", i + 1)}),
        );
        content.push(json!({"type": "input_image", "image_url": r.image_url, "detail": detail}));
        content.push(json!({"type": "input_text", "text": "</image>"}));
    }
    content.push(json!({"type": "input_text", "text": prompt}));
    content
}

/// The `image_generation` tool object: `{"type","output_format":"png"}` plus only the controls
/// given, so a run without controls sends exactly what it always did.
pub fn image_tool(image_controls: &ImageControls, mask: Option<&str>) -> Value {
    let mut tool = serde_json::Map::new();
    tool.insert("type".into(), json!("image_generation"));
    tool.insert("output_format".into(), json!("png"));
    image_controls.apply_to_tool(&mut tool);
    if let Some(mask) = mask {
        body::apply_mask_to_tool(&mut tool, mask);
    }
    Value::Object(tool)
}

/// The Responses body; `tool` is the `image_generation` tool object (see [`image_tool`]).
pub fn responses_body(
    model: &str,
    content: &[Value],
    request_id: &str,
    stream: bool,
    tool: Value,
) -> Value {
    json!({
        "model": model,
        "instructions": "",
        "input": [{"type": "message", "role": "user", "content": content}],
        "tools": [tool],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "prompt_cache_key": request_id,
        "stream": stream,
        "store": false,
        "reasoning": null,
    })
}

/// Credentials and identity shared by every request of a run.
#[derive(Debug, Clone)]
pub struct RequestIdentity {
    pub access_token: String,
    pub account_id: String,
    pub user_agent: String,
    pub codex_version: String,
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(&sanitize_header(value)) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Headers common to both backends.
pub fn base_headers(identity: &RequestIdentity, accept: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    insert(&mut headers, "accept", accept);
    insert(
        &mut headers,
        "authorization",
        &format!("Bearer {}", identity.access_token),
    );
    insert(&mut headers, "chatgpt-account-id", &identity.account_id);
    insert(&mut headers, "content-type", "application/json");
    insert(&mut headers, "originator", "codex_cli_rs");
    insert(&mut headers, "user-agent", &identity.user_agent);
    insert(&mut headers, "version", &identity.codex_version);
    headers
}

/// Headers for one Responses attempt.
pub fn responses_headers(
    identity: &RequestIdentity,
    request_id: &str,
    session_id: &str,
) -> HeaderMap {
    let mut headers = base_headers(identity, "text/event-stream, application/json");
    insert(&mut headers, "session-id", session_id);
    insert(&mut headers, "thread-id", request_id);
    insert(&mut headers, "x-client-request-id", request_id);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_wraps_references_then_prompt() {
        let refs = vec![LoadedReference {
            image_url: "data:image/png;base64,AA".into(),
            description: String::new(),
            source: String::new(),
            sha256: None,
        }];
        let content = prompt_content(&refs, "low", " keep spaces ");
        assert_eq!(content.len(), 4);
        assert_eq!(content[0]["text"], "<image name=[Image #1]>");
        assert_eq!(content[1]["detail"], "low");
        assert_eq!(content[2]["text"], "</image>");
        assert_eq!(content[3]["text"], " keep spaces ");
    }

    #[test]
    fn user_agent_is_printable_ascii() {
        assert_eq!(sanitize_header("a\u{e9}b\u{7}c"), "a_b_c");
        let env = Environment::from_vars([], "/".into(), "/".into());
        let ua = user_agent(&env, &codex_version(&env));
        assert!(ua.starts_with("codex_cli_rs/"), "{ua}");
        assert!(ua.chars().all(|c| (' '..='~').contains(&c)));
    }
}
