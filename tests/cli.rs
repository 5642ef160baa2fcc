//! Start-up: bad configuration exits with status 2 before binding; `LARDER_*` variables
//! configure like their flags; the cache file is made, sized, resized and guarded as the
//! flags say; `--listen` takes addresses, `:PORT` and names, as often as needed.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    dead_port, exit_of, get, ok, run_to_exit, without_settings, Client, Origin, Proxy, Reply,
    TempDir, WAIT_LIMIT,
};

#[test]
fn bad_flags_exit_with_status_2() {
    for args in [
        &["--no-such-flag"][..],
        &["--timeout-idle", "soon"],
        &["--allow", "not-a-cidr"],
        &["--connect-ports", "http"],
        &["--cache-size", "lots"],
        &["--cache-size", "0"],
        &["--range-whole-below", "some"],
    ] {
        let (code, stderr) = run_to_exit(args);
        assert_eq!(code, Some(2), "{args:?}; stderr:\n{stderr}");
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
        assert!(
            !stderr.contains("listening on"),
            "{args:?} bound anyway:\n{stderr}"
        );
    }
}

#[test]
fn a_congestion_control_the_kernel_lacks_exits_with_status_2_naming_those_it_has() {
    let (code, stderr) = run_to_exit(&["--tcp-congestion", "no_such_cc"]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("--tcp-congestion no_such_cc: the kernel has no such congestion control")
            && stderr.contains("reno"),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("listening on"), "bound anyway:\n{stderr}");
    let (code, stderr) = run_to_exit(&["--tcp-congestion", "Not A Name"]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("not a congestion control's name"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn unreadable_block_list_exits_with_status_2() {
    let path = std::env::temp_dir().join(format!(
        "larder-test-{}-missing/list.txt",
        std::process::id()
    ));
    let path = path.to_str().expect("UTF-8 temp path");
    let (code, stderr) = run_to_exit(&["--block-list", path]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains(path),
        "message does not name the file:\n{stderr}"
    );
    assert!(!stderr.contains("listening on"), "bound anyway:\n{stderr}");
}

#[test]
fn environment_twin_configures_like_its_flag() {
    let proxy = Proxy::start_with_env(&[], &[("LARDER_BLOCK", "envblocked.test")]);
    let response = proxy.get("http://www.envblocked.test/");
    assert_eq!(response.status, 403);
    assert!(
        response.text().contains("envblocked.test"),
        "page: {}",
        response.text()
    );
}

/// The cache file a `--cache-dir` gets, and its length on disk.
fn cache_file_len(dir: &TempDir) -> Option<u64> {
    std::fs::metadata(dir.path().join("larder.cache"))
        .ok()
        .map(|m| m.len())
}

#[test]
fn cache_dir_and_size_make_the_file_and_start_up_names_it() {
    let dir = TempDir::new("cache-flags");
    let nested = dir.path().join("a").join("b");
    let nested = nested.to_str().expect("UTF-8 temp path");
    let proxy = Proxy::start(&["--cache-dir", nested, "--cache-size", "2M"]);
    let file = format!("{nested}/larder.cache");
    assert!(
        proxy
            .stderr()
            .contains(&format!("larder: cache {file} (2 MiB, 0 objects)")),
        "start-up lines:\n{}",
        proxy.stderr()
    );
    assert_eq!(
        std::fs::metadata(&file).map(|m| m.len()).ok(),
        Some(2 << 20)
    );
}

#[test]
fn cache_dir_environment_twin_is_used() {
    let dir = TempDir::new("cache-env");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let _proxy = Proxy::start_with_env(
        &[],
        &[("LARDER_CACHE_DIR", path), ("LARDER_CACHE_SIZE", "3M")],
    );
    assert_eq!(cache_file_len(&dir), Some(3 << 20));
}

#[test]
fn a_second_larder_on_the_same_cache_is_refused() {
    let dir = TempDir::new("cache-locked");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let _first = Proxy::start(&["--cache-dir", path]);
    let (code, stderr) = run_to_exit(&["--cache-dir", path]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("is in use"), "stderr:\n{stderr}");
    assert!(!stderr.contains("listening on"), "bound anyway:\n{stderr}");
}

#[test]
fn a_file_that_is_not_a_cache_is_refused_and_left_alone() {
    let dir = TempDir::new("cache-foreign");
    let file = dir.path().join("larder.cache");
    let mine = b"my notes, not a cache\n".repeat(100);
    std::fs::write(&file, &mine).expect("write");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let (code, stderr) = run_to_exit(&["--cache-dir", path]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("not a larder cache"), "stderr:\n{stderr}");
    assert_eq!(
        std::fs::read(&file).ok(),
        Some(mine),
        "the file was changed"
    );
}

#[test]
fn a_new_cache_size_resizes_the_existing_cache_at_start_up() {
    let dir = TempDir::new("cache-resize");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let mut small = Proxy::start(&["--cache-dir", path, "--cache-size", "1M"]);
    assert_eq!(small.stop(), Some(0));
    assert_eq!(cache_file_len(&dir), Some(1 << 20));

    let bigger = Proxy::start(&["--cache-dir", path, "--cache-size", "4M"]);
    assert!(
        bigger
            .stderr()
            .contains("(4 MiB, 0 objects; resized from 1 MiB"),
        "start-up lines:\n{}",
        bigger.stderr()
    );
    drop(bigger);
    assert_eq!(cache_file_len(&dir), Some(4 << 20));

    // Without --cache-size the file keeps the size it has.
    let kept = Proxy::start(&["--cache-dir", path]);
    assert!(
        kept.stderr().contains("(4 MiB, 0 objects)"),
        "{}",
        kept.stderr()
    );
}

// ---------------------------------------------------------------------------------------
// larder started by hand: the exact command line, variables, working directory, stdout

/// larder with exactly `args` (no `--listen` or `--cache-dir` added), run in `cwd`, with
/// no inherited `LARDER_*` or `CACHE_DIRECTORY` and `env` added; stderr piped.
fn larder(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
    cmd.args(args).current_dir(cwd);
    without_settings(&mut cmd);
    cmd.envs(env.iter().copied());
    cmd
}

/// A larder started from [`larder`], killed when dropped.
struct Running {
    child: Child,
    stderr: String,
    /// Its stdout, line by line, when it was piped.
    stdout: Option<mpsc::Receiver<String>>,
}

impl Running {
    /// Starts `cmd` and waits (at most 10 s) for its first `listening on` line.
    fn start(mut cmd: Command, pipe_stdout: bool) -> Running {
        if pipe_stdout {
            cmd.stdout(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn larder");
        let stdout = child.stdout.take().map(|pipe| {
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            rx
        });
        let pipe = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut stderr = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    stderr.push_str(&line);
                    stderr.push('\n');
                    if line.starts_with("larder: listening on ") {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("larder did not report its address; stderr:\n{stderr}");
                }
            }
        }
        Running {
            child,
            stderr,
            stdout,
        }
    }

    /// The next line larder writes to stdout (at most 5 s).
    fn stdout_line(&self) -> Option<String> {
        let rx = self.stdout.as_ref()?;
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every address in larder's `listening on` lines, once `n` of them have been printed
/// (they follow one another at start-up; waits at most [`WAIT_LIMIT`]).
fn listening_addrs(proxy: &Proxy, n: usize) -> Vec<SocketAddr> {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let stderr = proxy.stderr();
        let addrs: Vec<SocketAddr> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("larder: listening on "))
            .filter_map(|a| a.parse().ok())
            .collect();
        if addrs.len() >= n || Instant::now() > deadline {
            assert_eq!(addrs.len(), n, "stderr:\n{stderr}");
            return addrs;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A GET through the listener at `addr` to `origin` succeeds.
fn assert_serves(addr: SocketAddr, origin: &Origin) {
    let mut client = Client::connect(addr);
    client.send(get(&origin.url("/through")).as_bytes());
    let response = client.read_response();
    assert_eq!(response.status, 200, "through {addr}: {}", response.text());
    assert_eq!(response.text(), "served");
}

fn served() -> Origin {
    Origin::start(|_| Reply::Send(ok(b"served")))
}

// ---------------------------------------------------------------------------------------
// --listen

#[test]
fn listen_colon_zero_listens_on_every_ipv4_interface_and_serves_loopback() {
    let origin = served();
    let proxy = Proxy::start(&["--listen", ":0"]);
    let addrs = listening_addrs(&proxy, 2);
    let any = addrs
        .iter()
        .find(|a| a.ip().is_unspecified())
        .unwrap_or_else(|| panic!("no 0.0.0.0 listener in {addrs:?}"));
    assert!(any.is_ipv4() && any.port() != 0, "{any}");
    assert_serves(SocketAddr::from(([127, 0, 0, 1], any.port())), &origin);
}

#[test]
fn listen_colon_port_listens_on_that_port_of_every_ipv4_interface() {
    let origin = served();
    let port = dead_port();
    let arg = format!(":{port}");
    let proxy = Proxy::start(&["--listen", &arg]);
    let addrs = listening_addrs(&proxy, 2);
    assert!(
        addrs.contains(&SocketAddr::from(([0, 0, 0, 0], port))),
        "{addrs:?}"
    );
    assert_serves(SocketAddr::from(([127, 0, 0, 1], port)), &origin);
}

#[test]
fn listen_name_listens_on_each_address_it_resolves_to() {
    let origin = served();
    let port = dead_port();
    let arg = format!("localhost:{port}");
    let resolved: Vec<SocketAddr> = ("localhost", port)
        .to_socket_addrs()
        .expect("localhost resolves")
        .collect();
    assert!(resolved.contains(&SocketAddr::from(([127, 0, 0, 1], port))));
    let proxy = Proxy::start(&["--listen", &arg]);
    // Each resolved address is listened on, unless the machine lacks its family (then
    // larder warns and goes on with the others).
    let lines = proxy.stderr();
    let mut unique = resolved.clone();
    unique.sort();
    unique.dedup();
    let expected = unique
        .iter()
        .filter(|a| !lines.contains(&format!("not listening on {a}")))
        .count();
    let addrs = listening_addrs(&proxy, 1 + expected);
    for addr in addrs.iter().filter(|a| a.port() == port) {
        assert!(resolved.contains(addr), "{addr} not among {resolved:?}");
    }
    assert_serves(SocketAddr::from(([127, 0, 0, 1], port)), &origin);
}

#[test]
fn repeated_listen_serves_on_every_address() {
    let origin = served();
    let proxy = Proxy::start(&["--listen", "127.0.0.2:0"]);
    let addrs = listening_addrs(&proxy, 2);
    assert!(
        addrs.iter().any(|a| a.ip().to_string() == "127.0.0.1"),
        "{addrs:?}"
    );
    assert!(
        addrs.iter().any(|a| a.ip().to_string() == "127.0.0.2"),
        "{addrs:?}"
    );
    for &addr in &addrs {
        assert_serves(addr, &origin);
    }
}

#[test]
fn bad_listen_values_exit_2_with_a_one_line_message() {
    for (value, says) in [
        ("3128", "listens on every IPv4 interface"),
        ("host:99999", "is not a port"),
        (
            "nosuchname.invalid:1",
            "cannot resolve 'nosuchname.invalid'",
        ),
    ] {
        let (code, stderr) = run_to_exit(&["--listen", value]);
        assert_eq!(code, Some(2), "{value}; stderr:\n{stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains(says))
            .unwrap_or_else(|| panic!("{value}: no line saying {says:?}:\n{stderr}"));
        assert!(line.contains(&format!("'{value}'")), "{value}: {line}");
        assert!(
            !stderr.contains("listening on"),
            "{value} bound anyway:\n{stderr}"
        );
    }
}

#[test]
fn listening_beyond_loopback_with_the_default_allow_warns_how_to_allow_others() {
    let open = Proxy::start(&["--listen", ":0"]);
    let stderr = open.stderr();
    let warning = stderr
        .lines()
        .find(|l| l.contains("only loopback clients are allowed"))
        .unwrap_or_else(|| panic!("no warning:\n{stderr}"));
    assert!(warning.contains("[WARN]"), "{warning}");
    assert!(warning.contains("listening on 0.0.0.0:"), "{warning}");
    assert!(warning.contains("--allow 192.168.1.0/24"), "{warning}");

    let allowed = Proxy::start(&["--listen", ":0", "--allow", "192.168.1.0/24"]);
    assert!(
        !allowed.stderr().contains("only loopback"),
        "{}",
        allowed.stderr()
    );
    let loopback = Proxy::start(&[]);
    assert!(
        !loopback.stderr().contains("only loopback"),
        "{}",
        loopback.stderr()
    );
}

// ---------------------------------------------------------------------------------------
// Other flags

#[test]
fn cache_dir_naming_a_file_says_it_is_not_a_directory() {
    let dir = TempDir::new("cache-dir-file");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"not a directory").expect("write");
    let file = file.to_str().expect("UTF-8 temp path");
    let (code, stderr) = run_to_exit(&["--cache-dir", file]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{file} is a file, not a directory")),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("os error"), "stderr:\n{stderr}");
    assert_eq!(std::fs::read(file).ok(), Some(b"not a directory".to_vec()));
}

#[test]
fn max_conns_zero_is_refused() {
    let (code, stderr) = run_to_exit(&["--max-conns", "0"]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("--max-conns"), "stderr:\n{stderr}");
    assert!(stderr.contains("give 1 or more"), "stderr:\n{stderr}");
    assert!(!stderr.contains("listening on"), "bound anyway:\n{stderr}");
}

#[test]
fn cache_max_object_above_the_cache_size_is_refused_naming_both() {
    let (code, stderr) = run_to_exit(&["--cache-size", "4M", "--cache-max-object", "8M"]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("--cache-max-object 8 MiB is larger than --cache-size 4 MiB"),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("listening on"), "bound anyway:\n{stderr}");
}

#[test]
fn cache_max_object_without_cache_size_is_checked_against_the_size_the_cache_will_have() {
    // A new cache gets the default size, 256M, and nothing is created when refused.
    let fresh = TempDir::new("max-object-new");
    let dir = fresh.path().join("cache");
    let dir = dir.to_str().expect("UTF-8 temp path");
    let (code, stderr) = run_to_exit(&["--cache-dir", dir, "--cache-max-object", "300M"]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("300 MiB"), "stderr:\n{stderr}");
    assert!(stderr.contains("256 MiB, the default"), "stderr:\n{stderr}");
    assert!(!Path::new(dir).exists(), "a cache was made anyway");

    // An existing cache keeps its own size.
    let existing = TempDir::new("max-object-existing");
    let path = existing.path().to_str().expect("UTF-8 temp path");
    let mut first = Proxy::start(&["--cache-dir", path, "--cache-size", "1M"]);
    assert_eq!(first.stop(), Some(0));
    let (code, stderr) = run_to_exit(&["--cache-dir", path, "--cache-max-object", "2M"]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("--cache-max-object 2 MiB is larger than the cache"),
        "stderr:\n{stderr}"
    );
    assert!(stderr.contains("(1 MiB;"), "stderr:\n{stderr}");
    let _fits = Proxy::start(&["--cache-dir", path, "--cache-max-object", "512K"]);
}

#[test]
fn access_log_dash_writes_to_stdout_and_creates_no_file() {
    let origin = served();
    let work = TempDir::new("access-stdout");
    let cache = work.path().join("cache");
    let cache = cache.to_str().expect("UTF-8 temp path");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--cache-dir",
        cache,
        "--cache-size",
        "1M",
        "--access-log",
        "-",
    ];
    let larder = Running::start(larder(&args, &[], work.path()), true);
    let addr: SocketAddr = larder
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("larder: listening on "))
        .and_then(|a| a.parse().ok())
        .expect("the listening address");
    let url = origin.url("/to-stdout");
    let mut client = Client::connect(addr);
    client.send(get(&url).as_bytes());
    assert_eq!(client.read_response().status, 200);
    let line = larder.stdout_line().expect("an access log line on stdout");
    assert!(line.contains("TCP_MISS/200"), "{line}");
    assert!(line.contains(&url), "{line}");
    assert!(
        !work.path().join("-").exists(),
        "a file named '-' was created"
    );
}

#[test]
fn bad_log_level_lists_the_levels() {
    let (code, stderr) = run_to_exit(&["--log-level", "loud"]);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("off, error, warn, info, debug, trace"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn bad_environment_value_names_the_variable_and_its_flag() {
    let dir = TempDir::new("env-bad");
    let cache = dir.path().to_str().expect("UTF-8 temp path");
    let args = ["--listen", "127.0.0.1:0", "--cache-dir", cache];
    let env = [("LARDER_MAX_CONNS", "abc")];
    let (code, stderr) = exit_of(larder(&args, &env, dir.path()));
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    let line = stderr.trim_end();
    assert!(!line.contains('\n'), "more than one line:\n{stderr}");
    assert!(
        line.starts_with("larder: LARDER_MAX_CONNS='abc': "),
        "{line}"
    );
    assert!(
        line.ends_with("(the environment twin of --max-conns)"),
        "{line}"
    );

    // The same mistake on the command line gets clap's usual message.
    let mut bad_flag = args.to_vec();
    bad_flag.extend(["--max-conns", "abc"]);
    let (code, stderr) = exit_of(larder(&bad_flag, &env, dir.path()));
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.starts_with("error: invalid value 'abc' for '--max-conns <N>'"),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("LARDER_MAX_CONNS"), "stderr:\n{stderr}");

    // A good flag overrides a bad variable.
    let mut good_flag = args.to_vec();
    good_flag.extend(["--max-conns", "5"]);
    let _running = Running::start(larder(&good_flag, &env, dir.path()), false);
}

#[test]
fn systemd_cache_directory_is_the_default_cache_dir() {
    let root = TempDir::new("cache-directory");
    let service = root.path().join("service");
    let other = root.path().join("other");
    let xdg = root.path().join("xdg");
    let dirs = format!("{}:{}", service.display(), other.display());
    let xdg_arg = xdg.to_str().expect("UTF-8 temp path");
    let env = [
        ("CACHE_DIRECTORY", dirs.as_str()),
        ("XDG_CACHE_HOME", xdg_arg),
        ("HOME", xdg_arg),
    ];
    let args = ["--listen", "127.0.0.1:0", "--cache-size", "1M"];
    let larder = Running::start(larder(&args, &env, root.path()), false);
    let file = service.join("larder.cache");
    assert!(
        larder
            .stderr
            .contains(&format!("larder: cache {} (1 MiB", file.display())),
        "stderr:\n{}",
        larder.stderr
    );
    assert!(file.exists());
    assert!(!other.exists() && !xdg.exists(), "a second cache was made");
}

#[test]
fn a_cache_larger_than_the_free_disk_space_is_warned_about() {
    let dir = TempDir::new("cache-too-big");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let small = Proxy::start(&["--cache-dir", path, "--cache-size", "1M"]);
    assert!(!small.stderr().contains("free"), "{}", small.stderr());
    drop(small);

    // The cache file is sparse, so asking for more than the disk holds costs nothing
    // until it fills; a cache is at most 256 GiB, so this needs less free space.
    let free = larder::sys::free_space(dir.path()).expect("free space");
    const GIB: u64 = 1 << 30;
    let size = (free + free / 2).max(free + 2 * GIB) / GIB + 1;
    if size * GIB > larder::cache::format::MAX_CAPACITY {
        eprintln!(
            "skipped: {} GiB free is more than a cache can be",
            free / GIB
        );
        return;
    }
    let size_arg = format!("{size}G");
    let big = Proxy::start(&["--cache-dir", path, "--cache-size", &size_arg]);
    let stderr = big.stderr();
    let warning = stderr
        .lines()
        .find(|l| l.contains("free"))
        .unwrap_or_else(|| panic!("no warning:\n{stderr}"));
    assert!(warning.contains("[WARN]"), "{warning}");
    assert!(warning.contains(&format!("is {size} GiB")), "{warning}");
    assert!(
        warning.contains("but its file system has only"),
        "{warning}"
    );
    assert!(warning.contains("--cache-size"), "{warning}");
}
