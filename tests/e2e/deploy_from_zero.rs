//! docs/deploy.md followed from zero (issue 27's "Done when"): `deploy/from-zero.sh` sets up
//! PostgreSQL with TLS, the two roles with the SQL read out of docs/deploy.md, SeaweedFS, `mvgen
//! migrate`, two `mvgen serve` and a `mvgen worker` as the runtime role, and nginx from
//! docs/nginx/mvgen.conf, then submits jobs through nginx and downloads every output. This test
//! runs that script against the binary under test, so a change that breaks the documented
//! deployment (a setting renamed, the SQL or the nginx file no longer working as written) fails
//! here. Without one of the engines or tools the test prints a skip line; under `CI=true` it fails.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tool::required_tool_checked_by;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/from-zero.sh");

/// A hang guard: the script takes about 10 s on a loaded machine.
const LIMIT: Duration = Duration::from_secs(240);

/// Whether `program` runs with `args`, else the skip line (a failure under `CI=true`).
fn present(test: &str, program: &str, args: &[&str], install: &str) -> bool {
    let runs = Command::new(program).args(args).output().is_ok_and(|o| o.status.success());
    if !runs {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{program} is required under CI=true ({install})");
        eprintln!("skip {test}: {program} not installed ({install})");
    }
    runs
}

#[test]
fn deploy_md_followed_from_zero_serves_jobs_through_nginx() {
    let test = "deploy_md_followed_from_zero_serves_jobs_through_nginx";
    let postgres = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|versions| {
        versions.filter_map(|v| Some(v.ok()?.path().join("bin"))).find(|b| b.join("initdb").is_file())
    });
    if postgres.is_none() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "PostgreSQL is required under CI=true");
        eprintln!("skip {test}: PostgreSQL not installed (/usr/lib/postgresql/*/bin)");
        return;
    }
    let tools = [
        ("/usr/sbin/nginx", &["-v"][..], "apt-get install nginx-light"),
        ("openssl", &["version"], "apt-get install openssl"),
        ("curl", &["--version"], "apt-get install curl"),
        ("jq", &["--version"], "apt-get install jq"),
        ("python3", &["--version"], "apt-get install python3"),
    ];
    if !tools.iter().all(|(program, args, install)| present(test, program, args, install)) {
        return;
    }
    let skip = format!("skip {test}: SeaweedFS `weed` not found (set MVGEN_WEED, as .ci/run does)");
    let Some(weed) = required_tool_checked_by("SeaweedFS", "MVGEN_WEED", &["version"], &skip) else { return };

    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("from-zero.log");
    let out = std::fs::File::create(&log).expect("log file");
    let mut script = Command::new("bash")
        .arg(SCRIPT)
        .env("MVGEN", env!("CARGO_BIN_EXE_mvgen"))
        .env("WEED", &weed)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .spawn()
        .expect("run deploy/from-zero.sh");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = script.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            // SIGTERM: the script's trap stops everything it started.
            let _ = Command::new("kill").args(["-TERM", &script.id().to_string()]).status();
            let _ = script.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = read(&log);
    eprintln!("{output}");
    assert!(status.is_some_and(|s| s.success()), "deploy/from-zero.sh failed ({status:?}):\n{output}");
    assert!(output.contains("from zero: OK"), "{output}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
