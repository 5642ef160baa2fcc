//! Connections from a `--proxy-protocol` balancer: the PROXY header comes first and
//! names the client the access rules judge; without one, or from anyone else, the
//! connection is refused.

use super::pair::{Origin, Pair};
use super::{forwarded, get, ok, origin_addr};

/// The balancer is 127.0.0.1; the clients it speaks for are on 10.0.0.0/8, which alone
/// may use the proxy, so a request gets through only as the client the header names.
/// The origin is on loopback, which clients elsewhere reach only through --allow-to.
pub(super) const BALANCED: [&str; 6] = [
    "--proxy-protocol",
    "127.0.0.1/32",
    "--allow",
    "10.0.0.0/8",
    "--allow-to",
    "127.0.0.1/32",
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_v1_header_names_the_client_the_rules_judge() {
    let mut pair = Pair::new(&BALANCED);
    Origin::listen(origin_addr());
    let mut client = pair.client();
    let mut request = b"PROXY TCP4 10.1.2.3 127.0.0.1 50000 3128\r\n".to_vec();
    request.extend_from_slice(&get("/through"));
    let mut origin = forwarded(&mut pair, &mut client, &request);
    assert!(text(origin.received()).starts_with("GET /through HTTP/1.1\r\n"));
    origin.send(&ok(b"for 10.1.2.3"));
    pair.run();
    let got = text(client.received());
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    assert!(got.ends_with("for 10.1.2.3"), "{got}");

    // A client outside --allow is refused under its own address, not the balancer's.
    let mut other = pair.client();
    other.send(b"PROXY TCP4 192.168.9.9 127.0.0.1 50001 3128\r\n");
    other.send(&get("/refused"));
    pair.run();
    let got = text(other.received());
    assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
    assert!(got.contains("192.168.9.9"), "{got}");
}

#[test]
fn a_v2_header_sent_a_byte_at_a_time_is_read_whole() {
    let mut pair = Pair::new(&BALANCED);
    Origin::listen(origin_addr());
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&[10, 9, 8, 7, 127, 0, 0, 1, 0xc3, 0x50, 0x0c, 0x38]);
    let mut client = pair.client();
    for b in &header {
        client.send(std::slice::from_ref(b));
        pair.run();
        assert!(client.received().is_empty());
    }
    let mut origin = forwarded(&mut pair, &mut client, &get("/v2"));
    assert!(text(origin.received()).starts_with("GET /v2 HTTP/1.1\r\n"));
    origin.send(&ok(b"v2"));
    pair.run();
    assert!(text(client.received()).ends_with("\r\n\r\nv2"));
}

#[test]
fn a_balancer_connection_without_a_header_is_refused() {
    let mut pair = Pair::new(&BALANCED);
    let mut client = pair.client();
    client.send(&get("/no-header"));
    pair.run();
    let got = text(client.received());
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    assert!(got.contains("bad-proxy-header"), "{got}");
    assert!(client.sees_end(), "closed after the 400");
}

#[test]
fn a_header_from_anyone_else_is_a_bad_request() {
    let mut pair = Pair::new(&["--proxy-protocol", "127.0.0.9/32"]);
    let mut client = pair.client();
    client.send(b"PROXY TCP4 10.1.2.3 127.0.0.1 50000 3128\r\n");
    client.send(&get("/forged"));
    pair.run();
    let got = text(client.received());
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    assert!(client.sees_end());
}

#[test]
fn a_local_header_leaves_the_balancer_as_the_client() {
    // LOCAL: the balancer's own health check. It is judged as itself: 127.0.0.1 is not
    // in --allow here, so it is refused.
    let mut pair = Pair::new(&BALANCED);
    let mut client = pair.client();
    client.send(b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00");
    client.send(&get("/local"));
    pair.run();
    let got = text(client.received());
    assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
    assert!(got.contains("127.0.0.1"), "{got}");
}

#[test]
fn a_balancer_speaking_for_itself_gets_its_health_check_and_nothing_more() {
    // 127.0.0.1 is not in --allow, but the balancer's own checks must see /health, or it
    // would mark every node down.
    let mut pair = Pair::new(&BALANCED);
    for local in [
        &b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"[..],
        b"PROXY UNKNOWN\r\n",
    ] {
        let mut check = pair.client();
        check.send(local);
        check.send(b"GET /health HTTP/1.1\r\nHost: node\r\n\r\n");
        pair.run();
        let got = text(check.received());
        assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
        check.send(b"GET /metrics HTTP/1.1\r\nHost: node\r\n\r\n");
        pair.run();
        let got = text(check.received());
        assert!(got.contains("HTTP/1.1 403 "), "{got}");
    }
    // A client the header names gets no such pass.
    let mut named = pair.client();
    named.send(b"PROXY TCP4 192.168.9.9 127.0.0.1 50001 3128\r\n");
    named.send(b"GET /health HTTP/1.1\r\nHost: node\r\n\r\n");
    pair.run();
    assert!(text(named.received()).starts_with("HTTP/1.1 403 "));
}
