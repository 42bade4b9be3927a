//! Validating the command line's values: everything that needs neither the file system nor the
//! environment (SPEC §1). [`super::config`] then resolves the validated values against `--cwd`
//! and the environment.

use super::args::Args;
use crate::foundation::controls::{self, ControlError, ImageControls};
use crate::foundation::error::{Error, Result};
use crate::foundation::job::MetadataMode;

pub(crate) const MAX_RETRIES: u32 = 100;
/// `--jobs`: at most this many jobs at once (batch, `--count`, the service's workers).
pub(crate) const MAX_JOBS: u32 = 16;
/// `--count`: at most this many images of one prompt.
pub(crate) const MAX_COUNT: u32 = 10;
/// `--jobs` when not given.
pub(crate) const DEFAULT_JOBS: usize = 2;
const IMAGE_DETAILS: [&str; 4] = ["auto", "low", "high", "original"];

/// Where the prompt comes from; it is read only after auth is ready (SPEC §14, order of a run).
#[derive(Debug, Clone)]
pub(crate) enum PromptSource {
    Inline(String),
    /// `~` already expanded; a relative path resolves against `--cwd`.
    File(String),
    None,
}

/// The command line's values, checked.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub image_detail: String,
    pub retries: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub prompt: PromptSource,
    /// `--batch` as typed (`-` is stdin).
    pub batch: Option<String>,
    /// `--jobs`; None: the default.
    pub jobs: Option<u32>,
    /// `--count`; None: one.
    pub count: Option<u32>,
    /// The image controls given, parsed into the values the backends take.
    pub controls: ImageControls,
    /// `--mask` as typed (non-empty); read by the engine after auth.
    pub mask: Option<String>,
    /// `--metadata`, when given (the environment's default is resolved later).
    pub metadata: Option<MetadataMode>,
    /// `--login` or `--logout`, with their flags.
    pub sign_in: Option<SignIn>,
}

/// `--login` / `--logout` and the flags that go with them, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignIn {
    /// `--logout` (else `--login`).
    pub logout: bool,
    /// `--device-auth`.
    pub device: bool,
    /// `--callback-port`, when given.
    pub callback_port: Option<u16>,
}

/// Check every value that can be checked without the environment, in the Node tool's order.
pub(crate) fn validate(args: &Args) -> Result<Validated> {
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
        Some(value) => Some(parse_retries(value)?),
        None => None,
    };
    for value in &args.retry_flags {
        parse_retries(value)?;
    }
    let timeout_ms = parse_timeout_flags(&args.timeout_flags)?;
    let sign_in = check_sign_in_flags(args)?;
    let jobs = args
        .jobs
        .as_deref()
        .map(|v| parse_whole("--jobs", v, 1, MAX_JOBS))
        .transpose()?;
    let count = args
        .count
        .as_deref()
        .map(|v| parse_whole("--count", v, 1, MAX_COUNT))
        .transpose()?;
    let batch = check_batch_flags(args, jobs.is_some(), count.is_some())?;
    let (controls, mask) = image_controls(args).map_err(|e| Error::Usage(e.to_string()))?;
    let metadata = match text(&args.metadata) {
        Some(value) => Some(MetadataMode::parse(value).map_err(|e| Error::Usage(e.to_string()))?),
        None => None,
    };
    let prompt = prompt_source(args)?;
    Ok(Validated {
        metadata,
        image_detail,
        retries,
        timeout_ms,
        prompt,
        controls,
        mask,
        batch,
        jobs,
        count,
        sign_in,
    })
}

/// `--login`/`--logout`: their own flags need them, and they run alone (no prompt, no mode).
/// The flags that only mean something to `--login`.
fn reject_login_only_flags(args: &Args) -> Result<()> {
    for (given, flag) in [
        (args.device_auth, "--device-auth"),
        (args.issuer.is_some(), "--issuer"),
        (args.callback_port.is_some(), "--callback-port"),
        (args.no_browser, "--no-browser"),
        (args.force, "--force"),
    ] {
        if given {
            return Err(Error::Usage(format!("{flag} needs --login")));
        }
    }
    Ok(())
}

fn check_sign_in_flags(args: &Args) -> Result<Option<SignIn>> {
    let mode = match (args.login, args.logout) {
        (true, true) => {
            return Err(Error::Usage(
                "--login and --logout cannot be used together".into(),
            ))
        }
        (true, false) => "--login",
        (false, true) => "--logout",
        (false, false) => {
            reject_login_only_flags(args)?;
            return Ok(None);
        }
    };
    let has_prompt = !args.words.is_empty()
        || args.prompt.as_deref().is_some_and(|p| !p.is_empty())
        || args.prompt_file.as_deref().is_some_and(|p| !p.is_empty());
    for (given, flag) in [
        (has_prompt, "a prompt"),
        (args.batch.is_some(), "--batch"),
        (args.count.is_some(), "--count"),
        (args.serve.is_some(), "--serve"),
        (args.smoke, "--smoke"),
        (args.refresh_only, "--refresh-only"),
        (args.usage, "--usage"),
    ] {
        if given {
            return Err(Error::Usage(format!("{mode} cannot be used with {flag}")));
        }
    }
    if args.logout {
        reject_login_only_flags(args)?;
    }
    let callback_port = match args.callback_port.as_deref() {
        Some(value) => {
            if args.device_auth {
                return Err(Error::Usage(
                    "--callback-port is for the browser sign-in, not --device-auth".into(),
                ));
            }
            let n = js_number(value);
            if value.trim().is_empty() || n.fract() != 0.0 || !(0.0..=65535.0).contains(&n) {
                return Err(Error::Usage(
                    "--callback-port must be an integer from 0 to 65535".into(),
                ));
            }
            Some(n as u16)
        }
        None => None,
    };
    Ok(Some(SignIn {
        logout: args.logout,
        device: args.device_auth,
        callback_port,
    }))
}

/// `--batch` and the flags that only make sense with it (or with `--count`).
fn check_batch_flags(args: &Args, jobs: bool, count: bool) -> Result<Option<String>> {
    let Some(batch) = args.batch.clone() else {
        for (given, flag) in [
            (args.results.is_some(), "--results"),
            (args.fresh, "--fresh"),
        ] {
            if given {
                return Err(Error::Usage(format!("{flag} needs --batch")));
            }
        }
        if jobs && !count && args.serve.is_none() {
            return Err(Error::Usage("--jobs needs --batch or --count".into()));
        }
        if count {
            for (given, flag) in [
                (args.smoke, "--smoke"),
                (args.refresh_only, "--refresh-only"),
                (args.usage, "--usage"),
            ] {
                if given {
                    return Err(Error::Usage(format!("{flag} cannot be used with --count")));
                }
            }
        }
        return Ok(None);
    };
    if batch.is_empty() {
        return Err(Error::Usage("--batch needs a file (or - for stdin)".into()));
    }
    let has_prompt = !args.words.is_empty()
        || args.prompt.as_deref().is_some_and(|p| !p.is_empty())
        || args.prompt_file.as_deref().is_some_and(|p| !p.is_empty());
    if has_prompt {
        return Err(Error::Usage(
            "--batch reads the prompts from its file; remove the prompt (positional words, \
             --prompt or --prompt-file)"
                .into(),
        ));
    }
    if args.output.as_deref().is_some_and(|o| !o.is_empty()) {
        return Err(Error::Usage(
            "--output names one image; with --batch use --out-dir, or an \"output\" key on a \
             line"
                .into(),
        ));
    }
    for (given, flag) in [
        (args.smoke, "--smoke"),
        (args.refresh_only, "--refresh-only"),
        (args.usage, "--usage"),
    ] {
        if given {
            return Err(Error::Usage(format!("{flag} cannot be used with --batch")));
        }
    }
    Ok(Some(batch))
}

/// A whole number from `min` to `max` for `flag`, read as the other numeric flags are.
fn parse_whole(flag: &str, value: &str, min: u32, max: u32) -> Result<u32> {
    let n = js_number(value);
    if value.trim().is_empty() || n.fract() != 0.0 || !(min as f64..=max as f64).contains(&n) {
        return Err(Error::Usage(format!(
            "{flag} must be an integer from {min} to {max}"
        )));
    }
    Ok(n as u32)
}

/// Each control flag in `--help` order, then the rules that involve several flags. Reading the
/// mask file needs the file system, so only its presence is checked here.
fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim)
}

fn image_controls(
    args: &Args,
) -> std::result::Result<(ImageControls, Option<String>), ControlError> {
    let mut c = ImageControls::default();
    let given = [
        ("size", &args.size),
        ("quality", &args.quality),
        ("format", &args.format),
        ("compression", &args.compression),
        ("background", &args.background),
        ("image-model", &args.image_model),
        ("moderation", &args.moderation),
        ("partial-images", &args.partial_images),
        ("action", &args.action),
        ("input-fidelity", &args.input_fidelity),
    ];
    for (flag, value) in given {
        if let Some(v) = text(value) {
            c.set(flag, v)?;
        }
    }
    // An empty `--mask="$UNSET"` means "not given", like the other path options.
    let mask = args.mask.clone().filter(|m| !m.is_empty());
    let references = args
        .reference_flags
        .iter()
        .filter(|(_, value)| value.split(',').any(|part| !part.trim().is_empty()))
        .count();
    controls::check_combination(&c, references, mask.is_some())?;
    Ok((c, mask))
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
        // A relative path is resolved against --cwd, by the caller reading it.
        return Ok(PromptSource::File(file.to_string()));
    }
    if let Some(prompt) = args.prompt.as_deref().filter(|p| !p.is_empty()) {
        return Ok(PromptSource::Inline(prompt.to_string()));
    }
    if !args.words.is_empty() {
        return Ok(PromptSource::Inline(args.words.join(" ")));
    }
    Ok(PromptSource::None)
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
}
