//! larder's own pages on a connection: recognises a request for larder itself and
//! carries out what [`crate::pages::decide`] decides (see `src/pages/` for the pages
//! and who may fetch them).
//!
//! A request is for larder when it is in origin form, when its absolute-form target
//! names one of larder's listening addresses as an IP literal (a name that resolves
//! to one is noticed after DNS: [`answer_exchange`]), or when its method is PURGE.
//! The answer is complete and small, so it goes out through `out` like an error
//! page, and the connection reads its next request (or closes, if the request had a
//! body larder did not read).

use super::Socket;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use log::{info, warn};

use super::request::{queue_answer, record, Line};
use super::{end_exchange, recycle, Exchange, Scope, State};
use crate::access_log::ResultCode;
use crate::cache::CacheError;
use crate::conn::cache::Cache;
use crate::http::page::{error_body, response};
use crate::http::target::Target;
use crate::http::Method;
use crate::pages::{self, metrics, pac, small, status, Page, HTML_TYPE};
use crate::stats::{CacheFigures, Snapshot};

/// Whether the request is for larder itself rather than for an origin. Every request
/// asks, and nearly every one is told apart by its form, method and port: that much
/// is asked inline, without a call.
#[inline]
pub fn for_larder(method: &Method, target: &Target, locals: &[SocketAddr]) -> bool {
    if target.is_authority() {
        return false;
    }
    target.is_origin_form()
        || pages::is_purge(method)
        || (locals.iter().any(|l| l.port() == target.port()) && names_larder(target, locals))
}

/// Whether the target's host is an IP literal and, with its port, one of larder's
/// listening addresses (a listener on 0.0.0.0 or `::` counts for loopback too).
#[inline(never)]
fn names_larder(target: &Target, locals: &[SocketAddr]) -> bool {
    let port = target.port();
    let Ok(ip) = target.host().parse::<IpAddr>() else {
        return false;
    };
    locals.iter().any(|&l| is_self(l, ip, port))
}

/// Whether `ip:port` is the listening address `local`.
pub fn is_self(local: SocketAddr, ip: IpAddr, port: u16) -> bool {
    if port != local.port() {
        return false;
    }
    let lip = local.ip();
    let ip = ip.to_canonical();
    ip == lip || (lip.is_unspecified() && (ip.is_loopback() || ip.is_unspecified()))
}

/// A request for larder, as much of it as the answer needs.
pub struct Asked<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request target.
    pub target: &'a Target,
    /// The client may keep the connection and nothing of the request is left unread.
    pub keep: bool,
    /// When the request started: the logged time runs from here.
    pub started: Instant,
}

/// Answers the current exchange, found to be for larder after DNS (its host name
/// resolved to one of larder's addresses).
pub fn answer_exchange<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>) -> State {
    let ex = end_exchange(cx, ex);
    let asked = Asked {
        method: &ex.method,
        target: &ex.target,
        keep: ex.client_keep_alive && ex.req_done && ex.req_pending == 0,
        started: ex.started,
    };
    let next = answer(cx, &asked);
    recycle(cx.ctx, ex);
    next
}

/// Answers a request for larder (recognised at its head, or after DNS).
pub fn answer<S: Socket>(cx: &mut Scope<S>, asked: &Asked) -> State {
    let page = pages::decide(asked.method, asked.target.path_and_query(), cx.conn.admin);
    let close = !asked.keep || cx.ctx.draining;
    let (status, content_type, body, extra, result) = match page {
        Page::Status => {
            let (_, body) = with_snapshot(cx, true, |s| (200, status::status_html(s)));
            (200, status::CONTENT_TYPE, body, "", ResultCode::None)
        }
        Page::Metrics => {
            let (_, body) = with_snapshot(cx, true, |s| (200, metrics::metrics_text(s)));
            (200, metrics::CONTENT_TYPE, body, "", ResultCode::None)
        }
        Page::Health => {
            // A load balancer asks every few seconds: no walk of the index for it.
            let (status, body) = with_snapshot(cx, false, small::health);
            (
                status,
                small::HEALTH_CONTENT_TYPE,
                body,
                "",
                ResultCode::None,
            )
        }
        Page::Pac => {
            // The address the client reached larder by: what its Host said (origin
            // form), or the literal it named.
            let body = pac::pac_file(asked.target.host_header(), &cx.ctx.cfg.pac_direct);
            (200, pac::CONTENT_TYPE, body, "", ResultCode::None)
        }
        Page::Purge => {
            let (status, body) = purge(cx, asked.target);
            let text = "text/plain; charset=utf-8";
            (status, text, body, "", ResultCode::None)
        }
        Page::NotFound => {
            let body = small::not_found_html(asked.target.path_and_query(), cx.conn.admin);
            (
                404,
                small::NOT_FOUND_CONTENT_TYPE,
                body,
                "",
                ResultCode::None,
            )
        }
        Page::AdminOnly => {
            info!(
                "conn {}: {} {} refused: not in --admin",
                cx.conn.id,
                asked.method.as_str(),
                asked.target.url()
            );
            let body = error_body(
                403,
                "This page is for the administrators of this proxy. \
                 If you need it, ask them.",
            );
            (403, HTML_TYPE, body, "", ResultCode::Denied)
        }
        Page::MethodNotAllowed => {
            let body = error_body(405, "This page answers GET and HEAD only.");
            (
                405,
                HTML_TYPE,
                body,
                "Allow: GET, HEAD\r\n",
                ResultCode::None,
            )
        }
    };
    let mut bytes = response(
        status,
        content_type,
        body.as_bytes(),
        &cx.ctx.via,
        close,
        extra,
    );
    if *asked.method == Method::Head {
        bytes.truncate(bytes.len().saturating_sub(body.len()));
    }
    let line = Line {
        method: asked.method.as_str(),
        url: asked.target.url(),
        host: "",
        status,
        bytes: bytes.len() as u64,
        peer: None,
        hier: crate::access_log::Hier::Direct,
        result,
        started: asked.started,
        content_type,
    };
    record(cx, &line);
    queue_answer(cx, bytes, close)
}

/// Gathers the figures of the pages and renders them (`oldest`: find the oldest
/// object, a walk of the in-memory index).
fn with_snapshot<S: Socket>(
    cx: &mut Scope<S>,
    oldest: bool,
    render: impl FnOnce(&Snapshot) -> (u16, String),
) -> (u16, String) {
    let (mut idle, mut busy) = (0u64, 0u64);
    for (_, up) in cx.ups.iter() {
        if up.owner.is_some() {
            busy += 1;
        } else {
            idle += 1;
        }
    }
    let ctx = &*cx.ctx;
    let parents = ctx.parents.states(ctx.now);
    let snapshot = Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        now_unix: ctx.unix,
        stats: &ctx.stats,
        conns_open: ctx.gauges.conns_open,
        max_conns: ctx.gauges.max_conns,
        tunnels_open: ctx.gauges.tunnels_open,
        upstreams_idle: idle,
        upstreams_busy: busy,
        listen: &ctx.locals,
        draining: ctx.draining || ctx.stopping,
        cache: Some(cache_figures(&ctx.cache, oldest)),
        parents: &parents,
    };
    render(&snapshot)
}

fn cache_figures(cache: &Cache, oldest: bool) -> CacheFigures {
    let s = cache.store.summary();
    CacheFigures {
        objects: s.objects,
        live_bytes: s.live_bytes,
        capacity: s.capacity,
        oldest: if oldest {
            cache.store.oldest_stored()
        } else {
            None
        },
        write_errors: s.write_errors,
        paused_until: Some(s.paused_until).filter(|&t| t > 0),
        synced_at: Some(s.synced_at).filter(|&t| t > 0),
    }
}

/// `PURGE URL`: removes the URL and each of its variants, and syncs the cache file
/// so the removal survives a power cut. 200 when something was removed, 404 when
/// nothing was stored, 503 when the cache cannot write.
fn purge<S: Socket>(cx: &mut Scope<S>, target: &Target) -> (u16, String) {
    let url = target.url();
    match purge_url(&mut cx.ctx.cache, url) {
        Ok(0) => (404, format!("not in the cache: {url}\n")),
        Ok(n) => {
            info!("conn {}: purged {url} ({n} object(s))", cx.conn.id);
            (200, format!("purged {url}\n"))
        }
        Err(e) => {
            warn!("conn {}: PURGE {url} failed: {e}", cx.conn.id);
            (503, format!("the cache cannot be written now: {e}\n"))
        }
    }
}

/// Invalidates `url` and every variant stored under it (`url NUL vary-key`), then
/// syncs. Finding the variants walks the index: a PURGE costs O(objects), which is
/// fine for an administrator's command.
fn purge_url(cache: &mut Cache, url: &str) -> Result<u64, CacheError> {
    let mut prefix = url.as_bytes().to_vec();
    prefix.push(0);
    let mut keys: Vec<Vec<u8>> = cache
        .store
        .objects()
        .filter(|o| o.key.starts_with(&prefix))
        .map(|o| o.key.to_vec())
        .collect();
    keys.push(url.as_bytes().to_vec());
    let mut removed = 0;
    for key in &keys {
        if cache.store.invalidate(key)? {
            removed += 1;
        }
    }
    if removed > 0 {
        cache.store.sync()?;
    }
    Ok(removed)
}
