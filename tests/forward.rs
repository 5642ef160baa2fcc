//! Forwarding: what reaches the origin, what comes back, keep-alive on both sides,
//! upstream pooling and retry, pipelining, interim responses, back-pressure, and upstream
//! answers that must not be relayed.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{get, larder_via, ok, pattern, via_entries, Origin, Proxy, Reply};

#[test]
fn get_returns_the_origin_body_exactly() {
    let body = pattern(10_000);
    let reply = ok(&body);
    let origin = Origin::start(move |_| Reply::Send(reply.clone()));
    let proxy = Proxy::start(&[]);
    let response = proxy.get(&origin.url("/file"));
    assert_eq!(response.status, 200);
    assert_eq!(response.version, "HTTP/1.1");
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(response.header("content-length"), Some("10000"));
    assert!(
        response.body == body,
        "body differs from what the origin sent"
    );
    assert_eq!(origin.requests(), 1);
}

#[test]
fn origin_gets_origin_form_target_and_host_from_the_uri() {
    let origin = Origin::start(|_| Reply::Send(ok(b"ok")));
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    let url = origin.url("/a/b?x=1&y=%20z");
    client.send(
        format!(
            "GET {url} HTTP/1.1\r\nHost: elsewhere.example\r\nUser-Agent: larder-tests\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(client.read_response().status, 200);
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/a/b?x=1&y=%20z");
    assert_eq!(request.version, "HTTP/1.1");
    assert_eq!(
        request.header_all("host"),
        vec![origin.authority().as_str()]
    );
    assert_eq!(request.header("user-agent"), Some("larder-tests"));
}

#[test]
fn hop_by_hop_request_fields_are_stripped() {
    let origin = Origin::start(|_| Reply::Send(ok(b"ok")));
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(
        format!(
            "GET {} HTTP/1.1\r\n\
             Host: {}\r\n\
             Connection: keep-alive, X-Private\r\n\
             X-Private: secret\r\n\
             Keep-Alive: timeout=5\r\n\
             Proxy-Connection: keep-alive\r\n\
             TE: trailers\r\n\
             Trailer: X-Checksum\r\n\
             Upgrade: websocket\r\n\
             Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
             X-End-To-End: kept\r\n\r\n",
            origin.url("/"),
            origin.authority()
        )
        .as_bytes(),
    );
    assert_eq!(client.read_response().status, 200);
    let request = &origin.seen()[0];
    for name in [
        "connection",
        "x-private",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
    ] {
        assert_eq!(
            request.header(name),
            None,
            "{name} reached the origin: {}",
            String::from_utf8_lossy(&request.head)
        );
    }
    assert_eq!(request.header("x-end-to-end"), Some("kept"));
}

#[test]
fn hop_by_hop_response_fields_are_stripped() {
    let origin = Origin::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\n\
              Connection: X-Origin-Private\r\n\
              X-Origin-Private: 1\r\n\
              Keep-Alive: timeout=5, max=100\r\n\
              X-Kept: yes\r\n\
              Content-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let proxy = Proxy::start(&[]);
    let response = proxy.get(&origin.url("/"));
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok");
    assert_eq!(response.header("x-origin-private"), None);
    assert_eq!(response.header("keep-alive"), None);
    for value in response.header_all("connection") {
        assert!(
            !value.to_ascii_lowercase().contains("x-origin-private"),
            "origin's Connection option relayed: {value}"
        );
    }
    assert_eq!(response.header("x-kept"), Some("yes"));
}

#[test]
fn via_is_added_both_ways_after_existing_entries() {
    let origin = Origin::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nVia: 1.1 origin-cdn\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        )
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nVia: 1.0 upstream-proxy\r\n\r\n",
            origin.url("/"),
            origin.authority()
        )
        .as_bytes(),
    );
    let response = client.read_response();
    assert_eq!(response.status, 200);

    let request = &origin.seen()[0];
    let upstream = via_entries(&request.headers);
    let ours = larder_via(&request.headers).expect("origin sees larder's Via");
    assert!(ours.starts_with("1.1 larder-"), "Via entry {ours:?}");
    assert_eq!(
        upstream,
        vec!["1.0 upstream-proxy".to_owned(), ours.clone()],
        "request Via keeps the client's entry and appends larder's"
    );

    let downstream = via_entries(&response.headers);
    assert_eq!(
        downstream,
        vec!["1.1 origin-cdn".to_owned(), ours],
        "response Via keeps the origin's entry and appends the same larder token"
    );
}

#[test]
fn post_with_content_length_body_reaches_the_origin() {
    let body = pattern(300_000);
    let origin =
        Origin::start(|request| Reply::Send(ok(format!("got {}", request.body.len()).as_bytes())));
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            origin.url("/upload"),
            origin.authority(),
            body.len()
        )
        .as_bytes(),
    );
    client.send(&body);
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "got 300000");
    let request = &origin.seen()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-length"), Some("300000"));
    assert!(request.body == body, "POST body changed on the way");
}

#[test]
fn post_with_chunked_body_arrives_intact() {
    let origin =
        Origin::start(|request| Reply::Send(ok(format!("got {}", request.body.len()).as_bytes())));
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
            origin.url("/upload"),
            origin.authority()
        )
        .as_bytes(),
    );
    let big = pattern(0x1000);
    let mut expected = Vec::new();
    for (size_line, data) in [
        ("1\r\n".to_owned(), b"a".to_vec()),
        ("10\r\n".to_owned(), pattern(16)),
        ("1000;name=value\r\n".to_owned(), big),
        ("A\r\n".to_owned(), b"0123456789".to_vec()),
    ] {
        client.send(size_line.as_bytes());
        client.send(&data);
        client.send(b"\r\n");
        expected.extend_from_slice(&data);
    }
    client.send(b"0\r\n\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), format!("got {}", expected.len()));
    assert!(
        origin.seen()[0].body == expected,
        "chunked body changed on the way"
    );
}

#[test]
fn chunked_response_is_relayed_to_an_http11_client() {
    let sizes = [1usize, 4095, 4096, 4097, 65536, 100_000];
    let expected: Vec<u8> = sizes.iter().flat_map(|&n| pattern(n)).collect();
    let origin = Origin::start(move |request| {
        if request.target != "/chunked" {
            return Reply::Send(ok(b"second"));
        }
        Reply::Stream(Box::new(move |stream| {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            for (i, size) in sizes.into_iter().enumerate() {
                let extension = if i == 2 { ";ext=1" } else { "" };
                stream.write_all(format!("{size:x}{extension}\r\n").as_bytes())?;
                stream.write_all(&pattern(size))?;
                stream.write_all(b"\r\n")?;
            }
            stream.write_all(b"0\r\n\r\n")
        }))
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/chunked")).as_bytes());
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), expected.len());
    assert!(response.body == expected, "chunked body changed on the way");
    // The framing was right if the connection still carries a second exchange.
    client.send(get(&origin.url("/second")).as_bytes());
    assert_eq!(client.read_response().text(), "second");
}

#[test]
fn chunked_response_to_an_http10_client_is_dechunked_and_closed() {
    let origin = Origin::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
                .to_vec(),
        )
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(format!("GET {} HTTP/1.0\r\n\r\n", origin.url("/")).as_bytes());
    let raw = client.read_to_close();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {text:?}"));
    assert!(
        head.starts_with("HTTP/1.1 200 ") || head.starts_with("HTTP/1.0 200 "),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "an HTTP/1.0 client got Transfer-Encoding: {head}"
    );
    assert_eq!(body, "hello, world");
}

#[test]
fn close_delimited_response_is_relayed_whole() {
    let body = pattern(200_000);
    let mut reply =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n".to_vec();
    reply.extend_from_slice(&body);
    let origin = Origin::start(move |_| Reply::SendClose(reply.clone()));
    let proxy = Proxy::start(&[]);
    let response = proxy.get(&origin.url("/"));
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), body.len());
    assert!(
        response.body == body,
        "close-delimited body changed on the way"
    );
}

#[test]
fn head_204_and_304_have_no_body_and_keep_alive_continues() {
    let origin = Origin::start(|request| {
        let reply: &[u8] = match (request.method.as_str(), request.target.as_str()) {
            ("HEAD", _) => {
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n"
            }
            (_, "/204") => b"HTTP/1.1 204 No Content\r\n\r\n",
            (_, "/304") => b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n",
            _ => return Reply::Send(ok(b"after")),
        };
        Reply::Send(reply.to_vec())
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();

    client.send(
        format!(
            "HEAD {} HTTP/1.1\r\nHost: {}\r\n\r\n",
            origin.url("/"),
            origin.authority()
        )
        .as_bytes(),
    );
    let head = client.read_response_for("HEAD");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1234"));

    client.send(get(&origin.url("/204")).as_bytes());
    assert_eq!(client.read_response().status, 204);

    client.send(get(&origin.url("/304")).as_bytes());
    let not_modified = client.read_response();
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some("\"v1\""));

    client.send(get(&origin.url("/after")).as_bytes());
    let after = client.read_response();
    assert_eq!(after.status, 200);
    assert_eq!(after.text(), "after");
    client.expect_silence(Duration::from_millis(200));
    assert_eq!(origin.requests(), 4);
}

#[test]
fn client_connection_is_kept_alive_for_three_requests() {
    let origin = Origin::start(|request| Reply::Send(ok(request.target.as_bytes())));
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    for path in ["/one", "/two", "/three"] {
        client.send(get(&origin.url(path)).as_bytes());
        let response = client.read_response();
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), path);
        assert!(!response.is_close(), "larder asked to close after {path}");
    }
    assert_eq!(origin.requests(), 3);
}

#[test]
fn upstream_connection_is_reused_for_sequential_requests() {
    let origin = Origin::start(|request| Reply::Send(ok(request.target.as_bytes())));
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    for i in 0..10 {
        let path = format!("/{i}");
        client.send(get(&origin.url(&path)).as_bytes());
        assert_eq!(client.read_response().text(), path);
    }
    assert_eq!(origin.requests(), 10);
    assert_eq!(
        origin.conns(),
        1,
        "larder opened a new upstream connection per request"
    );
}

#[test]
fn upstream_pool_is_shared_between_client_connections() {
    let origin = Origin::start(|request| Reply::Send(ok(request.target.as_bytes())));
    let proxy = Proxy::start(&[]);
    // Clients stay open so no client close can race the pool.
    let mut clients = Vec::new();
    for i in 0..10 {
        let mut client = proxy.client();
        let path = format!("/{i}");
        client.send(get(&origin.url(&path)).as_bytes());
        assert_eq!(client.read_response().text(), path);
        clients.push(client);
    }
    assert_eq!(
        origin.conns(),
        1,
        "idle upstream connection was not pooled per origin"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = Origin::start(|request| {
        if request.target == "/a" {
            // A slow first answer: larder must not let later ones overtake it.
            thread::sleep(Duration::from_millis(150));
        }
        let mut body = request.target.clone().into_bytes();
        body.extend_from_slice(&request.body);
        Reply::Send(ok(&body))
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    let host = origin.authority();
    let batch = format!(
        "GET {a} HTTP/1.1\r\nHost: {host}\r\n\r\n\
         POST {b} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\n12345\
         GET {c} HTTP/1.1\r\nHost: {host}\r\n\r\n",
        a = origin.url("/a"),
        b = origin.url("/b"),
        c = origin.url("/c"),
    );
    client.send(batch.as_bytes());
    for expected in ["/a", "/b12345", "/c"] {
        let response = client.read_response();
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), expected);
    }
}

#[test]
fn interim_103_is_relayed_before_the_final_response() {
    let origin = Origin::start(|_| {
        Reply::Stream(Box::new(|stream| {
            stream.write_all(
                b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
            )?;
            thread::sleep(Duration::from_millis(100));
            stream.write_all(&ok(b"final"))
        }))
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/")).as_bytes());
    let hints = client.read_response();
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("link"), Some("</style.css>; rel=preload"));
    let last = client.read_response();
    assert_eq!(last.status, 200);
    assert_eq!(last.text(), "final");
}

#[test]
fn interim_responses_are_not_sent_to_http10_clients() {
    let origin = Origin::start(|_| {
        let mut reply = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n".to_vec();
        reply.extend_from_slice(&ok(b"final"));
        Reply::Send(reply)
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(format!("GET {} HTTP/1.0\r\n\r\n", origin.url("/")).as_bytes());
    let response = client.read_response();
    assert_eq!(
        response.status, 200,
        "an HTTP/1.0 client got an interim response"
    );
    assert_eq!(response.text(), "final");
}

#[test]
fn expect_100_continue_is_forwarded_and_the_origins_100_relayed() {
    // The origin answers `Expect: 100-continue` with a 100 before reading the body.
    let origin = Origin::start(|request| {
        Reply::Send(ok(format!("got {} bytes", request.body.len()).as_bytes()))
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
            origin.url("/upload"),
            origin.authority()
        )
        .as_bytes(),
    );
    let interim = client.read_response();
    assert_eq!(
        interim.status, 100,
        "no 100 Continue before the body was sent"
    );
    client.send(b"hello world");
    let response = client.read_final_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "got 11 bytes");
    let request = &origin.seen()[0];
    assert_eq!(request.header("expect"), Some("100-continue"));
    assert_eq!(request.body, b"hello world");
}

#[test]
fn slow_reader_gets_back_pressure_not_a_buffered_response() {
    const TOTAL: usize = 64 << 20;
    const CHUNK: usize = 64 << 10;
    let written = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&written);
    let origin = Origin::start(move |request| {
        if request.target != "/big" {
            return Reply::Send(ok(b"small"));
        }
        let progress = Arc::clone(&progress);
        Reply::Stream(Box::new(move |stream| {
            stream.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {TOTAL}\r\n\r\n").as_bytes(),
            )?;
            let chunk = pattern(CHUNK);
            for _ in 0..TOTAL / CHUNK {
                stream.write_all(&chunk)?;
                progress.fetch_add(CHUNK, Ordering::SeqCst);
            }
            Ok(())
        }))
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/big")).as_bytes());
    let head = client.read_head();
    assert_eq!(head.status, 200);

    // Stall until the origin stops making progress (every buffer on the way is full).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = usize::MAX;
    let mut still = 0;
    while Instant::now() < deadline && still < 3 {
        thread::sleep(Duration::from_millis(100));
        let now = written.load(Ordering::SeqCst);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    let rss = (0..5)
        .map(|_| {
            thread::sleep(Duration::from_millis(20));
            proxy.rss_kib()
        })
        .max()
        .unwrap_or(0);
    assert!(
        rss < 30 * 1024,
        "larder holds {rss} KiB while its client is stalled (origin wrote {} bytes)",
        written.load(Ordering::SeqCst)
    );

    // A stalled reader must not hold up anybody else: held up, the request would wait
    // until the stalled one is drained below; a busy machine may take a while anyway.
    let started = Instant::now();
    assert_eq!(proxy.get(&origin.url("/small")).text(), "small");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "another client waited {:?}",
        started.elapsed()
    );

    let mut got = 0;
    let mut buf = vec![0u8; 256 << 10];
    // The body repeats every 256 bytes, so any offset of this covers any read.
    let reference = pattern(256 + buf.len());
    while got < TOTAL {
        let n = client.read_some(&mut buf);
        assert!(n > 0, "connection closed after {got} of {TOTAL} bytes");
        let start = got % 256;
        assert!(
            buf[..n] == reference[start..start + n],
            "body bytes {got}..{} differ from what the origin sent",
            got + n
        );
        got += n;
    }
    assert_eq!(got, TOTAL);
}

#[test]
fn dead_pooled_connection_is_retried_once_on_a_fresh_one() {
    // The first request on each connection is answered; a later one finds it dead.
    let origin = Origin::start(|request| {
        if request.seq_on_conn == 0 {
            Reply::Send(ok(b"fresh"))
        } else {
            Reply::Close
        }
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/1")).as_bytes());
    assert_eq!(client.read_response().text(), "fresh");
    client.send(get(&origin.url("/2")).as_bytes());
    let response = client.read_response();
    assert_eq!(
        response.status, 200,
        "GET on a dead pooled connection was not retried"
    );
    assert_eq!(response.text(), "fresh");
    assert_eq!(origin.conns(), 2);
    assert_eq!(origin.requests(), 3);
}

#[test]
fn retry_on_a_dead_pooled_connection_happens_only_once() {
    // Only the very first request is ever answered.
    let origin = Origin::start(|request| {
        if request.conn == 0 && request.seq_on_conn == 0 {
            Reply::Send(ok(b"first"))
        } else {
            Reply::Close
        }
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/1")).as_bytes());
    assert_eq!(client.read_response().text(), "first");
    client.send(get(&origin.url("/2")).as_bytes());
    assert_eq!(client.read_response().status, 502);
    assert_eq!(
        origin.conns(),
        2,
        "expected the pooled connection plus exactly one retry"
    );
}

#[test]
fn post_on_a_dead_pooled_connection_is_not_retried() {
    let origin = Origin::start(|request| {
        if request.conn == 0 && request.seq_on_conn == 0 {
            Reply::Send(ok(b"first"))
        } else {
            Reply::Close
        }
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/1")).as_bytes());
    assert_eq!(client.read_response().text(), "first");
    client.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 4\r\n\r\ndata",
            origin.url("/order"),
            origin.authority()
        )
        .as_bytes(),
    );
    assert_eq!(client.read_response().status, 502);
    let posts = origin.seen().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "a POST was sent upstream more than once");
}

#[test]
fn upstream_connection_with_stray_bytes_is_not_reused() {
    // Bytes after a complete response make the connection ambiguous (response splitting).
    let origin = Origin::start(|request| {
        if request.conn == 0 {
            let mut reply = ok(b"ok");
            reply.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled");
            Reply::Send(reply)
        } else {
            Reply::Send(ok(b"clean"))
        }
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/1")).as_bytes());
    assert_eq!(client.read_response().text(), "ok");
    client.send(get(&origin.url("/2")).as_bytes());
    let second = client.read_response();
    assert_eq!(second.status, 200);
    assert_eq!(second.text(), "clean");
    assert_eq!(origin.conns(), 2);
}

#[test]
fn bad_upstream_responses_are_502_and_never_relayed() {
    let origin = Origin::start(|request| {
        let reply: &[u8] = match request.target.as_str() {
            "/garbage" => b"LEAK-1 this is not http\r\n\r\n",
            "/http09" => b"<html>LEAK-2 an HTTP/0.9 answer</html>\n",
            "/http2" => b"HTTP/2.0 200 OK\r\nContent-Length: 6\r\n\r\nLEAK-3",
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Length: 7\r\n\r\nLEAK-4!",
        };
        Reply::SendClose(reply.to_vec())
    });
    let proxy = Proxy::start(&[]);
    for (path, leaked) in [
        ("/garbage", "LEAK-1"),
        ("/http09", "LEAK-2"),
        ("/http2", "LEAK-3"),
        ("/differing-lengths", "LEAK-4"),
    ] {
        let response = proxy.get(&origin.url(path));
        assert_eq!(response.status, 502, "{path}");
        let raw = String::from_utf8_lossy(&response.raw);
        assert!(
            !raw.contains(leaked),
            "{path}: upstream bytes relayed: {raw}"
        );
    }
}
