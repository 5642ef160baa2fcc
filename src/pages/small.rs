//! The small pages: the 404 for a path larder has no page at, and `/health`.

use super::text::{html_escape, shorten};
use crate::stats::Snapshot;

/// The content type of [`not_found_html`].
pub const NOT_FOUND_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The content type of [`health_text`].
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

/// The status code for `/health`: 200 while larder serves, 503 once it is stopping
/// (so a load balancer moves clients elsewhere while open requests finish).
pub fn health_status(s: &Snapshot) -> u16 {
    if s.draining {
        503
    } else {
        200
    }
}

/// The body for `/health`: `ok` or `stopping`, and a second line when storing in the
/// cache is paused (still 200: requests are served).
pub fn health_text(s: &Snapshot) -> String {
    let mut out = String::from(if s.draining { "stopping\n" } else { "ok\n" });
    let paused = s
        .cache
        .as_ref()
        .and_then(|c| c.paused_until)
        .is_some_and(|until| until > s.now_unix);
    if paused {
        out.push_str("cache storing paused after a write error\n");
    }
    out
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
        assert_eq!((health_status(&s), health_text(&s).as_str()), (200, "ok\n"));
        s.draining = true;
        assert_eq!(
            (health_status(&s), health_text(&s).as_str()),
            (503, "stopping\n")
        );
    }

    #[test]
    fn health_mentions_paused_storing() {
        let st = Stats::new(0);
        let mut s = snapshot(&st);
        s.cache = Some(CacheFigures {
            paused_until: Some(130),
            ..CacheFigures::default()
        });
        assert_eq!(health_status(&s), 200);
        assert_eq!(
            health_text(&s),
            "ok\ncache storing paused after a write error\n"
        );
        s.now_unix = 130;
        assert_eq!(health_text(&s), "ok\n");
    }
}
