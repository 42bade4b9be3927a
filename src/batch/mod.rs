//! `codex-imagen --batch <file>`: many prompts in one process on one shared Engine.
//!
//! Design, in the order a run goes:
//! 1. [`input`] reads the whole file (or stdin) and validates every line against the
//!    command-line template; any problem ends the run with exit 2 before a request is sent.
//! 2. [`results`] opens the results file (repairing a torn tail) and, unless `--fresh`, finds
//!    the jobs whose earlier images still verify: those are skipped, not sent, and get no new
//!    line. A job with no such line whose images are on disk under its names anyway (a run
//!    killed between saving and recording) is adopted: recorded `adopted`, not sent.
//! 3. [`run`] schedules the rest, `--jobs` at a time, writing one results line per ending.
//! 4. [`display`] shows progress on stderr and saved paths (or the `--json` summary) on stdout.
//!
//! [`signals`] turns SIGINT/SIGTERM into a channel the scheduler reads. Only the Engine API
//! names in `crate::engine` are used, and all output goes through writers passed in
//! ([`BatchIo`]) so tests run whole batches in-process and read what a user would see.

pub(crate) mod controls;
pub(crate) mod display;
pub(crate) mod input;
pub(crate) mod resolve;
pub(crate) mod results;
pub(crate) mod run;
pub(crate) mod signals;
pub(crate) mod start;

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use chrono::{DateTime, Utc};
use indicatif::ProgressDrawTarget;
use serde::Serialize;

pub(crate) use self::signals::ShutdownSignals;
use self::{
    display::{Display, SharedWriter},
    input::{Job, ParseContext},
    results::{ImageRecord, ResultRecord, ResultsFile, ResumeIndex, Status},
    run::{iso, rerun_advice, RunReport, Scheduler},
};
use crate::engine::shared::Engine;
use crate::foundation::job::JobSpec;
use crate::frontend::validate;

pub(crate) const MAX_JOBS: usize = validate::MAX_JOBS as usize;
pub(crate) use validate::{DEFAULT_JOBS, MAX_COUNT};

/// Where the batch comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BatchSource {
    /// A path as given on the command line; relative ones resolve against the template's
    /// `base_dir` (the working directory / `--cwd`).
    File(PathBuf),
    /// `--batch -`
    Stdin,
}

impl BatchSource {
    /// `-` means stdin, as for `--prompt-file -`.
    pub(crate) fn from_arg(arg: &str) -> BatchSource {
        if arg == "-" {
            BatchSource::Stdin
        } else {
            BatchSource::File(PathBuf::from(arg))
        }
    }
}

/// What the command line says about a batch run.
#[derive(Clone, Debug)]
pub(crate) struct BatchOptions {
    pub(crate) source: BatchSource,
    /// Every flag that a line may override, already parsed; `base_dir` is the working
    /// directory, `out_dir` the default output directory. `output` must be None.
    pub(crate) template: JobSpec,
    /// `--jobs`, 1 to 16.
    pub(crate) jobs: usize,
    /// `--count`, 1 to 10.
    pub(crate) count: u32,
    /// `--results`; None: `<out_dir>/results.jsonl`.
    pub(crate) results: Option<PathBuf>,
    pub(crate) fresh: bool,
    pub(crate) json: bool,
    pub(crate) quiet: bool,
}

impl BatchOptions {
    pub(crate) fn new(source: BatchSource, template: JobSpec) -> BatchOptions {
        BatchOptions {
            source,
            template,
            jobs: DEFAULT_JOBS,
            count: 1,
            results: None,
            fresh: false,
            json: false,
            quiet: false,
        }
    }
}

/// The process streams, or test doubles.
pub(crate) struct BatchIo {
    pub(crate) stdout: SharedWriter,
    pub(crate) stderr: SharedWriter,
    pub(crate) stdin: Box<dyn Read + Send>,
    /// Some when stderr is a terminal: where the progress bars draw.
    pub(crate) bars: Option<ProgressDrawTarget>,
}

impl BatchIo {
    pub(crate) fn stdio() -> BatchIo {
        BatchIo {
            stdout: SharedWriter::new(std::io::stdout()),
            stderr: SharedWriter::new(std::io::stderr()),
            stdin: Box::new(std::io::stdin()),
            // indicatif hides its target when stderr is not a terminal it can drive (a pipe,
            // a file, no `TERM`, `dumb`), and a hidden target would swallow the lines printed
            // above the bars: all of those get the plain lines instead.
            bars: Some(ProgressDrawTarget::stderr()).filter(|target| !target.is_hidden()),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct UsageLimitSummary {
    pub(crate) resets_at: Option<String>,
}

/// The `--json` summary; field order is the documented key order.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) jobs: usize,
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    pub(crate) not_started: usize,
    /// Paths saved by this run, in the order they were finished.
    pub(crate) images: Vec<String>,
    pub(crate) results_path: String,
    pub(crate) seconds: f64,
    pub(crate) usage_limit: Option<UsageLimitSummary>,
}

pub(crate) struct BatchOutcome {
    pub(crate) exit_code: i32,
}

/// Runs a batch with the given streams. Exit: 0 all succeeded or skipped; 1 some failed or not
/// started; 2 bad options or batch file (nothing sent); 130/143 stopped by SIGINT/SIGTERM.
pub(crate) async fn run_batch_with(
    engine: Engine,
    opts: BatchOptions,
    shutdown: ShutdownSignals,
    io: BatchIo,
) -> BatchOutcome {
    let clock = Instant::now();
    let fail = |messages: Vec<String>| {
        for m in messages {
            io.stderr.line(&m);
        }
        BatchOutcome { exit_code: 2 }
    };
    if let Err(message) = check_options(&opts, false) {
        return fail(vec![format!("Error: {message}")]);
    }
    let BatchIo {
        stdout,
        stderr,
        stdin,
        bars,
    } = io;
    let fail = |messages: Vec<String>| {
        for m in messages {
            stderr.line(&m);
        }
        BatchOutcome { exit_code: 2 }
    };

    let cwd = opts.template.base_dir.clone();
    let (text, source_name, base_dir) = match read_source(&opts.source, &cwd, stdin).await {
        Ok(read) => read,
        Err(message) => return fail(vec![message]),
    };
    let ctx = ParseContext {
        source_name: &source_name,
        base_dir: &base_dir,
        template: &opts.template,
        count: opts.count,
    };
    let jobs = match input::parse_batch(&text, &ctx) {
        Ok(jobs) => jobs,
        Err(messages) => return fail(messages),
    };
    // No credentials at all would fail every job the same way: say it once, send nothing.
    if let Err(err) = engine.auth().context() {
        stderr.line(&format!("Error: {err}"));
        return BatchOutcome {
            exit_code: err.exit_code(),
        };
    }

    let out_dir = absolute(&cwd, &opts.template.out_dir);
    let results_path = match &opts.results {
        Some(p) => absolute(&cwd, p),
        None => out_dir.join("results.jsonl"),
    };
    let opened = {
        let path = results_path.clone();
        let fresh = opts.fresh;
        tokio::task::spawn_blocking(move || -> std::io::Result<(ResultsFile, ResumeIndex)> {
            let file = ResultsFile::open(&path)?;
            let index = if fresh {
                ResumeIndex::default()
            } else {
                ResumeIndex::load(&path)?
            };
            Ok((file, index))
        })
        .await
    };
    let (mut results_file, index) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => {
            return fail(vec![format!(
                "codex-imagen: cannot open results file {}: {e}",
                results_path.display()
            )])
        }
        Err(e) => return fail(vec![format!("codex-imagen: {e}")]),
    };

    // Hashing earlier images, and decoding the ones an interrupted run left, is blocking work
    // proportional to their size.
    let adopter = (!opts.fresh).then(|| engine.clone());
    let split =
        tokio::task::spawn_blocking(move || split_done(jobs, &index, adopter.as_ref())).await;
    let Ok(Split {
        skipped,
        adopted,
        to_run,
    }) = split
    else {
        return fail(vec![
            "codex-imagen: internal error while checking earlier results".into(),
        ]);
    };

    let total = skipped.len() + adopted.len() + to_run.len();
    let display = Arc::new(Display::new(
        stdout,
        stderr,
        bars,
        opts.quiet,
        opts.json,
        to_run.len(),
    ));
    for (id, prompt_changed) in &skipped {
        if *prompt_changed {
            display.note(&format!(
                "codex-imagen: [{id}] skipped by id although its prompt changed since the earlier \
                 run (use --fresh or a new id to regenerate)"
            ));
        }
    }
    if !skipped.is_empty() {
        display.note(&format!(
            "codex-imagen: skipping {} of {total} jobs already done (their images verify)",
            skipped.len()
        ));
    }
    // An adopted job was paid for by a run killed before it could record it: its line is
    // written now, so the next run skips it like any other.
    let mut adopt_write_errors = 0usize;
    let mut adopted_images = Vec::new();
    for record in &adopted {
        for (i, image) in record.images.iter().enumerate() {
            display.image_adopted(&record.id, i, &image.path);
            adopted_images.push(image.path.display().to_string());
        }
        if let Err(e) = results_file.append(record) {
            adopt_write_errors += 1;
            display.important(&format!(
                "codex-imagen: cannot write {}: {e}",
                results_path.display()
            ));
        }
    }

    let scheduler = Scheduler {
        engine,
        display: display.clone(),
        results: Some(Arc::new(Mutex::new(results_file))),
        max_jobs: opts.jobs,
        done_before: skipped.len() + adopted.len(),
        total,
    };
    let report = scheduler.run(to_run, shutdown).await;
    display.finish();

    adopted_images.extend(report.images.iter().cloned());
    let summary = Summary {
        jobs: total,
        // An adopted job is done and its images are delivered by this run, without a request.
        succeeded: report.succeeded + adopted.len(),
        failed: report.failed,
        skipped: skipped.len(),
        not_started: report.not_started,
        images: adopted_images,
        results_path: results_path.display().to_string(),
        seconds: (clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        usage_limit: report.usage_limit.map(|at| UsageLimitSummary {
            resets_at: at.map(iso),
        }),
    };
    print_summary(&display, &summary, &report, adopted.len(), opts.json);
    let exit_code = exit_code(&report, adopt_write_errors);
    BatchOutcome { exit_code }
}

/// The CLI checks these first with its own texts; this keeps other callers honest.
fn check_options(opts: &BatchOptions, allow_output: bool) -> Result<(), String> {
    if !(1..=MAX_JOBS).contains(&opts.jobs) {
        return Err(format!("--jobs must be from 1 to {MAX_JOBS}"));
    }
    if !(1..=MAX_COUNT).contains(&opts.count) {
        return Err(format!("--count must be from 1 to {MAX_COUNT}"));
    }
    if !allow_output && opts.template.output.is_some() {
        return Err(
            "--output names one image; with --batch use --out-dir, or an \"output\" \
                    key on a line"
                .into(),
        );
    }
    Ok(())
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// The batch text, its name for messages, and the directory its relative paths resolve against.
async fn read_source(
    source: &BatchSource,
    cwd: &Path,
    mut stdin: Box<dyn Read + Send>,
) -> Result<(Vec<u8>, String, PathBuf), String> {
    match source {
        BatchSource::Stdin => {
            let text = tokio::task::spawn_blocking(move || {
                let mut text = Vec::new();
                stdin.read_to_end(&mut text).map(|_| text)
            })
            .await
            .map_err(|e| format!("codex-imagen: {e}"))?
            .map_err(|e| format!("<stdin>: cannot read: {e}"))?;
            Ok((text, "<stdin>".into(), cwd.to_path_buf()))
        }
        BatchSource::File(path) => {
            let name = path.display().to_string();
            let full = absolute(cwd, path);
            let text = tokio::fs::read(&full)
                .await
                .map_err(|e| format!("{name}: cannot read: {e}"))?;
            let dir = full
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| cwd.to_path_buf());
            Ok((text, name, dir))
        }
    }
}

/// The jobs of a run, by what an earlier run left.
struct Split {
    /// Done and recorded, their images verified: not sent, no line written. The id, and
    /// whether the prompt changed since.
    skipped: Vec<(String, bool)>,
    /// Done but never recorded (a run killed between saving and recording): the line to write.
    adopted: Vec<ResultRecord>,
    to_run: Vec<Job>,
}

/// Splits jobs into those an earlier run already finished, those whose images an interrupted
/// run left under their names (`adopter`, the engine, unless `--fresh`), and those to send.
fn split_done(jobs: Vec<Job>, index: &ResumeIndex, adopter: Option<&Engine>) -> Split {
    let mut split = Split {
        skipped: Vec::new(),
        adopted: Vec::new(),
        to_run: Vec::new(),
    };
    for job in jobs {
        if let Some(verified) = index.verify(&job.id, &job.spec.prompt) {
            split.skipped.push((job.id, verified.prompt_changed));
            continue;
        }
        let found = adopter
            .map(|e| e.saved_images(&job.spec))
            .unwrap_or_default();
        if found.is_empty() {
            split.to_run.push(job);
            continue;
        }
        let now = iso(Utc::now());
        split.adopted.push(ResultRecord {
            id: job.id.clone(),
            line: job.line,
            status: Status::Adopted,
            prompt: job.spec.prompt.clone(),
            images: found.iter().map(ImageRecord::from).collect(),
            error: None,
            attempts: 0,
            started_at: Some(now.clone()),
            finished_at: Some(now),
            seconds: Some(0.0),
        });
    }
    split
}

fn print_summary(
    display: &Display,
    summary: &Summary,
    report: &RunReport,
    adopted: usize,
    json: bool,
) {
    let resets_at: Option<Option<DateTime<Utc>>> = report.usage_limit;
    let adopted = match adopted {
        0 => String::new(),
        n => format!(" ({n} adopted from an interrupted run)"),
    };
    display.note(&format!(
        "codex-imagen: batch finished in {:.1} s: {} succeeded{adopted}, {} failed, {} skipped, \
         {} not started; results in {}",
        summary.seconds,
        summary.succeeded,
        summary.failed,
        summary.skipped,
        summary.not_started,
        summary.results_path
    ));
    if let Some(at) = resets_at {
        display.important(&format!(
            "codex-imagen: usage limit reached; {} jobs not started; {}",
            summary.not_started,
            rerun_advice(at)
        ));
    } else if let Some(sig) = report.signal {
        display.important(&format!(
            "codex-imagen: stopped by {}; {} jobs not started; rerun the same command to continue",
            sig.name(),
            summary.not_started
        ));
    }
    if json {
        match serde_json::to_string_pretty(summary) {
            Ok(text) => display.print_stdout(&text),
            Err(e) => display.important(&format!("codex-imagen: cannot print the summary: {e}")),
        }
    }
}

fn exit_code(report: &RunReport, adopt_write_errors: usize) -> i32 {
    if let Some(sig) = report.signal {
        return sig.exit_code();
    }
    let incomplete = report.failed > 0 || report.not_started > 0;
    if incomplete || !report.write_errors.is_empty() || adopt_write_errors > 0 {
        1
    } else {
        0
    }
}

/// `--count N` without `--batch`: one prompt as N separate jobs on the same scheduler (the
/// `--jobs` bound, the usage-limit stop, both signals), without a results file. Every image
/// is reported together: its path on stdout as it is saved, or one `--json` summary in the
/// shape of a one-shot run's, with all jobs' images and one entry per job (see README).
pub(crate) async fn run_count(
    engine: Engine,
    opts: BatchOptions,
    shutdown: ShutdownSignals,
    io: BatchIo,
) -> i32 {
    let clock = Instant::now();
    let BatchIo {
        stdout,
        stderr,
        bars,
        ..
    } = io;
    if let Err(message) = check_options(&opts, true) {
        stderr.line(&format!("Error: {message}"));
        return 2;
    }
    let count = opts.count;
    // Jobs start within the same second and the backend's call ids need not differ, so the
    // SPEC's automatic names could collide: job k is named `codex-imagen-<time>-<k>-<n>.<ext>`.
    let stamp = Utc::now().format("%Y%m%d-%H%M%SZ").to_string();
    let jobs: Vec<Job> = (1..=count)
        .map(|k| {
            let mut spec = opts.template.clone();
            spec.output = spec.output.as_deref().map(|o| input::numbered_output(o, k));
            spec.naming = crate::foundation::job::Naming::Stem(format!("codex-imagen-{stamp}-{k}"));
            Job {
                id: k.to_string(),
                line: 0,
                spec,
            }
        })
        .collect();
    let display = Arc::new(Display::new(
        stdout,
        stderr,
        bars,
        opts.quiet,
        opts.json,
        jobs.len(),
    ));
    let scheduler = Scheduler {
        engine,
        display: display.clone(),
        results: None,
        max_jobs: opts.jobs,
        done_before: 0,
        total: jobs.len(),
    };
    let mut report = scheduler.run(jobs, shutdown).await;
    display.finish();
    report.finished.sort_by_key(|(index, _)| *index);

    if let Some(at) = report.usage_limit {
        display.important(&format!(
            "codex-imagen: usage limit reached; {} of {count} jobs not started; {}",
            report.not_started,
            rerun_advice(at)
        ));
    }
    let first_error = report.finished.iter().find_map(|(_, r)| r.as_ref().err());
    if let Some(error) = first_error {
        display.important(&format!(
            "Error: {} of {count} jobs failed; the first: {}",
            report.failed, error.message
        ));
    }
    if opts.json {
        let summary = count_json(&report, count, clock.elapsed().as_secs_f64());
        match serde_json::to_string_pretty(&summary) {
            Ok(text) => display.print_stdout(&text),
            Err(e) => display.important(&format!("codex-imagen: cannot print the summary: {e}")),
        }
    }
    if let Some(sig) = report.signal {
        return sig.exit_code();
    }
    if report.failed == 0 && report.not_started == 0 {
        0
    } else if report.succeeded == 0 {
        // Nothing at all was made: keep the meaning of the failure (124 timed out, 2 usage).
        first_error.map_or(1, |e| e.exit_code)
    } else {
        1
    }
}

/// The `--count` JSON summary: a one-shot run's keys for the images, plus one entry per job.
fn count_json(report: &RunReport, count: u32, seconds: f64) -> serde_json::Value {
    use serde_json::{json, Value};
    let mut images = Vec::new();
    let mut jobs = Vec::new();
    let by_index: std::collections::HashMap<usize, &Result<_, _>> =
        report.finished.iter().map(|(i, r)| (*i, r)).collect();
    for index in 0..count as usize {
        let id = index + 1;
        let Some(outcome) = by_index.get(&index) else {
            jobs.push(
                json!({"job": id, "status": "not_started", "request_id": null,
                "session_id": null, "model": null, "image_count": 0, "retry_attempts": null,
                "timed_out": false, "error": null}),
            );
            continue;
        };
        match outcome {
            Ok(result) => {
                for image in &result.images {
                    let mut value = crate::frontend::report::image_json(image);
                    if let Value::Object(map) = &mut value {
                        map.insert("job".into(), json!(id));
                    }
                    crate::frontend::report::add_origin(&mut value, result);
                    images.push(value);
                }
                let mut job = json!({
                    "job": id,
                    "status": "succeeded",
                    "request_id": result.request_id,
                    "session_id": result.session_id,
                    "model": result.model,
                    "image_count": result.images.len(),
                    "retry_attempts": result.retry_attempts,
                    "timed_out": result.timed_out,
                    "error": null,
                });
                if let Value::Object(map) = &mut job {
                    crate::frontend::report::add_origin_summary(map, result);
                }
                jobs.push(job);
            }
            Err(error) => jobs.push(json!({
                "job": id,
                "status": "failed",
                "request_id": null,
                "session_id": null,
                "model": null,
                "image_count": 0,
                "retry_attempts": null,
                "timed_out": false,
                "error": error,
            })),
        }
    }
    json!({
        "count": count,
        "succeeded": report.succeeded,
        "failed": report.failed,
        "not_started": report.not_started,
        "image_count": images.len(),
        "imageCount": images.len(),
        "images": images,
        "jobs": jobs,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "usage_limit": report.usage_limit.map(|at| json!({"resets_at": at.map(iso)})),
    })
}
