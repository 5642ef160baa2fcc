//! Parser and chunked-decoder throughput, without a benchmarking crate:
//! `cargo bench --bench http` prints ns/op and MB/s for each case.

use larder::http::chunked::ChunkedDecoder;
use larder::http::request::parse_request;
use larder::http::response::parse_response;
use larder::http::{Limits, Method, ViaName};
use std::hint::black_box;
use std::time::Instant;

const REQUEST: &[u8] = b"GET http://www.example.com/assets/app.js?v=3 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate\r\n\
Referer: http://www.example.com/index.html\r\n\
Cookie: session=0123456789abcdef; theme=dark\r\n\
Proxy-Connection: keep-alive\r\n\
\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
Server: nginx/1.24.0\r\n\
Content-Type: application/javascript\r\n\
Content-Length: 48213\r\n\
Last-Modified: Sun, 31 Dec 2023 12:00:00 GMT\r\n\
ETag: \"65916a40-bc55\"\r\n\
Cache-Control: public, max-age=3600\r\n\
Connection: keep-alive\r\n\
Accept-Ranges: bytes\r\n\
\r\n";

/// Runs `f` `iters` times and prints the time per call and the throughput for `bytes` per call.
fn bench(name: &str, iters: u32, bytes: usize, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let secs = start.elapsed().as_secs_f64();
    let ns = secs * 1e9 / f64::from(iters);
    let mb_s = bytes as f64 * f64::from(iters) / secs / 1e6;
    println!("{name:<32} {ns:>12.0} ns/op {mb_s:>10.1} MB/s");
}

fn main() {
    let limits = Limits::default();
    let via = ViaName::new("larder-1a2b3c4d".into());

    bench(
        "parse_request (browser GET)",
        200_000,
        REQUEST.len(),
        || {
            black_box(parse_request(black_box(REQUEST), &limits, &via).ok());
        },
    );
    bench("parse_response (200 head)", 200_000, RESPONSE.len(), || {
        black_box(parse_response(black_box(RESPONSE), &limits, &Method::Get, &via).ok());
    });

    let mut body = Vec::new();
    for _ in 0..256 {
        body.extend_from_slice(b"1000\r\n");
        body.extend_from_slice(&[b'x'; 4096]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    bench("ChunkedDecoder (1 MiB, 4 KiB)", 2_000, body.len(), || {
        let mut decoder = ChunkedDecoder::new(&limits);
        let mut data = 0;
        // 16 KiB reads, as a socket would deliver them.
        for piece in body.chunks(16 * 1024) {
            if decoder.feed(black_box(piece), |r| data += r.len()).is_err() {
                break;
            }
        }
        black_box(data);
    });
}
