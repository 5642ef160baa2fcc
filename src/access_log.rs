//! The access log: one line per request in Squid's native `access.log` format, so
//! calamaris, SARG and GoAccess (squid format) read it.
//!
//! Lines are collected in memory and written by [`AccessLog::flush`], which the event
//! loop calls a few times a second: a request never waits on the disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The buffer size past which [`AccessLog::write`] flushes at once.
const FLUSH_AT: usize = 64 * 1024;
/// How often [`AccessLog::flush`] looks for a rotated file.
const ROTATE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// At most one warning about a failing log per this period: a full disk must not
/// flood the error log too.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What happened to a request, in Squid's words (the first half of the
/// `TCP_MISS/200` field of its access log; the same names label `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultCode {
    /// Answered from the cache.
    Hit,
    /// Answered 304 from the cache to the client's own conditional.
    ImsHit,
    /// Fetched from the origin (or from another request's fetch of the same URL).
    Miss,
    /// A stale entry was revalidated and the origin said it is unchanged (304).
    RefreshUnmodified,
    /// A stale entry was revalidated and the origin sent a new response.
    RefreshModified,
    /// The client asked for a fresh copy (`no-cache`, `max-age=0`).
    ClientRefreshMiss,
    /// A stale entry's revalidation failed (the origin unreachable, or 5xx) and the
    /// stale entry answered.
    RefreshFailOld,
    /// A stale entry answered at once while it was revalidated behind the client's
    /// back (`stale-while-revalidate`).
    StaleHit,
    /// A forwarded response the client did not get whole.
    MissAborted,
    /// A response from the cache the client did not get whole.
    HitAborted,
    /// Refused: client not allowed, site blocked, port not allowed.
    Denied,
    /// A CONNECT tunnel.
    Tunnel,
    /// No request could be read (bad or incomplete head), or larder answered itself.
    None,
}

impl ResultCode {
    /// Every code, in the order of their `usize` values (for counters).
    pub const ALL: [ResultCode; 13] = [
        ResultCode::Hit,
        ResultCode::ImsHit,
        ResultCode::Miss,
        ResultCode::RefreshUnmodified,
        ResultCode::RefreshModified,
        ResultCode::ClientRefreshMiss,
        ResultCode::RefreshFailOld,
        ResultCode::StaleHit,
        ResultCode::MissAborted,
        ResultCode::HitAborted,
        ResultCode::Denied,
        ResultCode::Tunnel,
        ResultCode::None,
    ];

    /// The code as Squid spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultCode::Hit => "TCP_HIT",
            ResultCode::ImsHit => "TCP_IMS_HIT",
            ResultCode::Miss => "TCP_MISS",
            ResultCode::RefreshUnmodified => "TCP_REFRESH_UNMODIFIED",
            ResultCode::RefreshModified => "TCP_REFRESH_MODIFIED",
            ResultCode::ClientRefreshMiss => "TCP_CLIENT_REFRESH_MISS",
            ResultCode::RefreshFailOld => "TCP_REFRESH_FAIL_OLD",
            ResultCode::StaleHit => "TCP_STALE_HIT",
            ResultCode::MissAborted => "TCP_MISS_ABORTED",
            ResultCode::HitAborted => "TCP_HIT_ABORTED",
            ResultCode::Denied => "TCP_DENIED",
            ResultCode::Tunnel => "TCP_TUNNEL",
            ResultCode::None => "TAG_NONE",
        }
    }

    /// Whether the body came from the cache (Squid's `isTcpHit`): these are the hits
    /// of the hit ratio, and their bytes the bandwidth the cache saved.
    pub fn is_hit(self) -> bool {
        matches!(
            self,
            ResultCode::Hit
                | ResultCode::ImsHit
                | ResultCode::RefreshUnmodified
                | ResultCode::RefreshFailOld
                | ResultCode::StaleHit
        )
    }
}

/// How the response was fetched, in Squid's words (the hierarchy field, before the
/// `/` and the peer's address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hier {
    /// Straight from the origin (or nothing was fetched: then the log says
    /// `HIER_NONE`, because there is no peer).
    #[default]
    Direct,
    /// Through the only parent, or the first one up in the configured order.
    FirstUpParent,
    /// Through the parent that hashing (CARP) chose among several.
    Carp,
    /// A parent answered from its own cache (its `Cache-Status` or `X-Cache` says so).
    ParentHit,
    /// Nothing was fetched, yet an address is worth logging: a destination refused
    /// (`HIER_NONE/169.254.169.254`).
    None,
}

impl Hier {
    /// The code as Squid spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Hier::Direct => "HIER_DIRECT",
            Hier::FirstUpParent => "FIRSTUP_PARENT",
            Hier::Carp => "CARP",
            Hier::ParentHit => "PARENT_HIT",
            Hier::None => "HIER_NONE",
        }
    }
}

/// One finished request, as logged.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// When the request finished.
    pub time: SystemTime,
    /// Time from the start of the request to its end (logged in milliseconds).
    pub elapsed: Duration,
    /// The client's address; `None` for larder's own requests (a revalidation in
    /// the background), logged "-".
    pub client: Option<IpAddr>,
    /// Squid result code.
    pub result: ResultCode,
    /// 0 when no status was sent; printed "000".
    pub status: u16,
    /// Bytes sent to the client, heads included.
    pub bytes: u64,
    /// "-" if unknown.
    pub method: &'a str,
    /// "-" if unknown.
    pub url: &'a str,
    /// The upstream address; `None` when no upstream was contacted.
    pub peer: Option<IpAddr>,
    /// How the upstream was reached (ignored without a `peer`).
    pub hier: Hier,
    /// "-" if none.
    pub content_type: &'a str,
    /// The user the request authenticated as (`--auth-file`); "-" if none.
    pub user: Option<&'a str>,
}

/// Appends `e` to `out` as one Squid native log line ending in '\n':
/// `{secs}.{millis} {elapsed_ms:>6} {client} {result}/{status:03} {bytes} {method} {url} {user} {hier}/{peer} {type}`,
/// where `user` is "-" unless the request authenticated (Squid's user column).
///
/// The text fields are escaped (space, control and non-ASCII bytes as `%XX`, an empty
/// field as "-") so that every line has the same number of space-separated fields
/// whatever a client sent.
pub fn format_entry(e: &Entry, out: &mut Vec<u8>) {
    // A clock before 1970 is a broken clock; 0 keeps the line parseable.
    let since_epoch = e.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Writing to a Vec cannot fail, so the io::Results below carry nothing.
    let _ = write!(
        out,
        "{}.{:03} {:>6} ",
        since_epoch.as_secs(),
        since_epoch.subsec_millis(),
        e.elapsed.as_millis(),
    );
    let _ = match e.client {
        Some(ip) => write!(out, "{} ", ip.to_canonical()),
        None => out.write_all(b"- "),
    };
    push_field(out, e.result.as_str());
    let _ = write!(out, "/{:03} {} ", e.status, e.bytes);
    push_field(out, e.method);
    out.push(b' ');
    push_field(out, e.url);
    out.push(b' ');
    push_field(out, e.user.unwrap_or_default());
    let _ = match e.peer {
        Some(ip) => write!(out, " {}/{} ", e.hier.as_str(), ip.to_canonical()),
        None => out.write_all(b" HIER_NONE/- "),
    };
    push_field(out, e.content_type);
    out.push(b'\n');
}

/// Appends `field` with every byte that could split or break the line escaped.
fn push_field(out: &mut Vec<u8>, field: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if field.is_empty() {
        out.push(b'-');
        return;
    }
    for b in field.bytes() {
        if b.is_ascii_graphic() {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// A buffered access-log writer. The file is opened in append mode, created if
/// missing, and re-opened when it is rotated away (see [`AccessLog::reopen_if_rotated`])
/// or when asked to ([`AccessLog::reopen`], on SIGHUP and SIGUSR1). The path `-` means
/// standard output. Write errors never reach the caller: the lines are dropped with a
/// rate-limited warning, because the proxy must keep serving when the log disk is full.
#[derive(Debug)]
pub struct AccessLog {
    path: PathBuf,
    out: Sink,
    buf: Vec<u8>,
    last_rotate_check: Instant,
    last_warning: Option<Instant>,
}

/// Where the lines go.
#[derive(Debug)]
enum Sink {
    /// A file, with the (device, inode) it had when opened, to notice that the path
    /// now names another file.
    File(File, (u64, u64)),
    Stdout,
}

impl AccessLog {
    /// Opens (or creates) the log at `path` for appending; `-` is standard output. The
    /// error does not name the path; the caller adds it.
    pub fn open(path: &Path) -> std::io::Result<AccessLog> {
        let out = if path == Path::new("-") {
            Sink::Stdout
        } else {
            let (file, id) = open_append(path)?;
            Sink::File(file, id)
        };
        Ok(AccessLog {
            path: path.to_path_buf(),
            out,
            buf: Vec::new(),
            last_rotate_check: Instant::now(),
            last_warning: None,
        })
    }

    /// Adds one line to the in-memory buffer. Writes to the file only when the buffer
    /// passes 64 KiB.
    pub fn write(&mut self, e: &Entry) {
        format_entry(e, &mut self.buf);
        if self.buf.len() > FLUSH_AT {
            self.flush();
        }
    }

    /// Writes the buffered lines, after checking for rotation at most once a second.
    /// On a write error the lines are dropped and a warning is logged (once a minute
    /// at most).
    pub fn flush(&mut self) {
        if self.last_rotate_check.elapsed() >= ROTATE_CHECK_EVERY {
            self.last_rotate_check = Instant::now();
            self.reopen_if_rotated();
        }
        self.write_out();
    }

    fn write_out(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let written = match &mut self.out {
            Sink::File(file, _) => file.write_all(&self.buf),
            Sink::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&self.buf).and_then(|()| stdout.flush())
            }
        };
        if let Err(e) = written {
            if self.may_warn() {
                log::warn!(
                    "access log {}: write failed, {} bytes of log lost: {e}",
                    self.path.display(),
                    self.buf.len()
                );
            }
        }
        self.buf.clear();
    }

    /// Re-opens the path when it no longer names the file we have open (a log rotator
    /// renamed or removed it), creating it if needed. If that fails, logging goes on to
    /// the old file and the next call tries again.
    pub fn reopen_if_rotated(&mut self) {
        let Sink::File(_, id) = &self.out else {
            return;
        };
        let current = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if current != Some(*id) {
            self.reopen_now();
        }
    }

    /// Writes out what is buffered, to the file open now, then opens the path afresh
    /// (the logrotate convention: `postrotate kill -USR1`). If the path cannot be
    /// opened, logging goes on to the old file.
    pub fn reopen(&mut self) {
        self.write_out();
        if matches!(self.out, Sink::File(..)) {
            self.reopen_now();
        }
    }

    fn reopen_now(&mut self) {
        match open_append(&self.path) {
            Ok((file, id)) => self.out = Sink::File(file, id),
            Err(e) => {
                if self.may_warn() {
                    log::warn!("access log {}: cannot re-open: {e}", self.path.display());
                }
            }
        }
    }

    /// True at most once per [`WARN_EVERY`].
    fn may_warn(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return false;
        }
        self.last_warning = Some(now);
        true
    }
}

impl Drop for AccessLog {
    /// Writes what is still buffered, so an early exit does not lose the last lines.
    fn drop(&mut self) {
        self.flush();
    }
}

fn open_append(path: &Path) -> std::io::Result<(File, (u64, u64))> {
    let file = OpenOptions::new().append(true).create(true).open(path)?;
    let meta = file.metadata()?;
    Ok((file, (meta.dev(), meta.ino())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn entry() -> Entry<'static> {
        Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            elapsed: Duration::from_millis(152),
            client: "127.0.0.1".parse().ok(),
            result: ResultCode::Miss,
            status: 200,
            bytes: 1234,
            method: "GET",
            url: "http://example.com/a",
            peer: Some("93.184.216.34".parse().unwrap()),
            hier: Hier::Direct,
            content_type: "text/html",
            user: None,
        }
    }

    fn line(e: &Entry) -> String {
        let mut out = Vec::new();
        format_entry(e, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn temp_path() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        std::env::temp_dir().join(format!(
            "larder-access-log-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    #[test]
    fn miss_line_matches_squid_native_format() {
        assert_eq!(
            line(&entry()),
            "1700000000.123    152 127.0.0.1 TCP_MISS/200 1234 GET http://example.com/a \
             - HIER_DIRECT/93.184.216.34 text/html\n"
        );
    }

    #[test]
    fn an_authenticated_user_fills_the_user_column_escaped() {
        let e = Entry {
            user: Some("alice"),
            ..entry()
        };
        assert_eq!(
            line(&e),
            "1700000000.123    152 127.0.0.1 TCP_MISS/200 1234 GET http://example.com/a \
             alice HIER_DIRECT/93.184.216.34 text/html\n"
        );
        let e = Entry {
            user: Some("bob smith\n"),
            ..entry()
        };
        assert!(
            line(&e).contains(" bob%20smith%0A HIER_DIRECT/"),
            "{}",
            line(&e)
        );
    }

    #[test]
    fn tunnel_line() {
        let e = Entry {
            result: ResultCode::Tunnel,
            bytes: 5012,
            method: "CONNECT",
            url: "example.com:443",
            peer: Some("1.2.3.4".parse().unwrap()),
            hier: Hier::Direct,
            content_type: "-",
            ..entry()
        };
        assert_eq!(
            line(&e),
            "1700000000.123    152 127.0.0.1 TCP_TUNNEL/200 5012 CONNECT example.com:443 \
             - HIER_DIRECT/1.2.3.4 -\n"
        );
    }

    #[test]
    fn denied_line_has_no_hierarchy_peer() {
        let e = Entry {
            result: ResultCode::Denied,
            status: 403,
            bytes: 345,
            url: "http://ads.example.com/",
            peer: None,
            hier: Hier::Direct,
            ..entry()
        };
        assert_eq!(
            line(&e),
            "1700000000.123    152 127.0.0.1 TCP_DENIED/403 345 GET http://ads.example.com/ \
             - HIER_NONE/- text/html\n"
        );
    }

    #[test]
    fn missing_status_and_empty_fields_keep_the_field_count() {
        let e = Entry {
            result: ResultCode::None,
            status: 0,
            bytes: 0,
            method: "",
            url: "",
            peer: None,
            hier: Hier::Direct,
            content_type: "",
            ..entry()
        };
        let l = line(&e);
        assert!(l.contains(" TAG_NONE/000 0 - - - HIER_NONE/- -\n"), "{l}");
        assert_eq!(l.split(' ').filter(|f| !f.is_empty()).count(), 10);
    }

    #[test]
    fn url_and_content_type_are_escaped() {
        let e = Entry {
            url: "http://x/a b\tc\r\nd\u{7f}\u{e9}",
            content_type: "text/html; charset=utf-8",
            method: "G T",
            ..entry()
        };
        let l = line(&e);
        assert!(
            l.contains(" G%20T http://x/a%20b%09c%0D%0Ad%7F%C3%A9 "),
            "{l}"
        );
        assert!(l.ends_with(" text/html;%20charset=utf-8\n"), "{l}");
        assert_eq!(l.matches('\n').count(), 1);
        assert_eq!(l.split(' ').filter(|f| !f.is_empty()).count(), 10);
    }

    #[test]
    fn elapsed_is_right_aligned_and_may_overflow_width() {
        let e = Entry {
            elapsed: Duration::from_millis(12_345_678),
            ..entry()
        };
        assert!(line(&e).starts_with("1700000000.123 12345678 "));
        let e = Entry {
            elapsed: Duration::ZERO,
            time: UNIX_EPOCH + Duration::from_millis(5),
            ..entry()
        };
        assert!(line(&e).starts_with("0.005      0 "));
    }

    #[test]
    fn mapped_v6_addresses_are_logged_as_v4() {
        let e = Entry {
            client: "::ffff:10.0.0.1".parse().ok(),
            peer: Some("2001:db8::1".parse().unwrap()),
            hier: Hier::Direct,
            ..entry()
        };
        let l = line(&e);
        assert!(l.contains(" 10.0.0.1 TCP_MISS/"), "{l}");
        assert!(l.contains(" HIER_DIRECT/2001:db8::1 "), "{l}");
    }

    #[test]
    fn time_before_epoch_does_not_panic() {
        let e = Entry {
            time: UNIX_EPOCH - Duration::from_secs(10),
            ..entry()
        };
        assert!(line(&e).starts_with("0.000 "));
    }

    #[test]
    fn lines_reach_the_file_only_on_flush() {
        let path = temp_path();
        let mut log = AccessLog::open(&path).unwrap();
        log.write(&entry());
        assert_eq!(fs::read(&path).unwrap(), b"");
        log.flush();
        assert_eq!(fs::read_to_string(&path).unwrap(), line(&entry()));
        drop(log);
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn open_appends_to_an_existing_log() {
        let path = temp_path();
        fs::write(&path, "old line\n").unwrap();
        let mut log = AccessLog::open(&path).unwrap();
        log.write(&entry());
        log.flush();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("old line\n{}", line(&entry())));
        drop(log);
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn full_buffer_flushes_by_itself() {
        let path = temp_path();
        let mut log = AccessLog::open(&path).unwrap();
        let one = line(&entry()).len();
        let mut written = 0;
        while written <= FLUSH_AT {
            log.write(&entry());
            written += one;
        }
        assert_eq!(fs::metadata(&path).unwrap().len(), written as u64);
        drop(log);
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn drop_flushes_pending_lines() {
        let path = temp_path();
        let mut log = AccessLog::open(&path).unwrap();
        log.write(&entry());
        drop(log);
        assert_eq!(fs::read_to_string(&path).unwrap(), line(&entry()));
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn rotated_file_is_reopened() {
        let path = temp_path();
        let rotated = path.with_extension("log.1");
        let mut log = AccessLog::open(&path).unwrap();
        log.write(&entry());
        log.flush();
        fs::rename(&path, &rotated).unwrap();
        log.reopen_if_rotated();
        log.write(&entry());
        log.flush();
        assert_eq!(fs::read_to_string(&rotated).unwrap(), line(&entry()));
        assert_eq!(fs::read_to_string(&path).unwrap(), line(&entry()));
        drop(log);
        fs::remove_file(&path).unwrap();
        fs::remove_file(&rotated).unwrap();
    }

    #[test]
    fn unrotated_file_is_kept() {
        let path = temp_path();
        let mut log = AccessLog::open(&path).unwrap();
        let id = |log: &AccessLog| match &log.out {
            Sink::File(_, id) => Some(*id),
            Sink::Stdout => None,
        };
        let before = id(&log);
        log.reopen_if_rotated();
        assert_eq!(id(&log), before);
        assert!(before.is_some());
        drop(log);
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn write_error_drops_lines_without_panicking() {
        // Every write to /dev/full fails with ENOSPC.
        let mut log = AccessLog::open(Path::new("/dev/full")).unwrap();
        log.write(&entry());
        log.flush();
        assert!(log.buf.is_empty());
        log.write(&entry());
        log.flush();
        assert!(log.buf.is_empty());
    }

    #[test]
    fn warnings_are_rate_limited() {
        let mut log = AccessLog::open(Path::new("/dev/full")).unwrap();
        assert!(log.may_warn());
        assert!(!log.may_warn());
    }
}
