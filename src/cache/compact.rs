//! Offline compaction: rewrite a cache file with only its live objects, possibly at a new
//! capacity, and swap it in by rename.
//!
//! The old file stays locked (its [`Store`] open) until the new one has replaced it, so
//! larder cannot start on a file that is about to vanish, and it is never truncated or
//! written: a crash at any point leaves either the old file or the complete new one under
//! the cache's name (plus, at worst, a stale `*.compact-tmp` the next compaction removes).

use std::cmp::Reverse;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::format::FILE_HEADER_LEN;
use super::{CacheError, Meta, Options, Store};

/// What [`compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The file's capacity before.
    pub old_capacity: u64,
    /// The file's capacity after.
    pub new_capacity: u64,
    /// Objects copied.
    pub kept: u64,
    /// Their live bytes: what their records take in the new file (record header, key,
    /// head, body, padding), counted as [`Stats::live_bytes`](super::Stats::live_bytes)
    /// counts them. A record's length depends only on what it holds, so when every
    /// object is kept this equals the old file's live bytes.
    pub kept_bytes: u64,
    /// Objects left out because newer ones filled the new capacity (or its entry bound),
    /// or because they are too large for the new file.
    pub dropped: u64,
    /// Objects left out because their payload CRC failed: corrupt bytes are not copied.
    pub damaged: u64,
}

/// Rewrites the cache file at `path` into a new file of `capacity` bytes (`None`: the old
/// file's capacity), keeping the newest live objects that fit, in their original order
/// (oldest first, so the ring's eviction order survives), then renames it over `path`.
/// A new capacity is rounded down to a multiple of 64 bytes, as at creation.
///
/// Errors, with the old file left as it was: the open errors of [`Store::open_existing`]
/// (`Locked` while larder or another tool has the file open; `Missing`, `NotACache`,
/// `Version`, `Truncated`), `Capacity` for an impossible new size, and `Io` when the new
/// file cannot be written (it is then removed).
pub fn compact(path: &Path, capacity: Option<u64>, now: u64) -> Result<Compacted, CacheError> {
    let mut old = Store::open_existing(path, everything(), now)?;
    let tmp = tmp_path(path);
    remove_stale(&tmp)?;
    let new_capacity = capacity.unwrap_or(old.scan_report().capacity);
    let result = copy_live(&mut old, &tmp, new_capacity, now).and_then(|report| {
        std::fs::rename(&tmp, path).map_err(|e| CacheError::Io(path.to_path_buf(), e))?;
        sync_parent(path)?;
        Ok(report)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    // Only now may larder open the cache (the new file).
    drop(old);
    result
}

/// Opens the old file with no limits: compaction must see every object it holds.
fn everything() -> Options {
    Options {
        capacity: 0,
        max_object: u64::MAX,
        max_entries: usize::MAX,
    }
}

/// `<path>.compact-tmp`, next to the cache so the rename stays on one file system.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".compact-tmp");
    PathBuf::from(name)
}

/// Removes what an interrupted compaction left; we hold the cache's lock, so no other
/// compaction can be writing it.
fn remove_stale(tmp: &Path) -> Result<(), CacheError> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CacheError::Io(tmp.to_path_buf(), e))
        }
        _ => Ok(()),
    }
}

/// Creates the store at `tmp`, copies into it the newest objects of `old` that fit, and
/// syncs it. The new store is closed (unlocked) on return.
fn copy_live(
    old: &mut Store,
    tmp: &Path,
    capacity: u64,
    now: u64,
) -> Result<Compacted, CacheError> {
    // The entry bound larder will open the file with; larger bodies than its default
    // max_object may stay (the store still refuses records over a quarter of the area).
    let max_entries = Options::for_capacity(capacity).max_entries;
    let opts = Options {
        capacity,
        max_object: u64::MAX,
        max_entries,
    };
    let mut new = Store::open_file(tmp, opts, now)?;
    let new_capacity = new.scan_report().capacity;
    let room = new_capacity.saturating_sub(FILE_HEADER_LEN);

    let mut objects: Vec<(u64, u64, Vec<u8>)> = old
        .objects()
        .map(|o| (o.seq, o.total_len, o.key.to_vec()))
        .collect();
    let total = objects.len() as u64;
    // The store refuses a record over a quarter of the data area: such an object must
    // not end the run of newest objects that fit.
    objects.retain(|&(_, len, _)| len <= room / 4);
    // Choose newest first...
    objects.sort_unstable_by_key(|&(seq, _, _)| Reverse(seq));
    let mut used = 0u64;
    let fitting = objects
        .iter()
        .take(max_entries)
        .take_while(|&&(_, len, _)| match used.checked_add(len) {
            Some(total) if total <= room => {
                used = total;
                true
            }
            _ => false,
        })
        .count();
    let mut damaged = 0;
    // ...then copy oldest first.
    for (_, _, key) in objects.iter().take(fitting).rev() {
        // lookup checks the payload CRC, so a damaged object is left behind rather than
        // sealed with a fresh CRC over bad bytes.
        let Some(obj) = old.lookup(key) else {
            damaged += 1;
            continue;
        };
        let head = old.bytes(obj.head.clone());
        let body = old.bytes(obj.body.clone());
        match copy_one(&mut new, key, head, body, obj.meta) {
            // Should the store's size rule differ from the one above, leave it out.
            Err(CacheError::TooLarge) => {}
            other => other?,
        }
    }
    // A checkpoint over everything: the first open of the new file has nothing to check.
    new.sync_now()?;
    // Counted from the result, so the report holds even if the store had to evict.
    let kept = new.summary().objects;
    let kept_bytes = new.summary().live_bytes;
    Ok(Compacted {
        old_capacity: old.scan_report().capacity,
        new_capacity,
        kept,
        kept_bytes,
        dropped: total.saturating_sub(kept + damaged),
        damaged,
    })
}

/// Stores one object in `new`.
fn copy_one(
    new: &mut Store,
    key: &[u8],
    head: &[u8],
    body: &[u8],
    meta: Meta,
) -> Result<(), CacheError> {
    let mut fill = new.begin(key, head, meta, Some(body.len() as u64))?;
    if let Err(e) = new.write(&mut fill, body) {
        new.abort(fill);
        return Err(e);
    }
    new.commit(fill).map(|_| ())
}

/// Makes the rename itself durable.
fn sync_parent(path: &Path) -> Result<(), CacheError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CacheError::Io(dir.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, removed on drop.
    use crate::cache::store::tests::TempDir;

    const MIB: u64 = 1 << 20;

    fn body(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
    }

    fn key(i: usize) -> Vec<u8> {
        format!("http://c.test/{i}").into_bytes()
    }

    /// Stores object `i` with a body of `len` bytes and `stored` = 1000 + i.
    fn put(store: &mut Store, i: usize, len: usize) {
        let meta = Meta {
            requested: 1000 + i as u64,
            stored: 1000 + i as u64,
            expires: 5000,
        };
        copy_one(
            store,
            &key(i),
            b"HTTP/1.1 200 OK\r\n\r\n",
            &body(i, len),
            meta,
        )
        .unwrap();
    }

    /// Which of objects `0..n` the cache at `dir` holds, checking their bytes and meta,
    /// and the order of their sequence numbers.
    fn survivors(dir: &TempDir, n: usize, len: usize) -> Vec<usize> {
        let mut store = Store::open_existing(&dir.file(), everything(), 1).unwrap();
        let mut found = Vec::new();
        let mut last_seq = 0;
        for i in 0..n {
            let Some(obj) = store.lookup(&key(i)) else {
                continue;
            };
            assert_eq!(store.bytes(obj.body.clone()), &body(i, len)[..]);
            assert_eq!(store.bytes(obj.head.clone()), b"HTTP/1.1 200 OK\r\n\r\n");
            assert_eq!(obj.meta.stored, 1000 + i as u64);
            assert_eq!(obj.meta.expires, 5000);
            assert!(obj.seq > last_seq, "order kept");
            last_seq = obj.seq;
            found.push(i);
        }
        found
    }

    #[test]
    fn keeps_every_live_object_and_frees_the_dead_bytes() {
        let dir = TempDir::new("same");
        {
            let mut store = Store::open_file(&dir.file(), Options::for_capacity(MIB), 1).unwrap();
            for i in 0..30 {
                put(&mut store, i, 5000);
            }
            for i in 0..10 {
                store.invalidate(&key(i)).unwrap();
            }
            assert!(store.stats().dead_bytes > 0);
        }
        let report = compact(&dir.file(), None, 2).unwrap();
        assert_eq!(
            report,
            Compacted {
                old_capacity: MIB,
                new_capacity: MIB,
                kept: 20,
                // 64 + 16 (key) + 19 (head) + 5000, rounded up to 64
                kept_bytes: 20 * 5120,
                dropped: 0,
                damaged: 0,
            }
        );
        assert_eq!(survivors(&dir, 30, 5000), (10..30).collect::<Vec<_>>());
        let store = Store::open_existing(&dir.file(), everything(), 3).unwrap();
        assert_eq!(store.stats().dead_bytes, 0);
        assert!(!tmp_path(&dir.file()).exists());
    }

    #[test]
    fn the_kept_bytes_are_the_live_bytes_before() {
        let dir = TempDir::new("live");
        let live = {
            let mut store = Store::open_file(&dir.file(), Options::for_capacity(MIB), 1).unwrap();
            for i in 0..30 {
                put(&mut store, i, 100 * i);
            }
            for i in 0..5 {
                put(&mut store, i, 7);
            }
            store.invalidate(&key(29)).unwrap();
            store.stats().live_bytes
        };
        let report = compact(&dir.file(), None, 2).unwrap();
        assert_eq!((report.kept, report.kept_bytes), (29, live));
        let store = Store::open_existing(&dir.file(), everything(), 3).unwrap();
        assert_eq!(store.stats().live_bytes, live);
    }

    #[test]
    fn shrinking_keeps_the_newest_that_fit_in_their_order() {
        let dir = TempDir::new("shrink");
        {
            let mut store = Store::open_file(&dir.file(), Options::for_capacity(MIB), 1).unwrap();
            for i in 0..40 {
                put(&mut store, i, 10_000);
            }
        }
        let report = compact(&dir.file(), Some(128 << 10), 2).unwrap();
        // 124 KiB of data area holds 12 records of 10,112 bytes.
        assert_eq!((report.kept, report.dropped), (12, 28));
        assert_eq!(survivors(&dir, 40, 10_000), (28..40).collect::<Vec<_>>());
        assert_eq!(std::fs::metadata(dir.file()).unwrap().len(), 128 << 10);
    }

    #[test]
    fn an_object_too_large_for_the_new_file_does_not_stop_older_ones() {
        let dir = TempDir::new("large");
        {
            let mut store = Store::open_file(&dir.file(), Options::for_capacity(MIB), 1).unwrap();
            for i in 0..5 {
                put(&mut store, i, 1000);
            }
            put(&mut store, 5, 100_000);
        }
        let report = compact(&dir.file(), Some(256 << 10), 2).unwrap();
        assert_eq!((report.kept, report.dropped), (5, 1));
        assert_eq!(survivors(&dir, 5, 1000), (0..5).collect::<Vec<_>>());
    }

    #[test]
    fn a_damaged_object_is_not_copied() {
        use std::os::unix::fs::FileExt;
        let dir = TempDir::new("damaged");
        let at = {
            let mut store = Store::open_file(&dir.file(), Options::for_capacity(MIB), 1).unwrap();
            for i in 0..3 {
                put(&mut store, i, 3000);
            }
            let at = store.lookup(&key(1)).unwrap().body.start + 10;
            // Closed cleanly, so the open for compaction does not read the payloads:
            // compaction's own check must find the damage.
            store.sync_for_close().unwrap();
            at
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.file())
            .unwrap();
        file.write_all_at(b"!", at).unwrap();
        let report = compact(&dir.file(), None, 2).unwrap();
        assert_eq!((report.kept, report.damaged, report.dropped), (2, 1, 0));
        assert_eq!(survivors(&dir, 3, 3000), [0, 2]);
    }

    #[test]
    fn a_locked_cache_is_refused_and_left_as_it_was() {
        let dir = TempDir::new("locked");
        let mut store = Store::open_file(&dir.file(), Options::for_capacity(MIB), 1).unwrap();
        put(&mut store, 0, 100);
        let before = std::fs::read(dir.file()).unwrap();
        let err = compact(&dir.file(), Some(2 * MIB), 2).unwrap_err();
        assert!(matches!(err, CacheError::Locked(_)), "{err}");
        assert!(std::fs::read(dir.file()).unwrap() == before);
        assert!(!tmp_path(&dir.file()).exists());
    }

    #[test]
    fn an_impossible_capacity_leaves_the_cache_alone() {
        let dir = TempDir::new("tiny");
        drop(Store::open_file(&dir.file(), Options::for_capacity(MIB), 1).unwrap());
        let before = std::fs::read(dir.file()).unwrap();
        let err = compact(&dir.file(), Some(4096), 2).unwrap_err();
        assert!(matches!(err, CacheError::Capacity(_)), "{err}");
        assert!(std::fs::read(dir.file()).unwrap() == before);
        assert!(!tmp_path(&dir.file()).exists());
    }

    #[test]
    fn a_stale_temporary_file_is_replaced() {
        let dir = TempDir::new("stale");
        {
            let mut store = Store::open_file(&dir.file(), Options::for_capacity(MIB), 1).unwrap();
            put(&mut store, 0, 100);
        }
        std::fs::write(tmp_path(&dir.file()), b"left by a crash").unwrap();
        assert_eq!(compact(&dir.file(), None, 2).unwrap().kept, 1);
        assert_eq!(survivors(&dir, 1, 100), [0]);
        assert!(!tmp_path(&dir.file()).exists());
    }

    #[test]
    fn a_missing_cache_is_not_created() {
        let dir = TempDir::new("missing");
        let err = compact(&dir.file(), None, 1).unwrap_err();
        assert!(matches!(err, CacheError::Missing(_)), "{err}");
        assert!(!dir.file().exists() && !tmp_path(&dir.file()).exists());
    }
}
