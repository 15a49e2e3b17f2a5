//! How many searches read the database at once: a full-text or otherwise extended filter can
//! take seconds over a long history, and the pool's few connections must stay free for
//! webhooks, key checks, plain pages and the background threads meanwhile.
//!
//! Contact points: [`super::Db`] enters the gate around every extended read; a read that waits
//! longer than the gate allows is [`DbError::Busy`](super::DbError::Busy), a 503 `server_busy`.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::DbError;

/// Admits at most `permits` readers at once; the others wait, each up to `wait`.
#[derive(Debug)]
pub struct SearchGate {
    permits: usize,
    wait: Duration,
    inside: Mutex<usize>,
    left: Condvar,
}

/// A turn at the gate, given back when dropped.
pub struct Turn<'a>(&'a SearchGate);

impl SearchGate {
    pub fn new(permits: usize, wait: Duration) -> SearchGate {
        SearchGate {
            permits,
            wait,
            inside: Mutex::new(0),
            left: Condvar::new(),
        }
    }

    /// Waits for a turn; `Busy` when none came within the gate's wait.
    pub fn enter(&self) -> Result<Turn<'_>, DbError> {
        let deadline = Instant::now() + self.wait;
        let mut inside = self.inside.lock().unwrap_or_else(PoisonError::into_inner);
        while *inside >= self.permits {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbError::Busy);
            }
            inside = self
                .left
                .wait_timeout(inside, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *inside += 1;
        Ok(Turn(self))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut inside = self.0.inside.lock().unwrap_or_else(PoisonError::into_inner);
        *inside -= 1;
        self.0.left.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_past_the_permits_waits_its_turn_and_is_busy_when_none_comes() {
        let gate = SearchGate::new(2, Duration::from_millis(50));
        let first = gate.enter().unwrap();
        let _second = gate.enter().unwrap();
        assert!(matches!(gate.enter(), Err(DbError::Busy)));
        drop(first);
        assert!(gate.enter().is_ok(), "a turn given back is free again");
    }

    #[test]
    fn a_waiting_reader_gets_the_turn_given_back_while_it_waits() {
        let gate = SearchGate::new(1, Duration::from_secs(30));
        let held = gate.enter().unwrap();
        std::thread::scope(|s| {
            let waiting = s.spawn(|| gate.enter().map(drop));
            // The waiter is either still waiting or not started yet; both get the turn.
            drop(held);
            assert!(waiting.join().unwrap().is_ok());
        });
    }
}
