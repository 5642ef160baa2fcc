//! Request heads from clients (RFC 9112 §2–3, §6): parsing with httparse, the
//! stricter validation a proxy owes the servers behind it, and the re-serialized
//! head larder sends upstream.
//!
//! The field rules that response heads share (what is hop-by-hop, what a value may
//! hold, how lists split) live here too, as `pub(super)` items.

use super::body::Framing;
use super::target::{parse_absolute, parse_authority, parse_origin, scheme_end, Target};
use super::{push_decimal, BodyKind, HttpError, Limits, Method, Version, ViaName};
use httparse::Header;
use std::mem::MaybeUninit;

/// A validated client request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub target: Target,
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
    /// directives), and whether it has a conditional (`If-…`) field. Noted while the
    /// fields are checked anyway, so that a request with neither needs no second
    /// look at its head.
    pub directives: bool,
    pub conditional: bool,
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
    let (line, _) = first_line(buf);
    if line.len() > limits.request_line {
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
    let scan = scan_head(buf.get(..head_len).unwrap_or(buf));
    if scan.bare_lf {
        return Err(bad("bare LF line ending in request head (CRLF required)"));
    }
    if scan.control {
        return Err(bad("invalid byte in a field value"));
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
    let (mut directives, mut conditional) = (false, false);
    let mut hosts = 0;
    for field in req.headers.iter() {
        framing.add(field.name, field.value).map_err(bad)?;
        let name = field.name;
        directives |=
            name.eq_ignore_ascii_case("cache-control") || name.eq_ignore_ascii_case("pragma");
        conditional |= name
            .as_bytes()
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"if-"));
        if name.eq_ignore_ascii_case("connection") {
            tokens.add(field.value);
        } else if name.eq_ignore_ascii_case("via") && via_names(field.value, &via.token) {
            return Err(HttpError::new(508, "loop detected"));
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue |=
                list_elements(field.value).any(|e| e.eq_ignore_ascii_case(b"100-continue"));
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host_value = Some(field.value);
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
            let host = host_value
                .ok_or_else(|| bad("a request for the proxy itself needs a Host field"))?;
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
    let close = connection.iter().any(|t| t.eq_ignore_ascii_case(b"close"));
    let keep_alive = !close
        && (version == Version::Http11
            || connection
                .iter()
                .any(|t| t.eq_ignore_ascii_case(b"keep-alive")));

    let upstream_head = if target.is_authority() {
        Vec::new()
    } else {
        let mut out = head;
        out.clear();
        out.reserve(head_len + 64);
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.path_and_query().as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        out.extend_from_slice(b"Host: ");
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
                out.extend_from_slice(b"Content-Length: ");
                push_decimal(&mut out, n);
                out.extend_from_slice(b"\r\n");
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

/// What one pass over a head that httparse accepted finds.
pub(super) struct HeadScan {
    /// More LFs than CRs. httparse accepts bare LF, but a server behind us might
    /// split lines differently: requests must use CRLF throughout. httparse has
    /// already rejected every CR not followed by LF, so the head has a bare LF
    /// exactly when it has more LFs than CRs (and counting vectorizes, where a
    /// pairwise scan does not).
    pub bare_lf: bool,
    /// A control byte other than HTAB, CR and LF, or DEL. Outside field values
    /// httparse rejects these, and field values may hold only HTAB, SP, VCHAR and
    /// obs-text (RFC 9110 §5.5). httparse checks that too, but the rule is ours to
    /// keep: one pass over the head keeps it at less cost than a pass per field.
    pub control: bool,
}

pub(super) fn scan_head(head: &[u8]) -> HeadScan {
    let (mut cr, mut lf, mut control) = (0usize, 0usize, false);
    // Fixed-size chunks with byte counters: the inner loop becomes a few vector
    // compares per 32 bytes.
    let mut chunks = head.chunks_exact(32);
    for chunk in &mut chunks {
        let (mut c, mut l, mut bad) = (0u8, 0u8, 0u8);
        for &b in chunk {
            c += u8::from(b == b'\r');
            l += u8::from(b == b'\n');
            bad |= u8::from(is_control(b));
        }
        cr += usize::from(c);
        lf += usize::from(l);
        control |= bad != 0;
    }
    for &b in chunks.remainder() {
        cr += usize::from(b == b'\r');
        lf += usize::from(b == b'\n');
        control |= is_control(b);
    }
    HeadScan {
        bare_lf: lf != cr,
        control,
    }
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
/// first: most fields are let through after one compare.
fn classify(name: &[u8]) -> Option<NameClass> {
    use NameClass::{HopByHop, NotForwarded};
    let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
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
    pub fn new(src: &'b [u8]) -> FieldCopier<'b> {
        FieldCopier { src, run: None }
    }

    pub fn field(&mut self, out: &mut Vec<u8>, name: &str, value: &[u8]) {
        match self.plain_line(name, value) {
            Some((start, end)) => match &mut self.run {
                Some((_, run_end)) if *run_end == start => *run_end = end,
                _ => {
                    self.flush(out);
                    self.run = Some((start, end));
                }
            },
            None => {
                self.flush(out);
                write_field(out, name, value);
            }
        }
    }

    /// Copies the pending run; call before writing anything else to `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
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
mod tests {
    use super::*;
    use crate::http::fuzz;
    use crate::http::testing::{self as generate, mutate, next_u64};

    fn via() -> ViaName {
        ViaName::new("larder-abcd1234".into())
    }

    fn parse(text: &str) -> Result<Option<Request>, HttpError> {
        parse_request(text.as_bytes(), &Limits::default(), &via())
    }

    fn ok(text: &str) -> Request {
        parse(text).expect("valid").expect("complete")
    }

    fn err(text: &str) -> HttpError {
        parse(text).expect_err("should be rejected")
    }

    fn head(req: &Request) -> &str {
        std::str::from_utf8(&req.upstream_head).unwrap()
    }

    const BROWSER: &str = "GET http://Example.com/index.html?q=1 HTTP/1.1\r\n\
        Host: example.com\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
        Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n\
        Accept-Language: en-US,en;q=0.5\r\n\
        Accept-Encoding: gzip, deflate\r\n\
        Proxy-Connection: keep-alive\r\n\
        Upgrade-Insecure-Requests: 1\r\n\
        \r\n";

    /// Past the eight tokens kept on the stack, every further one still counts.
    #[test]
    fn connection_tokens_beyond_the_stack_are_kept_in_order() {
        let mut t = ConnectionTokens::new();
        t.add(b"a, b,c");
        assert_eq!(t.as_slice(), [&b"a"[..], b"b", b"c"]);
        t.add(b"d,e,f,g,h, i");
        t.add(b"j");
        let all: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"i", b"j"];
        assert_eq!(t.as_slice(), all.as_slice());
        let head = "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: f1, f2, f3, f4, f5\r\n\
            Connection: f6, f7, f8, f9, f10\r\nF1: x\r\nF9: x\r\nF10: x\r\nKept: y\r\n\r\n";
        let up = ok(head);
        let text = std::str::from_utf8(&up.upstream_head).unwrap_or_default();
        assert!(text.contains("Kept: y"), "{text}");
        for gone in ["F1:", "F9:", "F10:", "Connection"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
    }

    /// The cache skips a second look at heads with neither flag, so each must be set
    /// by its fields in any case, and by nothing else.
    #[test]
    fn cache_directives_and_conditionals_are_noted() {
        let req = ok(BROWSER);
        assert!(!req.directives && !req.conditional);
        for (field, directives, conditional) in [
            ("CACHE-control: no-cache", true, false),
            ("Pragma: no-cache", true, false),
            ("if-None-Match: \"x\"", false, true),
            (
                "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT",
                false,
                true,
            ),
            ("X-Cache-Control: no-cache", false, false),
            ("Iff: 1", false, false),
        ] {
            let req = ok(&format!(
                "GET http://a/if-x HTTP/1.1\r\nHost: a\r\n{field}\r\n\r\n"
            ));
            assert_eq!(
                (req.directives, req.conditional),
                (directives, conditional),
                "{field}"
            );
        }
    }

    #[test]
    fn parses_typical_browser_request() {
        let req = ok(BROWSER);
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.version, Version::Http11);
        assert_eq!(
            req.target.display_url(),
            "http://example.com/index.html?q=1"
        );
        assert_eq!(req.body, BodyKind::None);
        assert!(req.keep_alive);
        assert!(!req.expect_continue);
        assert_eq!(req.head_len, BROWSER.len());
        assert_eq!(
            head(&req),
            "GET /index.html?q=1 HTTP/1.1\r\n\
             Host: example.com\r\n\
             User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
             Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n\
             Accept-Language: en-US,en;q=0.5\r\n\
             Accept-Encoding: gzip, deflate\r\n\
             Upgrade-Insecure-Requests: 1\r\n\
             Via: 1.1 larder-abcd1234\r\n\
             \r\n"
        );
    }

    #[test]
    fn head_len_excludes_following_bytes() {
        let text = format!("{BROWSER}GET http://next/ HTTP/1.1\r\n");
        assert_eq!(ok(&text).head_len, BROWSER.len());
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for end in 0..BROWSER.len() {
            assert_eq!(parse(&BROWSER[..end]), Ok(None), "prefix of {end} bytes");
        }
    }

    #[test]
    fn strips_hop_by_hop_fields() {
        let req = ok("GET http://a/ HTTP/1.1\r\n\
            Connection: X-Hop, keep-alive\r\n\
            connection: x-other\r\n\
            X-Hop: 1\r\nX-Other: 2\r\nKeep-Alive: timeout=5\r\nProxy-Connection: close\r\n\
            TE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\n\
            Proxy-Authorization: Basic eDp5\r\nX-Kept: yes\r\n\r\n");
        assert_eq!(
            head(&req),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Kept: yes\r\nVia: 1.1 larder-abcd1234\r\n\r\n"
        );
    }

    #[test]
    fn host_comes_from_the_target() {
        let req = ok("GET http://a.example:8080/p HTTP/1.1\r\nHost: other.example\r\n\r\n");
        assert!(head(&req).starts_with("GET /p HTTP/1.1\r\nHost: a.example:8080\r\n"));
        assert!(!head(&req).contains("other.example"));
    }

    #[test]
    fn missing_host_is_fine_for_absolute_form() {
        let req = ok("GET http://a/ HTTP/1.1\r\n\r\n");
        assert!(head(&req).contains("\r\nHost: a\r\n"));
    }

    #[test]
    fn rejects_more_than_one_host() {
        assert_eq!(
            err("GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status,
            400
        );
    }

    #[test]
    fn field_values_are_trimmed_and_names_kept() {
        let req = ok("GET http://a/ HTTP/1.1\r\nx-Custom:   spaced value \t\r\nEmpty:\r\n\r\n");
        assert!(head(&req).contains("\r\nx-Custom: spaced value\r\nEmpty: \r\n"));
    }

    #[test]
    fn obs_text_in_values_is_allowed() {
        let mut text = b"GET http://a/ HTTP/1.1\r\nX-Name: caf".to_vec();
        text.extend_from_slice(b"\xe9\r\n\r\n");
        let req = parse_request(&text, &Limits::default(), &via())
            .unwrap()
            .unwrap();
        assert!(req.upstream_head.windows(5).any(|w| w == b"caf\xe9\r"));
    }

    #[test]
    fn leading_empty_line_is_skipped() {
        let text = format!("\r\n{BROWSER}");
        assert_eq!(ok(&text).head_len, text.len());
    }

    #[test]
    fn content_length_body() {
        let req = ok(
            "POST http://a/f HTTP/1.1\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\nhello",
        );
        assert_eq!(req.body, BodyKind::Length(5));
        assert_eq!(
            head(&req),
            "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nVia: 1.1 larder-abcd1234\r\n\r\n"
        );
    }

    #[test]
    fn content_length_zero_is_forwarded() {
        let req = ok("POST http://a/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(req.body, BodyKind::Length(0));
        assert!(head(&req).contains("\r\nContent-Length: 0\r\n"));
    }

    #[test]
    fn chunked_body() {
        let req = ok("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(req.body, BodyKind::Chunked);
        assert!(head(&req)
            .ends_with("\r\nTransfer-Encoding: chunked\r\nVia: 1.1 larder-abcd1234\r\n\r\n"));
    }

    #[test]
    fn rejects_content_length_with_transfer_encoding() {
        let e = err(
            "POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(
            e,
            HttpError::new(400, "both Content-Length and Transfer-Encoding")
        );
    }

    #[test]
    fn rejects_differing_content_length() {
        for cl in [
            "Content-Length: 5\r\nContent-Length: 6",
            "Content-Length: 5, 6",
        ] {
            let e = err(&format!("POST http://a/ HTTP/1.1\r\n{cl}\r\n\r\n"));
            assert_eq!(e, HttpError::new(400, "differing Content-Length values"));
        }
    }

    #[test]
    fn rejects_malformed_content_length() {
        for value in [
            "+5",
            "-1",
            "5x",
            "0x10",
            "",
            "99999999999999999999",
            "1 2",
            "5,",
        ] {
            let e = err(&format!(
                "POST http://a/ HTTP/1.1\r\nContent-Length: {value}\r\n\r\n"
            ));
            assert_eq!(e.status, 400, "{value:?}");
        }
    }

    #[test]
    fn rejects_unsupported_transfer_coding() {
        for te in [
            "gzip",
            "gzip, chunked",
            "chunked, gzip",
            "chunked;x=1",
            "identity",
        ] {
            let e = err(&format!(
                "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n"
            ));
            assert_eq!(
                e,
                HttpError::new(501, "unsupported transfer-coding"),
                "{te}"
            );
        }
        let e = err("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e.status, 501);
    }

    #[test]
    fn rejects_chunked_twice() {
        let e = err("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
        assert_eq!(e, HttpError::new(400, "chunked applied more than once"));
        let e = err("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e.status, 400);
    }

    #[test]
    fn rejects_empty_transfer_encoding() {
        assert_eq!(
            err("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n").status,
            400
        );
    }

    #[test]
    fn rejects_transfer_encoding_in_http10() {
        let e = err("POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e.status, 400);
    }

    #[test]
    fn rejects_whitespace_before_colon() {
        let e = err("GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n");
        assert_eq!(
            e,
            HttpError::new(400, "whitespace before colon in a field line")
        );
        assert_eq!(
            err("GET http://a/ HTTP/1.1\r\nX-A\t: a\r\n\r\n").status,
            400
        );
    }

    #[test]
    fn rejects_obs_fold() {
        let e = err("GET http://a/ HTTP/1.1\r\nX-A: a\r\n  folded\r\n\r\n");
        assert_eq!(
            e,
            HttpError::new(400, "obs-fold (a folded field line) is not allowed")
        );
        assert_eq!(
            err("GET http://a/ HTTP/1.1\r\nX-A: a\r\n\tfolded\r\n\r\n").status,
            400
        );
    }

    #[test]
    fn rejects_bare_cr() {
        assert_eq!(
            err("GET http://a/ HTTP/1.1\r\nX-A: a\rb\r\n\r\n").status,
            400
        );
        assert_eq!(err("GET http://a/ HTTP/1.1\rX-A: a\r\n\r\n").status, 400);
        assert_eq!(
            err("GET http://a/ HTTP/1.1\r\nX-A: a\r\n\r\r\n").status,
            400
        );
    }

    #[test]
    fn rejects_nul_and_control_bytes_in_values() {
        for byte in ["\0", "\x01", "\x1b", "\x7f", "\x0b", "\x0c"] {
            let e = err(&format!("GET http://a/ HTTP/1.1\r\nX-A: a{byte}b\r\n\r\n"));
            assert_eq!(e.status, 400, "{byte:?}");
        }
    }

    #[test]
    fn rejects_control_bytes_in_names_and_request_line() {
        assert_eq!(err("GET http://a/ HTTP/1.1\r\nX\0A: b\r\n\r\n").status, 400);
        assert_eq!(err("GET http://a/\x01 HTTP/1.1\r\n\r\n").status, 400);
        assert_eq!(err("G\0T http://a/ HTTP/1.1\r\n\r\n").status, 400);
    }

    #[test]
    fn classify_agrees_with_the_lists() {
        for (list, class) in [
            (&HOP_BY_HOP[..], NameClass::HopByHop),
            (&NOT_FORWARDED[..], NameClass::NotForwarded),
        ] {
            for name in list {
                assert_eq!(classify(name.as_bytes()), Some(class), "{name}");
                let upper = name.to_ascii_uppercase();
                assert_eq!(classify(upper.as_bytes()), Some(class), "{upper}");
            }
        }
        // Same lengths as listed names, and near misses.
        for name in [
            "tf",
            "hose",
            "trailed",
            "connexion",
            "keep-alivf",
            "content-lengtx",
            "date",
            "",
        ] {
            assert_eq!(classify(name.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn field_lines_come_out_the_same_copied_or_written() {
        // Plain lines are copied in runs; padded or unusual ones are written anew.
        // Either way the relayed head must read as write_field would write it.
        let text = "GET http://a/ HTTP/1.1\r\nA: 1\r\nB: 2\r\nC:3\r\nD:  4 \r\nE: \r\nF: 6\r\nHost: a\r\nG: 7\r\nH:\t8\r\n\r\n";
        let want = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: \r\nF: 6\r\nG: 7\r\nH: 8\r\nVia: 1.1 larder-abcd1234\r\n\r\n";
        assert_eq!(head(&ok(text)), want);
    }

    #[test]
    fn head_scan_finds_each_byte_wherever_it_lies() {
        // The scan works in 32-byte chunks and a tail: a byte must be found at every
        // offset, on both sides of a chunk's edge.
        for len in [1, 31, 32, 33, 64, 70] {
            for at in 0..len {
                for (byte, control) in [(0u8, true), (0x1f, true), (0x7f, true), (b'\t', false)] {
                    let mut head = vec![b'a'; len];
                    head[at] = byte;
                    assert_eq!(
                        scan_head(&head).control,
                        control,
                        "{byte:#x} at {at} of {len}"
                    );
                }
                let mut head = vec![b'a'; len];
                head[at] = b'\n';
                assert!(scan_head(&head).bare_lf, "LF at {at} of {len}");
                if at + 1 < len {
                    head[at] = b'\r';
                    head[at + 1] = b'\n';
                    assert!(!scan_head(&head).bare_lf, "CRLF at {at} of {len}");
                }
            }
        }
        // 300 CRLFs: the per-chunk byte counters must not wrap.
        let many = "\r\n".repeat(300);
        assert!(!scan_head(many.as_bytes()).bare_lf);
    }

    #[test]
    fn rejects_bare_lf_line_endings() {
        for text in [
            "GET http://a/ HTTP/1.1\nHost: a\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\n",
            "\nGET http://a/ HTTP/1.1\r\n\r\n",
        ] {
            let e = err(text);
            assert_eq!(e.status, 400, "{text:?}");
            assert!(e.detail.contains("bare LF"), "{text:?}");
        }
    }

    #[test]
    fn rejects_userinfo_percent_host_and_bad_port() {
        assert!(err("GET http://u:p@a/ HTTP/1.1\r\n\r\n")
            .detail
            .contains("userinfo"));
        assert!(err("GET http://%61/ HTTP/1.1\r\n\r\n")
            .detail
            .contains("percent"));
        assert_eq!(err("GET http://a:0/ HTTP/1.1\r\n\r\n").status, 400);
        assert_eq!(err("GET http://a:65536/ HTTP/1.1\r\n\r\n").status, 400);
        assert_eq!(err("CONNECT a:99999 HTTP/1.1\r\n\r\n").status, 400);
    }

    #[test]
    fn rejects_non_ascii_target() {
        assert_eq!(
            parse_request(
                b"GET http://a/\xc3\xa9 HTTP/1.1\r\n\r\n",
                &Limits::default(),
                &via()
            )
            .unwrap_err()
            .status,
            400
        );
    }

    #[test]
    fn origin_form_is_a_request_for_larder_itself_with_the_host_field() {
        let req = ok("GET /metrics?x=1 HTTP/1.1\r\nHost: Proxy.LAN:3128\r\n\r\n");
        assert!(req.target.is_origin_form());
        assert_eq!(req.target.host_header(), "proxy.lan:3128");
        assert_eq!(req.target.path_and_query(), "/metrics?x=1");
        let e = err("GET /index.html HTTP/1.1\r\n\r\n");
        assert_eq!(
            e,
            HttpError::new(400, "a request for the proxy itself needs a Host field")
        );
        for host in ["a b", "a@b", "[::1", "a:99999", ""] {
            let e = err(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
            assert_eq!(e.status, 400, "{host:?}");
        }
    }

    #[test]
    fn rejects_https_absolute_target() {
        let e = err("GET https://a/ HTTP/1.1\r\n\r\n");
        assert_eq!(e.detail, "https:// targets go through CONNECT");
    }

    #[test]
    fn rejects_connect_without_authority_form() {
        for target in ["http://a:443/", "/x", "*", "a"] {
            let e = err(&format!("CONNECT {target} HTTP/1.1\r\n\r\n"));
            assert_eq!(e.status, 400, "{target}");
        }
    }

    #[test]
    fn rejects_authority_form_and_asterisk_without_connect() {
        assert_eq!(err("GET a:80 HTTP/1.1\r\n\r\n").status, 400);
        assert_eq!(err("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
    }

    #[test]
    fn rejects_http09() {
        assert_eq!(err("GET http://a/\r\n\r\n").status, 400);
        assert_eq!(err("GET /\r\n").status, 400);
    }

    #[test]
    fn rejects_other_versions_with_505() {
        for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"] {
            let e = err(&format!("GET http://a/ {version}\r\nHost: a\r\n\r\n"));
            assert_eq!(e.status, 505, "{version}");
        }
        assert_eq!(err("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").status, 505);
    }

    #[test]
    fn wrong_version_split_across_reads_waits_then_505() {
        assert_eq!(parse("GET http://a/ HTTP/2"), Ok(None));
        assert_eq!(parse("GET http://a/ HTTP/2.0\r"), Ok(None));
        assert_eq!(err("GET http://a/ HTTP/2.0\r\n").status, 505);
    }

    #[test]
    fn garbage_version_is_400_not_505() {
        for line in [
            "GET http://a/ FOO/1.1",
            "GET http://a/ HTTP/11",
            "GET http://a/ HTTP/1.1.1",
            "GET http://a/ http/1.1",
            "GET http://a/  HTTP/1.1",
            "GET http://a/ HTTP/2.0 x",
        ] {
            assert_eq!(err(&format!("{line}\r\n\r\n")).status, 400, "{line}");
        }
        assert_eq!(err("GET http://a/ XTTP").status, 400);
    }

    #[test]
    fn a_request_line_without_a_version_is_refused_before_the_head_ends() {
        // HTTP/0.9 style: the client sends the line alone and waits for an answer.
        for line in ["GET http://a/ \r\n", "GET http://a/\r\n", "GET /\r\n"] {
            assert_eq!(err(line).status, 400, "{line:?}");
        }
        let partial = parse_request(
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n",
            &Limits::default(),
            &ViaName::new("v".into()),
        );
        assert_eq!(partial, Ok(None));
    }

    #[test]
    fn rejects_multiple_spaces_in_request_line() {
        assert_eq!(err("GET  http://a/ HTTP/1.1\r\n\r\n").status, 400);
        assert_eq!(err("GET http://a/ HTTP/1.1 \r\n\r\n").status, 400);
    }

    #[test]
    fn detects_loop_through_own_via() {
        for value in [
            "1.1 larder-abcd1234",
            "1.0 foo, 1.1 larder-abcd1234 (comment)",
            "1.1 LARDER-ABCD1234",
            "HTTP/1.1 larder-abcd1234",
        ] {
            let e = err(&format!("GET http://a/ HTTP/1.1\r\nVia: {value}\r\n\r\n"));
            assert_eq!(e, HttpError::new(508, "loop detected"), "{value}");
        }
        let e = err("GET http://a/ HTTP/1.1\r\nVia: 1.0 a\r\nVia: 1.1 larder-abcd1234\r\n\r\n");
        assert_eq!(e.status, 508);
    }

    #[test]
    fn other_via_entries_are_forwarded() {
        let req = ok("GET http://a/ HTTP/1.1\r\nVia: 1.1 larder-00000000, 1.0 proxy (larder-abcd1234)\r\n\r\n");
        assert!(head(&req).ends_with(
            "Via: 1.1 larder-00000000, 1.0 proxy (larder-abcd1234)\r\nVia: 1.1 larder-abcd1234\r\n\r\n"
        ));
    }

    #[test]
    fn request_line_too_long_is_414() {
        let limits = Limits {
            request_line: 30,
            ..Limits::default()
        };
        // "GET http://a/" + path + " HTTP/1.1" is 22 bytes plus the path.
        let request = |path: &str| format!("GET http://a/{path} HTTP/1.1\r\n\r\n");
        let at_limit = request(&"x".repeat(8));
        assert!(parse_request(at_limit.as_bytes(), &limits, &via())
            .unwrap()
            .is_some());
        let over = request(&"x".repeat(9));
        let e = parse_request(over.as_bytes(), &limits, &via()).unwrap_err();
        assert_eq!(e, HttpError::new(414, "request line too long"));
    }

    #[test]
    fn incomplete_request_line_too_long_is_414() {
        let text = format!("GET http://a/{}", "x".repeat(8 * 1024));
        assert_eq!(err(&text).status, 414);
        assert_eq!(parse(&text[..8 * 1024]), Ok(None));
    }

    #[test]
    fn head_too_large_is_431() {
        let limits = Limits {
            head: 100,
            ..Limits::default()
        };
        // The head without padding is 31 bytes: "GET http://a/ HTTP/1.1\r\nX: \r\n\r\n".
        let request =
            |pad: usize| format!("GET http://a/ HTTP/1.1\r\nX: {}\r\n\r\n", "p".repeat(pad));
        assert_eq!(request(68).len(), 99);
        assert!(parse_request(request(68).as_bytes(), &limits, &via())
            .unwrap()
            .is_some());
        let e = parse_request(request(69).as_bytes(), &limits, &via()).unwrap_err();
        assert_eq!(e, HttpError::new(431, "request head too large"));
    }

    #[test]
    fn incomplete_head_too_large_is_431() {
        let text = format!("GET http://a/ HTTP/1.1\r\nX-Pad: {}", "x".repeat(64 * 1024));
        assert_eq!(err(&text).status, 431);
        // Endless empty lines before a request are bounded the same way.
        assert_eq!(err(&"\r\n".repeat(32 * 1024)).status, 431);
    }

    #[test]
    fn too_many_fields_is_431() {
        let fields: String = (0..256).map(|i| format!("X-F{i}: v\r\n")).collect();
        let e = err(&format!("GET http://a/ HTTP/1.1\r\n{fields}\r\n"));
        assert_eq!(e, HttpError::new(431, "too many header fields"));
        let fields: String = (0..255).map(|i| format!("X-F{i}: v\r\n")).collect();
        assert!(parse(&format!("GET http://a/ HTTP/1.1\r\n{fields}\r\n"))
            .unwrap()
            .is_some());
    }

    #[test]
    fn field_limit_above_the_stack_slots_works() {
        let limits = Limits {
            fields: 1000,
            ..Limits::default()
        };
        let fields: String = (0..999).map(|i| format!("X-F{i}: v\r\n")).collect();
        let text = format!("GET http://a/ HTTP/1.1\r\n{fields}\r\n");
        assert!(parse_request(text.as_bytes(), &limits, &via())
            .unwrap()
            .is_some());
        let text = format!("GET http://a/ HTTP/1.1\r\n{fields}X-Last: v\r\n\r\n");
        assert_eq!(
            parse_request(text.as_bytes(), &limits, &via())
                .unwrap_err()
                .status,
            431
        );
    }

    #[test]
    fn hundred_fields_in_ten_kib_pass() {
        let value = "v".repeat(90);
        let fields: String = (0..100)
            .map(|i| format!("X-Field-{i:03}: {value}\r\n"))
            .collect();
        let text = format!("GET http://a/ HTTP/1.1\r\n{fields}\r\n");
        assert!(text.len() >= 10 * 1024);
        let req = ok(&text);
        assert_eq!(req.head_len, text.len());
    }

    #[test]
    fn keep_alive_rules() {
        assert!(ok("GET http://a/ HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!ok("GET http://a/ HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok("GET http://a/ HTTP/1.1\r\nConnection: Keep-Alive, Close\r\n\r\n").keep_alive);
        assert!(!ok("GET http://a/ HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET http://a/ HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        let req = ok("GET http://a/ HTTP/1.0\r\n\r\n");
        assert_eq!(req.version, Version::Http10);
        assert!(head(&req).starts_with("GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn expect_continue_flag() {
        let req = ok("PUT http://a/ HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
        assert!(req.expect_continue);
        assert!(head(&req).contains("\r\nExpect: 100-Continue\r\n"));
        assert!(!ok("PUT http://a/ HTTP/1.1\r\nExpect: other\r\n\r\n").expect_continue);
    }

    #[test]
    fn connect_request() {
        let req = ok("CONNECT Example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: x\r\n\r\n");
        assert_eq!(req.method, Method::Connect);
        assert!(req.target.is_authority());
        assert_eq!((req.target.host(), req.target.port()), ("example.com", 443));
        assert_eq!(req.body, BodyKind::None);
        assert!(req.upstream_head.is_empty());
        let req = ok("CONNECT [::1]:443 HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(req.body, BodyKind::None);
    }

    #[test]
    fn rejects_connect_with_content() {
        let e = err("CONNECT a:443 HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd");
        assert_eq!(e, HttpError::new(400, "CONNECT request with content"));
    }

    #[test]
    fn connect_is_still_loop_checked() {
        let e = err("CONNECT a:443 HTTP/1.1\r\nVia: 1.1 larder-abcd1234\r\n\r\n");
        assert_eq!(e.status, 508);
    }

    #[test]
    fn extension_methods_pass_through() {
        let req = ok("PROPFIND http://a/dav HTTP/1.1\r\nDepth: 1\r\n\r\n");
        assert_eq!(req.method, Method::Other("PROPFIND".into()));
        assert!(head(&req).starts_with("PROPFIND /dav HTTP/1.1\r\n"));
    }

    /// xorshift64: a few thousand mutated heads without a fuzzing crate.

    #[test]
    fn mutated_requests_never_panic() {
        let seeds = [
            BROWSER,
            "POST http://[::1]:8080/x?y HTTP/1.1\r\nContent-Length: 5, 5\r\nConnection: x\r\nX: y\r\n\r\nhello",
            "PUT http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\nVia: 1.1 larder-abcd1234\r\n\r\n",
            "CONNECT a.b:443 HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        ];
        let alphabet = b" \t\r\n:,;/@%[]#?\x00\x7f\xff0123456789HTTP/.";
        let limits = Limits {
            request_line: 40,
            head: 300,
            fields: 6,
            ..Limits::default()
        };
        let mut rng = 0x2545_f491_4f6c_dd1d;
        for i in 0..4000 {
            let mut input = seeds[i % seeds.len()].as_bytes().to_vec();
            mutate(&mut input, &mut rng, alphabet);
            let cut = (next_u64(&mut rng) % (input.len() as u64 + 1)) as usize;
            let _ = parse_request(&input[..cut], &limits, &via());
            let _ = parse_request(&input, &Limits::default(), &via());
        }
    }

    /// Generated request heads, every other one mutated, each followed by what a
    /// client's buffer may hold after a head.
    fn generated_requests(seed: u64, n: usize) -> Vec<(bool, Vec<u8>)> {
        let alphabet = b" \t\r\n:,;/@%[]#?.\x00\x7f\xffHTTP/1.0";
        generate::heads(seed, n, generate::request_head, alphabet)
    }

    #[test]
    fn a_complete_request_head_parses_the_same_with_more_bytes_after_it() {
        let tight = Limits {
            request_line: 40,
            head: 200,
            fields: 6,
            ..Limits::default()
        };
        let (mut complete, mut mutated_complete) = (0, 0);
        let inputs = generated_requests(0x2545_f491_4f6c_dd1d, 1000);
        for (mutated, input) in &inputs {
            let whole = fuzz::request_prefixes_parse_alike(input, &Limits::default());
            if whole.is_ok_and(|r| r.is_some()) {
                complete += 1;
                mutated_complete += usize::from(*mutated);
            }
            fuzz::request_prefixes_parse_alike(input, &tight).ok();
        }
        // The property says nothing about heads that never complete: most must.
        assert!(complete > inputs.len() / 2, "{complete} complete");
        assert!(mutated_complete > inputs.len() / 10, "{mutated_complete}");
    }

    #[test]
    fn an_accepted_request_head_written_out_again_parses_the_same() {
        let (mut accepted, mut mutated_accepted) = (0, 0);
        let inputs = generated_requests(0x853c_49e6_748f_ea9b, 1000);
        for (mutated, input) in &inputs {
            if fuzz::request_round_trip(input, &Limits::default()) {
                accepted += 1;
                mutated_accepted += usize::from(*mutated);
            }
        }
        assert!(accepted > inputs.len() / 2, "{accepted} accepted");
        assert!(mutated_accepted > inputs.len() / 10, "{mutated_accepted}");
    }
}
