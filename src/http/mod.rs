//! HTTP/1.x message handling without sockets: request and response heads, body
//! framing, the chunked decoder and larder's own error pages.
//!
//! Everything here is a plain function of bytes in → parsed value or [`HttpError`],
//! so it is tested without a socket and fuzzed without a runtime. The connection
//! state machines in `crate::conn` own the buffers and call into this module.

mod ascii;
pub mod body;
pub mod cache_control;
pub mod cache_status;
pub mod cached;
pub mod chunked;
pub mod conditional;
pub mod date;
pub mod freshness;
// The fuzz targets' entry points, which the unit tests also run: not part of the
// shipped library. cargo-fuzz sets `--cfg fuzzing`; `.ci/run` sets it to check them.
#[cfg(any(test, fuzzing))]
pub mod fuzz;
pub mod page;
pub mod proxy_header;
pub mod range;
pub mod request;
pub mod response;
pub mod target;
pub mod vary;

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod decimal_tests {
    use super::{push_content_length, push_decimal};

    #[test]
    fn push_content_length_writes_the_field_line() {
        for n in [0, 7, 1024, 65535, 1 << 32, u64::MAX] {
            let mut out = b"x".to_vec();
            push_content_length(&mut out, n);
            assert_eq!(out, format!("xContent-Length: {n}\r\n").into_bytes());
        }
    }

    #[test]
    fn push_decimal_matches_display_at_the_edges() {
        for n in [0, 1, 9, 10, 99, 100, 65535, 1 << 32, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }
}

/// The HTTP versions larder speaks. Anything else is rejected (505 from a client,
/// 502 from an upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// The version as written in a start line, e.g. `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// Appends `n` in decimal. The heads on the forwarding path carry a status, a port
/// or a length on every request; `write!` would run the formatting machinery for
/// each, and `to_string()` would allocate.
pub fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(decimal(n, &mut digits));
}

/// Appends the field line `Content-Length: n\r\n`, put together on the stack and
/// copied once: every forwarded head with a length ends with it.
pub fn push_content_length(out: &mut Vec<u8>, n: u64) {
    const NAME: &[u8] = b"Content-Length: ";
    let mut line = [0u8; NAME.len() + 20 + 2];
    let mut digits = [0u8; 20];
    let digits = decimal(n, &mut digits);
    let len = NAME.len() + digits.len() + 2;
    let parts: [&[u8]; 3] = [NAME, digits, b"\r\n"];
    let mut at = 0;
    for part in parts {
        if let Some(dst) = line.get_mut(at..at + part.len()) {
            dst.copy_from_slice(part);
        }
        at += part.len();
    }
    out.extend_from_slice(line.get(..len).unwrap_or_default());
}

/// `n` in decimal, written at the end of `digits` (20 bytes hold any `u64`); returns
/// the digits written.
pub fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[at..]
}

/// Why a message was rejected. `status` is what larder answers the client with when
/// the message came from the client; a bad upstream message is always answered 502
/// by the caller, whatever `status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    /// Status larder answers with when the message came from the client.
    pub status: u16,
    /// What is wrong, in a few words; the error page shows it to the client.
    pub detail: &'static str,
}

impl HttpError {
    /// A rejection answered with `status`, saying `detail`.
    pub const fn new(status: u16, detail: &'static str) -> HttpError {
        HttpError { status, detail }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

/// Size limits applied while parsing. The defaults are the ones larder documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target, version) → 414 beyond.
    pub request_line: usize,
    /// Largest request head including the final CRLF; a head of this size or more → 431.
    pub head: usize,
    /// Field lines in a head; this many or more → 431 (a response: 502).
    pub fields: usize,
    /// Longest chunk-size line, extensions included.
    pub chunk_line: usize,
    /// Total size of a chunked body's trailer section.
    pub trailers: usize,
    /// Largest upstream response head → 502 beyond.
    pub response_head: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_line: 8 * 1024,
            head: 64 * 1024,
            fields: 256,
            chunk_line: 4 * 1024,
            trailers: 16 * 1024,
            response_head: 64 * 1024,
        }
    }
}

/// larder's name in `Via` (RFC 9110 §7.6.3): `larder-` and eight hex digits chosen
/// at start-up, so a request that comes back through the same instance is a loop
/// (508) while two larder instances can still be chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaName {
    /// The received-by token, e.g. `larder-1a2b3c4d`.
    pub token: String,
    /// Formatted once: it goes into every forwarded head.
    line: String,
}

impl ViaName {
    /// The name for `token`, with its `Via` field line formatted.
    pub fn new(token: String) -> ViaName {
        let line = format!("Via: 1.1 {token}\r\n");
        ViaName { token, line }
    }

    /// The full field line larder appends: `Via: 1.1 larder-1a2b3c4d\r\n`.
    pub fn field_line(&self) -> &str {
        &self.line
    }
}

/// Request methods. The common ones are variants so that hot paths compare
/// integers; anything else that is a valid token is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `GET` (RFC 9110 §9.3.1).
    Get,
    /// `HEAD` (RFC 9110 §9.3.2).
    Head,
    /// `POST` (RFC 9110 §9.3.3).
    Post,
    /// `PUT` (RFC 9110 §9.3.4).
    Put,
    /// `DELETE` (RFC 9110 §9.3.5).
    Delete,
    /// `OPTIONS` (RFC 9110 §9.3.7).
    Options,
    /// `TRACE` (RFC 9110 §9.3.8).
    Trace,
    /// `PATCH` (RFC 5789).
    Patch,
    /// `CONNECT` (RFC 9110 §9.3.6): a tunnel to `host:port`.
    Connect,
    /// Any other valid token, exactly as sent.
    Other(Box<str>),
}

impl Method {
    /// Parses a method token (case-sensitive, RFC 9110 §9.1). `None` if it is not
    /// a valid token.
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            "CONNECT" => Method::Connect,
            other => {
                if other.is_empty() || !other.bytes().all(is_tchar) {
                    return None;
                }
                Method::Other(other.into())
            }
        })
    }

    /// The method token as it goes on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Connect => "CONNECT",
            Method::Other(s) => s,
        }
    }

    /// Idempotent per RFC 9110 §9.2.2: safe to send again on a fresh connection
    /// when a reused one died before answering.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// `tchar` from RFC 9110 §5.6.2.
pub fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// How the length of a message body is known (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all (GET without framing headers, HEAD responses, 1xx/204/304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection (responses only).
    Close,
}
