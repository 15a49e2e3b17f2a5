//! The MCP server at `/mcp`, driven by the official Python SDK (PyPI `mcp`) in both protocol
//! generations: the five tools listed and called with a project key and checked against the REST
//! API and the test's own counts, errors as tool results, no key a 401, and a key of one project
//! never reaching another's pushes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{
    TestApp, TestProject, assert_digest_groups, github_payload, groups, mcp_request, push_ids,
};
use crate::support::digest_model::DigestModel;
use crate::support::tool;

/// 2026-01-01T00:00:00Z: the seeded pushes are twelve hours apart from there.
const BASE: i64 = 1_767_225_600;

/// A push the test stored, with what it knows about it.
#[derive(Debug, Clone)]
struct Seeded {
    id: String,
    pusher: &'static str,
    repository: &'static str,
    branch: &'static str,
    commits: u64,
    word: &'static str,
    pushed_at: i64,
}

/// A GitHub push by `pusher` (also its commits' author) to `repository`.
fn payload(s: &Seeded, messages: &[String]) -> Vec<u8> {
    let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
    let mut body: Value =
        serde_json::from_slice(&github_payload(s.branch, &messages, s.pushed_at)).unwrap();
    body["pusher"] = json!({"name": s.pusher, "email": format!("{}@example.com", s.pusher)});
    body["sender"] = json!({"login": s.pusher});
    body["repository"]["full_name"] = json!(s.repository);
    for commit in body["commits"].as_array_mut().unwrap() {
        commit["author"] = json!({"name": s.pusher, "username": s.pusher});
    }
    serde_json::to_vec(&body).unwrap()
}

/// Six pushes for project A over three days (two pushers, two repositories, two branches, two
/// topics) and one for B; answers A's pushes newest first, and B's push id.
fn seed(app: &TestApp, a: &TestProject, b: &TestProject) -> (Vec<Seeded>, String) {
    let mut seeded = Vec::new();
    for i in 0..6usize {
        let mut s = Seeded {
            id: String::new(),
            pusher: ["ada", "grace"][i % 2],
            repository: ["acme/app", "acme/api"][i / 3],
            branch: ["main", "feature"][(i / 2) % 2],
            commits: (i % 3 + 1) as u64,
            word: if matches!(i, 0 | 1 | 4) {
                "authentication"
            } else {
                "caching"
            },
            pushed_at: BASE + i as i64 * 43_200,
        };
        let messages: Vec<String> = (0..s.commits)
            .map(|c| format!("feat: {} step {c}", s.word))
            .collect();
        let reply = app.github_push(a, &format!("a-{i}"), &payload(&s, &messages));
        assert_eq!(reply.status, 201, "{}", reply.body);
        s.id = reply.body["pushes"][0].as_str().unwrap().to_owned();
        seeded.push(s);
    }
    seeded.reverse();
    let body = github_payload("secret-b", &["feat: project b only authentication"], BASE);
    let reply = app.github_push(b, "b-0", &body);
    assert_eq!(reply.status, 201, "{}", reply.body);
    (seeded, reply.body["pushes"][0].as_str().unwrap().to_owned())
}

/// Runs tests/it/scripts/mcp_client.py with `calls` ([label, tool, arguments]); None when the
/// SDK is not installed (skipped outside CI).
fn python_client(test: &str, url: &str, key: &str, mode: &str, calls: &Value) -> Option<Value> {
    let probe = Command::new("python3")
        .args(["-c", "import mcp, httpx2"])
        .output()
        .ok()?;
    if !probe.status.success() {
        tool::skip(
            test,
            "the MCP Python SDK is not installed (.ci/python-deps.sh)",
        );
        return None;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/scripts/mcp_client.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args([url, key, mode, &calls.to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the MCP client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the client prints JSON"))
}

fn ids_where(seeded: &[Seeded], keep: impl Fn(&Seeded) -> bool) -> Vec<String> {
    seeded
        .iter()
        .filter(|s| keep(s))
        .map(|s| s.id.clone())
        .collect()
}

/// `(key, pushes, commits)` per group, as the test counts them.
fn tally(seeded: &[&Seeded], key: impl Fn(&Seeded) -> String) -> BTreeMap<String, (u64, u64)> {
    crate::support::app::tally(seeded.iter().map(|s| (key(s), s.commits)))
}

const RANGE: (&str, &str) = ("2026-01-01", "2026-01-08");

/// The calls the Python client makes: [label, tool, arguments].
fn calls(get_id: &str, foreign_id: &str) -> Value {
    let (since, until) = RANGE;
    json!([
        ["list1", "list_pushes", {"limit": 2, "author": ["grace"]}],
        ["list2", "list_pushes", {"limit": 2, "author": ["grace"], "cursor": "$next:list1"}],
        ["filtered", "list_pushes", {"repository": "acme/api", "refType": "branch",
            "since": "2026-01-02", "until": "2026-01-03T12:00:00Z", "limit": 100}],
        ["search", "search_pushes", {"q": "authenticate", "limit": 100}],
        ["prefix", "search_pushes", {"q": "cach*", "sort": "relevance", "branch": "main"}],
        ["get", "get_push", {"id": get_id}],
        ["digest", "digest", {"since": since, "until": until}],
        ["digestGrace", "digest", {"since": since, "until": until, "author": ["GRACE"],
            "repository": ["acme/app", "acme/api"]}],
        ["byAuthor", "activity", {"since": since, "until": until, "groupBy": "author"}],
        ["byDay", "activity", {"since": since, "until": "2026-01-04", "q": "caching"}],
        ["foreign", "get_push", {"id": foreign_id}],
        ["badDate", "list_pushes", {"since": "yesterday"}],
        ["typo", "list_pushes", {"brnch": "main"}],
        ["badRef", "search_pushes", {"q": "x", "refType": "tags"}],
        ["noQuery", "search_pushes", {}],
        ["blankQuery", "search_pushes", {"q": "  "}],
        ["tooLong", "digest", {"since": "2024-01-01", "until": "2026-01-01"}],
        ["noSince", "activity", {"groupBy": "day"}],
        ["badGroup", "activity", {"since": since, "groupBy": "month"}],
        ["badCursor", "list_pushes", {"cursor": "not-a-cursor"}]
    ])
}

#[test]
fn the_python_sdk_lists_and_calls_all_five_tools_in_both_protocol_generations() {
    let app = TestApp::spawn();
    let a = app.create_project("alpha");
    let b = app.create_project("beta");
    let (seeded, b_id) = seed(&app, &a, &b);
    let url = format!("{}/mcp", app.base_url);
    let rest = |path: &str| app.get_json(path, &a.key);
    let get_id = &seeded[1].id;
    for (mode, version) in [("legacy", "2025-11-25"), ("2026-07-28", "2026-07-28")] {
        let Some(out) = python_client(
            "the_python_sdk_lists_and_calls_all_five_tools",
            &url,
            &a.key,
            mode,
            &calls(get_id, &b_id),
        ) else {
            return;
        };
        assert_eq!(out["protocolVersion"], version, "{mode}");
        let tools = out["tools"].as_object().unwrap();
        let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names.join(" "),
            "activity digest get_push list_pushes search_pushes",
            "{mode}"
        );
        for (name, tool) in tools {
            assert_eq!(tool["input"]["type"], "object", "{mode} {name}");
            assert_eq!(tool["output"]["type"], "object", "{mode} {name}");
        }
        for param in [
            "q",
            "branch",
            "author",
            "repository",
            "refType",
            "since",
            "until",
            "sort",
            "limit",
            "cursor",
        ] {
            let schema = &tools["list_pushes"]["input"]["properties"][param];
            assert!(schema.is_object(), "{mode}: list_pushes lacks {param}");
        }
        assert_eq!(
            tools["list_pushes"]["input"]["properties"]["author"]["type"],
            "array"
        );
        assert_eq!(tools["search_pushes"]["input"]["required"], json!(["q"]));
        assert_eq!(tools["digest"]["input"]["required"], json!(["since"]));
        assert!(tools["activity"]["input"]["properties"]["groupBy"].is_object());

        let r = &out["results"];
        for label in [
            "list1",
            "list2",
            "filtered",
            "search",
            "prefix",
            "get",
            "digest",
            "digestGrace",
            "byAuthor",
            "byDay",
        ] {
            assert_eq!(r[label]["isError"], false, "{mode} {label}: {}", r[label]);
            assert!(
                !r[label]["text"].as_str().unwrap().is_empty(),
                "{mode} {label}"
            );
        }

        // Lists: the REST API's answers, and the pushes the test expects.
        let grace = ids_where(&seeded, |s| s.pusher == "grace");
        assert_eq!(
            r["list1"]["structured"],
            rest("/api/v1/pushes?limit=2&author=grace")
        );
        let paged: Vec<String> = [
            push_ids(&r["list1"]["structured"]),
            push_ids(&r["list2"]["structured"]),
        ]
        .concat();
        assert_eq!(
            paged,
            grace[..4.min(grace.len())],
            "{mode}: the cursor pages on"
        );
        let filtered = ids_where(&seeded, |s| {
            s.repository == "acme/api"
                && s.pushed_at >= BASE + 86_400
                && s.pushed_at < BASE + 2 * 86_400 + 43_200
        });
        assert_eq!(push_ids(&r["filtered"]["structured"]), filtered, "{mode}");
        assert_eq!(
            r["filtered"]["structured"],
            rest(
                "/api/v1/pushes?repository=acme/api&refType=branch&since=2026-01-02&until=2026-01-03T12:00:00Z&limit=100"
            )
        );
        let auth = ids_where(&seeded, |s| s.word == "authentication");
        assert_eq!(
            push_ids(&r["search"]["structured"]),
            auth,
            "{mode}: stemming"
        );
        assert_eq!(
            r["search"]["structured"]["pagination"]["total"],
            auth.len(),
            "{mode}"
        );
        let mut caching_main = ids_where(&seeded, |s| s.word == "caching" && s.branch == "main");
        let mut found = push_ids(&r["prefix"]["structured"]);
        caching_main.sort();
        found.sort();
        assert_eq!(found, caching_main, "{mode}: prefix with a branch");
        assert!(
            r["search"]["text"].as_str().unwrap().contains(&auth[0]),
            "{mode}: the Markdown names the pushes"
        );

        let get = &r["get"];
        assert_eq!(
            get["structured"],
            rest(&format!("/api/v1/pushes/{get_id}")),
            "{mode}"
        );
        assert!(
            get["text"]
                .as_str()
                .unwrap()
                .contains(&format!("feat: {} step 0", seeded[1].word))
        );

        // Digest and activity: the REST answers, and the counts the test makes itself.
        let (since, until) = RANGE;
        let digest = &r["digest"]["structured"];
        assert_eq!(
            digest,
            &rest(&format!("/api/v1/digest?since={since}&until={until}"))
        );
        let all: Vec<&Seeded> = seeded.iter().collect();
        assert_eq!(digest["pushCount"], 6, "{mode}");
        assert_eq!(
            digest["commitCount"],
            seeded.iter().map(|s| s.commits).sum::<u64>()
        );
        let covered = seeded
            .iter()
            .map(|s| ([s.pusher, s.branch, s.repository], s.commits));
        assert_digest_groups(digest, covered, mode);
        let pushed: Vec<String> = digest["pushIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(pushed, ids_where(&seeded, |_| true));
        assert!(
            r["digest"]["text"]
                .as_str()
                .unwrap()
                .starts_with("# Digest of alpha"),
            "{mode}: the digest's Markdown"
        );
        let graces: Vec<&Seeded> = seeded.iter().filter(|s| s.pusher == "grace").collect();
        let digest = &r["digestGrace"]["structured"];
        assert_eq!(digest["pushCount"], graces.len(), "{mode}");
        assert_eq!(
            groups(&digest["branches"], "branch"),
            tally(&graces, |s| s.branch.into())
        );

        let by_author = &r["byAuthor"]["structured"];
        assert_eq!(
            by_author,
            &rest(&format!(
                "/api/v1/activity?since={since}&until={until}&groupBy=author"
            ))
        );
        assert_eq!(
            groups(&by_author["buckets"], "key"),
            tally(&all, |s| s.pusher.into())
        );
        let caching: Vec<&Seeded> = seeded.iter().filter(|s| s.word == "caching").collect();
        let by_day = &r["byDay"]["structured"];
        assert_eq!(by_day["groupBy"], "day");
        let days = groups(&by_day["buckets"], "key");
        let mut expected = tally(&caching, |s| {
            chrono::DateTime::from_timestamp(s.pushed_at, 0)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string()
        });
        for day in ["2026-01-01", "2026-01-02", "2026-01-03"] {
            expected.entry(day.to_owned()).or_insert((0, 0));
        }
        assert_eq!(
            days, expected,
            "{mode}: every day of the range, empty ones too"
        );

        // Errors are tool results the model can act on, with the REST API's wording.
        let error = |label: &str, needle: &str| {
            let e = &r[label];
            assert_eq!(e["isError"], true, "{mode} {label}: {e}");
            let text = e["text"].as_str().unwrap();
            assert!(text.contains(needle), "{mode} {label}: {text}");
        };
        error("foreign", "list_pushes");
        error("badDate", "`since` must be");
        error("typo", "brnch");
        error("badRef", "`refType` must be `branch` or `tag`");
        error("noQuery", "`q`");
        error("blankQuery", "`q` must name the words");
        error("tooLong", "366 days");
        error("noSince", "`since`");
        error("badGroup", "`groupBy` must be");
        error("badCursor", "cursor");
        assert!(
            !r["foreign"].to_string().contains("secret-b"),
            "{mode}: {}",
            r["foreign"]
        );
        assert!(
            !out.to_string().contains("project b only"),
            "{mode}: B leaked"
        );
    }
}

fn post_mcp(app: &TestApp, key: Option<&str>, body: &Value) -> crate::support::app::Reply {
    let mut req = app
        .agent
        .post(format!("{}/mcp", app.base_url))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json");
    if let Some(key) = key {
        req = req.header("Authorization", format!("Bearer {key}"));
    }
    crate::support::app::reply(req.send(body.to_string().as_bytes()).expect("POST /mcp"))
}

#[test]
fn mcp_without_a_live_key_is_a_401_json_error_and_no_oauth_is_advertised() {
    let app = TestApp::spawn();
    let a = app.create_project("alpha");
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let wrong = "gpt_NotARealKey0123456789abcdefghijklmnop";
    for key in [None, Some(wrong)] {
        let reply = post_mcp(&app, key, &initialize);
        assert_eq!(reply.status, 401, "{key:?}: {:?}", reply.body);
        assert_eq!(reply.body["error"]["code"], "unauthorized");
        let challenge = reply.header("www-authenticate").unwrap_or("");
        assert!(!challenge.contains("resource_metadata"), "{challenge}");
    }
    let discovery = app.get("/.well-known/oauth-protected-resource", None);
    assert_eq!(discovery.status, 404);

    let reply = post_mcp(&app, Some(&a.key), &initialize);
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["result"]["protocolVersion"], "2025-11-25");
    assert!(
        reply.header("mcp-session-id").is_none(),
        "stateless: no session"
    );
}

/// The `result` of a stateless MCP request (see [`mcp_request`]) that must answer 200.
fn mcp_result(app: &TestApp, key: &str, method: &str, name: Option<&str>, params: Value) -> Value {
    let reply = mcp_request(app, key, method, name, params);
    assert_eq!(reply.status, 200, "{method}: {:?}", reply.body);
    reply.body["result"].clone()
}

#[test]
fn stateless_requests_follow_the_2026_07_28_transport_rules() {
    let app = TestApp::spawn();
    let a = app.create_project("alpha");
    let discover = mcp_result(&app, &a.key, "server/discover", None, json!({}));
    let versions = discover["supportedVersions"].to_string();
    assert!(
        versions.contains("2026-07-28") && versions.contains("2025-03-26"),
        "{versions}"
    );

    let args = json!({"name": "list_pushes", "arguments": {"limit": 5}});
    let call = mcp_result(
        &app,
        &a.key,
        "tools/call",
        Some("list_pushes"),
        args.clone(),
    );
    assert_eq!(call["resultType"], "complete");
    assert_eq!(call["structuredContent"]["project"], "alpha");
    assert_eq!(call["isError"], false);

    // The name header must match the body: a proxy routing on it cannot be lied to.
    let missing = mcp_request(&app, &a.key, "tools/call", None, args.clone());
    assert_eq!(missing.status, 400, "{:?}", missing.body);
    let mismatch = mcp_request(&app, &a.key, "tools/call", Some("get_push"), args);
    assert_eq!(mismatch.status, 400, "{:?}", mismatch.body);

    // No sessions and no stream to open: GET is 405 with the methods that work.
    let get = app.get("/mcp", Some(&a.key));
    assert_eq!(get.status, 405);
    assert_eq!(get.header("allow"), Some("POST"));
}

#[test]
fn a_search_with_no_turn_free_is_a_tool_error_to_retry_while_a_plain_list_answers() {
    let app = TestApp::spawn_with(crate::support::app::without_search_turns);
    let a = app.create_project("alpha");
    let call = |name: &str, arguments: Value| {
        let args = json!({"name": name, "arguments": arguments});
        mcp_result(&app, &a.key, "tools/call", Some(name), args)
    };
    let busy = call("search_pushes", json!({"q": "fix"}));
    assert_eq!(busy["isError"], true, "{busy}");
    let text = busy["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("too many searches"), "{text}");
    let plain = call("list_pushes", json!({"limit": 5}));
    assert_eq!(plain["isError"], false, "{plain}");
}

#[test]
fn mcp_refuses_a_host_name_it_does_not_answer_to() {
    let app = TestApp::spawn();
    let a = app.create_project("alpha");
    let reply = crate::support::app::reply(
        app.agent
            .post(format!("{}/mcp", app.base_url))
            .header("Host", "attacker.example")
            .header("Authorization", format!("Bearer {}", a.key))
            .header("Content-Type", "application/json")
            .send(b"{}".as_slice())
            .expect("POST /mcp"),
    );
    assert!(matches!(reply.status, 403 | 421), "{}", reply.status);
}

/// A proxy in front of the test server that adds the project key to every request: the
/// conformance suite has no option for a header. Each request gets its own connection
/// (`Connection: close`), so each one passes through here; a `Host` naming the proxy becomes
/// the server's, any other (the DNS-rebinding scenario's) goes through as sent.
fn key_proxy(server: SocketAddr, key: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let key = key.clone();
            std::thread::spawn(move || {
                let _ = forward(client, addr, server, &key);
            });
        }
    });
    addr
}

fn forward(
    mut client: TcpStream,
    proxy: SocketAddr,
    server: SocketAddr,
    key: &str,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 || head.len() > 65_536 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let mut out = format!("{}\r\n", lines.next().unwrap_or_default());
    for line in lines {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "connection" | "authorization" => {}
            "host" if line[5..].trim() == proxy.to_string() => {
                out.push_str(&format!("Host: {server}\r\n"));
            }
            _ => out.push_str(&format!("{line}\r\n")),
        }
    }
    out.push_str(&format!(
        "Authorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    ));
    let mut upstream = TcpStream::connect(server)?;
    upstream.write_all(out.as_bytes())?;
    let (mut from_client, mut to_server) = (client.try_clone()?, upstream.try_clone()?);
    let body = std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_server));
    std::io::copy(&mut upstream, &mut client)?;
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = body.join();
    Ok(())
}

/// The conformance suite's server scenarios this server fails, and why. The suite fails the run
/// on a failure not listed here and on a listed scenario that passes (a stale entry).
/// Passing, and checked: `server-initialize`, `ping`, `tools-list` (every tool's schemas) and
/// `dns-rebinding-protection` (a foreign `Host` is refused).
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    (
        "logging-set-level",
        "no `logging` capability: the server sends no log notifications",
    ),
    (
        "completion-complete",
        "no `completions` capability: no prompts or resource templates to complete",
    ),
    (
        "tools-call-simple-text",
        "calls `test_simple_text`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "tools-call-image",
        "calls `test_image_content`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "tools-call-audio",
        "calls `test_audio_content`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "tools-call-embedded-resource",
        "calls `test_embedded_resource`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "tools-call-mixed-content",
        "calls `test_multiple_content_types`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "tools-call-with-logging",
        "calls `test_tool_with_logging`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "tools-call-error",
        "calls `test_error_handling`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "tools-call-with-progress",
        "calls `test_tool_with_progress`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "tools-call-sampling",
        "calls `test_sampling`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "tools-call-elicitation",
        "calls `test_elicitation`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "elicitation-sep1034-defaults",
        "calls `test_elicitation_sep1034_defaults`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "elicitation-sep1330-enums",
        "calls `test_elicitation_sep1330_enums`, a fixture tool of the suite's reference server; this server has only its five history tools",
    ),
    (
        "server-sse-multiple-streams",
        "needs a session id; this server is stateless (no sessions, JSON answers), so the scenario only warns, which the suite counts as failing",
    ),
    (
        "resources-list",
        "no `resources` capability: a tools-only server",
    ),
    (
        "resources-read-text",
        "no `resources` capability: a tools-only server",
    ),
    (
        "resources-read-binary",
        "no `resources` capability: a tools-only server",
    ),
    (
        "resources-templates-read",
        "no `resources` capability: a tools-only server",
    ),
    (
        "resources-subscribe",
        "no `resources` capability: a tools-only server",
    ),
    (
        "resources-unsubscribe",
        "no `resources` capability: a tools-only server",
    ),
    (
        "prompts-list",
        "no `prompts` capability: a tools-only server",
    ),
    (
        "prompts-get-simple",
        "no `prompts` capability: a tools-only server",
    ),
    (
        "prompts-get-with-args",
        "no `prompts` capability: a tools-only server",
    ),
    (
        "prompts-get-embedded-resource",
        "no `prompts` capability: a tools-only server",
    ),
    (
        "prompts-get-with-image",
        "no `prompts` capability: a tools-only server",
    ),
];

#[test]
fn the_mcp_conformance_suite_passes_the_scenarios_of_a_tools_only_server() {
    let test = "the_mcp_conformance_suite_passes";
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp-conformance");
    let node = format!("{dir}/node_modules/node/bin/node");
    let suite = format!("{dir}/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let install = "npm ci --prefix tests/mcp-conformance";
    if tool::require(test, &node, &["--version"], install).is_none() {
        return;
    }
    if !std::path::Path::new(&suite).exists() {
        tool::skip(
            test,
            &format!("the conformance suite is not installed ({install})"),
        );
        return;
    }
    let app = TestApp::spawn();
    let a = app.create_project("alpha");
    let server: SocketAddr = app.base_url.trim_start_matches("http://").parse().unwrap();
    let proxy = key_proxy(server, a.key.clone());
    let work = tempfile::tempdir().unwrap();
    let baseline = work.path().join("expected-failures.yml");
    let mut yaml = String::from("server:\n");
    for (scenario, _why) in EXPECTED_FAILURES {
        yaml.push_str(&format!("  - {scenario}\n"));
    }
    std::fs::write(&baseline, yaml).unwrap();
    let out = Command::new(&node)
        .arg(&suite)
        .args(["server", "--url", &format!("http://{proxy}/mcp")])
        .arg("--expected-failures")
        .arg(&baseline)
        .arg("-o")
        .arg(work.path().join("results"))
        .current_dir(dir)
        .output()
        .expect("run the conformance suite");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the conformance suite failed:\n{report}"
    );
    for scenario in [
        "server-initialize",
        "ping",
        "tools-list",
        "dns-rebinding-protection",
    ] {
        assert!(
            report.contains(&format!("✓ {scenario}: ")),
            "{scenario} did not pass:\n{report}"
        );
    }
}

/// A gate the model's digests wait at until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Returns once the gate is open.
    fn pass(&self) {
        let open = self.open.lock().unwrap();
        let _open = self.opened.wait_while(open, |open| !*open).unwrap();
    }
}

/// Opens the gate when dropped, so a failing test ends instead of leaving digests waiting.
struct OpenOnDrop<'a>(&'a Gate);

impl Drop for OpenOnDrop<'_> {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[test]
fn digests_waiting_on_a_model_leave_the_server_answering_other_calls() {
    let gate = Arc::new(Gate::default());
    let model = Arc::new(DigestModel::new("gated-model", {
        let gate = Arc::clone(&gate);
        move |_, _| {
            gate.pass();
            "- The model's digest".to_owned()
        }
    }));
    let app = TestApp::spawn_summarized_by(model.clone());
    let a = app.create_project("alpha");
    let body = github_payload("main", &["feat: one push"], BASE);
    assert_eq!(app.github_push(&a, "a-0", &body).status, 201);
    let digest =
        json!({"name": "digest", "arguments": {"since": "2026-01-01", "until": "2026-01-02"}});
    // More digests than the test server has async worker threads (two): were a model call made
    // on one of them, the last digest could not even start and nothing else would be answered.
    let parallel = 3;
    std::thread::scope(|s| {
        let opens_gate = OpenOnDrop(&gate);
        let digests: Vec<_> = (0..parallel)
            .map(|_| {
                s.spawn(|| mcp_request(&app, &a.key, "tools/call", Some("digest"), digest.clone()))
            })
            .collect();
        app.wait_for(
            "every digest waiting on the model",
            Duration::from_secs(20),
            || (model.digests() == parallel).then_some(()),
        );
        let (tx, rx) = mpsc::channel();
        let (app, key) = (&app, &a.key);
        s.spawn(move || {
            let args = json!({"name": "list_pushes", "arguments": {}});
            let _ = tx.send(mcp_request(
                app,
                key,
                "tools/call",
                Some("list_pushes"),
                args,
            ));
        });
        let list = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("list_pushes answered while the digests wait on the model");
        assert_eq!(list.status, 200, "{:?}", list.body);
        assert_eq!(
            list.body["result"]["structuredContent"]["pagination"]["total"],
            1
        );

        drop(opens_gate);
        for handle in digests {
            let reply = handle.join().unwrap();
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            let digest = &reply.body["result"]["structuredContent"];
            assert_eq!(digest["summarySource"], "gated-model", "{digest}");
            assert_eq!(digest["summary"], "- The model's digest");
            assert_eq!(digest["pushCount"], 1);
        }
    });
}

#[test]
fn the_readme_and_the_dashboard_name_every_tool_the_server_lists() {
    let app = TestApp::spawn();
    let a = app.create_project("alpha");
    let listed = mcp_result(&app, &a.key, "tools/list", None, json!({}));
    let names: Vec<String> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## MCP server for AI agents")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README's MCP section");
    let page = app.get("/", None);
    let html = page.body.as_str().unwrap();
    let snippet = html
        .split("id=\"mcp-tools\"")
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .expect("the dashboard's list of MCP tools");
    for name in &names {
        assert!(
            section.contains(&format!("| `{name}` |")),
            "README lacks {name}"
        );
        assert!(
            snippet.contains(&format!("<code>{name}</code>")),
            "dashboard lacks {name}"
        );
    }
    assert_eq!(
        section.matches("\n| `").count(),
        names.len(),
        "the README's table has no extra tool"
    );
    assert_eq!(
        snippet.matches("<li>").count(),
        names.len(),
        "the dashboard lists no extra tool"
    );
}
