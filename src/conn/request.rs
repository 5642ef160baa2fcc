//! From a request head to a connected upstream: parsing, access rules, the hop (the
//! origin or a parent proxy, and the next one when a parent fails), DNS, connecting,
//! and larder's own error answers.

use super::Socket;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use log::{debug, info, warn};

use super::cache::{consult, queue_collapsed_head, stale_answer, Cache, Consulted, Serving};
use super::{
    after_response, end_exchange, flush_out, read_into, recycle, Conn, Exchange, Flushed, HeadScan,
    Io, Relay, Scope, State,
};
use crate::access_log::{Entry, Hier, ResultCode};
use crate::cache::policy::flights::Member;
use crate::dns::{Answer, Lookup, Waiter};
use crate::http::cached::{push_served_head, with_request_fields, with_response_fields};
use crate::http::page::{error_response, Problem, ASK_ADMIN};
use crate::http::proxy_header;
use crate::http::push_decimal;
use crate::http::request::{parse_request_into, Request};
use crate::http::{BodyKind, HttpError, Method};
use crate::parents::{head::aim, Hop, Parents};
use crate::stats::Denial;

/// `Head` state: parse what has arrived, or read more, until a head is parsed (the
/// next state is then the request's), nothing more can be read, or the connection
/// ends. Returns the next state and whether to step again: only when the state
/// changed. A `Head` that stays has looked until it was blocked (a read or flush
/// that would block, a partial head and nothing more to read, a credential being
/// checked), so a step now would find the same, whatever this one moved: as
/// `Forward` does (see `forward::may_move`), it waits for the next event.
pub fn head_step<S: Socket>(cx: &mut Scope<S>, mut scan: HeadScan) -> (State, bool) {
    loop {
        match head_once(cx, &mut scan) {
            Once::Moved => {}
            Once::Blocked => return (State::Head(scan), false),
            Once::Next(state) => return (state, true),
        }
    }
}

/// What one look at the client did while reading heads.
enum Once {
    /// Bytes went out or came in: look again.
    Moved,
    /// Nothing to do until the client is readable or writable again.
    Blocked,
    /// A head was answered or begun, or the connection ended.
    Next(State),
}

fn head_once<S: Socket>(cx: &mut Scope<S>, scan: &mut HeadScan) -> Once {
    let limits = cx.ctx.limits;
    if scan.verifying {
        // The head's credential is being checked: nothing more until the verdict.
        return Once::Blocked;
    }
    let conn = &mut *cx.conn;
    // Our last answer goes out before the next request is looked at, so a client
    // that pipelines without reading cannot make `out` grow.
    if !conn.out.is_empty() {
        return match flush_out(conn) {
            Flushed::Some => Once::Moved,
            Flushed::Blocked => Once::Blocked,
            Flushed::Failed => Once::Next(State::Closed),
        };
    }
    let len = conn.inbuf.len();
    if scan.proxy_header {
        // A balancer's connection: its PROXY header first, which says who the client is.
        match proxy_header::parse(conn.inbuf.data()) {
            Ok(Some(header)) => {
                conn.inbuf.consume(header.len);
                match header.source {
                    Some(client) => {
                        conn.peer = client;
                        if !super::count_client(conn, cx.ctx) {
                            debug!("conn {}: closed: over --max-conns-per-client", conn.id);
                            return Once::Next(State::Closed);
                        }
                    }
                    None => conn.balancer_check = true,
                }
                scan.proxy_header = false;
                super::judge(conn, cx.ctx);
                return Once::Moved;
            }
            Ok(None) => {}
            Err(e) => {
                debug!("conn {}: {e}", conn.id);
                let message = format!("This proxy takes connections from your address only with a PROXY protocol header ({e}).");
                let p = Problem::new(400, "bad-proxy-header", &message);
                return Once::Next(answer(cx, p, true, None, ResultCode::None));
            }
        }
    }
    // A head is parsed only once its end may be there (or a limit is reached), so a
    // client that trickles a head byte by byte costs a scan of the new bytes, not a
    // parse of the whole head each time.
    else if len > 0
        && (head_may_be_complete(conn.inbuf.data(), scan)
            || len >= limits.request_line
            || len >= limits.head)
    {
        let head = cx.ctx.heads.take();
        match parse_request_into(conn.inbuf.data(), &limits, &cx.ctx.via, head) {
            Ok(Some(req)) => return Once::Next(begin(cx, req)),
            Ok(None) => {}
            Err(e) => {
                debug!("conn {}: bad request: {}", conn.id, e);
                let next = if conn.denied.is_some() {
                    // Who may not use the proxy learns only that.
                    cx.ctx.stats.deny(Denial::Client);
                    let message = denied_message(conn);
                    let p = Problem::new(403, "denied", &message);
                    answer(cx, p, true, None, ResultCode::Denied)
                } else {
                    answer(cx, parse_problem(&e), true, None, ResultCode::None)
                };
                return Once::Next(next);
            }
        }
    }
    if conn.eof {
        // The client closed between requests (normal) or mid-head (nothing to say).
        return Once::Next(State::Closed);
    }
    if !conn.ready.r {
        return Once::Blocked;
    }
    if !conn.inbuf.has_room() {
        // A head larger than a pooled buffer: grow once, up to the head limit (the
        // parser answers 431 when it is reached).
        conn.inbuf.grow(limits.head + 1);
    }
    match read_into(
        &mut conn.sock,
        &mut conn.ready,
        conn.inbuf.space(&mut cx.ctx.bufs),
    ) {
        Io::Done(n) => {
            conn.inbuf.filled(n);
            Once::Moved
        }
        Io::Blocked => {
            conn.inbuf.release_if_empty(&mut cx.ctx.bufs);
            Once::Blocked
        }
        Io::Eof => {
            conn.eof = true;
            Once::Moved
        }
        Io::Failed(e) => {
            debug!("conn {}: client read: {}", conn.id, e);
            Once::Next(State::Closed)
        }
    }
}

/// The answer to a head the parser refused.
fn parse_problem(e: &HttpError) -> Problem<'static> {
    let detail = match e.status {
        414 => "uri-too-long",
        431 => "head-too-large",
        501 => "not-implemented",
        505 => "version-not-supported",
        508 => "loop-detected",
        _ => "bad-request",
    };
    Problem::new(e.status, detail, e.detail)
}

/// The page of a client the access rules refuse (the rule itself goes to the log).
fn denied_message<S: Socket>(conn: &Conn<S>) -> String {
    if let Some(why) = &conn.denied {
        info!("conn {}: refused: {why}", conn.id);
    }
    format!(
        "This proxy does not serve your address, {}. {ASK_ADMIN}",
        conn.peer.ip().to_canonical()
    )
}

/// Looks for the blank line that ends a head in the bytes of `data` not searched
/// yet; also true once when the request line ends, so that a line the parser refuses
/// outright (`GET http://h/` without a version, HTTP/0.9 style, after which a client
/// waits for an answer) is answered at once.
fn head_may_be_complete(data: &[u8], scan: &mut HeadScan) -> bool {
    if data.ends_with(b"\r\n\r\n") {
        // The usual case: a whole head arrived in one read.
        scan.scanned = data.len();
        return true;
    }
    let from = scan.scanned.saturating_sub(3).min(data.len());
    let fresh = data.get(from..).unwrap_or(&[]);
    let found = fresh.windows(2).any(|w| w == b"\n\n" || w == b"\n\r");
    scan.scanned = data.len();
    if !scan.line_ended && fresh.contains(&b'\n') {
        scan.line_ended = true;
        return true;
    }
    found
}

/// A parsed head: apply the access rules, then answer it (larder's own pages) or
/// find an upstream.
fn begin<S: Socket>(cx: &mut Scope<S>, req: Request) -> State {
    // A refused request's body is not read, so the connection cannot be reused.
    let has_body = req.body != BodyKind::None;
    if cx.conn.denied.is_some() && !(cx.conn.balancer_check && is_health_check(&req)) {
        cx.ctx.stats.deny(Denial::Client);
        let message = denied_message(cx.conn);
        let p = Problem::new(403, "denied", &message);
        return refuse(cx, &req, p, true, ResultCode::Denied);
    }
    if let Some(next) = super::auth::gate(cx, &req) {
        return next;
    }
    if super::pages::for_larder(&req.method, &req.target, &cx.ctx.locals) {
        let keep = req.keep_alive && !has_body;
        if keep {
            cx.conn.inbuf.consume(req.head_len);
        }
        let asked = super::pages::Asked {
            method: &req.method,
            target: &req.target,
            keep,
            started: cx.ctx.now,
        };
        return super::pages::answer(cx, &asked);
    }
    if req.target.is_authority() {
        let port = req.target.port();
        if !cx.ctx.cfg.connect_ports.contains(port) {
            info!(
                "conn {}: CONNECT to port {port} refused (--connect-ports)",
                cx.conn.id
            );
            let message = format!("This proxy does not open tunnels to port {port}. {ASK_ADMIN}");
            let p = Problem::new(403, "port-not-allowed", &message);
            cx.ctx.stats.deny(Denial::ConnectPort);
            return refuse(cx, &req, p, has_body, ResultCode::Denied);
        }
    } else if let Some(next) = super::dest::http_port(cx, &req, has_body) {
        return next;
    }
    if let Some(rule) = cx.ctx.blocklist.blocked_host(req.target.host()) {
        info!("conn {}: {} refused: {rule}", cx.conn.id, req.target.url());
        cx.ctx.stats.blocked += 1;
        cx.ctx.stats.deny(Denial::Blocked);
        let message = format!(
            "The site {} is blocked by this proxy. {ASK_ADMIN}",
            req.target.host()
        );
        let p = Problem::new(403, "blocked", &message);
        return refuse(cx, &req, p, has_body, ResultCode::Denied);
    }
    if let Some(next) = super::dest::literal(cx, &req, has_body) {
        return next;
    }
    cx.conn.inbuf.consume(req.head_len);
    // A stopping larder answers what it has read, then closes.
    let keep_alive = req.keep_alive && !cx.ctx.draining;
    let (now, limits) = (cx.ctx.now, &cx.ctx.limits);
    // A box kept from a finished exchange, if there is one (see `recycle`), is
    // filled in place.
    let ex = match cx.ctx.spares.kept_exchange() {
        Some(mut kept) => {
            kept.renew(req, now, keep_alive, limits);
            kept
        }
        None => Box::new(Exchange::new(req, now, keep_alive, limits)),
    };
    route(cx, ex, false)
}

/// Answers the exchange from the cache, or makes it wait for another's fetch, or
/// sends it upstream. `resumed`: it waited and its flight ended.
pub(super) fn route<S: Socket>(cx: &mut Scope<S>, mut ex: Box<Exchange>, resumed: bool) -> State {
    let log = cx.ctx.log.is_some();
    /// What a request larder may not fetch for hears when the cache cannot answer it.
    const OFFLINE: &str = "This proxy is offline: it answers from its cache only, and this request cannot be answered from it.";
    let offline = cx.ctx.cache.offline;
    let behind = !cx.ctx.draining;
    match consult(
        &mut cx.ctx.cache,
        cx.conn,
        &mut ex,
        cx.key,
        log,
        resumed,
        behind,
    ) {
        Consulted::Forward | Consulted::OnlyIfCached if offline => {
            return fail(cx, ex, None, Problem::new(504, "offline", OFFLINE));
        }
        Consulted::Forward => {}
        Consulted::Serve(serving) => {
            cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            return State::Serve {
                ex,
                serving: cx.ctx.spares.serving(serving),
            };
        }
        Consulted::ServeStale { serving, refresh } => {
            if let Some(key) = refresh {
                debug!(
                    "conn {}: {} served stale; revalidating it in the background",
                    cx.conn.id,
                    ex.target.url()
                );
                let behind = super::background::request_for(&ex, key, cx.ctx.now);
                cx.ctx.refreshes.push(behind);
            }
            cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            return State::Serve {
                ex,
                serving: cx.ctx.spares.serving(serving),
            };
        }
        Consulted::Settled => {
            debug!(
                "conn {}: {}: nothing left to revalidate",
                cx.conn.id,
                ex.target.url()
            );
            let ex = end_exchange(cx, ex);
            recycle(cx.ctx, ex);
            return State::Closed;
        }
        Consulted::OnlyIfCached => {
            let message = "The response is not in the cache, and the request allows no other (only-if-cached).";
            return fail(cx, ex, None, Problem::new(504, "only-if-cached", message));
        }
        Consulted::Wait => {
            cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.response);
            return State::Waiting { ex };
        }
    }
    // Without parents this is `None` at the cost of one comparison.
    ex.plan = cx
        .ctx
        .parents
        .plan(ex.target.host(), ex.target.url(), cx.ctx.now);
    upstream_for(cx, ex)
}

/// Sends the exchange to the hop its plan names (the origin, without a plan): over
/// an idle pooled connection if there is one, else through DNS and a new one.
fn upstream_for<S: Socket>(cx: &mut Scope<S>, mut ex: Box<Exchange>) -> State {
    let connect = ex.method == Method::Connect;
    let (host, port, parent) = match ex.plan {
        None => (ex.target.host(), ex.target.port(), None),
        Some(plan) => {
            let hop = plan.hop();
            let spec = match hop {
                Some(Hop::Parent(i)) => cx.ctx.parents.get(i).map(|s| (i, s)),
                _ => None,
            };
            if !connect {
                // Only the head that goes to a parent names the whole URL and carries
                // that parent's credentials.
                aim(&mut ex.upstream_head, &ex.target, spec.map(|(_, s)| s));
            }
            match spec {
                Some((i, s)) => {
                    ex.hier = if plan.carp() {
                        Hier::Carp
                    } else {
                        Hier::FirstUpParent
                    };
                    (&*s.host, s.port, Some(i as u8))
                }
                None if hop == Some(Hop::Direct) => {
                    ex.hier = Hier::Direct;
                    (ex.target.host(), ex.target.port(), None)
                }
                None => {
                    let message = "No parent proxy is available for this request.";
                    return fail(cx, ex, None, Problem::new(502, "no-parent", message));
                }
            }
        }
    };
    let mut pool_key = 0;
    if !connect {
        let (ups, conn, dest) = (&*cx.ups, &*cx.conn, &cx.ctx.dest);
        // A kept connection was made for whoever asked first: a client elsewhere
        // takes it only if it may reach its address too. Where the client may go is
        // asked only of such a connection: most are open to all.
        let may_take = |u: &super::upstream::Upstream<S>| {
            !u.closed_to_others || parent.is_some() || super::dest::goes_anywhere(conn, dest)
        };
        pool_key = cx.ctx.pool.key(host, port);
        let pooled = cx.ctx.pool.take(pool_key, |i| {
            ups.get(i).is_some_and(|u| {
                u.port == port && *u.host == *host && u.parent == parent && may_take(u)
            })
        });
        if let Some(idx) = pooled {
            attach(cx, &mut ex, idx);
            cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            return State::Forward {
                ex,
                relay: cx.ctx.spares.relay(Relay::new(idx)),
            };
        }
    }
    resolve(cx, ex, pool_key)
}

/// Where the exchange's current hop is: (host, port, parent number), the origin's
/// host and port when it goes direct.
pub(super) fn endpoint<'a>(parents: &'a Parents, ex: &'a Exchange) -> (&'a str, u16, Option<u8>) {
    if let Some(Hop::Parent(i)) = ex.plan.and_then(|p| p.hop()) {
        if let Some(spec) = parents.get(i) {
            return (&spec.host, spec.port, Some(i as u8));
        }
    }
    (ex.target.host(), ex.target.port(), None)
}

/// Parent `i` failed before the request went to it (no address, refused, no
/// connection in time, or it closed the connection without answering): it is left
/// out for `--parent-retry` (a warning when it was up), and the request goes to the
/// next hop of its plan, or is answered `status` when none is left.
pub(super) fn parent_failed<S: Socket>(
    cx: &mut Scope<S>,
    mut ex: Box<Exchange>,
    i: u8,
    status: u16,
    why: &str,
) -> State {
    parent_down(cx, i, why);
    ex.peer = None;
    if let Some(plan) = ex.plan.as_mut() {
        plan.advance();
    }
    if ex.plan.and_then(|p| p.hop()).is_some() {
        return upstream_for(cx, ex);
    }
    let name = cx
        .ctx
        .parents
        .get(usize::from(i))
        .map_or(String::new(), |s| s.to_string());
    let message = format!("No parent proxy could be reached (the last, {name}: {why}).");
    let detail = if status == 504 {
        "parent-timeout"
    } else {
        "parent-unreachable"
    };
    fail(cx, ex, None, Problem::new(status, detail, &message))
}

/// Marks parent `i` down, with a warning if it was up (so once per `--parent-retry`
/// at most). The parent is named by `host:port` only.
pub(super) fn parent_down<S: Socket>(cx: &mut Scope<S>, i: u8, why: &str) {
    let i = usize::from(i);
    if cx.ctx.parents.mark_down(i, cx.ctx.now) {
        if let Some(spec) = cx.ctx.parents.get(i) {
            warn!(
                "conn {}: parent {spec} is down ({why}); left out for {} s",
                cx.conn.id,
                cx.ctx.parents.retry().as_secs_f64()
            );
        }
    }
}

/// `Waiting` state: the fetch this request waits for (request collapsing) has a
/// body to read as it arrives, or it has ended (the server steps us when woken).
/// Read it, or look the URL up again: a hit now, or a fetch of its own.
pub fn waiting_step<S: Socket>(cx: &mut Scope<S>, mut ex: Box<Exchange>) -> (State, bool) {
    let me = (cx.key, cx.conn.id);
    match collapsed_read(&mut cx.ctx.cache, cx.conn, &mut ex, me) {
        Some(Some(serving)) => {
            cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            (
                State::Serve {
                    ex,
                    serving: cx.ctx.spares.serving(serving),
                },
                true,
            )
        }
        Some(None) => (State::Waiting { ex }, false),
        None => (route(cx, ex, true), true),
    }
}

/// For a waiting request: `Some(Some(_))` if it now reads the flight's stream (its
/// head is queued; the body is read from the fill as it is written), `Some(None)` to go
/// on waiting, `None` if the flight is over.
fn collapsed_read<S: Socket>(
    cache: &mut Cache,
    conn: &mut Conn<S>,
    ex: &mut Exchange,
    me: Member,
) -> Option<Option<Serving>> {
    let c = ex.cache.as_mut()?;
    if !cache.flights.waits(&c.url, me) {
        return None;
    }
    let Some(stream) = cache.flights.stream(&c.url) else {
        return Some(None);
    };
    // Only a plain GET is answered from the stream; a Range or a conditional waits for
    // the object, whose answer can then be planned properly.
    let plain = with_request_fields(&ex.upstream_head, |req| {
        !req.iter().any(|h| {
            ["range", "if-none-match", "if-modified-since"]
                .iter()
                .any(|n| h.name.eq_ignore_ascii_case(n))
        })
    });
    if plain != Some(true) {
        return Some(None);
    }
    let mut head = Vec::with_capacity(stream.head.len() + 96);
    push_served_head(&mut head, &stream.head, None, 0, &cache.via);
    head.extend_from_slice(b"Content-Length: ");
    push_decimal(&mut head, stream.len);
    head.extend_from_slice(b"\r\n");
    let (pos, end) = (stream.body_start, stream.body_start + stream.len);
    let status = with_response_fields(&stream.head, |status, _| status).unwrap_or(200);
    cache.flights.read(&c.url, me);
    c.result = ResultCode::Miss;
    ex.status = status;
    queue_collapsed_head(ex, &mut conn.out, conn.eof, head);
    conn.ready.w = true;
    Some(Some(Serving {
        obj: None,
        pos,
        end,
    }))
}

/// Starts (or re-starts, for a retry) the DNS step for the exchange.
pub fn resolve<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>, pool_key: u64) -> State {
    cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.connect);
    let waiter = Waiter {
        key: cx.key,
        id: cx.conn.id,
    };
    let (host, _, _) = endpoint(&cx.ctx.parents, &ex);
    match cx.ctx.resolver.lookup(host, waiter, cx.ctx.now) {
        Lookup::Ready(answer) => resolved(cx, ex, pool_key, answer),
        Lookup::Pending => State::Resolving { ex, pool_key },
    }
}

/// A DNS answer for the exchange: check the addresses, then connect.
pub fn resolved<S: Socket>(
    cx: &mut Scope<S>,
    ex: Box<Exchange>,
    pool_key: u64,
    answer: Answer,
) -> State {
    let (_, hop_port, parent) = endpoint(&cx.ctx.parents, &ex);
    if let Some(i) = parent {
        let addrs = match answer {
            Ok(a) => a,
            Err(e) => return parent_failed(cx, ex, i, 502, &format!("its name: {e}")),
        };
        // The origin's address is the parent's business; larder only makes sure the
        // parent is not itself.
        if addrs.iter().any(|&ip| {
            cx.ctx
                .locals
                .iter()
                .any(|&l| super::pages::is_self(l, ip, hop_port))
        }) {
            let message = "The parent proxy is this proxy itself.";
            return fail(cx, ex, None, Problem::new(508, "loop-detected", message));
        }
        return super::connect::begin(cx, ex, addrs, pool_key);
    }
    let addrs = match answer {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => Arc::from(Vec::new()),
        Err(e) => {
            cx.ctx.stats.dns_failures += 1;
            let message = format!("The name {} could not be resolved: {e}.", ex.target.host());
            return fail(cx, ex, None, Problem::new(502, "dns-error", &message));
        }
    };
    for &ip in addrs.iter() {
        if let Some(rule) = cx.ctx.blocklist.blocked_ip(ip) {
            info!("conn {}: {} refused: {rule}", cx.conn.id, ex.target.host());
            cx.ctx.stats.blocked += 1;
            cx.ctx.stats.deny(Denial::Blocked);
            let message = format!(
                "The site {} is blocked by this proxy. {ASK_ADMIN}",
                ex.target.host()
            );
            let p = Problem::new(403, "blocked", &message);
            return fail_with(cx, ex, None, p, ResultCode::Denied);
        }
    }
    let port = ex.target.port();
    if addrs.iter().any(|&ip| {
        cx.ctx
            .locals
            .iter()
            .any(|&l| super::pages::is_self(l, ip, port))
    }) {
        if ex.method == Method::Connect {
            let message = "A tunnel to this proxy itself would loop.";
            return fail(cx, ex, None, Problem::new(508, "loop-detected", message));
        }
        return super::pages::answer_exchange(cx, ex);
    }
    match super::dest::resolved(cx, ex, addrs) {
        Ok((ex, addrs)) => super::connect::begin(cx, ex, addrs, pool_key),
        Err(refused) => refused,
    }
}

/// Makes upstream `idx` this connection's, for the exchange `ex`.
pub(super) fn attach<S: Socket>(cx: &mut Scope<S>, ex: &mut Exchange, idx: usize) {
    if let Some(up) = cx.ups.get_mut(idx) {
        up.owner = Some((cx.key, cx.conn.id));
        up.idle_deadline = None;
        // Readiness that arrived while pooled was consumed there; assume writable so
        // the request goes out at once (a WouldBlock corrects it).
        up.ready.w = true;
        ex.peer = Some(up.addr.ip());
        if up.keep_private {
            if let Some(c) = ex.cache.as_mut() {
                c.forgo_storing();
            }
        }
    }
}

/// `Resolving` or `Connecting` took longer than `--timeout-connect`: 504.
pub fn connect_timeout<S: Socket>(
    cx: &mut Scope<S>,
    ex: Box<Exchange>,
    up: Option<usize>,
) -> State {
    let secs = cx.ctx.cfg.timeouts.connect.as_secs_f64();
    if let (_, _, Some(i)) = endpoint(&cx.ctx.parents, &ex) {
        if let Some(idx) = up {
            drop_upstream(cx, idx);
        }
        // A lookup of this parent's name still under way must not answer for the
        // next hop's.
        cx.ctx.resolver.cancel(Waiter {
            key: cx.key,
            id: cx.conn.id,
        });
        let why = format!("no connection within {secs} s");
        return parent_failed(cx, ex, i, 504, &why);
    }
    let message = format!("No connection to the server within {secs} s.");
    fail(cx, ex, up, Problem::new(504, "connect-timeout", &message))
}

/// Closes upstream socket `idx` (not pooled).
pub fn drop_upstream<S: Socket>(cx: &mut Scope<S>, idx: usize) {
    if cx.ups.contains(idx) {
        let mut up = cx.ups.remove(idx);
        up.inbuf.clear(&mut cx.ctx.bufs);
    }
}

/// The request failed before a response started: close its upstream `up` if any, and
/// answer with an error page, or just close if the client already got response bytes.
pub fn fail<S: Socket>(
    cx: &mut Scope<S>,
    ex: Box<Exchange>,
    up: Option<usize>,
    p: Problem,
) -> State {
    let result = if p.status == 403 {
        ResultCode::Denied
    } else {
        ResultCode::Miss
    };
    fail_with(cx, ex, up, p, result)
}

pub(super) fn fail_with<S: Socket>(
    cx: &mut Scope<S>,
    mut ex: Box<Exchange>,
    up: Option<usize>,
    p: Problem,
    result: ResultCode,
) -> State {
    if let Some(idx) = up {
        drop_upstream(cx, idx);
    }
    if ex.status != 0 {
        return abort(cx, ex, None);
    }
    if p.status >= 500 {
        // A stale entry whose revalidation this was may answer instead.
        let conn = &mut *cx.conn;
        if let Some(serving) = stale_answer(&mut cx.ctx.cache, &mut ex, &mut conn.out, conn.eof) {
            debug!(
                "conn {}: {} {}; serving the stale entry",
                conn.id, p.status, p.message
            );
            conn.ready.w = true;
            conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            let serving = cx.ctx.spares.serving(serving);
            return State::Serve { ex, serving };
        }
        debug!("conn {}: {} {}", cx.conn.id, p.status, p.message);
    }
    // Keep the client connection when its request was read whole. Never after a
    // CONNECT: what the client sent behind it was meant for the tunnel.
    let keep =
        ex.req_done && ex.req_pending == 0 && ex.client_keep_alive && ex.method != Method::Connect;
    let ex = end_exchange(cx, ex);
    let next = answer(cx, p, !keep, Some(&ex), result);
    recycle(cx.ctx, ex);
    next
}

/// The exchange cannot go on and the client may already have part of a response:
/// close its upstream `up` if any, log it as aborted, and close.
pub fn abort<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>, up: Option<usize>) -> State {
    if let Some(idx) = up {
        drop_upstream(cx, idx);
    }
    let ex = end_exchange(cx, ex);
    let result = match ex.cache.as_ref().map(|c| c.result) {
        Some(ResultCode::Hit) | Some(ResultCode::ImsHit) => ResultCode::HitAborted,
        _ => ResultCode::MissAborted,
    };
    log_exchange(cx, &ex, result);
    recycle(cx.ctx, ex);
    State::Closed
}

/// A balancer's health check: `GET /health` (or HEAD) in origin form.
fn is_health_check(req: &Request) -> bool {
    req.target.is_origin_form()
        && matches!(req.method, Method::Get | Method::Head)
        && req.target.path_and_query().split('?').next() == Some("/health")
}

/// Answers a request that was refused at its head (the exchange never started).
/// A refused CONNECT always closes: bytes behind it were meant for the tunnel.
pub(super) fn refuse<S: Socket>(
    cx: &mut Scope<S>,
    req: &Request,
    p: Problem,
    close: bool,
    result: ResultCode,
) -> State {
    refuse_naming(cx, req, p, close, result, None)
}

/// [`refuse`], with the refused destination address for the access log's peer field
/// (`HIER_NONE/ADDR`).
pub(super) fn refuse_naming<S: Socket>(
    cx: &mut Scope<S>,
    req: &Request,
    p: Problem,
    close: bool,
    result: ResultCode,
    refused: Option<IpAddr>,
) -> State {
    let close = close || !req.keep_alive || req.method == Method::Connect || cx.ctx.draining;
    if !close {
        cx.conn.inbuf.consume(req.head_len);
    }
    let page = error_response(&p, &cx.ctx.via, close, None);
    let line = Line {
        method: req.method.as_str(),
        url: req.target.url(),
        host: req.target.host(),
        status: p.status,
        bytes: page.len() as u64,
        peer: refused,
        hier: Hier::None,
        result,
        started: cx.ctx.now,
        content_type: "text/html",
    };
    record(cx, &line);
    queue_answer(cx, page, close)
}

/// Sends larder's own error answer; `ex` is the exchange it answers, if one started
/// (its `Cache-Status` then says why it went forward).
pub fn answer<S: Socket>(
    cx: &mut Scope<S>,
    p: Problem,
    close: bool,
    ex: Option<&Exchange>,
    result: ResultCode,
) -> State {
    let fwd = ex.and_then(|ex| ex.cache.as_ref()).map(|c| c.fwd());
    let page = error_response(&p, &cx.ctx.via, close, fwd);
    let line = Line {
        method: ex.map_or("-", |ex| ex.method.as_str()),
        url: ex.map_or("-", |ex| ex.target.url()),
        host: ex.map_or("", |ex| ex.target.host()),
        status: p.status,
        bytes: page.len() as u64,
        peer: ex.and_then(|ex| ex.peer),
        hier: ex.map_or(Hier::Direct, |ex| ex.hier),
        result,
        started: ex.map_or(cx.ctx.now, |ex| ex.started),
        content_type: "text/html",
    };
    record(cx, &line);
    queue_answer(cx, page, close)
}

/// Queues a complete response larder made itself: the connection reads the next
/// request, or closes (`close`) once it is written.
pub fn queue_answer<S: Socket>(cx: &mut Scope<S>, page: Vec<u8>, close: bool) -> State {
    cx.conn.out.push(&page);
    // The answer is written by the Head/Closing steps; make sure they try now.
    cx.conn.ready.w = true;
    after_response(cx, close)
}

/// Counts and logs a finished exchange. Every exchange ends here: without an access
/// log, only the figures are kept, and the line is never put together.
pub fn log_exchange<S: Socket>(cx: &mut Scope<S>, ex: &Exchange, result: ResultCode) {
    count(cx, result, ex.bytes, ex.target.host());
    if cx.ctx.log.is_some() {
        log_line(cx, ex, result);
    }
}

/// The access-log line of a finished exchange (out of line: most larders keep none).
#[inline(never)]
fn log_line<S: Socket>(cx: &mut Scope<S>, ex: &Exchange, result: ResultCode) {
    let line = Line {
        method: ex.method.as_str(),
        url: ex.target.url(),
        host: ex.target.host(),
        status: ex.status,
        bytes: ex.bytes,
        peer: ex.peer,
        hier: ex.hier,
        result,
        started: ex.started,
        content_type: ex.content_type.as_deref().unwrap_or("-"),
    };
    write_line(cx, &line);
}

/// What is counted and logged of one finished request.
pub struct Line<'a> {
    /// "-" when no request could be read.
    pub method: &'a str,
    /// The request's URL; "-" when no request could be read.
    pub url: &'a str,
    /// The target's host, for the figures by host ("" when there is none).
    pub host: &'a str,
    /// 0 when nothing was sent.
    pub status: u16,
    /// Bytes sent to the client, heads included.
    pub bytes: u64,
    /// The upstream address; `None` when no upstream was contacted.
    pub peer: Option<IpAddr>,
    /// How the upstream was reached.
    pub hier: Hier,
    /// Squid result code.
    pub result: ResultCode,
    /// When the request started: the logged time runs from here.
    pub started: std::time::Instant,
    /// The response's Content-Type; "-" when there is none.
    pub content_type: &'a str,
}

/// Counts a finished request ([`crate::stats::Stats`]) and writes its access-log line.
/// Every request larder answered, or failed to answer, goes through here once.
pub fn record<S: Socket>(cx: &mut Scope<S>, line: &Line) {
    count(cx, line.result, line.bytes, line.host);
    write_line(cx, line);
}

/// The figures part of [`record`]: a finished request's result, bytes and host.
#[inline]
fn count<S: Socket>(cx: &mut Scope<S>, result: ResultCode, bytes: u64, host: &str) {
    let stats = &mut cx.ctx.stats;
    // larder's own revalidations are not client requests: their bytes went nowhere.
    if cx.conn.background {
        stats.background_revalidations += 1;
    } else {
        stats.record(cx.ctx.unix, result, bytes, host);
    }
}

/// The access-log part of [`record`]: the line, if a log is open.
fn write_line<S: Socket>(cx: &mut Scope<S>, line: &Line) {
    let ctx = &mut *cx.ctx;
    let background = cx.conn.background;
    let Some(log) = ctx.log.as_mut() else {
        return;
    };
    log.write(&Entry {
        time: SystemTime::now(),
        elapsed: ctx.now.saturating_duration_since(line.started),
        client: (!background).then(|| cx.conn.peer.ip()),
        result: line.result,
        status: line.status,
        bytes: line.bytes,
        method: line.method,
        url: line.url,
        peer: line.peer,
        hier: line.hier,
        content_type: line.content_type,
        user: cx.conn.user.as_deref(),
    });
}
