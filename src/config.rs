//! Command line (clap, every flag with a `LARDER_*` environment twin) and the
//! validated [`Config`] the server runs with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

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

    /// Most client connections at once; at the limit larder stops accepting until one
    /// closes. Default: derived from the open-file limit.
    #[arg(long, env = "LARDER_MAX_CONNS", value_name = "N")]
    pub max_conns: Option<usize>,

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
        default_value = "warn"
    )]
    pub log_level: log::LevelFilter,

    /// Write one line per request to this file, in Squid's native access.log format.
    #[arg(long, env = "LARDER_ACCESS_LOG", value_name = "PATH")]
    pub access_log: Option<PathBuf>,

    /// Directory of the cache file, larder.cache (created if missing). The default is
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

    /// Largest body stored, e.g. 8M (default: an eighth of the cache size). Larger
    /// responses are relayed but not stored.
    #[arg(long, env = "LARDER_CACHE_MAX_OBJECT", value_name = "SIZE", value_parser = crate::cache::size::parse)]
    pub cache_max_object: Option<u64>,
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
pub struct ListenAddr(pub Vec<SocketAddr>);

impl std::str::FromStr for ListenAddr {
    type Err = String;

    /// `IP:PORT`, `[IPv6]:PORT`, `:PORT` (every IPv4 interface, as nginx reads it), or
    /// `NAME:PORT` (every address the name resolves to).
    fn from_str(s: &str) -> Result<ListenAddr, String> {
        let s = s.trim();
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(ListenAddr(vec![addr]));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("'{s}' is not an address: give HOST:PORT or :PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("'{port}' in '{s}' is not a port (0-65535)"))?;
        if host.is_empty() {
            return Ok(ListenAddr(vec![SocketAddr::from(([0, 0, 0, 0], port))]));
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
        Ok(ListenAddr(addrs))
    }
}

/// A set of TCP ports given as `443,8443,9000-9100`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortList(Vec<(u16, u16)>);

impl PortList {
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= port && port <= hi)
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
        Ok(PortList(ranges))
    }
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Every address to listen on (at least one, no repeats).
    pub listen: Vec<SocketAddr>,
    pub allow: Vec<Cidr>,
    /// Who may see the status page and metrics and send PURGE; empty: loopback.
    pub admin: Vec<Cidr>,
    pub pac_direct: Vec<crate::pages::pac::PacDirect>,
    /// How long a stop waits for requests in flight.
    pub drain_timeout: Duration,
    pub deny: Vec<Cidr>,
    pub block: Vec<String>,
    pub block_list: Vec<PathBuf>,
    pub block_ip: Vec<Cidr>,
    pub connect_ports: PortList,
    /// `None`: derive from the open-file limit at start-up.
    pub max_conns: Option<usize>,
    pub timeouts: Timeouts,
    pub access_log: Option<PathBuf>,
    /// `None`: run without a cache (benchmarks and library use; the binary always has one).
    pub cache: Option<CacheSettings>,
}

/// Where the cache file lives and the size asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub dir: PathBuf,
    /// `--cache-size` when given: a new file's size, or a new size for an existing one.
    pub size: Option<u64>,
    /// `--cache-max-object`; `None`: an eighth of the cache.
    pub max_object: Option<u64>,
    /// `--admit-after` and `--admit-window`.
    pub admit_after: u32,
    pub admit_window: u64,
}

/// Every deadline larder enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub head: Duration,
    pub idle: Duration,
    pub connect: Duration,
    pub response: Duration,
    pub body: Duration,
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
        for addr in c.listen.into_iter().flat_map(|l| l.0) {
            if !listen.contains(&addr) {
                listen.push(addr);
            }
        }
        Config {
            listen,
            allow: c.allow,
            admin: c.admin,
            pac_direct: c.pac_direct,
            drain_timeout: c.drain_timeout,
            deny: c.deny,
            block: c.block,
            block_list: c.block_list,
            block_ip: c.block_ip,
            connect_ports: c.connect_ports,
            max_conns: c.max_conns.filter(|&n| n > 0),
            timeouts: Timeouts {
                head: c.timeout_head,
                idle: c.timeout_idle,
                connect: c.timeout_connect,
                response: c.timeout_response,
                body: c.timeout_body,
                tunnel: c.timeout_tunnel,
            },
            access_log: c.access_log,
            cache: Some(CacheSettings {
                dir: c.cache_dir.unwrap_or_else(crate::cache::dir::default_dir),
                size: c.cache_size,
                max_object: c.cache_max_object,
                admit_after: c.admit_after,
                admit_window: c.admit_window,
            }),
        }
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

    #[test]
    fn cli_defaults_are_loopback_3128_and_connect_443() {
        let c: Config = Cli::try_parse_from(["larder"]).unwrap().into();
        assert_eq!(c.listen, vec!["127.0.0.1:3128".parse().unwrap()]);
        assert!(c.connect_ports.contains(443) && !c.connect_ports.contains(80));
        assert_eq!(c.timeouts, Timeouts::default());
    }
}
