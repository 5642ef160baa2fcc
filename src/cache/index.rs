//! The in-memory index: a 64-bit hash of each live key → a 16-byte [`Entry`] that
//! locates its record. Everything else (lengths, seq, the key itself) is read from the
//! record header through the map when needed, which keeps the index at most 64 bytes
//! per object even just after the table has grown.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use super::format::ALIGN;

/// The object was returned by a lookup since it was written (second chance).
pub(crate) const USED: u8 = 1;
/// The payload CRC was checked (or the object was written by this process).
pub(crate) const VERIFIED: u8 = 2;
/// Recovery only: the key's newest record is a tombstone (removed once the scan ends).
pub(crate) const TOMBSTONE: u8 = 4;

/// Where a key's live record is, plus what eviction and stats need without a disk read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Entry {
    off_units: u32,
    stored: u32,
    expires: u32,
    pub(crate) flags: u8,
}

impl Entry {
    /// `off` must be a multiple of [`ALIGN`] below `format::MAX_CAPACITY`, which the
    /// store guarantees for every record offset; times saturate at u32::MAX (year 2106).
    pub(crate) fn new(off: u64, stored: u64, expires: u64, flags: u8) -> Entry {
        Entry {
            // MAX_CAPACITY is 2^32 units, so a record offset always fits.
            off_units: (off / ALIGN) as u32,
            stored: u32::try_from(stored).unwrap_or(u32::MAX),
            expires: u32::try_from(expires).unwrap_or(u32::MAX),
            flags,
        }
    }

    /// The record's offset in the file.
    pub(crate) fn off(&self) -> u64 {
        u64::from(self.off_units) * ALIGN
    }

    /// Moves the entry to a copy of its record at `off` (same constraint as `new`).
    pub(crate) fn moved_to(self, off: u64) -> Entry {
        Entry::new(off, self.stored(), self.expires(), self.flags)
    }

    pub(crate) fn stored(&self) -> u64 {
        u64::from(self.stored)
    }

    pub(crate) fn expires(&self) -> u64 {
        u64::from(self.expires)
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// The key-hash → entry table.
pub(crate) struct Index {
    map: HashMap<u64, Entry, BuildHasherDefault<IdHasher>>,
    /// Per-process random SipHash key: an origin cannot aim URLs at one bucket.
    keys: RandomState,
}

impl Index {
    pub(crate) fn new() -> Index {
        Index {
            map: HashMap::default(),
            keys: RandomState::new(),
        }
    }

    /// The table key for `key`. Two keys may share one (2^-64 per pair); callers compare
    /// the key bytes stored in the record.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.keys.hash_one(key)
    }

    pub(crate) fn get(&self, hash: u64) -> Option<Entry> {
        self.map.get(&hash).copied()
    }

    pub(crate) fn get_mut(&mut self, hash: u64) -> Option<&mut Entry> {
        self.map.get_mut(&hash)
    }

    /// Inserts or replaces; returns the replaced entry.
    pub(crate) fn insert(&mut self, hash: u64, entry: Entry) -> Option<Entry> {
        self.map.insert(hash, entry)
    }

    pub(crate) fn remove(&mut self, hash: u64) -> Option<Entry> {
        self.map.remove(&hash)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Entry)> + '_ {
        self.map.iter().map(|(&h, &e)| (h, e))
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.map.retain(|_, e| keep(e));
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

/// The table's keys are already SipHash outputs: hashing them again would only cost.
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
        let e = Entry::new(64 * 12345, 1_700_000_000, u64::MAX, VERIFIED);
        assert_eq!(e.off(), 64 * 12345);
        assert_eq!(e.stored(), 1_700_000_000);
        assert_eq!(e.expires(), u64::from(u32::MAX));
        assert!(e.has(VERIFIED) && !e.has(USED));
        let last = super::super::format::MAX_CAPACITY - ALIGN;
        assert_eq!(Entry::new(last, 0, 0, 0).off(), last);
        assert_eq!(e.moved_to(128).off(), 128);
    }

    #[test]
    fn memory_per_object_stays_within_64_bytes_at_every_size() {
        let mut index = Index::new();
        for i in 0..200_000u64 {
            index.insert(index.hash(&i.to_le_bytes()), Entry::new(i * 64, 0, 0, 0));
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
