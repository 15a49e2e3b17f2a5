//! The builtin summarizer over every real payload in tests/fixtures: exact summaries.

use crate::support::app::fixture;
use crate::support::provider::{Provider, signed_headers};
use git_push_tracker::summarize::{SummaryInput, builtin_summary};
use git_push_tracker::webhook::{Delivery, parse_delivery};
use poem::http::{HeaderMap, HeaderName, HeaderValue};

const SECRET: &str = "fixture-secret";

/// Signs a fixture the way its provider would and returns the summaries of its pushes.
fn summaries(path: &str) -> Vec<String> {
    let body = fixture(path);
    let (provider, event) = match path.split('/').next().unwrap() {
        "github" => (Provider::GitHub, "push"),
        "gitlab" if path.contains("tag_push") => (Provider::GitLab, "Tag Push Hook"),
        "gitlab" => (Provider::GitLab, "Push Hook"),
        "gitea" => (Provider::Gitea, "push"),
        "bitbucket" => (Provider::Bitbucket, "repo:push"),
        other => panic!("unknown provider folder {other}"),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in signed_headers(provider, SECRET, event, path, &body) {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    match parse_delivery(&headers, &body, SECRET, chrono::DateTime::UNIX_EPOCH)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
    {
        Delivery::Pushes { pushes, .. } => pushes
            .iter()
            .map(|p| builtin_summary(&SummaryInput::from_new(p)))
            .collect(),
        other => panic!("{path}: expected pushes, got {other:?}"),
    }
}

/// Every push fixture and the exact builtin summary of the one push it holds: the fixture's
/// path, then the summary's lines below it, indented by four spaces.
const EXPECTED: &str = "
github/push.1.json
    - Deleted tag simple-tag
github/push.ghes-35.payload.json
    - Created tag simple-tag
github/push.go-scm-push.json
    - Update README
github/push.go-scm-push_branch_create.json
    - Created branch feature-branch
github/push.go-scm-push_branch_delete.json
    - Deleted branch feature-branch
github/push.payload.json
    - Deleted tag simple-tag
github/push.with-installation.json
    - Deleted tag simple-tag
github/push.with-new-branch.json
    - Initial commit
github/push.with-no-username-committer.json
    - Initial commit
github/push.with-organization.json
    - Deleted tag simple-tag
github/push.woodpecker-HookPush.json
    - Fix multiline secrets replacer (#700)
github/push.woodpecker-HookPushForced.json
    - Feature: Initial implementation
github/push.woodpecker-HookTag.json
    - Created tag the-tag-v1
gitlab/push.gitlab-docs.json
    - Update Catalan translation to e38cb41.
    - Fixed readme
    - and 2 more commits not listed
gitlab/push.go-gitlab.json
    - Fixed readme
    - and 2 more commits not listed
gitlab/push.go-scm-branch_create.json
    - Update readme
gitlab/push.go-scm-branch_delete.json
    - Deleted branch feature
gitlab/push.go-scm-push.json
    - Added readme
gitlab/push.go-scm-push_merge.json
    - Update readme
gitlab/push.woodpecker-HookPush.json
    - Update main.go
gitlab/tag_push.gitlab-docs.json
    - Created tag v1.0.0
gitlab/tag_push.go-gitlab.json
    - Merged 1 commit into tag v1.0.0
gitlab/tag_push.go-scm-tag_create.json
    - Added readme
gitlab/tag_push.go-scm-tag_delete.json
    - Deleted tag v1.0.0
gitlab/tag_push.woodpecker-HookTag.json
    - Update main.go
gitea/push.gitea-docs.json
    - Webhooks Yay!
gitea/push.go-scm-push.json
    - Updated readme
gitea/push.woodpecker-gitea-HookPushBranch.json
    - Created branch fdsafdsa
gitea/push.woodpecker-gitea-HookPushMulti.json
    - Add some a files
    - Rm a a file
    - Add some text
bitbucket/repo-push.go-scm-push.json
    - Update README
bitbucket/repo-push.go-scm-push_branch_create.json
    - Initial commit
    - Update README
bitbucket/repo-push.go-scm-push_branch_delete.json
    - Deleted branch develop
bitbucket/repo-push.go-scm-push_tag_create.json
    - Created tag feature/x
bitbucket/repo-push.go-scm-push_tag_delete.json
    - Deleted tag feature/x
bitbucket/repo-push.woodpecker-HookPush.json
    - A
";

/// [`EXPECTED`] as (fixture path, the summaries of its pushes).
fn expected() -> Vec<(&'static str, Vec<String>)> {
    let mut table: Vec<(&'static str, Vec<String>)> = Vec::new();
    for line in EXPECTED.lines().filter(|l| !l.is_empty()) {
        match line.strip_prefix("    ") {
            None => table.push((line, vec![String::new()])),
            Some(bullet) => {
                let (_, summaries) = table.last_mut().expect("a path before its summary");
                let summary = &mut summaries[0];
                if !summary.is_empty() {
                    summary.push('\n');
                }
                summary.push_str(bullet);
            }
        }
    }
    table
}

#[test]
fn every_push_fixture_gets_its_exact_builtin_summary() {
    for (path, expected) in expected() {
        assert_eq!(summaries(path), expected, "{path}");
    }
}

#[test]
fn the_table_covers_every_push_fixture() {
    let mut on_disk = Vec::new();
    for dir in ["github", "gitlab", "gitea", "bitbucket"] {
        let folder = format!("{}/tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(folder).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".json")
                && !name.starts_with("ping")
                && !name.starts_with("signature")
            {
                on_disk.push(format!("{dir}/{name}"));
            }
        }
    }
    on_disk.sort();
    let mut in_table: Vec<String> = expected().iter().map(|(p, _)| p.to_string()).collect();
    in_table.sort();
    assert_eq!(on_disk, in_table);
}

#[test]
fn every_builtin_summary_is_bullets_only_and_at_most_eight_lines() {
    for (path, _) in expected() {
        for summary in summaries(path) {
            assert!(!summary.is_empty(), "{path}");
            assert!(summary.lines().count() <= 8, "{path}");
            assert!(
                summary.lines().all(|l| l.starts_with("- ")),
                "{path}: {summary}"
            );
        }
    }
}
