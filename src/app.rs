//! Wires the database, the ingest writer, the summary worker and the routes, and runs them
//! on a given listener until a shutdown signal.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::BoxEndpoint;
use poem::{Endpoint, EndpointExt, Server};

use crate::client_ip::TrustedProxies;
use crate::clock::Clock;
use crate::config::PublicUrl;
use crate::db::writer::IngestWriter;
use crate::db::{Db, DbError, Store};
use crate::http::body::WebhookBudget;
use crate::http::{AppState, routes};
use crate::ingest::Ingest;
use crate::limits::Limits;
use crate::listener::LimitedAcceptor;
use crate::manage::Manager;
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::summarize::Summarizer;
use crate::worker::{Worker, WorkerHandle, WorkerSettings};

/// Default upper bound for a webhook body; GitHub caps payloads at 25 MB.
pub const DEFAULT_BODY_LIMIT: usize = 25 * 1024 * 1024;

/// The HTML standard's advice for proxies that close quiet connections: a comment every 15 s.
pub const DEFAULT_STREAM_KEEPALIVE: Duration = Duration::from_secs(15);
/// Changes held for a stream that has not read them yet.
pub const DEFAULT_STREAM_BACKLOG: usize = 1024;

/// Everything `serve` needs, already validated. Tests build it directly.
pub struct AppConfig {
    pub db_path: PathBuf,
    /// The base that webhook URLs and docs show; from the listen address when absent. Given, its
    /// host is the one name (besides IP literals and `localhost`) requests may name in `Host`.
    pub public_url: Option<PublicUrl>,
    pub body_limit: usize,
    pub worker: WorkerSettings,
    pub summarizer: Arc<dyn Summarizer>,
    pub clock: Arc<dyn Clock>,
    /// The owner's token from PUSH_TRACKER_ADMIN_TOKEN, if set there.
    pub admin_token: Option<Secret>,
    /// False leaves pending pushes to the caller's own [`Worker`] steps (tests).
    pub run_worker: bool,
    /// Delete pushes received more than this many days ago; None keeps everything.
    pub retention_days: Option<u32>,
    /// Serve `/metrics` without the admin token (for a scraper on a private network).
    pub metrics_public: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client; none by default.
    pub trusted_proxies: TrustedProxies,
    /// Connection caps, timeouts and body budgets.
    pub limits: Limits,
    /// Failed admin logins and wrong admin tokens allowed per client (5 a minute); the
    /// contract test raises it so schemathesis's wrong tokens never turn into 429s.
    pub login_limiter: crate::auth::LoginLimiter,
    /// Notification delivery: threads, retry schedule, send timeout.
    pub notify: crate::notify::deliver::DeliverySettings,
    /// How often a live stream sends a keep-alive comment (15 s; tests shorten it).
    pub stream_keepalive: Duration,
    /// Changes a live stream may fall behind before it is disconnected (it then resumes).
    pub stream_backlog: usize,
}

impl AppConfig {
    pub fn new(db_path: impl Into<PathBuf>, summarizer: Arc<dyn Summarizer>) -> Self {
        AppConfig {
            db_path: db_path.into(),
            public_url: None,
            body_limit: DEFAULT_BODY_LIMIT,
            worker: WorkerSettings::default(),
            summarizer,
            clock: Arc::new(crate::clock::SystemClock),
            admin_token: None,
            run_worker: true,
            retention_days: None,
            metrics_public: false,
            trusted_proxies: TrustedProxies::default(),
            limits: Limits::default(),
            login_limiter: crate::auth::LoginLimiter::default(),
            notify: crate::notify::deliver::DeliverySettings::default(),
            stream_keepalive: DEFAULT_STREAM_KEEPALIVE,
            stream_backlog: DEFAULT_STREAM_BACKLOG,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("could not use the listening socket")]
    Listener(#[source] std::io::Error),
    #[error("the server stopped with an error")]
    Serve(#[source] std::io::Error),
    #[error("could not start a background thread")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    InUse(#[from] crate::single_server::LockError),
}

/// Serves on `listener` until `shutdown` resolves, then stops the worker and the writer cleanly.
pub async fn run(
    config: AppConfig,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    run_extended(config, listener, shutdown, |routes| routes).await
}

/// [`run`], with `extend` wrapping the route table; the benchmark mounts its baseline
/// endpoint next to the real routes this way, so both are served by the same server.
pub async fn run_extended<E: Endpoint + 'static>(
    config: AppConfig,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    extend: impl FnOnce(BoxEndpoint<'static>) -> E,
) -> Result<(), AppError> {
    let address = listener.local_addr().map_err(AppError::Listener)?;
    let host_policy = crate::http::host::HostPolicy::new(config.public_url.as_ref(), address);
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| PublicUrl::of_listener(address));
    // Before anything touches the file: a second server must not re-queue this one's work.
    let _one_server = crate::single_server::claim(&config.db_path)?;
    let db = Db::open(&config.db_path)?
        .with_searches_at_once(config.limits.searches_at_once, config.limits.search_wait);
    let store: Arc<dyn Store> = Arc::new(db.clone());
    let now = config.clock.now();
    if let Some(token) = crate::auth::ensure_admin_token(&*store, config.admin_token.as_ref(), now)?
    {
        print_admin_banner(&token, public_url.as_str());
    }
    // The command line shows webhook URLs on the address this server is reached at.
    store.record_public_url(public_url.as_str())?;
    let metrics = Arc::new(Metrics::new());

    // Its own threads, so a slow receiver never delays summaries or webhooks.
    let deliveries = crate::notify::deliver::Deliverer::new(
        Arc::clone(&store),
        Arc::clone(&config.clock),
        config.notify.clone(),
    )
    .spawn()
    .map_err(AppError::Thread)?;
    let delivery_nudger = deliveries.nudger();
    let worker = if config.run_worker {
        let on_final = delivery_nudger.clone();
        let worker = Worker::new(
            Arc::clone(&store),
            Arc::clone(&config.summarizer),
            Arc::clone(&config.clock),
            config.worker.clone(),
        )
        .with_metrics(Arc::clone(&metrics))
        .after_final(Arc::new(move || on_final.nudge()));
        Some(worker.spawn().map_err(AppError::Thread)?)
    } else {
        None
    };
    let nudger = worker.as_ref().map(WorkerHandle::nudger);
    let worker_nudger = nudger.clone();
    let writer_delivery_nudger = delivery_nudger.clone();
    let (writer, writer_thread) = IngestWriter::spawn(&db, move |committed| {
        if let Some(nudger) = nudger.as_ref().filter(|_| committed.queued) {
            nudger.nudge();
        }
        // A builtin summary is final as the push is stored: its deliveries are due now.
        if committed.finished {
            writer_delivery_nudger.nudge();
        }
    })?;
    deliveries.record_through(writer.clone());
    let retention = match config.retention_days {
        Some(days) => Some(
            crate::retention::spawn(Arc::clone(&store), Arc::clone(&config.clock), days)
                .map_err(AppError::Thread)?,
        ),
        None => None,
    };

    let ingest = Ingest::new(
        Arc::clone(&store),
        writer,
        Arc::clone(&config.clock),
        config.summarizer.is_offline(),
    );
    let (budget, budget_per_address) = config.limits.webhook_budgets(config.body_limit);
    let hub = crate::stream::ChangeHub::start(Arc::clone(&store), config.stream_backlog);
    let state = Arc::new(AppState {
        manager: Manager::new(Arc::clone(&store), public_url.clone()).with_notify_sender(
            crate::notify::send::Sender::new(config.notify.timeout)
                .denying_private(config.notify.deny_private),
        ),
        store,
        ingest,
        clock: config.clock,
        public_url: public_url.to_string(),
        public_origin: public_url.origin(),
        summarizer: config.summarizer.source().to_owned(),
        digest_summarizer: Arc::clone(&config.summarizer),
        body_limit: config.body_limit,
        body_timeout: config.limits.body_timeout,
        webhook_budget: WebhookBudget::new(budget, budget_per_address),
        worker: worker_nudger,
        login_limiter: config.login_limiter,
        deliveries: Some(delivery_nudger),
        trusted_proxies: config.trusted_proxies.clone(),
        metrics,
        metrics_public: config.metrics_public,
        host_policy: Arc::new(host_policy),
        hub: Arc::clone(&hub),
        stream_keepalive: config.stream_keepalive,
    });
    // Open streams would hold the graceful shutdown for its whole grace period: end them.
    let shutdown = async move {
        shutdown.await;
        hub.stop();
    };

    let limits = &config.limits;
    let acceptor = LimitedAcceptor::new(listener, limits, config.trusted_proxies)
        .map_err(AppError::Listener)?;
    tracing::info!(%address, %public_url, db = %config.db_path.display(), "serving: dashboard at {public_url}/, API docs at {public_url}/docs");
    tracing::info!(
        max_connections = limits.connection_cap(),
        max_connections_per_address = limits.max_connections_per_address,
        header_timeout_secs = limits.header_timeout.as_secs_f64(),
        body_timeout_secs = limits.body_timeout.as_secs_f64(),
        idle_timeout_secs = limits.idle_timeout.as_secs_f64(),
        webhook_budget = budget,
        webhook_budget_per_address = budget_per_address,
        "limits"
    );

    let served = Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            extend(routes(state).map_to_response().boxed()),
            shutdown,
            Some(Duration::from_secs(10)),
        )
        .await;

    // The routes and the delivery threads held the last writer handles: once both are gone the
    // writer drains its queue and ends.
    tokio::task::spawn_blocking(move || {
        deliveries.shutdown();
        let _ = writer_thread.join();
        if let Some(worker) = worker {
            worker.shutdown();
        }
        if let Some(retention) = retention {
            retention.shutdown();
        }
    })
    .await
    .ok();
    tracing::info!("stopped");
    served.map_err(AppError::Serve)
}

/// The one place a generated admin token is shown: straight to stderr, never through tracing,
/// so log shippers and JSON logs do not keep it.
fn print_admin_banner(token: &Secret, public_url: &str) {
    eprintln!(
        "\n================================================================\n\
         A new admin token was generated. It is shown this once:\n\n    {}\n\n\
         Log in to the dashboard at {public_url}/ with it, or send it to the admin API as\n\
         `Authorization: Bearer <token>`. Set PUSH_TRACKER_ADMIN_TOKEN to choose your own,\n\
         or run `git-push-tracker admin reset-token` to replace it.\n\
         ================================================================\n",
        token.expose()
    );
}
