//! A Range request that misses is fetched whole (`--range-whole-below`): the origin is
//! asked for the whole object without Range, larder stores it and sends the client its
//! part of it as a 206 while the rest is read; later ranges are hits. Ranges past the
//! limit, suffixes and several ranges go up as asked and are not stored; If-Range is
//! judged against the whole response; a body of unknown length is sent whole; an
//! origin that answers 206 anyway is relayed; a client that leaves mid-part leaves the
//! fetch going on (and stored) only when the rest is short.
//!
//! Every "not contacting the origin" is checked by counting the origin's requests, and
//! every "fetched whole" by the Range fields the origin saw.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::caching::{after_gate, head, response};
use crate::support::{
    pattern, request, wait_for_log_lines, wait_until, Client, Gate, Origin, Proxy, Reply, Request,
    Response, TempFile,
};

/// The ETag every answer of [`range_origin`] carries.
const ETAG: &str = "\"v1\"";

/// The fields of every answer of [`range_origin`]: fresh for ten minutes, one strong
/// validator.
const FIELDS: [(&str, &str); 3] = [
    ("Cache-Control", "max-age=600"),
    ("ETag", ETAG),
    ("Content-Type", "application/octet-stream"),
];

/// The answer of a file server holding `body`: a 206 of the part a `Range: bytes=a-`,
/// `bytes=a-b` (a to the end when b is past it) or `bytes=-n` asks for, a multipart
/// 206 for several ranges, else a 200 with all of it.
pub(crate) fn file_answer(body: &[u8], request: &Request) -> Vec<u8> {
    let len = body.len();
    let Some(set) = request
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
    else {
        return response("200 OK", &FIELDS, body);
    };
    let spans: Vec<(usize, usize)> = set
        .split(',')
        .filter_map(|spec| {
            let (first, last) = spec.trim().split_once('-')?;
            if first.is_empty() {
                let suffix: usize = last.parse().ok()?;
                return Some((len - suffix.min(len), len - 1));
            }
            let first: usize = first.parse().ok()?;
            let last = last.parse().map_or(len - 1, |l: usize| l.min(len - 1));
            (first <= last).then_some((first, last))
        })
        .collect();
    match spans.as_slice() {
        [(first, last)] => {
            let range = format!("bytes {first}-{last}/{len}");
            let mut fields = FIELDS.to_vec();
            fields.push(("Content-Range", &range));
            response("206 Partial Content", &fields, &body[*first..=*last])
        }
        [] => response("200 OK", &FIELDS, body),
        several => {
            let mut parts = Vec::new();
            for (first, last) in several {
                parts.extend_from_slice(
                    format!("--B\r\nContent-Range: bytes {first}-{last}/{len}\r\n\r\n").as_bytes(),
                );
                parts.extend_from_slice(&body[*first..=*last]);
                parts.extend_from_slice(b"\r\n");
            }
            parts.extend_from_slice(b"--B--\r\n");
            let fields = [
                ("Cache-Control", "max-age=600"),
                ("ETag", ETAG),
                ("Content-Type", "multipart/byteranges; boundary=B"),
            ];
            response("206 Partial Content", &fields, &parts)
        }
    }
}

/// An origin that serves `body` at every path as [`file_answer`] does.
pub(crate) fn range_origin(body: Vec<u8>) -> Origin {
    Origin::start(move |request| Reply::Send(file_answer(&body, request)))
}

/// Sends a GET of `url` with `fields` on `client` and reads the answer.
fn get_on(client: &mut Client, url: &str, fields: &[(&str, &str)]) -> Response {
    client.send(request("GET", url, fields).as_bytes());
    client.read_response()
}

/// Sends a GET of `url` with `fields` on a new connection and reads the answer.
fn get(proxy: &Proxy, url: &str, fields: &[(&str, &str)]) -> Response {
    get_on(&mut proxy.client(), url, fields)
}

/// The Range field of every request the origin saw, in order.
fn ranges_seen(origin: &Origin) -> Vec<Option<String>> {
    origin
        .seen()
        .iter()
        .map(|r| r.header("range").map(str::to_owned))
        .collect()
}

/// Asserts `answer` is the 206 of bytes `first..end` of `body`.
fn assert_part(answer: &Response, body: &[u8], first: usize, end: usize) {
    let text = String::from_utf8_lossy(&answer.raw[..answer.raw.len() - answer.body.len()]);
    assert_eq!(answer.status, 206, "head:\n{text}");
    let range = format!("bytes {first}-{}/{}", end - 1, body.len());
    assert_eq!(
        answer.header("content-range"),
        Some(range.as_str()),
        "{text}"
    );
    assert_eq!(
        answer.header("content-length"),
        Some((end - first).to_string().as_str()),
        "{text}"
    );
    assert!(
        answer.body == body[first..end],
        "the body of the 206 is not bytes {first}..{end}; head:\n{text}"
    );
}

/// The members of larder's Cache-Status entry, e.g. `["fwd=miss", "stored"]`.
fn cache_status(answer: &Response) -> Vec<String> {
    answer
        .header("cache-status")
        .unwrap_or_default()
        .split(';')
        .map(|m| m.trim().to_owned())
        .filter(|m| m != "larder")
        .collect()
}

#[test]
fn a_range_miss_fetches_the_whole_object_and_later_ranges_hit() {
    let body = pattern(50_000);
    let origin = range_origin(body.clone());
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/whole");
    // One connection throughout: a 206 framed wrong would break the next answer.
    let mut client = proxy.client();
    let first = get_on(&mut client, &url, &[("Range", "bytes=1000-1999")]);
    assert_part(&first, &body, 1000, 2000);
    assert_eq!(cache_status(&first), ["fwd=miss", "stored"]);
    assert_eq!(
        ranges_seen(&origin),
        [None],
        "the whole object was not asked for"
    );

    for (range, first, end) in [
        ("bytes=1000-", 1000, 50_000),
        ("bytes=0-0", 0, 1),
        ("bytes=-10", 49_990, 50_000),
        ("bytes=49999-", 49_999, 50_000),
    ] {
        let hit = get_on(&mut client, &url, &[("Range", range)]);
        assert_part(&hit, &body, first, end);
        assert_eq!(cache_status(&hit)[0], "hit", "{range}");
    }
    assert!(get_on(&mut client, &url, &[]).body == body);
    assert_eq!(origin.requests(), 1);
}

/// A range that starts past the end of the object larder fetched whole is answered
/// 416, and the object is stored all the same.
#[test]
fn a_range_past_the_end_of_the_whole_object_is_416_and_the_object_stored() {
    let body = pattern(100);
    let origin = range_origin(body.clone());
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/short");
    let mut client = proxy.client();
    let answer = get_on(&mut client, &url, &[("Range", "bytes=500-")]);
    assert_eq!(answer.status, 416);
    assert_eq!(answer.header("content-range"), Some("bytes */100"));
    assert_eq!(answer.header("content-length"), Some("0"));
    assert_eq!(ranges_seen(&origin), [None]);
    let hit = get_on(&mut client, &url, &[]);
    assert!(hit.body == body);
    assert_eq!(cache_status(&hit)[0], "hit");
    assert_eq!(origin.requests(), 1);
}

/// `--range-whole-below SIZE`: a range from an offset below SIZE is fetched whole; one
/// from SIZE on goes up as asked, and its 206 is relayed and not stored.
#[test]
fn a_range_from_the_limit_on_goes_up_as_asked_and_is_not_stored() {
    let body = pattern(5000);
    let origin = range_origin(body.clone());
    let proxy = Proxy::start(&["--admit-after", "0", "--range-whole-below", "1K"]);
    let far = origin.url("/far");
    for round in 1..=2 {
        let answer = get(&proxy, &far, &[("Range", "bytes=1024-")]);
        assert_part(&answer, &body, 1024, 5000);
        assert_eq!(origin.requests(), round, "a relayed 206 was stored");
    }
    assert_eq!(
        ranges_seen(&origin),
        [
            Some("bytes=1024-".to_owned()),
            Some("bytes=1024-".to_owned())
        ]
    );

    let near = origin.url("/near");
    let answer = get(&proxy, &near, &[("Range", "bytes=1023-")]);
    assert_part(&answer, &body, 1023, 5000);
    assert_eq!(ranges_seen(&origin).last(), Some(&None));
    let hit = get(&proxy, &near, &[("Range", "bytes=4000-")]);
    assert_part(&hit, &body, 4000, 5000);
    assert_eq!(origin.requests(), 3);
}

/// `--range-whole-below 0` (here its environment twin) turns the whole fetch off.
#[test]
fn range_whole_below_0_sends_every_range_as_asked() {
    let body = pattern(3000);
    let origin = range_origin(body.clone());
    let proxy = Proxy::start_with_env(
        &["--admit-after", "0"],
        &[("LARDER_RANGE_WHOLE_BELOW", "0")],
    );
    let url = origin.url("/off");
    for round in 1..=2 {
        let answer = get(&proxy, &url, &[("Range", "bytes=0-")]);
        assert_part(&answer, &body, 0, 3000);
        assert_eq!(origin.requests(), round);
    }
    assert!(ranges_seen(&origin)
        .iter()
        .all(|r| r.as_deref() == Some("bytes=0-")));
}

/// A suffix (whose start depends on the length) and several ranges (a multipart
/// answer larder does not make) go up as asked, and their 206 is not stored.
#[test]
fn suffixes_and_several_ranges_go_up_as_asked() {
    let body = pattern(2000);
    let origin = range_origin(body.clone());
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/as-asked");
    let suffix = get(&proxy, &url, &[("Range", "bytes=-100")]);
    assert_part(&suffix, &body, 1900, 2000);
    let several = get(&proxy, &url, &[("Range", "bytes=0-9,100-109")]);
    assert_eq!(several.status, 206);
    assert_eq!(
        several.header("content-type"),
        Some("multipart/byteranges; boundary=B")
    );
    assert!(several.text().contains("Content-Range: bytes 100-109/2000"));
    let again = get(&proxy, &url, &[("Range", "bytes=-100")]);
    assert_part(&again, &body, 1900, 2000);
    assert_eq!(
        ranges_seen(&origin),
        [
            Some("bytes=-100".to_owned()),
            Some("bytes=0-9,100-109".to_owned()),
            Some("bytes=-100".to_owned())
        ],
        "a Range was changed on its way up, or an answer stored"
    );
}

/// If-Range goes up with Range neither: it is judged against the whole response
/// (RFC 9110 §13.1.5), so a matching validator gets the part and another the whole
/// body; the object is stored either way.
#[test]
fn if_range_is_judged_against_the_whole_response() {
    let body = pattern(4000);
    let origin = range_origin(body.clone());
    let proxy = Proxy::start(&["--admit-after", "0"]);

    let matching = origin.url("/if-range-matching");
    let answer = get(
        &proxy,
        &matching,
        &[("Range", "bytes=100-"), ("If-Range", ETAG)],
    );
    assert_part(&answer, &body, 100, 4000);

    let other = origin.url("/if-range-other");
    let answer = get(
        &proxy,
        &other,
        &[("Range", "bytes=100-"), ("If-Range", "\"v0\"")],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-range"), None);
    assert!(answer.body == body);

    for request in origin.seen() {
        assert_eq!(request.header("range"), None, "{}", request.target);
        assert_eq!(request.header("if-range"), None, "{}", request.target);
    }
    let hit = get(&proxy, &other, &[("Range", "bytes=3990-")]);
    assert_part(&hit, &body, 3990, 4000);
    assert_eq!(origin.requests(), 2);
}

/// A whole object of unknown length (chunked) cannot be cut into a 206 before its end:
/// the client gets all of it with 200, which RFC 9110 §14.2 allows, and it is stored.
#[test]
fn a_chunked_whole_object_is_sent_whole_with_200_then_ranges_hit() {
    let body = pattern(30_000);
    let chunked = {
        let mut out = head(
            "200 OK",
            &[
                ("Cache-Control", "max-age=600"),
                ("Transfer-Encoding", "chunked"),
            ],
        );
        for chunk in body.chunks(7000) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    };
    let origin = Origin::start(move |_| Reply::Send(chunked.clone()));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/chunked");
    let mut client = proxy.client();
    let first = get_on(&mut client, &url, &[("Range", "bytes=100-")]);
    assert_eq!(first.status, 200);
    assert!(first.body == body, "the whole body, de-chunked");
    let hit = get_on(&mut client, &url, &[("Range", "bytes=100-199")]);
    assert_part(&hit, &body, 100, 200);
    assert_eq!(ranges_seen(&origin), [None]);
}

/// An origin that answers 206 to a request without Range: the answer is relayed as
/// it came, and not stored.
#[test]
fn a_206_to_a_whole_fetch_is_relayed_and_not_stored() {
    let origin = Origin::start(|_| {
        let fields = [
            ("Cache-Control", "max-age=600"),
            ("Content-Range", "bytes 0-9/100"),
        ];
        Reply::Send(response("206 Partial Content", &fields, b"0123456789"))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/partial-anyway");
    for round in 1..=2 {
        let answer = get(&proxy, &url, &[("Range", "bytes=5-")]);
        assert_eq!(answer.status, 206);
        assert_eq!(answer.header("content-range"), Some("bytes 0-9/100"));
        assert_eq!(answer.text(), "0123456789");
        assert_eq!(origin.requests(), round);
    }
    assert_eq!(ranges_seen(&origin), [None, None]);
}

/// An origin that sends `body` whole (fresh, with its length) and stalls after the
/// first `sent` bytes of it until `gate` opens, on its first answer only.
fn stalling_range_origin(body: &[u8], sent: usize, gate: &Arc<Gate>) -> Origin {
    let answers = AtomicUsize::new(0);
    let reply = response("200 OK", &FIELDS, body);
    let split = reply.len() - (body.len() - sent);
    let gate = Arc::clone(gate);
    Origin::start(move |_| {
        if answers.fetch_add(1, Ordering::SeqCst) > 0 {
            return Reply::Send(reply.clone());
        }
        let (reply, gate) = (reply.clone(), Arc::clone(&gate));
        Reply::Stream(Box::new(move |stream: &mut TcpStream| {
            stream.write_all(&reply[..split])?;
            gate.wait();
            stream.write_all(&reply[split..])
        }))
    })
}

/// A client that leaves while the whole object is still coming: when what is left
/// to fetch is at most `--range-whole-below`, the fetch goes on and the object is
/// stored (a resumed download resumes again from the cache); the client's line in
/// the access log says it left.
#[test]
fn a_client_leaving_a_whole_fetch_with_a_short_rest_leaves_it_stored() {
    let body = pattern(100_000);
    let gate = Gate::new();
    let origin = stalling_range_origin(&body, 30_000, &gate);
    let log = TempFile::new("range-left.log");
    let proxy = Proxy::start(&[
        "--admit-after",
        "0",
        "--access-log",
        log.arg(),
        "--log-level",
        "debug",
    ]);
    let url = origin.url("/left-short");
    let mut client = proxy.client();
    client.send(request("GET", &url, &[("Range", "bytes=1000-")]).as_bytes());
    assert_eq!(client.read_head().status, 206);
    client.close_with_reset();
    assert!(
        wait_until(|| proxy.stderr().contains("client left; fetching on to store")),
        "larder did not go on without the client; stderr:\n{}",
        proxy.stderr()
    );
    gate.open();
    let lines = wait_for_log_lines(&log, 1);
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains(" TCP_MISS_ABORTED/206 ")),
        "{lines:?}"
    );
    let hit = get(&proxy, &url, &[("Range", "bytes=90000-")]);
    assert_part(&hit, &body, 90_000, 100_000);
    assert_eq!(cache_status(&hit)[0], "hit");
    assert_eq!(origin.requests(), 1);
}

/// A client that leaves while more than `--range-whole-below` is still to come: the
/// fetch ends, nothing (and nothing cut short) is stored, and the next request
/// fetches the object whole again.
#[test]
fn a_client_leaving_a_whole_fetch_with_a_long_rest_abandons_it() {
    let body = pattern(100_000);
    let gate = Gate::new();
    let origin = stalling_range_origin(&body, 30_000, &gate);
    let log = TempFile::new("range-abandoned.log");
    let proxy = Proxy::start(&[
        "--admit-after",
        "0",
        "--access-log",
        log.arg(),
        "--range-whole-below",
        "50K",
    ]);
    let url = origin.url("/left-long");
    let mut client = proxy.client();
    client.send(request("GET", &url, &[("Range", "bytes=1000-")]).as_bytes());
    assert_eq!(client.read_head().status, 206);
    client.close_with_reset();
    let lines = wait_for_log_lines(&log, 1);
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains(" TCP_MISS_ABORTED/206 ")),
        "{lines:?}"
    );
    // A fetch that went on regardless would finish now, and be stored.
    gate.open();
    let again = get(&proxy, &url, &[("Range", "bytes=1000-")]);
    assert_part(&again, &body, 1000, 100_000);
    assert_eq!(origin.requests(), 2, "the abandoned fetch was stored");
    assert_eq!(ranges_seen(&origin), [None, None]);
    let hit = get(&proxy, &url, &[]);
    assert!(hit.body == body);
    assert_eq!(origin.requests(), 2);
}

/// A stale entry revalidated for a Range request, replaced by a new 200: the client
/// gets its part of the new body.
#[test]
fn a_revalidation_for_a_range_that_brings_a_new_body_answers_the_range_from_it() {
    let served = AtomicUsize::new(0);
    let origin = Origin::start(move |_| {
        let (tag, text): (&str, &[u8]) = match served.fetch_add(1, Ordering::SeqCst) {
            0 => ("\"old\"", b"old old old old"),
            _ => ("\"new\"", b"0123456789abcdef"),
        };
        let fields = [("Cache-Control", "max-age=0"), ("ETag", tag)];
        Reply::Send(response("200 OK", &fields, text))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/renewed");
    assert_eq!(get(&proxy, &url, &[]).text(), "old old old old");
    let answer = get(&proxy, &url, &[("Range", "bytes=10-")]);
    assert_part(&answer, b"0123456789abcdef", 10, 16);
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("range"), None);
    assert_eq!(seen[1].header("if-none-match"), Some("\"old\""));
}

/// Plain GETs that come while a Range request's whole fetch is under way share it
/// (they read the body as it is stored), and so does a second Range request (it gets
/// its part of the stored object): the origin sees one request.
#[test]
fn requests_that_come_during_a_whole_fetch_share_it() {
    let body = pattern(20_000);
    let gate = Gate::new();
    let reply = response("200 OK", &FIELDS, &body);
    let held = Arc::clone(&gate);
    let origin = Origin::start(move |_| after_gate(&held, reply.clone()));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/shared");
    let mut first = proxy.client();
    first.send(request("GET", &url, &[("Range", "bytes=5000-")]).as_bytes());
    assert!(
        wait_until(|| origin.requests() == 1),
        "the fetch did not start"
    );
    let later: Vec<(Client, &str)> = ["", "bytes=100-199", ""]
        .into_iter()
        .map(|range| {
            let mut client = proxy.client();
            let fields: &[(&str, &str)] = if range.is_empty() {
                &[]
            } else {
                &[("Range", range)]
            };
            client.send(request("GET", &url, fields).as_bytes());
            client.wait_until_read();
            (client, range)
        })
        .collect();
    gate.open();
    assert_part(&first.read_response(), &body, 5000, 20_000);
    for (mut client, range) in later {
        let answer = client.read_response();
        if range.is_empty() {
            assert_eq!(answer.status, 200);
            assert!(answer.body == body, "a plain GET got a wrong body");
        } else {
            assert_part(&answer, &body, 100, 200);
        }
    }
    assert_eq!(origin.requests(), 1);
    assert_eq!(ranges_seen(&origin), [None]);
}
