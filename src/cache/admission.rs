//! Admission: the request-history table that decides whether a response may be stored.
//!
//! # The rule
//! A URL's response is stored only once the URL was requested more than `after` times
//! in a *run*: a sequence of requests each of which came at most `window_secs` after the
//! one before it. A request that comes later than that after its predecessor starts a
//! new run with a count of 1. With `after = 0` every response may be stored and the
//! table records nothing.
//!
//! With the defaults (`after = 1`, 10 minutes) the first request for a URL is not
//! stored, and a second one within 10 minutes of the first is; so is every later one
//! that keeps following its predecessor within 10 minutes.
//!
//! # The table
//! A fixed array of `capacity` 16-byte slots, allocated once by [`Admission::new`] and
//! never grown, split into sets of [`WAYS`] consecutive slots; a key lives only in the
//! set its hash selects. A new key takes an empty slot of its set, else one whose entry
//! has expired, else the set's least recently seen entry (on a tie within the same
//! second, the one seen fewer times: a key being counted up outlives one-off URLs).
//!
//! Why set-associative rather than a map plus a global LRU list: the memory is exact and
//! fixed (65 536 entries = 1 MiB), there is no allocation after `new`, every call touches
//! at most `WAYS` slots (two cache lines), and no per-entry links are needed. The price
//! is that eviction is least-recently-seen per set, not globally; with 8 ways and keys
//! that are keyed hashes under a per-process random key (an origin or client cannot
//! aim URLs at one set) that is close to global LRU.
//!
//! Expired entries are already ignored and reused by [`Admission::record`], so
//! correctness does not depend on [`Admission::sweep`]; sweeping keeps [`Admission::len`]
//! close to the number of live entries.
//!
//! # Time
//! Times are unix seconds passed in by the caller (no system clock here). They are held
//! as `u32` and saturate at `u32::MAX` (year 2106), so any `now` is accepted. A `now`
//! before an entry's last-seen time (the clock stepped back) counts as "just now".

/// Slots per set. 8 × 16 bytes is two cache lines per lookup.
pub const WAYS: usize = 8;

/// Slots a single [`Admission::sweep`] call examines at most (16 KiB of slots).
pub const SWEEP_SLOTS: usize = 1024;

/// One remembered key. `count == 0` marks an empty slot (a held entry has counted at
/// least one request), which leaves every `key` value usable.
#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    key: u64,
    last_seen: u32,
    count: u32,
}

const EMPTY: Slot = Slot {
    key: 0,
    last_seen: 0,
    count: 0,
};

/// The bounded request-history table. See the module documentation for the rule.
pub struct Admission {
    after: u32,
    window_secs: u64,
    slots: Vec<Slot>,
    /// Slots with `count != 0`, expired or not.
    held: usize,
    /// Where the next [`Admission::sweep`] resumes.
    cursor: usize,
}

/// `n` empty slots in memory from the allocator's zeroed pages: the table's pages cost
/// no RSS until a set in them is used (`vec![EMPTY; n]` would write all of them, a
/// megabyte of RSS at start-up for the default table).
fn zeroed_slots(n: usize) -> Vec<Slot> {
    // `vec![0; n]` of a plain integer type is allocated zeroed (calloc), not written.
    let mut words = std::mem::ManuallyDrop::new(vec![0u64; n.saturating_mul(2)]);
    let (ptr, len, cap) = (words.as_mut_ptr(), words.len(), words.capacity());
    // SAFETY: `Slot` is `repr(C)` {u64, u32, u32}: 16 bytes, alignment 8, no padding,
    // valid for any bits; two u64 words have the same size and alignment, and an
    // all-zero slot is `EMPTY`. Length and capacity are halved exactly (both even),
    // so the allocation is freed later with the layout it was made with.
    unsafe { Vec::from_raw_parts(ptr.cast::<Slot>(), len / 2, cap / 2) }
}

impl Admission {
    /// A table that admits a key's response once the key was requested more than `after`
    /// times in a run (each request within `window_secs` of the previous one), and
    /// remembers at most `capacity` keys in `capacity × 16` bytes allocated here (none
    /// when `after = 0`).
    ///
    /// With `capacity = 0` nothing is remembered, so nothing is admitted unless
    /// `after = 0`.
    pub fn new(after: u32, window_secs: u64, capacity: usize) -> Admission {
        // No table is needed when everything is admitted.
        let capacity = if after == 0 { 0 } else { capacity };
        Admission {
            after,
            window_secs,
            slots: zeroed_slots(capacity),
            held: 0,
            cursor: 0,
        }
    }

    /// Counts one request for `key_hash` at `now` and returns whether a response to it
    /// may be stored: true when this request makes the key's run longer than `after`
    /// requests (this request included). Always true, recording nothing, when
    /// `after = 0`.
    ///
    /// `key_hash` is the caller's hash of the URL; two URLs with one hash share a count.
    /// Touches at most [`WAYS`] slots; may evict another key (see the module docs).
    pub fn record(&mut self, key_hash: u64, now: u64) -> bool {
        if self.after == 0 {
            return true;
        }
        let now = clamp_time(now);
        let window = self.window_secs;
        let nsets = self.slots.len().div_ceil(WAYS);
        // The hash's high bits pick the set; no modulo, and any set count works.
        let set = ((u128::from(key_hash) * nsets as u128) >> 64) as usize;
        let start = set * WAYS;
        let end = self.slots.len().min(start + WAYS);
        let Some(ways) = self.slots.get_mut(start..end) else {
            return false;
        };

        let mut victim: Option<usize> = None;
        for (i, slot) in ways.iter().enumerate() {
            if slot.count != 0 && slot.key == key_hash {
                victim = Some(i);
                break;
            }
            if victim
                .and_then(|v| ways.get(v))
                .is_none_or(|v| reuse_first(slot, v, now, window))
            {
                victim = Some(i);
            }
        }
        let Some(slot) = victim.and_then(|v| ways.get_mut(v)) else {
            // Only an empty set (capacity 0) has no victim.
            return false;
        };

        let continues_run = slot.count != 0 && slot.key == key_hash && !expired(slot, now, window);
        if slot.count == 0 {
            self.held += 1;
        }
        slot.count = if continues_run {
            slot.count.saturating_add(1)
        } else {
            1
        };
        slot.key = key_hash;
        // A step back is taken as the new clock: later times are measured from it.
        slot.last_seen = now;
        slot.count > self.after
    }

    /// Drops entries whose last request is more than the window ago, examining at most
    /// [`SWEEP_SLOTS`] slots per call and resuming where the previous call stopped, so a
    /// full pass takes `capacity / SWEEP_SLOTS` calls (64 at 65 536 entries). Cheap
    /// enough to call on every loop tick.
    pub fn sweep(&mut self, now: u64) {
        let now = clamp_time(now);
        let len = self.slots.len();
        for _ in 0..SWEEP_SLOTS.min(len) {
            if self.cursor >= len {
                self.cursor = 0;
            }
            if let Some(slot) = self.slots.get_mut(self.cursor) {
                if slot.count != 0 && expired(slot, now, self.window_secs) {
                    *slot = EMPTY;
                    self.held -= 1;
                }
            }
            self.cursor += 1;
        }
    }

    /// Keys held, including expired ones not yet swept; at most `capacity`.
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Heap bytes the table holds: `capacity × 16`, fixed from [`Admission::new`] on.
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

fn clamp_time(now: u64) -> u32 {
    u32::try_from(now).unwrap_or(u32::MAX)
}

/// Whether `slot`'s last request is more than `window` before `now`; a last-seen time
/// after `now` (the clock stepped back) is "just now".
fn expired(slot: &Slot, now: u32, window: u64) -> bool {
    u64::from(now.saturating_sub(slot.last_seen)) > window
}

/// Whether `a` should be given to a new key before `b`: empty first, then expired, then
/// least recently seen, then fewer requests.
fn reuse_first(a: &Slot, b: &Slot, now: u32, window: u64) -> bool {
    let rank = |s: &Slot| (s.count != 0, !expired(s, now, window), s.last_seen, s.count);
    rank(a) < rank(b)
}

const _: () = assert!(std::mem::size_of::<Slot>() == 16 && std::mem::align_of::<Slot>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;
    const MIN10: u64 = 600;

    #[test]
    fn slot_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
        assert_eq!(Admission::new(1, MIN10, 65_536).memory_bytes(), 1 << 20);
    }

    #[test]
    fn first_sight_not_admitted_second_within_window_admitted() {
        let mut a = Admission::new(1, MIN10, 1024);
        assert!(!a.record(7, T0));
        assert!(a.record(7, T0 + MIN10));
        assert!(a.record(7, T0 + 2 * MIN10), "the run continues");
        assert!(!a.record(8, T0), "another key has its own count");
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn request_after_window_starts_count_over() {
        let mut a = Admission::new(1, MIN10, 1024);
        assert!(!a.record(7, T0));
        assert!(!a.record(7, T0 + MIN10 + 1));
        assert!(a.record(7, T0 + 2 * MIN10 + 1));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn after_zero_admits_everything_and_records_nothing() {
        let mut a = Admission::new(0, MIN10, 1024);
        for k in 0..100 {
            assert!(a.record(k, T0));
        }
        assert_eq!(a.len(), 0);
        assert_eq!(a.memory_bytes(), 0);
    }

    #[test]
    fn after_three_admits_on_fourth_request() {
        let mut a = Admission::new(3, MIN10, 1024);
        assert!(!a.record(1, T0));
        assert!(!a.record(1, T0 + 1));
        assert!(!a.record(1, T0 + 2));
        assert!(a.record(1, T0 + 3));
        assert!(a.record(1, T0 + 4));
        // One late request restarts the run at 1.
        assert!(!a.record(1, T0 + 4 + MIN10 + 1));
        assert!(!a.record(1, T0 + 4 + MIN10 + 2));
    }

    #[test]
    fn bound_holds_under_ten_times_capacity_distinct_keys() {
        for cap in [1, 5, 8, 1000, 4096] {
            let mut a = Admission::new(1, MIN10, cap);
            let bytes = a.memory_bytes();
            assert_eq!(bytes, cap * 16);
            let mut key = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..10 * cap as u64 {
                key = key.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                a.record(key, T0 + i / 100);
                assert!(a.len() <= cap);
            }
            assert_eq!(a.len(), cap, "every slot in use");
            assert_eq!(a.memory_bytes(), bytes);
        }
    }

    #[test]
    fn sweep_removes_expired_entries() {
        let mut a = Admission::new(1, MIN10, 4 * SWEEP_SLOTS);
        for k in 0..1000u64 {
            a.record(k.wrapping_mul(0x0123_4567_89ab_cdef), T0);
        }
        a.record(u64::MAX, T0 + MIN10);
        let held = a.len();
        for _ in 0..4 {
            a.sweep(T0 + MIN10);
        }
        assert_eq!(a.len(), held, "nothing is past the window yet");
        for _ in 0..4 {
            a.sweep(T0 + MIN10 + 1);
        }
        assert_eq!(a.len(), 1, "only the key seen later is left");
        assert!(a.record(u64::MAX, T0 + MIN10 + 1));
        assert!(!a.record(0, T0 + MIN10 + 1), "swept keys start over");
    }

    #[test]
    fn sweep_work_per_call_is_bounded() {
        let mut a = Admission::new(1, MIN10, 4 * SWEEP_SLOTS);
        for k in 0..4 * SWEEP_SLOTS as u64 {
            a.record(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), T0);
        }
        let held = a.len();
        a.sweep(T0 + MIN10 + 1);
        assert!(held - a.len() <= SWEEP_SLOTS);
    }

    #[test]
    fn eviction_under_pressure_keeps_recently_seen_keys_working() {
        let cap = 1024;
        let mut a = Admission::new(1, MIN10, cap);
        let hot = [11u64, u64::MAX / 3, u64::MAX - 5];
        for &h in &hot {
            a.record(h, T0);
        }
        let mut key = 1u64;
        for round in 0..20 {
            let now = T0 + round;
            for &h in &hot {
                assert!(a.record(h, now), "round {round}");
            }
            for _ in 0..10 * cap {
                key = key
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                assert!(!a.record(key, now));
            }
            assert!(a.len() <= cap);
        }
    }

    #[test]
    fn huge_times_and_clock_steps_do_not_panic_or_reset() {
        let mut a = Admission::new(1, MIN10, 64);
        assert!(!a.record(1, u64::MAX));
        assert!(
            a.record(1, u64::MAX),
            "times past 2106 compare equal, not expired"
        );
        assert!(a.record(1, 0), "a step back counts as just now");
        assert!(a.record(1, MIN10), "and is the new clock");
        assert!(!a.record(1, 2 * MIN10 + 1));
        a.sweep(0);
        a.sweep(u64::MAX);
        assert_eq!(a.len(), 0);

        let mut wide = Admission::new(u32::MAX, u64::MAX, 8);
        for now in [0, u64::MAX, 5, u64::MAX] {
            assert!(!wide.record(9, now));
        }
        wide.sweep(u64::MAX);
        assert_eq!(wide.len(), 1, "an endless window never expires");
    }

    #[test]
    fn zero_capacity_admits_nothing() {
        let mut a = Admission::new(1, MIN10, 0);
        assert!(!a.record(1, T0));
        assert!(!a.record(1, T0));
        a.sweep(T0);
        assert!(a.is_empty());
        assert_eq!(a.memory_bytes(), 0);
    }
}
