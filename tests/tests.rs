//! larder's integration tests: one binary, real sockets on 127.0.0.1.
//!
//! Each test starts its own larder on port 0 (see `support::Proxy`) and, where it needs
//! one, its own scripted origin, so tests run in parallel without sharing ports or files.
//! The modules follow larder's contract: forwarding, bad input, CONNECT, access control,
//! where clients on other machines may make larder go and how many connections each
//! may hold (`destinations`), upstream errors, connecting to names with several
//! addresses (`eyeballs`), timeouts, the connection limit, proxy authentication with
//! real `htpasswd` files and `curl --proxy-user` (`auth`), the access log, start-up,
//! real clients (curl, wget, apt-get against a local repository), and the cache file
//! with its tool (`cache`; its one ignored test is the crash test's child process, run
//! only by that test), caching through the proxy (`caching`), and the scaling recipe of
//! tools/cluster: three larders behind a real HAProxy (`cluster`).

mod support;

mod access;
mod auth;
mod cache;
mod caching;
mod cli;
mod clients;
mod cluster;
mod connect;
mod destinations;
mod errors;
mod eyeballs;
mod forward;
mod framing;
mod limits;
mod log;
mod pages;
mod pages_render;
mod parents;
mod range_fetch;
mod regression;
mod service;
mod stale;
mod timeouts;
