//! larder's own small responses: error pages that say what happened, readable in
//! a browser and in curl alike.

use super::cache_status::Forwarded;
use super::ViaName;

/// The standard reason phrase of `status` (RFC 9110 §15 and the registered
/// extensions larder may meet), "Unknown" otherwise.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "Unknown",
    }
}

/// Why larder answers a request itself with an error: the status, the RFC 9211
/// `detail` token of its `Cache-Status`, and the sentence the client reads. The
/// sentence says what was refused and what to do; it never names a file, a flag or
/// a rule of the proxy's configuration (those go to larder's own log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem<'a> {
    /// HTTP status of the answer.
    pub status: u16,
    /// A token (letters, digits, `-`): `dns-error`, `blocked`, `bad-request`, ...
    pub detail: &'static str,
    /// The sentence the client reads.
    pub message: &'a str,
}

impl<'a> Problem<'a> {
    /// A problem answered with `status`, the `Cache-Status` token `detail` and `message`.
    pub fn new(status: u16, detail: &'static str, message: &'a str) -> Problem<'a> {
        Problem {
            status,
            detail,
            message,
        }
    }
}

/// Appended to a message that refuses something by the proxy's policy.
pub const ASK_ADMIN: &str = "If you need it, ask the administrator of this proxy.";

/// A complete error response larder itself sends: status line, Content-Type: text/html;
/// charset=utf-8, Content-Length, Cache-Control: no-store, `Cache-Status: larder;
/// [fwd=FWD; ]detail=DETAIL` (`fwd` when the request was on its way to the origin),
/// via.field_line(), "Connection: close" if close else "Connection: keep-alive", then
/// the body:
/// `<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1><p>{message}</p><hr><address>larder</address></body></html>\n`
/// with the message HTML-escaped. (Browsers show it; curl users see the `<p>` line.)
pub fn error_response(p: &Problem, via: &ViaName, close: bool, fwd: Option<Forwarded>) -> Vec<u8> {
    let body = error_body(p.status, p.message);
    let cache_status = match fwd {
        Some(fwd) => format!(
            "Cache-Status: larder; fwd={}; detail={}\r\n",
            fwd.as_str(),
            p.detail
        ),
        None => format!("Cache-Status: larder; detail={}\r\n", p.detail),
    };
    response(
        p.status,
        "text/html; charset=utf-8",
        body.as_bytes(),
        via,
        close,
        &cache_status,
    )
}

/// The HTML of an error page: `<html><head><title>{status} {reason}</title></head>
/// <body><h1>{status} {reason}</h1><p>{message}</p><hr><address>larder</address></body>
/// </html>`, the message escaped.
pub fn error_body(status: u16, message: &str) -> String {
    let reason = reason(status);
    format!(
        "<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1>\
         <p>{}</p><hr><address>larder</address></body></html>\n",
        html_escape(message)
    )
}

/// A complete small response of larder's own: status line, Content-Type,
/// Content-Length, Cache-Control: no-store, `extra` (whole field lines), Via,
/// Connection, then `body`.
pub fn response(
    status: u16,
    content_type: &str,
    body: &[u8],
    via: &ViaName,
    close: bool,
    extra: &str,
) -> Vec<u8> {
    let reason = reason(status);
    let connection = if close { "close" } else { "keep-alive" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\
         Cache-Control: no-store\r\n\
         {extra}{}\
         Connection: {connection}\r\n\r\n",
        body.len(),
        via.field_line()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Details may quote client input (a host name, a target); escaping keeps the page
/// from becoming a reflected-script vector.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via() -> ViaName {
        ViaName::new("larder-1a2b3c4d".into())
    }

    fn split(page: &[u8]) -> (String, String) {
        let text = String::from_utf8(page.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason(200), "OK");
        assert_eq!(reason(414), "URI Too Long");
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert_eq!(reason(508), "Loop Detected");
        assert_eq!(reason(599), "Unknown");
        assert_eq!(reason(0), "Unknown");
    }

    #[test]
    fn error_page_head_has_every_field_in_order() {
        let p = Problem::new(403, "blocked", "blocked");
        let (head, body) = split(&error_response(&p, &via(), true, None));
        let expected = format!(
            "HTTP/1.1 403 Forbidden\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\n\
             Cache-Control: no-store\r\n\
             Cache-Status: larder; detail=blocked\r\n\
             Via: 1.1 larder-1a2b3c4d\r\n\
             Connection: close",
            body.len()
        );
        assert_eq!(head, expected);
    }

    #[test]
    fn error_page_body_names_status_and_detail() {
        let p = Problem::new(502, "dns-error", "DNS lookup failed");
        let (head, body) = split(&error_response(&p, &via(), false, Some(Forwarded::Miss)));
        assert!(head.contains("\r\nCache-Status: larder; fwd=miss; detail=dns-error\r\n"));
        assert_eq!(
            body,
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>\
             <p>DNS lookup failed</p><hr><address>larder</address></body></html>\n"
        );
    }

    #[test]
    fn keep_alive_page_says_so() {
        let (head, _) = split(&error_response(
            &Problem::new(400, "bad-request", "x"),
            &via(),
            false,
            None,
        ));
        assert!(head.ends_with("\r\nConnection: keep-alive"));
    }

    #[test]
    fn detail_is_html_escaped() {
        let (_, body) = split(&error_response(
            &Problem::new(400, "bad-request", "<script>\"a\" & 'b'</script>"),
            &via(),
            true,
            None,
        ));
        assert!(
            body.contains("<p>&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;</p>")
        );
    }

    #[test]
    fn content_length_counts_utf8_bytes() {
        let page = error_response(
            &Problem::new(403, "blocked", "blocked: ü"),
            &via(),
            true,
            None,
        );
        let (head, body) = split(&page);
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(body.len() > body.chars().count());
    }
}
