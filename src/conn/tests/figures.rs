//! The figures behind the status page and `/metrics` are the same with an access log
//! and without: without one, a finished exchange is counted without its line being
//! put together (`request::log_exchange`), and that shortcut must count alike.

use super::pair::{Origin, Pair};
use super::{forwarded, get, ok, origin_addr};
use crate::access_log::{AccessLog, ResultCode};
use crate::cache::TempDir;
use crate::stats::{Denial, HostBytes, Totals};

/// What the pages show of the requests counted.
type Figures = (Vec<u64>, u64, u64, Vec<HostBytes>, Totals, Vec<u64>);

/// Runs a miss, a second miss over the pooled upstream, a hit, and a refused
/// request through a larder with an access log or without; returns its figures
/// and, with the log, its lines.
fn run(with_log: bool) -> (Figures, String) {
    let dir = TempDir::new("figures");
    let path = dir.path().join("access.log");
    let mut pair = Pair::new(&["--admit-after", "0"]);
    if with_log {
        pair.ctx.log = Some(AccessLog::open(&path).expect("access log"));
    }
    Origin::listen(origin_addr());
    let mut client = pair.client();
    let mut origin = forwarded(&mut pair, &mut client, &get("/a"));
    origin.send(&ok(b"first"));
    pair.run();
    client.send(&get("/b"));
    pair.run();
    origin
        .send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 6\r\n\r\nstored");
    pair.run();
    client.send(&get("/b"));
    pair.run();
    client.send(b"GET http://127.0.0.1:22/ HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n");
    pair.run();
    let got = String::from_utf8_lossy(client.received()).into_owned();
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 3, "{got}");
    assert!(got.contains("HTTP/1.1 403 "), "{got}");
    let lines = match pair.ctx.log.as_mut() {
        Some(log) => {
            log.flush();
            std::fs::read_to_string(&path).expect("log lines")
        }
        None => String::new(),
    };
    let s = &pair.ctx.stats;
    let figures = (
        s.results.to_vec(),
        s.bytes_to_clients,
        s.hit_bytes,
        s.hosts.top(10),
        s.recent.last_minute(pair.ctx.unix),
        s.denied.to_vec(),
    );
    (figures, lines)
}

#[test]
fn the_figures_are_the_same_without_an_access_log() {
    let (without, no_lines) = run(false);
    let (with, lines) = run(true);
    assert_eq!(without, with);
    assert!(no_lines.is_empty());
    assert_eq!(lines.lines().count(), 4, "{lines}");
    assert!(lines.contains(" TCP_HIT/200 "), "{lines}");
    assert!(lines.contains(" TCP_DENIED/403 "), "{lines}");
    let (results, bytes, hit_bytes, hosts, minute, denied) = without;
    assert_eq!(results.iter().sum::<u64>(), 4);
    assert_eq!(results[ResultCode::Hit as usize], 1);
    assert_eq!(results[ResultCode::Miss as usize], 2);
    assert!(hit_bytes > 0 && bytes > hit_bytes);
    assert_eq!(minute.requests, 4);
    assert_eq!(minute.bytes, bytes);
    assert_eq!(denied[Denial::HttpPort as usize], 1);
    // Ports 8080 and 22 are one host.
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(
        (hosts[0].host.as_str(), hosts[0].requests),
        ("127.0.0.1", 4)
    );
    assert_eq!(hosts[0].bytes, bytes);
}
