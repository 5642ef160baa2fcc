//! larder's own pages as their readers take them: the PAC file run by a PAC engine
//! (Node.js with the standard helpers, and headless Chromium loading a page through
//! larder by it), `/metrics` read by a strict Prometheus text-format reader. Each of
//! those tools is checked here too, so a test using one can trust it.

use std::net::{Ipv4Addr, SocketAddr};

use larder::access_log::ResultCode;
use larder::pages::metrics::{metrics_text, CONTENT_TYPE as METRICS_TYPE};
use larder::pages::pac::{pac_file, PacDirect};
use larder::stats::{CacheFigures, Snapshot, Stats};

use crate::support::browser::load_via_pac;
use crate::support::pac::eval_pac;
use crate::support::prom::{counters_grew_or_stayed, parse};
use crate::support::{larder_via, wait_for_log_lines, Origin, Proxy, Reply, TempFile};

const PROXY: &str = "PROXY 127.0.0.1:3128; DIRECT";

fn rules(list: &[&str]) -> Vec<PacDirect> {
    list.iter()
        .map(|r| r.parse().unwrap_or_else(|e| panic!("{r}: {e}")))
        .collect()
}

/// Asserts that each `(host, expected)` gets `expected` from `pac` (the URL is
/// `http://host/`, bracketed for IPv6).
fn assert_pac(pac: &str, cases: &[(&str, &str)]) {
    let urls: Vec<String> = cases
        .iter()
        .map(|(host, _)| {
            if host.contains(':') && !host.starts_with('[') {
                format!("http://[{host}]/")
            } else {
                format!("http://{host}/")
            }
        })
        .collect();
    let calls: Vec<(&str, &str)> = urls
        .iter()
        .zip(cases)
        .map(|(url, (host, _))| (url.as_str(), *host))
        .collect();
    let got = eval_pac(pac, &calls);
    for ((host, expected), got) in cases.iter().zip(&got) {
        assert_eq!(got, expected, "FindProxyForURL for host {host:?} in\n{pac}");
    }
}

#[test]
fn pac_file_sends_public_hosts_through_larder_and_local_ones_direct() {
    let pac = pac_file("127.0.0.1:3128", &[]);
    assert_pac(
        &pac,
        &[
            ("example.com", PROXY),
            ("EXAMPLE.com.", PROXY),
            ("93.184.216.34", PROXY),
            ("10.1.2.3", PROXY),
            ("2001:db8::1", PROXY),
            ("[2001:db8::1]", PROXY),
            ("intranet", "DIRECT"),
            ("localhost", "DIRECT"),
            ("LOCALHOST", "DIRECT"),
            ("app.localhost", "DIRECT"),
            ("notlocalhost", "DIRECT"), // a plain host name
            ("localhost.example", PROXY),
            ("127.0.0.1", "DIRECT"),
            ("127.200.3.4", "DIRECT"),
            ("128.0.0.1", PROXY),
            ("::1", "DIRECT"),
            ("[::1]", "DIRECT"),
        ],
    );
}

#[test]
fn pac_direct_ranges_match_ipv4_literals_and_domains_match_their_subdomains() {
    let pac = pac_file(
        "127.0.0.1:3128",
        &rules(&["10.0.0.0/8", "192.168.1.7", "corp.example"]),
    );
    assert_pac(
        &pac,
        &[
            ("10.0.0.1", "DIRECT"),
            ("10.255.255.255", "DIRECT"),
            ("11.0.0.1", PROXY),
            ("9.255.255.255", PROXY),
            ("192.168.1.7", "DIRECT"),
            ("192.168.1.8", PROXY),
            // A name is never resolved to be matched against a range (eval_pac fails
            // on any lookup).
            ("ten.example", PROXY),
            ("corp.example", "DIRECT"),
            ("a.CORP.example", "DIRECT"),
            ("x.y.corp.example.", "DIRECT"),
            ("notcorp.example", PROXY),
            ("corp.example.evil.test", PROXY),
            ("example", "DIRECT"),
        ],
    );
}

#[test]
fn pac_file_stays_valid_javascript_whatever_the_proxy_string() {
    for proxy in [
        "[::1]:3128",
        "a\"b'c\\d:1",
        "x\n}); alert(1); ({:1",
        "\u{2028}\u{2029}:1",
        "</script><!--:1",
        "é😀:1",
    ] {
        let pac = pac_file(proxy, &[]);
        let got = eval_pac(&pac, &[("http://example.com/", "example.com")]);
        assert_eq!(got, [format!("PROXY {proxy}; DIRECT")], "{pac}");
    }
    // A hand-made domain rule with quotes in it stays a string too.
    let pac = pac_file("p:1", &[PacDirect::Domain("a\"b.example".into())]);
    let got = eval_pac(
        &pac,
        &[("http://x/", "x.a\"b.example"), ("http://y/", "y.example")],
    );
    assert_eq!(got, ["DIRECT", "PROXY p:1; DIRECT"]);
}

#[test]
fn pac_evaluator_provides_the_standard_helpers() {
    let pac = r#"
        function FindProxyForURL(url, host) {
          if (shExpMatch(host, "*.glob.example")) return "GLOB";
          if (shExpMatch(url, "http://q?.example/*")) return "QMARK";
          if (localHostOrDomainIs(host, "www.local.example")) return "LOCAL";
          if (/^[0-9.]+$/.test(host) && isInNet(host, "172.16.0.0", "255.240.0.0")) return "NET";
          if (isPlainHostName(host)) return "PLAIN " + myIpAddress();
          if (dnsDomainIs(host, ".dom.example")) return "DOM";
          return "OTHER " + url;
        }"#;
    let got = eval_pac(
        pac,
        &[
            ("http://a.glob.example/", "a.glob.example"),
            ("http://q1.example/x", "q1.example"),
            ("http://www/", "www"),
            ("http://www.local.example/", "www.local.example"),
            ("http://172.31.255.255/", "172.31.255.255"),
            ("http://172.32.0.0/", "172.32.0.0"),
            ("http://printer/", "printer"),
            ("http://a.dom.example/", "a.dom.example"),
            ("http://dom.example/", "dom.example"),
        ],
    );
    assert_eq!(
        got,
        [
            "GLOB",
            "QMARK",
            "LOCAL",
            "LOCAL",
            "NET",
            "OTHER http://172.32.0.0/",
            "PLAIN 127.0.0.1",
            "DOM",
            "OTHER http://dom.example/",
        ]
    );
}

#[test]
#[should_panic(expected = "must not make the browser resolve names")]
fn pac_evaluator_fails_a_pac_that_resolves_names() {
    let pac = r#"function FindProxyForURL(url, host) {
        return isInNet(host, "10.0.0.0", "255.0.0.0") ? "DIRECT" : "PROXY p:1";
    }"#;
    eval_pac(pac, &[("http://name.example/", "name.example")]);
}

#[test]
#[should_panic(expected = "the PAC file does not run")]
fn pac_evaluator_fails_a_pac_that_is_not_javascript() {
    eval_pac(
        "function FindProxyForURL(url, host) { return \"x;",
        &[("http://a/", "a")],
    );
}

#[test]
#[should_panic(expected = "not a string")]
fn pac_evaluator_fails_a_pac_that_returns_no_string() {
    eval_pac(
        "function FindProxyForURL(url, host) {}",
        &[("http://a/", "a")],
    );
}

// ---------------------------------------------------------------------------------------
// /metrics

fn snapshot<'a>(
    st: &'a Stats,
    listen: &'a [SocketAddr],
    cache: Option<CacheFigures>,
) -> Snapshot<'a> {
    Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        now_unix: 1_700_000_100,
        stats: st,
        conns_open: 2,
        max_conns: 512,
        tunnels_open: 1,
        upstreams_idle: 3,
        upstreams_busy: 1,
        listen,
        draining: false,
        cache,
        parents: &[],
    }
}

fn figures() -> CacheFigures {
    CacheFigures {
        objects: 7,
        live_bytes: 70_000,
        capacity: 1 << 20,
        oldest: Some(1_699_999_000),
        write_errors: 1,
        paused_until: None,
        synced_at: Some(1_699_999_990),
    }
}

#[test]
fn metrics_text_passes_the_strict_reader_and_reads_back() {
    let mut st = Stats::new(1_700_000_000);
    st.record(1_700_000_010, ResultCode::Miss, 1000, "a.example");
    st.record(1_700_000_020, ResultCode::Hit, 250, "a.example");
    st.record(1_700_000_030, ResultCode::Tunnel, 4000, "b.example");
    st.tunnels = 1;
    let listen: [SocketAddr; 1] = [(Ipv4Addr::LOCALHOST, 3128).into()];

    let text = metrics_text(&snapshot(&st, &listen, Some(figures())));
    let m = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        m.get("larder_requests_total", &[("result", "TCP_HIT")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("larder_requests_total", &[("result", "TCP_DENIED")]),
        Some(0.0)
    );
    for code in ResultCode::ALL {
        assert!(
            m.get("larder_requests_total", &[("result", code.as_str())])
                .is_some(),
            "{code:?}"
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        m.get("larder_build_info", &[("version", version)]),
        Some(1.0)
    );
    assert_eq!(
        m.get("larder_start_time_seconds", &[]),
        Some(1_700_000_000.0)
    );
    assert_eq!(m.get("larder_cache_served_bytes_total", &[]), Some(250.0));
    assert_eq!(m.get("larder_client_sent_bytes_total", &[]), Some(5250.0));
    assert_eq!(m.get("larder_cache_hits_total", &[]), Some(1.0));
    assert_eq!(m.get("larder_cache_misses_total", &[]), Some(1.0));
    assert_eq!(
        m.get("larder_upstream_connections", &[("state", "idle")]),
        Some(3.0)
    );
    assert_eq!(m.get("larder_cache_bytes", &[]), Some(70_000.0));
    assert_eq!(m.get("larder_cache_capacity_bytes", &[]), Some(1_048_576.0));
    assert_eq!(m.get("larder_cache_storing_paused", &[]), Some(0.0));
    assert_eq!(m.get("larder_tunnels_established_total", &[]), Some(1.0));
    let family = m.family("larder_requests_total").expect("declared");
    assert_eq!(family.kind, "counter");
    assert!(!family.help.is_empty());
    assert_eq!(METRICS_TYPE, "text/plain; version=0.0.4; charset=utf-8");

    // Without a cache, still valid, the cache's gauges gone.
    let text = metrics_text(&snapshot(&st, &listen, None));
    let m = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(m.get("larder_cache_bytes", &[]), None);
    assert!(m.family("larder_cache_capacity_bytes").is_none());
    assert_eq!(m.get("larder_cache_hits_total", &[]), Some(1.0));
}

#[test]
fn counters_only_grow_between_two_scrapes() {
    let mut st = Stats::new(1_700_000_000);
    st.record(1_700_000_010, ResultCode::Miss, 1000, "a.example");
    let before = parse(&metrics_text(&snapshot(&st, &[], Some(figures())))).unwrap();
    st.record(1_700_000_050, ResultCode::Hit, 10, "a.example");
    st.conns_accepted += 3;
    let mut s = snapshot(&st, &[], Some(figures()));
    // Gauges may go down.
    s.conns_open = 0;
    s.cache = Some(CacheFigures {
        live_bytes: 10,
        ..figures()
    });
    let after = parse(&metrics_text(&s)).unwrap();
    counters_grew_or_stayed(&before, &after).unwrap();
    counters_grew_or_stayed(&after, &after).unwrap();

    let err = counters_grew_or_stayed(&after, &before).unwrap_err();
    assert!(err.contains("went down"), "{err}");
    let without_cache = parse(&metrics_text(&snapshot(&st, &[], None))).unwrap();
    let err = counters_grew_or_stayed(&after, &without_cache).unwrap_err();
    assert!(
        err.contains("larder_cache_write_errors_total") && err.contains("disappeared"),
        "{err}"
    );
}

/// A well-formed family to build bad cases around.
const GOOD: &str = "# HELP larder_x_total X.\n# TYPE larder_x_total counter\nlarder_x_total 1\n";

#[test]
fn the_metrics_reader_rejects_what_the_format_or_larder_forbids() {
    let cases: &[(&str, String, &str)] = &[
        ("empty", String::new(), "empty"),
        ("no trailing newline", GOOD.trim_end().to_string(), "newline"),
        (
            "sample without HELP or TYPE",
            "larder_y 1\n".into(),
            "without a preceding HELP and TYPE",
        ),
        (
            "sample without TYPE",
            "# HELP larder_y Y.\nlarder_y 1\n".into(),
            "without a preceding HELP and TYPE",
        ),
        (
            "sample without HELP",
            "# TYPE larder_y gauge\nlarder_y 1\n".into(),
            "without a preceding HELP and TYPE",
        ),
        (
            "duplicate HELP",
            "# HELP larder_y Y.\n# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y 1\n".into(),
            "a second HELP",
        ),
        (
            "duplicate TYPE",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\n# TYPE larder_y gauge\nlarder_y 1\n".into(),
            "a second TYPE",
        ),
        (
            "TYPE after samples",
            "# HELP larder_y Y.\nlarder_y 1\n# TYPE larder_y gauge\n".into(),
            "without a preceding",
        ),
        (
            "counter not ending in _total",
            "# HELP larder_y Y.\n# TYPE larder_y counter\nlarder_y 1\n".into(),
            "does not end in _total",
        ),
        (
            "negative counter",
            "# HELP larder_x_total X.\n# TYPE larder_x_total counter\nlarder_x_total -1\n".into(),
            "has the value -1",
        ),
        (
            "NaN counter",
            "# HELP larder_x_total X.\n# TYPE larder_x_total counter\nlarder_x_total NaN\n".into(),
            "has the value NaN",
        ),
        (
            "name without the prefix",
            "# HELP other_y Y.\n# TYPE other_y gauge\nother_y 1\n".into(),
            "not prefixed larder_",
        ),
        (
            "bad metric name",
            format!("{GOOD}larder-y 1\n"),
            "bad metric name",
        ),
        ("no value", format!("{GOOD}larder_x_total\n"), "no value"),
        (
            "bad value",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y one\n".into(),
            "bad value",
        ),
        (
            "lowercase inf",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y inf\n".into(),
            "bad value",
        ),
        (
            "bad timestamp",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y 1 1.5\n".into(),
            "bad timestamp",
        ),
        (
            "two spaces",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y  1\n".into(),
            "bad value",
        ),
        (
            "trailing space",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y 1 \n".into(),
            "whitespace",
        ),
        (
            "carriage return",
            "# HELP larder_y Y.\r\n# TYPE larder_y gauge\nlarder_y 1\n".into(),
            "carriage return",
        ),
        (
            "unclosed label value",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y{a=\"b} 1\n".into(),
            "not closed",
        ),
        (
            "unquoted label value",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y{a=b} 1\n".into(),
            "without =\"value\"",
        ),
        (
            "labels without comma",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y{a=\"1\"b=\"2\"} 1\n".into(),
            "comma",
        ),
        (
            "bad escape",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y{a=\"\\t\"} 1\n".into(),
            "bad escape",
        ),
        (
            "bad escape in HELP",
            "# HELP larder_y Y \\\" quoted.\n# TYPE larder_y gauge\nlarder_y 1\n".into(),
            "bad escape",
        ),
        (
            "label twice",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y{a=\"1\",a=\"2\"} 1\n".into(),
            "twice",
        ),
        (
            "reserved label",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y{__name__=\"1\"} 1\n".into(),
            "reserved",
        ),
        (
            "duplicate series",
            "# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y{a=\"1\",b=\"2\"} 1\nlarder_y{b=\"2\",a=\"1\"} 2\n".into(),
            "the same series twice",
        ),
        (
            "duplicate series without labels",
            format!("{GOOD}larder_x_total 2\n"),
            "the same series twice",
        ),
        (
            "family split in two",
            format!("{GOOD}# HELP larder_y Y.\n# TYPE larder_y gauge\nlarder_y 1\nlarder_x_total{{a=\"b\"}} 1\n"),
            "not all together",
        ),
        (
            "unknown type",
            "# HELP larder_y Y.\n# TYPE larder_y meter\nlarder_y 1\n".into(),
            "unknown type",
        ),
        ("TYPE without type", "# TYPE larder_y\n".into(), "without a type"),
        ("HELP without space", "#HELP larder_y Y.\n".into(), "malformed"),
        ("HELP with two spaces", "#  HELP larder_y Y.\n".into(), "malformed"),
    ];
    for (what, text, expected) in cases {
        match parse(text) {
            Ok(m) => panic!("{what}: accepted {text:?} as {:?}", m.samples()),
            Err(e) => assert!(
                e.contains(expected),
                "{what}: error {e:?} lacks {expected:?}"
            ),
        }
    }
}

#[test]
fn the_metrics_reader_accepts_the_formats_corners() {
    let text = "\
# A comment.
# HELP larder_g A gauge: \\\\ and \\n in help.
# TYPE larder_g gauge
larder_g{path=\"C:\\\\dir\",quote=\"say \\\"hi\\\"\",nl=\"a\\nb\",} +Inf
larder_g{path=\"x\"} -Inf 1700000000000
larder_g{path=\"y\"} NaN
larder_g{path=\"z\"} -1.5e3

# TYPE larder_h histogram
# HELP larder_h A histogram.
larder_h_bucket{le=\"1\"} 2
larder_h_bucket{le=\"+Inf\"} 3
larder_h_sum 4.5
larder_h_count 3
# HELP larder_e_total Empty labels.
# TYPE larder_e_total counter
larder_e_total{} 0
";
    let m = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        m.get(
            "larder_g",
            &[("quote", "say \"hi\""), ("nl", "a\nb"), ("path", "C:\\dir")]
        ),
        Some(f64::INFINITY)
    );
    assert_eq!(m.get("larder_g", &[("path", "x")]), Some(f64::NEG_INFINITY));
    assert!(m.get("larder_g", &[("path", "y")]).is_some_and(f64::is_nan));
    assert_eq!(m.get("larder_g", &[("path", "z")]), Some(-1500.0));
    assert_eq!(m.samples()[1].timestamp, Some(1_700_000_000_000));
    assert_eq!(m.get("larder_h_count", &[]), Some(3.0));
    assert_eq!(m.get("larder_h_bucket", &[("le", "+Inf")]), Some(3.0));
    assert_eq!(m.get("larder_e_total", &[]), Some(0.0));
    assert_eq!(
        m.family("larder_g").map(|f| f.help.as_str()),
        Some("A gauge: \\ and \n in help.")
    );
    assert_eq!(m.families().len(), 3);
    assert_eq!(
        m.get("larder_g", &[]),
        None,
        "the label set must match exactly"
    );
}

// ---------------------------------------------------------------------------------------
// A real browser

/// An origin serving a small HTML page that names itself.
fn page_origin() -> Origin {
    Origin::start(|_| {
        let body =
            b"<!DOCTYPE html><html><body><p id=\"origin\">page-from-the-origin</p></body></html>";
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nCache-Control: no-store\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(body);
        Reply::Send(reply)
    })
}

/// Loads an origin's page in Chromium configured only by `proxy`'s own PAC URL, and
/// returns the page's URL and the Via fields the origin saw with it.
fn load_by_larders_pac(proxy: &Proxy) -> (String, Vec<(String, String)>) {
    let origin = page_origin();
    // 0.0.0.0: Chromium hands it to the PAC (a loopback name would bypass the proxy);
    // the connection reaches the origin on 127.0.0.1.
    let page = format!("http://0.0.0.0:{}/page", origin.port());
    let pac_url = format!("http://{}/proxy.pac", proxy.addr());
    let dom = load_via_pac(&pac_url, &page).unwrap_or_else(|e| panic!("{e}"));
    assert!(dom.contains("page-from-the-origin"), "{dom}");
    let seen = origin.seen();
    let request = seen
        .iter()
        .find(|r| r.target == "/page")
        .unwrap_or_else(|| panic!("the origin saw no /page: {seen:?}"));
    (page, request.headers.clone())
}

/// What a classroom needs: a browser given only larder's PAC URL
/// (`--proxy-pac-url=http://127.0.0.1:PORT/proxy.pac`, served by larder itself) loads
/// a page through larder.
#[test]
fn chromium_loads_a_page_through_larder_by_larders_own_pac_url() {
    let log = TempFile::new("chromium-access.log");
    let proxy = Proxy::start(&["--access-log", log.arg()]);
    let (page, headers) = load_by_larders_pac(&proxy);
    assert!(
        larder_via(&headers).is_some(),
        "the page did not come through larder: {headers:?}\nlarder: {}",
        proxy.stderr()
    );
    // larder's access log shows both: the PAC file it served, and the page.
    let lines = wait_for_log_lines(&log, 2);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" GET http://127.0.0.1:") && l.contains("/proxy.pac ")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("TCP_MISS/200 ") && l.contains(&page)),
        "{lines:#?}"
    );
}

#[test]
fn chromium_goes_direct_for_a_pac_direct_destination() {
    let proxy = Proxy::start(&["--pac-direct", "0.0.0.0/32"]);
    let (_, headers) = load_by_larders_pac(&proxy);
    assert_eq!(larder_via(&headers), None, "went through larder");
}
