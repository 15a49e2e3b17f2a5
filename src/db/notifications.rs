//! SQL for notifications, their outbox (filled by triggers, see migrate.rs) and the log of
//! delivery attempts.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::pushes::{PUSH_COLUMNS, commits, push_from_row};
use super::values::UnknownStoredValue;
use super::{DbError, from_millis, to_millis};
use crate::domain::{NewCommit, ProjectName, Push};
use crate::notify::{
    AuthorFilter, BranchFilter, DeliveryAttempt, Kind, NewNotification, Notification, ReceiverUrl,
};
use crate::secret::Secret;

/// Attempts kept per notification; older ones are deleted as new ones are logged.
pub const KEPT_ATTEMPTS: i64 = 100;

const COLUMNS: &str = "n.id, pr.name, n.kind, n.url, n.label, n.branches, n.exclude_authors, \
    n.token, n.secret, n.enabled, n.disabled_reason, n.failures_in_a_row, n.last_delivery_at, \
    n.created_at";
const COLUMN_COUNT: usize = 14;

fn corrupt(kind: &'static str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(UnknownStoredValue {
            kind,
            value: String::new(),
        }),
    )
}

fn strings(json: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(json).map_err(|_| corrupt("notification filter"))
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    ShiftedRow { row: r, by: 0 }.notification()
}

pub fn create(
    conn: &Connection,
    project_id: i64,
    new: &NewNotification,
    now: DateTime<Utc>,
) -> Result<i64, DbError> {
    let json = |v: &[String]| serde_json::to_string(v).expect("strings always serialize");
    conn.execute(
        "INSERT INTO notifications (project_id, kind, url, label, branches, exclude_authors,
            token, secret, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            project_id,
            new.kind,
            new.url.expose().as_str(),
            new.label,
            json(&new.branches.patterns()),
            json(new.exclude_authors.names()),
            new.token.as_ref().map(Secret::expose),
            new.secret.as_ref().map(Secret::expose),
            to_millis(now),
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn list(conn: &Connection, project_id: i64) -> Result<Vec<Notification>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM notifications n JOIN projects pr ON pr.id = n.project_id
         WHERE n.project_id = ?1 ORDER BY n.id"
    ))?;
    let rows = stmt.query_map([project_id], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get(conn: &Connection, project_id: i64, id: i64) -> Result<Notification, DbError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM notifications n JOIN projects pr ON pr.id = n.project_id
         WHERE n.project_id = ?1 AND n.id = ?2"
    ))?
    .query_row(params![project_id, id], from_row)
    .optional()?
    .ok_or(DbError::NotFound)
}

pub fn delete(conn: &Connection, project_id: i64, id: i64) -> Result<(), DbError> {
    let n = conn.execute(
        "DELETE FROM notifications WHERE project_id = ?1 AND id = ?2",
        params![project_id, id],
    )?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Pauses (with a reason) or resumes; resuming clears the failure count and any backoff.
pub fn set_enabled(
    conn: &Connection,
    project_id: i64,
    id: i64,
    enabled: bool,
    reason: Option<&str>,
) -> Result<(), DbError> {
    let n = conn.execute(
        "UPDATE notifications SET enabled = ?3, disabled_reason = ?4,
            failures_in_a_row = CASE WHEN ?3 THEN 0 ELSE failures_in_a_row END,
            blocked_until = CASE WHEN ?3 THEN 0 ELSE blocked_until END
         WHERE project_id = ?1 AND id = ?2",
        params![project_id, id, enabled, reason],
    )?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

pub fn attempts(
    conn: &Connection,
    project_id: i64,
    id: i64,
) -> Result<Vec<DeliveryAttempt>, DbError> {
    get(conn, project_id, id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT push_public_id, attempt, status, error, ms, at FROM notify_attempts
         WHERE notification_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![id, KEPT_ATTEMPTS], |r| {
        Ok(DeliveryAttempt {
            push_id: r.get(0)?,
            attempt: r.get(1)?,
            status: r.get(2)?,
            error: r.get(3)?,
            ms: r.get::<_, i64>(4)?.max(0) as u64,
            at: from_millis(r.get(5)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A delivery the sender is to make now.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub outbox_id: i64,
    /// Attempts already made.
    pub attempts: u32,
    pub notification: Notification,
    pub push: Push,
    pub commits: Vec<NewCommit>,
}

/// The oldest due delivery of a notification not in `busy` and not backing off.
pub fn next_due(
    conn: &mut Connection,
    now: DateTime<Utc>,
    busy: &[i64],
) -> Result<Option<DueDelivery>, DbError> {
    let busy = serde_json::to_string(busy).expect("ids always serialize");
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let sql = format!(
        "SELECT o.id, o.attempts, o.push_id, {COLUMNS}, {PUSH_COLUMNS}
         FROM notify_outbox o
         JOIN notifications n ON n.id = o.notification_id
         JOIN projects pr ON pr.id = n.project_id
         JOIN pushes p ON p.id = o.push_id
         WHERE o.state = 'pending' AND o.next_attempt_at <= ?1
           AND n.enabled = 1 AND n.blocked_until <= ?1
           AND n.id NOT IN (SELECT value FROM json_each(?2))
         ORDER BY o.next_attempt_at, o.id LIMIT 1"
    );
    let found = tx
        .prepare_cached(&sql)?
        .query_row(params![to_millis(now), busy], |r| {
            // The notification's columns start after the outbox's three.
            let notification = ShiftedRow { row: r, by: 3 }.notification()?;
            let push = push_from_row(r, 3 + COLUMN_COUNT, notification.project.as_str())?;
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, i64>(2)?,
                notification,
                push,
            ))
        })
        .optional()?;
    let Some((outbox_id, attempts, push_row, notification, push)) = found else {
        return Ok(None);
    };
    let commits = commits(&tx, push_row)?;
    tx.commit()?;
    Ok(Some(DueDelivery {
        outbox_id,
        attempts,
        notification,
        push,
        commits,
    }))
}

/// Reads a notification from a row whose notification columns start at `by`.
struct ShiftedRow<'a, 'b> {
    row: &'a Row<'b>,
    by: usize,
}

impl ShiftedRow<'_, '_> {
    fn notification(&self) -> rusqlite::Result<Notification> {
        let r = self.row;
        let c = |i: usize| self.by + i;
        let kind: Kind = r.get(c(2))?;
        let url: String = r.get(c(3))?;
        let branches: String = r.get(c(5))?;
        let authors: String = r.get(c(6))?;
        Ok(Notification {
            id: r.get(c(0))?,
            project: r.get::<_, ProjectName>(c(1))?,
            kind,
            url: ReceiverUrl::parse(&url, kind).map_err(|_| corrupt("receiver URL"))?,
            label: r.get(c(4))?,
            branches: BranchFilter::parse(&strings(&branches)?)
                .map_err(|_| corrupt("branch pattern"))?,
            exclude_authors: AuthorFilter::parse(&strings(&authors)?)
                .map_err(|_| corrupt("author name"))?,
            token: r.get::<_, Option<String>>(c(7))?.map(Secret::new),
            secret: r.get::<_, Option<String>>(c(8))?.map(Secret::new),
            enabled: r.get(c(9))?,
            disabled_reason: r.get(c(10))?,
            failures_in_a_row: r.get(c(11))?,
            last_delivery_at: r.get::<_, Option<i64>>(c(12))?.map(from_millis),
            created_at: from_millis(r.get(c(13))?),
        })
    }
}

/// When the next pending delivery of an enabled notification falls due.
pub fn next_due_at(conn: &Connection) -> Result<Option<DateTime<Utc>>, DbError> {
    let next: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(MAX(o.next_attempt_at, n.blocked_until)) FROM notify_outbox o
             JOIN notifications n ON n.id = o.notification_id
             WHERE o.state = 'pending' AND n.enabled = 1",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(next.map(from_millis))
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at `at`; `receiver_wait` holds every delivery to this receiver until then.
    Retry {
        at: DateTime<Utc>,
        receiver_wait: bool,
    },
    /// No attempt left, or a message the receiver will never take.
    Dead,
    /// The receiver is gone or refuses us: the notification is paused with the reason.
    Paused(String),
    /// The push is filtered out; nothing was sent.
    Skipped,
}

/// One attempt as logged.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    pub push_id: Option<&'a str>,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<&'a str>,
    pub ms: u64,
    pub at: DateTime<Utc>,
}

/// Logs an attempt (none for a skipped delivery) and applies its outcome, in one transaction.
pub fn record(
    conn: &mut Connection,
    notification_id: i64,
    outbox_id: Option<i64>,
    attempt: Option<&AttemptRecord<'_>>,
    outcome: &DeliveryOutcome,
) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(a) = attempt {
        tx.prepare_cached(
            "INSERT INTO notify_attempts (notification_id, push_public_id, attempt, status, error, ms, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            notification_id,
            a.push_id,
            a.attempt,
            a.status,
            a.error,
            i64::try_from(a.ms).unwrap_or(i64::MAX),
            to_millis(a.at)
        ])?;
        tx.prepare_cached(
            "DELETE FROM notify_attempts WHERE notification_id = ?1 AND id <= (
                SELECT id FROM notify_attempts WHERE notification_id = ?1
                ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )?
        .execute(params![notification_id, KEPT_ATTEMPTS])?;
    }
    let at = attempt.map(|a| to_millis(a.at));
    if let Some(outbox_id) = outbox_id {
        let (state, next) = match outcome {
            DeliveryOutcome::Delivered => ("done", None),
            DeliveryOutcome::Retry { at, .. } => ("pending", Some(to_millis(*at))),
            DeliveryOutcome::Dead => ("dead", None),
            DeliveryOutcome::Paused(_) => ("pending", None),
            DeliveryOutcome::Skipped => ("skipped", None),
        };
        let counted = attempt.is_some();
        tx.prepare_cached(
            "UPDATE notify_outbox SET state = ?2, attempts = attempts + ?3,
                next_attempt_at = COALESCE(?4, next_attempt_at) WHERE id = ?1",
        )?
        .execute(params![outbox_id, state, i64::from(counted), next])?;
    }
    match outcome {
        DeliveryOutcome::Delivered => {
            tx.prepare_cached(
                "UPDATE notifications SET failures_in_a_row = 0, last_delivery_at = ?2 WHERE id = ?1",
            )?
            .execute(params![notification_id, at])?;
        }
        DeliveryOutcome::Retry {
            at: next,
            receiver_wait,
        } => {
            tx.prepare_cached(
                "UPDATE notifications SET failures_in_a_row = failures_in_a_row + 1,
                    blocked_until = CASE WHEN ?3 THEN MAX(blocked_until, ?2) ELSE blocked_until END
                 WHERE id = ?1",
            )?
            .execute(params![notification_id, to_millis(*next), receiver_wait])?;
        }
        DeliveryOutcome::Dead => {
            tx.prepare_cached(
                "UPDATE notifications SET failures_in_a_row = failures_in_a_row + 1 WHERE id = ?1",
            )?
            .execute([notification_id])?;
        }
        DeliveryOutcome::Paused(reason) => {
            tx.prepare_cached(
                "UPDATE notifications SET failures_in_a_row = failures_in_a_row + 1,
                    enabled = 0, disabled_reason = ?2 WHERE id = ?1",
            )?
            .execute(params![notification_id, reason])?;
        }
        DeliveryOutcome::Skipped => {}
    }
    tx.commit()?;
    Ok(())
}

/// Deliveries not yet made, for the benchmark and tests.
pub fn pending_count(conn: &Connection) -> Result<u64, DbError> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM notify_outbox WHERE state = 'pending'")?
        .query_row([], |r| r.get(0))?;
    Ok(n as u64)
}
