//! `--auth-file` with what an administrator and a user would use: password files made
//! by Apache's `htpasswd` (bcrypt and MD5), and `curl --proxy-user`. The credential
//! must never reach the origin, the access log or larder's own log; the log's user
//! column names the user.

use std::process::Command;

use crate::clients::{require, run};
use crate::support::{
    ok, run_to_exit, wait_for_log_lines, wait_until, Origin, Proxy, Reply, TempFile,
};

/// `htpasswd -b [flags] FILE USER PASSWORD`, creating the file with `-c`.
fn htpasswd(flags: &[&str], file: &TempFile, user: &str, password: &str) {
    let program = require("htpasswd", "apache2-utils");
    let out = Command::new(program)
        .args(flags)
        .arg("-b")
        .arg(file.path())
        .args([user, password])
        .output()
        .expect("run htpasswd");
    assert!(
        out.status.success(),
        "htpasswd {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// curl through `proxy` for `url`, as `user` (`None`: no credential); returns the
/// status code curl saw and the body.
fn curl(proxy: &Proxy, url: &str, user: Option<&str>) -> (String, String) {
    let mut cmd = Command::new(require("curl", "curl"));
    cmd.args(["-q", "--silent", "--show-error", "--max-time", "20"])
        .args(["--write-out", "\n%{http_code}"])
        .arg("-x")
        .arg(format!("http://{}", proxy.addr()));
    if let Some(user) = user {
        cmd.args(["--proxy-user", user]);
    }
    cmd.arg(url);
    let out = run(cmd);
    out.assert_success("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or_default();
    (code.to_owned(), body.to_owned())
}

/// Base64 of `user:password`, as curl sends it.
fn basic64(credential: &str) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = credential.as_bytes();
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                B64[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn curl_gets_407_without_a_password_and_200_with_one_and_the_password_goes_nowhere() {
    let file = TempFile::new("users.htpasswd");
    htpasswd(&["-c", "-B"], &file, "alice", "s3cret-bcrypt");
    htpasswd(&["-m"], &file, "bob", "s3cret-md5");
    let log = TempFile::new("auth-access.log");
    let origin = Origin::start(|_| Reply::Send(ok(b"through")));
    let proxy = Proxy::start(&[
        "--auth-file",
        file.arg(),
        "--access-log",
        log.arg(),
        "--log-level",
        "debug",
    ]);
    let url = origin.url("/page");

    let (code, body) = curl(&proxy, &url, None);
    assert_eq!(code, "407", "{body}");
    assert_eq!(origin.requests(), 0);
    let (code, body) = curl(&proxy, &url, Some("alice:s3cret-bcrypt"));
    assert_eq!((code.as_str(), body.as_str()), ("200", "through"));
    let (code, _) = curl(&proxy, &url, Some("alice:wrong"));
    assert_eq!(code, "407");
    let (code, body) = curl(&proxy, &url, Some("bob:s3cret-md5"));
    assert_eq!((code.as_str(), body.as_str()), ("200", "through"));
    // Remembered now: the same credential again, on a new connection.
    let (code, _) = curl(&proxy, &url, Some("alice:s3cret-bcrypt"));
    assert_eq!(code, "200");

    let seen = origin.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.header("proxy-authorization"), None);
        assert_eq!(request.header("authorization"), None);
        let head = String::from_utf8_lossy(&request.head);
        assert!(!head.contains("s3cret"), "{head}");
    }

    let lines = wait_for_log_lines(&log, 5);
    assert_eq!(lines.len(), 5, "{lines:?}");
    let user_of = |line: &str| {
        line.split_whitespace()
            .nth(7)
            .unwrap_or_default()
            .to_owned()
    };
    // The result code's status (the third 200 may be a revalidation of a stored copy).
    let status_of = |line: &str| {
        let field = line.split_whitespace().nth(3).unwrap_or_default();
        field.rsplit('/').next().unwrap_or_default().to_owned()
    };
    let got: Vec<(String, String)> = lines.iter().map(|l| (status_of(l), user_of(l))).collect();
    let want = [
        ("407", "-"),
        ("200", "alice"),
        ("407", "-"),
        ("200", "bob"),
        ("200", "alice"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(s, u)| (s.to_string(), u.to_string()))
        .collect();
    assert_eq!(got, want, "{lines:#?}");
    let secrets = [
        "s3cret",
        "wrong",
        &basic64("alice:s3cret-bcrypt"),
        &basic64("bob:s3cret-md5"),
        &basic64("alice:wrong"),
    ];
    let stderr = proxy.stderr();
    for secret in secrets {
        for line in &lines {
            assert!(!line.contains(secret), "{line}");
        }
        assert!(
            !stderr.contains(secret),
            "larder's log shows {secret}:\n{stderr}"
        );
    }
    assert!(stderr.contains("proxy authentication failed"), "{stderr}");
}

#[test]
fn a_challenge_names_the_realm_and_health_needs_no_password() {
    let file = TempFile::new("realm.htpasswd");
    htpasswd(&["-c", "-B"], &file, "alice", "pw");
    let proxy = Proxy::start(&["--auth-file", file.arg(), "--auth-realm", "the larder"]);
    let response = proxy.get("http://127.0.0.1:9/x");
    assert_eq!(response.status, 407);
    assert_eq!(
        response.header("proxy-authenticate"),
        Some("Basic realm=\"the larder\"")
    );
    assert!(
        !response.is_close(),
        "a 407 keeps the connection for the next try"
    );
    let health = proxy.get(&format!("http://{}/health", proxy.addr()));
    assert_eq!(health.status, 200);
}

/// How many times larder said it read the password file (at start-up and after).
fn reads(proxy: &Proxy) -> usize {
    proxy.stderr().matches("read password file").count()
}

#[test]
fn sighup_and_a_changed_file_take_effect_at_once() {
    let file = TempFile::new("reload.htpasswd");
    htpasswd(&["-c", "-B"], &file, "alice", "first");
    let origin = Origin::start(|_| Reply::Send(ok(b"ok")));
    let proxy = Proxy::start(&["--auth-file", file.arg(), "--log-level", "info"]);
    let url = origin.url("/r");
    assert_eq!(curl(&proxy, &url, Some("alice:first")).0, "200");
    assert_eq!(
        reads(&proxy),
        0,
        "the first read is said on standard error only if it fails"
    );
    // A new password: the file is noticed unasked (larder looks every second).
    htpasswd(&["-B"], &file, "alice", "second");
    assert!(
        wait_until(|| reads(&proxy) == 1),
        "the changed file was not read"
    );
    assert_eq!(curl(&proxy, &url, Some("alice:second")).0, "200");
    assert_eq!(curl(&proxy, &url, Some("alice:first")).0, "407");
    // And on SIGHUP, changed or not.
    proxy.signal("HUP");
    assert!(
        wait_until(|| reads(&proxy) == 2),
        "SIGHUP did not re-read the file"
    );
    let said = "reloaded on SIGHUP: 0 block list file(s) read, 1 user(s) read";
    assert!(
        wait_until(|| proxy.stderr().contains(said)),
        "{}",
        proxy.stderr()
    );
    htpasswd(&["-m"], &file, "carol", "third");
    assert!(
        wait_until(|| reads(&proxy) == 3),
        "the changed file was not read"
    );
    assert_eq!(curl(&proxy, &url, Some("carol:third")).0, "200");
}

#[test]
fn plain_text_and_sha1_files_stop_start_up_with_the_line() {
    let file = TempFile::new("weak.htpasswd");
    htpasswd(&["-c", "-B"], &file, "alice", "pw");
    htpasswd(&["-s"], &file, "bob", "sha1-pw");
    let (code, stderr) = run_to_exit(&["--auth-file", file.arg()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("line 2: user \"bob\" has a {SHA} hash"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(file.path()).expect("read the file");
    for line in text.lines() {
        let (_, hash) = line.split_once(':').expect("user:hash");
        assert!(!stderr.contains(hash), "{stderr}");
    }

    htpasswd(&["-D"], &file, "bob", "");
    htpasswd(&["-p"], &file, "carol", "plain-pw");
    let (code, stderr) = run_to_exit(&["--auth-file", file.arg()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("line 2: user \"carol\" has a plain-text password"),
        "{stderr}"
    );
    assert!(!stderr.contains("plain-pw"), "{stderr}");
}
