//! Non-blocking socket I/O as the connection steps use it: readiness kept in
//! userland, one read or one vectored write per call, and the buffer of bytes larder
//! itself writes to a client.

use std::io::{self, IoSlice, Read, Write};

/// Userland copy of a socket's readiness (mio is edge-triggered): set by events,
/// cleared by [`read_into`] and [`write_two`] when the socket is known drained or
/// full — on `WouldBlock`, and (as nginx does) on a short read or write, which
/// saves the extra system call that would only return `WouldBlock`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Readiness {
    /// The socket may have bytes to read.
    pub r: bool,
    /// The socket may take bytes to write.
    pub w: bool,
    /// The peer closed its side (EPOLLRDHUP) or the socket has an error: a short
    /// read then does not mean "drained", because the EOF must still be read.
    pub hup: bool,
    /// The socket has an error (EPOLLERR): the next read reports it.
    pub err: bool,
    /// A short read after the peer's FIN (and no error) emptied the socket, so the
    /// next read can only return EOF: [`read_into`] reports it without asking.
    pub fin: bool,
}

/// Result of one read or write attempt.
#[derive(Debug)]
pub enum Io {
    /// This many bytes were moved; never 0.
    Done(usize),
    /// The socket would block (a read into an empty buffer also says so).
    Blocked,
    /// The peer closed its side: nothing more can be read.
    Eof,
    /// The system call failed.
    Failed(io::Error),
}

/// Reads once into `buf`, retrying on EINTR, and updates `ready`. A zero-length
/// `buf` reports `Blocked` without a system call (and leaves `ready` alone); so does
/// `Eof` once `ready.fin` says the peer's FIN is all that is left.
pub fn read_into(sock: &mut impl Read, ready: &mut Readiness, buf: &mut [u8]) -> Io {
    if buf.is_empty() {
        return Io::Blocked;
    }
    if ready.fin {
        return Io::Eof;
    }
    loop {
        match sock.read(buf) {
            Ok(0) => return Io::Eof,
            Ok(n) => {
                if n < buf.len() {
                    if !ready.hup {
                        ready.r = false;
                    } else if !ready.err {
                        // Nothing can follow a FIN, and the socket is empty.
                        ready.fin = true;
                    }
                }
                return Io::Done(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready.r = false;
                return Io::Blocked;
            }
            Err(e) => return Io::Failed(e),
        }
    }
}

/// Writes `a` then `b` with one `writev`, retrying on EINTR, and updates `ready.w`.
pub fn write_two(sock: &mut impl Write, ready: &mut Readiness, a: &[u8], b: &[u8]) -> Io {
    loop {
        let res = if a.is_empty() {
            sock.write(b)
        } else if b.is_empty() {
            sock.write(a)
        } else {
            sock.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
        };
        match res {
            Ok(0) => return Io::Failed(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                if n < a.len() + b.len() {
                    ready.w = false;
                }
                return Io::Done(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready.w = false;
                return Io::Blocked;
            }
            Err(e) => return Io::Failed(e),
        }
    }
}

/// Responses to clients at most this long (head and body) are joined before they
/// are written: see [`write_response`].
pub const JOIN_UP_TO: usize = 4096;

/// [`write_two`] for a response to a client: `out`'s pending bytes (larder's head),
/// then `body`. A head and body that together fit in [`JOIN_UP_TO`] bytes are sent
/// with one `write`, which costs the kernel less than a `writev` of two pieces.
/// When the vector that holds the head has room for the body behind it (see
/// [`OutBuf::make_room`]), the body is copied there for the write and cut off again
/// after, so the head is not copied at all; else head and body are copied into
/// `joined` (cleared first; a vector kept for this, so the copy allocates nothing).
/// `out` is left as it was: as with [`write_two`], the caller counts the bytes
/// written as `out`'s first, then the body's. Anything longer goes as [`write_two`]
/// sends it, where the copy would cost more than it saves.
pub fn write_response(
    sock: &mut impl Write,
    ready: &mut Readiness,
    out: &mut OutBuf,
    body: &[u8],
    joined: &mut Vec<u8>,
) -> Io {
    let head = out.pending();
    if head.is_empty() || body.is_empty() || head.len() + body.len() > JOIN_UP_TO {
        return write_two(sock, ready, head, body);
    }
    let len = out.data.len();
    if out.data.capacity() - len >= body.len() {
        out.data.extend_from_slice(body);
        let res = write_two(sock, ready, out.pending(), &[]);
        out.data.truncate(len);
        return res;
    }
    joined.clear();
    joined.extend_from_slice(head);
    joined.extend_from_slice(body);
    write_two(sock, ready, joined, &[])
}

/// Bytes larder generates for a client, with a write position.
#[derive(Debug, Default)]
pub struct OutBuf {
    data: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    /// Bytes not yet written.
    pub fn pending(&self) -> &[u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    /// Everything pushed has been written.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Appends a copy of `bytes`.
    pub fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    /// Appends `bytes`, adopting the vector itself when nothing is pending (a
    /// response head built by the parser is then sent without a copy).
    pub fn push_vec(&mut self, bytes: Vec<u8>) {
        if self.is_empty() {
            self.data = bytes;
            self.pos = 0;
        } else {
            self.data.extend_from_slice(&bytes);
        }
    }

    /// Room for `body` more bytes behind those pending, when the whole fits in
    /// [`JOIN_UP_TO`]: [`write_response`] then sends the pending bytes and a body of
    /// that length with one write without copying the former. A vector the
    /// [`crate::buf::HeadPool`] hands out keeps the room when it comes back, so with
    /// pooled heads this allocates only while the pool fills.
    pub fn make_room(&mut self, body: usize) {
        if self.pending().len().saturating_add(body) <= JOIN_UP_TO {
            // Exactly: a vector grown past `HeadPool::MAX_CAPACITY` is not kept.
            self.data.reserve_exact(body);
        }
    }

    /// Drops `n` written bytes, freeing the memory once all are written so an idle
    /// connection holds none.
    pub fn advance(&mut self, n: usize) {
        drop(self.advance_keep(n));
    }

    /// [`OutBuf::advance`], handing the emptied vector back (for a [`crate::buf::HeadPool`])
    /// instead of freeing it.
    pub fn advance_keep(&mut self, n: usize) -> Option<Vec<u8>> {
        self.pos += n;
        if self.pos >= self.data.len() {
            self.pos = 0;
            return Some(std::mem::take(&mut self.data));
        }
        None
    }

    /// After a [`write_response`] of this buffer and a body wrote `n` bytes: moves past
    /// this buffer's share of them (they come first), gives the vector to `heads` once
    /// it is all written, and returns how many of the `n` were the body's.
    pub fn took(&mut self, n: usize, heads: &mut crate::buf::HeadPool) -> usize {
        let ours = n.min(self.pending().len());
        if let Some(done) = self.advance_keep(ours) {
            heads.give(done);
        }
        n - ours
    }
}

#[cfg(test)]
mod tests {
    use super::{read_into, write_response, Io, OutBuf, Readiness, JOIN_UP_TO};
    use std::io::{self, IoSlice, Write};
    use std::net::{Shutdown, TcpListener};

    /// A connected pair: larder's end as a mio stream, the peer as a std stream.
    fn pair() -> (mio::net::TcpStream, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (ours, _) = listener.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        (mio::net::TcpStream::from_std(ours), peer)
    }

    /// Loopback delivers within the peer's send; the pause only guards against a
    /// slow scheduler.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    /// The peer sends "last" and its FIN; we read with the readiness an event would
    /// have given (`err`: EPOLLERR came too). Returns whether `fin` was inferred, after
    /// checking that the next read reports EOF either way.
    fn read_last_words(err: bool) -> bool {
        let (mut ours, mut peer) = pair();
        peer.write_all(b"last").expect("write");
        peer.shutdown(Shutdown::Write).expect("shutdown");
        settle();
        let mut ready = Readiness {
            r: true,
            hup: true,
            err,
            ..Readiness::default()
        };
        let mut buf = [0u8; 64];
        let first = read_into(&mut ours, &mut ready, &mut buf);
        assert!(matches!(first, Io::Done(4)), "{first:?}");
        let fin = ready.fin;
        assert!(ready.r, "{ready:?}");
        let next = read_into(&mut ours, &mut ready, &mut buf);
        assert!(matches!(next, Io::Eof), "{next:?}");
        fin
    }

    #[test]
    fn short_read_after_fin_reports_eof_next() {
        assert!(read_last_words(false));
    }

    #[test]
    fn short_read_with_an_error_pending_still_asks_the_socket() {
        assert!(!read_last_words(true));
    }

    #[test]
    fn short_read_without_fin_means_drained() {
        let (mut ours, mut peer) = pair();
        peer.write_all(b"more to come").expect("write");
        settle();
        let mut ready = Readiness {
            r: true,
            ..Readiness::default()
        };
        let mut buf = [0u8; 64];
        assert!(matches!(
            read_into(&mut ours, &mut ready, &mut buf),
            Io::Done(12)
        ));
        assert!(!ready.r && !ready.fin, "{ready:?}");
    }

    /// What a socket was asked to write, call by call (`true`: vectored), taking
    /// everything it is given.
    #[derive(Default)]
    struct Calls(Vec<(bool, Vec<u8>)>);

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push((false, buf.to_vec()));
            Ok(buf.len())
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            self.0.push((true, all));
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// An `OutBuf` holding `head`, with `written` of its bytes already sent, and
    /// room for `room` more behind it (or none).
    fn out_with(head: &[u8], written: usize, room: Option<usize>) -> OutBuf {
        let mut out = OutBuf::default();
        out.push_vec(head.to_vec());
        if let Some(room) = room {
            out.data.reserve_exact(room);
        } else {
            out.data.shrink_to_fit();
        }
        out.advance(written);
        out
    }

    /// A ready writable socket's readiness.
    fn writable() -> Readiness {
        Readiness {
            w: true,
            ..Readiness::default()
        }
    }

    /// Either way of joining sends the same single plain write, and leaves `out`
    /// (and its room) as it was.
    #[test]
    fn a_small_response_is_joined_into_one_plain_write() {
        let body = vec![b'x'; JOIN_UP_TO - 4];
        for room in [None, Some(body.len())] {
            let mut sock = Calls::default();
            let mut ready = writable();
            let mut out = out_with(b"HEAD", 0, room);
            let capacity = out.data.capacity();
            let mut joined = b"left from before".to_vec();
            let res = write_response(&mut sock, &mut ready, &mut out, &body, &mut joined);
            assert!(matches!(res, Io::Done(n) if n == JOIN_UP_TO));
            let mut want = b"HEAD".to_vec();
            want.extend_from_slice(&body);
            assert_eq!(sock.0, vec![(false, want)], "{room:?}");
            assert!(ready.w, "everything was taken");
            assert_eq!(
                out.pending(),
                b"HEAD",
                "the body was appended for the write only"
            );
            assert_eq!(out.data.capacity(), capacity, "{room:?}");
            // The room is used in place of `joined`.
            assert_eq!(joined.starts_with(b"left"), room.is_some(), "{room:?}");
        }
    }

    /// However much of a joined write the socket takes, the bytes it got are those
    /// `write_two` would have sent, and `out` holds what it held: the caller counts
    /// the rest, as it does after `write_two`.
    #[test]
    fn a_joined_write_the_socket_cuts_short_leaves_out_as_it_was() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        for room in [None, Some(5)] {
            for written in [0, 3] {
                for takes in [1, 10, head.len() - written, head.len() - written + 2] {
                    let mut sock = Takes(takes, Vec::new());
                    let mut ready = writable();
                    let mut out = out_with(head, written, room);
                    let mut joined = Vec::new();
                    let res =
                        write_response(&mut sock, &mut ready, &mut out, b"hello", &mut joined);
                    assert!(matches!(res, Io::Done(n) if n == takes), "{res:?}");
                    let mut all = head[written..].to_vec();
                    all.extend_from_slice(b"hello");
                    assert_eq!(sock.1, all[..takes], "{room:?} {written} {takes}");
                    assert!(!ready.w, "a short write clears the readiness");
                    assert_eq!(out.pending(), &head[written..]);
                }
            }
        }
    }

    /// A socket that takes at most `.0` bytes a call, kept in `.1`.
    struct Takes(usize, Vec<u8>);

    impl Write for Takes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0);
            self.1.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Room is made only for a body that would be joined.
    #[test]
    fn room_is_made_only_for_a_body_joined_to_the_head() {
        let mut out = out_with(b"HEAD", 0, None);
        out.make_room(JOIN_UP_TO - 3);
        out.make_room(usize::MAX);
        assert_eq!(out.data.capacity(), 4);
        out.make_room(JOIN_UP_TO - 4);
        assert!(out.data.capacity() >= JOIN_UP_TO);
    }

    #[test]
    fn a_longer_response_goes_in_one_vectored_write() {
        let body = vec![b'x'; JOIN_UP_TO - 3];
        for room in [None, Some(body.len())] {
            let mut sock = Calls::default();
            let mut ready = writable();
            let mut out = out_with(b"HEAD", 0, room);
            let res = write_response(&mut sock, &mut ready, &mut out, &body, &mut Vec::new());
            assert!(matches!(res, Io::Done(n) if n == JOIN_UP_TO + 1));
            let mut want = b"HEAD".to_vec();
            want.extend_from_slice(&body);
            assert_eq!(sock.0, vec![(true, want)]);
        }
        // A head or a body alone is one plain write either way.
        let mut ready = writable();
        let mut sock = Calls::default();
        let mut empty = OutBuf::default();
        let res = write_response(&mut sock, &mut ready, &mut empty, b"body", &mut Vec::new());
        assert!(matches!(res, Io::Done(4)));
        assert_eq!(sock.0, vec![(false, b"body".to_vec())]);
        let mut sock = Calls::default();
        let mut out = out_with(b"HEAD", 0, Some(10));
        let res = write_response(&mut sock, &mut ready, &mut out, b"", &mut Vec::new());
        assert!(matches!(res, Io::Done(4)));
        assert_eq!(sock.0, vec![(false, b"HEAD".to_vec())]);
    }
}
