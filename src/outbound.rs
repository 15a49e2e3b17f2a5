//! What both outbound HTTP clients, the summarizers' and the notification sender's, read alike
//! in an answer: how long it asks them to wait.

use std::time::Duration;

/// A day: the longest wait an answer may ask for and get; past it, the caller's own backoff
/// decides.
const LONGEST_WAIT_SECS: f64 = 86_400.0;

/// The `Retry-After` header in seconds (the HTTP-date form is rare from APIs and ignored).
pub(crate) fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    seconds(headers.get("retry-after")?.to_str().ok()?)
}

/// A wait given in seconds, fractions allowed; none when it is negative or not a number.
pub(crate) fn seconds(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(LONGEST_WAIT_SECS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_seconds_capped_at_a_day() {
        let cases = [
            ("30", Some(30_000)),
            (" 1.5 ", Some(1_500)),
            ("1e9", Some(86_400_000)),
            ("-1", None),
            ("NaN", None),
            ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ];
        for (text, millis) in cases {
            assert_eq!(seconds(text), millis.map(Duration::from_millis), "{text:?}");
        }
    }
}
