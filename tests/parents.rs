//! Parent proxies (`--parent`): plain requests in absolute form over kept connections,
//! CONNECT through the parent, the parent's credentials (sent to it only), a refused
//! parent's requests going to the next, every parent down with `--never-direct`,
//! direct rules; against a scripted parent that shows the exact bytes, against
//! another larder, and against a real Squid.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::support::{
    black_hole, dead_port, ok, request, wait_for_log_lines, wait_until, Origin, Proxy, Reply,
    Server, TempFile,
};

/// `Basic` of `user:pw`.
const USER_PW: &str = "Basic dXNlcjpwdw==";

/// A scripted parent proxy that answers every request with `body` (and records it).
fn parent_answering(body: &'static [u8]) -> Origin {
    Origin::start(move |_| Reply::Send(ok(body)))
}

/// Echoes what it reads until the peer closes.
fn echo(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// A scripted parent that opens every CONNECT it is asked for (200, then echoes the
/// tunnel's bytes) and answers anything else 400.
fn tunnelling_parent() -> Origin {
    Origin::start(|req| {
        if req.method != "CONNECT" {
            return Reply::SendClose(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec(),
            );
        }
        Reply::Stream(Box::new(|s: &mut TcpStream| {
            s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            echo(s)
        }))
    })
}

fn connect_head(authority: &str) -> String {
    format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
}

#[test]
fn plain_requests_go_to_the_parent_in_absolute_form_with_its_credentials_only() {
    let parent = parent_answering(b"from the parent");
    let log = TempFile::new("access.log");
    let spec = format!("user:pw@127.0.0.1:{}", parent.port());
    let proxy = Proxy::start(&[
        "--parent",
        &spec,
        "--access-log",
        log.arg(),
        "--log-level",
        "debug",
    ]);

    // The client's own Proxy-Authorization is for larder and goes no further.
    let mut client = proxy.client();
    let fields = [("Proxy-Authorization", "Basic Y2xpZW50OnNlY3JldA==")];
    client.send(request("GET", "http://origin.example/a?b=1", &fields).as_bytes());
    let first = client.read_response();
    assert_eq!(
        (first.status, first.text().as_str()),
        (200, "from the parent")
    );
    // Another origin, another client: the same kept connection to the parent.
    let second = proxy.get("http://other.example:8080/c");
    assert_eq!(second.status, 200);

    let seen = parent.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].target, "http://origin.example/a?b=1");
    assert_eq!(seen[0].header("host"), Some("origin.example"));
    assert_eq!(seen[1].target, "http://other.example:8080/c");
    assert_eq!(seen[1].header("host"), Some("other.example:8080"));
    for req in &seen {
        assert_eq!(
            req.header_all("proxy-authorization"),
            vec![USER_PW],
            "{req:#?}"
        );
        assert!(req.header("via").is_some_and(|v| v.contains("larder-")));
    }
    assert_eq!(parent.conns(), 1, "both requests on one kept connection");
    assert_eq!((seen[1].conn, seen[1].seq_on_conn), (0, 1));

    let lines = wait_for_log_lines(&log, 2);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for line in &lines {
        assert!(line.contains(" FIRSTUP_PARENT/127.0.0.1 "), "{line}");
    }
    // The credentials are nowhere: not in the log, not in larder's own messages.
    let everything = format!("{}\n{}", lines.join("\n"), proxy.stderr());
    for secret in ["user:pw", "dXNlcjpwdw", "pw@"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

#[test]
fn connect_goes_to_the_parent_as_connect_and_the_tunnel_follows() {
    let parent = tunnelling_parent();
    let spec = format!("user:pw@127.0.0.1:{}", parent.port());
    let proxy = Proxy::start(&["--parent", &spec]);

    let mut client = proxy.client();
    let mut first = connect_head("secure.example:443").into_bytes();
    first.extend_from_slice(b"early ");
    client.send(&first);
    let response = client.read_response_for("CONNECT");
    assert_eq!(response.status, 200, "{}", response.text());
    client.send(b"bytes\n");
    assert_eq!(client.read_exact(12), b"early bytes\n");

    let seen = parent.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, "secure.example:443");
    assert_eq!(seen[0].header("host"), Some("secure.example:443"));
    assert_eq!(seen[0].header_all("proxy-authorization"), vec![USER_PW]);
}

#[test]
fn a_parents_refusal_of_a_tunnel_is_relayed_as_it_is_then_the_connection_closes() {
    const REFUSAL: &[u8] = b"HTTP/1.1 407 Proxy Authentication Required\r\n\
        Proxy-Authenticate: Basic realm=\"parent\"\r\nContent-Length: 11\r\n\r\nwho are you";
    let parent = Origin::start(|_| Reply::Send(REFUSAL.to_vec()));
    let proxy = Proxy::start(&["--parent", &format!("127.0.0.1:{}", parent.port())]);

    let mut client = proxy.client();
    client.send(connect_head("secure.example:443").as_bytes());
    let response = client.read_response_for("CONNECT");
    assert_eq!(response.status, 407);
    assert_eq!(
        response.header("proxy-authenticate"),
        Some("Basic realm=\"parent\"")
    );
    assert_eq!(response.text(), "who are you");
    assert!(response.is_close());
    client.expect_closed();
}

#[test]
fn a_refused_parent_hands_its_requests_to_the_next() {
    let live = parent_answering(b"live");
    let dead = dead_port();
    let log = TempFile::new("access.log");
    let (a, b) = (
        format!("127.0.0.1:{dead}"),
        format!("127.0.0.1:{}", live.port()),
    );
    let proxy = Proxy::start(&[
        "--parent",
        &a,
        "--parent",
        &b,
        "--never-direct",
        "--access-log",
        log.arg(),
    ]);
    // Enough URLs that the refusing parent is the first choice of some of them.
    for i in 0..16 {
        let response = proxy.get(&format!("http://site{i}.example/"));
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "live"),
            "site{i}"
        );
    }
    assert_eq!(live.requests(), 16);
    let lines = wait_for_log_lines(&log, 16);
    assert!(
        lines.iter().all(|l| l.contains(" CARP/127.0.0.1 ")),
        "{lines:#?}"
    );
    // Reported once, as host:port, while it stays down.
    let stderr = proxy.stderr();
    let warned = format!("parent 127.0.0.1:{dead} is down");
    assert_eq!(stderr.matches(&warned).count(), 1, "{stderr}");
    let metrics = proxy.metrics();
    assert_eq!(
        metrics.get("larder_parent_up", &[("parent", &a)]),
        Some(0.0)
    );
    assert_eq!(
        metrics.get("larder_parent_up", &[("parent", &b)]),
        Some(1.0)
    );
}

#[test]
fn with_every_parent_down_never_direct_answers_502_and_never_goes_direct() {
    let origin = Origin::start(|_| Reply::Send(ok(b"direct")));
    let dead = format!("127.0.0.1:{}", dead_port());
    let proxy = Proxy::start(&["--parent", &dead, "--never-direct"]);

    // A loopback origin would be direct by default; --never-direct forbids that too.
    for _ in 0..2 {
        let response = proxy.get(&origin.url("/"));
        assert_eq!(response.status, 502, "{}", response.text());
        assert!(
            response.text().contains("No parent proxy"),
            "{}",
            response.text()
        );
    }
    let mut client = proxy.client();
    client.send(connect_head("secure.example:443").as_bytes());
    assert_eq!(client.read_response_for("CONNECT").status, 502);
    assert_eq!(origin.requests(), 0);
}

#[test]
fn direct_rules_and_the_defaults_bypass_the_parent() {
    let parent = parent_answering(b"parent");
    let origin = Origin::start(|_| Reply::Send(ok(b"origin")));
    let spec = format!("127.0.0.1:{}", parent.port());
    let localhost = format!("http://localhost:{}/l", origin.port());

    // Loopback literals and names without a dot are direct by default.
    let proxy = Proxy::start(&["--parent", &spec]);
    assert_eq!(proxy.get(&origin.url("/a")).text(), "origin");
    assert_eq!(proxy.get(&localhost).text(), "origin");
    assert_eq!(parent.requests(), 0);
    drop(proxy);

    // With --never-direct only an explicit rule goes direct.
    let proxy = Proxy::start(&["--parent", &spec, "--never-direct", "--direct", "localhost"]);
    assert_eq!(proxy.get(&localhost).text(), "origin");
    assert_eq!(proxy.get(&origin.url("/b")).text(), "parent");
    assert_eq!(
        parent.seen().last().map(|r| r.target.clone()),
        Some(origin.url("/b"))
    );
    drop(proxy);

    let proxy = Proxy::start(&[
        "--parent",
        &spec,
        "--never-direct",
        "--direct",
        "127.0.0.0/8",
    ]);
    assert_eq!(proxy.get(&origin.url("/c")).text(), "origin");
    assert_eq!(parent.requests(), 1);
}

#[test]
fn bad_parent_settings_are_refused_at_start() {
    use crate::support::run_to_exit;
    let (code, stderr) = run_to_exit(&["--never-direct"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--never-direct needs at least one --parent"),
        "{stderr}"
    );
    let (code, stderr) = run_to_exit(&["--parent", "user:secret@proxy.example"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("needs its port"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
    let (code, stderr) = run_to_exit(&["--direct", "not a domain"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn a_larder_parent_caches_for_its_children_and_carries_their_tunnels() {
    let origin = Origin::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 6\r\n\r\nshared"
                .to_vec(),
        )
    });
    let echo_end = Server::start(|mut s| {
        let _ = echo(&mut s);
    });
    let ports = echo_end.port().to_string();
    let parent = Proxy::start(&["--admit-after", "0", "--connect-ports", &ports]);
    let spec = parent.addr().to_string();
    let log = TempFile::new("access.log");
    let child_args = [
        "--parent",
        &spec,
        "--never-direct",
        "--connect-ports",
        &ports,
    ];
    let first = Proxy::start(&child_args);
    let mut args = child_args.to_vec();
    args.extend_from_slice(&["--access-log", log.arg()]);
    let second = Proxy::start(&args);

    let url = origin.url("/shared");
    assert_eq!(first.get(&url).text(), "shared");
    // The parent stored it: the second child's miss is the parent's hit.
    let response = second.get(&url);
    assert_eq!(response.text(), "shared");
    assert_eq!(origin.requests(), 1);
    let lines = wait_for_log_lines(&log, 1);
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains(" PARENT_HIT/127.0.0.1 ")),
        "{lines:#?}"
    );

    let mut client = second.client();
    client.send(connect_head(&echo_end.authority()).as_bytes());
    assert_eq!(client.read_response_for("CONNECT").status, 200);
    client.send(b"through two\n");
    assert_eq!(client.read_exact(12), b"through two\n");
}

/// A Squid on a free loopback port with its own configuration in a temporary
/// directory; stopped (and the directory removed) when dropped, whatever the test did.
struct Squid {
    child: std::process::Child,
    dir: crate::support::TempDir,
    port: u16,
}

impl Squid {
    const BINARY: &'static str = "/usr/sbin/squid";

    /// `None` when Squid is not installed.
    fn start() -> Option<Squid> {
        use std::os::unix::fs::PermissionsExt;
        if !std::path::Path::new(Squid::BINARY).exists() {
            return None;
        }
        let dir = crate::support::TempDir::new("squid");
        // Started as root, Squid runs as its own unprivileged user: it must be able to
        // write its logs and pid file here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod the squid directory");
        let port = dead_port();
        let d = dir.arg();
        let conf = format!(
            "http_port 127.0.0.1:{port}\n\
             pid_filename {d}/squid.pid\n\
             cache_log {d}/cache.log\n\
             access_log stdio:{d}/access.log\n\
             cache_store_log none\n\
             coredump_dir {d}\n\
             netdb_filename none\n\
             pinger_enable off\n\
             cache deny all\n\
             cache_mem 0 MB\n\
             http_access allow all\n\
             shutdown_lifetime 0 seconds\n"
        );
        let path = dir.path().join("squid.conf");
        std::fs::write(&path, conf).expect("write squid.conf");
        let child = std::process::Command::new(Squid::BINARY)
            .arg("-N")
            .arg("-f")
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start squid");
        let squid = Squid { child, dir, port };
        let up = wait_until(|| TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(up, "squid did not listen on {port}:\n{}", squid.cache_log());
        Some(squid)
    }

    fn cache_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("cache.log")).unwrap_or_default()
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn squid_as_the_parent_carries_plain_requests_and_tunnels() {
    let Some(squid) = Squid::start() else {
        eprintln!(
            "skipped: squid not installed ({} is missing)",
            Squid::BINARY
        );
        return;
    };
    let origin = Origin::start(|_| Reply::Send(ok(b"via squid")));
    let echo_end = Server::start(|mut s| {
        let _ = echo(&mut s);
    });
    let ports = echo_end.port().to_string();
    let spec = format!("127.0.0.1:{}", squid.port);
    let log = TempFile::new("access.log");
    let proxy = Proxy::start(&[
        "--parent",
        &spec,
        "--never-direct",
        "--connect-ports",
        &ports,
        "--access-log",
        log.arg(),
    ]);

    let response = proxy.get(&origin.url("/plain"));
    assert_eq!(
        response.status,
        200,
        "{}\nsquid:\n{}",
        response.text(),
        squid.cache_log()
    );
    assert_eq!(response.text(), "via squid");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/plain");
    let via = seen[0].header_all("via").join(", ");
    assert!(
        via.contains("larder-") && via.to_ascii_lowercase().contains("squid"),
        "{via}"
    );

    let mut client = proxy.client();
    client.send(connect_head(&echo_end.authority()).as_bytes());
    let response = client.read_response_for("CONNECT");
    assert_eq!(
        response.status,
        200,
        "{}\nsquid:\n{}",
        response.text(),
        squid.cache_log()
    );
    client.send(b"through squid\n");
    assert_eq!(client.read_exact(14), b"through squid\n");
    drop(client);

    let lines = wait_for_log_lines(&log, 2);
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" FIRSTUP_PARENT/127.0.0.1 ")),
        "{lines:#?}"
    );
    assert!(
        wait_until(|| squid
            .access_log()
            .contains(&format!("GET {}", origin.url("/plain")))),
        "squid's access.log:\n{}",
        squid.access_log()
    );
}

#[test]
fn a_parent_that_never_answers_the_connect_is_left_out_and_alone_gives_504() {
    let (_hole, _filler, hole) = black_hole();
    let live = parent_answering(b"live");
    let (a, b) = (
        format!("127.0.0.1:{hole}"),
        format!("127.0.0.1:{}", live.port()),
    );
    let args = ["--timeout-connect", "0.3", "--never-direct", "--parent", &a];

    let alone = Proxy::start(&args);
    let response = alone.get("http://site.example/");
    assert_eq!(response.status, 504, "{}", response.text());
    assert!(
        response.text().contains("No parent proxy"),
        "{}",
        response.text()
    );
    drop(alone);

    let mut with_live = args.to_vec();
    with_live.extend_from_slice(&["--parent", &b]);
    let proxy = Proxy::start(&with_live);
    for i in 0..16 {
        let response = proxy.get(&format!("http://site{i}.example/"));
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "live"),
            "site{i}"
        );
    }
    let stderr = proxy.stderr();
    assert_eq!(
        stderr.matches(&format!("parent {a} is down")).count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_parent_that_closes_without_answering_is_left_out_until_its_retry_time() {
    let broken = Origin::start(|_| Reply::Close);
    let live = parent_answering(b"live");
    let (a, b) = (
        format!("127.0.0.1:{}", broken.port()),
        format!("127.0.0.1:{}", live.port()),
    );
    let proxy = Proxy::start(&["--parent", &a, "--parent", &b, "--parent-retry", "1"]);
    // The first URL whose parent is the broken one: it was sent, so it is not sent
    // again; it is answered 502 and the parent is left out.
    let url = (0..32)
        .map(|i| format!("http://site{i}.example/"))
        .find(|url| proxy.get(url).status == 502)
        .expect("a URL whose parent is the broken one");
    assert_eq!(broken.requests(), 1);
    assert_eq!(proxy.get(&url).text(), "live", "its share moved");
    let metrics = proxy.metrics();
    assert_eq!(
        metrics.get("larder_parent_up", &[("parent", &a)]),
        Some(0.0)
    );
    // After --parent-retry the parent gets its share back.
    let up = || proxy.metrics().get("larder_parent_up", &[("parent", &a)]) == Some(1.0);
    assert!(wait_until(up), "the parent never came back");
    assert_eq!(proxy.get(&url).status, 502);
    assert_eq!(broken.requests(), 2);
}

#[test]
fn the_parent_and_its_credentials_can_come_from_the_environment() {
    let parent = parent_answering(b"from the parent");
    let spec = format!("user:pw@127.0.0.1:{}", parent.port());
    let proxy = Proxy::start_with_env(&[], &[("LARDER_PARENT", &spec)]);
    assert_eq!(
        proxy.get("http://origin.example/").text(),
        "from the parent"
    );
    let seen = parent.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header_all("proxy-authorization"), vec![USER_PW]);
}
