//! Revalidations larder makes on its own: a stale entry whose
//! `stale-while-revalidate` covers it answers the client at once (RFC 5861 §3), and
//! one revalidation of it runs behind that answer, for nobody.
//!
//! # Lifecycle
//! ```text
//!  client request ──► consult: stale, within stale-while-revalidate
//!     ├─ a revalidation of the key runs already (or a fetch of the URL) ──► Serve (stale)
//!     ├─ fewer than BACKGROUND_MAX run, larder not stopping ──► Serve (stale)
//!     │     + the key registered, and a request queued (Ctx::refreshes):
//!     │       the client's head with the stored validators, as any revalidation
//!     └─ otherwise ──► revalidated in the foreground, as without the directive
//!  after the turn's steps the server makes a connection for each queued request:
//!     a null socket (reads end, writes vanish), in the slab like any other
//!     ──► route: consult (never answered stale) ──► Resolving/Connecting/Forward
//!           ├─ 304 ──► refresh the entry ──► Serve (into the null socket)
//!           ├─ 200 ──► relay (into the null socket) + store: replaces the entry
//!           └─ failure ──► stale-if-error as usual, or an error page; the entry stays
//!     ──► Closing ──► Closed: the key is released (`Exchange::refresh_key`), so the
//!         next stale answer may start another
//! ```
//! It is logged as any request (result `TCP_REFRESH_UNMODIFIED`, `TCP_REFRESH_MODIFIED`,
//! ...), with "-" for the client; it is not counted as a client request in the
//! figures (only in `background_revalidations`), nor as a client connection, nor
//! against `--max-conns` (at most [`BACKGROUND_MAX`] run, each holding one
//! upstream socket).

use std::net::SocketAddr;
use std::time::Instant;

use super::{Conn, Exchange, Readiness, Scope, Socket, State};
use crate::access_log::Hier;
use crate::http::body::BodyTracker;
use crate::http::{BodyKind, Method, Version};

pub use crate::cache::policy::BACKGROUND_MAX;

/// The revalidation of entry `key` that a stale answer to `ex` leaves behind: the
/// client's request as it would go upstream (consult replaces its conditionals with
/// the stored validators), without a body, for no client.
pub fn request_for(ex: &Exchange, key: Vec<u8>, now: Instant) -> Box<Exchange> {
    Box::new(Exchange {
        started: now,
        method: Method::Get,
        target: ex.target.clone(),
        client_version: Version::Http11,
        client_keep_alive: false,
        upstream_head: ex.upstream_head.clone(),
        req_directives: ex.req_directives,
        req_conditional: ex.req_conditional,
        req_body: BodyTracker::new(BodyKind::None, &crate::http::Limits::default()),
        req_pending: 0,
        req_done: true,
        request_has_body: false,
        retried: false,
        peer: None,
        status: 0,
        bytes: 0,
        content_type: None,
        close_after: true,
        cache: None,
        probed: false,
        // No client waits for a part of it: the whole response refreshes the entry.
        req_range: false,
        plan: None,
        hier: Hier::Direct,
        refresh_key: Some(key.into_boxed_slice()),
    })
}

/// The connection a background revalidation runs on: no client behind its null
/// socket, always readable (end of stream) and writable (everything vanishes).
pub fn conn<S: Socket>(id: u64) -> Conn<S> {
    let peer = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut conn = Conn::new(id, S::null(), peer);
    conn.background = true;
    conn.ready = Readiness {
        r: true,
        w: true,
        ..Readiness::default()
    };
    conn
}

/// Starts the revalidation `ex` on its connection (made by [`conn`]): it is routed as
/// a request would be. The caller steps it next (or closes it, if it is `Closed`).
pub fn start<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>) -> State {
    super::request::route(cx, ex, false)
}
