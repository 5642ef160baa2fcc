//! `Forward` state: one HTTP exchange between a client and an upstream socket.
//!
//! The request half (head, then body bytes validated in place in the client's
//! `inbuf`) and the response half (head, then body bytes validated in place in the
//! upstream's `inbuf`) move independently. Bytes are read from a side only when the
//! buffer they land in has room and everything in it has been validated, so a slow
//! reader on one side stops larder reading from the other (back-pressure) and at
//! most one buffer per direction is held.

use crate::access_log::ResultCode;
use log::debug;

use super::cache::{body_complete, body_failed, response_head, OnResponse, Sink};
use super::request::{abort, drop_upstream, fail, log_exchange, resolve};
use super::upstream::Upstream;
use super::{after_response, end_exchange, read_into, write_two, Exchange, Io, Resp, Scope, State};
use crate::buf::BUF_SIZE;
use crate::cache::unix_now;
use crate::http::body::BodyTracker;
use crate::http::date::push_http_date;
use crate::http::page::Problem;
use crate::http::response::parse_response_into;
use crate::http::{BodyKind, Version};

/// How long an idle upstream connection stays pooled. Origins commonly close idle
/// connections after 5–60 s; a dead one is detected (EOF event) or retried anyway.
pub const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Relays the request body upstream and the response back to the client, spending
/// at most `budget` bytes. Returns whether anything was done.
pub fn step(cx: &mut Scope, budget: &mut usize) -> bool {
    let Some(idx) = cx.conn.up else {
        cx.conn.state = State::Closed;
        return true;
    };
    if !cx.ups.contains(idx) || cx.conn.ex.is_none() {
        cx.conn.state = State::Closed;
        return true;
    }
    let mut progress = send_request(cx, idx, budget);
    if cx.conn.state != State::Forward {
        return true;
    }
    progress |= receive_response(cx, idx);
    if cx.conn.state != State::Forward {
        return true;
    }
    progress |= send_response(cx, idx, budget);
    if cx.conn.state != State::Forward {
        return true;
    }
    if progress {
        refresh_deadline(cx);
    }
    progress | complete(cx, idx)
}

/// While waiting for a response head after the whole request went up, the
/// response timeout runs from that moment; otherwise any progress resets the
/// body-idle timeout.
fn refresh_deadline(cx: &mut Scope) {
    let now = cx.ctx.now;
    let t = cx.ctx.cfg.timeouts;
    let Some(ex) = cx.conn.ex.as_deref_mut() else {
        return;
    };
    let sent = ex.req_done && ex.head_sent == ex.upstream_head.len() && ex.req_pending == 0;
    if ex.resp == Resp::Head && sent {
        if !ex.response_deadline_set {
            ex.response_deadline_set = true;
            cx.conn.deadline = Some(now + t.response);
        }
    } else {
        cx.conn.deadline = Some(now + t.body);
    }
}

/// Request head and body, client → upstream.
fn send_request(cx: &mut Scope, idx: usize, budget: &mut usize) -> bool {
    let conn = &mut *cx.conn;
    let (Some(ex), Some(up)) = (conn.ex.as_deref_mut(), cx.ups.get_mut(idx)) else {
        return false;
    };
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
                fail(cx, Problem::new(400, "bad-request", e.detail));
                return true;
            }
        }
    }
    let head = ex.upstream_head.get(ex.head_sent..).unwrap_or(&[]);
    let body = conn.inbuf.data().get(..ex.req_pending).unwrap_or(&[]);
    if up.ready.w && up.connected && (!head.is_empty() || !body.is_empty()) {
        match write_two(&mut up.sock, &mut up.ready, head, body) {
            Io::Done(n) => {
                let h = n.min(head.len());
                ex.head_sent += h;
                let b = n - h;
                conn.inbuf.consume(b);
                ex.req_pending -= b;
                *budget = budget.saturating_sub(n);
                progress = true;
            }
            Io::Blocked => {}
            Io::Eof | Io::Failed(_) => {
                upstream_lost(cx, "upstream connection failed while sending the request");
                return true;
            }
        }
    }
    let conn = &mut *cx.conn;
    let Some(ex) = conn.ex.as_deref_mut() else {
        return progress;
    };
    let all_scanned = ex.req_pending == conn.inbuf.len();
    if !ex.req_done && all_scanned && conn.ready.r && !conn.eof && conn.inbuf.has_room() {
        match read_into(
            &mut conn.sock,
            &mut conn.ready,
            conn.inbuf.space(&mut cx.ctx.bufs),
        ) {
            Io::Done(n) => {
                conn.inbuf.filled(n);
                progress = true;
            }
            Io::Blocked => conn.inbuf.release_if_empty(&mut cx.ctx.bufs),
            Io::Eof => {
                conn.eof = true;
                progress = true;
            }
            Io::Failed(_) => {
                abort(cx);
                return true;
            }
        }
    }
    let conn = &*cx.conn;
    if conn.eof && conn.ex.as_ref().is_some_and(|ex| !ex.req_done) {
        // The client went away in the middle of its request body.
        abort(cx);
        return true;
    }
    progress
}

/// Response head and body, upstream → larder.
fn receive_response(cx: &mut Scope, idx: usize) -> bool {
    let limits = cx.ctx.limits;
    let conn = &mut *cx.conn;
    let (Some(ex), Some(up)) = (conn.ex.as_deref_mut(), cx.ups.get_mut(idx)) else {
        return false;
    };
    let mut progress = false;
    let want = match ex.resp {
        Resp::Head => true,
        // Read only once everything buffered is validated, and (when de-chunking
        // into `out`) while the client keeps up.
        Resp::Body => {
            ex.resp_pending == up.inbuf.len()
                && ex.resp_body.as_ref().is_some_and(|t| !t.is_done())
                && (!ex.dechunk || conn.out.pending().len() < BUF_SIZE)
        }
        Resp::Done => false,
    };
    if want && up.ready.r && !up.eof {
        if ex.resp == Resp::Head && !up.inbuf.has_room() {
            up.inbuf.grow(limits.response_head + 1);
        }
        if up.inbuf.has_room() {
            match read_into(
                &mut up.sock,
                &mut up.ready,
                up.inbuf.space(&mut cx.ctx.bufs),
            ) {
                Io::Done(n) => {
                    up.inbuf.filled(n);
                    ex.got_bytes = true;
                    cx.ctx.stats.bytes_from_upstream += n as u64;
                    progress = true;
                }
                Io::Blocked => up.inbuf.release_if_empty(&mut cx.ctx.bufs),
                Io::Eof => {
                    up.eof = true;
                    progress = true;
                }
                Io::Failed(e) => {
                    debug!("conn {}: upstream read: {}", conn.id, e);
                    up.eof = true;
                    ex.reusable = false;
                    // A reset is not an end: whatever the framing, nothing is stored.
                    body_failed(&mut cx.ctx.cache, &mut ex.cache);
                    progress = true;
                }
            }
        }
    }
    let mut refreshed = None;
    while ex.resp == Resp::Head && !up.inbuf.is_empty() {
        let head = cx.ctx.heads.take();
        match parse_response_into(up.inbuf.data(), &limits, &ex.method, &cx.ctx.via, head) {
            Ok(None) => break,
            Ok(Some(r)) => {
                progress = true;
                up.inbuf.consume(r.head_len);
                if r.status < 200 {
                    // Interim responses go to HTTP/1.1 clients only (RFC 9110 §15.2).
                    if ex.client_version == Version::Http11 {
                        conn.out.push(&r.client_head);
                        conn.out.push(b"\r\n");
                    }
                    continue;
                }
                // A stopping larder closes each connection after its response.
                let mut close = !ex.client_keep_alive || conn.eof || cx.ctx.draining;
                let mut framing: &[u8] = b"";
                match r.body {
                    BodyKind::Chunked if ex.client_version == Version::Http10 => {
                        ex.dechunk = true;
                        close = true;
                    }
                    BodyKind::Chunked => framing = b"Transfer-Encoding: chunked\r\n",
                    BodyKind::Close => close = true,
                    BodyKind::None | BodyKind::Length(_) => {}
                }
                if cx.ctx.log.is_some() {
                    ex.content_type = content_type(&r.client_head);
                }
                let mut r = r;
                if !r.has_date {
                    // RFC 9110 §6.6.1: a proxy with a clock adds the Date the origin
                    // left out; the cache then ages the response from it.
                    r.client_head.extend_from_slice(b"Date: ");
                    push_http_date(&mut r.client_head, unix_now());
                    r.client_head.extend_from_slice(b"\r\n");
                }
                let cache_status =
                    match response_head(&mut cx.ctx.cache, ex, &mut conn.out, conn.eof, &r) {
                        OnResponse::Relay(line) => line,
                        OnResponse::Serve => {
                            // A 304 refreshed the entry; the answer comes from the cache.
                            refreshed = Some(r.reusable);
                            break;
                        }
                    };
                conn.out.push_vec(r.client_head);
                conn.out.push(framing);
                if let Some(line) = cache_status {
                    line.write(&mut conn.out);
                }
                if close {
                    conn.out.push(b"Connection: close\r\n");
                } else if ex.client_version == Version::Http10 {
                    conn.out.push(b"Connection: keep-alive\r\n");
                }
                conn.out.push(b"\r\n");
                ex.status = r.status;
                ex.close_after = close;
                ex.reusable = r.reusable;
                ex.resp = Resp::Body;
                ex.resp_body = Some(BodyTracker::new(r.body, &limits));
            }
            Err(e) => {
                debug!("conn {}: bad upstream response: {}", conn.id, e);
                fail(cx, Problem::new(502, "bad-response", e.detail));
                return true;
            }
        }
    }
    if let Some(reusable) = refreshed {
        let sent = ex.req_done && ex.head_sent == ex.upstream_head.len() && ex.req_pending == 0;
        let reuse = reusable && sent && !up.eof && up.inbuf.is_empty();
        ex.resp = Resp::Done;
        conn.ready.w = true;
        if reuse {
            release_to_pool(cx, idx);
        } else {
            drop_upstream(cx);
        }
        cx.conn.state = State::Serve;
        cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
        return true;
    }
    if ex.resp == Resp::Head && up.eof {
        if may_retry(ex, up) {
            retry_fresh(cx);
        } else if ex.got_bytes {
            let message = "The server closed the connection in the middle of its response.";
            fail(cx, Problem::new(502, "bad-response", message));
        } else {
            let message = "The server closed the connection without answering.";
            fail(cx, Problem::new(502, "no-response", message));
        }
        return true;
    }
    if ex.resp == Resp::Body {
        let Some(tracker) = ex.resp_body.as_mut() else {
            return progress;
        };
        if !tracker.is_done() && ex.resp_pending < up.inbuf.len() {
            let mut sink = Sink::new(&mut cx.ctx.cache, &mut ex.cache);
            let res = if ex.dechunk {
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
                let fresh = up.inbuf.data().get(ex.resp_pending..).unwrap_or(&[]);
                tracker
                    .feed(fresh, |r| sink.put(fresh.get(r).unwrap_or(&[])))
                    .inspect(|p| ex.resp_pending += p.consumed)
            };
            if let Err(e) = res {
                debug!("conn {}: bad upstream body: {}", conn.id, e);
                abort(cx);
                return true;
            }
            progress = true;
        }
        if tracker.is_done() && up.inbuf.len() > ex.resp_pending {
            // Bytes after the end of the response: the connection is out of step.
            ex.reusable = false;
        }
        // The body is complete and checked (a clean FIN ends a close-delimited one; a
        // reset already dropped the fill): the stored object may become visible.
        if tracker.is_done() || (up.eof && tracker.eof_completes()) {
            body_complete(&mut cx.ctx.cache, &mut ex.cache);
        }
        if up.eof && !tracker.is_done() && !tracker.eof_completes() {
            debug!("conn {}: upstream closed mid-body", conn.id);
            abort(cx);
            return true;
        }
    }
    progress
}

/// Larder's bytes (`out`) then relayed body bytes, larder → client.
fn send_response(cx: &mut Scope, idx: usize, budget: &mut usize) -> bool {
    let conn = &mut *cx.conn;
    let (Some(ex), Some(up)) = (conn.ex.as_deref_mut(), cx.ups.get_mut(idx)) else {
        return false;
    };
    if ex.detached {
        // Nobody to write to: drop what the client would have got (it is stored).
        let n = ex.resp_pending;
        up.inbuf.consume(n);
        ex.resp_pending = 0;
        conn.out.advance(conn.out.pending().len());
        return n > 0;
    }
    let body = if ex.resp == Resp::Body && !ex.dechunk {
        up.inbuf.data().get(..ex.resp_pending).unwrap_or(&[])
    } else {
        &[]
    };
    let out = conn.out.pending();
    if !conn.ready.w || (out.is_empty() && body.is_empty()) {
        return false;
    }
    match write_two(&mut conn.sock, &mut conn.ready, out, body) {
        Io::Done(n) => {
            let o = n.min(out.len());
            if let Some(sent) = conn.out.advance_keep(o) {
                cx.ctx.heads.give(sent);
            }
            let b = n - o;
            up.inbuf.consume(b);
            ex.resp_pending -= b;
            ex.bytes += n as u64;
            *budget = budget.saturating_sub(n);
            if up.inbuf.is_empty() {
                up.inbuf.release_if_empty(&mut cx.ctx.bufs);
            }
            true
        }
        Io::Blocked => false,
        Io::Eof | Io::Failed(_) => {
            client_lost(cx);
            true
        }
    }
}

/// The client can no longer be written to: if other requests wait for this fetch, it
/// goes on without the client (its bytes are dropped); else the exchange ends.
pub fn client_lost(cx: &mut Scope) {
    if let Some(ex) = cx.conn.ex.as_deref_mut() {
        if cx.ctx.cache.others_wait(ex) {
            debug!("conn {}: client left; fetching on for others", cx.conn.id);
            ex.detached = true;
            return;
        }
    }
    abort(cx);
}

/// Ends the exchange once the response is written: log it, pool or close the
/// upstream, and go back to reading heads or close.
fn complete(cx: &mut Scope, idx: usize) -> bool {
    let conn = &mut *cx.conn;
    let (Some(ex), Some(up)) = (conn.ex.as_deref_mut(), cx.ups.get(idx)) else {
        return false;
    };
    if ex.resp != Resp::Body || ex.resp_pending != 0 || !conn.out.is_empty() {
        return false;
    }
    let Some(tracker) = ex.resp_body.as_ref() else {
        return false;
    };
    let by_eof = !tracker.is_done() && up.eof && tracker.eof_completes();
    if !tracker.is_done() && !by_eof {
        return false;
    }
    ex.resp = Resp::Done;
    let request_sent = ex.req_done && ex.head_sent == ex.upstream_head.len() && ex.req_pending == 0;
    let reuse = request_sent && ex.reusable && !by_eof && !up.eof && up.inbuf.is_empty();
    let close_client =
        ex.close_after || !ex.client_keep_alive || conn.eof || !request_sent || ex.detached;
    let Some(ex) = end_exchange(cx) else {
        return true;
    };
    let result = match ex.cache.as_ref() {
        _ if ex.detached => ResultCode::MissAborted,
        Some(c) => c.result,
        None => ResultCode::Miss,
    };
    log_exchange(cx, &ex, result);
    if reuse {
        release_to_pool(cx, idx);
    } else {
        drop_upstream(cx);
    }
    let detached = ex.detached;
    super::recycle(cx.ctx, ex);
    if detached {
        cx.conn.state = State::Closed;
    } else {
        after_response(cx, close_client);
    }
    true
}

/// Moves the current upstream socket into the idle pool (or closes it when the
/// pool is full).
fn release_to_pool(cx: &mut Scope, idx: usize) {
    cx.conn.up = None;
    let Some(up) = cx.ups.get_mut(idx) else {
        return;
    };
    up.owner = None;
    up.reused = true;
    up.idle_deadline = Some(cx.ctx.now + POOL_IDLE);
    up.inbuf.release_if_empty(&mut cx.ctx.bufs);
    if !cx.ctx.pool.put(up.pool_key, idx) {
        cx.conn.up = Some(idx);
        drop_upstream(cx);
    }
}

/// The upstream failed while the request went up: retry once on a fresh
/// connection when that is safe, else answer 502.
fn upstream_lost(cx: &mut Scope, why: &str) {
    let up = cx.conn.up.and_then(|idx| cx.ups.get(idx));
    let retry = match (cx.conn.ex.as_deref(), up) {
        (Some(ex), Some(up)) => may_retry(ex, up),
        _ => false,
    };
    if retry {
        retry_fresh(cx);
    } else {
        fail(cx, Problem::new(502, "upstream-failed", why));
    }
}

/// A request that met a failure before any response byte may go again on a
/// fresh connection only if the failed one was a reused (pooled) socket — an idle
/// connection the origin closed — and resending cannot change anything: once,
/// idempotent, and with no body (whose bytes are already consumed).
fn may_retry(ex: &Exchange, up: &Upstream) -> bool {
    up.reused && !ex.got_bytes && !ex.retried && !ex.request_has_body && ex.method.is_idempotent()
}

/// Sends the request again on a new connection (the pooled one was dead).
fn retry_fresh(cx: &mut Scope) {
    drop_upstream(cx);
    let Some(ex) = cx.conn.ex.as_deref_mut() else {
        return;
    };
    debug!(
        "conn {}: pooled upstream was dead; retrying once",
        cx.conn.id
    );
    ex.retried = true;
    ex.head_sent = 0;
    ex.got_bytes = false;
    ex.response_deadline_set = false;
    ex.addrs = None;
    ex.pooled_peer = None;
    let host = ex.target.host().to_owned();
    resolve(cx, &host);
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
