//! One attempt against the typed Images endpoints (SPEC §10.4): `images/generations` without
//! references, `images/edits` with them. The answer is one JSON document, never a stream, so
//! images are saved at the end with their total known — like `--no-stream` on Responses.
//!
//! This is the route Codex itself uses since its image extension became the default (openai/codex
//! PR #31596): `ImagesClient` in `codex-rs/codex-api/src/endpoint/images.rs`. What is sent is
//! what Codex sends — the path, the headers ([`images_headers`]), the body keys in Codex's
//! order (`images` for an edit, as `[{"image_url"}]`, then `prompt`, `background`, `model`,
//! `quality`, `size`, with Codex's `auto` defaults) — plus only what the user asked for that
//! Codex has no field for: `output_format`, `output_compression` and `moderation` after `size`,
//! and the `--mask` as `{"mask": {"image_url"}}` last (Codex sends no mask at all). It shares
//! cookies, HTTP errors and the retry loop with the Responses attempt.

use reqwest::header::HeaderMap;
use reqwest::Client;
use serde_json::{json, Map, Value};

use super::cookies::CookieJar;
use super::errors;
use super::request::{base_headers, RequestIdentity};
use super::responses::AttemptState;
use super::{http_error, post_json};
use crate::foundation::controls::ImageControls;
use crate::foundation::error::BackendError;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::Reporter;
use crate::output::naming::OutputPlan;
use crate::output::saver;
use crate::output::saver::CallState;
use crate::output::saver::ImageData;

/// The event type an Images response is recorded as, so the retry policy and the messages treat
/// "a JSON answer without image data" the same way for both backends.
pub const IMAGE_RESPONSE: &str = "image_response";

/// Which typed endpoint an attempt uses: decided by whether there are reference images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Generation,
    Edit,
}

impl Operation {
    pub fn for_references(count: usize) -> Operation {
        if count == 0 {
            Operation::Generation
        } else {
            Operation::Edit
        }
    }

    /// As reported in `operation` and on stderr.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Generation => "image generation",
            Operation::Edit => "image edit",
        }
    }
}

pub struct ImagesRequest<'a> {
    pub client: &'a Client,
    pub endpoint: &'a str,
    pub identity: &'a RequestIdentity,
    pub model: &'a str,
    pub prompt: &'a str,
    /// `data:` or http(s) URLs of the reference images, in the Responses order.
    pub image_urls: &'a [String],
    pub controls: &'a ImageControls,
    /// The `--mask` PNG as a `data:` URL (edits only).
    pub mask: Option<&'a str>,
    pub plan: &'a OutputPlan,
    pub progress: Reporter,
}

/// `{"images": [...]?, "prompt", "background", "model", "quality", "size"}`, in that order.
pub fn images_body(model: &str, prompt: &str, image_urls: &[String]) -> Value {
    let mut body = Map::new();
    if !image_urls.is_empty() {
        let images: Vec<Value> = image_urls
            .iter()
            .map(|url| json!({ "image_url": url }))
            .collect();
        body.insert("images".into(), Value::Array(images));
    }
    body.insert("prompt".into(), json!(prompt));
    body.insert("background".into(), json!("auto"));
    body.insert("model".into(), json!(model));
    body.insert("quality".into(), json!("auto"));
    body.insert("size".into(), json!("auto"));
    Value::Object(body)
}

/// [`images_body`] with the controls given (replacing the `auto` defaults in place, so the key
/// order stays) and the mask as `{"mask": {"image_url": ...}}`, the JSON edits form.
pub fn controlled_images_body(
    model: &str,
    prompt: &str,
    image_urls: &[String],
    controls: &ImageControls,
    mask: Option<&str>,
) -> Value {
    let mut body = images_body(model, prompt, image_urls);
    if let Value::Object(map) = &mut body {
        controls.apply_to_images_body(map);
        if let Some(mask) = mask {
            map.insert("mask".into(), json!({ "image_url": mask }));
        }
    }
    body
}

/// What Codex's `ImagesClient` sends: its default client's `originator` and `User-Agent`, the
/// provider's `version`, the bearer auth with `ChatGPT-Account-ID`, and reqwest's JSON
/// `content-type` — no `Accept` of its own (reqwest's default `*/*` goes, as from Codex), and no session, thread or request ids (those belong to the
/// Responses conversation model).
pub fn images_headers(identity: &RequestIdentity) -> HeaderMap {
    let mut headers = base_headers(identity, "application/json");
    headers.remove(reqwest::header::ACCEPT);
    headers
}

/// Run one attempt to its end; on success every image is on disk and recorded in `state`, and
/// the returned value is the `response_metadata`.
pub async fn run(
    req: &ImagesRequest<'_>,
    state: &mut AttemptState,
    jar: &mut CookieJar,
) -> Result<Value> {
    let body = controlled_images_body(
        req.model,
        req.prompt,
        req.image_urls,
        req.controls,
        req.mask,
    );
    let body =
        serde_json::to_vec(&body).map_err(|e| Error::Io(format!("Cannot encode request: {e}")))?;
    let response = post_json(
        req.client,
        req.endpoint,
        images_headers(req.identity),
        body,
        jar,
        &req.progress,
    )
    .await?;
    if !response.status().is_success() {
        return Err(http_error(response).await);
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Error::Transport(crate::foundation::http::transport_message(&e)))?;
    req.progress.verbose(&format!("event: {IMAGE_RESPONSE}"));
    state.processor.seen_event_types = vec![IMAGE_RESPONSE.to_string()];

    let (calls, metadata, backend_errors) = match serde_json::from_slice::<Value>(&bytes) {
        Ok(payload) => {
            let backend_errors = errors::from_payload(&payload, IMAGE_RESPONSE);
            let metadata = response_metadata(&payload);
            (image_calls(payload), metadata, backend_errors)
        }
        Err(_) => (Vec::new(), Value::Null, vec![not_json(&bytes)]),
    };
    if calls.is_empty() {
        return Err(no_image_error(backend_errors));
    }
    state.saved_at_end =
        crate::foundation::blocking::run(|| saver::save_all(req.plan, calls, &req.progress))?;
    Ok(metadata)
}

/// `{created, background, quality, size}` from the response, each null when absent, then
/// `output_format` and `usage` when the answer has them (Codex's `ImageResponse` fields).
pub fn response_metadata(payload: &Value) -> Value {
    let field = |k: &str| payload.get(k).cloned().unwrap_or(Value::Null);
    let mut metadata = json!({
        "created": field("created"),
        "background": field("background"),
        "quality": field("quality"),
        "size": field("size"),
    });
    if let Value::Object(map) = &mut metadata {
        for key in ["output_format", "usage"] {
            if let Some(value) = payload.get(key) {
                map.insert(key.into(), value.clone());
            }
        }
    }
    metadata
}

/// Every `data[i]` with base64 (`b64_json`, else `result`) as a completed, final call, keyed
/// and named by its id (`image`, `image-2`, ... when it has none).
pub fn image_calls(payload: Value) -> Vec<(String, CallState, ImageData)> {
    let Value::Object(mut top) = payload else {
        return Vec::new();
    };
    let top_prompt = top
        .get("revised_prompt")
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(Value::Array(data)) = top.remove("data") else {
        return Vec::new();
    };
    let mut calls = Vec::new();
    for (i, item) in data.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            continue;
        };
        // Moved out, not cloned: an image is megabytes of base64.
        let b64 = match (item.remove("b64_json"), item.remove("result")) {
            (Some(Value::String(b64)), _) if !b64.is_empty() => b64,
            (_, Some(Value::String(b64))) if !b64.is_empty() => b64,
            _ => continue,
        };
        let id = match item.get("id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None if i == 0 => "image".to_string(),
            None => format!("image-{}", i + 1),
        };
        let revised_prompt = top_prompt.clone().or_else(|| {
            item.get("revised_prompt")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let state = CallState {
            id: Some(id.clone()),
            status: Some("completed".to_string()),
            revised_prompt,
            partial: Some(false),
            has_result: true,
        };
        calls.push((id, state, ImageData::Inline(b64)));
    }
    calls
}

fn not_json(bytes: &[u8]) -> BackendError {
    let text: String = String::from_utf8_lossy(bytes).chars().take(300).collect();
    BackendError {
        source: IMAGE_RESPONSE.to_string(),
        code: None,
        kind: None,
        status: None,
        param: None,
        message: format!("response is not JSON: {}", text.trim()),
    }
}

/// The generation-failed error for an answer without image data (SPEC §10.4).
pub fn no_image_error(backend_errors: Vec<BackendError>) -> Error {
    let mut message =
        format!("No image data found in Codex Images response. Seen event types: {IMAGE_RESPONSE}");
    if !backend_errors.is_empty() {
        message.push_str("\nBackend error details:\n");
        message.push_str(&errors::format(&backend_errors));
    }
    Error::GenerationFailed {
        message,
        seen_event_types: vec![IMAGE_RESPONSE.to_string()],
        backend_errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_choose_the_edit_endpoint() {
        assert_eq!(Operation::for_references(0), Operation::Generation);
        assert_eq!(Operation::for_references(2), Operation::Edit);
        assert_eq!(Operation::Generation.as_str(), "image generation");
        assert_eq!(Operation::Edit.as_str(), "image edit");
    }

    #[test]
    fn bodies_put_images_first_and_fix_the_auto_fields() {
        let body = images_body("gpt-image-2", "a fox", &[]);
        assert_eq!(
            body.to_string(),
            r#"{"prompt":"a fox","background":"auto","model":"gpt-image-2","quality":"auto","size":"auto"}"#
        );
        let urls = vec![
            "data:image/png;base64,AA".to_string(),
            "https://x/y.png".to_string(),
        ];
        let body = images_body("m", " keep ", &urls);
        assert_eq!(
            body.to_string(),
            r#"{"images":[{"image_url":"data:image/png;base64,AA"},{"image_url":"https://x/y.png"}],"prompt":" keep ","background":"auto","model":"m","quality":"auto","size":"auto"}"#
        );
    }

    #[test]
    fn data_items_become_completed_calls_with_fallback_ids() {
        let payload = json!({"created": 1, "revised_prompt": null, "data": [
            {"b64_json": "AAAA", "revised_prompt": "rp1"},
            {"result": "BBBB"},
            {"url": "https://x/no-data.png"},
            {"b64_json": "CCCC", "id": "img_9"},
            "junk"
        ]});
        let calls = image_calls(payload);
        let ids: Vec<&str> = calls.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(ids, vec!["image", "image-2", "img_9"]);
        assert_eq!(calls[0].2.inline(), Some("AAAA"));
        assert_eq!(calls[1].2.inline(), Some("BBBB"));
        assert_eq!(calls[0].1.revised_prompt.as_deref(), Some("rp1"));
        assert_eq!(calls[0].1.status.as_deref(), Some("completed"));
        assert_eq!(calls[0].1.partial, Some(false));
        let top = image_calls(
            json!({"revised_prompt": "top", "data": [{"b64_json": "A", "revised_prompt": "item"}]}),
        );
        assert_eq!(top[0].1.revised_prompt.as_deref(), Some("top"));
    }

    #[test]
    fn metadata_keeps_its_four_keys() {
        assert_eq!(
            response_metadata(&json!({"created": 5, "size": "1024x1024", "data": []})),
            json!({"created": 5, "background": null, "quality": null, "size": "1024x1024"})
        );
    }

    #[test]
    fn no_data_is_a_retryable_generation_failure_with_details() {
        let payload =
            json!({"data": [], "error": {"code": "image_backend_hiccup", "message": "try later"}});
        let errs = errors::from_payload(&payload, IMAGE_RESPONSE);
        let err = no_image_error(errs);
        assert_eq!(
            err.to_string(),
            "No image data found in Codex Images response. Seen event types: image_response\nBackend error details:\n  - error code=image_backend_hiccup try later"
        );
        let bare = no_image_error(Vec::new());
        assert_eq!(
            bare.to_string(),
            "No image data found in Codex Images response. Seen event types: image_response"
        );
    }
}
