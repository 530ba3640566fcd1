//! A project's changes on the real database: a settle that finds its result already written in
//! (another reader or replica settled first) changes nothing, not even the version, so a GET after
//! a project completed shows the very state, version included, its webhook was told.

use crate::support;

use mvgen::jobs::Jobs;
use mvgen::jobs::store::projects::{Changed, Edit, ProjectRow};
use support::job_pipeline::FakePipeline;

use super::jobs_engine::{config, sqlite_url};

#[tokio::test]
async fn a_settle_that_lost_its_race_leaves_the_version_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pipeline, _upstream) = FakePipeline::new();
    let jobs = Jobs::open(&sqlite_url(&dir), pipeline, config(0, 60_000)).await.expect("open");
    let store = jobs.store();
    let id = "0b8f3a52-6f0e-4c1e-9f4a-2d1c6b7e9a10";
    let row = ProjectRow {
        id: id.into(),
        status: "composing".into(),
        mode: "music-video".into(),
        concept_prompt: "a fox".into(),
        flavor_name: "default".into(),
        flavor_hash: "0".into(),
        flavor_content: Some("{}".into()),
        ..ProjectRow::default()
    };
    store.insert_project(&row).await.expect("insert");
    let link = Edit::Project(vec![("final_job_id", "job-1".into())]);
    assert_eq!(store.change_project(id, None, &[link]).await.expect("link"), Changed::Done(2));

    let settle = || Edit::SettleProject {
        column: "final_job_id",
        job: "job-1".into(),
        sets: vec![("status", "completed".into()), ("final_video_id", "video-1".into())],
    };
    assert_eq!(store.change_project(id, None, &[settle()]).await.expect("settle"), Changed::Done(3));
    // The same settle again, as a second reader that read the project before the first wrote it.
    assert_eq!(store.change_project(id, None, &[settle()]).await.expect("settle again"), Changed::Done(3));
    let (project, _) = store.project(id).await.expect("read").expect("there");
    assert_eq!((project.version, project.status.as_str()), (3, "completed"));
    // A change that does something still bumps it.
    let edit = Edit::Project(vec![("error_message", "x".into())]);
    assert_eq!(store.change_project(id, None, &[edit]).await.expect("edit"), Changed::Done(4));
}
