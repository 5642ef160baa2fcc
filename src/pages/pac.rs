//! The proxy auto-config file (`/proxy.pac`, `/wpad.dat`): a `FindProxyForURL` that
//! sends everything through larder, except plain host names, loopback and the
//! `--pac-direct` destinations.

use std::fmt;
use std::net::Ipv4Addr;

use crate::http::target::is_host_name;

/// One `--pac-direct` rule: a destination the browser reaches without the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacDirect {
    /// An IPv4 range, matched against hosts written as IPv4 literals (a PAC file
    /// cannot resolve names cheaply: a DNS lookup there blocks the browser).
    Net {
        /// The range's network address.
        addr: Ipv4Addr,
        /// Length of the range's prefix in bits.
        prefix: u8,
    },
    /// A domain and its subdomains, lowercase, without a leading or trailing dot.
    Domain(String),
}

impl std::str::FromStr for PacDirect {
    type Err = String;

    fn from_str(s: &str) -> Result<PacDirect, String> {
        let s = s.trim();
        if let Some((addr, prefix)) = s.split_once('/') {
            let addr: Ipv4Addr = addr.parse().map_err(|_| {
                format!("'{s}' is not an IPv4 range (PAC files match IPv4 only), e.g. 10.0.0.0/8")
            })?;
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|&p| p <= 32)
                .ok_or_else(|| format!("'{s}': the prefix length must be 0 to 32"))?;
            return Ok(PacDirect::Net { addr, prefix });
        }
        if let Ok(addr) = s.parse::<Ipv4Addr>() {
            return Ok(PacDirect::Net { addr, prefix: 32 });
        }
        let domain = s
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if !is_host_name(domain.as_bytes()) {
            return Err(format!(
                "'{s}' is neither an IPv4 range (10.0.0.0/8) nor a domain (intranet.example)"
            ));
        }
        Ok(PacDirect::Domain(domain))
    }
}

impl fmt::Display for PacDirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacDirect::Net { addr, prefix } => write!(f, "{addr}/{prefix}"),
            PacDirect::Domain(d) => f.write_str(d),
        }
    }
}

/// The content type a PAC file is served with.
pub const CONTENT_TYPE: &str = "application/x-ns-proxy-autoconfig";

/// The PAC file for a larder reached at `proxy` (`host:port`, an IPv6 host bracketed).
///
/// Its `FindProxyForURL(url, host)` answers `"PROXY <proxy>; DIRECT"` (the browser goes
/// direct only when larder cannot be reached) for everything but these, which get
/// `"DIRECT"`:
///
/// - plain host names (`intranet`, `printer`: no dot), `localhost` and `*.localhost`;
/// - IPv4 loopback literals (127.0.0.0/8) and IPv6 loopback (`::1`, bracketed or not);
/// - the `direct` rules: an IPv4 range matches hosts written as IPv4 literals (checked
///   with `isInNet` on the literal only, so the browser never resolves a name for it), a
///   domain matches itself and its subdomains, ignoring case.
///
/// IPv6 literals other than `::1` go through larder (browsers pass them unbracketed,
/// and `isPlainHostName` would take them for plain names). A trailing dot on the host
/// (`example.com.`) is ignored. Every value is written as an escaped JavaScript string
/// literal, so the file is valid JavaScript whatever `proxy` holds.
pub fn pac_file(proxy: &str, direct: &[PacDirect]) -> String {
    let mut nets = String::new();
    let mut domains = String::new();
    for rule in direct {
        match rule {
            PacDirect::Net { addr, prefix } => {
                let prefix = (*prefix).min(32);
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                let net = Ipv4Addr::from(u32::from(*addr) & mask);
                let mask = Ipv4Addr::from(mask);
                nets.push_str(&format!(
                    "    if (isInNet(h, \"{net}\", \"{mask}\")) return \"DIRECT\"; // {net}/{prefix}\n"
                ));
            }
            PacDirect::Domain(domain) => {
                let domain = domain.trim_matches('.').to_ascii_lowercase();
                if domain.is_empty() {
                    continue;
                }
                let exact = js_string(&domain);
                let suffix = js_string(&format!(".{domain}"));
                domains.push_str(&format!(
                    "    if (h == {exact} || dnsDomainIs(h, {suffix})) return \"DIRECT\";\n"
                ));
            }
        }
    }
    let mut out = String::with_capacity(900 + nets.len() + domains.len());
    out.push_str(
        "// Proxy auto-config from larder: everything goes through larder except plain host\n\
         // names, localhost and loopback addresses, and what larder's --pac-direct adds\n\
         // (IPv4 ranges, matched on IPv4 literals only, and domains with their subdomains).\n\
         function FindProxyForURL(url, host) {\n\
         \x20 var h = String(host).toLowerCase();\n\
         \x20 if (h.charAt(0) == \"[\") h = h.substring(1, h.length - 1);\n\
         \x20 if (h.charAt(h.length - 1) == \".\") h = h.substring(0, h.length - 1);\n\
         \x20 if (h.indexOf(\":\") >= 0) {\n\
         \x20   // An IPv6 literal.\n\
         \x20   if (h == \"::1\") return \"DIRECT\";\n\
         \x20 } else if (isPlainHostName(h) || h == \"localhost\" || dnsDomainIs(h, \".localhost\")) {\n\
         \x20   return \"DIRECT\";\n\
         \x20 } else if (/^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(h)) {\n\
         \x20   // An IPv4 literal (isInNet on a literal does no DNS lookup).\n\
         \x20   if (/^127\\./.test(h)) return \"DIRECT\";\n",
    );
    out.push_str(&nets);
    if domains.is_empty() {
        out.push_str("  }\n");
    } else {
        out.push_str("  } else {\n");
        out.push_str(&domains);
        out.push_str("  }\n");
    }
    out.push_str(&format!(
        "  return {};\n}}\n",
        js_string(&format!("PROXY {proxy}; DIRECT"))
    ));
    out
}

/// `s` as a double-quoted JavaScript string literal that stays one literal on one
/// line whatever `s` holds: quotes, backslashes, control characters, line and
/// paragraph separators, and everything outside printable ASCII are escaped.
fn js_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // `</script>` or `<!--` never matter in a PAC file, but the file may be
            // pasted into a page; escaping `<` costs nothing.
            ' '..='~' if c != '<' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<PacDirect> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    #[test]
    fn rules_parse_as_ranges_or_domains() {
        assert_eq!(
            rules(&["10.0.0.0/8", "192.168.1.7", ".Corp.Example."]),
            vec![
                PacDirect::Net {
                    addr: Ipv4Addr::new(10, 0, 0, 0),
                    prefix: 8
                },
                PacDirect::Net {
                    addr: Ipv4Addr::new(192, 168, 1, 7),
                    prefix: 32
                },
                PacDirect::Domain("corp.example".into()),
            ]
        );
        assert!("10.0.0.0/33".parse::<PacDirect>().is_err());
        assert!("fe80::/10".parse::<PacDirect>().is_err());
        assert!("bad domain".parse::<PacDirect>().is_err());
        assert!("".parse::<PacDirect>().is_err());
    }

    #[test]
    fn without_rules_everything_goes_through_larder() {
        let pac = pac_file("127.0.0.1:3128", &[]);
        assert!(pac.starts_with("// Proxy auto-config from larder"), "{pac}");
        assert!(pac.contains("function FindProxyForURL(url, host) {\n"));
        assert!(
            pac.ends_with("  return \"PROXY 127.0.0.1:3128; DIRECT\";\n}\n"),
            "{pac}"
        );
        assert!(pac.contains("isPlainHostName(h)"));
        assert!(pac.contains("h == \"localhost\" || dnsDomainIs(h, \".localhost\")"));
        assert!(pac.contains("if (h == \"::1\") return \"DIRECT\";"));
        assert!(pac.contains("if (/^127\\./.test(h)) return \"DIRECT\";"));
        assert!(!pac.contains("isInNet(h"), "no range, no isInNet: {pac}");
        assert!(
            !pac.contains("} else {"),
            "no domain, no domain branch: {pac}"
        );
        assert!(pac.len() < 1200, "small: {} bytes", pac.len());
    }

    #[test]
    fn ranges_are_checked_on_ipv4_literals_with_their_network_and_mask() {
        let pac = pac_file(
            "proxy.lan:3128",
            &rules(&["10.1.2.3/8", "192.168.1.7", "0.0.0.0/0", "172.16.0.0/12"]),
        );
        let literal_branch = pac
            .split("/^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(h)")
            .nth(1)
            .unwrap();
        for line in [
            "if (isInNet(h, \"10.0.0.0\", \"255.0.0.0\")) return \"DIRECT\"; // 10.0.0.0/8",
            "if (isInNet(h, \"192.168.1.7\", \"255.255.255.255\")) return \"DIRECT\"; // 192.168.1.7/32",
            "if (isInNet(h, \"0.0.0.0\", \"0.0.0.0\")) return \"DIRECT\"; // 0.0.0.0/0",
            "if (isInNet(h, \"172.16.0.0\", \"255.240.0.0\")) return \"DIRECT\"; // 172.16.0.0/12",
        ] {
            assert!(literal_branch.contains(line), "{line} missing in\n{pac}");
        }
        // A prefix out of range (a hand-made rule) is taken as /32, not a panic.
        let pac = pac_file(
            "p:1",
            &[PacDirect::Net {
                addr: Ipv4Addr::new(10, 9, 9, 9),
                prefix: 200,
            }],
        );
        assert!(pac.contains("isInNet(h, \"10.9.9.9\", \"255.255.255.255\")"));
    }

    #[test]
    fn domains_match_themselves_and_subdomains_in_lowercase() {
        let pac = pac_file(
            "p:1",
            &[
                PacDirect::Domain("corp.example".into()),
                // Hand-made rules are normalised too.
                PacDirect::Domain(".Intra.Example.".into()),
                PacDirect::Domain(".".into()),
            ],
        );
        assert!(pac.contains(
            "  } else {\n    if (h == \"corp.example\" || dnsDomainIs(h, \".corp.example\")) return \"DIRECT\";\n"
        ), "{pac}");
        assert!(pac.contains(
            "if (h == \"intra.example\" || dnsDomainIs(h, \".intra.example\")) return \"DIRECT\";"
        ));
        assert_eq!(
            pac.matches("dnsDomainIs").count(),
            3,
            "an empty domain is skipped: {pac}"
        );
    }

    #[test]
    fn ipv6_proxies_are_written_as_given() {
        let pac = pac_file("[::1]:3128", &[]);
        assert!(pac.contains("return \"PROXY [::1]:3128; DIRECT\";"));
    }

    #[test]
    fn hostile_values_stay_inside_one_string_literal() {
        let proxy = "a\"; alert(1); \"\\\n\r\u{2028}\u{2029}</script>\u{0}é😀";
        let pac = pac_file(proxy, &[PacDirect::Domain("x\"y\n".into())]);
        let last = pac.lines().rev().nth(1).unwrap();
        assert_eq!(
            last,
            "  return \"PROXY a\\\"; alert(1); \\\"\\\\\\u000a\\u000d\\u2028\\u2029\\u003c/script>\\u0000\\u00e9\\ud83d\\ude00; DIRECT\";"
        );
        assert!(pac.contains("h == \"x\\\"y\\u000a\""), "{pac}");
        assert!(pac.is_ascii());
        // Nothing breaks a line but the generator's own newlines.
        assert!(!pac.contains('\r') && !pac.contains('\u{2028}'));
    }

    #[test]
    fn js_strings_escape_only_what_needs_it() {
        assert_eq!(js_string("PROXY h:1; DIRECT"), "\"PROXY h:1; DIRECT\"");
        assert_eq!(js_string(""), "\"\"");
        assert_eq!(js_string("\t'"), "\"\\u0009'\"");
        assert_eq!(js_string("\u{7f}"), "\"\\u007f\"");
    }
}
