//! The real binary serving on a port of its own choosing, as a user runs it, with its log in a
//! file; killed when dropped so a failing test leaves nothing behind.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::app::{agent, wait_for};
use super::cli;

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Server {
    /// Starts `serve` on `db`, appending its stdout and stderr to `log`, and waits until
    /// `/healthz` answers 200. `configure` adds environment or flags. The port is read from the
    /// server's "serving" log line: a port picked here and freed for the child could be taken by
    /// any other test of this process in between.
    pub fn start(db: &Path, log: &Path, configure: impl FnOnce(&mut Command)) -> Server {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let earlier_lives = log_file.metadata().unwrap().len() as usize;
        let mut command = cli::command();
        command
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        configure(&mut command);
        let mut server = Server {
            child: command.spawn().expect("start serve"),
            base: String::new(),
        };
        let address = wait_for(
            "the server to say where it listens",
            Duration::from_secs(30),
            &mut || {
                let log = std::fs::read(log).unwrap();
                let this_life = String::from_utf8_lossy(&log[earlier_lives..]);
                if let Some(status) = server.child.try_wait().unwrap() {
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
        server.base = format!("http://{address}");
        let (health, url) = (agent(), format!("{}/healthz", server.base));
        wait_for(
            "the server to be healthy",
            Duration::from_secs(30),
            &mut || match health.get(&url).call() {
                Ok(r) if r.status() == 200 => Some(()),
                _ => None,
            },
        );
        server
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
