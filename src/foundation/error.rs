//! Every failure the engine and the CLI can report, its kind, and the exit code each maps to.
//!
//! Decisions (fall back to the next store, retry, which fix line to print, stop a batch on the
//! quota) match on variants and kinds, never on message text. `exit_code()` matches every variant
//! explicitly: adding a variant forces a decision about its exit code (SPEC §16). Messages are
//! what the user reads after `Error: `; none may contain a token.

/// The result type used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why credentials could not be read from a store.
/// An error the backend reported inside a response or stream (SPEC §11); collected by
/// `backend/errors.rs`, carried by [`Error::GenerationFailed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    pub source: String,
    pub code: Option<String>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub param: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthErrorKind {
    /// No store was found, or none is usable.
    NotFound,
    /// The store exists but cannot be read (permissions, I/O, a locked database).
    Unreadable,
    /// The store is not valid JSON, or not a credential database.
    Invalid,
    /// The requested profile or provider entry is not in the store.
    ProfileNotFound,
    /// The credential entry has no access token.
    NoAccessToken,
    /// The credential entry has no ChatGPT account id.
    NoAccountId,
    /// `--login`: the issuer refused the sign-in, or it could not be completed.
    SignInFailed,
}

/// Why a refresh failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshErrorKind {
    /// `refresh_token_expired`.
    Expired,
    /// `refresh_token_reused`: another client spent the single-use token.
    Reused,
    /// `refresh_token_invalidated`.
    Revoked,
    /// Any other 401 from the token endpoint.
    Rejected,
    /// A non-2xx answer other than 401, or a 2xx that is not JSON.
    Failed,
    /// OpenClaw's own refresh of this profile failed and spent its refresh token (a failed fence).
    OpenClawFailed,
    /// A refresh lock, or OpenClaw's pending refresh, did not clear in time.
    LockTimeout,
    /// The token endpoint could not be reached, or did not answer in time.
    Network,
    /// `--no-refresh`, or the store has no refresh token.
    Unavailable,
    /// The store could not be re-read or written during the refresh.
    Store,
}

impl RefreshErrorKind {
    /// Refresh failures after which the next discovered store is worth trying (SPEC §15): the
    /// token in this store is spent or refused, so only another store can help.
    pub(crate) fn store_is_spent(self) -> bool {
        match self {
            RefreshErrorKind::Expired
            | RefreshErrorKind::Reused
            | RefreshErrorKind::Revoked
            | RefreshErrorKind::Rejected
            | RefreshErrorKind::Failed
            | RefreshErrorKind::OpenClawFailed => true,
            RefreshErrorKind::LockTimeout
            | RefreshErrorKind::Network
            | RefreshErrorKind::Unavailable
            | RefreshErrorKind::Store => false,
        }
    }
}

/// When the subscription's image quota resets, from a `usage_limit_reached` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLimit {
    pub resets_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line or job specification: exit 2.
    #[error("{0}")]
    Usage(String),

    /// Auth discovery, parsing or profile selection failed.
    #[error("{message}")]
    Auth {
        kind: AuthErrorKind,
        message: String,
    },

    /// OAuth refresh failed (after every recovery path was tried).
    #[error("{message}")]
    Refresh {
        kind: RefreshErrorKind,
        message: String,
    },

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
    Http {
        status: u16,
        message: String,
        /// Set when the answer was the subscription's usage limit (429 `usage_limit_reached`).
        usage_limit: Option<UsageLimit>,
        /// The answer's `Retry-After` header in seconds, when it had one.
        retry_after_secs: Option<u64>,
    },

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

    /// The backend answered 2xx with a body that is not what the request expects.
    #[error("{0}")]
    BadResponse(String),

    /// The response finished with the model's words and no image (a refusal, a question).
    #[error("{message}")]
    Refused {
        message: String,
        seen_event_types: Vec<String>,
    },

    /// The per-attempt timer fired before any image was saved.
    #[error("{0}")]
    Timeout(String),

    /// The job's cancellation token fired; images saved before it stay on disk.
    #[error("{0}")]
    Cancelled(String),
}

/// What kind of failure an [`Error`] is, for front-ends that report or act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Usage,
    Auth,
    Refresh,
    Input,
    Io,
    InvalidImage,
    Http,
    UsageLimit,
    Transport,
    Stream,
    NoImage,
    BadResponse,
    Refused,
    Timeout,
    Cancelled,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Auth => "auth",
            ErrorKind::Refresh => "refresh",
            ErrorKind::Input => "input",
            ErrorKind::Io => "io",
            ErrorKind::InvalidImage => "invalid_image",
            ErrorKind::Http => "http",
            ErrorKind::UsageLimit => "usage_limit",
            ErrorKind::Transport => "transport",
            ErrorKind::Stream => "stream",
            ErrorKind::NoImage => "no_image",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Refused => "refused",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Timeout(_) => 124,
            Error::Auth { .. } => 1,
            Error::Refresh { .. } => 1,
            Error::Input(_) => 1,
            Error::Io(_) => 1,
            Error::InvalidImage(_) => 1,
            Error::Http { .. } => 1,
            Error::Transport(_) => 1,
            Error::Stream(_) => 1,
            Error::GenerationFailed { .. } => 1,
            Error::BadResponse(_) => 1,
            Error::Refused { .. } => 1,
            Error::Cancelled(_) => 1,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_) => ErrorKind::Usage,
            Error::Auth { .. } => ErrorKind::Auth,
            Error::Refresh { .. } => ErrorKind::Refresh,
            Error::Input(_) => ErrorKind::Input,
            Error::Io(_) => ErrorKind::Io,
            Error::InvalidImage(_) => ErrorKind::InvalidImage,
            Error::Http {
                usage_limit: Some(_),
                ..
            } => ErrorKind::UsageLimit,
            Error::Http { .. } => ErrorKind::Http,
            Error::Transport(_) => ErrorKind::Transport,
            Error::Stream(_) => ErrorKind::Stream,
            Error::GenerationFailed { .. } => ErrorKind::NoImage,
            Error::BadResponse(_) => ErrorKind::BadResponse,
            Error::Refused { .. } => ErrorKind::Refused,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Cancelled(_) => ErrorKind::Cancelled,
        }
    }

    /// When the subscription's quota resets, if this is the usage limit.
    pub fn usage_limit(&self) -> Option<&UsageLimit> {
        match self {
            Error::Http { usage_limit, .. } => usage_limit.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl std::fmt::Display, err: std::io::Error) -> Self {
        Error::Io(format!("{context}: {err}"))
    }

    pub(crate) fn auth(kind: AuthErrorKind, message: impl Into<String>) -> Self {
        Error::Auth {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn refresh(kind: RefreshErrorKind, message: impl Into<String>) -> Self {
        Error::Refresh {
            kind,
            message: message.into(),
        }
    }

    /// True when this store cannot give usable credentials, so the next discovered one is worth
    /// trying (SPEC §15).
    pub(crate) fn worth_falling_back(&self) -> bool {
        match self {
            Error::Refresh { kind, .. } => kind.store_is_spent(),
            Error::Auth { kind, .. } => *kind == AuthErrorKind::NoAccountId,
            Error::Usage(_)
            | Error::Input(_)
            | Error::Io(_)
            | Error::InvalidImage(_)
            | Error::Http { .. }
            | Error::Transport(_)
            | Error::Stream(_)
            | Error::GenerationFailed { .. }
            | Error::BadResponse(_)
            | Error::Refused { .. }
            | Error::Timeout(_)
            | Error::Cancelled(_) => false,
        }
    }
}
