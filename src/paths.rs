//! Paths and environment: `~` expansion, resolution against the working directory, and the
//! OpenClaw directory layout (SPEC §2).
//!
//! Every path that comes from a flag or an environment variable goes through [`resolve`], so a
//! relative path always means "relative to the working directory after `--cwd`".

use std::path::{Component, Path, PathBuf};

/// An environment variable, trimmed; `None` when unset or blank (SPEC §2).
pub(crate) fn env_nonempty(name: &str) -> Option<String> {
    let value = std::env::var_os(name)?;
    let value = value.to_string_lossy();
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// The first of `names` that is set and non-blank.
pub(crate) fn first_env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| env_nonempty(name))
}

pub(crate) fn home_dir() -> PathBuf {
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("/"))
}

/// `~` alone and a leading `~/` or `~\` mean the home directory.
pub(crate) fn expand_home(input: &str) -> PathBuf {
    if input == "~" {
        return home_dir();
    }
    if let Some(rest) = input
        .strip_prefix("~/")
        .or_else(|| input.strip_prefix("~\\"))
    {
        return home_dir().join(rest);
    }
    PathBuf::from(input)
}

/// Absolute, lexically normalised path for a user-supplied string.
pub(crate) fn resolve(input: &str) -> PathBuf {
    absolute(&expand_home(input))
}

/// Join a relative path onto the current directory and fold `.` and `..`, like Node's
/// `path.resolve`: reported paths must match what the Node tool printed.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    normalize(&joined)
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
    pub oauth_dir: PathBuf,
}

impl OpenClawDirs {
    pub fn from_env() -> Self {
        let state_dir = match env_nonempty("OPENCLAW_STATE_DIR") {
            Some(dir) => resolve(&dir),
            None => {
                let current = home_dir().join(".openclaw");
                let legacy = home_dir().join(".clawdbot");
                if !is_dir(&current) && is_dir(&legacy) {
                    legacy
                } else {
                    current
                }
            }
        };
        let main_agent_dir = state_dir.join("agents").join("main").join("agent");
        let agent_dir = first_env(&["OPENCLAW_AGENT_DIR", "PI_CODING_AGENT_DIR"])
            .map(|dir| resolve(&dir))
            .unwrap_or_else(|| main_agent_dir.clone());
        let config_path = env_nonempty("OPENCLAW_CONFIG_PATH")
            .map(|p| resolve(&p))
            .unwrap_or_else(|| state_dir.join("openclaw.json"));
        let oauth_dir = env_nonempty("OPENCLAW_OAUTH_DIR")
            .map(|p| resolve(&p))
            .unwrap_or_else(|| state_dir.join("credentials"));
        OpenClawDirs {
            state_dir,
            config_path,
            agent_dir,
            main_agent_dir,
            oauth_dir,
        }
    }

    pub fn main_auth_profiles(&self) -> PathBuf {
        self.main_agent_dir.join("auth-profiles.json")
    }
}

/// OpenClaw runtime detection (SPEC §9.3): only changes the default timeout.
pub(crate) fn is_openclaw_runtime() -> bool {
    let by_env = [
        "OPENCLAW_AGENT_DIR",
        "PI_CODING_AGENT_DIR",
        "OPENCLAW_STATE_DIR",
        "OPENCLAW_OUTPUT_DIR",
    ]
    .iter()
    .any(|name| env_nonempty(name).is_some());
    by_env
        || std::env::current_dir()
            .map(|cwd| {
                cwd.components().any(|c| {
                    matches!(c, Component::Normal(name) if name == ".openclaw" || name == ".clawdbot")
                })
            })
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_dot_and_dotdot() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }

    #[test]
    fn tilde_expands_only_at_the_start() {
        assert_eq!(expand_home("~"), home_dir());
        assert_eq!(expand_home("~/x"), home_dir().join("x"));
        assert_eq!(expand_home("~\\x"), home_dir().join("x"));
        assert_eq!(expand_home("a/~/x"), PathBuf::from("a/~/x"));
        assert_eq!(expand_home("~user/x"), PathBuf::from("~user/x"));
    }
}
