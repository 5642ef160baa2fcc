//! Feeds arbitrary bytes to the cache file decoder: the file header, then the recovery walk
//! over the rest as a data area. Whatever the bytes, it must return without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    larder::cache::format::fuzz_decode(data);
});
