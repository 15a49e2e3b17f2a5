//! The model client Gemini and the OpenAI-compatible servers share: one agent, one POST, the
//! timeout and transport errors, error text that never holds a key. What differs per API (the
//! request, reading the answer, sorting the errors) is a [`ChatBackend`], in `gemini` and `openai`.

use std::fmt;
use std::time::Duration;

use url::Url;

use super::{SummarizeError, Summarizer, SummaryInput};
use crate::outbound;
use crate::secret::Secret;

/// Provider messages are cut to this many characters before they reach an error or a log.
pub(crate) const MAX_PROVIDER_MESSAGE_CHARS: usize = 300;
/// A summary reply is small; anything larger than this is not one.
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// An HTTP answer of any status, read in full.
pub struct RawResponse {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

fn agent(timeout: Duration, connect_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        // Error statuses must come back as responses: their bodies say what to do.
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(connect_timeout))
        .build()
        .into()
}

/// What every model API is reached with; the backend says what to send and how to read it.
pub struct Endpoint {
    /// The model's name, which is also the summary source.
    pub model: String,
    /// Where the request goes; it never carries the key.
    pub url: String,
    /// The whole request's timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The key: sent in a header by the backend, scrubbed from every error text.
    pub secret: Option<Secret>,
}

/// What one model API does its own way; [`ModelClient`] does the rest.
pub trait ChatBackend: Send + Sync {
    /// Names the API in debug logs.
    const NAME: &'static str;
    /// The settings `Debug` shows; their own `Debug` hides the key.
    type Config: fmt::Debug;

    fn config(&self) -> &Self::Config;
    fn headers(&self) -> Vec<(&'static str, &str)>;
    fn body(&self, input: &SummaryInput<'_>) -> serde_json::Value;
    /// The summary in a 2xx answer.
    fn read_answer(&self, body: &str) -> Result<String, SummarizeError>;
    /// Retry, postpone or give up, for an answer of any other status.
    fn classify_error(&self, response: &RawResponse) -> SummarizeError;
}

/// A summarizer over HTTP: one POST per push to the backend's API.
pub struct ModelClient<B> {
    endpoint: Endpoint,
    backend: B,
    agent: ureq::Agent,
    /// `host[:port]` of the URL, for transport errors.
    host: String,
}

impl<B: ChatBackend> ModelClient<B> {
    pub(crate) fn with_backend(endpoint: Endpoint, backend: B) -> Self {
        ModelClient {
            agent: agent(endpoint.timeout, endpoint.connect_timeout),
            host: host_of(&endpoint.url),
            endpoint,
            backend,
        }
    }

    #[cfg(test)]
    pub(crate) fn backend(&self) -> &B {
        &self.backend
    }

    #[cfg(test)]
    pub(crate) fn url(&self) -> &str {
        &self.endpoint.url
    }

    /// POSTs JSON and reads the answer; transport failures come back as transient errors.
    fn post_json(&self, body: &serde_json::Value) -> Result<RawResponse, SummarizeError> {
        let endpoint = &self.endpoint;
        let fail = |e: &ureq::Error| {
            transport_error(e, &self.host, endpoint.timeout, endpoint.secret.as_ref())
        };
        let mut request = self.agent.post(&endpoint.url);
        for (name, value) in self.backend.headers() {
            request = request.header(name, value);
        }
        let mut response = request.send_json(body).map_err(|e| fail(&e))?;
        let status = response.status().as_u16();
        let retry_after = outbound::retry_after(response.headers());
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|e| fail(&e))?;
        Ok(RawResponse {
            status,
            retry_after,
            body,
        })
    }
}

impl<B: ChatBackend> fmt::Debug for ModelClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelClient")
            .field("api", &B::NAME)
            .field("config", self.backend.config())
            .finish_non_exhaustive()
    }
}

impl<B: ChatBackend> Summarizer for ModelClient<B> {
    fn source(&self) -> &str {
        &self.endpoint.model
    }

    fn summarize(&self, input: &SummaryInput<'_>) -> Result<String, SummarizeError> {
        let body = self.backend.body(input);
        let response = self.post_json(&body)?;
        let result = if (200..300).contains(&response.status) {
            self.backend.read_answer(&response.body)
        } else {
            Err(self.backend.classify_error(&response))
        };
        if let Err(e) = &result {
            tracing::debug!(api = B::NAME, model = %self.endpoint.model, status = response.status, error = %e, "the model gave no summary");
        }
        result
    }
}

/// A failure worth retrying later, with no wait asked for.
pub(crate) fn transient(reason: impl Into<String>) -> SummarizeError {
    SummarizeError::Transient {
        reason: reason.into(),
        retry_after: None,
    }
}

pub(crate) fn permanent(reason: String) -> SummarizeError {
    SummarizeError::Permanent { reason }
}

fn transport_error(
    error: &ureq::Error,
    host: &str,
    timeout: Duration,
    secret: Option<&Secret>,
) -> SummarizeError {
    let reason = match error {
        ureq::Error::Timeout(_) => {
            format!("timed out after {}s waiting for {host}", seconds(timeout))
        }
        ureq::Error::HostNotFound => format!("could not resolve host {host}"),
        ureq::Error::ConnectionFailed => format!("could not connect to {host}"),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            format!("timed out after {}s waiting for {host}", seconds(timeout))
        }
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::NotConnected
            ) =>
        {
            format!("could not connect to {host}: {io}")
        }
        other => format!("request to {host} failed: {other}"),
    };
    SummarizeError::Transient {
        reason: scrub(&reason, secret),
        retry_after: None,
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", d.as_secs())
    } else {
        format!("{s:.1}")
    }
}

/// `host[:port]` of a parsed URL: no user info, path or query, which might carry a credential.
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// `host[:port]` of a URL, without user info, path or query (which might carry a credential).
pub(crate) fn host_of(url: &str) -> String {
    parse_lenient(url).map_or_else(|| "<not a URL>".to_owned(), |(url, _)| authority(&url))
}

/// A base URL fit for a log line: scheme, host and path, no user info or query.
pub(crate) fn display_url(url: &str) -> String {
    match parse_lenient(url) {
        Some((url, with_scheme)) => {
            let path = url.path().trim_end_matches('/');
            let scheme = if with_scheme { url.scheme() } else { "" };
            let separator = if with_scheme { "://" } else { "" };
            format!("{scheme}{separator}{}{path}", authority(&url))
        }
        None => "<not a URL>".to_owned(),
    }
}

/// Parses a URL that may lack its scheme (`localhost:11434/v1`, a common slip in settings);
/// the flag says whether the scheme was given.
fn parse_lenient(raw: &str) -> Option<(Url, bool)> {
    let raw = raw.trim();
    if let Some(url) = Url::parse(raw).ok().filter(Url::has_host) {
        return Some((url, true));
    }
    Url::parse(&format!("http://{raw}"))
        .ok()
        .filter(Url::has_host)
        .map(|url| (url, false))
}

/// True for an absolute http(s) URL with a host.
pub(crate) fn is_http_url(raw: &str) -> bool {
    Url::parse(raw.trim()).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    })
}

/// Gemini's `retryDelay`, such as `17s` or `0.5s`.
pub(crate) fn parse_delay(value: &str) -> Option<Duration> {
    outbound::seconds(value.trim().strip_suffix('s')?)
}

/// A provider's message, cut short, on one line, with the key removed if the provider echoed it.
pub(crate) fn scrub(message: &str, secret: Option<&Secret>) -> String {
    let mut text = message.replace(['\r', '\n'], " ");
    if let Some(secret) = secret.map(Secret::expose).filter(|s| !s.is_empty()) {
        text = text.replace(secret, "[redacted]");
    }
    if text.chars().count() > MAX_PROVIDER_MESSAGE_CHARS {
        text = text
            .chars()
            .take(MAX_PROVIDER_MESSAGE_CHARS - 1)
            .collect::<String>()
            + "…";
    }
    // Cutting could have left a prefix of the key at the end; a long prefix is still a leak.
    if let Some(secret) = secret.map(Secret::expose).filter(|s| s.len() >= 8) {
        for keep in (8..secret.len()).rev() {
            let prefix = &secret[..keep];
            if !secret.is_char_boundary(keep) {
                continue;
            }
            if let Some(at) = text.find(prefix) {
                text.replace_range(at..at + prefix.len(), "[redacted]");
                break;
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_in_seconds_and_fractions() {
        assert_eq!(parse_delay("17s"), Some(Duration::from_secs(17)));
        assert_eq!(parse_delay("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_delay("soon"), None);
    }

    #[test]
    fn scrubbing_removes_the_key_and_caps_the_length() {
        let key = Secret::new("AIzaSyTHISISAKEY1234567890");
        let msg = format!("API key not valid: {}", key.expose());
        assert_eq!(scrub(&msg, Some(&key)), "API key not valid: [redacted]");
        let long = format!("{}{}", "x".repeat(290), key.expose());
        let out = scrub(&long, Some(&key));
        assert!(!out.contains("AIzaSyTHIS"), "{out}");
        assert!(out.chars().count() <= MAX_PROVIDER_MESSAGE_CHARS + 10);
    }

    #[test]
    fn urls_lose_credentials_before_display() {
        assert_eq!(
            host_of("https://u:p@example.com:8443/v1?key=x"),
            "example.com:8443"
        );
        assert_eq!(
            display_url("https://u:p@example.com/v1/?key=x"),
            "https://example.com/v1"
        );
        assert_eq!(display_url("u:p@localhost:11434/v1"), "localhost:11434/v1");
        assert!(is_http_url("http://localhost:11434/v1"));
        assert!(!is_http_url("localhost:11434/v1"));
        assert!(!is_http_url("ftp://example.com"));
    }
}
