//! Projects in the real binary, driven as the Python service's project UI drives them
//! (`../shared/reference/original-projects.md` §5): create with the song, write the scenes, render
//! every scene, compose, download `finalOutputUrl` and check it with ffprobe; then the edits
//! (reorder, texts, trim, delete), the ETag rules, listing and deleting a project.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::server_process::ServerProcess;

const SONGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/media/songs");

pub(crate) struct Ui {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
}

impl Ui {
    pub(crate) fn new(server: &ServerProcess) -> Ui {
        Ui { client: crate::support::http_client(), base: server.base.clone() }
    }

    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = request.send().await.expect("request");
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    /// Their `apiFetch`: JSON, with `Content-Type: application/json` always.
    pub(crate) async fn json(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let request = self.client.request(method, format!("{}{path}", self.base)).json(body);
        let (status, _, body) = self.send(request).await;
        (status, body)
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.json(reqwest::Method::POST, path, body).await
    }

    pub(crate) async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.json(reqwest::Method::PATCH, path, body).await
    }

    /// Their `createProject`: a multipart form with the song as the `audio` part.
    pub(crate) async fn create(&self, fields: &[(&str, &str)], song: Option<&[u8]>) -> (u16, Value) {
        let boundary = "mvgen-project-boundary-51c2";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        if let Some(song) = song {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"song.mp3\"\r\n\
                     Content-Type: audio/mpeg\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(song);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let request = self
            .client
            .post(format!("{}/api/mv/projects", self.base))
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body);
        let (status, _, body) = self.send(request).await;
        (status, body)
    }

    pub(crate) async fn project(&self, id: &str) -> Value {
        let (status, headers, body) = self.get(&format!("/api/mv/projects/{id}")).await;
        assert_eq!(status, 200, "{body}");
        let etag = headers.get("etag").and_then(|v| v.to_str().ok()).expect("an ETag");
        assert_eq!(etag, format!("\"{}\"", body["version"]), "the ETag is the version");
        body
    }
}

fn song() -> Vec<u8> {
    std::fs::read(Path::new(SONGS).join("song.mp3")).expect("fixture")
}

/// Whether ffprobe runs; without it the file checks are skipped, under CI=true failed.
pub(crate) fn ffprobe() -> bool {
    let found = Command::new("ffprobe").arg("-version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI installs ffmpeg to check the final cut");
        eprintln!("final video checks skipped: ffprobe not installed");
    }
    found
}

/// ffprobe's `codec_type,codec_name` of each stream.
fn streams(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// Creates a music-video project as their create page does, and writes its scenes as their edit
/// page does; its id.
async fn project_with_scenes(ui: &Ui) -> String {
    let (status, _, configs) = ui.get("/api/mv/get_director_configs").await;
    assert_eq!(status, 200);
    assert!(configs["configs"].as_array().expect("configs").iter().any(|c| c == "default"), "{configs}");
    let (status, reference) = ui
        .post("/api/mv/generate_character_reference", &json!({"character_description": "a fox", "num_images": 1}))
        .await;
    assert_eq!(status, 200, "{reference}");
    let image = reference["images"][0]["id"].as_str().expect("an image id").to_owned();
    let fields = [
        ("mode", "music-video"),
        ("prompt", "A fox dances through a neon city at night"),
        ("characterDescription", "a red fox in a silver jacket"),
        ("characterReferenceImageId", image.as_str()),
        ("directorConfig", "default"),
    ];
    let (status, created) = ui.create(&fields, Some(&song())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["message"], "Project created successfully");
    let id = created["projectId"].as_str().expect("projectId").to_owned();

    let project = ui.project(&id).await;
    assert_eq!(project["projectId"], id.as_str());
    assert_eq!(project["scenes"], json!([]));
    assert_eq!(project["configFlavor"]["name"], "default");
    assert!(project["audioBackingTrackUrl"].as_str().expect("song url").starts_with("/api/mv/get_audio/"));
    assert_eq!(project["characterImageUrl"], format!("/api/mv/get_character_reference/{image}").as_str());

    let body = json!({"idea": project["conceptPrompt"], "character_description": project["characterDescription"],
        "config_flavor": "default", "project_id": id});
    let (status, scenes) = ui.post("/api/mv/create_scenes", &body).await;
    assert_eq!(status, 200, "{scenes}");
    id
}

/// Their `startFullGeneration`: processing, a character reference, every scene rendered in
/// parallel by `generate_video` with the project and sequence, then completed.
async fn render_every_scene(ui: &Ui, id: &str) -> Value {
    let project = ui.project(id).await;
    let (status, patched) = ui.patch(&format!("/api/mv/projects/{id}"), &json!({"status": "processing"})).await;
    assert_eq!((status, &patched["projectId"]), (200, &json!(id)), "{patched}");
    let (status, _) = ui
        .post("/api/mv/generate_character_reference", &json!({"character_description": "a fox", "num_images": 1}))
        .await;
    assert_eq!(status, 200);
    // Ignored, as theirs did (their UI sends it).
    let (status, _) = ui.patch(&format!("/api/mv/projects/{id}"), &json!({"characterReferenceImageId": "x"})).await;
    assert_eq!(status, 200);
    let renders = project["scenes"].as_array().expect("scenes").iter().map(|scene| {
        let body = json!({"prompt": scene["prompt"], "negative_prompt": scene["negativePrompt"],
            "project_id": id, "sequence": scene["sequence"]});
        async move { ui.post("/api/mv/generate_video", &body).await }
    });
    for (status, answer) in futures_util::future::join_all(renders).await {
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["metadata"]["config_flavor"]["used"], "default", "{answer}");
    }
    let project = ui.project(id).await;
    for scene in project["scenes"].as_array().expect("scenes") {
        assert_eq!(scene["status"], "completed", "{scene}");
        assert!(scene["originalVideoClipUrl"].as_str().expect("clip").starts_with("/api/mv/get_video/"));
        assert_eq!(scene["trimPoints"]["in"], 0.0);
        assert!(scene["duration"].as_f64().expect("duration") > 0.5, "{scene}");
    }
    assert_eq!(project["completedScenes"], project["sceneCount"]);
    assert_eq!(project["failedScenes"], 0);
    let (status, _) = ui.patch(&format!("/api/mv/projects/{id}"), &json!({"status": "completed"})).await;
    assert_eq!(status, 200);
    project
}

/// Export: compose, then poll every project read until `finalOutputUrl`.
async fn export(ui: &Ui, id: &str) -> Value {
    let (status, composing) = ui.post(&format!("/api/mv/projects/{id}/compose"), &json!({})).await;
    assert_eq!(status, 200, "{composing}");
    assert_eq!(composing["status"], "composing");
    assert!(composing["jobId"].is_string());
    let started = Instant::now();
    loop {
        let project = ui.project(id).await;
        if project["finalOutputUrl"].is_string() {
            assert_eq!(project["status"], "completed");
            return project;
        }
        assert_ne!(project["status"], "failed", "{project}");
        assert!(started.elapsed() < Duration::from_secs(60), "no final video: {project}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_ui_makes_a_music_video_from_create_to_the_downloaded_final_cut() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    replay_their_ui(&Ui::new(&server)).await;
}

/// The same replay with the real Gemini and Replicate clients against fake upstreams on
/// 127.0.0.1: every scene a real create, poll and download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_ui_makes_a_music_video_through_fake_gemini_and_replicate() {
    let fakes = crate::durable_jobs::Fakes::start().await;
    let server = crate::durable_jobs::start(&fakes.env(&[]));
    replay_their_ui(&Ui::new(&server)).await;
    // The Gemini fake writes the default flavor's count of scenes.
    let scenes = mvgen::flavor::lookup("default").expect("default flavor").parameters.number_of_scenes.value;
    assert_eq!(fakes.replicate.creates_for("google/veo-3.1-fast"), scenes as usize, "one render per scene");
    assert!(!fakes.gemini.received().is_empty(), "the scenes came from the Gemini fake");
}

/// Their UI's request sequence (§5 of the reference) from create to the downloaded final cut,
/// checked with ffprobe.
async fn replay_their_ui(ui: &Ui) {
    let id = project_with_scenes(ui).await;
    let project = ui.project(&id).await;
    let scenes = project["scenes"].as_array().expect("scenes");
    assert!(!scenes.is_empty(), "{project}");
    assert_eq!(project["status"], "pending");
    for (i, scene) in scenes.iter().enumerate() {
        assert_eq!(scene["sequence"], i + 1);
        assert_eq!(scene["displaySequence"], i + 1);
        assert_eq!(scene["status"], "pending");
        assert!(scene["prompt"].as_str().is_some_and(|p| !p.is_empty()), "{scene}");
    }

    let project = render_every_scene(ui, &id).await;
    let scene_seconds: f64 =
        project["scenes"].as_array().expect("scenes").iter().map(|s| s["duration"].as_f64().unwrap_or(0.0)).sum();
    let project = export(ui, &id).await;
    let url = project["finalOutputUrl"].as_str().expect("finalOutputUrl");
    let (status, _, final_video) = ui.get(&format!("/api/mv/projects/{id}/final-video")).await;
    assert_eq!((status, final_video["videoUrl"].as_str()), (200, Some(url)));

    let resp = ui.client.get(format!("{}{url}", ui.base)).send().await.expect("download");
    assert_eq!(resp.status(), 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("final.mp4");
    std::fs::write(&path, resp.bytes().await.expect("bytes")).expect("write");
    if ffprobe() {
        let found = streams(&path);
        assert!(found.iter().any(|s| s.starts_with("h264,video")), "{found:?}");
        // The song (MP3) replaces the clips' own AAC audio.
        assert!(found.iter().any(|s| s == "mp3,audio"), "{found:?}");
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe");
        let seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("a duration");
        assert!((seconds - scene_seconds).abs() < 0.2, "the cut is {seconds} s, the scenes {scene_seconds} s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenes_are_edited_reordered_trimmed_and_deleted_and_the_cut_follows_the_order() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let ui = Ui::new(&server);
    let id = project_with_scenes(&ui).await;
    let project = render_every_scene(&ui, &id).await;
    let scenes = project["scenes"].as_array().expect("scenes").clone();
    assert!(scenes.len() >= 3, "the flavor asks for several scenes: {project}");
    let n = scenes.len();
    let path = format!("/api/mv/projects/{id}");

    // Reorder: the last scene first. The values are displaySequences; sequences never change.
    let mut order: Vec<Value> = (1..=n).map(Value::from).collect();
    order.rotate_right(1);
    let (status, reordered) = ui.patch(&format!("{path}/scenes/reorder"), &json!({"sceneOrder": order})).await;
    assert_eq!(status, 200, "{reordered}");
    assert_eq!(reordered["scenes"][0]["sequence"], n);
    assert_eq!(reordered["scenes"][0]["displaySequence"], 1);
    let (status, mismatch) = ui.patch(&format!("{path}/scenes/reorder"), &json!({"sceneOrder": [1]})).await;
    assert_eq!(status, 400, "{mismatch}");
    assert_eq!(mismatch["detail"]["message"], "Scene order mismatch");

    // Texts only.
    let (status, scene) = ui.patch(&format!("{path}/scenes/2"), &json!({"prompt": "  a new prompt  "})).await;
    assert_eq!(status, 200, "{scene}");
    assert_eq!((scene["prompt"].as_str(), scene["status"].as_str()), (Some("a new prompt"), Some("completed")));

    // Trim scene 1 to its first half second (clamped to 0.1 s at least, whole ms).
    let (status, trimmed) =
        ui.post(&format!("{path}/scenes/1/trim"), &json!({"trimPoints": {"in": 0.2, "out": 0.25}})).await;
    assert_eq!(status, 200, "{trimmed}");
    assert_eq!(trimmed["trimPoints"], json!({"in": 0.2, "out": 0.3}));
    assert_eq!(trimmed["duration"], 0.1);
    let (status, bad) = ui.post(&format!("{path}/scenes/1/trim"), &json!({"trimPoints": {"in": 2, "out": 1}})).await;
    assert_eq!(status, 422, "{bad}");

    // ETags: a change with a stale If-Match is refused, with the current one made.
    let (_, headers, before) = ui.get(&path).await;
    let etag = headers.get("etag").and_then(|v| v.to_str().ok()).expect("etag").to_owned();
    let stale = format!("\"{}\"", before["version"].as_i64().expect("version") - 1);
    let send = |tag: String| {
        ui.client.patch(format!("{}{path}/scenes/3", ui.base)).header("if-match", tag).json(&json!({"prompt": "third"}))
    };
    let (status, _, refused) = ui.send(send(stale)).await;
    assert_eq!(status, 412, "{refused}");
    let (status, _, _) = ui.send(send(etag)).await;
    assert_eq!(status, 200);

    // Delete scene 2: displaySequences renumbered 1..n-1.
    let before = ui.project(&id).await;
    let scene_2 = before["scenes"].as_array().expect("scenes").iter().find(|s| s["sequence"] == 2).expect("scene 2");
    let dropped = scene_2["videoId"].as_str().expect("scene 2's clip").to_owned();
    let (status, deleted) = ui.json(reqwest::Method::DELETE, &format!("{path}/scenes/2"), &json!({})).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["remainingSceneCount"], n - 1);
    let project = ui.project(&id).await;
    let displays: Vec<i64> = project["scenes"]
        .as_array()
        .expect("scenes")
        .iter()
        .map(|s| s["displaySequence"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(displays, (1..n as i64).collect::<Vec<_>>());
    assert_eq!(project["sceneCount"], n - 1);

    // The cut takes the clips in displaySequence order with their trims.
    let project = export(&ui, &id).await;
    let video = project["finalVideoId"].as_str().expect("final video id");
    let (status, _, info) = ui.get(&format!("/api/mv/get_video/{video}/info")).await;
    assert_eq!(status, 200, "{info}");
    let cut_from: Vec<&str> =
        info["cut_from"].as_array().expect("cut_from").iter().filter_map(|c| c["video_id"].as_str()).collect();
    let in_order: Vec<&str> =
        project["scenes"].as_array().expect("scenes").iter().filter_map(|s| s["videoId"].as_str()).collect();
    assert_eq!(cut_from, in_order);

    // Composed again after an edit, the old cut is not the answer while the new one is made: their
    // export waits for `finalOutputUrl` and would have downloaded the old cut at once.
    let (status, _) = ui.post(&format!("{path}/scenes/1/trim"), &json!({"trimPoints": {"in": 0.0, "out": 0.3}})).await;
    assert_eq!(status, 200);
    let recut = export(&ui, &id).await;
    assert_ne!(recut["finalVideoId"], project["finalVideoId"], "{recut}");
    let video = recut["finalVideoId"].as_str().expect("final video id");

    // Listed, then deleted with its files.
    let (status, _, listed) = ui.get("/api/mv/projects?status=completed").await;
    assert_eq!(status, 200);
    assert!(listed["projects"].as_array().expect("list").iter().any(|p| p["projectId"] == id.as_str()), "{listed}");
    let (status, removed) = ui.json(reqwest::Method::DELETE, &path, &json!({})).await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(ui.get(&path).await.0, 404);
    // Every take it made goes with it: the cut, the cut it replaced, the deleted scene's clip.
    let first_cut = project["finalVideoId"].as_str().expect("the first cut");
    for gone in [video, first_cut, dropped.as_str()] {
        assert_eq!(ui.get(&format!("/api/mv/get_video/{gone}")).await.0, 404, "{gone}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_project_requests_get_their_4xx_and_store_nothing() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let ui = Ui::new(&server);
    let (status, body) = ui.create(&[("mode", "music-video"), ("prompt", "a song and a fox")], None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"]["message"].as_str().unwrap_or("").contains("Audio file required for music-video mode"));
    let (status, body) = ui.create(&[("mode", "opera"), ("prompt", "a song and a fox")], Some(&song())).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = ui
        .create(&[("mode", "music-video"), ("prompt", "x"), ("characterReferenceImageId", "nope")], Some(&song()))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        ui.create(&[("mode", "music-video"), ("prompt", "x"), ("config_flavor", "no-such")], Some(&song())).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["detail"]["error"], "UnknownFlavor");
    let message = body["detail"]["message"].as_str().unwrap_or("");
    assert!(message.contains("no-such") && !message.contains("using"), "no fallback is claimed: {message}");
    // PostgreSQL cannot store a NUL in text: refused on both engines, never a 503.
    let (status, body) = ui.create(&[("mode", "music-video"), ("prompt", "a fox\0")], Some(&song())).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = ui.create(&[("mode", "music-video"), ("prompt", "x")], Some(b"not a song at all")).await;
    assert_eq!(status, 415, "{body}");
    // Every refusal above left no song behind.
    let audio = server.output_dir().join("audio");
    let left: Vec<_> =
        std::fs::read_dir(&audio).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "songs left: {left:?}");

    let (status, _, body) = ui.get("/api/mv/projects/not-a-uuid").await;
    assert_eq!(status, 400, "{body}");
    let missing = uuid::Uuid::new_v4();
    let (status, _, body) = ui.get(&format!("/api/mv/projects/{missing}")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["detail"]["message"], format!("Project {missing} not found").as_str());
    let (status, body) = ui.post(&format!("/api/mv/projects/{missing}/compose"), &json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = ui
        .post("/api/mv/generate_video", &json!({"prompt": "p", "project_id": missing.to_string(), "sequence": 1}))
        .await;
    assert_eq!(status, 404, "{body}");
}

/// A project made across two replicas sharing one PostgreSQL and one store: each step on whichever
/// replica, as behind a balancer, and every read on either sees the same project.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_is_made_across_two_replicas_sharing_postgres() {
    let Some(pg) = support::postgres::Postgres::start("a_project_is_made_across_two_replicas_sharing_postgres") else {
        return;
    };
    let outputs = tempfile::tempdir().expect("temp dir");
    let outputs_dir = outputs.path().to_str().expect("utf-8 temp path");
    let env = [("MV_PROVIDER", "mock"), ("MVGEN_DATABASE_URL", pg.url.as_str()), ("MV_OUTPUT_DIR", outputs_dir)];
    let a = ServerProcess::start(&env).expect("start A");
    let b = ServerProcess::start(&env).expect("start B");
    let (ui_a, ui_b) = (Ui::new(&a), Ui::new(&b));
    let id = project_with_scenes(&ui_a).await;
    let project = ui_b.project(&id).await;
    let scenes = project["scenes"].as_array().expect("scenes").clone();
    assert!(!scenes.is_empty(), "B reads the scenes A wrote: {project}");
    for (i, scene) in scenes.iter().enumerate() {
        let ui = if i % 2 == 0 { &ui_a } else { &ui_b };
        let body = json!({"prompt": scene["prompt"], "project_id": id, "sequence": scene["sequence"]});
        let (status, answer) = ui.post("/api/mv/generate_video", &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let project = ui_a.project(&id).await;
    assert_eq!(project["completedScenes"], project["sceneCount"], "{project}");
    let (status, trimmed) =
        ui_b.post(&format!("/api/mv/projects/{id}/scenes/1/trim"), &json!({"trimPoints": {"in": 0, "out": 0.5}})).await;
    assert_eq!(status, 200, "{trimmed}");
    let (status, composing) = ui_b.post(&format!("/api/mv/projects/{id}/compose"), &json!({})).await;
    assert_eq!(status, 200, "{composing}");
    let done = export_seen_by(&ui_a, &id).await;
    assert_eq!(done["scenes"][0]["trimPoints"], json!({"in": 0.0, "out": 0.5}));
    let (status, _, listed) = ui_b.get("/api/mv/projects?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(listed["projects"][0]["projectId"], id.as_str(), "{listed}");
    assert_eq!(listed["projects"][0]["completedScenes"], done["sceneCount"]);

    // Made server-side on PostgreSQL too: a new project, both replicas' drives sharing it.
    let fields =
        [("mode", "music-video"), ("prompt", "a fox dances in the rain"), ("characterDescription", "a red fox")];
    let (status, created) = ui_a.create(&fields, Some(&song())).await;
    assert_eq!(status, 201, "{created}");
    let made = created["projectId"].as_str().expect("id").to_owned();
    let (status, started) = ui_b.post(&format!("/api/mv/projects/{made}/generate"), &json!({})).await;
    assert_eq!(status, 200, "{started}");
    let made = export_seen_by(&ui_a, &made).await;
    assert_eq!(made["status"], "completed", "{made}");
    assert!(made["scenes"].as_array().is_some_and(|s| s.iter().all(|s| s["videoId"].is_string())), "{made}");
}

/// Polls `ui`'s reads of project `id` until its final video is there.
async fn export_seen_by(ui: &Ui, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let project = ui.project(id).await;
        if project["finalOutputUrl"].is_string() {
            return project;
        }
        assert_ne!(project["status"], "failed", "{project}");
        assert!(started.elapsed() < Duration::from_secs(60), "no final video: {project}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The flavor is pinned: with live configs, a project made with `default` keeps writing its scenes
/// with default's content as it was after default is edited, and one made with `example` after
/// `example` is removed; a request naming another flavor gets the project's, with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_flavor_stays_pinned_across_a_live_edit_and_a_removal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let configs = tmp.path().join("configs");
    support::client::copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"), &configs);
    let dir = configs.to_str().expect("utf-8");
    let server = ServerProcess::start_with(&["--configs", dir], &[("MV_PROVIDER", "mock")]).expect("start");
    let ui = Ui::new(&server);
    let hash_of = |list: &Value, name: &str| {
        list["details"].as_array().and_then(|d| d.iter().find(|f| f["name"] == name)).map(|f| f["hash"].clone())
    };
    let (_, _, flavors) = ui.get("/api/mv/get_config_flavors").await;
    let (default_hash, example_hash) =
        (hash_of(&flavors, "default").expect("default"), hash_of(&flavors, "example").expect("example"));

    let ui = &ui;
    let create = |flavor: &'static str| async move {
        let fields = [("mode", "music-video"), ("prompt", "a fox in the rain"), ("config_flavor", flavor)];
        ui.create(&fields, Some(&song())).await
    };
    let (status, first) = create("default").await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["configFlavor"]["hash"], default_hash);
    let (status, second) = create("example").await;
    assert_eq!(status, 201, "{second}");

    // default now asks for 2 scenes; example is gone.
    let parameters = configs.join("default/parameters.yaml");
    let text = std::fs::read_to_string(&parameters).expect("read");
    std::fs::write(&parameters, text.replace("number_of_scenes: 6", "number_of_scenes: 2")).expect("edit");
    std::fs::remove_dir_all(configs.join("example")).expect("remove example");
    let started = Instant::now();
    loop {
        let (_, _, list) = ui.get("/api/mv/get_config_flavors").await;
        if hash_of(&list, "example").is_none() && hash_of(&list, "default").is_some_and(|h| h != default_hash) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the edit was not served: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for (project, hash, scenes) in [(&first, &default_hash, 6), (&second, &example_hash, 4)] {
        let id = project["projectId"].as_str().expect("id");
        let body = json!({"idea": "a fox in the rain", "character_description": "a fox", "config_flavor": "default",
            "project_id": id});
        let request = ui.client.post(format!("{}/api/mv/create_scenes", ui.base)).json(&body);
        let (status, headers, answer) = ui.send(request).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(headers.get("x-config-flavor-hash").and_then(|v| v.to_str().ok()), hash.as_str());
        assert_eq!(answer["scenes"].as_array().map(Vec::len), Some(scenes), "{answer}");
        let report = &answer["metadata"]["config_flavor"];
        assert_eq!(report["hash"], *hash);
        if project == &second {
            assert_eq!(report["used"], "example");
            assert!(report["warning"].as_str().is_some_and(|w| w.contains("pins flavor \"example\"")), "{report}");
        }
        assert_eq!(ui.project(id).await["sceneCount"], scenes);
    }
    // A new project gets the edited default.
    let (_, third) = create("default").await;
    assert_ne!(third["configFlavor"]["hash"], default_hash);
}

/// Reads `/api/mv/projects/{id}/events` until a `project` event with `finalOutputUrl` (or a failed
/// project) arrives; every event's data and id.
pub(crate) async fn follow_events(ui: &Ui, id: &str, last_event_id: Option<&str>) -> Vec<(i64, Value)> {
    let mut request = ui.client.get(format!("{}/api/mv/projects/{id}/events", ui.base));
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last);
    }
    let mut resp = request.send().await.expect("events");
    assert_eq!(resp.status(), 200);
    let (mut text, mut events) = (String::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline.into(), resp.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).map(str::to_owned);
            let (Some(event_id), Some(data)) = (field("id:"), field("data:")) else { continue };
            assert_eq!(field("event:").as_deref(), Some("project"));
            let project: Value = serde_json::from_str(&data).expect("json");
            events.push((event_id.parse().expect("numeric id"), project.clone()));
            if project["finalOutputUrl"].is_string() || project["status"] == "failed" {
                return events;
            }
        }
    }
    panic!("the stream ended without the final video: {:?}", events.last());
}

/// `POST …/generate`: the scenes, the character reference, every scene's clip and the final cut
/// made server-side as jobs, followed over the project's event stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_makes_the_whole_video_server_side_and_its_events_follow_it() {
    let server =
        ServerProcess::start(&[("MV_PROVIDER", "mock"), ("MVGEN_PROJECT_PARALLEL", "2")]).expect("start mvgen");
    let ui = Ui::new(&server);
    // Six scenes asked for: the 2.9 s song alone would make one (tests/e2e/beat_cuts.rs).
    let fields = [
        ("mode", "music-video"),
        ("prompt", "a fox dances in the rain"),
        ("characterDescription", "a red fox"),
        ("numberOfScenes", "6"),
    ];
    let (status, created) = ui.create(&fields, Some(&song())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["projectId"].as_str().expect("id").to_owned();
    let (status, started) = ui.post(&format!("/api/mv/projects/{id}/generate"), &json!({})).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["status"], "processing");
    let (status, again) = ui.post(&format!("/api/mv/projects/{id}/generate"), &json!({})).await;
    assert_eq!(status, 409, "{again}");

    let events = follow_events(&ui, &id, None).await;
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "event ids increase");
    let last = &events.last().expect("events").1;
    assert_eq!(last["status"], "completed", "{last}");
    assert!(last["characterImageUrl"].is_string(), "the character reference was made: {last}");
    let scenes = last["scenes"].as_array().expect("scenes");
    assert_eq!(scenes.len(), 6, "the scene count asked for");
    assert!(scenes.iter().all(|s| s["status"] == "completed" && s["videoId"].is_string()), "{last}");
    // Never more than two scenes rendering at once.
    for (_, project) in &events {
        let rendering =
            project["scenes"].as_array().map_or(0, |s| s.iter().filter(|s| s["status"] == "processing").count());
        assert!(rendering <= 2, "{rendering} at once: {project}");
    }
    // One job per scene, one for the scenes, one for the character, one cut.
    let (status, _, jobs) = ui.get(&format!("/api/mv/jobs?project_id={id}&limit=100")).await;
    assert_eq!(status, 200, "{jobs}");
    let kinds: Vec<&str> = jobs["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["kind"].as_str()).collect();
    let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(
        (count("scenes"), count("character_reference"), count("video"), count("final_cut")),
        (1, 1, 6, 1),
        "{kinds:?}"
    );
    // A reconnect after the last event has nothing new until the project changes.
    let (last_id, _) = events.last().expect("events");
    let resumed =
        ui.client.get(format!("{}/api/mv/projects/{id}/events", ui.base)).header("last-event-id", last_id.to_string());
    let resp = resumed.send().await.expect("events");
    let quiet = tokio::time::timeout(Duration::from_millis(1500), resp.bytes()).await;
    assert!(quiet.is_err(), "no event for an unchanged project");

    // Generate on a finished project renders nothing new and cuts again.
    let (status, again) = ui.post(&format!("/api/mv/projects/{id}/generate"), &json!({})).await;
    assert_eq!((status, &again["finalOutputUrl"]), (200, &Value::Null), "the old cut is not the answer: {again}");
    let recut = follow_events(&ui, &id, None).await;
    let recut = &recut.last().expect("events").1;
    assert_eq!(recut["status"], "completed", "{recut}");
    assert_ne!(recut["finalOutputUrl"], last["finalOutputUrl"]);
    let (_, _, jobs) = ui.get(&format!("/api/mv/jobs?project_id={id}&limit=100")).await;
    let videos = jobs["jobs"].as_array().expect("jobs").iter().filter(|j| j["kind"] == "video").count();
    assert_eq!(videos, 6, "no scene rendered twice");
}

/// Cancel stops a project being made: it ends failed, "canceled", and its jobs are canceled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_being_made_is_canceled() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock"), ("MVGEN_WORKERS", "0")]).expect("start mvgen");
    let ui = Ui::new(&server);
    let fields = [("mode", "music-video"), ("prompt", "a fox dances in the rain")];
    let (_, created) = ui.create(&fields, Some(&song())).await;
    let id = created["projectId"].as_str().expect("id").to_owned();
    // No workers here, so nothing advances: generate only records the wish.
    let (status, _) = ui.post(&format!("/api/mv/projects/{id}/generate"), &json!({})).await;
    assert_eq!(status, 200);
    let (status, canceled) = ui.post(&format!("/api/mv/projects/{id}/cancel"), &json!({})).await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!((canceled["status"].as_str(), canceled["errorMessage"].as_str()), (Some("failed"), Some("canceled")));
}

/// SIGKILL while a project is being made, mid-render, then a restart on the same database: it
/// finishes, with one upstream create per scene (the renders in flight resumed, never re-created),
/// one scene-writing call and one character image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_survives_sigkill_mid_render_with_one_create_per_scene() {
    use crate::durable_jobs::{Fakes, kill, start, wait_for};
    use support::fake_upstream::{FakeFile, Outcome, PredictionPlan};
    let fakes = Fakes::start().await;
    // The character image at once, then the first two videos held until finished by hand.
    fakes.replicate.push_prediction(PredictionPlan { polls_until_done: 0, outcome: Outcome::Succeed(FakeFile::png()) });
    for _ in 0..2 {
        fakes.replicate.push_prediction(PredictionPlan::held(Outcome::Succeed(FakeFile::mp4())));
    }
    let outputs = tempfile::tempdir().expect("temp dir");
    let dir = outputs.path().to_str().expect("utf-8");
    let env = fakes.env(&[("MV_OUTPUT_DIR", dir), ("MVGEN_PROJECT_PARALLEL", "2")]);
    let mut first = start(&env);
    let ui = Ui::new(&first);
    // Six scenes asked for (the short song alone would make one), so two render at once.
    let fields = [
        ("mode", "music-video"),
        ("prompt", "a fox dances in the rain"),
        ("characterDescription", "a red fox"),
        ("numberOfScenes", "6"),
    ];
    let (_, created) = ui.create(&fields, Some(&song())).await;
    let id = created["projectId"].as_str().expect("id").to_owned();
    let (status, _) = ui.post(&format!("/api/mv/projects/{id}/generate"), &json!({})).await;
    assert_eq!(status, 200);
    let veo = "google/veo-3.1-fast";
    wait_for("two renders in flight", || fakes.replicate.creates_for(veo) == 2).await;
    // Both renders' predictions saved with their jobs before the kill.
    let started = Instant::now();
    loop {
        let (_, _, jobs) = ui.get(&format!("/api/mv/jobs?project_id={id}&kind=video")).await;
        let saved = jobs["jobs"].as_array().map_or(0, |j| j.iter().filter(|j| j["upstream"]["id"].is_string()).count());
        if saved == 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "renders not saved: {jobs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill(&mut first);

    let second = start(&env);
    let ui = Ui::new(&second);
    wait_for("the held renders are polled again after the restart", || {
        fakes.replicate.polls_of("pred-2") > 0 && fakes.replicate.polls_of("pred-3") > 0
    })
    .await;
    let polled = (fakes.replicate.polls_of("pred-2"), fakes.replicate.polls_of("pred-3"));
    wait_for("polled by the new process", || {
        fakes.replicate.polls_of("pred-2") > polled.0 && fakes.replicate.polls_of("pred-3") > polled.1
    })
    .await;
    fakes.replicate.finish("pred-2");
    fakes.replicate.finish("pred-3");
    let events = follow_events(&ui, &id, None).await;
    let last = &events.last().expect("events").1;
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(fakes.replicate.creates_for(veo), 6, "one create per scene");
    assert_eq!(fakes.replicate.creates_for("google/imagen-4"), 1, "one character image");
}

/// A multipart body with one `file` part.
fn file_form(bytes: &[u8], content_type: &str) -> (String, Vec<u8>) {
    let boundary = "mvgen-file-boundary-0c9e";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Their image step's upload, and their edit dialogs: regenerate a scene (a new clip under a new
/// URL), add a scene (rendered in the background), upload a scene's clip; then the cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_edit_dialogs_regenerate_add_and_upload_scenes() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let ui = Ui::new(&server);
    let png = mvgen::providers::mock::mock_png("reference", Some(1), 16, 9).expect("png");
    let (content_type, form) = file_form(&png, "image/png");
    let upload =
        ui.client.post(format!("{}/api/mv/upload_character_reference", ui.base)).header("content-type", &content_type);
    let (status, _, image) = ui.send(upload.body(form)).await;
    assert_eq!(status, 200, "{image}");
    let image_id = image["image_id"].as_str().expect("image_id").to_owned();
    assert_eq!(image["content_type"], "image/png");
    assert_eq!(ui.get(&format!("/api/mv/get_character_reference/{image_id}")).await.0, 200);
    let (text_type, text_form) = file_form(b"hello", "text/plain");
    let upload =
        ui.client.post(format!("{}/api/mv/upload_character_reference", ui.base)).header("content-type", &text_type);
    let (status, _, refused) = ui.send(upload.body(text_form)).await;
    assert_eq!(status, 400, "{refused}");

    let id = project_with_scenes(&ui).await;
    let project = render_every_scene(&ui, &id).await;
    let path = format!("/api/mv/projects/{id}");
    let before = project["scenes"][0]["originalVideoClipUrl"].clone();

    // Regenerate scene 1: a new clip, a new URL.
    let (status, regenerated) =
        ui.post(&format!("/api/mv/generate_scene_video/{id}/1?backend=replicate"), &json!({})).await;
    assert_eq!(status, 200, "{regenerated}");
    assert_eq!(regenerated["metadata"]["scene_sequence"], 1);
    assert!(regenerated["videoUrl"].is_string() && regenerated["s3Key"].is_string(), "{regenerated}");
    let scene = &ui.project(&id).await["scenes"][0];
    assert_eq!(scene["originalVideoClipUrl"], regenerated["videoUrl"]);
    assert_ne!(scene["originalVideoClipUrl"], before);
    let (status, bad) = ui.post(&format!("/api/mv/generate_scene_video/{id}/1?backend=dalle"), &json!({})).await;
    assert_eq!(status, 400, "{bad}");

    // Add a scene: written now, rendered in the background.
    let n = project["scenes"].as_array().expect("scenes").len();
    let (status, added) =
        ui.post(&format!("{path}/scenes"), &json!({"sceneConcept": "the fox bows to the crowd"})).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(
        (added["scene"]["sequence"].as_u64(), added["scene"]["displaySequence"].as_u64()),
        (Some(n as u64 + 1), Some(n as u64 + 1))
    );
    let started = Instant::now();
    loop {
        let project = ui.project(&id).await;
        if project["scenes"][n]["status"] == "completed" {
            assert!(project["scenes"][n]["originalVideoClipUrl"].is_string());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the added scene was not rendered: {project}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, short) = ui.post(&format!("{path}/scenes"), &json!({"sceneConcept": "short"})).await;
    assert_eq!(status, 422, "{short}");

    // Upload scene 2's clip: the mock's own clip, so the cut can take it.
    let (video_type, video_form) = file_form(mvgen::providers::mock::MOCK_CLIP, "video/mp4");
    let upload = ui.client.post(format!("{}{path}/scenes/2/upload_video", ui.base)).header("content-type", &video_type);
    let (status, _, uploaded) = ui.send(upload.body(video_form)).await;
    assert_eq!(status, 200, "{uploaded}");
    assert_eq!(uploaded["status"], "completed");
    assert_eq!(uploaded["trimPoints"]["in"], 0.0);
    let (bad_type, bad_form) = file_form(b"not a video", "video/mp4");
    let upload = ui.client.post(format!("{}{path}/scenes/2/upload_video", ui.base)).header("content-type", &bad_type);
    let (status, _, refused) = ui.send(upload.body(bad_form)).await;
    assert!(status == 400 || status == 415, "{status} {refused}");
    assert_eq!(ui.project(&id).await["scenes"][1]["videoId"], uploaded["videoId"], "a refused upload changes nothing");

    let done = export(&ui, &id).await;
    assert_eq!(done["scenes"].as_array().map(Vec::len), Some(n + 1));
}
