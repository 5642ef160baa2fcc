//! larder's own pages: what it answers itself instead of forwarding — its status
//! page, `/metrics`, `/health`, the PAC file, and `PURGE`.
//!
//! A request reaches these when it is in origin form (`GET /metrics` with larder's own
//! address in Host, as a browser or Prometheus sends it when pointed straight at
//! larder) or in absolute form naming one of larder's own listening addresses, or
//! when its method is PURGE. [`decide`] says what to answer, as a value; the
//! connection code (`conn::pages`) carries it out. The renderers here are pure
//! functions of a [`crate::stats::Snapshot`].
//!
//! | path | who | what |
//! |---|---|---|
//! | `/` | `--admin` | the status page (HTML) |
//! | `/metrics` | `--admin` | Prometheus text format 0.0.4 |
//! | `/health` | anyone `--allow`ed | `200 ok`, or `503` with the reason |
//! | `/proxy.pac`, `/wpad.dat` | anyone `--allow`ed | the PAC file |
//! | `PURGE <URL>` | `--admin` | removes the URL (every variant) from the cache |

pub mod metrics;
pub mod pac;
pub mod small;
pub mod status;
pub mod text;

use crate::http::Method;

/// What larder answers to a request for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The HTML status page (`/`).
    Status,
    /// The counters for Prometheus (`/metrics`).
    Metrics,
    /// The health check for load balancers (`/health`).
    Health,
    /// The proxy auto-config file (`/proxy.pac`, `/wpad.dat`).
    Pac,
    /// Remove the target URL from the cache.
    Purge,
    /// No page at this path (404).
    NotFound,
    /// The page exists but is for `--admin` clients only (403).
    AdminOnly,
    /// The page exists but answers only GET and HEAD (405).
    MethodNotAllowed,
}

/// Whether `method` is PURGE.
pub fn is_purge(method: &Method) -> bool {
    matches!(method, Method::Other(m) if &**m == "PURGE")
}

/// What to answer to `method path` from a client that is (`admin`) or is not in
/// `--admin`. `path` may carry a query, which is ignored.
pub fn decide(method: &Method, path: &str, admin: bool) -> Page {
    if is_purge(method) {
        return if admin { Page::Purge } else { Page::AdminOnly };
    }
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let page = match path {
        "/" => Page::Status,
        "/metrics" => Page::Metrics,
        "/health" => Page::Health,
        "/proxy.pac" | "/wpad.dat" => Page::Pac,
        _ => return Page::NotFound,
    };
    if !matches!(method, Method::Get | Method::Head) {
        return Page::MethodNotAllowed;
    }
    if matches!(page, Page::Status | Page::Metrics) && !admin {
        return Page::AdminOnly;
    }
    page
}

/// The content type of larder's other HTML pages (the status page's is
/// [`status::CONTENT_TYPE`]).
pub const HTML_TYPE: &str = "text/html; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_path_method_and_client() {
        let get = Method::Get;
        assert_eq!(decide(&get, "/", true), Page::Status);
        assert_eq!(decide(&get, "/", false), Page::AdminOnly);
        assert_eq!(decide(&get, "/metrics?x=1", true), Page::Metrics);
        assert_eq!(decide(&get, "/metrics", false), Page::AdminOnly);
        assert_eq!(decide(&get, "/health", false), Page::Health);
        assert_eq!(decide(&Method::Head, "/health", false), Page::Health);
        assert_eq!(decide(&get, "/proxy.pac", false), Page::Pac);
        assert_eq!(decide(&get, "/wpad.dat", false), Page::Pac);
        assert_eq!(decide(&get, "/nothing", true), Page::NotFound);
        assert_eq!(
            decide(&Method::Post, "/health", true),
            Page::MethodNotAllowed
        );
        assert_eq!(decide(&Method::Post, "/nothing", true), Page::NotFound);
        let purge = Method::parse("PURGE").unwrap();
        assert_eq!(decide(&purge, "/anything", true), Page::Purge);
        assert_eq!(decide(&purge, "/", false), Page::AdminOnly);
        assert!(
            !is_purge(&Method::parse("purge").unwrap()),
            "methods are case-sensitive"
        );
    }
}
