//! One POST to a receiver and what its answer means: delivered, retry (timeouts, 5xx, 429 with
//! the receiver's own wait), pause the notification (404, 410, 401, 403: the webhook is gone or
//! refuses us) or give up this message (3xx, since redirects are not followed, and other 4xx).
//! Errors name the host only; a response body is read up to a small cap and only its start is
//! kept.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::outbound;
use crate::secret::Secret;

use super::format::Outgoing;
use super::{InvalidField, ReceiverUrl};

/// The whole request, from connect to the last byte of the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Enough of a receiver's answer for its error text or Discord's `retry_after`.
const MAX_BODY_BYTES: u64 = 4096;
/// How much of an answer an error keeps.
const MAX_ERROR_CHARS: usize = 200;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt, after at least `wait` when the receiver asked for one.
    Retry {
        wait: Option<Duration>,
    },
    /// The receiver refuses or is gone: pause the notification with this reason.
    Pause {
        reason: String,
    },
    /// This message will never be accepted.
    GiveUp,
}

/// An attempt's result, as the deliveries log records it.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub elapsed: Duration,
    pub verdict: Verdict,
}

/// Sends messages; one agent (and its connection pool) shared by every delivery thread.
#[derive(Debug, Clone)]
pub struct Sender {
    agent: ureq::Agent,
    /// `--notify-deny-private`: refuse receivers on loopback, private and link-local addresses.
    deny_private: bool,
    timeout: Duration,
}

impl Default for Sender {
    fn default() -> Self {
        Sender::new(TIMEOUT)
    }
}

impl Sender {
    /// Refuses receivers whose host resolves to a loopback, private or link-local address.
    pub fn denying_private(self, deny: bool) -> Self {
        if deny == self.deny_private {
            return self;
        }
        Sender::build(self.timeout, deny)
    }

    pub fn new(timeout: Duration) -> Self {
        Sender::build(timeout, false)
    }

    fn build(timeout: Duration, deny_private: bool) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(CONNECT_TIMEOUT.min(timeout)))
            .user_agent(concat!("git-push-tracker/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            CheckedResolver { deny_private },
        );
        Sender {
            agent,
            deny_private,
            timeout,
        }
    }

    /// Whether this sender refuses private receivers (`--notify-deny-private`).
    pub fn denies_private(&self) -> bool {
        self.deny_private
    }

    /// Refuses, naming `url`, a receiver whose host is or resolves to an address
    /// `--notify-deny-private` refuses, when this sender refuses them. A host that does not
    /// resolve now is left to the send, which checks again (DNS answers change).
    pub fn check_receiver(&self, url: &ReceiverUrl) -> Result<(), InvalidField> {
        if !self.deny_private {
            return Ok(());
        }
        let Some(host) = url.expose().host_str() else {
            return Ok(());
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.expose().port_or_known_default().unwrap_or(443);
        let Ok(addresses) = (host, port).to_socket_addrs() else {
            return Ok(());
        };
        match addresses.into_iter().find(|a| is_private(a.ip())) {
            Some(a) => Err(InvalidField::new(
                "url",
                format!(
                    "{} is a loopback, private or link-local address ({}), refused by --notify-deny-private",
                    url.host(),
                    a.ip()
                ),
            )),
            None => Ok(()),
        }
    }

    /// POSTs `message` with `headers` (and a bearer `token`), and judges the answer.
    pub fn send(
        &self,
        receiver: &ReceiverUrl,
        message: &Outgoing,
        headers: &[(&str, String)],
        token: Option<&Secret>,
    ) -> Attempted {
        let started = Instant::now();
        let host = receiver.host();
        let mut request = self
            .agent
            .post(message.url.as_str())
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {}", token.expose()));
        }
        let result = request.send(&message.body[..]);
        let mut response = match result {
            Ok(response) => response,
            Err(ureq::Error::Other(e)) if e.is::<PrivateAddress>() => {
                let reason = format!("{host} {e}, refused by --notify-deny-private");
                return Attempted {
                    status: None,
                    error: Some(reason.clone()),
                    elapsed: started.elapsed(),
                    verdict: Verdict::Pause { reason },
                };
            }
            Err(e) => {
                return Attempted {
                    status: None,
                    error: Some(transport_error(&e, &host)),
                    elapsed: started.elapsed(),
                    verdict: Verdict::Retry { wait: None },
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = outbound::retry_after(response.headers());
        let mut body = Vec::new();
        let read = response
            .body_mut()
            .as_reader()
            .take(MAX_BODY_BYTES)
            .read_to_end(&mut body);
        let elapsed = started.elapsed();
        if read.is_err() && (200..300).contains(&status) {
            // The receiver took it; a broken end of its answer does not undo that.
            tracing::debug!(%host, status, "a receiver's answer ended early");
        }
        let text = String::from_utf8_lossy(&body);
        let (verdict, error) = judge(status, retry_after, &text);
        Attempted {
            status: Some(status),
            error,
            elapsed,
            verdict,
        }
    }
}

/// The resolver every request goes through: with `--notify-deny-private`, the addresses the
/// name resolves to are checked every time, and the request connects only to those (one
/// private address among them refuses them all), so a name whose DNS answer changes after
/// the notification was created is caught at the send.
#[derive(Debug)]
struct CheckedResolver {
    deny_private: bool,
}

/// A receiver's host resolved to an address `--notify-deny-private` refuses.
#[derive(Debug, thiserror::Error)]
#[error("resolved to a loopback, private or link-local address ({0})")]
struct PrivateAddress(IpAddr);

impl ureq::unversioned::resolver::Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let addresses = match literal_address(uri) {
            Some(address) => {
                let mut addresses = self.empty();
                addresses.push(address);
                addresses
            }
            None => ureq::unversioned::resolver::DefaultResolver::default()
                .resolve(uri, config, timeout)?,
        };
        if self.deny_private
            && let Some(a) = addresses.iter().find(|a| is_private(a.ip()))
        {
            return Err(ureq::Error::Other(Box::new(PrivateAddress(a.ip()))));
        }
        Ok(addresses)
    }
}

/// The address of a URL whose host is an IP address. ureq's own resolver looks every
/// request's host up, before it looks for a pooled connection, and with a timeout it does so on
/// a new thread: for a receiver named by its address (a LAN's ntfy or Mattermost) that thread
/// was most of a delivery's cost.
fn literal_address(uri: &ureq::http::Uri) -> Option<std::net::SocketAddr> {
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    let port = uri.port_u16().or(match uri.scheme_str()? {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some(std::net::SocketAddr::new(ip, port))
}

/// Loopback, private (RFC 1918, unique local), link-local, carrier-grade NAT, unspecified and
/// broadcast addresses, and IPv4-mapped IPv6 forms of them.
fn is_private(ip: IpAddr) -> bool {
    let v4 = |v4: Ipv4Addr| {
        v4.is_loopback()
            || v4.is_private()
            || v4.is_link_local()
            || v4.is_unspecified()
            || v4.is_broadcast()
            // 100.64.0.0/10, carrier-grade NAT.
            || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
    };
    match ip {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(v4)
        }
    }
}

/// The verdict and error text for an answer.
pub fn judge(status: u16, retry_after: Option<Duration>, body: &str) -> (Verdict, Option<String>) {
    let said = short(body);
    let error = |what: &str| {
        Some(if said.is_empty() {
            format!("{what} (HTTP {status})")
        } else {
            format!("{what} (HTTP {status}): {said}")
        })
    };
    match status {
        200..=299 => (Verdict::Delivered, None),
        429 => {
            let wait = retry_after.or_else(|| discord_retry_after(body));
            (Verdict::Retry { wait }, error("rate limited"))
        }
        500..=599 | 408 => (
            Verdict::Retry { wait: retry_after },
            error("receiver error"),
        ),
        404 | 410 => {
            let e = error("the webhook is gone");
            (
                Verdict::Pause {
                    reason: e.clone().unwrap_or_default(),
                },
                e,
            )
        }
        401 | 403 => {
            let e = error("the receiver refused the credentials");
            (
                Verdict::Pause {
                    reason: e.clone().unwrap_or_default(),
                },
                e,
            )
        }
        300..=399 => (Verdict::GiveUp, error("redirects are not followed")),
        _ => (Verdict::GiveUp, error("the receiver refused the message")),
    }
}

/// Discord answers 429 with `{"retry_after": 1.5, ...}` (seconds).
fn discord_retry_after(body: &str) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    outbound::seconds(&value.get("retry_after")?.to_string())
}

/// The start of an answer on one line, printable characters only.
fn short(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_CHARS)
        .collect();
    one_line.trim().to_owned()
}

fn transport_error(error: &ureq::Error, host: &str) -> String {
    match error {
        ureq::Error::Timeout(_) => format!("{host} did not answer within the timeout"),
        ureq::Error::HostNotFound => format!("could not resolve host {host}"),
        ureq::Error::ConnectionFailed => format!("could not connect to {host}"),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            format!("{host} did not answer within the timeout")
        }
        ureq::Error::Io(io) => format!("connection to {host} failed: {}", io.kind()),
        _ => format!("the request to {host} failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged_as_the_issue_says() {
        assert_eq!(judge(200, None, "ok").0, Verdict::Delivered);
        assert_eq!(judge(204, None, "").0, Verdict::Delivered);
        assert_eq!(
            judge(429, Some(Duration::from_secs(7)), "").0,
            Verdict::Retry {
                wait: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            judge(
                429,
                None,
                r#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#
            )
            .0,
            Verdict::Retry {
                wait: Some(Duration::from_millis(1500))
            }
        );
        assert_eq!(judge(503, None, "").0, Verdict::Retry { wait: None });
        for gone in [404, 410, 401, 403] {
            assert!(
                matches!(judge(gone, None, "no_service").0, Verdict::Pause { .. }),
                "{gone}"
            );
        }
        assert_eq!(judge(301, None, "").0, Verdict::GiveUp);
        assert_eq!(judge(400, None, "invalid_payload").0, Verdict::GiveUp);
    }

    #[test]
    fn loopback_and_private_hosts_are_recognized_and_public_ones_are_not() {
        let denying = Sender::default().denying_private(true);
        for private in [
            "http://127.0.0.1:9/x",
            "http://localhost:9/x",
            "http://10.1.2.3/x",
            "http://[::1]/x",
            "http://192.168.1.1/x",
            "http://169.254.1.1/x",
            "http://[fd00::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://100.64.0.1/x",
        ] {
            let url = ReceiverUrl::parse(private, super::super::Kind::Webhook).unwrap();
            let e = denying.check_receiver(&url).unwrap_err();
            assert_eq!(e.field, "url", "{private}");
            assert!(Sender::default().check_receiver(&url).is_ok(), "{private}");
        }
        let public = ReceiverUrl::parse("http://93.184.216.34/x", super::super::Kind::Webhook);
        assert!(denying.check_receiver(&public.unwrap()).is_ok());
    }

    #[test]
    fn a_host_that_is_an_address_is_used_as_it_is_and_a_name_is_left_to_dns() {
        let address = |url: &str| literal_address(&url.parse().unwrap());
        assert_eq!(
            address("http://127.0.0.1:8080/in"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            address("http://[::1]/in"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            address("https://192.168.1.5/x"),
            Some("192.168.1.5:443".parse().unwrap())
        );
        assert_eq!(address("http://localhost:8080/in"), None);
        assert_eq!(address("https://hooks.slack.com/services/x"), None);
    }

    #[test]
    fn an_error_keeps_only_the_start_of_a_long_answer_on_one_line() {
        let (_, error) = judge(500, None, &format!("line\n{}", "x".repeat(10_000)));
        let error = error.unwrap();
        assert!(error.len() < 300 && !error.contains('\n'), "{error}");
    }
}
