//! Range requests answered from a stored full response (RFC 9110 §14.2–§14.4, with
//! If-Range from §13.1.5): which bytes of the body to send and the Content-Range
//! that describes them. Plain functions of the heads; the caller writes the status,
//! the other fields and the body. The same answers serve a Range request that missed
//! and was sent upstream without its Range, to fetch the whole object: where its range
//! starts ([`range_start`]) decides that, and the client's part is cut from the full
//! response as it is relayed ([`push_partial_head`]).
//!
//! larder serves one byte range at most. A request for several gets the whole body
//! with 200 rather than a multipart/byteranges 206: clients rarely ask for several
//! ranges (browsers, media players and download tools ask for one), the multipart
//! body needs a boundary and a head per part, and a server may always ignore Range
//! (§14.2), so a full 200 is always correct.

use super::date::parse_http_date;
use super::freshness::field_values;
use super::push_decimal;
use super::request::list_elements;
use httparse::Header;

/// What to send for a request against a stored full response of `len` body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole body: no Range, a Range larder does not serve (not `bytes`,
    /// several ranges, malformed), an If-Range that does not match, or a suffix range
    /// on an empty body.
    Full,
    /// 206 with body bytes `start..end` (end exclusive, start < end <= len).
    Partial {
        /// Offset of the first body byte sent.
        start: u64,
        /// Offset just past the last body byte sent.
        end: u64,
    },
    /// 416: a valid single bytes range none of which lies within the body.
    Unsatisfiable,
}

/// Answers the request fields `req` from a stored 200 whose fields are `stored` and
/// whose body is `len` bytes. The caller asks only for GET, the one method with
/// range handling (§14.2); any other request should be served as [`RangeAnswer::Full`].
///
/// Range (§14.1.2, §14.2) is served only as exactly one field line holding the unit
/// `bytes` (any case), `=`, and one range-spec, which may have whitespace around it
/// (empty list members are skipped, §5.6.1):
/// - `first-last`: bytes `first..=last`, with `last` clipped to the body;
/// - `first-`: bytes `first..len`;
/// - `-suffix`: the last `suffix` bytes, or the whole body if it is shorter.
///
/// A spec with `first` at or past the end of the body, or `-0`, is
/// [`RangeAnswer::Unsatisfiable`]. Everything else is [`RangeAnswer::Full`]: no
/// Range, several Range lines, another unit, several specs, and malformed specs
/// (`first` after `last`, anything but digits, a number past `u64::MAX`). So is
/// `-suffix` on an empty body: §14.1.1 calls it satisfiable, but a 206 cannot carry
/// zero bytes, so the whole, empty body is the answer.
///
/// If-Range (§13.1.5) is read only when Range would give 206 or 416. The range is
/// then honoured only if there is exactly one If-Range line and it holds either
/// - a strong entity-tag byte-for-byte equal to the stored ETag (so that one is
///   strong too), or
/// - an HTTP-date byte-for-byte equal to the stored Last-Modified, which must be a
///   strong validator (§8.8.2.2): the stored Date is at least one second later.
///
/// Otherwise the answer is [`RangeAnswer::Full`]. Stored ETag, Last-Modified and
/// Date count only when the response has exactly one line of each; values are
/// compared with surrounding whitespace trimmed.
pub fn range_answer(req: &[Header<'_>], stored: &[Header<'_>], len: u64) -> RangeAnswer {
    let Some(spec) = only(req, "range").and_then(single_spec) else {
        return RangeAnswer::Full;
    };
    let answer = spec.answer(len);
    if answer == RangeAnswer::Full || field_values(req, "if-range").next().is_none() {
        return answer;
    }
    match only(req, "if-range") {
        Some(validator) if validates(validator, stored) => answer,
        _ => RangeAnswer::Full,
    }
}

/// Appends `Content-Range: bytes start-(end-1)/len\r\n` for Partial,
/// `Content-Range: bytes */len\r\n` for Unsatisfiable (RFC 9110 §14.4), nothing for
/// Full. `len` is the one [`range_answer`] was given for `answer`.
pub fn push_content_range(out: &mut Vec<u8>, answer: &RangeAnswer, len: u64) {
    match *answer {
        RangeAnswer::Full => return,
        RangeAnswer::Partial { start, end } => {
            out.extend_from_slice(b"Content-Range: bytes ");
            push_decimal(out, start);
            out.push(b'-');
            push_decimal(out, end.saturating_sub(1));
        }
        RangeAnswer::Unsatisfiable => out.extend_from_slice(b"Content-Range: bytes *"),
    }
    out.push(b'/');
    push_decimal(out, len);
    out.extend_from_slice(b"\r\n");
}

/// Where the range a request asks for begins, when that is known before the body's
/// length is: the request has exactly one Range line holding one `bytes` range-spec of
/// the form `first-` or `first-last` (see [`range_answer`] for the syntax). `None` for
/// no Range, several lines or specs, another unit, a malformed spec, and a suffix
/// (`-n`), whose start depends on the length.
///
/// The proxy asks it of a Range request that misses, to decide whether to fetch the
/// whole object instead (`--range-whole-below`).
pub fn range_start(req: &[Header<'_>]) -> Option<u64> {
    match only(req, "range").and_then(single_spec)? {
        Spec::From { first, .. } => Some(first),
        Spec::Suffix(_) => None,
    }
}

/// Appends the head of a partial answer cut from a full response: `client_head` is
/// that response's head as relayed (status line and field lines, each ending in CRLF,
/// no blank line: see [`crate::http::response::Response::client_head`]) and `len` its
/// body's length. For [`RangeAnswer::Partial`] the status line becomes `206 Partial
/// Content`, for [`RangeAnswer::Unsatisfiable`] `416 Range Not Satisfiable`; every
/// field line is kept but Content-Length and Content-Range, and the answer's
/// Content-Range and Content-Length follow (RFC 9110 §15.3.7: a 206 carries the fields
/// a 200 would). No blank line. Returns the status, or `None` for
/// [`RangeAnswer::Full`], for which nothing is appended (the response goes as it is).
pub fn push_partial_head(
    out: &mut Vec<u8>,
    client_head: &[u8],
    answer: &RangeAnswer,
    len: u64,
) -> Option<u16> {
    let (status, line, body): (u16, &[u8], u64) = match *answer {
        RangeAnswer::Full => return None,
        RangeAnswer::Partial { start, end } => (
            206,
            b"HTTP/1.1 206 Partial Content\r\n",
            end.saturating_sub(start),
        ),
        RangeAnswer::Unsatisfiable => (416, b"HTTP/1.1 416 Range Not Satisfiable\r\n", 0),
    };
    out.extend_from_slice(line);
    for field in client_head.split_inclusive(|&b| b == b'\n').skip(1) {
        let name = field.split(|&b| b == b':').next().unwrap_or_default();
        let framing = name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"content-range");
        if !framing {
            out.extend_from_slice(field);
        }
    }
    push_content_range(out, answer, len);
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, body);
    out.extend_from_slice(b"\r\n");
    Some(status)
}

/// A syntactically valid byte range-spec (§14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last`, or `first-` when `last` is `None`; `first <= last`.
    From { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

impl Spec {
    fn answer(self, len: u64) -> RangeAnswer {
        match self {
            Spec::Suffix(0) => RangeAnswer::Unsatisfiable,
            Spec::Suffix(_) if len == 0 => RangeAnswer::Full,
            Spec::Suffix(suffix) => RangeAnswer::Partial {
                start: len.saturating_sub(suffix),
                end: len,
            },
            Spec::From { first, .. } if first >= len => RangeAnswer::Unsatisfiable,
            Spec::From { first, last } => RangeAnswer::Partial {
                start: first,
                end: last.map_or(len, |last| last.saturating_add(1).min(len)),
            },
        }
    }
}

/// The one range-spec of a `bytes` Range value; `None` for another unit, no spec,
/// several specs or a malformed one.
fn single_spec(value: &[u8]) -> Option<Spec> {
    let (unit, set) = split_once(value.trim_ascii(), b'=')?;
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = list_elements(set);
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return None;
    };
    let (first, last) = split_once(spec, b'-')?;
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(Spec::Suffix(number(last)?)),
        (false, true) => Some(Spec::From {
            first: number(first)?,
            last: None,
        }),
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            (first <= last).then_some(Spec::From {
                first,
                last: Some(last),
            })
        }
    }
}

/// Is the If-Range `validator` a strong match for `stored` (§13.1.5)?
fn validates(validator: &[u8], stored: &[Header<'_>]) -> bool {
    let validator = validator.trim_ascii();
    if validator.starts_with(b"\"") {
        return is_opaque_tag(validator)
            && only(stored, "etag").is_some_and(|etag| etag.trim_ascii() == validator);
    }
    // A weak tag (`W/"…"`) lands here too, and is no HTTP-date.
    let Some(modified) = parse_http_date(validator) else {
        return false;
    };
    only(stored, "last-modified").is_some_and(|stored| stored.trim_ascii() == validator)
        && only(stored, "date")
            .and_then(parse_http_date)
            .is_some_and(|date| date > modified)
}

/// `opaque-tag` (§8.8.3): a strong entity-tag, quotes included.
fn is_opaque_tag(tag: &[u8]) -> bool {
    tag.strip_prefix(b"\"")
        .and_then(|tag| tag.strip_suffix(b"\""))
        .is_some_and(|etagc| {
            etagc
                .iter()
                .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        })
}

/// The value of the only field line named `name`; `None` when there is none or
/// several, as a repeated singleton field cannot be trusted.
fn only<'h>(fields: &'h [Header<'h>], name: &'h str) -> Option<&'h [u8]> {
    let mut values = field_values(fields, name);
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// `bytes` split around its first `sep`, which belongs to neither side.
fn split_once(bytes: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let mut parts = bytes.splitn(2, |&b| b == sep);
    Some((parts.next()?, parts.next()?))
}

/// A non-empty run of ASCII digits that fits in a u64.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::{fields, mutate, next_u64};
    use RangeAnswer::{Full, Partial, Unsatisfiable};

    const MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const LATER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn answer(req: &[(&str, &str)], stored: &[(&str, &str)], len: u64) -> RangeAnswer {
        range_answer(&fields(req), &fields(stored), len)
    }

    fn range(value: &str, len: u64) -> RangeAnswer {
        answer(&[("Range", value)], &[], len)
    }

    fn part(start: u64, end: u64) -> RangeAnswer {
        Partial { start, end }
    }

    fn content_range(answer: RangeAnswer, len: u64) -> String {
        let mut out = b"x".to_vec();
        push_content_range(&mut out, &answer, len);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn no_range_is_the_full_body() {
        assert_eq!(answer(&[("Accept", "*/*")], &[], 10), Full);
        assert_eq!(answer(&[], &[], 0), Full);
    }

    #[test]
    fn several_range_lines_are_the_full_body() {
        let req = [("Range", "bytes=0-1"), ("range", "bytes=0-1")];
        assert_eq!(answer(&req, &[], 10), Full);
    }

    #[test]
    fn the_unit_is_bytes_in_any_case() {
        assert_eq!(range("bytes=0-1", 10), part(0, 2));
        assert_eq!(range("BYTES=0-1", 10), part(0, 2));
        assert_eq!(range("Bytes=0-1", 10), part(0, 2));
        for other in [
            "items=0-1",
            "byte=0-1",
            "bytesx=0-1",
            "=0-1",
            "bytes 0-1",
            "bytes",
        ] {
            assert_eq!(range(other, 10), Full, "{other}");
        }
    }

    #[test]
    fn whitespace_is_allowed_around_the_spec_only() {
        assert_eq!(range("bytes= 0-1 ", 10), part(0, 2));
        assert_eq!(range(" bytes=\t-2\t", 10), part(8, 10));
        for odd in ["bytes =0-1", "bytes=0 -1", "bytes=0- 1", "bytes=0 - 1"] {
            assert_eq!(range(odd, 10), Full, "{odd}");
        }
    }

    #[test]
    fn first_last_is_inclusive_and_last_is_clipped_to_the_body() {
        assert_eq!(range("bytes=0-0", 10), part(0, 1));
        assert_eq!(range("bytes=2-5", 10), part(2, 6));
        assert_eq!(range("bytes=0-9", 10), part(0, 10));
        assert_eq!(range("bytes=5-10", 10), part(5, 10));
        assert_eq!(range("bytes=9-500", 10), part(9, 10));
    }

    #[test]
    fn first_after_last_is_malformed() {
        assert_eq!(range("bytes=5-4", 10), Full);
        assert_eq!(range("bytes=50-40", 10), Full);
    }

    #[test]
    fn open_ended_range_runs_to_the_end() {
        assert_eq!(range("bytes=0-", 10), part(0, 10));
        assert_eq!(range("bytes=9-", 10), part(9, 10));
    }

    #[test]
    fn suffix_is_the_last_bytes_or_the_whole_body() {
        assert_eq!(range("bytes=-1", 10), part(9, 10));
        assert_eq!(range("bytes=-10", 10), part(0, 10));
        assert_eq!(range("bytes=-11", 10), part(0, 10));
        assert_eq!(range("bytes=-18446744073709551615", 10), part(0, 10));
    }

    #[test]
    fn zero_suffix_is_unsatisfiable() {
        assert_eq!(range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(range("bytes=-000", 10), Unsatisfiable);
    }

    #[test]
    fn first_at_or_past_the_end_is_unsatisfiable() {
        assert_eq!(range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(range("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(range("bytes=11-11", 10), Unsatisfiable);
        assert_eq!(range("bytes=18446744073709551615-", 10), Unsatisfiable);
    }

    #[test]
    fn malformed_specs_are_the_full_body() {
        for spec in [
            "", "-", "--1", "1--2", "1-2-3", "a-b", "1-b", "+1-2", "1-+2", "-+1", "0x1-2", "1.0-2",
            "1", "1_000-", "١-٢",
        ] {
            assert_eq!(range(&format!("bytes={spec}"), 10), Full, "{spec}");
        }
    }

    #[test]
    fn numbers_past_u64_are_malformed() {
        assert_eq!(range("bytes=18446744073709551616-", 10), Full);
        assert_eq!(range("bytes=0-18446744073709551616", 10), Full);
        assert_eq!(range("bytes=-18446744073709551616", 10), Full);
        assert_eq!(range("bytes=0-18446744073709551615", 10), part(0, 10));
        assert_eq!(
            range("bytes=1-18446744073709551615", u64::MAX),
            part(1, u64::MAX)
        );
    }

    #[test]
    fn several_ranges_are_the_full_body() {
        assert_eq!(range("bytes=0-1,3-4", 10), Full);
        assert_eq!(range("bytes=0-1, 0-1", 10), Full);
        assert_eq!(range("bytes=-1,0-", 10), Full);
        assert_eq!(range("bytes=0-1,x", 10), Full);
    }

    #[test]
    fn empty_list_members_are_skipped() {
        assert_eq!(range("bytes=0-1,", 10), part(0, 2));
        assert_eq!(range("bytes=, ,0-1", 10), part(0, 2));
        assert_eq!(range("bytes=,", 10), Full);
        assert_eq!(range("bytes=", 10), Full);
    }

    #[test]
    fn an_empty_body_satisfies_no_range() {
        for spec in ["0-", "0-0", "0-5", "3-", "-0"] {
            assert_eq!(range(&format!("bytes={spec}"), 0), Unsatisfiable, "{spec}");
        }
        for spec in ["5-4", "x", "0-1,2-3"] {
            assert_eq!(range(&format!("bytes={spec}"), 0), Full, "{spec}");
        }
    }

    #[test]
    fn suffix_on_an_empty_body_is_the_empty_full_body() {
        assert_eq!(range("bytes=-1", 0), Full);
    }

    #[test]
    fn byte_ranges_select_exactly_the_bytes_they_name() {
        for len in 0..6u64 {
            for first in 0..8u64 {
                for last in first..8 {
                    let named: Vec<u64> = (0..len).filter(|i| (first..=last).contains(i)).collect();
                    let expected = match (named.first(), named.last()) {
                        (Some(&start), Some(&end)) => part(start, end + 1),
                        _ => Unsatisfiable,
                    };
                    assert_eq!(range(&format!("bytes={first}-{last}"), len), expected);
                }
            }
        }
    }

    #[test]
    fn if_range_without_range_changes_nothing() {
        let stored = [("ETag", "\"a\"")];
        assert_eq!(answer(&[("If-Range", "\"b\"")], &stored, 10), Full);
        let req = [("If-Range", "\"a\""), ("Range", "bytes=5-4")];
        assert_eq!(answer(&req, &stored, 10), Full);
    }

    #[test]
    fn if_range_with_the_stored_strong_etag_honours_range() {
        let stored = [("ETag", " \"v1\" ")];
        let req = |tag| [("Range", "bytes=0-1"), ("If-Range", tag)];
        assert_eq!(answer(&req("\"v1\""), &stored, 10), part(0, 2));
        assert_eq!(answer(&req("\t\"v1\" "), &stored, 10), part(0, 2));
        assert_eq!(answer(&req("\"v2\""), &stored, 10), Full);
        assert_eq!(answer(&req("\"V1\""), &stored, 10), Full);
        assert_eq!(answer(&req("\"v1\", \"v2\""), &stored, 10), Full);
        assert_eq!(answer(&req("\"v1\""), &[], 10), Full);
    }

    #[test]
    fn if_range_needs_strong_tags_on_both_sides() {
        let req = |tag| [("Range", "bytes=0-1"), ("If-Range", tag)];
        assert_eq!(answer(&req("W/\"v1\""), &[("ETag", "W/\"v1\"")], 10), Full);
        assert_eq!(answer(&req("\"v1\""), &[("ETag", "W/\"v1\"")], 10), Full);
        assert_eq!(answer(&req("W/\"v1\""), &[("ETag", "\"v1\"")], 10), Full);
    }

    #[test]
    fn if_range_rejects_malformed_tags_even_when_equal() {
        for tag in ["\"", "\"a\"b\"", "\"a b\"", "\"a"] {
            let req = [("Range", "bytes=0-1"), ("If-Range", tag)];
            assert_eq!(answer(&req, &[("ETag", tag)], 10), Full, "{tag}");
        }
        let req = [("Range", "bytes=0-1"), ("If-Range", "\"\"")];
        assert_eq!(answer(&req, &[("ETag", "\"\"")], 10), part(0, 2));
    }

    #[test]
    fn if_range_with_the_stored_last_modified_honours_range() {
        let stored = [("Last-Modified", MODIFIED), ("Date", LATER)];
        let req = |date| [("Range", "bytes=-3"), ("If-Range", date)];
        assert_eq!(answer(&req(MODIFIED), &stored, 10), part(7, 10));
        assert_eq!(
            answer(&req(" Sun, 06 Nov 1994 08:49:37 GMT\t"), &stored, 10),
            part(7, 10)
        );
        assert_eq!(answer(&req(LATER), &stored, 10), Full);
        assert_eq!(
            answer(&req("Sun, 06 Nov 1994 08:49:36 GMT"), &stored, 10),
            Full
        );
    }

    #[test]
    fn if_range_dates_must_match_byte_for_byte() {
        let stored = [("Last-Modified", MODIFIED), ("Date", LATER)];
        for same_instant in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "sun, 06 nov 1994 08:49:37 GMT",
            "Sun,  06 Nov 1994 08:49:37 GMT",
        ] {
            let req = [("Range", "bytes=0-1"), ("If-Range", same_instant)];
            assert_eq!(answer(&req, &stored, 10), Full, "{same_instant}");
        }
    }

    #[test]
    fn if_range_date_must_be_an_http_date() {
        let req = [("Range", "bytes=0-1"), ("If-Range", "yesterday")];
        let stored = [("Last-Modified", "yesterday"), ("Date", LATER)];
        assert_eq!(answer(&req, &stored, 10), Full);
    }

    #[test]
    fn if_range_last_modified_must_be_strong() {
        // §8.8.2.2: a cache may treat Last-Modified as strong only when its Date is
        // at least a second later; otherwise two versions may share the second.
        let req = [("Range", "bytes=0-1"), ("If-Range", MODIFIED)];
        for date in [MODIFIED, "Sun, 06 Nov 1994 08:49:36 GMT", "junk"] {
            let stored = [("Last-Modified", MODIFIED), ("Date", date)];
            assert_eq!(answer(&req, &stored, 10), Full, "{date}");
        }
        assert_eq!(answer(&req, &[("Last-Modified", MODIFIED)], 10), Full);
    }

    #[test]
    fn if_range_decides_between_unsatisfiable_and_full() {
        let stored = [("ETag", "\"v1\"")];
        let req = |tag| [("Range", "bytes=10-"), ("If-Range", tag)];
        assert_eq!(answer(&req("\"v1\""), &stored, 10), Unsatisfiable);
        assert_eq!(answer(&req("\"v2\""), &stored, 10), Full);
    }

    #[test]
    fn several_if_range_lines_are_the_full_body() {
        let stored = [("ETag", "\"v1\"")];
        let req = [
            ("Range", "bytes=0-1"),
            ("If-Range", "\"v1\""),
            ("if-range", "\"v1\""),
        ];
        assert_eq!(answer(&req, &stored, 10), Full);
    }

    #[test]
    fn repeated_stored_validators_are_not_trusted() {
        let req = [("Range", "bytes=0-1"), ("If-Range", "\"v1\"")];
        let stored = [("ETag", "\"v1\""), ("ETag", "\"v1\"")];
        assert_eq!(answer(&req, &stored, 10), Full);
        let req = [("Range", "bytes=0-1"), ("If-Range", MODIFIED)];
        let stored = [
            ("Last-Modified", MODIFIED),
            ("Date", LATER),
            ("Date", LATER),
        ];
        assert_eq!(answer(&req, &stored, 10), Full);
    }

    #[test]
    fn content_range_describes_the_answer() {
        assert_eq!(content_range(Full, 10), "x");
        assert_eq!(
            content_range(part(0, 10), 10),
            "xContent-Range: bytes 0-9/10\r\n"
        );
        assert_eq!(
            content_range(part(7, 8), 10),
            "xContent-Range: bytes 7-7/10\r\n"
        );
        assert_eq!(
            content_range(Unsatisfiable, 10),
            "xContent-Range: bytes */10\r\n"
        );
        assert_eq!(
            content_range(part(0, u64::MAX), u64::MAX),
            "xContent-Range: bytes 0-18446744073709551614/18446744073709551615\r\n"
        );
    }

    #[test]
    fn a_range_start_is_known_for_one_range_from_a_first_byte() {
        let start = |value: &str| range_start(&fields(&[("Range", value)]));
        assert_eq!(start("bytes=0-"), Some(0));
        assert_eq!(start("bytes=100-"), Some(100));
        assert_eq!(start("BYTES= 7-9 "), Some(7));
        assert_eq!(start("bytes=5-100,"), Some(5));
        for none in [
            "bytes=-5",
            "bytes=0-1,5-6",
            "items=0-",
            "bytes=5-4",
            "bytes=x-",
            "bytes=18446744073709551616-",
            "",
        ] {
            assert_eq!(start(none), None, "{none}");
        }
        assert_eq!(range_start(&fields(&[])), None);
        let twice = [("Range", "bytes=0-"), ("Range", "bytes=0-")];
        assert_eq!(range_start(&fields(&twice)), None);
    }

    #[test]
    fn a_partial_head_replaces_the_status_and_the_framing_only() {
        let relayed = b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nETag: \"v\"\r\n\
content-length: 10\r\nContent-Range: bytes 0-9/10\r\nVia: 1.1 larder\r\n";
        let mut out = Vec::new();
        assert_eq!(
            push_partial_head(&mut out, relayed, &part(2, 5), 10),
            Some(206)
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 206 Partial Content\r\nContent-Type: a/b\r\nETag: \"v\"\r\n\
Via: 1.1 larder\r\nContent-Range: bytes 2-4/10\r\nContent-Length: 3\r\n"
        );
        let mut out = Vec::new();
        assert_eq!(
            push_partial_head(&mut out, relayed, &Unsatisfiable, 10),
            Some(416)
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 416 Range Not Satisfiable\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("Content-Range: bytes */10\r\nContent-Length: 0\r\n"),
            "{text}"
        );
        let mut out = Vec::new();
        assert_eq!(push_partial_head(&mut out, relayed, &Full, 10), None);
        assert!(out.is_empty());
    }

    #[test]
    fn odd_input_never_panics_and_partials_stay_in_the_body() {
        let mut rng = 0x2545_f491_4f6c_dd1d;
        let lens = [0, 1, 2, 10, 1 << 40, u64::MAX - 1, u64::MAX];
        let seeds: [&[u8]; 4] = [
            b"bytes=0-5",
            b"bytes=-18446744073709551615",
            b"bytes=18446744073709551614-",
            MODIFIED.as_bytes(),
        ];
        let alphabet = b"bytes=-,0123456789 \t\"W/\xff";
        for round in 0..50_000 {
            let mut range = seeds[round % seeds.len()].to_vec();
            mutate(&mut range, &mut rng, alphabet);
            let mut validator = b"\"v1\"".to_vec();
            if round % 2 == 0 {
                validator = (0..next_u64(&mut rng) % 12)
                    .map(|_| next_u64(&mut rng) as u8)
                    .collect();
            }
            mutate(&mut validator, &mut rng, alphabet);
            let req = [
                Header {
                    name: "Range",
                    value: &range,
                },
                Header {
                    name: "If-Range",
                    value: &validator,
                },
            ];
            let stored = [
                Header {
                    name: "ETag",
                    value: &validator,
                },
                Header {
                    name: "Last-Modified",
                    value: &range,
                },
                Header {
                    name: "Date",
                    value: LATER.as_bytes(),
                },
            ];
            let len = lens[round % lens.len()];
            for req in [&req[..1], &req[..]] {
                let answer = range_answer(req, &stored, len);
                if let Partial { start, end } = answer {
                    assert!(start < end && end <= len, "{answer:?} {len}");
                }
                push_content_range(&mut Vec::new(), &answer, len);
            }
        }
    }
}
