//! The uncacheable memo: URLs whose last response could not be stored.
//!
//! Collapsing makes the second of two concurrent misses for a URL wait for the
//! first one's fetch, which pays only when that fetch is stored. For a URL whose
//! responses are never stored (`no-store`, `private`, `Set-Cookie`, over-size...)
//! every wait is a pure delay, and with many clients asking for such a URL at once
//! they would take turns behind one fetch at a time. So, as Varnish's "hit-for-miss"
//! objects do, larder remembers for [`PASS_SECS`] that a URL's response was not
//! stored, and requests for a remembered URL fetch at once without waiting. They are
//! still stored if their response turns out storable, which also forgets the URL.
//! (A 206 or 304 is not remembered: it answers one request's Range or conditional,
//! not the URL.)
//!
//! # The table
//! A fixed array of slots, allocated zeroed (no RSS until used), direct-mapped by the
//! caller's URL hash: a URL lives only in the slot its hash selects, and a later URL
//! with the same slot replaces it. Losing an entry only costs one wait, so no more
//! is needed. Times are unix seconds passed in by the caller.

/// How long a URL is remembered after a response that could not be stored
/// (Varnish's built-in `hit-for-miss` lasts as long).
pub const PASS_SECS: u64 = 120;

/// URLs whose last response was not stored, by hash. See the module documentation.
pub struct Uncacheable {
    /// Pairs of (URL hash, unix second the entry lapses); a lapse time of 0 is empty.
    slots: Vec<u64>,
}

impl Uncacheable {
    /// A memo of `capacity` slots (16 bytes each), from zeroed pages.
    pub fn new(capacity: usize) -> Uncacheable {
        // `vec![0; n]` of an integer is allocated zeroed (calloc), not written.
        Uncacheable {
            slots: vec![0; capacity.saturating_mul(2)],
        }
    }

    fn slot(&self, hash: u64) -> Option<usize> {
        let n = self.slots.len() / 2;
        // High bits pick the slot, as in the admission table.
        (n > 0).then(|| ((u128::from(hash) * n as u128) >> 64) as usize * 2)
    }

    /// Remembers that the response for `hash` at `now` could not be stored.
    pub fn mark(&mut self, hash: u64, now: u64) {
        if let Some(i) = self.slot(hash) {
            self.slots[i] = hash;
            self.slots[i + 1] = now.saturating_add(PASS_SECS).max(1);
        }
    }

    /// Whether `hash`'s last response, less than [`PASS_SECS`] before `now`, could
    /// not be stored.
    pub fn marked(&self, hash: u64, now: u64) -> bool {
        self.slot(hash)
            .is_some_and(|i| self.slots[i] == hash && self.slots[i + 1] > now)
    }

    /// Forgets `hash` (a response for it is being stored).
    pub fn clear(&mut self, hash: u64) {
        if let Some(i) = self.slot(hash) {
            if self.slots[i] == hash {
                self.slots[i + 1] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_url_is_remembered_until_its_time_lapses() {
        let mut m = Uncacheable::new(64);
        assert!(!m.marked(7, 1000));
        m.mark(7, 1000);
        assert!(m.marked(7, 1000));
        assert!(m.marked(7, 1000 + PASS_SECS - 1));
        assert!(!m.marked(7, 1000 + PASS_SECS));
    }

    #[test]
    fn clearing_forgets_only_that_url() {
        let mut m = Uncacheable::new(64);
        m.mark(1, 10);
        m.mark(u64::MAX, 10);
        m.clear(1);
        assert!(!m.marked(1, 10));
        assert!(m.marked(u64::MAX, 10));
        // Clearing a URL that shares a slot with a marked one leaves that one.
        m.clear(u64::MAX - 1);
        assert!(m.marked(u64::MAX, 10));
    }

    #[test]
    fn a_url_sharing_a_slot_replaces_the_one_there() {
        let mut m = Uncacheable::new(1);
        m.mark(1, 10);
        m.mark(2, 10);
        assert!(!m.marked(1, 10));
        assert!(m.marked(2, 10));
    }

    #[test]
    fn an_empty_memo_remembers_nothing_and_times_saturate() {
        let mut m = Uncacheable::new(0);
        m.mark(1, 10);
        assert!(!m.marked(1, 10));
        m.clear(1);
        let mut m = Uncacheable::new(4);
        m.mark(3, u64::MAX);
        assert!(!m.marked(3, u64::MAX));
        assert!(m.marked(3, u64::MAX - 1));
        // Hash 0 at time 0 is a real entry, not an empty slot.
        m.mark(0, 0);
        assert!(m.marked(0, 0));
    }
}
