//! Summarizers: turn a push and its commits into short `- ` bullets (builtin, Gemini, OpenAI-compatible).

use std::time::Duration;

use crate::domain::{NewCommit, NewPush, Push, RefKind};

/// The parts of a push a summarizer looks at, borrowed from a new or a stored push.
#[derive(Debug, Clone, Copy)]
pub struct SummaryInput<'a> {
    pub repository: &'a str,
    pub ref_kind: RefKind,
    pub ref_name: &'a str,
    pub pusher: &'a str,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
    /// The true commit count, which may exceed `commits.len()`.
    pub commit_count: u32,
    pub commits: &'a [NewCommit],
}

impl<'a> SummaryInput<'a> {
    pub fn from_new(push: &'a NewPush) -> Self {
        SummaryInput {
            repository: &push.repository,
            ref_kind: push.ref_kind,
            ref_name: &push.ref_name,
            pusher: &push.pusher,
            created: push.created,
            deleted: push.deleted,
            forced: push.forced,
            commit_count: push.commit_count,
            commits: &push.commits,
        }
    }

    pub fn from_stored(push: &'a Push, commits: &'a [NewCommit]) -> Self {
        SummaryInput {
            repository: &push.repository,
            ref_kind: push.ref_kind,
            ref_name: &push.ref_name,
            pusher: &push.pusher,
            created: push.created,
            deleted: push.deleted,
            forced: push.forced,
            commit_count: push.commit_count,
            commits,
        }
    }

    /// Deletions and pushes without listed commits get the builtin one-liner, never a model call.
    pub fn needs_model(&self) -> bool {
        !self.deleted && !self.commits.is_empty()
    }
}

/// Why a summarizer gave no summary this time, and what the worker should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummarizeError {
    /// Worth another attempt (429, 500, 503, 504, timeouts, blocked or empty answers, bad JSON).
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (bad key, forbidden, unknown model): fail the push now.
    #[error("{reason}")]
    Permanent { reason: String },
    /// A daily quota ran out: try again later without spending an attempt.
    #[error("{reason}")]
    Postpone {
        reason: String,
        retry_after: Duration,
    },
}

/// Turns a push into a summary. Implementations block (the worker runs on its own thread).
pub trait Summarizer: Send + Sync {
    /// What the API shows as `summarySource`: `builtin` or the model's name.
    fn source(&self) -> &str;

    /// A summary of `- ` bullets, one per line.
    fn summarize(&self, input: &SummaryInput<'_>) -> Result<String, SummarizeError>;
}

/// The offline summary shown from the moment a push is stored.
pub fn builtin_summary(input: &SummaryInput<'_>) -> String {
    // Placeholder until the builtin summarizer lands: one bullet per commit subject.
    if input.deleted {
        return format!("- Deleted {} {}", input.ref_kind.as_str(), input.ref_name);
    }
    if input.commits.is_empty() {
        return format!("- Pushed {} {}", input.ref_kind.as_str(), input.ref_name);
    }
    input
        .commits
        .iter()
        .map(|c| format!("- {}", c.subject()))
        .collect::<Vec<_>>()
        .join("\n")
}
