//! The MCP tools: `generate_image`, `edit_image`, `image_usage`, `auth_status`.
//!
//! Argument structs derive `schemars::JsonSchema`; their doc comments become the field
//! descriptions an agent reads in `tools/list`, and `arguments.rs` holds each call to that
//! schema first (unknown keys, types, ranges). Checks the schema cannot express (non-empty
//! prompt, a mask without images, the image controls) follow here. Both produce an
//! invalid-params protocol error naming the field, because those are caller mistakes the
//! agent should fix and retry. Anything that goes wrong while generating is instead a
//! normal tool result with `isError: true` and the engine error's plain-words Display, so
//! the agent sees e.g. the usage-limit reset time rather than an opaque protocol error.
//!
//! `count` > 1 runs that many independent engine jobs at once (the engine shares one auth
//! refresh among them). Every job gets a child of the request's cancellation token, so
//! `notifications/cancelled` stops them all; files already saved stay on disk.
//!
//! `image_usage` and `auth_status` carry `readOnlyHint` (and `auth_status`, which makes no
//! network call, `openWorldHint: false`): hosts that ask before a tool call, such as Codex
//! CLI, run them without asking, and under `codex exec` (nobody to ask) they run at all. The
//! image tools spend quota and write files, so they carry no hints.

use std::sync::Arc;

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, ErrorData, RoleServer};
use serde::Deserialize;
use serde_json::{json, Value};

use super::arguments;
use super::progress::Reporter;
use super::server::ImagenServer;
use super::thumbnail::{mime_of, thumbnail_of};
use crate::foundation::controls::{self, ControlError, ImageControls};
use crate::foundation::error::{Error, ErrorKind};
use crate::foundation::events::NullSink;
use crate::foundation::job::SavedImage;
use crate::foundation::job::{JobResult, JobSpec, Reference, MAX_PROMPT_CHARS};

const MAX_COUNT: i64 = 4;
/// Full images above this (as base64) risk the 16 MiB line limit of stdio MCP clients
/// (rmcp's own default), so they are sent as thumbnails instead.
const MAX_FULL_BASE64: usize = 12 * 1024 * 1024;

/// Options shared by `generate_image` and `edit_image`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(crate) struct ImageOptions {
    /// Optional mask for inpainting: a local PNG file with an alpha channel (absolute, or relative to the server's working directory or --cwd), the size of the first image; its transparent pixels mark the area to change. Needs at least one entry in `images`.
    #[serde(default)]
    mask: Option<String>,
    /// Output size: WIDTHxHEIGHT with both sides multiples of 16 (e.g. "1024x1024", "1536x1024", "1024x1536"), an aspect ratio W:H (e.g. "16:9"), or "auto".
    #[serde(default)]
    size: Option<String>,
    /// Rendering quality: "low", "medium", "high" or "auto".
    #[serde(default)]
    quality: Option<String>,
    /// File format of the saved image: "png" (default), "jpeg" or "webp".
    #[serde(default)]
    format: Option<String>,
    /// Background: "auto", "opaque" or "transparent" (transparent needs png or webp).
    #[serde(default)]
    background: Option<String>,
    /// Image model to use, e.g. "gpt-image-2". Omit for the default.
    #[serde(default)]
    image_model: Option<String>,
    /// How many images to make, 1 to 4 (default 1). Each is a separate generation, run concurrently.
    #[serde(default)]
    #[schemars(range(min = 1, max = 4))]
    count: Option<i64>,
    /// Directory to save images in (absolute, or relative to the server's working directory or --cwd). Default: the server's configured output directory.
    #[serde(default)]
    output_dir: Option<String>,
    /// What image data to return: "thumbnail" (default; longest side at most 512 px, JPEG, or PNG if the image has transparency), "full" (the saved file's bytes) or "none" (paths only).
    // Its schema is a string from the enum, not null: a nullable type with an enum that lacks
    // null contradicts itself (validators disagree on such a field).
    #[serde(default)]
    #[schemars(with = "String", extend("enum" = ["thumbnail", "full", "none"]))]
    return_image: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct GenerateImageArgs {
    /// Description of the image to create, at most 32000 characters. Be specific about subject, style, composition and any text to render.
    #[schemars(length(max = MAX_PROMPT_CHARS))]
    prompt: String,
    /// Optional reference images to guide the result: local file paths (absolute, or relative to the server's working directory or --cwd), http(s) URLs or data:image/... URLs.
    #[serde(default)]
    images: Option<Vec<String>>,
    #[serde(flatten)]
    options: ImageOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct EditImageArgs {
    /// How to change the image(s): what to add, remove or restyle. At most 32000 characters.
    #[schemars(length(max = MAX_PROMPT_CHARS))]
    prompt: String,
    /// The image(s) to edit, at least one: local file paths (absolute, or relative to the server's working directory or --cwd), http(s) URLs or data:image/... URLs. The first is the main image; others are extra references.
    #[schemars(length(min = 1))]
    images: Vec<String>,
    #[serde(flatten)]
    options: ImageOptions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReturnImage {
    Thumbnail,
    Full,
    None,
}

/// A validated call, ready to become `count` engine jobs.
struct Request {
    prompt: String,
    references: Vec<Reference>,
    output_dir: Option<String>,
    /// The server's controls with this call's on top, checked together.
    controls: ImageControls,
    mask: Option<String>,
    count: usize,
    return_image: ReturnImage,
}

fn invalid(message: String) -> ErrorData {
    ErrorData::invalid_params(message, None)
}

fn validate(
    prompt: String,
    references: Vec<String>,
    options: ImageOptions,
    edit: bool,
    defaults: &ImageControls,
) -> Result<Request, ErrorData> {
    if prompt.trim().is_empty() {
        return Err(invalid("`prompt` must not be empty".to_string()));
    }
    let chars = prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(invalid(format!(
            "`prompt` must be at most {MAX_PROMPT_CHARS} characters, got {chars}"
        )));
    }
    if edit && references.is_empty() {
        return Err(invalid(
            "`images` must list at least one image to edit".to_string(),
        ));
    }
    if let Some(bad) = references.iter().position(|r| r.trim().is_empty()) {
        return Err(invalid(format!("`images[{bad}]` is empty")));
    }
    if options.mask.is_some() && references.is_empty() {
        return Err(invalid(
            "`mask` needs at least one entry in `images`: it marks the area of the first one to edit"
                .to_string(),
        ));
    }
    if let Some(bad) = options.mask.as_deref().filter(|m| m.trim().is_empty()) {
        return Err(invalid(format!("`mask` must name a PNG file, got {bad:?}")));
    }
    let count = options.count.unwrap_or(1);
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(invalid(format!(
            "`count` must be an integer from 1 to {MAX_COUNT}, got {count}"
        )));
    }
    let return_image = match options.return_image.as_deref() {
        None | Some("thumbnail") => ReturnImage::Thumbnail,
        Some("full") => ReturnImage::Full,
        Some("none") => ReturnImage::None,
        Some(other) => {
            return Err(invalid(format!(
                "`return_image` must be \"thumbnail\", \"full\" or \"none\", got {other:?}"
            )))
        }
    };
    if let Some(bad) = options
        .output_dir
        .as_deref()
        .filter(|d| d.trim().is_empty())
    {
        return Err(invalid(format!(
            "`output_dir` must name a directory, got {bad:?}"
        )));
    }
    let controls = controls_from(&options, edit, defaults)?;
    controls::check_combination(&controls, references.len(), options.mask.is_some())
        .map_err(|e| control_error(&e))?;
    Ok(Request {
        prompt,
        references: references.iter().map(|r| Reference::classify(r)).collect(),
        output_dir: options.output_dir,
        controls,
        mask: options.mask,
        count: count as usize,
        return_image,
    })
}

/// The image controls of a call: the server's (its command line's `--size`, `--quality`, ...)
/// with the call's fields on top, each validated by the same functions as the CLI's flags.
fn controls_from(
    options: &ImageOptions,
    edit: bool,
    defaults: &ImageControls,
) -> Result<ImageControls, ErrorData> {
    let mut c = defaults.clone();
    let fields = [
        ("size", &options.size),
        ("quality", &options.quality),
        ("format", &options.format),
        ("background", &options.background),
        ("image_model", &options.image_model),
    ];
    for (field, value) in fields {
        if let Some(v) = given(value) {
            c.set(field, v).map_err(|e| control_error(&e))?;
        }
    }
    if edit {
        // The tool says what it is; generate_image leaves the action to the server's default
        // (auto), so its references may act as style references.
        c.action = Some("edit".to_string());
    }
    Ok(c)
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim)
}

/// The controls' texts name CLI flags; a tool call's caller knows the fields.
fn control_error(error: &ControlError) -> ErrorData {
    const NAMES: [(&str, &str); 8] = [
        ("--image or --image-url", "`images`"),
        ("--size", "`size`"),
        ("--quality", "`quality`"),
        ("--format", "`format`"),
        ("--compression", "`compression` (a server flag)"),
        ("--background", "`background`"),
        ("--image-model", "`image_model`"),
        ("--mask", "`mask`"),
    ];
    let mut message = error.to_string();
    for (flag, field) in NAMES {
        message = message.replace(flag, field);
    }
    invalid(message)
}

/// Why a job produced no result: the engine said so, or its task panicked (which the
/// Engine API has no error value for).
enum Failure {
    Engine(Error),
    Crashed(String),
}

impl Failure {
    fn is_cancelled(&self) -> bool {
        matches!(self, Failure::Engine(e) if e.kind() == ErrorKind::Cancelled)
    }

    fn message(&self) -> String {
        match self {
            Failure::Engine(e) => super::hints::message(e),
            Failure::Crashed(why) => format!("internal error: the image job failed ({why})"),
        }
    }

    fn to_json(&self, index: usize) -> Value {
        match self {
            Failure::Engine(e) => json!({
                "index": index,
                "kind": e.kind(),
                "message": super::hints::message(e),
                "resets_at": e
                    .usage_limit()
                    .and_then(|limit| limit.resets_at)
                    .map(|at| at.to_rfc3339()),
            }),
            Failure::Crashed(_) => json!({
                "index": index,
                "kind": "internal",
                "message": self.message(),
                "resets_at": null,
            }),
        }
    }
}

/// The outcome of one engine job plus the images it saved before any failure.
struct JobOutcome {
    result: Result<JobResult, Failure>,
    saved_before_error: Vec<SavedImage>,
}

#[tool_router(router = tool_router, vis = "pub(super)")]
impl ImagenServer {
    #[tool(
        input_schema = arguments::input_schema::<GenerateImageArgs>(),
        description = "Generate images from a text prompt with gpt-image (ChatGPT \
                       subscription). Optional reference images guide style or content. \
                       Saves the files and returns their absolute paths, metadata and a \
                       preview. Takes 30 s to a few minutes."
    )]
    async fn generate_image(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let args: GenerateImageArgs = arguments::parse::<_, ImageOptions>(args).map_err(invalid)?;
        let request = validate(
            args.prompt,
            args.images.unwrap_or_default(),
            args.options,
            false,
            &self.defaults.job.controls,
        )?;
        Ok(self.run_request(request, &ctx).await)
    }

    #[tool(
        input_schema = arguments::input_schema::<EditImageArgs>(),
        description = "Edit existing images with gpt-image (ChatGPT subscription): change, \
                       add or remove content, restyle, or inpaint with a mask. Saves the \
                       results and returns their absolute paths, metadata and a preview. \
                       Takes 30 s to a few minutes."
    )]
    async fn edit_image(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let args: EditImageArgs = arguments::parse::<_, ImageOptions>(args).map_err(invalid)?;
        let request = validate(
            args.prompt,
            args.images,
            args.options,
            true,
            &self.defaults.job.controls,
        )?;
        Ok(self.run_request(request, &ctx).await)
    }

    #[tool(
        description = "Show the ChatGPT plan and image-generation quota windows (how much \
                       is used and when it resets).",
        annotations(read_only_hint = true)
    )]
    async fn image_usage(&self) -> CallToolResult {
        json_result(self.engine.usage(Arc::new(NullSink)).await)
    }

    #[tool(
        description = "Check which local credentials codex-imagen would use, and the \
                       server's defaults (redacted metadata only, no network call).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn auth_status(&self) -> CallToolResult {
        json_result(self.engine.auth_status(&self.defaults.job).await)
    }
}

impl ImagenServer {
    /// The server's default job with this call's prompt, references and directory.
    fn job_spec(&self, request: &Request) -> JobSpec {
        let mut job = self.defaults.job.clone();
        job.prompt = request.prompt.clone();
        job.references = request.references.clone();
        if let Some(dir) = &request.output_dir {
            // `~` and relative paths resolve as the command line's do (against --cwd).
            job.out_dir = self.engine.environment().resolve(dir);
        }
        job.controls = request.controls.clone();
        job.mask = request.mask.clone();
        job.output = None;
        job.force_refresh = false;
        job
    }

    async fn run_request(
        &self,
        request: Request,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        // Check before paying: a directory that cannot be written fails the call now, naming
        // the argument (or the server's flag) that chose it.
        let field = match request.output_dir {
            Some(_) => "output_dir",
            None => "--out-dir",
        };
        if let Err(error) = self
            .engine
            .check_output(&self.job_spec(&request), Some(field))
        {
            return CallToolResult::error(vec![ContentBlock::text(error.to_string())]);
        }
        let reporter = Reporter::start(
            ctx.peer.clone(),
            ctx.meta.get_progress_token(),
            self.defaults.heartbeat,
            request.count,
            self.defaults.verbose && !self.defaults.quiet,
        );
        // Dropping this future (server shutdown) must not leave jobs running unobserved.
        let jobs_ct = ctx.ct.child_token();
        let _cancel_on_drop = jobs_ct.clone().drop_guard();
        let mut running = Vec::with_capacity(request.count);
        // The jobs of one call start in the same second and the backend's call ids need not
        // differ, so the SPEC's automatic names could collide: as `--count` does, job k is
        // named `codex-imagen-<time>-<k>-<n>.<ext>`.
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%SZ").to_string();
        for k in 1..=request.count {
            let engine = self.engine.clone();
            let sink = reporter.sink();
            let mut spec = self.job_spec(&request);
            if request.count > 1 {
                spec.naming =
                    crate::foundation::job::Naming::Stem(format!("codex-imagen-{stamp}-{k}"));
            }
            let cancel = jobs_ct.child_token();
            let task = tokio::spawn({
                let sink = sink.clone();
                async move { engine.run_when_ready(spec, sink, cancel).await }
            });
            running.push((task, sink));
        }
        let mut outcomes = Vec::with_capacity(running.len());
        for (task, sink) in running {
            let result = match task.await {
                Ok(result) => result.map_err(Failure::Engine),
                Err(join_error) => {
                    self.diag(format!("engine task failed: {join_error}"));
                    Err(Failure::Crashed(join_error.to_string()))
                }
            };
            outcomes.push(JobOutcome {
                saved_before_error: if result.is_err() {
                    sink.saved_images()
                } else {
                    Vec::new()
                },
                result,
            });
        }
        reporter.finish().await;
        if ctx.ct.is_cancelled() {
            self.diag("request cancelled by the client");
        }
        build_result(outcomes, request.return_image).await
    }
}

fn json_result(value: Result<Value, Error>) -> CallToolResult {
    match value {
        Ok(value) => {
            let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            // structuredContent must be an object; other JSON stays text only.
            if value.is_object() {
                result.structured_content = Some(value);
            }
            result
        }
        Err(error) => {
            CallToolResult::error(vec![ContentBlock::text(super::hints::message(&error))])
        }
    }
}

async fn build_result(outcomes: Vec<JobOutcome>, return_image: ReturnImage) -> CallToolResult {
    let total = outcomes.len();
    let mut content = Vec::new();
    let mut images = Vec::new();
    let mut errors = Vec::new();
    let mut timed_out = false;
    for (index, outcome) in outcomes.into_iter().enumerate() {
        let (saved, origin) = match outcome.result {
            Ok(result) => {
                timed_out |= result.timed_out;
                (result.images.clone(), Some(result))
            }
            Err(error) => {
                errors.push((index, error));
                (outcome.saved_before_error, None)
            }
        };
        for image in saved {
            content.push(ContentBlock::text(describe(&image)));
            if let Some(block) = image_block(&image, return_image, &mut content).await {
                content.push(block);
            }
            images.push(image_json(&image, origin.as_ref()));
        }
    }
    if timed_out {
        content.push(ContentBlock::text(
            "The request timed out after some images were saved; the ones above are complete.",
        ));
    }
    let error_json: Vec<Value> = errors
        .iter()
        .map(|(index, error)| error.to_json(*index))
        .collect();
    let all_failed = !errors.is_empty() && errors.len() == total;
    for (index, error) in &errors {
        let text = if error.is_cancelled() {
            "Cancelled; images already saved stay on disk.".to_string()
        } else {
            error.message()
        };
        // With one job the message stands alone; with several, say which one failed.
        content.push(ContentBlock::text(if total == 1 {
            text
        } else {
            format!("Image {} of {total} failed: {text}", index + 1)
        }));
    }
    let mut structured = json!({ "images": images, "timed_out": timed_out });
    if !error_json.is_empty() {
        structured["errors"] = Value::Array(error_json);
    }
    let mut result = if all_failed {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    result.structured_content = Some(structured);
    result
}

fn describe(image: &SavedImage) -> String {
    let mut text = format!("Saved {}", image.path.display());
    let mut parts = Vec::new();
    if let (Some(w), Some(h)) = (image.width, image.height) {
        parts.push(format!("{w}x{h}"));
    }
    if let Some(format) = &image.format {
        parts.push(format.clone());
    }
    parts.push(format!("{} bytes", image.bytes));
    text.push_str(&format!(" ({})", parts.join(", ")));
    if let Some(revised) = &image.revised_prompt {
        text.push_str(&format!("\nRevised prompt: {revised}"));
    }
    text
}

fn image_json(image: &SavedImage, origin: Option<&JobResult>) -> Value {
    let mut value = json!({
        "path": image.path,
        "bytes": image.bytes,
        "sha256": image.sha256,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "revised_prompt": image.revised_prompt,
    });
    if let Some(result) = origin {
        crate::frontend::report::add_origin(&mut value, result);
    }
    value
}

/// A failed preview is reported as a note, not an error: the image itself is saved.
async fn image_block(
    image: &SavedImage,
    mode: ReturnImage,
    notes: &mut Vec<ContentBlock>,
) -> Option<ContentBlock> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if mode == ReturnImage::Full {
        match tokio::fs::read(&image.path).await {
            Ok(bytes) if bytes.len().div_ceil(3) * 4 <= MAX_FULL_BASE64 => {
                let mime = mime_of(image.format.as_deref(), &bytes);
                // Encoding several MB takes milliseconds: keep it off the async workers.
                match tokio::task::spawn_blocking(move || {
                    base64::engine::general_purpose::STANDARD.encode(&bytes)
                })
                .await
                {
                    Ok(data) => return Some(ContentBlock::image(data, mime)),
                    Err(e) => notes.push(ContentBlock::text(format!(
                        "Could not encode the full image ({e}); here is a thumbnail."
                    ))),
                }
            }
            Ok(bytes) => notes.push(ContentBlock::text(format!(
                "The full image ({} bytes) is too large to send inline; here is a thumbnail.",
                bytes.len()
            ))),
            Err(e) => {
                notes.push(ContentBlock::text(format!(
                    "Could not read {} to return it: {e}",
                    image.path.display()
                )));
                return None;
            }
        }
    } else if mode == ReturnImage::None {
        return None;
    }
    match thumbnail_of(image.path.clone()).await {
        Ok(preview) => Some(ContentBlock::image(b64.encode(&preview.data), preview.mime)),
        Err(e) => {
            notes.push(ContentBlock::text(format!("No preview: {e}")));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ImageOptions {
        ImageOptions::default()
    }

    fn none() -> ImageControls {
        ImageControls::default()
    }

    fn message(result: Result<Request, ErrorData>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.message.to_string(),
        }
    }

    #[test]
    fn rejects_bad_arguments_naming_the_field() {
        let count9 = ImageOptions {
            count: Some(9),
            ..options()
        };
        assert!(
            message(validate("cat".into(), vec![], count9, false, &none())).contains("`count`")
        );
        let huge = ImageOptions {
            return_image: Some("huge".into()),
            ..options()
        };
        assert!(
            message(validate("cat".into(), vec![], huge, false, &none()))
                .contains("`return_image`")
        );
        assert!(
            message(validate("  ".into(), vec![], options(), false, &none())).contains("`prompt`")
        );
        assert!(
            message(validate("cat".into(), vec![], options(), true, &none())).contains("`images`")
        );
        let mask = ImageOptions {
            mask: Some("m.png".into()),
            ..options()
        };
        assert!(message(validate("cat".into(), vec![], mask, false, &none())).contains("`mask`"));
    }

    #[test]
    fn defaults_apply_and_references_are_classified() {
        let request = validate(
            "cat".into(),
            vec!["a.png".into(), "https://x/b.png".into()],
            options(),
            true,
            &none(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(request.count, 1);
        assert_eq!(request.return_image, ReturnImage::Thumbnail);
        assert_eq!(
            request.references,
            vec![
                Reference::Path("a.png".into()),
                Reference::Url("https://x/b.png".into())
            ]
        );
    }
}
