//! Which `Host` a request may name: a guard against DNS rebinding, where a page on the
//! attacker's domain re-points that domain at this server and reads it as its own origin.
//!
//! A rebinding request always carries the attacker's host name, so the rule only has to know
//! the names this server is reached by. Always accepted: IP literals (`127.0.0.1:8080`,
//! `[::1]:8080`, a LAN address), `localhost` and names under `.localhost` (browsers resolve
//! those to loopback themselves), and a request without a `Host` (HTTP/1.0). Besides those:
//! with `--public-url`, its host name; without it, on a loopback listen address, nothing else;
//! without it on any other listen address (`0.0.0.0:8080`, as in a container), every name,
//! since the server cannot know which names point at it. The port is not compared.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use poem::{Endpoint, IntoResponse, Request, Response};

use crate::config::PublicUrl;
use crate::error_code::ErrorCode;

/// The host names a server answers to, besides IP literals and `localhost`.
#[derive(Debug, Clone)]
pub enum HostPolicy {
    /// Every name (no public URL, and a listen address other machines can reach).
    Any,
    /// Only these names (lowercase, without port or trailing dot).
    Names(Vec<String>),
}

impl HostPolicy {
    /// The policy for a server listening on `listen`, with `public_url` when one was given.
    pub fn new(public_url: Option<&PublicUrl>, listen: SocketAddr) -> HostPolicy {
        match public_url {
            Some(url) => HostPolicy::Names(host_name(url.host()).into_iter().collect()),
            None if listen.ip().is_loopback() => HostPolicy::Names(Vec::new()),
            None => HostPolicy::Any,
        }
    }

    /// The names answered besides IP literals and `localhost`, or None for every name.
    pub fn names(&self) -> Option<&[String]> {
        match self {
            HostPolicy::Any => None,
            HostPolicy::Names(names) => Some(names),
        }
    }

    /// True when a request naming `host` (a `Host` header value) may be answered.
    pub fn allows(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        if name.starts_with('[') || name.parse::<Ipv4Addr>().is_ok() || is_localhost(&name) {
            return true;
        }
        match self {
            HostPolicy::Any => true,
            HostPolicy::Names(names) => names.contains(&name),
        }
    }
}

fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// The lowercase host name of a `Host` value without its port; `[v6]` keeps its brackets.
/// None for a value that is not a host.
fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    let name = if host.starts_with('[') {
        let end = host.find(']')?;
        let literal = &host[..=end];
        literal[1..end].parse::<std::net::Ipv6Addr>().ok()?;
        return Some(literal.to_owned());
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return None,
            None => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// Middleware: refuses a request whose `Host` (or HTTP/2 `:authority`) this server does not
/// answer to with 421 Misdirected Request.
pub async fn check<E: Endpoint>(
    ep: Arc<E>,
    policy: Arc<HostPolicy>,
    req: Request,
) -> poem::Result<Response> {
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|v| v.to_str().ok().map(str::to_owned))
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    if let Some(host) = host
        && !policy.allows(&host)
    {
        return Ok(ErrorCode::UnknownHost.response(format!(
            "this server does not answer to the host {:?}; use the address in its --public-url",
            host.chars().take(100).collect::<String>()
        )));
    }
    Ok(ep.call(req).await?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_a_public_url_its_host_ip_literals_and_localhost_are_answered_and_nothing_else() {
        let url: PublicUrl = "https://Push.Example.com/tracker".parse().unwrap();
        let policy = HostPolicy::new(Some(&url), "127.0.0.1:8080".parse().unwrap());
        for ok in [
            "push.example.com",
            "PUSH.example.com:443",
            "push.example.com.",
            "127.0.0.1:8080",
            "[::1]:8080",
            "192.168.1.20:8080",
            "localhost:8080",
            "app.localhost",
        ] {
            assert!(policy.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "push.example.com.evil.example",
            "push.example.com:http",
            "[not-v6]",
            "",
        ] {
            assert!(!policy.allows(refused), "{refused}");
        }
    }

    #[test]
    fn without_a_public_url_a_loopback_server_answers_only_to_loopback_names() {
        let loopback = HostPolicy::new(None, "127.0.0.1:8080".parse().unwrap());
        assert!(loopback.allows("127.0.0.1:8080"));
        assert!(loopback.allows("localhost:8080"));
        assert!(!loopback.allows("rebind.evil.example:8080"));
        let everywhere = HostPolicy::new(None, "0.0.0.0:8080".parse().unwrap());
        assert!(everywhere.allows("nas.lan:8080"));
    }
}
