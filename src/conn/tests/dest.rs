//! The destination rules on connections, in memory: a client elsewhere (10.0.0.0/8,
//! named by a balancer's PROXY header or accepted from that address) is refused the
//! machine's loopback before anything is connected, a name is connected only on the
//! addresses it may reach, a kept connection made for a client on the machine is not
//! handed to one elsewhere, and a balancer's client is held to
//! `--max-conns-per-client` once its header names it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::pair::{Origin, Pair};
use super::proxy_header::BALANCED;
use super::{get, ok, origin_addr};
use crate::dns::Answer;

/// Where the LAN's own web server listens (an address no test machine has: these
/// sockets are in memory).
const LAN_ORIGIN: &str = "10.9.9.9:8080";
const ELSEWHERE: &str = "10.0.0.5:40000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// `mixed.test`: loopback first, then the LAN server; `rebind.test` and
/// `kept.test`: loopback only.
fn names(host: &str) -> Answer {
    let ips: Vec<IpAddr> = match host {
        "mixed.test" => vec![addr("127.0.0.1:0").ip(), addr(LAN_ORIGIN).ip()],
        "rebind.test" | "kept.test" => vec![addr("127.0.0.1:0").ip()],
        _ => return Err(format!("{host}: no such name here")),
    };
    Ok(Arc::from(ips))
}

fn get_name(name: &str) -> Vec<u8> {
    format!("GET http://{name}:8080/ HTTP/1.1\r\nHost: {name}:8080\r\n\r\n").into_bytes()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_client_elsewhere_is_refused_loopback_before_anything_is_connected() {
    let mut pair = Pair::with_names(&["--allow", "0.0.0.0/0"], names);
    Origin::listen(origin_addr());
    let mut client = pair.client_from(ELSEWHERE);
    client.send(&get("/secret"));
    pair.run();
    let got = text(client.received());
    assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
    assert!(got.contains("detail=destination-not-allowed"), "{got}");
    assert!(Origin::accept(origin_addr()).is_none(), "nothing connected");
    // A name that resolves to loopback is refused the same way, after DNS.
    client.send(&get_name("rebind.test"));
    pair.run();
    let got = text(client.received());
    assert_eq!(got.matches("HTTP/1.1 403 ").count(), 2, "{got}");
    assert!(Origin::accept(origin_addr()).is_none(), "nothing connected");
    use crate::stats::Denial;
    assert_eq!(pair.ctx.stats.denials(Denial::Destination), 2);
}

#[test]
fn a_name_is_connected_only_on_the_addresses_the_client_may_reach() {
    let mut pair = Pair::with_names(&["--allow", "0.0.0.0/0"], names);
    Origin::listen(origin_addr());
    Origin::listen(addr(LAN_ORIGIN));
    let mut client = pair.client_from(ELSEWHERE);
    client.send(&get_name("mixed.test"));
    pair.run();
    assert!(
        Origin::accept(origin_addr()).is_none(),
        "loopback, though first, is never tried"
    );
    let mut origin = Origin::accept(addr(LAN_ORIGIN)).expect("the LAN server");
    origin.send(&ok(b"from the LAN"));
    pair.run();
    assert!(text(client.received()).ends_with("\r\n\r\nfrom the LAN"));
}

#[test]
fn allow_to_opens_loopback_again() {
    let args = ["--allow", "0.0.0.0/0", "--allow-to", "127.0.0.1/32"];
    let mut pair = Pair::with_names(&args, names);
    Origin::listen(origin_addr());
    let mut client = pair.client_from(ELSEWHERE);
    client.send(&get_name("rebind.test"));
    pair.run();
    let mut origin = Origin::accept(origin_addr()).expect("opened by --allow-to");
    origin.send(&ok(b"opened"));
    pair.run();
    assert!(text(client.received()).ends_with("\r\n\r\nopened"));
}

#[test]
fn a_kept_connection_to_loopback_is_not_handed_to_a_client_elsewhere() {
    let mut pair = Pair::with_names(&["--allow", "0.0.0.0/0"], names);
    Origin::listen(origin_addr());
    // The machine's own client may reach its loopback; the connection is kept.
    let mut local = pair.client();
    local.send(&get_name("kept.test"));
    pair.run();
    let mut origin = Origin::accept(origin_addr()).expect("connected for the local client");
    origin.send(&ok(b"local"));
    pair.run();
    assert!(text(local.received()).ends_with("\r\n\r\nlocal"));
    assert_eq!(pair.upstreams(), 1, "kept in the pool");
    // A client elsewhere asking for the same name gets no use of it.
    let mut other = pair.client_from(ELSEWHERE);
    other.send(&get_name("kept.test"));
    pair.run();
    let got = text(other.received());
    assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
    assert!(
        origin.received().len() < 2 * get_name("kept.test").len(),
        "one request only"
    );
}

#[test]
fn a_balancer_s_client_is_counted_once_its_header_names_it() {
    let args = [&BALANCED[..], &["--max-conns-per-client", "1"]].concat();
    let mut pair = Pair::new(&args);
    Origin::listen(origin_addr());
    let header = |client: &str| format!("PROXY TCP4 {client} 127.0.0.1 50000 3128\r\n");
    let mut first = pair.client();
    first.send(header("10.1.2.3").as_bytes());
    pair.run();
    // The balancer's own address is not counted: a second connection from it naming
    // the same client is closed once the header is read, one naming another is not.
    let mut second = pair.client();
    second.send(header("10.1.2.3").as_bytes());
    second.send(&get("/second"));
    pair.run();
    assert!(second.sees_end(), "over the client's limit");
    assert!(second.received().is_empty(), "closed without a word");
    let mut other = pair.client();
    other.send(header("10.1.2.4").as_bytes());
    other.send(&get("/other"));
    pair.run();
    assert!(
        Origin::accept(origin_addr()).is_some(),
        "another client is served"
    );
    assert!(pair.is_open(&first), "the first connection is untouched");
    assert_eq!(pair.ctx.stats.conns_over_client_limit, 1);
    assert_eq!(pair.ctx.per_client.open("10.1.2.3".parse().expect("ip")), 1);
}
