//! The PROXY protocol header (HAProxy's `send-proxy` and `send-proxy-v2`): a load
//! balancer in front of larder writes it first on each connection, saying which client
//! the connection is for. Version 1 is a text line, version 2 a binary block; both are
//! parsed here strictly, as the specification asks of a receiver, since whoever can
//! forge one chooses the address larder's access rules see.
//!
//! A plain function of the bytes received so far, like the HTTP parsers: more bytes may
//! be needed ([`Parsed`] is then `None`), the header is complete, or it is refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature: twelve bytes no HTTP request or v1 line can start with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (specification §2.1).
pub const V1_MAX: usize = 107;
/// The longest v2 header larder takes: the fixed part and 2 KiB of addresses and TLVs
/// (HAProxy's own TLVs — ALPN, authority, SSL details — fit many times over).
pub const V2_MAX: usize = 16 + 2048;

const V1_PREFIX: &[u8] = b"PROXY ";

/// A complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Bytes the header takes at the start of the connection.
    pub len: usize,
    /// The client the connection is for; `None` when the header says to use the
    /// connection's own addresses (v1 `UNKNOWN`, v2 `LOCAL`, an unspecified or UNIX
    /// family): the balancer's own health checks, for instance.
    pub source: Option<SocketAddr>,
}

/// Why a header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The connection does not start with a PROXY header at all.
    Missing,
    /// A v1 line longer than [`V1_MAX`] bytes, or a v2 header longer than [`V2_MAX`].
    TooLong,
    /// A v1 line that breaks its grammar (fields, spaces, addresses, ports).
    BadLine,
    /// A v2 header with a version, command, family or length that is not allowed.
    BadBlock,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::Missing => "no PROXY protocol header",
            HeaderError::TooLong => "PROXY protocol header too long",
            HeaderError::BadLine => "malformed PROXY protocol v1 line",
            HeaderError::BadBlock => "malformed PROXY protocol v2 header",
        })
    }
}

/// Parses the PROXY header at the start of `data`: `Ok(None)` while more bytes are
/// needed, `Ok(Some(_))` once it is complete (what follows it is the client's first
/// request), `Err` if it is not a valid header. Never reads past the header.
///
/// # Errors
/// [`HeaderError`] for anything that is not a complete, valid v1 or v2 header or a
/// prefix of one.
pub fn parse(data: &[u8]) -> Result<Option<Parsed>, HeaderError> {
    if data.is_empty() {
        return Ok(None);
    }
    if is_prefix_of(data, V1_PREFIX) {
        return v1(data);
    }
    if is_prefix_of(data, &V2_SIGNATURE) {
        return v2(data);
    }
    Err(HeaderError::Missing)
}

/// `data` and `magic` agree on their common length (`data` starts `magic` or is a
/// start of it).
fn is_prefix_of(data: &[u8], magic: &[u8]) -> bool {
    let n = data.len().min(magic.len());
    data.get(..n) == magic.get(..n)
}

fn v1(data: &[u8]) -> Result<Option<Parsed>, HeaderError> {
    let window = data.get(..data.len().min(V1_MAX)).unwrap_or(data);
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if data.len() >= V1_MAX {
            return Err(HeaderError::TooLong);
        }
        // A bare LF ends nothing: only CRLF does, and then it is refused below.
        if window.contains(&b'\n') {
            return Err(HeaderError::BadLine);
        }
        return Ok(None);
    };
    if cr + 2 > V1_MAX {
        return Err(HeaderError::TooLong);
    }
    match data.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(HeaderError::BadLine),
    }
    let line = window
        .get(V1_PREFIX.len()..cr)
        .ok_or(HeaderError::BadLine)?;
    let line = std::str::from_utf8(line).map_err(|_| HeaderError::BadLine)?;
    let len = cr + 2;
    let mut fields = line.split(' ');
    let family = fields.next().ok_or(HeaderError::BadLine)?;
    if family == "UNKNOWN" {
        // What follows UNKNOWN is to be ignored (specification §2.1).
        return Ok(Some(Parsed { len, source: None }));
    }
    let v6 = match family {
        "TCP4" => false,
        "TCP6" => true,
        _ => return Err(HeaderError::BadLine),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(HeaderError::BadLine);
    };
    let src = v1_addr(src, v6)?;
    v1_addr(dst, v6)?;
    let sport = v1_port(sport)?;
    v1_port(dport)?;
    Ok(Some(Parsed {
        len,
        source: Some(SocketAddr::new(src, sport)),
    }))
}

fn v1_addr(text: &str, v6: bool) -> Result<IpAddr, HeaderError> {
    let ip = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    ip.map_err(|_| HeaderError::BadLine)
}

/// A port as the specification writes it: decimal, 0 to 65535, no sign, no leading zero.
fn v1_port(text: &str) -> Result<u16, HeaderError> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(HeaderError::BadLine);
    }
    text.parse().map_err(|_| HeaderError::BadLine)
}

fn v2(data: &[u8]) -> Result<Option<Parsed>, HeaderError> {
    let Some(fixed) = data.get(..16) else {
        return Ok(None);
    };
    let (ver_cmd, fam, hi, lo) = (fixed[12], fixed[13], fixed[14], fixed[15]);
    if ver_cmd >> 4 != 2 {
        return Err(HeaderError::BadBlock);
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(HeaderError::BadBlock),
    };
    let body_len = usize::from(u16::from_be_bytes([hi, lo]));
    let len = 16 + body_len;
    if len > V2_MAX {
        return Err(HeaderError::TooLong);
    }
    // What each family's addresses take; TLVs may follow them within the length.
    let (family, transport) = (fam >> 4, fam & 0x0f);
    let need = match family {
        0 => 0,
        1 => 12,
        2 => 36,
        3 => 216,
        _ => return Err(HeaderError::BadBlock),
    };
    if transport > 2 || body_len < need {
        return Err(HeaderError::BadBlock);
    }
    let Some(body) = data.get(16..len) else {
        return Ok(None);
    };
    if local || family == 0 || family == 3 {
        // LOCAL (the balancer speaking for itself), or addresses that name no TCP client.
        return Ok(Some(Parsed { len, source: None }));
    }
    if transport != 1 {
        // A datagram client cannot be what sent a TCP stream.
        return Err(HeaderError::BadBlock);
    }
    let source = if family == 1 {
        let (Some(ip), Some(port)) = (body.get(0..4), body.get(8..10)) else {
            return Err(HeaderError::BadBlock);
        };
        let ip = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
        SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([port[0], port[1]]))
    } else {
        let (Some(ip), Some(port)) = (body.get(0..16), body.get(32..34)) else {
            return Err(HeaderError::BadBlock);
        };
        let mut octets = [0u8; 16];
        octets.copy_from_slice(ip);
        let ip = Ipv6Addr::from(octets);
        SocketAddr::new(IpAddr::V6(ip), u16::from_be_bytes([port[0], port[1]]))
    };
    Ok(Some(Parsed {
        len,
        source: Some(source),
    }))
}

/// The fuzz target's entry point, also run by the unit tests: never panics, never claims
/// more bytes than it was given, and a complete header parses the same whatever follows
/// it and stays incomplete (never refused) on every shorter prefix of it.
#[cfg(any(test, fuzzing))]
pub fn fuzz(data: &[u8]) {
    let Ok(Some(whole)) = parse(data) else {
        return;
    };
    assert!(whole.len <= data.len());
    let header = &data[..whole.len];
    assert_eq!(parse(header), Ok(Some(whole)));
    for cut in 0..whole.len {
        assert_eq!(parse(&header[..cut]), Ok(None), "cut at {cut}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_header(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(ver_cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn sa(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn v1_lines_give_the_client_address() {
        let cases: [(&[u8], Option<SocketAddr>); 3] = [
            (
                b"PROXY TCP4 192.168.1.7 10.0.0.1 56324 3128\r\nGET",
                sa("192.168.1.7:56324"),
            ),
            (
                b"PROXY TCP6 2001:db8::7 ::1 65535 3128\r\n",
                sa("[2001:db8::7]:65535"),
            ),
            (b"PROXY UNKNOWN whatever follows\r\n", None),
        ];
        for (data, source) in cases {
            let len = data.iter().position(|&b| b == b'\n').unwrap() + 1;
            assert_eq!(parse(data), Ok(Some(Parsed { len, source })), "{data:?}");
            fuzz(data);
        }
    }

    #[test]
    fn v1_lines_that_break_the_grammar_are_refused() {
        let bad: [&[u8]; 12] = [
            b"PROXY TCP4 192.168.1.7 10.0.0.1 56324\r\n",
            b"PROXY TCP4 192.168.1.7 10.0.0.1 56324 3128 extra\r\n",
            b"PROXY TCP4  192.168.1.7 10.0.0.1 56324 3128\r\n",
            b"PROXY TCP4 192.168.1.7 10.0.0.1 056324 3128\r\n",
            b"PROXY TCP4 192.168.1.7 10.0.0.1 65536 3128\r\n",
            b"PROXY TCP4 192.168.1.7 10.0.0.1 +80 3128\r\n",
            b"PROXY TCP4 2001:db8::7 10.0.0.1 80 3128\r\n",
            b"PROXY TCP6 192.168.1.7 ::1 80 3128\r\n",
            b"PROXY TCP5 192.168.1.7 10.0.0.1 80 3128\r\n",
            b"PROXY TCP4 192.168.1.7 10.0.0.1 80 3128\n",
            b"PROXY TCP4 192.168.1.7 10.0.0.1 80 3128\rX",
            b"PROXY tcp4 192.168.1.7 10.0.0.1 80 3128\r\n",
        ];
        for data in bad {
            assert_eq!(parse(data), Err(HeaderError::BadLine), "{data:?}");
            fuzz(data);
        }
    }

    #[test]
    fn a_v1_line_without_its_end_waits_then_is_too_long() {
        assert_eq!(parse(b"PROX"), Ok(None));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Ok(None));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), Ok(None));
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 120]].concat();
        assert_eq!(parse(&long), Err(HeaderError::TooLong));
        // The longest line allowed is 107 bytes with its CRLF.
        let mut max = b"PROXY UNKNOWN ".to_vec();
        max.resize(V1_MAX - 2, b'y');
        max.extend_from_slice(b"\r\n");
        assert_eq!(parse(&max).map(|p| p.map(|p| p.len)), Ok(Some(V1_MAX)));
        let mut over = max[..V1_MAX - 2].to_vec();
        over.extend_from_slice(b"y\r\n");
        assert_eq!(parse(&over), Err(HeaderError::TooLong));
    }

    #[test]
    fn anything_else_has_no_header() {
        for data in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"CONNECT a:443",
            b"\r\n\r\nGET",
            b"proxy ",
        ] {
            assert_eq!(parse(data), Err(HeaderError::Missing), "{data:?}");
        }
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"\r\n\r\n\0\r"), Ok(None));
    }

    #[test]
    fn v2_blocks_give_the_client_address_and_skip_tlvs() {
        let mut inet = vec![192, 168, 1, 7, 10, 0, 0, 1];
        inet.extend_from_slice(&56324u16.to_be_bytes());
        inet.extend_from_slice(&3128u16.to_be_bytes());
        let h = v2_header(0x21, 0x11, &inet);
        let got = parse(&[h.as_slice(), b"GET / HTTP/1.1\r\n"].concat());
        assert_eq!(
            got,
            Ok(Some(Parsed {
                len: 28,
                source: sa("192.168.1.7:56324")
            }))
        );
        fuzz(&h);

        let mut inet6 = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        inet6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        inet6.extend_from_slice(&443u16.to_be_bytes());
        inet6.extend_from_slice(&3128u16.to_be_bytes());
        // A TLV (type 0x01 ALPN, length 2, "h1") after the addresses.
        inet6.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'1']);
        let h = v2_header(0x21, 0x21, &inet6);
        assert_eq!(
            parse(&h),
            Ok(Some(Parsed {
                len: 16 + 36 + 5,
                source: sa("[2001:db8::7]:443")
            }))
        );
        fuzz(&h);
    }

    #[test]
    fn v2_local_and_unspecified_use_the_connection_itself() {
        // LOCAL with INET addresses: the balancer's health check; addresses ignored.
        let h = v2_header(0x20, 0x11, &[0; 12]);
        assert_eq!(
            parse(&h),
            Ok(Some(Parsed {
                len: 28,
                source: None
            }))
        );
        let h = v2_header(0x20, 0x00, &[]);
        assert_eq!(
            parse(&h),
            Ok(Some(Parsed {
                len: 16,
                source: None
            }))
        );
        let h = v2_header(0x21, 0x31, &[0; 216]);
        assert_eq!(
            parse(&h),
            Ok(Some(Parsed {
                len: 232,
                source: None
            }))
        );
    }

    #[test]
    fn v2_blocks_that_break_the_rules_are_refused() {
        let bad = [
            v2_header(0x11, 0x11, &[0; 12]), // version 1 in a v2 block
            v2_header(0x22, 0x11, &[0; 12]), // command 2
            v2_header(0x21, 0x41, &[0; 12]), // family 4
            v2_header(0x21, 0x13, &[0; 12]), // transport 3
            v2_header(0x21, 0x12, &[0; 12]), // a datagram client
            v2_header(0x21, 0x11, &[0; 11]), // INET addresses cut short
            v2_header(0x21, 0x21, &[0; 12]), // INET6 addresses cut short
        ];
        for h in &bad {
            assert_eq!(parse(h), Err(HeaderError::BadBlock), "{h:?}");
            fuzz(h);
        }
        let mut huge = v2_header(0x21, 0x11, &[]);
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse(&huge), Err(HeaderError::TooLong));
    }

    #[test]
    fn a_v2_block_waits_for_its_whole_length() {
        let h = v2_header(0x21, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 80, 0, 81]);
        for cut in 0..h.len() {
            assert_eq!(parse(&h[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(matches!(parse(&h), Ok(Some(_))));
    }

    /// The seeds the fuzzer starts from (`fuzz/seeds/proxy_header/`), as HAProxy writes
    /// them: each is a complete header.
    const SEEDS: [&[u8]; 4] = [
        include_bytes!("../../fuzz/seeds/proxy_header/v1-tcp4"),
        include_bytes!("../../fuzz/seeds/proxy_header/v1-tcp6"),
        include_bytes!("../../fuzz/seeds/proxy_header/v2-inet"),
        include_bytes!("../../fuzz/seeds/proxy_header/v2-local"),
    ];

    #[test]
    fn the_fuzz_seeds_are_complete_headers() {
        let sources = [
            sa("192.168.1.7:56324"),
            sa("[2001:db8::7]:443"),
            sa("192.168.1.7:56324"),
            None,
        ];
        for (seed, source) in SEEDS.iter().zip(sources) {
            assert_eq!(parse(seed).map(|p| p.map(|p| p.source)), Ok(Some(source)));
            fuzz(seed);
        }
    }

    #[test]
    fn random_and_mutated_headers_never_panic() {
        // A small xorshift generator: the same inputs every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut seeds: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.to_vec()).collect();
        seeds.push(v2_header(0x21, 0x21, &[7; 40]));
        for _ in 0..20_000 {
            let mut data = seeds[(next() % seeds.len() as u64) as usize].clone();
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % data.len();
                data[at] = next() as u8;
            }
            if next() % 5 == 0 {
                data.truncate((next() as usize) % (data.len() + 1));
            }
            fuzz(&data);
        }
    }
}
