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

/// Counts failed logins per client address in a sliding window; in memory, so a restart
/// forgives, which is fine for a brake on guessing a 238-bit token.
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

impl LoginLimiter {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        LoginLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when `client` has used up its failures and must wait before trying again.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = failures.get_mut(&client) else {
            return Ok(());
        };
        times.retain(|t| now.duration_since(*t) < self.window);
        if times.len() < self.max_failures {
            return Ok(());
        }
        let oldest = times.iter().min().copied().unwrap_or(now);
        Err(self.window.saturating_sub(now.duration_since(oldest)))
    }

    pub fn record_failure(&self, client: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Forget idle clients so a scan from many addresses cannot grow the map forever.
        if failures.len() > 10_000 {
            failures.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < self.window));
        }
        failures.entry(client).or_default().push(now);
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
        assert!(limiter.check(ip, start).is_ok());
        limiter.record_failure(ip, start);
        limiter.record_failure(ip, start);
        let wait = limiter
            .check(ip, start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limiter.check(other, start).is_ok());
        assert!(limiter.check(ip, start + Duration::from_secs(61)).is_ok());
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
