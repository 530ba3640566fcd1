//! Group commit on SQLite's one writer: single autocommit statements sent by concurrent callers
//! (a sync job's claimed INSERT, its finishing UPDATE, a queued job's INSERT) run together in one
//! transaction and one commit, instead of a commit each.
//!
//! Why: in WAL mode every commit appends each page it changed as a frame of its own, with a
//! header and a checksum, under its own locks. Concurrent jobs change many of the same pages (the
//! indexes' leaves, the events' table and index, `sqlite_sequence`), so a commit each wrote those
//! pages once per job: some 17 pages and 55 `pwrite`s per sync request (BENCHMARKS.md, issue 22).
//!
//! How: a task owns the turn at the writer. It takes the first statement waiting and every other
//! one already queued behind it (they arrived while the previous commit ran), runs them in one
//! transaction and commits. Nothing is acknowledged before the commit that holds it: each caller's
//! answer is sent only after COMMIT succeeded, so a crash at any point leaves a caller either
//! unanswered (its row not stored, or stored and recoverable as before) or answered with a row that
//! is stored. When any statement of a batch fails, or its COMMIT does, the batch is rolled back and
//! each statement runs again alone, as it would have without batching, so one caller's failure
//! (a constraint, a full disk) is that caller's answer only.
//!
//! A lone statement (no other waiting) runs as before, in autocommit: an idle server pays nothing.

use std::borrow::Cow;

use sqlx::AnyPool;
use sqlx::any::AnyRow;
use tokio::sync::{mpsc, oneshot};

use super::bind::{Bind, bind_all};

/// At most this many statements share a commit: a bound on how long the writer is held (other
/// writers, the workers' claims and heartbeats, queue behind a batch) and on what one failure
/// makes run again.
const MOST: usize = 64;

/// One statement waiting for its commit, and where its rows go once committed.
struct Write {
    sql: Cow<'static, str>,
    values: Vec<Bind>,
    answer: oneshot::Sender<Result<Vec<AnyRow>, sqlx::Error>>,
}

/// The handle callers send statements through; cheap to clone. The task behind it ends once
/// every handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Write>,
}

impl GroupCommit {
    /// Starts the task that commits what is sent to `writer` (a pool of one connection: the
    /// file's one writer). Needs a tokio runtime.
    pub fn start(writer: AnyPool) -> GroupCommit {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(commit_in_groups(writer, waiting));
        GroupCommit { queue }
    }

    /// Runs `sql` with `values` to completion and returns its rows once the transaction that holds
    /// it is committed. A caller that stops waiting does not stop the statement: as with a
    /// statement sent to the database directly, it may still be stored.
    pub async fn write(
        &self,
        sql: impl Into<Cow<'static, str>>,
        values: Vec<Bind>,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        let write = Write { sql: sql.into(), values, answer };
        if self.queue.send(write).is_err() {
            return Err(sqlx::Error::PoolClosed);
        }
        // Dropped unanswered only if the task ended (the runtime shutting down).
        answered.await.unwrap_or(Err(sqlx::Error::PoolClosed))
    }
}

/// The task: batch after batch, each what was waiting when the previous one ended.
async fn commit_in_groups(writer: AnyPool, mut waiting: mpsc::UnboundedReceiver<Write>) {
    let mut batch = Vec::with_capacity(MOST);
    while waiting.recv_many(&mut batch, MOST).await > 0 {
        if let [_] = batch.as_slice() {
            let Some(write) = batch.pop() else { continue };
            let rows = alone(&writer, &write).await;
            let _ = write.answer.send(rows);
        } else {
            together(&writer, &mut batch).await;
        }
        batch.clear();
    }
}

/// One statement in autocommit, run to completion so a failed commit is its error (see
/// `submit::only_row`).
async fn alone(writer: &AnyPool, write: &Write) -> Result<Vec<AnyRow>, sqlx::Error> {
    bind_all(sqlx::query(&write.sql), &write.values).fetch_all(writer).await
}

/// Runs `batch` in one transaction and answers each statement after its COMMIT; on any failure
/// rolls it back and runs each alone (see the module's doc).
async fn together(writer: &AnyPool, batch: &mut Vec<Write>) {
    tracing::debug!(writes = batch.len(), "one commit for several writes");
    match in_one_transaction(writer, batch).await {
        Ok(answers) => {
            for (write, rows) in batch.drain(..).zip(answers) {
                let _ = write.answer.send(Ok(rows));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, writes = batch.len(), "a grouped commit failed; each write runs alone");
            for write in batch.drain(..) {
                let rows = alone(writer, &write).await;
                let _ = write.answer.send(rows);
            }
        }
    }
}

/// Every statement of `batch` and one COMMIT; the first error rolls it all back (a transaction
/// dropped uncommitted is rolled back by sqlx before its connection is used again).
async fn in_one_transaction(writer: &AnyPool, batch: &[Write]) -> Result<Vec<Vec<AnyRow>>, sqlx::Error> {
    let mut tx = writer.begin().await?;
    let mut answers = Vec::with_capacity(batch.len());
    for write in batch {
        answers.push(bind_all(sqlx::query(&write.sql), &write.values).fetch_all(&mut *tx).await?);
    }
    tx.commit().await?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of one connection on a private in-memory database, with a table whose `x` is unique.
    async fn pool() -> AnyPool {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect("sqlite::memory:").await.expect("pool");
        sqlx::query("CREATE TABLE t (x INTEGER UNIQUE NOT NULL)").execute(&pool).await.expect("table");
        pool
    }

    /// Each answer as its error's text, or the rows' count (rows have no `Debug`).
    fn shown(answers: &[Result<Vec<AnyRow>, sqlx::Error>]) -> Vec<Result<usize, String>> {
        answers.iter().map(|a| a.as_ref().map(Vec::len).map_err(ToString::to_string)).collect()
    }

    async fn stored(pool: &AnyPool) -> Vec<i64> {
        let rows = sqlx::query("SELECT x FROM t ORDER BY x").fetch_all(pool).await.expect("select");
        rows.iter().map(|row| sqlx::Row::get(row, "x")).collect()
    }

    const INSERT: &str = "INSERT INTO t (x) VALUES ($1) RETURNING x";

    // On the current-thread runtime the task runs only once the test awaits, so the writes sent
    // below all wait in the queue first and are taken as one batch.
    #[tokio::test]
    async fn a_batch_is_committed_and_each_caller_gets_its_own_rows() {
        let pool = pool().await;
        let group = GroupCommit::start(pool.clone());
        let answers =
            futures_util::future::join_all((1..=5).map(|x| group.write(INSERT, vec![Bind::from(x as i64)]))).await;
        for (x, rows) in (1..=5).zip(answers) {
            let rows = rows.expect("stored");
            assert_eq!(rows.len(), 1);
            assert_eq!(sqlx::Row::get::<i64, _>(&rows[0], "x"), x);
        }
        assert_eq!(stored(&pool).await, [1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn one_failing_write_fails_alone_and_the_rest_are_stored() {
        let pool = pool().await;
        let group = GroupCommit::start(pool.clone());
        let writes = [1, 2, 1, 3].map(|x| group.write(INSERT, vec![Bind::from(x as i64)]));
        let answers = futures_util::future::join_all(writes).await;
        assert!(answers[0].is_ok() && answers[1].is_ok() && answers[3].is_ok(), "{:?}", shown(&answers));
        let refused = &shown(&answers)[2];
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("UNIQUE")),
            "a second 1 breaks the unique index: {refused:?}"
        );
        assert_eq!(stored(&pool).await, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_closed_database_is_every_callers_error() {
        let pool = pool().await;
        let group = GroupCommit::start(pool.clone());
        pool.close().await;
        let answers =
            futures_util::future::join_all([1, 2].map(|x| group.write(INSERT, vec![Bind::from(x as i64)]))).await;
        assert!(answers.iter().all(Result::is_err), "{:?}", shown(&answers));
    }
}
