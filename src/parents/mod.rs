//! Parent proxies (`--parent`): which hop a request takes, as a value.
//!
//! Sockets-free: given the target and the clock, [`Parents::plan`] says whether the
//! request goes straight to the origin (`None`, the only answer when no parent is
//! configured, and without allocating) or which parents to try in which order, and
//! whether the origin may be tried after them ([`Plan`]). The connection code does
//! what the plan says, and reports a parent that failed ([`Parents::mark_down`]).
//!
//! With several parents each URL picks its parent by rendezvous (highest random
//! weight) hashing: every parent gets a score from a hash of the URL and the parent's
//! `host:port`, and the highest score wins. Each parent therefore caches its own
//! share of the URLs (Squid's CARP, without its array file), every child proxy with
//! the same parents picks the same one for a URL, and when a parent is down only its
//! share moves, spread over the others, and comes back when it does.
//!
//! ```text
//!  target ──► --direct rule, or (unless --never-direct) a private/loopback literal
//!    │        or a name without a dot ──────────────────────────────► origin
//!    └──► parents that are up, highest score first ──► then the origin, unless
//!         --never-direct (with none up and --never-direct: every parent, as a last try)
//! ```

pub mod head;
pub mod rules;

use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use rules::{DirectRule, ParentSpec};

/// The most `--parent`s larder takes (a plan holds their order inline).
pub const MAX_PARENTS: usize = 16;

/// Where a request goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// To the origin itself.
    Direct,
    /// To parent number `.0` (its index in [`Parents`]).
    Parent(usize),
}

/// The hops a request tries, in order: parents, then perhaps the origin. A small
/// value (no allocation); the exchange keeps it while it tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    order: [u8; MAX_PARENTS],
    len: u8,
    pos: u8,
    direct_last: bool,
    carp: bool,
}

impl Plan {
    /// The hop to try now; `None` when every hop was tried.
    pub fn hop(&self) -> Option<Hop> {
        if self.pos < self.len {
            let i = self.order.get(usize::from(self.pos)).copied()?;
            return Some(Hop::Parent(usize::from(i)));
        }
        (self.pos == self.len && self.direct_last).then_some(Hop::Direct)
    }

    /// The hop tried now failed: move to the next one.
    pub fn advance(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    /// The parents were picked by hashing (more than one is configured): the access
    /// log says `CARP` rather than `FIRSTUP_PARENT`.
    pub fn carp(&self) -> bool {
        self.carp
    }
}

/// One parent and what larder knows of it.
#[derive(Debug)]
struct Parent {
    spec: ParentSpec,
    /// Hash of `host:port`: the parent's part of every score.
    seed: u64,
    /// Marked down until then (it refused, reset or timed out).
    down_until: Option<Instant>,
}

/// The parents, the direct rules, and which parents are down.
#[derive(Debug, Default)]
pub struct Parents {
    list: Vec<Parent>,
    direct: Vec<DirectRule>,
    never_direct: bool,
    retry: Duration,
}

/// The parent settings, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentsConfig {
    /// `--parent`, in the order given.
    pub parents: Vec<ParentSpec>,
    /// `--direct`.
    pub direct: Vec<DirectRule>,
    /// `--never-direct`.
    pub never_direct: bool,
    /// `--parent-retry`: how long a failed parent is left out.
    pub retry: Duration,
    /// Why the first `--parent` that could not be read was refused (reported by
    /// [`ParentsConfig::check`], so that the value, which may hold a password, is not
    /// echoed as the argument parser would).
    pub bad_parent: Option<String>,
}

impl ParentsConfig {
    /// Checks what clap cannot: `--never-direct` needs a parent, and there are at most
    /// [`MAX_PARENTS`] of them.
    pub fn check(&self) -> Result<(), String> {
        if let Some(why) = &self.bad_parent {
            return Err(format!("--parent: {why}"));
        }
        if self.never_direct && self.parents.is_empty() {
            return Err("--never-direct needs at least one --parent".into());
        }
        if self.parents.len() > MAX_PARENTS {
            return Err(format!(
                "{} parents given: larder takes at most {MAX_PARENTS}",
                self.parents.len()
            ));
        }
        Ok(())
    }
}

impl Parents {
    /// The parents of `cfg`, all up. (Parents past [`MAX_PARENTS`], which
    /// [`ParentsConfig::check`] refuses, are left out.)
    pub fn new(cfg: &ParentsConfig) -> Parents {
        let list = cfg
            .parents
            .iter()
            .take(MAX_PARENTS)
            .map(|spec| Parent {
                seed: mix(fnv1a(spec.to_string().as_bytes())),
                spec: spec.clone(),
                down_until: None,
            })
            .collect();
        Parents {
            list,
            direct: cfg.direct.clone(),
            never_direct: cfg.never_direct,
            retry: cfg.retry,
        }
    }

    /// No parent is configured: every request goes direct.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Parent `i`.
    pub fn get(&self, i: usize) -> Option<&ParentSpec> {
        self.list.get(i).map(|p| &p.spec)
    }

    /// How long a failed parent is left out (`--parent-retry`).
    pub fn retry(&self) -> Duration {
        self.retry
    }

    /// The hops for a request to `host` (lowercase, no trailing dot, IPv6 without
    /// brackets) whose cache key is `url`, at `now`: `None` to go straight to the
    /// origin (always, without parents).
    #[inline]
    pub fn plan(&self, host: &str, url: &str, now: Instant) -> Option<Plan> {
        if self.list.is_empty() {
            return None;
        }
        self.plan_with_parents(host, url, now)
    }

    fn plan_with_parents(&self, host: &str, url: &str, now: Instant) -> Option<Plan> {
        let ip = host.parse::<IpAddr>().ok();
        if self.direct.iter().any(|r| r.covers(host, ip)) {
            return None;
        }
        if !self.never_direct && rules::direct_by_default(host, ip) {
            return None;
        }
        let key = fnv1a(url.as_bytes());
        let mut scored = [(0u64, 0u8); MAX_PARENTS];
        let mut n = 0;
        let up = |p: &Parent| p.down_until.is_none_or(|t| now >= t);
        let last_try = self.never_direct && !self.list.iter().any(up);
        for (i, p) in self.list.iter().enumerate().take(MAX_PARENTS) {
            if up(p) || last_try {
                if let Some(slot) = scored.get_mut(n) {
                    *slot = (mix(key ^ p.seed), i as u8);
                    n += 1;
                }
            }
        }
        let scored = scored.get_mut(..n).unwrap_or_default();
        // Highest score first; equal scores (never, in practice) by index.
        scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut order = [0u8; MAX_PARENTS];
        for (slot, &(_, i)) in order.iter_mut().zip(scored.iter()) {
            *slot = i;
        }
        Some(Plan {
            order,
            len: n as u8,
            pos: 0,
            direct_last: !self.never_direct,
            carp: self.list.len() > 1,
        })
    }

    /// Parent `i` failed (refused, reset, timed out): it is left out of plans for
    /// `--parent-retry`. Returns whether it was up until now (the caller warns then,
    /// so a dead parent is reported once per retry period, not once per request).
    pub fn mark_down(&mut self, i: usize, now: Instant) -> bool {
        let retry = self.retry;
        let Some(p) = self.list.get_mut(i) else {
            return false;
        };
        let was_up = p.down_until.is_none_or(|t| now >= t);
        p.down_until = Some(now + retry);
        was_up
    }

    /// Parent `i` answered: it is up. Returns whether it was marked down.
    pub fn mark_up(&mut self, i: usize) -> bool {
        self.list
            .get_mut(i)
            .is_some_and(|p| p.down_until.take().is_some())
    }

    /// Each parent (`host:port`, never its credentials) and whether it is up at `now`,
    /// for the status page and `/metrics`.
    pub fn states(&self, now: Instant) -> Vec<(String, bool)> {
        self.list
            .iter()
            .map(|p| (p.spec.to_string(), p.down_until.is_none_or(|t| now >= t)))
            .collect()
    }
}

/// FNV-1a, 64 bits: stable across runs and machines, so that every larder with the
/// same parents sends a URL to the same one.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finalizer: every input bit moves every output bit, so the scores of
/// one URL for two parents are unrelated.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parents(specs: &[&str], direct: &[&str], never_direct: bool) -> Parents {
        Parents::new(&ParentsConfig {
            parents: specs.iter().map(|s| s.parse().expect("spec")).collect(),
            direct: direct.iter().map(|s| s.parse().expect("rule")).collect(),
            never_direct,
            retry: Duration::from_secs(30),
            bad_parent: None,
        })
    }

    fn first(p: &Parents, url: &str, now: Instant) -> Option<Hop> {
        let host = url
            .trim_start_matches("http://")
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        p.plan(host, url, now).and_then(|plan| plan.hop())
    }

    fn urls() -> impl Iterator<Item = String> {
        (0..3000).map(|i| format!("http://site{}.example/object/{i}", i % 97))
    }

    #[test]
    fn without_parents_everything_is_direct() {
        let p = parents(&[], &[], false);
        assert_eq!(
            p.plan("example.com", "http://example.com/", Instant::now()),
            None
        );
    }

    #[test]
    fn rendezvous_hashing_spreads_urls_evenly_and_stably() {
        let p = parents(&["a:3128", "b:3128", "c:3128", "d:3128"], &[], false);
        let now = Instant::now();
        let mut counts = [0usize; 4];
        for url in urls() {
            let Some(Hop::Parent(i)) = first(&p, &url, now) else {
                panic!("{url} goes to no parent");
            };
            counts[i] += 1;
            // The same URL picks the same parent every time, in any larder.
            let again = parents(&["a:3128", "b:3128", "c:3128", "d:3128"], &[], false);
            assert_eq!(first(&again, &url, now), Some(Hop::Parent(i)));
        }
        for c in counts {
            assert!((600..=900).contains(&c), "uneven shares: {counts:?}");
        }
    }

    #[test]
    fn a_down_parents_share_moves_to_the_others_and_comes_back() {
        let mut p = parents(&["a:3128", "b:3128", "c:3128"], &[], false);
        let t0 = Instant::now();
        let before: Vec<Option<Hop>> = urls().map(|u| first(&p, &u, t0)).collect();
        assert!(p.mark_down(1, t0));
        assert!(!p.mark_down(1, t0), "already down: no second warning");
        let during: Vec<Option<Hop>> = urls().map(|u| first(&p, &u, t0)).collect();
        let mut moved = [0usize; 3];
        for (b, d) in before.iter().zip(&during) {
            match (b, d) {
                (Some(Hop::Parent(1)), Some(Hop::Parent(j))) => moved[*j] += 1,
                (Some(Hop::Parent(1)), other) => panic!("b's URL went to {other:?}"),
                // Only b's share moves.
                (b, d) => assert_eq!(b, d),
            }
        }
        assert_eq!(moved[1], 0);
        assert!(moved[0] > 300 && moved[2] > 300, "{moved:?}");
        // The plan still ends with the origin, and b is not in it.
        let plan = p.plan("x.example", "http://x.example/", t0).expect("plan");
        let mut hops = Vec::new();
        let mut walk = plan;
        while let Some(h) = walk.hop() {
            hops.push(h);
            walk.advance();
        }
        assert_eq!(hops.len(), 3);
        assert!(!hops.contains(&Hop::Parent(1)));
        assert_eq!(hops.last(), Some(&Hop::Direct));
        assert!(plan.carp());
        // After --parent-retry it takes its share back.
        let later = t0 + Duration::from_secs(30);
        let after: Vec<Option<Hop>> = urls().map(|u| first(&p, &u, later)).collect();
        assert_eq!(after, before);
        assert!(p.mark_up(1));
        assert!(!p.mark_up(1));
    }

    #[test]
    fn every_parent_is_tried_before_the_origin() {
        let mut p = parents(&["a:1", "b:1"], &[], false);
        let now = Instant::now();
        let mut plan = p.plan("x.example", "http://x.example/", now).expect("plan");
        let mut seen = Vec::new();
        while let Some(h) = plan.hop() {
            seen.push(h);
            plan.advance();
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], Hop::Direct);
        // Both down: straight to the origin.
        p.mark_down(0, now);
        p.mark_down(1, now);
        let plan = p.plan("x.example", "http://x.example/", now).expect("plan");
        assert_eq!(plan.hop(), Some(Hop::Direct));
    }

    #[test]
    fn never_direct_keeps_to_parents_even_when_all_are_down() {
        let mut p = parents(&["a:1", "b:1"], &["intranet.example"], true);
        let now = Instant::now();
        // The defaults no longer apply; explicit rules do.
        assert!(p.plan("10.0.0.1", "http://10.0.0.1/", now).is_some());
        assert!(p.plan("intranet", "http://intranet/", now).is_some());
        assert_eq!(
            p.plan(
                "wiki.intranet.example",
                "http://wiki.intranet.example/",
                now
            ),
            None
        );
        p.mark_down(0, now);
        let mut plan = p.plan("x.example", "http://x.example/", now).expect("plan");
        assert_eq!(plan.hop(), Some(Hop::Parent(1)));
        plan.advance();
        assert_eq!(plan.hop(), None, "never the origin");
        p.mark_down(1, now);
        let mut plan = p.plan("x.example", "http://x.example/", now).expect("plan");
        let (mut n, mut hop) = (0, plan.hop());
        while let Some(Hop::Parent(_)) = hop {
            n += 1;
            plan.advance();
            hop = plan.hop();
        }
        assert_eq!(
            (n, hop),
            (2, None),
            "a last try of every parent, never the origin"
        );
    }

    #[test]
    fn direct_rules_and_defaults_bypass_the_parents() {
        let p = parents(
            &["a:1"],
            &["corp.example", "192.0.2.0/24", "2001:db8::/32"],
            false,
        );
        let now = Instant::now();
        for host in [
            "corp.example",
            "git.corp.example",
            "192.0.2.7",
            "2001:db8::5",
            "127.0.0.1",
            "10.9.8.7",
            "::1",
            "fd12::1",
            "intranet",
        ] {
            assert_eq!(p.plan(host, "http://h/", now), None, "{host}");
        }
        for host in ["example.com", "notcorp.example", "192.0.3.7", "2001:db9::5"] {
            let plan = p.plan(host, "http://h/", now).expect(host);
            assert_eq!(plan.hop(), Some(Hop::Parent(0)), "{host}");
            assert!(!plan.carp());
        }
    }

    #[test]
    fn never_direct_needs_a_parent_and_parents_are_bounded() {
        let mut cfg = ParentsConfig {
            never_direct: true,
            ..ParentsConfig::default()
        };
        assert!(cfg.check().is_err());
        cfg.parents = (0..=MAX_PARENTS)
            .map(|i| format!("p{i}:1").parse().expect("spec"))
            .collect();
        assert!(cfg.check().is_err());
        cfg.parents.pop();
        assert_eq!(cfg.check(), Ok(()));
    }
}
