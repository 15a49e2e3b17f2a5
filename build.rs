//! Build info for `--version` and `/metrics`: the git commit and the target triple.
//! A source tarball or a shallow CI checkout without git gives "unknown" rather than failing.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GIT_PUSH_TRACKER_COMMIT");
    // HEAD's reflog changes on every commit and checkout, in a plain clone and in a worktree.
    if let Some(path) = git(&["rev-parse", "--git-path", "logs/HEAD"]) {
        println!("cargo:rerun-if-changed={path}");
    }
    let commit = std::env::var("GIT_PUSH_TRACKER_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=GIT_PUSH_TRACKER_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=GIT_PUSH_TRACKER_BUILD_TARGET={target}");
}
