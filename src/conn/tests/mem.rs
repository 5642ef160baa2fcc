//! An in-memory stream socket with the contract of a non-blocking TCP socket, and a
//! per-thread "network" of listening addresses it connects to.
//!
//! Each direction is a bounded byte queue, so a reader that stops reading makes the
//! writer's writes block (back-pressure), as a full socket buffer does. Closing or
//! shutting the write side ends the stream for the reader after the queued bytes;
//! a dropped socket makes the other side's writes fail (a reset), which is how a
//! client that hung up shows. A connection to an address nobody listens on fails
//! its handshake; one to a [`Network::black_hole`] never finishes it.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::BorrowedFd;
use std::rc::Rc;

use mio::{Registry, Token};

use crate::conn::Socket;

/// Bytes one direction holds before writes block.
const CAPACITY: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Queue {
    bytes: VecDeque<u8>,
    /// The writer shut its side: the reader gets end of stream after `bytes`.
    shut: bool,
}

#[derive(Debug, Default)]
struct Link {
    /// Index 0: bytes from end 0 to end 1; index 1 the other way.
    queues: [Queue; 2],
    /// An end was dropped: writes to it fail.
    dropped: [bool; 2],
    /// The congestion control an end asked for (`--tcp-congestion`).
    congestion: Option<String>,
}

/// One end of an in-memory connection.
#[derive(Debug)]
pub(crate) struct MemSocket {
    link: Rc<RefCell<Link>>,
    /// Which end this is (0 or 1).
    end: usize,
    /// The handshake never finishes (a connection into a black hole).
    stalled: bool,
    /// The handshake failed: nobody listens at the address.
    refused: bool,
    /// Nobody behind it ([`Socket::null`]): reads end, writes vanish.
    null: bool,
}

impl MemSocket {
    /// A connected pair of ends.
    pub(crate) fn pair() -> (MemSocket, MemSocket) {
        let link = Rc::new(RefCell::new(Link::default()));
        let a = MemSocket {
            link: Rc::clone(&link),
            end: 0,
            stalled: false,
            refused: false,
            null: false,
        };
        let b = MemSocket {
            link,
            end: 1,
            stalled: false,
            refused: false,
            null: false,
        };
        (a, b)
    }

    /// Bytes queued for this end to read.
    pub(crate) fn readable(&self) -> usize {
        self.link.borrow().queues[1 - self.end].bytes.len()
    }

    /// The other end shut its write side (or is gone): after the queued bytes, this
    /// end reads end of stream.
    pub(crate) fn peer_shut(&self) -> bool {
        let link = self.link.borrow();
        link.queues[1 - self.end].shut || link.dropped[1 - self.end]
    }

    /// The other end is gone: writes fail.
    pub(crate) fn peer_gone(&self) -> bool {
        self.link.borrow().dropped[1 - self.end]
    }

    /// Room for this end's writes.
    pub(crate) fn writable(&self) -> usize {
        CAPACITY.saturating_sub(self.link.borrow().queues[self.end].bytes.len())
    }

    /// Everything queued for this end, taken.
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let mut link = self.link.borrow_mut();
        link.queues[1 - self.end].bytes.drain(..).collect()
    }

    /// Queues `bytes` for the other end, whatever the capacity (a test's side is
    /// never blocked).
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        let mut link = self.link.borrow_mut();
        link.queues[self.end].bytes.extend(bytes);
    }

    /// The congestion control either end asked for, if any.
    pub(crate) fn congestion(&self) -> Option<String> {
        self.link.borrow().congestion.clone()
    }

    /// The handshake of a connection this end started is finished (or failed).
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled
    }
}

impl Read for MemSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.null {
            return Ok(0);
        }
        if self.stalled {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let mut link = self.link.borrow_mut();
        let peer_dropped = link.dropped[1 - self.end];
        let q = &mut link.queues[1 - self.end];
        if q.bytes.is_empty() {
            return if q.shut || peer_dropped {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(q.bytes.len());
        for (dst, src) in buf.iter_mut().zip(q.bytes.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }
}

impl Write for MemSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.null {
            return Ok(bufs.iter().map(|b| b.len()).sum());
        }
        if self.stalled || self.refused {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let mut link = self.link.borrow_mut();
        if link.dropped[1 - self.end] {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let q = &mut link.queues[self.end];
        if q.shut {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let mut room = CAPACITY.saturating_sub(q.bytes.len());
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for buf in bufs {
            let take = buf.len().min(room);
            q.bytes.extend(buf.get(..take).unwrap_or_default());
            n += take;
            room -= take;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MemSocket {
    fn drop(&mut self) {
        if let Ok(mut link) = self.link.try_borrow_mut() {
            link.dropped[self.end] = true;
        }
    }
}

impl Socket for MemSocket {
    fn connect(addr: SocketAddr) -> io::Result<MemSocket> {
        NETWORK.with(|net| net.borrow_mut().connect(addr))
    }

    fn register(&mut self, _registry: &Registry, _token: Token) -> io::Result<()> {
        Ok(())
    }

    fn handshake(&self) -> io::Result<bool> {
        if self.refused {
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        Ok(!self.stalled)
    }

    fn set_nodelay(&self) -> io::Result<()> {
        Ok(())
    }

    fn set_congestion(&self, name: &str) -> io::Result<()> {
        self.link.borrow_mut().congestion = Some(name.to_owned());
        Ok(())
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let mut link = self.link.borrow_mut();
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            link.queues[self.end].shut = true;
        }
        Ok(())
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn null() -> MemSocket {
        let (mut near, _far) = MemSocket::pair();
        near.null = true;
        near
    }
}

/// What listens at an in-memory address.
#[derive(Debug)]
enum Listening {
    /// Connections are accepted: their far ends queue for the test to take.
    Accept(VecDeque<MemSocket>),
    /// Connections never finish their handshake (like a listener whose backlog is
    /// full).
    BlackHole,
}

/// The addresses in-memory sockets connect to, per test thread.
#[derive(Debug, Default)]
pub(crate) struct Network {
    listening: HashMap<SocketAddr, Listening>,
}

thread_local! {
    static NETWORK: RefCell<Network> = RefCell::new(Network::default());
}

impl Network {
    /// Forgets every address on this thread (a new harness starts from nothing).
    pub(crate) fn reset() {
        NETWORK.with(|net| net.borrow_mut().listening.clear());
    }

    /// Starts accepting connections to `addr` on this thread.
    pub(crate) fn listen(addr: SocketAddr) {
        NETWORK.with(|net| {
            net.borrow_mut()
                .listening
                .insert(addr, Listening::Accept(VecDeque::new()));
        });
    }

    /// Makes connections to `addr` on this thread hang in their handshake.
    pub(crate) fn black_hole(addr: SocketAddr) {
        NETWORK.with(|net| {
            net.borrow_mut()
                .listening
                .insert(addr, Listening::BlackHole);
        });
    }

    /// The oldest connection to `addr` not yet taken (its far end).
    pub(crate) fn accept(addr: SocketAddr) -> Option<MemSocket> {
        NETWORK.with(|net| match net.borrow_mut().listening.get_mut(&addr) {
            Some(Listening::Accept(queue)) => queue.pop_front(),
            _ => None,
        })
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<MemSocket> {
        let (mut near, far) = MemSocket::pair();
        match self.listening.get_mut(&addr) {
            Some(Listening::Accept(queue)) => queue.push_back(far),
            Some(Listening::BlackHole) => near.stalled = true,
            None => near.refused = true,
        }
        Ok(near)
    }
}
