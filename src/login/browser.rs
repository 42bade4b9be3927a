//! The browser sign-in: authorization code with PKCE, as Codex runs it. Bind the callback port
//! on 127.0.0.1 (taking it over from a forgotten sign-in through `/cancel`, and falling back
//! from 1455 to 1457 as Codex does), print the authorize URL on stderr, open the browser when
//! there is one, and serve the callback ([`super::callback`]) until the sign-in ends.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::callback::{self, Event, Flow};
use crate::auth::login_exchange::{self, Account, DEFAULT_CALLBACK_PORT, FALLBACK_CALLBACK_PORT};
use crate::auth::login_store::{Saved, Target};
use crate::foundation::error::{Error, Result};
use crate::foundation::events::Reporter;
use crate::foundation::paths::Environment;
use crate::frontend::config::SignInConfig;
use crate::frontend::report;

/// Codex's bind retries: every 200 ms, ten times per port.
const BIND_ATTEMPTS: u32 = 10;
const BIND_RETRY: Duration = Duration::from_millis(200);
/// The cancel request's connect, read and write limit.
const CANCEL_IO: Duration = Duration::from_secs(2);
/// How long the server stays up for the success page after the credential was saved.
const SUCCESS_PAGE_GRACE: Duration = Duration::from_secs(5);

/// Run the browser sign-in to the end: the credential saved, and who signed in.
pub(crate) async fn sign_in(
    config: &SignInConfig,
    env: &Environment,
    target: Target,
    http: reqwest::Client,
    progress: &Reporter,
) -> Result<(Saved, Account)> {
    let wanted = config.flags.callback_port.unwrap_or(DEFAULT_CALLBACK_PORT);
    if wanted != DEFAULT_CALLBACK_PORT {
        progress.warn(&format!(
            "codex-imagen: warning: --callback-port {wanted}: the real issuer only accepts the \
             callback on port {DEFAULT_CALLBACK_PORT} (or {FALLBACK_CALLBACK_PORT} when it is \
             busy); other ports are for tests and other issuers"
        ));
    }
    let listener = bind(wanted, progress).await?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("Cannot read the callback server's address", e))?
        .port();
    let pkce = login_exchange::pkce()?;
    let state = login_exchange::random_state()?;
    let url = login_exchange::authorize_url(&config.issuer, port, &pkce.challenge, &state);
    let (events, mut received) = mpsc::unbounded_channel();
    let flow = Arc::new(Flow {
        state,
        verifier: pkce.verifier,
        redirect_uri: login_exchange::redirect_uri(port),
        issuer: config.issuer.clone(),
        http,
        target,
        force: config.force,
        events,
        progress: progress.clone(),
        claimed: AtomicBool::new(false),
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = axum::serve(listener, callback::router(flow))
        .with_graceful_shutdown(stop.clone().cancelled_owned());
    let server = tokio::spawn(async move { serving.await });

    report::eprint_line(&format!(
        "codex-imagen: sign in with ChatGPT in your browser. If it does not open, open this \
         URL:\n\n{url}\n"
    ));
    if !config.no_browser && has_display(env) {
        let opened = tokio::task::spawn_blocking({
            let url = url.clone();
            move || webbrowser::open(&url)
        })
        .await;
        if !matches!(opened, Ok(Ok(()))) {
            progress.warn("codex-imagen: could not open a browser; open the URL above yourself");
        }
    }
    report::eprint_line(&format!(
        "codex-imagen: waiting for the sign-in on http://localhost:{port} (up to {} s; \
         Ctrl-C stops)",
        config.timeout_ms.div_ceil(1000)
    ));

    let outcome = loop {
        match received.recv().await {
            Some(Event::Finished(result)) => break *result,
            Some(Event::Cancelled) => {
                break Err(Error::Cancelled(
                    "Sign-in cancelled: another sign-in took over the callback port (it asked \
                     this one to stop through /cancel)."
                        .into(),
                ))
            }
            Some(Event::SuccessShown) => {}
            None => {
                break Err(Error::Io(
                    "The callback server stopped before the sign-in finished".into(),
                ))
            }
        }
    };
    if outcome.is_ok() {
        // Let the browser follow the redirect to the success page before the server goes.
        let _ = tokio::time::timeout(SUCCESS_PAGE_GRACE, async {
            while let Some(event) = received.recv().await {
                if matches!(event, Event::SuccessShown | Event::Cancelled) {
                    break;
                }
            }
        })
        .await;
    }
    stop.cancel();
    // Graceful: the page of the request that ended the sign-in is written before we go.
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    outcome
}

/// Open a browser only where one can show: a desktop session on Linux and the BSDs (a text
/// browser in the terminal would fight us for it), always elsewhere.
fn has_display(env: &Environment) -> bool {
    if cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd"
    )) {
        env.var("DISPLAY").is_some() || env.var("WAYLAND_DISPLAY").is_some()
    } else {
        true
    }
}

/// Bind 127.0.0.1:`port`. When it is taken, ask whoever holds it to cancel (a forgotten
/// sign-in), retry, and for Codex's port fall back to its second one, as Codex does.
async fn bind(port: u16, progress: &Reporter) -> Result<TcpListener> {
    let mut cancel_sent = false;
    let mut ports = vec![port];
    if port == DEFAULT_CALLBACK_PORT {
        ports.push(FALLBACK_CALLBACK_PORT);
    }
    for candidate in ports {
        for attempt in 0..BIND_ATTEMPTS {
            match TcpListener::bind(("127.0.0.1", candidate)).await {
                Ok(listener) => {
                    if candidate != port {
                        progress.warn(&format!(
                            "codex-imagen: port {port} stays busy; using {candidate}"
                        ));
                    }
                    return Ok(listener);
                }
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                    if !cancel_sent {
                        cancel_sent = true;
                        send_cancel(candidate).await;
                    }
                    if attempt + 1 < BIND_ATTEMPTS {
                        tokio::time::sleep(BIND_RETRY).await;
                    }
                }
                Err(err) => {
                    return Err(Error::io(
                        format!("Cannot listen on 127.0.0.1:{candidate} for the sign-in callback"),
                        err,
                    ))
                }
            }
        }
    }
    Err(Error::Io(format!(
        "Port 127.0.0.1:{port} is already in use, and what holds it did not give it up; stop \
         it, or pass --callback-port with another port (only {DEFAULT_CALLBACK_PORT} works \
         with the real issuer)"
    )))
}

/// Codex's cancel request, byte for byte, with 2 s limits; any failure is ignored.
async fn send_cancel(port: u16) {
    let request =
        format!("GET /cancel HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let _ = tokio::time::timeout(CANCEL_IO * 2, async {
        let mut stream =
            tokio::time::timeout(CANCEL_IO, TcpStream::connect(("127.0.0.1", port))).await??;
        tokio::time::timeout(CANCEL_IO, stream.write_all(request.as_bytes())).await??;
        let mut answer = [0u8; 64];
        tokio::time::timeout(CANCEL_IO, stream.read(&mut answer)).await??;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    })
    .await;
}
