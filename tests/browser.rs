//! End-to-end tests of the create page in a real headless Chromium, driven over the DevTools
//! protocol (chromiumoxide), against the real `mvgen serve` binary with mock providers.
//!
//! Each test starts its own server (temp output dir, no provider keys) and its own browser with a
//! fresh profile. Tests run one at a time behind a lock: two Chromiums on two shared cores make
//! timings flaky, and each test takes only a couple of seconds anyway.
//!
//! No Chromium: a plain `cargo test` prints `browser tests skipped: install chromium` and passes;
//! with `CI=true` the tests fail instead, so CI can never go green without running them.
//! `MVGEN_CHROMIUM=/path` picks the browser (and pointing it at nothing exercises the skip).
//! Every test leaves a screenshot in `target/browser-screenshots/<test>.png`, pass or fail.

mod support;

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
use serde_json::{Value, json};
use support::client::copy_tree;
use support::server_process::ServerProcess;

// ---- Tests ---------------------------------------------------------------------------------------

#[test]
fn config_section_is_collapsed_until_toggled() {
    e2e("config_section_is_collapsed_until_toggled", Options::default(), async |t| {
        t.open("/").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        ensure!(!t.visible("#config-section").await?, "config section is visible on load");
        ensure!(t.attr("#config-toggle", "aria-expanded").await? == "false", "aria-expanded is not false on load");
        ensure!(t.attr("#config-toggle", "aria-controls").await? == "config-section", "toggle controls nothing");

        t.click("#config-toggle").await?;
        ensure!(t.visible("#config-section").await?, "config section stays hidden after the toggle");
        ensure!(t.visible("#config-flavor").await?, "flavor select is not visible when expanded");
        ensure!(t.attr("#config-toggle", "aria-expanded").await? == "true", "aria-expanded did not flip to true");

        // The toggle is a real button: Enter on the focused control collapses it again.
        t.page.find_element("#config-toggle").await?.focus().await?.press_key("Enter").await?;
        ensure!(!t.visible("#config-section").await?, "config section did not collapse from the keyboard");
        ensure!(t.attr("#config-toggle", "aria-expanded").await? == "false", "aria-expanded did not flip back");
        t.click("#config-toggle").await
    });
}

#[test]
fn flavor_select_lists_exactly_the_servers_flavors() {
    e2e("flavor_select_lists_exactly_the_servers_flavors", Options::default(), async |t| {
        let listed = t.api_get("/api/mv/get_config_flavors").await?;
        let expected: Vec<String> = serde_json::from_value(listed["flavors"].clone()).context("flavors")?;
        ensure!(expected.len() >= 3, "server lists too few flavors: {expected:?}");

        t.open("/create").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        t.click("#config-toggle").await?;
        let options: Vec<String> =
            t.js("[...document.querySelectorAll('#config-flavor option')].map(o => o.value)").await?;
        ensure!(options == expected, "select offers {options:?}, server lists {expected:?}");
        ensure!(t.value("#config-flavor").await? == "default", "default is not selected initially");

        let description = listed["details"]
            .as_array()
            .and_then(|d| d.iter().find(|f| f["name"] == "default"))
            .and_then(|f| f["description"].as_str())
            .unwrap_or_default()
            .to_owned();
        let help = t.text("#config-flavor-help").await?;
        ensure!(help == description, "help text {help:?} is not default's description {description:?}");
        ensure!(!t.visible("#config-flavor-error").await?, "an error shows although the list loaded");
        Ok(())
    });
}

#[test]
fn choosing_mv1_generates_mv1_scenes_and_is_remembered() {
    e2e("choosing_mv1_generates_mv1_scenes_and_is_remembered", Options::default(), async |t| {
        t.open("/").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        t.click("#config-toggle").await?;
        t.select("#config-flavor", "mv1").await?;
        t.fill("#video-description", "A robot learns to play the drums").await?;
        t.fill("#character-description", "A small rusty robot with a red scarf").await?;
        t.click("#generate-scenes").await?;
        t.wait_for("scene cards", "document.querySelectorAll('.scene-card').length > 0").await?;

        // What the server says it used, as the page shows it: proof that mv1 went over the wire.
        let used = t.text("#scenes-meta .flavor-used").await?;
        ensure!(used == "mv1", "page says the scenes came from flavor {used:?}");
        ensure!(t.visible("#scenes-meta .mock").await?, "mock results are not labelled");
        ensure!(!t.exists("#scenes-meta .flavor-fallback").await?, "fallback warning without a fallback");

        // The same request from the test: the server's own count for mv1 must match the cards.
        let direct = t
            .api_post(
                "/api/mv/create_scenes",
                json!({"idea": "x", "character_description": "y", "config_flavor": "mv1"}),
            )
            .await?;
        ensure!(direct["metadata"]["config_flavor"]["used"] == "mv1", "server did not use mv1: {direct}");
        let expected = direct["metadata"]["number_of_scenes"].as_u64().context("number_of_scenes")?;
        let cards: u64 = t.js("document.querySelectorAll('.scene-card').length").await?;
        ensure!(cards == expected, "{cards} scene cards, mv1 has {expected} scenes");
        let first = t.text(".scene-card .scene-description").await?;
        ensure!(!first.is_empty(), "scene card has no description");
        t.screenshot("choosing_mv1_generates_mv1_scenes_and_is_remembered-scenes").await;

        t.open("/").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        ensure!(t.value("#config-flavor").await? == "mv1", "the chosen flavor was not remembered");
        Ok(())
    });
}

#[test]
fn server_fallback_to_default_is_shown_as_a_warning() {
    e2e("server_fallback_to_default_is_shown_as_a_warning", Options::default(), async |t| {
        t.open("/").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        // A page loaded before the flavor was removed from the server still offers it.
        t.js::<bool>(
            "(() => { const s = document.querySelector('#config-flavor'); \
             s.add(new Option('Retired', 'retired-flavor')); return true; })()",
        )
        .await?;
        t.select("#config-flavor", "retired-flavor").await?;
        t.fill("#video-description", "A paper plane crosses the city").await?;
        t.fill("#character-description", "A boy with a blue cap").await?;
        t.click("#generate-scenes").await?;
        t.wait_for("scene cards", "document.querySelectorAll('.scene-card').length > 0").await?;
        ensure!(t.text("#scenes-meta .flavor-used").await? == "default", "fallback result not labelled default");
        ensure!(t.visible("#scenes-meta .flavor-fallback").await?, "no visible fallback warning");
        let warning = t.text("#scenes-meta .flavor-fallback").await?;
        ensure!(warning.contains("retired-flavor"), "warning does not name the requested flavor: {warning:?}");
        Ok(())
    });
}

#[test]
fn every_scene_renders_to_a_playable_video() {
    e2e("every_scene_renders_to_a_playable_video", Options::default(), async |t| {
        t.open("/").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        t.fill("#video-description", "Two friends race paper boats down a rainy street").await?;
        t.fill("#character-description", "A girl in a yellow raincoat").await?;
        t.click("#generate-scenes").await?;
        t.wait_for("scene cards", "document.querySelectorAll('.scene-card').length > 0").await?;
        ensure!(t.js::<bool>("document.querySelector('#generate-videos').disabled").await?, "render before a pick");

        t.select_value("#num-images", "2").await?;
        t.click("#generate-character").await?;
        t.wait_for("reference images", "document.querySelectorAll('#character-images img').length === 2").await?;
        ensure!(t.text("#character-meta .flavor-used").await? == "default", "character meta lacks the flavor");
        // Pick with the keyboard: focus the first radio, Space checks it.
        t.page.find_element("#character-images input[type=radio]").await?.focus().await?.press_key(" ").await?;
        t.wait_for("a picked reference", "!document.querySelector('#generate-videos').disabled").await?;

        t.click("#generate-videos").await?;
        t.wait_for(
            "every card done or failed",
            "[...document.querySelectorAll('.scene-card')].every(c => ['done','failed'].includes(c.dataset.state))",
        )
        .await?;
        let failed: Vec<String> = t
            .js("[...document.querySelectorAll('.scene-card[data-state=failed]')].map(c => c.textContent.trim())")
            .await?;
        ensure!(failed.is_empty(), "scenes failed: {failed:?}");
        // Chromium itself must be able to read each file, not just fetch it.
        t.wait_for(
            "video metadata",
            "[...document.querySelectorAll('.scene-card video')].every(v => v.readyState >= 1 && !v.error)",
        )
        .await?;

        let sources: Vec<String> = t.js("[...document.querySelectorAll('.scene-card video')].map(v => v.src)").await?;
        let cards: usize = t.js("document.querySelectorAll('.scene-card').length").await?;
        ensure!(sources.len() == cards, "{} videos for {cards} scenes", sources.len());
        for src in &sources {
            ensure!(src.starts_with(&format!("{}/api/mv/get_video/", t.base)), "unexpected video src {src}");
            let response = t.http.get(src).send().await.with_context(|| format!("GET {src}"))?;
            ensure!(response.status() == 200, "GET {src} answered {}", response.status());
            let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            ensure!(kind.starts_with("video/"), "GET {src} is {kind:?}, not a video");
        }
        let controls: bool = t.js("[...document.querySelectorAll('.scene-card video')].every(v => v.controls)").await?;
        ensure!(controls, "a video has no controls");
        let used: Vec<String> =
            t.js("[...document.querySelectorAll('.scene-card .flavor-used')].map(b => b.textContent)").await?;
        ensure!(used.len() == cards && used.iter().all(|u| u == "default"), "per-video flavor badges: {used:?}");
        Ok(())
    });
}

#[test]
fn failed_video_shows_the_servers_message_and_retry_recovers() {
    e2e("failed_video_shows_the_servers_message_and_retry_recovers", Options::default(), async |t| {
        t.open("/").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        t.fill("#video-description", "A lighthouse keeper befriends a whale").await?;
        t.fill("#character-description", "An old lighthouse keeper with a grey beard").await?;
        t.click("#generate-scenes").await?;
        t.wait_for("scene cards", "document.querySelectorAll('.scene-card').length > 0").await?;
        t.click("#generate-character").await?;
        t.wait_for("reference images", "document.querySelectorAll('#character-images input').length > 0").await?;
        t.click("#character-images .ref-option").await?;

        // Every render fails upstream, the way the server reports it.
        let detail =
            json!({"detail": {"error": "UpstreamError", "message": "The video model is overloaded.", "details": null}});
        let blocked = t.intercept("*/api/mv/generate_video", Reply::Fulfill(503, detail.to_string())).await?;
        t.click("#generate-videos").await?;
        t.wait_for(
            "every card failed",
            "[...document.querySelectorAll('.scene-card')].every(c => c.dataset.state === 'failed')",
        )
        .await?;
        let message = t.text(".scene-card .scene-error").await?;
        ensure!(message.contains("The video model is overloaded."), "card shows {message:?}, not the server's message");
        t.screenshot("failed_video_shows_the_servers_message_and_retry_recovers-failed").await;

        blocked.stop(t).await?;
        t.click(".scene-card .retry").await?;
        t.wait_for("the retried card done", "document.querySelector('.scene-card').dataset.state === 'done'").await?;
        ensure!(t.exists(".scene-card video").await?, "retried card has no video");
        let still_failed: usize = t.js("document.querySelectorAll('.scene-card[data-state=failed]').length").await?;
        let cards: usize = t.js("document.querySelectorAll('.scene-card').length").await?;
        ensure!(still_failed == cards - 1, "retry touched other cards ({still_failed} of {cards} still failed)");
        Ok(())
    });
}

#[test]
fn unreachable_flavor_list_keeps_default_and_says_so() {
    e2e("unreachable_flavor_list_keeps_default_and_says_so", Options::default(), async |t| {
        t.intercept("*/api/mv/get_config_flavors", Reply::Fail).await?;
        t.open("/").await?;
        t.wait_for("flavor error", "!document.querySelector('#config-flavor-error').hidden").await?;
        // The error sits outside the collapsed section so it is seen without opening it.
        ensure!(t.visible("#config-flavor-error").await?, "flavor error is not visible");
        ensure!(!t.visible("#config-section").await?, "config section opened by itself");
        let error = t.text("#config-flavor-error").await?;
        ensure!(error.contains("could not reach the server"), "error reads {error:?}");
        t.click("#config-toggle").await?;
        let options: Vec<String> =
            t.js("[...document.querySelectorAll('#config-flavor option')].map(o => o.value)").await?;
        ensure!(options == ["default"], "options after a failed load: {options:?}");
        ensure!(t.value("#config-flavor").await? == "default", "default is not selected");
        ensure!(!t.js::<bool>("document.querySelector('#config-flavor').disabled").await?, "select left disabled");
        Ok(())
    });
}

#[test]
fn api_key_is_asked_for_once_and_then_sent() {
    let options = Options { api_key: Some("e2e-secret"), ..Options::default() };
    e2e("api_key_is_asked_for_once_and_then_sent", options, async |t| {
        t.open("/").await?;
        t.wait_for("the key form", "!document.querySelector('#api-key-form').hidden").await?;
        t.screenshot("api_key_is_asked_for_once_and_then_sent-form").await;
        t.fill("#api-key", "e2e-secret").await?;
        t.page.find_element("#api-key").await?.press_key("Enter").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        ensure!(!t.visible("#config-flavor-error").await?, "flavor list failed after the key was given");
        let options: usize = t.js("document.querySelectorAll('#config-flavor option').length").await?;
        ensure!(options >= 3, "only {options} flavors with the key");

        // Remembered: a reload goes straight through without asking again.
        t.open("/").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        ensure!(!t.visible("#api-key-form").await?, "asked for the key again after a reload");
        t.fill("#video-description", "A cat DJ at a rooftop party").await?;
        t.fill("#character-description", "A grey cat in headphones").await?;
        t.click("#generate-scenes").await?;
        t.wait_for("scene cards", "document.querySelectorAll('.scene-card').length > 0").await?;
        // <img> cannot send the key header, so the page fetches the bytes itself; they must show.
        t.click("#generate-character").await?;
        t.wait_for(
            "reference images drawn",
            "(() => { const imgs = [...document.querySelectorAll('#character-images img')]; \
             return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); })()",
        )
        .await?;
        Ok(())
    });
}

#[test]
fn page_fits_a_375px_screen() {
    let options = Options { width: 375, height: 812, ..Options::default() };
    e2e("page_fits_a_375px_screen", options, async |t| {
        t.open("/").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        t.click("#config-toggle").await?;
        // Empty fields are caught on the page, before any request, with the reason next to them.
        t.click("#generate-scenes").await?;
        ensure!(t.visible("#video-description-error").await?, "no message for an empty video description");
        ensure!(t.visible("#character-description-error").await?, "no message for an empty character");
        let focused: String = t.js("document.activeElement.id").await?;
        ensure!(focused == "video-description", "focus went to {focused:?}, not the first empty field");
        t.screenshot("page_fits_a_375px_screen-validation").await;
        t.fill("#video-description", "A skateboarder crosses a city at dawn, one trick per block").await?;
        t.fill("#character-description", "A teenager with a green helmet").await?;
        t.click("#generate-scenes").await?;
        t.wait_for("scene cards", "document.querySelectorAll('.scene-card').length > 0").await?;
        t.click("#generate-character").await?;
        t.wait_for("reference images", "document.querySelectorAll('#character-images img').length > 0").await?;
        let width: u32 = t.js("document.documentElement.scrollWidth").await?;
        ensure!(width <= 375, "page is {width}px wide on a 375px screen (horizontal scrolling)");
        let unlabelled: Vec<String> = t
            .js("[...document.querySelectorAll('input, select, textarea, button')].filter(c => \
                 !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.textContent.trim()) \
                 .map(c => c.id || c.outerHTML.slice(0, 60))")
            .await?;
        ensure!(unlabelled.is_empty(), "controls without a label: {unlabelled:?}");
        Ok(())
    });
}

#[test]
fn live_configs_that_do_not_compile_are_listed_on_the_page() {
    // A fresh copy of configs/ for the server to watch, under cargo's per-test scratch dir (the path
    // is leaked on purpose: Options is Copy and holds 'static data).
    let dir: &'static Path =
        Box::leak(Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-live-configs").into_boxed_path());
    let _ = std::fs::remove_dir_all(dir);
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"), dir);
    let options = Options { configs: Some(dir), ..Options::default() };
    e2e("live_configs_that_do_not_compile_are_listed_on_the_page", options, async |t| {
        t.open("/").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        ensure!(!t.visible("#live-configs").await?, "a diagnostics notice while everything compiles");

        let params = dir.join("mv1/parameters.yaml");
        let text = std::fs::read_to_string(&params).context("read")?;
        std::fs::write(&params, text.replace("number_of_scenes: 8", "number_of_scenes: lots")).context("write")?;
        let deadline = Instant::now() + WAIT_TIMEOUT;
        let diagnostics = loop {
            let list = t.api_get("/api/mv/get_config_flavors").await?;
            if let Some(first) = list["live"]["diagnostics"][0].as_str() {
                break first.to_owned();
            }
            ensure!(Instant::now() < deadline, "the broken edit was not reported: {list}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };

        t.open("/").await?;
        t.wait_for("notice shown", "!document.querySelector('#live-configs').hidden").await?;
        ensure!(t.visible("#live-configs").await?, "the notice is not visible while the section is collapsed");
        let listed = t.text("#live-configs-diagnostics li").await?;
        ensure!(listed == diagnostics, "the page lists {listed:?}, the server said {diagnostics:?}");
        ensure!(listed.contains("mv1/parameters.yaml:"), "no file:line:col in {listed:?}");
        let summary = t.text("#live-configs-summary").await?;
        ensure!(summary.contains("last good version"), "summary: {summary:?}");
        // The last good flavors are still offered.
        let options: Vec<String> =
            t.js("[...document.querySelectorAll('#config-flavor option')].map(o => o.value)").await?;
        ensure!(options.contains(&"mv1".to_string()), "mv1 is no longer offered: {options:?}");
        Ok(())
    });
}

// ---- Harness -------------------------------------------------------------------------------------

const TEST_TIMEOUT: Duration = Duration::from_secs(90);
const WAIT_TIMEOUT: Duration = Duration::from_secs(20);

/// One browser at a time (see the module comment).
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy)]
struct Options {
    /// Started with `API_KEY` set, so `/api/*` answers 401 without it.
    api_key: Option<&'static str>,
    /// Started with `--configs DIR` (live configs) on this directory.
    configs: Option<&'static Path>,
    width: u32,
    height: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self { api_key: None, configs: None, width: 1100, height: 900 }
    }
}

/// Runs `scenario` against a fresh server and browser, saves a screenshot, and panics with the
/// scenario's error (or a timeout) so `cargo test` reports it.
fn e2e(name: &str, options: Options, scenario: impl AsyncFnOnce(&Tab) -> Result<()>) {
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
    let dir = options.configs.map(|d| d.to_string_lossy().into_owned());
    let args: Vec<&str> = dir.as_deref().map(|d| vec!["--configs", d]).unwrap_or_default();
    let server = ServerProcess::start_with(&args, &envs).map_err(|e| anyhow!(e))?;
    let browser = Chromium::launch(chromium, options).await?;
    let tab = Tab::new(&browser, &server, options).await?;
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
struct Tab {
    page: Page,
    base: String,
    http: reqwest::Client,
    exceptions: Arc<Mutex<Vec<String>>>,
    options: Options,
}

enum Reply {
    /// The request never reaches the server, as when it is down.
    Fail,
    /// Answer with this status and JSON body instead of the server.
    Fulfill(u16, String),
}

/// Undoes [`Tab::intercept`].
struct Interception(tokio::task::JoinHandle<()>);

impl Interception {
    async fn stop(self, tab: &Tab) -> Result<()> {
        tab.page.execute(fetch::DisableParams::default()).await?;
        self.0.abort();
        Ok(())
    }
}

impl Tab {
    async fn new(browser: &Chromium, server: &ServerProcess, options: Options) -> Result<Self> {
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
        let http = reqwest::Client::builder().default_headers(headers).build().context("http client")?;
        Ok(Self { page, base: server.base.clone(), http, exceptions, options })
    }

    async fn open(&self, path: &str) -> Result<()> {
        self.page.goto(format!("{}{path}", self.base)).await.with_context(|| format!("opening {path}"))?;
        self.wait_for("the page script", "document.readyState === 'complete'").await
    }

    async fn js<T: DeserializeOwned>(&self, expression: &str) -> Result<T> {
        let result = self.page.evaluate(expression).await.with_context(|| format!("evaluating {expression}"))?;
        result.into_value().with_context(|| format!("result of {expression}"))
    }

    /// Polls `condition` (a JS expression) until it is true.
    async fn wait_for(&self, what: &str, condition: &str) -> Result<()> {
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
    async fn status_text(&self) -> String {
        self.js::<String>(
            "[...document.querySelectorAll('.status, .error:not([hidden]), .warning')] \
             .map(e => e.textContent.trim()).filter(Boolean).join(' | ')",
        )
        .await
        .unwrap_or_else(|e| format!("(unreadable: {e})"))
    }

    async fn click(&self, selector: &str) -> Result<()> {
        self.page.find_element(selector).await.with_context(|| format!("finding {selector}"))?.click().await?;
        Ok(())
    }

    async fn fill(&self, selector: &str, text: &str) -> Result<()> {
        let element = self.page.find_element(selector).await.with_context(|| format!("finding {selector}"))?;
        element.click().await?.type_str(text).await?;
        Ok(())
    }

    /// A native `<select>` popup is not part of the DOM, so choose the way the page sees it.
    async fn select(&self, selector: &str, value: &str) -> Result<()> {
        let offered: bool = self
            .js(&format!("[...document.querySelector({selector:?}).options].some(o => o.value === {value:?})"))
            .await?;
        ensure!(offered, "{selector} does not offer {value:?}");
        self.select_value(selector, value).await
    }

    async fn select_value(&self, selector: &str, value: &str) -> Result<()> {
        self.js::<bool>(&format!(
            "(() => {{ const s = document.querySelector({selector:?}); s.value = {value:?}; \
             s.dispatchEvent(new Event('change', {{ bubbles: true }})); return true; }})()"
        ))
        .await?;
        Ok(())
    }

    async fn text(&self, selector: &str) -> Result<String> {
        self.js(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); return e ? e.textContent.trim() : null; }})()"
        ))
        .await
        .with_context(|| format!("no element {selector}"))
    }

    async fn value(&self, selector: &str) -> Result<String> {
        self.js(&format!("document.querySelector({selector:?}).value")).await
    }

    async fn attr(&self, selector: &str, name: &str) -> Result<String> {
        self.js(&format!("document.querySelector({selector:?}).getAttribute({name:?})"))
            .await
            .with_context(|| format!("{selector} has no {name}"))
    }

    async fn exists(&self, selector: &str) -> Result<bool> {
        self.js(&format!("!!document.querySelector({selector:?})")).await
    }

    /// Rendered and taking space: catches `hidden`, `display: none` on any ancestor.
    async fn visible(&self, selector: &str) -> Result<bool> {
        self.js(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); \
             return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'; }})()"
        ))
        .await
    }

    /// Answers the page's requests matching `pattern` (a CDP glob) instead of the server, until stopped.
    async fn intercept(&self, pattern: &str, reply: Reply) -> Result<Interception> {
        let mut paused = self.page.event_listener::<EventRequestPaused>().await?;
        let stage = RequestPattern::builder().url_pattern(pattern).request_stage(RequestStage::Request).build();
        self.page.execute(fetch::EnableParams::builder().pattern(stage).build()).await.context("Fetch.enable")?;
        let page = self.page.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = paused.next().await {
                let id = event.request_id.clone();
                let _ = match &reply {
                    Reply::Fail => {
                        page.execute(FailRequestParams::new(id, ErrorReason::ConnectionRefused)).await.map(drop)
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
        Ok(Interception(task))
    }

    async fn api_get(&self, path: &str) -> Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        ensure!(response.status().is_success(), "GET {path}: {}", response.status());
        Ok(response.json().await?)
    }

    async fn api_post(&self, path: &str, body: Value) -> Result<Value> {
        let response = self.http.post(format!("{}{path}", self.base)).json(&body).send().await?;
        ensure!(response.status().is_success(), "POST {path}: {}", response.status());
        Ok(response.json().await?)
    }

    /// Uncaught page exceptions and CSP violations: either one means the page is broken.
    async fn page_errors(&self) -> Result<()> {
        let csp: Vec<String> = self.js("window.__csp || []").await.unwrap_or_default();
        let thrown = self.exceptions.lock().unwrap_or_else(PoisonError::into_inner).clone();
        ensure!(thrown.is_empty() && csp.is_empty(), "page errors: exceptions {thrown:?}, CSP violations {csp:?}");
        Ok(())
    }

    /// Best effort: a missing screenshot must not hide the test's real outcome.
    async fn screenshot(&self, name: &str) {
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
