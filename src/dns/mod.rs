//! Name resolution off the event loop.
//!
//! `getaddrinfo` blocks, so lookups run on one or two helper threads. The loop asks
//! with [`Resolver::lookup`]; a finished lookup is sent back over a channel and the
//! shared [`mio::Waker`] wakes the loop, which then calls [`Resolver::drain`] to get
//! every `(waiter, answer)` pair to deliver. Everything else — the cache, sharing one
//! query between waiters, the in-flight cap — lives on the loop thread, so the helper
//! threads hold no state but the request they work on.
//!
//! Names in `--hosts` ([`hosts::Hosts`]) are answered from that table before any of
//! this, as IP literals are.

pub mod hosts;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::panic::{self, RefUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mio::Waker;

use hosts::Hosts;

/// Most cached hosts (answers and failures together).
const CACHE_CAP: usize = 4096;
/// Most distinct hosts being looked up at once. Beyond it lookups fail at once rather
/// than queue without bound behind a slow DNS server.
const MAX_IN_FLIGHT: usize = 256;
/// Most addresses kept per host: a connection never tries more, and a host answering
/// with hundreds of records must not make its cache entry that large.
const MAX_ADDRS: usize = 16;

const UNAVAILABLE: &str = "resolver unavailable";
const TOO_MANY: &str = "too many DNS lookups in flight";
/// std's prefix on every `getaddrinfo` error; our own prefix says the same more briefly.
const STD_PREFIX: &str = "failed to lookup address information: ";

/// Identifies who waits for a lookup: the slab key and the connection's unique id (a
/// generation: the slab key may be reused by a new connection before the answer arrives,
/// so the loop drops answers whose id no longer matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    /// The waiting connection's slab key.
    pub key: usize,
    /// The waiting connection's unique id.
    pub id: u64,
}

/// The addresses of a host, in the resolver's order without duplicates and never empty,
/// or a short reason for the failure, fit for an error page.
pub type Answer = Result<Arc<[IpAddr]>, String>;

/// What [`Resolver::lookup`] knows at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The answer; the waiter was not queued.
    Ready(Answer),
    /// The waiter was queued; its answer comes out of a later [`Resolver::drain`].
    Pending,
}

struct Cached {
    at: Instant,
    answer: Answer,
}

impl Cached {
    fn is_fresh(&self, now: Instant, ttl: Duration, negative_ttl: Duration) -> bool {
        let ttl = if self.answer.is_ok() {
            ttl
        } else {
            negative_ttl
        };
        now.saturating_duration_since(self.at) < ttl
    }
}

/// Asynchronous, caching host name resolver for the event loop. Not shared between
/// threads: only the loop thread calls it.
pub struct Resolver {
    /// Hosts for the helper threads. Dropping the resolver closes it, which ends them.
    requests: Sender<String>,
    answers: Receiver<(String, Answer)>,
    /// Hosts being looked up and who waits for each; at most one query per host.
    in_flight: HashMap<String, Vec<Waiter>>,
    cache: HashMap<String, Cached>,
    /// `--hosts`: names answered without a query.
    hosts: Hosts,
    ttl: Duration,
    negative_ttl: Duration,
}

impl Resolver {
    /// Starts `threads` helper threads (at least one) that resolve with the system
    /// resolver and wake `waker` after each answer. Answers are cached for `ttl`,
    /// failures for `negative_ttl`.
    ///
    /// # Errors
    /// A helper thread could not be spawned; threads already started then exit.
    pub fn new(
        waker: Arc<Waker>,
        threads: usize,
        ttl: Duration,
        negative_ttl: Duration,
    ) -> std::io::Result<Resolver> {
        Resolver::start(waker, threads.max(1), ttl, negative_ttl, system_resolve)
    }

    /// [`Resolver::new`] with the resolving function injected, so tests can count and
    /// steer queries.
    pub(crate) fn start<F>(
        waker: Arc<Waker>,
        threads: usize,
        ttl: Duration,
        negative_ttl: Duration,
        resolve: F,
    ) -> std::io::Result<Resolver>
    where
        F: Fn(&str) -> Answer + Send + Sync + RefUnwindSafe + 'static,
    {
        let (requests, requests_rx) = mpsc::channel();
        let (answers_tx, answers) = mpsc::channel();
        let requests_rx = Arc::new(Mutex::new(requests_rx));
        let resolve = Arc::new(resolve);
        for _ in 0..threads {
            let requests_rx = Arc::clone(&requests_rx);
            let answers_tx = answers_tx.clone();
            let waker = Arc::clone(&waker);
            let resolve = Arc::clone(&resolve);
            thread::Builder::new()
                .name("larder-dns".to_owned())
                .spawn(move || work(&requests_rx, &answers_tx, &waker, &*resolve))?;
        }
        Ok(Resolver {
            requests,
            answers,
            in_flight: HashMap::new(),
            cache: HashMap::new(),
            hosts: Hosts::default(),
            ttl,
            negative_ttl,
        })
    }

    /// Answers the names of `hosts` from it from now on, in place of any table before.
    pub fn set_hosts(&mut self, hosts: Hosts) {
        self.hosts = hosts;
    }

    /// Looks up `host` (already lowercase; an IPv6 literal without brackets) for `waiter`.
    ///
    /// IP literals, names in `--hosts`, and cached, unexpired answers are `Ready` at once. Otherwise the
    /// waiter is queued behind the query for `host` already in flight, or a new query
    /// is sent, and the answer comes out of a later [`Resolver::drain`]. `Ready(Err)`
    /// also when too many hosts are in flight or the helper threads are gone.
    pub fn lookup(&mut self, host: &str, waiter: Waiter, now: Instant) -> Lookup {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Lookup::Ready(Ok(Arc::from([ip])));
        }
        if let Some(ips) = self.hosts.get(host) {
            return Lookup::Ready(Ok(Arc::clone(ips)));
        }
        if let Some(cached) = self.cache.get(host) {
            if cached.is_fresh(now, self.ttl, self.negative_ttl) {
                return Lookup::Ready(cached.answer.clone());
            }
        }
        if let Some(waiters) = self.in_flight.get_mut(host) {
            waiters.push(waiter);
            return Lookup::Pending;
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return Lookup::Ready(Err(TOO_MANY.to_owned()));
        }
        if self.requests.send(host.to_owned()).is_err() {
            return Lookup::Ready(Err(UNAVAILABLE.to_owned()));
        }
        self.in_flight.insert(host.to_owned(), vec![waiter]);
        Lookup::Pending
    }

    /// Collects the finished lookups without blocking, caches them, and returns every
    /// waiter still queued with its answer. Call it after the waker fired.
    ///
    /// If the helper threads are gone, every queued waiter gets `Err` now rather than
    /// waiting forever.
    pub fn drain(&mut self, now: Instant) -> Vec<(Waiter, Answer)> {
        let mut out = Vec::new();
        loop {
            match self.answers.try_recv() {
                Ok((host, answer)) => {
                    let waiters = self.in_flight.remove(&host).unwrap_or_default();
                    out.extend(waiters.into_iter().map(|w| (w, answer.clone())));
                    self.remember(host, answer, now);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    for (_, waiters) in self.in_flight.drain() {
                        out.extend(
                            waiters
                                .into_iter()
                                .map(|w| (w, Err(UNAVAILABLE.to_owned()))),
                        );
                    }
                    break;
                }
            }
        }
        out
    }

    /// Forgets `waiter` (its connection closed). The query it waited for goes on, so its
    /// answer is still cached.
    pub fn cancel(&mut self, waiter: Waiter) {
        for waiters in self.in_flight.values_mut() {
            if let Some(i) = waiters.iter().position(|w| *w == waiter) {
                waiters.swap_remove(i);
                return;
            }
        }
    }

    /// Distinct hosts being looked up.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn remember(&mut self, host: String, answer: Answer, now: Instant) {
        if self.cache.len() >= CACHE_CAP && !self.cache.contains_key(&host) {
            let (ttl, negative_ttl) = (self.ttl, self.negative_ttl);
            self.cache.retain(|_, c| c.is_fresh(now, ttl, negative_ttl));
            if self.cache.len() >= CACHE_CAP {
                let victim = self.cache.keys().next().cloned();
                if let Some(victim) = victim {
                    self.cache.remove(&victim);
                }
            }
        }
        self.cache.insert(host, Cached { at: now, answer });
    }
}

/// A helper thread: resolves hosts until the resolver is dropped.
fn work(
    requests: &Mutex<Receiver<String>>,
    answers: &Sender<(String, Answer)>,
    waker: &Waker,
    resolve: &(dyn Fn(&str) -> Answer + Sync + RefUnwindSafe),
) {
    loop {
        // The lock is held only while waiting, never while resolving, so the other
        // thread takes the next host meanwhile.
        let next = match requests.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(host) = next else { return };
        // A panic in the system resolver fails this lookup, not the thread: a dead
        // thread would leave its waiters, and every later waiter for the host, hanging.
        let answer = panic::catch_unwind(|| resolve(&host))
            .unwrap_or_else(|_| Err("lookup failed: resolver panicked".to_owned()));
        if answers.send((host, answer)).is_err() {
            return;
        }
        if let Err(e) = waker.wake() {
            log::error!("DNS: cannot wake the event loop: {e}");
        }
    }
}

/// Resolves `host` with `getaddrinfo`.
fn system_resolve(host: &str) -> Answer {
    match (host, 0).to_socket_addrs() {
        Ok(addrs) => addresses(addrs),
        Err(e) => {
            let e = e.to_string();
            Err(format!(
                "lookup failed: {}",
                e.strip_prefix(STD_PREFIX).unwrap_or(&e)
            ))
        }
    }
}

/// The first [`MAX_ADDRS`] distinct addresses in the resolver's order: it already sorted
/// them by preference (RFC 6724), so IPv4 is not moved first.
fn addresses(addrs: impl Iterator<Item = SocketAddr>) -> Answer {
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in addrs.map(|a| a.ip()) {
        if ips.len() == MAX_ADDRS {
            break;
        }
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        Err("no such host".to_owned())
    } else {
        Ok(Arc::from(ips))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const WAKE: Token = Token(0);
    const TTL: Duration = Duration::from_secs(60);
    const NEG_TTL: Duration = Duration::from_secs(5);

    fn w(key: usize) -> Waiter {
        Waiter {
            key,
            id: key as u64 + 100,
        }
    }

    fn poll_and_waker() -> (Poll, Arc<Waker>) {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        (poll, waker)
    }

    /// Polls and drains until no lookup is in flight; every poll must be woken by the
    /// resolver, not time out.
    fn settle(poll: &mut Poll, r: &mut Resolver, now: Instant) -> Vec<(Waiter, Answer)> {
        let mut events = Events::with_capacity(4);
        let mut out = Vec::new();
        while r.in_flight() > 0 {
            poll.poll(&mut events, Some(Duration::from_secs(10)))
                .unwrap();
            assert!(!events.is_empty(), "no wake within 10 s");
            assert!(events.iter().all(|e| e.token() == WAKE));
            out.extend(r.drain(now));
        }
        out
    }

    /// A resolver whose helper counts queries and answers `answer` for every host.
    fn counting(waker: Arc<Waker>, answer: Answer) -> (Resolver, Arc<AtomicUsize>) {
        let queries = Arc::new(AtomicUsize::new(0));
        let q = Arc::clone(&queries);
        let r = Resolver::start(waker, 1, TTL, NEG_TTL, move |_: &str| {
            q.fetch_add(1, Ordering::SeqCst);
            answer.clone()
        })
        .unwrap();
        (r, queries)
    }

    fn ten() -> Answer {
        Ok(Arc::from([IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]))
    }

    #[test]
    fn localhost_resolves_to_loopback_and_wakes_the_poll() {
        let (mut poll, waker) = poll_and_waker();
        let mut r = Resolver::new(waker, 2, TTL, NEG_TTL).unwrap();
        let now = Instant::now();
        assert_eq!(r.lookup("localhost", w(1), now), Lookup::Pending);
        let got = settle(&mut poll, &mut r, now);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, w(1));
        let ips = got[0].1.as_ref().unwrap();
        assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
        assert!(ips.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{ips:?}");
        assert_eq!(r.in_flight(), 0);
    }

    /// A name no resolver can answer, whatever this machine's DNS does: its first label
    /// is 64 bytes, one more than DNS allows, so the resolver library refuses it
    /// without sending a query (no NXDOMAIN needed, no packet leaves the machine, no
    /// wildcard or captive resolver can answer it); under `.invalid` in case a library
    /// asks anyway. Any failure will do: only the shape of the error is checked.
    #[test]
    fn unresolvable_host_is_an_error() {
        let (mut poll, waker) = poll_and_waker();
        let mut r = Resolver::new(waker, 1, TTL, NEG_TTL).unwrap();
        let now = Instant::now();
        let host = format!("{}.invalid", "a".repeat(64));
        assert_eq!(r.lookup(&host, w(1), now), Lookup::Pending);
        let got = settle(&mut poll, &mut r, now);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, w(1));
        let err = got[0].1.as_ref().unwrap_err();
        assert!(
            err.starts_with("lookup failed: ") && !err.contains(STD_PREFIX),
            "{err}"
        );
    }

    #[test]
    fn concurrent_lookups_for_one_host_share_one_query() {
        let (mut poll, waker) = poll_and_waker();
        let (mut r, queries) = counting(waker, ten());
        let now = Instant::now();
        assert_eq!(r.lookup("a.example", w(1), now), Lookup::Pending);
        assert_eq!(r.lookup("a.example", w(2), now), Lookup::Pending);
        assert_eq!(r.lookup("b.example", w(3), now), Lookup::Pending);
        assert_eq!(r.in_flight(), 2);
        let mut got = settle(&mut poll, &mut r, now);
        got.sort_by_key(|(w, _)| w.key);
        assert_eq!(got, vec![(w(1), ten()), (w(2), ten()), (w(3), ten())]);
        assert_eq!(queries.load(Ordering::SeqCst), 2);
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn cached_answer_is_ready_without_a_query_until_the_ttl_expires() {
        let (mut poll, waker) = poll_and_waker();
        let (mut r, queries) = counting(waker, ten());
        let t0 = Instant::now();
        assert_eq!(r.lookup("a.example", w(1), t0), Lookup::Pending);
        settle(&mut poll, &mut r, t0);
        let almost = t0 + TTL - Duration::from_millis(1);
        assert_eq!(r.lookup("a.example", w(2), almost), Lookup::Ready(ten()));
        assert_eq!(queries.load(Ordering::SeqCst), 1);
        assert_eq!(r.in_flight(), 0);

        assert_eq!(r.lookup("a.example", w(3), t0 + TTL), Lookup::Pending);
        assert_eq!(settle(&mut poll, &mut r, t0 + TTL), vec![(w(3), ten())]);
        assert_eq!(queries.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn failures_are_cached_for_the_negative_ttl() {
        let (mut poll, waker) = poll_and_waker();
        let fail: Answer = Err("no such host".to_owned());
        let (mut r, queries) = counting(waker, fail.clone());
        let t0 = Instant::now();
        assert_eq!(r.lookup("gone.example", w(1), t0), Lookup::Pending);
        assert_eq!(settle(&mut poll, &mut r, t0), vec![(w(1), fail.clone())]);
        let almost = t0 + NEG_TTL - Duration::from_millis(1);
        assert_eq!(r.lookup("gone.example", w(2), almost), Lookup::Ready(fail));
        assert_eq!(
            r.lookup("gone.example", w(3), t0 + NEG_TTL),
            Lookup::Pending
        );
        settle(&mut poll, &mut r, t0 + NEG_TTL);
        assert_eq!(queries.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn ip_literals_skip_threads_and_cache() {
        let (_poll, waker) = poll_and_waker();
        let (mut r, queries) = counting(waker, ten());
        let now = Instant::now();
        assert_eq!(r.lookup("10.0.0.1", w(1), now), Lookup::Ready(ten()));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            r.lookup("::1", w(2), now),
            Lookup::Ready(Ok(Arc::from([v6])))
        );
        assert_eq!(r.in_flight(), 0);
        assert!(r.cache.is_empty());
        assert!(r.drain(now).is_empty());
        assert_eq!(queries.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn names_in_the_hosts_table_skip_threads_and_cache() {
        let (_poll, waker) = poll_and_waker();
        let (mut r, queries) = counting(waker, ten());
        r.set_hosts(Hosts::parse("::1 dual.test\n127.0.0.1 dual.test\n").unwrap());
        let now = Instant::now();
        let both: Answer = Ok(Arc::from([
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        ]));
        assert_eq!(r.lookup("dual.test", w(1), now), Lookup::Ready(both));
        assert_eq!(r.in_flight(), 0);
        assert_eq!(queries.load(Ordering::SeqCst), 0);
        // Other names still go to the resolver.
        assert_eq!(r.lookup("a.example", w(2), now), Lookup::Pending);
    }

    #[test]
    fn cancelled_waiter_gets_no_answer_but_the_answer_is_cached() {
        let (mut poll, waker) = poll_and_waker();
        let (mut r, _) = counting(waker, ten());
        let now = Instant::now();
        r.lookup("a.example", w(1), now);
        r.lookup("a.example", w(2), now);
        r.cancel(w(1));
        r.lookup("b.example", w(3), now);
        r.cancel(w(3));
        let got = settle(&mut poll, &mut r, now);
        assert_eq!(got, vec![(w(2), ten())]);
        assert_eq!(r.lookup("b.example", w(4), now), Lookup::Ready(ten()));
    }

    #[test]
    fn in_flight_lookups_are_capped_but_sharing_still_works() {
        let (_poll, waker) = poll_and_waker();
        let (mut r, _) = counting(waker, ten());
        let now = Instant::now();
        for i in 0..MAX_IN_FLIGHT {
            assert_eq!(
                r.lookup(&format!("h{i}.example"), w(i), now),
                Lookup::Pending
            );
        }
        assert_eq!(
            r.lookup("one-more.example", w(999), now),
            Lookup::Ready(Err(TOO_MANY.to_owned()))
        );
        assert_eq!(r.lookup("h0.example", w(1000), now), Lookup::Pending);
        assert_eq!(r.in_flight(), MAX_IN_FLIGHT);
    }

    #[test]
    fn cache_never_grows_past_its_cap() {
        let (_poll, waker) = poll_and_waker();
        let (mut r, _) = counting(waker, ten());
        let t0 = Instant::now();
        for i in 0..CACHE_CAP {
            r.remember(format!("old{i}"), ten(), t0);
        }
        // The old entries have expired by now, so they go first.
        let later = t0 + TTL;
        r.remember("new0".to_owned(), ten(), later);
        assert_eq!(r.cache.len(), 1);
        for i in 1..CACHE_CAP + 10 {
            r.remember(format!("new{i}"), ten(), later);
        }
        assert_eq!(r.cache.len(), CACHE_CAP);
        assert_eq!(
            r.lookup(&format!("new{}", CACHE_CAP + 9), w(1), later),
            Lookup::Ready(ten())
        );
    }

    #[test]
    fn panicking_lookup_fails_that_host_and_the_thread_survives() {
        let (mut poll, waker) = poll_and_waker();
        let mut r = Resolver::start(waker, 1, TTL, NEG_TTL, |host: &str| {
            if host == "boom.example" {
                panic!("test panic in the resolver");
            }
            ten()
        })
        .unwrap();
        let now = Instant::now();
        r.lookup("boom.example", w(1), now);
        let got = settle(&mut poll, &mut r, now);
        assert_eq!(
            got,
            vec![(w(1), Err("lookup failed: resolver panicked".to_owned()))]
        );
        r.lookup("ok.example", w(2), now);
        assert_eq!(settle(&mut poll, &mut r, now), vec![(w(2), ten())]);
    }

    #[test]
    fn without_threads_lookups_fail_instead_of_hanging() {
        let (_poll, waker) = poll_and_waker();
        let mut r = Resolver::start(waker, 0, TTL, NEG_TTL, |_: &str| ten()).unwrap();
        let now = Instant::now();
        assert_eq!(
            r.lookup("a.example", w(1), now),
            Lookup::Ready(Err(UNAVAILABLE.to_owned()))
        );
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn queued_waiters_fail_when_the_threads_are_gone() {
        let (_poll, waker) = poll_and_waker();
        let (mut r, _) = counting(waker, ten());
        let now = Instant::now();
        r.lookup("a.example", w(1), now);
        // Stands in for every helper thread having died before answering.
        r.answers = mpsc::channel().1;
        assert_eq!(r.drain(now), vec![(w(1), Err(UNAVAILABLE.to_owned()))]);
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn threads_exit_when_the_resolver_is_dropped() {
        let (_poll, waker) = poll_and_waker();
        let token = Arc::new(());
        let held = Arc::clone(&token);
        let r = Resolver::start(waker, 2, TTL, NEG_TTL, move |_: &str| {
            let _ = &held;
            ten()
        })
        .unwrap();
        drop(r);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&token) > 1 {
            assert!(Instant::now() < deadline, "helper threads still running");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn addresses_keep_the_resolver_order_without_duplicates() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        // getaddrinfo returns each address once per socket type.
        let addrs = [v6, v6, v4, v4, v6].map(|ip| SocketAddr::new(ip, 0));
        assert_eq!(addresses(addrs.into_iter()), Ok(Arc::from([v6, v4])));
        assert_eq!(addresses([].into_iter()), Err("no such host".to_owned()));
    }

    #[test]
    fn addresses_are_capped() {
        let many = (0..=255).map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 0));
        assert_eq!(addresses(many).map(|ips| ips.len()), Ok(MAX_ADDRS));
    }
}
