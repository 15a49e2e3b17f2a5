//! The owner's admin credential: the token set at startup or reset from the CLI, dashboard
//! sessions, and the limit on failed logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

use crate::db::{DbError, Store};
use crate::secret::Secret;
use crate::tokens::{generate_admin_token, generate_session_id, hash_key};

/// How long a dashboard login lasts.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::days(7);

/// Makes sure an admin token exists at startup. A configured token replaces the stored one;
/// with neither, a new token is generated and returned so the caller can show it once.
pub fn ensure_admin_token(
    store: &dyn Store,
    configured: Option<&Secret>,
    now: DateTime<Utc>,
) -> Result<Option<Secret>, DbError> {
    if let Some(token) = configured {
        store.set_admin_token_hash(&hash_key(token.expose()), now)?;
        return Ok(None);
    }
    if store.admin_token_hash()?.is_some() {
        return Ok(None);
    }
    let token = generate_admin_token();
    store.set_admin_token_hash(&hash_key(token.expose()), now)?;
    Ok(Some(token))
}

/// Replaces the admin token with a new one and ends every session; the new token is returned
/// to be shown once.
pub fn reset_admin_token(store: &dyn Store, now: DateTime<Utc>) -> Result<Secret, DbError> {
    let token = generate_admin_token();
    store.set_admin_token_hash(&hash_key(token.expose()), now)?;
    store.delete_all_sessions()?;
    Ok(token)
}

/// True when `presented` is the admin token.
pub fn is_admin_token(store: &dyn Store, presented: &str) -> Result<bool, DbError> {
    let Some(stored) = store.admin_token_hash()? else {
        return Ok(false);
    };
    Ok(bool::from(stored.ct_eq(&hash_key(presented))))
}

/// Starts a session and returns its id, the cookie value.
pub fn start_session(store: &dyn Store, now: DateTime<Utc>) -> Result<Secret, DbError> {
    let id = generate_session_id();
    store.create_session(&hash_key(id.expose()), now, now + SESSION_TTL)?;
    Ok(id)
}

pub fn session_is_live(store: &dyn Store, id: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
    store.session_is_live(&hash_key(id), now)
}

pub fn end_session(store: &dyn Store, id: &str) -> Result<(), DbError> {
    store.delete_session(&hash_key(id))
}

/// Counts failed admin-credential attempts (dashboard logins and wrong `Authorization: Bearer`
/// tokens on the admin API and `/metrics`) per client in a sliding window; in memory, so a
/// restart forgives, which is fine for a brake on guessing a 238-bit token.
///
/// An attempt is reserved before the credential is checked, under the same lock that counts,
/// so a burst of concurrent guesses gets at most `max_failures` evaluated; a success gives its
/// reservation back. IPv6 clients are counted per /64, the block one subscriber gets, so a
/// guesser cannot rotate through its own addresses.
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(5, Duration::from_secs(60))
    }
}

/// One attempt reserved with [`LoginLimiter::reserve`]: it counts as a failure unless
/// [`Attempt::succeeded`] gives it back.
#[must_use = "an attempt counts as a failure unless it succeeded"]
#[derive(Debug)]
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    client: IpAddr,
    at: Instant,
}

impl Attempt<'_> {
    /// The credential was right: this attempt does not count.
    pub fn succeeded(self) {
        let mut failures = self.limiter.lock();
        if let Some(times) = failures.get_mut(&self.client) {
            if let Some(i) = times.iter().rposition(|t| *t == self.at) {
                times.swap_remove(i);
            }
            if times.is_empty() {
                failures.remove(&self.client);
            }
        }
    }
}

impl LoginLimiter {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        LoginLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Vec<Instant>>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves one attempt for `client`, counted as a failure from now on; `Err(wait)` when
    /// the client has used up its attempts and must wait before trying again.
    pub fn reserve(&self, client: IpAddr, now: Instant) -> Result<Attempt<'_>, Duration> {
        let client = crate::client_ip::bucket(client);
        let mut failures = self.lock();
        // Forget idle clients so a scan from many addresses cannot grow the map forever.
        if failures.len() > 10_000 {
            failures.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < self.window));
        }
        let times = failures.entry(client).or_default();
        times.retain(|t| now.duration_since(*t) < self.window);
        if times.len() >= self.max_failures {
            let oldest = times.iter().min().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        times.push(now);
        Ok(Attempt {
            limiter: self,
            client,
            at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_refuses_after_the_allowed_failures_and_forgives_after_the_window() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let start = Instant::now();
        limiter.reserve(ip, start).unwrap().succeeded();
        drop(limiter.reserve(ip, start).unwrap());
        drop(limiter.reserve(ip, start).unwrap());
        let wait = limiter
            .reserve(ip, start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limiter.reserve(other, start).is_ok());
        assert!(limiter.reserve(ip, start + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn concurrent_attempts_reserve_their_place_so_no_more_than_the_limit_are_evaluated() {
        let limiter = LoginLimiter::new(5, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let now = Instant::now();
        let evaluated = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..60 {
                s.spawn(|| {
                    if let Ok(attempt) = limiter.reserve(ip, now) {
                        evaluated.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        drop(attempt);
                    }
                });
            }
        });
        assert_eq!(evaluated.into_inner(), 5);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let limiter = LoginLimiter::new(1, Duration::from_secs(60));
        let now = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        drop(limiter.reserve(a, now).unwrap());
        assert!(limiter.reserve(same_64, now).is_err());
        assert!(limiter.reserve(next_64, now).is_ok());
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        drop(limiter.reserve(v4, now).unwrap());
        assert!(limiter.reserve(mapped, now).is_err());
    }

    #[test]
    fn a_configured_token_replaces_the_stored_one_and_ends_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("t.db")).unwrap();
        let now = Utc::now();
        let generated = ensure_admin_token(&db, None, now).unwrap().unwrap();
        assert!(ensure_admin_token(&db, None, now).unwrap().is_none());
        let store: &dyn crate::db::Store = &db;
        assert!(is_admin_token(store, generated.expose()).unwrap());
        let session = start_session(store, now).unwrap();
        assert!(session_is_live(store, session.expose(), now).unwrap());
        assert!(!session_is_live(store, session.expose(), now + SESSION_TTL).unwrap());

        let configured = Secret::new("gpa_configured");
        ensure_admin_token(&db, Some(&configured), now).unwrap();
        assert!(!is_admin_token(store, generated.expose()).unwrap());
        assert!(is_admin_token(store, "gpa_configured").unwrap());
        assert!(!session_is_live(store, session.expose(), now).unwrap());

        let reset = reset_admin_token(&db, now).unwrap();
        assert!(is_admin_token(store, reset.expose()).unwrap());
        assert!(!is_admin_token(store, "gpa_configured").unwrap());
    }
}
