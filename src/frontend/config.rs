//! Resolving the validated command line against `--cwd` and the environment into one
//! [`Config`] (SPEC §1, §2, §9.1, §9.3): the engine settings and the job the CLI runs.
//!
//! `--cwd` never changes the process's working directory: it becomes the base directory of
//! the environment snapshot, which every relative path (flags, environment variables, the
//! prompt file, references, the output) resolves against.

use std::path::PathBuf;

use super::args::Args;
use super::validate::{PromptSource, SignIn, Validated, DEFAULT_JOBS};
use crate::auth::login_exchange::DEFAULT_ISSUER;
use crate::auth::pool::PoolSettings;
use crate::auth::AuthSettings;
use crate::engine::settings::{EngineSettings, DEFAULT_BASE_URL, DEFAULT_REFRESH_URL};
use crate::foundation::error::{Error, Result};
use crate::foundation::job::MetadataMode;
use crate::foundation::job::{
    Backend, JobSpec, Reference, DEFAULT_IMAGES_MODEL, DEFAULT_RESPONSES_MODEL, DEFAULT_RETRIES,
};
use crate::foundation::paths::{self, Environment};

const DEFAULT_TIMEOUT_MS: u64 = 15 * 60 * 1000;
const DEFAULT_OPENCLAW_TIMEOUT_MS: u64 = 5 * 60 * 1000;
/// `--login` gives up after this long unless `--timeout` says otherwise.
const DEFAULT_SIGN_IN_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// Everything one CLI run needs, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The process environment with `--cwd` as its base directory.
    pub env: Environment,
    pub prompt: PromptSource,
    /// The job to run; its prompt is read later (after auth, SPEC §14).
    pub job: JobSpec,
    pub auth: AuthSettings,
    pub base_url: String,
    pub smoke: bool,
    pub force_refresh: bool,
    pub refresh_only: bool,
    pub usage: bool,
    pub json: bool,
    pub quiet: bool,
    /// `--batch` or `--count` above one: many jobs on one engine.
    pub many: Option<Many>,
    /// Where every mode keeps its state ([`data_dir`]).
    pub data_dir: PathBuf,
    /// Record saved images in `<data dir>/history.sqlite` (off: `--no-history` or
    /// `CODEX_IMAGEN_HISTORY=0`).
    pub history: bool,
    /// `--history [TEXT]`: list the history instead of generating.
    pub history_query: Option<String>,
    /// `--pool`: every `--auth` store (none: discovery), cooldowns in the data directory.
    pub pool: Option<PoolSettings>,
    /// `--login` or `--logout`, resolved.
    pub sign_in: Option<SignInConfig>,
}

/// What `--login` / `--logout` run with.
#[derive(Debug, Clone)]
pub(crate) struct SignInConfig {
    pub flags: SignIn,
    /// `--issuer`, else `CODEX_IMAGEN_ISSUER`, else Codex's issuer; no trailing `/`.
    pub issuer: String,
    pub no_browser: bool,
    pub force: bool,
    /// `--timeout` (or its aliases), else 600 s.
    pub timeout_ms: u64,
}

impl Config {
    /// The engine every mode of this command line runs on: the snapshot, the credentials and
    /// the backend it resolved to.
    pub(crate) fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            env: self.env.clone(),
            auth: self.auth.clone(),
            base_url: self.base_url.clone(),
            history: self
                .history
                .then(|| self.data_dir.join(crate::output::history::FILE_NAME)),
            pool: self.pool.clone(),
            data_dir: Some(self.data_dir.clone()),
            ..EngineSettings::new(self.env.clone())
        }
    }
}

/// What `--batch`, `--jobs`, `--count`, `--results` and `--fresh` ask for.
#[derive(Debug, Clone)]
pub(crate) struct Many {
    /// `--batch` as typed (`-`: stdin); None: `--count` alone, for the one prompt.
    pub batch: Option<String>,
    pub jobs: usize,
    pub count: u32,
    /// `--results`, resolved against `--cwd`.
    pub results: Option<PathBuf>,
    pub fresh: bool,
}

/// Resolve `args` (already validated into `checked`) against `env`, the process environment.
pub(crate) fn resolve(args: Args, checked: Validated, env: Environment) -> Result<Config> {
    let env = match args.cwd.as_deref() {
        Some(cwd) => {
            let dir = env.resolve(cwd);
            check_directory(&dir)
                .map_err(|err| Error::Input(format!("--cwd {}: {err}", dir.display())))?;
            env.with_cwd(dir)
        }
        None => env,
    };

    let backend = match args
        .backend
        .clone()
        .or_else(|| env.var("CODEX_IMAGEN_BACKEND"))
    {
        None => Backend::Responses,
        Some(b) if b == "responses" => Backend::Responses,
        Some(b) if b == "images" => Backend::Images,
        Some(b) if b == "auto" => Backend::Auto,
        Some(_) => {
            return Err(Error::Usage(
                "--backend must be one of: responses, images, auto".into(),
            ))
        }
    };
    let model = args.model.clone().unwrap_or_else(|| {
        match backend {
            Backend::Responses | Backend::Auto => DEFAULT_RESPONSES_MODEL,
            Backend::Images => DEFAULT_IMAGES_MODEL,
        }
        .to_string()
    });
    let timeout_ms = checked.timeout_ms.unwrap_or_else(|| {
        if paths::is_openclaw_runtime(&env) {
            DEFAULT_OPENCLAW_TIMEOUT_MS
        } else {
            DEFAULT_TIMEOUT_MS
        }
    });
    // An empty path (`--out-dir="$UNSET"`) means "not given", as it did for the Node tool.
    let out_dir = match given(&args.out_dir) {
        Some(dir) => env.resolve(dir),
        None => default_out_dir(&env),
    };

    let mut references: Vec<Reference> = Vec::new();
    for (flag, value) in &args.reference_flags {
        match flag.as_str() {
            "--input-ref" => references.extend(split_commas(value).map(Reference::classify)),
            "--image-url" => references.push(Reference::Url(value.clone())),
            _ => references.extend(split_commas(value).map(|p| Reference::Path(p.to_string()))),
        }
    }

    let count = checked.count.unwrap_or(1);
    let many = (checked.batch.is_some() || count > 1).then(|| Many {
        batch: checked.batch.clone(),
        jobs: checked.jobs.map_or(DEFAULT_JOBS, |j| j as usize),
        count,
        results: given(&args.results).map(|p| env.resolve(p)),
        fresh: args.fresh,
    });
    let metadata = match (checked.metadata, env.var("CODEX_IMAGEN_METADATA")) {
        (Some(mode), _) => mode,
        (None, Some(value)) => MetadataMode::parse(&value).map_err(|_| {
            Error::Usage(format!(
                "CODEX_IMAGEN_METADATA must be one of: none, sidecar, embed (got {value:?})"
            ))
        })?,
        (None, None) => MetadataMode::None,
    };
    let job = JobSpec {
        references,
        image_detail: checked.image_detail,
        output: given(&args.output).map(str::to_string),
        backend,
        model,
        retries: checked.retries.unwrap_or(DEFAULT_RETRIES),
        timeout_ms,
        stream: !args.no_stream,
        force_refresh: args.force_refresh,
        controls: checked.controls,
        mask: checked.mask,
        metadata,
        ..JobSpec::new(String::new(), out_dir, env.cwd().to_path_buf())
    };
    let auth = AuthSettings {
        auth_path: args
            .auth
            .last()
            .filter(|p| !p.is_empty())
            .map(|p| env.resolve(p)),
        profile: args
            .auth_profile
            .as_deref()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .or_else(|| env.first(&["CODEX_IMAGEN_AUTH_PROFILE", "OPENCLAW_AUTH_PROFILE"])),
        refresh_url: args
            .refresh_url
            .clone()
            .or_else(|| env.var("CODEX_REFRESH_TOKEN_URL_OVERRIDE"))
            .unwrap_or_else(|| DEFAULT_REFRESH_URL.to_string()),
        refresh: !args.no_refresh,
    };
    let sign_in = match checked.sign_in.clone() {
        Some(flags) => {
            let issuer = args
                .issuer
                .clone()
                .or_else(|| env.var("CODEX_IMAGEN_ISSUER"))
                .unwrap_or_else(|| DEFAULT_ISSUER.to_string());
            let issuer = issuer.trim().trim_end_matches('/').to_string();
            let scheme_ok = ["http://", "https://"].iter().any(|s| {
                issuer.len() > s.len()
                    && issuer
                        .get(..s.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(s))
            });
            if !scheme_ok {
                return Err(Error::Usage(format!(
                    "--issuer must be an http(s) URL (got {issuer:?})"
                )));
            }
            Some(SignInConfig {
                flags,
                issuer,
                no_browser: args.no_browser,
                force: args.force,
                timeout_ms: checked.timeout_ms.unwrap_or(DEFAULT_SIGN_IN_TIMEOUT_MS),
            })
        }
        None => None,
    };
    Ok(Config {
        sign_in,
        prompt: checked.prompt,
        job,
        auth,
        base_url: args
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
            .trim_end_matches('/')
            .to_string(),
        smoke: args.smoke,
        force_refresh: args.force_refresh,
        refresh_only: args.refresh_only,
        usage: args.usage,
        json: args.json,
        quiet: args.quiet,
        many,
        data_dir: data_dir(args.data_dir.as_deref(), &env),
        history: !args.no_history && history_enabled(env.var("CODEX_IMAGEN_HISTORY").as_deref()),
        // `--history lighthouse dawn`: the words after the flag's one value belong to it.
        history_query: args.history.clone().map(|text| {
            std::iter::once(text)
                .chain(args.words.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ")
        }),
        pool: args.pool.then(|| PoolSettings {
            auth_paths: args
                .auth
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| env.resolve(p))
                .collect(),
            data_dir: data_dir(args.data_dir.as_deref(), &env),
        }),
        env,
    })
}

/// The data directory every mode keeps its state in (the service's jobs and artifacts, and
/// whatever else a mode records): `--data-dir`, else `CODEX_IMAGEN_DATA_DIR`, else the platform
/// data directory + `codex-imagen` (`~/.local/share/codex-imagen` on Linux). Only a path: nothing
/// is created here.
pub(crate) fn data_dir(flag: Option<&str>, env: &Environment) -> PathBuf {
    match flag.filter(|d| !d.is_empty()) {
        Some(dir) => env.resolve(dir),
        None => match env.var("CODEX_IMAGEN_DATA_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => env.resolve(&dir),
            None => dirs::data_dir()
                .map(|d| d.join("codex-imagen"))
                .unwrap_or_else(|| env.home().join(".local/share/codex-imagen")),
        },
    }
}

/// `CODEX_IMAGEN_HISTORY`: `0`, `false`, `no` or `off` turn the history off; anything else
/// (or nothing) leaves it on.
fn history_enabled(value: Option<&str>) -> bool {
    !matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("0" | "false" | "no" | "off")
    )
}

/// What changing into `dir` would have said: the same errors `chdir` gives.
fn check_directory(dir: &std::path::Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    if meta.is_dir() {
        return Ok(());
    }
    #[cfg(unix)]
    return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
    #[cfg(not(unix))]
    return Err(std::io::Error::new(
        std::io::ErrorKind::NotADirectory,
        "Not a directory",
    ));
}

/// A path option's value, unless it is absent or empty.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn split_commas(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// SPEC §9.1, first match wins.
fn default_out_dir(env: &Environment) -> PathBuf {
    if let Some(dir) = env.first(&["CODEX_IMAGEN_OUT_DIR", "OPENCLAW_OUTPUT_DIR"]) {
        return env.resolve(&dir);
    }
    if let Some(agent) = env.first(&["OPENCLAW_AGENT_DIR", "PI_CODING_AGENT_DIR"]) {
        return env.resolve(&agent).join("artifacts").join("codex-imagen");
    }
    if let Some(state) = env.var("OPENCLAW_STATE_DIR") {
        return env.resolve(&state).join("artifacts").join("codex-imagen");
    }
    env.resolve("codex-imagen-output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_refs_are_classified_by_prefix() {
        assert_eq!(
            Reference::classify("HTTPS://x/y.png"),
            Reference::Url("HTTPS://x/y.png".into())
        );
        assert_eq!(
            Reference::classify("Data:image/png;base64,AA"),
            Reference::Url("Data:image/png;base64,AA".into())
        );
        assert_eq!(
            Reference::classify("ftp.png"),
            Reference::Path("ftp.png".into())
        );
    }

    #[test]
    fn a_missing_cwd_reports_what_chdir_would() {
        let err = check_directory(std::path::Path::new("/definitely/not/here")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
