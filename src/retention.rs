//! The retention thread: deletes pushes older than `--retention-days` at start and every hour.
//! Started by `app`; the deleting itself is `db::run_retention_once`.

use std::sync::Arc;
use std::time::Duration;

use crate::background::{Background, OnStop};
use crate::clock::Clock;
use crate::db::{Store, run_retention_once};

/// How often old pushes are looked for after the first run at start.
pub const INTERVAL: Duration = Duration::from_secs(3600);

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
