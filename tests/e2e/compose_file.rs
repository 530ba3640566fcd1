//! deploy/compose.yaml, the replica topology for one Docker host, checked by Debian's
//! `docker-compose config` (it resolves and validates the file; no Docker engine is needed): it
//! refuses to resolve without `API_KEY`, and resolved, both replicas share one database, one store
//! and the key, wait for `mvgen migrate` and the bucket, get time to drain, and nginx runs
//! docs/nginx/mvgen.conf itself, published on loopback only. Without `docker-compose` the tests
//! print a skip line; under `CI=true` they fail.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const COMPOSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose.yaml");

/// `docker-compose -f deploy/compose.yaml config` with exactly `envs`; `None` after a skip line.
fn config(test: &str, envs: &[(&str, &str)]) -> Option<Output> {
    let installed = Command::new("docker-compose").arg("version").output().is_ok_and(|o| o.status.success());
    if !installed {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "docker-compose is required under CI=true (apt-get install docker-compose; .ci/run does)"
        );
        eprintln!("skip {test}: docker-compose not installed");
        return None;
    }
    let home = tempfile::tempdir().expect("temp dir");
    let output = Command::new("docker-compose")
        .args(["-f", COMPOSE, "config"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // docker-compose reads ~/.docker; an empty home keeps the developer's out.
        .env("HOME", home.path())
        .envs(envs.iter().copied())
        .output()
        .expect("run docker-compose");
    Some(output)
}

#[test]
fn the_compose_file_refuses_to_resolve_without_an_api_key() {
    let test = "the_compose_file_refuses_to_resolve_without_an_api_key";
    let Some(output) = config(test, &[("POSTGRES_PASSWORD", "pw")]) else { return };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "resolved without API_KEY: {}", String::from_utf8_lossy(&output.stdout));
    assert!(stderr.contains("set API_KEY"), "{stderr}");
    let Some(output) = config(test, &[("API_KEY", "k1")]) else { return };
    assert!(!output.status.success(), "resolved without POSTGRES_PASSWORD");
}

#[test]
fn the_compose_file_runs_two_replicas_behind_the_documented_nginx() {
    let test = "the_compose_file_runs_two_replicas_behind_the_documented_nginx";
    let Some(output) = config(test, &[("API_KEY", "k1,k2"), ("POSTGRES_PASSWORD", "pw")]) else { return };
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "docker-compose config: {stderr}");
    let resolved: Value = serde_saphyr::from_str(&stdout).expect("docker-compose config prints YAML");
    let services = &resolved["services"];
    let env = |name: &str, key: &str| services[name]["environment"][key].as_str().map(str::to_owned);

    for replica in ["mvgen-a", "mvgen-b"] {
        assert_eq!(services[replica]["command"], serde_json::json!(["serve"]), "{replica}");
        assert_eq!(env(replica, "API_KEY").as_deref(), Some("k1,k2"), "{replica} requires the key");
        assert_eq!(env(replica, "MVGEN_MIGRATE_ON_START").as_deref(), Some("false"), "{replica}");
        for shared in ["MVGEN_DATABASE_URL", "MVGEN_STORAGE_URL", "AWS_ENDPOINT_URL"] {
            assert!(env(replica, shared).is_some(), "{replica} sets {shared}");
            assert_eq!(env(replica, shared), env("mvgen-a", shared), "{shared} is the same on every replica");
        }
        let depends = &services[replica]["depends_on"];
        assert_eq!(depends["migrate"]["condition"], "service_completed_successfully", "{replica}");
        assert_eq!(depends["bucket"]["condition"], "service_completed_successfully", "{replica}");
        // Docker's default of 10 s would SIGKILL a replica in the middle of its 25 s drain.
        let grace = services[replica]["stop_grace_period"].as_str().unwrap_or("10s");
        let secs: u64 = grace.trim_end_matches('s').parse().expect("a grace period in seconds");
        assert!(secs >= 35, "{replica}: stop_grace_period {grace} under the drain and the workers' release");
    }
    assert_eq!(env("mvgen-a", "MVGEN_DATABASE_URL").as_deref(), Some("postgres://mvgen:pw@postgres:5432/mvgen"));
    assert_eq!(services["migrate"]["command"], serde_json::json!(["migrate"]));

    // nginx runs the recipe file itself, with the placeholders it really has, on loopback only.
    let nginx = &services["nginx"];
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/nginx/mvgen.conf");
    let mounted = nginx["volumes"].as_array().expect("nginx volumes").iter().filter_map(Value::as_str).any(|v| {
        v.split(':').next().is_some_and(|host| Path::new(host).canonicalize().ok() == recipe.canonicalize().ok())
    });
    assert!(mounted, "nginx mounts docs/nginx/mvgen.conf: {nginx}");
    let script = nginx["command"].to_string();
    let site = std::fs::read_to_string(&recipe).expect("docs/nginx/mvgen.conf");
    for placeholder in ["10.0.0.11:8000", "10.0.0.12:8000"] {
        assert!(site.contains(placeholder), "the recipe names {placeholder}");
        assert!(
            script.contains(&placeholder.replace('.', "\\\\.")),
            "nginx's command replaces {placeholder}: {script}"
        );
    }
    let ports: Vec<&str> = nginx["ports"].as_array().expect("nginx ports").iter().filter_map(Value::as_str).collect();
    assert!(
        !ports.is_empty() && ports.iter().all(|p| p.starts_with("127.0.0.1:")),
        "published on loopback only: {ports:?}"
    );
    for (name, service) in services.as_object().expect("services") {
        if name != "nginx" {
            assert!(service.get("ports").is_none(), "{name} publishes no port: {service}");
        }
    }
}
