//! The real binary serving on a port of its own choosing, as a user runs it, with its log in a
//! file; killed when dropped so a failing test leaves nothing behind.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use super::app::{agent, wait_for};
use super::child::KillOnDrop;
use super::cli;

pub struct Server {
    child: KillOnDrop,
    /// `http://127.0.0.1:PORT`; empty until the server said where it listens.
    pub base: String,
    log: PathBuf,
    /// How much of the log earlier servers on it wrote.
    earlier_lives: usize,
}

impl Server {
    /// Starts `serve` on `db`, appending its stdout and stderr to `log`, and waits until
    /// `/healthz` answers 200. `configure` adds environment or flags. The port is read from the
    /// server's "serving" log line: a port picked here and freed for the child could be taken by
    /// any other test of this process in between.
    pub fn start(db: &Path, log: &Path, configure: impl FnOnce(&mut Command)) -> Server {
        Server::start_with(&[] as &[&str], db, log, configure)
    }

    /// [`Server::start`] with the builtin summarizer, `admin_token`, and everything logged at
    /// trace level: for a test that searches the log for what must never be in it.
    pub fn start_tracing(db: &Path, log: &Path, admin_token: &str) -> Server {
        Server::start(db, log, |command| {
            command
                .env("PUSH_TRACKER_LOG", "trace")
                .env("PUSH_TRACKER_SUMMARIZER", "builtin")
                .env("PUSH_TRACKER_ADMIN_TOKEN", admin_token);
        })
    }

    /// [`Server::start`] through `wrapper`, a program and its arguments before the binary's
    /// path (see [`cli::command_through`]).
    pub fn start_with<S: AsRef<OsStr>>(
        wrapper: &[S],
        db: &Path,
        log: &Path,
        configure: impl FnOnce(&mut Command),
    ) -> Server {
        let mut server = Server::spawn_command(cli::command_through(wrapper), db, log, configure);
        server.wait_until_healthy();
        server
    }

    /// `serve` on `db` as [`Server::start`] runs it, without waiting for anything: for a server
    /// that is expected not to start. `configure` may pipe stderr for [`Server::stderr`].
    pub fn spawn(db: &Path, log: &Path, configure: impl FnOnce(&mut Command)) -> Server {
        Server::spawn_command(cli::command(), db, log, configure)
    }

    /// [`Server::spawn`] with `command`, the binary as [`cli::command_through`] runs it.
    fn spawn_command(
        mut command: Command,
        db: &Path,
        log: &Path,
        configure: impl FnOnce(&mut Command),
    ) -> Server {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let earlier_lives = log_file.metadata().unwrap().len() as usize;
        command
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        configure(&mut command);
        Server {
            child: KillOnDrop(command.spawn().expect("start serve")),
            base: String::new(),
            log: log.to_owned(),
            earlier_lives,
        }
    }

    /// What this server wrote to its log so far.
    pub fn log(&self) -> String {
        let log = std::fs::read(&self.log).unwrap();
        String::from_utf8_lossy(&log[self.earlier_lives..]).into_owned()
    }

    fn wait_until_healthy(&mut self) {
        let address = wait_for(
            "the server to say where it listens",
            Duration::from_secs(30),
            &mut || {
                let this_life = self.log();
                if let Some(status) = self.child.try_wait().unwrap() {
                    panic!("serve exited with {status}: {this_life}");
                }
                this_life
                    .lines()
                    .filter(|line| line.contains("serving:"))
                    .find_map(|line| {
                        line.split_whitespace()
                            .find_map(|f| f.strip_prefix("address="))
                    })
                    .map(|a| a.trim_matches('"').to_owned())
            },
        );
        self.base = format!("http://{address}");
        let (health, url) = (agent(), format!("{}/healthz", self.base));
        wait_for(
            "the server to be healthy",
            Duration::from_secs(30),
            &mut || match health.get(&url).call() {
                Ok(r) if r.status() == 200 => Some(()),
                _ => None,
            },
        );
    }

    /// Waits, with a deadline, for the process to end on its own.
    pub fn wait_exit(&mut self, what: &str) -> ExitStatus {
        wait_for(what, Duration::from_secs(30), &mut || {
            self.child.try_wait().unwrap()
        })
    }

    /// All of stderr, when `configure` piped it; empty otherwise.
    pub fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut err, &mut text).ok();
        }
        text
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// SIGTERM, then wait for the clean stop.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM the server");
        let status = self.child.wait().expect("reap the server");
        assert!(status.success(), "serve stopped with {status}");
    }
}
