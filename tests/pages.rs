//! larder's own pages, fetched as a browser, Prometheus or a load balancer would:
//! in origin form straight at larder, and in absolute form naming larder's address.
//! Who may see which page, what each says, PURGE, and that none of it is ever
//! forwarded.

use std::net::Ipv4Addr;

use crate::support::{ok, request, Client, Origin, Proxy, Reply, Response, TempDir};

/// A client on 127.0.0.2: allowed by `--allow 127.0.0.0/8`, and not an admin under
/// `--admin 127.0.0.1/32` (the default, loopback, would include it).
const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// `GET path` in origin form, Host = larder's address, from `src`.
fn page_from(proxy: &Proxy, src: Ipv4Addr, method: &str, path: &str) -> Response {
    let mut client = Client::connect_from(src, proxy.addr());
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr());
    client.send(head.as_bytes());
    client.read_response_for(method)
}

fn page(proxy: &Proxy, path: &str) -> Response {
    page_from(proxy, Ipv4Addr::LOCALHOST, "GET", path)
}

fn fresh(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[test]
fn the_status_page_is_for_admins_only() {
    let proxy = Proxy::start(&["--allow", "127.0.0.0/8", "--admin", "127.0.0.1/32"]);
    let status = page(&proxy, "/");
    assert_eq!(status.status, 200);
    assert_eq!(
        status.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(status.header("cache-control"), Some("no-store"));
    assert!(status.text().contains("larder"), "{}", status.text());
    let refused = page_from(&proxy, OTHER, "GET", "/");
    assert_eq!(refused.status, 403);
    assert!(
        refused.text().contains("administrators"),
        "{}",
        refused.text()
    );
    let refused = page_from(&proxy, OTHER, "GET", "/metrics");
    assert_eq!(refused.status, 403);

    let proxy = Proxy::start(&["--allow", "127.0.0.0/8", "--admin", "127.0.0.2/32"]);
    assert_eq!(page_from(&proxy, OTHER, "GET", "/").status, 200);
    assert_eq!(page_from(&proxy, OTHER, "GET", "/metrics").status, 200);
    // --admin replaces the loopback default, as --allow does.
    assert_eq!(page(&proxy, "/metrics").status, 403);
}

#[test]
fn health_answers_anyone_allowed_and_no_one_else() {
    let proxy = Proxy::start(&["--allow", "127.0.0.0/8", "--deny", "127.0.0.3/32"]);
    for src in [Ipv4Addr::LOCALHOST, OTHER] {
        let health = page_from(&proxy, src, "GET", "/health");
        assert_eq!(health.status, 200, "{src}");
        assert_eq!(health.body, b"ok\n");
    }
    let head = page_from(&proxy, OTHER, "HEAD", "/health");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("3"));
    let denied = page_from(&proxy, Ipv4Addr::new(127, 0, 0, 3), "GET", "/health");
    assert_eq!(denied.status, 403);
}

#[test]
fn other_paths_and_methods_are_404_and_405_and_never_forwarded() {
    let origin = Origin::start(|_| Reply::Send(ok(b"origin")));
    let proxy = Proxy::start(&["--allow", "127.0.0.0/8", "--admin", "127.0.0.1/32"]);
    let missing = page_from(&proxy, OTHER, "GET", "/index.html?x=<b>");
    assert_eq!(missing.status, 404);
    let text = missing.text();
    assert!(text.contains("/proxy.pac"), "{text}");
    assert!(!text.contains("<b>"), "the path is not escaped: {text}");
    assert!(
        !text.contains("href=\"/\""),
        "a non-admin is shown the status page: {text}"
    );
    let admin = page(&proxy, "/nothing");
    assert_eq!(admin.status, 404);
    assert!(admin.text().contains("href=\"/\""), "{}", admin.text());
    let post = page_from(&proxy, Ipv4Addr::LOCALHOST, "POST", "/health");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // Host naming the origin: still larder's page, never the origin's.
    let mut client = proxy.client();
    client.send(format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", origin.authority()).as_bytes());
    assert_eq!(client.read_response().status, 200);
    assert_eq!(origin.requests(), 0);
}

#[test]
fn absolute_form_naming_larders_own_address_gets_its_page() {
    let proxy = Proxy::start(&[]);
    // As a literal…
    let direct = proxy.get(&format!("http://{}/health", proxy.addr()));
    assert_eq!(direct.status, 200);
    assert_eq!(direct.body, b"ok\n");
    // …and as a name that resolves to it (found after DNS, where it used to be 508).
    let named = proxy.get(&format!("http://localhost:{}/health", proxy.addr().port()));
    assert_eq!(named.status, 200, "{}", named.text());
    assert_eq!(named.body, b"ok\n");
    // A CONNECT to itself is still a loop.
    let proxy = Proxy::start(&["--connect-ports", "1-65535"]);
    let mut client = proxy.client();
    let authority = proxy.addr().to_string();
    client.send(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes());
    assert_eq!(client.read_response_for("CONNECT").status, 508);
}

#[test]
fn keep_alive_goes_on_after_a_page() {
    let origin = Origin::start(|_| Reply::Send(ok(b"origin")));
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    let host = proxy.addr();
    client.send(format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    assert_eq!(client.read_response().status, 200);
    client.send(request("GET", &origin.url("/x"), &[]).as_bytes());
    let proxied = client.read_response();
    assert_eq!(proxied.body, b"origin");
    client.send(format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    assert_eq!(client.read_response().body, b"ok\n");
}

#[test]
fn purge_removes_every_variant_for_good_and_only_for_admins() {
    let origin = Origin::start(|request| {
        let vary = request.target.starts_with("/vary");
        if vary {
            let lang = request
                .header("accept-language")
                .unwrap_or("none")
                .to_owned();
            let body = format!("in {lang}");
            Reply::Send(
                format!(
                    "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nVary: Accept-Language\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        } else {
            Reply::Send(fresh(b"plain"))
        }
    });
    let cache = TempDir::new("purge-cache");
    let dir = cache.path().to_str().unwrap_or(".").to_owned();
    let args = [
        "--admit-after",
        "0",
        "--allow",
        "127.0.0.0/8",
        "--admin",
        "127.0.0.1/32",
        "--cache-dir",
        &dir,
        "--cache-size",
        "1M",
    ];
    let proxy = Proxy::start(&args);
    let (plain, vary) = (origin.url("/plain"), origin.url("/vary"));
    let fetch = |proxy: &Proxy, url: &str, lang: &str| {
        let mut client = proxy.client();
        client.send(request("GET", url, &[("Accept-Language", lang)]).as_bytes());
        client.read_response()
    };
    for _ in 0..2 {
        fetch(&proxy, &plain, "en");
        fetch(&proxy, &vary, "en");
        fetch(&proxy, &vary, "fr");
    }
    assert_eq!(origin.requests(), 3, "the second round was not all hits");

    let purge = |src: Ipv4Addr, url: &str| {
        let mut client = Client::connect_from(src, proxy.addr());
        client.send(request("PURGE", url, &[]).as_bytes());
        client.read_response()
    };
    assert_eq!(purge(OTHER, &plain).status, 403, "a non-admin purged");
    assert_eq!(purge(Ipv4Addr::LOCALHOST, &plain).status, 200);
    assert_eq!(purge(Ipv4Addr::LOCALHOST, &vary).status, 200);
    assert_eq!(
        purge(Ipv4Addr::LOCALHOST, &plain).status,
        404,
        "purged twice"
    );
    drop(proxy);

    // Gone after a restart too, every variant of it.
    let proxy = Proxy::start(&args);
    let before = origin.requests();
    fetch(&proxy, &plain, "en");
    fetch(&proxy, &vary, "en");
    fetch(&proxy, &vary, "fr");
    assert_eq!(origin.requests(), before + 3, "a purged object came back");
}
