//! The chunked transfer coding (RFC 9112 §7.1), decoded byte by byte so that input
//! split anywhere (one byte per read, in the worst case) gives the same result.
//!
//! The decoder never copies: it reports where chunk data lies in each input slice
//! and leaves moving bytes to the caller.

use super::body::Progress;
use super::{is_tchar, HttpError, Limits};
use std::ops::Range;

/// Decodes one chunked body. Feed it the bytes following the head, in order, until
/// [`Progress::done`]; after an error it must not be fed again.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current chunk-size line so far, CRLF excluded.
    line_len: usize,
    /// Bytes of the trailer section so far.
    trailer_len: usize,
    chunk_line_limit: usize,
    trailers_limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Start of a chunk-size line: a hex digit must come.
    SizeStart,
    /// Inside the hex size; the value so far.
    Size(u64),
    /// Whitespace after the size or an extension value: only `;` may follow.
    SizeSpace(u64),
    /// After `;`, before an extension name.
    ExtNameStart(u64),
    ExtName(u64),
    /// Whitespace after an extension name: `=` or `;` may follow.
    ExtNameSpace(u64),
    /// After `=`, before the value.
    ExtValueStart(u64),
    ExtToken(u64),
    ExtQuoted(u64),
    ExtQuotedEscape(u64),
    /// After a closing quote.
    ExtQuotedEnd(u64),
    /// CR of the size line seen; LF must follow.
    SizeLf(u64),
    /// Inside chunk data; bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// Start of a trailer field line or of the final CRLF.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
}

fn bad(detail: &'static str) -> HttpError {
    HttpError::new(400, detail)
}

fn hex_value(b: u8) -> Option<u64> {
    char::from(b).to_digit(16).map(u64::from)
}

/// `field-vchar` or whitespace: what a field value or quoted-pair may contain.
fn is_value_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80
}

/// `qdtext` from RFC 9110 §5.6.4.
fn is_qdtext(b: u8) -> bool {
    is_value_byte(b) && b != b'"' && b != b'\\'
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body, held to the chunk-line and trailer
    /// limits of `limits`.
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            line_len: 0,
            trailer_len: 0,
            chunk_line_limit: limits.chunk_line,
            trailers_limit: limits.trailers,
        }
    }

    /// The last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `input`, the bytes following those already fed. `consumed` is how many
    /// bytes of `input` belong to the body (it stops after the final CRLF); `on_data`
    /// gets the ranges of `input` that are chunk data, in order.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(Range<usize>),
    ) -> Result<Progress, HttpError> {
        let mut pos = 0;
        while pos < input.len() && self.state != State::Done {
            if let State::Data(left) = self.state {
                // The hot path: hand over as much data as this input holds in one range.
                let avail = input.len() - pos;
                let take = usize::try_from(left).map_or(avail, |left| left.min(avail));
                on_data(pos..pos + take);
                pos += take;
                // `take` ≤ `left` by construction, so this cannot underflow.
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            let Some(&b) = input.get(pos) else { break };
            self.state = self.step(b)?;
            pos += 1;
        }
        Ok(Progress {
            consumed: pos,
            done: self.is_done(),
        })
    }

    /// One byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<State, HttpError> {
        use State::*;
        if self.in_size_line() && b != b'\r' {
            self.line_len += 1;
            if self.line_len > self.chunk_line_limit {
                return Err(bad("chunk-size line too long"));
            }
        }
        if self.in_trailers() {
            self.trailer_len += 1;
            if self.trailer_len > self.trailers_limit {
                return Err(bad("chunked trailer section too large"));
            }
        }
        let next = match (self.state, b) {
            (_, b'\n') if !self.expects_lf() => return Err(bad("bare LF in chunked body")),
            (SizeStart, _) => match hex_value(b) {
                Some(v) => Size(v),
                None => return Err(bad("chunk size is not hexadecimal")),
            },
            (Size(n), _) => match hex_value(b) {
                Some(v) => {
                    let n = n.checked_mul(16).and_then(|n| n.checked_add(v));
                    Size(n.ok_or_else(|| bad("chunk size overflows"))?)
                }
                None => self.after_value(n, b)?,
            },
            (SizeSpace(n), b' ' | b'\t') => SizeSpace(n),
            (SizeSpace(n), b';') => ExtNameStart(n),
            (ExtNameStart(n), b' ' | b'\t') => ExtNameStart(n),
            (ExtNameStart(n), _) if is_tchar(b) => ExtName(n),
            (ExtName(n), _) if is_tchar(b) => ExtName(n),
            (ExtName(n), b'=') | (ExtNameSpace(n), b'=') => ExtValueStart(n),
            (ExtName(n), _) => self.after_value(n, b)?,
            (ExtNameSpace(n), b' ' | b'\t') => ExtNameSpace(n),
            (ExtNameSpace(n), b';') => ExtNameStart(n),
            (ExtValueStart(n), b' ' | b'\t') => ExtValueStart(n),
            (ExtValueStart(n), b'"') => ExtQuoted(n),
            (ExtValueStart(n), _) if is_tchar(b) => ExtToken(n),
            (ExtToken(n), _) if is_tchar(b) => ExtToken(n),
            (ExtToken(n), _) | (ExtQuotedEnd(n), _) => self.after_value(n, b)?,
            (ExtQuoted(n), b'"') => ExtQuotedEnd(n),
            (ExtQuoted(n), b'\\') => ExtQuotedEscape(n),
            (ExtQuoted(n), _) if is_qdtext(b) => ExtQuoted(n),
            (ExtQuotedEscape(n), _) if is_value_byte(b) => ExtQuoted(n),
            (SizeLf(0), b'\n') => TrailerStart,
            (SizeLf(n), b'\n') => {
                self.line_len = 0;
                Data(n)
            }
            (SizeLf(_), _) => return Err(bad("bare CR in chunk-size line")),
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(bad("chunk data not followed by CRLF")),
            (DataLf, b'\n') => SizeStart,
            (DataLf, _) => return Err(bad("bare CR after chunk data")),
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart, _) | (TrailerName, _) if is_tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerStart, _) | (TrailerName, _) => return Err(bad("invalid trailer field name")),
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if is_value_byte(b) => TrailerValue,
            (TrailerLf, b'\n') => TrailerStart,
            (FinalLf, b'\n') => Done,
            (TrailerLf, _) | (FinalLf, _) => return Err(bad("bare CR in chunked trailer")),
            _ => return Err(bad("malformed chunked body")),
        };
        Ok(next)
    }

    /// What may follow a complete size, extension name or extension value.
    fn after_value(&self, n: u64, b: u8) -> Result<State, HttpError> {
        match (self.state, b) {
            (_, b'\r') => Ok(State::SizeLf(n)),
            (_, b';') => Ok(State::ExtNameStart(n)),
            (State::ExtName(_), b' ' | b'\t') => Ok(State::ExtNameSpace(n)),
            (_, b' ' | b'\t') => Ok(State::SizeSpace(n)),
            (State::Size(_), _) => Err(bad("chunk size is not hexadecimal")),
            _ => Err(bad("malformed chunk extension")),
        }
    }

    /// In the states where an LF is the expected end of a CRLF.
    fn expects_lf(&self) -> bool {
        matches!(
            self.state,
            State::SizeLf(_) | State::DataLf | State::TrailerLf | State::FinalLf
        )
    }

    fn in_size_line(&self) -> bool {
        use State::*;
        matches!(
            self.state,
            SizeStart
                | Size(_)
                | SizeSpace(_)
                | ExtNameStart(_)
                | ExtName(_)
                | ExtNameSpace(_)
                | ExtValueStart(_)
                | ExtToken(_)
                | ExtQuoted(_)
                | ExtQuotedEscape(_)
                | ExtQuotedEnd(_)
        )
    }

    fn in_trailers(&self) -> bool {
        use State::*;
        matches!(
            self.state,
            TrailerStart | TrailerName | TrailerValue | TrailerLf | FinalLf
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fuzz;
    use crate::http::testing::{self as generate, mutate, next_u64, Rng};

    /// Feeds `input` in pieces cut at the ascending offsets `cuts`, as reads would
    /// deliver it; returns (data, bytes consumed, done).
    fn decode_split(
        input: &[u8],
        cuts: &[usize],
        limits: &Limits,
    ) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut decoder = ChunkedDecoder::new(limits);
        let mut data = Vec::new();
        let mut start = 0;
        for end in cuts.iter().copied().chain([input.len()]) {
            let piece = &input[start..end];
            let p = decoder.feed(piece, |r| data.extend_from_slice(&piece[r]))?;
            if p.done {
                return Ok((data, start + p.consumed, true));
            }
            assert_eq!(
                p.consumed,
                piece.len(),
                "an unfinished body takes all input"
            );
            start = end;
        }
        Ok((data, start, false))
    }

    fn decode(input: &[u8]) -> Result<(Vec<u8>, usize, bool), HttpError> {
        decode_split(input, &[], &Limits::default())
    }

    fn decode_err(input: &[u8]) -> HttpError {
        decode(input).expect_err("should be rejected")
    }

    const SAMPLE: &[u8] = b"4\r\nWiki\r\n5;name=val;flag;q=\"a \\\" b\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-A: b\r\n\r\nNEXT";

    #[test]
    fn decodes_sample_with_extensions_and_trailers() {
        let (data, consumed, done) = decode(SAMPLE).unwrap();
        assert_eq!(data, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(consumed, SAMPLE.len() - 4);
        assert!(done);
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        let whole = decode(SAMPLE).unwrap();
        for cut in 0..=SAMPLE.len() {
            assert_eq!(
                decode_split(SAMPLE, &[cut], &Limits::default()).unwrap(),
                whole,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_result() {
        let whole = decode(SAMPLE).unwrap();
        let cuts: Vec<usize> = (1..SAMPLE.len()).collect();
        assert_eq!(
            decode_split(SAMPLE, &cuts, &Limits::default()).unwrap(),
            whole
        );
    }

    #[test]
    fn errors_do_not_depend_on_split_points() {
        let bad_body = b"4\r\nWiki\r\n5\npedia\r\n0\r\n\r\n";
        let whole = decode(bad_body).unwrap_err();
        for cut in 0..=bad_body.len() {
            assert_eq!(
                decode_split(bad_body, &[cut], &Limits::default()).unwrap_err(),
                whole
            );
        }
    }

    #[test]
    fn incomplete_body_is_not_done() {
        let (data, consumed, done) = decode(b"5\r\nab").unwrap();
        assert_eq!((data.as_slice(), consumed, done), (&b"ab"[..], 5, false));
        assert!(!decode(b"0\r\n").unwrap().2);
        assert!(!decode(b"0\r\nX: y\r\n").unwrap().2);
    }

    #[test]
    fn last_chunk_without_trailers() {
        assert_eq!(decode(b"0\r\n\r\n").unwrap(), (vec![], 5, true));
    }

    #[test]
    fn uppercase_hex_and_leading_zeros() {
        let input = b"000A\r\n0123456789\r\n00\r\n\r\n";
        assert_eq!(decode(input).unwrap().0, b"0123456789");
    }

    #[test]
    fn whitespace_before_extension_is_allowed() {
        assert!(decode(b"1 ;a = b\r\nx\r\n0\r\n\r\n").unwrap().2);
    }

    #[test]
    fn rejects_non_hex_size() {
        assert_eq!(decode_err(b"g\r\n").detail, "chunk size is not hexadecimal");
        assert_eq!(
            decode_err(b"1g\r\n").detail,
            "chunk size is not hexadecimal"
        );
        assert_eq!(decode_err(b"-1\r\n").status, 400);
        assert_eq!(decode_err(b"0x1\r\n").status, 400);
    }

    #[test]
    fn rejects_empty_size() {
        assert_eq!(decode_err(b"\r\n").status, 400);
        assert_eq!(decode_err(b";a\r\n").status, 400);
    }

    #[test]
    fn rejects_size_overflow() {
        assert_eq!(
            decode_err(b"10000000000000000\r\n").detail,
            "chunk size overflows"
        );
        // The largest size is still a valid (if endless) chunk.
        assert!(decode(b"ffffffffffffffff\r\nabc").is_ok());
    }

    #[test]
    fn rejects_trailing_whitespace_without_extension() {
        assert_eq!(decode_err(b"1 \r\nx\r\n0\r\n\r\n").status, 400);
    }

    #[test]
    fn rejects_malformed_extensions() {
        for input in [
            &b"1;\r\n"[..],
            b"1;=v\r\n",
            b"1;a=\r\n",
            b"1;a=\"x\r\n",
            b"1;a=\"x\"y\r\n",
            b"1;a=b c\r\n",
            b"1;a b\r\n",
            b"1;a=\"\x01\"\r\n",
            b"1;a@\r\n",
        ] {
            assert_eq!(decode_err(input).status, 400, "{input:?}");
        }
    }

    #[test]
    fn rejects_bare_lf_in_size_line() {
        assert_eq!(
            decode_err(b"1\nx\r\n0\r\n\r\n").detail,
            "bare LF in chunked body"
        );
        assert_eq!(
            decode_err(b"1;a=b\nx\r\n").detail,
            "bare LF in chunked body"
        );
    }

    #[test]
    fn rejects_bare_cr_in_size_line() {
        assert_eq!(decode_err(b"1\rx").detail, "bare CR in chunk-size line");
    }

    #[test]
    fn rejects_bare_lf_after_data() {
        assert_eq!(decode_err(b"1\r\nx\n0\r\n\r\n").status, 400);
    }

    #[test]
    fn rejects_missing_crlf_after_data() {
        assert_eq!(
            decode_err(b"1\r\nxy\r\n").detail,
            "chunk data not followed by CRLF"
        );
        assert_eq!(decode_err(b"1\r\nx\rX").detail, "bare CR after chunk data");
    }

    #[test]
    fn rejects_bare_lf_in_trailers() {
        assert_eq!(decode_err(b"0\r\nA: b\n\r\n").status, 400);
        assert_eq!(decode_err(b"0\r\n\n").status, 400);
        assert_eq!(decode_err(b"0\r\nA: b\r\n\rX").status, 400);
    }

    #[test]
    fn rejects_malformed_trailer_fields() {
        for input in [
            &b"0\r\nA : b\r\n\r\n"[..],
            b"0\r\n: b\r\n\r\n",
            b"0\r\nA: b\r\n c\r\n\r\n",
            b"0\r\nA: \x00\r\n\r\n",
            b"0\r\nA\r\n\r\n",
        ] {
            assert_eq!(decode_err(input).status, 400, "{input:?}");
        }
    }

    #[test]
    fn chunk_line_limit() {
        let limits = Limits {
            chunk_line: 8,
            ..Limits::default()
        };
        assert!(decode_split(b"1;abcdef\r\nx\r\n0\r\n\r\n", &[], &limits).is_ok());
        let err = decode_split(b"1;abcdefg\r\nx\r\n", &[], &limits).unwrap_err();
        assert_eq!(err.detail, "chunk-size line too long");
        // The limit is per line, not per body.
        let many = b"1;abcdef\r\nx\r\n1;abcdef\r\nx\r\n0\r\n\r\n";
        assert!(decode_split(many, &[], &limits).unwrap().2);
    }

    #[test]
    fn trailers_limit() {
        let limits = Limits {
            trailers: 10,
            ..Limits::default()
        };
        // "A: bcdef\r\n" is 10 bytes; with the final CRLF the section is 12.
        let err = decode_split(b"0\r\nA: bcdef\r\n\r\n", &[], &limits).unwrap_err();
        assert_eq!(err.detail, "chunked trailer section too large");
        assert!(decode_split(b"0\r\nA: bc\r\n\r\n", &[], &limits).unwrap().2);
    }

    #[test]
    fn stops_consuming_when_done() {
        let mut decoder = ChunkedDecoder::new(&Limits::default());
        let p = decoder.feed(b"0\r\n\r\n0\r\n\r\n", |_| {}).unwrap();
        assert_eq!(
            p,
            Progress {
                consumed: 5,
                done: true
            }
        );
        assert_eq!(
            decoder.feed(b"xyz", |_| {}).unwrap(),
            Progress {
                consumed: 0,
                done: true
            }
        );
    }

    #[test]
    fn data_ranges_are_relative_to_the_input() {
        let mut decoder = ChunkedDecoder::new(&Limits::default());
        let mut ranges = Vec::new();
        decoder
            .feed(b"3\r\nabc\r\n2\r\nde\r\n", |r| ranges.push(r))
            .unwrap();
        assert_eq!(ranges, vec![3..6, 11..13]);
    }

    /// xorshift64: a few thousand mutated bodies without a fuzzing crate.

    #[test]
    fn mutated_bodies_never_panic() {
        let mut rng = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"0123456789abcdefABCDEF;=\" \t\r\n\\:xZ\x00\xff";
        for _ in 0..5000 {
            let mut input = SAMPLE.to_vec();
            mutate(&mut input, &mut rng, alphabet);
            let limits = Limits {
                chunk_line: 16,
                trailers: 24,
                ..Limits::default()
            };
            let cut = (next_u64(&mut rng) % (input.len() as u64 + 1)) as usize;
            let _ = decode_split(&input, &[cut], &limits);
        }
    }

    /// Ascending cut points through `len` bytes: one-byte pieces, a few large ones,
    /// or anything between.
    fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
        let step = match rng.below(3) {
            0 => 1,
            1 => 64,
            _ => 12,
        };
        let mut cuts = Vec::new();
        let mut at = 0;
        loop {
            at += 1 + rng.below(step);
            if at >= len {
                return cuts;
            }
            cuts.push(at);
        }
    }

    #[test]
    fn a_chunked_body_fed_in_random_pieces_decodes_as_in_one_piece() {
        let mut rng = Rng(0x853c_49e6_748f_ea9b);
        let alphabet = b"0123456789abcdefABCDEF;=\" \t\r\n\\:xZ\x00\xff";
        let default = Limits::default();
        // Small enough that generated lines and trailer sections cross them, and
        // counting them must carry over from one piece to the next.
        let tight = Limits {
            chunk_line: 20,
            trailers: 40,
            ..Limits::default()
        };
        let (mut complete, mut refused) = (0, 0);
        let n = 3000;
        for i in 0..n {
            let (mut input, data) = generate::chunked_body(&mut rng);
            let mutated = i % 2 == 1;
            if mutated {
                mutate(&mut input, &mut rng.0, alphabet);
            }
            let body_len = input.len();
            input.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
            let limits = if i % 8 == 0 { &tight } else { &default };
            let whole = fuzz::decode_chunked_in_pieces(&input, &[], limits);
            if !mutated && limits == &default {
                let want = Ok((body_len, true));
                assert_eq!(
                    whole,
                    fuzz::Decoded { data, end: want },
                    "{}",
                    input.escape_ascii()
                );
            }
            let cuts = random_cuts(&mut rng, input.len());
            let split = fuzz::decode_chunked_in_pieces(&input, &cuts, limits);
            let input = input.escape_ascii();
            assert_eq!(split, whole, "\"{input}\" fed in pieces ending at {cuts:?}");
            complete += usize::from(whole.end == Ok((body_len, true)));
            refused += usize::from(whole.end.is_err());
        }
        // Complete bodies and refused ones must both be common for the test to say
        // much about either.
        assert!(complete > n / 3, "{complete} complete");
        assert!(refused > n / 5, "{refused} refused");
    }
}
