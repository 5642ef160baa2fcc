//! larder run as a service: the signals an init system and a log rotator send
//! (SIGHUP reloads, SIGUSR1 re-opens the access log, SIGTERM/SIGINT drain and stop),
//! each sent for real to a running larder, and no access-log line lost whatever
//! ends it.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{
    get, ok, wait_for_log_lines, Gate, Origin, Proxy, Reply, TempFile, WAIT_LIMIT,
};

/// Waits up to [`WAIT_LIMIT`] for larder's stderr to contain `text`.
fn wait_for_stderr(proxy: &Proxy, text: &str) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !proxy.stderr().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in larder's stderr:\n{}",
            proxy.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to [`WAIT_LIMIT`] for the origin to have received `n` request heads.
fn wait_for_requests(origin: &Origin, n: usize) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while origin.requests() < n {
        assert!(
            Instant::now() < deadline,
            "the origin saw {} requests",
            origin.requests()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn lines_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// logrotate's `postrotate kill -HUP`: the old log is renamed, larder re-opens the
/// path, re-reads its block lists, keeps every connection, and no line is lost.
#[test]
fn sighup_rereads_block_lists_and_reopens_the_log_keeping_connections() {
    let origin = Origin::start(|_| Reply::Send(ok(b"fine")));
    let list = TempFile::new("hup-blocklist.txt");
    list.write("old.test\n");
    let log = TempFile::new("hup-access.log");
    let rotated = TempFile::new("hup-access.log.1");
    let mut proxy = Proxy::start(&["--block-list", list.arg(), "--access-log", log.arg()]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/before")).as_bytes());
    assert_eq!(client.read_response().status, 200);

    std::fs::rename(log.path(), rotated.path()).expect("rotate the log");
    // The new list has the same length and modification time as the old one, so only
    // the signal (not the watch on the file) can make larder read it.
    let modified = std::fs::metadata(list.path())
        .and_then(|m| m.modified())
        .expect("list mtime");
    list.write("new.test\n");
    std::fs::File::options()
        .write(true)
        .open(list.path())
        .and_then(|f| f.set_modified(modified))
        .expect("restore mtime");
    proxy.signal("HUP");
    wait_for_stderr(&proxy, "reloaded on SIGHUP");

    // The same connection goes on, under the new rules.
    client.send(get("http://www.new.test/").as_bytes());
    assert_eq!(client.read_response().status, 403);
    client.send(get(&origin.url("/after")).as_bytes());
    assert_eq!(client.read_response().status, 200);
    proxy.assert_alive();
    assert_eq!(proxy.stop(), Some(0));

    let old = lines_of(rotated.path());
    let new = lines_of(log.path());
    assert_eq!(old.len(), 1, "rotated log: {old:?}");
    assert!(old[0].contains("/before"), "{old:?}");
    assert_eq!(new.len(), 2, "new log: {new:?}");
    assert!(new[0].contains("TCP_DENIED/403") && new[0].contains("www.new.test"));
    assert!(new[1].contains("/after"), "{new:?}");
}

/// The tinyproxy and Polipo convention for log rotation: SIGUSR1 re-opens the log
/// (and, unlike SIGHUP, nothing else). Without a handler it would kill larder.
#[test]
fn sigusr1_reopens_the_access_log() {
    let origin = Origin::start(|_| Reply::Send(ok(b"fine")));
    let log = TempFile::new("usr1-access.log");
    let rotated = TempFile::new("usr1-access.log.1");
    let mut proxy = Proxy::start(&["--access-log", log.arg()]);
    assert_eq!(proxy.get(&origin.url("/one")).status, 200);
    wait_for_log_lines(&log, 1);
    std::fs::rename(log.path(), rotated.path()).expect("rotate the log");
    proxy.signal("USR1");
    assert_eq!(proxy.get(&origin.url("/two")).status, 200);
    let new = wait_for_log_lines(&log, 1);
    proxy.assert_alive();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].contains("/two"), "{new:?}");
    assert_eq!(lines_of(rotated.path()).len(), 1);
}

/// SIGTERM: new connections are refused at once, an idle keep-alive connection is
/// closed, the request in flight gets its whole response (and `Connection: close`),
/// and larder exits 0 as soon as it is done, its line logged.
#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    // The slow answer waits until the stop is under way (seen below), so it is in
    // flight when larder stops, however long the signal takes to act.
    let gate = Gate::new();
    let held = Arc::clone(&gate);
    let origin = Origin::start(move |request| {
        if request.target == "/slow" {
            held.wait();
        }
        Reply::Send(ok(b"finished"))
    });
    let log = TempFile::new("drain-access.log");
    let mut proxy = Proxy::start(&["--drain-timeout", "10", "--access-log", log.arg()]);
    let mut idle = proxy.client();
    idle.send(get(&origin.url("/quick")).as_bytes());
    assert_eq!(idle.read_response().status, 200);
    let mut busy = proxy.client();
    busy.send(get(&origin.url("/slow")).as_bytes());
    wait_for_requests(&origin, 2);

    let stopped = Instant::now();
    proxy.signal("TERM");
    idle.expect_closed();
    let refused = TcpStream::connect_timeout(&proxy.addr(), Duration::from_secs(2));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused),
        "a stopping larder accepted a connection: {refused:?}"
    );
    gate.open();
    let response = busy.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"finished");
    assert!(response.is_close(), "no Connection: close while stopping");
    assert_eq!(proxy.wait_exit(Duration::from_secs(5)), Some(Some(0)));
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    let lines = lines_of(log.path());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("TCP_MISS/200") && lines[1].contains("/slow"));
}

/// `--drain-timeout` bounds the stop: what is still open then is cut, and larder
/// exits 0 all the same.
#[test]
fn the_drain_timeout_bounds_a_stop() {
    let origin = Origin::start(|_| Reply::Stall(Duration::from_secs(10)));
    let mut proxy = Proxy::start(&["--drain-timeout", "0.5"]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/never")).as_bytes());
    wait_for_requests(&origin, 1);
    let stopped = Instant::now();
    proxy.signal("TERM");
    assert_eq!(proxy.wait_exit(Duration::from_secs(5)), Some(Some(0)));
    // At the drain timeout (not before), and well before the origin's stall ends.
    let took = stopped.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    client.expect_closed();
}

/// `--drain-notice`: a stopping larder first says 503 on `/health` while it still
/// accepts and serves, so a balancer's health checks move traffic away before
/// connections are refused; then it drains and exits as without it.
#[test]
fn the_drain_notice_says_503_on_health_while_serving_on() {
    let origin = Origin::start(|_| Reply::Send(ok(b"served")));
    let mut proxy = Proxy::start(&["--drain-notice", "1.5", "--drain-timeout", "5"]);
    let health_url = format!("http://{}/health", proxy.addr());
    assert_eq!(proxy.get(&health_url).status, 200);
    let stopped = Instant::now();
    proxy.signal("TERM");
    wait_for_stderr(&proxy, "stopping: /health says 503");
    let health = proxy.get(&health_url);
    assert_eq!(
        (health.status, health.text()),
        (503, "stopping\n".to_owned())
    );
    // New connections are still accepted and served meanwhile.
    let response = proxy.get(&origin.url("/during"));
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"served");
    assert!(
        stopped.elapsed() < Duration::from_millis(1500),
        "too slow to tell"
    );
    assert_eq!(proxy.wait_exit(Duration::from_secs(5)), Some(Some(0)));
    let took = stopped.elapsed();
    assert!(took >= Duration::from_millis(1400), "{took:?}");
}

/// A second SIGTERM (or Ctrl-C twice) stops at once, whatever is in flight.
#[test]
fn a_second_stop_signal_ends_the_drain_at_once() {
    let origin = Origin::start(|_| Reply::Stall(Duration::from_secs(10)));
    let mut proxy = Proxy::start(&["--drain-timeout", "60"]);
    let mut client = proxy.client();
    client.send(get(&origin.url("/never")).as_bytes());
    wait_for_requests(&origin, 1);
    proxy.signal("INT");
    wait_for_stderr(&proxy, "stopping:");
    let second = Instant::now();
    proxy.signal("INT");
    assert_eq!(proxy.wait_exit(Duration::from_secs(5)), Some(Some(0)));
    // Far from the 60 s drain, and before the origin's stall would end it.
    assert!(
        second.elapsed() < Duration::from_secs(5),
        "{:?}",
        second.elapsed()
    );
}

/// Signals larder cannot handle (SIGKILL, a crash) must not cost logged lines older
/// than a second: the log is written out at least once a second while there is
/// traffic.
#[test]
fn sigkill_loses_no_log_line_older_than_a_second() {
    let origin = Origin::start(|_| Reply::Send(ok(b"fine")));
    let log = TempFile::new("kill-access.log");
    let mut proxy = Proxy::start(&["--access-log", log.arg()]);
    // Keep-alive traffic on one connection, so larder never goes idle meanwhile.
    let mut client = proxy.client();
    for i in 0..20 {
        client.send(get(&origin.url(&format!("/n{i}"))).as_bytes());
        assert_eq!(client.read_response().status, 200);
    }
    // The connection stays open: larder is not idle while the second passes.
    std::thread::sleep(Duration::from_millis(1100));
    proxy.signal("KILL");
    assert_eq!(proxy.wait_exit(Duration::from_secs(5)), Some(None));
    let lines = lines_of(log.path());
    assert_eq!(lines.len(), 20, "{lines:?}");
}

/// Every system call the group expands to, from `systemd-analyze syscall-filter`
/// (which lists each group's calls and the groups it includes).
fn syscall_group(group: &str) -> std::collections::BTreeSet<String> {
    let out = std::process::Command::new("systemd-analyze")
        .arg("syscall-filter")
        .output()
        .expect("systemd-analyze is needed (Debian package systemd; .ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut groups: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with('@') {
            current = line.trim().to_owned();
        } else {
            let item = line.trim();
            if !item.is_empty() && !item.starts_with('#') && !current.is_empty() {
                groups
                    .entry(current.clone())
                    .or_default()
                    .push(item.to_owned());
            }
        }
    }
    let mut calls = std::collections::BTreeSet::new();
    let mut todo = vec![group.to_owned()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(g) = todo.pop() {
        if !seen.insert(g.clone()) {
            continue;
        }
        for item in groups.get(&g).into_iter().flatten() {
            if item.starts_with('@') {
                todo.push(item.clone());
            } else {
                calls.insert(item.clone());
            }
        }
    }
    assert!(!calls.is_empty(), "systemd-analyze knows no group {group}");
    calls
}

/// The system calls in an `strace -f` output file.
fn traced_calls(trace: &std::path::Path) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(trace).expect("read the strace output");
    let mut calls = std::collections::BTreeSet::new();
    for line in text.lines() {
        let rest = line
            .split_once(' ')
            .map_or(line, |(_, rest)| rest)
            .trim_start();
        let name = if let Some(resumed) = rest.strip_prefix("<... ") {
            resumed.split(' ').next().unwrap_or("")
        } else if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        } else {
            rest.split('(').next().unwrap_or("")
        };
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            calls.insert(name.to_owned());
        }
    }
    calls
}

/// `tools/larder.service` limits larder to systemd's `@system-service` system calls
/// (any other fails with EPERM). Everything larder does — start-up, DNS, a miss
/// stored and a hit, a bulk tunnel (which splices), its own pages, a PURGE, a
/// reload, a log re-open and a stop — is traced with strace, and every call must be
/// in the set. The unit itself must pass `systemd-analyze verify`.
#[test]
fn the_service_unit_allows_every_system_call_larder_makes() {
    let unit_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/larder.service");
    let unit = std::fs::read_to_string(unit_path).expect("read tools/larder.service");
    let filters: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
        .collect();
    assert_eq!(
        filters,
        ["@system-service"],
        "the test checks this filter only"
    );
    assert!(unit.contains("\nSystemCallErrorNumber=EPERM\n"));

    let dir = crate::support::TempDir::new("unit");
    let copy = dir.path().join("larder.service");
    let unit_here = unit.replace("/usr/local/bin/larder", env!("CARGO_BIN_EXE_larder"));
    std::fs::write(&copy, unit_here).expect("write the unit copy");
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("run systemd-analyze verify");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    let allowed = syscall_group("@system-service");
    let body = vec![b'x'; 300_000];
    let big = body.clone();
    let origin = Origin::start(move |request| {
        if request.target == "/big" {
            return Reply::SendClose(ok(&big));
        }
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 5\r\n\r\nfresh"
                .to_vec(),
        )
    });
    let trace = TempFile::new("larder.strace");
    let log = TempFile::new("traced-access.log");
    let port = origin.port().to_string();
    let mut proxy = Proxy::start_wrapped(
        &["strace", "-f", "-qq", "-o", trace.arg()],
        &[
            "--admit-after",
            "0",
            "--cache-size",
            "4M",
            "--connect-ports",
            &port,
            "--access-log",
            log.arg(),
        ],
        &[],
    );
    // Through a name, so the resolver threads work too; stored, then a hit.
    let url = format!("http://localhost:{port}/fresh");
    assert_eq!(proxy.get(&url).body, b"fresh");
    assert_eq!(proxy.get(&url).body, b"fresh");
    let mut tunnel = proxy.client();
    let authority = origin.authority();
    tunnel.send(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes());
    assert_eq!(tunnel.read_response_for("CONNECT").status, 200);
    tunnel.send(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let through = tunnel.read_to_close();
    assert!(
        through.len() > body.len(),
        "{} bytes through the tunnel",
        through.len()
    );
    // The client's half of the tunnel stays open until it closes it.
    drop(tunnel);
    let host = proxy.addr();
    let mut pages = proxy.client();
    for path in ["/metrics", "/", "/proxy.pac"] {
        pages.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert_eq!(pages.read_response().status, 200, "{path}");
    }
    let mut purge = proxy.client();
    purge.send(crate::support::request("PURGE", &url, &[]).as_bytes());
    assert_eq!(purge.read_response().status, 200);

    // The signals go to larder, strace's child.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", proxy.pid()))
        .expect("strace's children");
    let larder = children
        .split_whitespace()
        .next()
        .expect("larder's pid")
        .to_owned();
    let kill = |signal: &str| {
        let sent = std::process::Command::new("kill")
            .args([signal, &larder])
            .status()
            .expect("run kill");
        assert!(sent.success());
    };
    kill("-HUP");
    wait_for_stderr(&proxy, "reloaded on SIGHUP");
    kill("-USR1");
    assert_eq!(proxy.get(&url).status, 200);
    kill("-TERM");
    assert_eq!(
        proxy.wait_exit(Duration::from_secs(10)),
        Some(Some(0)),
        "stderr:\n{}",
        proxy.stderr()
    );

    let made = traced_calls(trace.path());
    assert!(
        made.contains("epoll_wait") || made.contains("epoll_pwait"),
        "{made:?}"
    );
    assert!(
        made.contains("splice"),
        "the tunnel never spliced: {made:?}"
    );
    let refused: Vec<&String> = made.difference(&allowed).collect();
    assert!(
        refused.is_empty(),
        "larder makes system calls the unit's filter refuses: {refused:?}"
    );
}
