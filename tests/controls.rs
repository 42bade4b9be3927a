//! Image controls (`--size`, `--format`, `--mask`, ...): the binary against a loopback server.
//!
//! What a user checks: exactly what each backend was sent (and that nothing changes without
//! controls), the exit code and message of a bad value, the saved file's name and bytes, the
//! `--json` description of what came back, and the warnings when it is not what was asked for.

mod support;

use std::path::PathBuf;

use serde_json::{json, Value};
use support::*;

const GENERATIONS: &str = "/backend-api/codex/images/generations";
const EDITS: &str = "/backend-api/codex/images/edits";

fn rgb(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb([20, 40, 90])))
}

fn rgba(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
        w,
        h,
        image::Rgba([20, 40, 90, 0]),
    ))
}

fn png(w: u32, h: u32) -> Vec<u8> {
    encode(rgb(w, h), image::ImageFormat::Png)
}

fn png_alpha(w: u32, h: u32) -> Vec<u8> {
    encode(rgba(w, h), image::ImageFormat::Png)
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(rgb(w, h), image::ImageFormat::Jpeg)
}

fn webp(w: u32, h: u32) -> Vec<u8> {
    encode(rgb(w, h), image::ImageFormat::WebP)
}

/// A JPEG with a JUMBF box in an APP11 segment right after SOI: how C2PA manifests travel.
fn jpeg_with_c2pa(w: u32, h: u32) -> Vec<u8> {
    let plain = jpeg(w, h);
    let mut payload = b"JP\x00\x01\x00\x00\x00\x01".to_vec();
    payload.extend_from_slice(&[0, 0, 0, 16]);
    payload.extend_from_slice(b"jumb");
    payload.extend_from_slice(b"c2pa-manifest");
    let len = u16::try_from(payload.len() + 2).unwrap();
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xEB]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&plain[2..]);
    out
}

fn images_reply(bytes: &[u8]) -> Reply {
    Reply::json(
        200,
        &json!({"created": 1_763_779_740, "data": [{"b64_json": b64(bytes)}]}),
    )
}

/// The tool object as sent, serialised in the order it was sent.
fn sent_tool(server: &Server) -> String {
    let body = server.requests_to(RESPONSES_PATH)[0].json();
    serde_json::to_string(&body["tools"][0]).unwrap()
}

fn sent_images_body(server: &Server, path: &str) -> Value {
    server.requests_to(path)[0].json()
}

fn warnings(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("codex-imagen: warning:"))
        .collect()
}

fn saved_path(run: &Run) -> PathBuf {
    let paths = stdout_paths(run);
    assert_eq!(paths.len(), 1, "{run}");
    paths[0].clone()
}

const ALL_CONTROLS: [&str; 20] = [
    "--size",
    "16:9",
    "--quality=HIGH",
    "--output-format",
    "webp",
    "--compression",
    "80",
    "--background",
    "opaque",
    "--image-model",
    "gpt-image-2",
    "--moderation",
    "low",
    "--partial-images",
    "2",
    "--action",
    "generate",
    "--input-fidelity",
    "high",
    "a fox",
];

#[test]
fn without_controls_both_bodies_are_unchanged() {
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png(16, 16))]));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["a fox"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        sent_tool(&server),
        r#"{"type":"image_generation","output_format":"png"}"#
    );

    server.enqueue(GENERATIONS, images_reply(&png(16, 16)));
    let run = run_against(&sandbox, &server, &["a fox", "--backend", "images"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        serde_json::to_string(&sent_images_body(&server, GENERATIONS)).unwrap(),
        r#"{"prompt":"a fox","background":"auto","model":"gpt-image-2","quality":"auto","size":"auto"}"#
    );
}

#[test]
fn every_control_goes_into_the_responses_tool() {
    let server = Server::start();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &webp(16, 16))]));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &ALL_CONTROLS);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        sent_tool(&server),
        concat!(
            r#"{"type":"image_generation","output_format":"webp","size":"1536x864","#,
            r#""quality":"high","output_compression":80,"background":"opaque","#,
            r#""model":"gpt-image-2","moderation":"low","partial_images":2,"#,
            r#""action":"generate","input_fidelity":"high"}"#
        )
    );
}

#[test]
fn each_control_alone_adds_only_its_key() {
    let cases: [(&[&str], &str); 6] = [
        (&["--size", "1024x1536"], r#","size":"1024x1536"}"#),
        (&["--quality", "low"], r#","quality":"low"}"#),
        (
            &["--background=transparent"],
            r#","background":"transparent"}"#,
        ),
        (&["--moderation", "auto"], r#","moderation":"auto"}"#),
        (&["--partial-images", "0"], r#","partial_images":0}"#),
        (&["--action", "edit"], r#","action":"edit"}"#),
    ];
    let server = Server::start();
    let sandbox = authed_sandbox();
    for (flags, tail) in cases {
        server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png(16, 16))]));
        let mut args = vec!["a fox"];
        args.extend_from_slice(flags);
        let run = run_against(&sandbox, &server, &args);
        assert_eq!(run.code, 0, "{flags:?}: {run}");
        let requests = server.requests_to(RESPONSES_PATH);
        let body = requests.last().unwrap().json();
        let tool = serde_json::to_string(&body["tools"][0]).unwrap();
        assert_eq!(
            tool,
            format!(r#"{{"type":"image_generation","output_format":"png"{tail}"#),
            "{flags:?}"
        );
    }
}

#[test]
fn images_body_takes_its_controls_in_place() {
    let server = Server::start();
    server.enqueue(GENERATIONS, images_reply(&webp(16, 16)));
    let sandbox = authed_sandbox();
    let mut args = vec!["--backend", "images"];
    args.extend_from_slice(&ALL_CONTROLS);
    let run = run_against(&sandbox, &server, &args);
    assert_eq!(run.code, 0, "{run}");
    // partial_images, action and input_fidelity are Responses-tool options: not sent here.
    assert_eq!(
        serde_json::to_string(&sent_images_body(&server, GENERATIONS)).unwrap(),
        concat!(
            r#"{"prompt":"a fox","background":"opaque","model":"gpt-image-2","#,
            r#""quality":"high","size":"1536x864","output_format":"webp","#,
            r#""output_compression":80,"moderation":"low"}"#
        )
    );
}

#[test]
fn the_mask_goes_with_the_edit_on_both_backends() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    let mask = png_alpha(16, 16);
    std::fs::write(sandbox.work().join("ref.png"), png(16, 16)).unwrap();
    std::fs::write(sandbox.work().join("mask.png"), &mask).unwrap();
    let mask_url = format!("data:image/png;base64,{}", b64(&mask));

    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png(16, 16))]));
    let run = run_against(
        &sandbox,
        &server,
        &["edit it", "-i", "ref.png", "--mask", "mask.png"],
    );
    assert_eq!(run.code, 0, "{run}");
    let body = server.requests_to(RESPONSES_PATH)[0].json();
    assert_eq!(
        body["tools"][0],
        json!({"type": "image_generation", "output_format": "png",
            "input_image_mask": {"image_url": mask_url}})
    );

    server.enqueue(EDITS, images_reply(&png(16, 16)));
    let run = run_against(
        &sandbox,
        &server,
        &[
            "edit it",
            "-i",
            "ref.png",
            "--mask=mask.png",
            "--backend=images",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        sent_images_body(&server, EDITS)["mask"],
        json!({"image_url": mask_url})
    );
}

#[test]
fn bad_values_are_usage_errors_before_auth() {
    let cases: [(&[&str], &str); 12] = [
        (
            &["--size", "big"],
            "--size must be WxH (e.g. 1536x1024), W:H (e.g. 16:9) or auto",
        ),
        (
            &["--size=1000x1000"],
            "--size 1000x1000: width and height must both be multiples of 16",
        ),
        (
            &["--quality", "best"],
            "--quality must be one of: low, medium, high, auto",
        ),
        (
            &["--format", "gif"],
            "--format must be one of: png, jpeg, webp",
        ),
        (
            &["--output-format", "bmp"],
            "--format must be one of: png, jpeg, webp",
        ),
        (
            &["--compression", "101", "--format", "jpeg"],
            "--compression must be an integer from 0 to 100",
        ),
        (
            &["--compression", "50"],
            "--compression needs --format jpeg or webp",
        ),
        (
            &["--background", "clear"],
            "--background must be one of: auto, opaque, transparent",
        ),
        (
            &["--background", "transparent", "--format", "jpg"],
            "--background transparent needs --format png or webp",
        ),
        (
            &["--moderation", "-1"],
            "--moderation must be one of: auto, low",
        ),
        (
            &["--partial-images", "4"],
            "--partial-images must be an integer from 0 to 3",
        ),
        (
            &["--mask", "mask.png"],
            "--mask needs at least one reference image",
        ),
    ];
    // No credentials at all: a usage error must come first (SPEC order).
    let sandbox = Sandbox::new();
    for (flags, message) in cases {
        let mut args = vec!["a fox"];
        args.extend_from_slice(flags);
        let run = sandbox.run(&args);
        assert_eq!(run.code, 2, "{flags:?}: {run}");
        assert!(
            run.stderr.contains(&format!("Error: {message}")),
            "{flags:?}: {run}"
        );
    }
    for (flags, message) in [
        (
            ["--action", "draw"],
            "--action must be one of: auto, generate, edit",
        ),
        (
            ["--input-fidelity", "max"],
            "--input-fidelity must be one of: low, high",
        ),
        (["--image-model", ""], "--image-model must not be empty"),
    ] {
        let run = sandbox.run(&["a fox", flags[0], flags[1]]);
        assert_eq!(run.code, 2, "{flags:?}: {run}");
        assert!(run.stderr.contains(message), "{flags:?}: {run}");
    }
    let run = sandbox.run(&["a fox", "--size"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("Missing value for --size"), "{run}");
}

#[test]
fn an_unusable_mask_is_an_input_error_naming_the_file() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    std::fs::write(sandbox.work().join("ref.png"), png(16, 16)).unwrap();
    std::fs::write(sandbox.work().join("opaque.png"), png(16, 16)).unwrap();
    std::fs::write(sandbox.work().join("mask.jpg"), jpeg(16, 16)).unwrap();
    for (mask, message) in [
        ("missing.png", "Cannot read --mask"),
        ("opaque.png", "the PNG has no alpha channel"),
        ("mask.jpg", "not a PNG file"),
    ] {
        let run = run_against(
            &sandbox,
            &server,
            &["edit", "-i", "ref.png", "--mask", mask],
        );
        assert_eq!(run.code, 1, "{mask}: {run}");
        assert!(run.stderr.contains(message), "{mask}: {run}");
        assert!(run.stderr.contains(mask), "{mask}: {run}");
    }
    assert!(server.requests_to(RESPONSES_PATH).is_empty());
}

#[test]
fn automatic_names_take_the_extension_of_the_bytes() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    for (bytes, ext, format) in [
        (png(32, 16), "png", "png"),
        (jpeg(32, 16), "jpg", "jpeg"),
        (webp(32, 16), "webp", "webp"),
    ] {
        server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &bytes)]));
        let run = run_against(&sandbox, &server, &["a fox", "--quality", "low"]);
        assert_eq!(run.code, 0, "{run}");
        let path = saved_path(&run);
        assert_eq!(
            path.extension().unwrap().to_str(),
            Some(ext),
            "{format}: {run}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert!(warnings(&run).is_empty(), "{run}");

        // Not streamed, two images: numbered names, same rule.
        server.enqueue(
            RESPONSES_PATH,
            Reply::json(200, &response_object(&[("ig_a", &bytes), ("ig_b", &bytes)])),
        );
        let run = run_against(
            &sandbox,
            &server,
            &["a fox", "--no-stream", "-o", "pic.png"],
        );
        assert_eq!(run.code, 0, "{run}");
        let names: Vec<String> = stdout_paths(&run)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [format!("pic-1.{ext}"), format!("pic-2.{ext}")],
            "{run}"
        );
    }
}

#[test]
fn an_exact_output_is_kept_with_a_warning_when_its_extension_disagrees() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    let bytes = webp(16, 16);
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &bytes)]));
    let run = run_against(&sandbox, &server, &["a fox", "--output", "x.png"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(saved_path(&run), real_work(&sandbox).join("x.png"));
    assert_eq!(std::fs::read(sandbox.work().join("x.png")).unwrap(), bytes);
    assert_eq!(
        warnings(&run),
        ["codex-imagen: warning: --output x.png has extension .png but the image is webp"]
    );

    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &jpeg(16, 16))]));
    let run = run_against(&sandbox, &server, &["a fox", "-o", "y.jpeg"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(warnings(&run).is_empty(), "{run}");
}

#[test]
fn json_describes_what_came_back() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    for (bytes, format, width, height, alpha, c2pa) in [
        (png_alpha(48, 32), "png", 48, 32, true, false),
        (png(48, 32), "png", 48, 32, false, false),
        (jpeg_with_c2pa(40, 24), "jpeg", 40, 24, false, true),
        (webp(64, 16), "webp", 64, 16, false, false),
    ] {
        server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &bytes)]));
        let run = run_against(&sandbox, &server, &["a fox", "--quality", "high", "--json"]);
        assert_eq!(run.code, 0, "{run}");
        let json = run.json();
        let image = &json["images"][0];
        let keys = object_keys(image);
        assert_eq!(
            keys,
            [
                "path",
                "decodedPath",
                "bytes",
                "sha256",
                "call_id",
                "status",
                "partial",
                "revised_prompt",
                "format",
                "width",
                "height",
                "has_alpha",
                "c2pa"
            ]
        );
        assert_eq!(image["format"], format, "{run}");
        assert_eq!(image["width"], width);
        assert_eq!(image["height"], height);
        assert_eq!(image["has_alpha"], alpha);
        assert_eq!(image["c2pa"], c2pa);
        assert_eq!(json["requested"], json!({"quality": "high"}));
        let top = object_keys(&json);
        assert_eq!(top.last(), Some(&"requested"));
    }
}

#[test]
fn a_lighthouse_at_dusk_in_16_9_webp() {
    let server = Server::start();
    let bytes = webp(1536, 864);
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &bytes)]));
    let sandbox = authed_sandbox();
    let run = run_against(
        &sandbox,
        &server,
        &[
            "--size",
            "16:9",
            "--format",
            "webp",
            "--json",
            "a lighthouse at dusk",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    let image = &json["images"][0];
    let path = PathBuf::from(image["path"].as_str().unwrap());
    assert_eq!(path.extension().unwrap(), "webp", "{run}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(image["format"], "webp");
    assert_eq!(image["width"], 1536);
    assert_eq!(image["height"], 864);
    assert_eq!(
        json["requested"],
        json!({"size": "1536x864", "format": "webp"})
    );
    assert!(warnings(&run).is_empty(), "{run}");
    assert_eq!(
        sent_tool(&server),
        r#"{"type":"image_generation","output_format":"webp","size":"1536x864"}"#
    );
}

#[test]
fn a_size_or_format_not_honoured_is_one_warning() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png(48, 32))]));
    let run = run_against(&sandbox, &server, &["a fox", "--size", "2048x1152"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        warnings(&run),
        ["codex-imagen: warning: requested 2048x1152, the backend returned 48x32"]
    );

    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png(16, 16))]));
    let run = run_against(
        &sandbox,
        &server,
        &["a fox", "--format", "webp", "--background", "transparent"],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        warnings(&run),
        [
            "codex-imagen: warning: requested webp, the backend returned png; requested a \
          transparent background, the backend returned an image without alpha"
        ]
    );
    // The file still says what it is.
    assert_eq!(saved_path(&run).extension().unwrap(), "png");
}

#[test]
fn a_refused_size_names_the_nearest_valid_one_before_anything_is_sent() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    for (size, nearest) in [
        ("1000x1000", "1008x1008"),
        ("4096x2048", "3840x2048"),
        ("3840x2176", "3840x2160"),
    ] {
        let run = run_against(&sandbox, &server, &["a fox", "--size", size]);
        assert_eq!(run.code, 2, "{run}");
        assert!(
            run.stderr
                .contains(&format!("; the nearest valid size is {nearest}\n")),
            "{run}"
        );
    }
    assert!(server.requests().is_empty());
}
