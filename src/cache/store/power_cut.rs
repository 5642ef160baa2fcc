//! The power-cut model: random operations on a store whose every write and sync is
//! journaled, then a cut that keeps, page by page, any prefix of the writes made to
//! that page since the last sync (so any of them may be lost or kept, in any order
//! across pages), then a reopen of what the disk would hold.
//!
//! After every cut it asserts what a power cut may cost (see "Durability" in the store
//! module): nothing damaged is indexed; every object found is the latest version of its
//! key committed before the last sync, or one committed after it, never an older one;
//! and a key invalidated or purged before the last sync stays gone.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::FileExt;

use super::tests::TempDir;
use super::*;
use crate::cache::file::Event;
use crate::cache::format::tests::XorShift;

const PAGE: u64 = 4096;
const KEYS: u64 = 24;

/// What the disk holds for sure (as of the last sync) and the writes since.
struct Disk {
    durable: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
    /// Journal events consumed so far: the clock the history is kept in.
    clock: u64,
    /// The clock at the last sync.
    synced_at: u64,
}

impl Disk {
    fn of(path: &Path) -> Disk {
        Disk {
            durable: fs::read(path).unwrap(),
            pending: Vec::new(),
            clock: 0,
            synced_at: 0,
        }
    }

    /// Takes the store's journal in.
    fn absorb(&mut self, store: &mut Store) {
        let events = store.file.journal.replace(Vec::new()).unwrap_or_default();
        for e in events {
            self.clock += 1;
            match e {
                Event::Write(off, bytes) => self.pending.push((off, bytes)),
                Event::Sync => {
                    for (off, bytes) in self.pending.drain(..) {
                        let at = off as usize;
                        self.durable[at..at + bytes.len()].copy_from_slice(&bytes);
                    }
                    self.synced_at = self.clock;
                }
            }
        }
    }

    /// The disk after a power cut: per page, the writes since the last sync that reached
    /// it are a prefix of those made to it, of a random length.
    fn cut(&self, rng: &mut XorShift) -> Vec<u8> {
        let mut writes_to: BTreeMap<u64, u64> = BTreeMap::new();
        for (off, bytes) in &self.pending {
            for page in off / PAGE..=(off + bytes.len() as u64 - 1) / PAGE {
                *writes_to.entry(page).or_default() += 1;
            }
        }
        // Biased to the ends (all or nothing) as well as anything between.
        let kept: BTreeMap<u64, u64> = writes_to
            .iter()
            .map(|(&page, &n)| {
                let k = match rng.next() % 4 {
                    0 => 0,
                    1 => n,
                    _ => rng.next() % (n + 1),
                };
                (page, k)
            })
            .collect();
        let mut image = self.durable.clone();
        let mut seen: HashMap<u64, u64> = HashMap::new();
        for (off, bytes) in &self.pending {
            let end = off + bytes.len() as u64;
            for page in off / PAGE..=(end - 1) / PAGE {
                let n = seen.entry(page).or_default();
                *n += 1;
                if *n <= kept[&page] {
                    let from = (*off).max(page * PAGE);
                    let to = end.min((page + 1) * PAGE);
                    let src = &bytes[(from - off) as usize..(to - off) as usize];
                    image[from as usize..to as usize].copy_from_slice(src);
                }
            }
        }
        image
    }
}

/// Per key, what was committed and when (journal clock at the end of the call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Stored(u64),
    Removed,
}

#[derive(Default)]
struct History {
    changes: HashMap<u64, Vec<(u64, Change)>>,
    /// Version → (head, body).
    versions: HashMap<u64, (Vec<u8>, Vec<u8>)>,
}

impl History {
    fn note(&mut self, key: u64, at: u64, change: Change) {
        self.changes.entry(key).or_default().push((at, change));
    }

    /// Why `found` may not be what a lookup of `key` returns after a cut when the last
    /// sync was at `synced_at`, or `None` if it may.
    fn wrong(&self, key: u64, found: Option<u64>, synced_at: u64) -> Option<String> {
        let changes = self.changes.get(&key).map_or(&[][..], |c| &c[..]);
        let before = changes.iter().rev().find(|(at, _)| *at <= synced_at);
        let after: Vec<u64> = changes
            .iter()
            .filter(|(at, _)| *at > synced_at)
            .filter_map(|(_, c)| match c {
                Change::Stored(v) => Some(*v),
                Change::Removed => None,
            })
            .collect();
        let v = found?;
        if after.contains(&v) || before.is_some_and(|(_, c)| *c == Change::Stored(v)) {
            return None;
        }
        Some(match before {
            Some((at, Change::Removed)) => {
                format!(
                    "version {v} came back, but the key was removed at {at}, before the last sync"
                )
            }
            Some((at, Change::Stored(latest))) => format!(
                "version {v} came back over version {latest}, stored at {at}, before the last sync"
            ),
            None => format!("version {v} was never stored before the last sync"),
        })
    }
}

fn key_of(k: u64) -> Vec<u8> {
    format!("http://h/{k}").into_bytes()
}

fn body_of(k: u64, v: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift((k << 32 | v) | 1);
    let mut body = vec![0u8; len];
    rng.fill(&mut body);
    body
}

fn version_in(head: &[u8]) -> Option<u64> {
    std::str::from_utf8(head)
        .ok()?
        .strip_prefix('v')?
        .parse()
        .ok()
}

fn store_one(
    store: &mut Store,
    key: &[u8],
    head: &[u8],
    body: &[u8],
    known: bool,
) -> Result<(), CacheError> {
    let len = known.then_some(body.len() as u64);
    let mut fill = store.begin(key, head, Meta::default(), len)?;
    for chunk in body.chunks(3000) {
        if let Err(e) = store.write(&mut fill, chunk) {
            store.abort(fill);
            return Err(e);
        }
    }
    store.commit(fill).map(|_| ())
}

fn open_journaled(dir: &TempDir, capacity: u64, background: bool) -> Store {
    let opts = Options {
        capacity,
        max_object: capacity / 4,
        max_entries: 100_000,
    };
    let mut store = Store::open(dir.path(), opts, 1000).unwrap();
    store.set_background_sync(background);
    store.file.journal = Some(Vec::new());
    store
}

/// One seed of the model: `rounds` cuts, each after up to `ops` random operations.
/// Returns how many objects were found after the cuts (so a run that finds nothing
/// cannot pass unnoticed).
fn run(seed: u64, rounds: u32, ops: u32) -> u64 {
    let dir = TempDir::new(&format!("power-cut-{seed}"));
    let capacity = 192 * 1024;
    let background = seed.is_multiple_of(2);
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut store = open_journaled(&dir, capacity, background);
    let path = dir.path().join(crate::cache::FILE_NAME);
    let mut disk = Disk::of(&path);
    let mut history = History::default();
    let mut next_version = 0u64;
    let mut found = 0;
    for round in 0..rounds {
        let mut job: Option<SyncJob> = None;
        let mut pins: Vec<ObjectRef> = Vec::new();
        let mut open_fill: Option<(Fill, u64, u64, Vec<u8>)> = None;
        for _ in 0..rng.next() % u64::from(ops) {
            let k = rng.next() % KEYS;
            let key = key_of(k);
            match rng.next() % 20 {
                0..=8 => {
                    next_version += 1;
                    let v = next_version;
                    let len = (rng.next() % 9000) as usize;
                    let head = format!("v{v}").into_bytes();
                    let body = body_of(k, v, len);
                    match store_one(&mut store, &key, &head, &body, rng.next().is_multiple_of(2)) {
                        Ok(()) => {
                            disk.absorb(&mut store);
                            history.note(k, disk.clock, Change::Stored(v));
                            history.versions.insert(v, (head, body));
                        }
                        Err(CacheError::Busy) => disk.absorb(&mut store),
                        Err(e) => panic!("seed {seed}: {e}"),
                    }
                }
                9 | 10 => {
                    // an unsafe method's invalidation, or a PURGE (which syncs)
                    let removed = store.invalidate(&key).unwrap();
                    if rng.next().is_multiple_of(2) {
                        store.sync().unwrap();
                    }
                    disk.absorb(&mut store);
                    if removed {
                        history.note(k, disk.clock, Change::Removed);
                    }
                }
                11 => {
                    if let Some(old) = store.lookup(&key) {
                        next_version += 1;
                        let v = next_version;
                        let head = format!("v{v}").into_bytes();
                        let body = store.bytes(old.body.clone()).to_vec();
                        match store.refresh(&old, &key, &head, Meta::default()) {
                            Ok(_) => {
                                disk.absorb(&mut store);
                                history.note(k, disk.clock, Change::Stored(v));
                                history.versions.insert(v, (head, body));
                            }
                            Err(CacheError::Busy) => disk.absorb(&mut store),
                            Err(e) => panic!("seed {seed}: {e}"),
                        }
                    }
                }
                12 => {
                    if let Some(obj) = store.lookup(&key) {
                        if pins.len() < 3 {
                            store.pin(&obj);
                            pins.push(obj);
                        }
                    }
                }
                13 => {
                    if let Some(obj) = pins.pop() {
                        store.unpin(&obj);
                    }
                }
                14 => {
                    // a long fill: begun now, finished some operations later, perhaps
                    // across a checkpoint
                    match open_fill.take() {
                        None => {
                            next_version += 1;
                            let v = next_version;
                            let len = (rng.next() % 6000) as usize;
                            let head = format!("v{v}").into_bytes();
                            match store.begin(&key, &head, Meta::default(), None) {
                                Ok(fill) => open_fill = Some((fill, k, v, head)),
                                Err(CacheError::Busy) => {}
                                Err(e) => panic!("seed {seed}: {e}"),
                            }
                            let _ = len;
                            disk.absorb(&mut store);
                        }
                        Some((mut fill, k, v, head)) => {
                            let len = (v % 7000) as usize;
                            let body = body_of(k, v, len);
                            let mut result = Ok(());
                            for chunk in body.chunks(2500) {
                                result = store.write(&mut fill, chunk);
                                if result.is_err() {
                                    break;
                                }
                            }
                            let result = match result {
                                Ok(()) => store.commit(fill).map(|_| ()),
                                Err(e) => {
                                    store.abort(fill);
                                    Err(e)
                                }
                            };
                            disk.absorb(&mut store);
                            match result {
                                Ok(()) => {
                                    history.note(k, disk.clock, Change::Stored(v));
                                    history.versions.insert(v, (head, body));
                                }
                                Err(CacheError::Busy | CacheError::Superseded) => {}
                                Err(e) => panic!("seed {seed}: {e}"),
                            }
                        }
                    }
                }
                15 | 16 => {
                    // a checkpoint taken off the loop: begun now, run and finished later
                    match job.take() {
                        None if store.sync_due(1000, 5) || rng.next().is_multiple_of(3) => {
                            job = Some(store.begin_sync(1000).unwrap());
                            disk.absorb(&mut store);
                        }
                        None => {}
                        Some(j) => {
                            let result = store.file.run_job(&j);
                            disk.absorb(&mut store);
                            store.end_sync(j.checkpoint(), result).unwrap();
                            disk.absorb(&mut store);
                        }
                    }
                }
                _ => {
                    if let Some(obj) = store.lookup(&key) {
                        let head = store.bytes(obj.head.clone()).to_vec();
                        let body = store.bytes(obj.body.clone()).to_vec();
                        let v = version_in(&head).unwrap();
                        assert_eq!(history.versions[&v], (head, body), "seed {seed}");
                    }
                }
            }
        }
        // The cut: the process and the page cache are gone.
        disk.absorb(&mut store);
        drop((job, pins, open_fill, store));
        let image = disk.cut(&mut rng);
        fs::File::create(&path)
            .and_then(|f| f.write_all_at(&image, 0))
            .unwrap();
        store = open_journaled(&dir, capacity, background);
        let damaged = store.verify();
        assert!(
            damaged.is_empty(),
            "seed {seed} round {round}: damaged records indexed: {damaged:?}"
        );
        let mut now_state: Vec<(u64, Change)> = Vec::new();
        for k in 0..KEYS {
            let key = key_of(k);
            let got = store.lookup(&key).map(|obj| {
                let head = store.bytes(obj.head.clone()).to_vec();
                let body = store.bytes(obj.body.clone()).to_vec();
                let v = version_in(&head).unwrap_or_else(|| {
                    panic!("seed {seed} round {round}: key {k}: a head no version wrote")
                });
                assert_eq!(
                    history.versions.get(&v),
                    Some(&(head, body)),
                    "seed {seed} round {round}: key {k}: version {v}'s bytes"
                );
                v
            });
            if let Some(why) = history.wrong(k, got, disk.synced_at) {
                panic!("seed {seed} round {round}: key {k}: {why}");
            }
            found += u64::from(got.is_some());
            now_state.push((k, got.map_or(Change::Removed, Change::Stored)));
        }
        // What was found is now what is on the disk for sure.
        history.changes.clear();
        for (k, c) in now_state {
            history.note(k, 0, c);
        }
        disk = Disk::of(&path);
    }
    found
}

/// Over many seeds and cut points, with checkpoints taken in place and in the
/// background, a power cut never indexes damage, never brings back an older version
/// and never brings back what was removed before the last sync.
#[test]
fn power_cuts_lose_only_what_came_after_the_last_sync() {
    let mut found = 0;
    let seeds = std::env::var("LARDER_POWER_CUT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let first = std::env::var("LARDER_POWER_CUT_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for seed in first..=seeds {
        found += run(seed, 60, 120);
    }
    assert!(found > 1000, "{found}");
}
