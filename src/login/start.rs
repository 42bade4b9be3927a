//! The `--login` / `--logout` mode: the runtime it runs on, the time limit (`--timeout`,
//! default 600 s, exit 124), Ctrl-C (exit 130, nothing saved), and what it prints: the sign-in
//! prompts on stderr, then on stdout who signed in (email, plan, account) and where the
//! credential went (`--json`: one object).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{browser, device, logout};
use crate::auth::login_exchange::{self, Account};
use crate::auth::login_store::{self, Saved, Target};
use crate::auth::AuthContext;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::Reporter;
use crate::frontend::config::{Config, SignInConfig};
use crate::frontend::terminal::TerminalSink;
use crate::frontend::{report, runtime};

/// Run `--login` or `--logout`; the exit code.
pub(crate) fn run(config: &Config, sign_in: SignInConfig, sink: &Arc<TerminalSink>) -> Result<i32> {
    if sign_in.flags.logout {
        return logout::run(config);
    }
    let progress = Reporter::new(sink.clone());
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| Error::Io(format!("Cannot create the HTTP client: {e}")))?;
    let target = Target::resolve(config.auth.auth_path.as_deref(), &config.env);
    let runtime = runtime::one_shot_runtime()?;
    let limit = Duration::from_millis(sign_in.timeout_ms);
    let outcome = runtime.block_on(async {
        let flow = async {
            if sign_in.flags.device {
                let tokens = device::sign_in(&sign_in, &http).await?;
                let account = login_exchange::account_of(&tokens.id_token);
                let force = sign_in.force;
                let target = target.clone();
                let saved =
                    tokio::task::spawn_blocking(move || login_store::save(&target, &tokens, force))
                        .await
                        .map_err(|e| Error::Io(format!("Saving the credential stopped: {e}")))??;
                Ok((saved, account))
            } else {
                browser::sign_in(
                    &sign_in,
                    &config.env,
                    target.clone(),
                    http.clone(),
                    &progress,
                )
                .await
            }
        };
        tokio::select! {
            result = tokio::time::timeout(limit, flow) => Ok(result),
            signal = runtime::until_signal() => Err(signal),
        }
    });
    match outcome {
        Ok(Ok(Ok((saved, account)))) => {
            print_signed_in(config, &saved, &account);
            Ok(0)
        }
        Ok(Ok(Err(err))) => Err(err),
        Ok(Err(_elapsed)) => Err(Error::Timeout(format!(
            "The sign-in did not finish within {} s; nothing was saved. Run --login again \
             (--timeout sets the limit).",
            sign_in.timeout_ms.div_ceil(1000)
        ))),
        Err((code, name)) => {
            drop(runtime);
            report::eprint_line(&format!(
                "Error: sign-in interrupted by {name}; nothing was saved"
            ));
            std::process::exit(code)
        }
    }
}

fn print_signed_in(config: &Config, saved: &Saved, account: &Account) {
    // Which store a run would read first now: a store earlier in discovery wins over this one.
    let first = AuthContext::resolve(&config.auth, &config.env)
        .ok()
        .map(|ctx| ctx.path)
        .filter(|path| *path != saved.path);
    if config.json {
        report::print_json(&json!({
            "email": account.email,
            "plan": account.plan,
            "account_id": account.account_id,
            "store": saved.store,
            "path": saved.path.display().to_string(),
            "saved_to": saved.place,
            "updated": saved.updated,
            "notes": saved.notes,
            "discovery_reads_first": first.as_ref().map(|p| p.display().to_string()),
        }));
        return;
    }
    let mut lines = vec![format!(
        "Signed in as {} (plan: {}, account: {})",
        account
            .email
            .as_deref()
            .unwrap_or("an account without an email"),
        account.plan.as_deref().unwrap_or("unknown"),
        account.account_id.as_deref().unwrap_or("unknown"),
    )];
    lines.push(format!(
        "{} {}",
        if saved.updated { "Updated" } else { "Saved to" },
        saved.place
    ));
    lines.extend(saved.notes.iter().map(|n| format!("note: {n}")));
    if let Some(first) = first {
        lines.push(format!(
            "note: codex-imagen reads {} first; pass --auth {} to use this sign-in",
            first.display(),
            saved.path.display()
        ));
    }
    report::print_stdout(&format!("{}\n", lines.join("\n")));
}
