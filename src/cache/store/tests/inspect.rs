//! Stats, the summary, and reading beside a running larder.

use super::*;

/// The live bytes kept as the index changes equal the sum over the records' headers
/// after every kind of change: fills of known and unknown length, replacements,
/// refreshes, invalidations, ring evictions and copies forward, evictions for a full
/// index, reopens (the scan, and a smaller entry limit), objects dropped for a bad
/// CRC, and write errors.
#[test]
fn live_bytes_kept_incrementally_equal_the_count_by_headers() {
    let dir = TempDir::new("live-bytes");
    let capacity = 256 * KIB;
    let limited = |max_entries| Options {
        max_entries,
        ..opts(capacity)
    };
    let mut store = Store::open(dir.path(), limited(40), 1000).unwrap();
    let mut rng = XorShift(4242);
    let mut pins: Vec<ObjectRef> = Vec::new();
    let (mut dropped, mut evictions, mut second_chances) = (0, 0, 0);
    for step in 0..6000u64 {
        let key = format!("http://h/{}", rng.next() % 80).into_bytes();
        match rng.next() % 16 {
            0..=6 => {
                let len = (rng.next() % 9000) as usize;
                let known = rng.next().is_multiple_of(2).then_some(len as u64);
                let body = body_for(&key, len);
                match try_put(&mut store, &key, b"h", &body, known) {
                    Ok(_) | Err(CacheError::Busy) => {}
                    Err(e) => panic!("step {step}: {e}"),
                }
            }
            7..=9 => {
                if let Some(obj) = store.lookup(&key) {
                    if rng.next().is_multiple_of(3) && pins.len() < 3 {
                        store.pin(&obj);
                        pins.push(obj);
                    }
                }
            }
            10 => {
                let _ = store.invalidate(&key).unwrap();
            }
            11 => {
                if let Some(obj) = store.lookup(&key) {
                    match store.refresh(&obj, &key, b"refreshed", meta(step)) {
                        Ok(_) | Err(CacheError::Busy) => {}
                        Err(e) => panic!("step {step}: {e}"),
                    }
                }
            }
            12 => {
                if let Some(obj) = pins.pop() {
                    store.unpin(&obj);
                }
            }
            13 if rng.next().is_multiple_of(8) => {
                // reopen with another entry limit, a body byte of an object flipped
                // meanwhile (dropped at its first lookup)
                pins.clear();
                let victim = store.objects().map(|o| (o.key.to_vec(), o.off)).next();
                let body_at = victim.as_ref().and_then(|(k, off)| {
                    store
                        .lookup(k)
                        .filter(|o| o.body.end > o.body.start && o.off == *off)
                });
                let s = store.stats();
                evictions += s.evictions;
                second_chances += s.second_chances;
                drop(store);
                if let Some(obj) = &body_at {
                    flip(&dir, obj.body.start, 1);
                }
                let max = 20 + (rng.next() % 40) as usize;
                store = Store::open(dir.path(), limited(max), 1000).unwrap();
                assert_eq!(store.summary().live_bytes, store.live_bytes_by_headers());
                if let Some((k, _)) = victim.filter(|_| body_at.is_some()) {
                    if store.lookup(&k).is_none() {
                        dropped += store.summary().dropped_corrupt;
                    }
                }
            }
            14 if rng.next().is_multiple_of(50) => {
                // a write error mid-fill: storing pauses, the index stays right
                store.file.writes_left = rng.next() % 4;
                let _ = try_put(&mut store, &key, b"h", &body_for(&key, 5000), None);
                store.file.writes_left = u64::MAX;
                store.clock += 31;
            }
            _ => {}
        }
        assert_eq!(
            store.summary().live_bytes,
            store.live_bytes_by_headers(),
            "step {step}"
        );
        assert_eq!(store.stats().live_bytes, store.summary().live_bytes);
    }
    let s = store.stats();
    evictions += s.evictions;
    second_chances += s.second_chances;
    assert!(
        evictions > 500 && second_chances > 50,
        "{evictions} {second_chances}"
    );
    assert!(dropped > 0, "no object was dropped for its CRC");
}

#[test]
fn the_summary_is_the_stats_without_walking_anything() {
    let dir = TempDir::new("summary");
    let mut store = open(&dir, MIB);
    assert_eq!(store.oldest_stored(), None);
    for (i, stored) in [(0, 1500), (1, 1200), (2, 1900)] {
        let key = format!("k{i}");
        let mut fill = store
            .begin(key.as_bytes(), b"h", Meta { stored, ..meta(0) }, Some(3))
            .unwrap();
        store.write(&mut fill, b"abc").unwrap();
        store.commit(fill).unwrap();
    }
    let (sum, stats) = (store.summary(), store.stats());
    assert_eq!(
        (sum.objects, sum.live_bytes, sum.dead_bytes, sum.free_bytes),
        (
            stats.objects,
            stats.live_bytes,
            stats.dead_bytes,
            stats.free_bytes
        )
    );
    assert_eq!((sum.objects, sum.live_bytes), (3, 3 * 128));
    assert_eq!(sum.capacity, MIB);
    assert_eq!((sum.write_errors, sum.paused_until), (0, 0));
    assert_eq!(store.oldest_stored(), Some(1200));
    assert_eq!(store.oldest_stored(), stats.oldest);
    assert!(!store.paused(1900));
    // a write error pauses storing for 30 s from the latest time the store saw
    store.file.writes_left = 0;
    let e = store.begin(b"k3", b"h", meta(1999), Some(3)).unwrap_err();
    assert!(e.is_write_error() && !e.is_disk_full(), "{e}");
    store.file.writes_left = u64::MAX;
    let sum = store.summary();
    assert_eq!((sum.write_errors, sum.paused_until), (1, 2030));
    assert!(store.paused(2000) && store.paused(2029) && !store.paused(2030));
    assert_eq!((store.pause_left(2010), store.pause_left(3000)), (20, 0));
    assert!(matches!(
        store.begin(b"k3", b"h", meta(2010), Some(3)),
        Err(CacheError::Disabled)
    ));
    store
        .begin(b"k3", b"h", meta(2030), Some(0))
        .map(|f| store.abort(f))
        .unwrap();
    assert_eq!(store.summary().paused_until, 0);
    assert!(store.invalidate(b"k1").unwrap());
    assert_eq!(store.oldest_stored(), Some(1500));
    assert_eq!(store.summary().live_bytes, 2 * 128);
}

fn open_ro(dir: &TempDir) -> Store {
    Store::open_read_only(&dir.file(), Options::for_capacity(0), 1000).unwrap()
}

#[test]
fn a_read_only_open_works_beside_the_writer_and_never_writes() {
    let dir = TempDir::new("read-only");
    let missing = dir.path().join("nothing");
    assert!(matches!(
        Store::open_read_only(&missing, opts(MIB), 0),
        Err(CacheError::Missing(_))
    ));
    assert!(!missing.exists());
    let mut writer = open(&dir, MIB);
    for i in 0..5 {
        put_keyed(&mut writer, &format!("k{i}"), 1000 * i);
    }
    let bytes = fs::read(dir.file()).unwrap();
    let mut reader = open_ro(&dir);
    assert!(reader.is_read_only() && !writer.is_read_only());
    assert_eq!(reader.summary().objects, 5);
    assert_eq!(reader.summary().live_bytes, writer.summary().live_bytes);
    for i in 0..5 {
        let key = format!("k{i}");
        let obj = reader.read_object(key.as_bytes()).unwrap();
        assert_eq!(obj.body, body_for(key.as_bytes(), 1000 * i));
        assert_eq!(obj.head, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(obj.body_len, 1000 * i as u64);
        assert_eq!(obj.meta, meta(1000));
        assert_eq!(reader.lookup(key.as_bytes()), None, "no map ranges");
    }
    assert_eq!(reader.read_object(b"absent"), None);
    let mut listed: Vec<Vec<u8>> = reader.checked_objects().map(|o| o.key).collect();
    listed.sort();
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|k| k.starts_with(b"k")));
    assert!(reader.checked_objects().all(|o| o.body.is_empty()));
    assert_eq!(
        reader.check(),
        VerifyReport {
            checked: 5,
            ..Default::default()
        }
    );
    // every write is refused before anything is touched
    assert!(matches!(
        reader.begin(b"x", b"", meta(1), Some(1)),
        Err(CacheError::ReadOnly)
    ));
    assert!(matches!(
        reader.invalidate(b"k1"),
        Err(CacheError::ReadOnly)
    ));
    let obj = writer.lookup(b"k2").unwrap();
    assert!(matches!(
        reader.refresh(&obj, b"k2", b"", meta(1)),
        Err(CacheError::ReadOnly)
    ));
    assert_eq!(reader.summary().objects, 5, "k1 is still there");
    reader.sync().unwrap();
    assert_eq!(fs::read(dir.file()).unwrap(), bytes, "not a byte written");
    assert_eq!(reader.stats().bytes_written, 0);
}

/// What a running larder is writing or overwriting is never listed or read.
#[test]
fn a_read_only_open_skips_records_being_written_or_overwritten() {
    let dir = TempDir::new("read-only-races");
    let mut writer = open(&dir, 256 * KIB);
    put_keyed(&mut writer, "whole", 5000);
    let torn = put_keyed(&mut writer, "torn", 5000);
    // a fill begun (key and head written, some body) but not committed
    let mut fill = writer.begin(b"filling", b"h", meta(1), Some(9000)).unwrap();
    writer.write(&mut fill, &[7; 4000]).unwrap();
    let reader = open_ro(&dir);
    assert_eq!(reader.summary().objects, 2, "the fill is a pad");
    assert_eq!(reader.read_object(b"filling"), None);
    // its payload is overwritten under the reader (the header stays valid, as it
    // does until the ring's writes reach it)
    damage(&dir, torn.body.start + 100, &[0xee; 64]);
    assert_eq!(reader.read_object(b"torn"), None);
    let listed: Vec<Vec<u8>> = reader.checked_objects().map(|o| o.key).collect();
    assert_eq!(listed, [b"whole".to_vec()]);
    // the file still holds the record as the scan found it: damage
    let report = reader.check();
    assert_eq!((report.checked, report.changed), (2, 0));
    assert!(matches!(report.bad[..], [(off, VerifyError::Payload { .. })] if off == torn.off));
    // the writer commits the fill and laps the ring: what the reader's scan found
    // is overwritten, and no longer counts as damage
    writer.write(&mut fill, &[7; 5000]).unwrap();
    writer.commit(fill).unwrap();
    for i in 0..60 {
        put_keyed(&mut writer, &format!("next{i}"), 9000);
    }
    assert_eq!(writer.lookup(b"whole"), None, "evicted");
    assert_eq!(reader.read_object(b"whole"), None);
    assert_eq!(reader.read_object(b"torn"), None);
    assert_eq!(reader.checked_objects().count(), 0);
    let report = reader.check();
    assert_eq!(
        (report.checked, report.changed, report.bad.len()),
        (2, 2, 0)
    );
    // a new read-only open sees the writer's objects
    let reader = open_ro(&dir);
    assert_eq!(reader.summary().objects, writer.summary().objects);
    for o in reader.checked_objects() {
        let key = String::from_utf8(o.key.clone()).unwrap();
        let full = reader.read_object(&o.key).unwrap();
        assert_eq!(full.body, body_for(key.as_bytes(), 9000), "{key}");
    }
}
