//! How larder opens its cache at start-up: the directory is created if missing, a new
//! file gets `--cache-size` (or the default), an existing file keeps its own size unless
//! `--cache-size` asks for another one, in which case it is rewritten at that size first
//! (offline compaction, keeping the newest objects) — changing the flag is all a user
//! has to do.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::compact::{compact, Compacted};
use super::dir::{self, DEFAULT_CACHE_SIZE};
use super::format::{decode_file_header, ALIGN};
use super::{CacheError, Options, Store};

/// The open cache and what start-up did to it.
pub struct Opened {
    /// The opened store.
    pub store: Store,
    /// The cache file the store is backed by.
    pub path: PathBuf,
    /// Set when an existing file was rewritten at a new `--cache-size`.
    pub resized: Option<Compacted>,
}

/// Opens `<dir>/larder.cache` for the proxy; `size` is `--cache-size` and `max_object`
/// `--cache-max-object` if given.
///
/// Errors are those of [`Store::open`] (locked, not a cache, newer version, I/O) and of
/// [`compact`] when a resize was needed; larder refuses to start on any of them rather
/// than run without the cache the user configured or overwrite a file it cannot read.
pub fn open_for_proxy(
    dir: &Path,
    size: Option<u64>,
    max_object: Option<u64>,
    now: u64,
) -> Result<Opened, CacheError> {
    dir::create(dir)?;
    let path = dir::file_path(dir);
    // New files are made at a multiple of ALIGN, so compare what a new file would get.
    let wanted = size.map(|s| s / ALIGN * ALIGN);
    let mut resized = None;
    let capacity = match (existing_capacity(&path), wanted) {
        (Some(have), Some(want)) if have != want => {
            resized = Some(compact(&path, Some(want), now)?);
            want
        }
        (Some(have), _) => have,
        (None, want) => want.unwrap_or(DEFAULT_CACHE_SIZE),
    };
    let mut opts = Options::for_capacity(capacity);
    if let Some(max) = max_object {
        opts.max_object = max;
    }
    let store = Store::open(dir, opts, now)?;
    Ok(Opened {
        store,
        path,
        resized,
    })
}

/// The capacity an existing cache file's header states, or `None` when there is no
/// file or its header does not decode (then [`Store::open`] names the problem).
fn existing_capacity(path: &Path) -> Option<u64> {
    let mut header = [0u8; 48];
    File::open(path).ok()?.read_exact(&mut header).ok()?;
    decode_file_header(&header).ok().map(|h| h.capacity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Meta;

    use crate::cache::store::tests::TempDir;

    fn put(store: &mut Store, key: &[u8]) {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let meta = Meta::default();
        let mut fill = store.begin(key, head, meta, Some(5)).expect("begin");
        store.write(&mut fill, b"hello").expect("write");
        store.commit(fill).expect("commit");
    }

    #[test]
    fn creates_the_directory_and_a_file_of_the_asked_size() {
        let tmp = TempDir::new("create");
        let dir = tmp.path().join("nested").join("cache");
        let opened = open_for_proxy(&dir, Some(1 << 20), None, 0).expect("open");
        assert_eq!(opened.store.stats().capacity, 1 << 20);
        assert!(opened.resized.is_none());
        assert_eq!(
            std::fs::metadata(&opened.path).map(|m| m.len()).ok(),
            Some(1 << 20)
        );
    }

    #[test]
    fn existing_file_keeps_its_size_when_no_size_is_asked_for() {
        let tmp = TempDir::new("keep");
        let mut first = open_for_proxy(tmp.path(), Some(2 << 20), None, 0).expect("open");
        put(&mut first.store, b"http://a/kept");
        drop(first);
        let mut again = open_for_proxy(tmp.path(), None, None, 0).expect("reopen");
        assert_eq!(again.store.stats().capacity, 2 << 20);
        assert!(again.resized.is_none());
        assert!(again.store.lookup(b"http://a/kept").is_some());
    }

    #[test]
    fn a_new_size_rewrites_the_file_and_keeps_objects() {
        let tmp = TempDir::new("resize");
        let mut first = open_for_proxy(tmp.path(), Some(2 << 20), None, 0).expect("open");
        put(&mut first.store, b"http://a/moved");
        drop(first);
        let mut bigger = open_for_proxy(tmp.path(), Some(3 << 20), None, 0).expect("resize");
        assert_eq!(bigger.store.stats().capacity, 3 << 20);
        assert_eq!(bigger.resized.as_ref().map(|r| r.kept), Some(1));
        assert!(bigger.store.lookup(b"http://a/moved").is_some());
        drop(bigger);
        // The same size again (even unaligned, rounding to the same file) is no resize.
        let same = open_for_proxy(tmp.path(), Some((3 << 20) + 7), None, 0).expect("reopen");
        assert!(same.resized.is_none());
    }

    #[test]
    fn a_held_lock_is_an_error_not_a_second_writer() {
        let tmp = TempDir::new("locked");
        let _first = open_for_proxy(tmp.path(), Some(1 << 20), None, 0).expect("open");
        match open_for_proxy(tmp.path(), Some(1 << 20), None, 0) {
            Err(CacheError::Locked(_)) => {}
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("two openers of one cache"),
        }
    }
}
