//! Project isolation as a property: for random projects, keys (some revoked) and pushes, a live
//! key only ever sees its own project's data (lists, search, filters, digests, activity, and
//! every MCP tool), and a revoked key gets 401 everywhere.

use crate::support::app::{Reply, TestApp, TestProject, github_payload, mcp_request};
use chrono::Utc;
use proptest::prelude::*;
use serde_json::{Value, json};

/// One project of a generated case: which of its keys are revoked, and its pushes as
/// (branch number, commit count, day offset).
#[derive(Debug, Clone)]
struct ProjectSpec {
    revoked: Vec<bool>,
    pushes: Vec<(u8, u8, u8)>,
}

/// A list request's parameters: limit, offset, branch as (project, branch number), since index.
#[derive(Debug, Clone)]
struct ListQuery {
    limit: Option<u8>,
    offset: Option<u8>,
    branch: Option<(usize, u8)>,
    since: Option<usize>,
}

const BASE_TIME: i64 = 1_700_000_000; // 2023-11-14
const SINCE: &[&str] = &[
    "2023-11-14",
    "2023-11-16T00:00:00Z",
    "2023-11-18T12:30:00+02:00",
    "2000-01-01",
    "2100-01-01",
];

fn project_spec() -> impl Strategy<Value = ProjectSpec> {
    (
        prop::collection::vec(prop::bool::weighted(0.3), 1..=3),
        prop::collection::vec((0u8..3, 1u8..4, 0u8..7), 0..=4),
    )
        .prop_map(|(revoked, pushes)| ProjectSpec { revoked, pushes })
}

fn list_query() -> impl Strategy<Value = ListQuery> {
    (
        prop::option::of(0u8..=120),
        prop::option::of(0u8..6),
        prop::option::of((0usize..4, 0u8..3)),
        prop::option::of(0usize..SINCE.len()),
    )
        .prop_map(|(limit, offset, branch, since)| ListQuery {
            limit,
            offset,
            branch,
            since,
        })
}

/// The marker carried by everything of project `i`: its name, branches and commit messages.
/// `z`, `q` and `x` never occur in UUIDs or timestamps, so a marker cannot appear by chance.
fn marker(i: usize) -> String {
    format!("zq{i}x")
}

fn branch(i: usize, b: u8) -> String {
    format!("{}-br{b}", marker(i))
}

struct Built {
    project: TestProject,
    /// (key, revoked)
    keys: Vec<(String, bool)>,
    push_ids: Vec<String>,
}

fn build(app: &TestApp, specs: &[ProjectSpec]) -> Vec<Built> {
    let manager = app.manager();
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let project = app.create_project(&format!("p{}", marker(i)));
            let mut keys = Vec::new();
            for (k, &revoked) in spec.revoked.iter().enumerate() {
                let created = manager
                    .create_key(&project.name, &format!("k{k}"), Utc::now())
                    .unwrap();
                if revoked {
                    manager
                        .revoke_key(&project.name, &created.info.id.to_string(), Utc::now())
                        .unwrap();
                }
                keys.push((created.key.expose().to_owned(), revoked));
            }
            let mut push_ids = Vec::new();
            for (n, &(b, commits, day)) in spec.pushes.iter().enumerate() {
                let messages: Vec<String> = (0..commits)
                    .map(|c| format!("{} commit {c} of push {n}", marker(i)))
                    .collect();
                let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
                let body = github_payload(
                    &branch(i, b),
                    &messages,
                    BASE_TIME + i64::from(day) * 86_400,
                );
                let reply = app.github_push(&project, &format!("p{i}-d{n}"), &body);
                assert_eq!(reply.status, 201, "{}", reply.body);
                push_ids.push(reply.body["pushes"][0].as_str().unwrap().to_owned());
            }
            Built {
                project,
                keys,
                push_ids,
            }
        })
        .collect()
}

fn query_string(q: &ListQuery, projects: usize) -> String {
    let mut params: Vec<(&str, String)> = Vec::new();
    if let Some(limit) = q.limit {
        params.push(("limit", limit.to_string()));
    }
    if let Some(offset) = q.offset {
        params.push(("offset", offset.to_string()));
    }
    if let Some((p, b)) = q.branch {
        // Often another project's branch: it must match nothing for this key.
        params.push(("branch", branch(p % projects, b)));
    }
    if let Some(s) = q.since {
        params.push(("since", SINCE[s].to_owned()));
    }
    format!(
        "/api/v1/pushes?{}",
        serde_urlencoded::to_string(&params).unwrap()
    )
}

/// Fails with the offending body when it mentions any project other than `own`.
/// Case-insensitive: summaries capitalize their first word (`Zq1x ...`).
fn assert_no_foreign_marker(body: &str, own: usize, projects: usize, what: &str) {
    let lower = body.to_lowercase();
    for other in (0..projects).filter(|&o| o != own) {
        assert!(
            !lower.contains(&marker(other)),
            "{what}: a key of project {own} saw project {other}'s data: {body}"
        );
    }
}

/// `reply` to a key of project `own`: `None` once checked to be a 401 when the key is revoked,
/// otherwise its body, checked to be a 200 that names no other project.
fn live_answer(
    reply: Reply,
    revoked: bool,
    own: usize,
    projects: usize,
    what: &str,
) -> Option<Value> {
    if revoked {
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        return None;
    }
    assert_eq!(reply.status, 200, "{what}: {}", reply.body);
    assert_no_foreign_marker(&reply.body.to_string(), own, projects, what);
    Some(reply.body)
}

/// The MCP tools with a key: each answers its own project's data only, with the same counts as
/// the REST routes; another project's push is an error result naming nothing of it.
fn check_mcp(
    app: &TestApp,
    b: &Built,
    i: usize,
    key: &str,
    revoked: bool,
    all: &[(usize, &String)],
    n: usize,
) {
    let own = b.push_ids.len() as u64;
    let (since, until) = ("2023-11-01", "2023-12-01");
    let mut calls: Vec<(&str, Value, Option<u64>)> = (0..n)
        .map(|o| {
            let found = if o == i { own } else { 0 };
            (
                "search_pushes",
                json!({"q": marker(o), "limit": 100}),
                Some(found),
            )
        })
        .collect();
    calls.push(("list_pushes", json!({"limit": 100}), Some(own)));
    calls.push((
        "search_pushes",
        json!({"q": "zq*", "limit": 100}),
        Some(own),
    ));
    calls.push((
        "list_pushes",
        json!({"author": ["ADA"], "repository": "acme/app", "refType": "branch", "limit": 100}),
        Some(own),
    ));
    calls.push(("digest", json!({"since": since, "until": until}), Some(own)));
    calls.push((
        "digest",
        json!({"since": since, "until": until, "q": "commit"}),
        Some(own),
    ));
    for by in ["day", "week", "author", "branch", "repository"] {
        calls.push((
            "activity",
            json!({"since": since, "until": until, "groupBy": by}),
            Some(own),
        ));
    }
    for (owner, id) in all {
        let expected = if *owner == i { Some(1) } else { None };
        calls.push(("get_push", json!({"id": id}), expected));
    }
    for (tool, args, expected) in calls {
        let what = format!("MCP {tool} {args}");
        let params = json!({"name": tool, "arguments": args});
        let reply = mcp_request(app, key, "tools/call", Some(tool), params);
        let Some(body) = live_answer(reply, revoked, i, n, &what) else {
            continue;
        };
        let result = &body["result"];
        let Some(expected) = expected else {
            assert_eq!(result["isError"], true, "{what}: {body}");
            continue;
        };
        assert_eq!(result["isError"], false, "{what}: {body}");
        let counted = own_count(&result["structuredContent"], &b.push_ids, &what);
        assert_eq!(counted, expected, "{what}: {body}");
    }
}

/// How many pushes a list, digest, activity or single-push answer counts, each id it names
/// checked to be one of `own`: the HTTP answers and the MCP tools' have the same shapes.
fn own_count(answer: &Value, own: &[String], what: &str) -> u64 {
    if let Some(total) = answer["pagination"]["total"].as_u64() {
        for push in answer["pushes"].as_array().unwrap() {
            let id = push["id"].as_str().unwrap();
            assert!(own.iter().any(|p| p == id), "{what}: {id}");
        }
        total
    } else if let Some(count) = answer["pushCount"].as_u64() {
        for id in answer["pushIds"].as_array().unwrap() {
            assert!(own.iter().any(|p| p == id), "{what}: {id}");
        }
        count
    } else if let Some(buckets) = answer["buckets"].as_array() {
        buckets.iter().map(|b| b["pushes"].as_u64().unwrap()).sum()
    } else {
        let id = answer["id"].as_str().unwrap();
        assert!(own.iter().any(|p| p == id), "{what}: {id}");
        1
    }
}

fn check_case(specs: Vec<ProjectSpec>, queries: Vec<ListQuery>) {
    let app = TestApp::spawn();
    let built = build(&app, &specs);
    let n = built.len();
    let all_ids: Vec<(usize, &String)> = built
        .iter()
        .enumerate()
        .flat_map(|(i, b)| b.push_ids.iter().map(move |id| (i, id)))
        .collect();

    for (i, b) in built.iter().enumerate() {
        // The project's first key, from TestApp, is live; the generated ones may be revoked.
        let keys = std::iter::once((b.project.key.clone(), false)).chain(b.keys.iter().cloned());
        for (key, revoked) in keys {
            let unfiltered = app.get("/api/v1/pushes?limit=100", Some(&key));
            if revoked {
                assert_eq!(
                    unfiltered.status, 401,
                    "revoked key listed: {}",
                    unfiltered.body
                );
                assert_eq!(unfiltered.body["error"]["code"], "unauthorized");
            } else {
                assert_eq!(unfiltered.status, 200, "{}", unfiltered.body);
                assert_eq!(unfiltered.body["project"], b.project.name.as_str());
                assert_eq!(
                    unfiltered.body["pagination"]["total"],
                    b.push_ids.len(),
                    "the key of project {i} counts another project's pushes"
                );
                assert_no_foreign_marker(&unfiltered.body.to_string(), i, n, "list");
            }

            for q in &queries {
                let path = query_string(q, n);
                let reply = app.get(&path, Some(&key));
                let Some(body) = live_answer(reply, revoked, i, n, &path) else {
                    continue;
                };
                for push in body["pushes"].as_array().unwrap() {
                    let id = push["id"].as_str().unwrap();
                    assert!(
                        b.push_ids.iter().any(|own| own == id),
                        "{path}: project {i} listed push {id}, which is not its own"
                    );
                }
            }

            for (owner, id) in &all_ids {
                let reply = app.get(&format!("/api/v1/pushes/{id}"), Some(&key));
                let expected = match (revoked, *owner == i) {
                    (true, _) => 401,
                    (false, true) => 200,
                    (false, false) => 404,
                };
                assert_eq!(
                    reply.status, expected,
                    "key of project {i} (revoked: {revoked}) reading push {id} of project {owner}: {}",
                    reply.body
                );
                assert_no_foreign_marker(&reply.body.to_string(), i, n, "get by id");
                if expected != 200 {
                    assert!(reply.body["error"]["code"].is_string(), "{}", reply.body);
                }
            }

            // Asking the history: search, filters, digest and activity see the key's project
            // only; every project's marker is searched, and only the own one finds anything.
            let own = b.push_ids.len() as u64;
            let mut paths: Vec<(String, Option<u64>)> = (0..n)
                .map(|o| {
                    let found = if o == i { own } else { 0 };
                    (
                        format!("/api/v1/pushes?limit=100&q={}", marker(o)),
                        Some(found),
                    )
                })
                .collect();
            paths.push(("/api/v1/pushes?q=zq*&limit=100".into(), Some(own)));
            paths.push((
                "/api/v1/pushes?author=ADA&repository=acme/app&refType=branch&limit=100".into(),
                Some(own),
            ));
            let range = "since=2023-11-01&until=2023-12-01";
            paths.push((format!("/api/v1/digest?{range}"), Some(own)));
            paths.push((format!("/api/v1/digest?{range}&q=commit"), Some(own)));
            for by in ["day", "week", "author", "branch", "repository"] {
                paths.push((format!("/api/v1/activity?{range}&groupBy={by}"), Some(own)));
            }
            check_mcp(&app, b, i, &key, revoked, &all_ids, n);
            for (path, expected) in paths {
                let reply = app.get(&path, Some(&key));
                let Some(body) = live_answer(reply, revoked, i, n, &path) else {
                    continue;
                };
                let counted = own_count(&body, &b.push_ids, &path);
                assert_eq!(Some(counted), expected, "{path}: {body}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_key_only_ever_sees_its_own_project_and_a_revoked_key_sees_nothing(
        specs in prop::collection::vec(project_spec(), 2..=4),
        queries in prop::collection::vec(list_query(), 3),
    ) {
        check_case(specs, queries);
    }
}
