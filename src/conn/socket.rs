//! The sockets connections and upstreams are generic over: [`Socket`], implemented
//! by `mio`'s `TcpStream` for larder itself and by an in-memory socket for the tests
//! that drive the connection core without the network (`conn/tests/`).
//!
//! The trait is what the connection code asks of a socket and nothing more: read,
//! (vectored) write, shutdown, opening a connection and learning when its handshake
//! finished, registering it with the poll, and, for `splice(2)`, its descriptor.
//! Readiness is not the socket's business: the server sets it from poll events (the
//! test harness from the in-memory socket's state), and [`super::io`] keeps it.

use std::io::{self, Read, Write};
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
}

impl Socket for TcpStream {
    fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect(addr)
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(self, token, Interest::READABLE | Interest::WRITABLE)
    }

    fn handshake(&self) -> io::Result<bool> {
        // mio's recipe asks take_error, then peer_addr; asking peer_addr first gives
        // the same answers and saves a system call on every successful connect.
        match self.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => match self.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => Ok(false),
            },
            Err(e) => Err(e),
        }
    }

    fn set_nodelay(&self) -> io::Result<()> {
        TcpStream::set_nodelay(self, true)
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }

    fn set_congestion(&self, name: &str) -> io::Result<()> {
        crate::sys::set_congestion(self, name)
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}
