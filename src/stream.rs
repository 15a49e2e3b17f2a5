//! The change log's fan-out: one task reads every new change once and broadcasts it to every
//! live stream, and the filter a stream applies to it.
//!
//! Contact points: the task waits on [`Store::change_signal`], which the storage engine fires
//! after each commit that may add to the change log (the ingest writer, the summary outcomes,
//! re-queues), so it reads the log right after a commit instead of polling it; `http::live`
//! subscribes one receiver per stream. The channel is bounded: a subscriber that falls
//! [`ChangeHub::capacity`] changes behind is dropped (it resumes from the database with its
//! last event id) rather than slowing the others or holding memory for it. One that stops
//! reading altogether is not polled at all once its socket is full; the listener's idle timeout
//! (nothing read or written for `--idle-timeout`) closes its connection, which drops its stream.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::db::{Change, PushFilter, Store};
use crate::domain::RefKind;
use crate::history::{PushQuery, QueryError, RawQuery};

/// Most changes read from the database at once.
const READ_BATCH: u32 = 256;
/// Writes from another process (the CLI re-queueing a push) do not fire this process's signal;
/// they are picked up this often. Every write of this process wakes the task at once.
const SAFETY_NET: Duration = Duration::from_secs(5);

/// One change as every subscriber receives it, with its JSON forms made once, by the first
/// subscriber that needs each, not once per subscriber.
#[derive(Debug)]
pub struct Broadcast {
    pub change: Change,
    item_json: OnceLock<String>,
    owner_json: OnceLock<String>,
}

impl Broadcast {
    pub fn new(change: Change) -> Broadcast {
        Broadcast {
            change,
            item_json: OnceLock::new(),
            owner_json: OnceLock::new(),
        }
    }

    /// The push as a project key's holder sees it, made by `make` the first time.
    pub fn item_json(&self, make: impl FnOnce(&Change) -> String) -> &str {
        self.item_json.get_or_init(|| make(&self.change))
    }

    /// The change as the owner's stream shows it, made by `make` the first time.
    pub fn owner_json(&self, make: impl FnOnce(&Change) -> String) -> &str {
        self.owner_json.get_or_init(|| make(&self.change))
    }
}

/// The fan-out: started once per server, stopped at shutdown, which ends every stream.
pub struct ChangeHub {
    sender: broadcast::Sender<Arc<Broadcast>>,
    stopping: watch::Sender<bool>,
    capacity: usize,
}

/// One stream's receiver, taken before it reads the database so nothing falls in between.
pub struct Subscription {
    pub changes: broadcast::Receiver<Arc<Broadcast>>,
    pub stopping: watch::Receiver<bool>,
}

impl ChangeHub {
    /// Starts the reading task on the current Tokio runtime; `capacity` changes are held for a
    /// subscriber that has not read them yet.
    pub fn start(store: Arc<dyn Store>, capacity: usize) -> Arc<ChangeHub> {
        let (sender, _) = broadcast::channel(capacity);
        let (stopping, _) = watch::channel(false);
        let hub = Arc::new(ChangeHub {
            sender,
            stopping,
            capacity,
        });
        tokio::spawn(read_changes(
            store,
            hub.sender.clone(),
            hub.stopping.subscribe(),
        ));
        hub
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription {
            changes: self.sender.subscribe(),
            stopping: self.stopping.subscribe(),
        }
    }

    /// How many changes a subscriber may fall behind before it is dropped.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Streams connected now.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Ends the task and every stream (a server shutting down waits for open responses).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

async fn read_changes(
    store: Arc<dyn Store>,
    sender: broadcast::Sender<Arc<Broadcast>>,
    mut stopping: watch::Receiver<bool>,
) {
    let signal = store.change_signal();
    // Where the log stands when the server starts: only what comes after is broadcast.
    let mut last = loop {
        if let Some(seq) = read(&store, |s| s.latest_change()).await {
            break seq;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopping.changed() => return,
        }
    };
    loop {
        loop {
            let at = last;
            let Some(batch) = read(&store, move |s| s.changes_after(at, None, READ_BATCH)).await
            else {
                break;
            };
            let full = batch.len() == READ_BATCH as usize;
            for change in batch {
                last = change.seq;
                // No receiver is no error: nobody is listening right now.
                let _ = sender.send(Arc::new(Broadcast::new(change)));
            }
            if !full {
                break;
            }
        }
        tokio::select! {
            () = signal.notified() => {}
            () = tokio::time::sleep(SAFETY_NET) => {}
            _ = stopping.changed() => return,
        }
    }
}

async fn read<T: Send + 'static>(
    store: &Arc<dyn Store>,
    work: impl FnOnce(&dyn Store) -> Result<T, crate::db::DbError> + Send + 'static,
) -> Option<T> {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || work(&*store)).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => {
            tracing::error!(error = %crate::error_chain(&e), "could not read the change log");
            None
        }
        Err(_) => None,
    }
}

/// Which pushes a stream (or feed) wants: the list's filters that apply to single pushes
/// (`branch`, `author`, `repository`, `refType`), validated by the list's own parsing, and
/// matched here exactly as the list's SQL matches them, so a stream shows what the list would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    pub branch: Option<String>,
    /// Any of these, as the pusher or a commit author; ASCII case-insensitive, as SQLite's
    /// `NOCASE` on `push_authors` compares.
    pub authors: Vec<String>,
    /// Any of these, exactly.
    pub repositories: Vec<String>,
    pub ref_kind: Option<RefKind>,
}

impl ChangeFilter {
    /// Parses the four parameters as `GET /api/v1/pushes` does, with its messages.
    pub fn parse(
        branch: Option<String>,
        author: Vec<String>,
        repository: Vec<String>,
        ref_type: Option<String>,
    ) -> Result<ChangeFilter, QueryError> {
        let query = PushQuery::parse(RawQuery {
            branch,
            author,
            repository,
            ref_type,
            ..RawQuery::default()
        })?;
        let filter = query.filter;
        Ok(ChangeFilter {
            branch: filter.branch,
            authors: filter.authors,
            repositories: filter.repositories,
            ref_kind: filter.ref_kind,
        })
    }

    pub fn matches(&self, change: &Change) -> bool {
        let push = &change.push;
        self.branch.as_ref().is_none_or(|b| *b == push.ref_name)
            && self.ref_kind.is_none_or(|k| k == push.ref_kind)
            && (self.repositories.is_empty() || self.repositories.contains(&push.repository))
            && (self.authors.is_empty()
                || change
                    .authors
                    .iter()
                    .any(|a| self.authors.iter().any(|f| f.eq_ignore_ascii_case(a))))
    }

    /// The same filter for a page of the list.
    pub fn page_filter(&self) -> PushFilter {
        PushFilter {
            branch: self.branch.clone(),
            authors: self.authors.clone(),
            repositories: self.repositories.clone(),
            ref_kind: self.ref_kind,
            ..PushFilter::default()
        }
    }

    /// The filters as they identify a feed or key its ETag, in a fixed order: the branch (NUL
    /// for none), then each other filter given, authors in lower case as they match. A feed with
    /// no filter but the branch keeps the id it had before the other filters existed.
    pub fn key_parts(&self) -> Vec<String> {
        let mut parts = vec![self.branch.clone().unwrap_or_else(|| "\0".to_owned())];
        if !self.authors.is_empty() {
            let mut authors: Vec<String> = self
                .authors
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect();
            authors.sort();
            authors.dedup();
            parts.push(format!("author={}", serde_json::json!(authors)));
        }
        if !self.repositories.is_empty() {
            let mut repositories = self.repositories.clone();
            repositories.sort();
            parts.push(format!("repository={}", serde_json::json!(repositories)));
        }
        if let Some(kind) = self.ref_kind {
            parts.push(format!("refType={}", kind.as_str()));
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(branch: Option<&str>, authors: &[&str], ref_type: Option<&str>) -> ChangeFilter {
        ChangeFilter::parse(
            branch.map(str::to_owned),
            authors.iter().map(|a| (*a).to_owned()).collect(),
            Vec::new(),
            ref_type.map(str::to_owned),
        )
        .unwrap()
    }

    #[test]
    fn a_feed_of_no_filter_or_a_branch_alone_keeps_the_key_it_had_before_the_other_filters() {
        assert_eq!(filter(None, &[], None).key_parts(), vec!["\0".to_owned()]);
        assert_eq!(
            filter(Some("main"), &[], None).key_parts(),
            vec!["main".to_owned()]
        );
    }

    #[test]
    fn the_same_authors_in_another_order_or_case_are_the_same_feed_and_blank_ones_no_filter() {
        assert_eq!(
            filter(None, &["Ada", "bob"], None).key_parts(),
            filter(None, &["BOB", " ada "], None).key_parts()
        );
        assert_eq!(filter(None, &["  "], None), ChangeFilter::default());
        assert_ne!(
            filter(None, &[], Some("tag")).key_parts(),
            filter(None, &[], Some("branch")).key_parts()
        );
    }

    #[test]
    fn a_bad_ref_type_or_too_many_authors_is_the_lists_error() {
        let bad = ChangeFilter::parse(None, Vec::new(), Vec::new(), Some("both".into()));
        assert_eq!(
            bad.unwrap_err().to_string(),
            "`refType` must be `branch` or `tag`"
        );
        let many = vec!["a".to_owned(); crate::history::MAX_VALUES + 1];
        assert!(ChangeFilter::parse(None, many, Vec::new(), None).is_err());
    }
}
