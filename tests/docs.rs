//! Every `codex-imagen ...` command shown in README.md and SKILL.md runs with this binary
//! (against a loopback backend and OAuth endpoint, in a sandbox with the files they name).

mod support;

use serde_json::json;
use support::*;

/// Shell-like split: single and double quotes, backslash escapes outside single quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    current.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => current.extend(chars.next()),
                        other => current.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                current.extend(chars.next());
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// The `codex-imagen` command lines inside ```bash blocks.
fn documented_commands(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut commands = Vec::new();
    let mut in_bash = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_bash = trimmed == "```bash";
            continue;
        }
        if in_bash && trimmed.starts_with("codex-imagen ") {
            commands.push(trimmed.to_string());
        }
    }
    commands
}

fn run_documented(file: &str) {
    let commands = documented_commands(file);
    assert!(commands.len() >= 5, "{file}: found {commands:?}");
    let server = Server::start();
    let png = png_bytes(9, 400);
    server.handle(move |req| {
        if req.path.starts_with("/oauth/token") {
            return Reply::json(200, &json!({"access_token": jwt(now_secs() + 3600), "refresh_token": "refresh-next", "expires_in": 3600}));
        }
        if req.path.ends_with("/wham/usage") {
            return Reply::json(200, &json!({"plan_type": "plus", "rate_limit": {"allowed": true, "limit_reached": false,
                "primary_window": {"used_percent": 10, "limit_window_seconds": 18000, "reset_after_seconds": 600, "reset_at": now_secs() + 600},
                "secondary_window": null}}));
        }
        image_stream(&[("ig_1", &png)])
    });
    for command in commands {
        let sandbox = Sandbox::new();
        sandbox.with_codex_auth();
        for (name, bytes) in [
            ("ref1.png", png_bytes(1, 10)),
            ("ref.png", png_bytes(2, 10)),
            ("photo.png", png_bytes(3, 10)),
            ("ref2.jpg", vec![0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]),
            ("prompt.txt", b"a documented prompt".to_vec()),
        ] {
            std::fs::write(sandbox.work().join(name), bytes).unwrap();
        }
        let out_dir = sandbox.path("out").display().to_string();
        let mut words: Vec<String> = shell_words(&command)
            .into_iter()
            .skip(1)
            .map(|w| w.replace("/tmp/openclaw-images", &out_dir))
            .collect();
        words.extend(server_args(&server));
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let run = sandbox.run(&args);
        assert_eq!(run.code, 0, "{file}: `{command}` failed:\n{run}");
    }
}

#[test]
fn every_command_in_the_readme_works() {
    run_documented("README.md");
}

#[test]
fn every_command_in_skill_md_works() {
    run_documented("SKILL.md");
}

#[test]
fn shell_words_handles_quotes_and_comments() {
    assert_eq!(
        shell_words(r#"codex-imagen --prompt 'a "b" c' -x "d e" # note"#),
        vec!["codex-imagen", "--prompt", "a \"b\" c", "-x", "d e"]
    );
    assert_eq!(
        shell_words("codex-imagen 'follow this prompt: \"x\"'"),
        vec!["codex-imagen", "follow this prompt: \"x\""]
    );
}
