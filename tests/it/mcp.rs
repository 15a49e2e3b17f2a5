//! The MCP server at `/mcp`, driven by the official Python SDK (PyPI `mcp`) in both protocol
//! generations: tools listed and called with a project key, errors as tool results, no key a 401,
//! and a key of one project never reaching another's pushes.

use std::process::Command;

use chrono::Utc;
use serde_json::{Value, json};

use crate::support::app::{TestApp, TestProject, github_payload};
use crate::support::tool;

/// Two pushes for project A (`main`, then `feature`) and one for B; answers the ids newest first.
fn seed(app: &TestApp, a: &TestProject, b: &TestProject) -> (Vec<String>, String) {
    let now = Utc::now().timestamp();
    for (i, (branch, message)) in [("main", "fix: login redirect"), ("feature", "feat: sso")]
        .iter()
        .enumerate()
    {
        let body = github_payload(branch, &[message], now - 100 + i as i64);
        assert_eq!(app.github_push(a, &format!("a-{i}"), &body).status, 201);
    }
    let body = github_payload("secret-b", &["feat: project b only"], now);
    assert_eq!(app.github_push(b, "b-0", &body).status, 201);
    let ids = |key: &str| -> Vec<String> {
        let page = app.get("/api/v1/pushes", Some(key));
        page.body["pushes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    (ids(&a.key), ids(&b.key).remove(0))
}

/// Runs tests/it/scripts/mcp_client.py; None when the SDK is not installed (skipped outside CI).
fn python_client(test: &str, args: &[&str]) -> Option<Value> {
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
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the MCP client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the client prints JSON"))
}

#[test]
fn the_python_sdk_lists_and_calls_every_tool_in_both_protocol_generations() {
    let app = TestApp::spawn();
    let a = app.create_project("alpha");
    let b = app.create_project("beta");
    let (a_ids, b_id) = seed(&app, &a, &b);
    let url = format!("{}/mcp", app.base_url);
    for (mode, version) in [("legacy", "2025-11-25"), ("2026-07-28", "2026-07-28")] {
        let Some(out) = python_client(
            "the_python_sdk_lists_and_calls_every_tool",
            &[&url, &a.key, mode, &a_ids[1], &b_id],
        ) else {
            return;
        };
        assert_eq!(out["protocolVersion"], version, "{mode}");
        let tools = out["tools"].as_object().unwrap();
        let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["get_push", "list_pushes"], "{mode}");
        for (name, tool) in tools {
            assert_eq!(tool["input"]["type"], "object", "{mode} {name}");
            assert_eq!(tool["output"]["type"], "object", "{mode} {name}");
        }
        assert!(tools["list_pushes"]["input"]["properties"]["cursor"].is_object());

        // The structured results are exactly what the REST API answers.
        let list = &out["list"];
        assert_eq!(list["isError"], false, "{mode}: {list}");
        let api = app.get("/api/v1/pushes?limit=1", Some(&a.key)).body;
        assert_eq!(list["structured"]["pushes"], api["pushes"], "{mode}");
        assert_eq!(list["structured"]["project"], "alpha");
        assert_eq!(list["structured"]["pagination"]["total"], 2);
        assert!(list["text"].as_str().unwrap().contains(&a_ids[0]), "{mode}");
        let next = &out["next"]["structured"];
        assert_eq!(
            next["pushes"][0]["id"],
            a_ids[1].as_str(),
            "{mode}: the cursor pages on"
        );
        assert_eq!(next["pagination"]["nextCursor"], Value::Null);

        let get = &out["get"];
        let api = app
            .get(&format!("/api/v1/pushes/{}", a_ids[1]), Some(&a.key))
            .body;
        assert_eq!(get["isError"], false, "{mode}: {get}");
        assert_eq!(get["structured"], api, "{mode}");
        assert!(
            get["text"]
                .as_str()
                .unwrap()
                .contains("fix: login redirect")
        );

        // Errors are tool results the model can act on; B's push does not exist for A's key.
        let foreign = &out["foreign"];
        assert_eq!(foreign["isError"], true, "{mode}: {foreign}");
        assert!(foreign["text"].as_str().unwrap().contains("list_pushes"));
        assert!(
            !foreign.to_string().contains("secret-b"),
            "{mode}: {foreign}"
        );
        let bad_date = &out["badDate"];
        assert_eq!(bad_date["isError"], true, "{mode}: {bad_date}");
        assert!(
            bad_date["text"]
                .as_str()
                .unwrap()
                .contains("`since` must be")
        );
        let typo = &out["typo"];
        assert_eq!(typo["isError"], true, "{mode}: {typo}");
        assert!(typo["text"].as_str().unwrap().contains("brnch"), "{typo}");
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

/// A 2026-07-28 request: no handshake, the version and client in `_meta`, the method in headers.
fn modern(
    app: &TestApp,
    key: &str,
    method: &str,
    name: Option<&str>,
    params: Value,
) -> crate::support::app::Reply {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let mut req = app
        .agent
        .post(format!("{}/mcp", app.base_url))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {key}"))
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", method);
    if let Some(name) = name {
        req = req.header("Mcp-Name", name);
    }
    crate::support::app::reply(req.send(body.to_string().as_bytes()).expect("POST /mcp"))
}

#[test]
fn stateless_requests_follow_the_2026_07_28_transport_rules() {
    let app = TestApp::spawn();
    let a = app.create_project("alpha");
    let discover = modern(&app, &a.key, "server/discover", None, json!({}));
    assert_eq!(discover.status, 200, "{:?}", discover.body);
    let versions = discover.body["result"]["supportedVersions"].to_string();
    assert!(
        versions.contains("2026-07-28") && versions.contains("2025-03-26"),
        "{versions}"
    );

    let args = json!({"name": "list_pushes", "arguments": {"limit": 5}});
    let call = modern(
        &app,
        &a.key,
        "tools/call",
        Some("list_pushes"),
        args.clone(),
    );
    assert_eq!(call.status, 200, "{:?}", call.body);
    assert_eq!(call.body["result"]["resultType"], "complete");
    assert_eq!(call.body["result"]["structuredContent"]["project"], "alpha");
    assert_eq!(call.body["result"]["isError"], false);

    // The name header must match the body: a proxy routing on it cannot be lied to.
    let missing = modern(&app, &a.key, "tools/call", None, args.clone());
    assert_eq!(missing.status, 400, "{:?}", missing.body);
    let mismatch = modern(&app, &a.key, "tools/call", Some("get_push"), args);
    assert_eq!(mismatch.status, 400, "{:?}", mismatch.body);

    // No sessions and no stream to open: GET is 405 with the methods that work.
    let get = app.get("/mcp", Some(&a.key));
    assert_eq!(get.status, 405);
    assert_eq!(get.header("allow"), Some("POST"));
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
