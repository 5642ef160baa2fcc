//! One test per bug found in use: each is named for the behaviour that was wrong, and
//! says how it showed. A test here fails on the code before its fix.
//!
//! Bugs in how deadlines are kept are pinned where time can be simulated, in larder's
//! unit tests (`src/conn/tests/timeouts.rs`): there
//! `a_request_waiting_on_a_long_shared_fetch_is_not_answered_504` is the request that
//! waited on another's fetch of the same URL and was answered 504 once
//! `--timeout-response` had passed, though that fetch was well under way.
//!
//! A bug in the scaling recipe's HAProxy configuration is pinned beside the recipe's
//! other test (`tests/cluster.rs`, which runs a real HAProxy):
//! `a_kept_client_connection_keeps_its_node_connection_after_many_clients` is the
//! client connection that, once many clients had come and gone, got a new connection
//! to its larder for every request, and a third of the hit rate.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::caching::{
    after_gate, assert_cache_status, fresh, gated_gets, head, head_text, now_secs, old_then_new,
    response, InFlight,
};
use crate::support::{
    black_hole, dead_port, get, hold_open, http_date, larder_via, ok, request, unix_now,
    via_entries, wait_for_log_lines, wait_until, Client, Gate, Origin, Proxy, Reply, Server,
    TempDir, TempFile, WAIT_LIMIT,
};

/// A 200 with a Content-Type and a minute of freshness, and validators.
fn fresh_page(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/x-larder\r\nCache-Control: max-age=60\r\n\
         ETag: \"v1\"\r\nDate: {}\r\nContent-Length: {}\r\n\r\n",
        http_date(unix_now()),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// `printf 'GET ... \r\n\r\n' | nc -N proxy 3128` sends its request, then half-closes.
/// larder took the half-close for a client that had left and dropped the request, so
/// the client read nothing at all.
#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_response() {
    let origin = Origin::start(|_| {
        // Answer after the half-close has surely reached larder.
        std::thread::sleep(Duration::from_millis(300));
        Reply::Send(ok(b"still here"))
    });
    let proxy = Proxy::start(&[]);
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let mut client = proxy.client();
        let head = format!(
            "GET {} {version}\r\nHost: {}\r\n\r\n",
            origin.url("/half"),
            origin.authority()
        );
        client.send(head.as_bytes());
        client.shutdown_write();
        let response = client.read_final_response();
        assert_eq!(response.status, 200, "{version}");
        assert_eq!(response.body, b"still here", "{version}");
        client.expect_closed();
    }
}

/// A client that hangs up (rather than half-closing) still frees the upstream at once;
/// the half-close fix must not undo that (see
/// `a_client_that_hangs_up_while_awaiting_its_response_frees_the_upstream_at_once`).
#[test]
fn a_client_that_hangs_up_is_told_from_one_that_half_closed() {
    let origin = Origin::start(|_| Reply::Stall(Duration::from_secs(10)));
    let log = TempFile::new("hangup.log");
    let proxy = Proxy::start(&["--access-log", log.arg()]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/slow")).as_bytes());
    assert!(
        wait_until(|| origin.requests() > 0),
        "the request did not reach the origin"
    );
    drop(client);
    let lines = wait_for_log_lines(&log, 1);
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains(" TCP_MISS_ABORTED/")),
        "{lines:?}"
    );
}

/// A CONNECT that fails leaves whatever the client pipelined behind it in larder's
/// buffer: those bytes were meant for the tunnel, yet larder parsed them as the next
/// request and forwarded it.
#[test]
fn bytes_pipelined_behind_a_refused_connect_are_never_parsed() {
    let origin = Origin::start(|_| Reply::Send(ok(b"should not be fetched")));
    let smuggled = get(&origin.url("/smuggled"));
    let (_hole, _filler, hole_port) = black_hole();
    let dead = dead_port();
    let ports = format!("{dead},{hole_port}");
    let proxy = Proxy::start(&["--connect-ports", &ports, "--timeout-connect", "0.5"]);
    let cases = [
        // Port not allowed: 403 at the head.
        (format!("127.0.0.1:{}", origin.port()), 403),
        // Connection refused: 502.
        (format!("127.0.0.1:{dead}"), 502),
        // No answer to the connect: 504.
        (format!("127.0.0.1:{hole_port}"), 504),
    ];
    for (authority, status) in cases {
        let mut client = proxy.client();
        let raw = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n{smuggled}");
        client.send(raw.as_bytes());
        let response = client.read_response_for("CONNECT");
        assert_eq!(response.status, status, "CONNECT {authority}");
        assert!(response.is_close(), "CONNECT {authority}: not closing");
        client.expect_closed();
    }
    assert_eq!(
        origin.requests(),
        0,
        "tunnel bytes were parsed as a request"
    );
}

/// `GET http://h/ ` and a line end, HTTP/0.9 style: the client waits for an answer,
/// and larder waited for the rest of a head until the head timeout.
#[test]
fn a_request_line_without_a_version_is_answered_400_at_once() {
    let proxy = Proxy::start(&["--timeout-head", "30"]);
    for line in [
        "GET http://example.test/ \r\n",
        "GET http://example.test/\r\n",
    ] {
        let mut client = proxy.client();
        let started = Instant::now();
        client.send(line.as_bytes());
        let response = client.read_response();
        assert_eq!(response.status, 400, "{line:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{line:?}: answered after {:?}",
            started.elapsed()
        );
    }
}

/// A hit after a revalidation (`TCP_REFRESH_UNMODIFIED`) and a reload answered from
/// the cache (`TCP_CLIENT_REFRESH_MISS`) were logged with `-` for a content type.
#[test]
fn revalidated_and_reloaded_answers_log_their_content_type() {
    let origin = Origin::start(|request| {
        if request.header("if-none-match") == Some("\"v1\"") {
            Reply::Send(
                format!(
                    "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=0\r\nDate: {}\r\n\r\n",
                    http_date(unix_now())
                )
                .into_bytes(),
            )
        } else {
            let mut page = fresh_page(b"typed");
            // Stale at once, so the second request revalidates.
            let text = String::from_utf8_lossy(&page).replace("max-age=60", "max-age=0");
            page = text.into_bytes();
            Reply::Send(page)
        }
    });
    let log = TempFile::new("types.log");
    let proxy = Proxy::start(&["--admit-after", "0", "--access-log", log.arg()]);
    let url = origin.url("/typed");
    let send = |fields: &[(&str, &str)]| {
        let mut client = proxy.client();
        client.send(request("GET", &url, fields).as_bytes());
        client.read_response()
    };
    assert_eq!(send(&[]).status, 200);
    assert_eq!(send(&[]).body, b"typed");
    assert_eq!(send(&[("Cache-Control", "no-cache")]).body, b"typed");
    let lines = wait_for_log_lines(&log, 3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, code) in lines.iter().zip([
        "TCP_MISS/200",
        "TCP_REFRESH_UNMODIFIED/200",
        "TCP_CLIENT_REFRESH_MISS/200",
    ]) {
        assert!(line.contains(code), "{line}");
        assert!(line.ends_with(" text/x-larder"), "{line}");
    }
}

/// A hit carried the Via of the larder process that stored the object, even after a
/// restart, so the client saw a proxy that was not there.
#[test]
fn a_hit_carries_the_via_of_the_larder_serving_it() {
    let origin = Origin::start(|_| {
        let mut page = fresh_page(b"via");
        // The origin's own Via (a proxy in front of it) is kept.
        let text = String::from_utf8_lossy(&page)
            .replace("Content-Type", "Via: 1.1 origin-side\r\nContent-Type");
        page = text.into_bytes();
        Reply::Send(page)
    });
    let cache = TempDir::new("via-cache");
    let args = [
        "--admit-after",
        "0",
        "--cache-dir",
        cache.path().to_str().unwrap_or("."),
        "--cache-size",
        "1M",
    ];
    let url = origin.url("/via");
    let first = Proxy::start(&args);
    let miss = first.get(&url);
    let stored_by = larder_via(&miss.headers).expect("a larder Via on the miss");
    let hit = first.get(&url);
    assert_eq!(via_entries(&hit.headers), ["1.1 origin-side", &stored_by]);
    drop(first);

    let second = Proxy::start(&args);
    let hit = second.get(&url);
    assert_eq!(origin.requests(), 1, "not a hit");
    let entries = via_entries(&hit.headers);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0], "1.1 origin-side");
    assert_ne!(entries[1], stored_by, "the Via of a larder that is gone");
    assert!(entries[1].starts_with("1.1 larder-"), "{entries:?}");
}

/// larder's own error pages had no `Cache-Status`, so a client could not tell a
/// DNS failure from a refusal without reading the page.
#[test]
fn larders_own_error_pages_say_why_in_cache_status() {
    let proxy = Proxy::start(&["--block", "blocked.test"]);
    let dns = proxy.get(&format!("http://{}.invalid/", "a".repeat(64)));
    assert_eq!(dns.status, 502);
    assert_eq!(
        dns.header("cache-status"),
        Some("larder; fwd=miss; detail=dns-error")
    );
    let blocked = proxy.get("http://blocked.test/");
    assert_eq!(blocked.status, 403);
    assert_eq!(
        blocked.header("cache-status"),
        Some("larder; detail=blocked")
    );
    let refused = proxy.get(&format!("http://127.0.0.1:{}/", dead_port()));
    assert_eq!(refused.status, 502);
    assert_eq!(
        refused.header("cache-status"),
        Some("larder; fwd=miss; detail=connect-failed")
    );
    let mut client = proxy.client();
    client.send(b"GET http://a.test/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    let bad = client.read_response();
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.header("cache-status"),
        Some("larder; detail=bad-request")
    );
}

/// The 403 pages told any client the server path of the block list (`list
/// /etc/...`) and the flags of the proxy's configuration.
#[test]
fn error_pages_name_no_file_and_no_flag() {
    let list = TempFile::new("blocked-sites.txt");
    list.write("ads.test\n");
    let proxy = Proxy::start(&[
        "--block-list",
        list.arg(),
        "--allow",
        "127.0.0.0/8",
        "--deny",
        "127.0.0.2/32",
        "--log-level",
        "info",
    ]);
    let page = proxy.get("http://www.ads.test/").text();
    assert!(page.contains("www.ads.test is blocked"), "{page}");
    assert!(
        page.contains("ask the administrator of this proxy"),
        "{page}"
    );
    assert!(
        !page.contains(list.arg()) && !page.contains("--block"),
        "{page}"
    );

    let mut denied = Client::connect_from(Ipv4Addr::new(127, 0, 0, 2), proxy.addr());
    denied.send(get("http://example.test/").as_bytes());
    let page = denied.read_response().text();
    assert!(page.contains("does not serve your address"), "{page}");
    assert!(!page.contains("--deny") && !page.contains("/32"), "{page}");

    // The details are in larder's log, for the operator.
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let log = proxy.stderr();
        if log.contains(list.arg()) && log.contains("--deny 127.0.0.2/32") {
            break;
        }
        assert!(Instant::now() < deadline, "details not logged:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which `unshare` options make a private mount namespace here: a user namespace
/// first (no privileges needed where the kernel allows it), else a mount namespace
/// alone (root). `None` where neither works.
fn mount_namespace() -> Option<&'static [&'static str]> {
    for options in [&["--user", "--map-root-user", "--mount"][..], &["--mount"]] {
        let works = std::process::Command::new("unshare")
            .args(options)
            .args(["sh", "-c", "mount -t tmpfs -o size=64k larder-probe /mnt 2>/dev/null || mount -t tmpfs -o size=64k larder-probe /tmp"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return Some(options);
        }
    }
    None
}

/// On a full disk `Cache-Status` said `stored` for fills that were then dropped, and
/// the drop and the pause of storing were logged only at debug. Now: a response is
/// claimed `stored` only when its room on the disk is allocated (so it lands), the
/// disk-full error is a warning, `/metrics` counts it, `/health` says 503 while
/// storing is paused, and a cache larger than its disk is warned about at start-up.
/// The cache lives on a 600 KiB tmpfs in a private mount namespace.
#[test]
fn a_full_disk_is_warned_about_counted_and_never_claimed_stored() {
    let Some(namespace) = mount_namespace() else {
        println!(
            "SKIPPED a_full_disk_is_warned_about_counted_and_never_claimed_stored: no \
             private mount namespace can be made here for a small tmpfs"
        );
        return;
    };
    let body = vec![b'd'; 100_000];
    let served = body.clone();
    let origin = Origin::start(move |_| {
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: {}\r\n\r\n",
            served.len()
        )
        .into_bytes();
        reply.extend_from_slice(&served);
        Reply::Send(reply)
    });
    let cache = TempDir::new("full-cache");
    let dir = cache.path().to_str().unwrap_or(".").to_owned();
    let mut wrapper = vec!["unshare"];
    wrapper.extend_from_slice(namespace);
    wrapper.extend_from_slice(&[
        "sh",
        "-c",
        "mount -t tmpfs -o size=600k larder-test \"$0\" && exec \"$@\"",
        &dir,
    ]);
    let proxy = Proxy::start_wrapped(
        &wrapper,
        &[
            "--admit-after",
            "0",
            "--cache-dir",
            &dir,
            "--cache-size",
            "8M",
        ],
        &[],
    );
    assert!(
        proxy.stderr().contains("but its file system has only"),
        "no start-up warning: {}",
        proxy.stderr()
    );
    let mut refused = 0;
    for i in 0..12 {
        let url = origin.url(&format!("/object/{i}"));
        let first = proxy.get(&url);
        assert_eq!(first.body, body);
        let status = first.header("cache-status").unwrap_or("").to_owned();
        let before = origin.requests();
        let again = proxy.get(&url);
        assert_eq!(again.body, body);
        if status.ends_with("; stored") {
            assert_eq!(
                origin.requests(),
                before,
                "{url} claimed stored but is not a hit"
            );
        } else {
            refused += 1;
        }
    }
    assert!(refused > 0, "the disk never filled up: {}", proxy.stderr());
    let log = proxy.stderr();
    assert!(
        log.contains("[WARN]") && log.contains("No space left on device"),
        "{log}"
    );
    assert!(log.contains("storing is paused"), "{log}");
    let health = proxy.get(&format!("http://{}/health", proxy.addr()));
    assert_eq!(health.status, 503, "{}", health.text());
    assert!(health.text().contains("paused"), "{}", health.text());
    let metrics = proxy
        .get(&format!("http://{}/metrics", proxy.addr()))
        .text();
    let parsed = crate::support::prom::parse(&metrics).unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed
        .get("larder_cache_write_errors_total", &[])
        .is_some_and(|n| n >= 1.0));
    assert_eq!(parsed.get("larder_cache_storing_paused", &[]), Some(1.0));
}

/// A client that vanished (its connection reset) while a response was still arriving
/// from a slow origin kept the upstream connection, and the origin's work, until the
/// origin sent more or the body timeout (60 s) passed; its log line waited as long.
/// larder only noticed on its next write to the client, though the reset had already
/// arrived as an error on the client's socket.
#[test]
fn a_client_that_resets_mid_response_frees_the_upstream_at_once() {
    let (events, seen) = std::sync::mpsc::channel::<&str>();
    let events = std::sync::Mutex::new(events);
    let origin = Server::start(move |stream| {
        use std::io::{BufRead, BufReader, Write};
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let Ok(tx) = events.lock().map(|tx| tx.clone()) else {
            return;
        };
        let stream = reader.get_mut();
        let mut part = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        part.resize(part.len() + 1000, b'x');
        if stream.write_all(&part).is_ok() {
            let _ = tx.send("part sent");
            // Longer than the test waits, shorter than the body timeout.
            hold_open(stream, Duration::from_secs(30));
            let _ = tx.send("closed");
        }
    });
    let log = TempFile::new("reset-mid-response.log");
    let proxy = Proxy::start(&["--access-log", log.arg()]);
    let mut client = proxy.client();
    client.send(get(&format!("http://{}/slow-body", origin.authority())).as_bytes());
    assert_eq!(client.read_head().status, 200);
    assert_eq!(seen.recv_timeout(WAIT_LIMIT), Ok("part sent"));
    client.close_with_reset();
    assert_eq!(
        seen.recv_timeout(WAIT_LIMIT),
        Ok("closed"),
        "the upstream stayed open after the client was gone"
    );
    let lines = wait_for_log_lines(&log, 1);
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains(" TCP_MISS_ABORTED/200 ")),
        "{lines:?}"
    );
}

/// A request waiting for another's fetch of the same URL was answered 504 when the
/// fetch ended in the same turn of the loop as the waiting request's timeout check:
/// the check saw it no longer waiting on a fetch and took that for a fetch that never
/// answered, though the object had just landed. It showed as a rare 504 under load.
/// Here larder is stopped while the rest of the body arrives and until the waiting
/// request's timeout has passed, so that both are handled in its first turn after.
#[test]
fn a_shared_fetch_ending_as_its_waiter_times_out_still_serves_the_waiter() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let body = b"0123456789".repeat(300);
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n",
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(&body);
    reply.extend_from_slice(b"\r\n0\r\n\r\n");
    let split = reply.len() - 100;
    let gate = Gate::new();
    let sent = Arc::new(AtomicBool::new(false));
    let (held, done) = (Arc::clone(&gate), Arc::clone(&sent));
    let origin = Origin::start(move |_| {
        let (reply, held, done) = (reply.clone(), Arc::clone(&held), Arc::clone(&done));
        Reply::Stream(Box::new(move |stream: &mut std::net::TcpStream| {
            stream.write_all(&reply[..split])?;
            held.wait();
            stream.write_all(&reply[split..])?;
            done.store(true, Ordering::SeqCst);
            Ok(())
        }))
    });
    let proxy = Proxy::start(&["--admit-after", "0", "--timeout-response", "1"]);
    let url = origin.url("/lands-at-the-deadline");
    let mut first = proxy.client();
    first.send(get(&url).as_bytes());
    assert_eq!(first.read_head().status, 200);
    // A chunked body is not shared while it arrives: this one waits for the object.
    let mut waiting = proxy.client();
    waiting.send(get(&url).as_bytes());
    waiting.wait_until_read();

    proxy.signal("STOP");
    let stat = format!("/proc/{}/stat", proxy.pid());
    let stopped = wait_until(|| {
        std::fs::read_to_string(&stat)
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('T'))
            })
            .unwrap_or(false)
    });
    assert!(stopped, "larder did not stop");
    gate.open();
    assert!(
        wait_until(|| sent.load(Ordering::SeqCst)),
        "the origin did not send the rest"
    );
    // Past the waiting request's one-second timeout, however its clock stood.
    std::thread::sleep(Duration::from_millis(1500));
    proxy.signal("CONT");

    let answer = waiting.read_response();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.body == body, "the waiting client got a wrong body");
    assert_eq!(origin.requests(), 1);
}

/// A client that hung up while its request waited for the origin's answer left the
/// upstream connection open (and, for a slow CGI, the origin's work going) until the
/// 30 s response timeout: larder took no notice of the client's side until the origin
/// answered or the timeout passed. The origin here holds its answer longer than the
/// test waits, so a close it sees is larder's doing.
#[test]
fn a_client_that_hangs_up_while_awaiting_its_response_frees_the_upstream_at_once() {
    // The origin reads one head, then holds the connection and reports when larder
    // closed it.
    let (events, seen) = mpsc::channel::<&str>();
    let events = Mutex::new(events);
    let origin = Server::start(move |stream: TcpStream| {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let tx = events.lock().map(|tx| tx.clone());
        if let Ok(tx) = tx {
            let _ = tx.send("request");
            // Longer than the test waits: a close seen here is larder's doing.
            hold_open(reader.get_mut(), Duration::from_secs(25));
            let _ = tx.send("closed");
        }
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(get(&format!("http://{}/slow", origin.authority())).as_bytes());
    assert_eq!(seen.recv_timeout(WAIT_LIMIT), Ok("request"));

    // Well within the 30 s response timeout, which is what kept it open before; the
    // margin is for a busy machine.
    drop(client);
    assert_eq!(
        seen.recv_timeout(WAIT_LIMIT),
        Ok("closed"),
        "upstream kept open"
    );
}

/// The access log is buffered and written out every 100 ms; a larder stopped with
/// SIGTERM (or Ctrl-C) died with the last lines still in its buffer, so the requests
/// just before a stop were missing from the log. The file is read only after the exit,
/// so nothing can have written them out later.
#[test]
fn a_stop_by_sigterm_writes_out_the_last_access_log_lines() {
    let origin = Origin::start(|_| Reply::Send(ok(b"last words")));
    let log = TempFile::new("sigterm.log");
    let mut proxy = Proxy::start(&["--access-log", &log.path().to_string_lossy()]);
    let mut client = proxy.client();
    for path in ["/one", "/two", "/three"] {
        client.send(get(&origin.url(path)).as_bytes());
        assert_eq!(client.read_response().text(), "last words");
    }
    assert_eq!(proxy.stop(), Some(0), "stderr:\n{}", proxy.stderr());
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    for path in ["/one", "/two", "/three"] {
        assert!(text.contains(&origin.url(path)), "{path} missing:\n{text}");
    }
}

/// A 204 served from the cache came with `Content-Length: 0`, which RFC 9110 §8.6
/// forbids in a 204: every head written from the cache got the stored body's length.
/// The stored 301 pipelined behind it on the same connection must still come back
/// whole, with its Location.
#[test]
fn a_stored_204_is_served_without_a_content_length() {
    let origin = Origin::start(|request| {
        Reply::Send(match request.target.as_str() {
            "/moved" => response(
                "301 Moved Permanently",
                &[("Cache-Control", "max-age=60"), ("Location", "/new-home")],
                b"moved",
            ),
            _ => head("204 No Content", &[("Cache-Control", "max-age=60")]),
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let (empty, moved) = (origin.url("/empty"), origin.url("/moved"));
    proxy.get(&empty);
    proxy.get(&moved);
    // One connection: a stray body after the 204 would break the 301 after it.
    let mut client = proxy.client();
    client.send(
        format!(
            "{}{}",
            request("GET", &empty, &[]),
            request("GET", &moved, &[])
        )
        .as_bytes(),
    );
    let no_content = client.read_response();
    let redirect = client.read_response();
    assert_eq!(redirect.status, 301);
    assert_cache_status(&redirect, &["hit"], &[]);
    assert_eq!(redirect.header("location"), Some("/new-home"));
    assert_eq!(redirect.text(), "moved");
    assert_eq!(origin.requests(), 2);
    assert_eq!(no_content.status, 204);
    assert_cache_status(&no_content, &["hit"], &[]);
    assert_eq!(
        no_content.header("content-length"),
        None,
        "RFC 9110 §8.6: no Content-Length in a 204"
    );
}

/// A response the origin sent without Date was relayed without one, and its stored
/// copy was served without one too, where RFC 9110 §6.6.1 has a proxy with a clock add
/// the Date it received the response at. The hit a second later must carry the Date of
/// the miss, not a new one per hit.
#[test]
fn a_response_without_date_is_given_one_that_its_hits_keep() {
    let origin = Origin::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 4\r\n\r\nbody"
                .to_vec(),
        )
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/dateless");
    let before = now_secs();
    let miss = proxy.get(&url);
    let date = miss.header("date").expect("larder adds a Date").to_owned();
    let parsed = larder::http::date::parse_http_date(date.as_bytes()).expect("an HTTP-date");
    assert!(parsed + 1 >= before && parsed <= now_secs() + 1, "{date}");
    thread::sleep(Duration::from_millis(1100));
    let hit = proxy.get(&url);
    assert_cache_status(&hit, &["hit"], &[]);
    assert_eq!(hit.header("date"), Some(date.as_str()));
    assert_eq!(origin.requests(), 1);
}

/// A 206 answer to a Range request made larder remember the URL as one whose
/// response is not stored (the memo that lets requests for `no-store` URLs skip waiting
/// for each other), so for two minutes concurrent full downloads of the URL each went to
/// the origin instead of sharing one fetch: a resumed download stopped collapsing.
#[test]
fn a_range_answer_does_not_stop_later_misses_sharing_one_fetch() {
    let full_gets = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&full_gets);
    let gate = Gate::new();
    let held = Arc::clone(&gate);
    let origin = Origin::start(move |request| {
        if request.header("range").is_some() {
            return Reply::Send(response(
                "206 Partial Content",
                &[
                    ("Cache-Control", "max-age=60"),
                    ("Content-Range", "bytes 0-1/8"),
                ],
                b"th",
            ));
        }
        counter.fetch_add(1, Ordering::SeqCst);
        after_gate(&held, fresh(b"the body"))
    });
    // The Range must go up as asked for the origin's 206 to come back: a Range miss is
    // otherwise fetched whole.
    let proxy = Proxy::start(&["--admit-after", "0", "--range-whole-below", "0"]);
    let url = origin.url("/resumable");
    let mut client = proxy.client();
    client.send(request("GET", &url, &[("Range", "bytes=0-1")]).as_bytes());
    assert_eq!(client.read_response().status, 206);

    let answers = gated_gets(&proxy, &url, &["", "", "", ""], &gate, || true);
    for answer in &answers {
        assert_eq!(answer.text(), "the body");
    }
    assert_eq!(
        full_gets.load(Ordering::SeqCst),
        1,
        "the misses were not collapsed"
    );
}

/// A conditional request that waited on another client's fetch of the same URL had
/// its `If-None-Match` taken out (as for a fetch of its own, which must bring a
/// storable 200), and when the object landed it was looked up without it: the client
/// got the whole 200 where it had asked for, and was owed, a 304.
#[test]
fn a_conditional_request_that_waited_on_a_shared_fetch_gets_a_304_not_the_body() {
    let reply = response(
        "200 OK",
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
        b"the body",
    );
    let gate = Gate::new();
    let held = Arc::clone(&gate);
    let origin = Origin::start(move |_| after_gate(&held, reply.clone()));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/etagged");
    let mut leader = proxy.client();
    leader.send(request("GET", &url, &[]).as_bytes());
    assert!(
        wait_until(|| origin.requests() == 1),
        "the fetch did not start"
    );
    let mut waiter = proxy.client();
    waiter.send(request("GET", &url, &[("If-None-Match", "\"v1\"")]).as_bytes());
    waiter.wait_until_read();
    gate.open();

    assert_eq!(leader.read_response().text(), "the body");
    let answer = waiter.read_response();
    assert_eq!(answer.status, 304, "head:\n{}", head_text(&answer));
    assert_eq!(answer.header("etag"), Some("\"v1\""));
    assert_eq!(origin.requests(), 1);
}

/// Concurrent requests for a URL whose response is not stored (`no-store`) queued
/// behind each other: each waited for the one before to bring a response it might
/// share, which it never could, so a pass-through load test lost a quarter of its rate.
/// The origin here holds its answers until every request has reached it (or the wait
/// gives up, as it does when they queue), and counts how many it held at once.
#[test]
fn requests_for_a_url_not_stored_do_not_queue_behind_each_other() {
    const CLIENTS: usize = 4;
    let inflight = Arc::new(InFlight::default());
    let counter = Arc::clone(&inflight);
    let gate = Gate::new();
    let held = Arc::clone(&gate);
    let served = AtomicUsize::new(0);
    let origin = Origin::start(move |_| {
        let reply = response(
            "200 OK",
            &[("Cache-Control", "no-store")],
            b"fresh every time",
        );
        if served.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::Send(reply);
        }
        counter.hold(&held, reply)
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/no-store");
    assert_eq!(proxy.get(&url).text(), "fresh every time");

    // The origin holds its answers until every request has reached it (or the wait
    // gives up, as it does when they queue behind each other in larder).
    let answers = gated_gets(&proxy, &url, &[""; CLIENTS], &gate, || {
        origin.requests() == 1 + CLIENTS
    });
    for answer in &answers {
        assert_eq!(answer.text(), "fresh every time");
        assert_cache_status(answer, &["fwd=miss"], &["collapsed", "stored"]);
    }
    // Waiting for the first fetch's head would have split them into 1 + 3.
    assert_eq!(
        inflight.most.load(Ordering::SeqCst),
        CLIENTS,
        "the requests queued behind each other"
    );
    assert_eq!(origin.requests(), 1 + CLIENTS);
}

/// With admission on (the default `--admit-after 1`), an entry that had gone stale
/// and came back from the origin as a new 200 was replaced only if that request
/// earned admission again on its own. One that came after the admission window, as a
/// request for an entry stale for a while usually does, was relayed and not stored:
/// the old entry stayed, and the next request went to the origin again.
#[test]
fn a_stale_entrys_new_200_replaces_it_without_earning_admission_again() {
    let origin = old_then_new(2, "max-age=1");
    let proxy = Proxy::start(&["--admit-window", "1"]);
    let url = origin.url("/replaced-late");
    assert_cache_status(&proxy.get(&url), &["fwd=miss"], &["stored"]);
    assert_cache_status(&proxy.get(&url), &["fwd=miss", "stored"], &[]);
    // Stale (max-age=1) and past the one-second window, wherever the clock's second
    // boundaries fall: this request alone would not be admitted.
    thread::sleep(Duration::from_millis(2100));
    let replaced = proxy.get(&url);
    assert_eq!(replaced.text(), "new body");
    assert_cache_status(&replaced, &["fwd=stale", "fwd-status=200", "stored"], &[]);
    let hit = proxy.get(&url);
    assert_cache_status(&hit, &["hit"], &[]);
    assert_eq!(hit.text(), "new body");
    assert_eq!(origin.requests(), 3);
}

/// Opening the cache file walks the header of every record through the shared map,
/// and the kernel maps the pages around each page it faults in: a larder started on a
/// full cache counted nearly the whole file in its RSS (about 1 GiB for a 1 GiB
/// cache), which looked like a leak to anyone watching it or enforcing a memory limit.
/// Here a cache filled with 50 MB of 64 KB objects is opened again and larder's RSS is
/// compared with that of a larder opening an empty cache of the same size.
#[test]
fn opening_a_full_cache_does_not_count_the_file_in_larders_rss() {
    const OBJECTS: usize = 800;
    let body = vec![b'r'; 64_000];
    let page = fresh_page(&body);
    let origin = Origin::start(move |_| Reply::Send(page.clone()));
    let cache = TempDir::new("rss-cache");
    let args = [
        "--admit-after",
        "0",
        "--cache-dir",
        cache.arg(),
        "--cache-size",
        "64M",
    ];
    let mut filler = Proxy::start(&args);
    let mut client = filler.client();
    for i in 0..OBJECTS {
        client.send(get(&origin.url(&format!("/object/{i}"))).as_bytes());
        let response = client.read_response();
        assert!(response.body == body, "/object/{i}: a wrong body");
    }
    drop(client);
    assert_eq!(filler.stop(), Some(0), "stderr:\n{}", filler.stderr());

    let empty = Proxy::start(&["--cache-size", "64M"]);
    let reopened = Proxy::start(&args);
    let (baseline, rss) = (empty.rss_kib(), reopened.rss_kib());
    assert_eq!(
        reopened.metric("larder_cache_objects"),
        OBJECTS as f64,
        "the cache was not filled"
    );
    assert!(
        rss < baseline + 16 * 1024,
        "{rss} KiB after opening a full cache, {baseline} KiB after an empty one"
    );
}
