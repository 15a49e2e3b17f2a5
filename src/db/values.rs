//! How domain enums are stored: each one's column value, and an error (never a default) for a
//! value this binary does not know, so a corrupt or hand-edited row is reported, not relabelled.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::domain::{ProjectName, Provider, RefKind, SummaryStatus};

/// A stored text column holds a value no variant of its enum has.
#[derive(Debug, thiserror::Error)]
#[error("unknown stored {kind} {value:?}")]
pub struct UnknownStoredValue {
    pub kind: &'static str,
    pub value: String,
}

fn parse_text<T>(
    value: ValueRef<'_>,
    kind: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> FromSqlResult<T> {
    let text = value.as_str()?;
    parse(text).ok_or_else(|| {
        FromSqlError::Other(Box::new(UnknownStoredValue {
            kind,
            value: text.chars().take(64).collect(),
        }))
    })
}

macro_rules! stored_as_text {
    ($type:ty, $kind:literal) => {
        stored_as_text!($type, $kind, <$type>::parse);
    };
    ($type:ty, $kind:literal, $parse:expr) => {
        impl ToSql for $type {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $type {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                parse_text(value, $kind, $parse)
            }
        }
    };
}

stored_as_text!(SummaryStatus, "summary status");
stored_as_text!(ProjectName, "project name", |s| ProjectName::parse(s).ok());
stored_as_text!(Provider, "provider");
stored_as_text!(RefKind, "ref type");
stored_as_text!(crate::notify::Kind, "notification kind");

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::db::DbError;

    #[test]
    fn every_status_reads_back_as_itself() {
        let conn = Connection::open_in_memory().unwrap();
        for status in SummaryStatus::ALL {
            let back: SummaryStatus = conn.query_row("SELECT ?1", [status], |r| r.get(0)).unwrap();
            assert_eq!(back, status);
        }
    }

    #[test]
    fn an_unknown_stored_value_is_an_error_naming_it_not_a_default() {
        let conn = Connection::open_in_memory().unwrap();
        let read = |sql: &str| -> DbError {
            conn.query_row(sql, [], |r| r.get::<_, Provider>(0))
                .map_err(DbError::from)
                .unwrap_err()
        };
        let error = read("SELECT 'sourcehut'");
        assert!(
            matches!(&error, DbError::CorruptValue(e) if e.value == "sourcehut"),
            "{error:?}"
        );
        let chain = crate::error_chain(&error);
        assert!(chain.contains("unknown stored provider"), "{chain}");
        let status = conn
            .query_row("SELECT 'done'", [], |r| r.get::<_, SummaryStatus>(0))
            .map_err(DbError::from)
            .unwrap_err();
        assert!(matches!(status, DbError::CorruptValue(_)), "{status:?}");
    }
}
