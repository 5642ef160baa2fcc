//! `larder-cache`: inspect and maintain larder's cache file.
//!
//! It finds the cache exactly as larder does (`--cache-dir`, else [`dir::default_dir`])
//! and opens it through the same [`Store`], so there is one reader of the format.
//!
//! `stats`, `ls`, `get` and `verify` work whether larder runs or not: they open the file
//! read-only and without its lock ([`Store::open_read_only`]), never write a byte, and
//! show only records that pass their CRCs on a copy, so an object being written or
//! overwritten by the running larder is skipped, never shown torn. `purge` and `compact`
//! write the file: they take its lock, and while larder holds it they stop and say so
//! (a URL can be purged through the running proxy instead).
//!
//! Exit status: 0 done; 1 `verify` found damage, or `get`/`purge` found nothing; 2 bad
//! usage or a cache that cannot be opened (missing, foreign, newer version), or
//! `purge`/`compact` while larder runs. With `--json`, errors go to stderr as one JSON
//! object, `{"error":"..."}`.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use larder::cache::compact::{compact, Compacted};
use larder::cache::{dir, size, unix_now, CacheError, CheckedObject, Meta, Options, Store};
use larder::http::date::civil_from_days;
use larder::http::target::parse_absolute;

/// The address larder listens on unless told otherwise (`--listen`).
const DEFAULT_PROXY: &str = "http://127.0.0.1:3128";

/// larder-cache — inspect and maintain larder's cache.
#[derive(Debug, Parser)]
#[command(
    name = "larder-cache",
    version,
    about = "Inspect and maintain larder's cache file (stats, ls, get and verify also \
             while larder runs; purge and compact need it stopped)",
    long_about = "Inspect and maintain larder's cache file.\n\n\
        stats, ls, get and verify work while larder runs: they read the file without \
        its lock and never write to it, and show only objects that pass their CRC \
        checks. purge and compact change the file: they need larder stopped (a URL \
        can be purged through the running proxy: curl -X PURGE -x http://127.0.0.1:3128 URL)."
)]
struct Cli {
    /// The cache directory, as given to larder. Default: $XDG_CACHE_HOME/larder, else
    /// $HOME/.cache/larder, else ./larder-cache.
    #[arg(long, global = true, env = "LARDER_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Print JSON for scripts instead of text; errors go to stderr as {"error": "..."}.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Objects, live and dead bytes, capacity, write cursor, oldest and newest object.
    ///
    /// Live bytes are the bytes the stored objects' records take in the file (record
    /// header, URL, head, body, padding): the figure `compact` reports as kept. Works
    /// while larder runs (a snapshot of the file as it was read).
    Stats,
    /// Check every object's payload CRC; exit 1 naming the damaged records' offsets.
    ///
    /// Works while larder runs: an object that larder replaces or overwrites while it is
    /// checked is not damage; such objects are counted apart.
    Verify,
    /// List the stored objects: size, stored and expiry times (UTC), status, URL.
    ///
    /// Works while larder runs; only objects that pass their CRC checks are listed.
    Ls,
    /// Write a stored body to stdout (with --json: its metadata and head instead).
    ///
    /// The body is written only after its CRC is checked. Works while larder runs.
    Get {
        /// The URL, as a client asked for it (the scheme and host are matched in any
        /// case, as larder does; the path exactly).
        url: String,
        /// Write the stored response head instead of the body.
        #[arg(long)]
        head: bool,
    },
    /// Remove a URL from the cache, or every expired object. Needs larder stopped.
    #[command(override_usage = "larder-cache purge [OPTIONS] <URL>|--expired")]
    Purge {
        /// The URL, as a client asked for it (the scheme and host are matched in any
        /// case, as larder does; the path exactly).
        #[arg(required_unless_present = "expired", conflicts_with = "expired")]
        url: Option<String>,
        /// Remove every object whose expiry time has passed.
        #[arg(long)]
        expired: bool,
    },
    /// Rewrite the cache file with only its live objects, optionally at a new capacity.
    ///
    /// Writes a new file next to the old one, syncs it and renames it over the old one.
    /// Shrinking keeps the newest objects that fit. Needs larder stopped (or restart
    /// larder with a new --cache-size, which compacts the cache as it starts).
    Compact {
        /// The new capacity, e.g. 512M or 2G. Default: the current one.
        #[arg(long, value_name = "SIZE", value_parser = size::parse)]
        capacity: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --json asked for machine-readable errors; help and --version are not
            // errors and print as usual.
            let json = std::env::args_os().skip(1).any(|a| a == "--json");
            if json && e.use_stderr() {
                let text = e.render().to_string();
                let text = text.trim().trim_start_matches("error: ");
                report_error(text, true);
                return ExitCode::from(2);
            }
            e.exit();
        }
    };
    let dir = cli.cache_dir.clone().unwrap_or_else(dir::default_dir);
    match run(&cli, &dir::file_path(&dir), unix_now()) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Exit1(msg)) => {
            report_error(&msg, cli.json);
            ExitCode::from(1)
        }
        Err(msg) => {
            report_error(&msg, cli.json);
            ExitCode::from(2)
        }
    }
}

/// Writes an error to stderr: `larder-cache: MESSAGE`, or with `--json` one line
/// `{"error":"MESSAGE"}`.
fn report_error(msg: &str, json: bool) {
    if json {
        eprintln!("{}", Json::Obj(vec![("error", Json::Str(msg.to_owned()))]));
    } else {
        eprintln!("larder-cache: {msg}");
    }
}

/// How a command that ran to its end ended.
enum Outcome {
    Done,
    /// Exit 1 with this message: `verify` found damage, or there was nothing to get or
    /// purge.
    Exit1(String),
}

/// How the tool opens a cache: it must see every object the file holds, so no object
/// limit and no entry limit (the store would otherwise leave the oldest out of its
/// index).
fn options() -> Options {
    Options {
        capacity: 0,
        max_object: u64::MAX,
        max_entries: usize::MAX,
    }
}

fn run(cli: &Cli, path: &Path, now: u64) -> Result<Outcome, String> {
    // Never Store::open: the tool must not create a cache where a path was mistyped.
    // Reading takes no lock, so it works beside a running larder.
    let read = || Store::open_read_only(path, options(), now).map_err(|e| e.to_string());
    match &cli.command {
        Command::Stats => print(&stats_text(&read()?, cli.json)),
        Command::Verify => verify(&read()?, cli.json),
        Command::Ls => print(&ls_text(&read()?, cli.json)),
        Command::Get { url, head } => get(&read()?, url, *head, cli.json),
        Command::Purge { url, .. } => {
            let url = url.as_deref().map(cache_key);
            let change = url.as_deref().map_or(Change::PurgeExpired, Change::Purge);
            let mut store =
                Store::open_existing(path, options(), now).map_err(|e| refused(e, change))?;
            purge(&mut store, url.as_deref(), now, cli.json)
        }
        Command::Compact { capacity } => {
            let report = compact(path, *capacity, now).map_err(|e| refused(e, Change::Compact))?;
            print(&compact_text(&report, cli.json))
        }
    }
}

/// A command that changes the file, and so needs larder stopped.
#[derive(Clone, Copy)]
enum Change<'a> {
    /// `purge URL` (the cache key).
    Purge(&'a str),
    PurgeExpired,
    Compact,
}

/// The message for an error opening the cache to change it; while larder holds the
/// file, what to do instead.
fn refused(e: CacheError, change: Change<'_>) -> String {
    let CacheError::Locked(path) = &e else {
        return e.to_string();
    };
    let held = format!("larder is running and holds {}", path.display());
    match change {
        Change::Purge(url) => format!(
            "{held}; stop it first, or purge through the running proxy: \
             curl -X PURGE -x {DEFAULT_PROXY} {url}"
        ),
        Change::PurgeExpired => format!(
            "{held}; stop it first (while it runs, larder refetches expired objects when \
             they are asked for, and evicts the oldest as it needs room)"
        ),
        Change::Compact => format!(
            "{held}; stop it first (or restart larder with a new --cache-size, which \
             compacts the cache as it starts)"
        ),
    }
}

/// `url` as larder keys it: an absolute `http://` URL is normalised as larder
/// normalises request targets (scheme and host in lower case, default port dropped,
/// empty path as `/`; the path and query kept as they are). Anything else is looked up
/// as given.
fn cache_key(url: &str) -> String {
    match parse_absolute(url) {
        Ok(target) => target.url().to_owned(),
        Err(_) => url.to_owned(),
    }
}

/// Writes `text` to stdout.
fn print(text: &str) -> Result<Outcome, String> {
    write_stdout(text.as_bytes())
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) ends the output quietly.
fn write_stdout(bytes: &[u8]) -> Result<Outcome, String> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(Outcome::Done),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Outcome::Done),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

/// An object's expiry time, `None` when unknown (stored as 0).
fn expiry(meta: &Meta) -> Option<u64> {
    Some(meta.expires).filter(|&t| t != 0)
}

/// A time that may be absent: `-` in text.
fn time_text(secs: Option<u64>) -> String {
    secs.map_or_else(|| "-".to_owned(), utc)
}

/// A time that may be absent: `null` in JSON.
fn time_json(secs: Option<u64>) -> Json {
    secs.map_or(Json::Null, |t| Json::Str(utc(t)))
}

fn stats_text(store: &Store, json: bool) -> String {
    let s = store.stats();
    let damaged = store.scan_report().damaged_bytes;
    if json {
        let obj = Json::Obj(vec![
            ("objects", Json::Num(s.objects)),
            ("live_bytes", Json::Num(s.live_bytes)),
            ("dead_bytes", Json::Num(s.dead_bytes)),
            ("free_bytes", Json::Num(s.free_bytes)),
            ("capacity", Json::Num(s.capacity)),
            ("cursor", Json::Num(s.cursor)),
            ("oldest", time_json(s.oldest)),
            ("newest", time_json(s.newest)),
            ("damaged_bytes", Json::Num(damaged)),
        ]);
        return format!("{obj}\n");
    }
    let lines = [
        ("objects", s.objects.to_string()),
        ("live", size::human(s.live_bytes)),
        ("dead", size::human(s.dead_bytes)),
        ("free", size::human(s.free_bytes)),
        ("capacity", size::human(s.capacity)),
        ("cursor", s.cursor.to_string()),
        ("oldest", time_text(s.oldest)),
        ("newest", time_text(s.newest)),
        ("damaged", size::human(damaged)),
    ];
    lines
        .iter()
        .map(|(name, value)| format!("{name:<10}{value}\n"))
        .collect()
}

fn verify(store: &Store, json: bool) -> Result<Outcome, String> {
    let report = store.check();
    let bad = &report.bad;
    let damaged = store.scan_report().damaged_bytes;
    let text = if json {
        let list = bad
            .iter()
            .map(|(off, e)| {
                Json::Obj(vec![
                    ("offset", Json::Num(*off)),
                    ("error", Json::Str(e.to_string())),
                ])
            })
            .collect();
        let obj = Json::Obj(vec![
            ("ok", Json::Bool(bad.is_empty())),
            ("objects", Json::Num(report.checked)),
            ("bad", Json::Arr(list)),
            ("changed", Json::Num(report.changed)),
            ("damaged_bytes", Json::Num(damaged)),
        ]);
        format!("{obj}\n")
    } else {
        let mut text: String = bad
            .iter()
            .map(|(off, e)| format!("bad object at offset {off}: {e}\n"))
            .collect();
        text += &format!("checked {} object(s): {} bad\n", report.checked, bad.len());
        if report.changed > 0 {
            text += &format!(
                "{} object(s) were replaced or overwritten by the running larder while \
                 they were checked (not damage)\n",
                report.changed
            );
        }
        if damaged > 0 {
            // Not an error by itself: a power cut can leave bytes that were never a
            // complete record; the scan skips them and they are overwritten in turn.
            text += &format!(
                "the scan skipped {} that were not valid records\n",
                size::human(damaged)
            );
        }
        text
    };
    print(&text)?;
    Ok(match bad.first() {
        None => Outcome::Done,
        Some((off, _)) => Outcome::Exit1(format!(
            "{} damaged object(s), the first at offset {off}",
            bad.len()
        )),
    })
}

/// The status code of a stored response head (`HTTP/1.1 200 OK` → 200); `None` for
/// anything else (a variants marker).
fn status_code(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?.get(2..)?;
    let code = rest.get(..3)?;
    let after = rest.get(3).copied();
    if !code.iter().all(u8::is_ascii_digit) || !matches!(after, None | Some(b' ' | b'\r')) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

fn ls_text(store: &Store, json: bool) -> String {
    let mut objects: Vec<CheckedObject> = store.checked_objects().collect();
    objects.sort_unstable_by_key(|o| o.seq);
    if json {
        let list = objects
            .iter()
            .map(|o| {
                Json::Obj(vec![
                    ("url", Json::Str(display_key(&o.key))),
                    (
                        "status",
                        status_code(&o.head).map_or(Json::Null, |s| Json::Num(s.into())),
                    ),
                    ("size", Json::Num(o.body_len)),
                    ("stored", time_json(Some(o.meta.stored))),
                    ("expires", time_json(expiry(&o.meta))),
                ])
            })
            .collect();
        return format!("{}\n", Json::Arr(list));
    }
    objects
        .iter()
        .map(|o| {
            format!(
                "{:>10}  {}  {:<20}  {:>3}  {}\n",
                size::human(o.body_len),
                utc(o.meta.stored),
                time_text(expiry(&o.meta)),
                status_code(&o.head).map_or_else(|| "-".to_owned(), |s| s.to_string()),
                display_key(&o.key)
            )
        })
        .collect()
}

/// A key as text: the URL, and for a variant of a response with Vary (key
/// `URL NUL name:value LF ...`) the request fields that select it, in brackets.
fn display_key(key: &[u8]) -> String {
    let mut parts = key.split(|&b| b == 0);
    let url = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    match parts.next() {
        None => url,
        Some(vary) => {
            let fields: Vec<String> = vary
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            format!("{url} [{}]", fields.join("; "))
        }
    }
}

fn get(store: &Store, url: &str, head: bool, json: bool) -> Result<Outcome, String> {
    let key = cache_key(url);
    // read_object copies the record and checks its CRCs first: a damaged body, or one
    // the running larder is overwriting, is never written out.
    let Some(obj) = store.read_object(key.as_bytes()) else {
        return Ok(Outcome::Exit1(format!("not in the cache: {key}")));
    };
    if json {
        let stored_head = String::from_utf8_lossy(&obj.head);
        let out = Json::Obj(vec![
            ("url", Json::Str(key)),
            ("size", Json::Num(obj.body_len)),
            ("stored", time_json(Some(obj.meta.stored))),
            ("expires", time_json(expiry(&obj.meta))),
            ("head", Json::Str(stored_head.into_owned())),
        ]);
        return print(&format!("{out}\n"));
    }
    write_stdout(if head { &obj.head } else { &obj.body })
}

/// Purges `url` (already a cache key), or (`None`, i.e. `--expired`) every object
/// expired at `now`.
fn purge(store: &mut Store, url: Option<&str>, now: u64, json: bool) -> Result<Outcome, String> {
    let keys: Vec<Vec<u8>> = match url {
        Some(url) => vec![url.as_bytes().to_vec()],
        None => store
            .objects()
            .filter(|o| expiry(&o.meta).is_some_and(|t| t <= now))
            .map(|o| o.key.to_vec())
            .collect(),
    };
    let mut purged = 0u64;
    for key in &keys {
        if store.invalidate(key).map_err(|e| e.to_string())? {
            purged += 1;
        }
    }
    // The tombstones must reach the disk before we say they are gone; a checkpoint
    // over everything, so larder's next start has nothing to check.
    store.sync_for_close().map_err(|e| e.to_string())?;
    let text = if json {
        format!("{}\n", Json::Obj(vec![("purged", Json::Num(purged))]))
    } else {
        format!("purged {purged} object(s)\n")
    };
    print(&text)?;
    Ok(match (purged, url) {
        (0, Some(url)) => Outcome::Exit1(format!("not in the cache: {url}")),
        (0, None) => Outcome::Exit1("no expired objects".to_owned()),
        _ => Outcome::Done,
    })
}

fn compact_text(r: &Compacted, json: bool) -> String {
    if json {
        let obj = Json::Obj(vec![
            ("old_capacity", Json::Num(r.old_capacity)),
            ("new_capacity", Json::Num(r.new_capacity)),
            ("kept", Json::Num(r.kept)),
            ("kept_bytes", Json::Num(r.kept_bytes)),
            ("dropped", Json::Num(r.dropped)),
            ("damaged", Json::Num(r.damaged)),
        ]);
        return format!("{obj}\n");
    }
    format!(
        "compacted {} into {}: kept {} object(s), {} live, left out {} that did not fit \
         and {} damaged\n",
        size::human(r.old_capacity),
        size::human(r.new_capacity),
        r.kept,
        size::human(r.kept_bytes),
        r.dropped,
        r.damaged
    )
}

/// A JSON value for `--json` output (RFC 8259), written by hand to keep the tool's
/// dependencies those of larder. Numbers are only the unsigned integers the cache has.
enum Json {
    Null,
    Bool(bool),
    Num(u64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Num(n) => write!(f, "{n}"),
            Json::Str(s) => write_json_str(f, s),
            Json::Arr(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Json::Obj(fields) => {
                f.write_str("{")?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_json_str(f, name)?;
                    write!(f, ":{value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// `s` as a JSON string: quotes, backslashes and control characters escaped (RFC 8259
/// §7); everything else, non-ASCII included, is valid as it is.
fn write_json_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// Unix seconds as UTC ISO-8601 (`2024-01-31T13:05:09Z`).
fn utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let month = month + 1;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_come_from_the_status_line_only() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 404\r\n\r\n"), Some(404));
        assert_eq!(status_code(b"HTTP/1.1 301"), Some(301));
        for head in [
            &b"LARDER-VARIANTS\r\nVary: accept\r\n\r\n"[..],
            b"HTTP/1.1 20",
            b"HTTP/1.1 2000 OK",
            b"HTTP/2 200 OK",
            b"HTTP/1.1 2x0 OK",
            b"",
        ] {
            assert_eq!(status_code(head), None, "{head:?}");
        }
    }

    #[test]
    fn urls_are_keyed_as_larder_keys_them() {
        assert_eq!(
            cache_key("HTTP://Example.COM/A?B"),
            "http://example.com/A?B"
        );
        assert_eq!(cache_key("http://example.com:80"), "http://example.com/");
        assert_eq!(cache_key("http://h:8080/x"), "http://h:8080/x");
        assert_eq!(cache_key("not a url"), "not a url");
    }

    #[test]
    fn json_escapes_quotes_backslashes_and_controls() {
        let s = Json::Str("a\"b\\c\nd\re\tf\u{8}\u{c}\u{1}\u{1f}é€😀\u{7f}".into());
        assert_eq!(
            s.to_string(),
            "\"a\\\"b\\\\c\\nd\\re\\tf\\b\\f\\u0001\\u001fé€😀\u{7f}\""
        );
    }

    #[test]
    fn json_nests_objects_and_arrays() {
        let v = Json::Obj(vec![
            ("n", Json::Num(u64::MAX)),
            ("s", Json::Str("x".into())),
            ("none", Json::Null),
            ("ok", Json::Bool(true)),
            ("list", Json::Arr(vec![Json::Num(1), Json::Arr(vec![])])),
            ("empty", Json::Obj(vec![])),
        ]);
        assert_eq!(
            v.to_string(),
            r#"{"n":18446744073709551615,"s":"x","none":null,"ok":true,"list":[1,[]],"empty":{}}"#
        );
    }

    #[test]
    fn utc_dates_match_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(utc(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(utc(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(utc(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn utc_agrees_with_a_day_by_day_count() {
        let mut date = (1970, 1, 1);
        for days in 0..200_000u64 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!((y, m as u64 + 1, d), date, "day {days}");
            date = next_day(date);
        }
    }

    #[test]
    fn utc_never_panics_on_the_largest_times() {
        for secs in [u64::MAX, u64::MAX - 86_399, u64::MAX / 2] {
            assert!(utc(secs).ends_with('Z'));
        }
    }

    fn next_day((y, m, d): (u64, u64, u64)) -> (u64, u64, u64) {
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let len = match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        match (d < len, m < 12) {
            (true, _) => (y, m, d + 1),
            (false, true) => (y, m + 1, 1),
            (false, false) => (y + 1, 1, 1),
        }
    }
}
