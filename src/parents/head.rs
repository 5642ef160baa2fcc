//! The request heads larder sends a parent: the request line in absolute form with
//! the parent's own `Proxy-Authorization`, and the CONNECT it opens a tunnel with;
//! and what a parent's answer says about its cache.

use super::rules::ParentSpec;
use crate::http::target::Target;

/// The name larder's parser never forwards from a client (it is for larder), so a
/// line of that name right after the request line is the one larder put there.
const AUTH: &[u8] = b"Proxy-Authorization:";

/// Rewrites the start of `head`, a head the request parser made (request line, then
/// the rest), for the hop it goes to: `to` a parent, the absolute-form target
/// (`GET http://host/path HTTP/1.1`) and that parent's credentials, if any; `None`
/// (straight to the origin), the origin-form target and no credentials. Whatever a
/// previous call put there is replaced, so a request that moves from a parent to the
/// next one, or to the origin, carries only what its hop may see.
pub fn aim(head: &mut Vec<u8>, target: &Target, to: Option<&ParentSpec>) {
    let Some(line_end) = head.windows(2).position(|w| w == b"\r\n").map(|p| p + 2) else {
        return;
    };
    let Some(method_end) = head.iter().position(|&b| b == b' ') else {
        return;
    };
    const VERSION: &[u8] = b" HTTP/1.1\r\n";
    if line_end < method_end + 1 + VERSION.len() {
        return;
    }
    let mut end = line_end;
    let next = head.get(line_end..).unwrap_or(&[]);
    if next
        .get(..AUTH.len())
        .is_some_and(|n| n.eq_ignore_ascii_case(AUTH))
    {
        end += next
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(next.len(), |p| p + 2);
    }
    let form = match to {
        Some(_) => target.url(),
        None => target.path_and_query(),
    };
    let mut start = Vec::with_capacity(method_end + form.len() + VERSION.len() + 96);
    start.extend_from_slice(head.get(..=method_end).unwrap_or(&[]));
    start.extend_from_slice(form.as_bytes());
    start.extend_from_slice(VERSION);
    if let Some(line) = to.and_then(ParentSpec::auth_line) {
        start.extend_from_slice(line);
    }
    head.splice(..end, start);
}

/// The head that asks parent `to` for a tunnel to `target` (authority form): the
/// CONNECT line, Host, the parent's credentials, and larder's `Via` field line
/// (`via_line`, CRLF included: so a parent
/// that is, through others, larder itself refuses the loop).
pub fn connect_head(mut out: Vec<u8>, target: &Target, to: &ParentSpec, via_line: &str) -> Vec<u8> {
    out.clear();
    let authority = target.host_header();
    out.extend_from_slice(b"CONNECT ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(line) = to.auth_line() {
        out.extend_from_slice(line);
    }
    out.extend_from_slice(via_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether a parent's response head says the parent answered from its cache: its
/// own `Cache-Status` member (the last one, RFC 9211 §2) has `hit`, or the last
/// `X-Cache` (Squid's) begins with `HIT`. larder has no ICP: this is how it knows a
/// parent hit, for the access log's `PARENT_HIT`.
pub fn says_hit(head: &[u8]) -> bool {
    let mut status: Option<&[u8]> = None;
    let mut x_cache: Option<&[u8]> = None;
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or(&[]);
        if name.eq_ignore_ascii_case(b"cache-status") {
            status = Some(value);
        } else if name.eq_ignore_ascii_case(b"x-cache") {
            x_cache = Some(value);
        }
    }
    if let Some(v) = status {
        let last = v.rsplit(|&b| b == b',').next().unwrap_or(&[]);
        return last
            .split(|&b| b == b';')
            .skip(1)
            .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"hit"));
    }
    x_cache.is_some_and(|v| {
        let last = v.rsplit(|&b| b == b',').next().unwrap_or(&[]).trim_ascii();
        last.get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"HIT"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::target::{parse_absolute, parse_authority};

    fn head_for(url: &str) -> (Target, Vec<u8>) {
        let t = parse_absolute(url).expect("url");
        let head = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\nVia: 1.1 larder\r\n\r\n",
            t.path_and_query(),
            t.host_header()
        );
        (t, head.into_bytes())
    }

    #[test]
    fn the_head_is_aimed_at_a_parent_and_back_with_only_its_credentials() {
        let (t, mut head) = head_for("http://Example.com:8080/a?b=c");
        let origin = head.clone();
        let plain: ParentSpec = "p1:3128".parse().expect("p1");
        let authed: ParentSpec = "u:pw@p2:3128".parse().expect("p2");
        aim(&mut head, &t, Some(&plain));
        assert_eq!(
            String::from_utf8_lossy(&head),
            "GET http://example.com:8080/a?b=c HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nVia: 1.1 larder\r\n\r\n"
        );
        aim(&mut head, &t, Some(&authed));
        assert_eq!(
            String::from_utf8_lossy(&head),
            "GET http://example.com:8080/a?b=c HTTP/1.1\r\nProxy-Authorization: Basic dTpwdw==\r\nHost: example.com:8080\r\nAccept: */*\r\nVia: 1.1 larder\r\n\r\n"
        );
        // Twice is once; to another parent, its credentials go; to the origin, all go.
        let once = head.clone();
        aim(&mut head, &t, Some(&authed));
        assert_eq!(head, once);
        aim(&mut head, &t, Some(&plain));
        assert!(!head.windows(5).any(|w| w == b"Basic"));
        aim(&mut head, &t, Some(&authed));
        aim(&mut head, &t, None);
        assert_eq!(head, origin);
    }

    #[test]
    fn a_tunnel_is_asked_of_the_parent_with_its_credentials() {
        let t = parse_authority("[2001:db8::1]:443").expect("authority");
        let authed: ParentSpec = "u:pw@p2:3128".parse().expect("p2");
        let head = connect_head(Vec::new(), &t, &authed, "Via: 1.1 larder\r\n");
        assert_eq!(
            String::from_utf8_lossy(&head),
            "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\nProxy-Authorization: Basic dTpwdw==\r\nVia: 1.1 larder\r\n\r\n"
        );
    }

    #[test]
    fn a_parent_hit_is_read_from_cache_status_or_x_cache() {
        assert!(says_hit(
            b"HTTP/1.1 200 OK\r\nCache-Status: larder; hit\r\n"
        ));
        assert!(says_hit(
            b"HTTP/1.1 200 OK\r\nCache-Status: origin; fwd=uri-miss, parent;hit;ttl=5\r\n"
        ));
        assert!(!says_hit(
            b"HTTP/1.1 200 OK\r\nCache-Status: parent; hit, larder2; fwd=miss\r\n"
        ));
        assert!(!says_hit(
            b"HTTP/1.1 200 OK\r\nCache-Status: larder; fwd=uri-miss\r\n"
        ));
        assert!(says_hit(b"HTTP/1.1 200 OK\r\nX-Cache: HIT from squid\r\n"));
        assert!(!says_hit(
            b"HTTP/1.1 200 OK\r\nX-Cache: MISS from squid\r\n"
        ));
        assert!(!says_hit(b"HTTP/1.1 200 OK\r\nX-Hit: hit\r\n"));
    }
}
