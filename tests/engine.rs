//! The engine through its public API, in process: many jobs on one `Engine` against the loopback
//! backend and token endpoint. These are the guarantees every front-end (batch, service, MCP)
//! builds on: one refresh for many jobs, one refresh for many 401s, prompt cancellation that
//! leaves nothing behind, and concurrent writers that never collide.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_imagen::{
    AuthSettings, CancellationToken, Delays, Engine, EngineSettings, Environment, ErrorKind, Event,
    EventSink, JobSpec, NullSink,
};
use serde_json::{json, Value};
use support::*;

/// A sandbox HOME and an engine pointed at `server`, with delays shortened so nothing sleeps.
struct Setup {
    sandbox: Sandbox,
    engine: Engine,
}

fn engine_for(sandbox: &Sandbox, server: &Server, auth_path: Option<PathBuf>) -> Engine {
    let env = Environment::from_vars(
        [("HOME".to_string(), sandbox.home().display().to_string())],
        sandbox.home(),
        sandbox.work(),
    );
    let settings = EngineSettings {
        auth: AuthSettings {
            auth_path,
            profile: None,
            refresh_url: server.refresh_url(),
            refresh: true,
        },
        base_url: server.base_url(),
        delays: Delays {
            retry_base_ms: 1,
            lock_scale_percent: 1,
            fence_poll_ms: 5,
        },
        ..EngineSettings::new(env)
    };
    Engine::new(settings).expect("engine")
}

fn setup(server: &Server, auth: Value) -> Setup {
    let sandbox = Sandbox::new();
    let path = sandbox.home().join(".codex/auth.json");
    write_json(&path, &auth);
    let engine = engine_for(&sandbox, server, None);
    Setup { sandbox, engine }
}

fn job(setup: &Setup, prompt: &str) -> JobSpec {
    let mut job = JobSpec::new(
        prompt,
        setup.sandbox.path("out"),
        setup.sandbox.work().to_path_buf(),
    );
    job.retries = 0;
    job.timeout_ms = 20_000;
    job
}

/// Run `jobs` at once on the engine, each in its own task.
async fn run_all(
    engine: &Engine,
    jobs: Vec<JobSpec>,
) -> Vec<codex_imagen::Result<codex_imagen::JobResult>> {
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine
                    .run(job, Arc::new(NullSink), CancellationToken::new())
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("job task"));
    }
    results
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files_named(dir, ".tmp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_jobs_with_an_expired_token_make_exactly_one_refresh_request() {
    let server = Server::start();
    let used = single_use_oauth(&server);
    let setup = setup(&server, codex_auth(-60));
    let jobs = (0..8).map(|i| job(&setup, &format!("cat {i}"))).collect();

    let results = run_all(&setup.engine, jobs).await;

    for result in &results {
        let result = result.as_ref().expect("every job succeeds");
        assert_eq!(result.images.len(), 1);
        assert!(result.images[0].path.exists());
    }
    assert_eq!(
        used.lock().unwrap().as_slice(),
        ["refresh-0"],
        "one refresh request"
    );
    let store = read_json(&setup.sandbox.home().join(".codex/auth.json"));
    assert_eq!(store["tokens"]["refresh_token"], "refresh-1");
    let refreshed = results
        .iter()
        .filter(|r| r.as_ref().unwrap().refresh.as_ref().unwrap().refreshed)
        .count();
    assert_eq!(refreshed, 1, "the others found the store already refreshed");
    assert!(temp_files(&setup.sandbox.home()).is_empty());
    assert!(files_named(&setup.sandbox.home(), ".lock").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_jobs_on_one_expired_openclaw_profile_make_one_refresh_request() {
    let server = Server::start();
    let used = single_use_oauth(&server);
    let sandbox = Sandbox::new();
    let store = sandbox
        .home()
        .join(".openclaw/agents/main/agent/auth-profiles.json");
    let expired = (now_secs() - 60) * 1000;
    write_json(
        &store,
        &json!({"version": 1, "profiles": {
            "openai-codex:default": openclaw_profile(&jwt(now_secs() - 60), "refresh-0", "acct-1", expired)
        }}),
    );
    let setup = Setup {
        engine: engine_for(&sandbox, &server, None),
        sandbox,
    };
    let jobs = (0..8).map(|i| job(&setup, &format!("dog {i}"))).collect();

    for result in run_all(&setup.engine, jobs).await {
        result.expect("every job succeeds");
    }
    assert_eq!(used.lock().unwrap().as_slice(), ["refresh-0"]);
    let doc = read_json(&store);
    assert_eq!(
        doc["profiles"]["openai-codex:default"]["refresh"],
        "refresh-1"
    );
    assert!(files_named(&setup.sandbox.home(), ".lock").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_jobs_that_all_get_a_401_make_one_refresh_request() {
    let server = Server::start();
    let used: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let seen = used.clone();
    let setup = setup(&server, codex_auth(3600));
    let original = read_json(&setup.sandbox.home().join(".codex/auth.json"))["tokens"]
        ["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let png = png_bytes(3, 1500);
    let rejected = original.clone();
    server.handle(move |req| {
        if req.path.starts_with("/oauth/token") {
            seen.lock().unwrap().push(req.json()["refresh_token"].to_string());
            return Reply::json(
                200,
                &json!({"access_token": jwt(now_secs() + 7200), "refresh_token": "refresh-1", "expires_in": 7200}),
            );
        }
        if req.header("authorization") == Some(&format!("Bearer {rejected}")) {
            // Held a moment, so the eight requests are all in flight with the old token.
            std::thread::sleep(Duration::from_millis(150));
            return Reply::json(401, &json!({"error": {"message": "token expired"}}));
        }
        image_stream(&[("ig_1", &png)])
    });
    let jobs = (0..8).map(|i| job(&setup, &format!("owl {i}"))).collect();

    let results = run_all(&setup.engine, jobs).await;

    for result in &results {
        result
            .as_ref()
            .expect("every job succeeds after the refresh");
    }
    assert_eq!(used.lock().unwrap().len(), 1, "one refresh for eight 401s");
    let old_token_requests = server
        .requests_to(RESPONSES_PATH)
        .iter()
        .filter(|r| r.header("authorization") == Some(&format!("Bearer {original}")))
        .count();
    assert_eq!(old_token_requests, 8, "all eight were rejected together");
}

/// Records when the first image was saved, and every event type.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl EventSink for Recorder {
    fn event(&self, event: &Event) {
        let name = match event {
            Event::Stage(stage) => format!("stage:{}", stage.as_str()),
            Event::ImageSaved { index, .. } => format!("saved:{index}"),
            Event::Refresh { refreshed, .. } => format!("refresh:{refreshed}"),
            Event::AttemptStarted { attempt, .. } => format!("attempt:{attempt}"),
            _ => return,
        };
        self.events.lock().unwrap().push(name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_mid_refresh_stops_within_100ms_and_leaves_no_lock_or_temp_file() {
    let server = Server::start();
    let sandbox = Sandbox::new();
    let store = sandbox
        .home()
        .join(".openclaw/agents/main/agent/auth-profiles.json");
    write_json(
        &store,
        &json!({"version": 1, "profiles": {
            "openai-codex:default": openclaw_profile(&jwt(now_secs() - 60), "refresh-0", "acct-1", 1_000)
        }}),
    );
    let before = std::fs::read(&store).unwrap();
    // The token endpoint never answers: the refresh locks stay held until the job is cancelled.
    server.enqueue("/oauth/token", silent_reply());
    let engine = engine_for(&sandbox, &server, None);
    let setup = Setup { sandbox, engine };
    let cancel = CancellationToken::new();
    let task = {
        let (engine, job, cancel) = (setup.engine.clone(), job(&setup, "fox"), cancel.clone());
        tokio::spawn(async move { engine.run(job, Arc::new(NullSink), cancel).await })
    };
    let locks_dir = setup.sandbox.home().join(".openclaw/locks/oauth-refresh");
    assert!(
        wait_for(Duration::from_secs(10), || files_named(&locks_dir, ".lock")
            .len()
            == 2),
        "both refresh locks are held while the token request hangs"
    );

    let started = Instant::now();
    cancel.cancel();
    let result = task.await.unwrap();
    let took = started.elapsed();

    assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
    assert!(took < Duration::from_millis(100), "stopped in {took:?}");
    assert!(files_named(&setup.sandbox.home(), ".lock").is_empty());
    assert!(temp_files(&setup.sandbox.home()).is_empty());
    assert_eq!(
        std::fs::read(&store).unwrap(),
        before,
        "the store is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_mid_stream_stops_within_100ms_and_keeps_the_image_it_saved() {
    let server = Server::start();
    let setup = setup(&server, codex_auth(3600));
    let png = png_bytes(5, 4000);
    server.enqueue(
        RESPONSES_PATH,
        Reply::sse()
            .event(&created())
            .event(&image_done("ig_1", &png))
            .sleep_ms(30_000)
            .end(),
    );
    let recorder = Arc::new(Recorder::default());
    let cancel = CancellationToken::new();
    let task = {
        let (engine, job, cancel, sink) = (
            setup.engine.clone(),
            job(&setup, "heron"),
            cancel.clone(),
            recorder.clone(),
        );
        tokio::spawn(async move { engine.run(job, sink, cancel).await })
    };
    let out = setup.sandbox.path("out");
    assert!(wait_for(Duration::from_secs(10), || count_pngs(&out) == 1));

    let started = Instant::now();
    cancel.cancel();
    let result = task.await.unwrap();
    let took = started.elapsed();

    assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
    assert!(took < Duration::from_millis(100), "stopped in {took:?}");
    let saved = files_named(&out, ".png");
    assert_eq!(saved.len(), 1);
    assert_eq!(std::fs::read(&saved[0]).unwrap(), png);
    assert!(temp_files(&out).is_empty());
    let events = recorder.events.lock().unwrap().clone();
    assert!(events.contains(&"saved:0".to_string()), "{events:?}");
    assert!(events.contains(&"stage:accepted".to_string()), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_jobs_writing_the_same_file_at_the_same_moment_both_succeed() {
    let server = Server::start();
    let setup = setup(&server, codex_auth(3600));
    let (first, second) = (png_bytes(1, 6 << 20), png_bytes(2, 6 << 20));
    for png in [&first, &second] {
        server.enqueue(RESPONSES_PATH, image_stream(&[("ig_same", png)]));
    }
    let jobs = (0..2)
        .map(|_| {
            let mut job = job(&setup, "twins");
            job.output = Some("shared/twin.png".to_string());
            job
        })
        .collect();

    let results = run_all(&setup.engine, jobs).await;

    let target = setup.sandbox.work().join("shared/twin.png");
    for result in &results {
        let result = result.as_ref().expect("both jobs succeed");
        assert_eq!(result.images[0].path, target);
    }
    let bytes = std::fs::read(&target).unwrap();
    assert!(
        bytes == first || bytes == second,
        "one whole image, not a mix"
    );
    assert!(temp_files(&setup.sandbox.work()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_paths_resolve_against_the_jobs_base_directory_not_the_process() {
    let server = Server::start();
    let setup = setup(&server, codex_auth(3600));
    let png = png_bytes(9, 1200);
    server.enqueue(RESPONSES_PATH, image_stream(&[("ig_1", &png)]));
    let base = setup.sandbox.path("elsewhere");
    std::fs::create_dir_all(base.join("refs")).unwrap();
    std::fs::write(base.join("refs/ref.png"), png_bytes(4, 300)).unwrap();
    let mut job = job(&setup, "a copy");
    job.base_dir = base.clone();
    job.output = Some("result.png".into());
    job.references = vec![codex_imagen::Reference::Path("refs/ref.png".into())];

    let result = setup
        .engine
        .run(job, Arc::new(NullSink), CancellationToken::new())
        .await
        .expect("job succeeds");

    assert_eq!(result.images[0].path, base.join("result.png"));
    let body = server.requests_to(RESPONSES_PATH)[0].json();
    let content = &body["input"][0]["content"];
    assert!(content[1]["image_url"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
}
