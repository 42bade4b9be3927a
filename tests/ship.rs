//! Shipping features: shell completions, the man page, and the live progress line on a terminal
//! (with plain lines, byte for byte, everywhere else).

mod support;

use support::*;

const LONG_OPTIONS: [&str; 33] = [
    "prompt",
    "prompt-file",
    "image",
    "input-ref",
    "image-url",
    "image-detail",
    "output",
    "out-dir",
    "backend",
    "image-backend",
    "model",
    "auth",
    "auth-profile",
    "base-url",
    "refresh-url",
    "cwd",
    "smoke",
    "force-refresh",
    "refresh-only",
    "no-refresh",
    "retries",
    "no-retry",
    "timeout",
    "timeout-seconds",
    "timeout-ms",
    "no-stream",
    "json",
    "quiet",
    "verbose",
    "completions",
    "man",
    "version",
    "help",
];

#[test]
fn completions_print_for_every_shell_without_credentials() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = sandbox.run(&["--completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {run}");
        assert!(run.stdout.len() > 500, "{shell}: {run}");
        assert!(run.stdout.contains("codex-imagen"), "{shell}");
    }
}

#[test]
fn the_bash_script_mentions_every_long_option() {
    let run = Sandbox::new().run(&["--completions=bash"]);
    assert_eq!(run.code, 0, "{run}");
    for option in LONG_OPTIONS {
        assert!(
            run.stdout.contains(&format!("--{option} "))
                || run.stdout.contains(&format!("--{option}\""))
                || run.stdout.contains(&format!("--{option}\n")),
            "bash completion lacks --{option}"
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let run = Sandbox::new().run(&["--completions", "tcsh"]);
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(
        run.stderr,
        "Error: --completions must be one of: bash, zsh, fish, powershell, elvish\n"
    );
}

#[test]
fn the_man_page_is_roff_listing_the_options() {
    let run = Sandbox::new().run(&["--man"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.starts_with(".ie") || run.stdout.starts_with(".TH"),
        "{}",
        &run.stdout[..80.min(run.stdout.len())]
    );
    assert!(run.stdout.contains(".TH codex-imagen"));
    for option in ["prompt\\-file", "refresh\\-only", "timeout\\-ms"] {
        assert!(run.stdout.contains(option), "man page lacks {option}");
    }
}

fn slow_image_stream(png: &[u8]) -> Reply {
    Reply::sse()
        .event(&created())
        .sleep_ms(400)
        .event(&serde_json::json!({"type": "response.image_generation_call.generating", "item_id": "ig_1"}))
        .sleep_ms(400)
        .event(&image_done("ig_1", png))
        .sleep_ms(300)
        .event(&completed(&[("ig_1", png)]))
        .end()
}

#[test]
fn a_pipe_gets_the_plain_progress_lines_byte_for_byte() {
    let server = Server::start();
    let png = png_bytes(1, 300);
    server.enqueue("/backend-api/codex/responses", slow_image_stream(&png));
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(
        &sargs,
        &["--no-retry", "--output", "x.png", "a cat"],
    ));
    assert_eq!(run.code, 0, "{run}");
    let path = sandbox.work().join("x.png");
    let expected = format!(
        "codex-imagen: POST {base}/responses\ncodex-imagen: backend responses\ncodex-imagen: model gpt-5.4\n\
codex-imagen: request accepted\ncodex-imagen: image generation running\ncodex-imagen: saved image 1: {path}\n\
codex-imagen: response completed\n",
        base = server.base_url(),
        path = path.display()
    );
    assert_eq!(run.stderr, expected);
}

#[cfg(target_os = "linux")]
#[test]
fn a_terminal_gets_one_live_progress_line() {
    let server = Server::start();
    let png = png_bytes(1, 300);
    server.enqueue("/backend-api/codex/responses", slow_image_stream(&png));
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let (code, screen) = run_on_terminal(&sandbox, &with_server(&sargs, &["--no-retry", "a cat"]));
    assert_eq!(code, Some(0));
    assert!(screen.contains("\r\x1b[2K"), "redraws one line: {screen:?}");
    assert!(screen.contains("generating"), "{screen:?}");
    assert!(screen.contains("accepted"), "{screen:?}");
    assert!(
        screen
            .chars()
            .any(|c| ('\u{2800}'..='\u{28ff}').contains(&c)),
        "spinner: {screen:?}"
    );
    assert!(
        screen.contains("codex-imagen: saved image 1: "),
        "plain lines still shown: {screen:?}"
    );
    let elapsed = regex_like_seconds(&screen);
    assert!(elapsed, "elapsed seconds shown: {screen:?}");
    assert!(
        screen.ends_with("\r\x1b[2K") || screen.ends_with("completed\r\n"),
        "live line cleared at the end: {screen:?}"
    );
}

/// True when the text shows something like ` 0.8s`.
fn regex_like_seconds(text: &str) -> bool {
    text.split(' ').any(|w| {
        let w = w.split('\r').next().unwrap_or(w);
        w.ends_with('s') && w[..w.len() - 1].parse::<f64>().is_ok() && w.contains('.')
    })
}

#[cfg(target_os = "linux")]
#[test]
fn on_a_terminal_the_live_line_is_the_progress_and_step_lines_need_verbose() {
    let server = Server::start();
    let png = png_bytes(1, 300);
    for _ in 0..2 {
        server.enqueue("/backend-api/codex/responses", slow_image_stream(&png));
    }
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);

    let (code, screen) = run_on_terminal(&sandbox, &with_server(&sargs, &["--no-retry", "a cat"]));
    assert_eq!(code, Some(0), "{screen:?}");
    assert!(
        screen.contains("codex-imagen: saved image 1: "),
        "{screen:?}"
    );
    for step in [
        "codex-imagen: POST ",
        "codex-imagen: model ",
        "codex-imagen: request accepted",
        "codex-imagen: response completed",
    ] {
        assert!(
            !screen.contains(step),
            "{step} only with --verbose: {screen:?}"
        );
    }
    assert!(
        screen.contains("generating"),
        "the live line shows the stage: {screen:?}"
    );

    let (code, screen) = run_on_terminal(
        &sandbox,
        &with_server(&sargs, &["--no-retry", "--verbose", "a cat"]),
    );
    assert_eq!(code, Some(0), "{screen:?}");
    assert!(
        screen.contains("codex-imagen: request accepted"),
        "{screen:?}"
    );
    assert!(screen.contains("codex-imagen: POST "), "{screen:?}");
}

#[test]
fn the_man_page_header_carries_the_version() {
    let run = Sandbox::new().run(&["--man"]);
    assert_eq!(run.code, 0, "{run}");
    let header = run
        .stdout
        .lines()
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no .TH line: {run}"));
    assert!(
        header.contains(&format!("codex-imagen {}", env!("CARGO_PKG_VERSION"))),
        "{header}"
    );
}

/// stdout and stderr on one terminal: the path is printed on a line of its own, after the live
/// line was cleared (not `⠋ saved 1 6.0s<path>`).
#[cfg(target_os = "linux")]
#[test]
fn on_a_terminal_the_live_line_is_cleared_before_stdout() {
    let server = Server::start();
    let png = png_bytes(1, 300);
    server.enqueue("/backend-api/codex/responses", slow_image_stream(&png));
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let (code, screen) =
        run_with_stdout_on_terminal(&sandbox, &with_server(&sargs, &["--no-retry", "a cat"]));
    assert_eq!(code, Some(0), "{screen:?}");
    let path = default_out_dir(&sandbox);
    let at = screen
        .find(&path.display().to_string())
        .unwrap_or_else(|| panic!("no path on the screen: {screen:?}"));
    // The last path printed is stdout's; the one before it is the saved-image notice.
    let last = screen.rfind(&path.display().to_string()).unwrap();
    assert!(last > at, "{screen:?}");
    let before = &screen[..last];
    assert!(
        before.ends_with("\r\x1b[2K") || before.ends_with('\n'),
        "the stdout path follows the live line: {screen:?}"
    );
}
