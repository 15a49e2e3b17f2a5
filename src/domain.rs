//! Domain types shared by every layer: projects, keys, pushes, commits. No I/O here.

use std::fmt;

use chrono::{DateTime, Duration, TimeZone, Utc};

/// An enum whose every variant has one text form, written once beside it: the value stored in
/// the database, sent in JSON or as a metric label, and read back. Gives the enum `ALL` (in
/// declaration order), `as_str`, `parse` (`None` for any other text) and `Display`.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

text_enum! {
    /// The git host a delivery came from, detected from its headers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Provider {
        GitHub = "github",
        GitLab = "gitlab",
        Gitea = "gitea",
        Forgejo = "forgejo",
        Bitbucket = "bitbucket",
    }
}

text_enum! {
    /// Whether a pushed ref is a branch or a tag.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RefKind {
        Branch = "branch",
        Tag = "tag",
    }
}

/// One commit as a provider listed it in a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommit {
    pub sha: String,
    pub message: String,
    pub author: String,
    pub timestamp: Option<DateTime<Utc>>,
    pub url: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

/// The first non-empty line of a commit message, trimmed.
pub fn subject_of(message: &str) -> &str {
    message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// A push parsed from a verified delivery, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPush {
    pub provider: Provider,
    /// The provider's delivery id; a second delivery with the same id is a no-op.
    /// Bitbucket deliveries that carry several changes get `{id}#{index}` per change.
    pub delivery_id: Option<String>,
    /// `owner/name` (or the provider's full path).
    pub repository: String,
    /// The full ref, such as `refs/heads/main` or `refs/tags/v1.0`.
    pub git_ref: String,
    pub ref_kind: RefKind,
    /// The branch or tag name, such as `main` or `v1.0`.
    pub ref_name: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
    pub pusher: String,
    /// The true number of commits in the push, which may exceed `commits.len()`.
    pub commit_count: u32,
    pub compare_url: Option<String>,
    /// When the provider says the push happened, if it says so.
    pub pushed_at: Option<DateTime<Utc>>,
    pub commits: Vec<NewCommit>,
}

impl NewPush {
    /// A push to `branch` of `repository` by `pusher`, with no commits and nothing else known:
    /// where a push built by hand (tests, the bench) starts, the rest set by struct update.
    pub fn to_branch(repository: &str, branch: &str, pusher: &str) -> NewPush {
        NewPush {
            provider: Provider::GitHub,
            delivery_id: None,
            repository: repository.into(),
            git_ref: format!("refs/heads/{branch}"),
            ref_kind: RefKind::Branch,
            ref_name: branch.into(),
            before: None,
            after: None,
            created: false,
            deleted: false,
            forced: false,
            pusher: pusher.into(),
            commit_count: 0,
            compare_url: None,
            pushed_at: None,
            commits: Vec::new(),
        }
    }

    /// How far past the time received a payload's push time is still believed: a git host's
    /// clock may run a little fast, but a push from the future is made up, and it would stay at
    /// the top of every newest-first page for good.
    pub const PUSH_TIME_TOLERANCE: Duration = Duration::minutes(5);
    /// How far past the time received a commit's own time is still kept. It comes from the
    /// author's machine, whose clock or time zone can be hours off.
    pub const COMMIT_TIME_TOLERANCE: Duration = Duration::days(1);

    /// True when the provider listed fewer commits than the push holds.
    pub fn commits_truncated(&self) -> bool {
        (self.commits.len() as u64) < u64::from(self.commit_count)
    }

    /// When the push happened, as stored: the payload's time when it is believable (no later
    /// than [`Self::PUSH_TIME_TOLERANCE`] after `received_at`, and not before git existed),
    /// otherwise `received_at`. Earlier times are believed, because a redelivery days later
    /// rightly carries the push's real time.
    pub fn pushed_at_within(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        match self.pushed_at {
            Some(t) if t >= earliest_push() && t <= received_at + Self::PUSH_TIME_TOLERANCE => t,
            _ => received_at,
        }
    }

    /// The push with the times it carries checked against `received_at`: its push time from
    /// [`Self::pushed_at_within`], and commit times more than [`Self::COMMIT_TIME_TOLERANCE`]
    /// ahead of it dropped (shown as unknown).
    pub fn dated(mut self, received_at: DateTime<Utc>) -> NewPush {
        self.pushed_at = Some(self.pushed_at_within(received_at));
        let latest_commit = received_at + Self::COMMIT_TIME_TOLERANCE;
        for commit in &mut self.commits {
            if commit.timestamp.is_some_and(|t| t > latest_commit) {
                commit.timestamp = None;
            }
        }
        self
    }
}

/// Git's first release (2005-04-07): nothing was pushed with git before it, so an earlier push
/// time (0, a negative number) is a placeholder, not a time.
fn earliest_push() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2005, 4, 7, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

text_enum! {
    /// Where a push's summary stands: `Pending` → `InProgress` (a worker holds it) → `Summarized`
    /// or `Failed`, and back to `Pending` for a retry or a re-summary. The text is also the
    /// `status` label of the pushes metric.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum SummaryStatus {
        Pending = "pending",
        InProgress = "in_progress",
        Summarized = "summarized",
        Failed = "failed",
    }
}

impl SummaryStatus {
    /// What API readers see: a push being summarized right now is still waiting for its summary.
    pub fn public(self) -> SummaryStatus {
        match self {
            SummaryStatus::InProgress => SummaryStatus::Pending,
            other => other,
        }
    }
}

/// A stored push as the API and the summarizers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub id: String,
    pub project: String,
    pub provider: Provider,
    pub delivery_id: Option<String>,
    pub repository: String,
    pub git_ref: String,
    pub ref_kind: RefKind,
    pub ref_name: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
    pub pusher: String,
    pub commit_count: u32,
    pub commits_truncated: bool,
    pub compare_url: Option<String>,
    pub pushed_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub summary: String,
    pub summary_status: SummaryStatus,
    pub summary_source: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// When its summary last changed (its arrival until a model summary replaced the first).
    pub updated_at: DateTime<Utc>,
}

/// A project name: a slug of lowercase letters, digits, `-` and `_`, 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectName(String);

/// Why a project name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid project name {0:?}: use 1 to 64 lowercase letters, digits, '-' or '_' (for example \"my-app\")"
)]
pub struct InvalidProjectName(pub String);

impl ProjectName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InvalidProjectName> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(ProjectName(raw.to_owned()))
        } else {
            // Echo at most a short prefix so a pasted secret or megabyte of junk never lands in a message.
            Err(InvalidProjectName(raw.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A project as listed to its owner (never carries the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: i64,
    pub name: ProjectName,
    pub hook_id: String,
    pub created_at: DateTime<Utc>,
}

/// Per-project counts for the owner's views.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushCounts {
    pub total: u64,
    pub pending: u64,
    pub failed: u64,
}

/// An API key as listed to its owner: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub label: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_enum_reads_back_each_of_its_texts_and_no_other() {
        fn round_trip<T: Copy + PartialEq + fmt::Debug>(
            all: &[T],
            as_str: fn(T) -> &'static str,
            parse: fn(&str) -> Option<T>,
        ) {
            for &value in all {
                assert_eq!(parse(as_str(value)), Some(value));
            }
            let texts: std::collections::HashSet<_> = all.iter().map(|v| as_str(*v)).collect();
            assert_eq!(texts.len(), all.len(), "every variant has its own text");
            assert_eq!(parse(&as_str(all[0]).to_uppercase()), None);
            assert_eq!(parse(""), None);
        }
        round_trip(&Provider::ALL, Provider::as_str, Provider::parse);
        round_trip(&RefKind::ALL, RefKind::as_str, RefKind::parse);
        round_trip(
            &SummaryStatus::ALL,
            SummaryStatus::as_str,
            SummaryStatus::parse,
        );
        assert_eq!(SummaryStatus::InProgress.to_string(), "in_progress");
        assert_eq!(Provider::ALL.len(), 5);
    }

    #[test]
    fn project_names_are_lowercase_slugs_up_to_64_chars() {
        for ok in ["a", "my-app", "my_app", "app2", &"x".repeat(64)] {
            assert!(ProjectName::parse(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "",
            "My-App",
            "my app",
            "app/../x",
            "é",
            &"x".repeat(65),
            "a;drop",
        ] {
            assert!(ProjectName::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    fn push_at(pushed_at: Option<DateTime<Utc>>, commit_times: &[DateTime<Utc>]) -> NewPush {
        NewPush {
            commit_count: commit_times.len() as u32,
            pushed_at,
            commits: commit_times
                .iter()
                .map(|t| NewCommit {
                    sha: "s".into(),
                    message: "m".into(),
                    author: "a".into(),
                    timestamp: Some(*t),
                    url: None,
                    added: vec![],
                    removed: vec![],
                    modified: vec![],
                })
                .collect(),
            ..NewPush::to_branch("a/b", "main", "p")
        }
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_push_time_is_believed_from_git_s_first_release_to_five_minutes_after_it_was_received() {
        let received = at("2026-12-01T12:00:00Z");
        for believed in [
            "2026-12-01T11:59:59Z",
            "2026-12-01T12:05:00Z",
            "2026-11-20T08:00:00Z",
            "2005-04-07T00:00:00Z",
        ] {
            let push = push_at(Some(at(believed)), &[]);
            assert_eq!(push.pushed_at_within(received), at(believed), "{believed}");
        }
        for refused in [
            "2026-12-01T12:05:01Z",
            "9999-12-31T23:59:59Z",
            "2005-04-06T23:59:59Z",
            "1970-01-01T00:00:00Z",
        ] {
            let push = push_at(Some(at(refused)), &[]);
            assert_eq!(push.pushed_at_within(received), received, "{refused}");
        }
        assert_eq!(push_at(None, &[]).pushed_at_within(received), received);
    }

    #[test]
    fn dating_a_push_fixes_its_time_and_drops_commit_times_more_than_a_day_ahead() {
        let received = at("2026-12-01T12:00:00Z");
        let old = at("1999-01-01T00:00:00Z");
        let soon = at("2026-12-02T11:00:00Z");
        let future = at("2026-12-02T12:00:01Z");
        let dated = push_at(Some(at("3000-01-01T00:00:00Z")), &[old, soon, future]).dated(received);
        assert_eq!(dated.pushed_at, Some(received));
        let times: Vec<_> = dated.commits.iter().map(|c| c.timestamp).collect();
        assert_eq!(times, [Some(old), Some(soon), None]);
    }

    #[test]
    fn subject_is_the_first_non_empty_line() {
        assert_eq!(subject_of("\n  fix: thing  \n\nbody"), "fix: thing");
        assert_eq!(subject_of(""), "");
    }
}
