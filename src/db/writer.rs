//! The ingest writer: one thread that commits many webhook pushes per transaction.
//!
//! Handlers hand over parsed pushes and wait for the reply; the reply comes only after the
//! transaction holding them has committed, so a 2xx still means "stored". Batching turns many
//! small commits into a few larger ones, and a single writer means no lock contention between
//! webhook requests. A second thread keeps the WAL file bounded, so the writer never stops
//! to copy pages into the database file.

use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::projects::secret_is_current;
use super::pushes::{Inserted, PreparedPush, insert};
use super::{Db, DbError};
use crate::secret::Secret;

/// Most deliveries committed in one transaction.
const MAX_BATCH: usize = 256;
/// Deliveries waiting for the writer before handlers wait to hand theirs over.
const QUEUE_CAPACITY: usize = 4096;
/// A WAL file larger than this is copied into the database by the checkpointer thread.
const WAL_COPY_THRESHOLD: u64 = 4 * 1024 * 1024;
/// A WAL file larger than this is truncated by the writer between two batches. Only a
/// checkpoint that runs while no write is under way can finish and let the WAL start over;
/// one that runs beside a busy writer never catches up, and the file grows without end.
const WAL_TRUNCATE_THRESHOLD: u64 = 24 * 1024 * 1024;
/// How often the WAL size is looked at.
const WAL_CHECK_INTERVAL: Duration = Duration::from_millis(100);

type Reply = oneshot::Sender<Result<Vec<Inserted>, DbError>>;

struct Job {
    project_id: i64,
    /// The secret the delivery was verified with; checked again inside the transaction.
    verified_with: Secret,
    pushes: Vec<PreparedPush>,
    reply: Reply,
}

/// The handle webhook handlers use to store pushes.
#[derive(Clone)]
pub struct IngestWriter {
    jobs: mpsc::Sender<Job>,
}

impl IngestWriter {
    /// Starts the writer thread. `after_commit` runs after every committed batch (it wakes the
    /// summary worker). The thread ends once every handle is dropped and the queue is drained.
    pub fn spawn(
        db: &Db,
        after_commit: impl Fn() + Send + 'static,
    ) -> Result<(IngestWriter, JoinHandle<()>), DbError> {
        let conn = db.dedicated_connection()?;
        // Checkpoints are the checkpointer thread's job, not something a commit waits for.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = Checkpointer::spawn(db)?;
        let wal_path = db.wal_path();
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let handle = std::thread::Builder::new()
            .name("ingest-writer".into())
            .spawn(move || run(conn, rx, checkpointer, &wal_path, after_commit))
            .map_err(|_| DbError::WriterGone)?;
        Ok((IngestWriter { jobs: tx }, handle))
    }

    /// Stores the pushes of one delivery atomically; returns once they are committed.
    /// Refuses with `StaleSecret` (or `NotFound`) when `verified_with` is no longer the
    /// project's secret, so a delivery checked against a cached secret is never stored wrongly.
    pub async fn write(
        &self,
        project_id: i64,
        verified_with: Secret,
        pushes: Vec<PreparedPush>,
    ) -> Result<Vec<Inserted>, DbError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                project_id,
                verified_with,
                pushes,
                reply,
            })
            .await
            .map_err(|_| DbError::WriterGone)?;
        answer.await.map_err(|_| DbError::WriterGone)?
    }
}

fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    checkpointer: Checkpointer,
    wal_path: &std::path::Path,
    after_commit: impl Fn(),
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_wal_check = Instant::now();
    let mut truncate_due = false;
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch);
        after_commit();
        checkpointer.nudge();
        // Once due, retried after every batch: a checkpoint already running elsewhere makes
        // this one answer busy at once instead of waiting.
        if truncate_due || last_wal_check.elapsed() >= WAL_CHECK_INTERVAL {
            last_wal_check = Instant::now();
            truncate_due =
                wal_size(wal_path) >= WAL_TRUNCATE_THRESHOLD && !checkpoint(&conn, "TRUNCATE");
        }
    }
    checkpointer.finish();
}

/// Commits every job of the batch in one transaction and replies to each after the commit.
/// Expected refusals (a rotated secret, a deleted project) are found before a job writes
/// anything, so they need no savepoint; anything unexpected rolls back the whole batch, which
/// is then stored one delivery per transaction so one bad delivery cannot sink the others.
fn commit_batch(conn: &mut Connection, batch: &mut Vec<Job>) {
    let results = match store_batch(conn, batch) {
        Ok(results) => results,
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), jobs = batch.len(), "ingest batch failed; storing its deliveries one by one");
            batch.iter().map(|job| store_alone(conn, job)).collect()
        }
    };
    for (job, result) in batch.drain(..).zip(results) {
        // The handler may have gone (client hung up); the push is stored either way.
        let _ = job.reply.send(result);
    }
}

type JobResult = Result<Vec<Inserted>, DbError>;

fn store_batch(conn: &mut Connection, batch: &[Job]) -> Result<Vec<JobResult>, DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        match store(&tx, job) {
            Err(e @ (DbError::StaleSecret | DbError::NotFound)) => results.push(Err(e)),
            Err(e) => return Err(e),
            Ok(inserted) => results.push(Ok(inserted)),
        }
    }
    tx.commit()?;
    Ok(results)
}

fn store_alone(conn: &mut Connection, job: &Job) -> JobResult {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let inserted = store(&tx, job)?;
    tx.commit()?;
    Ok(inserted)
}

fn store(conn: &Connection, job: &Job) -> JobResult {
    if !secret_is_current(conn, job.project_id, &job.verified_with)? {
        return Err(DbError::StaleSecret);
    }
    job.pushes
        .iter()
        .map(|p| insert(conn, job.project_id, p))
        .collect()
}

/// The thread that moves WAL pages into the database file and keeps the WAL bounded.
struct Checkpointer {
    nudges: SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    fn spawn(db: &Db) -> Result<Checkpointer, DbError> {
        let conn = db.dedicated_connection()?;
        // A truncating checkpoint holds the write lock while it waits for readers: give up
        // soon and try again later rather than keep webhooks waiting.
        conn.busy_timeout(Duration::from_millis(200))?;
        let wal_path = db.wal_path();
        let (nudges, wakeups) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("wal-checkpointer".into())
            .spawn(move || {
                let mut last = Instant::now();
                loop {
                    let wakeup = wakeups.recv_timeout(WAL_CHECK_INTERVAL);
                    let ended = matches!(wakeup, Err(RecvTimeoutError::Disconnected));
                    let idle = matches!(wakeup, Err(RecvTimeoutError::Timeout));
                    if ended || idle || last.elapsed() >= WAL_CHECK_INTERVAL {
                        last = Instant::now();
                        let size = wal_size(&wal_path);
                        if (ended || idle) && size > 0 {
                            // No commit for a while: nothing competes, so give the space back.
                            checkpoint(&conn, "TRUNCATE");
                        } else if (WAL_COPY_THRESHOLD..WAL_TRUNCATE_THRESHOLD).contains(&size) {
                            // A passive checkpoint copies pages without blocking the writer,
                            // which then has little left to copy when it truncates. Past the
                            // truncate threshold it stays out of the writer's way, or the
                            // writer's checkpoint would find it running and answer busy.
                            checkpoint(&conn, "PASSIVE");
                        }
                    }
                    if ended {
                        return;
                    }
                }
            })
            .map_err(|_| DbError::WriterGone)?;
        Ok(Checkpointer { nudges, thread })
    }

    fn nudge(&self) {
        let _ = self.nudges.try_send(());
    }

    /// Runs a last checkpoint and waits for the thread.
    fn finish(self) {
        drop(self.nudges);
        let _ = self.thread.join();
    }
}

fn wal_size(wal_path: &std::path::Path) -> u64 {
    std::fs::metadata(wal_path).map(|m| m.len()).unwrap_or(0)
}

/// Runs `PRAGMA wal_checkpoint(mode)`; false when it was busy and should be tried again.
fn checkpoint(conn: &Connection, mode: &str) -> bool {
    let result = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        r.get::<_, i64>(0)
    });
    match result {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => {
            tracing::warn!(error = %e, mode, "WAL checkpoint failed");
            false
        }
    }
}
