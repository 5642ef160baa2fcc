//! Looking a request up: [`consult`] decides whether the request is answered from
//! the store (a plan: [`Answer`]), refused (only-if-cached), made to wait for another
//! request's fetch (a flight), or forwarded, with `CacheEx` set for the response.
//!
//! A stale entry whose `stale-while-revalidate` covers it answers at once, and one
//! revalidation of it runs behind the client's back (RFC 5861 §3): consult registers
//! the key ([`Cache::refreshing`]) and says so ([`Consulted::ServeStale`]); the
//! connection code starts that revalidation as a request of larder's own, which
//! consults again as [`Asking::background`] and is never answered stale. While it runs
//! (or a fetch of the URL is under way) other requests the entry may answer stale get
//! it without starting another; above [`super::BACKGROUND_MAX`] of them, or while
//! larder stops, a request revalidates in the foreground as without the directive.

use std::ops::Range;

use httparse::Header;

use super::flights::Member;
use super::{Cache, CacheEx, Serving};
use crate::access_log::ResultCode;
use crate::cache::ObjectRef;
use crate::http::cache_control::CacheControl;
use crate::http::cache_status::Forwarded;
use crate::http::cached::{
    judge, marker_vary, push_served_head, with_request_fields, with_response_fields,
};
use crate::http::conditional::{client_conditional, revalidation_fields};
use crate::http::freshness::{freshness_lifetime, may_serve_while_revalidating, Freshness, Stored};
use crate::http::range::{push_content_range, range_answer, range_start, RangeAnswer};
use crate::http::target::Target;
use crate::http::vary::vary_key;
use crate::http::{push_decimal, Method, ViaName};

/// What [`consult`] needs of the request, as the connection holds it.
pub struct Asking<'a> {
    /// The client's method.
    pub method: &'a Method,
    /// The request target (its URL is the store key).
    pub target: &'a Target,
    /// The head to send upstream: a revalidation, or a miss fetched to be stored,
    /// replaces it (the client's own is kept in `CacheEx` for the response).
    pub upstream_head: &'a mut Vec<u8>,
    /// The request announced a body: it is never answered from the cache.
    pub request_has_body: bool,
    /// The request has a Cache-Control or Pragma field.
    pub req_directives: bool,
    /// The request has an `If-…` field.
    pub req_conditional: bool,
    /// The request has a Range field.
    pub req_range: bool,
    /// A revalidation may be started behind this request (false while larder stops).
    pub may_refresh_behind: bool,
    /// This is larder's own revalidation behind a stale answer: it only revalidates
    /// (never answered from the store, never a fetch of a missing entry).
    pub background: bool,
}

/// A response planned from a stored one, for the connection to queue.
#[derive(Debug)]
pub struct Answer {
    /// The head lines for the client, from the status line on: no Cache-Status,
    /// no Connection, no blank line yet.
    pub head: Vec<u8>,
    /// The Cache-Status the head gets.
    pub cache_status: AnswerStatus,
    /// The status sent, for the access log.
    pub status: u16,
    /// The body: the object, pinned, and the bytes of it to write.
    pub serving: Serving,
}

/// The Cache-Status of a response answered from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerStatus {
    /// A fresh hit, with the entry's remaining freshness (seconds).
    Hit {
        /// Seconds the entry stays fresh.
        ttl: u64,
    },
    /// The request waited for another's fetch and is answered from what it stored.
    Collapsed,
    /// A revalidation brought a 304: the refreshed entry answers (`fwd` says why it
    /// was revalidated).
    Refreshed(Forwarded),
    /// The revalidation failed and the stale entry answers (`fwd_status`: the origin's
    /// status, when it answered).
    StaleOnError {
        /// The origin's status (5xx), when it answered.
        fwd_status: Option<u16>,
    },
    /// The stale entry answers at once while it is revalidated in the background
    /// (`stale-while-revalidate`), `stale_by` seconds past its freshness (a negative
    /// `ttl`, RFC 9211 §2.4).
    StaleWhileRevalidate {
        /// Seconds past its freshness.
        stale_by: u64,
    },
}

impl AnswerStatus {
    /// Appends the field line, `Cache-Status: larder; ...\r\n`, to `head`.
    pub fn push_to(self, head: &mut Vec<u8>) {
        match self {
            AnswerStatus::Hit { ttl } => {
                head.extend_from_slice(b"Cache-Status: larder; hit; ttl=");
                push_decimal(head, ttl);
                head.extend_from_slice(b"\r\n");
            }
            AnswerStatus::Collapsed => {
                head.extend_from_slice(b"Cache-Status: larder; fwd=miss; collapsed\r\n");
            }
            AnswerStatus::Refreshed(fwd) => {
                head.extend_from_slice(b"Cache-Status: larder; fwd=");
                head.extend_from_slice(fwd.as_str().as_bytes());
                head.extend_from_slice(b"; fwd-status=304\r\n");
            }
            AnswerStatus::StaleOnError { fwd_status } => {
                head.extend_from_slice(b"Cache-Status: larder; hit; fwd=stale");
                if let Some(status) = fwd_status {
                    head.extend_from_slice(b"; fwd-status=");
                    push_decimal(head, u64::from(status));
                }
                head.extend_from_slice(b"\r\n");
            }
            AnswerStatus::StaleWhileRevalidate { stale_by } => {
                head.extend_from_slice(b"Cache-Status: larder; hit; ttl=-");
                push_decimal(head, stale_by);
                head.extend_from_slice(b"; detail=stale-while-revalidate\r\n");
            }
        }
    }
}

/// The outcome of [`consult`].
#[derive(Debug)]
pub enum Consulted {
    /// Go upstream (the exchange's `CacheEx` says how the response is to be treated).
    Forward,
    /// Answer from the store: queue this head; the body comes from the map
    /// (`Answer::serving`).
    Serve(Answer),
    /// Nothing usable and the client forbade going upstream: answer 504.
    OnlyIfCached,
    /// Another request is fetching the URL to store it: wait until its flight ends,
    /// then consult again with `resumed`.
    Wait,
    /// The stale entry answers at once (`stale-while-revalidate`), as `Serve`; with
    /// `refresh`, the key of the entry, which the caller revalidates in the
    /// background (registered in [`Cache::refreshing`] until [`Cache::refreshed`]).
    ServeStale {
        /// The stale answer.
        answer: Answer,
        /// Start a revalidation of this key behind the answer.
        refresh: Option<Vec<u8>>,
    },
    /// A background revalidation ([`Asking::background`]) has nothing left to do: the
    /// entry is fresh again, or gone.
    Settled,
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
    /// Stale, and its `stale-while-revalidate` lets it answer now (`stale`, planned,
    /// with how stale it is) while it is revalidated with `upstream_head`. (Boxed:
    /// every lookup moves a `Found`, and few are this.)
    StaleWhileRevalidate {
        obj: ObjectRef,
        variant: Option<Vec<u8>>,
        upstream_head: Vec<u8>,
        stale: Box<(Plan, u64)>,
    },
    Miss {
        variant: Option<Vec<u8>>,
        fwd: Forwarded,
    },
    OnlyIfCached,
}

/// A response planned from a stored one: the head for the client (no blank line,
/// no Cache-Status or Connection yet) and the body bytes to send.
pub(super) struct Plan {
    pub(super) head: Vec<u8>,
    pub(super) status: u16,
    /// Body range relative to the stored body.
    pub(super) body: Range<u64>,
    pub(super) result: ResultCode,
    pub(super) ttl: u64,
}

/// Looks the request `ask` up for the exchange whose cache part is `ex` (set here:
/// `None` only for CONNECT). Returns what the connection must do.
///
/// `waiter` names the connection, to wake it when it has to wait. `resumed`: the
/// request waited for another's fetch (see [`Consulted::Wait`]); it is not counted
/// for admission again and does not wait a second time.
pub fn consult(
    cache: &mut Cache,
    ex: &mut Option<CacheEx>,
    ask: Asking<'_>,
    waiter: Member,
    resumed: bool,
) -> Consulted {
    // A request that waited may have had its conditionals taken out for the fetch
    // it would have made: it is looked up again as the client sent it.
    if let Some(head) = ex.as_mut().and_then(|c| c.client_head.take()) {
        *ask.upstream_head = head;
    }
    let method = ask.method;
    if *method == Method::Connect {
        return Consulted::Forward;
    }
    let url = ask.target.url_bytes();
    let now = cache.now;
    if !matches!(method, Method::Get | Method::Head) || ask.request_has_body {
        let mut c = CacheEx::new(url, Forwarded::Method);
        c.unsafe_method = !matches!(
            method,
            Method::Get | Method::Head | Method::Options | Method::Trace
        );
        *ex = Some(c);
        return Consulted::Forward;
    }
    let url_hash = cache.store.key_hash(&url);
    let admit = *method == Method::Get
        && (resumed || ask.background || cache.admission.record(url_hash, now));
    let plain_miss = || Found::Miss {
        variant: None,
        fwd: Forwarded::Miss,
    };
    // Nothing stored and no directives: a plain miss, known without parsing the
    // request's fields again (the common pass-through request).
    let found = if !cache.store.may_hold(url_hash) && !ask.req_directives {
        if cache.offline {
            Found::OnlyIfCached
        } else {
            plain_miss()
        }
    } else {
        let head: &[u8] = ask.upstream_head;
        let behind = !ask.background && !cache.offline;
        with_request_fields(head, |req| {
            let noted = Noted {
                directives: ask.req_directives,
                conditional: ask.req_conditional,
                range: ask.req_range,
            };
            look(cache, &url, url_hash, req, noted, method, head, now, behind)
        })
        .unwrap_or_else(plain_miss)
    };
    if ask.background && !matches!(found, Found::Revalidate { .. }) {
        // Larder's own revalidation only revalidates: what is fresh again needs
        // nothing, what is gone is fetched by the next request that wants it.
        return Consulted::Settled;
    }
    // Built where it stays: a `CacheEx` is large, and moving one in costs more than
    // building it in place.
    let c = ex.insert(CacheEx::new(url, Forwarded::Miss));
    c.url_hash = url_hash;
    c.background = ask.background;
    c.admit = admit;
    c.requested = now;
    c.me = waiter;
    match found {
        Found::Hit(plan, obj) => {
            cache.store.pin(&obj);
            c.result = plan.result;
            let serving = Serving {
                pos: obj.body.start + plan.body.start,
                end: obj.body.start + plan.body.end,
                obj: Some(obj),
            };
            Consulted::Serve(Answer {
                head: plan.head,
                cache_status: if resumed {
                    AnswerStatus::Collapsed
                } else {
                    AnswerStatus::Hit { ttl: plan.ttl }
                },
                status: plan.status,
                serving,
            })
        }
        Found::StaleWhileRevalidate {
            obj,
            variant,
            upstream_head,
            stale,
        } => {
            let key = variant.as_deref().unwrap_or(&c.url);
            let running = cache.refreshing.contains(key) || cache.flights.is_open(&c.url);
            let start = !running
                && ask.may_refresh_behind
                && cache.refreshing.len() < super::BACKGROUND_MAX;
            if !running && !start {
                // Too many revalidations behind answers already, or larder is
                // stopping: this one is the client's, as without the directive.
                let up = (upstream_head, ask.upstream_head);
                let consulted = revalidate(cache, c, method, obj, variant, up, Forwarded::Stale);
                cut_to_range(ex, method, ask.req_range);
                return consulted;
            }
            let refresh = start.then(|| key.to_vec());
            if let Some(key) = &refresh {
                cache.refreshing.insert(key.clone());
            }
            let (stale, stale_by) = *stale;
            cache.store.pin(&obj);
            c.variant = variant;
            c.fwd = Forwarded::Stale;
            c.result = ResultCode::StaleHit;
            let serving = Serving {
                pos: obj.body.start + stale.body.start,
                end: obj.body.start + stale.body.end,
                obj: Some(obj),
            };
            let answer = Answer {
                head: stale.head,
                cache_status: AnswerStatus::StaleWhileRevalidate { stale_by },
                status: stale.status,
                serving,
            };
            Consulted::ServeStale { answer, refresh }
        }
        Found::Revalidate {
            obj,
            variant,
            upstream_head,
            fwd,
        } => {
            let up = (upstream_head, ask.upstream_head);
            let consulted = revalidate(cache, c, method, obj, variant, up, fwd);
            cut_to_range(ex, method, ask.req_range);
            consulted
        }
        Found::Miss { variant, fwd } => {
            c.variant = variant;
            c.fwd = fwd;
            if fwd == Forwarded::Request {
                c.result = ResultCode::ClientRefreshMiss;
            }
            // A Range from an offset below `--range-whole-below` fetches the whole
            // object, to store it; not for a URL whose last response was not stored.
            let whole = admit
                && ask.req_range
                && cache.range_whole_below > 0
                && !cache.uncacheable.marked(url_hash, now)
                && starts_below(ask.upstream_head, cache.range_whole_below);
            if whole || (admit && ask.req_conditional) {
                // A client's If-Modified-Since on a miss would bring a 304, which
                // cannot be stored: ask for the whole response (a 200 is a valid
                // answer to a conditional request). A whole fetch for a Range goes
                // without Range and If-Range as well; the client's part is cut from
                // the 200 at its head (`OnResponse::Part`).
                let mut up = Vec::with_capacity(ask.upstream_head.len());
                upstream_request(ask.upstream_head, None, whole, &mut up);
                c.client_head = Some(std::mem::replace(ask.upstream_head, up));
                c.range_dropped = whole;
            }
            // Only fetches that will be stored are worth waiting for; a resumed
            // request fetches on its own (the flight it waited for stored nothing),
            // and so does one for a URL whose last response was not stored.
            if admit && !resumed && !cache.uncacheable.marked(url_hash, now) {
                if !cache.flights.open(&c.url) {
                    cache.flights.join(&c.url, waiter);
                    return Consulted::Wait;
                }
                c.leads = true;
            }
            Consulted::Forward
        }
        Found::OnlyIfCached => Consulted::OnlyIfCached,
    }
}

/// Sends the request upstream to revalidate the stale entry `obj` (pinned while it
/// runs): `up` is the revalidation's head and the request's, which it replaces (the
/// client's is kept for the response).
#[allow(clippy::too_many_arguments)]
fn revalidate(
    cache: &mut Cache,
    c: &mut CacheEx,
    method: &Method,
    obj: ObjectRef,
    variant: Option<Vec<u8>>,
    up: (Vec<u8>, &mut Vec<u8>),
    fwd: Forwarded,
) -> Consulted {
    let (upstream_head, request_head) = up;
    cache.store.pin(&obj);
    c.stale = Some(obj);
    c.variant = variant;
    c.fwd = fwd;
    // It was admitted once: its replacement need not earn admission again.
    // (A HEAD's answer has no body: it never replaces the stored GET.)
    c.admit = *method == Method::Get;
    c.result = if fwd == Forwarded::Request {
        ResultCode::ClientRefreshMiss
    } else {
        ResultCode::RefreshModified
    };
    c.client_head = Some(std::mem::replace(request_head, upstream_head));
    Consulted::Forward
}

/// A GET's revalidation goes without the client's Range: a new 200 is cut to the
/// client's range as it is relayed.
fn cut_to_range(ex: &mut Option<CacheEx>, method: &Method, req_range: bool) {
    if let Some(c) = ex.as_mut() {
        c.range_dropped = *method == Method::Get && req_range;
    }
}

/// What the request's parse noted of its fields (see [`Asking`]): a lookup reads
/// the fields only for what is there.
#[derive(Clone, Copy)]
struct Noted {
    /// A Cache-Control or Pragma field.
    directives: bool,
    /// An `If-…` field.
    conditional: bool,
    /// A Range field.
    range: bool,
}

/// `behind`: a stale entry may answer at once while it is revalidated in the
/// background, where its `stale-while-revalidate` allows.
#[allow(clippy::too_many_arguments)]
fn look(
    cache: &mut Cache,
    url: &[u8],
    url_hash: u64,
    req: &[Header<'_>],
    noted: Noted,
    method: &Method,
    upstream_head: &[u8],
    now: u64,
    behind: bool,
) -> Found {
    let mut cc = if noted.directives {
        CacheControl::from_request(req)
    } else {
        CacheControl::default()
    };
    if cache.offline {
        // `--offline`: whatever is stored answers, fresh or stale, unless the response
        // forbids serving it stale; nothing goes to the origin. A client's own demand
        // for a fresher copy cannot be met, so it is not asked.
        cc = CacheControl {
            only_if_cached: true,
            max_stale: Some(u64::MAX),
            ..CacheControl::default()
        };
    }
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
    // The fields `plan` reads are the conditionals and Range: a request with none of
    // them plans as one without fields, and its fields are not searched again.
    let req = if noted.conditional || noted.range {
        req
    } else {
        &[]
    };
    let found = with_response_fields(head, |status, stored| {
        let j = judge(&cc, stored, times, now);
        match j.freshness {
            Freshness::Fresh => plan(
                req, head, status, stored, body_len, j.age, j.ttl, method, &cache.via,
            )
            .ok()
            .map(Judged::Hit),
            Freshness::Stale if cc.only_if_cached => Some(Judged::OnlyIfCached),
            Freshness::Stale => {
                let mut up = Vec::with_capacity(upstream_head.len() + 128);
                // A HEAD is not revalidated: its answer could not refresh the body.
                let validators = (*method != Method::Head).then_some(stored);
                upstream_request(upstream_head, validators, false, &mut up);
                // Only a GET starts a revalidation behind its answer: a HEAD's could
                // not refresh the body.
                let lifetime = freshness_lifetime(stored, times.response_time);
                let stale = (behind
                    && *method == Method::Get
                    && may_serve_while_revalidating(&cc, stored, j.age, lifetime))
                .then(|| {
                    plan(
                        req, head, status, stored, body_len, j.age, 0, method, &cache.via,
                    )
                    .ok()
                })
                .flatten()
                .map(|p| Box::new((p, j.age.saturating_sub(lifetime))));
                Some(Judged::Stale(up, stale))
            }
        }
    });
    match found {
        Some(Some(Judged::Hit(plan))) => Found::Hit(plan, obj),
        Some(Some(Judged::Stale(upstream_head, Some(stale)))) => Found::StaleWhileRevalidate {
            obj,
            variant,
            upstream_head,
            stale,
        },
        Some(Some(Judged::Stale(upstream_head, None))) => Found::Revalidate {
            obj,
            variant,
            upstream_head,
            fwd: if client_refresh {
                Forwarded::Request
            } else {
                Forwarded::Stale
            },
        },
        Some(Some(Judged::OnlyIfCached)) => Found::OnlyIfCached,
        // A stored head larder cannot read: treat it as absent; the response replaces it.
        Some(None) | None => Found::Miss {
            variant,
            fwd: Forwarded::Miss,
        },
    }
}

/// How a stored entry stands for a request, as [`look`] judged it.
enum Judged {
    /// Fresh enough: answer with this plan.
    Hit(Plan),
    /// Stale and only-if-cached: refuse.
    OnlyIfCached,
    /// Stale: revalidate with this request head; with the answer it may give at
    /// once meanwhile, and how stale it is (`stale-while-revalidate`).
    Stale(Vec<u8>, Option<Box<(Plan, u64)>>),
}

/// Plans the answer to `req` from a stored response: 304 for a client's own
/// matching conditional, 206/416 for a Range (GET only), else the whole response;
/// HEAD gets the head alone.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan(
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

/// Whether the request head `upstream_head` asks for one range that starts below
/// `limit` (see [`range_start`]).
fn starts_below(upstream_head: &[u8], limit: u64) -> bool {
    with_request_fields(upstream_head, |req| {
        range_start(req).is_some_and(|start| start < limit)
    })
    .unwrap_or(false)
}

/// The request for revalidating `stored` (`Some`), or for fetching a miss to store
/// it (`None`): the request as forwarded minus the client's own conditionals (larder
/// needs the whole response, and answers those itself); for a revalidation, or with
/// `drop_range`, also minus Range and If-Range; for a revalidation plus the stored
/// validators.
pub(super) fn upstream_request(
    upstream_head: &[u8],
    stored: Option<&[Header<'_>]>,
    drop_range: bool,
    out: &mut Vec<u8>,
) {
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
            || ((stored.is_some() || drop_range)
                && RANGE.iter().any(|d| d.eq_ignore_ascii_case(name)));
        if i == 0 || !dropped {
            out.extend_from_slice(line);
        }
    }
    if let Some(stored) = stored {
        revalidation_fields(stored, out);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::upstream_request;
    use crate::http::testing::fields;

    const HEAD: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"c\"\r\nRange: bytes=0-1\r\nif-modified-since: x\r\nAccept: */*\r\n\r\n";

    #[test]
    fn a_miss_to_store_drops_the_clients_conditionals_but_keeps_range() {
        let mut out = Vec::new();
        upstream_request(HEAD, None, false, &mut out);
        assert_eq!(
            out,
            b"GET /a HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nAccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn a_whole_fetch_for_a_range_drops_range_and_if_range_too() {
        let head = b"GET /a HTTP/1.1\r\nHost: h\r\nIf-Range: \"c\"\r\nRange: bytes=5-\r\nAccept: */*\r\n\r\n";
        let mut out = Vec::new();
        upstream_request(head, None, true, &mut out);
        assert_eq!(out, b"GET /a HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n");
    }

    #[test]
    fn a_revalidation_sends_the_stored_validators_only() {
        let stored = fields(&[
            ("ETag", "\"s\""),
            ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ]);
        let mut out = Vec::new();
        upstream_request(HEAD, Some(&stored), false, &mut out);
        assert_eq!(
            out,
            &b"GET /a HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nIf-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT\r\nIf-None-Match: \"s\"\r\n\r\n"[..]
        );
    }
}
