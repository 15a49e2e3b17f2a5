//! Denial of service without credentials, over the real binary (issue 13, items 1-3): a huge
//! login body, connections that never finish their headers, descriptors used up, and webhook
//! bodies held one byte short. Each test reads the server's memory or CPU time from /proc.
//! Limits are set through the environment, so an older binary starts too and fails on the
//! substance.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::app::{agent, wait_for};
use crate::support::child::KillOnDrop;
use crate::support::cli;
use crate::support::provider::{Provider, signed_headers};

const ADMIN_TOKEN: &str = "gpa_limits_test_token_0123456789abcdefghij";

/// A `serve` process on a port of its own choosing; killed when dropped.
struct Served {
    child: KillOnDrop,
    addr: SocketAddr,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts `serve` with `env` (and, when `open_files` is given, that many descriptors at
    /// most), and waits until /healthz answers.
    fn start(env: &[(&str, &str)], open_files: Option<u32>) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("limits.db");
        let log = dir.path().join("serve.log");
        let mut command = match open_files {
            // `ulimit -n` in a shell that then becomes the server.
            Some(n) => {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    &format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                    cli::BIN,
                ]);
                for (name, _) in std::env::vars_os() {
                    if name
                        .to_str()
                        .is_some_and(|n| n.starts_with("PUSH_TRACKER_"))
                    {
                        c.env_remove(name);
                    }
                }
                c
            }
            None => cli::command(),
        };
        command
            .arg("--db")
            .arg(&db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("PUSH_TRACKER_SUMMARIZER", "builtin")
            .env("PUSH_TRACKER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PUSH_TRACKER_LOG", "info,poem=error")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = KillOnDrop(command.spawn().expect("start serve"));
        let addr = wait_for(
            "serve to say where it listens",
            Duration::from_secs(30),
            &mut || {
                let text = std::fs::read_to_string(&log).unwrap();
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("serve exited with {status}: {text}");
                }
                text.lines()
                    .filter(|l| l.contains("serving:"))
                    .find_map(|l| {
                        l.split_whitespace()
                            .find_map(|f| f.strip_prefix("address="))
                    })
                    .map(|a| a.parse().unwrap())
            },
        );
        let served = Served {
            child,
            addr,
            db,
            _dir: dir,
        };
        wait_for("serve to be healthy", Duration::from_secs(30), &mut || {
            served.healthy().then_some(())
        });
        served
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `/healthz` answers 200 within 2 s.
    fn healthy(&self) -> bool {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        agent
            .get(format!("http://{}/healthz", self.addr))
            .call()
            .is_ok_and(|r| r.status() == 200)
    }

    /// A field of /proc/PID/status in kB (`VmRSS`, `VmHWM`).
    fn memory_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"))
    }

    /// User plus system CPU time so far, in clock ticks (1/100 s).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // The fields after the command name's closing parenthesis; utime and stime are the
        // 14th and 15th fields of the line.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// A project's webhook path (`/webhooks/...`) and secret.
    fn project(&self, name: &str) -> (String, String) {
        let created = cli::run_json(&self.db, &["project", "create", name, "--json"]);
        let url = created["webhookUrl"].as_str().unwrap();
        let path = &url[url.find("/webhooks/").unwrap()..];
        (
            path.to_owned(),
            created["webhookSecret"].as_str().unwrap().to_owned(),
        )
    }
}

/// Tokio only for binding a client socket to a chosen loopback address before connecting,
/// which std cannot do; the sockets are used as std sockets afterwards.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap()
});

/// A connection to `addr` from the loopback address `from` (127.0.0.0/8 all reach loopback).
fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    RUNTIME.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(from.parse().unwrap(), 0))
            .unwrap();
        let stream = socket.connect(addr).await.expect("connect");
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// Everything the server sends until it closes the connection (or `wait` passes).
fn read_answer(stream: &mut TcpStream, wait: Duration) -> String {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends `head`, then `total` bytes of body (as chunks of 64 KiB when `chunked`) from another
/// thread, while this one reads the answer; stops sending when the server closes.
fn send_big_body(addr: SocketAddr, head: &str, total: usize, chunked: bool) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let sender = thread::spawn(move || {
        let piece = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = piece.len().min(total - sent);
            let ok = if chunked {
                writer
                    .write_all(format!("{n:x}\r\n").as_bytes())
                    .and_then(|()| writer.write_all(&piece[..n]))
                    .and_then(|()| writer.write_all(b"\r\n"))
            } else {
                writer.write_all(&piece[..n])
            };
            if ok.is_err() {
                return;
            }
            sent += n;
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n");
        }
    });
    let answer = read_answer(&mut stream, Duration::from_secs(60));
    drop(stream);
    sender.join().unwrap();
    answer
}

fn status_of(answer: &str) -> &str {
    answer.split_whitespace().nth(1).unwrap_or("(no answer)")
}

/// The JSON error body's code.
fn error_code_of(answer: &str) -> String {
    let body = &answer[answer.find("\r\n\r\n").map_or(0, |i| i + 4)..];
    let json: serde_json::Value = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("not a JSON body ({e}): {answer}"));
    json["error"]["code"].as_str().unwrap().to_owned()
}

#[test]
fn a_300_mib_login_body_plain_or_chunked_is_refused_413_without_raising_memory() {
    let server = Served::start(&[], None);
    let before = server.memory_kb("VmHWM");
    let size = 300 << 20;
    let plain = send_big_body(
        server.addr,
        &format!(
            "POST /api/admin/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {size}\r\n\r\n"
        ),
        size,
        false,
    );
    let chunked = send_big_body(
        server.addr,
        "POST /api/admin/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        size,
        true,
    );
    let after = server.memory_kb("VmHWM");
    eprintln!("login bodies of 300 MiB: VmHWM {before} kB -> {after} kB");
    for answer in [&plain, &chunked] {
        assert_eq!(status_of(answer), "413", "{answer}");
        assert_eq!(error_code_of(answer), "payload_too_large");
    }
    assert!(
        after < before + 16 * 1024,
        "peak memory rose from {before} kB to {after} kB"
    );
    // A login of the usual size still works.
    let agent = agent();
    let ok = agent
        .post(format!("http://{}/api/admin/login", server.addr))
        .header("Content-Type", "application/json")
        .header("X-Requested-With", "fetch")
        .send(format!("{{\"token\":\"{ADMIN_TOKEN}\"}}"))
        .unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
}

/// Opens `count` connections from `from` that send the start of a request and never finish
/// its headers.
fn slow_headers(server: &Served, from: &str, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut s = connect_from(from, server.addr);
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
                .unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect()
}

/// True once the server closed `stream` (end of file, a reset, or its 503 and then the end).
fn closed_by_server(stream: &mut TcpStream, seen: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn connections_that_never_finish_their_headers_are_closed_while_health_answers() {
    let count = 1_500;
    let server = Served::start(&[("PUSH_TRACKER_HEADER_TIMEOUT", "2")], None);
    let cpu_before = server.cpu_ticks();
    let started = Instant::now();
    let mut attack = slow_headers(&server, "127.0.0.2", count);
    let mut seen: Vec<Vec<u8>> = vec![Vec::new(); count];
    let mut open: Vec<usize> = (0..count).collect();
    let mut health_checks = 0;
    wait_for(
        "the server to close every slow connection",
        Duration::from_secs(20),
        &mut || {
            // Another client is served meanwhile.
            assert!(server.healthy(), "/healthz stopped answering");
            health_checks += 1;
            open.retain(|&i| !closed_by_server(&mut attack[i], &mut seen[i]));
            open.is_empty().then_some(())
        },
    );
    let elapsed = started.elapsed();
    let cpu = (server.cpu_ticks() - cpu_before) as f64 / 100.0;
    let refused = seen
        .iter()
        .filter(|s| s.starts_with(b"HTTP/1.1 503"))
        .count();
    eprintln!(
        "{count} slow connections closed in {elapsed:?} ({refused} answered 503 over the \
         per-address cap), {health_checks} health checks answered, server CPU {cpu:.2} s"
    );
    assert!(
        elapsed >= Duration::from_secs(1),
        "closed before the deadline"
    );
    assert!(
        cpu < elapsed.as_secs_f64() * 0.5,
        "the server used {cpu:.2} s of CPU in {elapsed:?}"
    );
}

#[test]
fn a_keep_alive_connection_gets_a_new_header_deadline_for_each_request() {
    let server = Served::start(&[("PUSH_TRACKER_HEADER_TIMEOUT", "1")], None);
    let mut stream = connect_from("127.0.0.3", server.addr);
    stream
        .write_all(b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut first = Vec::new();
    stream.set_nonblocking(true).unwrap();
    wait_for("the first answer", Duration::from_secs(10), &mut || {
        let closed = closed_by_server(&mut stream, &mut first);
        assert!(!closed, "the first request must keep the connection open");
        // A HEAD answer has no body: it ends with its headers.
        first.ends_with(b"\r\n\r\n").then_some(())
    });
    assert!(
        first.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    // The second request starts and never finishes its headers: with the deadline of the first
    // request only, it would stay open until the 60 s idle timeout.
    stream.write_all(b"GET /healthz HTTP/1.1\r\nX-a: ").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    wait_for(
        "the server to close the slow second request",
        Duration::from_secs(15),
        &mut || closed_by_server(&mut stream, &mut rest).then_some(()),
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed before its deadline"
    );
}

#[test]
fn out_of_descriptors_the_server_pauses_instead_of_spinning_and_recovers() {
    // A cap above the descriptor limit, so the accept loop meets EMFILE itself.
    let server = Served::start(
        &[
            ("PUSH_TRACKER_HEADER_TIMEOUT", "3"),
            ("PUSH_TRACKER_MAX_CONNECTIONS", "10000"),
            ("PUSH_TRACKER_MAX_CONNECTIONS_PER_ADDRESS", "10000"),
        ],
        Some(128),
    );
    let count = 160;
    let cpu_before = server.cpu_ticks();
    let started = Instant::now();
    let mut attack = slow_headers(&server, "127.0.0.2", count);
    let mut seen: Vec<Vec<u8>> = vec![Vec::new(); count];
    let mut open: Vec<usize> = (0..count).collect();
    wait_for(
        "the server to close every slow connection",
        Duration::from_secs(30),
        &mut || {
            open.retain(|&i| !closed_by_server(&mut attack[i], &mut seen[i]));
            open.is_empty().then_some(())
        },
    );
    let elapsed = started.elapsed();
    let cpu = (server.cpu_ticks() - cpu_before) as f64 / 100.0;
    eprintln!(
        "{count} slow connections at 128 descriptors closed in {elapsed:?}, server CPU {cpu:.2} s"
    );
    assert!(
        cpu < elapsed.as_secs_f64() * 0.3,
        "the server used {cpu:.2} s of CPU in {elapsed:?}"
    );
    assert!(
        server.healthy(),
        "/healthz does not answer after the attack"
    );
}

/// A GitHub delivery's head with a wrong signature and a declared body of `size` bytes.
fn webhook_head(path: &str, size: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-GitHub-Delivery: held\r\nX-Hub-Signature-256: sha256=00\r\n\
         Content-Length: {size}\r\n\r\n"
    )
}

#[test]
fn webhook_bodies_held_one_byte_short_stay_within_the_budget_and_more_get_503() {
    let body = 25_000_000;
    let server = Served::start(
        &[
            ("PUSH_TRACKER_WEBHOOK_BUDGET", "60000000"),
            ("PUSH_TRACKER_WEBHOOK_BUDGET_PER_ADDRESS", "30000000"),
        ],
        None,
    );
    let (path, secret) = server.project("alpha");
    let before = server.memory_kb("VmRSS");
    // 8 connections from 4 addresses, each sending all of a 25 MB body but its last byte.
    let senders: Vec<_> = (0..8)
        .map(|i| {
            let mut stream = connect_from(&format!("127.0.0.{}", 2 + i % 4), server.addr);
            let head = webhook_head(&path, body);
            thread::spawn(move || {
                stream
                    .set_write_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let sent = stream
                    .write_all(head.as_bytes())
                    .and_then(|()| stream.write_all(&vec![b'{'; body - 1]));
                (stream, sent.is_ok())
            })
        })
        .collect();
    let mut held: Vec<TcpStream> = Vec::new();
    let mut refused = 0;
    for sender in senders {
        let (mut stream, sent) = sender.join().unwrap();
        if sent {
            held.push(stream);
        } else {
            let answer = read_answer(&mut stream, Duration::from_secs(5));
            assert!(answer.is_empty() || status_of(&answer) == "503", "{answer}");
            refused += 1;
        }
    }
    let during = server.memory_kb("VmRSS");
    eprintln!(
        "8 webhook bodies of 25 MB held one byte short: {} held, {refused} refused; VmRSS \
         {before} kB -> {during} kB",
        held.len()
    );
    assert!(
        during < before + 90 * 1024,
        "memory rose from {before} kB to {during} kB with a 60 MB budget"
    );
    // The budget is full: a further delivery is told to come back later.
    let mut more = connect_from("127.0.0.9", server.addr);
    more.write_all(webhook_head(&path, 20_000_000).as_bytes())
        .unwrap();
    let answer = read_answer(&mut more, Duration::from_secs(10));
    assert_eq!(status_of(&answer), "503", "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("\r\nretry-after: "),
        "{answer}"
    );
    assert_eq!(error_code_of(&answer), "server_busy");
    // Once the held bodies are answered, their bytes are free again.
    for mut stream in held {
        stream.write_all(b"}").unwrap();
        let answer = read_answer(&mut stream, Duration::from_secs(30));
        assert_eq!(status_of(&answer), "401", "{answer}");
    }
    let push = crate::support::app::github_payload("main", &["after the attack"], 1_700_000_000);
    let headers = signed_headers(Provider::GitHub, &secret, "push", "after-attack", &push);
    let mut request = agent().post(format!("http://{}{path}", server.addr));
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let stored = request.send(&push[..]).unwrap();
    assert_eq!(stored.status(), 201);
}

#[test]
fn a_stalled_body_is_answered_408_and_an_idle_connection_is_closed() {
    let server = Served::start(
        &[
            ("PUSH_TRACKER_BODY_TIMEOUT", "1"),
            ("PUSH_TRACKER_IDLE_TIMEOUT", "2"),
        ],
        None,
    );
    let (path, _) = server.project("alpha");
    // A webhook body and an /api body that stop after 9 of their 100 bytes: the body deadline
    // (1 s) passes before the idle timeout (2 s).
    for (path, more) in [
        (path.as_str(), "X-GitHub-Event: push\r\n"),
        ("/api/admin/login", ""),
    ] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                     {more}Content-Length: 100\r\n\r\n{{\"token\":"
                )
                .as_bytes(),
            )
            .unwrap();
        let answer = read_answer(&mut stream, Duration::from_secs(10));
        assert_eq!(status_of(&answer), "408", "{path}: {answer}");
        assert_eq!(error_code_of(&answer), "body_timeout");
    }
    // A kept-alive connection that sends nothing more is closed.
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let answer = read_answer(&mut idle, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );
}
