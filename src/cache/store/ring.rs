//! The ring: making room at the cursor (eviction, second chances, jumps over
//! protected records, wrapping), claiming a reservation, and the pads that cover
//! what is freed (see "The ring" in the module docs).

use super::*;

/// How the horizon may treat what it meets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Walk {
    /// A new reservation: jump protected records, give used ones a second chance.
    Reserve,
    /// Growing the newest fill in place: anything protected in the way is `Busy`, and
    /// nothing may be copied to the cursor.
    Extend,
    /// Making an index entry free: jump protected records, evict the first live one.
    Evict,
}

impl Store {
    /// Moves the horizon (and, for jumps and second chances, the cursor) until `len`
    /// bytes are free at the cursor, inside the window. `Walk::Extend` may not move the
    /// cursor. When the window is too small: with `inline`, a checkpoint is taken here
    /// (whenever the cursor has left the last window); otherwise `Busy`, and the
    /// checkpoint is wanted ([`Store::sync_due`]).
    pub(super) fn make_room(
        &mut self,
        len: u64,
        walk: Walk,
        inline: bool,
    ) -> Result<(), CacheError> {
        let budget = len.saturating_mul(4).max(MIN_COPY_BUDGET);
        let mut spent = 0;
        // Two laps without finding room: everything in the way is pinned or filling.
        let limit = (self.area_end - FILE_HEADER_LEN).saturating_mul(2);
        let mut walked = 0u64;
        // Where the cursor was at the last checkpoint taken here.
        let mut synced_at = None;
        let mut window_full = |store: &mut Store| -> Result<(), CacheError> {
            store.sync.want = store.sync.want.max(len);
            // A checkpoint taken here opens a window at the cursor that holds `len`, so
            // another one helps only once the cursor has moved (a wrap, or the copies
            // of second chances, took it out of that window): each needs progress, and
            // the walk is bounded.
            if !inline || synced_at == Some(store.cursor) {
                return Err(CacheError::Busy);
            }
            synced_at = Some(store.cursor);
            store.sync_now()
        };
        loop {
            let end = self.cursor.saturating_add(len);
            if end > self.area_end {
                if walk == Walk::Extend {
                    return Err(CacheError::Busy);
                }
                if self.horizon >= self.area_end {
                    if !self.may_write(self.cursor, self.area_end) {
                        window_full(self)?;
                        continue;
                    }
                    self.wrap()?;
                    continue;
                }
            } else if !self.may_write(self.cursor, end) {
                window_full(self)?;
                continue;
            } else if self.horizon >= end {
                return Ok(());
            }
            if walked > limit {
                return Err(CacheError::Busy);
            }
            walked += match self.advance_horizon(walk, budget, &mut spent) {
                // a jump that would write outside the window
                Err(CacheError::Busy) if walk != Walk::Extend => {
                    window_full(self)?;
                    0
                }
                other => other?,
            };
        }
    }

    /// Frees one index entry by evicting the oldest live object.
    pub(super) fn evict_oldest(&mut self) -> Result<(), CacheError> {
        let before = self.index.len();
        let limit = (self.area_end - FILE_HEADER_LEN).saturating_mul(2);
        let mut walked = 0u64;
        while self.index.len() >= before {
            if walked > limit {
                return Err(CacheError::Busy);
            }
            if self.horizon >= self.area_end {
                if !self.may_write(self.cursor, self.area_end) {
                    return Err(CacheError::Busy);
                }
                self.wrap()?;
            }
            walked += self.advance_horizon(Walk::Evict, 0, &mut 0)?;
        }
        self.hide_free_space(self.cursor)
    }

    /// With the horizon at the end of the area: a pad over `[c, E)`, then `c = h = A`.
    fn wrap(&mut self) -> Result<(), CacheError> {
        self.write_pads(self.cursor, self.area_end)?;
        self.cursor = FILE_HEADER_LEN;
        self.horizon = FILE_HEADER_LEN;
        self.sync.scan_from = FILE_HEADER_LEN;
        // The window ran to the end of the area: going on from its start would write
        // over what was written in it. The next checkpoint opens a new one.
        self.sync.limit = 0;
        self.sync.wrap_counter = self.sync.counter;
        Ok(())
    }

    /// Deals with the record at the horizon (see the module docs); returns how far the
    /// horizon moved. `budget`/`spent`: bytes of second chances allowed/given.
    fn advance_horizon(
        &mut self,
        walk: Walk,
        budget: u64,
        spent: &mut u64,
    ) -> Result<u64, CacheError> {
        let h = self.horizon;
        let protected = self.protected_from(h);
        if let Some((start, end)) = protected.filter(|&(start, _)| start <= h) {
            if walk == Walk::Extend || !self.may_write(self.cursor, h) {
                return Err(CacheError::Busy);
            }
            // A dead record jumped over ends up after its replacement in ring order, and
            // would win again after a crash once the replacement is overwritten. Readers
            // of a pinned record use only its payload, so its header can become a pad.
            if start == h {
                if let Some(r) = self.header_at(h).filter(|r| self.is_dead_object(h, r)) {
                    let len = u64::from(r.total_len);
                    if len <= PAD_CHUNK {
                        self.put_room(h, &self.pad(len))?;
                    }
                }
            }
            self.write_pads(self.cursor, h)?;
            self.cursor = end;
            self.horizon = end;
            return Ok(end - h);
        }
        let Some(header) = self.header_at(h) else {
            self.horizon = h + ALIGN;
            return Ok(ALIGN);
        };
        let total = u64::from(header.total_len);
        let live = self.live_at(h, &header);
        if let Some((start, _)) = protected.filter(|&(start, _)| start < h + total) {
            // A record over a protected one: only a stale header can claim that. Stop
            // at the protected record rather than trust this length.
            if let Some((hash, _)) = live {
                self.index.remove(hash);
                self.counters.evictions += 1;
            }
            self.horizon = start;
            return Ok(start - h);
        }
        let Some((hash, entry)) = live else {
            self.horizon = h + total;
            return Ok(total);
        };
        let fits = self.cursor == h || self.may_write(self.cursor, self.cursor + total);
        if walk == Walk::Reserve && entry.has(USED) && *spent + total <= budget && fits {
            *spent += total;
            self.counters.second_chances += 1;
            if self.cursor == h {
                self.index.clear_flag(hash, USED);
                self.cursor = h + total;
                self.horizon = h + total;
            } else {
                self.copy_forward(h, &header, hash, entry)?;
            }
        } else {
            self.index.remove(hash);
            self.counters.evictions += 1;
            self.horizon = h + total;
        }
        Ok(total)
    }

    /// Moves the live record at `src` (= the horizon) to the cursor, which lies before
    /// it: a pad first, the payload front to back (safe when the two overlap: each chunk
    /// is read before anything at or after it is written), the header last.
    fn copy_forward(
        &mut self,
        src: u64,
        header: &RecordHeader,
        hash: u64,
        entry: Entry,
    ) -> Result<(), CacheError> {
        let dst = self.cursor;
        let total = u64::from(header.total_len);
        let seq = self.take_seq();
        let result = self.copy_record(src, dst, header, seq);
        self.horizon = src + total;
        if let Err(e) = result {
            // The source may be partly overwritten already.
            self.index.remove(hash);
            self.counters.evictions += 1;
            return Err(e);
        }
        let mut moved = entry.moved_to(dst);
        moved.clear(USED);
        self.index.insert(hash, moved);
        self.cursor = dst + total;
        self.counters.copied_bytes += total;
        Ok(())
    }

    fn copy_record(
        &mut self,
        src: u64,
        dst: u64,
        header: &RecordHeader,
        seq: u64,
    ) -> Result<(), CacheError> {
        let total = u64::from(header.total_len);
        self.reserve(dst, dst + total)?;
        self.claim(dst, total)?;
        let payload = header.payload_len();
        let mut done = 0;
        while done < payload {
            let n = (payload - done).min(COPY_CHUNK);
            let mut chunk = std::mem::take(&mut self.buf);
            chunk.clear();
            chunk.extend_from_slice(
                self.bytes(src + RECORD_HEADER_LEN + done..src + RECORD_HEADER_LEN + done + n),
            );
            let written = self.put(dst + RECORD_HEADER_LEN + done, &chunk);
            self.buf = chunk;
            written?;
            done += n;
        }
        let moved = RecordHeader { seq, ..*header };
        self.put(dst, &encode_record_header(&moved, self.file_id()))
    }

    /// The first pinned record or fill that ends after `h`, as (start, end).
    pub(super) fn protected_from(&self, h: u64) -> Option<(u64, u64)> {
        let pin = first_region(&self.pins, h, |&(end, _)| end);
        let fill = first_region(&self.fills, h, |&(end, _)| end);
        match (pin, fill) {
            (Some(p), Some(f)) => Some(p.min(f)),
            (p, f) => p.or(f),
        }
    }

    /// Takes `[start, start + len)` of the free space for a record about to be written:
    /// afterwards a pad covers exactly the claim and another the free space after it.
    ///
    /// The order is what keeps recovery exact. Free space holds evicted records whose
    /// headers are still valid, some with pads (or other bytes) already written inside
    /// them while they were hidden. A header the recovery walk can reach must never have
    /// a damaged payload, so no write may shrink what a pad hides before the rest is
    /// hidden again: first one pad over all the free space from `start`, then the pad
    /// after the claim (inside what is now hidden), and only then the claim's own pad.
    pub(super) fn claim(&mut self, start: u64, len: u64) -> Result<(), CacheError> {
        self.hide_free_space(start)?;
        self.hide_free_space(start + len)?;
        self.put(start, &self.pad(len))
    }

    /// Pads over `[from, horizon)` so records evicted there stay hidden after a crash;
    /// in a first lap over more than `PAD_CHUNK`, only up to the next chunk boundary,
    /// where the pads written at creation take over.
    pub(super) fn hide_free_space(&mut self, from: u64) -> Result<(), CacheError> {
        // Outside the window nothing is written; what lies there stays as it was, which
        // recovery expects (see "Durability").
        if !self.may_write(from, from + RECORD_HEADER_LEN) {
            return Ok(());
        }
        let chunk = (from - FILE_HEADER_LEN) / PAD_CHUNK + 1;
        let boundary = FILE_HEADER_LEN.saturating_add(chunk.saturating_mul(PAD_CHUNK));
        self.write_pads(from, self.horizon.min(boundary))
    }

    /// Covers `[from, to)` with pads of at most `PAD_CHUNK` bytes each.
    pub(super) fn write_pads(&mut self, from: u64, to: u64) -> Result<(), CacheError> {
        self.pads(from, to, Store::put)
    }

    /// Covers `[from, to)` with pads of at most `PAD_CHUNK` bytes each, written by `put`.
    pub(super) fn pads(
        &mut self,
        mut from: u64,
        to: u64,
        put: fn(&mut Store, u64, &[u8]) -> Result<(), CacheError>,
    ) -> Result<(), CacheError> {
        while from < to {
            let len = (to - from).min(PAD_CHUNK);
            let pad = self.pad(len);
            put(self, from, &pad)?;
            from += len;
        }
        Ok(())
    }

    /// A sealed pad header of `len` bytes (callers keep `len ≤ PAD_CHUNK`).
    pub(super) fn pad(&self, len: u64) -> [u8; 64] {
        // PAD_CHUNK = 2^31 fits a u32
        let pad = RecordHeader::pad(len.min(PAD_CHUNK) as u32);
        encode_record_header(&pad, self.file_id())
    }

    /// A positional write inside the window (see "Durability"; a write outside it is
    /// refused as `Busy` and writes nothing); an error pauses storing.
    pub(super) fn put(&mut self, off: u64, bytes: &[u8]) -> Result<(), CacheError> {
        if !self.may_write(off, off + bytes.len() as u64) {
            return Err(CacheError::Busy);
        }
        self.put_room(off, bytes)
    }

    /// A positional write that may lie outside the window: into the room of a fill
    /// (its body, its pad or its header), or a pad over a dead record's header.
    pub(super) fn put_room(&mut self, off: u64, bytes: &[u8]) -> Result<(), CacheError> {
        self.sync.dirty = true;
        let result = self.file.write_at(off, bytes);
        result.map_err(|e| self.write_failed(e))
    }

    /// Allocates the disk blocks of `[start, end)` and of the pad header that the claim
    /// writes after it; a full disk or an I/O error pauses storing. Where the blocks
    /// are not known to be there (the ring's first lap over a sparse file), up to
    /// [`RESERVE_AHEAD`] of the free space is reserved at once, so small objects do not
    /// each make a system call; if that much cannot be had, just the claim is asked for.
    pub(super) fn reserve(&mut self, start: u64, end: u64) -> Result<(), CacheError> {
        let end = (end + ALIGN).min(self.horizon).max(end);
        if self.file.is_known(start, end) {
            return Ok(());
        }
        let ahead = start.saturating_add(RESERVE_AHEAD).min(self.horizon);
        if ahead > end && self.file.reserve(start, ahead - start).is_ok() {
            return Ok(());
        }
        let result = self.file.reserve(start, end - start);
        result.map_err(|e| self.write_failed(e))
    }

    /// Counts a failed write or reservation and pauses storing.
    pub(super) fn write_failed(&mut self, e: std::io::Error) -> CacheError {
        self.counters.write_errors += 1;
        self.disabled_until = self.clock.saturating_add(BACKOFF_SECS);
        CacheError::Io(self.file.path().to_path_buf(), e)
    }
}

/// The first region of `map` (start → value with an end) that ends after `h`. Regions
/// do not overlap, so it is the last one starting at or before `h` if it reaches past
/// `h`, else the first one starting after it.
fn first_region<V>(
    map: &BTreeMap<u64, V>,
    h: u64,
    end_of: impl Fn(&V) -> u64,
) -> Option<(u64, u64)> {
    if let Some((&start, v)) = map.range(..=h).next_back() {
        if end_of(v) > h {
            return Some((start, end_of(v)));
        }
    }
    map.range(h.saturating_add(1)..)
        .next()
        .map(|(&start, v)| (start, end_of(v)))
}
