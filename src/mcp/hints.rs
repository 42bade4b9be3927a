//! What an engine error means when an MCP host started the server.
//!
//! The engine's messages are written for a person at a shell. Under `--mcp` one failure has a
//! cause the shell never shows: MCP hosts start servers with an environment of their own choosing
//! (Codex CLI passes `HOME`, `PATH`, `LANG`, `SHELL`, `TERM` and a few CA variables), so
//! `CODEX_HOME`, `CODEX_IMAGEN_*` and `OPENCLAW_*` set in the user's shell never arrive, and a
//! store outside the default places is not found. That error gets the two fixes.

use crate::foundation::error::{AuthErrorKind, Error};

/// The text an MCP result shows for `error`.
pub(super) fn message(error: &Error) -> String {
    match error {
        Error::Auth {
            kind: AuthErrorKind::NotFound,
            message,
        } => format!("{message}\n{NOT_PASSED}"),
        other => other.to_string(),
    }
}

const NOT_PASSED: &str = "\
note: MCP hosts may not pass CODEX_HOME (or CODEX_IMAGEN_*/OPENCLAW_* variables) to the servers \
they start; Codex CLI passes only HOME, PATH, LANG, SHELL, TERM and a few others.
fix: in Codex's config.toml add `env_vars = [\"CODEX_HOME\"]` to [mcp_servers.codex-imagen], \
or name the file in the server's args: [\"--mcp\", \"--auth\", \"/path/to/auth.json\"]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_store_gets_the_host_environment_fix() {
        let missing = Error::auth(AuthErrorKind::NotFound, "No auth JSON found. Tried:\n  - x");
        let text = message(&missing);
        assert!(text.starts_with(
            "No auth JSON found. Tried:\n  - x\nnote: MCP hosts may not pass CODEX_HOME"
        ));
        assert!(text.contains("env_vars = [\"CODEX_HOME\"]"));
        assert!(text.contains("--auth"));
        let other = Error::auth(AuthErrorKind::Invalid, "bad JSON");
        assert_eq!(message(&other), "bad JSON");
    }
}
