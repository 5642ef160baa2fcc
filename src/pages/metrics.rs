//! `/metrics`: larder's counters in the Prometheus text exposition format 0.0.4.
//!
//! Every family has `# HELP` and `# TYPE` lines; names start with `larder_`; counters
//! end in `_total`; label values are escaped as the format says. The cache's figures
//! (`larder_cache_bytes` and the rest) are absent when larder runs without a cache;
//! the hit and miss counters, which count requests, are always there.

use std::fmt::Write;

use crate::access_log::ResultCode;
use crate::stats::{Denial, Snapshot};

/// The content type `/metrics` is served with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Result codes counted as cache misses: answered by the origin where a cache could
/// have answered (a stale entry the origin replaced, a reload the client forced, a
/// forwarded response the client did not get whole included).
const MISSES: [ResultCode; 4] = [
    ResultCode::Miss,
    ResultCode::RefreshModified,
    ResultCode::ClientRefreshMiss,
    ResultCode::MissAborted,
];

/// `/metrics` for `s`.
pub fn metrics_text(s: &Snapshot) -> String {
    let st = s.stats;
    let mut out = Exposition(String::with_capacity(4096));

    out.family(
        "larder_build_info",
        "gauge",
        "Always 1; the version label says which larder this is.",
    );
    out.sample("larder_build_info", &[("version", s.version)], 1);
    out.gauge(
        "larder_start_time_seconds",
        "When larder started, in seconds since the Unix epoch.",
        st.started_unix,
    );
    out.gauge(
        "larder_draining",
        "1 while larder is stopping: it accepts no new connections and finishes open ones.",
        u64::from(s.draining),
    );

    out.family(
        "larder_requests_total",
        "counter",
        "Requests finished, by Squid result code (the access log's TCP_HIT, TCP_MISS...).",
    );
    for code in ResultCode::ALL {
        out.sample(
            "larder_requests_total",
            &[("result", code.as_str())],
            st.requests(code),
        );
    }
    out.counter(
        "larder_cache_hits_total",
        "Requests answered from the cache (TCP_HIT, TCP_IMS_HIT, TCP_REFRESH_UNMODIFIED).",
        st.hits_total(),
    );
    out.counter(
        "larder_cache_misses_total",
        "Requests the origin answered where the cache could have (TCP_MISS, \
         TCP_REFRESH_MODIFIED, TCP_CLIENT_REFRESH_MISS, TCP_MISS_ABORTED).",
        MISSES.iter().map(|&code| st.requests(code)).sum(),
    );
    out.counter(
        "larder_client_sent_bytes_total",
        "Bytes written to clients, heads included (for tunnels, what went to the client).",
        st.bytes_to_clients,
    );
    out.counter(
        "larder_cache_served_bytes_total",
        "Bytes written to clients from the cache: the bandwidth the cache saved.",
        st.hit_bytes,
    );
    out.counter(
        "larder_upstream_received_bytes_total",
        "Bytes read from upstream servers, heads and tunnels included.",
        st.bytes_from_upstream,
    );

    out.gauge(
        "larder_client_connections",
        "Client connections open now.",
        s.conns_open,
    );
    out.gauge(
        "larder_client_connections_limit",
        "Client connections allowed at once (--max-conns).",
        s.max_conns,
    );
    out.gauge(
        "larder_client_connections_peak",
        "The most client connections open at once since start-up.",
        st.conns_peak,
    );
    out.counter(
        "larder_client_connections_accepted_total",
        "Client connections accepted.",
        st.conns_accepted,
    );
    out.family(
        "larder_upstream_connections",
        "gauge",
        "Connections to upstream servers: idle in the pool, or busy with a request.",
    );
    out.sample(
        "larder_upstream_connections",
        &[("state", "idle")],
        s.upstreams_idle,
    );
    out.sample(
        "larder_upstream_connections",
        &[("state", "busy")],
        s.upstreams_busy,
    );
    out.counter(
        "larder_tunnels_established_total",
        "CONNECT tunnels established.",
        st.tunnels,
    );
    out.gauge(
        "larder_tunnels_open",
        "CONNECT tunnels open now.",
        s.tunnels_open,
    );
    if !s.parents.is_empty() {
        out.family(
            "larder_parent_up",
            "gauge",
            "1 for a parent proxy in use, 0 for one left out after it failed (--parent-retry).",
        );
        for (name, up) in s.parents {
            out.sample("larder_parent_up", &[("parent", name)], u64::from(*up));
        }
    }
    out.counter(
        "larder_dns_failures_total",
        "Host names that did not resolve (each failed lookup a request waited for).",
        st.dns_failures,
    );
    out.counter(
        "larder_blocked_requests_total",
        "Requests refused by --block, --block-list or --block-ip.",
        st.blocked,
    );
    out.family(
        "larder_denied_requests_total",
        "counter",
        "Requests refused (TCP_DENIED), by reason: client (--allow, --deny), blocked, \
         connect-port (--connect-ports), http-port (--http-ports), destination (loopback, \
         link-local or this machine's own address; --allow-to).",
    );
    for why in Denial::ALL {
        out.sample(
            "larder_denied_requests_total",
            &[("reason", why.as_str())],
            st.denials(why),
        );
    }
    out.counter(
        "larder_client_connections_over_limit_total",
        "Client connections closed at accept because their client had --max-conns-per-client open.",
        st.conns_over_client_limit,
    );
    out.counter(
        "larder_background_revalidations_total",
        "Revalidations larder made on its own behind stale answers (stale-while-revalidate); not counted in larder_requests_total.",
        st.background_revalidations,
    );

    if let Some(cache) = &s.cache {
        out.gauge(
            "larder_cache_bytes",
            "Bytes of the objects stored in the cache file.",
            cache.live_bytes,
        );
        out.gauge(
            "larder_cache_capacity_bytes",
            "Size of the cache file (--cache-size).",
            cache.capacity,
        );
        out.gauge(
            "larder_cache_objects",
            "Objects stored in the cache.",
            cache.objects,
        );
        if let Some(oldest) = cache.oldest {
            out.gauge(
                "larder_cache_oldest_object_timestamp_seconds",
                "When the oldest object in the cache was stored, in seconds since the Unix epoch.",
                oldest,
            );
        }
        out.counter(
            "larder_cache_write_errors_total",
            "Failed writes to the cache file.",
            cache.write_errors,
        );
        if let Some(synced) = cache.synced_at {
            out.gauge(
                "larder_cache_last_sync_timestamp_seconds",
                "When the cache file was last synced to the disk (what was stored before survives a power cut), in seconds since the Unix epoch.",
                synced,
            );
        }
        let paused = cache.paused_until.is_some_and(|until| until > s.now_unix);
        out.gauge(
            "larder_cache_storing_paused",
            "1 while storing is paused after a cache write error (hits are still served).",
            u64::from(paused),
        );
    }
    out.0
}

/// The text being written.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = write!(
            self.0,
            "# HELP {name} {}\n# TYPE {name} {kind}\n",
            escape_help(help)
        );
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape_label(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }
}

/// A label value as the format wants it: backslash, double quote and line feed
/// escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

/// A HELP text as the format wants it: backslash and line feed escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{CacheFigures, Stats};
    use std::net::SocketAddr;

    fn snapshot<'a>(
        stats: &'a Stats,
        listen: &'a [SocketAddr],
        cache: Option<CacheFigures>,
    ) -> Snapshot<'a> {
        Snapshot {
            version: "0.1.0",
            now_unix: 1_700_000_100,
            stats,
            conns_open: 3,
            max_conns: 1000,
            tunnels_open: 1,
            upstreams_idle: 4,
            upstreams_busy: 2,
            listen,
            draining: false,
            parents: &[],
            cache,
        }
    }

    fn busy_stats() -> Stats {
        let mut st = Stats::new(1_700_000_000);
        st.record(1_700_000_050, ResultCode::Miss, 1000, "a.example");
        st.record(1_700_000_060, ResultCode::Hit, 400, "a.example");
        st.record(1_700_000_060, ResultCode::ImsHit, 100, "a.example");
        st.record(
            1_700_000_070,
            ResultCode::ClientRefreshMiss,
            10,
            "b.example",
        );
        st.record(1_700_000_070, ResultCode::Tunnel, 5000, "c.example");
        st.record(1_700_000_071, ResultCode::Denied, 300, "d.example");
        st.bytes_from_upstream = 7000;
        st.conns_accepted = 42;
        st.conns_peak = 9;
        st.dns_failures = 2;
        st.blocked = 1;
        st.background_revalidations = 3;
        st.tunnels = 1;
        st.deny(crate::stats::Denial::Destination);
        st.deny(crate::stats::Denial::Destination);
        st.deny(crate::stats::Denial::HttpPort);
        st.conns_over_client_limit = 5;
        st
    }

    fn cache() -> CacheFigures {
        CacheFigures {
            objects: 12,
            live_bytes: 65_536,
            capacity: 1 << 20,
            oldest: Some(1_699_990_000),
            write_errors: 3,
            paused_until: Some(1_700_000_130),
            synced_at: Some(1_700_000_095),
        }
    }

    /// The value of the sample line that starts with `series` followed by a space.
    fn value(text: &str, series: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn parents_are_up_or_down_by_host_and_port_and_absent_without_parents() {
        let st = busy_stats();
        let text = metrics_text(&snapshot(&st, &[], None));
        assert!(!text.contains("larder_parent_up"));
        let parents = [
            ("a:3128".to_string(), true),
            ("[::1]:8080".to_string(), false),
        ];
        let mut s = snapshot(&st, &[], None);
        s.parents = &parents;
        let text = metrics_text(&s);
        assert_eq!(value(&text, "larder_parent_up{parent=\"a:3128\"}"), Some(1));
        assert_eq!(
            value(&text, "larder_parent_up{parent=\"[::1]:8080\"}"),
            Some(0)
        );
        assert!(text.contains("# TYPE larder_parent_up gauge\n"));
    }

    #[test]
    fn every_result_code_has_a_series_zeros_included() {
        let st = busy_stats();
        let text = metrics_text(&snapshot(&st, &[], None));
        for code in ResultCode::ALL {
            let series = format!("larder_requests_total{{result=\"{}\"}}", code.as_str());
            assert_eq!(value(&text, &series), Some(st.requests(code)), "{series}");
        }
        assert_eq!(
            value(
                &text,
                "larder_requests_total{result=\"TCP_REFRESH_MODIFIED\"}"
            ),
            Some(0)
        );
        assert_eq!(
            value(&text, "larder_requests_total{result=\"TCP_HIT\"}"),
            Some(1)
        );
    }

    #[test]
    fn figures_come_from_the_snapshot() {
        let st = busy_stats();
        let listen = ["127.0.0.1:3128".parse().unwrap()];
        let text = metrics_text(&snapshot(&st, &listen, Some(cache())));
        for (series, expected) in [
            ("larder_build_info{version=\"0.1.0\"}", 1),
            ("larder_start_time_seconds", 1_700_000_000),
            ("larder_draining", 0),
            ("larder_cache_hits_total", 2),
            ("larder_cache_misses_total", 2),
            ("larder_client_sent_bytes_total", 6810),
            ("larder_cache_served_bytes_total", 500),
            ("larder_upstream_received_bytes_total", 7000),
            ("larder_client_connections", 3),
            ("larder_client_connections_limit", 1000),
            ("larder_client_connections_peak", 9),
            ("larder_client_connections_accepted_total", 42),
            ("larder_upstream_connections{state=\"idle\"}", 4),
            ("larder_upstream_connections{state=\"busy\"}", 2),
            ("larder_tunnels_established_total", 1),
            ("larder_tunnels_open", 1),
            ("larder_dns_failures_total", 2),
            ("larder_blocked_requests_total", 1),
            ("larder_background_revalidations_total", 3),
            ("larder_denied_requests_total{reason=\"destination\"}", 2),
            ("larder_denied_requests_total{reason=\"http-port\"}", 1),
            ("larder_denied_requests_total{reason=\"connect-port\"}", 0),
            ("larder_denied_requests_total{reason=\"client\"}", 0),
            ("larder_client_connections_over_limit_total", 5),
            ("larder_cache_bytes", 65_536),
            ("larder_cache_capacity_bytes", 1 << 20),
            ("larder_cache_objects", 12),
            (
                "larder_cache_oldest_object_timestamp_seconds",
                1_699_990_000,
            ),
            ("larder_cache_write_errors_total", 3),
            ("larder_cache_storing_paused", 1),
            ("larder_cache_last_sync_timestamp_seconds", 1_700_000_095),
        ] {
            assert_eq!(value(&text, series), Some(expected), "{series} in\n{text}");
        }
    }

    #[test]
    fn storing_is_not_paused_once_the_pause_has_passed() {
        let st = busy_stats();
        let mut figures = cache();
        figures.paused_until = Some(1_700_000_100);
        let text = metrics_text(&snapshot(&st, &[], Some(figures)));
        assert_eq!(value(&text, "larder_cache_storing_paused"), Some(0));
        let mut figures = cache();
        figures.paused_until = None;
        figures.oldest = None;
        let text = metrics_text(&snapshot(&st, &[], Some(figures)));
        assert_eq!(value(&text, "larder_cache_storing_paused"), Some(0));
        assert!(
            !text.contains("larder_cache_oldest_object"),
            "no object, no age"
        );
    }

    #[test]
    fn without_a_cache_its_figures_are_absent() {
        let st = Stats::new(5);
        let text = metrics_text(&snapshot(&st, &[], None));
        for name in [
            "larder_cache_bytes",
            "larder_cache_capacity_bytes",
            "larder_cache_objects",
            "larder_cache_write_errors_total",
            "larder_cache_storing_paused",
        ] {
            assert!(!text.contains(&format!("{name} ")), "{name} in\n{text}");
        }
        assert_eq!(value(&text, "larder_cache_hits_total"), Some(0));
    }

    #[test]
    fn every_family_has_help_and_type_and_follows_the_naming_rules() {
        let st = busy_stats();
        let text = metrics_text(&snapshot(&st, &[], Some(cache())));
        assert!(text.ends_with('\n'));
        let mut families: Vec<(String, String)> = Vec::new();
        let mut last_help: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(last_help.is_none(), "HELP twice before {name}");
                last_help = Some(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(last_help.take().as_deref(), Some(name), "TYPE after HELP");
                assert!(name.starts_with("larder_"), "{name}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name} {kind}");
                assert!(!families.iter().any(|(n, _)| n == name), "{name} twice");
                families.push((name.to_string(), kind.to_string()));
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(
                    families.last().map(|(n, _)| n.as_str()),
                    Some(name),
                    "a sample of the family just declared: {line}"
                );
            }
        }
        assert!(families.len() >= 24, "{families:?}");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
        let st = Stats::new(0);
        let mut s = snapshot(&st, &[], None);
        s.version = "1.0\"\n\\x";
        let text = metrics_text(&s);
        assert!(text.contains("larder_build_info{version=\"1.0\\\"\\n\\\\x\"} 1\n"));
    }

    #[test]
    fn content_type_names_the_format_version() {
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    }
}
