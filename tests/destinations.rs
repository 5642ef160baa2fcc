//! A shared deployment: where clients may make larder go, and how many connections
//! each may hold.
//!
//! A client on another machine is played by a client bound to 127.0.0.2. The whole of
//! 127.0.0.0/8 is routed to this machine, but no interface has 127.0.0.2 as its
//! address, and larder counts as "on the machine" only a client whose address is one
//! of the machine's own (an interface's, 127.0.0.1, ::1): so 127.0.0.2 is judged as a
//! LAN client would be, while the origins on 127.0.0.1 are the machine's loopback
//! services such a client must not reach. Clients on 127.0.0.1 keep reaching them, as
//! every other test does.
//!
//! Nothing here ever connects beyond loopback: the link-local literals are asked for
//! with `--never-direct` and a parent on loopback, so even a broken rule would send
//! them to that parent (which the tests check saw nothing), never to 169.254.169.254.

use std::net::Ipv4Addr;

use crate::support::{
    get, ok, request, wait_for_log_lines, wait_until, Client, Origin, Proxy, Reply, Server,
    TempFile,
};

/// A client on another machine, as larder sees it.
const ELSEWHERE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Another one.
const NEIGHBOUR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Where the tests read `/metrics` from: an admin (loopback), not counted against the
/// clients above.
const MONITOR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

fn loopback_service() -> Origin {
    Origin::start(|_| Reply::Send(ok(b"loopback only")))
}

/// Sends `GET url` from `src` and returns the client with the response read.
fn get_from(proxy: &Proxy, src: Ipv4Addr, url: &str) -> (crate::support::Response, Client) {
    let mut client = Client::connect_from(src, proxy.addr());
    client.send(get(url).as_bytes());
    let response = client.read_response();
    (response, client)
}

/// A sample of `/metrics`, read from [`MONITOR`].
fn metric(proxy: &Proxy, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut client = Client::connect_from(MONITOR, proxy.addr());
    client.send(format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr()).as_bytes());
    let response = client.read_response();
    assert_eq!(response.status, 200, "/metrics: {}", response.text());
    crate::support::prom::parse(&response.text())
        .expect("/metrics parses")
        .get(name, labels)
        .unwrap_or_else(|| panic!("no {name}{labels:?} on /metrics"))
}

fn assert_destination_refused(response: &crate::support::Response, what: &str) {
    assert_eq!(response.status, 403, "{what}: {}", response.text());
    let status = response.header("Cache-Status").unwrap_or_default();
    assert!(
        status.contains("detail=destination-not-allowed"),
        "{what}: Cache-Status {status:?}"
    );
    let page = response.text();
    assert!(page.contains("ask the administrator"), "{what}: {page}");
    assert!(
        !page.contains("--allow-to"),
        "{what}: the rule stays in the log: {page}"
    );
}

#[test]
fn a_client_elsewhere_cannot_reach_the_machine_s_loopback_services() {
    let service = loopback_service();
    let proxy = Proxy::start(&["--allow", "127.0.0.0/8"]);
    let (response, _) = get_from(&proxy, ELSEWHERE, &service.url("/admin"));
    assert_destination_refused(&response, "127.0.0.1 from 127.0.0.2");
    let (response, _) = get_from(
        &proxy,
        ELSEWHERE,
        &format!("http://localhost:{}/", service.port()),
    );
    assert_destination_refused(&response, "localhost from 127.0.0.2");
    assert_eq!(service.requests(), 0, "nothing reached the service");
    // A client on the machine itself reaches it, as it could without larder.
    let (response, _) = get_from(&proxy, Ipv4Addr::LOCALHOST, &service.url("/admin"));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "loopback only");
    assert_eq!(
        metric(
            &proxy,
            "larder_denied_requests_total",
            &[("reason", "destination")]
        ),
        2.0
    );
}

#[test]
fn link_local_metadata_addresses_are_refused_before_a_hop_is_chosen() {
    // Every request goes to this parent, link-local literals included: a request the
    // rule let through would show up here, never on the network.
    let parent = Server::start(|_| {});
    let parent_arg = parent.authority();
    let proxy = Proxy::start(&[
        "--allow",
        "127.0.0.0/8",
        "--parent",
        &parent_arg,
        "--never-direct",
    ]);
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fe80::1]/",
        "http://0.0.0.0:8080/",
    ] {
        let (response, _) = get_from(&proxy, ELSEWHERE, url);
        assert_destination_refused(&response, url);
    }
    // CONNECT is held to the same rule.
    let mut client = Client::connect_from(ELSEWHERE, proxy.addr());
    client.send(b"CONNECT 169.254.169.254:443 HTTP/1.1\r\nHost: 169.254.169.254:443\r\n\r\n");
    assert_destination_refused(&client.read_response(), "CONNECT 169.254.169.254:443");
    assert_eq!(parent.conns(), 0, "nothing went to the parent");
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_after_dns() {
    let service = loopback_service();
    let hosts = TempFile::new("rebind.hosts");
    hosts.write("127.0.0.1 rebind.test\n");
    let log = TempFile::new("rebind.log");
    let proxy = Proxy::start(&[
        "--allow",
        "127.0.0.0/8",
        "--hosts",
        hosts.arg(),
        "--access-log",
        log.arg(),
    ]);
    let url = format!("http://rebind.test:{}/", service.port());
    let (response, _) = get_from(&proxy, ELSEWHERE, &url);
    assert_destination_refused(&response, "rebind.test from 127.0.0.2");
    let page = response.text();
    assert!(
        page.contains("rebind.test (127.0.0.1) is loopback"),
        "{page}"
    );
    assert_eq!(service.requests(), 0, "nothing reached the service");
    // The access log keeps Squid's TCP_DENIED/403 and names the address refused.
    let lines = wait_for_log_lines(&log, 1);
    let fields: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        (fields[2], fields[3], fields[6], fields[8]),
        (
            "127.0.0.2",
            "TCP_DENIED/403",
            url.as_str(),
            "HIER_NONE/127.0.0.1"
        ),
        "{lines:?}"
    );
    // From the machine itself the name works.
    let (response, _) = get_from(&proxy, Ipv4Addr::LOCALHOST, &url);
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn allow_to_opens_a_range_again() {
    let service = loopback_service();
    let hosts = TempFile::new("opened.hosts");
    hosts.write("127.0.0.1 opened.test\n");
    let proxy = Proxy::start(&[
        "--allow",
        "127.0.0.0/8",
        "--hosts",
        hosts.arg(),
        "--allow-to",
        "127.0.0.1/32",
    ]);
    let (response, _) = get_from(&proxy, ELSEWHERE, &service.url("/"));
    assert_eq!(response.status, 200, "{}", response.text());
    let url = format!("http://opened.test:{}/", service.port());
    let (response, _) = get_from(&proxy, ELSEWHERE, &url);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(service.requests(), 2);
    // Only that range: the rest of loopback stays shut.
    let (response, _) = get_from(&proxy, ELSEWHERE, "http://127.0.0.5:8080/");
    assert_destination_refused(&response, "127.0.0.5");
}

#[test]
fn plain_http_goes_only_to_http_ports() {
    let service = loopback_service();
    let port = service.port().to_string();
    let proxy = Proxy::start(&["--http-ports", "80,443"]);
    let response = proxy.get(&service.url("/"));
    assert_eq!(response.status, 403, "{}", response.text());
    let status = response.header("Cache-Status").unwrap_or_default();
    assert!(status.contains("detail=port-not-allowed"), "{status}");
    assert!(
        response.text().contains(&format!("port {port}")),
        "{}",
        response.text()
    );
    assert_eq!(service.requests(), 0);
    assert_eq!(
        metric(
            &proxy,
            "larder_denied_requests_total",
            &[("reason", "http-port")]
        ),
        1.0
    );
    drop(proxy);

    let listed = format!("80,{port}");
    let proxy = Proxy::start(&["--http-ports", &listed]);
    assert_eq!(proxy.get(&service.url("/")).status, 200);
    // The default is Squid's Safe_ports: SMTP's port is not among them.
    let proxy = Proxy::start(&[]);
    let response = proxy.get("http://127.0.0.1:25/");
    assert_eq!(response.status, 403, "{}", response.text());
    // CONNECT keeps --connect-ports.
    let mut client = proxy.client();
    let connect = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    client.send(connect.as_bytes());
    assert_eq!(client.read_response().status, 403);
    assert_eq!(
        metric(
            &proxy,
            "larder_denied_requests_total",
            &[("reason", "connect-port")]
        ),
        1.0
    );
}

#[test]
fn a_client_past_its_connection_limit_is_closed_at_accept_and_no_one_else_is() {
    let service = loopback_service();
    let proxy = Proxy::start(&[
        "--allow",
        "127.0.0.0/8",
        "--allow-to",
        "127.0.0.1/32",
        "--max-conns-per-client",
        "2",
    ]);
    let url = service.url("/");
    let ask = |client: &mut Client| {
        client.send(request("GET", &url, &[]).as_bytes());
        client.read_response().status
    };
    // Two connections, each answered (so larder has accepted and counted both).
    let mut held: Vec<Client> = (0..2)
        .map(|_| Client::connect_from(ELSEWHERE, proxy.addr()))
        .collect();
    for client in &mut held {
        assert_eq!(ask(client), 200);
    }
    // The third is closed as soon as larder accepts it, before anything is read.
    let mut third = Client::connect_from(ELSEWHERE, proxy.addr());
    let _ = third.try_send(get(&url).as_bytes());
    third.expect_closed();
    // Another client is served, and the first two connections still are.
    let mut neighbour = Client::connect_from(NEIGHBOUR, proxy.addr());
    assert_eq!(ask(&mut neighbour), 200);
    for client in &mut held {
        assert_eq!(ask(client), 200);
    }
    assert_eq!(
        metric(&proxy, "larder_client_connections_over_limit_total", &[]),
        1.0
    );
    // Once one of them closes, the client may open another.
    drop(held.pop());
    let mut tries = 0;
    let reopened = wait_until(|| {
        tries += 1;
        let mut again = Client::connect_from(ELSEWHERE, proxy.addr());
        let asked = request("GET", &url, &[("Connection", "close")]);
        again.try_send(asked.as_bytes()).is_ok()
            && again.read_to_close().starts_with(b"HTTP/1.1 200 ")
    });
    assert!(reopened, "no new connection accepted after {tries} tries");
}

#[test]
fn what_a_name_on_the_machine_answered_is_never_a_hit_for_a_client_elsewhere() {
    let service = Origin::start(|_| {
        let body = b"private page";
        let head = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut reply = head.into_bytes();
        reply.extend_from_slice(body);
        Reply::Send(reply)
    });
    let hosts = TempFile::new("private.hosts");
    hosts.write("127.0.0.1 private.test\n");
    let proxy = Proxy::start(&[
        "--allow",
        "127.0.0.0/8",
        "--admit-after",
        "0",
        "--hosts",
        hosts.arg(),
    ]);
    // Fetched twice from the machine itself: not stored, since the name could be
    // asked for by a client elsewhere, whose hit would not be judged again.
    let by_name = format!("http://private.test:{}/", service.port());
    for _ in 0..2 {
        let (response, _) = get_from(&proxy, Ipv4Addr::LOCALHOST, &by_name);
        assert_eq!(response.status, 200, "{}", response.text());
    }
    assert_eq!(
        service.requests(),
        2,
        "the response under a name was not stored"
    );
    let (response, _) = get_from(&proxy, ELSEWHERE, &by_name);
    assert_destination_refused(&response, "private.test from 127.0.0.2");
    // The same response under its literal is stored: a literal is judged before the
    // cache, for every client.
    let literal = service.url("/");
    for _ in 0..2 {
        let (response, _) = get_from(&proxy, Ipv4Addr::LOCALHOST, &literal);
        assert_eq!(response.status, 200, "{}", response.text());
    }
    assert_eq!(
        service.requests(),
        3,
        "the second request for the literal was a hit"
    );
    let (response, _) = get_from(&proxy, ELSEWHERE, &literal);
    assert_destination_refused(&response, "the stored literal from 127.0.0.2");
    assert_eq!(service.requests(), 3);
}
