//! The Basic scheme (RFC 7617): `Basic base64(user:password)`.

/// A user and password from a Basic credential.
#[derive(PartialEq, Eq)]
pub struct Credential {
    /// The user name (UTF-8).
    pub user: String,
    /// The password, as sent.
    pub password: Vec<u8>,
}

// A password must never reach a log line, even a debug one.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential {{ user: {:?}, password: … }}", self.user)
    }
}

/// The most bytes of a credential field larder decodes; more is refused outright.
const MAX_LEN: usize = 1024;

/// The user and password of a `Proxy-Authorization` (or `Authorization`) field value,
/// or `None` if it is not a well-formed Basic credential: another scheme, bad base64,
/// no `:`, a user name that is not UTF-8, or a NUL byte anywhere.
pub fn parse(value: &[u8]) -> Option<Credential> {
    if value.len() > MAX_LEN {
        return None;
    }
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let token = rest.trim_ascii();
    let decoded = decode_base64(token)?;
    if decoded.contains(&0) {
        return None;
    }
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = decoded.split_at(colon);
    let user = String::from_utf8(user.to_vec()).ok()?;
    Some(Credential {
        user,
        password: password.get(1..).unwrap_or_default().to_vec(),
    })
}

/// Standard base64 (RFC 4648 §4) with its padding, which RFC 7617 uses.
fn decode_base64(s: &[u8]) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let value = |b: u8| -> Option<u32> {
        Some(u32::from(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let quads = s.len() / 4;
    for (i, quad) in s.chunks_exact(4).enumerate() {
        let last = i + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &b in quad.iter().take(4 - pad) {
            n = (n << 6) | value(b)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(bytes.get(1..4 - pad).unwrap_or_default());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded() {
        // RFC 7617 §2's example.
        let c = parse(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert_eq!(c.user, "Aladdin");
        assert_eq!(c.password, b"open sesame");
        // The scheme is case-insensitive; the password may hold colons or be empty.
        let c = parse(b"bASIC   dTpwOnE=").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_slice()), ("u", &b"p:q"[..]));
        let c = parse(b"Basic dTo=").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_slice()), ("u", &b""[..]));
    }

    #[test]
    fn anything_else_is_not_a_credential() {
        for bad in [
            &b""[..],
            b"Basic",
            b"Basic ",
            b"Bearer dTpw",
            b"Basic dXNlcg==", // no colon
            b"Basic dTpw=",    // bad length
            b"Basic d=Tp",     // padding inside
            b"Basic dT!w",     // not base64
            b"Basic /3A6cA==", // user not UTF-8
            b"Basic dQA6cA==", // NUL
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(&[b'A'; MAX_LEN + 1]), None);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = parse(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("Aladdin") && !shown.contains("sesame"),
            "{shown}"
        );
    }
}
