//! The C allocator's settings for this process (glibc only; elsewhere nothing changes).
//!
//! Every image streaming in holds hyper's read buffer for its connection: up to 400 KiB,
//! which reqwest gives no way to bound. glibc serves such blocks from per-thread arenas once a
//! freed one has raised its mmap threshold, and the arenas keep what was freed: with 64
//! images of 8 MiB in flight through the service, peak RSS varied from 59.6 to 66.7 MiB over
//! runs of `cargo bench --bench pool`. One arena per core (two here) and a fixed mmap
//! threshold (blocks of 128 KiB and more are mapped, and unmapped when freed) brought it to
//! 53.1–55.0 MiB with the same wall time. A user's own `MALLOC_ARENA_MAX` /
//! `MALLOC_MMAP_THRESHOLD_` win.

/// Apply the settings above, once, before any thread starts.
pub(crate) fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only changes allocator parameters (under glibc's own lock); it is
            // called first thing, before the runtimes start their threads.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, threads.clamp(2, 8) as libc::c_int) };
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: as above.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
        }
    }
}
