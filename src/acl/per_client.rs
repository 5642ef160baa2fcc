//! `--max-conns-per-client`: the connections each client address has open, so that
//! one client cannot take every connection larder will accept (Squid's `maxconn`).
//!
//! The table holds an entry only for an address with a connection open, so it never
//! has more entries than larder has connections (`--max-conns`): it is bounded without
//! a bound of its own. A client past its limit has its new connection closed at once;
//! the connections it already has, and everyone else's, are left alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// At most one warning this often about clients over the limit.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Open connections by client address, against a limit.
#[derive(Debug, Default)]
pub struct PerClient {
    /// `None`: no limit (the default), and nothing is counted.
    limit: Option<u32>,
    open: HashMap<IpAddr, u32>,
    /// When the last warning about a client over the limit was given.
    warned: Option<Instant>,
}

impl PerClient {
    /// A table for `limit` connections per client; `None` counts nothing.
    pub fn new(limit: Option<u32>) -> PerClient {
        PerClient {
            limit,
            open: HashMap::new(),
            warned: None,
        }
    }

    /// Whether connections are counted at all.
    pub fn limited(&self) -> bool {
        self.limit.is_some()
    }

    /// A new connection from `ip`: `true` if it may stay (it is counted, and must be
    /// [`PerClient::release`]d when it closes), `false` if the client already has as
    /// many as the limit (nothing is counted).
    pub fn admit(&mut self, ip: IpAddr) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let ip = ip.to_canonical();
        if self.open(ip) >= limit {
            return false;
        }
        let n = self.open.entry(ip).or_insert(0);
        *n += 1;
        true
    }

    /// A connection [`PerClient::admit`] counted has closed.
    pub fn release(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if let Some(n) = self.open.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&ip);
            }
        }
    }

    /// A connection was refused at `now`: whether to warn about it (at most once a
    /// minute, so a client that keeps trying cannot flood the log).
    pub fn warn_now(&mut self, now: Instant) -> bool {
        if self
            .warned
            .is_some_and(|t| now.saturating_duration_since(t) < WARN_EVERY)
        {
            return false;
        }
        self.warned = Some(now);
        true
    }

    /// Connections counted for `ip` now.
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.open.get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    /// Client addresses with a connection open (the table's size).
    pub fn clients(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_gets_its_limit_and_the_others_theirs() {
        let mut t = PerClient::new(Some(2));
        assert!(t.admit(ip("192.168.1.7")));
        assert!(t.admit(ip("::ffff:192.168.1.7")), "the same client, mapped");
        assert!(!t.admit(ip("192.168.1.7")), "the third is over the limit");
        assert_eq!(
            t.open(ip("192.168.1.7")),
            2,
            "the refused one is not counted"
        );
        assert!(t.admit(ip("192.168.1.8")), "another client is not affected");
        t.release(ip("192.168.1.7"));
        assert!(t.admit(ip("192.168.1.7")), "room again after a close");
    }

    #[test]
    fn the_table_holds_only_clients_with_connections_open() {
        let mut t = PerClient::new(Some(1));
        for last in 1..=50u8 {
            assert!(t.admit(IpAddr::from([10, 0, 0, last])));
        }
        assert_eq!(t.clients(), 50);
        for last in 1..=50u8 {
            t.release(IpAddr::from([10, 0, 0, last]));
        }
        assert_eq!(t.clients(), 0);
        // A release without an admit (cannot happen) changes nothing.
        t.release(ip("10.9.9.9"));
        assert_eq!(t.clients(), 0);
    }

    #[test]
    fn refusals_are_warned_about_once_a_minute() {
        let mut t = PerClient::new(Some(1));
        let t0 = Instant::now();
        assert!(t.warn_now(t0));
        assert!(!t.warn_now(t0 + Duration::from_secs(59)));
        assert!(t.warn_now(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn without_a_limit_nothing_is_counted() {
        let mut t = PerClient::new(None);
        assert!(!t.limited());
        for _ in 0..1000 {
            assert!(t.admit(ip("127.0.0.1")));
        }
        assert_eq!(t.clients(), 0);
    }
}
