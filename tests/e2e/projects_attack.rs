//! Projects attacked as a hostile or careless client would, through the real binary: a create
//! form cut short after its song, a song two projects share, and edits racing each other (two
//! scene deletes at once, scenes added at once). Each test failed before its fix.

use crate::support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::server_process::ServerProcess;

const SONG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/media/songs/song.mp3");

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(server: &ServerProcess) -> Client {
        Client { http: crate::support::http_client(), base: server.base.clone() }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = request.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.request(method, format!("{}{path}", self.base)).json(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn delete(&self, path: String) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    /// A song stored by `upload_audio`; its id.
    async fn upload_song(&self) -> String {
        let request = self
            .http
            .post(format!("{}/api/mv/upload_audio", self.base))
            .header("content-type", "audio/mpeg")
            .body(std::fs::read(SONG).expect("fixture"));
        let (status, song) = self.send(request).await;
        assert_eq!(status, 200, "{song}");
        song["audio_id"].as_str().expect("audio_id").to_owned()
    }

    /// A music-video project (JSON create, naming `song`) with `scenes` scenes written, status
    /// `completed` so its scenes may be deleted and added; its id.
    async fn project_with_scenes(&self, song: &str, scenes: u32) -> String {
        let body = json!({"mode": "music-video", "prompt": "A fox dances through a neon city", "audioId": song});
        let (status, created) = self.json(reqwest::Method::POST, "/api/mv/projects", &body).await;
        assert_eq!(status, 201, "{created}");
        let id = created["projectId"].as_str().expect("projectId").to_owned();
        let body = json!({"idea": "a fox in a city", "character_description": "a red fox",
            "number_of_scenes": scenes, "project_id": id});
        let (status, written) = self.json(reqwest::Method::POST, "/api/mv/create_scenes", &body).await;
        assert_eq!(status, 200, "{written}");
        let (status, patched) =
            self.json(reqwest::Method::PATCH, &format!("/api/mv/projects/{id}"), &json!({"status": "completed"})).await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["sceneCount"], scenes, "{patched}");
        id
    }
}

/// The files under `dir` (recursively), none when it does not exist.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { files_under(&e.path()) } else { vec![e.path()] }).collect()
}

/// Their create form (`mode`, the song as `audio`, then `prompt`); `cut_short`: the body ends in
/// the middle of the `prompt` part, with no closing boundary.
fn create_form(client: &Client, cut_short: bool) -> reqwest::RequestBuilder {
    create_form_with(client, b"A fox da", cut_short)
}

/// [`create_form`] with the `prompt` part's bytes (before `nces` when not cut short).
fn create_form_with(client: &Client, prompt: &[u8], cut_short: bool) -> reqwest::RequestBuilder {
    let boundary = "attack-boundary-7f3a";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"mode\"\r\n\r\nmusic-video\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"song.mp3\"\r\n\
             Content-Type: audio/mpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&std::fs::read(SONG).expect("fixture"));
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(prompt);
    if !cut_short {
        body.extend_from_slice(format!("nces\r\n--{boundary}--\r\n").as_bytes());
    }
    client
        .http
        .post(format!("{}/api/mv/projects", client.base))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
}

fn no_panic(server: &ServerProcess) {
    let log = server.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// A create form whose song part is whole but whose body is cut short after it (a later field
/// without its end) is a 400, and the song it carried is not left stored: before the fix the
/// refused project's song stayed in the store (and `get_audio` served it), unreferenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_form_cut_short_after_its_song_leaves_no_song_stored() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let request = create_form(&client, true);
    let (status, refused) = client.send(request).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["detail"]["error"], "InvalidBody", "{refused}");
    let (status, listed) = client.get("/api/mv/projects").await;
    assert_eq!((status, &listed["projects"]), (200, &json!([])), "no project was made: {listed}");
    let songs = files_under(&server.output_dir().join("audio"));
    assert!(songs.is_empty(), "the refused project's song is still stored: {songs:?}");
    let records = files_under(&server.output_dir().join("records").join("audio"));
    assert!(records.is_empty(), "the refused project's song is still findable: {records:?}");

    // The same form whole makes the project, with its song.
    let (status, created) = client.send(create_form(&client, false)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(files_under(&server.output_dir().join("audio")).len(), 1);
    no_panic(&server);
}

/// Two projects created (JSON, `audioId`) with one uploaded song: deleting one must not delete
/// the song the other still names. Before the fix the delete took the song, and the other
/// project's `audioBackingTrackUrl` answered 404 (its final cut made without music).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_project_keeps_the_song_another_project_names() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let song = client.upload_song().await;
    let body = json!({"mode": "music-video", "prompt": "A fox dances", "audioId": song});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, created) = client.json(reqwest::Method::POST, "/api/mv/projects", &body).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["projectId"].as_str().expect("projectId").to_owned());
    }
    let (status, deleted) = client.delete(format!("/api/mv/projects/{}", ids[0])).await;
    assert_eq!(status, 200, "{deleted}");
    let (status, other) = client.get(&format!("/api/mv/projects/{}", ids[1])).await;
    assert_eq!(status, 200, "{other}");
    let url = other["audioBackingTrackUrl"].as_str().expect("the other project's song").to_owned();
    let (status, info) = client.get(&format!("{url}/info")).await;
    assert_eq!(status, 200, "the song another project names was deleted with the first: {info}");
    let resp = client.http.get(format!("{}{url}", client.base)).send().await.expect("song");
    assert_eq!(resp.status(), 200);

    // The last project naming it takes it along.
    let (status, deleted) = client.delete(format!("/api/mv/projects/{}", ids[1])).await;
    assert_eq!((status, &deleted["deletedFiles"]), (200, &json!(1)), "{deleted}");
    let (status, _) = client.get(&format!("{url}/info")).await;
    assert_eq!(status, 404, "the song goes with the last project naming it");
    no_panic(&server);
}

/// Their rule "never delete the last scene" holds against two deletes sent at once (their UI in
/// two tabs, or a double click): before the fix both passed the check on the same read and the
/// project was left with no scene at all, both answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scene_deletes_at_once_never_remove_the_last_scene() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let song = client.upload_song().await;
    for round in 0..12 {
        let id = client.project_with_scenes(&song, 2).await;
        let deletes = [1, 2].map(|n| client.delete(format!("/api/mv/projects/{id}/scenes/{n}")));
        let answers = futures_util::future::join_all(deletes).await;
        let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400], "round {round}: one delete wins, the other is refused: {answers:?}");
        let (_, project) = client.get(&format!("/api/mv/projects/{id}")).await;
        assert_eq!(project["sceneCount"], 1, "round {round}: {project}");
        assert_eq!(project["scenes"][0]["displaySequence"], 1, "round {round}: {project}");
    }
    no_panic(&server);
}

/// Scenes added at once (`POST …/scenes`, each written by the scene writer first) all land, each
/// with its own sequence. Before the fix they took the same `max + 1`: the losers got a 503
/// `DatabaseUnavailable` (a UNIQUE violation, the database being fine) and their written scene
/// was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenes_added_at_once_all_land_with_their_own_sequences() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let song = client.upload_song().await;
    let id = client.project_with_scenes(&song, 2).await;
    let path = format!("/api/mv/projects/{id}/scenes");
    let body = json!({"sceneConcept": "the fox leaps over the moon"});
    let mut sequences = Vec::new();
    for round in 0..4 {
        let adds = (0..3).map(|_| client.json(reqwest::Method::POST, &path, &body));
        for (status, added) in futures_util::future::join_all(adds).await {
            assert_eq!(status, 201, "round {round}: {added}");
            sequences.push(added["scene"]["sequence"].as_i64().expect("sequence"));
        }
    }
    sequences.sort_unstable();
    assert_eq!(sequences, (3..=14).collect::<Vec<i64>>(), "each added scene has its own sequence");
    let (_, project) = client.get(&format!("/api/mv/projects/{id}")).await;
    assert_eq!(project["sceneCount"], 14, "{project}");
    let displays: Vec<i64> =
        project["scenes"].as_array().expect("scenes").iter().filter_map(|s| s["displaySequence"].as_i64()).collect();
    assert_eq!(displays, (1..=14).collect::<Vec<i64>>(), "{project}");
    no_panic(&server);
}

impl Client {
    /// Polls project `id` until `done` says so (at most 60 s); the project then.
    async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = std::time::Instant::now();
        loop {
            let (status, project) = self.get(&format!("/api/mv/projects/{id}")).await;
            assert_eq!(status, 200, "{project}");
            if done(&project) {
                return project;
            }
            let summary = json!({"status": project["status"], "errorMessage": project["errorMessage"],
                "finalJobId": project["finalJobId"], "sceneCount": project["sceneCount"]});
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "never {what}: {summary}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The project's `final_cut` jobs.
    async fn final_cuts(&self, id: &str) -> usize {
        let (status, listed) = self.get(&format!("/api/mv/jobs?project_id={id}&kind=final_cut&limit=100")).await;
        assert_eq!(status, 200, "{listed}");
        listed["jobs"].as_array().expect("jobs").len()
    }
}

/// A project with more scenes than a final cut takes (64): `generate` ends it `failed` saying so,
/// `compose` is a 400 saying so, and neither leaves it waiting for a cut that never comes. Before
/// the fix the compose recorded its job, then the cut's plan refused 65 clips (a 400 naming
/// `video_ids`, which the caller never sent): the project stayed `composing` for good, naming a
/// job that was never stored, and every compose, generate and scene delete after was a 409 (the
/// drive tried the refused cut again at every step).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_with_more_scenes_than_a_cut_takes_is_refused_without_being_wedged() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let song = client.upload_song().await;
    let id = client.project_with_scenes(&song, 32).await;
    let body = json!({"sceneConcept": "the fox leaps over the moon"});
    for _ in 0..33 {
        let (status, added) = client.json(reqwest::Method::POST, &format!("/api/mv/projects/{id}/scenes"), &body).await;
        assert_eq!(status, 201, "{added}");
    }
    let (status, generating) =
        client.json(reqwest::Method::POST, &format!("/api/mv/projects/{id}/generate"), &json!({})).await;
    assert_eq!(status, 200, "{generating}");
    let project = client.wait_for(&id, "ended", |p| p["status"] == "failed" || p["status"] == "completed").await;
    assert_eq!(project["completedScenes"], 65, "every clip was made: {project}");
    assert_eq!(project["status"], "failed", "{project}");
    let why = project["errorMessage"].as_str().expect("errorMessage");
    assert!(why.contains("65 scenes") && why.contains("at most 64"), "{why}");
    assert_eq!(project["finalJobId"], Value::Null, "{project}");

    let compose = format!("/api/mv/projects/{id}/compose");
    let (status, refused) = client.json(reqwest::Method::POST, &compose, &json!({})).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["detail"]["message"].as_str().is_some_and(|m| m.contains("at most 64")), "{refused}");
    let (_, project) = client.get(&format!("/api/mv/projects/{id}")).await;
    assert_eq!((&project["status"], &project["finalJobId"]), (&json!("failed"), &Value::Null), "{project}");

    // One scene fewer and the cut is made.
    let (status, deleted) = client.delete(format!("/api/mv/projects/{id}/scenes/65")).await;
    assert_eq!(status, 200, "{deleted}");
    let (status, started) = client.json(reqwest::Method::POST, &compose, &json!({})).await;
    assert_eq!(status, 200, "{started}");
    let project = client.wait_for(&id, "composed", |p| p["finalOutputUrl"].is_string()).await;
    assert_eq!(project["status"], "completed", "{project}");
    no_panic(&server);
}

/// Composes asked at once (a double click on Export) start one cut: the others are 409. Before
/// the fix each passed the "already composing" check on the same read and each started a
/// `final_cut` job; the project named only the last, so the others' cuts were made for nothing
/// and their files stored with nothing naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composes_asked_at_once_start_one_cut() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let song = client.upload_song().await;
    let id = client.project_with_scenes(&song, 2).await;
    let (status, generating) =
        client.json(reqwest::Method::POST, &format!("/api/mv/projects/{id}/generate"), &json!({})).await;
    assert_eq!(status, 200, "{generating}");
    client.wait_for(&id, "made", |p| p["status"] == "completed" && p["finalOutputUrl"].is_string()).await;
    let (compose, empty) = (format!("/api/mv/projects/{id}/compose"), json!({}));
    for round in 0..6 {
        let before = client.final_cuts(&id).await;
        let composes = (0..3).map(|_| client.json(reqwest::Method::POST, &compose, &empty));
        let answers = futures_util::future::join_all(composes).await;
        let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409, 409], "round {round}: {answers:?}");
        assert_eq!(client.final_cuts(&id).await, before + 1, "round {round}: one cut started");
        client.wait_for(&id, "composed", |p| p["status"] == "completed").await;
    }
    no_panic(&server);
}

/// A scene's clip uploaded with a stale `If-Match` is a 412 and keeps nothing, as every refused
/// upload keeps nothing. Before the fix the 412 came only after the whole clip (up to 100 MB) was
/// stored, and the clip stayed in the store with nothing naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_uploaded_with_a_stale_if_match_keeps_nothing() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let song = client.upload_song().await;
    let id = client.project_with_scenes(&song, 2).await;
    let (_, read) = client.get(&format!("/api/mv/projects/{id}")).await;
    let version = read["version"].as_i64().expect("version");
    // Another editor changes the project.
    let (status, _) = client
        .json(reqwest::Method::PATCH, &format!("/api/mv/projects/{id}/scenes/2"), &json!({"prompt": "theirs"}))
        .await;
    assert_eq!(status, 200);
    let clip = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/media/cut/clip-640x360.mp4")).expect("clip");
    let upload = |etag: String| {
        let boundary = "attack-clip-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\n\
             Content-Type: video/mp4\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&clip);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        client
            .http
            .post(format!("{}/api/mv/projects/{id}/scenes/1/upload_video", client.base))
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .header("if-match", etag)
            .body(body)
    };
    let videos = server.output_dir().join("videos");
    let before = files_under(&videos).len();
    let (status, refused) = client.send(upload(format!("\"{version}\""))).await;
    assert_eq!(status, 412, "{refused}");
    assert_eq!(files_under(&videos).len(), before, "the refused clip is still stored");
    let (_, scene) = client.get(&format!("/api/mv/projects/{id}")).await;
    assert_eq!(scene["scenes"][0]["videoId"], Value::Null, "{scene}");

    // At the current version it is taken.
    let (_, read) = client.get(&format!("/api/mv/projects/{id}")).await;
    let (status, scene) = client.send(upload(format!("\"{}\"", read["version"]))).await;
    assert_eq!(status, 200, "{scene}");
    assert!(scene["videoId"].is_string(), "{scene}");
    assert_eq!(files_under(&videos).len(), before + 1);
    no_panic(&server);
}

/// A text field that is not UTF-8 is a 400 naming it, and nothing is stored. Before the fix it
/// was decoded by a guess: `\xff\xfe` taken for a UTF-16 byte-order mark, so the prompt
/// `\xff\xfe fox` was stored as two CJK characters (and a Latin-1 `é` as U+FFFD), 201.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_field_that_is_not_utf8_is_refused_naming_it() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    for prompt in [&b"\xff\xfe fox "[..], &b"caf\xe9 "[..]] {
        let (status, refused) = client.send(create_form_with(&client, prompt, false)).await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["detail"]["details"], "prompt", "{refused}");
        assert!(refused["detail"]["message"].as_str().is_some_and(|m| m.contains("UTF-8")), "{refused}");
    }
    let (status, listed) = client.get("/api/mv/projects").await;
    assert_eq!((status, &listed["projects"]), (200, &json!([])), "no project was made: {listed}");
    assert!(files_under(&server.output_dir().join("audio")).is_empty(), "a refused project's song is stored");
    let (status, created) = client.send(create_form_with(&client, "caf\u{e9} ".as_bytes(), false)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["projectId"].as_str().expect("projectId");
    let (_, project) = client.get(&format!("/api/mv/projects/{id}")).await;
    assert_eq!(project["conceptPrompt"], "caf\u{e9} nces", "{project}");
    no_panic(&server);
}

/// A status PATCH does not overwrite `composing` while the cut is in flight: that status is what
/// refuses a second compose. Before the fix `{"status": "completed"}` mid-compose was a 200, and
/// the next compose started a second cut beside the first (whose cut nothing then named). No job
/// worker runs here (`MVGEN_WORKERS=0`: the sync renders run in their requests), so the cut stays
/// queued and the project stays composing for as long as the test needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_patch_does_not_overwrite_a_compose_in_flight() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock"), ("MVGEN_WORKERS", "0")]).expect("start mvgen");
    let client = Client::new(&server);
    let song = client.upload_song().await;
    let id = client.project_with_scenes(&song, 2).await;
    let (_, project) = client.get(&format!("/api/mv/projects/{id}")).await;
    for scene in project["scenes"].as_array().expect("scenes") {
        let body = json!({"prompt": scene["prompt"], "project_id": id, "sequence": scene["sequence"]});
        let (status, rendered) = client.json(reqwest::Method::POST, "/api/mv/generate_video", &body).await;
        assert_eq!(status, 200, "{rendered}");
    }
    let compose = format!("/api/mv/projects/{id}/compose");
    let (status, started) = client.json(reqwest::Method::POST, &compose, &json!({})).await;
    assert_eq!(status, 200, "{started}");
    let path = format!("/api/mv/projects/{id}");
    let (status, refused) = client.json(reqwest::Method::PATCH, &path, &json!({"status": "completed"})).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["detail"]["error"], "ProjectBusy", "{refused}");
    let (_, project) = client.get(&path).await;
    assert_eq!(project["status"], "composing", "{project}");
    let (status, again) = client.json(reqwest::Method::POST, &compose, &json!({})).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(client.final_cuts(&id).await, 1, "one cut");

    // Canceled, the status is the caller's again.
    let (status, canceled) = client.json(reqwest::Method::POST, &format!("{path}/cancel"), &json!({})).await;
    assert_eq!((status, &canceled["status"]), (200, &json!("failed")), "{canceled}");
    let (status, patched) = client.json(reqwest::Method::PATCH, &path, &json!({"status": "completed"})).await;
    assert_eq!((status, &patched["status"]), (200, &json!("completed")), "{patched}");
    no_panic(&server);
}

/// The embedded mock clip with its first `stsz` (the video track's) rewritten to say `count`
/// samples of 100 bytes each: a table of 20 bytes (the rest of the old box becomes `free`), so
/// the file stays the mock clip's size and every offset in it stays true.
fn clip_claiming_samples(count: u32) -> Vec<u8> {
    let mut clip = mvgen::providers::mock::MOCK_CLIP.to_vec();
    let at = clip.windows(4).position(|w| w == b"stsz").expect("an stsz box") - 4;
    let len = u32::from_be_bytes(clip[at..at + 4].try_into().expect("4 bytes")) as usize;
    assert!(len >= 28, "room for the new table and a free box");
    let mut table = Vec::with_capacity(len);
    table.extend_from_slice(&20u32.to_be_bytes());
    table.extend_from_slice(b"stsz");
    table.extend_from_slice(&[0; 4]);
    table.extend_from_slice(&100u32.to_be_bytes());
    table.extend_from_slice(&count.to_be_bytes());
    table.extend_from_slice(&(len as u32 - 20).to_be_bytes());
    table.extend_from_slice(b"free");
    table.resize(len, 0);
    clip[at..at + len].copy_from_slice(&table);
    clip
}

/// `bytes` as the `file` part (`video/mp4`) of a scene's `upload_video`.
fn upload_clip(client: &Client, id: &str, sequence: u32, bytes: &[u8]) -> reqwest::RequestBuilder {
    let boundary = "attack-clip-boundary-51c2";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    client
        .http
        .post(format!("{}/api/mv/projects/{id}/scenes/{sequence}/upload_video", client.base))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
}

/// A scene clip cut short (the upload stopped after its header: an MP4 whose `moov` comes first
/// reads as whole) and one whose header claims 4 billion frames in 50 KB are refused at upload
/// with a 400 naming the file, nothing kept, the scene as it was, the server up. Before the fix
/// the cut-short clip was taken (200, the scene `completed`) and the project's compose failed
/// later ("shorter than its header says"); the lying one made the server allocate 16 GiB for
/// its sample table (`memory allocation of 17179869180 bytes failed` and an abort under a 4 GiB
/// address-space limit; the OOM killer without one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scene_clip_cut_short_or_claiming_billions_of_frames_is_refused_at_upload() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let song = client.upload_song().await;
    let id = client.project_with_scenes(&song, 1).await;
    let clip = mvgen::providers::mock::MOCK_CLIP;
    let cut_short = clip[..clip.len() * 2 / 5].to_vec();
    for (what, bytes, words) in
        [("cut short", cut_short, "cut short"), ("lying", clip_claiming_samples(u32::MAX), "samples")]
    {
        let (status, refused) = client.send(upload_clip(&client, &id, 1, &bytes)).await;
        assert_eq!(status, 400, "{what}: {refused}");
        assert_eq!(refused["detail"]["details"], "file", "{what}: {refused}");
        let message = refused["detail"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("file: Invalid video file: ") && message.contains(words), "{what}: {refused}");
        let (status, health) = client.get("/health").await;
        assert_eq!(status, 200, "{what}: the server is down: {health}");
    }
    let (_, project) = client.get(&format!("/api/mv/projects/{id}")).await;
    assert_eq!(project["scenes"][0]["status"], "pending", "{project}");
    assert_eq!(project["scenes"][0]["videoClipUrl"], Value::Null, "{project}");
    assert!(files_under(&server.output_dir().join("videos")).is_empty(), "a refused clip is kept");

    // The whole clip is taken.
    let (status, scene) = client.send(upload_clip(&client, &id, 1, clip)).await;
    assert_eq!((status, &scene["status"]), (200, &json!("completed")), "{scene}");
    no_panic(&server);
}

/// A stored clip cut short (an older build took one at upload) is the caller's fault in a final
/// cut: 422 `ClipsIncompatible` naming it, its job failed with that code, like every other clip
/// the cut can't read. Before the fix the cut started copying and failed with 500
/// `InternalError` ("shorter than its header says"), logged as a server fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_clip_cut_short_is_a_422_naming_it_in_a_final_cut() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let clip = mvgen::providers::mock::MOCK_CLIP;
    let id = uuid::Uuid::new_v4().to_string();
    let dir = server.output_dir().join("videos");
    std::fs::create_dir_all(&dir).expect("videos dir");
    std::fs::write(dir.join(format!("{id}.mp4")), &clip[..clip.len() * 2 / 5]).expect("plant the clip");
    let whole = uuid::Uuid::new_v4().to_string();
    std::fs::write(dir.join(format!("{whole}.mp4")), clip).expect("plant the clip");
    let body = json!({"video_ids": [whole, id]});
    let (status, refused) = client.json(reqwest::Method::POST, "/api/mv/stitch-videos", &body).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["detail"]["error"], "ClipsIncompatible", "{refused}");
    assert_eq!(refused["detail"]["details"]["field"], "clips[1].video_id", "{refused}");
    assert!(refused["detail"]["message"].as_str().is_some_and(|m| m.contains(&id) && m.contains("cut short")));
    let (_, jobs) = client.get("/api/mv/jobs?kind=final_cut").await;
    assert_eq!(jobs["jobs"][0]["error"]["code"], "ClipsIncompatible", "{jobs}");
    assert!(!server.log().contains(" ERROR "), "a caller's clip is no server fault:\n{}", server.log());
    no_panic(&server);
}

/// A create naming its song by a malformed `audioId` is a 400 naming `audioId`, as the image
/// ids name themselves. Before the fix the refusal named `id` (the store's word), not the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_audio_id_is_refused_naming_the_field() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    for id in ["not-a-uuid", "../../jobs.db", "3F2B6C1E-8F0A-4D2B-9C51-0E4F1A2B3C4D"] {
        let body = json!({"mode": "music-video", "prompt": "A fox dances", "audioId": id});
        let (status, refused) = client.json(reqwest::Method::POST, "/api/mv/projects", &body).await;
        assert_eq!(status, 400, "{id}: {refused}");
        assert_eq!(refused["detail"]["details"], "audioId", "{id}: {refused}");
    }
    let (_, listed) = client.get("/api/mv/projects").await;
    assert_eq!(listed["projects"], json!([]), "no project was made: {listed}");
    no_panic(&server);
}

/// `generate` asked eight times at once starts the project once: one 200, seven 409
/// `ProjectBusy`, as a `generate` after it gets. Before the fix each read the project before any
/// had marked it, and most (five of six, here) answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generates_asked_at_once_start_the_project_once() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock"), ("MVGEN_WORKERS", "0")]).expect("start mvgen");
    let client = Client::new(&server);
    let body = json!({"mode": "ad-creative", "prompt": "A fox sells lemonade", "numberOfScenes": 2});
    let (status, created) = client.json(reqwest::Method::POST, "/api/mv/projects", &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["projectId"].as_str().expect("projectId").to_owned();
    let path = format!("/api/mv/projects/{id}/generate");
    let empty = json!({});
    let asks = (0..8).map(|_| client.json(reqwest::Method::POST, &path, &empty));
    let answers = futures_util::future::join_all(asks).await;
    let started = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(started, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
        assert_eq!((*status, &body["detail"]["error"]), (409, &json!("ProjectBusy")), "{body}");
    }
    no_panic(&server);
}

/// A create form's text part larger than a JSON body may be (1 MiB) is a 413 naming it, and is
/// never held whole: past the limit it is read to its end and dropped (text fields are at most
/// 20 000 characters). Before the fix any part but the song was buffered whole, up to the song's
/// cap (50 MiB) and copied once more, and an unknown one of 2 MiB was read and ignored (201).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_form_text_part_over_a_mebibyte_is_a_413_and_never_held_whole() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let boundary = "attack-big-part-9e1d";
    let form = |name: &str, size: usize| {
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"mode\"\r\n\r\nad-creative\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nA fox\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
        )
        .into_bytes();
        body.resize(body.len() + size, b'n');
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        client
            .http
            .post(format!("{}/api/mv/projects", client.base))
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body)
    };
    for name in ["notes", "characterDescription"] {
        let (status, refused) = client.send(form(name, 2 << 20)).await;
        assert_eq!(status, 413, "{name}: {refused}");
        assert_eq!(refused["detail"]["error"], "PayloadTooLarge", "{name}: {refused}");
        assert!(refused["detail"]["message"].as_str().is_some_and(|m| m.contains(name)), "{name}: {refused}");
    }
    let (_, listed) = client.get("/api/mv/projects").await;
    assert_eq!(listed["projects"], json!([]), "no project was made: {listed}");
    // A field of their UI's sizes is read as before.
    let (status, created) = client.send(form("notes", 4096)).await;
    assert_eq!(status, 201, "{created}");
    no_panic(&server);
}

/// A query value of the wrong type names its parameter in `details`, as every other bad value
/// does. Before the fix both answered `details: "query"` (the parameter only inside the message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_query_value_names_its_parameter() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let client = Client::new(&server);
    let id = uuid::Uuid::new_v4();
    for (path, field) in [
        ("/api/mv/projects?cursor=abc".to_owned(), "cursor"),
        ("/api/mv/projects?limit=lots".to_owned(), "limit"),
        (format!("/api/mv/generate_scene_video/{id}/1?write_to_db=maybe"), "write_to_db"),
    ] {
        let request = if path.starts_with("/api/mv/generate") {
            client.http.post(format!("{}{path}", client.base))
        } else {
            client.http.get(format!("{}{path}", client.base))
        };
        let (status, refused) = client.send(request).await;
        assert_eq!(status, 400, "{path}: {refused}");
        assert_eq!(refused["detail"]["details"], field, "{path}: {refused}");
        let message = refused["detail"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("{field}: ")), "{path}: {refused}");
    }
    // A resume point no stream gave (ids count from 0), as the jobs' event stream refuses it.
    let events = client.http.get(format!("{}/api/mv/projects/{id}/events", client.base));
    let (status, refused) = client.send(events.header("last-event-id", "-1")).await;
    assert_eq!((status, &refused["detail"]["details"]), (400, &json!("last-event-id")), "{refused}");
    no_panic(&server);
}
