//! Reading the prompt the command line points at (`--prompt`, the words, `--prompt-file`): only
//! after auth is ready (SPEC §14, the order of a run), so an auth error comes first.

use super::validate::PromptSource;
use crate::foundation::error::{Error, Result};
use crate::foundation::paths::Environment;

pub(crate) fn read_prompt(source: &PromptSource, env: &Environment) -> Result<String> {
    match source {
        PromptSource::Inline(text) => Ok(text.clone()),
        PromptSource::None => Ok(String::new()),
        PromptSource::File(path) => {
            let path = env.resolve(path);
            let bytes = std::fs::read(&path).map_err(|e| {
                Error::Input(format!("Cannot read --prompt-file {}: {e}", path.display()))
            })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::Input(format!(
                    "--prompt-file {} is not valid UTF-8",
                    path.display()
                ))
            })?;
            // A byte-order mark (Windows editors) is not part of the prompt.
            Ok(text
                .strip_prefix('\u{feff}')
                .map(str::to_string)
                .unwrap_or(text))
        }
    }
}
