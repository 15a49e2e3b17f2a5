//! Contract: schemathesis tests the live server from its own `/openapi.json` as the owner would:
//! both credentials, every check, all four phases, and any warning (such as an operation it could
//! not reach) is a failure.
//!
//! The run reads the document, so a new route joins it by being in the document; it must declare
//! every status it can answer (see the README's "The API contract"), and a new path parameter
//! must be reachable through an OpenAPI link (`src/http/contract.rs`) or the stateful phase warns.
//!
//! Needs the `schemathesis` CLI (`.ci/python-deps.sh` installs it). Without it the test is
//! skipped with a note, except when `CI=true`, where a missing tool is a failure.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::app::{ADMIN_TOKEN, TestApp, github_payload};
use crate::support::tool;

/// The whole schemathesis run must finish within this: about 40-55 s for the 14 operations
/// of the first contract run, several minutes once notifications, history and live routes
/// joined, on a loaded 2-core machine.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// The seeded project the fuzzing phase may delete.
const DOOMED: &str = "doomed";

/// A server with a login limit schemathesis cannot reach (its wrong tokens would otherwise
/// turn every later admin call into a 429), one project with a key, and stored pushes.
struct Seeded {
    app: TestApp,
    key: String,
    hook_id: String,
    pushes: Vec<String>,
    notifications: [i64; 2],
}

fn seeded_app() -> Seeded {
    let app = TestApp::spawn_with(|config| {
        config.login_limiter =
            git_push_tracker::auth::LoginLimiter::new(1_000_000, Duration::from_secs(1));
    });
    let project = app.create_project("contract");
    app.create_project(DOOMED);
    let mut pushes = Vec::new();
    for (n, branch) in ["main", "main", "feature/x", "release-1"]
        .iter()
        .enumerate()
    {
        let body = github_payload(
            branch,
            &["feat: add things", "fix: repair others"],
            1_760_000_000 + n as i64 * 3600,
        );
        let reply = app.github_push(&project, &format!("contract-{n}"), &body);
        assert_eq!(reply.status, 201, "{}", reply.body);
        pushes.push(reply.body["pushes"][0].as_str().unwrap().to_owned());
    }
    // Two notifications (to this server's health route), so the operations on one have a real
    // id: the first for pause, resume, test and deliveries, the second for deletion.
    let notifications = format!("{}/api/admin/projects/contract/notifications", app.base_url);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let receiver = format!("{}/healthz", app.base_url);
    let body = serde_json::json!({"kind": "webhook", "url": receiver}).to_string();
    let mut ids = [0; 2];
    for id in &mut ids {
        let created = app.post(&notifications, &headers, body.as_bytes());
        assert_eq!(created.status, 201, "{}", created.body);
        *id = created.body["id"].as_i64().unwrap();
    }
    let hook_id = project.webhook_url.rsplit('/').next().unwrap().to_owned();
    Seeded {
        app,
        key: project.key,
        hook_id,
        pushes,
        notifications: ids,
    }
}

/// Schemathesis's configuration: each security scheme of the document gets its credential.
///
/// A `cursor` is a token the server issued for one project and one set of filters, which no
/// schema can describe: any other well-formed one is rightly refused with 400, so for the
/// operations that take one (read from the document) a 400 to schema-valid input is expected.
///
/// A push `id` parameter gets a stored push's id (random UUIDs only ever find nothing), and the
/// login, whose job is to refuse every token but one, is not warned about for answering 401.
fn config(seeded: &Seeded, document: &serde_json::Value) -> String {
    let push = &seeded.pushes[0];
    let notifications = seeded.notifications;
    let project_key = &seeded.key;
    let mut operations = String::from(
        "\n[[operations]]\ninclude-operation-id = \"adminLogin\"\n\
         warnings = { display = [\"missing_test_data\"], fail-on = true }\n",
    );
    for id in ["getPush", "adminResummarize"] {
        operations.push_str(&format!(
            "\n[[operations]]\ninclude-operation-id = \"{id}\"\nparameters = {{ id = \"{push}\" }}\n"
        ));
    }
    operations.push_str(&format!(
        "\n[[operations]]\ninclude-operation-id = \"adminGetPush\"\n\
         parameters = {{ name = \"contract\", id = \"{push}\" }}\n"
    ));
    // The delivery log and the test message of the seeded notification: the fuzzing phase's
    // own notifications are in projects it deletes again, so it finds too few alive.
    let [kept, _] = notifications;
    for op in ["adminNotificationDeliveries", "adminTestNotification"] {
        operations.push_str(&format!(
            "\n[[operations]]\ninclude-operation-id = \"{op}\"\n\
             parameters = {{ name = \"contract\", id = {kept} }}\n"
        ));
    }
    // Unsigned deliveries to the seeded project's hook: schemathesis cannot sign a body with the
    // project's secret, so a well-formed one gets the documented 401 (signed deliveries are
    // tests/it/payloads.rs's and client.rs's); its other answers are checked against the document.
    operations.push_str(&format!(
        "\n[[operations]]\ninclude-operation-id = \"receiveWebhook\"\n\
         parameters = {{ hookId = \"{}\" }}\n\
         checks.positive_data_acceptance.expected-statuses = [\"2xx\", \"400\", \"401\", \"415\"]\n",
        seeded.hook_id
    ));
    // A test message that the receiver refuses, or that cannot reach it, is the documented 502.
    operations.push_str(
        "\n[[operations]]\ninclude-operation-id = \"adminTestNotification\"\n\
         checks.not_a_server_error.expected-statuses = [\"1xx\", \"2xx\", \"3xx\", \"4xx\", \"502\"]\n",
    );
    // What the fuzzing phase deletes is the other seeded notification and a project of its own,
    // never the seeded project and notification the operations above use.
    let [_, deleted] = notifications;
    operations.push_str(&format!(
        "\n[[operations]]\ninclude-operation-id = \"adminDeleteNotification\"\n\
         parameters = {{ name = \"contract\", id = {deleted} }}\n\
         \n[[operations]]\ninclude-operation-id = \"adminDeleteProject\"\n\
         parameters = {{ name = \"{DOOMED}\" }}\n"
    ));
    for item in document["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let takes_cursor = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "cursor" && p["in"] == "query");
            // Rules a JSON Schema cannot state, answered with their documented 400: a forged
            // cursor; a range of over 366 days (two parameters together); a notification's kind
            // and receiver URL, refused by the handler with a message naming the field (a URL
            // must parse with a host and http(s), more than a pattern can say).
            let id = op["operationId"].as_str().unwrap();
            let cross_rule = [
                "digest",
                "activity",
                "adminDigest",
                "adminActivity",
                "adminCreateNotification",
            ]
            .contains(&id);
            if takes_cursor || cross_rule {
                operations.push_str(&format!(
                    "\n[[operations]]\ninclude-operation-id = \"{}\"\n\
                     checks.positive_data_acceptance.expected-statuses = \
                     [\"2xx\", \"304\", \"400\", \"401\", \"403\", \"404\", \"409\", \"429\"]\n",
                    op["operationId"].as_str().unwrap()
                ));
            }
        }
    }
    format!(
        r#"
# Every warning fails the run, except `validation_mismatch`: it counts the 400s that forged
# cursors (and a cursor sent with an offset) rightly get, and ST202 (positive_data_acceptance)
# already fails any other operation whose schema is looser than the server.
[warnings]
display = ["missing_auth", "missing_test_data", "base_url_mismatch", "missing_deserializer", "unused_openapi_auth", "unsupported_regex", "method_not_allowed", "unmatched_filter", "unresolvable_reference"]
fail-on = true

# Long enough scenarios to walk project -> notification -> its operations.
[phases.stateful]
max-steps = 20

[auth.openapi.ProjectKey]
bearer = "{project_key}"

[auth.openapi.AdminToken]
bearer = "{ADMIN_TOKEN}"
{operations}"#
    )
}

/// Operations schemathesis cannot drive: `streamPushes` and `adminStream` never end, so every
/// request to one would time out; tests/it/live.rs drives them over real HTTP.
const EXCLUDED: &[&str] = &["streamPushes", "adminStream"];

/// Runs `schemathesis run` in `dir` with `args`, within [`RUN_LIMIT`]; its success and output.
fn schemathesis(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("schemathesis")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start schemathesis");
    // Read the output on threads so a full pipe never blocks the run.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis did not finish within {RUN_LIMIT:?}:\n{}",
                out.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = format!("{}\n{}", out.join().unwrap(), err.join().unwrap());
    (status.success(), output)
}

#[test]
fn the_live_api_conforms_to_its_openapi_document_under_schemathesis_as_the_owner_runs_it() {
    let install = "pip install schemathesis, or .ci/python-deps.sh";
    if tool::require("contract test", "schemathesis", &["--version"], install).is_none() {
        return;
    }
    let seeded = seeded_app();
    let app = &seeded.app;
    let seed = std::env::var("CONTRACT_SEED").unwrap_or_else(|_| "20260101".to_owned());
    let examples = std::env::var("CONTRACT_MAX_EXAMPLES").unwrap_or_else(|_| "60".to_owned());
    let work = tempfile::tempdir().unwrap();
    let document = app.get("/openapi.json", None).body;
    std::fs::write(
        work.path().join("schemathesis.toml"),
        config(&seeded, &document),
    )
    .unwrap();
    let url = format!("{}/openapi.json", app.base_url);
    // CONTRACT_REPORT_DIR=dir keeps a HAR file of every request and answer, to see why a
    // warning or failure happened.
    let report = std::env::var("CONTRACT_REPORT_DIR").ok();
    let report_args = report
        .iter()
        .flat_map(|dir| ["--report", "har", "--report-dir", dir.as_str()]);
    let (ok, out) = schemathesis(
        work.path(),
        &[
            &url,
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            &examples,
            "--seed",
            &seed,
            // One worker: Python 3.11's parser is not thread-safe under hypothesis's lambda
            // descriptions ("AST constructor recursion depth mismatch").
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ]
        .into_iter()
        .chain(
            EXCLUDED
                .iter()
                .flat_map(|id| ["--exclude-operation-id", *id]),
        )
        .chain(report_args)
        .collect::<Vec<_>>(),
    );
    eprintln!("{out}");
    assert!(ok, "schemathesis found problems:\n{out}");
    assert_every_operation_ran(&out, &document);
    assert_eq!(
        app.get("/healthz", None).status,
        200,
        "the server stopped serving"
    );
}

/// Every operation of the document but the [`EXCLUDED`] was tested, and no phase skipped
/// one, except the examples phase for operations that take no input to give an example of.
fn assert_every_operation_ran(out: &str, document: &serde_json::Value) {
    let operations: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    let tested = operations - EXCLUDED.len();
    let selected = format!("Selected: {tested}/{operations}");
    assert!(out.contains(&selected), "expected {selected:?}:\n{out}");
    assert!(
        out.contains(&format!("Tested: {tested}\n")),
        "not all were tested:\n{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let after_examples = n >= 2 && lines[n - 2].contains("Examples (");
        if line.contains("skipped") && !line.contains("generated") && !after_examples {
            panic!("schemathesis skipped operations: {line:?}\n{out}");
        }
    }
    let without_input = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter(|op| op.get("parameters").is_none() && op.get("requestBody").is_none())
        .count();
    if let Some(line) = lines
        .iter()
        .find(|l| l.contains("passed") && l.contains("skipped"))
    {
        assert!(
            line.contains(&format!("{without_input} skipped")),
            "the examples phase skipped an operation that has input: {line:?}\n{out}"
        );
    }
}

#[test]
fn the_served_document_and_the_docs_page_are_the_completed_contract() {
    let app = TestApp::spawn();
    let document = app.get("/openapi.json", None);
    assert_eq!(document.status, 200);
    assert!(
        document.body["paths"]["/webhooks/{hookId}"]["post"].is_object(),
        "the webhook receiver is described"
    );
    let links = &document.body["paths"]["/api/admin/projects"]["post"]["responses"]["201"]["links"];
    assert!(links["ListKeys"].is_object(), "{links}");
    let docs = app
        .agent
        .get(format!("{}/docs/", app.base_url))
        .call()
        .unwrap();
    let page = crate::support::app::reply(docs).body;
    let page = page.as_str().unwrap();
    assert!(
        page.contains("receiveWebhook"),
        "Swagger UI shows the whole document"
    );
}
