//! The cache as the connections use it: looking a request up, planning a hit,
//! revalidating a stale entry, storing a response while it is relayed, and
//! invalidating after unsafe methods.
//!
//! # One request's way through the cache
//! ```text
//!  request head ──► consult ──┬─ fresh entry ─────────────► Serve (from the map)
//!                             ├─ only-if-cached, nothing ──► 504
//!                             ├─ stale entry ──► Forward with validators
//!                             │                    ├─ 304 ──► refresh ──► Serve
//!                             │                    └─ other ──► relay (+ store)
//!                             └─ miss ──► Forward ──► relay (+ store if admitted)
//! ```
//! Storing: at the response head, [`response_head`] decides and begins a fill; every
//! body byte relayed is also written to it ([`Sink`]); when the body is complete the
//! fill is committed, and only then can a lookup find it. Any failure on the way
//! (truncated, reset, over-size, the client leaving) aborts the fill: see
//! [`release`], which every path that ends an exchange reaches through `end_exchange`.
//!
//! Heads and keys: the store key is the URL as larder logs it; when a response
//! carries Vary, a variants marker is stored under the URL and the response under
//! `URL ++ "\0" ++ vary key` (see [`crate::http::vary::vary_key`]).

use super::Socket;
use crate::access_log::ResultCode;
use crate::http::cache_status::Forwarded;
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use httparse::Header;
use log::debug;

use super::collapse::{Flights, Member};
use super::{Conn, Exchange, OutBuf};
use crate::cache::admission::Admission;
use crate::cache::syncer::Syncer;
use crate::cache::uncacheable::Uncacheable;
use crate::cache::{unix_now, CacheError, Fill, Meta, ObjectRef, Store};
use crate::http::cache_control::CacheControl;
use crate::http::cached::{
    judge, marker_vary, push_served_head, same_vary, stored_head, variants_marker,
    with_request_fields, with_response_fields,
};
use crate::http::conditional::{client_conditional, refresh_head, revalidation_fields};
use crate::http::freshness::{expires_at, storable, Freshness, Stored};
use crate::http::range::{push_content_range, range_answer, RangeAnswer};
use crate::http::response::Response;
use crate::http::target::parse_absolute;
use crate::http::vary::vary_key;
use crate::http::{push_decimal, BodyKind, Method, Version, ViaName};

/// URLs the admission table remembers: 16 bytes each, so 1 MiB.
const ADMISSION_SLOTS: usize = 65_536;

/// URLs the uncacheable memo remembers: 16 bytes each, so 64 KiB.
const UNCACHEABLE_SLOTS: usize = 4096;

/// Body bytes served from the map between two releases of its pages (see
/// [`Cache::note_served`]): bounds what hits add to larder's RSS, at the cost of a
/// `madvise` per 8 MiB served.
const RELEASE_AFTER: u64 = 8 << 20;

/// The proxy's cache: the store, the admission table, and the accounting that
/// keeps the map's pages from piling up in larder's RSS.
pub struct Cache {
    /// The object store in the cache file.
    pub store: Store,
    admission: Admission,
    /// URLs whose responses were lately not stored: requests for them do not wait
    /// for each other's fetches.
    uncacheable: Uncacheable,
    /// Bytes served from the map since its pages were last released.
    served: u64,
    /// Misses being fetched to be stored: later requests for the URL wait for the
    /// fetch instead of making their own (request collapsing).
    pub flights: Flights,
    /// Unix seconds, read once per loop turn ([`Cache::set_clock`]) rather than once
    /// or twice per request.
    now: u64,
    /// This larder's Via, which a served head carries and a stored one does not.
    pub via: ViaName,
    /// No write error is logged before this time (unix seconds): at most one a minute.
    quiet_until: u64,
    /// The thread that makes checkpoints durable (`None` if it could not be started:
    /// then the store takes them in place, blocking the loop while the disk syncs).
    syncer: Option<Syncer>,
    /// `--cache-sync`: seconds between checkpoints while something is written.
    sync_every: u64,
}

impl Cache {
    /// Wraps an opened store and takes a first checkpoint. A response is admitted once
    /// its URL was requested more than `admit_after` times, each within `admit_window`
    /// seconds of the previous; `via` names larder in the heads it adds; `sync_every`
    /// is `--cache-sync`.
    pub fn new(
        mut store: Store,
        admit_after: u32,
        admit_window: u64,
        via: ViaName,
        sync_every: u64,
    ) -> Cache {
        let syncer = match Syncer::spawn() {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!("no thread for cache syncs ({e}): they will block requests");
                None
            }
        };
        // The first checkpoint here, before any request: until one is durable nothing
        // can be stored. (After a clean stop it syncs a clean file: quick.)
        if let Err(e) = store.sync_now() {
            log::warn!("cache not synced at start-up ({e}): storing waits for a sync");
        }
        store.set_background_sync(syncer.is_some());
        Cache {
            store,
            admission: Admission::new(admit_after, admit_window, ADMISSION_SLOTS),
            uncacheable: Uncacheable::new(UNCACHEABLE_SLOTS),
            served: 0,
            flights: Flights::default(),
            now: unix_now(),
            via,
            quiet_until: 0,
            syncer,
            sync_every,
        }
    }

    /// Sets the cache's clock (unix seconds); the loop calls it once per turn.
    pub fn set_clock(&mut self, unix: u64) {
        self.now = unix;
    }

    /// Counts body bytes written to clients from the map. Every page a hit touches
    /// stays mapped into larder (and counted in its RSS) until released, so after
    /// `RELEASE_AFTER` bytes the map's page-table entries are dropped; the pages
    /// stay in the kernel's page cache, so the next hit costs a minor fault, not I/O.
    pub fn note_served(&mut self, n: u64) {
        self.served += n;
        if self.served >= RELEASE_AFTER {
            self.served = 0;
            self.store.release_pages();
        }
    }

    /// Whether others wait for the fetch `ex` leads (so it should go on without its
    /// own client).
    pub fn others_wait(&self, ex: &Exchange) -> bool {
        ex.cache
            .as_ref()
            .is_some_and(|c| c.leads && c.fill.is_some() && self.flights.has_members(&c.url))
    }

    /// Ends the flight `c` leads, if any, with the object it stored if any.
    fn land(&mut self, c: &mut CacheEx, stored: Option<&ObjectRef>) {
        if std::mem::take(&mut c.leads) {
            self.flights.land(&c.url, stored, &mut self.store);
        }
    }

    /// A store operation failed. A write error (a full disk, an I/O error) pauses
    /// storing for 30 s and is something the operator must act on: it is logged at
    /// warn, at most once a minute. Anything else (too large, no room right now,
    /// paused) is an ordinary reason not to store.
    fn trouble(&mut self, what: &str, e: &CacheError) {
        match e {
            e if e.is_write_error() && self.now >= self.quiet_until => {
                self.quiet_until = self.now + 60;
                log::warn!(
                    "{what}: {e}; storing is paused for 30 s (more write errors in the \
                     next minute are counted in /metrics, not logged)"
                );
            }
            _ => debug!("{what}: {e}"),
        }
    }

    /// Forgets old request history (called on the loop's tick).
    pub fn sweep(&mut self, now: u64) {
        self.admission.sweep(now);
    }

    /// Keeps the cache file synced (called on the loop's tick, and on a turn when
    /// storing waits for a checkpoint: see [`Cache::sync_wanted`]): a finished
    /// checkpoint is handed to the store, and a new one is started when one is due (see
    /// `Store::sync_due`).
    pub fn keep_synced(&mut self, now: u64) {
        let due = |store: &Store| store.sync_due(now, self.sync_every);
        let Some(syncer) = self.syncer.as_mut() else {
            if due(&self.store) {
                if let Err(e) = self.store.sync_now() {
                    self.trouble("cache sync failed", &e);
                }
            }
            return;
        };
        let finished = syncer.finished();
        let idle = syncer.idle();
        if let Some((checkpoint, result)) = finished {
            if let Err(e) = self.store.end_sync(checkpoint, result) {
                self.trouble("cache sync failed", &e);
            }
        }
        if !idle || !self.store.sync_due(now, self.sync_every) {
            return;
        }
        match self.store.begin_sync(now) {
            Ok(job) => {
                let started = self.syncer.as_mut().is_some_and(|s| s.start(job));
                if !started {
                    // The thread is gone: sync in place from now on.
                    self.syncer = None;
                    self.store.set_background_sync(false);
                }
            }
            Err(e) => self.trouble("cache sync failed", &e),
        }
    }

    /// Storing waits for a checkpoint (a write found the window full): the loop then
    /// calls [`Cache::keep_synced`] every turn rather than on its tick only.
    pub fn sync_wanted(&self) -> bool {
        self.store.sync_wanted()
    }

    /// The last checkpoint, at shutdown: waits for a running one, then syncs the file
    /// so the next start finds every object as it is and checks nothing. Blocks.
    pub fn close(&mut self) {
        if let Some(syncer) = self.syncer.as_mut() {
            if let Some((checkpoint, result)) = syncer.wait(Duration::from_secs(30)) {
                let _ = self.store.end_sync(checkpoint, result);
            }
        }
        if let Err(e) = self.store.sync_for_close() {
            log::warn!("cache not synced at shutdown: {e}; the next start checks what was written since the last sync");
        }
    }
}

/// What the cache knows about one exchange.
#[derive(Debug)]
pub struct CacheEx {
    /// The URL, the primary key.
    pub url: Rc<[u8]>,
    /// A variant's key (`URL NUL vary-key`) when the entry this exchange reads or
    /// writes is a variant; `None` for the URL itself (so the common exchange copies
    /// no key). See [`CacheEx::key`].
    variant: Option<Vec<u8>>,
    /// The URL's hash, the store's ([`Store::key_hash`]): for the index, admission
    /// and the uncacheable memo.
    url_hash: u64,
    /// Admission allows storing the response.
    admit: bool,
    /// The stale entry being revalidated (pinned).
    stale: Option<ObjectRef>,
    /// While revalidating: the request head as the client's request made it (the one
    /// sent carries larder's validators instead of the client's conditionals).
    client_head: Option<Vec<u8>>,
    /// RFC 9211 `fwd` value: why the request went upstream.
    fwd: Forwarded,
    /// Unix time the request was sent upstream (RFC 9111's request_time).
    requested: u64,
    fill: Option<Fill>,
    /// The response is being stored: a fill of known length was begun (Cache-Status
    /// says `stored`; a later failure, such as a truncated body, is only logged).
    stored: bool,
    /// An unsafe method: invalidate the URL on a non-error response.
    unsafe_method: bool,
    /// Serving from the map: the object (pinned) and the body bytes left.
    pub serve: Option<Serving>,
    /// Squid result code for the access log.
    pub result: ResultCode,
    /// This exchange's fetch is a flight others may wait for.
    leads: bool,
    /// This connection, as flights name it.
    pub me: Member,
}

/// A response being written from the map.
#[derive(Debug)]
pub struct Serving {
    /// The object, pinned; `None` while reading a body another exchange is storing
    /// (see [`super::collapse`]), until the object lands.
    pub obj: Option<ObjectRef>,
    /// File offsets of the body bytes still to write.
    pub pos: u64,
    /// File offset just past the body's last byte to write.
    pub end: u64,
}

impl CacheEx {
    /// Why the request went (or was going) to the origin: RFC 9211's `fwd` value.
    pub fn fwd(&self) -> Forwarded {
        self.fwd
    }

    /// The key of the entry this exchange reads or writes: the variant's, or the URL.
    fn key(&self) -> &[u8] {
        self.variant.as_deref().unwrap_or(&self.url)
    }

    fn new(url: Rc<[u8]>, fwd: Forwarded) -> CacheEx {
        CacheEx {
            variant: None,
            url,
            url_hash: 0,
            admit: false,
            stale: None,
            client_head: None,
            fwd,
            requested: 0,
            fill: None,
            stored: false,
            unsafe_method: false,
            serve: None,
            result: ResultCode::Miss,
            leads: false,
            me: (0, 0),
        }
    }
}

/// What a lookup found for a request.
enum Found {
    Hit(Plan, ObjectRef),
    Revalidate {
        obj: ObjectRef,
        variant: Option<Vec<u8>>,
        upstream_head: Vec<u8>,
        fwd: Forwarded,
    },
    Miss {
        variant: Option<Vec<u8>>,
        fwd: Forwarded,
    },
    OnlyIfCached,
}

/// A response planned from a stored one: the head for the client (no blank line,
/// no Cache-Status or Connection yet) and the body bytes to send.
struct Plan {
    head: Vec<u8>,
    status: u16,
    /// Body range relative to the stored body.
    body: Range<u64>,
    result: ResultCode,
    ttl: u64,
}

/// Looks the current request up. Returns true when it was answered from the cache
/// (the head is queued in `out` and the connection must go to `Serve`) or refused
/// (only-if-cached: a 504 is queued); false to go upstream, with `ex.cache` set for
/// [`response_head`].
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
) -> Consulted {
    let waiter = (key, conn.id);
    // A request that waited may have had its conditionals taken out for the fetch
    // it would have made: it is looked up again as the client sent it.
    if let Some(head) = ex.cache.as_mut().and_then(|c| c.client_head.take()) {
        ex.upstream_head = head;
    }
    if ex.method == Method::Connect {
        return Consulted::Forward;
    }
    let url = ex.target.url_bytes();
    let now = cache.now;
    if !matches!(ex.method, Method::Get | Method::Head) || ex.request_has_body {
        let mut c = CacheEx::new(url, Forwarded::Method);
        c.unsafe_method = !matches!(
            ex.method,
            Method::Get | Method::Head | Method::Options | Method::Trace
        );
        ex.cache = Some(c);
        return Consulted::Forward;
    }
    let url_hash = cache.store.key_hash(&url);
    let admit = ex.method == Method::Get && (resumed || cache.admission.record(url_hash, now));
    let method = ex.method.clone();
    let plain_miss = || Found::Miss {
        variant: None,
        fwd: Forwarded::Miss,
    };
    // Nothing stored and no directives: a plain miss, known without parsing the
    // request's fields again (the common pass-through request).
    let found = if !cache.store.may_hold(url_hash) && !ex.req_directives {
        plain_miss()
    } else {
        with_request_fields(&ex.upstream_head, |req| {
            look(cache, &url, url_hash, req, &method, &ex.upstream_head, now)
        })
        .unwrap_or_else(plain_miss)
    };
    let mut c = CacheEx::new(url, Forwarded::Miss);
    c.url_hash = url_hash;
    c.admit = admit;
    c.requested = now;
    c.me = waiter;
    match found {
        Found::Hit(plan, obj) => {
            cache.store.pin(&obj);
            let mut head = plan.head;
            if resumed {
                head.extend_from_slice(b"Cache-Status: larder; fwd=miss; collapsed\r\n");
            } else {
                head.extend_from_slice(b"Cache-Status: larder; hit; ttl=");
                push_decimal(&mut head, plan.ttl);
                head.extend_from_slice(b"\r\n");
            }
            c.result = plan.result;
            c.serve = Some(Serving {
                pos: obj.body.start + plan.body.start,
                end: obj.body.start + plan.body.end,
                obj: Some(obj),
            });
            ex.status = plan.status;
            if log {
                ex.content_type = super::forward::content_type(&head);
            }
            ex.cache = Some(c);
            queue_head(ex, &mut conn.out, conn.eof, head, b"");
            conn.ready.w = true;
            Consulted::Serve
        }
        Found::Revalidate {
            obj,
            variant,
            upstream_head,
            fwd,
        } => {
            cache.store.pin(&obj);
            c.stale = Some(obj);
            c.variant = variant;
            c.fwd = fwd;
            // It was admitted once: its replacement need not earn admission again.
            // (A HEAD's answer has no body: it never replaces the stored GET.)
            c.admit = ex.method == Method::Get;
            c.result = if fwd == Forwarded::Request {
                ResultCode::ClientRefreshMiss
            } else {
                ResultCode::RefreshModified
            };
            c.client_head = Some(std::mem::replace(&mut ex.upstream_head, upstream_head));
            ex.cache = Some(c);
            Consulted::Forward
        }
        Found::Miss { variant, fwd } => {
            c.variant = variant;
            c.fwd = fwd;
            if fwd == Forwarded::Request {
                c.result = ResultCode::ClientRefreshMiss;
            }
            if admit && ex.req_conditional {
                // A client's If-Modified-Since on a miss would bring a 304, which
                // cannot be stored: ask for the whole response (a 200 is a valid
                // answer to a conditional request).
                let mut up = Vec::with_capacity(ex.upstream_head.len());
                upstream_request(&ex.upstream_head, None, &mut up);
                c.client_head = Some(std::mem::replace(&mut ex.upstream_head, up));
            }
            // Only fetches that will be stored are worth waiting for; a resumed
            // request fetches on its own (the flight it waited for stored nothing),
            // and so does one for a URL whose last response was not stored.
            if admit && !resumed && !cache.uncacheable.marked(url_hash, now) {
                if !cache.flights.open(&c.url) {
                    cache.flights.join(&c.url, waiter);
                    ex.cache = Some(c);
                    return Consulted::Wait;
                }
                c.leads = true;
            }
            ex.cache = Some(c);
            Consulted::Forward
        }
        Found::OnlyIfCached => {
            ex.cache = Some(c);
            Consulted::OnlyIfCached
        }
    }
}

/// The outcome of [`consult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consulted {
    /// Go upstream (`ex.cache` says how the response is to be treated).
    Forward,
    /// A head is queued and the body comes from the map: go to `Serve`.
    Serve,
    /// Nothing usable and the client forbade going upstream: answer 504.
    OnlyIfCached,
    /// Another request is fetching the URL to store it: wait (state `Waiting`) until
    /// its flight ends, then consult again with `resumed`.
    Wait,
}

fn look(
    cache: &mut Cache,
    url: &[u8],
    url_hash: u64,
    req: &[Header<'_>],
    method: &Method,
    upstream_head: &[u8],
    now: u64,
) -> Found {
    let mut cc = CacheControl::from_request(req);
    // A browser's reload sends max-age=0. Ages are whole seconds, so an entry stored
    // this second would pass it; the user asked for a check, so it is one.
    if cc.max_age == Some(0) {
        cc.no_cache = true;
    }
    let client_refresh = cc.no_cache;
    let mut variant = None;
    let mut obj = cache.store.lookup_hashed(url, url_hash);
    let mut vary_miss = false;
    let marker = obj
        .as_ref()
        .and_then(|o| marker_vary(cache.store.bytes(o.head.clone())).map(<[u8]>::to_vec));
    if let Some(vary) = marker {
        let mut key = url.to_vec();
        key.push(0);
        let names = [Header {
            name: "Vary",
            value: &vary,
        }];
        if vary_key(&names, req, &mut key).is_err() {
            return Found::Miss {
                variant: Some(key),
                fwd: Forwarded::Miss,
            };
        }
        obj = cache.store.lookup(&key);
        vary_miss = obj.is_none();
        variant = Some(key);
    }
    let Some(obj) = obj else {
        if cc.only_if_cached {
            return Found::OnlyIfCached;
        }
        let fwd = if client_refresh {
            Forwarded::Request
        } else if vary_miss {
            Forwarded::VaryMiss
        } else {
            Forwarded::Miss
        };
        return Found::Miss { variant, fwd };
    };
    let head = cache.store.bytes(obj.head.clone());
    let times = Stored {
        request_time: obj.meta.requested,
        response_time: obj.meta.stored,
    };
    let body_len = obj.body.end - obj.body.start;
    let found = with_response_fields(head, |status, stored| {
        let j = judge(&cc, stored, times, now);
        match j.serve {
            Freshness::Fresh => Some(plan(
                req, head, status, stored, body_len, j.age, j.ttl, method, &cache.via,
            )),
            Freshness::Stale if cc.only_if_cached => None,
            Freshness::Stale => {
                let mut up = Vec::with_capacity(upstream_head.len() + 128);
                // A HEAD is not revalidated: its answer could not refresh the body.
                let validators = (*method != Method::Head).then_some(stored);
                upstream_request(upstream_head, validators, &mut up);
                Some(Err(up))
            }
        }
    });
    match found {
        Some(Some(Ok(plan))) => Found::Hit(plan, obj),
        Some(Some(Err(upstream_head))) => Found::Revalidate {
            obj,
            variant,
            upstream_head,
            fwd: if client_refresh {
                Forwarded::Request
            } else {
                Forwarded::Stale
            },
        },
        Some(None) => Found::OnlyIfCached,
        // A stored head larder cannot read: treat it as absent; the response replaces it.
        None => Found::Miss {
            variant,
            fwd: Forwarded::Miss,
        },
    }
}

/// Plans the answer to `req` from a stored response: 304 for a client's own
/// matching conditional, 206/416 for a Range (GET only), else the whole response;
/// HEAD gets the head alone.
#[allow(clippy::too_many_arguments)]
fn plan(
    req: &[Header<'_>],
    stored_head: &[u8],
    status: u16,
    stored: &[Header<'_>],
    len: u64,
    age: u64,
    ttl: u64,
    method: &Method,
    via: &ViaName,
) -> Result<Plan, Vec<u8>> {
    let mut head = Vec::with_capacity(stored_head.len() + 160);
    let head_only = *method == Method::Head;
    if status == 200 && client_conditional(req, stored) {
        push_served_head(
            &mut head,
            stored_head,
            Some(b"HTTP/1.1 304 Not Modified"),
            age,
            via,
        );
        return Ok(Plan {
            head,
            status: 304,
            body: 0..0,
            result: ResultCode::ImsHit,
            ttl,
        });
    }
    let range = if status == 200 && !head_only {
        range_answer(req, stored, len)
    } else {
        RangeAnswer::Full
    };
    let (line, body, status): (Option<&[u8]>, Range<u64>, u16) = match range {
        RangeAnswer::Full => (None, 0..len, status),
        RangeAnswer::Partial { start, end } => {
            (Some(b"HTTP/1.1 206 Partial Content"), start..end, 206)
        }
        RangeAnswer::Unsatisfiable => (Some(b"HTTP/1.1 416 Range Not Satisfiable"), 0..0, 416),
    };
    push_served_head(&mut head, stored_head, line, age, via);
    push_content_range(&mut head, &range, len);
    // RFC 9110 §8.6: never a Content-Length in a 204 (its body is empty anyway).
    if status != 204 {
        head.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut head, body.end - body.start);
        head.extend_from_slice(b"\r\n");
    }
    Ok(Plan {
        head,
        status,
        body: if head_only { 0..0 } else { body },
        result: ResultCode::Hit,
        ttl,
    })
}

/// The request for revalidating `stored` (`Some`), or for fetching a miss to store
/// it (`None`): the request as forwarded minus the client's own conditionals (larder
/// needs the whole response, and answers those itself); for a revalidation also
/// minus Range, plus the stored validators.
fn upstream_request(upstream_head: &[u8], stored: Option<&[Header<'_>]>, out: &mut Vec<u8>) {
    const CONDITIONALS: [&[u8]; 4] = [
        b"if-modified-since",
        b"if-none-match",
        b"if-match",
        b"if-unmodified-since",
    ];
    const RANGE: [&[u8]; 2] = [b"if-range", b"range"];
    let end = upstream_head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(upstream_head.len(), |p| p + 2);
    let lines = upstream_head
        .get(..end)
        .unwrap_or_default()
        .split_inclusive(|&b| b == b'\n');
    for (i, line) in lines.enumerate() {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        let dropped = CONDITIONALS.iter().any(|d| d.eq_ignore_ascii_case(name))
            || (stored.is_some() && RANGE.iter().any(|d| d.eq_ignore_ascii_case(name)));
        if i == 0 || !dropped {
            out.extend_from_slice(line);
        }
    }
    if let Some(stored) = stored {
        revalidation_fields(stored, out);
    }
    out.extend_from_slice(b"\r\n");
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

/// `Cache-Status` for a forwarded response: what goes in it, kept as plain values so
/// that the common response allocates nothing for it.
#[derive(Debug, Clone, Copy)]
pub struct ForwardedStatus {
    fwd: Forwarded,
    fwd_status: Option<u16>,
    stored: bool,
}

impl ForwardedStatus {
    fn new(c: &CacheEx, fwd_status: Option<u16>) -> ForwardedStatus {
        ForwardedStatus {
            fwd: c.fwd,
            fwd_status,
            stored: c.stored,
        }
    }

    /// The field line, `Cache-Status: larder; fwd=...\r\n`.
    pub fn write(&self, out: &mut OutBuf) {
        let mut line = [0u8; 96];
        let mut at = 0;
        let mut put = |piece: &[u8]| {
            if let Some(dst) = line.get_mut(at..at + piece.len()) {
                dst.copy_from_slice(piece);
                at += piece.len();
            }
        };
        put(b"Cache-Status: larder; fwd=");
        put(self.fwd.as_str().as_bytes());
        if let Some(status) = self.fwd_status {
            put(b"; fwd-status=");
            let mut digits = [0u8; 20];
            put(crate::http::decimal(u64::from(status), &mut digits));
        }
        if self.stored {
            put(b"; stored");
        }
        put(b"\r\n");
        out.push(line.get(..at).unwrap_or_default());
    }
}

/// What to do with a final response head from upstream.
pub enum OnResponse {
    /// Relay it; append this Cache-Status line to the head (none when the cache had no
    /// part in the request).
    Relay(Option<ForwardedStatus>),
    /// A 304 refreshed the stale entry: the head for the client is queued and the body
    /// comes from the map (`ex.cache.serve`).
    Serve,
}

/// Decides what the cache does with the final response `r` to the exchange: on a 304
/// for a revalidation, refresh the entry and plan the answer from it; otherwise
/// invalidate (unsafe methods), or begin storing it (admitted, storable), and give
/// the Cache-Status line to relay with it.
///
/// `out` and `eof` are the client connection's output buffer and half-close flag.
pub fn response_head(
    cache: &mut Cache,
    ex: &mut Exchange,
    out: &mut OutBuf,
    eof: bool,
    r: &Response,
) -> OnResponse {
    let Some(c) = ex.cache.as_mut() else {
        return OnResponse::Relay(None);
    };
    let now = cache.now;
    if c.unsafe_method {
        if (200..400).contains(&r.status) {
            invalidate(cache, c, ex.target.url(), &r.client_head);
        }
        return OnResponse::Relay(Some(ForwardedStatus::new(c, None)));
    }
    let client_head = c.client_head.take();
    let req_head = client_head.as_deref().unwrap_or(&ex.upstream_head);
    if r.status == 304 && c.stale.is_some() {
        if let Some(plan) = refresh(cache, c, req_head, &ex.method, r, now) {
            let mut status = b"Cache-Status: larder; fwd=".to_vec();
            status.extend_from_slice(c.fwd.as_str().as_bytes());
            status.extend_from_slice(b"; fwd-status=304\r\n");
            ex.status = plan.status;
            // The 304 has no Content-Type; the stored head the client gets has.
            ex.content_type = super::forward::content_type(&plan.head);
            c.result = if c.fwd == Forwarded::Request {
                ResultCode::ClientRefreshMiss
            } else {
                ResultCode::RefreshUnmodified
            };
            queue_head(ex, out, eof, plan.head, &status);
            return OnResponse::Serve;
        }
    }
    let fwd_status = c.stale.is_some().then_some(r.status);
    if let Some(old) = c.stale.take() {
        cache.store.unpin(&old);
    }
    if c.admit {
        // Most responses that cannot be stored are known so from their fields alone,
        // checked while they were parsed: the request is not looked at again, and no
        // stored head is built for them.
        c.stored = match r.not_storable {
            Some(why) => {
                debug!("not stored: {why}");
                false
            }
            None => with_request_fields(req_head, |req| begin_fill(cache, c, req, r, now))
                .unwrap_or(false),
        };
        // A 206 or 304 answers this request's Range or conditional, not the URL:
        // it says nothing about whether the URL's full response can be stored.
        if c.fill.is_some() {
            cache.uncacheable.clear(c.url_hash);
        } else if !matches!(r.status, 206 | 304) {
            cache.uncacheable.mark(c.url_hash, now);
        }
    }
    if c.fill.is_none() {
        // Nothing will be stored: those waiting fetch on their own now.
        cache.land(c, None);
    }
    OnResponse::Relay(Some(ForwardedStatus::new(c, fwd_status)))
}

/// Merges a 304 into the stale entry (RFC 9111 §4.3.4), stores the result, and plans
/// the answer to the client from it. `None` when the stored head cannot be read
/// (the 304 is then relayed as is).
fn refresh(
    cache: &mut Cache,
    c: &mut CacheEx,
    upstream_head: &[u8],
    method: &Method,
    r: &Response,
    now: u64,
) -> Option<Plan> {
    let old = c.stale.clone()?;
    let old_head = cache.store.bytes(old.head.clone()).to_vec();
    // The 304 has a Date: forwarding adds one when the origin left it out, so the
    // refreshed entry ages from the revalidation, not from the old Date.
    // Without this larder's Via: the refreshed head is stored, and whoever serves it
    // adds their own.
    let not_modified = stored_head(&r.client_head, &cache.via);
    let mut new_head = Vec::with_capacity(old_head.len() + 64);
    with_response_fields(&not_modified, |_, f| {
        refresh_head(&old_head, f, &mut new_head)
    })?;
    let times = Stored {
        request_time: c.requested,
        response_time: now,
    };
    let expires = with_response_fields(&new_head, |_, f| expires_at(f, times))?;
    let meta = Meta {
        requested: c.requested,
        stored: now,
        expires,
    };
    let obj = match cache.store.refresh(&old, c.key(), &new_head, meta) {
        Ok(new) => {
            cache.store.unpin(&old);
            cache.store.pin(&new);
            c.stale = None;
            new
        }
        Err(e) => {
            // Serve the old body with the new head anyway; the entry stays as it was.
            cache.trouble("refresh of a cached entry not stored", &e);
            c.stale = None;
            old
        }
    };
    let len = obj.body.end - obj.body.start;
    let plan = with_request_fields(upstream_head, |req| {
        with_response_fields(&new_head, |status, stored| {
            let age = crate::http::freshness::current_age(stored, times, now);
            let j = judge(&CacheControl::default(), stored, times, now);
            plan(
                req, &new_head, status, stored, len, age, j.ttl, method, &cache.via,
            )
        })
    })
    .flatten()
    .and_then(Result::ok);
    let Some(plan) = plan else {
        cache.store.unpin(&obj);
        return None;
    };
    c.serve = Some(Serving {
        pos: obj.body.start + plan.body.start,
        end: obj.body.start + plan.body.end,
        obj: Some(obj),
    });
    Some(plan)
}

fn with_blank_line(head: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(head.len() + 2);
    h.extend_from_slice(head);
    h.extend_from_slice(b"\r\n");
    h
}

/// Begins storing `r` if RFC 9111 allows it; true if a fill was begun.
fn begin_fill(
    cache: &mut Cache,
    c: &mut CacheEx,
    req: &[Header<'_>],
    r: &Response,
    now: u64,
) -> bool {
    let head = stored_head(&r.client_head, &cache.via);
    let body_len = match r.body {
        BodyKind::Length(n) => Some(n),
        BodyKind::None => Some(0),
        BodyKind::Chunked | BodyKind::Close => None,
    };
    let begun = with_response_fields(&head, |status, resp| {
        if let Err(why) = storable(&Method::Get, status, req, resp) {
            debug!("not stored: {why}");
            return None;
        }
        let times = Stored {
            request_time: c.requested,
            response_time: now,
        };
        let meta = Meta {
            requested: c.requested,
            stored: now,
            expires: expires_at(resp, times),
        };
        let mut variant = None;
        if let Some(marker) = variants_marker(resp) {
            let mut key = c.url.to_vec();
            key.push(0);
            vary_key(resp, req, &mut key).ok()?;
            put_marker(cache, &c.url, resp, &marker, meta).ok()?;
            variant = Some(key);
        }
        let key = variant.as_deref().unwrap_or(&c.url);
        match cache.store.begin(key, &head, meta, body_len) {
            Ok(fill) => Some((variant, fill)),
            Err(e) => {
                cache.trouble("not stored", &e);
                None
            }
        }
    })
    .flatten();
    match begun {
        Some((variant, fill)) => {
            // Waiters can read a body of known length as it arrives, unless Vary
            // may give them another variant.
            if let (true, BodyKind::Length(len)) = (c.leads && variant.is_none(), r.body) {
                cache
                    .flights
                    .streaming(&c.url, &head, fill.body_start(), len);
            }
            c.variant = variant;
            c.fill = Some(fill);
            // Only a body of known length is known to fit: a chunked or close-delimited
            // one may still turn out too large, so its head does not claim `stored`.
            body_len.is_some()
        }
        None => false,
    }
}

/// Stores the variants marker under the URL unless the one there names the same
/// fields already.
fn put_marker(
    cache: &mut Cache,
    url: &[u8],
    resp: &[Header<'_>],
    marker: &[u8],
    meta: Meta,
) -> Result<(), CacheError> {
    if let Some(obj) = cache.store.lookup(url) {
        let head = cache.store.bytes(obj.head);
        if marker_vary(head).is_some_and(|v| same_vary(resp, v)) {
            return Ok(());
        }
    }
    let fill = cache.store.begin(url, marker, meta, Some(0))?;
    cache.store.commit(fill).map(|_| ())
}

/// Removes the entries an unsafe request may have changed (RFC 9111 §4.4): its URL,
/// and the Location and Content-Location URLs of the response when on the same host.
fn invalidate(cache: &mut Cache, c: &CacheEx, url: &str, client_head: &[u8]) {
    if let Err(e) = cache.store.invalidate(&c.url) {
        cache.trouble("invalidation not written", &e);
    }
    let Ok(base) = parse_absolute(url) else {
        return;
    };
    let head = with_blank_line(client_head);
    let others: Vec<Vec<u8>> = with_response_fields(&head, |_, fields| {
        fields
            .iter()
            .filter(|h| {
                h.name.eq_ignore_ascii_case("location")
                    || h.name.eq_ignore_ascii_case("content-location")
            })
            .filter_map(|h| std::str::from_utf8(h.value.trim_ascii()).ok())
            .filter_map(|v| {
                if v.starts_with('/') && !v.starts_with("//") {
                    Some(format!("http://{}{v}", base.host_header()).into_bytes())
                } else {
                    let t = parse_absolute(v).ok()?;
                    (t.host_header() == base.host_header()).then(|| t.display_url().into_bytes())
                }
            })
            .collect()
    })
    .unwrap_or_default();
    for other in others {
        if let Err(e) = cache.store.invalidate(&other) {
            cache.trouble("invalidation not written", &e);
        }
    }
}

/// Writes relayed body bytes into the exchange's fill, if any; a failure drops the
/// fill (the response is still relayed whole). Readers of the flight are told.
pub struct Sink<'a> {
    cache: &'a mut Cache,
    c: Option<&'a mut CacheEx>,
}

impl<'a> Sink<'a> {
    /// A sink for the exchange `ex`: it writes only if `ex` has a fill.
    pub fn new(cache: &'a mut Cache, ex: &'a mut Option<CacheEx>) -> Sink<'a> {
        let c = ex.as_mut().filter(|c| c.fill.is_some());
        Sink { cache, c }
    }

    /// Writes `bytes` to the fill; on a write error drops the fill.
    pub fn put(&mut self, bytes: &[u8]) {
        let cache = &mut *self.cache;
        let Some(c) = self.c.as_deref_mut() else {
            return;
        };
        let Some(fill) = c.fill.as_mut() else {
            return;
        };
        match cache.store.write(fill, bytes) {
            Ok(()) if c.leads => cache.flights.progress(&c.url, fill.written()),
            Ok(()) => {}
            Err(e) => {
                cache.trouble("fill dropped", &e);
                if let Some(fill) = c.fill.take() {
                    cache.store.abort(fill);
                }
                cache.land(c, None);
            }
        }
    }
}

/// The response body is complete: commit the fill, which makes the object visible.
pub fn body_complete(cache: &mut Cache, ex: &mut Option<CacheEx>) {
    let Some(c) = ex.as_mut() else {
        return;
    };
    let mut stored = None;
    if let Some(fill) = c.fill.take() {
        match cache.store.commit(fill) {
            Ok(obj) => stored = Some(obj),
            Err(e) => cache.trouble("fill not committed", &e),
        }
    }
    cache.land(c, stored.as_ref());
}

/// The response will not complete (reset, truncated): drop the fill now.
pub fn body_failed(cache: &mut Cache, ex: &mut Option<CacheEx>) {
    let Some(c) = ex.as_mut() else {
        return;
    };
    if let Some(fill) = c.fill.take() {
        cache.store.abort(fill);
    }
    cache.land(c, None);
}

/// Ends the exchange's use of the cache: aborts an unfinished fill, unpins what it
/// pinned, leaves its flight. Called through [`super::end_exchange`].
pub fn release(cache: &mut Cache, ex: &mut Exchange) {
    let Some(c) = ex.cache.as_mut() else {
        return;
    };
    if let Some(fill) = c.fill.take() {
        cache.store.abort(fill);
    }
    if let Some(old) = c.stale.take() {
        cache.store.unpin(&old);
    }
    if let Some(obj) = c.serve.take().and_then(|s| s.obj) {
        cache.store.unpin(&obj);
    }
    cache.flights.leave(&c.url, c.me, &mut cache.store);
    cache.land(c, None);
}

#[cfg(test)]
mod tests {
    use super::upstream_request;
    use crate::http::testing::fields;

    const HEAD: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"c\"\r\nRange: bytes=0-1\r\nif-modified-since: x\r\nAccept: */*\r\n\r\n";

    #[test]
    fn a_miss_to_store_drops_the_clients_conditionals_but_keeps_range() {
        let mut out = Vec::new();
        upstream_request(HEAD, None, &mut out);
        assert_eq!(
            out,
            b"GET /a HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nAccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn a_revalidation_sends_the_stored_validators_only() {
        let stored = fields(&[
            ("ETag", "\"s\""),
            ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ]);
        let mut out = Vec::new();
        upstream_request(HEAD, Some(&stored), &mut out);
        assert_eq!(
            out,
            &b"GET /a HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nIf-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT\r\nIf-None-Match: \"s\"\r\n\r\n"[..]
        );
    }
}
