//! The container image: `.ci/container-image.sh` builds the Containerfile with podman, FROM
//! scratch, and the image must say how to run it (entrypoint, user, volume, port, healthcheck)
//! and hold the static binary and nothing else. The container itself is never run: CI's machine
//! may not allow it, and what it would run is checked here directly.
//!
//! Needs podman (`.ci/run` installs it with `.ci/apt-install.sh`) and the static musl binary
//! (`.ci/musl-smoke.sh` builds it). Without either the test is skipped with a note, except when
//! `CI=true`, where a missing tool is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::tool;

const TARGET: &str = "x86_64-unknown-linux-musl";

const TEST: &str = "container image test";

/// The release build for musl in the target directory this test was built in.
fn static_binary() -> PathBuf {
    let debug_binary = Path::new(env!("CARGO_BIN_EXE_git-push-tracker"));
    let target_dir = debug_binary
        .parent()
        .and_then(Path::parent)
        .expect("the binary sits in <target>/debug");
    target_dir.join(TARGET).join("release/git-push-tracker")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The image, removed when the test ends however it ends.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rmi", "--force", &self.0])
            .stdin(Stdio::null())
            .output();
    }
}

/// Whether the ELF executable in `bytes` asks for a dynamic loader (a PT_INTERP segment): a
/// static binary, static-pie included, has none.
fn has_interpreter(bytes: &[u8]) -> bool {
    assert_eq!(&bytes[..4], b"\x7fELF", "an ELF file");
    assert_eq!(bytes[4], 2, "64-bit");
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) == 3
    })
}

#[test]
fn the_container_image_runs_the_static_binary_as_a_non_root_user_with_data_in_a_volume() {
    let install = "apt-get install podman, or .ci/apt-install.sh podman podman";
    if tool::require(TEST, "podman", &["--version"], install).is_none() {
        return;
    }
    let binary = static_binary();
    if !binary.is_file() {
        return tool::skip(
            TEST,
            &format!(
                "no static binary at {} (bash .ci/musl-smoke.sh builds it)",
                binary.display()
            ),
        );
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let image = Image(format!(
        "localhost/git-push-tracker-test:{}",
        std::process::id()
    ));
    run(Command::new("bash")
        .arg(format!("{root}/.ci/container-image.sh"))
        .arg(&image.0)
        .env("BIN", &binary));

    let inspected = run(Command::new("podman").args(["image", "inspect", &image.0]));
    let inspected: Value = serde_json::from_slice(&inspected.stdout).expect("inspect JSON");
    let image_info = &inspected[0];
    let config = &image_info["Config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/git-push-tracker"])
    );
    assert_eq!(config["Cmd"], serde_json::json!(["serve"]));
    assert_eq!(config["User"], "65532:65532", "a numeric non-root user");
    assert!(config["Volumes"].get("/data").is_some(), "{config}");
    assert_eq!(config["WorkingDir"], "/data");
    assert!(config["ExposedPorts"].get("8080/tcp").is_some(), "{config}");
    let env: Vec<&str> = config["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for wanted in [
        "PUSH_TRACKER_LISTEN=0.0.0.0:8080",
        "PUSH_TRACKER_DB=/data/git-push-tracker.db",
    ] {
        assert!(env.contains(&wanted), "{wanted} in {env:?}");
    }
    let health = &image_info["Healthcheck"];
    assert_eq!(
        health["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/git-push-tracker", "healthcheck"]),
        "{image_info}"
    );
    assert!(
        health["Timeout"]
            .as_u64()
            .is_some_and(|ns| ns <= 10_000_000_000)
    );
    assert_eq!(
        (
            image_info["Os"].as_str(),
            image_info["Architecture"].as_str()
        ),
        (Some("linux"), Some("amd64"))
    );

    // What is inside: the layers of the saved image, unpacked.
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("image.tar");
    run(Command::new("podman")
        .args(["save", "--quiet", "--format", "docker-archive", "-o"])
        .arg(&archive)
        .arg(&image.0));
    let unpacked = work.path().join("archive");
    std::fs::create_dir(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let mut listing = String::new();
    for layer in manifest[0]["Layers"].as_array().expect("layers") {
        let layer = unpacked.join(layer.as_str().unwrap());
        let list = run(Command::new("tar")
            .args(["-tvf"])
            .arg(&layer)
            .arg("--numeric-owner"));
        listing.push_str(&String::from_utf8_lossy(&list.stdout));
        run(Command::new("tar")
            .arg("-xf")
            .arg(&layer)
            .arg("-C")
            .arg(&rootfs)
            .arg("--no-same-owner"));
    }
    let entries: Vec<(&str, &str, &str)> = listing
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[0], fields[1], *fields.last().unwrap())
        })
        .collect();
    let names: Vec<&str> = entries.iter().map(|e| e.2).collect();
    assert_eq!(
        names,
        [
            "usr/",
            "usr/local/",
            "usr/local/bin/",
            "usr/local/bin/git-push-tracker",
            "data/"
        ],
        "the binary and the data directory, nothing else:\n{listing}"
    );
    let data = entries.iter().find(|e| e.2 == "data/").unwrap();
    assert_eq!(
        (data.0, data.1),
        ("drwx------", "65532/65532"),
        "/data belongs to the server's user alone"
    );

    let inside = rootfs.join("usr/local/bin/git-push-tracker");
    let bytes = std::fs::read(&inside).unwrap();
    assert!(
        bytes == std::fs::read(&binary).unwrap(),
        "the image holds the static binary as built"
    );
    assert!(
        !has_interpreter(&bytes),
        "the binary in the image is static"
    );
    let started = run(Command::new(&inside).arg("--version"));
    let said = String::from_utf8_lossy(&started.stdout);
    assert!(
        said.starts_with("git-push-tracker ") && said.contains(TARGET),
        "{said}"
    );
}

#[test]
fn the_elf_check_tells_a_dynamic_binary_from_a_static_one() {
    // The test binary itself is dynamically linked (the default for the gnu target).
    let this = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(has_interpreter(&this) || cfg!(target_env = "musl"));
}

#[test]
fn the_compose_example_runs_the_image_the_script_builds_with_data_in_a_volume() {
    let root = env!("CARGO_MANIFEST_DIR");
    let compose = std::fs::read_to_string(format!("{root}/examples/compose.yaml")).unwrap();
    let script = std::fs::read_to_string(format!("{root}/.ci/container-image.sh")).unwrap();
    let tag = "localhost/git-push-tracker:latest";
    assert!(
        script.contains(&format!("TAG=\"${{1:-{tag}}}\"")),
        "the script's default tag"
    );
    for line in [
        &format!("image: {tag}"),
        "- data:/data",
        "- \"127.0.0.1:8080:8080\"",
        "PUSH_TRACKER_ADMIN_TOKEN: ${PUSH_TRACKER_ADMIN_TOKEN:?",
        "read_only: true",
    ] {
        assert!(
            compose.lines().any(|l| l.trim().starts_with(line)),
            "compose.yaml has {line:?}"
        );
    }
    assert!(
        !compose.contains("PUSH_TRACKER_LISTEN"),
        "the image already listens on 0.0.0.0:8080"
    );
}
