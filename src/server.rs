//! The event loop: one `mio::Poll`, client connections in a slab, upstream sockets
//! in another, readiness kept in userland.
//!
//! Each turn: poll (timeout: now if work is left over, else the next tick) →
//! mark ready connections from the events → act on signals (reload, re-open the
//! log, stop) → deliver DNS answers (waker) → step every ready connection once,
//! each with a byte budget → on a tick (every 100 ms with connections, 1 s
//! without): fire deadlines, close idle pooled upstreams, flush the access log,
//! re-read changed block lists → close the connections the batch finished →
//! accept while under the connection limit.
//!
//! # Stopping
//! The first SIGTERM or SIGINT starts a drain (after `--drain-notice`, if given:
//! until then `/health` answers 503 while everything else goes on, so a load
//! balancer takes larder out of rotation before connections are refused): the listeners are closed (new
//! connections are refused by the kernel), idle keep-alive connections are closed,
//! and every request in flight may finish, its connection closing after it, for up
//! to `--drain-timeout`. Then, or as soon as no connection is left, or at a second
//! signal, the access log is written out and [`Server::run`] returns.
//!
//! Closing happens only after the batch, so an event later in the same batch can
//! never reach a slab key that a new connection has taken; DNS answers carry the
//! connection id for the same reason.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::access_log::AccessLog;
use crate::acl::blocklist::Blocklist;
use crate::acl::dest::Destinations;
use crate::acl::per_client::PerClient;
use crate::acl::Clients;
use crate::buf::{BufPool, HeadPool};
use crate::cache::{size, startup, unix_now};
use crate::config::Config;
use crate::conn::cache::Cache;
use crate::conn::congestion::{self, Congestion};
use crate::conn::ctx::{client_token, Gauges, Spares};
use crate::conn::upstream::{Pool, Upstream};
use crate::conn::{self, step, Conn, Ctx, Scope, Step};
use crate::dns::hosts::Hosts;
use crate::dns::Resolver;
use crate::error::Error;
use crate::http::{Limits, ViaName};
use crate::stats::Stats;
use crate::sys;

const WAKER: Token = Token(usize::MAX - 3);
const SIGNALS: Token = Token(usize::MAX - 5);
/// Listener `i` has token `LISTENERS - i`: far above any slab key's token.
const LISTENERS: usize = usize::MAX - 16;
/// Most `--listen` addresses.
pub const MAX_LISTENERS: usize = 64;

const TICK_BUSY: Duration = Duration::from_millis(100);
const TICK_IDLE: Duration = Duration::from_secs(1);
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// How often the machine's own addresses are read again (DHCP may change them).
const OWN_ADDRS_EVERY: Duration = Duration::from_secs(60);
/// Free buffers kept between bursts: enough for 64 busy exchanges, a client's buffer
/// and its upstream's each. With fewer, a loop that keeps 64 connections busy went to
/// the allocator for a fresh zeroed 32 KiB buffer every few requests.
const POOLED_BUFFERS: usize = 128;

/// One listening socket.
struct Listener {
    sock: TcpListener,
    addr: SocketAddr,
    /// Readable as far as we know (edge-triggered: until `accept` says WouldBlock).
    ready: bool,
}

/// The proxy's event loop: the listening sockets, the client and upstream
/// connections, and the state they share.
pub struct Server {
    poll: Poll,
    events: Events,
    listeners: Vec<Listener>,
    /// Woken by a signal handler (`None` where no pipe could be made: signals are then
    /// noticed when they interrupt the wait, or at the next tick).
    signal_pipe: Option<sys::SignalPipe>,
    /// While stopping: when the drain gives up on what is still open.
    drain_until: Option<Instant>,
    /// While stopping with `--drain-notice`: when the drain starts.
    notice_until: Option<Instant>,
    conns: Slab<Box<Conn>>,
    /// Connections in `conns` that are larder's own revalidations in the background
    /// (no client): not counted as client connections, nor against `max_conns`.
    background: usize,
    ups: Slab<Upstream>,
    ctx: Ctx,
    cache_note: String,
    max_conns: usize,
    next_id: u64,
    /// Accepted sockets arrive with TCP_NODELAY set (inherited from the listener):
    /// `None` until the first one is checked.
    nodelay_inherited: Option<bool>,
    accept_paused_until: Option<Instant>,
    last_fd_warning: Option<Instant>,
    ready: Vec<usize>,
    closing: Vec<usize>,
    next_tick: Instant,
    next_reload: Instant,
    /// When the machine's own addresses are read again.
    next_own_addrs: Instant,
}

/// Why `--tcp-congestion NAME` cannot be used, with the names that can.
fn congestion_error(name: &str, e: &std::io::Error) -> Error {
    let list = |file: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{file}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    };
    Error::Config(match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "--tcp-congestion {name}: the kernel has no such congestion control (it has: {})",
            list("tcp_available_congestion_control")
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "--tcp-congestion {name}: only a privileged process may choose it (allowed: {})",
            list("tcp_allowed_congestion_control")
        ),
        _ => format!("--tcp-congestion {name}: {e}"),
    })
}

/// The congestion control larder's sockets get (see `conn::congestion`): the one
/// `--tcp-congestion` names, or, where the system's paces, one that does not for
/// loopback connections, if this process may choose one (tried on a loopback socket).
fn choose_congestion(configured: Option<&str>) -> Congestion {
    let system = congestion::system();
    let chosen = Congestion::choose(configured, system.as_deref(), |name| {
        TcpListener::bind(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)))
            .is_ok_and(|sock| sys::set_congestion(&sock, name).is_ok())
    });
    if let Congestion::Loopback(name) = chosen {
        debug!(
            "system congestion control {} paces: {name} on loopback connections",
            system.as_deref().unwrap_or("?")
        );
    }
    chosen
}

impl Server {
    /// Binds the listener and prepares everything the loop needs; nothing runs yet.
    pub fn bind(cfg: Config) -> Result<Server, Error> {
        let nofile = sys::raise_nofile_limit();
        let max_conns = cfg.max_conns.unwrap_or_else(|| sys::max_conns_for(nofile));
        let blocklist = Blocklist::new(
            cfg.block.clone(),
            cfg.block_list.clone(),
            cfg.block_ip.clone(),
        )
        .map_err(Error::Config)?;
        let clients = Clients::new(
            cfg.allow.clone(),
            cfg.deny.clone(),
            cfg.admin.clone(),
            cfg.proxy_protocol.clone(),
        );
        let log = match &cfg.access_log {
            Some(p) => Some(AccessLog::open(p).map_err(|e| Error::File(p.clone(), e))?),
            None => None,
        };
        let poll = Poll::new().map_err(Error::Io)?;
        if cfg.listen.is_empty() || cfg.listen.len() > MAX_LISTENERS {
            return Err(Error::Config(format!(
                "give 1 to {MAX_LISTENERS} addresses to listen on"
            )));
        }
        let mut listeners = Vec::with_capacity(cfg.listen.len());
        let congestion = choose_congestion(cfg.tcp_congestion.as_deref());
        for (i, &addr) in cfg.listen.iter().enumerate() {
            let mut sock = TcpListener::bind(addr).map_err(|e| Error::Bind(addr, e))?;
            match &congestion {
                Congestion::Everywhere(name) => {
                    sys::set_congestion(&sock, name).map_err(|e| congestion_error(name, &e))?
                }
                other => {
                    if let Some(name) = other.for_listener(addr.ip()) {
                        // Probed just before, on a socket like this one.
                        if let Err(e) = sys::set_congestion(&sock, name) {
                            debug!("listener {addr}: congestion control {name}: {e}");
                        }
                    }
                }
            }
            let local = sock.local_addr().map_err(Error::Io)?;
            poll.registry()
                .register(&mut sock, Token(LISTENERS - i), Interest::READABLE)
                .map_err(Error::Io)?;
            listeners.push(Listener {
                sock,
                addr: local,
                ready: true,
            });
        }
        let locals: Vec<SocketAddr> = listeners.iter().map(|l| l.addr).collect();
        let dest = Destinations::new(cfg.allow_to.clone(), &own_addrs(&locals));
        let per_client = PerClient::new(cfg.max_conns_per_client);
        let signal_pipe = match sys::SignalPipe::new() {
            Ok(pipe) => {
                let fd = pipe.fd();
                poll.registry()
                    .register(&mut mio::unix::SourceFd(&fd), SIGNALS, Interest::READABLE)
                    .map_err(Error::Io)?;
                Some(pipe)
            }
            Err(e) => {
                debug!("no signal pipe ({e}); signals are noticed at the next tick");
                None
            }
        };
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(Error::Io)?);
        let auth = match &cfg.auth {
            Some(settings) => Some(
                crate::auth::Auth::new(settings.clone(), Arc::clone(&waker))
                    .map_err(Error::Config)?,
            ),
            None => None,
        };
        let mut resolver = Resolver::new(waker, 2, Duration::from_secs(60), Duration::from_secs(5))
            .map_err(Error::Io)?;
        if let Some(path) = &cfg.hosts {
            resolver.set_hosts(Hosts::read(path).map_err(Error::Config)?);
        }
        let registry = poll.registry().try_clone().map_err(Error::Io)?;
        // After the bind, so a port already in use is reported before a cache is made
        // or resized for nothing.
        let via = ViaName::new(format!("larder-{:08x}", random_u32()));
        let settings = &cfg.cache;
        let opened = startup::open_for_proxy(
            &settings.dir,
            settings.size,
            settings.max_object,
            unix_now(),
        )
        .map_err(Error::Cache)?;
        let cache_note = cache_note(&opened);
        let cache = Cache::configured(opened.store, settings, via.clone());
        let parents = crate::parents::Parents::new(&cfg.parents);
        let now = Instant::now();
        let all_nodelay = listeners.iter().all(|l| sys::set_listener_nodelay(&l.sock));
        let nodelay_inherited = if all_nodelay { None } else { Some(false) };
        info!("at most {max_conns} connections");
        let unix = unix_now();
        Ok(Server {
            poll,
            events: Events::with_capacity(1024),
            listeners,
            signal_pipe,
            drain_until: None,
            notice_until: None,
            conns: Slab::new(),
            background: 0,
            ups: Slab::new(),
            ctx: Ctx {
                cfg,
                limits: Limits::default(),
                via,
                now,
                bufs: BufPool::new(POOLED_BUFFERS),
                heads: HeadPool::default(),
                joined: Vec::new(),
                spares: Spares::default(),
                resolver,
                auth,
                pool: Pool::default(),
                registry,
                congestion,
                clients,
                blocklist,
                dest,
                per_client,
                log,
                locals,
                unix,
                stats: Stats::new(unix),
                gauges: Gauges {
                    max_conns: max_conns as u64,
                    ..Gauges::default()
                },
                draining: false,
                stopping: false,
                cache,
                parents,
                refreshes: Vec::new(),
            },
            cache_note,
            max_conns,
            next_id: 1,
            nodelay_inherited,
            accept_paused_until: None,
            last_fd_warning: None,
            ready: Vec::new(),
            closing: Vec::new(),
            next_tick: now,
            next_reload: now + RELOAD_EVERY,
            next_own_addrs: now + OWN_ADDRS_EVERY,
        })
    }

    /// The addresses larder listens on (ports chosen by the system filled in).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.ctx.locals
    }

    /// One line on the cache for the start-up message: file, size, objects, and a
    /// resize if one happened.
    pub fn cache_note(&self) -> &str {
        &self.cache_note
    }

    /// Runs the loop until an unrecoverable poll error, or until it is stopped (when
    /// [`sys::catch_signals`] was called): the first SIGTERM/SIGINT drains (see the
    /// module docs), then the access log is written out and `run` returns `Ok`.
    pub fn run(&mut self) -> Result<(), Error> {
        loop {
            self.turn()?;
            if self
                .notice_until
                .is_some_and(|t| self.ctx.now >= t && self.drain_until.is_none())
            {
                self.start_drain();
            }
            if let Some(until) = self.drain_until {
                if self.conns.is_empty() {
                    info!("stopped: every request finished");
                    break;
                }
                if self.ctx.now >= until || sys::stops() > 1 {
                    warn!("stopped with {} connection(s) still open", self.conns.len());
                    break;
                }
            }
        }
        if let Some(log) = self.ctx.log.as_mut() {
            log.flush();
        }
        self.ctx.cache.close();
        Ok(())
    }

    /// Acts on the signals that arrived: reload (SIGHUP), re-open the access log
    /// (SIGUSR1), stop (SIGTERM, SIGINT).
    fn on_signals(&mut self) {
        if let Some(pipe) = &self.signal_pipe {
            pipe.drain();
        }
        let signals = sys::take_signals();
        if signals.reload {
            self.read_own_addrs();
            let lists = self.ctx.blocklist.reload_all();
            if let Some(path) = &self.ctx.cfg.hosts {
                match Hosts::read(path) {
                    Ok(hosts) => self.ctx.resolver.set_hosts(hosts),
                    Err(e) => warn!("{e}; the names read before are kept"),
                }
            }
            let users = match self.ctx.auth.as_mut() {
                Some(auth) => match auth.reload(true) {
                    true => format!(", {} user(s) read", auth.users()),
                    false => ", the users read before kept".to_owned(),
                },
                None => String::new(),
            };
            if let Some(log) = self.ctx.log.as_mut() {
                log.reopen();
            }
            warn!(
                "reloaded on SIGHUP: {lists} block list file(s) read{users}, access log re-opened"
            );
        } else if signals.reopen {
            if let Some(log) = self.ctx.log.as_mut() {
                log.reopen();
            }
            info!("access log re-opened on SIGUSR1");
        }
        if signals.stops > 0 && self.drain_until.is_none() {
            let notice = self.ctx.cfg.drain_notice;
            if self.notice_until.is_none() && !notice.is_zero() {
                self.notice_until = Some(self.ctx.now + notice);
                self.ctx.stopping = true;
                warn!(
                    "stopping: /health says 503 for {} s, then larder stops accepting",
                    notice.as_secs_f64()
                );
                // The poll wakes when the notice ends even if nothing else happens.
                self.next_tick = self.next_tick.min(self.ctx.now + notice);
            } else {
                self.start_drain();
            }
        }
    }

    /// Stops accepting and lets what is in flight finish (see the module docs).
    fn start_drain(&mut self) {
        let timeout = self.ctx.cfg.drain_timeout;
        self.drain_until = Some(self.ctx.now + timeout);
        self.ctx.draining = true;
        self.ctx.stopping = true;
        // Closing the listeners makes the kernel refuse new connections at once,
        // instead of queueing them for a process that will not accept them.
        self.listeners.clear();
        self.close_idle();
        warn!(
            "stopping: {} connection(s) open, waiting up to {} s for requests in flight",
            self.conns.len(),
            timeout.as_secs_f64()
        );
    }

    /// While draining: closes connections that wait for a next request with nothing
    /// begun and nothing left to write.
    fn close_idle(&mut self) {
        for (key, c) in self.conns.iter_mut() {
            if c.close_if_idle() {
                self.closing.push(key);
            }
        }
    }

    /// One turn of the loop.
    pub fn turn(&mut self) -> Result<(), Error> {
        let timeout = if self.ready.is_empty() {
            self.next_tick.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(Error::Io(e));
        }
        self.ctx.now = Instant::now();
        self.ctx.unix = unix_now();
        let cache = &mut self.ctx.cache;
        cache.set_clock(self.ctx.unix);
        if cache.sync_wanted() {
            cache.keep_synced(self.ctx.unix);
        }
        let mut dns = false;
        let mut signals = false;
        let mut pooled_readable = Vec::new();
        for event in self.events.iter() {
            let token = event.token();
            let r = event.is_readable() || event.is_read_closed() || event.is_error();
            let w = event.is_writable() || event.is_write_closed() || event.is_error();
            let err = event.is_error();
            let hup = event.is_read_closed() || err;
            match token {
                WAKER => dns = true,
                SIGNALS => signals = true,
                Token(t) if t > LISTENERS - MAX_LISTENERS && t <= LISTENERS => {
                    if let Some(l) = self.listeners.get_mut(LISTENERS - t) {
                        l.ready = true;
                    }
                }
                Token(t) if t & 1 == 0 => {
                    if let Some(c) = self.conns.get_mut(t >> 1) {
                        c.ready.r |= r;
                        c.ready.w |= w;
                        c.ready.hup |= hup;
                        c.ready.err |= err;
                        if !c.queued {
                            c.queued = true;
                            self.ready.push(t >> 1);
                        }
                    }
                }
                Token(t) => {
                    let idx = t >> 1;
                    let Some(up) = self.ups.get_mut(idx) else {
                        continue;
                    };
                    up.ready.r |= r;
                    up.ready.w |= w;
                    up.ready.hup |= hup;
                    up.ready.err |= err;
                    match up.owner {
                        Some((key, id)) => {
                            if let Some(c) = self.conns.get_mut(key) {
                                if c.id == id && !c.queued {
                                    c.queued = true;
                                    self.ready.push(key);
                                }
                            }
                        }
                        None if r => pooled_readable.push(idx),
                        None => {}
                    }
                }
            }
        }
        for idx in pooled_readable {
            self.check_pooled(idx);
        }
        // A signal may also have interrupted the poll without a pipe event.
        if signals || self.signal_pipe.is_none() {
            self.on_signals();
        }
        if dns {
            self.deliver_dns();
            self.deliver_verdicts();
        }
        let batch = std::mem::take(&mut self.ready);
        for &key in &batch {
            self.step_conn(key);
        }
        self.wake_waiters();
        // Keep the allocation of the batch vector for the next turn.
        let mut batch = batch;
        batch.clear();
        if self.ready.is_empty() {
            self.ready = batch;
        }
        if self.ctx.now >= self.next_tick {
            self.tick();
        }
        for key in std::mem::take(&mut self.closing) {
            self.close_conn(key);
        }
        self.start_refreshes();
        self.wake_waiters();
        self.accept();
        Ok(())
    }

    /// Starts the revalidations this turn's stale answers left to do in the
    /// background, each on a connection of its own with no client (see
    /// `conn::background`); they run from the next turn on.
    fn start_refreshes(&mut self) {
        for ex in std::mem::take(&mut self.ctx.refreshes) {
            let id = self.next_id;
            self.next_id += 1;
            let key = self.conns.insert(Box::new(conn::background::conn(id)));
            self.background += 1;
            let Some(mut cx) = self.cx(key) else { continue };
            cx.conn.state = conn::background::start(&mut cx, ex);
            if cx.conn.is_closed() {
                self.close_conn(key);
            } else if !cx.conn.queued {
                cx.conn.queued = true;
                self.ready.push(key);
            }
        }
    }

    /// Queues the connections whose awaited fetch ended this turn (request
    /// collapsing); they run on the next turn, which polls without sleeping.
    fn wake_waiters(&mut self) {
        for (key, id) in self.ctx.cache.flights.wake.drain(..) {
            if let Some(c) = self.conns.get_mut(key) {
                if c.id == id && c.follows_a_flight() && !c.queued {
                    c.queued = true;
                    self.ready.push(key);
                }
            }
        }
    }

    fn cx(&mut self, key: usize) -> Option<Scope<'_>> {
        let conn = self.conns.get_mut(key)?;
        Some(Scope {
            key,
            conn,
            ups: &mut self.ups,
            ctx: &mut self.ctx,
        })
    }

    fn step_conn(&mut self, key: usize) {
        let Some(mut cx) = self.cx(key) else { return };
        cx.conn.queued = false;
        let next = step(&mut cx);
        #[cfg(debug_assertions)]
        cx.conn.check_invariants(key, cx.ups);
        match next {
            Step::Wait => {}
            Step::Again => {
                cx.conn.queued = true;
                self.ready.push(key);
            }
            Step::Close => self.closing.push(key),
        }
    }

    /// A pooled upstream became readable: an idle connection has nothing to say,
    /// so this is the origin closing it (or misbehaving). Close it.
    fn check_pooled(&mut self, idx: usize) {
        let Some(up) = self.ups.get_mut(idx) else {
            return;
        };
        let mut probe = [0u8; 1];
        match conn::read_into(&mut up.sock, &mut up.ready, &mut probe) {
            conn::Io::Blocked => {}
            _ => self.close_pooled(idx),
        }
    }

    fn close_pooled(&mut self, idx: usize) {
        if !self.ups.contains(idx) {
            return;
        }
        let mut up = self.ups.remove(idx);
        self.ctx.pool.remove(up.pool_key, idx);
        up.inbuf.clear(&mut self.ctx.bufs);
        debug!("pooled upstream to {} closed", up.addr);
    }

    fn deliver_dns(&mut self) {
        for (waiter, answer) in self.ctx.resolver.drain(self.ctx.now) {
            let Some(mut cx) = self.cx(waiter.key) else {
                continue;
            };
            if cx.conn.id != waiter.id || !conn::on_dns(&mut cx, answer) {
                continue;
            }
            if !cx.conn.queued {
                cx.conn.queued = true;
                self.ready.push(waiter.key);
            }
        }
    }

    /// Hands the password checks' verdicts to the connections that wait for them
    /// (`--auth-file`); the waker that says DNS answers came says these came too.
    fn deliver_verdicts(&mut self) {
        let Some(auth) = self.ctx.auth.as_mut() else {
            return;
        };
        for waiter in auth.drain(self.ctx.now) {
            let Some(mut cx) = self.cx(waiter.key) else {
                continue;
            };
            if cx.conn.id != waiter.id || !conn::auth::on_verdict(&mut cx) {
                continue;
            }
            if !cx.conn.queued {
                cx.conn.queued = true;
                self.ready.push(waiter.key);
            }
        }
    }

    /// Deadlines, pooled-connection idle limits, log flush, block-list reload.
    fn tick(&mut self) {
        let now = self.ctx.now;
        let mut tunnels = 0;
        let expired: Vec<usize> = self
            .conns
            .iter()
            .inspect(|(_, c)| tunnels += u64::from(c.is_tunnel()))
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(k, _)| k)
            .collect();
        self.ctx.gauges.tunnels_open = tunnels;
        if self.ctx.draining {
            self.close_idle();
        }
        for key in expired {
            self.expire(key);
        }
        let idle: Vec<usize> = self
            .ups
            .iter()
            .filter(|(_, u)| u.owner.is_none() && u.idle_deadline.is_some_and(|d| d <= now))
            .map(|(i, _)| i)
            .collect();
        for idx in idle {
            self.close_pooled(idx);
        }
        self.ctx.pool.sweep();
        if let Some(log) = self.ctx.log.as_mut() {
            log.flush();
        }
        let unix = unix_now();
        self.ctx.cache.sweep(unix);
        self.ctx.cache.keep_synced(unix);
        if now >= self.next_reload {
            self.next_reload = now + RELOAD_EVERY;
            let n = self.ctx.blocklist.reload_changed();
            if n > 0 {
                info!("reloaded {n} block list file(s)");
            }
            if let Some(auth) = self.ctx.auth.as_mut() {
                auth.reload(false);
            }
        }
        if now >= self.next_own_addrs {
            self.read_own_addrs();
        }
        let busy = !self.conns.is_empty() || !self.ups.is_empty();
        self.next_tick = now + if busy { TICK_BUSY } else { TICK_IDLE };
        if let Some(t) = self.notice_until.filter(|_| self.drain_until.is_none()) {
            // The drain starts when the notice ends, not up to a tick later.
            self.next_tick = self.next_tick.min(t.max(now));
        }
    }

    /// A connection's deadline passed: the connection decides what that means
    /// ([`conn::on_deadline`]); it is then closed, or stepped.
    fn expire(&mut self, key: usize) {
        let Some(mut cx) = self.cx(key) else { return };
        match conn::on_deadline(&mut cx) {
            Step::Close => self.closing.push(key),
            Step::Wait | Step::Again => {
                if !cx.conn.queued {
                    cx.conn.queued = true;
                    self.ready.push(key);
                }
            }
        }
    }

    fn close_conn(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        let resolving = self.cx(key).is_some_and(|mut cx| conn::close(&mut cx));
        let mut conn = self.conns.remove(key);
        if conn.counted {
            self.ctx.per_client.release(conn.peer.ip());
        }
        if conn.background {
            self.background = self.background.saturating_sub(1);
        }
        self.ctx.gauges.conns_open = self.clients() as u64;
        if resolving {
            self.ctx
                .resolver
                .cancel(crate::dns::Waiter { key, id: conn.id });
        }
        conn.inbuf.clear(&mut self.ctx.bufs);
        debug!("conn {}: closed", conn.id);
    }

    /// Client connections open (the background revalidations left out).
    fn clients(&self) -> usize {
        self.conns.len().saturating_sub(self.background)
    }

    fn accept(&mut self) {
        if let Some(until) = self.accept_paused_until {
            if self.ctx.now < until {
                return;
            }
            self.accept_paused_until = None;
        }
        for i in 0..self.listeners.len() {
            if !self.accept_from(i) {
                return;
            }
        }
        if !self.conns.is_empty() {
            self.next_tick = self.next_tick.min(self.ctx.now + TICK_BUSY);
        }
    }

    /// The cache file and its capacity in bytes.
    pub fn cache_file(&self) -> (std::path::PathBuf, u64) {
        let dir = &self.ctx.cfg.cache.dir;
        let capacity = self.ctx.cache.store.scan_report().capacity;
        (crate::cache::dir::file_path(dir), capacity)
    }
}

impl Server {
    /// Accepts from listener `i` while it is readable and under the connection limit.
    /// `false` when accepting must pause (out of file descriptors).
    fn accept_from(&mut self, i: usize) -> bool {
        loop {
            if self.clients() >= self.max_conns {
                return true;
            }
            let Some(listener) = self.listeners.get_mut(i).filter(|l| l.ready) else {
                return true;
            };
            match listener.sock.accept() {
                Ok((mut sock, peer)) => {
                    // A balancer's connections are counted for the client its PROXY
                    // header names, once it has (`conn::count_client`).
                    let counted = self.ctx.per_client.limited()
                        && !self.ctx.clients.sends_proxy_header(peer.ip());
                    if counted && !self.ctx.per_client.admit(peer.ip()) {
                        // Closed before anything is read: the client's other
                        // connections, and everyone else's, go on.
                        drop(sock);
                        conn::over_client_limit(&mut self.ctx, peer.ip());
                        continue;
                    }
                    if let Some(name) = self
                        .ctx
                        .congestion
                        .for_accepted(listener.addr.ip(), peer.ip())
                    {
                        if let Err(e) = sys::set_congestion(&sock, name) {
                            debug!("accept from {peer}: congestion control {name}: {e}");
                        }
                    }
                    let inherited = *self
                        .nodelay_inherited
                        .get_or_insert_with(|| sock.nodelay().unwrap_or(false));
                    if !inherited {
                        let _ = sock.set_nodelay(true);
                    }
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = self.ctx.registry.register(
                        &mut sock,
                        client_token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("cannot register a new connection: {e}");
                        if counted {
                            self.ctx.per_client.release(peer.ip());
                        }
                        continue;
                    }
                    let mut conn = Conn::new(self.next_id, conn::Stream::Tcp(sock), peer);
                    conn.counted = counted;
                    self.next_id += 1;
                    conn::accepted(&mut conn, &self.ctx);
                    entry.insert(Box::new(conn));
                    let open = self.clients();
                    self.ctx.gauges.conns_open = open as u64;
                    self.ctx.stats.conns_accepted += 1;
                    self.ctx.stats.note_open(open);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => listener.ready = false,
                Err(e) if matches!(e.raw_os_error(), Some(ENFILE | EMFILE)) => {
                    // Out of file descriptors: free idle pooled sockets, wait a moment
                    // rather than spin on a listener that stays readable.
                    self.accept_paused_until = Some(self.ctx.now + TICK_BUSY);
                    let idle: Vec<usize> = self
                        .ups
                        .iter()
                        .filter(|(_, u)| u.owner.is_none())
                        .map(|(i, _)| i)
                        .collect();
                    for idx in idle {
                        self.close_pooled(idx);
                    }
                    let quiet = self.last_fd_warning.is_some_and(|t| {
                        self.ctx.now.saturating_duration_since(t) < Duration::from_secs(60)
                    });
                    if !quiet {
                        self.last_fd_warning = Some(self.ctx.now);
                        warn!("accept: {e}; lower --max-conns or raise the open-file limit");
                    }
                    self.next_tick = self.next_tick.min(self.ctx.now + TICK_BUSY);
                    return false;
                }
                Err(e) => debug!("accept: {e}"),
            }
        }
    }
}

impl Server {
    /// Reads the machine's own addresses again for the destination rules.
    fn read_own_addrs(&mut self) {
        self.next_own_addrs = self.ctx.now + OWN_ADDRS_EVERY;
        let own = own_addrs(&self.ctx.locals);
        self.ctx.dest.set_own(&own);
    }
}

/// The machine's own addresses: its interfaces' (when they can be read) and the
/// addresses larder listens on.
fn own_addrs(locals: &[SocketAddr]) -> Vec<std::net::IpAddr> {
    let mut own = match sys::interface_addrs() {
        Ok(addrs) => addrs,
        Err(e) => {
            debug!("cannot read the network interfaces ({e}): the machine's own addresses are its listening ones");
            Vec::new()
        }
    };
    own.extend(locals.iter().map(|l| l.ip()));
    own
}

/// Too many open files in the system, and in this process (errno values).
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;

/// A random number for the Via token, from std's randomly keyed hasher.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish() as u32
}

fn cache_note(opened: &startup::Opened) -> String {
    let report = opened.store.scan_report();
    let mut note = format!(
        "cache {} ({}, {} objects",
        opened.path.display(),
        size::human(report.capacity),
        report.objects
    );
    if let Some(r) = &opened.resized {
        note.push_str(&format!(
            "; resized from {}, {} objects did not fit",
            size::human(r.old_capacity),
            r.dropped
        ));
    }
    if report.damaged_bytes > 0 {
        note.push_str(&format!("; {} damaged bytes skipped", report.damaged_bytes));
    }
    note.push(')');
    note
}
