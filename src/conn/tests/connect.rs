//! Connecting over several addresses (Happy Eyeballs, RFC 8305), with names resolved
//! by the test: an address that never answers costs a quarter of a second, one that
//! refuses costs nothing, IPv6 goes first, and the connect timeout bounds the whole.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::pair::{Origin, Pair};
use super::{ms, ok};
use crate::conn::congestion::Congestion;
use crate::dns::Answer;

const V6: &str = "[::1]:8080";
const V4: &str = "127.0.0.1:8080";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// `dual.test` resolves to ::1 and 127.0.0.1, in the resolver's order (IPv4 first,
/// so the reordering shows).
fn names(host: &str) -> Answer {
    match host {
        "dual.test" => {
            let ips: Vec<IpAddr> = vec![addr(V4).ip(), addr(V6).ip()];
            Ok(Arc::from(ips))
        }
        _ => Err(format!("{host}: no such name here")),
    }
}

fn get_dual() -> &'static [u8] {
    b"GET http://dual.test:8080/ HTTP/1.1\r\nHost: dual.test:8080\r\n\r\n"
}

#[test]
fn an_address_that_never_answers_costs_a_quarter_second_not_the_timeout() {
    let mut pair = Pair::with_names(&[], names);
    Origin::black_hole(addr(V6));
    Origin::listen(addr(V4));
    let mut client = pair.client();
    client.send(get_dual());
    pair.run();
    assert_eq!(pair.state_of(&client), "Connecting");
    assert!(
        Origin::accept(addr(V4)).is_none(),
        "IPv6 is tried first, alone"
    );
    pair.advance(ms(240));
    assert!(
        Origin::accept(addr(V4)).is_none(),
        "too early for the next address"
    );
    pair.advance(ms(20));
    let mut origin = Origin::accept(addr(V4)).expect("the next address, 250 ms on");
    assert!(origin.received().starts_with(b"GET / HTTP/1.1\r\n"));
    origin.send(&ok(b"over IPv4"));
    pair.run();
    assert!(client.received().ends_with(b"\r\n\r\nover IPv4"));
    assert_eq!(pair.upstreams(), 1, "the silent attempt is closed");
}

#[test]
fn a_refused_address_moves_on_at_once_and_ipv6_goes_first() {
    let mut pair = Pair::with_names(&[], names);
    // Nothing listens on ::1: refused.
    Origin::listen(addr(V4));
    let mut client = pair.client();
    client.send(get_dual());
    pair.run();
    let mut origin = Origin::accept(addr(V4)).expect("no wait after a refusal");
    origin.send(&ok(b"v4"));
    pair.run();
    assert!(client.received().ends_with(b"\r\n\r\nv4"));

    // Both answer: IPv6 wins, and IPv4 is never dialled.
    let mut pair = Pair::with_names(&[], names);
    Origin::listen(addr(V6));
    Origin::listen(addr(V4));
    let mut client = pair.client();
    client.send(get_dual());
    pair.run();
    let mut origin = Origin::accept(addr(V6)).expect("IPv6 first");
    origin.send(&ok(b"v6"));
    pair.run();
    assert!(client.received().ends_with(b"\r\n\r\nv6"));
    assert!(Origin::accept(addr(V4)).is_none(), "one connection in all");
}

#[test]
fn the_connect_timeout_bounds_all_attempts_and_all_refused_is_502() {
    let mut pair = Pair::with_names(&["--timeout-connect", "1"], names);
    Origin::black_hole(addr(V6));
    Origin::black_hole(addr(V4));
    let mut client = pair.client();
    client.send(get_dual());
    pair.run();
    pair.advance(ms(990));
    assert!(client.received().is_empty(), "answered before the timeout");
    assert_eq!(pair.upstreams(), 2, "both addresses are being tried");
    pair.advance(ms(20));
    let text = String::from_utf8_lossy(client.received()).into_owned();
    assert!(text.starts_with("HTTP/1.1 504 "), "{text}");
    assert_eq!(pair.upstreams(), 0, "every attempt is closed");

    // Nobody listens anywhere: 502 at once, naming the failure.
    let mut pair = Pair::with_names(&[], names);
    let mut client = pair.client();
    client.send(get_dual());
    pair.run();
    let text = String::from_utf8_lossy(client.received()).into_owned();
    assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
    assert!(text.contains("Cannot connect to dual.test:8080"), "{text}");
}

#[test]
fn upstream_sockets_take_the_congestion_control_given() {
    for (args, want) in [
        (&["--tcp-congestion", "reno"][..], Some("reno")),
        (&[][..], None),
    ] {
        let mut pair = Pair::with_names(args, names);
        Origin::listen(addr(V6));
        let mut client = pair.client();
        client.send(get_dual());
        pair.run();
        let origin = Origin::accept(addr(V6)).expect("connected");
        assert_eq!(origin.congestion().as_deref(), want, "{args:?}");
    }
}

#[test]
fn where_the_system_paces_only_loopback_upstreams_get_the_unpaced_one() {
    let remote = "192.0.2.10:8080";
    let resolve = |host: &str| -> Answer {
        match host {
            "near.test" => Ok(Arc::from(vec![addr(V4).ip()])),
            "far.test" => Ok(Arc::from(vec![addr(remote).ip()])),
            _ => Err(format!("{host}: no such name here")),
        }
    };
    for (host, at, want) in [("near.test", V4, Some("cubic")), ("far.test", remote, None)] {
        let mut pair = Pair::with_names(&[], resolve);
        // What start-up chooses on a BBR system.
        pair.ctx.congestion = Congestion::choose(None, Some("bbr"), |_| true);
        Origin::listen(addr(at));
        let mut client = pair.client();
        client.send(
            format!("GET http://{host}:8080/ HTTP/1.1\r\nHost: {host}:8080\r\n\r\n").as_bytes(),
        );
        pair.run();
        let origin = Origin::accept(addr(at)).expect("connected");
        assert_eq!(origin.congestion().as_deref(), want, "{host}");
    }
}
