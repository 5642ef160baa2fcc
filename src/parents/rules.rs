//! What `--parent` and `--direct` name: a parent proxy (its address and, if given,
//! the credentials larder sends it) and a destination reached without one.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::acl::cidr::Cidr;
use crate::http::target::is_host_name;

/// One `--parent [user:pass@]HOST:PORT`.
///
/// Its `Display` and `Debug` are `host:port` only: the credentials never reach a log
/// line, a page or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct ParentSpec {
    /// The host: a name (lowercase) or an IP literal (an IPv6 one without brackets).
    pub host: Box<str>,
    /// The port.
    pub port: u16,
    /// The whole `Proxy-Authorization` line (`Proxy-Authorization: Basic ...` CRLF)
    /// sent to this parent only, when credentials were given.
    auth_line: Option<Box<[u8]>>,
}

impl ParentSpec {
    /// The `Proxy-Authorization` field line for this parent (CRLF included), if it
    /// has credentials.
    pub fn auth_line(&self) -> Option<&[u8]> {
        self.auth_line.as_deref()
    }

    /// `host:port` as a CONNECT line or a Host field writes it (IPv6 in brackets).
    pub fn authority(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ParentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for ParentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let creds = if self.auth_line.is_some() {
            " (with credentials)"
        } else {
            ""
        };
        write!(f, "{self}{creds}")
    }
}

impl FromStr for ParentSpec {
    type Err = String;

    /// `HOST:PORT`, `[IPv6]:PORT`, or either after `user:pass@`; an `http://` in front
    /// and a `/` behind are allowed. The user and password may be percent-encoded (a
    /// `@` or `:` in a password as `%40`, `%3A`). Messages never repeat the password.
    fn from_str(s: &str) -> Result<ParentSpec, String> {
        let s = s.trim();
        let rest = match s.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("http://") => s.get(7..).unwrap_or(""),
            _ => s,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (creds, addr) = match rest.rsplit_once('@') {
            Some((c, a)) => (Some(c), a),
            None => (None, rest),
        };
        let shown = addr;
        let Some((host, port)) = addr.rsplit_once(':') else {
            return Err(format!(
                "'{shown}' is not HOST:PORT (a parent needs its port)"
            ));
        };
        let port: u16 = match port.parse() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("'{port}' in '{shown}' is not a port (1-65535)")),
        };
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => match inner.parse::<std::net::Ipv6Addr>() {
                Ok(_) => inner.to_ascii_lowercase(),
                Err(_) => return Err(format!("'{inner}' in '{shown}' is not an IPv6 address")),
            },
            None if host.contains(':') => {
                return Err(format!(
                    "'{shown}' is not HOST:PORT: write an IPv6 address in brackets, e.g. [::1]:3128"
                ))
            }
            None if host.parse::<IpAddr>().is_ok() => host.to_string(),
            None => {
                let name = host.trim_end_matches('.').to_ascii_lowercase();
                let valid = !name.is_empty()
                    && name.len() <= 253
                    && name.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    });
                if !valid {
                    return Err(format!(
                        "'{host}' in '{shown}' is not a host name or IP address (write an \
                         IPv6 address in brackets: [::1]:3128)"
                    ));
                }
                name
            }
        };
        let auth_line = match creds {
            None => None,
            Some(c) => {
                let Some(user_pass) = percent_decode(c) else {
                    return Err(format!(
                        "the credentials for parent {shown} have a bad %-escape"
                    ));
                };
                if !user_pass.contains(&b':') {
                    return Err(format!(
                        "the credentials for parent {shown} must be user:password"
                    ));
                }
                let mut line = b"Proxy-Authorization: Basic ".to_vec();
                line.extend_from_slice(base64(&user_pass).as_bytes());
                line.extend_from_slice(b"\r\n");
                Some(line.into_boxed_slice())
            }
        };
        Ok(ParentSpec {
            host: host.into(),
            port,
            auth_line,
        })
    }
}

/// A `--parent` value as the command line gives it: parsed, or why not. Reading it
/// never fails, so the argument parser never prints the value (it may hold a
/// password); [`super::ParentsConfig::check`] reports the reason instead.
#[derive(Clone, Debug)]
pub struct ParentArg(pub Result<ParentSpec, String>);

impl FromStr for ParentArg {
    type Err = String;

    fn from_str(s: &str) -> Result<ParentArg, String> {
        Ok(ParentArg(s.parse()))
    }
}

/// `%XX` escapes decoded; `None` for a bad escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// Standard base64 with padding (RFC 4648 §4), for Basic credentials.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |v: u32| char::from(ABC[(v & 63) as usize]);
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
    out
}

/// One `--direct` rule: destinations larder reaches itself, never through a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectRule {
    /// A domain and its subdomains, lowercase, without a leading or trailing dot.
    Domain(Box<str>),
    /// An address range, matched against hosts written as IP literals (the choice is
    /// made before any lookup: a name is not resolved to pick its route).
    Net(Cidr),
}

impl DirectRule {
    /// Whether the rule covers `host` (lowercase, no trailing dot, an IPv6 literal
    /// without brackets); `ip` is the host parsed as an address, if it is one.
    pub fn covers(&self, host: &str, ip: Option<IpAddr>) -> bool {
        match self {
            DirectRule::Domain(d) => {
                host == &**d
                    || (host.len() > d.len()
                        && host.ends_with(&**d)
                        && host.as_bytes().get(host.len() - d.len() - 1) == Some(&b'.'))
            }
            DirectRule::Net(net) => ip.is_some_and(|ip| net.contains(ip)),
        }
    }
}

impl FromStr for DirectRule {
    type Err = String;

    fn from_str(s: &str) -> Result<DirectRule, String> {
        let s = s.trim();
        if s.contains('/') || s.parse::<IpAddr>().is_ok() {
            return s.parse::<Cidr>().map(DirectRule::Net);
        }
        let domain = s
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if !is_host_name(domain.as_bytes()) {
            return Err(format!(
                "'{s}' is neither an address range (10.0.0.0/8, fd00::/8) nor a domain \
                 (intranet.example)"
            ));
        }
        Ok(DirectRule::Domain(domain.into()))
    }
}

impl fmt::Display for DirectRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectRule::Domain(d) => f.write_str(d),
            DirectRule::Net(n) => write!(f, "{n}"),
        }
    }
}

/// Destinations reached directly unless `--never-direct`: IP literals in loopback,
/// the private ranges (RFC 1918, IPv6 unique-local) and link-local, and names without
/// a dot (`intranet`, `localhost`) or under `.localhost`. A parent cannot usefully
/// reach any of them for larder: they name larder's own network.
pub fn direct_by_default(host: &str, ip: Option<IpAddr>) -> bool {
    match ip {
        Some(IpAddr::V4(v4)) => local_v4(v4),
        Some(IpAddr::V6(v6)) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return local_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
        None => !host.contains('.') || host.ends_with(".localhost"),
    }
}

/// Loopback, RFC 1918, link-local, or 0.0.0.0 (this host, to Linux).
fn local_v4(v4: std::net::Ipv4Addr) -> bool {
    v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ];
        for (plain, coded) in cases {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain:?}");
        }
    }

    #[test]
    fn parent_specs_parse_and_never_show_their_password() {
        let p: ParentSpec = "Proxy.Example:3128".parse().expect("plain");
        assert_eq!(
            (&*p.host, p.port, p.auth_line()),
            ("proxy.example", 3128, None)
        );
        let p: ParentSpec = "http://alice:s%40cret@10.0.0.1:8080/"
            .parse()
            .expect("auth");
        assert_eq!(p.to_string(), "10.0.0.1:8080");
        assert_eq!(
            p.auth_line(),
            Some(&b"Proxy-Authorization: Basic YWxpY2U6c0BjcmV0\r\n"[..])
        );
        let shown = format!("{p} {p:?}");
        assert!(
            !shown.contains("cret") && !shown.contains("YWxp"),
            "{shown}"
        );
        let p: ParentSpec = "u:p@[::1]:3128".parse().expect("v6");
        assert_eq!((&*p.host, p.to_string()), ("::1", "[::1]:3128".to_string()));
        for bad in [
            "proxy",
            "proxy:0",
            "proxy:x",
            "::1:3128",
            "pro xy:1",
            "u@h:1",
            "a%zz:b@h:1",
        ] {
            let e = bad.parse::<ParentSpec>().expect_err(bad);
            assert!(!e.contains("zz:b"), "{e}");
        }
    }

    #[test]
    fn direct_rules_cover_domains_with_subdomains_and_literal_ranges() {
        let d: DirectRule = ".Intranet.Example.".parse().expect("domain");
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(d.covers("intranet.example", None));
        assert!(d.covers("wiki.intranet.example", None));
        assert!(!d.covers("xintranet.example", None));
        assert!(!d.covers("example", None));
        let v4: DirectRule = "192.0.2.0/24".parse().expect("v4");
        assert!(v4.covers("192.0.2.9", ip("192.0.2.9")));
        assert!(!v4.covers("192.0.3.9", ip("192.0.3.9")));
        assert!(!v4.covers("name.example", None));
        let v6: DirectRule = "2001:db8::/32".parse().expect("v6");
        assert!(v6.covers("2001:db8::1", ip("2001:db8::1")));
        assert!(!v6.covers("2001:db9::1", ip("2001:db9::1")));
        assert!("bad domain".parse::<DirectRule>().is_err());
        assert!("10.0.0.0/33".parse::<DirectRule>().is_err());
    }

    #[test]
    fn private_loopback_and_single_label_hosts_are_direct_by_default() {
        let direct = |h: &str| direct_by_default(h, h.parse().ok());
        for h in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
            "::",
            "localhost",
            "intranet",
            "app.localhost",
        ] {
            assert!(direct(h), "{h}");
        }
        for h in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "example.com", "a.b"] {
            assert!(!direct(h), "{h}");
        }
    }
}
