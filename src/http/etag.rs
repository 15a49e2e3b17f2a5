//! Validators for "nothing changed": strong ETags made from the stored versions (not from the
//! answer, so checking one costs a couple of index lookups, not a page), `If-None-Match`
//! matching, and HTTP dates for `Last-Modified` / `If-Modified-Since`.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::db::ProjectScope;

/// A quoted strong ETag over the project's version and everything else the answer depends on
/// (the request's parameters); this binary's version too, since the answer's form may change.
pub fn of_page(version: &(i64, i64), scope: &ProjectScope, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    hash.update(env!("CARGO_PKG_VERSION"));
    hash.update(scope.project().as_str());
    hash.update(version.0.to_le_bytes());
    hash.update(version.1.to_le_bytes());
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    format!("\"{}\"", hex::encode(&hash.finalize()[..16]))
}

/// True when an `If-None-Match` value names `etag` (or is `*`): the weak comparison RFC 9110
/// prescribes for it, so a `W/` that a proxy added still matches.
pub fn none_match(header: Option<&str>, etag: &str) -> bool {
    let Some(header) = header else {
        return false;
    };
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// An IMF-fixdate, as `Last-Modified` is written.
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// True when `If-Modified-Since` is at or after `modified` (to the second, as HTTP dates are).
pub fn not_modified_since(header: Option<&str>, modified: DateTime<Utc>) -> bool {
    let Some(since) = header.and_then(|h| DateTime::parse_from_rfc2822(h.trim()).ok()) else {
        return false;
    };
    since.timestamp() >= modified.timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_matches_a_listed_tag_a_weak_twin_or_a_star_and_nothing_else() {
        let tag = "\"abc\"";
        assert!(none_match(Some("\"abc\""), tag));
        assert!(none_match(Some("\"x\", W/\"abc\""), tag));
        assert!(none_match(Some("*"), tag));
        assert!(!none_match(Some("\"abcd\""), tag));
        assert!(!none_match(Some("abc"), tag));
        assert!(!none_match(None, tag));
    }

    #[test]
    fn an_http_date_reads_back_and_compares_to_the_second() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T10:20:30.900Z")
            .unwrap()
            .with_timezone(&Utc);
        let date = http_date(t);
        assert_eq!(date, "Tue, 01 Dec 2026 10:20:30 GMT");
        assert!(not_modified_since(Some(&date), t));
        assert!(!not_modified_since(
            Some(&date),
            t + chrono::Duration::seconds(1)
        ));
        assert!(!not_modified_since(Some("yesterday"), t));
    }
}
