//! The cache policy: what larder does with a request and its response given what
//! the store holds. It looks a request up, plans a hit, revalidates a stale entry,
//! stores a response while it is relayed, invalidates after unsafe methods, and
//! collapses concurrent misses ([`flights`]).
//!
//! The policy knows nothing of sockets or connections: its functions take what they
//! need of a request as plain values and return what the connection must do (a head
//! to queue, a Cache-Status line to append); the connection code (its `cache`
//! adapter) does the writing.
//!
//! # One request's way through the cache
//! ```text
//!  request head ──► consult ──┬─ fresh entry ─────────────► Serve (from the map)
//!                             ├─ only-if-cached, nothing ──► 504
//!                             ├─ stale, stale-while-revalidate ──► Serve (stale)
//!                             │      └─ one revalidation per key, in the background
//!                             ├─ stale entry ──► Forward with validators
//!                             │                    ├─ 304 ──► refresh ──► Serve
//!                             │                    └─ other ──► relay (+ store)
//!                             └─ miss ──► Forward ──► relay (+ store if admitted)
//!                                  └─ one Range from below --range-whole-below, admitted:
//!                                     Forward without Range ──► 200 of known length:
//!                                     relay the client's part as a 206, store all of it
//! ```
//! Looking up is in `lookup.rs` ([`consult`]); storing in `fill.rs`: at the response
//! head, [`response_head`] decides and begins a fill; every body byte relayed is also
//! written to it ([`Sink`]); when the body is complete the fill is committed
//! ([`body_complete`]), and only then can a lookup find it. Any failure on the way
//! (truncated, reset, over-size, the client leaving) aborts the fill: see
//! [`release`], which every path that ends an exchange reaches.
//!
//! Heads and keys: the store key is the URL as larder logs it; when a response
//! carries Vary, a variants marker is stored under the URL and the response under
//! `URL ++ "\0" ++ vary key` (see [`crate::http::vary::vary_key`]).

use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use log::debug;

use crate::access_log::ResultCode;
use crate::cache::admission::Admission;
use crate::cache::syncer::Syncer;
use crate::cache::uncacheable::Uncacheable;
use crate::cache::{unix_now, CacheError, Fill, ObjectRef, Store};
use crate::config::CacheSettings;
use crate::http::cache_status::Forwarded;
use crate::http::ViaName;

mod fill;
pub mod flights;
mod lookup;
mod stale;

pub use fill::{
    body_complete, body_failed, release, response_head, ForwardedStatus, OnResponse, Sink,
    StatusLine,
};
use flights::{Flights, Member};
pub use lookup::{consult, Answer, AnswerStatus, Asking, Consulted};
pub use stale::stale_on_error;

/// URLs the admission table remembers: 16 bytes each, so 1 MiB.
const ADMISSION_SLOTS: usize = 65_536;

/// URLs the uncacheable memo remembers: 16 bytes each, so 64 KiB.
const UNCACHEABLE_SLOTS: usize = 4096;

/// Revalidations running behind stale answers (`stale-while-revalidate`) at most:
/// each holds an upstream socket no client asked for; above this, a request
/// revalidates in the foreground as without the directive.
pub const BACKGROUND_MAX: usize = 8;

/// Body bytes served from the map between two releases of its pages (see
/// [`Cache::note_served`]): bounds what hits add to larder's RSS, at the cost of a
/// `madvise` per 8 MiB served.
const RELEASE_AFTER: u64 = 8 << 20;

/// The proxy's cache: the store, the admission table, and the accounting that
/// keeps the map's pages from piling up in larder's RSS.
pub struct Cache {
    /// The object store in the cache file.
    pub store: Store,
    admission: Admission,
    /// URLs whose responses were lately not stored: requests for them do not wait
    /// for each other's fetches.
    uncacheable: Uncacheable,
    /// Bytes served from the map since its pages were last released.
    served: u64,
    /// Misses being fetched to be stored: later requests for the URL wait for the
    /// fetch instead of making their own (request collapsing).
    pub flights: Flights,
    /// Unix seconds, read once per loop turn ([`Cache::set_clock`]) rather than once
    /// or twice per request.
    now: u64,
    /// This larder's Via, which a served head carries and a stored one does not.
    pub via: ViaName,
    /// No write error is logged before this time (unix seconds): at most one a minute.
    quiet_until: u64,
    /// The thread that makes checkpoints durable (`None` if it could not be started:
    /// then the store takes them in place, blocking the loop while the disk syncs).
    syncer: Option<Syncer>,
    /// `--cache-sync`: seconds between checkpoints while something is written.
    sync_every: u64,
    /// `--serve-stale`: seconds past its freshness an entry whose revalidation fails
    /// may still answer, when the response says nothing of it (0: only what
    /// `stale-if-error` allows). See [`stale_on_error`].
    serve_stale: u64,
    /// `--offline`: answer from the store only, fresh or stale; never ask the origin.
    pub offline: bool,
    /// `--range-whole-below`: a Range request that misses, for bytes from an offset
    /// below this, fetches the whole object to store it (0: never). It also bounds what
    /// such a fetch goes on fetching once its client has left.
    range_whole_below: u64,
    /// Keys of the entries being revalidated behind stale answers: one revalidation
    /// per key (see `lookup.rs`), until [`Cache::refreshed`].
    refreshing: HashSet<Vec<u8>>,
}

impl Cache {
    /// Wraps an opened store and takes a first checkpoint. A response is admitted once
    /// its URL was requested more than `admit_after` times, each within `admit_window`
    /// seconds of the previous; `via` names larder in the heads it adds; `sync_every`
    /// is `--cache-sync`.
    pub fn new(
        mut store: Store,
        admit_after: u32,
        admit_window: u64,
        via: ViaName,
        sync_every: u64,
    ) -> Cache {
        let syncer = match Syncer::spawn() {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!("no thread for cache syncs ({e}): they will block requests");
                None
            }
        };
        // The first checkpoint here, before any request: until one is durable nothing
        // can be stored. (After a clean stop it syncs a clean file: quick.)
        if let Err(e) = store.sync_now() {
            log::warn!("cache not synced at start-up ({e}): storing waits for a sync");
        }
        store.set_background_sync(syncer.is_some());
        Cache {
            store,
            admission: Admission::new(admit_after, admit_window, ADMISSION_SLOTS),
            uncacheable: Uncacheable::new(UNCACHEABLE_SLOTS),
            served: 0,
            flights: Flights::default(),
            now: unix_now(),
            via,
            quiet_until: 0,
            syncer,
            sync_every,
            serve_stale: 0,
            offline: false,
            range_whole_below: 0,
            refreshing: HashSet::new(),
        }
    }

    /// [`Cache::new`] with everything the `--cache-*`, `--admit-*`, `--serve-stale`,
    /// `--offline` and `--range-whole-below` flags say.
    pub fn configured(store: Store, settings: &CacheSettings, via: ViaName) -> Cache {
        let mut cache = Cache::new(
            store,
            settings.admit_after,
            settings.admit_window,
            via,
            settings.sync_every,
        );
        cache.serve_stale = settings.serve_stale;
        cache.offline = settings.offline;
        cache.range_whole_below = settings.range_whole_below;
        cache
    }

    /// The background revalidation of `key` (see [`Consulted::ServeStale`]) ended,
    /// or was never started: a later stale answer may start another.
    pub fn refreshed(&mut self, key: &[u8]) {
        self.refreshing.remove(key);
    }

    /// Background revalidations running.
    pub fn refreshing(&self) -> usize {
        self.refreshing.len()
    }

    /// Sets the cache's clock (unix seconds); the loop calls it once per turn.
    pub fn set_clock(&mut self, unix: u64) {
        self.now = unix;
    }

    /// Counts body bytes written to clients from the map. Every page a hit touches
    /// stays mapped into larder (and counted in its RSS) until released, so after
    /// `RELEASE_AFTER` bytes the map's page-table entries are dropped; the pages
    /// stay in the kernel's page cache, so the next hit costs a minor fault, not I/O.
    pub fn note_served(&mut self, n: u64) {
        self.served += n;
        if self.served >= RELEASE_AFTER {
            self.served = 0;
            self.store.release_pages();
        }
    }

    /// A response from the map ended (written whole or not): its object is unpinned
    /// (and taken out of `serving`).
    pub fn end_serving(&mut self, serving: &mut Serving) {
        if let Some(obj) = serving.obj.take() {
            self.store.unpin(&obj);
        }
    }

    /// Whether the fetch of the exchange `c` goes on, and is stored, when its client
    /// leaves in the middle of the body: when others wait for it (it leads a flight), or
    /// when it fetches the whole object for a Range (see [`CacheEx::range_dropped`])
    /// and the body bytes still to come are at most `--range-whole-below`. That is the
    /// most larder would have fetched for no client to begin with, and a resumed
    /// download whose client gave up then finds the object stored when it resumes
    /// again (Squid's quick_abort does the like). A longer rest, or a body of unknown
    /// length, is not worth its fetch: the exchange ends and nothing is stored.
    pub fn fetches_on_without_client(&self, c: Option<&CacheEx>) -> bool {
        let Some(c) = c else {
            return false;
        };
        let Some(fill) = c.fill.as_ref() else {
            return false;
        };
        if c.leads && self.flights.has_members(&c.url) {
            return true;
        }
        c.range_dropped
            && fill
                .body_len()
                .is_some_and(|len| len.saturating_sub(fill.written()) <= self.range_whole_below)
    }

    /// Ends the flight `c` leads, if any, with the object it stored if any.
    pub(super) fn land(&mut self, c: &mut CacheEx, stored: Option<&ObjectRef>) {
        if std::mem::take(&mut c.leads) {
            self.flights.land(&c.url, stored, &mut self.store);
        }
    }

    /// A store operation failed. A write error (a full disk, an I/O error) pauses
    /// storing for 30 s and is something the operator must act on: it is logged at
    /// warn, at most once a minute. Anything else (too large, no room right now,
    /// paused) is an ordinary reason not to store.
    pub(super) fn trouble(&mut self, what: &str, e: &CacheError) {
        match e {
            e if e.is_write_error() && self.now >= self.quiet_until => {
                self.quiet_until = self.now + 60;
                log::warn!(
                    "{what}: {e}; storing is paused for 30 s (more write errors in the \
                     next minute are counted in /metrics, not logged)"
                );
            }
            _ => debug!("{what}: {e}"),
        }
    }

    /// Forgets old request history (called on the loop's tick).
    pub fn sweep(&mut self, now: u64) {
        self.admission.sweep(now);
    }

    /// Keeps the cache file synced (called on the loop's tick, and on a turn when
    /// storing waits for a checkpoint: see [`Cache::sync_wanted`]): a finished
    /// checkpoint is handed to the store, and a new one is started when one is due (see
    /// `Store::sync_due`).
    pub fn keep_synced(&mut self, now: u64) {
        let due = |store: &Store| store.sync_due(now, self.sync_every);
        let Some(syncer) = self.syncer.as_mut() else {
            if due(&self.store) {
                if let Err(e) = self.store.sync_now() {
                    self.trouble("cache sync failed", &e);
                }
            }
            return;
        };
        let finished = syncer.finished();
        let idle = syncer.idle();
        if let Some((checkpoint, result)) = finished {
            if let Err(e) = self.store.end_sync(checkpoint, result) {
                self.trouble("cache sync failed", &e);
            }
        }
        if !idle || !self.store.sync_due(now, self.sync_every) {
            return;
        }
        match self.store.begin_sync(now) {
            Ok(job) => {
                let started = self.syncer.as_mut().is_some_and(|s| s.start(job));
                if !started {
                    // The thread is gone: sync in place from now on.
                    self.syncer = None;
                    self.store.set_background_sync(false);
                }
            }
            Err(e) => self.trouble("cache sync failed", &e),
        }
    }

    /// Storing waits for a checkpoint (a write found the window full): the loop then
    /// calls [`Cache::keep_synced`] every turn rather than on its tick only.
    pub fn sync_wanted(&self) -> bool {
        self.store.sync_wanted()
    }

    /// The last checkpoint, at shutdown: waits for a running one, then syncs the file
    /// so the next start finds every object as it is and checks nothing. Blocks.
    pub fn close(&mut self) {
        if let Some(syncer) = self.syncer.as_mut() {
            if let Some((checkpoint, result)) = syncer.wait(Duration::from_secs(30)) {
                let _ = self.store.end_sync(checkpoint, result);
            }
        }
        if let Err(e) = self.store.sync_for_close() {
            log::warn!("cache not synced at shutdown: {e}; the next start checks what was written since the last sync");
        }
    }
}

/// What the cache knows about one exchange.
#[derive(Debug)]
pub struct CacheEx {
    /// The URL, the primary key.
    pub url: Rc<[u8]>,
    /// A variant's key (`URL NUL vary-key`) when the entry this exchange reads or
    /// writes is a variant; `None` for the URL itself (so the common exchange copies
    /// no key). See [`CacheEx::key`].
    variant: Option<Vec<u8>>,
    /// The URL's hash, the store's ([`Store::key_hash`]): for the index, admission
    /// and the uncacheable memo.
    url_hash: u64,
    /// Admission allows storing the response.
    admit: bool,
    /// The stale entry being revalidated (pinned).
    stale: Option<ObjectRef>,
    /// While revalidating: the request head as the client's request made it (the one
    /// sent carries larder's validators instead of the client's conditionals).
    client_head: Option<Vec<u8>>,
    /// RFC 9211 `fwd` value: why the request went upstream.
    fwd: Forwarded,
    /// Unix time the request was sent upstream (RFC 9111's request_time).
    requested: u64,
    fill: Option<Fill>,
    /// The response is being stored: a fill of known length was begun (Cache-Status
    /// says `stored`; a later failure, such as a truncated body, is only logged).
    stored: bool,
    /// An unsafe method: invalidate the URL on a non-error response.
    unsafe_method: bool,
    /// The client's Range (and If-Range) were left out of the request sent upstream, to
    /// fetch the whole object: a miss whose range starts below `--range-whole-below`, or
    /// a revalidation. A 200 of known length is then answered with the client's part of
    /// it ([`OnResponse::Part`]) while all of it is stored.
    pub range_dropped: bool,
    /// Squid result code for the access log.
    pub result: ResultCode,
    /// This exchange's fetch is a flight others may wait for.
    leads: bool,
    /// This connection, as flights name it.
    pub me: Member,
    /// larder's own revalidation behind a stale answer (`stale-while-revalidate`).
    background: bool,
}

/// A response being written from the map. Whoever holds it gives it back with
/// [`Cache::end_serving`] when the response ends, which unpins the object.
#[derive(Debug)]
pub struct Serving {
    /// The object, pinned; `None` while reading a body another exchange is storing
    /// (see [`flights`]), until the object lands.
    pub obj: Option<ObjectRef>,
    /// File offsets of the body bytes still to write.
    pub pos: u64,
    /// File offset just past the body's last byte to write.
    pub end: u64,
}

impl CacheEx {
    /// The response must not be stored whatever it says: it comes from where not
    /// every client may go (see `conn::dest`). Those waiting for it fetch on their own.
    pub fn forgo_storing(&mut self) {
        self.admit = false;
    }

    /// Why the request went (or was going) to the origin: RFC 9211's `fwd` value.
    pub fn fwd(&self) -> Forwarded {
        self.fwd
    }

    /// The key of the entry this exchange reads or writes: the variant's, or the URL.
    pub(super) fn key(&self) -> &[u8] {
        self.variant.as_deref().unwrap_or(&self.url)
    }

    pub(super) fn new(url: Rc<[u8]>, fwd: Forwarded) -> CacheEx {
        CacheEx {
            variant: None,
            url,
            url_hash: 0,
            admit: false,
            stale: None,
            client_head: None,
            fwd,
            requested: 0,
            fill: None,
            stored: false,
            unsafe_method: false,
            range_dropped: false,
            result: ResultCode::Miss,
            leads: false,
            me: (0, 0),
            background: false,
        }
    }
}
