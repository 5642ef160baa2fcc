//! When the origin is down: a stored entry whose revalidation fails (no answer, a
//! reset, a 5xx) answers in the origin's place when its `stale-if-error`, or
//! `--serve-stale`, covers how stale it is — never one that forbids it. And when the
//! origin is slow: a stale entry within its `stale-while-revalidate` answers at once
//! while one revalidation runs behind it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::caching::{assert_cache_status, response};
use crate::support::{
    request, wait_for_log_lines, wait_until, Gate, Origin, Proxy, Reply, TempDir, TempFile,
};

/// An origin whose first answer is `fields` with the body `kept` (stale on arrival:
/// `Age: 120` against the `max-age=60` the caller puts in `fields`), and whose later
/// answers are `then`.
fn fails_after_the_first(
    fields: &'static [(&'static str, &'static str)],
    then: fn() -> Reply,
) -> Origin {
    let served = AtomicUsize::new(0);
    Origin::start(move |_| {
        if served.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Send(response("200 OK", fields, b"kept"))
        } else {
            then()
        }
    })
}

const STALE_IF_ERROR: &[(&str, &str)] = &[
    ("Cache-Control", "max-age=60, stale-if-error=3600"),
    ("Age", "120"),
    ("ETag", "\"v1\""),
];

#[test]
fn a_stale_entry_answers_when_the_origin_closes_without_answering() {
    let origin = fails_after_the_first(STALE_IF_ERROR, || Reply::Close);
    let log = TempFile::new("stale.log");
    let proxy = Proxy::start(&["--admit-after", "0", "--access-log", log.arg()]);
    let url = origin.url("/down");
    let first = proxy.get(&url);
    assert_cache_status(&first, &["fwd=miss", "stored"], &[]);
    let stale = proxy.get(&url);
    assert_eq!(stale.status, 200, "{}", stale.text());
    assert_eq!(stale.body, b"kept");
    assert_cache_status(&stale, &["hit", "fwd=stale"], &["fwd-status=304"]);
    assert!(origin.requests() >= 2, "it was revalidated first");
    let lines = wait_for_log_lines(&log, 2);
    assert!(
        lines.iter().any(|l| l.contains("TCP_REFRESH_FAIL_OLD/200")),
        "{lines:?}"
    );
}

#[test]
fn a_stale_entry_answers_a_5xx_and_says_so() {
    let origin = fails_after_the_first(STALE_IF_ERROR, || {
        Reply::Send(response(
            "503 Service Unavailable",
            &[],
            b"down for maintenance",
        ))
    });
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/maintenance");
    proxy.get(&url);
    let stale = proxy.get(&url);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, b"kept");
    assert_cache_status(&stale, &["hit", "fwd=stale", "fwd-status=503"], &[]);
    // The connection goes on: the next request is answered the same way.
    let again = proxy.get(&url);
    assert_eq!(again.body, b"kept");
}

#[test]
fn serve_stale_extends_to_responses_that_say_nothing_but_never_to_must_revalidate() {
    const SILENT: &[(&str, &str)] = &[("Cache-Control", "max-age=60"), ("Age", "120")];
    const MUST: &[(&str, &str)] = &[
        (
            "Cache-Control",
            "max-age=60, must-revalidate, stale-if-error=3600",
        ),
        ("Age", "120"),
    ];
    // Without --serve-stale, a response that says nothing is not served stale.
    let origin = fails_after_the_first(SILENT, || Reply::Close);
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/silent");
    proxy.get(&url);
    assert_eq!(proxy.get(&url).status, 502);

    let origin = fails_after_the_first(SILENT, || Reply::Close);
    let proxy = Proxy::start(&["--admit-after", "0", "--serve-stale", "86400"]);
    let url = origin.url("/silent");
    proxy.get(&url);
    let stale = proxy.get(&url);
    assert_eq!(stale.status, 200, "{}", stale.text());
    assert_eq!(stale.body, b"kept");

    let origin = fails_after_the_first(MUST, || Reply::Close);
    let proxy = Proxy::start(&["--admit-after", "0", "--serve-stale", "86400"]);
    let url = origin.url("/must");
    proxy.get(&url);
    assert_eq!(
        proxy.get(&url).status,
        502,
        "must-revalidate is never served stale"
    );
}

#[test]
fn offline_answers_what_is_stored_fresh_or_stale_and_504s_the_rest() {
    let cache = TempDir::new("offline");
    let origin = Origin::start(|request| {
        let fields: &[(&str, &str)] = match request.target.as_str() {
            "/fresh" => &[("Cache-Control", "max-age=600")],
            "/stale" => &[("Cache-Control", "max-age=60"), ("Age", "120")],
            _ => &[
                ("Cache-Control", "max-age=60, must-revalidate"),
                ("Age", "120"),
            ],
        };
        Reply::Send(response("200 OK", fields, request.target.as_bytes()))
    });
    let mut online = Proxy::start(&["--admit-after", "0", "--cache-dir", cache.arg()]);
    for path in ["/fresh", "/stale", "/must"] {
        assert_eq!(online.get(&origin.url(path)).status, 200);
    }
    assert_eq!(online.stop(), Some(0));
    let fetched = origin.requests();

    let offline = Proxy::start(&["--offline", "--cache-dir", cache.arg()]);
    for path in ["/fresh", "/stale"] {
        let answer = offline.get(&origin.url(path));
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        assert_eq!(answer.body, path.as_bytes());
        assert_cache_status(&answer, &["hit"], &[]);
    }
    // A reload asks for a fresh copy, which cannot be had: the stored one answers.
    let mut client = offline.client();
    client.send(
        request(
            "GET",
            &origin.url("/stale"),
            &[("Cache-Control", "no-cache")],
        )
        .as_bytes(),
    );
    assert_eq!(client.read_response().status, 200);
    for path in ["/must", "/never-fetched"] {
        let answer = offline.get(&origin.url(path));
        assert_eq!(answer.status, 504, "{path}: {}", answer.text());
        assert!(answer.text().contains("offline"), "{}", answer.text());
    }
    assert_eq!(origin.requests(), fetched, "nothing is fetched offline");
}

/// The origin holds its answer to the revalidation until the test opens the gate:
/// every client meanwhile is answered from the stale entry, at once, and says so; the
/// origin sees one conditional request however many clients asked; its answer then
/// replaces the entry, which later clients get fresh.
#[test]
fn a_stale_entry_answers_before_the_origin_and_is_revalidated_once_behind_it() {
    const SWR: &[(&str, &str)] = &[
        ("Cache-Control", "max-age=60, stale-while-revalidate=600"),
        ("Age", "120"),
        ("ETag", "\"v1\""),
    ];
    let gate = Gate::new();
    let held = Arc::clone(&gate);
    let served = AtomicUsize::new(0);
    let origin = Origin::start(move |_| {
        if served.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::Send(response("200 OK", SWR, b"old!"));
        }
        held.wait();
        let fresh = [("Cache-Control", "max-age=600"), ("ETag", "\"v2\"")];
        Reply::Send(response("200 OK", &fresh, b"new!"))
    });
    let log = TempFile::new("swr.log");
    let proxy = Proxy::start(&["--admit-after", "0", "--access-log", log.arg()]);
    let url = origin.url("/swr");
    assert_eq!(proxy.get(&url).body, b"old!");

    // Several clients at once, then one after another: all answered while the origin
    // holds the revalidation.
    let mut clients: Vec<_> = (0..3).map(|_| proxy.client()).collect();
    for client in &mut clients {
        client.send(crate::support::get(&url).as_bytes());
    }
    let mut stale: Vec<_> = clients.iter_mut().map(|c| c.read_response()).collect();
    stale.push(proxy.get(&url));
    for answer in &stale {
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.body, b"old!");
        assert_cache_status(answer, &["hit", "detail=stale-while-revalidate"], &[]);
    }
    assert!(
        wait_until(|| origin.requests() == 2),
        "the revalidation went out"
    );
    let revalidation = origin.seen().pop().expect("a second request");
    assert_eq!(revalidation.header("if-none-match"), Some("\"v1\""));
    assert_eq!(proxy.metric("larder_background_revalidations_total"), 0.0);

    gate.open();
    assert!(
        wait_until(|| proxy.get(&url).body == b"new!"),
        "the revalidation's answer replaced the entry"
    );
    let fresh = proxy.get(&url);
    assert_eq!(fresh.header("etag"), Some("\"v2\""));
    assert_cache_status(&fresh, &["hit"], &["detail=stale-while-revalidate"]);
    assert_eq!(origin.requests(), 2, "one revalidation for every client");
    assert_eq!(proxy.metric("larder_background_revalidations_total"), 1.0);
    let lines = wait_for_log_lines(&log, 7);
    let refresh: Vec<_> = lines
        .iter()
        .filter(|l| l.contains(" TCP_REFRESH_MODIFIED/200 "))
        .collect();
    assert_eq!(refresh.len(), 1, "{lines:?}");
    assert!(
        refresh[0].split_whitespace().nth(2) == Some("-"),
        "no client: {lines:?}"
    );
    let stale_hits = lines.iter().filter(|l| l.contains(" TCP_STALE_HIT/200 "));
    assert!(stale_hits.count() >= 4, "{lines:?}");
}
