//! The cache file end to end: `larder-cache` run as a process against caches filled
//! through the library and through a running larder, a writer SIGKILLed at random
//! moments, and a cache on a file system that fills up.
//!
//! Each test gets its own directory (see [`TempDir`]); none touches the user's cache, and
//! `LARDER_*` variables of the test environment are removed from every tool run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use larder::cache::format::{encode_file_header, FileHeader};
use larder::cache::{CacheError, Meta, Options, Store};

use crate::support::{get, Client, Origin, Proxy, Reply, TempDir, WAIT_LIMIT};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn opts(capacity: u64) -> Options {
    Options::for_capacity(capacity)
}

/// Opens the cache in `dir` as larder does, waiting (at most 10 s) while it is locked:
/// a store this test process just closed can stay locked for an instant, when another
/// test's thread started a process meanwhile (the child holds a copy of the descriptor,
/// and with it the lock, until it executes its program).
fn open_store(dir: &Path, capacity: u64, now: u64) -> Store {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        match Store::open(dir, opts(capacity), now) {
            Err(CacheError::Locked(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(store) => return store,
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}

/// Stores `key` with `head` and `body` through the library API.
fn put(store: &mut Store, key: &str, head: &[u8], body: &[u8], meta: Meta) {
    let mut fill = store
        .begin(key.as_bytes(), head, meta, Some(body.len() as u64))
        .expect("begin");
    store.write(&mut fill, body).expect("write");
    store.commit(fill).expect("commit");
}

fn meta(stored: u64, expires: u64) -> Meta {
    Meta {
        requested: stored,
        stored,
        expires,
    }
}

/// What a tool run left: exit code, stdout (bytes) and stderr.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `larder-cache --cache-dir DIR ARGS` to its exit.
fn tool(dir: &TempDir, args: &[&str]) -> Run {
    let mut full = vec!["--cache-dir", dir.arg()];
    full.extend_from_slice(args);
    tool_raw(&full, &[])
}

/// Runs `larder-cache ARGS` with `env` and no inherited `LARDER_*` variables.
fn tool_raw(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder-cache"));
    cmd.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LARDER_") {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run larder-cache");
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn assert_exit(run: &Run, code: i32) {
    assert_eq!(
        run.code,
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        run.text(),
        run.stderr
    );
}

/// A stored time with a known UTC spelling: 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000;

/// A cache of `capacity` bytes in `dir` holding `objects` (key, body, stored, expires),
/// stored in that order and closed again.
fn populate(dir: &TempDir, capacity: u64, objects: &[(&str, &[u8], u64, u64)]) {
    let mut store = open_store(dir.path(), capacity, T0);
    for &(key, body, stored, expires) in objects {
        put(
            &mut store,
            key,
            &head_for(body),
            body,
            meta(stored, expires),
        );
    }
    // As larder leaves it when it stops: synced, nothing newer than its last sync.
    store.sync_for_close().expect("sync");
}

/// The response head stored with `body`.
fn head_for(body: &[u8]) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes()
}

/// Three objects: a binary body, an empty one with no expiry, an expired one.
fn three(dir: &TempDir) {
    populate(
        dir,
        1 << 20,
        &[
            ("http://a.test/", b"alpha\0\xffbytes", T0, T0 + 3600),
            ("http://b.test/\"q\"", b"", T0 + 60, 0),
            ("http://c.test/x", &[7u8; 3000], T0 + 120, T0 + 1),
        ],
    );
}

#[test]
fn stats_reports_objects_bytes_and_times() {
    let dir = TempDir::new("stats");
    three(&dir);
    let run = tool(&dir, &["stats"]);
    assert_exit(&run, 0);
    let text = run.text();
    for line in [
        "objects   3\n",
        "capacity  1 MiB\n",
        "oldest    2023-11-14T22:13:20Z\n",
        "newest    2023-11-14T22:15:20Z\n",
        "damaged   0 B\n",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }

    let run = tool(&dir, &["--json", "stats"]);
    assert_exit(&run, 0);
    let json = run.text();
    for field in [
        r#""objects":3,"#,
        r#""capacity":1048576,"#,
        r#""oldest":"2023-11-14T22:13:20Z","#,
        r#""newest":"2023-11-14T22:15:20Z","#,
        r#""damaged_bytes":0}"#,
    ] {
        assert!(json.contains(field), "no {field} in {json}");
    }
    assert!(json.starts_with('{') && json.ends_with("}\n"), "{json}");
}

#[test]
fn stats_of_an_empty_cache_has_no_times() {
    let dir = TempDir::new("stats-empty");
    populate(&dir, 1 << 20, &[]);
    let run = tool(&dir, &["--json", "stats"]);
    assert_exit(&run, 0);
    assert!(
        run.text().contains(r#""oldest":null,"newest":null"#),
        "{}",
        run.text()
    );
    assert!(tool(&dir, &["stats"]).text().contains("oldest    -\n"));
}

#[test]
fn ls_lists_urls_sizes_and_utc_times_oldest_first() {
    let dir = TempDir::new("ls");
    three(&dir);
    let run = tool(&dir, &["ls"]);
    assert_exit(&run, 0);
    let lines: Vec<String> = run.text().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].ends_with("  200  http://a.test/"), "{lines:?}");
    assert!(lines[0].contains("2023-11-14T22:13:20Z  2023-11-14T23:13:20Z"));
    assert!(lines[0].trim_start().starts_with("12 B"), "{lines:?}");
    assert!(lines[1].ends_with("  http://b.test/\"q\""), "{lines:?}");
    assert!(lines[1].contains("2023-11-14T22:14:20Z  -  "), "{lines:?}");
    assert!(lines[2].trim_start().starts_with("2.9 KiB"), "{lines:?}");

    let run = tool(&dir, &["ls", "--json"]);
    assert_exit(&run, 0);
    assert_eq!(
        run.text(),
        concat!(
            r#"[{"url":"http://a.test/","status":200,"size":12,"#,
            r#""stored":"2023-11-14T22:13:20Z","expires":"2023-11-14T23:13:20Z"},"#,
            r#"{"url":"http://b.test/\"q\"","status":200,"size":0,"#,
            r#""stored":"2023-11-14T22:14:20Z","expires":null},"#,
            r#"{"url":"http://c.test/x","status":200,"size":3000,"#,
            r#""stored":"2023-11-14T22:15:20Z","expires":"2023-11-14T22:13:21Z"}]"#,
            "\n"
        )
    );
}

#[test]
fn get_writes_the_body_or_the_stored_head() {
    let dir = TempDir::new("get");
    three(&dir);
    let run = tool(&dir, &["get", "http://a.test/"]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, b"alpha\0\xffbytes");

    let run = tool(&dir, &["get", "--head", "http://c.test/x"]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, head_for(&[7u8; 3000]));

    let run = tool(&dir, &["get", "http://b.test/\"q\""]);
    assert_exit(&run, 0);
    assert!(run.stdout.is_empty());

    let run = tool(&dir, &["--json", "get", "http://a.test/"]);
    assert_exit(&run, 0);
    assert_eq!(
        run.text(),
        concat!(
            r#"{"url":"http://a.test/","size":12,"stored":"2023-11-14T22:13:20Z","#,
            r#""expires":"2023-11-14T23:13:20Z","#,
            r#""head":"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"}"#,
            "\n"
        )
    );
}

#[test]
fn get_of_an_absent_url_exits_1() {
    let dir = TempDir::new("get-absent");
    three(&dir);
    let run = tool(&dir, &["get", "http://nowhere.test/"]);
    assert_exit(&run, 1);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("http://nowhere.test/"),
        "{}",
        run.stderr
    );
}

#[test]
fn purge_removes_a_url_for_good() {
    let dir = TempDir::new("purge");
    three(&dir);
    let run = tool(&dir, &["purge", "http://a.test/"]);
    assert_exit(&run, 0);
    assert_eq!(run.text(), "purged 1 object(s)\n");
    assert_exit(&tool(&dir, &["get", "http://a.test/"]), 1);
    let again = tool(&dir, &["--json", "purge", "http://a.test/"]);
    assert_exit(&again, 1);
    assert_eq!(again.text(), "{\"purged\":0}\n");
    assert!(again.stderr.contains("http://a.test/"), "{}", again.stderr);

    // The tombstone is on disk: larder's own open does not bring it back.
    let mut store = open_store(dir.path(), 1 << 20, now());
    assert!(store.lookup(b"http://a.test/").is_none());
    assert!(store.lookup(b"http://c.test/x").is_some());
}

#[test]
fn purge_expired_removes_only_expired_objects() {
    let dir = TempDir::new("purge-expired");
    let now = now();
    populate(
        &dir,
        1 << 20,
        &[
            ("http://old.test/", b"1", T0, T0 + 1),
            ("http://fresh.test/", b"2", T0, now + 3600),
            ("http://unknown.test/", b"3", T0, 0),
            ("http://older.test/", b"4", T0, T0 + 2),
        ],
    );
    let run = tool(&dir, &["--json", "purge", "--expired"]);
    assert_exit(&run, 0);
    assert_eq!(run.text(), "{\"purged\":2}\n");
    let ls = tool(&dir, &["ls"]).text();
    assert!(!ls.contains("old"), "{ls}");
    assert!(ls.contains("http://fresh.test/") && ls.contains("http://unknown.test/"));
    let again = tool(&dir, &["purge", "--expired"]);
    assert_exit(&again, 1);
    assert!(
        again.stderr.contains("no expired objects"),
        "{}",
        again.stderr
    );
}

#[test]
fn verify_passes_a_sound_cache_and_names_a_damaged_object() {
    let dir = TempDir::new("verify");
    three(&dir);
    let run = tool(&dir, &["verify"]);
    assert_exit(&run, 0);
    assert_eq!(run.text(), "checked 3 object(s): 0 bad\n");

    let (off, flip_at) = {
        let mut store = open_store(dir.path(), 1 << 20, now());
        let obj = store.lookup(b"http://c.test/x").expect("stored");
        (obj.off, obj.body.start + 1000)
    };
    flip_byte(&dir.file(), flip_at);

    let run = tool(&dir, &["verify"]);
    assert_exit(&run, 1);
    assert!(
        run.text()
            .contains(&format!("bad object at offset {off}: payload CRC")),
        "{}",
        run.text()
    );
    assert!(
        run.stderr.contains(&format!("offset {off}")),
        "{}",
        run.stderr
    );
    let json = tool(&dir, &["--json", "verify"]);
    assert_exit(&json, 1);
    assert!(
        json.text().starts_with(&format!(
            r#"{{"ok":false,"objects":3,"bad":[{{"offset":{off},"error":"payload CRC"#
        )),
        "{}",
        json.text()
    );
    // The damaged body is never written out; its neighbours still are.
    assert_exit(&tool(&dir, &["get", "http://c.test/x"]), 1);
    assert_exit(&tool(&dir, &["get", "http://a.test/"]), 0);
}

fn flip_byte(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open cache file");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, at).expect("read byte");
    file.write_all_at(&[byte[0] ^ 0x20], at)
        .expect("write byte");
}

/// What every refusal of a held cache says: who holds it and what to do.
fn held_message(dir: &TempDir) -> String {
    format!(
        "larder-cache: larder is running and holds {}; stop it first",
        dir.file().display()
    )
}

#[test]
fn read_commands_work_on_a_held_cache_and_changes_are_refused() {
    let dir = TempDir::new("held");
    three(&dir);
    let mut larder = open_store(dir.path(), 1 << 20, now());
    // what the holder is writing meanwhile: a fill begun but not committed
    let mut fill = larder
        .begin(
            b"http://filling.test/",
            b"HTTP/1.1 200 OK\r\n\r\n",
            meta(T0, 0),
            Some(10),
        )
        .expect("begin");
    larder.write(&mut fill, b"01234").expect("write");
    let before = std::fs::read(dir.file()).expect("read cache");

    let stats = tool(&dir, &["stats"]);
    assert_exit(&stats, 0);
    assert!(stats.text().contains("objects   3\n"), "{}", stats.text());
    let ls = tool(&dir, &["ls"]);
    assert_exit(&ls, 0);
    assert_eq!(ls.text().lines().count(), 3, "{}", ls.text());
    assert!(!ls.text().contains("filling"), "{}", ls.text());
    let get = tool(&dir, &["get", "http://a.test/"]);
    assert_exit(&get, 0);
    assert_eq!(get.stdout, b"alpha\0\xffbytes");
    assert_exit(&tool(&dir, &["get", "http://filling.test/"]), 1);
    let verify = tool(&dir, &["verify"]);
    assert_exit(&verify, 0);
    assert_eq!(verify.text(), "checked 3 object(s): 0 bad\n");
    for run in [&stats, &ls, &get, &verify] {
        assert!(run.stderr.is_empty(), "{}", run.stderr);
    }

    for (args, advice) in [
        (
            &["purge", "http://a.test/"][..],
            "or purge through the running proxy: \
             curl -X PURGE -x http://127.0.0.1:3128 http://a.test/",
        ),
        (&["purge", "--expired"], ""),
        (&["compact"], "--cache-size"),
        (&["compact", "--capacity", "2M"], "--cache-size"),
    ] {
        let run = tool(&dir, args);
        assert_exit(&run, 2);
        assert!(
            run.stderr.starts_with(&held_message(&dir)) && run.stderr.contains(advice),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    assert!(
        std::fs::read(dir.file()).expect("read cache") == before,
        "file changed"
    );
    assert_eq!(files_in(&dir), ["larder.cache"]);
    larder.write(&mut fill, b"56789").expect("write");
    larder.commit(fill).expect("commit");
    drop(larder);
    let ls = tool(&dir, &["ls"]);
    assert!(ls.text().contains("http://filling.test/"), "{}", ls.text());
}

/// A cacheable response of `status` with `body`.
fn cacheable(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nCache-Control: max-age=600\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// An origin answering `/missing` with a cacheable 404 and any other path with a
/// cacheable 200 whose body is [`body_for`] the path, 5,000 bytes.
fn cacheable_origin() -> Origin {
    Origin::start(|request| {
        if request.target == "/missing" {
            Reply::Send(cacheable("404 Not Found", b"no such thing"))
        } else {
            Reply::Send(cacheable("200 OK", &body_for(&request.target, 5000)))
        }
    })
}

/// larder on `dir` (1 MiB cache, every response admitted).
fn larder_on(dir: &TempDir) -> Proxy {
    Proxy::start(&[
        "--cache-dir",
        dir.arg(),
        "--cache-size",
        "1M",
        "--admit-after",
        "0",
    ])
}

/// Waits (at most 5 s) until `larder-cache ls` lists `n` objects; returns the listing.
fn wait_for_objects(dir: &TempDir, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ls = tool(dir, &["ls"]);
        let text = ls.text();
        if (ls.code == Some(0) && text.lines().count() >= n) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stats_ls_get_and_verify_read_a_running_larders_cache() {
    let dir = TempDir::new("running");
    let origin = cacheable_origin();
    let mut proxy = larder_on(&dir);
    let urls: Vec<String> = ["/a", "/b", "/missing"]
        .iter()
        .map(|p| origin.url(p))
        .collect();
    for url in &urls {
        proxy.get(url);
    }
    let listing = wait_for_objects(&dir, 3);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(
        lines[0].ends_with(&format!("  200  {}", urls[0])),
        "{listing}"
    );
    assert!(lines[0].trim_start().starts_with("4.9 KiB  "), "{listing}");
    assert!(
        lines[1].ends_with(&format!("  200  {}", urls[1])),
        "{listing}"
    );
    assert!(
        lines[2].ends_with(&format!("  404  {}", urls[2])),
        "{listing}"
    );
    assert!(lines[2].trim_start().starts_with("13 B  "), "{listing}");

    let json = tool(&dir, &["--json", "ls"]);
    assert_exit(&json, 0);
    assert!(
        json.text()
            .contains(&format!(r#"{{"url":"{}","status":404,"size":13,"#, urls[2])),
        "{}",
        json.text()
    );

    let stats = tool(&dir, &["stats"]);
    assert_exit(&stats, 0);
    assert!(stats.text().contains("objects   3\n"), "{}", stats.text());
    assert!(
        stats.text().contains("capacity  1 MiB\n"),
        "{}",
        stats.text()
    );
    let json = tool(&dir, &["--json", "stats"]);
    assert!(
        json.text().starts_with(r#"{"objects":3,"live_bytes":"#),
        "{}",
        json.text()
    );

    let get = tool(&dir, &["get", &urls[1]]);
    assert_exit(&get, 0);
    assert!(get.stdout == body_for("/b", 5000), "another body");
    let head = tool(&dir, &["get", "--head", &urls[2]]);
    assert_exit(&head, 0);
    assert!(
        head.text().starts_with("HTTP/1.1 404 Not Found\r\n")
            && head.text().contains("Cache-Control: max-age=600\r\n")
            && head.text().ends_with("\r\n\r\n"),
        "{}",
        head.text()
    );
    // the scheme and host in any case, as larder matches them
    let upper = urls[0].replacen("http://", "HTTP://", 1);
    assert_exit(&tool(&dir, &["get", &upper]), 0);

    let verify = tool(&dir, &["verify"]);
    assert_exit(&verify, 0);
    assert_eq!(verify.text(), "checked 3 object(s): 0 bad\n");
    let json = tool(&dir, &["--json", "verify"]);
    assert_eq!(
        json.text(),
        "{\"ok\":true,\"objects\":3,\"bad\":[],\"changed\":0,\"damaged_bytes\":0}\n"
    );

    // larder is untroubled: it serves its hits and stores more
    proxy.assert_alive();
    let hit = proxy.get(&urls[0]);
    assert!(hit.body == body_for("/a", 5000));
    assert_eq!(origin.requests(), 3, "served from the cache");
    proxy.get(&origin.url("/c"));
    assert_eq!(wait_for_objects(&dir, 4).lines().count(), 4);
}

/// The body of `/churn/N`: its length and bytes follow from the path.
fn churn_body(path: &str) -> Vec<u8> {
    body_for(path, 20_000 + (fnv(path.as_bytes()) % 20_000) as usize)
}

/// While larder stores object after object into a 1 MiB cache (the ring laps every few
/// dozen), `ls`, `get` and `verify` run over and over: every body `get` writes is
/// exactly the stored one, `ls` lists only URLs that were stored, and `verify` finds no
/// damage (what larder overwrote under it is counted apart).
#[test]
fn read_commands_never_show_a_torn_object_while_larder_overwrites_its_cache() {
    let dir = TempDir::new("churn");
    let origin =
        Origin::start(|request| Reply::Send(cacheable("200 OK", &churn_body(&request.target))));
    let proxy = larder_on(&dir);
    let addr = proxy.addr();
    let prefix = origin.url("/churn/");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (prefix, done) = (prefix.clone(), std::sync::Arc::clone(&done));
        std::thread::spawn(move || {
            let mut client = Client::connect(addr);
            for i in 0..5000 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                client.send(get(&format!("{prefix}{i}")).as_bytes());
                let response = client.read_response();
                assert_eq!(response.status, 200);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut gets, mut changed) = (0, 0);
    for round in 0..40 {
        if Instant::now() > deadline {
            break;
        }
        let ls = tool(&dir, &["ls"]);
        assert_exit(&ls, 0);
        let urls: Vec<String> = ls
            .text()
            .lines()
            .filter_map(|l| l.rsplit("  ").next().map(str::to_owned))
            .collect();
        for url in urls.iter().rev().take(3) {
            let path = url.strip_prefix(&prefix).map(|n| format!("/churn/{n}"));
            let path = path.unwrap_or_else(|| panic!("round {round}: listed {url}"));
            let got = tool(&dir, &["get", url]);
            match got.code {
                Some(0) => {
                    assert!(got.stdout == churn_body(&path), "round {round}: torn {url}");
                    gets += 1;
                }
                // overwritten since it was listed
                Some(1) => {}
                _ => panic!("round {round}: get {url}: {}", got.stderr),
            }
        }
        let verify = tool(&dir, &["--json", "verify"]);
        assert_exit(&verify, 0);
        changed += json_number(&verify.text(), "changed");
    }
    done.store(true, Ordering::SeqCst);
    writer.join().expect("the writer thread");
    eprintln!("{gets} bodies read whole, {changed} objects changed under verify");
    assert!(gets >= 20, "only {gets} bodies read");
    let stats = tool(&dir, &["--json", "stats"]);
    assert!(
        json_number(&stats.text(), "objects") > 5,
        "{}",
        stats.text()
    );
    assert!(
        origin.requests() > 50,
        "larder stored too little: {}",
        origin.requests()
    );
}

#[test]
fn purge_and_compact_on_a_running_larder_exit_2_and_leave_the_file_alone() {
    let dir = TempDir::new("running-changes");
    let origin = cacheable_origin();
    let mut proxy = larder_on(&dir);
    let url = origin.url("/kept");
    proxy.get(&url);
    wait_for_objects(&dir, 1);
    let before = std::fs::read(dir.file()).expect("read cache");
    for args in [
        &["purge", url.as_str()][..],
        &["purge", "--expired"],
        &["compact"],
        &["compact", "--capacity", "2M"],
    ] {
        let run = tool(&dir, args);
        assert_exit(&run, 2);
        assert!(
            run.stderr.starts_with(&held_message(&dir)),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    let run = tool(&dir, &["purge", &url.replacen("http://", "HTTP://", 1)]);
    assert_eq!(
        run.stderr,
        format!(
            "{}, or purge through the running proxy: curl -X PURGE -x \
             http://127.0.0.1:3128 {url}\n",
            held_message(&dir)
        )
    );
    let json = tool(&dir, &["--json", "compact"]);
    assert_exit(&json, 2);
    assert!(
        json.stderr
            .starts_with(r#"{"error":"larder is running and holds "#)
            && json.stderr.ends_with("\"}\n"),
        "{}",
        json.stderr
    );
    assert!(
        std::fs::read(dir.file()).expect("read cache") == before,
        "file changed"
    );
    assert_eq!(files_in(&dir), ["larder.cache"]);
    proxy.assert_alive();
    assert!(proxy.get(&url).body == body_for("/kept", 5000));
    assert_eq!(
        origin.requests(),
        1,
        "the object is still served from the cache"
    );
}

/// The names in `dir`, sorted.
fn files_in(dir: &TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A body of `len` bytes that differ per key, so a mix-up cannot go unnoticed.
fn body_for(key: &str, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(fnv(key.as_bytes()));
    (0..len).map(|_| rng.next() as u8).collect()
}

#[test]
fn compact_keeps_every_live_object_and_drops_dead_bytes() {
    let dir = TempDir::new("compact");
    let keys: Vec<String> = (0..20).map(|i| format!("http://k.test/{i}")).collect();
    let objects: Vec<(&str, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.as_str(), body_for(k, 10_000)))
        .collect();
    {
        let mut store = open_store(dir.path(), 1 << 20, T0);
        for (key, body) in &objects {
            put(&mut store, key, &head_for(body), body, meta(T0, 0));
        }
        // Replaced and purged objects leave dead bytes behind.
        for (key, body) in &objects[..5] {
            put(&mut store, key, &head_for(body), body, meta(T0 + 1, 0));
        }
        store.invalidate(objects[19].0.as_bytes()).expect("purge");
    }
    let dead = |dir: &TempDir| {
        let mut store = open_store(dir.path(), 1 << 20, now());
        let dead = store.stats().dead_bytes;
        for (key, body) in &objects[..19] {
            let obj = store.lookup(key.as_bytes()).expect("kept");
            assert_eq!(store.bytes(obj.body), &body[..], "{key}");
        }
        assert!(store.lookup(objects[19].0.as_bytes()).is_none());
        dead
    };
    assert!(dead(&dir) > 0);

    let run = tool(&dir, &["compact"]);
    assert_exit(&run, 0);
    assert!(
        run.text().starts_with(
            "compacted 1 MiB into 1 MiB: kept 19 object(s), 188.8 KiB live, left out 0"
        ),
        "{}",
        run.text()
    );
    assert_eq!(dead(&dir), 0);
    assert_eq!(std::fs::metadata(dir.file()).expect("stat").len(), 1 << 20);
    assert_eq!(files_in(&dir), ["larder.cache"]);
}

/// The number after `"name":` in a line of JSON.
fn json_number(json: &str, name: &str) -> u64 {
    let field = format!("\"{name}\":");
    json.split_once(&field)
        .and_then(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {name} in {json}"))
}

/// `stats` and `compact` count live bytes alike: the bytes the objects' records take
/// in the file. Before a compaction that keeps everything, `stats` says what `compact`
/// then reports as kept, and `stats` says it again afterwards.
#[test]
fn stats_live_bytes_before_a_compaction_equal_what_compact_keeps() {
    let dir = TempDir::new("live-vs-kept");
    {
        let mut store = open_store(dir.path(), 1 << 20, T0);
        for i in 0..25 {
            let key = format!("http://live.test/{i}?{}", "q".repeat(i));
            let body = body_for(&key, 300 * i + 7);
            put(&mut store, &key, &head_for(&body), &body, meta(T0, 0));
        }
        for i in 0..5 {
            let key = format!("http://live.test/{i}?{}", "q".repeat(i));
            put(
                &mut store,
                &key,
                b"HTTP/1.1 200 OK\r\n\r\n",
                b"new",
                meta(T0 + 1, 0),
            );
        }
        store
            .invalidate(format!("http://live.test/24?{}", "q".repeat(24)).as_bytes())
            .expect("purge");
    }
    let before = tool(&dir, &["--json", "stats"]);
    assert_exit(&before, 0);
    let live = json_number(&before.text(), "live_bytes");
    assert!(json_number(&before.text(), "dead_bytes") > 0);
    let text = tool(&dir, &["stats"]).text();
    let human = text
        .lines()
        .find_map(|l| l.strip_prefix("live      "))
        .expect("a live line")
        .to_owned();

    let compacted = tool(&dir, &["--json", "compact"]);
    assert_exit(&compacted, 0);
    assert_eq!(json_number(&compacted.text(), "kept"), 24);
    assert_eq!(json_number(&compacted.text(), "kept_bytes"), live);
    assert_eq!(json_number(&compacted.text(), "dropped"), 0);
    let after = tool(&dir, &["--json", "stats"]);
    assert_eq!(json_number(&after.text(), "live_bytes"), live);
    assert_eq!(json_number(&after.text(), "dead_bytes"), 0);

    let again = tool(&dir, &["compact"]);
    assert!(
        again
            .text()
            .contains(&format!("kept 24 object(s), {human} live,")),
        "{} vs {human}",
        again.text()
    );
}

#[test]
fn compact_that_shrinks_keeps_the_newest_objects_that_fit() {
    let dir = TempDir::new("compact-shrink");
    let keys: Vec<String> = (0..40).map(|i| format!("http://s.test/{i}")).collect();
    {
        let mut store = open_store(dir.path(), 1 << 20, T0);
        for (i, key) in keys.iter().enumerate() {
            let body = body_for(key, 20_000);
            put(
                &mut store,
                key,
                &head_for(&body),
                &body,
                meta(T0 + i as u64, 0),
            );
        }
    }
    let run = tool(&dir, &["--json", "compact", "--capacity", "256K"]);
    assert_exit(&run, 0);
    assert!(
        run.text()
            .starts_with(r#"{"old_capacity":1048576,"new_capacity":262144,"kept":"#),
        "{}",
        run.text()
    );
    assert_eq!(
        std::fs::metadata(dir.file()).expect("stat").len(),
        256 << 10
    );

    // 252 KiB of data area holds 12 records of 20 KB: the 12 newest, nothing older.
    let mut store = open_store(dir.path(), 1 << 20, now());
    assert_eq!(store.stats().capacity, 256 << 10);
    for (i, key) in keys.iter().enumerate() {
        let found = store.lookup(key.as_bytes());
        assert_eq!(found.is_some(), i >= 28, "{key}");
        if let Some(obj) = found {
            assert_eq!(store.bytes(obj.body), &body_for(key, 20_000)[..], "{key}");
            assert_eq!(obj.meta.stored, T0 + i as u64);
        }
    }
    // The compacted file is an ordinary cache: it takes new objects.
    put(&mut store, "http://new.test/", b"h", b"b", meta(now(), 0));
    assert!(store.lookup(b"http://new.test/").is_some());
}

#[test]
fn compact_can_grow_the_cache() {
    let dir = TempDir::new("compact-grow");
    three(&dir);
    let run = tool(&dir, &["compact", "--capacity", "3M"]);
    assert_exit(&run, 0);
    assert_eq!(std::fs::metadata(dir.file()).expect("stat").len(), 3 << 20);
    let run = tool(&dir, &["get", "http://a.test/"]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, b"alpha\0\xffbytes");
}

#[test]
fn compact_to_an_impossible_size_leaves_the_cache_alone() {
    let dir = TempDir::new("compact-tiny");
    three(&dir);
    let before = std::fs::read(dir.file()).expect("read cache");
    let run = tool(&dir, &["compact", "--capacity", "1K"]);
    assert_exit(&run, 2);
    assert!(run.stderr.contains("not possible"), "{}", run.stderr);
    assert!(std::fs::read(dir.file()).expect("read cache") == before);
    assert_eq!(files_in(&dir), ["larder.cache"]);
}

#[test]
fn a_missing_cache_is_an_error_and_nothing_is_created() {
    let dir = TempDir::new("missing");
    let nested = dir.path().join("not-here");
    let nested = nested.to_str().expect("UTF-8");
    for args in [
        &["stats"][..],
        &["ls"],
        &["compact"],
        &["purge", "--expired"],
    ] {
        let mut full = vec!["--cache-dir", nested];
        full.extend_from_slice(args);
        let run = tool_raw(&full, &[]);
        assert_exit(&run, 2);
        assert!(
            run.stderr.contains(&format!("{nested}/larder.cache")),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
}

#[test]
fn foreign_truncated_and_newer_files_are_refused_untouched() {
    let dir = TempDir::new("foreign");
    let mut rng = Rng::new(42);
    let random: Vec<u8> = (0..100_000).map(|_| rng.next() as u8).collect();
    for (contents, message) in [
        (Vec::new(), "is not a larder cache"),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), "is not a larder cache"),
        (random, "is not a larder cache"),
    ] {
        std::fs::write(dir.file(), &contents).expect("write file");
        for args in [&["stats"][..], &["verify"], &["compact"]] {
            let run = tool(&dir, args);
            assert_exit(&run, 2);
            assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        }
        assert!(std::fs::read(dir.file()).expect("read") == contents);
    }

    std::fs::remove_file(dir.file()).expect("remove");
    populate(&dir, 1 << 20, &[("http://a.test/", b"x", T0, 0)]);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.file())
        .expect("open");
    file.set_len(1 << 19).expect("truncate");
    let run = tool(&dir, &["ls"]);
    assert_exit(&run, 2);
    assert!(
        run.stderr.contains("shorter than its header"),
        "{}",
        run.stderr
    );

    file.set_len(1 << 20).expect("restore length");
    let newer = FileHeader {
        version: 3,
        capacity: 1 << 20,
        file_id: 7,
        created: T0,
    };
    std::os::unix::fs::FileExt::write_all_at(&file, &encode_file_header(&newer), 0)
        .expect("write header");
    let before = std::fs::read(dir.file()).expect("read");
    for args in [&["stats"][..], &["compact"], &["purge", "--expired"]] {
        let run = tool(&dir, args);
        assert_exit(&run, 2);
        assert!(
            run.stderr.contains("version 3") && run.stderr.contains("newer larder"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(std::fs::read(dir.file()).expect("read") == before);
}

#[test]
fn usage_errors_exit_2() {
    let dir = TempDir::new("usage");
    three(&dir);
    for args in [
        &[][..],
        &["frobnicate"],
        &["get"],
        &["purge"],
        &["purge", "http://a.test/", "--expired"],
        &["compact", "--capacity", "12X"],
        &["compact", "--capacity", "0"],
        &["stats", "--no-such-flag"],
    ] {
        let run = tool(&dir, args);
        assert_exit(&run, 2);
        assert!(!run.stderr.trim().is_empty(), "{args:?}: no message");
    }
    assert_exit(&tool(&dir, &["get", "http://a.test/"]), 0);
}

#[test]
fn purge_usage_and_help_show_url_or_expired() {
    let dir = TempDir::new("purge-usage");
    three(&dir);
    let run = tool(&dir, &["purge"]);
    assert_exit(&run, 2);
    assert!(
        run.stderr
            .contains("Usage: larder-cache purge [OPTIONS] <URL>|--expired"),
        "{}",
        run.stderr
    );
    let help = tool(&dir, &["purge", "--help"]);
    assert_exit(&help, 0);
    assert!(help.text().contains("<URL>|--expired"), "{}", help.text());
    let top = tool(&dir, &["--help"]);
    assert_exit(&top, 0);
    assert!(
        top.text()
            .contains("stats, ls, get and verify work while larder runs"),
        "{}",
        top.text()
    );
}

#[test]
fn json_errors_are_one_json_object_on_stderr() {
    let dir = TempDir::new("json-errors");
    three(&dir);
    let absent = tool(&dir, &["--json", "get", "http://nowhere.test/"]);
    assert_exit(&absent, 1);
    assert!(absent.stdout.is_empty());
    assert_eq!(
        absent.stderr,
        "{\"error\":\"not in the cache: http://nowhere.test/\"}\n"
    );
    let purged = tool(&dir, &["purge", "--json", "--expired"]);
    assert_exit(&purged, 0);
    let none = tool(&dir, &["purge", "--expired", "--json"]);
    assert_exit(&none, 1);
    assert_eq!(none.text(), "{\"purged\":0}\n");
    assert_eq!(none.stderr, "{\"error\":\"no expired objects\"}\n");

    let missing = TempDir::new("json-missing");
    let run = tool(&missing, &["--json", "stats"]);
    assert_exit(&run, 2);
    assert_eq!(
        run.stderr,
        format!(
            "{{\"error\":\"there is no cache file at {}\"}}\n",
            missing.file().display()
        )
    );
    // usage errors too: one line, one object, exit 2 as before
    for args in [
        &["--json", "frobnicate"][..],
        &["--json", "purge"],
        &["get", "--json"],
        &["--json", "compact", "--capacity", "12X"],
    ] {
        let run = tool(&dir, args);
        assert_exit(&run, 2);
        let err = run.stderr.trim_end();
        assert!(
            err.starts_with("{\"error\":\"") && err.ends_with("\"}") && !err.contains('\n'),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.ends_with("}\n"), "{args:?}");
    }
    // without --json, as before
    let run = tool(&dir, &["get", "http://nowhere.test/"]);
    assert_eq!(
        run.stderr,
        "larder-cache: not in the cache: http://nowhere.test/\n"
    );
    // help is not an error
    let help = tool(&dir, &["--json", "--help"]);
    assert_exit(&help, 0);
    assert!(help.text().contains("Usage:"), "{}", help.text());
}

#[test]
fn get_and_purge_match_scheme_and_host_in_any_case_and_the_path_exactly() {
    let dir = TempDir::new("url-case");
    populate(
        &dir,
        1 << 20,
        &[
            ("http://example.com/Path?Q=1", b"mixed", T0, 0),
            ("http://example.com:8080/", b"port", T0, 0),
            ("http://other.test/x", b"x", T0, 0),
        ],
    );
    for url in [
        "HTTP://Example.COM/Path?Q=1",
        "http://EXAMPLE.com:80/Path?Q=1",
        "Http://example.COM./Path?Q=1",
    ] {
        let run = tool(&dir, &["get", url]);
        assert_exit(&run, 0);
        assert_eq!(run.stdout, b"mixed", "{url}");
    }
    let run = tool(&dir, &["get", "HTTP://EXAMPLE.COM:8080"]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, b"port");
    // the path's case is the resource's own
    let run = tool(&dir, &["get", "http://example.com/path?q=1"]);
    assert_exit(&run, 1);
    assert!(
        run.stderr.contains("http://example.com/path?q=1"),
        "{}",
        run.stderr
    );
    let json = tool(&dir, &["--json", "get", "HTTP://Other.Test/x"]);
    assert!(
        json.text().starts_with(r#"{"url":"http://other.test/x","#),
        "{}",
        json.text()
    );

    let run = tool(&dir, &["purge", "HTTP://EXAMPLE.COM/Path?Q=1"]);
    assert_exit(&run, 0);
    assert_eq!(run.text(), "purged 1 object(s)\n");
    assert_exit(&tool(&dir, &["get", "http://example.com/Path?Q=1"]), 1);
    let run = tool(&dir, &["purge", "http://OTHER.test/X"]);
    assert_exit(&run, 1);
    assert_exit(&tool(&dir, &["get", "http://other.test/x"]), 0);
}

#[test]
fn ls_shows_each_objects_status_code() {
    let dir = TempDir::new("ls-status");
    {
        let mut store = open_store(dir.path(), 1 << 20, T0);
        for (key, head) in [
            ("http://s.test/ok", &b"HTTP/1.1 200 OK\r\n\r\n"[..]),
            (
                "http://s.test/moved",
                b"HTTP/1.1 301 Moved Permanently\r\nLocation: /\r\n\r\n",
            ),
            ("http://s.test/gone", b"HTTP/1.0 410 Gone\r\n\r\n"),
            (
                "http://s.test/v",
                b"LARDER-VARIANTS\r\nVary: accept\r\n\r\n",
            ),
        ] {
            put(&mut store, key, head, b"", meta(T0, 0));
        }
    }
    let run = tool(&dir, &["ls"]);
    assert_exit(&run, 0);
    let lines: Vec<&str> = run
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| std::str::from_utf8(l).unwrap_or(""))
        .collect();
    assert_eq!(lines.len(), 4, "{}", run.text());
    for (line, end) in lines.iter().zip([
        "  200  http://s.test/ok",
        "  301  http://s.test/moved",
        "  410  http://s.test/gone",
        "    -  http://s.test/v",
    ]) {
        assert!(line.ends_with(end), "{line:?} does not end with {end:?}");
    }
    let json = tool(&dir, &["--json", "ls"]).text();
    for field in [
        r#"{"url":"http://s.test/moved","status":301,"#,
        r#"{"url":"http://s.test/v","status":null,"#,
    ] {
        assert!(json.contains(field), "no {field} in {json}");
    }
}

#[test]
fn the_cache_is_found_as_larder_finds_it() {
    let dir = TempDir::new("found");
    three(&dir);
    let env = tool_raw(&["stats"], &[("LARDER_CACHE_DIR", dir.arg())]);
    assert_exit(&env, 0);
    assert!(env.text().contains("objects   3\n"), "{}", env.text());

    // No flag, no LARDER_CACHE_DIR: $XDG_CACHE_HOME/larder.
    let xdg = TempDir::new("xdg");
    let larder_dir = xdg.path().join("larder");
    std::fs::create_dir(&larder_dir).expect("mkdir");
    std::fs::rename(dir.file(), larder_dir.join("larder.cache")).expect("move cache");
    let run = tool_raw(
        &["ls"],
        &[("XDG_CACHE_HOME", xdg.arg()), ("HOME", "/nonexistent")],
    );
    assert_exit(&run, 0);
    assert!(run.text().contains("http://a.test/"), "{}", run.text());
}

// ---------------------------------------------------------------------------------------
// kill -9 at random moments

/// Names the directory a `crash_writer_child` writes in (unset: the test does nothing).
const CRASH_DIR_ENV: &str = "LARDER_TEST_CRASH_DIR";
/// Seeds the child's choices.
const CRASH_SEED_ENV: &str = "LARDER_TEST_CRASH_SEED";
/// Small enough that the ring wraps many times in one child's life.
const CRASH_CAPACITY: u64 = 1 << 20;
/// Distinct keys the child writes: few, so it replaces and refreshes as well.
const CRASH_KEYS: u64 = 150;
/// What the child prints once its store is open and it starts writing: the parent's
/// random delay before the kill counts from there, not from a process start that a
/// busy machine can make take longer than the delay itself.
const CRASH_READY: &str = "crash writer: writing";

/// The body stored for `key`: its length and every byte follow from the key.
fn crash_body(key: &str) -> Vec<u8> {
    let len = (fnv(key.as_bytes()) % 40_000) as usize;
    body_for(key, len)
}

/// The head stored for `key`; `generation` changes with each refresh.
fn crash_head(key: &str, generation: u64) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nX-Key: {key}\r\nX-Gen: {generation}\r\n\r\n").into_bytes()
}

/// Whether `head` is a `crash_head` of `key` for some generation.
fn is_crash_head(key: &str, head: &[u8]) -> bool {
    let prefix = format!("HTTP/1.1 200 OK\r\nX-Key: {key}\r\nX-Gen: ");
    std::str::from_utf8(head)
        .ok()
        .and_then(|h| h.strip_prefix(&prefix))
        .and_then(|rest| rest.strip_suffix("\r\n\r\n"))
        .is_some_and(|gen| !gen.is_empty() && gen.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn objects_survive_sigkill_at_random_moments() {
    let dir = TempDir::new("crash");
    drop(open_store(dir.path(), CRASH_CAPACITY, now()));
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    eprintln!("crash test seed {seed}");
    let mut rng = Rng::new(seed);
    let exe = std::env::current_exe().expect("test binary path");
    // Rounds in which the child committed something before it died (after our own write).
    let (mut progressed, mut our_seq) = (0, 0);
    for round in 0..30 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "cache::crash_writer_child",
                "--ignored",
                "--nocapture",
            ])
            .env(CRASH_DIR_ENV, dir.path())
            .env(CRASH_SEED_ENV, rng.next().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let (ready, started) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        // Read to the end, so that the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == CRASH_READY {
                    let _ = ready.send(());
                }
            }
        });
        if started.recv_timeout(WAIT_LIMIT).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("round {round}: the writer did not start within {WAIT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(rng.next() % 140));
        child.kill().expect("SIGKILL the writer");
        child.wait().expect("reap the writer");

        let mut store = Store::open(dir.path(), opts(CRASH_CAPACITY), now())
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): reopen: {e}"));
        let keys: Vec<Vec<u8>> = store.objects().map(|o| o.key.to_vec()).collect();
        if store.objects().any(|o| o.seq > our_seq) {
            progressed += 1;
        }
        for key in keys {
            let key = String::from_utf8(key).expect("keys are text");
            let obj = store
                .lookup(key.as_bytes())
                .unwrap_or_else(|| panic!("round {round} (seed {seed}): {key} was dropped"));
            assert!(
                is_crash_head(&key, store.bytes(obj.head.clone())),
                "round {round} (seed {seed}): bad head for {key}"
            );
            assert!(
                store.bytes(obj.body) == crash_body(&key),
                "round {round} (seed {seed}): bad body for {key}"
            );
        }
        // Still writable; the object joins the next round's checks.
        let key = format!("http://crash.test/after/{round}");
        let body = crash_body(&key);
        put(
            &mut store,
            &key,
            &crash_head(&key, 0),
            &body,
            meta(now(), 0),
        );
        let obj = store.lookup(key.as_bytes()).expect("stored after reopen");
        assert!(store.bytes(obj.body) == body);
        our_seq = obj.seq;
    }
    eprintln!("the writer made progress in {progressed} of 30 rounds");
    assert!(
        progressed >= 10,
        "the writer rarely got going (seed {seed})"
    );
}

/// The writer `objects_survive_sigkill_at_random_moments` runs and kills: puts (known
/// and unknown length), lookups (so the ring copies objects forward), refreshes and
/// purges, in a loop, for at most 10 s.
#[test]
#[ignore = "run as a child process by objects_survive_sigkill_at_random_moments"]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let seed = std::env::var(CRASH_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng::new(seed);
    let mut store = open_store(Path::new(&dir), CRASH_CAPACITY, now());
    println!("{CRASH_READY}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut generation = 0;
    while Instant::now() < deadline {
        generation += 1;
        let key = format!("http://crash.test/{}", rng.next() % CRASH_KEYS);
        let meta = meta(now(), now() + 3600);
        match rng.next() % 20 {
            0..=9 => {
                let body = crash_body(&key);
                let known = !rng.next().is_multiple_of(4);
                let len = known.then_some(body.len() as u64);
                let Ok(mut fill) = store.begin(key.as_bytes(), &crash_head(&key, 0), meta, len)
                else {
                    continue;
                };
                let mut ok = true;
                for piece in body.chunks(1 + (rng.next() % 9000) as usize) {
                    ok = ok && store.write(&mut fill, piece).is_ok();
                }
                if ok {
                    let _ = store.commit(fill);
                } else {
                    store.abort(fill);
                }
            }
            10..=15 => {
                let _ = store.lookup(key.as_bytes());
            }
            16..=18 => {
                if let Some(old) = store.lookup(key.as_bytes()) {
                    let _ =
                        store.refresh(&old, key.as_bytes(), &crash_head(&key, generation), meta);
                }
            }
            _ => {
                let _ = store.invalidate(key.as_bytes());
            }
        }
    }
}

/// xorshift64*: small, deterministic test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// FNV-1a: a stable hash to derive test data from keys.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------------------
// A full disk

/// Names the directory (a small tmpfs) a `full_disk_child` fills (unset: it does nothing).
const FULL_DIR_ENV: &str = "LARDER_TEST_FULL_DIR";
/// The size of that tmpfs: room for a handful of the child's objects.
const FULL_TMPFS: &str = "size=512k";
/// What the child prints when every check passed, for the parent to find.
const FULL_DONE: &str = "full-disk child: done";

/// On a file system that fills up, `begin` fails cleanly (an I/O error that says the
/// disk is full, storing paused, nothing claimed) instead of a write failing in the
/// middle of a body whose fill was already begun: the room of every fill is allocated
/// before it is begun. The child runs in a private mount namespace on a 512 KiB tmpfs
/// (`unshare --mount`, in a user namespace where the kernel allows that, so the test
/// needs no privileges there); where namespaces cannot be made, the test says so and
/// passes without running.
#[test]
fn a_full_disk_fails_begin_cleanly_never_a_write_mid_body() {
    let dir = TempDir::new("full-disk");
    let exe = std::env::current_exe().expect("test binary path");
    let script = format!(
        "mount -t tmpfs -o {FULL_TMPFS} larder-test \"$1\" && exec \"$2\" --exact \
         cache::full_disk_child --ignored --nocapture --test-threads 1"
    );
    let run = |namespaces: &[&str]| {
        Command::new("unshare")
            .args(namespaces)
            .args(["sh", "-c", &script, "sh"])
            .arg(dir.path())
            .arg(&exe)
            .env(FULL_DIR_ENV, dir.path())
            .stdin(Stdio::null())
            .output()
    };
    // A user namespace first (no privileges needed), else a mount namespace alone (root).
    let mut tried = Vec::new();
    for namespaces in [&["--user", "--map-root-user", "--mount"][..], &["--mount"]] {
        match run(namespaces) {
            Ok(out) => {
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                if stdout.contains("running 1 test") {
                    assert!(
                        out.status.success() && stdout.contains(FULL_DONE),
                        "the child failed:\n{stdout}\n{stderr}"
                    );
                    for line in stdout.lines() {
                        if let Some((_, said)) = line.split_once("full-disk child: ") {
                            eprintln!("{said}");
                        }
                    }
                    return;
                }
                tried.push(format!("unshare {namespaces:?}: {}", stderr.trim()));
            }
            Err(e) => tried.push(format!("unshare {namespaces:?}: {e}")),
        }
    }
    println!(
        "SKIPPED a_full_disk_fails_begin_cleanly_never_a_write_mid_body: no private mount \
         namespace could be made for a small tmpfs ({})",
        tried.join("; ")
    );
}

/// The child of `a_full_disk_fails_begin_cleanly_never_a_write_mid_body`, on a 512 KiB
/// tmpfs: stores 64 KiB objects in a 4 MiB (sparse) cache until the file system is full.
#[test]
#[ignore = "run as a child process, on a small tmpfs, by a_full_disk_fails_begin_cleanly_never_a_write_mid_body"]
fn full_disk_child() {
    let Some(dir) = std::env::var_os(FULL_DIR_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let t = now();
    let mut store = Store::open(&dir, opts(4 << 20), t).expect("create the cache");
    let head = head_for(&[0; 65536]);
    let mut stored = Vec::new();
    let refused = loop {
        let key = format!("http://full.test/{}", stored.len());
        let body = body_for(&key, 65536);
        let mut fill = match store.begin(key.as_bytes(), &head, meta(t, 0), Some(65536)) {
            Ok(fill) => fill,
            Err(e) => break e,
        };
        // Once begun, a fill's writes never fail for want of space.
        for chunk in body.chunks(4096) {
            store
                .write(&mut fill, chunk)
                .unwrap_or_else(|e| panic!("{key}: a write failed after begin: {e}"));
        }
        store
            .commit(fill)
            .unwrap_or_else(|e| panic!("{key}: commit: {e}"));
        stored.push(key);
        assert!(stored.len() < 60, "the 512 KiB file system never filled up");
    };
    assert!(
        refused.is_write_error() && refused.is_disk_full(),
        "begin failed with {refused}"
    );
    assert!(stored.len() >= 3, "only {} object(s) fit", stored.len());
    let summary = store.summary();
    assert_eq!(summary.write_errors, 1);
    assert_eq!(summary.objects, stored.len() as u64);
    assert!(
        store.paused(t) && summary.paused_until >= t + 30,
        "{summary:?}"
    );
    for key in &stored {
        let obj = store.lookup(key.as_bytes()).expect("stored");
        assert!(store.bytes(obj.body) == body_for(key, 65536), "{key}");
    }
    // After the pause a body of unknown length grows until the disk is full: the
    // growth fails, before any byte beyond the room it had.
    let later = meta(t + 31, 0);
    let mut fill = store
        .begin(b"http://full.test/chunked", &head, later, None)
        .map_err(|e| e.to_string());
    if let Ok(f) = fill.as_mut() {
        let piece = vec![7u8; 65536];
        let failed = loop {
            if let Err(e) = store.write(f, &piece) {
                break e;
            }
            assert!(f.written() < 4 << 20, "never refused");
        };
        assert!(failed.is_disk_full(), "the growth failed with {failed}");
    }
    match fill {
        Ok(f) => store.abort(f),
        // The disk may already be too full for the first megabyte of room.
        Err(e) => assert!(e.contains("No space left"), "{e}"),
    }
    drop(store);
    // The file reopens with every object whole.
    let mut store = Store::open(&dir, opts(4 << 20), t).expect("reopen");
    for key in &stored {
        let obj = store.lookup(key.as_bytes()).expect("kept");
        assert!(store.bytes(obj.body) == body_for(key, 65536), "{key}");
    }
    println!(
        "full-disk child: {} objects of 64 KiB stored on a 512 KiB tmpfs, then begin \
         refused: {refused}",
        stored.len()
    );
    println!("{FULL_DONE}");
}
