//! The one place where a batch line meets the engine's image controls, the mask and the file
//! naming, so the batch parser does not depend on how they are spelled in `JobSpec`.
//!
//! Design: the parser only checks JSON types and collects control values as `(key, text)`
//! pairs; [`apply`] hands them to the same per-flag parsers and combination rules the one-shot
//! CLI uses, so a line and a flag are refused with the same words. [`name_by_id`] makes a job's
//! files `<id>-<k>.<ext>` in its output directory.

use std::path::Path;

use super::resolve::{check_local, resolve};
use crate::foundation::controls::check_combination;
use crate::foundation::job::{JobSpec, Naming};

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

/// Applies a line's control values and mask to `spec` (which holds the command line's), then
/// checks the combination as the CLI does. Returns every problem, each naming the line key.
pub(crate) fn apply(
    spec: &mut JobSpec,
    values: &[(&'static str, String)],
    mask: Option<&str>,
    base: &Path,
) -> Vec<String> {
    let mut errors = Vec::new();
    for (key, value) in values {
        if let Err(e) = spec.controls.set(key, value) {
            errors.push(format!("{key:?}: {e}"));
        }
    }
    if let Some(mask) = mask {
        match check_local(base, "\"mask\"", mask) {
            Ok(()) => spec.mask = Some(resolve(base, mask).to_string_lossy().into_owned()),
            Err(e) => errors.push(e),
        }
    }
    // Only when the values parsed: a combination of bad values says nothing new.
    if errors.is_empty() {
        if let Err(e) =
            check_combination(&spec.controls, spec.references.len(), spec.mask.is_some())
        {
            errors.push(e.to_string());
        }
    }
    errors
}

/// Makes the command line's own mask path absolute against `base` (the working directory), so
/// a line that inherits it keeps its meaning under the batch file's directory.
pub(crate) fn absolutize_template(template: &mut JobSpec, base: &Path) {
    if let Some(mask) = &template.mask {
        template.mask = Some(resolve(base, mask).to_string_lossy().into_owned());
    }
}

/// Names the job's images after its id, `<id>-<k>.<ext>` in its output directory (a line's own
/// `output` still wins).
pub(crate) fn name_by_id(spec: &mut JobSpec, id: &str) {
    spec.naming = Naming::Stem(id.to_string());
}
