//! The studio in a real browser: headless Chromium over WebDriver (our own chromedriver on a
//! free loopback port) against `codex-imagen --serve` and the loopback backend from `support`.
//! A test does what a person does — types in the field labelled Prompt, presses Generate,
//! clicks a picture — and checks what the backend received and what is on disk. Each main view
//! is saved under `target/studio-screenshots/`.

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use browser::{literal, Browser};
use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use serde_json::{json, Value};
use support::*;

const TOKEN: &str = "studio-test-token-51c2";
const SIDE: u32 = 256;

/// A running service.
/// A real PNG, a gradient tinted by `seed`, so thumbnails and screenshots show something.
fn picture(seed: u8) -> Vec<u8> {
    let hue = |v: u32, k: u32| ((v * 200 / SIDE + k * 37) % 256) as u8;
    let img = image::RgbImage::from_fn(SIDE, SIDE, |x, y| {
        let seed = seed as u32;
        image::Rgb([
            hue(x, seed),
            hue(y, seed * 3),
            hue(x + y, seed * 5) / 2 + 100,
        ])
    });
    encode(image::DynamicImage::ImageRgb8(img), image::ImageFormat::Png)
}

fn body_text(request: &Request) -> String {
    String::from_utf8_lossy(&request.body).into_owned()
}

/// The backend: a partial preview, a pause (so the page shows it), then the final image; the
/// image differs per prompt so each has its own SHA-256. `wham/usage` answers a quota.
fn backend(server: &Server) {
    server.handle(move |request| {
        if request.path.contains("/wham/usage") {
            return Reply::json(
                200,
                &json!({"plan_type": "plus", "rate_limit": {"allowed": true, "limit_reached": false,
                    "primary_window": {"used_percent": 42, "limit_window_seconds": 18000, "reset_after_seconds": 3600},
                    "secondary_window": {"used_percent": 7, "limit_window_seconds": 604800, "reset_after_seconds": 86400}}}),
            );
        }
        let body = body_text(request);
        let seed = (body.len() % 5) as u8 + 1;
        let final_png = picture(seed);
        let partial = picture(seed.wrapping_add(3));
        Reply::sse()
            .event(&created())
            .event(&partial_image("ig_1", &partial))
            .sleep_ms(1200)
            .event(&image_done("ig_1", &final_png))
            .event(&completed(&[("ig_1", &final_png)]))
            .end()
    });
}

async fn history(svc: &Svc, token: Option<&str>) -> Value {
    let mut request = reqwest::Client::new().get(svc.url("/v1/history?limit=200"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

fn tile_xpath(prompt: &str) -> String {
    format!("//ul[@id='grid']//img[@alt={}]", literal(prompt))
}

/// Wait until the tile for `prompt` shows its thumbnail (a blob: URL fetched with the token).
async fn wait_tile(b: &Browser, prompt: &str) {
    b.wait_for(&tile_xpath(prompt)).await;
    b.wait_until(
        &format!("the thumbnail of {prompt}"),
        &format!(
            "const i = document.evaluate({}, document, null, 9, null).singleNodeValue; \
             return !!(i && i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0);",
            js_string(&tile_xpath(prompt))
        ),
    )
    .await;
}

fn js_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

async fn generate(b: &Browser, prompt: &str) {
    let field = b.field("Prompt").await;
    field.clear().await.unwrap();
    field.send_keys(prompt).await.unwrap();
    b.click("Generate").await;
}

async fn open_details(b: &Browser, prompt: &str) {
    b.wait_for(&tile_xpath(prompt)).await.click().await.unwrap();
    b.wait_for(&format!(
        "//dialog[@id='details' and @open]//img[@alt={}]",
        literal(prompt)
    ))
    .await;
}

async fn close_details(b: &Browser) {
    b.click("Close details").await;
    b.wait_gone("//dialog[@id='details' and @open]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_generates_searches_uses_a_reference_edits_with_a_mask_and_deletes() {
    let server = Server::start();
    backend(&server);
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &[]);
    let b = Browser::start(1280, 900).await;
    b.goto(&svc.url("/")).await;
    b.wait_until("the page", "return document.body.dataset.ready === 'true'")
        .await;
    b.wait_for("//*[@id='quota']//progress").await;
    assert!(b.text_of_page().await.contains("42% used"));

    // Generate: the partial preview shows while the job runs, then the final image is in the
    // gallery.
    generate(&b, "a lighthouse at dawn").await;
    b.wait_for("//div[@id='previews']/img[@data-partial]").await;
    let stage = b
        .wait_for("//p[@id='job-stage']")
        .await
        .text()
        .await
        .unwrap();
    assert!(stage.contains(" s"), "stage and seconds: {stage}");
    b.screenshot("create-running").await;
    b.wait_for("//h3[@id='job-title'][normalize-space(.)='Done']")
        .await;
    wait_tile(&b, "a lighthouse at dawn").await;
    let first = history(&svc, None).await;
    let lighthouse = first["data"][0].clone();
    assert_eq!(lighthouse["prompt"], "a lighthouse at dawn", "{first}");
    assert_eq!(lighthouse["revised_prompt"], "a revised prompt");
    assert_eq!(lighthouse["requested"]["size"], "auto", "{lighthouse}");
    let sent = body_text(&server.requests_to(RESPONSES_PATH)[0]);
    assert!(
        sent.contains("partial_images"),
        "partial previews asked for: {sent}"
    );

    generate(&b, "a red fox in the snow").await;
    b.wait_for("//h3[@id='job-title'][normalize-space(.)='Done']")
        .await;
    wait_tile(&b, "a red fox in the snow").await;
    b.screenshot("gallery").await;

    // Search.
    b.field("Search").await.send_keys("fox").await.unwrap();
    b.wait_gone(&tile_xpath("a lighthouse at dawn")).await;
    b.wait_for(&tile_xpath("a red fox in the snow")).await;
    b.field("Search").await.clear().await.unwrap();
    b.field("Search").await.send_keys(" ").await.unwrap();
    wait_tile(&b, "a lighthouse at dawn").await;

    // Details, then Use as reference.
    open_details(&b, "a lighthouse at dawn").await;
    let details = b
        .wait_for("//dialog[@id='details']")
        .await
        .text()
        .await
        .unwrap();
    assert!(details.contains("a revised prompt"), "{details}");
    assert!(details.contains("C2PA"), "{details}");
    b.screenshot("details").await;
    b.click("Use as reference").await;
    b.wait_gone("//dialog[@id='details' and @open]").await;
    b.wait_for("//ul[@id='refs']//img[starts-with(@alt, 'Reference 1')]")
        .await;
    b.click("Remove reference 1").await;
    b.wait_gone("//ul[@id='refs']//img").await;

    // Edit with a mask: paint across the middle, Apply, and the backend gets a PNG mask the
    // image's size whose painted pixels are transparent.
    open_details(&b, "a lighthouse at dawn").await;
    b.click("Edit").await;
    let canvas = b.wait_for("//dialog[@id='editor' and @open]//canvas").await;
    b.wait_until(
        "the canvas at the image's size",
        &format!("return document.getElementById('editor-canvas').width === {SIDE}"),
    )
    .await;
    let stroke = MouseActions::new("mouse".to_string())
        .then(PointerAction::MoveToElement {
            element: canvas.clone(),
            duration: None,
            x: -40.0,
            y: 0.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveToElement {
            element: canvas.clone(),
            duration: Some(Duration::from_millis(200)),
            x: 40.0,
            y: 0.0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    b.client.perform_actions(stroke).await.unwrap();
    b.field("Edit prompt")
        .await
        .send_keys("add a small boat")
        .await
        .unwrap();
    b.screenshot("editor").await;
    b.click("Apply").await;
    b.wait_for("//h3[@id='job-title'][normalize-space(.)='Running']")
        .await;
    b.wait_for("//h3[@id='job-title'][normalize-space(.)='Done']")
        .await;
    wait_tile(&b, "add a small boat").await;
    let edit = server
        .requests_to(RESPONSES_PATH)
        .into_iter()
        .map(|r| r.json())
        .find(|body| body.to_string().contains("add a small boat"))
        .expect("the edit reached the backend");
    let mask_url = edit["tools"][0]["input_image_mask"]["image_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no mask in {edit}"))
        .to_string();
    let mask_b64 = mask_url.split_once(";base64,").unwrap().1;
    let mask = image::load_from_memory(
        &base64::engine::general_purpose::STANDARD
            .decode(mask_b64)
            .unwrap(),
    )
    .unwrap()
    .to_rgba8();
    assert_eq!(mask.dimensions(), (SIDE, SIDE));
    let centre = mask.get_pixel(SIDE / 2, SIDE / 2).0[3];
    let corner = mask.get_pixel(2, 2).0[3];
    assert_eq!(
        (centre, corner),
        (0, 255),
        "painted = transparent, rest opaque"
    );
    assert!(
        edit.to_string().contains("input_image"),
        "the image went too"
    );

    // The edit records its parent; details show the chain both ways.
    open_details(&b, "add a small boat").await;
    b.wait_for(&format!(
        "//div[@aria-label='Lineage']//img[@alt={}]",
        literal("a lighthouse at dawn")
    ))
    .await
    .click()
    .await
    .unwrap();
    b.wait_for(&format!(
        "//div[@aria-label='Lineage']//img[@alt={}]",
        literal("add a small boat")
    ))
    .await;
    b.screenshot("lineage").await;

    // Delete (with confirmation): the file and the record go.
    let path = PathBuf::from(lighthouse["path"].as_str().unwrap());
    assert!(path.is_file());
    b.click("Delete").await;
    b.click("Yes, delete").await;
    b.wait_gone(&tile_xpath("a lighthouse at dawn")).await;
    assert!(!path.exists(), "the file is deleted");
    let after = history(&svc, None).await;
    assert!(
        !after.to_string().contains("a lighthouse at dawn"),
        "{after}"
    );
    // Thumbnails were made once and cached beside the images.
    let thumbs = path.parent().unwrap().join(".thumbs");
    let cached = reqwest::get(svc.url(&format!("/v1/history/{}/thumb", after["data"][0]["id"])))
        .await
        .unwrap();
    assert_eq!(cached.headers()["x-thumbnail"], "cached", "{}", svc.log());
    let _ = thumbs;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_images_share_the_gallery_and_a_hostile_prompt_is_only_text() {
    let server = Server::start();
    backend(&server);
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let data_text = data.display().to_string();
    let hostile = "<img src=x onerror=document.body.dataset.pwned=1>";
    for prompt in [hostile, "a file that will go missing"] {
        let run = run_against(&sandbox, &server, &[prompt, "--data-dir", &data_text]);
        assert_eq!(run.code, 0, "{run}");
    }
    let listed = sandbox.run(&["--history", "missing", "--data-dir", &data_text]);
    assert_eq!(listed.code, 0, "{listed}");
    let gone = PathBuf::from(listed.stdout.split('\t').nth(1).unwrap());
    std::fs::remove_file(&gone).unwrap();

    let svc = Svc::start(&sandbox, &server, &data, &[]);
    let b = Browser::start(1280, 900).await;
    b.goto(&svc.url("/")).await;
    wait_tile(&b, hostile).await;
    open_details(&b, hostile).await;
    b.wait_for(&format!("//dd[normalize-space(.)={}]", literal(hostile)))
        .await;
    let pwned = b.run("return document.body.dataset.pwned || null").await;
    assert_eq!(pwned, Value::Null, "the prompt ran as HTML");
    let injected = b
        .run("return document.querySelectorAll(\"img[src='x']\").length")
        .await;
    assert_eq!(injected, json!(0));
    b.screenshot("details-hostile-prompt").await;
    close_details(&b).await;

    // The missing file shows as missing and can be forgotten.
    let missing = b
        .wait_for("//button[@aria-label='Missing image: a file that will go missing']")
        .await;
    missing.click().await.unwrap();
    b.wait_for("//dialog[@id='details' and @open]//p[starts-with(normalize-space(.), 'The file is missing')]")
        .await;
    b.click("Forget").await;
    b.click("Yes, delete").await;
    b.wait_gone("//button[@aria-label='Missing image: a file that will go missing']")
        .await;

    // Usable at 360 px.
    b.client.set_window_size(360, 800).await.unwrap();
    b.wait_for(&tile_xpath(hostile)).await;
    let overflow = b
        .run("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(overflow, json!(true), "no sideways scrolling at 360 px");
    b.screenshot("narrow-360").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_asks_once_and_keeps_it_out_of_urls() {
    let server = Server::start();
    backend(&server);
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_SERVE_TOKEN", TOKEN);
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &[]);
    // This browser prefers a dark scheme: the page follows it.
    let b = Browser::start_with(1280, 900, &["--force-dark-mode"]).await;
    b.goto(&svc.url("/")).await;
    let dark = b
        .run("return matchMedia('(prefers-color-scheme: dark)').matches && getComputedStyle(document.body).backgroundColor")
        .await;
    assert_eq!(dark, json!("rgb(17, 20, 24)"), "the dark palette");
    let field = b
        .wait_for("//dialog[@open]//input[@id=//label[contains(., 'Token') or contains(., 'token')]/@for]")
        .await;
    b.screenshot("token-prompt").await;
    field.send_keys(TOKEN).await.unwrap();
    b.click("Save token").await;
    b.wait_gone("//dialog[@id='token-dialog' and @open]").await;
    generate(&b, "a token-guarded teapot").await;
    b.wait_for("//h3[@id='job-title'][normalize-space(.)='Done']")
        .await;
    wait_tile(&b, "a token-guarded teapot").await;
    // Reloaded, the page remembers the token; it never went into a URL.
    b.goto(&svc.url("/")).await;
    wait_tile(&b, "a token-guarded teapot").await;
    b.screenshot("gallery-dark").await;
    let open_dialogs = b
        .run("return document.querySelectorAll('dialog[open]').length")
        .await;
    assert_eq!(open_dialogs, json!(0));
    let url = b.client.current_url().await.unwrap();
    assert!(!url.as_str().contains(TOKEN));
    let log = svc.log();
    assert!(!log.contains(TOKEN), "{log}");
    assert_eq!(
        history(&svc, Some(TOKEN)).await["data"][0]["prompt"],
        "a token-guarded teapot"
    );
    let refused = reqwest::get(svc.url("/v1/history")).await.unwrap();
    assert_eq!(refused.status(), 401);
    // The page itself needs no token, and carries the CSP.
    let page = reqwest::get(svc.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_a_banner_names_the_sign_in_command() {
    let server = Server::start();
    backend(&server);
    let sandbox = Sandbox::new();
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &[]);
    let status: Value = reqwest::get(svc.url("/v1/studio/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["credentials"]["found"], false, "{status}");
    assert_eq!(status["credentials"]["sign_in"], "codex-imagen --login");
    assert_eq!(status["usage"], Value::Null);
    assert!(
        server.requests_to("/backend-api/wham/usage").is_empty(),
        "no quota request without credentials"
    );
    let b = Browser::start(1280, 900).await;
    b.goto(&svc.url("/")).await;
    let banner = b
        .wait_for("//div[@id='banner' and @role='alert' and not(@hidden)]")
        .await
        .text()
        .await
        .unwrap();
    assert!(banner.contains("No credentials found"), "{banner}");
    assert!(banner.contains("codex-imagen --login"), "{banner}");
    b.wait_for("//p[@id='grid-status'][normalize-space(.)='No images yet.']")
        .await;
    b.screenshot("no-credentials").await;
    b.close().await;
}
