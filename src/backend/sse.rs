//! SSE framing for the Responses stream (SPEC §11), built on `eventsource-stream`.
//!
//! Two adjustments sit in front of it:
//! - It re-parses its whole buffer from the start on every network chunk while a line is
//!   incomplete. An image event is one `data:` line of several MB arriving in 16 KiB pieces, so
//!   fed raw that is quadratic. [`LineAligned`] hands it only whole lines, so each byte is
//!   parsed once.
//! - It drops an event that has no blank line after it when the stream ends; the SPEC (and the
//!   Node tool) process it. A final `\n\n` is appended at a clean end of stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::Stream;

/// Re-chunks a byte stream so every chunk ends at a line feed.
pub struct LineAligned<S> {
    inner: S,
    pending: BytesMut,
    done: bool,
}

impl<S> LineAligned<S> {
    pub fn new(inner: S) -> Self {
        LineAligned {
            inner,
            pending: BytesMut::new(),
            done: false,
        }
    }
}

impl<S, E> Stream for LineAligned<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(chunk))) => {
                    let Some(last_lf) = chunk.iter().rposition(|b| *b == b'\n') else {
                        self.pending.extend_from_slice(&chunk);
                        continue;
                    };
                    if self.pending.is_empty() && last_lf + 1 == chunk.len() {
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    let mut out = std::mem::take(&mut self.pending);
                    out.extend_from_slice(&chunk[..=last_lf]);
                    self.pending.extend_from_slice(&chunk[last_lf + 1..]);
                    return Poll::Ready(Some(Ok(out.freeze())));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    let mut out = std::mem::take(&mut self.pending);
                    out.extend_from_slice(b"\n\n");
                    return Poll::Ready(Some(Ok(out.freeze())));
                }
            }
        }
    }
}

pub type SseError<E> = EventStreamError<E>;

/// Turn a body byte stream into SSE events.
pub fn events<S, E>(body: S) -> impl Stream<Item = Result<Event, SseError<E>>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    LineAligned::new(body).eventsource()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

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
                    (e.event, e.data)
                })
                .collect::<Vec<_>>()
                .await
        })
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
}
