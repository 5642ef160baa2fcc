//! Checkpoints and their windows: where writes may go until the next checkpoint,
//! taking and finishing checkpoints, and the repair of what a crash left behind (see
//! "Durability" in the module docs).

use super::*;

/// Where writes may go until the next checkpoint, and what the latest ones recorded
/// (see "Durability" in the module docs).
#[derive(Default)]
pub(super) struct SyncState {
    /// The cursor when the latest checkpoint was taken: nothing is written before it
    /// (but into the room of a fill begun earlier).
    pub(super) floor: u64,
    /// The limit of the latest durable checkpoint: nothing is written at or after it
    /// (but over a dead record's header). 0 until the first checkpoint.
    pub(super) limit: u64,
    /// The counter of the latest checkpoint taken, and of the latest made durable.
    pub(super) counter: u64,
    pub(super) durable: u64,
    /// The next sequence number when the latest checkpoint was taken: a fill with a
    /// lower one spans it.
    pub(super) capture_seq: u64,
    /// Written since the latest checkpoint was taken.
    pub(super) dirty: bool,
    /// When the latest checkpoint was taken (the store's clock).
    taken_at: u64,
    /// Room the window could not give since then: the next window is at least this.
    pub(super) want: u64,
    /// `taken_at` of the latest checkpoint made durable.
    pub(super) synced_at: u64,
    /// Checkpoints are taken off the caller's thread (larder's loop): a full window
    /// is `Busy` rather than a checkpoint taken in place.
    pub(super) background: bool,
    /// The counter of the latest checkpoint taken before the cursor last wrapped: its
    /// window (and any older one) ended there, so none of them opens one again.
    pub(super) wrap_counter: u64,
    /// A record boundary at or after the horizon in this lap, where the next window's
    /// limit is looked for from (so each lap's records are walked once).
    pub(super) scan_from: u64,
}

/// What recovery leaves to [`Store::repair`]: the old window's start, the records it
/// trusted there, and the records to put a pad over (damaged, or superseded), each as
/// (offset, end) and (offset, length).
pub(super) struct Repair {
    pub(super) window_start: u64,
    pub(super) kept: Vec<(u64, u64)>,
    pub(super) dead: Vec<(u64, u64)>,
}

impl Store {
    /// After a crash, makes what the scan did not trust harmless before the next
    /// checkpoint trusts it: the gaps between the records kept in the old window get
    /// pads (what lies in them, stale or torn records, stays hidden once the window
    /// moves on), and a damaged record, or an object a newer record of its key
    /// supersedes (its pad was lost), gets a pad in place of its header, so it cannot
    /// win once the newer one is gone. The next checkpoint syncs these writes before it
    /// moves the window.
    pub(super) fn repair(&mut self) -> Result<(), CacheError> {
        let Some(Repair {
            window_start,
            kept,
            dead,
        }) = self.repair.take()
        else {
            return Ok(());
        };
        let mut at = window_start;
        for (off, end) in kept {
            if off > at {
                self.write_gap_pads(at, off)?;
            }
            at = at.max(end);
        }
        if self.cursor > at {
            self.write_gap_pads(at, self.cursor)?;
        }
        for (off, len) in dead {
            let still = self
                .header_at(off)
                .is_some_and(|h| h.kind == Kind::Object && u64::from(h.total_len) == len);
            if still && len <= PAD_CHUNK {
                self.put_room(off, &self.pad(len))?;
            }
        }
        Ok(())
    }

    /// Pads over `[from, to)` written outside the window (see [`Store::repair`]).
    fn write_gap_pads(&mut self, from: u64, to: u64) -> Result<(), CacheError> {
        self.pads(from, to, Store::put_room)
    }

    /// Once a newer record of a key is written, puts a pad in place of the header of
    /// the record it replaced (at `off`, if it still is one of the key's objects), so
    /// that an older version can never win again, wherever the ring has put the two:
    /// a replaced record that a jump left behind its replacement, or one that a window
    /// keeps while recovery sets its replacement aside (see "Durability"). Readers of a
    /// pinned record use only its payload. A failure is only counted: the tombstone or
    /// the newer record still wins as long as it is there.
    pub(super) fn kill(&mut self, off: Option<u64>, hash: u64) {
        let Some(off) = off else {
            return;
        };
        let Some(h) = self.header_at(off).filter(|h| h.kind == Kind::Object) else {
            return;
        };
        let same_key = self.key_at(off, &h).map(|k| self.index.hash(k)) == Some(hash);
        let live = self.index.get(hash).is_some_and(|e| e.off() == off);
        let len = u64::from(h.total_len);
        if same_key && !live && len <= PAD_CHUNK {
            let _ = self.put_room(off, &self.pad(len));
        }
    }

    /// Flushes written records to the disk, so that what was stored or invalidated so
    /// far survives a power cut (a purge calls it before it answers). Blocks.
    pub fn sync(&mut self) -> Result<(), CacheError> {
        self.file.sync()
    }

    /// Takes checkpoints off this thread from now on: when a write needs more room than
    /// the window has, it fails `Busy` (nothing stored) instead of taking a checkpoint in
    /// place, and [`Store::sync_due`] says one is wanted. Tombstones still take one in
    /// place when they must.
    pub fn set_background_sync(&mut self, background: bool) {
        self.sync.background = background;
    }

    /// Whether storing waits for a checkpoint now: a write found the window full, or
    /// there is no window (just opened, or the cursor wrapped). Two field reads, for a
    /// caller that otherwise looks only now and then.
    pub fn sync_wanted(&self) -> bool {
        !self.is_read_only() && (self.sync.want > 0 || self.sync.limit == 0)
    }

    /// Whether a checkpoint should be taken at `now` (unix seconds) when they are due
    /// every `every` seconds: something was written since the last one and it is
    /// `every` seconds old, or half the window is used, or a write found it full.
    pub fn sync_due(&self, now: u64, every: u64) -> bool {
        if self.is_read_only() {
            return false;
        }
        if self.sync.limit == 0 {
            // No window yet (just opened, or the cursor wrapped): nothing can be stored.
            return true;
        }
        if !self.sync.dirty && self.sync.want == 0 {
            return false;
        }
        let left = if self.cursor >= self.sync.floor {
            self.sync.limit.saturating_sub(self.cursor)
        } else {
            0
        };
        self.sync.want > 0
            || now >= self.sync.taken_at.saturating_add(every)
            || left < self.window_len() / 2
    }

    /// Takes a checkpoint: records where the cursor is and where the writes after it
    /// may go (the window), and returns the job that makes it durable — run it
    /// ([`SyncJob::run`], on any thread) and hand its result to [`Store::end_sync`].
    /// Until then, writes stay inside both the previous window and the new one.
    pub fn begin_sync(&mut self, now: u64) -> Result<SyncJob, CacheError> {
        let room = self.window_len().max(self.sync.want.saturating_add(ALIGN));
        let target = self.cursor.saturating_add(room).max(self.horizon);
        self.begin_sync_to(now, target)
    }

    /// [`Store::begin_sync`] with a window that ends at the first record boundary at or
    /// after `target` (at least the horizon).
    fn begin_sync_to(&mut self, now: u64, target: u64) -> Result<SyncJob, CacheError> {
        self.check_writable()?;
        let limit = self.boundary_at_or_after(target.max(self.horizon));
        let checkpoint = Checkpoint {
            counter: self.sync.counter + 1,
            cursor: self.cursor,
            limit,
            next_seq: self.next_seq,
            open_seq: self
                .fills
                .values()
                .map(|&(_, seq)| seq)
                .min()
                .unwrap_or(self.next_seq),
        };
        let job = self.file.sync_job(checkpoint)?;
        self.sync.counter = checkpoint.counter;
        self.sync.floor = self.cursor;
        self.sync.capture_seq = self.next_seq;
        self.sync.dirty = false;
        self.sync.want = 0;
        self.sync.taken_at = self.clock.max(now);
        Ok(job)
    }

    /// Finishes the checkpoint `checkpoint` whose job returned `result`: once durable,
    /// its window is where writes may go. A failed job pauses storing like any write
    /// error, and the next checkpoint is due at once.
    pub fn end_sync(
        &mut self,
        checkpoint: Checkpoint,
        result: std::io::Result<()>,
    ) -> Result<(), CacheError> {
        match result {
            Ok(()) => {
                // The file holds a checkpoint now: a version 1 file becomes version 2,
                // before anything is written under the checkpoint's rules.
                self.file.upgrade()?;
                // A job may finish after a later checkpoint taken in place: ignore it.
                if checkpoint.counter > self.sync.durable {
                    if checkpoint.counter == self.sync.counter {
                        self.sync.synced_at = self.sync.taken_at;
                    }
                    self.sync.durable = checkpoint.counter;
                    if checkpoint.counter > self.sync.wrap_counter {
                        self.sync.limit = checkpoint.limit;
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.sync.dirty = true;
                Err(self.write_failed(e))
            }
        }
    }

    /// The last checkpoint before the store is dropped (larder's shutdown): its window
    /// is just the free space, so the next open finds every object as it is now and
    /// has nothing to check. Blocks on the disk. Writing after it is allowed (it only
    /// takes room the free space has).
    pub fn sync_for_close(&mut self) -> Result<(), CacheError> {
        let job = self.begin_sync_to(self.clock, self.horizon)?;
        let result = self.file.run_job(&job);
        self.end_sync(job.checkpoint(), result)
    }

    /// Takes a checkpoint and makes it durable here and now (blocks on the disk).
    pub fn sync_now(&mut self) -> Result<(), CacheError> {
        let job = self.begin_sync(self.clock)?;
        let result = self.file.run_job(&job);
        self.end_sync(job.checkpoint(), result)
    }

    /// `[off, end)` lies inside the window: at or after the latest checkpoint's
    /// cursor, before the durable checkpoint's limit.
    pub(super) fn may_write(&self, off: u64, end: u64) -> bool {
        off >= self.sync.floor && end <= self.sync.limit
    }

    /// How much a window holds at least: an eighth of the area, from 256 KiB up to
    /// 64 MiB, at most half the area. After a power cut, what the window held at the
    /// last checkpoint is lost (the oldest objects, next to be evicted) and what was
    /// written into it since is read whole at start-up, so it stays small; a checkpoint
    /// is due once half of it is used.
    fn window_len(&self) -> u64 {
        let area = self.area_end - FILE_HEADER_LEN;
        ((area / 8).clamp(256 << 10, 64 << 20).min(area / 2)) / ALIGN * ALIGN
    }

    /// The first record boundary at or after `target` (at most the area's end), found
    /// by walking the records from the horizon: a window must end where a record does,
    /// since recovery trusts what lies after it as it is.
    fn boundary_at_or_after(&mut self, target: u64) -> u64 {
        let from = self.sync.scan_from;
        let mut x = if from > self.horizon && from <= target {
            from
        } else {
            self.horizon
        };
        while x < target && x < self.area_end {
            if let Some((start, end)) = self.protected_from(x) {
                if start <= x {
                    x = end;
                    continue;
                }
            }
            x += match self.header_at(x) {
                Some(h) => u64::from(h.total_len),
                None => ALIGN,
            };
        }
        let x = x.min(self.area_end);
        self.sync.scan_from = x;
        x
    }
}
