//! Other processes: whether one is alive, and when it started (OpenClaw's lock files and the
//! stale spill-file sweep both ask).

/// Signal 0: EPERM means the process exists but is not ours.
#[cfg(unix)]
pub fn pid_alive(pid: i64) -> bool {
    if pid <= 0 || pid > i32::MAX as i64 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(windows)]
pub fn pid_alive(pid: i64) -> bool {
    // Without a cheap liveness probe, age is what ends a lock on Windows.
    pid > 0
}

/// Field 22 of `/proc/<pid>/stat`, exactly as OpenClaw computes it; `None` elsewhere.
#[cfg(target_os = "linux")]
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
pub fn process_start_time(_pid: u32) -> Option<u64> {
    None
}
