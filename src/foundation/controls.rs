//! Image control flags: validation of the values a user typed into [`ImageControls`], a part
//! of every `JobSpec`. What the values become in each backend's body is `backend/body.rs`; the
//! mask file's check is `backend/mask.rs`.
//!
//! Design:
//! - Every flag value is validated here, once, into the canonical string or number the backend
//!   expects (`jpg` becomes `jpeg`, `16:9` becomes `1536x864`). After that, [`ImageControls`]
//!   only ever holds valid values, so the request builders never fail.
//! - Values are matched ASCII case-insensitively and stored lowercase: `--quality HIGH` is an
//!   obvious intent and rejecting it helps nobody. `jpg` is accepted for `--format` because it is
//!   the extension people type; the APIs only know `jpeg`.
//! - Errors are usage errors (the CLI exits 2). Each names the flag and what is allowed, so the
//!   message alone tells the user how to fix the command line.
//! - Checks that involve more than one flag (compression without jpeg/webp, transparent JPEG,
//!   a mask without a reference image) live in [`check_combination`], because single-value
//!   parsing cannot see the other flags and the order flags arrive in must not matter.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::size_limits::{nearest_size, MAX_PIXELS, MAX_RATIO, MAX_SIDE};

/// A rejected flag value or flag combination. Display is the whole user-facing message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ControlError {
    flag: &'static str,
    message: String,
}

impl ControlError {
    pub(crate) fn new(flag: &'static str, message: impl Into<String>) -> Self {
        Self {
            flag,
            message: message.into(),
        }
    }

    fn one_of(flag: &'static str, allowed: &[&str]) -> Self {
        Self::new(
            flag,
            format!("{flag} must be one of: {}", allowed.join(", ")),
        )
    }

    /// The flag the error is about, e.g. `--size`.
    #[cfg(test)]
    pub(crate) fn flag(&self) -> &'static str {
        self.flag
    }
}

/// Only the options given are sent. Values are already validated strings/numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageControls {
    pub size: Option<String>, // "1536x864" | "auto"  (W:H already turned into WxH)
    pub quality: Option<String>, // low|medium|high|auto
    pub format: Option<String>, // png|jpeg|webp
    pub compression: Option<u8>, // 0-100, jpeg/webp only
    pub background: Option<String>, // auto|opaque|transparent
    pub image_model: Option<String>, // e.g. gpt-image-2
    pub moderation: Option<String>, // auto|low
    pub partial_images: Option<u8>, // 0-3
    pub action: Option<String>, // auto|generate|edit
    pub input_fidelity: Option<String>, // low|high
}

const QUALITY: &[&str] = &["low", "medium", "high", "auto"];
const FORMAT: &[&str] = &["png", "jpeg", "webp"];
const BACKGROUND: &[&str] = &["auto", "opaque", "transparent"];
const MODERATION: &[&str] = &["auto", "low"];
const ACTION: &[&str] = &["auto", "generate", "edit"];
const INPUT_FIDELITY: &[&str] = &["low", "high"];

/// `W:H` picks the largest exact-ratio size whose area fits in the classic 1536x1024 budget:
/// big enough to be useful, small enough to stay in the fast/cheap tier.
const RATIO_AREA_BUDGET: u64 = 1536 * 1024;

fn one_of(flag: &'static str, value: &str, allowed: &[&str]) -> Result<String, ControlError> {
    let lower = value.to_ascii_lowercase();
    if allowed.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(ControlError::one_of(flag, allowed))
    }
}

/// Digits only: `u8::from_str` would also take `+5`, which is not what "an integer" means on a
/// command line and would make `-5` vs `+5` behave differently for no reason.
fn small_int(flag: &'static str, value: &str, max: u8) -> Result<u8, ControlError> {
    let err = || ControlError::new(flag, format!("{flag} must be an integer from 0 to {max}"));
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    // Leading zeros could make a huge string; parse as u64 after trimming them.
    let trimmed = value.trim_start_matches('0');
    if trimmed.len() > 3 {
        return Err(err());
    }
    let n: u64 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().map_err(|_| err())?
    };
    if n > u64::from(max) {
        return Err(err());
    }
    u8::try_from(n).map_err(|_| err())
}

/// A positive decimal integer that fits in u32, for the sides of `WxH` / `W:H`.
fn side(part: &str) -> Option<u32> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

const SIZE_FORMS: &str = "WxH (e.g. 1536x1024), W:H (e.g. 16:9) or auto";

/// `--size WxH|W:H|auto`, returned as the `WxH` (or `auto`) string the APIs take.
pub(crate) fn parse_size(value: &str) -> Result<String, ControlError> {
    const F: &str = "--size";
    let lower = value.to_ascii_lowercase();
    if lower == "auto" {
        return Ok(lower);
    }
    if let Some((w, h)) = lower.split_once('x') {
        let (Some(w), Some(h)) = (side(w), side(h)) else {
            return Err(ControlError::new(F, format!("{F} must be {SIZE_FORMS}")));
        };
        check_pixel_size(w, h)?;
        return Ok(format!("{w}x{h}"));
    }
    if let Some((w, h)) = lower.split_once(':') {
        let (Some(w), Some(h)) = (side(w), side(h)) else {
            return Err(ControlError::new(F, format!("{F} must be {SIZE_FORMS}")));
        };
        let (w, h) = size_for_ratio(w, h)?;
        return Ok(format!("{w}x{h}"));
    }
    Err(ControlError::new(F, format!("{F} must be {SIZE_FORMS}")))
}

/// The backend's rules for an explicit `WxH` (every front-end's, the service's included).
pub(crate) fn check_pixel_size(w: u32, h: u32) -> Result<(), ControlError> {
    const F: &str = "--size";
    if w == 0 || h == 0 {
        return Err(ControlError::new(
            F,
            format!("{F} {w}x{h}: width and height must be greater than 0"),
        ));
    }
    if !w.is_multiple_of(16) || !h.is_multiple_of(16) {
        return Err(ControlError::new(
            F,
            format!("{F} {w}x{h}: width and height must both be multiples of 16"),
        ));
    }
    let (long, short) = (u64::from(w.max(h)), u64::from(w.min(h)));
    if long > u64::from(MAX_SIDE) {
        return Err(ControlError::new(
            F,
            format!("{F} {w}x{h}: the longer side must be at most {MAX_SIDE} pixels"),
        ));
    }
    if long > short * MAX_RATIO {
        return Err(ControlError::new(
            F,
            format!("{F} {w}x{h}: the aspect ratio must be at most 3:1 (long side / short side)"),
        ));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(ControlError::new(
            F,
            format!("{F} {w}x{h}: at most {MAX_PIXELS} pixels (3840x2160) in total"),
        ));
    }
    Ok(())
}

/// A refused `WxH` names the nearest valid size (the service keeps OpenAI's wording instead).
fn with_nearest(mut error: ControlError, value: &str) -> ControlError {
    let lower = value.to_ascii_lowercase();
    let sides = lower.split_once('x').map(|(w, h)| (side(w), side(h)));
    if let Some((w, h)) = sides.and_then(|s| nearest_size(s.0?, s.1?)) {
        error.message = format!("{}; the nearest valid size is {w}x{h}", error.message);
    }
    error
}

/// Largest `WxH` with exactly the ratio `w:h`, both sides multiples of 16, area within budget.
///
/// After reducing by the gcd to `w':h'`, every exact-ratio size with 16-multiple sides is
/// `k * (16w' x 16h')` for a positive integer `k` (the gcd of the two sides is `16k`), so the
/// answer is the largest `k` with `k^2 * 256 * w' * h' <= budget`.
pub(crate) fn size_for_ratio(w: u32, h: u32) -> Result<(u32, u32), ControlError> {
    const F: &str = "--size";
    if w == 0 || h == 0 {
        return Err(ControlError::new(
            F,
            format!("{F} {w}:{h}: both sides of the ratio must be greater than 0"),
        ));
    }
    let g = gcd(u64::from(w), u64::from(h));
    let (rw, rh) = (u64::from(w) / g, u64::from(h) / g);
    if rw.max(rh) > rw.min(rh) * MAX_RATIO {
        return Err(ControlError::new(
            F,
            format!("{F} {w}:{h}: the aspect ratio must be at most 3:1 (or 1:3)"),
        ));
    }
    let unit_area = 256u64.saturating_mul(rw).saturating_mul(rh);
    let mut k = isqrt(RATIO_AREA_BUDGET / unit_area.max(1));
    // isqrt of the floored quotient equals floor(sqrt(budget/unit)), but guard anyway so a
    // rounding slip can never yield a size over budget.
    while k > 0 && k * k * unit_area > RATIO_AREA_BUDGET {
        k -= 1;
    }
    if k == 0 {
        return Err(ControlError::new(
            F,
            format!(
                "{F} {w}:{h}: no size with exactly this ratio has sides that are multiples of 16 \
                 and fits in 1536x1024 pixels; use a simpler ratio or WxH"
            ),
        ));
    }
    let (out_w, out_h) = (16 * rw * k, 16 * rh * k);
    // Both are below 1536*1024 here, so they fit in u32.
    match (u32::try_from(out_w), u32::try_from(out_h)) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        _ => Err(ControlError::new(
            F,
            format!("{F} {w}:{h}: ratio out of range"),
        )),
    }
}

fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    // Newton's method on integers: converges to floor(sqrt(n)) without float rounding worries.
    let mut x = n;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + n / x) / 2;
    }
    x
}

pub(crate) fn parse_quality(value: &str) -> Result<String, ControlError> {
    one_of("--quality", value, QUALITY)
}

/// `--format` / `--output-format`; `jpg` is taken as `jpeg`.
pub(crate) fn parse_format(value: &str) -> Result<String, ControlError> {
    if value.eq_ignore_ascii_case("jpg") {
        return Ok("jpeg".to_string());
    }
    one_of("--format", value, FORMAT)
}

pub(crate) fn parse_compression(value: &str) -> Result<u8, ControlError> {
    small_int("--compression", value, 100)
}

pub(crate) fn parse_background(value: &str) -> Result<String, ControlError> {
    one_of("--background", value, BACKGROUND)
}

/// Any slug is passed through (new image models appear without a release of this tool), but an
/// empty or space-containing value is always a quoting mistake.
pub(crate) fn parse_image_model(value: &str) -> Result<String, ControlError> {
    const F: &str = "--image-model";
    if value.is_empty() {
        return Err(ControlError::new(
            F,
            format!("{F} must not be empty (e.g. gpt-image-2)"),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ControlError::new(
            F,
            format!("{F} must be a model slug without spaces (e.g. gpt-image-2)"),
        ));
    }
    Ok(value.to_string())
}

pub(crate) fn parse_moderation(value: &str) -> Result<String, ControlError> {
    one_of("--moderation", value, MODERATION)
}

pub(crate) fn parse_partial_images(value: &str) -> Result<u8, ControlError> {
    small_int("--partial-images", value, 3)
}

pub(crate) fn parse_action(value: &str) -> Result<String, ControlError> {
    one_of("--action", value, ACTION)
}

pub(crate) fn parse_input_fidelity(value: &str) -> Result<String, ControlError> {
    one_of("--input-fidelity", value, INPUT_FIDELITY)
}

/// Cross-flag rules. Run after all flags are parsed; `reference_count` counts `--image` and
/// `--image-url` together.
pub(crate) fn check_combination(
    controls: &ImageControls,
    reference_count: usize,
    has_mask: bool,
) -> Result<(), ControlError> {
    let format = controls.format.as_deref();
    if controls.compression.is_some() && !matches!(format, Some("jpeg" | "webp")) {
        return Err(ControlError::new(
            "--compression",
            "--compression needs --format jpeg or webp (png output is lossless)",
        ));
    }
    if controls.background.as_deref() == Some("transparent") && format == Some("jpeg") {
        return Err(ControlError::new(
            "--background",
            "--background transparent needs --format png or webp (jpeg has no alpha channel)",
        ));
    }
    if has_mask && reference_count == 0 {
        return Err(ControlError::new(
            "--mask",
            "--mask needs at least one reference image (--image or --image-url): the mask \
             marks the area of the first one to edit",
        ));
    }
    Ok(())
}

impl ImageControls {
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Parses one flag by name (`--size` or `size`, `--output-format` as an alias of
    /// `--format`) into `self`, for front-ends that get name/value pairs (batch lines, HTTP).
    pub(crate) fn set(&mut self, flag: &str, value: &str) -> Result<(), ControlError> {
        match flag.trim_start_matches("--") {
            "size" => self.size = Some(parse_size(value).map_err(|e| with_nearest(e, value))?),
            "quality" => self.quality = Some(parse_quality(value)?),
            "format" | "output-format" | "output_format" => {
                self.format = Some(parse_format(value)?)
            }
            "compression" => self.compression = Some(parse_compression(value)?),
            "background" => self.background = Some(parse_background(value)?),
            "image-model" | "image_model" => self.image_model = Some(parse_image_model(value)?),
            "moderation" => self.moderation = Some(parse_moderation(value)?),
            "partial-images" | "partial_images" => {
                self.partial_images = Some(parse_partial_images(value)?)
            }
            "action" => self.action = Some(parse_action(value)?),
            "input-fidelity" | "input_fidelity" => {
                self.input_fidelity = Some(parse_input_fidelity(value)?)
            }
            _ => {
                return Err(ControlError::new(
                    "",
                    format!(
                        "unknown image control {flag:?}; known: --size, --quality, --format, \
                         --compression, --background, --image-model, --moderation, \
                         --partial-images, --action, --input-fidelity"
                    ),
                ))
            }
        }
        Ok(())
    }

    /// The controls the user gave, for reports and sidecars; `{}` when none.
    pub(crate) fn requested_json(&self) -> Value {
        let mut m = Map::new();
        put_str(&mut m, "size", &self.size);
        put_str(&mut m, "quality", &self.quality);
        put_str(&mut m, "format", &self.format);
        put_num(&mut m, "compression", self.compression);
        put_str(&mut m, "background", &self.background);
        put_str(&mut m, "image_model", &self.image_model);
        put_str(&mut m, "moderation", &self.moderation);
        put_num(&mut m, "partial_images", self.partial_images);
        put_str(&mut m, "action", &self.action);
        put_str(&mut m, "input_fidelity", &self.input_fidelity);
        Value::Object(m)
    }
}

pub(crate) fn put_str(m: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        m.insert(key.to_string(), Value::String(v.clone()));
    }
}

pub(crate) fn put_num(m: &mut Map<String, Value>, key: &str, value: Option<u8>) {
    if let Some(v) = value {
        m.insert(key.to_string(), Value::from(v));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn err(r: Result<impl std::fmt::Debug, ControlError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn ratio_table() {
        for (ratio, want) in [
            ("16:9", "1536x864"),
            ("3:2", "1536x1024"),
            ("1:1", "1248x1248"),
            ("2:3", "1024x1536"),
            ("9:16", "864x1536"),
            ("32:18", "1536x864"),
            ("4:3", "1408x1056"),
            ("3:1", "2160x720"),
            ("1:3", "720x2160"),
        ] {
            assert_eq!(parse_size(ratio).unwrap(), want, "{ratio}");
        }
    }

    #[test]
    fn ratio_results_are_exact_and_within_budget() {
        for w in 1..=30u32 {
            for h in 1..=30u32 {
                let Ok((a, b)) = size_for_ratio(w, h) else {
                    continue;
                };
                assert_eq!(u64::from(a) * u64::from(h), u64::from(b) * u64::from(w));
                assert_eq!((a % 16, b % 16), (0, 0));
                assert!(u64::from(a) * u64::from(b) <= RATIO_AREA_BUDGET);
                // One step bigger would break the budget: it is the largest.
                let g = gcd(u64::from(w), u64::from(h));
                let (ua, ub) = (16 * u64::from(w) / g, 16 * u64::from(h) / g);
                assert!((u64::from(a) + ua) * (u64::from(b) + ub) > RATIO_AREA_BUDGET);
                assert!(check_pixel_size(a, b).is_ok());
            }
        }
    }

    #[test]
    fn a_refused_size_names_the_nearest_valid_one() {
        let mut c = ImageControls::default();
        assert_eq!(
            c.set("size", "1000x1000").unwrap_err().to_string(),
            "--size 1000x1000: width and height must both be multiples of 16; \
             the nearest valid size is 1008x1008"
        );
        assert_eq!(
            c.set("size", "big").unwrap_err().to_string(),
            "--size must be WxH (e.g. 1536x1024), W:H (e.g. 16:9) or auto"
        );
        let grid = (0..4000)
            .step_by(97)
            .flat_map(|w| (0..4000).step_by(89).map(move |h| (w, h)));
        for (w, h) in grid {
            let fits = crate::foundation::size_limits::fits(w, h);
            assert_eq!(check_pixel_size(w, h).is_ok(), fits, "{w}x{h}");
        }
    }

    #[test]
    fn size_forms() {
        assert_eq!(parse_size("auto").unwrap(), "auto");
        assert_eq!(parse_size("AUTO").unwrap(), "auto");
        assert_eq!(parse_size("1024x1024").unwrap(), "1024x1024");
        assert_eq!(parse_size("1536X864").unwrap(), "1536x864");
        assert_eq!(parse_size("3840x2160").unwrap(), "3840x2160");
        assert_eq!(parse_size("2160x3840").unwrap(), "2160x3840");
        assert_eq!(parse_size("3840x1280").unwrap(), "3840x1280");
    }

    #[test]
    fn size_errors() {
        let forms = "--size must be WxH (e.g. 1536x1024), W:H (e.g. 16:9) or auto";
        for bad in [
            "", "big", "1024", "1024x", "x1024", "-16x16", "16x16x16", "1e3x16", "16:", ":9",
            "a:b", "16x+16",
        ] {
            assert_eq!(err(parse_size(bad)), forms, "{bad:?}");
        }
        assert_eq!(
            err(parse_size("0x1024")),
            "--size 0x1024: width and height must be greater than 0"
        );
        assert_eq!(
            err(parse_size("1000x1000")),
            "--size 1000x1000: width and height must both be multiples of 16"
        );
        assert_eq!(
            err(parse_size("4096x2048")),
            "--size 4096x2048: the longer side must be at most 3840 pixels"
        );
        assert_eq!(
            err(parse_size("3200x1056")),
            "--size 3200x1056: the aspect ratio must be at most 3:1 (long side / short side)"
        );
        assert_eq!(
            err(parse_size("3840x2176")),
            "--size 3840x2176: at most 8294400 pixels (3840x2160) in total"
        );
        assert_eq!(
            err(parse_size("0:9")),
            "--size 0:9: both sides of the ratio must be greater than 0"
        );
        assert_eq!(
            err(parse_size("4:1")),
            "--size 4:1: the aspect ratio must be at most 3:1 (or 1:3)"
        );
        assert_eq!(
            err(parse_size("1000:999")),
            "--size 1000:999: no size with exactly this ratio has sides that are multiples of 16 \
             and fits in 1536x1024 pixels; use a simpler ratio or WxH"
        );
        assert_eq!(parse_size("1000:999").unwrap_err().flag(), "--size");
    }

    #[test]
    fn enum_flags() {
        assert_eq!(parse_quality("High").unwrap(), "high");
        assert_eq!(
            err(parse_quality("ultra")),
            "--quality must be one of: low, medium, high, auto"
        );
        assert_eq!(parse_format("jpg").unwrap(), "jpeg");
        assert_eq!(parse_format("JPEG").unwrap(), "jpeg");
        assert_eq!(parse_format("webp").unwrap(), "webp");
        assert_eq!(
            err(parse_format("gif")),
            "--format must be one of: png, jpeg, webp"
        );
        assert_eq!(
            err(parse_background("clear")),
            "--background must be one of: auto, opaque, transparent"
        );
        assert_eq!(
            err(parse_moderation("high")),
            "--moderation must be one of: auto, low"
        );
        assert_eq!(
            err(parse_action("create")),
            "--action must be one of: auto, generate, edit"
        );
        assert_eq!(
            err(parse_input_fidelity("medium")),
            "--input-fidelity must be one of: low, high"
        );
        assert_eq!(parse_action("edit").unwrap(), "edit");
    }

    #[test]
    fn numeric_flags() {
        assert_eq!(parse_compression("0").unwrap(), 0);
        assert_eq!(parse_compression("100").unwrap(), 100);
        assert_eq!(parse_compression("0080").unwrap(), 80);
        for bad in ["101", "-1", "+5", "5.5", "", "abc", "99999999999999999999"] {
            assert_eq!(
                err(parse_compression(bad)),
                "--compression must be an integer from 0 to 100",
                "{bad:?}"
            );
        }
        assert_eq!(parse_partial_images("3").unwrap(), 3);
        assert_eq!(
            err(parse_partial_images("4")),
            "--partial-images must be an integer from 0 to 3"
        );
    }

    #[test]
    fn image_model_flag() {
        assert_eq!(parse_image_model("gpt-image-2").unwrap(), "gpt-image-2");
        assert_eq!(
            err(parse_image_model("")),
            "--image-model must not be empty (e.g. gpt-image-2)"
        );
        assert_eq!(
            err(parse_image_model("gpt image")),
            "--image-model must be a model slug without spaces (e.g. gpt-image-2)"
        );
    }

    #[test]
    fn set_by_name() {
        let mut c = ImageControls::default();
        c.set("--output-format", "jpg").unwrap();
        c.set("size", "16:9").unwrap();
        c.set("--partial-images", "2").unwrap();
        assert_eq!(c.format.as_deref(), Some("jpeg"));
        assert_eq!(c.size.as_deref(), Some("1536x864"));
        assert_eq!(c.partial_images, Some(2));
        assert!(err(c.set("--colour", "red")).starts_with("unknown image control \"--colour\""));
    }

    #[test]
    fn combinations() {
        let c = ImageControls {
            compression: Some(50),
            ..Default::default()
        };
        assert_eq!(
            err(check_combination(&c, 0, false)),
            "--compression needs --format jpeg or webp (png output is lossless)"
        );
        let c = ImageControls {
            compression: Some(50),
            format: Some("png".into()),
            ..Default::default()
        };
        assert!(check_combination(&c, 0, false).is_err());
        let c = ImageControls {
            compression: Some(50),
            format: Some("webp".into()),
            ..Default::default()
        };
        assert!(check_combination(&c, 0, false).is_ok());
        let c = ImageControls {
            background: Some("transparent".into()),
            format: Some("jpeg".into()),
            ..Default::default()
        };
        assert_eq!(
            err(check_combination(&c, 0, false)),
            "--background transparent needs --format png or webp (jpeg has no alpha channel)"
        );
        let c = ImageControls {
            background: Some("transparent".into()),
            ..Default::default()
        };
        assert!(check_combination(&c, 0, false).is_ok());
        let e = check_combination(&ImageControls::default(), 0, true).unwrap_err();
        assert_eq!(e.flag(), "--mask");
        assert_eq!(
            e.to_string(),
            "--mask needs at least one reference image (--image or --image-url): the mask marks \
             the area of the first one to edit"
        );
        assert!(check_combination(&ImageControls::default(), 1, true).is_ok());
    }

    pub(crate) fn all() -> ImageControls {
        ImageControls {
            size: Some("1536x864".into()),
            quality: Some("high".into()),
            format: Some("webp".into()),
            compression: Some(80),
            background: Some("transparent".into()),
            image_model: Some("gpt-image-2".into()),
            moderation: Some("low".into()),
            partial_images: Some(2),
            action: Some("edit".into()),
            input_fidelity: Some("high".into()),
        }
    }

    #[test]
    fn empty_and_requested() {
        assert!(ImageControls::default().is_empty());
        assert!(!all().is_empty());
        assert_eq!(ImageControls::default().requested_json().to_string(), "{}");
        assert_eq!(
            all().requested_json().to_string(),
            r#"{"size":"1536x864","quality":"high","format":"webp","compression":80,"background":"transparent","image_model":"gpt-image-2","moderation":"low","partial_images":2,"action":"edit","input_fidelity":"high"}"#
        );
        let c = ImageControls {
            quality: Some("low".into()),
            ..Default::default()
        };
        assert_eq!(c.requested_json().to_string(), r#"{"quality":"low"}"#);
    }

    #[test]
    fn serde_round_trip() {
        let c = all();
        let s = serde_json::to_string(&c).unwrap();
        let back: ImageControls = serde_json::from_str(&s).unwrap();
        assert_eq!(back, c);
        let empty: ImageControls = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
    }
}
