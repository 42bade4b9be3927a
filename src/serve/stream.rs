//! `stream: true`: the answer is `text/event-stream` in OpenAI's shape, one
//! `image_generation.partial_image` (or `image_edit.partial_image`) event per preview, one
//! `…completed` event per final image as it is saved, then `data: [DONE]`. A job that fails
//! ends with an `error` event before `[DONE]`.
//!
//! The events come from the job's live channel, subscribed at admission, so nothing the job
//! reports can be missed. If the client goes away the job goes on: it is a job like any other.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::openai::{ApiError, ImageRequest};
use super::service::{Live, Service};
use super::store::ImageRecord;

/// The response header naming a streamed job's id.
const JOB_HEADER: header::HeaderName = header::HeaderName::from_static("x-codex-imagen-job");

fn frame(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// `size`, `quality`, `background`, `output_format` of an event, from what came back when it
/// is known and from the request otherwise.
pub(crate) fn describe(request: &ImageRequest, image: Option<&ImageRecord>, alpha: bool) -> Value {
    let size = match image.and_then(|i| Some((i.width?, i.height?))) {
        Some((w, h)) => format!("{w}x{h}"),
        None => request.size.clone().unwrap_or_else(|| "auto".into()),
    };
    let format = image
        .map(|i| i.format.clone())
        .or_else(|| request.output_format.clone())
        .unwrap_or_else(|| "png".into());
    let background = match image {
        Some(_) if alpha => "transparent".to_string(),
        Some(_) => "opaque".to_string(),
        None => request.background.clone().unwrap_or_else(|| "auto".into()),
    };
    json!({
        "size": size,
        "quality": request.quality.clone().unwrap_or_else(|| "auto".into()),
        "background": background,
        "output_format": format,
    })
}

pub(crate) fn response(
    service: Arc<Service>,
    id: String,
    mut live: broadcast::Receiver<Live>,
    request: ImageRequest,
) -> Response {
    let prefix = if request.operation == "edit" {
        "image_edit"
    } else {
        "image_generation"
    };
    // The job's id, so a client of the stream (the studio's Cancel) can `DELETE /v1/jobs/{id}`.
    let job_header = axum::http::HeaderValue::from_str(&id)
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static(""));
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        let mut partials: HashMap<usize, usize> = HashMap::new();
        loop {
            let event = match live.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let bytes = match event {
                Live::Partial { image, b64 } => {
                    let count = partials.entry(image).or_default();
                    let index = *count;
                    *count += 1;
                    let mut data = describe(&request, None, false);
                    data["type"] = json!(format!("{prefix}.partial_image"));
                    data["b64_json"] = json!(b64.as_str());
                    data["created_at"] = json!(chrono::Utc::now().timestamp());
                    data["partial_image_index"] = json!(index);
                    frame(&format!("{prefix}.partial_image"), &data)
                }
                Live::Saved(image) => {
                    let Ok(bytes) = tokio::fs::read(&image.path).await else {
                        continue;
                    };
                    let alpha = super::files::bytes_have_alpha(&bytes);
                    let mut data = describe(&request, Some(&image), alpha);
                    data["type"] = json!(format!("{prefix}.completed"));
                    data["b64_json"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(&bytes));
                    data["created_at"] = json!(chrono::Utc::now().timestamp());
                    frame(&format!("{prefix}.completed"), &data)
                }
                Live::Done => break,
            };
            if tx.send(bytes).await.is_err() {
                return;
            }
        }
        if let Ok(Some(row)) = service.store.get(&id) {
            if let Some(error) = row.error.as_ref().filter(|_| row.status != "completed") {
                let api = ApiError::from(error);
                let mut body = api.body();
                body["type"] = json!("error");
                let _ = tx.send(frame("error", &body)).await;
            }
        }
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<Bytes, Infallible>(bytes), rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        [(JOB_HEADER, job_header)],
        Body::from_stream(stream),
    )
        .into_response()
}
