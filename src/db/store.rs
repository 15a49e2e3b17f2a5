//! The one door to the data: [`Store`] is what every handler, the CLI, the summary worker and
//! retention call, and [`ProjectScope`] is the only way to read a project's pushes.
//!
//! Blocking and object-safe, so a second storage engine can stand behind `Arc<dyn Store>`;
//! async callers reach it through `spawn_blocking`. The SQLite engine ([`Db`]) implements it
//! over the per-table SQL modules beside this one. Webhook pushes are not written here but by
//! the batching ingest writer ([`super::writer`]), which shares the same file.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::changes::{self, Change, ChangeCursor};
use super::history::{self, DigestPush, GroupCount, Grouping, RangeCounts};
use super::notifications::{self, DeliveryRecord, DueDelivery};
use super::pushes::{self, PageStart, PushFilter, PushPage};
use super::summary_queue::{self, Attempt, ClaimedPush};
use super::{Db, DbError, admin, expiry, keys, projects, settings, stats};
use crate::domain::{ApiKeyInfo, NewCommit, Project, ProjectName, Push, PushCounts};
use crate::metrics::DbStats;
use crate::notify::{DeliveryAttempt, NewNotification, Notification};
use crate::secret::Secret;

/// The one project a caller may read. Handed out only by [`Store::authenticate_key`] (a
/// project key's holder) and [`Store::owner_scope`] (the owner, by name); nothing else can
/// make one, so a push list can never be asked for a project the caller was not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectScope {
    id: i64,
    project: ProjectName,
}

impl ProjectScope {
    pub(super) fn new(id: i64, project: ProjectName) -> ProjectScope {
        ProjectScope { id, project }
    }

    pub(super) fn id(&self) -> i64 {
        self.id
    }

    pub fn project(&self) -> &ProjectName {
        &self.project
    }
}

/// What the webhook receiver needs to verify a delivery for a hook id.
#[derive(Debug, Clone)]
pub struct HookTarget {
    pub project_id: i64,
    pub project: ProjectName,
    pub secret: Secret,
}

/// Every read and write of stored data outside the ingest writer.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Answers whether the data can be read; `/healthz`.
    fn check(&self) -> Result<(), DbError>;
    /// What `/metrics` reports about the stored data.
    fn stats(&self) -> Result<DbStats, DbError>;

    // The owner's credential.
    fn admin_token_hash(&self) -> Result<Option<[u8; 32]>, DbError>;
    /// Stores `hash` as the admin token; a different token also ends every session.
    fn set_admin_token_hash(&self, hash: &[u8; 32], now: DateTime<Utc>) -> Result<(), DbError>;
    fn create_session(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DbError>;
    fn session_is_live(&self, hash: &[u8; 32], now: DateTime<Utc>) -> Result<bool, DbError>;
    fn delete_session(&self, hash: &[u8; 32]) -> Result<(), DbError>;
    fn delete_all_sessions(&self) -> Result<(), DbError>;

    // What the running server tells the command line.
    /// Records the public URL the server builds webhook URLs on, at its start.
    fn record_public_url(&self, url: &str) -> Result<(), DbError>;
    /// The public URL the last server on this database recorded, if one ever started.
    fn recorded_public_url(&self) -> Result<Option<String>, DbError>;

    // Projects.
    fn create_project(
        &self,
        name: &ProjectName,
        hook_id: &str,
        secret: &Secret,
        now: DateTime<Utc>,
    ) -> Result<Project, DbError>;
    /// Every project, by name, with its push counts.
    fn list_projects(&self) -> Result<Vec<(Project, PushCounts)>, DbError>;
    fn find_project(&self, name: &ProjectName) -> Result<Project, DbError>;
    fn delete_project(&self, name: &ProjectName) -> Result<(), DbError>;
    fn rotate_secret(&self, name: &ProjectName, secret: &Secret) -> Result<Project, DbError>;
    fn find_hook(&self, hook_id: &str) -> Result<HookTarget, DbError>;

    // API keys.
    fn create_key(
        &self,
        project: &Project,
        hash: &[u8; 32],
        prefix: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKeyInfo, DbError>;
    fn list_keys(&self, project: &Project) -> Result<Vec<ApiKeyInfo>, DbError>;
    /// Revokes one key of a project, named by its id or its display prefix.
    fn revoke_key(
        &self,
        project: &Project,
        id_or_prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKeyInfo, DbError>;
    /// The project of the live key with this hash (recording its use), or None.
    fn authenticate_key(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<ProjectScope>, DbError>;
    /// The owner's scope over one of their projects.
    fn owner_scope(&self, name: &ProjectName) -> Result<ProjectScope, DbError>;

    // Pushes, always within a scope.
    /// One page of the scope's pushes, newest first, how many match in all and where the next
    /// page starts; its cost does not grow with the history, nor with the depth of the page.
    fn list_pushes(
        &self,
        scope: &ProjectScope,
        filter: &PushFilter,
        limit: u32,
        start: &PageStart,
    ) -> Result<PushPage, DbError>;
    /// One push of the scope with its commits; another project's push is `NotFound`.
    fn get_push(&self, scope: &ProjectScope, id: &str) -> Result<(Push, Vec<NewCommit>), DbError>;

    // Asking the history, always within a scope.
    /// Pushes, commits and who, where and which branch, of the pushes a filter matches.
    fn range_counts(
        &self,
        scope: &ProjectScope,
        filter: &PushFilter,
    ) -> Result<RangeCounts, DbError>;
    /// Pushes and commits per group of the pushes a filter matches.
    fn activity(
        &self,
        scope: &ProjectScope,
        filter: &PushFilter,
        by: Grouping,
    ) -> Result<Vec<GroupCount>, DbError>;
    /// Up to `max` of the pushes a filter matches, newest first, as a digest reads them.
    fn digest_pushes(
        &self,
        scope: &ProjectScope,
        filter: &PushFilter,
        max: u32,
    ) -> Result<Vec<DigestPush>, DbError>;
    /// A model digest stored for `range_key`, if it was written for `fingerprint`.
    fn cached_digest(
        &self,
        scope: &ProjectScope,
        range_key: &[u8; 32],
        fingerprint: &[u8; 32],
    ) -> Result<Option<(String, String)>, DbError>;
    /// Stores a model digest (one per range key and project; the newest wins).
    #[allow(clippy::too_many_arguments)]
    fn store_digest(
        &self,
        scope: &ProjectScope,
        range_key: &[u8; 32],
        fingerprint: &[u8; 32],
        summary: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbError>;

    // The summary queue.
    /// Puts pushes a killed process left in progress back in the queue; run once at start.
    fn requeue_abandoned(&self, now: DateTime<Utc>) -> Result<usize, DbError>;
    /// Takes the oldest due pending push, counting the attempt.
    fn claim_next(&self, now: DateTime<Utc>) -> Result<Option<ClaimedPush>, DbError>;
    fn complete(
        &self,
        push: &ClaimedPush,
        summary: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbError>;
    /// Back to the queue after a failed attempt, due again at `next_at`.
    fn retry_at(
        &self,
        push: &ClaimedPush,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), DbError>;
    /// Back to the queue without spending the attempt (a daily quota ran out).
    fn postpone(
        &self,
        push: &ClaimedPush,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), DbError>;
    /// No more attempts: the push keeps its builtin summary and shows why.
    fn fail(&self, push: &ClaimedPush, error: &str) -> Result<(), DbError>;
    /// When the next pending push falls due, if any is waiting.
    fn next_due(&self) -> Result<Option<DateTime<Utc>>, DbError>;
    /// Queues a push for a fresh round of attempts, within `scope` when given.
    fn requeue(
        &self,
        public_id: &str,
        scope: Option<&ProjectScope>,
        now: DateTime<Utc>,
    ) -> Result<(), DbError>;

    // Notifications.
    fn create_notification(
        &self,
        project: &Project,
        new: &NewNotification,
        now: DateTime<Utc>,
    ) -> Result<Notification, DbError>;
    fn list_notifications(&self, project: &Project) -> Result<Vec<Notification>, DbError>;
    fn find_notification(&self, project: &Project, id: i64) -> Result<Notification, DbError>;
    fn delete_notification(&self, project: &Project, id: i64) -> Result<(), DbError>;
    /// Pauses with a reason, or resumes (clearing the failure count and any backoff).
    fn set_notification_enabled(
        &self,
        project: &Project,
        id: i64,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<Notification, DbError>;
    /// The last attempts to reach a notification's receiver, newest first.
    fn notification_attempts(
        &self,
        project: &Project,
        id: i64,
    ) -> Result<Vec<DeliveryAttempt>, DbError>;
    /// Up to `limit` due deliveries, oldest first, of the enabled notification with the oldest
    /// one that is neither in `busy` (being sent by another thread) nor waiting out a
    /// receiver's backoff; empty when none is due.
    fn next_deliveries(
        &self,
        now: DateTime<Utc>,
        busy: &[i64],
        limit: usize,
    ) -> Result<Vec<DueDelivery>, DbError>;
    /// When the next delivery of a notification not in `busy` falls due, if any is waiting.
    fn next_delivery_at(&self, busy: &[i64]) -> Result<Option<DateTime<Utc>>, DbError>;
    /// Logs attempts and applies what they came to, in order, in one transaction.
    fn record_deliveries(&self, records: &[DeliveryRecord]) -> Result<(), DbError>;
    /// Deliveries not yet made.
    fn pending_deliveries(&self) -> Result<u64, DbError>;
    // The change log.
    /// Up to `limit` changes after `after`, oldest first, within `scope` or across projects.
    fn changes_after(
        &self,
        after: ChangeCursor,
        scope: Option<&ProjectScope>,
        limit: u32,
    ) -> Result<Vec<Change>, DbError>;
    /// The newest change made so far.
    fn latest_change(&self) -> Result<ChangeCursor, DbError>;
    /// A cursor below this one missed a change of the scope's that is no longer stored.
    fn change_floor(&self, scope: &ProjectScope) -> Result<ChangeCursor, DbError>;
    /// Changes whenever any answer about the scope's pushes would; cheap (two index lookups).
    fn project_version(&self, scope: &ProjectScope) -> Result<(i64, i64), DbError>;
    /// Changes whenever the answer about one push would; None when there is no such push.
    fn push_version(&self, scope: &ProjectScope, id: &str) -> Result<Option<String>, DbError>;
    /// Notified after every commit of this process that may have added to the change log
    /// (stored pushes, summary outcomes, re-queues): what the live stream waits on.
    fn change_signal(&self) -> Arc<tokio::sync::Notify>;

    // Retention.
    /// Deletes up to `limit` pushes received before `cutoff`; returns how many went.
    fn delete_received_before(&self, cutoff: DateTime<Utc>, limit: usize)
    -> Result<usize, DbError>;
}

impl Db {
    /// Runs a change to the summary queue, then wakes the live stream: the change log may have
    /// grown.
    fn queue_change<T>(
        &self,
        change: impl FnOnce(&Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let done = change(&*self.conn()?)?;
        self.changed.notify_one();
        Ok(done)
    }
}

impl From<Db> for Arc<dyn Store> {
    fn from(db: Db) -> Self {
        Arc::new(db)
    }
}

impl Store for Db {
    fn check(&self) -> Result<(), DbError> {
        let conn = self.conn()?;
        conn.query_row("SELECT count(*) FROM projects", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    fn stats(&self) -> Result<DbStats, DbError> {
        self.settled();
        stats::read(&*self.conn()?, &self.wal_path())
    }

    fn admin_token_hash(&self) -> Result<Option<[u8; 32]>, DbError> {
        admin::token_hash(&*self.conn()?)
    }

    fn set_admin_token_hash(&self, hash: &[u8; 32], now: DateTime<Utc>) -> Result<(), DbError> {
        self.owner_change(|conn| admin::set_token_hash(conn, hash, now))
    }

    fn create_session(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        admin::create_session(&*self.conn()?, hash, now, expires_at)
    }

    fn session_is_live(&self, hash: &[u8; 32], now: DateTime<Utc>) -> Result<bool, DbError> {
        admin::session_is_live(&*self.conn()?, hash, now)
    }

    fn delete_session(&self, hash: &[u8; 32]) -> Result<(), DbError> {
        self.owner_change(|conn| admin::delete_session(conn, hash))
    }

    fn delete_all_sessions(&self) -> Result<(), DbError> {
        self.owner_change(|conn| admin::delete_all_sessions(conn))
    }

    fn record_public_url(&self, url: &str) -> Result<(), DbError> {
        settings::set_public_url(&*self.conn()?, url)
    }

    fn recorded_public_url(&self) -> Result<Option<String>, DbError> {
        settings::public_url(&*self.conn()?)
    }

    fn create_project(
        &self,
        name: &ProjectName,
        hook_id: &str,
        secret: &Secret,
        now: DateTime<Utc>,
    ) -> Result<Project, DbError> {
        self.owner_change(|conn| projects::create(conn, name, hook_id, secret, now))
    }

    fn list_projects(&self) -> Result<Vec<(Project, PushCounts)>, DbError> {
        self.settled();
        let conn = self.conn()?;
        projects::list(&conn)?
            .into_iter()
            .map(|project| {
                let counts = projects::counts(&conn, project.id)?;
                Ok((project, counts))
            })
            .collect()
    }

    fn find_project(&self, name: &ProjectName) -> Result<Project, DbError> {
        projects::find(&*self.conn()?, name)
    }

    fn delete_project(&self, name: &ProjectName) -> Result<(), DbError> {
        self.owner_change(|conn| projects::delete(conn, name))
    }

    fn rotate_secret(&self, name: &ProjectName, secret: &Secret) -> Result<Project, DbError> {
        self.owner_change(|conn| projects::rotate_secret(conn, name, secret))
    }

    fn find_hook(&self, hook_id: &str) -> Result<HookTarget, DbError> {
        projects::find_by_hook_id(&*self.conn()?, hook_id)
    }

    fn create_key(
        &self,
        project: &Project,
        hash: &[u8; 32],
        prefix: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKeyInfo, DbError> {
        self.owner_change(|conn| keys::create(conn, project.id, hash, prefix, label, now))
    }

    fn list_keys(&self, project: &Project) -> Result<Vec<ApiKeyInfo>, DbError> {
        keys::list(&*self.conn()?, project.id)
    }

    fn revoke_key(
        &self,
        project: &Project,
        id_or_prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKeyInfo, DbError> {
        self.owner_change(|conn| keys::revoke(conn, project.id, id_or_prefix, now))
    }

    fn authenticate_key(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<ProjectScope>, DbError> {
        keys::authenticate(&*self.conn()?, hash, now)
    }

    fn owner_scope(&self, name: &ProjectName) -> Result<ProjectScope, DbError> {
        let project = projects::find(&*self.conn()?, name)?;
        Ok(ProjectScope::new(project.id, project.name))
    }

    fn list_pushes(
        &self,
        scope: &ProjectScope,
        filter: &PushFilter,
        limit: u32,
        start: &PageStart,
    ) -> Result<PushPage, DbError> {
        self.filtered_read(filter, |conn| {
            pushes::list(conn, scope, filter, limit, start)
        })
    }

    fn get_push(&self, scope: &ProjectScope, id: &str) -> Result<(Push, Vec<NewCommit>), DbError> {
        pushes::get(&*self.conn()?, scope, id)
    }

    fn range_counts(
        &self,
        scope: &ProjectScope,
        filter: &PushFilter,
    ) -> Result<RangeCounts, DbError> {
        self.filtered_read(filter, |conn| history::counts(conn, scope, filter))
    }

    fn activity(
        &self,
        scope: &ProjectScope,
        filter: &PushFilter,
        by: Grouping,
    ) -> Result<Vec<GroupCount>, DbError> {
        self.filtered_read(filter, |conn| history::group(conn, scope, filter, by))
    }

    fn digest_pushes(
        &self,
        scope: &ProjectScope,
        filter: &PushFilter,
        max: u32,
    ) -> Result<Vec<DigestPush>, DbError> {
        self.filtered_read(filter, |conn| {
            history::digest_pushes(conn, scope, filter, max)
        })
    }

    fn cached_digest(
        &self,
        scope: &ProjectScope,
        range_key: &[u8; 32],
        fingerprint: &[u8; 32],
    ) -> Result<Option<(String, String)>, DbError> {
        history::cached_digest(&*self.conn()?, scope, range_key, fingerprint)
    }

    fn store_digest(
        &self,
        scope: &ProjectScope,
        range_key: &[u8; 32],
        fingerprint: &[u8; 32],
        summary: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        history::store_digest(
            &*self.conn()?,
            scope,
            range_key,
            fingerprint,
            summary,
            source,
            super::to_millis(now),
        )
    }

    fn requeue_abandoned(&self, now: DateTime<Utc>) -> Result<usize, DbError> {
        self.queue_change(|conn| summary_queue::requeue_abandoned(conn, now))
    }

    fn claim_next(&self, now: DateTime<Utc>) -> Result<Option<ClaimedPush>, DbError> {
        summary_queue::claim_next(&mut *self.conn()?, now)
    }

    fn complete(
        &self,
        push: &ClaimedPush,
        summary: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        self.queue_change(|conn| summary_queue::complete(conn, push.row_id, summary, source, now))
    }

    fn retry_at(
        &self,
        push: &ClaimedPush,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        self.queue_change(|conn| {
            summary_queue::back_to_queue(conn, push.row_id, error, next_at, Attempt::Spent)
        })
    }

    fn postpone(
        &self,
        push: &ClaimedPush,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        self.queue_change(|conn| {
            summary_queue::back_to_queue(conn, push.row_id, error, next_at, Attempt::Refunded)
        })
    }

    fn fail(&self, push: &ClaimedPush, error: &str) -> Result<(), DbError> {
        self.queue_change(|conn| summary_queue::fail(conn, push.row_id, error))
    }

    fn next_due(&self) -> Result<Option<DateTime<Utc>>, DbError> {
        summary_queue::next_due(&*self.conn()?)
    }

    fn requeue(
        &self,
        public_id: &str,
        scope: Option<&ProjectScope>,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        self.queue_change(|conn| {
            summary_queue::requeue(conn, public_id, scope.map(ProjectScope::id), now)
        })
    }

    fn changes_after(
        &self,
        after: ChangeCursor,
        scope: Option<&ProjectScope>,
        limit: u32,
    ) -> Result<Vec<Change>, DbError> {
        self.settled();
        changes::after(&*self.conn()?, after, scope.map(ProjectScope::id), limit)
    }

    fn latest_change(&self) -> Result<ChangeCursor, DbError> {
        self.settled();
        changes::latest(&*self.conn()?)
    }

    fn change_floor(&self, scope: &ProjectScope) -> Result<ChangeCursor, DbError> {
        changes::floor(&*self.conn()?, scope)
    }

    fn project_version(&self, scope: &ProjectScope) -> Result<(i64, i64), DbError> {
        self.settled();
        changes::project_version(&*self.conn()?, scope)
    }

    fn push_version(&self, scope: &ProjectScope, id: &str) -> Result<Option<String>, DbError> {
        changes::push_version(&*self.conn()?, scope, id)
    }

    fn change_signal(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.changed)
    }

    fn create_notification(
        &self,
        project: &Project,
        new: &NewNotification,
        now: DateTime<Utc>,
    ) -> Result<Notification, DbError> {
        self.owner_change(|conn| {
            let id = notifications::create(conn, project.id, new, now)?;
            notifications::get(conn, project.id, id)
        })
    }

    fn list_notifications(&self, project: &Project) -> Result<Vec<Notification>, DbError> {
        notifications::list(&*self.conn()?, project.id)
    }

    fn find_notification(&self, project: &Project, id: i64) -> Result<Notification, DbError> {
        notifications::get(&*self.conn()?, project.id, id)
    }

    fn delete_notification(&self, project: &Project, id: i64) -> Result<(), DbError> {
        self.owner_change(|conn| notifications::delete(conn, project.id, id))
    }

    fn set_notification_enabled(
        &self,
        project: &Project,
        id: i64,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<Notification, DbError> {
        self.owner_change(|conn| {
            notifications::set_enabled(conn, project.id, id, enabled, reason)?;
            notifications::get(conn, project.id, id)
        })
    }

    fn notification_attempts(
        &self,
        project: &Project,
        id: i64,
    ) -> Result<Vec<DeliveryAttempt>, DbError> {
        notifications::attempts(&*self.conn()?, project.id, id)
    }

    fn next_deliveries(
        &self,
        now: DateTime<Utc>,
        busy: &[i64],
        limit: usize,
    ) -> Result<Vec<DueDelivery>, DbError> {
        notifications::next_due(&mut *self.conn()?, now, busy, limit)
    }

    fn next_delivery_at(&self, busy: &[i64]) -> Result<Option<DateTime<Utc>>, DbError> {
        notifications::next_due_at(&*self.conn()?, busy)
    }

    fn record_deliveries(&self, records: &[DeliveryRecord]) -> Result<(), DbError> {
        notifications::record(&mut *self.conn()?, records)
    }

    fn pending_deliveries(&self) -> Result<u64, DbError> {
        notifications::pending_count(&*self.conn()?)
    }

    fn delete_received_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, DbError> {
        expiry::delete_batch(&mut *self.conn()?, cutoff, limit)
    }
}
