//! Finding again the images an interrupted run saved under a job's stable names (issue #20,
//! "batch never pays twice"). A process killed between saving an image and recording it leaves
//! the image where the plan puts it; a rerun that finds it there need not pay for it again.
//!
//! Only names that do not change between runs can be found: an exact output file, or the
//! stem naming batch gives its jobs (`<id>-<k>.<ext>`, k = 1, 2, … while they exist, in any of
//! the formats the backend returns). The SPEC's automatic names carry the time, so a one-shot
//! run adopts nothing. Each file must decode whole as an image (not just start like one): images
//! are renamed into place complete, so anything else is not ours and the job runs again.

use std::path::PathBuf;

use super::decode::sha256_hex;
use super::inspect::ImageFormat;
use super::naming::OutputPlan;
use crate::foundation::job::{Naming, SavedImage};

const FORMATS: [ImageFormat; 3] = [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp];

/// The images already on disk under `plan`'s stable names, in order, described as if just
/// saved; empty when there are none, or when one of them does not decode (the job runs again).
pub(crate) fn saved_images(plan: &OutputPlan) -> Vec<SavedImage> {
    let paths = match plan.exact_file() {
        Some(file) => vec![file],
        None if matches!(plan.naming(), Naming::Stem(_)) => stem_files(plan),
        None => Vec::new(),
    };
    let mut found = Vec::with_capacity(paths.len());
    for path in paths {
        match read_image(path) {
            Some(image) => found.push(image),
            None => return Vec::new(),
        }
    }
    found
}

/// `<stem>-1.<ext>`, `<stem>-2.<ext>`, … while one exists.
fn stem_files(plan: &OutputPlan) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for index in 0.. {
        let here = FORMATS
            .iter()
            .map(|format| plan.path_for_format(None, index, None, Some(*format)))
            .find(|path| path.is_file());
        match here {
            Some(path) => found.push(path),
            None => break,
        }
    }
    found
}

/// The file, when it decodes whole as a PNG, JPEG or WebP image.
fn read_image(path: PathBuf) -> Option<SavedImage> {
    let bytes = std::fs::read(&path).ok()?;
    let format = image::guess_format(&bytes).ok()?;
    if !matches!(
        format,
        image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::WebP
    ) {
        return None;
    }
    image::load_from_memory_with_format(&bytes, format).ok()?;
    let sha256 = sha256_hex(&bytes);
    Some(SavedImage::new(path, &bytes, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::paths::Environment;
    use std::path::Path;

    fn png() -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::new_rgb8(2, 2)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    fn plan(dir: &Path, output: Option<&str>) -> OutputPlan {
        let env = Environment::from_vars([], dir.to_path_buf(), dir.to_path_buf());
        OutputPlan::new(output.map(str::to_string), dir.to_path_buf(), &env)
            .with_naming(Naming::Stem("job-1".into()))
    }

    #[test]
    fn stem_images_are_found_in_order_while_they_exist_and_decode() {
        let dir = tempfile::tempdir().unwrap();
        let paths = |p: &OutputPlan| -> Vec<PathBuf> {
            saved_images(p).into_iter().map(|i| i.path).collect()
        };
        let p = plan(dir.path(), None);
        assert!(paths(&p).is_empty());
        std::fs::write(dir.path().join("job-1-1.png"), png()).unwrap();
        std::fs::write(dir.path().join("job-1-3.png"), png()).unwrap();
        assert_eq!(paths(&p), [dir.path().join("job-1-1.png")]);
        let found = saved_images(&p);
        assert_eq!(found[0].format.as_deref(), Some("png"));
        assert_eq!(found[0].sha256, sha256_hex(&png()));
        std::fs::write(
            dir.path().join("job-1-2.png"),
            b"\x89PNG\r\n\x1a\nnot really",
        )
        .unwrap();
        assert!(paths(&p).is_empty(), "a fake image is not adopted");
        // Automatic SPEC names carry the time: nothing to find.
        assert!(paths(&p.clone().with_naming(Naming::Spec)).is_empty());
        // An exact file is found by its own name.
        let exact = plan(dir.path(), Some("pic.png"));
        assert!(paths(&exact).is_empty());
        std::fs::write(dir.path().join("pic.png"), png()).unwrap();
        assert_eq!(paths(&exact), [dir.path().join("pic.png")]);
    }
}
