//! Read-only SQL for `/metrics`: pushes by summary status, queue depth, database size.

use rusqlite::Connection;

use super::{DbError, summary_queue};
use crate::metrics::DbStats;

/// Reads what `/metrics` reports about the stored data. `wal_path` is the `-wal` file next to
/// the database, whose size SQLite's page counts do not include.
pub fn read(conn: &Connection, wal_path: &std::path::Path) -> Result<DbStats, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT summary_status, count(*) FROM pushes GROUP BY summary_status ORDER BY 1",
    )?;
    let pushes_by_status = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let wal = std::fs::metadata(wal_path).map(|m| m.len()).unwrap_or(0);
    Ok(DbStats {
        pushes_by_status,
        queue_depth: summary_queue::queue_depth(conn)?,
        size_bytes: (pages.max(0) as u64) * (page_size.max(0) as u64) + wal,
    })
}
