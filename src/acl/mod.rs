//! Access control: which clients may use the proxy ([`ClientAcl`], [`Clients`]) and
//! which destinations they may not reach ([`blocklist::Blocklist`], [`dest::Destinations`]),
//! and how many connections each may hold ([`per_client::PerClient`]).

pub mod blocklist;
pub mod cidr;
pub mod dest;
pub mod per_client;

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

/// Every rule about who a client is and what it may do: `--allow`/`--deny`, `--admin`,
/// and `--proxy-protocol` (the balancers whose connections say who the client is).
#[derive(Debug, Clone)]
pub struct Clients {
    acl: ClientAcl,
    admins: ClientAcl,
    balancers: Vec<Cidr>,
}

/// What the rules say of one client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Why it may not use the proxy (its first request is answered 403); `None`: it may.
    pub denied: Option<Box<str>>,
    /// It may see the status page and `/metrics` and send PURGE.
    pub admin: bool,
}

impl Clients {
    /// The rules of `--allow`, `--deny`, `--admin` and `--proxy-protocol`.
    pub fn new(
        allow: Vec<Cidr>,
        deny: Vec<Cidr>,
        admin: Vec<Cidr>,
        balancers: Vec<Cidr>,
    ) -> Clients {
        Clients {
            acl: ClientAcl::new(allow, deny),
            admins: ClientAcl::new(admin, Vec::new()),
            balancers,
        }
    }

    /// A connection from `ip` starts with a PROXY protocol header naming the client.
    pub fn sends_proxy_header(&self, ip: IpAddr) -> bool {
        if self.balancers.is_empty() {
            return false;
        }
        let ip = ip.to_canonical();
        self.balancers.iter().any(|c| c.contains(ip))
    }

    /// What the rules say of the client `ip`.
    pub fn judge(&self, ip: IpAddr) -> Judgement {
        Judgement {
            denied: self.acl.check(ip).err().map(Into::into),
            admin: self.admins.check(ip).is_ok(),
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

    #[test]
    fn balancers_are_named_by_proxy_protocol_and_judged_like_anyone() {
        let c = Clients::new(
            cidrs(&["10.0.0.0/8"]),
            vec![],
            vec![],
            cidrs(&["127.0.0.1/32"]),
        );
        assert!(c.sends_proxy_header(ip("127.0.0.1")));
        assert!(c.sends_proxy_header(ip("::ffff:127.0.0.1")));
        assert!(!c.sends_proxy_header(ip("127.0.0.2")));
        assert_eq!(c.judge(ip("10.1.2.3")).denied, None);
        assert!(c.judge(ip("127.0.0.1")).denied.is_some());
        assert!(c.judge(ip("127.0.0.1")).admin);
        assert!(!c.judge(ip("10.1.2.3")).admin);
        let none = Clients::new(vec![], vec![], vec![], vec![]);
        assert!(!none.sends_proxy_header(ip("127.0.0.1")));
    }
}
