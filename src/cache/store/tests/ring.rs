//! The ring: eviction, second chances, pinned records and unfinished fills, and the
//! disk use it keeps to.

use super::*;
use std::collections::HashMap;

#[test]
fn wrap_around_evicts_the_oldest() {
    let dir = TempDir::new("wrap");
    let mut store = open(&dir, 256 * KIB);
    for i in 0..60 {
        put_keyed(&mut store, &format!("k{i}"), 10 * 1024);
    }
    let stats = store.stats();
    assert!(stats.evictions >= 30, "{stats:?}");
    assert!(stats.cursor < 128 * KIB, "wrapped: {stats:?}");
    let present: Vec<bool> = (0..60)
        .map(|i| check_keyed(&mut store, &format!("k{i}"), 10240))
        .collect();
    assert!(!present[0] && !present[30]);
    assert!(present[50..].iter().all(|&p| p), "{present:?}");
    // survivors are a suffix: the ring evicts in write order
    let first = present.iter().position(|&p| p).unwrap();
    assert!(present[first..].iter().all(|&p| p));
}

#[test]
fn second_chance_keeps_a_hot_set_alive() {
    let dir = TempDir::new("second-chance");
    let mut store = open(&dir, MIB);
    let hot: Vec<String> = (0..8).map(|i| format!("hot{i}")).collect();
    for k in &hot {
        put_keyed(&mut store, k, 16 * 1024);
    }
    for i in 0..640 {
        put_keyed(&mut store, &format!("cold{i}"), 16 * 1024);
        if i % 8 == 0 {
            for k in &hot {
                assert!(check_keyed(&mut store, k, 16 * 1024), "{k} lost at {i}");
            }
        }
    }
    let stats = store.stats();
    assert!(
        stats.second_chances > 0 && stats.evictions > 500,
        "{stats:?}"
    );
    assert!(!check_keyed(&mut store, "cold0", 16 * 1024));
}

#[test]
fn a_pinned_record_survives_the_cursor_even_when_replaced() {
    let dir = TempDir::new("pin");
    let mut store = open(&dir, 256 * KIB);
    put_keyed(&mut store, "pinned", 20 * 1024);
    let x = store.lookup(b"pinned").unwrap();
    store.pin(&x);
    store.pin(&x);
    let old_y = put_keyed(&mut store, "replaced", 20 * 1024);
    store.pin(&old_y);
    put(&mut store, b"replaced", b"new", b"new body", Some(8));
    let body_x = body_for(b"pinned", 20 * 1024);
    let body_y = body_for(b"replaced", 20 * 1024);
    for i in 0..80 {
        put_keyed(&mut store, &format!("filler{i}"), 9 * 1024);
        assert_eq!(store.bytes(x.body.clone()), &body_x[..]);
        assert_eq!(store.bytes(old_y.body.clone()), &body_y[..]);
    }
    assert_eq!(store.stats().pinned, 2);
    store.unpin(&x);
    assert_eq!(store.stats().pinned, 2, "pins nest");
    store.unpin(&x);
    store.unpin(&old_y);
    store.unpin(&old_y); // not pinned any more: no effect
    assert_eq!(store.stats().pinned, 0);
    for i in 0..80 {
        put_keyed(&mut store, &format!("more{i}"), 9 * 1024);
    }
    assert_eq!(store.lookup(b"pinned"), None, "evicted once unpinned");
}

/// Regression: a record pinned while the ring reached it is jumped over and stays
/// where it is; if a fill begun before the jump then replaces it, the replacement
/// lies before it in ring order and is overwritten first, and at the next open the
/// old version won again (found by the power-cut model, but a clean restart is
/// enough). The replaced record's header now becomes a pad when it is replaced.
#[test]
fn a_version_jumped_over_while_pinned_never_wins_over_its_replacement() {
    let dir = TempDir::new("jumped");
    let mut store = open(&dir, 256 * KIB);
    let filler = |store: &mut Store, i: &mut u32| {
        *i += 1;
        put_keyed(store, &format!("filler{i}"), 9 * 1024);
    };
    let mut n = 0;
    for _ in 0..10 {
        filler(&mut store, &mut n);
    }
    let old = put(&mut store, b"k", b"v1", &body_for(b"v1", 9000), Some(9000));
    store.pin(&old);
    // Round the ring to a few records before the pinned one, then begin the
    // replacement there, and keep it open while the ring jumps the pinned record.
    while store.stats().cursor > old.off || store.stats().cursor + 40 * KIB < old.off {
        filler(&mut store, &mut n);
    }
    let mut fill = store.begin(b"k", b"v2", meta(1), Some(9000)).unwrap();
    while store.stats().cursor <= old.off {
        filler(&mut store, &mut n);
    }
    store.write(&mut fill, &body_for(b"v2", 9000)).unwrap();
    let new = store.commit(fill).unwrap();
    assert!(
        new.off < old.off,
        "the replacement lies before the jumped record"
    );
    store.unpin(&old);
    // The ring goes round again: past the replacement, not yet to the old record.
    while store.stats().cursor > old.off || store.stats().horizon <= new.end {
        filler(&mut store, &mut n);
    }
    assert!(
        store.stats().horizon <= old.off,
        "the old record is still there"
    );
    close(store);
    let mut store = open(&dir, 256 * KIB);
    assert_eq!(get(&mut store, b"k").map(|(head, _)| head), None);
}

#[test]
fn an_unfinished_fill_survives_laps_of_other_writes() {
    let dir = TempDir::new("slow-fill");
    let mut store = open(&dir, 256 * KIB);
    let body = body_for(b"slow", 30 * 1024);
    let mut fill = store
        .begin(b"slow", b"h", meta(1), Some(body.len() as u64))
        .unwrap();
    store.write(&mut fill, &body[..10 * 1024]).unwrap();
    for i in 0..100 {
        put_keyed(&mut store, &format!("other{i}"), 8 * 1024);
    }
    store.write(&mut fill, &body[10 * 1024..]).unwrap();
    store.commit(fill).unwrap();
    assert_eq!(get(&mut store, b"slow").unwrap().1, body);
    drop(store);
    let mut store = open(&dir, 256 * KIB);
    assert_eq!(get(&mut store, b"slow").unwrap().1, body);
}

#[test]
fn disk_usage_never_exceeds_capacity_after_writing_ten_times_it() {
    let dir = TempDir::new("bounded");
    let capacity = 256 * KIB;
    let mut store = open(&dir, capacity);
    let mut rng = XorShift(7);
    let mut written = 0u64;
    let mut i = 0;
    let mut open_fill: Option<Fill> = None;
    while written < 10 * capacity {
        let len = (rng.next() % (20 * KIB)) as usize;
        let key = format!("k{i}");
        i += 1;
        match rng.next() % 10 {
            0 => {
                let _ = store.lookup(format!("k{}", i / 2).as_bytes());
            }
            1 => {
                if let Some(f) = open_fill.take() {
                    store.abort(f);
                } else {
                    open_fill = Some(store.begin(b"open", b"", meta(1), Some(100)).unwrap());
                }
            }
            _ => {}
        }
        put_keyed(&mut store, &key, len);
        written += len as u64;
        assert_eq!(fs::metadata(dir.file()).unwrap().len(), capacity);
        assert!(store.file.max_write_end <= capacity);
        let s = store.stats();
        assert!(s.cursor <= s.horizon && s.horizon <= capacity, "{s:?}");
        assert_eq!(
            s.live_bytes + s.dead_bytes + s.free_bytes,
            capacity - FILE_HEADER_LEN
        );
        assert!(s.live_bytes <= capacity - FILE_HEADER_LEN);
    }
    if let Some(f) = open_fill {
        store.abort(f);
    }
    assert!(store.stats().bytes_written >= 10 * capacity);
}

/// Random operations against a model: a lookup returns nothing or exactly the
/// latest version stored; an invalidated key stays absent; across reopens and
/// crashes with pinned records too.
#[test]
fn random_operations_never_return_stale_or_corrupt_bytes() {
    let dir = TempDir::new("model");
    let capacity = 256 * KIB;
    let mut store = open(&dir, capacity);
    // key → latest (head, body), None once invalidated
    type Model = HashMap<u32, Option<(Vec<u8>, Vec<u8>)>>;
    let mut model = Model::new();
    let mut rng = XorShift(2024);
    let mut pins: Vec<(ObjectRef, Vec<u8>)> = Vec::new();
    let mut evictions = 0;
    for step in 0..20_000 {
        let k = (rng.next() % 64) as u32;
        let key = format!("http://h/{k}").into_bytes();
        match rng.next() % 20 {
            0..=7 => {
                let len = (rng.next() % 12_000) as usize;
                let mut body = vec![0u8; len];
                rng.fill(&mut body);
                let head = format!("v{step}").into_bytes();
                let known = (rng.next().is_multiple_of(2)).then_some(len as u64);
                match try_put(&mut store, &key, &head, &body, known) {
                    Ok(_) => {
                        model.insert(k, Some((head, body)));
                    }
                    // pins in the way: the previous version stays
                    Err(CacheError::Busy) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            8..=14 => {
                if let Some(obj) = store.lookup(&key) {
                    let want = model.get(&k).cloned().flatten();
                    let got = (
                        store.bytes(obj.head.clone()).to_vec(),
                        store.bytes(obj.body.clone()).to_vec(),
                    );
                    let head = String::from_utf8_lossy(&got.0).into_owned();
                    assert!(
                        Some(&got) == want.as_ref(),
                        "step {step} key {k}: got {head}, want {:?}",
                        want.as_ref()
                            .map(|w| String::from_utf8_lossy(&w.0).into_owned())
                    );
                    if rng.next().is_multiple_of(4) && pins.len() < 3 {
                        store.pin(&obj);
                        pins.push((obj, got.1));
                    }
                }
            }
            15 => {
                let _ = store.invalidate(&key).unwrap();
                model.insert(k, None);
            }
            16 => {
                if let Some(obj) = store.lookup(&key) {
                    let head = format!("refreshed{step}").into_bytes();
                    let new = store.refresh(&obj, &key, &head, meta(step)).unwrap();
                    let body = store.bytes(new.body).to_vec();
                    model.insert(k, Some((head, body)));
                }
            }
            17 => {
                if let Some((obj, _)) = pins.pop() {
                    store.unpin(&obj);
                }
            }
            18 if rng.next().is_multiple_of(4) => {
                // a clean reopen, or a crash with pins held
                if rng.next().is_multiple_of(2) {
                    for (obj, _) in pins.drain(..) {
                        store.unpin(&obj);
                    }
                }
                pins.clear();
                evictions += store.stats().evictions;
                drop(store);
                store = open(&dir, capacity);
            }
            _ => {}
        }
        for (obj, body) in &pins {
            assert_eq!(
                store.bytes(obj.body.clone()),
                &body[..],
                "pinned, step {step}"
            );
        }
        if step % 500 == 0 {
            assert!(store.verify().is_empty());
        }
        assert_eq!(
            store.summary().live_bytes,
            store.live_bytes_by_headers(),
            "step {step}"
        );
    }
    assert!(evictions + store.stats().evictions > 100);
}

/// Storing with checkpoints taken in place (the cache tool, and larder without its sync
/// thread) refused a fill `Busy` after a wrap when the second chances it gave at the
/// start of the area, copied forward, filled the window: only two checkpoints were
/// allowed per fill, and the wrap had taken one. (The crash test showed it now and
/// then, as `begin: Busy` on the first write after reopening.)
#[test]
fn a_lap_of_second_chances_after_a_wrap_still_stores() {
    let dir = TempDir::new("chances-after-wrap");
    let mut store = open(&dir, MIB);
    let hot: Vec<String> = (0..20).map(|i| format!("hot{i}")).collect();
    for k in &hot {
        put_keyed(&mut store, k, 34 * 1024);
    }
    for k in &hot {
        assert!(check_keyed(&mut store, k, 34 * 1024));
    }
    for i in 0..60 {
        put_keyed(&mut store, &format!("new{i}"), 34 * 1024);
    }
    let stats = store.stats();
    assert!(stats.second_chances >= 7, "{stats:?}");
}
