//! The one way in: `main.rs` hands argv here. Parse the flags (`frontend/args.rs`), answer
//! `--help`, `--version`, completions and the man page, then pick the mode and hand the
//! command line to its front-end. Adding a mode is adding a folder and one arm below.
//!
//! For every mode but `--mcp` (whose stderr belongs to the host), the order of checks is the
//! CLI's (SPEC §14): values → the service's flags → `--cwd` and the environment → the mode.

use std::sync::Arc;

use crate::foundation::error::{Error, Result};
use crate::foundation::paths::Environment;
use crate::frontend::args::{self, Args, Parsed};
use crate::frontend::terminal::TerminalSink;
use crate::frontend::{config, report, validate};
use crate::{batch, cli, history, login, mcp, serve};

/// Run the tool with `argv` (without the program name); returns the exit code.
pub fn run(argv: Vec<String>) -> i32 {
    crate::foundation::allocator::tune();
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
        Ok(Parsed::Run(args)) if args.mcp => return mcp::run(*args),
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
        None => report::eprint_line(&message),
    }
    err.exit_code()
}

fn run_args(args: Args, sink: &Arc<TerminalSink>) -> Result<i32> {
    let checked = validate::validate(&args)?;
    serve::config::check(&args)?;
    let serve = args
        .serve
        .is_some()
        .then(|| serve::config::ServeArgs::from_args(&args));
    let config = config::resolve(args, checked, Environment::capture())?;
    if let Some(text) = config.history_query.clone() {
        return history::run(&config, &text);
    }
    if let Some(serve) = serve {
        let serve = serve::config::resolve(&serve, &config.env, config.data_dir.clone())?;
        return serve::run(serve, &config).map(|()| 0);
    }
    if let Some(sign_in) = config.sign_in.clone() {
        return login::start::run(&config, sign_in, sink);
    }
    if let Some(many) = config.many.clone() {
        return batch::start::run(&config, many);
    }
    cli::run(config, sink)
}
