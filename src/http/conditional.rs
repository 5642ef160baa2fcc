//! Conditional requests around a stored response: answering a client's own
//! conditions (RFC 9110 §13.1, §13.2.2), asking the origin whether a stale entry
//! is still good (RFC 9111 §4.3.1) and merging its 304 into the stored head
//! (RFC 9111 §3.2, §4.3.4).

use super::date::parse_http_date;
use super::freshness::field_values;
use super::request::{is_hop_by_hop, list_elements, valid_value, write_field};
use httparse::Header;

/// Fields of a 304 that never replace the stored ones besides hop-by-hop fields
/// (which are not stored): the stored body's framing and range (RFC 9111 §3.2 keeps
/// Content-Length; Transfer-Encoding and Content-Range describe the 304's own message).
const NOT_REFRESHED: [&str; 3] = ["content-length", "transfer-encoding", "content-range"];

/// True when larder should answer the client 304 Not Modified from the stored
/// response `stored` rather than send it. The caller asks only for GET and HEAD,
/// and only with a response it may serve.
///
/// - If-None-Match, when present, decides alone (RFC 9110 §13.2.2): 304 when it
///   is `*` or one of its entity-tags weakly matches the stored ETag (§8.8.3.2);
///   members after a malformed one are not read.
/// - Otherwise a single If-Modified-Since line holding a valid HTTP-date gives 304
///   when the stored Last-Modified (or, without one, the stored Date) is not
///   later (§13.1.3); a Last-Modified that does not parse gives no 304.
///
/// Any other case is false: serving the full response is always correct.
pub fn client_conditional(req: &[Header<'_>], stored: &[Header<'_>]) -> bool {
    let mut none_match = field_values(req, "if-none-match").peekable();
    if none_match.peek().is_some() {
        let etag = field_values(stored, "etag")
            .next()
            .and_then(|v| EntityTags(v).next());
        return none_match.any(|list| {
            list.trim_ascii() == b"*"
                || etag.is_some_and(|etag| EntityTags(list).any(|tag| tag == etag))
        });
    }
    let mut since = field_values(req, "if-modified-since");
    let (Some(since), None) = (since.next(), since.next()) else {
        return false;
    };
    let Some(since) = parse_http_date(since) else {
        return false;
    };
    field_values(stored, "last-modified")
        .next()
        .or_else(|| field_values(stored, "date").next())
        .and_then(parse_http_date)
        .is_some_and(|modified| modified <= since)
}

/// Appends the validators for revalidating `stored` with its origin (RFC 9111
/// §4.3.1): `If-Modified-Since: <stored Last-Modified>\r\n` and
/// `If-None-Match: <stored ETag>\r\n`, each only when present, with the first
/// stored value verbatim (surrounding whitespace aside) so that an origin which
/// compares strings rather than dates still matches.
pub fn revalidation_fields(stored: &[Header<'_>], out: &mut Vec<u8>) {
    for (field, validator) in [
        ("last-modified", "If-Modified-Since"),
        ("etag", "If-None-Match"),
    ] {
        let value = field_values(stored, field).next().unwrap_or_default();
        if !value.trim_ascii().is_empty() && valid_value(value) {
            write_field(out, validator, value);
        }
    }
}

/// Appends the stored head `stored_head` updated by the 304 `not_modified`
/// (RFC 9111 §3.2, §4.3.4).
///
/// `stored_head` is a raw head, `HTTP/1.1 200 OK\r\nName: value\r\n...\r\n\r\n`;
/// bare LF line ends are accepted and whatever follows the blank line is ignored.
/// Written: the stored status line; every stored field line whose name the 304
/// does not carry, in order and verbatim (continuation lines follow their field);
/// then every field line of the 304 as `Name: value\r\n`, in the 304's order, except
/// Content-Length, Transfer-Encoding, Content-Range, hop-by-hop fields and those the
/// 304's Connection names; then the blank line. So a name the 304 carries has
/// exactly its lines.
///
/// The stored Age is always dropped: it described the old response, and keeping it
/// would count that age again from the new request and response times. The stored
/// Date is replaced only if the 304 has one, so a caller whose 304 lacks Date should
/// add one first (RFC 9110 §6.6.1), or the entry's age keeps growing from the old Date.
pub fn refresh_head(stored_head: &[u8], not_modified: &[Header<'_>], out: &mut Vec<u8>) {
    let connection: Vec<&[u8]> = field_values(not_modified, "connection")
        .flat_map(list_elements)
        .collect();
    let refreshes = |h: &Header<'_>| {
        !NOT_REFRESHED.iter().any(|n| n.eq_ignore_ascii_case(h.name))
            && !is_hop_by_hop(h.name, &connection)
            && valid_value(h.value)
    };
    let replaced = |name: &[u8]| {
        name.eq_ignore_ascii_case(b"age")
            || not_modified
                .iter()
                .any(|h| h.name.as_bytes().eq_ignore_ascii_case(name) && refreshes(h))
    };

    let mut lines = stored_head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    if let Some(status_line) = lines.next() {
        out.extend_from_slice(status_line);
        out.extend_from_slice(b"\r\n");
    }
    let mut keeping = true;
    for line in lines.take_while(|line| !line.is_empty()) {
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            keeping = !replaced(name.trim_ascii());
        }
        if keeping {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    for field in not_modified.iter().filter(|h| refreshes(h)) {
        write_field(out, field.name, field.value);
    }
    out.extend_from_slice(b"\r\n");
}

/// The opaque-tags of an entity-tag list (RFC 9110 §8.8.3), without their quotes
/// and without any `W/`, which is what weak comparison compares (§8.8.3.2). Ends at
/// the end of the list or at the first malformed member.
struct EntityTags<'a>(&'a [u8]);

impl<'a> Iterator for EntityTags<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = std::mem::take(&mut self.0);
        let start = rest
            .iter()
            .position(|&b| b != b',' && !b.is_ascii_whitespace())?;
        let rest = rest.get(start..)?;
        let rest = rest.strip_prefix(b"W/").unwrap_or(rest);
        let inner = rest.strip_prefix(b"\"")?;
        let close = inner.iter().position(|&b| b == b'"')?;
        let (opaque, after) = inner.split_at(close);
        // etagc = %x21 / %x23-7E / obs-text
        if !opaque
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        let after = after.get(1..)?.trim_ascii_start();
        if !after.is_empty() && !after.starts_with(b",") {
            return None;
        }
        self.0 = after;
        Some(opaque)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::{fields, mutate};

    fn conditional(req: &[(&str, &str)], stored: &[(&str, &str)]) -> bool {
        client_conditional(&fields(req), &fields(stored))
    }

    fn refreshed(stored: &str, not_modified: &[(&str, &str)]) -> String {
        let mut out = Vec::new();
        refresh_head(stored.as_bytes(), &fields(not_modified), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn weak_comparison_follows_the_rfc_9110_table() {
        // RFC 9110 §8.8.3.2: W/"1"~W/"1", W/"1"!~W/"2", W/"1"~"1", "1"~"1".
        for (etag, condition, matches) in [
            ("W/\"1\"", "W/\"1\"", true),
            ("W/\"1\"", "W/\"2\"", false),
            ("W/\"1\"", "\"1\"", true),
            ("\"1\"", "\"1\"", true),
        ] {
            let stored = [("ETag", etag)];
            assert_eq!(
                conditional(&[("If-None-Match", condition)], &stored),
                matches,
                "{etag} {condition}"
            );
        }
    }

    #[test]
    fn if_none_match_lists_and_star_from_rfc_9110() {
        let stored = [("ETag", "\"r2d2xxxx\"")];
        for condition in [
            "\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\"",
            "W/\"xyzzy\", W/\"r2d2xxxx\", W/\"c3piozzzz\"",
            "*",
        ] {
            assert!(
                conditional(&[("If-None-Match", condition)], &stored),
                "{condition}"
            );
        }
        assert!(!conditional(&[("If-None-Match", "\"xyzzy\"")], &stored));
        assert!(conditional(
            &[
                ("If-None-Match", "\"a\""),
                ("If-None-Match", "\"r2d2xxxx\"")
            ],
            &stored
        ));
    }

    #[test]
    fn star_matches_even_without_a_stored_etag() {
        assert!(conditional(&[("If-None-Match", " * ")], &[]));
        assert!(!conditional(&[("If-None-Match", "\"a\"")], &[]));
    }

    #[test]
    fn commas_inside_entity_tags_do_not_split_them() {
        let stored = [("ETag", "\"a,b\"")];
        assert!(conditional(&[("If-None-Match", "\"x\",\"a,b\"")], &stored));
        assert!(!conditional(&[("If-None-Match", "\"a\", \"b\"")], &stored));
    }

    #[test]
    fn malformed_tags_end_the_list() {
        let stored = [("ETag", "\"b\"")];
        assert!(!conditional(&[("If-None-Match", "a, \"b\"")], &stored));
        assert!(!conditional(
            &[("If-None-Match", "\"a\" junk, \"b\"")],
            &stored
        ));
        assert!(!conditional(
            &[("If-None-Match", "\"unterminated")],
            &stored
        ));
        assert!(!conditional(
            &[("If-None-Match", "\"b\"")],
            &[("ETag", "b")]
        ));
        assert!(conditional(&[("If-None-Match", "\"a\",, \"b\"")], &stored));
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let stored = [
            ("ETag", "\"v2\""),
            ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ];
        let req = [
            ("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("If-None-Match", "\"v1\""),
        ];
        assert!(!conditional(&req, &stored));
    }

    #[test]
    fn if_modified_since_compares_with_last_modified() {
        let stored = [("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")];
        let at = |date| conditional(&[("If-Modified-Since", date)], &stored);
        assert!(at("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(at("Sunday, 06-Nov-94 09:00:00 GMT"));
        assert!(!at("Sun, 06 Nov 1994 08:49:36 GMT"));
        assert!(!at("yesterday"));
    }

    #[test]
    fn if_modified_since_falls_back_to_date_only_without_last_modified() {
        let req = [("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")];
        assert!(conditional(
            &req,
            &[("Date", "Sun, 06 Nov 1994 08:00:00 GMT")]
        ));
        assert!(!conditional(
            &req,
            &[
                ("Last-Modified", "junk"),
                ("Date", "Sun, 06 Nov 1994 08:00:00 GMT")
            ]
        ));
        assert!(!conditional(&req, &[]));
    }

    #[test]
    fn repeated_if_modified_since_is_ignored() {
        let stored = [("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")];
        let req = [
            ("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ];
        assert!(!conditional(&req, &stored));
    }

    #[test]
    fn revalidation_sends_the_stored_validators_verbatim() {
        let stored = fields(&[
            ("ETag", "W/\"abc\""),
            ("Last-Modified", "Sunday, 06-Nov-94 08:49:37 GMT"),
            ("Last-Modified", "Mon, 07 Nov 1994 08:49:37 GMT"),
        ]);
        let mut out = Vec::new();
        revalidation_fields(&stored, &mut out);
        assert_eq!(
            out,
            b"If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT\r\nIf-None-Match: W/\"abc\"\r\n"
        );
    }

    #[test]
    fn revalidation_without_validators_adds_nothing() {
        let mut out = Vec::new();
        revalidation_fields(&fields(&[("ETag", "  "), ("Date", "x")]), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn refresh_replaces_every_line_of_a_name_the_304_carries() {
        let stored = "HTTP/1.1 200 OK\r\nDate: old\r\nCache-Control: max-age=1\r\n\
                      Cache-Control: public\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";
        let head = refreshed(
            stored,
            &[
                ("date", "new"),
                ("Cache-Control", "max-age=60"),
                ("ETag", "\"x\""),
            ],
        );
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
             date: new\r\nCache-Control: max-age=60\r\nETag: \"x\"\r\n\r\n"
        );
    }

    #[test]
    fn refresh_keeps_the_stored_framing_and_skips_hop_by_hop() {
        let stored = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Keep: 1\r\n\r\nbody!";
        let head = refreshed(
            stored,
            &[
                ("Content-Length", "0"),
                ("Transfer-Encoding", "chunked"),
                ("Content-Range", "bytes 0-0/5"),
                ("Connection", "close, X-Keep"),
                ("Keep-Alive", "timeout=5"),
                ("X-Keep", "2"),
                ("Expires", "later"),
            ],
        );
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Keep: 1\r\nExpires: later\r\n\r\n"
        );
    }

    #[test]
    fn refresh_drops_the_stored_age_and_takes_the_304s() {
        let stored = "HTTP/1.1 200 OK\r\nAge: 100\r\nETag: \"x\"\r\n\r\n";
        assert_eq!(
            refreshed(stored, &[]),
            "HTTP/1.1 200 OK\r\nETag: \"x\"\r\n\r\n"
        );
        assert_eq!(
            refreshed(stored, &[("Age", "3")]),
            "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nAge: 3\r\n\r\n"
        );
    }

    #[test]
    fn refresh_accepts_bare_lf_and_a_missing_blank_line() {
        assert_eq!(
            refreshed("HTTP/1.0 404 Not Found\nA: 1\nB: 2", &[("b", "3")]),
            "HTTP/1.0 404 Not Found\r\nA: 1\r\nb: 3\r\n\r\n"
        );
    }

    #[test]
    fn refresh_drops_continuation_lines_with_their_field() {
        let stored = "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nY: c\r\n\td\r\n\r\n";
        assert_eq!(
            refreshed(stored, &[("X", "new")]),
            "HTTP/1.1 200 OK\r\nY: c\r\n\td\r\nX: new\r\n\r\n"
        );
    }

    #[test]
    fn refresh_never_panics_on_odd_heads() {
        let mut rng = 99;
        let not_modified = fields(&[("Date", "x"), ("Connection", "a,,b"), ("ETag", "\"e\"")]);
        for _ in 0..50_000 {
            let mut head = b"HTTP/1.1 200 OK\r\nDate: y\r\n a\r\nETag: z\r\n\r\nbody".to_vec();
            mutate(&mut head, &mut rng, b"\r\n: \tDateETag");
            let mut out = Vec::new();
            refresh_head(&head, &not_modified, &mut out);
            let tags = [Header {
                name: "If-None-Match",
                value: &head,
            }];
            let _ = client_conditional(&tags, &not_modified);
        }
    }
}
