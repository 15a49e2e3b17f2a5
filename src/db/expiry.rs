//! SQL for retention: deleting pushes (and, by cascade, their commits) received before a cutoff.
//! The thread that runs it is `crate::retention`.
//!
//! Age is measured by `received_at`, the time this server stored the push, not the git host's
//! `pushed_at`: a host's clock or a replayed old delivery cannot make a fresh row vanish at once.
//! Deletes go in small batches, each its own short transaction, so the ingest writer waits at
//! most one batch for the write lock.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};

use super::{DbError, to_millis};
use crate::domain::SummaryStatus;

/// Deletes up to `limit` pushes received before `cutoff`; returns how many went. A push the
/// worker is summarizing right now is left for the next run.
// The candidates are found outside the write transaction: the last batch of a run may scan the
// whole table, and in WAL mode a read never blocks the ingest writer. The write lock is then
// held only for deletes by primary key, which re-check the condition in case a row changed.
pub fn delete_batch(
    conn: &mut Connection,
    cutoff: DateTime<Utc>,
    limit: usize,
) -> Result<usize, DbError> {
    let cutoff = to_millis(cutoff);
    let ids = conn
        .prepare_cached(
            "SELECT id FROM pushes
             WHERE received_at < ?1 AND summary_status <> ?3
             ORDER BY id LIMIT ?2",
        )?
        .query_map(
            params![cutoff, limit as i64, SummaryStatus::InProgress],
            |r| r.get::<_, i64>(0),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut deleted = 0;
    {
        let mut delete = tx.prepare_cached(
            "DELETE FROM pushes
             WHERE id = ?1 AND received_at < ?2 AND summary_status <> ?3",
        )?;
        for id in &ids {
            deleted += delete.execute(params![id, cutoff, SummaryStatus::InProgress])?;
        }
    }
    tx.commit()?;
    Ok(deleted)
}
