//! Timeouts through real sockets: the first-head timeout, which checks end to end that
//! the server's tick fires a connection's deadline; and a client trickling its head
//! delays nobody else. Every other deadline (idle, connect, response, body both ways,
//! tunnel, a collapsed request's wait) is tested in memory with a simulated clock, in
//! larder's unit tests (`src/conn/tests/timeouts.rs`), where no test sleeps. (What
//! ends a wait early, a client hanging up while its response is awaited, is pinned in
//! `regression.rs`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{get, ok, wait_until, Origin, Proxy, Reply};

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

/// Checks `elapsed` is the 0.5 s timeout plus reasonable slack.
fn assert_about_half_a_second(what: &str, elapsed: Duration) {
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(4),
        "{what} after {elapsed:?} (timeout 0.5 s)"
    );
}

#[test]
fn half_sent_head_gets_408_after_the_head_timeout() {
    let origin = Origin::start(|_| Reply::Send(ok(b"ok")));
    let proxy = Proxy::start(&["--timeout-head", "0.5"]);
    let mut client = proxy.client();
    let started = Instant::now();
    client.send(format!("GET {} HTTP/1.1\r\nHost: x\r\n", origin.url("/")).as_bytes());
    let got = client.read_to_close();
    assert_about_half_a_second("half a head closed", started.elapsed());
    assert_timeout_answer(&got, true);

    // A connection that never sends a byte is closed the same way.
    let mut silent = proxy.client();
    let started = Instant::now();
    let got = silent.read_to_close();
    assert_about_half_a_second("silent connection closed", started.elapsed());
    assert_timeout_answer(&got, false);
    assert_eq!(origin.requests(), 0);
}

/// While one client sends its head a byte every 100 ms, others are served: each of
/// their requests is answered while the trickling head is still incomplete, which is
/// what being delayed by it would prevent (no bound on how fast, which a busy machine
/// could break).
#[test]
fn trickling_client_does_not_delay_others() {
    const TRICKLED: usize = 40;
    let origin = Origin::start(|request| Reply::Send(ok(request.target.as_bytes())));
    let proxy = Proxy::start(&[]);
    let slow_request = get(&origin.url("/slow"));
    assert!(slow_request.len() > TRICKLED);
    let mut slow = proxy.client();
    let trickled = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&trickled);
    let trickler = thread::spawn(move || {
        let bytes = slow_request.as_bytes();
        for byte in &bytes[..TRICKLED] {
            slow.send(std::slice::from_ref(byte));
            progress.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(100));
        }
        slow.send(&bytes[TRICKLED..]);
        slow.read_response().text()
    });
    assert!(wait_until(|| trickled.load(Ordering::SeqCst) > 0));
    for i in 0..3 {
        let path = format!("/fast{i}");
        assert_eq!(proxy.get(&origin.url(&path)).text(), path);
        let sent = trickled.load(Ordering::SeqCst);
        assert!(
            sent < TRICKLED,
            "/fast{i} was answered only after the trickling head was complete"
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(trickler.join().expect("trickling client"), "/slow");
}
