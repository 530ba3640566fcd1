//! `MVGEN_STORAGE_URL`: where outputs are kept. `file://DIR` (or unset: `MV_OUTPUT_DIR`, today's
//! layout) or `s3://bucket/prefix`, with the endpoint, region and credentials from the standard
//! `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_ALLOW_HTTP` variables, and mvgen's own `MVGEN_STORAGE_TIMEOUT` and
//! `MVGEN_STORAGE_PUBLIC_URL` ([`object::Options`](super::object::Options)).

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

/// Reads `MVGEN_STORAGE_PUBLIC_URL`: the `scheme://host[:port]` clients reach the store at, returned
/// in that form. Only that: a path would be signed into the URL but stripped by whatever proxy
/// maps it, and the store would then refuse the signature.
pub fn public_url(value: &str) -> Result<String, String> {
    let refuse = |why: &str| format!("MVGEN_STORAGE_PUBLIC_URL={value:?}: {why}");
    let url = reqwest::Url::parse(value.trim()).map_err(|e| refuse(&format!("not a URL ({e})")))?;
    let host = url.host_str().filter(|_| matches!(url.scheme(), "http" | "https"));
    let Some(host) = host else {
        return Err(refuse("expected http(s)://host[:port], such as https://media.example.com"));
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(refuse("expected only scheme://host[:port], no path, query or credentials"));
    }
    Ok(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// The storage a location names; S3 settings come from the `AWS_*` environment and `options`
/// (which `file://` has no use for: the local disk has no endpoint to hang or to rename).
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

    #[test]
    fn public_urls_are_scheme_host_and_port_only() {
        assert_eq!(public_url("https://media.example.com").as_deref(), Ok("https://media.example.com"));
        assert_eq!(public_url("https://media.example.com/").as_deref(), Ok("https://media.example.com"));
        assert_eq!(public_url(" http://localhost:8333 ").as_deref(), Ok("http://localhost:8333"));
        for bad in ["media.example.com", "ftp://h", "https://h/bucket", "https://h?x=1", "https://u:p@h", ""] {
            let refused = public_url(bad).expect_err(bad);
            assert!(refused.starts_with("MVGEN_STORAGE_PUBLIC_URL=") && !refused.contains('\n'), "{refused}");
        }
    }
}
