//! Git Push Tracker: receives git push webhooks, stores them in SQLite, summarizes each push and
//! serves the summaries through a project-scoped REST API and an embedded dashboard.
#![forbid(unsafe_code)]

pub mod app; // wires db, writer, worker and routes; runs until shutdown
pub mod auth; // the owner's admin token, sessions and login limit
pub mod background; // the threads that tick, sleep, get nudged and stop: worker, retention, checkpointer
pub mod cli; // the command line: flags, env vars, subcommands
pub mod client_ip; // the client address behind trusted reverse proxies (X-Forwarded-For)
pub mod clock; // injected time
pub mod config; // validation of flag and environment values
pub mod db; // the storage façade and all SQL: pool, migrations, projects, keys, pushes, queue, ingest writer
pub mod domain; // projects, keys, pushes, commits: types without I/O
pub mod error_code; // the catalog of error codes, their statuses and messages
pub mod history; // ask the history: search, filters, digests, activity, for one project scope
pub mod http; // routes: webhooks, public and admin API, dashboard, docs, health, metrics
pub mod ingest; // the webhook pipeline without HTTP: hook lookup, verify, first summary, store
pub mod limits; // connection caps, timeouts, body budgets and size caps, with their defaults
pub mod listener; // the accept loop: connection caps, pause after errors, header and idle timeouts
pub mod manage; // owner operations shared by the CLI and the admin API
pub mod metrics; // counters and the Prometheus text of /metrics
pub mod notify; // notifications: kinds, filters, formatting, signing, the delivery threads
pub mod outbound; // what the outbound HTTP clients read alike in an answer: Retry-After
pub mod progress; // a progress bar on a terminal, a line per tenth otherwise: backups
pub mod retention; // the thread that deletes pushes older than --retention-days
pub mod secret; // a string that never prints
pub mod single_server; // one `serve` per database file: a lock held for its lifetime
pub mod stream; // the change log's fan-out to live streams, and their filter
pub mod summarize; // push -> bullets: builtin, Gemini, OpenAI-compatible
pub mod tokens; // random keys, hook ids and secrets; key hashes
pub mod webhook; // verify and parse deliveries from every git host
pub mod worker; // the summary worker thread

/// The git commit this binary was built from, or "unknown" (set by build.rs).
pub const BUILD_COMMIT: &str = env!("GIT_PUSH_TRACKER_BUILD_COMMIT");
/// The target triple this binary was built for (set by build.rs).
pub const BUILD_TARGET: &str = env!("GIT_PUSH_TRACKER_BUILD_TARGET");
/// What `--version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GIT_PUSH_TRACKER_BUILD_COMMIT"),
    ", ",
    env!("GIT_PUSH_TRACKER_BUILD_TARGET"),
    ")"
);

/// An error and its causes on one line, for logs: `outer: middle: root`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
