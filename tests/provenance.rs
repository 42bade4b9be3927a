//! `--metadata none|sidecar|embed`: a sidecar record beside each image, or the prompt and the
//! record embedded in the file (read back with img-parts), and a C2PA-signed image left
//! byte-identical with a sidecar instead.

mod support;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::*;

fn encode(format: image::ImageFormat, w: u32, h: u32) -> Vec<u8> {
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        w,
        h,
        image::Rgb([200, 120, 40]),
    ));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A PNG with a `caBX` chunk (where C2PA manifests live in PNG) before IEND.
fn png_with_c2pa(w: u32, h: u32) -> Vec<u8> {
    let plain = encode(image::ImageFormat::Png, w, h);
    let mut png = img_parts::png::Png::from_bytes(plain.into()).unwrap();
    let at = png.chunks().len() - 1;
    png.chunks_mut().insert(
        at,
        img_parts::png::PngChunk::new(*b"caBX", b"jumb-c2pa-manifest".to_vec().into()),
    );
    png.encoder().bytes().to_vec()
}

fn run_with(sandbox: &Sandbox, server: &Server, image: &[u8], args: &[&str]) -> (Run, PathBuf) {
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", image)]));
    let run = run_against(sandbox, server, args);
    assert_eq!(run.code, 0, "{run}");
    let path = PathBuf::from(run.json()["images"][0]["path"].as_str().unwrap());
    (run, path)
}

fn sidecar_of(image: &Path) -> Value {
    let mut name = image.as_os_str().to_owned();
    name.push(".json");
    read_json(Path::new(&name))
}

#[test]
fn sidecar_records_the_prompt_references_controls_and_the_image() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    let reference = png_bytes(4, 200);
    std::fs::write(sandbox.work().join("ref.png"), &reference).unwrap();
    let image = encode(image::ImageFormat::Png, 64, 48);
    let (run, path) = run_with(
        &sandbox,
        &server,
        &image,
        &[
            "--metadata",
            "sidecar",
            "--json",
            "-i",
            "ref.png",
            "--input-ref",
            "https://example.com/a.png?sig=SECRET",
            "--quality",
            "high",
            "a fox in snow",
        ],
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        image,
        "the image is untouched"
    );
    let record = sidecar_of(&path);
    let keys = object_keys(&record);
    assert_eq!(
        keys,
        [
            "prompt",
            "revised_prompt",
            "model",
            "image_model",
            "backend",
            "request_id",
            "call_id",
            "created",
            "references",
            "requested",
            "format",
            "width",
            "height",
            "sha256",
            "tool"
        ]
    );
    assert_eq!(record["prompt"], "a fox in snow");
    assert_eq!(record["revised_prompt"], "a revised prompt");
    assert_eq!(record["model"], "gpt-5.4");
    assert_eq!(record["backend"], "responses");
    assert_eq!(record["request_id"], run.json()["request_id"]);
    assert_eq!(record["call_id"], "ig_1");
    let refs = record["references"].as_array().unwrap();
    assert_eq!(
        refs[0]["source"],
        real_work(&sandbox).join("ref.png").display().to_string()
    );
    assert_eq!(refs[0]["sha256"], sha256_hex(&reference));
    assert_eq!(refs[1]["source"], "https://example.com/a.png");
    assert_eq!(refs[1]["sha256"], Value::Null);
    assert_eq!(record["requested"]["quality"], "high");
    assert_eq!(record["format"], "png");
    assert_eq!(
        (record["width"].as_u64(), record["height"].as_u64()),
        (Some(64), Some(48))
    );
    assert_eq!(record["sha256"], sha256_hex(&image));
    assert_eq!(record["tool"]["name"], "codex-imagen");
    assert_eq!(record["tool"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(files_named(&sandbox.work(), ".tmp").is_empty());
}

#[test]
fn the_metadata_environment_variable_is_the_default_and_bad_values_are_usage_errors() {
    let server = Server::start();
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_METADATA", "sidecar");
    let image = encode(image::ImageFormat::Png, 16, 16);
    let (_, path) = run_with(&sandbox, &server, &image, &["--json", "a cat"]);
    assert_eq!(sidecar_of(&path)["prompt"], "a cat");
    let (_, path) = run_with(
        &sandbox,
        &server,
        &image,
        &[
            "--json",
            "--metadata",
            "none",
            "--out-dir",
            "plain",
            "a cat",
        ],
    );
    let mut name = path.as_os_str().to_owned();
    name.push(".json");
    assert!(
        !Path::new(&name).exists(),
        "--metadata none wins over the variable"
    );

    let run = run_against(&sandbox, &server, &["--metadata", "bogus", "a cat"]);
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(
        run.stderr,
        "Error: --metadata must be one of: none, sidecar, embed\n"
    );
    sandbox.env("CODEX_IMAGEN_METADATA", "loud");
    let run = run_against(&sandbox, &server, &["a cat"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .starts_with("Error: CODEX_IMAGEN_METADATA must be one of"),
        "{run}"
    );
}

#[test]
fn embed_puts_the_prompt_and_record_into_png_text_chunks() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    let image = encode(image::ImageFormat::Png, 32, 32);
    let (run, path) = run_with(
        &sandbox,
        &server,
        &image,
        &["--metadata", "embed", "--json", "a lighthouse at dusk"],
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_ne!(bytes, image);
    let json = run.json();
    assert_eq!(
        json["images"][0]["bytes"],
        bytes.len(),
        "bytes describe the final file"
    );
    assert_eq!(json["images"][0]["sha256"], sha256_hex(&bytes));
    let png = img_parts::png::Png::from_bytes(bytes.clone().into()).unwrap();
    let texts: Vec<String> = png
        .chunks()
        .iter()
        .filter(|c| &c.kind() == b"tEXt" || &c.kind() == b"iTXt")
        .map(|c| String::from_utf8_lossy(c.contents()).into_owned())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t == "Description\0a lighthouse at dusk"),
        "{texts:?}"
    );
    let software = format!("Software\0codex-imagen {}", env!("CARGO_PKG_VERSION"));
    assert!(texts.contains(&software), "{texts:?}");
    let record = texts
        .iter()
        .find(|t| t.starts_with("codex-imagen\0"))
        .expect("the record chunk");
    let json_start = record.find('{').unwrap();
    let embedded: Value = serde_json::from_str(&record[json_start..]).unwrap();
    assert_eq!(embedded["prompt"], "a lighthouse at dusk");
    assert_eq!(
        embedded["sha256"],
        sha256_hex(&image),
        "the image as generated"
    );
    assert!(image::load_from_memory(&bytes).is_ok(), "still a valid PNG");
}

#[test]
fn embed_writes_xmp_into_jpeg_and_webp() {
    for (format, ext) in [
        (image::ImageFormat::Jpeg, "jpg"),
        (image::ImageFormat::WebP, "webp"),
    ] {
        let server = Server::start();
        let sandbox = authed_sandbox();
        let image = encode(format, 24, 24);
        let (_, path) = run_with(
            &sandbox,
            &server,
            &image,
            &["--metadata", "embed", "--json", "an owl"],
        );
        assert_eq!(path.extension().unwrap(), ext);
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("<x:xmpmeta"), "{ext}: XMP packet present");
        assert!(text.contains("an owl"), "{ext}: the prompt is in it");
        assert!(
            image::load_from_memory(&bytes).is_ok(),
            "{ext}: still decodes"
        );
    }
}

#[test]
fn a_c2pa_signed_image_is_left_byte_identical_with_a_sidecar_and_a_warning() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    let image = png_with_c2pa(20, 20);
    let (run, path) = run_with(
        &sandbox,
        &server,
        &image,
        &["--metadata", "embed", "--json", "a seal"],
    );
    assert_eq!(std::fs::read(&path).unwrap(), image, "not one byte changed");
    let json = run.json();
    assert_eq!(json["images"][0]["c2pa"], true);
    assert_eq!(json["images"][0]["sha256"], sha256_hex(&image));
    assert_eq!(sidecar_of(&path)["prompt"], "a seal");
    assert!(
        run.stderr
            .contains("carries a C2PA manifest; metadata written to a sidecar"),
        "{run}"
    );
}
