//! The secondary cache key from Vary (RFC 9111 §4.1): which request fields a stored
//! response was selected by, so that different variants never answer each other.

use super::freshness::field_values;
use super::is_tchar;
use super::request::list_elements;
use httparse::Header;

/// The response has `Vary: *`: no later request can be known to match it
/// (RFC 9111 §4.1), so it is never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaryStar;

/// Appends the secondary key of the stored `resp` as selected by request `req`.
///
/// Layout: for each field name listed in the response's Vary lines (ASCII
/// lowercased, sorted bytewise, deduplicated; members that are not tokens are
/// skipped since no request field can have such a name), one line:
/// - `name:value\n` when the request has the field, where `value` is the members
///   of all its lines (RFC 9110 §5.3: several lines equal one comma-joined line),
///   each trimmed, runs of whitespace and control bytes inside a member made one
///   space, empty members dropped, joined by `", "`;
/// - `name\n` when the request does not have the field, so that absent and empty
///   never match each other (§4.1).
///
/// No Vary gives an empty key. The key never holds NUL, so the store key
/// `URL ++ "\0" ++ vary_key` is unambiguous. Normalizing by list members makes
/// `gzip,br` and `gzip, br` one variant, at the price of also merging values of
/// non-list fields that differ only in space after a comma.
///
/// `Err(VaryStar)` leaves `out` untouched.
pub fn vary_key(
    resp: &[Header<'_>],
    req: &[Header<'_>],
    out: &mut Vec<u8>,
) -> Result<(), VaryStar> {
    for name in vary_names(resp)? {
        out.extend_from_slice(&name);
        let mut values = req
            .iter()
            .filter(|h| h.name.as_bytes().eq_ignore_ascii_case(&name))
            .map(|h| h.value)
            .peekable();
        if values.peek().is_some() {
            out.push(b':');
            let mut first = true;
            for member in values.flat_map(list_elements) {
                if !first {
                    out.extend_from_slice(b", ");
                }
                first = false;
                push_normalized(out, member);
            }
        }
        out.push(b'\n');
    }
    Ok(())
}

/// The field names in the response's Vary lines, lowercased, sorted and
/// deduplicated; `Err` if any member is `*`.
pub(super) fn vary_names(resp: &[Header<'_>]) -> Result<Vec<Vec<u8>>, VaryStar> {
    let mut names = Vec::new();
    for member in field_values(resp, "vary").flat_map(list_elements) {
        if member == b"*" {
            return Err(VaryStar);
        }
        if member.iter().all(|&b| is_tchar(b)) {
            names.push(member.to_ascii_lowercase());
        }
    }
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

/// Appends `member` with each run of whitespace or control bytes as one space and
/// none at either end.
fn push_normalized(out: &mut Vec<u8>, member: &[u8]) {
    let mut gap = false;
    let mut wrote = false;
    for &b in member {
        if b <= b' ' || b == 0x7f {
            gap = true;
            continue;
        }
        if gap && wrote {
            out.push(b' ');
        }
        gap = false;
        wrote = true;
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(list: &[(&'a str, &'a [u8])]) -> Vec<Header<'a>> {
        list.iter()
            .map(|&(name, value)| Header { name, value })
            .collect()
    }

    fn key(
        vary: &[&'static str],
        req: &[(&'static str, &'static [u8])],
    ) -> Result<String, VaryStar> {
        let resp: Vec<Header> = vary
            .iter()
            .map(|v| Header {
                name: "Vary",
                value: v.as_bytes(),
            })
            .collect();
        let mut out = Vec::new();
        vary_key(&resp, &fields(req), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn no_vary_is_an_empty_key() {
        assert_eq!(key(&[], &[("Accept", b"*/*")]), Ok(String::new()));
        assert_eq!(key(&[" , "], &[]), Ok(String::new()));
    }

    #[test]
    fn names_are_lowercased_sorted_and_deduplicated_across_lines() {
        let req = [
            ("accept-encoding", &b"gzip"[..]),
            ("Accept-Language", b"en"),
        ];
        assert_eq!(
            key(
                &["Accept-Language, accept-encoding", "ACCEPT-ENCODING"],
                &req
            ),
            Ok("accept-encoding:gzip\naccept-language:en\n".into())
        );
    }

    #[test]
    fn absent_and_empty_request_fields_differ() {
        assert_eq!(key(&["Cookie"], &[]), Ok("cookie\n".into()));
        assert_eq!(key(&["Cookie"], &[("Cookie", b"")]), Ok("cookie:\n".into()));
    }

    #[test]
    fn several_lines_equal_one_comma_joined_line() {
        let split = key(
            &["Accept-Encoding"],
            &[("Accept-Encoding", b"gzip"), ("accept-encoding", b" br ")],
        );
        let joined = key(&["Accept-Encoding"], &[("Accept-Encoding", b"gzip,br")]);
        assert_eq!(split, Ok("accept-encoding:gzip, br\n".into()));
        assert_eq!(split, joined);
    }

    #[test]
    fn whitespace_inside_members_is_normalized() {
        assert_eq!(
            key(
                &["User-Agent"],
                &[("User-Agent", b"  curl/8 \t (x86)  ,, ")]
            ),
            Ok("user-agent:curl/8 (x86)\n".into())
        );
    }

    #[test]
    fn different_values_give_different_keys() {
        let gzip = key(&["Accept-Encoding"], &[("Accept-Encoding", b"gzip")]);
        let br = key(&["Accept-Encoding"], &[("Accept-Encoding", b"br")]);
        assert_ne!(gzip, br);
    }

    #[test]
    fn vary_star_is_an_error_and_writes_nothing() {
        let resp = fields(&[("Vary", b"Accept"), ("Vary", b"Origin, *")]);
        let mut out = b"url\0".to_vec();
        assert_eq!(vary_key(&resp, &[], &mut out), Err(VaryStar));
        assert_eq!(out, b"url\0");
    }

    #[test]
    fn members_that_are_not_tokens_are_skipped() {
        assert_eq!(
            key(&["a:b, x y, \"q\", Origin"], &[("Origin", b"http://a")]),
            Ok("origin:http://a\n".into())
        );
    }

    #[test]
    fn control_bytes_never_reach_the_key() {
        assert_eq!(key(&["X"], &[("X", b"a\0\x01b\x7f")]), Ok("x:a b\n".into()));
    }
}
