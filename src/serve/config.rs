//! The service's own flags (`--serve [ADDR]`, `--data-dir`, `--jobs`, `--queue`, `--job-ttl`,
//! `--shutdown-grace`, `--serve-token-file`, and what the service allows beyond its defaults:
//! `--allow-dir`, `--allow-host`, `--cors-origin`, `--allow-private-callbacks`, `--shared-files`)
//! and `CODEX_IMAGEN_SERVE_TOKEN`, checked into one
//! [`ServeConfig`]. Everything the engine needs (auth, backend URL, retries) still comes from the
//! CLI's own resolution, so the service and the one-shot CLI read those flags the same way.
//!
//! Bad values are usage errors (exit 2) naming the flag, in the CLI's wording.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::foundation::error::{Error, Result};
use crate::foundation::paths::Environment;
use crate::frontend::args::Args;

use crate::frontend::args::DEFAULT_ADDR;
const DEFAULT_JOBS: usize = 2;
const MAX_JOBS: usize = 16;
const DEFAULT_QUEUE: usize = 100;
const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Waits after each failed callback attempt; five attempts in all.
const CALLBACK_DELAYS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// Everything the service is started with.
#[derive(Clone)]
pub(crate) struct ServeConfig {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub jobs: usize,
    pub queue: usize,
    pub job_ttl: Duration,
    pub shutdown_grace: Duration,
    /// The bearer token; never printed (see the `Debug` impl).
    pub token: Option<String>,
    pub quiet: bool,
    /// The wait after each failed callback attempt; its length is the number of attempts.
    pub callback_delays: Vec<Duration>,
    /// `--allow-dir`, canonical (symlinks resolved): where local-path references may be read.
    pub allow_dirs: Vec<PathBuf>,
    /// `--allow-host`, lower case, without a trailing dot.
    pub allow_hosts: Vec<String>,
    /// `--cors-origin`, as origins (`scheme://host[:port]`).
    pub cors_origins: Vec<String>,
    pub allow_private_callbacks: bool,
    pub shared_files: bool,
    pub connections: ConnectionLimits,
    /// Debug builds: a job with this prompt panics (`$CODEX_IMAGEN_TEST_PANIC_PROMPT`).
    pub panic_prompt: Option<String>,
}

/// How long a connection may take and how many may be open.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Open connections at most; more wait in the kernel's backlog.
    pub max: usize,
    /// A request's headers must arrive within this (from the connection's start, or from the
    /// first byte of a later request).
    pub header_timeout: Duration,
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("jobs", &self.jobs)
            .field("queue", &self.queue)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The service's flags as typed, taken from the command line before the CLI's own resolution
/// consumes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServeArgs {
    pub serve: Option<String>,
    pub jobs: Option<String>,
    pub queue: Option<String>,
    pub job_ttl: Option<String>,
    pub shutdown_grace: Option<String>,
    pub serve_token_file: Option<String>,
    pub quiet: bool,
    pub allow_dir: Vec<String>,
    pub allow_host: Vec<String>,
    pub cors_origin: Vec<String>,
    pub allow_private_callbacks: bool,
    pub shared_files: bool,
}

impl ServeArgs {
    pub(crate) fn from_args(args: &Args) -> ServeArgs {
        ServeArgs {
            serve: args.serve.clone(),
            jobs: args.jobs.clone(),
            queue: args.queue.clone(),
            job_ttl: args.job_ttl.clone(),
            shutdown_grace: args.shutdown_grace.clone(),
            serve_token_file: args.serve_token_file.clone(),
            quiet: args.quiet,
            allow_dir: args.allow_dir.clone(),
            allow_host: args.allow_host.clone(),
            cors_origin: args.cors_origin.clone(),
            allow_private_callbacks: args.allow_private_callbacks,
            shared_files: args.shared_files,
        }
    }
}

/// The service flags given without `--serve` are a usage error rather than silently ignored;
/// with `--serve`, positional words (a prompt) are one too.
pub(crate) fn check(args: &Args) -> Result<()> {
    if args.serve.is_some() {
        if let Some(word) = args.words.first() {
            return Err(Error::Usage(format!(
                "Unexpected positional argument with --serve: {word}. The service takes prompts over HTTP."
            )));
        }
        return Ok(());
    }
    if args.serve.is_some() {
        return Ok(());
    }
    let given = [
        ("--queue", args.queue.is_some()),
        ("--job-ttl", args.job_ttl.is_some()),
        ("--shutdown-grace", args.shutdown_grace.is_some()),
        ("--serve-token-file", args.serve_token_file.is_some()),
        ("--allow-dir", !args.allow_dir.is_empty()),
        ("--allow-host", !args.allow_host.is_empty()),
        ("--cors-origin", !args.cors_origin.is_empty()),
        ("--allow-private-callbacks", args.allow_private_callbacks),
        ("--shared-files", args.shared_files),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(Error::Usage(format!("{flag} requires --serve"))),
        None => Ok(()),
    }
}

/// Resolve the service flags; `env` has `--cwd` applied.
/// `data_dir` is the command line's ([`crate::frontend::config::data_dir`]).
pub(crate) fn resolve(
    args: &ServeArgs,
    env: &Environment,
    data_dir: PathBuf,
) -> Result<ServeConfig> {
    let typed = args.serve.as_deref().unwrap_or(DEFAULT_ADDR);
    let addr = parse_addr(typed)?;
    let jobs = match &args.jobs {
        Some(v) => parse_count(v, 1, MAX_JOBS).ok_or_else(|| {
            Error::Usage(format!("--jobs must be an integer from 1 to {MAX_JOBS}"))
        })?,
        None => DEFAULT_JOBS,
    };
    let queue = match &args.queue {
        Some(v) => parse_count(v, 0, 1_000_000)
            .ok_or_else(|| Error::Usage("--queue must be an integer from 0 to 1000000".into()))?,
        None => DEFAULT_QUEUE,
    };
    let job_ttl = match &args.job_ttl {
        Some(v) => parse_duration(v).ok_or_else(|| {
            Error::Usage(
                "--job-ttl must be a duration: seconds, or a number with s, m, h or d".into(),
            )
        })?,
        None => DEFAULT_TTL,
    };
    let shutdown_grace = match &args.shutdown_grace {
        Some(v) => parse_duration(v).ok_or_else(|| {
            Error::Usage(
                "--shutdown-grace must be a duration: seconds, or a number with s, m, h or d"
                    .into(),
            )
        })?,
        None => DEFAULT_GRACE,
    };
    let token = read_token(args, env)?;
    if token.is_none() && !is_loopback(&addr.ip()) {
        return Err(Error::Usage(format!(
            "--serve {typed} is not a loopback address: set CODEX_IMAGEN_SERVE_TOKEN or --serve-token-file so every request must carry the token"
        )));
    }
    Ok(ServeConfig {
        addr,
        data_dir,
        jobs,
        queue,
        job_ttl,
        shutdown_grace,
        token,
        quiet: args.quiet,
        callback_delays: callback_delays(env),
        allow_dirs: allow_dirs(&args.allow_dir, env)?,
        allow_hosts: args
            .allow_host
            .iter()
            .map(|h| allow_host(h))
            .collect::<Result<_>>()?,
        cors_origins: args
            .cors_origin
            .iter()
            .map(|o| cors_origin(o))
            .collect::<Result<_>>()?,
        allow_private_callbacks: args.allow_private_callbacks,
        shared_files: args.shared_files,
        connections: connection_limits(env),
        panic_prompt: if cfg!(debug_assertions) {
            env.var("CODEX_IMAGEN_TEST_PANIC_PROMPT")
        } else {
            None
        },
    })
}

fn allow_dirs(typed: &[String], env: &Environment) -> Result<Vec<PathBuf>> {
    typed
        .iter()
        .map(|dir| {
            let path = env.resolve(dir);
            match path.canonicalize() {
                Ok(real) if real.is_dir() => Ok(real),
                _ => Err(Error::Usage(format!(
                    "--allow-dir {dir}: not a directory that can be read"
                ))),
            }
        })
        .collect()
}

/// A host name, an IPv4 address or a bracketed IPv6 address, without a port.
fn allow_host(typed: &str) -> Result<String> {
    let name = typed.trim().trim_end_matches('.').to_ascii_lowercase();
    let bracketed = name.starts_with('[') && name.ends_with(']');
    let ok = !name.is_empty()
        && (bracketed
            || name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'));
    if ok {
        Ok(name)
    } else {
        Err(Error::Usage(format!(
            "--allow-host {typed}: expected a host name without a port, e.g. images.example.com"
        )))
    }
}

/// `http(s)://host[:port]`, exactly one origin (no path, no `*`).
fn cors_origin(typed: &str) -> Result<String> {
    let bad = || {
        Error::Usage(format!(
            "--cors-origin {typed}: expected an origin such as http://localhost:3000 (scheme, host and port; no path, no *)"
        ))
    };
    let url = reqwest::Url::parse(typed.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || !url.username().is_empty()
    {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

/// 512 connections, headers within 10 s, idle for 60 s; debug builds read shorter ones from
/// the environment so tests need not wait.
fn connection_limits(env: &Environment) -> ConnectionLimits {
    let mut limits = ConnectionLimits {
        max: 512,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    };
    if cfg!(debug_assertions) {
        let number = |key: &str| env.var(key).and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(max) = number("CODEX_IMAGEN_TEST_MAX_CONNECTIONS") {
            limits.max = (max as usize).max(1);
        }
        if let Some(ms) = number("CODEX_IMAGEN_TEST_HEADER_TIMEOUT_MS") {
            limits.header_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = number("CODEX_IMAGEN_TEST_IDLE_TIMEOUT_MS") {
            limits.idle_timeout = Duration::from_millis(ms);
        }
    }
    limits
}

/// Debug builds read a shorter schedule from the environment so tests need not wait 31 s.
fn callback_delays(env: &Environment) -> Vec<Duration> {
    if cfg!(debug_assertions) {
        if let Some(list) = env.var("CODEX_IMAGEN_TEST_CALLBACK_DELAYS_MS") {
            let parsed: Option<Vec<Duration>> = list
                .split(',')
                .map(|ms| ms.trim().parse().ok().map(Duration::from_millis))
                .collect();
            if let Some(delays) = parsed.filter(|d| !d.is_empty()) {
                return delays;
            }
        }
    }
    CALLBACK_DELAYS.to_vec()
}

fn read_token(args: &ServeArgs, env: &Environment) -> Result<Option<String>> {
    if let Some(path) = args.serve_token_file.as_deref().filter(|p| !p.is_empty()) {
        let path = env.resolve(path);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Input(format!(
                "Cannot read --serve-token-file {}: {e}",
                path.display()
            ))
        })?;
        let token = text.trim().to_string();
        if token.is_empty() {
            return Err(Error::Usage(format!(
                "--serve-token-file {} is empty",
                path.display()
            )));
        }
        return Ok(Some(token));
    }
    Ok(env
        .var("CODEX_IMAGEN_SERVE_TOKEN")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

fn is_loopback(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `host:port`, `:port` (loopback) or a bare port; `localhost` resolves to its loopback address.
fn parse_addr(typed: &str) -> Result<SocketAddr> {
    let bad = || {
        Error::Usage(format!(
            "--serve {typed}: expected ADDR as host:port, e.g. {DEFAULT_ADDR}"
        ))
    };
    if let Ok(port) = typed.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Some(port) = typed.strip_prefix(':') {
        let port = port.parse::<u16>().map_err(|_| bad())?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = typed.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = typed.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(bad)
}

fn parse_count(value: &str, min: usize, max: usize) -> Option<usize> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
}

/// `90`, `90s`, `15m`, `12h`, `7d`.
pub(crate) fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (number, unit) = match value
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((at, _)) => value.split_at(at),
        None => (value, "s"),
    };
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    let secs = number * scale;
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5y"), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("9000").unwrap().port(), 9000);
        assert!(parse_addr("localhost:1").unwrap().ip().is_loopback());
        assert!(!parse_addr("0.0.0.0:1").unwrap().ip().is_loopback());
        assert!(parse_addr("[::1]:5").unwrap().ip().is_loopback());
        assert!(parse_addr("nonsense").is_err());
    }

    #[test]
    fn origins_and_hosts_are_checked() {
        assert_eq!(
            cors_origin("http://localhost:3000/").unwrap(),
            "http://localhost:3000"
        );
        assert!(cors_origin("*").is_err());
        assert!(cors_origin("http://x.test/app").is_err());
        assert!(cors_origin("ftp://x.test").is_err());
        assert_eq!(
            allow_host("Images.Example.com.").unwrap(),
            "images.example.com"
        );
        assert!(allow_host("a.test:8080").is_err());
        assert!(allow_host("a/b").is_err());
        assert_eq!(parse_duration("1e300d"), None);
    }
}
