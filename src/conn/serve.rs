//! `Serve` state: a response written from the cache. The head is in `out`; the body
//! goes from the memory map straight into the socket (one `writev` of head and map
//! bytes, no copy into a buffer of ours), with the object pinned so the ring cannot
//! overwrite it meanwhile. The same keep-alive and back-pressure rules as `Forward`:
//! nothing is read from the client until the response is written, and a client that
//! stops reading stops the writes (the deadline then ends it).
//!
//! A request that waited for another's fetch (`cache::policy::flights`) may read the
//! body from the fill while it is being written, up to the bytes written so far.

use super::cache::Serving;
use super::request::{self, log_exchange};
use super::Socket;
use super::{after_response, end_exchange, head_may_move, recycle, Exchange, Io, Scope, State};
use crate::access_log::ResultCode;

/// What one attempt to write did.
enum Wrote {
    /// Bytes went out.
    Some,
    /// Nothing can be written now (the client is not writable, or the flight being
    /// read has no new bytes yet: it wakes us).
    Nothing,
    /// The whole response is written.
    All,
    /// The response cannot be finished: abort the exchange.
    Failed,
}

/// Writes a cached response to the client until it is written, the client is full,
/// or `budget` bytes are spent. Returns the next state and whether to step again
/// (not into a `Head` with nothing to do: see [`super::head_may_move`]).
pub fn step<S: Socket>(
    cx: &mut Scope<S>,
    mut ex: Box<Exchange>,
    mut serving: Box<Serving>,
    budget: &mut usize,
) -> (State, bool) {
    let mut progress = false;
    loop {
        match write(cx, &mut ex, &mut serving, budget) {
            Wrote::Some if *budget > 0 => progress = true,
            Wrote::Some => return (State::Serve { ex, serving }, true),
            Wrote::Nothing => return (State::Serve { ex, serving }, progress),
            Wrote::All => {
                let next = complete(cx, ex, serving);
                let again = !matches!(next, State::Head(_)) || head_may_move(cx.conn);
                return (next, again);
            }
            Wrote::Failed => return (abort(cx, ex, serving), true),
        }
    }
}

/// The response cannot be finished (the client is gone, or stopped reading until the
/// deadline): the object is unpinned, the exchange logged as aborted, the connection
/// closed.
pub fn abort<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>, mut serving: Box<Serving>) -> State {
    cx.ctx.cache.end_serving(&mut serving);
    cx.ctx.spares.give_serving(serving);
    request::abort(cx, ex, None)
}

fn write<S: Socket>(
    cx: &mut Scope<S>,
    ex: &mut Exchange,
    s: &mut Serving,
    budget: &mut usize,
) -> Wrote {
    let conn = &mut *cx.conn;
    let cache = &mut cx.ctx.cache;
    let Some(c) = ex.cache.as_ref() else {
        // Cannot happen: `Serve` is entered only for a request the cache answers.
        return Wrote::Failed;
    };
    // Reading a body another exchange is storing: up to what it has written, until the
    // object lands (then it is pinned for us) or the flight fails (then we cannot
    // finish a response whose head is sent).
    let mut end = s.end;
    if s.obj.is_none() {
        if let Some(obj) = cache.flights.adopt(c.me) {
            s.obj = Some(obj);
        } else if let Some(written_end) = cache.flights.readable_end(&c.url, c.me) {
            end = end.min(written_end);
        } else {
            return Wrote::Failed;
        }
    }
    let want = end.saturating_sub(s.pos).min(*budget as u64);
    let body = cache.store.bytes(s.pos..s.pos + want);
    if body.len() as u64 != want {
        // The pinned range is outside the file: cannot happen for a record the store
        // returned; never send a short body under a Content-Length.
        return Wrote::Failed;
    }
    if conn.out.is_empty() && body.is_empty() {
        if s.pos < s.end {
            return Wrote::Nothing;
        }
        return Wrote::All;
    }
    if !conn.ready.w {
        return Wrote::Nothing;
    }
    match conn.send_response(body, &mut cx.ctx.joined, &mut cx.ctx.heads) {
        (Io::Done(n), b) => {
            let b = b as u64;
            s.pos += b;
            ex.bytes += n as u64;
            cache.note_served(b);
            *budget = budget.saturating_sub(n);
            conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            Wrote::Some
        }
        (Io::Blocked, _) => Wrote::Nothing,
        (Io::Eof | Io::Failed(_), _) => Wrote::Failed,
    }
}

/// The whole response is written: log it, unpin, and read the next request or close.
fn complete<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>, mut serving: Box<Serving>) -> State {
    cx.ctx.cache.end_serving(&mut serving);
    cx.ctx.spares.give_serving(serving);
    let ex = end_exchange(cx, ex);
    let result = ex.cache.as_ref().map_or(ResultCode::Hit, |c| c.result);
    log_exchange(cx, &ex, result);
    let close = ex.close_after || cx.conn.eof;
    recycle(cx.ctx, ex);
    after_response(cx, close)
}
