//! Connecting to an origin with several addresses (RFC 8305, Happy Eyeballs): an
//! address that never answers must cost a short delay, not the whole connect timeout.
//!
//! The names come from `--hosts`, so a test can give one name a silent address and a
//! good one on this machine alone. A silent address is a listening socket whose accept
//! queue is full and never drained: the kernel drops further SYNs, so a connect to it
//! neither succeeds nor fails — what a blackholed IPv6 route looks like to larder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::support::{ok, Origin, Proxy, Reply, TempFile};

/// A listener on `ip:port` that completes no more handshakes: its accept queue is
/// filled with connections (kept open here) and never accepted. `None` when `ip:port`
/// cannot be bound (e.g. no IPv6 on this machine).
struct Silent {
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl Silent {
    fn bind(ip: IpAddr, port: u16) -> Option<Silent> {
        let addr = SocketAddr::new(ip, port);
        let listener = TcpListener::bind(addr).ok()?;
        let mut queued = Vec::new();
        // std listens with a backlog of 128; the queue holds that many and one more.
        // Bounded: if the queue never fills, this is not a silent address.
        for _ in 0..1024 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => queued.push(s),
                Err(_) => {
                    return Some(Silent {
                        _listener: listener,
                        _queued: queued,
                    })
                }
            }
        }
        panic!("the accept queue of {addr} never filled");
    }
}

fn origin() -> Origin {
    Origin::start(|_| Reply::Send(ok(b"reached")))
}

/// larder resolving `name` from a hosts file with `lines`.
fn proxy_with_hosts(hosts: &TempFile, lines: &str, timeout_connect: &str) -> Proxy {
    hosts.write(lines);
    Proxy::start(&["--hosts", hosts.arg(), "--timeout-connect", timeout_connect])
}

/// A request to `url` through `proxy`: its status and body, and how long it took.
fn timed_get(proxy: &Proxy, url: &str) -> (u16, String, Duration) {
    let start = Instant::now();
    let resp = proxy.get(url);
    (resp.status, resp.text(), start.elapsed())
}

#[test]
fn a_silent_ipv6_address_is_passed_over_for_the_ipv4_one_well_within_the_connect_timeout() {
    let origin = origin();
    let Some(_silent) = Silent::bind(IpAddr::V6(Ipv6Addr::LOCALHOST), origin.port()) else {
        eprintln!("skipped: no IPv6 loopback to bind on this machine");
        return;
    };
    let hosts = TempFile::new("hosts");
    // Listed IPv4 first: larder still tries IPv6 first, as RFC 8305 says.
    let proxy = proxy_with_hosts(&hosts, "127.0.0.1 dual.test\n::1 dual.test\n", "10");
    let url = format!("http://dual.test:{}/x", origin.port());
    let (status, body, took) = timed_get(&proxy, &url);
    assert_eq!(status, 200);
    assert_eq!(body, "reached");
    // The next address starts 250 ms after the first without waiting for it to fail;
    // without that, the silent address would hold the request for the whole 10 s.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(origin.requests(), 1);
}

#[test]
fn a_silent_first_address_of_one_family_is_passed_over_for_the_next() {
    let origin = origin();
    let silent_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let Some(_silent) = Silent::bind(silent_ip, origin.port()) else {
        panic!("cannot bind 127.0.0.2:{}", origin.port());
    };
    let hosts = TempFile::new("hosts");
    let proxy = proxy_with_hosts(&hosts, "127.0.0.2 two.test\n127.0.0.1 two.test\n", "10");
    let url = format!("http://two.test:{}/x", origin.port());
    let (status, body, took) = timed_get(&proxy, &url);
    assert_eq!(status, 200);
    assert_eq!(body, "reached");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn only_silent_addresses_end_in_504_at_the_connect_timeout() {
    let origin = origin();
    let Some(_silent) = Silent::bind(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), origin.port()) else {
        panic!("cannot bind 127.0.0.3:{}", origin.port());
    };
    let hosts = TempFile::new("hosts");
    let proxy = proxy_with_hosts(&hosts, "127.0.0.3 silent.test\n", "1");
    let url = format!("http://silent.test:{}/x", origin.port());
    let (status, _, took) = timed_get(&proxy, &url);
    assert_eq!(status, 504);
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert_eq!(origin.requests(), 0);
}

#[test]
fn a_bad_hosts_file_stops_start_up_with_its_line() {
    let hosts = TempFile::new("hosts");
    hosts.write("127.0.0.1 fine.test\n127.0.0.x broken.test\n");
    let (code, stderr) = crate::support::run_to_exit(&["--hosts", hosts.arg()]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("line 2: `127.0.0.x` is not an IP address"),
        "{stderr}"
    );
}

#[test]
fn sighup_rereads_the_hosts_file() {
    // The origin closes after each answer, so no pooled connection to the old address
    // can answer the second request.
    let origin = Origin::start(|_| Reply::SendClose(ok(b"reached")));
    let hosts = TempFile::new("hosts");
    let proxy = proxy_with_hosts(&hosts, "127.0.0.1 moved.test\n", "2");
    let url = format!("http://moved.test:{}/x", origin.port());
    assert_eq!(timed_get(&proxy, &url).0, 200);
    // Nothing listens on 127.0.0.5: once the new file is read, the name leads there.
    hosts.write("127.0.0.5 moved.test\n");
    proxy.signal("HUP");
    assert!(
        crate::support::wait_until(|| proxy.stderr().contains("reloaded on SIGHUP")),
        "{}",
        proxy.stderr()
    );
    assert_eq!(timed_get(&proxy, &url).0, 502);
    assert_eq!(origin.requests(), 1);
}
