//! The limits that keep a client without credentials from exhausting memory, descriptors or CPU:
//! how many connections, how long a client may take to send its headers and bodies, how much
//! webhook body the server holds at once, and how large an `/api` body may be.
//!
//! Contact points: `listener` enforces the connection caps and timeouts, `http::body` the body
//! deadline and the webhook budget, `http::api_body` the `/api` size caps; `cli` turns flags into
//! a [`Limits`], tests build one directly.

use std::time::Duration;

/// Largest body of `POST /api/admin/login` (`{"token": "..."}`).
pub const LOGIN_BODY_LIMIT: usize = 4 * 1024;
/// Largest body of every other `/api` request (admin requests are a few hundred bytes).
pub const API_BODY_LIMIT: usize = 64 * 1024;
/// What a 503 for a full budget or too many connections asks the client to wait, in seconds.
pub const RETRY_AFTER_SECS: u64 = 5;

pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Searches (full-text or other extended filters) reading the database at once: half of its
/// eight pooled connections, so a slow search over a long history never takes them all.
pub const DEFAULT_SEARCHES_AT_ONCE: usize = 4;
/// How long a search waits for its turn before it is answered 503 `server_busy`.
pub const DEFAULT_SEARCH_WAIT_SECS: u64 = 30;
pub const DEFAULT_WEBHOOK_BUDGET: usize = 256 * 1024 * 1024;
pub const DEFAULT_WEBHOOK_BUDGET_PER_ADDRESS: usize = 64 * 1024 * 1024;
/// Descriptors kept free below the process's limit when the connection cap is derived from it
/// (the database, its log, the listening socket, outgoing model requests).
const RESERVED_DESCRIPTORS: usize = 64;

/// Every limit; [`Limits::default`] holds the defaults the README lists.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at once; None: [`DEFAULT_MAX_CONNECTIONS`], lowered to fit under the
    /// process's descriptor limit.
    pub max_connections: Option<usize>,
    /// Open connections at once from one client address (trusted proxies are exempt).
    pub max_connections_per_address: usize,
    /// Time from accepting a connection to the end of its first request's headers.
    pub header_timeout: Duration,
    /// Time to read a whole request body.
    pub body_timeout: Duration,
    /// A connection on which nothing is read or written for this long is closed.
    pub idle_timeout: Duration,
    /// Webhook body bytes held at once, over all clients.
    pub webhook_budget: usize,
    /// Webhook body bytes held at once for one client address.
    pub webhook_budget_per_address: usize,
    /// Searches reading the database at once; more wait their turn up to `search_wait`.
    pub searches_at_once: usize,
    pub search_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: None,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            webhook_budget: DEFAULT_WEBHOOK_BUDGET,
            webhook_budget_per_address: DEFAULT_WEBHOOK_BUDGET_PER_ADDRESS,
            searches_at_once: DEFAULT_SEARCHES_AT_ONCE,
            search_wait: Duration::from_secs(DEFAULT_SEARCH_WAIT_SECS),
        }
    }
}

impl Limits {
    /// The connection cap in force: the configured one, else the default kept under the
    /// descriptor limit so that the cap, not EMFILE, refuses the excess.
    pub fn connection_cap(&self) -> usize {
        self.max_connections.unwrap_or_else(|| {
            let fds = open_files_limit().unwrap_or(usize::MAX);
            DEFAULT_MAX_CONNECTIONS.min(fds.saturating_sub(RESERVED_DESCRIPTORS).max(16))
        })
    }

    /// The webhook budgets in force, (global, per address): never below `body_limit`, so that
    /// one body of the largest accepted size always fits when nothing else is held.
    pub fn webhook_budgets(&self, body_limit: usize) -> (usize, usize) {
        let per_address = self.webhook_budget_per_address.max(body_limit);
        (self.webhook_budget.max(per_address), per_address)
    }
}

/// The soft limit on open files, from `/proc/self/limits` ("Max open files  1024  4096  files").
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_fits_under_the_descriptor_limit() {
        let cap = Limits::default().connection_cap();
        assert!(cap <= DEFAULT_MAX_CONNECTIONS);
        if let Some(fds) = open_files_limit() {
            assert!(cap < fds, "{cap} connections with {fds} descriptors");
        }
    }

    #[test]
    fn budgets_always_hold_one_largest_body() {
        let limits = Limits {
            webhook_budget: 10,
            webhook_budget_per_address: 5,
            ..Limits::default()
        };
        assert_eq!(limits.webhook_budgets(100), (100, 100));
        assert_eq!(limits.webhook_budgets(1), (10, 5));
    }
}
