//! Access control: the client allow and deny lists, blocked sites from flags and list
//! files (reloaded while running), and blocked destination addresses.

use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    get, ok, wait_until, Client, Origin, Proxy, Reply, Server, TempFile, WAIT_LIMIT,
};

const OTHER_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn answering_origin() -> Origin {
    Origin::start(|_| Reply::Send(ok(b"allowed")))
}

/// Sends a GET for `url` from `src` and returns the status and page.
fn get_from(proxy: &Proxy, src: Ipv4Addr, url: &str) -> (u16, String, Client) {
    let mut client = Client::connect_from(src, proxy.addr());
    client.send(get(url).as_bytes());
    let response = client.read_response();
    (response.status, response.text(), client)
}

#[test]
fn client_outside_the_allow_list_is_403_then_closed() {
    let origin = answering_origin();
    let proxy = Proxy::start(&["--allow", "127.0.0.1/32"]);
    let (status, _, mut client) = get_from(&proxy, OTHER_CLIENT, &origin.url("/"));
    assert_eq!(status, 403);
    client.expect_closed();
    assert_eq!(origin.requests(), 0);

    let (status, page, _) = get_from(&proxy, Ipv4Addr::LOCALHOST, &origin.url("/"));
    assert_eq!(status, 200);
    assert_eq!(page, "allowed");
}

#[test]
fn deny_wins_over_allow() {
    let origin = answering_origin();
    let proxy = Proxy::start(&["--allow", "127.0.0.0/8", "--deny", "127.0.0.2/32"]);
    let (status, page, mut client) = get_from(&proxy, OTHER_CLIENT, &origin.url("/"));
    assert_eq!(status, 403);
    // The page says what was refused and what to do; the rule stays in larder's log.
    assert!(
        page.contains("does not serve your address, 127.0.0.2")
            && page.contains("ask the administrator"),
        "page: {page}"
    );
    assert!(
        !page.contains("--deny") && !page.contains("127.0.0.2/32"),
        "page: {page}"
    );
    client.expect_closed();
    assert_eq!(origin.requests(), 0);

    let (status, page, _) = get_from(&proxy, Ipv4Addr::LOCALHOST, &origin.url("/"));
    assert_eq!(status, 200);
    assert_eq!(page, "allowed");
}

#[test]
fn blocked_domain_and_its_subdomains_are_403_without_dns() {
    let origin = answering_origin();
    let proxy = Proxy::start(&[
        "--block",
        "blocked.test",
        "--block",
        "calhost",
        "--log-level",
        "info",
    ]);
    let exact = proxy.get("http://blocked.test/");
    assert_eq!(exact.status, 403);
    assert!(
        exact
            .text()
            .contains("The site blocked.test is blocked by this proxy"),
        "page: {}",
        exact.text()
    );
    assert!(!exact.text().contains("--block"), "page: {}", exact.text());
    for url in [
        "http://sub.blocked.test/",
        "http://a.b.blocked.test:8080/x",
        "http://SUB.Blocked.TEST./",
    ] {
        let response = proxy.get(url);
        assert_eq!(response.status, 403, "{url}");
        let page = response.text();
        assert!(
            page.contains("blocked.test") && !page.contains("--block"),
            "{url}: {page}"
        );
    }
    // The rule that matched is in larder's own log, for the operator. (Read as the
    // test's reader thread collects it, which may lag behind the answer.)
    let rule = "refused: site blocked.test (--block)";
    assert!(
        wait_until(|| proxy.stderr().contains(rule)),
        "log: {}",
        proxy.stderr()
    );
    // A suffix that does not start at a label boundary is another site: served.
    let served = proxy.get(&localhost_url(&origin));
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(served.text(), "allowed");
    assert_eq!(proxy.get("http://x.calhost/").status, 403);
}

/// `http://localhost:PORT/` for `origin`: a name that resolves without DNS (/etc/hosts),
/// so "not blocked" shows as an answer rather than a DNS failure.
fn localhost_url(origin: &Origin) -> String {
    format!("http://localhost:{}/", origin.port())
}

#[test]
fn connect_to_a_blocked_site_is_403() {
    let proxy = Proxy::start(&["--block", "blocked.test"]);
    let mut client = proxy.client();
    client.send(b"CONNECT www.blocked.test:443 HTTP/1.1\r\nHost: www.blocked.test:443\r\n\r\n");
    let response = client.read_response_for("CONNECT");
    assert_eq!(response.status, 403);
    assert!(
        response.text().contains("blocked.test"),
        "page: {}",
        response.text()
    );
}

#[test]
fn block_list_file_reads_plain_and_hosts_formats() {
    let origin = answering_origin();
    let list = TempFile::new("blocklist.txt");
    list.write(
        "# ads and trackers\n\
         plain.test\n\
         \n\
         \x20\x20Indented.Test\x20\x20\n\
         0.0.0.0 hosts.test\n\
         127.0.0.1 other.test # with a comment\n\
         # localhost\n",
    );
    let proxy = Proxy::start(&["--block-list", list.arg()]);
    for url in [
        "http://plain.test/",
        "http://www.plain.test/",
        "http://indented.test/",
        "http://hosts.test/x",
        "http://other.test/",
    ] {
        let response = proxy.get(url);
        assert_eq!(response.status, 403, "{url}");
        assert!(
            response.text().contains("blocked"),
            "{url}: {}",
            response.text()
        );
    }
    let served = proxy.get(&localhost_url(&origin));
    assert_eq!(
        served.status,
        200,
        "a commented-out line blocks: {}",
        served.text()
    );
    assert_eq!(served.text(), "allowed");
}

/// Polls `url` through `proxy` every 100 ms until `want(status)`, for up to 10 s: the
/// list is looked at once a second, and a busy machine may take longer.
fn eventually(proxy: &Proxy, url: &str, want: impl Fn(u16) -> bool) -> bool {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if want(proxy.get(url).status) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn block_list_file_changes_apply_without_restart() {
    let origin = answering_origin();
    let local = localhost_url(&origin);
    let list = TempFile::new("reload.txt");
    list.write("localhost\n");
    let proxy = Proxy::start(&["--block-list", list.arg()]);
    assert_eq!(proxy.get(&local).status, 403);

    // A different size, so the change shows even within one mtime tick.
    list.write("# localhost was removed\nsecond.test\n");
    assert!(
        eventually(&proxy, &local, |status| status == 200),
        "the site is not served {WAIT_LIMIT:?} after its rule was removed; stderr:\n{}",
        proxy.stderr()
    );
    assert_eq!(proxy.get(&local).text(), "allowed");
    assert_eq!(
        proxy.get("http://second.test/").status,
        403,
        "new rule not applied"
    );
}

#[test]
fn blocked_ip_is_403_for_literal_and_resolved_addresses() {
    let origin = answering_origin();
    let proxy = Proxy::start(&["--block-ip", "127.0.0.0/8"]);
    let detail = "is blocked by this proxy";

    let literal = proxy.get(&origin.url("/"));
    assert_eq!(literal.status, 403);
    assert!(literal.text().contains(detail), "page: {}", literal.text());

    let resolved = proxy.get(&localhost_url(&origin));
    assert_eq!(resolved.status, 403);
    assert!(
        resolved.text().contains(detail),
        "page: {}",
        resolved.text()
    );

    assert_eq!(origin.conns(), 0);
}

#[test]
fn connect_to_a_blocked_ip_is_403() {
    let server = Server::start(drop);
    let port = server.port().to_string();
    let proxy = Proxy::start(&["--block-ip", "127.0.0.0/8", "--connect-ports", &port]);
    let mut client = proxy.client();
    let authority = server.authority();
    client.send(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes());
    assert_eq!(client.read_response_for("CONNECT").status, 403);
    assert_eq!(server.conns(), 0);
}
