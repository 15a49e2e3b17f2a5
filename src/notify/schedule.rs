//! When a failed delivery is tried again: the Svix schedule (now, 5 s, 5 min, 30 min, 2 h,
//! 5 h, 10 h, 10 h), scaled by a factor tests set so a retry comes in milliseconds.

use std::time::Duration;

/// The wait before each attempt after the first; attempt 1 goes at once.
const WAITS_SECS: [u64; 7] = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];

/// Attempts in all before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = WAITS_SECS.len() as u32 + 1;

/// Longest wait a receiver's `Retry-After` is honoured up to; a longer one is capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// 1.0 in production; tests use e.g. 0.001 (5 s becomes 5 ms).
    pub scale: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { scale: 1.0 }
    }
}

impl Schedule {
    /// The wait after `attempts` failed attempts, None when no attempt is left. A receiver's
    /// own wait (Retry-After, Discord's retry_after) is honoured when it is longer.
    pub fn next_wait(&self, attempts: u32, asked: Option<Duration>) -> Option<Duration> {
        let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
        let base = Duration::from_secs(*WAITS_SECS.get(index)?);
        let asked = asked.map(|a| a.min(MAX_RETRY_AFTER)).unwrap_or_default();
        Some(self.scaled(base.max(asked)))
    }

    /// A wait as this schedule runs it.
    pub fn scaled(&self, wait: Duration) -> Duration {
        wait.mul_f64(self.scale.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_svixs_and_ends_after_eight_attempts() {
        let s = Schedule::default();
        let waits: Vec<u64> = (1..MAX_ATTEMPTS)
            .map(|n| s.next_wait(n, None).unwrap().as_secs())
            .collect();
        assert_eq!(waits, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(s.next_wait(MAX_ATTEMPTS, None), None);
    }

    #[test]
    fn a_longer_retry_after_is_honoured_and_a_shorter_one_is_not() {
        let s = Schedule::default();
        assert_eq!(
            s.next_wait(1, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            s.next_wait(2, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(300))
        );
        let fast = Schedule { scale: 0.001 };
        assert_eq!(fast.next_wait(1, None), Some(Duration::from_millis(5)));
    }
}
