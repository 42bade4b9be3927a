//! Every failure the tool can report, and the exit code each one maps to.
//!
//! `exit_code()` matches every variant explicitly: adding a variant forces a decision about its
//! exit code (SPEC §16). Messages are what the user reads after `Error: `; none may contain a token.

use crate::backend::errors::BackendError;

/// The result type used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line: exit 2.
    #[error("{0}")]
    Usage(String),

    /// Auth discovery, parsing or profile selection failed.
    #[error("{0}")]
    Auth(String),

    /// OAuth refresh failed (after every recovery path was tried).
    #[error("{message}")]
    Refresh { message: String },

    /// A local input (prompt file, reference image, `--cwd`) could not be used.
    #[error("{0}")]
    Input(String),

    /// Writing an image or another local file failed.
    #[error("{0}")]
    Io(String),

    /// The backend sent an image whose base64 does not decode; nothing was written for it.
    #[error("{0}")]
    InvalidImage(String),

    /// The backend answered with a non-2xx status.
    #[error("{message}")]
    Http { status: u16, message: String },

    /// The connection failed before any image was saved (refused, reset, DNS, TLS).
    #[error("{0}")]
    Transport(String),

    /// The stream closed or broke after at least one image was saved.
    #[error("stream error: {0}")]
    Stream(String),

    /// The response finished without any image.
    #[error("{message}")]
    GenerationFailed {
        message: String,
        seen_event_types: Vec<String>,
        backend_errors: Vec<BackendError>,
    },

    /// The per-attempt timer fired before any image was saved.
    #[error("{0}")]
    Timeout(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Timeout(_) => 124,
            Error::Auth(_) => 1,
            Error::Refresh { .. } => 1,
            Error::Input(_) => 1,
            Error::Io(_) => 1,
            Error::InvalidImage(_) => 1,
            Error::Http { .. } => 1,
            Error::Transport(_) => 1,
            Error::Stream(_) => 1,
            Error::GenerationFailed { .. } => 1,
        }
    }

    pub(crate) fn io(context: impl std::fmt::Display, err: std::io::Error) -> Self {
        Error::Io(format!("{context}: {err}"))
    }
}
