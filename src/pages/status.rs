//! The status page (`/`): what larder is doing, for a person, at a glance.
//!
//! Plain HTML5 with its style inline: no script, nothing loaded from elsewhere, one
//! column on a phone and several on a wide screen. Every value that goes into the
//! page is escaped (host names come from clients).

use std::fmt::Write;

use super::text::{bytes, duration, grouped, html_escape, percent, shorten, utc_date, utc_time};
use crate::stats::{CacheFigures, Snapshot, Totals};

/// The content type the status page is served with.
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Hosts shown in the "top hosts" list.
const TOP_HOSTS: usize = 10;

/// Longest host name shown whole; the table keeps at most 62 bytes anyway.
const HOST_SHOWN: usize = 64;

/// The page's style: system fonts, cards that wrap into one column on a phone, long
/// words (host names) broken rather than widening the page.
const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1d1d1f;--bg:#fafafa;--card:#fff;--line:#ddd;--muted:#666;--warn-bg:#fff1d6;--warn-fg:#7a4b00;--warn-line:#e8a33d}\
@media (prefers-color-scheme:dark){:root{--fg:#eee;--bg:#161616;--card:#222;--line:#3a3a3a;--muted:#aaa;--warn-bg:#3d2b00;--warn-fg:#ffd27a;--warn-line:#b8801f}}\
*{box-sizing:border-box}\
body{margin:0;padding:1rem;font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg);overflow-wrap:anywhere}\
main{max-width:70rem;margin:0 auto}\
h1{font-size:1.5rem;margin:0 0 .25rem}\
h2{font-size:1.05rem;margin:0 0 .5rem}\
h3{font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);margin:.75rem 0 .25rem}\
h2+h3{margin-top:0}\
p{margin:.25rem 0}\
.muted{color:var(--muted)}\
.banner{padding:.75rem 1rem;margin:1rem 0;border:2px solid var(--warn-line);border-radius:.5rem;background:var(--warn-bg);color:var(--warn-fg);font-weight:600}\
.warn{color:var(--warn-fg);background:var(--warn-bg);padding:0 .25rem;border-radius:.25rem;font-weight:600}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,18rem),1fr));gap:1rem;margin-top:1rem}\
section{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.75rem 1rem;min-width:0}\
dl{display:grid;grid-template-columns:auto 1fr;gap:.2rem .75rem;margin:0}\
dt{color:var(--muted)}\
dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}\
ol{margin:0;padding-left:1.5rem}\
li{margin:.15rem 0}\
li small{font-variant-numeric:tabular-nums}\
.bar{height:.5rem;background:var(--line);border-radius:.25rem;overflow:hidden;margin:.25rem 0 .5rem}\
.bar div{height:100%;background:#3b82f6}\
code{font-size:.95em}\
footer{margin-top:1.5rem}\
a{color:#2f6fdd}";

/// The status page for `s`.
pub fn status_html(s: &Snapshot) -> String {
    let st = s.stats;
    let mut page = String::with_capacity(8 * 1024);
    page.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>larder status</title>\n<style>",
    );
    page.push_str(STYLE);
    page.push_str("</style>\n</head>\n<body>\n<main>\n");

    // Writing to a String cannot fail: the fmt::Results below carry nothing.
    let _ = write!(
        page,
        "<h1>larder {}</h1>\n<p class=\"muted\">up {} (since {})",
        html_escape(s.version),
        duration(s.uptime()),
        utc_date(st.started_unix)
    );
    if !s.listen.is_empty() {
        page.push_str(" · listening on ");
        for (i, addr) in s.listen.iter().enumerate() {
            if i > 0 {
                page.push_str(", ");
            }
            let _ = write!(page, "<code>{}</code>", html_escape(&addr.to_string()));
        }
    }
    page.push_str("</p>\n");

    if s.draining {
        page.push_str(
            "<p class=\"banner\" role=\"alert\">Stopping: larder accepts no new connections \
             and closes once the open ones are done.</p>\n",
        );
    }
    let paused_until = s
        .cache
        .as_ref()
        .and_then(|c| c.paused_until)
        .filter(|&until| until > s.now_unix);
    if let Some(until) = paused_until {
        let _ = writeln!(
            page,
            "<p class=\"banner\" role=\"alert\">Storing is paused after a cache write error, \
             until {} (in {}): responses are relayed but not stored; hits are still served.</p>",
            utc_time(until),
            duration(until - s.now_unix)
        );
    }

    page.push_str("<div class=\"grid\">\n");
    requests_section(&mut page, s);
    connections_section(&mut page, s);
    parents_section(&mut page, s);
    cache_section(&mut page, s.cache.as_ref(), s.now_unix, st.hit_bytes);
    hosts_section(&mut page, s);
    page.push_str("</div>\n");

    page.push_str(
        "<footer class=\"muted\"><a href=\"/metrics\">/metrics</a> (Prometheus) · \
         <a href=\"/proxy.pac\">/proxy.pac</a> (proxy auto-config for browsers)</footer>\n\
         </main>\n</body>\n</html>\n",
    );
    page
}

/// Requests and hit ratios, since start-up and over the last minute.
fn requests_section(page: &mut String, s: &Snapshot) {
    let st = s.stats;
    let since_start = Totals {
        requests: st.requests_total(),
        hits: st.hits_total(),
        bytes: st.bytes_to_clients,
        hit_bytes: st.hit_bytes,
    };
    let minute = st.recent.last_minute(s.now_unix);
    page.push_str("<section>\n<h2>Requests</h2>\n");
    for (label, t) in [("Since start", since_start), ("Last minute", minute)] {
        let _ = write!(
            page,
            "<h3>{label}</h3>\n<dl>\n\
             <dt>requests</dt><dd>{}</dd>\n\
             <dt>hit ratio (requests)</dt><dd>{}</dd>\n\
             <dt>hit ratio (bytes)</dt><dd>{}</dd>\n\
             <dt>sent to clients</dt><dd>{}</dd>\n",
            grouped(t.requests),
            percent(t.hits, t.requests),
            percent(t.hit_bytes, t.bytes),
            bytes(t.bytes),
        );
        if label == "Since start" {
            let _ = write!(
                page,
                "<dt>read from upstream</dt><dd>{}</dd>\n\
                 <dt>blocked</dt><dd>{}</dd>\n\
                 <dt>DNS failures</dt><dd>{}</dd>\n",
                bytes(st.bytes_from_upstream),
                grouped(st.blocked),
                grouped(st.dns_failures),
            );
        }
        page.push_str("</dl>\n");
    }
    page.push_str("</section>\n");
}

/// Client connections, upstream connections, tunnels.
fn connections_section(page: &mut String, s: &Snapshot) {
    let st = s.stats;
    let at_limit = s.max_conns > 0 && s.conns_open >= s.max_conns;
    let open = if at_limit {
        format!(
            "<span class=\"warn\">{} (at the limit)</span>",
            grouped(s.conns_open)
        )
    } else {
        grouped(s.conns_open)
    };
    let _ = write!(
        page,
        "<section>\n<h2>Connections</h2>\n<dl>\n\
         <dt>clients now</dt><dd>{open}</dd>\n\
         <dt>peak</dt><dd>{}</dd>\n\
         <dt>limit</dt><dd>{}</dd>\n\
         <dt>accepted</dt><dd>{}</dd>\n\
         <dt>upstream busy</dt><dd>{}</dd>\n\
         <dt>upstream idle (pool)</dt><dd>{}</dd>\n\
         <dt>tunnels open</dt><dd>{}</dd>\n\
         <dt>tunnels since start</dt><dd>{}</dd>\n\
         </dl>\n</section>\n",
        grouped(st.conns_peak),
        grouped(s.max_conns),
        grouped(st.conns_accepted),
        grouped(s.upstreams_busy),
        grouped(s.upstreams_idle),
        grouped(s.tunnels_open),
        grouped(st.tunnels),
    );
}

/// The parent proxies, up or down (nothing without parents). A parent is shown as
/// `host:port`, never with its credentials.
fn parents_section(page: &mut String, s: &Snapshot) {
    if s.parents.is_empty() {
        return;
    }
    page.push_str("<section>\n<h2>Parent proxies</h2>\n<dl>\n");
    for (name, up) in s.parents {
        let state = if *up {
            "up"
        } else {
            "<span class=\"warn\">down</span>"
        };
        let _ = writeln!(
            page,
            "<dt><code>{}</code></dt><dd>{state}</dd>",
            html_escape(name)
        );
    }
    page.push_str("</dl>\n</section>\n");
}

/// The cache file: fill, objects, oldest object, write errors.
fn cache_section(page: &mut String, cache: Option<&CacheFigures>, now: u64, saved: u64) {
    page.push_str("<section>\n<h2>Cache</h2>\n");
    let Some(c) = cache else {
        page.push_str(
            "<p>larder runs without a cache: every request goes upstream.</p>\n</section>\n",
        );
        return;
    };
    // Tenths of a percent, for the bar's width.
    let fill = if c.capacity == 0 {
        0
    } else {
        (u128::from(c.live_bytes) * 1000 / u128::from(c.capacity)).min(1000)
    };
    let _ = write!(
        page,
        "<p>{} of {} ({})</p>\n\
         <div class=\"bar\" role=\"img\" aria-label=\"cache fill\"><div style=\"width:{}.{}%\"></div></div>\n\
         <dl>\n\
         <dt>objects</dt><dd>{}</dd>\n\
         <dt>oldest object</dt><dd>{}</dd>\n\
         <dt>bandwidth saved</dt><dd>{}</dd>\n",
        bytes(c.live_bytes),
        bytes(c.capacity),
        percent(c.live_bytes, c.capacity),
        fill / 10,
        fill % 10,
        grouped(c.objects),
        match c.oldest {
            Some(at) => format!(
                "{} ago<br><span class=\"muted\">{}</span>",
                duration(now.saturating_sub(at)),
                utc_date(at)
            ),
            None => "–".to_string(),
        },
        bytes(saved),
    );
    let errors = if c.write_errors > 0 {
        format!("<span class=\"warn\">{}</span>", grouped(c.write_errors))
    } else {
        "0".to_string()
    };
    let storing = match c.paused_until.filter(|&until| until > now) {
        Some(_) => "<span class=\"warn\">paused</span>",
        None => "yes",
    };
    let _ = write!(
        page,
        "<dt>write errors</dt><dd>{errors}</dd>\n\
         <dt>storing</dt><dd>{storing}</dd>\n\
         </dl>\n</section>\n"
    );
}

/// The hosts that took the most bytes.
fn hosts_section(page: &mut String, s: &Snapshot) {
    page.push_str("<section>\n<h2>Top hosts by bytes</h2>\n");
    let top = s.stats.hosts.top(TOP_HOSTS);
    if top.is_empty() {
        page.push_str("<p class=\"muted\">No requests yet.</p>\n</section>\n");
        return;
    }
    page.push_str("<ol>\n");
    for row in top {
        let requests = if row.requests == 1 {
            "1 request".to_string()
        } else {
            format!("{} requests", grouped(row.requests))
        };
        let _ = writeln!(
            page,
            "<li>{}<br><small class=\"muted\">{} · {requests}</small></li>",
            html_escape(&shorten(&row.host, HOST_SHOWN)),
            bytes(row.bytes),
        );
    }
    page.push_str("</ol>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::ResultCode;
    use crate::stats::Stats;
    use std::net::SocketAddr;

    const NOW: u64 = 1_700_011_520; // 3 h 12 min after START
    const START: u64 = 1_700_000_000;

    fn snapshot<'a>(stats: &'a Stats, listen: &'a [SocketAddr]) -> Snapshot<'a> {
        Snapshot {
            version: "0.1.0",
            now_unix: NOW,
            stats,
            conns_open: 5,
            max_conns: 1024,
            tunnels_open: 2,
            upstreams_idle: 7,
            upstreams_busy: 3,
            listen,
            draining: false,
            parents: &[],
            cache: Some(CacheFigures {
                objects: 1234,
                live_bytes: 64 << 20,
                capacity: 256 << 20,
                oldest: Some(NOW - 2 * 86_400 - 4 * 3600),
                write_errors: 0,
                paused_until: None,
                synced_at: None,
            }),
        }
    }

    fn stats() -> Stats {
        let mut st = Stats::new(START);
        // Long ago: counted since start, not in the last minute.
        st.record(START + 10, ResultCode::Miss, 3000, "old.example");
        // The last minute: one hit of 1000 bytes out of 4000.
        st.record(NOW - 5, ResultCode::Hit, 1000, "a.example");
        st.record(NOW - 5, ResultCode::Miss, 3000, "b.example");
        st.conns_peak = 40;
        st.conns_accepted = 5000;
        st.tunnels = 17;
        st.blocked = 6;
        st.dns_failures = 8;
        st.bytes_from_upstream = 6 << 20;
        st
    }

    #[test]
    fn parents_are_listed_up_or_down_only_when_there_are_some() {
        let st = stats();
        let page = status_html(&snapshot(&st, &[]));
        assert!(!page.contains("Parent proxies"));
        let parents = [("a:3128".to_string(), true), ("b:3128".to_string(), false)];
        let mut s = snapshot(&st, &[]);
        s.parents = &parents;
        let page = status_html(&s);
        assert!(
            page.contains("<dt><code>a:3128</code></dt><dd>up</dd>"),
            "{page}"
        );
        assert!(
            page.contains("<dt><code>b:3128</code></dt><dd><span class=\"warn\">down</span></dd>"),
            "{page}"
        );
    }

    #[test]
    fn the_page_is_self_contained_html_for_phones() {
        let st = stats();
        let page = status_html(&snapshot(&st, &[]));
        assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(page
            .contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
        assert!(page.contains("<meta charset=\"utf-8\">"));
        assert!(!page.to_ascii_lowercase().contains("<script"));
        assert!(!page.contains("<table"), "no table to overflow a phone");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing external"
        );
        assert!(!page.contains(" src="), "nothing loaded");
        assert!(page.ends_with("</html>\n"));
        assert!(page.contains("<a href=\"/metrics\">") && page.contains("<a href=\"/proxy.pac\">"));
    }

    #[test]
    fn the_page_reads_in_human_units() {
        let st = stats();
        let listen: Vec<SocketAddr> = vec![
            "127.0.0.1:3128".parse().unwrap(),
            "[::1]:3128".parse().unwrap(),
        ];
        let page = status_html(&snapshot(&st, &listen));
        for expected in [
            "<h1>larder 0.1.0</h1>",
            "up 3 h 12 min (since 2023-11-14 22:13 UTC)",
            "listening on <code>127.0.0.1:3128</code>, <code>[::1]:3128</code>",
            // Since start: 3 requests, 1 hit; 1000 of 7000 bytes.
            "<h3>Since start</h3>\n<dl>\n<dt>requests</dt><dd>3</dd>\n\
             <dt>hit ratio (requests)</dt><dd>33.3%</dd>\n\
             <dt>hit ratio (bytes)</dt><dd>14.3%</dd>\n<dt>sent to clients</dt><dd>6.8 KiB</dd>",
            // The last minute: 2 requests, 1 hit; 1000 of 4000 bytes.
            "<h3>Last minute</h3>\n<dl>\n<dt>requests</dt><dd>2</dd>\n\
             <dt>hit ratio (requests)</dt><dd>50.0%</dd>\n\
             <dt>hit ratio (bytes)</dt><dd>25.0%</dd>\n<dt>sent to clients</dt><dd>3.9 KiB</dd>\n</dl>",
            "<dt>read from upstream</dt><dd>6.0 MiB</dd>",
            "<dt>blocked</dt><dd>6</dd>",
            "<dt>DNS failures</dt><dd>8</dd>",
            "<dt>clients now</dt><dd>5</dd>",
            "<dt>peak</dt><dd>40</dd>",
            "<dt>limit</dt><dd>1,024</dd>",
            "<dt>accepted</dt><dd>5,000</dd>",
            "<dt>upstream busy</dt><dd>3</dd>",
            "<dt>upstream idle (pool)</dt><dd>7</dd>",
            "<dt>tunnels open</dt><dd>2</dd>",
            "<dt>tunnels since start</dt><dd>17</dd>",
            "<p>64.0 MiB of 256.0 MiB (25.0%)</p>",
            "style=\"width:25.0%\"",
            "<dt>objects</dt><dd>1,234</dd>",
            "<dt>oldest object</dt><dd>2 d 4 h ago<br><span class=\"muted\">2023-11-12 21:25 UTC</span></dd>",
            "<dt>bandwidth saved</dt><dd>1000 B</dd>",
            "<dt>write errors</dt><dd>0</dd>",
            "<dt>storing</dt><dd>yes</dd>",
        ] {
            assert!(page.contains(expected), "{expected:?} missing in\n{page}");
        }
        assert!(
            !page.contains("class=\"banner\""),
            "no banner when all is well"
        );
        assert!(
            !page.contains("class=\"warn\""),
            "no warning when all is well"
        );
    }

    #[test]
    fn top_hosts_are_listed_most_bytes_first_and_escaped() {
        let mut st = stats();
        st.record(
            NOW,
            ResultCode::Miss,
            1 << 30,
            "<script>alert('x')</script>.example",
        );
        for i in 0..20 {
            st.record(NOW, ResultCode::Miss, 10 + i, &format!("h{i}.example"));
        }
        let page = status_html(&snapshot(&st, &[]));
        assert!(!page.contains("<script"));
        let list = page
            .split("<ol>\n")
            .nth(1)
            .unwrap()
            .split("</ol>")
            .next()
            .unwrap();
        let rows: Vec<&str> = list.lines().collect();
        assert_eq!(rows.len(), 10, "{list}");
        assert_eq!(
            rows[0],
            "<li>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;.example<br>\
             <small class=\"muted\">1.0 GiB · 1 request</small></li>"
        );
        assert!(rows[1].contains("b.example"), "{list}");
    }

    #[test]
    fn hosts_show_their_request_counts() {
        let mut st = Stats::new(START);
        st.hosts.add("one.example", 5);
        st.hosts.add("many.example", 1);
        st.hosts.add("many.example", 1);
        let page = status_html(&snapshot(&st, &[]));
        assert!(
            page.contains("<li>one.example<br><small class=\"muted\">5 B · 1 request</small></li>")
        );
        assert!(page
            .contains("<li>many.example<br><small class=\"muted\">2 B · 2 requests</small></li>"));
    }

    #[test]
    fn stopping_and_paused_storing_are_shown_prominently() {
        let st = stats();
        let mut s = snapshot(&st, &[]);
        s.draining = true;
        if let Some(c) = s.cache.as_mut() {
            c.write_errors = 2;
            c.paused_until = Some(NOW + 90);
        }
        let page = status_html(&s);
        assert!(
            page.contains("<p class=\"banner\" role=\"alert\">Stopping:"),
            "{page}"
        );
        assert!(
            page.contains(
                "<p class=\"banner\" role=\"alert\">Storing is paused after a cache write error, \
             until 01:26:50 UTC (in 1 min 30 s)"
            ),
            "{page}"
        );
        assert!(page.contains("<dt>write errors</dt><dd><span class=\"warn\">2</span></dd>"));
        assert!(page.contains("<dt>storing</dt><dd><span class=\"warn\">paused</span></dd>"));
        // The banners come before the figures.
        assert!(page.find("class=\"banner\"") < page.find("<h2>"));
    }

    #[test]
    fn a_pause_that_has_passed_is_not_shown() {
        let st = stats();
        let mut s = snapshot(&st, &[]);
        if let Some(c) = s.cache.as_mut() {
            c.paused_until = Some(NOW);
        }
        let page = status_html(&s);
        assert!(!page.contains("banner\""));
        assert!(page.contains("<dt>storing</dt><dd>yes</dd>"));
    }

    #[test]
    fn connections_at_the_limit_are_flagged() {
        let st = stats();
        let mut s = snapshot(&st, &[]);
        s.conns_open = 1024;
        let page = status_html(&s);
        assert!(page.contains("<dd><span class=\"warn\">1,024 (at the limit)</span></dd>"));
    }

    #[test]
    fn without_a_cache_or_traffic_the_page_says_so() {
        let st = Stats::new(NOW);
        let mut s = snapshot(&st, &[]);
        s.cache = None;
        let page = status_html(&s);
        assert!(page.contains("larder runs without a cache"));
        assert!(page.contains("No requests yet."));
        assert!(page.contains("up 0 s"));
        assert!(page.contains("<dt>hit ratio (requests)</dt><dd>–</dd>"));
        assert!(!page.contains("<ol>"));
    }

    #[test]
    fn an_empty_or_odd_cache_does_not_break_the_page() {
        let st = stats();
        let mut s = snapshot(&st, &[]);
        s.cache = Some(CacheFigures {
            objects: 0,
            live_bytes: 5,
            capacity: 0,
            oldest: Some(NOW + 100), // a clock that went back
            write_errors: 0,
            paused_until: None,
            synced_at: None,
        });
        let page = status_html(&s);
        assert!(page.contains("style=\"width:0.0%\""));
        assert!(page.contains("<dt>oldest object</dt><dd>0 s ago"));
        s.cache = Some(CacheFigures {
            live_bytes: 10,
            capacity: 5,
            ..CacheFigures::default()
        });
        let page = status_html(&s);
        assert!(
            page.contains("style=\"width:100.0%\""),
            "the bar stays in its box"
        );
        assert!(page.contains("<dt>oldest object</dt><dd>–</dd>"));
    }
}
