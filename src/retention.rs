//! The retention thread: deletes pushes older than `--retention-days` at start and every hour.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::Clock;
use crate::db::{Store, run_retention_once};

/// How often old pushes are looked for after the first run at start.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// Controls the running retention thread; dropping it stops the thread.
pub struct RetentionHandle {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the thread that keeps `days` days of pushes, measured by their arrival here.
pub fn spawn(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    days: u32,
) -> std::io::Result<RetentionHandle> {
    let (stop, stopped) = channel();
    let thread = std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || run(&*store, clock.as_ref(), days, &stopped))?;
    Ok(RetentionHandle {
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn run(store: &dyn Store, clock: &dyn Clock, days: u32, stopped: &Receiver<()>) {
    loop {
        let cutoff = clock.now() - chrono::Duration::days(i64::from(days));
        let keep_going = || {
            matches!(
                stopped.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Empty)
            )
        };
        match run_retention_once(store, cutoff, &keep_going) {
            Ok(0) => tracing::debug!(days, "retention: nothing to delete"),
            Ok(n) => tracing::info!(pushes = n, days, "retention: deleted old pushes"),
            Err(e) => tracing::error!(error = %crate::error_chain(&e), "retention run failed"),
        }
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl RetentionHandle {
    /// Stops the thread after its current batch and waits for it.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RetentionHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
