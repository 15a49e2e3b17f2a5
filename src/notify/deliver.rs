//! The delivery threads: each takes the oldest due deliveries (a batch) of a notification no
//! other thread is sending, applies its filters, sends them in order and records the outcomes
//! in one transaction; so a receiver that hangs holds one thread (for at most the send timeout),
//! and a rate-limited one only its own deliveries. The threads wake when a summary becomes
//! final (a [`DeliveryNudger`]), when the next retry falls due, and at least every few seconds,
//! and they let webhooks being received go first ([`GiveWay`]).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::format::{Event, render};
use super::schedule::Schedule;
use super::send::{Attempted, Sender, Verdict};
use super::{DeliveryAttempt, Kind, NewNotification, Notification, sign};
use crate::clock::Clock;
use crate::db::writer::IngestWriter;
use crate::db::{DbError, DeliveryOutcome, DeliveryRecord, DueDelivery, Store};

/// How deliveries are paced.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Deliveries in flight at once (to different notifications).
    pub threads: usize,
    pub schedule: Schedule,
    /// The longest one request to a receiver may take.
    pub timeout: Duration,
    /// Refuse receivers on loopback, private and link-local addresses (`--notify-deny-private`).
    pub deny_private: bool,
    pub give_way: GiveWay,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            threads: 4,
            schedule: Schedule::default(),
            timeout: super::send::TIMEOUT,
            deny_private: false,
            give_way: GiveWay::default(),
        }
    }
}

/// How the delivery threads give way to webhooks being received: before it picks a batch, a
/// thread waits until no webhook has been in flight for `idle`, but never longer than
/// `longest`. Ingest answers its senders first, who time out (GitHub after 10 s) and do not
/// redeliver on their own, and a burst's messages follow once it is over; under webhooks that
/// never pause, each notification still gets a batch per `longest`.
#[derive(Debug, Clone, Copy)]
pub struct GiveWay {
    pub idle: Duration,
    pub longest: Duration,
}

impl Default for GiveWay {
    /// 2 ms bridges the moment between one answer and a sender's next request; 1 s keeps a
    /// notification's floor at 64 messages a second.
    fn default() -> Self {
        GiveWay {
            idle: Duration::from_millis(2),
            longest: Duration::from_secs(1),
        }
    }
}

/// The longest a thread sleeps without a nudge: a safety net, not the way work is found.
const MAX_IDLE: Duration = Duration::from_secs(5);

/// Deliveries of one notification a thread picks at once: one read and one write transaction
/// for this many messages instead of one each per message.
const BATCH: usize = 64;

/// A batch to a slow receiver records what it has done after this long, so the deliveries log
/// (and a restart) does not wait for the whole batch.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Delivery threads also run at a lower priority (a nice value), so ingest's threads go first
/// while a batch is being sent. They hold no write lock (the ingest writer commits their
/// outcomes), so being preempted holds nobody up. (19 measured no better than 10 beside the
/// shared machine's noise, and starves deliveries harder on a host that is always busy.)
const NICENESS: i32 = 10;

/// A notification a thread is sending to; free for the others again when dropped.
struct Claim<'a> {
    shared: &'a Shared,
    notification: i64,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.shared.lock().busy.remove(&self.notification);
    }
}

/// One delivery of a batch, sent (or skipped) and not yet recorded.
struct Done {
    /// Its place in the batch.
    index: usize,
    /// None when it was filtered out.
    sent: Option<Attempted>,
    outcome: DeliveryOutcome,
    at: DateTime<Utc>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Lowers the calling thread's scheduling priority (Linux: the nice value is per thread).
fn run_in_background() {
    #[cfg(target_os = "linux")]
    {
        let me = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(me), NICENESS) {
            tracing::debug!(error = %e, "could not lower the delivery thread's priority");
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Notifications a thread is sending to right now.
    busy: HashSet<i64>,
    stop: bool,
    /// Bumped by every nudge, so one that arrives during a look at the outbox is not lost.
    generation: u64,
}

#[derive(Debug, Default)]
struct Shared {
    recorder: Recorder,
    state: Mutex<State>,
    wake: Condvar,
    /// Held while a thread picks its next delivery, so two never pick the same one.
    picking: Mutex<()>,
}

/// The ingest writer, while it runs: outcomes are committed in its transactions (see
/// [`IngestWriter::record_deliveries`]); before, in the delivery threads' own. Taken out when
/// the threads stop: the writer's own callback holds a nudger, so a handle kept here would keep
/// the writer from ever seeing its last handle go.
#[derive(Default)]
struct Recorder(Mutex<Option<IngestWriter>>);

impl Recorder {
    fn get(&self) -> Option<IngestWriter> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, writer: Option<IngestWriter>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = writer;
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.get().is_some() {
            "Recorder(ingest writer)"
        } else {
            "Recorder(own transactions)"
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes the delivery threads; cheap, and harmless after shutdown.
#[derive(Debug, Clone)]
pub struct DeliveryNudger(Arc<Shared>);

impl DeliveryNudger {
    /// Wakes one idle thread; one that finds work wakes the next, so an ingest batch for a
    /// project without notifications costs one look at the outbox, not one per thread.
    pub fn nudge(&self) {
        self.0.lock().generation += 1;
        self.0.wake.notify_one();
    }
}

/// Sends due deliveries; [`Deliverer::spawn`] runs it on its threads.
pub struct Deliverer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sender: Sender,
    settings: DeliverySettings,
}

/// The running threads; dropping it (or [`DeliveryHandle::shutdown`]) stops them.
pub struct DeliveryHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl DeliveryHandle {
    pub fn nudger(&self) -> DeliveryNudger {
        DeliveryNudger(Arc::clone(&self.shared))
    }

    /// Records outcomes through the ingest writer from now on. Stop the delivery threads
    /// before waiting for the writer to end: they hold a handle to it.
    pub fn record_through(&self, writer: IngestWriter) {
        self.shared.recorder.set(Some(writer));
    }

    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.shared.recorder.set(None);
    }
}

impl Drop for DeliveryHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Deliverer {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: DeliverySettings) -> Self {
        Deliverer {
            store,
            clock,
            sender: Sender::new(settings.timeout).denying_private(settings.deny_private),
            settings,
        }
    }

    pub fn spawn(self) -> std::io::Result<DeliveryHandle> {
        let shared = Arc::new(Shared::default());
        let this = Arc::new(self);
        let mut threads = Vec::new();
        for i in 0..this.settings.threads.max(1) {
            let (this, mine) = (Arc::clone(&this), Arc::clone(&shared));
            let thread = std::thread::Builder::new()
                .name(format!("notify-{i}"))
                .spawn(move || this.run(&mine));
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let mut handle = DeliveryHandle { shared, threads };
                    handle.stop();
                    return Err(e);
                }
            }
        }
        Ok(DeliveryHandle { shared, threads })
    }

    fn run(&self, shared: &Shared) {
        run_in_background();
        loop {
            let generation = {
                let state = shared.lock();
                if state.stop {
                    return;
                }
                state.generation
            };
            let step = std::panic::catch_unwind(AssertUnwindSafe(|| self.step(shared)));
            let worked = match step {
                Ok(Ok(worked)) => worked,
                Ok(Err(e)) => {
                    tracing::error!(error = %crate::error_chain(&e), "notification delivery step failed");
                    false
                }
                Err(_) => {
                    tracing::error!("notification delivery panicked; going on");
                    false
                }
            };
            if worked {
                continue;
            }
            let pause = self.idle_time(shared);
            let state = shared.lock();
            if state.stop || state.generation != generation {
                continue;
            }
            let _ = shared
                .wake
                .wait_timeout_while(state, pause, |s| !s.stop && s.generation == generation);
        }
    }

    /// Picks one notification's due deliveries and sends them; false when nothing was due.
    fn step(&self, shared: &Shared) -> Result<bool, DbError> {
        give_way_to_ingest(shared, self.settings.give_way);
        let batch = {
            let _picking = shared
                .picking
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let busy: Vec<i64> = shared.lock().busy.iter().copied().collect();
            let batch = self.store.next_deliveries(self.clock.now(), &busy, BATCH)?;
            if let Some(d) = batch.first() {
                let mut state = shared.lock();
                state.busy.insert(d.notification.id);
                // More may be due, for other notifications: let another thread look.
                state.generation += 1;
                shared.wake.notify_one();
            }
            batch
        };
        let Some(first) = batch.first() else {
            return Ok(false);
        };
        // Only once the outcomes are committed (or the batch panicked) may another thread pick
        // this notification's rows: one still `pending` after its send would be sent twice.
        // No thread waits for it: this one looks again first.
        let _claim = Claim {
            shared,
            notification: first.notification.id,
        };
        self.deliver_batch(shared, &batch).map(|()| true)
    }

    /// How long to sleep when nothing is due: until the next delivery of a notification no
    /// other thread is sending to (that thread looks again itself when its batch is done).
    fn idle_time(&self, shared: &Shared) -> Duration {
        let busy: Vec<i64> = shared.lock().busy.iter().copied().collect();
        match self.store.next_delivery_at(&busy).ok().flatten() {
            Some(at) => (at - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(1), MAX_IDLE),
            None => MAX_IDLE,
        }
    }

    /// Sends a batch of one notification's due deliveries in order (skipping those filtered
    /// out), recording the outcomes in one transaction at the end, or sooner when the batch is
    /// slow, so the deliveries log stays current. It stops at the first delivery that did not
    /// go through: what is left stays due, to be picked again with the backoff applied.
    fn deliver_batch(&self, shared: &Shared, batch: &[DueDelivery]) -> Result<(), DbError> {
        let mut done: Vec<Done> = Vec::with_capacity(batch.len());
        let mut since_flush = Instant::now();
        for (index, due) in batch.iter().enumerate() {
            let finished = self.attempt(index, due);
            let went_through = matches!(
                finished.outcome,
                DeliveryOutcome::Delivered | DeliveryOutcome::Skipped
            );
            done.push(finished);
            if !went_through || shared.lock().stop {
                break;
            }
            if since_flush.elapsed() >= FLUSH_EVERY {
                self.record(shared, batch, &mut done)?;
                since_flush = Instant::now();
            }
        }
        self.record(shared, batch, &mut done)
    }

    fn record(
        &self,
        shared: &Shared,
        batch: &[DueDelivery],
        done: &mut Vec<Done>,
    ) -> Result<(), DbError> {
        let records: Vec<DeliveryRecord> = done
            .drain(..)
            .map(|d| {
                let due = &batch[d.index];
                DeliveryRecord {
                    notification_id: due.notification.id,
                    outbox_id: Some(due.outbox_id),
                    attempt: d.sent.as_ref().map(|sent| DeliveryAttempt {
                        push_id: Some(due.push.id.clone()),
                        attempt: due.attempts + 1,
                        status: sent.status,
                        error: sent.error.clone(),
                        ms: millis(sent.elapsed),
                        at: d.at,
                    }),
                    outcome: d.outcome,
                }
            })
            .collect();
        match shared.recorder.get() {
            Some(writer) => writer.record_deliveries(records),
            None => self.store.record_deliveries(&records),
        }
    }

    /// Sends one due delivery (unless filtered out) and says what became of it.
    fn attempt(&self, index: usize, due: &DueDelivery) -> Done {
        let n = &due.notification;
        let push = &due.push;
        let now = self.clock.now();
        if !n.settings.branches.matches(&push.ref_name)
            || n.settings.exclude_authors.excludes(push, &due.commits)
        {
            return Done {
                index,
                sent: None,
                outcome: DeliveryOutcome::Skipped,
                at: now,
            };
        }
        let attempt = due.attempts + 1;
        let sent = send(
            &self.sender,
            &n.settings,
            Event::Push(push),
            Some(due.outbox_id),
            now,
        );
        let outcome = match &sent.verdict {
            Verdict::Delivered => DeliveryOutcome::Delivered,
            Verdict::Retry { wait } => match self.settings.schedule.next_wait(attempt, *wait) {
                Some(after) => DeliveryOutcome::Retry {
                    at: self.clock.now()
                        + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX),
                    receiver_wait: wait.is_some(),
                },
                None => DeliveryOutcome::Dead,
            },
            Verdict::Pause { reason } => DeliveryOutcome::Paused(reason.clone()),
            Verdict::GiveUp => DeliveryOutcome::Dead,
        };
        let ms = millis(sent.elapsed);
        let host = n.settings.url.host();
        match &outcome {
            DeliveryOutcome::Delivered => {
                tracing::info!(notification = n.id, kind = %n.settings.kind, %host, push = %push.id, attempt, status = sent.status, ms, "notification delivered")
            }
            other => {
                tracing::warn!(notification = n.id, kind = %n.settings.kind, %host, push = %push.id, attempt, status = sent.status, ms, error = sent.error.as_deref().unwrap_or(""), outcome = ?other, "notification not delivered")
            }
        }
        Done {
            index,
            sent: Some(sent),
            outcome,
            at: now,
        }
    }
}

/// Waits until no webhook has been in flight for `give_way.idle`, for at most
/// `give_way.longest`, or until the threads stop.
fn give_way_to_ingest(shared: &Shared, give_way: GiveWay) {
    let Some(writer) = shared.recorder.get() else {
        return;
    };
    let give_up = Instant::now() + give_way.longest;
    loop {
        let idle = writer.idle_for();
        let now = Instant::now();
        if idle >= give_way.idle || now >= give_up {
            return;
        }
        let state = shared.lock();
        if state.stop {
            return;
        }
        let wait = give_way.idle.saturating_sub(idle).min(give_up - now);
        let _ = shared.wake.wait_timeout_while(state, wait, |s| !s.stop);
    }
}

/// One request for `event` to `n`'s receiver, signed for a generic webhook. `outbox_id` gives
/// the stable `webhook-id`; a test message gets a fresh one.
pub fn send(
    sender: &Sender,
    n: &NewNotification,
    event: Event<'_>,
    outbox_id: Option<i64>,
    now: DateTime<Utc>,
) -> Attempted {
    let message = render(n.kind, &n.url, event, now);
    let mut headers = Vec::new();
    if n.kind == Kind::Webhook {
        let id = match outbox_id {
            Some(id) => sign::message_id(id),
            None => format!("msg_test_{}", uuid::Uuid::new_v4().simple()),
        };
        let timestamp = now.timestamp();
        if let Some(secret) = &n.secret {
            headers.push((
                "webhook-signature",
                sign::signature(secret, &id, timestamp, &message.body),
            ));
        }
        headers.push(("webhook-id", id));
        headers.push(("webhook-timestamp", timestamp.to_string()));
    }
    sender.send(&n.url, &message, &headers, n.token.as_ref())
}

/// Sends a test message now and logs the attempt; the notification's state is not changed
/// beyond its last delivery time.
pub fn send_test(
    store: &dyn Store,
    sender: &Sender,
    n: &Notification,
    now: DateTime<Utc>,
) -> Result<Attempted, DbError> {
    let sent = send(
        sender,
        &n.settings,
        Event::Test {
            project: n.project.as_str(),
        },
        None,
        now,
    );
    let outcome = if sent.verdict == Verdict::Delivered {
        DeliveryOutcome::Delivered
    } else {
        DeliveryOutcome::Skipped
    };
    let record = DeliveryRecord {
        notification_id: n.id,
        outbox_id: None,
        attempt: Some(DeliveryAttempt {
            push_id: None,
            attempt: 1,
            status: sent.status,
            error: sent.error.clone(),
            ms: millis(sent.elapsed),
            at: now,
        }),
        outcome,
    };
    store.record_deliveries(std::slice::from_ref(&record))?;
    Ok(sent)
}
