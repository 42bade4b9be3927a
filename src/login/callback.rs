//! The local callback server of the browser sign-in, Codex's routes and behaviour
//! (`codex-rs/login/src/server.rs`): it listens on 127.0.0.1 only, routes by path whatever the
//! method, and
//!
//! - `/auth/callback`: checks `state` first (a mismatch gets an error page and the server keeps
//!   waiting), then an `error` from the issuer (ends the sign-in), a missing `code` (ends it),
//!   the code exchange and the save (their failure ends it, with the issuer's words on the
//!   page); on success it redirects to `/success`, so the code leaves the address bar;
//! - `/success`: the success page; the sign-in finishes once it has been served (or shortly
//!   after the save when the browser never asks for it);
//! - `/cancel`: ends this sign-in: another `--login` (or `codex login`) that needs the port
//!   asks for it, which is how a second sign-in takes over from a forgotten one;
//! - anything else: 404.
//!
//! Only the first callback with the right state is exchanged: a reload or a duplicate request
//! never spends the single-use code twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use tokio::sync::mpsc;

use super::pages;
use crate::auth::login_exchange::{self, Account, Tokens};
use crate::auth::login_store::{self, Saved, Target};
use crate::foundation::error::{AuthErrorKind, Error, Result};
use crate::foundation::events::Reporter;

/// What the server tells the waiting flow.
pub(crate) enum Event {
    /// The sign-in ended: saved, or failed.
    Finished(Box<Result<(Saved, Account)>>),
    /// The browser loaded the success page.
    SuccessShown,
    /// `/cancel` was requested.
    Cancelled,
}

/// Everything a callback needs to finish the sign-in.
pub(crate) struct Flow {
    pub state: String,
    pub verifier: String,
    pub redirect_uri: String,
    pub issuer: String,
    pub http: reqwest::Client,
    pub target: Target,
    pub force: bool,
    pub events: mpsc::UnboundedSender<Event>,
    pub progress: Reporter,
    /// Set by the first callback with the right state and a code.
    pub claimed: AtomicBool,
}

pub(crate) fn router(flow: Arc<Flow>) -> Router {
    Router::new()
        .route("/auth/callback", any(callback))
        .route("/success", any(success))
        .route("/cancel", any(cancel))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found") })
        .with_state(flow)
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONNECTION, "close"),
        ],
        body,
    )
        .into_response()
}

fn sign_in_failed(message: String) -> Error {
    Error::auth(AuthErrorKind::SignInFailed, message)
}

/// Codex's wording for an `error` the issuer sent back.
fn issuer_error_text(error: &str, description: Option<&str>) -> String {
    let description = description.map(str::trim).filter(|d| !d.is_empty());
    if error == "access_denied"
        && description.is_some_and(|d| d.to_lowercase().contains("missing_codex_entitlement"))
    {
        return "Codex is not enabled for your workspace. Contact your workspace administrator \
                to request access to Codex."
            .to_string();
    }
    format!("Sign-in failed: {}", description.unwrap_or(error))
}

async fn callback(
    State(flow): State<Arc<Flow>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if params.get("state") != Some(&flow.state) {
        flow.progress.warn(
            "codex-imagen: ignored a callback whose state does not match this sign-in; still \
             waiting",
        );
        return html(StatusCode::BAD_REQUEST, pages::state_mismatch());
    }
    if let Some(error) = params.get("error") {
        let text = issuer_error_text(error, params.get("error_description").map(String::as_str));
        return finish_with(&flow, sign_in_failed(text));
    }
    let Some(code) = params.get("code").filter(|c| !c.is_empty()) else {
        return finish_with(
            &flow,
            sign_in_failed(
                "Missing authorization code. Sign-in could not be completed.".to_string(),
            ),
        );
    };
    if flow.claimed.swap(true, Ordering::SeqCst) {
        return html(
            StatusCode::CONFLICT,
            pages::failure("This sign-in was already answered; return to the terminal."),
        );
    }
    match exchange_and_save(&flow, code).await {
        Ok(done) => {
            let _ = flow.events.send(Event::Finished(Box::new(Ok(done))));
            (
                StatusCode::FOUND,
                [
                    (header::LOCATION, "/success"),
                    (header::CONNECTION, "close"),
                ],
            )
                .into_response()
        }
        Err(err) => finish_with(&flow, err),
    }
}

/// Show `err` on the page and end the sign-in with it.
fn finish_with(flow: &Flow, err: Error) -> Response {
    let page = pages::failure(&err.to_string());
    let status = match err.exit_code() {
        2 => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    let _ = flow.events.send(Event::Finished(Box::new(Err(err))));
    html(status, page)
}

async fn exchange_and_save(flow: &Flow, code: &str) -> Result<(Saved, Account)> {
    let tokens: Tokens = login_exchange::exchange_code(
        &flow.http,
        &flow.issuer,
        code,
        &flow.redirect_uri,
        &flow.verifier,
    )
    .await
    .map_err(|err| match err {
        Error::Auth { kind, message } => Error::Auth {
            kind,
            message: format!("Token exchange failed: {message}"),
        },
        other => other,
    })?;
    let account = login_exchange::account_of(&tokens.id_token);
    let target = flow.target.clone();
    let force = flow.force;
    let saved = tokio::task::spawn_blocking(move || login_store::save(&target, &tokens, force))
        .await
        .map_err(|e| Error::Io(format!("Saving the credential stopped: {e}")))??;
    Ok((saved, account))
}

async fn success(State(flow): State<Arc<Flow>>) -> Response {
    let _ = flow.events.send(Event::SuccessShown);
    html(StatusCode::OK, pages::success())
}

async fn cancel(State(flow): State<Arc<Flow>>) -> Response {
    let _ = flow.events.send(Event::Cancelled);
    (
        StatusCode::OK,
        [(header::CONNECTION, "close")],
        "Login cancelled",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_errors_read_as_codex_words_them() {
        assert_eq!(
            issuer_error_text("access_denied", Some("x MISSING_CODEX_ENTITLEMENT y")),
            "Codex is not enabled for your workspace. Contact your workspace administrator to \
             request access to Codex."
        );
        assert_eq!(
            issuer_error_text("access_denied", Some("user said no")),
            "Sign-in failed: user said no"
        );
        assert_eq!(
            issuer_error_text("server_error", Some(" ")),
            "Sign-in failed: server_error"
        );
    }
}
