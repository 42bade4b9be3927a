//! Long base64 strings lifted out of an event's data while it streams in.
//!
//! An image event is one JSON object whose `result` string is 8–40 MB of base64. Parsed as it
//! arrives, that string is copied once more into the `serde_json::Value` (into fresh pages, so
//! page faults too): 36–50 ms and 32 MiB more for a 32 MiB image, all after its last byte
//! arrived (bench/RESULTS.md). So while the data streams in, a JSON string that grows past
//! [`LIFT_MIN`] base64 characters moves into a buffer of its own, and a short placeholder takes
//! its place in the text; after parsing, [`Lifted::restore`] moves each string back into the
//! `Value`. Each byte is still copied once, from the network chunk into its final buffer.
//!
//! The `Value` is the one the original data parses to: a lifted string holds only base64
//! characters (no escapes, no control characters) and its placeholder is valid string content
//! too, so the text parses exactly when the original does. The placeholder starts with an
//! escaped NUL and carries a random tag, so no string the backend sends is mistaken for one.
//! A string that turns out to hold anything else is put back in the text as it was.
//!
//! With a spill target (the Responses stream, [`DataBuf::new`]), a lifted string is not kept at
//! all: its characters go to a [`SpillWriter`] as they arrive, which decodes them into a
//! temporary file beside the output ([`crate::output::spill`]), so an image in flight costs
//! under 60 KiB here whatever its size (the connection's read buffer, up to 400 KiB in hyper,
//! comes on top). Only the threshold's worth of characters ever enters the text, and that
//! memory is given back when the string is lifted. Such a string stays a placeholder in the restored
//! `Value`; [`Lifted::claim`] trades the placeholder for the image ([`ImageData::Spilled`]).
//! Putting a spilled string back in the text (it was not base64 after all) re-encodes what was
//! decoded, which gives back exactly the characters that came.

use std::sync::Arc;

use serde_json::Value;

use crate::output::saver::ImageData;
use crate::output::spill::{Spill, SpillTarget, SpillWriter};

/// Strings shorter than this stay in the text: lifting pays off only for image data.
pub const LIFT_MIN: usize = 64 * 1024;

/// An event's data as it arrives: the text, and the strings lifted out of it.
#[derive(Debug)]
pub struct DataBuf {
    text: Vec<u8>,
    lifted: Vec<LiftBuf>,
    /// Where each placeholder sits in `text`, and how long it is.
    placeholders: Vec<(usize, usize)>,
    state: Lex,
    tag: u64,
    /// Where lifted strings are decoded to disk as they stream in ([`crate::output::spill`]);
    /// `None` keeps them in memory.
    spill: Option<Arc<SpillTarget>>,
}

/// One string being lifted: kept as text, or decoded to disk.
#[derive(Debug)]
enum LiftBuf {
    Text(Vec<u8>),
    Spill(Box<SpillWriter>),
}

impl LiftBuf {
    fn push(&mut self, bytes: &[u8]) {
        match self {
            LiftBuf::Text(buf) => buf.extend_from_slice(bytes),
            LiftBuf::Spill(writer) => writer.push(bytes),
        }
    }

    fn into_text(self) -> Vec<u8> {
        match self {
            LiftBuf::Text(buf) => buf,
            LiftBuf::Spill(writer) => (*writer).into_text(),
        }
    }
}

/// A lifted string once its event is complete.
#[derive(Debug)]
enum LiftedString {
    Text(String),
    Spilled(Spill),
}

/// Where the lexer is, as far as JSON strings go. Nothing else of JSON matters here: outside a
/// string a `"` always opens one, whatever the text around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Outside,
    /// In a string that holds only base64 characters so far; its content starts at `start`.
    Candidate {
        start: usize,
    },
    /// In a string that holds something else; `escaped` after a backslash.
    Plain {
        escaped: bool,
    },
    /// In a string being lifted into `lifted.last()`.
    Lifting,
}

impl Default for DataBuf {
    fn default() -> Self {
        DataBuf {
            text: Vec::new(),
            lifted: Vec::new(),
            placeholders: Vec::new(),
            state: Lex::Outside,
            tag: fastrand::u64(..),
            spill: None,
        }
    }
}

impl DataBuf {
    /// A buffer whose lifted strings are decoded into files in `spill` as they arrive.
    pub fn new(spill: Option<Arc<SpillTarget>>) -> Self {
        DataBuf {
            spill,
            ..DataBuf::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Append data bytes (a data line's value, or the `\n` that joins lines).
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                Lex::Outside => {
                    let Some(quote) = memchr::memchr(b'"', bytes) else {
                        self.text.extend_from_slice(bytes);
                        return;
                    };
                    self.text.extend_from_slice(&bytes[..=quote]);
                    bytes = &bytes[quote + 1..];
                    self.state = Lex::Candidate {
                        start: self.text.len(),
                    };
                }
                Lex::Candidate { start } => {
                    // Only up to the lifting threshold goes into the text (the rest of a long
                    // run of base64 goes straight to the lifted string below), so the text
                    // never grows by a whole network chunk.
                    let n = base64_prefix(bytes).min(LIFT_MIN - (self.text.len() - start));
                    self.text.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.text.len() - start >= LIFT_MIN {
                        let spill = self.spill.as_deref().and_then(SpillWriter::create);
                        self.lifted.push(match spill {
                            Some(mut writer) => {
                                writer.push(&self.text[start..]);
                                self.text.truncate(start);
                                LiftBuf::Spill(Box::new(writer))
                            }
                            None => LiftBuf::Text(self.text.split_off(start)),
                        });
                        // The threshold's worth of text is gone from here: give its memory back
                        // (an image in flight keeps this buffer until its event ends).
                        self.text.shrink_to_fit();
                        self.state = Lex::Lifting;
                    } else if !bytes.is_empty() {
                        // The closing quote or another character: either way, an ordinary string.
                        self.state = Lex::Plain { escaped: false };
                    }
                }
                Lex::Plain { escaped: true } => {
                    self.text.push(bytes[0]);
                    bytes = &bytes[1..];
                    self.state = Lex::Plain { escaped: false };
                }
                Lex::Plain { escaped: false } => {
                    let Some(at) = memchr::memchr2(b'"', b'\\', bytes) else {
                        self.text.extend_from_slice(bytes);
                        return;
                    };
                    self.text.extend_from_slice(&bytes[..=at]);
                    self.state = if bytes[at] == b'"' {
                        Lex::Outside
                    } else {
                        Lex::Plain { escaped: true }
                    };
                    bytes = &bytes[at + 1..];
                }
                Lex::Lifting => {
                    let n = base64_prefix(bytes);
                    if let Some(buf) = self.lifted.last_mut() {
                        buf.push(&bytes[..n]);
                    }
                    bytes = &bytes[n..];
                    match bytes.first() {
                        None => return,
                        Some(b'"') => {
                            let placeholder = placeholder(self.tag, self.lifted.len() - 1);
                            self.placeholders.push((self.text.len(), placeholder.len()));
                            self.text.extend_from_slice(placeholder.as_bytes());
                            self.state = Lex::Outside;
                            self.text.push(b'"');
                            bytes = &bytes[1..];
                        }
                        Some(_) => self.unlift(),
                    }
                }
            }
        }
    }

    /// Put the string being lifted back into the text, as an ordinary string.
    fn unlift(&mut self) {
        if let Some(buf) = self.lifted.pop() {
            self.text.extend_from_slice(&buf.into_text());
        }
        self.state = Lex::Plain { escaped: false };
    }

    /// Drop the last byte of the text (the `\n` after the last data line).
    pub fn pop(&mut self) {
        if self.state == Lex::Lifting {
            self.unlift();
        }
        self.text.pop();
    }

    /// The text (with placeholders) and the lifted strings. Invalid UTF-8 becomes U+FFFD; as
    /// lifted strings and placeholders are ASCII between ASCII quotes, just where it would in
    /// the data as sent.
    pub fn finish(mut self) -> (String, Lifted) {
        if self.state == Lex::Lifting {
            self.unlift();
        }
        let strings = self
            .lifted
            .into_iter()
            .map(|buf| {
                Some(match buf {
                    LiftBuf::Text(buf) => LiftedString::Text(utf8(buf)),
                    LiftBuf::Spill(writer) => LiftedString::Spilled((*writer).finish()),
                })
            })
            .collect();
        let lifted = Lifted {
            tag: self.tag,
            strings,
            placeholders: self.placeholders,
        };
        (utf8(self.text), lifted)
    }
}

/// Valid UTF-8 (every real event) is taken over without a copy.
fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

fn placeholder(tag: u64, index: usize) -> String {
    format!("\\u0000lift:{tag:016x}:{index}")
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() | (b == b'+') | (b == b'/') | (b == b'=')
}

/// How many bytes at the start of `bytes` are base64 characters. Whole 64-byte blocks are
/// checked without an early exit, which the compiler vectorises (5 GB/s here, 20× a plain
/// `position`).
fn base64_prefix(bytes: &[u8]) -> usize {
    let mut n = 0;
    for block in bytes.chunks_exact(64) {
        if !block.iter().fold(true, |ok, &b| ok & is_base64(b)) {
            break;
        }
        n += 64;
    }
    n + bytes[n..]
        .iter()
        .position(|&b| !is_base64(b))
        .unwrap_or(bytes.len() - n)
}

/// The strings lifted out of one event's text. Strings decoded to disk stay here after
/// [`Lifted::restore`]: their placeholder is what the `Value` holds, and [`Lifted::claim`]
/// trades it for the image. Those never claimed remove their files when this is dropped.
#[derive(Debug, Default)]
pub struct Lifted {
    tag: u64,
    /// Taken as they are put back.
    strings: Vec<Option<LiftedString>>,
    #[cfg_attr(not(test), allow(dead_code))]
    placeholders: Vec<(usize, usize)>,
}

impl Lifted {
    fn index_of(&self, s: &str) -> Option<usize> {
        let rest = s.strip_prefix("\0lift:")?;
        let (tag, index) = rest.split_once(':')?;
        if u64::from_str_radix(tag, 16).ok()? != self.tag || tag.len() != 16 {
            return None;
        }
        index.parse().ok()
    }

    /// The in-memory string behind placeholder `s` (spilled strings stay).
    fn take(&mut self, s: &str) -> Option<String> {
        let index = self.index_of(s)?;
        let slot = self.strings.get_mut(index)?;
        match slot.take()? {
            LiftedString::Text(text) => Some(text),
            spilled => {
                *slot = Some(spilled);
                None
            }
        }
    }

    /// The image data a string of the restored `Value` stands for: the spilled image behind a
    /// placeholder, else the string itself.
    pub fn claim(&mut self, s: String) -> ImageData {
        let slot = self.index_of(&s).and_then(|i| self.strings.get_mut(i));
        match slot.and_then(Option::take) {
            Some(LiftedString::Spilled(spill)) => ImageData::Spilled(spill),
            Some(LiftedString::Text(text)) => ImageData::Inline(text),
            None => ImageData::Inline(s),
        }
    }

    /// Move every lifted string back to where its placeholder is in `value`.
    pub fn restore(&mut self, value: &mut Value) {
        if self.strings.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Some(original) = self.take(s) {
                    *s = original;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.restore(v)),
            Value::Object(map) => {
                // A key of 64 KiB of base64 is absurd, but restoring it is cheap.
                if map.keys().any(|k| self.index_of(k).is_some()) {
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(k, v)| (self.take(&k).unwrap_or(k), v))
                        .collect();
                }
                map.values_mut().for_each(|v| self.restore(v));
            }
            _ => {}
        }
    }

    /// `text` with every placeholder replaced by its string again: the data as it was sent.
    #[cfg(test)]
    pub fn restore_text(mut self, text: String) -> String {
        if self.placeholders.is_empty() {
            return text;
        }
        let mut out = String::with_capacity(text.len());
        let mut from = 0;
        for (index, (at, len)) in std::mem::take(&mut self.placeholders)
            .into_iter()
            .enumerate()
        {
            out.push_str(&text[from..at]);
            if let Some(LiftedString::Text(s)) = self.strings.get_mut(index).and_then(Option::take)
            {
                out.push_str(&s);
            }
            from = at + len;
        }
        out.push_str(&text[from..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lift(pieces: &[&[u8]]) -> (String, Lifted) {
        let mut buf = DataBuf::default();
        for piece in pieces {
            buf.push(piece);
        }
        buf.finish()
    }

    fn in_pieces(text: &[u8], size: usize) -> (String, Lifted) {
        lift(&text.chunks(size).collect::<Vec<_>>())
    }

    #[test]
    fn a_long_base64_string_is_lifted_and_restored_in_any_pieces() {
        let big = "QUJD".repeat(LIFT_MIN / 2) + "==";
        let json =
            format!(r#"{{"type":"x","item":{{"result":"{big}","n":[1,"a\"b\\"],"k":"v"}}}}"#);
        let want: Value = serde_json::from_str(&json).unwrap();
        for size in [1, 3, 1000, LIFT_MIN - 1, json.len()] {
            let (text, mut lifted) = in_pieces(json.as_bytes(), size);
            assert!(
                text.len() < 200,
                "lifted at piece size {size}: {}",
                text.len()
            );
            let mut value: Value = serde_json::from_str(&text).unwrap();
            lifted.restore(&mut value);
            assert!(value == want, "piece size {size}");
            let (text, lifted) = in_pieces(json.as_bytes(), size);
            assert!(lifted.restore_text(text) == json, "piece size {size}");
        }
    }

    #[test]
    fn short_strings_and_strings_with_other_characters_stay_in_the_text() {
        let long_escaped = format!("{}\\n{}", "A".repeat(LIFT_MIN), "B".repeat(10));
        let long_spaced = format!("{} {}", "A".repeat(LIFT_MIN + 10), "B");
        let long_unicode = format!("{}é", "A".repeat(LIFT_MIN * 2));
        let unterminated = format!("{{\"a\":\"{}", "A".repeat(LIFT_MIN * 2));
        let split_by_line = format!("{{\"a\":\"{}\n{}\"}}", "A".repeat(LIFT_MIN * 2), "B");
        for json in [
            r#"{"a":"short","b":"QUJD"}"#.to_string(),
            format!(r#"{{"a":"{long_escaped}"}}"#),
            format!(r#"{{"a":"{long_spaced}"}}"#),
            format!(r#"{{"a":"{long_unicode}"}}"#),
            unterminated,
            split_by_line,
        ] {
            for size in [1, 7, 4096, json.len()] {
                let (text, lifted) = in_pieces(json.as_bytes(), size);
                assert!(text == json, "piece size {size}");
                assert!(lifted.strings.is_empty());
            }
        }
    }

    #[test]
    fn invalid_json_stays_invalid_and_valid_stays_valid() {
        let big = "A".repeat(LIFT_MIN + 1);
        for json in [
            format!(r#"{{"a":"{big}"#),
            format!(r#"{{"a":"{big}",}}"#),
            format!(r#"{{"a":"{big}"}} trailing"#),
            format!(r#"["{big}","{big}"]"#),
            format!(r#"{{"{big}":1}}"#),
        ] {
            let (text, mut lifted) = in_pieces(json.as_bytes(), 5000);
            let original = serde_json::from_str::<Value>(&json);
            let parsed = serde_json::from_str::<Value>(&text).map(|mut v| {
                lifted.restore(&mut v);
                v
            });
            assert_eq!(parsed.is_ok(), original.is_ok(), "{}", &json[..20]);
            if let (Ok(a), Ok(b)) = (parsed, original) {
                assert!(a == b, "{}", &json[..20]);
            }
        }
    }

    #[test]
    fn strings_that_only_look_like_placeholders_are_left_alone() {
        let json = r#"{"a":"\u0000lift:0000000000000000:0","b":"\u0000lift:zz:0"}"#;
        let (text, mut lifted) = in_pieces(json.as_bytes(), 3);
        let mut value: Value = serde_json::from_str(&text).unwrap();
        lifted.restore(&mut value);
        assert_eq!(value, serde_json::from_str::<Value>(json).unwrap());
    }

    fn spill_lift(dir: &std::path::Path, text: &[u8], size: usize) -> (String, Lifted) {
        let target = SpillTarget {
            dir: dir.to_path_buf(),
            temps: Default::default(),
        };
        let mut buf = DataBuf::new(Some(Arc::new(target)));
        for piece in text.chunks(size) {
            buf.push(piece);
        }
        buf.finish()
    }

    fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn with_a_spill_directory_images_are_decoded_to_disk_and_claimed() {
        use base64::Engine;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let image: Vec<u8> = (0..LIFT_MIN * 2).map(|i| (i % 251) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&image);
        let json = format!(r#"{{"item":{{"result":"{b64}","n":"short"}},"other":"{b64}"}}"#);
        for size in [1000, 16 * 1024, json.len()] {
            let (text, mut lifted) = spill_lift(&dir, json.as_bytes(), size);
            assert!(text.len() < 200, "piece size {size}");
            assert_eq!(files(&dir).len(), 2, "both strings are on disk");
            let mut value: Value = serde_json::from_str(&text).unwrap();
            lifted.restore(&mut value);
            assert_eq!(value["item"]["n"], "short");
            let Some(Value::String(placeholder)) = value["item"].get_mut("result").map(Value::take)
            else {
                panic!("the placeholder stays in the value");
            };
            let ImageData::Spilled(spill) = lifted.claim(placeholder) else {
                panic!("claimed as a spilled image");
            };
            assert_eq!(spill.len(), image.len());
            assert_eq!(spill.sha256(), crate::output::decode::sha256_hex(&image));
            assert!(matches!(lifted.claim("plain".into()), ImageData::Inline(s) if s == "plain"));
            drop(spill);
            drop(lifted);
            assert!(
                files(&dir).is_empty(),
                "unclaimed and dropped spills leave no file"
            );
        }
    }

    #[test]
    fn an_image_arriving_in_one_large_chunk_leaves_the_text_small() {
        use base64::Engine;
        let tmp = tempfile::tempdir().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(vec![7u8; LIFT_MIN * 8]);
        let target = SpillTarget {
            dir: tmp.path().to_path_buf(),
            temps: Default::default(),
        };
        let mut buf = DataBuf::new(Some(Arc::new(target)));
        buf.push(format!(r#"{{"item":{{"result":"{b64}"#).as_bytes());
        assert!(
            buf.text.capacity() < 1024,
            "the text holds {} bytes while the image streams in",
            buf.text.capacity()
        );
    }

    #[test]
    fn a_spilled_string_that_is_not_base64_after_all_goes_back_into_the_text() {
        let tmp = tempfile::tempdir().unwrap();
        let long_spaced = format!("{} {}", "QUJD".repeat(LIFT_MIN), "B");
        let odd_length = format!("{}xyz=", "QUJD".repeat(LIFT_MIN));
        let unterminated = format!("{{\"a\":\"{}", "A".repeat(LIFT_MIN * 2 + 3));
        for json in [
            format!(r#"{{"a":"{long_spaced}"}}"#),
            format!(r#"{{"a":"{odd_length}\n"}}"#),
            unterminated,
        ] {
            for size in [7, 4096, json.len()] {
                let (text, lifted) = spill_lift(tmp.path(), json.as_bytes(), size);
                assert!(text == json, "piece size {size}");
                assert!(lifted.strings.is_empty());
                assert!(files(tmp.path()).is_empty());
            }
        }
    }

    #[test]
    fn base64_prefix_stops_at_the_first_other_byte() {
        let mut bytes = vec![b'A'; 200];
        assert_eq!(base64_prefix(&bytes), 200);
        for at in [0, 1, 63, 64, 65, 130, 199] {
            bytes[at] = b'"';
            assert_eq!(base64_prefix(&bytes), at);
            bytes[at] = b'+';
        }
        assert_eq!(base64_prefix(b""), 0);
        assert_eq!(base64_prefix(b"ab/=+9\n"), 6);
    }
}
