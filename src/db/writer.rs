//! The ingest writer: one thread that commits many webhook pushes per transaction.
//!
//! Handlers hand over parsed pushes and wait for the reply; the reply comes only after the
//! transaction holding them has committed and the log holding it is synced to disk, so a 2xx
//! means "stored", even across a power cut. Batching turns many small commits into a few
//! larger ones, and a single writer means no lock contention between webhook requests. The
//! sync is a thread of its own ([`LogSyncer`]), so the writer commits the next batch while the
//! disk takes the last one. Between batches the writer writes the pushes' derived rows
//! ([`derive`]). Another thread copies WAL pages into the database file while the writer keeps
//! committing, so the writer only stops, briefly, when the log is due to start over.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::derive::{self, Progress};
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
/// How long the writer waits for another delivery before it writes the derived rows of the
/// pushes it committed (see [`derive`]): under load the next delivery comes sooner, and the rows
/// of many batches are written together.
const CATCH_UP_WHEN_IDLE: Duration = Duration::from_millis(1);
/// The most pushes, and the longest time, the derived rows stay behind under load.
const MAX_BEHIND_PUSHES: usize = 1024;
const MAX_BEHIND: Duration = Duration::from_millis(100);
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
    activity: Arc<Activity>,
}

/// A delivery announced to the writer while it is being verified; see [`IngestWriter::incoming`].
pub struct Incoming {
    announced: Announced,
    in_flight: InFlight,
}

/// Counts in [`Writer::gather`]'s `incoming` until the delivery is handed over (or dropped).
struct Announced(Arc<AtomicUsize>);

impl Drop for Announced {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The webhooks being received right now, from their announcement to their answer, and when
/// the last one was answered: what the delivery threads give way to ([`IngestWriter::idle_for`]).
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    /// Microseconds from `started` to the last answer.
    last_answer: AtomicU64,
    started: Instant,
}

impl Activity {
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// One webhook counted in [`Activity`] until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_answer.store(self.0.now(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}

impl IngestWriter {
    /// Starts the writer thread. `after_commit` runs after every batch that stored a push that
    /// waits for the summary worker, and after every catch-up that made deliveries due. The
    /// thread ends once every handle is dropped and the queue is drained.
    pub fn spawn(
        db: &Db,
        after_commit: impl Fn(Committed) + Send + 'static,
    ) -> Result<(IngestWriter, JoinHandle<()>), DbError> {
        let conn = db.dedicated_connection()?;
        // A 2xx promises the push survives a power cut: the handlers of a batch are answered
        // by the log syncer, once a sync of the log that began after the batch's commit has
        // finished (one sync for every batch committed meanwhile). The commit itself keeps
        // NORMAL, as every connection does (see `configure`), so the writer never waits for
        // the disk.
        let syncer = LogSyncer::spawn(db)?;
        // Checkpoints are the checkpointer thread's job, not something a commit waits for.
        // (This pragma sets the WAL hook too, so it comes before ours.)
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.wal_hook(Some(record_wal_size));
        let checkpointer = Checkpointer::spawn(db)?;
        let changed = Arc::clone(&db.changed);
        let derived = Arc::clone(&db.derived);
        let (tx, rx) = channel();
        let incoming = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            conn,
            jobs: rx,
            incoming: Arc::clone(&incoming),
            checkpointer,
            changed,
            derived,
            stash: None,
            behind: Behind::default(),
            syncer,
        };
        let handle = std::thread::Builder::new()
            .name("ingest-writer".into())
            .spawn(move || writer.run(after_commit))
            .map_err(|_| DbError::WriterGone)?;
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last_answer: AtomicU64::new(0),
            started: Instant::now(),
        });
        let writer = IngestWriter {
            jobs: tx,
            incoming,
            activity,
        };
        Ok((writer, handle))
    }

    /// Announces a delivery that will probably be written soon, so a batch being gathered waits
    /// for it. Take it before verifying; it counts until it is passed to [`IngestWriter::write`]
    /// or dropped, and as a webhook being received until it is answered.
    pub fn incoming(&self) -> Incoming {
        self.incoming.fetch_add(1, Ordering::Relaxed);
        self.activity.in_flight.fetch_add(1, Ordering::Acquire);
        Incoming {
            announced: Announced(Arc::clone(&self.incoming)),
            in_flight: InFlight(Arc::clone(&self.activity)),
        }
    }

    /// How long no webhook has been in flight: zero while one is, else the time since the last
    /// answer (or since the writer started).
    pub fn idle_for(&self) -> Duration {
        let activity = &self.activity;
        if activity.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = activity.last_answer.load(Ordering::Relaxed);
        Duration::from_micros(activity.now().saturating_sub(last))
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
        let Incoming {
            announced,
            in_flight,
        } = announced;
        self.jobs
            .send(Work::Pushes(job))
            .map_err(|_| DbError::WriterGone)?;
        drop(announced);
        let (result, _handed_back) = answer.await.map_err(|_| DbError::WriterGone)?;
        drop(in_flight);
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
    /// The change log's signal: a push's change-log row is a change for the live stream.
    changed: Arc<tokio::sync::Notify>,
    derived: Arc<Progress>,
    /// A job taken while looking whether the writer is idle, to be handled next.
    stash: Option<Work>,
    behind: Behind,
    syncer: LogSyncer,
}

/// The committed pushes whose derived rows are not written yet.
#[derive(Default)]
struct Behind {
    /// The last committed batch with new pushes (see [`Progress::committed`]).
    batch: u64,
    pushes: usize,
    since: Option<Instant>,
}

impl Writer {
    fn run(mut self, after_commit: impl Fn(Committed)) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut deliveries = Vec::new();
        loop {
            let first = match self.next_job() {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let idle = first.is_none();
            if let Some(first) = first {
                self.gather(first, &mut batch, &mut deliveries);
                let committed =
                    commit_batch(&mut self.conn, &self.derived, &mut batch, &mut deliveries);
                if let Some(stored) = committed.stored {
                    self.behind.batch = stored.batch;
                    self.behind.pushes += stored.pushes;
                    self.behind.since.get_or_insert_with(Instant::now);
                }
                self.syncer.answer_once_synced(committed.answers);
                if committed.queued {
                    after_commit(Committed {
                        queued: true,
                        finished: false,
                    });
                }
                self.after_write();
            }
            if self.catch_up_due(idle) {
                self.catch_up(&after_commit);
            }
        }
        self.catch_up(&after_commit);
        self.syncer.finish();
        self.checkpointer.finish();
    }

    /// The next job: at once if one is queued; while derived rows are behind, only for as long
    /// as they may stay behind.
    fn next_job(&mut self) -> Result<Work, RecvTimeoutError> {
        if let Some(job) = self.stash.take() {
            return Ok(job);
        }
        let Some(since) = self.behind.since else {
            return self.jobs.recv().map_err(|_| RecvTimeoutError::Disconnected);
        };
        let wait = CATCH_UP_WHEN_IDLE.min(MAX_BEHIND.saturating_sub(since.elapsed()));
        self.jobs.recv_timeout(wait)
    }

    /// True when the derived rows should be written now: the writer is idle, a reader waits
    /// for them, or they are as far behind as they may be.
    fn catch_up_due(&self, idle: bool) -> bool {
        let Some(since) = self.behind.since else {
            return false;
        };
        idle || self.derived.is_wanted()
            || self.behind.pushes >= MAX_BEHIND_PUSHES
            || since.elapsed() >= MAX_BEHIND
    }

    /// Writes the derived rows of every push committed so far, then tells the readers, the
    /// live stream and the delivery threads.
    fn catch_up(&mut self, after_commit: &impl Fn(Committed)) {
        let batch = std::mem::take(&mut self.behind).batch;
        if batch == 0 {
            return;
        }
        match derive::catch_up(&mut self.conn) {
            Ok(caught_up) => {
                if caught_up.pushes > 0 {
                    self.changed.notify_one();
                }
                if caught_up.deliveries > 0 {
                    after_commit(Committed {
                        queued: false,
                        finished: true,
                    });
                }
            }
            // The queue keeps them: the next catch-up (or the next start) writes them. Readers
            // are let through rather than kept waiting on a failure.
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "writing the derived rows of new pushes failed");
            }
        }
        self.derived.derived(batch);
        self.after_write();
    }

    /// After every commit: lets the checkpointer know, and starts the log over when it is due.
    fn after_write(&self) {
        let wal_bytes = WAL_BYTES.get();
        self.checkpointer.committed(wal_bytes);
        // Until it succeeds, tried again after every batch: readers still on old frames
        // keep those from being copied.
        if wal_bytes >= WAL_RESTART_THRESHOLD && self.checkpointer.restart_log(&self.conn) {
            // The next commit starts the log over, and the hook reports the new size.
            WAL_BYTES.set(0);
        }
    }

    /// Takes `first`, every job already queued and those announced as on their way, for up to
    /// [`GATHER_WINDOW`].
    fn gather(&self, first: Work, batch: &mut Vec<Job>, deliveries: &mut Vec<DeliveryJob>) {
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
    }
}

/// What a commit of the writer's made ready that others wait for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// A new push waits for the summary worker.
    pub queued: bool,
    /// Notifications' deliveries are due (of pushes whose summary was final when stored).
    pub finished: bool,
}

/// What [`commit_batch`] did.
#[derive(Default)]
struct BatchOutcome {
    /// The batch's number and how many new pushes it stored, if it stored any.
    stored: Option<Stored>,
    /// A new push waits for the summary worker.
    queued: bool,
    /// For the handlers, once the log is synced.
    answers: Vec<Answer>,
}

/// A handler's outcome, and its pushes to hand back.
struct Answer {
    reply: Reply,
    result: JobResult,
    pushes: Vec<PreparedPush>,
}

struct Stored {
    batch: u64,
    pushes: usize,
}

/// Commits every job of the batch in one transaction, and returns each job's answer.
/// Expected refusals (a rotated secret, a deleted project) are found before a job writes
/// anything, so they need no savepoint; anything unexpected rolls back the whole batch, which
/// is then stored one delivery per transaction so one bad delivery cannot sink the others.
fn commit_batch(
    conn: &mut Connection,
    derived: &Progress,
    batch: &mut Vec<Job>,
    deliveries: &mut Vec<DeliveryJob>,
) -> BatchOutcome {
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
    let mut outcome = BatchOutcome::default();
    let mut new_pushes = 0;
    for (job, result) in batch.iter().zip(&results) {
        if let Ok(inserted) = result {
            for (i, p) in inserted.iter().zip(&job.pushes) {
                if matches!(i, Inserted::New(_)) {
                    new_pushes += 1;
                    outcome.queued |= p.status == SummaryStatus::Pending;
                }
            }
        }
    }
    // Counted before anyone is answered, so a read that follows a 201 waits for its push's
    // derived rows.
    if new_pushes > 0 {
        outcome.stored = Some(Stored {
            batch: derived.committed(),
            pushes: new_pushes,
        });
    }
    outcome.answers = batch
        .drain(..)
        .zip(results)
        .map(|(job, result)| Answer {
            reply: job.reply,
            result,
            pushes: job.pushes,
        })
        .collect();
    outcome
}

/// The thread that syncs the log to disk after the writer's commits and only then answers
/// their handlers. Every sync covers each batch committed before it began, so while the disk
/// takes one sync, the batches committed meanwhile wait for the next one together.
struct LogSyncer {
    answers: Option<Sender<Vec<Answer>>>,
    thread: Option<JoinHandle<()>>,
}

impl LogSyncer {
    fn spawn(db: &Db) -> Result<LogSyncer, DbError> {
        let (wal, database) = (db.wal_path(), db.path.clone());
        let (tx, rx) = channel::<Vec<Answer>>();
        let thread = std::thread::Builder::new()
            .name("log-syncer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(rx.try_iter());
                    let synced = super::sync_log(&wal, &database);
                    if let Err(e) = &synced {
                        tracing::error!(error = %e, "syncing the database log to disk failed; answering its webhooks with an error");
                    }
                    for answer in waiting.into_iter().flatten() {
                        let result = match &synced {
                            Ok(()) => answer.result,
                            Err(_) => Err(DbError::NotSynced),
                        };
                        // The handler may have gone (client hung up); the push is stored
                        // either way.
                        let _ = answer.reply.send((result, answer.pushes));
                    }
                }
            })
            .map_err(|_| DbError::WriterGone)?;
        Ok(LogSyncer {
            answers: Some(tx),
            thread: Some(thread),
        })
    }

    fn answer_once_synced(&self, answers: Vec<Answer>) {
        if let Some(queue) = &self.answers {
            // Only gone if its thread panicked; the handlers then see the writer gone.
            let _ = queue.send(answers);
        }
    }

    /// Answers whatever is waiting, then stops.
    fn finish(&mut self) {
        self.answers = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
