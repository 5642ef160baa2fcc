//! Shared helpers for larder's integration tests: a running larder ([`Proxy`]), a scripted
//! HTTP origin ([`Origin`]), a raw TCP server ([`Server`]) and a blocking client
//! ([`Client`]).
//!
//! Everything binds 127.0.0.1 on port 0 (127.0.0.2 only as a client source address), so
//! tests running in parallel never share a port. Every wait is bounded: a broken proxy
//! fails a test with a message instead of hanging the suite.

pub mod browser;
pub mod pac;
pub mod prom;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How long a client waits for any single read before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a test waits for state it can observe (a log line, a count, a socket
/// queue) before it fails: generous, so that a busy machine slows a test down
/// rather than failing it.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// How long larder gets to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server-side socket waits on a silent peer before its thread gives up, so
/// threads serving a dead test end on their own.
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest head the test client and origin accept; larder's own limit is 64 KiB, so
/// anything bigger is a bug the tests should see as such rather than as a parse error.
const MAX_HEAD: usize = 1 << 20;

/// Locks `mutex`, ignoring poisoning: a panicking test thread must not hide the state
/// another assertion wants to print.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------
// larder itself

/// A running larder, started on `127.0.0.1:0`. Killed when dropped.
pub struct Proxy {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// The cache directory given unless the test chose its own; removed on drop.
    _cache: TempDir,
}

impl Proxy {
    /// Starts larder with `--listen 127.0.0.1:0` followed by `args`, and waits (at most
    /// 10 s) for its `larder: listening on ADDR` line. Panics with the stderr read so far if
    /// the line does not come. `LARDER_*` variables of the test environment are removed so
    /// they cannot change what a test configures.
    pub fn start(args: &[&str]) -> Proxy {
        Proxy::start_with_env(args, &[])
    }

    /// Like [`Proxy::start`], with extra environment variables (for the `LARDER_*` twins).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Proxy {
        Proxy::start_wrapped(&[], args, env)
    }

    /// Like [`Proxy::start_with_env`], larder run by `wrapper` (e.g. `strace -f -o
    /// FILE`): the command line is `wrapper... larder args...`. [`Proxy::pid`] is then
    /// the wrapper's.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let cache = TempDir::new("cache");
        let own_cache = env.iter().any(|(k, _)| *k == "LARDER_CACHE_DIR");
        let mut cmd = larder_command(args, (!own_cache).then_some(&cache));
        if let Some((program, rest)) = wrapper.split_first() {
            let mut wrapped = Command::new(program);
            wrapped
                .args(rest)
                .arg(cmd.get_program())
                .args(cmd.get_args());
            for (key, value) in cmd.get_envs() {
                match value {
                    Some(value) => wrapped.env(key, value),
                    None => wrapped.env_remove(key),
                };
            }
            wrapped
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            cmd = wrapped;
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawn larder");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&stderr);
        thread::spawn(move || drain_stderr(pipe, &sink, Some(tx)));
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => Proxy {
                child,
                addr,
                stderr,
                _cache: cache,
            },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                // Let the drain thread pick up the last lines before they are printed.
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "larder {args:?} did not report its address (exit: {status:?}); stderr:\n{}",
                    lock(&stderr)
                );
            }
        }
    }

    /// The address larder listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything larder wrote to stderr so far (start-up line, warnings).
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// A new client connection to larder.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Sends a plain `GET url` on a new connection and returns the response.
    pub fn get(&self, url: &str) -> Response {
        let mut client = self.client();
        client.send(get(url).as_bytes());
        client.read_response()
    }

    /// The value of the sample `name` (no labels) on larder's `/metrics` page, fetched
    /// on a new connection (which itself counts as one accepted connection).
    pub fn metric(&self, name: &str) -> f64 {
        self.metrics()
            .get(name, &[])
            .unwrap_or_else(|| panic!("no {name} on /metrics"))
    }

    /// larder's `/metrics` page, parsed, fetched on a new connection.
    pub fn metrics(&self) -> prom::Metrics {
        let mut client = self.client();
        client.send(format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr).as_bytes());
        let response = client.read_response();
        assert_eq!(response.status, 200, "/metrics: {}", response.text());
        prom::parse(&response.text()).expect("/metrics parses")
    }

    /// larder's resident set size in KiB, from `/proc/PID/status`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// CPU time larder has used so far (user + system), in clock ticks (1/100 s).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc/PID/stat");
        // The command name may hold spaces; the numeric fields follow its closing ')'.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 and 15 of stat(5) (utime, stime); field 3 is the first after ')'.
        let ticks = |i: usize| -> u64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0) };
        ticks(11) + ticks(12)
    }

    /// Sends SIGTERM and waits (at most 5 s, else the test fails) for larder to exit;
    /// returns its exit code (`None`: killed by a signal).
    pub fn stop(&mut self) -> Option<i32> {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("larder ignored SIGTERM for 5 s"))
    }

    /// larder's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends signal `name` (`HUP`, `USR1`, `TERM`, `KILL`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Waits up to `max` for larder to exit: `Some(exit code)` (`Some(None)`: killed by
    /// a signal), or `None` if it is still running.
    pub fn wait_exit(&mut self, max: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + max;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for larder") {
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Panics (with stderr) if larder has exited.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("larder exited with {status}; stderr:\n{}", self.stderr());
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The larder command line every test uses: listen on a free loopback port, a 1 MiB
/// cache in `cache` unless the test names its own cache directory (so never the user's
/// own cache, and never one shared by tests running at once), no inherited `LARDER_*`
/// configuration, stderr piped.
fn larder_command(args: &[&str], cache: Option<&TempDir>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
    cmd.arg("--listen").arg("127.0.0.1:0");
    if let (Some(cache), false) = (cache, args.contains(&"--cache-dir")) {
        cmd.arg("--cache-dir").arg(cache.path());
        if !args.contains(&"--cache-size") {
            cmd.arg("--cache-size").arg("1M");
        }
    }
    cmd.args(args);
    without_settings(&mut cmd);
    cmd
}

/// Keeps the environment of the tests from configuring larder (no `LARDER_*`, no
/// systemd `CACHE_DIRECTORY`), with stdin and stdout null and stderr piped.
pub fn without_settings(cmd: &mut Command) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LARDER_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("CACHE_DIRECTORY");
}

/// Copies larder's stderr into `sink` line by line until it closes, and sends the address
/// from the first `larder: listening on ADDR` line through `tx`.
fn drain_stderr(pipe: ChildStderr, sink: &Mutex<String>, mut tx: Option<mpsc::Sender<SocketAddr>>) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        lock(sink).push_str(&text);
        let addr = text
            .trim_end()
            .strip_prefix("larder: listening on ")
            .and_then(|addr| addr.parse().ok());
        if let Some(addr) = addr {
            if let Some(sender) = tx.take() {
                let _ = sender.send(addr);
            }
        }
    }
}

/// Runs larder with `--listen 127.0.0.1:0` and `args` to its exit (at most 10 s, else the
/// test fails) and returns its exit code and stderr. For start-up failures.
pub fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let cache = TempDir::new("cache");
    exit_of(larder_command(args, Some(&cache)))
}

/// Runs `cmd` (larder, stderr piped) to its exit, at most 10 s (else the test fails),
/// and returns its exit code and stderr.
pub fn exit_of(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd.spawn().expect("spawn larder");
    let mut pipe = child.stderr.take().expect("stderr is piped");
    // Read in a thread so a chatty child cannot block on a full pipe.
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for larder") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} was expected to exit but kept running");
        }
        thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().unwrap_or_default())
}

// ---------------------------------------------------------------------------------------
// Servers

/// A TCP server on 127.0.0.1:0 that runs `handler` on a thread per accepted connection
/// and counts connections. Accepted sockets time out after 10 s of silence.
pub struct Server {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start<F>(handler: F) -> Server
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test server");
        let addr = listener.local_addr().expect("server address");
        let conns = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (counter, stopped) = (Arc::clone(&conns), Arc::clone(&stop));
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(SERVER_TIMEOUT));
                let _ = stream.set_write_timeout(Some(SERVER_TIMEOUT));
                let handler = Arc::clone(&handler);
                thread::spawn(move || handler(stream));
            }
        });
        Server { addr, conns, stop }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`, as a CONNECT target or a URL authority.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees `stop` and the port is released.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// A port on 127.0.0.1 with nothing listening (bound once by us, then released).
pub fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Reads from `stream` until the peer closes or `max` passes: keeps a connection open and
/// silent without outliving the peer.
pub fn hold_open(stream: &mut TcpStream, max: Duration) {
    let deadline = Instant::now() + max;
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Writes a reply of the test's making on the origin's socket.
pub type WriteFn = dyn FnOnce(&mut TcpStream) -> io::Result<()> + Send;

/// What the scripted origin does with one request.
pub enum Reply {
    /// Write these bytes and wait for the next request on the connection.
    Send(Vec<u8>),
    /// Write these bytes and close the connection.
    SendClose(Vec<u8>),
    /// Close the connection without answering.
    Close,
    /// Say nothing until larder closes the connection or this long has passed.
    Stall(Duration),
    /// Let the closure write what it likes (trickle, huge bodies, interim responses); then
    /// wait for the next request unless the closure returned an error.
    Stream(Box<WriteFn>),
}

/// One request as the origin received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    /// The raw head, request line to the empty line included.
    pub head: Vec<u8>,
    /// The body, de-chunked if it came chunked.
    pub body: Vec<u8>,
    /// Which accepted connection it came on (0 = the first).
    pub conn: usize,
    /// Its position on that connection (0 = the first request).
    pub seq_on_conn: usize,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all(&self.headers, name)
    }
}

/// A scripted HTTP/1.1 origin on 127.0.0.1:0. It parses each request (head and a
/// Content-Length or chunked body, answering `Expect: 100-continue` with a 100 first),
/// records it, and does what `handler` says, so keep-alive and pipelining work as they
/// would against a real server.
pub struct Origin {
    server: Server,
    seen: Arc<Mutex<Vec<Request>>>,
    heads: Arc<AtomicUsize>,
}

impl Origin {
    pub fn start<H>(handler: H) -> Origin
    where
        H: Fn(&Request) -> Reply + Send + Sync + 'static,
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(AtomicUsize::new(0));
        let next_conn = AtomicUsize::new(0);
        let (record, count) = (Arc::clone(&seen), Arc::clone(&heads));
        let server = Server::start(move |stream| {
            let conn = next_conn.fetch_add(1, Ordering::SeqCst);
            serve_http(stream, conn, &handler, &record, &count);
        });
        Origin {
            server,
            seen,
            heads,
        }
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        self.server.authority()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.authority())
    }

    /// Connections accepted so far.
    pub fn conns(&self) -> usize {
        self.server.conns()
    }

    /// Request heads received so far (counted before the body is read).
    pub fn requests(&self) -> usize {
        self.heads.load(Ordering::SeqCst)
    }

    /// Every complete request received so far (head and body), in arrival order.
    pub fn seen(&self) -> Vec<Request> {
        lock(&self.seen).clone()
    }
}

/// Serves HTTP requests on one origin connection until the peer closes, a read fails or
/// the handler ends the connection.
fn serve_http<H>(
    stream: TcpStream,
    conn: usize,
    handler: &H,
    seen: &Mutex<Vec<Request>>,
    heads: &AtomicUsize,
) where
    H: Fn(&Request) -> Reply,
{
    let mut wire = Wire::new(stream);
    for seq_on_conn in 0.. {
        let Ok(Some(head)) = wire.read_until(b"\r\n\r\n", MAX_HEAD) else {
            return;
        };
        let Some((start, headers)) = parse_head(&head) else {
            return;
        };
        heads.fetch_add(1, Ordering::SeqCst);
        let mut parts = start.splitn(3, ' ').map(str::to_owned);
        let mut request = Request {
            method: parts.next().unwrap_or_default(),
            target: parts.next().unwrap_or_default(),
            version: parts.next().unwrap_or_default(),
            headers,
            head,
            body: Vec::new(),
            conn,
            seq_on_conn,
        };
        let chunked = has_token(&request.headers, "transfer-encoding", "chunked");
        let length: usize = request
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let expects = request
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if expects
            && (chunked || length > 0)
            && wire.write(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        let body = if chunked {
            wire.read_chunked(None)
        } else {
            wire.read_exact(length)
        };
        let Ok(body) = body else { return };
        request.body = body;
        lock(seen).push(request.clone());
        match handler(&request) {
            Reply::Send(bytes) => {
                if wire.write(&bytes).is_err() {
                    return;
                }
            }
            Reply::SendClose(bytes) => {
                let _ = wire.write(&bytes);
                return;
            }
            Reply::Close => return,
            Reply::Stall(max) => {
                hold_open(&mut wire.stream, max);
                return;
            }
            Reply::Stream(write) => {
                if write(&mut wire.stream).is_err() {
                    return;
                }
            }
        }
    }
}

/// `HTTP/1.1 200 OK` with `Content-Type: text/plain` and a Content-Length body.
pub fn ok(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Polls `done` every 5 ms until it holds, for at most [`WAIT_LIMIT`]; returns whether
/// it held. For waits on state a test can observe instead of sleeps.
pub fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A gate an origin's handler waits at until the test opens it, so that "the origin
/// is still answering" lasts exactly as long as the test needs rather than for a
/// guessed time. A wait gives up after [`WAIT_LIMIT`], so that a test that fails
/// before opening it leaves no thread behind for long.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    pub fn open(&self) {
        *lock(&self.open) = true;
        self.opened.notify_all();
    }

    /// Blocks until the gate is open (at most [`WAIT_LIMIT`]); returns whether it is.
    pub fn wait(&self) -> bool {
        let guard = lock(&self.open);
        let (guard, _) = self
            .opened
            .wait_timeout_while(guard, WAIT_LIMIT, |open| !*open)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard
    }
}

// ---------------------------------------------------------------------------------------
// Client side

/// `GET url HTTP/1.1` with a Host header taken from the URL's authority.
pub fn get(url: &str) -> String {
    request("GET", url, &[])
}

/// `METHOD url HTTP/1.1`, a Host header taken from the URL's authority, then `fields`;
/// no body.
pub fn request(method: &str, url: &str, fields: &[(&str, &str)]) -> String {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    let mut out = format!("{method} {url} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in fields {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out
}

/// The access log's non-empty lines once it has at least `n`, polling for up to
/// [`WAIT_LIMIT`] (larder writes the log out every 100 ms while it has connections).
pub fn wait_for_log_lines(log: &TempFile, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `Via` entry written by larder (`1.1 larder-xxxxxxxx`), if any of `headers` has one.
pub fn larder_via(headers: &[(String, String)]) -> Option<String> {
    via_entries(headers)
        .into_iter()
        .find(|entry| entry.contains("larder-"))
}

/// Every comma-separated entry of every `Via` field, trimmed, in order.
pub fn via_entries(headers: &[(String, String)]) -> Vec<String> {
    header_all(headers, "via")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|entry| entry.trim().to_owned())
        .filter(|entry| !entry.is_empty())
        .collect()
}

/// One HTTP response as the client read it.
#[derive(Debug)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// The body with chunked framing removed.
    pub body: Vec<u8>,
    /// Every byte of the response as it arrived.
    pub raw: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all(&self.headers, name)
    }

    /// Whether a `Connection` field carries `close`.
    pub fn is_close(&self) -> bool {
        has_token(&self.headers, "connection", "close")
    }

    /// The body as text (lossy), for `contains` checks and messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A blocking client connection with 5 s read and write timeouts. Its read helpers panic
/// with context on timeouts and early closes, so a test reads like the exchange it checks.
pub struct Client {
    wire: Wire,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::from_stream(stream)
    }

    /// Connects to `addr` from source address `src` (e.g. 127.0.0.2), which std cannot
    /// do: the socket is bound before it connects.
    pub fn connect_from(src: Ipv4Addr, addr: SocketAddr) -> Client {
        let SocketAddr::V4(dst) = addr else {
            panic!("connect_from supports IPv4 only, got {addr}");
        };
        let stream =
            connect_from(src, dst).unwrap_or_else(|e| panic!("connect {src} → {addr}: {e}"));
        Client::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("set write timeout");
        let _ = stream.set_nodelay(true);
        Client {
            wire: Wire::new(stream),
        }
    }

    /// Writes all of `bytes`; panics on failure.
    pub fn send(&mut self, bytes: &[u8]) {
        self.wire
            .write(bytes)
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// Writes all of `bytes`, for tests where larder may close before taking them all.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wire.write(bytes)
    }

    /// Shuts down the writing half (the peer reads EOF; we can still read).
    pub fn shutdown_write(&self) {
        self.wire
            .stream
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown(Write)");
    }

    /// Closes the connection with a reset rather than a FIN, as a client that vanishes
    /// (a killed process, a dropped network) does.
    pub fn close_with_reset(self) {
        set_reset_on_close(&self.wire.stream);
    }

    /// A second handle on the socket, e.g. to write from another thread while this one
    /// reads.
    pub fn writer(&self) -> TcpStream {
        self.wire.stream.try_clone().expect("clone client socket")
    }

    /// Waits (at most [`WAIT_LIMIT`], else the test fails) until larder has read every
    /// byte this client sent: the kernel's queues for the connection, as
    /// `/proc/net/tcp` shows them, hold nothing unread on larder's side and nothing
    /// unsent on ours. larder parses a request in the turn that reads it, so after this
    /// the request is in larder's hands, which no sleep can promise.
    pub fn wait_until_read(&self) {
        let ours = self.wire.stream.local_addr().expect("client address");
        let larders = self.wire.stream.peer_addr().expect("larder's address");
        let mut last = None;
        let drained = wait_until(|| {
            let larder_unread = tcp_queues(larders, ours).map(|(_, rx)| rx);
            let client_unsent = tcp_queues(ours, larders).map(|(tx, _)| tx);
            last = Some((larder_unread, client_unsent));
            larder_unread == Some(0) && client_unsent == Some(0)
        });
        assert!(
            drained,
            "larder did not read the request in {WAIT_LIMIT:?}: (larder's unread bytes, \
             our unsent bytes) = {last:?}"
        );
    }

    /// Reads one response head and no body (interim responses, or the head of a body the
    /// test reads itself with [`Client::read_some`]).
    pub fn read_head(&mut self) -> Response {
        let head = match self.wire.read_until(b"\r\n\r\n", MAX_HEAD) {
            Ok(Some(head)) => head,
            Ok(None) => panic!(
                "connection closed before a full response head; got {:?}",
                String::from_utf8_lossy(&self.wire.buf)
            ),
            Err(e) => panic!(
                "reading a response head: {e}; got so far {:?}",
                String::from_utf8_lossy(&self.wire.buf)
            ),
        };
        let Some((start, headers)) = parse_head(&head) else {
            panic!(
                "not an HTTP response head: {:?}",
                String::from_utf8_lossy(&head)
            );
        };
        let mut parts = start.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        let status = parts.next().and_then(|s| s.parse().ok());
        let Some(status) = status.filter(|_| version.starts_with("HTTP/")) else {
            panic!("bad status line {start:?}");
        };
        Response {
            version,
            status,
            reason: parts.next().unwrap_or_default().to_owned(),
            headers,
            body: Vec::new(),
            raw: head,
        }
    }

    /// Reads one response to a GET (an interim 1xx is returned as it is, without body).
    pub fn read_response(&mut self) -> Response {
        self.read_response_for("GET")
    }

    /// Reads one response to a `method` request: no body after HEAD, 1xx, 204, 304 or a
    /// 2xx to CONNECT; else a chunked, Content-Length or close-delimited body.
    pub fn read_response_for(&mut self, method: &str) -> Response {
        let mut response = self.read_head();
        let status = response.status;
        let bodiless = method == "HEAD"
            || status < 200
            || status == 204
            || status == 304
            || (method == "CONNECT" && status < 300);
        if bodiless {
            return response;
        }
        let chunked = has_token(&response.headers, "transfer-encoding", "chunked");
        let body = if chunked {
            // The framing is appended to `raw` while decoding.
            self.wire.read_chunked(Some(&mut response.raw))
        } else if let Some(length) = response.header("content-length") {
            let length = length
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {length:?} from larder"));
            self.wire.read_exact(length)
        } else {
            self.wire.read_to_end_strict().map_err(|(_, e)| e)
        };
        let body = body.unwrap_or_else(|e| {
            panic!(
                "reading the body of {} {}: {e}; head {:?}",
                response.status,
                response.reason,
                String::from_utf8_lossy(&response.raw)
            )
        });
        if !chunked {
            response.raw.extend_from_slice(&body);
        }
        response.body = body;
        response
    }

    /// Reads responses until a final (non-1xx) one and returns it.
    pub fn read_final_response(&mut self) -> Response {
        loop {
            let response = self.read_response();
            if response.status >= 200 {
                return response;
            }
        }
    }

    /// Reads exactly `n` bytes (buffered ones first).
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        self.wire
            .read_exact(n)
            .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"))
    }

    /// Reads some bytes into `buf` (buffered ones first); 0 means EOF.
    pub fn read_some(&mut self, buf: &mut [u8]) -> usize {
        self.wire
            .read_some(buf)
            .unwrap_or_else(|e| panic!("read: {e}"))
    }

    /// Reads until larder closes the connection (EOF or reset) and returns what came.
    /// Panics if it stays open longer than 5 s without sending.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        self.wire.read_to_end_strict().unwrap_or_else(|(got, e)| {
            panic!(
                "connection not closed: {e}; got {:?}",
                String::from_utf8_lossy(&got)
            )
        })
    }

    /// Panics unless larder closes the connection (EOF or reset) within 5 s without
    /// sending anything more.
    pub fn expect_closed(&mut self) {
        let rest = self.read_to_close();
        assert!(
            rest.is_empty(),
            "expected the connection to close, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    /// Panics if anything arrives, or the connection closes, within `wait`.
    pub fn expect_silence(&mut self, wait: Duration) {
        assert!(
            self.wire.buf.is_empty(),
            "unexpected bytes {:?}",
            String::from_utf8_lossy(&self.wire.buf)
        );
        let stream = &mut self.wire.stream;
        stream
            .set_read_timeout(Some(wait))
            .expect("set read timeout");
        let mut byte = [0u8; 1];
        let got = stream.read(&mut byte);
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set read timeout");
        match got {
            Ok(0) => panic!("connection closed, expected it to stay open and silent"),
            Ok(_) => panic!("unexpected byte {:?}", byte[0] as char),
            Err(e) if is_timeout(&e) => {}
            Err(e) => panic!("connection failed, expected silence: {e}"),
        }
    }
}

/// The send and receive queue lengths of the IPv4 TCP socket `local` → `remote`, from
/// `/proc/net/tcp` (`None` if there is no such socket). Addresses there are hex: the
/// address as the kernel's 32-bit word in host byte order, the port as a number.
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let hex = |addr: SocketAddr| -> Option<String> {
        let SocketAddr::V4(v4) = addr else {
            return None;
        };
        let word = u32::from_ne_bytes(v4.ip().octets());
        Some(format!("{word:08X}:{:04X}", v4.port()))
    };
    let (local, remote) = (hex(local)?, hex(remote)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

// ---------------------------------------------------------------------------------------
// Temporary files

/// A unique path under the system temp directory, removed on drop. Tests run in parallel,
/// so each gets its own.
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    pub fn new(name: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("larder-test-{}-{n}-{name}", std::process::id()));
        TempFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a command-line argument.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("temp paths are UTF-8")
    }

    pub fn write(&self, contents: &str) {
        std::fs::write(&self.path, contents).expect("write temp file");
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A directory under the system temp dir, unique to this process and call, removed with
/// everything in it when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("larder-test-{}-{n}-{name}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a command-line argument.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("temp paths are UTF-8")
    }

    /// The cache file larder keeps in this directory.
    pub fn file(&self) -> PathBuf {
        self.path.join(larder::cache::FILE_NAME)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `len` bytes of every value 0..=255 in turn (NUL, CR and LF included).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..=255u8).cycle().take(len).collect()
}

/// Unix seconds as an IMF-fixdate (RFC 9110 §5.6.7), with larder's own formatter.
pub fn http_date(secs: u64) -> String {
    let mut out = Vec::new();
    larder::http::date::push_date_field(&mut out, secs);
    let line = String::from_utf8_lossy(&out);
    let date = line
        .strip_prefix("Date: ")
        .and_then(|l| l.strip_suffix("\r\n"));
    date.unwrap_or_default().to_string()
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------------------
// Wire: a buffered socket both the client and the origin read HTTP from.

struct Wire {
    stream: TcpStream,
    /// Bytes read from the socket and not consumed yet.
    buf: Vec<u8>,
}

impl Wire {
    fn new(stream: TcpStream) -> Wire {
        Wire {
            stream,
            buf: Vec::new(),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads once from the socket into the buffer; returns how many bytes came (0 = EOF).
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        // A read with a timeout can come back EINTR after the process was stopped and
        // resumed, with no signal handler involved: that is not the peer's doing.
        let n = loop {
            match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The bytes up to and including `delim`, or `None` on EOF before it. Errors if more
    /// than `limit` bytes come without it.
    fn read_until(&mut self, delim: &[u8], limit: usize) -> io::Result<Option<Vec<u8>>> {
        let mut from = 0;
        loop {
            if let Some(at) = find(&self.buf, delim, from) {
                return Ok(Some(self.buf.drain(..at + delim.len()).collect()));
            }
            if self.buf.len() > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "no delimiter within limit",
                ));
            }
            from = self.buf.len().saturating_sub(delim.len());
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {} of {n} bytes", self.buf.len()),
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf.is_empty() {
            return self.stream.read(out);
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        Ok(n)
    }

    /// Everything until EOF or reset; any other error (a timeout) is returned with the
    /// bytes read so far.
    fn read_to_end_strict(&mut self) -> Result<Vec<u8>, (Vec<u8>, io::Error)> {
        loop {
            match self.fill() {
                Ok(0) => return Ok(std::mem::take(&mut self.buf)),
                Ok(_) => {}
                Err(e) if is_reset(&e) => return Ok(std::mem::take(&mut self.buf)),
                Err(e) => return Err((std::mem::take(&mut self.buf), e)),
            }
        }
    }

    /// A chunked body, de-chunked (extensions and trailers skipped). With `raw`, the
    /// framing bytes are appended to it as they are read.
    fn read_chunked(&mut self, mut raw: Option<&mut Vec<u8>>) -> io::Result<Vec<u8>> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        let mut body = Vec::new();
        loop {
            let line = self
                .read_until(b"\r\n", 64 * 1024)?
                .ok_or_else(|| bad("EOF in chunk size line"))?;
            if let Some(raw) = raw.as_deref_mut() {
                raw.extend_from_slice(&line);
            }
            let text = String::from_utf8_lossy(&line);
            let digits = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(digits, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                break;
            }
            let data = self.read_exact(size + 2)?;
            if !data.ends_with(b"\r\n") {
                return Err(bad("chunk data not followed by CRLF"));
            }
            if let Some(raw) = raw.as_deref_mut() {
                raw.extend_from_slice(&data);
            }
            body.extend_from_slice(&data[..size]);
        }
        loop {
            let line = self
                .read_until(b"\r\n", 64 * 1024)?
                .ok_or_else(|| bad("EOF in trailers"))?;
            if let Some(raw) = raw.as_deref_mut() {
                raw.extend_from_slice(&line);
            }
            if line == b"\r\n" {
                return Ok(body);
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Splits a head into its start line and `(name, value)` fields (values trimmed). `None`
/// if it is not text lines ending in CRLF.
fn parse_head(head: &[u8]) -> Option<(String, Vec<(String, String)>)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.strip_suffix("\r\n\r\n")?.split("\r\n");
    let start = lines.next()?.to_owned();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Some((start, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    header_all(headers, name).into_iter().next()
}

fn header_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Whether any `name` field lists `token` (comma-separated, case-insensitive).
fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    header_all(headers, name)
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

// ---------------------------------------------------------------------------------------
// Binding a source address (std has no bind-before-connect).

/// `struct sockaddr_in` (Linux).
#[repr(C)]
struct SockAddrIn {
    family: u16,
    port: [u8; 2],
    addr: [u8; 4],
    zero: [u8; 8],
}

impl SockAddrIn {
    fn new(ip: Ipv4Addr, port: u16) -> SockAddrIn {
        SockAddrIn {
            family: AF_INET,
            port: port.to_be_bytes(),
            addr: ip.octets(),
            zero: [0; 8],
        }
    }
}

const AF_INET: u16 = 2;
const SOCK_STREAM: i32 = 1;
const SOCK_CLOEXEC: i32 = 0o2_000_000;

extern "C" {
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
    fn bind(fd: i32, addr: *const SockAddrIn, len: u32) -> i32;
    fn connect(fd: i32, addr: *const SockAddrIn, len: u32) -> i32;
    fn listen(fd: i32, backlog: i32) -> i32;
}

/// A loopback port where a TCP connect hangs: its listener has a backlog of 0
/// and one connection already waiting that is never accepted, so the kernel drops
/// every further SYN (the accept queue is full) and the connector keeps retrying.
/// Keep the returned values alive while the port must stay black.
pub fn black_hole() -> (TcpListener, TcpStream, u16) {
    const LEN: u32 = std::mem::size_of::<SockAddrIn>() as u32;
    // SAFETY: plain syscall wrapper with constant arguments.
    let fd = unsafe { socket(i32::from(AF_INET), SOCK_STREAM | SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: `fd` is a new socket nobody else owns; OwnedFd closes it on every path.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let local = SockAddrIn::new(Ipv4Addr::LOCALHOST, 0);
    // SAFETY: `local` is a valid sockaddr_in of LEN bytes that outlives the call.
    let bound = unsafe { bind(owned.as_raw_fd(), &local, LEN) };
    assert_eq!(bound, 0, "bind: {}", io::Error::last_os_error());
    // SAFETY: a listen on a socket we own.
    let listening = unsafe { listen(owned.as_raw_fd(), 0) };
    assert_eq!(listening, 0, "listen: {}", io::Error::last_os_error());
    let listener = TcpListener::from(owned);
    let port = listener.local_addr().expect("address").port();
    let filler = TcpStream::connect(("127.0.0.1", port)).expect("fill the accept queue");
    (listener, filler, port)
}

/// `struct linger` (Linux).
#[repr(C)]
struct Linger {
    onoff: i32,
    seconds: i32,
}

extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const Linger, len: u32) -> i32;
}

/// Makes closing `stream` send a reset instead of a FIN (SO_LINGER with a zero timeout),
/// which std cannot do: a peer that vanishes rather than one that says goodbye.
pub fn set_reset_on_close(stream: &TcpStream) {
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    const LEN: u32 = std::mem::size_of::<Linger>() as u32;
    let linger = Linger {
        onoff: 1,
        seconds: 0,
    };
    // SAFETY: `linger` is a valid struct linger of LEN bytes that outlives the call, and
    // the descriptor belongs to `stream`.
    let done = unsafe { setsockopt(stream.as_raw_fd(), SOL_SOCKET, SO_LINGER, &linger, LEN) };
    assert_eq!(done, 0, "SO_LINGER: {}", io::Error::last_os_error());
}

fn connect_from(src: Ipv4Addr, dst: SocketAddrV4) -> io::Result<TcpStream> {
    const LEN: u32 = std::mem::size_of::<SockAddrIn>() as u32;
    // SAFETY: plain syscall wrapper with constant arguments.
    let fd = unsafe { socket(i32::from(AF_INET), SOCK_STREAM | SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket nobody else owns; OwnedFd closes it on every path.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let local = SockAddrIn::new(src, 0);
    // SAFETY: `local` is a valid sockaddr_in of LEN bytes that outlives the call.
    if unsafe { bind(owned.as_raw_fd(), &local, LEN) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let remote = SockAddrIn::new(*dst.ip(), dst.port());
    // SAFETY: as for bind; the socket is blocking, so connect completes or fails here.
    if unsafe { connect(owned.as_raw_fd(), &remote, LEN) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpStream::from(owned))
}
