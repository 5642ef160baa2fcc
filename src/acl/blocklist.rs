//! Blocked destinations: domains from `--block` and `--block-list` files, and address
//! ranges from `--block-ip`.
//!
//! A domain rule blocks the domain itself and every subdomain, so a lookup walks the
//! host's parent domains (one hash lookup per label) instead of scanning the rules: it
//! runs once per request.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::cidr::Cidr;
use crate::http::target::is_host_name;
use crate::stamp::Stamp;

/// Hosts-file entries that name the machine itself, not a site to block.
const HOSTS_FILE_SELF_NAMES: [&str; 5] = [
    "localhost",
    "localhost.localdomain",
    "broadcasthost",
    "local",
    "0.0.0.0",
];

/// Blocked destinations: domains (from `--block` flags and `--block-list` files) and IP
/// CIDRs (`--block-ip`).
///
/// Domain matching ignores case and one trailing dot, and a rule matches the domain and
/// all its subdomains: "example.com" blocks "a.b.example.com" but not "badexample.com".
#[derive(Debug)]
pub struct Blocklist {
    flags: HashSet<Box<str>>,
    lists: Vec<ListFile>,
    ips: Vec<Cidr>,
}

/// One `--block-list` file and the domains last read from it.
#[derive(Debug)]
struct ListFile {
    path: PathBuf,
    stamp: Stamp,
    domains: HashSet<Box<str>>,
    /// Set once the file could not be re-read, so the warning is logged once per outage.
    failing: bool,
}

impl Blocklist {
    /// Builds the list, reading every file now. A missing or unreadable file, or an
    /// invalid `--block` domain, is an `Err` naming it, so start-up fails clearly.
    /// Invalid lines in a file are skipped with one warning per file.
    pub fn new(
        domains: Vec<String>,
        files: Vec<PathBuf>,
        ips: Vec<Cidr>,
    ) -> Result<Blocklist, String> {
        let mut flags = HashSet::with_capacity(domains.len());
        for d in &domains {
            let name = normalize(d.as_bytes())
                .ok_or_else(|| format!("--block {d:?}: not a valid domain name"))?;
            flags.insert(name);
        }
        let mut lists = Vec::with_capacity(files.len());
        for path in files {
            let (stamp, domains) = load(&path)?;
            lists.push(ListFile {
                path,
                stamp,
                domains,
                failing: false,
            });
        }
        Ok(Blocklist { flags, lists, ips })
    }

    /// `Some(rule description)` when `host` or one of its parent domains is blocked,
    /// e.g. "site ads.example.com (--block)" or
    /// "site ads.example.com (list /etc/larder/ads.txt)". `host` is lowercased and one
    /// trailing dot dropped here. An IP-literal host (brackets optional for IPv6) is
    /// matched exactly against the domain rules and then against the IP rules.
    #[inline]
    pub fn blocked_host(&self, host: &str) -> Option<String> {
        // Every request asks; with no rules at all there is nothing to parse or hash,
        // and asked inline, not even a call to make (the search's set-up, saving
        // registers and room for an address, costs more than these three looks).
        if self.is_empty() {
            return None;
        }
        self.search_host(host)
    }

    /// [`Blocklist::blocked_host`] when there are rules.
    #[inline(never)]
    fn search_host(&self, host: &str) -> Option<String> {
        let host = host.strip_suffix('.').unwrap_or(host);
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            host
        };
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            // The parents of "10.1.2.3" ("1.2.3", ...) are not domains.
            return self.domain_rule(bare).or_else(|| self.blocked_ip(ip));
        }
        let mut name = host;
        loop {
            if let Some(rule) = self.domain_rule(name) {
                return Some(rule);
            }
            name = name.split_once('.')?.1;
        }
    }

    /// `Some("address 10.0.0.1 (--block-ip 10.0.0.0/8)")` when `ip` is in a blocked
    /// range. An IPv4-mapped IPv6 address is matched, and reported, as IPv4.
    pub fn blocked_ip(&self, ip: IpAddr) -> Option<String> {
        let ip = ip.to_canonical();
        self.ips
            .iter()
            .find(|c| c.contains(ip))
            .map(|c| format!("address {ip} (--block-ip {c})"))
    }

    /// Re-reads the list files whose inode, length or mtime changed since they were last
    /// read, and returns how many were reloaded. A file that cannot be read keeps its
    /// previous domains (with one warning until it is readable again). Costs one
    /// `metadata()` per file when nothing changed.
    pub fn reload_changed(&mut self) -> usize {
        self.reload(false)
    }

    /// Re-reads every list file, changed or not (SIGHUP), and returns how many were
    /// read. A file that cannot be read keeps its previous domains, with a warning.
    pub fn reload_all(&mut self) -> usize {
        self.reload(true)
    }

    fn reload(&mut self, force: bool) -> usize {
        let mut reloaded = 0;
        for list in &mut self.lists {
            if force {
                // Asked for by the operator: a file that still fails is said again.
                list.failing = false;
            }
            let changed = match fs::metadata(&list.path) {
                Ok(_) if force => true,
                Ok(meta) => Stamp::of(&meta) != list.stamp,
                Err(e) => {
                    list.fail(&format!(
                        "cannot read block list {}: {e}",
                        list.path.display()
                    ));
                    false
                }
            };
            if !changed {
                continue;
            }
            match load(&list.path) {
                Ok((stamp, domains)) => {
                    log::info!(
                        "reloaded block list {}: {} domains",
                        list.path.display(),
                        domains.len()
                    );
                    list.stamp = stamp;
                    list.domains = domains;
                    list.failing = false;
                    reloaded += 1;
                }
                Err(e) => list.fail(&e),
            }
        }
        reloaded
    }

    /// Whether no rule blocks anything right now (a reload may change that).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
            && self.ips.is_empty()
            && self.lists.iter().all(|l| l.domains.is_empty())
    }

    fn domain_rule(&self, name: &str) -> Option<String> {
        if self.flags.contains(name) {
            return Some(format!("site {name} (--block)"));
        }
        self.lists
            .iter()
            .find(|l| l.domains.contains(name))
            .map(|l| format!("site {name} (list {})", l.path.display()))
    }
}

impl ListFile {
    fn fail(&mut self, why: &str) {
        if !self.failing {
            log::warn!("{why}; keeping its previous {} domains", self.domains.len());
            self.failing = true;
        }
    }
}

/// Reads and parses one list file; the stamp is taken from the opened file so that a
/// change racing with the read shows up as a new stamp at the next check.
fn load(path: &Path) -> Result<(Stamp, HashSet<Box<str>>), String> {
    let fail = |e: std::io::Error| format!("cannot read block list {}: {e}", path.display());
    let mut file = File::open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(fail)?;
    let parsed = parse(&text);
    if let Some(line) = parsed.first_invalid_line {
        log::warn!(
            "block list {}: skipped {} invalid entries (the first on line {line})",
            path.display(),
            parsed.invalid
        );
    }
    Ok((Stamp::of(&meta), parsed.domains))
}

/// The domains of a list file, and what was skipped.
#[derive(Debug)]
struct Parsed {
    domains: HashSet<Box<str>>,
    invalid: usize,
    /// 1-based line number of the first invalid entry.
    first_invalid_line: Option<usize>,
}

impl Parsed {
    /// Adds `name` if it is a valid domain; false if it is not.
    fn add(&mut self, name: &[u8]) -> bool {
        normalize(name).map(|d| self.domains.insert(d)).is_some()
    }
}

/// Parses a list: one domain a line, or hosts-file lines ("0.0.0.0 a.com b.com"), with
/// `#` comments, blank lines and CRLF endings. Works on bytes so that a stray non-UTF-8
/// line is one invalid entry rather than a failed file.
fn parse(text: &[u8]) -> Parsed {
    let mut parsed = Parsed {
        domains: HashSet::new(),
        invalid: 0,
        first_invalid_line: None,
    };
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.split(|&b| b == b'#').next().unwrap_or(line);
        let mut tokens = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty());
        let Some(first) = tokens.next() else {
            continue;
        };
        let mut valid = true;
        if is_address(first) {
            for name in tokens {
                if HOSTS_FILE_SELF_NAMES.iter().any(|n| n.as_bytes() == name) {
                    continue;
                }
                valid &= parsed.add(name);
            }
        } else if tokens.next().is_some() {
            valid = false;
        } else {
            valid = parsed.add(first);
        }
        if !valid {
            parsed.invalid += 1;
            parsed.first_invalid_line.get_or_insert(index + 1);
        }
    }
    parsed
}

/// Whether a hosts-file line starts with an address; IPv6 ones may carry a zone
/// ("fe80::1%lo0").
fn is_address(token: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(token) else {
        return false;
    };
    let text = text.split('%').next().unwrap_or(text);
    text.parse::<IpAddr>().is_ok()
}

/// The rule form of a domain: lowercase, without a leading "*." or "." (subdomains are
/// always blocked) or one trailing dot. `None` unless it is a plausible host name:
/// labels of letters, digits, '-' and '_' (seen in real ad domains), 1–63 bytes each,
/// at most 253 bytes in all.
fn normalize(name: &[u8]) -> Option<Box<str>> {
    let name = name
        .strip_prefix(b"*.")
        .or_else(|| name.strip_prefix(b"."))
        .unwrap_or(name);
    let name = name.strip_suffix(b".").unwrap_or(name);
    if !is_host_name(name) {
        return None;
    }
    String::from_utf8(name.to_ascii_lowercase())
        .ok()
        .map(String::into_boxed_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    /// A file under the temp dir, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(content: &str) -> TempFile {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "larder-blocklist-{}-{}.txt",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::write(&path, content).unwrap();
            TempFile(path)
        }

        /// Rewrites the file and moves its mtime, so the change is seen even when the
        /// filesystem's mtime granularity is coarse.
        fn rewrite(&self, content: &str) {
            let mut f = File::create(&self.0).unwrap();
            f.write_all(content.as_bytes()).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
                .unwrap();
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    fn domains(list: &[&str]) -> Blocklist {
        Blocklist::new(list.iter().map(|s| s.to_string()).collect(), vec![], vec![]).unwrap()
    }

    fn names(text: &str) -> Vec<String> {
        let mut v: Vec<String> = parse(text.as_bytes())
            .domains
            .into_iter()
            .map(String::from)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rule_blocks_domain_and_subdomains() {
        let b = domains(&["ads.example.com"]);
        let want = Some("site ads.example.com (--block)".to_string());
        assert_eq!(b.blocked_host("ads.example.com"), want);
        assert_eq!(b.blocked_host("x.ads.example.com"), want);
        assert_eq!(b.blocked_host("a.b.c.ads.example.com"), want);
        assert_eq!(b.blocked_host("example.com"), None);
        assert_eq!(b.blocked_host("www.example.com"), None);
    }

    #[test]
    fn rule_does_not_match_a_longer_label() {
        let b = domains(&["example.com"]);
        assert_eq!(b.blocked_host("badexample.com"), None);
        assert_eq!(b.blocked_host("example.com.evil.net"), None);
        assert_eq!(b.blocked_host("example.co"), None);
        assert!(b.blocked_host("a.b.example.com").is_some());
    }

    #[test]
    fn matching_ignores_case_and_trailing_dot() {
        let b = domains(&["Ads.Example.COM."]);
        let want = Some("site ads.example.com (--block)".to_string());
        assert_eq!(b.blocked_host("ADS.example.com"), want);
        assert_eq!(b.blocked_host("x.ads.example.com."), want);
        assert_eq!(b.blocked_host("X.Ads.Example.Com."), want);
    }

    #[test]
    fn odd_hosts_do_not_match_or_panic() {
        let b = domains(&["com"]);
        assert_eq!(b.blocked_host(""), None);
        assert_eq!(b.blocked_host("."), None);
        assert_eq!(b.blocked_host(".."), None);
        assert!(b.blocked_host("a..com").is_some());
        assert_eq!(b.blocked_host("comx"), None);
        assert_eq!(b.blocked_host("ü.de"), None);
    }

    #[test]
    fn invalid_block_flag_fails_start_up() {
        let err = Blocklist::new(vec!["bad name".into()], vec![], vec![]).unwrap_err();
        assert!(err.contains("--block \"bad name\""), "{err}");
        assert!(Blocklist::new(vec!["".into()], vec![], vec![]).is_err());
        assert!(Blocklist::new(vec!["a..b".into()], vec![], vec![]).is_err());
    }

    #[test]
    fn wildcard_prefix_is_stripped() {
        let b = domains(&["*.tracker.net", ".ads.org"]);
        assert!(b.blocked_host("tracker.net").is_some());
        assert!(b.blocked_host("x.ads.org").is_some());
    }

    #[test]
    fn ip_rules_match_addresses_and_ip_literal_hosts() {
        let ips = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        let b = Blocklist::new(vec![], vec![], ips).unwrap();
        let want = Some("address 10.0.0.1 (--block-ip 10.0.0.0/8)".to_string());
        assert_eq!(b.blocked_ip("10.0.0.1".parse().unwrap()), want);
        assert_eq!(b.blocked_ip("::ffff:10.0.0.1".parse().unwrap()), want);
        assert_eq!(b.blocked_ip("11.0.0.1".parse().unwrap()), None);
        assert_eq!(b.blocked_host("10.0.0.1"), want);
        assert!(b.blocked_host("2001:db8::5").is_some());
        assert!(b.blocked_host("[2001:db8::5]").is_some());
        assert_eq!(b.blocked_host("[2001:db9::5]"), None);
    }

    #[test]
    fn ip_literal_host_matches_domain_rules_exactly_only() {
        let b = domains(&["1.2.3.4", "4"]);
        assert_eq!(
            b.blocked_host("1.2.3.4"),
            Some("site 1.2.3.4 (--block)".to_string())
        );
        assert_eq!(b.blocked_host("9.9.9.4"), None);
    }

    #[test]
    fn plain_list_one_domain_a_line() {
        assert_eq!(
            names("a.com\nB.org.\n*.c.net\n.d.io\n"),
            ["a.com", "b.org", "c.net", "d.io"]
        );
    }

    #[test]
    fn hosts_file_lines_take_every_name_after_the_address() {
        let text = "0.0.0.0 ads.example.com\n127.0.0.1 a.com  b.com\t c.com\n::1 v6.com\n";
        assert_eq!(
            names(text),
            ["a.com", "ads.example.com", "b.com", "c.com", "v6.com"]
        );
    }

    #[test]
    fn hosts_file_self_entries_are_ignored() {
        let text = "127.0.0.1 localhost\n127.0.0.1 localhost.localdomain\n\
                    255.255.255.255 broadcasthost\n127.0.0.1 local\n0.0.0.0 0.0.0.0\n\
                    fe80::1%lo0 localhost\n0.0.0.0 real.com\n";
        let p = parse(text.as_bytes());
        assert_eq!(p.invalid, 0);
        assert_eq!(names(text), ["real.com"]);
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_tolerated() {
        let text =
            "# a list\r\n\r\n   \r\nx.com # trailing\r\n0.0.0.0 y.com#z.com\r\n\t# indented\n";
        let p = parse(text.as_bytes());
        assert_eq!(p.invalid, 0);
        assert_eq!(names(text), ["x.com", "y.com"]);
    }

    #[test]
    fn invalid_entries_are_counted_and_skipped() {
        let text = "ok.com\nnot a domain\nbad/path.com\n0.0.0.0 good.com b@d.com\n\
                    a..b\n\u{e9}.fr\nlast.com";
        let p = parse(text.as_bytes());
        assert_eq!(p.invalid, 5);
        assert_eq!(p.first_invalid_line, Some(2));
        assert_eq!(names(text), ["good.com", "last.com", "ok.com"]);
    }

    #[test]
    fn non_utf8_line_is_one_invalid_entry() {
        let p = parse(b"a.com\n\xff\xfe.com\nb.com\n");
        assert_eq!(p.invalid, 1);
        assert_eq!(p.domains.len(), 2);
    }

    #[test]
    fn over_long_names_are_invalid() {
        let label = "a".repeat(64);
        assert!(normalize(format!("{label}.com").as_bytes()).is_none());
        let long = vec!["a".repeat(60); 5].join(".");
        assert!(normalize(long.as_bytes()).is_none());
        assert!(normalize("a".repeat(63).as_bytes()).is_some());
    }

    #[test]
    fn list_file_rule_names_its_path() {
        let f = TempFile::new("ads.example.com\n");
        let b = Blocklist::new(vec![], vec![f.0.clone()], vec![]).unwrap();
        assert_eq!(
            b.blocked_host("x.ads.example.com"),
            Some(format!("site ads.example.com (list {})", f.0.display()))
        );
        assert!(!b.is_empty());
    }

    #[test]
    fn unreadable_file_at_start_is_an_error_naming_it() {
        let path = std::env::temp_dir().join("larder-no-such-block-list.txt");
        let err = Blocklist::new(vec![], vec![path.clone()], vec![]).unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");
        let dir = std::env::temp_dir();
        let err = Blocklist::new(vec![], vec![dir], vec![]).unwrap_err();
        assert!(err.contains("cannot read block list"), "{err}");
    }

    #[test]
    fn changed_file_is_reloaded() {
        let f = TempFile::new("old.com\n");
        let mut b = Blocklist::new(vec![], vec![f.0.clone()], vec![]).unwrap();
        assert_eq!(b.reload_changed(), 0);
        f.rewrite("new.com\nother.com\n");
        assert_eq!(b.reload_changed(), 1);
        assert_eq!(b.blocked_host("old.com"), None);
        assert!(b.blocked_host("www.new.com").is_some());
        assert_eq!(b.reload_changed(), 0);
    }

    #[test]
    fn same_length_change_is_seen_through_mtime() {
        let f = TempFile::new("aaa.com\n");
        let mut b = Blocklist::new(vec![], vec![f.0.clone()], vec![]).unwrap();
        f.rewrite("bbb.com\n");
        assert_eq!(b.reload_changed(), 1);
        assert!(b.blocked_host("bbb.com").is_some());
    }

    #[test]
    fn file_replaced_by_rename_is_reloaded() {
        let f = TempFile::new("aaa.com\n");
        let mut b = Blocklist::new(vec![], vec![f.0.clone()], vec![]).unwrap();
        let new = TempFile::new("bbb.com\n");
        let meta = fs::metadata(&f.0).unwrap();
        File::options()
            .write(true)
            .open(&new.0)
            .unwrap()
            .set_modified(meta.modified().unwrap())
            .unwrap();
        fs::rename(&new.0, &f.0).unwrap();
        assert_eq!(b.reload_changed(), 1);
        assert!(b.blocked_host("bbb.com").is_some());
    }

    #[test]
    fn vanished_file_keeps_its_domains() {
        let f = TempFile::new("kept.com\n");
        let mut b = Blocklist::new(vec![], vec![f.0.clone()], vec![]).unwrap();
        fs::remove_file(&f.0).unwrap();
        assert_eq!(b.reload_changed(), 0);
        assert_eq!(b.reload_changed(), 0);
        assert!(b.blocked_host("kept.com").is_some());
        f.rewrite("back.com\n");
        assert_eq!(b.reload_changed(), 1);
        assert!(b.blocked_host("back.com").is_some());
    }

    #[test]
    fn empty_when_no_rules() {
        assert!(Blocklist::new(vec![], vec![], vec![]).unwrap().is_empty());
        let f = TempFile::new("# nothing yet\n");
        assert!(Blocklist::new(vec![], vec![f.0.clone()], vec![])
            .unwrap()
            .is_empty());
        assert!(!domains(&["a.com"]).is_empty());
    }

    #[test]
    fn large_list_loads() {
        let mut text = String::new();
        for i in 0..100_000 {
            text.push_str(&format!("0.0.0.0 host{i}.ads{}.example.com\n", i % 97));
        }
        let f = TempFile::new(&text);
        let b = Blocklist::new(vec![], vec![f.0.clone()], vec![]).unwrap();
        assert!(b.blocked_host("x.host99999.ads89.example.com").is_some());
        assert_eq!(b.lists[0].domains.len(), 100_000);
    }
}
