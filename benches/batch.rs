//! Batch benchmark (issue #12): the release binary's `--batch` against a loopback backend that
//! answers every request after a fixed delay. Run it with
//!
//! ```text
//! cargo bench --bench batch     # about 60 s after the build
//! ```
//!
//! It measures, in one run:
//! 1. `--batch` of 40 jobs with `--jobs 4`, each answered after 1 s: wall time against the
//!    ideal 10 s (ten waves of four);
//! 2. a shell loop of 40 one-shot runs of the same prompts (about 40 s plus 40 start-ups);
//! 3. peak RSS of a batch with four 8 MiB images (decoded size) in flight at once, against
//!    the 40 MiB target. RSS is read with `wait4` through a small launcher process, as in
//!    benches/e2e.rs: Linux carries the parent's RSS high-water mark across `exec`, so the
//!    binary must not be spawned straight from this (large) process.
//!
//! The server listens on 127.0.0.1 only; each connection gets its own thread, sleeps the delay,
//! then streams `response.created`, one `response.output_item.done` and a `response.completed`
//! that repeats the image, in 16 KiB chunks, as the real backend does.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use support::{
    binary, image_events, launcher, noise_png, read_report, read_request, wire, Sandbox,
    LAUNCHER_REPORT,
};

const MIB: usize = 1 << 20;

/// The whole HTTP response for one image, as the pieces the server writes.
fn response(seed: u64, image_len: usize) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(noise_png(seed, image_len));
    let id = format!("ig_{seed}");
    let call = json!({"type": "image_generation_call", "id": id, "status": "completed",
        "revised_prompt": "bench", "result": b64});
    wire(&image_events(&call))
}

/// A backend answering every request after `delay` with one image of `image_len` bytes.
/// Returns its base URL and the request counter.
fn start_server(delay: Duration, image_len: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let url = format!(
        "http://{}/backend-api/codex",
        listener.local_addr().expect("local address")
    );
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let n = counter.fetch_add(1, Ordering::SeqCst) as u64;
            std::thread::spawn(move || {
                if !read_request(&mut stream) {
                    return;
                }
                std::thread::sleep(delay);
                let _ = stream.set_nodelay(true);
                for piece in response(n, image_len) {
                    if stream.write_all(&piece).is_err() {
                        return;
                    }
                }
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let mut sink = [0u8; 1024];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    (url, served)
}

/// `--batch <file> --jobs 4 --out-dir <dir> --quiet --json` against `url`.
fn batch_args<'a>(file: &'a str, dir: &'a str, url: &'a str) -> [&'a str; 10] {
    [
        "--batch",
        file,
        "--jobs",
        "4",
        "--out-dir",
        dir,
        "--quiet",
        "--json",
        "--base-url",
        url,
    ]
}

/// Run the binary with `args` through the launcher: (wall, exit code, peak RSS in KiB).
fn measured_run(sandbox: &Sandbox, args: &[&str]) -> (Duration, i32, u64) {
    let report = sandbox.dir.join("report");
    let mut cmd = sandbox.command(&std::env::current_exe().expect("bench executable"));
    cmd.arg(binary()).args(args).env(LAUNCHER_REPORT, &report);
    let start = Instant::now();
    let status = cmd.status().expect("run the launcher");
    let wall = start.elapsed();
    assert!(status.success(), "launcher failed: {status}");
    let fields = read_report(&report);
    (wall, fields[2] as i32, fields[5] as u64)
}

fn jobs_file(sandbox: &Sandbox, name: &str, n: usize) -> String {
    let text: String = (1..=n)
        .map(|i| format!("{{\"id\": \"j{i}\", \"prompt\": \"bench {i}\"}}\n"))
        .collect();
    std::fs::write(sandbox.dir.join("work").join(name), text).expect("write jobs file");
    name.to_string()
}

fn count_files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == ext))
                .count()
        })
        .unwrap_or(0)
}

fn main() {
    if let Some(report) = std::env::var_os(LAUNCHER_REPORT) {
        launcher(Path::new(&report));
    }
    println!("codex-imagen batch benchmark");
    println!("binary: {}", binary().display());
    println!(
        "cpus: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let sandbox = Sandbox::new("codex-imagen-batch-bench");
    let work = sandbox.dir.join("work");

    // 1. 40 jobs, 1 s each, --jobs 4.
    let (url, served) = start_server(Duration::from_secs(1), 64 * 1024);
    let file = jobs_file(&sandbox, "jobs.jsonl", 40);
    let args = batch_args(&file, "batch", &url);
    let (batch_wall, code, batch_rss) = measured_run(&sandbox, &args);
    assert_eq!(code, 0, "batch run failed");
    assert_eq!(count_files(&work.join("batch"), "png"), 40);
    assert_eq!(served.load(Ordering::SeqCst), 40);

    // The rerun skips everything: no request.
    let (rerun_wall, code, _) = measured_run(&sandbox, &args);
    assert_eq!(code, 0, "rerun failed");
    assert_eq!(served.load(Ordering::SeqCst), 40, "the rerun sent requests");

    // 2. A shell loop of 40 one-shot runs.
    let script = format!(
        "for n in $(seq 40); do \"$0\" --prompt \"bench $n\" -o loop/$n.png --quiet --base-url {url} || exit 1; done"
    );
    let mut cmd = sandbox.command(Path::new("sh"));
    cmd.arg("-c").arg(script).arg(binary());
    let start = Instant::now();
    let status = cmd.status().expect("run the shell loop");
    let loop_wall = start.elapsed();
    assert!(status.success(), "the shell loop failed");
    assert_eq!(count_files(&work.join("loop"), "png"), 40);

    // 3. Four 8 MiB images in flight at once (8 MiB decoded, 10.7 MiB of base64 each), then
    //    four of 8 MiB base64 (6 MiB decoded, benches/e2e.rs's convention), and one one-shot
    //    run of each size for the cost of one job.
    let mut rss_rows = Vec::new();
    for (label, image_len) in [
        ("8 MiB decoded", 8 * MIB),
        ("8 MiB of base64", 8 * MIB / 4 * 3),
    ] {
        let (url, _) = start_server(Duration::from_millis(500), image_len);
        let dir = format!("big-{image_len}");
        let file = jobs_file(&sandbox, "big.jsonl", 4);
        let args = batch_args(&file, &dir, &url);
        let (wall, code, rss) = measured_run(&sandbox, &args);
        assert_eq!(code, 0, "{label} batch failed");
        assert_eq!(count_files(&work.join(&dir), "png"), 4);
        let one = [
            "one image",
            "--out-dir",
            &dir,
            "--quiet",
            "--base-url",
            &url,
        ];
        let (_, code, one_rss) = measured_run(&sandbox, &one);
        assert_eq!(code, 0, "{label} one-shot failed");
        rss_rows.push((label, wall, rss, one_rss));
    }

    let secs = |d: Duration| d.as_secs_f64();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!("| run | wall | peak RSS |");
    println!("| --- | ---: | ---: |");
    println!(
        "| --batch, 40 jobs x 1 s, --jobs 4 (ideal 10 s) | {:.2} s | {:.1} MiB |",
        secs(batch_wall),
        mib(batch_rss)
    );
    println!(
        "| same batch rerun (40 skipped, 0 requests) | {:.2} s | |",
        secs(rerun_wall)
    );
    println!(
        "| shell loop of 40 one-shot runs | {:.2} s | |",
        secs(loop_wall)
    );
    for (label, wall, rss, one_rss) in &rss_rows {
        println!(
            "| --batch, 4 images of {label} in flight, --jobs 4 | {:.2} s | {:.1} MiB |",
            secs(*wall),
            mib(*rss)
        );
        println!(
            "| one-shot run, 1 image of {label} | | {:.1} MiB |",
            mib(*one_rss)
        );
    }
    println!();
    println!(
        "batch vs ideal: {:.2}x; loop / batch: {:.1}x",
        secs(batch_wall) / 10.0,
        secs(loop_wall) / secs(batch_wall),
    );
    for (label, _, rss, _) in &rss_rows {
        println!(
            "peak RSS, 4 x {label}: {:.1} MiB vs the 40 MiB target: {}",
            mib(*rss),
            if mib(*rss) <= 40.0 { "PASS" } else { "FAIL" }
        );
    }
}
