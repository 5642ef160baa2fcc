//! The sockets connections and upstreams are generic over: [`Socket`], implemented
//! by [`Stream`] for larder itself (`mio`'s `TcpStream`, or the null socket of a
//! request larder makes on its own) and by an in-memory socket for the tests that
//! drive the connection core without the network (`conn/tests/`).
//!
//! The trait is what the connection code asks of a socket and nothing more: read,
//! (vectored) write, shutdown, opening a connection and learning when its handshake
//! finished, registering it with the poll, and, for `splice(2)`, its descriptor.
//! Readiness is not the socket's business: the server sets it from poll events (the
//! test harness from the in-memory socket's state), and [`super::io`] keeps it.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// A non-blocking stream socket as the connection code uses it.
///
/// Contract (the same as a non-blocking TCP socket's): `read` returns `Ok(0)` only at
/// the peer's end of stream and `WouldBlock` when nothing is there yet; `write` and
/// `write_vectored` may write less than given and return `WouldBlock` when nothing
/// fits; after `shutdown(Write)` the peer reads end of stream once what was written is
/// read.
pub trait Socket: Read + Write + std::fmt::Debug + Sized {
    /// Starts a connection to `addr`; the handshake finishes later (see
    /// [`Socket::handshake`]).
    fn connect(addr: SocketAddr) -> io::Result<Self>;

    /// Registers the socket with the poll, once, for reads and writes.
    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()>;

    /// Where a connection started by [`Socket::connect`] is: `Ok(true)` established,
    /// `Ok(false)` still in progress, `Err` failed.
    fn handshake(&self) -> io::Result<bool>;

    /// Disables Nagle's algorithm (larder writes whole messages).
    fn set_nodelay(&self) -> io::Result<()>;

    /// Shuts down one or both halves.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;

    /// Chooses the TCP congestion control (`--tcp-congestion`).
    fn set_congestion(&self, name: &str) -> io::Result<()>;

    /// The kernel descriptor, for `splice(2)`; `None` for a socket that has none
    /// (then a tunnel keeps copying).
    fn fd(&self) -> Option<BorrowedFd<'_>>;

    /// A socket with nobody behind it, the client side of a request larder makes on
    /// its own (a revalidation in the background): reading it gives end of stream,
    /// everything written to it is discarded at once.
    fn null() -> Self;
}

/// larder's sockets: TCP, or the null socket of a request larder makes on its own
/// (see [`Socket::null`]). One branch per call, beside a system call.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// Nobody: reads end, writes vanish.
    Null,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Null => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Null => Ok(buf.len()),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Null => Ok(bufs.iter().map(|b| b.len()).sum()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Null => Ok(()),
        }
    }
}

impl Socket for Stream {
    fn connect(addr: SocketAddr) -> io::Result<Stream> {
        TcpStream::connect(addr).map(Stream::Tcp)
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => registry.register(s, token, Interest::READABLE | Interest::WRITABLE),
            Stream::Null => Ok(()),
        }
    }

    fn handshake(&self) -> io::Result<bool> {
        let Stream::Tcp(s) = self else {
            return Ok(true);
        };
        // mio's recipe asks take_error, then peer_addr; asking peer_addr first gives
        // the same answers and saves a system call on every successful connect.
        match s.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => match s.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => Ok(false),
            },
            Err(e) => Err(e),
        }
    }

    fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(true),
            Stream::Null => Ok(()),
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Null => Ok(()),
        }
    }

    fn set_congestion(&self, name: &str) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => crate::sys::set_congestion(s, name),
            Stream::Null => Ok(()),
        }
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Stream::Tcp(s) => Some(s.as_fd()),
            Stream::Null => None,
        }
    }

    fn null() -> Stream {
        Stream::Null
    }
}
