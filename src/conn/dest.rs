//! The destination rules at work on a request (the rules themselves, as values, are
//! `acl::dest`): plain HTTP only to `--http-ports`; for a client that is not on the
//! machine itself, no loopback, link-local, unspecified or own address, judged on the
//! IP literal or `localhost` name before the cache and the hop are chosen, and on
//! every resolved address before connecting (an address refused is never tried).
//!
//! Through a parent proxy only the literal and the name can be judged here: the
//! parent resolves the rest. The parent's own address is the operator's choice and
//! is never judged.

use std::net::IpAddr;
use std::sync::Arc;

use log::{debug, info};

use super::request::{fail_with, refuse, refuse_naming};
use super::upstream::Upstream;
use super::{Conn, Exchange, Scope, Socket, State};
use crate::access_log::{Hier, ResultCode};
use crate::acl::dest::{Destinations, Filtered, Refused};
use crate::http::page::{Problem, ASK_ADMIN};
use crate::http::request::Request;
use crate::stats::Denial;

/// The client may make larder go wherever the machine itself can: it is on the
/// machine (see `acl::dest`), or it is larder's own revalidation in the background.
pub fn goes_anywhere<S>(conn: &Conn<S>, dest: &Destinations) -> bool {
    conn.background || dest.client_on_the_machine(conn.peer.ip())
}

/// Plain HTTP to a port outside `--http-ports`: the 403 it gets (`None`: the port is
/// allowed). Every client is held to it, as Squid's `Safe_ports` holds everyone.
pub fn http_port<S: Socket>(cx: &mut Scope<S>, req: &Request, has_body: bool) -> Option<State> {
    let port = req.target.port();
    if cx.ctx.cfg.http_ports.contains(port) {
        return None;
    }
    info!(
        "conn {}: {} refused: port {port} is not in --http-ports",
        cx.conn.id,
        req.target.url()
    );
    cx.ctx.stats.deny(Denial::HttpPort);
    let message = format!("This proxy does not fetch from port {port}. {ASK_ADMIN}");
    let p = Problem::new(403, "port-not-allowed", &message);
    Some(refuse(cx, req, p, has_body, ResultCode::Denied))
}

/// The request's host, an IP literal or a `localhost` name, is a destination the
/// client may not reach: the 403 it gets (`None`: it may, or the host is another
/// name, judged once resolved).
pub fn literal<S: Socket>(cx: &mut Scope<S>, req: &Request, has_body: bool) -> Option<State> {
    if goes_anywhere(cx.conn, &cx.ctx.dest) {
        return None;
    }
    let refused = cx.ctx.dest.check_host(req.target.host()).err()?;
    let message = refused_message(cx, req.target.host(), req.target.url(), &refused);
    let p = Problem::new(403, "destination-not-allowed", &message);
    Some(refuse_naming(
        cx,
        req,
        p,
        has_body,
        ResultCode::Denied,
        refused.addr,
    ))
}

/// A name's addresses, for the exchange going straight to its origin: those the
/// client may reach, in order (`Ok`), or, when none is left, the 403 it gets.
pub fn resolved<S: Socket>(
    cx: &mut Scope<S>,
    mut ex: Box<Exchange>,
    addrs: Arc<[IpAddr]>,
) -> Result<(Box<Exchange>, Arc<[IpAddr]>), State> {
    if goes_anywhere(cx.conn, &cx.ctx.dest) {
        return Ok((ex, addrs));
    }
    match cx.ctx.dest.filter(&addrs) {
        Filtered::All => Ok((ex, addrs)),
        Filtered::Some(left) => {
            debug!(
                "conn {}: {}: {} of its {} addresses left out (not for clients elsewhere)",
                cx.conn.id,
                ex.target.host(),
                addrs.len() - left.len(),
                addrs.len()
            );
            Ok((ex, left))
        }
        Filtered::None(refused) => {
            let message = refused_message(cx, ex.target.host(), ex.target.url(), &refused);
            let p = Problem::new(403, "destination-not-allowed", &message);
            // The log's peer field names the address refused: HIER_NONE/ADDR.
            ex.peer = refused.addr;
            ex.hier = Hier::None;
            Err(fail_with(cx, ex, None, p, ResultCode::Denied))
        }
    }
}

/// A new direct upstream socket: whether clients on other machines may not reach its
/// address (then none of them takes it from the pool), and whether, besides, its host
/// is a name, whose hits are not judged again: then what it fetches is not stored
/// (`request::attach`), so that it never answers such a client from the cache.
/// Literals and `localhost` names are refused before the cache, so their responses
/// are stored as usual. Worked out once per socket: its host and address never change.
pub fn mark<S>(dest: &Destinations, up: &mut Upstream<S>) {
    up.closed_to_others = dest.check(up.addr.ip()).is_err();
    up.keep_private = up.closed_to_others && !Destinations::judged_by_name(&up.host);
}

/// Counts and logs a refused destination, and gives the client's page. The rule
/// (`--allow-to`) goes to larder's log only.
fn refused_message<S: Socket>(
    cx: &mut Scope<S>,
    host: &str,
    url: &str,
    refused: &Refused,
) -> String {
    info!("conn {}: {url} refused: {refused}", cx.conn.id);
    cx.ctx.stats.deny(Denial::Destination);
    let what = match refused.addr {
        Some(ip) if ip.to_string() != host => format!("{host} ({ip}) is {}", refused.reason),
        _ => format!("{host} is {}", refused.reason),
    };
    format!(
        "This proxy does not connect clients on other machines to its own machine or \
         network: {what}. {ASK_ADMIN}"
    )
}
