//! `--auth-file` through the connection core: the 407 and its challenge, a request let
//! through once its credential is checked (on the real threads), the field never
//! sent upstream, a kept connection not checked again, and the exempt pages.

use super::pair::{Origin, Pair};
use super::{ok, origin_addr};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `htpasswd -nbm alice p` and `htpasswd -nbB bob p`.
const USERS: &str = "alice:$apr1$SBGPdF/5$EbutezAKpYw8H1zsmKq6k0\n\
    bob:$2y$05$sUGxuQHgKXHKARE0IQ4V9OrQ8QXXu.0pGdbFbUHVUKtgLnuZw.inK\n";
/// `alice:p` and `bob:p` in base64.
const ALICE: &str = "Basic YWxpY2U6cA==";
const BOB: &str = "Basic Ym9iOnA=";
const ALICE_WRONG: &str = "Basic YWxpY2U6cQ=="; // alice:q

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A password file of its own for each test, removed at the end.
struct File(std::path::PathBuf);

impl File {
    fn new() -> File {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "larder-pair-auth-{}-{}.htpasswd",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, USERS).expect("password file");
        File(path)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn pair(file: &File) -> Pair {
    let path = file.0.to_str().expect("path");
    Pair::new(&["--auth-file", path, "--auth-realm", "home"])
}

fn get_with(path: &str, credential: Option<&str>) -> Vec<u8> {
    let auth = credential.map_or(String::new(), |c| format!("Proxy-Authorization: {c}\r\n"));
    format!(
        "GET http://{o}{path} HTTP/1.1\r\nHost: {o}\r\n{auth}\r\n",
        o = origin_addr()
    )
    .into_bytes()
}

#[test]
fn without_a_credential_the_answer_is_407_with_the_challenge_and_the_connection_stays() {
    let file = File::new();
    let mut pair = pair(&file);
    Origin::listen(origin_addr());
    let mut client = pair.client();
    client.send(&get_with("/a", None));
    pair.run();
    let got = text(client.received());
    assert!(got.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"home\"\r\n"), "{got}");
    assert!(got.contains("Connection: keep-alive\r\n"), "{got}");
    assert!(
        Origin::accept(origin_addr()).is_none(),
        "nothing went upstream"
    );
    assert_eq!(pair.state_of(&client), "Head");

    // The browser's second try, on the same connection.
    client.send(&get_with("/a", Some(ALICE)));
    pair.run();
    let mut origin = Origin::accept(origin_addr()).expect("forwarded once authenticated");
    let up = text(origin.received());
    assert!(up.starts_with("GET /a HTTP/1.1\r\n"), "{up}");
    assert!(!up.to_ascii_lowercase().contains("authorization"), "{up}");
    origin.send(&ok(b"hello alice"));
    pair.run();
    assert!(text(client.received()).ends_with("hello alice"));
}

#[test]
fn a_wrong_password_is_407_and_a_kept_connection_is_not_checked_again() {
    let file = File::new();
    let mut pair = pair(&file);
    Origin::listen(origin_addr());
    let mut client = pair.client();
    client.send(&get_with("/w", Some(ALICE_WRONG)));
    pair.run();
    let got = text(client.received());
    assert!(got.starts_with("HTTP/1.1 407 "), "{got}");

    let mut bob = pair.client();
    bob.send(&get_with("/1", Some(BOB)));
    pair.run();
    let mut origin = Origin::accept(origin_addr()).expect("bob forwarded");
    origin.send(&ok(b"one"));
    pair.run();
    assert!(text(bob.received()).ends_with("one"));
    // The second request on the kept connection goes through at once: no waiting
    // state at all between the head and the upstream.
    bob.send(&get_with("/2", Some(BOB)));
    pair.run();
    assert!(text(origin.received()).contains("GET /2 HTTP/1.1\r\n"));
    // The same connection switching to a wrong credential is refused.
    origin.send(&ok(b"two"));
    pair.run();
    bob.send(&get_with("/3", Some(ALICE_WRONG)));
    pair.run();
    assert!(
        text(bob.received()).contains("HTTP/1.1 407 "),
        "{}",
        text(bob.received())
    );
}

#[test]
fn health_and_the_pac_file_need_no_password_but_the_status_page_does() {
    let file = File::new();
    let mut pair = pair(&file);
    let mut client = pair.client();
    client.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:3128\r\n\r\n");
    pair.run();
    let got = text(client.received());
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");

    let mut pac = pair.client();
    pac.send(b"GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1:3128\r\n\r\n");
    pair.run();
    assert!(text(pac.received()).starts_with("HTTP/1.1 200 "));

    // Asked for directly, larder's own page answers as a server does: 401.
    let mut status = pair.client();
    status.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:3128\r\n\r\n");
    pair.run();
    let got = text(status.received());
    assert!(
        got.starts_with("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"home\"\r\n"),
        "{got}"
    );
    status.send(
        format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:3128\r\nAuthorization: {ALICE}\r\n\r\n")
            .as_bytes(),
    );
    pair.run();
    let got = text(status.received());
    let second = got.split("HTTP/1.1 ").nth(2).unwrap_or_default();
    assert!(second.starts_with("200 "), "{got}");
}

#[test]
fn a_check_that_does_not_come_back_in_time_is_a_503() {
    let file = File::new();
    let path = file.0.to_str().expect("path");
    let mut pair = Pair::new(&["--auth-file", path, "--timeout-connect", "0.5"]);
    // A check held until the test lets it go: the threads are swamped.
    let gate = std::sync::Arc::new(std::sync::Mutex::new(()));
    let held = gate.lock().expect("lock");
    let g = std::sync::Arc::clone(&gate);
    pair.check_passwords_with(move |_: &[u8], _: &str| {
        drop(g.lock());
        true
    });
    pair.wait_for_verdicts = false;
    Origin::listen(origin_addr());
    let mut client = pair.client();
    client.send(&get_with("/slow", Some(ALICE)));
    pair.run();
    assert_eq!(pair.state_of(&client), "Head");
    assert!(
        client.received().is_empty(),
        "nothing said while the check runs"
    );
    let got = super::ends_at_the_timeout(&mut pair, &mut client, "a check that hangs");
    let got = text(&got);
    assert!(got.starts_with("HTTP/1.1 503 "), "{got}");
    assert!(got.contains("auth-timeout"), "{got}");
    assert!(
        Origin::accept(origin_addr()).is_none(),
        "nothing went upstream"
    );
    drop(held);
}

#[test]
fn a_connect_without_a_credential_is_407_and_closed() {
    let file = File::new();
    let mut pair = pair(&file);
    let mut client = pair.client();
    client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    pair.run();
    let got = text(client.received());
    assert!(got.starts_with("HTTP/1.1 407 "), "{got}");
    assert!(got.contains("Connection: close\r\n"), "{got}");
    assert!(client.sees_end());
}
