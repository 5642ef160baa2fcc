//! `Pair`: drives client connections and their upstreams in memory, with a clock the
//! test moves, the way the server would drive them over the network (quinn-proto's
//! `Pair` is the model).
//!
//! The harness plays the server's part: it accepts clients, sets each socket's
//! readiness from the in-memory socket's state (level-triggered, which the edge-
//! triggered code tolerates: a spurious readiness only costs a `WouldBlock`), steps
//! every connection until nothing moves, fires deadlines as the clock passes them,
//! and closes what a step finished. Time passes only in [`Pair::advance`], so a test
//! of a 60 s timeout runs in microseconds and cannot be flaky on a busy machine.

use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use clap::Parser;
use mio::{Poll, Waker};
use slab::Slab;

use super::mem::{MemSocket, Network};
use crate::acl::blocklist::Blocklist;
use crate::acl::Clients;
use crate::buf::{BufPool, HeadPool};
use crate::cache::TempDir;
use crate::cache::{unix_now, Options, Store};
use crate::config::{Cli, Config};
use crate::conn::cache::Cache;
use crate::conn::ctx::{Gauges, Spares};
use crate::conn::upstream::{Pool, Upstream};
use crate::conn::{self, Conn, Ctx, Scope, Socket, Step};
use crate::dns::{Answer, Resolver};
use crate::http::{Limits, ViaName};
use crate::stats::Stats;

/// How often the clock stops to fire deadlines while it moves (the server's tick).
const TICK: Duration = Duration::from_millis(100);

/// larder's own (pretend) listening address.
pub(crate) const LARDER: &str = "127.0.0.1:3128";

/// Client connections and upstreams of one pretend larder, in memory.
pub(crate) struct Pair {
    /// What the connections share; `ctx.now` is the harness's clock.
    pub(crate) ctx: Ctx,
    conns: Slab<Box<Conn<MemSocket>>>,
    ups: Slab<Upstream<MemSocket>>,
    next_id: u64,
    /// Kept for the resolver's waker.
    _poll: Poll,
    /// The waker the resolver and the password checks share.
    waker: std::sync::Arc<Waker>,
    /// [`Pair::run`] waits (in real time) for the verdicts connections wait for; a test
    /// of a check that never ends turns it off.
    pub(crate) wait_for_verdicts: bool,
    /// `ctx.now` and `ctx.unix` at the start: [`Pair::advance`] moves both.
    start: (Instant, u64),
    _dir: TempDir,
}

/// What [`Pair::fingerprint`] compares: each connection's key, state and buffered
/// bytes; the bytes queued in all sockets; the number of upstreams.
type Fingerprint = (Vec<(usize, &'static str, usize, usize)>, usize, usize);

/// A client of the pretend larder: the far end of its connection.
pub(crate) struct Client {
    /// The connection's slab key.
    pub(crate) key: usize,
    /// The connection's id (a key may be reused once it closes).
    id: u64,
    sock: Option<MemSocket>,
    /// Everything read so far.
    got: Vec<u8>,
}

impl Pair {
    /// A larder configured with the command-line flags `args`, its cache in a
    /// temporary file. Names are resolved by the system.
    pub(crate) fn new(args: &[&str]) -> Pair {
        Pair::with_names(args, |host| Err(format!("{host}: no such name here")))
    }

    /// [`Pair::new`] with names resolved by `names` (IP literals never reach it).
    pub(crate) fn with_names(
        args: &[&str],
        names: impl Fn(&str) -> Answer + Send + Sync + std::panic::RefUnwindSafe + 'static,
    ) -> Pair {
        Network::reset();
        let dir = TempDir::new("pair");
        let mut argv = vec!["larder", "--listen", LARDER];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("flags");
        let cfg: Config = cli.into();
        let poll = Poll::new().expect("poll");
        let waker = std::sync::Arc::new(Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let resolver = Resolver::start(
            std::sync::Arc::clone(&waker),
            1,
            Duration::from_secs(60),
            Duration::from_secs(5),
            names,
        )
        .expect("resolver");
        let auth = cfg.auth.clone().map(|settings| {
            crate::auth::Auth::new(settings, std::sync::Arc::clone(&waker)).expect("auth file")
        });
        let waker_kept = std::sync::Arc::clone(&waker);
        let registry = poll.registry().try_clone().expect("registry");
        let via = ViaName::new("larder-test".to_owned());
        // The unix clock starts at the real time and moves with `ctx.now`, as the
        // server reads both once per turn.
        let unix = unix_now();
        let store = Store::open_file(&dir.file(), Options::for_capacity(4 << 20), unix)
            .expect("cache file");
        let mut cache = Cache::configured(store, &cfg.cache, via.clone());
        cache.set_clock(unix);
        let locals = cfg.listen.clone();
        let clients = Clients::new(
            cfg.allow.clone(),
            cfg.deny.clone(),
            cfg.admin.clone(),
            cfg.proxy_protocol.clone(),
        );
        let cfg_allow_to = cfg.allow_to.clone();
        let cfg_per_client = cfg.max_conns_per_client;
        let cfg_congestion = cfg.tcp_congestion.clone();
        let now = Instant::now();
        let ctx = Ctx {
            cfg,
            limits: Limits::default(),
            via,
            now,
            bufs: BufPool::new(8),
            heads: HeadPool::default(),
            joined: Vec::new(),
            spares: Spares::default(),
            resolver,
            auth,
            pool: Pool::default(),
            registry,
            congestion: crate::conn::congestion::Congestion::choose(
                cfg_congestion.as_deref(),
                None,
                |_| true,
            ),
            clients,
            blocklist: Blocklist::new(Vec::new(), Vec::new(), Vec::new()).expect("blocklist"),
            dest: crate::acl::dest::Destinations::new(cfg_allow_to, &[]),
            per_client: crate::acl::per_client::PerClient::new(cfg_per_client),
            log: None,
            locals,
            unix,
            stats: Stats::new(unix),
            gauges: Gauges::default(),
            draining: false,
            stopping: false,
            cache,
            parents: crate::parents::Parents::default(),
            refreshes: Vec::new(),
        };
        Pair {
            ctx,
            conns: Slab::new(),
            ups: Slab::new(),
            next_id: 1,
            _poll: poll,
            waker: waker_kept,
            wait_for_verdicts: true,
            start: (now, unix),
            _dir: dir,
        }
    }

    /// A new client connection from 127.0.0.1, accepted as the server accepts one.
    pub(crate) fn client(&mut self) -> Client {
        self.client_from("127.0.0.1:40000")
    }

    /// A new client connection from `peer`, accepted as the server accepts one.
    pub(crate) fn client_from(&mut self, peer: &str) -> Client {
        let (ours, theirs) = MemSocket::pair();
        let peer: SocketAddr = peer.parse().expect("address");
        let mut conn = Conn::new(self.next_id, ours, peer);
        conn::accepted(&mut conn, &self.ctx);
        let id = self.next_id;
        self.next_id += 1;
        let key = self.conns.insert(Box::new(conn));
        Client {
            key,
            id,
            sock: Some(theirs),
            got: Vec::new(),
        }
    }

    /// Whether the client's connection is still open in larder.
    pub(crate) fn is_open(&self, client: &Client) -> bool {
        self.conns
            .get(client.key)
            .is_some_and(|c| c.id == client.id)
    }

    /// The state of the client's connection, by name.
    pub(crate) fn state_of(&self, client: &Client) -> &'static str {
        match self.conns.get(client.key) {
            Some(c) if c.id == client.id => c.state.name(),
            _ => "gone",
        }
    }

    /// Upstream sockets open (owned or pooled).
    pub(crate) fn upstreams(&self) -> usize {
        self.ups.len()
    }

    /// Steps every connection until nothing moves any more.
    pub(crate) fn run(&mut self) {
        for _ in 0..10_000 {
            self.deliver_names();
            self.deliver_verdicts();
            let before = self.fingerprint();
            self.set_readiness();
            let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
            let mut again = false;
            for key in keys {
                match self.with_scope(key, conn::step) {
                    Some(Step::Close) => self.close(key),
                    Some(Step::Again) => again = true,
                    Some(Step::Wait) | None => {}
                }
            }
            self.ctx.cache.flights.wake.clear();
            self.start_refreshes();
            self.close_dead_pooled();
            if !again && self.fingerprint() == before {
                return;
            }
        }
        panic!("the connections never settled");
    }

    /// Starts the revalidations queued in the background, as the server does.
    fn start_refreshes(&mut self) {
        for ex in std::mem::take(&mut self.ctx.refreshes) {
            let id = self.next_id;
            self.next_id += 1;
            let key = self.conns.insert(Box::new(conn::background::conn(id)));
            let closed = self.with_scope(key, |cx| {
                cx.conn.state = conn::background::start(cx, ex);
                cx.conn.is_closed()
            });
            if closed == Some(true) {
                self.close(key);
            }
        }
    }

    /// Connections open for revalidations in the background.
    pub(crate) fn background(&self) -> usize {
        self.conns.iter().filter(|(_, c)| c.background).count()
    }

    /// Moves the clock by `by`, stopping every [`TICK`] (and at the end) to fire the
    /// deadlines passed and let the connections run. The unix seconds (`ctx.unix`,
    /// and the cache's clock) follow, whole seconds after the start.
    pub(crate) fn advance(&mut self, by: Duration) {
        let end = self.ctx.now + by;
        loop {
            self.ctx.now = (self.ctx.now + TICK).min(end);
            let now = self.ctx.now;
            let (start, start_unix) = self.start;
            self.ctx.unix = start_unix + (now - start).as_secs();
            self.ctx.cache.set_clock(self.ctx.unix);
            let expired: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
                .map(|(k, _)| k)
                .collect();
            for key in expired {
                if let Some(Step::Close) = self.with_scope(key, conn::on_deadline) {
                    self.close(key);
                }
            }
            self.run();
            if self.ctx.now >= end {
                return;
            }
        }
    }

    /// Waits (a little, in real time: the resolver answers on its own thread) for the
    /// lookups of connections still resolving, and hands the answers over as the
    /// server does.
    fn deliver_names(&mut self) {
        let waiting = || {
            self.conns
                .iter()
                .any(|(_, c)| matches!(c.state, crate::conn::State::Resolving { .. }))
        };
        if !waiting() {
            return;
        }
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let answers = self.ctx.resolver.drain(self.ctx.now);
            let delivered = !answers.is_empty();
            for (waiter, answer) in answers {
                let id = waiter.id;
                self.with_scope(waiter.key, |cx| {
                    if cx.conn.id == id {
                        conn::on_dns(cx, answer);
                    }
                });
            }
            if delivered || Instant::now() >= until {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Checks passwords with `verify` from now on (`--auth-file` must be given), on the
    /// file the flags named.
    pub(crate) fn check_passwords_with(
        &mut self,
        verify: impl Fn(&[u8], &str) -> bool + Send + Sync + std::panic::RefUnwindSafe + 'static,
    ) {
        let settings = self.ctx.cfg.auth.clone().expect("--auth-file");
        let waker = std::sync::Arc::clone(&self.waker);
        self.ctx.auth = Some(crate::auth::Auth::start(settings, waker, verify).expect("auth file"));
    }

    /// Waits (a little, in real time: passwords are checked on threads) for the
    /// verdicts connections wait for, and hands them over as the server does.
    fn deliver_verdicts(&mut self) {
        let waiting = |conns: &Slab<Box<Conn<MemSocket>>>| {
            conns
                .iter()
                .any(|(_, c)| matches!(&c.state, crate::conn::State::Head(s) if s.verifying))
        };
        if !self.wait_for_verdicts || !waiting(&self.conns) {
            return;
        }
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.ctx.now;
            let waiters = self
                .ctx
                .auth
                .as_mut()
                .map(|a| a.drain(now))
                .unwrap_or_default();
            let delivered = !waiters.is_empty();
            for waiter in waiters {
                let id = waiter.id;
                self.with_scope(waiter.key, |cx| {
                    if cx.conn.id == id {
                        conn::auth::on_verdict(cx);
                    }
                });
            }
            if delivered || Instant::now() >= until {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn with_scope<T>(
        &mut self,
        key: usize,
        f: impl FnOnce(&mut Scope<MemSocket>) -> T,
    ) -> Option<T> {
        let conn = self.conns.get_mut(key)?;
        let mut scope = Scope {
            key,
            conn,
            ups: &mut self.ups,
            ctx: &mut self.ctx,
        };
        let out = f(&mut scope);
        #[cfg(debug_assertions)]
        scope.conn.check_invariants(key, scope.ups);
        Some(out)
    }

    fn close(&mut self, key: usize) {
        let resolving = self.with_scope(key, conn::close).unwrap_or(false);
        if self.conns.contains(key) {
            let mut conn = self.conns.remove(key);
            if conn.counted {
                self.ctx.per_client.release(conn.peer.ip());
            }
            if resolving {
                self.ctx
                    .resolver
                    .cancel(crate::dns::Waiter { key, id: conn.id });
            }
            conn.inbuf.clear(&mut self.ctx.bufs);
        }
    }

    /// A pooled upstream whose origin closed it is closed (the server does this when
    /// the socket becomes readable).
    fn close_dead_pooled(&mut self) {
        let dead: Vec<usize> = self
            .ups
            .iter()
            .filter(|(_, u)| u.owner.is_none() && (u.sock.readable() > 0 || u.sock.peer_shut()))
            .map(|(i, _)| i)
            .collect();
        for idx in dead {
            let up = self.ups.remove(idx);
            self.ctx.pool.remove(up.pool_key, idx);
        }
    }

    /// Readiness from the sockets' state, as epoll would report it.
    fn set_readiness(&mut self) {
        for (_, c) in self.conns.iter_mut() {
            if c.background {
                // A null socket: always readable (its end) and writable.
                continue;
            }
            let s = &c.sock;
            c.ready.r = s.readable() > 0 || s.peer_shut();
            c.ready.w = s.writable() > 0 || s.peer_gone();
            c.ready.hup = s.peer_shut();
        }
        for (_, u) in self.ups.iter_mut() {
            let s = &u.sock;
            if s.is_stalled() {
                continue;
            }
            u.ready.r = s.readable() > 0 || s.peer_shut();
            u.ready.w = s.writable() > 0 || s.peer_gone();
            u.ready.hup = s.peer_shut();
        }
    }

    /// What changes when anything happens: bytes queued anywhere, connections and
    /// their states, upstreams.
    fn fingerprint(&self) -> Fingerprint {
        let conns = self
            .conns
            .iter()
            .map(|(k, c)| (k, c.state.name(), c.inbuf.len(), c.out.pending().len()))
            .collect();
        let queued = self
            .conns
            .iter()
            .map(|(_, c)| c.sock.readable() + c.sock.writable())
            .chain(
                self.ups
                    .iter()
                    .map(|(_, u)| u.sock.readable() + u.sock.writable() + u.inbuf.len()),
            )
            .sum();
        (conns, queued, self.ups.len())
    }
}

impl Client {
    fn sock(&mut self) -> &mut MemSocket {
        self.sock.as_mut().expect("the client has not hung up")
    }

    /// Sends bytes to larder.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.sock().send(bytes);
    }

    /// Shuts the client's write side (larder reads end of stream).
    pub(crate) fn shutdown_write(&mut self) {
        let _ = self.sock().shutdown(Shutdown::Write);
    }

    /// Closes the client's socket altogether.
    pub(crate) fn hang_up(&mut self) {
        self.sock = None;
    }

    /// Everything larder sent so far (and all of it, in later calls).
    pub(crate) fn received(&mut self) -> &[u8] {
        let more = self.sock().take_all();
        self.got.extend_from_slice(&more);
        &self.got
    }

    /// Larder closed (or shut the write side of) the connection: after what was
    /// received, the client reads end of stream.
    pub(crate) fn sees_end(&mut self) -> bool {
        let _ = self.received();
        let s = self.sock();
        s.readable() == 0 && s.peer_shut()
    }
}

/// An origin server's end of one connection from larder.
pub(crate) struct Origin {
    sock: MemSocket,
    got: Vec<u8>,
}

impl Origin {
    /// Listens at `addr` (on this test's thread).
    pub(crate) fn listen(addr: SocketAddr) {
        Network::listen(addr);
    }

    /// Makes connections to `addr` hang in their handshake.
    pub(crate) fn black_hole(addr: SocketAddr) {
        Network::black_hole(addr);
    }

    /// The next connection larder opened to `addr`.
    pub(crate) fn accept(addr: SocketAddr) -> Option<Origin> {
        Network::accept(addr).map(|sock| Origin {
            sock,
            got: Vec::new(),
        })
    }

    /// The congestion control larder chose for its end of this connection.
    pub(crate) fn congestion(&self) -> Option<String> {
        self.sock.congestion()
    }

    /// Everything larder sent so far.
    pub(crate) fn received(&mut self) -> &[u8] {
        let more = self.sock.take_all();
        self.got.extend_from_slice(&more);
        &self.got
    }

    /// Sends bytes to larder.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.sock.send(bytes);
    }

    /// Larder closed its side of the connection.
    pub(crate) fn sees_end(&mut self) -> bool {
        let _ = self.received();
        self.sock.readable() == 0 && self.sock.peer_shut()
    }
}
