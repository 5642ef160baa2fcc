//! From a request head to a connected upstream: parsing, access rules, DNS,
//! connecting, and larder's own error answers.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use log::{debug, warn};
use mio::net::TcpStream;
use mio::Interest;

use super::cache::{consult, queue_collapsed_head, Cache, Consulted, Serving};
use super::collapse::Member;
use super::upstream::Upstream;
use super::{
    after_response, end_exchange, flush_out, read_into, Conn, Cx, Exchange, Io, Resp, State,
};
use crate::access_log::{Entry, ResultCode};
use crate::dns::{Answer, Lookup, Waiter};
use crate::http::body::BodyTracker;
use crate::http::cached::{push_served_head, with_request_fields, with_response_fields};
use crate::http::page::error_response;
use crate::http::push_decimal;
use crate::http::request::{parse_request_into, Request};
use crate::http::{BodyKind, Method};
use crate::server::upstream_token;

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// `Head` state: parse what has arrived, or read more.
pub fn head_step(cx: &mut Cx) -> bool {
    let limits = cx.ctx.limits;
    let conn = &mut *cx.conn;
    // Our last answer goes out before the next request is looked at, so a client
    // that pipelines without reading cannot make `out` grow.
    if !conn.out.is_empty() {
        return flush_out(conn);
    }
    let len = conn.inbuf.len();
    // A head is parsed only once its end may be there (or a limit is reached), so a
    // client that trickles a head byte by byte costs a scan of the new bytes, not a
    // parse of the whole head each time.
    if len > 0 && (head_may_be_complete(conn) || len >= limits.request_line || len >= limits.head) {
        let head = cx.ctx.heads.take();
        match parse_request_into(conn.inbuf.data(), &limits, &cx.ctx.via, head) {
            Ok(Some(req)) => {
                conn.head_scan = 0;
                begin(cx, req);
                return true;
            }
            Ok(None) => {}
            Err(e) => {
                let detail = match &conn.denied {
                    Some(why) => (403, why.to_string()),
                    None => (e.status, e.detail.to_string()),
                };
                debug!("conn {}: bad request: {}", conn.id, e);
                let result = if detail.0 == 403 {
                    ResultCode::Denied
                } else {
                    ResultCode::None
                };
                answer(cx, detail.0, &detail.1, true, None, result);
                return true;
            }
        }
    }
    if conn.eof {
        // The client closed between requests (normal) or mid-head (nothing to say).
        conn.state = State::Closed;
        return true;
    }
    if !conn.ready.r {
        return false;
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
            true
        }
        Io::Blocked => {
            conn.inbuf.release_if_empty(&mut cx.ctx.bufs);
            false
        }
        Io::Eof => {
            conn.eof = true;
            true
        }
        Io::Failed(e) => {
            debug!("conn {}: client read: {}", conn.id, e);
            conn.state = State::Closed;
            true
        }
    }
}

/// Looks for the blank line that ends a head in the bytes not searched yet.
fn head_may_be_complete(conn: &mut Conn) -> bool {
    let data = conn.inbuf.data();
    if data.ends_with(b"\r\n\r\n") {
        // The usual case: a whole head arrived in one read.
        conn.head_scan = data.len();
        return true;
    }
    let from = conn.head_scan.saturating_sub(3).min(data.len());
    let found = data
        .get(from..)
        .unwrap_or(&[])
        .windows(2)
        .any(|w| w == b"\n\n" || w == b"\n\r");
    conn.head_scan = data.len();
    found
}

/// A parsed head: apply the access rules, then find an upstream.
fn begin(cx: &mut Cx, req: Request) {
    if let Some(why) = cx.conn.denied.clone() {
        answer_req(cx, &req, 403, &why, true, ResultCode::Denied);
        return;
    }
    // A refused request's body is not read, so the connection cannot be reused.
    let has_body = req.body != BodyKind::None;
    if req.target.is_authority() {
        let port = req.target.port();
        if !cx.ctx.cfg.connect_ports.contains(port) {
            let why = format!("CONNECT to port {port} is not allowed");
            answer_req(cx, &req, 403, &why, has_body, ResultCode::Denied);
            return;
        }
    }
    if let Some(rule) = cx.ctx.blocklist.blocked_host(req.target.host()) {
        answer_req(
            cx,
            &req,
            403,
            &format!("blocked: {rule}"),
            has_body,
            ResultCode::Denied,
        );
        return;
    }
    cx.conn.inbuf.consume(req.head_len);
    let req_done = req.body == BodyKind::None;
    let ex = Exchange {
        started: cx.ctx.now,
        client_version: req.version,
        // A stopping larder answers what it has read, then closes.
        client_keep_alive: req.keep_alive && !cx.ctx.draining,
        req_body: BodyTracker::new(req.body, &cx.ctx.limits),
        request_has_body: !req_done,
        req_done,
        method: req.method,
        target: req.target,
        upstream_head: req.upstream_head,
        req_directives: req.directives,
        req_conditional: req.conditional,
        head_sent: 0,
        req_pending: 0,
        resp: Resp::Head,
        resp_body: None,
        resp_pending: 0,
        dechunk: false,
        close_after: false,
        reusable: false,
        got_bytes: false,
        retried: false,
        response_deadline_set: false,
        addrs: None,
        addr_idx: 0,
        pool_key: 0,
        pooled_peer: None,
        status: 0,
        bytes: 0,
        content_type: None,
        shut_up: false,
        shut_client: false,
        pipes: [None, None],
        moved: [0, 0],
        cache: None,
        detached: false,
    };
    // A box kept from a finished exchange, if there is one: see `recycle`.
    cx.conn.ex = Some(match cx.ctx.spare_exchanges.pop() {
        Some(mut spare) => {
            *spare = ex;
            spare
        }
        None => Box::new(ex),
    });
    route(cx, false);
}

/// Answers the current exchange from the cache, or makes it wait for another's
/// fetch, or sends it upstream. `resumed`: it waited and its flight ended.
fn route(cx: &mut Cx, resumed: bool) {
    if let Some(cache) = cx.ctx.cache.as_mut() {
        let log = cx.ctx.log.is_some();
        match consult(cache, cx.conn, cx.key, log, resumed) {
            Consulted::Forward => {}
            Consulted::Serve => {
                cx.conn.state = State::Serve;
                cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
                return;
            }
            Consulted::OnlyIfCached => {
                fail(cx, 504, "only-if-cached: the response is not in the cache");
                return;
            }
            Consulted::Wait => {
                cx.conn.state = State::Waiting;
                cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.response);
                return;
            }
        }
    }
    let Some(ex) = cx.conn.ex.as_deref_mut() else {
        return;
    };
    if ex.method != Method::Connect {
        let ups = &*cx.ups;
        let (host, port) = (ex.target.host(), ex.target.port());
        let key = cx.ctx.pool.key(host, port);
        ex.pool_key = key;
        let pooled = cx.ctx.pool.take(key, |i| {
            ups.get(i)
                .is_some_and(|u| u.port == port && *u.host == *host)
        });
        if let Some(idx) = pooled {
            attach(cx, idx);
            cx.conn.state = State::Forward;
            cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            return;
        }
    }
    let host = ex.target.host().to_owned();
    resolve(cx, &host);
}

/// `Waiting` state: the fetch this request waits for (request collapsing) has a
/// body to read as it arrives, or it has ended (the server steps us when woken).
/// Read it, or look the URL up again: a hit now, or a fetch of its own.
pub fn waiting_step(cx: &mut Cx) -> bool {
    let me = (cx.key, cx.conn.id);
    let Some(cache) = cx.ctx.cache.as_mut() else {
        cx.conn.state = State::Closed;
        return true;
    };
    match collapsed_read(cache, cx.conn, me) {
        Some(true) => {
            cx.conn.state = State::Serve;
            cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            true
        }
        Some(false) => false,
        None => {
            route(cx, true);
            true
        }
    }
}

/// Whether the connection in `Waiting` still waits on a fetch under way.
pub fn still_waiting(cx: &Cx) -> bool {
    let url = cx
        .conn
        .ex
        .as_ref()
        .and_then(|ex| ex.cache.as_ref())
        .map(|c| &*c.url);
    match (cx.ctx.cache.as_ref(), url) {
        (Some(cache), Some(url)) => cache.flights.waits(url, (cx.key, cx.conn.id)),
        _ => false,
    }
}

/// For a waiting request: `Some(true)` if it now reads the flight's stream (its head
/// is queued), `Some(false)` to go on waiting, `None` if the flight is over.
fn collapsed_read(cache: &mut Cache, conn: &mut Conn, me: Member) -> Option<bool> {
    let ex = conn.ex.as_deref_mut()?;
    let c = ex.cache.as_mut()?;
    if !cache.flights.waits(&c.url, me) {
        return None;
    }
    let Some(stream) = cache.flights.stream(&c.url) else {
        return Some(false);
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
        return Some(false);
    }
    let mut head = Vec::with_capacity(stream.head.len() + 96);
    push_served_head(&mut head, &stream.head, None, 0);
    head.extend_from_slice(b"Content-Length: ");
    push_decimal(&mut head, stream.len);
    head.extend_from_slice(b"\r\n");
    let (pos, end) = (stream.body_start, stream.body_start + stream.len);
    let status = with_response_fields(&stream.head, |status, _| status).unwrap_or(200);
    cache.flights.read(&c.url, me);
    c.serve = Some(Serving {
        obj: None,
        pos,
        end,
    });
    c.result = ResultCode::Miss;
    ex.status = status;
    queue_collapsed_head(ex, &mut conn.out, conn.eof, head);
    conn.ready.w = true;
    Some(true)
}

/// Starts (or re-starts, for a retry) the DNS step for the current exchange.
pub fn resolve(cx: &mut Cx, host: &str) {
    cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.connect);
    let waiter = Waiter {
        key: cx.key,
        id: cx.conn.id,
    };
    match cx.ctx.resolver.lookup(host, waiter, cx.ctx.now) {
        Lookup::Ready(answer) => resolved(cx, answer),
        Lookup::Pending => cx.conn.state = State::Resolving,
    }
}

/// A DNS answer for the current exchange: check the addresses, then connect.
pub fn resolved(cx: &mut Cx, answer: Answer) {
    let addrs = match answer {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => Arc::from(Vec::new()),
        Err(e) => {
            let host = host_of(cx);
            fail(cx, 502, &format!("cannot resolve {host}: {e}"));
            return;
        }
    };
    for &ip in addrs.iter() {
        if let Some(rule) = cx.ctx.blocklist.blocked_ip(ip) {
            fail_denied(cx, &format!("blocked: {rule}"));
            return;
        }
    }
    let port = cx.conn.ex.as_ref().map_or(0, |ex| ex.target.port());
    if addrs
        .iter()
        .any(|&ip| cx.ctx.locals.iter().any(|&l| is_self(l, ip, port)))
    {
        fail(cx, 508, "loop detected: the request targets this proxy");
        return;
    }
    if let Some(ex) = cx.conn.ex.as_deref_mut() {
        ex.addrs = Some(addrs);
        ex.addr_idx = 0;
    }
    connect_next(cx, None);
}

/// Whether `ip:port` is larder's own listening address.
fn is_self(local: SocketAddr, ip: IpAddr, port: u16) -> bool {
    if port != local.port() {
        return false;
    }
    let lip = local.ip();
    ip == lip || (lip.is_unspecified() && (ip.is_loopback() || ip.is_unspecified()))
}

fn host_of(cx: &Cx) -> String {
    cx.conn
        .ex
        .as_ref()
        .map_or_else(String::new, |ex| ex.target.host().to_owned())
}

/// Connects to the current address, moving on to the next ones on failure.
fn connect_next(cx: &mut Cx, mut last_err: Option<io::Error>) {
    loop {
        let (ip, port, host, key) = match cx.conn.ex.as_deref() {
            Some(ex) => match ex.addrs.as_ref().and_then(|a| a.get(ex.addr_idx)) {
                Some(&ip) => (
                    ip,
                    ex.target.port(),
                    ex.target.host().to_owned(),
                    ex.pool_key,
                ),
                None => {
                    let why = match &last_err {
                        Some(e) => format!("cannot connect to {}: {e}", ex.target.host_header()),
                        None => format!("no address for {}", ex.target.host()),
                    };
                    fail(cx, 502, &why);
                    return;
                }
            },
            None => return,
        };
        let addr = SocketAddr::new(ip, port);
        match TcpStream::connect(addr) {
            Ok(sock) => {
                let entry = cx.ups.vacant_entry();
                let idx = entry.key();
                let mut up = Upstream::new(sock, &host, port, key, addr);
                if let Err(e) = cx.ctx.registry.register(
                    &mut up.sock,
                    upstream_token(idx),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    last_err = Some(e);
                } else {
                    entry.insert(up);
                    attach(cx, idx);
                    cx.conn.state = State::Connecting;
                    cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.connect);
                    return;
                }
            }
            Err(e) => {
                if e.raw_os_error() == Some(24) {
                    warn!(
                        "conn {}: out of file descriptors connecting to {addr}",
                        cx.conn.id
                    );
                }
                last_err = Some(e);
            }
        }
        if let Some(ex) = cx.conn.ex.as_deref_mut() {
            ex.addr_idx += 1;
        }
    }
}

/// Makes upstream `idx` this connection's.
fn attach(cx: &mut Cx, idx: usize) {
    if let Some(up) = cx.ups.get_mut(idx) {
        up.owner = Some((cx.key, cx.conn.id));
        up.idle_deadline = None;
        // Readiness that arrived while pooled was consumed there; assume writable so
        // the request goes out at once (a WouldBlock corrects it).
        up.ready.w = true;
        if let Some(ex) = cx.conn.ex.as_deref_mut() {
            if ex.addrs.is_none() {
                ex.pooled_peer = Some(up.addr.ip());
            }
        }
    }
    cx.conn.up = Some(idx);
}

/// `Connecting` state: wait for the handshake to finish, then forward or tunnel.
pub fn connect_step(cx: &mut Cx) -> bool {
    let Some(idx) = cx.conn.up else {
        cx.conn.state = State::Closed;
        return true;
    };
    let Some(up) = cx.ups.get_mut(idx) else {
        cx.conn.state = State::Closed;
        return true;
    };
    if !up.ready.w && !up.ready.r {
        return false;
    }
    // mio's recipe asks take_error, then peer_addr; asking peer_addr first gives the
    // same answers and saves a system call on every successful connect.
    let outcome = match up.sock.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => match up.sock.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => Ok(false),
        },
        Err(e) => Err(e),
    };
    match outcome {
        Ok(false) => {
            // A spurious wake-up before the handshake finished.
            up.ready = Default::default();
            false
        }
        Ok(true) => {
            up.connected = true;
            let _ = up.sock.set_nodelay(true);
            let Some(ex) = cx.conn.ex.as_deref_mut() else {
                cx.conn.state = State::Closed;
                return true;
            };
            if ex.method == Method::Connect {
                ex.status = 200;
                cx.conn.out.push(ESTABLISHED);
                cx.conn.state = State::Tunnel;
                cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.tunnel);
            } else {
                cx.conn.state = State::Forward;
                cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            }
            true
        }
        Err(e) => {
            debug!("conn {}: connect to {} failed: {}", cx.conn.id, up.addr, e);
            drop_upstream(cx);
            if let Some(ex) = cx.conn.ex.as_deref_mut() {
                ex.addr_idx += 1;
            }
            connect_next(cx, Some(e));
            true
        }
    }
}

/// Closes the current upstream socket (not pooled).
pub fn drop_upstream(cx: &mut Cx) {
    if let Some(idx) = cx.conn.up.take() {
        if cx.ups.contains(idx) {
            let mut up = cx.ups.remove(idx);
            up.inbuf.clear(&mut cx.ctx.bufs);
        }
    }
}

/// The request failed before a response started: answer with an error page and
/// close, or just close if the client already got response bytes.
pub fn fail(cx: &mut Cx, status: u16, detail: &str) {
    fail_with(
        cx,
        status,
        detail,
        if status == 403 {
            ResultCode::Denied
        } else {
            ResultCode::Miss
        },
    );
}

fn fail_denied(cx: &mut Cx, detail: &str) {
    fail_with(cx, 403, detail, ResultCode::Denied);
}

fn fail_with(cx: &mut Cx, status: u16, detail: &str, result: ResultCode) {
    drop_upstream(cx);
    let started = cx.conn.ex.as_ref().map(|ex| ex.status != 0);
    if started == Some(true) {
        abort(cx);
        return;
    }
    if status >= 500 {
        debug!("conn {}: {} {}", cx.conn.id, status, detail);
    }
    // Keep the client connection when its request was read whole.
    let keep = cx
        .conn
        .ex
        .as_ref()
        .is_some_and(|ex| ex.req_done && ex.req_pending == 0 && ex.client_keep_alive);
    let ex = end_exchange(cx);
    answer(cx, status, detail, !keep, ex.as_deref(), result);
}

/// The exchange cannot go on and the client already has part of a response:
/// log it as aborted and close.
pub fn abort(cx: &mut Cx) {
    drop_upstream(cx);
    if let Some(ex) = end_exchange(cx) {
        let result = match ex.cache.as_ref().map(|c| c.result) {
            Some(ResultCode::Hit) | Some(ResultCode::ImsHit) => ResultCode::HitAborted,
            _ => ResultCode::MissAborted,
        };
        log_exchange(cx, &ex, result);
    }
    cx.conn.state = State::Closed;
}

/// Answers a request that was refused at its head (the exchange never started).
fn answer_req(
    cx: &mut Cx,
    req: &Request,
    status: u16,
    detail: &str,
    close: bool,
    result: ResultCode,
) {
    let close = close || !req.keep_alive;
    if !close {
        cx.conn.inbuf.consume(req.head_len);
    }
    let url = req.target.display_url();
    let page = error_response(status, detail, &cx.ctx.via, close);
    write_log(
        cx,
        req.method.as_str(),
        &url,
        status,
        page.len() as u64,
        None,
        result,
        cx.ctx.now,
    );
    queue_answer(cx, page, close);
}

/// Sends larder's own answer; `ex` is the exchange it answers, if one started.
pub fn answer(
    cx: &mut Cx,
    status: u16,
    detail: &str,
    close: bool,
    ex: Option<&Exchange>,
    result: ResultCode,
) {
    let page = error_response(status, detail, &cx.ctx.via, close);
    let (method, url, started) = match ex {
        Some(ex) => (
            ex.method.as_str().to_owned(),
            ex.target.display_url(),
            ex.started,
        ),
        None => ("-".to_owned(), "-".to_owned(), cx.ctx.now),
    };
    let peer = ex.and_then(|e| e.peer_ip());
    write_log(
        cx,
        &method,
        &url,
        status,
        page.len() as u64,
        peer,
        result,
        started,
    );
    queue_answer(cx, page, close);
}

fn queue_answer(cx: &mut Cx, page: Vec<u8>, close: bool) {
    let conn = &mut *cx.conn;
    conn.out.push(&page);
    conn.ex = None;
    // The answer is written by the Head/Closing steps; make sure they try now.
    conn.ready.w = true;
    after_response(cx, close);
}

/// Writes the access-log line for a finished exchange.
pub fn log_exchange(cx: &mut Cx, ex: &Exchange, result: ResultCode) {
    let Some(log) = cx.ctx.log.as_mut() else {
        return;
    };
    log.write(&Entry {
        time: SystemTime::now(),
        elapsed: cx.ctx.now.saturating_duration_since(ex.started),
        client: cx.conn.peer.ip(),
        result,
        status: ex.status,
        bytes: ex.bytes,
        method: ex.method.as_str(),
        url: ex.target.url(),
        peer: ex.peer_ip(),
        content_type: ex.content_type.as_deref().unwrap_or("-"),
    });
}

#[allow(clippy::too_many_arguments)]
fn write_log(
    cx: &mut Cx,
    method: &str,
    url: &str,
    status: u16,
    bytes: u64,
    peer: Option<IpAddr>,
    result: ResultCode,
    started: std::time::Instant,
) {
    let client = cx.conn.peer.ip();
    let elapsed = cx.ctx.now.saturating_duration_since(started);
    if let Some(log) = cx.ctx.log.as_mut() {
        log.write(&Entry {
            time: SystemTime::now(),
            elapsed,
            client,
            result,
            status,
            bytes,
            method,
            url,
            peer,
            content_type: "text/html",
        });
    }
}
