//! A model for the tests of digests made by a model: push summaries answer at once, digests
//! with what the test makes of them.

use std::sync::atomic::{AtomicUsize, Ordering};

use git_push_tracker::summarize::{SummarizeError, Summarizer, SummaryInput};

/// Answers every push summary with "- A model summary" and the nth digest it is asked for (an
/// input whose ref name starts with "digest ") with what `digest(n, input)` answers.
pub struct DigestModel<F> {
    source: &'static str,
    digests: AtomicUsize,
    digest: F,
}

impl<F> DigestModel<F>
where
    F: Fn(usize, &SummaryInput<'_>) -> String + Send + Sync,
{
    /// A model whose answers show `source` as their `summarySource`.
    pub fn new(source: &'static str, digest: F) -> DigestModel<F> {
        DigestModel {
            source,
            digests: AtomicUsize::new(0),
            digest,
        }
    }

    /// How many digests it was asked for so far, counted as each one starts.
    pub fn digests(&self) -> usize {
        self.digests.load(Ordering::SeqCst)
    }
}

impl<F> Summarizer for DigestModel<F>
where
    F: Fn(usize, &SummaryInput<'_>) -> String + Send + Sync,
{
    fn source(&self) -> &str {
        self.source
    }

    fn summarize(&self, input: &SummaryInput<'_>) -> Result<String, SummarizeError> {
        if !input.ref_name.starts_with("digest ") {
            return Ok("- A model summary".to_owned());
        }
        let n = self.digests.fetch_add(1, Ordering::SeqCst) + 1;
        Ok((self.digest)(n, input))
    }
}
