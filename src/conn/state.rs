//! What a connection holds in each phase of its life: [`State`], whose variants own
//! the data only that phase uses, and [`Exchange`], the request in flight.
//!
//! A state is taken out of the connection by value for each step, and the step
//! returns the next one (`State::Closed` meanwhile, so nothing sees a half-made
//! state). A variant therefore cannot lack what it needs: a connection that is
//! `Forward` has its exchange and its upstream socket by construction, and one that
//! reads heads has neither.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::cache::{CacheEx, Serving};
use crate::access_log::Hier;
use crate::http::body::BodyTracker;
use crate::http::request::Request;
use crate::http::target::Target;
use crate::http::{BodyKind, Limits, Method, Version};
use crate::parents::Plan;
use crate::sys::Pipe;

/// Where a client connection is in its lifecycle (see the diagram in `conn/mod.rs`).
#[derive(Debug)]
pub enum State {
    /// Reading a request head: the first one, or the next on a kept connection.
    Head(HeadScan),
    /// Waiting for the DNS lookup of the target's host.
    Resolving {
        /// The request.
        ex: Box<Exchange>,
        /// [`super::upstream::Pool::key`] of the target's origin (0 for CONNECT),
        /// for the socket that will be made.
        pool_key: u64,
    },
    /// Connecting to the origin: the resolved addresses are tried in turn, a new one
    /// every [`super::connect::ATTEMPT_DELAY`] while the others are still trying
    /// (Happy Eyeballs); the first to connect wins.
    Connecting {
        /// The request.
        ex: Box<Exchange>,
        /// The addresses, which are being tried, and until when.
        route: Box<Route>,
    },
    /// Sending the request upstream and relaying the response to the client.
    Forward {
        /// The request.
        ex: Box<Exchange>,
        /// The two halves of the relay.
        relay: Box<Relay>,
    },
    /// Writing a response from the cache.
    Serve {
        /// The request.
        ex: Box<Exchange>,
        /// The object, pinned (or the fill being read), and the body bytes left;
        /// given back to the cache when the state ends.
        serving: Box<Serving>,
    },
    /// Waiting for another connection's fetch of the same URL (request collapsing).
    Waiting {
        /// The request.
        ex: Box<Exchange>,
    },
    /// Relaying a CONNECT tunnel's bytes both ways.
    Tunnel {
        /// The CONNECT request.
        ex: Box<Exchange>,
        /// The two directions.
        splice: Box<Splice>,
    },
    /// Flushing the last answer, half-closing, then draining the client before closing.
    Closing(Linger),
    /// Finished; the server closes it after the current batch.
    Closed,
}

impl State {
    /// The state's name, for log lines.
    pub fn name(&self) -> &'static str {
        match self {
            State::Head(_) => "Head",
            State::Resolving { .. } => "Resolving",
            State::Connecting { .. } => "Connecting",
            State::Forward { .. } => "Forward",
            State::Serve { .. } => "Serve",
            State::Waiting { .. } => "Waiting",
            State::Tunnel { .. } => "Tunnel",
            State::Closing(_) => "Closing",
            State::Closed => "Closed",
        }
    }

    /// The upstream sockets the state holds: those connecting, or the one in use.
    pub fn upstreams(&self) -> &[usize] {
        match self {
            State::Connecting { route, .. } => &route.attempts,
            State::Forward { relay, .. } => std::slice::from_ref(&relay.up),
            State::Tunnel { splice, .. } => std::slice::from_ref(&splice.up),
            _ => &[],
        }
    }

    /// The request in flight, if any.
    pub fn exchange(&self) -> Option<&Exchange> {
        match self {
            State::Resolving { ex, .. }
            | State::Connecting { ex, .. }
            | State::Forward { ex, .. }
            | State::Serve { ex, .. }
            | State::Waiting { ex }
            | State::Tunnel { ex, .. } => Some(ex),
            State::Head(_) | State::Closing(_) | State::Closed => None,
        }
    }
}

/// `Head`: how far the bytes in `inbuf` were searched for the end of a head.
#[derive(Debug, Default, Clone)]
pub struct HeadScan {
    /// How far `inbuf` was searched for the end of a head.
    pub scanned: usize,
    /// The request line of the head being read has ended, and the head was parsed
    /// once then (a line without a version is refused at once, not at a timeout).
    pub line_ended: bool,
    /// The connection is from a `--proxy-protocol` balancer and its PROXY header has
    /// not been read yet: nothing else is parsed before it.
    pub proxy_header: bool,
    /// The head was parsed and its credential is being checked (`--auth-file`):
    /// nothing is read or parsed until the verdict, then the head is parsed again.
    pub verifying: bool,
}

/// `Connecting`: where the target's host resolved to, and the connections racing to
/// reach it.
#[derive(Debug)]
pub struct Route {
    /// The resolved addresses of the target's host, in the order they are tried
    /// (families interleaved, IPv6 first: RFC 8305 §4).
    pub addrs: Arc<[IpAddr]>,
    /// Index in `addrs` of the next address to try.
    pub next: usize,
    /// [`super::upstream::Pool::key`] of the target's origin (0 for CONNECT).
    pub pool_key: u64,
    /// The upstream sockets still connecting, oldest first.
    pub attempts: Vec<usize>,
    /// When the next address is tried even if no attempt has failed yet.
    pub next_at: Instant,
    /// When connecting gives up (`--timeout-connect` after the lookup began).
    pub give_up_at: Instant,
    /// Why the last attempt that failed did, for the 502 if all fail.
    pub last_err: Option<std::io::Error>,
}

/// `Forward`: the upstream socket and how far each half of the relay has come. The
/// request body's progress is the exchange's ([`Exchange::req_body`]), since it
/// outlives a retry on a new socket; everything here starts again with the socket.
#[derive(Debug)]
pub struct Relay {
    /// The upstream socket.
    pub up: usize,
    /// Bytes of [`Exchange::upstream_head`] written upstream so far.
    pub head_sent: usize,
    /// How far the response has come.
    pub resp: Resp,
    /// Validated response body bytes at the front of the upstream's `inbuf`.
    pub resp_pending: usize,
    /// HTTP/1.0 client and a chunked response: send the data only, then close.
    pub dechunk: bool,
    /// The upstream socket may be pooled after this response.
    pub reusable: bool,
    /// Something arrived from upstream for this request.
    pub got_bytes: bool,
    /// The `--timeout-response` deadline was set, when the whole request had been sent.
    pub response_deadline_set: bool,
    /// The client left while others wait for this response (or while the rest of a
    /// whole object fetched for its Range is worth storing): it is still fetched and
    /// stored, and its bytes for the client are dropped.
    pub detached: bool,
    /// The client gets only part of the body (the whole object is fetched for its
    /// Range): the bytes before and after it are dropped as they are validated.
    pub part: Option<Part>,
}

impl Relay {
    /// A relay over upstream socket `up`, nothing sent yet.
    pub fn new(up: usize) -> Relay {
        Relay {
            up,
            head_sent: 0,
            resp: Resp::Head,
            resp_pending: 0,
            dechunk: false,
            reusable: false,
            got_bytes: false,
            response_deadline_set: false,
            detached: false,
            part: None,
        }
    }

    /// The whole request (head and body) has gone upstream.
    pub fn request_sent(&self, ex: &Exchange) -> bool {
        ex.req_done && self.head_sent == ex.upstream_head.len() && ex.req_pending == 0
    }
}

/// The part of a relayed body the client gets: what is left of it to send, and of
/// the bytes before it to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Body bytes still to drop before the client's first one.
    pub before: u64,
    /// Body bytes still to send the client; after them, every byte is dropped.
    pub left: u64,
}

impl Part {
    /// The part `body` (offsets in the body) of a body not yet begun.
    pub fn new(body: std::ops::Range<u64>) -> Part {
        Part {
            before: body.start,
            left: body.end.saturating_sub(body.start),
        }
    }

    /// Of `pending` validated body bytes at the front of the buffer, how many are
    /// outside the client's part and go now (counted off `before`); the bytes to
    /// send then are at most [`Part::left`].
    pub fn drop_outside(&mut self, pending: usize) -> usize {
        if self.before > 0 {
            let n = self.before.min(pending as u64);
            self.before -= n;
            // n <= pending, a usize.
            return n as usize;
        }
        if self.left == 0 {
            return pending;
        }
        0
    }
}

/// Where the response to a forwarded request is.
#[derive(Debug)]
pub enum Resp {
    /// No final response head yet.
    Head,
    /// Relaying the body; the tracker finds its end.
    Body(BodyTracker),
    /// All of it written to the client.
    Done,
}

/// `Tunnel`: the upstream socket and the two directions' progress.
#[derive(Debug)]
pub struct Splice {
    /// The upstream socket.
    pub up: usize,
    /// The write side of the upstream socket is shut (client → upstream is done).
    pub upstream_write_shut: bool,
    /// The client socket's write side is shut (upstream → client is done).
    pub client_write_shut: bool,
    /// The kernel pipes of the directions that switched to splicing
    /// (client → upstream, upstream → client).
    pub pipes: [Option<Pipe>; 2],
    /// Bytes each direction has moved (same order as `pipes`).
    pub moved: [u64; 2],
}

impl Splice {
    /// A tunnel over upstream socket `up`, nothing moved yet.
    pub fn new(up: usize) -> Splice {
        Splice {
            up,
            upstream_write_shut: false,
            client_write_shut: false,
            pipes: [None, None],
            moved: [0, 0],
        }
    }
}

/// `Closing`: what lingering has done.
#[derive(Debug, Default, Clone, Copy)]
pub struct Linger {
    /// Bytes discarded while lingering.
    pub drained: usize,
    /// `out` is flushed and the write side shut, or shutting it failed.
    pub shut: bool,
}

/// One request in flight: what was asked, how far its body has been read, and what
/// is counted and logged of it. What only one phase uses is in that [`State`].
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
    /// The request has a Cache-Control or Pragma field
    /// ([`crate::http::request::Request`]'s `directives`).
    pub req_directives: bool,
    /// The request has an `If-…` field (its `conditional`).
    pub req_conditional: bool,
    /// The request has a Range field (its `range`).
    pub req_range: bool,
    /// Finds the end of the request body.
    pub req_body: BodyTracker,
    /// Validated body bytes at the front of `inbuf` not yet written upstream.
    pub req_pending: usize,
    /// The request body has been read to its end (from the start if there is none).
    pub req_done: bool,
    /// The request head announced a body: the request is never retried, nor answered
    /// from the cache.
    pub request_has_body: bool,
    /// The request was already sent again after a dead pooled connection (once at most).
    pub retried: bool,
    /// The upstream address in use, or last used; `None` while none was contacted.
    pub peer: Option<IpAddr>,
    /// Status sent to the client (0: none yet).
    pub status: u16,
    /// Bytes sent to the client for this request, heads included.
    pub bytes: u64,
    /// The response's Content-Type, for the access log.
    pub content_type: Option<Box<str>>,
    /// Close the client connection after this response.
    pub close_after: bool,
    /// The cache's part: lookup result, fill, pinned objects (`None` for a request the
    /// cache has no part in, such as CONNECT).
    pub cache: Option<CacheEx>,
    /// The client closed its side while the request waited for the upstream, and
    /// was sent a `100 Continue` to tell a half-close from a hang-up (see
    /// `conn::step`).
    pub probed: bool,
    /// The hops to try when parents are configured (`None`: straight to the origin);
    /// see [`crate::parents`].
    pub plan: Option<Plan>,
    /// How the upstream was reached, for the access log.
    pub hier: Hier,
    /// A revalidation larder makes on its own behind a stale answer: the key of the
    /// entry, registered with the cache until the exchange ends (see `background.rs`).
    pub refresh_key: Option<Box<[u8]>>,
}

impl Exchange {
    /// The exchange of a parsed request, begun at `started` (`keep_alive`: the
    /// client's wish, unless larder is stopping).
    pub fn new(req: Request, started: Instant, keep_alive: bool, limits: &Limits) -> Exchange {
        let req_done = req.body == BodyKind::None;
        Exchange {
            started,
            method: req.method,
            target: req.target,
            client_version: req.version,
            client_keep_alive: keep_alive,
            upstream_head: req.upstream_head,
            req_directives: req.directives,
            req_conditional: req.conditional,
            req_range: req.range,
            req_body: BodyTracker::new(req.body, limits),
            req_pending: 0,
            req_done,
            request_has_body: !req_done,
            retried: false,
            peer: None,
            status: 0,
            bytes: 0,
            content_type: None,
            close_after: false,
            cache: None,
            probed: false,
            plan: None,
            hier: Hier::Direct,
            refresh_key: None,
        }
    }

    /// Makes this (finished) exchange [`Exchange::new`]'s for `req`, field by field:
    /// a kept box is filled where it is, rather than a new exchange (some 500 bytes)
    /// being built and then copied into it. Every field is named, so a new one cannot
    /// be left holding the last request's value.
    // Inlined into its one caller: as a call, the request would be copied to pass it.
    #[inline(always)]
    pub fn renew(&mut self, req: Request, started: Instant, keep_alive: bool, limits: &Limits) {
        let Exchange {
            started: at,
            method,
            target,
            client_version,
            client_keep_alive,
            upstream_head,
            req_directives,
            req_conditional,
            req_range,
            req_body,
            req_pending,
            req_done,
            request_has_body,
            retried,
            peer,
            status,
            bytes,
            content_type,
            close_after,
            cache,
            probed,
            plan,
            hier,
            refresh_key,
        } = self;
        let done = req.body == BodyKind::None;
        *at = started;
        *method = req.method;
        *target = req.target;
        *client_version = req.version;
        *client_keep_alive = keep_alive;
        *upstream_head = req.upstream_head;
        *req_directives = req.directives;
        *req_conditional = req.conditional;
        *req_range = req.range;
        *req_body = BodyTracker::new(req.body, limits);
        *req_pending = 0;
        *req_done = done;
        *request_has_body = !done;
        *retried = false;
        *peer = None;
        *status = 0;
        *bytes = 0;
        *content_type = None;
        *close_after = false;
        *cache = None;
        *probed = false;
        *plan = None;
        *hier = Hier::Direct;
        *refresh_key = None;
    }
}

#[cfg(test)]
mod tests {
    use super::{Exchange, Part};
    use crate::access_log::Hier;
    use crate::http::request::{parse_request, Request};
    use crate::http::{Limits, ViaName};
    use std::time::{Duration, Instant};

    fn request(text: &str) -> Request {
        let via = ViaName::new("larder-test".to_owned());
        let parsed = parse_request(text.as_bytes(), &Limits::default(), &via);
        parsed.expect("valid").expect("whole")
    }

    /// A kept exchange renewed in place is the one `new` makes, whatever the last
    /// request left in it.
    #[test]
    fn a_renewed_exchange_is_a_new_one() {
        let limits = Limits::default();
        let t0 = Instant::now();
        let requests = [
            "GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "POST http://a.test/up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\n",
            "PUT http://b.test:81/c HTTP/1.1\r\nHost: b.test:81\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HEAD http://a.test/ HTTP/1.0\r\nCache-Control: no-cache\r\nIf-None-Match: \"v\"\r\n\r\n",
            "GET http://a.test/r HTTP/1.1\r\nHost: a.test\r\nRange: bytes=0-1\r\n\r\n",
            "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
        ];
        for (i, first) in requests.iter().enumerate() {
            for (j, next) in requests.iter().enumerate() {
                let mut kept = Exchange::new(request(first), t0, i % 2 == 0, &limits);
                // What an exchange holds by its end.
                kept.req_pending = 3;
                kept.retried = true;
                kept.peer = Some([127, 0, 0, 1].into());
                kept.status = 206;
                kept.bytes = 1234;
                kept.content_type = Some("text/plain".into());
                kept.close_after = true;
                kept.probed = true;
                kept.hier = Hier::ParentHit;
                kept.refresh_key = Some(b"key".to_vec().into());
                let at = t0 + Duration::from_secs(1);
                for keep_alive in [false, true] {
                    kept.renew(request(next), at, keep_alive, &limits);
                    let fresh = Exchange::new(request(next), at, keep_alive, &limits);
                    assert_eq!(format!("{kept:?}"), format!("{fresh:?}"), "{i} then {j}");
                }
            }
        }
    }

    /// However the body arrives in pieces, the bytes sent are exactly the part's.
    #[test]
    fn a_part_sends_exactly_its_bytes_whatever_the_pieces() {
        let len = 100u64;
        for (start, end) in [(0, 100), (0, 1), (37, 38), (10, 90), (99, 100), (0, 0)] {
            for piece in [1usize, 3, 7, 64, 1000] {
                let mut part = Part::new(start..end);
                let (mut at, mut sent) = (0u64, Vec::new());
                while at < len {
                    let mut pending = piece.min((len - at) as usize);
                    // As the relay does: drop what lies outside, send up to `left`.
                    let dropped = part.drop_outside(pending);
                    at += dropped as u64;
                    pending -= dropped;
                    let send = pending.min(part.left as usize);
                    sent.extend(at..at + send as u64);
                    part.left -= send as u64;
                    at += send as u64;
                }
                assert_eq!(
                    sent,
                    (start..end).collect::<Vec<_>>(),
                    "{start}..{end} by {piece}"
                );
            }
        }
    }

    /// A state leaves its connection and comes back on every step, and changes about
    /// twice a request: it stays small (the large phases are boxed) so that costs a few
    /// word copies.
    #[test]
    fn a_state_is_four_words() {
        assert!(std::mem::size_of::<super::State>() <= 4 * std::mem::size_of::<usize>());
    }
}
