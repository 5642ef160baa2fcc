//! A fast HTTP/1.1 origin server for load tests of larder.
//!
//! ```text
//! cargo run --release --example origin -- --listen 127.0.0.1:8080 --size 1024
//! ```
//!
//! Every `GET` is answered `200 OK` with `Content-Length`,
//! `Cache-Control: public, max-age=86400` and a body of `--size` bytes; the path
//! `/size/N` asks for N bytes instead (at most 1 GiB). A path under `/nc/` (`/nc/size/N`)
//! is answered the same with `Cache-Control: no-store`, so that a proxy's pass-through
//! can be measured beside its hits. `HEAD` gets the same head without the body.
//! Connections stay open (HTTP/1.1 keep-alive, HTTP/1.0 with `Connection: keep-alive`)
//! and pipelined requests are answered in order. Anything else (another method, a
//! request body, a malformed head) gets an empty 400/405 answer and the connection is
//! closed after it.
//!
//! One thread, one edge-triggered `mio::Poll`. Bodies are never built per response: they
//! are written straight from one shared filler buffer with vectored writes, so a 4 MiB
//! object costs no memory per connection. Once bound, the server prints
//! `origin listening on ADDR` on stdout (ADDR with the real port when given port 0).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const USAGE: &str = "usage: origin [--listen ADDR] [--size BYTES]
  --listen ADDR   address to bind (default 127.0.0.1:8080; port 0 picks a free one)
  --size BYTES    body size for every path but /size/N (default 1024)";

const LISTENER: Token = Token(usize::MAX);
/// Largest body `/size/N` may ask for; beyond it a typo would stream for minutes.
const MAX_SIZE: usize = 1 << 30;
/// A request head that is still incomplete at this size is refused.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// Parsed but unanswered requests per connection; reading pauses at this depth so a
/// client that pipelines without reading cannot make us buffer without bound.
const MAX_QUEUED: usize = 64;
/// Bodies are slices of one filler buffer this long.
const FILL_LEN: usize = 64 * 1024;
/// Slices handed to one `writev`: heads and body pieces of several queued responses.
const MAX_IOV: usize = 64;
const READ_CHUNK: usize = 16 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, size) = match parse_args(&args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("origin: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(addr, size) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("origin: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads `--listen ADDR` and `--size BYTES`; `Ok(None)` means help was asked for.
fn parse_args(args: &[String]) -> Result<Option<(SocketAddr, usize)>, String> {
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut size = 1024;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" | "--size" => {
                let value = it.next().ok_or(format!("{flag} needs a value"))?;
                if flag == "--listen" {
                    addr = value
                        .parse()
                        .map_err(|_| format!("bad address {value:?}"))?;
                } else {
                    size = parse_size(value).ok_or(format!("bad size {value:?}"))?;
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some((addr, size)))
}

/// A body size: decimal digits only, at most [`MAX_SIZE`].
fn parse_size(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&n| n <= MAX_SIZE)
}

/// What to answer to one request.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// `200 OK` announcing `len` bytes; `body` is false for HEAD, `store` false for
    /// `no-store`.
    Ok {
        len: usize,
        body: bool,
        store: bool,
        http10: bool,
        close: bool,
    },
    /// An empty answer with this status line, then close.
    Refuse(&'static str),
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// More bytes are needed.
    Partial,
    /// One request head of `used` bytes at the start of the buffer.
    Request { used: usize, reply: Reply },
}

/// Parses the request head at the start of `buf`; `default_size` is the body size for
/// paths other than `/size/N`. Never fails: a bad request parses to a refusal.
fn parse_request(buf: &[u8], default_size: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parsed::Partial,
        Ok(httparse::Status::Partial) | Err(_) => {
            return Parsed::Request {
                used: buf.len(),
                reply: Reply::Refuse("400 Bad Request"),
            }
        }
    };
    Parsed::Request {
        used,
        reply: reply_for(&req, default_size),
    }
}

fn reply_for(req: &httparse::Request, default_size: usize) -> Reply {
    let body = match req.method {
        Some("GET") => true,
        Some("HEAD") => false,
        _ => return Reply::Refuse("405 Method Not Allowed"),
    };
    let mut keep_alive_token = false;
    let mut close_token = false;
    for h in req.headers.iter() {
        let name = h.name;
        // A body would have to be skipped to find the next pipelined request; load
        // tests never send one, so it is refused rather than half-supported.
        if name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && h.value != b"0")
        {
            return Reply::Refuse("400 Bad Request");
        }
        if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                close_token |= token.eq_ignore_ascii_case(b"close");
            }
        }
    }
    let http10 = req.version == Some(0);
    let path = req.path.unwrap_or("/");
    // Servers must accept absolute-form (RFC 9112, 3.2.2); it also lets the wrk proxy
    // scripts be pointed straight at the origin.
    let path = match path.strip_prefix("http://") {
        Some(rest) => rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/"),
        None => path,
    };
    let path = path.split('?').next().unwrap_or(path);
    let (store, path) = match path.strip_prefix("/nc") {
        Some(rest) if rest.starts_with('/') => (false, rest),
        _ => (true, path),
    };
    let len = match path.strip_prefix("/size/") {
        Some(n) => match parse_size(n) {
            Some(n) => n,
            None => return Reply::Refuse("400 Bad Request"),
        },
        None => default_size,
    };
    Reply::Ok {
        len,
        body,
        store,
        http10,
        close: close_token || (http10 && !keep_alive_token),
    }
}

/// Appends the response head for `reply` to `out`.
fn write_head(out: &mut Vec<u8>, reply: &Reply) {
    // Writing into a Vec cannot fail.
    let _ = match *reply {
        Reply::Ok {
            len,
            store,
            http10,
            close,
            ..
        } => {
            let cache_control = if store {
                "public, max-age=86400"
            } else {
                "no-store"
            };
            let connection = if close {
                "Connection: close\r\n"
            } else if http10 {
                "Connection: keep-alive\r\n"
            } else {
                ""
            };
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\
                 Cache-Control: {cache_control}\r\n\
                 Content-Type: application/octet-stream\r\n{connection}\r\n"
            )
        }
        Reply::Refuse(status) => write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    };
}

/// One queued response: head bytes still unsent (they sit in [`Output::heads`]) and
/// body bytes still unsent (they come from the filler).
#[derive(Debug)]
struct Segment {
    head_left: usize,
    body_left: usize,
}

/// The responses queued on one connection, in order.
#[derive(Debug, Default)]
struct Output {
    /// Unsent heads back to back, starting at `pos`.
    heads: Vec<u8>,
    pos: usize,
    segments: VecDeque<Segment>,
}

impl Output {
    fn len(&self) -> usize {
        self.segments.len()
    }

    fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Queues `reply`, whose body (if any) is `body_len` bytes of filler.
    fn push(&mut self, reply: &Reply, body_len: usize) {
        let before = self.heads.len();
        write_head(&mut self.heads, reply);
        self.segments.push_back(Segment {
            head_left: self.heads.len() - before,
            body_left: body_len,
        });
    }

    /// Fills `iov` with the next bytes to send, in order; returns how many slices.
    fn gather<'a>(&'a self, filler: &'a [u8], iov: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut head_at = self.pos;
        for seg in &self.segments {
            if seg.head_left > 0 {
                let Some(head) = self.heads.get(head_at..head_at + seg.head_left) else {
                    break;
                };
                let Some(slot) = iov.get_mut(n) else { break };
                *slot = IoSlice::new(head);
                n += 1;
                head_at += seg.head_left;
            }
            let mut left = seg.body_left;
            while left > 0 {
                let Some(slot) = iov.get_mut(n) else {
                    return n;
                };
                let piece = left.min(filler.len());
                *slot = IoSlice::new(filler.get(..piece).unwrap_or_default());
                n += 1;
                left -= piece;
            }
        }
        n
    }

    /// Marks `sent` bytes (as counted by `gather`'s order) as written.
    fn consume(&mut self, mut sent: usize) {
        while let Some(seg) = self.segments.front_mut() {
            let head = sent.min(seg.head_left);
            seg.head_left -= head;
            self.pos += head;
            sent -= head;
            let body = sent.min(seg.body_left);
            seg.body_left -= body;
            sent -= body;
            if seg.head_left > 0 || seg.body_left > 0 {
                break;
            }
            self.segments.pop_front();
        }
        if self.segments.is_empty() {
            self.heads.clear();
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.heads.len() {
            // A client that keeps the pipeline full never empties the queue.
            self.heads.drain(..self.pos);
            self.pos = 0;
        }
    }
}

/// One client connection. Readiness is kept here because the poll is edge-triggered:
/// a flag is cleared only when the socket says WouldBlock.
struct Conn {
    stream: TcpStream,
    readable: bool,
    writable: bool,
    /// Received bytes not yet parsed into a request.
    input: Vec<u8>,
    output: Output,
    /// The peer sent EOF: answer what was parsed, then close.
    eof: bool,
    /// A response that ends the connection is queued; parse nothing more.
    closing: bool,
}

/// Whether a connection lives on after being driven.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Keep,
    Close,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            readable: false,
            writable: false,
            input: Vec::new(),
            output: Output::default(),
            eof: false,
            closing: false,
        }
    }

    /// Parses, writes and reads until the socket would block or the connection is done.
    fn drive(&mut self, default_size: usize, filler: &[u8], scratch: &mut [u8]) -> Next {
        loop {
            self.parse(default_size);
            if self.writable && !self.output.is_empty() {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n = self.output.gather(filler, &mut iov);
                let iov = iov.get(..n).unwrap_or_default();
                let offered: usize = iov.iter().map(|s| s.len()).sum();
                match self.stream.write_vectored(iov) {
                    Ok(0) => return Next::Close,
                    Ok(sent) => {
                        self.output.consume(sent);
                        // A short write means the send buffer is full: the next edge
                        // comes when it drains, so skip the write that would block.
                        self.writable = sent == offered;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Next::Close,
                }
                continue;
            }
            if self.output.is_empty() && (self.closing || self.eof) {
                return Next::Close;
            }
            let room = !self.eof && !self.closing && self.output.len() < MAX_QUEUED;
            if !(self.readable && room) {
                return Next::Keep;
            }
            match self.stream.read(scratch) {
                Ok(0) => self.eof = true,
                Ok(n) => self
                    .input
                    .extend_from_slice(scratch.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
    }

    /// Queues answers for every complete request in `input`, up to [`MAX_QUEUED`].
    fn parse(&mut self, default_size: usize) {
        let mut at = 0;
        while !self.closing && self.output.len() < MAX_QUEUED {
            let rest = self.input.get(at..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            match parse_request(rest, default_size) {
                Parsed::Partial => break,
                Parsed::Request { used, reply } => {
                    at += used;
                    let body_len = match reply {
                        Reply::Ok {
                            len, body: true, ..
                        } => len,
                        _ => 0,
                    };
                    self.closing =
                        matches!(reply, Reply::Refuse(_) | Reply::Ok { close: true, .. });
                    self.output.push(&reply, body_len);
                }
            }
        }
        self.input.drain(..at.min(self.input.len()));
    }
}

/// Serves forever on `addr`; returns only on a setup or poll error.
fn run(addr: SocketAddr, default_size: usize) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("origin listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    let filler = vec![b'x'; FILL_LEN];
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    // Kept across turns: after a failed accept (e.g. out of fds) the edge will not fire
    // again for connections already waiting, so accepting resumes when one closes.
    let mut accept_ready = false;

    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let mut listener_fired = false;
        let mut closed_any = false;
        for event in events.iter() {
            if event.token() == LISTENER {
                listener_fired = true;
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key).and_then(Option::as_mut) else {
                continue;
            };
            conn.readable |= event.is_readable() || event.is_read_closed() || event.is_error();
            conn.writable |= event.is_writable() || event.is_write_closed() || event.is_error();
            if conn.drive(default_size, &filler, &mut scratch) == Next::Close {
                if let Some(mut conn) = conns.get_mut(key).and_then(Option::take) {
                    let _ = poll.registry().deregister(&mut conn.stream);
                }
                free.push(key);
                closed_any = true;
            }
        }
        // Accepting after the batch keeps a stale event from reaching a reused key.
        if listener_fired || (accept_ready && closed_any) {
            accept_ready = accept(&listener, &poll, &mut conns, &mut free);
        }
    }
}

/// Accepts until the backlog is empty; returns whether connections may still be waiting.
fn accept(
    listener: &TcpListener,
    poll: &Poll,
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
) -> bool {
    loop {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("origin: accept: {e}");
                return true;
            }
        };
        // Small pipelined responses must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let key = free.pop().unwrap_or_else(|| {
            conns.push(None);
            conns.len() - 1
        });
        // Registration reports readiness the socket already has, so nothing is missed.
        if let Err(e) = poll.registry().register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            eprintln!("origin: register: {e}");
            free.push(key);
            continue;
        }
        if let Some(slot) = conns.get_mut(key) {
            *slot = Some(Conn::new(stream));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(len: usize, body: bool, http10: bool, close: bool) -> Reply {
        Reply::Ok {
            len,
            body,
            store: true,
            http10,
            close,
        }
    }

    /// The reply to a complete request head.
    fn reply(req: &[u8], default_size: usize) -> Reply {
        match parse_request(req, default_size) {
            Parsed::Request { reply, .. } => reply,
            Parsed::Partial => panic!("partial: {req:?}"),
        }
    }

    #[test]
    fn get_uses_default_size_and_keeps_alive() {
        let req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET";
        let want = Parsed::Request {
            used: req.len() - 3,
            reply: ok(1024, true, false, false),
        };
        assert_eq!(parse_request(req, 1024), want);
    }

    #[test]
    fn size_path_overrides_default_in_origin_and_absolute_form() {
        let want = ok(262144, true, false, false);
        assert_eq!(reply(b"GET /size/262144?x=1 HTTP/1.1\r\n\r\n", 1), want);
        let abs = b"GET http://127.0.0.1:1/size/262144 HTTP/1.1\r\n\r\n";
        assert_eq!(reply(abs, 1), want);
    }

    #[test]
    fn nc_paths_are_no_store() {
        let nc = |len| Reply::Ok {
            len,
            body: true,
            store: false,
            http10: false,
            close: false,
        };
        assert_eq!(reply(b"GET /nc/size/5 HTTP/1.1\r\n\r\n", 1), nc(5));
        assert_eq!(reply(b"GET http://h:1/nc/a?b HTTP/1.1\r\n\r\n", 7), nc(7));
        assert_eq!(
            reply(b"GET /ncx HTTP/1.1\r\n\r\n", 7),
            ok(7, true, false, false)
        );
        let mut head = Vec::new();
        write_head(&mut head, &nc(5));
        let head = String::from_utf8(head).unwrap();
        assert!(head.contains("Cache-Control: no-store\r\n"), "{head}");
    }

    #[test]
    fn bad_or_huge_size_is_refused() {
        for path in [
            "/size/",
            "/size/+5",
            "/size/1x",
            "/size/1073741825",
            "/size/1e3",
        ] {
            let req = format!("GET {path} HTTP/1.1\r\n\r\n");
            assert_eq!(reply(req.as_bytes(), 1), Reply::Refuse("400 Bad Request"));
        }
        let huge = b"GET /size/99999999999999999999999999 HTTP/1.1\r\n\r\n";
        assert_eq!(reply(huge, 1), Reply::Refuse("400 Bad Request"));
    }

    #[test]
    fn head_has_no_body() {
        assert_eq!(
            reply(b"HEAD / HTTP/1.1\r\n\r\n", 7),
            ok(7, false, false, false)
        );
    }

    #[test]
    fn connection_tokens_decide_keep_alive() {
        let v11_close = b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n";
        assert_eq!(reply(v11_close, 1), ok(1, true, false, true));
        assert_eq!(reply(b"GET / HTTP/1.0\r\n\r\n", 1), ok(1, true, true, true));
        let v10_keep = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        assert_eq!(reply(v10_keep, 1), ok(1, true, true, false));
    }

    #[test]
    fn bodies_other_methods_and_garbage_are_refused() {
        let cases: [&[u8]; 4] = [
            b"POST / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"\x00\x01garbage\r\n\r\n",
        ];
        for req in cases {
            assert!(matches!(reply(req, 1), Reply::Refuse(_)), "{req:?}");
        }
    }

    #[test]
    fn incomplete_head_waits_until_the_limit() {
        let partial = b"GET / HTTP/1.1\r\nHost:";
        assert_eq!(parse_request(partial, 1), Parsed::Partial);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(reply(&big, 1), Reply::Refuse("400 Bad Request"));
    }

    /// Everything `out` sends when each write takes at most `step` bytes.
    fn drain(out: &mut Output, filler: &[u8], step: usize) -> Vec<u8> {
        let mut sent = Vec::new();
        while !out.is_empty() {
            let mut iov = [IoSlice::new(&[]); 4];
            let n = out.gather(filler, &mut iov);
            let bytes: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
            let taken = bytes.len().min(step);
            sent.extend_from_slice(&bytes[..taken]);
            out.consume(taken);
        }
        sent
    }

    #[test]
    fn output_sends_heads_and_bodies_in_order_across_partial_writes() {
        let replies = [
            ok(7, true, false, false),
            ok(7, false, false, false),
            Reply::Refuse("400 Bad Request"),
        ];
        let mut want = Vec::new();
        write_head(&mut want, &replies[0]);
        want.extend_from_slice(b"xxxxxxx");
        write_head(&mut want, &replies[1]);
        write_head(&mut want, &replies[2]);
        for step in [1, 2, 5, 7, 1000] {
            let mut out = Output::default();
            out.push(&replies[0], 7);
            out.push(&replies[1], 0);
            out.push(&replies[2], 0);
            assert_eq!(drain(&mut out, b"xxx", step), want, "step {step}");
            assert!(out.heads.is_empty() && out.pos == 0);
        }
    }

    #[test]
    fn output_heads_buffer_stays_bounded_while_never_empty() {
        let mut out = Output::default();
        out.push(&ok(1, true, false, false), 1);
        for _ in 0..10_000 {
            out.push(&ok(1, true, false, false), 1);
            let mut iov = [IoSlice::new(&[]); 2];
            let n = out.gather(b"x", &mut iov);
            out.consume(iov[..n].iter().map(|s| s.len()).sum());
        }
        assert_eq!(out.len(), 1);
        assert!(out.heads.len() < 16 * 1024);
    }

    #[test]
    fn args_parse_and_reject() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let good = parse_args(&args(&["--listen", "127.0.0.1:0", "--size", "5"]));
        assert_eq!(good, Ok(Some((SocketAddr::from(([127, 0, 0, 1], 0)), 5))));
        assert_eq!(parse_args(&args(&["--help"])), Ok(None));
        for bad in [
            &["--size"][..],
            &["--size", "-1"],
            &["--listen", "x"],
            &["extra"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
