//! The heads of stored responses: what is stored, how a stored head is read back,
//! judged (fresh or stale, RFC 9111 §4.2) and written to a client (Age, §5.1), and
//! the variants marker that makes Vary work with a store keyed by byte strings.
//! No clock and no I/O: times are unix seconds from the caller.

use super::ascii::find_either;
use super::cache_control::CacheControl;
use super::freshness::{current_age, freshness_lifetime_with, may_serve_with, Freshness, Stored};
use super::request::{header_slots, list_elements, Slot, STACK_SLOTS};
use super::vary::vary_names;
use super::{push_decimal, ViaName};
use httparse::Header;
use std::mem::MaybeUninit;

/// First line of a variants marker: the record stored under a URL whose responses
/// carry Vary. It cannot be mistaken for a response head, which starts `HTTP/`.
const VARIANTS_LINE: &[u8] = b"LARDER-VARIANTS\r\n";

/// `header_slots` sizes for a limit that is refused when reached: a head larder
/// accepted has fewer than [`crate::http::Limits::fields`] (256) fields, so it reads
/// back whole, and the slots fit on the stack (no allocation per hit).
const MAX_FIELDS: usize = 256;

/// Calls `f` with the fields of the request head at the start of `head` (as larder
/// wrote it for upstream); `None` if it does not parse, which for a head larder
/// built itself means a bug, and the caller then treats the request as uncacheable.
pub fn with_request_fields<R>(head: &[u8], f: impl FnOnce(&[Header<'_>]) -> R) -> Option<R> {
    let mut stack = [const { MaybeUninit::uninit() }; STACK_SLOTS];
    let mut heap: Vec<Slot<'_>> = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, MAX_FIELDS);
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, slots) {
        Ok(httparse::Status::Complete(_)) => Some(f(req.headers)),
        _ => None,
    }
}

/// Calls `f` with the status and fields of the response head at the start of
/// `head`; `None` if it does not parse (a damaged or foreign record, or a marker).
pub fn with_response_fields<R>(head: &[u8], f: impl FnOnce(u16, &[Header<'_>]) -> R) -> Option<R> {
    let mut stack = [const { MaybeUninit::uninit() }; STACK_SLOTS];
    let mut heap: Vec<Slot<'_>> = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, MAX_FIELDS);
    let mut res = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, head, slots)
    {
        Ok(httparse::Status::Complete(_)) => Some(f(res.code.unwrap_or_default(), res.headers)),
        _ => None,
    }
}

/// The head to store for a response whose head for the client is `client_head`
/// (status line and field lines, no final blank line; see
/// [`super::response::Response::client_head`]): the same without Content-Length,
/// which is written from the stored body's length when served, and without the
/// `Via` line this larder added (the one serving it adds its own: see
/// [`push_served_head`]), and with the blank line. Everything else is stored
/// verbatim, Date, Age and the origin's Via included.
pub fn stored_head(client_head: &[u8], via: &ViaName) -> Vec<u8> {
    let own = via.field_line().as_bytes();
    let own = own.strip_suffix(b"\r\n").unwrap_or(own);
    let mut out = Vec::with_capacity(client_head.len() + 2);
    for line in lines(client_head) {
        if !is_field(line, b"content-length") && line != own {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// How a stored response stands against a request at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// May answer without asking the origin ([`may_serve`]).
    pub freshness: Freshness,
    /// Current age in seconds (RFC 9111 §4.2.3), the Age value to send.
    pub age: u64,
    /// Seconds of freshness left (0 when stale), for `Cache-Status: ttl`.
    pub ttl: u64,
}

/// Judges the stored response `stored` (fields of its head), received at `times`,
/// for a request with directives `req_cc`.
pub fn judge(req_cc: &CacheControl, stored: &[Header<'_>], times: Stored, now: u64) -> Judgement {
    // Read once: both the lifetime and what the response allows depend on them.
    let resp_cc = CacheControl::from_response(stored);
    let age = current_age(stored, times, now);
    let lifetime = freshness_lifetime_with(stored, &resp_cc, times.response_time);
    Judgement {
        freshness: may_serve_with(req_cc, &resp_cc, age, lifetime),
        age,
        ttl: lifetime.saturating_sub(age),
    }
}

/// Appends a stored head for a client: `status_line` (without its CRLF) in place of
/// the stored one when given (304, 206, ...), then every stored field line except
/// Age and Content-Length, verbatim, then `Age: age`. No blank line: the caller adds
/// framing, Cache-Status and Connection first.
///
/// Every hit comes here, so the lines are found a word at a time, and the field lines
/// kept that already end in CRLF (all of them, in a head larder stored) go out in
/// runs, each copied once, rather than line by line: what comes out is what writing
/// each line and a CRLF would give.
pub fn push_served_head(
    out: &mut Vec<u8>,
    stored: &[u8],
    status_line: Option<&[u8]>,
    age: u64,
    via: &ViaName,
) {
    let (stored_status, mut at) = line_at(stored, 0);
    out.extend_from_slice(status_line.unwrap_or(stored_status));
    out.extend_from_slice(b"\r\n");
    if stored_status.is_empty() {
        // No status line is also no field lines (as for `lines`).
        at = stored.len();
    }
    // Kept lines `stored[run]` not yet copied; each non-empty run ends where the
    // next line begins.
    let mut run = at..at;
    while at < stored.len() {
        let (line, next) = line_at(stored, at);
        if line.is_empty() {
            break;
        }
        let keep = !is_field(line, b"age") && !is_field(line, b"content-length");
        // The line and its CRLF, exactly, are what the client gets.
        let crlf = stored.get(at + line.len()..next) == Some(b"\r\n");
        if keep && crlf {
            run.end = next;
        } else {
            out.extend_from_slice(stored.get(run).unwrap_or_default());
            if keep {
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
            run = next..next;
        }
        at = next;
    }
    out.extend_from_slice(stored.get(run).unwrap_or_default());
    out.extend_from_slice(b"Age: ");
    push_decimal(out, age);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(via.field_line().as_bytes());
}

/// The line of `head` that starts at `at`, without its line end (LF, or CRLF), and
/// where the next one starts (`head.len()` after the last): the lines [`lines`]
/// yields, found a word at a time.
fn line_at(head: &[u8], at: usize) -> (&[u8], usize) {
    let rest = head.get(at..).unwrap_or_default();
    let (line, next) = match find_either(rest, b'\n', b'\n') {
        Some(lf) => (rest.get(..lf).unwrap_or_default(), at + lf + 1),
        None => (rest, head.len()),
    };
    (line.strip_suffix(b"\r").unwrap_or(line), next)
}

/// The marker stored under a URL whose response had a Vary naming fields: a head
/// that holds the field names, so a later request can compute which variant key to
/// look up. `None` when the response has no Vary (or `Vary: *`, never stored).
pub fn variants_marker(resp: &[Header<'_>]) -> Option<Vec<u8>> {
    let names = vary_names(resp).ok().filter(|n| !n.is_empty())?;
    let mut out = VARIANTS_LINE.to_vec();
    out.extend_from_slice(b"Vary: ");
    out.extend_from_slice(&names.join(&b", "[..]));
    out.extend_from_slice(b"\r\n\r\n");
    Some(out)
}

/// The Vary value of a variants marker head; `None` if `head` is not a marker.
pub fn marker_vary(head: &[u8]) -> Option<&[u8]> {
    let rest = head.strip_prefix(VARIANTS_LINE)?;
    let line = lines(rest).next()?;
    line.strip_prefix(b"Vary: ")
}

/// Whether the response's Vary names exactly the fields of `marker_vary` (so the
/// stored marker need not be written again).
pub fn same_vary(resp: &[Header<'_>], marker_vary: &[u8]) -> bool {
    let marked: Vec<&[u8]> = list_elements(marker_vary).collect();
    vary_names(resp).is_ok_and(|names| {
        names.len() == marked.len() && names.iter().zip(&marked).all(|(a, b)| a == b)
    })
}

/// The field lines of a head without their line ends, up to the blank line.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
}

/// Is `line` a field line named `name` (lowercase)?
fn is_field(line: &[u8], name: &[u8]) -> bool {
    line.len() > name.len()
        && line.get(name.len()) == Some(&b':')
        && line
            .get(..name.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::{fields, next_u64};

    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nAge: 7\r\nContent-Type: text/plain\r\nCache-Control: max-age=100\r\nVia: 1.1 larder-1\r\n\r\n";

    fn via() -> ViaName {
        ViaName::new("larder-0000000a".into())
    }

    #[test]
    fn stored_head_drops_content_length_and_its_own_via_and_ends_the_head() {
        let client = b"HTTP/1.1 200 OK\r\nETag: \"a\"\r\nContent-Length: 5\r\nVia: 1.1 x\r\nVia: 1.1 larder-0000000a\r\n";
        assert_eq!(
            stored_head(client, &via()),
            b"HTTP/1.1 200 OK\r\nETag: \"a\"\r\nVia: 1.1 x\r\n\r\n"
        );
    }

    #[test]
    fn served_head_replaces_age_keeps_date_verbatim_and_adds_the_serving_via() {
        let mut out = Vec::new();
        push_served_head(&mut out, HEAD, None, 42, &via());
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
        assert!(
            text.ends_with("Via: 1.1 larder-1\r\nAge: 42\r\nVia: 1.1 larder-0000000a\r\n"),
            "{text}"
        );
        assert!(!text.contains("Age: 7"));
    }

    /// Over heads made of many kinds of line (CRLF, bare LF, stray CRs, Age and
    /// Content-Length in any case, a blank line or none, an empty status line), the
    /// served head is what writing each kept line and a CRLF gives.
    #[test]
    fn served_head_is_each_kept_line_and_a_crlf() {
        fn line_by_line(stored: &[u8], status_line: Option<&[u8]>, age: u64) -> Vec<u8> {
            let mut out = Vec::new();
            let mut it = lines(stored);
            let stored_status = it.next().unwrap_or_default();
            out.extend_from_slice(status_line.unwrap_or(stored_status));
            out.extend_from_slice(b"\r\n");
            for line in it {
                if !is_field(line, b"age") && !is_field(line, b"content-length") {
                    out.extend_from_slice(line);
                    out.extend_from_slice(b"\r\n");
                }
            }
            out.extend_from_slice(format!("Age: {age}\r\n").as_bytes());
            out.extend_from_slice(via().field_line().as_bytes());
            out
        }
        let pieces: [&[u8]; 16] = [
            b"HTTP/1.1 200 OK",
            b"Date: Sun, 06 Nov 1994 08:49:37 GMT",
            b"Age: 7",
            b"AGE:7",
            b"age",
            b"Agent: x",
            b"Content-Length: 5",
            b"content-length:5",
            b"Content-Type: text/plain",
            b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            b"",
            b"\r",
            b"X: a\rb",
            b"Via: 1.1 larder-1",
            b"Age: 1\r",
            b"E",
        ];
        let ends: [&[u8]; 4] = [b"\r\n", b"\r\n", b"\n", b"\r\r\n"];
        let mut rng = 0x6a09_e667_f3bc_c908;
        let pick = |rng: &mut u64, n: usize| (next_u64(rng) % n as u64) as usize;
        for round in 0..5000 {
            let mut stored = Vec::new();
            for _ in 0..pick(&mut rng, 9) {
                stored.extend_from_slice(pieces[pick(&mut rng, pieces.len())]);
                stored.extend_from_slice(ends[pick(&mut rng, ends.len())]);
            }
            if round % 3 == 0 {
                stored.extend_from_slice(b"\r\n");
            }
            if round % 5 == 0 {
                stored.extend_from_slice(pieces[pick(&mut rng, pieces.len())]);
            }
            let status_line: Option<&[u8]> =
                (round % 7 == 0).then_some(b"HTTP/1.1 304 Not Modified");
            let mut out = b"before".to_vec();
            push_served_head(&mut out, &stored, status_line, round, &via());
            let mut want = b"before".to_vec();
            want.extend_from_slice(&line_by_line(&stored, status_line, round));
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&want),
                "{:?}",
                String::from_utf8_lossy(&stored)
            );
        }
    }

    #[test]
    fn served_head_takes_a_new_status_line() {
        let mut out = Vec::new();
        push_served_head(
            &mut out,
            HEAD,
            Some(b"HTTP/1.1 304 Not Modified"),
            0,
            &via(),
        );
        assert!(out.starts_with(b"HTTP/1.1 304 Not Modified\r\nDate:"));
    }

    #[test]
    fn stored_fields_read_back() {
        let got = with_response_fields(HEAD, |status, f| (status, f.len()));
        assert_eq!(got, Some((200, 5)));
        assert_eq!(
            with_response_fields(b"LARDER-VARIANTS\r\n\r\n", |s, _| s),
            None
        );
        let req = b"GET / HTTP/1.1\r\nHost: a\r\nAccept: x\r\n\r\n";
        assert_eq!(with_request_fields(req, |f| f.len()), Some(2));
    }

    #[test]
    fn judgement_counts_age_and_ttl() {
        let times = Stored {
            request_time: 784_111_777,
            response_time: 784_111_777,
        };
        let j = with_response_fields(HEAD, |_, f| {
            judge(&CacheControl::default(), f, times, 784_111_777 + 10)
        });
        assert_eq!(
            j,
            Some(Judgement {
                freshness: Freshness::Fresh,
                age: 17,
                ttl: 83
            })
        );
    }

    #[test]
    fn variants_marker_round_trips_the_vary_names() {
        let resp = fields(&[("Vary", "User-Agent, accept-encoding")]);
        let marker = variants_marker(&resp).expect("has Vary");
        assert_eq!(
            marker_vary(&marker),
            Some(&b"accept-encoding, user-agent"[..])
        );
        assert!(same_vary(&resp, b"accept-encoding, user-agent"));
        assert!(!same_vary(&resp, b"accept-encoding"));
        assert_eq!(variants_marker(&fields(&[("Vary", "*")])), None);
        assert_eq!(variants_marker(&fields(&[])), None);
        assert_eq!(marker_vary(HEAD), None);
    }
}
