//! `stale-while-revalidate` (RFC 5861 §3): a stale entry answers at once and one
//! revalidation per entry runs in the background, on a connection with no client;
//! what may not be served stale, a stopping larder, `--offline` and the cap on
//! revalidations running behind answers all keep clients waiting for the origin or
//! answered from the store without one.

use super::pair::{Client, Origin, Pair};
use super::{forwarded, get, origin_addr};
use crate::cache::policy::BACKGROUND_MAX;

/// Stale on arrival (`Age` past `max-age`) by 60 s, within its 600 s of
/// stale-while-revalidate.
const SWR: &str = "max-age=60, stale-while-revalidate=600";

fn stored(cache_control: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nCache-Control: {cache_control}\r\nAge: 120\r\nETag: \"v1\"\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A larder that stored `path` (with `cache_control`) through the origin
/// connection it returns, kept in the pool.
fn with_stored(path: &str, cache_control: &str) -> (Pair, Origin) {
    let mut pair = Pair::new(&["--admit-after", "0"]);
    Origin::listen(origin_addr());
    let mut first = pair.client();
    let mut origin = forwarded(&mut pair, &mut first, &get(path));
    origin.send(&stored(cache_control, "old!"));
    pair.run();
    assert!(first.received().ends_with(b"\r\n\r\nold!"));
    (pair, origin)
}

fn ask(pair: &mut Pair, path: &str) -> Client {
    let mut client = pair.client();
    client.send(&get(path));
    pair.run();
    client
}

/// Request heads the origin received on `origin` so far.
fn requests(origin: &mut Origin) -> usize {
    String::from_utf8_lossy(origin.received())
        .matches("GET /")
        .count()
}

#[test]
fn a_stale_entry_answers_at_once_and_one_revalidation_runs_behind_it() {
    let (mut pair, mut origin) = with_stored("/swr", SWR);
    let mut second = ask(&mut pair, "/swr");
    let text = String::from_utf8_lossy(second.received()).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Cache-Status: larder; hit; ttl=-60; detail=stale-while-revalidate\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nold!"), "{text}");
    assert_eq!(pair.background(), 1, "one revalidation runs");
    let upstream = String::from_utf8_lossy(origin.received()).into_owned();
    assert!(
        upstream.ends_with("If-None-Match: \"v1\"\r\n\r\n"),
        "revalidated with the stored validator on the pooled connection: {upstream}"
    );

    // More clients meanwhile: answered stale, no second revalidation.
    for _ in 0..3 {
        let mut more = ask(&mut pair, "/swr");
        assert!(more.received().ends_with(b"\r\n\r\nold!"));
    }
    assert_eq!(pair.background(), 1);
    assert_eq!(requests(&mut origin), 2, "one conditional request in all");
    assert!(
        Origin::accept(origin_addr()).is_none(),
        "no second connection"
    );

    // The origin answers the revalidation: the entry is refreshed with its fields.
    origin.send(
        b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=600\r\n\
          X-Refreshed: yes\r\n\r\n",
    );
    pair.run();
    assert_eq!(pair.background(), 0, "its connection closed");
    let mut after = ask(&mut pair, "/swr");
    let text = String::from_utf8_lossy(after.received()).into_owned();
    assert!(text.contains("X-Refreshed: yes\r\n"), "{text}");
    assert!(text.contains("Cache-Status: larder; hit; ttl="), "{text}");
    assert!(!text.contains("ttl=-"), "fresh now: {text}");
    assert!(text.ends_with("\r\n\r\nold!"), "{text}");
    assert_eq!(requests(&mut origin), 2);
    assert_eq!(pair.ctx.stats.background_revalidations, 1);
    assert_eq!(pair.ctx.cache.refreshing(), 0, "the key is released");
}

/// A response that forbids serving it stale is revalidated while its client waits,
/// whatever its stale-while-revalidate says; so is every request while larder stops.
#[test]
fn what_may_not_be_served_stale_and_a_stopping_larder_revalidate_in_the_foreground() {
    for forbids in ["must-revalidate", "no-cache", "proxy-revalidate"] {
        let (mut pair, mut origin) = with_stored("/must", &format!("{SWR}, {forbids}"));
        let mut client = ask(&mut pair, "/must");
        assert!(client.received().is_empty(), "{forbids}: the client waits");
        assert_eq!(pair.background(), 0, "{forbids}");
        assert_eq!(
            requests(&mut origin),
            2,
            "{forbids}: revalidated for the client"
        );
    }
    let (mut pair, mut origin) = with_stored("/stopping", SWR);
    pair.ctx.draining = true;
    let mut client = ask(&mut pair, "/stopping");
    assert!(client.received().is_empty(), "the client waits");
    assert_eq!(pair.background(), 0);
    assert_eq!(requests(&mut origin), 2);
    origin.send(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
    pair.run();
    let text = String::from_utf8_lossy(client.received()).into_owned();
    assert!(text.contains("fwd=stale; fwd-status=304"), "{text}");
}

/// A client's demand for a fresher copy is not met with a stale one.
#[test]
fn a_client_that_asks_for_a_fresh_copy_waits_for_it() {
    let (mut pair, mut origin) = with_stored("/reload", SWR);
    let mut client = pair.client();
    let reload = format!(
        "GET http://{0}/reload HTTP/1.1\r\nHost: {0}\r\nCache-Control: max-age=0\r\n\r\n",
        origin_addr()
    );
    client.send(reload.as_bytes());
    pair.run();
    assert!(client.received().is_empty());
    assert_eq!(pair.background(), 0);
    assert_eq!(requests(&mut origin), 2);
}

/// `--offline` answers from the store and never asks the origin, in the background
/// or not.
#[test]
fn offline_starts_no_revalidation() {
    let (mut pair, mut origin) = with_stored("/offline", SWR);
    pair.ctx.cache.offline = true;
    let mut client = ask(&mut pair, "/offline");
    let text = String::from_utf8_lossy(client.received()).into_owned();
    assert!(text.ends_with("\r\n\r\nold!"), "{text}");
    assert!(!text.contains("detail=stale-while-revalidate"), "{text}");
    assert_eq!(pair.background(), 0);
    assert_eq!(requests(&mut origin), 1);
}

/// At most `BACKGROUND_MAX` revalidations run behind answers; the next stale entry
/// is revalidated while its client waits.
#[test]
fn revalidations_in_the_background_are_capped() {
    let (mut pair, mut origin) = with_stored("/0", SWR);
    for i in 1..=BACKGROUND_MAX {
        let mut client = pair.client();
        client.send(&get(&format!("/{i}")));
        pair.run();
        origin.send(&stored(SWR, "old!"));
        pair.run();
        assert!(client.received().ends_with(b"\r\n\r\nold!"), "stored /{i}");
    }
    for i in 0..BACKGROUND_MAX {
        let mut client = ask(&mut pair, &format!("/{i}"));
        assert!(client.received().ends_with(b"\r\n\r\nold!"), "/{i} at once");
    }
    assert_eq!(pair.background(), BACKGROUND_MAX);
    let mut last = ask(&mut pair, &format!("/{BACKGROUND_MAX}"));
    assert!(last.received().is_empty(), "over the cap: the client waits");
    assert_eq!(pair.background(), BACKGROUND_MAX);
    assert_eq!(pair.ctx.cache.refreshing(), BACKGROUND_MAX);
}

/// A revalidation behind stale answers that brings a new response larder may not
/// store takes the old entry out: it no longer answers stale; the next request goes
/// to the origin. One that fails (5xx) leaves it.
#[test]
fn a_new_response_that_is_not_stored_ends_the_stale_answers() {
    let (mut pair, mut origin) = with_stored("/gone", SWR);
    let mut stale = ask(&mut pair, "/gone");
    assert!(stale.received().ends_with(b"\r\n\r\nold!"));
    origin.send(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
    pair.run();
    assert_eq!(pair.background(), 0);
    let mut again = ask(&mut pair, "/gone");
    assert!(
        again.received().ends_with(b"\r\n\r\nold!"),
        "kept after a 5xx"
    );
    assert_eq!(pair.background(), 1);
    origin.send(b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 4\r\n\r\nnew!");
    pair.run();
    assert_eq!(pair.background(), 0);
    let mut next = ask(&mut pair, "/gone");
    assert!(next.received().is_empty(), "a miss: the client waits");
    assert_eq!(requests(&mut origin), 4);
    let upstream = String::from_utf8_lossy(origin.received()).into_owned();
    let last = upstream.rsplit("GET /").next().unwrap_or_default();
    assert!(
        !last.contains("If-None-Match"),
        "no validators left: {last}"
    );
}
