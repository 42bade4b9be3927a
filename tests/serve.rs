//! `codex-imagen --serve`: the real binary on 127.0.0.1 (a free port), its own HOME and data
//! directory, the loopback backend from `support` as the Codex backend. A real OpenAI client
//! (`async-openai`) generates and edits; raw HTTP covers jobs, listing, cancel, files,
//! streaming, every error status, the token rule, restart recovery, callbacks and shutdown.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::types::images::{
    CreateImageEditRequestArgs, CreateImageRequestArgs, Image, ImageEditInput, ImageInput,
    ImageResponseFormat,
};
use base64::Engine as _;
use serde_json::{json, Value};
use support::*;

const TOKEN: &str = "serve-test-token-8c1f";

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = http().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let response = http().post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn prompt_of(request: &Request) -> String {
    String::from_utf8_lossy(&request.body).into_owned()
}

/// A backend that answers by the prompt: "hang" never answers, "fail" is a 500, "limit" the
/// usage limit, "slow" takes 1.5 s, anything else one image.
fn scripted_backend(server: &Server, png: Vec<u8>) {
    server.handle(move |request| {
        let body = prompt_of(request);
        if body.contains("hang") {
            silent_reply()
        } else if body.contains("fail") {
            Reply::json(500, &json!({"error": {"message": "backend broke"}}))
        } else if body.contains("limit") {
            Reply::json(
                429,
                &json!({"error": {"type": "usage_limit_reached", "plan_type": "plus",
                    "message": "The usage limit has been reached", "resets_in_seconds": 3600}}),
            )
        } else if body.contains("slow") {
            let mut reply = Reply::sse().event(&created()).sleep_ms(1500);
            reply = reply.event(&image_done("ig_slow", &png));
            reply.event(&completed(&[("ig_slow", &png)])).end()
        } else {
            Reply::sse()
                .event(&created())
                .event(&partial_image("ig_1", &png[..png.len() / 2]))
                .event(&image_done("ig_1", &png))
                .event(&completed(&[("ig_1", &png)]))
                .end()
        }
    });
}

/// Write `head` on a fresh connection and read the answer until the server closes it or sends
/// a whole JSON body.
fn raw_exchange(base: &str, head: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&out);
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            if serde_json::from_str::<Value>(body).is_ok() {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn openai_client(svc: &Svc, key: &str) -> async_openai::Client<OpenAIConfig> {
    let config = OpenAIConfig::new()
        .with_api_base(svc.url("/v1"))
        .with_api_key(key);
    async_openai::Client::with_config(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_client_generates_and_edits_with_the_token() {
    let server = Server::start();
    let png = png_bytes(7, 4000);
    scripted_backend(&server, png.clone());
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_SERVE_TOKEN", TOKEN);
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &[]);
    let client = openai_client(&svc, TOKEN);

    let request = CreateImageRequestArgs::default()
        .prompt("a red fox")
        .response_format(ImageResponseFormat::B64Json)
        .build()
        .unwrap();
    let answer = client.images().generate(request).await.expect("generation");
    assert_eq!(answer.data.len(), 1);
    match answer.data[0].as_ref() {
        Image::B64Json {
            b64_json,
            revised_prompt,
        } => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64_json.as_str())
                .unwrap();
            assert_eq!(bytes, png);
            assert_eq!(revised_prompt.as_deref(), Some("a revised prompt"));
        }
        other => panic!("expected b64_json, got {other:?}"),
    }

    let request = CreateImageRequestArgs::default()
        .prompt("a blue fox")
        .response_format(ImageResponseFormat::Url)
        .build()
        .unwrap();
    let answer = client.images().generate(request).await.expect("generation");
    let url = match answer.data[0].as_ref() {
        Image::Url { url, .. } => url.clone(),
        other => panic!("expected a url, got {other:?}"),
    };
    assert!(
        url.starts_with(&svc.base) && url.contains("/v1/files/img_"),
        "{url}"
    );
    let file = http().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(file.status().as_u16(), 200);
    assert_eq!(file.headers()["content-type"], "image/png");
    assert_eq!(file.bytes().await.unwrap().to_vec(), png);

    let request = CreateImageEditRequestArgs::default()
        .prompt("make it green")
        .image(ImageEditInput::Images(vec![
            ImageInput::from_vec_u8("a.png".into(), png_bytes(1, 300)),
            ImageInput::from_vec_u8("b.png".into(), png_bytes(2, 300)),
        ]))
        .response_format(ImageResponseFormat::B64Json)
        .build()
        .unwrap();
    let answer = client.images().edit(request).await.expect("edit");
    assert_eq!(answer.data.len(), 1);
    let last = server.requests_to(RESPONSES_PATH).pop().unwrap();
    let body = prompt_of(&last);
    assert_eq!(
        body.matches("input_image").count(),
        2,
        "two references sent"
    );
    assert!(body.contains("make it green"));

    // The wrong key is refused, by the SDK's own error path.
    let wrong = openai_client(&svc, "nope");
    let request = CreateImageRequestArgs::default()
        .prompt("x")
        .build()
        .unwrap();
    let err = wrong.images().generate(request).await.unwrap_err();
    assert!(err.to_string().contains("bearer token"), "{err}");

    // Every sync request is a job, listed like the others.
    let listed = http()
        .get(svc.url("/v1/jobs?status=completed"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(listed["data"][0]["request"]["operation"], "edit");
    assert!(!svc.log().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_rule_and_non_loopback_refusal() {
    let server = Server::start();
    scripted_backend(&server, png_bytes(1, 100));
    let mut sandbox = authed_sandbox();
    let token_file = sandbox.path("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let data = sandbox.path("data");
    let token_arg = token_file.display().to_string();
    let svc = Svc::start(
        &sandbox,
        &server,
        &data,
        &["--serve-token-file", &token_arg],
    );
    let (status, health) = get_json(&svc.url("/health")).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["auth"]["auth_format"], "codex-auth-json");
    assert!(
        health["auth"]["access_token_expires_in_seconds"]
            .as_i64()
            .unwrap()
            > 3000
    );
    assert_eq!(health["jobs"], json!({"queued": 0, "running": 0}));
    for (method, path) in [
        ("GET", "/v1/jobs"),
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs/x"),
    ] {
        let request = http().request(method.parse().unwrap(), svc.url(path));
        for auth in [None, Some("Bearer wrong"), Some(TOKEN)] {
            let request = request.try_clone().unwrap();
            let request = match auth {
                Some(value) => request.header("authorization", value),
                None => request,
            };
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 401, "{method} {path} {auth:?}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "invalid_api_key");
            assert!(!body.to_string().contains(TOKEN));
        }
    }
    let ok = http()
        .get(svc.url("/v1/jobs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(!svc.log().contains(TOKEN));
    drop(svc);

    // Any non-loopback address needs a token.
    sandbox.env("CODEX_IMAGEN_SERVE_TOKEN", "");
    let data_text = sandbox.path("data2").display().to_string();
    let run = sandbox.run(&["--serve", "0.0.0.0:0", "--data-dir", &data_text]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("not a loopback address"), "{run}");
    let run = sandbox.run(&["--queue", "3"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("--queue requires --serve"), "{run}");
    let run = sandbox.run(&["--serve", "127.0.0.1:0", "--jobs", "17"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("--jobs must be an integer from 1 to 16"),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_unavailable_without_credentials() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &[]);
    let (status, health) = get_json(&svc.url("/health")).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unavailable");
    assert!(health["error"]["message"].as_str().unwrap().len() > 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_cancel_files_and_stream() {
    let server = Server::start();
    let png = png_bytes(9, 3000);
    scripted_backend(&server, png.clone());
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &["--jobs", "2"]);

    let (status, accepted) = post_json(
        &svc.url("/v1/jobs"),
        &json!({"prompt": "one fox", "n": 2, "quality": "high", "size": "1536x1024"}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    let id = accepted["id"].as_str().unwrap().to_string();
    let job = job_until(&svc, &id, finished).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["attempts"], 2);
    let images = job["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    for (i, image) in images.iter().enumerate() {
        let k = i + 1;
        assert_eq!(image["index"], k);
        assert_eq!(image["bytes"], png.len());
        assert_eq!(image["sha256"], sha256_hex(&png));
        assert_eq!(image["format"], "png");
        let path = data.join("artifacts").join(&id).join(format!("{k}.png"));
        assert_eq!(PathBuf::from(image["path"].as_str().unwrap()), path);
        assert_eq!(std::fs::read(&path).unwrap(), png);
        let file = http()
            .get(image["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(file.headers()["content-type"], "image/png");
        assert_eq!(file.bytes().await.unwrap().to_vec(), png);
    }
    for key in [
        "created_at",
        "started_at",
        "finished_at",
        "request",
        "error",
        "notificationStatus",
        "notificationAttempts",
        "notificationError",
        "notificationSentAt",
        "notificationLastAttemptAt",
    ] {
        assert!(job.get(key).is_some(), "{key} missing: {job}");
    }
    assert!(job["error"].is_null());
    // The controls reached the backend, on both runs.
    let sent: Vec<String> = server
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(prompt_of)
        .filter(|b| b.contains("one fox"))
        .collect();
    assert_eq!(sent.len(), 2);
    for body in &sent {
        assert!(
            body.contains(r#""quality":"high""#) && body.contains("1536x1024"),
            "{body}"
        );
    }

    // Cancel a running job; its record says so and stays listed.
    let (_, running) = post_json(&svc.url("/v1/jobs"), &json!({"prompt": "hang on"})).await;
    let running_id = running["id"].as_str().unwrap().to_string();
    job_until(&svc, &running_id, |j| j["status"] == "running").await;
    let response = http()
        .delete(svc.url(&format!("/v1/jobs/{running_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let again = http()
        .delete(svc.url(&format!("/v1/jobs/{running_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);

    // Listing: newest first, filtered, limited.
    let (_, all) = get_json(&svc.url("/v1/jobs")).await;
    let ids: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![running_id.as_str(), id.as_str()]);
    let (_, some) = get_json(&svc.url("/v1/jobs?status=cancelled&limit=1")).await;
    assert_eq!(some["data"].as_array().unwrap().len(), 1);
    assert_eq!(some["data"][0]["id"], running_id);
    let (status, bad) = get_json(&svc.url("/v1/jobs?status=done")).await;
    assert_eq!(
        (status, bad["error"]["param"].clone()),
        (400, json!("status"))
    );
    let (status, _) = get_json(&svc.url(&format!("/v1/files/{id}/9"))).await;
    assert_eq!(status, 404);

    // Streaming: partial image, completed, [DONE].
    let response = http()
        .post(svc.url("/v1/images/generations"))
        .json(&json!({"prompt": "a streamed fox", "stream": true, "partial_images": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec![
            "image_generation.partial_image",
            "image_generation.completed"
        ],
        "{text}"
    );
    assert_eq!(events[0]["partial_image_index"], 0);
    let final_bytes = base64::engine::general_purpose::STANDARD
        .decode(events[1]["b64_json"].as_str().unwrap())
        .unwrap();
    assert_eq!(final_bytes, png);
    assert_eq!(events[1]["output_format"], "png");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_the_openai_shape_and_status() {
    let server = Server::start();
    scripted_backend(&server, png_bytes(3, 500));
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &["--timeout", "1", "--jobs", "4"]);
    let generations = svc.url("/v1/images/generations");

    let check = |status: u16, body: &Value, want: u16, param: Option<&str>| {
        assert_eq!(status, want, "{body}");
        let error = &body["error"];
        for key in ["message", "type", "param", "code"] {
            assert!(error.get(key).is_some(), "{key} missing in {body}");
        }
        if let Some(param) = param {
            assert_eq!(error["param"], param, "{body}");
        }
    };
    // A body must say it is JSON (issue #20: 415 otherwise), so this one does.
    let response = http()
        .post(&generations)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    check(status, &response.json().await.unwrap(), 400, Some("body"));
    let (status, body) = post_json(&generations, &json!({"prompt": "x", "n": "two"})).await;
    check(status, &body, 400, Some("n"));
    let (status, body) = post_json(&generations, &json!({"prompt": "x", "size": "huge"})).await;
    check(status, &body, 400, Some("size"));
    // A well-formed size the backend cannot make is refused as the CLI refuses it.
    let (status, body) =
        post_json(&generations, &json!({"prompt": "x", "size": "1000x1000"})).await;
    check(status, &body, 400, Some("size"));
    assert_eq!(
        body["error"]["message"],
        "Invalid value: '1000x1000'. Width and height must both be multiples of 16.",
        "{body}"
    );
    let (status, body) = post_json(&generations, &json!({"prompt": "x", "colour": "red"})).await;
    check(status, &body, 400, Some("colour"));
    assert_eq!(
        body["error"]["message"],
        "Unrecognized request argument supplied: colour"
    );
    let (status, body) = post_json(&generations, &json!({"prompt": "x".repeat(32_001)})).await;
    check(status, &body, 400, Some("prompt"));
    let (status, body) = post_json(&svc.url("/v1/images/edits"), &json!({"prompt": "x"})).await;
    check(status, &body, 400, Some("image"));
    let (status, body) = post_json(
        &svc.url("/v1/jobs"),
        &json!({"prompt": "x", "callback": {"url": "ftp://x"}}),
    )
    .await;
    check(status, &body, 400, Some("callback.url"));
    let (status, body) = get_json(&svc.url("/v1/jobs/img_missing")).await;
    check(status, &body, 404, Some("id"));
    let (status, body) = get_json(&svc.url("/v2/nothing")).await;
    check(status, &body, 404, None);

    // Announced over 64 MiB: refused from the headers, before any body byte is read (a client
    // still writing would see a broken pipe, so the body is not sent).
    let answer = raw_exchange(
        &svc.base,
        &format!(
            "POST /v1/images/generations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{",
            64 * 1024 * 1024 + 1
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    check(413, &body, 413, None);
    // Just under the limit is read and judged on its content.
    let mut almost = vec![b' '; 64 * 1024 * 1024 - 20];
    almost.extend_from_slice(br#"{"prompt": 1}"#);
    let response = http()
        .post(&generations)
        .header("content-type", "application/json")
        .body(almost)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    check(status, &response.json().await.unwrap(), 400, Some("prompt"));

    let (status, body) = post_json(&generations, &json!({"prompt": "fail"})).await;
    check(status, &body, 502, None);
    let (status, body) = post_json(&generations, &json!({"prompt": "hang"})).await;
    check(status, &body, 504, None);
    assert_eq!(body["error"]["code"], "timeout");
    // Last: after a usage limit the service sends nothing until the reset (issue #22).
    let (status, body) = post_json(&generations, &json!({"prompt": "limit"})).await;
    check(status, &body, 429, None);
    assert_eq!(body["error"]["code"], "usage_limit_reached");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resets at"),
        "{body}"
    );

    // The failed sync requests are jobs with their errors.
    let (_, failed) = get_json(&svc.url("/v1/jobs?status=failed")).await;
    let codes: Vec<&str> = failed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["error"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["usage_limit_reached", "timeout", "http"]);
    let log = svc.log();
    assert!(log.contains("POST /v1/images/generations 429"), "{log}");
    assert!(
        !log.contains("access"),
        "no token-ish text in the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let server = Server::start();
    scripted_backend(&server, png_bytes(3, 500));
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &["--jobs", "1", "--queue", "1"]);
    let jobs = svc.url("/v1/jobs");
    let (_, first) = post_json(&jobs, &json!({"prompt": "hang"})).await;
    job_until(&svc, first["id"].as_str().unwrap(), |j| {
        j["status"] == "running"
    })
    .await;
    let (status, _) = post_json(&jobs, &json!({"prompt": "hang"})).await;
    assert_eq!(status, 202);
    let response = http()
        .post(&jobs)
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_full");
    // A cancelled queued job frees its place.
    let (_, listed) = get_json(&svc.url("/v1/jobs?status=queued")).await;
    let queued = listed["data"][0]["id"].as_str().unwrap().to_string();
    let response = http()
        .delete(svc.url(&format!("/v1/jobs/{queued}")))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "cancelled");
    let (status, _) = post_json(&jobs, &json!({"prompt": "x"})).await;
    assert_eq!(status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_fails_the_running_job_keeps_its_image_and_runs_the_queued() {
    let server = Server::start();
    let png = png_bytes(5, 2000);
    let first = png.clone();
    server.handle(move |request| {
        if prompt_of(request).contains("first") {
            // One image, then silence: the job is running with a saved image when it is killed.
            Reply::sse()
                .event(&created())
                .event(&image_done("ig_a", &first))
                .step(Step::Hang)
        } else {
            image_stream(&[("ig_b", &first)])
        }
    });
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let mut svc = Svc::start(&sandbox, &server, &data, &["--jobs", "1"]);
    let (_, a) = post_json(&svc.url("/v1/jobs"), &json!({"prompt": "first"})).await;
    let a = a["id"].as_str().unwrap().to_string();
    let (_, b) = post_json(&svc.url("/v1/jobs"), &json!({"prompt": "second"})).await;
    let b = b["id"].as_str().unwrap().to_string();
    job_until(&svc, &a, |j| {
        j["images"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    svc.kill9();
    assert!(data.join("jobs.sqlite").exists());

    let svc = Svc::start(&sandbox, &server, &data, &["--jobs", "1"]);
    let job_a = job_until(&svc, &a, finished).await;
    assert_eq!(job_a["status"], "failed");
    assert_eq!(job_a["error"]["code"], "service_restarted");
    assert_eq!(job_a["images"].as_array().unwrap().len(), 1);
    assert_eq!(job_a["images"][0]["sha256"], sha256_hex(&png));
    let job_b = job_until(&svc, &b, finished).await;
    assert_eq!(job_b["status"], "completed", "{job_b}");
    // The running job was never sent again.
    let firsts = server
        .requests_to(RESPONSES_PATH)
        .iter()
        .filter(|r| prompt_of(r).contains("first"))
        .count();
    assert_eq!(firsts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_retry_until_accepted_and_are_signed() {
    let server = Server::start();
    scripted_backend(&server, png_bytes(4, 500));
    let receiver = Server::start();
    receiver.enqueue("/hook", Reply::json(500, &json!({})));
    receiver.enqueue("/hook", Reply::json(503, &json!({})));
    receiver.handle(|_| Reply::json(200, &json!({"ok": true})));
    let mut sandbox = authed_sandbox();
    sandbox.env("CODEX_IMAGEN_TEST_CALLBACK_DELAYS_MS", "50,50,50,50,50");
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &[]);
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"0123456789abcdef0123")
    );
    let (status, job) = post_json(
        &svc.url("/v1/jobs"),
        &json!({"prompt": "a fox", "callback": {"url": format!("{}/hook", receiver.addr), "events": ["completed", "failed"], "secret": secret}}),
    )
    .await;
    assert_eq!(status, 202);
    let id = job["id"].as_str().unwrap().to_string();
    let job = job_until(&svc, &id, |j| j["notificationStatus"] == "sent").await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["notificationAttempts"], 3);
    assert!(job["notificationError"].is_null());
    assert!(job["notificationSentAt"].as_i64().is_some());
    assert_eq!(job["notificationSentAt"], job["notificationLastAttemptAt"]);
    assert!(
        !job.to_string().contains(&secret),
        "the secret is never shown"
    );

    let deliveries = receiver.requests_to("/hook");
    assert_eq!(deliveries.len(), 3);
    let hook = standardwebhooks::Webhook::new(&secret).unwrap();
    for delivery in &deliveries {
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &delivery.headers {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        hook.verify(&delivery.body, &headers)
            .expect("signature verifies");
        assert_eq!(
            delivery.header("webhook-id"),
            Some(format!("msg_{id}").as_str())
        );
        let body = delivery.json();
        assert_eq!(body["type"], "job.completed");
        assert_eq!(body["job"]["id"], id);
        assert_eq!(body["job"]["images"].as_array().unwrap().len(), 1);
    }

    // A failed job notifies only when asked; the default is completed only.
    let (_, job) = post_json(
        &svc.url("/v1/jobs"),
        &json!({"prompt": "fail", "callback": {"url": format!("{}/hook", receiver.addr)}}),
    )
    .await;
    let job = job_until(&svc, job["id"].as_str().unwrap(), |j| {
        j["notificationStatus"].is_string()
    })
    .await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["notificationStatus"], "skipped");
    assert_eq!(receiver.requests_to("/hook").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_running_jobs_the_grace_then_fails_them() {
    let server = Server::start();
    scripted_backend(&server, png_bytes(6, 500));
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");

    // Within the grace: the job finishes, the process exits 0.
    let mut svc = Svc::start(&sandbox, &server, &data, &["--shutdown-grace", "10"]);
    let (_, job) = post_json(&svc.url("/v1/jobs"), &json!({"prompt": "slow"})).await;
    let id = job["id"].as_str().unwrap().to_string();
    job_until(&svc, &id, |j| j["status"] == "running").await;
    assert_eq!(svc.terminate(), 0, "{}", svc.log());

    // Beyond the grace: cancelled as failed service_stopped; exit 0.
    let mut svc = Svc::start(&sandbox, &server, &data, &["--shutdown-grace", "300ms"]);
    let (_, done) = get_json(&svc.url(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, job) = post_json(&svc.url("/v1/jobs"), &json!({"prompt": "hang"})).await;
    let hung = job["id"].as_str().unwrap().to_string();
    job_until(&svc, &hung, |j| j["status"] == "running").await;
    let start = Instant::now();
    assert_eq!(svc.terminate(), 0, "{}", svc.log());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        svc.log()
            .contains(&format!("job {hung} failed (service_stopped)")),
        "{}",
        svc.log()
    );
    let svc = Svc::start(&sandbox, &server, &svc.data.clone(), &[]);
    let (_, job) = get_json(&svc.url(&format!("/v1/jobs/{hung}"))).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "service_stopped");
}

/// A real RGBA PNG whose left half is transparent (a usable edit mask).
fn mask_png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(width, height, |x, _| {
        image::Rgba([0, 0, 0, if x < width / 2 { 0 } else { 255 }])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_edit_sends_its_references_and_mask() {
    let server = Server::start();
    let png = mask_png(16, 16);
    scripted_backend(&server, png.clone());
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &[]);
    let data_url = |bytes: &[u8]| {
        format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    };
    let (status, body) = post_json(
        &svc.url("/v1/images/edits"),
        &json!({"prompt": "paint the left half", "images": [{"image_url": data_url(&png)}],
            "mask": {"image_url": data_url(&mask_png(16, 16))}, "response_format": "url"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"][0]["url"]
        .as_str()
        .unwrap()
        .contains("/v1/files/"));
    assert_eq!(body["background"], "transparent", "{body}");
    assert_eq!(body["size"], "16x16");
    let sent = prompt_of(&server.requests_to(RESPONSES_PATH).pop().unwrap());
    assert!(sent.contains("input_image_mask"), "{sent}");
    assert!(sent.contains("input_image"), "{sent}");
    // A mask by http URL cannot be used as a mask file.
    let (status, body) = post_json(
        &svc.url("/v1/images/edits"),
        &json!({"prompt": "x", "images": [{"image_url": data_url(&png)}],
            "mask": {"image_url": "https://example.invalid/m.png"}}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["param"].clone()),
        (400, json!("mask"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_callback_resumes_after_a_restart() {
    let server = Server::start();
    scripted_backend(&server, png_bytes(4, 500));
    let receiver = Server::start();
    receiver.enqueue("/hook", Reply::json(500, &json!({})));
    receiver.handle(|_| Reply::json(204, &json!({})));
    let mut sandbox = authed_sandbox();
    // The first process would wait a minute before its second attempt.
    sandbox.env(
        "CODEX_IMAGEN_TEST_CALLBACK_DELAYS_MS",
        "60000,60000,60000,60000,60000",
    );
    let data = sandbox.path("data");
    let mut svc = Svc::start(&sandbox, &server, &data, &[]);
    let (_, job) = post_json(
        &svc.url("/v1/jobs"),
        &json!({"prompt": "a fox", "callback": {"url": format!("{}/hook", receiver.addr)}}),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    let job = job_until(&svc, &id, |j| j["notificationAttempts"] == 1).await;
    assert_eq!(job["notificationStatus"], "pending");
    assert_eq!(job["notificationError"], "HTTP 500");
    svc.kill9();

    sandbox.env("CODEX_IMAGEN_TEST_CALLBACK_DELAYS_MS", "50,50,50,50,50");
    let svc = Svc::start(&sandbox, &server, &data, &[]);
    let job = job_until(&svc, &id, |j| j["notificationStatus"] == "sent").await;
    assert_eq!(job["notificationAttempts"], 2);
    assert_eq!(job["status"], "completed");
    assert_eq!(receiver.requests_to("/hook").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_64_mib_is_413() {
    let server = Server::start();
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let svc = Svc::start(&sandbox, &server, &data, &[]);
    // No Content-Length: the limit is found while reading.
    let chunk = bytes::Bytes::from(vec![b' '; 1024 * 1024]);
    let stream =
        futures::stream::iter((0..65).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let response = http()
        .post(svc.url("/v1/jobs"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    // The server may answer and close before the client finishes writing.
    if let Ok(response) = response {
        assert_eq!(response.status().as_u16(), 413);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "request_too_large");
    }
    // The request log line reaches the reader thread a moment after the answer.
    assert!(
        wait_for(Duration::from_secs(5), || svc
            .log()
            .contains("POST /v1/jobs 413")),
        "{}",
        svc.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_rows_past_the_ttl_are_forgotten_at_start_and_their_files_stay() {
    let server = Server::start();
    let png = png_bytes(9, 1500);
    scripted_backend(&server, png.clone());
    let sandbox = authed_sandbox();
    let data = sandbox.path("data");
    let mut svc = Svc::start(&sandbox, &server, &data, &[]);
    let (status, job) = post_json(&svc.url("/v1/jobs"), &json!({"prompt": "keep me"})).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let job = job_until(&svc, &id, finished).await;
    assert_eq!(job["status"], "completed", "{job}");
    let path = PathBuf::from(job["images"][0]["path"].as_str().unwrap());
    assert_eq!(svc.terminate(), 0);

    // Within the TTL, a restart keeps the row.
    let mut svc = Svc::start(&sandbox, &server, &data, &["--job-ttl", "1h"]);
    let (status, _) = get_json(&svc.url(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(svc.terminate(), 0);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let svc = Svc::start(&sandbox, &server, &data, &["--job-ttl", "1s"]);
    let (status, body) = get_json(&svc.url(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        svc.log().contains("1 expired job rows removed"),
        "{}",
        svc.log()
    );
    assert!(
        std::fs::read(&path).unwrap() == png,
        "files are never deleted"
    );
}
