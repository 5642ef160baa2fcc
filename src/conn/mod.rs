//! Client connections and their state machine.
//!
//! # Lifecycle
//!
//! ```text
//!              accept
//!                │
//!                ▼
//!   ┌────────► Head ── bad head, refused, or larder's own page: answer queued ──┐
//!   │            │ request head parsed: route it                                │
//!   │            ├─ fresh in the cache ───────────────────────────► Serve ─┐    │
//!   │            ├─ another client fetches it ──► Waiting                  │    │
//!   │            │    its body streams, or it stored a hit ────────► Serve  │    │
//!   │            │    it stored nothing: route again, as from Head         │    │
//!   │            ├─ a pooled upstream for host:port ───────────► Forward ──┤    │
//!   │            ▼                                                ▲  │    │    │
//!   │        Resolving ── DNS answer ──► Connecting ──────────────┘  │    │    │
//!   │                                        │ CONNECT      304 ─► Serve  │    │
//!   │                                        ▼                           │    │
//!   │                                      Tunnel ── ends ──► Closed     │    │
//!   └───────────────────────── keep-alive ◄─────────────────────────────┤    │
//!                                                        close ─────────┴────┴──► Closing ──► Closed
//! ```
//!
//! A revalidation larder makes on its own behind a stale answer has a connection of
//! its own with no client (a null socket, `background`): it starts at the route, not
//! at `Head`, and closes when its exchange ends (see `background.rs`).
//!
//! Each variant of [`State`] owns what only that phase uses (see `state.rs`); a step
//! takes the state by value and returns the next one.
//!
//! * `Head`: bytes from the client accumulate in `inbuf` until a whole head is
//!   there; the first head has `timeouts.head`, later ones `timeouts.idle`.
//! * `Resolving`/`Connecting`: the request head is parsed and kept in the
//!   [`Exchange`]; nothing is read from the client meanwhile.
//! * `Forward`: the request (head, then body bytes straight from `inbuf`) goes up
//!   while the response comes down; the two halves progress independently, so an
//!   origin may answer before it has read the whole body (then both sides close).
//! * `Serve`: a response from the cache: the head in `out`, the body from the map
//!   (see `serve.rs`; the cache path is described in `cache::policy`).
//! * `Waiting`: the request waits for another connection's fetch of the same URL
//!   (request collapsing); woken when that fetch streams its body or ends.
//! * `Tunnel`: bytes are copied both ways; each direction half-closes on its own.
//!   Through a parent proxy, the CONNECT sent to it and its answer pass through
//!   `Forward` first: a 2xx opens the `Tunnel`, anything else is relayed, then closed.
//! * `Closing`: flush `out`, `shutdown(Write)`, read and discard until EOF or a short
//!   deadline, so the client reads our last response instead of a reset.
//!
//! What a passed deadline means is decided here too ([`on_deadline`]); the server
//! only keeps the clock and the lists of ready and finished connections.
//!
//! A connection is closed by the server *after* the batch of events that decided
//! it (see `server.rs`), and every DNS answer carries the connection id, because a
//! slab key may be reused by a newer connection.

pub mod auth;
pub mod background;
pub mod cache;
mod closing;
pub mod congestion;
pub mod connect;

pub mod ctx;
pub mod dest;
pub mod forward;
pub mod io;
pub mod pages;
pub mod request;
pub mod serve;
pub mod socket;
pub mod state;
pub mod tunnel;
pub mod upstream;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Instant;

use log::debug;
use slab::Slab;

use crate::access_log::ResultCode;
use crate::buf::Buf;
use crate::dns::Answer;
use crate::http::page::Problem;
use crate::http::{Method, Version};
pub use ctx::Ctx;
pub use io::{read_into, write_two, Io, OutBuf, Readiness};
pub use socket::{Socket, Stream};
pub use state::{Exchange, HeadScan, Linger, Relay, Resp, Route, Splice, State};
use upstream::Upstream;

/// Bytes one connection may move in one loop turn before others get their go.
pub const TURN_BUDGET: usize = 256 * 1024;

/// A client connection: its socket and buffers, and where it is in its lifecycle.
#[derive(Debug)]
pub struct Conn<S = Stream> {
    /// Unique for the process's life: the generation that DNS answers carry.
    pub id: u64,
    /// The client socket.
    pub sock: S,
    /// The client's address.
    pub peer: SocketAddr,
    /// What is known of the client socket's readiness.
    pub ready: Readiness,
    /// The client half-closed.
    pub eof: bool,
    /// Bytes from the client not yet consumed (heads, body bytes, pipelined requests).
    pub inbuf: Buf,
    /// Bytes larder itself sends the client (response heads, error pages), written
    /// before any relayed body bytes.
    pub out: OutBuf,
    /// Where the connection is in its lifecycle, with that phase's data.
    pub state: State,
    /// When the current state times out; set whenever the state is not `Closed`.
    pub deadline: Option<Instant>,
    /// Why the access rules refuse this client; answered 403 at its first head.
    pub denied: Option<Box<str>>,
    /// The client is in `--admin`: it may see the status page and metrics and PURGE.
    pub admin: bool,
    /// A `--proxy-protocol` balancer speaking for itself (a `LOCAL` or `UNKNOWN` PROXY
    /// header): its health checks get `/health` even if its own address is not
    /// `--allow`ed, since the clients it forwards are.
    pub balancer_check: bool,
    /// Is it in this turn's ready list.
    pub queued: bool,
    /// Requests answered so far (the first head has its own timeout).
    pub served: u32,
    /// No client: larder's own revalidation behind a stale answer (see
    /// `background.rs`), on a null socket.
    pub background: bool,
    /// The credential last verified on this connection (`--auth-file`).
    pub session: crate::auth::Session,
    /// The user the current request authenticated as, for the access log.
    pub user: Option<std::rc::Rc<str>>,
    /// Counted for its client, `peer`, in `Ctx::per_client` (`--max-conns-per-client`):
    /// released when it closes.
    pub counted: bool,
}

/// A connection just accepted: its first head is due within `--timeout-head`, and the
/// access rules judge its peer now — or, for a `--proxy-protocol` balancer, once its
/// PROXY header has said who the client is (see `request::head_step`).
pub fn accepted<S>(conn: &mut Conn<S>, ctx: &Ctx) {
    conn.deadline = Some(ctx.now + ctx.cfg.timeouts.head);
    if ctx.clients.sends_proxy_header(conn.peer.ip()) {
        conn.state = State::Head(HeadScan {
            proxy_header: true,
            ..HeadScan::default()
        });
    } else {
        judge(conn, ctx);
    }
}

/// A connection from `ip` is closed because its client has `--max-conns-per-client`
/// open already: counted for `/metrics`, and warned about at most once a minute.
pub fn over_client_limit(ctx: &mut Ctx, ip: std::net::IpAddr) {
    ctx.stats.conns_over_client_limit += 1;
    if ctx.per_client.warn_now(ctx.now) {
        log::warn!(
            "client {} has as many connections open as --max-conns-per-client allows; \
             its further connections are closed",
            ip.to_canonical()
        );
    }
}

/// A balancer's PROXY header named the client: with `--max-conns-per-client` it is
/// counted now. `false` if it is over its limit (the connection is then closed).
pub(crate) fn count_client<S>(conn: &mut Conn<S>, ctx: &mut Ctx) -> bool {
    if !ctx.per_client.limited() || conn.counted {
        return true;
    }
    let ip = conn.peer.ip();
    if !ctx.per_client.admit(ip) {
        over_client_limit(ctx, ip);
        return false;
    }
    conn.counted = true;
    true
}

/// Applies the access rules to the connection's client, `conn.peer`.
pub(crate) fn judge<S>(conn: &mut Conn<S>, ctx: &Ctx) {
    let j = ctx.clients.judge(conn.peer.ip());
    conn.denied = j.denied;
    conn.admin = j.admin;
}

impl<S: Socket> Conn<S> {
    /// Writes `out`'s bytes, then `body`'s, to the client, in one system call where
    /// they are short (see [`io::write_response`]); `out` moves past its share and its
    /// vector, once written, goes back to `heads`. With [`Io::Done`] comes how many of
    /// the bytes written were the body's.
    pub fn send_response(
        &mut self,
        body: &[u8],
        joined: &mut Vec<u8>,
        heads: &mut crate::buf::HeadPool,
    ) -> (Io, usize) {
        let res = io::write_response(&mut self.sock, &mut self.ready, &mut self.out, body, joined);
        match res {
            Io::Done(n) => (res, self.out.took(n, heads)),
            other => (other, 0),
        }
    }

    /// A connection just accepted from `peer`, about to read its first head, with no
    /// deadline yet. `id` must be unique for the process's life.
    pub fn new(id: u64, sock: S, peer: SocketAddr) -> Conn<S> {
        Conn {
            id,
            sock,
            peer,
            ready: Readiness::default(),
            eof: false,
            inbuf: Buf::new(),
            out: OutBuf::default(),
            state: State::Head(HeadScan::default()),
            deadline: None,
            denied: None,
            admin: false,
            balancer_check: false,
            queued: false,
            served: 0,
            background: false,
            session: crate::auth::Session::default(),
            user: None,
            counted: false,
        }
    }

    /// Takes the state out for a step, leaving `Closed` until the step puts the
    /// next one back.
    fn take_state(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Closed)
    }

    /// Finished: the server closes it after this batch.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Relaying a CONNECT tunnel.
    pub fn is_tunnel(&self) -> bool {
        matches!(self.state, State::Tunnel { .. })
    }

    /// Waiting for another connection's fetch, or reading its body as it is stored:
    /// the flight wakes it.
    pub fn follows_a_flight(&self) -> bool {
        matches!(self.state, State::Waiting { .. } | State::Serve { .. })
    }

    /// While stopping: marks the connection closed if it waits for a next request
    /// with nothing begun and nothing left to write. Returns whether it did.
    pub fn close_if_idle(&mut self) -> bool {
        let idle =
            matches!(self.state, State::Head(_)) && self.inbuf.is_empty() && self.out.is_empty();
        if idle {
            self.state = State::Closed;
        }
        idle
    }

    /// What the states promise about the rest of the connection, checked after every
    /// step in debug builds (`.ci/run` runs the suite in one): an upstream the state
    /// holds exists and names this connection back, and a connection that is not
    /// finished has a deadline. (That a state has its exchange and its upstream is
    /// not checked: the variants cannot be made without them.)
    #[cfg(debug_assertions)]
    pub fn check_invariants(&self, key: usize, ups: &Slab<Upstream<S>>) {
        for &idx in self.state.upstreams() {
            let owner = ups.get(idx).map(|u| u.owner);
            debug_assert_eq!(
                owner,
                Some(Some((key, self.id))),
                "conn {}: its upstream {idx} does not name it",
                self.id
            );
        }
        debug_assert!(
            self.is_closed() || self.deadline.is_some(),
            "conn {}: {} without a deadline",
            self.id,
            self.state.name()
        );
    }
}

/// What a step asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing more to do until new readiness.
    Wait,
    /// Budget spent with work left: step again next turn.
    Again,
    /// Close after this batch.
    Close,
}

/// Everything one step of one connection may touch: the connection (and its slab key),
/// the upstream sockets, and the context every connection shares ([`Ctx`]).
pub struct Scope<'a, S = Stream> {
    /// The connection's slab key.
    pub key: usize,
    /// The connection being stepped.
    pub conn: &'a mut Conn<S>,
    /// All upstream sockets, by slab key.
    pub ups: &'a mut Slab<Upstream<S>>,
    /// What every connection shares.
    pub ctx: &'a mut Ctx,
}

/// Steps a connection until it waits, spends its budget, or closes.
pub fn step<S: Socket>(cx: &mut Scope<S>) -> Step {
    if cx.conn.ready.hup && awaiting_upstream(&cx.conn.state) && client_gone(cx.conn) {
        debug!(
            "conn {}: client closed while waiting for upstream",
            cx.conn.id
        );
        let state = cx.conn.take_state();
        cx.conn.state = abandon(cx, state);
        return Step::Close;
    }
    if cx.conn.ready.err && responding(&cx.conn.state) {
        debug!("conn {}: client connection failed mid-response", cx.conn.id);
        cx.conn.state = match cx.conn.take_state() {
            State::Forward { ex, relay } => forward::client_lost(cx, ex, relay),
            other => abandon(cx, other),
        };
        if cx.conn.is_closed() {
            return Step::Close;
        }
    }
    // The state is out of the connection while it steps (`Closed` stands in), and
    // goes back once, when the step ends.
    let mut state = cx.conn.take_state();
    let mut budget = TURN_BUDGET;
    let outcome = loop {
        let progress;
        (state, progress) = step_state(cx, state, &mut budget);
        if matches!(state, State::Closed) {
            break Step::Close;
        }
        if !progress {
            // Debug builds (the tests) check that a `Head` or `Forward` step that
            // says to wait (and the step that ended a response, with
            // `head_may_move`) is right: a step now must do nothing.
            if cfg!(debug_assertions) && matches!(state, State::Head(_) | State::Forward { .. }) {
                let name = state.name();
                let (next, again) = step_state(cx, state, &mut budget);
                debug_assert!(
                    !again && next.name() == name,
                    "conn {}: a {name} step that was to wait moved",
                    cx.conn.id
                );
                state = next;
            }
            break Step::Wait;
        }
        if budget == 0 {
            break Step::Again;
        }
    };
    // What stood in is `Closed`, which owns nothing: it is forgotten rather than
    // dropped, which spares a call on every step.
    let stand_in = std::mem::replace(&mut cx.conn.state, state);
    debug_assert!(matches!(stand_in, State::Closed));
    std::mem::forget(stand_in);
    outcome
}

/// One step of the state's phase: the next state, and whether to step again (see
/// [`step`]). `state` is taken by value here, not matched in place in the loop, so
/// that it is known to be moved out: matching `Head`, whose data is `Copy`, would
/// otherwise leave it to be dropped (a call) when the next state replaces it.
fn step_state<S: Socket>(cx: &mut Scope<S>, state: State, budget: &mut usize) -> (State, bool) {
    match state {
        State::Head(scan) => request::head_step(cx, scan),
        resolving @ State::Resolving { .. } => (resolving, false),
        State::Waiting { ex } => request::waiting_step(cx, ex),
        State::Connecting { ex, route } => connect::step(cx, ex, route),
        State::Forward { ex, relay } => forward::step(cx, ex, relay, budget),
        State::Serve { ex, serving } => serve::step(cx, ex, serving, budget),
        State::Tunnel { ex, splice } => tunnel::step(cx, ex, splice, budget),
        State::Closing(linger) => closing::step(cx, linger),
        closed @ State::Closed => (closed, false),
    }
}

/// The connection's deadline passed: what that means depends on its state. Returns
/// `Close`, or `Again` for a connection to step now.
pub fn on_deadline<S: Socket>(cx: &mut Scope<S>) -> Step {
    cx.conn.deadline = None;
    let timeouts = cx.ctx.cfg.timeouts;
    let id = cx.conn.id;
    cx.conn.state = match cx.conn.take_state() {
        // The credential's check did not come back in time (the threads are swamped).
        State::Head(scan) if scan.verifying => {
            let message = "This proxy could not check your password in time. Try again shortly.";
            let p = Problem::new(503, "auth-timeout", message);
            request::answer(cx, p, true, None, ResultCode::None)
        }
        // Part of a head arrived and the rest did not: say so (RFC 9110 §15.5.9).
        // A connection idle between requests is closed without a word: the
        // client may be sending its next request right now (RFC 9112 §9.5).
        State::Head(_) if !cx.conn.inbuf.is_empty() && cx.conn.out.is_empty() => {
            let message = "The rest of the request head did not arrive in time.";
            let p = Problem::new(408, "head-timeout", message);
            request::answer(cx, p, true, None, ResultCode::None)
        }
        state @ (State::Head(_) | State::Closing(_) | State::Closed) => {
            debug!("conn {id}: timed out in {}", state.name());
            State::Closed
        }
        State::Waiting { ex } => {
            // The fetch it waits for is under way (a long body that cannot be
            // streamed, say); that fetch has deadlines of its own, and when it
            // ends, this request is woken. Or that fetch ended in this very turn:
            // then the request is stepped next, and looks the URL up again.
            cx.conn.deadline = Some(cx.ctx.now + timeouts.response);
            State::Waiting { ex }
        }
        State::Resolving { ex, .. } => request::connect_timeout(cx, ex, None),
        State::Connecting { ex, route } => connect::on_deadline(cx, ex, route),
        State::Forward { ex, relay } => forward::timed_out(cx, ex, &relay),
        State::Serve { ex, serving } => {
            debug!("conn {id}: client stopped reading a cached response");
            serve::abort(cx, ex, serving)
        }
        State::Tunnel { ex, splice } => {
            debug!("conn {id}: tunnel idle");
            tunnel::end(cx, ex, &splice)
        }
    };
    if cx.conn.is_closed() {
        Step::Close
    } else {
        Step::Again
    }
}

/// A DNS answer for the connection: it goes on if it is still resolving (it may have
/// timed out meanwhile). Returns whether it was resolving.
pub fn on_dns<S: Socket>(cx: &mut Scope<S>, answer: Answer) -> bool {
    match cx.conn.take_state() {
        State::Resolving { ex, pool_key } => {
            cx.conn.state = request::resolved(cx, ex, pool_key, answer);
            true
        }
        other => {
            cx.conn.state = other;
            false
        }
    }
}

/// The server is closing the connection: a request still in flight is logged as
/// aborted and its upstream closed. Returns whether it was resolving (the server
/// then cancels the lookup).
pub fn close<S: Socket>(cx: &mut Scope<S>) -> bool {
    let state = cx.conn.take_state();
    let resolving = matches!(state, State::Resolving { .. });
    cx.conn.state = abandon(cx, state);
    resolving
}

/// Ends whatever the state was doing: a request in flight is logged as aborted, its
/// upstream closed. The connection is finished.
fn abandon<S: Socket>(cx: &mut Scope<S>, state: State) -> State {
    match state {
        State::Resolving { ex, .. } | State::Waiting { ex } => request::abort(cx, ex, None),
        State::Connecting { ex, route } => {
            connect::drop_attempts(cx, &route);
            request::abort(cx, ex, None)
        }
        State::Forward { ex, relay } => request::abort(cx, ex, Some(relay.up)),
        State::Tunnel { ex, splice } => request::abort(cx, ex, Some(splice.up)),
        State::Serve { ex, serving } => serve::abort(cx, ex, serving),
        State::Head(_) | State::Closing(_) | State::Closed => State::Closed,
    }
}

/// The client has sent its request and has nothing to read yet: we are resolving,
/// connecting or waiting for the response head. CONNECT is exempt: half-close is
/// part of what a tunnel carries.
fn awaiting_upstream(state: &State) -> bool {
    let Some(ex) = state.exchange() else {
        return false;
    };
    if ex.method == Method::Connect || ex.status != 0 {
        return false;
    }
    match state {
        State::Resolving { .. } | State::Connecting { .. } | State::Waiting { .. } => true,
        State::Forward { relay, .. } => ex.req_done && matches!(relay.resp, Resp::Head),
        _ => false,
    }
}

/// A response is under way to the client (its head is sent or being sent), and the
/// client has not been left behind already. Then nothing is read from the client, so
/// an error on its socket (a reset: the client is gone for good) is noticed only
/// here, not when the upstream next sends. CONNECT is exempt: a tunnel reads both
/// sides all along.
fn responding(state: &State) -> bool {
    match state {
        State::Forward { ex, relay } => ex.status != 0 && !relay.detached,
        State::Serve { ex, .. } => ex.status != 0,
        _ => false,
    }
}

/// The client closed its side while its request waits for the upstream. A client
/// that only half-closed (`shutdown(SHUT_WR)`, as some scripts do after sending a
/// request) still gets its response; one that hung up should not keep an upstream
/// busy until the response timeout. TCP cannot tell the two apart until something
/// is sent, so an HTTP/1.1 client is sent `100 Continue` (an interim response it
/// must accept at any time, RFC 9110 §15.2): a closed socket answers it with a
/// reset, which arrives as an error event, and then the client is gone. An
/// HTTP/1.0 client, which may not be sent a 1xx, is taken at its word and answered.
fn client_gone<S: Socket>(conn: &mut Conn<S>) -> bool {
    if conn.ready.err {
        return true;
    }
    let ex = match &mut conn.state {
        State::Resolving { ex, .. }
        | State::Connecting { ex, .. }
        | State::Waiting { ex }
        | State::Forward { ex, .. } => ex,
        _ => return false,
    };
    if ex.probed || ex.client_version != Version::Http11 {
        return false;
    }
    ex.probed = true;
    const PROBE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    match write_two(&mut conn.sock, &mut conn.ready, PROBE, &[]) {
        Io::Done(n) if n == PROBE.len() => {
            ex.bytes += n as u64;
            false
        }
        Io::Done(n) => {
            // The rest goes out before anything else written to the client.
            ex.bytes += n as u64;
            conn.out.push(PROBE.get(n..).unwrap_or_default());
            false
        }
        Io::Blocked => {
            conn.out.push(PROBE);
            false
        }
        Io::Eof | Io::Failed(_) => true,
    }
}

/// What [`flush_out`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Some bytes went out.
    Some,
    /// Nothing could be written now.
    Blocked,
    /// The write failed: the client is gone.
    Failed,
}

/// Writes what larder queued for the client.
pub fn flush_out<S: Socket>(conn: &mut Conn<S>) -> Flushed {
    if !conn.ready.w {
        return Flushed::Blocked;
    }
    match write_two(&mut conn.sock, &mut conn.ready, conn.out.pending(), &[]) {
        Io::Done(n) => {
            conn.out.advance(n);
            Flushed::Some
        }
        Io::Blocked => Flushed::Blocked,
        Io::Eof | Io::Failed(_) => Flushed::Failed,
    }
}

/// Keeps a finished exchange's memory (the box, and the vector of its upstream head)
/// for the next request to reuse. What it holds besides is let go now.
pub fn recycle(ctx: &mut Ctx, mut ex: Box<Exchange>) {
    ctx.heads.give(std::mem::take(&mut ex.upstream_head));
    ex.cache = None;
    ex.content_type = None;
    ctx.spares.give_exchange(ex);
}

/// Ends an exchange's use of the cache (an unfinished fill is aborted, pinned objects
/// unpinned) and hands it back for logging. Every path that ends an exchange goes
/// through here, so none can leak a pin or a fill.
pub fn end_exchange<S: Socket>(cx: &mut Scope<S>, mut ex: Box<Exchange>) -> Box<Exchange> {
    cache::release(&mut cx.ctx.cache, &mut ex);
    ex
}

/// Whether the `Head` state [`after_response`] returns could do anything now: flush
/// `out`, parse bytes already read, act on the client's end of stream, or read. When
/// it could not, the step that ended the response says not to step again: the client
/// sends its next request only once it has read this response, so on almost every
/// request that `Head` step would find nothing.
pub fn head_may_move<S>(conn: &Conn<S>) -> bool {
    !conn.out.is_empty() || !conn.inbuf.is_empty() || conn.eof || conn.ready.r
}

/// A response is done: read the next request (keep-alive) or close after flushing
/// `out` and lingering (`close`).
pub fn after_response<S: Socket>(cx: &mut Scope<S>, close: bool) -> State {
    let conn = &mut *cx.conn;
    if close {
        conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
        State::Closing(Linger::default())
    } else {
        conn.served += 1;
        conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.idle);
        conn.inbuf.release_if_empty(&mut cx.ctx.bufs);
        State::Head(HeadScan::default())
    }
}
