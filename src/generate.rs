//! A generation run: attempts with their own timer and watchdog, and the retry loop around them
//! (SPEC §12, §13). Which failures are retried is decided in [`crate::retry`].

use std::time::Duration;

use reqwest::Client;
use serde_json::Value;

use crate::backend::request::RequestIdentity;
use crate::backend::responses::{self, AttemptState, ResponsesRequest};
use crate::config::{format_seconds, Config};
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

/// Everything an attempt needs that does not change between attempts.
pub struct Generation<'a> {
    pub client: &'a Client,
    pub config: &'a Config,
    pub identity: RequestIdentity,
    /// The message content (references + prompt), built once per run.
    pub content: Vec<Value>,
    pub progress: Progress,
}

impl Generation<'_> {
    /// Attempts until one succeeds, a failure is final, or the retries are used up.
    pub async fn run_with_retries(&self) -> Result<GenerationResult> {
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

    async fn attempt(&self) -> Result<GenerationResult> {
        let config = self.config;
        let endpoint = config.responses_endpoint();
        let plan = OutputPlan::new(config.output.clone(), config.out_dir.clone());
        let mut state = AttemptState::new(plan.clone(), self.progress);
        self.progress
            .info(&format!("codex-imagen: POST {endpoint}"));
        self.progress.info("codex-imagen: backend responses");
        self.progress
            .info(&format!("codex-imagen: model {}", config.model));
        self.progress
            .verbose(&format!("request_id: {}", state.request_id));

        let request = ResponsesRequest {
            client: self.client,
            endpoint: &endpoint,
            identity: &self.identity,
            model: &config.model,
            content: &self.content,
            stream: config.stream,
            plan: &plan,
        };
        let watchdog = Watchdog::arm(config.timeout_ms);
        let outcome = tokio::time::timeout(
            Duration::from_millis(config.timeout_ms),
            responses::run(&request, &mut state),
        )
        .await;
        drop(watchdog);

        let timed_out = match outcome {
            Ok(Ok(())) => false,
            Ok(Err(err)) => return Err(err),
            Err(_elapsed) => true,
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
            operation: "responses image_generation".to_string(),
            model: config.model.clone(),
            seen_event_types: state.processor.seen_event_types.clone(),
            images: state.into_images(),
            timed_out,
            response_metadata: None,
            retry_attempts: 0,
        })
    }
}
