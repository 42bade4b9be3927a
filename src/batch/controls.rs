//! The one place where a batch line meets the engine's image controls, the mask and the file
//! naming, so the batch parser does not depend on how they are spelled in `JobSpec`.
//!
//! Design: the parser only checks JSON types and collects control values as `(key, text)`
//! pairs; [`apply`] hands them to the same per-flag parsers and combination rules the one-shot
//! CLI uses, so a line and a flag are refused with the same words. [`name_by_id`] makes a job's
//! files `<id>-<k>.<ext>` in its output directory.

use std::path::Path;

use crate::engine::job::JobSpec;

/// Line keys whose value is a JSON string, by flag name in snake_case.
pub(crate) const STRING_KEYS: [&str; 8] = [
    "size",
    "quality",
    "format",
    "background",
    "image_model",
    "moderation",
    "action",
    "input_fidelity",
];

/// Line keys whose value is a JSON integer, with their upper bound (the lower one is 0).
pub(crate) const INTEGER_KEYS: [(&str, u64); 2] = [("compression", 100), ("partial_images", 3)];

/// Applies a line's control values and mask to `spec` (which holds the command line's). Returns
/// every problem, each naming the line key.
pub(crate) fn apply(
    spec: &mut JobSpec,
    values: &[(&'static str, String)],
    mask: Option<&str>,
    base: &Path,
) -> Vec<String> {
    let _ = (&spec, base);
    // This build's engine has no image controls and no mask yet: refuse them rather than
    // silently generating something else than asked.
    let mut errors: Vec<String> = values
        .iter()
        .map(|(key, _)| format!("{key:?} is not supported by this build"))
        .collect();
    if mask.is_some() {
        errors.push("\"mask\" is not supported by this build".into());
    }
    errors
}

/// Makes the command line's own control paths (the mask) absolute against `base`.
pub(crate) fn absolutize_template(template: &mut JobSpec, base: &Path) {
    let _ = (template, base);
}

/// Names the job's images after its id, `<id>-<k>.<ext>`, unless the line chose an `output`.
pub(crate) fn name_by_id(spec: &mut JobSpec, id: &str) {
    if spec.output.is_none() {
        // Until the engine names by stem: an exact first file; a second image of the same
        // response would be `<id>-1-2.png`.
        spec.output = Some(
            spec.out_dir
                .join(format!("{id}-1.png"))
                .to_string_lossy()
                .into_owned(),
        );
    }
}
