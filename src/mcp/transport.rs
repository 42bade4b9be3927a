//! The stdio transport of `--mcp`: newline-delimited JSON-RPC on stdin/stdout, with an answer for
//! every line a client sends, however malformed.
//!
//! rmcp's own stdio transport drops what it cannot use without a word: a line over its 16 MiB
//! cap, text that is not JSON, and a request whose `params` do not fit the method's shape (which
//! it then answers as an unknown method). A client waiting on such a request's id waits forever.
//! So this transport frames stdin itself and hands rmcp only the messages it can handle:
//!
//! - a reader task reads lines with a cap ([`MAX_LINE_BYTES`], rmcp's own), never buffering more;
//!   a longer line is discarded as it streams in, keeping its first and last few KiB to recover
//!   its `id`, and answered with an Invalid Request error (`id` null when none can be found);
//! - a line that is not JSON gets -32700 (Parse error, `id` null), JSON that is not a JSON-RPC
//!   message -32600 (Invalid Request), and a known method whose `params` have the wrong shape
//!   (`tools/call` with `arguments: [1]`) -32602 (Invalid params), each with the id when present;
//! - one writer task owns stdout: rmcp's messages and these answers go through one queue, so
//!   lines never interleave and stdout carries nothing but whole JSON-RPC messages.
//!
//! The reader hands messages over a channel, so [`Transport::receive`] is cancel-safe (rmcp polls
//! it inside a `select!`).

use std::borrow::Cow;

use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleServer;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::frontend::json_kind::json_kind;

/// The longest line read: rmcp's `DEFAULT_MAX_LINE_LENGTH`, which also bounds what its clients
/// accept from us.
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// What is kept of each end of an oversized line to find its `id`.
const KEPT_BYTES: usize = 4096;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// The transport rmcp serves on; see the module docs.
pub(crate) struct LineTransport {
    inbound: mpsc::Receiver<RxJsonRpcMessage<RoleServer>>,
    outbound: Option<mpsc::UnboundedSender<Vec<u8>>>,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

impl LineTransport {
    pub(crate) fn stdio() -> Self {
        Self::new(tokio::io::stdin(), tokio::io::stdout(), MAX_LINE_BYTES)
    }

    pub(crate) fn new<R, W>(read: R, write: W, max_line: usize) -> Self
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::channel(16);
        let writer = tokio::spawn(write_loop(write, out_rx));
        let reader = tokio::spawn(read_loop(read, max_line, in_tx, out_tx.clone()));
        LineTransport {
            inbound: in_rx,
            outbound: Some(out_tx),
            reader,
            writer: Some(writer),
        }
    }
}

impl Drop for LineTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Transport<RoleServer> for LineTransport {
    type Error = std::io::Error;

    fn name() -> Cow<'static, str> {
        "codex-imagen stdio".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        // Serialised and queued now, so the returned future holds nothing and lines keep the
        // order rmcp sent them in.
        let queued = match (serde_json::to_vec(&item), &self.outbound) {
            (Ok(mut line), Some(out)) => {
                line.push(b'\n');
                out.send(line).map_err(|_| closed())
            }
            (Err(e), _) => Err(std::io::Error::other(e)),
            (_, None) => Err(closed()),
        };
        std::future::ready(queued)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        self.inbound.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // The reader holds a sender for its error answers: stop it, then let the writer drain
        // what is queued and flush.
        self.reader.abort();
        self.outbound.take();
        if let Some(writer) = self.writer.take() {
            // A client that stopped reading must not keep the server from exiting.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        }
        Ok(())
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stdout is closed")
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(line) = queue.recv().await {
        if write.write_all(&line).await.is_err() {
            return;
        }
        // Flush once a burst is written, not after every progress notification of it.
        if queue.is_empty() && write.flush().await.is_err() {
            return;
        }
    }
    let _ = write.flush().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    read: R,
    max_line: usize,
    inbound: mpsc::Sender<RxJsonRpcMessage<RoleServer>>,
    out: mpsc::UnboundedSender<Vec<u8>>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut line = Vec::new();
    loop {
        let verdict = match read_line(&mut reader, &mut line, max_line).await {
            Ok(Line::Complete) => judge(&line),
            Ok(Line::Oversized { head, tail, bytes }) => {
                Verdict::Answer(oversized(&head, &tail, bytes, max_line))
            }
            Ok(Line::Eof) | Err(_) => return,
        };
        match verdict {
            Verdict::Deliver(message) => {
                if inbound.send(*message).await.is_err() {
                    return;
                }
            }
            Verdict::Answer(answer) => {
                let mut bytes = answer.to_string().into_bytes();
                bytes.push(b'\n');
                if out.send(bytes).is_err() {
                    return;
                }
            }
            Verdict::Ignore => {}
        }
    }
}

enum Line {
    /// `line` holds a whole line, without its newline.
    Complete,
    /// The line ran past the cap and was discarded; these are its ends.
    Oversized {
        head: Vec<u8>,
        tail: Vec<u8>,
        bytes: usize,
    },
    Eof,
}

/// One line into `line`, never holding more than `max` bytes of it. A last line without a
/// newline still counts (the client may close stdin right after writing it).
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    line.clear();
    // Set once the line is too long: its first bytes, its last bytes so far, its length.
    let mut over: Option<(Vec<u8>, Vec<u8>, usize)> = None;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(match over {
                Some((head, tail, bytes)) => Line::Oversized { head, tail, bytes },
                None if line.is_empty() => Line::Eof,
                None => Line::Complete,
            });
        }
        let newline = available.iter().position(|b| *b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        match over.as_mut() {
            None if line.len() + chunk.len() <= max => line.extend_from_slice(chunk),
            None => {
                let mut head = std::mem::take(line);
                head.extend_from_slice(chunk);
                let bytes = head.len();
                let tail = head[bytes.saturating_sub(KEPT_BYTES)..].to_vec();
                head.truncate(KEPT_BYTES);
                over = Some((head, tail, bytes));
            }
            Some((_, tail, bytes)) => {
                *bytes += chunk.len();
                tail.extend_from_slice(chunk);
                let excess = tail.len().saturating_sub(KEPT_BYTES);
                tail.drain(..excess);
            }
        }
        let used = chunk.len() + usize::from(newline.is_some());
        reader.consume(used);
        if newline.is_some() {
            return Ok(match over {
                Some((head, tail, bytes)) => Line::Oversized { head, tail, bytes },
                None => Line::Complete,
            });
        }
    }
}

enum Verdict {
    Deliver(Box<RxJsonRpcMessage<RoleServer>>),
    Answer(Value),
    Ignore,
}

/// What to do with one whole line.
fn judge(raw: &[u8]) -> Verdict {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Ignore;
    }
    let value: Value = match serde_json::from_slice(raw) {
        Ok(value) => value,
        Err(e) => {
            return Verdict::Answer(error(
                Value::Null,
                PARSE_ERROR,
                format!("Parse error: the line is not JSON ({e})"),
            ))
        }
    };
    let Some(object) = value.as_object() else {
        return Verdict::Answer(error(
            Value::Null,
            INVALID_REQUEST,
            "Invalid Request: a message must be one JSON object (batches are not supported)"
                .to_string(),
        ));
    };
    let id = object
        .get("id")
        .filter(|id| id.is_string() || id.is_number())
        .cloned();
    let method = object
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let (Some(id), Some(method)) = (&id, &method) {
        if let Some(why) = params_problem(method, object.get("params")) {
            return Verdict::Answer(error(
                id.clone(),
                INVALID_PARAMS,
                format!("Invalid params for {method}: {why}"),
            ));
        }
    }
    // By value: a line may hold megabytes of data URLs, not worth a copy.
    match serde_json::from_value::<ClientJsonRpcMessage>(value) {
        Ok(JsonRpcMessage::Request(request)) => match &request.request {
            // rmcp reads a known method whose params do not fit as a custom request and then
            // answers "method not found"; the method exists, the params are wrong.
            ClientRequest::CustomRequest(custom) if is_mcp_method(&custom.method) => {
                Verdict::Answer(error(
                    id.unwrap_or(Value::Null),
                    INVALID_PARAMS,
                    format!(
                        "Invalid params for {}: they do not have the shape MCP defines",
                        custom.method
                    ),
                ))
            }
            _ => Verdict::Deliver(Box::new(JsonRpcMessage::Request(request))),
        },
        Ok(message) => Verdict::Deliver(Box::new(message)),
        // Notifications have no answer; unknown ones are ignored as rmcp ignores them.
        Err(_) if id.is_none() && method.is_some() => Verdict::Ignore,
        Err(e) => Verdict::Answer(error(
            id.unwrap_or(Value::Null),
            INVALID_REQUEST,
            format!("Invalid Request: not a JSON-RPC 2.0 message MCP defines ({e})"),
        )),
    }
}

/// The shape checks rmcp's types would fail without saying why, for the method agents call.
fn params_problem(method: &str, params: Option<&Value>) -> Option<String> {
    if method != "tools/call" {
        return None;
    }
    let Some(params) = params.and_then(Value::as_object) else {
        return Some(format!(
            "`params` must be an object with `name` and `arguments`, got {}",
            json_kind(params.unwrap_or(&Value::Null))
        ));
    };
    if !params.get("name").is_some_and(Value::is_string) {
        return Some("`name` must be the tool's name, a string".to_string());
    }
    match params.get("arguments") {
        None | Some(Value::Null) | Some(Value::Object(_)) => None,
        Some(other) => Some(format!(
            "`arguments` must be an object of named arguments, got {}",
            json_kind(other)
        )),
    }
}

fn is_mcp_method(method: &str) -> bool {
    matches!(
        method,
        "initialize"
            | "ping"
            | "tools/call"
            | "tools/list"
            | "prompts/get"
            | "prompts/list"
            | "resources/list"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "resources/templates/list"
            | "completion/complete"
            | "logging/setLevel"
    )
}

/// The answer to a line longer than the cap: an Invalid Request error with the line's id when
/// its first or last bytes show it.
fn oversized(head: &[u8], tail: &[u8], bytes: usize, max: usize) -> Value {
    let id = leading_id(head)
        .or_else(|| trailing_id(tail))
        .unwrap_or(Value::Null);
    error(
        id,
        INVALID_REQUEST,
        format!(
            "Invalid Request: the message is {bytes} bytes, over this server's limit of {max} \
             bytes per line; it was not read (send large images as file paths or URLs)"
        ),
    )
}

/// `"id": <number or string>` among the top-level keys at the start of a message.
fn leading_id(head: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(head);
    let mut chars = text.char_indices().peekable();
    let mut depth = 0usize;
    while let Some((at, c)) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            '"' => {
                let end = string_end(&text, at)?;
                if depth == 1 && &text[at..end] == "\"id\"" {
                    let rest = text[end..].trim_start();
                    if let Some(value) = rest.strip_prefix(':') {
                        return scalar_prefix(value.trim_start());
                    }
                }
                while chars.peek().is_some_and(|(i, _)| *i < end) {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    None
}

/// The byte after the string literal that starts at `start` (a `"`), if it ends in `text`.
fn string_end(text: &str, start: usize) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text[start + 1..].char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(start + 1 + i + 1),
            _ => {}
        }
    }
    None
}

/// A JSON number or string at the start of `text`, complete (followed by `,`, `}` or space).
fn scalar_prefix(text: &str) -> Option<Value> {
    let len = if text.starts_with('"') {
        string_end(text, 0)?
    } else {
        text.find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))?
    };
    let after = text[len..].trim_start();
    if !(after.starts_with(',') || after.starts_with('}')) {
        return None;
    }
    serde_json::from_str::<Value>(&text[..len])
        .ok()
        .filter(|v| v.is_string() || v.is_number())
}

/// `"id": <number or string>` as the last member of the message (`..., "id": 7}`).
fn trailing_id(tail: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(tail);
    let body = text.trim_end().strip_suffix('}')?.trim_end();
    let at = body.rfind("\"id\"")?;
    // The key must start a member of the outer object: a comma before it.
    if !body[..at].trim_end().ends_with(',') {
        return None;
    }
    let value = body[at + 4..].trim_start().strip_prefix(':')?.trim_start();
    serde_json::from_str::<Value>(value)
        .ok()
        .filter(|v| v.is_string() || v.is_number())
}

fn error(id: Value, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(line: &str) -> Value {
        match judge(line.as_bytes()) {
            Verdict::Answer(value) => value,
            Verdict::Deliver(message) => panic!("delivered {message:?}"),
            Verdict::Ignore => panic!("ignored"),
        }
    }

    #[test]
    fn lines_that_are_not_messages_are_answered() {
        let parse = answer("this is not json");
        assert_eq!(parse["error"]["code"], PARSE_ERROR);
        assert_eq!(parse["id"], Value::Null);
        let batch = answer("[1, 2]");
        assert_eq!(batch["error"]["code"], INVALID_REQUEST);
        let shape = answer(
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"generate_image","arguments":[1]}}"#,
        );
        assert_eq!(shape["error"]["code"], INVALID_PARAMS);
        assert_eq!(shape["id"], 4);
        assert!(shape["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`arguments` must be an object"));
        let no_params = answer(r#"{"jsonrpc":"2.0","id":"x","method":"tools/call"}"#);
        assert_eq!(no_params["error"]["code"], INVALID_PARAMS);
        assert_eq!(no_params["id"], "x");
    }

    #[test]
    fn good_messages_and_notifications_pass() {
        assert!(matches!(
            judge(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Verdict::Deliver(_)
        ));
        assert!(matches!(
            judge(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Verdict::Deliver(_)
        ));
        assert!(matches!(judge(b"   \r"), Verdict::Ignore));
        // A notification has no answer, even one rmcp's types cannot read.
        assert!(matches!(
            judge(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":5}"#),
            Verdict::Ignore
        ));
    }

    #[test]
    fn the_id_of_an_oversized_line_is_found_at_either_end() {
        let head = br#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"gen"#;
        assert_eq!(leading_id(head), Some(json!(17)));
        let head = br#"{"jsonrpc":"2.0","method":"tools/call","params":{"id":3,"arguments":{"prompt":"aaa"#;
        assert_eq!(leading_id(head), None, "a nested id is not the message's");
        let head = br#"{"method":"x","id":"a\"b","params""#;
        assert_eq!(leading_id(head), Some(json!("a\"b")));
        assert_eq!(leading_id(br#"{"id":12"#), None, "cut off mid-number");
        assert_eq!(trailing_id(br#"aaaa"}}, "id": 9}"#), Some(json!(9)));
        assert_eq!(trailing_id(br#"aaaa"}},"id":"q"}  "#), Some(json!("q")));
        assert_eq!(trailing_id(br#"aaaa"}}}"#), None);
    }

    #[tokio::test]
    async fn an_oversized_line_is_skipped_without_holding_it() {
        let mut input = Vec::new();
        input
            .extend_from_slice(br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"x":""#);
        input.extend(std::iter::repeat_n(b'a', 300));
        input.extend_from_slice(b"\"}}\n{\"short\":1}\nlast");
        let mut reader = BufReader::with_capacity(16, &input[..]);
        let mut line = Vec::new();
        match read_line(&mut reader, &mut line, 100).await.unwrap() {
            Line::Oversized { head, bytes, .. } => {
                assert_eq!(bytes, input.iter().position(|b| *b == b'\n').unwrap());
                assert_eq!(leading_id(&head), Some(json!(5)));
            }
            _ => panic!("expected an oversized line"),
        }
        assert!(line.len() <= 100);
        assert!(matches!(
            read_line(&mut reader, &mut line, 100).await.unwrap(),
            Line::Complete
        ));
        assert_eq!(line, b"{\"short\":1}");
        assert!(matches!(
            read_line(&mut reader, &mut line, 100).await.unwrap(),
            Line::Complete
        ));
        assert_eq!(line, b"last");
        assert!(matches!(
            read_line(&mut reader, &mut line, 100).await.unwrap(),
            Line::Eof
        ));
    }
}
