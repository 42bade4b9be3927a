//! A generation run: attempts with their own timer and watchdog, and the retry loop around them
//! (SPEC §12, §13). Which failures are retried is decided in [`crate::retry`].
//!
//! The backend is chosen per attempt (Responses, or the typed Images endpoint the references
//! select), and the run's ChatGPT Cloudflare cookies carry over from one attempt to the next:
//! a challenge answered once stays answered for the retries.

use std::time::Duration;

use reqwest::Client;
use serde_json::Value;

use crate::backend::cookies::CookieJar;
use crate::backend::images::{self, ImagesRequest, Operation};
use crate::backend::references::LoadedReference;
use crate::backend::request::{self, RequestIdentity};
use crate::backend::responses::{self, AttemptState, ResponsesRequest};
use crate::config::{format_seconds, Backend, Config};
use crate::error::{Error, Result};
use crate::output::{OutputPlan, SavedImage};
use crate::progress::Progress;
use crate::retry::{retry_delay_ms, retry_reason};
use crate::watchdog::Watchdog;

/// The outcome of a successful run, as reported on stdout (SPEC §14).
#[derive(Debug, Clone)]
pub struct GenerationResult {
    pub request_id: String,
    pub session_id: String,
    pub endpoint: String,
    pub operation: String,
    pub model: String,
    pub images: Vec<SavedImage>,
    pub seen_event_types: Vec<String>,
    pub timed_out: bool,
    pub response_metadata: Option<Value>,
    pub retry_attempts: u32,
}

/// Everything an attempt needs that does not change between attempts, and the cookie jar that
/// does.
pub struct Generation<'a> {
    pub client: &'a Client,
    pub config: &'a Config,
    pub identity: RequestIdentity,
    /// The Responses message content (references + prompt), built once per run.
    pub content: Vec<Value>,
    /// The prompt and reference URLs as the Images endpoints take them.
    pub prompt: String,
    pub image_urls: Vec<String>,
    pub progress: Progress,
    /// ChatGPT Cloudflare cookies remembered during the run (SPEC §10.3); never persisted.
    pub cookies: CookieJar,
}

/// Where one attempt goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    Responses,
    Images(Operation),
}

impl<'a> Generation<'a> {
    pub fn new(
        client: &'a Client,
        config: &'a Config,
        identity: RequestIdentity,
        references: &[LoadedReference],
        prompt: &str,
        progress: Progress,
    ) -> Self {
        Generation {
            client,
            config,
            identity,
            content: request::prompt_content(references, &config.image_detail, prompt),
            prompt: prompt.to_string(),
            image_urls: references.iter().map(|r| r.image_url.clone()).collect(),
            progress,
            cookies: CookieJar::default(),
        }
    }

    fn target(&self) -> Target {
        match self.config.backend {
            Backend::Responses => Target::Responses,
            Backend::Images => Target::Images(Operation::for_references(self.image_urls.len())),
        }
    }

    /// Attempts until one succeeds, a failure is final, or the retries are used up.
    pub async fn run_with_retries(&mut self) -> Result<GenerationResult> {
        let retries = self.config.retries;
        let total = retries + 1;
        let mut attempt = 0u32;
        loop {
            if total > 1 {
                self.progress.info(&format!(
                    "codex-imagen: generation attempt {}/{total}",
                    attempt + 1
                ));
            }
            match self.attempt().await {
                Ok(mut result) => {
                    result.retry_attempts = attempt;
                    return Ok(result);
                }
                Err(err) => {
                    let Some(reason) = retry_reason(&err) else {
                        return Err(err);
                    };
                    if attempt >= retries {
                        return Err(err);
                    }
                    let retry = attempt + 1;
                    let delay = retry_delay_ms(retry);
                    self.progress.info(&format!(
                        "codex-imagen: transient generation failure ({reason}); retrying {retry}/{retries} in {}s",
                        format_seconds(delay)
                    ));
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    attempt = retry;
                }
            }
        }
    }

    async fn attempt(&mut self) -> Result<GenerationResult> {
        let config = self.config;
        let target = self.target();
        let (endpoint, operation) = match target {
            Target::Responses => (
                config.responses_endpoint(),
                "responses image_generation".to_string(),
            ),
            Target::Images(Operation::Generation) => (
                config.generation_endpoint(),
                Operation::Generation.as_str().to_string(),
            ),
            Target::Images(Operation::Edit) => {
                (config.edit_endpoint(), Operation::Edit.as_str().to_string())
            }
        };
        let plan = OutputPlan::new(config.output.clone(), config.out_dir.clone());
        let mut state = AttemptState::new(plan.clone(), self.progress);
        self.progress
            .info(&format!("codex-imagen: POST {endpoint}"));
        match target {
            Target::Responses => self.progress.info("codex-imagen: backend responses"),
            Target::Images(_) => self
                .progress
                .info(&format!("codex-imagen: operation {operation}")),
        }
        self.progress
            .info(&format!("codex-imagen: model {}", config.model));
        self.progress
            .verbose(&format!("request_id: {}", state.request_id));

        let jar = &mut self.cookies;
        let (client, identity, progress) = (self.client, &self.identity, self.progress);
        let (content, prompt, image_urls) = (&self.content, &self.prompt, &self.image_urls);
        let work = async {
            match target {
                Target::Responses => {
                    let request = ResponsesRequest {
                        client,
                        endpoint: &endpoint,
                        identity,
                        model: &config.model,
                        content,
                        stream: config.stream,
                        plan: &plan,
                        progress,
                    };
                    responses::run(&request, &mut state, jar)
                        .await
                        .map(|()| None)
                }
                Target::Images(_) => {
                    let request = ImagesRequest {
                        client,
                        endpoint: &endpoint,
                        identity,
                        model: &config.model,
                        prompt,
                        image_urls,
                        plan: &plan,
                        progress,
                    };
                    images::run(&request, &mut state, jar).await.map(Some)
                }
            }
        };
        let watchdog = Watchdog::arm(config.timeout_ms);
        let outcome = tokio::time::timeout(Duration::from_millis(config.timeout_ms), work).await;
        drop(watchdog);

        let (timed_out, response_metadata) = match outcome {
            Ok(Ok(metadata)) => (false, metadata),
            Ok(Err(err)) => return Err(err),
            Err(_elapsed) => (true, None),
        };
        let described = format!(
            "{}s ({}ms)",
            format_seconds(config.timeout_ms),
            config.timeout_ms
        );
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
        Ok(GenerationResult {
            request_id: state.request_id.clone(),
            session_id: state.session_id.clone(),
            endpoint,
            operation,
            model: config.model.clone(),
            seen_event_types: state.processor.seen_event_types.clone(),
            images: state.into_images(),
            timed_out,
            response_metadata,
            retry_attempts: 0,
        })
    }
}
