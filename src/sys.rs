//! The one OS call std lacks: the open-file limit, which sizes the connection limit.
//!
//! `libc` is not among larder's runtime crates, so the two functions are declared
//! here; std already links the C library that provides them.

/// Raises the soft open-file limit to the hard limit (as nginx and HAProxy do) and
/// returns the soft limit in force afterwards, or `None` if it cannot be read.
#[cfg(target_os = "linux")]
pub fn raise_nofile_limit() -> Option<u64> {
    #[repr(C)]
    struct RLimit {
        cur: u64,
        max: u64,
    }
    extern "C" {
        fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
    }
    const RLIMIT_NOFILE: i32 = 7;
    let mut lim = RLimit { cur: 0, max: 0 };
    // SAFETY: `lim` is a valid, writable struct with the C layout of `struct rlimit`
    // on Linux (two `rlim_t` = u64 fields).
    if unsafe { getrlimit(RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.cur < lim.max {
        let want = RLimit {
            cur: lim.max,
            max: lim.max,
        };
        // SAFETY: as above; a failure leaves the limit unchanged.
        if unsafe { setrlimit(RLIMIT_NOFILE, &want) } == 0 {
            lim.cur = lim.max;
        }
    }
    Some(lim.cur)
}

#[cfg(not(target_os = "linux"))]
pub fn raise_nofile_limit() -> Option<u64> {
    None
}

/// Client connections allowed for an open-file limit: each active client may hold
/// an upstream socket too, but idle keep-alive clients (the common case at scale)
/// hold none, so three quarters of what is left after a reserve for the listener,
/// log files, DNS threads and pooled upstreams.
pub fn max_conns_for(nofile: Option<u64>) -> usize {
    let n = nofile.unwrap_or(1024).min(1 << 20) as usize;
    (n.saturating_sub(64) * 3 / 4).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_leaves_room_for_upstreams() {
        assert_eq!(max_conns_for(Some(20_000)), 14_952);
        assert_eq!(max_conns_for(Some(10)), 16);
        assert!(raise_nofile_limit().is_some_and(|n| n > 0));
    }
}
