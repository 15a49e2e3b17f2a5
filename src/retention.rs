//! Retention: deletes pushes older than `--retention-days` at start and every hour, in small
//! batches through [`Store::delete_received_before`]. Started by `app`.

use std::sync::Arc;
use std::time::Duration;

use crate::background::{Background, OnStop};
use crate::clock::Clock;
use chrono::{DateTime, Utc};

use crate::db::{DbError, Store};

/// How often old pushes are looked for after the first run at start.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// Pushes deleted per transaction, so the ingest writer waits at most one batch for the lock.
pub const BATCH_SIZE: usize = 500;
/// Time left between batches for the ingest writer and the worker to take the lock.
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// Controls the running retention thread; dropping it stops the thread after its current batch.
pub type RetentionHandle = Background;

/// Starts the thread that keeps `days` days of pushes, measured by their arrival here.
pub fn spawn(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    days: u32,
) -> std::io::Result<RetentionHandle> {
    Background::spawn("retention", OnStop::Return, move |control| {
        let cutoff = clock.now() - chrono::Duration::days(i64::from(days));
        // A shutdown stops the deleting between two batches.
        let keep_going = || !control.stopping();
        match run_retention_once(&*store, cutoff, &keep_going) {
            Ok(0) => tracing::debug!(days, "retention: nothing to delete"),
            Ok(n) => tracing::info!(pushes = n, days, "retention: deleted old pushes"),
            Err(e) => tracing::error!(error = %crate::error_chain(&e), "retention run failed"),
        }
        INTERVAL
    })
}

/// Deletes every push received before `cutoff`, batch by batch; returns the total deleted.
/// `keep_going` is asked between batches so a shutdown does not wait for a long purge.
pub fn run_retention_once(
    store: &dyn Store,
    cutoff: DateTime<Utc>,
    keep_going: &dyn Fn() -> bool,
) -> Result<u64, DbError> {
    let mut total = 0u64;
    loop {
        let deleted = store.delete_received_before(cutoff, BATCH_SIZE)?;
        total += deleted as u64;
        if deleted < BATCH_SIZE || !keep_going() {
            return Ok(total);
        }
        std::thread::sleep(PAUSE_BETWEEN_BATCHES);
    }
}
