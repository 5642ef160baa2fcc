//! The cache file on disk: creating it at its capacity, opening it under an exclusive
//! lock, the one read-only map, and positional writes into the data area.
//!
//! The map covers the whole file and is made once: it is never grown or remapped, and
//! since we never shrink the file (and other larder processes respect the lock) a read
//! through it cannot fault. All writes go through `write_all_at`, so a full disk is an
//! `io::Error`, not a SIGBUS.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap, MmapOptions, UncheckedAdvice};

use super::format::{
    self, encode_file_header, encode_record_header, FileHeader, FileHeaderError, RecordHeader,
    ALIGN, FILE_HEADER_LEN, MAX_CAPACITY, VERSION,
};
use super::CacheError;

/// The cache file's name inside the cache directory.
pub const FILE_NAME: &str = "larder.cache";
/// Smallest capacity a new cache file may have.
pub const MIN_CAPACITY: u64 = 64 * 1024;
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
}

/// Whether opening may create a missing file (see `Store::open_file`, `Store::open_existing`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpenMode {
    /// Create the file at the requested capacity if it does not exist (larder).
    Create,
    /// The file must exist: [`CacheError::Missing`] otherwise (the tool).
    Existing,
}

impl CacheFile {
    /// Opens `path` (creating it at `capacity` rounded down to [`ALIGN`] if it is missing
    /// and `mode` allows), takes the exclusive lock, checks the header and maps it.
    /// Returns the file and whether it was created.
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
        // SAFETY: the map is read-only and covers bytes the file has (checked above). We
        // hold the file's exclusive lock, which every larder process takes before writing
        // or resizing it, and we never shrink it, so the mapped range stays backed. Bytes
        // under the map change only through our own positional writes, and the store
        // never hands out a slice of a range it is writing.
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
        })
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
    pub(crate) fn sync(&self) -> Result<(), CacheError> {
        self.file
            .sync_data()
            .map_err(|e| CacheError::Io(self.path.clone(), e))
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
        }
        self.file.write_all_at(bytes, off)?;
        self.bytes_written = self.bytes_written.saturating_add(bytes.len() as u64);
        Ok(())
    }
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
