//! The Atom 1.0 (RFC 4287) document of a page of pushes: exactly one `id`, `title` and
//! `updated` per feed and per entry, entry ids that never change (`urn:uuid:<push id>`), and an
//! entry's `updated` that moves when its summary is replaced. Written by hand: it is a few
//! dozen lines of text and XML escaping, not worth an XML dependency.

use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::Push;

/// What the feed says about itself.
pub struct FeedHead<'a> {
    /// A stable `urn:uuid:` for this project and these filters.
    pub id: &'a str,
    pub title: &'a str,
    /// This feed's own URL (without any credential).
    pub self_url: &'a str,
    /// Where a person reads the same pushes: the dashboard.
    pub alternate_url: &'a str,
}

/// When the feed last changed: its newest entry's `updated` (the Unix epoch when empty).
pub fn updated(pushes: &[Push]) -> DateTime<Utc> {
    pushes
        .iter()
        .map(|p| p.updated_at)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// The feed's stable id: a UUID (version 8, RFC 9562) hashed from what identifies the feed.
pub fn feed_id(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"git-push-tracker atom feed\0");
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.finalize()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format!("urn:uuid:{}", uuid::Uuid::from_bytes(bytes))
}

/// The document, entries in the order given (newest first).
pub fn render(head: &FeedHead<'_>, pushes: &[Push]) -> String {
    let mut out = String::with_capacity(1024 + pushes.len() * 768);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    let _ = writeln!(out, "  <id>{}</id>", escape(head.id));
    let _ = writeln!(out, "  <title type=\"text\">{}</title>", escape(head.title));
    let _ = writeln!(out, "  <updated>{}</updated>", date(updated(pushes)));
    let _ = writeln!(
        out,
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>",
        escape(head.self_url)
    );
    let _ = writeln!(
        out,
        "  <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>",
        escape(head.alternate_url)
    );
    let _ = writeln!(out, "  <generator>Git Push Tracker</generator>");
    for push in pushes {
        entry(&mut out, push);
    }
    out.push_str("</feed>\n");
    out
}

fn entry(out: &mut String, push: &Push) {
    let first = push
        .summary
        .lines()
        .map(|l| l.trim().trim_start_matches("- ").trim())
        .find(|l| !l.is_empty())
        .unwrap_or("push");
    let author = if push.pusher.trim().is_empty() {
        "unknown"
    } else {
        push.pusher.as_str()
    };
    out.push_str("  <entry>\n");
    let _ = writeln!(out, "    <id>urn:uuid:{}</id>", escape(&push.id));
    let _ = writeln!(
        out,
        "    <title type=\"text\">{}: {}</title>",
        escape(&push.ref_name),
        escape(first)
    );
    let _ = writeln!(out, "    <updated>{}</updated>", date(push.updated_at));
    let _ = writeln!(out, "    <published>{}</published>", date(push.received_at));
    let _ = writeln!(out, "    <author><name>{}</name></author>", escape(author));
    if let Some(url) = &push.compare_url {
        let _ = writeln!(
            out,
            "    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>",
            escape(url)
        );
    }
    let _ = writeln!(out, "    <category term=\"{}\"/>", escape(&push.repository));
    let _ = writeln!(
        out,
        "    <content type=\"text\">{}</content>",
        escape(&push.summary)
    );
    out.push_str("  </entry>\n");
}

fn date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Text as XML character data or an attribute value; characters XML 1.0 cannot carry at all
/// (most C0 controls) become U+FFFD, so a payload or a model cannot make the feed unreadable.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_characters_xml_cannot_hold_are_escaped() {
        assert_eq!(
            escape("a<b>&\"c'\u{0}\u{1b}\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{fffd}\u{fffd}\n"
        );
    }

    #[test]
    fn a_feed_id_is_a_stable_version_8_uuid() {
        let a = feed_id(&["x", "main"]);
        assert_eq!(a, feed_id(&["x", "main"]));
        assert_ne!(a, feed_id(&["x", ""]));
        let uuid: uuid::Uuid = a.strip_prefix("urn:uuid:").unwrap().parse().unwrap();
        assert_eq!(uuid.get_version_num(), 8);
    }
}
