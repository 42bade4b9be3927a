//! `codex-imagen --serve` against hostile input (issue #20): the real binary on 127.0.0.1, its
//! own HOME and data directory, the loopback backend from `support`. Each test reproduces a
//! failure seen on the service before (a worker panic, a text file sent as an image, a token
//! file read through a symlink, a `text/plain` POST from another page, a rebinding `Host`,
//! callbacks to metadata addresses, silent connections, world-readable files, two services on
//! one directory, an unreadable page 2, CLI words in a mask error) and checks the answer now.
//!
//! No test sends anything beyond 127.0.0.1: refused callback addresses are only submitted (the
//! answer is a 400 before any job exists), to a service whose backend never answers, with
//! `events: ["completed"]`, and that service is stopped as soon as the submissions are answered.
//!
//! `CODEX_IMAGEN_TEST_BIN` runs these tests against another build (e.g. the previous one, to
//! see them fail).

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

fn binary() -> String {
    std::env::var("CODEX_IMAGEN_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_codex-imagen").to_string())
}

fn command(sandbox: &Sandbox, server: &Server, data: &Path, args: &[&str]) -> Command {
    let cmd = sandbox.command(&[]);
    let mut program = Command::new(binary());
    program
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(cmd.get_current_dir().unwrap_or(Path::new(".")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    program.args([
        "--serve",
        "127.0.0.1:0",
        "--data-dir",
        &data.display().to_string(),
        "--retries",
        "0",
    ]);
    program.args(args);
    program.args(server_args(server));
    program
}

/// The service from [`command`] (so `CODEX_IMAGEN_TEST_BIN` applies).
fn start(sandbox: &Sandbox, server: &Server, data: &Path, args: &[&str]) -> Svc {
    Svc::spawn(command(sandbox, server, data, args), data)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    answer(http().post(url).json(body).send().await.unwrap()).await
}

async fn get_json(url: &str) -> (u16, Value) {
    answer(http().get(url).send().await.unwrap()).await
}

/// Answers every image request with one image.
fn answering_backend(server: &Server, png: Vec<u8>) {
    server.handle(move |_| image_stream(&[("ig_1", &png)]));
}

/// Never answers an image request.
fn silent_backend(server: &Server) {
    server.handle(|_| silent_reply());
}

fn real_png(alpha: bool) -> Vec<u8> {
    let img = if alpha {
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            16,
            16,
            image::Rgba([0, 0, 0, 0]),
        ))
    } else {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(16, 16, image::Rgb([9, 9, 9])))
    };
    encode(img, image::ImageFormat::Png)
}

/// A `multipart/form-data` body: (name, file name, bytes) per part.
fn multipart(parts: &[(&str, Option<&str>, Vec<u8>)]) -> (String, Vec<u8>) {
    let boundary = "----codex-imagen-test-boundary";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!("content-disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\ncontent-type: image/png\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("content-disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn data_url(bytes: &[u8]) -> String {
    format!("data:image/png;base64,{}", b64(bytes))
}

/// One request written by hand (any `Host`), the whole answer read back.
fn raw(addr: &str, head: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn post_head(path: &str, host: &str, extra: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_timeout_is_a_400_and_a_panicking_job_fails_while_its_worker_goes_on() {
    let server = Server::start();
    answering_backend(&server, png_bytes(3, 400));
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_TEST_PANIC_PROMPT", "boom");
    let data = sandbox.path("data");
    let svc = start(&sandbox, &server, &data, &["--jobs", "1"]);
    for bad in [json!(1e20), json!(0), json!(-1), json!(3601), json!("10")] {
        let (status, body) = post_json(
            &svc.url("/v1/jobs"),
            &json!({"prompt": "a fox", "timeout_sec": bad}),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["param"], "timeout_sec", "{body}");
    }
    let (status, _) = post_json(
        &svc.url("/v1/jobs"),
        &json!({"prompt": "a fox", "timeout_sec": 3600}),
    )
    .await;
    assert_eq!(status, 202);

    // A job that panics anyway is failed, and the one worker takes the next job.
    let (_, job) = post_json(&svc.url("/v1/jobs"), &json!({"prompt": "boom"})).await;
    let job = job_until(&svc, job["id"].as_str().unwrap(), finished).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "internal_error", "{job}");
    let (_, next) = post_json(&svc.url("/v1/jobs"), &json!({"prompt": "a fox"})).await;
    let next = job_until(&svc, next["id"].as_str().unwrap(), finished).await;
    assert_eq!(next["status"], "completed", "{next}\n{}", svc.log());
    let (status, health) = get_json(&svc.url("/health")).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["jobs"], json!({"queued": 0, "running": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_are_judged_like_the_cli_judges_them_before_a_job_exists() {
    let server = Server::start();
    answering_backend(&server, png_bytes(3, 400));
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = start(&sandbox, &server, &data, &[]);
    let jobs = svc.url("/v1/jobs");
    let text = format!(
        "data:image/png;base64,{}",
        b64(b"just some text, not an image")
    );
    for (images, param) in [
        (json!(["data:image/png;base64,!!!"]), "images[0]"),
        (json!([data_url(&real_png(false)), text]), "images[1]"),
        (json!(["/etc/hostname"]), "images[0]"),
        (json!(["ftp://example.invalid/a.png"]), "images[0]"),
        (json!(vec![data_url(&real_png(false)); 17]), "image"),
    ] {
        let (status, body) = post_json(&jobs, &json!({"prompt": "x", "images": images})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], param, "{body}");
    }
    // An uploaded text file, and one over 50 MiB, are refused the same way.
    let edit = |field: &str, name: &str, data: Vec<u8>| {
        let (content_type, form) =
            multipart(&[("prompt", None, b"x".to_vec()), (field, Some(name), data)]);
        http()
            .post(svc.url("/v1/images/edits"))
            .header("content-type", content_type)
            .body(form)
            .send()
    };
    let (status, body) = answer(
        edit("image[]", "a.png", b"hello, I am text".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["param"].clone()),
        (400, json!("image[0]")),
        "{body}"
    );
    let mut big = png_bytes(1, 0);
    big.resize(50 * 1024 * 1024 + 1, 0);
    let (status, body) = answer(edit("image", "big.png", big).await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "image_too_large", "{body}");
    assert!(
        server.requests_to(RESPONSES_PATH).is_empty(),
        "nothing sent"
    );
    let (_, listed) = get_json(&jobs).await;
    assert_eq!(listed["data"], json!([]), "no job was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_paths_need_allow_dir_and_a_regular_file_inside_it() {
    let server = Server::start();
    answering_backend(&server, png_bytes(3, 400));
    let sandbox = authed_sandbox();
    let refs = sandbox.path("refs");
    std::fs::create_dir_all(&refs).unwrap();
    let png = real_png(false);
    std::fs::write(refs.join("ok.png"), &png).unwrap();
    let auth = sandbox.home().join(".codex/auth.json");
    std::os::unix::fs::symlink(&auth, refs.join("evil.png")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", refs.join("zero.png")).unwrap();
    let fifo = refs.join("pipe.png");
    let c_path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let data = sandbox.path("data");

    // Without --allow-dir every local path is refused.
    let svc = start(&sandbox, &server, &data, &[]);
    let ok = refs.join("ok.png").display().to_string();
    let (status, body) = post_json(
        &svc.url("/v1/jobs"),
        &json!({"prompt": "x", "images": [ok]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--allow-dir"));
    drop(svc);

    let refs_arg = refs.display().to_string();
    let svc = start(&sandbox, &server, &data, &["--allow-dir", &refs_arg]);
    let mut messages = Vec::new();
    let start = Instant::now();
    for path in [
        refs.join("evil.png"),
        refs.join("zero.png"),
        fifo.clone(),
        refs.join("missing.png"),
        auth.clone(),
        PathBuf::from("/etc/hostname"),
        refs.join("../home/.codex/auth.json"),
    ] {
        let (status, body) = post_json(
            &svc.url("/v1/jobs"),
            &json!({"prompt": "x", "images": [path.display().to_string()]}),
        )
        .await;
        assert_eq!(status, 400, "{}: {body}", path.display());
        assert_eq!(body["error"]["param"], "images[0]");
        messages.push(body["error"]["message"].as_str().unwrap().to_string());
    }
    assert!(start.elapsed() < Duration::from_secs(5), "nothing blocked");
    messages.dedup();
    assert_eq!(messages.len(), 1, "one answer for all: {messages:?}");
    assert!(server.requests_to(RESPONSES_PATH).is_empty());

    let (status, job) = post_json(
        &svc.url("/v1/jobs"),
        &json!({"prompt": "x", "images": [ok]}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job = job_until(&svc, job["id"].as_str().unwrap(), finished).await;
    assert_eq!(job["status"], "completed", "{job}");
    let sent = String::from_utf8_lossy(&server.requests_to(RESPONSES_PATH)[0].body).into_owned();
    assert!(sent.contains(&b64(&png)), "the allowed file was sent");
    assert!(!sent.contains("refresh-0"), "no token file was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_objects_show_inputs_as_source_bytes_and_hash_never_their_data() {
    let server = Server::start();
    answering_backend(&server, png_bytes(3, 400));
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = start(&sandbox, &server, &data, &[]);
    let mut big = real_png(true);
    big.extend(std::iter::repeat_n(7u8, 2 * 1024 * 1024));
    let url = data_url(&big);
    for _ in 0..3 {
        let (status, body) = post_json(
            &svc.url("/v1/jobs"),
            &json!({"prompt": "x", "images": [url], "mask": data_url(&real_png(true))}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    let (_, listed) = get_json(&svc.url("/v1/jobs")).await;
    let text = listed.to_string();
    assert!(text.len() < 20_000, "a small answer: {} bytes", text.len());
    let first = &listed["data"][0];
    assert_eq!(
        first["request"]["images"][0],
        json!({"source": "data:image/png", "bytes": big.len(), "sha256": sha256_hex(&big)})
    );
    assert_eq!(first["request"]["mask"]["source"], "data:image/png");
    let job = job_until(&svc, first["id"].as_str().unwrap(), finished).await;
    assert_eq!(job["status"], "completed", "{job}");
    // The store keeps no copy of the data either.
    let needle = &url[22..2000];
    for name in ["jobs.sqlite", "jobs.sqlite-wal"] {
        let bytes = std::fs::read(data.join(name)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(needle),
            "{name} holds the data URL"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_web_pages_cannot_drive_the_tokenless_service() {
    let server = Server::start();
    answering_backend(&server, png_bytes(3, 400));
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = Svc::start(
        &sandbox,
        &server,
        &data,
        &[
            "--allow-host",
            "images.test",
            "--cors-origin",
            "http://app.test:3000",
        ],
    );
    let addr = svc.addr();
    let body = r#"{"prompt":"a fox"}"#;
    // A page's "simple" request: text/plain, no preflight.
    let response = http()
        .post(svc.url("/v1/jobs"))
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, answer_body) = answer(response).await;
    assert_eq!(
        (status, answer_body["error"]["code"].clone()),
        (415, json!("unsupported_media_type"))
    );
    // DNS rebinding: the page's own name as Host.
    let answered = raw(&addr, &post_head("/v1/jobs", "attacker.example", "", body));
    assert_eq!(status_of(&answered), 421, "{answered}");
    let answered = raw(
        &addr,
        &format!(
            "GET /v1/jobs HTTP/1.1\r\nhost: attacker.example:{}\r\nconnection: close\r\n\r\n",
            svc.port()
        ),
    );
    assert_eq!(status_of(&answered), 421, "{answered}");
    // Another origin, even with the right Host.
    let answered = raw(
        &addr,
        &post_head("/v1/jobs", &addr, "origin: http://evil.example\r\n", body),
    );
    assert_eq!(status_of(&answered), 403, "{answered}");
    let answered = raw(
        &addr,
        &post_head("/v1/jobs", &addr, "origin: null\r\n", body),
    );
    assert_eq!(status_of(&answered), 403, "{answered}");
    assert!(server.requests_to(RESPONSES_PATH).is_empty());
    let (_, listed) = get_json(&svc.url("/v1/jobs")).await;
    assert_eq!(listed["data"], json!([]), "no job was made");

    // Same origin, loopback names, the allowed name and the CORS origin pass.
    let own = format!("origin: http://{addr}\r\n");
    assert_eq!(
        status_of(&raw(&addr, &post_head("/v1/jobs", &addr, &own, body))),
        202
    );
    let local = format!("localhost:{}", svc.port());
    assert_eq!(
        status_of(&raw(&addr, &post_head("/v1/jobs", &local, "", body))),
        202
    );
    assert_eq!(
        status_of(&raw(&addr, &post_head("/v1/jobs", "images.test", "", body))),
        202
    );
    let answered = raw(
        &addr,
        &post_head("/v1/jobs", &addr, "origin: http://app.test:3000\r\n", body),
    );
    assert_eq!(status_of(&answered), 202, "{answered}");
    assert!(
        answered
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: http://app.test:3000"),
        "{answered}"
    );
    let preflight = raw(
        &addr,
        &format!("OPTIONS /v1/jobs HTTP/1.1\r\nhost: {addr}\r\norigin: http://app.test:3000\r\naccess-control-request-method: POST\r\naccess-control-request-headers: content-type\r\nconnection: close\r\n\r\n"),
    );
    assert_eq!(status_of(&preflight), 200, "{preflight}");
    assert!(
        preflight
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: http://app.test:3000"),
        "{preflight}"
    );

    // File URLs carry the allowed Host the request used, never another.
    let head = |host: &str| {
        format!("GET /v1/jobs?status=completed&limit=1 HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n")
    };
    // Wait for a job with an image.
    let start = Instant::now();
    loop {
        let (_, done) = get_json(&svc.url("/v1/jobs?status=completed&limit=1")).await;
        if done["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let listed = raw(&addr, &head("images.test"));
    assert!(listed.contains("http://images.test/v1/files/"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_token_is_the_guard_and_file_urls_use_the_bound_address() {
    let server = Server::start();
    answering_backend(&server, png_bytes(3, 400));
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_SERVE_TOKEN", "tok-123");
    let data = sandbox.path("data");
    let svc = start(&sandbox, &server, &data, &[]);
    let addr = svc.addr();
    let auth = "authorization: Bearer tok-123\r\n";
    let answered = raw(
        &addr,
        &post_head(
            "/v1/images/generations",
            "attacker.example",
            auth,
            r#"{"prompt":"a fox","response_format":"url"}"#,
        ),
    );
    assert_eq!(status_of(&answered), 200, "{answered}");
    assert!(!answered.contains("attacker.example"), "{answered}");
    assert!(
        answered.contains(&format!("http://{addr}/v1/files/")),
        "{answered}"
    );
    let answered = raw(&addr, &post_head("/v1/jobs", "attacker.example", "", "{}"));
    assert_eq!(status_of(&answered), 401, "{answered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_to_non_public_addresses_are_refused_at_submission() {
    // The backend never answers, and the service stops as soon as the submissions are answered:
    // even a wrong answer here could not deliver anything anywhere.
    let server = Server::start();
    silent_backend(&server);
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = start(&sandbox, &server, &data, &[]);
    let port = svc.port();
    let mut answers = Vec::new();
    for url in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://2130706433/hook".to_string(),
        "http://0x7f.1/hook".to_string(),
        "http://0177.0.0.1/hook".to_string(),
        "http://10.0.0.1/hook".to_string(),
        "http://192.168.1.1/hook".to_string(),
        "http://100.64.0.1/hook".to_string(),
        "http://[fe80::1]/hook".to_string(),
        "http://[fd00::1]/hook".to_string(),
        "http://[::ffff:169.254.169.254]/hook".to_string(),
        format!("http://0.0.0.0:{port}/hook"),
        "http://224.0.0.1/hook".to_string(),
    ] {
        let (status, body) = post_json(
            &svc.url("/v1/jobs"),
            &json!({"prompt": "hang", "callback": {"url": url, "events": ["completed"]}}),
        )
        .await;
        answers.push((url, status, body));
    }
    drop(svc);
    for (url, status, body) in answers {
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["param"], "callback.url", "{url}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--allow-private-callbacks"),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_follow_no_redirect_hide_credentials_and_say_only_delivery_failed() {
    let server = Server::start();
    answering_backend(&server, png_bytes(3, 400));
    let elsewhere = Server::start();
    elsewhere.handle(|_| Reply::json(200, &json!({})));
    let receiver = Server::start();
    let target = format!("{}/stolen", elsewhere.addr);
    receiver.handle(move |_| {
        let mut reply = Reply::head(307, &[("location", &target), ("content-length", "0")]);
        reply.steps.push(Step::Sleep(Duration::from_millis(1)));
        reply
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_TEST_CALLBACK_DELAYS_MS", "20,20");
    let data = sandbox.path("data");
    let svc = start(&sandbox, &server, &data, &[]);
    let hook = receiver.addr.replace("http://", "http://alice:s3cret@") + "/hook";
    let (status, job) = post_json(
        &svc.url("/v1/jobs"),
        &json!({"prompt": "a fox", "callback": {"url": hook}}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job = job_until(&svc, job["id"].as_str().unwrap(), |j| {
        j["notificationStatus"] == "failed"
    })
    .await;
    assert_eq!(job["notificationError"], "HTTP 307");
    assert!(!job.to_string().contains("s3cret"), "{job}");
    assert!(
        job["callback"]["url"]
            .as_str()
            .unwrap()
            .contains("***@127.0.0.1"),
        "{job}"
    );
    assert_eq!(receiver.requests_to("/hook").len(), 2);
    let hooked = receiver.requests_to("/hook");
    assert!(
        hooked[0].header("authorization").is_some(),
        "the credentials are used"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect was not followed"
    );
    assert!(!svc.log().contains("s3cret"));

    let (_, job) = post_json(
        &svc.url("/v1/jobs"),
        &json!({"prompt": "a fox", "callback": {"url": format!("http://127.0.0.1:{closed_port}/hook")}}),
    )
    .await;
    let job = job_until(&svc, job["id"].as_str().unwrap(), |j| {
        j["notificationStatus"] == "failed"
    })
    .await;
    assert_eq!(job["notificationError"], "delivery failed", "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_time_out_idle_ones_later_and_the_limit_is_logged() {
    let server = Server::start();
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_TEST_MAX_CONNECTIONS", "4");
    sandbox.env("CODEX_IMAGEN_TEST_HEADER_TIMEOUT_MS", "600");
    sandbox.env("CODEX_IMAGEN_TEST_IDLE_TIMEOUT_MS", "2500");
    let data = sandbox.path("data");
    let svc = start(&sandbox, &server, &data, &[]);
    let addr = svc.addr();
    let silent: Vec<std::net::TcpStream> = (0..6)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // Health still answers: the silent ones are closed after the header timeout.
    let start = Instant::now();
    let (status, _) = get_json(&svc.url("/health")).await;
    assert_eq!(status, 200);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let mut first = silent.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        first.read(&mut buf).unwrap_or(0),
        0,
        "closed by the service"
    );
    assert!(
        wait_for(Duration::from_secs(3), || svc
            .log()
            .contains("connection limit reached (4 open)")),
        "{}",
        svc.log()
    );
    // A keep-alive connection outlives the header timeout while idle, not the idle timeout.
    let mut kept = std::net::TcpStream::connect(&addr).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let get = format!("GET /v1/jobs HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    for _ in 0..2 {
        kept.write_all(get.as_bytes()).unwrap();
        let n = kept.read(&mut [0u8; 4096]).unwrap();
        assert!(n > 0);
        std::thread::sleep(Duration::from_millis(1000));
    }
    std::thread::sleep(Duration::from_millis(2500));
    let _ = kept.write_all(get.as_bytes());
    assert_eq!(
        kept.read(&mut [0u8; 4096]).unwrap_or(0),
        0,
        "closed when idle"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_and_held_by_one_service() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start();
    answering_backend(&server, png_bytes(3, 400));
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = start(&sandbox, &server, &data, &[]);
    let (_, job) = post_json(&svc.url("/v1/jobs"), &json!({"prompt": "a fox"})).await;
    let job = job_until(&svc, job["id"].as_str().unwrap(), finished).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for name in ["jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let image = PathBuf::from(job["images"][0]["path"].as_str().unwrap());
    assert_eq!(mode(&image), 0o600);

    let second = command(&sandbox, &server, &data, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", svc.child.id())),
        "{stderr}"
    );
    let (status, _) = get_json(&svc.url("/health")).await;
    assert_eq!(status, 200, "the first one runs on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_the_job_list_follow_after_and_before() {
    let server = Server::start();
    silent_backend(&server);
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = start(&sandbox, &server, &data, &["--jobs", "1"]);
    let mut made = Vec::new();
    for i in 0..5 {
        let (_, job) = post_json(
            &svc.url("/v1/jobs"),
            &json!({"prompt": format!("hang {i}")}),
        )
        .await;
        made.push(job["id"].as_str().unwrap().to_string());
    }
    made.reverse();
    let ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut seen = Vec::new();
    let mut url = svc.url("/v1/jobs?limit=2");
    let mut pages = Vec::new();
    loop {
        let (status, page) = get_json(&url).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        pages.push(page.clone());
        if page["has_more"] != true {
            break;
        }
        url = svc.url(&format!(
            "/v1/jobs?limit=2&after={}",
            page["last_id"].as_str().unwrap()
        ));
    }
    assert_eq!(seen, made, "every job once, newest first");
    assert_eq!(pages.len(), 3);
    let second_first = pages[1]["first_id"].as_str().unwrap();
    let (_, back) = get_json(&svc.url(&format!("/v1/jobs?limit=2&before={second_first}"))).await;
    assert_eq!(ids(&back), ids(&pages[0]));
    assert_eq!(back["has_more"], false);
    let (_, back) = get_json(&svc.url(&format!("/v1/jobs?limit=1&before={second_first}"))).await;
    assert_eq!(ids(&back), vec![made[1].clone()]);
    assert_eq!(back["has_more"], true);
    let (status, body) = get_json(&svc.url("/v1/jobs?after=img_nope")).await;
    assert_eq!(
        (status, body["error"]["param"].clone()),
        (400, json!("after"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_mask_is_named_as_the_mask_field_in_service_words() {
    let server = Server::start();
    answering_backend(&server, png_bytes(3, 400));
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = start(&sandbox, &server, &data, &[]);
    let (status, body) = post_json(
        &svc.url("/v1/images/edits"),
        &json!({"prompt": "x", "images": [{"image_url": data_url(&real_png(false))}],
            "mask": {"image_url": data_url(&real_png(false))}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "mask", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("alpha"), "{message}");
    assert!(
        !message.contains("--mask") && !message.contains("inputs/"),
        "{message}"
    );
    assert!(server.requests_to(RESPONSES_PATH).is_empty());
}
