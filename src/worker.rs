//! The summary worker: a dedicated blocking thread that turns pending pushes into summaries.
//!
//! [`Worker::run_once`] handles one due push and says what happened, so tests drive it step by
//! step with a manual clock. [`Worker::spawn`] runs it on a thread that wakes on a nudge (a push
//! was stored), when the next retry falls due, or every `interval` at the latest.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use crate::background::{Background, OnStop};
use crate::clock::Clock;
use crate::db::{DbError, Store};
use crate::metrics::{Metrics, ModelErrorKind};
use crate::summarize::{
    BuiltinSummarizer, SummarizeError, Summarizer, SummaryInput, builtin_summary,
};

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The longest the worker sleeps without a nudge.
    pub interval: Duration,
    /// Attempts per push before it is marked failed.
    pub max_attempts: u32,
    /// The first retry waits this long; each further one twice as long.
    pub retry_base: Duration,
    /// No retry waits longer than this, whatever the provider asks.
    pub max_retry_delay: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            interval: Duration::from_secs(10),
            max_attempts: 3,
            retry_base: Duration::from_secs(2),
            max_retry_delay: Duration::from_secs(3600),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due.
    Idle,
    Summarized {
        push_id: String,
    },
    /// The attempt failed; the push is due again after `after`.
    WillRetry {
        push_id: String,
        after: Duration,
    },
    /// A quota ran out; tried again after `after` without spending an attempt.
    Postponed {
        push_id: String,
        after: Duration,
    },
    Failed {
        push_id: String,
        reason: String,
    },
}

/// Wakes the worker thread; cheap and non-blocking, extra nudges coalesce.
pub type Nudger = crate::background::Nudge;

pub struct Worker {
    store: Arc<dyn Store>,
    summarizer: Arc<dyn Summarizer>,
    clock: Arc<dyn Clock>,
    settings: WorkerSettings,
    metrics: Arc<Metrics>,
    /// Called when a push's summary became final (stored or given up): deliveries are due.
    after_final: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Worker {
    pub fn new(
        store: impl Into<Arc<dyn Store>>,
        summarizer: Arc<dyn Summarizer>,
        clock: Arc<dyn Clock>,
        settings: WorkerSettings,
    ) -> Self {
        Worker {
            store: store.into(),
            summarizer,
            clock,
            settings,
            metrics: Arc::new(Metrics::new()),
            after_final: None,
        }
    }

    /// Calls `hook` after each summary that became final (the notification threads' nudge).
    pub fn after_final(mut self, hook: Arc<dyn Fn() + Send + Sync>) -> Self {
        self.after_final = Some(hook);
        self
    }

    /// Counts model errors and summary latency into `metrics` (the ones `/metrics` shows).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn observe_latency(&self, push: &crate::domain::Push, now: chrono::DateTime<chrono::Utc>) {
        self.metrics
            .summary_latency((now - push.received_at).to_std().unwrap_or_default());
    }

    /// Summarizes the oldest due push, if any, and records the outcome.
    pub fn run_once(&self) -> Result<Outcome, DbError> {
        let store = &*self.store;
        let Some(claimed) = store.claim_next(self.clock.now())? else {
            return Ok(Outcome::Idle);
        };
        let push_id = claimed.push.id.clone();
        let _span = tracing::info_span!("summary", push = %push_id).entered();
        let input = SummaryInput::from_stored(&claimed.push, &claimed.commits);
        if !input.needs_model() {
            store.complete(
                &claimed,
                &builtin_summary(&input),
                BuiltinSummarizer::SOURCE,
                self.clock.now(),
            )?;
            self.observe_latency(&claimed.push, self.clock.now());
            return Ok(Outcome::Summarized { push_id });
        }
        let started = std::time::Instant::now();
        let result = self.summarizer.summarize(&input);
        let now = self.clock.now();
        match result {
            Ok(summary) => {
                store.complete(&claimed, &summary, self.summarizer.source(), now)?;
                self.observe_latency(&claimed.push, now);
                tracing::info!(push = %push_id, source = self.summarizer.source(), elapsed_ms = started.elapsed().as_millis() as u64, "push summarized");
                Ok(Outcome::Summarized { push_id })
            }
            Err(SummarizeError::Postpone {
                reason,
                retry_after,
            }) => {
                let after = retry_after.min(self.settings.max_retry_delay);
                store.postpone(&claimed, &reason, now + after)?;
                self.metrics.model_error(ModelErrorKind::Postponed);
                tracing::warn!(push = %push_id, %reason, after_s = after.as_secs(), "summary postponed");
                Ok(Outcome::Postponed { push_id, after })
            }
            Err(SummarizeError::Permanent { reason }) => {
                store.fail(&claimed, &reason)?;
                self.metrics.model_error(ModelErrorKind::Permanent);
                tracing::warn!(push = %push_id, %reason, "summary failed; not retrying");
                Ok(Outcome::Failed { push_id, reason })
            }
            Err(SummarizeError::Transient {
                reason,
                retry_after,
            }) => {
                self.metrics.model_error(ModelErrorKind::Transient);
                let attempts = claimed.push.attempts;
                if attempts >= self.settings.max_attempts {
                    let reason = format!("gave up after {attempts} attempts: {reason}");
                    store.fail(&claimed, &reason)?;
                    tracing::warn!(push = %push_id, %reason, "summary failed");
                    return Ok(Outcome::Failed { push_id, reason });
                }
                let after = retry_after
                    .unwrap_or_else(|| self.backoff(attempts))
                    .min(self.settings.max_retry_delay);
                store.retry_at(&claimed, &reason, now + after)?;
                tracing::info!(push = %push_id, %reason, attempts, after_ms = after.as_millis() as u64, "summary attempt failed; will retry");
                Ok(Outcome::WillRetry { push_id, after })
            }
        }
    }

    /// Exponential backoff: base, 2x base, 4x base...
    fn backoff(&self, failed_attempts: u32) -> Duration {
        let factor = 1u32 << failed_attempts.saturating_sub(1).min(16);
        self.settings.retry_base.saturating_mul(factor)
    }

    /// Runs steps until nothing is due.
    fn drain(&self) {
        loop {
            match self.run_once() {
                Ok(Outcome::Idle) => return,
                Ok(Outcome::Summarized { .. } | Outcome::Failed { .. }) => {
                    if let Some(hook) = &self.after_final {
                        hook();
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %crate::error_chain(&e), "summary worker step failed");
                    return;
                }
            }
        }
    }

    /// How long to sleep: until the next retry is due, at most `interval`.
    fn sleep_time(&self) -> Duration {
        let next_due = self.store.next_due().ok().flatten();
        match next_due {
            Some(due) => (due - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.settings.interval),
            None => self.settings.interval,
        }
    }

    /// Starts the worker thread. A panic inside a step is logged and the loop restarted.
    pub fn spawn(self) -> std::io::Result<WorkerHandle> {
        self.requeue_abandoned();
        Background::spawn("summary-worker", OnStop::Return, move |_| {
            let step = std::panic::catch_unwind(AssertUnwindSafe(|| {
                self.drain();
                self.sleep_time()
            }));
            step.unwrap_or_else(|_| {
                tracing::error!("summary worker panicked; restarting it");
                // A push that panics at once would otherwise be retried in a tight loop.
                std::thread::sleep(Duration::from_millis(100));
                self.requeue_abandoned();
                Duration::ZERO
            })
        })
    }

    /// Puts pushes whose step never finished (a killed process, a panic) back in the queue.
    fn requeue_abandoned(&self) {
        let requeued = self.store.requeue_abandoned(self.clock.now());
        match requeued {
            Ok(0) => {}
            Ok(n) => tracing::info!(pushes = n, "re-queued pushes whose summary was interrupted"),
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "could not re-queue interrupted pushes")
            }
        }
    }
}

/// Controls a running worker thread: [`Background::nudger`] wakes it, dropping it or
/// [`Background::shutdown`] stops it after its current step.
pub type WorkerHandle = Background;
