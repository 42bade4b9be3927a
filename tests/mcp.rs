//! `codex-imagen --mcp` end to end: rmcp's own client spawns the real binary (own HOME, a
//! cleared environment, as `Sandbox::command` runs it) and talks to it over stdin/stdout, as
//! Codex CLI, Claude Code or Cursor would; the binary talks to the loopback backend and OAuth
//! endpoint of tests/support.

mod support;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, ContentBlock, ErrorCode,
    ProgressNotificationParam, Request as McpRequest,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService, ServiceError};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};
use support::*;

/// Heartbeats every 200 ms instead of 5 s, so a test sees several in a short stream.
const HEARTBEAT_MS: &str = "200";

#[derive(Clone, Default)]
struct TestClient {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for TestClient {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }
}

/// A running `codex-imagen --mcp` and the client connected to it.
struct Mcp {
    client: RunningService<RoleClient, TestClient>,
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    out_dir: PathBuf,
}

impl Mcp {
    async fn call(&self, name: &'static str, args: Value) -> CallToolResult {
        self.client.call_tool(call(name, args)).await.unwrap()
    }

    async fn call_raw(
        &self,
        name: &'static str,
        args: Value,
    ) -> Result<CallToolResult, ServiceError> {
        self.client.call_tool(call(name, args)).await
    }

    async fn stop(self) {
        self.client.cancel().await.unwrap();
    }
}

fn out_dir(sandbox: &Sandbox) -> PathBuf {
    sandbox.path("out")
}

/// `codex-imagen --mcp --out-dir <sandbox>/out --base-url .. --refresh-url .. <extra>`.
fn mcp_command(sandbox: &Sandbox, server: &Server, extra: &[&str]) -> std::process::Command {
    let out = out_dir(sandbox).display().to_string();
    let sargs = server_args(server);
    let mut args = vec!["--mcp", "--out-dir", &out];
    args.extend(extra);
    sandbox.command(&with_server(&sargs, &args))
}

async fn start(sandbox: &mut Sandbox, server: &Server, extra: &[&str]) -> Mcp {
    sandbox.env("CODEX_IMAGEN_MCP_HEARTBEAT_MS", HEARTBEAT_MS);
    let command = tokio::process::Command::from(mcp_command(sandbox, server, extra));
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let handler = TestClient::default();
    let progress = handler.progress.clone();
    let client = handler.serve(transport).await.unwrap();
    Mcp {
        client,
        progress,
        out_dir: out_dir(sandbox),
    }
}

fn call(name: &'static str, args: Value) -> CallToolRequestParams {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    CallToolRequestParams::new(name).with_arguments(map)
}

fn texts(result: &CallToolResult) -> Vec<String> {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

fn image_blocks(result: &CallToolResult) -> Vec<(Vec<u8>, String)> {
    result
        .content
        .iter()
        .filter_map(|c| match c {
            ContentBlock::Image(image) => Some((
                base64::engine::general_purpose::STANDARD
                    .decode(&image.data)
                    .unwrap(),
                image.mime_type.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn structured_images(result: &CallToolResult) -> Vec<Value> {
    result.structured_content.as_ref().unwrap()["images"]
        .as_array()
        .unwrap()
        .clone()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

fn invalid_params_message(result: Result<CallToolResult, ServiceError>) -> String {
    match result {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{e:?}");
            e.message.to_string()
        }
        other => panic!("expected invalid params, got {other:?}"),
    }
}

/// A real PNG (a colour gradient) the thumbnailer can decode; `alpha` makes the left half
/// transparent.
fn real_png(width: u32, height: u32, alpha: bool) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(width, height, |x, y| {
        let a = if alpha && x < width / 2 { 0 } else { 255 };
        image::Rgba([(x * 255 / width) as u8, (y * 255 / height) as u8, 128, a])
    });
    let mut out = Cursor::new(Vec::new());
    let dynamic = if alpha {
        image::DynamicImage::ImageRgba8(img)
    } else {
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(img).to_rgb8())
    };
    dynamic.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A backend that answers every generation with `png` and every refresh with a fresh token.
fn serving(png: Vec<u8>) -> Server {
    let server = Server::start();
    server.handle(move |req| {
        if req.path.starts_with("/oauth/token") {
            return Reply::json(
                200,
                &json!({"access_token": jwt(now_secs() + 3600), "refresh_token": "refresh-1", "expires_in": 3600}),
            );
        }
        image_stream(&[("ig_1", &png)])
    });
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_reports_the_server_name_and_version() {
    let server = serving(png_bytes(1, 10));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let info = mcp.client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "codex-imagen");
    assert_eq!(
        info.server_info.as_ref().unwrap().version,
        env!("CARGO_PKG_VERSION")
    );
    assert!(info.capabilities.tools.is_some());
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_has_four_tools_with_described_schemas() {
    let server = serving(png_bytes(1, 10));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let tools = mcp.client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(
        names,
        ["auth_status", "edit_image", "generate_image", "image_usage"]
    );
    for tool in &tools {
        assert!(tool.description.as_ref().is_some_and(|d| !d.is_empty()));
        let schema = Value::Object(tool.input_schema.as_ref().clone());
        assert_eq!(schema["type"], "object", "{}", tool.name);
        for (field, spec) in schema["properties"].as_object().unwrap() {
            assert!(
                spec["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{}.{field} has no description",
                tool.name
            );
        }
    }
    let schema_of = |name: &str| {
        let tool = tools.iter().find(|t| t.name == name).unwrap();
        Value::Object(tool.input_schema.as_ref().clone())
    };
    let generate = schema_of("generate_image");
    for field in [
        "prompt",
        "images",
        "mask",
        "size",
        "quality",
        "format",
        "background",
        "image_model",
        "count",
        "output_dir",
        "return_image",
    ] {
        assert!(
            generate["properties"].get(field).is_some(),
            "generate_image lacks {field}"
        );
    }
    assert_eq!(generate["required"], json!(["prompt"]));
    assert_eq!(generate["properties"]["count"]["minimum"], 1);
    assert_eq!(generate["properties"]["count"]["maximum"], 4);
    assert_eq!(
        generate["properties"]["return_image"]["enum"],
        json!(["thumbnail", "full", "none"])
    );
    let edit = schema_of("edit_image");
    let required = edit["required"].as_array().unwrap();
    assert!(required.contains(&json!("images")) && required.contains(&json!("prompt")));
    assert_eq!(edit["properties"]["images"]["minItems"], 1);
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_reporting_tools_are_marked_read_only() {
    // Hosts such as Codex run a tool marked read-only without asking; the image tools spend
    // quota and write files, so they carry no such mark.
    let server = serving(png_bytes(1, 10));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let tools = mcp.client.list_all_tools().await.unwrap();
    let hints = |name: &str| {
        let tool = tools.iter().find(|t| t.name == name).unwrap();
        let annotations = tool.annotations.as_ref();
        (
            annotations.and_then(|a| a.read_only_hint),
            annotations.and_then(|a| a.open_world_hint),
        )
    };
    assert_eq!(hints("auth_status"), (Some(true), Some(false)));
    assert_eq!(hints("image_usage"), (Some(true), None));
    assert_eq!(hints("generate_image"), (None, None));
    assert_eq!(hints("edit_image"), (None, None));
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_image_returns_the_path_a_thumbnail_and_structured_content() {
    let png = real_png(1024, 768, false);
    let server = serving(png.clone());
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let result = mcp
        .call("generate_image", json!({"prompt": "a red fox"}))
        .await;
    assert_eq!(result.is_error, Some(false), "{:?}", texts(&result));
    let entries = structured_images(&result);
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    let path = PathBuf::from(entry["path"].as_str().unwrap());
    assert!(path.is_absolute(), "{}", path.display());
    assert!(path.starts_with(&mcp.out_dir), "{}", path.display());
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes, png);
    assert_eq!(entry["bytes"], bytes.len());
    assert_eq!(entry["sha256"], sha256_hex(&bytes));
    assert_eq!(
        (&entry["width"], &entry["height"]),
        (&json!(1024), &json!(768))
    );
    assert_eq!(entry["format"], "png");
    assert_eq!(entry["revised_prompt"], "a revised prompt");
    assert_eq!(
        result.structured_content.as_ref().unwrap()["timed_out"],
        false
    );

    // A text block (path, revised prompt), then the image block.
    assert!(matches!(result.content[0], ContentBlock::Text(_)));
    assert!(matches!(result.content[1], ContentBlock::Image(_)));
    let text = &texts(&result)[0];
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("Revised prompt: a revised prompt"), "{text}");

    // The image block is a thumbnail of the saved file: same picture, longest side 512 px.
    let blocks = image_blocks(&result);
    assert_eq!(blocks.len(), 1);
    let (thumb, mime) = &blocks[0];
    assert_eq!(mime, "image/jpeg");
    let thumb = image::load_from_memory(thumb).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (512, 384));
    let full = image::load_from_memory(&bytes)
        .unwrap()
        .resize(512, 512, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let thumb = thumb.to_rgb8();
    let diff: u64 = full
        .pixels()
        .zip(thumb.pixels())
        .map(|(a, b)| (0..3).map(|i| a.0[i].abs_diff(b.0[i]) as u64).sum::<u64>())
        .sum();
    let mean = diff as f64 / (512.0 * 384.0 * 3.0);
    assert!(mean < 8.0, "thumbnail differs from the saved image: {mean}");
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_image_none_full_and_a_transparent_thumbnail() {
    let opaque = real_png(600, 400, false);
    let transparent = real_png(800, 600, true);
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &opaque)]));
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_2", &opaque)]));
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_3", &transparent)]));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;

    let none = mcp
        .call(
            "generate_image",
            json!({"prompt": "a boat", "return_image": "none"}),
        )
        .await;
    assert_eq!(none.is_error, Some(false), "{:?}", texts(&none));
    assert!(image_blocks(&none).is_empty());
    assert_eq!(structured_images(&none).len(), 1);
    assert!(texts(&none)[0].starts_with("Saved /"), "{:?}", texts(&none));

    let full = mcp
        .call(
            "generate_image",
            json!({"prompt": "a boat", "return_image": "full"}),
        )
        .await;
    let blocks = image_blocks(&full);
    assert_eq!(blocks.len(), 1);
    let path = structured_images(&full)[0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(blocks[0].0, std::fs::read(path).unwrap());
    assert_eq!(blocks[0].0, opaque);
    assert_eq!(blocks[0].1, "image/png");

    let alpha = mcp
        .call("generate_image", json!({"prompt": "a sticker"}))
        .await;
    let blocks = image_blocks(&alpha);
    assert_eq!(blocks[0].1, "image/png");
    let thumb = image::load_from_memory(&blocks[0].0).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (512, 384));
    assert!(thumb.color().has_alpha());
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_image_sends_its_images_and_output_dir_is_honoured() {
    let server = serving(real_png(64, 64, false));
    let mut sandbox = authed_sandbox();
    std::fs::write(sandbox.work().join("photo.png"), real_png(8, 8, false)).unwrap();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let result = mcp
        .call(
            "edit_image",
            json!({"prompt": "make it blue", "images": ["photo.png", "https://example.com/bg.png"],
                "output_dir": "edits", "return_image": "none"}),
        )
        .await;
    assert_eq!(result.is_error, Some(false), "{:?}", texts(&result));
    let path = PathBuf::from(structured_images(&result)[0]["path"].as_str().unwrap());
    // A relative output_dir resolves against the server's working directory.
    assert_eq!(path.parent().unwrap(), real_work(&sandbox).join("edits"));
    let body = server.requests_to(RESPONSES_PATH)[0].json().to_string();
    assert!(body.contains("data:image/png;base64,"), "{body}");
    assert!(body.contains("https://example.com/bg.png"), "{body}");
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_come_at_stage_changes_and_as_a_heartbeat() {
    let png = real_png(64, 64, false);
    let server = Server::start();
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&in_progress("ig_1"))
            .event(&generating("ig_1"))
            .sleep_ms(2300)
            .event(&image_done("ig_1", &png))
            .event(&completed(&[("ig_1", &png)]))
            .end(),
    );
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let result = mcp
        .call(
            "generate_image",
            json!({"prompt": "a sunset", "return_image": "none"}),
        )
        .await;
    assert_eq!(result.is_error, Some(false), "{:?}", texts(&result));
    // rmcp's client handles each notification on its own task, so arrival order is not wire
    // order; the progress value (a counter) restores it.
    let mut progress = mcp.progress.lock().unwrap().clone();
    progress.sort_by(|a, b| a.progress.total_cmp(&b.progress));
    for pair in progress.windows(2) {
        assert!(
            pair[1].progress > pair[0].progress,
            "progress values repeat"
        );
    }
    let messages: Vec<String> = progress
        .iter()
        .map(|p| p.message.clone().unwrap_or_default())
        .collect();
    assert!(messages[0].starts_with("starting, "), "{messages:?}");
    assert!(
        messages.iter().any(|m| m.starts_with("sending, ")),
        "{messages:?}"
    );
    assert!(
        messages.last().unwrap().starts_with("saved, "),
        "{messages:?}"
    );
    // 200 ms heartbeats through 2.3 s of "generating".
    let generating = messages
        .iter()
        .filter(|m| m.starts_with("generating, "))
        .count();
    assert!(generating >= 5, "{messages:?}");
    for message in &messages {
        let (stage, seconds) = message.split_once(", ").unwrap();
        assert!(!stage.is_empty());
        seconds.strip_suffix(" s").unwrap().parse::<u64>().unwrap();
    }
    assert!(
        messages.iter().any(|m| m == "generating, 2 s"),
        "{messages:?}"
    );
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_limit_is_an_error_result_with_the_reset_time() {
    let server = Server::start();
    let body = json!({"error": {"type": "usage_limit_reached", "plan_type": "plus",
        "message": "The usage limit has been reached", "resets_in_seconds": 2 * 3600 + 13 * 60}});
    server.handle(move |_| Reply::json(429, &body));
    let mut sandbox = authed_sandbox();
    sandbox.env("TZ", "UTC");
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let result = mcp.call("generate_image", json!({"prompt": "a fox"})).await;
    assert_eq!(result.is_error, Some(true));
    let text = texts(&result).join("\n");
    assert!(
        text.starts_with(
            "You've hit your ChatGPT plus usage limit for image generation. Try again at "
        ),
        "{text}"
    );
    assert!(text.contains("(in 2h 13m)."), "{text}");
    assert!(!text.starts_with("Error: "), "{text}");
    let structured = result.structured_content.unwrap();
    assert_eq!(structured["images"], json!([]));
    assert_eq!(structured["errors"][0]["kind"], "usage_limit");
    let resets_at = structured["errors"][0]["resets_at"].as_str().unwrap();
    let resets_at = chrono::DateTime::parse_from_rfc3339(resets_at).unwrap();
    let in_seconds = resets_at.timestamp() - now_secs();
    assert!((2 * 3600 + 12 * 60..=2 * 3600 + 14 * 60).contains(&in_seconds));
    // Not retried: the quota does not come back in a few seconds.
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1);
    assert!(files_in(&mcp.out_dir).is_empty());
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_stops_its_job_within_a_second() {
    let png = real_png(64, 64, false);
    let server = Server::start();
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&generating("ig_1"))
            .sleep_ms(3500)
            .event(&image_done("ig_1", &png))
            .event(&completed(&[("ig_1", &png)]))
            .end(),
    );
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_2", &png)]));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let request = ClientRequest::CallToolRequest(McpRequest::new(call(
        "generate_image",
        json!({"prompt": "a cathedral", "return_image": "none"}),
    )));
    let handle = mcp
        .client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    let count_for = |progress: &Arc<Mutex<Vec<ProgressNotificationParam>>>| {
        progress
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.progress_token == token)
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(5), || {
            mcp.progress.lock().unwrap().iter().any(|p| {
                p.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("generating"))
            })
        }),
        "the job never started generating"
    );
    let cancelled_at = Instant::now();
    handle.cancel(Some("test".into())).await.unwrap();

    // Heartbeats come every 200 ms while a job runs; none once it stopped.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_one_second = count_for(&mcp.progress);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        count_for(&mcp.progress),
        after_one_second,
        "the job still runs"
    );
    // The stream would have delivered its image by now, had the job not stopped.
    assert!(cancelled_at.elapsed() > Duration::from_millis(3500));
    assert!(files_in(&mcp.out_dir).is_empty());

    // The server still works after a cancellation.
    let result = mcp
        .call(
            "generate_image",
            json!({"prompt": "after", "return_image": "none"}),
        )
        .await;
    assert_eq!(result.is_error, Some(false), "{:?}", texts(&result));
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_one_engine_and_one_refresh() {
    let server = Server::start();
    let used = single_use_oauth(&server);
    // The real backend gives every image its own call id, which the file name carries.
    let png = real_png(32, 32, false);
    for id in ["ig_1", "ig_2", "ig_3", "ig_4"] {
        server.enqueue(RESPONSES_PATH, image_stream(&[(id, &png)]));
    }
    let sandbox_auth = codex_auth(-60);
    let mut sandbox = Sandbox::new();
    write_json(&sandbox.home().join(".codex/auth.json"), &sandbox_auth);
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let args = json!({"prompt": "a pair", "return_image": "none"});
    let (a, b, c) = tokio::join!(
        mcp.call("generate_image", args.clone()),
        mcp.call("generate_image", args.clone()),
        mcp.call(
            "generate_image",
            json!({"prompt": "two more", "count": 2, "return_image": "none"})
        ),
    );
    for result in [&a, &b, &c] {
        assert_eq!(result.is_error, Some(false), "{:?}", texts(result));
    }
    assert_eq!(structured_images(&c).len(), 2);
    let mut paths: Vec<Value> = [&a, &b, &c]
        .iter()
        .flat_map(|r| structured_images(r))
        .map(|i| i["path"].clone())
        .collect();
    paths.sort_by_key(|p| p.to_string());
    paths.dedup();
    assert_eq!(paths.len(), 4, "two jobs wrote one file: {paths:?}");
    assert_eq!(
        *used.lock().unwrap(),
        vec!["refresh-0".to_string()],
        "one refresh for every call"
    );
    assert_eq!(server.requests_to("/oauth/token").len(), 1);
    let tokens: Vec<String> = server
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(tokens.len(), 4);
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_invalid_params_naming_the_field() {
    let server = serving(png_bytes(1, 10));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let cases = [
        (
            "generate_image",
            json!({"prompt": "cat", "count": 9}),
            "`count`",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "count": 0}),
            "`count`",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "count": "two"}),
            "`count`",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "return_image": "huge"}),
            "`return_image`",
        ),
        ("generate_image", json!({"prompt": ""}), "`prompt`"),
        ("generate_image", json!({}), "prompt"),
        (
            "generate_image",
            json!({"prompt": "cat", "images": "a.png"}),
            "`images`",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "images": [""]}),
            "`images[0]`",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "mask": "m.png"}),
            "`mask`",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "output_dir": " "}),
            "`output_dir`",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "size": "1000x1000"}),
            "`size` 1000x1000",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "size": "big"}),
            "`size` must be",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "quality": "best"}),
            "`quality` must be one of",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "format": "gif"}),
            "`format` must be one of",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "background": "pink"}),
            "`background`",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "image_model": "gpt image"}),
            "`image_model`",
        ),
        (
            "generate_image",
            json!({"prompt": "cat", "background": "transparent", "format": "jpeg"}),
            "`background` transparent needs `format` png or webp",
        ),
        (
            "edit_image",
            json!({"prompt": "cat", "images": []}),
            "`images`",
        ),
        ("edit_image", json!({"prompt": "cat"}), "images"),
    ];
    for (tool, args, field) in cases {
        let message = invalid_params_message(mcp.call_raw(tool, args.clone()).await);
        assert!(message.contains(field), "{tool} {args}: {message}");
    }
    assert!(server.requests_to(RESPONSES_PATH).is_empty());
    assert!(files_in(&mcp.out_dir).is_empty());
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_status_is_the_smoke_report_with_the_server_defaults() {
    let server = serving(png_bytes(1, 10));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet", "--retries", "2"]).await;
    let result = mcp.call("auth_status", json!({})).await;
    assert_eq!(result.is_error, Some(false), "{:?}", texts(&result));
    let report = result.structured_content.clone().unwrap();
    let text: Value = serde_json::from_str(&texts(&result)[0]).unwrap();
    assert_eq!(text, report);
    assert_eq!(report["auth_format"], "codex-auth-json");
    assert_eq!(report["account_id"], "acct-123");
    assert_eq!(report["credential_state"], "ok");
    assert_eq!(report["retries"], 2);
    // Without --timeout a tool call's attempt stops after 300 s, not the CLI's 900.
    assert_eq!(report["timeout_ms"], 300_000);
    assert_eq!(report["out_dir"], mcp.out_dir.display().to_string());
    assert_eq!(
        report["responses_endpoint"],
        format!("{}/responses", server.base_url())
    );
    assert!(!report.to_string().contains("refresh-0"));
    mcp.stop().await;

    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet", "--timeout", "42"]).await;
    let report = mcp
        .call("auth_status", json!({}))
        .await
        .structured_content
        .unwrap();
    assert_eq!(report["timeout_ms"], 42_000);
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_usage_is_the_usage_report() {
    let server = Server::start();
    let now = now_secs();
    server.enqueue(
        "/backend-api/wham/usage",
        Reply::json(
            200,
            &json!({"plan_type": "plus", "rate_limit": {"allowed": true, "limit_reached": false,
                "primary_window": {"used_percent": 42, "limit_window_seconds": 18000,
                    "reset_after_seconds": 4320, "reset_at": now + 4320},
                "secondary_window": null}, "credits": null}),
        ),
    );
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let result = mcp.call("image_usage", json!({})).await;
    assert_eq!(result.is_error, Some(false), "{:?}", texts(&result));
    let report = result.structured_content.clone().unwrap();
    let keys = object_keys(&report);
    assert_eq!(
        keys,
        [
            "plan_type",
            "allowed",
            "limit_reached",
            "primary",
            "secondary"
        ]
    );
    assert_eq!(report["plan_type"], "plus");
    assert_eq!(report["primary"]["used_percent"], 42);
    assert_eq!(report["secondary"], Value::Null);
    let text: Value = serde_json::from_str(&texts(&result)[0]).unwrap();
    assert_eq!(text, report);

    // A failure is an error result in plain words, not a protocol error.
    server.enqueue(
        "/backend-api/wham/usage",
        Reply::json(500, &json!({"error": "down"})),
    );
    let result = mcp.call("image_usage", json!({})).await;
    assert_eq!(result.is_error, Some(true));
    assert!(!texts(&result)[0].is_empty());
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_controls_reach_the_request_and_the_server_flags_are_defaults() {
    let jpeg = {
        let img = image::RgbImage::from_fn(1536, 864, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    };
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &jpeg)]));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet", "--quality", "high"]).await;
    let result = mcp
        .call(
            "generate_image",
            json!({"prompt": "a lighthouse", "size": "16:9", "format": "JPG",
                "background": "opaque", "image_model": "gpt-image-2", "return_image": "full"}),
        )
        .await;
    assert_eq!(result.is_error, Some(false), "{:?}", texts(&result));
    let body = server.requests_to(RESPONSES_PATH)[0].json();
    let tool = &body["tools"][0];
    assert_eq!(tool["type"], "image_generation");
    assert_eq!(tool["size"], "1536x864");
    assert_eq!(tool["output_format"], "jpeg");
    assert_eq!(tool["background"], "opaque");
    assert_eq!(tool["model"], "gpt-image-2");
    // `--quality high` on the server's command line is every call's default.
    assert_eq!(tool["quality"], "high");
    assert!(tool.get("action").is_none(), "{tool}");
    let entry = &structured_images(&result)[0];
    assert_eq!(entry["format"], "jpeg");
    assert_eq!(
        (&entry["width"], &entry["height"]),
        (&json!(1536), &json!(864))
    );
    let path = entry["path"].as_str().unwrap();
    assert!(path.ends_with(".jpg") || path.ends_with(".jpeg"), "{path}");
    let blocks = image_blocks(&result);
    assert_eq!(blocks[0].1, "image/jpeg");
    assert_eq!(blocks[0].0, jpeg);
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_image_with_a_mask_asks_for_an_edit() {
    let server = serving(real_png(64, 64, false));
    let mut sandbox = authed_sandbox();
    std::fs::write(sandbox.work().join("photo.png"), real_png(64, 64, false)).unwrap();
    std::fs::write(sandbox.work().join("mask.png"), real_png(64, 64, true)).unwrap();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let result = mcp
        .call(
            "edit_image",
            json!({"prompt": "a hat", "images": ["photo.png"], "mask": "mask.png",
                "return_image": "none"}),
        )
        .await;
    assert_eq!(result.is_error, Some(false), "{:?}", texts(&result));
    let body = server.requests_to(RESPONSES_PATH)[0].json();
    let tool = &body["tools"][0];
    assert_eq!(tool["action"], "edit");
    assert!(tool["input_image_mask"]["image_url"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));

    // A mask that is not a PNG with alpha is the engine's error, as a tool result.
    std::fs::write(sandbox.work().join("flat.png"), real_png(64, 64, false)).unwrap();
    let result = mcp
        .call(
            "edit_image",
            json!({"prompt": "a hat", "images": ["photo.png"], "mask": "flat.png"}),
        )
        .await;
    assert_eq!(result.is_error, Some(true));
    assert!(
        texts(&result)[0].contains("no alpha channel"),
        "{:?}",
        texts(&result)
    );
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1);
    mcp.stop().await;
}

#[test]
fn one_shot_flags_are_refused_with_mcp() {
    let server = serving(png_bytes(1, 10));
    let sandbox = authed_sandbox();
    for extra in [
        &["a", "fox"][..],
        &["--prompt", "a fox"],
        &["-i", "ref.png"],
        &["--output", "x.png"],
        &["--smoke"],
        &["--json"],
    ] {
        let mut cmd = mcp_command(&sandbox, &server, extra);
        cmd.stdin(std::process::Stdio::null());
        let run = run_command(cmd);
        assert_eq!(run.code, 2, "{extra:?}: {run}");
        assert!(run.stdout.is_empty(), "{run}");
        assert!(
            run.stderr.starts_with("Error: --mcp does not take "),
            "{run}"
        );
    }
    let run = sandbox.run(&["--help"]);
    assert!(run.stdout.contains("--mcp"), "{run}");
}

/// stdout carries nothing but MCP, even with --verbose; the server exits 0 when stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_carries_only_json_rpc_and_diagnostics_go_to_stderr() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let png = real_png(64, 64, false);
    let server = Server::start();
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&generating("ig_1"))
            .sleep_ms(700)
            .event(&image_done("ig_1", &png))
            .event(&completed(&[("ig_1", &png)]))
            .end(),
    );
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_MCP_HEARTBEAT_MS", "100");
    let mut cmd = tokio::process::Command::from(mcp_command(&sandbox, &server, &["--verbose"]));
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "generate_image", "arguments": {"prompt": "x", "return_image": "none"},
            "_meta": {"progressToken": "p"}}}),
    ];
    for message in messages {
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut result = None;
    let mut wire_progress = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        let message: Value = serde_json::from_str(&line).expect("non-JSON on stdout");
        assert_eq!(message["jsonrpc"], "2.0");
        if message["method"] == "notifications/progress" {
            assert_eq!(message["params"]["progressToken"], "p");
            wire_progress.push(message["params"]["progress"].as_f64().unwrap());
        }
        if message["id"] == 2 {
            result = Some(message);
            break;
        }
    }
    let result = result.expect("a tool result");
    assert_eq!(result["result"]["isError"], false, "{result}");
    assert!(wire_progress.len() >= 5, "{wire_progress:?}");
    assert!(
        wire_progress.windows(2).all(|w| w[1] > w[0]),
        "progress must increase on the wire: {wire_progress:?}"
    );
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("MCP server on stdio"), "{stderr}");
    assert!(
        stderr.contains("codex-imagen: mcp: generating, "),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_jobs_with_the_same_call_id_get_files_of_their_own() {
    // `serving` answers every job with the call id `ig_1`, in the same second.
    let server = serving(real_png(64, 64, false));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let result = mcp
        .call(
            "generate_image",
            json!({"prompt": "twins", "count": 3, "return_image": "none"}),
        )
        .await;
    assert_eq!(result.is_error, Some(false), "{:?}", texts(&result));
    let mut paths: Vec<String> = structured_images(&result)
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 3, "three distinct files: {paths:?}");
    for path in &paths {
        assert!(Path::new(path).exists(), "{path}");
    }
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_arguments_are_invalid_params_naming_them_and_nothing_is_sent() {
    let server = serving(png_bytes(1, 10));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    for tool in ["generate_image", "edit_image"] {
        let args = json!({"prompt": "cat", "images": ["a.png"], "qualty": "high", "colour": "red"});
        let message = invalid_params_message(mcp.call_raw(tool, args).await);
        assert!(
            message.starts_with(
                "unknown arguments `qualty` (did you mean `quality`?), `colour`; the arguments are `prompt`"
            ),
            "{tool}: {message}"
        );
    }
    let message = invalid_params_message(
        mcp.call_raw("generate_image", json!({"prompt": "cat", "colour": "red"}))
            .await,
    );
    assert!(
        message.starts_with("unknown argument `colour`;"),
        "{message}"
    );
    assert!(server.requests().is_empty(), "the backend was asked");
    assert!(files_in(&mcp.out_dir).is_empty());
    mcp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argument_errors_speak_the_schema_and_prompts_are_capped_as_the_service_caps_them() {
    let server = serving(png_bytes(1, 10));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let cases = [
        (
            json!({"prompt": "cat", "count": "two"}),
            "`count` must be an integer from 1 to 4, got \"two\"",
        ),
        (
            json!({"prompt": "cat", "count": 2.5}),
            "`count` must be an integer from 1 to 4, got 2.5",
        ),
        (
            json!({"prompt": "cat", "images": "a.png"}),
            "`images` must be an array of strings, got \"a.png\"",
        ),
        (
            json!({"prompt": "cat", "return_image": null}),
            "`return_image` must be one of \"thumbnail\", \"full\", \"none\", got null",
        ),
        (json!({"prompt": 7}), "`prompt` must be a string, got 7"),
        (json!({"size": "auto"}), "`prompt` is required"),
        (
            json!({"prompt": "x".repeat(32_001)}),
            "`prompt` must be at most 32000 characters, got 32001",
        ),
        (
            json!({"prompt": "x".repeat(8 * 1024 * 1024)}),
            "`prompt` must be at most 32000 characters, got 8388608",
        ),
    ];
    for (args, expected) in cases {
        let message = invalid_params_message(mcp.call_raw("generate_image", args).await);
        assert_eq!(message, expected);
        assert!(!message.contains("i64"), "{message}");
    }
    // The cap counts characters, as the service's does: 32000 of them pass.
    let at_cap = "é".repeat(32_000);
    let result = mcp
        .call(
            "generate_image",
            json!({"prompt": at_cap, "return_image": "none"}),
        )
        .await;
    assert_eq!(result.is_error, Some(false), "{:?}", texts(&result));
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1);
    mcp.stop().await;
}

/// Every property's schema agrees with itself: a type that allows null has null in its enum
/// (here: no nullable enums at all), and the prompt carries the service's cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_schemas_are_consistent() {
    let server = serving(png_bytes(1, 10));
    let mut sandbox = authed_sandbox();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let tools = mcp.client.list_all_tools().await.unwrap();
    for tool in &tools {
        let schema = Value::Object(tool.input_schema.as_ref().clone());
        let Some(properties) = schema["properties"].as_object() else {
            continue;
        };
        for (field, spec) in properties {
            let nullable = match &spec["type"] {
                Value::Array(types) => types.contains(&json!("null")),
                other => *other == json!("null"),
            };
            if let Some(choices) = spec["enum"].as_array() {
                assert_eq!(
                    nullable,
                    choices.contains(&Value::Null),
                    "{}.{field}: {spec}",
                    tool.name
                );
            }
        }
        if tool.name == "generate_image" || tool.name == "edit_image" {
            assert_eq!(schema["properties"]["prompt"]["maxLength"], 32_000);
            assert_eq!(schema["properties"]["return_image"]["type"], "string");
        }
    }
    mcp.stop().await;
}

/// A raw `--mcp` process after `initialize`: write a line, read stdout until the answer with
/// `id` (`Value::Null` for an answer without one).
struct RawMcp {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl RawMcp {
    async fn start(sandbox: &Sandbox, server: &Server) -> RawMcp {
        let mut cmd = tokio::process::Command::from(mcp_command(sandbox, server, &["--quiet"]));
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            child.stdout.take().unwrap(),
        ));
        let mut raw = RawMcp {
            child,
            stdin,
            lines,
        };
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}});
        let answer = raw.ask(format!("{init}\n").as_bytes(), &json!(1)).await;
        assert!(answer["result"].is_object(), "{answer}");
        raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
            .await;
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(bytes).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn ask(&mut self, bytes: &[u8], id: &Value) -> Value {
        self.send(bytes).await;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
                .await
                .expect("an answer within 30 s")
                .unwrap()
                .expect("stdout open");
            let message: Value = serde_json::from_str(&line).expect("only JSON on stdout");
            if message.get("id") == Some(id) {
                return message;
            }
        }
    }
}

fn error_of(answer: &Value) -> (i64, String) {
    (
        answer["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("{answer}")),
        answer["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_gets_an_answer_even_unreadable_and_oversized_ones() {
    let server = serving(png_bytes(1, 10));
    let sandbox = authed_sandbox();
    let mut raw = RawMcp::start(&sandbox, &server).await;

    let answer = raw.ask(b"this is not JSON\n", &Value::Null).await;
    let (code, message) = error_of(&answer);
    assert_eq!(code, -32700, "{answer}");
    assert!(message.starts_with("Parse error"), "{message}");

    let wrong_shape = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "generate_image", "arguments": [1]}});
    let answer = raw
        .ask(format!("{wrong_shape}\n").as_bytes(), &json!(3))
        .await;
    let (code, message) = error_of(&answer);
    assert_eq!(code, -32602, "{answer}");
    assert!(
        message.contains("`arguments` must be an object"),
        "{message}"
    );

    // Over rmcp's 16 MiB line limit: the id is found at the start, at the end, or not at all.
    let huge = "x".repeat(17 * 1024 * 1024);
    let leading = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{{\"name\":\"generate_image\",\"arguments\":{{\"prompt\":\"{huge}\"}}}}}}\n"
    );
    let answer = raw.ask(leading.as_bytes(), &json!(4)).await;
    let (code, message) = error_of(&answer);
    assert_eq!(code, -32600, "{answer}");
    assert!(message.contains("over this server's limit"), "{message}");
    let trailing = format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{{\"name\":\"generate_image\",\"arguments\":{{\"prompt\":\"{huge}\"}}}},\"id\":\"five\"}}\n"
    );
    let answer = raw.ask(trailing.as_bytes(), &json!("five")).await;
    assert_eq!(error_of(&answer).0, -32600, "{answer}");
    let answer = raw.ask(format!("{huge}\n").as_bytes(), &Value::Null).await;
    assert_eq!(error_of(&answer).0, -32600, "{answer}");
    drop(huge);

    // The server still serves.
    let list = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"});
    let answer = raw.ask(format!("{list}\n").as_bytes(), &json!(6)).await;
    assert_eq!(
        answer["result"]["tools"].as_array().unwrap().len(),
        4,
        "{answer}"
    );
    assert!(server.requests().is_empty(), "the backend was asked");
    drop(raw.stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), raw.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// Codex CLI starts MCP servers without `CODEX_HOME`: the error says so and shows both fixes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_under_mcp_names_the_host_environment_and_the_fix() {
    let server = serving(png_bytes(1, 10));
    let mut sandbox = Sandbox::new();
    let mcp = start(&mut sandbox, &server, &["--quiet"]).await;
    let result = mcp.call("generate_image", json!({"prompt": "cat"})).await;
    assert_eq!(result.is_error, Some(true));
    let text = texts(&result).join("\n");
    assert!(text.starts_with("No auth JSON found. Tried:\n"), "{text}");
    assert!(text.contains("MCP hosts may not pass CODEX_HOME"), "{text}");
    assert!(text.contains("env_vars = [\"CODEX_HOME\"]"), "{text}");
    assert!(text.contains("\"--auth\""), "{text}");
    let structured = result.structured_content.unwrap();
    assert!(structured["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("env_vars"));
    let status = mcp.call("auth_status", json!({})).await;
    assert_eq!(status.is_error, Some(true));
    assert!(texts(&status)[0].contains("MCP hosts may not pass CODEX_HOME"));
    assert!(server.requests().is_empty());
    mcp.stop().await;
}

/// Issue #22: with `--pool`, a call moves off an account at its usage limit and
/// `structuredContent` names the account of each image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_call_names_the_account_and_moves_off_a_limited_one() {
    let server = Server::start();
    let png = png_bytes(8, 200);
    let limit = json!({"error": {"type": "usage_limit_reached", "plan_type": "plus",
        "message": "The usage limit has been reached", "resets_in_seconds": 3600}});
    server.handle(move |request| {
        if request.header("chatgpt-account-id") == Some("acct-aaaa-0001") {
            Reply::json(429, &limit)
        } else {
            image_stream(&[("ig_1", &png)])
        }
    });
    let mut sandbox = Sandbox::new();
    let mut paths = Vec::new();
    for (dir, account) in [("a", "acct-aaaa-0001"), ("b", "acct-bbbb-0002")] {
        let path = sandbox.path(&format!("{dir}/auth.json"));
        let mut auth = codex_auth(3600);
        auth["tokens"]["account_id"] = json!(account);
        write_json(&path, &auth);
        paths.push(path.display().to_string());
    }
    let data = sandbox.path("data").display().to_string();
    let extra = [
        "--quiet",
        "--pool",
        "--auth",
        &paths[0],
        "--auth",
        &paths[1],
        "--data-dir",
        &data,
    ];
    let mcp = start(&mut sandbox, &server, &extra).await;
    let result = mcp.call("generate_image", json!({"prompt": "a fox"})).await;
    assert_ne!(result.is_error, Some(true), "{:?}", texts(&result));
    let structured = result.structured_content.unwrap();
    assert_eq!(
        structured["images"][0]["account"], "acct…0002",
        "{structured}"
    );
    let accounts: Vec<String> = server
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(|r| {
            r.header("chatgpt-account-id")
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(accounts, ["acct-aaaa-0001", "acct-bbbb-0002"]);
    mcp.stop().await;
}
