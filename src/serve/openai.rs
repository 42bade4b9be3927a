//! The OpenAI Images API as this service speaks it: request parsing, the error shape, and the
//! mapping of engine failures to HTTP statuses.
//!
//! Requests are read field by field from a JSON object rather than through `serde` derive, so
//! every problem names its `param` the way OpenAI does, and an unknown field is refused with
//! OpenAI's own text (`Unrecognized request argument supplied: <name>`): a typo must not be
//! silently ignored. Multipart edits are turned into the same object first (text values typed by
//! field), so there is one validator.
//!
//! The image controls (`size`, `quality`, ...) are validated here and kept on the request; the
//! one place they reach the engine is [`apply_controls`].

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub(crate) use super::error::ApiError;
use super::inputs::{self, Given, Input};
use super::store::{Callback, JobError};
use crate::foundation::controls;
use crate::foundation::error::{Error, ErrorKind};
use crate::foundation::job::{JobSpec, MAX_PROMPT_CHARS};

pub(crate) const DEFAULT_IMAGE_MODEL: &str = "gpt-image-2";
/// The longest `timeout_sec` a job may ask for.
const MAX_TIMEOUT_SEC: f64 = 3600.0;

/// The HTTP status and the stored error for a job that failed with `err`.
pub(crate) fn job_error(err: &Error) -> (StatusCode, JobError) {
    let message = match err.usage_limit() {
        Some(limit) => match limit.resets_at {
            Some(at) => format!(
                "{err} The subscription's usage limit resets at {}.",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => format!("{err} The reset time was not given."),
        },
        None => err.to_string(),
    };
    let kind = err.kind();
    let (status, kind_text) = match kind {
        ErrorKind::UsageLimit => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout_error"),
        ErrorKind::Usage | ErrorKind::Input => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        ErrorKind::Auth | ErrorKind::Refresh => (StatusCode::SERVICE_UNAVAILABLE, "auth_error"),
        ErrorKind::Io => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        ErrorKind::Cancelled => (StatusCode::CONFLICT, "cancelled"),
        ErrorKind::Http
        | ErrorKind::Transport
        | ErrorKind::Stream
        | ErrorKind::NoImage
        | ErrorKind::BadResponse
        | ErrorKind::InvalidImage => (StatusCode::BAD_GATEWAY, "api_error"),
        // The model declined (content policy, a question back): the request is the problem.
        ErrorKind::Refused => (StatusCode::BAD_REQUEST, "invalid_request_error"),
    };
    let code = match kind {
        ErrorKind::UsageLimit => "usage_limit_reached",
        other => other.as_str(),
    };
    (
        status,
        JobError {
            message,
            kind: kind_text.to_string(),
            code: code.to_string(),
        },
    )
}

/// The HTTP status a stored job error answers with (a sync request reads it back).
pub(crate) fn status_for(error: &JobError) -> StatusCode {
    match error.code.as_str() {
        "usage_limit_reached" => StatusCode::TOO_MANY_REQUESTS,
        "timeout" => StatusCode::GATEWAY_TIMEOUT,
        "usage" | "input" | "refused" => StatusCode::BAD_REQUEST,
        "auth" | "refresh" | "service_stopped" | "service_restarted" => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        "io" => StatusCode::INTERNAL_SERVER_ERROR,
        "cancelled" => StatusCode::CONFLICT,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl From<&JobError> for ApiError {
    fn from(error: &JobError) -> Self {
        ApiError {
            status: status_for(error),
            message: error.message.clone(),
            kind: match error.kind.as_str() {
                "rate_limit_error" => "rate_limit_error",
                "timeout_error" => "timeout_error",
                "invalid_request_error" => "invalid_request_error",
                "auth_error" => "auth_error",
                "cancelled" => "cancelled",
                "server_error" => "server_error",
                _ => "api_error",
            },
            param: None,
            code: Some(error.code.clone()),
            retry_after: None,
        }
    }
}

/// Which endpoint a request came in on; it decides which fields are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Endpoint {
    Generation,
    Edit,
    Job,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ResponseFormat {
    #[default]
    B64Json,
    Url,
}

/// One validated request: what a job stores and runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageRequest {
    /// `generation` or `edit` (an edit has reference images).
    pub operation: String,
    pub prompt: String,
    pub model: String,
    pub n: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_compression: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moderation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_images: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_fidelity: Option<String>,
    pub response_format: ResponseFormat,
    pub stream: bool,
    /// References, judged ([`inputs::prepare`]): their source, size and hash, and the checked
    /// copy the job sends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Input>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<Input>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_sec: Option<f64>,
}

/// A parsed request and the callback that goes with it (kept apart: it holds a secret). The
/// references and mask as given (each with its field name) become `request.images` and
/// `request.mask` once [`inputs::prepare`] has judged them.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub request: ImageRequest,
    pub callback: Option<Callback>,
    pub references: Vec<(String, Given)>,
    pub mask: Option<(String, Given)>,
}

fn one_of(param: &str, value: &Value, allowed: &[&str]) -> Result<String, ApiError> {
    let text = value.as_str().ok_or_else(|| {
        ApiError::invalid(
            param,
            format!("Invalid type for '{param}': expected a string."),
        )
    })?;
    if allowed.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(ApiError::invalid(
            param,
            format!(
                "Invalid value: '{text}'. Supported values are: {}.",
                allowed
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .code("invalid_value"))
    }
}

fn integer(param: &str, value: &Value, min: i64, max: i64) -> Result<i64, ApiError> {
    let n = value.as_i64().ok_or_else(|| {
        ApiError::invalid(
            param,
            format!("Invalid type for '{param}': expected an integer."),
        )
        .code("invalid_type")
    })?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(ApiError::invalid(
            param,
            format!("Invalid value for '{param}': {n}. It must be from {min} to {max}."),
        )
        .code("invalid_value"))
    }
}

fn string(param: &str, value: &Value) -> Result<String, ApiError> {
    value.as_str().map(str::to_string).ok_or_else(|| {
        ApiError::invalid(
            param,
            format!("Invalid type for '{param}': expected a string."),
        )
        .code("invalid_type")
    })
}

/// `auto` or `WIDTHxHEIGHT`, held to the same pixel rules as `--size` (multiples of 16, at most
/// 3840 a side, 3:1, 3840x2160 pixels), so the service never sends a size the CLI refuses.
fn size(value: &Value) -> Result<String, ApiError> {
    let text = string("size", value)?;
    if text == "auto" {
        return Ok(text);
    }
    let invalid = |reason: &str| {
        ApiError::invalid("size", format!("Invalid value: '{text}'. {reason}"))
            .code("invalid_value")
    };
    let dims = text
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|(w, h)| (16..=4096).contains(w) && (16..=4096).contains(h));
    let Some((w, h)) = dims else {
        return Err(invalid(
            "Use 'auto' or WIDTHxHEIGHT, e.g. '1024x1024', '1536x1024', '1024x1536'.",
        ));
    };
    match controls::check_pixel_size(w, h) {
        Ok(()) => Ok(text),
        Err(err) => {
            // The engine's text is `--size WxH: <rule>`; the rule is what applies here.
            let message = err.to_string();
            let rule = message
                .split_once(": ")
                .map_or(message.as_str(), |(_, r)| r);
            let mut chars = rule.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            Err(invalid(&format!(
                "{}{}.",
                first.unwrap_or(' '),
                chars.as_str()
            )))
        }
    }
}

fn callback(value: &Value) -> Result<Callback, ApiError> {
    let map = value.as_object().ok_or_else(|| {
        ApiError::invalid(
            "callback",
            "Invalid type for 'callback': expected an object.",
        )
    })?;
    for key in map.keys() {
        if !["url", "events", "secret"].contains(&key.as_str()) {
            return Err(ApiError::invalid(
                &format!("callback.{key}"),
                format!("Unrecognized request argument supplied: callback.{key}"),
            ));
        }
    }
    let url = string("callback.url", map.get("url").unwrap_or(&Value::Null))?;
    let parsed = reqwest::Url::parse(&url)
        .map_err(|_| ApiError::invalid("callback.url", "Invalid URL for 'callback.url'."))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::invalid(
            "callback.url",
            "callback.url must be http or https.",
        ));
    }
    let events = match map.get("events") {
        None | Some(Value::Null) => vec!["completed".to_string()],
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut events = Vec::new();
            for item in items {
                let event = one_of("callback.events", item, &["completed", "failed"])?;
                if !events.contains(&event) {
                    events.push(event);
                }
            }
            events
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "callback.events",
                "callback.events must be a non-empty array of 'completed' and 'failed'.",
            ))
        }
    };
    let secret = match map.get("secret") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let secret = string("callback.secret", v)?;
            if secret.is_empty() {
                return Err(ApiError::invalid(
                    "callback.secret",
                    "callback.secret is empty.",
                ));
            }
            if secret.starts_with("whsec_") && standardwebhooks::Webhook::new(&secret).is_err() {
                return Err(ApiError::invalid(
                    "callback.secret",
                    "callback.secret starts with whsec_ but the rest is not base64.",
                ));
            }
            Some(secret)
        }
    };
    Ok(Callback {
        url,
        events,
        secret,
    })
}

/// Validate a request body (JSON, or multipart turned into an object) for `endpoint`.
pub(crate) fn parse(endpoint: Endpoint, body: &Map<String, Value>) -> Result<Parsed, ApiError> {
    let mut request = ImageRequest {
        operation: "generation".into(),
        prompt: String::new(),
        model: DEFAULT_IMAGE_MODEL.into(),
        n: 1,
        size: None,
        quality: None,
        background: None,
        output_format: None,
        output_compression: None,
        moderation: None,
        partial_images: None,
        input_fidelity: None,
        response_format: ResponseFormat::B64Json,
        stream: false,
        images: Vec::new(),
        mask: None,
        timeout_sec: None,
    };
    let mut callback_value = None;
    let mut prompt_seen = false;
    let mut references: Vec<(String, Given)> = Vec::new();
    let mut mask: Option<(String, Given)> = None;
    for (key, value) in body {
        // `null` means "not given", as the SDKs send it.
        if value.is_null() {
            continue;
        }
        match (key.as_str(), endpoint) {
            ("prompt", _) => {
                request.prompt = string("prompt", value)?;
                prompt_seen = true;
            }
            ("model", _) => {
                let model = string("model", value)?;
                if model.trim().is_empty() {
                    return Err(ApiError::invalid("model", "'model' is empty."));
                }
                request.model = model;
            }
            ("n", _) => request.n = integer("n", value, 1, 10)? as u32,
            ("size", _) => request.size = Some(size(value)?),
            ("quality", _) => {
                request.quality = Some(one_of(
                    "quality",
                    value,
                    &["auto", "low", "medium", "high"],
                )?)
            }
            ("background", _) => {
                request.background = Some(one_of(
                    "background",
                    value,
                    &["auto", "transparent", "opaque"],
                )?)
            }
            ("output_format", _) => {
                request.output_format =
                    Some(one_of("output_format", value, &["png", "jpeg", "webp"])?)
            }
            ("output_compression", _) => {
                request.output_compression =
                    Some(integer("output_compression", value, 0, 100)? as u8)
            }
            ("moderation", _) => {
                request.moderation = Some(one_of("moderation", value, &["auto", "low"])?)
            }
            ("partial_images", _) => {
                request.partial_images = Some(integer("partial_images", value, 0, 3)? as u8)
            }
            ("response_format", _) => {
                request.response_format =
                    match one_of("response_format", value, &["b64_json", "url"])?.as_str() {
                        "url" => ResponseFormat::Url,
                        _ => ResponseFormat::B64Json,
                    }
            }
            ("stream", Endpoint::Generation | Endpoint::Edit) => {
                request.stream = value.as_bool().ok_or_else(|| {
                    ApiError::invalid("stream", "Invalid type for 'stream': expected a boolean.")
                        .code("invalid_type")
                })?
            }
            ("user" | "safety_identifier", _) => {
                string(key, value)?;
            }
            ("input_fidelity", Endpoint::Edit | Endpoint::Job) => {
                request.input_fidelity = Some(one_of("input_fidelity", value, &["low", "high"])?)
            }
            ("images" | "image" | "image[]", Endpoint::Edit | Endpoint::Job) => {
                let items: Vec<&Value> = match value {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for (i, item) in items.into_iter().enumerate() {
                    let param = format!("{}[{i}]", key.trim_end_matches("[]"));
                    let given = inputs::given(&param, item)?;
                    references.push((param, given));
                }
            }
            ("mask", Endpoint::Edit | Endpoint::Job) => {
                mask = Some(("mask".to_string(), inputs::given("mask", value)?))
            }
            ("timeout_sec", Endpoint::Job) => {
                let secs = value
                    .as_f64()
                    .filter(|s| *s > 0.0 && *s <= MAX_TIMEOUT_SEC)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "timeout_sec",
                            "'timeout_sec' must be a number of seconds greater than 0 and at most 3600.",
                        )
                        .code("invalid_value")
                    })?;
                request.timeout_sec = Some(secs);
            }
            ("callback", Endpoint::Job) => callback_value = Some(value),
            (other, _) => {
                return Err(ApiError::invalid(
                    other,
                    format!("Unrecognized request argument supplied: {other}"),
                ))
            }
        }
    }
    if !prompt_seen || request.prompt.trim().is_empty() {
        return Err(
            ApiError::invalid("prompt", "'prompt' is a required property.")
                .code("missing_required_parameter"),
        );
    }
    let chars = request.prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(ApiError::invalid(
            "prompt",
            format!("'prompt' is {chars} characters; the maximum is {MAX_PROMPT_CHARS}."),
        )
        .code("string_above_max_length"));
    }
    if references.len() > inputs::MAX_REFERENCES {
        return Err(ApiError::invalid(
            "image",
            format!(
                "{} images given; at most {} are allowed.",
                references.len(),
                inputs::MAX_REFERENCES
            ),
        ));
    }
    if endpoint == Endpoint::Edit && references.is_empty() {
        return Err(
            ApiError::invalid("image", "'image' is required for an edit: 1 to 16 images.")
                .code("missing_required_parameter"),
        );
    }
    if let Some((_, Given::Text(text))) = &mask {
        if inputs::is_http(text) {
            return Err(ApiError::invalid(
                "mask",
                "'mask' must be an uploaded file, a local path or a data URL (not an http URL).",
            ));
        }
    }
    if mask.is_some() && references.is_empty() {
        return Err(ApiError::invalid("mask", "A mask needs an image to edit."));
    }
    if request.output_compression.is_some()
        && !matches!(
            request.output_format.as_deref(),
            Some("jpeg") | Some("webp")
        )
    {
        return Err(ApiError::invalid(
            "output_compression",
            "'output_compression' applies to output_format 'jpeg' or 'webp' only.",
        ));
    }
    if request.background.as_deref() == Some("transparent")
        && request.output_format.as_deref() == Some("jpeg")
    {
        return Err(ApiError::invalid(
            "background",
            "A transparent background needs output_format 'png' or 'webp'.",
        ));
    }
    if !references.is_empty() {
        request.operation = "edit".into();
    }
    let callback = callback_value.map(callback).transpose()?;
    Ok(Parsed {
        request,
        callback,
        references,
        mask,
    })
}

/// The one place the OpenAI controls reach the engine's job: `job.controls` and `job.mask`.
/// `mask` is a path here (uploads and data URLs were written to files before).
pub(crate) fn apply_controls(request: &ImageRequest, mask: Option<String>, job: &mut JobSpec) {
    let controls = &mut job.controls;
    controls.size = request.size.clone();
    controls.quality = request.quality.clone();
    controls.format = request.output_format.clone();
    controls.compression = request.output_compression;
    controls.background = request.background.clone();
    controls.image_model = Some(request.model.clone());
    controls.moderation = request.moderation.clone();
    controls.partial_images = request.partial_images;
    controls.input_fidelity = request.input_fidelity.clone();
    controls.action = Some(
        if request.images.is_empty() {
            "generate"
        } else {
            "edit"
        }
        .to_string(),
    );
    job.mask = mask;
}

/// Multipart text values are all strings: give the typed fields their JSON type, so the one
/// validator judges them.
pub(crate) fn typed_form_value(name: &str, text: String) -> Value {
    match name {
        "n" | "output_compression" | "partial_images" => match text.trim().parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(text),
        },
        "stream" => match text.trim() {
            "true" | "True" | "1" => Value::Bool(true),
            "false" | "False" | "0" => Value::Bool(false),
            _ => Value::String(text),
        },
        _ => Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = parse(
            Endpoint::Generation,
            &obj(json!({"prompt": "x", "colour": 1})),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Unrecognized request argument supplied: colour"
        );
        assert_eq!(err.param.as_deref(), Some("colour"));
        let err = parse(
            Endpoint::Generation,
            &obj(json!({"prompt": "x", "timeout_sec": 1})),
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("timeout_sec"));
    }

    #[test]
    fn values_are_checked() {
        let err = parse(Endpoint::Generation, &obj(json!({"prompt": "x", "n": 11}))).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("n"));
        let err = parse(
            Endpoint::Generation,
            &obj(json!({"prompt": "x", "quality": "ultra"})),
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("quality"));
        let err = parse(Endpoint::Generation, &obj(json!({"n": 1}))).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("prompt"));
        let ok = parse(Endpoint::Job, &obj(json!({"prompt": "x", "images": ["a.png"], "callback": {"url": "http://127.0.0.1:1/cb"}}))).unwrap();
        assert_eq!(ok.request.operation, "edit");
        assert_eq!(ok.callback.unwrap().events, vec!["completed"]);
    }
}
