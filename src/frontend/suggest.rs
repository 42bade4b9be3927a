//! "Did you mean …?": the known name closest to a mistyped one, for unknown flags and unknown
//! MCP arguments.
//!
//! Closeness is the optimal-string-alignment distance (edits, with a swap of two neighbours as
//! one edit), allowed to grow with the word: one edit for short words, two from five characters
//! on, so `--promt` finds `--prompt` and `--bogus` finds nothing. Names are compared as typed:
//! every flag and argument is lower case, so a word with capitals gets no guess (`--Prompt`
//! keeps the Node tool's one-line answer, which scripts match).

/// The candidate nearest to `word`, if one is near enough; the first of equals wins.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if word.chars().any(char::is_uppercase) {
        return None;
    }
    let length = word.chars().count();
    let allowed = match length {
        0..=2 => return None,
        3..=4 => 1,
        _ => 2,
    };
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = edit_distance(word, candidate);
        if distance == 0 || distance > allowed {
            continue;
        }
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, name)| name)
}

/// Optimal string alignment distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: [&str; 6] = [
        "--prompt",
        "--prompt-file",
        "--size",
        "--quality",
        "--debug",
        "--json",
    ];

    #[test]
    fn near_misses_find_their_flag() {
        assert_eq!(closest("--promt", FLAGS), Some("--prompt"));
        assert_eq!(closest("--qaulity", FLAGS), Some("--quality"));
        assert_eq!(closest("--szie", FLAGS), Some("--size"));
        assert_eq!(closest("qualty", ["prompt", "quality"]), Some("quality"));
    }

    #[test]
    fn far_words_and_capitals_get_no_guess() {
        assert_eq!(closest("--bogus", FLAGS), None);
        assert_eq!(closest("--first-bad", FLAGS), None);
        assert_eq!(closest("--Prompt", FLAGS), None);
        assert_eq!(closest("colour", ["prompt", "quality", "count"]), None);
        assert_eq!(closest("ab", ["abc"]), None);
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "acb"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
