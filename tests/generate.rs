//! Generation over the Responses backend: the binary against a loopback server.

mod support;

use support::*;

#[test]
fn one_image_is_saved_and_its_path_printed() {
    let server = Server::start();
    let png = png_bytes(1, 5000);
    server.enqueue(
        "/backend-api/codex/responses",
        image_stream(&[("ig_1", &png)]),
    );
    let sandbox = Sandbox::new();
    sandbox.with_codex_auth();
    let sargs = server_args(&server);
    let run = sandbox.run(&with_server(&sargs, &["a red cube"]));
    assert_eq!(run.code, 0, "{run}");
    let path = run.stdout.trim();
    assert!(
        path.starts_with(sandbox.work().join("codex-imagen-output").to_str().unwrap()),
        "{run}"
    );
    assert!(path.ends_with("-1-ig_1.png"), "{run}");
    assert_eq!(std::fs::read(path).unwrap(), png);
    let requests = server.requests_to("/backend-api/codex/responses");
    assert_eq!(requests.len(), 1);
    let body = requests[0].json();
    assert_eq!(body["input"][0]["content"][0]["text"], "a red cube");
    assert_eq!(requests[0].header("chatgpt-account-id"), Some("acct-123"));
}
