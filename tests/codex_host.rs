//! The real Codex CLI as the MCP host of `codex-imagen --mcp`, end to end.
//!
//! `codex exec --json` (0.171.0, installed by `.ci/run` with `npm install --prefix
//! target/codex-cli @openai/codex@0.171.0`, or named by `$CODEX_IMAGEN_CODEX_BIN`) starts the
//! built binary as an MCP server from a throwaway `CODEX_HOME/config.toml` holding README's
//! `[mcp_servers.codex-imagen]` example (plus loopback `--base-url`/`--refresh-url`/`--out-dir`).
//! One loopback server plays three parts:
//!
//! - the model (`/v1/responses`, a `wire_api = "responses"` provider): turn 1 answers with
//!   function calls into the `mcp__codex_imagen` namespace (how Codex offers an MCP server's
//!   tools for a model it does not know), turn 2, once Codex sends the outputs back, with a
//!   final message;
//! - Codex's ChatGPT backend (`chatgpt_base_url`: plugin lists, settings), answered 404;
//! - the image backend codex-imagen talks to.
//!
//! A second loopback server is the only proxy Codex knows (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`; `NO_PROXY` only for loopback): it refuses and records every request, so nothing
//! leaves the machine and a test fails on anything that tried to. (Codex's metrics exporter to
//! `ab.chatgpt.com` did, until `[analytics] enabled = false`.)
//!
//! The tests skip (and pass) when no Codex binary is there; they never download it.

#![cfg(unix)]

mod support;

use std::path::PathBuf;

use serde_json::{json, Value};
use support::codex::*;
use support::*;

/// The namespace Codex gives the tools of the `codex-imagen` server.
const NAMESPACE: &str = "mcp__codex_imagen";
const CALL_ID: &str = "call_generate_image";
const FINAL_TEXT: &str = "The image is saved.";

// ---------------------------------------------------------------------------------------------
// The scripted model
// ---------------------------------------------------------------------------------------------

/// Whether a model request carries a tool's output (turn 2) rather than the user's prompt.
fn has_tool_output(request: &Request) -> bool {
    request.json()["input"]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| i["type"] == "function_call_output"))
}

/// The loopback server: the model calls `generate_image` with `arguments`, then says
/// [`FINAL_TEXT`]; image requests get `backend()`; everything else a 404.
fn scripted(arguments: Value, backend: impl Fn() -> Reply + Send + 'static) -> Server {
    scripted_calls(vec![("generate_image", arguments)], backend)
}

/// As [`scripted`], the model calling each tool of `calls` at once (call ids `call_<tool>`).
fn scripted_calls(
    calls: Vec<(&'static str, Value)>,
    backend: impl Fn() -> Reply + Send + 'static,
) -> Server {
    let server = Server::start();
    server.handle(move |req| {
        if req.path.starts_with(MODEL_PATH) {
            if has_tool_output(req) {
                return model_turn("resp_2", vec![assistant_message("msg_2", FINAL_TEXT)]);
            }
            let items = calls
                .iter()
                .map(|(tool, arguments)| {
                    json!({"type": "function_call", "id": format!("fc_{tool}"),
                        "call_id": format!("call_{tool}"), "namespace": NAMESPACE,
                        "name": tool, "arguments": arguments.to_string()})
                })
                .collect();
            return model_turn("resp_1", items);
        }
        if req.path.starts_with(RESPONSES_PATH) {
            return backend();
        }
        Reply::json(404, &json!({"error": "not scripted"}))
    });
    server
}

/// A real 96x64 PNG.
fn real_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(96, 64, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, 200])
    });
    encode(image::DynamicImage::ImageRgb8(img), image::ImageFormat::Png)
}

/// A backend stream that completes with words and no image: a content refusal.
fn refusal(text: &str) -> Reply {
    Reply::sse()
        .event(&created())
        .event(&json!({"type": "response.output_text.done", "text": text}))
        .event(
            &json!({"type": "response.completed", "response": {"id": "resp_1",
            "status": "completed", "output": [{"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": text}]}]}}),
        )
        .end()
}

// ---------------------------------------------------------------------------------------------
// The host
// ---------------------------------------------------------------------------------------------

/// How the server finds its credentials.
enum Creds {
    /// `auth.json` in `CODEX_HOME`, passed through with `env_vars = ["CODEX_HOME"]` (README).
    CodexHomeEnvVar,
    /// `auth.json` in `CODEX_HOME`, not passed through: the server cannot find it.
    CodexHomeNotPassed,
    /// `--auth PATH` in the server's args (README).
    AuthFlag,
}

struct Host {
    codex: PathBuf,
    sandbox: Sandbox,
    server: Server,
    proxy: Server,
}

impl CodexRun {
    /// The completed `mcp_tool_call` items.
    fn tool_calls(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == "mcp_tool_call")
            .map(|e| &e["item"])
            .collect()
    }

    fn agent_messages(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == "agent_message")
            .filter_map(|e| e["item"]["text"].as_str())
            .collect()
    }

    fn turn_completed(&self) -> bool {
        self.events.iter().any(|e| e["type"] == "turn.completed")
    }
}

impl Host {
    fn new(codex: PathBuf, server: Server) -> Host {
        Host {
            codex,
            sandbox: Sandbox::new(),
            server,
            proxy: dead_proxy(),
        }
    }

    fn codex_home(&self) -> PathBuf {
        self.sandbox.path("codex-home")
    }

    fn out_dir(&self) -> PathBuf {
        self.sandbox.path("out")
    }

    /// Write the credentials and Codex's `config.toml` as README shows it.
    fn configure(&self, creds: Creds) {
        self.configure_with(creds, true)
    }

    /// As [`Host::configure`]; `approve` says whether the server's tools are approved up front
    /// (`default_tools_approval_mode = "approve"`).
    fn configure_with(&self, creds: Creds, approve: bool) {
        let auth = self.codex_home().join("auth.json");
        let mut value = codex_auth(3600);
        // Codex reads this file too: give it an id_token it can parse.
        value["tokens"]["id_token"] = Value::from(format!(
            "eyJhbGciOiJub25lIn0.{}.sig",
            b64url(
                json!({"email": "user@example.com", "exp": now_secs() + 3600,
                    "https://api.openai.com/auth": {"chatgpt_account_id": "acct-123",
                        "chatgpt_plan_type": "plus"}})
                .to_string()
                .as_bytes()
            )
        ));
        write_json(&auth, &value);

        let binary = env!("CARGO_BIN_EXE_codex-imagen");
        let out = self.out_dir().display().to_string();
        let base_url = self.server.base_url();
        let refresh_url = self.server.refresh_url();
        let mut args = vec![
            "--mcp",
            "--out-dir",
            &out,
            "--base-url",
            &base_url,
            "--refresh-url",
            &refresh_url,
        ];
        let auth_text = auth.display().to_string();
        let env_vars = match creds {
            Creds::CodexHomeEnvVar => "env_vars = [\"CODEX_HOME\"]\n",
            Creds::CodexHomeNotPassed => "",
            Creds::AuthFlag => {
                args.extend(["--auth", auth_text.as_str()]);
                ""
            }
        };
        let args: Vec<String> = args.iter().map(|a| toml_str(a)).collect();
        let config = format!(
            "{offline}\
             [mcp_servers.codex-imagen]\n\
             command = {command}\n\
             args = [{args}]\n\
             tool_timeout_sec = 900\n\
             {approval}\
             {env_vars}",
            offline = offline_config(&self.server.addr, "approval_policy = \"never\"\n"),
            command = toml_str(binary),
            args = args.join(", "),
            approval = if approve {
                "default_tools_approval_mode = \"approve\"\n"
            } else {
                ""
            },
        );
        std::fs::create_dir_all(self.codex_home()).unwrap();
        std::fs::write(self.codex_home().join("config.toml"), config).unwrap();
    }

    /// `codex exec --skip-git-repo-check --json PROMPT </dev/null`, killed with its process
    /// group (the MCP server too) after [`CODEX_LIMIT`].
    fn exec(&self, prompt: &str) -> CodexRun {
        let mut cmd = codex_command(
            &self.codex,
            &["exec", "--skip-git-repo-check", "--json", prompt],
            &self.sandbox.home(),
            &self.codex_home(),
            &self.sandbox.work(),
            &self.proxy,
        );
        cmd.env(
            "CODEX_REFRESH_TOKEN_URL_OVERRIDE",
            self.server.refresh_url(),
        );
        run_codex(cmd)
    }

    /// The model requests, in order.
    fn model_requests(&self) -> Vec<Value> {
        self.server
            .requests_to(MODEL_PATH)
            .iter()
            .map(Request::json)
            .collect()
    }

    /// Nothing went to the proxy, so nothing went beyond 127.0.0.1.
    fn assert_stayed_local(&self) {
        assert_stayed_local(&self.proxy);
    }
}

/// The codex-imagen tools as Codex offers them to the model: a `namespace` of functions.
fn offered_tools(request: &Value) -> Vec<String> {
    let tools = request["tools"]
        .as_array()
        .expect("tools in the model request");
    let namespace = tools
        .iter()
        .find(|t| t["type"] == "namespace" && t["name"] == NAMESPACE)
        .unwrap_or_else(|| panic!("no {NAMESPACE} namespace in {tools:?}"));
    namespace["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["type"], "function", "{t}");
            t["name"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The text of the output Codex sent the model for `call_id` in turn 2: a string, or input
/// text items joined by newlines.
fn output_text(request: &Value, call_id: &str) -> String {
    let item = request["input"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call_output" && i["call_id"] == call_id)
        .unwrap_or_else(|| panic!("no output for {call_id} in {}", request["input"]));
    match &item["output"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        other => panic!("unexpected output {other}"),
    }
}

/// The `structuredContent` Codex sent the model for `call_id` in turn 2, parsed: Codex
/// prefixes the JSON with a `Wall time: … Output:` header.
fn structured_output_sent(request: &Value, call_id: &str) -> Value {
    let text = output_text(request, call_id);
    let start = text.find('{').unwrap_or_else(|| panic!("JSON in {text:?}"));
    serde_json::from_str(&text[start..]).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn codex_calls_generate_image_and_gets_the_saved_path_back() {
    let Some(codex) = codex_or_skip("codex_calls_generate_image_and_gets_the_saved_path_back")
    else {
        return;
    };
    let png = real_png();
    let served = png.clone();
    let server = scripted(json!({"prompt": "a red fox in the snow"}), move || {
        image_stream(&[("ig_1", &served)])
    });
    let host = Host::new(codex, server);
    host.configure(Creds::CodexHomeEnvVar);

    let run = host.exec("Draw a red fox in the snow.");

    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.turn_completed(), "{run}");
    assert_eq!(run.agent_messages(), [FINAL_TEXT], "{run}");

    // The image is on disk with the backend's bytes.
    let saved = files_named(&host.out_dir(), ".png");
    assert_eq!(saved.len(), 1, "{saved:?}\n{run}");
    assert_eq!(std::fs::read(&saved[0]).unwrap(), png);
    let path = saved[0].display().to_string();
    let sha256 = sha256_hex(&png);

    // Codex's own record: the MCP call completed, with the server's structuredContent.
    let calls = run.tool_calls();
    assert_eq!(calls.len(), 1, "{run}");
    let call = calls[0];
    assert_eq!(call["server"], "codex-imagen", "{call}");
    assert_eq!(call["tool"], "generate_image", "{call}");
    assert_eq!(call["status"], "completed", "{call}");
    assert_eq!(call["error"], Value::Null, "{call}");
    // The default thumbnail arrives as an image block (a JPEG: the PNG has no transparency).
    let content = call["result"]["content"].as_array().unwrap();
    let kinds: Vec<&str> = content.iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(kinds, ["text", "image"], "{call}");
    assert!(
        content[0]["text"].as_str().unwrap().contains(&path),
        "{call}"
    );
    assert_eq!(content[1]["mimeType"], "image/jpeg", "{call}");
    let thumbnail = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(content[1]["data"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(
        image::load_from_memory(&thumbnail)
            .unwrap()
            .into_rgb8()
            .dimensions(),
        (96, 64)
    );
    let structured = &call["result"]["structured_content"];
    assert_eq!(structured["images"][0]["path"], path.as_str(), "{call}");
    assert_eq!(structured["images"][0]["sha256"], sha256.as_str(), "{call}");

    // The model saw the four tools in turn 1 and the structuredContent in turn 2.
    let requests = host.model_requests();
    assert_eq!(requests.len(), 2, "{run}");
    let mut tools = offered_tools(&requests[0]);
    tools.sort();
    assert_eq!(
        tools,
        ["auth_status", "edit_image", "generate_image", "image_usage"]
    );
    let output = structured_output_sent(&requests[1], CALL_ID);
    assert_eq!(output["images"][0]["path"], path.as_str(), "{output}");
    assert_eq!(output["images"][0]["sha256"], sha256.as_str(), "{output}");
    assert_eq!(output["images"][0]["bytes"], png.len(), "{output}");
    assert_eq!(output["images"][0]["width"], 96, "{output}");
    assert_eq!(output["images"][0]["height"], 64, "{output}");
    assert_eq!(output["timed_out"], false, "{output}");

    // One image request, carrying the model's prompt and the token from CODEX_HOME.
    let image_requests = host.server.requests_to(RESPONSES_PATH);
    assert_eq!(image_requests.len(), 1, "{run}");
    assert_eq!(
        image_requests[0].json()["input"][0]["content"][0]["text"],
        "a red fox in the snow"
    );
    let token = read_json(&host.codex_home().join("auth.json"))["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        image_requests[0].header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    host.assert_stayed_local();
    eprintln!("codex exec took {:?}", run.elapsed);
}

#[test]
fn a_refusal_reaches_codex_as_an_error_result_and_the_turn_completes() {
    let Some(codex) =
        codex_or_skip("a_refusal_reaches_codex_as_an_error_result_and_the_turn_completes")
    else {
        return;
    };
    let words = "I can't make that image.";
    let server = scripted(json!({"prompt": "something forbidden"}), move || {
        refusal(words)
    });
    let host = Host::new(codex, server);
    host.configure(Creds::AuthFlag);

    let run = host.exec("Draw something forbidden.");

    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.turn_completed(), "{run}");
    assert_eq!(run.agent_messages(), [FINAL_TEXT], "{run}");
    let calls = run.tool_calls();
    assert_eq!(calls.len(), 1, "{run}");
    let call = calls[0];
    // An `isError` result: Codex marks the call failed but keeps the server's result.
    assert_eq!(call["status"], "failed", "{call}");
    let text = call["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(
        text.starts_with(&format!("The model answered without an image: {words}")),
        "{call}"
    );
    assert_eq!(call["result"]["structured_content"]["images"], json!([]));

    let requests = host.model_requests();
    assert_eq!(requests.len(), 2, "{run}");
    let output = structured_output_sent(&requests[1], CALL_ID);
    assert_eq!(output["images"], json!([]), "{output}");
    assert_eq!(output["errors"][0]["kind"], "refused", "{output}");
    assert!(
        output["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(words),
        "{output}"
    );
    assert_eq!(
        host.server.requests_to(RESPONSES_PATH).len(),
        1,
        "not retried"
    );
    assert!(files_named(&host.out_dir(), ".png").is_empty());
    host.assert_stayed_local();
}

#[test]
fn without_env_vars_codex_home_does_not_reach_the_server_and_the_result_says_so() {
    let Some(codex) = codex_or_skip(
        "without_env_vars_codex_home_does_not_reach_the_server_and_the_result_says_so",
    ) else {
        return;
    };
    let server = scripted(json!({"prompt": "a fox"}), || {
        Reply::json(500, &json!({"error": "no image request expected"}))
    });
    let host = Host::new(codex, server);
    host.configure(Creds::CodexHomeNotPassed);

    let run = host.exec("Draw a fox.");

    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.turn_completed(), "{run}");
    let calls = run.tool_calls();
    assert_eq!(calls.len(), 1, "{run}");
    assert_eq!(calls[0]["status"], "failed", "{}", calls[0]);
    let text = calls[0]["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    assert!(text.starts_with("No auth JSON found"), "{text}");
    assert!(text.contains("env_vars = [\"CODEX_HOME\"]"), "{text}");
    assert!(host.server.requests_to(RESPONSES_PATH).is_empty());
    host.assert_stayed_local();
}

#[test]
fn without_approval_only_the_read_only_tools_run_under_codex_exec() {
    let Some(codex) =
        codex_or_skip("without_approval_only_the_read_only_tools_run_under_codex_exec")
    else {
        return;
    };
    let server = scripted_calls(
        vec![
            ("auth_status", json!({})),
            ("generate_image", json!({"prompt": "a fox"})),
        ],
        || Reply::json(500, &json!({"error": "no image request expected"})),
    );
    let host = Host::new(codex, server);
    host.configure_with(Creds::AuthFlag, false);

    let run = host.exec("Check the credentials, then draw a fox.");

    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.turn_completed(), "{run}");
    let calls = run.tool_calls();
    assert_eq!(calls.len(), 2, "{run}");
    let call = |tool: &str| *calls.iter().find(|c| c["tool"] == tool).unwrap();
    // auth_status says it is read-only (readOnlyHint), so Codex runs it without asking.
    assert_eq!(call("auth_status")["status"], "completed", "{run}");
    // generate_image spends quota and writes files: Codex asks, and `codex exec` cannot.
    let generate = call("generate_image");
    assert_eq!(generate["status"], "failed", "{run}");
    assert_eq!(
        generate["error"]["message"],
        "MCP tool call requires approval, but approval policy is never",
        "{run}"
    );

    let requests = host.model_requests();
    assert_eq!(requests.len(), 2, "{run}");
    let auth = host.codex_home().join("auth.json").display().to_string();
    let status = structured_output_sent(&requests[1], "call_auth_status");
    assert_eq!(status["auth_path"], auth.as_str(), "{status}");
    assert_eq!(status["credential_state"], "ok", "{status}");
    assert!(
        output_text(&requests[1], CALL_ID).contains("requires approval"),
        "{run}"
    );
    assert!(host.server.requests_to(RESPONSES_PATH).is_empty());
    host.assert_stayed_local();
}
