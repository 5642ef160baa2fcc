//! The HTTP cache seen from a client's socket: what gets stored (admission, storability,
//! complete bodies only), how stored responses are served (hits, HEAD, ranges, client
//! conditionals, request directives), revalidated, replaced and invalidated, how
//! concurrent misses share one upstream fetch, what survives a restart, and what the
//! `Cache-Status` field and the access log say about each answer.
//!
//! Every claim about "not contacting the origin" is checked by counting the requests the
//! scripted origin received. Most tests pass `--admit-after 0` so the first response is
//! stored; the admission tests themselves use the default or other values.

use std::io::{self, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{
    http_date, pattern, request, set_reset_on_close, wait_for_log_lines, wait_until, Client, Gate,
    Origin, Proxy, Reply, Request, Response, TempDir, TempFile,
};

// ---------------------------------------------------------------------------------------
// Helpers (regression.rs uses some of them for its caching faults)

/// The Last-Modified value of most stored responses (IMF-fixdate, long past).
const LAST_MODIFIED: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

/// Request or response fields as (name, value) pairs.
pub(crate) type Fields<'a> = &'a [(&'a str, &'a str)];

/// Unix seconds now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A response with status line `HTTP/1.1 {status}`, `fields`, a `Date` of now unless
/// `fields` has one, and `body` with its Content-Length.
pub(crate) fn response(status: &str, fields: Fields, body: &[u8]) -> Vec<u8> {
    let mut out = head(status, fields);
    // Replace the empty line by Content-Length and a new one.
    out.truncate(out.len() - 2);
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// A response head with `Date` added as in [`response`], and no framing field.
pub(crate) fn head(status: &str, fields: Fields) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    if !fields.iter().any(|(n, _)| n.eq_ignore_ascii_case("date")) {
        out.push_str(&format!("Date: {}\r\n", http_date(now_secs())));
    }
    for (name, value) in fields {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A 200 that is fresh for a minute.
pub(crate) fn fresh(body: &[u8]) -> Vec<u8> {
    response("200 OK", &[("Cache-Control", "max-age=60")], body)
}

/// An origin whose first answer is `fresh(body)` with all but its last 90,000 bytes
/// sent at once and the rest once `gate` opens; later answers are sent whole.
fn stalling_origin(body: &[u8], gate: &Arc<Gate>) -> Origin {
    let served = Arc::new(AtomicUsize::new(0));
    let full = body.to_vec();
    let gate = Arc::clone(gate);
    Origin::start(move |_| {
        let reply = fresh(&full);
        if served.fetch_add(1, Ordering::SeqCst) > 0 {
            return Reply::Send(reply);
        }
        let gate = Arc::clone(&gate);
        Reply::Stream(Box::new(move |stream: &mut TcpStream| {
            let split = reply.len() - 90_000;
            stream.write_all(&reply[..split])?;
            gate.wait();
            stream.write_all(&reply[split..])
        }))
    })
}

/// A reply that waits for `gate` to open, then sends `reply`: the origin "takes its
/// time" for exactly as long as the test needs.
pub(crate) fn after_gate(gate: &Arc<Gate>, reply: Vec<u8>) -> Reply {
    let gate = Arc::clone(gate);
    Reply::Stream(Box::new(move |stream: &mut TcpStream| {
        gate.wait();
        stream.write_all(&reply)
    }))
}

/// Sends one request on a new connection and reads its response.
fn fetch(proxy: &Proxy, method: &str, url: &str, fields: Fields) -> Response {
    let mut client = proxy.client();
    client.send(request(method, url, fields).as_bytes());
    client.read_response_for(method)
}

/// The members of larder's `Cache-Status` entry after its name, trimmed
/// (`larder; hit; ttl=5` → `["hit", "ttl=5"]`); empty if there is no such entry.
fn cache_status(response: &Response) -> Vec<String> {
    response
        .header_all("cache-status")
        .iter()
        .flat_map(|value| value.split(','))
        .map(|entry| {
            entry
                .split(';')
                .map(|member| member.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .find(|members| members.first().is_some_and(|name| name == "larder"))
        .map(|members| members.into_iter().skip(1).collect())
        .unwrap_or_default()
}

/// The response head as text, for failure messages.
pub(crate) fn head_text(response: &Response) -> String {
    let raw = String::from_utf8_lossy(&response.raw);
    raw.split("\r\n\r\n").next().unwrap_or("").to_owned()
}

/// Panics unless larder's Cache-Status entry has every member of `present` and none of
/// `absent`.
#[track_caller]
pub(crate) fn assert_cache_status(response: &Response, present: &[&str], absent: &[&str]) {
    let members = cache_status(response);
    for token in present {
        assert!(
            members.iter().any(|m| m == token),
            "Cache-Status lacks {token:?}; head:\n{}",
            head_text(response)
        );
    }
    for token in absent {
        assert!(
            !members.iter().any(|m| m == token),
            "Cache-Status has {token:?}; head:\n{}",
            head_text(response)
        );
    }
}

/// The `ttl=` member of larder's Cache-Status entry.
#[track_caller]
fn ttl(response: &Response) -> i64 {
    cache_status(response)
        .iter()
        .find_map(|m| m.strip_prefix("ttl="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ttl in Cache-Status; head:\n{}", head_text(response)))
}

/// The `Age` field as a number.
#[track_caller]
fn age(response: &Response) -> u64 {
    response
        .header("age")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no numeric Age; head:\n{}", head_text(response)))
}

/// Requests the origin received whose target is `target`.
fn requests_for(origin: &Origin, target: &str) -> Vec<Request> {
    origin
        .seen()
        .into_iter()
        .filter(|request| request.target == target)
        .collect()
}

/// `RESULT/STATUS METHOD URL` of a Squid-format log line (fields 4, 6 and 7).
fn outcome(line: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    match (fields.get(3), fields.get(5), fields.get(6)) {
        (Some(result), Some(method), Some(url)) => format!("{result} {method} {url}"),
        _ => panic!("not a Squid log line: {line}"),
    }
}

/// `body` in chunked framing, `chunk` bytes a chunk, with the terminating zero chunk.
pub(crate) fn chunked_body(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Sends one GET for `url` per entry of `langs` (its `Accept-Language`; none for ""),
/// each on its own connection; waits until larder has read every one of them and then
/// until `ready` holds (or its wait gives up: the test's assertions then say what went
/// wrong); opens `gate`, where the origin holds its answers; and returns the responses
/// in order. So every request is in larder's hands before any answer comes, however
/// slowly the machine runs, where starting them "at once" could not promise that.
pub(crate) fn gated_gets(
    proxy: &Proxy,
    url: &str,
    langs: &[&str],
    gate: &Gate,
    ready: impl FnMut() -> bool,
) -> Vec<Response> {
    let mut clients: Vec<Client> = langs
        .iter()
        .map(|lang| {
            let field = [("Accept-Language", *lang)];
            let fields = if lang.is_empty() { &[][..] } else { &field[..] };
            let mut client = proxy.client();
            client.send(request("GET", url, fields).as_bytes());
            client
        })
        .collect();
    for client in &clients {
        client.wait_until_read();
    }
    wait_until(ready);
    gate.open();
    clients.iter_mut().map(Client::read_response).collect()
}

// ---------------------------------------------------------------------------------------
// Admission

/// With the default `--admit-after 1` a one-off download never displaces anything: only
/// the second request within the window stores, and the third is served by larder.
#[test]
fn default_admission_stores_the_second_request_and_serves_the_third() {
    let origin = Origin::start(|_| Reply::Send(fresh(b"popular")));
    let proxy = Proxy::start(&[]);
    let url = origin.url("/popular");

    let first = proxy.get(&url);
    assert_eq!(first.text(), "popular");
    assert_cache_status(&first, &["fwd=miss"], &["stored", "hit"]);
    let second = proxy.get(&url);
    assert_eq!(second.text(), "popular");
    assert_cache_status(&second, &["fwd=miss", "stored"], &["hit"]);
    let third = proxy.get(&url);
    assert_eq!(third.status, 200);
    assert_eq!(third.text(), "popular");
    assert_cache_status(&third, &["hit"], &["fwd=miss"]);
    assert_eq!(origin.requests(), 2, "the third GET reached the origin");
}

#[test]
fn admit_after_zero_stores_on_first_sight() {
    let origin = Origin::start(|_| Reply::Send(fresh(b"first sight")));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/once");
    assert_cache_status(&proxy.get(&url), &["fwd=miss", "stored"], &[]);
    let hit = proxy.get(&url);
    assert_eq!(hit.text(), "first sight");
    assert_cache_status(&hit, &["hit"], &[]);
    assert_eq!(origin.requests(), 1);
}

#[test]
fn admit_after_two_stores_the_third_request() {
    let origin = Origin::start(|_| Reply::Send(fresh(b"third time")));
    let proxy = Proxy::start(&["--admit-after", "2"]);
    let url = origin.url("/thrice");
    for n in 1..=2 {
        let miss = proxy.get(&url);
        assert_cache_status(&miss, &["fwd=miss"], &["stored"]);
        assert_eq!(origin.requests(), n);
    }
    assert_cache_status(&proxy.get(&url), &["fwd=miss", "stored"], &[]);
    let hit = proxy.get(&url);
    assert_cache_status(&hit, &["hit"], &[]);
    assert_eq!(hit.text(), "third time");
    assert_eq!(origin.requests(), 3);
}

/// A request that comes longer than the window after the previous one does not count
/// towards admission with it: the run starts again.
#[test]
fn a_request_after_the_admission_window_starts_the_count_again() {
    let origin = Origin::start(|_| Reply::Send(fresh(b"windowed")));
    // The window is whole seconds (the table keeps unix seconds): a gap of more than two
    // seconds is past a one-second window wherever the clock's second boundaries fall.
    let proxy = Proxy::start(&["--admit-window", "1"]);
    let url = origin.url("/windowed");
    assert_cache_status(&proxy.get(&url), &["fwd=miss"], &["stored"]);
    thread::sleep(Duration::from_millis(2100));
    let late = proxy.get(&url);
    assert_cache_status(&late, &["fwd=miss"], &["stored"]);
    // Within the window of the late one: now it counts.
    assert_cache_status(&proxy.get(&url), &["fwd=miss", "stored"], &[]);
    assert_cache_status(&proxy.get(&url), &["hit"], &[]);
    assert_eq!(origin.requests(), 3);
}

#[test]
fn admission_and_object_size_flags_have_environment_twins() {
    let small = b"small".to_vec();
    let large = pattern(2000);
    let large_reply = fresh(&large);
    let origin = Origin::start(move |request| {
        Reply::Send(match request.target.as_str() {
            "/large" => large_reply.clone(),
            _ => fresh(&small),
        })
    });
    let proxy = Proxy::start_with_env(
        &[],
        &[
            ("LARDER_ADMIT_AFTER", "0"),
            ("LARDER_ADMIT_WINDOW", "5"),
            ("LARDER_CACHE_MAX_OBJECT", "1K"),
        ],
    );
    for _ in 0..2 {
        assert_eq!(proxy.get(&origin.url("/small")).text(), "small");
        assert!(proxy.get(&origin.url("/large")).body == large);
    }
    assert_eq!(requests_for(&origin, "/small").len(), 1);
    assert_eq!(requests_for(&origin, "/large").len(), 2);
}

// ---------------------------------------------------------------------------------------
// Hits and freshness

/// A hit is the stored response as the origin sent it (Date included, never rewritten),
/// with an Age that grows and a ttl that shrinks.
#[test]
fn a_hit_serves_the_stored_head_with_age_and_ttl() {
    let body = pattern(3000);
    let reply = response(
        "200 OK",
        &[
            ("Cache-Control", "max-age=60"),
            ("X-Custom", "kept  as sent"),
            ("Content-Type", "application/x-test"),
            ("Connection", "X-Origin-Private"),
            ("X-Origin-Private", "1"),
            ("Keep-Alive", "timeout=5"),
        ],
        &body,
    );
    let origin = Origin::start(move |_| Reply::Send(reply.clone()));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/aged");
    let miss = proxy.get(&url);
    assert!(miss.body == body);
    let date = miss
        .header("date")
        .expect("the origin sent a Date")
        .to_owned();

    // Age is in whole seconds; wait for it to reach at least 1.
    thread::sleep(Duration::from_millis(1100));
    let hit = proxy.get(&url);
    assert_eq!(hit.status, 200);
    assert!(hit.body == body, "the hit's body differs");
    assert_cache_status(&hit, &["hit"], &["fwd=miss"]);
    assert_eq!(
        hit.header("date"),
        Some(date.as_str()),
        "Date was rewritten"
    );
    assert_eq!(hit.header("x-custom"), Some("kept  as sent"));
    assert_eq!(hit.header("content-type"), Some("application/x-test"));
    assert_eq!(hit.header("content-length"), Some("3000"));
    // RFC 9111 §3.1: the origin's hop-by-hop fields are not part of the stored response.
    for name in ["x-origin-private", "keep-alive"] {
        assert_eq!(hit.header(name), None, "{name} served from the store");
    }
    let (age, ttl) = (age(&hit), ttl(&hit));
    assert!((1..=5).contains(&age), "Age {age} after ~1.1 s");
    assert!(
        (55..=59).contains(&ttl),
        "ttl {ttl} for max-age=60 at age {age}"
    );
    assert_eq!(origin.requests(), 1);
}

/// RFC 9111 §4.2.3: an Age the origin (or a cache before it) sent counts too.
#[test]
fn an_age_from_upstream_counts_towards_the_hit_age() {
    let origin = Origin::start(|_| {
        Reply::Send(response(
            "200 OK",
            &[("Cache-Control", "max-age=60"), ("Age", "30")],
            b"aged upstream",
        ))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/upstream-age");
    proxy.get(&url);
    let hit = proxy.get(&url);
    assert_cache_status(&hit, &["hit"], &[]);
    let (age, ttl) = (age(&hit), ttl(&hit));
    assert!((30..=35).contains(&age), "Age {age}, upstream said 30");
    assert!((25..=30).contains(&ttl), "ttl {ttl}, 60 - age 30");
}

/// RFC 9111 §5.1, §4.2.3: Age is delta-seconds. Of a list (one line or several)
/// the first member counts; a first member that is not a non-negative integer is
/// ignored. As cache-tests' age-parse-* tests: `7200, 0` with max-age=3600 is stale,
/// `0, 7200` and `3s` are fresh.
#[test]
fn the_first_age_member_counts_and_an_invalid_age_is_ignored() {
    let origin = Origin::start(|request| {
        let age = match request.target.as_str() {
            "/old-first" => "7200, 0",
            "/young-first" => "0, 7200",
            _ => "3s",
        };
        Reply::Send(response(
            "200 OK",
            &[("Cache-Control", "max-age=3600"), ("Age", age)],
            b"aged",
        ))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    for (path, hit) in [
        ("/old-first", false),
        ("/young-first", true),
        ("/invalid", true),
    ] {
        let second = fetch_twice(&proxy, &origin, path, "aged", hit);
        if hit {
            let age = age(&second);
            assert!(age <= 5, "{path}: Age {age}");
        }
    }
}

/// Gets `path` twice through `proxy`, checks both answers are `text`, and that the
/// second was a hit (`hit`: the origin was asked once) or not (asked twice). Returns
/// the second answer.
fn fetch_twice(proxy: &Proxy, origin: &Origin, path: &str, text: &str, hit: bool) -> Response {
    let url = origin.url(path);
    assert_eq!(proxy.get(&url).text(), text);
    let second = proxy.get(&url);
    assert_eq!(second.text(), text);
    let fetches = if hit { 1 } else { 2 };
    assert_eq!(
        requests_for(origin, path).len(),
        fetches,
        "{path}: origin requests; second response head:\n{}",
        head_text(&second)
    );
    if hit {
        assert_cache_status(&second, &["hit"], &[]);
    } else {
        assert_cache_status(&second, &[], &["hit"]);
    }
    second
}

/// RFC 9111 §5.3: an Expires that is not an HTTP-date is a time in the past. Dashes
/// in an IMF-fixdate and repeated spaces make it no date (cache-tests'
/// freshness-expires-invalid-date-dashes and -multiple-spaces), while the obsolete
/// RFC 850 and asctime forms of the same instant are dates (freshness-expires-rfc850,
/// -ansi-c).
#[test]
fn an_expires_outside_the_date_grammar_is_already_expired() {
    let origin = Origin::start(|request| {
        let expires = match request.target.as_str() {
            "/dashes" => "Thu, 18-Aug-2050 02:01:18 GMT",
            "/spaces" => "Thu, 18  Aug  2050 02:01:18 GMT",
            "/rfc850" => "Thursday, 18-Aug-50 02:01:18 GMT",
            _ => "Thu Aug 18 02:01:18 2050",
        };
        Reply::Send(response("200 OK", &[("Expires", expires)], b"expires"))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    for (path, hit) in [
        ("/dashes", false),
        ("/spaces", false),
        ("/rfc850", true),
        ("/asctime", true),
    ] {
        fetch_twice(&proxy, &origin, path, "expires", hit);
    }
}

/// Each source of freshness gives hits with the lifetime it implies, and an Expires that
/// is past or invalid gives none. The heuristic is 10% of Date − Last-Modified, at most
/// a day.
#[test]
fn freshness_comes_from_s_maxage_max_age_expires_or_last_modified() {
    let origin = Origin::start(|request| {
        let now = now_secs();
        let date = http_date(now);
        let ago = |days: u64| http_date(now - days * 86_400);
        let (in_a_minute, a_minute_ago) = (http_date(now + 60), http_date(now - 60));
        let (one_day, ten_days, hundred_days) = (ago(1), ago(10), ago(100));
        let field: (&str, &str) = match request.target.as_str() {
            "/s-maxage" => ("Cache-Control", "max-age=0, s-maxage=60"),
            "/expires" => ("Expires", &in_a_minute),
            "/heuristic" => ("Last-Modified", &ten_days),
            "/heuristic-short" => ("Last-Modified", &one_day),
            "/heuristic-capped" => ("Last-Modified", &hundred_days),
            "/expired" => ("Expires", &a_minute_ago),
            "/invalid-expires" => ("Expires", "0"),
            _ => ("Cache-Control", "max-age=60"),
        };
        Reply::Send(response("200 OK", &[field, ("Date", &date)], b"freshness"))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    // (path, ttl range of the hit; None: the second request must reach the origin)
    let cases: [(&str, Option<(i64, i64)>); 8] = [
        ("/max-age", Some((55, 60))),
        ("/s-maxage", Some((55, 60))),
        ("/expires", Some((55, 60))),
        ("/heuristic", Some((86_390, 86_400))),
        ("/heuristic-short", Some((8_630, 8_640))),
        ("/heuristic-capped", Some((86_390, 86_400))),
        ("/expired", None),
        ("/invalid-expires", None),
    ];
    for (path, ttl_range) in cases {
        let url = origin.url(path);
        assert_eq!(proxy.get(&url).text(), "freshness");
        let second = proxy.get(&url);
        assert_eq!(second.text(), "freshness");
        let fetches = if ttl_range.is_some() { 1 } else { 2 };
        assert_eq!(
            requests_for(&origin, path).len(),
            fetches,
            "{path}: origin requests; second response head:\n{}",
            head_text(&second)
        );
        match ttl_range {
            Some((low, high)) => {
                assert_cache_status(&second, &["hit"], &[]);
                let ttl = ttl(&second);
                assert!((low..=high).contains(&ttl), "{path}: ttl {ttl}");
            }
            None => assert_cache_status(&second, &[], &["hit"]),
        }
    }
}

#[test]
fn urls_differing_only_in_the_query_are_different_entries() {
    let origin = Origin::start(|request| Reply::Send(fresh(request.target.as_bytes())));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    for _ in 0..2 {
        assert_eq!(proxy.get(&origin.url("/q?x=1")).text(), "/q?x=1");
        assert_eq!(proxy.get(&origin.url("/q?x=2")).text(), "/q?x=2");
        assert_eq!(proxy.get(&origin.url("/q")).text(), "/q");
    }
    assert_eq!(origin.requests(), 3);
}

// ---------------------------------------------------------------------------------------
// What is never stored

/// RFC 9111 §3 and the contract's additions: each of these is fetched from the origin
/// every time, while the controls (a heuristically fresh 404; Authorization with public,
/// s-maxage or must-revalidate) are stored.
#[test]
fn responses_that_may_not_be_stored_reach_the_origin_every_time() {
    const FRESH: (&str, &str) = ("Cache-Control", "max-age=60");
    let origin = Origin::start(|request| {
        let ten_days_ago = http_date(now_secs() - 10 * 86_400);
        let old = ("Last-Modified", ten_days_ago.as_str());
        let cc = |value| ("Cache-Control", value);
        let (status, fields) = match request.target.as_str() {
            "/set-cookie" => ("200 OK", vec![FRESH, ("Set-Cookie", "id=1")]),
            "/no-store" => ("200 OK", vec![cc("no-store, max-age=60")]),
            "/private" => ("200 OK", vec![cc("private, max-age=60")]),
            "/vary-star" => ("200 OK", vec![FRESH, ("Vary", "*")]),
            "/partial" => (
                "206 Partial Content",
                vec![FRESH, ("Content-Range", "bytes 0-7/100")],
            ),
            "/error-500" => ("500 Internal Server Error", vec![old]),
            "/not-found" => ("404 Not Found", vec![old]),
            "/auth-public" => ("200 OK", vec![cc("public, max-age=60")]),
            "/auth-s-maxage" => ("200 OK", vec![cc("s-maxage=60")]),
            "/auth-must-revalidate" => ("200 OK", vec![cc("max-age=60, must-revalidate")]),
            _ => ("200 OK", vec![FRESH]),
        };
        Reply::Send(response(status, &fields, request.target.as_bytes()))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let auth = ("Authorization", "Basic dXNlcjpwYXNz");
    let request_no_store = ("Cache-Control", "no-store");
    let cases = [
        ("/set-cookie", None, 2),
        ("/no-store", None, 2),
        ("/private", None, 2),
        ("/vary-star", None, 2),
        ("/partial", None, 2),
        ("/error-500", None, 2),
        ("/auth", Some(auth), 2),
        ("/request-no-store", Some(request_no_store), 2),
        ("/not-found", None, 1),
        ("/auth-public", Some(auth), 1),
        ("/auth-s-maxage", Some(auth), 1),
        ("/auth-must-revalidate", Some(auth), 1),
    ];
    for (path, field, fetches) in cases {
        let url = origin.url(path);
        let fields: Vec<(&str, &str)> = field.into_iter().collect();
        let first = fetch(&proxy, "GET", &url, &fields);
        if fetches == 2 {
            assert_cache_status(&first, &[], &["stored"]);
        }
        let second = fetch(&proxy, "GET", &url, &fields);
        assert_eq!(
            requests_for(&origin, path).len(),
            fetches,
            "{path}: origin requests; first response head:\n{}",
            head_text(&first)
        );
        assert_eq!(second.text(), path);
    }
}

/// Set-Cookie is per client: a stored one would hand one user's session to the next.
#[test]
fn a_set_cookie_response_is_never_served_to_another_client() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let origin = Origin::start(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let cookie = format!("session={n}");
        Reply::Send(response(
            "200 OK",
            &[
                ("Cache-Control", "public, max-age=60"),
                ("Set-Cookie", &cookie),
            ],
            b"welcome",
        ))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/login");
    let first = proxy.get(&url);
    let second = proxy.get(&url);
    assert_eq!(first.header("set-cookie"), Some("session=0"));
    assert_eq!(second.header("set-cookie"), Some("session=1"));
    assert_cache_status(&second, &[], &["hit"]);
    assert_eq!(origin.requests(), 2);
}

// ---------------------------------------------------------------------------------------
// Complete bodies only

/// An origin that closes before Content-Length bytes have come sent a broken object;
/// storing it would serve the breakage to everyone after.
#[test]
fn a_body_cut_short_by_the_origin_is_not_stored() {
    let full = pattern(100);
    let served = Arc::new(AtomicUsize::new(0));
    let (counter, body) = (Arc::clone(&served), full.clone());
    let origin = Origin::start(move |request| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        if n > 0 {
            return Reply::Send(fresh(&body));
        }
        if request.target == "/chunked" {
            // The last chunk and the terminating zero chunk never come.
            let mut cut = head(
                "200 OK",
                &[
                    ("Cache-Control", "max-age=60"),
                    ("Transfer-Encoding", "chunked"),
                ],
            );
            cut.extend_from_slice(b"32\r\n");
            cut.extend_from_slice(&body[..50]);
            cut.extend_from_slice(b"\r\n");
            return Reply::SendClose(cut);
        }
        let mut cut = fresh(&body);
        cut.truncate(cut.len() - 50);
        Reply::SendClose(cut)
    });
    for path in ["/length", "/chunked"] {
        served.store(0, Ordering::SeqCst);
        let proxy = Proxy::start(&["--admit-after", "0"]);
        let url = origin.url(path);
        let mut client = proxy.client();
        client.send(request("GET", &url, &[]).as_bytes());
        let cut = client.read_head();
        assert_eq!(cut.status, 200, "{path}");
        let rest = client.read_to_close();
        assert!(rest.len() < 100, "{path}: {} bytes relayed", rest.len());

        let again = proxy.get(&url);
        assert!(again.body == full, "{path}: second fetch body");
        assert_cache_status(&again, &["fwd=miss", "stored"], &["hit"]);
        assert_eq!(
            requests_for(&origin, path).len(),
            2,
            "{path}: cut body stored"
        );
        let hit = proxy.get(&url);
        assert!(hit.body == full, "{path}: hit body");
        assert_eq!(requests_for(&origin, path).len(), 2, "{path}");
    }
}

/// Without a length, only the origin's clean FIN says the body is complete.
#[test]
fn a_close_delimited_body_ended_by_a_clean_fin_is_stored() {
    let body = pattern(5000);
    let mut reply = head("200 OK", &[("Cache-Control", "max-age=60")]);
    reply.extend_from_slice(&body);
    let origin = Origin::start(move |_| Reply::SendClose(reply.clone()));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/until-close");
    assert!(proxy.get(&url).body == body);
    let hit = proxy.get(&url);
    assert!(hit.body == body, "the hit's body differs");
    assert_cache_status(&hit, &["hit"], &[]);
    assert_eq!(hit.header("content-length"), Some("5000"));
    assert_eq!(origin.requests(), 1);
}

/// A close-delimited body ends at the origin's FIN; after a reset it may have been cut
/// anywhere, so it must not be stored.
#[test]
fn a_close_delimited_body_ended_by_a_reset_is_not_stored() {
    let body = pattern(5000);
    let mut reply = head("200 OK", &[("Cache-Control", "max-age=60")]);
    reply.extend_from_slice(&body);
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let relayed = Gate::new();
    let reset_after = Arc::clone(&relayed);
    let origin = Origin::start(move |_| {
        let reply = reply.clone();
        if counter.fetch_add(1, Ordering::SeqCst) > 0 {
            return Reply::SendClose(reply);
        }
        let reset_after = Arc::clone(&reset_after);
        Reply::Stream(Box::new(move |stream: &mut TcpStream| {
            stream.write_all(&reply)?;
            // Once the client has every byte larder read, so that only the ending
            // differs from a clean close.
            reset_after.wait();
            set_reset_on_close(stream);
            Err(io::Error::other("end the connection with a reset"))
        }))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/reset");
    let mut client = proxy.client();
    client.send(request("GET", &url, &[]).as_bytes());
    assert_eq!(client.read_head().status, 200);
    assert!(client.read_exact(body.len()) == body, "the relayed body");
    relayed.open();
    assert!(client.read_to_close().is_empty(), "bytes after the body");

    let again = proxy.get(&url);
    assert!(again.body == body, "second fetch body");
    assert_eq!(origin.requests(), 2, "the body ended by a reset was stored");
    assert_cache_status(&proxy.get(&url), &["hit"], &[]);
    assert_eq!(origin.requests(), 2);
}

/// A client that goes away mid-body ends the fill; the partial object must not be
/// stored, and the access log says the transfer was aborted.
#[test]
fn a_fill_abandoned_by_its_client_is_not_stored() {
    let body = pattern(100_000);
    let gate = Gate::new();
    let origin = stalling_origin(&body, &gate);
    let log = TempFile::new("abandoned.log");
    let proxy = Proxy::start(&["--admit-after", "0", "--access-log", log.arg()]);
    let url = origin.url("/abandoned");
    let mut client = proxy.client();
    client.send(request("GET", &url, &[]).as_bytes());
    assert_eq!(client.read_head().status, 200);
    // Gone for good: a reset, which larder sees at once (a FIN could be a half-close).
    client.close_with_reset();
    // Once larder has logged the abandoned request, the origin sends the rest: a fill
    // that went on regardless would now finish (and the next request share it or hit).
    wait_for_log_lines(&log, 1);
    gate.open();

    let again = proxy.get(&url);
    assert!(again.body == body, "second fetch body");
    assert_eq!(
        origin.requests(),
        2,
        "the abandoned partial body was stored"
    );
    let hit = proxy.get(&url);
    assert!(hit.body == body);
    assert_eq!(origin.requests(), 2);

    let lines = wait_for_log_lines(&log, 3);
    let outcomes: Vec<String> = lines.iter().map(|l| outcome(l)).collect();
    assert_eq!(
        outcomes.first().map(String::as_str),
        Some(format!("TCP_MISS_ABORTED/200 GET {url}").as_str()),
        "log:\n{lines:#?}"
    );
}

#[test]
fn bodies_over_cache_max_object_are_relayed_but_not_stored() {
    let big = pattern(2000);
    let (big_reply, small_reply) = (fresh(&big), fresh(b"small enough"));
    let mut chunked_reply = head(
        "200 OK",
        &[
            ("Cache-Control", "max-age=60"),
            ("Transfer-Encoding", "chunked"),
        ],
    );
    chunked_reply.extend_from_slice(&chunked_body(&big, 300));
    let origin = Origin::start(move |request| {
        Reply::Send(match request.target.as_str() {
            "/big" => big_reply.clone(),
            "/big-chunked" => chunked_reply.clone(),
            "/exactly-1k" => fresh(&pattern(1024)),
            _ => small_reply.clone(),
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0", "--cache-max-object", "1K"]);
    for _ in 0..2 {
        for path in ["/big", "/big-chunked"] {
            let got = proxy.get(&origin.url(path));
            assert!(got.body == big, "{path}: body differs");
            assert_cache_status(&got, &[], &["stored", "hit"]);
        }
        assert_eq!(proxy.get(&origin.url("/small")).text(), "small enough");
        assert_eq!(proxy.get(&origin.url("/exactly-1k")).body.len(), 1024);
    }
    assert_eq!(requests_for(&origin, "/big").len(), 2);
    assert_eq!(requests_for(&origin, "/big-chunked").len(), 2);
    assert_eq!(requests_for(&origin, "/small").len(), 1);
    // The limit itself is not "larger".
    assert_eq!(requests_for(&origin, "/exactly-1k").len(), 1);
}

/// Without the flag the limit is an eighth of the cache (128 KiB of the tests' 1 MiB).
#[test]
fn the_default_object_limit_is_an_eighth_of_the_cache() {
    let big = pattern(200_000);
    let reply = fresh(&big);
    let origin = Origin::start(move |_| Reply::Send(reply.clone()));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/over-an-eighth");
    for _ in 0..2 {
        assert!(proxy.get(&url).body == big);
    }
    assert_eq!(origin.requests(), 2);
}

#[test]
fn a_chunked_response_is_stored_and_served_with_content_length() {
    let body = pattern(10_000);
    let mut reply = head(
        "200 OK",
        &[
            ("Cache-Control", "max-age=60"),
            ("Transfer-Encoding", "chunked"),
        ],
    );
    reply.extend_from_slice(&chunked_body(&body, 777));
    let origin = Origin::start(move |_| Reply::Send(reply.clone()));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/chunked");
    assert!(proxy.get(&url).body == body);
    let hit = proxy.get(&url);
    assert_cache_status(&hit, &["hit"], &[]);
    assert!(hit.body == body, "the hit's body differs");
    assert_eq!(hit.header("content-length"), Some("10000"));
    assert_eq!(hit.header("transfer-encoding"), None);
    assert_eq!(origin.requests(), 1);
}

// ---------------------------------------------------------------------------------------
// Revalidation

/// A stale entry goes upstream with the stored validators, exactly as stored; a 304
/// refreshes the stored head (except Content-Length, which a 304 may get wrong) and the
/// client gets the stored body.
#[test]
fn a_stale_entry_is_revalidated_and_a_304_refreshes_its_head() {
    // asctime, so a larder that reformats the date instead of copying it fails.
    const ASCTIME: &str = "Tue Nov 14 22:13:20 2023";
    let origin = Origin::start(|request| {
        Reply::Send(if request.header("if-none-match").is_some() {
            head(
                "304 Not Modified",
                &[
                    ("ETag", "\"v1\""),
                    ("Cache-Control", "max-age=60"),
                    ("X-Version", "2"),
                    ("Content-Length", "0"),
                ],
            )
        } else {
            response(
                "200 OK",
                &[
                    ("Cache-Control", "max-age=0"),
                    ("ETag", "\"v1\""),
                    ("Last-Modified", ASCTIME),
                    ("X-Version", "1"),
                ],
                b"stored body",
            )
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/revalidated");
    let first = proxy.get(&url);
    assert_cache_status(&first, &["fwd=miss", "stored"], &[]);
    assert_eq!(first.header("x-version"), Some("1"));

    let refreshed = proxy.get(&url);
    assert_eq!(refreshed.status, 200);
    assert_eq!(refreshed.text(), "stored body");
    assert_eq!(refreshed.header("content-length"), Some("11"));
    assert_eq!(refreshed.header("x-version"), Some("2"));
    assert_cache_status(&refreshed, &["fwd=stale", "fwd-status=304"], &["hit"]);
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    let revalidation = &seen[1];
    assert_eq!(revalidation.method, "GET");
    assert_eq!(revalidation.header("if-none-match"), Some("\"v1\""));
    assert_eq!(
        revalidation.header("if-modified-since"),
        Some(ASCTIME),
        "Last-Modified not sent verbatim; head:\n{}",
        String::from_utf8_lossy(&revalidation.head)
    );

    // The 304's max-age=60 made the entry fresh again.
    let hit = proxy.get(&url);
    assert_cache_status(&hit, &["hit"], &[]);
    assert_eq!(hit.text(), "stored body");
    assert_eq!(hit.header("x-version"), Some("2"));
    assert_eq!(origin.requests(), 2);
}

/// A revalidation is larder's request, not the client's: only the stored validators go
/// up, never the client's own conditionals or Range.
#[test]
fn a_revalidation_carries_only_the_stored_validators() {
    let origin = Origin::start(|request| {
        Reply::Send(if request.header("if-none-match") == Some("\"v1\"") {
            head(
                "304 Not Modified",
                &[("ETag", "\"v1\""), ("Cache-Control", "max-age=0")],
            )
        } else {
            response(
                "200 OK",
                &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
                b"0123456789",
            )
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/validators");
    proxy.get(&url);

    let since = http_date(now_secs());
    let own = fetch(
        &proxy,
        "GET",
        &url,
        &[
            ("If-None-Match", "\"client\""),
            ("If-Modified-Since", &since),
        ],
    );
    // The client's tag does not match the entry, so it gets the whole body.
    assert_eq!(own.status, 200);
    assert_eq!(own.text(), "0123456789");
    let ranged = fetch(
        &proxy,
        "GET",
        &url,
        &[("Range", "bytes=2-4"), ("If-Range", "\"v1\"")],
    );
    // The contract does not say whether a refreshed entry answers the Range; either
    // answer must be right.
    match ranged.status {
        206 => assert_eq!(ranged.text(), "234"),
        200 => assert_eq!(ranged.text(), "0123456789"),
        other => panic!("status {other} to a Range on a stale entry"),
    }

    let seen = origin.seen();
    assert_eq!(seen.len(), 3, "each stale request revalidates once");
    for revalidation in &seen[1..] {
        let head = String::from_utf8_lossy(&revalidation.head);
        assert_eq!(
            revalidation.header_all("if-none-match"),
            vec!["\"v1\""],
            "{head}"
        );
        // Nothing was stored to send If-Modified-Since with.
        for name in ["if-modified-since", "range", "if-range"] {
            assert_eq!(revalidation.header(name), None, "{name} went up:\n{head}");
        }
    }
}

/// An origin whose first `old` answers are `old` (ETag v1, `old_cache_control`), and
/// every later one `new body` (ETag v2, fresh for a minute).
pub(crate) fn old_then_new(old: usize, old_cache_control: &'static str) -> Origin {
    let served = AtomicUsize::new(0);
    Origin::start(move |_| {
        Reply::Send(if served.fetch_add(1, Ordering::SeqCst) < old {
            response(
                "200 OK",
                &[("Cache-Control", old_cache_control), ("ETag", "\"v1\"")],
                b"old",
            )
        } else {
            response(
                "200 OK",
                &[("Cache-Control", "max-age=60"), ("ETag", "\"v2\"")],
                b"new body",
            )
        })
    })
}

#[test]
fn a_200_to_a_revalidation_replaces_the_entry() {
    let origin = old_then_new(1, "max-age=0");
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/replaced");
    assert_eq!(proxy.get(&url).text(), "old");
    let replaced = proxy.get(&url);
    assert_eq!(replaced.text(), "new body");
    assert_eq!(replaced.header("etag"), Some("\"v2\""));
    assert_cache_status(&replaced, &["fwd=stale", "fwd-status=200", "stored"], &[]);
    assert_eq!(origin.seen()[1].header("if-none-match"), Some("\"v1\""));
    let hit = proxy.get(&url);
    assert_cache_status(&hit, &["hit"], &[]);
    assert_eq!(hit.text(), "new body");
    assert_eq!(hit.header("etag"), Some("\"v2\""));
    assert_eq!(origin.requests(), 2);
}

// ---------------------------------------------------------------------------------------
// Client conditionals and request directives

/// A fresh entry answers the client's own validators; If-None-Match takes precedence
/// over If-Modified-Since (RFC 9110 §13.2.2).
#[test]
fn client_conditionals_on_a_fresh_entry_are_answered_by_larder() {
    let origin = Origin::start(|_| {
        Reply::Send(response(
            "200 OK",
            &[
                ("Cache-Control", "max-age=60"),
                ("ETag", "\"v1\""),
                ("Last-Modified", LAST_MODIFIED),
            ],
            b"conditional body",
        ))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/conditional");
    proxy.get(&url);

    const LATER: &str = "Wed, 15 Nov 2023 22:13:20 GMT";
    const EARLIER: &str = "Mon, 13 Nov 2023 22:13:20 GMT";
    let cases: [(Fields, u16); 7] = [
        (&[("If-None-Match", "\"v1\"")], 304),
        (&[("If-None-Match", "\"x\", \"v1\"")], 304),
        (&[("If-None-Match", "\"other\"")], 200),
        (&[("If-Modified-Since", LAST_MODIFIED)], 304),
        (&[("If-Modified-Since", LATER)], 304),
        (&[("If-Modified-Since", EARLIER)], 200),
        (
            &[("If-None-Match", "\"other\""), ("If-Modified-Since", LATER)],
            200,
        ),
    ];
    for (fields, status) in cases {
        let mut client = proxy.client();
        client.send(request("GET", &url, fields).as_bytes());
        let answer = client.read_response();
        assert_eq!(
            answer.status,
            status,
            "{fields:?}; head:\n{}",
            head_text(&answer)
        );
        if status == 304 {
            assert_eq!(answer.header("etag"), Some("\"v1\""), "{fields:?}");
        } else {
            assert_eq!(answer.text(), "conditional body", "{fields:?}");
        }
        // A 304 with a stray body would show up as garbage before this response.
        client.send(request("GET", &url, &[]).as_bytes());
        let next = client.read_response();
        assert_eq!(next.text(), "conditional body", "after {fields:?}");
    }
    assert_eq!(origin.requests(), 1, "a conditional reached the origin");
}

/// A reload (`no-cache`, `max-age=0`) goes to the origin with the stored validators even
/// though the entry is fresh.
#[test]
fn a_client_reload_revalidates_a_fresh_entry() {
    let origin = Origin::start(|request| {
        let fields = [("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")];
        Reply::Send(if request.header("if-none-match") == Some("\"v1\"") {
            head("304 Not Modified", &fields)
        } else {
            response("200 OK", &fields, b"reloaded")
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/reload");
    proxy.get(&url);
    for (n, directive) in ["no-cache", "max-age=0"].into_iter().enumerate() {
        let reload = fetch(&proxy, "GET", &url, &[("Cache-Control", directive)]);
        assert_eq!(reload.status, 200, "{directive}");
        assert_eq!(reload.text(), "reloaded", "{directive}");
        assert_cache_status(&reload, &["fwd=request"], &["hit"]);
        let seen = origin.seen();
        assert_eq!(seen.len(), n + 2, "{directive} did not reach the origin");
        assert_eq!(
            seen[n + 1].header("if-none-match"),
            Some("\"v1\""),
            "{directive}"
        );
    }
    assert_cache_status(&proxy.get(&url), &["hit"], &[]);
    assert_eq!(origin.requests(), 3);
}

#[test]
fn only_if_cached_never_contacts_the_origin() {
    let origin = Origin::start(|request| {
        Reply::Send(match request.target.as_str() {
            "/stale" => response("200 OK", &[("Cache-Control", "max-age=0")], b"stale"),
            _ => fresh(b"cached only"),
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let only = [("Cache-Control", "only-if-cached")];
    let absent = fetch(&proxy, "GET", &origin.url("/absent"), &only);
    assert_eq!(absent.status, 504, "head:\n{}", head_text(&absent));
    assert_eq!(origin.requests(), 0);

    let url = origin.url("/present");
    proxy.get(&url);
    let present = fetch(&proxy, "GET", &url, &only);
    assert_eq!(present.status, 200);
    assert_eq!(present.text(), "cached only");
    assert_eq!(origin.requests(), 1);

    // A stale entry is not usable without revalidation, unless max-stale allows it.
    let stale = origin.url("/stale");
    proxy.get(&stale);
    let refused = fetch(&proxy, "GET", &stale, &only);
    assert_eq!(refused.status, 504, "head:\n{}", head_text(&refused));
    let allowed = fetch(
        &proxy,
        "GET",
        &stale,
        &[("Cache-Control", "only-if-cached, max-stale")],
    );
    assert_eq!(allowed.status, 200, "head:\n{}", head_text(&allowed));
    assert_eq!(allowed.text(), "stale");
    assert_eq!(origin.requests(), 2);
}

/// `max-stale` lets a stale entry be served as it is, `min-fresh` asks for more freshness
/// than a fresh entry has, a request `max-age` the entry is younger than is a hit, and
/// directives larder does not know change nothing.
#[test]
fn request_freshness_directives_are_honoured() {
    let origin = Origin::start(|request| {
        Reply::Send(match request.target.as_str() {
            "/stale" => response("200 OK", &[("Cache-Control", "max-age=0")], b"stale"),
            _ => fresh(b"fresh"),
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let stale = origin.url("/stale");
    proxy.get(&stale);
    for directive in ["max-stale", "max-stale=60"] {
        let got = fetch(&proxy, "GET", &stale, &[("Cache-Control", directive)]);
        assert_eq!(got.text(), "stale", "{directive}");
        assert_eq!(
            requests_for(&origin, "/stale").len(),
            1,
            "{directive} went to the origin; head:\n{}",
            head_text(&got)
        );
    }

    let fresh_url = origin.url("/fresh");
    proxy.get(&fresh_url);
    for directive in ["max-age=30", "x-unknown=\"a,b\", bogus", "max-stale=5"] {
        let got = fetch(&proxy, "GET", &fresh_url, &[("Cache-Control", directive)]);
        assert_cache_status(&got, &["hit"], &[]);
        assert_eq!(requests_for(&origin, "/fresh").len(), 1, "{directive}");
    }
    let demanding = fetch(
        &proxy,
        "GET",
        &fresh_url,
        &[("Cache-Control", "min-fresh=120")],
    );
    assert_eq!(demanding.text(), "fresh");
    assert_eq!(
        requests_for(&origin, "/fresh").len(),
        2,
        "min-fresh=120 on a max-age=60 entry was served from cache"
    );
}

/// RFC 9111 §5.2.2.4: a stored `no-cache` response is used only after revalidation,
/// however fresh; §5.2.2.2: `must-revalidate` overrides a client's `max-stale`.
#[test]
fn no_cache_and_must_revalidate_responses_are_never_served_unvalidated() {
    let origin = Origin::start(|request| {
        let cache_control = match request.target.as_str() {
            "/no-cache" => "no-cache, max-age=60",
            _ => "max-age=0, must-revalidate",
        };
        let fields = [("Cache-Control", cache_control), ("ETag", "\"t1\"")];
        Reply::Send(if request.header("if-none-match") == Some("\"t1\"") {
            head("304 Not Modified", &fields)
        } else {
            response("200 OK", &fields, b"validated")
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    for (path, fields) in [
        ("/no-cache", &[][..]),
        ("/must-revalidate", &[("Cache-Control", "max-stale=60")][..]),
    ] {
        let url = origin.url(path);
        assert_eq!(proxy.get(&url).text(), "validated");
        let second = fetch(&proxy, "GET", &url, fields);
        assert_eq!(second.text(), "validated", "{path}");
        let seen = requests_for(&origin, path);
        assert_eq!(
            seen.len(),
            2,
            "{path} served without revalidation; head:\n{}",
            head_text(&second)
        );
        assert_eq!(seen[1].header("if-none-match"), Some("\"t1\""), "{path}");
    }
}

/// If-None-Match compares weakly, If-Range strongly (RFC 9110 §13.1.2, §13.1.5): a weak
/// tag can earn a 304 but never a 206.
#[test]
fn weak_etags_satisfy_if_none_match_but_never_if_range() {
    let origin = Origin::start(|_| {
        Reply::Send(response(
            "200 OK",
            &[("Cache-Control", "max-age=60"), ("ETag", "W/\"w1\"")],
            b"0123456789",
        ))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/weak");
    proxy.get(&url);
    for tag in ["W/\"w1\"", "\"w1\""] {
        let answer = fetch(&proxy, "GET", &url, &[("If-None-Match", tag)]);
        assert_eq!(answer.status, 304, "If-None-Match {tag}");
    }
    let ranged = fetch(
        &proxy,
        "GET",
        &url,
        &[("Range", "bytes=0-1"), ("If-Range", "W/\"w1\"")],
    );
    assert_eq!(ranged.status, 200, "head:\n{}", head_text(&ranged));
    assert_eq!(ranged.text(), "0123456789");
    assert_eq!(origin.requests(), 1);
}

// ---------------------------------------------------------------------------------------
// Vary

/// An origin that answers with the request's Accept-Language, varying on it.
fn language_origin() -> Origin {
    Origin::start(|request| {
        let lang = request.header("accept-language").unwrap_or("none");
        let body = format!("lang={lang}");
        Reply::Send(response(
            "200 OK",
            &[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
            body.as_bytes(),
        ))
    })
}

#[test]
fn vary_keeps_variants_apart_and_stores_each() {
    let origin = language_origin();
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/varied");
    let get_lang = |lang: &str| fetch(&proxy, "GET", &url, &[("Accept-Language", lang)]);

    let en = get_lang("en");
    assert_eq!(en.text(), "lang=en");
    assert_cache_status(&en, &["fwd=miss", "stored"], &[]);
    let fr = get_lang("fr");
    assert_eq!(fr.text(), "lang=fr", "served the other variant");
    assert_cache_status(&fr, &["fwd=vary-miss", "stored"], &["hit"]);
    assert_eq!(origin.requests(), 2);
    for lang in ["en", "fr", "en", "fr"] {
        let hit = get_lang(lang);
        assert_eq!(hit.text(), format!("lang={lang}"));
        assert_cache_status(&hit, &["hit"], &[]);
    }
    assert_eq!(origin.requests(), 2);
}

/// RFC 9111 §4.1 lets a cache normalise selecting fields: Accept-Language values that
/// differ only in case, whitespace or the placement of weighted members select one
/// stored variant, while equally weighted languages in another order stay apart.
#[test]
fn accept_language_spelled_differently_shares_one_variant() {
    let origin = language_origin();
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/languages");
    let get_lang = |lang: &str| fetch(&proxy, "GET", &url, &[("Accept-Language", lang)]);

    let first = get_lang("en-US, de;q=0.5");
    assert_eq!(first.text(), "lang=en-US, de;q=0.5");
    assert_cache_status(&first, &["fwd=miss", "stored"], &[]);
    for spelling in [
        "EN-us,de;q=0.5",
        "de ; Q=0.50 ,  en-us",
        "en-us;q=1.0, DE;q=0.500",
    ] {
        let hit = get_lang(spelling);
        assert_eq!(hit.text(), "lang=en-US, de;q=0.5", "{spelling:?}");
        assert_cache_status(&hit, &["hit"], &[]);
    }
    assert_eq!(origin.requests(), 1);
    for (i, equal_weights) in ["en-US, de", "de, en-US"].into_iter().enumerate() {
        let miss = get_lang(equal_weights);
        assert_eq!(miss.text(), format!("lang={equal_weights}"));
        assert_cache_status(&miss, &["fwd=vary-miss", "stored"], &["hit"]);
        assert_eq!(origin.requests(), 2 + i);
    }
}

// ---------------------------------------------------------------------------------------
// Invalidation

/// RFC 9111 §4.4: a successful unsafe request may change the resource, so the stored
/// copy goes and the next GET fetches it again.
#[test]
fn unsafe_methods_invalidate_the_stored_entry() {
    let origin = Origin::start(|request| {
        Reply::Send(match request.method.as_str() {
            "GET" => fresh(b"stored"),
            _ => response("200 OK", &[], b"done"),
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    // FROB stands for methods larder has never heard of.
    for method in ["POST", "PUT", "DELETE", "PATCH", "FROB"] {
        let path = format!("/invalidate-{method}");
        let url = origin.url(&path);
        proxy.get(&url);
        assert_cache_status(&proxy.get(&url), &["hit"], &[]);
        let mut client = proxy.client();
        let mut unsafe_request = request(method, &url, &[("Content-Length", "4")]);
        unsafe_request.push_str("data");
        client.send(unsafe_request.as_bytes());
        let answer = client.read_response();
        assert_eq!(answer.text(), "done", "{method}");
        assert_cache_status(&answer, &["fwd=method"], &[]);

        let after = proxy.get(&url);
        assert_eq!(after.text(), "stored");
        assert_cache_status(&after, &["fwd=miss"], &["hit"]);
        let gets = requests_for(&origin, &path)
            .iter()
            .filter(|r| r.method == "GET")
            .count();
        assert_eq!(gets, 2, "{method} left the entry in place");
    }
}

/// The resource a POST created or changed (Location, Content-Location) is invalidated
/// too, when it is on the same host.
#[test]
fn an_unsafe_method_invalidates_its_location_and_content_location() {
    let origin = Origin::start(|request| {
        let host = request.header("host").unwrap_or("");
        let location = format!("http://{host}/by-location");
        Reply::Send(match request.method.as_str() {
            "POST" => response(
                "201 Created",
                &[
                    ("Location", location.as_str()),
                    ("Content-Location", "/by-content-location"),
                ],
                b"created",
            ),
            _ => fresh(request.target.as_bytes()),
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let targets = ["/by-location", "/by-content-location"];
    for path in targets {
        proxy.get(&origin.url(path));
        assert_cache_status(&proxy.get(&origin.url(path)), &["hit"], &[]);
    }
    let mut client = proxy.client();
    client.send(request("POST", &origin.url("/form"), &[("Content-Length", "0")]).as_bytes());
    assert_eq!(client.read_response().status, 201);
    for path in targets {
        assert_eq!(proxy.get(&origin.url(path)).text(), path);
        assert_eq!(
            requests_for(&origin, path).len(),
            2,
            "{path} was not invalidated by the POST's 201"
        );
    }
}

/// Only a 2xx or 3xx answer invalidates: a refused POST changed nothing.
#[test]
fn a_failed_unsafe_request_leaves_the_entry_alone() {
    let origin = Origin::start(|request| {
        Reply::Send(match request.method.as_str() {
            "GET" => fresh(b"still here"),
            _ => response("403 Forbidden", &[], b"no"),
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/kept");
    proxy.get(&url);
    let mut client = proxy.client();
    client.send(request("POST", &url, &[("Content-Length", "0")]).as_bytes());
    assert_eq!(client.read_response().status, 403);
    assert_cache_status(&proxy.get(&url), &["hit"], &[]);
    assert_eq!(origin.requests(), 2);
}

// ---------------------------------------------------------------------------------------
// HEAD and Range from the cache

#[test]
fn head_is_answered_from_a_stored_get() {
    let body = pattern(1234);
    let reply = fresh(&body);
    let origin = Origin::start(move |_| Reply::Send(reply.clone()));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/headed");
    proxy.get(&url);

    let mut client = proxy.client();
    client.send(request("HEAD", &url, &[]).as_bytes());
    let answer = client.read_response_for("HEAD");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-length"), Some("1234"));
    assert_cache_status(&answer, &["hit"], &[]);
    // A body after the HEAD answer would be read as the next response's head.
    client.send(request("GET", &url, &[]).as_bytes());
    assert!(client.read_response().body == body);
    assert_eq!(origin.requests(), 1);
    assert!(origin.seen().iter().all(|r| r.method == "GET"));
}

/// A HEAD, a Range or a conditional request that misses gets a bodiless, partial or 304
/// answer from the origin; none of them may become the stored object a GET is then
/// served from.
#[test]
fn head_range_and_conditional_misses_never_store_a_partial_object() {
    const BODY: &str = "0123456789abcdefghij";
    let origin = Origin::start(|request| {
        let fields = [("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")];
        Reply::Send(if request.header("if-none-match") == Some("\"v1\"") {
            head("304 Not Modified", &fields)
        } else if request.header("range") == Some("bytes=0-3") {
            let mut partial = fields.to_vec();
            partial.push(("Content-Range", "bytes 0-3/20"));
            response("206 Partial Content", &partial, b"0123")
        } else if request.method == "HEAD" {
            let mut head_only = response("200 OK", &fields, BODY.as_bytes());
            head_only.truncate(head_only.len() - BODY.len());
            head_only
        } else {
            response("200 OK", &fields, BODY.as_bytes())
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let cases: [(&str, Fields, &str); 3] = [
        ("/head-first", &[], "HEAD"),
        ("/range-first", &[("Range", "bytes=0-3")], "GET"),
        ("/conditional-first", &[("If-None-Match", "\"v1\"")], "GET"),
    ];
    for (path, fields, method) in cases {
        let url = origin.url(path);
        let first = fetch(&proxy, method, &url, fields);
        match first.status {
            200 if method == "HEAD" => assert!(first.body.is_empty()),
            200 => assert_eq!(first.text(), BODY, "{path}"),
            206 => assert_eq!(first.text(), "0123", "{path}"),
            304 => {}
            other => panic!("{path}: status {other}"),
        }
        let full = proxy.get(&url);
        assert_eq!(full.status, 200, "{path}; head:\n{}", head_text(&full));
        assert_eq!(full.text(), BODY, "{path}: a GET got the partial answer");
    }
}

/// An HTTP/1.0 client without keep-alive learns the end of a hit from the close, as it
/// would from a forwarded response.
#[test]
fn a_hit_to_an_http_1_0_client_ends_with_the_connection() {
    let origin = Origin::start(|_| Reply::Send(fresh(b"for an old client")));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/old-client");
    proxy.get(&url);
    let mut client = proxy.client();
    client.send(format!("GET {url} HTTP/1.0\r\n\r\n").as_bytes());
    let hit = client.read_response();
    assert_eq!(hit.status, 200);
    assert_eq!(hit.text(), "for an old client");
    assert_cache_status(&hit, &["hit"], &[]);
    client.expect_closed();
    assert_eq!(origin.requests(), 1);
}

#[test]
fn ranges_are_served_from_a_stored_object() {
    const BODY: &str = "0123456789abcdefghij";
    let origin = Origin::start(|_| {
        Reply::Send(response(
            "200 OK",
            &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
            BODY.as_bytes(),
        ))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/ranged");
    proxy.get(&url);

    // (Range, If-Range, status, Content-Range, body)
    let cases = [
        ("bytes=2-5", None, 206, Some("bytes 2-5/20"), "2345"),
        ("bytes=15-", None, 206, Some("bytes 15-19/20"), "fghij"),
        ("bytes=-3", None, 206, Some("bytes 17-19/20"), "hij"),
        (
            "bytes=5-100",
            None,
            206,
            Some("bytes 5-19/20"),
            "56789abcdefghij",
        ),
        ("bytes=0-0", None, 206, Some("bytes 0-0/20"), "0"),
        ("bytes=20-30", None, 416, Some("bytes */20"), ""),
        ("bytes=0-1,4-5", None, 200, None, BODY),
        ("bytes=2-5", Some("\"other\""), 200, None, BODY),
        (
            "bytes=2-5",
            Some("\"v1\""),
            206,
            Some("bytes 2-5/20"),
            "2345",
        ),
        // The entry has no Last-Modified for a date to match.
        ("bytes=2-5", Some(LAST_MODIFIED), 200, None, BODY),
        // RFC 9110 §14.1.3: a zero-length suffix is unsatisfiable.
        ("bytes=-0", None, 416, Some("bytes */20"), ""),
        // §14.2: an unknown range unit is ignored.
        ("items=0-1", None, 200, None, BODY),
    ];
    // One connection for all: wrong framing of one answer breaks the next.
    let mut client = proxy.client();
    for (range, if_range, status, content_range, body) in cases {
        let mut fields = vec![("Range", range)];
        fields.extend(if_range.map(|v| ("If-Range", v)));
        client.send(request("GET", &url, &fields).as_bytes());
        let answer = client.read_response();
        let what = format!(
            "{range} If-Range {if_range:?}; head:\n{}",
            head_text(&answer)
        );
        assert_eq!(answer.status, status, "{what}");
        if status != 416 {
            assert_eq!(answer.text(), body, "{what}");
            assert_eq!(
                answer.header("content-length"),
                Some(body.len().to_string().as_str()),
                "{what}"
            );
        }
        assert_eq!(answer.header("content-range"), content_range, "{what}");
        assert_cache_status(&answer, &["hit"], &[]);
    }
    assert_eq!(origin.requests(), 1, "a Range request reached the origin");
}

/// Hits are ready at once and misses wait for the origin, but a pipelining client must
/// get its answers in request order.
#[test]
fn pipelined_hits_and_misses_are_answered_in_order() {
    let origin = Origin::start(|request| {
        if request.target == "/hit" {
            return Reply::Send(fresh(b"hit"));
        }
        let reply = response("200 OK", &[("Cache-Control", "no-store")], b"slow");
        Reply::Stream(Box::new(move |stream: &mut TcpStream| {
            thread::sleep(Duration::from_millis(200));
            stream.write_all(&reply)
        }))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let (hit, slow) = (origin.url("/hit"), origin.url("/slow"));
    proxy.get(&hit);

    let mut client = proxy.client();
    let order = [
        ("GET", &hit),
        ("GET", &slow),
        ("GET", &hit),
        ("HEAD", &hit),
        ("GET", &slow),
        ("GET", &hit),
    ];
    let pipeline: String = order
        .iter()
        .map(|(method, url)| request(method, url, &[]))
        .collect();
    client.send(pipeline.as_bytes());
    for (i, (method, url)) in order.iter().enumerate() {
        let answer = client.read_response_for(method);
        assert_eq!(answer.status, 200, "answer {i}");
        let want = if *method == "HEAD" {
            ""
        } else if *url == &hit {
            "hit"
        } else {
            "slow"
        };
        assert_eq!(answer.text(), want, "answer {i} ({method} {url})");
    }
    assert_eq!(requests_for(&origin, "/hit").len(), 1);
}

/// A hit bigger than the socket buffers is written as the client drains it: a client
/// that stops reading for a while gets every byte afterwards, and holds up nobody.
#[test]
fn a_large_hit_reaches_a_slow_reader_intact() {
    let body = pattern(120_000);
    let reply = fresh(&body);
    let origin = Origin::start(move |_| Reply::Send(reply.clone()));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/large-hit");
    proxy.get(&url);

    let mut slow = proxy.client();
    slow.send(request("GET", &url, &[]).as_bytes());
    let hit = slow.read_head();
    assert_cache_status(&hit, &["hit"], &[]);
    assert_eq!(hit.header("content-length"), Some("120000"));
    // Meanwhile another client is served in full.
    assert!(proxy.get(&url).body == body, "the other client's hit");
    thread::sleep(Duration::from_millis(300));
    assert!(
        slow.read_exact(body.len()) == body,
        "the slow reader's body"
    );
    assert_eq!(origin.requests(), 1);
}

// ---------------------------------------------------------------------------------------
// Collapsed misses

/// Eight clients asking for one URL at once cost the origin one request, and every
/// client gets the whole body: the ones that asked while the origin had not answered,
/// and the ones that joined while the body was arriving.
#[test]
fn concurrent_misses_share_one_upstream_fetch() {
    const CLIENTS: usize = 8;
    let body = pattern(100_000);
    let reply = fresh(&body);
    let half = reply.len() / 2;
    let (head_gate, rest_gate) = (Gate::new(), Gate::new());
    let (to_head, to_rest) = (Arc::clone(&head_gate), Arc::clone(&rest_gate));
    let origin = Origin::start(move |_| {
        let (reply, to_head, to_rest) = (reply.clone(), Arc::clone(&to_head), Arc::clone(&to_rest));
        Reply::Stream(Box::new(move |stream: &mut TcpStream| {
            to_head.wait();
            stream.write_all(&reply[..half])?;
            to_rest.wait();
            stream.write_all(&reply[half..])
        }))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/popular-release");
    let ask = || {
        let mut client = proxy.client();
        client.send(request("GET", &url, &[]).as_bytes());
        client
    };
    // The first client's request is the one that reaches the origin.
    let mut clients = vec![ask()];
    assert!(
        wait_until(|| origin.requests() == 1),
        "no request reached the origin"
    );
    // Half the others ask before the origin answers...
    clients.extend((1..CLIENTS / 2).map(|_| ask()));
    for client in &clients {
        client.wait_until_read();
    }
    head_gate.open();
    // ...and half once the first client has had part of the body.
    let first_head = clients[0].read_head();
    assert_eq!(first_head.status, 200);
    let some = clients[0].read_exact(1000);
    clients.extend((CLIENTS / 2..CLIENTS).map(|_| ask()));
    for client in &clients[CLIENTS / 2..] {
        client.wait_until_read();
    }
    rest_gate.open();
    let first_body = [some, clients[0].read_exact(body.len() - 1000)].concat();
    assert!(first_body == body, "the first client got a wrong body");
    assert_cache_status(&first_head, &["fwd=miss", "stored"], &[]);
    let answers: Vec<Response> = clients[1..].iter_mut().map(Client::read_response).collect();

    assert_eq!(origin.requests(), 1, "the misses were not collapsed");
    for answer in &answers {
        assert_eq!(answer.status, 200);
        assert!(answer.body == body, "a client got a wrong body");
        assert_cache_status(answer, &["collapsed"], &["stored"]);
    }
}

/// A response that may not be stored is not shared either: a shared Set-Cookie would
/// log every waiting client in as the first one.
#[test]
fn concurrent_misses_for_a_set_cookie_response_are_not_shared() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let gate = Gate::new();
    let held = Arc::clone(&gate);
    let origin = Origin::start(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let cookie = format!("session={n}");
        let reply = response(
            "200 OK",
            &[("Cache-Control", "max-age=60"), ("Set-Cookie", &cookie)],
            b"welcome",
        );
        after_gate(&held, reply)
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let answers = gated_gets(
        &proxy,
        &origin.url("/session"),
        &["", "", "", ""],
        &gate,
        || true,
    );
    let mut cookies: Vec<&str> = answers
        .iter()
        .map(|a| a.header("set-cookie").unwrap_or("none"))
        .collect();
    cookies.sort_unstable();
    cookies.dedup();
    assert_eq!(
        cookies.len(),
        4,
        "clients shared a Set-Cookie: {:#?}",
        answers.iter().map(head_text).collect::<Vec<_>>()
    );
}

/// Counts requests the origin is answering at once, and the most seen together.
#[derive(Default)]
pub(crate) struct InFlight {
    now: AtomicUsize,
    pub(crate) most: AtomicUsize,
}

impl InFlight {
    /// A reply that counts itself in flight until `gate` opens, then sends `reply`.
    pub(crate) fn hold(self: &Arc<Self>, gate: &Arc<Gate>, reply: Vec<u8>) -> Reply {
        let (me, gate) = (Arc::clone(self), Arc::clone(gate));
        let n = me.now.fetch_add(1, Ordering::SeqCst) + 1;
        me.most.fetch_max(n, Ordering::SeqCst);
        Reply::Stream(Box::new(move |stream: &mut TcpStream| {
            gate.wait();
            me.now.fetch_sub(1, Ordering::SeqCst);
            stream.write_all(&reply)
        }))
    }
}

/// The memo of URLs not stored ends when the URL's response is stored: after that,
/// concurrent misses for it share one fetch again.
#[test]
fn a_url_whose_response_became_storable_is_collapsed_again() {
    let gets = Arc::new(AtomicUsize::new(0));
    let inflight = Arc::new(InFlight::default());
    let (counter, holder) = (Arc::clone(&gets), Arc::clone(&inflight));
    let gate = Gate::new();
    let held = Arc::clone(&gate);
    let origin = Origin::start(move |request| {
        if request.method == "POST" {
            return Reply::Send(response("200 OK", &[], b"changed"));
        }
        match counter.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::Send(response("200 OK", &[("Cache-Control", "no-store")], b"v1")),
            1 => Reply::Send(fresh(b"v2")),
            _ => holder.hold(&held, fresh(b"v2")),
        }
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/changes-its-mind");
    assert_eq!(proxy.get(&url).text(), "v1");
    // Stored: the memo forgets the URL.
    let stored = proxy.get(&url);
    assert_cache_status(&stored, &["fwd=miss", "stored"], &[]);
    // Removed again, by a POST, so that the next requests miss.
    let mut client = proxy.client();
    client.send(request("POST", &url, &[("Content-Length", "0")]).as_bytes());
    assert_eq!(client.read_response().status, 200);

    let answers = gated_gets(&proxy, &url, &["", "", "", ""], &gate, || true);
    for answer in &answers {
        assert_eq!(answer.text(), "v2");
    }
    assert_eq!(
        gets.load(Ordering::SeqCst),
        3,
        "the misses were not collapsed"
    );
    assert_eq!(inflight.most.load(Ordering::SeqCst), 1);
}

/// Before the response names its Vary fields larder cannot know that requests for one
/// URL differ, so requests made at once must still each get their own variant.
#[test]
fn concurrent_requests_for_different_variants_never_mix() {
    let gate = Gate::new();
    let held = Arc::clone(&gate);
    let origin = Origin::start(move |request| {
        let lang = request.header("accept-language").unwrap_or("none");
        let reply = response(
            "200 OK",
            &[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
            format!("lang={lang}").as_bytes(),
        );
        after_gate(&held, reply)
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let langs = ["en", "fr", "de", "en", "fr", "de"];
    let answers = gated_gets(&proxy, &origin.url("/negotiated"), &langs, &gate, || true);
    for (lang, answer) in langs.iter().zip(&answers) {
        assert_eq!(
            answer.text(),
            format!("lang={lang}"),
            "head:\n{}",
            head_text(answer)
        );
    }
    assert!(origin.requests() >= 3, "three variants from fewer fetches");
}

/// The client whose request started a shared fetch may give up, closing its connection
/// or vanishing (a reset); the clients that joined it still get the whole body (from
/// that fetch or a new one), never a cut one.
#[test]
fn followers_get_the_whole_body_when_the_first_client_leaves() {
    let body = pattern(100_000);
    for reset in [false, true] {
        let gate = Gate::new();
        let origin = stalling_origin(&body, &gate);
        let proxy = Proxy::start(&["--admit-after", "0"]);
        let url = origin.url("/leader-leaves");
        let mut leader = proxy.client();
        leader.send(request("GET", &url, &[]).as_bytes());
        assert_eq!(leader.read_head().status, 200);

        let followers: Vec<_> = (0..2)
            .map(|_| {
                let mut client = proxy.client();
                client.send(request("GET", &url, &[]).as_bytes());
                client
            })
            .collect();
        // larder attaches them to the fetch when it reads them, before the leader goes.
        for follower in &followers {
            follower.wait_until_read();
        }
        if reset {
            leader.close_with_reset();
        } else {
            drop(leader);
        }
        gate.open();
        for (i, mut follower) in followers.into_iter().enumerate() {
            let answer = follower.read_response();
            assert_eq!(answer.status, 200, "follower {i} (reset: {reset})");
            assert!(
                answer.body == body,
                "follower {i} got a wrong body (reset: {reset})"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Restart and the cache tool

#[test]
fn a_stored_object_survives_a_restart_and_shows_in_larder_cache() {
    let body = pattern(4000);
    let reply = fresh(&body);
    let origin = Origin::start(move |_| Reply::Send(reply.clone()));
    let dir = TempDir::new("restart");
    let dir_arg = dir.path().to_str().expect("temp paths are UTF-8");
    let args = [
        "--cache-dir",
        dir_arg,
        "--cache-size",
        "1M",
        "--admit-after",
        "0",
    ];
    let url = origin.url("/kept-over-restart");

    let mut proxy = Proxy::start(&args);
    proxy.get(&url);
    assert_cache_status(&proxy.get(&url), &["hit"], &[]);
    assert_eq!(proxy.stop(), Some(0), "stderr:\n{}", proxy.stderr());
    drop(proxy);

    let tool = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder-cache"));
        cmd.arg("--cache-dir").arg(dir.path()).args(args);
        cmd.stdin(Stdio::null());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LARDER_") {
                cmd.env_remove(&key);
            }
        }
        cmd.output().expect("run larder-cache")
    };
    let ls = tool(&["ls"]);
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success(), "ls: {ls:?}");
    assert!(
        listing
            .lines()
            .any(|line| line.ends_with(&format!("  {url}"))),
        "{url} not listed:\n{listing}"
    );
    let got = tool(&["get", &url]);
    assert!(got.status.success(), "get: {got:?}");
    assert!(got.stdout == body, "larder-cache get printed another body");

    let proxy = Proxy::start(&args);
    let hit = proxy.get(&url);
    assert!(hit.body == body);
    assert_cache_status(&hit, &["hit"], &[]);
    assert_eq!(origin.requests(), 1, "the restart lost the object");
}

// ---------------------------------------------------------------------------------------
// The access log

/// Log tools count hits and misses from field 4; each way of answering has its code.
#[test]
fn access_log_names_each_cache_outcome() {
    let origin = Origin::start(|request| {
        let validators = [("ETag", "\"v1\""), ("Last-Modified", LAST_MODIFIED)];
        let revalidating = request.header("if-none-match") == Some("\"v1\"");
        let max_age = if request.target == "/fresh" {
            "max-age=60"
        } else {
            "max-age=0"
        };
        let mut fields = vec![("Cache-Control", max_age)];
        fields.extend(validators);
        Reply::Send(match request.target.as_str() {
            "/modified" => response("200 OK", &fields, b"changed"),
            _ if revalidating => head("304 Not Modified", &fields),
            _ => response("200 OK", &fields, b"logged"),
        })
    });
    let log = TempFile::new("caching.log");
    let proxy = Proxy::start(&["--admit-after", "0", "--access-log", log.arg()]);
    let (fresh_url, unmodified, modified) = (
        origin.url("/fresh"),
        origin.url("/unmodified"),
        origin.url("/modified"),
    );
    let steps: [(&str, &str, Fields, u16, &str); 10] = [
        ("GET", &fresh_url, &[], 200, "TCP_MISS/200"),
        ("GET", &fresh_url, &[], 200, "TCP_HIT/200"),
        ("HEAD", &fresh_url, &[], 200, "TCP_HIT/200"),
        (
            "GET",
            &fresh_url,
            &[("Range", "bytes=0-1")],
            206,
            "TCP_HIT/206",
        ),
        (
            "GET",
            &fresh_url,
            &[("If-None-Match", "\"v1\"")],
            304,
            "TCP_IMS_HIT/304",
        ),
        (
            "GET",
            &fresh_url,
            &[("Cache-Control", "no-cache")],
            200,
            "TCP_CLIENT_REFRESH_MISS/200",
        ),
        ("GET", &unmodified, &[], 200, "TCP_MISS/200"),
        ("GET", &unmodified, &[], 200, "TCP_REFRESH_UNMODIFIED/200"),
        ("GET", &modified, &[], 200, "TCP_MISS/200"),
        ("GET", &modified, &[], 200, "TCP_REFRESH_MODIFIED/200"),
    ];
    let mut expected = Vec::new();
    for (method, url, fields, status, code) in steps {
        let answer = fetch(&proxy, method, url, fields);
        assert_eq!(answer.status, status, "{method} {url} {fields:?}");
        expected.push(format!("{code} {method} {url}"));
    }
    let lines = wait_for_log_lines(&log, steps.len());
    let got: Vec<String> = lines.iter().map(|l| outcome(l)).collect();
    assert_eq!(got, expected, "log:\n{lines:#?}");
    assert_eq!(origin.requests(), 6);
}

/// A client that hangs up while a hit's body is still being written did not get the
/// object: its line says TCP_HIT_ABORTED, not TCP_HIT (which log tools would count as
/// a whole object served from the cache), with the bytes written before it left.
#[test]
fn a_client_leaving_during_a_hit_is_logged_hit_aborted() {
    // Far more than the socket buffers between larder and the client can hold (the
    // kernel caps larder's send buffer at a few MiB), so larder is still writing when
    // the client goes; and under a quarter of the 64 MiB cache, the most one object
    // may take.
    const SIZE: usize = 12 << 20;
    const READ: usize = 64 << 10;
    let body = pattern(SIZE);
    let reply = fresh(&body);
    let origin = Origin::start(move |_| Reply::Send(reply.clone()));
    let log = TempFile::new("hit-aborted.log");
    let proxy = Proxy::start(&[
        "--admit-after",
        "0",
        "--cache-size",
        "64M",
        "--cache-max-object",
        "16M",
        "--access-log",
        log.arg(),
    ]);
    let url = origin.url("/large");
    let miss = proxy.get(&url);
    assert!(miss.body == body, "the miss's body");
    assert_cache_status(&miss, &["stored"], &[]);

    let mut client = proxy.client();
    client.send(request("GET", &url, &[]).as_bytes());
    let hit = client.read_head();
    assert_cache_status(&hit, &["hit"], &[]);
    assert!(
        client.read_exact(READ) == body[..READ],
        "the hit's first bytes"
    );
    // Closing with unread bytes makes the kernel reset the connection, as a browser
    // tab closed mid-download does.
    drop(client);

    let lines = wait_for_log_lines(&log, 2);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let fields: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        outcome(&lines[1]),
        format!("TCP_HIT_ABORTED/200 GET {url}"),
        "{lines:#?}"
    );
    let bytes: usize = fields[4].parse().expect("a byte count");
    assert!(
        bytes >= hit.raw.len() + READ && bytes < hit.raw.len() + SIZE,
        "{bytes} bytes logged for a hit cut after at least {READ} of {SIZE}: {}",
        lines[1]
    );
    assert_eq!(origin.requests(), 1);
}

/// RFC 9111 §4.4: a 3xx is a non-error status too, so a POST, PUT or DELETE answered
/// with a redirect (a 303 See Other after a form is the common case) removes the stored
/// target URI, and the same-origin URI its Location names, whether relative or absolute.
#[test]
fn an_unsafe_method_answered_with_a_redirect_invalidates_target_and_location() {
    let origin = Origin::start(|request| {
        if request.method == "GET" {
            return Reply::Send(fresh(request.target.as_bytes()));
        }
        let host = request.header("host").unwrap_or("");
        let result = request.target.replace("/target-", "/result-");
        let (status, location) = match request.method.as_str() {
            "POST" => ("303 See Other", result),
            "PUT" => ("307 Temporary Redirect", format!("http://{host}{result}")),
            _ => ("308 Permanent Redirect", result),
        };
        Reply::Send(response(status, &[("Location", &location)], b"moved"))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    for (method, status) in [("POST", 303), ("PUT", 307), ("DELETE", 308)] {
        let paths = [format!("/target-{method}"), format!("/result-{method}")];
        for path in &paths {
            proxy.get(&origin.url(path));
            assert_cache_status(&proxy.get(&origin.url(path)), &["hit"], &[]);
        }
        let mut client = proxy.client();
        let mut unsafe_request =
            request(method, &origin.url(&paths[0]), &[("Content-Length", "4")]);
        unsafe_request.push_str("data");
        client.send(unsafe_request.as_bytes());
        let answer = client.read_response();
        assert_eq!(answer.status, status, "{method}");
        for path in &paths {
            let after = proxy.get(&origin.url(path));
            assert_eq!(after.text(), path.as_str());
            assert_cache_status(&after, &["fwd=miss"], &["hit"]);
            let gets = requests_for(&origin, path)
                .iter()
                .filter(|r| r.method == "GET")
                .count();
            assert_eq!(gets, 2, "{method} answered {status} left {path} stored");
        }
    }
}

/// RFC 9111 §4.4: a cache must not invalidate a Location or Content-Location whose
/// origin differs from the request's, or any site could empty another's entries by
/// naming them in an answer to a POST. Another host name for the same server and
/// another port are other origins; the same host and port is invalidated.
#[test]
fn location_and_content_location_on_another_origin_are_not_invalidated() {
    let other = Origin::start(|request| Reply::Send(fresh(request.target.as_bytes())));
    let elsewhere = other.url("/other-port");
    let origin = Origin::start(move |request| {
        if request.method == "GET" {
            return Reply::Send(fresh(request.target.as_bytes()));
        }
        let host = request.header("host").unwrap_or("");
        let port = host.rsplit(':').next().unwrap_or("");
        let (location, content_location) = if request.target == "/form-away" {
            // The same server by another name, and another server.
            (
                format!("http://localhost:{port}/by-name"),
                elsewhere.clone(),
            )
        } else {
            (
                format!("http://{host}/same"),
                format!("http://{host}/same-too"),
            )
        };
        Reply::Send(response(
            "303 See Other",
            &[
                ("Location", &location),
                ("Content-Location", &content_location),
            ],
            b"see other",
        ))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let by_name = format!("http://localhost:{}/by-name", origin.port());
    let other_port = other.url("/other-port");
    let same = [origin.url("/same"), origin.url("/same-too")];
    let stored = [&by_name, &other_port, &same[0], &same[1]];
    for url in stored {
        proxy.get(url);
        assert_cache_status(&proxy.get(url), &["hit"], &[]);
    }
    let post = |path: &str| {
        let mut client = proxy.client();
        client.send(request("POST", &origin.url(path), &[("Content-Length", "0")]).as_bytes());
        assert_eq!(client.read_response().status, 303, "POST {path}");
    };

    post("/form-away");
    for url in [&by_name, &other_port] {
        let after = proxy.get(url);
        assert_cache_status(&after, &["hit"], &[]);
    }
    assert_eq!(requests_for(&origin, "/by-name").len(), 1);
    assert_eq!(requests_for(&other, "/other-port").len(), 1);

    // The control: the same names on the request's own origin are invalidated.
    post("/form-here");
    for (url, path) in same.iter().zip(["/same", "/same-too"]) {
        assert_cache_status(&proxy.get(url), &["fwd=miss"], &["hit"]);
        assert_eq!(requests_for(&origin, path).len(), 2, "{url} stayed stored");
    }
}

/// RFC 9110 §15.1 and RFC 9111 §4.2.2: without explicit freshness, a response is stored
/// and served fresh by heuristic (from its Last-Modified) only if its status is
/// heuristically cacheable, which is exactly 200, 203, 204, 300, 301, 308, 404, 405,
/// 410, 414 and 501. The same response with any other status goes to the origin every
/// time.
#[test]
fn only_heuristically_cacheable_statuses_are_stored_without_explicit_freshness() {
    const STORED: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];
    const NOT_STORED: [u16; 12] = [201, 202, 302, 303, 307, 400, 401, 403, 500, 502, 503, 504];
    let origin = Origin::start(|request| {
        let code = request.target.trim_start_matches("/status-");
        let status = format!("{code} Status {code}");
        let ten_days_ago = http_date(now_secs() - 10 * 86_400);
        let fields = [("Last-Modified", ten_days_ago.as_str())];
        Reply::Send(if code == "204" {
            head(&status, &fields)
        } else {
            response(&status, &fields, request.target.as_bytes())
        })
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    for code in STORED.iter().chain(&NOT_STORED) {
        let path = format!("/status-{code}");
        let url = origin.url(&path);
        let first = proxy.get(&url);
        let second = proxy.get(&url);
        for answer in [&first, &second] {
            assert_eq!(answer.status, *code, "head:\n{}", head_text(answer));
        }
        if STORED.contains(code) {
            assert_cache_status(&first, &["stored"], &[]);
            assert_cache_status(&second, &["hit"], &[]);
            assert_eq!(requests_for(&origin, &path).len(), 1, "{code} not stored");
        } else {
            assert_cache_status(&first, &[], &["stored"]);
            assert_cache_status(&second, &[], &["hit"]);
            assert_eq!(requests_for(&origin, &path).len(), 2, "{code} was stored");
        }
    }
}

/// Stores `url` through `proxy`, then asks for it again on a client of its own that
/// has read only the hit's head: the client that reads slowly.
fn slow_hit(proxy: &Proxy, url: &str) -> Client {
    let stored = proxy.get(url);
    assert_cache_status(&stored, &["stored"], &[]);
    let mut slow = proxy.client();
    slow.send(request("GET", url, &[]).as_bytes());
    let head = slow.read_head();
    assert_eq!(head.status, 200);
    assert_cache_status(&head, &["hit"], &[]);
    slow
}

/// Object `n`'s body, `len` bytes: a run of 65521 bytes (a prime, so it lines up with
/// no page) repeated, quick to make even in a debug build, and different for each `n`.
fn numbered_body(n: usize, len: usize) -> Vec<u8> {
    let run: Vec<u8> = (0..65_521).map(|i: usize| (i * 31 + n * 7) as u8).collect();
    let mut body = run.repeat(len / run.len() + 1);
    body.truncate(len);
    body
}

/// An origin answering `/obj/N` with [`numbered_body`] `N` of `len` bytes, cacheable
/// for ten minutes.
fn numbered_origin(len: usize) -> Origin {
    Origin::start(move |request| {
        let n: usize = request
            .target
            .trim_start_matches("/obj/")
            .parse()
            .unwrap_or(0);
        Reply::Send(response(
            "200 OK",
            &[("Cache-Control", "max-age=600")],
            &numbered_body(n, len),
        ))
    })
}

/// A hit is written from the cache file while the client reads it; the object stays
/// pinned meanwhile, so the ring, wrapping over the file several times under other
/// responses being stored, never writes over the bytes not yet sent: a client that
/// reads slowly still gets the exact body.
#[test]
fn a_hit_read_slowly_keeps_its_bytes_while_the_ring_wraps() {
    // Far more than the kernel's socket buffers take in while the client does not read.
    const LEN: usize = 20 << 20;
    let origin = numbered_origin(LEN);
    let proxy = Proxy::start(&[
        "--admit-after",
        "0",
        "--cache-size",
        "96M",
        "--cache-max-object",
        "24M",
    ]);
    // The hit starts; the client reads its head and a little, then stops reading, so
    // most of the body waits in the cache file.
    let mut slow = slow_hit(&proxy, &origin.url("/obj/0"));
    let mut got = slow.read_exact(16 * 1024);

    // Twelve more objects of the same size (some are refused while the cache waits for a
    // sync; the others are stored): the 96 MiB ring wraps around the pin.
    for n in 1..13 {
        let other = proxy.get(&origin.url(&format!("/obj/{n}")));
        assert_eq!(other.body, numbered_body(n, LEN), "/obj/{n}");
    }
    got.extend_from_slice(&slow.read_exact(LEN - got.len()));
    assert!(
        got == numbered_body(0, LEN),
        "the slow client's body changed under it"
    );
    assert!(origin.requests() >= 13);
}

/// A hit small enough that larder hands all of it to the socket while the client is not
/// reading: the object is then unpinned and the ring may write over its room, while most
/// of the body still waits in the kernel (larder's send queue and the client's receive
/// queue). The bytes the client reads afterwards must still be the stored ones: whatever
/// larder gives the kernel must not refer to pages of the cache file that the ring
/// rewrites in place.
#[test]
fn a_hit_handed_to_the_socket_keeps_its_bytes_while_the_ring_writes_over_its_room() {
    const LEN: usize = 1 << 20;
    const ATTEMPTS: usize = 80;
    let origin = numbered_origin(LEN);
    // A ring of 8 MiB: the objects stored afterwards pass over the first one's room.
    let proxy = Proxy::start(&[
        "--admit-after",
        "0",
        "--cache-size",
        "8M",
        "--cache-max-object",
        "2M",
        "--cache-sync",
        "1",
    ]);
    let mut slow = slow_hit(&proxy, &origin.url("/obj/0"));
    // larder has handed the whole body to the kernel: the hit is over on its side.
    assert!(
        wait_until(|| proxy.metric("larder_cache_served_bytes_total") >= LEN as f64),
        "the body did not fit in the socket buffers"
    );

    // Twenty more objects stored, over twice what the ring holds: the hit's record,
    // given a second chance where it stands on the first lap, is overwritten on the
    // second. A store refused while the cache waits for its sync is tried again.
    let mut stored_after = 0;
    for n in 1..=ATTEMPTS {
        let other = proxy.get(&origin.url(&format!("/obj/{n}")));
        assert_eq!(other.body, numbered_body(n, LEN), "/obj/{n}");
        if cache_status(&other).iter().any(|m| m == "stored") {
            stored_after += 1;
            if stored_after == 20 {
                break;
            }
        } else {
            thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(stored_after, 20, "the ring did not wrap twice");
    let got = slow.read_exact(LEN);
    assert!(
        got == numbered_body(0, LEN),
        "the slow client's body changed under it"
    );
}
