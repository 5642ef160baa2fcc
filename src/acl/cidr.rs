//! IP address ranges in CIDR notation, as given to `--allow`, `--deny` and `--block-ip`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address with its host bits cleared and a prefix length.
///
/// An IPv4 network also matches the IPv4-mapped IPv6 form of its addresses
/// (`::ffff:a.b.c.d`), and an IPv6 network matches a plain IPv4 address through that
/// same form, because a dual-stack listener reports IPv4 clients as mapped addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with `prefix` bits. The caller guarantees that `prefix` is
    /// at most 32 (IPv4) or 128 (IPv6); a larger value is treated as the maximum.
    pub(super) fn new(addr: IpAddr, prefix: u8) -> Cidr {
        let net = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() & v4_mask(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() & v6_mask(prefix))),
        };
        Cidr {
            net,
            prefix: prefix.min(max_prefix(addr)),
        }
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => v4_in(net, self.prefix, ip),
            (IpAddr::V4(net), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| v4_in(net, self.prefix, ip)),
            (IpAddr::V6(net), IpAddr::V6(ip)) => v6_in(net, self.prefix, ip),
            (IpAddr::V6(net), IpAddr::V4(ip)) => v6_in(net, self.prefix, ip.to_ipv6_mapped()),
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn v4_mask(prefix: u8) -> u32 {
    // A shift by the full width (prefix 0) is not defined for `<<`, hence checked_shl.
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0)
}

fn v6_mask(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0)
}

fn v4_in(net: Ipv4Addr, prefix: u8, ip: Ipv4Addr) -> bool {
    ip.to_bits() & v4_mask(prefix) == net.to_bits()
}

fn v6_in(net: Ipv6Addr, prefix: u8, ip: Ipv6Addr) -> bool {
    ip.to_bits() & v6_mask(prefix) == net.to_bits()
}

impl FromStr for Cidr {
    type Err = String;

    /// Parses `ADDR/PREFIX` or a bare `ADDR` (a single host: /32 or /128). Host bits set
    /// in `ADDR` are accepted and cleared, so `10.1.2.3/8` is `10.0.0.0/8`.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            format!("invalid CIDR {s:?}: {addr_text:?} is not an IPv4 or IPv6 address")
        })?;
        let max = max_prefix(addr);
        let prefix = match prefix_text {
            None => max,
            Some(p) => parse_prefix(p)
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("invalid CIDR {s:?}: prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr::new(addr, prefix))
    }
}

/// Plain decimal digits only: `u8::from_str` would also take "+8".
fn parse_prefix(p: &str) -> Option<u8> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_v4_and_v6_networks() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("::1/128").to_string(), "::1/128");
        assert_eq!(cidr("fe80::/10").to_string(), "fe80::/10");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("::/0").to_string(), "::/0");
    }

    #[test]
    fn bare_address_is_a_single_host() {
        assert_eq!(cidr("192.168.1.5").to_string(), "192.168.1.5/32");
        assert_eq!(cidr("2001:db8::1").to_string(), "2001:db8::1/128");
        assert!(cidr("192.168.1.5").contains(ip("192.168.1.5")));
        assert!(!cidr("192.168.1.5").contains(ip("192.168.1.6")));
    }

    #[test]
    fn host_bits_are_masked() {
        assert_eq!(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("fe80::1234/10").to_string(), "fe80::/10");
    }

    #[test]
    fn bad_input_is_rejected_with_a_clear_message() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "example.com/8",
            "10.0.0.0/999999999999",
            "[::1]/128",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.contains("invalid CIDR"), "{bad:?}: {err}");
        }
        assert!("10.0.0.0/33"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("0 to 32"));
        assert!("::/129".parse::<Cidr>().unwrap_err().contains("0 to 128"));
        assert!("nope/8"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("not an IPv4"));
    }

    #[test]
    fn contains_respects_the_prefix() {
        let net = cidr("192.168.0.0/16");
        assert!(net.contains(ip("192.168.0.0")));
        assert!(net.contains(ip("192.168.255.255")));
        assert!(!net.contains(ip("192.169.0.0")));
        let v6 = cidr("fe80::/10");
        assert!(v6.contains(ip("fe80::1")));
        assert!(v6.contains(ip("febf::1")));
        assert!(!v6.contains(ip("fec0::1")));
    }

    #[test]
    fn zero_prefix_matches_its_whole_family() {
        assert!(cidr("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert!(cidr("::/0").contains(ip("ffff::1")));
    }

    #[test]
    fn families_do_not_mix() {
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(!cidr("::1/128").contains(ip("127.0.0.1")));
        // ::/0 holds the mapped form of every IPv4 address, so it matches them too.
        assert!(cidr("::/0").contains(ip("10.0.0.1")));
        assert!(!cidr("2001:db8::/32").contains(ip("10.0.0.1")));
    }

    #[test]
    fn v4_mapped_v6_address_matches_v4_network() {
        let net = cidr("127.0.0.0/8");
        assert!(net.contains(ip("::ffff:127.0.0.2")));
        assert!(!net.contains(ip("::ffff:10.0.0.1")));
        // IPv4-compatible (deprecated, ::a.b.c.d) is not the mapped form.
        assert!(!net.contains(ip("::127.0.0.1")));
    }

    #[test]
    fn v4_address_matches_mapped_v6_network() {
        let net = cidr("::ffff:10.0.0.0/104");
        assert!(net.contains(ip("10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
    }
}
