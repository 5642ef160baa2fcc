//! A real browser for the tests: headless Chromium (Debian's `chromium` package; `.ci/run`
//! installs it) loading a page with its proxy set by a PAC file, as a user's browser
//! would with larder's `/proxy.pac`.
//!
//! What Chromium does with proxies for loopback, as found with Chromium 156:
//!
//! - It fetches the PAC file itself from a loopback URL (`http://127.0.0.1:PORT/...`)
//!   without trouble, directly, never through a proxy (it fetched it twice per start).
//! - It never sends a loopback target through a proxy chosen by a PAC file: `localhost`,
//!   `*.localhost`, 127.0.0.0/8, `[::1]` and also `[::ffff:127.0.0.1]` are "implicitly
//!   bypassed" before the PAC is asked. `--proxy-bypass-list=<-loopback>` removes those
//!   rules only for a proxy given with `--proxy-server`; with `--proxy-pac-url` it has no
//!   effect (checked: the origin saw the request without larder's `Via`). Chromium's own
//!   documentation says so too: there is no way to disable the implicit rules for PAC.
//! - `0.0.0.0` is not among the implicit rules: `http://0.0.0.0:PORT/` is handed to the
//!   PAC, goes to the proxy it names, and the proxy's connection to `0.0.0.0` reaches
//!   the origin listening on 127.0.0.1 (Linux delivers a connection to 0.0.0.0 to the
//!   local host). So a test that wants a page to go through larder by PAC names its
//!   origin `http://0.0.0.0:PORT/`; the traffic never leaves the machine.
//! - When the PAC cannot be fetched, or the proxy fails, Chromium quietly goes direct:
//!   a test must check the origin saw larder's `Via`, not only that the page loaded.
//! - Run as root, Chromium needs `--no-sandbox`; the other flags keep it from reaching
//!   for the network on its own (updates, sync, QUIC) and from sharing a profile.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::TempDir;

/// How long Chromium gets to load a page and print its DOM.
pub const BROWSER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long Chromium's output may take to arrive once it has ended.
const PIPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Loads `page_url` in headless Chromium with its proxy set by the PAC file at
/// `pac_url`, and returns the page's DOM as Chromium serialises it (`--dump-dom`).
///
/// Errors, with a message saying what happened: Chromium is not installed, it did not
/// finish within 30 s (it is then killed, with every process it started), it exited with
/// a failure, or it printed no DOM.
pub fn load_via_pac(pac_url: &str, page_url: &str) -> Result<String, String> {
    let profile = TempDir::new("chromium");
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--proxy-pac-url={pac_url}"))
        .arg("--dump-dom")
        .arg(page_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout ends its renderer and helper
        // processes along with it.
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(
                "headless Chromium (`chromium`) is needed for this test and is not \
                        installed: apt-get install chromium (.ci/run installs it)"
                    .to_string(),
            )
        }
        Err(e) => return Err(format!("could not start chromium: {e}")),
    };
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());

    // Chromium is waited for without being reaped, so that its process group cannot
    // have been taken by another process when it is ended below.
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let finished = loop {
        if has_exited(child.id()) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        thread::sleep(Duration::from_millis(50));
    };
    // Whatever Chromium left running (normally nothing) goes too, then it is reaped.
    kill_group(child.id());
    let status = child.wait();
    let stderr = stderr.recv_timeout(PIPE_TIMEOUT).unwrap_or_default();
    let dom = stdout.recv_timeout(PIPE_TIMEOUT).unwrap_or_default();
    let status = match (finished, status) {
        (false, _) => Err(()),
        (true, Ok(status)) => Ok(status),
        (true, Err(e)) => return Err(format!("waiting for chromium: {e}")),
    };
    match status {
        Err(()) => Err(format!(
            "chromium did not finish loading {page_url} within {} s; stderr:\n{}",
            BROWSER_TIMEOUT.as_secs(),
            tail(&stderr)
        )),
        Ok(status) if !status.success() => Err(format!(
            "chromium failed ({status}) loading {page_url}; stderr:\n{}",
            tail(&stderr)
        )),
        Ok(_) if dom.trim().is_empty() => Err(format!(
            "chromium printed no DOM for {page_url}; stderr:\n{}",
            tail(&stderr)
        )),
        Ok(_) => Ok(dom),
    }
}

/// Reads a pipe to its end on a thread, so a chatty child never blocks on a full pipe;
/// the text comes through the channel.
fn read_in_background<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// Whether process `pid`, a child not reaped yet, has exited (it is a zombie).
fn has_exited(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The state is the first field after the command name's closing parenthesis.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some("Z" | "X"))
}

/// Sends SIGKILL to the process group led by `pid`, a child of ours started with
/// `process_group(0)` and not reaped yet (so the group is still ours).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last 40 lines of `text`, without Chromium's complaints about the missing
/// D-Bus, which it prints on every start here and which say nothing about a failure.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(":ERROR:dbus/"))
        .collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
