//! The proxy auto-config file (`/proxy.pac`, `/wpad.dat`): a `FindProxyForURL` that
//! sends everything through larder, except plain host names, loopback and the
//! `--pac-direct` destinations.

use std::fmt;
use std::net::Ipv4Addr;

/// One `--pac-direct` rule: a destination the browser reaches without the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacDirect {
    /// An IPv4 range, matched against hosts written as IPv4 literals (a PAC file
    /// cannot resolve names cheaply: a DNS lookup there blocks the browser).
    Net { addr: Ipv4Addr, prefix: u8 },
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
        let valid = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
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
