//! Who a client is: its address, and the network that address counts as.
//!
//! The address is the TCP peer's, except when the peer is one of `server.trusted_proxies`:
//! then it is the nearest address in `Forwarded` (RFC 7239) or `X-Forwarded-For` that is not a
//! trusted proxy itself, read from the right, so a client cannot pose as another by adding
//! entries of its own. Without trusted proxies the headers are ignored. Every throttle, rate
//! limit, audit entry, session and log line uses this one address.
//!
//! An IPv4 address counts as itself; an IPv6 address as its /64, since one IPv6 client (a home,
//! a phone, a VPS) usually holds a whole /64 and can pick a new address in it for every request.
//! Connection caps, rate limits and sign-in throttles all count by this, so one rule decides
//! what "one client" is.

use std::net::IpAddr;

/// An address range, `10.0.0.0/8` or `2001:db8::/32` (a bare address is a range of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let problem = || format!("`{text}` is not an address or a network like 10.0.0.0/8 or fd00::/8");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.trim().parse().map_err(|_| problem())?;
        let longest = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.trim().parse::<u8>().ok().filter(|prefix| *prefix <= longest).ok_or_else(problem)?,
            None => longest,
        };
        Ok(Self { address, prefix })
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// `server.trusted_proxies`, parsed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    networks: Vec<Network>,
}

impl TrustedProxies {
    pub fn new(networks: Vec<Network>) -> Self {
        Self { networks }
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(ip))
    }

    /// The client's address for a request from `peer` with these forwarding headers.
    pub fn client_of(&self, peer: IpAddr, forwarded: Option<&str>, x_forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = match (forwarded, x_forwarded_for) {
            (Some(forwarded), _) => forwarded_for(forwarded),
            (None, Some(list)) => list.split(',').filter_map(|hop| parse_hop(hop.trim())).collect(),
            (None, None) => Vec::new(),
        };
        // From the nearest hop outwards: the first one not a trusted proxy is the client.
        hops.into_iter().rev().find(|hop| !self.trusts(*hop)).unwrap_or(peer)
    }
}

/// The `for=` addresses of a `Forwarded` header, in order.
fn forwarded_for(header: &str) -> Vec<IpAddr> {
    header
        .split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then(|| parse_hop(value.trim().trim_matches('"')))?
            })
        })
        .collect()
}

/// An address as proxies write it: `198.51.100.7`, `198.51.100.7:4711`, `[2001:db8::1]:4711`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

/// The network `ip` belongs to, as a stable string key.
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let segments = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", segments[0], segments[1], segments[2], segments[3])
            }
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// [`network_of`] for an address in text; anything unparsable is taken as given.
pub fn network_of_text(ip: &str) -> String {
    ip.parse().map_or_else(|_| ip.to_owned(), network_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|network| network.parse().unwrap()).collect())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain_what_they_should() {
        let lan: Network = "10.1.0.0/16".parse().unwrap();
        assert!(lan.contains(ip("10.1.200.3")) && !lan.contains(ip("10.2.0.1")));
        assert!(lan.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped addresses count as IPv4");
        let six: Network = "2001:db8::/32".parse().unwrap();
        assert!(six.contains(ip("2001:db8:ffff::1")) && !six.contains(ip("2001:db9::1")));
        assert!("127.0.0.1".parse::<Network>().unwrap().contains(ip("127.0.0.1")));
        assert!("0.0.0.0/0".parse::<Network>().unwrap().contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "proxy.example.org", "10.0.0.0/", "::/129", ""] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_count_only_from_a_trusted_proxy_and_only_up_to_the_first_untrusted_hop() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let xff = Some("203.0.113.9");
        assert_eq!(
            proxies.client_of(ip("198.51.100.1"), None, xff),
            ip("198.51.100.1"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(proxies.client_of(ip("10.0.0.2"), None, xff), ip("203.0.113.9"));
        // A client adding its own entry cannot pose as someone else: the proxy appended the truth.
        let spoofed = Some("1.2.3.4, 203.0.113.9");
        assert_eq!(proxies.client_of(ip("10.0.0.2"), None, spoofed), ip("203.0.113.9"));
        // Two proxies in a row, both trusted.
        assert_eq!(proxies.client_of(ip("10.0.0.2"), None, Some("203.0.113.9, 10.0.0.7")), ip("203.0.113.9"));
        let forwarded = Some(r#"for=1.2.3.4, for="[2001:db8::7]:4711";proto=https"#);
        assert_eq!(proxies.client_of(ip("10.0.0.2"), forwarded, xff), ip("2001:db8::7"), "Forwarded wins");
        assert_eq!(proxies.client_of(ip("10.0.0.2"), Some("for=garbage"), None), ip("10.0.0.2"));
        assert_eq!(proxies.client_of(ip("10.0.0.2"), None, None), ip("10.0.0.2"));
        assert_eq!(TrustedProxies::default().client_of(ip("10.0.0.2"), None, xff), ip("10.0.0.2"), "none trusted");
    }

    #[test]
    fn ipv6_counts_per_64_and_ipv4_per_address() {
        assert_eq!(network_of_text("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(network_of_text("2001:db8:1:2:bbbb::7"), "2001:db8:1:2::/64");
        assert_eq!(network_of_text("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(network_of_text("192.0.2.7"), "192.0.2.7");
        assert_eq!(network_of_text("not an address"), "not an address");
    }
}
