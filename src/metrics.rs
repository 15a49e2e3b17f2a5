//! Process-wide counters and their Prometheus exposition at `/metrics`, through `prometheus-client`.
//!
//! Event counts (webhooks, rejections, model errors, summary latency) live here, bumped by the
//! webhook handler and the worker. State that the database already knows (pushes by status,
//! queue depth, file size) is read at scrape time by `http::scrape` and passed in as a
//! [`DbStats`], so it is right even after a restart or when the CLI changed the database.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::domain::Provider;
use crate::error_code::ErrorCode;

/// What `/metrics` is served as: the OpenMetrics text format, which Prometheus (2.5 and later)
/// asks for first and which `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

crate::domain::text_enum! {
    /// How a delivery ended, as the `outcome` label of `webhooks_received_total`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum WebhookOutcome {
        Stored = "stored",
        Duplicate = "duplicate",
        Ping = "ping",
        Ignored = "ignored",
        Rejected = "rejected",
    }
}

crate::domain::text_enum! {
    /// Why a model attempt failed, as the `kind` label of `model_errors_total`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ModelErrorKind {
        Transient = "transient",
        Permanent = "permanent",
        Postponed = "postponed",
    }
}

/// The codes a webhook delivery can be refused with: their series exist from the first scrape,
/// at zero, so `rate()` and `increase()` see the first rejection. Any other code is still
/// counted, under its own name, from its first use; this list only seeds.
const SEEDED_REJECTIONS: [ErrorCode; 9] = [
    ErrorCode::UnknownWebhook,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnreadableBody,
    ErrorCode::UnknownProvider,
    ErrorCode::MissingSignature,
    ErrorCode::InvalidSignature,
    ErrorCode::StaleTimestamp,
    ErrorCode::UnsupportedContentType,
    ErrorCode::MalformedPayload,
];

/// The summary statuses `pushes` always reports, at zero when none are stored.
const PUSH_STATUSES: [&str; 4] = ["pending", "in_progress", "summarized", "failed"];

/// Upper bounds of the summary latency buckets, in seconds: models answer in seconds, retries
/// and quota waits take minutes to an hour.
const LATENCY_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// `provider` is "unknown" for requests refused before the host was known.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    provider: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
    target: &'static str,
}

/// A gauge of a count or size the database reported.
type CountGauge = Gauge<u64, std::sync::atomic::AtomicU64>;

/// The counters; shared as an `Arc<Metrics>` by the routes and the worker.
#[derive(Debug)]
pub struct Metrics {
    webhooks: Family<WebhookLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    model_errors: Family<KindLabels, Counter>,
    latency: Histogram,
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

fn provider_label(provider: Option<Provider>) -> &'static str {
    provider.map_or("unknown", Provider::as_str)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every fixed label combination starts at zero, so it is in the first scrape.
    pub fn new() -> Self {
        let metrics = Metrics {
            webhooks: Family::default(),
            rejections: Family::default(),
            model_errors: Family::default(),
            latency: Histogram::new(LATENCY_BUCKETS),
        };
        let providers = Provider::ALL.map(Some).into_iter().chain([None]);
        for provider in providers {
            for outcome in WebhookOutcome::ALL {
                let _ = metrics.webhooks.get_or_create(&WebhookLabels {
                    provider: provider_label(provider),
                    outcome: outcome.as_str(),
                });
            }
        }
        for code in SEEDED_REJECTIONS {
            let _ = metrics.rejections.get_or_create(&RejectionLabels {
                reason: code.as_str(),
            });
        }
        for kind in ModelErrorKind::ALL {
            let _ = metrics.model_errors.get_or_create(&KindLabels {
                kind: kind.as_str(),
            });
        }
        metrics
    }

    /// Counts one delivery; `provider` is None when it was refused before the host was known.
    pub fn webhook(&self, provider: Option<Provider>, outcome: WebhookOutcome) {
        let labels = WebhookLabels {
            provider: provider_label(provider),
            outcome: outcome.as_str(),
        };
        self.webhooks.get_or_create(&labels).inc();
    }

    /// Counts a refused delivery under its error code (and as a `rejected` delivery). The
    /// code is a `&'static str`, from the error catalog, never from the request: the label set
    /// stays bounded.
    pub fn rejection(&self, provider: Option<Provider>, reason: &'static str) {
        self.webhook(provider, WebhookOutcome::Rejected);
        let labels = RejectionLabels { reason };
        self.rejections.get_or_create(&labels).inc();
    }

    pub fn model_error(&self, kind: ModelErrorKind) {
        let labels = KindLabels {
            kind: kind.as_str(),
        };
        self.model_errors.get_or_create(&labels).inc();
    }

    /// Records the time from a push's arrival to its summary.
    pub fn summary_latency(&self, latency: Duration) {
        self.latency.observe(latency.as_secs_f64());
    }

    /// The OpenMetrics text of every series (see [`CONTENT_TYPE`]), with the database's
    /// figures as gauges. Counters are registered without `_total`: the encoder appends it.
    pub fn render(&self, db: &DbStats) -> String {
        let mut registry = Registry::with_prefix("git_push_tracker");

        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: crate::BUILD_COMMIT,
                target: crate::BUILD_TARGET,
            })
            .set(1);
        registry.register(
            "build_info",
            "Version and commit of the running binary",
            build,
        );
        registry.register(
            "webhooks_received",
            "Webhook deliveries by provider and outcome (stored, duplicate, ping, ignored, rejected)",
            self.webhooks.clone(),
        );
        registry.register(
            "webhook_rejections",
            "Refused webhook deliveries by error code",
            self.rejections.clone(),
        );

        let pushes = Family::<StatusLabels, CountGauge>::default();
        for status in PUSH_STATUSES {
            let n = db
                .pushes_by_status
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            pushes.get_or_create(&StatusLabels { status }).set(n);
        }
        registry.register("pushes", "Stored pushes by summary status", pushes);
        registry.register(
            "summary_queue_depth",
            "Pushes waiting for a summary",
            gauge(db.queue_depth),
        );
        registry.register(
            "summary_latency_seconds",
            "Time from a push's arrival to its summary by the worker",
            self.latency.clone(),
        );
        registry.register(
            "model_errors",
            "Failed model attempts by kind (transient: retried, permanent: given up, postponed: quota)",
            self.model_errors.clone(),
        );
        registry.register(
            "database_size_bytes",
            "Size of the SQLite database file plus its write-ahead log",
            gauge(db.size_bytes),
        );

        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

fn gauge(value: u64) -> CountGauge {
    let gauge = CountGauge::default();
    gauge.set(value);
    gauge
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every series the hand-written 0.0.4 renderer printed at commit 9acad0f (plus the
    /// `stale_timestamp` reason it gained in 38c89c4), as
    /// "type name{labels}", except `git_push_tracker_build_info` (its labels name the build) and
    /// `webhook_rejections_total{reason="other"}`, a catch-all for codes missing from its list;
    /// every code is now counted under its own name.
    const SERIES_BEFORE: &str = include_str!("../tests/fixtures/metrics-series-9acad0f.txt");

    /// "type name{labels}" of every sample, the type from its family's `# TYPE`.
    fn series(text: &str) -> BTreeSet<String> {
        let mut types = Vec::new();
        let mut out = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.push((name.to_owned(), kind.to_owned()));
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (sample, _value) = line.rsplit_once(' ').unwrap();
            let name = sample.split_once('{').map_or(sample, |(name, _)| name);
            let kind = types
                .iter()
                .find(|(family, _)| {
                    name == family
                        || ["_total", "_bucket", "_sum", "_count"]
                            .iter()
                            .any(|suffix| name.strip_suffix(suffix) == Some(family))
                })
                .map_or("untyped", |(_, kind)| kind.as_str());
            out.insert(normalize(kind, sample));
        }
        out
    }

    /// `kind name{labels}` with the labels sorted and `le` bounds as numbers (the old renderer
    /// wrote `1`, OpenMetrics writes `1.0`; Prometheus reads both as the same bound).
    fn normalize(kind: &str, sample: &str) -> String {
        let (name, labels) = sample.split_once('{').unwrap_or((sample, ""));
        let mut labels: Vec<String> = labels
            .trim_end_matches('}')
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| match l.strip_prefix("le=\"") {
                Some(bound) if bound != "+Inf\"" => {
                    let bound: f64 = bound.trim_end_matches('"').parse().unwrap();
                    format!("le=\"{bound}\"")
                }
                _ => l.to_owned(),
            })
            .collect();
        labels.sort();
        if labels.is_empty() {
            format!("{kind} {name}")
        } else {
            format!("{kind} {name}{{{}}}", labels.join(","))
        }
    }

    #[test]
    fn the_exposition_keeps_every_series_name_type_and_label_set_of_the_old_renderer() {
        let text = Metrics::new().render(&DbStats::default());
        let mut expected: BTreeSet<String> = SERIES_BEFORE
            .lines()
            .map(|line| {
                let (kind, sample) = line.split_once(' ').unwrap();
                normalize(kind, sample)
            })
            .collect();
        expected.insert(format!(
            "gauge git_push_tracker_build_info{{commit=\"{}\",target=\"{}\",version=\"{}\"}}",
            crate::BUILD_COMMIT,
            crate::BUILD_TARGET,
            env!("CARGO_PKG_VERSION")
        ));
        let actual = series(&text);
        let missing: Vec<_> = expected.difference(&actual).collect();
        let extra: Vec<_> = actual.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "missing {missing:#?}\nextra {extra:#?}\n{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_every_observation() {
        let m = Metrics::new();
        m.summary_latency(Duration::from_millis(300));
        m.summary_latency(Duration::from_secs(7));
        m.summary_latency(Duration::from_secs(99_999));
        let text = m.render(&DbStats::default());
        assert!(text.contains("_bucket{le=\"0.5\"} 1\n"), "{text}");
        assert!(text.contains("_bucket{le=\"10.0\"} 2\n"), "{text}");
        assert!(text.contains("_bucket{le=\"3600.0\"} 2\n"), "{text}");
        assert!(text.contains("_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("git_push_tracker_summary_latency_seconds_count 3\n"));
    }

    #[test]
    fn a_rejection_code_outside_the_seeded_list_gets_its_own_series() {
        let m = Metrics::new();
        m.rejection(None, "something_new");
        let text = m.render(&DbStats::default());
        for line in [
            "rejections_total{reason=\"something_new\"} 1\n",
            "{provider=\"unknown\",outcome=\"rejected\"} 1\n",
        ] {
            assert!(text.contains(line), "{line}{text}");
        }
    }

    #[test]
    fn database_figures_are_the_ones_passed_in_at_scrape_time() {
        let db = DbStats {
            pushes_by_status: vec![("pending".into(), 2), ("failed".into(), 1)],
            queue_depth: 2,
            size_bytes: 4096,
        };
        let text = Metrics::new().render(&db);
        for line in [
            "git_push_tracker_pushes{status=\"pending\"} 2\n",
            "git_push_tracker_pushes{status=\"failed\"} 1\n",
            "git_push_tracker_pushes{status=\"summarized\"} 0\n",
            "git_push_tracker_summary_queue_depth 2\n",
            "git_push_tracker_database_size_bytes 4096\n",
        ] {
            assert!(text.contains(line), "{line}{text}");
        }
    }
}
