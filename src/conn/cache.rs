//! The cache as the connections use it: an adapter between a connection and the
//! cache policy ([`crate::cache::policy`], which has the lifecycle and the
//! decisions). The policy returns what to do; this module does it to the
//! connection: it queues the heads in `out`, marks the client writable, and notes
//! the status and Content-Type for the access log.

use super::{Conn, Exchange, OutBuf, Socket};
use crate::cache::policy::{self, Answer, Asking};
use crate::http::response::Response;
use crate::http::Version;

pub use crate::cache::policy::{body_complete, body_failed, Cache, CacheEx, Serving, Sink};

/// Looks the request `ex` up. [`Consulted::Serve`]: it was answered from the cache
/// (the head is queued in `out` and the connection must go to `Serve`);
/// [`Consulted::OnlyIfCached`]: it is refused (the caller answers 504); otherwise it
/// goes upstream, with `ex.cache` set for [`response_head`], or waits.
///
/// `resumed`: the request waited for another's fetch (see [`Consulted::Wait`]); it
/// is not counted for admission again and does not wait a second time.
/// `key` is the connection's slab key, to wake it when it has to wait.
pub fn consult<S: Socket>(
    cache: &mut Cache,
    conn: &mut Conn<S>,
    ex: &mut Exchange,
    key: usize,
    log: bool,
    resumed: bool,
    may_refresh_behind: bool,
) -> Consulted {
    let waiter = (key, conn.id);
    let ask = Asking {
        may_refresh_behind,
        background: ex.refresh_key.is_some(),
        method: &ex.method,
        target: &ex.target,
        upstream_head: &mut ex.upstream_head,
        request_has_body: ex.request_has_body,
        req_directives: ex.req_directives,
        req_conditional: ex.req_conditional,
        req_range: ex.req_range,
    };
    match policy::consult(cache, &mut ex.cache, ask, waiter, resumed) {
        policy::Consulted::Forward => Consulted::Forward,
        policy::Consulted::OnlyIfCached => Consulted::OnlyIfCached,
        policy::Consulted::Wait => Consulted::Wait,
        policy::Consulted::Settled => Consulted::Settled,
        policy::Consulted::ServeStale { answer, refresh } => {
            let serving = queue_answer(ex, &mut conn.out, conn.eof, answer, log);
            conn.ready.w = true;
            Consulted::ServeStale { serving, refresh }
        }
        policy::Consulted::Serve(answer) => {
            let serving = queue_answer(ex, &mut conn.out, conn.eof, answer, log);
            conn.ready.w = true;
            Consulted::Serve(serving)
        }
    }
}

/// The outcome of [`consult`].
#[derive(Debug)]
pub enum Consulted {
    /// Go upstream (`ex.cache` says how the response is to be treated).
    Forward,
    /// A head is queued and the body comes from the map: go to `Serve` with it.
    Serve(Serving),
    /// Nothing usable and the client forbade going upstream: answer 504.
    OnlyIfCached,
    /// Another request is fetching the URL to store it: wait (state `Waiting`) until
    /// its flight ends, then consult again with `resumed`.
    Wait,
    /// As `Serve`, from a stale entry (`stale-while-revalidate`); with `refresh`, the
    /// caller starts a revalidation of that key in the background.
    ServeStale {
        /// The body to serve.
        serving: Serving,
        /// The key to revalidate in the background.
        refresh: Option<Vec<u8>>,
    },
    /// A background revalidation has nothing left to do.
    Settled,
}

/// `Cache-Status` for a forwarded response (see [`policy::ForwardedStatus`]).
#[derive(Debug, Clone, Copy)]
pub struct ForwardedStatus(policy::ForwardedStatus);

impl ForwardedStatus {
    /// Queues the field line, `Cache-Status: larder; fwd=...\r\n`.
    pub fn write(&self, out: &mut OutBuf) {
        out.push(self.0.line().as_bytes());
    }
}

/// What to do with a final response head from upstream.
pub enum OnResponse {
    /// Relay it; append this Cache-Status line to the head (none when the cache had no
    /// part in the request).
    Relay(Option<ForwardedStatus>),
    /// A 304 refreshed the stale entry: the head for the client is queued and the body
    /// comes from the map.
    Serve(Serving),
    /// The whole object was fetched for the client's Range: the head for the client
    /// (206 or 416) is queued, without its blank line, as a relayed one would be; of
    /// the body, relay only bytes `body` (see [`policy::OnResponse::Part`]).
    Part {
        /// The body bytes the client gets (offsets in the body).
        body: std::ops::Range<u64>,
    },
}

/// Decides what the cache does with the final response `r` to the exchange (see
/// [`policy::response_head`]); a refreshed entry's head is queued in `out`.
///
/// `out` and `eof` are the client connection's output buffer and half-close flag.
pub fn response_head(
    cache: &mut Cache,
    ex: &mut Exchange,
    out: &mut OutBuf,
    eof: bool,
    r: &Response,
) -> OnResponse {
    let decided = policy::response_head(
        cache,
        &mut ex.cache,
        &ex.method,
        &ex.target,
        &ex.upstream_head,
        r,
    );
    match decided {
        policy::OnResponse::Relay(line) => OnResponse::Relay(line.map(ForwardedStatus)),
        policy::OnResponse::Serve(answer) => {
            // The 304 has no Content-Type; the stored head the client gets has.
            OnResponse::Serve(queue_answer(ex, out, eof, answer, true))
        }
        policy::OnResponse::Part {
            head,
            status,
            body,
            cache_status,
        } => {
            ex.status = status;
            out.push_vec(head);
            out.push(cache_status.line().as_bytes());
            OnResponse::Part { body }
        }
    }
}

/// The revalidation of the exchange's stale entry failed before the origin answered
/// (it could not be reached, timed out, or sent something that is not HTTP): if the
/// entry may answer instead (see [`policy::stale_on_error`]), its head is queued in
/// `out` and its body is returned, to serve.
pub fn stale_answer(
    cache: &mut Cache,
    ex: &mut Exchange,
    out: &mut OutBuf,
    eof: bool,
) -> Option<Serving> {
    let c = ex.cache.as_mut()?;
    let answer = policy::stale_on_error(cache, c, &ex.method, &ex.upstream_head, None)?;
    Some(queue_answer(ex, out, eof, answer, true))
}

/// Ends the exchange's use of the cache (see [`policy::release`]). Called through
/// [`super::end_exchange`].
pub fn release(cache: &mut Cache, ex: &mut Exchange) {
    policy::release(cache, &mut ex.cache);
    if let Some(key) = ex.refresh_key.take() {
        cache.refreshed(&key);
    }
}

/// Queues an answer planned from the store, noting its status (and, with `log`, its
/// Content-Type) for the access log. Returns its body, to serve.
fn queue_answer(
    ex: &mut Exchange,
    out: &mut OutBuf,
    eof: bool,
    answer: Answer,
    log: bool,
) -> Serving {
    let Answer {
        mut head,
        cache_status,
        status,
        serving,
    } = answer;
    ex.status = status;
    if log {
        ex.content_type = super::forward::content_type(&head);
    }
    cache_status.push_to(&mut head);
    queue_head(ex, out, eof, head, b"");
    serving
}

/// Writes a planned head for the client (`eof`: the client half-closed): the head,
/// Cache-Status, Connection and the blank line. The caller marks the client
/// writable, so the head goes out in the same step.
fn queue_head(ex: &mut Exchange, out: &mut OutBuf, eof: bool, head: Vec<u8>, cache_status: &[u8]) {
    let close = !ex.client_keep_alive || eof;
    ex.close_after = close;
    out.push_vec(head);
    out.push(cache_status);
    if close {
        out.push(b"Connection: close\r\n");
    } else if ex.client_version == Version::Http10 {
        out.push(b"Connection: keep-alive\r\n");
    }
    out.push(b"\r\n");
}

/// Queues the head for a request that reads another's fetch as it arrives.
pub fn queue_collapsed_head(ex: &mut Exchange, out: &mut OutBuf, eof: bool, head: Vec<u8>) {
    queue_head(
        ex,
        out,
        eof,
        head,
        b"Cache-Status: larder; fwd=miss; collapsed\r\n",
    );
}
