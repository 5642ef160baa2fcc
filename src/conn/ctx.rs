//! What every connection step works with: [`Ctx`], the state the loop shares with the
//! connections (configuration, clocks, buffers, the resolver, the upstream pool, the
//! access log, the cache, the figures), and the tokens that name sockets in the poll.
//! The server owns and fills it; connection code reads and updates it, and never
//! needs the server itself.

use std::net::SocketAddr;
use std::time::Instant;

use mio::{Registry, Token};

use super::cache::{Cache, Serving};
use super::upstream::Pool;
use super::{Exchange, Relay};
use crate::access_log::AccessLog;
use crate::acl::blocklist::Blocklist;
use crate::acl::dest::Destinations;
use crate::acl::per_client::PerClient;
use crate::acl::Clients;
use crate::buf::{BufPool, HeadPool};
use crate::config::Config;
use crate::dns::Resolver;
use crate::http::{Limits, ViaName};
use crate::parents::Parents;
use crate::stats::Stats;

/// Client connection `key` ↔ token `2·key`; upstream socket `idx` ↔ `2·idx + 1`.
pub fn client_token(key: usize) -> Token {
    Token(key << 1)
}

/// The token of upstream socket `idx` (see [`client_token`]).
pub fn upstream_token(idx: usize) -> Token {
    Token((idx << 1) | 1)
}

/// State shared by every connection step.
pub struct Ctx {
    /// The validated configuration.
    pub cfg: Config,
    /// Size limits for parsing heads and bodies.
    pub limits: Limits,
    /// larder's name in the `Via` fields it adds.
    pub via: ViaName,
    /// The time at the start of this turn (one clock read per turn).
    pub now: Instant,
    /// Free I/O buffers, for the next reads.
    pub bufs: BufPool,
    /// Vectors of finished heads, for the next ones.
    pub heads: HeadPool,
    /// Boxes of finished exchanges, relays and cached answers, for the next ones.
    pub spares: Spares,
    /// Where a small response's head and body are joined for one write
    /// ([`super::io::write_response`]); kept, so joining allocates nothing.
    pub joined: Vec<u8>,
    /// The DNS resolver.
    pub resolver: Resolver,
    /// `--auth-file`: the users, the credentials checked lately, and the threads that
    /// check new ones; `None` when clients need no password.
    pub auth: Option<crate::auth::Auth>,
    /// Idle upstream sockets, by origin.
    pub pool: Pool,
    /// The poll registry, for registering new sockets.
    pub registry: Registry,
    /// The congestion control of the sockets larder makes.
    pub congestion: super::congestion::Congestion,
    /// Who may use larder and its pages, and which peers are balancers.
    pub clients: Clients,
    /// The blocked domains and destination networks (`--block`, `--block-list`,
    /// `--block-ip`).
    pub blocklist: Blocklist,
    /// Where clients elsewhere may not make larder go (`--allow-to`, the machine's
    /// own addresses).
    pub dest: Destinations,
    /// Open connections by client address (`--max-conns-per-client`).
    pub per_client: PerClient,
    /// The access log; `None` when there is none.
    pub log: Option<AccessLog>,
    /// The listening addresses: a request aimed at one of them is for larder itself.
    pub locals: Vec<SocketAddr>,
    /// Unix seconds at the start of this turn.
    pub unix: u64,
    /// What larder counted since start-up (status page, `/metrics`).
    pub stats: Stats,
    /// Figures the server keeps for the pages: open connections and tunnels (the
    /// tunnels counted on each tick).
    pub gauges: Gauges,
    /// Stopping: requests finish and their connections close; nothing new is accepted.
    pub draining: bool,
    /// A stop was asked for: `/health` answers 503 (during `--drain-notice`, before
    /// `draining`, larder still accepts and serves as usual).
    pub stopping: bool,
    /// The cache, its file open and locked for larder's lifetime.
    pub cache: Cache,
    /// The parent proxies, which of them are down, and the direct rules.
    pub parents: Parents,
    /// Revalidations to start in the background (`stale-while-revalidate`), each on
    /// a connection of its own that the server makes after the turn's steps (see
    /// `background.rs`).
    pub refreshes: Vec<Box<Exchange>>,
}

/// Figures only the server sees, kept where connection steps can read them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Client connections open.
    pub conns_open: u64,
    /// CONNECT tunnels open (counted on each tick).
    pub tunnels_open: u64,
    /// The limit on open client connections.
    pub max_conns: u64,
}

/// Boxes of finished exchanges, relays and cached answers, kept (at most
/// [`HeadPool::KEEP`] of each) for the next requests: a request in flight then
/// allocates nothing for them.
// The boxes themselves are what is kept: a request takes one whole.
#[allow(clippy::vec_box)]
#[derive(Debug, Default)]
pub struct Spares {
    exchanges: Vec<Box<Exchange>>,
    relays: Vec<Box<Relay>>,
    servings: Vec<Box<Serving>>,
}

impl Spares {
    /// A kept exchange box, if there is one (the caller writes the new exchange into
    /// it: see `conn::request::begin`).
    pub fn kept_exchange(&mut self) -> Option<Box<Exchange>> {
        self.exchanges.pop()
    }

    /// Keeps a finished exchange's box; what it held must already be let go.
    pub fn give_exchange(&mut self, ex: Box<Exchange>) {
        keep(&mut self.exchanges, ex);
    }

    /// `relay` in a box, a kept one if there is one.
    #[inline]
    pub fn relay(&mut self, relay: Relay) -> Box<Relay> {
        reuse(&mut self.relays, relay)
    }

    /// Keeps a finished relay's box.
    pub fn give_relay(&mut self, relay: Box<Relay>) {
        keep(&mut self.relays, relay);
    }

    /// `serving` in a box, a kept one if there is one.
    #[inline]
    pub fn serving(&mut self, serving: Serving) -> Box<Serving> {
        reuse(&mut self.servings, serving)
    }

    /// Keeps the box of a response from the map, once what it pinned is given back
    /// (it holds no object any more).
    pub fn give_serving(&mut self, serving: Box<Serving>) {
        if serving.obj.is_none() {
            keep(&mut self.servings, serving);
        }
    }
}

#[inline]
fn reuse<T>(spare: &mut Vec<Box<T>>, value: T) -> Box<T> {
    match spare.pop() {
        Some(mut kept) => {
            *kept = value;
            kept
        }
        None => Box::new(value),
    }
}

fn keep<T>(spare: &mut Vec<Box<T>>, value: Box<T>) {
    if spare.len() < HeadPool::KEEP {
        spare.push(value);
    }
}
