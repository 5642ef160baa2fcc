//! The small pages: the 404 for a path larder has no page at, and `/health`.

use super::text::{html_escape, shorten};
use crate::stats::Snapshot;

/// The content type of [`not_found_html`].
pub const NOT_FOUND_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The content type of [`health`].
pub const HEALTH_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Longest part of a path the 404 page repeats.
const PATH_SHOWN: usize = 200;

/// The body of a 404 for `path`, a path larder has no page at. It points to
/// `/proxy.pac`, and to the status page at `/` when `admin` (the client may see it).
/// The path is shortened to 200 characters and escaped.
pub fn not_found_html(path: &str, admin: bool) -> String {
    let status = if admin {
        "<li><a href=\"/\">/</a>: larder's status page (also <a href=\"/metrics\">/metrics</a>)</li>\n"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>404 Not Found</title>\n\
         <style>body{{margin:0;padding:1rem;font:16px/1.45 system-ui,sans-serif;overflow-wrap:anywhere}}</style>\n\
         </head>\n<body>\n<h1>404 Not Found</h1>\n\
         <p>larder is a proxy and has no page at <code>{}</code>. Its pages:</p>\n<ul>\n\
         {status}\
         <li><a href=\"/proxy.pac\">/proxy.pac</a>: the proxy auto-config file for browsers</li>\n\
         </ul>\n<hr>\n<address>larder</address>\n</body>\n</html>\n",
        html_escape(&shorten(path, PATH_SHOWN))
    )
}

/// `/health`, for load balancers: 200 `ok` while larder serves and its cache can
/// store; 503 with the reason while storing is paused after a write error (a full
/// disk, say: requests are still forwarded, but the node is not well) or once larder
/// is stopping (so a balancer moves clients elsewhere while open requests finish).
pub fn health(s: &Snapshot) -> (u16, String) {
    if s.draining {
        return (503, "stopping\n".to_owned());
    }
    let paused = s
        .cache
        .as_ref()
        .and_then(|c| c.paused_until)
        .filter(|&until| until > s.now_unix);
    match paused {
        Some(until) => (
            503,
            format!(
                "cache storing paused for {} s after a write error\n",
                until - s.now_unix
            ),
        ),
        None => (200, "ok\n".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{CacheFigures, Stats};

    fn snapshot(stats: &Stats) -> Snapshot<'_> {
        Snapshot {
            version: "0.1.0",
            now_unix: 100,
            stats,
            conns_open: 0,
            max_conns: 10,
            tunnels_open: 0,
            upstreams_idle: 0,
            upstreams_busy: 0,
            listen: &[],
            draining: false,
            parents: &[],
            cache: None,
        }
    }

    #[test]
    fn not_found_links_the_pac_file_and_the_status_page_for_admins() {
        let page = not_found_html("/nope", true);
        assert!(page.contains("<title>404 Not Found</title>"));
        assert!(page.contains("no page at <code>/nope</code>"));
        assert!(page.contains("<a href=\"/proxy.pac\">"));
        assert!(page.contains("<a href=\"/\">"));
        assert!(page.contains("name=\"viewport\""));
        let page = not_found_html("/nope", false);
        assert!(page.contains("<a href=\"/proxy.pac\">"));
        assert!(!page.contains("<a href=\"/\">"), "{page}");
        assert!(!page.contains("/metrics"), "{page}");
    }

    #[test]
    fn not_found_escapes_and_shortens_the_path() {
        let page = not_found_html("/<script>alert(\"x\")</script>&'", false);
        assert!(!page.contains("<script"));
        assert!(page
            .contains("<code>/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</code>"));
        let long = format!("/{}", "a".repeat(8000));
        let page = not_found_html(&long, false);
        assert!(page.len() < 1500, "{}", page.len());
        assert!(page.contains(&format!("<code>/{}…</code>", "a".repeat(199))));
    }

    #[test]
    fn health_says_ok_until_stopping() {
        let st = Stats::new(0);
        let mut s = snapshot(&st);
        assert_eq!(health(&s), (200, "ok\n".to_owned()));
        s.draining = true;
        assert_eq!(health(&s), (503, "stopping\n".to_owned()));
    }

    #[test]
    fn health_is_503_while_storing_is_paused() {
        let st = Stats::new(0);
        let mut s = snapshot(&st);
        s.cache = Some(CacheFigures {
            paused_until: Some(130),
            synced_at: None,
            ..CacheFigures::default()
        });
        assert_eq!(
            health(&s),
            (
                503,
                "cache storing paused for 30 s after a write error\n".to_owned()
            )
        );
        s.now_unix = 130;
        assert_eq!(health(&s), (200, "ok\n".to_owned()));
    }
}
