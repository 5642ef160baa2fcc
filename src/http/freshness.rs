//! RFC 9111 for a shared cache, without a clock: whether a response may be stored
//! (§3), how long it stays fresh (§4.2.1, §4.2.2), how old it is (§4.2.3) and
//! whether a stored one may answer a request without asking the origin (§4.2.4,
//! §5.2). Times are unix seconds given by the caller.

use super::ascii::eq_lowercase;
use super::cache_control::{delta_seconds, CacheControl};
use super::date::parse_http_date;
use super::request::list_elements;
use super::vary::vary_names;
use super::Method;
use httparse::Header;

/// Statuses that are heuristically cacheable (RFC 9110 §15.1): storable without
/// explicit freshness information.
const HEURISTIC_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// Heuristic freshness never exceeds a day: RFC 9111 §4.2.2 leaves the cap to the
/// cache, and a day bounds how long a guess can serve an outdated object.
const HEURISTIC_CAP: u64 = 24 * 60 * 60;

/// Says whether a response may be stored by a shared cache (RFC 9111 §3); the
/// error is a reason for logs and tests.
///
/// Storable means all of:
/// - the request method is GET (HEAD is answered from a stored GET and never
///   stored itself);
/// - the status is final and neither 206 (a part is never stored as the whole) nor
///   304; and it is heuristically cacheable (200, 203, 204, 300, 301, 308, 404, 405,
///   410, 414, 501) or the response has max-age, s-maxage or Expires;
/// - no `no-store` in the request or the response, no `private`, no `Vary: *`;
/// - a request with Authorization only if the response has public, s-maxage or
///   must-revalidate (§3.5);
/// - no Set-Cookie in the response: larder's choice, as Varnish and nginx by
///   default, so that one client's cookie is never replayed to another.
///
/// Framing (a complete, checked body) is the caller's business.
pub fn storable(
    method: &Method,
    status: u16,
    req: &[Header<'_>],
    resp: &[Header<'_>],
) -> Result<(), &'static str> {
    if *method != Method::Get {
        return Err("only responses to GET are stored");
    }
    let resp_cc = CacheControl::from_response(resp);
    storable_response(status, resp, &resp_cc)?;
    if CacheControl::from_request(req).no_store {
        return Err("no-store");
    }
    let shareable = resp_cc.public || resp_cc.s_maxage.is_some() || resp_cc.must_revalidate;
    if field_values(req, "authorization").next().is_some() && !shareable {
        return Err("Authorization without public, s-maxage or must-revalidate");
    }
    Ok(())
}

/// The part of [`storable`] that depends on the response alone (`resp_cc` is the
/// directives of `resp`): an error here means no request could make the response
/// storable. Forwarding asks it while the response's fields are parsed anyway, and
/// reads the directives in the same pass, so that a response the cache may not keep
/// costs the cache nothing more.
pub fn storable_response(
    status: u16,
    resp: &[Header<'_>],
    resp_cc: &CacheControl,
) -> Result<(), &'static str> {
    match status {
        0..=199 => return Err("not a final response"),
        206 => return Err("partial content is never stored as a full response"),
        304 => return Err("a 304 is not a full response"),
        _ => {}
    }
    if resp_cc.no_store {
        return Err("no-store");
    }
    if resp_cc.private {
        return Err("private");
    }
    if vary_names(resp).is_err() {
        return Err("Vary: *");
    }
    if field_values(resp, "set-cookie").next().is_some() {
        return Err("Set-Cookie");
    }
    let explicit = resp_cc.max_age.is_some()
        || resp_cc.s_maxage.is_some()
        || field_values(resp, "expires").next().is_some();
    if !explicit && !HEURISTIC_STATUSES.contains(&status) {
        return Err("status not cacheable without explicit freshness");
    }
    Ok(())
}

/// When larder asked for a stored response and when its head arrived, in unix
/// seconds (RFC 9111 §4.2.3's request_time and response_time). After a 304
/// refresh these are the times of the revalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// When the request was sent upstream (RFC 9111's request_time).
    pub request_time: u64,
    /// When the response head arrived (RFC 9111's response_time).
    pub response_time: u64,
}

/// The freshness lifetime of a response in seconds (RFC 9111 §4.2.1), the first of:
/// - 0 when max-age or s-maxage is repeated with different values
///   ([`CacheControl::conflict`]);
/// - s-maxage (a shared cache's own), else max-age;
/// - Expires − Date; an Expires that is not a valid HTTP-date (`0` included),
///   repeated with different values, or not after Date gives 0 (stale);
/// - heuristic (§4.2.2): 10% of Date − Last-Modified, at most 24 hours;
/// - 0.
///
/// `date_fallback` stands in for a missing or invalid Date: the caller passes the
/// response_time, as RFC 9110 §6.6.1 makes a recipient do. Only statuses that
/// [`storable`] accepts without explicit freshness reach the heuristic.
pub fn freshness_lifetime(resp: &[Header<'_>], date_fallback: u64) -> u64 {
    freshness_lifetime_with(resp, &CacheControl::from_response(resp), date_fallback)
}

/// [`freshness_lifetime`] with the response's directives `cc` already read.
pub fn freshness_lifetime_with(resp: &[Header<'_>], cc: &CacheControl, date_fallback: u64) -> u64 {
    if cc.conflict {
        return 0;
    }
    if let Some(secs) = cc.s_maxage.or(cc.max_age) {
        return secs;
    }
    let date = date_value(resp, date_fallback);
    let mut expires = field_values(resp, "expires");
    if let Some(first) = expires.next() {
        if expires.any(|other| other.trim_ascii() != first.trim_ascii()) {
            return 0;
        }
        return parse_http_date(first).map_or(0, |at| at.saturating_sub(date));
    }
    field_values(resp, "last-modified")
        .next()
        .and_then(parse_http_date)
        .map_or(0, |modified| {
            (date.saturating_sub(modified) / 10).min(HEURISTIC_CAP)
        })
}

/// The current age of a stored response in seconds at `now`, exactly as RFC 9111
/// §4.2.3 computes it, with saturating arithmetic (a clock that went backwards
/// gives 0 for that term, never a wrap).
///
/// `resp` is the stored head: its Date (or `times.response_time` when it has no
/// valid one) and its Age (the first member; 0 when absent or invalid).
pub fn current_age(resp: &[Header<'_>], times: Stored, now: u64) -> u64 {
    let resident_time = now.saturating_sub(times.response_time);
    corrected_initial_age(resp, times).saturating_add(resident_time)
}

/// The instant a stored response stops being fresh: response_time + freshness
/// lifetime − corrected_initial_age (saturating). The response is fresh while
/// `now < expires_at`, which is the same test as lifetime > [`current_age`]; this
/// is what the store keeps with the object.
pub fn expires_at(resp: &[Header<'_>], times: Stored) -> u64 {
    times
        .response_time
        .saturating_add(freshness_lifetime(resp, times.response_time))
        .saturating_sub(corrected_initial_age(resp, times))
}

fn corrected_initial_age(resp: &[Header<'_>], times: Stored) -> u64 {
    let age_value = age_value(resp);
    let date_value = date_value(resp, times.response_time);
    let apparent_age = times.response_time.saturating_sub(date_value);
    let response_delay = times.response_time.saturating_sub(times.request_time);
    let corrected_age_value = age_value.saturating_add(response_delay);
    apparent_age.max(corrected_age_value)
}

/// RFC 9111 §4.2.3's age_value: the Age field as delta-seconds (§5.1, §1.2.2), or
/// 0 when it is absent or invalid.
///
/// Age is a singleton, but a message may carry it as a list (`Age: 7200, 0`) or on
/// several lines, which together are one comma-joined list (RFC 9110 §5.3). The
/// first member counts and the rest are ignored, so an upstream cache's age is never
/// hidden by a later value. A first member that is not a non-negative integer
/// (`3s`, `1.5`, `-1`, `7200;foo=bar`) invalidates the field: it is ignored as if
/// absent, as §4.2.3 says of an age_value that is "not available". Values past
/// 2^31 count as 2^31 (§1.2.2).
fn age_value(resp: &[Header<'_>]) -> u64 {
    field_values(resp, "age")
        .flat_map(list_elements)
        .next()
        .and_then(delta_seconds)
        .unwrap_or(0)
}

/// What a stored response may do for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it as is: fresh enough for the request, or stale within the request's
    /// max-stale where the response allows that.
    Fresh,
    /// Revalidate it with the origin first.
    Stale,
}

/// Decides whether a stored response of `age` seconds with freshness `lifetime`
/// may answer a request whose directives are `req_cc` (RFC 9111 §4.2.4, §5.2).
///
/// [`Freshness::Stale`] when any of: request or response no-cache; age > request
/// max-age; lifetime − age < request min-fresh; or the response is not fresh
/// (lifetime ≤ age) and either the request has no max-stale covering age −
/// lifetime or the response forbids serving it stale (must-revalidate, or
/// proxy-revalidate or s-maxage, which bind shared caches: §5.2.2.2, .8, .10).
/// Otherwise [`Freshness::Fresh`]. `only-if-cached` is the caller's: it answers 504
/// when there is nothing it may serve.
pub fn may_serve(req_cc: &CacheControl, resp: &[Header<'_>], age: u64, lifetime: u64) -> Freshness {
    may_serve_with(req_cc, &CacheControl::from_response(resp), age, lifetime)
}

/// [`may_serve`] with the stored response's directives `resp_cc` already read.
pub fn may_serve_with(
    req_cc: &CacheControl,
    resp_cc: &CacheControl,
    age: u64,
    lifetime: u64,
) -> Freshness {
    if req_cc.no_cache || resp_cc.no_cache {
        return Freshness::Stale;
    }
    if req_cc.max_age.is_some_and(|max| age > max) {
        return Freshness::Stale;
    }
    if req_cc
        .min_fresh
        .is_some_and(|min| lifetime < age.saturating_add(min))
    {
        return Freshness::Stale;
    }
    if lifetime > age {
        return Freshness::Fresh;
    }
    let must_revalidate =
        resp_cc.must_revalidate || resp_cc.proxy_revalidate || resp_cc.s_maxage.is_some();
    match req_cc.max_stale {
        Some(max) if !must_revalidate && age.saturating_sub(lifetime) <= max => Freshness::Fresh,
        _ => Freshness::Stale,
    }
}

/// Whether a stored response of `age` seconds with freshness `lifetime` may answer a
/// request whose directives are `req_cc` when the origin could not be asked (it cannot
/// be reached, or answered 5xx): RFC 9111 §4.2.4 and RFC 5861 §4. It may when it is
/// stale by no more than the most that the response's or the request's
/// `stale-if-error`, or `serve_stale` (larder's `--serve-stale`; 0: none), allows —
/// never when the response forbids serving it stale (no-cache, must-revalidate,
/// proxy-revalidate, s-maxage) or the request asks for a fresh one (no-cache).
pub fn may_serve_on_error(
    req_cc: &CacheControl,
    resp: &[Header<'_>],
    age: u64,
    lifetime: u64,
    serve_stale: u64,
) -> bool {
    let resp_cc = CacheControl::from_response(resp);
    let forbidden = req_cc.no_cache
        || resp_cc.no_cache
        || resp_cc.must_revalidate
        || resp_cc.proxy_revalidate
        || resp_cc.s_maxage.is_some();
    if forbidden {
        return false;
    }
    let allowed = [
        resp_cc.stale_if_error,
        req_cc.stale_if_error,
        Some(serve_stale).filter(|&s| s > 0),
    ]
    .into_iter()
    .flatten()
    .max();
    allowed.is_some_and(|max| age.saturating_sub(lifetime) <= max)
}

/// Whether a stale stored response of `age` seconds with freshness `lifetime` may
/// answer a request whose directives are `req_cc` at once, while a revalidation runs
/// behind it (RFC 5861 §3): the response's `stale-while-revalidate` covers how stale
/// it is, nothing in the response forbids serving it stale (no-cache,
/// must-revalidate, proxy-revalidate, s-maxage), and the request asks for nothing
/// fresher (no-cache, max-age, min-fresh).
pub fn may_serve_while_revalidating(
    req_cc: &CacheControl,
    resp: &[Header<'_>],
    age: u64,
    lifetime: u64,
) -> bool {
    let resp_cc = CacheControl::from_response(resp);
    let forbidden = req_cc.no_cache
        || req_cc.max_age.is_some()
        || req_cc.min_fresh.is_some()
        || resp_cc.no_cache
        || resp_cc.must_revalidate
        || resp_cc.proxy_revalidate
        || resp_cc.s_maxage.is_some();
    if forbidden || lifetime > age {
        return false;
    }
    resp_cc
        .stale_while_revalidate
        .is_some_and(|max| age - lifetime <= max)
}

/// The values of every field line named `name` (ASCII case-insensitive; `name` in
/// lowercase), in order.
pub(super) fn field_values<'h>(
    fields: &'h [Header<'h>],
    name: &'h str,
) -> impl Iterator<Item = &'h [u8]> {
    fields
        .iter()
        .filter(move |h| eq_lowercase(h.name.as_bytes(), name.as_bytes()))
        .map(|h| h.value)
}

/// The Date of a response, or `fallback` when it has none that parses.
fn date_value(resp: &[Header<'_>], fallback: u64) -> u64 {
    field_values(resp, "date")
        .next()
        .and_then(parse_http_date)
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::cache_control::DELTA_SECONDS_MAX;
    use crate::http::testing::fields;

    /// 784111777 = Sun, 06 Nov 1994 08:49:37 GMT.
    const T: u64 = 784_111_777;
    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn store_get(
        status: u16,
        req: &[(&str, &str)],
        resp: &[(&str, &str)],
    ) -> Result<(), &'static str> {
        storable(&Method::Get, status, &fields(req), &fields(resp))
    }

    fn lifetime(resp: &[(&str, &str)]) -> u64 {
        freshness_lifetime(&fields(resp), T)
    }

    fn on_error(req: &str, resp: &[(&str, &str)], stale_by: u64, serve_stale: u64) -> bool {
        let req_cc = CacheControl::from_request(&fields(&[("Cache-Control", req)]));
        may_serve_on_error(&req_cc, &fields(resp), 100 + stale_by, 100, serve_stale)
    }

    #[test]
    fn stale_while_revalidate_bounds_what_is_served_at_once() {
        let at = |req: &str, cc: &str, stale_by: u64| {
            let req_cc = CacheControl::from_request(&fields(&[("Cache-Control", req)]));
            let resp = fields(&[("Cache-Control", cc)]);
            may_serve_while_revalidating(&req_cc, &resp, 100 + stale_by, 100)
        };
        let cc = "max-age=100, stale-while-revalidate=30";
        assert!(at("", cc, 0));
        assert!(at("", cc, 30));
        assert!(!at("", cc, 31), "staler than the response allows");
        assert!(!at("", "max-age=100", 1), "a response that says nothing");
        assert!(!at("", "max-age=100, stale-if-error=30", 1));
        for forbids in [
            "must-revalidate",
            "proxy-revalidate",
            "no-cache",
            "s-maxage=100",
        ] {
            assert!(!at("", &format!("{cc}, {forbids}"), 1), "{forbids}");
        }
        for asks in ["no-cache", "max-age=1000", "min-fresh=0"] {
            assert!(!at(asks, cc, 1), "a request with {asks}");
        }
        // A fresh response is not this function's business.
        let req_cc = CacheControl::default();
        let resp = fields(&[("Cache-Control", cc)]);
        assert!(!may_serve_while_revalidating(&req_cc, &resp, 50, 100));
    }

    #[test]
    fn stale_if_error_bounds_what_is_served_when_the_origin_fails() {
        let sie = [("Cache-Control", "max-age=100, stale-if-error=60")];
        assert!(on_error("", &sie, 60, 0));
        assert!(
            !on_error("", &sie, 61, 0),
            "staler than the response allows"
        );
        // The request's own stale-if-error, and --serve-stale, extend it; the largest wins.
        assert!(on_error("stale-if-error=120", &sie, 120, 0));
        assert!(on_error("", &sie, 3600, 86400));
        // A response that says nothing is served stale only under --serve-stale.
        let plain = [("Cache-Control", "max-age=100")];
        assert!(!on_error("", &plain, 1, 0));
        assert!(on_error("", &plain, 1000, 86400));
        // Never what may not be served stale, nor to a client that asked for a fresh one.
        for forbids in [
            "must-revalidate",
            "proxy-revalidate",
            "no-cache",
            "s-maxage=100",
        ] {
            let cc = format!("max-age=100, stale-if-error=60, {forbids}");
            assert!(
                !on_error("", &[("Cache-Control", &cc)], 1, 86400),
                "{forbids}"
            );
        }
        assert!(!on_error("no-cache", &sie, 1, 86400));
    }

    fn serve(req: &str, resp: &[(&str, &str)], age: u64, lifetime: u64) -> Freshness {
        let req_cc = CacheControl::from_request(&fields(&[("Cache-Control", req)]));
        may_serve(&req_cc, &fields(resp), age, lifetime)
    }

    /// The response-only check rejects nothing the whole check accepts, and what it
    /// rejects the whole check rejects for the same reason whatever the request.
    #[test]
    fn the_response_check_agrees_with_the_whole_check() {
        let responses: &[(u16, &[(&str, &str)])] = &[
            (200, &[]),
            (200, &[("Cache-Control", "no-store")]),
            (200, &[("Cache-Control", "private")]),
            (200, &[("Cache-Control", "public")]),
            (200, &[("Vary", "*")]),
            (200, &[("Set-Cookie", "a=b")]),
            (302, &[]),
            (302, &[("Expires", "0")]),
            (206, &[("Cache-Control", "max-age=9")]),
            (304, &[]),
            (103, &[]),
            (404, &[("Cache-Control", "s-maxage=9")]),
        ];
        let requests: &[&[(&str, &str)]] = &[
            &[],
            &[("Cache-Control", "no-store")],
            &[("Authorization", "Basic eDp5")],
        ];
        for (status, resp) in responses {
            let parsed = fields(resp);
            let cc = CacheControl::from_response(&parsed);
            let alone = storable_response(*status, &parsed, &cc);
            for req in requests {
                let whole = store_get(*status, req, resp);
                if alone.is_err() {
                    assert_eq!(whole, alone, "{status} {resp:?} {req:?}");
                }
                if whole.is_ok() {
                    assert!(alone.is_ok(), "{status} {resp:?} {req:?}");
                }
            }
        }
    }

    #[test]
    fn a_plain_200_to_get_is_storable() {
        assert_eq!(store_get(200, &[], &[]), Ok(()));
        assert_eq!(store_get(404, &[], &[("Vary", "Accept-Encoding")]), Ok(()));
    }

    #[test]
    fn only_get_is_stored() {
        let none: [Header; 0] = [];
        for method in [Method::Head, Method::Post, Method::Other("PURGE".into())] {
            assert!(storable(&method, 200, &none, &none).is_err(), "{method:?}");
        }
    }

    #[test]
    fn interim_partial_and_not_modified_are_never_stored() {
        let explicit = [("Cache-Control", "max-age=60")];
        for status in [100, 103, 206, 304] {
            assert!(store_get(status, &[], &explicit).is_err(), "{status}");
        }
    }

    #[test]
    fn other_statuses_need_explicit_freshness() {
        assert!(store_get(302, &[], &[]).is_err());
        assert!(store_get(500, &[], &[("Last-Modified", DATE)]).is_err());
        assert!(store_get(302, &[], &[("Cache-Control", "max-age=60")]).is_ok());
        assert!(store_get(307, &[], &[("Cache-Control", "s-maxage=60")]).is_ok());
        assert!(store_get(503, &[], &[("Expires", "0")]).is_ok());
    }

    #[test]
    fn no_store_on_either_side_private_and_vary_star_prevent_storing() {
        assert_eq!(
            store_get(200, &[("Cache-Control", "no-store")], &[]),
            Err("no-store")
        );
        assert_eq!(
            store_get(200, &[], &[("Cache-Control", "public, No-Store")]),
            Err("no-store")
        );
        assert_eq!(
            store_get(200, &[], &[("Cache-Control", "private=\"X\"")]),
            Err("private")
        );
        assert_eq!(
            store_get(200, &[], &[("Vary", "accept"), ("vary", "*")]),
            Err("Vary: *")
        );
    }

    #[test]
    fn authorization_needs_public_s_maxage_or_must_revalidate() {
        let auth = [("Authorization", "Basic Zm9vOmJhcg==")];
        assert!(store_get(200, &auth, &[("Cache-Control", "max-age=60")]).is_err());
        for cc in ["public", "s-maxage=60", "must-revalidate"] {
            assert_eq!(
                store_get(200, &auth, &[("Cache-Control", cc)]),
                Ok(()),
                "{cc}"
            );
        }
    }

    #[test]
    fn set_cookie_is_never_stored_even_when_public() {
        let resp = [
            ("Cache-Control", "public, max-age=60"),
            ("Set-Cookie", "a=b"),
        ];
        assert_eq!(store_get(200, &[], &resp), Err("Set-Cookie"));
    }

    #[test]
    fn s_maxage_beats_max_age_beats_expires() {
        let expires = ("Expires", "Sun, 06 Nov 1994 09:49:37 GMT");
        let date = ("Date", DATE);
        assert_eq!(
            lifetime(&[("Cache-Control", "max-age=5, s-maxage=7"), expires, date]),
            7
        );
        assert_eq!(
            lifetime(&[("Cache-Control", "max-age=5"), expires, date]),
            5
        );
        assert_eq!(lifetime(&[expires, date]), 3600);
        assert_eq!(
            lifetime(&[("Cache-Control", "max-age=0"), expires, date]),
            0
        );
    }

    #[test]
    fn expires_counts_from_date_not_from_now() {
        let resp = fields(&[("Date", DATE), ("Expires", "Sun, 06 Nov 1994 08:59:37 GMT")]);
        // The clock and the fallback are far from Date; only Date matters.
        assert_eq!(freshness_lifetime(&resp, T + 86_400), 600);
        let no_date = fields(&[("Expires", "Sun, 06 Nov 1994 08:59:37 GMT")]);
        assert_eq!(freshness_lifetime(&no_date, T), 600);
        assert_eq!(freshness_lifetime(&no_date, T + 100), 500);
    }

    #[test]
    fn invalid_past_or_conflicting_expires_is_stale() {
        let date = ("Date", DATE);
        assert_eq!(lifetime(&[date, ("Expires", "0")]), 0);
        assert_eq!(lifetime(&[date, ("Expires", "-1")]), 0);
        assert_eq!(lifetime(&[date, ("Expires", "")]), 0);
        assert_eq!(
            lifetime(&[date, ("Expires", "Thu, 01 Jan 1970 00:00:00 GMT")]),
            0
        );
        let later = ("Expires", "Sun, 06 Nov 1994 09:49:37 GMT");
        let other = ("Expires", "Sun, 06 Nov 1994 10:49:37 GMT");
        assert_eq!(lifetime(&[date, later, other]), 0);
        assert_eq!(lifetime(&[date, later, later]), 3600);
        // An invalid Expires makes the response stale even with Last-Modified.
        assert_eq!(
            lifetime(&[
                date,
                ("Expires", "0"),
                ("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT")
            ]),
            0
        );
    }

    #[test]
    fn conflicting_max_age_is_stale() {
        assert_eq!(lifetime(&[("Cache-Control", "max-age=60, max-age=120")]), 0);
        assert_eq!(
            lifetime(&[
                ("Cache-Control", "s-maxage=60"),
                ("Cache-Control", "s-maxage=1")
            ]),
            0
        );
    }

    #[test]
    fn heuristic_is_a_tenth_of_the_age_since_last_modified_capped_at_a_day() {
        assert_eq!(
            lifetime(&[
                ("Date", DATE),
                ("Last-Modified", "Sun, 06 Nov 1994 07:49:37 GMT")
            ]),
            360
        );
        assert_eq!(
            lifetime(&[
                ("Date", DATE),
                ("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT")
            ]),
            HEURISTIC_CAP
        );
        // Modified after its own Date: no heuristic freshness.
        assert_eq!(
            lifetime(&[
                ("Date", DATE),
                ("Last-Modified", "Sun, 06 Nov 1994 09:49:37 GMT")
            ]),
            0
        );
        assert_eq!(lifetime(&[("Last-Modified", "yesterday")]), 0);
        assert_eq!(lifetime(&[("Date", DATE)]), 0);
    }

    #[test]
    fn current_age_follows_rfc_9111_4_2_3() {
        // apparent_age = 110 − 105 = 5; corrected_age_value = 3 + (110 − 100) = 13;
        // corrected_initial_age = 13; resident_time = 200 − 110 = 90.
        let times = Stored {
            request_time: T + 100,
            response_time: T + 110,
        };
        let resp = fields(&[("Date", "Sun, 06 Nov 1994 08:51:22 GMT"), ("Age", "3")]);
        assert_eq!(current_age(&resp, times, T + 200), 103);
        // A Date far in the past makes apparent_age win.
        let old = fields(&[("Date", DATE), ("Age", "3")]);
        assert_eq!(current_age(&old, times, T + 200), 200);
    }

    #[test]
    fn age_without_date_or_age_is_resident_time_plus_delay() {
        let times = Stored {
            request_time: 1000,
            response_time: 1002,
        };
        assert_eq!(current_age(&[], times, 1010), 10);
        let junk = fields(&[("Age", "-5"), ("Date", "soon")]);
        assert_eq!(current_age(&junk, times, 1010), 10);
    }

    /// The age of a response with these Age lines, received and looked at at 1000
    /// with no Date: the Age value alone.
    fn age(values: &[&str]) -> u64 {
        let times = Stored {
            request_time: 1000,
            response_time: 1000,
        };
        let resp: Vec<(&str, &str)> = values.iter().map(|v| ("Age", *v)).collect();
        current_age(&fields(&resp), times, 1000)
    }

    #[test]
    fn an_invalid_age_is_ignored() {
        assert_eq!(age(&["30"]), 30);
        assert_eq!(age(&[" 30 "]), 30);
        for invalid in [
            "3s",
            "1.5",
            "7200.0",
            "-1",
            "-7200",
            "+5",
            "abc",
            "0x10",
            "7200;foo=bar",
            "",
        ] {
            assert_eq!(age(&[invalid]), 0, "{invalid:?}");
        }
    }

    #[test]
    fn the_first_age_member_counts() {
        // As cache-tests' age-parse-suffix, -prefix, -dup-* and their two-line forms.
        assert_eq!(age(&["7200, 0"]), 7200);
        assert_eq!(age(&["0, 7200"]), 0);
        assert_eq!(age(&["3, 5"]), 3);
        assert_eq!(age(&["7200", "0"]), 7200);
        assert_eq!(age(&["0", "7200"]), 0);
        assert_eq!(age(&["3600", "3600"]), 3600);
        assert_eq!(age(&["0, 0"]), 0);
        // An invalid first member invalidates the field; a later one does not count.
        assert_eq!(age(&["3s, 7200"]), 0);
        assert_eq!(age(&["3s", "7200"]), 0);
        assert_eq!(age(&["2147483649"]), DELTA_SECONDS_MAX);
    }

    #[test]
    fn clocks_going_backwards_never_wrap() {
        let times = Stored {
            request_time: 2000,
            response_time: 1000,
        };
        let future_date = fields(&[("Date", "Fri, 31 Dec 9999 23:59:59 GMT")]);
        assert_eq!(current_age(&future_date, times, 0), 0);
        assert_eq!(expires_at(&future_date, times), 1000);
    }

    #[test]
    fn huge_ages_saturate() {
        let times = Stored {
            request_time: 0,
            response_time: u64::MAX,
        };
        let resp = fields(&[("Age", "99999999999999999999999")]);
        assert_eq!(current_age(&resp, times, u64::MAX), u64::MAX);
        let resp = fields(&[("Age", "99999999999999999999999")]);
        let times = Stored {
            request_time: 10,
            response_time: 10,
        };
        assert_eq!(current_age(&resp, times, 10), DELTA_SECONDS_MAX);
        assert_eq!(expires_at(&resp, times), 0);
    }

    #[test]
    fn expires_at_is_the_first_instant_current_age_reaches_the_lifetime() {
        let resp = fields(&[
            ("Date", "Sun, 06 Nov 1994 08:49:30 GMT"),
            ("Age", "4"),
            ("Cache-Control", "max-age=100"),
        ]);
        let times = Stored {
            request_time: T - 2,
            response_time: T,
        };
        let at = expires_at(&resp, times);
        assert_eq!(at, T + 100 - 7);
        for now in T..T + 200 {
            let fresh = freshness_lifetime(&resp, T) > current_age(&resp, times, now);
            assert_eq!(fresh, now < at, "{now}");
        }
    }

    #[test]
    fn fresh_until_age_reaches_lifetime() {
        assert_eq!(serve("", &[], 59, 60), Freshness::Fresh);
        assert_eq!(serve("", &[], 60, 60), Freshness::Stale);
        assert_eq!(serve("junk=, ,,", &[], 0, 0), Freshness::Stale);
    }

    #[test]
    fn no_cache_on_either_side_always_revalidates() {
        assert_eq!(serve("no-cache", &[], 0, 60), Freshness::Stale);
        assert_eq!(
            serve("", &[("Cache-Control", "no-cache=\"Set-Cookie\"")], 0, 60),
            Freshness::Stale
        );
        let pragma = CacheControl::from_request(&fields(&[("Pragma", "no-cache")]));
        assert_eq!(may_serve(&pragma, &[], 0, 60), Freshness::Stale);
    }

    #[test]
    fn request_max_age_and_min_fresh_tighten_freshness() {
        assert_eq!(serve("max-age=10", &[], 10, 60), Freshness::Fresh);
        assert_eq!(serve("max-age=10", &[], 11, 60), Freshness::Stale);
        assert_eq!(serve("max-age=0", &[], 1, 60), Freshness::Stale);
        assert_eq!(serve("min-fresh=20", &[], 40, 60), Freshness::Fresh);
        assert_eq!(serve("min-fresh=20", &[], 41, 60), Freshness::Stale);
        assert_eq!(
            serve("min-fresh=99999999999999999999", &[], 0, 60),
            Freshness::Stale
        );
    }

    #[test]
    fn max_stale_allows_stale_unless_the_response_forbids_it() {
        assert_eq!(serve("max-stale=10", &[], 70, 60), Freshness::Fresh);
        assert_eq!(serve("max-stale=10", &[], 71, 60), Freshness::Stale);
        assert_eq!(serve("max-stale", &[], u64::MAX, 0), Freshness::Fresh);
        for cc in ["must-revalidate", "proxy-revalidate", "s-maxage=60"] {
            assert_eq!(
                serve("max-stale", &[("Cache-Control", cc)], 61, 60),
                Freshness::Stale,
                "{cc}"
            );
        }
    }

    #[test]
    fn max_age_and_min_fresh_win_over_max_stale() {
        assert_eq!(serve("max-stale, max-age=5", &[], 70, 60), Freshness::Stale);
        assert_eq!(
            serve("max-stale, min-fresh=1", &[], 70, 60),
            Freshness::Stale
        );
        assert_eq!(serve("max-stale, no-cache", &[], 70, 60), Freshness::Stale);
    }
}
