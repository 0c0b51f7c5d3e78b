//! Who a client is, for limits that count per client: the network its address belongs to.
//!
//! An IPv4 address counts as itself; an IPv6 address as its /64, since one IPv6 client (a home,
//! a phone, a VPS) usually holds a whole /64 and can pick a new address in it for every request.
//! Connection caps and sign-in throttles both count by this, so one rule decides what "one
//! client" is.

use std::net::IpAddr;

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

    #[test]
    fn ipv6_counts_per_64_and_ipv4_per_address() {
        assert_eq!(network_of_text("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(network_of_text("2001:db8:1:2:bbbb::7"), "2001:db8:1:2::/64");
        assert_eq!(network_of_text("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(network_of_text("192.0.2.7"), "192.0.2.7");
        assert_eq!(network_of_text("not an address"), "not an address");
    }
}
