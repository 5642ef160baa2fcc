//! Every deadline a connection keeps, driven in memory with a simulated clock: first
//! head, keep-alive idle, connect, response head (504), body idle both ways, tunnel
//! idle, and a collapsed request waiting longer than the response timeout. Each test
//! checks the connection is untouched just before its timeout and ended just after,
//! with the bytes the client then reads; none sleeps.
//!
//! The end-to-end check that the server's tick fires deadlines at all is in the
//! socket tests (`tests/timeouts.rs`).

use std::time::Duration;

use super::pair::{Origin, Pair};
use super::{
    assert_timeout_answer, ends_at_the_timeout, forwarded, get, ms, ok, origin_addr, EARLY, MARGIN,
};

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
