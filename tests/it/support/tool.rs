//! External tools some tests drive (schemathesis, podman, strace, Chromium): without one the test
//! is skipped with a note, except when `CI=true`, where a missing tool is a failure.

use std::process::{Command, Stdio};

/// Whether this run is CI's (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Skips `test` with `why`: a note on stderr, or a failure under `CI=true`.
pub fn skip(test: &str, why: &str) {
    assert!(!in_ci(), "CI=true but {why}");
    eprintln!("SKIPPED {test}: {why}");
}

/// The first line `program VERSION_ARGS...` prints when it runs and succeeds, noted on stderr as
/// what `test` runs with; otherwise [`skip`]s `test`, saying how to `install` it, and returns
/// None.
pub fn require(test: &str, program: &str, version_args: &[&str], install: &str) -> Option<String> {
    let version = Command::new(program)
        .args(version_args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            text.trim().lines().next().unwrap_or(program).to_owned()
        });
    match &version {
        Some(version) => eprintln!("{test} with {version}"),
        None => skip(test, &format!("{program} is not installed ({install})")),
    }
    version
}
