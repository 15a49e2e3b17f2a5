//! Notifications: where a project's push summaries are sent (the domain types, parsed at the
//! edge), and the delivery machinery in the modules below.
//!
//! Contact points: the admin API and the CLI create notifications through `manage`; the
//! database's triggers fill the outbox when a summary becomes final; [`deliver`] sends what is
//! due on its own threads, through [`format`] (one message per platform), [`sign`] (Standard
//! Webhooks) and [`send`] (the HTTP client), on the [`schedule`] of retries.

pub mod deliver;
pub mod filter;
pub mod format;
pub mod schedule;
pub mod send;
pub mod sign;

use std::fmt;

use chrono::{DateTime, Utc};
use url::Url;

use crate::domain::ProjectName;
use crate::secret::Secret;
pub use filter::{AuthorFilter, BranchFilter};

crate::domain::text_enum! {
    /// Where a notification goes, and so how its message is shaped.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Kind {
        Slack = "slack",
        Discord = "discord",
        Teams = "teams",
        Mattermost = "mattermost",
        Ntfy = "ntfy",
        Webhook = "webhook",
    }
}

/// A notification's field that was refused, and why; the admin API answers 400 naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidField {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// A receiver's URL. The path of a Slack or Discord URL is a credential, so `Debug` and
/// [`ReceiverUrl::masked`] show only the scheme, host and first path segment.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceiverUrl(Url);

/// Longer URLs are no receiver's; this keeps a pasted document out of the table.
const MAX_URL_LEN: usize = 2048;

impl ReceiverUrl {
    pub fn parse(raw: &str, kind: Kind) -> Result<ReceiverUrl, InvalidField> {
        let bad = |reason: &str| InvalidField::new("url", reason);
        let raw = raw.trim();
        if raw.len() > MAX_URL_LEN {
            return Err(bad("use at most 2048 characters"));
        }
        let url = Url::parse(raw).map_err(|_| bad("not a URL; use https://..."))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("use an http:// or https:// URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("the URL has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "the URL must not carry a user name or password; use --token",
            ));
        }
        if url.fragment().is_some() {
            return Err(bad("the URL must not have a #fragment"));
        }
        if kind == Kind::Ntfy && ntfy_topic(&url).is_none() {
            return Err(bad(
                "an ntfy URL names the topic as its last path segment, like https://ntfy.sh/mytopic",
            ));
        }
        Ok(ReceiverUrl(url))
    }

    /// The URL a request goes to; for the sender only.
    pub fn expose(&self) -> &Url {
        &self.0
    }

    /// `host[:port]`, what logs and errors may name.
    pub fn host(&self) -> String {
        match self.0.port() {
            Some(port) => format!("{}:{port}", self.0.host_str().unwrap_or_default()),
            None => self.0.host_str().unwrap_or_default().to_owned(),
        }
    }

    /// Scheme, host and the first path segment; the rest is replaced by `***`.
    pub fn masked(&self) -> String {
        let mut segments = self.0.path_segments().into_iter().flatten();
        let first = segments.next().unwrap_or_default();
        let more = segments.next().is_some() || self.0.query().is_some();
        format!(
            "{}://{}/{}{}",
            self.0.scheme(),
            self.host(),
            first,
            if more { "/***" } else { "" }
        )
    }

    /// ntfy: the server root the JSON is published to, and the topic.
    pub fn ntfy_parts(&self) -> Option<(Url, String)> {
        let topic = ntfy_topic(&self.0)?;
        let mut root = self.0.clone();
        root.path_segments_mut().ok()?.pop();
        Some((root, topic))
    }
}

fn ntfy_topic(url: &Url) -> Option<String> {
    let topic = url.path_segments()?.next_back()?;
    (!topic.is_empty()).then(|| topic.to_owned())
}

impl fmt::Debug for ReceiverUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReceiverUrl({})", self.masked())
    }
}

/// A notification's free-text label.
pub fn parse_label(raw: Option<&str>) -> Result<String, InvalidField> {
    let label = raw.unwrap_or_default().trim();
    if label.chars().count() > 100 {
        return Err(InvalidField::new("label", "use at most 100 characters"));
    }
    if label.chars().any(char::is_control) {
        return Err(InvalidField::new(
            "label",
            "control characters are not allowed",
        ));
    }
    Ok(label.to_owned())
}

/// An optional access token (ntfy's `tk_...`, or a bearer token for a generic webhook).
pub fn parse_token(raw: Option<&str>, kind: Kind) -> Result<Option<Secret>, InvalidField> {
    let Some(token) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if !matches!(kind, Kind::Ntfy | Kind::Webhook) {
        return Err(InvalidField::new(
            "token",
            "only ntfy and webhook notifications take a token",
        ));
    }
    if token.len() > 512 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(InvalidField::new(
            "token",
            "use at most 512 printable ASCII characters",
        ));
    }
    Ok(Some(Secret::new(token)))
}

/// What a new notification is made of, all fields already parsed.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub kind: Kind,
    pub url: ReceiverUrl,
    pub label: String,
    pub branches: BranchFilter,
    pub exclude_authors: AuthorFilter,
    pub token: Option<Secret>,
    /// The Standard Webhooks signing secret (`whsec_...`), for `webhook` only.
    pub secret: Option<Secret>,
}

/// A stored notification: what it was made of, and its state since.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: i64,
    pub project: ProjectName,
    pub settings: NewNotification,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failures_in_a_row: u32,
    pub last_delivery_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One attempt to reach a receiver, as the deliveries log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The push sent; None for a test message.
    pub push_id: Option<String>,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub ms: u64,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_url_keeps_the_scheme_host_and_first_segment_only() {
        let url = ReceiverUrl::parse(
            "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
            Kind::Slack,
        )
        .unwrap();
        assert_eq!(url.masked(), "https://hooks.slack.com/services/***");
        assert!(!format!("{url:?}").contains("SECRET"));
        let bare = ReceiverUrl::parse("http://127.0.0.1:8080/hook", Kind::Webhook).unwrap();
        assert_eq!(bare.masked(), "http://127.0.0.1:8080/hook");
    }

    #[test]
    fn urls_without_http_a_host_or_with_credentials_are_refused_naming_the_field() {
        for raw in [
            "ftp://x/y",
            "not a url",
            "https://user:pw@example.com/x",
            "https://e.com/a#f",
        ] {
            let e = ReceiverUrl::parse(raw, Kind::Slack).unwrap_err();
            assert_eq!(e.field, "url", "{raw}");
        }
        assert!(ReceiverUrl::parse("https://ntfy.sh/", Kind::Ntfy).is_err());
    }

    #[test]
    fn an_ntfy_url_splits_into_its_server_root_and_topic() {
        let url = ReceiverUrl::parse("https://ntfy.example/alerts", Kind::Ntfy).unwrap();
        let (root, topic) = url.ntfy_parts().unwrap();
        assert_eq!(root.as_str(), "https://ntfy.example/");
        assert_eq!(topic, "alerts");
    }
}
