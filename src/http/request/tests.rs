use super::*;
use crate::http::fuzz;
use crate::http::testing::{self as generate, mutate, next_u64};

fn via() -> ViaName {
    ViaName::new("larder-abcd1234".into())
}

fn parse(text: &str) -> Result<Option<Request>, HttpError> {
    parse_request(text.as_bytes(), &Limits::default(), &via())
}

fn ok(text: &str) -> Request {
    parse(text).expect("valid").expect("complete")
}

fn err(text: &str) -> HttpError {
    parse(text).expect_err("should be rejected")
}

fn head(req: &Request) -> &str {
    std::str::from_utf8(&req.upstream_head).unwrap()
}

const BROWSER: &str = "GET http://Example.com/index.html?q=1 HTTP/1.1\r\n\
    Host: example.com\r\n\
    User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
    Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n\
    Accept-Language: en-US,en;q=0.5\r\n\
    Accept-Encoding: gzip, deflate\r\n\
    Proxy-Connection: keep-alive\r\n\
    Upgrade-Insecure-Requests: 1\r\n\
    \r\n";

/// Past the eight tokens kept on the stack, every further one still counts.
#[test]
fn connection_tokens_beyond_the_stack_are_kept_in_order() {
    let mut t = ConnectionTokens::new();
    t.add(b"a, b,c");
    assert_eq!(t.as_slice(), [&b"a"[..], b"b", b"c"]);
    t.add(b"d,e,f,g,h, i");
    t.add(b"j");
    let all: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"i", b"j"];
    assert_eq!(t.as_slice(), all.as_slice());
    let head = "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: f1, f2, f3, f4, f5\r\n\
        Connection: f6, f7, f8, f9, f10\r\nF1: x\r\nF9: x\r\nF10: x\r\nKept: y\r\n\r\n";
    let up = ok(head);
    let text = std::str::from_utf8(&up.upstream_head).unwrap_or_default();
    assert!(text.contains("Kept: y"), "{text}");
    for gone in ["F1:", "F9:", "F10:", "Connection"] {
        assert!(!text.contains(gone), "{gone} in {text}");
    }
}

/// The cache skips a second look at heads with neither flag, so each must be set
/// by its fields in any case, and by nothing else.
#[test]
fn cache_directives_conditionals_and_ranges_are_noted() {
    let req = ok(BROWSER);
    assert!(!req.directives && !req.conditional && !req.range);
    for (field, directives, conditional, range) in [
        ("CACHE-control: no-cache", true, false, false),
        ("Pragma: no-cache", true, false, false),
        ("if-None-Match: \"x\"", false, true, false),
        (
            "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT",
            false,
            true,
            false,
        ),
        ("X-Cache-Control: no-cache", false, false, false),
        ("Iff: 1", false, false, false),
        ("RANGE: bytes=0-", false, false, true),
        ("If-Range: \"x\"", false, true, false),
        ("Ranges: 1", false, false, false),
    ] {
        let req = ok(&format!(
            "GET http://a/if-x HTTP/1.1\r\nHost: a\r\n{field}\r\n\r\n"
        ));
        assert_eq!(
            (req.directives, req.conditional, req.range),
            (directives, conditional, range),
            "{field}"
        );
    }
}

#[test]
fn parses_typical_browser_request() {
    let req = ok(BROWSER);
    assert_eq!(req.method, Method::Get);
    assert_eq!(req.version, Version::Http11);
    assert_eq!(
        req.target.display_url(),
        "http://example.com/index.html?q=1"
    );
    assert_eq!(req.body, BodyKind::None);
    assert!(req.keep_alive);
    assert!(!req.expect_continue);
    assert_eq!(req.head_len, BROWSER.len());
    assert_eq!(
        head(&req),
        "GET /index.html?q=1 HTTP/1.1\r\n\
         Host: example.com\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
         Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n\
         Accept-Language: en-US,en;q=0.5\r\n\
         Accept-Encoding: gzip, deflate\r\n\
         Upgrade-Insecure-Requests: 1\r\n\
         Via: 1.1 larder-abcd1234\r\n\
         \r\n"
    );
}

#[test]
fn head_len_excludes_following_bytes() {
    let text = format!("{BROWSER}GET http://next/ HTTP/1.1\r\n");
    assert_eq!(ok(&text).head_len, BROWSER.len());
}

#[test]
fn every_prefix_is_incomplete() {
    for end in 0..BROWSER.len() {
        assert_eq!(parse(&BROWSER[..end]), Ok(None), "prefix of {end} bytes");
    }
}

#[test]
fn strips_hop_by_hop_fields() {
    let req = ok("GET http://a/ HTTP/1.1\r\n\
        Connection: X-Hop, keep-alive\r\n\
        connection: x-other\r\n\
        X-Hop: 1\r\nX-Other: 2\r\nKeep-Alive: timeout=5\r\nProxy-Connection: close\r\n\
        TE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\n\
        Proxy-Authorization: Basic eDp5\r\nX-Kept: yes\r\n\r\n");
    assert_eq!(
        head(&req),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Kept: yes\r\nVia: 1.1 larder-abcd1234\r\n\r\n"
    );
}

#[test]
fn host_comes_from_the_target() {
    let req = ok("GET http://a.example:8080/p HTTP/1.1\r\nHost: other.example\r\n\r\n");
    assert!(head(&req).starts_with("GET /p HTTP/1.1\r\nHost: a.example:8080\r\n"));
    assert!(!head(&req).contains("other.example"));
}

#[test]
fn missing_host_is_fine_for_absolute_form() {
    let req = ok("GET http://a/ HTTP/1.1\r\n\r\n");
    assert!(head(&req).contains("\r\nHost: a\r\n"));
}

#[test]
fn rejects_more_than_one_host() {
    assert_eq!(
        err("GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status,
        400
    );
}

#[test]
fn field_values_are_trimmed_and_names_kept() {
    let req = ok("GET http://a/ HTTP/1.1\r\nx-Custom:   spaced value \t\r\nEmpty:\r\n\r\n");
    assert!(head(&req).contains("\r\nx-Custom: spaced value\r\nEmpty: \r\n"));
}

#[test]
fn obs_text_in_values_is_allowed() {
    let mut text = b"GET http://a/ HTTP/1.1\r\nX-Name: caf".to_vec();
    text.extend_from_slice(b"\xe9\r\n\r\n");
    let req = parse_request(&text, &Limits::default(), &via())
        .unwrap()
        .unwrap();
    assert!(req.upstream_head.windows(5).any(|w| w == b"caf\xe9\r"));
}

#[test]
fn leading_empty_line_is_skipped() {
    let text = format!("\r\n{BROWSER}");
    assert_eq!(ok(&text).head_len, text.len());
}

#[test]
fn content_length_body() {
    let req =
        ok("POST http://a/f HTTP/1.1\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\nhello");
    assert_eq!(req.body, BodyKind::Length(5));
    assert_eq!(
        head(&req),
        "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nVia: 1.1 larder-abcd1234\r\n\r\n"
    );
}

#[test]
fn content_length_zero_is_forwarded() {
    let req = ok("POST http://a/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(req.body, BodyKind::Length(0));
    assert!(head(&req).contains("\r\nContent-Length: 0\r\n"));
}

#[test]
fn chunked_body() {
    let req = ok("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(req.body, BodyKind::Chunked);
    assert!(
        head(&req).ends_with("\r\nTransfer-Encoding: chunked\r\nVia: 1.1 larder-abcd1234\r\n\r\n")
    );
}

#[test]
fn rejects_content_length_with_transfer_encoding() {
    let e =
        err("POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(
        e,
        HttpError::new(400, "both Content-Length and Transfer-Encoding")
    );
}

#[test]
fn rejects_differing_content_length() {
    for cl in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
    ] {
        let e = err(&format!("POST http://a/ HTTP/1.1\r\n{cl}\r\n\r\n"));
        assert_eq!(e, HttpError::new(400, "differing Content-Length values"));
    }
}

#[test]
fn rejects_malformed_content_length() {
    for value in [
        "+5",
        "-1",
        "5x",
        "0x10",
        "",
        "99999999999999999999",
        "1 2",
        "5,",
    ] {
        let e = err(&format!(
            "POST http://a/ HTTP/1.1\r\nContent-Length: {value}\r\n\r\n"
        ));
        assert_eq!(e.status, 400, "{value:?}");
    }
}

#[test]
fn rejects_unsupported_transfer_coding() {
    for te in [
        "gzip",
        "gzip, chunked",
        "chunked, gzip",
        "chunked;x=1",
        "identity",
    ] {
        let e = err(&format!(
            "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n"
        ));
        assert_eq!(
            e,
            HttpError::new(501, "unsupported transfer-coding"),
            "{te}"
        );
    }
    let e = err(
        "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(e.status, 501);
}

#[test]
fn rejects_chunked_twice() {
    let e = err("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
    assert_eq!(e, HttpError::new(400, "chunked applied more than once"));
    let e = err("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e.status, 400);
}

#[test]
fn rejects_empty_transfer_encoding() {
    assert_eq!(
        err("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n").status,
        400
    );
}

#[test]
fn rejects_transfer_encoding_in_http10() {
    let e = err("POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e.status, 400);
}

#[test]
fn rejects_whitespace_before_colon() {
    let e = err("GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n");
    assert_eq!(
        e,
        HttpError::new(400, "whitespace before colon in a field line")
    );
    assert_eq!(
        err("GET http://a/ HTTP/1.1\r\nX-A\t: a\r\n\r\n").status,
        400
    );
}

#[test]
fn rejects_obs_fold() {
    let e = err("GET http://a/ HTTP/1.1\r\nX-A: a\r\n  folded\r\n\r\n");
    assert_eq!(
        e,
        HttpError::new(400, "obs-fold (a folded field line) is not allowed")
    );
    assert_eq!(
        err("GET http://a/ HTTP/1.1\r\nX-A: a\r\n\tfolded\r\n\r\n").status,
        400
    );
}

#[test]
fn rejects_bare_cr() {
    assert_eq!(
        err("GET http://a/ HTTP/1.1\r\nX-A: a\rb\r\n\r\n").status,
        400
    );
    assert_eq!(err("GET http://a/ HTTP/1.1\rX-A: a\r\n\r\n").status, 400);
    assert_eq!(
        err("GET http://a/ HTTP/1.1\r\nX-A: a\r\n\r\r\n").status,
        400
    );
}

#[test]
fn rejects_nul_and_control_bytes_in_values() {
    // The parser leaves this rule to httparse: every control byte but HTAB, and DEL,
    // wherever it lies in a value (short and long ones: httparse reads values in
    // vectors of 32 bytes, then in words, then bytes).
    let controls = (0u8..0x20).filter(|b| !b"\t\r\n".contains(b)).chain([0x7f]);
    for byte in controls {
        for len in [1, 2, 7, 8, 9, 31, 32, 33, 40, 64, 70] {
            for at in 0..len {
                let mut value = vec![b'v'; len];
                value[at] = byte;
                let mut text = b"GET http://a/ HTTP/1.1\r\nX-A: ".to_vec();
                text.extend_from_slice(&value);
                text.extend_from_slice(b"\r\nHost: a\r\n\r\n");
                let e = parse_request(&text, &Limits::default(), &via()).unwrap_err();
                let why = "invalid byte in a field value";
                assert_eq!(
                    (e.status, e.detail),
                    (400, why),
                    "{byte:#x} at {at} of {len}"
                );
            }
        }
    }
}

/// The look at each line's end finds a bare LF exactly where a pass over every
/// byte does, and httparse lets no control byte through: on generated and mutated
/// heads, many with LFs and control bytes where they do not belong, each also with
/// one of its CRLFs made a bare LF.
#[test]
fn line_ends_are_checked_as_a_whole_scan_would() {
    let alphabet = b"\r\n\n\n \t:\x00\x01\x1f\x7f\xffa";
    let mut rng = 0x2545_f491_4f6c_dd1d;
    let (mut accepted, mut bare) = (0, 0);
    let inputs = generate::heads(
        0x9e37_79b9_7f4a_7c15,
        3000,
        generate::request_head,
        alphabet,
    );
    for (_, input) in inputs {
        let crlfs: Vec<usize> = (1..input.len())
            .filter(|&i| input[i - 1..=i] == *b"\r\n")
            .collect();
        let mut one_lf = input.clone();
        if !crlfs.is_empty() {
            one_lf.remove(crlfs[next_u64(&mut rng) as usize % crlfs.len()] - 1);
        }
        for input in [input, one_lf] {
            let mut req = httparse::Request::new(&mut []);
            let mut stack = [const { MaybeUninit::uninit() }; STACK_SLOTS];
            let mut heap = Vec::new();
            let slots = header_slots(&mut stack, &mut heap, 64);
            let Ok(httparse::Status::Complete(n)) =
                strict_config().parse_request_with_uninit_headers(&mut req, &input, slots)
            else {
                continue;
            };
            accepted += 1;
            let scan = scan_head(&input[..n]);
            let text = String::from_utf8_lossy(&input[..n]);
            assert!(!scan.control, "{text:?}");
            assert_eq!(bare_lf(&input, n, &req), scan.bare_lf, "{text:?}");
            bare += usize::from(scan.bare_lf);
        }
    }
    assert!(
        accepted > 2000 && bare > 500,
        "{accepted} accepted, {bare} with a bare LF"
    );
    // Empty lines before the request line, which the look per line leaves to the scan.
    for text in [
        "\r\nGET http://a/ HTTP/1.1\r\n\r\n",
        "\nGET http://a/ HTTP/1.1\r\n\r\n",
    ] {
        let bare = text.starts_with('\n');
        assert_eq!(parse(text).is_err(), bare, "{text:?}");
    }
}

#[test]
fn rejects_control_bytes_in_names_and_request_line() {
    assert_eq!(err("GET http://a/ HTTP/1.1\r\nX\0A: b\r\n\r\n").status, 400);
    assert_eq!(err("GET http://a/\x01 HTTP/1.1\r\n\r\n").status, 400);
    assert_eq!(err("G\0T http://a/ HTTP/1.1\r\n\r\n").status, 400);
}

#[test]
fn classify_agrees_with_the_lists() {
    for (list, class) in [
        (&HOP_BY_HOP[..], NameClass::HopByHop),
        (&NOT_FORWARDED[..], NameClass::NotForwarded),
    ] {
        for name in list {
            assert_eq!(classify(name.as_bytes()), Some(class), "{name}");
            let upper = name.to_ascii_uppercase();
            assert_eq!(classify(upper.as_bytes()), Some(class), "{upper}");
        }
    }
    // Same lengths as listed names, and near misses.
    for name in [
        "tf",
        "hose",
        "trailed",
        "connexion",
        "keep-alivf",
        "content-lengtx",
        "date",
        "",
    ] {
        assert_eq!(classify(name.as_bytes()), None, "{name}");
    }
}

#[test]
fn field_lines_come_out_the_same_copied_or_written() {
    // Plain lines are copied in runs; padded or unusual ones are written anew.
    // Either way the relayed head must read as write_field would write it.
    let text = "GET http://a/ HTTP/1.1\r\nA: 1\r\nB: 2\r\nC:3\r\nD:  4 \r\nE: \r\nF: 6\r\nHost: a\r\nG: 7\r\nH:\t8\r\n\r\n";
    let want = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: \r\nF: 6\r\nG: 7\r\nH: 8\r\nVia: 1.1 larder-abcd1234\r\n\r\n";
    assert_eq!(head(&ok(text)), want);
}

#[test]
fn head_scan_finds_each_byte_wherever_it_lies() {
    // The scan works in 32-byte chunks and a tail: a byte must be found at every
    // offset, on both sides of a chunk's edge.
    for len in [1, 31, 32, 33, 64, 70] {
        for at in 0..len {
            for (byte, control) in [(0u8, true), (0x1f, true), (0x7f, true), (b'\t', false)] {
                let mut head = vec![b'a'; len];
                head[at] = byte;
                assert_eq!(
                    scan_head(&head).control,
                    control,
                    "{byte:#x} at {at} of {len}"
                );
            }
            let mut head = vec![b'a'; len];
            head[at] = b'\n';
            assert!(scan_head(&head).bare_lf, "LF at {at} of {len}");
            if at + 1 < len {
                head[at] = b'\r';
                head[at + 1] = b'\n';
                assert!(!scan_head(&head).bare_lf, "CRLF at {at} of {len}");
            }
        }
    }
    // 300 CRLFs: the per-chunk byte counters must not wrap.
    let many = "\r\n".repeat(300);
    assert!(!scan_head(many.as_bytes()).bare_lf);
}

#[test]
fn rejects_bare_lf_line_endings() {
    for text in [
        "GET http://a/ HTTP/1.1\nHost: a\r\n\r\n",
        "GET http://a/ HTTP/1.1\r\nHost: a\n\r\n",
        "GET http://a/ HTTP/1.1\r\nHost: a\r\n\n",
        "\nGET http://a/ HTTP/1.1\r\n\r\n",
    ] {
        let e = err(text);
        assert_eq!(e.status, 400, "{text:?}");
        assert!(e.detail.contains("bare LF"), "{text:?}");
    }
}

#[test]
fn rejects_userinfo_percent_host_and_bad_port() {
    assert!(err("GET http://u:p@a/ HTTP/1.1\r\n\r\n")
        .detail
        .contains("userinfo"));
    assert!(err("GET http://%61/ HTTP/1.1\r\n\r\n")
        .detail
        .contains("percent"));
    assert_eq!(err("GET http://a:0/ HTTP/1.1\r\n\r\n").status, 400);
    assert_eq!(err("GET http://a:65536/ HTTP/1.1\r\n\r\n").status, 400);
    assert_eq!(err("CONNECT a:99999 HTTP/1.1\r\n\r\n").status, 400);
}

#[test]
fn rejects_non_ascii_target() {
    assert_eq!(
        parse_request(
            b"GET http://a/\xc3\xa9 HTTP/1.1\r\n\r\n",
            &Limits::default(),
            &via()
        )
        .unwrap_err()
        .status,
        400
    );
}

#[test]
fn origin_form_is_a_request_for_larder_itself_with_the_host_field() {
    let req = ok("GET /metrics?x=1 HTTP/1.1\r\nHost: Proxy.LAN:3128\r\n\r\n");
    assert!(req.target.is_origin_form());
    assert_eq!(req.target.host_header(), "proxy.lan:3128");
    assert_eq!(req.target.path_and_query(), "/metrics?x=1");
    let e = err("GET /index.html HTTP/1.1\r\n\r\n");
    assert_eq!(
        e,
        HttpError::new(400, "a request for the proxy itself needs a Host field")
    );
    for host in ["a b", "a@b", "[::1", "a:99999", ""] {
        let e = err(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(e.status, 400, "{host:?}");
    }
}

/// HTTP/1.0 does not require Host, and a load balancer's default health check sends
/// `GET /health HTTP/1.0` without one.
#[test]
fn an_http_1_0_request_for_larder_itself_may_leave_host_out() {
    let req = ok("GET /health HTTP/1.0\r\n\r\n");
    assert!(req.target.is_origin_form());
    assert_eq!(req.target.host_header(), "larder");
    assert_eq!(req.target.path_and_query(), "/health");
}

#[test]
fn rejects_https_absolute_target() {
    let e = err("GET https://a/ HTTP/1.1\r\n\r\n");
    assert_eq!(e.detail, "https:// targets go through CONNECT");
}

#[test]
fn rejects_connect_without_authority_form() {
    for target in ["http://a:443/", "/x", "*", "a"] {
        let e = err(&format!("CONNECT {target} HTTP/1.1\r\n\r\n"));
        assert_eq!(e.status, 400, "{target}");
    }
}

#[test]
fn rejects_authority_form_and_asterisk_without_connect() {
    assert_eq!(err("GET a:80 HTTP/1.1\r\n\r\n").status, 400);
    assert_eq!(err("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
}

#[test]
fn rejects_http09() {
    assert_eq!(err("GET http://a/\r\n\r\n").status, 400);
    assert_eq!(err("GET /\r\n").status, 400);
}

#[test]
fn rejects_other_versions_with_505() {
    for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"] {
        let e = err(&format!("GET http://a/ {version}\r\nHost: a\r\n\r\n"));
        assert_eq!(e.status, 505, "{version}");
    }
    assert_eq!(err("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").status, 505);
}

#[test]
fn wrong_version_split_across_reads_waits_then_505() {
    assert_eq!(parse("GET http://a/ HTTP/2"), Ok(None));
    assert_eq!(parse("GET http://a/ HTTP/2.0\r"), Ok(None));
    assert_eq!(err("GET http://a/ HTTP/2.0\r\n").status, 505);
}

#[test]
fn garbage_version_is_400_not_505() {
    for line in [
        "GET http://a/ FOO/1.1",
        "GET http://a/ HTTP/11",
        "GET http://a/ HTTP/1.1.1",
        "GET http://a/ http/1.1",
        "GET http://a/  HTTP/1.1",
        "GET http://a/ HTTP/2.0 x",
    ] {
        assert_eq!(err(&format!("{line}\r\n\r\n")).status, 400, "{line}");
    }
    assert_eq!(err("GET http://a/ XTTP").status, 400);
}

#[test]
fn a_request_line_without_a_version_is_refused_before_the_head_ends() {
    // HTTP/0.9 style: the client sends the line alone and waits for an answer.
    for line in ["GET http://a/ \r\n", "GET http://a/\r\n", "GET /\r\n"] {
        assert_eq!(err(line).status, 400, "{line:?}");
    }
    let partial = parse_request(
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n",
        &Limits::default(),
        &ViaName::new("v".into()),
    );
    assert_eq!(partial, Ok(None));
}

#[test]
fn rejects_multiple_spaces_in_request_line() {
    assert_eq!(err("GET  http://a/ HTTP/1.1\r\n\r\n").status, 400);
    assert_eq!(err("GET http://a/ HTTP/1.1 \r\n\r\n").status, 400);
}

#[test]
fn detects_loop_through_own_via() {
    for value in [
        "1.1 larder-abcd1234",
        "1.0 foo, 1.1 larder-abcd1234 (comment)",
        "1.1 LARDER-ABCD1234",
        "HTTP/1.1 larder-abcd1234",
    ] {
        let e = err(&format!("GET http://a/ HTTP/1.1\r\nVia: {value}\r\n\r\n"));
        assert_eq!(e, HttpError::new(508, "loop detected"), "{value}");
    }
    let e = err("GET http://a/ HTTP/1.1\r\nVia: 1.0 a\r\nVia: 1.1 larder-abcd1234\r\n\r\n");
    assert_eq!(e.status, 508);
}

#[test]
fn other_via_entries_are_forwarded() {
    let req = ok(
        "GET http://a/ HTTP/1.1\r\nVia: 1.1 larder-00000000, 1.0 proxy (larder-abcd1234)\r\n\r\n",
    );
    assert!(head(&req).ends_with(
        "Via: 1.1 larder-00000000, 1.0 proxy (larder-abcd1234)\r\nVia: 1.1 larder-abcd1234\r\n\r\n"
    ));
}

#[test]
fn request_line_too_long_is_414() {
    let limits = Limits {
        request_line: 30,
        ..Limits::default()
    };
    // "GET http://a/" + path + " HTTP/1.1" is 22 bytes plus the path.
    let request = |path: &str| format!("GET http://a/{path} HTTP/1.1\r\n\r\n");
    let at_limit = request(&"x".repeat(8));
    assert!(parse_request(at_limit.as_bytes(), &limits, &via())
        .unwrap()
        .is_some());
    let over = request(&"x".repeat(9));
    let e = parse_request(over.as_bytes(), &limits, &via()).unwrap_err();
    assert_eq!(e, HttpError::new(414, "request line too long"));
}

#[test]
fn incomplete_request_line_too_long_is_414() {
    let text = format!("GET http://a/{}", "x".repeat(8 * 1024));
    assert_eq!(err(&text).status, 414);
    assert_eq!(parse(&text[..8 * 1024]), Ok(None));
}

#[test]
fn head_too_large_is_431() {
    let limits = Limits {
        head: 100,
        ..Limits::default()
    };
    // The head without padding is 31 bytes: "GET http://a/ HTTP/1.1\r\nX: \r\n\r\n".
    let request = |pad: usize| format!("GET http://a/ HTTP/1.1\r\nX: {}\r\n\r\n", "p".repeat(pad));
    assert_eq!(request(68).len(), 99);
    assert!(parse_request(request(68).as_bytes(), &limits, &via())
        .unwrap()
        .is_some());
    let e = parse_request(request(69).as_bytes(), &limits, &via()).unwrap_err();
    assert_eq!(e, HttpError::new(431, "request head too large"));
}

#[test]
fn incomplete_head_too_large_is_431() {
    let text = format!("GET http://a/ HTTP/1.1\r\nX-Pad: {}", "x".repeat(64 * 1024));
    assert_eq!(err(&text).status, 431);
    // Endless empty lines before a request are bounded the same way.
    assert_eq!(err(&"\r\n".repeat(32 * 1024)).status, 431);
}

#[test]
fn too_many_fields_is_431() {
    let fields: String = (0..256).map(|i| format!("X-F{i}: v\r\n")).collect();
    let e = err(&format!("GET http://a/ HTTP/1.1\r\n{fields}\r\n"));
    assert_eq!(e, HttpError::new(431, "too many header fields"));
    let fields: String = (0..255).map(|i| format!("X-F{i}: v\r\n")).collect();
    assert!(parse(&format!("GET http://a/ HTTP/1.1\r\n{fields}\r\n"))
        .unwrap()
        .is_some());
}

#[test]
fn field_limit_above_the_stack_slots_works() {
    let limits = Limits {
        fields: 1000,
        ..Limits::default()
    };
    let fields: String = (0..999).map(|i| format!("X-F{i}: v\r\n")).collect();
    let text = format!("GET http://a/ HTTP/1.1\r\n{fields}\r\n");
    assert!(parse_request(text.as_bytes(), &limits, &via())
        .unwrap()
        .is_some());
    let text = format!("GET http://a/ HTTP/1.1\r\n{fields}X-Last: v\r\n\r\n");
    assert_eq!(
        parse_request(text.as_bytes(), &limits, &via())
            .unwrap_err()
            .status,
        431
    );
}

#[test]
fn hundred_fields_in_ten_kib_pass() {
    let value = "v".repeat(90);
    let fields: String = (0..100)
        .map(|i| format!("X-Field-{i:03}: {value}\r\n"))
        .collect();
    let text = format!("GET http://a/ HTTP/1.1\r\n{fields}\r\n");
    assert!(text.len() >= 10 * 1024);
    let req = ok(&text);
    assert_eq!(req.head_len, text.len());
}

#[test]
fn keep_alive_rules() {
    assert!(ok("GET http://a/ HTTP/1.1\r\n\r\n").keep_alive);
    assert!(!ok("GET http://a/ HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!ok("GET http://a/ HTTP/1.1\r\nConnection: Keep-Alive, Close\r\n\r\n").keep_alive);
    assert!(!ok("GET http://a/ HTTP/1.0\r\n\r\n").keep_alive);
    assert!(ok("GET http://a/ HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    let req = ok("GET http://a/ HTTP/1.0\r\n\r\n");
    assert_eq!(req.version, Version::Http10);
    assert!(head(&req).starts_with("GET / HTTP/1.1\r\n"));
}

#[test]
fn expect_continue_flag() {
    let req = ok("PUT http://a/ HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
    assert!(req.expect_continue);
    assert!(head(&req).contains("\r\nExpect: 100-Continue\r\n"));
    assert!(!ok("PUT http://a/ HTTP/1.1\r\nExpect: other\r\n\r\n").expect_continue);
}

#[test]
fn connect_request() {
    let req = ok("CONNECT Example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: x\r\n\r\n");
    assert_eq!(req.method, Method::Connect);
    assert!(req.target.is_authority());
    assert_eq!((req.target.host(), req.target.port()), ("example.com", 443));
    assert_eq!(req.body, BodyKind::None);
    assert!(req.upstream_head.is_empty());
    let req = ok("CONNECT [::1]:443 HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(req.body, BodyKind::None);
}

#[test]
fn rejects_connect_with_content() {
    let e = err("CONNECT a:443 HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd");
    assert_eq!(e, HttpError::new(400, "CONNECT request with content"));
}

#[test]
fn connect_is_still_loop_checked() {
    let e = err("CONNECT a:443 HTTP/1.1\r\nVia: 1.1 larder-abcd1234\r\n\r\n");
    assert_eq!(e.status, 508);
}

#[test]
fn extension_methods_pass_through() {
    let req = ok("PROPFIND http://a/dav HTTP/1.1\r\nDepth: 1\r\n\r\n");
    assert_eq!(req.method, Method::Other("PROPFIND".into()));
    assert!(head(&req).starts_with("PROPFIND /dav HTTP/1.1\r\n"));
}

/// xorshift64: a few thousand mutated heads without a fuzzing crate.

#[test]
fn mutated_requests_never_panic() {
    let seeds = [
        BROWSER,
        "POST http://[::1]:8080/x?y HTTP/1.1\r\nContent-Length: 5, 5\r\nConnection: x\r\nX: y\r\n\r\nhello",
        "PUT http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\nVia: 1.1 larder-abcd1234\r\n\r\n",
        "CONNECT a.b:443 HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    ];
    let alphabet = b" \t\r\n:,;/@%[]#?\x00\x7f\xff0123456789HTTP/.";
    let limits = Limits {
        request_line: 40,
        head: 300,
        fields: 6,
        ..Limits::default()
    };
    let mut rng = 0x2545_f491_4f6c_dd1d;
    for i in 0..4000 {
        let mut input = seeds[i % seeds.len()].as_bytes().to_vec();
        mutate(&mut input, &mut rng, alphabet);
        let cut = (next_u64(&mut rng) % (input.len() as u64 + 1)) as usize;
        let _ = parse_request(&input[..cut], &limits, &via());
        let _ = parse_request(&input, &Limits::default(), &via());
    }
}

/// Generated request heads, every other one mutated, each followed by what a
/// client's buffer may hold after a head.
fn generated_requests(seed: u64, n: usize) -> Vec<(bool, Vec<u8>)> {
    let alphabet = b" \t\r\n:,;/@%[]#?.\x00\x7f\xffHTTP/1.0";
    generate::heads(seed, n, generate::request_head, alphabet)
}

#[test]
fn a_complete_request_head_parses_the_same_with_more_bytes_after_it() {
    let tight = Limits {
        request_line: 40,
        head: 200,
        fields: 6,
        ..Limits::default()
    };
    let (mut complete, mut mutated_complete) = (0, 0);
    let inputs = generated_requests(0x2545_f491_4f6c_dd1d, 1000);
    for (mutated, input) in &inputs {
        let whole = fuzz::request_prefixes_parse_alike(input, &Limits::default());
        if whole.is_ok_and(|r| r.is_some()) {
            complete += 1;
            mutated_complete += usize::from(*mutated);
        }
        fuzz::request_prefixes_parse_alike(input, &tight).ok();
    }
    // The property says nothing about heads that never complete: most must.
    assert!(complete > inputs.len() / 2, "{complete} complete");
    assert!(mutated_complete > inputs.len() / 10, "{mutated_complete}");
}

#[test]
fn an_accepted_request_head_written_out_again_parses_the_same() {
    let (mut accepted, mut mutated_accepted) = (0, 0);
    let inputs = generated_requests(0x853c_49e6_748f_ea9b, 1000);
    for (mutated, input) in &inputs {
        if fuzz::request_round_trip(input, &Limits::default()) {
            accepted += 1;
            mutated_accepted += usize::from(*mutated);
        }
    }
    assert!(accepted > inputs.len() / 2, "{accepted} accepted");
    assert!(mutated_accepted > inputs.len() / 10, "{mutated_accepted}");
}

#[test]
fn credentials_are_found_and_never_forwarded() {
    let text = "GET http://a/ HTTP/1.1\r\nProxy-Authorization:  Basic dTpw \r\n\
        Authorization: Basic eDp5\r\n\r\n";
    let req = ok(text);
    let (s, e) = req.proxy_authorization.unwrap();
    assert_eq!(&text[s..e], "Basic dTpw");
    let (s, e) = req.authorization.unwrap();
    assert_eq!(&text[s..e], "Basic eDp5");
    // Authorization is the origin's business and goes up; Proxy-Authorization never.
    assert!(!head(&req).contains("dTpw"), "{}", head(&req));
    assert!(head(&req).contains("Authorization: Basic eDp5\r\n"));
    assert_eq!(
        ok("GET http://a/ HTTP/1.1\r\n\r\n").proxy_authorization,
        None
    );
}

#[test]
fn two_proxy_credentials_are_refused() {
    let two = "GET http://a/ HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\n\
        proxy-authorization: Basic eDp5\r\n\r\n";
    assert_eq!(err(two).status, 400);
    let two = "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic dTpw\r\n\
        Authorization: Basic eDp5\r\n\r\n";
    assert_eq!(err(two).status, 400);
}
