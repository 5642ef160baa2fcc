//! Bad input: every malformed or over-limit request gets its status with
//! `Connection: close`, the connection is closed, and a bad head never reaches the origin.
//! Limits that must still pass, and over-large upstream heads, are here too.

use crate::support::{get, ok, Origin, Proxy, Reply, WAIT_LIMIT};

/// An origin that answers everything, and larder in front of it.
struct Setup {
    origin: Origin,
    proxy: Proxy,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            origin: Origin::start(|_| Reply::Send(ok(b"reached the origin"))),
            proxy: Proxy::start(&[]),
        }
    }

    /// `METHOD http://origin/ HTTP/1.1` with a Host field and `fields` (each ending in
    /// CRLF), then the empty line and `body`.
    fn request(&self, method: &str, fields: &str, body: &str) -> Vec<u8> {
        format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\n{fields}\r\n{body}",
            self.origin.url("/"),
            self.origin.authority()
        )
        .into_bytes()
    }

    /// Sends `raw` on a new connection and checks the answer is `status` with
    /// `Connection: close`, that the connection then closes, and that no request head
    /// reached the origin.
    fn rejects(&self, raw: &[u8], status: u16) {
        let before = self.origin.requests();
        self.rejects_body(raw, status);
        assert_eq!(
            self.origin.requests(),
            before,
            "a rejected request reached the origin: {:?}",
            String::from_utf8_lossy(raw)
        );
    }

    /// Like [`Setup::rejects`] for errors in a body, whose head may already have been
    /// forwarded.
    fn rejects_body(&self, raw: &[u8], status: u16) {
        let mut client = self.proxy.client();
        // larder may close before it has taken all of an over-long request.
        let _ = client.try_send(raw);
        let response = client.read_response();
        let shown = String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned();
        assert_eq!(response.status, status, "for {shown:?}");
        assert!(
            response.is_close(),
            "no Connection: close with {status} for {shown:?}"
        );
        assert!(
            response.text().contains(&status.to_string()),
            "error page does not say {status}: {}",
            response.text()
        );
        client.expect_closed();
    }
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let setup = Setup::new();
    let raw = setup.request(
        "POST",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "0\r\n\r\n",
    );
    setup.rejects(&raw, 400);
}

#[test]
fn differing_content_lengths_are_400() {
    let setup = Setup::new();
    setup.rejects(
        &setup.request(
            "POST",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "hello!",
        ),
        400,
    );
    setup.rejects(
        &setup.request("POST", "Content-Length: 5, 6\r\n", "hello!"),
        400,
    );
}

#[test]
fn signed_content_length_is_400() {
    let setup = Setup::new();
    setup.rejects(
        &setup.request("POST", "Content-Length: +5\r\n", "hello"),
        400,
    );
    setup.rejects(
        &setup.request("POST", "Content-Length: -5\r\n", "hello"),
        400,
    );
}

#[test]
fn non_digit_content_length_is_400() {
    let setup = Setup::new();
    for value in ["abc", "5a", "0x5", "1.0", "5 5"] {
        setup.rejects(
            &setup.request("POST", &format!("Content-Length: {value}\r\n"), "hello"),
            400,
        );
    }
}

#[test]
fn empty_content_length_is_400() {
    let setup = Setup::new();
    setup.rejects(&setup.request("POST", "Content-Length: \r\n", "hello"), 400);
}

#[test]
fn overflowing_content_length_is_400() {
    let setup = Setup::new();
    let raw = setup.request(
        "POST",
        "Content-Length: 99999999999999999999999999\r\n",
        "hello",
    );
    setup.rejects(&raw, 400);
}

#[test]
fn transfer_coding_other_than_chunked_is_501() {
    let setup = Setup::new();
    setup.rejects(
        &setup.request("POST", "Transfer-Encoding: gzip\r\n", "hello"),
        501,
    );
    setup.rejects(
        &setup.request("POST", "Transfer-Encoding: chunked, gzip\r\n", "hello"),
        501,
    );
}

#[test]
fn coding_before_chunked_is_501() {
    // The final coding is chunked, but larder decodes no other coding.
    let setup = Setup::new();
    let raw = setup.request(
        "POST",
        "Transfer-Encoding: gzip, chunked\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
    );
    setup.rejects(&raw, 501);
}

#[test]
fn whitespace_before_colon_is_400() {
    let setup = Setup::new();
    setup.rejects(&setup.request("GET", "X-Spaced : value\r\n", ""), 400);
    setup.rejects(&setup.request("GET", "X-Tabbed\t: value\r\n", ""), 400);
}

#[test]
fn obs_fold_is_400() {
    let setup = Setup::new();
    setup.rejects(
        &setup.request("GET", "X-Folded: first\r\n  continued\r\n", ""),
        400,
    );
    setup.rejects(
        &setup.request("GET", "X-Folded: first\r\n\tcontinued\r\n", ""),
        400,
    );
}

#[test]
fn bare_cr_in_head_is_400() {
    let setup = Setup::new();
    setup.rejects(&setup.request("GET", "X-Value: a\rb\r\n", ""), 400);
}

#[test]
fn nul_and_control_bytes_in_head_are_400() {
    let setup = Setup::new();
    for byte in ['\0', '\x01', '\x1b'] {
        setup.rejects(
            &setup.request("GET", &format!("X-Value: a{byte}b\r\n"), ""),
            400,
        );
    }
    setup.rejects(&setup.request("GET", "X-Na\0me: value\r\n", ""), 400);
}

#[test]
fn bare_lf_in_chunk_line_is_400() {
    let setup = Setup::new();
    let raw = setup.request(
        "POST",
        "Transfer-Encoding: chunked\r\n",
        "5\nhello\r\n0\r\n\r\n",
    );
    setup.rejects_body(&raw, 400);
}

#[test]
fn non_hex_chunk_size_is_400() {
    let setup = Setup::new();
    let raw = setup.request(
        "POST",
        "Transfer-Encoding: chunked\r\n",
        "zz\r\nhello\r\n0\r\n\r\n",
    );
    setup.rejects_body(&raw, 400);
}

#[test]
fn over_long_chunk_line_is_400() {
    let setup = Setup::new();
    let body = format!("5;ext={}\r\nhello\r\n0\r\n\r\n", "x".repeat(5000));
    let raw = setup.request("POST", "Transfer-Encoding: chunked\r\n", &body);
    setup.rejects_body(&raw, 400);
}

#[test]
fn http09_request_line_is_rejected() {
    let setup = Setup::new();
    let raw = format!("GET {}\r\n\r\n", setup.origin.url("/"));
    let mut client = setup.proxy.client();
    client.send(raw.as_bytes());
    let response = client.read_response();
    assert!(
        [400, 505].contains(&response.status),
        "HTTP/0.9 request answered {}",
        response.status
    );
    assert!(response.is_close());
    client.expect_closed();
    assert_eq!(setup.origin.requests(), 0);
}

#[test]
fn versions_other_than_10_and_11_are_505() {
    let setup = Setup::new();
    for version in ["HTTP/2.0", "HTTP/1.2"] {
        let raw = format!(
            "GET {} {version}\r\nHost: {}\r\n\r\n",
            setup.origin.url("/"),
            setup.origin.authority()
        );
        setup.rejects(raw.as_bytes(), 505);
    }
}

#[test]
fn userinfo_in_target_is_400() {
    let setup = Setup::new();
    for userinfo in ["user:secret@", "user@"] {
        let raw = format!(
            "GET http://{userinfo}{}/ HTTP/1.1\r\n\r\n",
            setup.origin.authority()
        );
        setup.rejects(raw.as_bytes(), 400);
    }
}

#[test]
fn ports_outside_1_to_65535_are_400() {
    let setup = Setup::new();
    for port in ["0", "65536", "99999999999"] {
        let raw = format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        setup.rejects(raw.as_bytes(), 400);
    }
}

#[test]
fn percent_encoded_host_is_400() {
    let setup = Setup::new();
    let raw = format!(
        "GET http://127.0.0.%31:{}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        setup.origin.port()
    );
    setup.rejects(raw.as_bytes(), 400);
}

#[test]
fn origin_form_target_is_for_larder_itself_never_forwarded() {
    // The Host names a real origin: larder must still not act as a reverse proxy. A
    // request in origin form is for larder's own pages, and this path is not one.
    let setup = Setup::new();
    let raw = format!(
        "GET /path HTTP/1.1\r\nHost: {}\r\n\r\n",
        setup.origin.authority()
    );
    let mut client = setup.proxy.client();
    client.send(raw.as_bytes());
    let response = client.read_response();
    assert_eq!(response.status, 404, "{}", response.text());
    assert_eq!(
        setup.origin.requests(),
        0,
        "an origin-form request was forwarded"
    );
}

#[test]
fn request_line_over_8k_is_414() {
    let setup = Setup::new();
    let raw = format!(
        "GET {}{} HTTP/1.1\r\nHost: {}\r\n\r\n",
        setup.origin.url("/"),
        "a".repeat(9 * 1024),
        setup.origin.authority()
    );
    setup.rejects(raw.as_bytes(), 414);
}

#[test]
fn head_of_64k_is_431() {
    let setup = Setup::new();
    let fields: String = (0..10)
        .map(|i| format!("X-Big-{i}: {}\r\n", "b".repeat(7000)))
        .collect();
    setup.rejects(&setup.request("GET", &fields, ""), 431);
}

#[test]
fn three_hundred_fields_are_431() {
    let setup = Setup::new();
    let fields: String = (0..300).map(|i| format!("X-F{i}: v\r\n")).collect();
    setup.rejects(&setup.request("GET", &fields, ""), 431);
}

#[test]
fn hundred_fields_in_10k_pass() {
    let setup = Setup::new();
    // Host, User-Agent and 98 more: 100 fields, about 10 KiB.
    let mut fields = String::from("User-Agent: larder-tests\r\n");
    for i in 0..98 {
        fields.push_str(&format!("X-Field-{i:02}: {}\r\n", "v".repeat(88)));
    }
    let raw = setup.request("GET", &fields, "");
    assert!(raw.len() >= 10_000, "head is only {} bytes", raw.len());
    let mut client = setup.proxy.client();
    client.send(&raw);
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "reached the origin");
    let request = &setup.origin.seen()[0];
    for i in 0..98 {
        assert!(
            request.header(&format!("x-field-{i:02}")).is_some(),
            "X-Field-{i:02} lost"
        );
    }
}

#[test]
fn upstream_head_over_64k_is_502() {
    let origin = Origin::start(|_| {
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..70 {
            reply.extend_from_slice(format!("X-Big-{i}: {}\r\n", "u".repeat(1000)).as_bytes());
        }
        reply.extend_from_slice(b"Content-Length: 6\r\n\r\nsecret");
        Reply::SendClose(reply)
    });
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/")).as_bytes());
    let response = client.read_response();
    assert_eq!(response.status, 502);
    assert_eq!(response.header("x-big-0"), None);
}

/// No input may take larder down: a panic in the loop would drop every user's
/// connections. Hundreds of damaged requests (bytes overwritten, inserted, removed,
/// cut short) each get a well-formed HTTP answer or a close, and afterwards larder
/// still serves a normal request.
///
/// The damage never touches a target's authority (nor the bytes around it): a
/// mutated `127.0.0.1` could name a public address or a host name, and tests send
/// nothing beyond loopback, not even DNS queries. As a second guard this larder
/// refuses every IPv4 destination outside 127.0.0.0/8.
#[test]
fn mutated_requests_never_take_larder_down() {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Shutdown, TcpStream};

    // IPv4 outside 127.0.0.0/8. (No IPv6 rule: `::/0` would match IPv4-mapped
    // addresses, loopback included, and the guarded authority is IPv4.)
    const NOT_LOOPBACK: [&str; 8] = [
        "0.0.0.0/2",
        "64.0.0.0/3",
        "96.0.0.0/4",
        "112.0.0.0/5",
        "120.0.0.0/6",
        "124.0.0.0/7",
        "126.0.0.0/8",
        "128.0.0.0/1",
    ];
    let mut args = Vec::new();
    for cidr in NOT_LOOPBACK {
        args.extend(["--block-ip", cidr]);
    }
    let origin = Origin::start(|_| Reply::Send(ok(b"reached the origin")));
    let mut proxy = Proxy::start(&args);
    let target = origin.url("/p?q=1");
    let authority = origin.authority();
    let seeds = [
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"),
        format!("POST {target} HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
        format!(
            "PUT {target} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n"
        ),
        format!("GET {target} HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET {target} HTTP/1.1\r\n\r\n"),
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"),
        format!("HEAD {target} HTTP/1.1\r\nExpect: 100-continue\r\nVia: 1.0 a, 1.1 b\r\n\r\n"),
    ];
    // Positions whose change could alter a destination: each authority, the
    // `http://` and space before it, and the byte after it.
    let guarded = |input: &[u8], at: usize| {
        input
            .windows(authority.len())
            .enumerate()
            .filter(|(_, w)| *w == authority.as_bytes())
            .any(|(start, _)| at + 8 >= start && at <= start + authority.len() + 1)
    };
    let alphabet = b" \t\r\n:;,/@%[]#?\x00\x7f\xff0123456789abcdefHTTP/.-";
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..400 {
        let mut input = seeds[i % seeds.len()].clone().into_bytes();
        for _ in 0..1 + next() % 6 {
            let at = (next() % input.len() as u64) as usize;
            if guarded(&input, at) {
                continue;
            }
            let byte = alphabet[(next() % alphabet.len() as u64) as usize];
            match next() % 3 {
                0 => input[at] = byte,
                1 => input.insert(at, byte),
                _ => {
                    input.remove(at);
                }
            }
        }
        let cut = input.len() - (next() % 4 == 0) as usize * (next() as usize % input.len());
        let mut conn = TcpStream::connect(proxy.addr()).expect("connect to larder");
        conn.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        conn.set_write_timeout(Some(WAIT_LIMIT)).unwrap();
        // larder may answer and close before reading everything: ignore write errors.
        let _ = conn.write_all(&input[..cut]);
        let _ = conn.shutdown(Shutdown::Write);
        // The input is whole and the client has said it sends no more, so larder must
        // answer or close: a connection left hanging fails the test, a reset is a close.
        let mut answer = Vec::new();
        match conn.read_to_end(&mut answer) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => panic!(
                "input {:?}: no close within {WAIT_LIMIT:?} ({e}); got {:?}",
                String::from_utf8_lossy(&input[..cut]),
                String::from_utf8_lossy(&answer)
            ),
        }
        if !answer.is_empty() {
            let status_line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
            let ok = status_line.len() >= 12
                && status_line.starts_with(b"HTTP/1.")
                && status_line[9..12].iter().all(u8::is_ascii_digit);
            assert!(
                ok,
                "input {:?} got a malformed answer {:?}",
                String::from_utf8_lossy(&input[..cut]),
                String::from_utf8_lossy(&answer)
            );
        }
        proxy.assert_alive();
    }
    let response = proxy.get(&target);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"reached the origin");
}
