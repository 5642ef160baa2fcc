//! Entry points for fuzzers (`fuzz/fuzz_targets/`), and the properties they check.
//! Each entry point feeds arbitrary bytes to one parser the way the event loop does
//! and checks what must hold whatever the input; none may panic. The unit tests run
//! the same checks over generated, mutated and random inputs, so they keep working on
//! machines without the nightly toolchain cargo-fuzz needs.
//!
//! The properties, each a function the unit tests also call on their own:
//! - prefix stability: a head that parses as complete parses the same whatever
//!   follows it (the loop parses a buffer that may already hold the body, or the next
//!   request);
//! - round trip: an accepted head written out again in plain form (one space in the
//!   start line, `Name: value` fields) parses to the same result;
//! - split invariance: a chunked body fed in pieces, with what one call leaves
//!   unconsumed carried into the next, decodes as it does in one piece.

use super::body::BodyTracker;
use super::request::{parse_request, Request};
use super::response::{parse_response, Response};
use super::{BodyKind, HttpError, Limits, Method, ViaName};

/// A request head, whole and cut where a slow client could cut it.
pub fn request_head(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(Some(req)) = request_prefixes_parse_alike(data, &limits) {
        assert!(req.head_len <= data.len());
        assert!(req.upstream_head.is_empty() || req.upstream_head.ends_with(b"\r\n\r\n"));
    }
    request_round_trip(data, &limits);
}

/// A response head as an upstream could send it, to a GET and to a HEAD.
pub fn response_head(data: &[u8]) {
    let limits = Limits::default();
    for method in [Method::Get, Method::Head] {
        if let Ok(Some(resp)) = response_prefixes_parse_alike(data, &limits, &method) {
            assert!(resp.head_len <= data.len());
        }
        response_round_trip(data, &limits, &method);
    }
}

/// A chunked body fed in one piece, one byte at a time, and in pieces whose ends
/// come from the input itself: every way must decode alike.
pub fn chunked_body(data: &[u8]) {
    let limits = Limits::default();
    let whole = decode_chunked_in_pieces(data, &[], &limits);
    if let Ok((consumed, _)) = whole.end {
        assert!(consumed <= data.len());
    }
    let bytes: Vec<usize> = (1..data.len()).collect();
    let cuts = pseudo_random_cuts(data);
    for cuts in [bytes, cuts] {
        let split = decode_chunked_in_pieces(data, &cuts, &limits);
        assert_eq!(split, whole, "fed in pieces ending at {cuts:?}");
    }
}

/// The name larder goes by in these checks: a request that names it in `Via` is a
/// loop, and an accepted one gets it appended.
fn via() -> ViaName {
    ViaName::new("larder-fuzz".into())
}

/// Where heads are cut: at every point of their first bytes, and around the end of
/// a complete head, where a parser that ends a head early or looks past its end
/// differs. Every cut is a whole parse, so not everywhere in a long input.
const CUTS_FROM_START: usize = 256;
const CUTS_AROUND_END: usize = 16;

/// Prefix stability for request heads: the head alone parses as it does with what
/// follows it, and so does every prefix that parses as complete. Returns the parse
/// of all of `data`.
pub fn request_prefixes_parse_alike(
    data: &[u8],
    limits: &Limits,
) -> Result<Option<Request>, HttpError> {
    let via = via();
    let parse = |bytes: &[u8]| parse_request(bytes, limits, &via);
    prefixes_parse_alike("request", data, parse, |req| req.head_len)
}

/// Prefix stability for response heads, as [`request_prefixes_parse_alike`].
pub fn response_prefixes_parse_alike(
    data: &[u8],
    limits: &Limits,
    method: &Method,
) -> Result<Option<Response>, HttpError> {
    let via = via();
    let parse = |bytes: &[u8]| parse_response(bytes, limits, method, &via);
    prefixes_parse_alike("response", data, parse, |resp| resp.head_len)
}

fn prefixes_parse_alike<T: PartialEq + std::fmt::Debug>(
    what: &str,
    data: &[u8],
    parse: impl Fn(&[u8]) -> Result<Option<T>, HttpError>,
    head_len: impl Fn(&T) -> usize,
) -> Result<Option<T>, HttpError> {
    let whole = parse(data);
    let end = match &whole {
        Ok(Some(head)) => Some(head_len(head)),
        _ => None,
    };
    let around_end = end.map_or(0..0, |end| {
        end.saturating_sub(CUTS_AROUND_END)..end + CUTS_AROUND_END + 1
    });
    let from_start = 0..=CUTS_FROM_START.min(end.unwrap_or(data.len()));
    let cuts = from_start.chain(around_end).chain([data.len()]);
    for cut in cuts.filter(|&cut| cut <= data.len()) {
        let part = parse(data.get(..cut).unwrap_or(data));
        if Some(cut) == end {
            assert_eq!(
                part,
                whole,
                "a complete {what} head of {cut} bytes parses differently \
                 with the {} bytes after it",
                data.len() - cut
            );
        } else if part.as_ref().is_ok_and(Option::is_some) {
            assert_eq!(
                part,
                whole,
                "the first {cut} bytes parse as a complete {what} head, \
                 differently than all {} bytes",
                data.len()
            );
        }
    }
    whole
}

/// The limits a head written out again is read back under. Limits only ever turn a
/// result into an error, and the plain form may be longer than what was read (a
/// standard reason phrase for an empty one, `/` for an empty path), so the lengths
/// are not limited; the field count is the same either way.
fn unlimited_lengths(limits: &Limits) -> Limits {
    Limits {
        request_line: usize::MAX,
        head: usize::MAX,
        response_head: usize::MAX,
        ..*limits
    }
}

/// Round trip for request heads: if `data` starts with an accepted head, that head
/// written out again by [`write_request_head`] parses to the same request (its
/// length apart). Returns whether `data` started with an accepted head.
pub fn request_round_trip(data: &[u8], limits: &Limits) -> bool {
    let via = via();
    let Ok(Some(req)) = parse_request(data, limits, &via) else {
        return false;
    };
    let text = write_request_head(&req, data);
    let head = data.get(..req.head_len).unwrap_or(data);
    let again = parse_request(&text, &unlimited_lengths(limits), &via);
    // The credentials lie elsewhere in the text written out; their values must not change.
    let value = |buf: &'_ [u8], span: Option<(usize, usize)>| {
        span.map(|(s, e)| buf.get(s..e).unwrap_or_default().to_vec())
    };
    let (proxy_authorization, authorization) = match &again {
        Ok(Some(a)) => {
            assert_eq!(
                value(&text, a.proxy_authorization),
                value(data, req.proxy_authorization)
            );
            assert_eq!(
                value(&text, a.authorization),
                value(data, req.authorization)
            );
            (a.proxy_authorization, a.authorization)
        }
        _ => (req.proxy_authorization, req.authorization),
    };
    let want = Request {
        head_len: text.len(),
        proxy_authorization,
        authorization,
        ..req
    };
    assert_eq!(
        again,
        Ok(Some(want)),
        "the request head {:?} written out again, {:?}, parses differently",
        String::from_utf8_lossy(head),
        String::from_utf8_lossy(&text)
    );
    true
}

/// Round trip for response heads, as [`request_round_trip`].
pub fn response_round_trip(data: &[u8], limits: &Limits, method: &Method) -> bool {
    let via = via();
    let Ok(Some(resp)) = parse_response(data, limits, method, &via) else {
        return false;
    };
    let text = write_response_head(&resp, data);
    let head = data.get(..resp.head_len).unwrap_or(data);
    let again = parse_response(&text, &unlimited_lengths(limits), method, &via);
    let want = Response {
        head_len: text.len(),
        ..resp
    };
    assert_eq!(
        again,
        Ok(Some(want)),
        "the response head {:?} written out again, {:?}, parses differently",
        String::from_utf8_lossy(head),
        String::from_utf8_lossy(&text)
    );
    true
}

/// A parsed request head in plain form: the start line from what the parser made of
/// it (so a target's normal spelling must read back as the same target), then the
/// field lines of `data`'s head as they came, each as `Name: value`.
pub fn write_request_head(req: &Request, data: &[u8]) -> Vec<u8> {
    let target = if req.target.is_origin_form() {
        req.target.path_and_query()
    } else {
        req.target.url()
    };
    let mut out = Vec::new();
    for part in [req.method.as_str(), " ", target, " ", req.version.as_str()] {
        out.extend_from_slice(part.as_bytes());
    }
    write_fields(&mut out, data.get(..req.head_len).unwrap_or(data));
    out
}

/// A parsed response head in plain form: the status line with the parsed version and
/// status and the reason phrase the client is sent, then `data`'s field lines.
pub fn write_response_head(resp: &Response, data: &[u8]) -> Vec<u8> {
    // The client's head starts `HTTP/1.1 NNN reason\r\n`.
    let first = resp.client_head.split(|&b| b == b'\r').next();
    let reason = first.and_then(|line| line.get(13..)).unwrap_or_default();
    let mut out = Vec::new();
    out.extend_from_slice(resp.version.as_str().as_bytes());
    out.push(b' ');
    super::push_decimal(&mut out, u64::from(resp.status));
    out.push(b' ');
    out.extend_from_slice(reason);
    write_fields(&mut out, data.get(..resp.head_len).unwrap_or(data));
    out
}

/// Ends the start line, then writes the field lines of `head` (a head a parser
/// accepted, so it has no folded lines) as `Name: value` with CRLF, and the blank
/// line.
fn write_fields(out: &mut Vec<u8>, head: &[u8]) {
    out.extend_from_slice(b"\r\n");
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let lines = head.get(start..).unwrap_or_default().split(|&b| b == b'\n');
    for line in lines.skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            break;
        };
        let (name, value) = line.split_at(colon);
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.get(1..).unwrap_or_default().trim_ascii());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How feeding a chunked body came out: the data handed out, then either how many
/// bytes of the input the body took and whether it is complete, or the error.
#[derive(Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The body's data, in the order the tracker handed it out.
    pub data: Vec<u8>,
    /// Input bytes the body took and whether it is complete, or the error.
    pub end: Result<(usize, bool), HttpError>,
}

/// The data as escaped text, so that a failed comparison reads.
impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("data", &format_args!("\"{}\"", self.data.escape_ascii()))
            .field("end", &self.end)
            .finish()
    }
}

/// Feeds `input` to a chunked body's tracker as the connection loop does: the bytes
/// arrive in pieces ending at the ascending offsets `cuts`; each piece is appended to
/// what the tracker left unconsumed, the buffer is fed while the body is unfinished,
/// and what the tracker consumed leaves the buffer. (`conn::forward` feeds the
/// upstream's buffer so when it dechunks a response, and a request body from the
/// client's buffer past the bytes already scanned, which comes to the same.)
pub fn decode_chunked_in_pieces(input: &[u8], cuts: &[usize], limits: &Limits) -> Decoded {
    let mut tracker = BodyTracker::new(BodyKind::Chunked, limits);
    let mut buf = Vec::new();
    let mut data = Vec::new();
    let mut consumed = 0;
    let mut start = 0;
    for end in cuts.iter().copied().chain([input.len()]) {
        let end = end.clamp(start, input.len());
        buf.extend_from_slice(input.get(start..end).unwrap_or_default());
        start = end;
        if buf.is_empty() || tracker.is_done() {
            continue;
        }
        let fed = buf.len();
        let mut ranges_ok = true;
        let progress = tracker.feed(&buf, |r| {
            ranges_ok &= r.start <= r.end && r.end <= fed;
            data.extend_from_slice(buf.get(r).unwrap_or_default());
        });
        assert!(ranges_ok, "a data range lies outside the {fed} bytes fed");
        match progress {
            Ok(p) => {
                assert!(p.consumed <= fed, "consumed {} of {fed} bytes", p.consumed);
                consumed += p.consumed;
                buf.drain(..p.consumed);
            }
            Err(e) => return Decoded { data, end: Err(e) },
        }
    }
    Decoded {
        data,
        end: Ok((consumed, tracker.is_done())),
    }
}

/// Ascending cut points through `data`, pieces of 1 to 64 bytes (mostly short),
/// drawn from a generator seeded by the input: a fuzzer that changes the body
/// changes where it is cut as well.
fn pseudo_random_cuts(data: &[u8]) -> Vec<usize> {
    let mut state = u64::from(crc32fast::hash(data)) | 1 << 32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut cuts = Vec::new();
    let mut at = 0;
    loop {
        let r = next();
        at += 1 + (r % if r & 0x100 == 0 { 4 } else { 64 }) as usize;
        if at >= data.len() {
            return cuts;
        }
        cuts.push(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::{mutate, next_u64};

    /// The seeds the fuzzers start from (`fuzz/seeds/`), by target.
    const REQUEST_SEEDS: [&[u8]; 4] = [
        include_bytes!("../../fuzz/seeds/request_head/browser"),
        include_bytes!("../../fuzz/seeds/request_head/post-chunked"),
        include_bytes!("../../fuzz/seeds/request_head/connect"),
        include_bytes!("../../fuzz/seeds/request_head/origin-form"),
    ];
    const RESPONSE_SEEDS: [&[u8]; 4] = [
        include_bytes!("../../fuzz/seeds/response_head/typical"),
        include_bytes!("../../fuzz/seeds/response_head/chunked"),
        include_bytes!("../../fuzz/seeds/response_head/early-hints"),
        include_bytes!("../../fuzz/seeds/response_head/bare-lf"),
    ];
    const CHUNKED_SEEDS: [&[u8]; 4] = [
        include_bytes!("../../fuzz/seeds/chunked_body/extensions-trailers"),
        include_bytes!("../../fuzz/seeds/chunked_body/many-small-chunks"),
        include_bytes!("../../fuzz/seeds/chunked_body/quoted-extensions"),
        include_bytes!("../../fuzz/seeds/chunked_body/empty-with-trailers"),
    ];

    /// Each seed with bytes overwritten, inserted and dropped, plus pure noise.
    fn inputs() -> Vec<Vec<u8>> {
        let mut rng = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"0123456789abcdefABCDEF;=\" \t\r\n\\:,/.HTTPxZ\x00\x7f\xff";
        let mut out = Vec::new();
        for seed in REQUEST_SEEDS
            .iter()
            .chain(&RESPONSE_SEEDS)
            .chain(&CHUNKED_SEEDS)
        {
            out.push(seed.to_vec());
            for _ in 0..100 {
                let mut v = seed.to_vec();
                mutate(&mut v, &mut rng, alphabet);
                out.push(v);
            }
        }
        for _ in 0..200 {
            let len = next_u64(&mut rng) % 200;
            out.push((0..len).map(|_| next_u64(&mut rng) as u8).collect());
        }
        out
    }

    #[test]
    fn the_seeds_are_what_their_targets_accept() {
        let limits = Limits::default();
        for seed in REQUEST_SEEDS {
            assert!(request_round_trip(seed, &limits), "{seed:?}");
        }
        for seed in RESPONSE_SEEDS {
            assert!(response_round_trip(seed, &limits, &Method::Get), "{seed:?}");
        }
        for seed in CHUNKED_SEEDS {
            let decoded = decode_chunked_in_pieces(seed, &[], &limits);
            assert_eq!(decoded.end.map(|(_, done)| done), Ok(true), "{seed:?}");
        }
    }

    #[test]
    fn the_fuzz_checks_hold_on_mutated_seeds_and_noise() {
        for input in inputs() {
            request_head(&input);
            response_head(&input);
            chunked_body(&input);
        }
    }

    #[test]
    fn pseudo_random_cuts_ascend_inside_the_input() {
        for len in [0, 1, 2, 50, 1000] {
            let data = vec![b'x'; len];
            let cuts = pseudo_random_cuts(&data);
            assert!(cuts.windows(2).all(|w| w[0] < w[1]), "{cuts:?}");
            assert!(cuts.iter().all(|&c| 0 < c && c < len), "{cuts:?}");
        }
    }
}
