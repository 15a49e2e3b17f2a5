//! Background threads that tick, sleep and stop: the lifecycle the summary worker, the retention
//! thread and the WAL checkpointer share (spawn, nudge, shutdown, join on drop).
//!
//! A [`Background`] runs its tick at once, then again after the pause the tick returns, or
//! earlier when a [`Nudge`] arrives. [`Background::shutdown`] (or dropping the handle) asks the
//! thread to stop and waits for it; a tick under way finishes first, and long ticks can end
//! early by polling [`Control::stopping`].

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Flags {
    stop: bool,
    nudged: bool,
}

/// What the handle, the nudgers and the thread share.
#[derive(Debug, Default)]
struct Shared {
    flags: Mutex<Flags>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Flags> {
        // The flags stay meaningful whatever panicked while holding the lock.
        self.flags.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps for `pause` or until nudged or stopped; true when the thread should stop.
    fn sleep(&self, pause: Duration) -> bool {
        let deadline = Instant::now().checked_add(pause);
        let mut flags = self.lock();
        loop {
            if flags.stop {
                return true;
            }
            if flags.nudged {
                // A nudge that came during the tick is not lost: the next tick starts at once.
                flags.nudged = false;
                return false;
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return false;
            }
            flags = self
                .wake
                .wait_timeout(flags, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// What a tick can ask of its thread.
#[derive(Debug)]
pub struct Control {
    shared: Arc<Shared>,
}

impl Control {
    /// True once shutdown was asked: a long tick stops at its next safe point.
    pub fn stopping(&self) -> bool {
        self.shared.lock().stop
    }
}

/// Wakes the thread for an early tick; cheap to clone, and harmless after shutdown.
#[derive(Debug, Clone)]
pub struct Nudge {
    shared: Arc<Shared>,
}

impl Nudge {
    pub fn nudge(&self) {
        self.shared.lock().nudged = true;
        self.shared.wake.notify_all();
    }
}

/// Whether the tick runs once more after shutdown was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// Stop without another tick (a tick under way still finishes).
    Return,
    /// Run one last tick, in which [`Control::stopping`] is true: for final clean-up work.
    TickOnceMore,
}

/// A running background thread; dropping it stops the thread and waits for it.
#[derive(Debug)]
pub struct Background {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts thread `name`, which calls `tick` at once and then again after the pause each
    /// call returns (or earlier when nudged), until shutdown.
    pub fn spawn<F>(name: &str, on_stop: OnStop, mut tick: F) -> std::io::Result<Background>
    where
        F: FnMut(&Control) -> Duration + Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        let control = Control {
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                loop {
                    let pause = tick(&control);
                    if control.shared.sleep(pause) {
                        break;
                    }
                }
                if on_stop == OnStop::TickOnceMore {
                    tick(&control);
                }
            })?;
        Ok(Background {
            shared,
            thread: Some(thread),
        })
    }

    pub fn nudger(&self) -> Nudge {
        Nudge {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Asks the thread to stop after its current tick and waits for it.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // A thread that panicked has nothing left to stop; its panic was already reported.
            let _ = thread.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    const DEADLINE: Duration = Duration::from_secs(10);

    #[test]
    fn a_nudge_starts_the_next_tick_before_the_pause_is_over() {
        let (ticked, ticks) = channel();
        let thread = Background::spawn("test-nudge", OnStop::Return, move |_| {
            let _ = ticked.send(());
            Duration::from_secs(3600)
        })
        .unwrap();
        ticks
            .recv_timeout(DEADLINE)
            .expect("the first tick runs at once");
        thread.nudger().nudge();
        ticks
            .recv_timeout(DEADLINE)
            .expect("the nudge woke the thread");
        thread.shutdown();
    }

    #[test]
    fn shutdown_ends_a_long_pause_and_runs_the_last_tick_only_when_asked() {
        for (on_stop, expected) in [(OnStop::Return, 1), (OnStop::TickOnceMore, 2)] {
            let (ticked, ticks) = channel();
            let thread = Background::spawn("test-stop", on_stop, move |control| {
                let _ = ticked.send(control.stopping());
                Duration::from_secs(3600)
            })
            .unwrap();
            assert!(!ticks.recv_timeout(DEADLINE).unwrap());
            thread.shutdown();
            let seen: Vec<bool> = ticks.try_iter().collect();
            assert_eq!(seen.len() + 1, expected, "{on_stop:?}");
            assert!(seen.iter().all(|stopping| *stopping), "{on_stop:?}");
        }
    }

    #[test]
    fn a_nudge_after_shutdown_is_harmless() {
        let thread =
            Background::spawn("test-late", OnStop::Return, |_| Duration::from_millis(1)).unwrap();
        let nudge = thread.nudger();
        drop(thread);
        nudge.nudge();
    }
}
