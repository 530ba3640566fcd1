//! Store write bench (bench/storage.sh runs it): `N` concurrent streams of `MIB` MiB each written
//! through `Storage::put_stream`, or the same bytes written the raw way for the baseline, then one
//! line with the throughput and this process's peak RSS (VmHWM), so each mode is measured alone.
//!
//! `store_put MODE N MIB` with MODE one of
//! - `disk DIR`: tokio files written in the same 64 KiB chunks and fsynced (no checks, no rename);
//! - `file DIR`: `file://` storage (`LocalStorage::put_stream`);
//! - `s3-raw BUCKET`: object_store multipart uploads of the same parts, straight (the server's pace);
//! - `s3 BUCKET`: `s3://` storage (`ObjectStorage::put_stream`), store settings from `AWS_*`.

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use mvgen::storage::local::LocalStorage;
use mvgen::storage::object::{ObjectStorage, PART_BYTES};
use mvgen::storage::{ByteStream, Collection, Storage};
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStoreExt, WriteMultipart};

const CHUNK: usize = 64 * 1024;

/// `mib` MiB of an MP4 as 64 KiB chunks, each freshly allocated as a download's chunks are (a
/// static slice would let buffered multipart parts cost nothing and hide what they hold).
fn video(mib: usize) -> ByteStream {
    static BLOCK: [u8; CHUNK] = {
        let mut block = [7u8; CHUNK];
        let head = *b"\0\0\0\x18ftypisom\0\0\0\0";
        let mut i = 0;
        while i < head.len() {
            block[i] = head[i];
            i += 1;
        }
        block
    };
    futures_util::stream::iter((0..mib * 16).map(|_| Ok(Bytes::copy_from_slice(&BLOCK)))).boxed()
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, target, n, mib] = args.as_slice() else {
        return Err("usage: store_put disk|file|s3-raw|s3 DIR|BUCKET STREAMS MIB".into());
    };
    let (n, mib): (usize, usize) = (n.parse().map_err(|_| "STREAMS")?, mib.parse().map_err(|_| "MIB")?);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (mode, target) = (mode.clone(), target.clone());
        tasks.spawn(async move {
            match mode.as_str() {
                "disk" => {
                    use tokio::io::AsyncWriteExt;
                    let path = std::path::Path::new(&target).join(format!("raw-{i}"));
                    let mut file = tokio::fs::File::create(&path).await.map_err(|e| e.to_string())?;
                    let mut body = video(mib);
                    while let Some(chunk) = body.next().await {
                        file.write_all(&chunk.map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
                    }
                    file.flush().await.map_err(|e| e.to_string())?;
                    file.sync_all().await.map_err(|e| e.to_string())
                }
                "file" => {
                    let storage = LocalStorage::new(&target);
                    storage
                        .put_stream(Collection::Video, u64::MAX, video(mib))
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
                "s3-raw" => {
                    let store = AmazonS3Builder::from_env()
                        .with_bucket_name(&target)
                        .with_http_connector(mvgen::storage::s3_http::Connector)
                        .build()
                        .map_err(|e| e.to_string())?;
                    let path = format!("bench-raw/{}", uuid::Uuid::new_v4()).into();
                    let upload = store.put_multipart(&path).await.map_err(|e| e.to_string())?;
                    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                    let mut body = video(mib);
                    while let Some(chunk) = body.next().await {
                        writer.wait_for_capacity(2).await.map_err(|e| e.to_string())?;
                        writer.put(chunk.map_err(|e| e.to_string())?);
                    }
                    writer.finish().await.map(drop).map_err(|e| e.to_string())
                }
                "s3" => {
                    let storage =
                        ObjectStorage::new(AmazonS3Builder::from_env(), &target, "bench", &Default::default())?;
                    storage
                        .put_stream(Collection::Video, u64::MAX, video(mib))
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
                other => Err(format!("unknown mode {other}")),
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let secs = started.elapsed().as_secs_f64();
    let total_mib = (n * mib) as f64;
    println!(
        "{mode:7} streams={n} size={mib}MiB total={total_mib}MiB secs={secs:.2} MiB/s={:.1} peak_rss_MiB={:.1}",
        total_mib / secs,
        peak_rss_kib() as f64 / 1024.0
    );
    Ok(())
}
