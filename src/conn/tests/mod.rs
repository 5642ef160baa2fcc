//! The connection core driven without sockets: an in-memory socket (`mem`), a harness
//! that plays the server's part with a clock the test moves (`pair`), the tests that
//! need time to pass (`timeouts`), how an exchange ends early (`endings`),
//! connecting over several addresses (`connect`), the relay under back-pressure
//! (`relay`), connections from a PROXY protocol balancer (`proxy_header`), where
//! clients elsewhere may not make larder go (`dest`), and the figures counted with
//! an access log and without (`figures`).

mod auth;
mod background;
mod connect;
mod dest;
mod endings;
mod figures;
mod mem;
mod pair;
mod proxy_header;
mod relay;
mod timeouts;

use std::net::SocketAddr;
use std::time::Duration;

use pair::{Client, Origin, Pair};

/// Where the pretend origin listens.
pub(super) fn origin_addr() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("address")
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The tests configure 0.5 s timeouts and look 10 ms before (`EARLY`) and 10 ms
/// after (`EARLY + MARGIN`).
pub(super) const EARLY: Duration = Duration::from_millis(490);
pub(super) const MARGIN: Duration = Duration::from_millis(20);

pub(super) fn get(path: &str) -> Vec<u8> {
    format!(
        "GET http://{}{path} HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin_addr(),
        origin_addr()
    )
    .into_bytes()
}

pub(super) fn ok(body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Checks what larder said when it closed a connection for a timeout: a client
/// that sent part of a head is told 408; one that sent nothing hears nothing,
/// since it may be starting a request at that very moment (RFC 9112 §9.5).
pub(super) fn assert_timeout_answer(bytes: &[u8], partial_head: bool) {
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
pub(super) fn ends_at_the_timeout(pair: &mut Pair, client: &mut Client, what: &str) -> Vec<u8> {
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
pub(super) fn forwarded(pair: &mut Pair, client: &mut Client, request: &[u8]) -> Origin {
    client.send(request);
    pair.run();
    Origin::accept(origin_addr()).expect("larder connected to the origin")
}
