//! Process-wide counters and the Prometheus text rendering of `/metrics`.
//!
//! Event counts (webhooks, rejections, model errors, summary latency) live here as atomics,
//! bumped by the webhook handler and the worker. State that the database already knows (pushes
//! by status, queue depth, file size) is read at scrape time and passed in as a [`DbStats`], so
//! it is right even after a restart or when the CLI changed the database.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::Provider;

/// How a delivery ended, as the `outcome` label of `webhooks_received_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Stored,
    Duplicate,
    Ping,
    Ignored,
    Rejected,
}

impl WebhookOutcome {
    const ALL: [WebhookOutcome; 5] = [
        WebhookOutcome::Stored,
        WebhookOutcome::Duplicate,
        WebhookOutcome::Ping,
        WebhookOutcome::Ignored,
        WebhookOutcome::Rejected,
    ];

    fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Stored => "stored",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Ping => "ping",
            WebhookOutcome::Ignored => "ignored",
            WebhookOutcome::Rejected => "rejected",
        }
    }
}

/// Why a model attempt failed, as the `kind` label of `model_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelErrorKind {
    Transient,
    Permanent,
    Postponed,
}

impl ModelErrorKind {
    const ALL: [ModelErrorKind; 3] = [
        ModelErrorKind::Transient,
        ModelErrorKind::Permanent,
        ModelErrorKind::Postponed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ModelErrorKind::Transient => "transient",
            ModelErrorKind::Permanent => "permanent",
            ModelErrorKind::Postponed => "postponed",
        }
    }
}

/// Rejection reasons are the error codes the webhook endpoint answers with; a fixed list keeps
/// every series present from the first scrape (rate() needs the zero) and the label set bounded.
const REJECTION_REASONS: [&str; 10] = [
    "unknown_webhook",
    "payload_too_large",
    "unreadable_body",
    "unknown_provider",
    "missing_signature",
    "invalid_signature",
    "stale_timestamp",
    "unsupported_content_type",
    "malformed_payload",
    "other",
];

/// Upper bounds of the summary latency buckets, in seconds: models answer in seconds, retries
/// and quota waits take minutes to an hour.
const LATENCY_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// Provider slots: the five hosts plus "unknown" for requests refused before the host was known.
const PROVIDER_SLOTS: usize = Provider::ALL.len() + 1;

/// The counters; shared as an `Arc<Metrics>` by the routes and the worker.
#[derive(Debug, Default)]
pub struct Metrics {
    webhooks: [[AtomicU64; WebhookOutcome::ALL.len()]; PROVIDER_SLOTS],
    rejections: [AtomicU64; REJECTION_REASONS.len()],
    model_errors: [AtomicU64; ModelErrorKind::ALL.len()],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

/// What the database says at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbStats {
    /// (summary status, number of pushes) for every status present.
    pub pushes_by_status: Vec<(String, u64)>,
    pub queue_depth: u64,
    /// The main file plus its write-ahead log.
    pub size_bytes: u64,
}

fn provider_slot(provider: Option<Provider>) -> usize {
    provider
        .and_then(|p| Provider::ALL.iter().position(|x| *x == p))
        .unwrap_or(Provider::ALL.len())
}

fn provider_label(slot: usize) -> &'static str {
    Provider::ALL.get(slot).map_or("unknown", |p| p.as_str())
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::default()
    }

    /// Counts one delivery; `provider` is None when it was refused before the host was known.
    pub fn webhook(&self, provider: Option<Provider>, outcome: WebhookOutcome) {
        let o = WebhookOutcome::ALL
            .iter()
            .position(|x| *x == outcome)
            .unwrap_or(0);
        self.webhooks[provider_slot(provider)][o].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused delivery under its error code (and as a `rejected` delivery).
    pub fn rejection(&self, provider: Option<Provider>, code: &str) {
        self.webhook(provider, WebhookOutcome::Rejected);
        let slot = REJECTION_REASONS
            .iter()
            .position(|r| *r == code)
            .unwrap_or(REJECTION_REASONS.len() - 1);
        self.rejections[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub fn model_error(&self, kind: ModelErrorKind) {
        let k = ModelErrorKind::ALL
            .iter()
            .position(|x| *x == kind)
            .unwrap_or(0);
        self.model_errors[k].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time from a push's arrival to its summary.
    pub fn summary_latency(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, db: &DbStats) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        header(
            &mut out,
            "git_push_tracker_build_info",
            "gauge",
            "Version and commit of the running binary.",
        );
        let _ = writeln!(
            out,
            "git_push_tracker_build_info{{version=\"{}\",commit=\"{}\",target=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            crate::BUILD_COMMIT,
            crate::BUILD_TARGET
        );

        header(
            &mut out,
            "git_push_tracker_webhooks_received_total",
            "counter",
            "Webhook deliveries by provider and outcome (stored, duplicate, ping, ignored, rejected).",
        );
        for (slot, row) in self.webhooks.iter().enumerate() {
            for (outcome, count) in WebhookOutcome::ALL.iter().zip(row) {
                let _ = writeln!(
                    out,
                    "git_push_tracker_webhooks_received_total{{provider=\"{}\",outcome=\"{}\"}} {}",
                    provider_label(slot),
                    outcome.as_str(),
                    load(count)
                );
            }
        }

        header(
            &mut out,
            "git_push_tracker_webhook_rejections_total",
            "counter",
            "Refused webhook deliveries by error code.",
        );
        for (reason, count) in REJECTION_REASONS.iter().zip(&self.rejections) {
            let _ = writeln!(
                out,
                "git_push_tracker_webhook_rejections_total{{reason=\"{reason}\"}} {}",
                load(count)
            );
        }

        header(
            &mut out,
            "git_push_tracker_pushes",
            "gauge",
            "Stored pushes by summary status.",
        );
        for status in ["pending", "in_progress", "summarized", "failed"] {
            let n = db
                .pushes_by_status
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "git_push_tracker_pushes{{status=\"{status}\"}} {n}");
        }

        header(
            &mut out,
            "git_push_tracker_summary_queue_depth",
            "gauge",
            "Pushes waiting for a summary.",
        );
        let _ = writeln!(
            out,
            "git_push_tracker_summary_queue_depth {}",
            db.queue_depth
        );

        header(
            &mut out,
            "git_push_tracker_summary_latency_seconds",
            "histogram",
            "Time from a push's arrival to its summary by the worker.",
        );
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "git_push_tracker_summary_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                load(bucket)
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "git_push_tracker_summary_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "git_push_tracker_summary_latency_seconds_sum {}",
            load(&self.latency_sum_micros) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "git_push_tracker_summary_latency_seconds_count {count}"
        );

        header(
            &mut out,
            "git_push_tracker_model_errors_total",
            "counter",
            "Failed model attempts by kind (transient: retried, permanent: given up, postponed: quota).",
        );
        for (kind, count) in ModelErrorKind::ALL.iter().zip(&self.model_errors) {
            let _ = writeln!(
                out,
                "git_push_tracker_model_errors_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                load(count)
            );
        }

        header(
            &mut out,
            "git_push_tracker_database_size_bytes",
            "gauge",
            "Size of the SQLite database file plus its write-ahead log.",
        );
        let _ = writeln!(
            out,
            "git_push_tracker_database_size_bytes {}",
            db.size_bytes
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_every_observation() {
        let m = Metrics::new();
        m.summary_latency(Duration::from_millis(300));
        m.summary_latency(Duration::from_secs(7));
        m.summary_latency(Duration::from_secs(99_999));
        let text = m.render(&DbStats::default());
        assert!(text.contains("_bucket{le=\"0.5\"} 1\n"), "{text}");
        assert!(text.contains("_bucket{le=\"10\"} 2\n"), "{text}");
        assert!(text.contains("_bucket{le=\"3600\"} 2\n"), "{text}");
        assert!(text.contains("_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("git_push_tracker_summary_latency_seconds_count 3\n"));
    }

    #[test]
    fn an_unlisted_rejection_code_is_counted_as_other() {
        let m = Metrics::new();
        m.rejection(None, "something_new");
        let text = m.render(&DbStats::default());
        assert!(
            text.contains("rejections_total{reason=\"other\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("{provider=\"unknown\",outcome=\"rejected\"} 1\n"));
    }
}
