//! The in-memory index: a 64-bit hash of each live key → a 16-byte [`Entry`] that
//! locates its record. Everything else (lengths, seq, the key itself) is read from the
//! record header through the map when needed, which keeps the index at most 64 bytes
//! per object even just after the table has grown.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::format::ALIGN;
use super::keyed_hash::KeyedHash;

/// The object was returned by a lookup since it was written (second chance).
pub(crate) const USED: u8 = 1;
/// The payload CRC was checked (or the object was written by this process).
pub(crate) const VERIFIED: u8 = 2;
/// Recovery only: the key's newest record is a tombstone (removed once the scan ends).
pub(crate) const TOMBSTONE: u8 = 4;

/// Bits of [`Entry`]'s last word that hold the flags; the rest hold the record's length
/// in [`ALIGN`] units (2^28 units = 16 GiB, far above the 2 GiB a record may have).
const FLAG_BITS: u32 = 4;
const FLAG_MASK: u32 = (1 << FLAG_BITS) - 1;

/// Where a key's live record is, plus what eviction, stats and the live-byte count need
/// without a disk read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Entry {
    off_units: u32,
    stored: u32,
    expires: u32,
    /// The flags (low [`FLAG_BITS`]) and the record's length in [`ALIGN`] units.
    flags_len: u32,
}

impl Entry {
    /// `off` must be a multiple of [`ALIGN`] below `format::MAX_CAPACITY` and `len` (the
    /// record's `total_len`, a multiple of [`ALIGN`]) at most `file::PAD_CHUNK`, which the
    /// store guarantees for every record; times saturate at u32::MAX (year 2106).
    pub(crate) fn new(off: u64, len: u64, stored: u64, expires: u64, flags: u8) -> Entry {
        Entry {
            // MAX_CAPACITY is 2^32 units, so a record offset always fits.
            off_units: (off / ALIGN) as u32,
            stored: u32::try_from(stored).unwrap_or(u32::MAX),
            expires: u32::try_from(expires).unwrap_or(u32::MAX),
            // A record is at most 2^31 bytes = 2^25 units: the shift cannot overflow.
            flags_len: (((len / ALIGN) as u32) << FLAG_BITS) | (u32::from(flags) & FLAG_MASK),
        }
    }

    /// The record's offset in the file.
    pub(crate) fn off(&self) -> u64 {
        u64::from(self.off_units) * ALIGN
    }

    /// The record's length in the file (its `total_len`).
    pub(crate) fn len(&self) -> u64 {
        u64::from(self.flags_len >> FLAG_BITS) * ALIGN
    }

    /// Moves the entry to a copy of its record at `off` (same constraint as `new`).
    pub(crate) fn moved_to(self, off: u64) -> Entry {
        Entry {
            off_units: (off / ALIGN) as u32,
            ..self
        }
    }

    pub(crate) fn stored(&self) -> u64 {
        u64::from(self.stored)
    }

    #[cfg(test)]
    pub(crate) fn expires(&self) -> u64 {
        u64::from(self.expires)
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags_len & u32::from(flag) & FLAG_MASK != 0
    }

    pub(crate) fn set(&mut self, flag: u8) {
        self.flags_len |= u32::from(flag) & FLAG_MASK;
    }

    pub(crate) fn clear(&mut self, flag: u8) {
        self.flags_len &= !(u32::from(flag) & FLAG_MASK);
    }
}

/// The key-hash → entry table, and the sum of its entries' record lengths (kept as
/// entries come and go, so the live bytes cost nothing to read).
pub(crate) struct Index {
    map: HashMap<u64, Entry, BuildHasherDefault<IdHasher>>,
    /// The keys' hash, keyed at random for each process so that no one can aim URLs
    /// at one bucket (see [`KeyedHash`] for why a folded multiply, not SipHash).
    keys: KeyedHash,
    /// Sum of `Entry::len` over the table.
    bytes: u64,
}

impl Index {
    pub(crate) fn new() -> Index {
        Index {
            map: HashMap::default(),
            keys: KeyedHash::default(),
            bytes: 0,
        }
    }

    /// The table key for `key`. Two keys may share one (2^-64 per pair); callers compare
    /// the key bytes stored in the record.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.keys.hash(0, key)
    }

    pub(crate) fn get(&self, hash: u64) -> Option<Entry> {
        self.map.get(&hash).copied()
    }

    /// Sets `flag` on the entry of `hash`, if there is one.
    pub(crate) fn set_flag(&mut self, hash: u64, flag: u8) {
        if let Some(e) = self.map.get_mut(&hash) {
            e.set(flag);
        }
    }

    /// Clears `flag` on the entry of `hash`, if there is one.
    pub(crate) fn clear_flag(&mut self, hash: u64, flag: u8) {
        if let Some(e) = self.map.get_mut(&hash) {
            e.clear(flag);
        }
    }

    /// Inserts or replaces; returns the replaced entry.
    pub(crate) fn insert(&mut self, hash: u64, entry: Entry) -> Option<Entry> {
        self.bytes = self.bytes.saturating_add(entry.len());
        let old = self.map.insert(hash, entry);
        if let Some(old) = old {
            self.bytes = self.bytes.saturating_sub(old.len());
        }
        old
    }

    pub(crate) fn remove(&mut self, hash: u64) -> Option<Entry> {
        let old = self.map.remove(&hash);
        if let Some(old) = old {
            self.bytes = self.bytes.saturating_sub(old.len());
        }
        old
    }

    /// The sum of the entries' record lengths: the live bytes, in O(1).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Entry)> + '_ {
        self.map.iter().map(|(&h, &e)| (h, e))
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        let bytes = &mut self.bytes;
        self.map.retain(|_, e| {
            let kept = keep(e);
            if !kept {
                *bytes = bytes.saturating_sub(e.len());
            }
            kept
        });
    }

    /// Bytes the table holds on the heap: its buckets (key, entry) and their one-byte
    /// control tags. An estimate from the table's documented layout, not a measurement.
    pub(crate) fn memory_bytes(&self) -> usize {
        let cap = self.map.capacity();
        if cap == 0 {
            return 0;
        }
        // A table holds up to 7/8 of its (power-of-two) bucket count.
        let buckets = (cap.saturating_mul(8) / 7).next_power_of_two();
        buckets.saturating_mul(std::mem::size_of::<(u64, Entry)>() + 1)
    }
}

/// The table's keys are already keyed hashes: hashing them again would only cost.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys reach this hasher (write_u64); fold anything else anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_16_bytes_and_round_trips() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        let mut e = Entry::new(64 * 12345, 1 << 31, 1_700_000_000, u64::MAX, VERIFIED);
        assert_eq!(e.off(), 64 * 12345);
        assert_eq!(e.len(), 1 << 31, "the longest record fits");
        assert_eq!(e.stored(), 1_700_000_000);
        assert_eq!(e.expires(), u64::from(u32::MAX));
        assert!(e.has(VERIFIED) && !e.has(USED));
        e.set(USED);
        assert!(e.has(USED) && e.has(VERIFIED) && e.len() == 1 << 31);
        e.clear(VERIFIED);
        assert!(e.has(USED) && !e.has(VERIFIED) && e.len() == 1 << 31);
        let last = crate::cache::format::MAX_CAPACITY - ALIGN;
        assert_eq!(Entry::new(last, 64, 0, 0, 0).off(), last);
        let moved = e.moved_to(128);
        assert_eq!((moved.off(), moved.len()), (128, 1 << 31));
        assert!(moved.has(USED) && !moved.has(VERIFIED));
    }

    #[test]
    fn the_byte_count_follows_every_change() {
        let mut index = Index::new();
        let (a, b, c) = (index.hash(b"a"), index.hash(b"b"), index.hash(b"c"));
        index.insert(a, Entry::new(4096, 128, 0, 0, 0));
        index.insert(b, Entry::new(8192, 640, 0, 0, TOMBSTONE));
        index.insert(c, Entry::new(9000 / 64 * 64, 64, 0, 0, 0));
        assert_eq!(index.bytes(), 832);
        index.insert(a, Entry::new(12288, 256, 0, 0, 0));
        assert_eq!(index.bytes(), 960, "a replacement counts once");
        index.set_flag(a, USED);
        index.clear_flag(a, USED);
        index.retain(|e| !e.has(TOMBSTONE));
        assert_eq!(index.bytes(), 320);
        assert!(index.remove(c).is_some() && index.remove(c).is_none());
        assert_eq!(index.bytes(), 256);
        index.remove(a);
        assert_eq!(index.bytes(), 0);
    }

    #[test]
    fn memory_per_object_stays_within_64_bytes_at_every_size() {
        let mut index = Index::new();
        for i in 0..200_000u64 {
            index.insert(
                index.hash(&i.to_le_bytes()),
                Entry::new(i * 64, 64, 0, 0, 0),
            );
            let n = index.len();
            if n >= 64 {
                assert!(index.memory_bytes() <= 64 * n, "{n} objects");
            }
        }
    }

    #[test]
    fn hash_depends_on_key_bytes_only() {
        let index = Index::new();
        assert_eq!(index.hash(b"http://a/"), index.hash(b"http://a/"));
        assert_ne!(index.hash(b"http://a/"), index.hash(b"http://b/"));
    }
}
