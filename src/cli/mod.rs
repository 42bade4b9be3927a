//! The one-shot CLI, a front-end of the engine. The order of a run (SPEC §14): parse →
//! `--help`/`--version` → `--cwd` and defaults → auth path → smoke | prepare auth →
//! refresh-only | read prompt → generate → report.
//!
//! The CLI owns what is process-wide and only right for a one-shot command: the environment
//! snapshot, the runtime, signals (the first SIGINT/SIGTERM cancels the job, which drops its
//! request and releases its locks, then exits 130/143), the hard watchdog (in the terminal
//! sink), and stdout.

pub(crate) mod args;
pub(crate) mod config;
pub(crate) mod report;
pub(crate) mod terminal;
pub(crate) mod validate;
pub(crate) mod watchdog;

use std::sync::Arc;

use crate::auth::fence::CredentialState;
use crate::auth::refresh::{fix_line, REASON_REFRESH_ONLY};
use crate::auth::{self, Fallback, PreparedAuth};
use crate::batch;
use crate::foundation::events::Reporter;
use crate::engine::settings::EngineSettings;
use crate::engine::shared::Engine;
use crate::foundation::error::{Error, RefreshErrorKind, Result};
use crate::foundation::paths::Environment;
use args::Parsed;
use config::Config;
use terminal::TerminalSink;
use validate::PromptSource;

/// Run the tool with `argv` (without the program name); returns the exit code.
pub fn run(argv: Vec<String>) -> i32 {
    let args = match args::parse(&argv) {
        Ok(Parsed::Help) => {
            report::print_stdout(&args::help_text());
            return 0;
        }
        Ok(Parsed::Version) => {
            report::print_stdout(&args::version_text());
            return 0;
        }
        Ok(Parsed::Completions(script)) | Ok(Parsed::Man(script)) => {
            report::print_stdout(&script);
            return 0;
        }
        Ok(Parsed::Run(args)) if args.mcp => return crate::mcp::run(*args),
        Ok(Parsed::Run(args)) => *args,
        Err(err) => return fail(&err, None),
    };
    let sink = Arc::new(TerminalSink::new(args.quiet, args.verbose));
    let result = run_args(args, &sink);
    sink.finish();
    match result {
        Ok(code) => code,
        Err(err) => fail(&err, Some(&sink)),
    }
}

fn fail(err: &Error, sink: Option<&TerminalSink>) -> i32 {
    let message = format!("Error: {err}");
    match sink {
        Some(sink) => sink.line(&message),
        None => terminal::eprint_line(&message),
    }
    err.exit_code()
}

/// Returns the exit code of a run that did not fail as a whole (a batch reports its own).
fn run_args(args: args::Args, sink: &Arc<TerminalSink>) -> Result<i32> {
    let checked = validate::validate(&args)?;
    crate::serve::config::check(&args)?;
    let serve = args
        .serve
        .is_some()
        .then(|| crate::serve::config::ServeArgs::from_args(&args));
    let config = config::resolve(args, checked, Environment::capture())?;
    if let Some(serve) = serve {
        let serve = crate::serve::config::resolve(&serve, &config.env)?;
        return crate::serve::run(serve, &config).map(|()| 0);
    }
    let settings = EngineSettings {
        env: config.env.clone(),
        auth: config.auth.clone(),
        base_url: config.base_url.clone(),
        ..EngineSettings::new(config.env.clone())
    };
    let engine = Engine::new(settings)?;
    if let Some(many) = config.many.clone() {
        return run_many(&config, engine, many);
    }
    let progress = Reporter::new(sink.clone());
    let ctx = engine.auth().context()?;

    if config.usage && !config.smoke && !config.refresh_only {
        let runtime = one_shot_runtime()?;
        sink.start_live_line();
        return runtime
            .block_on(async {
                tokio::select! {
                    result = print_usage(&config, &engine, &progress) => result,
                    (code, name) = until_signal() => {
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
        print_smoke(&config, &engine, &auth, &progress);
        return Ok(0);
    }
    let released = engine.clone();
    sink.on_forced_exit(Arc::new(move || released.release_locks()));
    let runtime = one_shot_runtime()?;
    sink.start_live_line();
    let outcome = runtime.block_on(async {
        let job = run_online(&config, &engine, ctx, &progress);
        tokio::select! {
            result = job => Ok(result),
            signal = until_signal() => Err(signal),
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

/// `--batch`, or `--count` above one: the batch front-end on this engine, with its own signal
/// handling (the first signal drains, a second cancels) and its own output.
fn run_many(config: &Config, engine: Engine, many: config::Many) -> Result<i32> {
    let mut template = config.job.clone();
    if many.batch.is_none() {
        template.prompt = read_prompt(&config.prompt, &config.env)?;
        template.require_prompt()?;
    }
    let source = many.batch.as_deref().map(batch::BatchSource::from_arg);
    let opts = batch::BatchOptions {
        jobs: many.jobs,
        count: many.count,
        results: many.results,
        fresh: many.fresh,
        json: config.json,
        quiet: config.quiet,
        ..batch::BatchOptions::new(
            source.clone().unwrap_or(batch::BatchSource::Stdin),
            template,
        )
    };
    let runtime = runtime()?;
    let code = runtime.block_on(async {
        let signals = batch::ShutdownSignals::os()
            .map_err(|e| Error::Io(format!("Cannot install the signal handlers: {e}")))?;
        let io = batch::BatchIo::stdio();
        Ok::<i32, Error>(match source {
            Some(_) => {
                batch::run_batch_with(engine.clone(), opts, signals, io)
                    .await
                    .exit_code
            }
            None => batch::run_count(engine.clone(), opts, signals, io).await,
        })
    })?;
    // Every job has ended, so no refresh holds a lock; this only covers a job that panicked.
    engine.release_locks();
    Ok(code)
}

/// The first SIGINT or SIGTERM (Ctrl-C on Windows), with the exit code a shell expects.
///
/// The handlers are installed when this is called, not when it is first polled: a caller
/// that announces it is ready (the service's `listening on`) after calling it cannot be killed
/// by a SIGTERM that arrives in between. Must be called inside the tokio runtime.
pub(crate) fn until_signal() -> impl std::future::Future<Output = (i32, &'static str)> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            let (Ok(mut term), Ok(mut int)) = handlers else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = term.recv() => (143, "SIGTERM"),
                _ = int.recv() => (130, "SIGINT"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_err() {
                return std::future::pending().await;
            }
            (130, "Ctrl-C")
        }
    }
}

/// The one-shot CLI runs one job: a current-thread runtime has no other job to stall, so its
/// blocking work runs in place ([`crate::foundation::blocking::run`]) and no cross-thread wake-up is paid
/// for each network chunk (the multi-thread runtime cost the 32 MiB benchmark about 20 %).
pub(crate) fn one_shot_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("Cannot start the async runtime: {e}")))
}

/// The front-ends' runtime (batch, `--count`, the service): many jobs at once, so a job's
/// blocking work (decoding, hashing, writing) moves off the async threads.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("Cannot start the async runtime: {e}")))
}

fn print_smoke(config: &Config, engine: &Engine, auth: &auth::Auth, progress: &Reporter) {
    if CredentialState::of(auth) == CredentialState::RefreshFailed {
        // The same fix `--refresh-only` prints for this profile.
        progress.warn(&fix_line(auth, RefreshErrorKind::OpenClawFailed));
    }
    let value = engine.smoke_report(auth, &config.job);
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
) -> Result<()> {
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
        print_smoke(config, engine, &prepared.auth, progress);
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
    if config.json {
        report::print_json(&report::generation_json(&result, &job));
    } else {
        report::print_paths(&result.images);
    }
    Ok(())
}

async fn print_usage(config: &Config, engine: &Engine, progress: &Reporter) -> Result<()> {
    let usage = engine.usage_report(progress).await?;
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

fn read_prompt(source: &PromptSource, env: &Environment) -> Result<String> {
    match source {
        PromptSource::Inline(text) => Ok(text.clone()),
        PromptSource::None => Ok(String::new()),
        PromptSource::File(path) => {
            let path = env.resolve(path);
            let bytes = std::fs::read(&path).map_err(|e| {
                Error::Input(format!("Cannot read --prompt-file {}: {e}", path.display()))
            })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::Input(format!(
                    "--prompt-file {} is not valid UTF-8",
                    path.display()
                ))
            })?;
            // A byte-order mark (Windows editors) is not part of the prompt.
            Ok(text
                .strip_prefix('\u{feff}')
                .map(str::to_string)
                .unwrap_or(text))
        }
    }
}
