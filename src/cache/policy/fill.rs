//! Storing: at the response head, [`response_head`] refreshes a revalidated entry
//! (a 304), invalidates after an unsafe method, or begins a fill, and says whether the
//! client gets the response or its part of it (a whole object fetched for a Range);
//! [`Sink`] writes the relayed body into the fill; [`body_complete`] commits it,
//! [`body_failed`] and [`release`] drop it.

use std::ops::Range;

use httparse::Header;
use log::debug;

use super::lookup::{plan, Answer, AnswerStatus, Plan};
use super::{Cache, CacheEx, Serving};
use crate::access_log::ResultCode;
use crate::cache::{CacheError, Meta};
use crate::http::cache_control::CacheControl;
use crate::http::cache_status::Forwarded;
use crate::http::cached::{
    judge, marker_vary, same_vary, stored_head, variants_marker, with_request_fields,
    with_response_fields,
};
use crate::http::conditional::refresh_head;
use crate::http::freshness::{expires_at, storable, Stored};
use crate::http::range::{push_partial_head, range_answer, RangeAnswer};
use crate::http::response::Response;
use crate::http::target::{parse_absolute, Target};
use crate::http::vary::vary_key;
use crate::http::{BodyKind, Method};

/// `Cache-Status` for a forwarded response: what goes in it, kept as plain values so
/// that the common response allocates nothing for it.
#[derive(Debug, Clone, Copy)]
pub struct ForwardedStatus {
    fwd: Forwarded,
    fwd_status: Option<u16>,
    stored: bool,
}

/// A `Cache-Status` field line.
#[derive(Debug, Clone, Copy)]
pub enum StatusLine {
    /// The line of a response that was neither stored nor a revalidation's, which
    /// `fwd` alone makes: most forwarded responses get one of these, so they are
    /// written out whole rather than put together piece by piece.
    Fixed(&'static str),
    /// Any other line, built on the stack.
    Built {
        /// The line in its first `len` bytes.
        bytes: [u8; 96],
        /// How many bytes of `bytes` it takes.
        len: usize,
    },
}

impl StatusLine {
    /// The line, CRLF included.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            StatusLine::Fixed(line) => line.as_bytes(),
            StatusLine::Built { bytes, len } => bytes.get(..*len).unwrap_or_default(),
        }
    }
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
    pub fn line(&self) -> StatusLine {
        if self.fwd_status.is_some() || self.stored {
            return self.built();
        }
        StatusLine::Fixed(match self.fwd {
            Forwarded::Miss => "Cache-Status: larder; fwd=miss\r\n",
            Forwarded::VaryMiss => "Cache-Status: larder; fwd=vary-miss\r\n",
            Forwarded::Stale => "Cache-Status: larder; fwd=stale\r\n",
            Forwarded::Request => "Cache-Status: larder; fwd=request\r\n",
            Forwarded::Method => "Cache-Status: larder; fwd=method\r\n",
        })
    }

    /// [`Self::line`], put together from its parts whatever they are.
    fn built(&self) -> StatusLine {
        let (mut bytes, mut len) = ([0u8; 96], 0);
        let mut put = |piece: &[u8]| {
            if let Some(dst) = bytes.get_mut(len..len + piece.len()) {
                dst.copy_from_slice(piece);
                len += piece.len();
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
        StatusLine::Built { bytes, len }
    }

    /// Appends the field line to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.line().as_bytes());
    }
}

/// What to do with a final response head from upstream.
#[derive(Debug)]
pub enum OnResponse {
    /// Relay it; append this Cache-Status line to the head (none when the cache had no
    /// part in the request).
    Relay(Option<ForwardedStatus>),
    /// A 304 refreshed the stale entry: queue this head; the body comes from the map
    /// (`Answer::serving`).
    Serve(Answer),
    /// The whole object was fetched for the client's Range (see
    /// [`CacheEx::range_dropped`]): send `head` (206 or 416, no blank line) in place
    /// of the response's own, with the Cache-Status line, and of the body only bytes
    /// `body` (offsets in the body); the rest is read, and stored, all the same.
    Part {
        /// The head for the client, from the status line on, framing included.
        head: Vec<u8>,
        /// Its status, for the access log.
        status: u16,
        /// The body bytes the client gets.
        body: Range<u64>,
        /// The Cache-Status line to append.
        cache_status: ForwardedStatus,
    },
}

/// Decides what the cache does with the final response `r` to the exchange whose
/// cache part is `ex` (`method`, `target` and `upstream_head` are its request's): on
/// a 304 for a revalidation, refresh the entry and plan the answer from it; otherwise
/// invalidate (unsafe methods), or begin storing it (admitted, storable), and give
/// the Cache-Status line to relay with it.
pub fn response_head(
    cache: &mut Cache,
    ex: &mut Option<CacheEx>,
    method: &Method,
    target: &Target,
    upstream_head: &[u8],
    r: &Response,
) -> OnResponse {
    let Some(c) = ex.as_mut() else {
        return OnResponse::Relay(None);
    };
    let now = cache.now;
    if c.unsafe_method {
        if (200..400).contains(&r.status) {
            invalidate(cache, c, target.url(), &r.client_head);
        }
        return OnResponse::Relay(Some(ForwardedStatus::new(c, None)));
    }
    let client_head = c.client_head.take();
    let req_head = client_head.as_deref().unwrap_or(upstream_head);
    if r.status >= 500 && c.stale.is_some() {
        // The origin failed to revalidate: the stale entry may answer instead.
        if let Some(answer) = super::stale_on_error(cache, c, method, req_head, Some(r.status)) {
            return OnResponse::Serve(answer);
        }
    }
    if r.status == 304 && c.stale.is_some() {
        if let Some((plan, serving)) = refresh(cache, c, req_head, method, r, now) {
            c.result = if c.fwd == Forwarded::Request {
                ResultCode::ClientRefreshMiss
            } else {
                ResultCode::RefreshUnmodified
            };
            return OnResponse::Serve(Answer {
                head: plan.head,
                cache_status: AnswerStatus::Refreshed(c.fwd),
                status: plan.status,
                serving,
            });
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
    if c.fill.is_none() && c.background && fwd_status.is_some() && !matches!(r.status, 304 | 500..)
    {
        // A revalidation behind stale answers brought a new response that is not
        // stored: the old one must not go on answering stale in its place.
        if let Err(e) = cache.store.invalidate(c.key()) {
            cache.trouble("invalidation not written", &e);
        }
    }
    if c.fill.is_none() {
        // Nothing will be stored: those waiting fetch on their own now.
        cache.land(c, None);
    }
    let cache_status = ForwardedStatus::new(c, fwd_status);
    if c.range_dropped && r.status == 200 {
        if let Some((head, status, body)) = part(req_head, r) {
            return OnResponse::Part {
                head,
                status,
                body,
                cache_status,
            };
        }
    }
    OnResponse::Relay(Some(cache_status))
}

/// The client's part of the full response `r` to a request whose Range was left out
/// upstream (`req_head` is the request as the client sent it): the head for the
/// client, its status and the body bytes it gets. `None` when the whole response is
/// the answer: a body of unknown length (chunked or ended by the close, whose
/// Content-Range cannot be written before its end: RFC 9110 §14.2 lets a server
/// ignore Range), or a Range the answer ignores ([`range_answer`]: an If-Range the
/// response does not match, say).
fn part(req_head: &[u8], r: &Response) -> Option<(Vec<u8>, u16, Range<u64>)> {
    let BodyKind::Length(len) = r.body else {
        return None;
    };
    let full = with_blank_line(&r.client_head);
    let answer = with_request_fields(req_head, |req| {
        with_response_fields(&full, |_, resp| range_answer(req, resp, len))
    })
    .flatten()?;
    let mut head = Vec::with_capacity(r.client_head.len() + 64);
    let status = push_partial_head(&mut head, &r.client_head, &answer, len)?;
    let body = match answer {
        RangeAnswer::Partial { start, end } => start..end,
        RangeAnswer::Full | RangeAnswer::Unsatisfiable => 0..0,
    };
    Some((head, status, body))
}

/// Merges a 304 into the stale entry (RFC 9111 §4.3.4), stores the result, and plans
/// the answer to the client from it, with its body (the object pinned). `None` when the stored head cannot be read
/// (the 304 is then relayed as is).
fn refresh(
    cache: &mut Cache,
    c: &mut CacheEx,
    upstream_head: &[u8],
    method: &Method,
    r: &Response,
    now: u64,
) -> Option<(Plan, Serving)> {
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
    let serving = Serving {
        pos: obj.body.start + plan.body.start,
        end: obj.body.start + plan.body.end,
        obj: Some(obj),
    };
    Some((plan, serving))
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
/// pinned, leaves its flight. Every path that ends an exchange calls it.
pub fn release(cache: &mut Cache, ex: &mut Option<CacheEx>) {
    let Some(c) = ex.as_mut() else {
        return;
    };
    if let Some(fill) = c.fill.take() {
        cache.store.abort(fill);
    }
    if let Some(old) = c.stale.take() {
        cache.store.unpin(&old);
    }
    cache.flights.leave(&c.url, c.me, &mut cache.store);
    cache.land(c, None);
}

#[cfg(test)]
mod tests {
    use super::{AnswerStatus, ForwardedStatus, StatusLine};
    use crate::http::cache_status::Forwarded;

    /// The lines written out whole are the ones put together from their parts.
    #[test]
    fn fixed_cache_status_lines_are_the_built_ones() {
        use Forwarded::{Method, Miss, Request, Stale, VaryMiss};
        for fwd in [Miss, VaryMiss, Stale, Request, Method] {
            for fwd_status in [None, Some(200)] {
                for stored in [false, true] {
                    let status = ForwardedStatus {
                        fwd,
                        fwd_status,
                        stored,
                    };
                    let line = status.line();
                    let fixed = matches!(line, StatusLine::Fixed(_));
                    assert_eq!(fixed, fwd_status.is_none() && !stored, "{status:?}");
                    assert_eq!(line.as_bytes(), status.built().as_bytes(), "{status:?}");
                }
            }
        }
    }

    #[test]
    fn cache_status_lines_say_what_the_cache_did() {
        let relayed = ForwardedStatus {
            fwd: Forwarded::Stale,
            fwd_status: Some(200),
            stored: true,
        };
        let mut out = Vec::new();
        relayed.write(&mut out);
        assert_eq!(
            out,
            b"Cache-Status: larder; fwd=stale; fwd-status=200; stored\r\n"
        );
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        AnswerStatus::Hit { ttl: 60 }.push_to(&mut head);
        AnswerStatus::Refreshed(Forwarded::Request).push_to(&mut head);
        assert_eq!(
            head,
            &b"HTTP/1.1 200 OK\r\nCache-Status: larder; hit; ttl=60\r\nCache-Status: larder; fwd=request; fwd-status=304\r\n"[..]
        );
    }
}
