//! SQL for the owner's credential: the admin token's hash and the dashboard sessions.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, to_millis};

/// The stored hash of the admin token, if one was ever set.
pub fn token_hash(conn: &Connection) -> Result<Option<[u8; 32]>, DbError> {
    let found: Option<Vec<u8>> = conn
        .prepare_cached("SELECT token_hash FROM admin_credential WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(found.and_then(|h| h.try_into().ok()))
}

/// Stores `hash` as the admin token; a different token also ends every session.
pub fn set_token_hash(
    conn: &mut Connection,
    hash: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let tx = conn.transaction()?;
    let changed = tx.execute(
        "INSERT INTO admin_credential (id, token_hash, created_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at
         WHERE token_hash <> excluded.token_hash",
        params![&hash[..], to_millis(now)],
    )?;
    if changed > 0 {
        tx.execute("DELETE FROM admin_sessions", [])?;
    }
    tx.commit()?;
    Ok(())
}

/// Records a new session; expired ones are swept on the way.
pub fn create_session(
    conn: &Connection,
    hash: &[u8; 32],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM admin_sessions WHERE expires_at <= ?1",
        [to_millis(now)],
    )?;
    conn.execute(
        "INSERT INTO admin_sessions (session_hash, created_at, expires_at) VALUES (?1, ?2, ?3)",
        params![&hash[..], to_millis(now), to_millis(expires_at)],
    )?;
    Ok(())
}

/// True when a session with this hash exists and has not expired.
pub fn session_is_live(
    conn: &Connection,
    hash: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM admin_sessions WHERE session_hash = ?1 AND expires_at > ?2")?
        .query_row(params![&hash[..], to_millis(now)], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn delete_session(conn: &Connection, hash: &[u8; 32]) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM admin_sessions WHERE session_hash = ?1",
        [&hash[..]],
    )?;
    Ok(())
}

pub fn delete_all_sessions(conn: &Connection) -> Result<(), DbError> {
    conn.execute("DELETE FROM admin_sessions", [])?;
    Ok(())
}
