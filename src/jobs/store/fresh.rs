//! A fresh SQLite jobs database, made whole before it appears at its path.
//!
//! Created in place, a new file paid SQLite's syncs three times over before the first request
//! could be served: switching the empty file to WAL is a rollback-journal transaction (the
//! journal, its directory, the journal again and the file: four `fsync`s), then the first WAL
//! write syncs the WAL and its directory; each a few milliseconds on a real disk, most of a cold
//! start (BENCHMARKS.md, issue 22). Instead the schema is built in a file of its own beside the
//! path, which nobody else opens, so SQLite need not sync it (`synchronous = OFF`); it is synced
//! once whole, then linked to the path and its directory synced. A crash at any point leaves
//! either no database at the path (the next start builds it again) or the whole one: never an
//! empty or half-migrated file, and a migration that fails leaves nothing at all.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sqlx::{AnyConnection, Connection};

use super::migrate;

/// Builds the database at `url`'s file when the URL asks SQLite to create it (`?mode=rwc`, the
/// default `MVGEN_DATABASE_URL`) and it does not exist yet; otherwise does nothing, and the
/// store opens the URL as it is. True when this call built the schema (every embedded migration
/// applied); an error names the file and says why it could not be made.
pub(super) async fn create_if_missing(url: &str) -> Result<bool, String> {
    let Some(path) = new_file(url) else {
        return Ok(false);
    };
    sqlx::any::install_default_drivers();
    let shown = path.display();
    let temp = temp_beside(&path);
    let linked = match build(&temp).await {
        Ok(()) => link(&temp, &path),
        Err(e) => {
            remove_with_journals(&temp);
            return Err(format!("cannot open the jobs database {shown}: {e}"));
        }
    };
    remove_with_journals(&temp);
    match linked {
        Ok(linked) => Ok(linked),
        // A filesystem without hard links (link(2) says EPERM): the store creates the file in
        // place, as before.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
            tracing::debug!(error = %e, "no hard links here: the jobs database is created in place");
            Ok(false)
        }
        Err(e) => Err(format!("cannot open the jobs database {shown}: {e}")),
    }
}

/// The path of an SQLite URL that would create its file, when that file does not exist. Only
/// `sqlite://PATH?mode=rwc` (or `sqlite:PATH?mode=rwc`) with no other option: any other option
/// (a shared cache, an in-memory database, a read-only mode) is left to SQLite as given.
fn new_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?')?;
    if query != "mode=rwc" || path.is_empty() || path.starts_with(':') {
        return None;
    }
    let path = PathBuf::from(path);
    // Anything there, even a broken link, is for the normal open to use or to refuse.
    std::fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound).then_some(path)
}

/// `.NAME.new-UUID` in the same directory, so the link below stays on one filesystem; hidden and
/// named for what it is should a crash leave one behind.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.new-{}", uuid::Uuid::new_v4()))
}

/// The whole schema in `temp`, in WAL mode, closed so its WAL is checkpointed into it, synced.
async fn build(temp: &Path) -> Result<(), String> {
    let url = format!("sqlite://{}?mode=rwc", temp.display());
    let reason = |e: sqlx::Error| super::reason(&e);
    let mut conn = AnyConnection::connect(&url).await.map_err(reason)?;
    let schema = async {
        // One batch (see `migrate::sqlite_schema_batch`): `synchronous = OFF` first, since nobody
        // else has this file until it is linked into place, and it is synced whole before that,
        // so SQLite's own syncs would buy nothing; then WAL mode, and the schema the migrations
        // end at with their `_sqlx_migrations` rows in one transaction, left open for the time
        // taken.
        let started = Instant::now();
        sqlx::raw_sql(&migrate::sqlite_schema_batch()).execute(&mut conn).await.map_err(reason)?;
        // sqlx records each migration's own time; these ran as one batch, so each row gets the
        // batch's (the column is only for people reading it; no build reads it back).
        let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        let finish = format!("UPDATE _sqlx_migrations SET execution_time = {nanos};\nCOMMIT;");
        sqlx::raw_sql(&finish).execute(&mut conn).await.map(drop).map_err(reason)
    }
    .await;
    // Closing the only connection checkpoints the WAL into the file and deletes the WAL.
    let closed = conn.close().await.map_err(reason);
    schema.and(closed)?;
    if wal_of(temp).exists() {
        return Err("its WAL was not checkpointed on close".to_owned());
    }
    std::fs::File::open(temp).and_then(|f| f.sync_all()).map_err(|e| e.to_string())
}

/// Links the finished file to `path` and syncs the directory; false when another process
/// starting at the same moment linked its own first (never replaced: that one is the database).
fn link(temp: &Path, path: &Path) -> std::io::Result<bool> {
    let linked = match std::fs::hard_link(temp, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        linked => linked.map(|()| true)?,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()?;
    Ok(linked)
}

fn wal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The temporary file and whatever SQLite left beside it.
fn remove_with_journals(temp: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = temp.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

#[cfg(test)]
mod tests {
    use super::new_file;

    #[test]
    fn only_a_url_that_creates_a_missing_file_is_built_here() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("jobs.db");
        let shown = missing.display();
        assert_eq!(new_file(&format!("sqlite://{shown}?mode=rwc")), Some(missing.clone()));
        assert_eq!(new_file(&format!("sqlite:{shown}?mode=rwc")), Some(missing.clone()));
        for other in [
            format!("sqlite://{shown}"),
            format!("sqlite://{shown}?mode=rw"),
            format!("sqlite://{shown}?mode=rwc&cache=shared"),
            "sqlite::memory:".to_owned(),
            "sqlite://:memory:?mode=rwc".to_owned(),
            "postgres://u@127.0.0.1/db".to_owned(),
        ] {
            assert_eq!(new_file(&other), None, "{other}");
        }
        std::fs::write(&missing, b"").expect("an empty file");
        assert_eq!(new_file(&format!("sqlite://{shown}?mode=rwc")), None, "a file there is opened as it is");
    }
}
