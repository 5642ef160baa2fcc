//! larder's own small responses: error pages that say what happened, readable in
//! a browser and in curl alike.

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

/// A complete small response larder itself sends: status line, Content-Type: text/html; charset=utf-8,
/// Content-Length, Cache-Control: no-store, via.field_line(), "Connection: close" if close else
/// "Connection: keep-alive", then the body:
/// `<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1><p>{detail}</p><hr><address>larder</address></body></html>\n`
/// with detail HTML-escaped. (Browsers show it; curl users see the `<p>` line.)
pub fn error_response(status: u16, detail: &str, via: &ViaName, close: bool) -> Vec<u8> {
    let reason = reason(status);
    let body = format!(
        "<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1>\
         <p>{}</p><hr><address>larder</address></body></html>\n",
        html_escape(detail)
    );
    let connection = if close { "close" } else { "keep-alive" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Cache-Control: no-store\r\n\
         {}\
         Connection: {connection}\r\n\r\n",
        body.len(),
        via.field_line()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Details may quote client input (a host name, a target); escaping keeps the page
/// from becoming a reflected-script vector.
fn html_escape(s: &str) -> String {
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
        let (head, body) = split(&error_response(403, "blocked", &via(), true));
        let expected = format!(
            "HTTP/1.1 403 Forbidden\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\n\
             Cache-Control: no-store\r\n\
             Via: 1.1 larder-1a2b3c4d\r\n\
             Connection: close",
            body.len()
        );
        assert_eq!(head, expected);
    }

    #[test]
    fn error_page_body_names_status_and_detail() {
        let (_, body) = split(&error_response(502, "DNS lookup failed", &via(), false));
        assert_eq!(
            body,
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>\
             <p>DNS lookup failed</p><hr><address>larder</address></body></html>\n"
        );
    }

    #[test]
    fn keep_alive_page_says_so() {
        let (head, _) = split(&error_response(400, "x", &via(), false));
        assert!(head.ends_with("\r\nConnection: keep-alive"));
    }

    #[test]
    fn detail_is_html_escaped() {
        let (_, body) = split(&error_response(
            400,
            "<script>\"a\" & 'b'</script>",
            &via(),
            true,
        ));
        assert!(
            body.contains("<p>&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;</p>")
        );
    }

    #[test]
    fn content_length_counts_utf8_bytes() {
        let page = error_response(403, "blocked: ü", &via(), true);
        let (head, body) = split(&page);
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(body.len() > body.chars().count());
    }
}
