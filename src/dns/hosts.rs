//! `--hosts FILE`: names larder resolves from a file of its own before it asks the
//! system resolver, in the format of `/etc/hosts` (Squid's `hosts_file`). An operator
//! pins a name for larder alone — an origin being migrated, a split-horizon name, a
//! test host with several addresses — without touching the machine's resolver.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use super::MAX_ADDRS;
use crate::http::target::is_host_name;

/// Most names a hosts file may give: the table lives in memory for the process's life.
const MAX_NAMES: usize = 100_000;

/// The names of a hosts file and their addresses, in the file's order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hosts {
    names: HashMap<String, Arc<[IpAddr]>>,
}

/// Why a hosts file was refused: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsError {
    /// 1-based line number; 0 when the error is not about one line.
    pub line: usize,
    /// What is wrong, for the operator.
    pub reason: String,
}

impl fmt::Display for HostsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl Hosts {
    /// Reads and parses the hosts file at `path`.
    ///
    /// # Errors
    /// The file cannot be read, or a line is not `ADDRESS NAME...`; the message names
    /// the file and the line.
    pub fn read(path: &Path) -> Result<Hosts, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--hosts {}: {e}", path.display()))?;
        Hosts::parse(&text).map_err(|e| format!("--hosts {}: {e}", path.display()))
    }

    /// Parses hosts-file text: one `ADDRESS NAME [NAME...]` a line, `#` to the end of a
    /// line is a comment, blank lines are skipped. A name on several lines gets every
    /// address, in file order (the order larder tries them in, IPv6 first when both
    /// families are there: see `conn::connect`). Names are matched without regard to
    /// case and without a trailing dot.
    ///
    /// # Errors
    /// The first line whose address is not an IP address, that has no name, or whose
    /// name is not a host name; or more names than [`MAX_NAMES`].
    pub fn parse(text: &str) -> Result<Hosts, HostsError> {
        let mut lists: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let err = |reason: String| HostsError {
                line: line_no,
                reason,
            };
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_ascii_whitespace();
            let Some(addr) = fields.next() else { continue };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| err(format!("`{addr}` is not an IP address")))?;
            let mut named = false;
            for name in fields {
                let name =
                    normalise(name).ok_or_else(|| err(format!("`{name}` is not a host name")))?;
                named = true;
                if !lists.contains_key(&name) && lists.len() >= MAX_NAMES {
                    return Err(err(format!("more than {MAX_NAMES} names")));
                }
                let ips = lists.entry(name).or_default();
                if !ips.contains(&ip) && ips.len() < MAX_ADDRS {
                    ips.push(ip);
                }
            }
            if !named {
                return Err(err(format!("no name after `{addr}`")));
            }
        }
        let names = lists
            .into_iter()
            .map(|(name, ips)| (name, Arc::from(ips)))
            .collect();
        Ok(Hosts { names })
    }

    /// The addresses the file gives `host` (already lowercase, as lookups are).
    pub fn get(&self, host: &str) -> Option<&Arc<[IpAddr]>> {
        if self.names.is_empty() {
            return None;
        }
        self.names.get(host.strip_suffix('.').unwrap_or(host))
    }

    /// Names in the file.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The file gave no name.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// `name` lowercased without a trailing dot, if it is a host name
/// ([`is_host_name`]).
fn normalise(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    is_host_name(name.as_bytes()).then(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ips(h: &Hosts, name: &str) -> Vec<IpAddr> {
        h.get(name).map(|a| a.to_vec()).unwrap_or_default()
    }

    #[test]
    fn names_get_every_address_in_file_order() {
        let h = Hosts::parse(
            "# pinned for larder\n\
             ::1 dual.test\n\
             \n\
             127.0.0.1\tdual.test   Other.TEST. # the IPv4 one\n\
             127.0.0.1 dual.test\n",
        )
        .unwrap();
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(ips(&h, "dual.test"), vec![v6, v4]);
        assert_eq!(ips(&h, "other.test"), vec![v4]);
        assert_eq!(ips(&h, "other.test."), vec![v4]);
        assert_eq!(ips(&h, "absent.test"), Vec::<IpAddr>::new());
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn a_bad_line_is_refused_with_its_number() {
        let cases = [
            (
                "127.0.0.1 ok\nnot-an-ip name\n",
                2,
                "`not-an-ip` is not an IP address",
            ),
            ("10.0.0.1\n", 1, "no name after `10.0.0.1`"),
            ("10.0.0.1 a..b\n", 1, "`a..b` is not a host name"),
            ("10.0.0.1 a/b\n", 1, "`a/b` is not a host name"),
            ("10.0.0.300 a\n", 1, "`10.0.0.300` is not an IP address"),
        ];
        for (text, line, reason) in cases {
            let e = Hosts::parse(text).unwrap_err();
            assert_eq!((e.line, e.reason.as_str()), (line, reason), "{text:?}");
            assert_eq!(e.to_string(), format!("line {line}: {reason}"));
        }
    }

    #[test]
    fn addresses_per_name_are_capped() {
        let text: String = (0..40).map(|i| format!("10.0.0.{i} many\n")).collect();
        let h = Hosts::parse(&text).unwrap();
        assert_eq!(ips(&h, "many").len(), MAX_ADDRS);
    }

    #[test]
    fn a_missing_file_names_itself() {
        let e = Hosts::read(Path::new("/nonexistent/larder-hosts")).unwrap_err();
        assert!(e.starts_with("--hosts /nonexistent/larder-hosts: "), "{e}");
    }
}
