//! Reopening: what the scan finds after clean closes, torn tails, damage, and files
//! that are not a cache.

use super::*;
use crate::cache::format::{encode_file_header, FileHeader, VERSION};

#[test]
fn reopen_finds_everything() {
    let dir = TempDir::new("reopen");
    let mut store = open(&dir, MIB);
    let mut rng = XorShift(99);
    let sizes: Vec<usize> = (0..50).map(|_| (rng.next() % 10_000) as usize).collect();
    for (i, &len) in sizes.iter().enumerate() {
        put_keyed(&mut store, &format!("k{i}"), len);
    }
    let before = store.stats();
    // Without a clean close, everything written since the last checkpoint (here all
    // of it) has its payload checked by the scan.
    drop(store);
    let store = open(&dir, MIB);
    assert_eq!(store.scan_report().objects, 50);
    assert!(store.objects().all(|o| o.verified));
    assert_eq!(store.stats().cursor, before.cursor);
    // After one, nothing is read but the headers.
    close(store);
    let mut store = open(&dir, MIB);
    let report = store.scan_report().clone();
    assert!(!report.created);
    assert_eq!(report.objects, 50);
    assert_eq!(report.damaged_bytes, 0);
    assert_eq!(store.stats().cursor, before.cursor);
    assert!(store.objects().all(|o| !o.verified));
    for (i, &len) in sizes.iter().enumerate() {
        assert!(check_keyed(&mut store, &format!("k{i}"), len));
    }
    assert!(store.objects().all(|o| o.verified));
    // new writes go after the old ones, not over them
    put_keyed(&mut store, "new", 100);
    for (i, &len) in sizes.iter().enumerate() {
        assert!(check_keyed(&mut store, &format!("k{i}"), len));
    }
}

#[test]
fn reopen_after_wrapping_resumes_the_ring() {
    let dir = TempDir::new("reopen-wrapped");
    let mut store = open(&dir, 256 * KIB);
    for i in 0..50 {
        put_keyed(&mut store, &format!("k{i}"), 9 * 1024);
    }
    let before = store.stats();
    let live: Vec<usize> = (0..50)
        .filter(|i| store.objects().any(|o| o.key == format!("k{i}").as_bytes()))
        .collect();
    close(store);
    let mut store = open(&dir, 256 * KIB);
    let after = store.stats();
    assert_eq!(
        (after.cursor, after.horizon),
        (before.cursor, before.horizon)
    );
    assert_eq!(after.objects, live.len() as u64);
    for i in 50..60 {
        put_keyed(&mut store, &format!("k{i}"), 9 * 1024);
    }
    // the newest survive, the oldest went first
    for i in 45..60 {
        assert!(check_keyed(&mut store, &format!("k{i}"), 9 * 1024), "k{i}");
    }
}

#[test]
fn a_torn_tail_loses_only_the_last_record() {
    for zero_header in [true, false] {
        let dir = TempDir::new("torn");
        let mut store = open(&dir, MIB);
        for i in 0..5 {
            put_keyed(&mut store, &format!("k{i}"), 5000);
        }
        let last = put_keyed(&mut store, "last", 5000);
        drop(store);
        if zero_header {
            damage(&dir, last.off, &[0; 64]);
        } else {
            // the tail of the body never reached the disk
            damage(&dir, last.body.end - 700, &[0; 700]);
        }
        let mut store = open(&dir, MIB);
        // Written after the last checkpoint, so its payload was checked by the
        // scan: a torn one is never indexed.
        assert!(store.verify().is_empty());
        assert_eq!(store.scan_report().damaged_bytes > 0, !zero_header);
        assert_eq!(store.lookup(b"last"), None);
        for i in 0..5 {
            assert!(check_keyed(&mut store, &format!("k{i}"), 5000));
        }
        let stats = store.stats();
        assert_eq!(stats.dropped_corrupt, 0);
        assert_eq!(stats.objects, 5);
        // the store carries on
        put_keyed(&mut store, "last", 5000);
        assert!(check_keyed(&mut store, "last", 5000));
    }
}

#[test]
fn a_flipped_body_byte_drops_the_object_at_first_lookup_only() {
    let dir = TempDir::new("flip");
    let mut store = open(&dir, MIB);
    put_keyed(&mut store, "a", 3000);
    let b = put_keyed(&mut store, "b", 3000);
    put_keyed(&mut store, "c", 3000);
    // closed cleanly: nothing is newer than the last checkpoint, so the scan does
    // not read the payloads (see the torn tail for what it does otherwise)
    close(store);
    flip(&dir, b.body.start + 1234, 0x10);
    let mut store = open(&dir, MIB);
    assert_eq!(store.verify().len(), 1);
    assert!(matches!(store.verify()[0], (off, VerifyError::Payload { .. }) if off == b.off));
    assert!(check_keyed(&mut store, "a", 3000));
    assert_eq!(store.lookup(b"b"), None);
    assert!(check_keyed(&mut store, "c", 3000));
    assert_eq!(store.stats().dropped_corrupt, 1);
    assert_eq!(store.stats().objects, 2);
    assert!(store.verify().is_empty());
}

#[test]
fn a_tombstone_survives_reopen() {
    let dir = TempDir::new("tombstone");
    let mut store = open(&dir, MIB);
    put_keyed(&mut store, "gone", 100);
    put_keyed(&mut store, "kept", 100);
    assert!(store.invalidate(b"gone").unwrap());
    assert!(!store.invalidate(b"gone").unwrap());
    assert!(!store.invalidate(b"never").unwrap());
    assert_eq!(store.lookup(b"gone"), None);
    drop(store);
    let mut store = open(&dir, MIB);
    assert_eq!(store.scan_report().tombstones, 1);
    assert_eq!(store.lookup(b"gone"), None);
    assert!(check_keyed(&mut store, "kept", 100));
    // storing it again wins over the tombstone, also after a restart
    put_keyed(&mut store, "gone", 100);
    drop(store);
    let mut store = open(&dir, MIB);
    assert!(check_keyed(&mut store, "gone", 100));
}

#[test]
fn duplicate_keys_resolve_to_the_highest_seq() {
    let dir = TempDir::new("dups");
    let mut store = open(&dir, MIB);
    let first = put(&mut store, b"k", b"h1", b"first", Some(5));
    put(&mut store, b"k", b"h2", b"second", Some(6));
    // the replaced record's header became a pad: it can never win again
    assert_eq!(store.header_at(first.off).map(|h| h.kind), Some(Kind::Pad));
    assert_eq!(
        get(&mut store, b"k").unwrap(),
        (b"h2".to_vec(), b"second".to_vec())
    );
    // two fills for one key: the later reservation wins whichever commits last
    let mut older = store.begin(b"k", b"h3", meta(1), Some(5)).unwrap();
    let mut newer = store.begin(b"k", b"h4", meta(1), Some(5)).unwrap();
    store.write(&mut newer, b"newer").unwrap();
    store.commit(newer).unwrap();
    store.write(&mut older, b"older").unwrap();
    assert!(matches!(store.commit(older), Err(CacheError::Superseded)));
    assert_eq!(get(&mut store, b"k").unwrap().1, b"newer");
    drop(store);
    let mut store = open(&dir, MIB);
    assert_eq!(store.scan_report().superseded, 0);
    assert_eq!(store.scan_report().objects, 1);
    assert_eq!(get(&mut store, b"k").unwrap().1, b"newer");
}

#[test]
fn an_existing_file_keeps_its_capacity() {
    let dir = TempDir::new("capacity");
    drop(open(&dir, MIB));
    let store = open(&dir, 2 * MIB);
    assert_eq!(store.stats().capacity, MIB);
    assert_eq!(store.scan_report().requested_capacity, Some(2 * MIB));
    drop(store);
    let store = Store::open_existing(&dir.file(), Options::for_capacity(0), 0).unwrap();
    assert_eq!(store.scan_report().requested_capacity, None);
    let missing = dir.path().join("nothing");
    assert!(matches!(
        Store::open_existing(&missing, opts(MIB), 0),
        Err(CacheError::Missing(p)) if p == missing
    ));
}

#[test]
fn a_held_lock_is_reported() {
    let dir = TempDir::new("locked");
    let _first = open(&dir, MIB);
    let e = Store::open(dir.path(), opts(MIB), 0).err().unwrap();
    assert!(matches!(e, CacheError::Locked(_)));
    assert!(e.to_string().contains("is larder running?"));
}

#[test]
fn a_newer_version_is_refused_and_left_untouched() {
    let dir = TempDir::new("version");
    drop(open(&dir, MIB));
    let header = FileHeader {
        version: VERSION + 1,
        capacity: MIB,
        file_id: 5,
        created: 0,
    };
    damage(&dir, 0, &encode_file_header(&header));
    let before = fs::read(dir.file()).unwrap();
    let e = Store::open(dir.path(), opts(MIB), 0).err().unwrap();
    assert!(
        matches!(
            e,
            CacheError::Version {
                found,
                supported: VERSION,
                ..
            } if found == VERSION + 1
        ),
        "{e}"
    );
    assert_eq!(fs::read(dir.file()).unwrap(), before);
}

#[test]
fn a_truncated_file_is_reported() {
    let dir = TempDir::new("truncated");
    drop(open(&dir, MIB));
    fs::OpenOptions::new()
        .write(true)
        .open(dir.file())
        .unwrap()
        .set_len(MIB - 64)
        .unwrap();
    let e = Store::open(dir.path(), opts(MIB), 0).err().unwrap();
    assert!(matches!(e, CacheError::Truncated(_)), "{e}");
}

#[test]
fn garbage_files_are_not_a_cache_and_never_panic() {
    let dir = TempDir::new("garbage");
    let mut rng = XorShift(1234);
    for len in [0usize, 1, 47, 48, 64, 4096, 5000, 70_000] {
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes);
        fs::write(dir.file(), &bytes).unwrap();
        let e = Store::open(dir.path(), opts(MIB), 0).err().unwrap();
        assert!(matches!(e, CacheError::NotACache(_)), "{len}: {e}");
        assert_eq!(fs::read(dir.file()).unwrap(), bytes, "left untouched");
    }
}

#[test]
fn a_valid_header_over_random_records_never_panics() {
    let dir = TempDir::new("random-area");
    let mut rng = XorShift(77);
    for round in 0..20 {
        let mut bytes = vec![0u8; 256 * 1024];
        rng.fill(&mut bytes);
        let header = FileHeader {
            version: 1,
            capacity: 256 * 1024,
            file_id: 0x42,
            created: 0,
        };
        bytes[..48].copy_from_slice(&encode_file_header(&header));
        // sprinkle valid headers with random fields among the garbage
        for _ in 0..50 {
            let at = 4096 + (rng.next() % (252 * 1024 / 64)) * 64;
            let h = RecordHeader {
                kind: [Kind::Object, Kind::Tombstone, Kind::Pad][(rng.next() % 3) as usize],
                key_len: (rng.next() % 100) as u16,
                head_len: 0,
                total_len: (1 + rng.next() % 64) as u32 * 64,
                body_len: 0,
                seq: if round % 2 == 0 {
                    rng.next()
                } else {
                    rng.next() % 50
                },
                requested: 0,
                stored: 0,
                expires: 0,
                payload_crc: rng.next() as u32,
            };
            let h = if h.kind == Kind::Pad {
                RecordHeader {
                    seq: 0,
                    key_len: 0,
                    ..h
                }
            } else {
                h
            };
            let at = at as usize;
            bytes[at..at + 64].copy_from_slice(&encode_record_header(&h, 0x42));
        }
        fs::write(dir.file(), &bytes).unwrap();
        let mut store = open(&dir, 256 * KIB);
        let keys: Vec<Vec<u8>> = store.objects().map(|o| o.key.to_vec()).collect();
        for k in &keys {
            // random payloads fail their CRC: nothing corrupt comes back
            assert_eq!(store.lookup(k), None);
        }
        for i in 0..40 {
            put_keyed(&mut store, &format!("k{i}"), 7000);
        }
        for i in 35..40 {
            assert!(check_keyed(&mut store, &format!("k{i}"), 7000));
        }
        drop(store);
        let mut store = open(&dir, 256 * KIB);
        for i in 35..40 {
            assert!(
                check_keyed(&mut store, &format!("k{i}"), 7000),
                "round {round} k{i}"
            );
        }
    }
}
