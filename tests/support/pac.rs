//! Runs a proxy auto-config file the way a browser does, in Node.js: the PAC is
//! evaluated in a fresh context holding only the standard PAC helpers, then
//! `FindProxyForURL(url, host)` is called for each case.
//!
//! The helpers follow Chromium's definitions: `isPlainHostName` (no dot),
//! `dnsDomainIs`, `localHostOrDomainIs`, `shExpMatch`, `isInNet` (IPv4 literals
//! compared under the mask), `dnsResolve`, `isResolvable`, `myIpAddress`, and
//! `weekdayRange`, `dateRange`, `timeRange` as stand-ins that never match. Nothing
//! resolves: `dnsResolve` (and `isInNet` or `isResolvable` given a name) only records
//! the lookup, and [`eval_pac`] fails the test when a PAC asked for one, since a
//! lookup in a PAC file blocks the browser.

use std::io;
use std::process::{Command, Stdio};

use super::TempDir;

/// The PAC helpers, defined in the context the PAC file runs in.
const HELPERS: &str = r#"
var __lookups = [];
function isPlainHostName(host) { return host.indexOf(".") < 0; }
function dnsDomainIs(host, domain) {
  return host.length >= domain.length && host.substring(host.length - domain.length) == domain;
}
function localHostOrDomainIs(host, hostdom) {
  return host == hostdom || hostdom.lastIndexOf(host + ".", 0) == 0;
}
function shExpMatch(str, shexp) {
  var re = shexp.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp("^" + re + "$").test(str);
}
function __ipv4(s) {
  var m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(String(s));
  if (!m) return null;
  var n = 0;
  for (var i = 1; i <= 4; i++) {
    var b = Number(m[i]);
    if (b > 255) return null;
    n = n * 256 + b;
  }
  return n;
}
function dnsResolve(host) {
  __lookups.push(String(host));
  return null;
}
function isResolvable(host) { return dnsResolve(host) != null; }
function myIpAddress() { return "127.0.0.1"; }
function isInNet(host, pattern, mask) {
  var h = __ipv4(host);
  if (h === null) {
    var resolved = dnsResolve(host);
    if (resolved === null) return false;
    h = __ipv4(resolved);
  }
  var p = __ipv4(pattern), m = __ipv4(mask);
  if (p === null || m === null) throw new Error("isInNet: bad pattern or mask: " + pattern + ", " + mask);
  return ((h & m) >>> 0) == ((p & m) >>> 0);
}
function weekdayRange() { return false; }
function dateRange() { return false; }
function timeRange() { return false; }
function alert() {}
"#;

/// The Node.js program: `node runner.js PAC HELPERS CASES`. Cases come one a line as
/// `url host`, each percent-encoded; results go out one a line, percent-encoded.
const RUNNER: &str = r#"
"use strict";
const fs = require("fs");
const vm = require("vm");
const [pacPath, helpersPath, casesPath] = process.argv.slice(2);
function fail(code, message) { process.stderr.write(message + "\n"); process.exit(code); }
const context = vm.createContext({});
vm.runInContext(fs.readFileSync(helpersPath, "utf8"), context, { filename: "pac-helpers.js" });
try {
  vm.runInContext(fs.readFileSync(pacPath, "utf8"), context, { filename: "proxy.pac", timeout: 2000 });
} catch (e) {
  fail(2, "the PAC file does not run: " + (e && e.stack || e));
}
if (typeof context.FindProxyForURL !== "function") fail(2, "the PAC file defines no FindProxyForURL function");
const lines = fs.readFileSync(casesPath, "utf8").split("\n").filter((l) => l.length > 0);
const out = [];
for (const line of lines) {
  const [url, host] = line.split(" ").map(decodeURIComponent);
  context.__url = url;
  context.__host = host;
  let result;
  try {
    result = vm.runInContext("FindProxyForURL(__url, __host)", context, { timeout: 2000 });
  } catch (e) {
    fail(3, "FindProxyForURL(" + JSON.stringify(url) + ", " + JSON.stringify(host) + ") threw: " + (e && e.stack || e));
  }
  if (typeof result !== "string") {
    fail(3, "FindProxyForURL(" + JSON.stringify(url) + ", " + JSON.stringify(host) + ") returned " + typeof result + ", not a string");
  }
  if (context.__lookups.length > 0) {
    fail(4, "FindProxyForURL(" + JSON.stringify(url) + ", " + JSON.stringify(host) + ") asked for a DNS lookup of " + JSON.stringify(context.__lookups) + ": a PAC file must not make the browser resolve names");
  }
  out.push(encodeURIComponent(result));
}
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
"#;

/// What `FindProxyForURL(url, host)` of `pac` returns for each `(url, host)` case, in
/// order, as Node.js evaluates it with the standard PAC helpers.
///
/// Fails the test, with a message saying why, when `node` is not installed (`.ci/run`
/// installs `nodejs`), when the PAC does not run or defines no `FindProxyForURL`, when
/// a call throws or returns something other than a string, or when the PAC asked for a
/// DNS lookup.
pub fn eval_pac(pac: &str, cases: &[(&str, &str)]) -> Vec<String> {
    let dir = TempDir::new("pac");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    };
    let runner = write("runner.js", RUNNER);
    let pac_path = write("proxy.pac", pac);
    let helpers = write("helpers.js", HELPERS);
    let lines: String = cases
        .iter()
        .map(|(url, host)| format!("{} {}\n", percent_encode(url), percent_encode(host)))
        .collect();
    let cases_path = write("cases.txt", &lines);

    let output = Command::new("node")
        .arg(&runner)
        .arg(&pac_path)
        .arg(&helpers)
        .arg(&cases_path)
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "Node.js (`node`) is needed to evaluate PAC files and is not installed: \
             apt-get install nodejs (.ci/run installs it)"
        ),
        Err(e) => panic!("could not run node: {e}"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "evaluating the PAC file failed ({}): {stderr}\nthe PAC file:\n{pac}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results: Vec<String> = stdout.lines().map(percent_decode).collect();
    assert_eq!(
        results.len(),
        cases.len(),
        "node answered {} cases of {}: {stdout:?} {stderr}",
        results.len(),
        cases.len()
    );
    results
}

/// Every byte but unreserved ones as `%XX`; `decodeURIComponent` undoes it.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes `encodeURIComponent`.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
