//! SSE framing for the Responses stream (SPEC §11): a small hand-written parser, linear in the
//! bytes received.
//!
//! Why not `eventsource-stream` (used before): an image event is one `data:` line of 8–40 MB
//! arriving in 16 KiB pieces. That crate validated and copied every piece into its own string
//! buffer, re-parsed its buffer with `nom` on each piece (we fed it whole lines to keep that
//! linear), then copied the line into the event. Measured with `cargo bench --bench e2e`
//! (bench/RESULTS.md): its `nom` parser and buffer shuffling were 25% of the instructions of a
//! 1 × 8 MiB run (callgrind), and peak RSS for one 32 MiB image was 118 MiB, 3.7× the
//! event (its buffers, then the `Value`). Here each byte of a `data:` value is copied once,
//! from the network chunk into the event's data buffer, and a long base64 string (the image)
//! goes straight into a buffer of its own ([`lift`]), so parsing the event's JSON never copies
//! it again: 63 MiB peak for the same run, and 25–35 ms instead of 410 ms from the last byte
//! of a `response.completed` repeating a 32 MiB image to the process's exit (since then, images
//! are decoded to disk as they stream in, [`lift`]: 11 MiB peak for that run). Field names and
//! `event:` values go through small buffers; comments and other fields are skipped.
//!
//! Semantics (SPEC §11, the WHATWG event-stream rules we rely on): lines end in `\n`, `\r\n` or
//! `\r`, mixed freely; a leading BOM is dropped; lines starting with `:` are comments;
//! `event:` sets the type (`message` when absent); `data:` values are joined with `\n`; one
//! space after the colon is dropped; a line without a colon is a field with an empty value;
//! other fields (`id`, `retry`, unknown) are ignored; a blank line dispatches the event unless
//! its data buffer is empty. A last event without a trailing blank line is still dispatched
//! when the body ends cleanly (the Node tool did; the WHATWG rules drop it). After a transport
//! error nothing more is dispatched.

mod lift;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use serde_json::Value;

use crate::output::spill::SpillTarget;
use lift::DataBuf;
pub use lift::Lifted;

/// One dispatched event.
#[derive(Debug)]
pub struct Event {
    /// The `event:` field, `message` when there was none.
    pub event: String,
    /// The data, with its long base64 strings lifted out ([`lift`]).
    data: String,
    lifted: Lifted,
}

impl Event {
    /// Empty data or `[DONE]`: nothing to process (SPEC §11).
    pub fn is_empty_or_done(&self) -> bool {
        self.data.is_empty() || self.data == "[DONE]"
    }

    /// The data parsed as JSON, each lifted string moved back in place: the `Value` the data
    /// as sent parses to. The lifted strings are moved out: call it once.
    pub fn take_json(&mut self) -> serde_json::Result<Value> {
        let mut value = serde_json::from_str::<Value>(&self.data)?;
        self.lifted.restore(&mut value);
        Ok(value)
    }

    /// The lifted strings left after [`Event::take_json`]: those decoded to disk, for
    /// [`Lifted::claim`].
    pub fn into_lifted(self) -> Lifted {
        self.lifted
    }

    /// The data as sent.
    #[cfg(test)]
    pub fn into_data(self) -> String {
        self.lifted.restore_text(self.data)
    }
}

#[derive(Debug)]
pub enum SseError<E> {
    /// An event's data is not UTF-8.
    Utf8(std::string::FromUtf8Error),
    /// The body stream failed.
    Transport(E),
}

impl<E: std::fmt::Display> std::fmt::Display for SseError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::Utf8(err) => write!(f, "UTF8 error: {err}"),
            SseError::Transport(err) => write!(f, "{err}"),
        }
    }
}

/// The field a line's value belongs to, once its name is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Data,
    Event,
    /// Comments, `id`, `retry` and unknown fields.
    Ignored,
}

/// Where the parser is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the start of a line: nothing of it seen yet.
    Start,
    /// In the field name (kept in `Parser::name`), no colon yet.
    Name,
    /// Just after `name:`: one space here is dropped.
    ValueStart(Field),
    /// In the value.
    Value(Field),
}

/// The push parser: feed it bytes, take events out. No I/O, so every chunking can be tested.
#[derive(Debug)]
pub struct Parser {
    line: Line,
    /// A `\r` ended the last line: a `\n` right after it belongs to the same line end.
    after_cr: bool,
    /// Still at the very start of the stream, where a BOM may be (bytes of it matched so far).
    bom_matched: Option<usize>,
    name: Vec<u8>,
    /// The current `event:` line's value.
    value: Vec<u8>,
    event_type: Vec<u8>,
    data: DataBuf,
    /// Where long strings are decoded to disk ([`lift`]).
    spill: Option<Arc<SpillTarget>>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Default for Parser {
    fn default() -> Self {
        Parser {
            line: Line::Start,
            after_cr: false,
            bom_matched: Some(0),
            name: Vec::new(),
            value: Vec::new(),
            event_type: Vec::new(),
            data: DataBuf::default(),
            spill: None,
        }
    }
}

impl Parser {
    /// A parser whose long base64 strings are decoded into files in `target` as they arrive
    /// ([`crate::output::spill`]), so an image in flight costs a few KiB instead of its size.
    pub fn spilling_to(target: SpillTarget) -> Self {
        let spill = Arc::new(target);
        Parser {
            data: DataBuf::new(Some(spill.clone())),
            spill: Some(spill),
            ..Parser::default()
        }
    }

    /// Parse from `buf` until an event is dispatched or `buf` is used up. Returns how many bytes
    /// were consumed and the event, if one was dispatched; call again with the rest.
    pub fn feed(
        &mut self,
        buf: &[u8],
    ) -> (usize, Option<Result<Event, std::string::FromUtf8Error>>) {
        let mut i = self.skip_bom(buf);
        while i < buf.len() {
            if self.after_cr {
                self.after_cr = false;
                if buf[i] == b'\n' {
                    i += 1;
                    continue;
                }
            }
            let rest = &buf[i..];
            match self.line {
                Line::Start | Line::Name => {
                    let Some(at) = memchr::memchr3(b':', b'\n', b'\r', rest) else {
                        self.name.extend_from_slice(rest);
                        self.line = Line::Name;
                        return (buf.len(), None);
                    };
                    self.name.extend_from_slice(&rest[..at]);
                    i += at + 1;
                    if rest[at] == b':' {
                        let comment = self.line == Line::Start && self.name.is_empty();
                        let field = if comment {
                            Field::Ignored
                        } else {
                            self.field()
                        };
                        self.name.clear();
                        self.line = if comment {
                            Line::Value(Field::Ignored)
                        } else {
                            Line::ValueStart(field)
                        };
                    } else {
                        self.after_cr = rest[at] == b'\r';
                        let blank = self.line == Line::Start && self.name.is_empty();
                        if blank {
                            if let Some(event) = self.dispatch() {
                                return (i, Some(event));
                            }
                        } else {
                            // A field name alone: the field with an empty value.
                            let field = self.field();
                            self.name.clear();
                            self.end_value(field);
                        }
                    }
                }
                Line::ValueStart(field) => {
                    if rest[0] == b' ' {
                        i += 1;
                    }
                    self.line = Line::Value(field);
                }
                Line::Value(field) => {
                    let end = memchr::memchr2(b'\n', b'\r', rest);
                    let value = &rest[..end.unwrap_or(rest.len())];
                    match field {
                        Field::Data => self.data.push(value),
                        Field::Event => self.value.extend_from_slice(value),
                        Field::Ignored => {}
                    }
                    let Some(at) = end else {
                        return (buf.len(), None);
                    };
                    i += at + 1;
                    self.after_cr = rest[at] == b'\r';
                    self.end_value(field);
                }
            }
        }
        (buf.len(), None)
    }

    /// The body ended cleanly: end an unterminated line and dispatch what is pending.
    pub fn finish(&mut self) -> Option<Result<Event, std::string::FromUtf8Error>> {
        match self.line {
            Line::Start => {}
            Line::Name => {
                let field = self.field();
                self.name.clear();
                self.end_value(field);
            }
            Line::ValueStart(field) | Line::Value(field) => self.end_value(field),
        }
        self.dispatch()
    }

    /// Drop a UTF-8 BOM at the very start of the stream, even when split across chunks.
    fn skip_bom(&mut self, buf: &[u8]) -> usize {
        let Some(matched) = self.bom_matched else {
            return 0;
        };
        let want = &BOM[matched..];
        let n = want.len().min(buf.len());
        if buf[..n] == want[..n] {
            if n == want.len() {
                self.bom_matched = None;
            } else {
                self.bom_matched = Some(matched + n);
            }
            return n;
        }
        // Not a BOM after all: the bytes taken for one belong to the first line.
        self.bom_matched = None;
        if matched > 0 {
            let taken = BOM[..matched].to_vec();
            let (_, event) = self.feed(&taken);
            debug_assert!(event.is_none(), "a BOM prefix holds no line end");
        }
        0
    }

    fn field(&self) -> Field {
        match self.name.as_slice() {
            b"data" => Field::Data,
            b"event" => Field::Event,
            _ => Field::Ignored,
        }
    }

    fn end_value(&mut self, field: Field) {
        match field {
            Field::Data => self.data.push(b"\n"),
            Field::Event => self.event_type = std::mem::take(&mut self.value),
            Field::Ignored => {}
        }
        self.line = Line::Start;
    }

    fn dispatch(&mut self) -> Option<Result<Event, std::string::FromUtf8Error>> {
        let mut data = std::mem::replace(&mut self.data, DataBuf::new(self.spill.clone()));
        let event_type = std::mem::take(&mut self.event_type);
        if data.is_empty() {
            return None;
        }
        data.pop();
        let event = if event_type.is_empty() {
            "message".to_string()
        } else {
            String::from_utf8_lossy(&event_type).into_owned()
        };
        // Invalid UTF-8 becomes U+FFFD, as the Node tool's TextDecoder did: a stray byte in a
        // comment, a keepalive or a prompt string must not cost the user an image. Valid data
        // (every real event) is taken over without a copy.
        let (data, lifted) = data.finish();
        Some(Ok(Event {
            event,
            data,
            lifted,
        }))
    }
}

/// The events of a body byte stream, each handed out as soon as its blank line arrives.
pub struct Events<S> {
    body: S,
    parser: Parser,
    /// The unparsed rest of the current network chunk.
    chunk: Bytes,
    done: bool,
}

impl<S, E> Stream for Events<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Event, SseError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if !this.chunk.is_empty() {
                let (used, event) = this.parser.feed(&this.chunk);
                let _ = this.chunk.split_to(used);
                if let Some(event) = event {
                    return Poll::Ready(Some(event.map_err(SseError::Utf8)));
                }
                continue;
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.body).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => this.chunk = chunk,
                Poll::Ready(Some(Err(err))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(SseError::Transport(err))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if let Some(event) = this.parser.finish() {
                        return Poll::Ready(Some(event.map_err(SseError::Utf8)));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// Turn a body byte stream into SSE events.
#[cfg_attr(not(test), allow(dead_code))]
pub fn events<S, E>(body: S) -> Events<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    Events {
        body,
        parser: Parser::default(),
        chunk: Bytes::new(),
        done: false,
    }
}

/// [`events`] with long base64 strings (images) decoded into files in `target` as they arrive.
/// Spill files a killed run left in that directory are removed first (once per process).
pub fn events_spilling_to<S, E>(body: S, target: SpillTarget) -> Events<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    target.temps.sweep_once(&target.dir);
    Events {
        parser: Parser::spilling_to(target),
        ..events(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    /// A body that hands out clones of its chunks and, at each poll, records whether the
    /// previous chunk came back (only this stream still holds it).
    struct Watching {
        chunks: Vec<Bytes>,
        given: Option<Bytes>,
        released: Vec<bool>,
    }

    impl Stream for Watching {
        type Item = Result<Bytes, std::convert::Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = &mut *self;
            if let Some(given) = this.given.take() {
                this.released.push(given.is_unique());
            }
            if this.chunks.is_empty() {
                return Poll::Ready(None);
            }
            let chunk = this.chunks.remove(0);
            this.given = Some(chunk.clone());
            Poll::Ready(Some(Ok(chunk)))
        }
    }

    #[test]
    fn a_spent_chunk_is_let_go_before_the_next_is_read() {
        // hyper reuses its read buffer only when no chunk of it is still held; a held one
        // makes it allocate another (up to 400 KiB per connection). `split_to` of a whole
        // chunk leaves an empty `Bytes::new()` behind, which is what lets it go here.
        let chunks = ["data: a", "bc\n\ndata: d", "ef\n\n"]
            .map(|c| Bytes::from(c.as_bytes().to_vec()))
            .to_vec();
        let mut stream = events(Watching {
            chunks,
            given: None,
            released: Vec::new(),
        });
        let got: Vec<String> = futures::executor::block_on(async {
            let mut got = Vec::new();
            while let Some(event) = stream.next().await {
                got.push(event.expect("valid sse").into_data());
            }
            got
        });
        assert_eq!(got, ["abc", "def"]);
        assert_eq!(stream.body.released, [true, true, true]);
    }

    fn collect_in_chunks(input: &[u8], size: usize) -> Vec<(String, String)> {
        let chunks: Vec<Result<Bytes, std::convert::Infallible>> = input
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = futures::stream::iter(chunks);
        futures::executor::block_on(async {
            events(stream)
                .map(|e| {
                    let e = e.expect("valid sse");
                    (e.event.clone(), e.into_data())
                })
                .collect::<Vec<_>>()
                .await
        })
    }

    /// Every chunking of `input` yields `expected`.
    fn assert_every_chunking(input: &[u8], expected: &[(&str, &str)]) {
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(e, d)| (e.to_string(), d.to_string()))
            .collect();
        for size in (1..=input.len().min(40)).chain([input.len().max(1)]) {
            assert_eq!(
                collect_in_chunks(input, size),
                expected,
                "chunk size {size} of {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn framing_is_the_same_for_every_chunk_size() {
        let input = b": comment\r\nevent: one\r\ndata: {\"a\":1}\r\n\r\n\
data:first\ndata: second\n\n\
data: [DONE]\n\n\
event: empty\n\n\
data: tail-without-blank-line";
        let expected = vec![
            ("one".to_string(), "{\"a\":1}".to_string()),
            ("message".to_string(), "first\nsecond".to_string()),
            ("message".to_string(), "[DONE]".to_string()),
            ("message".to_string(), "tail-without-blank-line".to_string()),
        ];
        for size in [1, 2, 3, 5, 7, 16, 64, input.len()] {
            assert_eq!(
                collect_in_chunks(input, size),
                expected,
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn mixed_line_endings_between_events() {
        let input = b"data: a\r\n\r\ndata: b\n\ndata: c\r\n\n";
        let got: Vec<String> = collect_in_chunks(input, 1)
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        assert_eq!(got, vec!["a", "b", "c"]);
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line() {
        assert_every_chunking(
            b"event: x\rdata: a\r\rdata: b\r\n\rdata: c\n\r",
            &[("x", "a"), ("message", "b"), ("message", "c")],
        );
    }

    #[test]
    fn only_one_space_after_the_colon_is_dropped() {
        assert_every_chunking(
            b"data:  two spaces\ndata:none\ndata: \n\n",
            &[("message", " two spaces\nnone\n")],
        );
    }

    #[test]
    fn a_field_name_without_colon_has_an_empty_value() {
        // `data` alone adds an empty line to the data; `event` alone resets the type.
        assert_every_chunking(
            b"event: x\nevent\ndata\ndata: a\n\ndata\n\n",
            &[("message", "\na"), ("message", "")],
        );
    }

    #[test]
    fn comments_ids_retries_and_unknown_fields_are_ignored() {
        assert_every_chunking(
            b": keepalive\nid: 7\nretry: 100\nfoo: bar\n:data: no\ndata:yes\n\n",
            &[("message", "yes")],
        );
    }

    #[test]
    fn events_without_data_are_not_dispatched_and_reset_the_type() {
        assert_every_chunking(
            b"event: a\n\n\n\nevent: b\n: only a comment\n\ndata: x\n\n",
            &[("message", "x")],
        );
    }

    #[test]
    fn a_leading_bom_is_dropped_even_when_split() {
        assert_every_chunking(b"\xEF\xBB\xBFdata: a\n\n", &[("message", "a")]);
        // Only at the very start.
        assert_every_chunking(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n", &[("message", "a")]);
    }

    #[test]
    fn a_bom_prefix_that_is_not_a_bom_is_part_of_the_first_line() {
        assert_every_chunking(b"\xEF\xBBdata: a\n\ndata: b\n\n", &[("message", "b")]);
    }

    #[test]
    fn an_unterminated_last_line_is_dispatched_at_the_end() {
        assert_every_chunking(b"event: e\ndata: a", &[("e", "a")]);
        assert_every_chunking(b"data: a\r", &[("message", "a")]);
        assert_every_chunking(b"data: a\n", &[("message", "a")]);
        assert_every_chunking(b"data", &[("message", "")]);
        assert_every_chunking(b"data:", &[("message", "")]);
        assert_every_chunking(b"event: e", &[]);
        assert_every_chunking(b"", &[]);
    }

    #[test]
    fn utf8_split_across_chunks_is_reassembled() {
        assert_every_chunking(
            "event: é\ndata: \u{1F44D} ok\n\n".as_bytes(),
            &[("é", "\u{1F44D} ok")],
        );
    }

    #[test]
    fn invalid_utf8_in_data_becomes_replacement_characters() {
        assert_every_chunking(
            b"data: \xFFok\xC3\n\n",
            &[("message", "\u{FFFD}ok\u{FFFD}")],
        );
    }

    #[test]
    fn a_transport_error_ends_the_stream_without_dispatching_the_pending_event() {
        let chunks: Vec<Result<Bytes, &str>> = vec![
            Ok(Bytes::from_static(b"data: a\n\ndata: partial")),
            Err("reset"),
            Ok(Bytes::from_static(b"\n\n")),
        ];
        let got: Vec<_> =
            futures::executor::block_on(events(futures::stream::iter(chunks)).collect());
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].as_ref().ok().map(|e| e.data.as_str()), Some("a"));
        assert!(matches!(got[1], Err(SseError::Transport("reset"))));
    }

    #[test]
    fn a_large_data_line_in_small_pieces_is_one_event() {
        let big = "A".repeat(300_000);
        let input = format!("event: big\ndata: {{\"result\":\"{big}\"}}\n\ndata: after\n\n");
        let expected_data = format!("{{\"result\":\"{big}\"}}");
        for size in [1, 7, 4096, 16 * 1024, input.len()] {
            let got = collect_in_chunks(input.as_bytes(), size);
            assert_eq!(got.len(), 2, "chunk size {size}");
            assert_eq!(got[0].0, "big");
            assert!(got[0].1 == expected_data, "chunk size {size}");
            assert_eq!(got[1], ("message".to_string(), "after".to_string()));
        }
    }

    #[test]
    fn events_with_long_base64_strings_parse_to_the_same_json_in_any_chunking() {
        let big = "QUJD".repeat(100_000);
        let data = format!(
            r#"{{"type":"response.completed","response":{{"output":[{{"result":"{big}=="}},{{"note":"a\"b","result":"{big}"}}]}}}}"#
        );
        let input = format!(": hi\nevent: response.completed\ndata: {data}\n\ndata: [1]\n\n");
        let want: Value = serde_json::from_str(&data).unwrap();
        for size in [3, 1000, 16 * 1024, input.len()] {
            let chunks: Vec<Result<Bytes, std::convert::Infallible>> = input
                .as_bytes()
                .chunks(size)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let mut got: Vec<Event> = futures::executor::block_on(
                events(futures::stream::iter(chunks))
                    .map(|e| e.expect("valid sse"))
                    .collect(),
            );
            assert_eq!(got.len(), 2, "chunk size {size}");
            assert_eq!(got[0].event, "response.completed");
            assert!(!got[0].is_empty_or_done());
            assert!(got[0].data.len() < 1000, "long strings were lifted out");
            assert!(got[0].take_json().unwrap() == want, "chunk size {size}");
            assert_eq!(got[1].take_json().unwrap(), serde_json::json!([1]));
        }
    }

    #[test]
    fn one_chunk_with_many_events_yields_them_one_at_a_time() {
        let mut parser = Parser::default();
        let input = b"data: a\n\ndata: b\n\n";
        let (used, first) = parser.feed(input);
        assert_eq!(first.unwrap().unwrap().into_data(), "a");
        assert_eq!(used, 9);
        let (used2, second) = parser.feed(&input[used..]);
        assert_eq!(second.unwrap().unwrap().into_data(), "b");
        assert_eq!(used + used2, input.len());
        assert!(parser.finish().is_none());
    }
}
