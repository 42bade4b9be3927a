//! The HTTP surface: routes, the request log, the guard (Host, Origin, body type, CORS: see
//! `guard.rs`), the token check, the 64 MiB body limit, and the rule that every error answer is
//! in OpenAI's shape (even axum's own 404/405 and tower-http's 413, rewritten by
//! [`openai_shape`]). A request's references are judged (`inputs.rs`) and its callback address
//! checked (`destinations.rs`) before its job is admitted.
//!
//! Bodies are read here, by hand, so a malformed body is a 400 naming what is wrong rather
//! than an extractor's plain-text rejection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;
use tower_http::limit::RequestBodyLimitLayer;

use super::auth::{self, TokenCheck};
use super::guard;
use super::inputs::{self, Upload};
use super::openai::{self, ApiError, Endpoint, ImageRequest, Parsed, ResponseFormat};
use super::service::{Live, Service};
use super::store::{self, Cursor, JobRow};
use super::{destinations, files, gallery, stream, studio, workers};
use crate::foundation::sync::lock;

/// Request bodies above this are refused with 413.
pub(crate) const BODY_LIMIT: usize = 64 * 1024 * 1024;

type Shared = State<Arc<Service>>;

pub(crate) fn router(service: Arc<Service>) -> Router {
    let token = TokenCheck::new(service.config.token.as_deref());
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/v1/images/generations", post(generations))
        .route("/v1/images/edits", post(edits))
        .route("/v1/jobs", post(create_job).get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job).delete(delete_job))
        .route("/v1/files/{id}/{k}", get(get_file))
        .merge(gallery::api(service.config.data_dir.clone()))
        .fallback(not_found)
        .layer(middleware::from_fn(guard::check_body_type))
        .layer(middleware::from_fn_with_state(token, auth::require_token))
        // The studio's page holds nothing secret; what it does goes through the API above.
        // It still gets the Host and Origin checks.
        .merge(studio::pages())
        .layer(middleware::from_fn_with_state(
            service.guard.clone(),
            guard::check_host_and_origin,
        ))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT));
    if let Some(cors) = guard::cors(&service.config.cors_origins) {
        router = router.layer(cors);
    }
    router
        .layer(middleware::map_response(openai_shape))
        .layer(middleware::from_fn_with_state(service.clone(), log_request))
        .with_state(service)
}

/// One line per request: method, path (never the query or a header), status, time.
async fn log_request(State(service): Shared, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    service.log.line(&format!(
        "{method} {path} {} {:.1}ms",
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    ));
    response
}

/// Error answers that are not JSON yet (axum's 404/405, tower-http's 413) get OpenAI's shape.
async fn openai_shape(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is larger than 64 MiB.".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed for this path.".to_string(),
        StatusCode::NOT_FOUND => "No such endpoint.".to_string(),
        other => other
            .canonical_reason()
            .unwrap_or("Request failed")
            .to_string(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        _ => "error",
    };
    ApiError::new(status, "invalid_request_error", message)
        .code(code)
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("No such endpoint.")
}

fn files_base(service: &Service, headers: &HeaderMap) -> String {
    guard::files_base(&service.guard, headers)
}

fn server_error(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
}

/// Judge the references and mask of `parsed` (off the async threads: files are read and
/// written) and put them on its request; on an error the job's inputs folder goes.
async fn prepare_inputs(
    service: &Arc<Service>,
    id: &str,
    mut parsed: Parsed,
    uploads: Vec<Upload>,
) -> Result<Parsed, ApiError> {
    if parsed.references.is_empty() && parsed.mask.is_none() {
        return Ok(parsed);
    }
    let service = service.clone();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        let judged = inputs::prepare(
            &service.config,
            &id,
            &parsed.references,
            parsed.mask.as_ref(),
            &uploads,
        );
        match judged {
            Ok((images, mask)) => {
                parsed.request.images = images;
                parsed.request.mask = mask;
                Ok(parsed)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(files::inputs_dir(&service.config.data_dir, &id));
                Err(e)
            }
        }
    })
    .await
    .map_err(|_| server_error("The inputs could not be checked."))?
}

/// A callback's address, at submission (400 naming `callback.url`).
async fn check_callback(service: &Service, parsed: &Parsed) -> Result<(), ApiError> {
    let Some(callback) = &parsed.callback else {
        return Ok(());
    };
    destinations::check_submission(&callback.url, service.config.allow_private_callbacks)
        .await
        .map_err(|why| {
            ApiError::invalid(
                "callback.url",
                format!("callback.url is refused: {why}. Callbacks go to public addresses and loopback; start the service with --allow-private-callbacks to allow others."),
            )
            .code("callback_not_allowed")
        })
}

async fn health(State(service): Shared) -> Response {
    let jobs = json!({"queued": service.queue.len(), "running": lock(&service.running).len()});
    let version = env!("CARGO_PKG_VERSION");
    // Issue #22: a usage limit pauses sending; queued jobs wait for this time.
    let paused_until = service
        .engine
        .paused_until()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    match service.auth_health().await {
        Ok(report) => Json(json!({
            "status": "ok",
            "version": version,
            "auth": {
                "profile_id": report["profile_id"],
                "auth_format": report["auth_format"],
                "access_token_expires_in_seconds": report["access_token_expires_in_seconds"],
            },
            "jobs": jobs,
            "paused_until": paused_until,
        }))
        .into_response(),
        Err(message) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "version": version,
                "error": {"message": message, "type": "auth_error", "param": null, "code": "no_credentials"},
                "jobs": jobs,
                "paused_until": paused_until,
            })),
        )
            .into_response(),
    }
}

/// Read a whole body, at most [`BODY_LIMIT`] bytes.
async fn read_body(body: Body) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            if e.to_string().contains("length limit") {
                too_large()
            } else {
                ApiError::invalid("body", format!("Cannot read the request body: {e}"))
            }
        })?;
        if out.len() + chunk.len() > BODY_LIMIT {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request_error",
        "The request body is larger than 64 MiB.",
    )
    .code("request_too_large")
}

async fn read_json(body: Body) -> Result<Map<String, Value>, ApiError> {
    let bytes = read_body(body).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(
            "body",
            format!("We could not parse the JSON body of your request: {e}."),
        )
        .code("invalid_json")
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => {
            Err(ApiError::invalid("body", "The JSON body must be an object.").code("invalid_json"))
        }
    }
}

async fn generations(State(service): Shared, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let map = read_json(body).await?;
        let parsed = openai::parse(Endpoint::Generation, &map)?;
        Ok::<_, ApiError>(parsed)
    }
    .await;
    match result {
        Ok(parsed) => run_sync(service, Service::new_id(), parsed, &headers).await,
        Err(e) => e.into_response(),
    }
}

async fn edits(State(service): Shared, headers: HeaderMap, request: Request) -> Response {
    let id = Service::new_id();
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let result = async {
        let (map, uploads) = if is_multipart {
            read_form(request).await?
        } else {
            (read_json(request.into_body()).await?, Vec::new())
        };
        let parsed = openai::parse(Endpoint::Edit, &map)?;
        prepare_inputs(&service, &id, parsed, uploads).await
    }
    .await;
    match result {
        Ok(parsed) => run_sync(service, id, parsed, &headers).await,
        Err(e) => e.into_response(),
    }
}

/// A multipart edit as the JSON object the validator reads: uploaded `image`/`image[]` and
/// `mask` files are kept in memory and appear in the object as `{"upload": n}`, the n-th of
/// the uploads returned beside it.
async fn read_form(request: Request) -> Result<(Map<String, Value>, Vec<Upload>), ApiError> {
    let form_err = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::invalid(
                "body",
                format!("Cannot read the multipart body: {}", e.body_text()),
            )
        }
    };
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let mut map = Map::new();
    let mut uploads: Vec<Upload> = Vec::new();
    let mut images: Vec<Value> = Vec::new();
    let mut image_key = "image".to_string();
    while let Some(field) = multipart.next_field().await.map_err(form_err)? {
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let data = field.bytes().await.map_err(form_err)?;
        let image_field = name == "image" || name == "image[]";
        if let (Some(file_name), true) = (file_name, image_field || name == "mask") {
            if data.is_empty() {
                return Err(ApiError::invalid(
                    &name,
                    format!("'{name}' is an empty file."),
                ));
            }
            let placeholder = serde_json::json!({"upload": uploads.len()});
            uploads.push(Upload { file_name, data });
            if name == "mask" {
                map.insert(name, placeholder);
            } else {
                image_key = name;
                images.push(placeholder);
            }
        } else if image_field {
            image_key = name;
            images.push(Value::String(String::from_utf8_lossy(&data).into_owned()));
        } else {
            let text = String::from_utf8_lossy(&data).into_owned();
            let value = openai::typed_form_value(&name, text);
            map.insert(name, value);
        }
    }
    if !images.is_empty() {
        map.insert(image_key, Value::Array(images));
    }
    Ok((map, uploads))
}

/// A generation or edit answered when its job ends (or streamed while it runs).
async fn run_sync(
    service: Arc<Service>,
    id: String,
    parsed: Parsed,
    headers: &HeaderMap,
) -> Response {
    let (_, live) = match service.admit(&id, &parsed) {
        Ok(admitted) => admitted,
        Err(e) => {
            let _ = std::fs::remove_dir_all(files::inputs_dir(&service.config.data_dir, &id));
            return e.into_response();
        }
    };
    if parsed.request.stream {
        return stream::response(service, id, live, parsed.request);
    }
    wait_done(live, None).await;
    let row = match service.store.get(&id) {
        Ok(Some(row)) => row,
        _ => return ApiError::not_found(format!("Job {id} vanished.")).into_response(),
    };
    images_response(&row, &parsed.request, &files_base(&service, headers))
        .await
        .into_response()
}

/// Wait until the job's channel says it is done (or closes), at most `limit`.
async fn wait_done(mut live: broadcast::Receiver<Live>, limit: Option<Duration>) {
    let wait = async {
        loop {
            match live.recv().await {
                Ok(Live::Done) | Err(broadcast::error::RecvError::Closed) => return,
                _ => continue,
            }
        }
    };
    match limit {
        Some(limit) => {
            let _ = tokio::time::timeout(limit, wait).await;
        }
        None => wait.await,
    }
}

/// OpenAI's `ImagesResponse` for a finished job, describing what came back.
async fn images_response(
    row: &JobRow,
    request: &ImageRequest,
    base: &str,
) -> Result<Json<Value>, ApiError> {
    if row.status != store::COMPLETED {
        let error = row.error.clone().unwrap_or(store::JobError {
            message: format!("The job ended {}.", row.status),
            kind: "api_error".into(),
            code: row.status.clone(),
        });
        return Err(ApiError::from(&error));
    }
    let mut data = Vec::new();
    let mut alpha = false;
    for image in &row.images {
        let mut item = match request.response_format {
            ResponseFormat::Url => {
                json!({"url": format!("{base}/v1/files/{}/{}", row.id, image.index)})
            }
            ResponseFormat::B64Json => {
                let bytes = tokio::fs::read(&image.path).await.map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        format!("Cannot read image {}: {e}", image.index),
                    )
                })?;
                alpha |= files::bytes_have_alpha(&bytes);
                json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(&bytes)})
            }
        };
        if request.response_format == ResponseFormat::Url {
            alpha |= files::has_alpha(std::path::Path::new(&image.path));
        }
        item["revised_prompt"] = json!(image.revised_prompt);
        data.push(item);
    }
    let first = row.images.first();
    let described = stream::describe(request, first, alpha);
    let quality = request.quality.clone().filter(|q| q != "auto");
    Ok(Json(json!({
        "created": row.created_ms / 1000,
        "data": data,
        "background": described["background"],
        "output_format": described["output_format"],
        "quality": quality,
        "size": described["size"],
    })))
}

async fn create_job(State(service): Shared, body: Body) -> Response {
    let id = Service::new_id();
    let result = async {
        let map = read_json(body).await?;
        let parsed = openai::parse(Endpoint::Job, &map)?;
        check_callback(&service, &parsed).await?;
        prepare_inputs(&service, &id, parsed, Vec::new()).await
    }
    .await;
    let parsed = match result {
        Ok(parsed) => parsed,
        Err(e) => return e.into_response(),
    };
    let admitted = service.admit(&id, &parsed);
    if admitted.is_err() {
        let _ = std::fs::remove_dir_all(files::inputs_dir(&service.config.data_dir, &id));
    }
    match admitted {
        Ok((created, _)) => (
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "object": "image.job", "status": "queued", "created_at": created / 1000})),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The most jobs one list answer holds (OpenAI's own limit); `after`/`before` page on.
const MAX_LIST: usize = 100;

const STATUSES: [&str; 5] = ["queued", "running", "completed", "failed", "cancelled"];

async fn list_jobs(
    State(service): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    for key in query.keys() {
        if !["status", "limit", "after", "before"].contains(&key.as_str()) {
            return Err(ApiError::invalid(
                key,
                format!("Unrecognized request argument supplied: {key}"),
            ));
        }
    }
    let status = match query.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s) if STATUSES.contains(&s) => Some(s),
        Some(s) => {
            return Err(ApiError::invalid(
                "status",
                format!(
                    "Invalid value: '{s}'. Supported values are: {}.",
                    STATUSES.join(", ")
                ),
            ))
        }
    };
    let limit = match query.get("limit") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIST).contains(l))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("'limit' must be an integer from 1 to {MAX_LIST}."),
                )
            })?,
    };
    let cursor = match (query.get("after"), query.get("before")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "before",
                "Give 'after' or 'before', not both.",
            ))
        }
        (Some(id), None) => Some(("after", Cursor::After(id.as_str()))),
        (None, Some(id)) => Some(("before", Cursor::Before(id.as_str()))),
        (None, None) => None,
    };
    if let Some((param, Cursor::After(id) | Cursor::Before(id))) = cursor {
        if find(&service, id).is_err() {
            return Err(ApiError::invalid(
                param,
                format!("'{param}': no job with id '{id}'."),
            ));
        }
    }
    let rows = service
        .store
        .list(status, limit + 1, cursor.map(|(_, c)| c))
        .map_err(|e| server_error(e.to_string()))?;
    let has_more = rows.len() > limit;
    let base = files_base(&service, &headers);
    // Going back (`before`), the extra row is the newest one: it is the one left out.
    let skip = match cursor {
        Some((_, Cursor::Before(_))) if has_more => 1,
        _ => 0,
    };
    let data: Vec<Value> = rows
        .iter()
        .skip(skip)
        .take(limit)
        .map(|r| r.to_json(&base))
        .collect();
    let first_id = data.first().map(|j| j["id"].clone());
    let last_id = data.last().map(|j| j["id"].clone());
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "first_id": first_id,
        "last_id": last_id,
        "has_more": has_more,
    })))
}

fn find(service: &Service, id: &str) -> Result<JobRow, ApiError> {
    match service.store.get(id) {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(ApiError {
            param: Some("id".into()),
            ..ApiError::not_found(format!("No job with id '{id}'."))
        }),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        )),
    }
}

async fn get_job(
    State(service): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = find(&service, &id)?;
    Ok(Json(row.to_json(&files_base(&service, &headers))))
}

async fn delete_job(
    State(service): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = find(&service, &id)?;
    if row.is_finished() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!("Job {id} is already {}.", row.status),
        )
        .code("job_finished"));
    }
    let live = lock(&service.live).get(&id).map(|s| s.subscribe());
    if workers::cancel(&service, &id) {
        if let Some(live) = live {
            // The worker commits the cancellation; answer with the committed state.
            wait_done(live, Some(Duration::from_secs(5))).await;
        }
    }
    let row = find(&service, &id)?;
    Ok(Json(row.to_json(&files_base(&service, &headers))))
}

async fn get_file(
    State(service): Shared,
    Path((id, k)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let row = find(&service, &id)?;
    let image = k
        .parse::<usize>()
        .ok()
        .and_then(|k| row.images.iter().find(|i| i.index == k))
        .ok_or_else(|| ApiError {
            param: Some("k".into()),
            ..ApiError::not_found(format!("Job {id} has no image {k}."))
        })?;
    let bytes = tokio::fs::read(&image.path)
        .await
        .map_err(|e| ApiError::not_found(format!("Image {k} of job {id} cannot be read: {e}")))?;
    Ok((
        [(header::CONTENT_TYPE, files::content_type(&image.format))],
        bytes,
    )
        .into_response())
}
