//! `--auth-file`: an htpasswd file (`user:hash` lines), and checking a password
//! against one of its hashes.
//!
//! Accepted hashes are those `htpasswd` writes with `-B` (bcrypt, `$2y$`), `-2` and
//! `-5` (SHA-crypt, `$5$` and `$6$`) and `-m` (Apache's MD5, `$apr1$`), and `$1$`
//! (MD5-crypt, as `openssl passwd -1` writes it). Plain text, `{SHA}` (unsalted SHA-1,
//! `htpasswd -s`) and DES crypt (`htpasswd -d`, eight characters at most) are refused
//! when the file is read, naming the line, so a weak file never goes into service.
//! No message ever holds a hash or a password.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::crypt::crypt;
use super::md5::{constant_time_eq, md5_crypt, APR1};

/// The users of a file and their hashes.
#[derive(Debug, Default, Clone)]
pub struct Users {
    hashes: HashMap<Box<str>, Arc<str>>,
}

impl Users {
    /// The stored hash of `user`.
    pub fn hash(&self, user: &str) -> Option<&Arc<str>> {
        self.hashes.get(user)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// No users at all.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Why a password file was refused: the line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The line (from 1).
    pub line: usize,
    /// What is wrong.
    pub what: Problem,
}

/// What can be wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not valid UTF-8.
    NotText,
    /// No `:` between user and hash.
    NoColon,
    /// An empty user name, or one with spaces or control characters.
    BadUser,
    /// The user appeared on an earlier line too.
    Duplicate(String, usize),
    /// An unsalted SHA-1 (`{SHA}`, `htpasswd -s`).
    Sha1(String),
    /// A DES crypt hash (`htpasswd -d`).
    Des(String),
    /// Anything else: plain text or a scheme larder does not know.
    Unknown(String),
    /// A known scheme, badly formed.
    Malformed(String),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.line;
        match &self.what {
            Problem::NotText => write!(f, "line {line}: not UTF-8 text"),
            Problem::NoColon => write!(f, "line {line}: not a user:hash line"),
            Problem::BadUser => write!(
                f,
                "line {line}: the user name is empty or has spaces or control characters"
            ),
            Problem::Duplicate(user, first) => {
                write!(f, "line {line}: user {user:?} is already on line {first}")
            }
            Problem::Sha1(user) => write!(
                f,
                "line {line}: user {user:?} has a {{SHA}} hash (unsalted SHA-1), which is refused: \
                 make it again with htpasswd -B"
            ),
            Problem::Des(user) => write!(
                f,
                "line {line}: user {user:?} has a DES crypt hash, which is refused: make it again \
                 with htpasswd -B"
            ),
            Problem::Unknown(user) => write!(
                f,
                "line {line}: user {user:?} has a plain-text password or a hash larder does not \
                 know, which is refused: use htpasswd -B (bcrypt), -2 or -5 (SHA-crypt) or -m (MD5)"
            ),
            Problem::Malformed(user) => {
                write!(f, "line {line}: user {user:?} has a malformed hash")
            }
        }
    }
}

/// Reads the text of a password file. Empty lines and lines starting with `#` are
/// skipped (as Apache does); every other line must be `user:hash` with an accepted hash.
///
/// # Errors
/// The first line that is not, with why.
pub fn parse(text: &[u8]) -> Result<Users, FileError> {
    let mut hashes = HashMap::new();
    let mut lines_of: HashMap<Box<str>, usize> = HashMap::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let err = |what| FileError { line, what };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(err(Problem::NotText));
        };
        if text.trim().is_empty() || text.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = text.split_once(':') else {
            return Err(err(Problem::NoColon));
        };
        if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(Problem::BadUser));
        }
        // Apache ignores what follows a second colon (a comment field some tools write).
        let hash = hash.split(':').next().unwrap_or_default().trim();
        if let Some(&first) = lines_of.get(user) {
            return Err(err(Problem::Duplicate(user.to_owned(), first)));
        }
        check_hash(hash).map_err(|p| err(p(user.to_owned())))?;
        lines_of.insert(user.into(), line);
        hashes.insert(user.into(), Arc::from(hash));
    }
    Ok(Users { hashes })
}

/// Whether `hash` is one larder accepts and well formed; else the problem, to be given
/// the user's name.
fn check_hash(hash: &str) -> Result<(), fn(String) -> Problem> {
    let crypt64 = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    if hash.starts_with("{SHA}") {
        return Err(Problem::Sha1);
    }
    if let Some(rest) = ["$2y$", "$2b$", "$2a$"]
        .iter()
        .find_map(|p| hash.strip_prefix(p))
    {
        // Two digits of cost (4 to 31), `$`, 22 characters of salt and 31 of hash.
        let ok = rest.len() == 56
            && rest.as_bytes().get(2) == Some(&b'$')
            && rest
                .get(..2)
                .and_then(|c| c.parse::<u8>().ok())
                .is_some_and(|c| (4..=31).contains(&c))
            && rest.get(3..).is_some_and(crypt64);
        return if ok { Ok(()) } else { Err(Problem::Malformed) };
    }
    for prefix in ["$5$", "$6$", "$1$", APR1] {
        if let Some(rest) = hash.strip_prefix(prefix) {
            // [rounds=N$]salt$hash (rounds only for SHA-crypt).
            let rest = match rest.strip_prefix("rounds=") {
                Some(r) if prefix.len() == 3 && prefix != "$1$" => {
                    let Some((n, rest)) = r.split_once('$') else {
                        return Err(Problem::Malformed);
                    };
                    if n.parse::<u32>().is_err() {
                        return Err(Problem::Malformed);
                    }
                    rest
                }
                _ => rest,
            };
            let ok = rest
                .split_once('$')
                .is_some_and(|(salt, h)| crypt64(salt) && salt.len() <= 16 && crypt64(h));
            return if ok { Ok(()) } else { Err(Problem::Malformed) };
        }
    }
    if hash.len() == 13 && crypt64(hash) {
        return Err(Problem::Des);
    }
    Err(Problem::Unknown)
}

/// Whether `password` matches the stored `hash`. Slow on purpose for bcrypt and
/// SHA-crypt: call it off the event loop. The comparison takes the same time wherever
/// the hashes differ.
pub fn verify(password: &[u8], hash: &str) -> bool {
    let made = if hash.starts_with(APR1) {
        md5_crypt(password, hash.as_bytes(), APR1)
    } else {
        crypt(password, hash)
    };
    made.is_some_and(|made| constant_time_eq(&made, hash.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT: &str = "$2y$05$sUGxuQHgKXHKARE0IQ4V9OrQ8QXXu.0pGdbFbUHVUKtgLnuZw.inK";
    const APR: &str = "$apr1$SBGPdF/5$EbutezAKpYw8H1zsmKq6k0";

    fn problem(text: &str) -> FileError {
        parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn accepted_schemes_are_read_with_comments_and_blank_lines() {
        let text = format!(
            "# users\n\nalice:{BCRYPT}\r\nbob:{APR}\n\
             carol:$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA\n\
             dave:$6$rounds=5000$saltsalt$abc/def.\n\
             erin:$1$saltsalt$9xy1btjgzLYfb7hivXtC//:a comment\n"
        );
        let users = parse(text.as_bytes()).unwrap();
        assert_eq!(users.len(), 5);
        assert_eq!(users.hash("alice").map(|h| &**h), Some(BCRYPT));
        assert_eq!(users.hash("bob").map(|h| &**h), Some(APR));
        assert_eq!(
            users.hash("erin").map(|h| &**h),
            Some("$1$saltsalt$9xy1btjgzLYfb7hivXtC//")
        );
        assert!(users.hash("mallory").is_none());
    }

    #[test]
    fn plain_text_sha1_and_des_are_refused_with_the_line() {
        let e = problem(&format!("alice:{BCRYPT}\nbob:hunter2\n"));
        assert_eq!(
            e,
            FileError {
                line: 2,
                what: Problem::Unknown("bob".into())
            }
        );
        let shown = e.to_string();
        assert!(
            shown.starts_with("line 2: user \"bob\" has a plain-text password"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");

        let e = problem("bob:{SHA}UWuXg/ylF+7L0dBk2i0WUxCxl1k=\n");
        assert_eq!(e.what, Problem::Sha1("bob".into()));
        assert!(!e.to_string().contains("UWuX"), "{e}");

        let e = problem("\n\nbob:abJnggxhB/yWI\n");
        assert_eq!(
            e,
            FileError {
                line: 3,
                what: Problem::Des("bob".into())
            }
        );
    }

    #[test]
    fn malformed_lines_are_refused_without_showing_the_hash() {
        assert_eq!(problem("alice\n").what, Problem::NoColon);
        assert_eq!(problem(":x\n").what, Problem::BadUser);
        assert_eq!(problem("a b:x\n").what, Problem::BadUser);
        assert_eq!(
            problem("a:$2y$05$short\n").what,
            Problem::Malformed("a".into())
        );
        assert_eq!(
            problem("a:$2y$99$sUGxuQHgKXHKARE0IQ4V9OrQ8QXXu.0pGdbFbUHVUKtgLnuZw.inK\n").what,
            Problem::Malformed("a".into())
        );
        assert_eq!(
            problem("a:$apr1$nosalt\n").what,
            Problem::Malformed("a".into())
        );
        assert_eq!(
            problem("a:$6$rounds=x$s$h\n").what,
            Problem::Malformed("a".into())
        );
        assert_eq!(
            problem("a:$7$whatever\n").what,
            Problem::Unknown("a".into())
        );
        let e = problem(&format!("a:{APR}\na:{BCRYPT}\n"));
        assert_eq!(
            e,
            FileError {
                line: 2,
                what: Problem::Duplicate("a".into(), 1)
            }
        );
        assert_eq!(problem("a:\u{ff}\n").line, 1);
        assert_eq!(parse(b"a:\xff\n").unwrap_err().what, Problem::NotText);
        for e in [
            problem("a:$2y$05$short\n"),
            problem(&format!("a:{APR}\na:{BCRYPT}\n")),
        ] {
            assert!(!e.to_string().contains("$2y$"), "{e}");
        }
    }

    #[test]
    fn verify_checks_each_scheme() {
        assert!(verify(b"p", BCRYPT));
        assert!(!verify(b"q", BCRYPT));
        assert!(verify(b"p", APR));
        assert!(!verify(b"P", APR));
        assert!(verify(b"secret", "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"));
        assert!(!verify(b"p\0", BCRYPT));
        assert!(!verify(b"p", "plain"));
    }
}
