//! Real clients through a real larder, as a new user would run them: `curl -x`, `wget`
//! with `http_proxy`, and `apt-get update` / `apt-get download` against a tiny Debian
//! repository served on loopback.
//!
//! larder forwards without caching today, so these tests check pass-through: exact bytes,
//! success exit codes, and that every request the origin saw came through larder (its
//! `Via` token). They count what reaches the origin per file, so the cache work only has
//! to turn "reached the origin again" into "served by larder".
//!
//! Nothing leaves loopback: origins and larder bind 127.0.0.1, the clients get the proxy
//! on their command line with the proxy variables of the test environment removed, and apt
//! runs on a configuration of its own (`APT_CONFIG`) whose `Dir::Etc`, state, cache and
//! logs are all in a temp dir, so it neither reads the system's sources, hooks and proxy
//! settings nor writes under /etc/apt, /var/lib/apt or /var/cache/apt.
//!
//! A missing client program fails its test with the Debian package to install; .ci/run's
//! `APT_PACKAGES` installs them.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::support::{
    http_date, larder_via, pattern, wait_for_log_lines, Origin, Proxy, Reply, Request, TempDir,
    TempFile,
};

/// How long one client run may take before it is killed and the test fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// Proxy settings of the test environment that would send a client elsewhere or around
/// larder.
const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// The modification time of every served file: 2024-01-01 00:00:00 UTC. Old enough that a
/// cache may treat the files as fresh heuristically (RFC 9111 §4.2.2), and fixed so
/// `Last-Modified` is the same on every run.
const MTIME_SECS: u64 = 1_704_067_200;

// ---------------------------------------------------------------------------------------
// Client programs

/// The path of `program` on `PATH`; fails the test, naming the Debian `package` that
/// provides it, if it is not there. Never skips: a client test that did not run must not
/// pass.
pub(crate) fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not on PATH; install the Debian package `{package}` \
                 (apt-get install {package}; .ci/run installs it from APT_PACKAGES)"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// What a finished client run produced.
pub(crate) struct Run {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
}

impl Run {
    /// Panics with the command and its output unless it exited 0.
    pub(crate) fn assert_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} failed ({}); stdout:\n{}\nstderr:\n{}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
    }
}

/// Runs `cmd` to its exit with stdin closed and the proxy variables it inherits from the
/// test environment removed (those the test set on `cmd` stay); kills it and fails the
/// test after [`CHILD_TIMEOUT`].
pub(crate) fn run(mut cmd: Command) -> Run {
    for var in PROXY_VARS {
        let set_here = cmd
            .get_envs()
            .any(|(key, value)| key == var && value.is_some());
        if !set_here {
            cmd.env_remove(var);
        }
    }
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr
                    .recv_timeout(Duration::from_secs(1))
                    .unwrap_or_default();
                panic!(
                    "{shown} still running after {CHILD_TIMEOUT:?}, killed; stderr:\n{}",
                    String::from_utf8_lossy(&err)
                );
            }
            Err(e) => panic!("wait for {shown}: {e}"),
        }
    };
    // A grandchild that kept the pipes open (an apt method) must not hang the test.
    let output = |rx: mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{shown} exited but its output did not close"))
    };
    Run {
        status,
        stdout: output(stdout),
        stderr: String::from_utf8_lossy(&output(stderr)).into_owned(),
    }
}

/// Reads `pipe` to its end on a thread (so a chatty child cannot block on a full pipe) and
/// sends what it read.
fn collect<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = tx.send(bytes);
    });
    rx
}

// ---------------------------------------------------------------------------------------
// A static file server

/// Serves the files under `root` over HTTP/1.1 on 127.0.0.1 (a thread per connection,
/// keep-alive, pipelining): GET and HEAD with Content-Length and `Last-Modified`, 304 to
/// an `If-Modified-Since` equal to it (as nginx and Apache do), 404 for anything else.
/// Every request is recorded; see [`requests_for`].
fn file_server(root: &Path) -> Origin {
    let root = root.to_path_buf();
    Origin::start(move |request| Reply::Send(serve_file(&root, request)))
}

fn serve_file(root: &Path, request: &Request) -> Vec<u8> {
    let head_only = request.method == "HEAD";
    if request.method != "GET" && !head_only {
        return simple_response("405 Method Not Allowed", head_only);
    }
    let path = file_name(&request.target).map(|name| root.join(name));
    let found = path.and_then(|path| {
        let meta = fs::metadata(&path).ok().filter(|meta| meta.is_file())?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
        Some((path, modified.map(|d| http_date(d.as_secs()))))
    });
    let Some((path, last_modified)) = found else {
        return simple_response("404 Not Found", head_only);
    };
    let last_modified = last_modified.unwrap_or_default();
    if request.header("if-modified-since") == Some(last_modified.as_str()) {
        return format!("HTTP/1.1 304 Not Modified\r\nLast-Modified: {last_modified}\r\n\r\n")
            .into_bytes();
    }
    let Ok(body) = fs::read(&path) else {
        return simple_response("404 Not Found", head_only);
    };
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nLast-Modified: {last_modified}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(&body);
    }
    response
}

/// A response with a one-line text body (none after HEAD).
fn simple_response(status: &str, head_only: bool) -> Vec<u8> {
    let body = format!("{status}\n");
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(&body);
    }
    response.into_bytes()
}

/// The file an origin-form `target` names, relative to the served root: `.` and empty
/// segments dropped (apt asks for `/./Release`), the query ignored. `None` for `..`.
fn file_name(target: &str) -> Option<String> {
    let path = target.split('?').next().unwrap_or("");
    let mut segments = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            segment => segments.push(segment),
        }
    }
    Some(segments.join("/"))
}

/// How many requests for file `name` (relative to the root) reached `origin`.
fn requests_for(origin: &Origin, name: &str) -> usize {
    origin
        .seen()
        .iter()
        .filter(|request| file_name(&request.target).as_deref() == Some(name))
        .count()
}

/// Panics unless every request `origin` received carries larder's `Via` token: the
/// client really used the proxy.
fn assert_all_through_larder(origin: &Origin) {
    let seen = origin.seen();
    assert!(!seen.is_empty(), "no request reached the origin");
    for request in &seen {
        assert!(
            larder_via(&request.headers).is_some(),
            "{} {} reached the origin without larder's Via; head:\n{}",
            request.method,
            request.target,
            String::from_utf8_lossy(&request.head)
        );
    }
}

/// Sets the modification time of `path` to [`MTIME_SECS`].
fn set_mtime(path: &Path) {
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(MTIME_SECS);
    File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(time))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// A served root with `file.bin` (100 000 bytes of [`pattern`]) and a server for it.
fn one_file_origin() -> (TempDir, Vec<u8>, Origin) {
    let root = TempDir::new("clients-root");
    let body = pattern(100_000);
    let path = root.path().join("file.bin");
    fs::write(&path, &body).expect("write file.bin");
    set_mtime(&path);
    let origin = file_server(root.path());
    (root, body, origin)
}

// ---------------------------------------------------------------------------------------
// curl and wget

/// `curl` told to use `proxy` with `-x`, quiet but failing loudly, bounded in time.
fn curl_through(curl: &Path, proxy: &Proxy) -> Command {
    let mut cmd = Command::new(curl);
    // -q first: no ~/.curlrc.
    cmd.args([
        "-q",
        "--silent",
        "--show-error",
        "--fail",
        "--max-time",
        "20",
        "-x",
    ])
    .arg(format!("http://{}", proxy.addr()));
    cmd
}

#[test]
fn curl_with_proxy_flag_gets_the_exact_file() {
    let curl = require("curl", "curl");
    let (_root, body, origin) = one_file_origin();
    let proxy = Proxy::start(&[]);
    let out = TempDir::new("clients-curl");
    let file = out.path().join("file.bin");
    // With the default admission the first fetch is not stored, the second is, and the
    // third is a hit: the origin sees two.
    for round in 1..=3 {
        let _ = fs::remove_file(&file);
        let mut cmd = curl_through(&curl, &proxy);
        cmd.arg("-o").arg(&file).arg(origin.url("/file.bin"));
        run(cmd).assert_success("curl -x");
        let got = fs::read(&file).expect("read curl's file");
        assert!(got == body, "curl got {} bytes, not the file", got.len());
        assert_eq!(
            requests_for(&origin, "file.bin"),
            round.min(2),
            "round {round}"
        );
    }
    assert_all_through_larder(&origin);
}

/// `curl -C -` resumes a download whose first bytes are on disk: larder, missing the
/// file, fetches it whole (the origin sees no Range), stores it and sends curl exactly
/// the missing bytes as a 206. A second resume, from further on, is a hit.
#[test]
fn curl_resuming_twice_gets_the_exact_file_and_the_second_resume_is_a_hit() {
    const LEN: usize = 100_000;
    let curl = require("curl", "curl");
    let body = pattern(LEN);
    let origin = crate::range_fetch::range_origin(body.clone());
    let log = TempFile::new("clients-resume.log");
    let proxy = Proxy::start(&["--admit-after", "0", "--access-log", log.arg()]);
    let out = TempDir::new("clients-resume");
    let (file, headers) = (out.path().join("file.bin"), out.path().join("headers"));
    for (round, (have, result)) in [(30_000, "TCP_MISS/206"), (80_000, "TCP_HIT/206")]
        .into_iter()
        .enumerate()
    {
        fs::write(&file, &body[..have]).expect("write the part already downloaded");
        let mut cmd = curl_through(&curl, &proxy);
        cmd.args(["-C", "-", "-D"])
            .arg(&headers)
            .arg("-o")
            .arg(&file);
        cmd.arg(origin.url("/file.bin"));
        run(cmd).assert_success("curl -C -");
        let got = fs::read(&file).expect("read curl's file");
        assert!(
            got == body,
            "round {round}: curl's file has {} bytes, not the file",
            got.len()
        );
        let head = fs::read_to_string(&headers).expect("read the headers curl saw");
        assert!(head.starts_with("HTTP/1.1 206 "), "round {round}:\n{head}");
        let range = format!("Content-Range: bytes {have}-{}/{LEN}\r\n", LEN - 1);
        assert!(head.contains(&range), "round {round}:\n{head}");
        assert_eq!(origin.requests(), 1, "round {round}");
        let lines = wait_for_log_lines(&log, round + 1);
        let line: Vec<&str> = lines
            .get(round)
            .map_or(vec![], |l| l.split_whitespace().collect());
        assert_eq!(line.get(3), Some(&result), "round {round}: {lines:?}");
        // The client's line counts what it got: the head and the missing bytes.
        let sent: usize = line.get(4).and_then(|b| b.parse().ok()).unwrap_or(0);
        assert!(
            (LEN - have..LEN - have + 2000).contains(&sent),
            "round {round}: {sent} bytes logged"
        );
    }
    assert_eq!(origin.seen()[0].header("range"), None, "the Range went up");
    assert_all_through_larder(&origin);
}

#[test]
fn curl_head_with_proxy_flag_gets_the_headers_only() {
    let curl = require("curl", "curl");
    let (_root, body, origin) = one_file_origin();
    let proxy = Proxy::start(&[]);
    let mut cmd = curl_through(&curl, &proxy);
    cmd.arg("-I").arg(origin.url("/file.bin"));
    let result = run(cmd);
    result.assert_success("curl -x -I");
    let text = String::from_utf8_lossy(&result.stdout);
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next(),
        Some("HTTP/1.1 200 OK"),
        "curl -I printed:\n{text}"
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
        .collect();
    let field = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let length = body.len().to_string();
    assert_eq!(field("content-length"), Some(length.as_str()), "{text}");
    assert_eq!(
        field("last-modified"),
        Some("Mon, 01 Jan 2024 00:00:00 GMT"),
        "{text}"
    );
    assert!(
        larder_via(&headers).is_some(),
        "no Via from larder:\n{text}"
    );
    let seen = origin.seen();
    let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["HEAD"]);
    assert_all_through_larder(&origin);
}

#[test]
fn wget_with_http_proxy_variable_gets_the_exact_file() {
    let wget = require("wget", "wget");
    let (_root, body, origin) = one_file_origin();
    let proxy = Proxy::start(&["--admit-after", "0"]);
    let out = TempDir::new("clients-wget");
    let file = out.path().join("file.bin");
    for _ in 0..2 {
        let _ = fs::remove_file(&file);
        let mut cmd = Command::new(&wget);
        // No ~/.wgetrc, no HSTS database written to $HOME.
        cmd.args([
            "--no-config",
            "--no-hsts",
            "--quiet",
            "--tries=1",
            "--timeout=20",
        ])
        .args(["-e", "use_proxy=yes", "-O"])
        .arg(&file)
        .arg(origin.url("/file.bin"))
        .env("http_proxy", format!("http://{}/", proxy.addr()))
        .current_dir(out.path());
        run(cmd).assert_success("wget with http_proxy");
        let got = fs::read(&file).expect("read wget's file");
        assert!(got == body, "wget got {} bytes, not the file", got.len());
    }
    // Stored on first sight: the second fetch came from the cache.
    assert_eq!(requests_for(&origin, "file.bin"), 1);
    assert_all_through_larder(&origin);
}

// ---------------------------------------------------------------------------------------
// apt

/// The packages of the test repository, each one `usr/share/doc/NAME/hello.txt`.
const PACKAGES: [&str; 2] = ["larder-test-hello", "larder-test-world"];

/// Builds a flat Debian repository in `repo` (`deb [trusted=yes] URL ./`): a `.deb` per
/// entry of [`PACKAGES`] built with `dpkg-deb` from a tree in `work`, `Packages` from
/// `dpkg-scanpackages`, and an unsigned `Release` listing its SHA-256. Returns each
/// package's `.deb` file name. Files get [`MTIME_SECS`] as their modification time.
fn build_repository(work: &Path, repo: &Path) -> Vec<String> {
    let dpkg_deb = require("dpkg-deb", "dpkg");
    let scanpackages = require("dpkg-scanpackages", "dpkg-dev");
    let sha256sum = require("sha256sum", "coreutils");
    let mut debs = Vec::new();
    for name in PACKAGES {
        let tree = work.join(name);
        let doc = tree.join("usr/share/doc").join(name);
        fs::create_dir_all(tree.join("DEBIAN")).expect("create DEBIAN");
        fs::create_dir_all(&doc).expect("create doc dir");
        let control = format!(
            "Package: {name}\nVersion: 1.0\nArchitecture: all\n\
             Maintainer: larder tests <tests@larder.invalid>\n\
             Description: larder's apt test package\n"
        );
        fs::write(tree.join("DEBIAN/control"), control).expect("write control");
        fs::write(doc.join("hello.txt"), format!("hello from {name}\n")).expect("write file");
        let deb = format!("{name}_1.0_all.deb");
        let mut cmd = Command::new(&dpkg_deb);
        cmd.args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&tree)
            .arg(repo.join(&deb));
        run(cmd).assert_success("dpkg-deb --build");
        debs.push(deb);
    }
    let mut cmd = Command::new(scanpackages);
    cmd.args([".", "/dev/null"]).current_dir(repo);
    let scan = run(cmd);
    scan.assert_success("dpkg-scanpackages");
    fs::write(repo.join("Packages"), &scan.stdout).expect("write Packages");
    let mut cmd = Command::new(sha256sum);
    cmd.arg("Packages").current_dir(repo);
    let sum = run(cmd);
    sum.assert_success("sha256sum Packages");
    let sum = String::from_utf8_lossy(&sum.stdout);
    let hash = sum.split_whitespace().next().unwrap_or_default();
    let release = format!(
        "Suite: ./\nDate: {}\nSHA256:\n {hash} {} Packages\n",
        http_date(MTIME_SECS),
        scan.stdout.len()
    );
    fs::write(repo.join("Release"), release).expect("write Release");
    for entry in fs::read_dir(repo).expect("list the repository") {
        set_mtime(&entry.expect("repository entry").path());
    }
    debs
}

/// An apt of its own in `dir`: `apt.conf` (given as `APT_CONFIG`) moves every directory
/// apt reads or writes into `dir`, so the system's sources, configuration parts (with
/// their hooks and proxy settings), preferences, keys, lists, caches, logs and dpkg status
/// are neither used nor touched, and no lock is taken. The one source is `url` through
/// the proxy at `proxy`.
struct Apt {
    dir: PathBuf,
    program: PathBuf,
}

impl Apt {
    fn new(dir: &Path, url: &str, proxy: &str) -> Apt {
        let program = require("apt-get", "apt");
        let etc = dir.join("etc");
        for sub in [
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "etc/auth.conf.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
            "download",
        ] {
            fs::create_dir_all(dir.join(sub)).expect("create apt dir");
        }
        fs::write(
            etc.join("sources.list"),
            format!("deb [trusted=yes] {url} ./\n"),
        )
        .expect("write sources.list");
        fs::write(dir.join("status"), "").expect("write dpkg status");
        let d = dir.display();
        // Read before the configuration parts, so `Dir::Etc` decides where those are.
        let conf = format!(
            "Dir::Etc \"{d}/etc/\";\n\
             Dir::State \"{d}/state/\";\n\
             Dir::State::status \"{d}/status\";\n\
             Dir::Cache \"{d}/cache/\";\n\
             Dir::Log \"{d}/log/\";\n\
             Debug::NoLocking \"true\";\n\
             APT::Sandbox::User \"root\";\n\
             APT::Get::List-Cleanup \"false\";\n\
             Acquire::Languages \"none\";\n\
             Acquire::Retries \"0\";\n\
             Acquire::http::Timeout \"10\";\n\
             Acquire::http::Proxy \"{proxy}\";\n"
        );
        fs::write(dir.join("apt.conf"), conf).expect("write apt.conf");
        Apt {
            dir: dir.to_path_buf(),
            program,
        }
    }

    /// Where `apt-get download` puts the packages.
    fn download_dir(&self) -> PathBuf {
        self.dir.join("download")
    }

    /// Runs `apt-get ARGS` (in the download directory) and fails the test unless it exits 0
    /// without errors or warnings.
    fn get(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .env("APT_CONFIG", self.dir.join("apt.conf"))
            .current_dir(self.download_dir());
        let result = run(cmd);
        let what = format!("apt-get {}", args.join(" "));
        result.assert_success(&what);
        let complaint = result
            .stderr
            .lines()
            .find(|line| line.starts_with("E:") || line.starts_with("W:"));
        assert!(
            complaint.is_none(),
            "{what} complained:\n{}\nstdout:\n{}",
            result.stderr,
            String::from_utf8_lossy(&result.stdout)
        );
        result
    }
}

#[test]
fn apt_update_and_download_are_served_from_larder_the_second_time() {
    let work = TempDir::new("clients-apt");
    let repo = work.path().join("repo");
    fs::create_dir_all(&repo).expect("create repo dir");
    let debs = build_repository(&work.path().join("build"), &repo);
    let origin = file_server(&repo);
    // Stored on first sight, so one round of each command fills the cache.
    let proxy = Proxy::start(&["--admit-after", "0"]);
    // apt names the source without the trailing slash in its progress lines.
    let base = origin.url("");
    let apt = Apt::new(
        &work.path().join("apt"),
        &format!("{base}/"),
        &format!("http://{}/", proxy.addr()),
    );

    let first = apt.get(&["update"]);
    // Every source apt names is ours: it read no system sources.
    let stdout = String::from_utf8_lossy(&first.stdout);
    for line in stdout.lines() {
        let is_fetch = ["Get:", "Hit:", "Ign:", "Err:"]
            .iter()
            .any(|tag| line.starts_with(tag));
        assert!(
            !is_fetch || line.contains(&base),
            "unexpected source: {line}"
        );
    }
    assert_eq!(requests_for(&origin, "Release"), 1);
    assert_eq!(requests_for(&origin, "Packages"), 1);
    let after_first = origin.seen().len();

    // apt asks for its index files with `Cache-Control: max-age=0`, so larder must check
    // Release with the origin: one conditional request, answered 304, and the stored
    // Release is what apt gets. Release being unchanged, apt does not ask for Packages.
    apt.get(&["update"]);
    let second: Vec<String> = origin
        .seen()
        .iter()
        .skip(after_first)
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(
        requests_for(&origin, "Release"),
        2,
        "second update: {second:?}"
    );
    assert_eq!(
        requests_for(&origin, "Packages"),
        1,
        "second update: {second:?}"
    );
    let revalidation = origin
        .seen()
        .into_iter()
        .skip(after_first)
        .find(|r| r.target.ends_with("/Release"))
        .expect("the second update asked for Release");
    assert_eq!(
        revalidation.header("if-modified-since"),
        Some("Mon, 01 Jan 2024 00:00:00 GMT"),
        "larder revalidates with the stored Last-Modified"
    );

    let mut args = vec!["download"];
    args.extend(PACKAGES);
    apt.get(&args);
    // The second download is served by larder alone.
    for deb in &debs {
        fs::remove_file(apt.download_dir().join(deb)).expect("remove a downloaded package");
    }
    apt.get(&args);
    for deb in &debs {
        let built = fs::read(repo.join(deb)).expect("read the built package");
        let got = fs::read(apt.download_dir().join(deb))
            .unwrap_or_else(|e| panic!("apt-get download left no {deb}: {e}"));
        assert!(got == built, "{deb} differs from the one built");
        assert_eq!(requests_for(&origin, deb), 1, "{deb}");
    }
    assert_all_through_larder(&origin);
}
