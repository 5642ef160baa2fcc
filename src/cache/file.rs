//! The cache file on disk: creating it at its capacity, opening it under an exclusive
//! lock (or read-only without it, beside a running larder), the one read-only map,
//! reserving disk blocks, and positional writes into the data area.
//!
//! The map covers the whole file and is made once: it is never grown or remapped, and
//! since no larder process ever shrinks the file a read through it cannot fault. All
//! writes go through `write_all_at`, so a full disk is an `io::Error`, not a SIGBUS; and
//! the room of a new record is allocated on the disk (`fallocate(2)`) before the record
//! is begun, so a full disk is found before anything is promised, not in the middle of
//! a body.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::{Advice, Mmap, MmapOptions, UncheckedAdvice};

use super::format::{
    self, checkpoint_slot, current_checkpoint, encode_checkpoint, encode_file_header,
    encode_record_header, Checkpoint, FileHeader, FileHeaderError, RecordHeader, ALIGN,
    FILE_HEADER_LEN, MAX_CAPACITY, VERSION,
};
use super::CacheError;

/// The cache file's name inside the cache directory.
pub const FILE_NAME: &str = "larder.cache";
/// Smallest capacity a new cache file may have.
pub const MIN_CAPACITY: u64 = 64 * 1024;
/// Most ranges [`CacheFile::reserve`] remembers as allocated (the ring makes one or two
/// long runs; this bounds what its gaps can add).
const MAX_KNOWN_RANGES: usize = 64;
/// Longest pad written in one header; a larger gap gets a chain of pads. A power of two
/// (so the pads written at creation sit at fixed offsets) below `MAX_RECORD_LEN`.
pub(crate) const PAD_CHUNK: u64 = 1 << 31;

/// An open, locked and mapped cache file.
pub(crate) struct CacheFile {
    file: File,
    path: PathBuf,
    map: Mmap,
    header: FileHeader,
    /// Bytes written since open (a write-amplification figure for stats).
    pub(crate) bytes_written: u64,
    /// Tests: the end of the furthest write, to prove nothing lands past the capacity.
    #[cfg(test)]
    pub(crate) max_write_end: u64,
    /// Tests: writes allowed before every write fails as a full disk would. The failing
    /// write lands as `kill -9` can leave it: a long write cut part-way (the kernel
    /// stops between pages), a header (64 aligned bytes, inside one page) whole or not
    /// at all — see `torn_headers` for what a power cut can do.
    #[cfg(test)]
    pub(crate) writes_left: u64,
    /// Tests: let the failing write tear headers too (half of its bytes land).
    #[cfg(test)]
    pub(crate) torn_headers: bool,
    /// Tests: the errno every block reservation fails with instead of calling the kernel.
    #[cfg(test)]
    pub(crate) reserve_errno: Option<i32>,
    /// Opened without the lock, for reading only: every write is refused.
    read_only: bool,
    /// Opened read-only while a writer held the lock.
    writer: bool,
    /// The highest checkpoint counter whose slot was written (see [`SyncJob`]).
    slots_written: Arc<Mutex<u64>>,
    /// The file system cannot reserve blocks (no `fallocate`): reservations are skipped.
    no_reserve: bool,
    /// Ranges of the file whose blocks this process has reserved, start → end: disjoint,
    /// not touching, at most [`MAX_KNOWN_RANGES`]. Blocks are never given back (the file
    /// is never truncated, no hole is ever punched), so a reservation inside one needs
    /// no system call: after the ring's first lap, reserving costs nothing.
    known: BTreeMap<u64, u64>,
    /// Tests: system calls made by `reserve`.
    #[cfg(test)]
    pub(crate) reserve_calls: u64,
    /// Tests: every write and sync, in order, while it is `Some` (the power-cut model
    /// replays them).
    #[cfg(test)]
    pub(crate) journal: Option<Vec<Event>>,
}

/// Tests: what the power-cut model sees of the file.
#[cfg(test)]
#[derive(Clone, Debug)]
pub(crate) enum Event {
    /// Bytes written at an offset.
    Write(u64, Vec<u8>),
    /// Every write before this one reached the disk.
    Sync,
}

/// A checkpoint being made durable, apart from the loop that took it: the data sync,
/// then the checkpoint's slot, then a sync of that. Holds its own handle on the file.
#[derive(Debug)]
pub struct SyncJob {
    file: File,
    checkpoint: Checkpoint,
    slot: [u8; 64],
    /// The highest counter whose slot was written, shared by every job of the file: a
    /// job that finishes after a newer one writes no slot, so the current checkpoint
    /// never goes back to an older one.
    written: Arc<Mutex<u64>>,
}

impl SyncJob {
    /// Runs the syncs and the slot write; blocks for as long as the disk takes.
    pub fn run(&self) -> io::Result<()> {
        self.file.sync_data()?;
        {
            let mut written = self
                .written
                .lock()
                .map_err(|_| io::Error::other("a checkpoint job panicked"))?;
            if self.checkpoint.counter <= *written {
                return Ok(());
            }
            self.file
                .write_all_at(&self.slot, checkpoint_slot(self.checkpoint.counter))?;
            *written = self.checkpoint.counter;
        }
        self.file.sync_data()
    }

    /// The checkpoint this job makes durable.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }
}

/// How a cache file is opened (see `Store::open_file`, `Store::open_existing`,
/// `Store::open_read_only`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpenMode {
    /// Take the lock; create the file at the requested capacity if it does not exist
    /// (larder).
    Create,
    /// Take the lock; the file must exist: [`CacheError::Missing`] otherwise (the tool's
    /// `purge` and `compact`).
    Existing,
    /// No lock, no writes, never create: read a cache that a running larder may be
    /// writing meanwhile (the tool's `stats`, `ls`, `get` and `verify`). The file is
    /// opened for reading only, so not one byte can be written through it.
    ReadOnly,
}

impl CacheFile {
    /// Opens `path` (creating it at `capacity` rounded down to [`ALIGN`] if it is missing
    /// and `mode` allows), takes the exclusive lock (not for `ReadOnly`), checks the
    /// header and maps it. Returns the file and whether it was created.
    ///
    /// Errors: `Missing`, `Capacity` (creation only), `Locked`, `NotACache`, `Version`,
    /// `Truncated` (shorter than its header's capacity), `Io`.
    pub(crate) fn open(
        path: &Path,
        mode: OpenMode,
        capacity: u64,
        now: u64,
    ) -> Result<(CacheFile, bool), CacheError> {
        let io = |e| CacheError::Io(path.to_path_buf(), e);
        if mode == OpenMode::ReadOnly {
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(CacheError::Missing(path.to_path_buf()))
                }
                Err(e) => return Err(io(e)),
            };
            let len = file.metadata().map_err(io)?.len();
            // Whether a larder holds the file now: then its bytes are whole in the page
            // cache, and what the checkpoint would discard after a power cut is live.
            let writer = match file.try_lock_shared() {
                Ok(()) => {
                    let _ = file.unlock();
                    false
                }
                Err(_) => true,
            };
            let mut f = CacheFile::map(file, path, len)?;
            f.read_only = true;
            f.writer = writer;
            return Ok((f, false));
        }
        let mut created = false;
        // A compaction may rename a new file over the path between our open and our lock;
        // we then hold the lock of a file nobody will open again, so try again.
        for _ in 0..3 {
            let file = match OpenOptions::new().read(true).write(true).open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound && mode == OpenMode::Create => {
                    create(path, capacity, now)?;
                    created = true;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(CacheError::Missing(path.to_path_buf()))
                }
                Err(e) => return Err(io(e)),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(CacheError::Locked(path.to_path_buf()))
                }
                Err(fs::TryLockError::Error(e)) => return Err(io(e)),
            }
            let ours = file.metadata().map_err(io)?;
            match fs::metadata(path) {
                Ok(now_there) if now_there.dev() == ours.dev() && now_there.ino() == ours.ino() => {
                    return CacheFile::map(file, path, ours.len()).map(|f| (f, created));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(io::Error::other(
            "the file kept being replaced while opening it",
        )))
    }

    fn map(file: File, path: &Path, len: u64) -> Result<CacheFile, CacheError> {
        let mut bytes = [0u8; format::FILE_HEADER_FIELDS_LEN];
        if len < bytes.len() as u64 {
            return Err(CacheError::NotACache(path.to_path_buf()));
        }
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| CacheError::Io(path.to_path_buf(), e))?;
        let header = match format::decode_file_header(&bytes) {
            Ok(h) => h,
            Err(FileHeaderError::NotACache) => {
                return Err(CacheError::NotACache(path.to_path_buf()))
            }
            Err(FileHeaderError::Version(found)) => {
                return Err(CacheError::Version {
                    path: path.to_path_buf(),
                    found,
                    supported: VERSION,
                })
            }
        };
        if len < header.capacity {
            return Err(CacheError::Truncated(path.to_path_buf()));
        }
        let map_len =
            usize::try_from(header.capacity).map_err(|_| CacheError::Capacity(header.capacity))?;
        // SAFETY: the map is read-only and covers bytes the file has (checked above). No
        // larder process ever shrinks a cache file (compaction writes a new one and
        // renames it), so the mapped range stays backed. With the exclusive lock, which
        // every writer takes, bytes under the map change only through our own positional
        // writes, and the store never hands out a slice of a range it is writing. Opened
        // read-only, without the lock, the bytes may change under us at any time (the
        // running larder writes them): the store then copies a record out of the map
        // before it checks or uses it, and uses only the checked copy.
        let map = unsafe { MmapOptions::new().len(map_len).map(&file) }
            .map_err(|e| CacheError::Io(path.to_path_buf(), e))?;
        Ok(CacheFile {
            file,
            path: path.to_path_buf(),
            map,
            header,
            bytes_written: 0,
            #[cfg(test)]
            max_write_end: 0,
            #[cfg(test)]
            writes_left: u64::MAX,
            #[cfg(test)]
            torn_headers: false,
            #[cfg(test)]
            reserve_errno: None,
            read_only: false,
            writer: false,
            slots_written: Arc::new(Mutex::new(0)),
            no_reserve: false,
            known: BTreeMap::new(),
            #[cfg(test)]
            reserve_calls: 0,
            #[cfg(test)]
            journal: None,
        })
    }

    /// Opened with [`OpenMode::ReadOnly`]: nothing may be written.
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub(crate) fn header(&self) -> &FileHeader {
        &self.header
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `len` bytes at file offset `off`, or `None` if any of them lies outside the file.
    pub(crate) fn get(&self, off: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.map.get(start..end)
    }

    /// Hints the kernel about the coming access pattern (sequential for the start-up
    /// scan, normal afterwards). Only a hint: failure is ignored.
    pub(crate) fn advise(&self, sequential: bool) {
        let advice = if sequential {
            Advice::Sequential
        } else {
            Advice::Normal
        };
        let _ = self.map.advise(advice);
    }

    /// Unmaps every page of the map from this process (they stay in the kernel's page
    /// cache and fault back in when read). The start-up scan touches a header on
    /// nearly every page, and fault-around maps the pages beside each one, so without
    /// this a freshly opened 1 GiB cache would count as ~1 GiB of larder's RSS.
    pub(crate) fn release_pages(&self) {
        // SAFETY: MADV_DONTNEED on a shared, read-only file mapping only drops page
        // table entries; the next read refaults the same bytes from the file (it is
        // the private and anonymous mappings whose contents it would discard), so a
        // slice of the map read after this call sees the same bytes as before it.
        let _ = unsafe { self.map.unchecked_advise(UncheckedAdvice::DontNeed) };
    }

    /// Flushes written data to the disk.
    pub(crate) fn sync(&mut self) -> Result<(), CacheError> {
        self.file
            .sync_data()
            .map_err(|e| CacheError::Io(self.path.clone(), e))?;
        #[cfg(test)]
        self.record(Event::Sync);
        Ok(())
    }

    /// The current checkpoint in the header page, if any (never in a version 1 file),
    /// for recovery: `None` also when opened read-only beside a running writer, whose
    /// file is whole as it stands (see the `store` module's "Durability").
    pub(crate) fn checkpoint(&self) -> Option<Checkpoint> {
        if self.header.version < 2 || self.writer {
            return None;
        }
        let page = self.get(0, FILE_HEADER_LEN)?;
        current_checkpoint(page, self.header.file_id, self.header.capacity)
    }

    /// A job that makes `checkpoint` durable (see [`SyncJob`]).
    pub(crate) fn sync_job(&self, checkpoint: Checkpoint) -> Result<SyncJob, CacheError> {
        if self.read_only {
            return Err(CacheError::ReadOnly);
        }
        let file = self
            .file
            .try_clone()
            .map_err(|e| CacheError::Io(self.path.clone(), e))?;
        if let Ok(mut written) = self.slots_written.lock() {
            // the file's own checkpoint, before any job of this process wrote one
            *written = (*written).max(self.checkpoint().map_or(0, |c| c.counter));
        }
        Ok(SyncJob {
            file,
            checkpoint,
            slot: encode_checkpoint(&checkpoint, self.header.file_id),
            written: Arc::clone(&self.slots_written),
        })
    }

    /// Runs `job` here and now.
    pub(crate) fn run_job(&mut self, job: &SyncJob) -> io::Result<()> {
        job.run()?;
        #[cfg(test)]
        self.record_job(job);
        Ok(())
    }

    /// Tests: tells the journal that `job` ran (its syncs and its slot write).
    #[cfg(test)]
    pub(crate) fn record_job(&mut self, job: &SyncJob) {
        self.record(Event::Sync);
        // The slot as the job left it (it writes none when a newer job wrote one).
        let at = checkpoint_slot(job.checkpoint.counter);
        if let Some(slot) = self.get(at, 64) {
            let slot = slot.to_vec();
            self.record(Event::Write(at, slot));
        }
        self.record(Event::Sync);
    }

    #[cfg(test)]
    fn record(&mut self, e: Event) {
        if let Some(j) = self.journal.as_mut() {
            j.push(e);
        }
    }

    /// Raises a version 1 file to the current version: rewrites the header's fields
    /// (one sector, written whole or not at all), then syncs. Called once the file
    /// holds a checkpoint, so that the version and the checkpoint agree.
    pub(crate) fn upgrade(&mut self) -> Result<(), CacheError> {
        if self.header.version >= VERSION {
            return Ok(());
        }
        if self.read_only {
            return Err(CacheError::ReadOnly);
        }
        let header = FileHeader {
            version: VERSION,
            ..self.header
        };
        let bytes = encode_file_header(&header);
        let io = |e| CacheError::Io(self.path.clone(), e);
        self.file.write_all_at(&bytes, 0).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        #[cfg(test)]
        {
            self.record(Event::Write(0, bytes.to_vec()));
            self.record(Event::Sync);
        }
        self.header = header;
        Ok(())
    }

    /// Writes `bytes` at file offset `off`, which must lie within the data area (a
    /// write elsewhere is refused with `InvalidInput`: the header is never rewritten and
    /// the file never grows).
    pub(crate) fn write_at(&mut self, off: u64, bytes: &[u8]) -> io::Result<()> {
        let end = off.checked_add(bytes.len() as u64);
        if off < FILE_HEADER_LEN || end.is_none_or(|end| end > self.header.capacity) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write outside the cache's data area",
            ));
        }
        if self.read_only {
            return Err(read_only_error());
        }
        #[cfg(test)]
        {
            if self.writes_left == 0 {
                if bytes.len() > 64 || self.torn_headers {
                    let half = &bytes[..bytes.len() / 2];
                    let _ = self.file.write_all_at(half, off);
                }
                return Err(io::Error::other("injected write failure"));
            }
            self.writes_left -= 1;
            self.max_write_end = self.max_write_end.max(end.unwrap_or(0));
            self.record(Event::Write(off, bytes.to_vec()));
        }
        self.file.write_all_at(bytes, off)?;
        self.bytes_written = self.bytes_written.saturating_add(bytes.len() as u64);
        Ok(())
    }

    /// Allocates disk blocks for `[off, off + len)` of the data area (`fallocate(2)`,
    /// mode 0: inside the file's length, so its size does not change), so that writes
    /// into that range cannot fail for want of space. The file is created sparse and a
    /// record's room is reserved this way when it is claimed; a range inside one this
    /// process reserved before is not asked for again, so once the ring has gone round
    /// this costs no system call.
    ///
    /// `Ok(())` also when the file system cannot reserve (`EOPNOTSUPP`, `ENOSYS`: then
    /// it is not asked again, and writes go on as before) or refuses for another reason
    /// that a write would report itself. Errors: a full disk (`ENOSPC`), a full quota
    /// (`EDQUOT`), an I/O error (`EIO`).
    pub(crate) fn reserve(&mut self, off: u64, len: u64) -> io::Result<()> {
        let end = off.checked_add(len);
        if off < FILE_HEADER_LEN || end.is_none_or(|end| end > self.header.capacity) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "reservation outside the cache's data area",
            ));
        }
        if self.read_only {
            return Err(read_only_error());
        }
        let end = off + len;
        if self.no_reserve || len == 0 || self.is_known(off, end) {
            return Ok(());
        }
        #[cfg(test)]
        let result = {
            self.reserve_calls += 1;
            match self.reserve_errno {
                Some(errno) => Err(io::Error::from_raw_os_error(errno)),
                None => fallocate(&self.file, off, len),
            }
        };
        #[cfg(not(test))]
        let result = fallocate(&self.file, off, len);
        match result {
            Ok(()) => {
                self.note_known(off, end);
                Ok(())
            }
            Err(e) => match e.raw_os_error() {
                Some(ENOSPC | EDQUOT | EIO) => Err(e),
                Some(EOPNOTSUPP | ENOSYS) => {
                    self.no_reserve = true;
                    Ok(())
                }
                _ => Ok(()),
            },
        }
    }

    /// `[off, end)` lies inside a range reserved before.
    pub(crate) fn is_known(&self, off: u64, end: u64) -> bool {
        self.known
            .range(..=off)
            .next_back()
            .is_some_and(|(_, &known_end)| known_end >= end)
    }

    /// Tests: forgets what was reserved, as a new process would not know it.
    #[cfg(test)]
    pub(crate) fn forget_reservations(&mut self) {
        self.known.clear();
    }

    /// Adds `[off, end)` to the reserved ranges, merged with those it touches; beyond
    /// [`MAX_KNOWN_RANGES`] the shortest is forgotten (it is only reserved again).
    fn note_known(&mut self, off: u64, end: u64) {
        let (mut lo, mut hi) = (off, end);
        if let Some((&start, &known_end)) = self.known.range(..=off).next_back() {
            if known_end >= off {
                lo = start;
                hi = hi.max(known_end);
            }
        }
        let touching: Vec<(u64, u64)> = self
            .known
            .range(lo..=hi)
            .map(|(&start, &known_end)| (start, known_end))
            .collect();
        for (start, known_end) in touching {
            self.known.remove(&start);
            hi = hi.max(known_end);
        }
        self.known.insert(lo, hi);
        if self.known.len() > MAX_KNOWN_RANGES {
            let shortest = self
                .known
                .iter()
                .min_by_key(|(&start, &known_end)| known_end - start)
                .map(|(&start, _)| start);
            if let Some(start) = shortest {
                self.known.remove(&start);
            }
        }
    }
}

/// What a write or reservation on a read-only cache file gets.
fn read_only_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the cache file was opened read-only",
    )
}

// Linux errno values (asm-generic, which x86-64 and arm64 use).
const EIO: i32 = 5;
const ENOSPC: i32 = 28;
const ENOSYS: i32 = 38;
const EOPNOTSUPP: i32 = 95;
const EDQUOT: i32 = 122;
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
const EINTR: i32 = 4;

/// `fallocate(fd, 0, off, len)`, retried on `EINTR`. Declared by hand: `libc` is not
/// among larder's crates, and std already links the C library that provides it.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn fallocate(file: &File, off: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    extern "C" {
        fn fallocate(fd: i32, mode: i32, offset: i64, len: i64) -> i32;
    }
    let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(EOPNOTSUPP));
    };
    loop {
        // SAFETY: plain system call on a descriptor we own, with integer arguments; on
        // 64-bit Linux `off_t` is 64 bits wide, as declared. Mode 0 only allocates
        // blocks inside the file's length: no byte of the file changes.
        if unsafe { fallocate(file.as_raw_fd(), 0, off, len) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(EINTR) {
            return Err(e);
        }
    }
}

/// Elsewhere, blocks cannot be reserved: writes report a full disk themselves.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn fallocate(_file: &File, _off: u64, _len: u64) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(EOPNOTSUPP))
}

/// Creates a cache file at `path`: built under a temporary name (so a crash never leaves
/// a half-made file under the real one), synced, then linked into place without
/// replacing a file another process created meanwhile.
fn create(path: &Path, capacity: u64, now: u64) -> Result<(), CacheError> {
    let capacity = capacity / ALIGN * ALIGN;
    if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) || usize::try_from(capacity).is_err() {
        return Err(CacheError::Capacity(capacity));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(".creating-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = build(&tmp, capacity, now).and_then(|()| match fs::hard_link(&tmp, path) {
        // Someone else created it first: theirs is as good as ours.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        // File systems without hard links: rename (which could replace a file created
        // in the same instant; the inode check after locking catches that).
        Err(_) => fs::rename(&tmp, path),
        Ok(()) => Ok(()),
    });
    let _ = fs::remove_file(&tmp);
    result
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(|e| CacheError::Io(path.to_path_buf(), e))
}

/// Writes a complete new cache file at `tmp`: sparse at its full length, the header,
/// and a chain of pads over the data area so the first scan jumps over it.
fn build(tmp: &Path, capacity: u64, now: u64) -> io::Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    file.set_len(capacity)?;
    let header = FileHeader {
        version: VERSION,
        capacity,
        file_id: random_id(now),
        created: now,
    };
    file.write_all_at(&encode_file_header(&header), 0)?;
    let mut at = FILE_HEADER_LEN;
    while at < capacity {
        let len = (capacity - at).min(PAD_CHUNK);
        // len ≤ PAD_CHUNK < u32::MAX
        let pad = RecordHeader::pad(len as u32);
        file.write_all_at(&encode_record_header(&pad, header.file_id), at)?;
        at += len;
    }
    file.sync_all()
}

/// A random non-zero file id: from /dev/urandom, else from std's per-process random
/// hash keys mixed with the time and pid.
fn random_id(now: u64) -> u64 {
    use std::hash::BuildHasher;
    let mut bytes = [0u8; 8];
    let id = match File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            std::collections::hash_map::RandomState::new().hash_one((now, std::process::id()))
        }
    };
    id.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::store::tests::TempDir;

    #[test]
    fn created_file_has_its_capacity_a_valid_header_and_pads() {
        let dir = TempDir::new("file-create");
        let path = dir.path().join(FILE_NAME);
        let (f, created) = CacheFile::open(&path, OpenMode::Create, 1 << 20, 5).unwrap();
        assert!(created);
        assert_eq!(fs::metadata(&path).unwrap().len(), 1 << 20);
        assert_eq!(f.header().capacity, 1 << 20);
        assert_eq!(f.header().created, 5);
        assert_ne!(f.header().file_id, 0);
        let area = f.get(FILE_HEADER_LEN, (1 << 20) - FILE_HEADER_LEN).unwrap();
        let found: Vec<_> = format::walk(area, f.header().file_id).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, RecordHeader::pad((1 << 20) - 4096));
        // no temporary file is left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn second_open_is_locked_and_existing_mode_never_creates() {
        let dir = TempDir::new("file-lock");
        let path = dir.path().join(FILE_NAME);
        assert!(matches!(
            CacheFile::open(&path, OpenMode::Existing, 1 << 20, 0),
            Err(CacheError::Missing(_))
        ));
        assert!(!path.exists());
        let first = CacheFile::open(&path, OpenMode::Create, 1 << 20, 0).unwrap();
        assert!(matches!(
            CacheFile::open(&path, OpenMode::Existing, 1 << 20, 0),
            Err(CacheError::Locked(_))
        ));
        drop(first);
        assert!(CacheFile::open(&path, OpenMode::Existing, 1 << 20, 0).is_ok());
    }

    #[test]
    fn a_read_only_open_takes_no_lock_never_creates_and_never_writes() {
        let dir = TempDir::new("file-read-only");
        let path = dir.path().join(FILE_NAME);
        assert!(matches!(
            CacheFile::open(&path, OpenMode::ReadOnly, 1 << 20, 0),
            Err(CacheError::Missing(_))
        ));
        assert!(!path.exists());
        let (mut writer, _) = CacheFile::open(&path, OpenMode::Create, 1 << 20, 0).unwrap();
        let before = fs::read(&path).unwrap();
        let (mut reader, created) = CacheFile::open(&path, OpenMode::ReadOnly, 0, 0).unwrap();
        assert!(!created && reader.is_read_only());
        assert_eq!(reader.header(), writer.header());
        let e = reader.write_at(FILE_HEADER_LEN, &[1; 64]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(reader.reserve(FILE_HEADER_LEN, 64).is_err());
        assert_eq!(fs::read(&path).unwrap(), before);
        // the writer's bytes show through the reader's map
        writer.write_at(FILE_HEADER_LEN, &[9; 64]).unwrap();
        assert_eq!(reader.get(FILE_HEADER_LEN, 64), Some(&[9u8; 64][..]));
    }

    #[test]
    fn a_reservation_allocates_blocks_inside_the_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = TempDir::new("file-reserve");
        let path = dir.path().join(FILE_NAME);
        let (mut f, _) = CacheFile::open(&path, OpenMode::Create, 8 << 20, 0).unwrap();
        let blocks = || fs::metadata(&path).unwrap().blocks();
        let before = blocks();
        f.reserve(1 << 20, 4 << 20).unwrap();
        assert_eq!(f.reserve_calls, 1);
        // inside what was reserved: no system call
        f.reserve(1 << 20, 64).unwrap();
        f.reserve((5 << 20) - 64, 64).unwrap();
        f.reserve(3 << 20, 1 << 20).unwrap();
        assert_eq!(f.reserve_calls, 1);
        assert_eq!(fs::metadata(&path).unwrap().len(), 8 << 20, "no growth");
        // 512-byte blocks; a file system without fallocate reserves nothing (and says so)
        assert!(
            f.no_reserve || blocks() >= before + (4 << 20) / 512,
            "{}",
            blocks()
        );
        assert!(f.reserve(0, 64).is_err() && f.reserve(8 << 20, 64).is_err());
        for (errno, fails) in [(ENOSPC, true), (EDQUOT, true), (EIO, true), (22, false)] {
            f.reserve_errno = Some(errno);
            assert_eq!(
                f.reserve(FILE_HEADER_LEN, 64).is_err(),
                fails,
                "errno {errno}"
            );
        }
        let e = {
            f.reserve_errno = Some(ENOSPC);
            f.reserve(FILE_HEADER_LEN, 64).unwrap_err()
        };
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        f.reserve_errno = Some(EOPNOTSUPP);
        f.reserve(6 << 20, 64).unwrap();
        assert!(f.no_reserve, "not asked again");
        f.reserve_errno = Some(ENOSPC);
        f.reserve(7 << 20, 64).unwrap();
    }

    #[test]
    fn reserved_ranges_merge_and_stay_bounded() {
        let dir = TempDir::new("file-known");
        let path = dir.path().join(FILE_NAME);
        let (mut f, _) = CacheFile::open(&path, OpenMode::Create, 1 << 20, 0).unwrap();
        f.note_known(8192, 9000);
        f.note_known(4096, 8192);
        f.note_known(10_000, 12_000);
        assert_eq!(f.known.len(), 2);
        assert!(f.is_known(4096, 9000) && f.is_known(5000, 5064));
        assert!(!f.is_known(8192, 9001) && !f.is_known(9000, 10_000));
        f.note_known(8500, 10_500);
        assert_eq!(f.known.iter().collect::<Vec<_>>(), [(&4096, &12_000)]);
        f.note_known(0, 100_000);
        assert_eq!(f.known.iter().collect::<Vec<_>>(), [(&0, &100_000)]);
        for i in 0..200u64 {
            f.note_known(200_000 + i * 1000, 200_000 + i * 1000 + 10 + i);
        }
        assert_eq!(f.known.len(), MAX_KNOWN_RANGES);
        assert!(f.is_known(0, 100_000), "the longest are kept");
    }

    #[test]
    fn capacity_out_of_range_is_refused() {
        let dir = TempDir::new("file-capacity");
        let path = dir.path().join(FILE_NAME);
        assert!(matches!(
            CacheFile::open(&path, OpenMode::Create, MIN_CAPACITY - 64, 0),
            Err(CacheError::Capacity(_))
        ));
        assert!(!path.exists());
    }

    #[test]
    fn writes_outside_the_data_area_are_refused() {
        let dir = TempDir::new("file-writes");
        let path = dir.path().join(FILE_NAME);
        let (mut f, _) = CacheFile::open(&path, OpenMode::Create, 1 << 20, 0).unwrap();
        assert!(f.write_at(0, &[1]).is_err());
        assert!(f.write_at((1 << 20) - 1, &[1, 2]).is_err());
        assert!(f.write_at(u64::MAX, &[1]).is_err());
        f.write_at((1 << 20) - 2, &[1, 2]).unwrap();
        assert_eq!(f.get((1 << 20) - 2, 2), Some(&[1u8, 2][..]));
        assert_eq!(f.get((1 << 20) - 1, 2), None);
        assert_eq!(fs::metadata(&path).unwrap().len(), 1 << 20);
    }
}
