//! Request targets a forward proxy accepts (RFC 9112 §3.2): absolute-form
//! `http://host[:port]/path?query` and, for CONNECT, authority-form `host:port`.
//!
//! The host is normalised here (lowercase, no trailing dot, IPv6 without brackets)
//! so that access control, DNS and connection pooling all see one spelling.

use super::HttpError;
use std::net::Ipv6Addr;

/// A validated request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// absolute-form `http://host[:port][/path][?query]` (scheme case-insensitive, only "http")
    Absolute {
        host: String,
        port: u16,
        path_and_query: String,
    },
    /// authority-form `host:port` (CONNECT only; port required)
    Authority { host: String, port: u16 },
}

impl Target {
    pub fn host(&self) -> &str {
        match self {
            Target::Absolute { host, .. } | Target::Authority { host, .. } => host,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Target::Absolute { port, .. } | Target::Authority { port, .. } => *port,
        }
    }

    /// "host" or "host:port" (port omitted when 80 for Absolute), IPv6 in brackets:
    /// the value for the Host header.
    pub fn host_header(&self) -> String {
        let mut out = Vec::with_capacity(self.host().len() + 8);
        self.write_host_header(&mut out);
        into_string(out)
    }

    /// Appends the `Host` value to `out` (the hot path: no temporary string).
    pub fn write_host_header(&self, out: &mut Vec<u8>) {
        let host = self.host();
        if host.contains(':') {
            out.push(b'[');
            out.extend_from_slice(host.as_bytes());
            out.push(b']');
        } else {
            out.extend_from_slice(host.as_bytes());
        }
        if !matches!(self, Target::Absolute { port: 80, .. }) {
            out.push(b':');
            super::push_decimal(out, u64::from(self.port()));
        }
    }

    /// The URL as logged and as the cache's key: `http://host[:port]/path` or
    /// `host:port` (one allocation, sized up front: this runs for every request).
    pub fn url_bytes(&self) -> Vec<u8> {
        match self {
            Target::Absolute { path_and_query, .. } => {
                let mut out = Vec::with_capacity(16 + self.host().len() + path_and_query.len());
                out.extend_from_slice(b"http://");
                self.write_host_header(&mut out);
                out.extend_from_slice(path_and_query.as_bytes());
                out
            }
            Target::Authority { .. } => {
                let mut out = Vec::with_capacity(self.host().len() + 8);
                self.write_host_header(&mut out);
                out
            }
        }
    }

    /// For logs: `http://host[:port]/path` or `host:port`.
    pub fn display_url(&self) -> String {
        into_string(self.url_bytes())
    }
}

/// Bytes built only from `str` pieces and digits, as a `String` (the lossy branch is
/// never taken; it saves an `unwrap`).
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Parses an absolute-form target. Only `http://` is accepted: `https://` arrives
/// through CONNECT, and larder speaks no other scheme. An empty path becomes "/"
/// (RFC 9112 §3.2.1); path and query are otherwise kept byte for byte.
pub fn parse_absolute(s: &str) -> Result<Target, HttpError> {
    check_visible(s)?;
    let Some((scheme, rest)) = scheme_end(s).and_then(|i| Some((s.get(..i)?, s.get(i + 3..)?)))
    else {
        return Err(bad("target is not an absolute http:// URI"));
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err(bad("https:// targets go through CONNECT"));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad("only http:// targets are supported"));
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(end);
    let (host, port) = host_port(authority, Some(80))?;
    let path_and_query = if path_and_query.starts_with('/') {
        path_and_query.to_string()
    } else {
        format!("/{path_and_query}")
    };
    Ok(Target::Absolute {
        host,
        port,
        path_and_query,
    })
}

/// Where `://` first occurs in `s`. (`str::split_once("://")` sets up a substring
/// searcher per call, a cost out of proportion on a short request target.)
pub fn scheme_end(s: &str) -> Option<usize> {
    s.as_bytes().windows(3).position(|w| w == b"://")
}

/// Parses an authority-form target (`host:port`, port required), as CONNECT uses.
pub fn parse_authority(s: &str) -> Result<Target, HttpError> {
    check_visible(s)?;
    if s.contains('/') {
        return Err(bad("CONNECT target must be host:port"));
    }
    let (host, port) = host_port(s, None)?;
    Ok(Target::Authority { host, port })
}

fn bad(detail: &'static str) -> HttpError {
    HttpError::new(400, detail)
}

/// Whitespace and control bytes would let a target smuggle text into the
/// re-serialized request line or log lines; non-ASCII is not a valid URI either.
fn check_visible(s: &str) -> Result<(), HttpError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "target contains whitespace, control or non-ASCII bytes",
        ));
    }
    if s.contains('#') {
        return Err(bad("fragment in request target"));
    }
    Ok(())
}

/// Splits and validates `host[:port]`; `default_port` is used when the port is absent
/// (`None`: the port is required).
fn host_port(authority: &str, default_port: Option<u16>) -> Result<(String, u16), HttpError> {
    if authority.contains('@') {
        return Err(bad("userinfo in target is not allowed"));
    }
    if authority.contains('%') {
        return Err(bad("percent-encoded host is not allowed"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((literal, after)) = bracketed.split_once(']') else {
            return Err(bad("unterminated IPv6 literal in target"));
        };
        if literal.parse::<Ipv6Addr>().is_err() {
            return Err(bad("invalid IPv6 literal in target"));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(bad("junk after IPv6 literal in target")),
            },
        };
        (literal.to_ascii_lowercase(), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        (reg_name(host)?, port)
    };
    let port = match (port, default_port) {
        (Some(port), _) => parse_port(port)?,
        (None, Some(default)) => default,
        (None, None) => return Err(bad("target needs a port (host:port)")),
    };
    Ok((host, port))
}

/// Validates a registered name or IPv4 address and returns its normal spelling.
fn reg_name(host: &str) -> Result<String, HttpError> {
    if host.is_empty() {
        return Err(bad("empty host in target"));
    }
    // "example.com." names the same host; one spelling keeps block lists and the pool simple.
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.len() > 253 {
        return Err(bad("host name longer than 253 characters"));
    }
    // One pass: a bad byte is reported first, wherever it is; an empty label (a
    // leading dot, two dots in a row, or nothing at all) after.
    let (mut after_dot, mut empty_label) = (true, false);
    for b in host.bytes() {
        if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
            return Err(bad("invalid character in host name"));
        }
        empty_label |= after_dot && b == b'.';
        after_dot = b == b'.';
    }
    if empty_label || after_dot {
        return Err(bad("empty label in host name"));
    }
    Ok(host.to_ascii_lowercase())
}

fn parse_port(port: &str) -> Result<u16, HttpError> {
    if port.is_empty() {
        return Err(bad("empty port in target"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("port is not a number"));
    }
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(bad("port outside 1-65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abs(host: &str, port: u16, path: &str) -> Target {
        Target::Absolute {
            host: host.into(),
            port,
            path_and_query: path.into(),
        }
    }

    fn err(r: Result<Target, HttpError>) -> HttpError {
        r.expect_err("should be rejected")
    }

    #[test]
    fn absolute_basic_and_default_port() {
        assert_eq!(
            parse_absolute("http://example.com/a/b?c=d&e").unwrap(),
            abs("example.com", 80, "/a/b?c=d&e")
        );
        assert_eq!(
            parse_absolute("http://example.com:8080/").unwrap(),
            abs("example.com", 8080, "/")
        );
    }

    #[test]
    fn absolute_scheme_is_case_insensitive() {
        assert_eq!(
            parse_absolute("HTTP://Example.COM/X").unwrap(),
            abs("example.com", 80, "/X")
        );
    }

    #[test]
    fn absolute_empty_path_becomes_slash() {
        assert_eq!(parse_absolute("http://a").unwrap(), abs("a", 80, "/"));
        assert_eq!(parse_absolute("http://a:81").unwrap(), abs("a", 81, "/"));
        assert_eq!(
            parse_absolute("http://a?q=1").unwrap(),
            abs("a", 80, "/?q=1")
        );
    }

    #[test]
    fn path_and_query_kept_byte_for_byte() {
        let t = parse_absolute("http://a/%7Efoo/./../b;p?x=%20&y=[]").unwrap();
        assert_eq!(t, abs("a", 80, "/%7Efoo/./../b;p?x=%20&y=[]"));
    }

    #[test]
    fn host_lowercased_and_trailing_dot_removed() {
        assert_eq!(
            parse_absolute("http://WWW.Example.Com./").unwrap(),
            abs("www.example.com", 80, "/")
        );
    }

    #[test]
    fn host_with_underscore_and_ipv4_accepted() {
        assert_eq!(parse_absolute("http://a_b.c/").unwrap().host(), "a_b.c");
        assert_eq!(parse_absolute("http://10.0.0.1:3/").unwrap().port(), 3);
    }

    #[test]
    fn ipv6_literal_kept_without_brackets() {
        let t = parse_absolute("http://[::1]:8080/x").unwrap();
        assert_eq!(t, abs("::1", 8080, "/x"));
        assert_eq!(t.host_header(), "[::1]:8080");
        assert_eq!(
            parse_absolute("http://[FE80::1]/").unwrap().host(),
            "fe80::1"
        );
        assert_eq!(
            parse_absolute("http://[::1]/").unwrap().host_header(),
            "[::1]"
        );
    }

    #[test]
    fn rejects_bad_ipv6_literal() {
        assert_eq!(err(parse_absolute("http://[::1/")).status, 400);
        assert_eq!(err(parse_absolute("http://[zz::1]/")).status, 400);
        assert_eq!(err(parse_absolute("http://[::1]x/")).status, 400);
        assert_eq!(err(parse_absolute("http://[v1.x]/")).status, 400);
    }

    #[test]
    fn rejects_userinfo() {
        let e = err(parse_absolute("http://user:pw@example.com/"));
        assert_eq!(e.status, 400);
        assert!(e.detail.contains("userinfo"));
        assert!(err(parse_authority("u@example.com:443"))
            .detail
            .contains("userinfo"));
    }

    #[test]
    fn rejects_percent_encoded_host() {
        let e = err(parse_absolute("http://ex%61mple.com/"));
        assert!(e.detail.contains("percent"));
        assert!(err(parse_absolute("http://[fe80::1%25eth0]/"))
            .detail
            .contains("percent"));
    }

    #[test]
    fn rejects_empty_host() {
        assert!(err(parse_absolute("http:///path"))
            .detail
            .contains("empty host"));
        assert!(err(parse_absolute("http://:80/"))
            .detail
            .contains("empty host"));
        assert!(err(parse_authority(":443")).detail.contains("empty host"));
        assert_eq!(err(parse_absolute("http://./")).status, 400);
    }

    #[test]
    fn rejects_bad_ports() {
        for target in [
            "http://a:0/",
            "http://a:65536/",
            "http://a:99999999999999999999/",
            "http://a:-1/",
            "http://a:+80/",
            "http://a:8o/",
            "http://a:/",
        ] {
            assert_eq!(err(parse_absolute(target)).status, 400, "{target}");
        }
        assert_eq!(parse_absolute("http://a:65535/").unwrap().port(), 65535);
        assert!(err(parse_absolute("http://a:/"))
            .detail
            .contains("empty port"));
    }

    #[test]
    fn rejects_https_targets() {
        let e = err(parse_absolute("https://example.com/"));
        assert_eq!(
            e,
            HttpError::new(400, "https:// targets go through CONNECT")
        );
        assert_eq!(err(parse_absolute("HTTPS://example.com/")).detail, e.detail);
    }

    #[test]
    fn rejects_other_schemes() {
        assert_eq!(err(parse_absolute("ftp://example.com/")).status, 400);
        assert_eq!(err(parse_absolute("example.com:80")).status, 400);
        assert_eq!(err(parse_absolute("/just/a/path")).status, 400);
    }

    #[test]
    fn rejects_fragment() {
        assert!(err(parse_absolute("http://a/b#frag"))
            .detail
            .contains("fragment"));
    }

    #[test]
    fn rejects_whitespace_and_control_bytes() {
        for target in [
            "http://a/b c",
            "http://a/\tb",
            "http://a/\x00",
            "http://a/\x7f",
            "http://a/é",
            "",
        ] {
            assert_eq!(err(parse_absolute(target)).status, 400, "{target:?}");
        }
    }

    #[test]
    fn rejects_invalid_reg_names() {
        for host in ["a..b", ".a", "a!b", "a b", "a*b"] {
            assert_eq!(
                err(parse_absolute(&format!("http://{host}/"))).status,
                400,
                "{host}"
            );
        }
        let long = format!("http://{}/", "a".repeat(254));
        assert_eq!(err(parse_absolute(&long)).status, 400);
        // Which problem is named: a bad byte wherever it is, else an empty label.
        for (host, why) in [
            ("a..b", "empty label in host name"),
            ("a..", "empty label in host name"),
            ("..!", "invalid character in host name"),
            ("a.b..c!", "invalid character in host name"),
        ] {
            let e = err(parse_absolute(&format!("http://{host}/")));
            assert_eq!(e.detail, why, "{host}");
        }
        assert!(parse_absolute("http://a.b./").is_ok());
        let ok = format!("http://{}/", "a".repeat(253));
        assert!(parse_absolute(&ok).is_ok());
    }

    #[test]
    fn authority_form() {
        assert_eq!(
            parse_authority("Example.com:443").unwrap(),
            Target::Authority {
                host: "example.com".into(),
                port: 443
            }
        );
        let t = parse_authority("[2001:db8::1]:443").unwrap();
        assert_eq!(t.host(), "2001:db8::1");
        assert_eq!(t.display_url(), "[2001:db8::1]:443");
    }

    #[test]
    fn authority_requires_port() {
        assert!(err(parse_authority("example.com")).detail.contains("port"));
        assert!(err(parse_authority("[::1]")).detail.contains("port"));
        assert_eq!(err(parse_authority("example.com:")).status, 400);
    }

    #[test]
    fn authority_rejects_path() {
        assert_eq!(err(parse_authority("example.com:443/x")).status, 400);
        assert_eq!(err(parse_authority("http://example.com:443")).status, 400);
    }

    #[test]
    fn host_header_and_display_url() {
        let t = parse_absolute("http://a.b/x?y").unwrap();
        assert_eq!(t.host_header(), "a.b");
        assert_eq!(t.display_url(), "http://a.b/x?y");
        let t = parse_absolute("http://a.b:8080").unwrap();
        assert_eq!(t.host_header(), "a.b:8080");
        assert_eq!(t.display_url(), "http://a.b:8080/");
        // CONNECT to port 80 still names the port: authority-form always has one.
        assert_eq!(parse_authority("a.b:80").unwrap().host_header(), "a.b:80");
    }
}
