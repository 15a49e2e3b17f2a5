//! Reading a long history over real HTTP: exact totals for `since`/`until`/`branch` from the day
//! counters, deep offsets, and cursors that walk the same pushes as offsets and stay put while
//! new pushes arrive.

use chrono::{DateTime, Utc};
use git_push_tracker::db::{Db, PreparedPush};
use git_push_tracker::domain::{NewPush, ProjectName, SummaryStatus};
use serde_json::Value;

use crate::support::app::{
    ADMIN_TOKEN, TestApp, TestProject, github_payload, groups, push_ids, tally,
};
use crate::support::pages::{assert_list_refuses, cursor_walk};

const DAY_MS: i64 = 86_400_000;
/// 2024-03-01T00:00:00Z.
const BASE_MS: i64 = 1_709_251_200_000;
const BRANCHES: [&str; 3] = ["main", "dev", "feature/x"];

/// A push the test stored, with what it knows about it.
#[derive(Debug, Clone)]
struct Seeded {
    id: String,
    branch: &'static str,
    pushed_at: i64,
    received_at: i64,
    commits: u64,
}

/// `count` pushes over ten days, several to a 10-minute slot (so many share a `pushedAt`), the
/// even ones received 40 days before the odd ones; stored in insertion order, so a later push
/// has a higher row id.
fn seed(app: &TestApp, project: &str, count: usize) -> Vec<Seeded> {
    seed_over(app, project, count, 10)
}

/// [`seed`] over `days` days instead of ten.
fn seed_over(app: &TestApp, project: &str, count: usize, days: i64) -> Vec<Seeded> {
    let db = Db::open(&app.db_path).unwrap();
    let name = ProjectName::parse(project).unwrap();
    let now = Utc::now().timestamp_millis();
    let mut seeded = Vec::new();
    let mut prepared = Vec::new();
    for i in 0..count {
        let slot = (i as i64 * 7_777_777) % (days * DAY_MS);
        let pushed_at = BASE_MS + slot - slot % 600_000;
        let branch = BRANCHES[i % 3];
        let received_at = if i % 2 == 0 { now - 40 * DAY_MS } else { now };
        let id = uuid::Uuid::new_v4().to_string();
        let at = DateTime::from_timestamp_millis(pushed_at).unwrap();
        let push = NewPush {
            delivery_id: Some(format!("seed-{project}-{i}")),
            commit_count: (i % 5) as u32,
            pushed_at: Some(at),
            ..NewPush::to_branch("acme/app", branch, "ada")
        };
        prepared.push(PreparedPush::new(
            id.clone(),
            push,
            format!("- Change {i}"),
            SummaryStatus::Summarized,
            DateTime::from_timestamp_millis(received_at).unwrap(),
        ));
        seeded.push(Seeded {
            id,
            branch,
            pushed_at,
            received_at,
            commits: (i % 5) as u64,
        });
    }
    // The server's own start-up writes may hold the lock a moment: the import is one
    // transaction, so trying again is safe.
    let stored = crate::support::app::wait_for(
        "the seed import",
        std::time::Duration::from_secs(30),
        &mut || db.import_pushes(&name, &prepared).ok(),
    );
    assert_eq!(stored, count);
    seeded
}

/// The seeded pushes a filter matches, newest first (later insertion first among equal times).
fn expected<'a>(
    seeded: &'a [Seeded],
    branch: Option<&str>,
    since: Option<i64>,
    until: Option<i64>,
) -> Vec<&'a str> {
    let mut matching: Vec<(usize, &Seeded)> = seeded
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            branch.is_none_or(|b| s.branch == b)
                && since.is_none_or(|t| s.pushed_at >= t)
                && until.is_none_or(|t| s.pushed_at < t)
        })
        .collect();
    matching.sort_by_key(|(i, s)| std::cmp::Reverse((s.pushed_at, *i)));
    matching.into_iter().map(|(_, s)| s.id.as_str()).collect()
}

/// The time a `since`/`until` value names, in Unix milliseconds, parsed here on its own.
fn millis(raw: &str) -> i64 {
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => t.timestamp_millis(),
        Err(_) => chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis(),
    }
}

fn list(app: &TestApp, key: &str, query: &str) -> Value {
    app.get_json(&format!("/api/v1/pushes?{query}"), key)
}

/// The pushes of the list at `query` page by page along its cursors (see [`cursor_walk`]).
fn list_by_cursor(app: &TestApp, key: &str, query: &str, limit: usize) -> Vec<String> {
    cursor_walk(app, key, &format!("/api/v1/pushes?{query}"), limit)
}

/// Asserts that the page of `query` at `offset`, `limit` long, holds `want`'s pushes there;
/// answers the page.
fn assert_page_at(
    app: &TestApp,
    key: &str,
    query: &str,
    want: &[&str],
    (offset, limit): (usize, usize),
) -> Value {
    let page = list(app, key, &format!("{query}&limit={limit}&offset={offset}"));
    let slice: Vec<&str> = want.iter().skip(offset).take(limit).copied().collect();
    assert_eq!(push_ids(&page), slice, "{query} at offset {offset}");
    page
}

fn offset_walk(app: &TestApp, key: &str, query: &str, limit: usize) -> Vec<String> {
    let mut walked = Vec::new();
    loop {
        let page = list(
            app,
            key,
            &format!("{query}&limit={limit}&offset={}", walked.len()),
        );
        let got = push_ids(&page);
        if got.is_empty() {
            return walked;
        }
        walked.extend(got);
    }
}

/// Windows with whole days, partial days at either edge, both edges in one day, open ends.
const WINDOWS: [(Option<&str>, Option<&str>); 10] = [
    (None, None),
    (Some("2024-03-03"), None),
    (None, Some("2024-03-07T13:20:00Z")),
    (
        Some("2024-03-03T07:30:00Z"),
        Some("2024-03-08T12:00:00+02:00"),
    ),
    (Some("2024-03-02"), Some("2024-03-09")),
    (Some("2024-03-05T01:00:00Z"), Some("2024-03-05T22:10:00Z")),
    (
        Some("2024-03-05T23:00:00Z"),
        Some("2024-03-06T01:00:00.001Z"),
    ),
    (Some("2024-02-01"), Some("2024-04-01")),
    (Some("2024-03-06"), Some("2024-03-06")),
    (Some("2024-03-01T00:17:00Z"), Some("2024-03-10T19:43:00Z")),
];

fn window_query(branch: Option<&str>, since: Option<&str>, until: Option<&str>) -> String {
    let mut q = String::from("x=1");
    if let Some(b) = branch {
        q.push_str(&format!("&branch={b}"));
    }
    for (name, value) in [("since", since), ("until", until)] {
        if let Some(v) = value {
            q.push_str(&format!("&{name}={}", v.replace('+', "%2B")));
        }
    }
    q
}

fn check_totals(app: &TestApp, key: &str, seeded: &[Seeded], when: &str) {
    for branch in [None, Some("main"), Some("feature/x"), Some("nope")] {
        for (since, until) in WINDOWS {
            let query = window_query(branch, since, until);
            let page = list(app, key, &format!("{query}&limit=0"));
            let want = expected(seeded, branch, since.map(millis), until.map(millis)).len();
            assert_eq!(page["pagination"]["total"], want, "{when}: {query}");
        }
    }
}

#[test]
fn a_deep_offset_in_a_history_of_many_32_day_blocks_lands_on_the_same_page_as_counting() {
    let app = TestApp::spawn();
    let project = app.create_project("long");
    // 200 days from 2024-03-01: six whole 32-day blocks, and partial ones at both ends.
    let seeded = seed_over(&app, "long", 4_000, 200);
    let windows = [
        (None, None),
        (Some("2024-03-20T05:00:00Z"), None),
        (None, Some("2024-08-30T17:45:00Z")),
        (Some("2024-03-20T05:00:00Z"), Some("2024-08-30T17:45:00Z")),
        (Some("2024-04-02"), Some("2024-07-09")),
    ];
    for branch in [None, Some("dev")] {
        for (since, until) in windows {
            let query = window_query(branch, since, until);
            let want = expected(&seeded, branch, since.map(millis), until.map(millis));
            for offset in [2_000, 2_345, want.len() / 2, want.len() - 3, want.len()] {
                let page = assert_page_at(&app, &project.key, &query, &want, (offset, 5));
                assert_eq!(page["pagination"]["total"], want.len(), "{query}");
            }
        }
    }
}

#[test]
fn a_cursor_walk_of_a_whole_history_returns_the_same_pushes_as_the_offset_walk() {
    let app = TestApp::spawn();
    let project = app.create_project("history");
    let seeded = seed(&app, "history", 4_500);
    for branch in [None, Some("dev")] {
        for (since, until) in [WINDOWS[0], WINDOWS[3], WINDOWS[5]] {
            let query = window_query(branch, since, until);
            let want = expected(&seeded, branch, since.map(millis), until.map(millis));
            let by_cursor = list_by_cursor(&app, &project.key, &query, 100);
            assert_eq!(by_cursor, want, "cursor walk of {query}");
            let by_offset = offset_walk(&app, &project.key, &query, 100);
            assert_eq!(by_offset, by_cursor, "offset walk of {query}");
        }
    }
    // Single deep pages, on either side of where the day counters take over from SQLite.
    for (since, until) in [WINDOWS[0], WINDOWS[3], WINDOWS[1]] {
        let query = window_query(None, since, until);
        let want = expected(&seeded, None, since.map(millis), until.map(millis));
        for offset in [
            1_999,
            2_000,
            2_001,
            2_345,
            3_000,
            want.len() - 1,
            want.len(),
            9_999,
        ] {
            let page = assert_page_at(&app, &project.key, &query, &want, (offset, 7));
            assert_eq!(page["pagination"]["offset"], offset);
        }
    }
}

#[test]
fn the_admin_push_feed_walks_by_cursor_as_it_does_by_offset() {
    let app = TestApp::spawn();
    app.create_project("feed");
    let seeded = seed(&app, "feed", 250);
    let walked = cursor_walk(&app, ADMIN_TOKEN, "/api/admin/projects/feed/pushes", 40);
    assert_eq!(walked, expected(&seeded, None, None, None));
    let bad = app.get(
        "/api/admin/projects/feed/pushes?cursor=AAAA",
        Some(ADMIN_TOKEN),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cursor")
    );
}

fn push_at(app: &TestApp, project: &TestProject, delivery: &str, at_secs: i64) {
    let body = github_payload("main", &["feat: something"], at_secs);
    assert_eq!(app.github_push(project, delivery, &body).status, 201);
}

#[test]
fn pushes_arriving_between_two_pages_are_neither_skipped_nor_repeated() {
    let app = TestApp::spawn();
    let project = app.create_project("live");
    // 2024-05-01T00:00:00Z, one push a minute, and a few in the same second.
    let start = 1_714_521_600;
    for i in 0..30 {
        push_at(&app, &project, &format!("old-{i}"), start + (i / 3) * 60);
    }
    let before: Vec<String> = offset_walk(&app, &project.key, "x=1", 100);
    assert_eq!(before.len(), 30);

    let first = list(&app, &project.key, "limit=10");
    let mut walked = push_ids(&first);
    let mut cursor = first["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    // New pushes land on top while the client is between pages; an offset walk would now
    // show the last pushes of page one again.
    for i in 0..7 {
        push_at(&app, &project, &format!("new-{i}"), start + 3_600 + i);
    }
    let shifted = list(&app, &project.key, "limit=10&offset=10");
    assert!(
        push_ids(&shifted).iter().any(|id| walked.contains(id)),
        "the offset walk repeats pushes: the case the cursor is for"
    );
    let mut total = 37;
    loop {
        let page = list(&app, &project.key, &format!("limit=10&cursor={cursor}"));
        assert_eq!(page["pagination"]["total"], total);
        walked.extend(push_ids(&page));
        match page["pagination"]["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
        push_at(
            &app,
            &project,
            &format!("later-{}", walked.len()),
            start + 7_200 + walked.len() as i64,
        );
        total += 1;
    }
    assert_eq!(
        walked, before,
        "every push of the history once, in order, none of the new ones"
    );
}

/// The push counters per day, hour and 32-day block, of all branches (`push_days`) and per
/// branch (`push_branch_days`).
fn counter_tables() -> impl Iterator<Item = String> {
    ["days", "hours", "blocks"]
        .into_iter()
        .flat_map(|level| [format!("push_{level}"), format!("push_branch_{level}")])
}

/// Asserts that no counter table has a row where `unwanted` (an SQL condition) holds; `why`,
/// the rule it breaks, follows the table's name in the message.
fn assert_no_counter_row(app: &TestApp, unwanted: &str, why: &str) {
    for table in counter_tables() {
        let found = app.sql_count(&format!("SELECT count(*) FROM {table} WHERE {unwanted}"));
        assert_eq!(found, 0, "{table} {why}");
    }
}

#[test]
fn totals_with_since_until_and_branch_are_exact_at_partial_days_and_after_deletes() {
    let app = TestApp::spawn();
    let project = app.create_project("totals");
    let other = app.create_project("other");
    let mut seeded = seed(&app, "totals", 3_000);
    seed(&app, "other", 500);
    check_totals(&app, &project.key, &seeded, "as stored");

    // Retention takes the pushes received 40 days ago: half of every day and branch.
    let db = Db::open(&app.db_path).unwrap();
    let cutoff = DateTime::from_timestamp_millis(Utc::now().timestamp_millis() - 30 * DAY_MS);
    let deleted =
        git_push_tracker::retention::run_retention_once(&db, cutoff.unwrap(), &|| true).unwrap();
    assert_eq!(deleted, 1_500 + 250);
    let cutoff_ms = Utc::now().timestamp_millis() - 30 * DAY_MS;
    seeded.retain(|s| s.received_at >= cutoff_ms);
    check_totals(&app, &project.key, &seeded, "after retention");
    let query = window_query(None, WINDOWS[3].0, WINDOWS[3].1);
    assert_eq!(
        list_by_cursor(&app, &project.key, &query, 100),
        expected(
            &seeded,
            None,
            WINDOWS[3].0.map(millis),
            WINDOWS[3].1.map(millis)
        ),
        "after retention"
    );

    // Deleting a project takes its counters with it and leaves the other's alone.
    app.manager().delete_project("other").unwrap();
    assert_no_counter_row(
        &app,
        "project_id NOT IN (SELECT id FROM projects)",
        "keeps no row of a deleted project",
    );
    assert_eq!(
        app.get("/api/v1/pushes", Some(&other.key)).status,
        401,
        "the deleted project's key is gone"
    );
    check_totals(
        &app,
        &project.key,
        &seeded,
        "after deleting another project",
    );
    assert_no_counter_row(&app, "n <= 0", "leaves no empty bucket behind");
}

#[test]
fn a_malformed_or_mismatched_cursor_is_a_400_naming_cursor() {
    let app = TestApp::spawn();
    let project = app.create_project("cursors");
    let other = app.create_project("elsewhere");
    seed(&app, "cursors", 30);
    seed(&app, "elsewhere", 30);
    let of = |key: &str, query: &str| {
        list(&app, key, query)["pagination"]["nextCursor"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let plain = of(&project.key, "limit=5");
    let on_main = of(&project.key, "limit=5&branch=main");
    let since = of(&project.key, "limit=5&since=2024-03-02");
    let foreign = of(&other.key, "limit=5");
    // The same filters written another way are the same filters.
    assert_eq!(
        list(
            &app,
            &project.key,
            &format!("limit=5&since=2024-03-02T00:00:00Z&cursor={since}")
        )["pushes"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let mut truncated = plain.clone();
    truncated.pop();
    let flipped = {
        let mut c = plain.clone().into_bytes();
        c[3] = if c[3] == b'A' { b'B' } else { b'A' };
        String::from_utf8(c).unwrap()
    };
    for query in [
        "cursor=nope".to_owned(),
        "cursor=".to_owned(),
        "cursor=%21%21%21".to_owned(),
        format!("cursor={}", "A".repeat(65)),
        format!("cursor={truncated}"),
        format!("cursor={flipped}"),
        format!("cursor={on_main}"),
        format!("cursor={plain}&branch=main"),
        format!("cursor={since}"),
        format!("cursor={since}&since=2024-03-03"),
        format!("cursor={plain}&until=2024-03-05"),
        format!("cursor={foreign}"),
        format!("cursor={plain}&offset=5"),
    ] {
        assert_list_refuses(&app, &project.key, &query, "`cursor`");
    }
}

#[test]
fn until_takes_a_date_or_date_time_and_refuses_anything_else() {
    let app = TestApp::spawn();
    let project = app.create_project("until");
    let seeded = seed(&app, "until", 300);
    let total = |query: &str| list(&app, &project.key, query)["pagination"]["total"].clone();
    let want = |until: &str| expected(&seeded, None, None, Some(millis(until))).len();
    assert_eq!(total("until=2024-03-05"), want("2024-03-05T00:00:00Z"));
    assert_eq!(
        total("until=2024-03-05"),
        total("until=2024-03-05T00:00:00Z"),
        "a date is midnight UTC"
    );
    assert_eq!(
        total("until=2024-03-05T02:00:00%2B02:00"),
        total("until=2024-03-05T00:00"),
        "an offset is honoured and a date-time without one is UTC"
    );
    assert_eq!(
        total("until=2024-03-05T09:10:00.5Z"),
        want("2024-03-05T09:10:00.5Z")
    );
    assert_eq!(total("until=2000-01-01"), 0);
    // An empty `until=` is no bound, as the document's pattern says.
    assert_eq!(total("until="), Value::from(seeded.len()));
    assert_eq!(total("until=2024-03-05&since=2024-03-05"), 0);
    for bad in [
        "until=yesterday",
        "until=2024-13-01",
        "until=2024-02-30",
        "until=2024-03-05T25:00:00Z",
        "until=1709251200",
    ] {
        assert_list_refuses(&app, &project.key, bad, "until");
    }
}

#[test]
fn activity_by_day_and_week_counts_whole_days_from_counters_and_partial_days_from_pushes() {
    let app = TestApp::spawn();
    let project = app.create_project("activity");
    let seeded = seed(&app, "activity", 2_000);
    let (since, until) = ("2024-03-02T05:30:00Z", "2024-03-09T17:10:00Z");
    let (lo, hi) = (millis(since), millis(until));
    for branch in [None, Some("main")] {
        for group in ["day", "week"] {
            let mut query = format!("since={since}&until={until}&groupBy={group}");
            if let Some(b) = branch {
                query.push_str(&format!("&branch={b}"));
            }
            let reply = app.get(&format!("/api/v1/activity?{query}"), Some(&project.key));
            assert_eq!(reply.status, 200, "{query}: {}", reply.body);
            let in_range = seeded.iter().filter(|s| {
                s.pushed_at >= lo && s.pushed_at < hi && branch.is_none_or(|b| s.branch == b)
            });
            let want = tally(in_range.map(|s| {
                let day = s.pushed_at.div_euclid(DAY_MS);
                let key = if group == "week" {
                    day - (day + 3).rem_euclid(7)
                } else {
                    day
                };
                let date = DateTime::from_timestamp_millis(key * DAY_MS)
                    .unwrap()
                    .format("%Y-%m-%d")
                    .to_string();
                (date, s.commits)
            }));
            let mut got = groups(&reply.body["buckets"], "key");
            got.retain(|_, (pushes, _)| *pushes > 0);
            assert_eq!(got, want, "{query}");
        }
    }
}
