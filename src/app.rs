//! The order of a run (SPEC §14): parse → `--help`/`--version` → `--cwd` and defaults → auth
//! path → smoke | prepare auth → refresh-only | read prompt → generate → report.

use crate::auth::refresh::{Refresher, REASON_BACKEND_401, REASON_REFRESH_ONLY};
use crate::auth::{self, AuthContext, Fallback, PreparedAuth};
use crate::backend::references;
use crate::backend::request::{self, RequestIdentity};
use crate::cli::{self, Parsed};
use crate::config::{Config, PromptSource};
use crate::error::{Error, Result};
use crate::generate::Generation;
use crate::paths;
use crate::progress::Progress;
use crate::report;

/// Run the tool with `argv` (without the program name); returns the exit code.
pub fn run(argv: Vec<String>) -> i32 {
    let args = match cli::parse(&argv) {
        Ok(Parsed::Help) => {
            report::print_stdout(&cli::help_text());
            return 0;
        }
        Ok(Parsed::Version) => {
            report::print_stdout(&cli::version_text());
            return 0;
        }
        Ok(Parsed::Completions(script)) | Ok(Parsed::Man(script)) => {
            report::print_stdout(&script);
            return 0;
        }
        Ok(Parsed::Run(args)) => *args,
        Err(err) => return fail(&err),
    };
    let result = run_args(args);
    crate::progress::finish_live_line();
    match result {
        Ok(()) => 0,
        Err(err) => fail(&err),
    }
}

fn fail(err: &Error) -> i32 {
    Progress::default().warn(&format!("Error: {err}"));
    err.exit_code()
}

fn run_args(args: cli::Args) -> Result<()> {
    let config = Config::from_args(args)?;
    let progress = Progress::new(config.quiet, config.verbose);
    let ctx = AuthContext::resolve(&config)?;

    if config.smoke && !config.force_refresh {
        // No network, no fallback: what the first store says.
        let auth = ctx.read(&ctx.path)?;
        auth::warn_auth_mode(&auth, &progress);
        print_smoke(&config, &auth);
        return Ok(());
    }
    runtime()?.block_on(async {
        tokio::select! {
            result = run_online(config, ctx, progress) => result,
            (code, name) = until_signal() => {
                // Locks held for a refresh must not outlive us: OpenClaw agents would wait on them.
                Progress::default().warn(&format!("Error: interrupted by {name}"));
                crate::exit::exit_now(code)
            }
        }
    })
}

/// The first SIGINT or SIGTERM (Ctrl-C on Windows), with the exit code a shell expects.
async fn until_signal() -> (i32, &'static str) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => (143, "SIGTERM"),
            _ = int.recv() => (130, "SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            return std::future::pending().await;
        }
        (130, "Ctrl-C")
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("Cannot start the async runtime: {e}")))
}

fn print_smoke(config: &Config, auth: &auth::Auth) {
    let value = report::smoke_json(config, auth, &request::user_agent());
    if config.json {
        report::print_json(&value);
    } else {
        report::print_key_values(&value);
    }
}

async fn run_online(config: Config, ctx: AuthContext, progress: Progress) -> Result<()> {
    crate::progress::start_live_line(&progress);
    let refresher = Refresher {
        ctx: &ctx,
        refresh_url: &config.refresh_url,
        enabled: config.refresh,
        progress,
    };
    let fallback = if config.smoke {
        Fallback::FirstStoreOnly
    } else {
        Fallback::Allowed
    };
    let PreparedAuth {
        mut auth,
        mut refresh,
    } = auth::prepare(&ctx, &refresher, config.force_refresh, fallback, &progress).await?;
    if config.smoke {
        print_smoke(&config, &auth);
        return Ok(());
    }
    if config.refresh_only {
        let outcome = match refresh {
            Some(outcome) => outcome,
            None => {
                let (fresh, outcome) = refresher.refresh(&auth, REASON_REFRESH_ONLY).await?;
                auth = fresh;
                outcome
            }
        };
        if config.json {
            report::print_json(&report::refresh_only_json(&auth, &outcome));
        } else {
            report::print_stdout(&format!("{}\n", auth.path.display()));
        }
        return Ok(());
    }

    let prompt = read_prompt(&config.prompt)?;
    if prompt.trim().is_empty() {
        return Err(Error::Usage(
            "Prompt is required. Pass it positionally, with --prompt, or with --prompt-file."
                .into(),
        ));
    }

    let loaded = references::load_all(&config.references, &progress)?;
    let client = http_client()?;
    let mut generation = Generation::new(
        &client,
        &config,
        identity_for(&auth),
        &loaded,
        &prompt,
        progress,
    );
    let result = match generation.run_with_retries().await {
        Err(Error::Http { status: 401, .. }) if config.refresh => {
            // The backend rejected a token we thought valid: refresh once, then one more round.
            let (fresh, outcome) = refresher.refresh(&auth, REASON_BACKEND_401).await?;
            auth = fresh;
            refresh = Some(outcome);
            generation.identity = identity_for(&auth);
            generation.run_with_retries().await?
        }
        other => other?,
    };

    if config.json {
        let refresh = refresh.as_ref().map(|r| (r, &auth));
        report::print_json(&report::generation_json(&result, refresh));
    } else {
        report::print_paths(&result.images);
    }
    Ok(())
}

fn identity_for(auth: &auth::Auth) -> RequestIdentity {
    RequestIdentity {
        access_token: auth.access_token.clone(),
        account_id: auth.account_id.clone(),
        user_agent: request::user_agent(),
        codex_version: request::codex_version(),
    }
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .build()
        .map_err(|e| Error::Io(format!("Cannot create the HTTP client: {e}")))
}

fn read_prompt(source: &PromptSource) -> Result<String> {
    match source {
        PromptSource::Inline(text) => Ok(text.clone()),
        PromptSource::None => Ok(String::new()),
        PromptSource::File(path) => {
            let path = paths::absolute(path);
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
