//! Helpers shared by the parsers' tests: a tiny deterministic generator and a
//! mutator, so every parser is fed the same kind of damage, and generators of the
//! heads and chunked bodies senders write, for the property tests.

/// xorshift64: deterministic, so a failing input can be reproduced from the seed.
pub(crate) fn next_u64(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Applies one to four random edits to `input` (overwrite, insert or delete a
/// byte drawn from `alphabet`, which should hold the bytes the grammar cares about).
pub(crate) fn mutate(input: &mut Vec<u8>, rng: &mut u64, alphabet: &[u8]) {
    for _ in 0..1 + next_u64(rng) % 4 {
        if input.is_empty() || alphabet.is_empty() {
            return;
        }
        let at = (next_u64(rng) % input.len() as u64) as usize;
        let byte = alphabet[(next_u64(rng) % alphabet.len() as u64) as usize];
        match next_u64(rng) % 3 {
            0 => input[at] = byte,
            1 => input.insert(at, byte),
            _ => {
                input.remove(at);
            }
        }
    }
}

/// A field list as httparse gives it, from `(name, value)` pairs.
pub(crate) fn fields<'a>(list: &[(&'a str, &'a str)]) -> Vec<httparse::Header<'a>> {
    list.iter()
        .map(|&(name, value)| httparse::Header {
            name,
            value: value.as_bytes(),
        })
        .collect()
}

/// The generator as a value, with the draws the head and body generators need.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (next_u64(&mut self.0) % n.max(1) as u64) as usize
    }

    /// True one time in `n`.
    pub(crate) fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| next_u64(&mut self.0) as u8).collect()
    }
}

/// A field name as a sender might spell it: as listed, lowercase or uppercase.
fn spell(rng: &mut Rng, name: &str) -> String {
    match rng.below(4) {
        0 => name.to_ascii_lowercase(),
        1 => name.to_ascii_uppercase(),
        _ => name.to_string(),
    }
}

/// Appends field lines drawn from `pool`, each at most once, with the separators and
/// padding senders use, each line ended by `eol`.
fn push_fields(out: &mut Vec<u8>, rng: &mut Rng, pool: &[(&str, &[u8])], eol: &[u8]) {
    let mut taken = vec![false; pool.len()];
    for _ in 0..rng.below(9) {
        let i = rng.below(pool.len());
        if std::mem::replace(&mut taken[i], true) {
            continue;
        }
        let (name, value) = pool[i];
        out.extend_from_slice(spell(rng, name).as_bytes());
        out.extend_from_slice(rng.pick(&[&b": "[..], b":", b":\t", b":  "]));
        out.extend_from_slice(value);
        out.extend_from_slice(rng.pick(&[&b""[..], b"", b" ", b"\t "]));
        out.extend_from_slice(eol);
    }
}

/// A host as a target may name it, without a port.
fn host(rng: &mut Rng) -> &'static str {
    rng.pick(&[
        "example.com",
        "Example.COM",
        "a",
        "www.example.org.",
        "under_score.test",
        "a-b.c-d",
        "127.0.0.1",
        "[::1]",
        "[2001:DB8::1]",
    ])
}

/// A request head built from random methods, targets, versions and fields, mostly
/// ones larder accepts (some combinations are refused, such as Content-Length beside
/// Transfer-Encoding, or CONNECT with content).
pub(crate) fn request_head(rng: &mut Rng) -> Vec<u8> {
    let method = rng.pick(&[
        "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
        "PROPFIND", "get", "M-SEARCH",
    ]);
    let host = host(rng);
    let port = rng.pick(&["", "", ":80", ":8080", ":080", ":65535", ":1"]);
    let path = rng.pick(&[
        "",
        "/",
        "/a/b",
        "/index.html?q=1&r=%20",
        "?x=y",
        "/~user/;p=1",
        "/a//b/../c?",
    ]);
    let origin_form = method != "CONNECT" && rng.one_in(6);
    let target = match method {
        "CONNECT" => format!("{host}{}", rng.pick(&[":443", ":8443", ":1"])),
        _ if origin_form => format!("/{}", path.trim_start_matches('/')),
        _ => format!("{}{host}{port}{path}", rng.pick(&["http://", "HTTP://"])),
    };
    let version = rng.pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]);
    let mut out = Vec::new();
    if rng.one_in(10) {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("{method} {target} {version}\r\n").as_bytes());
    if origin_form {
        out.extend_from_slice(format!("Host: {host}{port}\r\n").as_bytes());
    }
    let pool: [(&str, &[u8]); 24] = [
        ("Host", b"example.com"),
        (
            "User-Agent",
            b"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        ),
        ("Accept", b"text/html,*/*;q=0.8"),
        ("Connection", b"keep-alive"),
        ("Connection", b"close"),
        ("Connection", b"X-Hop, Keep-Alive"),
        ("X-Hop", b"1"),
        ("Proxy-Connection", b"keep-alive"),
        ("Content-Length", b"5"),
        ("Content-Length", b"0, 0"),
        ("Transfer-Encoding", b"chunked"),
        ("Expect", b"100-continue"),
        ("Cache-Control", b"no-cache, max-age=0"),
        ("Pragma", b"no-cache"),
        ("If-None-Match", b"\"abc\", W/\"d\""),
        ("If-Modified-Since", b"Sun, 06 Nov 1994 08:49:37 GMT"),
        ("Via", b"1.0 other-proxy (comment)"),
        ("Proxy-Authorization", b"Basic eDp5"),
        ("TE", b"trailers"),
        ("Keep-Alive", b"timeout=5"),
        ("X-Empty", b""),
        ("X-Obs-Text", b"caf\xe9 \xff"),
        ("Cookie", b"a=b; c=d"),
        ("X-Colons", b"a:b::c"),
    ];
    push_fields(&mut out, rng, &pool, b"\r\n");
    out.extend_from_slice(b"\r\n");
    out
}

/// A response head built from random statuses, reasons, versions and fields, mostly
/// ones larder accepts; now and then with bare LF line endings, which upstreams send
/// and larder reads.
pub(crate) fn response_head(rng: &mut Rng) -> Vec<u8> {
    let status = rng.pick(&[
        100, 103, 200, 200, 200, 204, 206, 301, 304, 404, 407, 500, 599, 999,
    ]);
    let reason = rng.pick(&[
        &b""[..],
        b" ",
        b" OK",
        b" Fine Thanks",
        b" \xd0\x9e\xd0\x9a",
        b" caf\xe9",
        b" a\tb",
    ]);
    let version = rng.pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]);
    let eol: &[u8] = if rng.one_in(8) { b"\n" } else { b"\r\n" };
    let mut out = format!("{version} {status}").into_bytes();
    out.extend_from_slice(reason);
    out.extend_from_slice(eol);
    let pool: [(&str, &[u8]); 20] = [
        ("Date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
        ("Server", b"nginx"),
        ("Content-Type", b"text/html; charset=utf-8"),
        ("Content-Length", b"12"),
        ("Content-Length", b"3, 3"),
        ("Transfer-Encoding", b"chunked"),
        ("Connection", b"keep-alive"),
        ("Connection", b"close"),
        ("Connection", b"X-Hop"),
        ("X-Hop", b"1"),
        ("Keep-Alive", b"timeout=5"),
        ("Cache-Control", b"max-age=60, public"),
        ("Cache-Control", b"no-store"),
        ("ETag", b"\"x\""),
        ("Set-Cookie", b"a=b; Path=/"),
        ("Proxy-Authenticate", b"Basic realm=\"r\""),
        ("Trailer", b"X-Checksum"),
        ("Link", b"</s.css>; rel=preload"),
        ("X-Empty", b""),
        ("X-Obs-Text", b"caf\xe9"),
    ];
    push_fields(&mut out, rng, &pool, eol);
    out.extend_from_slice(eol);
    out
}

/// A chunked body of many small chunks with extensions (tokens, quoted strings,
/// whitespace where the grammar allows it) and trailers; returns it with the data it
/// carries.
pub(crate) fn chunked_body(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let mut body = Vec::new();
    let mut data = Vec::new();
    for _ in 0..rng.below(16) {
        let len = if rng.one_in(8) {
            rng.below(300)
        } else {
            rng.below(8)
        } + 1;
        push_size_line(&mut body, rng, len);
        let chunk: Vec<u8> = (0..len)
            .map(|_| rng.pick(b"abcXYZ019 \r\n\t\x00\xff"))
            .collect();
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
        data.extend_from_slice(&chunk);
    }
    push_size_line(&mut body, rng, 0);
    let trailers: [&[u8]; 4] = [
        b"Expires: never\r\n",
        b"X-Checksum: abc==\r\n",
        b"Server-Timing: db;dur=53\r\n",
        b"X-Empty:\r\n",
    ];
    for _ in 0..rng.below(3) {
        body.extend_from_slice(rng.pick(&trailers));
    }
    body.extend_from_slice(b"\r\n");
    (body, data)
}

/// A chunk-size line for `len`: hex in either case, sometimes with leading zeros,
/// and up to two extensions.
fn push_size_line(out: &mut Vec<u8>, rng: &mut Rng, len: usize) {
    if rng.one_in(4) {
        out.extend_from_slice(b"00");
    }
    let size = if rng.one_in(2) {
        format!("{len:x}")
    } else {
        format!("{len:X}")
    };
    out.extend_from_slice(size.as_bytes());
    for _ in 0..rng.below(3) {
        out.extend_from_slice(rng.pick(&[
            &b";name"[..],
            b";name=value",
            b" ;a = b",
            b";q=\"a \\\" b\"",
            b"; ext-2=\"\"",
        ]));
    }
    out.extend_from_slice(b"\r\n");
}

/// `n` generated heads (`head` makes one), every other one mutated with bytes from
/// `alphabet`, each followed by what a buffer may hold after a head; with whether it
/// was mutated.
pub(crate) fn heads(
    seed: u64,
    n: usize,
    head: fn(&mut Rng) -> Vec<u8>,
    alphabet: &[u8],
) -> Vec<(bool, Vec<u8>)> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let mut input = head(&mut rng);
            let mutated = i % 2 == 1;
            if mutated {
                mutate(&mut input, &mut rng.0, alphabet);
            }
            input.extend(after_head(&mut rng));
            (mutated, input)
        })
        .collect()
}

/// What a connection's buffer may hold after a head: nothing, a body, the next
/// message, or noise.
pub(crate) fn after_head(rng: &mut Rng) -> Vec<u8> {
    match rng.below(4) {
        0 => Vec::new(),
        1 => b"hello".to_vec(),
        2 => b"GET http://next/ HTTP/1.1\r\nHost: next\r\n\r\n".to_vec(),
        _ => {
            let len = rng.below(40);
            rng.bytes(len)
        }
    }
}
