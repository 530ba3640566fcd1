//! The promise build.rs makes: a broken configs dir fails a real cargo build of this crate, with
//! the compiler's `path:line:col: message` lines in cargo's output.

use std::path::Path;
use std::process::Command;

use crate::fixtures::materialize;

#[test]
fn cargo_check_fails_on_a_broken_configs_dir_with_positioned_errors() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A target dir of its own, so this nested cargo never waits on the lock the outer `cargo test`
    // holds, and inside target/ so its dependency builds are reused from one run to the next.
    let target = manifest.join("target/broken-configs-build");
    // Relative to the package root, which is where cargo runs build scripts, so the printed path is
    // the same on every machine.
    let configs = "target/broken-configs-build/configs";
    let _ = std::fs::remove_dir_all(manifest.join(configs));
    materialize("wrong_type", &manifest.join(configs));
    // A second flavor whose fault the YAML parser alone would let through: two merge keys.
    let merged = manifest.join(configs).join("merged");
    std::fs::create_dir_all(&merged).expect("mkdir");
    std::fs::write(merged.join("parameters.yaml"), "<<: {video_type: a}\n<<: {camera_angle: b}\n").expect("write");

    // `CARGO` is set when the suite runs under cargo; use that same cargo, not whatever is on PATH.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // `check --lib` is the cheapest command that still runs build.rs: dependencies are only checked.
    let out = Command::new(&cargo)
        .args(["check", "--lib", "--offline", "--message-format", "short", "--target-dir"])
        .arg(&target)
        .current_dir(manifest)
        .env("MVGEN_CONFIGS_DIR", configs)
        .env("CARGO_TERM_COLOR", "never")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cargo.to_string_lossy()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the build must fail; stderr:\n{stderr}");
    for line in [
        format!(
            "{configs}/default/parameters.yaml:5:19: number_of_scenes: expected an integer in 1..=32, found \"six\""
        ),
        format!("{configs}/merged/parameters.yaml:2:1: duplicate key `<<`: each key may appear once per file"),
    ] {
        assert!(
            // cargo prefixes each build-script error with `error: <package>@<version>: `.
            stderr.lines().any(|l| l.starts_with("error: ") && l.ends_with(&format!(": {line}"))),
            "no line {line:?} in cargo's stderr:\n{stderr}"
        );
    }
}
