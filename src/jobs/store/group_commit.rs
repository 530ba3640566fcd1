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
//!
//! The transaction's `BEGIN` rides in its first statement's text and its `COMMIT` in its last's
//! (`BEGIN; …` and `…; COMMIT`: SQLite runs a text of several statements in turn, each binding
//! its own `$n`), so a batch of N statements is N round trips to sqlx's SQLite thread, not N + 2.
//! sqlx's own `begin()` and `commit()` were each a round trip that also held that thread until
//! the calling task took the answer (a rendezvous), so some four thread wake-ups a batch. The texts
//! are the same few each time, so each is prepared once and cached like any other statement.

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

/// Every statement of `batch` and one COMMIT; the first error rolls it all back. `BEGIN` is sent
/// in the first statement's text and `COMMIT` in the last's (see the module's doc).
async fn in_one_transaction(writer: &AnyPool, batch: &[Write]) -> Result<Vec<Vec<AnyRow>>, sqlx::Error> {
    let mut conn = writer.acquire().await?;
    let ran = run_batch(&mut conn, batch).await;
    if ran.is_err() {
        // The transaction may still be open (a failed statement, or a COMMIT that failed without
        // rolling back): roll it back before the connection is used again. When SQLite already
        // rolled it back, this ROLLBACK's own error ("no transaction is active") is expected.
        if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
            tracing::debug!(error = %e, "rolling back a failed grouped commit");
        }
    }
    // Dropped only with the runtime (the task is never aborted otherwise): a batch cut between
    // its BEGIN and COMMIT then goes with the process, its callers unanswered.
    ran
}

/// `batch`'s statements in turn, the first opening the transaction and the last committing it.
async fn run_batch(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    batch: &[Write],
) -> Result<Vec<Vec<AnyRow>>, sqlx::Error> {
    let last = batch.len().saturating_sub(1);
    let mut answers = Vec::with_capacity(batch.len());
    for (i, write) in batch.iter().enumerate() {
        let sql = match (i == 0, i == last) {
            (true, true) => Cow::Owned(format!("BEGIN; {}; COMMIT", write.sql)),
            (true, false) => Cow::Owned(format!("BEGIN; {}", write.sql)),
            (false, true) => Cow::Owned(format!("{}; COMMIT", write.sql)),
            (false, false) => Cow::Borrowed(&*write.sql),
        };
        answers.push(bind_all(sqlx::query(&sql), &write.values).fetch_all(&mut **conn).await?);
    }
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

    /// No transaction is left open on the writer, whichever statement of a batch failed: the
    /// first (its text carries the BEGIN), a middle one, or the last (its text carries the COMMIT).
    #[tokio::test]
    async fn a_failing_first_middle_or_last_write_leaves_no_transaction_open() {
        // 5 is stored first, so the write of 5 is the one refused.
        for xs in [[5, 1, 2], [1, 5, 2], [1, 2, 5]] {
            let pool = pool().await;
            sqlx::query("INSERT INTO t (x) VALUES (5)").execute(&pool).await.expect("insert");
            let group = GroupCommit::start(pool.clone());
            let answers =
                futures_util::future::join_all(xs.map(|x| group.write(INSERT, vec![Bind::from(x as i64)]))).await;
            let refused: Vec<bool> = answers.iter().map(Result::is_err).collect();
            assert_eq!(refused, xs.map(|x| x == 5), "{xs:?}: {:?}", shown(&answers));
            assert_eq!(stored(&pool).await, [1, 2, 5], "{xs:?}");
            // A transaction still open would refuse a second BEGIN.
            sqlx::query("BEGIN").execute(&pool).await.expect("no transaction left open");
            sqlx::query("ROLLBACK").execute(&pool).await.expect("rollback");
            // And later batches commit.
            let later =
                futures_util::future::join_all([7, 8].map(|x| group.write(INSERT, vec![Bind::from(x as i64)]))).await;
            assert!(later.iter().all(Result::is_ok), "{:?}", shown(&later));
        }
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
