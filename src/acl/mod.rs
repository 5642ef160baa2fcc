//! Access control: which clients may use the proxy ([`ClientAcl`]) and which
//! destinations they may not reach ([`blocklist::Blocklist`]).

pub mod blocklist;
pub mod cidr;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cidr::Cidr;

/// Which clients may use the proxy.
///
/// The default allow list is loopback only (127.0.0.0/8, ::1/128): larder must never
/// be an open proxy by accident. A non-empty `allow` list replaces the default rather
/// than adding to it, so `--allow 10.0.0.0/8` shuts out loopback unless it is listed
/// too. A client matching `deny` is refused even when `allow` also matches it.
#[derive(Debug, Clone)]
pub struct ClientAcl {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl ClientAcl {
    /// An ACL from `--allow` and `--deny` networks; an empty `allow` means loopback only.
    pub fn new(allow: Vec<Cidr>, deny: Vec<Cidr>) -> ClientAcl {
        let allow = if allow.is_empty() {
            vec![
                Cidr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
                Cidr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
            ]
        } else {
            allow
        };
        ClientAcl { allow, deny }
    }

    /// `Ok(())` when `ip` may use the proxy, otherwise the reason for the 403 page and
    /// the log, naming the rule, e.g. "client 127.0.0.2 matches --deny 127.0.0.2/32".
    /// An IPv4-mapped IPv6 address is treated, and reported, as its IPv4 address.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = ip.to_canonical();
        if let Some(rule) = self.deny.iter().find(|c| c.contains(ip)) {
            return Err(format!("client {ip} matches --deny {rule}"));
        }
        if self.allow.iter().any(|c| c.contains(ip)) {
            Ok(())
        } else {
            Err(format!("client {ip} is not in the allow list"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_allows_only_loopback() {
        let acl = ClientAcl::new(vec![], vec![]);
        assert_eq!(acl.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(acl.check(ip("127.255.0.9")), Ok(()));
        assert_eq!(acl.check(ip("::1")), Ok(()));
        assert_eq!(acl.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(
            acl.check(ip("10.1.2.3")),
            Err("client 10.1.2.3 is not in the allow list".to_string())
        );
        assert!(acl.check(ip("::2")).is_err());
        assert!(acl.check(ip("0.0.0.0")).is_err());
    }

    #[test]
    fn non_empty_allow_replaces_loopback_default() {
        let acl = ClientAcl::new(cidrs(&["10.0.0.0/8"]), vec![]);
        assert_eq!(acl.check(ip("10.1.2.3")), Ok(()));
        assert!(acl.check(ip("127.0.0.1")).is_err());
        assert!(acl.check(ip("::1")).is_err());
    }

    #[test]
    fn deny_wins_over_allow() {
        let acl = ClientAcl::new(vec![], cidrs(&["127.0.0.2"]));
        assert_eq!(acl.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(
            acl.check(ip("127.0.0.2")),
            Err("client 127.0.0.2 matches --deny 127.0.0.2/32".to_string())
        );
    }

    #[test]
    fn deny_applies_to_v4_mapped_clients() {
        let acl = ClientAcl::new(cidrs(&["::/0", "0.0.0.0/0"]), cidrs(&["192.0.2.0/24"]));
        assert_eq!(
            acl.check(ip("::ffff:192.0.2.7")),
            Err("client 192.0.2.7 matches --deny 192.0.2.0/24".to_string())
        );
        assert_eq!(acl.check(ip("::ffff:198.51.100.1")), Ok(()));
    }

    #[test]
    fn deny_without_allow_keeps_loopback_default() {
        let acl = ClientAcl::new(vec![], cidrs(&["10.0.0.0/8"]));
        assert!(acl.check(ip("10.0.0.1")).unwrap_err().contains("--deny"));
        assert!(acl
            .check(ip("192.0.2.1"))
            .unwrap_err()
            .contains("allow list"));
        assert_eq!(acl.check(ip("127.0.0.1")), Ok(()));
    }
}
