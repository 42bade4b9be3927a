//! The command line: clap turns argv into plain strings and flags; nothing here reads a file or
//! the environment. [`super::validate`] then checks these values and [`super::config`] resolves them.
//!
//! clap's own error texts are replaced by the exact texts of the Node.js tool (SPEC §1), because
//! agents match on them. Every value-taking option accepts values that start with `-`
//! (`--prompt --json` makes the prompt "--json", as the Node tool did); a value is "missing" only
//! when the option is the last word.
//!
//! One concern, the flag table and its error texts, in one file on purpose: the `#[arg]` table,
//! the Node tool's messages that replace clap's, and the early `--help`/`--version` exits must
//! agree flag by flag. With its tests it runs past 700 lines.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

use crate::foundation::error::{Error, Result};

const AFTER_HELP: &str = "\
Auth discovery order:
  1. --auth
  2. CODEX_IMAGEN_AUTH_JSON, OPENCLAW_CODEX_AUTH_JSON, CODEX_AUTH_JSON
  3. OPENCLAW_AGENT_DIR/auth-profiles.json or PI_CODING_AGENT_DIR/auth-profiles.json
  4. OPENCLAW_AGENT_DIR/auth.json or PI_CODING_AGENT_DIR/auth.json
  5. ~/.openclaw/agents/main/agent/auth-profiles.json
  6. ~/.openclaw/agents/main/agent/auth.json
  7. ~/.openclaw/credentials/oauth.json
  8. CODEX_HOME/auth.json
  9. ~/.codex/auth.json

Exit codes: 0 success, 1 generation/HTTP/auth failure, 2 usage error,
124 timed out before any image was saved (--login: before the sign-in finished). --batch: 0 every job succeeded or
was skipped, 1 some failed or were not started, 2 bad options or batch file,
130/143 stopped by SIGINT/SIGTERM.";

/// Generate or edit images with gpt-image through your ChatGPT subscription, using the Codex or
/// OpenClaw OAuth credentials already on this machine.
/// `--serve` without an address.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:4312";

#[derive(Debug, Default, Parser)]
#[command(
    name = "codex-imagen",
    override_usage = "codex-imagen \"prompt\" [options]",
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true,
    after_help = AFTER_HELP,
    max_term_width = 100
)]
pub struct Args {
    /// Prompt text (words are joined with spaces). Not allowed with --prompt or --prompt-file.
    #[arg(value_name = "PROMPT")]
    pub words: Vec<String>,

    /// Prompt text.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub prompt: Option<String>,

    /// Read the prompt from a UTF-8 file.
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub prompt_file: Option<String>,

    /// Attach local reference image(s). Repeat or comma-separate.
    #[arg(short = 'i', long = "image", value_name = "PATH", action = ArgAction::Append, allow_hyphen_values = true)]
    pub images: Vec<String>,

    /// Attach a reference from a local path, http(s) URL or data:image URL. Repeat or comma-separate.
    #[arg(long = "input-ref", value_name = "PATH|URL", action = ArgAction::Append, allow_hyphen_values = true)]
    pub input_refs: Vec<String>,

    /// Attach an http(s) or data:image/... URL as a reference (not comma-split). Repeatable.
    #[arg(long = "image-url", value_name = "URL", action = ArgAction::Append, allow_hyphen_values = true)]
    pub image_urls: Vec<String>,

    /// input_image detail: auto, low, high, original. Default: high.
    #[arg(long, value_name = "MODE", allow_hyphen_values = true)]
    pub image_detail: Option<String>,

    /// Image size: WxH (multiples of 16, e.g. 1536x1024), W:H (e.g. 16:9, the largest exact
    /// ratio within 1536x1024 pixels) or auto. Default: not sent (the backend picks).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub size: Option<String>,

    /// Image quality: low, medium, high or auto. Default: not sent.
    #[arg(long, value_name = "LEVEL", allow_hyphen_values = true)]
    pub quality: Option<String>,

    /// Image file format: png, jpeg (or jpg) or webp. Default: png.
    #[arg(
        long,
        visible_alias = "output-format",
        value_name = "FORMAT",
        allow_hyphen_values = true
    )]
    pub format: Option<String>,

    /// jpeg/webp compression, 0-100. Default: not sent.
    #[arg(long, value_name = "PERCENT", allow_hyphen_values = true)]
    pub compression: Option<String>,

    /// Background: auto, opaque or transparent (png/webp). Default: not sent.
    #[arg(long, value_name = "MODE", allow_hyphen_values = true)]
    pub background: Option<String>,

    /// Image model of the image_generation tool, e.g. gpt-image-2. Default: not sent.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub image_model: Option<String>,

    /// Moderation: auto or low. Default: not sent.
    #[arg(long, value_name = "LEVEL", allow_hyphen_values = true)]
    pub moderation: Option<String>,

    /// Partial preview images to stream, 0-3 (responses backend). Default: not sent.
    #[arg(long, value_name = "COUNT", allow_hyphen_values = true)]
    pub partial_images: Option<String>,

    /// Tool action: auto, generate or edit (responses backend). Default: not sent.
    #[arg(long, value_name = "MODE", allow_hyphen_values = true)]
    pub action: Option<String>,

    /// Input fidelity for references: low or high (responses backend). Default: not sent.
    #[arg(long, value_name = "LEVEL", allow_hyphen_values = true)]
    pub input_fidelity: Option<String>,

    /// PNG mask with alpha: its transparent pixels mark the area of the first reference to
    /// edit. Needs a reference image.
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub mask: Option<String>,

    /// Provenance for each image: none, sidecar (<image>.json beside it) or embed (in the file;
    /// a C2PA-signed image gets the sidecar instead). Default: $CODEX_IMAGEN_METADATA, else none.
    #[arg(long, value_name = "MODE", allow_hyphen_values = true)]
    pub metadata: Option<String>,

    /// Output image path, used as given. Several images: name-1.png, name-2.png, ... Automatic
    /// names take the extension of the format returned. No extension or a trailing / means a
    /// directory.
    #[arg(short = 'o', long, value_name = "PATH", allow_hyphen_values = true)]
    pub output: Option<String>,

    /// Output directory when --output is not given.
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub out_dir: Option<String>,

    /// Image backend: responses, images or auto (Images route, then /responses once on a route
    /// failure). Default: $CODEX_IMAGEN_BACKEND, else responses.
    #[arg(
        long,
        visible_alias = "image-backend",
        value_name = "NAME",
        allow_hyphen_values = true
    )]
    pub backend: Option<String>,

    /// Model slug. Default: gpt-5.4 (responses), gpt-image-2 (images).
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub model: Option<String>,

    /// Auth JSON path (Codex auth.json, OpenClaw auth-profiles.json, auth.json or oauth.json).
    /// Never bypassed by fallback. Repeatable with --pool (the last one counts without it).
    #[arg(long, value_name = "PATH", action = ArgAction::Append, allow_hyphen_values = true)]
    pub auth: Vec<String>,

    /// Use every account: each --auth store, else every credential discovery finds (Codex homes,
    /// each OpenClaw profile). Skips accounts on cooldown, moves a job off an account at its
    /// usage limit. With --usage: every account's windows.
    #[arg(long)]
    pub pool: bool,

    /// OpenClaw auth profile id, e.g. openai-codex:me@example.com.
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    pub auth_profile: Option<String>,

    /// Codex backend base URL. Default: https://chatgpt.com/backend-api/codex
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    pub base_url: Option<String>,

    /// OAuth refresh endpoint. Default: https://auth.openai.com/oauth/token
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    pub refresh_url: Option<String>,

    /// Resolve relative paths from this working directory.
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub cwd: Option<String>,

    /// Check auth discovery and print redacted auth metadata. No generation.
    #[arg(long)]
    pub smoke: bool,

    /// Refresh OAuth before generating (or before --smoke).
    #[arg(long)]
    pub force_refresh: bool,

    /// Refresh OAuth and exit. Does not require a prompt.
    #[arg(long)]
    pub refresh_only: bool,

    /// Show the plan and its quota windows (percent used, when each resets), then exit. Costs no
    /// image quota. With --json: one JSON object.
    #[arg(long)]
    pub usage: bool,

    /// Disable proactive refresh and the 401 refresh retry.
    #[arg(long)]
    pub no_refresh: bool,

    /// Retry transient failures this many times (0-100). Default: 4.
    #[arg(long, value_name = "COUNT", action = ArgAction::Append, allow_hyphen_values = true)]
    pub retries: Vec<String>,

    /// Disable transient generation retries (same as --retries 0).
    #[arg(long, action = ArgAction::Append, num_args = 0, default_missing_value = "0")]
    pub no_retry: Vec<String>,

    /// Abort an attempt after this many seconds. Default: 900; 300 in an OpenClaw runtime.
    #[arg(long, value_name = "SECONDS", action = ArgAction::Append, allow_hyphen_values = true)]
    pub timeout: Vec<String>,

    /// Alias for --timeout.
    #[arg(long, value_name = "SECONDS", action = ArgAction::Append, allow_hyphen_values = true)]
    pub timeout_seconds: Vec<String>,

    /// Advanced: abort an attempt after this many milliseconds.
    #[arg(long, value_name = "MS", action = ArgAction::Append, allow_hyphen_values = true)]
    pub timeout_ms: Vec<String>,

    /// Ask the Responses backend for one JSON response instead of a stream.
    #[arg(long)]
    pub no_stream: bool,

    /// Run every prompt of a JSON Lines or plain-text file (- reads stdin), several at a time,
    /// recording each job in a results file; a rerun skips the jobs already done.
    #[arg(long, value_name = "FILE|-", allow_hyphen_values = true)]
    pub batch: Option<String>,

    /// With --batch, --count or --serve: how many jobs run at once (1-16). Default: 2.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub jobs: Option<String>,

    /// Make N images of the prompt (of every batch line) as N separate jobs (1-10).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub count: Option<String>,

    /// With --batch: the results file. Default: <output dir>/results.jsonl.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    pub results: Option<String>,

    /// With --batch: ignore earlier results and run every job again.
    #[arg(long)]
    pub fresh: bool,

    /// Print a JSON summary instead of only the image paths.
    #[arg(long)]
    pub json: bool,

    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,

    /// Print request progress, raw event names and reference details to stderr.
    #[arg(long, visible_alias = "debug")]
    pub verbose: bool,

    /// Run an MCP server on stdin/stdout (tools: generate_image, edit_image, image_usage,
    /// auth_status). The other flags given become its defaults; default --timeout: 300.
    #[arg(long)]
    pub mcp: bool,

    /// Run the local image service (OpenAI Images API, async jobs) on ADDR. Default ADDR:
    /// 127.0.0.1:4312.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = DEFAULT_ADDR)]
    pub serve: Option<String>,

    /// Data directory (history.sqlite; the service's jobs.sqlite, artifacts). Default: $CODEX_IMAGEN_DATA_DIR, else
    /// the platform data directory + codex-imagen.
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub data_dir: Option<String>,

    /// List the images in the history (every mode records each saved image in
    /// <data dir>/history.sqlite), newest first; with TEXT, those whose prompt or revised
    /// prompt contains every word of it. With --json: one JSON array.
    #[arg(long, value_name = "TEXT", num_args = 0..=1, default_missing_value = "")]
    pub history: Option<String>,

    /// Do not record the images of this run in the history (also: CODEX_IMAGEN_HISTORY=0).
    #[arg(long)]
    pub no_history: bool,

    /// With --serve: open the studio (the web page at /) in the browser once listening.
    #[arg(long)]
    pub open: bool,

    /// Service: jobs allowed to wait; more get 503. Default: 100.
    #[arg(long, value_name = "COUNT", allow_hyphen_values = true)]
    pub queue: Option<String>,

    /// Service: finished jobs are forgotten after this long (artifacts stay). Default: 7d.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub job_ttl: Option<String>,

    /// Service: on SIGTERM/SIGINT, running jobs get this long before they are cancelled.
    /// Default: 30s.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub shutdown_grace: Option<String>,

    /// Service: read the bearer token from this file (else $CODEX_IMAGEN_SERVE_TOKEN).
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub serve_token_file: Option<String>,

    /// Service: local-path references may be read from under this directory (repeatable).
    /// Without it, local paths are refused.
    #[arg(long, value_name = "DIR", action = ArgAction::Append, allow_hyphen_values = true)]
    pub allow_dir: Vec<String>,

    /// Service without a token: also answer requests whose Host is NAME (repeatable); file URLs
    /// may then carry it. Default: only the bound address and loopback names.
    #[arg(long, value_name = "NAME", action = ArgAction::Append, allow_hyphen_values = true)]
    pub allow_host: Vec<String>,

    /// Service: allow web pages from ORIGIN (e.g. http://localhost:3000) to call it, with CORS
    /// (repeatable). Default: no CORS, cross-origin POST/DELETE refused.
    #[arg(long, value_name = "ORIGIN", action = ArgAction::Append, allow_hyphen_values = true)]
    pub cors_origin: Vec<String>,

    /// Service: callbacks may go to private, link-local and other non-public addresses.
    #[arg(long)]
    pub allow_private_callbacks: bool,

    /// Service: images readable by other users (0644 under the usual umask) rather than 0600.
    #[arg(long)]
    pub shared_files: bool,

    /// Sign in with ChatGPT in the browser and save the credential where Codex keeps it
    /// (--auth PATH: a Codex auth.json there). Default --timeout: 600.
    #[arg(long)]
    pub login: bool,

    /// With --login: sign in with a device code instead (no browser on this machine).
    #[arg(long)]
    pub device_auth: bool,

    /// Remove the Codex credential codex-imagen would use (OpenClaw stores are never changed).
    #[arg(long)]
    pub logout: bool,

    /// With --login: the OAuth issuer. Default: $CODEX_IMAGEN_ISSUER, else https://auth.openai.com
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    pub issuer: Option<String>,

    /// With --login: the local callback port (0: any free port). Default: 1455, the only one the
    /// real issuer accepts (1457 when 1455 stays busy).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub callback_port: Option<String>,

    /// With --login: print the sign-in URL but do not open a browser.
    #[arg(long)]
    pub no_browser: bool,

    /// With --login: replace a stored credential that belongs to another account.
    #[arg(long)]
    pub force: bool,

    /// Print a shell completion script: bash, zsh, fish, powershell or elvish.
    #[arg(long, value_name = "SHELL", allow_hyphen_values = true)]
    pub completions: Option<String>,

    /// Print the man page (roff) and exit.
    #[arg(long)]
    pub man: bool,

    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,

    /// Show this help and exit.
    #[arg(short = 'h', long)]
    pub help: bool,

    /// The timeout flags in command-line order: (flag as typed, value).
    #[arg(skip)]
    pub timeout_flags: Vec<(String, String)>,

    /// `--retries` values and `--no-retry` in command-line order; the last one wins.
    #[arg(skip)]
    pub retry_flags: Vec<String>,

    /// `-i`/`--image`, `--input-ref` and `--image-url` values in command-line order, each with
    /// its flag (`--image`, `--input-ref`, `--image-url`): references keep the order they were
    /// given in across flags (SPEC §10.1).
    #[arg(skip)]
    pub reference_flags: Vec<(String, String)>,
}

/// What the command line asks for before anything else is looked at.
#[derive(Debug)]
pub enum Parsed {
    Help,
    Version,
    /// `--completions <shell>`: the script to print.
    Completions(String),
    /// `--man`: the man page to print.
    Man(String),
    Run(Box<Args>),
}

pub fn help_text() -> String {
    Args::command().render_help().to_string()
}

pub fn version_text() -> String {
    format!("{}\n", env!("CARGO_PKG_VERSION"))
}

/// A completion script for `shell`. These are flags, not subcommands: positional words are the
/// prompt.
fn completions_script(shell: &str) -> Result<String> {
    use std::str::FromStr;
    let shell = clap_complete::Shell::from_str(shell).map_err(|_| {
        Error::Usage("--completions must be one of: bash, zsh, fish, powershell, elvish".into())
    })?;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "codex-imagen", &mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn man_page() -> String {
    let mut out = Vec::new();
    // Rendering into memory cannot fail.
    // The version goes into the `.TH` header (and a VERSION section); `--help` does not show it.
    let command = Args::command().version(env!("CARGO_PKG_VERSION"));
    let _ = clap_mangen::Man::new(command).render(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse argv (without the program name).
pub fn parse(argv: &[String]) -> Result<Parsed> {
    let command = Args::command();
    let full = std::iter::once("codex-imagen".to_string()).chain(argv.iter().cloned());
    let matches = match command.try_get_matches_from(full) {
        Ok(matches) => matches,
        Err(err) => {
            // --help and --version win over every other problem on the line.
            if let Some(early) = early_exit_flag(argv) {
                return Ok(early);
            }
            return Err(Error::Usage(usage_message(&err, argv)));
        }
    };
    let mut args =
        Args::from_arg_matches(&matches).map_err(|e| Error::Usage(e.kind().to_string()))?;
    if args.help {
        return Ok(Parsed::Help);
    }
    if args.version {
        return Ok(Parsed::Version);
    }
    if let Some(shell) = &args.completions {
        return completions_script(shell).map(Parsed::Completions);
    }
    if args.man {
        return Ok(Parsed::Man(man_page()));
    }
    args.timeout_flags = ordered_values(
        &matches,
        &[
            ("timeout", "--timeout"),
            ("timeout_seconds", "--timeout-seconds"),
            ("timeout_ms", "--timeout-ms"),
        ],
    )
    .into_iter()
    .map(|(flag, value)| (flag.to_string(), value))
    .collect();
    args.retry_flags = ordered_values(&matches, &[("retries", "--retries"), ("no_retry", "")])
        .into_iter()
        .map(|(_, value)| value)
        .collect();
    args.reference_flags = ordered_values(
        &matches,
        &[
            ("images", "--image"),
            ("input_refs", "--input-ref"),
            ("image_urls", "--image-url"),
        ],
    )
    .into_iter()
    .map(|(flag, value)| (flag.to_string(), value))
    .collect();
    Ok(Parsed::Run(Box::new(args)))
}

/// Values of several append-arguments merged in the order they appeared on the command line.
fn ordered_values(
    matches: &clap::ArgMatches,
    ids: &[(&str, &'static str)],
) -> Vec<(&'static str, String)> {
    let mut all: Vec<(usize, &'static str, String)> = Vec::new();
    for (id, flag) in ids {
        let (Some(indices), Some(values)) =
            (matches.indices_of(id), matches.get_many::<String>(id))
        else {
            continue;
        };
        for (index, value) in indices.zip(values) {
            all.push((index, flag, value.clone()));
        }
    }
    all.sort_by_key(|(index, _, _)| *index);
    all.into_iter()
        .map(|(_, flag, value)| (flag, value))
        .collect()
}

fn early_exit_flag(argv: &[String]) -> Option<Parsed> {
    let mut version = false;
    for arg in argv {
        match arg.as_str() {
            "-h" | "--help" => return Some(Parsed::Help),
            "--version" => version = true,
            _ => {}
        }
    }
    version.then_some(Parsed::Version)
}

/// Translate clap's error into the Node tool's wording.
fn usage_message(err: &clap::Error, argv: &[String]) -> String {
    let invalid_arg = || match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    match err.kind() {
        ErrorKind::UnknownArgument => {
            let arg = invalid_arg().unwrap_or_default();
            // clap names only the flag part of `--bogus=1`; report the word as typed.
            let typed = argv
                .iter()
                .find(|a| **a == arg || a.starts_with(&format!("{arg}=")))
                .cloned()
                .unwrap_or(arg);
            // The Node tool's line stays first (scripts match it); a guess follows on its own.
            let name = typed.split('=').next().unwrap_or(&typed);
            let flags = Args::command();
            let longs = flags.get_arguments().flat_map(|a| {
                let aliases = a.get_all_aliases().unwrap_or_default();
                a.get_long().into_iter().chain(aliases)
            });
            let longs: Vec<String> = longs.map(|l| format!("--{l}")).collect();
            match super::suggest::closest(name, longs.iter().map(String::as_str)) {
                Some(flag) if name.starts_with("--") => {
                    format!("Unknown option: {typed}\ndid you mean {flag}?")
                }
                _ => format!("Unknown option: {typed}"),
            }
        }
        ErrorKind::TooManyValues => {
            // `--smoke=1`: a flag that takes no value is not an option the Node tool knew.
            match err.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(flag)) => {
                    let typed = argv
                        .iter()
                        .find(|a| a.starts_with(&format!("{flag}=")))
                        .cloned();
                    match typed {
                        Some(typed) => format!("Unknown option: {typed}"),
                        None => strip_clap_message(err),
                    }
                }
                _ => strip_clap_message(err),
            }
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals | ErrorKind::WrongNumberOfValues => {
            // With hyphen values allowed, a value can only be missing when the option is last.
            let flag = argv.last().cloned().unwrap_or_default();
            if flag.starts_with('-') && !flag.contains('=') {
                format!("Missing value for {flag}")
            } else {
                strip_clap_message(err)
            }
        }
        _ => strip_clap_message(err),
    }
}

fn strip_clap_message(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    first.trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    fn run(words: &[&str]) -> Args {
        match parse(&argv(words)).expect("parses") {
            Parsed::Run(args) => *args,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    fn usage_err(words: &[&str]) -> String {
        match parse(&argv(words)) {
            Err(Error::Usage(msg)) => msg,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn value_options_accept_equals_and_hyphen_values() {
        let args = run(&["--prompt=a b", "--model", "-x", "-o=out.png"]);
        assert_eq!(args.prompt.as_deref(), Some("a b"));
        assert_eq!(args.model.as_deref(), Some("-x"));
        assert_eq!(args.output.as_deref(), Some("out.png"));
        let args = run(&["--prompt", "--json"]);
        assert_eq!(args.prompt.as_deref(), Some("--json"));
        assert!(!args.json);
    }

    #[test]
    fn repeated_and_aliased_flags() {
        let args = run(&[
            "-i",
            "a.png",
            "--image",
            "b.png",
            "--image=c.png",
            "--debug",
        ]);
        assert_eq!(args.images, vec!["a.png", "b.png", "c.png"]);
        assert!(args.verbose);
        let args = run(&[
            "--image-backend",
            "images",
            "--prompt",
            "x",
            "--prompt",
            "y",
        ]);
        assert_eq!(args.backend.as_deref(), Some("images"));
        assert_eq!(args.prompt.as_deref(), Some("y"));
    }

    #[test]
    fn timeout_and_retry_flags_keep_their_order() {
        let args = run(&["--timeout-ms", "5", "x", "--timeout=3"]);
        assert_eq!(
            args.timeout_flags,
            vec![
                ("--timeout-ms".to_string(), "5".to_string()),
                ("--timeout".to_string(), "3".to_string())
            ]
        );
        let args = run(&["--retries", "3", "--no-retry"]);
        assert_eq!(args.retry_flags, vec!["3", "0"]);
        let args = run(&["--no-retry", "--retries=7"]);
        assert_eq!(args.retry_flags, vec!["0", "7"]);
    }

    #[test]
    fn references_keep_their_command_line_order_across_flags() {
        let args = run(&[
            "--input-ref",
            "a,b",
            "-i",
            "c",
            "--image-url=d",
            "--image=e",
        ]);
        let flags: Vec<(&str, &str)> = args
            .reference_flags
            .iter()
            .map(|(f, v)| (f.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            flags,
            vec![
                ("--input-ref", "a,b"),
                ("--image", "c"),
                ("--image-url", "d"),
                ("--image", "e")
            ]
        );
    }

    #[test]
    fn positional_words_interleave_with_options() {
        let args = run(&["a", "--json", "b"]);
        assert_eq!(args.words, vec!["a", "b"]);
        assert!(args.json);
    }

    #[test]
    fn serve_takes_an_optional_address() {
        assert_eq!(run(&["--serve"]).serve.as_deref(), Some("127.0.0.1:4312"));
        let args = run(&["--serve", "127.0.0.1:9000", "--jobs", "4"]);
        assert_eq!(args.serve.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(args.jobs.as_deref(), Some("4"));
        assert!(args.words.is_empty());
        let args = run(&["--serve", "--quiet"]);
        assert_eq!(args.serve.as_deref(), Some("127.0.0.1:4312"));
        assert!(args.quiet);
        assert_eq!(run(&["--serve=:1"]).serve.as_deref(), Some(":1"));
    }

    #[test]
    fn usage_errors_use_the_node_texts() {
        assert_eq!(usage_err(&["--prompt"]), "Missing value for --prompt");
        assert_eq!(usage_err(&["x", "-o"]), "Missing value for -o");
        assert_eq!(usage_err(&["--bogus"]), "Unknown option: --bogus");
        assert_eq!(usage_err(&["--bogus=1"]), "Unknown option: --bogus=1");
        assert_eq!(usage_err(&["-z"]), "Unknown option: -z");
        assert_eq!(usage_err(&["--smoke=1"]), "Unknown option: --smoke=1");
    }

    #[test]
    fn help_and_version_win() {
        assert!(matches!(
            parse(&argv(&["--bogus", "--help"])),
            Ok(Parsed::Help)
        ));
        assert!(matches!(
            parse(&argv(&["--version", "--json"])),
            Ok(Parsed::Version)
        ));
        assert!(matches!(
            parse(&argv(&["-h", "--version"])),
            Ok(Parsed::Help)
        ));
        assert!(matches!(
            parse(&argv(&["--prompt", " x", "--version"])),
            Ok(Parsed::Version)
        ));
    }

    #[test]
    fn image_controls_take_equals_hyphen_values_and_show_in_help() {
        let args = run(&[
            "--size=16:9",
            "--output-format",
            "webp",
            "--moderation",
            "-low",
            "--mask=m.png",
        ]);
        assert_eq!(args.size.as_deref(), Some("16:9"));
        assert_eq!(args.format.as_deref(), Some("webp"));
        assert_eq!(args.moderation.as_deref(), Some("-low"));
        assert_eq!(args.mask.as_deref(), Some("m.png"));
        let help = help_text();
        for flag in [
            "--size",
            "--quality",
            "--format",
            "--output-format",
            "--compression",
            "--background",
            "--image-model",
            "--moderation",
            "--partial-images",
            "--action",
            "--input-fidelity",
            "--mask",
        ] {
            assert!(help.contains(flag), "help lacks {flag}:\n{help}");
        }
    }

    #[test]
    fn help_lists_every_option_and_the_discovery_order() {
        let help = help_text();
        for flag in [
            "--prompt",
            "--prompt-file",
            "--image",
            "--input-ref",
            "--image-url",
            "--image-detail",
            "--output",
            "--out-dir",
            "--backend",
            "--model",
            "--auth",
            "--auth-profile",
            "--base-url",
            "--refresh-url",
            "--cwd",
            "--smoke",
            "--force-refresh",
            "--refresh-only",
            "--no-refresh",
            "--retries",
            "--no-retry",
            "--timeout",
            "--timeout-seconds",
            "--timeout-ms",
            "--no-stream",
            "--batch",
            "--jobs",
            "--count",
            "--results",
            "--fresh",
            "--json",
            "--quiet",
            "--verbose",
            "--debug",
            "--mcp",
            "--login",
            "--device-auth",
            "--logout",
            "--issuer",
            "--callback-port",
            "--no-browser",
            "--force",
            "--version",
            "--help",
            "CODEX_HOME/auth.json",
        ] {
            assert!(help.contains(flag), "help lacks {flag}:\n{help}");
        }
    }
}
