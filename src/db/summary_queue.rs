//! SQL for the summary queue: claim the next due push, record each outcome, re-queue on request.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::pushes::{PUSH_COLUMNS, commits, push_from_row};
use super::{DbError, from_millis, to_millis};
use crate::domain::SummaryStatus::{self, Failed, InProgress, Pending, Summarized};
use crate::domain::{NewCommit, Push};

/// A status as an SQL literal. The partial indexes on `summary_status` are used only when the
/// query names the status in its text; a bound parameter would leave them out.
fn lit(status: SummaryStatus) -> String {
    format!("'{}'", status.as_str())
}

/// A push the worker has taken: `in_progress` until an outcome is recorded.
#[derive(Debug, Clone)]
pub struct ClaimedPush {
    pub row_id: i64,
    pub push: Push,
    pub commits: Vec<NewCommit>,
}

/// Puts pushes a killed process left `in_progress` back in the queue; run once at start.
pub fn requeue_abandoned(conn: &Connection, now: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(conn.execute(
        // The first condition is implied by the second; it lets SQLite use the small partial
        // index of unfinished pushes instead of scanning every row at start-up.
        &format!(
            "UPDATE pushes SET summary_status = ?1, next_attempt_at = ?2
             WHERE summary_status <> {} AND summary_status = {}",
            lit(Summarized),
            lit(InProgress)
        ),
        params![Pending, to_millis(now)],
    )?)
}

/// Takes the oldest due pending push, counting the attempt.
pub fn claim_next(
    conn: &mut Connection,
    now: DateTime<Utc>,
) -> Result<Option<ClaimedPush>, DbError> {
    // Most wake-ups find nothing due (every ingest batch wakes the worker): answer those with a
    // plain read, so an idle queue never takes the write lock the ingest writer needs.
    let due: bool = conn
        .prepare_cached(&format!(
            "SELECT EXISTS(SELECT 1 FROM pushes WHERE summary_status = {} AND next_attempt_at <= ?1)",
            lit(Pending)
        ))?
        .query_row([to_millis(now)], |r| r.get(0))?;
    if !due {
        return Ok(None);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let sql = format!(
        "SELECT p.id, pr.name, {PUSH_COLUMNS} FROM pushes p JOIN projects pr ON pr.id = p.project_id
         WHERE p.summary_status = {pending} AND p.next_attempt_at <= ?1
         ORDER BY p.next_attempt_at LIMIT 1",
        pending = lit(Pending)
    );
    let found = tx
        .prepare_cached(&sql)?
        .query_row([to_millis(now)], |r| {
            let project: String = r.get(1)?;
            Ok((r.get::<_, i64>(0)?, push_from_row(r, 2, &project)?))
        })
        .optional()?;
    let Some((row_id, mut push)) = found else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE pushes SET summary_status = ?2, attempts = attempts + 1 WHERE id = ?1",
        params![row_id, InProgress],
    )?;
    push.attempts += 1;
    push.summary_status = InProgress;
    let commits = commits(&tx, row_id)?;
    tx.commit()?;
    Ok(Some(ClaimedPush {
        row_id,
        push,
        commits,
    }))
}

pub fn complete(
    conn: &Connection,
    row_id: i64,
    summary: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE pushes SET summary_status = ?5, summary = ?2, summary_source = ?3,
            last_error = NULL, next_attempt_at = NULL, summarized_at = ?4 WHERE id = ?1",
        params![row_id, summary, source, to_millis(now), Summarized],
    )?;
    Ok(())
}

/// Whether a push sent back to the queue has used up the attempt it was claimed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The attempt failed and counts against the push.
    Spent,
    /// The attempt is not held against the push (a daily quota ran out).
    Refunded,
}

/// Back to the queue after an attempt, due again at `next_at`.
pub fn back_to_queue(
    conn: &Connection,
    row_id: i64,
    error: &str,
    next_at: DateTime<Utc>,
    attempt: Attempt,
) -> Result<(), DbError> {
    let sql = match attempt {
        Attempt::Spent => {
            "UPDATE pushes SET summary_status = ?4, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1"
        }
        Attempt::Refunded => {
            "UPDATE pushes SET summary_status = ?4, last_error = ?2, next_attempt_at = ?3,
            attempts = MAX(attempts - 1, 0) WHERE id = ?1"
        }
    };
    conn.execute(sql, params![row_id, error, to_millis(next_at), Pending])?;
    Ok(())
}

/// No more attempts: the push keeps its builtin summary and shows why.
pub fn fail(conn: &Connection, row_id: i64, error: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE pushes SET summary_status = ?3, last_error = ?2, next_attempt_at = NULL WHERE id = ?1",
        params![row_id, error, Failed],
    )?;
    Ok(())
}

/// When the next pending push falls due, if any is waiting.
pub fn next_due(conn: &Connection) -> Result<Option<DateTime<Utc>>, DbError> {
    let next: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT MIN(next_attempt_at) FROM pushes WHERE summary_status = {}",
            lit(Pending)
        ))?
        .query_row([], |r| r.get(0))?;
    Ok(next.map(from_millis))
}

/// Pushes waiting for the worker, across all projects.
pub fn queue_depth(conn: &Connection) -> Result<u64, DbError> {
    let n: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM pushes WHERE summary_status = {}",
            lit(Pending)
        ))?
        .query_row([], |r| r.get(0))?;
    Ok(n as u64)
}

/// Queues a push for a fresh round of attempts. `project_id` scopes the lookup when given.
pub fn requeue(
    conn: &Connection,
    public_id: &str,
    project_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let changed = conn.execute(
        "UPDATE pushes SET summary_status = ?4, attempts = 0, last_error = NULL,
            next_attempt_at = ?2
         WHERE public_id = ?1 AND (?3 IS NULL OR project_id = ?3) AND summary_status <> ?5",
        params![public_id, to_millis(now), project_id, Pending, InProgress],
    )?;
    if changed == 0 {
        let exists: bool = conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM pushes WHERE public_id = ?1 AND (?2 IS NULL OR project_id = ?2))",
            )?
            .query_row(params![public_id, project_id], |r| r.get(0))?;
        // Already being summarized: the running attempt will finish it.
        return if exists {
            Ok(())
        } else {
            Err(DbError::NotFound)
        };
    }
    Ok(())
}
