//! Save-to-served latency of `mvgen serve --configs DIR`: starts the given mvgen binary on a copy
//! of `configs/`, then ROUNDS times saves an edit to `mv1/flavor.yaml` the way editors do (write a
//! temp file, rename it over the original) and polls `GET /api/mv/get_config_flavors` every
//! millisecond until the new description is served. Prints each latency and the distribution.
//!
//! `live_reload_latency PATH/TO/mvgen [ROUNDS]` (see BENCHMARKS.md)

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

fn free_addr() -> std::io::Result<String> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let binary = args.next().ok_or("usage: live_reload_latency PATH/TO/mvgen [ROUNDS]")?;
    let rounds: usize = args.next().map_or(Ok(30), |r| r.parse())?;
    let tmp = std::env::temp_dir().join(format!("mvgen-live-latency-{}", std::process::id()));
    let dir = tmp.join("configs");
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"), &dir)?;
    let addr = free_addr()?;
    let mut server = Command::new(&binary)
        .args(["serve", "--addr", &addr, "--configs"])
        .arg(&dir)
        .env_clear()
        .env("MV_PROVIDER", "mock")
        .env("MV_OUTPUT_DIR", tmp.join("out"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let result = measure(&addr, &dir, rounds).await;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&tmp);
    let mut ms = result?;
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "save-to-served over {} edits: min {:.1} ms, p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms (goal <= 1000 ms)",
        ms.len(),
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0)
    );
    Ok(())
}

async fn measure(addr: &str, dir: &Path, rounds: usize) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    mvgen::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/mv/get_config_flavors");
    let served = |list: &serde_json::Value, text: &str| {
        list["details"].as_array().is_some_and(|d| d.iter().any(|f| f["name"] == "mv1" && f["description"] == text))
    };
    let start = Instant::now();
    while client.get(&url).send().await.is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("the server did not start within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let meta = dir.join("mv1/flavor.yaml");
    let original = std::fs::read_to_string(&meta)?;
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let text = format!("Edited in round {round}");
        let edited = original
            .lines()
            .map(|l| if l.starts_with("description:") { format!("description: {text}") } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
        let tmp = meta.with_extension("tmp");
        std::fs::write(&tmp, edited + "\n")?;
        let saved = Instant::now();
        std::fs::rename(&tmp, &meta)?;
        loop {
            let list: serde_json::Value = client.get(&url).send().await?.json().await?;
            if served(&list, &text) {
                break;
            }
            if saved.elapsed() > Duration::from_secs(10) {
                return Err(format!("round {round}: not served within 10 s").into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ms = saved.elapsed().as_secs_f64() * 1000.0;
        println!("round {round:>3}: {ms:.1} ms");
        latencies.push(ms);
        // Let the watcher settle so rounds do not overlap.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(latencies)
}
