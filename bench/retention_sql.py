#!/usr/bin/env python3
"""Issue 21 point 4 (BENCHMARKS.md "Retention and queue limits"): the SQL the queue check and the
purge run, timed on SQLite through Python's sqlite3 (the C library; per-call overhead ~5 us).

    MV_OUTPUT_DIR=/tmp/rq target/debug/mvgen serve --addr 127.0.0.1:0 &  # migrate, then stop it
    python3 bench/retention_sql.py /tmp/rq/jobs.db

The file is copied, never changed. Prints the bounded queued count (the statement of
`Store::queued`) per queue size, and one purge batch (`Store::purge_finished`) of 100 and 200
finished jobs with 8 events and an idempotency key each.
"""
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid

COUNT = ("SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE status = 'queued' LIMIT ?) q) AS total, "
         "(SELECT count(*) FROM (SELECT 1 FROM jobs WHERE api_key_scope = ? AND status = 'queued' LIMIT ?) s)")
DUE = ("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status IN ('succeeded', 'failed', 'canceled') "
       "AND completed_at < ? LIMIT ?) RETURNING id")


def jobs(db, n, status, scope=None, completed=None):
    rows = [(str(uuid.uuid4()), status, '{"plan":"' + "x" * 2000 + '"}', scope, completed) for _ in range(n)]
    db.execute("BEGIN")
    db.executemany("INSERT INTO jobs (id, kind, status, plan, config_flavor, created_at, run_after, attempts, "
                   "cancel_requested, api_key_scope, completed_at) VALUES (?, 'scenes', ?, ?, '{}', 1, 1, 0, 0, ?, ?)",
                   rows)
    db.execute("COMMIT")
    return [r[0] for r in rows]


def main(path):
    work = tempfile.mkdtemp()
    copy = shutil.copy(path, f"{work}/jobs.db")
    db = sqlite3.connect(copy, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    queued = 0
    for size in (0, 100, 1000, 10000):
        jobs(db, size - queued, "queued", scope="k" if size <= 1000 else None)
        queued = size
        t0, n = time.perf_counter(), 500
        for _ in range(n):
            db.execute(COUNT, (10000, "k", 1000)).fetchone()
        print(f"queued count, {size:>5} queued: {(time.perf_counter() - t0) / n * 1e6:8.1f} us")
    for batch in (100, 200):
        ids = jobs(db, batch * 10, "succeeded", completed=5)
        db.execute("BEGIN")
        db.executemany("INSERT INTO job_events (job_id, at, kind, data) VALUES (?, 1, 'progress', '{}')",
                       [(i,) for i in ids for _ in range(8)])
        db.executemany("INSERT INTO idempotency (key, fingerprint, job_id, created_at) VALUES (?, 'f', ?, 1)",
                       [(i, i) for i in ids])
        db.execute("COMMIT")
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            got = [r[0] for r in db.execute(DUE, (10, batch)).fetchall()]
            marks = ", ".join("?" * len(got))
            for table in ("job_events", "job_runs", "idempotency"):
                db.execute(f"DELETE FROM {table} WHERE job_id IN ({marks})", got)
            db.execute("COMMIT")
            times.append((time.perf_counter() - t0) * 1e3)
        print(f"purge batch of {batch}: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
    shutil.rmtree(work)


if __name__ == "__main__":
    main(sys.argv[1])
