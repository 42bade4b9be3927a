//! Resolve the parsed command line against the environment into one [`Config`] (SPEC §1, §2,
//! §9.1, §9.3). Validation that needs no file system happens in [`Config::from_args`]; the
//! working directory is changed first so every later relative path resolves from `--cwd`.

use std::path::PathBuf;

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::paths::{self, env_nonempty, first_env, resolve};

pub const DEFAULT_BASE_URL: &str = "https://chatgpt.com/backend-api/codex";
pub const DEFAULT_REFRESH_URL: &str = "https://auth.openai.com/oauth/token";
pub const DEFAULT_RESPONSES_MODEL: &str = "gpt-5.4";
pub const DEFAULT_IMAGES_MODEL: &str = "gpt-image-2";
pub const DEFAULT_RETRIES: u32 = 4;
pub const MAX_RETRIES: u32 = 100;
const DEFAULT_TIMEOUT_MS: u64 = 15 * 60 * 1000;
const DEFAULT_OPENCLAW_TIMEOUT_MS: u64 = 5 * 60 * 1000;
const IMAGE_DETAILS: [&str; 4] = ["auto", "low", "high", "original"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Responses,
    Images,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Responses => "responses",
            Backend::Images => "images",
        }
    }
}

/// Where the prompt comes from; it is read only after auth is ready (SPEC §14, order of a run).
#[derive(Debug, Clone)]
pub enum PromptSource {
    Inline(String),
    File(PathBuf),
    None,
}

/// A reference image as given on the command line, before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Path(String),
    Url(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub prompt: PromptSource,
    pub references: Vec<Reference>,
    pub image_detail: String,
    pub output: Option<String>,
    pub out_dir: PathBuf,
    pub backend: Backend,
    pub model: String,
    pub auth_path: Option<PathBuf>,
    pub auth_profile: Option<String>,
    pub base_url: String,
    pub refresh_url: String,
    pub smoke: bool,
    pub force_refresh: bool,
    pub refresh_only: bool,
    pub refresh: bool,
    pub retries: u32,
    pub timeout_ms: u64,
    pub stream: bool,
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
}

impl Config {
    /// Validate flag values, change to `--cwd`, and resolve defaults from the environment.
    pub fn from_args(args: Args) -> Result<Config> {
        let image_detail = match args.image_detail.clone() {
            Some(d) if IMAGE_DETAILS.contains(&d.as_str()) => d,
            Some(_) => {
                return Err(Error::Usage(
                    "--image-detail must be one of: auto, low, high, original".into(),
                ))
            }
            None => "high".to_string(),
        };
        let retries = match args.retry_flags.last() {
            Some(value) => parse_retries(value)?,
            None => DEFAULT_RETRIES,
        };
        for value in &args.retry_flags {
            parse_retries(value)?;
        }
        let explicit_timeout = parse_timeout_flags(&args.timeout_flags)?;
        let prompt = prompt_source(&args)?;

        if let Some(cwd) = &args.cwd {
            let dir = resolve(cwd);
            std::env::set_current_dir(&dir)
                .map_err(|err| Error::Input(format!("--cwd {}: {err}", dir.display())))?;
        }

        let backend = match args
            .backend
            .or_else(|| env_nonempty("CODEX_IMAGEN_BACKEND"))
        {
            None => Backend::Responses,
            Some(b) if b == "responses" => Backend::Responses,
            Some(b) if b == "images" => Backend::Images,
            Some(_) => {
                return Err(Error::Usage(
                    "--backend must be one of: responses, images".into(),
                ))
            }
        };
        let model = args.model.unwrap_or_else(|| {
            match backend {
                Backend::Responses => DEFAULT_RESPONSES_MODEL,
                Backend::Images => DEFAULT_IMAGES_MODEL,
            }
            .to_string()
        });
        let timeout_ms = explicit_timeout.unwrap_or_else(|| {
            if paths::is_openclaw_runtime() {
                DEFAULT_OPENCLAW_TIMEOUT_MS
            } else {
                DEFAULT_TIMEOUT_MS
            }
        });
        // An empty path (`--out-dir="$UNSET"`) means "not given", as it did for the Node tool.
        let out_dir = match given(&args.out_dir) {
            Some(dir) => resolve(dir),
            None => default_out_dir(),
        };

        let mut references: Vec<Reference> = Vec::new();
        for (flag, value) in &args.reference_flags {
            match flag.as_str() {
                "--input-ref" => references.extend(split_commas(value).map(classify_input_ref)),
                "--image-url" => references.push(Reference::Url(value.clone())),
                _ => references.extend(split_commas(value).map(|p| Reference::Path(p.to_string()))),
            }
        }

        Ok(Config {
            prompt,
            references,
            image_detail,
            output: given(&args.output).map(str::to_string),
            out_dir,
            backend,
            model,
            auth_path: given(&args.auth).map(resolve),
            auth_profile: args
                .auth_profile
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .or_else(|| first_env(&["CODEX_IMAGEN_AUTH_PROFILE", "OPENCLAW_AUTH_PROFILE"])),
            base_url: args
                .base_url
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            refresh_url: args
                .refresh_url
                .or_else(|| env_nonempty("CODEX_REFRESH_TOKEN_URL_OVERRIDE"))
                .unwrap_or_else(|| DEFAULT_REFRESH_URL.to_string()),
            smoke: args.smoke,
            force_refresh: args.force_refresh,
            refresh_only: args.refresh_only,
            refresh: !args.no_refresh,
            retries,
            timeout_ms,
            stream: !args.no_stream,
            json: args.json,
            quiet: args.quiet,
            verbose: args.verbose,
        })
    }

    pub fn responses_endpoint(&self) -> String {
        format!("{}/responses", self.base_url)
    }

    pub fn generation_endpoint(&self) -> String {
        format!("{}/images/generations", self.base_url)
    }

    pub fn edit_endpoint(&self) -> String {
        format!("{}/images/edits", self.base_url)
    }

    pub fn timeout_seconds(&self) -> f64 {
        ms_as_seconds(self.timeout_ms)
    }
}

/// Milliseconds as seconds rounded to 3 decimals, as the Node tool printed them.
pub fn ms_as_seconds(ms: u64) -> f64 {
    (ms as f64 / 1000.0 * 1000.0).round() / 1000.0
}

/// Seconds for messages: up to 3 decimals, no trailing zeros (`1.5`, `300`, `0.25`).
pub fn format_seconds(ms: u64) -> String {
    let text = format!("{:.3}", ms as f64 / 1000.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

fn prompt_source(args: &Args) -> Result<PromptSource> {
    let has_flag = args.prompt.as_deref().is_some_and(|p| !p.is_empty())
        || args.prompt_file.as_deref().is_some_and(|p| !p.is_empty());
    if has_flag {
        if let Some(first) = args.words.first() {
            return Err(Error::Usage(format!(
                "Unexpected positional argument with --prompt: {first}. Use -i/--image or --input-ref for reference images."
            )));
        }
    }
    if let Some(file) = args.prompt_file.as_deref().filter(|f| !f.is_empty()) {
        // `~` is expanded now; a relative path is resolved after --cwd, by the caller reading it.
        return Ok(PromptSource::File(paths::expand_home(file)));
    }
    if let Some(prompt) = args.prompt.as_deref().filter(|p| !p.is_empty()) {
        return Ok(PromptSource::Inline(prompt.to_string()));
    }
    if !args.words.is_empty() {
        return Ok(PromptSource::Inline(args.words.join(" ")));
    }
    Ok(PromptSource::None)
}

/// A path option's value, unless it is absent or empty.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn split_commas(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn classify_input_ref(item: &str) -> Reference {
    let lower = item.to_ascii_lowercase();
    if lower.starts_with("data:image/")
        || lower.starts_with("http://")
        || lower.starts_with("https://")
    {
        Reference::Url(item.to_string())
    } else {
        Reference::Path(item.to_string())
    }
}

/// JavaScript's `Number(text)` for the inputs people type: blank is 0, otherwise a float.
fn js_number(text: &str) -> f64 {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return 0.0;
    }
    trimmed.parse::<f64>().unwrap_or(f64::NAN)
}

fn parse_retries(value: &str) -> Result<u32> {
    let n = js_number(value);
    if n.fract() != 0.0 || !(0.0..=MAX_RETRIES as f64).contains(&n) {
        return Err(Error::Usage(format!(
            "--retries must be an integer from 0 to {MAX_RETRIES}"
        )));
    }
    Ok(n as u32)
}

fn parse_timeout_flags(flags: &[(String, String)]) -> Result<Option<u64>> {
    let Some((first_flag, value)) = flags.first() else {
        return Ok(None);
    };
    if let Some((second_flag, _)) = flags.get(1) {
        // The first value is still validated first, as the Node parser met it first.
        parse_timeout(first_flag, value)?;
        return Err(Error::Usage(format!(
            "Use only one timeout option. {first_flag} was already provided; remove {second_flag}."
        )));
    }
    parse_timeout(first_flag, value).map(Some)
}

fn parse_timeout(flag: &str, value: &str) -> Result<u64> {
    let n = js_number(value);
    let (unit, ms) = if flag == "--timeout-ms" {
        ("milliseconds", n)
    } else {
        ("seconds", n * 1000.0)
    };
    if !n.is_finite() || n <= 0.0 {
        return Err(Error::Usage(format!(
            "{flag} must be greater than 0 {unit} so generation cannot run unbounded"
        )));
    }
    Ok(ms.ceil() as u64)
}

/// SPEC §9.1, first match wins.
fn default_out_dir() -> PathBuf {
    if let Some(dir) = first_env(&["CODEX_IMAGEN_OUT_DIR", "OPENCLAW_OUTPUT_DIR"]) {
        return resolve(&dir);
    }
    if let Some(agent) = first_env(&["OPENCLAW_AGENT_DIR", "PI_CODING_AGENT_DIR"]) {
        return resolve(&agent).join("artifacts").join("codex-imagen");
    }
    if let Some(state) = env_nonempty("OPENCLAW_STATE_DIR") {
        return resolve(&state).join("artifacts").join("codex-imagen");
    }
    resolve("codex-imagen-output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(parse_timeout("--timeout", "1.0001").unwrap(), 1001);
        assert_eq!(parse_timeout("--timeout-ms", "2.1").unwrap(), 3);
        assert_eq!(parse_timeout("--timeout", " 300 ").unwrap(), 300_000);
        for bad in ["0", "-1", "abc", "inf", "NaN", ""] {
            let err = parse_timeout("--timeout", bad).unwrap_err().to_string();
            assert_eq!(
                err,
                "--timeout must be greater than 0 seconds so generation cannot run unbounded"
            );
        }
        let err = parse_timeout("--timeout-ms", "0").unwrap_err().to_string();
        assert!(err.ends_with("0 milliseconds so generation cannot run unbounded"));
    }

    #[test]
    fn a_second_timeout_flag_is_refused() {
        let flags = vec![
            ("--timeout".to_string(), "5".to_string()),
            ("--timeout-ms".to_string(), "5".to_string()),
        ];
        assert_eq!(
            parse_timeout_flags(&flags).unwrap_err().to_string(),
            "Use only one timeout option. --timeout was already provided; remove --timeout-ms."
        );
    }

    #[test]
    fn retries_must_be_whole_and_in_range() {
        assert_eq!(parse_retries("3").unwrap(), 3);
        assert_eq!(parse_retries("100").unwrap(), 100);
        for bad in ["101", "-1", "1.5", "x"] {
            assert!(parse_retries(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds_are_formatted_like_node() {
        assert_eq!(format_seconds(300_000), "300");
        assert_eq!(format_seconds(1500), "1.5");
        assert_eq!(format_seconds(250), "0.25");
        assert_eq!(format_seconds(1), "0.001");
        assert_eq!(ms_as_seconds(1001), 1.001);
    }

    #[test]
    fn input_refs_are_classified_by_prefix() {
        assert_eq!(
            classify_input_ref("HTTPS://x/y.png"),
            Reference::Url("HTTPS://x/y.png".into())
        );
        assert_eq!(
            classify_input_ref("Data:image/png;base64,AA"),
            Reference::Url("Data:image/png;base64,AA".into())
        );
        assert_eq!(
            classify_input_ref("ftp.png"),
            Reference::Path("ftp.png".into())
        );
    }
}
