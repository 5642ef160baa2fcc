//! Command line (clap, every flag with a `LARDER_*` environment twin) and the
//! validated [`Config`] the server runs with.

use std::ffi::{OsStr, OsString};
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::error::{ContextKind, ContextValue};
use clap::{CommandFactory, Parser};

use crate::acl::cidr::Cidr;

/// larder — a small, fast caching HTTP/HTTPS forward proxy.
///
/// Point a client at it with `http_proxy=http://127.0.0.1:3128` (and
/// `https_proxy=http://127.0.0.1:3128` for HTTPS, which goes through CONNECT).
/// By default it listens on loopback only and serves loopback clients only.
#[derive(Debug, Parser)]
#[command(name = "larder", version, about, long_about = None)]
pub struct Cli {
    /// Address to listen on (repeatable): `127.0.0.1:3128`, `[::1]:3128`, `:3128` (every
    /// IPv4 interface), or a name such as `localhost:3128` (each address it resolves to).
    #[arg(
        long,
        env = "LARDER_LISTEN",
        value_name = "ADDR",
        value_delimiter = ',',
        default_value = "127.0.0.1:3128"
    )]
    pub listen: Vec<ListenAddr>,

    /// Clients allowed to use the proxy (repeatable). Given at least once, it replaces the
    /// default, which is loopback only (127.0.0.0/8, ::1).
    #[arg(long, env = "LARDER_ALLOW", value_name = "CIDR", value_delimiter = ',')]
    pub allow: Vec<Cidr>,

    /// Clients that may read larder's status page and `/metrics` and send PURGE
    /// (repeatable). Default: loopback only. They must be allowed by --allow too.
    #[arg(long, env = "LARDER_ADMIN", value_name = "CIDR", value_delimiter = ',')]
    pub admin: Vec<Cidr>,

    /// Destinations the PAC file (`/proxy.pac`) sends DIRECT instead of through larder
    /// (repeatable): an IPv4 range such as 10.0.0.0/8 (matched against IP-literal hosts)
    /// or a domain with its subdomains. Plain host names and loopback are always DIRECT.
    #[arg(
        long,
        env = "LARDER_PAC_DIRECT",
        value_name = "CIDR|DOMAIN",
        value_delimiter = ','
    )]
    pub pac_direct: Vec<crate::pages::pac::PacDirect>,

    /// Seconds a stopping larder (SIGTERM, SIGINT) lets requests in flight finish
    /// before it exits.
    #[arg(long, env = "LARDER_DRAIN_TIMEOUT", value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub drain_timeout: Duration,

    /// Seconds a stopping larder first goes on accepting and serving while `/health`
    /// answers 503, so that a load balancer's health checks take it out of rotation
    /// before it stops accepting; then it drains (--drain-timeout). 0: drain at once.
    /// A second signal skips what is left of it.
    #[arg(long, env = "LARDER_DRAIN_NOTICE", value_name = "SECS", default_value = "0", value_parser = parse_secs_or_zero)]
    pub drain_notice: Duration,

    /// Load balancers (repeatable) whose connections start with a PROXY protocol header
    /// (v1 or v2, as HAProxy's `send-proxy`/`send-proxy-v2` write it) naming the real
    /// client, which --allow, --deny, --admin and the access log then see. A connection
    /// from them without one is refused; a header from anyone else is a bad request.
    #[arg(
        long,
        env = "LARDER_PROXY_PROTOCOL",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub proxy_protocol: Vec<Cidr>,

    /// Clients refused even if allowed (repeatable).
    #[arg(long, env = "LARDER_DENY", value_name = "CIDR", value_delimiter = ',')]
    pub deny: Vec<Cidr>,

    /// Block a site and all its subdomains (repeatable), e.g. --block ads.example.com.
    #[arg(
        long,
        env = "LARDER_BLOCK",
        value_name = "DOMAIN",
        value_delimiter = ','
    )]
    pub block: Vec<String>,

    /// Block the sites listed in a file (repeatable): one domain a line, or hosts-file lines
    /// such as `0.0.0.0 ads.example.com`; `#` starts a comment. Re-read when it changes.
    #[arg(
        long,
        env = "LARDER_BLOCK_LIST",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub block_list: Vec<PathBuf>,

    /// Block destination addresses (repeatable), checked on IP literals and on resolved
    /// addresses alike.
    #[arg(
        long,
        env = "LARDER_BLOCK_IP",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub block_ip: Vec<Cidr>,

    /// Ports CONNECT may reach: a comma list of ports and ranges, e.g. 443,8443,9000-9100.
    #[arg(
        long,
        env = "LARDER_CONNECT_PORTS",
        value_name = "LIST",
        default_value = "443"
    )]
    pub connect_ports: PortList,

    /// Destinations opened again to clients elsewhere (repeatable): by default a client
    /// not on this machine may not make larder reach loopback, link-local
    /// (169.254.0.0/16, fe80::/10), unspecified or this machine's own addresses.
    #[arg(
        long,
        env = "LARDER_ALLOW_TO",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub allow_to: Vec<Cidr>,

    /// Ports plain HTTP may reach: a comma list of ports and ranges (Squid's
    /// Safe_ports by default). CONNECT has --connect-ports.
    #[arg(
        long,
        env = "LARDER_HTTP_PORTS",
        value_name = "LIST",
        default_value = "80,21,443,70,210,280,488,591,777,1025-65535"
    )]
    pub http_ports: PortList,

    /// Most connections one client address may have open at once (1 or more); more
    /// are closed as soon as they are accepted. Default: no limit.
    #[arg(long, env = "LARDER_MAX_CONNS_PER_CLIENT", value_name = "N", value_parser = parse_per_client)]
    pub max_conns_per_client: Option<u32>,

    /// Most client connections at once (1 or more); at the limit larder stops accepting
    /// until one closes. Default: derived from the open-file limit.
    #[arg(long, env = "LARDER_MAX_CONNS", value_name = "N", value_parser = parse_max_conns)]
    pub max_conns: Option<usize>,

    /// Names larder resolves itself, from a file in the format of /etc/hosts
    /// (`ADDRESS NAME...` a line, `#` comments), before asking the system resolver. A
    /// name may have several addresses (one line each); they are tried in file order.
    /// Re-read on SIGHUP.
    #[arg(long, env = "LARDER_HOSTS", value_name = "FILE")]
    pub hosts: Option<PathBuf>,

    /// TCP congestion control for larder's sockets, to clients and to origins alike
    /// (Linux), e.g. cubic or reno. Default: the system's (net.ipv4.tcp_congestion_control),
    /// but where that one paces (BBR), cubic or reno on loopback connections.
    /// Without privileges only those in net.ipv4.tcp_allowed_congestion_control may be used
    #[arg(long, env = "LARDER_TCP_CONGESTION", value_name = "NAME", value_parser = parse_congestion)]
    pub tcp_congestion: Option<String>,

    /// Seconds a new connection has to send its first request head.
    #[arg(long, env = "LARDER_TIMEOUT_HEAD", value_name = "SECS", default_value = "15", value_parser = parse_secs)]
    pub timeout_head: Duration,

    /// Seconds a keep-alive client connection may stay idle between requests.
    #[arg(long, env = "LARDER_TIMEOUT_IDLE", value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub timeout_idle: Duration,

    /// Seconds to resolve and connect to an upstream server.
    #[arg(long, env = "LARDER_TIMEOUT_CONNECT", value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub timeout_connect: Duration,

    /// Seconds to wait for the first byte of an upstream response (then 504).
    #[arg(long, env = "LARDER_TIMEOUT_RESPONSE", value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub timeout_response: Duration,

    /// Seconds a body transfer may stall, either direction.
    #[arg(long, env = "LARDER_TIMEOUT_BODY", value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub timeout_body: Duration,

    /// Seconds a CONNECT tunnel may stay idle.
    #[arg(long, env = "LARDER_TIMEOUT_TUNNEL", value_name = "SECS", default_value = "300", value_parser = parse_secs)]
    pub timeout_tunnel: Duration,

    /// Log level: off, error, warn, info, debug or trace.
    #[arg(
        long,
        env = "LARDER_LOG_LEVEL",
        value_name = "LEVEL",
        default_value = "warn",
        value_parser = parse_log_level
    )]
    pub log_level: log::LevelFilter,

    /// Write one line per request to this file, in Squid's native access.log format;
    /// `-` writes them to standard output.
    #[arg(long, env = "LARDER_ACCESS_LOG", value_name = "PATH")]
    pub access_log: Option<PathBuf>,

    /// Directory of the cache file, larder.cache (created if missing). The default is
    /// $CACHE_DIRECTORY (set by systemd's CacheDirectory=; the first of its paths), else
    /// $XDG_CACHE_HOME/larder, else ~/.cache/larder; larder prints the path at start-up.
    #[arg(long, env = "LARDER_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Size of the cache file, e.g. 256M or 4G (default 256M). Disk use never exceeds
    /// it. Given for an existing cache of another size, larder rewrites the cache at
    /// the new size before it starts, keeping the newest objects.
    #[arg(long, env = "LARDER_CACHE_SIZE", value_name = "SIZE", value_parser = crate::cache::size::parse)]
    pub cache_size: Option<u64>,

    /// Store a response only once its URL was requested more than N times, each request
    /// within --admit-window of the one before (0: store on first sight). Keeps one-off
    /// downloads from pushing popular objects out.
    #[arg(
        long,
        env = "LARDER_ADMIT_AFTER",
        value_name = "N",
        default_value = "1"
    )]
    pub admit_after: u32,

    /// Seconds (whole, at least 1) within which requests for a URL count towards
    /// --admit-after.
    #[arg(long, env = "LARDER_ADMIT_WINDOW", value_name = "SECS", default_value = "600", value_parser = parse_whole_secs)]
    pub admit_window: u64,

    /// Largest body stored, e.g. 8M (default: an eighth of the cache size; at most the
    /// cache size). Larger responses are relayed but not stored.
    #[arg(long, env = "LARDER_CACHE_MAX_OBJECT", value_name = "SIZE", value_parser = crate::cache::size::parse)]
    pub cache_max_object: Option<u64>,

    /// Seconds (whole, at least 1) between syncs of the cache file to the disk while
    /// something is being stored; a sync runs beside the requests, never in their way.
    /// A power cut loses at most what was stored in the last SECS seconds (see the
    /// README, "What a crash or a power cut costs").
    #[arg(long, env = "LARDER_CACHE_SYNC", value_name = "SECS", default_value = "5", value_parser = parse_whole_secs)]
    pub cache_sync: u64,

    /// When the origin cannot be reached or answers 5xx, serve a stored response up to
    /// SECS past its freshness even if it says nothing about it (0: only what its
    /// stale-if-error allows); never one marked must-revalidate, proxy-revalidate or
    /// no-cache.
    #[arg(long, env = "LARDER_SERVE_STALE", value_name = "SECS", default_value = "0", value_parser = parse_stale_secs)]
    pub serve_stale: u64,

    /// A Range request that misses, asking for bytes from an offset below SIZE (e.g.
    /// 64M; default 64M; 0: never), is sent to the origin without its Range, so the
    /// whole object is fetched and stored and the client gets its part of it as it
    /// arrives (Squid's range_offset_limit). An offset at or past SIZE, a suffix
    /// (bytes=-N) or several ranges go to the origin as asked, and are not stored.
    #[arg(long, env = "LARDER_RANGE_WHOLE_BELOW", value_name = "SIZE", default_value = "64M", value_parser = crate::cache::size::parse_or_zero)]
    pub range_whole_below: u64,
    /// Send requests through this parent proxy (repeatable): `HOST:PORT`, or
    /// `user:pass@HOST:PORT` to send it Basic credentials (to it only; never logged).
    /// With several, each URL goes to one of them by hashing (CARP), so each caches
    /// its own share.
    #[arg(
        long,
        env = "LARDER_PARENT",
        value_name = "[USER:PASS@]HOST:PORT",
        value_delimiter = ','
    )]
    pub parent: Vec<crate::parents::rules::ParentArg>,

    /// Reach these destinations directly, never through a parent (repeatable): a
    /// domain with its subdomains, or an address range matched against IP-literal
    /// hosts. Loopback and private-range literals and names without a dot are direct
    /// anyway, unless --never-direct.
    #[arg(
        long,
        env = "LARDER_DIRECT",
        value_name = "DOMAIN|CIDR",
        value_delimiter = ','
    )]
    pub direct: Vec<crate::parents::DirectRule>,

    /// Never go to an origin directly except by a --direct rule: when no parent can
    /// be reached, answer 502 or 504.
    #[arg(long, env = "LARDER_NEVER_DIRECT")]
    pub never_direct: bool,

    /// Seconds a parent that refused, reset or timed out is left out before it is
    /// tried again.
    #[arg(long, env = "LARDER_PARENT_RETRY", value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub parent_retry: Duration,

    /// Answer from the cache only, fresh or stale (but never a response marked
    /// must-revalidate, proxy-revalidate or no-cache); everything else is 504, and
    /// nothing is fetched.
    #[arg(long, env = "LARDER_OFFLINE")]
    pub offline: bool,

    /// Require a user name and password (HTTP Basic) from every client, checked against
    /// this htpasswd file (hashes made with htpasswd -B, -2, -5 or -m); re-read when it
    /// changes and on SIGHUP. /health and the PAC file are exempt.
    #[arg(long, env = "LARDER_AUTH_FILE", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,

    /// The realm a browser shows when it asks for the proxy's password.
    #[arg(long, env = "LARDER_AUTH_REALM", value_name = "TEXT", default_value = "larder", value_parser = crate::auth::parse_realm)]
    pub auth_realm: String,

    /// Seconds a verified password is remembered before it is checked again (a
    /// kept connection does not check it again unless the file changes).
    #[arg(long, env = "LARDER_AUTH_TTL", value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub auth_ttl: Duration,
}

/// Whole seconds from 0 to a year, for `--serve-stale`.
fn parse_stale_secs(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n <= 365 * 86_400 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a whole number of seconds from 0 to 31536000"
        )),
    }
}

/// The log levels, for the message on a bad `--log-level`.
const LOG_LEVELS: &str = "off, error, warn, info, debug, trace";

/// A log level, any case.
fn parse_log_level(s: &str) -> Result<log::LevelFilter, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a log level: use one of {LOG_LEVELS}"))
}

/// A connection limit: a whole number, at least 1.
fn parse_max_conns(s: &str) -> Result<usize, String> {
    const ZERO: &str = "0 connections would turn every client away: give 1 or more, or leave \
                        the setting out to derive the limit from the open-file limit";
    match s.trim().parse::<usize>() {
        Ok(0) => Err(ZERO.into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "'{s}' is not a whole number of connections (1 or more)"
        )),
    }
}

/// A congestion control's name as the kernel spells them: 1 to 15 of `a-z`, `0-9`, `_`
/// (the kernel's limit is 16 bytes with the terminating NUL). Whether the kernel has it
/// is known only when a socket asks for it, at start-up.
fn parse_congestion(s: &str) -> Result<String, String> {
    let ok = (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a congestion control's name (such as cubic or reno: 1 to 15 \
             lower-case letters, digits or underscores)"
        ))
    }
}

/// A per-client connection limit: a whole number, at least 1.
fn parse_per_client(s: &str) -> Result<u32, String> {
    const ZERO: &str = "0 connections per client would turn every client away: give 1 or \
                        more, or leave the setting out for no limit";
    match s.trim().parse::<u32>() {
        Ok(0) => Err(ZERO.into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "'{s}' is not a whole number of connections (1 or more)"
        )),
    }
}

/// Whole seconds, 1 to 30 days.
fn parse_whole_secs(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=30 * 86_400).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a whole number of seconds from 1 to 2592000"
        )),
    }
}

/// Seconds as a decimal number from 0 (off) to a day.
fn parse_secs_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim().parse::<f64>().is_ok_and(|v| v == 0.0) {
        return Ok(Duration::ZERO);
    }
    parse_secs(s).map_err(|_| format!("'{s}' must be from 0 to 86400 seconds"))
}

/// Seconds as a decimal number (`15`, `0.5`), at most a day.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!(
            "'{s}' must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// One `--listen` value: the addresses it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// The value as given, for messages.
    pub given: String,
    /// One address, or every address a name resolves to (sorted, no repeats).
    pub addrs: Vec<SocketAddr>,
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    /// `IP:PORT`, `[IPv6]:PORT`, `:PORT` (every IPv4 interface, as nginx reads it), or
    /// `NAME:PORT` (every address the name resolves to).
    fn from_str(s: &str) -> Result<ListenAddr, String> {
        let s = s.trim();
        let one = |addr: SocketAddr| ListenAddr {
            given: s.to_string(),
            addrs: vec![addr],
        };
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(one(addr));
        }
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => return Err(format!("'{s}' has no port: give {ip}:PORT")),
            Ok(IpAddr::V6(ip)) => return Err(format!("'{s}' has no port: give [{ip}]:PORT")),
            Err(_) => {}
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            let hint = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                format!(" (:{s} listens on every IPv4 interface, 127.0.0.1:{s} on loopback only)")
            } else {
                String::new()
            };
            return Err(format!(
                "'{s}' is not an address: give IP:PORT, NAME:PORT or :PORT{hint}"
            ));
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("'{port}' in '{s}' is not a port (0-65535)"))?;
        if host.is_empty() {
            return Ok(one(SocketAddr::from(([0, 0, 0, 0], port))));
        }
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return match inner.parse::<Ipv6Addr>() {
                Ok(ip) => Ok(one(SocketAddr::new(IpAddr::V6(ip), port))),
                Err(_) => Err(format!("'{inner}' in '{s}' is not an IPv6 address")),
            };
        }
        if host.contains([':', '[', ']']) {
            return Err(format!(
                "'{s}' is not an address: write an IPv6 address in brackets, then the \
                 port, e.g. [::1]:3128"
            ));
        }
        use std::net::ToSocketAddrs;
        let mut addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve '{host}': {e}"))?
            .collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(format!("'{host}' resolves to no address"));
        }
        Ok(ListenAddr {
            given: s.to_string(),
            addrs,
        })
    }
}

impl ListenAddr {
    /// For a name that resolves to several addresses: drops those this machine cannot
    /// listen on because their address family is unavailable (IPv6 turned off, say) or
    /// the address is not one of the machine's, as `probe` finds, and returns each
    /// dropped address with the reason. A single address is kept whatever happens:
    /// binding it reports any problem. Errors, naming every reason, when none is left.
    pub fn drop_unusable(
        &mut self,
        probe: impl Fn(SocketAddr) -> io::Result<()>,
    ) -> Result<Vec<(SocketAddr, io::Error)>, String> {
        if self.addrs.len() < 2 {
            return Ok(Vec::new());
        }
        let mut dropped = Vec::new();
        let mut kept = Vec::with_capacity(self.addrs.len());
        for &addr in &self.addrs {
            match probe(addr) {
                Err(e) if unusable_here(&e) => dropped.push((addr, e)),
                _ => kept.push(addr),
            }
        }
        if kept.is_empty() {
            let reasons: Vec<String> = dropped.iter().map(|(a, e)| format!("{a}: {e}")).collect();
            return Err(format!(
                "cannot listen on {}: none of its addresses can be used on this machine ({})",
                self.given,
                reasons.join("; ")
            ));
        }
        self.addrs = kept;
        Ok(dropped)
    }
}

/// Tries to listen on `addr`'s IP address (on a port the system picks, released at
/// once, so the port asked for stays free): the probe for [`ListenAddr::drop_unusable`].
pub fn probe_listen(addr: SocketAddr) -> io::Result<()> {
    std::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0)).map(drop)
}

/// The address family is not supported (EAFNOSUPPORT).
#[cfg(target_os = "linux")]
const EAFNOSUPPORT: i32 = 97;
#[cfg(not(target_os = "linux"))]
const EAFNOSUPPORT: i32 = 47;

/// An error that says the address cannot be used on this machine at all, as opposed
/// to being busy or forbidden.
fn unusable_here(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(EAFNOSUPPORT)
}

/// A set of TCP ports given as `443,8443,9000-9100`.
#[derive(Clone, PartialEq, Eq)]
pub struct PortList {
    /// The ranges as given.
    ranges: Vec<(u16, u16)>,
    /// The same set, one bit per port: every request asks whether its port is in
    /// `--http-ports` (or `--connect-ports`), and walking the default list's ten
    /// ranges for a high port cost more than this one load.
    bits: Box<[u64; PORT_WORDS]>,
}

/// Words of a [`PortList`]'s bit set: 65,536 ports, 64 a word (8 KiB).
const PORT_WORDS: usize = 1 << 10;

impl PortList {
    /// The set of the ports in `ranges` (each `lo..=hi`).
    fn new(ranges: Vec<(u16, u16)>) -> PortList {
        let mut bits = Box::new([0u64; PORT_WORDS]);
        for &(lo, hi) in &ranges {
            for port in lo..=hi {
                if let Some(word) = bits.get_mut(usize::from(port >> 6)) {
                    *word |= 1 << (port & 63);
                }
            }
        }
        PortList { ranges, bits }
    }

    /// Whether `port` lies in one of the ranges.
    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.bits
            .get(usize::from(port >> 6))
            .is_some_and(|&word| (word >> (port & 63)) & 1 != 0)
    }
}

impl std::fmt::Debug for PortList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ranges say it; the bit set would be 1,024 numbers.
        f.debug_tuple("PortList").field(&self.ranges).finish()
    }
}

impl std::str::FromStr for PortList {
    type Err = String;

    fn from_str(s: &str) -> Result<PortList, String> {
        let port = |p: &str| -> Result<u16, String> {
            match p.trim().parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("'{p}' is not a port (1-65535)")),
            }
        };
        let mut ranges = Vec::new();
        for item in s.split(',').filter(|i| !i.trim().is_empty()) {
            let range = match item.split_once('-') {
                Some((lo, hi)) => (port(lo)?, port(hi)?),
                None => (port(item)?, port(item)?),
            };
            if range.0 > range.1 {
                return Err(format!("'{item}' is an empty range"));
            }
            ranges.push(range);
        }
        if ranges.is_empty() {
            return Err("no ports given".into());
        }
        Ok(PortList::new(ranges))
    }
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--auth-file` and its settings: `None` when clients need no password.
    pub auth: Option<crate::auth::Settings>,
    /// Every address to listen on (at least one, no repeats).
    pub listen: Vec<SocketAddr>,
    /// Clients allowed to use the proxy; empty: loopback only.
    pub allow: Vec<Cidr>,
    /// Who may see the status page and metrics and send PURGE; empty: loopback.
    pub admin: Vec<Cidr>,
    /// `--pac-direct`: destinations the PAC file sends DIRECT.
    pub pac_direct: Vec<crate::pages::pac::PacDirect>,
    /// How long a stop waits for requests in flight.
    pub drain_timeout: Duration,
    /// `--drain-notice`: how long a stop first says 503 on `/health` while serving on.
    pub drain_notice: Duration,
    /// Clients refused even if allowed.
    pub deny: Vec<Cidr>,
    /// `--proxy-protocol`: balancers whose connections start with a PROXY header.
    pub proxy_protocol: Vec<Cidr>,
    /// Blocked domains, each with its subdomains.
    pub block: Vec<String>,
    /// Files of blocked domains, re-read when they change.
    pub block_list: Vec<PathBuf>,
    /// Blocked destination networks, checked on IP literals and resolved addresses.
    pub block_ip: Vec<Cidr>,
    /// Ports CONNECT may reach.
    pub connect_ports: PortList,
    /// `--allow-to`: destination ranges opened again to clients elsewhere.
    pub allow_to: Vec<Cidr>,
    /// `--http-ports`: ports plain HTTP may reach.
    pub http_ports: PortList,
    /// `--max-conns-per-client`; `None`: no limit.
    pub max_conns_per_client: Option<u32>,
    /// `None`: derive from the open-file limit at start-up.
    pub max_conns: Option<usize>,
    /// `--hosts`: a hosts file consulted before the system resolver.
    pub hosts: Option<PathBuf>,
    /// `--tcp-congestion`: the congestion control of every socket larder makes or
    /// accepts; `None`: the system's.
    pub tcp_congestion: Option<String>,
    /// Every deadline larder enforces.
    pub timeouts: Timeouts,
    /// The access log file (`-`: standard output); `None`: no access log.
    pub access_log: Option<PathBuf>,
    /// The cache: where its file is and how it is used.
    pub cache: CacheSettings,
    /// Parent proxies and the destinations reached without them.
    pub parents: crate::parents::ParentsConfig,
}

/// Where the cache file lives and the size asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Directory of the cache file.
    pub dir: PathBuf,
    /// `--cache-size` when given: a new file's size, or a new size for an existing one.
    pub size: Option<u64>,
    /// `--cache-max-object`; `None`: an eighth of the cache.
    pub max_object: Option<u64>,
    /// `--admit-after`: a response is stored once its URL was requested more than
    /// this many times in a run (0: at once).
    pub admit_after: u32,
    /// `--admit-window`: seconds within which each request of such a run follows the
    /// one before.
    pub admit_window: u64,
    /// `--cache-sync`: seconds between checkpoints.
    pub sync_every: u64,
    /// `--serve-stale`: seconds past its freshness a stored response may still answer
    /// when the origin fails (0: only what the response's stale-if-error allows).
    pub serve_stale: u64,
    /// `--offline`: answer from the cache only.
    pub offline: bool,
    /// `--range-whole-below`: a Range miss starting below this offset fetches the
    /// whole object to store it (0: never).
    pub range_whole_below: u64,
}

/// Every deadline larder enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a new connection has to send its first request head (`--timeout-head`).
    pub head: Duration,
    /// How long a kept connection may stay idle between requests (`--timeout-idle`).
    pub idle: Duration,
    /// How long resolving and connecting to an upstream may take (`--timeout-connect`).
    pub connect: Duration,
    /// How long to wait for the response once the request is sent (`--timeout-response`).
    pub response: Duration,
    /// How long a body transfer may stall, either direction (`--timeout-body`).
    pub body: Duration,
    /// How long a CONNECT tunnel may stay idle (`--timeout-tunnel`).
    pub tunnel: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            head: Duration::from_secs(15),
            idle: Duration::from_secs(60),
            connect: Duration::from_secs(10),
            response: Duration::from_secs(30),
            body: Duration::from_secs(60),
            tunnel: Duration::from_secs(300),
        }
    }
}

impl From<Cli> for Config {
    fn from(c: Cli) -> Config {
        let mut listen: Vec<SocketAddr> = Vec::new();
        for addr in c.listen.into_iter().flat_map(|l| l.addrs) {
            if !listen.contains(&addr) {
                listen.push(addr);
            }
        }
        Config {
            auth: c.auth_file.map(|file| crate::auth::Settings {
                file,
                realm: c.auth_realm,
                ttl: c.auth_ttl,
            }),
            listen,
            allow: c.allow,
            admin: c.admin,
            pac_direct: c.pac_direct,
            drain_timeout: c.drain_timeout,
            drain_notice: c.drain_notice,
            deny: c.deny,
            proxy_protocol: c.proxy_protocol,
            block: c.block,
            block_list: c.block_list,
            block_ip: c.block_ip,
            connect_ports: c.connect_ports,
            allow_to: c.allow_to,
            http_ports: c.http_ports,
            max_conns_per_client: c.max_conns_per_client,
            max_conns: c.max_conns,
            hosts: c.hosts,
            tcp_congestion: c.tcp_congestion,
            timeouts: Timeouts {
                head: c.timeout_head,
                idle: c.timeout_idle,
                connect: c.timeout_connect,
                response: c.timeout_response,
                body: c.timeout_body,
                tunnel: c.timeout_tunnel,
            },
            access_log: c.access_log,
            cache: CacheSettings {
                dir: c.cache_dir.unwrap_or_else(crate::cache::dir::default_dir),
                size: c.cache_size,
                max_object: c.cache_max_object,
                admit_after: c.admit_after,
                admit_window: c.admit_window,
                sync_every: c.cache_sync,
                serve_stale: c.serve_stale,
                offline: c.offline,
                range_whole_below: c.range_whole_below,
            },
            parents: crate::parents::ParentsConfig {
                parents: c.parent.iter().filter_map(|p| p.0.clone().ok()).collect(),
                bad_parent: c.parent.into_iter().find_map(|p| p.0.err()),
                direct: c.direct,
                never_direct: c.never_direct,
                retry: c.parent_retry,
            },
        }
    }
}

/// The message for a clap error about a value that came from a `LARDER_*` variable,
/// naming the variable: `LARDER_MAX_CONNS='abc': ... (the environment twin of
/// --max-conns)`. `None` when the value came from the command line (or the error is
/// not about a value): clap's own message says it best there.
///
/// `args` is the command line (program name first); `var` reads the environment.
pub fn env_error(
    err: &clap::Error,
    args: impl IntoIterator<Item = OsString>,
    var: impl Fn(&OsStr) -> Option<OsString>,
) -> Option<String> {
    let Some(ContextValue::String(invalid)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let mut cmd = Cli::command();
    // Arguments are displayed as in clap's messages only once the command is built.
    cmd.build();
    let arg = cmd.get_arguments().find(|a| a.to_string() == *invalid)?;
    let long = arg.get_long()?;
    let name = arg.get_env()?;
    let value = var(name)?;
    let flag = format!("--{long}");
    let with_value = format!("{flag}=");
    let on_command_line = args
        .into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == flag.as_str() || a.to_str().is_some_and(|a| a.starts_with(&with_value)));
    if on_command_line {
        return None;
    }
    let reason = match std::error::Error::source(err) {
        Some(source) => source.to_string(),
        None => match (err.kind(), err.get(ContextKind::ValidValue)) {
            (_, Some(ContextValue::Strings(valid))) => {
                format!("use one of {}", valid.join(", "))
            }
            (kind, _) => kind.as_str().unwrap_or("invalid value").to_string(),
        },
    };
    Some(format!(
        "{}='{}': {reason} (the environment twin of {flag})",
        name.to_string_lossy(),
        value.to_string_lossy()
    ))
}

impl CacheSettings {
    /// Checks the cache settings before anything is created: the directory must not be
    /// a file, and `--cache-max-object` must not exceed the cache's size. That size is
    /// `--cache-size` when given; else an existing cache file keeps its own size (read
    /// from its header), and a new one gets the default. A file whose header cannot be
    /// read is left to the cache's own checks.
    pub fn check(&self) -> Result<(), String> {
        use crate::cache::dir;
        if let Some(file) = dir::file_in_the_way(&self.dir) {
            return Err(if file == self.dir {
                format!(
                    "the cache directory {} is a file, not a directory",
                    self.dir.display()
                )
            } else {
                format!(
                    "the cache directory {} cannot be made: {} is a file, not a directory",
                    self.dir.display(),
                    file.display()
                )
            });
        }
        let existing = || dir::existing_capacity(&self.dir);
        check_max_object(
            self.max_object,
            self.size,
            existing,
            &dir::file_path(&self.dir),
        )
    }
}

/// `--cache-max-object` against the size the cache will have (see
/// [`CacheSettings::check`]); `existing` reads an existing cache file's size.
fn check_max_object(
    max_object: Option<u64>,
    size: Option<u64>,
    existing: impl FnOnce() -> Option<u64>,
    file: &Path,
) -> Result<(), String> {
    use crate::cache::dir::DEFAULT_CACHE_SIZE;
    use crate::cache::size::human;
    let Some(max) = max_object else {
        return Ok(());
    };
    let (cache, what) = match size {
        Some(size) => (size, format!("--cache-size {}", human(size))),
        None => match existing() {
            Some(have) => (
                have,
                format!(
                    "the cache {} ({}; --cache-size changes it)",
                    file.display(),
                    human(have)
                ),
            ),
            None => (
                DEFAULT_CACHE_SIZE,
                format!(
                    "the cache ({}, the default --cache-size)",
                    human(DEFAULT_CACHE_SIZE)
                ),
            ),
        },
    };
    if max > cache {
        return Err(format!(
            "--cache-max-object {} is larger than {what}: an object that size can never be stored",
            human(max)
        ));
    }
    Ok(())
}

/// A warning for start-up when larder listens beyond loopback while `--allow` is still
/// the loopback default (`allow` empty): other machines would reach larder and be
/// refused. `locals` are the addresses listened on.
pub fn loopback_only_warning(allow: &[Cidr], locals: &[SocketAddr]) -> Option<String> {
    if !allow.is_empty() {
        return None;
    }
    let open = locals
        .iter()
        .find(|a| !a.ip().to_canonical().is_loopback())?;
    Some(format!(
        "listening on {open}, but only loopback clients are allowed (the --allow \
         default): add the clients to serve, e.g. --allow {}",
        example_network(open.ip())
    ))
}

/// A network to show in `--allow` advice: the /24 (IPv4) or /64 (IPv6) of a specific
/// address, or a typical home network for a wildcard one.
fn example_network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) if !v4.is_unspecified() => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) if !v6.is_unspecified() && v6.to_ipv4_mapped().is_none() => {
            let net = Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX));
            format!("{net}/64")
        }
        _ => "192.168.1.0/24".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_list_accepts_ports_and_ranges() {
        let p: PortList = "443, 8443,9000-9100".parse().unwrap();
        assert!(p.contains(443) && p.contains(8443) && p.contains(9050));
        assert!(!p.contains(80) && !p.contains(9101));
    }

    #[test]
    fn port_list_bits_agree_with_the_ranges() {
        let walk = |ranges: &[(u16, u16)], port: u16| {
            ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
        };
        // The edges first: port 1, 65535, and both ends of every word.
        let p: PortList = "1,63-64,127,128,65535".parse().unwrap();
        for port in 0..=u16::MAX {
            assert_eq!(p.contains(port), walk(&p.ranges, port), "{port}");
        }
        let mut rng = crate::http::testing::Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let mut list = Vec::new();
            for _ in 0..1 + rng.below(12) {
                // Single ports, short ranges and long ones, overlapping at times.
                let lo = 1 + rng.below(65_535) as u16;
                let span = if rng.one_in(4) { 40_000 } else { 200 };
                let hi = lo.saturating_add(rng.below(span) as u16);
                list.push(if rng.one_in(3) {
                    format!("{lo}")
                } else {
                    format!("{lo}-{hi}")
                });
            }
            let text = list.join(",");
            let p: PortList = text.parse().unwrap();
            for _ in 0..500 {
                let port = rng.below(65_536) as u16;
                assert_eq!(p.contains(port), walk(&p.ranges, port), "{port} in {text}");
                for near in [port.wrapping_sub(1), port.wrapping_add(1)] {
                    assert_eq!(p.contains(near), walk(&p.ranges, near), "{near} in {text}");
                }
            }
            for &(lo, hi) in &p.ranges {
                for port in [lo - 1, lo, hi, hi.wrapping_add(1)] {
                    assert_eq!(p.contains(port), walk(&p.ranges, port), "{port} in {text}");
                }
            }
        }
    }

    #[test]
    fn port_list_rejects_zero_reversed_and_junk() {
        for bad in ["0", "70000", "10-5", "", "abc", "1-"] {
            assert!(bad.parse::<PortList>().is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds_accept_decimals_and_reject_nonsense() {
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "nan", "inf", "x", "1e9"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    fn listen(s: &str) -> Result<Vec<SocketAddr>, String> {
        s.parse::<ListenAddr>().map(|l| l.addrs)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listen_takes_ipv4_and_bracketed_ipv6_addresses() {
        assert_eq!(listen("127.0.0.1:3128"), Ok(vec![addr("127.0.0.1:3128")]));
        assert_eq!(listen(" 10.0.0.1:0 "), Ok(vec![addr("10.0.0.1:0")]));
        assert_eq!(listen("[::1]:3128"), Ok(vec![addr("[::1]:3128")]));
        assert_eq!(listen("[::]:8080"), Ok(vec![addr("[::]:8080")]));
    }

    #[test]
    fn listen_port_alone_means_every_ipv4_interface() {
        assert_eq!(listen(":3128"), Ok(vec![addr("0.0.0.0:3128")]));
        assert_eq!(listen(":0"), Ok(vec![addr("0.0.0.0:0")]));
    }

    #[test]
    fn listen_name_resolves_to_every_address_without_repeats() {
        let addrs = listen("localhost:3128").unwrap();
        assert!(addrs.contains(&addr("127.0.0.1:3128")), "{addrs:?}");
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 3128));
        let mut unique = addrs.clone();
        unique.dedup();
        assert_eq!(unique, addrs);
        let given = "localhost:0".parse::<ListenAddr>().unwrap().given;
        assert_eq!(given, "localhost:0");
    }

    #[test]
    fn listen_rejects_bad_values_saying_what_is_wrong() {
        for (bad, says) in [
            ("3128", ":3128 listens on every IPv4 interface"),
            ("", "is not an address"),
            ("127.0.0.1", "has no port: give 127.0.0.1:PORT"),
            ("::1", "has no port: give [::1]:PORT"),
            ("host:99999", "'99999' in 'host:99999' is not a port"),
            (":-1", "is not a port"),
            ("localhost:", "is not a port"),
            ("[::1]:70000", "is not a port"),
            ("[zz]:1", "'zz' in '[zz]:1' is not an IPv6 address"),
            ("[::1:3128", "in brackets"),
            ("fe80::1:3128x", "is not a port"),
            (
                "nosuchname.invalid:1",
                "cannot resolve 'nosuchname.invalid'",
            ),
        ] {
            match listen(bad) {
                Err(e) => assert!(e.contains(says), "{bad:?}: {e}"),
                Ok(a) => panic!("{bad:?} accepted as {a:?}"),
            }
        }
    }

    #[test]
    fn repeated_listen_values_are_all_kept_once_each() {
        let cli = Cli::try_parse_from([
            "larder",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.2:0,127.0.0.1:0",
        ])
        .unwrap();
        let c = Config::from(cli);
        assert_eq!(c.listen, vec![addr("127.0.0.1:0"), addr("127.0.0.2:0")]);
    }

    fn several() -> ListenAddr {
        ListenAddr {
            given: "both.example:3128".into(),
            addrs: vec![addr("127.0.0.1:3128"), addr("[::1]:3128")],
        }
    }

    fn no_ipv6(a: SocketAddr) -> io::Result<()> {
        if a.is_ipv6() {
            Err(io::Error::from_raw_os_error(EAFNOSUPPORT))
        } else {
            Ok(())
        }
    }

    #[test]
    fn a_name_keeps_the_addresses_whose_family_is_available() {
        let mut l = several();
        let dropped = l.drop_unusable(no_ipv6).unwrap();
        assert_eq!(l.addrs, vec![addr("127.0.0.1:3128")]);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].0, addr("[::1]:3128"));
        // An address that is not this machine's is dropped the same way.
        let mut l = several();
        let not_here = |a: SocketAddr| match a.is_ipv4() {
            true => Err(io::Error::from(io::ErrorKind::AddrNotAvailable)),
            false => Ok(()),
        };
        assert_eq!(l.drop_unusable(not_here).unwrap().len(), 1);
        assert_eq!(l.addrs, vec![addr("[::1]:3128")]);
    }

    #[test]
    fn a_name_none_of_whose_addresses_is_usable_is_an_error_naming_it() {
        let mut l = several();
        let err = l
            .drop_unusable(|_| Err(io::Error::from_raw_os_error(EAFNOSUPPORT)))
            .unwrap_err();
        assert!(err.contains("cannot listen on both.example:3128"), "{err}");
        assert!(
            err.contains("127.0.0.1:3128") && err.contains("[::1]:3128"),
            "{err}"
        );
    }

    #[test]
    fn other_probe_failures_and_single_addresses_are_left_to_the_bind() {
        let mut l = several();
        let denied = |_| Err(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(l.drop_unusable(denied).unwrap().is_empty());
        assert_eq!(l.addrs.len(), 2);
        let mut one = "[::1]:3128".parse::<ListenAddr>().unwrap();
        assert!(one.drop_unusable(no_ipv6).unwrap().is_empty());
        assert_eq!(one.addrs, vec![addr("[::1]:3128")]);
    }

    #[test]
    fn the_listen_probe_leaves_the_port_free() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        // The port asked for is in use, yet the address itself is usable.
        assert!(probe_listen(SocketAddr::from(([127, 0, 0, 1], port))).is_ok());
    }

    #[test]
    fn max_conns_must_be_at_least_one() {
        assert_eq!(parse_max_conns("1"), Ok(1));
        assert_eq!(parse_max_conns(" 500 "), Ok(500));
        assert!(parse_max_conns("0").unwrap_err().contains("1 or more"));
        assert!(parse_max_conns("-3").unwrap_err().contains("'-3'"));
        assert!(Cli::try_parse_from(["larder", "--max-conns", "0"]).is_err());
    }

    #[test]
    fn a_bad_log_level_lists_the_levels() {
        assert_eq!(parse_log_level("WARN"), Ok(log::LevelFilter::Warn));
        let err = parse_log_level("loud").unwrap_err();
        assert!(
            err.contains("off, error, warn, info, debug, trace"),
            "{err}"
        );
    }

    /// The error clap gives for `--max-conns abc`, as it would for the variable.
    fn max_conns_error() -> clap::Error {
        Cli::try_parse_from(["larder", "--max-conns", "abc"]).unwrap_err()
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_bad_variable_is_named_with_its_flag() {
        let var = |name: &OsStr| (name == "LARDER_MAX_CONNS").then(|| OsString::from("abc"));
        let message = env_error(&max_conns_error(), args(&["larder"]), var).unwrap();
        assert!(
            message.starts_with("LARDER_MAX_CONNS='abc': 'abc' is not a whole number"),
            "{message}"
        );
        assert!(
            message.ends_with("(the environment twin of --max-conns)"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_flag_value_keeps_clap_s_message() {
        let var = |_: &OsStr| Some(OsString::from("abc"));
        for line in [
            &["larder", "--max-conns", "abc"][..],
            &["larder", "--max-conns=abc"],
        ] {
            assert_eq!(env_error(&max_conns_error(), args(line), var), None);
        }
        // Not set in the environment at all.
        assert_eq!(
            env_error(&max_conns_error(), args(&["larder"]), |_| None),
            None
        );
        // Not about a value.
        let unknown = Cli::try_parse_from(["larder", "--no-such-flag"]).unwrap_err();
        assert_eq!(env_error(&unknown, args(&["larder"]), var), None);
    }

    #[test]
    fn max_object_may_not_exceed_the_cache() {
        let file = Path::new("/c/larder.cache");
        let none = || None;
        assert_eq!(check_max_object(None, Some(1 << 20), none, file), Ok(()));
        assert_eq!(
            check_max_object(Some(4 << 20), Some(4 << 20), none, file),
            Ok(())
        );
        let err = check_max_object(Some(8 << 20), Some(4 << 20), none, file).unwrap_err();
        assert!(err.contains("--cache-max-object 8 MiB"), "{err}");
        assert!(err.contains("--cache-size 4 MiB"), "{err}");
        // Without --cache-size, an existing cache keeps its own size...
        let existing = || Some(2 << 20);
        let err = check_max_object(Some(3 << 20), None, existing, file).unwrap_err();
        assert!(err.contains("/c/larder.cache (2 MiB"), "{err}");
        assert_eq!(
            check_max_object(Some(300 << 20), None, || Some(1 << 30), file),
            Ok(())
        );
        // ...and a new one gets the default.
        let err = check_max_object(Some(300 << 20), None, none, file).unwrap_err();
        assert!(err.contains("256 MiB, the default"), "{err}");
        assert_eq!(check_max_object(Some(256 << 20), None, none, file), Ok(()));
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn listening_beyond_loopback_with_the_default_allow_is_warned_about() {
        let loopback = [
            addr("127.0.0.1:3128"),
            addr("[::1]:3128"),
            addr("[::ffff:127.0.0.2]:3128"),
        ];
        assert_eq!(loopback_only_warning(&[], &loopback), None);
        let warning = loopback_only_warning(&[], &[addr("0.0.0.0:3128")]).unwrap();
        assert!(warning.contains("listening on 0.0.0.0:3128"), "{warning}");
        assert!(warning.contains("only loopback clients"), "{warning}");
        assert!(warning.contains("--allow 192.168.1.0/24"), "{warning}");
        let warning = loopback_only_warning(&[], &[addr("10.1.2.3:3128")]).unwrap();
        assert!(warning.contains("--allow 10.1.2.0/24"), "{warning}");
        let warning = loopback_only_warning(&[], &[addr("[fd00::2]:3128")]).unwrap();
        assert!(warning.contains("--allow fd00::/64"), "{warning}");
        let allowed = [cidr("192.168.1.0/24")];
        assert_eq!(
            loopback_only_warning(&allowed, &[addr("0.0.0.0:3128")]),
            None
        );
    }

    #[test]
    fn http_ports_default_to_squid_s_safe_ports() {
        let c: Config = Cli::try_parse_from(["larder"]).unwrap().into();
        for safe in [80, 21, 443, 70, 210, 280, 488, 591, 777, 1025, 8080, 65535] {
            assert!(c.http_ports.contains(safe), "{safe}");
        }
        for unsafe_port in [22, 25, 110, 143, 631, 1024] {
            assert!(!c.http_ports.contains(unsafe_port), "{unsafe_port}");
        }
        assert!(c.allow_to.is_empty());
        assert_eq!(c.max_conns_per_client, None);
        let c: Config = Cli::try_parse_from(["larder", "--http-ports", "80,8000-8999"])
            .unwrap()
            .into();
        assert!(c.http_ports.contains(8080) && !c.http_ports.contains(443));
    }

    #[test]
    fn max_conns_per_client_must_be_at_least_one() {
        assert_eq!(parse_per_client("8"), Ok(8));
        assert!(parse_per_client("0")
            .unwrap_err()
            .contains("leave the setting out"));
        assert!(parse_per_client("x").unwrap_err().contains("'x'"));
        let c: Config = Cli::try_parse_from(["larder", "--max-conns-per-client", "4"])
            .unwrap()
            .into();
        assert_eq!(c.max_conns_per_client, Some(4));
    }

    #[test]
    fn cli_defaults_are_loopback_3128_and_connect_443() {
        let c: Config = Cli::try_parse_from(["larder"]).unwrap().into();
        assert_eq!(c.listen, vec!["127.0.0.1:3128".parse().unwrap()]);
        assert!(c.connect_ports.contains(443) && !c.connect_ports.contains(80));
        assert_eq!(c.timeouts, Timeouts::default());
    }

    #[test]
    fn cache_sync_is_whole_seconds_from_1_and_defaults_to_5() {
        let sync_of = |args: &[&str]| -> Result<u64, String> {
            let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
            let c: Config = cli.into();
            Ok(c.cache.sync_every)
        };
        assert_eq!(sync_of(&["larder"]), Ok(5));
        assert_eq!(sync_of(&["larder", "--cache-sync", "30"]), Ok(30));
        for bad in ["0", "1.5", "x"] {
            let err = sync_of(&["larder", "--cache-sync", bad]).unwrap_err();
            assert!(err.contains("whole number of seconds"), "{bad}: {err}");
        }
    }

    #[test]
    fn range_whole_below_is_a_size_defaulting_to_64m_and_0_turns_it_off() {
        let limit_of = |args: &[&str]| -> Result<u64, String> {
            let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
            let c: Config = cli.into();
            Ok(c.cache.range_whole_below)
        };
        assert_eq!(limit_of(&["larder"]), Ok(64 << 20));
        assert_eq!(
            limit_of(&["larder", "--range-whole-below", "1G"]),
            Ok(1 << 30)
        );
        assert_eq!(limit_of(&["larder", "--range-whole-below", "0"]), Ok(0));
        assert_eq!(limit_of(&["larder", "--range-whole-below=512"]), Ok(512));
        for bad in ["-1", "x", "4Q"] {
            let flag = format!("--range-whole-below={bad}");
            let err = limit_of(&["larder", &flag]).unwrap_err();
            assert!(err.contains("invalid size"), "{bad}: {err}");
        }
    }
}
