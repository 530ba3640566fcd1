//! The statements that look for a few jobs among many find them through an index, never by reading
//! the whole `jobs` table. The jobs' secondary indexes are partial (they hold only the rows their
//! queries ask for: migrations/jobs/0017_partial_job_indexes.sql), and SQLite uses a partial index
//! only when a statement's own `WHERE` proves it holds every row wanted; a statement written
//! another way (`status IN (…)` for an index made with `OR`, a status bound as `$1`) would read
//! the table instead, unnoticed by any other test. Each statement here is the very text the store
//! runs, asked for its plan on the schema the migrations make.

use sqlx::{AnyConnection, Connection};

use super::bind::{Bind, bind_all};
use super::migrate::migrator;
use super::queries::{Filter, QUEUE_DEPTH, list_sql};
use super::{Dialect, claims, quota, retention};
use crate::jobs::state::JobStatus;

/// Every statement that must not read the whole table, named, with values for its parameters.
fn statements() -> Vec<(String, String, Vec<Bind>)> {
    let claim = || vec![Bind::from("claim"), Bind::from(1_i64), Bind::from(0_i64)];
    let mut all = vec![
        ("claim".to_owned(), claims::claim_sql(Dialect::Sqlite, false), claim()),
        ("claim by id".to_owned(), claims::claim_sql(Dialect::Sqlite, true), {
            let mut binds = claim();
            binds.push(Bind::from("id"));
            binds
        }),
        (
            "queued count".to_owned(),
            quota::QUEUED.to_owned(),
            vec![Bind::from(10_i64), Bind::from("scope"), Bind::from(10_i64)],
        ),
        ("queue depth".to_owned(), QUEUE_DEPTH.to_owned(), vec![]),
        ("retention".to_owned(), retention::DUE.to_owned(), vec![Bind::from(1_i64), Bind::from(10_i64)]),
    ];
    let project = || Some("p".to_owned());
    let mut filters: Vec<Filter> =
        JobStatus::ALL.iter().map(|&status| Filter { status: Some(status), limit: 20, ..Filter::default() }).collect();
    filters.push(Filter { project_id: project(), limit: 20, ..Filter::default() });
    filters.push(Filter { project_id: project(), before: Some(9), limit: 20, ..Filter::default() });
    filters.push(Filter { status: Some(JobStatus::Failed), project_id: project(), limit: 20, ..Filter::default() });
    for filter in filters {
        let (sql, texts) = list_sql(&filter);
        let mut binds: Vec<Bind> = texts.into_iter().map(Bind::from).collect();
        binds.extend(filter.before.map(Bind::from));
        all.push((format!("list {:?} {:?}", filter.status, filter.project_id), sql, binds));
    }
    all
}

#[tokio::test]
async fn no_statement_that_wants_a_few_jobs_reads_them_all() {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect("sqlite::memory:").await.expect("an in-memory database");
    migrator(Dialect::Sqlite).run_direct(&mut conn).await.expect("the migrations");
    let mut scans = Vec::new();
    for (name, sql, binds) in statements() {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let rows = bind_all(sqlx::query(&explain), &binds).fetch_all(&mut conn).await.expect(&name);
        let steps: Vec<String> = rows.iter().map(|row| sqlx::Row::get(row, "detail")).collect();
        // "SCAN jobs" is the table read in full; "SEARCH jobs USING …" an index or key lookup.
        if steps.iter().any(|step| step == "SCAN jobs" || step.starts_with("SCAN jobs ")) {
            scans.push(format!("{name}: {steps:?}"));
        }
    }
    let _ = conn.close().await;
    assert!(scans.is_empty(), "statements reading every job:\n{}", scans.join("\n"));
}
