//! A running `--serve` child for tests: spawned with the standard flags (loopback port 0, its
//! own data directory, no retries, the test backend) or from a command the test built, its
//! stderr collected, its address read from the `listening on` line, killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{server_args, Sandbox, Server};

pub struct Svc {
    pub child: Child,
    pub base: String,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub data: PathBuf,
}

impl Svc {
    /// `codex-imagen --serve 127.0.0.1:0 --data-dir DATA --retries 0 ARGS…` against `server`.
    pub fn start(sandbox: &Sandbox, server: &Server, data: &Path, args: &[&str]) -> Svc {
        let sargs = server_args(server);
        let data_text = data.display().to_string();
        let mut all = vec![
            "--serve",
            "127.0.0.1:0",
            "--data-dir",
            &data_text,
            "--retries",
            "0",
        ];
        all.extend_from_slice(args);
        all.extend(sargs.iter().map(String::as_str));
        Svc::spawn(sandbox.command(&all), data)
    }

    /// A service from a command the test built (its stderr piped).
    pub fn spawn(mut command: Command, data: &Path) -> Svc {
        let mut child = command.spawn().expect("spawn the service");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let Ok(base) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "the service did not start:\n{}",
                lines.lock().unwrap().join("\n")
            );
        };
        Svc {
            child,
            base,
            lines,
            data: data.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr().rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling a child this test spawned.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// SIGTERM, then the exit code (killed after 30 s).
    pub fn terminate(&mut self) -> i32 {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("the service did not stop:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll a job until `done` says so (20 s at most).
pub async fn job_until(svc: &Svc, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let response = reqwest::get(svc.url(&format!("/v1/jobs/{id}")))
            .await
            .unwrap();
        let status = response.status().as_u16();
        let job: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{job}");
        if done(&job) {
            return job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "job never got there: {job}\n{}",
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A job in a final state.
pub fn finished(job: &Value) -> bool {
    ["completed", "failed", "cancelled"].contains(&job["status"].as_str().unwrap_or_default())
}
