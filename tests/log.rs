//! The access log: one line per request in Squid's native format.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{
    dead_port, ok, request, wait_for_log_lines, Origin, Proxy, Reply, Server, TempFile,
};

/// Checks the fields every line has: time with milliseconds (close to now), elapsed
/// milliseconds, client address, byte count, and `-` for the user.
fn check_common_fields(fields: &[&str], line: &str) {
    assert_eq!(fields.len(), 10, "not 10 fields: {line}");
    let (secs, millis) = fields[0]
        .split_once('.')
        .unwrap_or_else(|| panic!("time: {line}"));
    assert_eq!(millis.len(), 3, "time needs milliseconds: {line}");
    assert!(millis.bytes().all(|b| b.is_ascii_digit()), "time: {line}");
    let secs: u64 = secs.parse().unwrap_or_else(|_| panic!("time: {line}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        secs.abs_diff(now) < 60,
        "time {secs} is not now ({now}): {line}"
    );
    assert!(fields[1].parse::<u64>().is_ok(), "elapsed: {line}");
    assert_eq!(fields[2], "127.0.0.1", "client: {line}");
    assert!(
        fields[4].parse::<u64>().is_ok_and(|n| n > 0),
        "bytes: {line}"
    );
    assert_eq!(fields[7], "-", "user: {line}");
}

#[test]
fn access_log_records_get_connect_and_denied_requests() {
    let origin = Origin::start(|_| Reply::Send(ok(b"logged body")));
    let tunnel_end = Server::start(|mut stream| {
        use std::io::{Read, Write};
        let mut buf = [0u8; 64];
        if let Ok(n) = stream.read(&mut buf) {
            let _ = stream.write_all(&buf[..n]);
        }
    });
    let log = TempFile::new("access.log");
    let port = tunnel_end.port().to_string();
    let proxy = Proxy::start(&[
        "--access-log",
        log.arg(),
        "--block",
        "blocked.test",
        "--connect-ports",
        &port,
    ]);

    let url = origin.url("/a");
    assert_eq!(proxy.get(&url).status, 200);

    let mut tunnel = proxy.client();
    let authority = tunnel_end.authority();
    tunnel.send(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes());
    assert_eq!(tunnel.read_response_for("CONNECT").status, 200);
    tunnel.send(b"hello");
    assert_eq!(tunnel.read_exact(5), b"hello");
    // The echo end closes after one read, so the tunnel ends and gets logged.
    tunnel.read_to_close();
    drop(tunnel);

    assert_eq!(proxy.get("http://blocked.test/").status, 403);

    let lines = wait_for_log_lines(&log, 3);
    assert_eq!(
        lines.len(),
        3,
        "log lines: {lines:#?}\nstderr:\n{}",
        proxy.stderr()
    );
    let find = |method: &str| {
        lines
            .iter()
            .find(|line| {
                line.split_whitespace().nth(5) == Some(method)
                    && !(method == "GET" && line.contains("blocked.test"))
            })
            .unwrap_or_else(|| panic!("no {method} line in {lines:#?}"))
    };

    let line = find("GET");
    let fields: Vec<&str> = line.split_whitespace().collect();
    check_common_fields(&fields, line);
    assert_eq!(fields[3], "TCP_MISS/200", "{line}");
    assert_eq!(fields[6], url, "{line}");
    assert_eq!(fields[8], "HIER_DIRECT/127.0.0.1", "{line}");
    assert_eq!(fields[9], "text/plain", "{line}");

    let line = find("CONNECT");
    let fields: Vec<&str> = line.split_whitespace().collect();
    check_common_fields(&fields, line);
    assert_eq!(fields[3], "TCP_TUNNEL/200", "{line}");
    assert_eq!(fields[6], authority, "{line}");
    assert_eq!(fields[8], "HIER_DIRECT/127.0.0.1", "{line}");
    assert_eq!(fields[9], "-", "{line}");

    let line = lines
        .iter()
        .find(|line| line.contains("blocked.test"))
        .unwrap_or_else(|| panic!("no line for the blocked request in {lines:#?}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    check_common_fields(&fields, line);
    assert_eq!(fields[3], "TCP_DENIED/403", "{line}");
    assert_eq!(fields[5], "GET", "{line}");
    assert_eq!(fields[6], "http://blocked.test/", "{line}");
    assert_eq!(fields[8], "HIER_NONE/-", "{line}");
    assert_eq!(fields[9], "text/html", "{line}");
}

/// The bytes field is what larder wrote to the client, head and body (and chunked
/// framing), to the byte: log tools add it up as the traffic served. Each request here
/// asks larder to close after its answer, and the count is checked against everything
/// the client read until then, for a miss, a hit, a HEAD hit, a 304 larder made
/// itself, a 304 relayed from the origin, a chunked miss, and error pages of larder's own.
#[test]
fn logged_bytes_are_exactly_what_the_client_received() {
    let origin = Origin::start(|request| {
        let body: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let reply = match request.target.as_str() {
            "/validated" => b"HTTP/1.1 304 Not Modified\r\nETag: \"v2\"\r\n\r\n".to_vec(),
            "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
                .to_vec(),
            _ => {
                let mut reply = format!(
                    "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: \"v1\"\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                reply.extend_from_slice(&body);
                reply
            }
        };
        Reply::Send(reply)
    });
    let log = TempFile::new("bytes.log");
    let proxy = Proxy::start(&[
        "--admit-after",
        "0",
        "--access-log",
        log.arg(),
        "--block",
        "blocked.test",
    ]);
    let page = origin.url("/page");
    let dead = format!("http://127.0.0.1:{}/", dead_port());
    // (method, URL, a field besides `Connection: close`, the logged outcome)
    type Field<'a> = (&'a str, &'a str);
    let cases: [(&str, &str, Option<Field>, &str); 8] = [
        ("GET", &page, None, "TCP_MISS/200"),
        ("GET", &page, None, "TCP_HIT/200"),
        ("HEAD", &page, None, "TCP_HIT/200"),
        (
            "GET",
            &page,
            Some(("If-None-Match", "\"v1\"")),
            "TCP_IMS_HIT/304",
        ),
        (
            "GET",
            &origin.url("/validated"),
            Some(("If-None-Match", "\"v2\"")),
            "TCP_MISS/304",
        ),
        ("GET", &origin.url("/chunked"), None, "TCP_MISS/200"),
        ("GET", &dead, None, "TCP_MISS/502"),
        ("GET", "http://blocked.test/", None, "TCP_DENIED/403"),
    ];
    let mut received = Vec::new();
    for (method, url, field, _) in &cases {
        let mut fields = vec![("Connection", "close")];
        fields.extend(field);
        let mut client = proxy.client();
        client.send(request(method, url, &fields).as_bytes());
        let bytes = client.read_to_close();
        assert!(
            bytes.starts_with(b"HTTP/1.1 "),
            "{method} {url}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        received.push(bytes.len());
    }
    let lines = wait_for_log_lines(&log, cases.len());
    assert_eq!(lines.len(), cases.len(), "{lines:#?}");
    for ((line, (method, url, _, code)), got) in lines.iter().zip(&cases).zip(&received) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (fields[3], fields[5], fields[6]),
            (*code, *method, *url),
            "{lines:#?}"
        );
        assert_eq!(
            fields[4],
            got.to_string(),
            "{method} {url} ({code}): logged bytes against bytes received: {line}"
        );
    }
}
