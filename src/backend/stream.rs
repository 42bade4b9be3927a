//! What the client does with each Responses payload (SPEC §11): record its type, print
//! progress, collect backend errors, and hand every image call to the sink that saves it —
//! before the next event is read.

use serde_json::Value;

use super::calls::{self, CallTracker};
use super::errors;
use super::sse;
use crate::foundation::error::BackendError;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::Reporter;
use crate::output::saver::ImageData;
use crate::output::saver::{CallState, StreamingSaver};

/// Receives each merged image call; `result` is the image data the current event carried.
pub trait CallSink {
    fn on_call(&mut self, key: &str, state: &CallState, result: Option<ImageData>) -> Result<()>;
}

/// Streamed images are saved by the output layer's saver as their calls complete.
impl CallSink for StreamingSaver {
    fn on_call(&mut self, key: &str, state: &CallState, result: Option<ImageData>) -> Result<()> {
        StreamingSaver::on_call(self, key, state, result)
    }
}

/// `type`, else `event`, else `item.type`, else `object` (JavaScript `typeof` for non-objects).
pub fn payload_type(payload: &Value) -> String {
    match payload {
        Value::Object(obj) => ["type", "event"]
            .iter()
            .find_map(|k| obj.get(*k).and_then(Value::as_str))
            .or_else(|| {
                obj.get("item")
                    .and_then(|i| i.get("type"))
                    .and_then(Value::as_str)
            })
            .unwrap_or("object")
            .to_string(),
        Value::Array(_) | Value::Null => "object".to_string(),
        Value::String(_) => "string".to_string(),
        Value::Number(_) => "number".to_string(),
        Value::Bool(_) => "boolean".to_string(),
    }
}

fn progress_line(payload_type: &str) -> Option<&'static str> {
    Some(match payload_type {
        "response.created" => "codex-imagen: request accepted",
        "response.image_generation_call.in_progress" => "codex-imagen: image generation started",
        "response.image_generation_call.generating" => "codex-imagen: image generation running",
        "response.image_generation_call.partial_image" => "codex-imagen: image bytes received",
        "response.completed" => "codex-imagen: response completed",
        _ => return None,
    })
}

/// State of one attempt's event processing.
#[derive(Debug, Default)]
pub struct EventProcessor {
    progress: Reporter,
    /// Every payload type once, in first-seen order.
    pub seen_event_types: Vec<String>,
    pub backend_errors: Vec<BackendError>,
    tracker: CallTracker,
    /// What the model said in words (`output_text`), for a response that has no image.
    answer: String,
}

impl EventProcessor {
    pub fn new(progress: Reporter) -> Self {
        EventProcessor {
            progress,
            ..Default::default()
        }
    }

    pub fn saw(&self, event_type: &str) -> bool {
        self.seen_event_types.iter().any(|t| t == event_type)
    }

    fn record_type(&mut self, event_type: String) {
        if !self.saw(&event_type) {
            if let Some(line) = progress_line(&event_type) {
                self.progress.info(line);
            }
            self.seen_event_types.push(event_type);
        }
    }

    /// One event of the stream.
    pub fn on_event(&mut self, mut event: sse::Event, sink: &mut dyn CallSink) -> Result<()> {
        if event.is_empty_or_done() {
            return Ok(());
        }
        match event.take_json() {
            Ok(payload) => {
                let mut lifted = event.into_lifted();
                self.on_lifted_payload(payload, &mut lifted, sink)
            }
            Err(_) => {
                self.record_type(format!("unparsed:{}", event.event));
                Ok(())
            }
        }
    }

    /// One SSE event given as text: `event_type` is its `event:` field (`message` when absent).
    pub fn on_sse(
        &mut self,
        event_type: &str,
        data: String,
        sink: &mut dyn CallSink,
    ) -> Result<()> {
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let payload = match serde_json::from_str::<Value>(&data) {
            Ok(payload) => payload,
            Err(_) => {
                self.record_type(format!("unparsed:{event_type}"));
                return Ok(());
            }
        };
        drop(data);
        self.on_payload(payload, sink)
    }

    /// One parsed payload (a stream event, or the whole `--no-stream` response).
    pub fn on_payload(&mut self, payload: Value, sink: &mut dyn CallSink) -> Result<()> {
        self.on_lifted_payload(payload, &mut sse::Lifted::default(), sink)
    }

    /// [`Self::on_payload`] for an event whose images may be decoded to disk already.
    fn on_lifted_payload(
        &mut self,
        payload: Value,
        lifted: &mut sse::Lifted,
        sink: &mut dyn CallSink,
    ) -> Result<()> {
        let kind = payload_type(&payload);
        self.progress.verbose(&format!("event: {kind}"));
        self.record_type(kind.clone());
        self.backend_errors
            .extend(errors::from_payload(&payload, &kind));
        self.collect_answer(&payload, &kind);
        for update in calls::extract(payload, &kind, lifted) {
            let (key, state) = self.tracker.merge(&update);
            sink.on_call(&key, &state, update.result)?;
        }
        Ok(())
    }

    /// Keep the model's words: streamed deltas, a finished text, or the message items of a
    /// finished response (streamed `response.completed`, or the whole `--no-stream` object).
    fn collect_answer(&mut self, payload: &Value, kind: &str) {
        let text_of = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        match kind {
            "response.output_text.delta" => {
                if let Some(delta) = text_of(payload.get("delta")) {
                    self.answer.push_str(&delta);
                }
            }
            "response.output_text.done" => {
                if let Some(text) = text_of(payload.get("text")) {
                    self.answer = text;
                }
            }
            _ if self.answer.is_empty() => {
                let items: Vec<&Value> = match kind {
                    "response.output_item.done" => payload.get("item").into_iter().collect(),
                    _ => payload
                        .get("response")
                        .unwrap_or(payload)
                        .get("output")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().collect())
                        .unwrap_or_default(),
                };
                for item in items {
                    if item.get("type").and_then(Value::as_str) != Some("message") {
                        continue;
                    }
                    for part in item
                        .get("content")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if part.get("type").and_then(Value::as_str) == Some("output_text") {
                            if let Some(text) = text_of(part.get("text")) {
                                self.answer.push_str(&text);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The error for a response that produced no image (SPEC §11). When the model answered in
    /// words instead (a refusal, a question), those words are the message: that is what the
    /// user needs to read, and asking again would only repeat them.
    pub fn no_image_error(&self) -> Error {
        let answer = self.answer.trim();
        if !answer.is_empty() && self.backend_errors.is_empty() {
            let cut: String = answer.chars().take(1000).collect();
            let seen = self.seen_event_types.join(", ");
            return Error::Refused {
                message: format!(
                    "The model answered without an image: {cut}\nSeen event types: {seen}"
                ),
                seen_event_types: self.seen_event_types.clone(),
            };
        }
        let seen = if self.seen_event_types.is_empty() {
            "(none)".to_string()
        } else {
            self.seen_event_types.join(", ")
        };
        let mut message = format!(
            "No completed image_generation_call with result found. Seen event types: {seen}"
        );
        if !self.backend_errors.is_empty() {
            message.push_str("\nBackend error details:\n");
            message.push_str(&errors::format(&self.backend_errors));
        }
        Error::GenerationFailed {
            message,
            seen_event_types: self.seen_event_types.clone(),
            backend_errors: self.backend_errors.clone(),
        }
    }
}

/// Collects calls with results for saving at the end (`--no-stream`).
#[derive(Debug, Default)]
pub struct CollectedCalls {
    pub calls: Vec<(String, CallState, ImageData)>,
}

impl CallSink for CollectedCalls {
    fn on_call(&mut self, key: &str, state: &CallState, result: Option<ImageData>) -> Result<()> {
        match self.calls.iter_mut().find(|(k, _, _)| k == key) {
            Some(entry) => {
                entry.1 = state.clone();
                if let Some(r) = result {
                    entry.2 = r;
                }
            }
            None => {
                if let Some(r) = result {
                    self.calls.push((key.to_string(), state.clone(), r));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_types_follow_the_fallback_chain() {
        assert_eq!(payload_type(&json!({"type": "a", "event": "b"})), "a");
        assert_eq!(payload_type(&json!({"event": "b"})), "b");
        assert_eq!(payload_type(&json!({"item": {"type": "c"}})), "c");
        assert_eq!(payload_type(&json!({})), "object");
        assert_eq!(payload_type(&json!(3)), "number");
    }

    #[test]
    fn streamed_events_hand_whole_images_to_the_sink() {
        use futures::StreamExt;
        // Long enough to be lifted out of the event while it streams (sse::lift).
        let b64 = "QUJD".repeat(50_000);
        let body = format!(
            "event: x\ndata: {{\"type\":\"response.output_item.done\",\"item\":{{\"type\":\
             \"image_generation_call\",\"id\":\"ig_1\",\"result\":\"{b64}\"}}}}\n\n\
             data: [DONE]\n\ndata: not json\n\n"
        );
        let chunks: Vec<Result<bytes::Bytes, std::convert::Infallible>> = body
            .as_bytes()
            .chunks(16 * 1024)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let mut p = EventProcessor::new(Reporter::default());
        let mut sink = CollectedCalls::default();
        futures::executor::block_on(async {
            let mut events = sse::events(futures::stream::iter(chunks));
            while let Some(event) = events.next().await {
                p.on_event(event.unwrap(), &mut sink).unwrap();
            }
        });
        assert_eq!(sink.calls.len(), 1);
        assert_eq!(sink.calls[0].0, "ig_1");
        assert!(sink.calls[0].2.inline() == Some(b64.as_str()));
        assert_eq!(
            p.seen_event_types,
            vec!["response.output_item.done", "unparsed:message"]
        );
    }

    #[test]
    fn unparsed_and_done_events_are_recorded_or_skipped() {
        let mut p = EventProcessor::new(Reporter::default());
        let mut sink = CollectedCalls::default();
        p.on_sse("message", "[DONE]".into(), &mut sink).unwrap();
        p.on_sse("keepalive", "not json".into(), &mut sink).unwrap();
        p.on_sse(
            "message",
            "{\"type\":\"response.created\"}".into(),
            &mut sink,
        )
        .unwrap();
        assert_eq!(
            p.seen_event_types,
            vec!["unparsed:keepalive", "response.created"]
        );
        let err = p.no_image_error().to_string();
        assert_eq!(err, "No completed image_generation_call with result found. Seen event types: unparsed:keepalive, response.created");
    }
}
