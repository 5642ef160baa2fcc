//! `--auth-file` at the connection: a parsed head's credential judged by
//! [`crate::auth::Auth::check`] and what the verdict means for the connection: go on,
//! a 407 (or a 401 for larder's own pages asked for directly) with the challenge, a
//! 503, or waiting in `Head` for a helper thread's verdict, after which the head is
//! parsed again and, its credential now known, judged at once.

use log::{debug, info};

use super::request::{queue_answer, record, Line};
use super::{HeadScan, Scope, Socket, State};
use crate::access_log::{Hier, ResultCode};
use crate::auth::Check;
use crate::dns::Waiter;
use crate::http::page::{error_response, Problem};
use crate::http::request::Request;
use crate::http::Method;

/// Judges the request's credential when larder asks for one. `None`: go on with the
/// request. `Some(state)`: it was answered, or waits for a verdict.
pub(super) fn gate<S: Socket>(cx: &mut Scope<S>, req: &Request) -> Option<State> {
    let auth = cx.ctx.auth.as_mut()?;
    let own = super::pages::for_larder(&req.method, &req.target, &cx.ctx.locals);
    if own && exempt(req) {
        cx.conn.user = None;
        return None;
    }
    // A browser pointed at larder itself (origin form) speaks to a server, not a
    // proxy: it answers a 401 with `Authorization`, never a 407.
    let proxy = !req.target.is_origin_form();
    let span = if proxy {
        req.proxy_authorization
    } else {
        req.authorization
    };
    let conn = &mut *cx.conn;
    let value = span.and_then(|(start, end)| conn.inbuf.data().get(start..end));
    let waiter = Waiter {
        key: cx.key,
        id: conn.id,
    };
    let check = auth.check(value, &mut conn.session, conn.peer.ip(), waiter, cx.ctx.now);
    conn.user = None;
    match check {
        Check::Pass(user) => {
            conn.user = Some(user);
            None
        }
        Check::Wait => {
            debug!("conn {}: checking the credential", conn.id);
            // The check has a few milliseconds' work; a thread that falls this far
            // behind is as good as a connect that does not finish.
            conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.connect);
            Some(State::Head(HeadScan {
                verifying: true,
                ..HeadScan::default()
            }))
        }
        Check::Challenge | Check::Limited => {
            if value.is_some() {
                info!(
                    "conn {}: proxy authentication failed{}",
                    conn.id,
                    if check == Check::Limited {
                        " (address held back after failures: not checked)"
                    } else {
                        ""
                    }
                );
            }
            Some(challenge(cx, req, proxy))
        }
        Check::Busy => {
            let message = "This proxy is checking too many passwords at once. Try again shortly.";
            let p = Problem::new(503, "auth-busy", message);
            let page = error_response(&p, &cx.ctx.via, closes(cx, req), None);
            Some(refused(cx, req, page, p.status))
        }
    }
}

/// `/health` and the PAC file never ask for a password: a balancer and a browser
/// looking for its proxy settings have none to give.
fn exempt(req: &Request) -> bool {
    matches!(req.method, Method::Get | Method::Head)
        && matches!(
            req.target.path_and_query().split('?').next(),
            Some("/health" | "/proxy.pac" | "/wpad.dat")
        )
}

/// 407 with `Proxy-Authenticate` (or 401 with `WWW-Authenticate`).
fn challenge<S: Socket>(cx: &mut Scope<S>, req: &Request, proxy: bool) -> State {
    let (status, message) = if proxy {
        (
            407,
            "This proxy needs a user name and password: set them in your proxy settings.",
        )
    } else {
        (401, "This page needs a user name and password.")
    };
    let p = Problem::new(status, "auth-required", message);
    let mut page = error_response(&p, &cx.ctx.via, closes(cx, req), None);
    if let Some(auth) = cx.ctx.auth.as_ref() {
        let at = page
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(page.len(), |i| i + 2);
        page.splice(at..at, auth.challenge(proxy).iter().copied());
    }
    refused(cx, req, page, status)
}

/// Whether the connection closes after the refusal, as for any request refused at its
/// head: a body is not read (so nothing after it could be), whatever follows a CONNECT
/// was meant for the tunnel, and a stopping larder closes.
fn closes<S: Socket>(cx: &Scope<S>, req: &Request) -> bool {
    req.body != crate::http::BodyKind::None
        || !req.keep_alive
        || req.method == Method::Connect
        || cx.ctx.draining
}

/// Logs the refusal and queues its page (`page` says whether the connection closes,
/// as [`closes`] decided).
fn refused<S: Socket>(cx: &mut Scope<S>, req: &Request, page: Vec<u8>, status: u16) -> State {
    let close = closes(cx, req);
    if !close {
        cx.conn.inbuf.consume(req.head_len);
    }
    let line = Line {
        method: req.method.as_str(),
        url: req.target.url(),
        host: req.target.host(),
        status,
        bytes: page.len() as u64,
        peer: None,
        hier: Hier::Direct,
        result: ResultCode::Denied,
        started: cx.ctx.now,
        content_type: "text/html",
    };
    record(cx, &line);
    queue_answer(cx, page, close)
}

/// The verdict on the credential the connection waits for has come (or the check
/// failed): parse its head again. Returns whether it was waiting.
pub fn on_verdict<S: Socket>(cx: &mut Scope<S>) -> bool {
    match &mut cx.conn.state {
        State::Head(scan) if scan.verifying => {
            // From the start: the head is all there, and is found again at once.
            *scan = HeadScan::default();
            cx.conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.head);
            true
        }
        _ => false,
    }
}
