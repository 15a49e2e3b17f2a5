//! The command line: `serve`, `project`, `key`, `push`, `notify` and `openapi`. Every flag can also be
//! set with a `PUSH_TRACKER_*` environment variable.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::{self, AppConfig};
use crate::client_ip::{IpNet, TrustedProxies};
use crate::clock::SystemClock;
use crate::db::Db;
use crate::http::admin::{AdminKey, AdminProject, CreatedKey, ProjectSecret};
use crate::limits::{self, Limits};
use crate::manage::Manager;
use crate::secret::Secret;
use crate::summarize::{
    self, DEFAULT_INPUT_BUDGET, GeminiConfig, SummarizerKind, SummarizerSettings,
};
use crate::worker::WorkerSettings;
use poem_openapi::types::ToJSON;

#[derive(Debug, Parser)]
#[command(
    name = "git-push-tracker",
    version = crate::LONG_VERSION,
    about = "Self-hosted git push summaries: webhooks in, SQLite, a project-scoped REST API out."
)]
pub struct Cli {
    /// The SQLite database file (created if missing).
    #[arg(
        long,
        global = true,
        env = "PUSH_TRACKER_DB",
        default_value = "./git-push-tracker.db"
    )]
    pub db: PathBuf,

    /// Log format.
    #[arg(long, global = true, env = "PUSH_TRACKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: webhooks, API, docs and the summary worker.
    Serve(Box<ServeArgs>),
    /// Create, list, delete projects; rotate a project's webhook secret.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Create, list and revoke a project's API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Act on stored pushes.
    #[command(subcommand)]
    Push(PushCommand),
    /// Send a project's push summaries to Slack, Discord, Teams, Mattermost, ntfy or a webhook.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Print the OpenAPI document the server serves at /openapi.json.
    Openapi,
    /// The owner's admin token for the dashboard and the admin API.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Ask the running server's /healthz, for a container's HEALTHCHECK (a scratch image has no
    /// curl): exit 0 when it answers 200, 1 otherwise.
    Healthcheck {
        /// The address the server listens on; 0.0.0.0 and [::] are asked on loopback.
        #[arg(long, env = "PUSH_TRACKER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Copy the database to FILE while the server keeps running (SQLite online backup).
    Backup {
        /// Where to write the copy; an existing file is kept unless --force is given.
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Replace the admin token and log out every dashboard session; prints the new token once.
    ResetToken,
}

/// Where the server listens and the URL it is reached at.
#[derive(Debug, Args)]
pub struct UrlArgs {
    /// Address and port to listen on.
    #[arg(long, env = "PUSH_TRACKER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The public base URL shown in webhook URLs and docs (default: from --listen; project
    /// commands use the one the server on this database recorded at its start).
    #[arg(long, env = "PUSH_TRACKER_PUBLIC_URL")]
    pub public_url: Option<String>,
}

impl UrlArgs {
    fn resolve(&self) -> anyhow::Result<crate::config::PublicUrl> {
        Ok(crate::config::PublicUrl::resolve(
            self.public_url.as_deref(),
            self.listen,
        )?)
    }

    fn given_public_url(&self) -> Option<&str> {
        self.public_url.as_deref().filter(|u| !u.trim().is_empty())
    }

    /// The base of the webhook URLs a command prints: `--public-url` when given, else the one
    /// the server recorded at its last start on this database, else one from `--listen`.
    fn for_command(&self, store: &dyn crate::db::Store) -> anyhow::Result<String> {
        if self.given_public_url().is_none()
            && let Some(recorded) = store.recorded_public_url()?
        {
            return Ok(recorded);
        }
        Ok(self.resolve()?.to_string())
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub url: UrlArgs,

    /// Largest accepted webhook body, in bytes.
    #[arg(long, env = "PUSH_TRACKER_BODY_LIMIT", default_value_t = app::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,

    /// Longest time between two looks at the summary queue, in seconds (a new push wakes the
    /// worker at once).
    #[arg(long, env = "PUSH_TRACKER_WORKER_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub worker_interval: u64,

    /// Summary attempts per push before it is marked failed.
    #[arg(long, env = "PUSH_TRACKER_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,

    /// Delete pushes (with their commits) received more than this many days ago, at start
    /// and every hour. Default: keep everything.
    #[arg(long, env = "PUSH_TRACKER_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub retention_days: Option<u32>,

    /// Serve /metrics without the admin token, for a scraper on a private network.
    #[arg(long, env = "PUSH_TRACKER_METRICS_PUBLIC")]
    pub metrics_public: bool,

    /// A reverse proxy (address or network, like 127.0.0.1 or 172.16.0.0/12) whose
    /// X-Forwarded-For header names the real client, so failed logins are counted per visitor
    /// instead of all together. Repeat it, or separate several with commas. Default: none, and
    /// the header is ignored.
    #[arg(
        long = "trusted-proxy",
        value_name = "NET",
        env = "PUSH_TRACKER_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = crate::client_ip::parse_net
    )]
    pub trusted_proxies: Vec<IpNet>,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub summarizer: SummarizerArgs,

    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// How notifications are delivered.
#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// Deliveries in flight at once (to different notifications), each on its own thread.
    #[arg(long, env = "PUSH_TRACKER_NOTIFY_THREADS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub notify_threads: u64,

    /// Seconds one request to a receiver may take before it counts as a timeout.
    #[arg(long, env = "PUSH_TRACKER_NOTIFY_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub notify_timeout: u64,

    /// Scales the retry schedule (5 s, 5 min, 30 min, ...) and receivers' Retry-After; for
    /// tests, which cannot wait minutes. 1 in production.
    #[arg(
        long,
        env = "PUSH_TRACKER_NOTIFY_RETRY_SCALE",
        default_value_t = 1.0,
        hide = true
    )]
    pub notify_retry_scale: f64,

    /// Refuse receivers on loopback, private and link-local addresses (by default they are
    /// allowed: Mattermost and ntfy often live on the same network); such a notification is
    /// paused with the reason.
    #[arg(long, env = "PUSH_TRACKER_NOTIFY_DENY_PRIVATE")]
    pub notify_deny_private: bool,
}

impl NotifyArgs {
    fn settings(&self) -> crate::notify::deliver::DeliverySettings {
        crate::notify::deliver::DeliverySettings {
            threads: self.notify_threads as usize,
            schedule: crate::notify::schedule::Schedule {
                scale: self.notify_retry_scale,
            },
            timeout: Duration::from_secs(self.notify_timeout),
            deny_private: self.notify_deny_private,
            give_way: crate::notify::deliver::GiveWay::default(),
        }
    }
}

/// What keeps clients without credentials from exhausting memory, descriptors or CPU.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Open connections at once; more are answered 503 and closed. Default: 4096, or fewer to
    /// stay under the process's open-files limit (LimitNOFILE).
    #[arg(long, env = "PUSH_TRACKER_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Open connections at once from one client address, IPv6 per /64 (trusted proxies are exempt).
    #[arg(long, env = "PUSH_TRACKER_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = limits::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_address: u64,

    /// Seconds from accepting a connection (or a kept-alive request's first byte) to the end of
    /// the request headers.
    #[arg(long, env = "PUSH_TRACKER_HEADER_TIMEOUT", default_value_t = limits::DEFAULT_HEADER_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,

    /// Seconds to read a whole request body.
    #[arg(long, env = "PUSH_TRACKER_BODY_TIMEOUT", default_value_t = limits::DEFAULT_BODY_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout: u64,

    /// Seconds a connection may go without reading or writing anything before it is closed.
    #[arg(long, env = "PUSH_TRACKER_IDLE_TIMEOUT", default_value_t = limits::DEFAULT_IDLE_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,

    /// Webhook body bytes held at once over all clients; a delivery that does not fit is
    /// answered 503 with Retry-After.
    #[arg(long, env = "PUSH_TRACKER_WEBHOOK_BUDGET", default_value_t = limits::DEFAULT_WEBHOOK_BUDGET)]
    pub webhook_budget: usize,

    /// Webhook body bytes held at once for one client address (IPv6: per /64).
    #[arg(long, env = "PUSH_TRACKER_WEBHOOK_BUDGET_PER_ADDRESS", default_value_t = limits::DEFAULT_WEBHOOK_BUDGET_PER_ADDRESS)]
    pub webhook_budget_per_address: usize,

    /// Searches (q, author, repository or refType filters) reading the database at once, of
    /// its 8 connections; more wait their turn up to 30 s, then are answered 503 with Retry-After.
    #[arg(long, env = "PUSH_TRACKER_SEARCHES_AT_ONCE", default_value_t = limits::DEFAULT_SEARCHES_AT_ONCE as u64, value_parser = clap::value_parser!(u64).range(1..=6))]
    pub searches_at_once: u64,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Limits {
            max_connections: self.max_connections.map(count),
            max_connections_per_address: count(self.max_connections_per_address),
            header_timeout: Duration::from_secs(self.header_timeout),
            body_timeout: Duration::from_secs(self.body_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            webhook_budget: self.webhook_budget,
            webhook_budget_per_address: self.webhook_budget_per_address,
            searches_at_once: count(self.searches_at_once),
            search_wait: Duration::from_secs(limits::DEFAULT_SEARCH_WAIT_SECS),
        }
    }
}

/// Which summarizer writes the summaries. API keys come only from the environment
/// (GEMINI_API_KEY, OPENAI_API_KEY), never from flags, which other users can read in `ps`.
#[derive(Debug, Args)]
pub struct SummarizerArgs {
    /// auto: Gemini when GEMINI_API_KEY is set, else an OpenAI-compatible server when
    /// PUSH_TRACKER_OPENAI_BASE_URL is set, else the offline builtin summarizer.
    #[arg(long, env = "PUSH_TRACKER_SUMMARIZER", value_enum, default_value_t = SummarizerKind::Auto)]
    pub summarizer: SummarizerKind,

    /// Gemini model name.
    #[arg(long, env = "PUSH_TRACKER_GEMINI_MODEL", default_value = GeminiConfig::DEFAULT_MODEL)]
    pub gemini_model: String,

    /// Scheme and host of the Gemini API; the path is appended.
    #[arg(long, env = "PUSH_TRACKER_GEMINI_BASE_URL", default_value = GeminiConfig::DEFAULT_BASE_URL)]
    pub gemini_base_url: String,

    /// Base URL of an OpenAI-compatible server, such as http://localhost:11434/v1 (Ollama).
    #[arg(long, env = "PUSH_TRACKER_OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,

    /// Model name on the OpenAI-compatible server, such as llama3.2.
    #[arg(long, env = "PUSH_TRACKER_OPENAI_MODEL")]
    pub openai_model: Option<String>,

    /// Seconds a model may take to answer before the attempt counts as failed.
    #[arg(long, env = "PUSH_TRACKER_MODEL_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub model_timeout: u64,

    /// Characters of commit data sent to a model per push; the rest is counted, not sent.
    #[arg(long, env = "PUSH_TRACKER_INPUT_BUDGET", default_value_t = DEFAULT_INPUT_BUDGET)]
    pub input_budget: usize,
}

impl SummarizerArgs {
    fn settings(&self) -> SummarizerSettings {
        let env_secret = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
                .map(Secret::new)
        };
        SummarizerSettings {
            kind: self.summarizer,
            gemini_api_key: env_secret(&["GEMINI_API_KEY", "PUSH_TRACKER_GEMINI_API_KEY"]),
            gemini_model: self.gemini_model.clone(),
            gemini_base_url: self.gemini_base_url.clone(),
            openai_base_url: self.openai_base_url.clone(),
            openai_model: self.openai_model.clone(),
            openai_api_key: env_secret(&["PUSH_TRACKER_OPENAI_API_KEY", "OPENAI_API_KEY"]),
            timeout: Duration::from_secs(self.model_timeout),
            input_budget: self.input_budget,
            ..SummarizerSettings::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project; prints its webhook URL and secret once.
    Create {
        /// Lowercase letters, digits, '-' and '_', up to 64 characters.
        name: String,
        /// Print one JSON object: {"name","webhookUrl","webhookSecret"}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        url: UrlArgs,
    },
    /// List projects with their webhook URLs and push counts.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        url: UrlArgs,
    },
    /// Delete a project with its keys, pushes and commits.
    Delete { name: String },
    /// Replace a project's webhook secret; prints the new one once.
    RotateSecret {
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        url: UrlArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a project; prints it once.
    Create {
        project: String,
        /// What the key is for, such as "dashboard" or "slack-bot".
        #[arg(long, default_value = "")]
        label: String,
        /// Print one JSON object: {"key","label","project"}.
        #[arg(long)]
        json: bool,
    },
    /// List a project's keys (never the keys themselves).
    List {
        project: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key, named by its id or its prefix (as `key list` shows them).
    Revoke { project: String, key: String },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Add a notification; prints its URL (and a webhook's signing secret) this once.
    Add {
        project: String,
        /// slack, discord, teams, mattermost, ntfy or webhook.
        #[arg(long)]
        kind: String,
        /// The receiver's URL (an ntfy URL names the topic: https://ntfy.sh/mytopic).
        #[arg(long)]
        url: String,
        /// A branch or tag glob (`main`, `release/*`, `v*`); a leading `!` excludes. Repeat
        /// it; none means every branch and tag.
        #[arg(long = "branch", value_name = "PATTERN")]
        branches: Vec<String>,
        /// A user name whose pushes are left out (`dependabot[bot]`). Repeat it.
        #[arg(long = "exclude-author", value_name = "NAME")]
        exclude_authors: Vec<String>,
        #[arg(long)]
        label: Option<String>,
        /// An access token sent as `Authorization: Bearer` (ntfy, webhook).
        #[arg(long, env = "PUSH_TRACKER_NOTIFY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print the admin API's JSON answer.
        #[arg(long)]
        json: bool,
        /// Refuse a receiver on a loopback, private or link-local address, as `serve
        /// --notify-deny-private` does.
        #[arg(long, env = "PUSH_TRACKER_NOTIFY_DENY_PRIVATE")]
        notify_deny_private: bool,
    },
    /// List a project's notifications (URLs masked).
    List {
        project: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a test message now.
    Test {
        project: String,
        id: i64,
        /// Refuse a receiver on a loopback, private or link-local address, as `serve
        /// --notify-deny-private` does.
        #[arg(long, env = "PUSH_TRACKER_NOTIFY_DENY_PRIVATE")]
        notify_deny_private: bool,
    },
    /// Stop sending until resumed.
    Pause { project: String, id: i64 },
    /// Send again (deliveries still due go out).
    Resume { project: String, id: i64 },
    /// Remove a notification with its log.
    Remove { project: String, id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum PushCommand {
    /// Queue a push for summarizing again (resets its attempts).
    Resummarize { id: String },
}

fn open_db(path: &std::path::Path) -> anyhow::Result<Db> {
    Db::open(path).with_context(|| format!("opening database {}", path.display()))
}

/// The manager of a command that prints no webhook URL, so needs no public URL to build one.
fn offline_manager(db_path: &std::path::Path) -> anyhow::Result<Manager> {
    Ok(Manager::new(open_db(db_path)?, String::new()))
}

/// `manager` sending to receivers as the server does, refusing private addresses when asked.
fn sending(manager: Manager, deny_private: bool) -> Manager {
    manager.with_notify_sender(crate::notify::send::Sender::default().denying_private(deny_private))
}

/// Prints `value` as one line of JSON, in the admin API's shape for the same thing.
fn print_json(value: impl ToJSON) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &value.to_json())?;
    writeln!(out)?;
    Ok(())
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&cli.db, *args).await,
        Command::Openapi => {
            println!("{}", crate::http::openapi_document());
            Ok(())
        }
        Command::Project(cmd) => tokio::task::spawn_blocking(move || project(&cli.db, cmd)).await?,
        Command::Key(cmd) => tokio::task::spawn_blocking(move || key(&cli.db, cmd)).await?,
        Command::Push(cmd) => tokio::task::spawn_blocking(move || push(&cli.db, cmd)).await?,
        Command::Notify(cmd) => tokio::task::spawn_blocking(move || notify(&cli.db, cmd)).await?,
        Command::Admin(cmd) => tokio::task::spawn_blocking(move || admin(&cli.db, cmd)).await?,
        Command::Healthcheck { listen } => {
            tokio::task::spawn_blocking(move || healthcheck(listen)).await?
        }
        Command::Backup { file, force } => {
            tokio::task::spawn_blocking(move || backup(&cli.db, &file, force)).await?
        }
    }
}

async fn serve(db_path: &std::path::Path, args: ServeArgs) -> anyhow::Result<()> {
    let public_url = args.url.resolve()?;
    let admin_token = crate::config::admin_token(std::env::var("PUSH_TRACKER_ADMIN_TOKEN").ok())?;
    let settings = args.summarizer.settings();
    let summarizer = summarize::build(&settings)?;
    let listener = std::net::TcpListener::bind(args.url.listen)
        .with_context(|| format!("listening on {}", args.url.listen))?;
    tracing::info!("summaries by {}", settings.describe());
    let config = AppConfig {
        db_path: db_path.to_owned(),
        // Only a URL that was given restricts the Host names answered; see http::host.
        public_url: args.url.given_public_url().is_some().then_some(public_url),
        body_limit: args.body_limit,
        worker: WorkerSettings {
            interval: Duration::from_secs(args.worker_interval),
            max_attempts: args.max_attempts,
            ..WorkerSettings::default()
        },
        summarizer,
        clock: Arc::new(SystemClock),
        admin_token,
        run_worker: true,
        retention_days: args.retention_days,
        metrics_public: args.metrics_public,
        trusted_proxies: TrustedProxies::new(args.trusted_proxies),
        limits: args.limits.limits(),
        login_limiter: crate::auth::LoginLimiter::default(),
        notify: args.notify.settings(),
        stream_keepalive: app::DEFAULT_STREAM_KEEPALIVE,
        stream_backlog: app::DEFAULT_STREAM_BACKLOG,
    };
    app::run(config, listener, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

fn project(db_path: &std::path::Path, cmd: ProjectCommand) -> anyhow::Result<()> {
    let db = open_db(db_path)?;
    match cmd {
        ProjectCommand::Create { name, json, url } => {
            let base = url.for_command(&db)?;
            let manager = Manager::new(db, base);
            let created = manager.create_project(&name, Utc::now())?;
            if json {
                print_json(ProjectSecret::from(created))
            } else {
                println!("Created project {}.\n", created.name);
                println!("Webhook URL:     {}", created.webhook_url);
                println!("Webhook secret:  {}\n", created.webhook_secret.expose());
                println!(
                    "The secret is shown this once. In your git host's webhook settings, paste the URL,"
                );
                println!(
                    "set the secret (GitLab: \"Secret token\"), choose application/json and push events."
                );
                println!(
                    "Then create an API key: git-push-tracker key create {} --label dashboard",
                    created.name
                );
                Ok(())
            }
        }
        ProjectCommand::List { json, url } => {
            let base = url.for_command(&db)?;
            let manager = Manager::new(db, base);
            let projects = manager.list_projects()?;
            if json {
                let listed: Vec<AdminProject> = projects.into_iter().map(Into::into).collect();
                return print_json(listed);
            }
            if projects.is_empty() {
                println!("No projects yet. Create one: git-push-tracker project create my-app");
                return Ok(());
            }
            let header = ["NAME", "PUSHES", "PENDING", "FAILED", "WEBHOOK URL"];
            let rows = projects.iter().map(|p| {
                vec![
                    p.project.name.to_string(),
                    p.counts.total.to_string(),
                    p.counts.pending.to_string(),
                    p.counts.failed.to_string(),
                    p.webhook_url.clone(),
                ]
            });
            let counts = Align::Right;
            let aligns = [Align::Left, counts, counts, counts, Align::Left];
            print!("{}", table(&header, &aligns, rows));
            Ok(())
        }
        ProjectCommand::Delete { name } => {
            Manager::new(db, String::new()).delete_project(&name)?;
            println!("Deleted project {name} with its keys and pushes.");
            Ok(())
        }
        ProjectCommand::RotateSecret { name, json, url } => {
            let base = url.for_command(&db)?;
            let rotated = Manager::new(db, base).rotate_secret(&name)?;
            if json {
                print_json(ProjectSecret::from(rotated))
            } else {
                println!(
                    "New webhook secret for {}: {}",
                    rotated.name,
                    rotated.webhook_secret.expose()
                );
                println!(
                    "Shown this once. Update it in your git host's webhook settings now: deliveries signed"
                );
                println!("with the old secret are refused from this moment.");
                Ok(())
            }
        }
    }
}

fn key(db_path: &std::path::Path, cmd: KeyCommand) -> anyhow::Result<()> {
    let manager = offline_manager(db_path)?;
    match cmd {
        KeyCommand::Create {
            project,
            label,
            json,
        } => {
            let created = manager.create_key(&project, &label, Utc::now())?;
            if json {
                print_json(CreatedKey::from(created))
            } else {
                println!("API key for {}: {}", created.project, created.key.expose());
                println!("Shown this once; store it now. Use it as: Authorization: Bearer <key>");
                Ok(())
            }
        }
        KeyCommand::List { project, json } => {
            let keys = manager.list_keys(&project)?;
            let iso = crate::http::api::iso;
            if json {
                let listed: Vec<AdminKey> = keys.into_iter().map(Into::into).collect();
                return print_json(listed);
            }
            if keys.is_empty() {
                println!(
                    "No keys yet. Create one: git-push-tracker key create {project} --label dashboard"
                );
                return Ok(());
            }
            let header = ["ID", "PREFIX", "LABEL", "CREATED", "LAST USED", "STATUS"];
            let rows = keys.iter().map(|k| {
                vec![
                    k.id.to_string(),
                    k.prefix.clone(),
                    k.label.clone(),
                    iso(k.created_at),
                    k.last_used_at.map(iso).unwrap_or_else(|| "never".into()),
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                    .to_owned(),
                ]
            });
            print!("{}", table(&header, &[Align::Left; 6], rows));
            Ok(())
        }
        KeyCommand::Revoke { project, key } => {
            let revoked = manager.revoke_key(&project, &key, Utc::now())?;
            println!(
                "Revoked key {} ({}) of {project}.",
                revoked.id, revoked.prefix
            );
            Ok(())
        }
    }
}

/// How long `healthcheck` waits for the whole answer: well inside the image's HEALTHCHECK
/// timeout (5 s), and a server that needs longer to say it is up is not healthy.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// GETs /healthz on the address the server listens on; an error (exit 1) unless it answers 200.
fn healthcheck(listen: SocketAddr) -> anyhow::Result<()> {
    let url = format!("http://{}/healthz", reachable(listen));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(HEALTHCHECK_TIMEOUT))
        .http_status_as_error(false)
        // The server is on this machine: an HTTP_PROXY in the environment must not be asked.
        .proxy(None)
        .max_redirects(0)
        .build()
        .into();
    match agent.get(&url).call() {
        Ok(answer) if answer.status() == 200 => {
            println!("healthy: {url} answered 200");
            Ok(())
        }
        Ok(answer) => anyhow::bail!("unhealthy: {url} answered {}", answer.status()),
        Err(e) => {
            anyhow::bail!("unhealthy: no answer from {url} within {HEALTHCHECK_TIMEOUT:?} ({e})")
        }
    }
}

/// The address to connect to for a listen address: a server listening on every interface
/// (0.0.0.0, [::]) is reached on loopback.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

fn backup(db_path: &std::path::Path, file: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let mut progress = crate::progress::ByteProgress::new("backup");
    let pages = crate::db::backup::PAGES_PER_STEP;
    crate::db::backup::backup_with_progress(db_path, file, force, pages, &mut |p| {
        progress.update(p.copied, p.total)
    })
    .with_context(|| format!("backing up {} to {}", db_path.display(), file.display()))?;
    println!("Backed up {} to {}.", db_path.display(), file.display());
    Ok(())
}

fn notify(db_path: &std::path::Path, cmd: NotifyCommand) -> anyhow::Result<()> {
    use crate::http::notifications::{NotificationCreated, NotificationItem};
    let manager = offline_manager(db_path)?;
    match cmd {
        NotifyCommand::Add {
            project,
            kind,
            url,
            branches,
            exclude_authors,
            label,
            token,
            json,
            notify_deny_private,
        } => {
            let manager = sending(manager, notify_deny_private);
            let request = crate::manage::NotificationRequest {
                kind,
                url,
                label,
                branches: (!branches.is_empty()).then_some(branches),
                exclude_authors: (!exclude_authors.is_empty()).then_some(exclude_authors),
                token,
            };
            let created = manager.add_notification(&project, &request, Utc::now())?;
            let item = NotificationCreated::from(created);
            if json {
                return print_json(item);
            }
            let n = &item.notification;
            println!(
                "Added notification {} ({}) to {project}: {}",
                n.id, n.kind, n.url
            );
            if let Some(secret) = &item.secret {
                println!("Signing secret (Standard Webhooks), shown this once: {secret}");
            }
            println!(
                "Send a test message: git-push-tracker notify test {project} {}",
                n.id
            );
            Ok(())
        }
        NotifyCommand::List { project, json } => {
            let listed: Vec<NotificationItem> = manager
                .list_notifications(&project)?
                .into_iter()
                .map(Into::into)
                .collect();
            if json {
                return print_json(listed);
            }
            if listed.is_empty() {
                println!(
                    "No notifications yet. Add one: git-push-tracker notify add {project} --kind slack --url https://hooks.slack.com/services/..."
                );
                return Ok(());
            }
            let header = [
                "ID",
                "KIND",
                "LABEL",
                "URL",
                "BRANCHES",
                "STATUS",
                "LAST DELIVERY",
            ];
            let rows = listed.iter().map(|n| {
                vec![
                    n.id.to_string(),
                    n.kind.clone(),
                    n.label.clone(),
                    n.url.clone(),
                    if n.branches.is_empty() {
                        "*".to_owned()
                    } else {
                        n.branches.join(",")
                    },
                    match (&n.enabled, &n.disabled_reason) {
                        (true, _) => "active".to_owned(),
                        (false, Some(reason)) => format!("paused: {reason}"),
                        (false, None) => "paused".to_owned(),
                    },
                    n.last_delivery_at.clone().unwrap_or_else(|| "never".into()),
                ]
            });
            print!("{}", table(&header, &[Align::Left; 7], rows));
            Ok(())
        }
        NotifyCommand::Test {
            project,
            id,
            notify_deny_private,
        } => {
            let manager = sending(manager, notify_deny_private);
            let sent = manager.test_notification(&project, id, Utc::now())?;
            match (&sent.verdict, sent.status) {
                (crate::notify::send::Verdict::Delivered, Some(status)) => {
                    println!(
                        "The receiver took the test message (HTTP {status}, {} ms).",
                        sent.elapsed.as_millis()
                    );
                    Ok(())
                }
                _ => anyhow::bail!(
                    "the receiver did not take the test message: {}",
                    sent.error.as_deref().unwrap_or("no answer")
                ),
            }
        }
        NotifyCommand::Pause { project, id } => {
            manager.set_notification_enabled(&project, id, false)?;
            println!("Paused notification {id} of {project}.");
            Ok(())
        }
        NotifyCommand::Resume { project, id } => {
            manager.set_notification_enabled(&project, id, true)?;
            println!("Resumed notification {id} of {project}.");
            Ok(())
        }
        NotifyCommand::Remove { project, id } => {
            manager.remove_notification(&project, id)?;
            println!("Removed notification {id} of {project}.");
            Ok(())
        }
    }
}

fn push(db_path: &std::path::Path, cmd: PushCommand) -> anyhow::Result<()> {
    let manager = offline_manager(db_path)?;
    match cmd {
        PushCommand::Resummarize { id } => {
            manager.resummarize(&id, None, Utc::now())?;
            println!(
                "Queued push {id} for a new summary; a running server picks it up within its worker interval."
            );
            Ok(())
        }
    }
}

fn admin(db_path: &std::path::Path, cmd: AdminCommand) -> anyhow::Result<()> {
    let db = open_db(db_path)?;
    match cmd {
        AdminCommand::ResetToken => {
            let token = crate::auth::reset_admin_token(&db, Utc::now())?;
            println!("New admin token: {}", token.expose());
            println!(
                "Shown this once. Every dashboard session was logged out; log in again with it."
            );
            println!(
                "If PUSH_TRACKER_ADMIN_TOKEN is set for the server, it replaces this token at its next start."
            );
            Ok(())
        }
    }
}

/// How a column of [`table`] is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// A plain-text table whose columns line up whatever the lengths of the values: each column is
/// as wide as its longest cell (header included), two spaces apart. The last column is not
/// padded, so no line ends in spaces.
fn table(header: &[&str], aligns: &[Align], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    lines.extend(rows);
    let width = |cell: &str| cell.chars().count();
    let mut widths = vec![0; header.len()];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(width(cell));
        }
    }
    let mut out = String::new();
    for line in &lines {
        let last = line.len().saturating_sub(1);
        for (i, cell) in line.iter().enumerate() {
            let pad = " ".repeat(widths[i] - width(cell));
            let align = aligns.get(i).copied().unwrap_or(Align::Left);
            match align {
                Align::Right => {
                    out.push_str(&pad);
                    out.push_str(cell);
                }
                Align::Left if i == last => out.push_str(cell),
                Align::Left => {
                    out.push_str(cell);
                    out.push_str(&pad);
                }
            }
            if i != last {
                out.push_str("  ");
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where each column of `line` starts, by the columns' known values.
    fn starts(line: &str, cells: &[&str]) -> Vec<usize> {
        let mut from = 0;
        cells
            .iter()
            .map(|cell| {
                let at = from + line[from..].find(cell).expect("cell in line");
                from = at + cell.len();
                line[..at].chars().count()
            })
            .collect()
    }

    #[test]
    fn table_columns_line_up_whatever_the_lengths_of_the_names() {
        let long = "a-project-name-far-longer-than-the-old-24-column";
        let rows = [
            ["x", "0", "1", "2", "http://h/webhooks/1"],
            [long, "123456789", "0", "0", "http://h/webhooks/2"],
        ];
        let header = ["NAME", "PUSHES", "PENDING", "FAILED", "WEBHOOK URL"];
        let aligns = [
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Left,
        ];
        let out = table(
            &header,
            &aligns,
            rows.iter()
                .map(|r| r.iter().map(|c| (*c).to_owned()).collect()),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        // Left-aligned columns start together; right-aligned ones end together.
        let ends = |line: &str, cells: &[&str]| -> Vec<usize> {
            starts(line, cells)
                .iter()
                .zip(cells)
                .map(|(s, c)| s + c.chars().count())
                .collect()
        };
        let mut first_starts = Vec::new();
        let mut count_ends = Vec::new();
        for (line, cells) in lines
            .iter()
            .zip(std::iter::once(&header).chain(rows.iter()))
        {
            let s = starts(line, cells);
            first_starts.push((s[0], s[4]));
            count_ends.push(ends(line, &cells[1..4]));
            assert!(!line.ends_with(' '), "{line:?} ends in spaces");
        }
        assert!(first_starts.windows(2).all(|w| w[0] == w[1]), "{out}");
        assert!(count_ends.windows(2).all(|w| w[0] == w[1]), "{out}");
        // Columns never run into each other.
        assert!(lines[2].contains(&format!("{long}  ")), "{out}");
    }

    #[test]
    fn healthcheck_asks_a_server_listening_everywhere_on_loopback() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(reachable(at("0.0.0.0:8080")), at("127.0.0.1:8080"));
        assert_eq!(reachable(at("[::]:9000")), at("[::1]:9000"));
        assert_eq!(reachable(at("10.0.0.5:80")), at("10.0.0.5:80"));
    }

    #[test]
    fn table_widths_count_characters_not_bytes() {
        let out = table(
            &["LABEL", "STATUS"],
            &[Align::Left, Align::Left],
            [
                vec!["équipe-ü".to_owned(), "active".to_owned()],
                vec!["x".to_owned(), "revoked".to_owned()],
            ],
        );
        let columns: Vec<usize> = out
            .lines()
            .map(|l| {
                l.chars()
                    .position(|c| c == 'a' || c == 'r' || c == 'S')
                    .unwrap()
            })
            .collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{out}");
    }
}
