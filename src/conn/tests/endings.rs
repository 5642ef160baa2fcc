//! How an exchange ends before its response is done, and what it gives back: the
//! upstream it held, the object it pinned; and a stale entry answering when its
//! revalidation times out.

use super::pair::{Origin, Pair};
use super::{forwarded, get, ok, origin_addr, EARLY, MARGIN};

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

/// A hit holds its object pinned (so the ring cannot overwrite it mid-write) for as
/// long as it is written, and gives it back however the response ends: written whole,
/// the client gone, or the client not reading until the body timeout.
#[test]
fn a_hit_unpins_its_object_however_it_ends() {
    let mut pair = Pair::new(&["--admit-after", "0", "--timeout-body", "0.5"]);
    Origin::listen(origin_addr());
    // Larger than what an in-memory socket holds, so a client that does not read
    // leaves the response half-written.
    let body: Vec<u8> = (0..=255u8).cycle().take(400_000).collect();
    let mut stored = format!(
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    stored.extend_from_slice(&body);
    let mut first = pair.client();
    let mut origin = forwarded(&mut pair, &mut first, &get("/big"));
    origin.send(&stored);
    for _ in 0..4 {
        pair.run();
        let _ = first.received();
    }
    assert!(first.received().ends_with(&body[body.len() - 100..]));
    let pinned = |pair: &Pair| pair.ctx.cache.store.stats().pinned;
    assert_eq!(pinned(&pair), 0);

    let hits = |pair: &mut Pair| {
        let mut client = pair.client();
        client.send(&get("/big"));
        pair.run();
        assert_eq!(pair.state_of(&client), "Serve", "a hit, half-written");
        assert_eq!(pinned(pair), 1);
        client
    };
    // Read whole.
    let mut reader = hits(&mut pair);
    while pair.state_of(&reader) == "Serve" {
        let _ = reader.received();
        pair.run();
    }
    assert!(reader.received().ends_with(&body[body.len() - 100..]));
    assert_eq!(pinned(&pair), 0, "after a whole response");
    // The client hangs up.
    let mut gone = hits(&mut pair);
    gone.hang_up();
    pair.run();
    assert!(!pair.is_open(&gone));
    assert_eq!(pinned(&pair), 0, "after the client left");
    // The client stops reading.
    let stuck = hits(&mut pair);
    pair.advance(EARLY);
    assert_eq!(pair.state_of(&stuck), "Serve");
    assert_eq!(pinned(&pair), 1);
    pair.advance(MARGIN);
    assert!(!pair.is_open(&stuck));
    assert_eq!(pinned(&pair), 0, "after the body timeout");
    assert!(Origin::accept(origin_addr()).is_none(), "one fetch in all");
}

/// A stale entry whose revalidation gets no answer within `--timeout-response`
/// answers in the origin's place, when its `stale-if-error` allows (the socket tests
/// cover a closed connection and a 5xx; this one needs the clock).
#[test]
fn a_revalidation_that_times_out_is_answered_from_the_stale_entry() {
    let mut pair = Pair::new(&["--admit-after", "0", "--timeout-response", "0.5"]);
    Origin::listen(origin_addr());
    let stored = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60, stale-if-error=3600\r\n\
                   Age: 120\r\nETag: \"v1\"\r\nContent-Length: 4\r\n\r\nkept";
    let mut first = pair.client();
    let mut origin = forwarded(&mut pair, &mut first, &get("/slow"));
    origin.send(stored);
    pair.run();
    assert!(first.received().ends_with(b"\r\n\r\nkept"));

    let mut second = pair.client();
    second.send(&get("/slow"));
    pair.run();
    let upstream = String::from_utf8_lossy(origin.received()).into_owned();
    assert!(
        upstream.contains("If-None-Match: \"v1\""),
        "revalidated on the kept connection: {upstream}"
    );
    pair.advance(EARLY);
    assert!(second.received().is_empty(), "answered before the timeout");
    pair.advance(MARGIN);
    let text = String::from_utf8_lossy(second.received()).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Cache-Status: larder; hit; fwd=stale\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nkept"), "{text}");
    assert!(origin.sees_end(), "the stalled upstream is closed");
}
