//! The relay of `Forward` under back-pressure: a pass that moved is followed by
//! another only if one could move (`forward::may_move`); in the tests' debug builds
//! each pass it saves is run anyway and must find nothing to move; likewise a `Head`
//! step that read part of a head. And the `Date` the relay adds to a response
//! without one.

use std::time::Duration;

use super::pair::Pair;
use super::{forwarded, get, ok, origin_addr};
use crate::http::date::push_date_field;

/// Bytes `0..len` of a repeating pattern, so a lost or repeated piece shows.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
}

/// Where the head at the start of `bytes` ends.
fn head_end(bytes: &[u8]) -> usize {
    let at = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    at.expect("a head") + 4
}

/// A body larger than larder's buffers and the sockets' capacity goes up while the
/// origin reads it only now and then, and sent in pieces; the response comes down to
/// a client that reads it only now and then too; then two requests come at once. Each
/// stall leaves bytes on one side that wait for the other (the client's bytes read
/// but not yet validated, the head and body not yet written upstream, the response
/// not yet written to the client), and every byte arrives, once and in order.
#[test]
fn a_relay_stalled_on_either_side_moves_every_byte_once() {
    let mut pair = Pair::new(&[]);
    super::pair::Origin::listen(origin_addr());
    let body = pattern(600_000, 0);
    let head = format!(
        "POST http://{0}/up HTTP/1.1\r\nHost: {0}\r\nContent-Length: {1}\r\n\r\n",
        origin_addr(),
        body.len()
    );
    let mut client = pair.client();
    let (first, rest) = body.split_at(1000);
    let mut sent = head.into_bytes();
    sent.extend_from_slice(first);
    let mut origin = forwarded(&mut pair, &mut client, &sent);
    // The rest in pieces of every size, the origin reading after some of them only.
    let mut at = 0;
    for (i, size) in [1, 7, 4096, 70_000, 300_000, 3].iter().cycle().enumerate() {
        if at == rest.len() {
            break;
        }
        let end = (at + size).min(rest.len());
        client.send(&rest[at..end]);
        at = end;
        pair.run();
        if i % 3 == 2 {
            let _ = origin.received();
        }
    }
    for _ in 0..20 {
        pair.run();
        let _ = origin.received();
    }
    let up = origin.received();
    let up_body = &up[head_end(up)..];
    assert!(up.starts_with(b"POST /up HTTP/1.1\r\n"));
    assert_eq!(up_body.len(), body.len(), "the body went up whole");
    assert!(up_body == body.as_slice(), "the body went up byte for byte");

    // The response, larger than the client's socket holds: larder writes what the
    // client takes, whenever it reads.
    let big = pattern(700_000, 0x5a);
    origin.send(&ok(&big));
    for _ in 0..50 {
        // Nothing read for a round: larder's writes block when the socket is full.
        pair.run();
        pair.run();
        if client.received().len() >= big.len() {
            break;
        }
    }
    let got = client.received().to_vec();
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(
        got[head_end(&got)..] == big[..],
        "the body came down byte for byte"
    );

    // Two requests at once on the kept connection: the second goes up once the
    // first is answered, on the same upstream connection.
    let mut two = get("/next");
    two.extend_from_slice(&get("/last"));
    client.send(&two);
    pair.run();
    let up = String::from_utf8_lossy(origin.received()).into_owned();
    assert!(up.ends_with("\r\n\r\n") && up.contains("GET /next HTTP/1.1\r\n"));
    assert!(!up.contains("GET /last"), "one request at a time");
    origin.send(&ok(b"next"));
    pair.run();
    assert!(client.received().ends_with(b"\r\n\r\nnext"));
    let up = String::from_utf8_lossy(origin.received()).into_owned();
    assert!(up.ends_with("\r\n\r\n") && up.contains("GET /last HTTP/1.1\r\n"));
    origin.send(&ok(b"last"));
    pair.run();
    assert!(client.received().ends_with(b"\r\n\r\nlast"));
}

/// The `Date` field line larder writes for unix second `secs`.
fn date_line(secs: u64) -> String {
    let mut line = Vec::new();
    push_date_field(&mut line, secs);
    String::from_utf8(line).expect("ASCII")
}

/// The `Date` larder adds to a response without one is the turn's clock, which the
/// cache goes by too: a response stored with it is as old as the clock says when it
/// is served, and one forwarded after the clock moved has the later date.
#[test]
fn the_date_added_to_a_response_is_the_turns_clock() {
    let mut pair = Pair::new(&["--admit-after", "0"]);
    super::pair::Origin::listen(origin_addr());
    let start = pair.ctx.unix;
    let mut client = pair.client();
    let mut origin = forwarded(&mut pair, &mut client, &get("/dated"));
    origin.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 4\r\n\r\nbody");
    pair.run();
    let text = String::from_utf8_lossy(client.received()).into_owned();
    assert!(text.contains(&date_line(start)), "{text}");
    assert!(text.ends_with("\r\n\r\nbody"), "{text}");
    assert_eq!(text.matches("Date: ").count(), 1, "{text}");

    pair.advance(Duration::from_secs(5));
    assert_eq!(pair.ctx.unix, start + 5);
    let mut later = pair.client();
    later.send(&get("/dated"));
    pair.run();
    let hit = String::from_utf8_lossy(later.received()).into_owned();
    assert!(hit.contains("Cache-Status: larder; hit"), "{hit}");
    assert!(hit.contains(&date_line(start)), "{hit}");
    assert!(hit.contains("\r\nAge: 5\r\n"), "{hit}");

    let before = client.received().len();
    client.send(&get("/later"));
    pair.run();
    assert!(String::from_utf8_lossy(origin.received()).contains("GET /later HTTP/1.1\r\n"));
    origin.send(&ok(b"late"));
    pair.run();
    let text = String::from_utf8_lossy(&client.received()[before..]).into_owned();
    assert!(text.contains(&date_line(start + 5)), "{text}");
    assert!(text.ends_with("\r\n\r\nlate"), "{text}");
}

/// A head that arrives in pieces: the `Head` step that read one stops there (in the
/// tests' debug builds a step run anyway must find nothing to do), and the head goes
/// up whole once it is all there.
#[test]
fn a_head_in_pieces_waits_between_them_and_goes_up_whole() {
    let mut pair = Pair::new(&[]);
    super::pair::Origin::listen(origin_addr());
    let mut client = pair.client();
    let request = get("/pieces");
    let mut at = 0;
    for cut in [1, 10, request.len() / 2, request.len() - 1] {
        client.send(&request[at..cut]);
        at = cut;
        pair.run();
        assert_eq!(pair.state_of(&client), "Head", "after {cut} bytes");
    }
    let mut origin = forwarded(&mut pair, &mut client, &request[at..]);
    let up = String::from_utf8_lossy(origin.received()).into_owned();
    assert!(up.starts_with("GET /pieces HTTP/1.1\r\n"), "{up}");
    origin.send(&ok(b"whole"));
    pair.run();
    assert!(client.received().ends_with(b"\r\n\r\nwhole"));
}
