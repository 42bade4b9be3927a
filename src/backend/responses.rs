//! One attempt against the Responses backend (SPEC §10.1, §11): send the request, then either
//! stream events to the saver or read one JSON response, and decide how the attempt ended.

use futures::StreamExt;
use reqwest::Client;
use serde_json::Value;

use super::cookies::CookieJar;
use super::request::{responses_body, responses_headers, RequestIdentity};
use super::sse;
use super::stream::{CollectedCalls, EventProcessor};
use super::{http_error, post_json};
use crate::foundation::error::{Error, Result};
use crate::foundation::events::Reporter;
use crate::foundation::http::transport_message;
use crate::foundation::job::SavedImage;
use crate::output::naming::OutputPlan;
use crate::output::saver::{self, StreamingSaver};

/// Everything an attempt produced, kept outside the attempt's future so a timeout can still
/// report the images saved before it fired.
pub struct AttemptState {
    pub request_id: String,
    pub session_id: String,
    pub processor: EventProcessor,
    pub saver: StreamingSaver,
    /// Images of a `--no-stream` response, saved at the end.
    pub saved_at_end: Vec<SavedImage>,
}

impl AttemptState {
    pub fn new(plan: OutputPlan, progress: Reporter) -> Self {
        AttemptState {
            request_id: uuid::Uuid::new_v4().to_string(),
            session_id: uuid::Uuid::new_v4().to_string(),
            processor: EventProcessor::new(progress.clone()),
            saver: StreamingSaver::new(plan, progress),
            saved_at_end: Vec::new(),
        }
    }

    pub fn saved_count(&self) -> usize {
        self.saver.images().len() + self.saved_at_end.len()
    }

    pub fn into_images(self) -> Vec<SavedImage> {
        let mut images = self.saver.into_images();
        images.extend(self.saved_at_end);
        images
    }
}

pub struct ResponsesRequest<'a> {
    pub client: &'a Client,
    pub endpoint: &'a str,
    pub identity: &'a RequestIdentity,
    pub model: &'a str,
    pub content: &'a [Value],
    /// The `image_generation` tool object, controls and mask included.
    pub tool: &'a Value,
    pub stream: bool,
    pub plan: &'a OutputPlan,
    pub progress: Reporter,
    /// Debug builds: block on this SSE event type (see `block_for_test`).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub test_block_on_event: Option<&'a str>,
}

/// Run one attempt to its end. On success every image is on disk and recorded in `state`.
/// `jar` holds the run's ChatGPT Cloudflare cookies (SPEC §10.3).
pub async fn run(
    req: &ResponsesRequest<'_>,
    state: &mut AttemptState,
    jar: &mut CookieJar,
) -> Result<()> {
    let body = responses_body(
        req.model,
        req.content,
        &state.request_id,
        req.stream,
        req.tool.clone(),
    );
    let body =
        serde_json::to_vec(&body).map_err(|e| Error::Io(format!("Cannot encode request: {e}")))?;
    let headers = responses_headers(req.identity, &state.request_id, &state.session_id);
    let response = post_json(req.client, req.endpoint, headers, body, jar, &req.progress).await?;
    if !response.status().is_success() {
        return Err(http_error(response).await);
    }

    if !req.stream {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::Transport(transport_message(&e)))?;
        let mut collected = CollectedCalls::default();
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(payload) => state.processor.on_payload(payload, &mut collected)?,
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                state.processor.on_sse("message", text, &mut collected)?;
            }
        }
        if collected.calls.is_empty() {
            return Err(state.processor.no_image_error());
        }
        state.saved_at_end = crate::foundation::blocking::run(|| {
            saver::save_all(req.plan, collected.calls, &req.progress)
        })?;
        return Ok(());
    }

    let mut events = sse::events_spilling_to(response.bytes_stream(), req.plan.spill_target());
    while let Some(item) = events.next().await {
        match item {
            Ok(event) => {
                #[cfg(debug_assertions)]
                block_for_test(req.test_block_on_event, &event.event);
                // Decoding, hashing and writing a large image is blocking work.
                crate::foundation::blocking::run(|| {
                    state.processor.on_event(event, &mut state.saver)
                })?;
                // `response.completed` ends the turn, as in codex-rs: whatever the connection does
                // afterwards (a trailing `[DONE]`, a reset) cannot undo saved, completed images.
                if state.processor.saw("response.completed") {
                    break;
                }
            }
            Err(err) => {
                let message = match err {
                    sse::SseError::Transport(e) => transport_message(&e),
                    other => other.to_string(),
                };
                return Err(if state.saved_count() > 0 {
                    Error::Stream(message)
                } else {
                    Error::Transport(message)
                });
            }
        }
    }
    if state.saved_count() == 0 {
        return Err(state.processor.no_image_error());
    }
    if !state.processor.saw("response.completed") {
        return Err(Error::Stream(
            "stream closed before response.completed".to_string(),
        ));
    }
    Ok(())
}

/// Test-only hook (debug builds): when env `CODEX_IMAGEN_TEST_BLOCK_ON_EVENT` (read once, by the
/// engine) names this SSE event type, block the thread for 60 s. That stalls the job's task so
/// its own timer cannot fire, which is the one way to prove the CLI's hard watchdog (SPEC §13)
/// from a test: a server alone cannot, because aborting a future always settles.
#[cfg(debug_assertions)]
fn block_for_test(block_on: Option<&str>, event_type: &str) {
    if block_on == Some(event_type) {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}
