//! Timeouts, with short configured values: first head, keep-alive idle, upstream first
//! byte (504), body idle both ways; and a client trickling its head delays nobody else.
//! (What ends a wait early, a client hanging up while its response is awaited, is
//! pinned in `regression.rs`.)

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{black_hole, get, hold_open, ok, wait_until, Origin, Proxy, Reply};

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

#[test]
fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let origin = Origin::start(|_| Reply::Send(ok(b"ok")));
    let proxy = Proxy::start(&["--timeout-idle", "0.5"]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/")).as_bytes());
    assert_eq!(client.read_response().text(), "ok");
    let idle_since = Instant::now();
    let got = client.read_to_close();
    assert_about_half_a_second("idle connection closed", idle_since.elapsed());
    assert_timeout_answer(&got, false);
}

#[test]
fn stalled_origin_is_504_after_the_response_timeout() {
    let origin = Origin::start(|_| Reply::Stall(Duration::from_secs(5)));
    let proxy = Proxy::start(&["--timeout-response", "0.5"]);
    let started = Instant::now();
    let response = proxy.get(&origin.url("/"));
    assert_eq!(response.status, 504);
    assert_about_half_a_second("504", started.elapsed());
}

#[test]
fn stalled_request_body_is_closed_after_the_body_timeout() {
    let origin = Origin::start(|_| Reply::Send(ok(b"ok")));
    let proxy = Proxy::start(&["--timeout-body", "0.5"]);
    let mut client = proxy.client();
    client.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n0123456789",
            origin.url("/"),
            origin.authority()
        )
        .as_bytes(),
    );
    let started = Instant::now();
    let got = client.read_to_close();
    assert_about_half_a_second("stalled upload closed", started.elapsed());
    assert_timeout_answer(&got, false);
    assert!(
        origin.seen().is_empty(),
        "the origin got a complete request"
    );
}

#[test]
fn stalled_response_body_is_cut_after_the_body_timeout() {
    let origin = Origin::start(|_| {
        Reply::Stream(Box::new(|stream| {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")?;
            hold_open(stream, Duration::from_secs(5));
            Ok(())
        }))
    });
    let proxy = Proxy::start(&["--timeout-body", "0.5"]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/")).as_bytes());
    let head = client.read_head();
    assert_eq!(head.status, 200);
    let started = Instant::now();
    let body = client.read_to_close();
    assert_about_half_a_second("stalled download cut", started.elapsed());
    assert_eq!(body, b"0123456789");
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

#[test]
fn unanswered_upstream_connect_is_504_after_the_connect_timeout() {
    let (_listener, _filler, port) = black_hole();
    let proxy = Proxy::start(&["--timeout-connect", "0.5"]);
    let started = Instant::now();
    let response = proxy.get(&format!("http://127.0.0.1:{port}/"));
    assert_about_half_a_second("connect timeout answered", started.elapsed());
    assert_eq!(response.status, 504, "{}", response.text());
    assert!(
        response.text().contains("No connection to the server"),
        "{}",
        response.text()
    );
}
