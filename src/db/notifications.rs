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
    let deleted = conn.execute(
        "DELETE FROM notifications WHERE project_id = ?1 AND id = ?2",
        params![project_id, id],
    )?;
    found(deleted)
}

/// `Ok` when a statement changed the notification it named, `NotFound` when there was none.
fn found(changed: usize) -> Result<(), DbError> {
    match changed {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}

/// Pauses (with a reason) or resumes; resuming clears the failure count and any backoff.
pub fn set_enabled(
    conn: &Connection,
    project_id: i64,
    id: i64,
    enabled: bool,
    reason: Option<&str>,
) -> Result<(), DbError> {
    let changed = conn.execute(
        "UPDATE notifications SET enabled = ?3, disabled_reason = ?4,
            failures_in_a_row = CASE WHEN ?3 THEN 0 ELSE failures_in_a_row END,
            blocked_until = CASE WHEN ?3 THEN 0 ELSE blocked_until END
         WHERE project_id = ?1 AND id = ?2",
        params![project_id, id, enabled, reason],
    )?;
    found(changed)
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

/// The notification with the oldest due delivery, not in `busy` and not backing off, and up to
/// `limit` of its due deliveries, oldest first (empty when nothing is due). One probe of the
/// lane index per notification, then one range of it: the cost does not grow with the backlog.
pub fn next_due(
    conn: &mut Connection,
    now: DateTime<Utc>,
    busy: &[i64],
    limit: usize,
) -> Result<Vec<DueDelivery>, DbError> {
    let busy = serde_json::to_string(busy).expect("ids always serialize");
    let now = to_millis(now);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let lane: Option<i64> = tx
        .prepare_cached(
            "SELECT n.id, (SELECT o.next_attempt_at FROM notify_outbox o
                    WHERE o.notification_id = n.id AND o.state = 'pending'
                    ORDER BY o.next_attempt_at LIMIT 1) AS due
             FROM notifications n
             WHERE n.enabled = 1 AND n.blocked_until <= ?1 AND due <= ?1
               AND n.id NOT IN (SELECT value FROM json_each(?2))
             ORDER BY due, n.id LIMIT 1",
        )?
        .query_row(params![now, busy], |r| r.get(0))
        .optional()?;
    let Some(lane) = lane else {
        return Ok(Vec::new());
    };
    let notification = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications n JOIN projects pr ON pr.id = n.project_id
             WHERE n.id = ?1"
        ))?
        .query_row([lane], from_row)?;
    let rows: Vec<(i64, u32, i64, Push)> = tx
        .prepare_cached(&format!(
            "SELECT o.id, o.attempts, o.push_id, {PUSH_COLUMNS}
             FROM notify_outbox o JOIN pushes p ON p.id = o.push_id
             WHERE o.notification_id = ?1 AND o.state = 'pending' AND o.next_attempt_at <= ?2
             ORDER BY o.next_attempt_at, o.id LIMIT ?3"
        ))?
        .query_map(
            params![lane, now, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                let push = push_from_row(r, 3, notification.project.as_str())?;
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, push))
            },
        )?
        .collect::<Result<_, _>>()?;
    let mut due = Vec::with_capacity(rows.len());
    for (outbox_id, attempts, push_row, push) in rows {
        due.push(DueDelivery {
            outbox_id,
            attempts,
            notification: notification.clone(),
            commits: commits(&tx, push_row)?,
            push,
        });
    }
    tx.commit()?;
    Ok(due)
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
            settings: NewNotification {
                kind,
                url: ReceiverUrl::parse(&url, kind).map_err(|_| corrupt("receiver URL"))?,
                label: r.get(c(4))?,
                branches: BranchFilter::parse(&strings(&branches)?)
                    .map_err(|_| corrupt("branch pattern"))?,
                exclude_authors: AuthorFilter::parse(&strings(&authors)?)
                    .map_err(|_| corrupt("author name"))?,
                token: r.get::<_, Option<String>>(c(7))?.map(Secret::new),
                secret: r.get::<_, Option<String>>(c(8))?.map(Secret::new),
            },
            enabled: r.get(c(9))?,
            disabled_reason: r.get(c(10))?,
            failures_in_a_row: r.get(c(11))?,
            last_delivery_at: r.get::<_, Option<i64>>(c(12))?.map(from_millis),
            created_at: from_millis(r.get(c(13))?),
        })
    }
}

/// When the next pending delivery of an enabled notification not in `busy` falls due.
pub fn next_due_at(conn: &Connection, busy: &[i64]) -> Result<Option<DateTime<Utc>>, DbError> {
    let busy = serde_json::to_string(busy).expect("ids always serialize");
    let next: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(MAX(n.blocked_until, (SELECT o.next_attempt_at FROM notify_outbox o
                    WHERE o.notification_id = n.id AND o.state = 'pending'
                    ORDER BY o.next_attempt_at LIMIT 1)))
             FROM notifications n
             WHERE n.enabled = 1 AND n.id NOT IN (SELECT value FROM json_each(?1))",
        )?
        .query_row([busy], |r| r.get(0))?;
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

/// What became of one delivery (or test message: no `outbox_id`), to be recorded.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub notification_id: i64,
    pub outbox_id: Option<i64>,
    /// None for a skipped delivery: nothing was sent. The row written is the one the
    /// deliveries log reads back, so it is the same type.
    pub attempt: Option<DeliveryAttempt>,
    pub outcome: DeliveryOutcome,
}

/// Logs the attempts and applies their outcomes, in order, in one transaction: the delivery
/// threads take SQLite's one write lock once per batch, not once per message, beside the
/// group-committing ingest writer.
pub fn record(conn: &mut Connection, records: &[DeliveryRecord]) -> Result<(), DbError> {
    if records.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    record_in(&tx, records)?;
    tx.commit()?;
    Ok(())
}

/// [`record`] inside the caller's transaction: the ingest writer's, which records the delivery
/// threads' batches with the pushes it commits.
pub fn record_in(tx: &Connection, records: &[DeliveryRecord]) -> Result<(), DbError> {
    let mut logged: Vec<i64> = Vec::new();
    // A run of deliveries to one notification updates its row once, with the last one's time;
    // any other outcome applies that first, so the row ends as if each were applied in turn.
    let mut delivered: Vec<(i64, Option<i64>)> = Vec::new();
    for r in records {
        if r.outcome == DeliveryOutcome::Delivered {
            let at = r.attempt.as_ref().map(|a| to_millis(a.at));
            match delivered
                .iter_mut()
                .find(|(id, _)| *id == r.notification_id)
            {
                Some(last) => last.1 = at,
                None => delivered.push((r.notification_id, at)),
            }
        } else if let Some(i) = delivered
            .iter()
            .position(|(id, _)| *id == r.notification_id)
        {
            let (id, at) = delivered.swap_remove(i);
            mark_delivered(tx, id, at)?;
        }
        apply(tx, r)?;
        if r.attempt.is_some() && !logged.contains(&r.notification_id) {
            logged.push(r.notification_id);
        }
    }
    for (id, at) in delivered {
        mark_delivered(tx, id, at)?;
    }
    for notification_id in logged {
        tx.prepare_cached(
            "DELETE FROM notify_attempts WHERE notification_id = ?1 AND id <= (
                SELECT id FROM notify_attempts WHERE notification_id = ?1
                ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )?
        .execute(params![notification_id, KEPT_ATTEMPTS])?;
    }
    Ok(())
}

fn mark_delivered(tx: &Connection, notification_id: i64, at: Option<i64>) -> Result<(), DbError> {
    tx.prepare_cached(
        "UPDATE notifications SET failures_in_a_row = 0, last_delivery_at = ?2 WHERE id = ?1",
    )?
    .execute(params![notification_id, at])?;
    Ok(())
}

fn apply(tx: &Connection, r: &DeliveryRecord) -> Result<(), DbError> {
    let (notification_id, outcome) = (r.notification_id, &r.outcome);
    if let Some(a) = &r.attempt {
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
    }
    if let Some(outbox_id) = r.outbox_id {
        let (state, next) = match outcome {
            DeliveryOutcome::Delivered => ("done", None),
            DeliveryOutcome::Retry { at, .. } => ("pending", Some(to_millis(*at))),
            DeliveryOutcome::Dead => ("dead", None),
            DeliveryOutcome::Paused(_) => ("pending", None),
            DeliveryOutcome::Skipped => ("skipped", None),
        };
        let counted = r.attempt.is_some();
        tx.prepare_cached(
            "UPDATE notify_outbox SET state = ?2, attempts = attempts + ?3,
                next_attempt_at = COALESCE(?4, next_attempt_at) WHERE id = ?1",
        )?
        .execute(params![outbox_id, state, i64::from(counted), next])?;
    }
    match outcome {
        // See `record_in`.
        DeliveryOutcome::Delivered => {}
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
    Ok(())
}

/// Deliveries not yet made, for the benchmark and tests.
pub fn pending_count(conn: &Connection) -> Result<u64, DbError> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM notify_outbox WHERE state = 'pending'")?
        .query_row([], |r| r.get(0))?;
    Ok(n as u64)
}
