use crate::pages::pac::PacDirect;
use crate::stats::Snapshot;

pub const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn metrics_text(s: &Snapshot) -> String {
    format!("# HELP larder_requests_total x\n# TYPE larder_requests_total counter\nlarder_requests_total {}\n", s.stats.requests_total())
}

pub fn status_html(s: &Snapshot) -> String {
    format!(
        "<html><body>larder {} requests {}</body></html>\n",
        s.version,
        s.stats.requests_total()
    )
}

pub fn pac_file(proxy: &str, _direct: &[PacDirect]) -> String {
    format!("function FindProxyForURL(url, host) {{ return \"PROXY {proxy}; DIRECT\"; }}\n")
}

pub fn not_found_html(path: &str, admin: bool) -> String {
    format!(
        "<html><body>not found {} {admin}</body></html>\n",
        crate::http::page::html_escape(path)
    )
}
