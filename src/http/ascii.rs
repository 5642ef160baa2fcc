//! Case-insensitive comparison of field names, directive names and schemes against
//! the lowercase spellings larder knows, and the search for one byte in a short run
//! of them ([`find_byte`]).
//!
//! Every field of every head is compared against several names; `eq_ignore_ascii_case`
//! lowercases both sides a byte at a time, which made these compares a noticeable
//! share of a request's cost. Here the input is lowercased eight bytes at a time and
//! the known name is already lowercase. A search for either of two bytes
//! ([`find_either`]) works a word at a time the same way.

const ONES: u64 = 0x0101_0101_0101_0101;

/// Whether `bytes` equals `lower` ignoring ASCII case, where `lower` holds no ASCII
/// uppercase letter (callers pass literals). Exactly `bytes.eq_ignore_ascii_case(lower)`
/// for such a `lower`, for any bytes (non-ASCII ones included).
///
/// Inlined: `lower` is a literal, so its words become constants.
#[inline]
pub(crate) fn eq_lowercase(bytes: &[u8], lower: &[u8]) -> bool {
    debug_assert!(!lower.iter().any(u8::is_ascii_uppercase), "{lower:?}");
    let len = bytes.len();
    if len != lower.len() {
        return false;
    }
    if len < 4 {
        return bytes
            .iter()
            .zip(lower)
            .all(|(b, l)| b.to_ascii_lowercase() == *l);
    }
    if len < 8 {
        // The first four bytes and the last four (overlapping) as one word.
        let pair = |b: &[u8]| u64::from(half(b, 0)) | u64::from(half(b, len - 4)) << 32;
        return lowercase_word(pair(bytes)) == pair(lower);
    }
    // Words at 0, 8, 16, … and a last one ending at `len` (overlapping the one before
    // it when `len` is not a multiple of eight): every byte is compared at least once.
    let mut at = 0;
    while at + 8 < len {
        if lowercase_word(word(bytes, at)) != word(lower, at) {
            return false;
        }
        at += 8;
    }
    lowercase_word(word(bytes, len - 8)) == word(lower, len - 8)
}

/// The eight bytes at `at` as one word; zero if they are not all there (callers
/// stay in bounds).
#[inline]
fn word(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The four bytes at `at` as one word; zero if they are not all there (callers
/// stay in bounds).
#[inline]
fn half(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes)
}

/// `to_ascii_lowercase` on each of the eight bytes of `x` at once.
#[inline]
fn lowercase_word(x: u64) -> u64 {
    // In each byte's low seven bits, adding 0x3f sets the top bit from 'A' (0x41) up,
    // adding 0x25 from '[' (0x5b) up; neither sum carries into the next byte. Bytes
    // with their own top bit set are not ASCII and stay as they are.
    let low7 = x & (0x7f * ONES);
    let from_a = low7 + 0x3f * ONES;
    let past_z = low7 + 0x25 * ONES;
    let upper = from_a & !past_z & !x & (0x80 * ONES);
    // 0x80 >> 2 is 0x20, the case bit.
    x | (upper >> 2)
}

/// Index of the first byte of `bytes` that is `a` or `b`, looked for eight bytes at a
/// time: a Cache-Control value is searched for `=` and `,` in every response, and a
/// byte-at-a-time search made a noticeable share of reading it.
#[inline]
pub(crate) fn find_either(bytes: &[u8], a: u8, b: u8) -> Option<usize> {
    let (wa, wb) = (ONES * u64::from(a), ONES * u64::from(b));
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in words.by_ref() {
        let x = <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes);
        let found = zero_bytes(x ^ wa) | zero_bytes(x ^ wb);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter().position(|&c| c == a || c == b).map(|i| at + i)
}

/// Where `byte` first occurs in `bytes`, looked for eight bytes at a time. What is
/// searched is short (an authority, a line of a head): `memchr`'s set-up, as
/// `str::find` reaches it, cost more than the search, and a byte at a time four
/// instructions a byte.
#[inline]
pub(crate) fn find_byte(bytes: &[u8], byte: u8) -> Option<usize> {
    let pattern = u64::from(byte) * ONES;
    let (words, tail) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let found = zero_bytes(u64::from_le_bytes(*word) ^ pattern);
        if found != 0 {
            return Some(i * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    let found = tail.iter().position(|&b| b == byte)?;
    Some(words.len() * 8 + found)
}

/// The top bit of each byte of `x` that is zero, and possibly of bytes above one that
/// is (the subtraction borrows through it): the lowest bit set is always exact, which
/// is all [`find_either`] and [`find_byte`] read.
#[inline]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & (0x80 * ONES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::next_u64;

    /// Every byte value as the one sought, at every place in slices of every length
    /// up to three words, among neighbours that tempt the borrow (the byte sought
    /// plus or minus one, zero, 0x80, 0xff) and with a second match after the first.
    #[test]
    fn find_byte_agrees_with_position() {
        let mut rng = 0x9e37_79b9_7f4a_7c15;
        for byte in 0..=255u8 {
            let near = [
                byte.wrapping_add(1),
                byte.wrapping_sub(1),
                0,
                0x80,
                0xff,
                byte ^ 0x80,
            ];
            for len in 0..24usize {
                for at in 0..=len {
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|_| near[(next_u64(&mut rng) % near.len() as u64) as usize])
                        .map(|b| if b == byte { b.wrapping_add(2) } else { b })
                        .collect();
                    if let Some(b) = bytes.get_mut(at) {
                        *b = byte;
                    }
                    if let Some(b) = bytes.get_mut(at + 1 + (len / 3)) {
                        *b = byte;
                    }
                    let want = bytes.iter().position(|&b| b == byte);
                    assert_eq!(find_byte(&bytes, byte), want, "{byte:#x} in {bytes:x?}");
                }
            }
        }
    }

    #[test]
    fn lowercases_every_byte_value_in_every_position() {
        for byte in 0..=255u8 {
            for pos in 0..8 {
                let mut bytes = *b"xYz-0aQ~";
                bytes[pos] = byte;
                let mut expected = bytes;
                expected.make_ascii_lowercase();
                assert_eq!(
                    lowercase_word(u64::from_le_bytes(bytes)),
                    u64::from_le_bytes(expected),
                    "{byte:#x} at {pos}"
                );
            }
        }
    }

    #[test]
    fn agrees_with_eq_ignore_ascii_case() {
        let names: [&[u8]; 10] = [
            b"",
            b"te",
            b"host",
            b"range",
            b"pragma",
            b"http://",
            b"no-store",
            b"cache-control",
            b"content-length",
            b"proxy-authorization",
        ];
        let alphabet = b"aAzZ@[`{-_:/\x00\x80\xc1\xe1\xffcCoOnNtTeElLgGhHsS";
        let mut rng = 0x2545_f491_4f6c_dd1d;
        for name in names {
            let mut upper = name.to_vec();
            upper.make_ascii_uppercase();
            assert!(eq_lowercase(name, name));
            assert!(eq_lowercase(&upper, name), "{upper:?}");
            for _ in 0..2000 {
                // The name with up to three bytes changed, or its length changed.
                let mut candidate = upper.clone();
                for _ in 0..(next_u64(&mut rng) % 4) {
                    let pick = |r: u64, n: usize| (r % n as u64) as usize;
                    let byte = alphabet[pick(next_u64(&mut rng), alphabet.len())];
                    match candidate.len() {
                        0 => candidate.push(byte),
                        n => candidate[pick(next_u64(&mut rng), n)] = byte,
                    }
                }
                if next_u64(&mut rng).is_multiple_of(16) {
                    candidate.push(b'a');
                }
                assert_eq!(
                    eq_lowercase(&candidate, name),
                    candidate.eq_ignore_ascii_case(name),
                    "{candidate:?} against {name:?}"
                );
            }
        }
    }

    /// Over every length up to three words and every byte value at every place, with
    /// the bytes looked for placed anywhere (several at once, too), the first one found
    /// is the one a plain search finds.
    #[test]
    fn find_either_agrees_with_a_plain_search() {
        let mut rng = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"=,\x00\x01\x7f\x80\xff\xbc\xbd\xac\xadaz ;";
        for len in 0..24 {
            for _ in 0..3000 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| match next_u64(&mut rng) % 4 {
                        0 => alphabet[(next_u64(&mut rng) % alphabet.len() as u64) as usize],
                        _ => next_u64(&mut rng) as u8,
                    })
                    .collect();
                let plain = bytes.iter().position(|&c| c == b'=' || c == b',');
                assert_eq!(find_either(&bytes, b'=', b','), plain, "{bytes:?}");
                let comma = bytes.iter().position(|&c| c == b',');
                assert_eq!(find_either(&bytes, b',', b','), comma, "{bytes:?}");
            }
        }
        assert_eq!(find_either(b"no-store", b'=', b','), None);
        assert_eq!(find_either(b"max-age=60", b'=', b','), Some(7));
        assert_eq!(find_either(b"public, max-age=60", b'=', b','), Some(6));
    }

    /// The top-bit bytes that `| 0x20` alone would fold onto letters stay apart.
    #[test]
    fn non_ascii_bytes_never_match_letters() {
        assert!(!eq_lowercase(b"\xc3ache-control", b"cache-control"));
        assert!(!eq_lowercase(b"content-lengt\xc8", b"content-length"));
        assert!(!eq_lowercase(b"cache\x0dcontrol", b"cache-control"));
    }
}
