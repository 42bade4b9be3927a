//! The command line as a user meets it (SPEC §1, §2, §14 order of a run, §16): every usage error
//! text with exit 2, `--help`/`--version`, `--name=value`, `--cwd`, the prompt sources and the
//! reference-image errors. Each test runs the built binary in its own sandbox (own HOME, clean
//! environment); nothing here reaches the internet.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::*;

const RESPONSES: &str = "/backend-api/codex/responses";

const PROMPT_REQUIRED: &str =
    "Prompt is required. Pass it positionally, with --prompt, or with --prompt-file.";

/// Every option that takes a value, as typed.
const VALUE_OPTIONS: [&str; 22] = [
    "--prompt",
    "--prompt-file",
    "-i",
    "--image",
    "--input-ref",
    "--image-url",
    "--image-detail",
    "-o",
    "--output",
    "--out-dir",
    "--backend",
    "--image-backend",
    "--model",
    "--auth",
    "--auth-profile",
    "--base-url",
    "--refresh-url",
    "--cwd",
    "--retries",
    "--timeout",
    "--timeout-seconds",
    "--timeout-ms",
];

/// The working directory as the binary sees it (symlinks resolved, as `getcwd` returns it).
fn work(sandbox: &Sandbox) -> PathBuf {
    sandbox.work().canonicalize().unwrap()
}

#[track_caller]
fn assert_usage_error(run: &Run, text: &str) {
    assert_eq!(run.stderr, format!("Error: {text}\n"), "{run}");
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(run.stdout, "", "{run}");
}

/// `--smoke --json` plus `args`, which must succeed; the parsed report.
#[track_caller]
fn smoke(sandbox: &Sandbox, args: &[&str]) -> Value {
    let mut all = vec!["--smoke", "--json"];
    all.extend_from_slice(args);
    let run = sandbox.run(&all);
    assert_eq!(run.code, 0, "{run}");
    run.json()
}

/// A server that answers every generation with one image.
fn image_server() -> Server {
    let server = Server::start();
    let png = png_bytes(3, 800);
    server.handle(move |_| image_stream(&[("ig_1", &png)]));
    server
}

/// The `input_text`/`input_image` content the backend received in the only request.
fn sent_content(server: &Server) -> Vec<Value> {
    let requests = server.requests_to(RESPONSES);
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests[0].json()["input"][0]["content"]
        .as_array()
        .expect("content array")
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Usage errors (exit 2)
// ---------------------------------------------------------------------------------------------

#[test]
fn an_option_that_needs_a_value_as_the_last_word_is_a_missing_value() {
    let sandbox = Sandbox::new();
    for option in VALUE_OPTIONS {
        let run = sandbox.run(&["a prompt", option]);
        assert_usage_error(&run, &format!("Missing value for {option}"));
    }
    // Alone on the line too, and after other options.
    assert_usage_error(&sandbox.run(&["-o"]), "Missing value for -o");
    assert_usage_error(
        &sandbox.run(&["--json", "--quiet", "-i"]),
        "Missing value for -i",
    );
}

#[test]
fn a_value_that_looks_like_an_option_is_taken_as_the_value() {
    // `--prompt --json` makes the prompt "--json", as the Node parser did: nothing is missing.
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--prompt", "--json", "--quiet"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        run.stdout.lines().count(),
        1,
        "plain paths, not JSON: {run}"
    );
    assert_eq!(sent_content(&server)[0]["text"], "--json");
}

#[test]
fn unknown_options_are_named_as_typed() {
    let sandbox = Sandbox::new();
    for arg in [
        "--bogus",
        "--bogus=1",
        "-z",
        "--Prompt",
        "--smoke=1",
        "--json=yes",
        "--no-retry=0",
        "--verbose=true",
    ] {
        let run = sandbox.run(&["a prompt", arg]);
        assert_usage_error(&run, &format!("Unknown option: {arg}"));
    }
}

#[test]
fn the_first_unknown_option_is_the_one_reported() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["--first-bad", "--second-bad"]);
    assert_usage_error(&run, "Unknown option: --first-bad");
}

#[test]
fn an_image_detail_outside_the_set_is_refused() {
    let sandbox = Sandbox::new();
    for args in [
        &["x", "--image-detail", "ultra"][..],
        &["x", "--image-detail=HIGH"],
        &["x", "--image-detail", ""],
    ] {
        assert_usage_error(
            &sandbox.run(args),
            "--image-detail must be one of: auto, low, high, original",
        );
    }
}

#[test]
fn every_image_detail_in_the_set_is_accepted() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    for detail in ["auto", "low", "high", "original"] {
        let run = sandbox.run(&["--smoke", "--image-detail", detail]);
        assert_eq!(run.code, 0, "{detail}: {run}");
    }
}

#[test]
fn a_backend_outside_the_set_is_refused_from_the_flag_and_from_the_environment() {
    let text = "--backend must be one of: responses, images, auto";
    let sandbox = Sandbox::new();
    assert_usage_error(&sandbox.run(&["x", "--backend", "dalle"]), text);
    assert_usage_error(&sandbox.run(&["x", "--backend=Images"]), text);
    assert_usage_error(&sandbox.run(&["x", "--image-backend", "gpt"]), text);

    let mut sandbox = Sandbox::new();
    sandbox.env("CODEX_IMAGEN_BACKEND", "dalle");
    assert_usage_error(&sandbox.run(&["x"]), text);
    // ... and even with --smoke, which needs no prompt.
    assert_usage_error(&sandbox.run(&["--smoke"]), text);
}

#[test]
fn the_backend_flag_wins_over_the_environment_and_a_blank_variable_does_not_count() {
    let mut sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    sandbox.env("CODEX_IMAGEN_BACKEND", "dalle");
    let report = smoke(&sandbox, &["--backend", "responses"]);
    assert_eq!(report["backend"], "responses");

    let mut sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    sandbox.env("CODEX_IMAGEN_BACKEND", "images");
    let report = smoke(&sandbox, &[]);
    assert_eq!(report["backend"], "images");
    assert_eq!(report["model"], "gpt-image-2");

    let mut sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    sandbox.env("CODEX_IMAGEN_BACKEND", "   ");
    let report = smoke(&sandbox, &[]);
    assert_eq!(report["backend"], "responses");
    assert_eq!(report["model"], "gpt-5.4");
}

#[test]
fn retries_out_of_range_or_not_an_integer_are_refused() {
    let sandbox = Sandbox::new();
    for value in ["101", "-1", "1.5", "three", "NaN", "Infinity"] {
        let run = sandbox.run(&["x", "--retries", value]);
        assert_usage_error(&run, "--retries must be an integer from 0 to 100");
        let run = sandbox.run(&["x", &format!("--retries={value}")]);
        assert_usage_error(&run, "--retries must be an integer from 0 to 100");
    }
}

#[test]
fn retries_at_the_limits_and_no_retry_are_reported_by_smoke() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let report = smoke(&sandbox, &[]);
    assert_eq!(
        (report["retries"].clone(), report["total_attempts"].clone()),
        (4.into(), 5.into())
    );
    let report = smoke(&sandbox, &["--retries", "100"]);
    assert_eq!(
        (report["retries"].clone(), report["total_attempts"].clone()),
        (100.into(), 101.into())
    );
    let report = smoke(&sandbox, &["--retries=0"]);
    assert_eq!(report["total_attempts"], 1);
    // The last of --retries / --no-retry wins.
    assert_eq!(
        smoke(&sandbox, &["--retries", "3", "--no-retry"])["retries"],
        0
    );
    assert_eq!(
        smoke(&sandbox, &["--no-retry", "--retries", "7"])["retries"],
        7
    );
    assert_eq!(
        smoke(&sandbox, &["--retries", "9", "--retries", "2"])["retries"],
        2
    );
}

#[test]
fn a_timeout_that_is_not_a_positive_number_is_refused_in_its_own_unit() {
    let sandbox = Sandbox::new();
    for flag in ["--timeout", "--timeout-seconds"] {
        for value in ["0", "-5", "soon", "Infinity", "NaN"] {
            let expected =
                format!("{flag} must be greater than 0 seconds so generation cannot run unbounded");
            assert_usage_error(&sandbox.run(&["x", flag, value]), &expected);
            assert_usage_error(&sandbox.run(&["x", &format!("{flag}={value}")]), &expected);
        }
    }
    for value in ["0", "-1", "100ms", "Infinity"] {
        let expected =
            "--timeout-ms must be greater than 0 milliseconds so generation cannot run unbounded";
        assert_usage_error(&sandbox.run(&["x", "--timeout-ms", value]), expected);
    }
}

#[test]
fn a_second_timeout_flag_names_the_first_and_the_second() {
    let sandbox = Sandbox::new();
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["--timeout", "5", "--timeout-ms", "100"],
            "--timeout",
            "--timeout-ms",
        ),
        (
            &["--timeout-ms=100", "--timeout-seconds", "5"],
            "--timeout-ms",
            "--timeout-seconds",
        ),
        (
            &["--timeout-seconds", "5", "--timeout", "6"],
            "--timeout-seconds",
            "--timeout",
        ),
        (&["--timeout", "5", "--timeout=6"], "--timeout", "--timeout"),
    ];
    for (args, first, second) in cases {
        let mut all = vec!["x"];
        all.extend_from_slice(args);
        assert_usage_error(
            &sandbox.run(&all),
            &format!("Use only one timeout option. {first} was already provided; remove {second}."),
        );
    }
    // Even when the second value is invalid: the duplicate is what is wrong.
    assert_usage_error(
        &sandbox.run(&["x", "--timeout", "5", "--timeout-ms", "0"]),
        "Use only one timeout option. --timeout was already provided; remove --timeout-ms.",
    );
}

#[test]
fn timeouts_are_stored_as_whole_milliseconds_rounded_up() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let report = smoke(&sandbox, &["--timeout", "1.0001"]);
    assert_eq!(report["timeout_ms"], 1001);
    assert_eq!(report["timeout_seconds"], 1.001);
    let report = smoke(&sandbox, &["--timeout-seconds=2.5"]);
    assert_eq!(report["timeout_ms"], 2500);
    assert_eq!(report["timeout_seconds"], 2.5);
    let report = smoke(&sandbox, &["--timeout-ms", "2.1"]);
    assert_eq!(report["timeout_ms"], 3);
    assert_eq!(report["timeout_seconds"], 0.003);
    let report = smoke(&sandbox, &["--timeout", "300"]);
    assert_eq!(report["timeout_ms"], 300_000);
    assert_eq!(report["timeout_seconds"], 300);
}

#[test]
fn positional_words_with_prompt_or_prompt_file_name_the_first_word() {
    let sandbox = Sandbox::new();
    let text = |word: &str| {
        format!(
            "Unexpected positional argument with --prompt: {word}. Use -i/--image or --input-ref for reference images."
        )
    };
    assert_usage_error(
        &sandbox.run(&["--prompt", "a cat", "ref.png", "other.png"]),
        &text("ref.png"),
    );
    assert_usage_error(&sandbox.run(&["first", "--prompt=a cat"]), &text("first"));
    assert_usage_error(
        &sandbox.run(&["loose", "--prompt-file", "prompt.txt"]),
        &text("loose"),
    );
    // Reported before anything is read: the prompt file need not exist, no auth is needed.
    assert_usage_error(
        &sandbox.run(&["--prompt-file=missing.txt", "word"]),
        &text("word"),
    );
}

#[test]
fn no_prompt_at_all_is_a_usage_error_once_auth_is_ready() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    assert_usage_error(&sandbox.run(&[]), PROMPT_REQUIRED);
    assert_usage_error(&sandbox.run(&["--json", "--quiet"]), PROMPT_REQUIRED);
    assert_usage_error(&sandbox.run(&["--prompt", ""]), PROMPT_REQUIRED);
}

#[test]
fn a_whitespace_only_prompt_is_no_prompt() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    assert_usage_error(&sandbox.run(&["   "]), PROMPT_REQUIRED);
    assert_usage_error(&sandbox.run(&[" ", "\t", "\n"]), PROMPT_REQUIRED);
    assert_usage_error(&sandbox.run(&["--prompt", " \t "]), PROMPT_REQUIRED);
    std::fs::write(sandbox.work().join("blank.txt"), " \n\t\n").unwrap();
    assert_usage_error(
        &sandbox.run(&["--prompt-file", "blank.txt"]),
        PROMPT_REQUIRED,
    );
}

#[test]
fn the_prompt_is_looked_at_only_after_auth_so_missing_auth_is_reported_first() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .starts_with("Error: No auth JSON found. Tried:\n"),
        "{run}"
    );
}

// ---------------------------------------------------------------------------------------------
// --help and --version
// ---------------------------------------------------------------------------------------------

#[test]
fn help_prints_usage_on_stdout_with_every_option_and_the_auth_discovery_order() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["--help"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stderr, "", "{run}");
    let help = &run.stdout;
    for option in [
        "--prompt <",
        "--prompt-file <",
        "-i, --image <",
        "--input-ref <",
        "--image-url <",
        "--image-detail <",
        "-o, --output <",
        "--out-dir <",
        "--backend <",
        "--image-backend",
        "--model <",
        "--auth <",
        "--auth-profile <",
        "--base-url <",
        "--refresh-url <",
        "--cwd <",
        "--smoke",
        "--force-refresh",
        "--refresh-only",
        "--no-refresh",
        "--retries <",
        "--no-retry",
        "--timeout <",
        "--timeout-seconds <",
        "--timeout-ms <",
        "--no-stream",
        "--json",
        "--quiet",
        "--verbose",
        "--debug",
        "--version",
        "-h, --help",
    ] {
        assert!(help.contains(option), "help lacks {option}:\n{help}");
    }
    let order = [
        "1. --auth",
        "2. CODEX_IMAGEN_AUTH_JSON, OPENCLAW_CODEX_AUTH_JSON, CODEX_AUTH_JSON",
        "3. OPENCLAW_AGENT_DIR/auth-profiles.json or PI_CODING_AGENT_DIR/auth-profiles.json",
        "4. OPENCLAW_AGENT_DIR/auth.json or PI_CODING_AGENT_DIR/auth.json",
        "5. ~/.openclaw/agents/main/agent/auth-profiles.json",
        "6. ~/.openclaw/agents/main/agent/auth.json",
        "7. ~/.openclaw/credentials/oauth.json",
        "8. CODEX_HOME/auth.json",
        "9. ~/.codex/auth.json",
    ];
    let mut from = 0;
    for step in order {
        let at = help[from..]
            .find(step)
            .unwrap_or_else(|| panic!("help lacks {step:?} (in order):\n{help}"));
        from += at + step.len();
    }
    assert_eq!(sandbox.run(&["-h"]).stdout, *help, "-h and --help differ");
}

#[test]
fn help_wins_over_every_other_problem_on_the_line() {
    let sandbox = Sandbox::new();
    let help = sandbox.run(&["--help"]).stdout;
    for args in [
        &["--bogus", "--help"][..],
        &["--help", "--bogus=1"],
        &["-h", "--timeout", "0"],
        &["--retries", "500", "-h"],
        &["--image-detail", "ultra", "--help"],
        &["--backend", "dalle", "--help"],
        &["--prompt", "x", "extra", "--help"],
        &["--timeout", "1", "--timeout-ms", "1", "--help"],
        &["--cwd", "/definitely/not/here", "--help"],
        &["--help", "--prompt"],
    ] {
        let run = sandbox.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run}");
        assert_eq!(run.stdout, help, "{args:?}");
        assert_eq!(run.stderr, "", "{args:?}");
    }
}

#[test]
fn version_prints_the_crate_version_and_a_newline() {
    let sandbox = Sandbox::new();
    let expected = format!("{}\n", env!("CARGO_PKG_VERSION"));
    for args in [
        &["--version"][..],
        &["--version", "--bogus"],
        &["--retries", "500", "--version"],
        &["--timeout", "0", "--version"],
        &["a prompt", "--json", "--version"],
        &["--version", "--auth"],
    ] {
        let run = sandbox.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run}");
        assert_eq!(run.stdout, expected, "{args:?}");
        assert_eq!(run.stderr, "", "{args:?}");
    }
}

#[test]
fn help_and_version_need_no_auth_and_touch_no_file() {
    let sandbox = Sandbox::new();
    for args in [&["--help"][..], &["--version"]] {
        let run = sandbox.run(args);
        assert_eq!(run.code, 0, "{run}");
    }
    assert_eq!(
        std::fs::read_dir(sandbox.home()).unwrap().count(),
        0,
        "HOME stays empty"
    );
    assert_eq!(
        std::fs::read_dir(sandbox.work()).unwrap().count(),
        0,
        "the working directory stays empty"
    );
}

// ---------------------------------------------------------------------------------------------
// --name=value, --cwd and relative paths
// ---------------------------------------------------------------------------------------------

#[test]
fn every_value_option_accepts_the_name_equals_value_form() {
    let sandbox = Sandbox::new();
    let store = sandbox.path("elsewhere/auth.json");
    write_json(&store, &codex_auth(3600));
    let auth = format!("--auth={}", store.display());
    let report = smoke(
        &sandbox,
        &[
            &auth,
            "--out-dir=rel/out",
            "--backend=images",
            "--model=gpt-image-x",
            "--base-url=http://127.0.0.1:9/base//",
            "--refresh-url=http://127.0.0.1:9/token",
            "--retries=7",
            "--timeout=12",
            "--image-detail=low",
            "--auth-profile=openai-codex:ignored-for-codex",
            "--prompt=unused",
        ],
    );
    assert_eq!(report["auth_path"], store.display().to_string());
    assert_eq!(
        report["out_dir"],
        work(&sandbox).join("rel/out").display().to_string()
    );
    assert_eq!(report["backend"], "images");
    assert_eq!(report["model"], "gpt-image-x");
    assert_eq!(
        report["endpoint"],
        "http://127.0.0.1:9/base/images/generations"
    );
    assert_eq!(
        report["responses_endpoint"],
        "http://127.0.0.1:9/base/responses"
    );
    assert_eq!(
        report["edit_endpoint"],
        "http://127.0.0.1:9/base/images/edits"
    );
    assert_eq!(report["retries"], 7);
    assert_eq!(report["timeout_ms"], 12_000);
}

#[test]
fn an_empty_path_value_means_the_option_was_not_given() {
    // `--out-dir="$OUT"` with OUT unset: the Node tool treated "" as absent.
    let sandbox = Sandbox::new();
    let store = sandbox.with_codex_auth();
    let report = smoke(&sandbox, &["--out-dir=", "--auth=", "--cwd="]);
    assert_eq!(report["auth_path"], store.display().to_string());
    assert_eq!(
        report["out_dir"],
        work(&sandbox)
            .join("codex-imagen-output")
            .display()
            .to_string()
    );

    let server = image_server();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(
        &sargs,
        &["-o", "", "--out-dir", "pics", "--quiet", "a cat"],
    ));
    assert_eq!(run.code, 0, "{run}");
    let saved = PathBuf::from(run.stdout.trim());
    assert_eq!(
        saved.parent(),
        Some(work(&sandbox).join("pics").as_path()),
        "{run}"
    );
}

#[test]
fn a_value_containing_equals_signs_is_kept_whole() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--prompt=a=b, c==d", "--quiet"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(sent_content(&server)[0]["text"], "a=b, c==d");
}

#[test]
fn positional_words_are_joined_with_single_spaces_and_sent_untrimmed() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(
        &sargs,
        &[" a red", "--quiet", "cube ", "on  grass"],
    ));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(sent_content(&server)[0]["text"], " a red cube  on  grass");
}

#[test]
fn cwd_makes_relative_output_paths_absolute_under_it() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    std::fs::create_dir_all(sandbox.work().join("project/sub")).unwrap();
    let report = smoke(&sandbox, &["--cwd", "project", "--out-dir", "rel"]);
    assert_eq!(
        report["out_dir"],
        work(&sandbox).join("project/rel").display().to_string()
    );
    // `..` and `.` are folded, as Node's path.resolve does.
    let report = smoke(&sandbox, &["--cwd=project/sub", "--out-dir", "../out/./x"]);
    assert_eq!(
        report["out_dir"],
        work(&sandbox).join("project/out/x").display().to_string()
    );
    // Without --out-dir: ./codex-imagen-output under the new working directory.
    let report = smoke(&sandbox, &["--cwd", "project"]);
    assert_eq!(
        report["out_dir"],
        work(&sandbox)
            .join("project/codex-imagen-output")
            .display()
            .to_string()
    );
}

#[test]
fn tilde_in_cwd_out_dir_and_auth_means_the_home_directory() {
    let sandbox = Sandbox::new();
    let store = sandbox.with_codex_auth();
    std::fs::create_dir_all(sandbox.home().join("proj")).unwrap();
    let home = sandbox.home();
    let report = smoke(
        &sandbox,
        &[
            "--cwd",
            "~/proj",
            "--auth",
            "~/.codex/auth.json",
            "--out-dir",
            "~/pics",
        ],
    );
    assert_eq!(report["auth_path"], store.display().to_string());
    assert_eq!(report["out_dir"], home.join("pics").display().to_string());
    let report = smoke(&sandbox, &["--cwd", "~", "--out-dir", "out"]);
    assert_eq!(report["out_dir"], home.join("out").display().to_string());
}

#[test]
fn an_explicit_auth_path_resolves_from_cwd() {
    let sandbox = Sandbox::new();
    let store = sandbox.work().join("project/creds/auth.json");
    write_json(&store, &codex_auth(3600));
    let report = smoke(&sandbox, &["--cwd", "project", "--auth", "creds/auth.json"]);
    assert_eq!(
        report["auth_path"],
        work(&sandbox)
            .join("project/creds/auth.json")
            .display()
            .to_string()
    );
}

#[test]
fn a_missing_cwd_is_an_error_naming_the_directory() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let run = sandbox.run(&["--smoke", "--cwd", "no/such/dir"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stdout, "", "{run}");
    let missing = work(&sandbox).join("no/such/dir");
    assert!(
        run.stderr.starts_with("Error: ") && run.stderr.contains(&missing.display().to_string()),
        "{run}"
    );
    assert!(run.stderr.contains("No such file or directory"), "{run}");
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
}

#[test]
fn a_cwd_that_is_a_file_is_an_error_naming_it() {
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    std::fs::write(sandbox.work().join("plain.txt"), "x").unwrap();
    let run = sandbox.run(&["--smoke", "--cwd", "plain.txt"]);
    assert_eq!(run.code, 1, "{run}");
    let file = work(&sandbox).join("plain.txt");
    assert!(
        run.stderr.starts_with("Error: ") && run.stderr.contains(&file.display().to_string()),
        "{run}"
    );
}

// ---------------------------------------------------------------------------------------------
// The prompt file
// ---------------------------------------------------------------------------------------------

#[test]
fn a_prompt_file_relative_to_cwd_reaches_the_server_byte_for_byte() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let text = "Ảnh một con mèo đỏ — «café» ☕ 猫 🐈\n  second line, kept as is  \n";
    std::fs::create_dir_all(sandbox.work().join("project/prompts")).unwrap();
    std::fs::write(sandbox.work().join("project/prompts/p.txt"), text).unwrap();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(
        &sargs,
        &[
            "--cwd",
            "project",
            "--prompt-file",
            "prompts/p.txt",
            "--quiet",
        ],
    ));
    assert_eq!(run.code, 0, "{run}");
    let content = sent_content(&server);
    assert_eq!(content.len(), 1, "{content:?}");
    assert_eq!(
        content[0],
        serde_json::json!({"type": "input_text", "text": text})
    );
    // The image lands under the new working directory.
    let saved = PathBuf::from(run.stdout.trim());
    assert!(
        saved.starts_with(work(&sandbox).join("project/codex-imagen-output")),
        "{run}"
    );
}

#[test]
fn a_prompt_file_path_may_start_with_tilde() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    std::fs::write(sandbox.home().join("prompt.txt"), "from home").unwrap();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(
        &sargs,
        &["--prompt-file=~/prompt.txt", "--quiet"],
    ));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(sent_content(&server)[0]["text"], "from home");
}

#[test]
fn the_prompt_file_wins_over_an_inline_prompt() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    std::fs::write(sandbox.work().join("p.txt"), "from the file").unwrap();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(
        &sargs,
        &["--prompt", "inline", "--prompt-file", "p.txt", "--quiet"],
    ));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(sent_content(&server)[0]["text"], "from the file");
}

#[test]
fn a_missing_prompt_file_is_an_error_naming_its_absolute_path() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--prompt-file", "nope.txt"]));
    assert_eq!(run.code, 1, "{run}");
    let path = work(&sandbox).join("nope.txt");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("Error: ") && last.contains(&path.display().to_string()),
        "{run}"
    );
    assert!(server.requests().is_empty(), "nothing is sent");
}

#[test]
fn a_prompt_file_that_is_not_utf8_is_an_error_naming_it() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    std::fs::write(sandbox.work().join("latin1.txt"), b"caf\xe9 au lait").unwrap();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["--prompt-file", "latin1.txt"]));
    assert_eq!(run.code, 1, "{run}");
    let path = work(&sandbox).join("latin1.txt");
    assert!(
        run.stderr.contains(&path.display().to_string()) && run.stderr.contains("UTF-8"),
        "{run}"
    );
    assert!(server.requests().is_empty(), "nothing is sent");
}

// ---------------------------------------------------------------------------------------------
// Reference images
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unsupported_reference_image_names_its_absolute_path() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    std::fs::create_dir_all(sandbox.work().join("project")).unwrap();
    std::fs::write(sandbox.work().join("project/notes.txt"), "not an image").unwrap();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(
        &sargs,
        &["--cwd", "project", "-i", "notes.txt", "a cat"],
    ));
    assert_eq!(run.code, 1, "{run}");
    let path = work(&sandbox).join("project/notes.txt");
    assert!(
        run.stderr.ends_with(&format!(
            "Error: Unsupported image format for {}. Supported: PNG, JPEG, GIF, WebP.\n",
            path.display()
        )),
        "{run}"
    );
    assert!(server.requests().is_empty(), "nothing is sent");
}

#[test]
fn an_image_url_that_is_not_http_or_data_image_is_refused() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    for url in [
        "ftp://x",
        "data:text/plain;base64,QQ==",
        "file:///etc/passwd",
    ] {
        let run = sandbox.run(&with_server(&sargs, &["--image-url", url, "a cat"]));
        assert_eq!(run.code, 1, "{run}");
        assert!(
            run.stderr.ends_with(&format!(
                "Error: --image-url must be http(s) or data:image URL: {url}\n"
            )),
            "{run}"
        );
    }
    assert!(server.requests().is_empty(), "nothing is sent");
}

#[test]
fn references_are_comma_split_locals_first_and_image_urls_kept_whole() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let a = png_bytes(1, 10);
    let b = png_bytes(2, 10);
    let c = png_bytes(3, 10);
    for (name, bytes) in [("a.png", &a), ("b.png", &b), ("c.png", &c)] {
        std::fs::write(sandbox.work().join(name), bytes).unwrap();
    }
    let data_url = "data:image/png;base64,AAAA,BBBB";
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(
        &sargs,
        &[
            "--input-ref",
            "HTTPS://example.com/r.png, b.png",
            "-i",
            " a.png ,, ",
            "--image-url",
            data_url,
            "--image=c.png",
            "--image-detail",
            "original",
            "--prompt",
            "combine",
        ],
    ));
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("codex-imagen: attached 5 reference image(s)\n"),
        "{run}"
    );
    let content = sent_content(&server);
    let urls: Vec<&str> = content
        .iter()
        .filter(|c| c["type"] == "input_image")
        .map(|c| c["image_url"].as_str().unwrap())
        .collect();
    let data = |bytes: &[u8]| format!("data:image/png;base64,{}", b64(bytes));
    // Local files first, then URLs, each in the order they were met on the command line.
    assert_eq!(
        urls,
        vec![
            data(&b).as_str(),
            data(&a).as_str(),
            data(&c).as_str(),
            "HTTPS://example.com/r.png",
            data_url,
        ]
    );
    assert!(content
        .iter()
        .filter(|c| c["type"] == "input_image")
        .all(|c| c["detail"] == "original"));
    assert_eq!(content[0]["text"], "<image name=[Image #1]>");
    assert_eq!(content[2]["text"], "</image>");
    assert_eq!(content[12]["text"], "<image name=[Image #5]>");
    assert_eq!(content.last().unwrap()["text"], "combine");
}

#[test]
fn a_misspelled_option_gets_a_guess_after_the_node_text() {
    let sandbox = Sandbox::new();
    for (arg, guess) in [
        ("--promt", "--prompt"),
        ("--promt=a cat", "--prompt"),
        ("--qualty", "--quality"),
        ("--out-dri", "--out-dir"),
    ] {
        let run = sandbox.run(&["a prompt", arg]);
        assert_usage_error(
            &run,
            &format!("Unknown option: {arg}\ndid you mean {guess}?"),
        );
    }
}

#[test]
fn an_unsupported_url_scheme_is_named_and_nothing_is_sent() {
    let server = image_server();
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    for (args, scheme) in [
        (
            &["--input-ref", "ftp://x/y.png"][..],
            "the URL scheme ftp: is not supported",
        ),
        (
            &["-i", "s3://bucket/y.png"][..],
            "the URL scheme s3: is not supported",
        ),
        (
            &["--input-ref", "data:text/plain,hello"][..],
            "data: URLs must be images",
        ),
    ] {
        let mut all = vec!["a cat"];
        all.extend_from_slice(args);
        let run = sandbox.run(&with_server(&sargs, &all));
        assert_eq!(run.code, 1, "{run}");
        assert!(
            run.stderr.contains("Error: Unsupported reference image "),
            "{run}"
        );
        assert!(run.stderr.contains(scheme), "{run}");
        assert!(!run.stderr.contains("Cannot read reference image"), "{run}");
    }
    assert!(server.requests_to(RESPONSES).is_empty());
}
