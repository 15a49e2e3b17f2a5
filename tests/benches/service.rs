//! `cargo bench`: throughput, latency and footprint of the service, each figure a ratio against a
//! baseline measured in the same run (these machines are shared and noisy), printed as
//! `name value` lines. Absolute figures are printed too, for the goals stated in absolutes.
//!
//! Sections can be picked by name:
//! `cargo bench -- ingest read history latency footprint notify live`.
//! `BENCH_SECS` sets the length of each throughput run (default 5), `BENCH_WAL_SECS` the
//! sustained-ingest run of the footprint section (default 60).

#[path = "../it/support/app.rs"]
mod app_support;
#[path = "../it/support/provider.rs"]
mod provider;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use git_push_tracker::app::{self, AppConfig};
use git_push_tracker::db::Db;
use git_push_tracker::db::PreparedPush;
use git_push_tracker::domain::{NewCommit, NewPush, ProjectName, SummaryStatus};
use git_push_tracker::manage::Manager;
use git_push_tracker::notify::deliver::GiveWay;
use git_push_tracker::summarize::{BuiltinSummarizer, OpenAiConfig, OpenAiSummarizer};
use poem::{EndpointExt, Route, handler, post};

// What the shipped binary uses (src/main.rs), so the in-process server is measured as shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 64;

fn secs(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn report(name: &str, value: f64) {
    println!("{name} {value:.3}");
}

// ---------------------------------------------------------------------------------------------
// A minimal keep-alive HTTP/1.1 client: cheap enough that the server, not the client, is measured.

struct RawClient {
    reader: BufReader<TcpStream>,
    /// The body of the last response.
    body: Vec<u8>,
}

impl RawClient {
    fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        RawClient {
            reader: BufReader::new(stream),
            body: Vec::new(),
        }
    }

    /// Sends one request and reads the whole response; returns the status.
    fn send(&mut self, request: &[u8]) -> u16 {
        self.reader.get_mut().write_all(request).expect("write");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body).expect("body");
        status
    }
}

static DELIVERY: AtomicU64 = AtomicU64::new(0);

/// A real GitHub push delivery of 10 KB, byte for byte as GitHub sent it (captured by Woodpecker
/// CI; see tests/fixtures/SOURCES.md): one commit, and the repository and sender objects that make
/// up most of every GitHub push payload.
fn real_push_payload() -> Vec<u8> {
    let body = app_support::fixture("github/push.woodpecker-HookPush.json");
    assert_about_ten_kb(&body);
    body
}

/// A synthetic push of about 10 KB that is nearly all commits: 12 of them, each with a
/// 400-character message and file lists, and a stripped-down repository object. It stores about
/// 8.8 KB per push where a real delivery of that size stores about 1 KB, so it stresses the
/// database writer, and the footprint section uses it for the WAL and memory bounds.
fn commit_heavy_payload() -> Vec<u8> {
    let messages: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "feat(area-{i}): {}",
                "change the behaviour of the component carefully ".repeat(8)
            )
        })
        .collect();
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    let body = app_support::github_payload("main", &refs, 1_776_160_800);
    assert_about_ten_kb(&body);
    body
}

fn assert_about_ten_kb(body: &[u8]) {
    assert!(
        (8_000..14_000).contains(&body.len()),
        "payload is {} bytes",
        body.len()
    );
}

/// A push delivery that is a new ref change each time it is sent: the server stores a repeat of
/// the same repository, ref, `before` and `after` only once (a replay), so every request moves
/// `after` on and is signed again (about 10 µs of HMAC on the load generator's side).
struct FreshPush {
    body: Vec<u8>,
    /// Where the 40 hex digits of `after` start in `body`.
    after_at: usize,
    secret: String,
}

static CHANGE: AtomicU64 = AtomicU64::new(1);

impl FreshPush {
    fn new(body: Vec<u8>, secret: &str) -> FreshPush {
        let key = b"\"after\":";
        let start = body
            .windows(key.len())
            .position(|w| w == key)
            .expect("a push payload has `after`")
            + key.len();
        let quote = body[start..].iter().position(|b| *b == b'"').unwrap();
        let after_at = start + quote + 1;
        assert!(
            body[after_at..after_at + 40]
                .iter()
                .all(u8::is_ascii_hexdigit)
        );
        FreshPush {
            body,
            after_at,
            secret: secret.to_owned(),
        }
    }

    /// The next delivery: its body and signature.
    fn next(&self) -> (Vec<u8>, String) {
        let mut body = self.body.clone();
        let n = CHANGE.fetch_add(1, Ordering::Relaxed);
        body[self.after_at..self.after_at + 40].copy_from_slice(format!("{n:040x}").as_bytes());
        let sig = provider::github_signature(&self.secret, &body);
        (body, sig)
    }
}

/// A signed webhook request with a fresh delivery id.
fn webhook_request(path: &str, secret_sig: &str, body: &[u8]) -> Vec<u8> {
    let id = DELIVERY.fetch_add(1, Ordering::Relaxed);
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n\
         X-GitHub-Delivery: bench-{id}\r\nX-Hub-Signature-256: {secret_sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// What [`load`] sends to post `push` to `target` as a new delivery every time.
fn deliveries(target: &str, push: &Arc<FreshPush>) -> Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync> {
    let (target, push) = (target.to_owned(), Arc::clone(push));
    Arc::new(move |_| {
        let (body, sig) = push.next();
        webhook_request(&target, &sig, &body)
    })
}

fn get_request(path: &str, key: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n")
        .into_bytes()
}

/// What one load run achieved: requests answered with the expected status, and over how long.
struct Throughput {
    answered: u64,
    elapsed: Duration,
}

impl Throughput {
    fn per_second(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64()
    }
}

/// The 1, 5 and 15 minute load averages, as the kernel reports them: the machine is shared.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The mean rate of several runs of the same load.
fn mean_per_second(runs: &[Throughput]) -> f64 {
    runs.iter().map(Throughput::per_second).sum::<f64>() / runs.len() as f64
}

/// Runs `connections` clients for `duration`, each request made by `make`; every answer must
/// have the status `expected`, or the run stops with a panic.
fn load(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    expected: u16,
    make: Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>,
) -> Throughput {
    load_checked(addr, connections, duration, expected, None, make)
}

/// [`load`], and every body must also hold `body_mark` within its first 400 bytes when one is
/// given (a page's `pushes` array comes after the short `pagination` and `project`, whichever
/// order the serializer writes the keys in).
fn load_checked(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    expected: u16,
    body_mark: Option<&'static [u8]>,
    make: Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>,
) -> Throughput {
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let (answered, stop, make) = (answered.clone(), stop.clone(), make.clone());
            std::thread::spawn(move || {
                let mut client = RawClient::connect(addr);
                let mut n = c as u64;
                while !stop.load(Ordering::Relaxed) {
                    let status = client.send(&make(n));
                    assert_eq!(status, expected, "unexpected status");
                    if let Some(mark) = body_mark {
                        let head = &client.body[..client.body.len().min(400)];
                        assert!(
                            head.windows(mark.len()).any(|w| w == mark),
                            "unexpected body: {}",
                            String::from_utf8_lossy(&client.body[..client.body.len().min(200)])
                        );
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                    n += connections as u64;
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    Throughput {
        answered: answered.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}

/// Median and 95th percentile of request latencies on one connection.
fn latencies(
    addr: SocketAddr,
    requests: usize,
    make: impl Fn(usize) -> Vec<u8>,
) -> (Duration, Duration) {
    let mut client = RawClient::connect(addr);
    for i in 0..20 {
        client.send(&make(i));
    }
    let mut samples: Vec<Duration> = (0..requests)
        .map(|i| {
            let req = make(i);
            let t = Instant::now();
            client.send(&req);
            t.elapsed()
        })
        .collect();
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 95 / 100],
    )
}

// ---------------------------------------------------------------------------------------------
// An in-process server with a baseline endpoint beside the real routes.

/// The ingest baseline: reads the body the cheapest way poem offers (hyper's chunks, joined only
/// if there are several; no limit to check) and answers 202. The webhook handler reads bodies at
/// least as carefully, so the baseline is never the slower of the two at reading.
#[handler]
async fn sink(body: poem::Body) -> poem::http::StatusCode {
    let _ = body.into_bytes().await;
    poem::http::StatusCode::ACCEPTED
}

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(config: AppConfig) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(app::run_extended(
                config,
                listener,
                async {
                    let _ = rx.await;
                },
                |routes| Route::new().at("/bench/sink", post(sink)).nest("/", routes),
            ))
            .unwrap();
        });
        Server {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.thread.take().unwrap().join();
    }
}

/// A fixed admin token keeps the first-start banner out of the figures.
const ADMIN_TOKEN: &str = "gpa_BenchAdminToken0123456789abcdefghijklm";

fn config(db: &Path, summarizer: Arc<dyn git_push_tracker::summarize::Summarizer>) -> AppConfig {
    let mut config = AppConfig::new(db, summarizer);
    config.admin_token = Some(git_push_tracker::secret::Secret::new(ADMIN_TOKEN));
    config
}

fn builtin_config(db: &Path) -> AppConfig {
    config(db, Arc::new(BuiltinSummarizer))
}

fn project(db: &Path, name: &str) -> (String, String, String) {
    let manager = Manager::new(Db::open(db).unwrap(), "http://bench");
    let created = manager.create_project(name, Utc::now()).unwrap();
    let key = manager.create_key(name, "bench", Utc::now()).unwrap();
    let path = created
        .webhook_url
        .trim_start_matches("http://bench")
        .to_owned();
    (
        path,
        created.webhook_secret.expose().to_owned(),
        key.key.expose().to_owned(),
    )
}

fn ingest(dir: &Path) {
    let db = dir.join("ingest.db");
    let (path, secret, _) = project(&db, "ingest");
    let server = Server::start(builtin_config(&db));
    // The same store without its search index (issue 15's "the ingest figures with the index
    // in place"): the trigger that writes a push's search entries once its text is there.
    let unindexed_db = dir.join("ingest-unindexed.db");
    let (unindexed_path, unindexed_secret, _) = project(&unindexed_db, "ingest");
    rusqlite::Connection::open(&unindexed_db)
        .unwrap()
        .execute_batch("DROP TRIGGER push_fts_text_insert")
        .unwrap();
    let unindexed_server = Server::start(builtin_config(&unindexed_db));
    let unindexed = Arc::new(FreshPush::new(real_push_payload(), &unindexed_secret));
    let duration = secs("BENCH_SECS", 5);
    let (real, heavy) = (
        Arc::new(FreshPush::new(real_push_payload(), &secret)),
        Arc::new(FreshPush::new(commit_heavy_payload(), &secret)),
    );
    let run = |target: &str, expected: u16, push: &Arc<FreshPush>| {
        let make = deliveries(target, push);
        load(server.addr, CONNECTIONS, duration, expected, make)
    };
    let run_unindexed = || {
        let make = deliveries(&unindexed_path, &unindexed);
        load(unindexed_server.addr, CONNECTIONS, duration, 201, make)
    };
    let (mut sink_runs, mut real_runs, mut heavy_runs) = (Vec::new(), Vec::new(), Vec::new());
    let mut unindexed_runs = Vec::new();
    // Alternate, so a burst of noise from a neighbour hits every side alike. The sink gets the
    // real delivery; it only reads the body, whatever is in it. Every delivery id is new, so
    // every webhook must answer 201 Created: stored and committed.
    for _ in 0..2 {
        sink_runs.push(run("/bench/sink", 202, &real));
        real_runs.push(run(&path, 201, &real));
        heavy_runs.push(run(&path, 201, &heavy));
        unindexed_runs.push(run_unindexed());
    }
    drop(server);
    drop(unindexed_server);
    let (entries, unindexed_entries): (i64, i64) = (
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM push_fts_prefix_docsize", [], |r| {
                r.get(0)
            })
            .unwrap(),
        rusqlite::Connection::open(&unindexed_db)
            .unwrap()
            .query_row("SELECT count(*) FROM push_fts_prefix_docsize", [], |r| {
                r.get(0)
            })
            .unwrap(),
    );
    assert!(entries > 0, "the indexed store has search entries");
    assert_eq!(unindexed_entries, 0, "the unindexed store has none");
    let stored: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM pushes", [], |r| r.get(0))
        .unwrap();
    let stored = u64::try_from(stored).unwrap();
    let created: u64 = real_runs
        .iter()
        .chain(&heavy_runs)
        .map(|t| t.answered)
        .sum();
    assert_eq!(
        stored, created,
        "every 201 is a stored push, and nothing else is"
    );
    let (sink_rps, real_rps, heavy_rps) = (
        mean_per_second(&sink_runs),
        mean_per_second(&real_runs),
        mean_per_second(&heavy_runs),
    );
    println!(
        "# ingest: {real_rps:.0} real deliveries/s and {heavy_rps:.0} commit-heavy ones/s stored \
         ({stored} in all, each answered 201), sink {sink_rps:.0} requests/s"
    );
    report("ingest_webhooks_per_s", real_rps);
    report("ingest_commit_heavy_webhooks_per_s", heavy_rps);
    report("sink_requests_per_s", sink_rps);
    report("ingest_vs_sink", real_rps / sink_rps);
    report("ingest_commit_heavy_vs_sink", heavy_rps / sink_rps);
    let unindexed_rps = mean_per_second(&unindexed_runs);
    println!("# ingest: {unindexed_rps:.0} real deliveries/s without the search index");
    report("ingest_unindexed_vs_sink", unindexed_rps / sink_rps);
    report("ingest_indexed_vs_unindexed", real_rps / unindexed_rps);
}

// ---------------------------------------------------------------------------------------------
// A database with a million pushes in one project and a thousand in another, made once and kept
// under target/ for the next run.

fn populate(db_path: &Path) -> (String, String) {
    let keys = db_path.with_extension("keys");
    if let Ok(text) = std::fs::read_to_string(&keys)
        && let Some((big, small)) = text.trim().split_once(' ')
    {
        return (big.to_owned(), small.to_owned());
    }
    let _ = std::fs::remove_file(db_path);
    let (_, _, big_key) = project(db_path, "big");
    let (_, _, small_key) = project(db_path, "small");
    let db = Db::open(db_path).unwrap();
    let start = Instant::now();
    let base = 1_700_000_000_000i64;
    for (project, count) in [("big", 1_000_000usize), ("small", 1_000)] {
        let project = ProjectName::parse(project).unwrap();
        for chunk in 0..count.div_ceil(10_000) {
            let mut pushes = Vec::with_capacity(10_000);
            for i in chunk * 10_000..((chunk + 1) * 10_000).min(count) {
                let branch = ["main", "develop", "feature/a", "release"][i % 4];
                let at = chrono::DateTime::from_timestamp_millis(base + i as i64 * 60_000).unwrap();
                let push = NewPush {
                    delivery_id: Some(format!("seed-{i}")),
                    commit_count: 1,
                    pushed_at: Some(at),
                    commits: vec![NewCommit {
                        sha: format!("{i:040x}"),
                        message: format!("feat: change number {i}"),
                        author: "ada".into(),
                        timestamp: Some(at),
                        url: None,
                        added: vec![],
                        removed: vec![],
                        modified: vec!["src/lib.rs".into()],
                    }],
                    ..NewPush::to_branch("acme/app", branch, "ada")
                };
                let prepared = PreparedPush::new(
                    uuid::Uuid::new_v4().to_string(),
                    push,
                    format!("- Feature: Change number {i}"),
                    SummaryStatus::Summarized,
                    at,
                );
                pushes.push(prepared);
            }
            assert_eq!(db.import_pushes(&project, &pushes).unwrap(), pushes.len());
        }
    }
    drop(db);
    rusqlite::Connection::open(db_path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")
        .unwrap();
    println!(
        "# populated 1,001,000 pushes in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    std::fs::write(&keys, format!("{big_key} {small_key}")).unwrap();
    (big_key, small_key)
}

/// What a seeded project looks like to the read shapes: its key, and its pushes (one a minute
/// from `SEED_BASE_MS`).
struct Seeded {
    key: String,
    pushes: u64,
}

const SEED_BASE_MS: i64 = 1_700_000_000_000;

/// The time of the seeded push at `fraction` of the history, as an ISO 8601 date-time: it falls
/// inside a day, so its day is a partial one.
fn seeded_time(pushes: u64, fraction: f64) -> String {
    let i = (pushes as f64 * fraction) as i64;
    chrono::DateTime::from_timestamp_millis(SEED_BASE_MS + i * 60_000)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The list shapes the read section measures, as paths for one project. Every shape answers a
/// full page of 20: checked once here by content and on every request by its start.
fn read_shapes(server: &Server, project: &Seeded) -> Vec<(&'static str, String)> {
    let half = seeded_time(project.pushes, 0.5);
    let (q1, q3) = (
        seeded_time(project.pushes, 0.25),
        seeded_time(project.pushes, 0.75),
    );
    let deep = project.pushes / 2;
    // The page at `deep` reached by cursor: the cursor of the page just before it.
    let before = get_json(
        server,
        &format!("/api/v1/pushes?limit=20&offset={}", deep - 20),
        &project.key,
    );
    let cursor = before["pagination"]["nextCursor"]
        .as_str()
        .expect("a cursor in the middle of the history")
        .to_owned();
    let shapes = vec![
        ("page_one", "/api/v1/pushes?limit=20".to_owned()),
        (
            "branch",
            "/api/v1/pushes?limit=20&branch=develop".to_owned(),
        ),
        ("since", format!("/api/v1/pushes?limit=20&since={half}")),
        ("until", format!("/api/v1/pushes?limit=20&until={half}")),
        (
            "branch_since",
            format!("/api/v1/pushes?limit=20&branch=main&since={half}"),
        ),
        (
            "branch_since_until",
            format!("/api/v1/pushes?limit=20&branch=develop&since={q1}&until={q3}"),
        ),
        (
            "offset_half",
            format!("/api/v1/pushes?limit=20&offset={deep}"),
        ),
        (
            "cursor_half",
            format!("/api/v1/pushes?limit=20&cursor={cursor}"),
        ),
    ];
    let by_offset = get_json(server, &shapes[6].1, &project.key);
    let by_cursor = get_json(server, &shapes[7].1, &project.key);
    assert_eq!(
        by_offset["pushes"], by_cursor["pushes"],
        "the cursor reaches the same page as the offset"
    );
    for (name, path) in &shapes {
        let page = get_json(server, path, &project.key);
        assert_eq!(
            page["pushes"].as_array().map(Vec::len),
            Some(20),
            "{name}: {path}"
        );
        let total = page["pagination"]["total"].as_u64().unwrap();
        let half = project.pushes / 2;
        let expected = match *name {
            "page_one" | "offset_half" | "cursor_half" => project.pushes,
            "branch" => project.pushes / 4,
            "since" | "until" => half,
            "branch_since" => half / 4,
            _ => total,
        };
        assert!(
            total.abs_diff(expected) <= 1,
            "{name}: total {total}, about {expected} expected"
        );
    }
    shapes
}

fn get_json(server: &Server, path: &str, key: &str) -> serde_json::Value {
    let mut client = RawClient::connect(server.addr);
    assert_eq!(client.send(&get_request(path, key)), 200, "{path}");
    serde_json::from_slice(&client.body).unwrap()
}

fn read(data: &Path) {
    let db = data.join("million.db");
    let (big, small) = populate(&db);
    let big = Seeded {
        key: big,
        pushes: 1_000_000,
    };
    let small = Seeded {
        key: small,
        pushes: 1_000,
    };
    let server = Server::start(builtin_config(&db));
    let duration = secs("BENCH_SECS", 5);
    let cheapest = {
        let key = big.key.clone();
        Arc::new(move |_| get_request("/api/v1/pushes/00000000-0000-0000-0000-000000000000", &key))
    };
    let big_shapes = read_shapes(&server, &big);
    let small_shapes = read_shapes(&server, &small);
    // A page with at least one push in it.
    const PAGE_START: &[u8] = b"\"pushes\":[{\"";

    // Each shape runs between two runs of the cheapest request and is compared with their mean,
    // so a neighbour's burst of load during one shape does not skew every other shape's ratio.
    let cheapest_run = || load(server.addr, 16, duration, 404, cheapest.clone());
    let mut base_runs = vec![cheapest_run()];
    let mut shape_ratios = Vec::new();
    for (name, path) in &big_shapes {
        let request = get_request(path, &big.key);
        let make = Arc::new(move |_| request.clone());
        let run = load_checked(server.addr, 16, duration, 200, Some(PAGE_START), make);
        base_runs.push(cheapest_run());
        let around = mean_per_second(&base_runs[base_runs.len() - 2..]);
        shape_ratios.push((*name, run.per_second(), run.per_second() / around));
    }
    let base_rps = mean_per_second(&base_runs);
    println!(
        "# read: {base_rps:.0} cheapest authenticated requests/s (a push id lookup answering 404)"
    );
    let mut worst = f64::INFINITY;
    for (name, rps, ratio) in &shape_ratios {
        println!("# read {name}: {rps:.0} pages/s at 1M");
        report(&format!("read_{name}_vs_cheapest"), *ratio);
        worst = worst.min(*ratio);
    }
    report("read_vs_cheapest_worst_shape", worst);

    let mut worst_latency: f64 = 0.0;
    for ((name, big_path), (_, small_path)) in big_shapes.iter().zip(&small_shapes) {
        let (p50_big, p95_big) = latencies(server.addr, 400, |_| get_request(big_path, &big.key));
        let (p50_small, _) = latencies(server.addr, 400, |_| get_request(small_path, &small.key));
        println!(
            "# read {name}: p50 {p50_big:?} at 1M, {p50_small:?} at 1k (p95 at 1M {p95_big:?})"
        );
        let ratio = p50_big.as_secs_f64() / p50_small.as_secs_f64();
        report(&format!("latency_{name}_1m_vs_1k"), ratio);
        worst_latency = worst_latency.max(ratio);
    }
    report("latency_1m_vs_1k_worst_shape", worst_latency);
}

// ---------------------------------------------------------------------------------------------
// Asking the history at 1,000,000 pushes: search pages vs the cheapest authenticated request,
// a builtin digest over 10,000 pushes and a year of daily activity (latencies, as their goals
// are absolutes). The seeded pushes are one a minute, each "feat: change number {i}".

fn history(data: &Path) {
    let db = data.join("million.db");
    let (big, _) = populate(&db);
    let server = Server::start(builtin_config(&db));
    let duration = secs("BENCH_SECS", 5);
    let cheapest = {
        let key = big.clone();
        Arc::new(move |_| get_request("/api/v1/pushes/00000000-0000-0000-0000-000000000000", &key))
    };
    // A rare word (one push), a prefix (11 pushes: 77777 and 777770..777779), a common word
    // with a filter beside it (a quarter of the history), and a common word alone.
    let searches = [
        ("rare", "/api/v1/pushes?limit=20&q=500000", 1u64),
        ("prefix", "/api/v1/pushes?limit=20&q=77777*", 11),
        (
            "common_branch",
            "/api/v1/pushes?limit=20&q=change&branch=develop",
            250_000,
        ),
        ("common", "/api/v1/pushes?limit=20&q=change", 1_000_000),
    ];
    for (name, path, total) in &searches {
        let page = get_json(&server, path, &big);
        assert_eq!(page["pagination"]["total"], *total, "{name}: {path}");
        assert_eq!(
            page["pushes"].as_array().map(Vec::len),
            Some((*total).min(20) as usize),
            "{name}"
        );
    }
    const PAGE_START: &[u8] = b"\"pushes\":[{\"";
    let mut base_runs = vec![load(server.addr, 16, duration, 404, cheapest.clone())];
    let mut rps = Vec::new();
    // As many clients as the server runs searches at once: more would only queue at its gate
    // (and past its 30 s wait be answered 503, which a multi-second common search can reach).
    let searchers = git_push_tracker::limits::DEFAULT_SEARCHES_AT_ONCE;
    for (name, path, _) in &searches {
        let request = get_request(path, &big);
        let make = Arc::new(move |_| request.clone());
        let run = load_checked(
            server.addr,
            searchers,
            duration,
            200,
            Some(PAGE_START),
            make,
        );
        rps.push((*name, run.per_second()));
    }
    base_runs.push(load(server.addr, 16, duration, 404, cheapest));
    let base = mean_per_second(&base_runs);
    println!("# history: {base:.0} cheapest authenticated requests/s");
    for (name, r) in &rps {
        println!("# history search {name}: {r:.0} pages/s at 1M");
        report(&format!("history_search_{name}_vs_cheapest"), r / base);
    }

    // 10,000 pushes from the middle of the history, and a year of it.
    let from = SEED_BASE_MS + 500_000 * 60_000;
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let digest = format!(
        "/api/v1/digest?since={}&until={}",
        iso(from),
        iso(from + 10_000 * 60_000)
    );
    let d = get_json(&server, &digest, &big);
    assert_eq!(d["pushCount"], 10_000, "{digest}");
    assert_eq!(d["summarySource"], "builtin");
    assert!(
        d["summary"].as_str().unwrap().starts_with("- 10000 pushes"),
        "{}",
        d["summary"]
    );
    let year_from = SEED_BASE_MS + 100_000 * 60_000;
    let activity = format!(
        "/api/v1/activity?since={}&until={}&groupBy=day",
        iso(year_from),
        iso(year_from + 365 * 86_400_000)
    );
    let a = get_json(&server, &activity, &big);
    let pushes: u64 = a["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["pushes"].as_u64().unwrap())
        .sum();
    assert_eq!(pushes, 365 * 1440, "{activity}");
    for (name, path) in [("digest_10k", &digest), ("activity_year", &activity)] {
        let (p50, p95) = latencies(server.addr, 30, |_| get_request(path, &big));
        println!("# history {name}: p50 {p50:?}, p95 {p95:?} at 1M");
        report(
            &format!("history_{name}_p50_ms"),
            p50.as_secs_f64() * 1000.0,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Time from a webhook's 2xx to `summarized` in the API, with a model that answers at once.

#[handler]
fn instant_model() -> poem::web::Json<serde_json::Value> {
    poem::web::Json(
        serde_json::json!({"choices": [{"message": {"role": "assistant", "content": "- Summarized"}}]}),
    )
}

fn latency(dir: &Path) {
    let model_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let model_addr = model_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            model_listener.set_nonblocking(true).unwrap();
            let acceptor = poem::listener::TcpAcceptor::from_std(model_listener).unwrap();
            poem::Server::new_with_acceptor(acceptor)
                .run(
                    Route::new()
                        .at("/v1/chat/completions", post(instant_model))
                        .map_to_response(),
                )
                .await
        })
    });
    let db = dir.join("latency.db");
    let (path, secret, key) = project(&db, "latency");
    let summarizer = OpenAiSummarizer::new(OpenAiConfig::new(
        format!("http://{model_addr}/v1"),
        "instant",
    ));
    let server = Server::start(config(&db, Arc::new(summarizer)));
    let agent = app_support::agent();
    let base = format!("http://{}", server.addr);
    let (mut to_summary, mut round_trips) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        // A new ref change every time (github_payload moves `after` on), or it is a replay.
        let body = app_support::github_payload(
            "main",
            &["feat: one thing", "fix: another"],
            1_776_160_800,
        );
        let sig = provider::github_signature(&secret, &body);
        let t0 = Instant::now();
        let mut reply = agent
            .post(format!("{base}{path}"))
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", "push")
            .header(
                "X-GitHub-Delivery",
                format!("lat-{}", DELIVERY.fetch_add(1, Ordering::Relaxed)),
            )
            .header("X-Hub-Signature-256", &sig)
            .send(&body[..])
            .unwrap();
        let acked = Instant::now();
        round_trips.push(acked - t0);
        let json: serde_json::Value =
            serde_json::from_str(&reply.body_mut().read_to_string().unwrap()).unwrap();
        let id = json["pushes"][0].as_str().unwrap().to_owned();
        let deadline = acked + Duration::from_secs(30);
        loop {
            let detail: serde_json::Value = serde_json::from_str(
                &agent
                    .get(format!("{base}/api/v1/pushes/{id}"))
                    .header("Authorization", format!("Bearer {key}"))
                    .call()
                    .unwrap()
                    .body_mut()
                    .read_to_string()
                    .unwrap(),
            )
            .unwrap();
            if detail["summaryStatus"] == "summarized" {
                to_summary.push(acked.elapsed());
                break;
            }
            assert!(Instant::now() < deadline, "push {id} not summarized");
        }
    }
    to_summary.sort();
    round_trips.sort();
    let p50 = to_summary[to_summary.len() / 2];
    let p95 = to_summary[to_summary.len() * 95 / 100];
    let trip = round_trips[round_trips.len() / 2];
    println!("# summary latency: p50 {p50:?}, p95 {p95:?}; a webhook round trip takes {trip:?}");
    report("summary_latency_p50_ms", p50.as_secs_f64() * 1e3);
    report("summary_latency_p95_ms", p95.as_secs_f64() * 1e3);
    report(
        "summary_p50_vs_webhook_round_trip",
        p50.as_secs_f64() / trip.as_secs_f64(),
    );
}

// ---------------------------------------------------------------------------------------------
// Notifications: how soon a receiver has a summary, that nothing is lost on the way, and what
// configured notifications cost ingest.

/// An instant receiver over keep-alive HTTP/1.1: answers 200 at once and records, per push id
/// (the generic webhook's `data.push.id`), when it first arrived and how often.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<std::collections::HashMap<String, (Instant, u32)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<std::collections::HashMap<String, (Instant, u32)>>> = Arc::default();
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let record = Arc::clone(&record);
                std::thread::spawn(move || Receiver::serve(stream, &record));
            }
        });
        Receiver { addr, seen }
    }

    fn serve(stream: TcpStream, seen: &Mutex<std::collections::HashMap<String, (Instant, u32)>>) {
        stream.set_nodelay(true).unwrap();
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0usize;
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let at = Instant::now();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(id) = json["data"]["push"]["id"].as_str() {
                let mut seen = seen.lock().unwrap();
                let entry = seen.entry(id.to_owned()).or_insert((at, 0));
                entry.1 += 1;
            }
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if reader.get_mut().write_all(answer).is_err() {
                return;
            }
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn add_webhook(db: &Path, project: &str, receiver: &Receiver) {
    let manager = Manager::new(Db::open(db).unwrap(), "http://bench");
    let request = git_push_tracker::manage::NotificationRequest {
        kind: "webhook".into(),
        url: format!("http://{}/in", receiver.addr),
        ..Default::default()
    };
    manager
        .add_notification(project, &request, Utc::now())
        .unwrap();
}

fn notify(dir: &Path) {
    // 1. Summary stored -> the receiver has it: the builtin summary is final when the webhook's
    // 201 is answered, so each sample runs from just before the webhook is sent (an upper bound).
    let db = dir.join("notify-latency.db");
    let (path, secret, _) = project(&db, "latency");
    let receiver = Receiver::start();
    add_webhook(&db, "latency", &receiver);
    let server = Server::start(builtin_config(&db));
    let mut client = RawClient::connect(server.addr);
    let mut samples = Vec::new();
    for _ in 0..300 {
        let body = app_support::github_payload("main", &["feat: one thing"], 1_776_160_800);
        let sig = provider::github_signature(&secret, &body);
        let t0 = Instant::now();
        assert_eq!(client.send(&webhook_request(&path, &sig, &body)), 201);
        let json: serde_json::Value = serde_json::from_slice(&client.body).unwrap();
        let id = json["pushes"][0].as_str().unwrap().to_owned();
        let deadline = t0 + Duration::from_secs(30);
        let arrived = loop {
            if let Some((at, _)) = receiver.seen.lock().unwrap().get(&id) {
                break *at;
            }
            assert!(
                Instant::now() < deadline,
                "push {id} never reached the receiver"
            );
            std::thread::yield_now();
        };
        samples.push(arrived.saturating_duration_since(t0));
    }
    drop(server);
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let p95 = samples[samples.len() * 95 / 100];
    println!(
        "# notify latency (webhook sent -> signed webhook at the receiver): p50 {p50:?}, p95 {p95:?}"
    );
    report("notify_latency_p50_ms", p50.as_secs_f64() * 1e3);
    report("notify_latency_p95_ms", p95.as_secs_f64() * 1e3);

    // 2. 10,000 summarized pushes to 3 receivers: every receiver has every push.
    let db = dir.join("notify-bulk.db");
    project(&db, "bulk");
    let receivers: Vec<Receiver> = (0..3).map(|_| Receiver::start()).collect();
    for r in &receivers {
        add_webhook(&db, "bulk", r);
    }
    const PUSHES: usize = 10_000;
    let name = ProjectName::parse("bulk").unwrap();
    let pushes: Vec<PreparedPush> = (0..PUSHES)
        .map(|i| {
            let at = Utc::now();
            let push = NewPush {
                delivery_id: Some(format!("bulk-{i}")),
                commit_count: 1,
                pushed_at: Some(at),
                ..NewPush::to_branch("acme/app", "main", "ada")
            };
            PreparedPush::new(
                uuid::Uuid::now_v7().to_string(),
                push,
                format!("- Change number {i}"),
                SummaryStatus::Summarized,
                at,
            )
        })
        .collect();
    // The import's transaction fills the outbox (30,000 rows) through the same trigger as ingest.
    assert_eq!(
        Db::open(&db)
            .unwrap()
            .import_pushes(&name, &pushes)
            .unwrap(),
        PUSHES
    );
    let started = Instant::now();
    let server = Server::start(builtin_config(&db));
    let deadline = started + Duration::from_secs(600);
    while receivers.iter().any(|r| r.count() < PUSHES) {
        assert!(
            Instant::now() < deadline,
            "deliveries still missing after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    drop(server);
    let duplicates: u32 = receivers
        .iter()
        .map(|r| {
            r.seen
                .lock()
                .unwrap()
                .values()
                .map(|(_, n)| n - 1)
                .sum::<u32>()
        })
        .sum();
    let pending: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM notify_outbox WHERE state <> 'done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, 0, "every outbox row is done");
    let rate = (3 * PUSHES) as f64 / took.as_secs_f64();
    println!(
        "# notify bulk: {PUSHES} pushes to 3 receivers in {took:?} ({rate:.0} deliveries/s), none lost, {duplicates} duplicates"
    );
    report("notify_bulk_deliveries_per_s", rate);
    report("notify_bulk_lost", 0.0);

    // 3. Ingest with 3 notifications on the project against the same run without any.
    const NOTIFY_ROUNDS: usize = 4;
    let db = dir.join("notify-ingest.db");
    let (plain_path, plain_secret, _) = project(&db, "plain");
    let (notified_path, notified_secret, _) = project(&db, "notified");
    let sinks: Vec<Receiver> = (0..3).map(|_| Receiver::start()).collect();
    for r in &sinks {
        add_webhook(&db, "notified", r);
    }
    let mut config = builtin_config(&db);
    // To see what giving way is worth, in the same binary: deliveries go whenever they are due.
    if std::env::var_os("BENCH_NOTIFY_NO_GIVE_WAY").is_some() {
        config.notify.give_way = GiveWay {
            idle: Duration::ZERO,
            longest: Duration::ZERO,
        };
    }
    let server = Server::start(config);
    let duration = secs("BENCH_SECS", 5);
    let run = |target: &str, secret: &str, expected: u16| {
        let push = Arc::new(FreshPush::new(real_push_payload(), secret));
        load(
            server.addr,
            CONNECTIONS,
            duration,
            expected,
            deliveries(target, &push),
        )
    };
    let outbox = rusqlite::Connection::open(&db).unwrap();
    let pending = || -> i64 {
        outbox
            .query_row(
                "SELECT count(*) FROM notify_outbox WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let (mut sink_runs, mut plain_runs, mut notified_runs) = (Vec::new(), Vec::new(), Vec::new());
    let mut drained = Vec::new();
    let mut notified_run = || {
        notified_runs.push(run(&notified_path, &notified_secret, 201));
        // The deliveries the run left in the outbox are sent before the next run, so no run
        // pays for another's: the baseline runs see no delivery work at all.
        let (left, ended) = (pending(), Instant::now());
        while pending() > 0 {
            assert!(
                ended.elapsed() < Duration::from_secs(600),
                "the outbox did not drain in 10 minutes"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drained.push((left, ended.elapsed()));
    };
    println!("# notify ingest: load average before {}", load_average());
    // The two sides take turns going first, so neither always runs on the database (and the
    // WAL) the other just grew.
    for round in 0..NOTIFY_ROUNDS {
        sink_runs.push(run("/bench/sink", &plain_secret, 202));
        if round % 2 == 0 {
            plain_runs.push(run(&plain_path, &plain_secret, 201));
            notified_run();
        } else {
            notified_run();
            plain_runs.push(run(&plain_path, &plain_secret, 201));
        }
    }
    println!("# notify ingest: load average after {}", load_average());
    drop(server);
    let stored: i64 = outbox
        .query_row(
            "SELECT count(*) FROM pushes p JOIN projects pr ON pr.id = p.project_id
             WHERE pr.name = 'notified'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let stored = usize::try_from(stored).unwrap();
    assert!(stored > 0, "the notified runs stored pushes");
    for (i, s) in sinks.iter().enumerate() {
        assert_eq!(s.count(), stored, "receiver {i} has every notified push");
    }
    for (left, took) in &drained {
        println!(
            "# notify ingest: {left} deliveries pending when a run ended, all sent {took:?} later"
        );
    }
    let (left, took) = drained[drained.len() - 1];
    report("notify_ingest_backlog_left", left as f64);
    report("notify_ingest_backlog_drain_s", took.as_secs_f64());
    let (sink_rps, plain_rps, notified_rps) = (
        mean_per_second(&sink_runs),
        mean_per_second(&plain_runs),
        mean_per_second(&notified_runs),
    );
    println!(
        "# notify ingest: {plain_rps:.0}/s without notifications, {notified_rps:.0}/s with 3, sink {sink_rps:.0}/s"
    );
    report("notify_ingest_vs_sink_without", plain_rps / sink_rps);
    report("notify_ingest_vs_sink_with_3", notified_rps / sink_rps);
    report("notify_ingest_with_vs_without", notified_rps / plain_rps);
}

// ---------------------------------------------------------------------------------------------
// The release binary as a child process: memory, WAL, size, start-up.

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_git-push-tracker"))
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct ChildServer {
    child: Child,
    addr: SocketAddr,
}

impl ChildServer {
    /// Starts `serve` on `db` and returns it with the time until `/healthz` answered.
    fn start(db: &Path) -> (ChildServer, Duration) {
        ChildServer::start_with_env(db, &[])
    }

    /// [`ChildServer::start`] with more environment variables.
    fn start_with_env(db: &Path, env: &[(&str, &str)]) -> (ChildServer, Duration) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let started = Instant::now();
        let child = Command::new(binary())
            .args([
                "--db",
                db.to_str().unwrap(),
                "serve",
                "--listen",
                &addr.to_string(),
            ])
            .env("PUSH_TRACKER_LOG", "warn")
            .env("PUSH_TRACKER_ADMIN_TOKEN", ADMIN_TOKEN)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = app_support::agent();
        loop {
            if let Ok(r) = agent.get(format!("http://{addr}/healthz")).call()
                && r.status() == 200
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        (ChildServer { child, addr }, started.elapsed())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn footprint(dir: &Path, data: &Path) {
    let size = std::fs::metadata(binary()).unwrap().len() as f64 / 1e6;
    report("binary_mb", size);

    let million = data.join("million.db");
    populate(&million);
    let (empty_server, start_empty) = ChildServer::start(&dir.join("empty.db"));
    drop(empty_server);
    let (big_server, start_big) = ChildServer::start(&million);
    drop(big_server);
    report("start_ms_1m", start_big.as_secs_f64() * 1e3);
    report(
        "start_1m_vs_empty",
        start_big.as_secs_f64() / start_empty.as_secs_f64(),
    );

    let db = dir.join("footprint.db");
    let (path, secret, _) = project(&db, "footprint");
    let (server, _) = ChildServer::start(&db);
    let pid = server.child.id();
    let idle = rss_kb(pid, "VmRSS:") as f64 / 1024.0;
    report("idle_rss_mb", idle);

    // The heaviest payload for the bounds: it writes the most per delivery.
    let push = Arc::new(FreshPush::new(commit_heavy_payload(), &secret));
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let wal_peak = Arc::new(Mutex::new(0u64));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (wal, wal_peak, sampling) = (wal.clone(), wal_peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                let mut peak = wal_peak.lock().unwrap();
                *peak = (*peak).max(size);
                drop(peak);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let rps = load(
        server.addr,
        CONNECTIONS,
        secs("BENCH_WAL_SECS", 60),
        201,
        deliveries(&path, &push),
    )
    .per_second();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = rss_kb(pid, "VmHWM:") as f64 / 1024.0;
    // Under load the WAL file is written over in place; once webhooks stop, the service copies
    // it into the database and empties it. Wait for that, with a deadline.
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let stopped = Instant::now();
    while wal_size() > 0 && stopped.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let wal_after = wal_size() as f64 / 1e6;
    report(
        "wal_emptied_after_ms",
        stopped.elapsed().as_secs_f64() * 1e3,
    );
    let db_size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!("# sustained ingest: {rps:.0} webhooks/s; database {db_size:.0} MB");
    report("peak_rss_mb", peak);
    report("peak_vs_idle_rss", peak / idle);
    report("wal_peak_mb", *wal_peak.lock().unwrap() as f64 / 1e6);
    report("wal_after_mb", wal_after);
    report(
        "wal_peak_vs_database",
        *wal_peak.lock().unwrap() as f64 / 1e6 / db_size,
    );
}

const SUBSCRIBERS: usize = 1_000;
const LIVE_ROUNDS: usize = 30;

/// The percentile `p` (0..=100) of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// The live stream and "nothing changed": 1,000 stream subscribers on the real binary, the time
/// from a webhook's 2xx to its `push.created` at every one of them, the resident memory with
/// them connected, and 304 answers against full pages of the list.
fn live(dir: &Path) {
    let db = dir.join("live.db");
    let (path, secret, key) = project(&db, "live");
    let (server, _) =
        ChildServer::start_with_env(&db, &[("PUSH_TRACKER_MAX_CONNECTIONS_PER_ADDRESS", "4096")]);
    let (addr, pid) = (server.addr, server.child.id());
    let idle = rss_kb(pid, "VmRSS:") as f64 / 1024.0;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for _ in 0..SUBSCRIBERS {
        let (seen, ready, key) = (seen_tx.clone(), ready_tx.clone(), key.clone());
        rt.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let request = format!(
                "GET /api/v1/pushes/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 16 * 1024];
            let mut carry: Vec<u8> = Vec::new();
            let (mut announced, mut events) = (false, 0usize);
            const MARK: &[u8] = b"event: push.created";
            loop {
                let n = match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let at = Instant::now();
                carry.extend_from_slice(&buf[..n]);
                if !announced && carry.windows(12).any(|w| w == b"retry: 3000\n") {
                    assert!(carry.starts_with(b"HTTP/1.1 200"), "the stream answers 200");
                    announced = true;
                    let _ = ready.send(());
                }
                while let Some(i) = carry.windows(MARK.len()).position(|w| w == MARK) {
                    let _ = seen.send((events, at));
                    events += 1;
                    carry.drain(..i + MARK.len());
                }
                // Keep only a tail that could hold the start of a mark.
                if carry.len() > MARK.len() && announced {
                    let keep = carry.len() - MARK.len();
                    carry.drain(..keep);
                }
            }
        });
    }
    for _ in 0..SUBSCRIBERS {
        rt.block_on(ready_rx.recv())
            .expect("every subscriber connects");
    }
    let connected = rss_kb(pid, "VmRSS:") as f64 / 1024.0;

    let push = FreshPush::new(real_push_payload(), &secret);
    let mut hook = RawClient::connect(addr);
    let mut delays = Vec::with_capacity(SUBSCRIBERS * LIVE_ROUNDS);
    for round in 0..LIVE_ROUNDS {
        let (body, sig) = push.next();
        let status = hook.send(&webhook_request(&path, &sig, &body));
        let acked = Instant::now();
        assert_eq!(status, 201, "the webhook is stored");
        for _ in 0..SUBSCRIBERS {
            let (n, at) = rt
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(30), seen_rx.recv()).await
                })
                .expect("every subscriber gets the event in time")
                .unwrap();
            assert_eq!(n, round, "events arrive in order, one per push");
            delays.push(at.saturating_duration_since(acked));
        }
    }
    delays.sort();
    let peak = rss_kb(pid, "VmHWM:") as f64 / 1024.0;
    report("live_subscribers", SUBSCRIBERS as f64);
    report(
        "live_event_p50_ms",
        percentile(&delays, 50).as_secs_f64() * 1e3,
    );
    report(
        "live_event_p99_ms",
        percentile(&delays, 99).as_secs_f64() * 1e3,
    );
    report("live_idle_rss_mb", idle);
    report("live_rss_with_subscribers_mb", connected);
    report("live_peak_rss_mb", peak);
    drop(rt);

    // 304 against the full page it stands for (20 pushes).
    let page = "/api/v1/pushes?limit=20";
    let mut probe = RawClient::connect(addr);
    let status = probe.send(&get_request(page, &key));
    assert_eq!(status, 200);
    let etag = {
        let mut raw = TcpStream::connect(addr).unwrap();
        raw.write_all(&get_request(page, &key)).unwrap();
        let mut reader = BufReader::new(raw);
        let mut line = String::new();
        let mut tag = None;
        while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            if let Some(v) = line.strip_prefix("etag: ") {
                tag = Some(v.trim().to_owned());
            }
            line.clear();
        }
        tag.expect("the page has an ETag")
    };
    let duration = secs("BENCH_SECS", 5);
    let key_for_full = key.clone();
    let full = load_checked(
        addr,
        CONNECTIONS,
        duration,
        200,
        Some(b"\"pushes\":[{"),
        Arc::new(move |_| get_request(page, &key_for_full)),
    )
    .per_second();
    let not_modified = load(
        addr,
        CONNECTIONS,
        duration,
        304,
        Arc::new(move |_| {
            format!(
                "GET {page} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nIf-None-Match: {etag}\r\n\r\n"
            )
            .into_bytes()
        }),
    )
    .per_second();
    report("list_full_page_per_s", full);
    report("list_304_per_s", not_modified);
    report("list_304_vs_full_page", not_modified / full);
}

fn main() {
    // As src/main.rs does: mimalloc's `mi_option_purge_delay` (15) set to 0.
    // SAFETY: sets an integer option, which mimalloc reads atomically; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(15, 0) };
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let dir = tempfile::tempdir().unwrap();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&data).unwrap();
    println!(
        "# machine: {} cores; {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        Utc::now().to_rfc3339()
    );
    if run("ingest") {
        ingest(dir.path());
    }
    if run("read") {
        read(&data);
    }
    if run("history") {
        history(&data);
    }
    if run("latency") {
        latency(dir.path());
    }
    if run("footprint") {
        footprint(dir.path(), &data);
    }
    if run("notify") {
        notify(dir.path());
    }
    if run("live") {
        live(dir.path());
    }
}
