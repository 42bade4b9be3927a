//! Image calls inside backend payloads (SPEC §11): where they are found, and how the pieces of
//! one call that arrive over several events merge into one state.
//!
//! The `result` base64 text is moved out of the payload, never cloned: it can be tens of MB.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::sse::Lifted;
use crate::output::saver::CallState;
use crate::output::saver::ImageData;

/// One `image_generation_call` as found in a single payload.
#[derive(Debug, Default, PartialEq)]
pub struct CallUpdate {
    pub id: Option<String>,
    pub status: Option<String>,
    pub revised_prompt: Option<String>,
    pub partial: Option<bool>,
    pub result: Option<ImageData>,
}

/// Every image call in a payload, consuming it. `payload_type` decides the default `partial`;
/// `lifted` holds the images of the payload's event that were decoded to disk as it streamed.
pub fn extract(payload: Value, payload_type: &str, lifted: &mut Lifted) -> Vec<CallUpdate> {
    let finalish =
        payload_type == "response.output_item.done" || payload_type == "response.completed";
    let mut found: Vec<Map<String, Value>> = Vec::new();
    let partial_event = payload_type == "response.image_generation_call.partial_image";
    let mut partial_call = None;
    let mut payload = payload;
    if partial_event {
        if let Some(obj) = payload.as_object_mut() {
            if let Some(Value::String(b64)) = obj.remove("partial_image_b64") {
                if !b64.is_empty() {
                    partial_call = Some(CallUpdate {
                        id: obj
                            .get("item_id")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        status: Some("partial_image".to_string()),
                        revised_prompt: None,
                        partial: Some(true),
                        result: Some(lifted.claim(b64)),
                    });
                }
            }
        }
    }
    collect(payload, &mut found);
    let mut calls: Vec<CallUpdate> = found
        .into_iter()
        .map(|mut obj| CallUpdate {
            id: take_string(&mut obj, "id"),
            status: take_string(&mut obj, "status"),
            revised_prompt: take_string(&mut obj, "revised_prompt"),
            partial: obj
                .get("partial")
                .and_then(Value::as_bool)
                .or(Some(!finalish)),
            result: take_string(&mut obj, "result").map(|b64| lifted.claim(b64)),
        })
        .collect();
    calls.extend(partial_call);
    calls
}

fn take_string(obj: &mut Map<String, Value>, key: &str) -> Option<String> {
    match obj.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// Depth-first, parents before children, as the Node tool walked it.
fn collect(value: Value, found: &mut Vec<Map<String, Value>>) {
    match value {
        Value::Array(items) => items.into_iter().for_each(|v| collect(v, found)),
        Value::Object(mut obj) => {
            let is_call = obj.get("type").and_then(Value::as_str) == Some("image_generation_call");
            // Children first need to be detached so the call object can be moved out whole.
            let children: Vec<(String, Value)> = obj
                .iter_mut()
                .filter(|(k, v)| {
                    !(k.as_str() == "result" && v.is_string()) && (v.is_object() || v.is_array())
                })
                .map(|(k, v)| (k.clone(), v.take()))
                .collect();
            if is_call {
                found.push(obj);
            }
            for (_, child) in children {
                collect(child, found);
            }
        }
        _ => {}
    }
}

/// Calls keyed by id (`call-<n>` when absent), merged as events arrive.
#[derive(Debug, Default)]
pub struct CallTracker {
    states: HashMap<String, CallState>,
}

impl CallTracker {
    /// Merge an update; returns the key and the merged state.
    pub fn merge(&mut self, update: &CallUpdate) -> (String, CallState) {
        let key = update
            .id
            .clone()
            .unwrap_or_else(|| format!("call-{}", self.states.len() + 1));
        let previous = self.states.get(&key);
        let merged = merge_state(previous, update);
        self.states.insert(key.clone(), merged.clone());
        (key, merged)
    }
}

fn merge_state(previous: Option<&CallState>, next: &CallUpdate) -> CallState {
    let Some(prev) = previous else {
        return CallState {
            id: next.id.clone(),
            status: next.status.clone(),
            revised_prompt: next.revised_prompt.clone(),
            partial: next.partial,
            has_result: next.result.is_some(),
        };
    };
    let status = if prev.status.as_deref() == Some("completed") {
        prev.status.clone()
    } else {
        next.status.clone().or_else(|| prev.status.clone())
    };
    let partial = match (prev.partial, next.partial) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), _) | (_, Some(true)) => Some(true),
        _ => None,
    };
    CallState {
        id: next.id.clone().or_else(|| prev.id.clone()),
        status,
        revised_prompt: next
            .revised_prompt
            .clone()
            .or_else(|| prev.revised_prompt.clone()),
        partial,
        has_result: prev.has_result || next.result.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_calls_anywhere_and_defaults_partial_by_event() {
        let payload = json!({"type": "response.completed", "response": {"output": [
            {"type": "message"},
            {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "AAAA"},
            {"nested": [{"type": "image_generation_call", "id": "ig_2", "result": "BBBB", "partial": true}]}
        ]}});
        let calls = extract(payload, "response.completed", &mut Lifted::default());
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id.as_deref(), Some("ig_1"));
        assert_eq!(calls[0].partial, Some(false));
        assert_eq!(
            calls[0].result.as_ref().and_then(ImageData::inline),
            Some("AAAA")
        );
        assert_eq!(calls[1].partial, Some(true));
        let added = extract(
            json!({"item": {"type": "image_generation_call", "id": "x"}}),
            "response.output_item.added",
            &mut Lifted::default(),
        );
        assert_eq!(added[0].partial, Some(true));
    }

    #[test]
    fn partial_image_events_become_partial_calls() {
        let payload = json!({"type": "response.image_generation_call.partial_image",
            "item_id": "ig_1", "partial_image_b64": "AAAA", "partial_image_index": 0});
        let calls = extract(
            payload,
            "response.image_generation_call.partial_image",
            &mut Lifted::default(),
        );
        assert_eq!(
            calls,
            vec![CallUpdate {
                id: Some("ig_1".into()),
                status: Some("partial_image".into()),
                revised_prompt: None,
                partial: Some(true),
                result: Some(ImageData::Inline("AAAA".into())),
            }]
        );
    }

    #[test]
    fn merging_keeps_completed_results_and_prompts() {
        let mut tracker = CallTracker::default();
        let first = CallUpdate {
            id: Some("a".into()),
            status: Some("completed".into()),
            revised_prompt: Some("rp".into()),
            partial: Some(false),
            result: Some(ImageData::Inline("x".into())),
        };
        tracker.merge(&first);
        let later = CallUpdate {
            id: Some("a".into()),
            status: Some("generating".into()),
            revised_prompt: None,
            partial: Some(true),
            result: None,
        };
        let (key, state) = tracker.merge(&later);
        assert_eq!(key, "a");
        assert_eq!(state.status.as_deref(), Some("completed"));
        assert_eq!(state.revised_prompt.as_deref(), Some("rp"));
        assert_eq!(state.partial, Some(false));
        assert!(state.has_result);
        let (anon, _) = tracker.merge(&CallUpdate::default());
        assert_eq!(anon, "call-2");
    }
}
