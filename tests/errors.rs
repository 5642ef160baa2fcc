//! Error answers for upstream failures and loops: 502 for DNS failures and refused
//! connections, 508 for a request that already passed through this larder or a tunnel
//! to larder itself.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{
    dead_port, larder_via, ok, via_entries, wait_for_log_lines, Client, Origin, Proxy, Reply,
    Response, Server, TempFile,
};

/// The `/metrics` counter of connections larder accepted: a connection larder made to
/// itself would show there as one more than the test's own.
const ACCEPTED: &str = "larder_client_connections_accepted_total";

/// The first line of a response as it came, e.g. `HTTP/1.1 508 Loop Detected`.
fn status_line(response: &Response) -> String {
    let raw = String::from_utf8_lossy(&response.raw);
    raw.split("\r\n").next().unwrap_or_default().to_owned()
}

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
        let response = client.read_response();
        assert_eq!(
            status_line(&response),
            "HTTP/1.1 508 Loop Detected",
            "Via: {via}"
        );
    }
    assert_eq!(origin.requests(), 1, "a looping request was forwarded");
    assert_eq!(origin.conns(), 1, "a looping request opened a connection");

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

/// A tunnel to larder's own listening address would have larder connect to itself,
/// and the tunnel's client could ask that connection for the same tunnel again: larder
/// answers 508 and connects nowhere, whether the address is written as the literal or
/// as a name that resolves to it.
#[test]
fn connect_to_larders_own_address_is_508_and_connects_nowhere() {
    let log = TempFile::new("connect-self.log");
    let proxy = Proxy::start(&["--connect-ports", "1-65535", "--access-log", log.arg()]);
    let port = proxy.addr().port();
    let authorities = [proxy.addr().to_string(), format!("localhost:{port}")];
    for authority in &authorities {
        let before = proxy.metric(ACCEPTED);
        let mut client = proxy.client();
        client
            .send(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes());
        let response = client.read_response_for("CONNECT");
        assert_eq!(
            status_line(&response),
            "HTTP/1.1 508 Loop Detected",
            "CONNECT {authority}: {}",
            response.text()
        );
        // What the client sent after a CONNECT was meant for the tunnel: larder closes.
        client.expect_closed();
        // This test's CONNECT connection and its next /metrics one, and nothing else.
        assert_eq!(
            proxy.metric(ACCEPTED),
            before + 2.0,
            "CONNECT {authority}: larder connected to itself"
        );
    }
    assert_eq!(proxy.metric("larder_tunnels_established_total"), 0.0);
    let lines = wait_for_log_lines(&log, 6);
    let connects: Vec<&String> = lines.iter().filter(|l| l.contains(" CONNECT ")).collect();
    assert_eq!(connects.len(), 2, "{lines:#?}");
    for (line, authority) in connects.iter().zip(&authorities) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields[3].ends_with("/508"), "{line}");
        assert_eq!(fields[6], authority, "{line}");
        assert_eq!(
            fields[8], "HIER_NONE/-",
            "no upstream was contacted: {line}"
        );
    }
}

/// A hop between larder and the origin that sends each request it gets on to the proxy
/// at `next` (a misconfigured gateway that routes through the proxy, or a second proxy
/// in a chain): the request line in absolute form for `http://{authority}{target}`
/// (`authority`: the request's own Host when `None`), every field it received (Via
/// included) kept, and the answer relayed back. It serves at most three requests, so
/// that a loop larder failed to stop still ends.
fn relay(next: SocketAddr, authority: Option<String>) -> Server {
    let served = AtomicUsize::new(0);
    Server::start(move |stream| {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut fields = String::new();
        let mut host = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("host") {
                    host = value.trim().to_owned();
                }
            }
            fields.push_str(&line);
        }
        let mut stream = reader.into_inner();
        if served.fetch_add(1, Ordering::SeqCst) >= 3 {
            let _ = stream.write_all(b"HTTP/1.1 500 Relay Gave Up\r\nContent-Length: 0\r\n\r\n");
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let authority = authority.clone().unwrap_or(host);
        let mut next_hop = Client::connect(next);
        next_hop.send(
            format!("{method} http://{authority}{target} HTTP/1.1\r\n{fields}\r\n").as_bytes(),
        );
        let response = next_hop.read_response();
        let _ = stream.write_all(&response.raw);
    })
}

/// A request that comes back to the larder it already passed through (here by a hop
/// that sends larder's upstream requests back to larder) carries larder's own Via
/// token: the second visit is answered 508 and never forwarded, so the loop ends
/// after one round instead of running until something gives out.
#[test]
fn a_request_looping_back_through_larder_is_508_after_one_round() {
    let proxy = Proxy::start(&[]);
    let hop = relay(proxy.addr(), None);
    let before = proxy.metric(ACCEPTED);
    let mut client = proxy.client();
    client.send(crate::support::get(&format!("http://{}/round", hop.authority())).as_bytes());
    let response = client.read_response();
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 508 Loop Detected",
        "{}",
        response.text()
    );
    // The hop was reached once: the request that came back was not sent on again.
    assert_eq!(hop.conns(), 1, "the looping request was forwarded again");
    // The client's connection, the hop's, and the next /metrics one.
    assert_eq!(proxy.metric(ACCEPTED), before + 3.0);
}

/// Two larders in a chain are not a loop: each has its own Via token, so the request
/// goes through both to the origin, and the origin's request and the client's response
/// list both larders, in the order they were passed.
#[test]
fn two_chained_larders_both_forward_and_both_add_via() {
    let origin = Origin::start(|_| Reply::Send(ok(b"through two")));
    let near = Proxy::start(&[]);
    let far = Proxy::start(&[]);
    let hop = relay(far.addr(), Some(origin.authority()));
    let response = near.get(&format!("http://{}/chained", hop.authority()));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.body, b"through two");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    let upstream = via_entries(&seen[0].headers);
    assert_eq!(upstream.len(), 2, "Via at the origin: {upstream:?}");
    let downstream = via_entries(&response.headers);
    assert_eq!(downstream.len(), 2, "Via at the client: {downstream:?}");
    // Requests list the near larder first; responses list the far one first.
    assert_eq!(upstream[0], downstream[1]);
    assert_eq!(upstream[1], downstream[0]);
    assert_ne!(upstream[0], upstream[1], "both larders used one token");
    assert!(
        upstream.iter().all(|v| v.contains("larder-")),
        "{upstream:?}"
    );
}
