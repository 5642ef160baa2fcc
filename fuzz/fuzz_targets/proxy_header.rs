//! Feeds arbitrary bytes to `larder::http::proxy_header::fuzz`: the PROXY protocol
//! parser must never panic (see `src/http/proxy_header.rs` for what it also checks).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    larder::http::proxy_header::fuzz(data);
});
