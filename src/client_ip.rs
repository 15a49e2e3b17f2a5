//! Which address a request came from, seen through the reverse proxies the owner trusts
//! (`--trusted-proxy`, parsed by the CLI; read by the admin login limiter), and the bucket a
//! client is counted in by every per-client limit (login attempts, connections, webhook bodies).
//!
//! Behind Caddy or nginx every connection comes from the proxy, so the failed-login brake would
//! count every visitor as one. `X-Forwarded-For` names the real client, but anyone can send that
//! header: it is read only when the connection itself comes from a trusted proxy, and then from
//! the right, where the proxies append, skipping the hops that are trusted proxies themselves.

use std::net::IpAddr;

pub use ipnet::IpNet;

/// IPv4 peers of a dual-stack socket arrive as `::ffff:a.b.c.d`; compare them as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an IP address or a network like 10.0.0.0/8")]
pub struct InvalidIpNet(String);

/// One address (a network of one) or a network in CIDR notation (`10.0.0.0/8`, `fd00::/8`);
/// the `--trusted-proxy` value parser.
pub fn parse_net(s: &str) -> Result<IpNet, InvalidIpNet> {
    let s = s.trim();
    // A mapped IPv4 address names the IPv4 peer it will be compared as.
    let net = match s.parse::<IpAddr>() {
        Ok(addr) => Ok(IpNet::from(canonical(addr))),
        Err(_) => s.parse::<IpNet>(),
    };
    net.map_err(|_| InvalidIpNet(s.chars().take(100).collect()))
}

/// The reverse proxies whose `X-Forwarded-For` is believed. Empty by default: then the
/// connection's own address is the client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, the address the connection came from. `forwarded_for` holds
    /// every `X-Forwarded-For` header of the request, in order.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for.flat_map(|h| h.split(',')).rev() {
            // A hop that is not an address was not written by a proxy we trust: stop at the
            // last one that was.
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// The bucket a client is counted in by a per-client limit: an IPv4 address (or an IPv4-mapped
/// IPv6 one) alone, an IPv6 address by its /64, the block one subscriber gets, so a client cannot
/// multiply its share by hopping through the 2^64 addresses it owns.
pub fn bucket(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| parse_net(n).unwrap()).collect())
    }

    #[test]
    fn networks_parse_from_addresses_and_cidr_and_refuse_anything_else() {
        assert_eq!(parse_net("127.0.0.1").unwrap().to_string(), "127.0.0.1/32");
        assert_eq!(parse_net("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert_eq!(parse_net("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
        ] {
            assert!(parse_net(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_network_contains_its_addresses_and_mapped_ipv4_peers() {
        let net = proxies(&["172.16.0.0/12"]);
        assert!(net.trusts(ip("172.31.255.1")));
        assert!(net.trusts(ip("::ffff:172.20.0.1")));
        assert!(!net.trusts(ip("172.32.0.1")));
        assert!(!net.trusts(ip("fd00::1")));
        assert!(proxies(&["0.0.0.0/0"]).trusts(ip("203.0.113.9")));
        assert!(proxies(&["::ffff:10.0.0.1"]).trusts(ip("10.0.0.1")));
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        let client = none.client(ip("127.0.0.1"), ["203.0.113.9"].into_iter());
        assert_eq!(client, ip("127.0.0.1"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_a_forged_left_part_is_ignored() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        // The client forged "1.2.3.4"; the first proxy appended the real address, a second
        // proxy inside the network appended the first one's.
        let headers = ["1.2.3.4, 203.0.113.9", "10.0.0.5"];
        let client = trusted.client(ip("127.0.0.1"), headers.into_iter());
        assert_eq!(client, ip("203.0.113.9"));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let client = trusted.client(ip("198.51.100.7"), ["203.0.113.9"].into_iter());
        assert_eq!(client, ip("198.51.100.7"));
    }

    #[test]
    fn a_trusted_proxy_without_the_header_or_with_garbage_is_the_client_itself() {
        let trusted = proxies(&["127.0.0.1"]);
        assert_eq!(
            trusted.client(ip("127.0.0.1"), [].into_iter()),
            ip("127.0.0.1")
        );
        let client = trusted.client(ip("127.0.0.1"), ["<script>"].into_iter());
        assert_eq!(client, ip("127.0.0.1"));
        let client = trusted.client(ip("127.0.0.1"), ["203.0.113.9, unknown"].into_iter());
        assert_eq!(client, ip("127.0.0.1"));
    }
}
