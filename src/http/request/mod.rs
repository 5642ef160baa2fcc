//! Request heads from clients (RFC 9112 §2–3, §6): parsing with httparse, the
//! stricter validation a proxy owes the servers behind it, and the re-serialized
//! head larder sends upstream.
//!
//! The field rules that response heads share (what is hop-by-hop, what a value may
//! hold, how lists split) live here too, as `pub(super)` items.

use super::ascii::eq_lowercase;
use super::body::Framing;
use super::target::{
    parse_absolute, parse_authority, parse_origin, plain_absolute, scheme_end, Target,
};
use super::{push_content_length, BodyKind, HttpError, Limits, Method, Version, ViaName};
use httparse::Header;
use std::mem::MaybeUninit;

/// A validated client request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method from the request line.
    pub method: Method,
    /// The request target, normalized (see [`Target`]).
    pub target: Target,
    /// HTTP version from the request line.
    pub version: Version,
    /// None | Length(n) | Chunked (never Close for requests; always None for CONNECT).
    pub body: BodyKind,
    /// The client wants the connection kept: HTTP/1.1 unless "Connection: close";
    /// HTTP/1.0 only with "Connection: keep-alive".
    pub keep_alive: bool,
    /// "Expect: 100-continue" (case-insensitive).
    pub expect_continue: bool,
    /// Bytes of `buf` the head occupied, final CRLF included.
    pub head_len: usize,
    /// Head to send upstream, complete through the final CRLF; EMPTY for CONNECT.
    pub upstream_head: Vec<u8>,
    /// The head has a Cache-Control or Pragma field (the cache must read its
    /// directives). Noted, as `conditional` and `range` are, while the fields are
    /// checked anyway, so that a request with none of them needs no second look at
    /// its head.
    pub directives: bool,
    /// The head has a conditional (`If-…`) field; see `directives`.
    pub conditional: bool,
    /// The head has a Range field: a miss the cache means to store may fetch the
    /// whole object instead (`--range-whole-below`); see `directives`.
    pub range: bool,
    /// Where the value of the `Proxy-Authorization` field lies in `buf` (start, end),
    /// for `--auth-file`; the field itself is never forwarded.
    pub proxy_authorization: Option<(usize, usize)>,
    /// Where the value of the `Authorization` field lies in `buf`: a request for
    /// larder's own pages sent to it directly (origin form) authenticates with it.
    pub authorization: Option<(usize, usize)>,
}

/// Parses and validates the request head at the start of `buf`.
///
/// `Ok(None)`: the head is incomplete, read more. Limits apply to incomplete input
/// too: a request line already longer than `limits.request_line` is 414, an
/// incomplete head already `limits.head` bytes or more is 431. Any other problem is
/// an [`HttpError`] with the status to answer (400, 414, 431, 501, 505 or 508).
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    via: &ViaName,
) -> Result<Option<Request>, HttpError> {
    parse_request_into(buf, limits, via, Vec::new())
}

/// [`parse_request`], building the upstream head in `head` (cleared first): the
/// loop passes a vector kept from an earlier request, to spare an allocation.
pub fn parse_request_into(
    buf: &[u8],
    limits: &Limits,
    via: &ViaName,
    head: Vec<u8>,
) -> Result<Option<Request>, HttpError> {
    // The line is no longer than the buffer: most requests arrive whole in a buffer
    // shorter than the limit, and need no pass to find where their line ends.
    if buf.len() > limits.request_line && first_line(buf).0.len() > limits.request_line {
        return Err(HttpError::new(414, "request line too long"));
    }
    let too_large = HttpError::new(431, "request head too large");
    let mut stack = [const { MaybeUninit::uninit() }; STACK_SLOTS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits.fields);
    let mut req = httparse::Request::new(&mut []);
    let head_len = match strict_config().parse_request_with_uninit_headers(&mut req, buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limits.head => return Err(too_large),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::Version) => return version_error(buf),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(431, "too many header fields"))
        }
        Err(httparse::Error::HeaderName) => return Err(bad(field_name_problem(buf))),
        Err(httparse::Error::HeaderValue) => return Err(bad("invalid byte in a field value")),
        Err(httparse::Error::NewLine) => return Err(bad("malformed line ending")),
        Err(_) => return Err(bad("malformed request line")),
    };
    if head_len >= limits.head {
        return Err(too_large);
    }
    // httparse refuses every control byte and DEL in a head (in a field value as
    // HeaderValue, "invalid byte in a field value"; a test holds it to that), so what
    // is left to check is how the lines end.
    if bare_lf(buf, head_len, &req) {
        return Err(bad("bare LF line ending in request head (CRLF required)"));
    }
    let method = req
        .method
        .and_then(Method::parse)
        .ok_or_else(|| bad("invalid method"))?;
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => {
            return Err(HttpError::new(
                505,
                "only HTTP/1.0 and HTTP/1.1 are supported",
            ))
        }
    };
    let target = parse_target(&method, req.path.unwrap_or_default())?;
    let mut host_value: Option<&[u8]> = None;

    let mut framing = Framing::default();
    let mut tokens = ConnectionTokens::new();
    let mut expect_continue = false;
    let (mut directives, mut conditional, mut range) = (false, false, false);
    let mut hosts = 0;
    let (mut proxy_authorization, mut authorization) = (None, None);
    // Where a value lies in `buf`: httparse's values are slices of it.
    let span = |value: &[u8]| {
        let start = (value.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        (start, start + value.len())
    };
    for field in req.headers.iter() {
        framing.add(field.name, field.value).map_err(bad)?;
        let name = field.name.as_bytes();
        conditional |= name.get(..3).is_some_and(|p| eq_lowercase(p, b"if-"));
        // The names are told apart by length first, as in `classify`: most fields
        // are none of these, and pass after one compare.
        let is = |known: &[u8]| eq_lowercase(name, known);
        match name.len() {
            3 if is(b"via") && via_names(field.value, &via.token) => {
                return Err(HttpError::new(508, "loop detected"));
            }
            4 if is(b"host") => {
                hosts += 1;
                host_value = Some(field.value);
            }
            5 if is(b"range") => range = true,
            6 if is(b"pragma") => directives = true,
            6 if is(b"expect") => {
                expect_continue |=
                    list_elements(field.value).any(|e| eq_lowercase(e, b"100-continue"));
            }
            10 if is(b"connection") => tokens.add(field.value),
            13 if is(b"cache-control") => directives = true,
            13 if is(b"authorization") => {
                let first = authorization.replace(span(field.value)).is_none();
                if !first {
                    return Err(bad("more than one Authorization field"));
                }
            }
            19 if is(b"proxy-authorization") => {
                // Two credentials: which one counts is anyone's guess.
                let first = proxy_authorization.replace(span(field.value)).is_none();
                if !first {
                    return Err(bad("more than one Proxy-Authorization field"));
                }
            }
            _ => {}
        }
    }
    // RFC 9112 §3.2: two Host lines are ambiguous to whoever reads them next.
    if hosts > 1 {
        return Err(bad("more than one Host field"));
    }
    let target = match target {
        Some(target) => target,
        None => {
            let path = req.path.unwrap_or_default();
            // HTTP/1.0 does not require Host (RFC 9112 §3.2 asks it of 1.1), and a load
            // balancer's default health check (`GET /health HTTP/1.0`) sends none: such a
            // request for larder itself names it `larder`.
            let host = match (host_value, version) {
                (Some(host), _) => host,
                (None, Version::Http10) => b"larder".as_slice(),
                (None, Version::Http11) => {
                    return Err(bad("a request for the proxy itself needs a Host field"))
                }
            };
            parse_origin(path, host)?
        }
    };
    let body = request_body(&framing, version)?;
    let body = match (&method, body) {
        (Method::Connect, BodyKind::None | BodyKind::Length(0)) => BodyKind::None,
        (Method::Connect, _) => return Err(bad("CONNECT request with content")),
        (_, body) => body,
    };
    let connection = tokens.as_slice();
    let close = connection.iter().any(|t| eq_lowercase(t, b"close"));
    let keep_alive = !close
        && (version == Version::Http11
            || connection.iter().any(|t| eq_lowercase(t, b"keep-alive")));

    let upstream_head = if target.is_authority() {
        Vec::new()
    } else {
        let mut out = head;
        out.clear();
        out.reserve(head_len + 64);
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.path_and_query().as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(target.host_header().as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut fields = FieldCopier::new(buf);
        for field in req.headers.iter() {
            if is_end_to_end(field.name, connection) {
                fields.field(&mut out, field.name, field.value);
            }
        }
        fields.flush(&mut out);
        match body {
            BodyKind::Length(n) => {
                push_content_length(&mut out, n);
            }
            BodyKind::Chunked => write_field(&mut out, "Transfer-Encoding", b"chunked"),
            BodyKind::None | BodyKind::Close => {}
        }
        out.extend_from_slice(via.field_line().as_bytes());
        out.extend_from_slice(b"\r\n");
        out
    };
    Ok(Some(Request {
        method,
        target,
        version,
        body,
        keep_alive,
        expect_continue,
        head_len,
        upstream_head,
        directives,
        conditional,
        range,
        proxy_authorization,
        authorization,
    }))
}

fn bad(detail: &'static str) -> HttpError {
    HttpError::new(400, detail)
}

/// The request target must suit the method: authority-form for CONNECT,
/// absolute-form for everything else (larder is a forward proxy), or origin-form
/// for a request to larder itself (`Ok(None)`: the caller builds it with the Host
/// field).
fn parse_target(method: &Method, target: &str) -> Result<Option<Target>, HttpError> {
    if *method == Method::Connect {
        if target.starts_with('/') || scheme_end(target).is_some() || target == "*" {
            return Err(bad("CONNECT needs an authority-form target (host:port)"));
        }
        return parse_authority(target).map(Some);
    }
    // The usual target, before the checks it passes anyway (it starts `http://`).
    if let Some(target) = plain_absolute(target) {
        return Ok(Some(target));
    }
    if target.starts_with('/') {
        return Ok(None);
    }
    if target == "*" {
        return Err(bad("asterisk-form targets (OPTIONS *) are not supported"));
    }
    if scheme_end(target).is_none() {
        return Err(bad(
            "target must be absolute-form (http://host/path); host:port is only for CONNECT",
        ));
    }
    parse_absolute(target).map(Some)
}

/// RFC 9112 §6.1–6.3 for requests: Transfer-Encoding must be exactly one final
/// `chunked` (we decode nothing else), and never beside Content-Length.
fn request_body(framing: &Framing, version: Version) -> Result<BodyKind, HttpError> {
    if !framing.transfer_encoding {
        return Ok(framing
            .content_length
            .map_or(BodyKind::None, BodyKind::Length));
    }
    if framing.content_length.is_some() {
        return Err(bad("both Content-Length and Transfer-Encoding"));
    }
    if version == Version::Http10 {
        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if framing.codings == 0 {
        return Err(bad("empty Transfer-Encoding"));
    }
    if framing.codings > framing.chunked {
        return Err(HttpError::new(501, "unsupported transfer-coding"));
    }
    if framing.chunked > 1 {
        return Err(bad("chunked applied more than once"));
    }
    Ok(BodyKind::Chunked)
}

/// httparse reports a bad version and a line that is not a request line alike;
/// only a well-formed `HTTP/x.y` in the third place deserves 505.
fn version_error(buf: &[u8]) -> Result<Option<Request>, HttpError> {
    let (line, complete) = first_line(buf);
    let mut parts = line.split(|&b| b == b' ');
    let version = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && !target.is_empty() =>
        {
            version
        }
        _ => return Err(bad("malformed request line")),
    };
    const FORM: &[u8; 8] = b"HTTP/0.0";
    let fits = version.len() <= FORM.len()
        && version.iter().zip(FORM).all(|(&b, &f)| {
            if f == b'0' {
                b.is_ascii_digit()
            } else {
                b == f
            }
        });
    match (fits, complete) {
        (true, true) if version.len() == FORM.len() => Err(HttpError::new(
            505,
            "only HTTP/1.0 and HTTP/1.1 are supported",
        )),
        (true, false) => Ok(None),
        _ => Err(bad("malformed request line")),
    }
}

/// The start line of a head (leading empty lines skipped, as httparse does), without
/// its line ending, and whether its end has arrived.
fn first_line(buf: &[u8]) -> (&[u8], bool) {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or_default();
    let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => (rest.get(..end).unwrap_or_default(), true),
        None => (rest, false),
    };
    (line.strip_suffix(b"\r").unwrap_or(line), complete)
}

/// Whether a head that httparse accepted has a line ending in a bare LF. httparse
/// accepts bare LF, but a server behind us might split lines differently: requests
/// must use CRLF throughout. httparse has already rejected every CR not followed
/// by LF, and every line of the head is the request line, a field line or the final
/// empty line: the byte that ends each must be a CR. That is a look per line where
/// [`scan_head`], which agrees (a test holds them equal), reads every byte; it
/// remains for what this does not cover, empty lines before the request line.
fn bare_lf(buf: &[u8], head_len: usize, req: &httparse::Request) -> bool {
    let base = buf.as_ptr() as usize;
    // Where a slice of `buf` ends (httparse's slices all are; wrapping, so that
    // one that were not could not overflow, only miss `buf` and count as bare).
    let end = |s: &[u8]| {
        (s.as_ptr() as usize)
            .wrapping_sub(base)
            .wrapping_add(s.len())
    };
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return scan_head(buf.get(..head_len).unwrap_or(buf)).bare_lf;
    };
    if method.as_ptr() as usize != base {
        return scan_head(buf.get(..head_len).unwrap_or(buf)).bare_lf;
    }
    let cr = |at: usize| buf.get(at) == Some(&b'\r');
    // `METHOD SP target SP HTTP/1.x`, single spaces: the line ends 9 bytes after
    // the target.
    if !cr(end(path.as_bytes()).wrapping_add(9)) || !cr(head_len.wrapping_sub(2)) {
        return true;
    }
    req.headers.iter().any(|field| {
        // httparse trims spaces and tabs after a value; an empty value points at
        // its line's end.
        let mut at = end(field.value);
        while matches!(buf.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        !cr(at)
    })
}

/// What one pass over a head that httparse accepted finds.
pub(super) struct HeadScan {
    /// More LFs than CRs. httparse accepts bare LF, but a server behind us might
    /// split lines differently: requests must use CRLF throughout. httparse has
    /// already rejected every CR not followed by LF, so the head has a bare LF
    /// exactly when it has more LFs than CRs (and counting vectorizes, where a
    /// pairwise scan does not).
    pub bare_lf: bool,
    /// A control byte other than HTAB, CR and LF, or DEL, which field values may not
    /// hold either (RFC 9110 §5.5). httparse refuses them anywhere in a request or
    /// response head, so parsing does not ask; the tests hold httparse to that rule
    /// with this as the reference.
    #[cfg_attr(not(test), allow(dead_code))]
    pub control: bool,
}

pub(super) fn scan_head(head: &[u8]) -> HeadScan {
    let (mut cr, mut lf, mut control) = (0usize, 0usize, false);
    // Fixed-size chunks with byte counters: the inner loop becomes a few vector
    // compares per 32 bytes.
    let (chunks, rest) = head.as_chunks::<SCAN_CHUNK>();
    for chunk in chunks {
        let (c, l, bad) = scan_chunk(chunk);
        cr += c;
        lf += l;
        control |= bad;
    }
    // The last few bytes go through the same vector code, padded with a byte that
    // counts as nothing: a byte-at-a-time loop cost more than the chunks before it.
    let mut last = [b' '; SCAN_CHUNK];
    if let Some(dst) = last.get_mut(..rest.len()) {
        dst.copy_from_slice(rest);
    }
    let (c, l, bad) = scan_chunk(&last);
    HeadScan {
        bare_lf: lf + l != cr + c,
        control: control | bad,
    }
}

const SCAN_CHUNK: usize = 32;

/// CRs, LFs and whether there is a control byte, in one chunk (whose counts fit
/// a byte).
fn scan_chunk(chunk: &[u8; SCAN_CHUNK]) -> (usize, usize, bool) {
    let (mut c, mut l, mut bad) = (0u8, 0u8, 0u8);
    for &b in chunk {
        c += u8::from(b == b'\r');
        l += u8::from(b == b'\n');
        bad |= u8::from(is_control(b));
    }
    (usize::from(c), usize::from(l), bad != 0)
}

fn is_control(b: u8) -> bool {
    (b < b' ') & (b != b'\t') & (b != b'\r') & (b != b'\n') | (b == 0x7f)
}

/// Slots httparse fills, sized so that the `fields`-th field line makes it report
/// TooManyHeaders. The stack array covers the default limit without allocating,
/// and being uninitialized costs nothing to set up.
pub(super) const STACK_SLOTS: usize = 255;

pub(super) type Slot<'b> = MaybeUninit<Header<'b>>;

pub(super) fn header_slots<'a, 'b>(
    stack: &'a mut [Slot<'b>; STACK_SLOTS],
    heap: &'a mut Vec<Slot<'b>>,
    fields: usize,
) -> &'a mut [Slot<'b>] {
    let wanted = fields.saturating_sub(1);
    match stack.get_mut(..wanted) {
        Some(slots) => slots,
        None => {
            heap.resize(wanted, MaybeUninit::uninit());
            heap
        }
    }
}

/// httparse with every leniency off: obs-fold, whitespace before a colon and runs
/// of spaces in the start line are where request smuggling starts (RFC 9112 §2.2, §5).
pub(super) fn strict_config() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    config
        .allow_spaces_after_header_name_in_responses(false)
        .allow_obsolete_multiline_headers_in_responses(false)
        .allow_multiple_spaces_in_request_line_delimiters(false)
        .allow_multiple_spaces_in_response_status_delimiters(false)
        .allow_space_before_first_header_name(false)
        .ignore_invalid_headers_in_requests(false)
        .ignore_invalid_headers_in_responses(false);
    config
}

/// Says which field-line rule httparse's HeaderName error was about, so the error
/// page tells the sender what to fix.
pub(super) fn field_name_problem(buf: &[u8]) -> &'static str {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let lines = buf.get(start..).unwrap_or_default().split(|&b| b == b'\n');
    for line in lines.skip(1) {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return "obs-fold (a folded field line) is not allowed";
        }
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        if line.contains(&b':') && name.last().is_some_and(|&b| b == b' ' || b == b'\t') {
            return "whitespace before colon in a field line";
        }
    }
    "invalid field name"
}

/// Field values may hold HTAB, SP, VCHAR and obs-text (RFC 9110 §5.5); httparse
/// checks this as well, but the rule is ours to keep.
pub(super) fn valid_value(value: &[u8]) -> bool {
    // Non-short-circuit `|` lets the loop vectorize; values are short but many.
    !value.iter().fold(false, |bad, &b| {
        bad | (b < b' ' && b != b'\t') | (b == 0x7f)
    })
}

/// The non-empty members of a comma-separated list field (RFC 9110 §5.6.1), trimmed.
pub(super) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
}

/// The option names Connection fields list. Every message is checked against them,
/// and nearly every one has one or two (`keep-alive`, `close`), so the first eight live
/// on the stack: a `Vec` would allocate for each message.
pub(super) struct ConnectionTokens<'a> {
    stack: [&'a [u8]; 8],
    len: usize,
    spill: Vec<&'a [u8]>,
}

impl<'a> ConnectionTokens<'a> {
    pub(super) fn new() -> ConnectionTokens<'a> {
        ConnectionTokens {
            stack: [&[]; 8],
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Adds the elements of one Connection field value.
    pub(super) fn add(&mut self, value: &'a [u8]) {
        for token in list_elements(value) {
            match self.stack.get_mut(self.len) {
                Some(slot) if self.spill.is_empty() => {
                    *slot = token;
                    self.len += 1;
                }
                _ => {
                    if self.spill.is_empty() {
                        let held = self.stack.get(..self.len).unwrap_or_default();
                        self.spill.extend_from_slice(held);
                    }
                    self.spill.push(token);
                }
            }
        }
    }

    pub(super) fn as_slice(&self) -> &[&'a [u8]] {
        if self.spill.is_empty() {
            self.stack.get(..self.len).unwrap_or_default()
        } else {
            &self.spill
        }
    }
}

/// Fields that describe one connection only (RFC 9110 §7.6.1), besides those the
/// Connection field names: never forwarded, never stored. ([`classify`] is the
/// fast form of this list and of [`NOT_FORWARDED`]; a test holds them equal.)
#[cfg(test)]
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Fields a proxy never forwards besides the hop-by-hop ones: the Host that is
/// rebuilt from the target, Proxy-Authorization meant for us, and the framing
/// fields larder writes itself.
#[cfg(test)]
const NOT_FORWARDED: [&str; 4] = [
    "host",
    "proxy-authorization",
    "transfer-encoding",
    "content-length",
];

/// Is `name` hop-by-hop, given the option names listed in Connection?
pub(super) fn is_hop_by_hop(name: &str, connection: &[&[u8]]) -> bool {
    classify(name.as_bytes()) == Some(NameClass::HopByHop) || named_in(name, connection)
}

/// Is the field `name` forwarded, given the option names listed in Connection?
/// Every field of every head asks, and most are answered after a compare of their
/// length: inlined, with [`classify`], so that a call does not cost more than that.
#[inline]
pub(super) fn is_end_to_end(name: &str, connection: &[&[u8]]) -> bool {
    classify(name.as_bytes()).is_none() && !named_in(name, connection)
}

fn named_in(name: &str, connection: &[&[u8]]) -> bool {
    connection
        .iter()
        .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameClass {
    /// In [`HOP_BY_HOP`].
    HopByHop,
    /// In [`NOT_FORWARDED`].
    NotForwarded,
}

/// Which of [`HOP_BY_HOP`] and [`NOT_FORWARDED`] holds `name`, if either does. Every
/// field of every head comes through here, so the names are told apart by length
/// first: most fields are let through after one compare. Always inlined: left to
/// itself, the compiler kept the call, which cost as much as the compare.
#[inline(always)]
fn classify(name: &[u8]) -> Option<NameClass> {
    use NameClass::{HopByHop, NotForwarded};
    let is = |known: &str| eq_lowercase(name, known.as_bytes());
    match name.len() {
        2 if is("te") => Some(HopByHop),
        4 if is("host") => Some(NotForwarded),
        7 if is("trailer") || is("upgrade") => Some(HopByHop),
        10 if is("connection") || is("keep-alive") => Some(HopByHop),
        14 if is("content-length") => Some(NotForwarded),
        16 if is("proxy-connection") => Some(HopByHop),
        17 if is("transfer-encoding") => Some(NotForwarded),
        19 if is("proxy-authorization") => Some(NotForwarded),
        _ => None,
    }
}

/// Appends the forwarded field lines of a head to `out`, copying runs of lines that
/// are already in the form [`write_field`] writes straight from the parsed buffer:
/// a response's fields usually go out in two or three copies, not four per field.
/// What comes out is the same either way.
pub(super) struct FieldCopier<'b> {
    src: &'b [u8],
    /// A run of lines `src[start..end]` not yet copied.
    run: Option<(usize, usize)>,
}

impl<'b> FieldCopier<'b> {
    /// `src`: the buffer httparse parsed, which the names and values point into.
    pub(super) fn new(src: &'b [u8]) -> FieldCopier<'b> {
        FieldCopier { src, run: None }
    }

    pub(super) fn field(&mut self, out: &mut Vec<u8>, name: &str, value: &[u8]) {
        match self.plain_line(name, value) {
            Some((start, end)) => self.line(out, start, end),
            None => {
                self.flush(out);
                write_field(out, name, value);
            }
        }
    }

    /// Takes `src[start..end]`, a line already in the form it goes out in, into the
    /// run (a response's status line, say, which the field lines after it may extend).
    pub(super) fn line(&mut self, out: &mut Vec<u8>, start: usize, end: usize) {
        match &mut self.run {
            Some((_, run_end)) if *run_end == start => *run_end = end,
            _ => {
                self.flush(out);
                self.run = Some((start, end));
            }
        }
    }

    /// Copies the pending run; call before writing anything else to `out`.
    pub(super) fn flush(&mut self, out: &mut Vec<u8>) {
        if let Some((start, end)) = self.run.take() {
            out.extend_from_slice(self.src.get(start..end).unwrap_or_default());
        }
    }

    /// Where the line of this field lies in `src`, if it reads exactly
    /// `Name: value\r\n` with the value unpadded (what `write_field` would write).
    /// Offsets come from the slices' addresses; a slice not inside `src` fails the
    /// bounds checks and is written field by field.
    fn plain_line(&self, name: &str, value: &[u8]) -> Option<(usize, usize)> {
        let base = self.src.as_ptr() as usize;
        let start = (name.as_ptr() as usize).checked_sub(base)?;
        let colon = start + name.len();
        let value_start = (value.as_ptr() as usize).checked_sub(base)?;
        let value_end = value_start + value.len();
        if value_start != colon + 2
            || self.src.get(colon..value_start)? != b": "
            || self.src.get(value_end..value_end + 2)? != b"\r\n"
            || value.first().is_some_and(u8::is_ascii_whitespace)
            || value.last().is_some_and(u8::is_ascii_whitespace)
        {
            return None;
        }
        Some((start, value_end + 2))
    }
}

/// Writes `Name: value\r\n`, the value without surrounding whitespace.
pub(super) fn write_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.trim_ascii());
    out.extend_from_slice(b"\r\n");
}

/// Does a Via value name `token` as the received-by of any member? A member is
/// `protocol received-by [comment]` (RFC 9110 §7.6.3), so it is the second word.
fn via_names(value: &[u8], token: &str) -> bool {
    list_elements(value).any(|member| {
        member
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty())
            .nth(1)
            .is_some_and(|by| by.eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests;
