//! The ingest writer: one thread that commits many webhook pushes per transaction.
//!
//! Handlers hand over parsed pushes and wait for the reply; the reply comes only after the
//! transaction holding them has committed and the log holding it is synced to disk, so a 2xx
//! means "stored", even across a power cut. Batching turns many
//! small commits into a few larger ones, and a single writer means no lock contention between
//! webhook requests. A second thread copies WAL pages into the database file while the writer
//! keeps committing, so the writer only stops, briefly, when the log is due to start over.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::notifications::{self, DeliveryRecord};
use super::projects::secret_is_current;
use super::pushes::{Inserted, PreparedPush, insert};
use super::{Db, DbError};
use crate::background::{Background, OnStop};
use crate::domain::SummaryStatus;
use crate::secret::Secret;

/// Most deliveries committed in one transaction.
const MAX_BATCH: usize = 256;
/// Longest a batch is held open for deliveries that are still being verified. Every commit
/// rewrites the pages its pushes share (index leaves, counters) and wakes threads, so under
/// load batches of about 20 cost less per delivery than the batches of 5 that formed without
/// waiting; with nothing on its way the writer commits at once.
const GATHER_WINDOW: Duration = Duration::from_millis(2);
/// A WAL holding more than this is copied into the database by the checkpointer thread.
const WAL_COPY_THRESHOLD: u64 = 4 * 1024 * 1024;
/// A WAL holding more than this is checkpointed by the writer itself between two batches, so
/// the next batch starts the log over from its first frame. Only a checkpoint that runs while
/// no write is under way can catch up; one beside a busy writer never does, and the log grows
/// without end. The file is then written over in place rather than truncated: a WAL that
/// shrinks and regrows makes every frame land on a freshly allocated, zeroed page. The writer
/// waits for a passive copy of the checkpointer's that is under way rather than commit beside
/// it (see [`Checkpointer::restart_log`]), so the log stops growing at this plus one batch.
const WAL_RESTART_THRESHOLD: u64 = 24 * 1024 * 1024;
/// How often the checkpointer looks at the WAL, and how long without a commit counts as idle.
const WAL_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// The checkpointer's pause between two passive checkpoints while the writer is busy.
const WAL_COPY_PAUSE: Duration = Duration::from_millis(20);

thread_local! {
    /// Bytes in the WAL after the last commit on this thread, as SQLite's WAL hook reports them.
    static WAL_BYTES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The writer connection's WAL hook; it runs on the writer thread, inside each commit.
fn record_wal_size(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    // A frame is a page plus its 24-byte header; pages are 4 KiB unless an old file says else,
    // and the thresholds need no more precision than that.
    WAL_BYTES.set(u64::try_from(frames).unwrap_or(0) * (4096 + 24));
    Ok(())
}

/// The outcome, and the pushes handed back: the thread that made them frees them, so the
/// writer never waits on the allocator's locks for another thread's memory.
type Reply = oneshot::Sender<(JobResult, Vec<PreparedPush>)>;

/// What the writer thread is handed: a webhook's pushes, or a delivery thread's outcomes.
enum Work {
    Pushes(Job),
    Deliveries(DeliveryJob),
}

/// Outcomes of notification deliveries, committed with the next batch of pushes: the one
/// writer then holds SQLite's write lock alone, where the delivery threads' own transactions
/// made it wait out SQLite's busy handler (sleeps of a millisecond and more) beside them.
struct DeliveryJob {
    records: Vec<DeliveryRecord>,
    reply: oneshot::Sender<Result<(), DbError>>,
}

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
    // Unbounded: every queued job is a request waiting for its reply, so the queue is bounded by
    // the requests in flight, and handing over never blocks an async thread.
    jobs: Sender<Work>,
    incoming: Arc<AtomicUsize>,
}

/// A delivery announced to the writer while it is being verified; see [`IngestWriter::incoming`].
pub struct Incoming(Arc<AtomicUsize>);

impl Drop for Incoming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl IngestWriter {
    /// Starts the writer thread. `after_commit` runs after every batch that stored a new push,
    /// saying whether one waits for the summary worker and whether one's summary is already
    /// final (their notifications are due). The thread ends once every handle is dropped and
    /// the queue is drained.
    pub fn spawn(
        db: &Db,
        after_commit: impl Fn(Committed) + Send + 'static,
    ) -> Result<(IngestWriter, JoinHandle<()>), DbError> {
        let conn = db.dedicated_connection()?;
        // A 2xx promises the push survives a power cut, so every commit here syncs the WAL
        // before it returns, and only then are the handlers answered: one fsync per batch,
        // not per delivery. (The other connections keep NORMAL; see `configure`.)
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Checkpoints are the checkpointer thread's job, not something a commit waits for.
        // (This pragma sets the WAL hook too, so it comes before ours.)
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.wal_hook(Some(record_wal_size));
        let checkpointer = Checkpointer::spawn(db)?;
        let changed = Arc::clone(&db.changed);
        let (tx, rx) = channel();
        let incoming = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            conn,
            jobs: rx,
            incoming: Arc::clone(&incoming),
            checkpointer,
            changed,
        };
        let handle = std::thread::Builder::new()
            .name("ingest-writer".into())
            .spawn(move || writer.run(after_commit))
            .map_err(|_| DbError::WriterGone)?;
        Ok((IngestWriter { jobs: tx, incoming }, handle))
    }

    /// Announces a delivery that will probably be written soon, so a batch being gathered waits
    /// for it. Take it before verifying; it counts until it is passed to [`IngestWriter::write`]
    /// or dropped.
    pub fn incoming(&self) -> Incoming {
        self.incoming.fetch_add(1, Ordering::Relaxed);
        Incoming(Arc::clone(&self.incoming))
    }

    /// Stores the pushes of one delivery atomically; returns once they are committed.
    /// Refuses with `StaleSecret` (or `NotFound`) when `verified_with` is no longer the
    /// project's secret, so a delivery checked against a cached secret is never stored wrongly.
    pub async fn write(
        &self,
        announced: Incoming,
        project_id: i64,
        verified_with: Secret,
        pushes: Vec<PreparedPush>,
    ) -> Result<Vec<Inserted>, DbError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            project_id,
            verified_with,
            pushes,
            reply,
        };
        self.jobs
            .send(Work::Pushes(job))
            .map_err(|_| DbError::WriterGone)?;
        drop(announced);
        let (result, _handed_back) = answer.await.map_err(|_| DbError::WriterGone)?;
        result
    }
}

impl IngestWriter {
    /// Records delivery outcomes in the writer's next transaction and returns once it has
    /// committed; blocking, for the delivery threads.
    pub fn record_deliveries(&self, records: Vec<DeliveryRecord>) -> Result<(), DbError> {
        if records.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Work::Deliveries(DeliveryJob { records, reply }))
            .map_err(|_| DbError::WriterGone)?;
        answer.blocking_recv().map_err(|_| DbError::WriterGone)?
    }
}

struct Writer {
    conn: Connection,
    jobs: Receiver<Work>,
    incoming: Arc<AtomicUsize>,
    checkpointer: Checkpointer,
    /// The change log's signal: a stored push is a change for the live stream.
    changed: Arc<tokio::sync::Notify>,
}

impl Writer {
    fn run(mut self, after_commit: impl Fn(Committed)) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut deliveries = Vec::new();
        while self.gather(&mut batch, &mut deliveries) {
            let committed = commit_batch(&mut self.conn, &mut batch, &mut deliveries);
            if committed.stored {
                self.changed.notify_one();
            }
            if committed.queued || committed.finished {
                after_commit(committed);
            }
            let wal_bytes = WAL_BYTES.get();
            self.checkpointer.committed(wal_bytes);
            // Until it succeeds, tried again after every batch: readers still on old frames
            // keep those from being copied.
            if wal_bytes >= WAL_RESTART_THRESHOLD && self.checkpointer.restart_log(&self.conn) {
                // The next commit starts the log over, and the hook reports the new size.
                WAL_BYTES.set(0);
            }
        }
        self.checkpointer.finish();
    }

    /// Waits for a job, then takes every job already queued and those announced as on their
    /// way, for up to [`GATHER_WINDOW`]. False once every handle is gone and the queue is empty.
    fn gather(&self, batch: &mut Vec<Job>, deliveries: &mut Vec<DeliveryJob>) -> bool {
        let Ok(first) = self.jobs.recv() else {
            return false;
        };
        let mut take = |work| match work {
            Work::Pushes(job) => batch.push(job),
            Work::Deliveries(job) => deliveries.push(job),
        };
        take(first);
        let deadline = Instant::now() + GATHER_WINDOW;
        let mut taken = 1;
        while taken < MAX_BATCH {
            if let Ok(job) = self.jobs.try_recv() {
                take(job);
                taken += 1;
                continue;
            }
            if self.incoming.load(Ordering::Relaxed) == 0 {
                break;
            }
            match self
                .jobs
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(job) => {
                    take(job);
                    taken += 1;
                }
                Err(_) => break,
            }
        }
        true
    }
}

/// What a committed batch stored that others wait for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// A new push was stored: a change for the live stream.
    pub stored: bool,
    /// A new push waits for the summary worker.
    pub queued: bool,
    /// A new push's summary is final already (the builtin one): its notifications are due.
    pub finished: bool,
}

/// Commits every job of the batch in one transaction and replies to each after the commit.
/// Expected refusals (a rotated secret, a deleted project) are found before a job writes
/// anything, so they need no savepoint; anything unexpected rolls back the whole batch, which
/// is then stored one delivery per transaction so one bad delivery cannot sink the others.
fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Job>,
    deliveries: &mut Vec<DeliveryJob>,
) -> Committed {
    let (results, recorded) = match store_batch(conn, batch, deliveries) {
        Ok(results) => (results, Vec::new()),
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), jobs = batch.len(), "ingest batch failed; storing its deliveries one by one");
            let results = batch.iter().map(|job| store_alone(conn, job)).collect();
            let recorded = deliveries
                .iter()
                .map(|job| record_alone(conn, job))
                .collect();
            (results, recorded)
        }
    };
    let mut recorded = recorded.into_iter();
    for job in deliveries.drain(..) {
        // The delivery thread may be gone (shutdown); the outbox then sends again.
        let _ = job.reply.send(recorded.next().unwrap_or(Ok(())));
    }
    let mut committed = Committed::default();
    for (job, result) in batch.drain(..).zip(results) {
        if let Ok(inserted) = &result {
            for (i, p) in inserted.iter().zip(&job.pushes) {
                if matches!(i, Inserted::New(_)) {
                    committed.stored = true;
                    committed.queued |= p.status == SummaryStatus::Pending;
                    committed.finished |= p.status != SummaryStatus::Pending;
                }
            }
        }
        // The handler may have gone (client hung up); the push is stored either way.
        let _ = job.reply.send((result, job.pushes));
    }
    committed
}

type JobResult = Result<Vec<Inserted>, DbError>;

fn store_batch(
    conn: &mut Connection,
    batch: &[Job],
    deliveries: &[DeliveryJob],
) -> Result<Vec<JobResult>, DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        match store(&tx, job) {
            Err(e @ (DbError::StaleSecret | DbError::NotFound)) => results.push(Err(e)),
            Err(e) => return Err(e),
            Ok(inserted) => results.push(Ok(inserted)),
        }
    }
    for job in deliveries {
        notifications::record_in(&tx, &job.records)?;
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

/// One delivery thread's outcomes from a batch that failed, in a transaction of their own.
fn record_alone(conn: &mut Connection, job: &DeliveryJob) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    notifications::record_in(&tx, &job.records)?;
    tx.commit()?;
    Ok(())
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

/// The thread that moves WAL pages into the database file and gives the space back when idle.
struct Checkpointer {
    /// Batches committed so far; the checkpointer looks at it to tell a busy writer from an idle
    /// one without being woken by every commit.
    commits: Arc<AtomicU64>,
    /// Bytes in the WAL after the last commit.
    wal_bytes: Arc<AtomicU64>,
    /// Held by whichever thread is checkpointing. SQLite answers a checkpoint that meets another
    /// one busy at once, without a busy handler to wait with, so without this the writer went
    /// on committing while the checkpointer's copy (and its sync of the database file) ran, and
    /// retried after each batch: the log grew by every batch committed meanwhile, by however
    /// long the copy took. With durable acks each batch also syncs the log, beside the copy's
    /// sync of the database file, so copies take longer (one full bench peaked at 65 MB).
    copying: Arc<Mutex<()>>,
    thread: Background,
}

impl Checkpointer {
    fn spawn(db: &Db) -> Result<Checkpointer, DbError> {
        let conn = db.dedicated_connection()?;
        // A truncating checkpoint holds the write lock while it waits for readers: give up
        // soon and try again later rather than keep webhooks waiting.
        conn.busy_timeout(Duration::from_millis(200))?;
        let wal_path = db.wal_path();
        let commits = Arc::new(AtomicU64::new(0));
        let wal_bytes = Arc::new(AtomicU64::new(0));
        let (seen_commits, seen_bytes) = (Arc::clone(&commits), Arc::clone(&wal_bytes));
        let copying = Arc::new(Mutex::new(()));
        let my_turn = Arc::clone(&copying);
        let (mut last_seen, mut last_commit) = (0, Instant::now());
        // The last tick, after shutdown, truncates the log the writer left behind.
        let thread = Background::spawn("wal-checkpointer", OnStop::TickOnceMore, move |control| {
            let ended = control.stopping();
            let now_seen = seen_commits.load(Ordering::Relaxed);
            if now_seen != last_seen {
                (last_seen, last_commit) = (now_seen, Instant::now());
            }
            if ended || last_commit.elapsed() >= WAL_CHECK_INTERVAL {
                // No commit for a while: nothing competes, so give the space back.
                if wal_size(&wal_path) > 0 {
                    let _turn = my_turn.lock().unwrap_or_else(PoisonError::into_inner);
                    checkpoint(&conn, "TRUNCATE");
                }
            } else if (WAL_COPY_THRESHOLD..WAL_RESTART_THRESHOLD)
                .contains(&seen_bytes.load(Ordering::Relaxed))
            {
                // A passive checkpoint copies pages without blocking the writer. Run back to
                // back, they leave the writer only the last few megabytes to copy when it
                // checkpoints. Past the restart threshold it stays out of the writer's way, so
                // the writer waits for at most one copy.
                let _turn = my_turn.lock().unwrap_or_else(PoisonError::into_inner);
                checkpoint(&conn, "PASSIVE");
                return WAL_COPY_PAUSE;
            }
            WAL_CHECK_INTERVAL
        })
        .map_err(|_| DbError::WriterGone)?;
        Ok(Checkpointer {
            commits,
            wal_bytes,
            copying,
            thread,
        })
    }

    fn committed(&self, wal_bytes: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.wal_bytes.store(wal_bytes, Ordering::Relaxed);
    }

    /// The writer's checkpoint between two batches, on its own connection: waits for a copy of
    /// the checkpointer's that is under way (it has done most of the work by then), then copies
    /// the rest, so the next commit starts the log over. True when every frame was copied.
    fn restart_log(&self, conn: &Connection) -> bool {
        let _turn = self.copying.lock().unwrap_or_else(PoisonError::into_inner);
        checkpoint(conn, "PASSIVE")
    }

    /// Runs a last checkpoint and waits for the thread.
    fn finish(self) {
        self.thread.shutdown();
    }
}

fn wal_size(wal_path: &std::path::Path) -> u64 {
    std::fs::metadata(wal_path).map(|m| m.len()).unwrap_or(0)
}

/// Runs `PRAGMA wal_checkpoint(mode)`; true when every frame of the log was copied, false when
/// it was busy or readers kept frames from being copied, and it should be tried again.
fn checkpoint(conn: &Connection, mode: &str) -> bool {
    let result = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match result {
        Ok((busy, log, copied)) => busy == 0 && copied == log,
        Err(e) => {
            tracing::warn!(error = %e, mode, "WAL checkpoint failed");
            false
        }
    }
}
