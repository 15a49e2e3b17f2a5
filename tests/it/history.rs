//! Asking the history over real HTTP: full-text search (stemming, prefixes, hostile input),
//! author/repository/refType/until filters with cursor paging, digest and activity counts
//! against counts made here, and a search index that stays true through updates, re-summaries,
//! retention and project deletion.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use git_push_tracker::db::{Db, PreparedPush, Store};
use git_push_tracker::domain::{NewCommit, NewPush, ProjectName, RefKind, SummaryStatus};

use crate::support::app::{
    ADMIN_TOKEN, TestApp, TestProject, agent, assert_digest_groups, github_payload, groups,
    push_ids, reply, without_search_turns,
};
use crate::support::digest_model::DigestModel;
use crate::support::pages::cursor_walk;

const DAY_MS: i64 = 86_400_000;
/// 2024-03-01T00:00:00Z.
const BASE_MS: i64 = 1_709_251_200_000;

fn search(app: &TestApp, key: &str, q: &str) -> Vec<String> {
    let query = serde_urlencoded::to_string([("q", q), ("limit", "100")]).unwrap();
    push_ids(&app.get_json(&format!("/api/v1/pushes?{query}"), key))
}

fn deliver(app: &TestApp, project: &TestProject, branch: &str, messages: &[&str]) -> String {
    let body = github_payload(branch, messages, 1_709_251_200);
    let reply = app.github_push(project, &uuid::Uuid::new_v4().to_string(), &body);
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["pushes"][0].as_str().unwrap().to_owned()
}

/// `INSERT INTO push_fts(push_fts) VALUES('integrity-check')` on the file, and the index's
/// document count against the pushes, once every push is indexed.
fn assert_index_true(app: &TestApp) {
    // The server writes a push's search entry just after its answer; this reads the file
    // from outside, so it waits for that.
    app.wait_for(
        "the derived rows of every push",
        Duration::from_secs(10),
        || (app.sql_count("SELECT count(*) FROM push_index_queue") == 0).then_some(()),
    );
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    conn.execute_batch("INSERT INTO push_fts (push_fts) VALUES ('integrity-check')")
        .expect("the search index matches the pushes");
    let docs: i64 = conn
        .query_row("SELECT count(*) FROM push_fts_docsize", [], |r| r.get(0))
        .unwrap();
    let pushes: i64 = conn
        .query_row("SELECT count(*) FROM pushes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(docs, pushes, "one index document per push");
}

#[test]
fn search_finds_stems_prefixes_messages_branches_and_authors_of_the_keys_project_only() {
    let app = TestApp::spawn();
    let acme = app.create_project("acme");
    let other = app.create_project("other");
    let [auth, cache, foreign] = [
        (
            &acme,
            "feature/login",
            "feat(auth): add authentication for API tokens",
        ),
        (&acme, "main", "fix: cache invalidation on deploy"),
        (&other, "main", "feat: authentication everywhere"),
    ]
    .map(|(project, branch, message)| deliver(&app, project, branch, &[message]));

    assert_eq!(search(&app, &acme.key, "authenticate"), vec![auth.clone()]);
    assert_eq!(search(&app, &acme.key, "auth*"), vec![auth.clone()]);
    assert_eq!(
        search(&app, &acme.key, "AUTHENTICATION tokens"),
        vec![auth.clone()]
    );
    assert_eq!(search(&app, &acme.key, "invalidate"), vec![cache.clone()]);
    // The branch name and the pusher and commit author ("ada") are searched too.
    assert_eq!(search(&app, &acme.key, "login"), vec![auth.clone()]);
    let mut both = search(&app, &acme.key, "ada");
    both.sort();
    let mut expected = vec![auth.clone(), cache.clone()];
    expected.sort();
    assert_eq!(both, expected);
    assert!(search(&app, &acme.key, "nothingmatchesthis").is_empty());
    // The other project's key finds its own push only.
    assert_eq!(search(&app, &other.key, "authentication"), vec![foreign]);

    // Relevance puts the push that matches best first, and pages by offset.
    let page = app.get_json("/api/v1/pushes?q=auth*%20cache*&sort=relevance", &acme.key);
    assert_eq!(page["pagination"]["total"], 0, "every word must match");
    let page = app.get_json("/api/v1/pushes?q=ada&sort=relevance&limit=1", &acme.key);
    assert_eq!(page["pagination"]["total"], 2);
    assert!(page["pagination"]["nextCursor"].is_null());
    let reply = app.get(
        "/api/v1/pushes?q=ada&sort=relevance&cursor=AAAA",
        Some(&acme.key),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "invalid_parameter");
    assert_index_true(&app);
}

#[test]
fn a_search_with_no_turn_free_is_answered_503_server_busy_while_plain_pages_and_webhooks_go_on() {
    let app = TestApp::spawn_with(without_search_turns);
    let acme = app.create_project("acme");
    let stored = deliver(&app, &acme, "main", &["feat: a webhook still lands"]);

    for search in [
        "q=webhook",
        "author=ada",
        "repository=acme/app",
        "refType=tag",
    ] {
        let refused = app.get(&format!("/api/v1/pushes?{search}"), Some(&acme.key));
        assert_eq!(refused.status, 503, "{search}: {}", refused.body);
        assert_eq!(refused.body["error"]["code"], "server_busy", "{search}");
        assert_eq!(refused.header("retry-after"), Some("5"), "{search}");
    }
    let page = app.get("/api/v1/pushes?branch=main", Some(&acme.key));
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(push_ids(&page.body), vec![stored]);
}

#[test]
fn every_fts5_operator_character_is_searched_as_text_and_never_fails() {
    let app = TestApp::spawn();
    let acme = app.create_project("acme");
    let fix = deliver(
        &app,
        &acme,
        "main",
        &["fix: the NEAR( parser and a-b \"quoted\" words"],
    );
    let hostile = [
        "\"",
        "\"\"",
        "'",
        "-",
        "--",
        "-fix",
        "fix -",
        ":",
        "summary:fix",
        "fix:",
        "*",
        "**",
        "fix*",
        "*fix",
        "^",
        "^fix",
        "(",
        ")",
        "(fix)",
        "NEAR(",
        "NEAR(fix parser)",
        "NEAR",
        "AND",
        "OR",
        "NOT",
        "fix AND",
        "fix OR parser",
        "NOT fix",
        "+",
        "{",
        "}",
        "{summary}:fix",
        "[",
        "]",
        ",",
        ".",
        "\\",
        "\\\"",
        "%",
        "_",
        ";",
        "fix; DROP TABLE pushes",
        "a-b",
        "\"quoted\"",
        "é",
        "💥",
        "fix\u{0}parser",
        "col : fix",
        "fix^2",
        "@",
        "#",
    ];
    for q in hostile {
        let query = serde_urlencoded::to_string([("q", q)]).unwrap();
        let reply = app.get(&format!("/api/v1/pushes?{query}"), Some(&acme.key));
        assert_eq!(reply.status, 200, "q={q:?}: {}", reply.body);
        let reply = app.get(
            &format!("/api/v1/pushes?{query}&sort=relevance"),
            Some(&acme.key),
        );
        assert_eq!(reply.status, 200, "q={q:?} by relevance: {}", reply.body);
        let reply = app.get(
            &format!("/api/v1/digest?since=2024-01-01&until=2024-12-01&{query}"),
            Some(&acme.key),
        );
        assert_eq!(reply.status, 200, "digest q={q:?}: {}", reply.body);
    }
    // Operators are words, and punctuation is not a word: these find the push as text.
    for q in [
        "NEAR(",
        "fix:",
        "a-b",
        "\"quoted\"",
        "fix AND parser",
        "fix -",
        "NOT fix",
    ] {
        let expected = if q == "NOT fix" {
            vec![]
        } else {
            vec![fix.clone()]
        };
        // "NOT fix" is two words, and "not" is not in the push.
        assert_eq!(search(&app, &acme.key, q), expected, "q={q:?}");
    }
    // Blanks are no search, as an empty `since=` is no bound; many or long words are searched
    // like any others; only a `q` over the schema's length cap is the caller's mistake.
    let everything = app.get("/api/v1/pushes", Some(&acme.key));
    assert_eq!(everything.status, 200);
    for q in ["", "   ", "\u{0}", "\t\u{1}"] {
        let query = serde_urlencoded::to_string([("q", q)]).unwrap();
        let reply = app.get(&format!("/api/v1/pushes?{query}"), Some(&acme.key));
        assert_eq!(reply.status, 200, "q={q:?}: {}", reply.body);
        assert_eq!(reply.body["pushes"], everything.body["pushes"], "q={q:?}");
    }
    for q in ["w ".repeat(17), "x".repeat(65)] {
        assert_eq!(search(&app, &acme.key, &q), Vec::<String>::new(), "q={q:?}");
    }
    let query = serde_urlencoded::to_string([("q", "x".repeat(1101))]).unwrap();
    let reply = app.get(&format!("/api/v1/pushes?{query}"), Some(&acme.key));
    assert_eq!(reply.status, 400, "{}", reply.body);
}

/// A push the test stored, with what it knows about it.
#[derive(Debug, Clone)]
struct Seeded {
    id: String,
    pusher: &'static str,
    author: &'static str,
    repository: &'static str,
    branch: &'static str,
    kind: RefKind,
    pushed_at: i64,
    commits: u32,
    word: &'static str,
}

const PUSHERS: [&str; 3] = ["ada", "Grace", "linus"];
const AUTHORS: [&str; 4] = ["Ada Lovelace", "grace", "Ken Thompson", "ada"];
const REPOS: [&str; 3] = ["acme/app", "acme/api", "acme/docs"];
const BRANCHES: [&str; 3] = ["main", "dev", "v1.0"];
const WORDS: [&str; 3] = ["authentication", "caching", "deployment"];

/// `count` pushes over 30 days (several per 6-hour slot, so some share a time), stored in
/// insertion order.
fn seed(app: &TestApp, project: &str, count: usize) -> Vec<Seeded> {
    seed_from(app, project, 0, count)
}

/// [`seed`]'s pushes `start..start + count`.
fn seed_from(app: &TestApp, project: &str, start: usize, count: usize) -> Vec<Seeded> {
    let db = Db::open(&app.db_path).unwrap();
    let name = ProjectName::parse(project).unwrap();
    let mut seeded = Vec::new();
    let mut prepared = Vec::new();
    for i in start..start + count {
        let slot = (i as i64 * 77_777_777) % (30 * DAY_MS);
        let pushed_at = BASE_MS + slot - slot % (6 * 3_600_000);
        let s = Seeded {
            id: uuid::Uuid::new_v4().to_string(),
            pusher: PUSHERS[i % 3],
            author: AUTHORS[i % 4],
            repository: REPOS[(i / 2) % 3],
            branch: BRANCHES[(i / 3) % 3],
            kind: if (i / 3) % 3 == 2 {
                RefKind::Tag
            } else {
                RefKind::Branch
            },
            pushed_at,
            commits: (i % 4) as u32,
            word: WORDS[(i / 5) % 3],
        };
        let at = DateTime::from_timestamp_millis(pushed_at).unwrap();
        let commits: Vec<NewCommit> = (0..s.commits)
            .map(|c| NewCommit {
                sha: format!("{:040x}", c + 1),
                message: format!("feat: {} step {c}", s.word),
                author: s.author.into(),
                timestamp: Some(at),
                url: None,
                added: vec![],
                removed: vec![],
                modified: vec![],
            })
            .collect();
        let push = NewPush {
            delivery_id: Some(format!("seed-{project}-{i}")),
            git_ref: match s.kind {
                RefKind::Tag => format!("refs/tags/{}", s.branch),
                RefKind::Branch => format!("refs/heads/{}", s.branch),
            },
            ref_kind: s.kind,
            commit_count: s.commits,
            pushed_at: Some(at),
            commits,
            ..NewPush::to_branch(s.repository, s.branch, s.pusher)
        };
        prepared.push(PreparedPush::new(
            s.id.clone(),
            push,
            format!("- Work on {}", s.word),
            SummaryStatus::Summarized,
            Utc::now(),
        ));
        seeded.push(s);
    }
    let stored =
        crate::support::app::wait_for("the seed import", Duration::from_secs(30), &mut || {
            db.import_pushes(&name, &prepared).ok()
        });
    assert_eq!(stored, count);
    seeded
}

/// One combination of filters, as the test applies it and as a query string.
#[derive(Debug, Clone, Default)]
struct Filters {
    q: Option<&'static str>,
    authors: Vec<&'static str>,
    repositories: Vec<&'static str>,
    kind: Option<RefKind>,
    branch: Option<&'static str>,
    since: Option<i64>,
    until: Option<i64>,
}

fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Filters {
    fn query(&self) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(q) = self.q {
            params.push(("q", q.to_owned()));
        }
        for a in &self.authors {
            params.push(("author", (*a).to_owned()));
        }
        for r in &self.repositories {
            params.push(("repository", (*r).to_owned()));
        }
        if let Some(kind) = self.kind {
            params.push(("refType", kind.as_str().to_owned()));
        }
        if let Some(b) = self.branch {
            params.push(("branch", b.to_owned()));
        }
        if let Some(t) = self.since {
            params.push(("since", iso(t)));
        }
        if let Some(t) = self.until {
            params.push(("until", iso(t)));
        }
        serde_urlencoded::to_string(&params).unwrap()
    }

    fn matches(&self, s: &Seeded) -> bool {
        let word_match = |q: &str| {
            q.split_whitespace().all(|w| {
                let w = w.trim_end_matches('*').to_lowercase();
                s.word.starts_with(&w[..w.len().min(5)])
            })
        };
        self.q.is_none_or(word_match)
            && (self.authors.is_empty()
                || self.authors.iter().any(|a| {
                    a.eq_ignore_ascii_case(s.pusher)
                        || (s.commits > 0 && a.eq_ignore_ascii_case(s.author))
                }))
            && (self.repositories.is_empty() || self.repositories.contains(&s.repository))
            && self.kind.is_none_or(|k| k == s.kind)
            && self.branch.is_none_or(|b| b == s.branch)
            && self.since.is_none_or(|t| s.pushed_at >= t)
            && self.until.is_none_or(|t| s.pushed_at < t)
    }

    fn expected<'a>(&self, seeded: &'a [Seeded]) -> Vec<&'a Seeded> {
        let mut matching: Vec<(usize, &Seeded)> = seeded
            .iter()
            .enumerate()
            .filter(|(_, s)| self.matches(s))
            .collect();
        matching.sort_by_key(|(i, s)| std::cmp::Reverse((s.pushed_at, *i)));
        matching.into_iter().map(|(_, s)| s).collect()
    }
}

fn filter_cases() -> Vec<Filters> {
    let day = |d: i64| BASE_MS + d * DAY_MS;
    vec![
        Filters::default(),
        Filters {
            q: Some("authenticate"),
            ..Filters::default()
        },
        Filters {
            q: Some("cach*"),
            authors: vec!["ADA"],
            ..Filters::default()
        },
        Filters {
            authors: vec!["grace", "Ken Thompson"],
            ..Filters::default()
        },
        Filters {
            repositories: vec!["acme/api"],
            ..Filters::default()
        },
        Filters {
            repositories: vec!["acme/api", "acme/docs"],
            kind: Some(RefKind::Branch),
            ..Filters::default()
        },
        Filters {
            kind: Some(RefKind::Tag),
            until: Some(day(20)),
            ..Filters::default()
        },
        Filters {
            q: Some("deploy*"),
            authors: vec!["linus", "ada lovelace"],
            repositories: vec!["acme/app", "acme/api"],
            since: Some(day(3) + 3_600_000),
            until: Some(day(25)),
            ..Filters::default()
        },
        Filters {
            branch: Some("dev"),
            authors: vec!["Grace"],
            ..Filters::default()
        },
    ]
}

#[test]
fn filters_combine_with_each_other_and_with_cursor_paging() {
    let app = TestApp::spawn();
    let acme = app.create_project("acme");
    let other = app.create_project("other");
    let seeded = seed(&app, "acme", 150);
    seed(&app, "other", 30);
    for case in filter_cases() {
        let expected: Vec<String> = case
            .expected(&seeded)
            .iter()
            .map(|s| s.id.clone())
            .collect();
        let query = case.query();
        // By cursor, 7 at a time, checking offsets and totals on the way.
        let walked = cursor_walk(&app, &acme.key, &format!("/api/v1/pushes?{query}"), 7);
        assert_eq!(walked, expected, "{query}");
        // The same pages by offset.
        let page = app.get_json(
            &format!("/api/v1/pushes?{query}&limit=5&offset=4"),
            &acme.key,
        );
        let by_offset: Vec<String> = expected.iter().skip(4).take(5).cloned().collect();
        assert_eq!(push_ids(&page), by_offset, "{query} offset 4");
        // A cursor made for these filters is refused with others, and another project's key
        // finds none of these pushes.
        if let Some(first) = app.get_json(&format!("/api/v1/pushes?{query}&limit=1"), &acme.key)
            ["pagination"]["nextCursor"]
            .as_str()
        {
            let reply = app.get(
                &format!("/api/v1/pushes?{query}&author=nobody&cursor={first}"),
                Some(&acme.key),
            );
            assert_eq!(reply.status, 400, "{}", reply.body);
            let reply = app.get(&format!("/api/v1/pushes?{query}&cursor={first}"), Some(&other.key));
            assert_eq!(reply.status, 400, "{}", reply.body);
        }
        let theirs = app.get_json(&format!("/api/v1/pushes?{query}&limit=100"), &other.key);
        for id in push_ids(&theirs) {
            assert!(
                !expected.contains(&id),
                "{query}: another project's key saw {id}"
            );
        }
    }
    // Values outside the schema's patterns are refused by the schema check, rules beyond it by
    // the query's own; a blank author or repository is no filter, as an empty `since=` is none.
    for (bad, code) in [
        ("refType=branches", "bad_request"),
        ("sort=best", "bad_request"),
        ("sort=relevance", "invalid_parameter"),
    ] {
        let reply = app.get(&format!("/api/v1/pushes?{bad}"), Some(&acme.key));
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{bad}");
    }
    let everything = app.get("/api/v1/pushes", Some(&acme.key)).body;
    for blank in ["author=", "repository=%20"] {
        let reply = app.get(&format!("/api/v1/pushes?{blank}"), Some(&acme.key));
        assert_eq!(reply.status, 200, "{blank}: {}", reply.body);
        assert_eq!(reply.body["pushes"], everything["pushes"], "{blank}");
    }
}

/// `(pushes, commits)` per `key` of the matching pushes, as the test counts them.
fn tally(
    matching: &[&Seeded],
    key: impl Fn(&Seeded) -> String,
) -> std::collections::BTreeMap<String, (u64, u64)> {
    crate::support::app::tally(matching.iter().map(|s| (key(s), u64::from(s.commits))))
}

#[test]
fn digest_and_activity_counts_are_the_ones_the_test_counts_itself() {
    let app = TestApp::spawn();
    let acme = app.create_project("acme");
    app.create_project("other");
    let seeded = seed(&app, "acme", 150);
    seed(&app, "other", 40);
    let mut cases = filter_cases();
    for case in &mut cases {
        case.since.get_or_insert(BASE_MS - DAY_MS);
        case.until.get_or_insert(BASE_MS + 40 * DAY_MS);
    }
    for case in &cases {
        let matching = case.expected(&seeded);
        let query = case.query();
        let digest = app.get_json(&format!("/api/v1/digest?{query}"), &acme.key);
        assert_eq!(digest["project"], "acme");
        assert_eq!(digest["pushCount"], matching.len(), "{query}");
        let commits: u64 = matching.iter().map(|s| u64::from(s.commits)).sum();
        assert_eq!(digest["commitCount"], commits, "{query}");
        let covered = matching.iter().map(|s| {
            let keys = [s.pusher, s.branch, s.repository];
            (keys, u64::from(s.commits))
        });
        assert_digest_groups(&digest, covered, &query);
        let ids: Vec<&str> = matching.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(digest["pushIds"], serde_json::json!(ids), "{query}");
        assert_eq!(digest["summarySource"], "builtin");
        let summary = digest["summary"].as_str().unwrap();
        assert!(summary.starts_with("- "), "{summary}");
        if !matching.is_empty() {
            assert!(
                summary.contains(&format!("{} push", matching.len())),
                "{query}: {summary}"
            );
        }

        for (by, key) in [
            (
                "author",
                (|s: &Seeded| s.pusher.to_owned()) as fn(&Seeded) -> String,
            ),
            ("branch", |s| s.branch.to_owned()),
            ("repository", |s| s.repository.to_owned()),
            ("day", |s| iso(s.pushed_at)[..10].to_owned()),
        ] {
            let activity =
                app.get_json(&format!("/api/v1/activity?{query}&groupBy={by}"), &acme.key);
            assert_eq!(activity["groupBy"], by);
            let mut got = groups(&activity["buckets"], "key");
            if by == "day" {
                // Every day of the range is there, the empty ones with zeros.
                let days = (case.until.unwrap() - 1).div_euclid(DAY_MS)
                    - case.since.unwrap().div_euclid(DAY_MS)
                    + 1;
                assert_eq!(got.len() as i64, days, "{query}");
                got.retain(|_, v| v.0 > 0);
            }
            assert_eq!(got, tally(&matching, key), "{query} by {by}");
        }
        let weeks = app.get_json(&format!("/api/v1/activity?{query}&groupBy=week"), &acme.key);
        let total: u64 = weeks["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let monday =
                    chrono::NaiveDate::parse_from_str(b["key"].as_str().unwrap(), "%Y-%m-%d")
                        .unwrap();
                assert_eq!(monday.format("%a").to_string(), "Mon");
                b["pushes"].as_u64().unwrap()
            })
            .sum();
        assert_eq!(total, matching.len() as u64, "{query} by week");
    }

    // Markdown: the same digest, and the list as headings per day with a list per push.
    let agent = agent();
    let md = |path: &str| {
        reply(
            agent
                .get(format!("{}{path}", app.base_url))
                .header("Authorization", format!("Bearer {}", acme.key))
                .header("Accept", "text/markdown")
                .call()
                .unwrap(),
        )
    };
    let page = md("/api/v1/pushes?limit=3");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/markdown")
    );
    let text = page.body.as_str().unwrap();
    assert!(text.starts_with("# Pushes of acme"), "{text}");
    assert!(text.contains("\n## 2024-03-"), "{text}");
    assert!(text.contains("\n- Work on "), "{text}");
    assert!(text.contains("150 pushes match"), "{text}");
    let digest = md("/api/v1/digest?since=2024-01-01&until=2024-06-01");
    let text = digest.body.as_str().unwrap();
    assert!(text.starts_with("# Digest of acme"), "{text}");
    assert!(text.contains("150 pushes"), "{text}");
    assert!(text.contains("## Authors"), "{text}");

    // Ranges: `since` is required, 366 days at most; what the OpenAPI document already rules
    // out (no `since`, an unknown `groupBy`, a non-date) is poem-openapi's `bad_request`.
    for (path, code) in [
        ("/api/v1/digest", "bad_request"),
        ("/api/v1/activity?groupBy=day", "bad_request"),
        (
            "/api/v1/digest?since=2024-01-01&until=2025-01-02T00:00:01Z",
            "range_too_long",
        ),
        (
            "/api/v1/activity?since=2023-01-01&until=2024-01-03",
            "range_too_long",
        ),
        (
            "/api/v1/activity?since=2024-01-01&groupBy=month",
            "bad_request",
        ),
        (
            "/api/v1/digest?since=2024-02-01&until=2024-01-01",
            "invalid_parameter",
        ),
        ("/api/v1/digest?since=yesterday", "bad_request"),
    ] {
        let reply = app.get(path, Some(&acme.key));
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{path}");
    }
    let reply = app.get(
        "/api/v1/digest?since=2024-01-01&until=2025-01-01",
        Some(&acme.key),
    );
    assert_eq!(reply.status, 200, "366 days is allowed: {}", reply.body);
    for path in [
        "/api/v1/digest?since=2024-01-01&until=2024-02-01",
        "/api/v1/activity?since=2024-01-01&until=2024-02-01",
    ] {
        let r = app.get(path, None);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        assert_eq!(app.get(path, Some("gpt_nope")).status, 401, "{path}");
    }
}

#[test]
fn the_search_index_stays_true_through_resummaries_retention_and_project_deletion() {
    let app = TestApp::spawn();
    let acme = app.create_project("acme");
    let gone = app.create_project("gone");
    let first = deliver(&app, &acme, "main", &["feat: zeppelin docking"]);
    let second = deliver(&app, &acme, "main", &["fix: walrus feeding"]);
    deliver(&app, &gone, "main", &["feat: zeppelin hangar"]);
    let no_commits = deliver(&app, &acme, "quokka", &[]);
    assert_index_true(&app);
    assert_eq!(search(&app, &acme.key, "quokka"), vec![no_commits.clone()]);

    // A re-summary replaces the summary's words in the index.
    let db = Db::open(&app.db_path).unwrap();
    let store: &dyn Store = &db;
    let now = Utc::now();
    let scope = store
        .owner_scope(&ProjectName::parse("acme").unwrap())
        .unwrap();
    store.requeue(&first, Some(&scope), now).unwrap();
    let claimed = store.claim_next(now).unwrap().expect("the requeued push");
    store
        .complete(
            &claimed,
            "- Narwhal-grade docking for airships",
            "test-model",
            now,
        )
        .unwrap();
    assert_index_true(&app);
    assert_eq!(search(&app, &acme.key, "narwhal"), vec![first.clone()]);
    assert_eq!(search(&app, &acme.key, "airship"), vec![first.clone()]);
    // Words of the commit message stay; words only the old summary had are gone.
    assert_eq!(search(&app, &acme.key, "zeppelin"), vec![first.clone()]);
    let reply = app.post(
        &format!("{}/api/admin/pushes/{second}/resummarize", app.base_url),
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        b"",
    );
    assert!(reply.status < 300, "{}: {}", reply.status, reply.body);
    app.wait_for("the re-summary", Duration::from_secs(10), || {
        (app.sql_count("SELECT count(*) FROM pushes WHERE summary_status = 'pending'") == 0)
            .then_some(())
    });
    assert_index_true(&app);
    assert_eq!(search(&app, &acme.key, "walrus"), vec![second.clone()]);

    // Project deletion takes the project's documents with it.
    app.manager().delete_project("gone").unwrap();
    assert_index_true(&app);
    assert_eq!(
        app.sql_count("SELECT count(*) FROM push_fts WHERE push_fts MATCH 'hangar'"),
        0
    );

    // Retention: deleting pushes removes their documents.
    let deleted = store
        .delete_received_before(Utc::now() + chrono::Duration::days(1), 2)
        .unwrap();
    assert_eq!(deleted, 2);
    assert_index_true(&app);
    let left = push_ids(&app.get_json("/api/v1/pushes", &acme.key));
    assert_eq!(left.len(), 1);
    for (word, id) in [
        ("narwhal", &first),
        ("walrus", &second),
        ("quokka", &no_commits),
    ] {
        let expected = if left.contains(id) {
            vec![id.clone()]
        } else {
            vec![]
        };
        assert_eq!(search(&app, &acme.key, word), expected, "{word}");
    }
    assert_eq!(
        app.sql_count(
            "SELECT count(*) FROM push_text WHERE push_id NOT IN (SELECT id FROM pushes)"
        ),
        0
    );
    assert_eq!(
        app.sql_count(
            "SELECT count(*) FROM push_authors WHERE push_id NOT IN (SELECT id FROM pushes)"
        ),
        0
    );
}

#[test]
fn a_model_digest_is_cached_until_a_push_in_its_range_changes() {
    // Each digest numbered, so a cached one shows as the same number.
    let model = Arc::new(DigestModel::new("digest-model", |n, input| {
        format!("- Digest number {n} of {} pushes", input.commits.len())
    }));
    let app = TestApp::spawn_summarized_by(model.clone());
    let acme = app.create_project("acme");
    seed(&app, "acme", 12);
    let path = "/api/v1/digest?since=2024-03-01&until=2024-04-01";
    let first = app.get_json(path, &acme.key);
    assert_eq!(first["summarySource"], "digest-model");
    assert_eq!(first["summary"], "- Digest number 1 of 12 pushes");
    assert_eq!(first["pushCount"], 12, "counts are the database's");
    let again = app.get_json(path, &acme.key);
    assert_eq!(again["summary"], first["summary"], "cached");
    assert_eq!(model.digests(), 1);
    // Another range is another digest; a new push in the range makes a new one.
    let other = app.get_json(
        "/api/v1/digest?since=2024-03-01&until=2024-03-15",
        &acme.key,
    );
    assert_eq!(model.digests(), 2);
    assert_ne!(other["summary"], first["summary"]);
    seed_from(&app, "acme", 12, 1);
    let after = app.get_json(path, &acme.key);
    assert_eq!(after["pushCount"], 13);
    assert_eq!(after["summary"], "- Digest number 3 of 13 pushes");
}
