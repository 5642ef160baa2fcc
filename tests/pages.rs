//! larder's own pages, fetched as a browser, Prometheus or a load balancer would:
//! in origin form straight at larder, and in absolute form naming larder's address.
//! Who may see which page, what each says, PURGE, and that none of it is ever
//! forwarded.

use std::net::Ipv4Addr;

use crate::support::{ok, pac, prom, request, Client, Origin, Proxy, Reply, Response, TempDir};

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

/// An absolute-form request naming larder's own address is answered by larder itself,
/// as its page, and never forwarded to itself (which would show as one more accepted
/// connection than the client's).
#[test]
fn absolute_form_naming_larders_own_address_gets_its_page() {
    const ACCEPTED: &str = "larder_client_connections_accepted_total";
    let proxy = Proxy::start(&[]);
    let before = proxy.metric(ACCEPTED);
    // As a literal…
    let direct = proxy.get(&format!("http://{}/health", proxy.addr()));
    assert_eq!(direct.status, 200);
    assert_eq!(direct.body, b"ok\n");
    // …and as a name that resolves to it (found after DNS, where it used to be 508).
    let named = proxy.get(&format!("http://localhost:{}/health", proxy.addr().port()));
    assert_eq!(named.status, 200, "{}", named.text());
    assert_eq!(named.body, b"ok\n");
    // The two requests' connections and the /metrics one: none from larder to itself.
    assert_eq!(proxy.metric(ACCEPTED), before + 3.0);
    // A CONNECT to itself is still a loop.
    let proxy = Proxy::start(&["--connect-ports", "1-65535"]);
    let mut client = proxy.client();
    let authority = proxy.addr().to_string();
    client.send(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes());
    assert_eq!(client.read_response_for("CONNECT").status, 508);
}

/// HAProxy's `option httpchk GET /health` sends HTTP/1.0 without Host.
#[test]
fn a_load_balancers_default_health_check_is_answered() {
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(b"GET /health HTTP/1.0\r\n\r\n");
    let health = client.read_response();
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok\n"[..]));
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

/// `/metrics` as Prometheus reads it: the strict reader accepts it, the figures
/// match what happened, and no counter goes down between two scrapes.
#[test]
fn metrics_are_strict_prometheus_text_and_count_what_happened() {
    let origin = Origin::start(|_| Reply::Send(fresh(b"counted")));
    let proxy = Proxy::start(&["--admit-after", "0", "--block", "blocked.test"]);
    let scrape = |proxy: &Proxy| {
        let metrics = page(proxy, "/metrics");
        assert_eq!(metrics.status, 200);
        assert_eq!(
            metrics.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        prom::parse(&metrics.text()).unwrap_or_else(|e| panic!("{e}\n{}", metrics.text()))
    };
    let before = scrape(&proxy);
    let url = origin.url("/counted");
    assert_eq!(proxy.get(&url).body, b"counted");
    assert_eq!(proxy.get(&url).body, b"counted");
    assert_eq!(proxy.get("http://www.blocked.test/").status, 403);
    let after = scrape(&proxy);
    prom::counters_grew_or_stayed(&before, &after).unwrap_or_else(|e| panic!("{e}"));
    let get = |name: &str, labels: &[(&str, &str)]| {
        after
            .get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?}"))
    };
    assert_eq!(get("larder_requests_total", &[("result", "TCP_HIT")]), 1.0);
    assert_eq!(get("larder_requests_total", &[("result", "TCP_MISS")]), 1.0);
    assert_eq!(
        get("larder_requests_total", &[("result", "TCP_DENIED")]),
        1.0
    );
    assert_eq!(get("larder_blocked_requests_total", &[]), 1.0);
    assert_eq!(get("larder_cache_hits_total", &[]), 1.0);
    assert_eq!(get("larder_cache_objects", &[]), 1.0);
    assert!(get("larder_cache_served_bytes_total", &[]) > 7.0);
    assert_eq!(get("larder_cache_write_errors_total", &[]), 0.0);
    assert_eq!(get("larder_cache_storing_paused", &[]), 0.0);
    // The scrape itself (one connection open, it) and the first one count too.
    assert!(get("larder_client_connections", &[]) >= 1.0);
    assert!(get("larder_client_connections_accepted_total", &[]) >= 5.0);
    assert_eq!(get("larder_requests_total", &[("result", "TAG_NONE")]), 1.0);
}

/// The PAC file larder serves, run as a browser runs it: everything through the
/// address the client reached larder by, except plain names, loopback and the
/// `--pac-direct` rules.
#[test]
fn the_pac_file_larder_serves_runs_in_a_javascript_engine() {
    let proxy = Proxy::start(&["--pac-direct", "10.0.0.0/8", "--pac-direct", "corp.example"]);
    let mut client = proxy.client();
    // As a browser on the LAN would ask: by the name it knows larder under.
    client.send(b"GET /proxy.pac HTTP/1.1\r\nHost: proxy.lan:3128\r\n\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/x-ns-proxy-autoconfig")
    );
    let through = "PROXY proxy.lan:3128; DIRECT";
    let cases = [
        ("http://example.com/", "example.com", through),
        ("http://intranet/", "intranet", "DIRECT"),
        ("http://127.0.0.1:8080/", "127.0.0.1", "DIRECT"),
        ("http://10.1.2.3/", "10.1.2.3", "DIRECT"),
        ("http://11.1.2.3/", "11.1.2.3", through),
        ("http://wiki.CORP.example/", "wiki.CORP.example", "DIRECT"),
        ("http://notcorp.example/", "notcorp.example", through),
        ("https://example.org/", "example.org", through),
    ];
    let asked: Vec<(&str, &str)> = cases.iter().map(|(u, h, _)| (*u, *h)).collect();
    let got = pac::eval_pac(&response.text(), &asked);
    let expected: Vec<&str> = cases.iter().map(|(_, _, e)| *e).collect();
    assert_eq!(got, expected);
    // The same file under its other name.
    client.send(format!("GET /wpad.dat HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr()).as_bytes());
    let wpad = client.read_response();
    assert_eq!(wpad.status, 200);
    assert!(
        wpad.text().contains(&format!("PROXY {}", proxy.addr())),
        "{}",
        wpad.text()
    );
}

/// The status page shows what happened, and escapes what clients sent.
#[test]
fn the_status_page_shows_the_figures_and_escapes_host_names() {
    let origin = Origin::start(|_| Reply::Send(fresh(b"shown")));
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let url = origin.url("/shown");
    proxy.get(&url);
    proxy.get(&url);
    let status = page(&proxy, "/").text();
    assert!(status.contains("127.0.0.1"), "the top hosts: {status}");
    assert!(status.contains(env!("CARGO_PKG_VERSION")), "{status}");
    assert!(!status.contains("<script"), "{status}");
    assert!(status.contains("name=\"viewport\""), "{status}");
}

/// While larder stores, it syncs the cache file every `--cache-sync` seconds (off the
/// loop), and `/metrics` says when it last did: the time moves past a store.
#[test]
fn the_cache_file_is_synced_while_storing_and_metrics_say_when() {
    let origin = Origin::start(|_| Reply::Send(fresh(b"synced")));
    let proxy = Proxy::start(&["--admit-after", "0", "--cache-sync", "1"]);
    let last_sync = |proxy: &Proxy| {
        let text = page(proxy, "/metrics").text();
        let parsed = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        parsed
            .get("larder_cache_last_sync_timestamp_seconds", &[])
            .unwrap_or_else(|| panic!("no last sync in\n{text}"))
    };
    // The first sync is made at start-up, before any request.
    let started = last_sync(&proxy);
    // A later second than that one, so a sync after the store is told apart.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let stored = proxy.get(&origin.url("/synced"));
    assert!(stored
        .header("cache-status")
        .is_some_and(|s| s.contains("stored")));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = last_sync(&proxy);
        if now > started {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sync after the store: last sync still at {now}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
