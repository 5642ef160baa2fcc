//! The cache store's figures, without a benchmarking crate: `cargo bench --bench cache`.
//!
//! - start-up: open + scan of a 1 GiB file holding ~100k objects;
//! - index memory per object, counted by a counting global allocator, at 100k objects
//!   and at the worst moment (just after the table has grown) while filling;
//! - append throughput through the ring, 1 MiB and 16 KiB objects, with checkpoints
//!   taken in place when a window fills, and as larder takes them (a sync thread,
//!   every 5 s or when half a window is used, a write finding the window full refused);
//! - eviction quality: byte hit ratio of the store against an exact LRU of the same
//!   capacity on one Zipf (α = 0.8) trace whose distinct objects total 10 × the capacity.
//!
//! Files go to `$LARDER_BENCH_DIR` when it is set (to measure a disk's file system),
//! else to /dev/shm when it exists (tmpfs: memory speed, no disk wear), else to the
//! system temp directory, and are removed at the end. The whole run takes well under a
//! minute.
//!
//! `cargo bench --bench cache -- --check` also compares each figure with the target
//! docs/PERFORMANCE.md states for it, prints a line per target (name, measured, target,
//! PASS/FAIL) and exits non-zero if any is missed. It is meant to be run by hand on a
//! quiet machine, not in CI: the timed figures depend on the machine.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use larder::cache::{Meta, Options, Store};

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the counter is only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A scratch directory for one benchmark's cache file, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let shm = Path::new("/dev/shm");
        let base = if let Some(dir) = std::env::var_os("LARDER_BENCH_DIR") {
            PathBuf::from(dir)
        } else if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("larder-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create bench dir");
        Scratch(dir)
    }

    fn open(&self, opts: Options) -> Store {
        Store::open(&self.0, opts, 1).expect("open bench cache")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";

/// Stores `key` with a body of `len` bytes taken from `data`, in 16 KiB writes as a
/// socket would deliver it. Returns false if the store declined it.
fn put(store: &mut Store, key: &[u8], len: u64, data: &[u8], stored: u64) -> bool {
    let meta = Meta {
        requested: stored,
        stored,
        expires: 0,
    };
    let Ok(mut fill) = store.begin(key, HEAD, meta, Some(len)) else {
        return false;
    };
    let mut left = len as usize;
    while left > 0 {
        let n = left.min(16 * KIB as usize).min(data.len());
        if store.write(&mut fill, &data[..n]).is_err() {
            store.abort(fill);
            return false;
        }
        left -= n;
    }
    store.commit(fill).is_ok()
}

/// Prints one figure.
fn row(what: &str, figure: String) {
    println!("{what:<60} {figure}");
}

fn main() -> ExitCode {
    let check = match parse_args(std::env::args().skip(1)) {
        Some(check) => check,
        None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
    };
    let data = vec![0x5au8; MIB as usize];
    let (startup_ms, index_at_100k) = startup_and_index_memory(&data);
    let index_worst = index_memory_worst_case(&data);
    let append_1m = append_throughput(&data, MIB, 4 * GIB, Options::for_capacity(GIB), "");
    let append_16k = append_throughput(&data, 16 * KIB, 2 * GIB, Options::for_capacity(GIB), "");
    append_with_syncs(&data, MIB, 4 * GIB, 5);
    append_with_syncs(&data, 16 * KIB, 2 * GIB, 5);
    let eviction = eviction_quality(&data);
    if !check {
        return ExitCode::SUCCESS;
    }

    // The targets of docs/PERFORMANCE.md ("The cache file"); change them together.
    let checks = [
        Check::new(
            "start-up: open + scan, 1 GiB, 100k objects",
            startup_ms,
            "ms",
            Bound::Below(1000.0),
        ),
        Check::new(
            "index memory at 100k objects",
            index_at_100k,
            "B/object",
            Bound::AtMost(64.0),
        ),
        Check::new(
            "index memory, worst while filling",
            index_worst,
            "B/object",
            Bound::AtMost(64.0),
        ),
        Check::new(
            "append: 1 MiB objects",
            append_1m,
            "GB/s",
            Bound::AtLeast(1.0),
        ),
        Check::new(
            "append: 16 KiB objects",
            append_16k,
            "GB/s",
            Bound::AtLeast(1.0),
        ),
        Check::new(
            "eviction: byte hit ratio, store / exact LRU",
            eviction,
            "x LRU",
            Bound::AtLeast(0.9),
        ),
    ];
    println!();
    for c in &checks {
        println!("{c}");
    }
    let missed = checks.iter().filter(|c| !c.met()).count();
    println!(
        "check: {} of {} targets met",
        checks.len() - missed,
        checks.len()
    );
    if missed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

const USAGE: &str = "usage: cargo bench --bench cache [-- --check]
  --check   compare every figure with its target (docs/PERFORMANCE.md) and exit
            non-zero when one is missed";

/// `Some(true)` with `--check`, `None` for help. cargo adds `--bench` to a bench's
/// arguments, and `cargo bench -- ARGS` hands ARGS to every bench target, so what was
/// meant for another bench is ignored with a note rather than refused.
fn parse_args(args: impl Iterator<Item = String>) -> Option<bool> {
    let mut check = false;
    for arg in args {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => return None,
            "--bench" => {}
            other => eprintln!("cache bench: ignoring argument {other:?} (see --help)"),
        }
    }
    Some(check)
}

/// How a figure must compare with its target.
#[derive(Clone, Copy)]
enum Bound {
    Below(f64),
    AtMost(f64),
    AtLeast(f64),
}

/// One target of `--check`: a measured figure and the bound it must meet.
struct Check {
    name: &'static str,
    measured: f64,
    unit: &'static str,
    bound: Bound,
}

impl Check {
    fn new(name: &'static str, measured: f64, unit: &'static str, bound: Bound) -> Check {
        Check {
            name,
            measured,
            unit,
            bound,
        }
    }

    /// False for a figure that could not be measured (NaN) too.
    fn met(&self) -> bool {
        match self.bound {
            Bound::Below(t) => self.measured < t,
            Bound::AtMost(t) => self.measured <= t,
            Bound::AtLeast(t) => self.measured >= t,
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (op, target) = match self.bound {
            Bound::Below(t) => ("<", t),
            Bound::AtMost(t) => ("<=", t),
            Bound::AtLeast(t) => (">=", t),
        };
        // Enough decimals to weigh a figure against its target: 100.8 ms, 57.1 B, 1.017.
        let decimals = if self.measured.abs() < 10.0 { 3 } else { 1 };
        let measured = format!("{:.decimals$} {}", self.measured, self.unit);
        let target = format!("{op} {target} {}", self.unit);
        let verdict = if self.met() { "PASS" } else { "FAIL" };
        write!(
            f,
            "check: {:<45} measured {measured:<16} target {target:<16} {verdict}",
            self.name
        )
    }
}

/// A 1 GiB file with ~100k objects of ~10 KiB: time to open and scan it, and the heap it
/// holds afterwards per object. Returns (milliseconds, bytes per object).
fn startup_and_index_memory(data: &[u8]) -> (f64, f64) {
    let scratch = Scratch::new("startup");
    let opts = Options::for_capacity(GIB);
    {
        let mut store = scratch.open(opts);
        for i in 0..100_000u64 {
            let key = format!("http://startup.test/{i}");
            assert!(put(&mut store, key.as_bytes(), 10_500, data, i), "fill");
        }
        // As larder leaves it when it stops.
        store.sync_for_close().expect("sync");
    }
    let rss_before = rss_kib();
    let before = live();
    let start = Instant::now();
    let store = scratch.open(opts);
    let secs = start.elapsed().as_secs_f64();
    let heap = live() - before;
    let rss_after = rss_kib();
    let objects = store.scan_report().objects;
    let per_object = heap as f64 / objects as f64;
    row(
        &format!("start-up: open + scan, 1 GiB file, {objects} objects"),
        format!("{:.1} ms", secs * 1e3),
    );
    row(
        &format!("index memory at {objects} objects"),
        format!(
            "{per_object:.1} B/object (store's estimate {:.1})",
            store.stats().index_bytes as f64 / objects as f64
        ),
    );
    // The scan reads a header on nearly every page of the map; none of those pages may
    // stay counted as the process's own memory afterwards.
    row(
        "RSS added by opening it (heap + mapped pages)",
        format!(
            "{:.1} MiB",
            rss_after.saturating_sub(rss_before) as f64 / 1024.0
        ),
    );
    (secs * 1e3, per_object)
}

/// This process's resident set size in KiB (`VmRSS`), 0 if it cannot be read.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Fills a store one object at a time and reports the largest heap per object seen after
/// 1024 objects: the moment just after the table grew is the worst case. Returns it.
fn index_memory_worst_case(data: &[u8]) -> f64 {
    let scratch = Scratch::new("memory");
    let opts = Options {
        max_entries: 1 << 20,
        ..Options::for_capacity(64 * MIB)
    };
    let mut store = scratch.open(opts);
    // The store's scratch buffer and first bookkeeping are not per-object costs.
    assert!(put(&mut store, b"http://memory.test/warm-up", 100, data, 0));
    let base = live();
    let mut worst = (0.0, 0);
    for i in 1..200_000u64 {
        let key = format!("http://memory.test/{i}");
        assert!(put(&mut store, key.as_bytes(), 100, data, i), "fill");
        let n = i + 1;
        let per = live().saturating_sub(base) as f64 / n as f64;
        if n >= 1024 && per > worst.0 {
            worst = (per, n);
        }
    }
    row(
        "index memory, worst while filling to 200k objects",
        format!("{:.1} B/object (at {} objects)", worst.0, worst.1),
    );
    worst.0
}

/// Writes `total` bytes of `size`-byte objects through a ring of `opts.capacity` bytes
/// (several laps, so eviction runs), timed as a whole and after the first lap. `opts`
/// and `note` (appended to the row's name) let a variant of the store be measured
/// beside the default one. Returns the whole run's GB/s.
fn append_throughput(data: &[u8], size: u64, total: u64, opts: Options, note: &str) -> f64 {
    let scratch = Scratch::new("append");
    let ring = opts.capacity;
    let mut store = scratch.open(opts);
    let count = total / size;
    let first_lap = ring / size;
    let start = Instant::now();
    let mut lap_end = start;
    for i in 0..count {
        let key = format!("http://append.test/{i}");
        assert!(put(&mut store, key.as_bytes(), size, data, i), "append");
        if i + 1 == first_lap {
            lap_end = Instant::now();
        }
    }
    let all = start.elapsed().as_secs_f64();
    let later = lap_end.elapsed().as_secs_f64();
    let gb_s = |bytes: u64, secs: f64| bytes as f64 / secs / 1e9;
    let whole = gb_s(count * size, all);
    row(
        &format!(
            "append: {} KiB objects, {} GiB through a {} GiB ring{note}",
            size / KIB,
            total / GIB,
            ring / GIB
        ),
        format!(
            "{whole:.2} GB/s ({:.2} GB/s after the first lap)",
            gb_s(count.saturating_sub(first_lap) * size, later)
        ),
    );
    whole
}

/// The store and an exact LRU, each of CAPACITY bytes, on one Zipf(0.8) trace over
/// objects totalling 10 × CAPACITY; prints both byte hit ratios and their ratio, and
/// returns the ratio.
fn eviction_quality(data: &[u8]) -> f64 {
    const CAPACITY: u64 = 32 * MIB;
    const REQUESTS: usize = 600_000;
    let sizes = object_sizes(10 * CAPACITY);
    let keys: Vec<String> = (0..sizes.len())
        .map(|i| format!("http://zipf.test/{i}"))
        .collect();
    let mut zipf = Zipf::new(sizes.len(), 0.8, 0x1a2b_3c4d);
    let trace: Vec<usize> = (0..REQUESTS).map(|_| zipf.next()).collect();

    let scratch = Scratch::new("zipf");
    let mut store = scratch.open(Options::for_capacity(CAPACITY));
    let mut lru = Lru::new(CAPACITY);
    let (mut requested, mut store_hit, mut lru_hit) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    for (t, &k) in trace.iter().enumerate() {
        let size = sizes[k];
        requested += size;
        if lru.access(k as u64, size) {
            lru_hit += size;
        }
        if store.lookup(keys[k].as_bytes()).is_some() {
            store_hit += size;
        } else {
            put(&mut store, keys[k].as_bytes(), size, data, t as u64);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (s, l) = (
        store_hit as f64 / requested as f64,
        lru_hit as f64 / requested as f64,
    );
    let stats = store.stats();
    row(
        &format!(
            "eviction: Zipf 0.8, {} MiB of objects, {} MiB cache",
            sizes.iter().sum::<u64>() / MIB,
            CAPACITY / MIB
        ),
        format!("byte hit ratio: store {s:.3}, exact LRU {l:.3}"),
    );
    row("eviction: store / exact LRU", format!("{:.3}", s / l));
    row(
        &format!(
            "  ({} objects, {}k requests, {secs:.1} s)",
            sizes.len(),
            REQUESTS / 1000
        ),
        format!(
            "{} second chances, {} MiB copied forward",
            stats.second_chances,
            stats.copied_bytes / MIB
        ),
    );
    s / l
}

/// Object sizes, log-uniform between 512 B and 32 KiB, until they total `total` bytes.
fn object_sizes(total: u64) -> Vec<u64> {
    let mut rng = Rng::new(99);
    let mut sizes = Vec::new();
    let mut sum = 0;
    while sum < total {
        let size = (512.0 * 64f64.powf(rng.unit())) as u64;
        sizes.push(size);
        sum += size;
    }
    sizes
}

/// xorshift64*: deterministic, so every run (and the LRU and the store) sees one trace.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Ranks 0..n drawn with P(rank k) ∝ 1 / (k + 1)^alpha, by inverting the CDF.
struct Zipf {
    cdf: Vec<f64>,
    rng: Rng,
}

impl Zipf {
    fn new(n: usize, alpha: f64, seed: u64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 0..n {
            sum += 1.0 / ((k + 1) as f64).powf(alpha);
            cdf.push(sum);
        }
        for p in &mut cdf {
            *p /= sum;
        }
        Zipf {
            cdf,
            rng: Rng::new(seed),
        }
    }

    fn next(&mut self) -> usize {
        let u = self.rng.unit();
        self.cdf.partition_point(|&p| p < u).min(self.cdf.len() - 1)
    }
}

/// An exact least-recently-used cache of `capacity` bytes (object sizes only, no
/// overhead, which favours it): the yardstick for the store's eviction.
struct Lru {
    capacity: u64,
    used: u64,
    clock: u64,
    /// key → (size, last use).
    entries: HashMap<u64, (u64, u64)>,
    /// last use → key, oldest first.
    order: BTreeMap<u64, u64>,
}

impl Lru {
    fn new(capacity: u64) -> Lru {
        Lru {
            capacity,
            used: 0,
            clock: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// Requests `key` of `size` bytes: true on a hit; on a miss it is stored (if it fits
    /// at all), evicting the least recently used objects.
    fn access(&mut self, key: u64, size: u64) -> bool {
        self.clock += 1;
        if let Some(entry) = self.entries.get_mut(&key) {
            self.order.remove(&entry.1);
            entry.1 = self.clock;
            self.order.insert(self.clock, key);
            return true;
        }
        if size > self.capacity {
            return false;
        }
        while self.used + size > self.capacity {
            let (_, oldest) = self.order.pop_first().expect("used > 0 means an entry");
            let (freed, _) = self
                .entries
                .remove(&oldest)
                .expect("order and entries agree");
            self.used -= freed;
        }
        self.used += size;
        self.entries.insert(key, (size, self.clock));
        self.order.insert(self.clock, key);
        false
    }
}

/// Appends as larder stores: checkpoints taken off the writing thread (the store in
/// background mode, a `Syncer` running the jobs), one due every `every` seconds of
/// writing or whenever half the window is used. A write that finds the window full
/// (larder would relay that response without storing it) waits here for the next
/// checkpoint and is tried again: the time spent so is reported as stalled.
fn append_with_syncs(data: &[u8], size: u64, total: u64, every: u64) {
    use larder::cache::syncer::Syncer;
    let scratch = Scratch::new("append-sync");
    let mut store = scratch.open(Options::for_capacity(GIB));
    let mut syncer = Syncer::spawn().expect("sync thread");
    store.sync_now().expect("first checkpoint");
    store.set_background_sync(true);
    let count = total / size;
    let start = Instant::now();
    let (mut stalled, mut refused, mut syncs) = (0.0f64, 0u64, 0u64);
    let tick = |store: &mut Store, syncer: &mut Syncer, syncs: &mut u64| {
        let now = start.elapsed().as_secs();
        if let Some((checkpoint, result)) = syncer.finished() {
            store.end_sync(checkpoint, result).expect("sync");
            *syncs += 1;
        }
        if syncer.idle() && store.sync_due(now, every) {
            let job = store.begin_sync(now).expect("checkpoint");
            assert!(syncer.start(job), "sync thread gone");
        }
    };
    for i in 0..count {
        tick(&mut store, &mut syncer, &mut syncs);
        let key = format!("http://append.test/{i}");
        if put(&mut store, key.as_bytes(), size, data, i) {
            continue;
        }
        refused += 1;
        let wait = Instant::now();
        while !put(&mut store, key.as_bytes(), size, data, i) {
            std::thread::sleep(std::time::Duration::from_micros(50));
            tick(&mut store, &mut syncer, &mut syncs);
        }
        stalled += wait.elapsed().as_secs_f64();
    }
    let secs = start.elapsed().as_secs_f64();
    row(
        &format!(
            "append, syncing: {} KiB objects, {} GiB, a sync every {every} s",
            size / KIB,
            total / GIB
        ),
        format!(
            "{:.2} GB/s, {syncs} syncs, {refused} writes waited {:.1} ms in all",
            (count * size) as f64 / secs / 1e9,
            stalled * 1e3
        ),
    );
}
