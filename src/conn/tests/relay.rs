//! The relay of `Forward` under back-pressure: a pass that moved is followed by
//! another only if one could move (`forward::may_move`); in the tests' debug builds
//! each pass it saves is run anyway and must find nothing to move.

use super::pair::Pair;
use super::{forwarded, get, ok, origin_addr};

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
