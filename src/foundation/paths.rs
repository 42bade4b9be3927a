//! Paths and environment: the environment snapshot a process takes once ([`Environment`]), `~`
//! expansion, resolution against a base directory, and the OpenClaw directory layout (SPEC §2).
//!
//! Nothing in the engine reads the process environment or working directory: the front-end
//! captures them once, and `--cwd` only changes the snapshot's base directory, never the
//! process's. Every path that comes from a flag or an environment variable goes through
//! [`Environment::resolve`], so a relative path always means "relative to `--cwd`".

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// The environment variables, home directory and base directory, read once.
#[derive(Debug, Clone)]
pub struct Environment {
    vars: HashMap<String, String>,
    home: PathBuf,
    cwd: PathBuf,
}

impl Environment {
    /// This process's environment and working directory, now.
    pub fn capture() -> Self {
        let vars = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        Environment {
            vars,
            home: dirs::home_dir().unwrap_or_else(|| PathBuf::from("/")),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }

    /// An environment made of exactly these variables (tests, embedding).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
        home: PathBuf,
        cwd: PathBuf,
    ) -> Self {
        Environment {
            vars: vars.into_iter().collect(),
            home,
            cwd: normalize(&cwd),
        }
    }

    /// The same environment with another base directory (`--cwd`).
    pub fn with_cwd(mut self, cwd: PathBuf) -> Self {
        self.cwd = normalize(&cwd);
        self
    }

    /// A variable, trimmed; `None` when unset or blank (SPEC §2).
    pub(crate) fn var(&self, name: &str) -> Option<String> {
        let trimmed = self.vars.get(name)?.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_string())
    }

    /// The first of `names` that is set and non-blank.
    pub(crate) fn first(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|name| self.var(name))
    }

    pub(crate) fn home(&self) -> &Path {
        &self.home
    }

    /// The base directory relative paths resolve against.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// `~` alone and a leading `~/` or `~\` mean the home directory.
    pub(crate) fn expand_home(&self, input: &str) -> PathBuf {
        if input == "~" {
            return self.home.clone();
        }
        if let Some(rest) = input
            .strip_prefix("~/")
            .or_else(|| input.strip_prefix("~\\"))
        {
            return self.home.join(rest);
        }
        PathBuf::from(input)
    }

    /// Absolute, lexically normalised path for a user-supplied string.
    pub(crate) fn resolve(&self, input: &str) -> PathBuf {
        resolve_from(&self.cwd, &self.expand_home(input))
    }
}

/// Join a relative path onto `base` and fold `.` and `..`, like Node's `path.resolve`: reported
/// paths must match what the Node tool printed.
pub(crate) fn resolve_from(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        normalize(path)
    } else {
        normalize(&base.join(path))
    }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `.<name>.<pid>.<epoch ms>.<random>.tmp`: a temporary name beside a file that is unique per
/// write, not just per process, so concurrent writers of one process never share one.
pub(crate) fn unique_temp_name(name: &str) -> String {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!(
        ".{name}.{}.{}.{}.tmp",
        std::process::id(),
        chrono::Utc::now().timestamp_millis(),
        &unique[..12]
    )
}

/// The process id in the name of a temporary file this tool writes: a spill file,
/// `.image.<pid>.<ms>.<random>.tmp`, or an atomic write's sibling, `.<name>.<pid>.<ms>.<random>.tmp`
/// ([`unique_temp_name`]). A SIGKILL between creating either and its rename leaves it behind.
pub(crate) fn temp_name_pid(name: &str) -> Option<i64> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = rest.rsplitn(4, '.');
    let random = parts.next()?;
    let ms = parts.next()?;
    let pid = parts.next()?;
    let stem = parts.next()?;
    let alnum = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (alnum(random) && digits(ms) && !stem.is_empty()).then_some(())?;
    digits(pid).then(|| pid.parse().ok())?
}

pub(crate) fn is_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file())
        .unwrap_or(false)
}

fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}

/// Where OpenClaw keeps its state, config, agent and OAuth files on this machine.
#[derive(Debug, Clone)]
pub struct OpenClawDirs {
    pub state_dir: PathBuf,
    pub config_path: PathBuf,
    /// The active agent's directory (env override, else the main agent's).
    pub agent_dir: PathBuf,
    /// Always `<state>/agents/main/agent`.
    pub main_agent_dir: PathBuf,
    /// Where OpenClaw 2026.8+ keeps the shared store (`resolveSharedMainAuthAgentDir`):
    /// `OPENCLAW_AGENT_DIR`, else the main agent; `PI_CODING_AGENT_DIR` names an ordinary agent.
    pub shared_main_dir: PathBuf,
    pub oauth_dir: PathBuf,
}

impl OpenClawDirs {
    pub fn from_env(env: &Environment) -> Self {
        let state_dir = match env.var("OPENCLAW_STATE_DIR") {
            Some(dir) => env.resolve(&dir),
            None => {
                let current = env.home().join(".openclaw");
                let legacy = env.home().join(".clawdbot");
                if !is_dir(&current) && is_dir(&legacy) {
                    legacy
                } else {
                    current
                }
            }
        };
        let main_agent_dir = state_dir.join("agents").join("main").join("agent");
        let agent_dir = env
            .first(&["OPENCLAW_AGENT_DIR", "PI_CODING_AGENT_DIR"])
            .map(|dir| env.resolve(&dir))
            .unwrap_or_else(|| main_agent_dir.clone());
        let config_path = env
            .var("OPENCLAW_CONFIG_PATH")
            .map(|p| env.resolve(&p))
            .unwrap_or_else(|| state_dir.join("openclaw.json"));
        let oauth_dir = env
            .var("OPENCLAW_OAUTH_DIR")
            .map(|p| env.resolve(&p))
            .unwrap_or_else(|| state_dir.join("credentials"));
        let shared_main_dir = env
            .var("OPENCLAW_AGENT_DIR")
            .map(|dir| env.resolve(&dir))
            .unwrap_or_else(|| main_agent_dir.clone());
        OpenClawDirs {
            state_dir,
            config_path,
            agent_dir,
            main_agent_dir,
            shared_main_dir,
            oauth_dir,
        }
    }

    pub fn main_auth_profiles(&self) -> PathBuf {
        self.main_agent_dir.join("auth-profiles.json")
    }
}

/// OpenClaw runtime detection (SPEC §9.3): only changes the default timeout.
pub(crate) fn is_openclaw_runtime(env: &Environment) -> bool {
    let by_env = [
        "OPENCLAW_AGENT_DIR",
        "PI_CODING_AGENT_DIR",
        "OPENCLAW_STATE_DIR",
        "OPENCLAW_OUTPUT_DIR",
    ]
    .iter()
    .any(|name| env.var(name).is_some());
    by_env
        || env.cwd().components().any(
            |c| matches!(c, Component::Normal(name) if name == ".openclaw" || name == ".clawdbot"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment::from_vars([], PathBuf::from("/home/me"), PathBuf::from("/work"))
    }

    #[test]
    fn normalize_folds_dot_and_dotdot() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }

    #[test]
    fn tilde_expands_only_at_the_start() {
        let env = env();
        assert_eq!(env.expand_home("~"), PathBuf::from("/home/me"));
        assert_eq!(env.expand_home("~/x"), PathBuf::from("/home/me/x"));
        assert_eq!(env.expand_home("~\\x"), PathBuf::from("/home/me/x"));
        assert_eq!(env.expand_home("a/~/x"), PathBuf::from("a/~/x"));
        assert_eq!(env.expand_home("~user/x"), PathBuf::from("~user/x"));
    }

    #[test]
    fn relative_paths_resolve_against_the_snapshot_not_the_process() {
        let env = env().with_cwd(PathBuf::from("/elsewhere/./job"));
        assert_eq!(
            env.resolve("a/../b.png"),
            PathBuf::from("/elsewhere/job/b.png")
        );
        assert_eq!(env.resolve("~/c"), PathBuf::from("/home/me/c"));
        let blank = Environment::from_vars(
            [
                ("X".to_string(), "  ".to_string()),
                ("Y".into(), " y ".into()),
            ],
            PathBuf::from("/"),
            PathBuf::from("/"),
        );
        assert_eq!(blank.var("X"), None);
        assert_eq!(blank.first(&["X", "Y"]).as_deref(), Some("y"));
    }

    #[test]
    fn the_pid_is_read_back_from_both_kinds_of_temporary_name() {
        assert_eq!(temp_name_pid(".image.12.3.x.tmp"), Some(12));
        assert_eq!(temp_name_pid(".pic.png.12.3.x.tmp"), Some(12));
        assert_eq!(temp_name_pid(".image.12.3.tmp"), None);
        assert_eq!(temp_name_pid(".image.12.3.x.y.tmp"), None);
        assert_eq!(temp_name_pid("pic.png.12.3.x.tmp"), None);
        let own = unique_temp_name("a.png");
        assert_eq!(temp_name_pid(&own), Some(i64::from(std::process::id())));
    }
}
