//! A keyed hash of short byte strings for tables that live in memory only: the
//! index's URL keys and the pool's origins. Every request hashes its URL and, when it
//! goes upstream, its origin, so the hash is the cheap kind: a folded multiply over
//! 16 bytes at a time (the construction of hashbrown's default hasher, foldhash),
//! with a key drawn at random for each process.
//!
//! The trade-off against SipHash, which std keys the same way: this hash makes no
//! cryptographic promise, so a client that could learn enough of its outputs might
//! in principle find URLs that share a hash. It cannot see them (no output leaves the
//! process, and the key changes with every start), and what a shared hash costs is
//! bounded anyway: every user of a hash compares what it found with what it wanted
//! (the index reads the key stored in the record, the pool the socket's host and
//! port), so a collision costs a cache miss, a replaced entry or a longer list to
//! search, never a wrong answer. Nothing stores a hash on disk: the index is rebuilt
//! by the scan at every start, with that start's key.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// The random key of [`KeyedHash::hash`], new for each process.
#[derive(Debug, Clone)]
pub(crate) struct KeyedHash([u64; 4]);

impl Default for KeyedHash {
    fn default() -> KeyedHash {
        // std's SipHash is keyed at random for each `RandomState`: four of its
        // outputs make this hash's key.
        let random = RandomState::new();
        KeyedHash([0u8, 1, 2, 3].map(|i| random.hash_one(i)))
    }
}

impl KeyedHash {
    /// The hash of `bytes`, with `seed` (a port, say) mixed in first. So is the
    /// length, through a multiply of its own (xored in, a short string's last bytes
    /// could cancel it): the last, shorter block is read in overlapping words (see
    /// [`tail_words`]), which tell tails apart only among tails of one length.
    pub(crate) fn hash(&self, seed: u64, bytes: &[u8]) -> u64 {
        let [start, block_key, tail_key, end_key] = self.0;
        let mut h = folded_multiply(start ^ seed, block_key ^ bytes.len() as u64);
        let (blocks, tail) = bytes.as_chunks::<16>();
        for block in blocks {
            let (a, b) = block.split_at(8);
            h = folded_multiply(h ^ word(a), word(b) ^ block_key);
        }
        let (a, b) = tail_words(tail);
        let h = folded_multiply(h ^ a ^ tail_key, b ^ end_key);
        // One more round, so that every output bit depends on every input bit: the
        // index's table uses the low bits, the admission and uncacheable sets the high.
        folded_multiply(h, start ^ end_key)
    }
}

/// The last 0 to 15 bytes as two words: from 8 bytes on, the first 8 and the last 8
/// (overlapping); from 4 on, the first 4 and the last 4; below, the first, middle and
/// last byte. With the length known, each reading covers every byte of the tail.
fn tail_words(tail: &[u8]) -> (u64, u64) {
    if let (Some(a), Some(b)) = (tail.first_chunk::<8>(), tail.last_chunk::<8>()) {
        return (u64::from_le_bytes(*a), u64::from_le_bytes(*b));
    }
    if let (Some(a), Some(b)) = (tail.first_chunk::<4>(), tail.last_chunk::<4>()) {
        return (
            u64::from(u32::from_le_bytes(*a)),
            u64::from(u32::from_le_bytes(*b)),
        );
    }
    match (tail.first(), tail.get(tail.len() / 2), tail.last()) {
        (Some(&first), Some(&middle), Some(&last)) => (
            u64::from(first) | u64::from(middle) << 8 | u64::from(last) << 16,
            0,
        ),
        _ => (0, 0),
    }
}

/// Eight bytes, little-endian (`bytes` is one half of a 16-byte block).
fn word(bytes: &[u8]) -> u64 {
    bytes
        .first_chunk::<8>()
        .map_or(0, |w| u64::from_le_bytes(*w))
}

/// The 128-bit product of `a` and `b`, its halves xored: each bit of either
/// depends on most bits of `a`.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn equal_input_equal_hash_within_a_key() {
        let h = KeyedHash::default();
        for s in ["", "a", "http://a/", "http://127.0.0.1:8080/nc/size/1024"] {
            assert_eq!(h.hash(0, s.as_bytes()), h.hash(0, s.as_bytes()), "{s}");
        }
        assert_ne!(h.hash(80, b"a"), h.hash(81, b"a"), "the seed counts");
    }

    /// Every length up to past two blocks, and strings that differ in one byte
    /// anywhere or only in length (zero bytes appended): no two share a hash, and
    /// the high and low bits alike are spread (the tables use one or the other).
    #[test]
    fn strings_that_differ_anywhere_hash_apart() {
        let h = KeyedHash::default();
        let mut seen = HashSet::new();
        let (mut high, mut low) = (HashSet::new(), HashSet::new());
        let mut n = 0;
        for len in 0..40usize {
            let base = vec![0u8; len];
            assert!(seen.insert(h.hash(0, &base)), "zeros of length {len}");
            for at in 0..len {
                for b in [1u8, b'a', 0x80, 0xff] {
                    let mut s = base.clone();
                    s[at] = b;
                    let x = h.hash(0, &s);
                    assert!(seen.insert(x), "length {len}, byte {b} at {at}");
                    high.insert(x >> 56);
                    low.insert(x & 0xff);
                    n += 1;
                }
            }
        }
        assert!(n > 3000);
        assert!(
            high.len() > 200 && low.len() > 200,
            "{} {}",
            high.len(),
            low.len()
        );
    }

    #[test]
    fn keys_differ_between_instances() {
        let (a, b) = (KeyedHash::default(), KeyedHash::default());
        assert_ne!(a.hash(0, b"http://a/"), b.hash(0, b"http://a/"));
    }
}
