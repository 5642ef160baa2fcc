//! A CONNECT-tunnel setup-rate load client: how many short tunnels per second a proxy
//! opens, carries and closes.
//!
//! ```text
//! cargo run --release --example connect-rate -- --proxy 127.0.0.1:19098 \
//!     --target 127.0.0.1:19000 --path /size/1024 --conns 32 --duration 6
//! ```
//!
//! (the target being the `origin` example, the proxy a larder started with
//! `--connect-ports 19000`). Each tunnel is a new TCP connection to the proxy
//! (`TCP_NODELAY`), `CONNECT host:port HTTP/1.1` with `Host`, the proxy's answer required
//! to be `200` with nothing after its head, then `GET PATH HTTP/1.1` with `Host` and
//! `Connection: close` inside the tunnel, the response read until EOF and required to be
//! `200` with exactly `Content-Length` body bytes (any length when it has none), close. `--direct` connects
//! straight to the target and skips the CONNECT: the ceiling of the machine. `--conns`
//! streams each run one tunnel after another, all on one thread and one edge-triggered
//! `mio::Poll`. The client's own work is a few microseconds per tunnel; most of the CPU
//! time its thread shows is the kernel's loopback TCP work (both ends of each packet it
//! sends), which no client can shed.
//!
//! New tunnels start until `--duration` has passed; those in flight then get up to
//! [`GRACE`] more to finish and count as errors if they have not. The output is one line,
//! `tunnels=N rate=R/s errors=E p50_ms=.. p99_ms=..`: the rate is completed tunnels over
//! the whole run, a tunnel's latency runs from its `connect` to the response's EOF. A
//! failed tunnel (refused, reset, a non-200 answer, a short or long body) is counted and
//! its stream goes on; the first failure is described on stderr. The exit status is 1
//! when errors are more than half the attempts, 2 for bad arguments.
//!
//! Only 127.0.0.1 is ever connected to: other addresses are refused.
//!
//! Every tunnel takes a fresh ephemeral port, so at tens of thousands per second the
//! ports (`net.ipv4.ip_local_port_range`, 28k by default) are reused within the 60 s a
//! closed connection spends in TIME_WAIT on the side that closed first. Reading to EOF
//! makes that the proxy's or the origin's side, and Linux lets `connect` reuse a
//! TIME_WAIT port towards loopback (`net.ipv4.tcp_tw_reuse`, default 2). Should ports
//! still run out, `connect` fails with `EADDRNOTAVAIL`: like any failure before the
//! request is sent, it is counted and the stream waits [`BACKOFF`] before its next try.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

const USAGE: &str =
    "usage: connect-rate (--proxy 127.0.0.1:PORT | --direct) [--target ADDR] [--path PATH]
                    [--conns N] [--duration SECS]
  --proxy ADDR      the proxy to open tunnels through (127.0.0.1 only)
  --direct          no proxy, no CONNECT: GET straight from the target (the ceiling)
  --target ADDR     the tunnels' destination (127.0.0.1 only; default 127.0.0.1:19000)
  --path PATH       what to GET in each tunnel (default /size/1024)
  --conns N         concurrent streams, at most 4096 (default 32)
  --duration SECS   how long new tunnels are started, at most 3600 (default 6)";

const MAX_CONNS: usize = 4096;
const MAX_DURATION: f64 = 3600.0;
/// How long tunnels in flight at the end of the run may take to finish.
const GRACE: Duration = Duration::from_secs(1);
/// A stream's pause after a failed connect, so a refusing or port-starved machine is
/// retried at a bounded pace rather than in a busy loop.
const BACKOFF: Duration = Duration::from_millis(1);
/// A response head still incomplete at this size is a failure.
const MAX_HEAD: usize = 16 * 1024;
const READ_CHUNK: usize = 64 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse_args(&args) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("connect-rate: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let report = match run(&cfg) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("connect-rate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let secs = report.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        report.tunnels as f64 / secs
    } else {
        0.0
    };
    println!(
        "tunnels={} rate={rate:.0}/s errors={} p50_ms={:.3} p99_ms={:.3}",
        report.tunnels,
        report.errors,
        report.latency.percentile(50) as f64 / 1000.0,
        report.latency.percentile(99) as f64 / 1000.0,
    );
    if let Some(why) = &report.first_error {
        eprintln!("connect-rate: first error: {why}");
    }
    if report.errors.saturating_mul(2) > report.tunnels.saturating_add(report.errors) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// What to run, from the command line.
#[derive(Debug, PartialEq)]
struct Config {
    /// `None` with `--direct`.
    proxy: Option<SocketAddr>,
    target: SocketAddr,
    path: String,
    conns: usize,
    duration: Duration,
}

/// Reads the flags in [`USAGE`]; `Ok(None)` means help was asked for.
fn parse_args(args: &[String]) -> Result<Option<Config>, String> {
    let mut proxy = None;
    let mut direct = false;
    let mut target = SocketAddr::from((Ipv4Addr::LOCALHOST, 19000));
    let mut path = String::from("/size/1024");
    let mut conns = 32;
    let mut duration = Duration::from_secs(6);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--direct" => direct = true,
            "--proxy" | "--target" | "--path" | "--conns" | "--duration" => {
                let value = it.next().ok_or(format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--proxy" => proxy = Some(parse_loopback(value)?),
                    "--target" => target = parse_loopback(value)?,
                    "--path" => path = parse_path(value)?,
                    "--conns" => {
                        conns = value
                            .parse()
                            .ok()
                            .filter(|n| (1..=MAX_CONNS).contains(n))
                            .ok_or(format!("bad --conns {value:?}"))?;
                    }
                    _ => {
                        duration = value
                            .parse::<f64>()
                            .ok()
                            .filter(|s| *s > 0.0 && *s <= MAX_DURATION)
                            .and_then(|s| Duration::try_from_secs_f64(s).ok())
                            .ok_or(format!("bad --duration {value:?}"))?;
                    }
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if direct {
        proxy = None;
    } else if proxy.is_none() {
        return Err("--proxy or --direct is needed".to_string());
    }
    Ok(Some(Config {
        proxy,
        target,
        path,
        conns,
        duration,
    }))
}

/// An address on 127.0.0.1 with a port: the only place this tool sends load to.
fn parse_loopback(value: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = value
        .parse()
        .map_err(|_| format!("bad address {value:?}"))?;
    if addr.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST) || addr.port() == 0 {
        return Err(format!(
            "{value:?} is not 127.0.0.1:PORT; only loopback is allowed"
        ));
    }
    Ok(addr)
}

/// A request target in origin form: `/` then visible ASCII, so the request line stays
/// well-formed.
fn parse_path(value: &str) -> Result<String, String> {
    if value.starts_with('/') && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "bad path {value:?}: must start with / and hold no spaces"
        ))
    }
}

/// What the client needs from a response head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    /// `None` when absent: the body then ends at EOF.
    content_length: Option<u64>,
}

/// Where the blank line ending a head is: the length of the head without it and the
/// length with it. `from` is where the search may start (bytes before it were searched).
fn head_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let start = from.saturating_sub(3);
    let at = buf
        .get(start..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")?;
    let end = start.checked_add(at)?;
    Some((end, end.checked_add(4)?))
}

/// Parses an HTTP/1.x response head, without its blank line.
fn parse_head(head: &[u8]) -> Result<Head, &'static str> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let rest = status_line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix(b"HTTP/1.0 "))
        .ok_or("malformed status line")?;
    let code = rest
        .get(..3)
        .filter(|c| c.iter().all(u8::is_ascii_digit))
        .ok_or("malformed status line")?;
    if rest.get(3).is_some_and(|&b| b != b' ') {
        return Err("malformed status line");
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let mut content_length = None;
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("header line without a colon")?;
        let (name, value) = line.split_at(colon);
        if !name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        let len = std::str::from_utf8(value)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or("bad Content-Length")?;
        if content_length.is_some_and(|old| old != len) {
            return Err("conflicting Content-Length headers");
        }
        content_length = Some(len);
    }
    Ok(Head {
        status,
        content_length,
    })
}

/// Latencies in microseconds as counts in log-linear buckets: exact below [`SUB`] µs,
/// then [`SUB`] buckets per power of two, so memory is fixed and a percentile is within
/// about 3% of the true one.
struct Histogram {
    counts: [u64; BUCKETS],
    total: u64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// One exact range below [`SUB`], then one range per exponent from `SUB_BITS` to 63.
const BUCKETS: usize = ((64 - SUB_BITS + 1) as usize) * (SUB as usize);

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: [0; BUCKETS],
            total: 0,
        }
    }

    fn bucket(us: u64) -> usize {
        if us < SUB {
            return us as usize;
        }
        let shift = u64::from(63 - us.leading_zeros() - SUB_BITS);
        let sub = (us >> shift) - SUB;
        ((shift + 1) * SUB + sub) as usize
    }

    /// The middle of bucket `i`, the value reported for every sample in it.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let shift = i / SUB - 1;
        let low = (SUB + i % SUB) << shift;
        low + ((1u64 << shift) - 1) / 2
    }

    fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if let Some(count) = self.counts.get_mut(Histogram::bucket(us)) {
            *count += 1;
            self.total += 1;
        }
    }

    /// The `pct`th percentile (nearest rank) in microseconds; 0 when nothing was recorded.
    fn percentile(&self, pct: u64) -> u64 {
        let rank = self.total.saturating_mul(pct.min(100)).div_ceil(100).max(1);
        let mut seen = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Histogram::value(i);
            }
        }
        0
    }
}

/// Where a tunnel is in its exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Writing the CONNECT; the TCP handshake may still be in flight.
    SendConnect,
    /// Reading the proxy's answer to the CONNECT.
    ReadConnect,
    /// Writing the GET (the first bytes on the socket with `--direct`).
    SendGet,
    /// Reading the response to the GET until EOF.
    ReadResponse,
}

/// Why a tunnel failed; `connect` is true when no byte could be sent, which makes the
/// stream back off.
#[derive(Debug)]
struct Failure {
    connect: bool,
    why: String,
}

/// One tunnel: a connection, its progress and its readiness. Readiness is kept because
/// the poll is edge-triggered: a flag is cleared only when the socket says WouldBlock.
struct Tunnel {
    stream: TcpStream,
    started: Instant,
    step: Step,
    /// Bytes of the current request written.
    sent: usize,
    /// Whether a byte was written: before that, a failure is the connect's.
    connected: bool,
    readable: bool,
    writable: bool,
    /// The answer being read, until its head is complete.
    head: Vec<u8>,
    /// Set once the response head is parsed: its `Content-Length` and body bytes seen.
    body: Option<(Option<u64>, u64)>,
}

/// The two requests every tunnel sends, built once.
struct Requests {
    connect: Vec<u8>,
    get: Vec<u8>,
}

impl Requests {
    fn new(target: SocketAddr, path: &str) -> Requests {
        Requests {
            connect: format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").into_bytes(),
            get: format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
        }
    }
}

impl Tunnel {
    /// Starts the connect; `direct` skips the CONNECT. The socket counts as writable at
    /// first: on Linux a write to a socket still connecting fails with WouldBlock, and
    /// a loopback handshake is usually done by the time `connect` returns, so trying at
    /// once saves a turn of the poll.
    fn open(addr: SocketAddr, direct: bool, poll: &Poll, token: Token) -> io::Result<Tunnel> {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        poll.registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Tunnel {
            stream,
            started,
            step: if direct {
                Step::SendGet
            } else {
                Step::SendConnect
            },
            sent: 0,
            connected: false,
            readable: false,
            writable: true,
            head: Vec::new(),
            body: None,
        })
    }

    fn fail(&self, why: String) -> Failure {
        Failure {
            connect: !self.connected,
            why,
        }
    }

    /// Writes and reads until the socket would block (`Ok(false)`) or the tunnel is
    /// done: `Ok(true)` for a complete, correct exchange.
    fn drive(&mut self, reqs: &Requests, scratch: &mut [u8]) -> Result<bool, Failure> {
        loop {
            let (request, next) = match self.step {
                Step::SendConnect => (&reqs.connect, Step::ReadConnect),
                Step::SendGet => (&reqs.get, Step::ReadResponse),
                Step::ReadConnect | Step::ReadResponse => {
                    if !self.readable {
                        return Ok(false);
                    }
                    match self.stream.read(scratch) {
                        Ok(0) => return self.finish().map(|()| true),
                        Ok(n) => self.take(scratch.get(..n).unwrap_or_default())?,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(self.fail(format!("read: {e}"))),
                    }
                    continue;
                }
            };
            if !self.writable {
                return Ok(false);
            }
            match self
                .stream
                .write(request.get(self.sent..).unwrap_or_default())
            {
                Ok(0) => return Err(self.fail("write accepted nothing".to_string())),
                Ok(n) => {
                    self.connected = true;
                    self.sent = self.sent.saturating_add(n);
                    if self.sent >= request.len() {
                        self.sent = 0;
                        self.step = next;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(format!("connect or write: {e}"))),
            }
        }
    }

    /// Takes `bytes` read in `ReadConnect` or `ReadResponse`.
    fn take(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        if let Some((_, got)) = &mut self.body {
            *got = got.saturating_add(bytes.len() as u64);
            return Ok(());
        }
        let searched = self.head.len();
        self.head.extend_from_slice(bytes);
        let Some((len, end)) = head_end(&self.head, searched) else {
            if self.head.len() > MAX_HEAD {
                return Err(self.fail("response head too long".to_string()));
            }
            return Ok(());
        };
        let head = parse_head(self.head.get(..len).unwrap_or_default())
            .map_err(|why| self.fail(why.to_string()))?;
        let what = if self.step == Step::ReadConnect {
            "CONNECT"
        } else {
            "GET"
        };
        if head.status != 200 {
            return Err(self.fail(format!("{what} answered {}", head.status)));
        }
        let extra = self.head.len().saturating_sub(end) as u64;
        self.head.clear();
        if self.step == Step::ReadConnect {
            // Nothing was sent through the tunnel yet, so nothing may come out of it.
            if extra > 0 {
                return Err(self.fail("bytes after the CONNECT answer".to_string()));
            }
            self.step = Step::SendGet;
        } else {
            self.body = Some((head.content_length, extra));
        }
        Ok(())
    }

    /// Checks the exchange at EOF.
    fn finish(&self) -> Result<(), Failure> {
        match self.body {
            Some((Some(want), got)) if got != want => {
                Err(self.fail(format!("body of {got} bytes, Content-Length {want}")))
            }
            Some(_) => Ok(()),
            None => Err(self.fail(format!("EOF in {:?}", self.step))),
        }
    }
}

/// The outcome of a run.
struct Report {
    tunnels: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram,
    first_error: Option<String>,
}

impl Report {
    fn error(&mut self, why: String) {
        self.errors += 1;
        self.first_error.get_or_insert(why);
    }
}

/// The streams of one run and what they share.
struct Client {
    poll: Poll,
    addr: SocketAddr,
    direct: bool,
    reqs: Requests,
    /// Slot `i` is stream `i`, registered as `Token(i)`; `None` between tunnels.
    slots: Vec<Option<Tunnel>>,
    /// Streams waiting to reconnect, in the order they are due (all wait [`BACKOFF`]).
    backoff: VecDeque<(Instant, usize)>,
    /// Set at the end of the run: no new tunnels.
    draining: bool,
    scratch: Vec<u8>,
    report: Report,
}

impl Client {
    /// Opens a tunnel in slot `i` and drives it as far as it goes, then the next one
    /// whenever a tunnel ends, until one has to wait.
    fn start(&mut self, i: usize) {
        loop {
            match Tunnel::open(self.addr, self.direct, &self.poll, Token(i)) {
                Ok(tunnel) => {
                    if let Some(slot) = self.slots.get_mut(i) {
                        *slot = Some(tunnel);
                    }
                }
                Err(e) => {
                    self.report.error(format!("connect: {e}"));
                    self.backoff.push_back((Instant::now() + BACKOFF, i));
                    return;
                }
            }
            if !self.advance(i) || self.draining {
                return;
            }
        }
    }

    /// Drives the tunnel in slot `i`; returns true when it ended and the stream may
    /// start its next one now.
    fn advance(&mut self, i: usize) -> bool {
        let Some(slot) = self.slots.get_mut(i) else {
            return false;
        };
        let Some(tunnel) = slot else { return false };
        let outcome = tunnel.drive(&self.reqs, &mut self.scratch);
        let started = tunnel.started;
        match outcome {
            Ok(false) => false,
            Ok(true) => {
                self.report.latency.record(started.elapsed());
                self.report.tunnels += 1;
                *slot = None;
                true
            }
            Err(failure) => {
                *slot = None;
                self.report.error(failure.why);
                if failure.connect {
                    self.backoff.push_back((Instant::now() + BACKOFF, i));
                }
                !failure.connect
            }
        }
    }
}

/// Runs the load described by `cfg`; errors are only those of the poll itself.
fn run(cfg: &Config) -> io::Result<Report> {
    let start = Instant::now();
    let stop = start + cfg.duration;
    let mut client = Client {
        poll: Poll::new()?,
        addr: cfg.proxy.unwrap_or(cfg.target),
        direct: cfg.proxy.is_none(),
        reqs: Requests::new(cfg.target, &cfg.path),
        slots: (0..cfg.conns).map(|_| None).collect(),
        backoff: VecDeque::new(),
        draining: false,
        scratch: vec![0; READ_CHUNK],
        report: Report {
            tunnels: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: Histogram::new(),
            first_error: None,
        },
    };
    let mut events = Events::with_capacity(1024);
    for i in 0..cfg.conns {
        client.start(i);
    }
    let mut end = stop;
    loop {
        let now = Instant::now();
        if !client.draining && now >= stop {
            client.draining = true;
            client.backoff.clear();
            end = now + GRACE;
        }
        if client.draining {
            let in_flight = client.slots.iter().filter(|s| s.is_some()).count();
            if in_flight == 0 || now >= end {
                for _ in 0..in_flight {
                    client
                        .report
                        .error("unfinished at the end of the run".to_string());
                }
                break;
            }
        }
        while let Some(&(due, i)) = client.backoff.front() {
            if due > now {
                break;
            }
            client.backoff.pop_front();
            client.start(i);
        }
        let wake = client.backoff.front().map_or(end, |&(due, _)| due.min(end));
        match client
            .poll
            .poll(&mut events, Some(wake.saturating_duration_since(now)))
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            let i = event.token().0;
            // A tunnel that ended in this batch may already have been replaced under the
            // same token; the event is then only a hint that costs one WouldBlock.
            let Some(tunnel) = client.slots.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            tunnel.readable |= event.is_readable() || event.is_read_closed() || event.is_error();
            tunnel.writable |= event.is_writable() || event.is_write_closed() || event.is_error();
            if client.advance(i) && !client.draining {
                client.start(i);
            }
        }
    }
    client.report.elapsed = start.elapsed();
    Ok(client.report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn head_parse_reads_status_and_content_length() {
        let head = b"HTTP/1.1 200 OK\r\nServer: x\r\ncontent-LENGTH:  1024 \r\nA: b:c";
        assert_eq!(
            parse_head(head),
            Ok(Head {
                status: 200,
                content_length: Some(1024)
            })
        );
        assert_eq!(
            parse_head(b"HTTP/1.0 200 Connection established"),
            Ok(Head {
                status: 200,
                content_length: None
            })
        );
        assert_eq!(parse_head(b"HTTP/1.1 403").map(|h| h.status), Ok(403));
    }

    #[test]
    fn head_parse_rejects_malformed_heads() {
        for bad in [
            &b""[..],
            b"HTTP/2 200 OK",
            b"HTTP/1.1 20 OK",
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 2x0 OK",
            b"HTTP/1.1 200 OK\r\nno colon",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1",
            b"HTTP/1.1 200 OK\r\nContent-Length:",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let twice = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5";
        assert_eq!(parse_head(twice).map(|h| h.content_length), Ok(Some(5)));
    }

    #[test]
    fn head_end_finds_blank_line_across_reads() {
        let buf = b"HTTP/1.1 200 OK\r\n\r\nbody";
        assert_eq!(head_end(buf, 0), Some((15, 19)));
        // The blank line straddles what was already searched and what just arrived.
        assert_eq!(head_end(buf, 17), Some((15, 19)));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r", 0), None);
        assert_eq!(head_end(b"", 5), None);
    }

    #[test]
    fn histogram_percentiles_are_exact_for_small_values() {
        let mut h = Histogram::new();
        assert_eq!(h.percentile(50), 0);
        for us in 1..=20 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.percentile(50), 10);
        assert_eq!(h.percentile(99), 20);
        assert_eq!(h.percentile(100), 20);
        assert_eq!(h.percentile(0), 1);
    }

    #[test]
    fn histogram_percentiles_stay_within_three_percent() {
        let mut h = Histogram::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_micros(ms * 1000 + 7));
        }
        for (pct, want) in [(50, 500_007.0), (99, 990_007.0)] {
            let got = h.percentile(pct) as f64;
            assert!((got - want).abs() / want < 0.03, "p{pct}: {got} vs {want}");
        }
        h.record(Duration::MAX);
        assert!(h.percentile(100) > 1 << 62);
    }

    #[test]
    fn histogram_buckets_are_contiguous_and_in_range() {
        let mut last = 0;
        for us in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = Histogram::bucket(us);
            assert!(b == last || b == last + 1 || us > 100_000, "gap at {us}");
            assert!(b < BUCKETS);
            // A bucket's reported value lies in the bucket itself.
            assert_eq!(Histogram::bucket(Histogram::value(b)), b);
            last = b;
        }
        assert_eq!(Histogram::bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn args_refuse_anything_but_loopback() {
        for addr in [
            "10.0.0.1:80",
            "127.0.0.2:80",
            "[::1]:80",
            "127.0.0.1:0",
            "x",
        ] {
            assert!(parse_args(&args(&["--proxy", addr])).is_err(), "{addr}");
            assert!(
                parse_args(&args(&["--direct", "--target", addr])).is_err(),
                "{addr}"
            );
        }
    }

    #[test]
    fn args_parse_the_documented_flags() {
        let cfg = parse_args(&args(&[
            "--proxy",
            "127.0.0.1:19098",
            "--target",
            "127.0.0.1:19001",
            "--path",
            "/c/4k.bin",
            "--conns",
            "8",
            "--duration",
            "2.5",
        ]));
        assert_eq!(
            cfg,
            Ok(Some(Config {
                proxy: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 19098))),
                target: SocketAddr::from((Ipv4Addr::LOCALHOST, 19001)),
                path: "/c/4k.bin".to_string(),
                conns: 8,
                duration: Duration::from_millis(2500),
            }))
        );
        let direct = parse_args(&args(&["--direct", "--proxy", "127.0.0.1:1"]));
        assert_eq!(direct.map(|c| c.map(|c| c.proxy)), Ok(Some(None)));
        for bad in [
            &["--conns", "0", "--direct"][..],
            &["--conns", "5000", "--direct"],
            &["--duration", "0", "--direct"],
            &["--duration", "NaN", "--direct"],
            &["--path", "a b", "--direct"],
            &["--path", "x", "--direct"],
            &["--conns"],
            &[],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(parse_args(&args(&["-h"])), Ok(None));
    }

    fn skip_head(reader: &mut io::BufReader<std::net::TcpStream>) {
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            line.clear();
        }
    }

    /// A one-thread stand-in for proxy and origin together: answers each CONNECT with
    /// `connect_answer`, then the GET with `body_len` bytes announced as `announced`.
    fn serve(
        listener: TcpListener,
        connect_answer: &'static str,
        body_len: usize,
        announced: usize,
    ) {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = io::BufReader::new(stream);
            skip_head(&mut reader);
            let _ = reader.get_mut().write_all(connect_answer.as_bytes());
            if !connect_answer.contains(" 200 ") {
                continue;
            }
            skip_head(&mut reader);
            let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\n\r\n");
            let _ = reader.get_mut().write_all(response.as_bytes());
            let _ = reader.get_mut().write_all(&vec![b'x'; body_len]);
        }
    }

    fn run_against(connect_answer: &'static str, body_len: usize, announced: usize) -> Report {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = listener.local_addr().unwrap();
        // The thread is left blocked in accept when the test ends.
        std::thread::spawn(move || serve(listener, connect_answer, body_len, announced));
        let cfg = Config {
            proxy: Some(proxy),
            target: SocketAddr::from((Ipv4Addr::LOCALHOST, 19000)),
            path: "/x".to_string(),
            conns: 2,
            duration: Duration::from_millis(200),
        };
        run(&cfg).unwrap()
    }

    #[test]
    fn run_counts_complete_tunnels() {
        let report = run_against(
            "HTTP/1.1 200 Connection established\r\n\r\n",
            100_000,
            100_000,
        );
        assert!(report.tunnels > 0);
        assert_eq!(report.errors, 0, "{:?}", report.first_error);
        assert_eq!(report.latency.total, report.tunnels);
        assert!(report.elapsed < Duration::from_millis(200) + GRACE);
    }

    #[test]
    fn run_counts_refused_connects_and_short_bodies_as_errors() {
        let report = run_against("HTTP/1.1 403 Forbidden\r\n\r\n", 0, 0);
        assert_eq!(report.tunnels, 0);
        assert!(report.errors > 0);
        assert_eq!(report.first_error.as_deref(), Some("CONNECT answered 403"));

        let report = run_against("HTTP/1.1 200 OK\r\n\r\n", 10, 11);
        assert_eq!(report.tunnels, 0);
        assert!(report.errors > 0);
        let first = report.first_error.unwrap_or_default();
        assert_eq!(first, "body of 10 bytes, Content-Length 11");
    }
}
