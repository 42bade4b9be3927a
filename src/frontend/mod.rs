//! What the front-ends share, below all of them: the command line (`args` parses, `validate`
//! checks values, `config` resolves them against `--cwd` and the environment into one
//! [`config::Config`] and the engine's settings), reading the prompt, the async runtime and
//! signals, "did you mean" guesses, how errors name a JSON value's type, and the terminal: stdout reports, the stderr sink with its live line, and the hard
//! watchdog. No front-end imports another; what two of them need lives here.

pub(crate) mod args;
pub(crate) mod config;
pub(crate) mod json_kind;
pub(crate) mod prompt;
pub(crate) mod report;
pub(crate) mod runtime;
pub(crate) mod suggest;
pub(crate) mod terminal;
pub(crate) mod validate;
pub(crate) mod watchdog;
