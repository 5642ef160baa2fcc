//! Request targets a forward proxy accepts (RFC 9112 §3.2): absolute-form
//! `http://host[:port]/path?query` and, for CONNECT, authority-form `host:port`.
//!
//! The host is normalised here (lowercase, no trailing dot, IPv6 without brackets)
//! so that access control, DNS and connection pooling all see one spelling.
//!
//! A target is kept as its URL in that normal spelling, one allocation, with the
//! host, port and path found by offset. The cache takes the same allocation as its
//! key (an `Rc` clone), so a request builds its URL once.

use super::ascii::{eq_lowercase, find_byte};
use super::HttpError;
use std::fmt;
use std::net::Ipv6Addr;
use std::rc::Rc;

/// A validated request target.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://host[:port]/path?query` (absolute-form) or `host:port`
    /// (authority-form): the host lowercased, without a trailing dot, an IPv6
    /// literal in brackets; an absolute-form port of 80 left out. Only visible
    /// ASCII: the request target was checked before this was built.
    url: Rc<str>,
    /// `url[host.0..host.1]` is the host (an IPv6 literal without its brackets).
    host: (u32, u32),
    /// Where the path starts; the URL's length in authority-form.
    path: u32,
    port: u16,
    authority_form: bool,
    /// Sent in origin-form (`GET /path` with a Host field): a request for larder itself.
    origin_form: bool,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url())
    }
}

impl Target {
    /// The host: lowercased, without a trailing dot, an IPv6 literal without brackets.
    pub fn host(&self) -> &str {
        self.text(self.host.0, self.host.1)
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// authority-form (CONNECT's `host:port`), not absolute-form.
    pub fn is_authority(&self) -> bool {
        self.authority_form
    }

    /// Sent in origin-form (`GET /path`, the host from the Host field): a client that
    /// took larder for a web server, such as a browser fetching the PAC file. The
    /// target reads as the absolute URL the Host field makes of it.
    pub fn is_origin_form(&self) -> bool {
        self.origin_form
    }

    /// The origin-form target for upstream: `/path?query` (empty in authority-form).
    pub fn path_and_query(&self) -> &str {
        self.text(self.path, self.url.len() as u32)
    }

    /// "host" or "host:port" (port omitted when 80 for absolute-form), IPv6 in
    /// brackets: the value for the Host header.
    pub fn host_header(&self) -> &str {
        if self.authority_form {
            self.url()
        } else {
            self.text(SCHEME.len() as u32, self.path)
        }
    }

    /// The URL as the cache's key: `http://host[:port]/path` or `host:port`.
    /// Shared, not copied.
    pub fn url_bytes(&self) -> Rc<[u8]> {
        Rc::clone(&self.url).into()
    }

    /// For logs: `http://host[:port]/path` or `host:port`.
    pub fn url(&self) -> &str {
        self.text(0, self.url.len() as u32)
    }

    /// For logs, owned.
    pub fn display_url(&self) -> String {
        self.url().to_string()
    }

    /// `url[from..to]`. The URL is ASCII and the offsets fall between its parts, so
    /// the empty fallback is never taken; it saves an `unwrap`.
    fn text(&self, from: u32, to: u32) -> &str {
        self.url.get(from as usize..to as usize).unwrap_or("")
    }
}

const SCHEME: &str = "http://";

/// The checked pieces of an authority: the host as written (without brackets and
/// trailing dot; not yet lowercased), whether it is an IPv6 literal, and the port.
struct Authority<'a> {
    host: &'a str,
    v6: bool,
    port: u16,
    /// The port as the target wrote it, when that is its decimal spelling (no
    /// leading zero): copied into the URL rather than written again.
    digits: Option<&'a str>,
}

/// Builds a target's URL: the pieces are joined in a stack buffer (a URL that does
/// not fit takes a temporary vector) and copied from there into the one allocation
/// the target keeps.
fn build(a: &Authority, absolute: bool, path: &str) -> Target {
    let mut digits = [0u8; 20];
    let (colon, port): (&[u8], &[u8]) = if absolute && a.port == 80 {
        (b"", b"")
    } else {
        let port = match a.digits {
            Some(written) => written.as_bytes(),
            None => super::decimal(u64::from(a.port), &mut digits),
        };
        (b":", port)
    };
    let (open, close): (&[u8], &[u8]) = if a.v6 { (b"[", b"]") } else { (b"", b"") };
    let scheme: &[u8] = if absolute { SCHEME.as_bytes() } else { b"" };
    // RFC 9112 §3.2.1: an empty path is sent as "/" (a query alone gets one too).
    let slash: &[u8] = if absolute && !path.starts_with('/') {
        b"/"
    } else {
        b""
    };
    let parts = [
        scheme,
        open,
        a.host.as_bytes(),
        close,
        colon,
        port,
        slash,
        path.as_bytes(),
    ];
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let host_start = scheme.len() + open.len();
    let host_end = host_start + a.host.len();
    let path_start = host_end + close.len() + colon.len() + port.len();
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let buf: &mut [u8] = match stack.get_mut(..len) {
        Some(buf) => buf,
        None => {
            heap.resize(len, 0);
            &mut heap
        }
    };
    let mut at = 0;
    for part in parts {
        if let Some(dst) = buf.get_mut(at..at + part.len()) {
            dst.copy_from_slice(part);
        }
        at += part.len();
    }
    if let Some(host) = buf.get_mut(host_start..host_end) {
        host.make_ascii_lowercase();
    }
    // Joined from `str` pieces and ASCII digits: never the empty fallback.
    let url: Rc<str> = Rc::from(std::str::from_utf8(buf).unwrap_or_default());
    Target {
        url,
        host: (host_start as u32, host_end as u32),
        path: path_start as u32,
        port: a.port,
        authority_form: !absolute,
        origin_form: false,
    }
}

/// Parses an absolute-form target. Only `http://` is accepted: `https://` arrives
/// through CONNECT, and larder speaks no other scheme. An empty path becomes "/"
/// (RFC 9112 §3.2.1); path and query are otherwise kept byte for byte.
pub fn parse_absolute(s: &str) -> Result<Target, HttpError> {
    match plain_absolute(s) {
        Some(target) => Ok(target),
        None => general_absolute(s),
    }
}

/// [`parse_absolute`] for every target, the usual ones included.
fn general_absolute(s: &str) -> Result<Target, HttpError> {
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
    let end = rest
        .bytes()
        .position(|b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(end);
    let authority = host_port(authority, Some(80))?;
    Ok(build(&authority, true, path_and_query))
}

/// The usual absolute-form target, `http://name[:port]/...` with a registered name
/// or IPv4 address and a short port, in one pass over the target and two over the
/// authority. It accepts exactly what the general path accepts for such targets;
/// anything else, wrong or just rarer (IPv6, userinfo, a long port), returns `None`
/// and goes the general way, which also names what is wrong.
pub(super) fn plain_absolute(s: &str) -> Option<Target> {
    let scheme = s.get(..SCHEME.len())?;
    let lower_scheme = scheme == SCHEME;
    if !(lower_scheme || eq_lowercase(scheme.as_bytes(), SCHEME.as_bytes()))
        || !visible_without_fragment(s)
    {
        return None;
    }
    let rest = s.get(SCHEME.len()..)?;
    // The authority ends at the first `/` (found a word at a time). Its bytes are
    // then classed by a table (see `AUTHORITY_BYTES`), in a loop with nothing to stop
    // it early, which the compiler unrolls: the union of the classes, and in `pairs`
    // the bits two bytes in a row share (its DOT bit is a dot after a dot). A byte
    // that is neither a name byte nor a colon (`@`, `%`, `[`, and `?`: a target
    // `http://host?query` is rare enough) sends the target the general way.
    let end = find_byte(rest.as_bytes(), b'/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at_checked(end)?;
    let (mut seen, mut last, mut pairs) = (0u8, 0u8, 0u8);
    for &b in authority.as_bytes() {
        let class = AUTHORITY_BYTES[usize::from(b)];
        seen |= class;
        pairs |= last & class;
        last = class;
    }
    // Two dots in a row are an empty label in the host, or a port that is no number.
    if seen & ODD != 0 || pairs & DOT != 0 {
        return None;
    }
    // Split at the first colon: the port's digits cannot hold a second one.
    let colon = if seen & COLON != 0 {
        authority.bytes().position(|b| b == b':')
    } else {
        None
    };
    let (host, port, digits) = match colon.and_then(|i| authority.split_at_checked(i)) {
        Some((host, colon_port)) => {
            let digits = colon_port.get(1..)?;
            (host, short_port(digits)?, digits)
        }
        None => (authority, 80, ""),
    };
    // What `reg_name` checks beyond the bytes, which are all name bytes here.
    let (host, trailing_dot) = match host.strip_suffix('.') {
        Some(stripped) => (stripped, true),
        None => (host, false),
    };
    if host.is_empty() || host.len() > 253 || host.starts_with('.') || host.ends_with('.') {
        return None;
    }
    // Most targets are written in the normal spelling already: then the target is
    // its own URL, one copy, where joining the pieces costs a copy each. (An
    // uppercase byte of the port part would have sent the target away above.)
    let port_as_kept = colon.is_none() || (port != 80 && !digits.starts_with('0'));
    if lower_scheme && !trailing_dot && port_as_kept && path.starts_with('/') && seen & UPPER == 0 {
        let host_start = SCHEME.len();
        return Some(Target {
            url: Rc::from(s),
            host: (host_start as u32, (host_start + host.len()) as u32),
            path: (host_start + end) as u32,
            port,
            authority_form: false,
            origin_form: false,
        });
    }
    Some(build(
        &Authority {
            host,
            v6: false,
            port,
            // A leading zero is not the port's spelling in the URL.
            digits: Some(digits).filter(|d| !d.starts_with('0')),
        },
        true,
        path,
    ))
}

/// Classes of authority bytes for [`plain_absolute`], as bits: lowercase letters,
/// digits, `-` and `_` are 0; the dot, the colon and uppercase letters have a bit
/// each; all others are `ODD`.
const UPPER: u8 = 1;
const DOT: u8 = 2;
const COLON: u8 = 4;
const ODD: u8 = 8;
const AUTHORITY_BYTES: [u8; 256] = {
    let mut table = [ODD; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_' {
            table[b] = 0;
        } else if byte.is_ascii_uppercase() {
            table[b] = UPPER;
        } else if byte == b'.' {
            table[b] = DOT;
        } else if byte == b':' {
            table[b] = COLON;
        }
        b += 1;
    }
    table
};

/// All bytes visible ASCII and none a `#`, in one pass that vectorizes.
fn visible_without_fragment(s: &str) -> bool {
    !s.is_empty()
        && !s.bytes().fold(false, |bad, b| {
            bad | !(0x21..=0x7e).contains(&b) | (b == b'#')
        })
}

/// A port of one to five digits, 1-65535.
fn short_port(port: &str) -> Option<u16> {
    if port.is_empty() || port.len() > 5 {
        return None;
    }
    let mut n = 0u32;
    for b in port.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    u16::try_from(n).ok().filter(|&p| p != 0)
}

/// Whether `name` is a plausible host name, as the rules naming sites take them: labels
/// of letters, digits, `-` and `_` (which real names carry, ad domains among them),
/// 1 to 63 bytes each, at most 253 bytes in all, no leading or trailing dot.
pub fn is_host_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split(|&b| b == b'.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Where `://` first occurs in `s`. (`str::split_once("://")` sets up a substring
/// searcher per call, a cost out of proportion on a short request target.)
pub fn scheme_end(s: &str) -> Option<usize> {
    s.as_bytes().windows(3).position(|w| w == b"://")
}

/// Parses an origin-form target (`/path?query`) with the value of the request's Host
/// field (`host[:port]`), as a request for larder itself arrives.
pub fn parse_origin(path: &str, host: &[u8]) -> Result<Target, HttpError> {
    check_visible(path)?;
    if !path.starts_with('/') {
        return Err(bad("origin-form target must start with /"));
    }
    let host = std::str::from_utf8(host.trim_ascii())
        .map_err(|_| bad("invalid byte in the Host field"))?;
    check_visible(host).map_err(|_| bad("invalid Host field"))?;
    let authority = host_port(host, Some(80)).map_err(|_| bad("invalid Host field"))?;
    let mut target = build(&authority, true, path);
    target.origin_form = true;
    Ok(target)
}

/// Parses an authority-form target (`host:port`, port required), as CONNECT uses.
pub fn parse_authority(s: &str) -> Result<Target, HttpError> {
    check_visible(s)?;
    if s.contains('/') {
        return Err(bad("CONNECT target must be host:port"));
    }
    let authority = host_port(s, None)?;
    Ok(build(&authority, false, ""))
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
fn host_port(authority: &str, default_port: Option<u16>) -> Result<Authority<'_>, HttpError> {
    if authority.contains('@') {
        return Err(bad("userinfo in target is not allowed"));
    }
    if authority.contains('%') {
        return Err(bad("percent-encoded host is not allowed"));
    }
    let (host, v6, port) = if let Some(bracketed) = authority.strip_prefix('[') {
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
        (literal, true, port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        (reg_name(host)?, false, port)
    };
    let port = match (port, default_port) {
        (Some(port), _) => parse_port(port)?,
        (None, Some(default)) => default,
        (None, None) => return Err(bad("target needs a port (host:port)")),
    };
    Ok(Authority {
        host,
        v6,
        port,
        digits: None,
    })
}

/// Validates a registered name or IPv4 address and returns it without a trailing
/// dot (the caller lowercases it as it copies it).
fn reg_name(host: &str) -> Result<&str, HttpError> {
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
    Ok(host)
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

    /// (host, port, path) of an absolute-form target, and that it is one.
    fn abs(host: &str, port: u16, path: &str) -> (String, u16, String, bool) {
        (host.into(), port, path.into(), false)
    }

    fn parts(t: Target) -> (String, u16, String, bool) {
        (
            t.host().into(),
            t.port(),
            t.path_and_query().into(),
            t.is_authority(),
        )
    }

    fn err(r: Result<Target, HttpError>) -> HttpError {
        r.expect_err("should be rejected")
    }

    #[test]
    fn absolute_basic_and_default_port() {
        assert_eq!(
            parts(parse_absolute("http://example.com/a/b?c=d&e").unwrap()),
            abs("example.com", 80, "/a/b?c=d&e")
        );
        assert_eq!(
            parts(parse_absolute("http://example.com:8080/").unwrap()),
            abs("example.com", 8080, "/")
        );
    }

    #[test]
    fn absolute_scheme_is_case_insensitive() {
        assert_eq!(
            parts(parse_absolute("HTTP://Example.COM/X").unwrap()),
            abs("example.com", 80, "/X")
        );
    }

    #[test]
    fn absolute_empty_path_becomes_slash() {
        assert_eq!(
            parts(parse_absolute("http://a").unwrap()),
            abs("a", 80, "/")
        );
        assert_eq!(
            parts(parse_absolute("http://a:81").unwrap()),
            abs("a", 81, "/")
        );
        assert_eq!(
            parts(parse_absolute("http://a?q=1").unwrap()),
            abs("a", 80, "/?q=1")
        );
    }

    #[test]
    fn path_and_query_kept_byte_for_byte() {
        let t = parse_absolute("http://a/%7Efoo/./../b;p?x=%20&y=[]").unwrap();
        assert_eq!(parts(t), abs("a", 80, "/%7Efoo/./../b;p?x=%20&y=[]"));
    }

    #[test]
    fn host_lowercased_and_trailing_dot_removed() {
        assert_eq!(
            parts(parse_absolute("http://WWW.Example.Com./").unwrap()),
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
        assert_eq!(t.host_header(), "[::1]:8080");
        assert_eq!(t.url(), "http://[::1]:8080/x");
        assert_eq!(parts(t), abs("::1", 8080, "/x"));
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
        let t = parse_authority("Example.com:0443").unwrap();
        assert_eq!(t.url(), "example.com:443");
        assert_eq!(parts(t), ("example.com".into(), 443, String::new(), true));
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
    fn the_plain_path_agrees_with_the_general_one() {
        // `plain_absolute` is a shortcut: whatever it accepts, the general parser
        // must accept the same way, and it must leave the rest to the general one.
        let hosts = [
            "a", "A.b", "a.b.", "a..b", ".a", "a_b", "1.2.3.4", "a-", "a@b", "a%41", "[::1]", "",
            ".", "a b", "é", "Ab-C_d.9", "a:1", "a.:", "A..b",
        ];
        let ports = [
            "", ":", ":80", ":0080", ":0", ":65535", ":65536", ":000080", ":8o", ":8O", ":+1",
            ":1:2",
        ];
        let paths = ["", "/", "/x?y", "?q", "/#f", "/a b", "/%7E"];
        let mut plain = 0;
        for scheme in ["http://", "HTTP://", "https://", "ftp://", ""] {
            for host in hosts {
                for port in ports {
                    for path in paths {
                        let t = format!("{scheme}{host}{port}{path}");
                        let general = general_absolute(&t);
                        if let Some(fast) = plain_absolute(&t) {
                            plain += 1;
                            assert_eq!(general.as_ref(), Ok(&fast), "{t}");
                        }
                        assert_eq!(parse_absolute(&t), general, "{t}");
                    }
                }
            }
        }
        assert!(plain > 100, "the plain path took only {plain} targets");
        assert!(plain_absolute("http://[::1]/").is_none());
        // And over mutations of usual targets: bytes that matter to the grammar
        // changed, added or taken out.
        let special = b"/?:.@%[]#-_ \x00\x7fA9";
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        for seed in [
            "http://Example.com:8080/a?b",
            "http://a.b/",
            "http://10.0.0.1:80",
        ] {
            for _ in 0..2000 {
                let mut t = seed.as_bytes().to_vec();
                crate::http::testing::mutate(&mut t, &mut rng, special);
                let Ok(t) = String::from_utf8(t) else {
                    continue;
                };
                if let Some(fast) = plain_absolute(&t) {
                    assert_eq!(general_absolute(&t), Ok(fast), "{t}");
                }
            }
        }
    }

    /// The plain path copies the port as written only when that is its decimal
    /// spelling.
    #[test]
    fn the_port_is_spelled_without_leading_zeros() {
        let url = |t: &str| parse_absolute(t).unwrap().url().to_string();
        assert_eq!(url("http://a:8080/x"), "http://a:8080/x");
        assert_eq!(url("http://a:08080/x"), "http://a:8080/x");
        assert_eq!(url("http://a:00080/x"), "http://a/x");
        assert_eq!(url("http://a:65535"), "http://a:65535/");
        assert_eq!(url("http://a:1?q"), "http://a:1/?q");
    }

    #[test]
    fn url_is_the_one_normal_spelling() {
        // The cache keys on this URL: spellings of one resource must come out equal.
        for (target, url) in [
            ("HTTP://A.b.:80", "http://a.b/"),
            ("http://a.b:0080/x", "http://a.b/x"),
            ("http://a.b?q", "http://a.b/?q"),
            ("http://a.b:8080?q", "http://a.b:8080/?q"),
            ("http://[FE80::A]:81/P", "http://[fe80::a]:81/P"),
        ] {
            let t = parse_absolute(target).unwrap();
            assert_eq!(t.url(), url, "{target}");
            assert_eq!(&t.url_bytes()[..], url.as_bytes());
        }
        assert_eq!(parse_authority("[::1]:443").unwrap().url(), "[::1]:443");
        assert_eq!(parse_authority("A.b.:1").unwrap().url(), "a.b:1");
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
