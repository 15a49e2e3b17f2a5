//! SQL for API keys: create, list, revoke, and authenticate a presented key by its hash.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, ProjectScope, from_millis, to_millis};
use crate::domain::{ApiKeyInfo, ProjectName};

/// `last_used_at` is written at most this often per key, so reads stay reads.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

pub fn create(
    conn: &Connection,
    project_id: i64,
    hash: &[u8; 32],
    prefix: &str,
    label: &str,
    now: DateTime<Utc>,
) -> Result<ApiKeyInfo, DbError> {
    conn.execute(
        "INSERT INTO api_keys (project_id, key_hash, prefix, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![project_id, &hash[..], prefix, label, to_millis(now)],
    )?;
    Ok(ApiKeyInfo {
        id: conn.last_insert_rowid(),
        label: label.to_owned(),
        prefix: prefix.to_owned(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    })
}

pub fn list(conn: &Connection, project_id: i64) -> Result<Vec<ApiKeyInfo>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, label, prefix, created_at, last_used_at, revoked_at FROM api_keys
         WHERE project_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([project_id], |r| {
        Ok(ApiKeyInfo {
            id: r.get(0)?,
            label: r.get(1)?,
            prefix: r.get(2)?,
            created_at: from_millis(r.get(3)?),
            last_used_at: r.get::<_, Option<i64>>(4)?.map(from_millis),
            revoked_at: r.get::<_, Option<i64>>(5)?.map(from_millis),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes one key of a project, named by its id or its display prefix.
pub fn revoke(
    conn: &Connection,
    project_id: i64,
    id_or_prefix: &str,
    now: DateTime<Utc>,
) -> Result<ApiKeyInfo, DbError> {
    let id: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM api_keys WHERE project_id = ?1
             AND (CAST(id AS TEXT) = ?2 OR prefix = ?2)",
        )?
        .query_row(params![project_id, id_or_prefix], |r| r.get(0))
        .optional()?;
    let id = id.ok_or(DbError::NotFound)?;
    conn.execute(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        params![id, to_millis(now)],
    )?;
    list(conn, project_id)?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or(DbError::NotFound)
}

/// Finds the live key with this hash and records its use (coarsely, to keep reads cheap).
pub fn authenticate(
    conn: &Connection,
    hash: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<Option<ProjectScope>, DbError> {
    let found = conn
        .prepare_cached(
            "SELECT k.id, k.project_id, p.name, k.last_used_at FROM api_keys k
             JOIN projects p ON p.id = k.project_id
             WHERE k.key_hash = ?1 AND k.revoked_at IS NULL",
        )?
        .query_row([&hash[..]], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, ProjectName>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .optional()?;
    let Some((key_id, project_id, project, last_used)) = found else {
        return Ok(None);
    };
    let now_ms = to_millis(now);
    if last_used.is_none_or(|t| now_ms - t >= LAST_USED_RESOLUTION_MS) {
        conn.execute(
            "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
            params![key_id, now_ms],
        )?;
    }
    Ok(Some(ProjectScope::new(project_id, project)))
}
