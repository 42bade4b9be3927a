//! The batch front-end's way in: `--batch FILE|-` or `--count N` above one, from the resolved
//! command line to a run on one engine, with its own signal handling (the first signal
//! drains, a second cancels) and its own output.

use crate::engine::shared::Engine;
use crate::foundation::error::{Error, Result};
use crate::frontend::config::{Config, Many};
use crate::frontend::prompt::read_prompt;
use crate::frontend::runtime;

/// `--batch`, or `--count` above one: the batch front-end on this engine, with its own signal
/// handling (the first signal drains, a second cancels) and its own output.
pub(crate) fn run(config: &Config, many: Many) -> Result<i32> {
    let engine = Engine::new(config.engine_settings())?;
    let mut template = config.job.clone();
    if many.batch.is_none() {
        template.prompt = read_prompt(&config.prompt, &config.env)?;
        template.require_prompt()?;
    }
    let source = many.batch.as_deref().map(super::BatchSource::from_arg);
    let opts = super::BatchOptions {
        jobs: many.jobs,
        count: many.count,
        results: many.results,
        fresh: many.fresh,
        json: config.json,
        quiet: config.quiet,
        ..super::BatchOptions::new(
            source.clone().unwrap_or(super::BatchSource::Stdin),
            template,
        )
    };
    let runtime = runtime::runtime()?;
    let code = runtime.block_on(async {
        let signals = super::ShutdownSignals::os()
            .map_err(|e| Error::Io(format!("Cannot install the signal handlers: {e}")))?;
        let io = super::BatchIo::stdio();
        Ok::<i32, Error>(match source {
            Some(_) => {
                super::run_batch_with(engine.clone(), opts, signals, io)
                    .await
                    .exit_code
            }
            None => super::run_count(engine.clone(), opts, signals, io).await,
        })
    })?;
    // Every job has ended, so no refresh holds a lock; this only covers a job that panicked.
    engine.release_locks();
    Ok(code)
}
