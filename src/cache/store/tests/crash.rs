//! Crashes at every write, with and without torn headers.

use super::*;
use std::collections::HashMap;

/// `kill -9` (every write failing from a random point on, a long one cut part-way)
/// in the middle of random operations, then reopen: every object found is whole and
/// is the latest version committed for its key (bodies differ per version, so an
/// older one is caught), a removed key stays removed, nothing indexed is damaged,
/// and the store keeps working.
#[test]
fn a_crash_at_any_write_keeps_the_latest_version_whole_or_nothing() {
    crash_model("crash-model", false);
}

/// A power cut can also tear a header: then damaged records may be indexed, but a
/// lookup still never returns anything but a complete version.
#[test]
fn power_cuts_that_tear_headers_never_serve_corrupt_bytes() {
    crash_model("power-cut-model", true);
}

fn crash_model(name: &str, torn_headers: bool) {
    let dir = TempDir::new(name);
    let capacity = 128 * KIB;
    let mut rng = XorShift(31337);
    let version = |key: &[u8], n: u64, len: usize| {
        body_for(
            format!("{n}/{}", String::from_utf8_lossy(key)).as_bytes(),
            len,
        )
    };
    let mut next = 0u64;
    let mut found = 0;
    // Per key: the latest version committed (None: removed), and what else the
    // operation a crash cut short may have left.
    let mut latest: HashMap<u64, Option<u64>> = HashMap::new();
    let mut cut_short: HashMap<u64, Option<u64>> = HashMap::new();
    for round in 0..300 {
        let mut store = open(&dir, capacity);
        // Nothing the scan indexes is damaged: an evicted record whose payload was
        // written over must not become reachable again (it would cost a CRC and
        // then vanish at its first lookup).
        let damaged = store.verify();
        assert!(
            torn_headers || damaged.is_empty(),
            "round {round}: {damaged:?}"
        );
        // everything indexed after the crash is a complete version, and the latest
        // one committed (a crash loses every write after it, and nothing before
        // it): never an older one, nor one removed
        for k in 0..32 {
            let key = format!("http://h/{k}").into_bytes();
            let got = get(&mut store, &key).map(|(head, body)| {
                let head = String::from_utf8(head).unwrap();
                let (n, len) = head.split_once(' ').unwrap();
                let (n, len): (u64, usize) = (n.parse().unwrap(), len.parse().unwrap());
                assert_eq!(body, version(&key, n, len), "round {round} key {k}");
                found += 1;
                n
            });
            if got.is_some() && !torn_headers {
                let want = latest.get(&k).copied().flatten();
                let or = cut_short.get(&k).copied().flatten();
                assert!(
                    got == want || got == or,
                    "round {round} key {k}: found version {got:?}, latest {want:?}"
                );
            }
            latest.insert(k, got);
        }
        cut_short.clear();
        store.file.writes_left = rng.next() % 300;
        store.file.torn_headers = torn_headers;
        let mut pinned = Vec::new();
        let mut open_fill = None;
        for _ in 0..200 {
            let k = rng.next() % 32;
            let key = format!("http://h/{k}").into_bytes();
            let before = latest.get(&k).copied().flatten();
            let mut stored = None;
            let result = match rng.next() % 10 {
                0 => {
                    let result = store.invalidate(&key).map(|_| ());
                    // the key leaves the index even when the tombstone fails
                    latest.insert(k, None);
                    if result.is_err() {
                        cut_short.insert(k, before);
                    }
                    result
                }
                1 => {
                    if let Some(obj) = store.lookup(&key) {
                        store.pin(&obj);
                        pinned.push(obj);
                    }
                    Ok(())
                }
                2 if open_fill.is_none() => store
                    .begin(b"http://h/open", b"x", meta(1), None)
                    .map(|f| open_fill = Some(f)),
                _ => {
                    let len = (rng.next() % 9000) as usize;
                    next += 1;
                    let head = format!("{next} {len}");
                    let body = version(&key, next, len);
                    let known = (rng.next().is_multiple_of(2)).then_some(len as u64);
                    stored = Some(next);
                    try_put(&mut store, &key, head.as_bytes(), &body, known).map(|_| ())
                }
            };
            if result.is_ok() && stored.is_some() {
                latest.insert(k, stored);
            }
            match result {
                Err(CacheError::Io(..)) | Err(CacheError::Disabled) => break,
                Err(CacheError::Busy) => {}
                Err(e) => panic!("{e}"),
                Ok(()) => {}
            }
            if !torn_headers {
                assert_eq!(store.summary().live_bytes, store.live_bytes_by_headers());
            }
            if pinned.len() > 2 {
                let obj = pinned.remove(0);
                store.unpin(&obj);
            }
        }
        // the crash: no unpin, no abort, no more writes
        drop((open_fill, store));
    }
    assert!(found > 300, "{found}");
}
