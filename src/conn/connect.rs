//! `Connecting` state: reaching the origin over whichever of its addresses answers
//! first (Happy Eyeballs v2, RFC 8305).
//!
//! The resolved addresses are tried in an order that interleaves the two families,
//! IPv6 first. An attempt starts when the one before it failed, or
//! [`ATTEMPT_DELAY`] after it started without an answer, while the earlier ones go
//! on: an address that never answers (a dead IPv6 route, a host that drops SYNs)
//! costs a quarter of a second, not the whole connect timeout. The first socket to
//! connect wins and the others are closed. `--timeout-connect`, from when the
//! addresses are known, bounds it all: then 504; every attempt refused: 502.
//!
//! ```text
//!  addresses ──► attempt 1 ──(fails, or 250 ms pass)──► attempt 2 ──► ... ──► none left
//!                   │                                      │
//!                   └──────── the first to connect ────────┴──► Forward / Tunnel
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};

use super::ctx::upstream_token;
use super::request::{attach, connect_timeout, drop_upstream, endpoint, fail, parent_failed};
use super::upstream::Upstream;
use super::{Exchange, Relay, Route, Scope, Socket, Splice, State};
use crate::http::page::Problem;
use crate::http::Method;
use crate::parents::head::connect_head;

/// How long an attempt has alone before the next address is tried beside it (RFC 8305
/// §5 recommends 250 ms).
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// Too many open files in this process (errno value, the same on Linux and the BSDs).
const EMFILE: i32 = 24;

/// The addresses are known: start connecting.
pub fn begin<S: Socket>(
    cx: &mut Scope<S>,
    ex: Box<Exchange>,
    addrs: Arc<[IpAddr]>,
    pool_key: u64,
) -> State {
    let now = cx.ctx.now;
    let route = Box::new(Route {
        addrs: interleaved(addrs),
        next: 0,
        pool_key,
        attempts: Vec::new(),
        next_at: now,
        give_up_at: now + cx.ctx.cfg.timeouts.connect,
        last_err: None,
    });
    advance(cx, ex, route)
}

/// The addresses in the order they are tried: the families alternate, IPv6 first, each
/// in the resolver's order (RFC 8305 §4). A list of one family is left as it is.
fn interleaved(addrs: Arc<[IpAddr]>) -> Arc<[IpAddr]> {
    let v6 = addrs.iter().filter(|ip| ip.is_ipv6()).count();
    if v6 == 0 || v6 == addrs.len() {
        return addrs;
    }
    let (six, four): (Vec<IpAddr>, Vec<IpAddr>) = addrs.iter().partition(|ip| ip.is_ipv6());
    let mut out = Vec::with_capacity(addrs.len());
    for i in 0..six.len().max(four.len()) {
        out.extend(six.get(i));
        out.extend(four.get(i));
    }
    out.into()
}

/// Starts the next attempt when none is under way or the last one had its time, fails
/// when nothing is left to try, and sets the deadline for what comes next.
fn advance<S: Socket>(cx: &mut Scope<S>, mut ex: Box<Exchange>, mut route: Box<Route>) -> State {
    if route.attempts.is_empty() || cx.ctx.now >= route.next_at {
        start_next(cx, &mut ex, &mut route);
    }
    if route.attempts.is_empty() {
        // Nothing connecting and nothing left to try.
        ex.peer = None;
        if let (_, _, Some(i)) = endpoint(&cx.ctx.parents, &ex) {
            let why = match &route.last_err {
                Some(e) => e.to_string(),
                None => "its name has no address".to_string(),
            };
            return parent_failed(cx, ex, i, 502, &why);
        }
        let (detail, message) = match &route.last_err {
            Some(e) => (
                "connect-failed",
                format!("Cannot connect to {}: {e}.", ex.target.host_header()),
            ),
            None => (
                "dns-error",
                format!("The name {} has no address.", ex.target.host()),
            ),
        };
        return fail(cx, ex, None, Problem::new(502, detail, &message));
    }
    let more = route.next < route.addrs.len();
    cx.conn.deadline = Some(if more {
        route.next_at.min(route.give_up_at)
    } else {
        route.give_up_at
    });
    State::Connecting { ex, route }
}

/// Starts connecting to the next address whose socket can be made.
fn start_next<S: Socket>(cx: &mut Scope<S>, ex: &mut Exchange, route: &mut Route) {
    let (_, port, _) = endpoint(&cx.ctx.parents, ex);
    while let Some(&ip) = route.addrs.get(route.next) {
        route.next += 1;
        let addr = SocketAddr::new(ip, port);
        match S::connect(addr) {
            Ok(sock) => {
                if let Some(name) = cx.ctx.congestion.for_upstream(ip) {
                    // A socket took the same name at start-up, so this fails only if
                    // the algorithm's module went away since: the system's is kept.
                    if let Err(e) = sock.set_congestion(name) {
                        debug!("upstream {addr}: congestion control {name}: {e}");
                    }
                }
                let entry = cx.ups.vacant_entry();
                let idx = entry.key();
                let (host, _, parent) = endpoint(&cx.ctx.parents, ex);
                let mut up = Upstream::new(sock, host, port, route.pool_key, addr);
                up.parent = parent;
                if parent.is_none() {
                    super::dest::mark(&cx.ctx.dest, &mut up);
                }
                if let Err(e) = up.sock.register(&cx.ctx.registry, upstream_token(idx)) {
                    route.last_err = Some(e);
                    continue;
                }
                entry.insert(up);
                attach(cx, ex, idx);
                route.attempts.push(idx);
                route.next_at = cx.ctx.now + ATTEMPT_DELAY;
                return;
            }
            Err(e) => {
                if e.raw_os_error() == Some(EMFILE) {
                    warn!(
                        "conn {}: out of file descriptors connecting to {addr}",
                        cx.conn.id
                    );
                }
                route.last_err = Some(e);
            }
        }
    }
}

/// `Connecting` state: look at the attempts that have news; the first connected one
/// wins; a failed one is dropped and the next address tried at once.
pub fn step<S: Socket>(
    cx: &mut Scope<S>,
    ex: Box<Exchange>,
    mut route: Box<Route>,
) -> (State, bool) {
    let mut failed = false;
    let mut i = 0;
    while let Some(&idx) = route.attempts.get(i) {
        let Some(up) = cx.ups.get_mut(idx) else {
            // Cannot happen: an attempt's socket is closed only here.
            route.attempts.remove(i);
            continue;
        };
        if !up.ready.w && !up.ready.r {
            i += 1;
            continue;
        }
        match up.sock.handshake() {
            Ok(false) => {
                // A spurious wake-up before the handshake finished.
                up.ready = Default::default();
                i += 1;
            }
            Ok(true) => {
                route.attempts.remove(i);
                return (connected(cx, ex, &route, idx), true);
            }
            Err(e) => {
                debug!("conn {}: connect to {} failed: {}", cx.conn.id, up.addr, e);
                route.attempts.remove(i);
                drop_upstream(cx, idx);
                route.last_err = Some(e);
                failed = true;
            }
        }
    }
    if failed {
        return (advance(cx, ex, route), true);
    }
    (State::Connecting { ex, route }, false)
}

/// Upstream `idx` connected: the other attempts are closed, and the request goes up
/// (or the tunnel opens).
fn connected<S: Socket>(
    cx: &mut Scope<S>,
    mut ex: Box<Exchange>,
    route: &Route,
    idx: usize,
) -> State {
    drop_attempts(cx, route);
    let mut parent = None;
    if let Some(up) = cx.ups.get_mut(idx) {
        up.connected = true;
        let _ = up.sock.set_nodelay();
        ex.peer = Some(up.addr.ip());
        parent = up.parent;
    }
    if let Some(i) = parent {
        if cx.ctx.parents.mark_up(usize::from(i)) {
            if let Some(spec) = cx.ctx.parents.get(usize::from(i)) {
                info!("conn {}: parent {spec} is reachable again", cx.conn.id);
            }
        }
    }
    if ex.method == Method::Connect {
        if let Some(spec) = parent.and_then(|i| cx.ctx.parents.get(usize::from(i))) {
            // The parent is asked for the tunnel; its 2xx opens ours
            // (`forward`, then `open_tunnel`), anything else is relayed.
            let head = cx.ctx.heads.take();
            ex.upstream_head = connect_head(head, &ex.target, spec, cx.ctx.via.field_line());
            cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
            let relay = cx.ctx.spares.relay(Relay::new(idx));
            return State::Forward { ex, relay };
        }
        open_tunnel(cx, ex, idx)
    } else {
        cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.body);
        let relay = cx.ctx.spares.relay(Relay::new(idx));
        State::Forward { ex, relay }
    }
}

/// Upstream `idx` carries the CONNECT's tunnel from now on: larder's own `200`
/// goes to the client first.
pub fn open_tunnel<S: Socket>(cx: &mut Scope<S>, mut ex: Box<Exchange>, idx: usize) -> State {
    cx.ctx.stats.tunnels += 1;
    ex.status = 200;
    cx.conn.out.push(ESTABLISHED);
    cx.conn.ready.w = true;
    cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.tunnel);
    let splice = Box::new(Splice::new(idx));
    State::Tunnel { ex, splice }
}

/// The deadline passed: time for the next attempt, or, past `--timeout-connect`, 504.
pub fn on_deadline<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>, route: Box<Route>) -> State {
    if cx.ctx.now >= route.give_up_at {
        drop_attempts(cx, &route);
        if let (_, _, Some(i)) = endpoint(&cx.ctx.parents, &ex) {
            let secs = cx.ctx.cfg.timeouts.connect.as_secs_f64();
            let why = format!("no connection within {secs} s");
            return parent_failed(cx, ex, i, 504, &why);
        }
        return connect_timeout(cx, ex, None);
    }
    advance(cx, ex, route)
}

/// Closes every socket still connecting.
pub fn drop_attempts<S: Socket>(cx: &mut Scope<S>, route: &Route) {
    for &idx in &route.attempts {
        drop_upstream(cx, idx);
    }
}

#[cfg(test)]
mod tests {
    use super::interleaved;
    use std::net::IpAddr;
    use std::sync::Arc;

    fn ips(list: &[&str]) -> Arc<[IpAddr]> {
        list.iter()
            .map(|s| s.parse().expect("address"))
            .collect::<Vec<IpAddr>>()
            .into()
    }

    #[test]
    fn families_alternate_ipv6_first() {
        let got = interleaved(ips(&["10.0.0.1", "10.0.0.2", "::1", "::2", "::3"]));
        assert_eq!(got, ips(&["::1", "10.0.0.1", "::2", "10.0.0.2", "::3"]));
        let one_family = ips(&["10.0.0.1", "10.0.0.2"]);
        assert_eq!(interleaved(Arc::clone(&one_family)), one_family);
    }
}
