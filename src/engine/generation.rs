//! A generation run: attempts with their own timer, and the retry loop around them (SPEC §12,
//! §13). Which failures are retried is decided in [`super::retry`].
//!
//! The backend is chosen per attempt (Responses, or the typed Images endpoint the references
//! select), and the run's ChatGPT Cloudflare cookies carry over from one attempt to the next:
//! a challenge answered once stays answered for the retries. Each attempt uses the credentials
//! the store holds at that moment, so a refresh by another job or process is picked up.

use std::time::Duration;

use serde_json::Value;

use super::retry::{retry_delay_ms, retry_reason};
use super::route::{self, Route};
use super::shared::Engine;
use crate::auth::{Auth, AuthContext};
use crate::backend::cookies::CookieJar;
use crate::backend::images::{self, ImagesRequest, Operation};
use crate::backend::references::LoadedReference;
use crate::backend::request;
use crate::backend::responses::{self, AttemptState, ResponsesRequest};
use crate::foundation::controls::ImageControls;
use crate::foundation::error::{Error, Result};
use crate::foundation::events::{Event, Reporter, Stage};
use crate::foundation::job::SavedImage;
use crate::foundation::job::{Backend, JobResult, JobSpec, DEFAULT_IMAGES_MODEL};
use crate::output::naming::OutputPlan;

/// Seconds for messages: up to 3 decimals, no trailing zeros (`1.5`, `300`, `0.25`).
pub(crate) fn format_seconds(ms: u64) -> String {
    let text = format!("{:.3}", ms as f64 / 1000.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// Everything an attempt needs that does not change between attempts, and the cookie jar that
/// does.
pub(crate) struct Generation<'a> {
    engine: &'a Engine,
    ctx: &'a AuthContext,
    job: &'a JobSpec,
    /// The credentials the next attempt starts from (re-read from the store at each attempt).
    pub(crate) auth: Auth,
    /// The Responses message content (references + prompt), built once per run.
    content: Vec<Value>,
    /// The reference URLs as the Images endpoints take them.
    image_urls: Vec<String>,
    /// The `--mask` PNG as a `data:` URL, already checked.
    mask: Option<String>,
    progress: Reporter,
    /// The engine's environment with the job's base directory, for the output plan.
    job_env: crate::foundation::paths::Environment,
    /// ChatGPT Cloudflare cookies remembered during the run (SPEC §10.3); never persisted.
    cookies: CookieJar,
    /// The route the next attempt takes, and whether `--backend auto` may still move the job
    /// to `/responses` ([`super::route`]).
    route: Route,
    may_fall_back: bool,
    /// Why an `auto` job is on `/responses`.
    route_reason: Option<String>,
}

/// Where one attempt goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    Responses,
    Images(Operation),
}

impl<'a> Generation<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        ctx: &'a AuthContext,
        job: &'a JobSpec,
        auth: &Auth,
        references: &[LoadedReference],
        mask: Option<String>,
        progress: Reporter,
    ) -> Self {
        let plan = route::plan(job.backend, &job.controls);
        Generation {
            route: plan.first,
            may_fall_back: plan.may_fall_back,
            route_reason: plan.reason,
            engine,
            ctx,
            job,
            auth: auth.clone(),
            content: request::prompt_content(references, &job.image_detail, &job.prompt),
            image_urls: references.iter().map(|r| r.image_url.clone()).collect(),
            mask,
            progress,
            job_env: engine.environment().clone().with_cwd(job.base_dir.clone()),
            cookies: CookieJar::default(),
        }
    }

    fn target(&self) -> Target {
        match self.route {
            Route::Responses => Target::Responses,
            Route::Images => Target::Images(Operation::for_references(self.image_urls.len())),
        }
    }

    /// The model for the route in use: with `--backend auto` the job's model is the Responses
    /// one, and the Images route takes the image model (`--image-model`, else gpt-image-2).
    fn model(&self) -> &str {
        match (self.job.backend, self.route) {
            (Backend::Auto, Route::Images) => self
                .job
                .controls
                .image_model
                .as_deref()
                .unwrap_or(DEFAULT_IMAGES_MODEL),
            _ => &self.job.model,
        }
    }

    /// `--backend auto`: move the job to `/responses` when `err` is a failure of the Images
    /// route itself (once; never after an image was saved, which ends an attempt in success).
    fn fall_back(&mut self, err: &Error) -> bool {
        if !self.may_fall_back || self.route != Route::Images {
            return false;
        }
        let Some(reason) = route::route_failure(err) else {
            return false;
        };
        self.progress.info(&format!(
            "codex-imagen: {reason}; trying the responses route"
        ));
        self.route = Route::Responses;
        self.may_fall_back = false;
        self.route_reason = Some(reason);
        true
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.engine.base_url())
    }

    /// Attempts until one succeeds, a failure is final, or the retries are used up.
    pub(crate) async fn run_with_retries(&mut self) -> Result<JobResult> {
        let retries = self.job.retries;
        let total = retries + 1;
        let mut attempt = 0u32;
        loop {
            self.progress.emit(Event::AttemptStarted {
                attempt: attempt + 1,
                total,
                timeout_ms: self.job.timeout_ms,
            });
            let outcome = self.attempt().await;
            self.progress.emit(Event::AttemptFinished {
                attempt: attempt + 1,
            });
            match outcome {
                Ok(mut result) => {
                    result.retry_attempts = attempt;
                    if self.job.backend == Backend::Auto {
                        result.route = Some(self.route.as_str().to_string());
                        result.route_fallback = self.route_reason.clone();
                    }
                    return Ok(result);
                }
                Err(err) => {
                    if self.fall_back(&err) {
                        // The same job once on /responses, with its own retries.
                        attempt = 0;
                        continue;
                    }
                    let Some(reason) = retry_reason(&err) else {
                        return Err(err);
                    };
                    if attempt >= retries {
                        return Err(err);
                    }
                    let retry = attempt + 1;
                    let delay = retry_delay_ms(retry, self.engine.inner().delays.retry_base_ms);
                    self.progress.stage(Stage::WaitingToRetry);
                    self.progress.emit(Event::RetryScheduled {
                        retry,
                        retries,
                        reason,
                        delay_ms: delay,
                    });
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    attempt = retry;
                }
            }
        }
    }

    async fn attempt(&mut self) -> Result<JobResult> {
        let job = self.job;
        let target = self.target();
        let (endpoint, operation) = match target {
            Target::Responses => (
                self.endpoint("responses"),
                "responses image_generation".to_string(),
            ),
            Target::Images(Operation::Generation) => (
                self.endpoint("images/generations"),
                Operation::Generation.as_str().to_string(),
            ),
            Target::Images(Operation::Edit) => (
                self.endpoint("images/edits"),
                Operation::Edit.as_str().to_string(),
            ),
        };
        self.auth = self.engine.auth().latest(self.ctx, &self.auth);
        let identity = self.engine.identity_for(&self.auth);
        let plan = OutputPlan::new(job.output.clone(), job.out_dir.clone(), &self.job_env)
            .with_naming(job.naming.clone())
            .with_temp_files(self.engine.inner().temp_files.clone())
            .with_rescue_dir(self.engine.inner().rescue_dir.clone());
        let mut state = AttemptState::new(plan.clone(), self.progress.clone());
        self.progress
            .info(&format!("codex-imagen: POST {endpoint}"));
        match target {
            Target::Responses => self.progress.info("codex-imagen: backend responses"),
            Target::Images(_) => self
                .progress
                .info(&format!("codex-imagen: operation {operation}")),
        }
        let model = self.model().to_string();
        self.progress.info(&format!("codex-imagen: model {model}"));
        self.progress
            .verbose(&format!("request_id: {}", state.request_id));

        let jar = &mut self.cookies;
        let client = &self.engine.inner().http.get()?;
        let progress = self.progress.clone();
        let block_on = self.engine.inner().test_block_on_event.as_deref();
        let (content, prompt, image_urls) = (&self.content, &job.prompt, &self.image_urls);
        let mask = self.mask.as_deref();
        let tool = request::image_tool(&job.controls, mask);
        let work = async {
            match target {
                Target::Responses => {
                    let request = ResponsesRequest {
                        client,
                        endpoint: &endpoint,
                        identity: &identity,
                        model: &model,
                        content,
                        tool: &tool,
                        stream: job.stream,
                        plan: &plan,
                        progress,
                        test_block_on_event: block_on,
                    };
                    responses::run(&request, &mut state, jar)
                        .await
                        .map(|()| None)
                }
                Target::Images(_) => {
                    let request = ImagesRequest {
                        client,
                        endpoint: &endpoint,
                        identity: &identity,
                        model: &model,
                        prompt,
                        image_urls,
                        controls: &job.controls,
                        mask,
                        plan: &plan,
                        progress,
                    };
                    images::run(&request, &mut state, jar).await.map(Some)
                }
            }
        };
        let outcome = tokio::time::timeout(Duration::from_millis(job.timeout_ms), work).await;

        let (timed_out, response_metadata) = match outcome {
            Ok(Ok(metadata)) => (false, metadata),
            Ok(Err(err)) => return Err(err),
            Err(_elapsed) => (true, None),
        };
        let described = format!("{}s ({}ms)", format_seconds(job.timeout_ms), job.timeout_ms);
        if timed_out {
            if state.saved_count() == 0 {
                return Err(Error::Timeout(format!(
                    "Timed out after {described} before any image was saved."
                )));
            }
            self.progress.info(&format!(
                "codex-imagen: timed out after {described}; returning {} saved image(s)",
                state.saved_count()
            ));
        }
        Ok(JobResult {
            request_id: state.request_id.clone(),
            session_id: state.session_id.clone(),
            endpoint,
            operation,
            model: model.clone(),
            seen_event_types: state.processor.seen_event_types.clone(),
            images: state.into_images(),
            timed_out,
            response_metadata,
            retry_attempts: 0,
            refresh: None,
            account: None,
            route: None,
            route_fallback: None,
        })
    }
}

/// One warning line when the final images are not what was asked for: a `WxH` size, a format,
/// or a transparent background. The backend may silently substitute any of them, and a caller
/// who asked for 2048x1152 should not have to compare the JSON to find out.
#[cfg(test)]
pub(crate) fn unmet_request(controls: &ImageControls, images: &[SavedImage]) -> Option<String> {
    unmet_request_with(controls, images, None)
}

/// [`unmet_request`], also comparing what the Images route says it produced (`size`,
/// `quality` in its answer) with what was asked.
pub(crate) fn unmet_request_with(
    controls: &ImageControls,
    images: &[SavedImage],
    metadata: Option<&Value>,
) -> Option<String> {
    let mut unmet: Vec<String> = Vec::new();
    let mut note = |text: String| {
        if !unmet.contains(&text) {
            unmet.push(text);
        }
    };
    let reported = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if let (Some(size), Some(got)) = (controls.size.as_deref(), reported("size")) {
        if size != "auto" && size != got {
            note(format!("requested {size}, the backend returned {got}"));
        }
    }
    if let (Some(quality), Some(got)) = (controls.quality.as_deref(), reported("quality")) {
        if quality != "auto" && quality != got {
            note(format!(
                "requested quality {quality}, the backend returned {got}"
            ));
        }
    }
    for image in images.iter().filter(|i| i.partial != Some(true)) {
        if let (Some(size), Some(w), Some(h)) =
            (controls.size.as_deref(), image.width, image.height)
        {
            let got = format!("{w}x{h}");
            if size != "auto" && size != got {
                note(format!("requested {size}, the backend returned {got}"));
            }
        }
        if let (Some(format), Some(got)) = (controls.format.as_deref(), image.format.as_deref()) {
            if format != got {
                note(format!("requested {format}, the backend returned {got}"));
            }
        }
        if controls.background.as_deref() == Some("transparent") && image.has_alpha == Some(false) {
            note(
                "requested a transparent background, the backend returned an image without alpha"
                    .into(),
            );
        }
    }
    (!unmet.is_empty()).then(|| format!("codex-imagen: warning: {}", unmet.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(format: &str, w: u32, h: u32, alpha: bool) -> SavedImage {
        SavedImage {
            path: "x".into(),
            bytes: 1,
            sha256: String::new(),
            call_id: None,
            status: None,
            partial: None,
            revised_prompt: None,
            format: Some(format.into()),
            width: Some(w),
            height: Some(h),
            has_alpha: Some(alpha),
            c2pa: false,
            rescued_from: None,
        }
    }

    #[test]
    fn unmet_requests_are_one_line() {
        let asked = ImageControls {
            size: Some("2048x1152".into()),
            format: Some("webp".into()),
            background: Some("transparent".into()),
            ..ImageControls::default()
        };
        let got = [
            image("png", 1536, 864, false),
            image("png", 1536, 864, false),
        ];
        assert_eq!(
            unmet_request(&asked, &got).as_deref(),
            Some(
                "codex-imagen: warning: requested 2048x1152, the backend returned 1536x864; \
                 requested webp, the backend returned png; requested a transparent background, \
                 the backend returned an image without alpha"
            )
        );
        let met = [image("webp", 2048, 1152, true)];
        assert_eq!(unmet_request(&asked, &met), None);
        assert_eq!(unmet_request(&ImageControls::default(), &got), None);
        let auto = ImageControls {
            size: Some("auto".into()),
            ..ImageControls::default()
        };
        assert_eq!(unmet_request(&auto, &got), None);
    }

    #[test]
    fn the_images_answer_is_compared_too() {
        let asked = ImageControls {
            size: Some("2048x1152".into()),
            quality: Some("high".into()),
            ..ImageControls::default()
        };
        let said = serde_json::json!({"size": "1024x1536", "quality": "medium"});
        assert_eq!(
            unmet_request_with(&asked, &[], Some(&said)).as_deref(),
            Some(
                "codex-imagen: warning: requested 2048x1152, the backend returned 1024x1536; \
                 requested quality high, the backend returned medium"
            )
        );
        let same = serde_json::json!({"size": "2048x1152", "quality": "high"});
        assert_eq!(unmet_request_with(&asked, &[], Some(&same)), None);
    }

    #[test]
    fn seconds_are_formatted_like_node() {
        assert_eq!(format_seconds(300_000), "300");
        assert_eq!(format_seconds(1500), "1.5");
        assert_eq!(format_seconds(250), "0.25");
        assert_eq!(format_seconds(1), "0.001");
    }
}
