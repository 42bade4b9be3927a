//! Reads a batch file (JSON Lines or plain-text prompts) into fully resolved jobs, or into the
//! complete list of what is wrong with it.
//!
//! Design: parsing never stops at the first problem. Every line is checked on its own (JSON
//! shape, key names, value types, reference files, the control-value hook) and then the whole
//! file is checked across lines (duplicate ids, two jobs writing the same file), so the user
//! fixes everything in one round and no request is sent for a file that is partly wrong. A
//! line's values override the command-line template field by field; paths written in a line
//! resolve against the batch file's directory, while paths inherited from the command line are
//! made absolute against the template's own `base_dir` first (otherwise a `-i cat.png` given
//! relative to the shell's directory would silently move to the file's directory). `null` for
//! an optional key means "not given". Ids become file-name stems, so they are restricted to
//! characters that are safe in a file name everywhere.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};

use super::controls;
use super::resolve::{check_local, resolve};
use crate::foundation::job::{JobSpec, Reference};
use crate::frontend::json_kind::json_kind;

/// Everything a line may inherit, and how to name and resolve what it says.
pub(crate) struct ParseContext<'a> {
    /// How lines are named in messages: the path as given, or `<stdin>`.
    pub(crate) source_name: &'a str,
    /// Absolute directory that relative paths in lines resolve against.
    pub(crate) base_dir: &'a Path,
    /// Command-line values: the default for every line.
    pub(crate) template: &'a JobSpec,
    /// `--count`: jobs per line.
    pub(crate) count: u32,
}

/// One request to run: a line (or one of its `--count` copies), resolved.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) id: String,
    /// 1-based physical line number in the batch file.
    pub(crate) line: usize,
    pub(crate) spec: JobSpec,
}

const KNOWN_KEYS: &[&str] = &[
    "prompt",
    "id",
    "output",
    "out_dir",
    "images",
    "mask",
    "size",
    "quality",
    "format",
    "compression",
    "background",
    "image_model",
    "moderation",
    "partial_images",
    "action",
    "input_fidelity",
    "image_detail",
    "model",
    "timeout",
    "retries",
];

const MAX_ID_LEN: usize = 100;
const IMAGE_DETAILS: [&str; 4] = ["auto", "low", "high", "original"];

/// What one line said, before it is merged with the template.
#[derive(Default)]
struct Line {
    number: usize,
    prompt: String,
    id: Option<String>,
    output: Option<String>,
    out_dir: Option<String>,
    images: Option<Vec<String>>,
    mask: Option<String>,
    /// Control values as `(key, value)` in line order, numbers as their JSON text; parsed by
    /// [`controls::apply`] with the CLI's own rules.
    controls: Vec<(&'static str, String)>,
    image_detail: Option<String>,
    model: Option<String>,
    timeout_ms: Option<u64>,
    retries: Option<u32>,
}

/// Parses and validates the whole batch. Err holds every problem, each already formatted as
/// `<file>:<line>: <reason>` (or `<file>: <reason>` for the file as a whole).
pub(crate) fn parse_batch(text: &[u8], ctx: &ParseContext<'_>) -> Result<Vec<Job>, Vec<String>> {
    let mut errors: Vec<(usize, String)> = Vec::new();
    let mut lines = Vec::new();
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let number = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(raw) = std::str::from_utf8(raw) else {
            errors.push((number, "not valid UTF-8".into()));
            continue;
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut line_errors = Vec::new();
        let line = if trimmed.starts_with('{') {
            parse_object(trimmed, number, &mut line_errors)
        } else {
            Some(Line {
                number,
                prompt: trimmed.to_string(),
                ..Line::default()
            })
        };
        errors.extend(line_errors.into_iter().map(|e| (number, e)));
        // A line with type errors still goes through the merge checks below (missing files,
        // duplicate ids), so one round of fixes is enough; any error anywhere means no job runs.
        if let Some(line) = line {
            lines.push(line);
        }
    }

    let template = absolutize_template(ctx.template);
    let mut jobs = Vec::new();
    let mut first_line_of_id: HashMap<String, usize> = HashMap::new();
    let mut owner_of_job_id: HashMap<String, usize> = HashMap::new();
    let mut owner_of_output: HashMap<PathBuf, usize> = HashMap::new();
    for line in &lines {
        match build_jobs(line, &template, ctx) {
            Err(line_errors) => errors.extend(line_errors.into_iter().map(|e| (line.number, e))),
            Ok((base_id, line_jobs)) => {
                // A repeated id is reported once against its first line, not once per copy.
                if let Some(first) = first_line_of_id.get(&base_id) {
                    errors.push((
                        line.number,
                        format!("duplicate id {base_id:?} (first on line {first})"),
                    ));
                    continue;
                }
                first_line_of_id.insert(base_id.clone(), line.number);
                let mut clash = None;
                for job in &line_jobs {
                    if let Some(other) = owner_of_job_id.get(&job.id) {
                        clash = Some(format!(
                            "id {:?} (from --count) is also the id of line {other}",
                            job.id
                        ));
                        break;
                    }
                    if let Some(path) = exact_output_file(&job.spec) {
                        if let Some(other) = owner_of_output.get(&path) {
                            clash = Some(format!(
                                "output {:?} is also written by line {other}",
                                path.display().to_string()
                            ));
                            break;
                        }
                    }
                }
                if let Some(message) = clash {
                    errors.push((line.number, message));
                    continue;
                }
                for job in line_jobs {
                    owner_of_job_id.insert(job.id.clone(), line.number);
                    if let Some(path) = exact_output_file(&job.spec) {
                        owner_of_output.insert(path, line.number);
                    }
                    jobs.push(job);
                }
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|(n, _)| *n);
        return Err(errors
            .into_iter()
            .map(|(n, e)| format!("{}:{n}: {e}", ctx.source_name))
            .collect());
    }
    if jobs.is_empty() {
        return Err(vec![format!("{}: no prompts", ctx.source_name)]);
    }
    Ok(jobs)
}

fn parse_object(text: &str, number: usize, errors: &mut Vec<String>) -> Option<Line> {
    let map: Map<String, Value> = match serde_json::from_str(text) {
        Ok(map) => map,
        Err(e) => {
            errors.push(format!("invalid JSON: {e}"));
            return None;
        }
    };
    let mut line = Line {
        number,
        ..Line::default()
    };
    for key in map.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            errors.push(format!("unknown key {key:?}"));
        }
    }
    let mut get_str = |key: &str| -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                errors.push(format!(
                    "{key:?} must be a string, not {}",
                    json_kind(other)
                ));
                None
            }
        }
    };
    let prompt = get_str("prompt");
    line.id = get_str("id");
    line.output = get_str("output");
    line.out_dir = get_str("out_dir");
    line.mask = get_str("mask");
    line.model = get_str("model");
    line.image_detail = get_str("image_detail");
    for key in controls::STRING_KEYS {
        if let Some(value) = get_str(key) {
            line.controls.push((key, value));
        }
    }

    match prompt {
        Some(p) if !p.trim().is_empty() => line.prompt = p,
        Some(_) => errors.push("\"prompt\" is empty".into()),
        None if matches!(map.get("prompt"), None | Some(Value::Null)) => {
            errors.push("missing \"prompt\"".into())
        }
        None => {}
    }
    if let Some(id) = &line.id {
        if let Err(e) = check_id(id) {
            errors.push(e);
        }
    }
    for (key, value) in [("output", &line.output), ("out_dir", &line.out_dir)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            errors.push(format!("{key:?} is empty"));
        }
    }

    match map.get("images") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            let mut refs = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) if !s.trim().is_empty() => refs.push(s.clone()),
                    Value::String(_) => errors.push(format!("\"images\"[{i}] is empty")),
                    other => errors.push(format!(
                        "\"images\"[{i}] must be a string, not {}",
                        json_kind(other)
                    )),
                }
            }
            line.images = Some(refs);
        }
        Some(other) => errors.push(format!(
            "\"images\" must be an array of paths or URLs, not {}",
            json_kind(other)
        )),
    }

    for (key, max) in controls::INTEGER_KEYS {
        if let Some(value) = get_int(&map, key, 0, max, errors) {
            line.controls.push((key, value.to_string()));
        }
    }
    line.retries = get_int(&map, "retries", 0, 100, errors).map(|v| v as u32);
    match map.get("timeout") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => match n.as_f64() {
            // A day per attempt is already absurd; the cap keeps the millisecond maths exact.
            Some(secs) if secs > 0.0 && secs <= 86_400.0 => {
                line.timeout_ms = Some(((secs * 1000.0).round() as u64).max(1))
            }
            _ => errors.push(format!(
                "\"timeout\" must be a number of seconds above 0 (at most 86400), not {n}"
            )),
        },
        Some(other) => errors.push(format!(
            "\"timeout\" must be a number of seconds, not {}",
            json_kind(other)
        )),
    }
    Some(line)
}

/// An integer key within [min, max]; a type error or range error is pushed to `errors`.
fn get_int(
    map: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
    errors: &mut Vec<String>,
) -> Option<u64> {
    match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                errors.push(format!(
                    "{key:?} must be an integer from {min} to {max}, not {n}"
                ));
                None
            }
        },
        Some(other) => {
            errors.push(format!(
                "{key:?} must be a number, not {}",
                json_kind(other)
            ));
            None
        }
    }
}

/// Ids name files (`<id>-1.png`) and results lines, so they must be safe file-name stems.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("\"id\" is empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("\"id\" is longer than {MAX_ID_LEN} characters"));
    }
    let ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok || id.starts_with('.') || id.starts_with('-') {
        return Err(format!(
            "id {id:?} may hold only letters, digits, '-', '_' and '.' (not first)"
        ));
    }
    Ok(())
}

/// A reference as written in a line: a URL by its prefix (as `--input-ref` reads it), else a
/// path made absolute against `base`.
fn resolve_ref(base: &Path, reference: &str) -> Reference {
    match Reference::classify(reference) {
        Reference::Path(p) => Reference::Path(resolve(base, &p).to_string_lossy().into_owned()),
        url => url,
    }
}

/// The template with its relative paths fixed to its own base directory, so lines that
/// inherit them keep their meaning under a different `base_dir`.
fn absolutize_template(template: &JobSpec) -> JobSpec {
    let base = template.base_dir.clone();
    let mut t = template.clone();
    t.references = t
        .references
        .iter()
        .map(|r| match r {
            Reference::Path(p) => Reference::Path(resolve(&base, p).to_string_lossy().into_owned()),
            url => url.clone(),
        })
        .collect();
    controls::absolutize_template(&mut t, &base);
    t.out_dir = resolve(&base, &t.out_dir.to_string_lossy());
    t.output = None;
    t
}

/// The engine's rule for `output` (a trailing separator or no extension means a directory),
/// plus an existing directory.
fn is_dir_like(output: &str) -> bool {
    output.ends_with('/')
        || output.ends_with(std::path::MAIN_SEPARATOR)
        || Path::new(output).extension().is_none()
        || Path::new(output).is_dir()
}

/// The one file a job writes when its `output` names a file, for the clash check.
fn exact_output_file(spec: &JobSpec) -> Option<PathBuf> {
    spec.output
        .as_deref()
        .filter(|o| !is_dir_like(o))
        .map(PathBuf::from)
}

/// `out/cat.png` for copy 2 of `--count` becomes `out/cat-2.png`, so copies never overwrite each
/// other; a directory output is left alone since the engine names files by the job id there.
pub(crate) fn numbered_output(output: &str, copy: u32) -> String {
    if is_dir_like(output) {
        return output.to_string();
    }
    let path = Path::new(output);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{copy}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{copy}"),
    };
    path.with_file_name(name).to_string_lossy().into_owned()
}

/// Merges a line into the template and expands `--count`. Ok holds the line's id (before the
/// copy suffix) and its jobs.
fn build_jobs(
    line: &Line,
    template: &JobSpec,
    ctx: &ParseContext<'_>,
) -> Result<(String, Vec<Job>), Vec<String>> {
    let base = ctx.base_dir;
    let mut errors = Vec::new();
    let mut spec = template.clone();
    spec.base_dir = base.to_path_buf();
    spec.prompt = line.prompt.clone();
    if let Some(images) = &line.images {
        for (i, r) in images.iter().enumerate() {
            if let Err(e) = check_local(base, &format!("\"images\"[{i}]"), r) {
                errors.push(e);
            }
        }
        spec.references = images.iter().map(|r| resolve_ref(base, r)).collect();
    }
    if let Some(dir) = &line.out_dir {
        spec.out_dir = resolve(base, dir);
    }
    spec.output = line
        .output
        .as_deref()
        .map(|o| resolve(base, o).to_string_lossy().into_owned());
    if let Some(model) = &line.model {
        spec.model = model.clone();
    }
    if let Some(ms) = line.timeout_ms {
        spec.timeout_ms = ms;
    }
    if let Some(retries) = line.retries {
        spec.retries = retries;
    }
    if let Some(detail) = &line.image_detail {
        if IMAGE_DETAILS.contains(&detail.as_str()) {
            spec.image_detail = detail.clone();
        } else {
            errors.push(format!(
                "\"image_detail\" must be one of: {}",
                IMAGE_DETAILS.join(", ")
            ));
        }
    }
    // Control values and the mask go through the CLI's own parsers and combination rules.
    errors.extend(controls::apply(
        &mut spec,
        &line.controls,
        line.mask.as_deref(),
        base,
    ));
    if !errors.is_empty() {
        return Err(errors);
    }

    let base_id = line
        .id
        .clone()
        .unwrap_or_else(|| format!("line-{}", line.number));
    let count = ctx.count.max(1);
    let jobs = (1..=count)
        .map(|copy| {
            let (id, output) = if count == 1 {
                (base_id.clone(), spec.output.clone())
            } else {
                (
                    format!("{base_id}-{copy}"),
                    spec.output.as_deref().map(|o| numbered_output(o, copy)),
                )
            };
            let mut spec = spec.clone();
            spec.output = output;
            controls::name_by_id(&mut spec, &id);
            Job {
                id,
                line: line.number,
                spec,
            }
        })
        .collect();
    Ok((base_id, jobs))
}
