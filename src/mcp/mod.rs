//! MCP server mode (`codex-imagen --mcp`): image generation as Model Context Protocol tools
//! for Codex CLI, Claude Code, Cursor and any other MCP client, over stdin/stdout.
//!
//! Design: a thin front-end over the one shared [`Engine`]; the protocol plumbing is the
//! official Rust SDK, `rmcp`.
//! - this file: the CLI's `--mcp` branch. The command line is validated and resolved exactly
//!   as for a one-shot run (auth discovery, `--cwd`, the output-directory chain, retries), and
//!   the resolved job becomes every tool call's default; flags that only make sense for one
//!   image (a prompt, references, `--output`, `--smoke`, ...) are refused with exit 2.
//! - `server`: the `ServerHandler` (serverInfo, capabilities) and `serve_stdio`.
//! - `tools`: the four tools, their argument schemas, validation and result building.
//! - `arguments`: a call's arguments checked against the tool's schema (unknown keys, types,
//!   ranges), with messages in the schema's terms.
//! - `hints`: what an engine error means for an MCP host (e.g. an environment it did not pass).
//! - `transport`: stdin/stdout framing with an answer for every line (parse errors, oversized
//!   lines, params of the wrong shape), one writer for stdout.
//! - `progress`: turns engine events into `notifications/progress`, with a heartbeat.
//! - `thumbnail`: downsized previews for the image blocks, on the blocking pool.
//!
//! stdout belongs to the protocol alone: nothing in this module prints to it, and
//! diagnostics go to stderr.

mod arguments;
mod hints;
mod progress;
mod server;
mod thumbnail;
mod tools;
mod transport;

use std::time::Duration;

use crate::engine::shared::Engine;
use crate::foundation::error::{Error, Result};
use crate::foundation::paths::Environment;
use crate::frontend::args::Args;
use crate::frontend::report;
use crate::frontend::{config, runtime, validate};
pub(crate) use server::McpDefaults;

/// A tool call's per-attempt timeout when `--timeout` is not given: an agent waits for the
/// result, so an attempt should fail (and be retried) long before the CLI's 15 minutes.
const DEFAULT_MCP_TIMEOUT_MS: u64 = 5 * 60 * 1000;

/// Shortens the 5 s progress heartbeat (tests); ignored unless a positive integer.
const HEARTBEAT_ENV: &str = "CODEX_IMAGEN_MCP_HEARTBEAT_MS";

/// `codex-imagen --mcp ...`: serve until the client closes stdin (exit 0) or a signal arrives
/// (130/143); returns the exit code.
pub(crate) fn run(args: Args) -> i32 {
    match serve(args) {
        Ok(code) => code,
        Err(err) => {
            report::eprint_line(&format!("Error: {err}"));
            err.exit_code()
        }
    }
}

fn serve(args: Args) -> Result<i32> {
    refuse_one_shot_flags(&args)?;
    let timeout_given = !args.timeout_flags.is_empty();
    let (quiet, verbose) = (args.quiet, args.verbose);
    let checked = validate::validate(&args)?;
    let config = config::resolve(args, checked, Environment::capture())?;
    let engine = Engine::new(config.engine_settings())?;
    let mut job = config.job;
    if !timeout_given {
        job.timeout_ms = DEFAULT_MCP_TIMEOUT_MS;
    }
    let heartbeat = config
        .env
        .var(HEARTBEAT_ENV)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(server::DEFAULT_HEARTBEAT, Duration::from_millis);
    let defaults = McpDefaults {
        job,
        quiet,
        verbose,
        heartbeat,
    };
    let runtime = runtime::runtime()?;
    let outcome = runtime.block_on(async {
        tokio::select! {
            served = server::serve_stdio(engine.clone(), defaults) => Ok(served),
            signal = runtime::until_signal() => Err(signal),
        }
    });
    match outcome {
        Ok(served) => served.map(|()| 0),
        Err((code, name)) => {
            // Stop every job first (dropping their futures releases their locks), then remove
            // any lock a job could not release itself because its thread was stopped mid-way.
            runtime.shutdown_timeout(Duration::from_secs(1));
            engine.release_locks();
            if !quiet {
                report::eprint_line(&format!("codex-imagen: MCP server stopped by {name}"));
            }
            Ok(code)
        }
    }
}

/// The flags that describe one image (the tool call does that) or another mode.
fn refuse_one_shot_flags(args: &Args) -> Result<()> {
    let given = |on: bool, flag: &str| on.then(|| flag.to_string());
    let offending = [
        args.words
            .first()
            .map(|word| format!("the prompt word {word:?}")),
        given(args.prompt.is_some(), "--prompt"),
        given(args.prompt_file.is_some(), "--prompt-file"),
        args.reference_flags.first().map(|(flag, _)| flag.clone()),
        given(args.output.is_some(), "--output"),
        given(args.mask.is_some(), "--mask"),
        given(args.usage, "--usage"),
        given(args.smoke, "--smoke"),
        given(args.refresh_only, "--refresh-only"),
        given(args.force_refresh, "--force-refresh"),
        given(args.json, "--json"),
    ]
    .into_iter()
    .flatten()
    .next();
    match offending {
        Some(what) => Err(Error::Usage(format!(
            "--mcp does not take {what}: prompts, references and outputs come with each tool call."
        ))),
        None => Ok(()),
    }
}
