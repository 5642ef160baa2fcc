//! Tests of the store, with the helpers they share.

use super::*;
use crate::cache::format::tests::XorShift;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory under the system temp dir, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("larder-test-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn file(&self) -> PathBuf {
        self.0.join(FILE_NAME)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

fn opts(capacity: u64) -> Options {
    Options {
        capacity,
        max_object: capacity / 4,
        max_entries: 100_000,
    }
}

fn open(dir: &TempDir, capacity: u64) -> Store {
    Store::open(dir.path(), opts(capacity), 1000).unwrap()
}

/// A clean shutdown: the last checkpoint, then the store is dropped.
fn close(mut store: Store) {
    store.sync_for_close().unwrap();
}

/// Body bytes derived from the key, so any survivor can be checked.
fn body_for(key: &[u8], len: usize) -> Vec<u8> {
    let seed = key
        .iter()
        .fold(0x9e37_79b9_u64, |a, &b| a.rotate_left(5) ^ u64::from(b))
        | 1;
    let mut rng = XorShift(seed);
    let mut body = vec![0u8; len];
    rng.fill(&mut body);
    body
}

fn meta(t: u64) -> Meta {
    Meta {
        requested: t,
        stored: t + 1,
        expires: t + 100,
    }
}

/// Stores an object in 4 KiB writes.
fn put(store: &mut Store, key: &[u8], head: &[u8], body: &[u8], len: Option<u64>) -> ObjectRef {
    try_put(store, key, head, body, len).unwrap()
}

fn try_put(
    store: &mut Store,
    key: &[u8],
    head: &[u8],
    body: &[u8],
    len: Option<u64>,
) -> Result<ObjectRef, CacheError> {
    let mut fill = store.begin(key, head, meta(1000), len)?;
    for chunk in body.chunks(4096) {
        if let Err(e) = store.write(&mut fill, chunk) {
            store.abort(fill);
            return Err(e);
        }
    }
    store.commit(fill)
}

fn put_keyed(store: &mut Store, key: &str, len: usize) -> ObjectRef {
    let body = body_for(key.as_bytes(), len);
    put(
        store,
        key.as_bytes(),
        b"HTTP/1.1 200 OK\r\n\r\n",
        &body,
        Some(len as u64),
    )
}

fn get(store: &mut Store, key: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let obj = store.lookup(key)?;
    Some((
        store.bytes(obj.head).to_vec(),
        store.bytes(obj.body).to_vec(),
    ))
}

/// The object under `key` is absent, or exactly what put_keyed stored.
fn check_keyed(store: &mut Store, key: &str, len: usize) -> bool {
    match get(store, key.as_bytes()) {
        None => false,
        Some((head, body)) => {
            assert_eq!(head, b"HTTP/1.1 200 OK\r\n\r\n");
            assert_eq!(body, body_for(key.as_bytes(), len), "{key}");
            true
        }
    }
}

/// Overwrites bytes of the closed cache file.
fn damage(dir: &TempDir, off: u64, bytes: &[u8]) {
    let f = fs::OpenOptions::new().write(true).open(dir.file()).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

/// Flips the bits of `mask` in the byte at `off` of the cache file.
fn flip(dir: &TempDir, off: u64, mask: u8) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.file())
        .unwrap();
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, off).unwrap();
    f.write_all_at(&[byte[0] ^ mask], off).unwrap();
}

mod crash;
mod fill;
mod inspect;
mod recovery;
mod ring;
