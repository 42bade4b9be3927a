//! A response that completes with the model's words and no image (a refusal, a question) ends
//! with those words, not with "no image found"; it is final, so it is never retried.

mod support;

use serde_json::json;
use support::*;

fn text_answer_stream(text: &str) -> Reply {
    let (head, tail) = text.split_at(text.len() / 2);
    Reply::sse()
        .event(&created())
        .event(&json!({"type": "response.output_text.delta", "delta": head}))
        .event(&json!({"type": "response.output_text.delta", "delta": tail}))
        .event(&json!({"type": "response.output_text.done", "text": text}))
        .event(&json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed",
            "output": [{"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": text}]}]}}))
        .end()
}

#[test]
fn a_streamed_answer_without_an_image_is_the_error_and_is_not_retried() {
    let server = Server::start();
    let text = "I can't help create that image, but I could draw a friendly robot instead.";
    server.enqueue(RESPONSES_PATH, text_answer_stream(text));
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["--retries", "3", "a forbidden thing"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "Error: The model answered without an image: {text}\nSeen event types: response.created, \
             response.output_text.delta, response.output_text.done, response.completed\n"
        )),
        "{run}"
    );
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1, "not retried");
    assert_eq!(run.stdout, "");
}

#[test]
fn a_long_answer_is_cut_at_1000_characters_and_no_stream_answers_count_too() {
    let server = Server::start();
    let text = "é".repeat(1500);
    server.enqueue(
        RESPONSES_PATH,
        Reply::json(
            200,
            &json!({"id": "resp_1", "object": "response", "status": "completed", "output": [
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
            ]}),
        ),
    );
    let sandbox = authed_sandbox();
    let run = run_against(&sandbox, &server, &["--no-stream", "a question"]);
    assert_eq!(run.code, 1, "{run}");
    let expected = format!(
        "Error: The model answered without an image: {}\nSeen event types: object\n",
        "é".repeat(1000)
    );
    assert!(run.stderr.ends_with(&expected), "{run}");
    assert_eq!(server.requests_to(RESPONSES_PATH).len(), 1);
}
