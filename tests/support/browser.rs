//! Headless Chromium over WebDriver for the studio's tests and bench: a `chromedriver` of our
//! own on a free loopback port, a fantoccini session with a throwaway profile, a fixed window,
//! and host rules that let the page resolve nothing but 127.0.0.1.
//!
//! Elements are found the way a person names them: a field by its `<label>` text, a button by
//! its text, an image by its `alt`. chromedriver runs in its own process group, and dropping a
//! [`Browser`] ends that group (chromedriver and the Chromium it started) by its id.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// The real Chromium binary (Debian's /usr/bin/chromium is a wrapper script).
fn chromium_binary() -> Option<&'static str> {
    [
        "/usr/lib/chromium/chromium",
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}

impl Browser {
    /// A fresh browser, `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        Browser::start_with(width, height, &[]).await
    }

    /// [`Browser::start`] with more Chromium flags (e.g. `--force-dark-mode`).
    pub async fn start_with(width: u32, height: u32, extra: &[&str]) -> Browser {
        let port = free_port();
        let mut command = Command::new("chromedriver");
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let driver = command
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("a profile dir");
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.path().display()),
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                format!("--window-size={width},{height}"),
            ],
        });
        if let Some(args) = options["args"].as_array_mut() {
            args.extend(extra.iter().map(|a| json!(a)));
        }
        if let Some(binary) = chromium_binary() {
            options["binary"] = json!(binary);
        }
        let caps = json!({"browserName": "chrome", "goog:chromeOptions": options});
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps.as_object().cloned().unwrap_or_default())
            .connect(&url)
            .await
            .expect("a WebDriver session");
        client
            .set_window_size(width, height)
            .await
            .expect("window size");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Wait (up to 20 s) for the element at `xpath`.
    pub async fn wait_for(&self, xpath: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(xpath))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let body = self.text_of_page().await;
                panic!("no element {xpath}: {e}\n--- page text ---\n{body}");
            }
        }
    }

    /// Wait until the element at `xpath` is gone.
    pub async fn wait_gone(&self, xpath: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self
                .client
                .find_all(Locator::XPath(xpath))
                .await
                .map(|v| v.len())
                .unwrap_or(0);
            if found == 0 {
                return;
            }
            if Instant::now() > deadline {
                panic!("{xpath} is still there:\n{}", self.text_of_page().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until `script` (a function body returning a value) returns something truthy.
    pub async fn wait_until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let value = self.run(script).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}:\n{}",
                    self.text_of_page().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("script runs")
    }

    pub async fn text_of_page(&self) -> String {
        self.client
            .execute(
                "return document.body ? document.body.innerText : ''",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The form field whose `<label>` says `name`.
    pub async fn field(&self, name: &str) -> Element {
        self.wait_for(&format!(
            "//*[@id=//label[normalize-space(.)={}]/@for]",
            literal(name)
        ))
        .await
    }

    /// The button whose text (or aria-label) is `name`, visible or not.
    pub async fn button(&self, name: &str) -> Element {
        self.wait_for(&button_xpath(name)).await
    }

    pub async fn click(&self, name: &str) {
        let button = self.button(name).await;
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {name}: {e}"));
    }

    /// Save a screenshot as `target/studio-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("studio-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// End the session; dropping the browser then ends chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// XPath for a button named `name` by its text or aria-label.
pub fn button_xpath(name: &str) -> String {
    let name = literal(name);
    format!("//button[normalize-space(.)={name} or @aria-label={name}]")
}

/// `text` as an XPath string literal (prompts may hold quotes).
pub fn literal(text: &str) -> String {
    if !text.contains('\'') {
        return format!("'{text}'");
    }
    if !text.contains('"') {
        return format!("\"{text}\"");
    }
    let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
    format!("concat({})", parts.join(", \"'\", "))
}

fn stop(driver: &mut Child) {
    #[cfg(unix)]
    // SAFETY: signalling the process group of the chromedriver this helper spawned.
    unsafe {
        libc::kill(-(driver.id() as i32), libc::SIGKILL);
    }
    let _ = driver.kill();
    let _ = driver.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop(&mut self.driver);
    }
}
