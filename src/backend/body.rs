//! What the image controls put into each backend's request body: the Responses
//! `image_generation` tool object and the typed Images body, and where the mask goes. Parsing and
//! validating the values is `foundation/controls.rs`; only controls the user gave are sent, so
//! with none the default tool serialises exactly as before.

use serde_json::{Map, Value};

use crate::foundation::controls::{put_num, put_str, ImageControls};

impl ImageControls {
    /// Adds the controls to the Responses `image_generation` tool object. `output_format` is
    /// replaced in place (serde_json's preserve_order keeps its position), the rest is appended,
    /// so the default tool serialises exactly as before.
    pub(crate) fn apply_to_tool(&self, tool: &mut Map<String, Value>) {
        if let Some(format) = &self.format {
            tool.insert("output_format".into(), Value::String(format.clone()));
        }
        put_str(tool, "size", &self.size);
        put_str(tool, "quality", &self.quality);
        put_num(tool, "output_compression", self.compression);
        put_str(tool, "background", &self.background);
        put_str(tool, "model", &self.image_model);
        put_str(tool, "moderation", &self.moderation);
        put_num(tool, "partial_images", self.partial_images);
        put_str(tool, "action", &self.action);
        put_str(tool, "input_fidelity", &self.input_fidelity);
    }

    /// Adds the controls the typed Images endpoint understands. `partial_images`, `action` and
    /// `input_fidelity` are Responses-tool concepts and are not sent there.
    pub(crate) fn apply_to_images_body(&self, body: &mut Map<String, Value>) {
        put_str(body, "size", &self.size);
        put_str(body, "quality", &self.quality);
        put_str(body, "background", &self.background);
        put_str(body, "output_format", &self.format);
        put_num(body, "output_compression", self.compression);
        put_str(body, "moderation", &self.moderation);
        put_str(body, "model", &self.image_model);
    }
}

/// Adds the mask to the Responses tool object, in the shape the hosted tool expects.
pub(crate) fn apply_mask_to_tool(tool: &mut Map<String, Value>, mask_data_url: &str) {
    let mut mask = Map::new();
    mask.insert("image_url".into(), Value::String(mask_data_url.to_string()));
    tool.insert("input_image_mask".into(), Value::Object(mask));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::controls::tests::all;
    use serde_json::json;

    fn default_tool() -> Map<String, Value> {
        let Value::Object(m) = json!({"type": "image_generation", "output_format": "png"}) else {
            unreachable!()
        };
        m
    }

    #[test]
    fn default_tool_is_byte_identical() {
        let mut tool = default_tool();
        ImageControls::default().apply_to_tool(&mut tool);
        assert_eq!(
            serde_json::to_string(&Value::Object(tool)).unwrap(),
            r#"{"type":"image_generation","output_format":"png"}"#
        );
    }

    #[test]
    fn tool_with_all_controls() {
        let mut tool = default_tool();
        all().apply_to_tool(&mut tool);
        assert_eq!(
            Value::Object(tool).to_string(),
            r#"{"type":"image_generation","output_format":"webp","size":"1536x864","quality":"high","output_compression":80,"background":"transparent","model":"gpt-image-2","moderation":"low","partial_images":2,"action":"edit","input_fidelity":"high"}"#
        );
    }

    #[test]
    fn tool_one_control_at_a_time() {
        let cases: Vec<(ImageControls, &str)> = vec![
            (
                ImageControls {
                    size: Some("auto".into()),
                    ..Default::default()
                },
                r#""size":"auto""#,
            ),
            (
                ImageControls {
                    quality: Some("low".into()),
                    ..Default::default()
                },
                r#""quality":"low""#,
            ),
            (
                ImageControls {
                    compression: Some(0),
                    ..Default::default()
                },
                r#""output_compression":0"#,
            ),
            (
                ImageControls {
                    background: Some("opaque".into()),
                    ..Default::default()
                },
                r#""background":"opaque""#,
            ),
            (
                ImageControls {
                    image_model: Some("gpt-image-1.5".into()),
                    ..Default::default()
                },
                r#""model":"gpt-image-1.5""#,
            ),
            (
                ImageControls {
                    moderation: Some("auto".into()),
                    ..Default::default()
                },
                r#""moderation":"auto""#,
            ),
            (
                ImageControls {
                    partial_images: Some(0),
                    ..Default::default()
                },
                r#""partial_images":0"#,
            ),
            (
                ImageControls {
                    action: Some("generate".into()),
                    ..Default::default()
                },
                r#""action":"generate""#,
            ),
            (
                ImageControls {
                    input_fidelity: Some("low".into()),
                    ..Default::default()
                },
                r#""input_fidelity":"low""#,
            ),
        ];
        for (c, kv) in cases {
            let mut tool = default_tool();
            c.apply_to_tool(&mut tool);
            assert_eq!(
                Value::Object(tool).to_string(),
                format!(r#"{{"type":"image_generation","output_format":"png",{kv}}}"#)
            );
        }
        let mut tool = default_tool();
        ImageControls {
            format: Some("jpeg".into()),
            ..Default::default()
        }
        .apply_to_tool(&mut tool);
        assert_eq!(
            Value::Object(tool).to_string(),
            r#"{"type":"image_generation","output_format":"jpeg"}"#
        );
    }

    #[test]
    fn images_body() {
        let Value::Object(mut body) = json!({"model": "gpt-image-1", "prompt": "a cat", "n": 1})
        else {
            unreachable!()
        };
        all().apply_to_images_body(&mut body);
        assert_eq!(
            Value::Object(body).to_string(),
            r#"{"model":"gpt-image-2","prompt":"a cat","n":1,"size":"1536x864","quality":"high","background":"transparent","output_format":"webp","output_compression":80,"moderation":"low"}"#
        );
        let Value::Object(mut body) = json!({"model": "gpt-image-1", "prompt": "a cat"}) else {
            unreachable!()
        };
        ImageControls::default().apply_to_images_body(&mut body);
        assert_eq!(
            Value::Object(body).to_string(),
            r#"{"model":"gpt-image-1","prompt":"a cat"}"#
        );
    }

    #[test]
    fn mask_in_tool() {
        let mut tool = default_tool();
        apply_mask_to_tool(&mut tool, "data:image/png;base64,AAAA");
        assert_eq!(
            Value::Object(tool).to_string(),
            r#"{"type":"image_generation","output_format":"png","input_image_mask":{"image_url":"data:image/png;base64,AAAA"}}"#
        );
    }
}
