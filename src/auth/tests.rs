//! `Auth` with the password check injected (counted, and steered by the tests).

use super::*;
use mio::{Events, Poll, Token};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const TTL: Duration = Duration::from_secs(60);
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
/// `htpasswd -nbm alice p`.
const ALICE: &str = "alice:$apr1$SBGPdF/5$EbutezAKpYw8H1zsmKq6k0\n";

/// `Basic base64(user:password)`.
fn basic(user: &str, password: &str) -> Vec<u8> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}").into_bytes();
    let mut out = b"Basic ".to_vec();
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

struct Fixture {
    poll: Poll,
    auth: Auth,
    checks: Arc<AtomicUsize>,
    file: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
    }
}

fn temp_file(text: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "larder-auth-{}-{}.htpasswd",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::write(&path, text).unwrap();
    path
}

/// An `Auth` over `text` whose checks are real (`htpasswd::verify`) but counted.
fn fixture(text: &str) -> Fixture {
    let file = temp_file(text);
    let poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
    let checks = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&checks);
    let settings = Settings {
        file: file.clone(),
        realm: "larder".to_owned(),
        ttl: TTL,
    };
    let auth = Auth::start(settings, waker, move |password: &[u8], hash: &str| {
        c.fetch_add(1, Ordering::SeqCst);
        htpasswd::verify(password, hash)
    })
    .unwrap();
    Fixture {
        poll,
        auth,
        checks,
        file,
    }
}

fn w(key: usize) -> Waiter {
    Waiter {
        key,
        id: key as u64 + 100,
    }
}

impl Fixture {
    /// Waits for the verdicts under way (every poll must be a wake, within 10 s).
    fn settle(&mut self, now: Instant) -> Vec<Waiter> {
        let mut events = Events::with_capacity(4);
        let mut out = Vec::new();
        while self.auth.verifier.in_flight() > 0 {
            self.poll
                .poll(&mut events, Some(Duration::from_secs(10)))
                .unwrap();
            assert!(!events.is_empty(), "no verdict within 10 s");
            out.extend(self.auth.drain(now));
        }
        out
    }

    /// Checks `value` on `session`, waiting for a verdict if one is needed: the
    /// second look's answer, as the connection would see it.
    fn judge(&mut self, value: &[u8], session: &mut Session, now: Instant) -> Check {
        match self.auth.check(Some(value), session, CLIENT, w(1), now) {
            Check::Wait => {
                assert_eq!(self.settle(now), vec![w(1)]);
                let again = self.auth.check(Some(value), session, CLIENT, w(1), now);
                assert_ne!(again, Check::Wait, "a verdict came, yet it waits again");
                again
            }
            other => other,
        }
    }

    fn checks(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }
}

fn pass(user: &str) -> Check {
    Check::Pass(Rc::from(user))
}

#[test]
fn no_credential_is_challenged_without_a_check() {
    let mut f = fixture(ALICE);
    let mut s = Session::default();
    let now = Instant::now();
    assert_eq!(
        f.auth.check(None, &mut s, CLIENT, w(1), now),
        Check::Challenge
    );
    assert_eq!(
        f.auth.check(Some(b"Bearer x"), &mut s, CLIENT, w(1), now),
        Check::Challenge
    );
    assert_eq!(f.checks(), 0);
    assert_eq!(
        f.auth.challenge(true),
        b"Proxy-Authenticate: Basic realm=\"larder\"\r\n"
    );
    assert_eq!(
        f.auth.challenge(false),
        b"WWW-Authenticate: Basic realm=\"larder\"\r\n"
    );
}

#[test]
fn a_verified_credential_is_checked_once_per_connection_and_per_ttl() {
    let mut f = fixture(ALICE);
    let t0 = Instant::now();
    let good = basic("alice", "p");
    let mut s = Session::default();
    assert_eq!(f.judge(&good, &mut s, t0), pass("alice"));
    assert_eq!(f.checks(), 1);
    // The same connection: no look-up, no check, even past the TTL.
    assert_eq!(f.judge(&good, &mut s, t0 + TTL * 10), pass("alice"));
    // Another connection within the TTL: the remembered verdict.
    let mut other = Session::default();
    assert_eq!(f.judge(&good, &mut other, t0 + TTL / 2), pass("alice"));
    assert_eq!(f.checks(), 1);
    // Past the TTL a new connection has it checked again.
    let mut late = Session::default();
    assert_eq!(f.judge(&good, &mut late, t0 + TTL), pass("alice"));
    assert_eq!(f.checks(), 2);
}

#[test]
fn wrong_passwords_and_unknown_users_fail_and_are_remembered() {
    let mut f = fixture(ALICE);
    let now = Instant::now();
    let mut s = Session::default();
    assert_eq!(
        f.judge(&basic("alice", "wrong"), &mut s, now),
        Check::Challenge
    );
    assert_eq!(
        f.judge(&basic("alice", "wrong"), &mut s, now),
        Check::Challenge
    );
    assert_eq!(f.checks(), 1, "a refused credential is remembered too");
    // A user not in the file is checked (against the stand-in) and refused.
    assert_eq!(
        f.judge(&basic("mallory", "p"), &mut s, now),
        Check::Challenge
    );
    assert_eq!(f.checks(), 2);
    // A connection that authenticated, then sends a wrong credential, is refused.
    assert_eq!(f.judge(&basic("alice", "p"), &mut s, now), pass("alice"));
    assert_eq!(
        f.judge(&basic("alice", "nope"), &mut s, now),
        Check::Challenge
    );
}

#[test]
fn the_stand_in_never_lets_anyone_in() {
    let file = temp_file(ALICE);
    let poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
    let settings = Settings {
        file: file.clone(),
        realm: "r".to_owned(),
        ttl: TTL,
    };
    // A check that says yes to everything still lets no unknown user in.
    let auth = Auth::start(settings, waker, |_: &[u8], _: &str| true).unwrap();
    let mut f = Fixture {
        poll,
        auth,
        checks: Arc::new(AtomicUsize::new(0)),
        file,
    };
    let now = Instant::now();
    let mut s = Session::default();
    assert_eq!(
        f.judge(&basic("mallory", "x"), &mut s, now),
        Check::Challenge
    );
    assert_eq!(f.judge(&basic("alice", "x"), &mut s, now), pass("alice"));
}

#[test]
fn failures_hold_an_address_back_but_not_a_known_credential() {
    let mut f = fixture(ALICE);
    let t0 = Instant::now();
    let good = basic("alice", "p");
    let mut known = Session::default();
    assert_eq!(f.judge(&good, &mut known, t0), pass("alice"));
    let mut s = Session::default();
    for i in 0..limiter::FREE {
        assert_eq!(
            f.judge(&basic("alice", &format!("guess{i}")), &mut s, t0),
            Check::Challenge
        );
    }
    let checks = f.checks();
    assert_eq!(
        f.auth
            .check(Some(&basic("alice", "guess")), &mut s, CLIENT, w(1), t0),
        Check::Limited
    );
    assert_eq!(f.checks(), checks, "held back: not checked");
    // The known credential passes, on a new connection too.
    let mut fresh = Session::default();
    assert_eq!(f.judge(&good, &mut fresh, t0), pass("alice"));
    // A malformed field counts as a failure without a thread.
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8));
    for _ in 0..limiter::FREE {
        assert_eq!(
            f.auth
                .check(Some(b"Basic !!!!"), &mut s, other, w(2), t0 + TTL * 2),
            Check::Challenge
        );
        f.auth.known.clear();
    }
    assert_eq!(
        f.auth
            .check(Some(b"Basic !!!!"), &mut s, other, w(2), t0 + TTL * 2),
        Check::Limited
    );
    // Once the delay has passed, a guess is checked again.
    let later = t0 + limiter::BASE;
    assert_eq!(
        f.judge(&basic("alice", "p2"), &mut s, later),
        Check::Challenge
    );
    assert_eq!(f.checks(), checks + 1);
}

#[test]
fn a_changed_file_forgets_every_credential() {
    let mut f = fixture(ALICE);
    let t0 = Instant::now();
    let good = basic("alice", "p");
    let mut s = Session::default();
    assert_eq!(f.judge(&good, &mut s, t0), pass("alice"));
    assert!(!f.auth.reload(false), "unchanged");
    // alice's password changes (htpasswd -nbm alice secret).
    fs::write(&f.file, "alice:$apr1$OiOyaSYH$CZ3RKwTNqY9BDC/FVfeC11\n").unwrap();
    assert!(f.auth.reload(true));
    assert_eq!(f.judge(&good, &mut s, t0), Check::Challenge);
    assert_eq!(
        f.judge(&basic("alice", "secret"), &mut s, t0),
        pass("alice")
    );
    // A refused file keeps the users in use.
    fs::write(&f.file, "alice:plain\n").unwrap();
    assert!(!f.auth.reload(true));
    fs::write(&f.file, "").unwrap();
    assert!(!f.auth.reload(true));
    assert_eq!(f.auth.users(), 1);
    assert_eq!(
        f.judge(&basic("alice", "secret"), &mut s, t0),
        pass("alice")
    );
}

#[test]
fn a_verdict_on_an_older_file_is_not_kept() {
    let mut f = fixture(ALICE);
    let now = Instant::now();
    let good = basic("alice", "p");
    let mut s = Session::default();
    assert_eq!(
        f.auth.check(Some(&good), &mut s, CLIENT, w(1), now),
        Check::Wait
    );
    // A second connection with the same credential joins the check under way.
    assert_eq!(
        f.auth
            .check(Some(&good), &mut Session::default(), CLIENT, w(2), now),
        Check::Wait
    );
    assert!(f.auth.reload(true));
    let mut woken = f.settle(now);
    woken.sort_by_key(|w| w.key);
    assert_eq!(woken, vec![w(1), w(2)]);
    assert_eq!(f.checks(), 1);
    // Looked at again: checked again, under the file now in use.
    assert_eq!(f.judge(&good, &mut s, now), pass("alice"));
    assert_eq!(f.checks(), 2);
}

#[test]
fn too_many_checks_at_once_are_busy_not_queued() {
    let file = temp_file(ALICE);
    let poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
    let settings = Settings {
        file: file.clone(),
        realm: "r".to_owned(),
        ttl: TTL,
    };
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let g = Arc::clone(&gate);
    let auth = Auth::start(settings, waker, move |_: &[u8], _: &str| {
        drop(g.lock());
        false
    })
    .unwrap();
    let mut f = Fixture {
        poll,
        auth,
        checks: Arc::new(AtomicUsize::new(0)),
        file,
    };
    let now = Instant::now();
    let mut s = Session::default();
    for i in 0..verifier::MAX_IN_FLIGHT {
        let value = basic("alice", &format!("p{i}"));
        assert_eq!(
            f.auth.check(Some(&value), &mut s, CLIENT, w(i), now),
            Check::Wait
        );
    }
    let one_more = basic("alice", "one more");
    assert_eq!(
        f.auth.check(Some(&one_more), &mut s, CLIENT, w(999), now),
        Check::Busy
    );
    drop(held);
    assert_eq!(f.settle(now).len(), verifier::MAX_IN_FLIGHT);
}

#[test]
fn known_credentials_are_bounded() {
    let mut f = fixture(ALICE);
    let t0 = Instant::now();
    for i in 0..KNOWN_CAP as u128 + 10 {
        f.auth
            .remember(i + 1, None, t0 + Duration::from_millis(i as u64));
    }
    assert_eq!(f.auth.known.len(), KNOWN_CAP);
    assert!(!f.auth.known.contains_key(&1), "the oldest went first");
    assert!(f.auth.known.contains_key(&(KNOWN_CAP as u128 + 10)));
}

#[test]
fn the_file_is_refused_at_start_with_its_line() {
    let file = temp_file(
        "alice:$apr1$SBGPdF/5$EbutezAKpYw8H1zsmKq6k0\nbob:{SHA}UWuXg/ylF+7L0dBk2i0WUxCxl1k=\n",
    );
    let poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
    let settings = Settings {
        file: file.clone(),
        realm: "r".to_owned(),
        ttl: TTL,
    };
    let e = Auth::new(settings.clone(), Arc::clone(&waker)).unwrap_err();
    assert!(e.contains("line 2: user \"bob\" has a {SHA} hash"), "{e}");
    assert!(!e.contains("UWuX") && !e.contains("SBGP"), "{e}");
    fs::write(&file, "# nobody\n").unwrap();
    let e = Auth::new(settings, waker).unwrap_err();
    assert!(e.ends_with("has no users"), "{e}");
    let _ = fs::remove_file(&file);
}

#[test]
fn realms_are_checked() {
    assert_eq!(
        parse_realm("larder at home"),
        Ok("larder at home".to_owned())
    );
    for bad in ["", "a\"b", "a\\b", "caf\u{e9}", "tab\there"] {
        assert!(parse_realm(bad).is_err(), "{bad:?}");
    }
    assert!(parse_realm(&"x".repeat(65)).is_err());
}
