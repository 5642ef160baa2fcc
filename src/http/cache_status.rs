//! RFC 9211 `Cache-Status` vocabulary larder uses.

/// The `fwd` parameter: why a request went (or was going) to the origin instead of
/// being answered from the cache. A closed set, so the code that decides on it (the
/// access log's result code, for one) matches on it rather than on its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// Nothing usable was stored (`fwd=miss`).
    Miss,
    /// Nothing stored for this request's variant, though the URL has some
    /// (`fwd=vary-miss`).
    VaryMiss,
    /// The stored response was stale and is being revalidated (`fwd=stale`).
    Stale,
    /// The client asked for a fresh answer (`no-cache`, `max-age=0`) (`fwd=request`).
    Request,
    /// The method is not one the cache answers (`fwd=method`).
    Method,
}

impl Forwarded {
    /// The parameter's value as it goes in the field.
    pub fn as_str(self) -> &'static str {
        match self {
            Forwarded::Miss => "miss",
            Forwarded::VaryMiss => "vary-miss",
            Forwarded::Stale => "stale",
            Forwarded::Request => "request",
            Forwarded::Method => "method",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Forwarded;

    #[test]
    fn values_are_rfc_9211_tokens() {
        let all = [
            (Forwarded::Miss, "miss"),
            (Forwarded::VaryMiss, "vary-miss"),
            (Forwarded::Stale, "stale"),
            (Forwarded::Request, "request"),
            (Forwarded::Method, "method"),
        ];
        for (fwd, text) in all {
            assert_eq!(fwd.as_str(), text);
        }
    }
}
