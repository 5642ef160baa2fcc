//! The client connection limit: at `--max-conns`, larder leaves further connections in
//! the kernel's backlog (no answer, no spinning) and serves them once a slot frees.

use std::time::Duration;

use crate::support::{get, ok, Origin, Proxy, Reply};

#[test]
fn connection_beyond_max_conns_waits_until_one_closes() {
    let origin = Origin::start(|_| Reply::Send(ok(b"ok")));
    let mut proxy = Proxy::start(&["--max-conns", "2"]);
    let url = origin.url("/");

    let mut first = proxy.client();
    first.send(get(&url).as_bytes());
    assert_eq!(first.read_response().status, 200);
    let mut second = proxy.client();
    second.send(get(&url).as_bytes());
    assert_eq!(second.read_response().status, 200);

    // The kernel completes the handshake; larder must not take the connection yet.
    let mut third = proxy.client();
    third.send(get(&url).as_bytes());
    let cpu_before = proxy.cpu_ticks();
    third.expect_silence(Duration::from_millis(500));
    let cpu_used = proxy.cpu_ticks() - cpu_before;
    assert!(
        cpu_used < 25,
        "larder used {cpu_used} ticks of CPU in 0.5 s while at its limit (spinning?)"
    );

    // Once a slot frees, the waiting connection is served (the read fails the test if
    // it is not within its timeout).
    drop(first);
    let response = third.read_response();
    assert_eq!(response.status, 200);

    proxy.assert_alive();
    drop(second);
    drop(third);
    assert_eq!(proxy.get(&url).status, 200, "larder stopped accepting");
    proxy.assert_alive();
}
