//! Fills, commits, refreshes and the limits and errors around them.

use super::*;

#[test]
fn round_trip_small_and_large_objects() {
    let dir = TempDir::new("round-trip");
    let mut store = open(&dir, 4 * MIB);
    assert!(store.scan_report().created);
    let sizes = [0usize, 1, 63, 64, 65, 4096, 100 * 1024, 900 * 1024];
    let mut refs = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let key = format!("http://example.com/{i}");
        let body = body_for(key.as_bytes(), len);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
        refs.push(put(
            &mut store,
            key.as_bytes(),
            head.as_bytes(),
            &body,
            Some(len as u64),
        ));
    }
    for (i, &len) in sizes.iter().enumerate() {
        let key = format!("http://example.com/{i}");
        let obj = store.lookup(key.as_bytes()).unwrap();
        assert_eq!(obj, refs[i]);
        assert_eq!(obj.meta, meta(1000));
        assert_eq!(
            store.bytes(obj.body.clone()),
            &body_for(key.as_bytes(), len)[..]
        );
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
        assert_eq!(store.bytes(obj.head), head.as_bytes());
    }
    assert!(refs.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(store.lookup(b"http://example.com/none"), None);
    assert_eq!(store.bytes(u64::MAX - 1..u64::MAX), &[] as &[u8]);
    let (start, end) = (10, 5);
    assert_eq!(store.bytes(start..end), &[] as &[u8]);
    assert!(store.verify().is_empty());
    let stats = store.stats();
    assert_eq!(stats.objects, sizes.len() as u64);
    assert_eq!(
        stats.live_bytes + stats.dead_bytes + stats.free_bytes,
        4 * MIB - FILE_HEADER_LEN
    );
}

#[test]
fn unknown_length_fill_grows_and_gives_back_its_tail() {
    let dir = TempDir::new("grow");
    let mut store = Store::open(
        dir.path(),
        Options {
            capacity: 16 * MIB,
            max_object: 3 * MIB + 100,
            max_entries: 1000,
        },
        0,
    )
    .unwrap();
    let len = 3 * MIB as usize + 5;
    let body = body_for(b"big", len);
    let obj = put(&mut store, b"big", b"head", &body, None);
    assert_eq!(store.bytes(obj.body.clone()), &body[..]);
    let end = obj.off + record_len(3, 4, len as u64).unwrap();
    assert_eq!(store.stats().cursor, end, "the unused tail was given back");
    let next = put_keyed(&mut store, "next", 10);
    assert_eq!(next.off, end);
    // one byte more than max_object fails
    let too_big = body_for(b"x", 3 * MIB as usize + 101);
    let e = try_put(&mut store, b"x", b"", &too_big, None).unwrap_err();
    assert!(matches!(e, CacheError::TooLarge), "{e}");
    assert_eq!(store.lookup(b"x"), None);
    drop(store);
    let mut store = Store::open(dir.path(), opts(16 * MIB), 0).unwrap();
    assert_eq!(get(&mut store, b"big").unwrap().1, body);
}

#[test]
fn a_growing_fill_overtaken_by_another_fails_and_the_other_commits() {
    let dir = TempDir::new("overtaken");
    let mut store = open(&dir, 16 * MIB);
    let mut a = store.begin(b"a", b"", meta(1), None).unwrap();
    let mut b = store.begin(b"b", b"", meta(1), Some(3)).unwrap();
    // its first 1 MiB room is full: growing it would need the room b took
    store
        .write(&mut a, &vec![1u8; MIB as usize + 100])
        .unwrap_err();
    assert!(matches!(store.write(&mut a, b"x"), Err(CacheError::Busy)));
    assert!(matches!(store.commit(a), Err(CacheError::Busy)));
    store.write(&mut b, b"abc").unwrap();
    store.commit(b).unwrap();
    assert_eq!(get(&mut store, b"b").unwrap().1, b"abc");
    assert_eq!(store.lookup(b"a"), None);
    assert_eq!(store.stats().filling, 0);
}

#[test]
fn limits_are_enforced() {
    let dir = TempDir::new("limits");
    let mut store = open(&dir, MIB);
    let too_long_key = vec![b'k'; 65536];
    let too_long_head = vec![b'h'; 65537];
    assert!(matches!(
        store.begin(&too_long_key, b"", meta(1), Some(0)),
        Err(CacheError::TooLarge)
    ));
    assert!(matches!(
        store.begin(b"k", &too_long_head, meta(1), Some(0)),
        Err(CacheError::TooLarge)
    ));
    assert!(matches!(
        store.begin(b"k", b"", meta(1), Some(MIB)),
        Err(CacheError::TooLarge)
    ));
    let mut fill = store.begin(b"k", b"", meta(1), Some(10)).unwrap();
    assert!(matches!(
        store.write(&mut fill, &[0; 11]),
        Err(CacheError::TooLarge)
    ));
    store.abort(fill);
    let mut fill = store.begin(b"k", b"", meta(1), Some(10)).unwrap();
    store.write(&mut fill, &[0; 5]).unwrap();
    assert!(matches!(
        store.commit(fill),
        Err(CacheError::Incomplete {
            expected: 10,
            written: 5
        })
    ));
    assert_eq!(store.lookup(b"k"), None);
    assert_eq!(store.stats().filling, 0);
}

#[test]
fn an_aborted_fill_is_never_visible() {
    let dir = TempDir::new("abort");
    let mut store = open(&dir, MIB);
    put_keyed(&mut store, "before", 100);
    let cursor = store.stats().cursor;
    let mut fill = store.begin(b"aborted", b"h", meta(1), Some(5000)).unwrap();
    store.write(&mut fill, &[7; 3000]).unwrap();
    store.abort(fill);
    assert_eq!(store.stats().cursor, cursor, "the room was given back");
    assert_eq!(store.lookup(b"aborted"), None);
    // not at the tip: the room stays a pad
    let mut a = store.begin(b"aborted", b"h", meta(1), Some(5000)).unwrap();
    store.write(&mut a, &[7; 3000]).unwrap();
    put_keyed(&mut store, "after", 100);
    store.abort(a);
    drop(store);
    let mut store = open(&dir, MIB);
    assert_eq!(store.lookup(b"aborted"), None);
    assert!(check_keyed(&mut store, "before", 100));
    assert!(check_keyed(&mut store, "after", 100));
    assert_eq!(store.scan_report().damaged_bytes, 0);
}

#[test]
fn refresh_stores_a_new_head_with_the_same_body() {
    let dir = TempDir::new("refresh");
    let mut store = open(&dir, MIB);
    put_keyed(&mut store, "r", 50_000);
    let old = store.lookup(b"r").unwrap();
    let new_meta = meta(5000);
    let new = store
        .refresh(&old, b"r", b"HTTP/1.1 200 OK\r\nAge: 0\r\n\r\n", new_meta)
        .unwrap();
    assert!(new.seq > old.seq);
    let got = store.lookup(b"r").unwrap();
    assert_eq!(got, new);
    assert_eq!(got.meta, new_meta);
    assert_eq!(
        store.bytes(got.head.clone()),
        b"HTTP/1.1 200 OK\r\nAge: 0\r\n\r\n"
    );
    assert_eq!(store.bytes(got.body.clone()), &body_for(b"r", 50_000)[..]);
    drop(store);
    let mut store = open(&dir, MIB);
    let got = store.lookup(b"r").unwrap();
    assert_eq!((got.seq, got.meta), (new.seq, new_meta));
    assert_eq!(store.bytes(got.body.clone()), &body_for(b"r", 50_000)[..]);
    // a reference to an overwritten record is refused
    let mut stale = got.clone();
    stale.seq += 1;
    assert!(matches!(
        store.refresh(&stale, b"r", b"", meta(1)),
        Err(CacheError::Gone)
    ));
}

#[test]
fn the_index_never_holds_more_than_max_entries() {
    let dir = TempDir::new("max-entries");
    let small = Options {
        max_entries: 10,
        ..opts(MIB)
    };
    let mut store = Store::open(dir.path(), small, 0).unwrap();
    for i in 0..50 {
        put_keyed(&mut store, &format!("k{i}"), 100);
        assert!(store.stats().objects <= 10);
    }
    for i in 40..50 {
        assert!(check_keyed(&mut store, &format!("k{i}"), 100), "k{i}");
    }
    close(store);
    let mut store = Store::open(
        dir.path(),
        Options {
            max_entries: 4,
            ..small
        },
        0,
    )
    .unwrap();
    assert_eq!(store.scan_report().over_limit, 6);
    for i in 46..50 {
        assert!(check_keyed(&mut store, &format!("k{i}"), 100), "k{i}");
    }
}

#[test]
fn write_errors_pause_storing_but_not_lookups() {
    let dir = TempDir::new("write-errors");
    let mut store = open(&dir, MIB);
    put_keyed(&mut store, "a", 100);
    let mut fill = store.begin(b"b", b"", meta(2000), Some(10)).unwrap();
    store.file.writes_left = 0;
    assert!(matches!(
        store.write(&mut fill, b"0123456789"),
        Err(CacheError::Io(..))
    ));
    assert!(store.commit(fill).is_err());
    assert!(matches!(
        store.begin(b"c", b"", meta(2000), Some(1)),
        Err(CacheError::Disabled)
    ));
    store.file.writes_left = u64::MAX;
    assert!(matches!(
        store.begin(b"c", b"", meta(2010), Some(1)),
        Err(CacheError::Disabled)
    ));
    assert!(check_keyed(&mut store, "a", 100));
    assert!(matches!(store.invalidate(b"a"), Err(CacheError::Disabled)));
    assert_eq!(store.lookup(b"a"), None, "removed in memory all the same");
    let stats = store.stats();
    // the write, and the commit's attempt to give the room back
    assert_eq!((stats.write_errors, stats.disabled_until), (2, 2031));
    let mut fill = store.begin(b"c", b"", meta(2031), Some(1)).unwrap();
    store.write(&mut fill, b"x").unwrap();
    store.commit(fill).unwrap();
    assert_eq!(get(&mut store, b"c").unwrap().1, b"x");
}

#[test]
fn a_begin_that_cannot_reserve_or_write_claims_nothing() {
    let dir = TempDir::new("begin-fails");
    let big = Options {
        capacity: 16 * MIB,
        max_object: 3 * MIB,
        max_entries: 1000,
    };
    let mut store = Store::open(dir.path(), big, 1000).unwrap();
    put_keyed(&mut store, "a", 100);
    let before = (store.stats(), fs::read(dir.file()).unwrap());
    // the disk is full: the reservation fails before any byte is written (blocks
    // this process reserved before would be used without asking again)
    store.file.forget_reservations();
    store.file.reserve_errno = Some(28);
    let e = store.begin(b"b", b"h", meta(2000), Some(5000)).unwrap_err();
    assert!(e.is_write_error() && e.is_disk_full(), "{e}");
    assert!(matches!(e, CacheError::Io(..)));
    assert_eq!(fs::read(dir.file()).unwrap(), before.1, "nothing written");
    let after = store.stats();
    assert_eq!((after.cursor, after.filling), (before.0.cursor, 0));
    assert_eq!((after.write_errors, after.disabled_until), (1, 2031));
    assert!(matches!(
        store.begin(b"b", b"h", meta(2020), Some(1)),
        Err(CacheError::Disabled)
    ));
    // the first write of the claim fails: nothing is claimed either
    store.file.reserve_errno = None;
    store.file.writes_left = 0;
    assert!(matches!(
        store.begin(b"b", b"h", meta(2031), Some(5000)),
        Err(CacheError::Io(..))
    ));
    store.file.writes_left = u64::MAX;
    store.clock += 31;
    assert_eq!(store.stats().filling, 0);
    assert_eq!(store.stats().cursor, before.0.cursor);
    assert!(check_keyed(&mut store, "a", 100), "lookups go on");
    // an unknown length: the room that a growing fill adds is reserved too
    let mut fill = store.begin(b"c", b"h", meta(2062), None).unwrap();
    store.write(&mut fill, &[1; 1000]).unwrap();
    store.file.forget_reservations();
    store.file.reserve_errno = Some(122);
    let e = store.write(&mut fill, &vec![2; MIB as usize]).unwrap_err();
    assert!(e.is_disk_full(), "{e}");
    assert!(store.commit(fill).is_err());
    assert_eq!(store.lookup(b"c"), None);
    // a file system without fallocate: storing carries on as before
    store.clock += 31;
    store.file.forget_reservations();
    store.file.reserve_errno = Some(95);
    put_keyed(&mut store, "d", 3000);
    assert!(check_keyed(&mut store, "d", 3000));
    assert_eq!(store.summary().write_errors, 3);
    drop(store);
    let mut store = Store::open(dir.path(), big, 1000).unwrap();
    assert!(check_keyed(&mut store, "a", 100) && check_keyed(&mut store, "d", 3000));
    assert_eq!(store.lookup(b"b"), None);
}

#[test]
fn once_the_ring_went_round_reserving_needs_no_system_call() {
    let dir = TempDir::new("reserve-calls");
    let mut store = open(&dir, 16 * MIB);
    for i in 0..10 {
        put_keyed(&mut store, &format!("a{i}"), 1000);
    }
    // the first lap reserves ahead: one call for many small objects
    assert_eq!(store.file.reserve_calls, 1);
    for i in 0..1000 {
        put_keyed(&mut store, &format!("a{i}"), 20_000);
    }
    assert!(store.stats().evictions > 0, "wrapped");
    let first_laps = store.file.reserve_calls;
    assert!((4..=10).contains(&first_laps), "{first_laps}");
    for i in 0..2000 {
        put_keyed(&mut store, &format!("b{i}"), 1000 + i * 97 % 30_000);
        if i % 3 == 0 {
            // second chances copy objects forward, reserved like any claim
            let _ = store.lookup(format!("b{}", i / 2).as_bytes());
        }
    }
    assert!(store.stats().copied_bytes > 0);
    assert!(
        store.file.reserve_calls - first_laps <= 2,
        "{} calls",
        store.file.reserve_calls - first_laps
    );
}
