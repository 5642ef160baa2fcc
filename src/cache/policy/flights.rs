//! Request collapsing: concurrent misses for one URL share one upstream fetch.
//!
//! # Lifecycle of a flight
//! ```text
//!  admitted miss, URL in the uncacheable memo ──► no flight: fetch at once
//!  admitted miss, no flight ──► open (this exchange leads)
//!  admitted miss, a flight  ──► join: the request waits (state Waiting)
//!  leader begins storing a body of known length (no Vary) ──► streaming: waiters
//!      that asked for the plain object become readers (state Serve) and write the
//!      body out of the fill as it is written; every write wakes them
//!  leader's fill commits ──► land: each reader gets the object, pinned for it
//!      (adopted at its next step); remaining waiters look the URL up again (a hit)
//!  leader stores nothing / fails ──► land without an object: readers that already
//!      sent a head are aborted, waiters fetch on their own; a response that
//!      could not be stored also puts the URL in the uncacheable memo
//! ```
//! Connections are named by [`Member`] (slab key and connection id): woken ones are
//! queued by the server through [`Flights::wake`], and an id that no longer matches
//! (the connection closed, its key reused) is skipped there.

use std::collections::HashMap;

use crate::cache::{ObjectRef, Store};

/// A connection taking part in a flight: slab key and connection id.
pub type Member = (usize, u64);

/// The flights under way, by URL.
#[derive(Default)]
pub struct Flights {
    by_url: HashMap<Vec<u8>, Flight>,
    /// Objects committed under readers, pinned once for each reader named.
    landed: HashMap<Member, ObjectRef>,
    /// Connections to step on the next turn (drained by the server).
    pub wake: Vec<Member>,
}

#[derive(Default)]
struct Flight {
    waiters: Vec<Member>,
    stream: Option<Stream>,
}

/// A body being stored that readers may write out as it arrives.
pub struct Stream {
    /// The head as stored.
    pub head: Vec<u8>,
    /// File offset of the body's first byte, and its announced length.
    pub body_start: u64,
    /// The body's announced length in bytes.
    pub len: u64,
    /// Body bytes written to the fill so far.
    pub written: u64,
    readers: Vec<Member>,
}

impl Flights {
    /// Opens a flight for `url` led by the caller; false if one is under way.
    pub fn open(&mut self, url: &[u8]) -> bool {
        if self.by_url.contains_key(url) {
            return false;
        }
        self.by_url.insert(url.to_vec(), Flight::default());
        true
    }

    /// Whether a fetch of `url` is under way.
    pub fn is_open(&self, url: &[u8]) -> bool {
        !self.by_url.is_empty() && self.by_url.contains_key(url)
    }

    /// Adds `w` to the waiters of the flight for `url` (which must exist: see
    /// [`Flights::open`]).
    pub fn join(&mut self, url: &[u8], w: Member) {
        if let Some(f) = self.by_url.get_mut(url) {
            f.waiters.push(w);
        } else {
            self.wake.push(w);
        }
    }

    /// Whether `w` still waits on the flight for `url`.
    pub fn waits(&self, url: &[u8], w: Member) -> bool {
        self.by_url.get(url).is_some_and(|f| f.waiters.contains(&w))
    }

    /// Whether anyone waits on or reads the flight for `url`.
    pub fn has_members(&self, url: &[u8]) -> bool {
        self.by_url.get(url).is_some_and(|f| {
            !f.waiters.is_empty() || f.stream.as_ref().is_some_and(|s| !s.readers.is_empty())
        })
    }

    /// The body being stored for `url`, if it can be streamed.
    pub fn stream(&self, url: &[u8]) -> Option<&Stream> {
        self.by_url.get(url)?.stream.as_ref()
    }

    /// Makes waiter `w` a reader of the stream for `url`.
    pub fn read(&mut self, url: &[u8], w: Member) {
        if let Some(f) = self.by_url.get_mut(url) {
            f.waiters.retain(|&x| x != w);
            if let Some(s) = f.stream.as_mut() {
                s.readers.push(w);
            }
        }
    }

    /// The leader began storing a body of known length at `body_start`: waiters are
    /// woken to read it as it arrives.
    pub fn streaming(&mut self, url: &[u8], head: &[u8], body_start: u64, len: u64) {
        if let Some(f) = self.by_url.get_mut(url) {
            f.stream = Some(Stream {
                head: head.to_vec(),
                body_start,
                len,
                written: 0,
                readers: Vec::new(),
            });
            self.wake.extend_from_slice(&f.waiters);
        }
    }

    /// The leader has written `written` body bytes: readers are woken.
    pub fn progress(&mut self, url: &[u8], written: u64) {
        if let Some(s) = self.by_url.get_mut(url).and_then(|f| f.stream.as_mut()) {
            s.written = written;
            self.wake.extend_from_slice(&s.readers);
        }
    }

    /// Where the bytes written so far end (a file offset), while `w` reads the stream
    /// of `url`; `None` once the flight is over.
    pub fn readable_end(&self, url: &[u8], w: Member) -> Option<u64> {
        let s = self.by_url.get(url)?.stream.as_ref()?;
        s.readers.contains(&w).then_some(s.body_start + s.written)
    }

    /// Ends the flight for `url`. With `stored` (the committed object), every reader
    /// gets it pinned for it, to adopt with [`Flights::adopt`]. Everyone is woken.
    pub fn land(&mut self, url: &[u8], stored: Option<&ObjectRef>, store: &mut Store) {
        let Some(f) = self.by_url.remove(url) else {
            return;
        };
        self.wake.extend(f.waiters);
        if let Some(s) = f.stream {
            for r in s.readers {
                if let Some(obj) = stored {
                    store.pin(obj);
                    self.landed.insert(r, obj.clone());
                }
                self.wake.push(r);
            }
        }
    }

    /// The object `w` was reading, committed and pinned for it.
    pub fn adopt(&mut self, w: Member) -> Option<ObjectRef> {
        self.landed.remove(&w)
    }

    /// `w` is gone (its exchange ended): forget it, and unpin an object landed for it.
    pub fn leave(&mut self, url: &[u8], w: Member, store: &mut Store) {
        // Every exchange that used the cache leaves; most never joined anything, and
        // with no flights there is nothing to hash for.
        if self.landed.is_empty() && self.by_url.is_empty() {
            return;
        }
        if let Some(obj) = self.landed.remove(&w) {
            store.unpin(&obj);
        }
        if let Some(f) = self.by_url.get_mut(url) {
            f.waiters.retain(|&x| x != w);
            if let Some(s) = f.stream.as_mut() {
                s.readers.retain(|&x| x != w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Meta, Options};

    /// A store in a file of its own, removed on drop.
    struct TempStore(std::path::PathBuf, Store);

    impl TempStore {
        fn new(name: &str) -> TempStore {
            let path = std::env::temp_dir().join(format!(
                "larder-collapse-{name}-{}.cache",
                std::process::id()
            ));
            let _ = std::fs::remove_file(&path);
            let store = Store::open_file(&path, Options::for_capacity(1 << 20), 1).expect("open");
            TempStore(path, store)
        }
    }

    impl Drop for TempStore {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const URL: &[u8] = b"http://a/x";

    #[test]
    fn second_request_joins_and_is_woken_when_the_flight_lands() {
        let mut t = TempStore::new("join");
        let mut f = Flights::default();
        assert!(f.open(URL));
        assert!(!f.open(URL), "one flight per URL");
        f.join(URL, (7, 70));
        assert!(f.waits(URL, (7, 70)));
        assert!(f.wake.is_empty());
        f.land(URL, None, &mut t.1);
        assert_eq!(f.wake, [(7, 70)]);
        assert!(!f.waits(URL, (7, 70)));
        assert!(f.open(URL), "a new flight may start");
    }

    #[test]
    fn readers_follow_the_writes_and_adopt_the_object_pinned() {
        let mut t = TempStore::new("read");
        let store = &mut t.1;
        let mut f = Flights::default();
        f.open(URL);
        f.join(URL, (1, 10));
        let meta = Meta {
            requested: 1,
            stored: 1,
            expires: 100,
        };
        let mut fill = store
            .begin(URL, b"HTTP/1.1 200 OK\r\n\r\n", meta, Some(4))
            .expect("begin");
        f.streaming(URL, b"HTTP/1.1 200 OK\r\n\r\n", fill.body_start(), 4);
        assert_eq!(f.wake.drain(..).collect::<Vec<_>>(), [(1, 10)]);
        f.read(URL, (1, 10));
        assert!(!f.waits(URL, (1, 10)));
        let start = fill.body_start();
        assert_eq!(f.readable_end(URL, (1, 10)), Some(start));
        store.write(&mut fill, b"ab").expect("write");
        f.progress(URL, fill.written());
        assert_eq!(f.readable_end(URL, (1, 10)), Some(start + 2));
        assert_eq!(
            store.bytes(start..start + 2),
            b"ab",
            "written bytes are readable"
        );
        store.write(&mut fill, b"cd").expect("write");
        let obj = store.commit(fill).expect("commit");
        f.land(URL, Some(&obj), store);
        assert_eq!(f.readable_end(URL, (1, 10)), None);
        let adopted = f.adopt((1, 10)).expect("landed for the reader");
        assert_eq!(adopted.body, start..start + 4);
        assert_eq!(store.stats().pinned, 1, "pinned for the reader");
        store.unpin(&adopted);
    }

    #[test]
    fn a_reader_that_leaves_gives_back_its_pin() {
        let mut t = TempStore::new("leave");
        let store = &mut t.1;
        let mut f = Flights::default();
        f.open(URL);
        f.join(URL, (2, 20));
        let fill = store
            .begin(URL, b"H\r\n\r\n", Meta::default(), Some(0))
            .expect("begin");
        f.streaming(URL, b"H\r\n\r\n", fill.body_start(), 0);
        f.read(URL, (2, 20));
        let obj = store.commit(fill).expect("commit");
        f.land(URL, Some(&obj), store);
        assert_eq!(store.stats().pinned, 1);
        f.leave(URL, (2, 20), store);
        assert_eq!(store.stats().pinned, 0);
        assert!(f.adopt((2, 20)).is_none());
    }
}
