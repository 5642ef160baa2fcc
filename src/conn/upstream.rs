//! Upstream (origin) sockets and the pool of idle keep-alive ones.
//!
//! Upstream sockets live in their own slab, apart from client connections, so a
//! socket keeps one token for its whole life: it is registered once when created
//! and moves between a client connection and the idle pool by changing `owner`
//! only, never by re-registering (see docs/ARCHITECTURE.md, "Tokens").

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::time::Instant;

use super::Stream;

use super::Readiness;
use crate::buf::Buf;
use crate::cache::{IdHasher, KeyedHash};

/// Idle upstream connections kept per origin (host, port).
pub const POOL_PER_ORIGIN: usize = 128;
/// Idle upstream connections kept in all.
pub const POOL_TOTAL: usize = 1024;

/// One socket to an origin server.
#[derive(Debug)]
pub struct Upstream<S = Stream> {
    /// The socket to the origin.
    pub sock: S,
    /// What is known of the socket's readiness.
    pub ready: Readiness,
    /// Bytes read from the origin not yet relayed.
    pub inbuf: Buf,
    /// The origin's host, as in the request target.
    pub host: Box<str>,
    /// The origin's port.
    pub port: u16,
    /// [`Pool::key`] of (host, port), computed once when the socket is made: putting
    /// it back in the pool after every exchange then hashes nothing.
    pub pool_key: u64,
    /// The address connected to.
    pub addr: SocketAddr,
    /// The client connection using it: (slab key, connection id). `None` while pooled.
    pub owner: Option<(usize, u64)>,
    /// The TCP handshake finished.
    pub connected: bool,
    /// It has carried a complete exchange before, so a failure before the first
    /// response byte may just mean the origin closed it while it was idle.
    pub reused: bool,
    /// The origin half-closed (EOF seen).
    pub eof: bool,
    /// While pooled: when it is closed for idleness.
    pub idle_deadline: Option<Instant>,
    /// The socket goes to parent proxy number `.0` (`host` and `port` are the
    /// parent's), not to an origin: every origin's requests through that parent share
    /// it.
    pub parent: Option<u8>,
    /// Its address is one clients on other machines may not reach (`conn::dest`):
    /// such a client never takes it from the pool.
    pub closed_to_others: bool,
    /// Besides, the request's host is a name, not judged before the cache: what it
    /// fetches is not stored (`conn::dest::keep_private`).
    pub keep_private: bool,
}

impl<S> Upstream<S> {
    /// A socket just opened to `addr` for the origin `host:port`: not yet connected,
    /// not owned, not pooled. `pool_key` is [`Pool::key`] of the origin.
    pub fn new(sock: S, host: &str, port: u16, pool_key: u64, addr: SocketAddr) -> Upstream<S> {
        Upstream {
            sock,
            ready: Readiness::default(),
            inbuf: Buf::new(),
            host: host.into(),
            port,
            pool_key,
            addr,
            owner: None,
            connected: false,
            reused: false,
            eof: false,
            idle_deadline: None,
            parent: None,
            closed_to_others: false,
            keep_private: false,
        }
    }
}

/// Idle upstream sockets by origin (host, port), most recently used last (reusing the
/// warmest socket first keeps the TCP window open and lets cold ones time out).
///
/// The table is keyed by [`Pool::key`], a keyed hash of the origin, so a request
/// hashes its origin once (to take) and a socket going back hashes nothing (its
/// [`Upstream::pool_key`]). Two origins may share a key (rarely, and no client can
/// aim for it: the hash key is random per process), so `take` asks the caller
/// whether a pooled socket really goes to the origin wanted.
#[derive(Debug, Default)]
pub struct Pool {
    by_origin: HashMap<u64, Vec<usize>, BuildHasherDefault<IdHasher>>,
    /// The origins' hash (see [`KeyedHash`] for why a folded multiply, not SipHash:
    /// a shared key costs `take` only a longer list to search, as it checks the
    /// origin anyway).
    keys: KeyedHash,
    len: usize,
}

impl Pool {
    /// Idle sockets in the pool.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No socket is pooled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The table key of the origin `host:port`.
    pub fn key(&self, host: &str, port: u16) -> u64 {
        self.keys.hash(u64::from(port), host.as_bytes())
    }

    /// Takes the most recently pooled socket under `key` for which `same_origin` (given
    /// its index) holds, if any.
    ///
    /// An origin's list stays when it empties (until [`Pool::sweep`]): a busy origin's
    /// sockets come and go with every request, and dropping and re-making its entry
    /// each time would cost an allocation and a table insert per request.
    pub fn take(&mut self, key: u64, same_origin: impl Fn(usize) -> bool) -> Option<usize> {
        let list = self.by_origin.get_mut(&key)?;
        let pos = list.iter().rposition(|&i| same_origin(i))?;
        // Almost always the last (the most recent): popped, without the call that
        // `remove` makes to move the rest.
        let idx = if pos + 1 == list.len() {
            list.pop()?
        } else {
            list.remove(pos)
        };
        self.len -= 1;
        Some(idx)
    }

    /// Drops the lists of origins with no idle socket (the loop's tick calls it), so
    /// the table holds only origins used lately.
    pub fn sweep(&mut self) {
        self.by_origin.retain(|_, list| !list.is_empty());
    }

    /// Origins the table holds, idle sockets or not.
    pub fn origins(&self) -> usize {
        self.by_origin.len()
    }

    /// Puts an idle socket back under its origin's `key`. Returns `false` (the caller
    /// closes it) when the origin's or the pool's bound is reached.
    pub fn put(&mut self, key: u64, idx: usize) -> bool {
        if self.len >= POOL_TOTAL {
            return false;
        }
        let list = self.by_origin.entry(key).or_default();
        if list.len() >= POOL_PER_ORIGIN {
            return false;
        }
        list.push(idx);
        self.len += 1;
        true
    }

    /// Forgets a pooled socket that is being closed (the origin closed it, or it
    /// idled out).
    pub fn remove(&mut self, key: u64, idx: usize) {
        if let Some(list) = self.by_origin.get_mut(&key) {
            if let Some(pos) = list.iter().position(|&i| i == idx) {
                list.remove(pos);
                self.len -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host and port must not run together, nor a host's last bytes be lost to
    /// the word it fills only in part.
    #[test]
    fn pool_keys_keep_origins_apart() {
        let p = Pool::default();
        let keys = [
            p.key("a", 0x6200),
            p.key("ab", 0),
            p.key("a", 0x62),
            p.key("", 0x6162),
            p.key("b", 0x6200),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(p.key("ab", 0), keys[1]);
        // Every host from 0 to 20 bytes long, and each with its last byte changed.
        let mut seen = std::collections::HashSet::new();
        for len in 0..=20 {
            let host = "h".repeat(len);
            assert!(seen.insert(p.key(&host, 80)), "{host}");
            assert!(seen.insert(p.key(&host, 81)), "{host}:81");
            if len > 0 {
                let changed = format!("{}g", &host[1..]);
                assert!(seen.insert(p.key(&changed, 80)), "{changed}");
            }
        }
        // Keyed per pool, so per process.
        assert_ne!(Pool::default().key("a", 80), Pool::default().key("a", 80));
    }

    #[test]
    fn pool_takes_most_recent_socket_for_the_right_origin() {
        let mut p = Pool::default();
        let (a80, a81) = (p.key("a", 80), p.key("a", 81));
        assert_ne!(a80, a81);
        assert_eq!(a80, p.key("a", 80));
        assert!(p.put(a80, 1) && p.put(a80, 2) && p.put(a81, 3));
        let any = |_: usize| true;
        assert_eq!(p.take(a80, any), Some(2));
        assert_eq!(p.take(a81, any), Some(3));
        assert_eq!(p.take(a81, any), None);
        assert_eq!(p.len(), 1);
        p.remove(a80, 1);
        assert!(p.is_empty());
        assert_eq!(p.take(a80, any), None);
        // The emptied origins' lists wait for the sweep.
        assert_eq!(p.origins(), 2);
        p.sweep();
        assert_eq!(p.origins(), 0);
        assert!(p.put(a80, 4));
        p.sweep();
        assert_eq!((p.origins(), p.len()), (1, 1));
    }

    #[test]
    fn pool_skips_sockets_of_another_origin_under_the_same_key() {
        // A key collision (forced here) must not hand out a socket to the wrong
        // origin: `take` asks the caller, who compares host and port.
        let mut p = Pool::default();
        assert!(p.put(7, 1) && p.put(7, 2) && p.put(7, 3));
        let origin_of = |i: usize| if i == 2 { "b" } else { "a" };
        assert_eq!(p.take(7, |i| origin_of(i) == "a"), Some(3));
        assert_eq!(p.take(7, |i| origin_of(i) == "b"), Some(2));
        assert_eq!(p.take(7, |i| origin_of(i) == "b"), None);
        assert_eq!(p.len(), 1);
    }

    /// The most recent match is popped, one further in is removed: either way the
    /// others stay, in their order.
    #[test]
    fn pool_takes_the_last_match_wherever_it_is() {
        let mut p = Pool::default();
        for i in 1..=5 {
            assert!(p.put(7, i));
        }
        let even = |i: usize| i.is_multiple_of(2);
        assert_eq!(p.take(7, even), Some(4), "from the middle");
        assert_eq!(p.take(7, |_| true), Some(5), "the last");
        assert_eq!(p.take(7, even), Some(2));
        assert_eq!(p.take(7, even), None);
        assert_eq!(p.len(), 2);
        assert_eq!(p.take(7, |_| true), Some(3));
        assert_eq!(p.take(7, |_| true), Some(1));
        assert!(p.is_empty());
    }

    #[test]
    fn pool_is_bounded_per_origin() {
        let mut p = Pool::default();
        let (a, b) = (p.key("a", 80), p.key("b", 80));
        for i in 0..POOL_PER_ORIGIN {
            assert!(p.put(a, i));
        }
        assert!(!p.put(a, 9999));
        assert!(p.put(b, 9999));
    }
}
