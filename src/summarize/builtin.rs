//! The offline summarizer: deterministic bullets from commit subjects, no network.

use std::collections::HashSet;

use crate::domain::subject_of;

use super::{MAX_BULLETS, SummarizeError, Summarizer, SummaryInput};

/// Subjects longer than this are cut so one runaway commit line cannot swamp the summary.
const MAX_SUBJECT_CHARS: usize = 120;

/// Subject prefixes git and the hosts write for merges; they say nothing a reader needs.
const MERGE_PREFIXES: [&str; 5] = [
    "merge branch",
    "merge pull request",
    "merge remote-tracking",
    "merge tag",
    "merge commit",
];

/// Summarizes a push without a model: one bullet per meaningful commit subject.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinSummarizer;

impl BuiltinSummarizer {
    pub const SOURCE: &'static str = "builtin";

    /// The summary itself; never empty.
    pub fn summary(input: &SummaryInput<'_>) -> String {
        let what = format!("{} {}", input.ref_kind.as_str(), input.ref_name);
        if input.deleted {
            return format!("- Deleted {what}");
        }
        // Commits missing from the list were left out either by the host (GitLab lists 20) or
        // by the stored-commits cap on a padded payload, so the wording names neither.
        let unlisted = (input.commit_count as usize).saturating_sub(input.commits.len());
        if input.commits.is_empty() {
            let verb = if input.created { "Created" } else { "Pushed" };
            return match unlisted {
                0 => format!("- {verb} {what}"),
                n => format!("- {verb} {what} with {} not listed", commits(n)),
            };
        }

        let mut seen = HashSet::new();
        // Only the bullets that can be shown are written out; the rest are only counted.
        let mut bullets = Vec::new();
        let mut distinct = 0usize;
        let mut merges = 0usize;
        for commit in input.commits {
            let subject = subject_of(&commit.message);
            if is_merge(subject) {
                merges += 1;
                continue;
            }
            let Some(line) = describe_subject(subject, &commit.message) else {
                continue;
            };
            if seen.insert(line.key().to_lowercase()) {
                distinct += 1;
                if bullets.len() < MAX_BULLETS {
                    bullets.push(line.text());
                }
            }
        }
        if distinct == 0 {
            // Every commit was a merge (or had no subject): still say something true.
            distinct = 1;
            bullets.push(if merges > 0 {
                format!("Merged {} into {what}", commits(merges))
            } else {
                format!("Pushed {} to {what}", commits(input.commits.len()))
            });
        }
        render(bullets, distinct, unlisted)
    }
}

impl Summarizer for BuiltinSummarizer {
    fn source(&self) -> &str {
        Self::SOURCE
    }

    fn is_offline(&self) -> bool {
        true
    }

    fn summarize(&self, input: &SummaryInput<'_>) -> Result<String, SummarizeError> {
        Ok(Self::summary(input))
    }
}

fn commits(n: usize) -> String {
    if n == 1 {
        "1 commit".to_owned()
    } else {
        format!("{n} commits")
    }
}

/// Keeps at most [`MAX_BULLETS`] lines, the last one counting what was left out. `bullets` holds
/// the first of `distinct` bullets, at least as many as can be shown.
fn render(bullets: Vec<String>, distinct: usize, unlisted: usize) -> String {
    let tail_needed = unlisted > 0;
    let room = MAX_BULLETS - usize::from(tail_needed);
    let (shown, hidden) = if distinct <= room {
        (distinct, 0)
    } else {
        let shown = MAX_BULLETS - 1;
        (shown, distinct - shown)
    };
    let mut lines: Vec<String> = bullets
        .into_iter()
        .take(shown)
        .map(|b| format!("- {b}"))
        .collect();
    match (hidden, unlisted) {
        (0, 0) => {}
        (h, 0) => lines.push(format!("- and {h} more")),
        (0, 1) => lines.push("- and 1 more commit not listed".to_owned()),
        (0, u) => lines.push(format!("- and {u} more commits not listed")),
        (h, u) => lines.push(format!("- and {h} more, plus {} not listed", commits(u))),
    }
    lines.join("\n")
}

fn is_merge(subject: &str) -> bool {
    MERGE_PREFIXES.iter().any(|prefix| {
        subject
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    })
}

/// A commit subject worth a bullet; its text is only written out if it is shown.
enum Line<'a> {
    Plain(&'a str),
    Conventional {
        label: &'static str,
        scope: Option<&'a str>,
        description: &'a str,
        breaking: bool,
    },
}

impl Line<'_> {
    /// What duplicates are judged by: the description without its conventional prefix.
    fn key(&self) -> &str {
        match self {
            Line::Plain(subject) => subject,
            Line::Conventional { description, .. } => description,
        }
    }

    fn text(&self) -> String {
        match self {
            Line::Plain(subject) => clipped(subject),
            Line::Conventional {
                label,
                scope,
                description,
                breaking,
            } => {
                let mut text = (*label).to_owned();
                if let Some(scope) = scope {
                    text.push_str(" (");
                    text.push_str(scope);
                    text.push(')');
                }
                text.push_str(": ");
                text.push_str(&clipped(description));
                if *breaking {
                    text.push_str(" (breaking)");
                }
                text
            }
        }
    }
}

fn describe_subject<'a>(subject: &'a str, message: &str) -> Option<Line<'a>> {
    let subject = subject.trim();
    if subject.is_empty() {
        return None;
    }
    let Some(cc) = parse_conventional(subject) else {
        return Some(Line::Plain(subject));
    };
    let description = cc.description.trim();
    if description.is_empty() {
        return None;
    }
    Some(Line::Conventional {
        label: cc.label,
        scope: cc.scope.filter(|s| !s.is_empty()),
        description,
        breaking: cc.breaking || message.contains("BREAKING CHANGE:"),
    })
}

struct Conventional<'a> {
    label: &'static str,
    scope: Option<&'a str>,
    breaking: bool,
    description: &'a str,
}

/// Parses `type(scope)!: description`; unknown types are left alone so "Note: x" stays as written.
fn parse_conventional(subject: &str) -> Option<Conventional<'_>> {
    let colon = subject.find(':')?;
    let (head, rest) = (&subject[..colon], &subject[colon + 1..]);
    if !rest.starts_with(' ') {
        return None;
    }
    let (head, breaking) = match head.strip_suffix('!') {
        Some(h) => (h, true),
        None => (head, false),
    };
    let (kind, scope) = match head.find('(') {
        Some(open) => {
            let scope = head[open + 1..].strip_suffix(')')?;
            (&head[..open], Some(scope.trim()))
        }
        None => (head, None),
    };
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let kind = kind.to_ascii_lowercase();
    let is_deps = matches!(scope, Some(s) if s.eq_ignore_ascii_case("deps") || s.eq_ignore_ascii_case("deps-dev"));
    let (label, scope) = match kind.as_str() {
        "chore" | "build" if is_deps => ("Dependencies", None),
        "deps" => ("Dependencies", scope),
        "feat" | "feature" => ("Feature", scope),
        "fix" | "bugfix" | "hotfix" => ("Fix", scope),
        "docs" | "doc" => ("Docs", scope),
        "refactor" => ("Refactor", scope),
        "perf" => ("Performance", scope),
        "test" | "tests" => ("Tests", scope),
        "build" => ("Build", scope),
        "ci" => ("CI", scope),
        "chore" => ("Chore", scope),
        "style" => ("Style", scope),
        "revert" => ("Revert", scope),
        "security" | "sec" => ("Security", scope),
        _ => return None,
    };
    Some(Conventional {
        label,
        scope,
        breaking,
        description: rest.trim(),
    })
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(MAX_SUBJECT_CHARS) {
        None => s,
        Some(_) => {
            let cut = s
                .char_indices()
                .nth(MAX_SUBJECT_CHARS - 1)
                .map_or(s.len(), |(at, _)| at);
            s[..cut].trim_end()
        }
    }
}

/// `clip`, with the ellipsis that says something was cut.
fn clipped(s: &str) -> String {
    let kept = clip(s);
    let mut out = capitalize(kept);
    if kept.len() < s.len() {
        out.push('…');
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let mut out = String::with_capacity(s.len() + 4);
    out.extend(first.to_uppercase());
    out.push_str(chars.as_str());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewCommit, RefKind};

    fn commit(message: &str) -> NewCommit {
        NewCommit {
            sha: "0123456789abcdef".into(),
            message: message.into(),
            author: "Ada".into(),
            timestamp: None,
            url: None,
            added: vec![],
            removed: vec![],
            modified: vec![],
        }
    }

    use crate::summarize::test_input as input;

    fn summarize(messages: &[&str]) -> String {
        let commits: Vec<_> = messages.iter().map(|m| commit(m)).collect();
        BuiltinSummarizer::summary(&input(&commits))
    }

    #[test]
    fn conventional_prefixes_become_plain_words() {
        let s = summarize(&[
            "feat(api): add login",
            "fix: crash on empty body",
            "chore(deps): bump serde to 1.0.200",
            "docs: explain webhooks",
            "refactor!: drop the v0 routes",
            "perf: cache the template",
        ]);
        assert_eq!(
            s,
            "- Feature (api): Add login\n\
             - Fix: Crash on empty body\n\
             - Dependencies: Bump serde to 1.0.200\n\
             - Docs: Explain webhooks\n\
             - Refactor: Drop the v0 routes (breaking)\n\
             - Performance: Cache the template"
        );
    }

    #[test]
    fn tests_build_and_ci_prefixes_have_their_own_labels() {
        let s = summarize(&["test: cover retries", "build: use lto", "ci: cache cargo"]);
        assert_eq!(
            s,
            "- Tests: Cover retries\n- Build: Use lto\n- CI: Cache cargo"
        );
    }

    #[test]
    fn a_breaking_change_footer_marks_the_bullet_breaking() {
        let s = summarize(&["feat: new config format\n\nBREAKING CHANGE: old files are refused"]);
        assert_eq!(s, "- Feature: New config format (breaking)");
    }

    #[test]
    fn unknown_prefixes_and_plain_subjects_are_kept_and_capitalized() {
        assert_eq!(
            summarize(&["note: keep this", "update readme"]),
            "- Note: keep this\n- Update readme"
        );
    }

    #[test]
    fn merge_commits_are_dropped() {
        let s = summarize(&[
            "Merge branch 'main' into feature",
            "Merge pull request #12 from acme/login",
            "feat: add login",
            "Merge remote-tracking branch 'origin/main'",
        ]);
        assert_eq!(s, "- Feature: Add login");
    }

    #[test]
    fn a_push_of_only_merges_still_gets_one_bullet() {
        let s = summarize(&["Merge branch 'a'", "Merge tag 'v1'"]);
        assert_eq!(s, "- Merged 2 commits into branch main");
    }

    #[test]
    fn repeated_subjects_are_dropped_case_insensitively_after_prefix_stripping() {
        let s = summarize(&["fix: typo", "Fix: Typo", "docs: typo", "wip", "WIP"]);
        assert_eq!(s, "- Fix: Typo\n- Wip");
    }

    #[test]
    fn more_than_eight_changes_show_seven_and_a_count() {
        let messages: Vec<String> = (1..=12).map(|i| format!("change {i}")).collect();
        let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
        let s = summarize(&refs);
        let lines: Vec<_> = s.lines().collect();
        assert_eq!(lines.len(), 8);
        assert_eq!(lines[6], "- Change 7");
        assert_eq!(lines[7], "- and 5 more");
    }

    #[test]
    fn exactly_eight_changes_are_all_shown() {
        let messages: Vec<String> = (1..=8).map(|i| format!("change {i}")).collect();
        let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
        assert_eq!(summarize(&refs).lines().count(), 8);
    }

    #[test]
    fn a_deletion_is_one_line() {
        let commits = vec![commit("feat: ignored")];
        let mut i = input(&commits);
        i.deleted = true;
        assert_eq!(BuiltinSummarizer::summary(&i), "- Deleted branch main");
        i.ref_kind = RefKind::Tag;
        i.ref_name = "v1.0";
        assert_eq!(BuiltinSummarizer::summary(&i), "- Deleted tag v1.0");
    }

    #[test]
    fn a_push_without_commits_says_created_or_pushed() {
        let mut i = input(&[]);
        assert_eq!(BuiltinSummarizer::summary(&i), "- Pushed branch main");
        i.created = true;
        i.ref_kind = RefKind::Tag;
        i.ref_name = "v2";
        assert_eq!(BuiltinSummarizer::summary(&i), "- Created tag v2");
        i.commit_count = 3;
        assert_eq!(
            BuiltinSummarizer::summary(&i),
            "- Created tag v2 with 3 commits not listed"
        );
    }

    /// The summary of a push of `commit_count` commits of which the host listed `listed`.
    fn summary_listing(listed: &[NewCommit], commit_count: u32) -> String {
        let mut i = input(listed);
        i.commit_count = commit_count;
        BuiltinSummarizer::summary(&i)
    }

    /// Commits `change 1` to `change {n}`.
    fn changes(n: usize) -> Vec<NewCommit> {
        (1..=n).map(|i| commit(&format!("change {i}"))).collect()
    }

    #[test]
    fn commits_the_host_did_not_list_are_counted() {
        assert_eq!(
            summary_listing(&[commit("feat: a"), commit("fix: b")], 25),
            "- Feature: A\n- Fix: B\n- and 23 more commits not listed"
        );
    }

    #[test]
    fn the_truncation_note_shares_the_eight_line_cap() {
        let s = summary_listing(&changes(20), 30);
        let lines: Vec<_> = s.lines().collect();
        assert_eq!(lines.len(), 8);
        assert_eq!(lines[7], "- and 13 more, plus 10 commits not listed");

        let s = summary_listing(&changes(7), 9);
        assert_eq!(s.lines().count(), 8);
        assert!(s.ends_with("- and 2 more commits not listed"));
    }

    #[test]
    fn long_subjects_are_trimmed() {
        let long = format!("fix: {}", "x".repeat(500));
        let s = summarize(&[&long]);
        assert!(s.chars().count() < 140, "{s}");
        assert!(s.ends_with('…'));
    }

    #[test]
    fn a_subject_is_cut_at_a_character_boundary_to_120_characters_with_the_ellipsis() {
        let exactly = "é".repeat(MAX_SUBJECT_CHARS);
        assert_eq!(summarize(&[&exactly]), format!("- É{}", "é".repeat(119)));
        // 118 characters, a space that is trimmed before the ellipsis, then more.
        let longer = format!("{} {}", "ü".repeat(118), "ß".repeat(40));
        assert_eq!(summarize(&[&longer]), format!("- Ü{}…", "ü".repeat(117)));
    }

    #[test]
    fn merge_subjects_are_recognised_in_any_case_and_nothing_else_is() {
        let s = summarize(&["MERGE BRANCH 'x'", "Merged the two parsers", "feat: a"]);
        assert_eq!(s, "- Merged the two parsers\n- Feature: A");
    }

    #[test]
    fn the_summary_is_never_empty() {
        assert_eq!(
            summarize(&["", "   \n\n"]),
            "- Pushed 2 commits to branch main"
        );
    }
}
