//! Which TCP congestion control larder's sockets get.
//!
//! By default a socket keeps the system's (`net.ipv4.tcp_congestion_control`), with
//! one exception: when the system's paces its sending (BBR), a connection whose other
//! end is on this machine (a loopback address) gets one that does not. Pacing spreads a
//! socket's segments over time to keep network queues short; loopback has no queue to
//! keep short, and on it pacing costs a high-resolution timer for nearly every segment
//! larder hands over at once (a `splice` into a tunnel, a hit's `writev`): tunnels and
//! large hits ran at two thirds of the rate, and a third more CPU time per byte, with
//! it. A browser on the proxy's own machine, larder's default setting, is such a
//! connection. `--tcp-congestion NAME` puts `NAME` on every socket instead.
//!
//! The choice is made once, at start-up ([`Congestion::choose`]); the connection code
//! asks it per socket.

use std::net::IpAddr;

/// The congestion control larder's sockets get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Congestion {
    /// The system's, on every socket.
    System,
    /// `--tcp-congestion NAME`: this one on every socket.
    Everywhere(String),
    /// The system's paces: this one on loopback connections, the system's elsewhere.
    Loopback(&'static str),
}

/// Congestion controls that do not pace, in order of preference. Without privileges a
/// process may choose only those in `net.ipv4.tcp_allowed_congestion_control`, which
/// often lists reno beside the system's but not cubic.
const UNPACED: [&str; 2] = ["cubic", "reno"];

impl Congestion {
    /// Decides from `--tcp-congestion` (`configured`) and the system's congestion
    /// control (`system`, `None` when it cannot be read). `usable` tells whether this
    /// process may put a given one on a socket; it is asked only when the system's
    /// paces.
    pub fn choose(
        configured: Option<&str>,
        system: Option<&str>,
        usable: impl Fn(&str) -> bool,
    ) -> Congestion {
        if let Some(name) = configured {
            return Congestion::Everywhere(name.to_string());
        }
        match system {
            Some(name) if paces(name) => UNPACED
                .into_iter()
                .find(|c| usable(c))
                .map_or(Congestion::System, Congestion::Loopback),
            _ => Congestion::System,
        }
    }

    /// The congestion control to put on a listening socket bound to `addr`; the
    /// connections it accepts inherit it.
    pub fn for_listener(&self, addr: IpAddr) -> Option<&str> {
        match self {
            Congestion::System => None,
            Congestion::Everywhere(name) => Some(name),
            Congestion::Loopback(name) => is_loopback(addr).then_some(*name),
        }
    }

    /// The congestion control to put on a connection from `peer` that a listener bound
    /// to `listener` accepted; `None` to keep what it inherited from the listener.
    pub fn for_accepted(&self, listener: IpAddr, peer: IpAddr) -> Option<&str> {
        match self {
            Congestion::Loopback(name) if !is_loopback(listener) && is_loopback(peer) => Some(name),
            _ => None,
        }
    }

    /// The congestion control to put on a connection larder makes to `peer`; `None` to
    /// keep the system's.
    pub fn for_upstream(&self, peer: IpAddr) -> Option<&str> {
        self.for_listener(peer)
    }
}

/// Whether the congestion control named `name` paces its sending itself: BBR (and
/// its later versions) does; the loss-based ones (cubic, reno, ...) do not.
fn paces(name: &str) -> bool {
    name.starts_with("bbr")
}

/// 127.0.0.0/8 and ::1, and IPv4 loopback written as an IPv6 address.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The system's congestion control, `None` where it cannot be read (not Linux).
pub fn system() -> Option<String> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn configured_name_goes_on_every_socket() {
        let c = Congestion::choose(Some("reno"), Some("bbr"), |_| true);
        assert_eq!(c, Congestion::Everywhere("reno".into()));
        assert_eq!(c.for_listener(ip("0.0.0.0")), Some("reno"));
        assert_eq!(c.for_upstream(ip("127.0.0.1")), Some("reno"));
        assert_eq!(c.for_upstream(ip("192.0.2.1")), Some("reno"));
        // Inherited from the listener.
        assert_eq!(c.for_accepted(ip("0.0.0.0"), ip("127.0.0.1")), None);
    }

    #[test]
    fn pacing_system_gets_an_unpaced_one_on_loopback_only() {
        let c = Congestion::choose(None, Some("bbr"), |_| true);
        assert_eq!(c, Congestion::Loopback("cubic"));
        for peer in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(c.for_upstream(ip(peer)), Some("cubic"), "{peer}");
        }
        for peer in ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"] {
            assert_eq!(c.for_upstream(ip(peer)), None, "{peer}");
        }
        // A loopback listener's connections inherit it; a wildcard one's from loopback
        // get it one by one, the others keep the system's.
        assert_eq!(c.for_listener(ip("127.0.0.1")), Some("cubic"));
        assert_eq!(c.for_accepted(ip("127.0.0.1"), ip("127.0.0.1")), None);
        assert_eq!(c.for_listener(ip("0.0.0.0")), None);
        assert_eq!(
            c.for_accepted(ip("0.0.0.0"), ip("127.0.0.1")),
            Some("cubic")
        );
        assert_eq!(c.for_accepted(ip("::"), ip("::1")), Some("cubic"));
        assert_eq!(c.for_accepted(ip("0.0.0.0"), ip("192.0.2.7")), None);
    }

    #[test]
    fn reno_when_cubic_is_not_allowed() {
        let c = Congestion::choose(None, Some("bbr"), |name| name == "reno");
        assert_eq!(c, Congestion::Loopback("reno"));
    }

    #[test]
    fn system_kept_when_nothing_unpaced_is_allowed() {
        assert_eq!(
            Congestion::choose(None, Some("bbr"), |_| false),
            Congestion::System
        );
    }

    #[test]
    fn unpaced_system_is_kept_without_asking() {
        for system in [Some("cubic"), Some("reno"), None] {
            let c = Congestion::choose(None, system, |_| panic!("asked"));
            assert_eq!(c, Congestion::System);
            assert_eq!(c.for_upstream(ip("127.0.0.1")), None);
            assert_eq!(c.for_listener(ip("127.0.0.1")), None);
        }
    }
}
