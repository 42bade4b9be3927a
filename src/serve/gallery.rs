//! The studio's JSON API over the history (`<data dir>/history.sqlite`, written by every
//! front-end): list and search, one image with its parent and children, its file and its
//! thumbnail, delete (files and record), and the page's status (account, credentials, quota).
//!
//! These routes sit behind the service's token like every other `/v1` route; the page sends
//! `Authorization: Bearer` from its own storage. Images go to the page through `fetch` (so the
//! token travels in a header, never a URL) and are shown from `blob:` URLs.
//!
//! The quota comes from `wham/usage` at most once a minute (cached here), and only when
//! credentials were found: an open page polls the status, and must not cost a request each time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::openai::ApiError;
use super::service::Service;
use super::{files, thumbs};
use crate::foundation::events::NullSink;
use crate::foundation::sync::lock;
use crate::output::history::{self, History, Row};

/// How long a quota answer is reused.
const USAGE_TTL: Duration = Duration::from_secs(60);

/// The gallery's state beside the service's.
pub(crate) struct Gallery {
    history: History,
    /// Held across the look-up, so callers at the same moment share one request.
    usage: tokio::sync::Mutex<Option<(Instant, Result<Value, String>)>>,
}

type Shared = State<Arc<Service>>;
type Ext = Extension<Arc<Gallery>>;

/// The gallery's routes (to be merged before the token check).
pub(crate) fn api(data_dir: PathBuf) -> Router<Arc<Service>> {
    let gallery = Arc::new(Gallery {
        history: History::at(data_dir.join(history::FILE_NAME)),
        usage: tokio::sync::Mutex::new(None),
    });
    Router::new()
        .route("/v1/history", get(list))
        .route("/v1/history/{id}", get(details).delete(remove))
        .route("/v1/history/{id}/image", get(image))
        .route("/v1/history/{id}/thumb", get(thumb))
        .route("/v1/studio/status", get(status))
        .layer(Extension(gallery))
}

fn server_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        e.to_string(),
    )
}

/// `YYYY-MM-DD` (UTC) as milliseconds at the start of that day.
fn day_ms(param: &str, text: &str) -> Result<i64, ApiError> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| {
            ApiError::invalid(
                param,
                format!("'{param}' must be a date YYYY-MM-DD (got {text:?})."),
            )
        })
}

async fn list(
    Extension(gallery): Ext,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let mut q = history::Query {
        limit: 60,
        ..history::Query::default()
    };
    for (key, value) in &query {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "q" => q.text = Some(value.to_string()),
            "format" => {
                if !["png", "jpeg", "webp"].contains(&value) {
                    return Err(ApiError::invalid(
                        "format",
                        "'format' must be one of: png, jpeg, webp.",
                    ));
                }
                q.format = Some(value.to_string());
            }
            "since" => q.since_ms = Some(day_ms("since", value)?),
            // Inclusive: the whole `until` day.
            "until" => q.until_ms = Some(day_ms("until", value)? + 86_400_000),
            "before" => {
                q.before =
                    Some(value.parse().map_err(|_| {
                        ApiError::invalid("before", "'before' must be an image id.")
                    })?)
            }
            "limit" => {
                q.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=200).contains(l))
                    .ok_or_else(|| {
                        ApiError::invalid("limit", "'limit' must be an integer from 1 to 200.")
                    })?
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!("Unrecognized request argument supplied: {other}"),
                ))
            }
        }
    }
    let limit = q.limit;
    q.limit += 1;
    let rows =
        crate::foundation::blocking::run(|| gallery.history.list(&q)).map_err(server_error)?;
    let has_more = rows.len() > limit;
    let data: Vec<Value> = rows.iter().take(limit).map(Row::to_json).collect();
    let next = rows
        .get(..limit.min(rows.len()))
        .and_then(|r| r.last())
        .map(|r| r.id);
    Ok(Json(
        json!({"object": "list", "data": data, "has_more": has_more, "next": next}),
    ))
}

fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| ApiError {
        param: Some("id".into()),
        ..ApiError::not_found(format!("No image with id '{text}'."))
    })
}

fn find(gallery: &Gallery, id: &str) -> Result<Row, ApiError> {
    let id = parse_id(id)?;
    match gallery.history.get(id) {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(ApiError {
            param: Some("id".into()),
            ..ApiError::not_found(format!("No image with id '{id}'."))
        }),
        Err(e) => Err(server_error(e)),
    }
}

async fn details(Extension(gallery): Ext, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let row = find(&gallery, &id)?;
    let parent = match row.parent {
        Some(p) => gallery.history.get(p).map_err(server_error)?,
        None => None,
    };
    let children = gallery.history.children(row.id).map_err(server_error)?;
    Ok(Json(json!({
        "image": row.to_json(),
        "parent": parent.as_ref().map(Row::to_json),
        "children": children.iter().map(Row::to_json).collect::<Vec<_>>(),
    })))
}

/// Forget an image: its file, its sidecar, its thumbnails, then its row. A file already gone
/// (moved or deleted by hand) is not an error: forgetting it is the point.
async fn remove(Extension(gallery): Ext, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let row = find(&gallery, &id)?;
    let path = PathBuf::from(&row.path);
    let mut files = vec![path.clone(), PathBuf::from(format!("{}.json", row.path))];
    files.extend(thumbs::cached_files(&path, &row.sha256));
    let mut removed = 0;
    for file in files {
        match std::fs::remove_file(&file) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(server_error(format!(
                    "Cannot delete {}: {e}",
                    file.display()
                )))
            }
        }
    }
    gallery.history.forget(row.id).map_err(server_error)?;
    Ok(Json(
        json!({"id": row.id, "deleted": true, "files_removed": removed}),
    ))
}

async fn image(
    Extension(gallery): Ext,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let row = find(&gallery, &id)?;
    let bytes = tokio::fs::read(&row.path).await.map_err(|e| {
        ApiError::not_found(format!("Image {} is missing ({}): {e}", row.id, row.path))
            .code("image_missing")
    })?;
    let format = row.format.clone().unwrap_or_else(|| "png".into());
    let mut response = (
        [
            (header::CONTENT_TYPE, files::content_type(&format)),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        bytes,
    )
        .into_response();
    if query.contains_key("download") {
        let name = std::path::Path::new(&row.path)
            .file_name()
            .map(|n| n.to_string_lossy().replace(['"', '\\', '\r', '\n'], "_"))
            .unwrap_or_else(|| format!("image-{}.{format}", row.id));
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

async fn thumb(Extension(gallery): Ext, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&gallery, &id)?;
    let made = thumbs::thumbnail(PathBuf::from(&row.path), row.sha256.clone())
        .await
        .map_err(|e| {
            ApiError::not_found(format!("Image {} has no thumbnail: {e}", row.id))
                .code("image_missing")
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, made.mime),
            (header::CACHE_CONTROL, "private, max-age=86400"),
            (
                header::HeaderName::from_static("x-thumbnail"),
                if made.cached { "cached" } else { "made" },
            ),
        ],
        made.bytes,
    )
        .into_response())
}

/// What the page shows in its header: the account, whether credentials were found (and the
/// command that signs in when not), the quota, and whether a token is needed.
async fn status(State(service): Shared, Extension(gallery): Ext) -> Json<Value> {
    let auth = service.auth_health().await;
    let (account, credentials) = match &auth {
        Ok(report) => (
            json!({
                "email": report["email"],
                "account_id": report["account_id"],
                "profile_id": report["profile_id"],
                "auth_format": report["auth_format"],
            }),
            json!({"found": true}),
        ),
        Err(message) => (
            Value::Null,
            json!({
                "found": false,
                "message": message,
                "sign_in": "codex-imagen --login",
            }),
        ),
    };
    let usage = if auth.is_ok() {
        usage(&service, &gallery).await
    } else {
        Err("no credentials".to_string())
    };
    let (usage, usage_error) = match usage {
        Ok(v) => (v, Value::Null),
        Err(e) => (Value::Null, json!(e)),
    };
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "account": account,
        "credentials": credentials,
        "usage": usage,
        "usage_error": usage_error,
        "jobs": {"queued": service.queue.len(), "running": lock(&service.running).len()},
    }))
}

async fn usage(service: &Service, gallery: &Gallery) -> Result<Value, String> {
    let mut cached = gallery.usage.lock().await;
    if let Some((at, value)) = cached.as_ref() {
        if at.elapsed() < USAGE_TTL {
            return value.clone();
        }
    }
    let value = service
        .engine
        .usage(Arc::new(NullSink))
        .await
        .map_err(|e| e.to_string());
    *cached = Some((Instant::now(), value.clone()));
    value
}
