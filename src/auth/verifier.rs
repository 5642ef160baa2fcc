//! Password checks off the event loop. bcrypt and SHA-crypt are slow on purpose (a
//! few milliseconds at `htpasswd -B`'s default cost, far more at high costs), so an
//! unknown credential is checked on one of two helper threads, as DNS lookups are: the
//! loop sends a job, the thread sends back the verdict and wakes the loop with the
//! shared [`mio::Waker`], and the loop collects it with [`Verifier::drain`]. The
//! threads hold nothing but the job in hand.

use std::collections::HashMap;
use std::net::IpAddr;
use std::panic::{self, RefUnwindSafe};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread;

use mio::Waker;

use crate::dns::Waiter;

/// Most credentials being checked at once; beyond it a request is answered 503 at once
/// rather than queue without bound behind slow hashes.
pub const MAX_IN_FLIGHT: usize = 64;

/// A check for a helper thread: the credential's key, its password and the stored hash.
struct Job {
    key: u128,
    password: Vec<u8>,
    hash: Arc<str>,
}

/// A credential being checked, and who waits for its verdict.
#[derive(Debug)]
pub struct Pending {
    /// The user it names (`None`: not in the file; it is checked anyway, against a
    /// stand-in hash, so that how long the answer takes does not tell).
    pub user: Option<Rc<str>>,
    /// The client that sent it first (a failure counts against it).
    pub ip: IpAddr,
    /// The password file's generation when the check began.
    pub generation: u64,
    /// The connections waiting for the verdict.
    pub waiters: Vec<Waiter>,
}

/// What [`Verifier::submit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Queued (or joined a check of the same credential already under way).
    Queued,
    /// Too many checks under way, or no thread left: not queued.
    Busy,
}

/// The loop's side of the helper threads. Only the loop thread uses it.
pub struct Verifier {
    requests: Sender<Job>,
    answers: Receiver<(u128, bool)>,
    in_flight: HashMap<u128, Pending>,
}

impl Verifier {
    /// Starts `threads` helper threads checking with `verify(password, hash)`, which
    /// wake `waker` after each verdict.
    ///
    /// # Errors
    /// A thread could not be spawned.
    pub fn start<F>(waker: Arc<Waker>, threads: usize, verify: F) -> std::io::Result<Verifier>
    where
        F: Fn(&[u8], &str) -> bool + Send + Sync + RefUnwindSafe + 'static,
    {
        let (requests, requests_rx) = mpsc::channel();
        let (answers_tx, answers) = mpsc::channel();
        let requests_rx = Arc::new(Mutex::new(requests_rx));
        let verify = Arc::new(verify);
        for _ in 0..threads.max(1) {
            let requests_rx = Arc::clone(&requests_rx);
            let answers_tx = answers_tx.clone();
            let waker = Arc::clone(&waker);
            let verify = Arc::clone(&verify);
            thread::Builder::new()
                .name("larder-auth".to_owned())
                .spawn(move || work(&requests_rx, &answers_tx, &waker, &*verify))?;
        }
        Ok(Verifier {
            requests,
            answers,
            in_flight: HashMap::new(),
        })
    }

    /// Queues a check of `password` against `hash` for the credential `key`, or adds
    /// `waiter` to the check of `key` already under way.
    pub fn submit(
        &mut self,
        key: u128,
        password: Vec<u8>,
        hash: Arc<str>,
        pending: impl FnOnce() -> Pending,
        waiter: Waiter,
    ) -> Submitted {
        if let Some(p) = self.in_flight.get_mut(&key) {
            p.waiters.push(waiter);
            return Submitted::Queued;
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return Submitted::Busy;
        }
        if self
            .requests
            .send(Job {
                key,
                password,
                hash,
            })
            .is_err()
        {
            return Submitted::Busy;
        }
        let mut p = pending();
        p.waiters.push(waiter);
        self.in_flight.insert(key, p);
        Submitted::Queued
    }

    /// The verdicts that arrived, without blocking: each credential's key, what was
    /// pending for it, and whether the password matched. If the threads are gone, every
    /// pending check fails now rather than wait forever.
    pub fn drain(&mut self) -> Vec<(u128, Pending, bool)> {
        let mut out = Vec::new();
        loop {
            match self.answers.try_recv() {
                Ok((key, ok)) => {
                    if let Some(p) = self.in_flight.remove(&key) {
                        out.push((key, p, ok));
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    out.extend(self.in_flight.drain().map(|(k, p)| (k, p, false)));
                    break;
                }
            }
        }
        out
    }

    /// Checks under way.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// A helper thread: checks passwords until the verifier is dropped.
fn work(
    requests: &Mutex<Receiver<Job>>,
    answers: &Sender<(u128, bool)>,
    waker: &Waker,
    verify: &(dyn Fn(&[u8], &str) -> bool + Sync + RefUnwindSafe),
) {
    loop {
        let next = match requests.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = next else { return };
        // A panic fails this check, not the thread (whose waiters would hang).
        let ok = panic::catch_unwind(|| verify(&job.password, &job.hash)).unwrap_or(false);
        job.password.fill(0);
        if answers.send((job.key, ok)).is_err() {
            return;
        }
        if let Err(e) = waker.wake() {
            log::error!("auth: cannot wake the event loop: {e}");
        }
    }
}
