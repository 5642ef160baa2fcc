//! What larder counts while it runs: the figures behind its status page and
//! `/metrics`.
//!
//! Everything lives in one fixed [`Stats`] the loop owns. Recording a finished request
//! is a few additions, a bucket of the last minute, and a look into a small fixed
//! table of hosts: nothing is allocated per request. The pages read a [`Snapshot`]:
//! the counters plus the gauges the loop knows at that moment.

use std::net::SocketAddr;

use crate::access_log::ResultCode;

/// Counters since start-up.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Unix seconds at start-up.
    pub started_unix: u64,
    /// Requests by result code, indexed by `ResultCode as usize`.
    pub results: [u64; ResultCode::ALL.len()],
    /// Bytes written to clients (heads included; for tunnels, what went to the client).
    pub bytes_to_clients: u64,
    /// Of those, the bytes of responses served from the cache: the bandwidth saved.
    pub hit_bytes: u64,
    /// Bytes read from upstream servers (heads included; tunnels too).
    pub bytes_from_upstream: u64,
    /// Client connections accepted.
    pub conns_accepted: u64,
    /// The most client connections open at once.
    pub conns_peak: u64,
    /// Names that did not resolve (each failed lookup a request waited for).
    pub dns_failures: u64,
    /// Requests refused by `--block`, `--block-list` or `--block-ip`.
    pub blocked: u64,
    /// Revalidations larder made on its own behind stale answers
    /// (`stale-while-revalidate`); not counted as requests.
    pub background_revalidations: u64,
    /// CONNECT tunnels established.
    pub tunnels: u64,
    /// Requests refused, by [`Denial`] (indexed by `Denial as usize`).
    pub denied: [u64; Denial::ALL.len()],
    /// Connections closed at accept: their client had `--max-conns-per-client` open.
    pub conns_over_client_limit: u64,
    /// The last minute, second by second.
    pub recent: Recent,
    /// The hosts that took the most bytes.
    pub hosts: TopHosts,
}

impl Stats {
    /// All counters at zero, for a larder started at `started_unix` (unix seconds).
    pub fn new(started_unix: u64) -> Stats {
        Stats {
            started_unix,
            results: [0; ResultCode::ALL.len()],
            bytes_to_clients: 0,
            hit_bytes: 0,
            bytes_from_upstream: 0,
            conns_accepted: 0,
            conns_peak: 0,
            dns_failures: 0,
            blocked: 0,
            background_revalidations: 0,
            tunnels: 0,
            denied: [0; Denial::ALL.len()],
            conns_over_client_limit: 0,
            recent: Recent::default(),
            hosts: TopHosts::default(),
        }
    }

    /// Counts one finished request: its result, the bytes sent to its client, and its
    /// host (`""` when no request could be read).
    pub fn record(&mut self, now_unix: u64, result: ResultCode, bytes: u64, host: &str) {
        if let Some(n) = self.results.get_mut(result as usize) {
            *n += 1;
        }
        let hit = result.is_hit();
        self.bytes_to_clients += bytes;
        if hit {
            self.hit_bytes += bytes;
        }
        self.recent.add(now_unix, hit, bytes);
        if !host.is_empty() {
            self.hosts.add(host, bytes);
        }
    }

    /// Requests of one result code.
    pub fn requests(&self, result: ResultCode) -> u64 {
        self.results.get(result as usize).copied().unwrap_or(0)
    }

    /// All requests counted.
    pub fn requests_total(&self) -> u64 {
        self.results.iter().sum()
    }

    /// Requests answered from the cache ([`ResultCode::is_hit`]).
    pub fn hits_total(&self) -> u64 {
        ResultCode::ALL
            .iter()
            .filter(|r| r.is_hit())
            .map(|&r| self.requests(r))
            .sum()
    }

    /// Notes the number of open client connections after an accept.
    pub fn note_open(&mut self, open: usize) {
        self.conns_peak = self.conns_peak.max(open as u64);
    }
}

/// Why a request was refused (all are `TCP_DENIED` in the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The client is not allowed (`--allow`, `--deny`).
    Client,
    /// The site or address is blocked (`--block`, `--block-list`, `--block-ip`).
    Blocked,
    /// A CONNECT to a port not in `--connect-ports`.
    ConnectPort,
    /// Plain HTTP to a port not in `--http-ports`.
    HttpPort,
    /// A destination a client elsewhere may not reach (loopback, link-local, the
    /// machine's own addresses; `--allow-to`).
    Destination,
}

impl Denial {
    /// Every reason, in the order of their `usize` values.
    pub const ALL: [Denial; 5] = [
        Denial::Client,
        Denial::Blocked,
        Denial::ConnectPort,
        Denial::HttpPort,
        Denial::Destination,
    ];

    /// The reason as `/metrics` labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::Client => "client",
            Denial::Blocked => "blocked",
            Denial::ConnectPort => "connect-port",
            Denial::HttpPort => "http-port",
            Denial::Destination => "destination",
        }
    }
}

impl Stats {
    /// Counts a refused request's reason (its result, `TCP_DENIED`, is counted
    /// with the request).
    pub fn deny(&mut self, why: Denial) {
        if let Some(n) = self.denied.get_mut(why as usize) {
            *n += 1;
        }
    }

    /// Requests refused for `why`.
    pub fn denials(&self, why: Denial) -> u64 {
        self.denied.get(why as usize).copied().unwrap_or(0)
    }
}

/// Requests, hits and bytes over a span of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests finished.
    pub requests: u64,
    /// Of those, the ones answered from the cache.
    pub hits: u64,
    /// Bytes sent to clients, heads included.
    pub bytes: u64,
    /// Of those, the bytes of responses answered from the cache.
    pub hit_bytes: u64,
}

/// One second of the last minute.
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    /// The unix second this bucket counts (a bucket older than a minute is stale).
    at: u64,
    totals: Totals,
}

/// The last 60 seconds, one bucket a second, reused as the clock goes round.
#[derive(Debug, Clone)]
pub struct Recent {
    seconds: [Second; 60],
}

impl Default for Recent {
    fn default() -> Recent {
        Recent {
            seconds: [Second::default(); 60],
        }
    }
}

impl Recent {
    fn add(&mut self, now_unix: u64, hit: bool, bytes: u64) {
        let Some(s) = self.seconds.get_mut((now_unix % 60) as usize) else {
            return;
        };
        if s.at != now_unix {
            *s = Second {
                at: now_unix,
                totals: Totals::default(),
            };
        }
        s.totals.requests += 1;
        s.totals.bytes += bytes;
        if hit {
            s.totals.hits += 1;
            s.totals.hit_bytes += bytes;
        }
    }

    /// What the 60 seconds up to and including `now_unix` counted.
    pub fn last_minute(&self, now_unix: u64) -> Totals {
        let mut sum = Totals::default();
        for s in &self.seconds {
            if s.at <= now_unix && now_unix - s.at < 60 {
                sum.requests += s.totals.requests;
                sum.hits += s.totals.hits;
                sum.bytes += s.totals.bytes;
                sum.hit_bytes += s.totals.hit_bytes;
            }
        }
        sum
    }
}

/// Slots of the host table: more than the ten shown, so that a host climbing into
/// the top ten has been counted for a while.
const HOST_SLOTS: usize = 64;
/// Longest host name kept whole; longer ones are kept cut (and compared cut).
const HOST_NAME: usize = 62;

#[derive(Debug, Clone, Copy)]
struct HostSlot {
    hash: u64,
    bytes: u64,
    requests: u64,
    len: u8,
    name: [u8; HOST_NAME],
}

impl HostSlot {
    const EMPTY: HostSlot = HostSlot {
        hash: 0,
        bytes: 0,
        requests: 0,
        len: 0,
        name: [0; HOST_NAME],
    };

    fn name(&self) -> &[u8] {
        self.name.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// The hosts that took the most bytes, in a fixed table (the Space-Saving algorithm
/// of Metwally et al.): a host not in the table takes the slot of the one with the
/// fewest bytes and inherits its count, so a host's figure may be over-counted by at
/// most what the smallest slot held, never under-counted; the heavy hosts are found
/// exactly once they dominate. Memory is fixed; nothing is allocated.
#[derive(Debug, Clone)]
pub struct TopHosts {
    slots: [HostSlot; HOST_SLOTS],
    used: usize,
    /// The slot the last [`TopHosts::add`] counted in: requests come in runs for one
    /// host (a page and its resources, a client polling), and comparing one name
    /// costs less than hashing it and searching the table.
    last: usize,
}

impl Default for TopHosts {
    fn default() -> TopHosts {
        TopHosts {
            slots: [HostSlot::EMPTY; HOST_SLOTS],
            used: 0,
            last: 0,
        }
    }
}

/// One row of [`TopHosts::top`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBytes {
    /// The target host.
    pub host: String,
    /// Bytes sent to clients for it (may be over-counted; see [`TopHosts`]).
    pub bytes: u64,
    /// Requests for it (counted along with its bytes).
    pub requests: u64,
}

impl TopHosts {
    /// Adds `bytes` (and one request) to `host`.
    #[inline]
    pub fn add(&mut self, host: &str, bytes: u64) {
        let name = host.as_bytes();
        let name = name.get(..HOST_NAME).unwrap_or(name);
        // A name is in at most one slot, so the slot that holds it is the one the
        // search below would find.
        if self.last < self.used {
            if let Some(slot) = self.slots.get_mut(self.last) {
                if slot.name() == name {
                    slot.bytes += bytes;
                    slot.requests += 1;
                    return;
                }
            }
        }
        self.search_and_add(name, bytes);
    }

    /// [`TopHosts::add`] without the look at the last slot: `name` (cut to
    /// [`HOST_NAME`]) is searched for by its hash, and takes a slot if it has none.
    /// Kept out of line, so that the look at the last slot, inlined, stays small.
    #[inline(never)]
    fn search_and_add(&mut self, name: &[u8], bytes: u64) {
        let hash = fnv1a(name);
        let used = self.used.min(HOST_SLOTS);
        if let Some((at, slot)) = self
            .slots
            .iter_mut()
            .take(used)
            .enumerate()
            .find(|(_, s)| s.hash == hash && s.name() == name)
        {
            slot.bytes += bytes;
            slot.requests += 1;
            self.last = at;
            return;
        }
        let (at, inherited) = if used < HOST_SLOTS {
            self.used += 1;
            (used, 0)
        } else {
            let (at, min) = self
                .slots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.bytes)
                .map_or((0, 0), |(i, s)| (i, s.bytes));
            (at, min)
        };
        let Some(slot) = self.slots.get_mut(at) else {
            return;
        };
        self.last = at;
        *slot = HostSlot {
            hash,
            bytes: inherited + bytes,
            requests: 1,
            len: name.len() as u8,
            name: [0; HOST_NAME],
        };
        if let Some(dst) = slot.name.get_mut(..name.len()) {
            dst.copy_from_slice(name);
        }
    }

    /// The `n` hosts with the most bytes, most first (ties by name).
    pub fn top(&self, n: usize) -> Vec<HostBytes> {
        let mut rows: Vec<HostBytes> = self
            .slots
            .iter()
            .take(self.used.min(HOST_SLOTS))
            .map(|s| HostBytes {
                host: String::from_utf8_lossy(s.name()).into_owned(),
                bytes: s.bytes,
                requests: s.requests,
            })
            .collect();
        rows.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.host.cmp(&b.host)));
        rows.truncate(n);
        rows
    }
}

/// FNV-1a, 64 bits: host names are short, and the table compares names anyway.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The cache's figures at one moment, for the pages (all O(1) to gather, except
/// `oldest`, which walks the in-memory index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheFigures {
    /// Objects in the cache.
    pub objects: u64,
    /// Bytes of the records of stored objects.
    pub live_bytes: u64,
    /// The cache file's size.
    pub capacity: u64,
    /// When the oldest stored object was stored (unix seconds).
    pub oldest: Option<u64>,
    /// Failed writes to the cache file since start-up.
    pub write_errors: u64,
    /// Storing is paused after a write error until this time (unix seconds).
    pub paused_until: Option<u64>,
    /// When the cache file was last synced to the disk (unix seconds).
    pub synced_at: Option<u64>,
}

/// Everything the status page and `/metrics` show, gathered when one is asked for.
#[derive(Debug, Clone)]
pub struct Snapshot<'a> {
    /// larder's version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
    /// When the snapshot was taken (unix seconds).
    pub now_unix: u64,
    /// What larder counted since start-up.
    pub stats: &'a Stats,
    /// Client connections open now.
    pub conns_open: u64,
    /// The limit on open client connections.
    pub max_conns: u64,
    /// CONNECT tunnels open now.
    pub tunnels_open: u64,
    /// Upstream connections idle in the pool.
    pub upstreams_idle: u64,
    /// Upstream connections in use.
    pub upstreams_busy: u64,
    /// The addresses larder listens on.
    pub listen: &'a [SocketAddr],
    /// Stopping: no new connections are accepted.
    pub draining: bool,
    /// `None` when running without a cache.
    pub cache: Option<CacheFigures>,
    /// Each parent proxy (`host:port`) and whether it is up; empty without parents.
    pub parents: &'a [(String, bool)],
}

impl Snapshot<'_> {
    /// Seconds since start-up.
    pub fn uptime(&self) -> u64 {
        self.now_unix.saturating_sub(self.stats.started_unix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_hit_bytes_are_counted() {
        let mut s = Stats::new(1000);
        s.record(1000, ResultCode::Miss, 100, "a.example");
        s.record(1001, ResultCode::Hit, 40, "a.example");
        s.record(1001, ResultCode::RefreshUnmodified, 10, "b.example");
        s.record(1002, ResultCode::None, 5, "");
        assert_eq!(s.requests_total(), 4);
        assert_eq!(s.hits_total(), 2);
        assert_eq!(s.requests(ResultCode::Miss), 1);
        assert_eq!((s.bytes_to_clients, s.hit_bytes), (155, 50));
        let top = s.hosts.top(10);
        assert_eq!(top.len(), 2, "a request without a host is not a host");
        assert_eq!(
            top[0],
            HostBytes {
                host: "a.example".into(),
                bytes: 140,
                requests: 2
            }
        );
    }

    #[test]
    fn the_last_minute_forgets_older_seconds() {
        let mut r = Recent::default();
        r.add(100, true, 10);
        r.add(130, false, 20);
        r.add(159, false, 30);
        assert_eq!(
            r.last_minute(159),
            Totals {
                requests: 3,
                hits: 1,
                bytes: 60,
                hit_bytes: 10
            }
        );
        // Second 100 has left the window; 160 reuses its bucket.
        assert_eq!(r.last_minute(160).requests, 2);
        r.add(160, false, 1);
        assert_eq!(r.last_minute(160).requests, 3);
        assert_eq!(r.last_minute(160).hits, 0);
        assert_eq!(r.last_minute(1000), Totals::default());
    }

    #[test]
    fn heavy_hosts_surface_among_many_light_ones() {
        let mut t = TopHosts::default();
        for i in 0..10_000u64 {
            t.add(&format!("light{}.example", i % 500), 1);
            if i % 10 == 0 {
                t.add("heavy.example", 50);
            }
            if i % 20 == 0 {
                t.add("second.example", 40);
            }
        }
        let top = t.top(10);
        assert_eq!(top[0].host, "heavy.example");
        assert_eq!(top[1].host, "second.example");
        // Never under-counted.
        assert!(top[0].bytes >= 50_000 && top[1].bytes >= 20_000, "{top:?}");
        assert!(top.len() == 10);
    }

    #[test]
    fn the_counters_are_one_small_fixed_struct() {
        // ARCHITECTURE.md says "about 8 KiB".
        let size = std::mem::size_of::<Stats>();
        assert!((7 << 10..9 << 10).contains(&size), "{size}");
    }

    /// The look at the last slot changes nothing: a table fed through `add` holds
    /// exactly what one fed through the search alone does, over runs of one host,
    /// alternating hosts, evictions, cut long names and the empty name.
    #[test]
    fn the_last_host_shortcut_agrees_with_the_search() {
        let long = "y".repeat(100);
        let cut = "y".repeat(HOST_NAME);
        let mut rng = crate::http::testing::Rng(0x5eed_f00d_b1a5);
        let (mut fast, mut slow) = (TopHosts::default(), TopHosts::default());
        let mut host = String::new();
        for i in 0..20_000 {
            // Runs of one host, short and long; many hosts, so slots are taken over.
            if i == 0 || rng.one_in(3) {
                host = match rng.below(10) {
                    0 => long.clone(),
                    1 => cut.clone(),
                    2 => String::new(),
                    3 => "heavy.example".into(),
                    _ => format!("h{}.example", rng.below(150)),
                };
            }
            let bytes = rng.below(5000) as u64;
            fast.add(&host, bytes);
            let name = host.as_bytes();
            slow.search_and_add(name.get(..HOST_NAME).unwrap_or(name), bytes);
            if i % 997 == 0 {
                assert_eq!(fast.top(HOST_SLOTS), slow.top(HOST_SLOTS), "after {i}");
            }
        }
        assert_eq!(fast.used, slow.used);
        for (a, b) in fast.slots.iter().zip(&slow.slots) {
            assert_eq!(
                (a.hash, a.bytes, a.requests, a.name()),
                (b.hash, b.bytes, b.requests, b.name())
            );
        }
        // An empty table has no last slot, not even for the empty name.
        let mut t = TopHosts::default();
        t.add("", 5);
        assert_eq!((t.used, t.top(1)[0].bytes, t.top(1)[0].requests), (1, 5, 1));
    }

    #[test]
    fn long_host_names_are_kept_cut_and_still_match() {
        let mut t = TopHosts::default();
        let long = "x".repeat(200);
        t.add(&long, 1);
        t.add(&long, 2);
        let top = t.top(1);
        assert_eq!(top[0].host.len(), HOST_NAME);
        assert_eq!((top[0].bytes, top[0].requests), (3, 2));
    }
}
