//! Diagnostics on stderr: progress lines (silenced by `--quiet`), verbose details, and warnings
//! that are always shown. A closed stderr is never a crash.

use std::io::Write;

#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub quiet: bool,
    pub verbose: bool,
}

impl Progress {
    pub fn new(quiet: bool, verbose: bool) -> Self {
        Progress { quiet, verbose }
    }

    /// A `codex-imagen: ...` progress line.
    pub fn info(&self, message: &str) {
        if !self.quiet {
            write_line(message);
        }
    }

    /// Only with `--verbose`.
    pub fn verbose(&self, message: &str) {
        if self.verbose {
            write_line(message);
        }
    }

    /// Always shown.
    pub fn warn(&self, message: &str) {
        write_line(message);
    }
}

fn write_line(message: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{message}");
}
