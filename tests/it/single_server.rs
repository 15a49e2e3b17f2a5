//! One server per database file, over the real binary: a second `serve` on a file a running
//! server holds refuses to start and says which file; the CLI keeps working beside the server;
//! once the server stops, or is killed, the next one starts.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::support::app::{agent, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_git-push-tracker");

fn cli(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("PUSH_TRACKER_DB")
        .output()
        .expect("run the CLI")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `serve` on `db` and a fresh port; killed when dropped so a failing test leaves nothing behind.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn spawn(db: &Path) -> Server {
        let port = free_port();
        let child = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("PUSH_TRACKER_SUMMARIZER", "builtin")
            .env_remove("PUSH_TRACKER_DB")
            .env_remove("PUSH_TRACKER_PUBLIC_URL")
            .env_remove("GEMINI_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .env_remove("PUSH_TRACKER_OPENAI_BASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Starts a server and waits until it answers /healthz.
    fn start(db: &Path) -> Server {
        let mut server = Server::spawn(db);
        let (http, url) = (agent(), format!("{}/healthz", server.base));
        wait_for(
            "the server to be healthy",
            Duration::from_secs(30),
            &mut || {
                if let Some(status) = server.child.try_wait().unwrap() {
                    panic!("serve exited at start ({status}): {}", server.stderr());
                }
                match http.get(&url).call() {
                    Ok(r) if r.status() == 200 => Some(()),
                    _ => None,
                }
            },
        );
        server
    }

    /// Waits for the process to end on its own, with a deadline.
    fn wait_exit(&mut self, what: &str) -> std::process::ExitStatus {
        wait_for(what, Duration::from_secs(15), &mut || {
            self.child.try_wait().unwrap()
        })
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut err, &mut text).ok();
        }
        text
    }

    fn terminate(&mut self) {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(stopped.success());
        let status = self.wait_exit("the server to stop on SIGTERM");
        assert!(status.success(), "serve did not stop cleanly: {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_second_server_on_a_file_in_use_refuses_to_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let mut first = Server::start(&db);

    let mut second = Server::spawn(&db);
    let status = second.wait_exit("the second server to give up");
    assert!(!status.success(), "a second server must exit non-zero");
    let stderr = second.stderr();
    let last = stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: another git-push-tracker server is already serving")
            && last.contains(&db.display().to_string()),
        "the last line names the file: {stderr}"
    );
    assert!(
        !stderr.contains("serving: dashboard"),
        "the second server never serves: {stderr}"
    );

    // The first one is untouched, and the CLI works beside it as before.
    let health = agent()
        .get(format!("{}/healthz", first.base))
        .call()
        .unwrap();
    assert_eq!(health.status(), 200);
    let created = cli(&db, &["project", "create", "beside", "--json"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = cli(&db, &["key", "create", "beside", "--json"]);
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let backup = cli(
        &db,
        &["backup", dir.path().join("copy.db").to_str().unwrap()],
    );
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );

    first.terminate();
    let mut third = Server::start(&db);
    third.terminate();
}

#[test]
fn a_server_starts_on_a_file_whose_previous_server_was_killed_with_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.db");
    let mut first = Server::start(&db);
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let mut next = Server::start(&db);
    next.terminate();
}
