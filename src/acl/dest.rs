//! Where clients may make larder go: the destination rules of a shared deployment.
//!
//! A client on a LAN must not use larder to reach what the LAN cannot reach by
//! itself: services on the proxy's own machine bound to loopback to keep the LAN
//! out, the machine's own addresses, and link-local addresses (a cloud VM's metadata
//! service at 169.254.169.254 hands out credentials). So for a client that is not on
//! the machine itself, a destination is refused when it is
//!
//! * loopback (127.0.0.0/8, ::1) or a `localhost` name (RFC 6761),
//! * link-local (169.254.0.0/16, fe80::/10),
//! * unspecified (0.0.0.0/8, ::), which Linux connects to the machine itself,
//! * one of the machine's own addresses (read from its interfaces),
//!
//! unless `--allow-to` opens its range again (Squid's `to_localhost` rule, on by
//! default). Names are judged by every address they resolve to: the addresses refused
//! are left out of those tried, and a name none of whose addresses is left is refused
//! (so a name that resolves to loopback, DNS rebinding included, is caught: the rule
//! holds for the address actually connected).
//!
//! A client is *on the machine* when its address is exactly one of the machine's own
//! (an interface's address, 127.0.0.1 or ::1): such a client could reach every one of
//! those services without larder, so refusing it would protect nothing and break a
//! laptop user's dev server on localhost. Any other address of 127.0.0.0/8 (127.0.0.2,
//! say) is routed to the machine too but is no interface's address; only a program
//! that binds to it on purpose has it, and it is judged as a LAN client would be —
//! which is what lets the tests play a LAN client on loopback.
//!
//! Everything here is a value: the connection code asks and carries out the answer.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::cidr::Cidr;

/// Why a destination address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 127.0.0.0/8, ::1, or a `localhost` name.
    Loopback,
    /// 169.254.0.0/16 or fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8 or `::`.
    Unspecified,
    /// An address of one of the machine's interfaces.
    OwnAddress,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Loopback => "loopback",
            Reason::LinkLocal => "link-local",
            Reason::Unspecified => "the unspecified address",
            Reason::OwnAddress => "an address of this machine",
        })
    }
}

/// A refused destination: the address (none for a `localhost` name) and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The address refused; `None` for a `localhost` name.
    pub addr: Option<IpAddr>,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(ip) => write!(
                f,
                "destination {ip} is {} (--allow-to opens it)",
                self.reason
            ),
            None => write!(
                f,
                "a localhost name is {} (--allow-to opens it)",
                self.reason
            ),
        }
    }
}

/// What the rules make of a name's resolved addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every address may be tried, as resolved.
    All,
    /// Only these may be tried (the others are refused), in the resolver's order.
    Some(Arc<[IpAddr]>),
    /// None may: the first refused address says why.
    None(Refused),
}

/// The destination rules: `--allow-to`, and the machine's own addresses.
#[derive(Debug, Clone)]
pub struct Destinations {
    allow_to: Vec<Cidr>,
    /// The machine's own addresses (canonical, each once): its interfaces', and
    /// what it listens on.
    own: Vec<IpAddr>,
}

impl Destinations {
    /// The rules with `--allow-to` ranges and the machine's own addresses.
    pub fn new(allow_to: Vec<Cidr>, own: &[IpAddr]) -> Destinations {
        let mut d = Destinations {
            allow_to,
            own: Vec::new(),
        };
        d.set_own(own);
        d
    }

    /// Replaces the machine's own addresses (re-read while running: DHCP may change
    /// them). 127.0.0.1 and ::1 are always among them.
    pub fn set_own(&mut self, own: &[IpAddr]) {
        self.own.clear();
        let always = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        for ip in always.iter().chain(own) {
            let ip = ip.to_canonical();
            if !ip.is_unspecified() && !self.own.contains(&ip) {
                self.own.push(ip);
            }
        }
    }

    /// The machine's own addresses, as the rules know them.
    pub fn own(&self) -> &[IpAddr] {
        &self.own
    }

    /// Whether a client at `ip` is on the machine itself (see the module docs): it
    /// may go anywhere the machine can.
    pub fn client_on_the_machine(&self, ip: IpAddr) -> bool {
        self.own.contains(&ip.to_canonical())
    }

    /// Whether a client elsewhere may make larder connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = ip.to_canonical();
        let Some(reason) = self.reason(ip) else {
            return Ok(());
        };
        if self.allow_to.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        Err(Refused {
            addr: Some(ip),
            reason,
        })
    }

    fn reason(&self, ip: IpAddr) -> Option<Reason> {
        let reason = match ip {
            IpAddr::V4(v4) if v4.is_loopback() => Reason::Loopback,
            IpAddr::V4(v4) if v4.is_link_local() => Reason::LinkLocal,
            IpAddr::V4(v4) if v4.octets()[0] == 0 => Reason::Unspecified,
            IpAddr::V6(v6) if v6.is_loopback() => Reason::Loopback,
            IpAddr::V6(v6) if v6.is_unicast_link_local() => Reason::LinkLocal,
            IpAddr::V6(v6) if v6.is_unspecified() => Reason::Unspecified,
            ip if self.own.contains(&ip) => Reason::OwnAddress,
            _ => return None,
        };
        Some(reason)
    }

    /// The request's host before anything is looked up or a hop chosen: an IP
    /// literal is judged as an address, a `localhost` name as loopback (whatever it
    /// would resolve to, and even when a parent would resolve it). Other names pass
    /// here and are judged by their addresses ([`Destinations::filter`]). `host` is
    /// as a target keeps it: lowercase, IPv6 without brackets.
    pub fn check_host(&self, host: &str) -> Result<(), Refused> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.check(ip);
        }
        let name = host.strip_suffix('.').unwrap_or(host);
        if name == "localhost" || name.ends_with(".localhost") {
            let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
            if self.allow_to.iter().any(|c| c.contains(lo)) {
                return Ok(());
            }
            return Err(Refused {
                addr: None,
                reason: Reason::Loopback,
            });
        }
        Ok(())
    }

    /// Whether [`Destinations::check_host`] judges `host` itself (an IP literal or a
    /// `localhost` name), so that it is refused before the cache is looked at; other
    /// names are judged only by what they resolve to.
    pub fn judged_by_name(host: &str) -> bool {
        let name = host.strip_suffix('.').unwrap_or(host);
        name == "localhost" || name.ends_with(".localhost") || host.parse::<IpAddr>().is_ok()
    }

    /// A name's resolved addresses for a client elsewhere: all of them, those the
    /// rules leave (the rest are never connected to), or none.
    pub fn filter(&self, addrs: &Arc<[IpAddr]>) -> Filtered {
        let mut first = None;
        let mut refused = 0;
        for &ip in addrs.iter() {
            if let Err(r) = self.check(ip) {
                first.get_or_insert(r);
                refused += 1;
            }
        }
        match first {
            None => Filtered::All,
            Some(r) if refused == addrs.len() => Filtered::None(r),
            Some(_) => Filtered::Some(
                addrs
                    .iter()
                    .copied()
                    .filter(|&ip| self.check(ip).is_ok())
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A LAN box: 192.168.1.2 on its LAN interface, fe80::2 beside it.
    fn lan_box(allow_to: &[&str]) -> Destinations {
        let allow_to = allow_to.iter().map(|s| s.parse().unwrap()).collect();
        Destinations::new(
            allow_to,
            &[ip("127.0.0.1"), ip("192.168.1.2"), ip("fe80::2")],
        )
    }

    fn reason(d: &Destinations, s: &str) -> Option<Reason> {
        d.check(ip(s)).err().map(|r| r.reason)
    }

    #[test]
    fn loopback_link_local_unspecified_and_own_addresses_are_refused() {
        let d = lan_box(&[]);
        for (addr, why) in [
            ("127.0.0.1", Reason::Loopback),
            ("127.9.8.7", Reason::Loopback),
            ("::1", Reason::Loopback),
            ("::ffff:127.0.0.1", Reason::Loopback),
            ("169.254.169.254", Reason::LinkLocal),
            ("fe80::1", Reason::LinkLocal),
            ("fe80::2", Reason::LinkLocal),
            ("0.0.0.0", Reason::Unspecified),
            ("0.1.2.3", Reason::Unspecified),
            ("::", Reason::Unspecified),
            ("192.168.1.2", Reason::OwnAddress),
            ("::ffff:192.168.1.2", Reason::OwnAddress),
        ] {
            assert_eq!(reason(&d, addr), Some(why), "{addr}");
        }
        let r = d.check(ip("::ffff:169.254.169.254")).unwrap_err();
        assert_eq!(r.addr, Some(ip("169.254.169.254")), "reported as IPv4");
        assert_eq!(
            r.to_string(),
            "destination 169.254.169.254 is link-local (--allow-to opens it)"
        );
    }

    #[test]
    fn the_rest_of_the_lan_and_the_internet_are_not_refused() {
        let d = lan_box(&[]);
        for addr in [
            "192.168.1.3",
            "10.0.0.1",
            "93.184.216.34",
            "2001:db8::1",
            "fd00::1",
        ] {
            assert_eq!(d.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn allow_to_opens_a_range_again() {
        let d = lan_box(&["127.0.0.1/32", "192.168.1.2"]);
        assert_eq!(d.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(d.check(ip("192.168.1.2")), Ok(()));
        assert_eq!(reason(&d, "127.0.0.2"), Some(Reason::Loopback));
        assert_eq!(reason(&d, "169.254.169.254"), Some(Reason::LinkLocal));
        assert_eq!(d.check_host("localhost"), Ok(()), "localhost is 127.0.0.1");
    }

    #[test]
    fn only_the_machine_s_own_addresses_are_clients_on_the_machine() {
        let d = lan_box(&[]);
        for on in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "192.168.1.2"] {
            assert!(d.client_on_the_machine(ip(on)), "{on}");
        }
        for off in ["127.0.0.2", "192.168.1.3", "0.0.0.0", "::"] {
            assert!(!d.client_on_the_machine(ip(off)), "{off}");
        }
        // Even knowing no interface, loopback's own address is the machine.
        let bare = Destinations::new(Vec::new(), &[]);
        assert!(bare.client_on_the_machine(ip("127.0.0.1")));
        assert!(bare.client_on_the_machine(ip("::1")));
        assert!(!bare.client_on_the_machine(ip("192.168.1.2")));
    }

    #[test]
    fn hosts_are_judged_as_literals_or_localhost_names() {
        let d = lan_box(&[]);
        assert_eq!(
            d.check_host("169.254.169.254").map_err(|r| r.reason),
            Err(Reason::LinkLocal)
        );
        assert_eq!(
            d.check_host("::1").map_err(|r| r.reason),
            Err(Reason::Loopback)
        );
        for name in ["localhost", "localhost.", "db.localhost"] {
            let r = d.check_host(name).unwrap_err();
            assert_eq!((r.addr, r.reason), (None, Reason::Loopback), "{name}");
        }
        for name in ["example.com", "notlocalhost", "localhost.example.com"] {
            assert_eq!(d.check_host(name), Ok(()), "{name}");
            assert!(!Destinations::judged_by_name(name), "{name}");
        }
        for host in ["10.0.0.1", "::1", "localhost", "a.localhost."] {
            assert!(Destinations::judged_by_name(host), "{host}");
        }
    }

    #[test]
    fn resolved_addresses_are_filtered_and_a_name_with_none_left_refused() {
        let d = lan_box(&[]);
        let addrs = |list: &[&str]| -> Arc<[IpAddr]> { list.iter().map(|s| ip(s)).collect() };
        assert_eq!(d.filter(&addrs(&["10.0.0.1", "::2"])), Filtered::All);
        assert_eq!(
            d.filter(&addrs(&[
                "127.0.0.1",
                "10.0.0.1",
                "169.254.1.1",
                "10.0.0.2"
            ])),
            Filtered::Some(addrs(&["10.0.0.1", "10.0.0.2"]))
        );
        // DNS rebinding: a name that now resolves to loopback.
        match d.filter(&addrs(&["127.0.0.1", "::1"])) {
            Filtered::None(r) => assert_eq!(r.addr, Some(ip("127.0.0.1"))),
            other => panic!("{other:?}"),
        }
        // A name with no address at all is left to the connect step to report.
        assert_eq!(d.filter(&addrs(&[])), Filtered::All);
    }
}
