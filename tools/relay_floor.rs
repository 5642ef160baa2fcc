//! The floor of pass-through cost: a blind TCP relay, one upstream connection per
//! client connection, bytes copied both ways and nothing parsed.
//!
//! ```text
//! cargo run --release --example relay-floor -- --listen 127.0.0.1:19070 --upstream 127.0.0.1:19000
//! ```
//!
//! Any userland HTTP proxy does at least this work per request: a read from the client,
//! a write to the origin, a read from the origin, a write to the client, and its share
//! of an `epoll_wait`. Run in larder's place (`tools/loadtest.sh` does), it shows how
//! much of a pass-through figure is the kernel's and how much is larder's own (parsing,
//! rewriting heads, the cache lookup). An origin that takes absolute-form targets (the
//! `origin` example does) answers wrk's proxy requests through it.
//!
//! One thread, one edge-triggered `mio::Poll`. Bytes a side cannot take yet wait in
//! that side's queue; the other side is not read again until the queue drains (so a
//! slow reader holds at most one read's worth, 64 KiB, per direction). EOF is passed on
//! as a half-close; an error on either side closes both. Only loopback addresses are
//! accepted for both ends. Its sockets take the congestion control larder's would on
//! loopback (`larder::conn::congestion`: an unpaced one where the system's paces), so
//! that the floor is not raised by pacing larder does not pay.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;

use larder::conn::congestion::{self, Congestion};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
const READ_SIZE: usize = 64 * 1024;

/// One end of a relayed pair.
struct Side {
    sock: TcpStream,
    /// The other end's slab key.
    peer: usize,
    /// Bytes read from the peer, not yet written to this end.
    queue: Vec<u8>,
    /// The peer reached EOF: shut this end's write side once `queue` drains.
    peer_eof: bool,
    /// This end has readable data left unread because the peer's queue was full.
    held: bool,
    /// This end's read side reached EOF.
    eof: bool,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, upstream) = match parse_args(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("relay-floor: {e}\nusage: relay-floor --listen ADDR --upstream ADDR");
            return ExitCode::from(2);
        }
    };
    match run(listen, upstream) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> Result<(SocketAddr, SocketAddr), String> {
    let (mut listen, mut upstream) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let addr: SocketAddr = value
            .parse()
            .map_err(|_| format!("{value}: not an address (IP:PORT)"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("{addr}: only loopback addresses are used"));
        }
        match flag.as_str() {
            "--listen" => listen = Some(addr),
            "--upstream" => upstream = Some(addr),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((
        listen.ok_or("--listen is required")?,
        upstream.ok_or("--upstream is required")?,
    ))
}

fn run(listen: SocketAddr, upstream: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    let system = congestion::system();
    let chosen = Congestion::choose(None, system.as_deref(), |name| {
        larder::sys::set_congestion(&listener, name).is_ok()
    });
    // Accepted sockets inherit the listener's; upstream ones get it in `accept`.
    let unpaced = chosen.for_upstream(upstream.ip()).map(str::to_string);
    relay(listener, upstream, unpaced.as_deref())
}

/// Relays every connection `listener` accepts to `upstream`, for ever.
fn relay(
    mut listener: TcpListener,
    upstream: SocketAddr,
    congestion: Option<&str>,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut sides: Slab<Side> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept(&listener, upstream, congestion, &poll, &mut sides);
                continue;
            }
            let key = event.token().0;
            let mut ok = true;
            if event.is_writable() || event.is_error() {
                ok = flush(&mut sides, key, &mut buf);
            }
            if ok && (event.is_readable() || event.is_read_closed() || event.is_error()) {
                ok = pump(&mut sides, key, &mut buf);
            }
            if !ok {
                close_pair(&poll, &mut sides, key);
            }
        }
    }
}

fn accept(
    listener: &TcpListener,
    upstream: SocketAddr,
    congestion: Option<&str>,
    poll: &Poll,
    sides: &mut Slab<Side>,
) {
    loop {
        let (client, _) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                eprintln!("relay-floor: accept: {e}");
                return;
            }
        };
        let origin = match TcpStream::connect(upstream) {
            Ok(s) => {
                if let Some(name) = congestion {
                    let _ = larder::sys::set_congestion(&s, name);
                }
                s
            }
            Err(e) => {
                eprintln!("relay-floor: connect {upstream}: {e}");
                continue;
            }
        };
        // Two entries, each naming the other.
        let c = sides.insert(side(client, usize::MAX));
        let o = sides.insert(side(origin, c));
        let both = Interest::READABLE | Interest::WRITABLE;
        let mut registered = true;
        for (key, peer) in [(c, o), (o, c)] {
            if let Some(s) = sides.get_mut(key) {
                s.peer = peer;
                let _ = s.sock.set_nodelay(true);
                registered &= poll
                    .registry()
                    .register(&mut s.sock, Token(key), both)
                    .is_ok();
            }
        }
        if !registered {
            close_pair(poll, sides, c);
        }
    }
}

fn side(sock: TcpStream, peer: usize) -> Side {
    Side {
        sock,
        peer,
        queue: Vec::new(),
        peer_eof: false,
        held: false,
        eof: false,
    }
}

/// Reads from `key` and writes to its peer until `key` would block, the peer cannot
/// take more, or EOF. False when the pair is done: an error, or EOF both ways.
fn pump(sides: &mut Slab<Side>, key: usize, buf: &mut [u8]) -> bool {
    let Some(peer) = sides.get(key).map(|s| s.peer) else {
        return true;
    };
    if !sides.contains(peer) {
        return false;
    }
    loop {
        if !sides[peer].queue.is_empty() {
            sides[key].held = true;
            return true;
        }
        let n = match sides[key].sock.read(buf) {
            Ok(0) => {
                sides[key].eof = true;
                sides[peer].peer_eof = true;
                return flush(sides, peer, buf) && !sides[peer].eof;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let data = buf.get(..n).unwrap_or_default();
        match write_some(&mut sides[peer].sock, data) {
            Ok(w) => sides[peer]
                .queue
                .extend_from_slice(data.get(w..).unwrap_or_default()),
            Err(_) => return false,
        }
    }
}

/// Writes what `key`'s queue holds, passes on EOF once it is empty, and resumes reading
/// the peer if it was held back. False on an error.
fn flush(sides: &mut Slab<Side>, key: usize, buf: &mut [u8]) -> bool {
    let Some(s) = sides.get_mut(key) else {
        return true;
    };
    if !s.queue.is_empty() {
        match write_some(&mut s.sock, &s.queue) {
            Ok(w) => {
                s.queue.drain(..w);
            }
            Err(_) => return false,
        }
    }
    if !s.queue.is_empty() {
        return true;
    }
    if s.peer_eof {
        let _ = s.sock.shutdown(Shutdown::Write);
    }
    let peer = s.peer;
    match sides.get_mut(peer) {
        Some(p) if p.held => {
            p.held = false;
            pump(sides, peer, buf)
        }
        _ => true,
    }
}

/// Writes as much of `data` as the socket takes now.
fn write_some(sock: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < data.len() {
        match sock.write(data.get(done..).unwrap_or_default()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // Not connected yet: the bytes wait for the writable event.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn close_pair(poll: &Poll, sides: &mut Slab<Side>, key: usize) {
    let peer = sides.get(key).map(|s| s.peer);
    for k in [Some(key), peer].into_iter().flatten() {
        if let Some(mut s) = sides.try_remove(k) {
            let _ = poll.registry().deregister(&mut s.sock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener as StdListener;

    /// Bytes go both ways, and each side's EOF reaches the other as a half-close.
    #[test]
    fn bytes_and_half_closes_cross_the_relay() {
        let origin = StdListener::bind("127.0.0.1:0").expect("bind origin");
        let upstream = origin.local_addr().expect("origin address");
        let front = StdListener::bind("127.0.0.1:0").expect("bind relay");
        let addr = front.local_addr().expect("relay address");
        front.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || relay(TcpListener::from_std(front), upstream, None));
        let server = std::thread::spawn(move || {
            let (mut s, _) = origin.accept().expect("accept");
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("read to the client's EOF");
            s.write_all(b"world").expect("answer");
            got
        });
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        client.write_all(b"hello").expect("send");
        client.shutdown(Shutdown::Write).expect("half-close");
        let mut answer = Vec::new();
        client
            .read_to_end(&mut answer)
            .expect("read to the origin's EOF");
        assert_eq!(answer, b"world");
        assert_eq!(server.join().expect("origin thread"), b"hello");
    }

    #[test]
    fn only_loopback_addresses_are_taken() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(parse_args(&args(&["--listen", "127.0.0.1:1", "--upstream", "[::1]:2"])).is_ok());
        assert!(parse_args(&args(&[
            "--listen",
            "0.0.0.0:1",
            "--upstream",
            "127.0.0.1:2"
        ]))
        .is_err());
        assert!(parse_args(&args(&["--listen", "127.0.0.1:1"])).is_err());
        assert!(parse_args(&args(&["--listen"])).is_err());
    }
}
