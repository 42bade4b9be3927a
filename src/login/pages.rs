//! The pages the browser shows after the issuer sends it back: small, self-contained HTML (no
//! script, no outside resource), every text escaped, so nothing the issuer or a stray request
//! puts in the URL can become markup.

/// Escape `text` for HTML element content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn page(title: &str, heading: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;\
         padding:0 1rem;line-height:1.5}}h1{{font-size:1.4rem}}</style></head>\
         <body><main><h1>{heading}</h1><p>{body}</p></main></body></html>\n",
        title = escape(title),
        heading = escape(heading),
        body = escape(body),
    )
}

/// After a successful sign-in.
pub(crate) fn success() -> String {
    page(
        "Signed in to codex-imagen",
        "Signed in to codex-imagen",
        "codex-imagen saved your ChatGPT sign-in. You may now close this page and return to \
         the terminal.",
    )
}

/// A sign-in that ended with `message`.
pub(crate) fn failure(message: &str) -> String {
    page("Sign-in failed", "codex-imagen sign-in failed", message)
}

/// A callback that does not belong to the waiting sign-in; it keeps waiting.
pub(crate) fn state_mismatch() -> String {
    page(
        "Sign-in link not recognised",
        "State mismatch",
        "This sign-in answer does not belong to the codex-imagen sign-in that is waiting, so \
         it was ignored. Use the URL codex-imagen printed in your terminal.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_escaped() {
        let html = failure("<script>alert('x')</script> & \"y\"");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;")
        );
        assert!(!html.contains("<script>"));
        assert!(success().contains("You may now close this page"));
    }
}
