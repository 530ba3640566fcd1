//! `MVGEN_STORAGE_URL`: where outputs are kept. `file://DIR` (or unset: `MV_OUTPUT_DIR`, today's
//! layout) or `s3://bucket/prefix`, with the endpoint, region and credentials from the standard
//! `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_ALLOW_HTTP` variables, and mvgen's own `MVGEN_STORAGE_TIMEOUT`
//! ([`object::Options`](super::object::Options)).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Storage;
use super::local::LocalStorage;
use super::object::{ObjectStorage, Options};

/// Where a storage URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

/// Reads `MVGEN_STORAGE_URL` (`url`); unset or empty is `output_dir` on the local disk.
pub fn parse(url: Option<&str>, output_dir: &Path) -> Result<Location, String> {
    let url = url.map(str::trim).unwrap_or("");
    if url.is_empty() {
        return Ok(Location::Local(output_dir.to_path_buf()));
    }
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(format!("MVGEN_STORAGE_URL={url:?}: file:// needs a directory, such as file:///var/lib/mvgen"));
        }
        return Ok(Location::Local(PathBuf::from(path)));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("MVGEN_STORAGE_URL={url:?}: s3:// needs a bucket, such as s3://mvgen-outputs/prod"));
        }
        return Ok(Location::S3 { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() });
    }
    Err(format!("MVGEN_STORAGE_URL={url:?}: expected file:///a/directory or s3://bucket/prefix"))
}

/// The storage a location names; S3 settings come from the `AWS_*` environment and `options`
/// (which `file://` has no use for: the local disk has no endpoint to hang).
pub fn open(location: &Location, options: &Options) -> Result<Arc<dyn Storage>, String> {
    Ok(match location {
        Location::Local(dir) => Arc::new(LocalStorage::new(dir)),
        Location::S3 { bucket, prefix } => {
            Arc::new(ObjectStorage::new(object_store::aws::AmazonS3Builder::from_env(), bucket, prefix, options)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls() {
        let out = Path::new("mv-outputs");
        assert_eq!(parse(None, out), Ok(Location::Local(out.into())));
        assert_eq!(parse(Some(" "), out), Ok(Location::Local(out.into())));
        assert_eq!(parse(Some("file:///srv/mv"), out), Ok(Location::Local("/srv/mv".into())));
        assert_eq!(parse(Some("s3://b"), out), Ok(Location::S3 { bucket: "b".into(), prefix: String::new() }));
        assert_eq!(parse(Some("s3://b/p/q/"), out), Ok(Location::S3 { bucket: "b".into(), prefix: "p/q".into() }));
        for bad in ["s3://", "s3:///p", "file://", "gs://b", "/srv/mv"] {
            assert!(parse(Some(bad), out).is_err(), "{bad}");
        }
    }
}
