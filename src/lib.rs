//! larder: a small, fast caching HTTP/HTTPS forward proxy for low-resource machines.
//!
//! The crate is a library so that the proxy (`src/main.rs`), the integration tests
//! and the benchmarks share one implementation. See `docs/ARCHITECTURE.md` for the
//! event loop, the connection states and the invariants.

#![warn(missing_docs, unreachable_pub)]

pub mod access_log;
pub mod acl;
pub mod auth;
pub mod buf;
pub mod cache;
pub mod config;
pub mod conn;
pub mod dns;
pub mod error;
pub mod http;
pub mod pages;
pub mod parents;
pub mod server;
pub mod stamp;
pub mod stats;
pub mod sys;
