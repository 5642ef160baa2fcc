//! Proxy authentication (`--auth-file`): HTTP Basic credentials checked against an
//! htpasswd file, sockets-free. The connection code asks [`Auth::check`] about each
//! request's credential and does what the [`Check`] says.
//!
//! What a check costs, from cheapest:
//!
//! 1. The credential is the one this connection last had verified, under the same
//!    password file ([`Session`]): the field compared with the one the connection
//!    sent then. No lookup, no hashing at all; this is every request after the first
//!    on a kept connection.
//! 2. It was verified (or refused) within `--auth-ttl`: two SipHashes, one map look-up.
//!    The map holds at most [`KNOWN_CAP`] credentials, keyed by a 128-bit keyed hash
//!    of the field value (keys random per process), so the field itself is kept only
//!    by the connection that sent it.
//! 3. Unknown: if the client's address is not being held back ([`limiter`]), its
//!    password is checked on a helper thread ([`verifier`]) while the connection waits;
//!    the verdict goes into the map, and the request is looked at again.
//!
//! The password file is re-read when it changes (checked on the reload tick) and on
//! SIGHUP; a new file forgets every remembered credential. A file that cannot be read,
//! is refused, or has no users keeps the users read before, with a warning (an editor
//! that truncates before it writes must not lock everyone out for a moment).

pub mod basic;
mod crypt;
pub mod htpasswd;
pub mod limiter;
pub mod md5;
pub mod verifier;

use std::collections::HashMap;
use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Waker;

use crate::dns::Waiter;
use crate::stamp::Stamp;
use htpasswd::Users;
use limiter::Limiter;
use verifier::{Pending, Submitted, Verifier};

/// Most credentials remembered (verified or refused) at once.
pub const KNOWN_CAP: usize = 1024;
/// Threads that check passwords.
const THREADS: usize = 2;

/// A bcrypt hash (cost 5, as `htpasswd -B` makes by default) of a password nobody
/// knows: a user not in the file is checked against it, so that the answer takes about
/// as long as for a user in it. Its verdict is never taken as a success.
const STAND_IN: &str = "$2y$05$atS.pyGARAZoxx7myGgaSOctOEN42yC1T/HgeDGO7DDI5.OF44UXS";

/// `--auth-file`, `--auth-realm`, `--auth-ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The htpasswd file.
    pub file: PathBuf,
    /// The realm named in challenges.
    pub realm: String,
    /// How long a verified credential is remembered.
    pub ttl: Duration,
}

/// A realm for `--auth-realm`: printable ASCII without `"` or `\`, at most 64 bytes, so
/// it goes into the challenge's quoted string as it is.
///
/// # Errors
/// A message for the flag.
pub fn parse_realm(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a realm: give 1 to 64 printable ASCII characters without \" or \\"
        ))
    }
}

/// What a connection remembers of the last credential verified on it.
#[derive(Debug, Default, Clone)]
pub struct Session {
    /// The credential's field value, as the client sends it again on each request.
    value: Option<Box<[u8]>>,
    /// The password file's generation it was verified under.
    generation: u64,
    /// Its user.
    user: Option<Rc<str>>,
}

/// What to do with a request, by its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A valid credential: go on, as this user.
    Pass(Rc<str>),
    /// None, or a wrong one: challenge the client (407, or 401 for larder's own pages
    /// asked for directly).
    Challenge,
    /// A credential not known yet from an address held back after failures: challenge
    /// it at once, without checking it.
    Limited,
    /// Too many checks under way: 503.
    Busy,
    /// The credential is being checked: wait for the verdict (then look again).
    Wait,
}

/// A credential verified or refused lately.
#[derive(Debug)]
struct Known {
    /// `None`: refused.
    user: Option<Rc<str>>,
    at: Instant,
}

/// The users, the remembered credentials, the failures by address, and the threads.
pub struct Auth {
    settings: Settings,
    /// `Proxy-Authenticate: Basic realm="…"` CRLF, made once.
    proxy_challenge: Box<[u8]>,
    /// `WWW-Authenticate: Basic realm="…"` CRLF, for larder's own pages asked for
    /// directly (a browser pointed at larder itself answers a 401, not a 407).
    www_challenge: Box<[u8]>,
    users: Users,
    stamp: Option<Stamp>,
    /// A reload failed and was warned about; said once until the file is read again.
    failing: bool,
    /// Counts the files read: a credential verified under an older one is not trusted.
    generation: u64,
    keys: (RandomState, RandomState),
    known: HashMap<u128, Known>,
    limiter: Limiter,
    verifier: Verifier,
    stand_in: Arc<str>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("file", &self.settings.file)
            .field("users", &self.users.len())
            .field("known", &self.known.len())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Reads the password file and starts the checking threads, which wake `waker`.
    ///
    /// # Errors
    /// The file cannot be read, is refused (the line and why), or has no users; or a
    /// thread cannot be started.
    pub fn new(settings: Settings, waker: Arc<Waker>) -> Result<Auth, String> {
        Auth::start(settings, waker, htpasswd::verify)
    }

    /// [`Auth::new`] with the password check injected.
    pub(crate) fn start<F>(settings: Settings, waker: Arc<Waker>, verify: F) -> Result<Auth, String>
    where
        F: Fn(&[u8], &str) -> bool + Send + Sync + std::panic::RefUnwindSafe + 'static,
    {
        let (stamp, users) = read(&settings.file)?;
        let verifier = Verifier::start(waker, THREADS, verify)
            .map_err(|e| format!("cannot start the password-checking threads: {e}"))?;
        let realm = &settings.realm;
        Ok(Auth {
            proxy_challenge: format!("Proxy-Authenticate: Basic realm=\"{realm}\"\r\n")
                .into_bytes()
                .into(),
            www_challenge: format!("WWW-Authenticate: Basic realm=\"{realm}\"\r\n")
                .into_bytes()
                .into(),
            settings,
            users,
            stamp: Some(stamp),
            failing: false,
            generation: 1,
            keys: (RandomState::new(), RandomState::new()),
            known: HashMap::new(),
            limiter: Limiter::default(),
            verifier,
            stand_in: Arc::from(STAND_IN),
        })
    }

    /// The challenge field line for a 407 (`proxy`) or a 401.
    pub fn challenge(&self, proxy: bool) -> &[u8] {
        if proxy {
            &self.proxy_challenge
        } else {
            &self.www_challenge
        }
    }

    /// Users in the file in use.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// The first half of a credential's key: a 64-bit keyed hash of the field value,
    /// which is all a connection's own credential is compared by (see [`Auth::check`]).
    fn tag(&self, value: &[u8]) -> u64 {
        self.keys.0.hash_one(value)
    }

    /// The key of a credential field value whose `tag` is known: 128 bits, never 0.
    fn key(&self, tag: u64, value: &[u8]) -> u128 {
        let b = self.keys.1.hash_one(value);
        ((u128::from(tag) << 64) | u128::from(b)).max(1)
    }

    /// Judges the credential `value` (the field's value; `None` if the request has
    /// none) that client `ip` sent on the connection whose `session` it is; `waiter`
    /// names the connection if it has to wait for a check.
    pub fn check(
        &mut self,
        value: Option<&[u8]>,
        session: &mut Session,
        ip: IpAddr,
        waiter: Waiter,
        now: Instant,
    ) -> Check {
        let Some(value) = value else {
            return Check::Challenge;
        };
        // The connection's own credential, sent again byte for byte: a comparison, no
        // hashing at all, on every request after the first.
        if session.generation == self.generation && session.value.as_deref() == Some(value) {
            if let Some(user) = &session.user {
                return Check::Pass(Rc::clone(user));
            }
        }
        let key = self.key(self.tag(value), value);
        if let Some(known) = self.known.get(&key) {
            if now.saturating_duration_since(known.at) < self.settings.ttl {
                return match &known.user {
                    Some(user) => {
                        *session = Session {
                            value: Some(value.into()),
                            generation: self.generation,
                            user: Some(Rc::clone(user)),
                        };
                        Check::Pass(Rc::clone(user))
                    }
                    None => Check::Challenge,
                };
            }
        }
        if !self.limiter.allows(ip, now) {
            return Check::Limited;
        }
        let Some(credential) = basic::parse(value) else {
            // Not even well formed: refused without a thread, and counted.
            self.limiter.failed(ip, now);
            self.remember(key, None, now);
            return Check::Challenge;
        };
        let (user, hash) = match self.users.hash(&credential.user) {
            Some(hash) => (Some(Rc::from(credential.user)), Arc::clone(hash)),
            None => (None, Arc::clone(&self.stand_in)),
        };
        let generation = self.generation;
        let pending = || Pending {
            user,
            ip,
            generation,
            waiters: Vec::new(),
        };
        match self
            .verifier
            .submit(key, credential.password, hash, pending, waiter)
        {
            Submitted::Queued => Check::Wait,
            Submitted::Busy => Check::Busy,
        }
    }

    /// Takes the verdicts that arrived (call it when the waker fired): each is
    /// remembered, a failure counts against the address that sent it, and the
    /// connections that waited are returned, to be looked at again.
    pub fn drain(&mut self, now: Instant) -> Vec<Waiter> {
        let mut waiters = Vec::new();
        for (key, pending, ok) in self.verifier.drain() {
            // A verdict on a file that has since changed is not kept: the waiters look
            // again and the credential is checked against the new file.
            if pending.generation == self.generation {
                let user = pending.user.filter(|_| ok);
                if user.is_none() {
                    self.limiter.failed(pending.ip, now);
                }
                self.remember(key, user, now);
            }
            waiters.extend(pending.waiters);
        }
        waiters
    }

    fn remember(&mut self, key: u128, user: Option<Rc<str>>, now: Instant) {
        if self.known.len() >= KNOWN_CAP && !self.known.contains_key(&key) {
            let ttl = self.settings.ttl;
            self.known
                .retain(|_, k| now.saturating_duration_since(k.at) < ttl);
            if self.known.len() >= KNOWN_CAP {
                let oldest = self.known.iter().min_by_key(|(_, k)| k.at).map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    self.known.remove(&oldest);
                }
            }
        }
        self.known.insert(key, Known { user, at: now });
    }

    /// Re-reads the password file if it changed (or always, if `force`: SIGHUP).
    /// Returns whether a new file is in use. A file that fails keeps the users read
    /// before, with one warning until it is read again (a forced reload warns again).
    pub fn reload(&mut self, force: bool) -> bool {
        if force {
            self.failing = false;
        }
        let path = &self.settings.file;
        if !force {
            match fs::metadata(path) {
                Ok(meta) if Some(Stamp::of(&meta)) == self.stamp => return false,
                Ok(_) => {}
                Err(e) => {
                    self.fail(&format!("cannot read {}: {e}", path.display()));
                    return false;
                }
            }
        }
        match read(path) {
            Ok((stamp, users)) => {
                log::info!(
                    "read password file {}: {} user(s)",
                    path.display(),
                    users.len()
                );
                self.users = users;
                self.stamp = Some(stamp);
                self.generation += 1;
                self.known.clear();
                self.failing = false;
                true
            }
            Err(e) => {
                self.fail(&e);
                false
            }
        }
    }

    fn fail(&mut self, message: &str) {
        if !self.failing {
            log::warn!("{message}; the users read before are kept");
            self.failing = true;
        }
    }
}

/// Reads and parses the password file.
fn read(path: &std::path::Path) -> Result<(Stamp, Users), String> {
    let shown = path.display();
    let text = fs::read(path).map_err(|e| format!("cannot read password file {shown}: {e}"))?;
    let meta = fs::metadata(path).map_err(|e| format!("cannot read password file {shown}: {e}"))?;
    let users = htpasswd::parse(&text).map_err(|e| format!("password file {shown}: {e}"))?;
    if users.is_empty() {
        return Err(format!("password file {shown} has no users"));
    }
    Ok((Stamp::of(&meta), users))
}

#[cfg(test)]
mod tests;
