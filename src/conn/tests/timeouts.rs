//! Every deadline a connection keeps, driven in memory with a simulated clock: first
//! head, keep-alive idle, connect, response head (504), body idle both ways, tunnel
//! idle, and a collapsed request waiting longer than the response timeout. Each test
//! checks the connection is untouched just before its timeout and ended just after,
//! with the bytes the client then reads; none sleeps.
//!
//! The end-to-end check that the server's tick fires deadlines at all is in the
//! socket tests (`tests/timeouts.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use super::pair::{Client, Origin, Pair};

/// Where the pretend origin listens.
fn origin_addr() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("address")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The tests configure 0.5 s timeouts and look 10 ms before (`EARLY`) and 10 ms
/// after (`EARLY + MARGIN`).
const EARLY: Duration = Duration::from_millis(490);
const MARGIN: Duration = Duration::from_millis(20);

fn get(path: &str) -> Vec<u8> {
    format!(
        "GET http://{}{path} HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin_addr(),
        origin_addr()
    )
    .into_bytes()
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Checks what larder said when it closed a connection for a timeout: a client
/// that sent part of a head is told 408; one that sent nothing hears nothing,
/// since it may be starting a request at that very moment (RFC 9112 §9.5).
fn assert_timeout_answer(bytes: &[u8], partial_head: bool) {
    let text = String::from_utf8_lossy(bytes);
    if partial_head {
        assert!(
            text.starts_with("HTTP/1.1 408 "),
            "want a 408, got {text:?}"
        );
        assert!(text.contains("Connection: close\r\n"), "{text:?}");
    } else {
        assert!(bytes.is_empty(), "want a silent close, got {text:?}");
    }
}

/// Moves the clock to just before the 0.5 s timeout (the client still connected, and
/// sent nothing new), then just past it: then the client reads the end of the stream.
/// Returns what the client received by then.
fn ends_at_the_timeout(pair: &mut Pair, client: &mut Client, what: &str) -> Vec<u8> {
    let before = client.received().len();
    pair.advance(EARLY);
    assert!(!client.sees_end(), "{what}: ended before the timeout");
    assert_eq!(
        client.received().len(),
        before,
        "{what}: answered before the timeout"
    );
    pair.advance(MARGIN);
    assert!(client.sees_end(), "{what}: still open after the timeout");
    client.received().to_vec()
}

/// A request sent through larder, and the origin's end of the connection it opened.
fn forwarded(pair: &mut Pair, client: &mut Client, request: &[u8]) -> Origin {
    client.send(request);
    pair.run();
    Origin::accept(origin_addr()).expect("larder connected to the origin")
}

#[test]
fn half_sent_head_gets_408_after_the_head_timeout() {
    let mut pair = Pair::new(&["--timeout-head", "0.5"]);
    Origin::listen(origin_addr());
    let mut client = pair.client();
    client.send(format!("GET http://{}/ HTTP/1.1\r\nHost: x\r\n", origin_addr()).as_bytes());
    pair.run();
    let got = ends_at_the_timeout(&mut pair, &mut client, "half a head");
    assert_timeout_answer(&got, true);

    // A connection that never sends a byte is closed the same way.
    let mut silent = pair.client();
    let got = ends_at_the_timeout(&mut pair, &mut silent, "silent connection");
    assert_timeout_answer(&got, false);
    assert!(
        Origin::accept(origin_addr()).is_none(),
        "nothing went upstream"
    );
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let mut pair = Pair::new(&["--timeout-idle", "0.5"]);
    Origin::listen(origin_addr());
    let mut client = pair.client();
    let mut origin = forwarded(&mut pair, &mut client, &get("/"));
    origin.send(&ok(b"ok"));
    pair.run();
    assert!(client.received().ends_with(b"\r\n\r\nok"));
    let answered = client.received().len();
    let got = ends_at_the_timeout(&mut pair, &mut client, "idle connection");
    assert_timeout_answer(&got[answered..], false);
    assert!(!pair.is_open(&client));
}

#[test]
fn stalled_origin_is_504_after_the_response_timeout() {
    let mut pair = Pair::new(&["--timeout-response", "0.5"]);
    Origin::listen(origin_addr());
    let mut client = pair.client();
    let _origin = forwarded(&mut pair, &mut client, &get("/"));
    pair.advance(EARLY);
    assert!(client.received().is_empty(), "answered before the timeout");
    pair.advance(MARGIN);
    let text = String::from_utf8_lossy(client.received()).into_owned();
    assert!(text.starts_with("HTTP/1.1 504 "), "{text}");
    assert!(
        text.contains("The server sent no response within 0.5 s."),
        "{text}"
    );
    assert_eq!(pair.upstreams(), 0, "the upstream is closed");
}

#[test]
fn stalled_request_body_is_closed_after_the_body_timeout() {
    let mut pair = Pair::new(&["--timeout-body", "0.5"]);
    Origin::listen(origin_addr());
    let mut client = pair.client();
    let head = format!(
        "POST http://{0}/ HTTP/1.1\r\nHost: {0}\r\nContent-Length: 100\r\n\r\n",
        origin_addr()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(b"0123456789");
    let mut origin = forwarded(&mut pair, &mut client, &request);
    let got = ends_at_the_timeout(&mut pair, &mut client, "stalled upload");
    assert_timeout_answer(&got, false);
    let upstream = origin.received().to_vec();
    assert!(
        upstream.ends_with(b"\r\n\r\n0123456789"),
        "the origin got {:?}",
        String::from_utf8_lossy(&upstream)
    );
    assert!(origin.sees_end(), "the upstream is closed too");
}

#[test]
fn stalled_response_body_is_cut_after_the_body_timeout() {
    let mut pair = Pair::new(&["--timeout-body", "0.5"]);
    Origin::listen(origin_addr());
    let mut client = pair.client();
    let mut origin = forwarded(&mut pair, &mut client, &get("/"));
    origin.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
    pair.run();
    let head_and_some = client.received().to_vec();
    assert!(head_and_some.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(head_and_some.ends_with(b"\r\n\r\n0123456789"));
    let got = ends_at_the_timeout(&mut pair, &mut client, "stalled download");
    assert_eq!(got, head_and_some, "nothing after the bytes that came");
    assert!(origin.sees_end(), "the upstream is closed too");
}

#[test]
fn unanswered_upstream_connect_is_504_after_the_connect_timeout() {
    let mut pair = Pair::new(&["--timeout-connect", "0.5"]);
    Origin::black_hole(origin_addr());
    let mut client = pair.client();
    client.send(&get("/"));
    pair.run();
    assert_eq!(pair.state_of(&client), "Connecting");
    pair.advance(EARLY);
    assert!(client.received().is_empty(), "answered before the timeout");
    pair.advance(MARGIN);
    let text = String::from_utf8_lossy(client.received()).into_owned();
    assert!(text.starts_with("HTTP/1.1 504 "), "{text}");
    assert!(text.contains("No connection to the server"), "{text}");
    assert_eq!(pair.upstreams(), 0, "the connecting socket is closed");
}

#[test]
fn idle_tunnel_is_closed_after_the_tunnel_timeout() {
    let mut pair = Pair::new(&["--timeout-tunnel", "0.5", "--connect-ports", "8080"]);
    Origin::listen(origin_addr());
    let mut client = pair.client();
    let connect = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", origin_addr());
    let mut origin = forwarded(&mut pair, &mut client, connect.as_bytes());
    let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
    assert_eq!(client.received(), established);
    // Traffic keeps it open: the timeout runs from the last byte moved.
    pair.advance(ms(300));
    client.send(b"ping");
    pair.run();
    assert_eq!(origin.received(), b"ping");
    pair.advance(ms(300));
    origin.send(b"pong");
    pair.run();
    let got = ends_at_the_timeout(&mut pair, &mut client, "idle tunnel");
    assert_eq!(&got[established.len()..], b"pong");
    assert!(origin.sees_end(), "the upstream side is closed too");
    assert!(!pair.is_open(&client));
}

/// A request waiting on another's fetch of the same URL was answered 504 once
/// `--timeout-response` had passed, though that fetch was well under way: its head had
/// come and its body was still arriving (chunked, so it cannot be read while it
/// arrives). The fetch has deadlines of its own; here its body takes twice the timeout.
#[test]
fn a_request_waiting_on_a_long_shared_fetch_is_not_answered_504() {
    let mut pair = Pair::new(&["--admit-after", "0", "--timeout-response", "1"]);
    Origin::listen(origin_addr());
    let body: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let mut reply =
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for chunk in body.chunks(1000) {
        reply.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        reply.extend_from_slice(chunk);
        reply.extend_from_slice(b"\r\n");
    }
    reply.extend_from_slice(b"0\r\n\r\n");
    let (first_half, second_half) = reply.split_at(reply.len() / 2);

    let mut first = pair.client();
    let mut origin = forwarded(&mut pair, &mut first, &get("/slow-chunked"));
    origin.send(first_half);
    pair.run();
    assert!(first.received().starts_with(b"HTTP/1.1 200 OK\r\n"));
    let mut waiting = pair.client();
    waiting.send(&get("/slow-chunked"));
    pair.run();
    assert_eq!(pair.state_of(&waiting), "Waiting");
    // Well past the one-second response timeout, then the rest of the body.
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.state_of(&waiting), "Waiting");
    assert!(waiting.received().is_empty());
    origin.send(second_half);
    pair.run();
    let answer = waiting.received().to_vec();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head")
        + 4;
    assert!(
        answer[split..] == body[..],
        "the waiting client got a wrong body"
    );
    assert!(
        Origin::accept(origin_addr()).is_none(),
        "one fetch for both requests"
    );
}

/// A client that closes its side while its request waits for the response may only
/// have half-closed (it still reads) or hung up. Without a deadline involved: the
/// half-closed HTTP/1.1 client is sent `100 Continue`, which its open socket takes, and
/// it gets its response; the one that hung up cannot take it, and the upstream is
/// dropped at once rather than at the response timeout.
#[test]
fn a_half_close_is_answered_and_a_hang_up_frees_the_upstream() {
    let mut pair = Pair::new(&[]);
    Origin::listen(origin_addr());
    let mut half = pair.client();
    let mut origin = forwarded(&mut pair, &mut half, &get("/half"));
    half.shutdown_write();
    pair.run();
    assert_eq!(half.received(), b"HTTP/1.1 100 Continue\r\n\r\n");
    origin.send(&ok(b"still here"));
    pair.run();
    assert!(half.received().ends_with(b"\r\n\r\nstill here"));
    assert!(half.sees_end(), "closed after the response");

    // The next request goes out on the same (pooled) upstream connection.
    let mut gone = pair.client();
    gone.send(&get("/gone"));
    pair.run();
    let upstream = String::from_utf8_lossy(origin.received()).into_owned();
    assert!(upstream.contains("GET /gone HTTP/1.1\r\n"), "{upstream}");
    gone.hang_up();
    pair.run();
    assert!(!pair.is_open(&gone));
    assert!(origin.sees_end(), "the upstream is dropped at once");
}
