//! Message body framing (RFC 9112 §6): reading the framing fields of a head, and
//! finding where a body ends in the bytes that follow it.
//!
//! [`BodyTracker`] only measures; it never copies or buffers, so a body of any size
//! streams through a fixed buffer.

use super::ascii::eq_lowercase;
use super::chunked::ChunkedDecoder;
use super::{BodyKind, HttpError, Limits};
use std::ops::Range;

/// What one [`BodyTracker::feed`] or [`ChunkedDecoder::feed`] call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belong to this body; the rest belongs to the next message.
    pub consumed: usize,
    /// The body is complete.
    pub done: bool,
}

/// Finds the end of one message body.
#[derive(Debug, Clone)]
pub struct BodyTracker {
    kind: BodyKind,
    state: Tracking,
}

#[derive(Debug, Clone)]
enum Tracking {
    /// `BodyKind::None`, or a `Length` body fully seen.
    Done,
    Length {
        left: u64,
    },
    Chunked(ChunkedDecoder),
    Close,
}

impl BodyTracker {
    /// Starts tracking a body of framing `kind`; `limits` bound a chunked body's lines.
    pub fn new(kind: BodyKind, limits: &Limits) -> BodyTracker {
        let state = match kind {
            BodyKind::None | BodyKind::Length(0) => Tracking::Done,
            BodyKind::Length(left) => Tracking::Length { left },
            BodyKind::Chunked => Tracking::Chunked(ChunkedDecoder::new(limits)),
            BodyKind::Close => Tracking::Close,
        };
        BodyTracker { kind, state }
    }

    /// Scans `input`, the bytes following those already fed. `consumed` = how many bytes of
    /// `input` belong to this body (framing included for chunked); bytes past `consumed` belong
    /// to the next message. `on_data` gets the ranges (relative to input) of payload data:
    /// for Length/Close the consumed range, for Chunked only chunk data. Errors: HttpError 400
    /// (malformed chunked framing); after an error the tracker must not be fed again.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(Range<usize>),
    ) -> Result<Progress, HttpError> {
        let consumed = match &mut self.state {
            Tracking::Done => 0,
            Tracking::Length { left } => {
                let take = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
                // `take` ≤ `left` by construction, so this cannot underflow.
                *left -= take as u64;
                if *left == 0 {
                    self.state = Tracking::Done;
                }
                take
            }
            Tracking::Chunked(decoder) => return decoder.feed(input, on_data),
            Tracking::Close => input.len(),
        };
        if consumed > 0 {
            on_data(0..consumed);
        }
        Ok(Progress {
            consumed,
            done: self.is_done(),
        })
    }

    /// The whole body has been seen.
    pub fn is_done(&self) -> bool {
        match &self.state {
            Tracking::Done => true,
            Tracking::Length { .. } | Tracking::Close => false,
            Tracking::Chunked(decoder) => decoder.is_done(),
        }
    }

    /// Is EOF a valid end of this body right now? (true for Close, and for any done body)
    pub fn eof_completes(&self) -> bool {
        matches!(self.state, Tracking::Close) || self.is_done()
    }

    /// The framing the tracker was made for.
    pub fn kind(&self) -> BodyKind {
        self.kind
    }
}

/// The framing fields of one head, gathered field by field; the request and
/// response parsers then apply their own rules to the result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Framing<'a> {
    /// Content-Length, once every occurrence agreed.
    pub content_length: Option<u64>,
    /// The value of a Content-Length field written as `content_length` is in
    /// decimal (digits only, no leading zero): the response parser relays the
    /// length by copying these bytes instead of writing the number out again.
    pub length_digits: Option<&'a [u8]>,
    /// A Transfer-Encoding field was present.
    pub transfer_encoding: bool,
    /// Transfer codings listed, over all Transfer-Encoding fields.
    pub codings: usize,
    /// How many of those were `chunked`.
    pub chunked: usize,
}

impl<'a> Framing<'a> {
    /// Takes note of one field line if it is a framing field. The error is a detail
    /// for the caller's status (400 for a request, 502 for a response).
    #[inline]
    pub(super) fn add(&mut self, name: &str, value: &'a [u8]) -> Result<(), &'static str> {
        // Every field of every head comes here; the two names are told by length first,
        // inline, so that the other fields cost no call.
        if name.len() != 14 && name.len() != 17 {
            return Ok(());
        }
        self.add_framing(name, value)
    }

    fn add_framing(&mut self, name: &str, value: &'a [u8]) -> Result<(), &'static str> {
        if eq_lowercase(name.as_bytes(), b"content-length") {
            if let Some(n) = short_length(value) {
                // The usual value, one number of a few digits.
                if value.len() == 1 || value.first() != Some(&b'0') {
                    self.length_digits = Some(value);
                }
                return self.add_length(n);
            }
            if value.iter().all(u8::is_ascii_digit) {
                // One number, too long for `short_length` (or empty).
                return self.add_length(parse_length(value)?);
            }
            // A list of identical values ("5, 5") is what some intermediaries produce
            // when merging fields; RFC 9110 §8.6 allows taking it as one value.
            for element in value.split(|&b| b == b',') {
                self.add_length(parse_length(element.trim_ascii())?)?;
            }
        } else if eq_lowercase(name.as_bytes(), b"transfer-encoding") {
            self.transfer_encoding = true;
            for coding in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if coding.is_empty() {
                    continue;
                }
                self.codings += 1;
                if eq_lowercase(coding, b"chunked") {
                    self.chunked += 1;
                }
            }
        }
        Ok(())
    }

    fn add_length(&mut self, n: u64) -> Result<(), &'static str> {
        if self.content_length.is_some_and(|seen| seen != n) {
            return Err("differing Content-Length values");
        }
        self.content_length = Some(n);
        Ok(())
    }
}

/// `value` as a number if it is 1 to 19 digits, which cannot overflow a `u64`: the
/// Content-Length of nearly every message, read in one pass without the checks
/// [`parse_length`] needs for longer ones.
fn short_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &b in value {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n * 10 + u64::from(digit);
    }
    Some(n)
}

/// `1*DIGIT`, nothing else: a sign, a space or a hex digit is a smuggling attempt
/// or a broken peer, not a length.
fn parse_length(digits: &[u8]) -> Result<u64, &'static str> {
    if digits.is_empty() {
        return Err("empty Content-Length");
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err("invalid Content-Length");
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or("Content-Length overflows")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(tracker: &mut BodyTracker, input: &[u8]) -> (Progress, Vec<u8>) {
        let mut data = Vec::new();
        let progress = tracker
            .feed(input, |r| data.extend_from_slice(&input[r]))
            .unwrap();
        (progress, data)
    }

    #[test]
    fn none_is_done_immediately() {
        let mut t = BodyTracker::new(BodyKind::None, &Limits::default());
        assert!(t.is_done());
        assert!(t.eof_completes());
        let (p, data) = feed_all(&mut t, b"GET next");
        assert_eq!(
            p,
            Progress {
                consumed: 0,
                done: true
            }
        );
        assert!(data.is_empty());
        assert_eq!(t.kind(), BodyKind::None);
    }

    #[test]
    fn length_zero_is_done_immediately() {
        let t = BodyTracker::new(BodyKind::Length(0), &Limits::default());
        assert!(t.is_done());
        assert_eq!(t.kind(), BodyKind::Length(0));
    }

    #[test]
    fn length_stops_at_its_end_across_feeds() {
        let mut t = BodyTracker::new(BodyKind::Length(5), &Limits::default());
        assert!(!t.eof_completes());
        let (p, data) = feed_all(&mut t, b"abc");
        assert_eq!(
            p,
            Progress {
                consumed: 3,
                done: false
            }
        );
        assert_eq!(data, b"abc");
        let (p, data) = feed_all(&mut t, b"deNEXT");
        assert_eq!(
            p,
            Progress {
                consumed: 2,
                done: true
            }
        );
        assert_eq!(data, b"de");
        assert!(t.eof_completes());
        let (p, _) = feed_all(&mut t, b"more");
        assert_eq!(
            p,
            Progress {
                consumed: 0,
                done: true
            }
        );
    }

    #[test]
    fn length_empty_input_reports_no_data() {
        let mut t = BodyTracker::new(BodyKind::Length(5), &Limits::default());
        let (p, data) = feed_all(&mut t, b"");
        assert_eq!(
            p,
            Progress {
                consumed: 0,
                done: false
            }
        );
        assert!(data.is_empty());
    }

    #[test]
    fn close_takes_everything_and_eof_completes() {
        let mut t = BodyTracker::new(BodyKind::Close, &Limits::default());
        let (p, data) = feed_all(&mut t, b"all of it");
        assert_eq!(
            p,
            Progress {
                consumed: 9,
                done: false
            }
        );
        assert_eq!(data, b"all of it");
        assert!(t.eof_completes());
        assert!(!t.is_done());
    }

    #[test]
    fn chunked_reports_only_chunk_data_and_stops_at_end() {
        let mut t = BodyTracker::new(BodyKind::Chunked, &Limits::default());
        let input = b"3\r\nabc\r\n0\r\n\r\nNEXT";
        assert!(!t.eof_completes());
        let (p, data) = feed_all(&mut t, input);
        assert_eq!(
            p,
            Progress {
                consumed: input.len() - 4,
                done: true
            }
        );
        assert_eq!(data, b"abc");
        assert!(t.eof_completes());
    }

    #[test]
    fn chunked_error_is_400() {
        let mut t = BodyTracker::new(BodyKind::Chunked, &Limits::default());
        assert_eq!(t.feed(b"zz\r\n", |_| {}).unwrap_err().status, 400);
    }

    fn framing<'a>(fields: &[(&str, &'a str)]) -> Result<Framing<'a>, &'static str> {
        let mut f = Framing::default();
        for (name, value) in fields {
            f.add(name, value.as_bytes())?;
        }
        Ok(f)
    }

    #[test]
    fn content_length_identical_repeats_are_one_value() {
        let f = framing(&[("Content-Length", "5, 5"), ("content-length", "5")]).unwrap();
        assert_eq!(f.content_length, Some(5));
    }

    #[test]
    fn rejects_differing_content_length() {
        assert_eq!(
            framing(&[("Content-Length", "5"), ("Content-Length", "6")]),
            Err("differing Content-Length values")
        );
        assert!(framing(&[("Content-Length", "5, 6")]).is_err());
    }

    #[test]
    fn rejects_malformed_content_length() {
        for value in [
            "",
            "+5",
            "-5",
            "5a",
            "0x5",
            "5 5",
            "5,",
            " ",
            "18446744073709551616",
        ] {
            assert!(framing(&[("Content-Length", value)]).is_err(), "{value:?}");
        }
        let max = framing(&[("Content-Length", "18446744073709551615")]).unwrap();
        assert_eq!(max.content_length, Some(u64::MAX));
    }

    /// Only a value written the way the number is written in decimal is kept for
    /// copying; any other spelling of a valid length leaves it out.
    #[test]
    fn length_digits_are_kept_only_in_decimal() {
        let digits = |value| framing(&[("Content-Length", value)]).unwrap().length_digits;
        for value in ["0", "7", "1024", "1000000000000000000"] {
            assert_eq!(digits(value), Some(value.as_bytes()), "{value:?}");
        }
        for value in ["00", "0042", "5, 5", "18446744073709551615"] {
            assert_eq!(digits(value), None, "{value:?}");
        }
        let both = framing(&[("Content-Length", "042"), ("content-length", "42")]).unwrap();
        assert_eq!(both.length_digits, Some(&b"42"[..]));
    }

    #[test]
    fn transfer_codings_are_counted_over_all_fields() {
        let f = framing(&[
            ("Transfer-Encoding", "gzip, , Chunked"),
            ("TRANSFER-ENCODING", "chunked"),
        ])
        .unwrap();
        assert!(f.transfer_encoding);
        assert_eq!((f.codings, f.chunked), (3, 2));
        assert_eq!(framing(&[("Transfer-Encoding", "")]).unwrap().codings, 0);
    }

    #[test]
    fn other_fields_are_ignored() {
        assert_eq!(framing(&[("X-Length", "zz")]).unwrap(), Framing::default());
    }
}
