//! The one-shot CLI, a front-end of the engine. The order of a run (SPEC §14): parse →
//! `--help`/`--version` → `--cwd` and defaults → auth path → smoke | prepare auth →
//! refresh-only | read prompt → generate → report.
//!
//! The CLI owns what is process-wide and only right for a one-shot command: the runtime,
//! signals (the first SIGINT/SIGTERM cancels the job, which drops its
//! request and releases its locks, then exits 130/143), the hard watchdog (in the terminal
//! sink), and stdout.

mod usage;

use std::sync::Arc;

use crate::auth::fence::CredentialState;
use crate::auth::refresh::{fix_line, REASON_REFRESH_ONLY};
use crate::auth::{self, Fallback, PreparedAuth};
use crate::engine::shared::Engine;
use crate::foundation::error::{RefreshErrorKind, Result};
use crate::foundation::events::Reporter;
use crate::frontend::config::Config;
use crate::frontend::prompt::read_prompt;
use crate::frontend::terminal::TerminalSink;
use crate::frontend::validate::PromptSource;
use crate::frontend::{report, runtime};

/// The one-shot run of a resolved command line: `--usage`, `--smoke`, `--refresh-only`, or one
/// generation. Returns the exit code of a run that did not fail as a whole.
pub(crate) fn run(config: Config, sink: &Arc<TerminalSink>) -> Result<i32> {
    let engine = Engine::new(config.engine_settings())?;
    let progress = Reporter::new(sink.clone());
    let ctx = engine.auth().context()?;

    if config.usage && !config.smoke && !config.refresh_only {
        let runtime = runtime::one_shot_runtime()?;
        sink.start_live_line();
        return runtime
            .block_on(async {
                tokio::select! {
                    result = print_usage(&config, &engine, &progress, sink) => result,
                    (code, name) = runtime::until_signal() => {
                        engine.release_locks();
                        sink.finish();
                        sink.line(&format!("Error: interrupted by {name}"));
                        std::process::exit(code)
                    }
                }
            })
            .map(|()| 0);
    }
    if config.smoke && !config.force_refresh {
        // No network, no fallback, no runtime: what the first store says.
        let auth = ctx.read(&ctx.path)?;
        auth::warn_auth_mode(&auth, &progress);
        print_smoke(&config, &engine, &auth, &progress, sink);
        return Ok(0);
    }
    let released = engine.clone();
    sink.on_forced_exit(Arc::new(move || released.release_locks()));
    let runtime = runtime::one_shot_runtime()?;
    sink.start_live_line();
    let outcome = runtime.block_on(async {
        let job = run_online(&config, &engine, ctx, &progress, sink);
        tokio::select! {
            result = job => Ok(result),
            signal = runtime::until_signal() => Err(signal),
        }
    });
    match outcome {
        Ok(result) => result.map(|()| 0),
        Err((code, name)) => {
            // The job's future was dropped: its request is gone and its lock guards released.
            engine.release_locks();
            sink.finish();
            sink.line(&format!("Error: interrupted by {name}"));
            drop(runtime);
            std::process::exit(code)
        }
    }
}

fn print_smoke(
    config: &Config,
    engine: &Engine,
    auth: &auth::Auth,
    progress: &Reporter,
    sink: &TerminalSink,
) {
    if CredentialState::of(auth) == CredentialState::RefreshFailed {
        // The same fix `--refresh-only` prints for this profile.
        progress.warn(&fix_line(auth, RefreshErrorKind::OpenClawFailed));
    }
    let value = engine.smoke_report(auth, &config.job);
    sink.finish();
    if config.json {
        report::print_json(&value);
    } else {
        report::print_key_values(&value);
    }
}

async fn run_online(
    config: &Config,
    engine: &Engine,
    ctx: auth::AuthContext,
    progress: &Reporter,
    sink: &TerminalSink,
) -> Result<()> {
    if !config.smoke && !config.refresh_only {
        check_output_first(config, engine)?;
    }
    if engine.has_pool() && !config.smoke && !config.refresh_only {
        // Each job picks its account (auth/pool.rs), so the prompt is read first.
        let prompt = read_prompt(&config.prompt, &config.env)?;
        let mut job = config.job.clone();
        job.prompt = prompt;
        let result = engine.run_pooled(&job, progress).await?;
        if config.json {
            report::print_json(&report::generation_json(&result, &job));
        } else {
            report::print_paths(&result.images);
        }
        return Ok(());
    }
    let fallback = if config.smoke {
        Fallback::FirstStoreOnly
    } else {
        Fallback::Allowed
    };
    let prepared = engine
        .auth()
        .prepare(&ctx, config.force_refresh, fallback, progress)
        .await?;
    if config.smoke {
        print_smoke(config, engine, &prepared.auth, progress, sink);
        return Ok(());
    }
    if config.refresh_only {
        let PreparedAuth { auth, refresh } = prepared;
        let (auth, outcome) = match refresh {
            Some(outcome) => (auth, outcome),
            None => {
                engine
                    .auth()
                    .refresh(&ctx, &auth, REASON_REFRESH_ONLY, progress)
                    .await?
            }
        };
        sink.finish();
        if config.json {
            report::print_json(&report::refresh_only_json(&auth, &outcome));
        } else {
            report::print_stdout(&format!("{}\n", auth.path.display()));
        }
        return Ok(());
    }

    let prompt = read_prompt(&config.prompt, &config.env)?;
    let mut job = config.job.clone();
    job.prompt = prompt;
    let result = engine.run_prepared(&ctx, prepared, &job, progress).await?;
    // On a terminal stdout and stderr share the screen: the live line goes before the report.
    sink.finish();
    if config.json {
        report::print_json(&report::generation_json(&result, &job));
    } else {
        report::print_paths(&result.images);
    }
    Ok(())
}

/// Check before paying: with the prompt on the command line, the output directory is checked
/// before auth (a refresh included), naming the flag that chose it; a missing prompt stays the
/// usage error it is, and a `--prompt-file` is read after auth (SPEC §14), so those are checked
/// by the engine once the prompt is known, still before any request.
fn check_output_first(config: &Config, engine: &Engine) -> Result<()> {
    let PromptSource::Inline(prompt) = &config.prompt else {
        return Ok(());
    };
    if prompt.trim().is_empty() {
        return Ok(());
    }
    let flag = match config.job.output {
        Some(_) => "--output",
        None => "--out-dir",
    };
    engine.check_output(&config.job, Some(flag))
}

async fn print_usage(
    config: &Config,
    engine: &Engine,
    progress: &Reporter,
    sink: &TerminalSink,
) -> Result<()> {
    if engine.has_pool() {
        let reports = usage::outcome(engine.pool_usage(progress).await)?;
        sink.finish();
        if config.json {
            report::print_json(&usage::pool_json(&reports));
        } else {
            report::print_stdout(&usage::pool_text(&reports));
        }
        return Ok(());
    }
    let usage = engine.usage_report(progress).await?;
    sink.finish();
    if config.json {
        report::print_json(&crate::backend::usage::to_json(&usage));
    } else {
        report::print_stdout(&crate::backend::usage::to_text(
            &usage,
            chrono::Local::now(),
        ));
    }
    Ok(())
}
