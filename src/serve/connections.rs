//! Accepting connections, bounded: at most `max` open at once, a request's headers within
//! `header_timeout`, and a connection with no request for `idle_timeout` closed (10 s, 60 s and
//! 512 by default; `config.rs`). Silent connections therefore cannot pile up until the file
//! descriptors run out and `/health` stops answering.
//!
//! `axum::serve` has no such bounds, so this is its accept loop with them: hyper-util's
//! HTTP/1 + HTTP/2 connection builder over the same router. hyper's own header timeout also
//! runs while a keep-alive connection waits, which would make the idle timeout the header
//! timeout; so each connection's state is kept here instead. Its reads are watched (the first
//! byte while no request is in flight starts the header clock), requests are counted from the
//! handler's call to the end (or drop) of their answer's body, and a timer closes the
//! connection when a clock runs out. When the limit is reached, new connections wait in the
//! kernel's backlog and the log says so once a minute at most.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::config::ConnectionLimits;
use super::service::Log;
use crate::foundation::sync::lock;

/// One connection's clocks.
#[derive(Debug)]
struct State {
    in_flight: usize,
    /// Since when a request's headers are awaited (none while a request is in flight or the
    /// connection is idle).
    head_since: Option<Instant>,
    idle_since: Instant,
}

#[derive(Debug, Clone)]
struct Activity(Arc<Mutex<State>>);

impl Activity {
    fn new() -> Activity {
        let now = Instant::now();
        // A new connection owes its first request's headers at once.
        Activity(Arc::new(Mutex::new(State {
            in_flight: 0,
            head_since: Some(now),
            idle_since: now,
        })))
    }

    fn read_some(&self) {
        let mut state = lock(&self.0);
        if state.in_flight == 0 && state.head_since.is_none() {
            state.head_since = Some(Instant::now());
        }
    }

    fn begin(&self) -> InFlight {
        let mut state = lock(&self.0);
        state.in_flight += 1;
        state.head_since = None;
        InFlight(self.clone())
    }

    /// Whether the connection must close now.
    fn expired(&self, limits: &ConnectionLimits) -> bool {
        let state = lock(&self.0);
        if let Some(since) = state.head_since {
            return since.elapsed() > limits.header_timeout;
        }
        state.in_flight == 0 && state.idle_since.elapsed() > limits.idle_timeout
    }
}

/// A request in flight; dropped with its answer's body.
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = lock(&(self.0).0);
        state.in_flight = state.in_flight.saturating_sub(1);
        state.idle_since = Instant::now();
    }
}

/// The socket, its reads reported to the connection's [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// An answer's body that keeps its request counted as in flight until it ends or is dropped.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serve `app` on `listener` until `stop` fires, then let open connections finish their
/// current exchange and return when all are closed (the caller decides how long to wait).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    log: Log,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max));
    let mut last_full: Option<Instant> = None;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if last_full.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                    log.line(&format!(
                        "connection limit reached ({} open): new connections wait until one closes",
                        limits.max
                    ));
                    last_full = Some(Instant::now());
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = stop.cancelled() => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: wait rather than spin.
                log.line(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            connection(stream, app, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let all = u32::try_from(limits.max).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

async fn connection(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let activity = Activity::new();
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let tower = TowerToHyperService::new(app);
    let counted = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let in_flight = counted.begin();
        let answer = hyper::service::Service::call(&tower, request);
        async move {
            let response = answer.await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| Tracked {
                inner: body,
                _in_flight: in_flight,
            }))
        }
    });
    let builder = Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(io, service);
    let mut conn = std::pin::pin!(conn);
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(tick) => {
                if activity.expired(&limits) {
                    // Dropping the connection closes the socket.
                    return;
                }
            }
        }
    }
}
