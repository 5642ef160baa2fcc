//! Client connections and their state machine.
//!
//! # Lifecycle
//!
//! ```text
//!            accept
//!              │
//!              ▼
//!   ┌────────► Head ──── bad head / denied / blocked ──► (error page) ─┐
//!   │          │ request head parsed                                   │
//!   │          ├── fresh in the cache ──────────────► Serve ──┐        │
//!   │          ├── another client is fetching it ─► Waiting   │        │
//!   │          │        (its fetch ends: look up again) ◄─┘   │        │
//!   │          ├── pooled upstream for host:port ──────────┐  │        │
//!   │          ▼                                           │  │        │
//!   │      Resolving ── DNS answer (waker) ──► Connecting  │  │        │
//!   │                                           │          │  │        │
//!   │                      CONNECT ◄────────────┤          │  │        │
//!   │                         │                 ▼          ▼  │        │
//!   │                       Tunnel           Forward ◄─────┘  │        │
//!   │                         │                 │ 304 ──► Serve        │
//!   └── keep-alive ───────────┼─────────────────┴─────────────┘        │
//!                             ▼                                        ▼
//!                          Closing (flush, half-close, drain) ──► closed
//! ```
//!
//! * `Head`: bytes from the client accumulate in `inbuf` until a whole head is
//!   there; the first head has `timeouts.head`, later ones `timeouts.idle`.
//! * `Resolving`/`Connecting`: the request head is parsed and kept in the
//!   [`Exchange`]; nothing is read from the client meanwhile.
//! * `Forward`: the request (head, then body bytes straight from `inbuf`) goes up
//!   while the response comes down; the two halves progress independently, so an
//!   origin may answer before it has read the whole body (then both sides close).
//! * `Serve`: a response from the cache: the head in `out`, the body from the map
//!   (see `serve.rs`; the cache path is described in `cache.rs`).
//! * `Waiting`: the request waits for another connection's fetch of the same URL
//!   (request collapsing); woken when that fetch ends.
//! * `Tunnel`: bytes are copied both ways; each direction half-closes on its own.
//! * `Closing`: flush `out`, `shutdown(Write)`, read and discard until EOF or a short
//!   deadline, so the client reads our last response instead of a reset.
//!
//! A connection is closed by the server *after* the batch of events that decided
//! it (see `server.rs`), and every DNS answer carries the connection id, because a
//! slab key may be reused by a newer connection.

pub mod cache;
pub mod collapse;
pub mod ctx;
pub mod forward;
pub mod pages;
pub mod request;
pub mod serve;
pub mod tunnel;
pub mod upstream;

use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use slab::Slab;

use crate::buf::{Buf, HeadPool};
use crate::http::body::BodyTracker;
use crate::http::target::Target;
use crate::http::{Method, Version};
pub use ctx::Ctx;
use log::debug;
use upstream::Upstream;

/// Bytes one connection may move in one loop turn before others get their go.
pub const TURN_BUDGET: usize = 256 * 1024;

/// Userland copy of a socket's readiness (mio is edge-triggered): set by events,
/// cleared by [`read_into`] and [`write_two`] when the socket is known drained or
/// full — on `WouldBlock`, and (as nginx does) on a short read or write, which
/// saves the extra system call that would only return `WouldBlock`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Readiness {
    /// The socket may have bytes to read.
    pub r: bool,
    /// The socket may take bytes to write.
    pub w: bool,
    /// The peer closed its side (EPOLLRDHUP) or the socket has an error: a short
    /// read then does not mean "drained", because the EOF must still be read.
    pub hup: bool,
    /// The socket has an error (EPOLLERR): the next read reports it.
    pub err: bool,
    /// A short read after the peer's FIN (and no error) emptied the socket, so the
    /// next read can only return EOF: [`read_into`] reports it without asking.
    pub fin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Where a client connection is in its lifecycle.
pub enum State {
    /// Reading a request head: the first one, or the next on a kept connection.
    Head,
    /// Waiting for the DNS lookup of the target's host.
    Resolving,
    /// Connecting to the origin, trying the resolved addresses in turn.
    Connecting,
    /// Sending the request upstream and relaying the response to the client.
    Forward,
    /// Writing a response from the cache.
    Serve,
    /// Waiting for another connection's fetch of the same URL (request collapsing).
    Waiting,
    /// Relaying a CONNECT tunnel's bytes both ways.
    Tunnel,
    /// Flushing the last answer, half-closing, then draining the client before closing.
    Closing,
    /// Finished; the server closes it after the current batch.
    Closed,
}

/// A client connection and, while it has a request in flight, its exchange.
#[derive(Debug)]
pub struct Conn {
    /// Unique for the process's life: the generation that DNS answers carry.
    pub id: u64,
    /// The client socket.
    pub sock: TcpStream,
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
    /// Where the connection is in its lifecycle.
    pub state: State,
    /// Index of the upstream socket in use.
    pub up: Option<usize>,
    /// When the current state times out; set whenever the state is not `Closed`.
    pub deadline: Option<Instant>,
    /// Why the access rules refuse this client; answered 403 at its first head.
    pub denied: Option<Box<str>>,
    /// The client is in `--admin`: it may see the status page and metrics and PURGE.
    pub admin: bool,
    /// Is it in this turn's ready list.
    pub queued: bool,
    /// Requests answered so far (the first head has its own timeout).
    pub served: u32,
    /// How far `inbuf` was searched for the end of a head.
    pub head_scan: usize,
    /// The request line of the head being read has ended, and the head was parsed
    /// once then (a line without a version is refused at once, not at a timeout).
    pub line_ended: bool,
    /// Bytes discarded while lingering in `Closing`.
    pub drained: usize,
    /// In `Closing`: `out` is flushed and the write side shut, or shutting it failed.
    pub shut: bool,
    /// The request in flight, if any.
    pub ex: Option<Box<Exchange>>,
}

impl Conn {
    /// What the state tag promises about the rest of the connection, checked after
    /// every step in debug builds (`.ci/run` runs the suite in one): a state that
    /// needs a request in flight has one, an upstream the connection names exists and
    /// names it back, and a connection that is not finished has a deadline.
    #[cfg(debug_assertions)]
    pub fn check_invariants(&self, key: usize, ups: &Slab<Upstream>) {
        let needs_exchange = matches!(
            self.state,
            State::Resolving | State::Connecting | State::Waiting | State::Tunnel
        );
        debug_assert!(
            !needs_exchange || self.ex.is_some(),
            "conn {}: {:?} without an exchange",
            self.id,
            self.state
        );
        if matches!(self.state, State::Connecting | State::Tunnel) {
            debug_assert!(
                self.up.is_some(),
                "conn {}: {:?} without an upstream",
                self.id,
                self.state
            );
        }
        if matches!(self.state, State::Resolving | State::Waiting) {
            debug_assert!(
                self.up.is_none(),
                "conn {}: {:?} holds an upstream",
                self.id,
                self.state
            );
        }
        if let Some(idx) = self.up {
            let owner = ups.get(idx).map(|u| u.owner);
            debug_assert_eq!(
                owner,
                Some(Some((key, self.id))),
                "conn {}: its upstream {idx} does not name it",
                self.id
            );
        }
        debug_assert!(
            self.state == State::Closed || self.deadline.is_some(),
            "conn {}: {:?} without a deadline",
            self.id,
            self.state
        );
    }
}

/// Where the response to the current request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resp {
    /// No final response head yet.
    Head,
    /// Relaying the body.
    Body,
    /// All of it written to the client.
    Done,
}

/// One request in flight: what was asked, and how far each half has come.
#[derive(Debug)]
pub struct Exchange {
    /// When the request's head was parsed: the logged time runs from here.
    pub started: Instant,
    /// Method of the client's request.
    pub method: Method,
    /// The request target.
    pub target: Target,
    /// HTTP version the client spoke.
    pub client_version: Version,
    /// The client wants the connection kept (never set while larder is stopping).
    pub client_keep_alive: bool,
    /// The re-serialized head for upstream; kept until a response arrives so a
    /// request that met a dead pooled connection can be sent again.
    pub upstream_head: Vec<u8>,
    /// The request has Cache-Control or Pragma / an `If-…` field
    /// ([`crate::http::request::Request`]'s `directives` and `conditional`).
    pub req_directives: bool,
    /// The request has an `If-…` field (see `req_directives`).
    pub req_conditional: bool,
    /// Bytes of `upstream_head` written upstream so far.
    pub head_sent: usize,
    /// Finds the end of the request body.
    pub req_body: BodyTracker,
    /// Validated body bytes at the front of `inbuf` not yet written upstream.
    pub req_pending: usize,
    /// The request body has been read to its end (from the start if there is none).
    pub req_done: bool,
    /// The request head announced a body: the request is never retried, nor answered
    /// from the cache.
    pub request_has_body: bool,
    /// How far the response has come.
    pub resp: Resp,
    /// Finds the end of the upstream response's body; `None` until a forwarded
    /// response's final head is parsed.
    pub resp_body: Option<BodyTracker>,
    /// Validated response body bytes at the front of the upstream's `inbuf`.
    pub resp_pending: usize,
    /// HTTP/1.0 client and a chunked response: send the data only, then close.
    pub dechunk: bool,
    /// Close the client connection after this response.
    pub close_after: bool,
    /// The upstream socket may be pooled after this response.
    pub reusable: bool,
    /// Something arrived from upstream for this request.
    pub got_bytes: bool,
    /// The request was already sent again after a dead pooled connection (once at most).
    pub retried: bool,
    /// The `--timeout-response` deadline was set, when the whole request had been sent.
    pub response_deadline_set: bool,
    /// The resolved addresses of the target's host; `None` before a lookup, and when a
    /// pooled connection was taken instead.
    pub addrs: Option<Arc<[IpAddr]>>,
    /// Index in `addrs` of the address being connected to or in use.
    pub addr_idx: usize,
    /// [`upstream::Pool::key`] of the target's origin, computed once by `route` (to
    /// look in the pool) and given to a new upstream socket for when it goes back.
    /// 0 for CONNECT, whose upstream is never pooled.
    pub pool_key: u64,
    /// The address of the pooled connection this exchange took, when no lookup gave
    /// it `addrs` (kept apart so that taking one allocates nothing).
    pub pooled_peer: Option<IpAddr>,
    /// Status sent to the client (0: none yet).
    pub status: u16,
    /// Bytes sent to the client for this request, heads included.
    pub bytes: u64,
    /// The response's Content-Type, for the access log.
    pub content_type: Option<Box<str>>,
    /// Tunnel: the write side of the upstream socket is shut (client → upstream is
    /// done), and of the client socket (upstream → client is done).
    pub upstream_write_shut: bool,
    /// Tunnel: the client socket's write side is shut (see `upstream_write_shut`).
    pub client_write_shut: bool,
    /// Tunnel: the kernel pipes of the directions that switched to splicing
    /// (client → upstream, upstream → client), and the bytes each has moved.
    pub pipes: [Option<crate::sys::Pipe>; 2],
    /// Tunnel: bytes each direction has moved (same order as `pipes`).
    pub moved: [u64; 2],
    /// The cache's part: lookup result, fill, pinned objects (`None` for a request the
    /// cache has no part in, such as CONNECT).
    pub cache: Option<cache::CacheEx>,
    /// The client left while others wait for this response: it is still fetched and
    /// stored for them, and its bytes for the client are dropped.
    pub detached: bool,
    /// The client closed its side while the request waited for the upstream, and
    /// was sent a `100 Continue` to tell a half-close from a hang-up (see
    /// [`step`]).
    pub probed: bool,
}

impl Exchange {
    /// The upstream address in use: the current one of `addrs`, else that of the
    /// pooled connection taken.
    pub fn peer_ip(&self) -> Option<IpAddr> {
        match &self.addrs {
            Some(addrs) => addrs.get(self.addr_idx).copied(),
            None => self.pooled_peer,
        }
    }
}

impl Conn {
    /// A connection just accepted from `peer`, about to read its first head, with no
    /// deadline yet. `id` must be unique for the process's life.
    pub fn new(id: u64, sock: TcpStream, peer: SocketAddr) -> Conn {
        Conn {
            id,
            sock,
            peer,
            ready: Readiness::default(),
            eof: false,
            inbuf: Buf::new(),
            out: OutBuf::default(),
            state: State::Head,
            up: None,
            deadline: None,
            denied: None,
            admin: false,
            queued: false,
            served: 0,
            head_scan: 0,
            line_ended: false,
            drained: 0,
            shut: false,
            ex: None,
        }
    }
}

/// Bytes larder generates for a client, with a write position.
#[derive(Debug, Default)]
pub struct OutBuf {
    data: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    /// Bytes not yet written.
    pub fn pending(&self) -> &[u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    /// Everything pushed has been written.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Appends a copy of `bytes`.
    pub fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    /// Appends `bytes`, adopting the vector itself when nothing is pending (a
    /// response head built by the parser is then sent without a copy).
    pub fn push_vec(&mut self, bytes: Vec<u8>) {
        if self.is_empty() {
            self.data = bytes;
            self.pos = 0;
        } else {
            self.data.extend_from_slice(&bytes);
        }
    }

    /// Drops `n` written bytes, freeing the memory once all are written so an idle
    /// connection holds none.
    pub fn advance(&mut self, n: usize) {
        drop(self.advance_keep(n));
    }

    /// [`OutBuf::advance`], handing the emptied vector back (for a [`HeadPool`])
    /// instead of freeing it.
    pub fn advance_keep(&mut self, n: usize) -> Option<Vec<u8>> {
        self.pos += n;
        if self.pos >= self.data.len() {
            self.pos = 0;
            return Some(std::mem::take(&mut self.data));
        }
        None
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
pub struct Scope<'a> {
    /// The connection's slab key.
    pub key: usize,
    /// The connection being stepped.
    pub conn: &'a mut Conn,
    /// All upstream sockets, by slab key.
    pub ups: &'a mut Slab<Upstream>,
    /// What every connection shares.
    pub ctx: &'a mut Ctx,
}

/// Result of one read or write attempt.
#[derive(Debug)]
pub enum Io {
    /// This many bytes were moved; never 0.
    Done(usize),
    /// The socket would block (a read into an empty buffer also says so).
    Blocked,
    /// The peer closed its side: nothing more can be read.
    Eof,
    /// The system call failed.
    Failed(io::Error),
}

/// Reads once into `buf`, retrying on EINTR, and updates `ready`. A zero-length
/// `buf` reports `Blocked` without a system call (and leaves `ready` alone); so does
/// `Eof` once `ready.fin` says the peer's FIN is all that is left.
pub fn read_into(sock: &mut TcpStream, ready: &mut Readiness, buf: &mut [u8]) -> Io {
    if buf.is_empty() {
        return Io::Blocked;
    }
    if ready.fin {
        return Io::Eof;
    }
    loop {
        match sock.read(buf) {
            Ok(0) => return Io::Eof,
            Ok(n) => {
                if n < buf.len() {
                    if !ready.hup {
                        ready.r = false;
                    } else if !ready.err {
                        // Nothing can follow a FIN, and the socket is empty.
                        ready.fin = true;
                    }
                }
                return Io::Done(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready.r = false;
                return Io::Blocked;
            }
            Err(e) => return Io::Failed(e),
        }
    }
}

/// Writes `a` then `b` with one `writev`, retrying on EINTR, and updates `ready.w`.
pub fn write_two(sock: &mut TcpStream, ready: &mut Readiness, a: &[u8], b: &[u8]) -> Io {
    loop {
        let res = if a.is_empty() {
            sock.write(b)
        } else if b.is_empty() {
            sock.write(a)
        } else {
            sock.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
        };
        match res {
            Ok(0) => return Io::Failed(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                if n < a.len() + b.len() {
                    ready.w = false;
                }
                return Io::Done(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready.w = false;
                return Io::Blocked;
            }
            Err(e) => return Io::Failed(e),
        }
    }
}

/// Steps a connection until it waits, spends its budget, or closes.
pub fn step(cx: &mut Scope) -> Step {
    if cx.conn.ready.hup && awaiting_upstream(cx.conn) && client_gone(cx.conn) {
        debug!(
            "conn {}: client closed while waiting for upstream",
            cx.conn.id
        );
        request::abort(cx);
        return Step::Close;
    }
    if cx.conn.ready.err && responding(cx.conn) {
        debug!("conn {}: client connection failed mid-response", cx.conn.id);
        if cx.conn.state == State::Forward {
            forward::client_lost(cx);
        } else {
            request::abort(cx);
        }
        if cx.conn.state == State::Closed {
            return Step::Close;
        }
    }
    let mut budget = TURN_BUDGET;
    loop {
        let progress = match cx.conn.state {
            State::Head => request::head_step(cx),
            State::Resolving => false,
            State::Waiting => request::waiting_step(cx),
            State::Connecting => request::connect_step(cx),
            State::Forward => forward::step(cx, &mut budget),
            State::Serve => serve::step(cx, &mut budget),
            State::Tunnel => tunnel::step(cx, &mut budget),
            State::Closing => closing_step(cx),
            State::Closed => return Step::Close,
        };
        if cx.conn.state == State::Closed {
            return Step::Close;
        }
        if !progress {
            return Step::Wait;
        }
        if budget == 0 {
            return Step::Again;
        }
    }
}

/// The client has sent its request and has nothing to read yet: we are resolving,
/// connecting or waiting for the response head. CONNECT is exempt: half-close is
/// part of what a tunnel carries.
fn awaiting_upstream(conn: &Conn) -> bool {
    let Some(ex) = conn.ex.as_deref() else {
        return false;
    };
    if ex.method == Method::Connect || ex.status != 0 {
        return false;
    }
    match conn.state {
        State::Resolving | State::Connecting | State::Waiting => true,
        State::Forward => ex.req_done && ex.resp == Resp::Head,
        _ => false,
    }
}

/// A response is under way to the client (its head is sent or being sent), and the
/// client has not been left behind already. Then nothing is read from the client, so
/// an error on its socket (a reset: the client is gone for good) is noticed only
/// here, not when the upstream next sends. CONNECT is exempt: a tunnel reads both
/// sides all along.
fn responding(conn: &Conn) -> bool {
    let Some(ex) = conn.ex.as_deref() else {
        return false;
    };
    ex.status != 0
        && !ex.detached
        && ex.method != Method::Connect
        && matches!(conn.state, State::Forward | State::Serve)
}

/// The client closed its side while its request waits for the upstream. A client
/// that only half-closed (`shutdown(SHUT_WR)`, as some scripts do after sending a
/// request) still gets its response; one that hung up should not keep an upstream
/// busy until the response timeout. TCP cannot tell the two apart until something
/// is sent, so an HTTP/1.1 client is sent `100 Continue` (an interim response it
/// must accept at any time, RFC 9110 §15.2): a closed socket answers it with a
/// reset, which arrives as an error event, and then the client is gone. An
/// HTTP/1.0 client, which may not be sent a 1xx, is taken at its word and answered.
fn client_gone(conn: &mut Conn) -> bool {
    if conn.ready.err {
        return true;
    }
    let Some(ex) = conn.ex.as_deref_mut() else {
        return false;
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

/// Writes what larder queued for the client. Returns progress; a write error
/// closes the connection.
pub fn flush_out(conn: &mut Conn) -> bool {
    if !conn.ready.w {
        return false;
    }
    match write_two(&mut conn.sock, &mut conn.ready, conn.out.pending(), &[]) {
        Io::Done(n) => {
            conn.out.advance(n);
            true
        }
        Io::Blocked => false,
        Io::Eof | Io::Failed(_) => {
            conn.state = State::Closed;
            true
        }
    }
}

/// Keeps a finished exchange's memory (the box, and the vector of its upstream head)
/// for the next request to reuse. What it holds besides is let go now.
pub fn recycle(ctx: &mut Ctx, mut ex: Box<Exchange>) {
    ctx.heads.give(std::mem::take(&mut ex.upstream_head));
    if ctx.spare_exchanges.len() < HeadPool::KEEP {
        ex.cache = None;
        ex.addrs = None;
        ex.content_type = None;
        ex.pipes = [None, None];
        ctx.spare_exchanges.push(ex);
    }
}

/// Ends the current exchange: takes it from the connection and gives back what it
/// holds in the cache (an unfinished fill is aborted, pinned objects unpinned). Every
/// path that ends an exchange goes through here, so none can leak a pin or a fill.
pub fn end_exchange(cx: &mut Scope) -> Option<Box<Exchange>> {
    let mut ex = cx.conn.ex.take()?;
    cache::release(&mut cx.ctx.cache, &mut ex);
    Some(ex)
}

/// A response is done: read the next request (keep-alive) or close after flushing
/// `out` and lingering (`close`).
pub fn after_response(cx: &mut Scope, close: bool) {
    let conn = &mut *cx.conn;
    if close {
        conn.state = State::Closing;
        conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
    } else {
        conn.state = State::Head;
        conn.served += 1;
        conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.idle);
        conn.inbuf.release_if_empty(&mut cx.ctx.bufs);
    }
}

/// Longest we linger after our last response to let the client read it.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 256 * 1024;

/// Flush `out`, half-close, then drain until EOF so the client is not reset
/// while our last bytes are in flight.
fn closing_step(cx: &mut Scope) -> bool {
    let conn = &mut *cx.conn;
    if !conn.out.is_empty() {
        return flush_out(conn);
    }
    if !conn.shut {
        conn.shut = true;
        conn.inbuf.clear(&mut cx.ctx.bufs);
        if conn.eof || conn.sock.shutdown(std::net::Shutdown::Write).is_err() {
            conn.state = State::Closed;
            return true;
        }
        conn.deadline = Some(cx.ctx.now + LINGER);
    }
    if !conn.ready.r {
        return false;
    }
    let mut scratch = [0u8; 4096];
    match read_into(&mut conn.sock, &mut conn.ready, &mut scratch) {
        Io::Done(n) => {
            conn.drained += n;
            if conn.drained > LINGER_BYTES {
                conn.state = State::Closed;
            }
            true
        }
        Io::Blocked => false,
        Io::Eof | Io::Failed(_) => {
            conn.state = State::Closed;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{read_into, Io, Readiness};
    use std::io::Write;
    use std::net::{Shutdown, TcpListener};

    /// A connected pair: larder's end as a mio stream, the peer as a std stream.
    fn pair() -> (mio::net::TcpStream, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (ours, _) = listener.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        (mio::net::TcpStream::from_std(ours), peer)
    }

    /// Loopback delivers within the peer's send; the pause only guards against a
    /// slow scheduler.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    /// The peer sends "last" and its FIN; we read with the readiness an event would
    /// have given (`err`: EPOLLERR came too). Returns whether `fin` was inferred, after
    /// checking that the next read reports EOF either way.
    fn read_last_words(err: bool) -> bool {
        let (mut ours, mut peer) = pair();
        peer.write_all(b"last").expect("write");
        peer.shutdown(Shutdown::Write).expect("shutdown");
        settle();
        let mut ready = Readiness {
            r: true,
            hup: true,
            err,
            ..Readiness::default()
        };
        let mut buf = [0u8; 64];
        let first = read_into(&mut ours, &mut ready, &mut buf);
        assert!(matches!(first, Io::Done(4)), "{first:?}");
        let fin = ready.fin;
        assert!(ready.r, "{ready:?}");
        let next = read_into(&mut ours, &mut ready, &mut buf);
        assert!(matches!(next, Io::Eof), "{next:?}");
        fin
    }

    #[test]
    fn short_read_after_fin_reports_eof_next() {
        assert!(read_last_words(false));
    }

    #[test]
    fn short_read_with_an_error_pending_still_asks_the_socket() {
        assert!(!read_last_words(true));
    }

    #[test]
    fn short_read_without_fin_means_drained() {
        let (mut ours, mut peer) = pair();
        peer.write_all(b"more to come").expect("write");
        settle();
        let mut ready = Readiness {
            r: true,
            ..Readiness::default()
        };
        let mut buf = [0u8; 64];
        assert!(matches!(
            read_into(&mut ours, &mut ready, &mut buf),
            Io::Done(12)
        ));
        assert!(!ready.r && !ready.fin, "{ready:?}");
    }
}
