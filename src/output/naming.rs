//! Where each image of an attempt goes (SPEC §9.1–9.3): an exact `--output` file, a directory,
//! automatic names from the time and the call id, a stable stem or index (batch, `--count`),
//! numbered names when one attempt brings several images, and the extension the bytes call for.

use std::path::{Path, PathBuf};

use super::inspect::ImageFormat;
use super::spill;
use crate::foundation::job::Naming;
use crate::foundation::paths;

/// Where images go for one attempt.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    /// `--output` as typed, and resolved against the job's base directory.
    output: Option<(String, PathBuf)>,
    out_dir: PathBuf,
    timestamp: String,
    naming: Naming,
    temps: spill::TempFiles,
    /// Where an image is kept when it cannot be written where it should go
    /// ([`super::rescue`]); `None`: nowhere, the write's error is the job's.
    rescue: Option<PathBuf>,
}

impl OutputPlan {
    /// `env` is the engine's environment with the job's base directory.
    pub fn new(output: Option<String>, out_dir: PathBuf, env: &paths::Environment) -> Self {
        OutputPlan {
            output: output.map(|typed| {
                let resolved = env.resolve(&typed);
                (typed, resolved)
            }),
            out_dir,
            timestamp: chrono::Utc::now().format("%Y%m%d-%H%M%SZ").to_string(),
            naming: Naming::Spec,
            temps: spill::TempFiles::default(),
            rescue: None,
        }
    }

    /// Images that cannot be written where they should go are kept in `dir`.
    pub(crate) fn with_rescue_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.rescue = dir;
        self
    }

    pub(crate) fn naming(&self) -> &Naming {
        &self.naming
    }

    pub(crate) fn rescue_dir(&self) -> Option<&Path> {
        self.rescue.as_deref()
    }

    /// The directory every image of this plan is written in (an exact file's parent).
    pub(crate) fn directory(&self) -> PathBuf {
        match self.exact_file() {
            Some(file) => file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            None => self.auto_dir(),
        }
    }

    /// Automatic names follow `naming` instead of the SPEC's.
    pub fn with_naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// `--output` naming one exact file (not a directory).
    pub(crate) fn exact_file(&self) -> Option<PathBuf> {
        let (typed, resolved) = self.output.as_ref()?;
        (!looks_like_directory(typed)).then(|| resolved.clone())
    }

    /// Live spill files are recorded in `temps` (the engine's), for a forced exit.
    pub(crate) fn with_temp_files(mut self, temps: spill::TempFiles) -> Self {
        self.temps = temps;
        self
    }

    /// Where a large image is decoded while it streams in ([`spill`]): the directory every
    /// image of this plan is saved in, so saving it is a rename.
    pub(crate) fn spill_target(&self) -> spill::SpillTarget {
        spill::SpillTarget {
            dir: self.directory(),
            temps: self.temps.clone(),
        }
    }

    fn auto_dir(&self) -> PathBuf {
        match &self.output {
            Some((_, resolved)) => resolved.clone(),
            None => self.out_dir.clone(),
        }
    }

    /// Path for image `index` (0-based) of a PNG; `total` is known only when not streaming.
    #[cfg(test)]
    pub fn path_for(&self, call_id: Option<&str>, index: usize, total: Option<usize>) -> PathBuf {
        self.path_for_format(call_id, index, total, Some(ImageFormat::Png))
    }

    /// Path for image `index` whose bytes are `format`: automatic and numbered names take its
    /// extension (PNG when unrecognised); an exact `--output` file is used as given.
    pub(crate) fn path_for_format(
        &self,
        call_id: Option<&str>,
        index: usize,
        total: Option<usize>,
        format: Option<ImageFormat>,
    ) -> PathBuf {
        let ext = format.unwrap_or(ImageFormat::Png).extension();
        match self.exact_file() {
            Some(file) if total.is_none() && index == 0 => file,
            Some(file) if total == Some(1) => file,
            Some(file) => numbered(&file, index, total, ext),
            None => self.auto_dir().join(match &self.naming {
                Naming::Spec => auto_name(call_id, index, total, &self.timestamp, ext),
                Naming::Stem(stem) => format!("{}-{}.{ext}", safe_name(stem), index + 1),
                Naming::Index => format!("{}.{ext}", index + 1),
            }),
        }
    }

    /// The warning for an exact `--output` file whose extension is not the image's format.
    pub(crate) fn extension_warning(
        &self,
        path: &Path,
        format: Option<ImageFormat>,
    ) -> Option<String> {
        let (typed, _) = self.output.as_ref()?;
        let format = format?;
        if self.exact_file().as_deref() != Some(path) {
            return None;
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        if ImageFormat::from_extension(&ext) == Some(format) {
            return None;
        }
        Some(format!(
            "codex-imagen: warning: --output {typed} has extension .{ext} but the image is {}",
            format.as_str()
        ))
    }
}

/// `--output` ending in a separator or without an extension is a directory.
fn looks_like_directory(output: &str) -> bool {
    output.ends_with('/') || output.ends_with('\\') || Path::new(output).extension().is_none()
}

fn padded_index(index: usize, total: Option<usize>) -> String {
    let width = match total {
        Some(t) if t > 1 => t.to_string().len(),
        _ => 1,
    };
    format!("{:0width$}", index + 1)
}

fn safe_call_id(call_id: Option<&str>) -> String {
    match call_id {
        Some(id) => id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        None => "image".to_string(),
    }
}

/// A file-name part from a caller's id: only `[A-Za-z0-9_.-]` survive (no separators, no `..`).
fn safe_name(stem: &str) -> String {
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match cleaned.trim_start_matches('.') {
        "" => "image".to_string(),
        rest => rest.to_string(),
    }
}

fn auto_name(
    call_id: Option<&str>,
    index: usize,
    total: Option<usize>,
    timestamp: &str,
    ext: &str,
) -> String {
    let index_part = match total {
        Some(1) => String::new(),
        _ => format!("{}-", padded_index(index, total)),
    };
    format!(
        "codex-imagen-{timestamp}-{index_part}{}.{ext}",
        safe_call_id(call_id)
    )
}

/// `<stem>-<n>.<ext>` beside the exact file, `ext` being the image's own format: once the
/// name is generated anyway, it should say what the file is. The exact file's extension is
/// kept when it already names that format (`pic.jpeg` stays `pic-1.jpeg`).
pub(crate) fn numbered(file: &Path, index: usize, total: Option<usize>, ext: &str) -> PathBuf {
    if total == Some(1) {
        return file.to_path_buf();
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let own = file.extension().map(|e| e.to_string_lossy().into_owned());
    let ext = match own {
        Some(own) if ImageFormat::from_extension(&own) == ImageFormat::from_extension(ext) => own,
        _ => ext.to_string(),
    };
    file.with_file_name(format!("{stem}-{}.{ext}", padded_index(index, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(output: Option<&str>, dir: &Path) -> OutputPlan {
        let env = paths::Environment::from_vars([], "/home/me".into(), dir.to_path_buf());
        OutputPlan {
            timestamp: "20261122-024900Z".into(),
            ..OutputPlan::new(output.map(str::to_string), dir.to_path_buf(), &env)
        }
    }

    #[test]
    fn stem_and_index_naming_are_stable_and_take_the_format_extension() {
        let dir = Path::new("/out");
        let stem = plan(None, dir).with_naming(Naming::Stem("line-3".into()));
        assert_eq!(
            stem.path_for_format(Some("ig_x"), 0, None, Some(ImageFormat::Webp)),
            PathBuf::from("/out/line-3-1.webp")
        );
        assert_eq!(
            stem.path_for_format(None, 1, Some(2), Some(ImageFormat::Png)),
            PathBuf::from("/out/line-3-2.png")
        );
        let unsafe_stem = plan(None, dir).with_naming(Naming::Stem("../a/b c".into()));
        assert_eq!(
            unsafe_stem.path_for_format(None, 0, None, None),
            PathBuf::from("/out/_a_b_c-1.png")
        );
        let index = plan(None, dir).with_naming(Naming::Index);
        assert_eq!(
            index.path_for_format(None, 2, None, Some(ImageFormat::Jpeg)),
            PathBuf::from("/out/3.jpg")
        );
        // An exact --output file still wins.
        let exact = plan(Some("x.png"), dir).with_naming(Naming::Index);
        assert_eq!(
            exact.path_for_format(None, 0, None, None),
            PathBuf::from("/out/x.png")
        );
    }

    #[test]
    fn automatic_names_follow_the_spec() {
        let dir = PathBuf::from("/out");
        let p = plan(None, &dir);
        assert_eq!(
            p.path_for(Some("ig 1/x"), 0, None),
            dir.join("codex-imagen-20261122-024900Z-1-ig_1_x.png")
        );
        assert_eq!(
            p.path_for(None, 0, Some(1)),
            dir.join("codex-imagen-20261122-024900Z-image.png")
        );
        assert_eq!(
            p.path_for(Some("a"), 2, Some(12)),
            dir.join("codex-imagen-20261122-024900Z-03-a.png")
        );
    }

    #[test]
    fn exact_output_files_are_numbered_for_many() {
        let p = plan(Some("/x/pic.png"), Path::new("/out"));
        assert_eq!(p.path_for(Some("a"), 0, None), PathBuf::from("/x/pic.png"));
        assert_eq!(
            p.path_for(Some("a"), 1, None),
            PathBuf::from("/x/pic-2.png")
        );
        assert_eq!(
            p.path_for(Some("a"), 0, Some(1)),
            PathBuf::from("/x/pic.png")
        );
        assert_eq!(
            p.path_for(Some("a"), 0, Some(10)),
            PathBuf::from("/x/pic-01.png")
        );
        let d = plan(Some("/x/dir"), Path::new("/out"));
        assert_eq!(
            d.path_for(Some("a"), 0, None),
            PathBuf::from("/x/dir/codex-imagen-20261122-024900Z-1-a.png")
        );
        let d = plan(Some("/x/dir.v2/"), Path::new("/out"));
        assert!(d.path_for(Some("a"), 0, None).starts_with("/x/dir.v2"));
    }
}
