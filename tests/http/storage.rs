//! Storage faults through the API: an unwritable or full output directory fails that request with
//! a clear StorageError, leaves no file under a final name, and the server keeps serving;
//! concurrent generations each get their own file.

use crate::support;

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::StatusCode;
use mvgen::providers::Providers;
use serde_json::json;
use support::test_app::{FAKE_MP4, TestApp};

#[tokio::test]
async fn an_unwritable_output_dir_fails_the_request_cleanly_and_the_server_keeps_serving() {
    let t = TestApp::new();
    std::fs::create_dir_all(&t.output_dir).expect("output dir");
    // Where the videos directory should be there is a file, so nothing can be written there.
    std::fs::write(t.output_dir.join("videos"), b"in the way").expect("blocker");

    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{resp}");
    assert_eq!(resp["detail"]["error"], "StorageError");
    assert!(resp["detail"]["message"].as_str().is_some_and(|m| m.contains("could not be stored")), "{resp}");
    assert_eq!(std::fs::read(t.output_dir.join("videos")).expect("blocker"), b"in the way", "nothing overwritten");

    let (status, _) = t.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    let (status, resp) =
        t.post("/api/mv/generate_character_reference", &json!({"character_description": "c", "num_images": 1})).await;
    assert_eq!(status, StatusCode::OK, "other kinds still work: {resp}");
    let (status, _) = t.post("/api/mv/create_scenes", &json!({"idea": "i", "character_description": "c"})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_generations_never_overwrite_each_other() {
    let t = Arc::new(TestApp::new());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let t = Arc::clone(&t);
        tasks.spawn(async move { t.post("/api/mv/generate_video", &json!({"prompt": format!("scene {i}")})).await });
    }
    let mut ids = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        let (status, resp) = done.expect("task");
        assert_eq!(status, StatusCode::OK, "{resp}");
        ids.insert(resp["video_id"].as_str().expect("id").to_string());
    }
    assert_eq!(ids.len(), 50, "every generation got its own id");
    let files: Vec<_> =
        std::fs::read_dir(t.output_dir.join("videos")).expect("videos").map(|e| e.expect("entry").path()).collect();
    assert_eq!(files.len(), 50, "one file per generation, no temp files left: {files:?}");
    for f in files {
        assert_eq!(std::fs::read(&f).expect("read"), FAKE_MP4, "{} intact", f.display());
    }
}

/// A disk that fills up mid-write: the request fails with StorageError, nothing is left under a
/// final name or as a temp file, and the server keeps serving. Needs root to mount a tiny tmpfs.
#[tokio::test]
async fn a_full_disk_fails_the_request_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mount_point = dir.path().join("tiny");
    std::fs::create_dir_all(&mount_point).expect("mount point");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&mount_point)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI runs as root and must be able to mount a tmpfs");
        eprintln!("full-disk test skipped: mounting a tmpfs needs root");
        return;
    }
    let _unmount = Unmount(mount_point.clone());
    let out = mount_point.clone();
    // The mock clip (about 27 KB) can't fit in 16 KiB.
    let t = TestApp::with(|s| s.output_dir = out, |p| *p = Providers::mock());

    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{resp}");
    assert_eq!(resp["detail"]["error"], "StorageError");
    let left: Vec<_> = std::fs::read_dir(mount_point.join("videos")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(left.is_empty(), "no partial or final file may remain: {left:?}");

    let (status, _) = t.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t.post("/api/mv/create_scenes", &json!({"idea": "i", "character_description": "c"})).await;
    assert_eq!(status, StatusCode::OK, "requests that store nothing still work");
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A refused planted file is not just a 404: the operator is told what was found and where.
#[test]
fn refused_planted_files_are_logged() {
    use mvgen::storage::local::LocalStorage;
    use mvgen::storage::{Collection, Storage};
    let dir = tempfile::tempdir().expect("temp dir");
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).expect("mkdir");
    let id = "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d";
    std::os::unix::fs::symlink("/etc/hostname", videos.join(format!("{id}.mp4"))).expect("link");
    let storage = LocalStorage::new(dir.path());
    let logs = support::test_app::capture_logs(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let found = rt.block_on(storage.open(Collection::Video, id));
        assert!(matches!(found, Err(mvgen::storage::StorageError::NotFound(_))), "{found:?}");
    });
    assert!(logs.contains("refusing to serve") && logs.contains("a symbolic link") && logs.contains(id), "{logs}");
}
