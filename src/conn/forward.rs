//! `Forward` state: one HTTP exchange between a client and an upstream socket.
//!
//! The request half (head, then body bytes validated in place in the client's
//! `inbuf`) and the response half (head, then body bytes validated in place in the
//! upstream's `inbuf`) move independently. Bytes are read from a side only when the
//! buffer they land in has room and everything in it has been validated, so a slow
//! reader on one side stops larder reading from the other (back-pressure) and at
//! most one buffer per direction is held.
//!
//! When the whole object is fetched for a client's Range, the client gets only its
//! part of the body (`Relay::part`): every byte is validated and stored as usual, and
//! those outside the part are dropped instead of written.
//!
//! Each half returns what it found, and when the exchange cannot go on in this state
//! it says how it ends ([`End`]); [`step`] carries that out with the exchange and
//! the relay in hand.

use super::Socket;
use crate::access_log::{Hier, ResultCode};
use crate::parents::head::says_hit;
use log::debug;

use super::cache::{body_complete, body_failed, response_head, OnResponse, Serving, Sink};
use super::request::{abort, drop_upstream, fail, log_exchange, resolve};
use super::state::Part;
use super::upstream::Upstream;
use super::{
    after_response, end_exchange, head_may_move, read_into, recycle, write_two, Conn, Ctx,
    Exchange, Io, Relay, Resp, Scope, State,
};
use crate::buf::BUF_SIZE;
use crate::http::body::BodyTracker;
use crate::http::date::push_date_field;
use crate::http::page::Problem;
use crate::http::response::parse_response_into;
use crate::http::{BodyKind, Method, Version};

/// How long an idle upstream connection stays pooled. Origins commonly close idle
/// connections after 5–60 s; a dead one is detected (EOF event) or retried anyway.
pub const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// How a forwarded exchange leaves the `Forward` state before its response is done.
#[derive(Debug)]
enum End {
    /// Answer with larder's error page (or just close, if the client already has part
    /// of a response).
    Fail(Problem<'static>),
    /// Log the exchange as aborted and close.
    Abort,
    /// A pooled socket turned out dead before any response byte: send the request
    /// again on a new connection.
    Retry,
    /// The client can no longer be written to.
    ClientLost,
    /// The parent said 2xx to the CONNECT larder sent it: the tunnel opens.
    Tunnel,
    /// A 304 refreshed the stale entry; the answer is queued and its body comes from
    /// the cache.
    Refreshed {
        /// The upstream socket may be pooled.
        reuse: bool,
        /// The refreshed object's body, to serve.
        serving: Box<Serving>,
    },
}

/// What one pass over both halves did, when the exchange stays in `Forward`.
#[derive(Debug)]
enum Pass {
    /// Whether anything moved.
    Moved(bool),
    /// The response is written whole (`by_eof`: a body without a length ended by the
    /// upstream's FIN).
    Done {
        /// The body ended with the upstream's FIN.
        by_eof: bool,
    },
}

/// Relays the request body upstream and the response back to the client until
/// nothing moves, the exchange leaves `Forward`, or `budget` bytes are spent.
/// Returns the next state and whether to step it again: `true` when the state
/// changed (unless to a `Head` with nothing to do: see [`head_may_move`]) or the
/// budget is spent, `false` when it stays `Forward` with nothing left to move until
/// new readiness (a step now would only repeat the last, empty pass).
/// The exchange and the relay are worked on in place; they move only when the state
/// changes.
pub fn step<S: Socket>(
    cx: &mut Scope<S>,
    mut ex: Box<Exchange>,
    mut relay: Box<Relay>,
    budget: &mut usize,
) -> (State, bool) {
    if !cx.ups.contains(relay.up) {
        // Cannot happen: the socket is closed only through this connection.
        return (abort(cx, ex, None), true);
    }
    loop {
        match pass(cx, &mut ex, &mut relay, budget) {
            // Spent with work left: the server steps it again next turn.
            Ok(Pass::Moved(true)) if *budget == 0 => return (State::Forward { ex, relay }, true),
            Ok(Pass::Moved(true)) if may_move(cx, &ex, &relay) => {}
            Ok(Pass::Moved(moved)) => {
                // Debug builds (the tests) check each pass `may_move` saves: it
                // must find nothing to move.
                if cfg!(debug_assertions) && moved {
                    let saved = pass(cx, &mut ex, &mut relay, budget);
                    debug_assert!(
                        matches!(saved, Ok(Pass::Moved(false))),
                        "conn {}: the pass may_move saved would have done {saved:?}",
                        cx.conn.id
                    );
                }
                return (State::Forward { ex, relay }, false);
            }
            Ok(Pass::Done { by_eof }) => {
                let next = finish(cx, ex, &relay, by_eof);
                cx.ctx.spares.give_relay(relay);
                let again = !matches!(next, State::Head(_)) || head_may_move(cx.conn);
                return (next, again);
            }
            Err(end) => return (leave(cx, ex, relay, end), true),
        }
    }
}

/// After a pass that moved, whether another could move anything. It must never say
/// `false` when one could: nothing would step the connection until its next event.
/// A pass could move with a readiness it left unused (a read that filled the buffer
/// leaves the socket readable), with client bytes it read but did not validate (the
/// request half writes before it reads), or with bytes left to write to a side that
/// is writable. The response half reads, validates and writes in one pass, and a
/// short write clears the socket's readiness, so after most passes nothing is left:
/// the pass that would find nothing is saved on almost every request (sending the
/// request leaves both sides waiting for the origin).
fn may_move<S: Socket>(cx: &Scope<S>, ex: &Exchange, relay: &Relay) -> bool {
    let Some(up) = cx.ups.get(relay.up) else {
        return false;
    };
    let conn = &*cx.conn;
    let unvalidated = !ex.req_done && ex.req_pending < conn.inbuf.len();
    let request_left = relay.head_sent < ex.upstream_head.len() || ex.req_pending > 0;
    let response_left = !conn.out.is_empty() || relay.resp_pending > 0;
    conn.ready.r
        || up.ready.r
        || unvalidated
        || (up.ready.w && request_left)
        || (conn.ready.w && response_left)
}

/// One pass: the request half, then the response half in, then out.
fn pass<S: Socket>(
    cx: &mut Scope<S>,
    ex: &mut Exchange,
    relay: &mut Relay,
    budget: &mut usize,
) -> Result<Pass, End> {
    // The upstream is looked up once for the whole pass and lent to each half (it
    // is there: `step` checked).
    let Some(up) = cx.ups.get_mut(relay.up) else {
        return Ok(Pass::Moved(false));
    };
    let (conn, ctx) = (&mut *cx.conn, &mut *cx.ctx);
    let sent = send_request(conn, up, ctx, ex, relay, budget)?;
    let received = receive_response(conn, up, ctx, ex, relay)?;
    let relayed = send_response(conn, up, ctx, ex, relay, budget)?;
    let progress = sent | received | relayed;
    if progress {
        refresh_deadline(conn, ctx, ex, relay);
    }
    Ok(match completed(conn, up, relay) {
        Some(by_eof) => Pass::Done { by_eof },
        None => Pass::Moved(progress),
    })
}

/// Carries out how the exchange leaves `Forward`.
fn leave<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>, relay: Box<Relay>, end: End) -> State {
    match end {
        End::Fail(p) => {
            // A parent that closed a new connection without a word is broken: it is
            // left out for a while (the request itself was sent, so it is not
            // sent again).
            let up = cx.ups.get(relay.up);
            let parent = up
                .filter(|u| !u.reused && !relay.got_bytes)
                .and_then(|u| u.parent);
            if let Some(i) =
                parent.filter(|_| matches!(p.detail, "upstream-failed" | "no-response"))
            {
                super::request::parent_down(cx, i, p.message);
            }
            fail(cx, ex, Some(relay.up), p)
        }
        End::Tunnel => {
            let up = relay.up;
            cx.ctx.spares.give_relay(relay);
            super::connect::open_tunnel(cx, ex, up)
        }
        End::Abort => abort(cx, ex, Some(relay.up)),
        End::Retry => retry_fresh(cx, ex, relay.up),
        End::ClientLost => client_lost(cx, ex, relay),
        End::Refreshed { reuse, serving } => {
            if reuse {
                release_to_pool(cx, relay.up);
            } else {
                drop_upstream(cx, relay.up);
            }
            cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            State::Serve { ex, serving }
        }
    }
}

/// The deadline passed: no response head within `--timeout-response` of the whole
/// request going up (504), or the body stalled (the exchange is aborted).
pub fn timed_out<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>, relay: &Relay) -> State {
    if matches!(relay.resp, Resp::Head) && relay.response_deadline_set {
        let secs = cx.ctx.cfg.timeouts.response.as_secs_f64();
        let message = format!("The server sent no response within {secs} s.");
        fail(
            cx,
            ex,
            Some(relay.up),
            Problem::new(504, "response-timeout", &message),
        )
    } else {
        debug!("conn {}: body transfer stalled", cx.conn.id);
        abort(cx, ex, Some(relay.up))
    }
}

/// While waiting for a response head after the whole request went up, the
/// response timeout runs from that moment; otherwise any progress resets the
/// body-idle timeout.
fn refresh_deadline<S: Socket>(conn: &mut Conn<S>, ctx: &Ctx, ex: &Exchange, relay: &mut Relay) {
    let now = ctx.now;
    let t = ctx.cfg.timeouts;
    if matches!(relay.resp, Resp::Head) && relay.request_sent(ex) {
        if !relay.response_deadline_set {
            relay.response_deadline_set = true;
            conn.deadline = Some(now + t.response);
        }
    } else {
        conn.deadline = Some(now + t.body);
    }
}

/// Request head and body, client → upstream.
fn send_request<S: Socket>(
    conn: &mut Conn<S>,
    up: &mut Upstream<S>,
    ctx: &mut Ctx,
    ex: &mut Exchange,
    relay: &mut Relay,
    budget: &mut usize,
) -> Result<bool, End> {
    let mut progress = false;
    if !ex.req_done && ex.req_pending < conn.inbuf.len() {
        let fresh = conn.inbuf.data().get(ex.req_pending..).unwrap_or(&[]);
        match ex.req_body.feed(fresh, |_| {}) {
            Ok(p) => {
                ex.req_pending += p.consumed;
                ex.req_done = p.done;
            }
            Err(e) => {
                debug!("conn {}: bad request body: {}", conn.id, e);
                ex.close_after = true;
                return Err(End::Fail(Problem::new(400, "bad-request", e.detail)));
            }
        }
    }
    let head = ex.upstream_head.get(relay.head_sent..).unwrap_or(&[]);
    let body = conn.inbuf.data().get(..ex.req_pending).unwrap_or(&[]);
    if up.ready.w && up.connected && (!head.is_empty() || !body.is_empty()) {
        match write_two(&mut up.sock, &mut up.ready, head, body) {
            Io::Done(n) => {
                let h = n.min(head.len());
                relay.head_sent += h;
                let b = n - h;
                conn.inbuf.consume(b);
                ex.req_pending -= b;
                *budget = budget.saturating_sub(n);
                progress = true;
            }
            Io::Blocked => {}
            Io::Eof | Io::Failed(_) => {
                if may_retry(ex, relay, up) {
                    return Err(End::Retry);
                }
                let why = "upstream connection failed while sending the request";
                return Err(End::Fail(Problem::new(502, "upstream-failed", why)));
            }
        }
    }
    let all_scanned = ex.req_pending == conn.inbuf.len();
    if !ex.req_done && all_scanned && conn.ready.r && !conn.eof && conn.inbuf.has_room() {
        match read_into(
            &mut conn.sock,
            &mut conn.ready,
            conn.inbuf.space(&mut ctx.bufs),
        ) {
            Io::Done(n) => {
                conn.inbuf.filled(n);
                progress = true;
            }
            Io::Blocked => conn.inbuf.release_if_empty(&mut ctx.bufs),
            Io::Eof => {
                conn.eof = true;
                progress = true;
            }
            Io::Failed(_) => return Err(End::Abort),
        }
    }
    if conn.eof && !ex.req_done {
        // The client went away in the middle of its request body.
        return Err(End::Abort);
    }
    Ok(progress)
}

/// Response head and body, upstream → larder.
fn receive_response<S: Socket>(
    conn: &mut Conn<S>,
    up: &mut Upstream<S>,
    ctx: &mut Ctx,
    ex: &mut Exchange,
    relay: &mut Relay,
) -> Result<bool, End> {
    let limits = ctx.limits;
    let mut progress = false;
    let want = match &relay.resp {
        Resp::Head => true,
        // Read only once everything buffered is validated, and (when de-chunking
        // into `out`) while the client keeps up.
        Resp::Body(tracker) => {
            relay.resp_pending == up.inbuf.len()
                && !tracker.is_done()
                && (!relay.dechunk || conn.out.pending().len() < BUF_SIZE)
        }
        Resp::Done => false,
    };
    if want && up.ready.r && !up.eof {
        if matches!(relay.resp, Resp::Head) && !up.inbuf.has_room() {
            up.inbuf.grow(limits.response_head + 1);
        }
        if up.inbuf.has_room() {
            match read_into(&mut up.sock, &mut up.ready, up.inbuf.space(&mut ctx.bufs)) {
                Io::Done(n) => {
                    up.inbuf.filled(n);
                    relay.got_bytes = true;
                    ctx.stats.bytes_from_upstream += n as u64;
                    progress = true;
                }
                Io::Blocked => up.inbuf.release_if_empty(&mut ctx.bufs),
                Io::Eof => {
                    up.eof = true;
                    progress = true;
                }
                Io::Failed(e) => {
                    debug!("conn {}: upstream read: {}", conn.id, e);
                    up.eof = true;
                    relay.reusable = false;
                    // A reset is not an end: whatever the framing, nothing is stored.
                    body_failed(&mut ctx.cache, &mut ex.cache);
                    progress = true;
                }
            }
        }
    }
    let mut refreshed = None;
    while matches!(relay.resp, Resp::Head) && !up.inbuf.is_empty() {
        let head = ctx.heads.take();
        match parse_response_into(up.inbuf.data(), &limits, &ex.method, &ctx.via, head) {
            Ok(None) => break,
            Ok(Some(mut r)) => {
                progress = true;
                up.inbuf.consume(r.head_len);
                if r.status < 200 {
                    // Interim responses go to HTTP/1.1 clients only (RFC 9110 §15.2),
                    // and never ahead of the `200` that opens a tunnel.
                    if ex.client_version == Version::Http11 && ex.method != Method::Connect {
                        conn.out.push(&r.client_head);
                        conn.out.push(b"\r\n");
                    }
                    continue;
                }
                // A stopping larder closes each connection after its response.
                let mut close = !ex.client_keep_alive || conn.eof || ctx.draining;
                if ex.method == Method::Connect {
                    // Only a parent is sent a CONNECT: its 2xx opens the tunnel (bytes
                    // behind its head are the tunnel's); anything else is relayed as it
                    // is, then the connection closes.
                    if (200..300).contains(&r.status) {
                        ctx.heads.give(r.client_head);
                        return Err(End::Tunnel);
                    }
                    close = true;
                }
                if matches!(ex.hier, Hier::FirstUpParent | Hier::Carp) && says_hit(&r.client_head) {
                    ex.hier = Hier::ParentHit;
                }
                // The Transfer-Encoding line the parser leaves out of the head: only
                // a chunked body relayed as it is has one.
                let mut framing: Option<&[u8]> = None;
                match r.body {
                    BodyKind::Chunked if ex.client_version == Version::Http10 => {
                        relay.dechunk = true;
                        close = true;
                    }
                    BodyKind::Chunked => framing = Some(b"Transfer-Encoding: chunked\r\n"),
                    BodyKind::Close => close = true,
                    BodyKind::None | BodyKind::Length(_) => {}
                }
                if ctx.log.is_some() {
                    ex.content_type = content_type(&r.client_head);
                }
                if !r.has_date {
                    // RFC 9110 §6.6.1: a proxy with a clock adds the Date the origin
                    // left out; the cache then ages the response from it. The turn's
                    // clock (read once per turn) is the one the cache goes by too.
                    push_date_field(&mut r.client_head, ctx.unix);
                }
                match response_head(&mut ctx.cache, ex, &mut conn.out, conn.eof, &r) {
                    OnResponse::Relay(cache_status) => {
                        ex.status = r.status;
                        conn.out.push_vec(r.client_head);
                        if let Some(line) = framing {
                            conn.out.push(line);
                        }
                        if let Some(line) = cache_status {
                            line.write(&mut conn.out);
                        }
                    }
                    // The client's part of the whole object: its head is queued.
                    OnResponse::Part { body } => relay.part = Some(Part::new(body)),
                    OnResponse::Serve(serving) => {
                        // A 304 refreshed the entry; the answer comes from the cache.
                        refreshed = Some((r.reusable, serving));
                        break;
                    }
                }
                if close {
                    conn.out.push(b"Connection: close\r\n");
                } else if ex.client_version == Version::Http10 {
                    conn.out.push(b"Connection: keep-alive\r\n");
                }
                conn.out.push(b"\r\n");
                if let BodyKind::Length(n) = r.body {
                    // A small body goes out with the head in one write, copied in
                    // behind it: room for it now (see `write_response`).
                    conn.out.make_room(usize::try_from(n).unwrap_or(usize::MAX));
                }
                ex.close_after = close;
                relay.reusable = r.reusable && ex.method != Method::Connect;
                relay.resp = Resp::Body(BodyTracker::new(r.body, &limits));
            }
            Err(e) => {
                debug!("conn {}: bad upstream response: {}", conn.id, e);
                return Err(End::Fail(Problem::new(502, "bad-response", e.detail)));
            }
        }
    }
    if let Some((reusable, serving)) = refreshed {
        let reuse = reusable && relay.request_sent(ex) && !up.eof && up.inbuf.is_empty();
        relay.resp = Resp::Done;
        conn.ready.w = true;
        return Err(End::Refreshed {
            reuse,
            serving: Box::new(serving),
        });
    }
    if matches!(relay.resp, Resp::Head) && up.eof {
        if may_retry(ex, relay, up) {
            return Err(End::Retry);
        }
        let p = if relay.got_bytes {
            let message = "The server closed the connection in the middle of its response.";
            Problem::new(502, "bad-response", message)
        } else {
            let message = "The server closed the connection without answering.";
            Problem::new(502, "no-response", message)
        };
        return Err(End::Fail(p));
    }
    if let Resp::Body(tracker) = &mut relay.resp {
        if !tracker.is_done() && relay.resp_pending < up.inbuf.len() {
            let mut sink = Sink::new(&mut ctx.cache, &mut ex.cache);
            let res = if relay.dechunk {
                let data = up.inbuf.data();
                let out = &mut conn.out;
                tracker
                    .feed(data, |r| {
                        let bytes = data.get(r).unwrap_or(&[]);
                        sink.put(bytes);
                        out.push(bytes);
                    })
                    .inspect(|p| up.inbuf.consume(p.consumed))
            } else {
                let fresh = up.inbuf.data().get(relay.resp_pending..).unwrap_or(&[]);
                let pending = &mut relay.resp_pending;
                tracker
                    .feed(fresh, |r| sink.put(fresh.get(r).unwrap_or(&[])))
                    .inspect(|p| *pending += p.consumed)
            };
            if let Err(e) = res {
                debug!("conn {}: bad upstream body: {}", conn.id, e);
                return Err(End::Abort);
            }
            progress = true;
        }
        if tracker.is_done() && up.inbuf.len() > relay.resp_pending {
            // Bytes after the end of the response: the connection is out of step.
            relay.reusable = false;
        }
        // The body is complete and checked (a clean FIN ends a close-delimited one; a
        // reset already dropped the fill): the stored object may become visible.
        if tracker.is_done() || (up.eof && tracker.eof_completes()) {
            body_complete(&mut ctx.cache, &mut ex.cache);
        }
        if up.eof && !tracker.is_done() && !tracker.eof_completes() {
            debug!("conn {}: upstream closed mid-body", conn.id);
            return Err(End::Abort);
        }
    }
    Ok(progress)
}

/// Larder's bytes (`out`) then relayed body bytes, larder → client.
fn send_response<S: Socket>(
    conn: &mut Conn<S>,
    up: &mut Upstream<S>,
    ctx: &mut Ctx,
    ex: &mut Exchange,
    relay: &mut Relay,
    budget: &mut usize,
) -> Result<bool, End> {
    if relay.detached {
        // Nobody to write to: drop what the client would have got (it is stored).
        let n = relay.resp_pending;
        up.inbuf.consume(n);
        relay.resp_pending = 0;
        conn.out.advance(conn.out.pending().len());
        return Ok(n > 0);
    }
    let mut dropped = false;
    let mut body_max = usize::MAX;
    if let Some(part) = relay.part.as_mut() {
        // The client gets only part of the body: what lies outside it was written to
        // the fill as it was validated, and goes now. It counts against the budget
        // like bytes written, so skipping a long prefix still yields to others.
        let n = part.drop_outside(relay.resp_pending);
        if n > 0 {
            up.inbuf.consume(n);
            relay.resp_pending -= n;
            *budget = budget.saturating_sub(n);
            dropped = true;
        }
        body_max = usize::try_from(part.left).unwrap_or(usize::MAX);
    }
    let body = if matches!(relay.resp, Resp::Body(_)) && !relay.dechunk {
        let pending = relay.resp_pending.min(body_max);
        up.inbuf.data().get(..pending).unwrap_or(&[])
    } else {
        &[]
    };
    if !conn.ready.w || (conn.out.is_empty() && body.is_empty()) {
        return Ok(dropped);
    }
    match conn.send_response(body, &mut ctx.joined, &mut ctx.heads) {
        (Io::Done(n), b) => {
            if let Some(part) = relay.part.as_mut() {
                part.left = part.left.saturating_sub(b as u64);
            }
            up.inbuf.consume(b);
            relay.resp_pending -= b;
            ex.bytes += n as u64;
            *budget = budget.saturating_sub(n);
            if up.inbuf.is_empty() {
                up.inbuf.release_if_empty(&mut ctx.bufs);
            }
            Ok(true)
        }
        (Io::Blocked, _) => Ok(false),
        (Io::Eof | Io::Failed(_), _) => Err(End::ClientLost),
    }
}

/// The client can no longer be written to: if other requests wait for this fetch, or
/// it fetches a whole object for a Range and the rest is short enough (see
/// `Cache::fetches_on_without_client`), it goes on without the client (its bytes are
/// dropped) and is stored; else the exchange ends.
pub fn client_lost<S: Socket>(
    cx: &mut Scope<S>,
    ex: Box<Exchange>,
    mut relay: Box<Relay>,
) -> State {
    if cx.ctx.cache.fetches_on_without_client(ex.cache.as_ref()) {
        debug!("conn {}: client left; fetching on to store", cx.conn.id);
        relay.detached = true;
        return State::Forward { ex, relay };
    }
    abort(cx, ex, Some(relay.up))
}

/// Whether the response is written whole: `Some(by_eof)` (`by_eof`: a body without a
/// length ended by the upstream's FIN), `None` while it is not.
fn completed<S: Socket>(conn: &Conn<S>, up: &Upstream<S>, relay: &Relay) -> Option<bool> {
    if relay.resp_pending != 0 || !conn.out.is_empty() {
        return None;
    }
    let Resp::Body(tracker) = &relay.resp else {
        return None;
    };
    let by_eof = !tracker.is_done() && up.eof && tracker.eof_completes();
    if !tracker.is_done() && !by_eof {
        return None;
    }
    Some(by_eof)
}

/// Ends the exchange once the response is written: log it, pool or close the
/// upstream, and go back to reading heads or close.
fn finish<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>, relay: &Relay, by_eof: bool) -> State {
    let (up_eof, up_drained) = cx
        .ups
        .get(relay.up)
        .map_or((true, false), |up| (up.eof, up.inbuf.is_empty()));
    let request_sent = relay.request_sent(&ex);
    let reuse = request_sent && relay.reusable && !by_eof && !up_eof && up_drained;
    let close_client =
        ex.close_after || !ex.client_keep_alive || cx.conn.eof || !request_sent || relay.detached;
    let ex = end_exchange(cx, ex);
    let result = match ex.cache.as_ref() {
        _ if relay.detached => ResultCode::MissAborted,
        Some(c) => c.result,
        None => ResultCode::Miss,
    };
    log_exchange(cx, &ex, result);
    if reuse {
        release_to_pool(cx, relay.up);
    } else {
        drop_upstream(cx, relay.up);
    }
    recycle(cx.ctx, ex);
    if relay.detached {
        State::Closed
    } else {
        after_response(cx, close_client)
    }
}

/// Moves upstream socket `idx` into the idle pool (or closes it when the pool is
/// full).
fn release_to_pool<S: Socket>(cx: &mut Scope<S>, idx: usize) {
    let Some(up) = cx.ups.get_mut(idx) else {
        return;
    };
    up.owner = None;
    up.reused = true;
    up.idle_deadline = Some(cx.ctx.now + POOL_IDLE);
    up.inbuf.release_if_empty(&mut cx.ctx.bufs);
    if !cx.ctx.pool.put(up.pool_key, idx) {
        drop_upstream(cx, idx);
    }
}

/// A request that met a failure before any response byte may go again on a
/// fresh connection only if the failed one was a reused (pooled) socket — an idle
/// connection the origin closed — and resending cannot change anything: once,
/// idempotent, and with no body (whose bytes are already consumed).
fn may_retry<S: Socket>(ex: &Exchange, relay: &Relay, up: &Upstream<S>) -> bool {
    up.reused
        && !relay.got_bytes
        && !ex.retried
        && !ex.request_has_body
        && ex.method.is_idempotent()
}

/// Sends the request again on a new connection (pooled socket `idx` was dead).
fn retry_fresh<S: Socket>(cx: &mut Scope<S>, mut ex: Box<Exchange>, idx: usize) -> State {
    let pool_key = cx.ups.get(idx).map_or(0, |up| up.pool_key);
    drop_upstream(cx, idx);
    debug!(
        "conn {}: pooled upstream was dead; retrying once",
        cx.conn.id
    );
    ex.retried = true;
    ex.peer = None;
    resolve(cx, ex, pool_key)
}

/// The Content-Type value in a serialized head, for the access log.
pub(super) fn content_type(head: &[u8]) -> Option<Box<str>> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
        if !name.eq_ignore_ascii_case(b"content-type") {
            return None;
        }
        let v = std::str::from_utf8(value.get(1..)?).ok()?.trim();
        Some(v.into())
    })
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn content_type_is_found_case_insensitively() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-TYPE: text/plain; charset=x\r\nVia: 1.1 a\r\n";
        assert_eq!(content_type(head).as_deref(), Some("text/plain; charset=x"));
        assert_eq!(content_type(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
