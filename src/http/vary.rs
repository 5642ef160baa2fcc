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
/// `Accept-Language` members are further made canonical (see
/// [`push_accept_language`]): `en-US;q=0.5, de` and `de,EN-us ; Q=0.50` are one
/// variant.
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
            if name == b"accept-language" {
                push_accept_language(out, values.flat_map(list_elements));
            } else {
                push_members(out, values.flat_map(list_elements), push_normalized);
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

/// Appends each member with `push`, joined by `", "`.
fn push_members<'a>(
    out: &mut Vec<u8>,
    members: impl Iterator<Item = &'a [u8]>,
    push: impl Fn(&mut Vec<u8>, &[u8]),
) {
    let mut first = true;
    for member in members {
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        push(out, member);
    }
}

/// Appends the members of an Accept-Language value (RFC 9110 §12.5.4) in a
/// canonical form, as RFC 9111 §4.1 lets a cache normalise selecting fields:
/// - language ranges and parameters are ASCII lowercased (RFC 4647 ranges and the
///   `q` name are case-insensitive), and whitespace around `;` and `=` goes;
/// - a weight is written `q=0.5` (no trailing zeros), and `q=1`, `q=1.000` and no
///   weight are all no weight;
/// - members are ordered by weight, highest first. Members of equal weight keep
///   their order: RFC 9110 §12.5.4 notes that recipients may take the order of
///   equally weighted tags as a preference, so `en, de` and `de, en` stay apart.
///
/// When a member is not `range [ ;q=qvalue ]` (another parameter, a bad qvalue)
/// its weight is unknown, so no member is moved; each is still lowercased and
/// stripped of the whitespace around `;` and `=`.
fn push_accept_language<'a>(out: &mut Vec<u8>, members: impl Iterator<Item = &'a [u8]>) {
    let mut canonical: Vec<Vec<u8>> = Vec::new();
    for member in members {
        let mut tight = Vec::with_capacity(member.len());
        push_tight_lowercase(&mut tight, member);
        canonical.push(tight);
    }
    let mut weighted: Vec<(&[u8], u16)> = Vec::with_capacity(canonical.len());
    for member in &canonical {
        match weighed(member) {
            Some(w) => weighted.push(w),
            None => {
                push_members(out, canonical.iter().map(Vec::as_slice), |o, m| {
                    o.extend_from_slice(m)
                });
                return;
            }
        }
    }
    // A stable sort: equal weights keep the client's order.
    weighted.sort_by_key(|&(_, weight)| std::cmp::Reverse(weight));
    for (i, &(range, weight)) in weighted.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(range);
        if weight < 1000 {
            push_qvalue(out, weight);
        }
    }
}

/// Appends `member` lowercased, with runs of whitespace or control bytes made one
/// space as [`push_normalized`] does, except next to `;` and `=`, where they go.
fn push_tight_lowercase(out: &mut Vec<u8>, member: &[u8]) {
    let sticky = |c: u8| c == b';' || c == b'=';
    let mut gap = false;
    let mut last = None;
    for &b in member {
        if b <= b' ' || b == 0x7f {
            gap = true;
            continue;
        }
        if gap && !sticky(b) && last.is_some_and(|c| !sticky(c)) {
            out.push(b' ');
        }
        gap = false;
        last = Some(b);
        out.push(b.to_ascii_lowercase());
    }
}

/// Splits a lowercased, tightened Accept-Language member into its range and its
/// weight in thousandths (1000 when it has none); `None` unless the member is
/// `range` or `range;q=qvalue` with a range of letters, digits, `-` or `*`.
fn weighed(member: &[u8]) -> Option<(&[u8], u16)> {
    let (range, weight) = match member.iter().position(|&b| b == b';') {
        Some(semi) => (
            member.get(..semi)?,
            qvalue(member.get(semi + 1..)?.strip_prefix(b"q=")?)?,
        ),
        None => (member, 1000),
    };
    let range_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'*';
    if range.is_empty() || !range.iter().all(range_byte) {
        return None;
    }
    Some((range, weight))
}

/// Parses a qvalue (RFC 9110 §12.4.2) into thousandths: `0`, `0.` and up to three
/// digits, or `1`, `1.` and up to three zeros.
fn qvalue(value: &[u8]) -> Option<u16> {
    let (whole, fraction) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (value.get(..dot)?, value.get(dot + 1..)?),
        None => (value, &[][..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let thousandths = fraction
        .iter()
        .chain(b"000".iter())
        .take(3)
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Appends `;q=0.xyz` for a weight below 1000 thousandths, without trailing zeros
/// (`;q=0` for none).
fn push_qvalue(out: &mut Vec<u8>, thousandths: u16) {
    out.extend_from_slice(b";q=0");
    if thousandths == 0 {
        return;
    }
    out.push(b'.');
    let digits = [thousandths / 100, thousandths / 10 % 10, thousandths % 10];
    let len = digits.iter().rposition(|&d| d != 0).map_or(0, |i| i + 1);
    for d in digits.iter().take(len) {
        out.push(b'0' + *d as u8);
    }
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

    fn lang(values: &[&'static str]) -> String {
        let req: Vec<(&str, &[u8])> = values
            .iter()
            .map(|v| ("Accept-Language", v.as_bytes()))
            .collect();
        key(&["Accept-Language"], &req).unwrap()
    }

    #[test]
    fn accept_language_ignores_case_and_whitespace() {
        // As cache-tests' vary-normalise-lang-case and -lang-space.
        assert_eq!(lang(&["en, de"]), "accept-language:en, de\n");
        assert_eq!(lang(&["eN, De"]), lang(&["en, de"]));
        assert_eq!(lang(&[" en ,   de"]), lang(&["en, de"]));
        assert_eq!(lang(&["en,de"]), lang(&["en, de"]));
        assert_eq!(lang(&["en", "de"]), lang(&["en, de"]));
        assert_eq!(lang(&["EN-us ; Q = 0.5"]), "accept-language:en-us;q=0.5\n");
    }

    #[test]
    fn accept_language_weights_are_canonical_and_order_members() {
        assert_eq!(lang(&["en;q=0.5, de"]), "accept-language:de, en;q=0.5\n");
        assert_eq!(lang(&["de, en;q=0.500"]), lang(&["en;q=0.5, de"]));
        assert_eq!(lang(&["de;q=1.000, en;q=1"]), "accept-language:de, en\n");
        assert_eq!(
            lang(&["fr;q=0.25, *;q=0"]),
            "accept-language:fr;q=0.25, *;q=0\n"
        );
        assert_eq!(lang(&["*;q=0.0, fr;Q=0.250"]), lang(&["fr;q=0.25, *;q=0"]));
        assert_eq!(lang(&["en;q=0.001"]), "accept-language:en;q=0.001\n");
        assert_eq!(lang(&["en;q=0."]), "accept-language:en;q=0\n");
    }

    #[test]
    fn accept_language_order_of_equal_weights_is_kept() {
        // RFC 9110 §12.5.4: the order of equally weighted tags may be a preference.
        assert_ne!(lang(&["en, de"]), lang(&["de, en"]));
        assert_eq!(
            lang(&["fr;q=0.8, en, de;q=0.8, it"]),
            "accept-language:en, it, fr;q=0.8, de;q=0.8\n"
        );
        assert_ne!(lang(&["en, de"]), lang(&["en"]));
        assert_ne!(lang(&["en;q=0.5"]), lang(&["en"]));
    }

    #[test]
    fn accept_language_with_unknown_weights_is_not_reordered() {
        for (value, want) in [
            ("en;q=0.5, de;x=1", "en;q=0.5, de;x=1"),
            ("en;q=2, de", "en;q=2, de"),
            ("en;q=0.5555, de", "en;q=0.5555, de"),
            ("en;q=1.5, de", "en;q=1.5, de"),
            ("en;q=, de", "en;q=, de"),
            ("en;q=0.5;q=0.5, de", "en;q=0.5;q=0.5, de"),
            ("e n;q=0.5, de", "e n;q=0.5, de"),
            (";q=0.5, de", ";q=0.5, de"),
        ] {
            assert_eq!(
                lang(&[value]),
                format!("accept-language:{want}\n"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn other_fields_keep_case_and_order() {
        let key_of = |v: &'static str| key(&["Accept"], &[("Accept", v.as_bytes())]);
        assert_ne!(
            key_of("text/html, text/plain"),
            key_of("text/plain, text/html")
        );
        assert_ne!(key_of("Text/HTML"), key_of("text/html"));
    }

    #[test]
    fn mutated_accept_language_never_panics() {
        use crate::http::testing::mutate;
        let mut rng = 7;
        let alphabet = b" ,;=.q01259en-*\t\x00";
        for _ in 0..20_000 {
            let mut input = b"en-US;q=0.5, de ; q=1.0, *;q=0".to_vec();
            mutate(&mut input, &mut rng, alphabet);
            let req = [Header {
                name: "Accept-Language",
                value: &input,
            }];
            let resp = [Header {
                name: "Vary",
                value: b"Accept-Language",
            }];
            let mut out = Vec::new();
            assert!(vary_key(&resp, &req, &mut out).is_ok());
            assert!(!out.contains(&0), "{out:?}");
        }
    }

    #[test]
    fn control_bytes_never_reach_the_key() {
        assert_eq!(key(&["X"], &[("X", b"a\0\x01b\x7f")]), Ok("x:a b\n".into()));
    }
}
