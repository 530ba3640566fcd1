//! The Chromium driver of the browser tests (`tests/browser.rs`): a fresh `mvgen serve` and a
//! headless Chromium with a throwaway profile per test, driven over the DevTools protocol
//! (chromiumoxide), one test at a time, with a screenshot after each.
//!
//! Kept apart from `support/mod.rs` (like `tool.rs`) so only the browser test binary compiles
//! chromiumoxide's protocol types. No Chromium: a plain `cargo test` skips with one line; with
//! `CI=true` the tests fail instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::fetch::{
    self, EventRequestPaused, FailRequestParams, FulfillRequestParams, HeaderEntry, RequestPattern, RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::ErrorReason;
use chromiumoxide::cdp::js_protocol::runtime::EventExceptionThrown;
use chromiumoxide::page::{Page, ScreenshotParams};
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::support::fake_upstream::{FakeReplicate, TEST_REPLICATE_TOKEN};
use crate::support::server_process::ServerProcess;

const TEST_TIMEOUT: Duration = Duration::from_secs(90);
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(20);

/// One browser at a time (see the module comment).
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy)]
pub struct Options {
    /// Started with `API_KEY` set, so `/api/*` answers 401 without it.
    pub api_key: Option<&'static str>,
    /// Started with `--configs DIR` (live configs) on this directory.
    pub configs: Option<&'static Path>,
    pub width: u32,
    pub height: u32,
    /// Images and videos from a [`FakeReplicate`] (on [`Tab::replicate`]) instead of the instant
    /// mock, so a test can hold a render mid-way, fail it, and finish it when it likes. One claim
    /// per job (`MVGEN_JOB_MAX_ATTEMPTS=1`), so a planned failure is final at once.
    pub fake_replicate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { api_key: None, configs: None, width: 1100, height: 900, fake_replicate: false }
    }
}

/// Runs `scenario` against a fresh server and browser, saves a screenshot, and panics with the
/// scenario's error (or a timeout) so `cargo test` reports it.
pub fn e2e(name: &str, options: Options, scenario: impl AsyncFnOnce(&Tab) -> Result<()>) {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(chromium) = find_chromium() else {
        if in_ci() {
            panic!("browser tests need Chromium and CI=true is set: install chromium (apt-get install chromium)");
        }
        static SAY_ONCE: Once = Once::new();
        // Straight to stderr, past libtest's capture, so a plain `cargo test` shows it.
        SAY_ONCE.call_once(|| {
            let _ = writeln!(std::io::stderr(), "browser tests skipped: install chromium");
        });
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the browser test");
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        match tokio::time::timeout(TEST_TIMEOUT, run(name, &chromium, options, scenario)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow!("timed out after {TEST_TIMEOUT:?}")),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    if let Err(err) = outcome {
        panic!("{name}: {err:#}\n(screenshot: {})", screenshot_path(name).display());
    }
    eprintln!("{name}: passed in {:.1}s", started.elapsed().as_secs_f64());
}

async fn run(
    name: &str,
    chromium: &Path,
    options: Options,
    scenario: impl AsyncFnOnce(&Tab) -> Result<()>,
) -> Result<()> {
    let mut envs = vec![("RUST_LOG", "info")];
    if let Some(key) = options.api_key {
        envs.push(("API_KEY", key));
    }
    let replicate = match options.fake_replicate {
        true => Some(FakeReplicate::start().await),
        false => None,
    };
    if let Some(fake) = &replicate {
        envs.extend([
            ("REPLICATE_API_TOKEN", TEST_REPLICATE_TOKEN),
            ("REPLICATE_BASE_URL", fake.base_url.as_str()),
            ("MV_REPLICATE_WAIT_SECS", "0"),
            ("MV_REPLICATE_POLL_SECS", "0.1"),
            ("MVGEN_JOB_MAX_ATTEMPTS", "1"),
        ]);
    }
    let dir = options.configs.map(|d| d.to_string_lossy().into_owned());
    let args: Vec<&str> = dir.as_deref().map(|d| vec!["--configs", d]).unwrap_or_default();
    let server = ServerProcess::start_with(&args, &envs).map_err(|e| anyhow!(e))?;
    let browser = Chromium::launch(chromium, options).await?;
    let tab = Tab::new(&browser, &server, options, replicate).await?;
    let outcome = scenario(&tab).await;
    tab.screenshot(name).await;
    let outcome = outcome.and(tab.page_errors().await);
    if outcome.is_err() {
        eprintln!("--- server log ---\n{}", server.log());
    }
    browser.close().await;
    outcome
}

/// Headless Chromium with a throwaway profile; its CDP event loop runs on a task.
struct Chromium {
    browser: Browser,
    events: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    async fn launch(executable: &Path, options: Options) -> Result<Self> {
        let profile = tempfile::tempdir().context("temp dir for the browser profile")?;
        // Only the flags we mean: chromiumoxide's defaults include things we don't want to depend on.
        let config = BrowserConfig::builder()
            .chrome_executable(executable)
            .disable_default_args()
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(options.width, options.height)
            .args([
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--mute-audio",
            ])
            .launch_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| anyhow!("browser config: {e}"))?;
        // chromiumoxide asks the browser for its debugger URL with a reqwest client of its own.
        mvgen::tls::install_crypto_provider();
        let (browser, mut handler) =
            Browser::launch(config).await.with_context(|| format!("launching {}", executable.display()))?;
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Ok(Self { browser, events, _profile: profile })
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.browser.wait()).await;
        self.events.abort();
    }
}

/// A page on the test's server plus what the scenarios need to drive and inspect it.
pub struct Tab {
    pub page: Page,
    pub base: String,
    pub http: reqwest::Client,
    /// The fake upstream when [`Options::fake_replicate`] is set.
    pub replicate: Option<FakeReplicate>,
    exceptions: Arc<Mutex<Vec<String>>>,
    options: Options,
}

pub enum Reply {
    /// The request never reaches the server, as when it is down.
    Fail,
    /// Answer with this status and JSON body instead of the server.
    Fulfill(u16, String),
    /// The request reaches the server, which acts on it and answers, but the answer is lost on
    /// the way back (the connection resets), as on a flaky network.
    LoseAnswer,
}

/// Undoes [`Tab::intercept`]; meanwhile says which requests it caught.
pub struct Interception(tokio::task::JoinHandle<()>, Arc<Mutex<Vec<Value>>>);

impl Interception {
    /// The headers (a JSON object, as the browser sent them) of each request caught so far.
    pub fn requests(&self) -> Vec<Value> {
        self.1.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub async fn stop(self, tab: &Tab) -> Result<()> {
        tab.page.execute(fetch::DisableParams::default()).await?;
        self.0.abort();
        Ok(())
    }
}

impl Tab {
    async fn new(
        browser: &Chromium,
        server: &ServerProcess,
        options: Options,
        replicate: Option<FakeReplicate>,
    ) -> Result<Self> {
        let page = browser.browser.new_page("about:blank").await.context("new page")?;
        emulate_viewport(&page, options).await?;
        // CSP violations are not exceptions; collect them so a too-strict policy fails the test.
        page.evaluate_on_new_document(
            "window.__csp = []; document.addEventListener('securitypolicyviolation', \
             e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));",
        )
        .await
        .context("CSP listener")?;
        let exceptions = Arc::new(Mutex::new(Vec::new()));
        let mut thrown = page.event_listener::<EventExceptionThrown>().await.context("exception listener")?;
        let sink = exceptions.clone();
        tokio::spawn(async move {
            while let Some(event) = thrown.next().await {
                let details = &event.exception_details;
                let text =
                    details.exception.as_ref().and_then(|e| e.description.clone()).unwrap_or(details.text.clone());
                sink.lock().unwrap_or_else(PoisonError::into_inner).push(text);
            }
        });
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = options.api_key {
            headers.insert("x-api-key", key.parse().context("api key header")?);
        }
        let http = crate::support::http_client_builder().default_headers(headers).build().context("http client")?;
        Ok(Self { page, base: server.base.clone(), http, replicate, exceptions, options })
    }

    pub async fn open(&self, path: &str) -> Result<()> {
        self.page.goto(format!("{}{path}", self.base)).await.with_context(|| format!("opening {path}"))?;
        self.wait_for("the page script", "document.readyState === 'complete'").await
    }

    pub async fn js<T: DeserializeOwned>(&self, expression: &str) -> Result<T> {
        let result = self.page.evaluate(expression).await.with_context(|| format!("evaluating {expression}"))?;
        result.into_value().with_context(|| format!("result of {expression}"))
    }

    /// Polls `condition` (a JS expression) until it is true.
    pub async fn wait_for(&self, what: &str, condition: &str) -> Result<()> {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            if self.js::<bool>(&format!("!!({condition})")).await? {
                return Ok(());
            }
            if Instant::now() > deadline {
                let status = self.status_text().await;
                bail!("waited {WAIT_TIMEOUT:?} for {what} ({condition}); page says: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the page is telling the person, for failure messages.
    pub async fn status_text(&self) -> String {
        self.js::<String>(
            "[...document.querySelectorAll('.status, .error:not([hidden]), .warning')] \
             .map(e => e.textContent.trim()).filter(Boolean).join(' | ')",
        )
        .await
        .unwrap_or_else(|e| format!("(unreadable: {e})"))
    }

    pub async fn click(&self, selector: &str) -> Result<()> {
        self.page.find_element(selector).await.with_context(|| format!("finding {selector}"))?.click().await?;
        Ok(())
    }

    pub async fn fill(&self, selector: &str, text: &str) -> Result<()> {
        let element = self.page.find_element(selector).await.with_context(|| format!("finding {selector}"))?;
        element.click().await?.type_str(text).await?;
        Ok(())
    }

    /// A native `<select>` popup is not part of the DOM, so choose the way the page sees it.
    pub async fn select(&self, selector: &str, value: &str) -> Result<()> {
        let offered: bool = self
            .js(&format!("[...document.querySelector({selector:?}).options].some(o => o.value === {value:?})"))
            .await?;
        ensure!(offered, "{selector} does not offer {value:?}");
        self.select_value(selector, value).await
    }

    pub async fn select_value(&self, selector: &str, value: &str) -> Result<()> {
        self.js::<bool>(&format!(
            "(() => {{ const s = document.querySelector({selector:?}); s.value = {value:?}; \
             s.dispatchEvent(new Event('change', {{ bubbles: true }})); return true; }})()"
        ))
        .await?;
        Ok(())
    }

    pub async fn text(&self, selector: &str) -> Result<String> {
        self.js(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); return e ? e.textContent.trim() : null; }})()"
        ))
        .await
        .with_context(|| format!("no element {selector}"))
    }

    pub async fn value(&self, selector: &str) -> Result<String> {
        self.js(&format!("document.querySelector({selector:?}).value")).await
    }

    pub async fn attr(&self, selector: &str, name: &str) -> Result<String> {
        self.js(&format!("document.querySelector({selector:?}).getAttribute({name:?})"))
            .await
            .with_context(|| format!("{selector} has no {name}"))
    }

    pub async fn exists(&self, selector: &str) -> Result<bool> {
        self.js(&format!("!!document.querySelector({selector:?})")).await
    }

    /// Rendered and taking space: catches `hidden`, `display: none` on any ancestor.
    pub async fn visible(&self, selector: &str) -> Result<bool> {
        self.js(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); \
             return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'; }})()"
        ))
        .await
    }

    /// Answers the page's requests matching `pattern` (a CDP glob) instead of the server, until stopped.
    pub async fn intercept(&self, pattern: &str, reply: Reply) -> Result<Interception> {
        let mut paused = self.page.event_listener::<EventRequestPaused>().await?;
        // A lost answer is caught once the server has answered, the others before it is asked.
        let at = if matches!(reply, Reply::LoseAnswer) { RequestStage::Response } else { RequestStage::Request };
        let stage = RequestPattern::builder().url_pattern(pattern).request_stage(at).build();
        self.page.execute(fetch::EnableParams::builder().pattern(stage).build()).await.context("Fetch.enable")?;
        let page = self.page.clone();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let caught = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = paused.next().await {
                caught.lock().unwrap_or_else(PoisonError::into_inner).push(event.request.headers.inner().clone());
                let id = event.request_id.clone();
                let _ = match &reply {
                    Reply::Fail => {
                        page.execute(FailRequestParams::new(id, ErrorReason::ConnectionRefused)).await.map(drop)
                    }
                    Reply::LoseAnswer => {
                        page.execute(FailRequestParams::new(id, ErrorReason::ConnectionReset)).await.map(drop)
                    }
                    Reply::Fulfill(status, body) => {
                        let mut answer = FulfillRequestParams::new(id, *status);
                        answer.response_headers = Some(vec![HeaderEntry::new("Content-Type", "application/json")]);
                        answer.body = Some(base64(body.as_bytes()).into());
                        page.execute(answer).await.map(drop)
                    }
                };
            }
        });
        Ok(Interception(task, seen))
    }

    pub async fn api_get(&self, path: &str) -> Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        ensure!(response.status().is_success(), "GET {path}: {}", response.status());
        Ok(response.json().await?)
    }

    pub async fn api_post(&self, path: &str, body: Value) -> Result<Value> {
        let response = self.http.post(format!("{}{path}", self.base)).json(&body).send().await?;
        ensure!(response.status().is_success(), "POST {path}: {}", response.status());
        Ok(response.json().await?)
    }

    /// Uncaught page exceptions and CSP violations: either one means the page is broken.
    pub async fn page_errors(&self) -> Result<()> {
        let csp: Vec<String> = self.js("window.__csp || []").await.unwrap_or_default();
        let thrown = self.exceptions.lock().unwrap_or_else(PoisonError::into_inner).clone();
        ensure!(thrown.is_empty() && csp.is_empty(), "page errors: exceptions {thrown:?}, CSP violations {csp:?}");
        Ok(())
    }

    /// Best effort: a missing screenshot must not hide the test's real outcome.
    pub async fn screenshot(&self, name: &str) {
        let path = screenshot_path(name);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // Capture starts at y = 0 of the viewport, so a page scrolled by earlier clicks would come
        // out shifted with its bottom cut off.
        let _ = self.page.evaluate("window.scrollTo(0, 0)").await;
        let params = ScreenshotParams::builder().full_page(true).build();
        if let Err(err) = self.page.save_screenshot(params, &path).await {
            eprintln!("screenshot {} failed: {err}", path.display());
        }
        // A full-page capture clears the device metrics, and a headless window is never narrower
        // than 500 px: without this, a mid-test screenshot would silently widen a phone viewport.
        if let Err(err) = emulate_viewport(&self.page, self.options).await {
            eprintln!("restoring the viewport after a screenshot failed: {err:#}");
        }
    }
}

async fn emulate_viewport(page: &Page, options: Options) -> Result<()> {
    let metrics = SetDeviceMetricsOverrideParams::new(options.width, options.height, 1.0, options.width < 500);
    page.execute(metrics).await.context("viewport")?;
    Ok(())
}

fn screenshot_path(name: &str) -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp; keep screenshots beside it where people look.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-screenshots").join(format!("{name}.png"))
}

fn find_chromium() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("MVGEN_CHROMIUM") {
        let path = PathBuf::from(explicit);
        return path.is_file().then_some(path);
    }
    let standard = Path::new("/usr/bin/chromium");
    if standard.is_file() {
        return Some(standard.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
