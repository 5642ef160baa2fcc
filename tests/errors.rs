//! Error answers for upstream failures and loops: 502 for DNS failures and refused
//! connections, 508 for a request that already passed through this larder.

use crate::support::{dead_port, larder_via, ok, Origin, Proxy, Reply};

/// The name has a 64-byte label, which no DNS name may have: the resolver library
/// refuses it without sending a query, so the test fails resolution for real
/// without any packet leaving the machine.
#[test]
fn dns_failure_is_502() {
    let proxy = Proxy::start(&[]);
    let host = format!("{}.invalid", "a".repeat(64));
    let response = proxy.get(&format!("http://{host}/"));
    assert_eq!(response.status, 502);
    assert!(
        response.text().contains("could not be resolved"),
        "page: {}",
        response.text()
    );
}

#[test]
fn refused_connect_is_502() {
    let proxy = Proxy::start(&[]);
    let response = proxy.get(&format!("http://127.0.0.1:{}/", dead_port()));
    assert_eq!(response.status, 502);
}

#[test]
fn connect_tunnel_to_a_refused_port_is_502() {
    let port = dead_port();
    let proxy = Proxy::start(&["--connect-ports", &port.to_string()]);
    let mut client = proxy.client();
    client.send(
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
    );
    assert_eq!(client.read_response_for("CONNECT").status, 502);
}

#[test]
fn request_carrying_our_via_is_a_loop_508() {
    let origin = Origin::start(|_| Reply::Send(ok(b"ok")));
    let proxy = Proxy::start(&[]);
    let first = proxy.get(&origin.url("/"));
    assert_eq!(first.status, 200);
    let ours = larder_via(&first.headers).expect("responses carry larder's Via");

    for via in [ours.clone(), format!("1.0 other-proxy, {ours}")] {
        let mut client = proxy.client();
        client.send(
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nVia: {via}\r\n\r\n",
                origin.url("/again"),
                origin.authority()
            )
            .as_bytes(),
        );
        assert_eq!(client.read_response().status, 508, "Via: {via}");
    }
    assert_eq!(origin.requests(), 1, "a looping request was forwarded");

    // Another larder's token is not a loop.
    let mut client = proxy.client();
    client.send(
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nVia: 1.1 larder-00000000-not-ours\r\n\r\n",
            origin.url("/other"),
            origin.authority()
        )
        .as_bytes(),
    );
    assert_eq!(client.read_response().status, 200);
}
