//! How an error names the JSON type a value has ("must be a number, not a string"): batch
//! lines and MCP requests say it the same way.

use serde_json::Value;

/// The value's JSON type, with its article.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
