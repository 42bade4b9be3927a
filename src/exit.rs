//! Leaving the process from anywhere (the watchdog, a signal): the one place that knows what
//! must be cleaned up first. Today that is the OpenClaw lock files a refresh may hold.

/// Release held locks, then exit with `code`.
pub fn exit_now(code: i32) -> ! {
    crate::auth::lock::release_all_held();
    crate::progress::finish_live_line();
    std::process::exit(code)
}
