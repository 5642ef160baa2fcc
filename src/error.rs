//! Errors that stop larder from starting or running. Per-connection trouble never
//! becomes one of these: it is answered on that connection and logged.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug)]
/// An error that stops larder from starting or running.
pub enum Error {
    /// A setting is unusable (e.g. an unreadable block list).
    Config(String),
    /// The listening address cannot be bound.
    Bind(SocketAddr, io::Error),
    /// A file larder must write (e.g. the access log) cannot be opened.
    File(PathBuf, io::Error),
    /// The cache file cannot be opened (locked, foreign, newer version, I/O).
    Cache(crate::cache::CacheError),
    /// The event loop's own machinery failed.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "{m}"),
            Error::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            Error::File(p, e) => write!(f, "cannot open {}: {e}", p.display()),
            Error::Cache(e) => write!(f, "cache: {e}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}
