//! The Cache-Control directives larder acts on (RFC 9111 §5.2), from all of a
//! message's Cache-Control field lines.
//!
//! Parsing never fails: unknown directives, junk and bad arguments are ignored, so
//! a sender's mistake costs at most the directive it got wrong.

use super::ascii::{eq_lowercase, find_either};
use httparse::Header;

/// Delta-seconds beyond this are taken as this (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// The directives of one request or one response. A directive that does not apply
/// to the message's direction is parsed all the same and simply not read.
///
/// A directive that takes no argument counts even when it has one
/// (`no-cache="Set-Cookie"` and `private="X"` are plain no-cache and private: larder
/// does not keep per-field lists and takes the stricter reading). A delta-seconds
/// argument that is not `1*DIGIT` (quotes allowed) makes that directive absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// Request or response `no-store` (§5.2.1.5, §5.2.2.5).
    pub no_store: bool,
    /// Request or response `no-cache` (§5.2.1.4, §5.2.2.4); on a request also
    /// `Pragma: no-cache` when there is no Cache-Control field (§5.4).
    pub no_cache: bool,
    /// Response `private` (§5.2.2.7).
    pub private: bool,
    /// Response `public` (§5.2.2.9).
    pub public: bool,
    /// Response `must-revalidate` (§5.2.2.2).
    pub must_revalidate: bool,
    /// Response `proxy-revalidate` (§5.2.2.8).
    pub proxy_revalidate: bool,
    /// Request `only-if-cached` (§5.2.1.7).
    pub only_if_cached: bool,
    /// Request or response `max-age` (§5.2.1.1, §5.2.2.1), in seconds.
    pub max_age: Option<u64>,
    /// Response `s-maxage` (§5.2.2.10), in seconds.
    pub s_maxage: Option<u64>,
    /// Request `max-stale` (§5.2.1.2), in seconds; `u64::MAX` when it has no
    /// argument (any staleness is acceptable).
    pub max_stale: Option<u64>,
    /// Request `min-fresh` (§5.2.1.3), in seconds.
    pub min_fresh: Option<u64>,
    /// Request or response `stale-if-error` (RFC 5861 §4), in seconds: how stale a
    /// response may be served when the origin cannot be reached or answers 5xx.
    pub stale_if_error: Option<u64>,
    /// Response `stale-while-revalidate` (RFC 5861 §3), in seconds: how stale a
    /// response may be served while a revalidation runs behind it.
    pub stale_while_revalidate: Option<u64>,
    /// `max-age` or `s-maxage` appeared more than once with different values.
    /// RFC 9111 §4.2.1 lets a cache use the first or consider the response stale;
    /// larder considers it stale. The fields above then hold the most restrictive
    /// value (the smallest max-age, s-maxage and max-stale, the largest min-fresh),
    /// which is what a request with such duplicates gets.
    pub conflict: bool,
}

impl CacheControl {
    /// The directives of a request: all Cache-Control field lines, or, when there
    /// is none, `Pragma: no-cache` as `no_cache` (RFC 9111 §5.4).
    pub fn from_request(fields: &[Header<'_>]) -> CacheControl {
        let mut cc = CacheControl::default();
        if !cc.add_fields(fields) {
            cc.no_cache = fields
                .iter()
                .filter(|h| eq_lowercase(h.name.as_bytes(), b"pragma"))
                .flat_map(|h| h.value.split(|&b| b == b','))
                .any(|e| eq_lowercase(e.trim_ascii(), b"no-cache"));
        }
        cc
    }

    /// The directives of a response: all Cache-Control field lines.
    pub fn from_response(fields: &[Header<'_>]) -> CacheControl {
        let mut cc = CacheControl::default();
        cc.add_fields(fields);
        cc
    }

    /// Adds the directives of every Cache-Control line; false if there was none.
    fn add_fields(&mut self, fields: &[Header<'_>]) -> bool {
        let mut any = false;
        for field in fields {
            if eq_lowercase(field.name.as_bytes(), b"cache-control") {
                any = true;
                self.add_field(field.value);
            }
        }
        any
    }

    /// Adds the directives of one Cache-Control field value: for a caller that goes
    /// through the fields anyway, as the response parser does. All the message's
    /// Cache-Control lines, in order, make [`CacheControl::from_response`].
    pub fn add_field(&mut self, value: &[u8]) {
        for_each_directive(value, |name, arg| self.add(name, arg));
    }

    fn add(&mut self, name: &[u8], arg: Option<&[u8]>) {
        // Told apart by length, then compared in place: this runs for every request
        // and every hit.
        let is = |known: &[u8]| eq_lowercase(name, known);
        let flag = match name.len() {
            8 if is(b"no-store") => &mut self.no_store,
            8 if is(b"no-cache") => &mut self.no_cache,
            7 if is(b"private") => &mut self.private,
            6 if is(b"public") => &mut self.public,
            15 if is(b"must-revalidate") => &mut self.must_revalidate,
            16 if is(b"proxy-revalidate") => &mut self.proxy_revalidate,
            14 if is(b"only-if-cached") => &mut self.only_if_cached,
            7 if is(b"max-age") => {
                return merge(&mut self.max_age, arg, Some(&mut self.conflict), u64::min)
            }
            8 if is(b"s-maxage") => {
                return merge(&mut self.s_maxage, arg, Some(&mut self.conflict), u64::min)
            }
            9 if is(b"min-fresh") => return merge(&mut self.min_fresh, arg, None, u64::max),
            14 if is(b"stale-if-error") => {
                return merge(&mut self.stale_if_error, arg, None, u64::min)
            }
            22 if is(b"stale-while-revalidate") => {
                return merge(&mut self.stale_while_revalidate, arg, None, u64::min)
            }
            9 if is(b"max-stale") && arg.is_none() => {
                self.max_stale.get_or_insert(u64::MAX);
                return;
            }
            9 if is(b"max-stale") => return merge(&mut self.max_stale, arg, None, u64::min),
            _ => return,
        };
        *flag = true;
    }
}

/// Records a delta-seconds directive: a bad or missing argument leaves `slot` as
/// it was; a repeat keeps `pick(old, new)` and, if given, flags a differing value.
fn merge(
    slot: &mut Option<u64>,
    arg: Option<&[u8]>,
    conflict: Option<&mut bool>,
    pick: fn(u64, u64) -> u64,
) {
    let Some(new) = arg.and_then(delta_seconds) else {
        return;
    };
    *slot = Some(match *slot {
        None => new,
        Some(old) => {
            if let Some(conflict) = conflict {
                *conflict |= old != new;
            }
            pick(old, new)
        }
    });
}

/// Parses delta-seconds (RFC 9111 §1.2.2): `1*DIGIT`, saturating at
/// [`DELTA_SECONDS_MAX`]. `None` for anything else, signs and spaces included.
pub fn delta_seconds(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    // One pass, checking and adding up; capped at each digit, `n` stays far from
    // overflowing.
    let mut n: u64 = 0;
    for &b in value {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = (n * 10 + u64::from(digit)).min(DELTA_SECONDS_MAX);
    }
    Some(n)
}

/// Calls `f(name, argument)` for each `token [ "=" ( token / quoted-string ) ]`
/// of a Cache-Control value (RFC 9111 §5.2). Names are trimmed and may be junk
/// (they then match nothing); a quoted argument is given without its quotes and
/// with escapes left in; an unterminated one runs to the end of the value.
fn for_each_directive(value: &[u8], mut f: impl FnMut(&[u8], Option<&[u8]>)) {
    let mut rest = value;
    loop {
        rest = trim_start_matches(rest, |b| b == b',' || b.is_ascii_whitespace());
        if rest.is_empty() {
            return;
        }
        let name_end = find_either(rest, b'=', b',').unwrap_or(rest.len());
        let (name, tail) = rest.split_at(name_end);
        // Its start is trimmed already.
        let name = name.trim_ascii_end();
        let Some(after_equals) = tail.strip_prefix(b"=") else {
            f(name, None);
            rest = tail;
            continue;
        };
        let after_equals = after_equals.trim_ascii_start();
        if let Some(quoted) = after_equals.strip_prefix(b"\"") {
            let Some(close) = closing_quote(quoted) else {
                f(name, Some(quoted));
                return;
            };
            let (arg, tail) = quoted.split_at(close);
            f(name, Some(arg));
            rest = skip_past_comma(tail);
        } else {
            let end = find_either(after_equals, b',', b',').unwrap_or(after_equals.len());
            let (arg, tail) = after_equals.split_at(end);
            f(name, Some(arg.trim_ascii()));
            rest = tail;
        }
    }
}

/// Index of the `"` that ends a quoted-string whose opening quote is already gone.
fn closing_quote(quoted: &[u8]) -> Option<usize> {
    let mut escaped = false;
    for (i, &b) in quoted.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// What follows the next comma (junk after a quoted argument is dropped).
fn skip_past_comma(rest: &[u8]) -> &[u8] {
    match rest.iter().position(|&b| b == b',') {
        Some(comma) => rest.get(comma + 1..).unwrap_or_default(),
        None => &[],
    }
}

fn trim_start_matches(bytes: &[u8], strip: impl Fn(u8) -> bool) -> &[u8] {
    let start = bytes.iter().position(|&b| !strip(b)).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::mutate;

    fn response(values: &[&str]) -> CacheControl {
        let fields: Vec<Header> = values
            .iter()
            .map(|v| Header {
                name: "Cache-Control",
                value: v.as_bytes(),
            })
            .collect();
        CacheControl::from_response(&fields)
    }

    fn request(fields: &[(&'static str, &'static str)]) -> CacheControl {
        let fields: Vec<Header> = fields
            .iter()
            .map(|&(name, value)| Header {
                name,
                value: value.as_bytes(),
            })
            .collect();
        CacheControl::from_request(&fields)
    }

    #[test]
    fn every_directive_is_recognised() {
        let cc = response(&[
            "no-store, no-cache, private, public, must-revalidate",
            "proxy-revalidate, only-if-cached, max-age=1, s-maxage=2",
            "max-stale=3, min-fresh=4, stale-if-error=5, Stale-While-Revalidate=6",
        ]);
        assert_eq!(
            cc,
            CacheControl {
                no_store: true,
                no_cache: true,
                private: true,
                public: true,
                must_revalidate: true,
                proxy_revalidate: true,
                only_if_cached: true,
                max_age: Some(1),
                s_maxage: Some(2),
                max_stale: Some(3),
                min_fresh: Some(4),
                stale_if_error: Some(5),
                stale_while_revalidate: Some(6),
                conflict: false,
            }
        );
    }

    #[test]
    fn names_are_case_insensitive_and_whitespace_is_optional() {
        let cc = response(&[" MAX-AGE = 60 ,No-Store,,\tPrivate "]);
        assert_eq!(cc.max_age, Some(60));
        assert!(cc.no_store && cc.private);
    }

    #[test]
    fn long_unknown_names_are_ignored() {
        let cc = response(&["PROXY-REVALIDATE, proxy-revalidatex, x-very-long-extension-name=1"]);
        assert_eq!(
            cc,
            CacheControl {
                proxy_revalidate: true,
                ..CacheControl::default()
            }
        );
    }

    #[test]
    fn quoted_arguments_are_accepted() {
        assert_eq!(response(&["max-age=\"60\""]).max_age, Some(60));
        assert_eq!(
            response(&["s-maxage = \"7\" junk, public"]).s_maxage,
            Some(7)
        );
    }

    #[test]
    fn field_list_arguments_make_plain_no_cache_and_private() {
        // The comma inside the quotes must not start a new directive.
        let cc = response(&["no-cache=\"Set-Cookie, max-age=5\", private=\"X-A\""]);
        assert!(cc.no_cache && cc.private);
        assert_eq!(cc.max_age, None);
    }

    #[test]
    fn unknown_directives_are_ignored_like_the_rfc_example() {
        // RFC 9111 §5.2.3.
        let cc = response(&["private, community=\"UCI\""]);
        assert_eq!(
            cc,
            CacheControl {
                private: true,
                ..CacheControl::default()
            }
        );
    }

    #[test]
    fn bad_delta_seconds_make_the_directive_absent() {
        for value in [
            "max-age",
            "max-age=",
            "max-age=-1",
            "max-age=+5",
            "max-age=1.5",
            "max-age=5 6",
            "max-age=0x10",
            "max-age=\"\"",
            "max-age=\"6\\0\"",
        ] {
            assert_eq!(response(&[value]).max_age, None, "{value}");
        }
    }

    #[test]
    fn huge_delta_seconds_saturate_at_2_pow_31() {
        let cc = response(&["max-age=99999999999999999999999999999999, s-maxage=2147483649"]);
        assert_eq!(cc.max_age, Some(DELTA_SECONDS_MAX));
        assert_eq!(cc.s_maxage, Some(DELTA_SECONDS_MAX));
        assert_eq!(delta_seconds(b"2147483647"), Some(2_147_483_647));
        assert_eq!(delta_seconds(b"2147483648"), Some(DELTA_SECONDS_MAX));
        assert_eq!(
            delta_seconds(b"99999999999999999999999"),
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(delta_seconds(b"99999999999999999999999x"), None);
        assert_eq!(delta_seconds(b"0086400"), Some(86_400));
    }

    #[test]
    fn conflicting_max_age_duplicates_are_flagged_across_lines() {
        let cc = response(&["max-age=60", "max-age=10"]);
        assert!(cc.conflict);
        assert_eq!(cc.max_age, Some(10));
        assert!(response(&["s-maxage=1, s-maxage=2"]).conflict);
    }

    #[test]
    fn equal_or_invalid_duplicates_are_not_a_conflict() {
        let cc = response(&["max-age=60, max-age=60", "max-age=abc"]);
        assert!(!cc.conflict);
        assert_eq!(cc.max_age, Some(60));
    }

    #[test]
    fn repeated_request_limits_keep_the_most_restrictive() {
        let cc = request(&[(
            "cache-control",
            "min-fresh=5, min-fresh=9, max-stale=30, max-stale=20",
        )]);
        assert_eq!(cc.min_fresh, Some(9));
        assert_eq!(cc.max_stale, Some(20));
    }

    #[test]
    fn max_stale_without_a_value_accepts_any_staleness() {
        assert_eq!(response(&["max-stale"]).max_stale, Some(u64::MAX));
        assert_eq!(response(&["max-stale=x"]).max_stale, None);
        assert_eq!(response(&["max-stale, max-stale=5"]).max_stale, Some(5));
        assert_eq!(response(&["max-stale=5, max-stale"]).max_stale, Some(5));
    }

    #[test]
    fn pragma_no_cache_counts_only_without_cache_control() {
        assert!(request(&[("Pragma", "no-cache")]).no_cache);
        assert!(request(&[("Pragma", "x, No-Cache")]).no_cache);
        assert!(!request(&[("Pragma", "no-cache"), ("Cache-Control", "max-age=5")]).no_cache);
        assert!(!request(&[("Pragma", "no-cache=1")]).no_cache);
        let fields = [Header {
            name: "Pragma",
            value: b"no-cache",
        }];
        assert!(!CacheControl::from_response(&fields).no_cache);
    }

    #[test]
    fn unterminated_quotes_keep_the_directive_name() {
        let cc = response(&["max-age=5, no-cache=\"Set-Cookie, private"]);
        assert!(cc.no_cache);
        assert!(!cc.private);
        assert_eq!(cc.max_age, Some(5));
    }

    #[test]
    fn mutated_values_never_panic() {
        let mut rng = 7;
        let alphabet = b"=,\"\\ \tmax-age0123456789no-cachepublic";
        for _ in 0..50_000 {
            let mut input = b"no-cache=\"a, b\", max-age=\"60\", private, s-maxage=5".to_vec();
            mutate(&mut input, &mut rng, alphabet);
            let fields = [Header {
                name: "cache-control",
                value: &input,
            }];
            let _ = CacheControl::from_response(&fields);
            let _ = delta_seconds(&input);
        }
    }
}
