//! The command line as a user runs it: the binary under test, without the `PUSH_TRACKER_*` and
//! model variables of whoever runs the tests, so only what a test passes counts.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_git-push-tracker");

/// A command for the binary with a clean environment of its own settings; add the arguments.
pub fn command() -> Command {
    command_through(&[] as &[&str])
}

/// [`command`] run through `wrapper`, a program and its arguments before the binary's path (as
/// `strace -f ...` or `sh -c 'umask 022 && exec "$@"' sh`); with no wrapper, the binary itself.
pub fn command_through<S: AsRef<OsStr>>(wrapper: &[S]) -> Command {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(BIN);
            command
        }
        None => Command::new(BIN),
    };
    for (name, _) in std::env::vars_os() {
        let ours = name.to_str().is_some_and(|name| {
            name.starts_with("PUSH_TRACKER_")
                || name == "GEMINI_API_KEY"
                || name == "OPENAI_API_KEY"
        });
        if ours {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `git-push-tracker --db DB ARGS...` to the end.
pub fn run(db: &Path, args: &[&str]) -> Output {
    command()
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run the binary")
}

/// [`run`] of a `--json` command: it must succeed and print exactly one JSON document.
pub fn run_json(db: &Path, args: &[&str]) -> Value {
    let out = run(db, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

/// The one JSON document on a successful command's stdout.
pub fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        text.trim().lines().count(),
        1,
        "exactly one JSON document on stdout: {text}"
    );
    serde_json::from_str(&text).unwrap()
}
