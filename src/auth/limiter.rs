//! Failed logins by client address: after a few free tries, each further credential
//! from the address is verified only once a delay has passed since its last failure,
//! a delay that doubles with each failure (1 s, 2 s, 4 s … at most a minute). Until
//! then an unknown credential is refused with a 407 at once, without verifying it,
//! so guessing costs the guesser time and costs larder no hashing. Credentials larder
//! already verified still pass: a user's own browser is never locked out by someone
//! guessing from the same address. The table is bounded: entries are forgotten ten
//! minutes after their last failure, and when it is full, the oldest goes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures that cost no delay (a mistyped password or two, a browser's first try).
pub const FREE: u32 = 3;
/// The delay after the first failure beyond the free ones.
pub const BASE: Duration = Duration::from_secs(1);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// An address is forgotten this long after its last failure.
pub const FORGET: Duration = Duration::from_secs(600);
/// Most addresses in the table.
pub const CAP: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed attempts per client address (IPv6 by /64: one host has a whole prefix).
#[derive(Debug, Default)]
pub struct Limiter {
    table: HashMap<IpAddr, Failures>,
}

/// The delay after `count` failures.
pub fn delay(count: u32) -> Duration {
    if count < FREE {
        return Duration::ZERO;
    }
    let shift = (count - FREE).min(16);
    (BASE * (1u32 << shift)).min(MAX_DELAY)
}

fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Limiter {
    /// Whether a new credential from `ip` may be verified now.
    pub fn allows(&self, ip: IpAddr, now: Instant) -> bool {
        self.table
            .get(&key(ip))
            .is_none_or(|f| now >= f.last + delay(f.count))
    }

    /// A credential from `ip` failed.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        let k = key(ip);
        if self.table.len() >= CAP && !self.table.contains_key(&k) {
            self.table
                .retain(|_, f| now.saturating_duration_since(f.last) < FORGET);
            if self.table.len() >= CAP {
                let oldest = self
                    .table
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    self.table.remove(&oldest);
                }
            }
        }
        let f = self.table.entry(k).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(f.last) >= FORGET {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    /// Addresses in the table.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// The table is empty.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn delays_double_after_the_free_tries_up_to_a_minute() {
        assert_eq!(delay(0), Duration::ZERO);
        assert_eq!(delay(FREE - 1), Duration::ZERO);
        assert_eq!(delay(FREE), BASE);
        assert_eq!(delay(FREE + 1), BASE * 2);
        assert_eq!(delay(FREE + 3), BASE * 8);
        assert_eq!(delay(FREE + 10), MAX_DELAY);
        assert_eq!(delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn an_address_waits_after_its_free_failures_and_others_do_not() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..FREE - 1 {
            l.failed(A, t0);
            assert!(l.allows(A, t0));
        }
        l.failed(A, t0);
        assert!(!l.allows(A, t0));
        assert!(!l.allows(A, t0 + BASE - Duration::from_millis(1)));
        assert!(l.allows(A, t0 + BASE));
        assert!(l.allows(B, t0));
        l.failed(A, t0 + BASE);
        assert!(!l.allows(A, t0 + BASE * 2));
        assert!(l.allows(A, t0 + BASE * 3));
        // Ten quiet minutes later the count starts again.
        let later = t0 + BASE + FORGET;
        l.failed(A, later);
        assert!(l.allows(A, later));
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        for _ in 0..FREE {
            l.failed(one, t0);
        }
        assert!(!l.allows(same, t0));
        assert!(l.allows(other, t0));
        // An IPv4-mapped address is its IPv4 address.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        for _ in 0..FREE {
            l.failed(mapped, t0);
        }
        assert!(!l.allows(A, t0));
        let _ = Ipv6Addr::LOCALHOST;
    }

    #[test]
    fn the_table_never_grows_past_its_cap() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..CAP as u32 + 100 {
            l.failed(
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert_eq!(l.len(), CAP);
        // The newest is still there; the oldest went.
        let newest = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + CAP as u32 + 99));
        assert!(l.table.contains_key(&newest));
        assert!(!l
            .table
            .contains_key(&IpAddr::V4(Ipv4Addr::from(0x0a00_0000))));
    }
}
