//! Upstream (origin) sockets and the pool of idle keep-alive ones.
//!
//! Upstream sockets live in their own slab, apart from client connections, so a
//! socket keeps one token for its whole life: it is registered once when created
//! and moves between a client connection and the idle pool by changing `owner`
//! only, never by re-registering (see docs/ARCHITECTURE.md, "Tokens").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use super::Readiness;
use crate::buf::Buf;

/// Idle upstream connections kept per origin (host, port).
pub const POOL_PER_ORIGIN: usize = 128;
/// Idle upstream connections kept in all.
pub const POOL_TOTAL: usize = 1024;

/// One socket to an origin server.
#[derive(Debug)]
pub struct Upstream {
    pub sock: TcpStream,
    pub ready: Readiness,
    /// Bytes read from the origin not yet relayed.
    pub inbuf: Buf,
    pub host: Box<str>,
    pub port: u16,
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
}

impl Upstream {
    pub fn new(sock: TcpStream, host: &str, port: u16, addr: SocketAddr) -> Upstream {
        Upstream {
            sock,
            ready: Readiness::default(),
            inbuf: Buf::new(),
            host: host.into(),
            port,
            addr,
            owner: None,
            connected: false,
            reused: false,
            eof: false,
            idle_deadline: None,
        }
    }
}

/// Idle upstream sockets by origin, most recently used last (reusing the warmest
/// socket first keeps the TCP window open and lets cold ones time out).
#[derive(Debug, Default)]
pub struct Pool {
    by_host: HashMap<Box<str>, Vec<usize>>,
    len: usize,
}

impl Pool {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes an idle socket to `host:port`, if one is pooled. `ups` resolves the
    /// indices to their ports.
    ///
    /// An origin's list stays when it empties (until [`Pool::sweep`]): a busy origin's
    /// sockets come and go with every request, and dropping and re-making its entry
    /// each time would cost two allocations and two more hashes per request.
    pub fn take(&mut self, host: &str, port: u16, ports: impl Fn(usize) -> u16) -> Option<usize> {
        let list = self.by_host.get_mut(host)?;
        let pos = list.iter().rposition(|&i| ports(i) == port)?;
        let idx = list.remove(pos);
        self.len -= 1;
        Some(idx)
    }

    /// Drops the lists of origins with no idle socket (the loop's tick calls it), so
    /// the table holds only origins used lately.
    pub fn sweep(&mut self) {
        self.by_host.retain(|_, list| !list.is_empty());
    }

    /// Origins the table holds, idle sockets or not.
    pub fn origins(&self) -> usize {
        self.by_host.len()
    }

    /// Puts an idle socket back. Returns `false` (the caller closes it) when the
    /// origin's or the pool's bound is reached.
    pub fn put(&mut self, host: &str, idx: usize) -> bool {
        if self.len >= POOL_TOTAL {
            return false;
        }
        // Look up before inserting: `entry` would allocate a key every time.
        let list = match self.by_host.get_mut(host) {
            Some(list) => list,
            None => self.by_host.entry(host.into()).or_default(),
        };
        if list.len() >= POOL_PER_ORIGIN {
            return false;
        }
        list.push(idx);
        self.len += 1;
        true
    }

    /// Forgets a pooled socket that is being closed (the origin closed it, or it
    /// idled out).
    pub fn remove(&mut self, host: &str, idx: usize) {
        if let Some(list) = self.by_host.get_mut(host) {
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

    #[test]
    fn pool_takes_most_recent_socket_for_the_right_port() {
        let mut p = Pool::default();
        assert!(p.put("a", 1) && p.put("a", 2) && p.put("a", 3));
        let port = |i: usize| if i == 3 { 81 } else { 80 };
        assert_eq!(p.take("a", 80, port), Some(2));
        assert_eq!(p.take("a", 81, port), Some(3));
        assert_eq!(p.take("a", 81, port), None);
        assert_eq!(p.len(), 1);
        p.remove("a", 1);
        assert!(p.is_empty());
        assert_eq!(p.take("a", 80, port), None);
        // The emptied origin's list waits for the sweep.
        assert_eq!(p.origins(), 1);
        p.sweep();
        assert_eq!(p.origins(), 0);
        assert!(p.put("a", 4));
        p.sweep();
        assert_eq!((p.origins(), p.len()), (1, 1));
    }

    #[test]
    fn pool_is_bounded_per_origin() {
        let mut p = Pool::default();
        for i in 0..POOL_PER_ORIGIN {
            assert!(p.put("a", i));
        }
        assert!(!p.put("a", 9999));
        assert!(p.put("b", 9999));
    }
}
