//! A tool call's arguments checked against the tool's own input schema, before serde reads them.
//!
//! The schema an agent reads in `tools/list` is the rule: an argument it does not list is refused
//! (serde's `flatten` cannot deny unknown fields, and an ignored `qualty` would still be billed),
//! and every message speaks the schema's terms (`count must be an integer from 1 to 4`) instead
//! of serde's Rust types (`invalid type: string "two", expected i64`). Only the keywords our
//! schemas use are understood: `type` (one name or a list with `null`), `enum`, `minimum`,
//! `maximum`, `maxLength`, `minItems`, `items` and `required`.

use std::sync::Arc;

use rmcp::handler::server::common::schema_for_type;
use rmcp::model::JsonObject;
use rmcp::schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::frontend::suggest;

/// Input schema from the argument type, as rmcp would derive it for `Parameters<T>`
/// (minus the Rust type name as title).
pub(super) fn input_schema<T: JsonSchema + std::any::Any>() -> Arc<JsonObject> {
    let mut schema = schema_for_type::<T>().as_ref().clone();
    schema.remove("title");
    schema.remove("description");
    Arc::new(schema)
}

/// A tool's arguments as `T`, or the message of an invalid-params error.
///
/// The tools take raw `JsonObject` arguments instead of rmcp's `Parameters<T>`, because rmcp
/// turns `Parameters` deserialization failures into `isError` tool results, and bad arguments
/// are meant to be invalid-params protocol errors that name the field. The schema is checked
/// first, so serde's own messages below are only a fallback; `Shared` is the `#[serde(flatten)]`
/// part of `T`, whose failures serde reports without a path.
pub(super) fn parse<T, Shared>(args: JsonObject) -> Result<T, String>
where
    T: DeserializeOwned + JsonSchema + std::any::Any,
    Shared: DeserializeOwned,
{
    check(&args, &input_schema::<T>())?;
    let error = match serde_path_to_error::deserialize(Value::Object(args.clone())) {
        Ok(parsed) => return Ok(parsed),
        Err(error) => error,
    };
    let error = if error.path().to_string() == "." {
        match serde_path_to_error::deserialize::<_, Shared>(Value::Object(args)) {
            Err(inner) if inner.path().to_string() != "." => inner,
            _ => error,
        }
    } else {
        error
    };
    let path = error.path().to_string();
    let inner = error.into_inner();
    Err(if path == "." {
        // Missing fields fail at the root; serde's text already names them.
        format!("invalid arguments: {inner}")
    } else {
        format!("invalid `{path}`: {inner}")
    })
}

/// `Err` names every unknown argument, or the first argument that breaks its schema.
pub(super) fn check(args: &JsonObject, schema: &JsonObject) -> Result<(), String> {
    let empty = JsonObject::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let unknown: Vec<&String> = args
        .keys()
        .filter(|key| !properties.contains_key(*key))
        .collect();
    if !unknown.is_empty() {
        return Err(unknown_message(&unknown, properties));
    }
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if args.get(required).is_none_or(Value::is_null) {
            return Err(format!("`{required}` is required"));
        }
    }
    for (key, value) in args {
        if let Some(rule) = properties.get(key).and_then(Value::as_object) {
            check_value(key, value, rule)?;
        }
    }
    Ok(())
}

fn unknown_message(unknown: &[&String], properties: &JsonObject) -> String {
    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
    let listed: Vec<String> = unknown
        .iter()
        .map(|key| match suggest::closest(key, names.iter().copied()) {
            Some(near) => format!("`{key}` (did you mean `{near}`?)"),
            None => format!("`{key}`"),
        })
        .collect();
    let noun = if unknown.len() == 1 {
        "unknown argument"
    } else {
        "unknown arguments"
    };
    let known: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!(
        "{noun} {}; the arguments are {}",
        listed.join(", "),
        known.join(", ")
    )
}

fn types(rule: &JsonObject) -> Vec<&str> {
    match rule.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn check_value(path: &str, value: &Value, rule: &JsonObject) -> Result<(), String> {
    let allowed = types(rule);
    if value.is_null() {
        if allowed.is_empty() || allowed.contains(&"null") {
            return Ok(());
        }
        return Err(must_be(path, rule, value));
    }
    let fits = allowed.iter().any(|t| match *t {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    });
    if !allowed.is_empty() && !fits {
        return Err(must_be(path, rule, value));
    }
    if let Some(choices) = rule.get("enum").and_then(Value::as_array) {
        if !choices.contains(value) {
            return Err(must_be(path, rule, value));
        }
    }
    if let Some(n) = value.as_i64() {
        let below = rule
            .get("minimum")
            .and_then(Value::as_i64)
            .is_some_and(|min| n < min);
        let above = rule
            .get("maximum")
            .and_then(Value::as_i64)
            .is_some_and(|max| n > max);
        if below || above {
            return Err(must_be(path, rule, value));
        }
    } else if value.is_u64() && rule.get("maximum").is_some() {
        return Err(must_be(path, rule, value));
    }
    if let (Some(text), Some(max)) = (
        value.as_str(),
        rule.get("maxLength").and_then(Value::as_u64),
    ) {
        let chars = text.chars().count();
        if chars as u64 > max {
            return Err(format!(
                "`{path}` must be at most {max} characters, got {chars}"
            ));
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(min) = rule.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                return Err(format!(
                    "`{path}` must list at least {min} {}, got none",
                    if min == 1 { "item" } else { "items" }
                ));
            }
        }
        if let Some(item_rule) = rule.get("items").and_then(Value::as_object) {
            for (i, item) in items.iter().enumerate() {
                check_value(&format!("{path}[{i}]"), item, item_rule)?;
            }
        }
    }
    Ok(())
}

/// "`count` must be an integer from 1 to 4, got "two"".
fn must_be(path: &str, rule: &JsonObject, value: &Value) -> String {
    format!("`{path}` must be {}, got {}", expected(rule), shown(value))
}

fn expected(rule: &JsonObject) -> String {
    if let Some(choices) = rule.get("enum").and_then(Value::as_array) {
        let listed: Vec<String> = choices
            .iter()
            .filter(|c| !c.is_null())
            .map(Value::to_string)
            .collect();
        return format!("one of {}", listed.join(", "));
    }
    let allowed = types(rule);
    let main = allowed
        .iter()
        .find(|t| **t != "null")
        .copied()
        .unwrap_or("");
    match main {
        "integer" => {
            let min = rule.get("minimum").and_then(Value::as_i64);
            let max = rule.get("maximum").and_then(Value::as_i64);
            match (min, max) {
                (Some(min), Some(max)) => format!("an integer from {min} to {max}"),
                (Some(min), None) => format!("an integer of at least {min}"),
                (None, Some(max)) => format!("an integer of at most {max}"),
                (None, None) => "an integer".to_string(),
            }
        }
        "array" => {
            let items = rule
                .get("items")
                .and_then(Value::as_object)
                .map(types)
                .unwrap_or_default();
            if items.contains(&"string") {
                "an array of strings".to_string()
            } else {
                "an array".to_string()
            }
        }
        "string" => "a string".to_string(),
        "number" => "a number".to_string(),
        "boolean" => "true or false".to_string(),
        "object" => "an object".to_string(),
        _ => "a valid value".to_string(),
    }
}

/// The value as JSON, cut short: a caller's 8 MB string is not echoed back.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> JsonObject {
        let Value::Object(schema) = json!({
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "maxLength": 10},
                "count": {"type": ["integer", "null"], "minimum": 1, "maximum": 4},
                "quality": {"type": ["string", "null"]},
                "images": {"type": ["array", "null"], "items": {"type": "string"}},
                "return_image": {"type": ["string", "null"], "enum": ["thumbnail", "full", "none", null]}
            },
            "required": ["prompt"]
        }) else {
            unreachable!()
        };
        schema
    }

    fn err(args: Value) -> String {
        let Value::Object(args) = args else {
            unreachable!()
        };
        check(&args, &schema()).unwrap_err()
    }

    fn ok(args: Value) {
        let Value::Object(args) = args else {
            unreachable!()
        };
        check(&args, &schema()).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn unknown_arguments_are_all_named_with_a_guess() {
        let message = err(json!({"prompt": "cat", "qualty": "high", "colour": "red"}));
        assert!(
            message.starts_with(
                "unknown arguments `qualty` (did you mean `quality`?), `colour`; the arguments are `prompt`"
            ),
            "{message}"
        );
    }

    #[test]
    fn messages_use_the_schema_terms() {
        assert_eq!(
            err(json!({"prompt": "cat", "count": "two"})),
            "`count` must be an integer from 1 to 4, got \"two\""
        );
        assert_eq!(
            err(json!({"prompt": "cat", "count": 9})),
            "`count` must be an integer from 1 to 4, got 9"
        );
        assert_eq!(
            err(json!({"prompt": "cat", "count": 1.5})),
            "`count` must be an integer from 1 to 4, got 1.5"
        );
        assert_eq!(
            err(json!({"prompt": "cat", "count": u64::MAX})),
            format!("`count` must be an integer from 1 to 4, got {}", u64::MAX)
        );
        assert_eq!(
            err(json!({"prompt": "cat", "images": "a.png"})),
            "`images` must be an array of strings, got \"a.png\""
        );
        assert_eq!(
            err(json!({"prompt": "cat", "images": ["a.png", 3]})),
            "`images[1]` must be a string, got 3"
        );
        assert_eq!(
            err(json!({"prompt": "cat", "return_image": "huge"})),
            "`return_image` must be one of \"thumbnail\", \"full\", \"none\", got \"huge\""
        );
        assert_eq!(err(json!({})), "`prompt` is required");
        assert_eq!(err(json!({"prompt": null})), "`prompt` is required");
        assert_eq!(
            err(json!({"prompt": "abcdefghijk"})),
            "`prompt` must be at most 10 characters, got 11"
        );
        assert_eq!(
            err(json!({"prompt": 5})),
            "`prompt` must be a string, got 5"
        );
    }

    #[test]
    fn good_arguments_and_nulls_pass() {
        ok(json!({"prompt": "cat", "count": 2, "quality": null, "return_image": null}));
        ok(json!({"prompt": "cat", "images": ["a.png"], "return_image": "full"}));
    }
}
