//! When the origin is down: a stored entry whose revalidation fails (no answer, a
//! reset, a 5xx) answers in the origin's place when its `stale-if-error`, or
//! `--serve-stale`, covers how stale it is — never one that forbids it.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::caching::{assert_cache_status, response};
use crate::support::{request, wait_for_log_lines, Origin, Proxy, Reply, TempDir, TempFile};

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
