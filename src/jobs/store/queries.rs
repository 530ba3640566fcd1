//! Reading jobs: one by id, and listings filtered by status, kind and project with cursor
//! pagination.

use serde_json::Value;
use sqlx::Row;

use super::rows::{COLUMNS, JobRow, job_row, json, with_plan};
use super::{Store, StoreError};
use crate::generation::Kind;
use crate::jobs::state::{JobStatus, status_text};

/// The shared queue at one moment, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    pub queued: i64,
    pub processing: i64,
    /// When the oldest queued job was submitted (Unix ms), if any is queued.
    pub oldest_queued_at: Option<i64>,
}

/// Listing filters (already validated by the API).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<JobStatus>,
    pub kind: Option<Kind>,
    pub project_id: Option<String>,
    /// Only jobs older than this `seq` (the cursor).
    pub before: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// The job `id`, or `None` when there is none.
    pub async fn get(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT plan, {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(with_plan).transpose()
    }

    /// The answer of job `id` when it is a `kind` job that succeeded; `None` otherwise (no such
    /// job, another kind, not succeeded). One row by its key, the output column alone.
    pub async fn succeeded_output(&self, id: &str, kind: Kind) -> Result<Option<Value>, StoreError> {
        const OUTPUT: &str =
            concat!("SELECT output FROM jobs WHERE id = $1 AND kind = $2 AND status = '", status_text!(Succeeded), "'");
        let row = sqlx::query(OUTPUT).bind(id).bind(kind.as_str()).fetch_optional(&self.pool).await?;
        let output: Option<String> = match row {
            Some(row) => row.try_get("output")?,
            None => None,
        };
        Ok(output.map(|text| json(Some(text))))
    }

    /// Newest first, without their plans (the `plan` column is not even read).
    pub async fn list(&self, filter: &Filter) -> Result<Vec<JobRow>, StoreError> {
        let (sql, texts) = list_sql(filter);
        let mut query = sqlx::query(&sql);
        for text in texts {
            query = query.bind(text);
        }
        if let Some(before) = filter.before {
            query = query.bind(before);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(job_row).collect()
    }

    /// Jobs queued and processing, and the oldest queued job's submission time. Walks the
    /// unfinished jobs only, which the queue limits bound (`MVGEN_MAX_QUEUED_JOBS`); finished
    /// ones, however many retention keeps, are never counted.
    pub async fn queue_depth(&self) -> Result<QueueDepth, StoreError> {
        let sql = QUEUE_DEPTH;
        let mut depth = QueueDepth::default();
        for row in sqlx::query(sql).fetch_all(&self.pool).await? {
            let status: String = row.try_get("status")?;
            let count: i64 = row.try_get("n")?;
            if status == JobStatus::Queued.as_str() {
                depth.queued = count;
                depth.oldest_queued_at = row.try_get("oldest")?;
            } else {
                depth.processing = count;
            }
        }
        Ok(depth)
    }
}

/// A listing's statement and the texts bound to it, in order (`before`, if any, is bound last).
pub(super) fn list_sql(filter: &Filter) -> (String, Vec<&str>) {
    let mut clauses = Vec::new();
    // The status is one of five words, written into the text rather than bound: the jobs' status
    // indexes are partial (migrations/jobs/0017_partial_job_indexes.sql), and an engine uses one
    // only when the statement itself names the rows it holds. A finished status also names
    // `completed_at`, which every finished job has.
    if let Some(status) = filter.status {
        let finished = if status.is_final() { " AND completed_at IS NOT NULL" } else { "" };
        clauses.push(format!("status = '{}'{finished}", status.as_str()));
    }
    let mut texts = Vec::new();
    let filters = [("kind", filter.kind.map(Kind::as_str)), ("project_id", filter.project_id.as_deref())];
    for (column, value) in filters {
        if let Some(value) = value {
            texts.push(value);
            clauses.push(format!("{column} = ${}", texts.len()));
        }
    }
    if filter.before.is_some() {
        clauses.push(format!("seq < ${}", texts.len() + 1));
    }
    let clause = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    (format!("SELECT {COLUMNS} FROM jobs {clause} ORDER BY seq DESC LIMIT {}", filter.limit), texts)
}

/// Queued and processing jobs by status. Written as the partial index `jobs_runnable` is (an
/// `OR`, not `IN`), so SQLite sees that the index holds every row asked for.
pub(super) const QUEUE_DEPTH: &str = concat!(
    "SELECT status, count(*) AS n, min(created_at) AS oldest FROM jobs WHERE (status = '",
    status_text!(Queued),
    "' OR status = '",
    status_text!(Processing),
    "') GROUP BY status"
);
