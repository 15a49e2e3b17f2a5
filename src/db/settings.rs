//! SQL for what the running server records for the command line: its public URL.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

const PUBLIC_URL: &str = "public_url";

pub fn set_public_url(conn: &Connection, url: &str) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO server_settings (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![PUBLIC_URL, url],
    )?;
    Ok(())
}

pub fn public_url(conn: &Connection) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached("SELECT value FROM server_settings WHERE name = ?1")?
        .query_row([PUBLIC_URL], |r| r.get(0))
        .optional()?)
}
