//! Feeds arbitrary bytes to `larder::http::fuzz::chunked_body`: it must never panic (see
//! `src/http/fuzz.rs` for what it also checks).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    larder::http::fuzz::chunked_body(data);
});
