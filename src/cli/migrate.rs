//! `mvgen migrate`: applies the jobs database's embedded migrations and exits, so the role that
//! runs `serve` and `worker` needs no DDL rights (docs/deploy.md, "Database roles").

use anyhow::Context as _;

use super::{Outcome, lifecycle};
use crate::jobs::store::{Store, redact};
use crate::server::Settings;

/// Migrates `MVGEN_DATABASE_URL` to this build's schema; running it again changes nothing.
pub fn migrate() -> anyhow::Result<Outcome> {
    let settings = Settings::from_env(None).context("invalid settings")?;
    lifecycle::create_sqlite_dir(&settings)?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let name = lifecycle::application_name("migrate", None);
    let migrated = runtime.block_on(Store::migrate(&settings.database_url, Some(&name))).map_err(anyhow::Error::msg)?;
    let database = redact(&settings.database_url);
    match migrated.applied.as_slice() {
        [] => println!("{database}: schema already at migration {}; nothing to apply", migrated.version),
        applied => {
            let list = applied.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
            println!("{database}: applied migration {list}; schema now at migration {}", migrated.version);
        }
    }
    Ok(Outcome::Success)
}
