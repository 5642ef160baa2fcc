//! The on-disk cache: one file, append-only, ring-shaped, memory-mapped, crash-safe.
//!
//! # Lifecycle
//! 1. [`Store::open`] creates `<dir>/larder.cache` at its capacity if it is missing
//!    (under a temporary name, then linked into place), takes the file's exclusive lock,
//!    maps it read-only once, and rebuilds the index by scanning every record header.
//! 2. Lookups read through the map; a record found by the scan has its payload CRC
//!    checked before it is first returned.
//! 3. A response is streamed in as a [`Fill`]: [`Store::begin`] reserves room at the
//!    ring's write cursor (evicting, or copying forward what was used since it was
//!    written), [`Store::write`] appends, [`Store::commit`] writes the record header last,
//!    which makes the object visible, or [`Store::abort`] leaves the room dead.
//! 4. Checkpoints ([`Store::begin_sync`], [`Store::end_sync`], or [`Store::sync_now`]
//!    in place) sync the file and record where later writes may go, so that a power cut
//!    loses only what came after the last one; larder takes one every `--cache-sync`
//!    seconds on a thread of its own. [`Store::sync_for_close`] ends a clean shutdown.
//!    Dropping the `Store` releases the lock; `kill -9` or a power cut at any instant
//!    leaves a file the next open recovers.
//!
//! [`Store::open_read_only`] opens the file beside a running larder, without the lock:
//! it never writes, and it reads every record through a checked copy (see the `store`
//! module), since the larder that holds the lock may overwrite it meanwhile.
//!
//! # Invariants
//! - The file never changes length. The file header's fields are written at creation
//!   (and once more when a version 1 file becomes version 2); its two checkpoint slots
//!   at every checkpoint. Writes are positional; the map is never written through,
//!   grown or remapped.
//! - A record header is trusted (its lengths used) only when its CRC, seeded with the
//!   file's secret id, passes; no origin-supplied byte can pass as a header.
//! - A record becomes visible only by its header, written after its payload; until
//!   then a pad covers its room, so a crash leaves a skippable gap, never a torn object.
//! - A record's room is allocated on the disk (`fallocate`) before it is claimed, where
//!   the file system can: a full disk fails [`Store::begin`], not a write in mid-body.
//! - Bytes are returned only from a record whose payload CRC passed in this process.
//! - A record's payload is never modified in place; its header only becomes a pad of
//!   the same length once the record is dead. The highest sequence number per key wins,
//!   and a replaced record's header is a pad as soon as its replacement is written.
//! - Between two checkpoints every write stays inside a window recovery can judge
//!   (see "Durability" in the `store` module).
//! - A pinned record and an unfinished fill's room are never overwritten.
//! - The index holds at most `max_entries` entries of 16 bytes (plus table overhead).
//!
//! The on-disk format is in the `format` module and, byte by byte, in
//! `docs/ARCHITECTURE.md`.
//!
//! What larder does with requests and responses given what the store holds (lookup,
//! freshness, fills, request collapsing) is the [`policy`] module, above the store.

pub mod admission;
pub mod compact;
pub mod dir;
pub mod format;
pub mod policy;
pub mod size;
pub mod startup;
pub mod syncer;
pub mod uncacheable;

mod file;
mod index;
pub(crate) use index::IdHasher;
mod keyed_hash;
pub(crate) use keyed_hash::KeyedHash;
mod store;

pub use file::{OpenMode, SyncJob, FILE_NAME, MIN_CAPACITY};
pub use format::Checkpoint;
/// A temporary directory for tests anywhere in the crate.
#[cfg(test)]
pub(crate) use store::tests::TempDir;
pub use store::{
    CheckedObject, Fill, Meta, ObjectInfo, ObjectRef, Options, ScanReport, Stats, Store, Summary,
    VerifyError, VerifyReport,
};

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Seconds since the Unix epoch: the cache's clock, for larder and the tool alike (its
/// records carry wall-clock times, which must mean the same after a restart; `Instant`
/// does not). The store itself never reads a clock: callers pass `now` in.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a cache operation failed. Opening errors name the file; the rest are per call and
/// leave the store usable.
#[derive(Debug)]
pub enum CacheError {
    /// Reading or writing the file failed: a write error, or no disk space to reserve
    /// for a new object (a full disk, a quota). A write error pauses storing; see
    /// [`CacheError::is_write_error`].
    Io(PathBuf, io::Error),
    /// There is no cache file (and the caller asked not to create one).
    Missing(PathBuf),
    /// Another process (larder or the tool) has the file open.
    Locked(PathBuf),
    /// The file is not a larder cache (bad magic, header CRC or header fields).
    NotACache(PathBuf),
    /// The file was written by a newer larder; it is left untouched.
    Version {
        /// The cache file.
        path: PathBuf,
        /// The format version the file records.
        found: u32,
        /// The newest format version this larder reads.
        supported: u32,
    },
    /// The file is shorter than the capacity its header records.
    Truncated(PathBuf),
    /// A new cache file cannot have this capacity (bytes).
    Capacity(u64),
    /// The object is larger than the store accepts.
    TooLarge,
    /// No room can be reserved now (the way is blocked by objects being served or
    /// written), or a growing fill was overtaken by another.
    Busy,
    /// Storing is paused after a write error; lookups still work.
    Disabled,
    /// The body written differs from the length announced at [`Store::begin`].
    Incomplete {
        /// Body length announced at [`Store::begin`].
        expected: u64,
        /// Body bytes written.
        written: u64,
    },
    /// The stored object a refresh refers to is no longer intact.
    Gone,
    /// A newer object for the key was stored while this one was being written.
    Superseded,
    /// The store was opened read-only ([`Store::open_read_only`]) and writes nothing.
    ReadOnly,
}

impl CacheError {
    /// The cache file could not be written or its room reserved: a full disk, a full
    /// quota, an I/O error. Unlike the ordinary reasons an object is not stored
    /// (`TooLarge`, `Busy`, `Superseded`, `Incomplete`, and `Disabled` while storing is
    /// paused after such an error), this one is worth a warning: storing pauses for 30 s
    /// and resumes by itself, and the cause is outside larder.
    pub fn is_write_error(&self) -> bool {
        matches!(self, CacheError::Io(..))
    }

    /// The disk (or the user's quota) is full (`ENOSPC`, `EDQUOT`).
    pub fn is_disk_full(&self) -> bool {
        match self {
            CacheError::Io(_, e) => matches!(
                e.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::Io(p, e) => write!(f, "cache file {}: {e}", p.display()),
            CacheError::Missing(p) => write!(f, "there is no cache file at {}", p.display()),
            CacheError::Locked(p) => write!(
                f,
                "the cache {} is in use by another process (is larder running?)",
                p.display()
            ),
            CacheError::NotACache(p) => write!(f, "{} is not a larder cache file", p.display()),
            CacheError::Version {
                path,
                found,
                supported,
            } => write!(
                f,
                "{} is a cache of format version {found}, written by a newer larder \
                 (this one reads version {supported}); it was left untouched",
                path.display()
            ),
            CacheError::Truncated(p) => write!(
                f,
                "the cache file {} is shorter than its header says (truncated?)",
                p.display()
            ),
            CacheError::Capacity(c) => write!(
                f,
                "a cache of {} is not possible: the size must be between {} and {}",
                size::human(*c),
                size::human(MIN_CAPACITY),
                size::human(format::MAX_CAPACITY)
            ),
            CacheError::TooLarge => write!(f, "the object is too large to cache"),
            CacheError::Busy => write!(f, "no cache space can be reserved right now"),
            CacheError::Disabled => write!(f, "storing is paused after a cache write error"),
            CacheError::Incomplete { expected, written } => write!(
                f,
                "the object's body was {written} bytes, not the announced {expected}"
            ),
            CacheError::Gone => write!(f, "the stored object is no longer in the cache"),
            CacheError::Superseded => write!(f, "a newer copy of the object was stored meanwhile"),
            CacheError::ReadOnly => write!(f, "the cache was opened read-only"),
        }
    }
}

impl std::error::Error for CacheError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CacheError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}
