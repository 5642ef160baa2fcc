//! [`Store`]: the cache file as a ring of records, with recovery, lookup, pinning,
//! streaming fills, eviction with second chance, tombstones, refresh, stats.
//!
//! # The ring
//! The data area `[A, E)` (A = 4096, E = capacity) is one circular log. The write
//! cursor `c` and the horizon `h` (c ≤ h ≤ E) delimit the free space `[c, h)`; the
//! records from `h` to `E` and then from `A` to `c` are, in this order, oldest to newest.
//! On the first lap `h = E`. Reserving `L` bytes:
//! 1. if `c + L > E`, the horizon is walked to `E`, a pad covers `[c, E)`, and
//!    `c = h = A` (wrap);
//! 2. while `h < c + L`, the record at `h` is looked at: bytes that are not a valid header
//!    are skipped by [`ALIGN`]; a dead record (replaced, a pad, a tombstone) is skipped; a
//!    pinned record or an unfinished fill is jumped over — a pad covers `[c, h)` and
//!    `c = h =` its end (a pinned record that is dead gets a pad header in place of its
//!    own, since it now lies after its replacement; readers use only its payload); a
//!    live record used since it was written gets a second chance
//!    (kept where it is if `c == h`, otherwise copied forward to `c` with a new sequence
//!    number), within a copy budget of `max(4 L, 8 MiB)` per reservation; any other live
//!    record is evicted;
//! 3. the claim (see `claim`), once its disk blocks are reserved (`reserve`: a full
//!    disk fails here, before anything is written): a pad at `c` over all the free
//!    space, then one at `c + L` over the rest of it, then one at `c` over just the
//!    reservation, so evicted records there cannot reappear after a crash, even
//!    half-overwritten; `c += L`.
//!
//! The payload is written into the reservation as it arrives; the real header is
//! written last, replacing the pad, so the object appears atomically. Sequence numbers
//! are taken in reservation order, so they follow the ring (except that a record kept
//! in place, or jumped over while pinned, keeps its number).
//!
//! # Recovery
//! Open walks every header from `A`: a header counts only if its CRC passes; anything
//! else is skipped by [`ALIGN`] (never by a length it claims). Per key the highest
//! sequence number wins, a tombstone meaning absent. Where the cursor and the horizon
//! resume, and which records the scan checks itself, come from the checkpoint (see
//! "Durability"); without one (a version 1 file) the cursor resumes after the record
//! with the highest sequence number. Other payload CRCs are checked lazily, before each
//! recovered object is first returned.
//!
//! # Durability
//! Writes reach the disk when the kernel flushes them, in any order, page by page, so a
//! power cut (unlike `kill -9`, which loses no completed write) may keep any subset of
//! the writes since the last sync. The store therefore syncs at **checkpoints** and
//! keeps every write between two checkpoints where recovery can judge it:
//! - A checkpoint records the cursor `c`, a **limit** `L` (the first record boundary at
//!   or after `max(h, c + W)`, where `W` is the window length, an eighth of the area
//!   from 256 KiB to 64 MiB), the next sequence number and the lowest sequence number
//!   of an unfinished fill. [`Store::begin_sync`] takes it; its [`SyncJob`] runs
//!   `fdatasync`, writes it to a slot of the header page, and syncs again (on any thread);
//!   [`Store::end_sync`] makes it the durable one.
//! - Until the next checkpoint is durable, every write lies in the **window** `[c, L)`,
//!   and in the previous window too (`[floor, limit)`): a claim that does not fit waits
//!   for a checkpoint (in place, or `Busy` with [`Store::set_background_sync`]). The only
//!   writes elsewhere are into the room of a fill begun earlier, and pads over the
//!   header of a record that is dead. Wrapping ends a window.
//! - Recovery with a checkpoint: before `c` and from `L` on, the file is as it was at
//!   the checkpoint (or a dead record's header became a pad), so it is trusted; inside
//!   the window, a record counts only if it is numbered after the checkpoint and its
//!   payload CRC passes (checked by the scan); nothing else there counts, and a pad is
//!   followed no further than the window's end (what it covers is dead, or was written
//!   after the checkpoint and is lost with it). Outside it, an object
//!   numbered from the checkpoint's lowest unfinished fill on is checked by the scan too
//!   (its body may have been written after the checkpoint). The cursor resumes after the
//!   last record trusted in the window, the horizon at `L`; then the open pads
//!   over what the window held besides those records, and over damaged and superseded
//!   objects, before the next checkpoint trusts that part of the file.
//! - A record replaced by a newer one of its key (or by a tombstone) gets a pad in place
//!   of its header at once, so an older version cannot win again wherever the ring puts
//!   the two (a pinned record jumped over ends up after its replacement; a window sets
//!   aside what it held). A fill that spans a checkpoint keeps all of its room when it
//!   commits (a shorter header would uncover the rest outside the window).
//!
//! A power cut therefore loses what was stored since the last checkpoint (and the
//! oldest objects the window held, next in line for eviction), never serves a
//! damaged byte, and never brings back an object invalidated, purged or replaced before
//! it. [`Store::sync_for_close`] ends a clean shutdown with a window that is just the
//! free space, so nothing is lost or checked at the next start. A version 1 file (no
//! checkpoints) is recovered as before and becomes version 2 at its first checkpoint.
//!
//! # Reading beside a running larder
//! [`Store::open_read_only`] opens without the lock and never writes. The file may then
//! change under the map at any moment: a record may be committed, or overwritten by the
//! ring, while it is read. Such a store hands out no ranges of the map
//! ([`Store::lookup`] finds nothing): [`Store::read_object`] and
//! [`Store::checked_objects`] copy a record out and check its header CRC, its key and
//! its payload CRC on the copy, so a record being written or overwritten is skipped,
//! never shown torn. [`Store::check`] tells damage from records rewritten while they
//! were checked by scanning the file again.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use super::file::{CacheFile, OpenMode, SyncJob, FILE_NAME, PAD_CHUNK};
use super::format::{
    self, decode_record_header, encode_record_header, record_len, Checkpoint, Kind, RecordHeader,
    ALIGN, FILE_HEADER_LEN, MAX_HEAD_LEN, RECORD_HEADER_LEN,
};
use super::index::{Entry, Index, TOMBSTONE, USED, VERIFIED};
use super::CacheError;

mod durability;
mod fill;
mod inspect;
mod ring;
mod scan;

use durability::{Repair, SyncState};
use ring::Walk;

/// First reservation for a body of unknown length, and the step it grows by.
const UNKNOWN_LEN_STEP: u64 = 1 << 20;
/// Least a reservation may copy forward before it evicts instead.
const MIN_COPY_BUDGET: u64 = 8 << 20;
/// Free space reserved on the disk at once ahead of the cursor, where it is not yet.
const RESERVE_AHEAD: u64 = 4 << 20;
/// How long storing pauses after a write error.
const BACKOFF_SECS: u64 = 30;
/// Bytes copied per read/write when moving a record or a body.
const COPY_CHUNK: u64 = 256 * 1024;

/// How a store is sized. Only `capacity` is fixed at creation; the others apply to every
/// open.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Options {
    /// Bytes of a new cache file (rounded down to [`ALIGN`]); an existing file keeps its
    /// own, and 0 here means "no preference" (no mismatch is reported).
    pub capacity: u64,
    /// Largest body stored. A record is also never more than a quarter of the data area.
    pub max_object: u64,
    /// Largest number of objects indexed (at least 1).
    pub max_entries: usize,
}

impl Options {
    /// The defaults for a cache of `capacity` bytes: bodies up to an eighth of it, one
    /// index entry per 2 KiB but at least 1024.
    pub fn for_capacity(capacity: u64) -> Options {
        Options {
            capacity,
            max_object: capacity / 8,
            max_entries: usize::try_from(capacity / 2048)
                .unwrap_or(usize::MAX)
                .max(1024),
        }
    }
}

/// The times stored with an object (unix seconds).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Meta {
    /// When the request was sent upstream.
    pub requested: u64,
    /// When the response arrived.
    pub stored: u64,
    /// When the object turns stale; 0 = unknown.
    pub expires: u64,
}

/// A stored object: where its record and its bytes are (file offsets, for
/// [`Store::bytes`]). Valid while the record is not overwritten: pin it to keep it so.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ObjectRef {
    /// The record's offset.
    pub off: u64,
    /// The record's sequence number (unique within the file).
    pub seq: u64,
    /// The stored response head.
    pub head: Range<u64>,
    /// The body.
    pub body: Range<u64>,
    /// The times stored with the object.
    pub meta: Meta,
    /// Where the record ends (it may hold more than its payload: a fill finished after
    /// a checkpoint keeps all of its room).
    pub end: u64,
}

/// A reservation being written by [`Store::write`]. End it with [`Store::commit`] or
/// [`Store::abort`]: a dropped fill keeps its room reserved until the store is reopened.
#[must_use = "a fill must be committed or aborted"]
pub struct Fill {
    start: u64,
    /// Bytes reserved from `start` (the record header included).
    reserved: u64,
    seq: u64,
    hash: u64,
    key_len: u16,
    head_len: u32,
    body_len: Option<u64>,
    written: u64,
    crc: crc32fast::Hasher,
    meta: Meta,
    /// A write failed: the fill can only be aborted.
    failed: bool,
}

impl Fill {
    /// The file offset of the body's first byte: bytes written so far are at
    /// `body_start()..body_start() + written()`, readable through [`Store::bytes`] while
    /// the fill is open (the store never hands its room to anyone else), and the
    /// committed object's body starts there too.
    pub fn body_start(&self) -> u64 {
        self.start + RECORD_HEADER_LEN + u64::from(self.key_len) + u64::from(self.head_len)
    }

    /// Body bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The body's length, when it was known at [`Store::begin`].
    pub fn body_len(&self) -> Option<u64> {
        self.body_len
    }
}

impl fmt::Debug for Fill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fill")
            .field("start", &self.start)
            .field("reserved", &self.reserved)
            .field("seq", &self.seq)
            .field("body_len", &self.body_len)
            .field("written", &self.written)
            .field("failed", &self.failed)
            .finish()
    }
}

/// A snapshot of the store, for `larder-cache stats` and the status page.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    /// Objects in the index.
    pub objects: u64,
    /// Live bytes: the bytes the records of the indexed objects take in the file (record
    /// header, key, head, body and padding to 64 bytes; see [`Summary::live_bytes`]).
    pub live_bytes: u64,
    /// Bytes of the data area that are neither live nor free (replaced, evicted but not
    /// yet reached, pads, tombstones, fills in progress).
    pub dead_bytes: u64,
    /// Bytes between the cursor and the horizon.
    pub free_bytes: u64,
    /// The file's length.
    pub capacity: u64,
    /// The write cursor (a file offset).
    pub cursor: u64,
    /// The horizon (a file offset).
    pub horizon: u64,
    /// Smallest stored time among the objects (unix seconds; `None` when empty).
    pub oldest: Option<u64>,
    /// Largest stored time among the objects (unix seconds; `None` when empty).
    pub newest: Option<u64>,
    /// Records pinned.
    pub pinned: u64,
    /// Fills in progress.
    pub filling: u64,
    /// Since open: objects evicted.
    pub evictions: u64,
    /// Since open: second chances given (objects kept in place or copied forward).
    pub second_chances: u64,
    /// Since open: bytes copied forward.
    pub copied_bytes: u64,
    /// Since open: objects dropped for a bad payload CRC.
    pub dropped_corrupt: u64,
    /// Since open: write errors.
    pub write_errors: u64,
    /// Since open: bytes written.
    pub bytes_written: u64,
    /// Heap bytes of the index table (an estimate from its capacity).
    pub index_bytes: u64,
    /// Storing is paused until this time (unix seconds) after a write error; 0 if never.
    pub disabled_until: u64,
}

/// The store's figures that cost nothing to read ([`Store::summary`]): kept as the
/// store changes, so a status page may ask on every request.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Summary {
    /// Objects in the index.
    pub objects: u64,
    /// The bytes the records of those objects take in the file: record header, key,
    /// head, body and padding to 64 bytes. The same figure as [`Stats::live_bytes`],
    /// `larder-cache stats` ("live") and what `larder-cache compact` reports as kept
    /// when it keeps everything.
    pub live_bytes: u64,
    /// Bytes of the data area that are neither live nor free (see [`Stats::dead_bytes`]).
    pub dead_bytes: u64,
    /// Bytes between the write cursor and the horizon: room taken without evicting.
    pub free_bytes: u64,
    /// The file's length.
    pub capacity: u64,
    /// Since open: objects evicted by the ring.
    pub evictions: u64,
    /// Since open: failed writes and block reservations of the cache file (a full disk,
    /// an I/O error); each pauses storing.
    pub write_errors: u64,
    /// 0 when storing is not paused; otherwise the unix second it resumes. Compare it
    /// with the time ([`Store::paused`] does): the store has no clock of its own and
    /// learns the time only from the calls that store.
    pub paused_until: u64,
    /// Since open: objects dropped because their payload failed its CRC.
    pub dropped_corrupt: u64,
    /// When the latest durable checkpoint was taken (the store's clock, unix seconds):
    /// what was stored before it survives a power cut. 0 before the first.
    pub synced_at: u64,
}

/// A stored object copied out of the cache file and checked: its header CRC, its key
/// (it is the object the index names) and its payload CRC, all on the copy, so the
/// fields are never a mix of a record and what overwrote it. From
/// [`Store::read_object`] (with the body) and [`Store::checked_objects`] (without).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CheckedObject {
    /// The record's offset in the file.
    pub off: u64,
    /// The record's sequence number (unique within the file).
    pub seq: u64,
    /// The object's key: its URL, followed for a `Vary` variant by the request fields
    /// that select it.
    pub key: Vec<u8>,
    /// The stored response head.
    pub head: Vec<u8>,
    /// The body; empty when the object was listed rather than read (see `body_len`).
    pub body: Vec<u8>,
    /// The body's length, also when `body` was not read.
    pub body_len: u64,
    /// The record's length in the file.
    pub total_len: u64,
    /// The times stored with the object.
    pub meta: Meta,
}

/// What [`Store::check`] found.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct VerifyReport {
    /// Indexed objects looked at.
    pub checked: u64,
    /// Damaged objects, by offset.
    pub bad: Vec<(u64, VerifyError)>,
    /// Read-only stores only: objects that a running larder replaced, evicted or
    /// overwrote since the scan (their bytes changed while they were checked, and the
    /// file no longer holds them as they were). Not damage; they are not counted in
    /// `bad`.
    pub changed: u64,
}

/// What the start-up scan found.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ScanReport {
    /// The file did not exist and was created.
    pub created: bool,
    /// The file's capacity.
    pub capacity: u64,
    /// The capacity asked for, when it differs from the file's (the file's own wins;
    /// `larder-cache compact --capacity` changes it).
    pub requested_capacity: Option<u64>,
    /// Valid record headers of any kind.
    pub records: u64,
    /// Objects indexed.
    pub objects: u64,
    /// Tombstones found (valid ones).
    pub tombstones: u64,
    /// Records that lost to a newer one for the same key.
    pub superseded: u64,
    /// Bytes that were neither a valid record nor zero (torn writes, damage), plus
    /// tombstones whose key failed its CRC.
    pub damaged_bytes: u64,
    /// Oldest objects left out because there were more than `max_entries`.
    pub over_limit: u64,
    /// The counter of the checkpoint the scan trusted (`None`: the file had none).
    pub checkpoint: Option<u64>,
}

/// One indexed object, as [`Store::objects`] lists it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ObjectInfo<'a> {
    /// The object's key: its URL, followed for a `Vary` variant by the request fields
    /// that select it.
    pub key: &'a [u8],
    /// The record's offset in the file.
    pub off: u64,
    /// The record's sequence number (unique within the file).
    pub seq: u64,
    /// Length of the stored response head.
    pub head_len: u64,
    /// Length of the body.
    pub body_len: u64,
    /// The record's length on disk.
    pub total_len: u64,
    /// The times stored with the object.
    pub meta: Meta,
    /// Its payload CRC was checked in this process.
    pub verified: bool,
}

/// What is wrong with a record, as [`Store::verify`] reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VerifyError {
    /// The indexed record's header no longer decodes.
    Header,
    /// The payload does not match its CRC.
    Payload {
        /// The CRC the record header holds.
        stored: u32,
        /// The CRC of the payload as read.
        computed: u32,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Header => write!(f, "record header damaged"),
            VerifyError::Payload { stored, computed } => write!(
                f,
                "payload CRC mismatch (stored {stored:08x}, computed {computed:08x})"
            ),
        }
    }
}

/// Counters since open (see [`Stats`]).
#[derive(Default)]
struct Counters {
    evictions: u64,
    second_chances: u64,
    copied_bytes: u64,
    dropped_corrupt: u64,
    write_errors: u64,
}

/// An open cache file. See the module docs for the ring and the recovery rules.
///
/// Calls never block on anything but the page cache. Methods that write return
/// [`CacheError::Io`] on a write error, after which storing pauses for 30 s
/// ([`CacheError::Disabled`]); lookups keep working.
pub struct Store {
    file: CacheFile,
    index: Index,
    /// The end of the data area (= the capacity); it starts at `FILE_HEADER_LEN`.
    area_end: u64,
    cursor: u64,
    horizon: u64,
    next_seq: u64,
    /// Pinned records: offset → (end, pin count).
    pins: BTreeMap<u64, (u64, u32)>,
    /// Unfinished fills: start → (end of their room, sequence number).
    fills: BTreeMap<u64, (u64, u64)>,
    opts: Options,
    /// Largest record: a quarter of the area, at most one pad chunk.
    max_record: u64,
    /// The latest time seen (open's `now`, `meta.stored` of fills): the back-off clock.
    clock: u64,
    disabled_until: u64,
    report: ScanReport,
    counters: Counters,
    sync: SyncState,
    /// What the scan left to make safe before the next checkpoint.
    repair: Option<Repair>,
    /// Scratch for assembling and copying bytes.
    buf: Vec<u8>,
}

impl Store {
    /// Opens `dir/larder.cache`, creating it at `opts.capacity` if it is absent; takes
    /// the exclusive lock ([`CacheError::Locked`] when another process holds it); maps
    /// it; scans it. An existing file keeps its own capacity (a mismatch is in the
    /// [`ScanReport`]). Writes to an existing file only after a crash, to pad over what the scan
    /// did not trust (see "Durability"); a cleanly closed one is not written.
    pub fn open(dir: &Path, opts: Options, now: u64) -> Result<Store, CacheError> {
        Store::open_file(&dir.join(FILE_NAME), opts, now)
    }

    /// [`Store::open`] with an explicit file path.
    pub fn open_file(path: &Path, opts: Options, now: u64) -> Result<Store, CacheError> {
        Store::open_mode(path, opts, now, OpenMode::Create)
    }

    /// [`Store::open_file`] that never creates: a missing file is
    /// [`CacheError::Missing`] (the tool's `purge` and `compact` use this).
    pub fn open_existing(path: &Path, opts: Options, now: u64) -> Result<Store, CacheError> {
        Store::open_mode(path, opts, now, OpenMode::Existing)
    }

    /// Opens the cache file at `path` for reading only, without the lock, so a running
    /// larder may hold it meanwhile (the tool's `stats`, `ls`, `get` and `verify` use
    /// this). Never creates (a missing file is [`CacheError::Missing`]) and never writes
    /// a byte: the file is opened read-only, and every call that would store, purge or
    /// refresh is [`CacheError::ReadOnly`].
    ///
    /// The scan is a snapshot of a file that may be changing. Records are read with
    /// [`Store::read_object`] and [`Store::checked_objects`], which check each one on a
    /// copy; [`Store::lookup`] finds nothing here.
    pub fn open_read_only(path: &Path, opts: Options, now: u64) -> Result<Store, CacheError> {
        Store::open_mode(path, opts, now, OpenMode::ReadOnly)
    }

    /// Opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.file.is_read_only()
    }

    fn open_mode(
        path: &Path,
        opts: Options,
        now: u64,
        mode: OpenMode,
    ) -> Result<Store, CacheError> {
        let (file, created) = CacheFile::open(path, mode, opts.capacity, now)?;
        let capacity = file.header().capacity;
        let area_len = capacity - FILE_HEADER_LEN;
        let wanted = opts.capacity / ALIGN * ALIGN;
        let mut store = Store {
            file,
            index: Index::new(),
            area_end: capacity,
            cursor: FILE_HEADER_LEN,
            horizon: capacity,
            next_seq: 1,
            pins: BTreeMap::new(),
            fills: BTreeMap::new(),
            sync: SyncState::default(),
            repair: None,
            opts: Options {
                max_entries: opts.max_entries.max(1),
                ..opts
            },
            max_record: (area_len / 4 / ALIGN * ALIGN).min(PAD_CHUNK),
            clock: now,
            disabled_until: 0,
            report: ScanReport {
                created,
                capacity,
                requested_capacity: (wanted != 0 && wanted != capacity).then_some(opts.capacity),
                ..ScanReport::default()
            },
            counters: Counters::default(),
            buf: Vec::new(),
        };
        store.scan();
        // Nothing is written before the first checkpoint gives a window.
        store.sync.floor = store.cursor;
        if mode != OpenMode::ReadOnly {
            store.repair()?;
        }
        Ok(store)
    }

    /// Finds `key`. The key bytes are compared with the record's; a recovered record's
    /// payload CRC is checked the first time (a bad one is dropped from the index and
    /// counted in [`Stats::dropped_corrupt`]). Marks the object used (second chance).
    ///
    /// A read-only store finds nothing: the ranges it would return may be overwritten
    /// at any moment by the larder that writes the file. Use [`Store::read_object`].
    pub fn lookup(&mut self, key: &[u8]) -> Option<ObjectRef> {
        let hash = self.index.hash(key);
        self.lookup_hashed(key, hash)
    }

    /// The index's hash of `key`: keyed at random per process, so callers may also
    /// use it to remember keys in tables of their own.
    pub fn key_hash(&self, key: &[u8]) -> u64 {
        self.index.hash(key)
    }

    /// Whether the index may hold `key`, given its [`Store::key_hash`]: false means
    /// a [`Store::lookup`] would find nothing (true may still find nothing).
    pub fn may_hold(&self, hash: u64) -> bool {
        self.index.get(hash).is_some()
    }

    /// [`Store::lookup`] with the key's [`Store::key_hash`] already at hand.
    pub fn lookup_hashed(&mut self, key: &[u8], hash: u64) -> Option<ObjectRef> {
        if self.is_read_only() {
            return None;
        }
        let entry = self.index.get(hash)?;
        let off = entry.off();
        let Some(h) = self.header_at(off).filter(|h| h.kind == Kind::Object) else {
            self.drop_corrupt(hash);
            return None;
        };
        if self.key_at(off, &h)? != key {
            return None;
        }
        if !entry.has(VERIFIED) && !self.payload_ok(off, &h) {
            self.drop_corrupt(hash);
            return None;
        }
        // A second look into the table, only when a flag is not set yet: an object
        // asked for often has both (USED is cleared only when the ring comes by).
        if !(entry.has(USED) && entry.has(VERIFIED)) {
            self.index.set_flag(hash, USED | VERIFIED);
        }
        Some(object_ref(off, &h))
    }

    /// The file's bytes in `range` (from an [`ObjectRef`]); empty if the range is not
    /// within the file. The bytes stay valid while the record is pinned.
    pub fn bytes(&self, range: Range<u64>) -> &[u8] {
        range
            .end
            .checked_sub(range.start)
            .and_then(|len| self.file.get(range.start, len))
            .unwrap_or(&[])
    }

    /// Drops the map's page-table entries (the pages stay in the kernel's page cache):
    /// pages read through the map count in the process's RSS until then. Slices from
    /// [`Store::bytes`] stay valid; reading them again refaults the same bytes.
    pub fn release_pages(&self) {
        self.file.release_pages();
    }

    /// Keeps `obj`'s record from being overwritten (even if it is replaced or
    /// invalidated meanwhile) until a matching [`Store::unpin`]. Pins nest.
    pub fn pin(&mut self, obj: &ObjectRef) {
        let Some(body_end) = format::align_up(obj.body.end) else {
            return;
        };
        // The whole record, so the ring jumps all of it.
        let end = obj.end.max(body_end);
        if obj.off < FILE_HEADER_LEN || end > self.area_end || end <= obj.off {
            return;
        }
        let pin = self.pins.entry(obj.off).or_insert((end, 0));
        pin.0 = pin.0.max(end);
        pin.1 = pin.1.saturating_add(1);
    }

    /// Undoes one [`Store::pin`] of `obj`; does nothing if it is not pinned.
    pub fn unpin(&mut self, obj: &ObjectRef) {
        if let Some(pin) = self.pins.get_mut(&obj.off) {
            pin.1 -= 1;
            if pin.1 == 0 {
                self.pins.remove(&obj.off);
            }
        }
    }

    /// Whether storing is paused at `now` (unix seconds) after a write error.
    pub fn paused(&self, now: u64) -> bool {
        self.pause_left(now) > 0
    }

    /// Seconds from `now` until storing resumes after a write error; 0 when it is not
    /// paused.
    pub fn pause_left(&self, now: u64) -> u64 {
        self.disabled_until.saturating_sub(now.max(self.clock))
    }

    fn check_writable(&self) -> Result<(), CacheError> {
        if self.is_read_only() {
            Err(CacheError::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn check_enabled(&self) -> Result<(), CacheError> {
        if self.clock < self.disabled_until {
            Err(CacheError::Disabled)
        } else {
            Ok(())
        }
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        seq
    }

    fn file_id(&self) -> u64 {
        self.file.header().file_id
    }

    fn owns(&self, fill: &Fill) -> bool {
        self.fills.get(&fill.start).map(|&(end, _)| end) == Some(fill.start + fill.reserved)
    }

    /// The valid record header at file offset `off`, if any.
    fn header_at(&self, off: u64) -> Option<RecordHeader> {
        if off < FILE_HEADER_LEN {
            return None;
        }
        let room = self.area_end.checked_sub(off)?;
        // Decoded from a copy, so the CRC and the fields come from the same bytes even
        // while a writer changes them (read-only stores).
        let mut copy = [0u8; 64];
        copy.copy_from_slice(self.file.get(off, RECORD_HEADER_LEN)?);
        decode_record_header(&copy, self.file_id(), room)
    }

    fn key_at(&self, off: u64, h: &RecordHeader) -> Option<&[u8]> {
        self.file.get(off + RECORD_HEADER_LEN, u64::from(h.key_len))
    }

    /// The key hash and entry if the record at `off` is its key's live object.
    fn live_at(&self, off: u64, h: &RecordHeader) -> Option<(u64, Entry)> {
        if h.kind != Kind::Object {
            return None;
        }
        let hash = self.index.hash(self.key_at(off, h)?);
        let entry = self.index.get(hash)?;
        (entry.off() == off).then_some((hash, entry))
    }

    /// The record at `off` is an object but not its key's live one.
    fn is_dead_object(&self, off: u64, h: &RecordHeader) -> bool {
        h.kind == Kind::Object && self.live_at(off, h).is_none()
    }

    fn payload_ok(&self, off: u64, h: &RecordHeader) -> bool {
        self.file
            .get(off + RECORD_HEADER_LEN, h.payload_len())
            .is_some_and(|p| crc32fast::hash(p) == h.payload_crc)
    }

    fn drop_corrupt(&mut self, hash: u64) {
        self.index.remove(hash);
        self.counters.dropped_corrupt += 1;
    }
}

fn object_ref(off: u64, h: &RecordHeader) -> ObjectRef {
    let head_start = off + RECORD_HEADER_LEN + u64::from(h.key_len);
    let body_start = head_start + u64::from(h.head_len);
    ObjectRef {
        off,
        seq: h.seq,
        head: head_start..body_start,
        body: body_start..body_start + h.body_len,
        meta: meta_of(h),
        end: off + u64::from(h.total_len),
    }
}

fn meta_of(h: &RecordHeader) -> Meta {
    Meta {
        requested: h.requested,
        stored: h.stored,
        expires: h.expires,
    }
}

/// `len` bytes of `area` at `at`, if they are all there.
fn slice(area: &[u8], at: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(at).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    area.get(start..end)
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod power_cut;
