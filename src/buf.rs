//! Byte buffers that a connection holds only while it has bytes to hold.
//!
//! An idle keep-alive connection must cost a few hundred bytes, not a buffer, so a
//! [`Buf`] starts empty, takes memory from the [`BufPool`] when it is about to read,
//! and gives it back as soon as it is drained. The pool keeps a bounded number of
//! free buffers so that a busy loop does not go to the allocator for every request,
//! and an idle loop holds at most `keep` buffers.

/// Size of a pooled buffer. Large enough that a bulk transfer does few syscalls,
/// small enough that a few hundred active connections stay within a small box's RAM.
pub const BUF_SIZE: usize = 32 * 1024;

/// Vectors for the heads larder builds (a request's head for upstream, a response's
/// head for the client), kept between requests like [`BufPool`]'s buffers so that
/// a busy loop does not go to the allocator for each head. Only small ones are kept,
/// and only [`HeadPool::KEEP`] of them, so an idle loop holds little.
#[derive(Debug, Default)]
pub struct HeadPool {
    free: Vec<Vec<u8>>,
}

impl HeadPool {
    /// Most head vectors kept for reuse.
    pub const KEEP: usize = 64;
    /// A head vector grown past this (a very large head) is freed, not kept.
    pub const MAX_CAPACITY: usize = 4096;

    /// An empty vector, with the capacity of an earlier head when one is kept.
    pub fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    /// Keeps `head`'s memory for a later [`HeadPool::take`], or frees it.
    pub fn give(&mut self, mut head: Vec<u8>) {
        if head.capacity() > 0
            && head.capacity() <= Self::MAX_CAPACITY
            && self.free.len() < Self::KEEP
        {
            head.clear();
            self.free.push(head);
        }
    }

    /// Vectors currently kept.
    pub fn retained(&self) -> usize {
        self.free.len()
    }
}

/// Free buffers kept for reuse.
#[derive(Debug)]
pub struct BufPool {
    free: Vec<Box<[u8]>>,
    keep: usize,
}

impl BufPool {
    /// A pool that retains at most `keep` free buffers; more are freed.
    pub fn new(keep: usize) -> BufPool {
        BufPool {
            free: Vec::new(),
            keep,
        }
    }

    fn take(&mut self) -> Box<[u8]> {
        self.free
            .pop()
            .unwrap_or_else(|| vec![0u8; BUF_SIZE].into_boxed_slice())
    }

    fn give(&mut self, mem: Box<[u8]>) {
        // Oversized buffers (grown for a large head) are not pooled: they would
        // make every later connection hold the large size.
        if mem.len() == BUF_SIZE && self.free.len() < self.keep {
            self.free.push(mem);
        }
    }

    /// Free buffers currently retained.
    pub fn retained(&self) -> usize {
        self.free.len()
    }
}

/// A window `start..end` of pending bytes in an optional block of memory.
///
/// Contract: bytes are appended at `end` (via [`Buf::space`] + [`Buf::filled`]) and
/// consumed from `start`; when the window empties both reset to 0 so that the next
/// read lands at the front without a copy.
#[derive(Debug, Default)]
pub struct Buf {
    mem: Option<Box<[u8]>>,
    start: usize,
    end: usize,
}

impl Buf {
    /// An empty buffer that holds no memory yet.
    pub const fn new() -> Buf {
        Buf {
            mem: None,
            start: 0,
            end: 0,
        }
    }

    /// Pending bytes.
    pub fn data(&self) -> &[u8] {
        match &self.mem {
            Some(m) => m.get(self.start..self.end).unwrap_or(&[]),
            None => &[],
        }
    }

    /// Number of pending bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// No bytes are pending.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether a read could append anything (no memory yet counts as room).
    pub fn has_room(&self) -> bool {
        match &self.mem {
            None => true,
            Some(m) => self.end < m.len() || self.start > 0,
        }
    }

    /// Capacity of the memory held (0 when none).
    pub fn capacity(&self) -> usize {
        self.mem.as_ref().map_or(0, |m| m.len())
    }

    /// Free space to read into, taking memory from the pool and moving pending
    /// bytes to the front when needed. Empty only when the buffer is full.
    // Inlined: it runs before every read, and its usual path is a few instructions.
    #[inline]
    pub fn space(&mut self, pool: &mut BufPool) -> &mut [u8] {
        let mem = self.mem.get_or_insert_with(|| pool.take());
        if self.end == mem.len() && self.start > 0 {
            mem.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        mem.get_mut(self.end..).unwrap_or(&mut [])
    }

    /// Records that `n` bytes were written into the slice [`Buf::space`] returned.
    pub fn filled(&mut self, n: usize) {
        let cap = self.capacity();
        self.end = (self.end + n).min(cap);
    }

    /// Drops `n` pending bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Replaces the memory with a larger block of `size` bytes keeping the pending
    /// bytes (used when a message head does not fit a pooled buffer; heads are
    /// bounded by the parse limits, so `size` is too).
    pub fn grow(&mut self, size: usize) {
        if size <= self.capacity() {
            return;
        }
        let mut mem = vec![0u8; size].into_boxed_slice();
        let len = self.len();
        if let Some(dst) = mem.get_mut(..len) {
            dst.copy_from_slice(self.data());
        }
        self.mem = Some(mem);
        self.start = 0;
        self.end = len;
    }

    /// Gives the memory back to the pool if no bytes are pending.
    // Inlined: it runs whenever a buffer drains, at least twice a request.
    #[inline]
    pub fn release_if_empty(&mut self, pool: &mut BufPool) {
        if self.is_empty() {
            if let Some(mem) = self.mem.take() {
                pool.give(mem);
            }
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops pending bytes and gives the memory back.
    pub fn clear(&mut self, pool: &mut BufPool) {
        self.start = 0;
        self.end = 0;
        self.release_if_empty(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_pool_keeps_small_vectors_only_and_only_so_many() {
        let mut heads = HeadPool::default();
        let mut v = heads.take();
        assert_eq!(
            v.capacity(),
            0,
            "an empty pool hands out unallocated vectors"
        );
        v.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let cap = v.capacity();
        heads.give(v);
        let again = heads.take();
        assert!(again.is_empty(), "a kept vector comes back cleared");
        assert_eq!(again.capacity(), cap, "with its memory");
        // Unallocated and oversized vectors are not kept: they would hold nothing
        // or too much.
        heads.give(Vec::new());
        heads.give(Vec::with_capacity(HeadPool::MAX_CAPACITY + 1));
        assert_eq!(heads.retained(), 0);
        for _ in 0..HeadPool::KEEP + 10 {
            heads.give(Vec::with_capacity(64));
        }
        assert_eq!(heads.retained(), HeadPool::KEEP);
    }

    #[test]
    fn empty_buffer_holds_no_memory_after_release() {
        let mut pool = BufPool::new(4);
        let mut b = Buf::new();
        let s = b.space(&mut pool);
        s[..3].copy_from_slice(b"abc");
        b.filled(3);
        assert_eq!(b.data(), b"abc");
        b.consume(3);
        b.release_if_empty(&mut pool);
        assert_eq!(b.capacity(), 0);
        assert_eq!(pool.retained(), 1);
    }

    #[test]
    fn space_compacts_when_the_tail_is_full() {
        let mut pool = BufPool::new(1);
        let mut b = Buf::new();
        let n = b.space(&mut pool).len();
        b.filled(n);
        b.consume(n - 2);
        assert!(b.has_room());
        let room = b.space(&mut pool).len();
        assert_eq!(room, n - 2);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn grow_keeps_pending_bytes_and_is_not_pooled() {
        let mut pool = BufPool::new(4);
        let mut b = Buf::new();
        b.space(&mut pool)[..2].copy_from_slice(b"hi");
        b.filled(2);
        b.grow(BUF_SIZE * 2);
        assert_eq!(b.data(), b"hi");
        b.clear(&mut pool);
        assert_eq!(pool.retained(), 0);
    }
}
