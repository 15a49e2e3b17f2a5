//! The files in examples/ that run the server as a service: the systemd unit passes
//! `systemd-analyze verify` where systemd is installed, and the proxy snippets keep their
//! essentials.

use std::path::Path;
use std::process::Command;

fn example(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Asserts that the example `path` contains each line of `needles`, trimmed.
fn assert_has_each(path: &str, needles: &str) {
    let text = example(path);
    for needle in needles.lines().map(str::trim) {
        assert!(text.contains(needle), "{path} lacks {needle}");
    }
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    // verify checks that ExecStart's binary exists: point it at the one this test built.
    let dir = tempfile::tempdir().unwrap();
    let units = [
        "git-push-tracker.service",
        "git-push-tracker-backup.service",
        "git-push-tracker-backup.timer",
    ];
    for name in units {
        let unit = example(&format!("systemd/{name}"))
            .replace("/usr/local/bin/git-push-tracker", crate::support::cli::BIN);
        std::fs::write(dir.path().join(name), unit).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units.iter().map(|u| dir.path().join(u)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are only warnings ("ignoring"), so any line about the unit fails.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("git-push-tracker"))
        .collect();
    assert!(out.status.success() && complaints.is_empty(), "{stderr}");
}

#[test]
fn the_systemd_unit_runs_unprivileged_in_its_state_directory() {
    // Written as the unit writes them: each line must stand in the unit as it is.
    const ESSENTIAL: &str = "\
        DynamicUser=yes
        StateDirectory=git-push-tracker
        WorkingDirectory=/var/lib/git-push-tracker
        Environment=PUSH_TRACKER_DB=/var/lib/git-push-tracker/git-push-tracker.db
        EnvironmentFile=-/etc/git-push-tracker/env
        ProtectSystem=strict
        ProtectHome=yes
        PrivateTmp=yes
        NoNewPrivileges=yes
        CapabilityBoundingSet=
        RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
        SystemCallFilter=@system-service
        MemoryDenyWriteExecute=yes";
    let unit = example("systemd/git-push-tracker.service");
    for line in ESSENTIAL.lines().map(str::trim) {
        assert!(unit.lines().any(|l| l.trim() == line), "missing {line}");
    }
    let settings = unit.lines().filter(|l| !l.trim_start().starts_with('#'));
    for line in settings {
        assert!(
            !line.contains("API_KEY") && !line.contains("ADMIN_TOKEN"),
            "secrets belong in the EnvironmentFile, not the unit: {line}"
        );
    }
}

#[test]
fn the_proxy_snippets_forward_to_the_server_with_room_for_large_webhooks() {
    assert_has_each(
        "nginx/git-push-tracker.conf",
        "\
        proxy_pass http://127.0.0.1:8080;
        client_max_body_size 25m;
        X-Forwarded-Proto
        X-Forwarded-For
        --public-url",
    );
    assert_has_each(
        "caddy/Caddyfile",
        "\
        reverse_proxy 127.0.0.1:8080
        max_size 25MB
        --public-url",
    );
}
