//! End-to-end tests of the create page in a real headless Chromium, driven over the DevTools
//! protocol (chromiumoxide, through the driver in `support/chromium.rs`), against the real
//! `mvgen serve` binary with mock providers. Belongs here: anything a person does on the page.
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

#[path = "support/chromium.rs"]
mod chromium;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};
use support::client::copy_tree;
use support::fake_upstream::{FakeFile, FakeReplicate, Outcome, PredictionPlan};

use chromium::{Options, Reply, Tab, WAIT_TIMEOUT, e2e};

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

/// Scenes written, one reference picked, every video rendered, then Final cut: the page's whole
/// flow up to the cut's player.
async fn render_and_cut(t: &Tab) -> Result<()> {
    t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
    t.fill("#video-description", "A lighthouse keeper tunes an old radio").await?;
    t.fill("#character-description", "An old man in a blue coat").await?;
    t.click("#generate-scenes").await?;
    t.wait_for("scene cards", "document.querySelectorAll('.scene-card').length > 0").await?;
    ensure!(t.js::<bool>("document.querySelector('#final-cut-section').hidden").await?, "no cut before videos");
    t.select_value("#num-images", "1").await?;
    t.click("#generate-character").await?;
    t.wait_for("a reference image", "document.querySelectorAll('#character-images input').length === 1").await?;
    t.click("#character-images input[type=radio]").await?;
    t.wait_for("a picked reference", "!document.querySelector('#generate-videos').disabled").await?;
    t.click("#generate-videos").await?;
    t.wait_for(
        "every card done",
        "[...document.querySelectorAll('.scene-card')].every(c => c.dataset.state === 'done')",
    )
    .await?;
    t.wait_for("the final cut offered", "!document.querySelector('#final-cut').disabled").await?;
    t.click("#final-cut").await?;
    t.wait_for("the cut's player", "document.querySelector('#final-cut-video')?.readyState >= 1").await
}

/// After every scene is rendered, Final cut makes one video of them that Chromium plays to its
/// end, its audio (the mock clips' tone) decoded, and offers it for download.
#[test]
fn final_cut_plays_to_its_end_with_audio() {
    e2e("final_cut_plays_to_its_end_with_audio", Options::default(), async |t| {
        t.open("/").await?;
        render_and_cut(t).await?;
        let cards: f64 = t.js("document.querySelectorAll('.scene-card').length").await?;
        let duration: f64 = t.js("document.querySelector('#final-cut-video').duration").await?;
        // Each mock render lasts the flavor's `video_duration` (8 s): the 2 s clip repeated.
        ensure!((duration - 8.0 * cards).abs() < 0.1, "the cut lasts {duration} s for {cards} eight-second scenes");
        let href: String = t.js("document.querySelector('#final-cut-download').href").await?;
        ensure!(href.contains("/api/mv/get_video/"), "download link {href:?}");
        // Played muted (no gesture needed) and fast; audio is decoded all the same.
        t.js::<bool>("(v => { v.muted = true; v.playbackRate = 16; v.play(); return true; })(document.querySelector('#final-cut-video'))")
            .await?;
        t.wait_for("the cut played to its end", "document.querySelector('#final-cut-video').ended").await?;
        let error: String = t.js("String(document.querySelector('#final-cut-video').error?.code ?? '')").await?;
        ensure!(error.is_empty(), "the player failed with MediaError code {error}");
        let audio: f64 = t.js("document.querySelector('#final-cut-video').webkitAudioDecodedByteCount").await?;
        let frames: f64 = t.js("document.querySelector('#final-cut-video').webkitVideoDecodedByteCount").await?;
        ensure!(audio > 0.0 && frames > 0.0, "decoded audio {audio} bytes, video {frames} bytes");
        Ok(())
    });
}

/// With an API key, the cut's player shows the bytes fetched with the key, and its download link
/// fetches them only when it is clicked.
#[test]
fn final_cut_with_an_api_key_plays_and_downloads_with_the_key() {
    let options = Options { api_key: Some("e2e-secret"), ..Options::default() };
    e2e("final_cut_with_an_api_key_plays_and_downloads_with_the_key", options, async |t| {
        t.open("/").await?;
        t.wait_for("the key form", "!document.querySelector('#api-key-form').hidden").await?;
        t.fill("#api-key", "e2e-secret").await?;
        t.page.find_element("#api-key").await?.press_key("Enter").await?;
        render_and_cut(t).await?;
        let src: String = t.js("document.querySelector('#final-cut-video').src").await?;
        ensure!(src.starts_with("blob:"), "the player's source {src:?} is not the keyed fetch");
        let href: String = t.js("document.querySelector('#final-cut-download').href").await?;
        ensure!(href.contains("/api/mv/get_video/"), "fetched before any click: {href:?}");
        t.click("#final-cut-download").await?;
        t.wait_for("the link's keyed copy", "document.querySelector('#final-cut-download').href.startsWith('blob:')")
            .await?;
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
        // The page submits each render as a job; the submission is what the server refuses here.
        let blocked = t.intercept("*/api/mv/jobs", Reply::Fulfill(503, detail.to_string())).await?;
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

// ---- Renders as jobs: progress, Cancel, Retry, reload -----------------------------------------

const ALL_DONE: &str = "[...document.querySelectorAll('.scene-card')].every(c => c.dataset.state === 'done')";

/// Scenes written and a character reference picked: the page ready to render. Returns the cards.
async fn ready_to_render(t: &Tab) -> Result<usize> {
    t.open("/").await?;
    t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
    t.fill("#video-description", "A paper lantern drifts over a night market").await?;
    t.fill("#character-description", "A girl carrying a red lantern").await?;
    t.click("#generate-scenes").await?;
    t.wait_for("scene cards", "document.querySelectorAll('.scene-card').length > 0").await?;
    t.click("#generate-character").await?;
    t.wait_for("reference images", "document.querySelectorAll('#character-images input').length > 0").await?;
    t.click("#character-images .ref-option").await?;
    t.wait_for("a picked reference", "!document.querySelector('#generate-videos').disabled").await?;
    t.js("document.querySelectorAll('.scene-card').length").await
}

fn fake(t: &Tab) -> Result<&FakeReplicate> {
    t.replicate.as_ref().context("the test needs Options::fake_replicate")
}

/// Every video the page asks for from now on waits for [`finish_all`].
fn hold_renders(t: &Tab, cards: usize) -> Result<()> {
    let replicate = fake(t)?;
    for _ in 0..cards {
        replicate.push_prediction(PredictionPlan::held(Outcome::Succeed(FakeFile::mp4())));
    }
    Ok(())
}

/// The job ids the page keeps per card (in localStorage, which is what a reload resumes from).
async fn kept_job_ids(t: &Tab) -> Result<Vec<Option<String>>> {
    t.js("(() => { const s = JSON.parse(localStorage.getItem('mvgen.session') || '{}'); \
         return [...document.querySelectorAll('.scene-card')].map(c => (s.jobs || {})[c.dataset.index] || null); })()")
        .await
}

async fn job(t: &Tab, id: &str) -> Result<Value> {
    t.api_get(&format!("/api/mv/jobs/{id}")).await
}

/// Lets each held prediction finish once its job has created it, until every card shows its video.
async fn finish_all(t: &Tab) -> Result<()> {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        if t.js::<bool>(ALL_DONE).await? {
            return Ok(());
        }
        for id in kept_job_ids(t).await?.into_iter().flatten() {
            if let Some(upstream) = job(t, &id).await?["upstream"]["id"].as_str() {
                fake(t)?.finish(upstream);
            }
        }
        let states: Vec<String> =
            t.js("[...document.querySelectorAll('.scene-card')].map(c => c.dataset.state)").await?;
        ensure!(Instant::now() < deadline, "cards never all done: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn rendering_shows_progress_then_the_player() {
    let options = Options { fake_replicate: true, ..Options::default() };
    e2e("rendering_shows_progress_then_the_player", options, async |t| {
        let cards = ready_to_render(t).await?;
        hold_renders(t, cards)?;
        t.click("#generate-videos").await?;
        // Held upstream: the card renders, its clock runs, and it names the upstream's status.
        t.wait_for(
            "a rendering card with its clock past 1 s and the upstream status",
            "[...document.querySelectorAll('.scene-card[data-state=rendering]')].some(c => \
             /Rendering… [1-9]\\d* s/.test(c.textContent) && c.querySelector('.upstream-status:not([hidden])'))",
        )
        .await?;
        let (index, word): (String, String) = t
            .js("(() => { const c = document.querySelector('.scene-card[data-state=rendering] .upstream-status:not([hidden])')\
                 .closest('.scene-card'); return [c.dataset.index, c.querySelector('.upstream-status').textContent]; })()")
            .await?;
        let ids = kept_job_ids(t).await?;
        let id = ids[index.parse::<usize>()?].clone().context("no job id kept for the rendering card")?;
        let server = job(t, &id).await?;
        ensure!(server["status"] == "processing", "the card renders, the job is {}", server["status"]);
        ensure!(server["progress"]["upstream_status"] == word.as_str(), "card says {word:?}, the job {server}");
        ensure!(t.exists(".scene-card[data-state=rendering] .cancel").await?, "no Cancel while rendering");
        // More cards than workers: the rest wait, and say so.
        if cards > 4 {
            ensure!(t.exists(".scene-card[data-state=queued]").await?, "no card queued with {cards} cards, 4 workers");
        }
        t.screenshot("rendering_shows_progress_then_the_player-rendering").await;

        finish_all(t).await?;
        t.wait_for(
            "video metadata",
            "[...document.querySelectorAll('.scene-card video')].every(v => v.readyState >= 1 && !v.error)",
        )
        .await?;
        let videos: usize = t.js("document.querySelectorAll('.scene-card video[controls]').length").await?;
        ensure!(videos == cards, "{videos} players for {cards} cards");
        let used: Vec<String> =
            t.js("[...document.querySelectorAll('.scene-card .flavor-used')].map(b => b.textContent)").await?;
        ensure!(used.len() == cards && used.iter().all(|u| u == "default"), "per-video flavor badges: {used:?}");
        ensure!(!t.exists(".scene-card .cancel").await?, "Cancel left on a finished card");
        Ok(())
    });
}

#[test]
fn cancel_on_a_slow_render_ends_canceled() {
    let options = Options { fake_replicate: true, ..Options::default() };
    e2e("cancel_on_a_slow_render_ends_canceled", options, async |t| {
        let cards = ready_to_render(t).await?;
        hold_renders(t, cards)?;
        t.click("#generate-videos").await?;
        t.wait_for("a rendering card", "!!document.querySelector('.scene-card[data-state=rendering] .cancel')").await?;
        let index: String = t.js("document.querySelector('.scene-card[data-state=rendering]').dataset.index").await?;
        let card = format!(".scene-card[data-index='{index}']");
        let id = kept_job_ids(t).await?[index.parse::<usize>()?].clone().context("no job id kept")?;
        t.click(&format!("{card} .cancel")).await?;
        t.wait_for("the card canceled", &format!("document.querySelector(\"{card}\").dataset.state === 'canceled'"))
            .await?;
        let server = job(t, &id).await?;
        ensure!(server["status"] == "canceled", "the card says canceled, the job is {}", server["status"]);
        // A running job's cancel reaches the upstream too (the worker drops the run).
        if let Some(upstream) = server["upstream"]["id"].as_str() {
            let deadline = Instant::now() + WAIT_TIMEOUT;
            while !fake(t)?.cancelled().iter().any(|c| c == upstream) {
                ensure!(Instant::now() < deadline, "the upstream prediction {upstream} was never canceled");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        ensure!(t.exists(&format!("{card} .retry")).await?, "a canceled card offers no way to render again");
        let others: usize = t.js("document.querySelectorAll('.scene-card:not([data-state=canceled])').length").await?;
        ensure!(others == cards - 1, "Cancel touched other cards ({others} of {cards} not canceled)");
        Ok(())
    });
}

#[test]
fn job_submissions_send_an_idempotency_key_and_a_retry_after_a_lost_answer_makes_no_second_job() {
    let name = "job_submissions_send_an_idempotency_key_and_a_retry_after_a_lost_answer_makes_no_second_job";
    e2e(name, Options::default(), async |t| {
        let cards = ready_to_render(t).await?;
        // Every submission reaches the server, which queues its job, but the answer never arrives.
        let lost = t.intercept("*/api/mv/jobs", Reply::LoseAnswer).await?;
        t.click("#generate-videos").await?;
        t.wait_for(
            "every card failed",
            "[...document.querySelectorAll('.scene-card')].every(c => c.dataset.state === 'failed')",
        )
        .await?;
        let keys: Vec<String> = lost
            .requests()
            .iter()
            .filter_map(|headers| headers.as_object())
            .filter_map(|headers| headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("idempotency-key")))
            .filter_map(|(_, key)| key.as_str().map(str::to_owned))
            .collect();
        ensure!(keys.len() == cards, "{} submissions carried an Idempotency-Key: {:?}", keys.len(), lost.requests());
        let distinct: std::collections::HashSet<&String> = keys.iter().collect();
        ensure!(distinct.len() == cards && keys.iter().all(|k| k.len() == 36), "one UUID per submission: {keys:?}");
        let jobs = |listing: Value| -> Vec<String> {
            listing["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|j| j["id"].as_str().map(str::to_owned))
                .collect()
        };
        let made = jobs(t.api_get("/api/mv/jobs?kind=video&limit=100").await?);
        ensure!(made.len() == cards, "each lost submission still made its job: {made:?}");
        lost.stop(t).await?;

        t.click(".scene-card .retry").await?;
        t.wait_for("the retried card done", "document.querySelector('.scene-card').dataset.state === 'done'").await?;
        let after = jobs(t.api_get("/api/mv/jobs?kind=video&limit=100").await?);
        ensure!(after.len() == cards, "the retry made a second job: {} jobs for {cards} cards", after.len());
        let kept = kept_job_ids(t).await?[0].clone().context("no job id kept")?;
        ensure!(made.contains(&kept), "the retried card follows {kept}, not the job its lost submission made");
        Ok(())
    });
}

#[test]
fn failed_job_shows_the_servers_message_and_retry_renders_it() {
    let options = Options { fake_replicate: true, ..Options::default() };
    e2e("failed_job_shows_the_servers_message_and_retry_renders_it", options, async |t| {
        ready_to_render(t).await?;
        // The first video asked for fails upstream; the rest render at once.
        fake(t)?
            .push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Fail("GPU fell over".into()) });
        t.click("#generate-videos").await?;
        t.wait_for(
            "every card done or failed",
            "[...document.querySelectorAll('.scene-card')].every(c => ['done','failed'].includes(c.dataset.state))",
        )
        .await?;
        let failed: Vec<String> =
            t.js("[...document.querySelectorAll('.scene-card[data-state=failed]')].map(c => c.dataset.index)").await?;
        ensure!(failed.len() == 1, "failed cards: {failed:?}");
        let card = format!(".scene-card[data-index='{}']", failed[0]);
        let id = kept_job_ids(t).await?[failed[0].parse::<usize>()?].clone().context("no job id kept")?;
        let server = job(t, &id).await?;
        let message = server["error"]["message"].as_str().context("the failed job has no error message")?.to_owned();
        ensure!(message.contains("GPU fell over"), "the job's message {message:?} lost the upstream's reason");
        let shown = t.text(&format!("{card} .scene-error")).await?;
        ensure!(shown == format!("Failed: {message}"), "card shows {shown:?}, the server said {message:?}");

        t.click(&format!("{card} .retry")).await?;
        t.wait_for("the retried card done", ALL_DONE).await?;
        let retried = kept_job_ids(t).await?[failed[0].parse::<usize>()?].clone().context("no job id kept")?;
        ensure!(retried != id, "Retry did not submit a new job");
        ensure!(job(t, &retried).await?["status"] == "succeeded", "the retried job did not succeed");
        Ok(())
    });
}

#[test]
fn reload_mid_render_resumes_every_card_and_it_finishes() {
    let options = Options { fake_replicate: true, ..Options::default() };
    e2e("reload_mid_render_resumes_every_card_and_it_finishes", options, async |t| {
        let cards = ready_to_render(t).await?;
        hold_renders(t, cards)?;
        t.click("#generate-videos").await?;
        t.wait_for("a rendering card", "!!document.querySelector('.scene-card[data-state=rendering]')").await?;
        t.wait_for(
            "every card submitted",
            "Object.keys(JSON.parse(localStorage.getItem('mvgen.session')).jobs).length === \
             document.querySelectorAll('.scene-card').length",
        )
        .await?;
        let before = kept_job_ids(t).await?;
        let descriptions: Vec<String> =
            t.js("[...document.querySelectorAll('.scene-description')].map(p => p.textContent)").await?;

        t.open("/").await?;
        t.wait_for("cards redrawn", &format!("document.querySelectorAll('.scene-card').length === {cards}")).await?;
        t.wait_for("a card resumed rendering", "!!document.querySelector('.scene-card[data-state=rendering]')").await?;
        let after: Vec<String> =
            t.js("[...document.querySelectorAll('.scene-description')].map(p => p.textContent)").await?;
        ensure!(after == descriptions, "scenes after the reload differ");
        ensure!(kept_job_ids(t).await? == before, "the reload submitted new jobs");
        ensure!(
            t.js::<bool>("document.querySelector('#generate-videos').disabled").await?,
            "render-all open mid-render"
        );
        finish_all(t).await?;
        ensure!(kept_job_ids(t).await? == before, "finishing submitted new jobs");
        let videos: usize = t.js("document.querySelectorAll('.scene-card video').length").await?;
        ensure!(videos == cards, "{videos} players for {cards} cards after the reload");

        // A new run starts afresh: the kept jobs are forgotten.
        t.fill("#video-description", "A kite festival on a windy beach").await?;
        t.fill("#character-description", "A boy with a green kite").await?;
        t.click("#generate-scenes").await?;
        t.wait_for(
            "cards idle",
            "[...document.querySelectorAll('.scene-card')].every(c => c.dataset.state === 'idle')",
        )
        .await?;
        ensure!(kept_job_ids(t).await?.iter().all(Option::is_none), "jobs kept across a new scenes run");
        Ok(())
    });
}

#[test]
fn job_stream_sends_the_api_key() {
    let options = Options { api_key: Some("e2e-secret"), ..Options::default() };
    e2e("job_stream_sends_the_api_key", options, async |t| {
        t.open("/").await?;
        t.wait_for("the key form", "!document.querySelector('#api-key-form').hidden").await?;
        t.fill("#api-key", "e2e-secret").await?;
        t.page.find_element("#api-key").await?.press_key("Enter").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        let cards = ready_to_render(t).await?;
        t.click("#generate-videos").await?;
        t.wait_for("every card done", ALL_DONE).await?;
        ensure!(!t.visible("#api-key-form").await?, "the key was asked for again while rendering");
        let streams: usize = t
            .js("performance.getEntriesByType('resource').filter(e => /\\/api\\/mv\\/jobs\\/[^/]+\\/events$/.test(e.name)).length")
            .await?;
        ensure!(streams >= 1, "no job event stream was read ({cards} cards)");
        Ok(())
    });
}

#[test]
fn cards_keep_up_while_the_event_streams_fail_and_reconnect() {
    let options = Options { fake_replicate: true, ..Options::default() };
    e2e("cards_keep_up_while_the_event_streams_fail_and_reconnect", options, async |t| {
        let cards = ready_to_render(t).await?;
        hold_renders(t, cards)?;
        // Every event stream fails at the network level: the cards still follow their jobs (a read
        // of the job after each failed stream) and keep trying the stream with a bounded backoff.
        let down = t.intercept("*/events", Reply::Fail).await?;
        t.click("#generate-videos").await?;
        t.wait_for("a rendering card without streams", "!!document.querySelector('.scene-card[data-state=rendering]')")
            .await?;
        down.stop(t).await?;
        finish_all(t).await?;
        let videos: usize = t.js("document.querySelectorAll('.scene-card video').length").await?;
        ensure!(videos == cards, "{videos} players for {cards} cards after the streams came back");
        Ok(())
    });
}

/// The song `path` (from the crate's root) put in a file input the way a person's pick would be (a
/// File in a DataTransfer).
async fn choose_song(t: &Tab, selector: &str, path: &str) -> Result<()> {
    use base64::Engine as _;
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let script = format!(
        "(() => {{ const bytes = Uint8Array.from(atob('{encoded}'), c => c.charCodeAt(0)); \
         const data = new DataTransfer(); data.items.add(new File([bytes], 'song.mp3', {{ type: 'audio/mpeg' }})); \
         const input = document.querySelector('{selector}'); input.files = data.files; \
         input.dispatchEvent(new Event('change')); return input.files.length; }})()"
    );
    ensure!(t.js::<u32>(&script).await? == 1, "the song was not chosen");
    Ok(())
}

/// One button makes the whole music video: the cards fill in as the server renders, the final cut
/// plays, a reload picks the project up, and a scene's prompt edited and rendered again gets a new
/// clip and a new cut.
#[test]
fn one_button_makes_the_music_video_and_a_reload_resumes_it() {
    e2e("one_button_makes_the_music_video_and_a_reload_resumes_it", Options::default(), async |t| {
        t.open("/").await?;
        t.wait_for("flavors loaded", "!document.querySelector('#config-flavor').disabled").await?;
        t.fill("#video-description", "A fox dances through a neon city at night").await?;
        t.fill("#character-description", "A red fox in a silver jacket").await?;
        t.click("#make-video").await?;
        t.wait_for("the missing song said", "!document.querySelector('#project-error').hidden").await?;
        // A 14.8 s song with a beat (tests/media/beats): it decides the scenes and their cuts.
        choose_song(t, "#project-song", "tests/media/beats/02_bwv12_7_120.mp3").await?;
        t.click("#make-video").await?;
        t.wait_for("the final cut's player", "document.querySelector('#project-final-video')?.readyState >= 1").await?;
        let cards: usize = t.js("document.querySelectorAll('#project-scenes .project-scene').length").await?;
        ensure!((2..6).contains(&cards), "{cards} scene cards for a 14.8 s song of 8 s clips at most");
        let videos: usize = t.js("document.querySelectorAll('#project-scenes video').length").await?;
        ensure!(videos == cards, "{videos} clips for {cards} scenes");
        ensure!(t.text("#project-flavor").await? == "default", "the pinned flavor is shown");
        // The song's beats on the timeline under the cards: one band and one cut per scene.
        t.wait_for("the beat timeline", "!document.querySelector('#project-timeline').hidden").await?;
        let cuts: usize = t.js("Number(document.querySelector('#project-timeline').dataset.cuts)").await?;
        let beats: usize = t
            .js("document.querySelectorAll('#project-timeline line.beat, #project-timeline line.downbeat').length")
            .await?;
        ensure!(cuts == cards && beats > 10, "{cuts} cuts and {beats} beats drawn for {cards} scenes");
        let said: String = t.text("#project-scenes .project-scene:first-child .project-cut").await?;
        ensure!(said.contains("cut at"), "a card says where its cut falls: {said:?}");
        let duration: f64 = t.js("document.querySelector('#project-final-video').duration").await?;
        ensure!((duration - 14.76).abs() < 0.2, "the cut lasts {duration} s, as the song");
        let href: String = t.js("document.querySelector('#project-final-download').href").await?;
        ensure!(href.contains("/api/mv/get_video/"), "download link {href:?}");

        t.open("/").await?;
        t.wait_for(
            "the project again after a reload",
            "document.querySelector('#project-final-video')?.readyState >= 1",
        )
        .await?;
        let first = "#project-scenes .project-scene:first-child";
        let before: String = t.js(&format!("document.querySelector('{first} .project-clip').dataset.url")).await?;
        let cut: String = t.js("document.querySelector('#project-final').dataset.url").await?;
        t.js::<bool>(&format!(
            "(e => {{ e.value = ''; return true; }})(document.querySelector('{first} .project-prompt'))"
        ))
        .await?;
        t.fill(&format!("{first} .project-prompt"), "The fox takes a bow under the rain").await?;
        t.click(&format!("{first} .project-regenerate")).await?;
        t.wait_for(
            "a new clip for the first scene",
            &format!("(u => u && u !== '{before}')(document.querySelector('{first} .project-clip').dataset.url)"),
        )
        .await?;
        // The video is cut again with the new clip.
        t.wait_for(
            "a new final cut",
            &format!(
                "(s => s.dataset.url !== '{cut}' && document.querySelector('#project-final-video')?.readyState >= 1)\
                 (document.querySelector('#project-final'))"
            ),
        )
        .await?;
        let id: String = t.js("localStorage.getItem('mvgen.project')").await?;
        let project = t.api_get(&format!("/api/mv/projects/{id}")).await?;
        let prompt = project["scenes"][0]["prompt"].as_str().unwrap_or("");
        ensure!(prompt == "The fox takes a bow under the rain", "the edited prompt was saved: {prompt:?}");
        t.page_errors().await
    });
}
