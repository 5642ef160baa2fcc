//! The few OS calls std lacks: the open-file limit (which sizes the connection
//! limit), the signals larder handles (stop, reload, re-open the log), and, on
//! Linux, pipes and `splice(2)` for zero-copy CONNECT tunnels.
//!
//! `libc` is not among larder's runtime crates, so the functions are declared
//! here; std already links the C library that provides them.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

/// Stop requests (SIGTERM, SIGINT) received so far.
static STOPS: AtomicU32 = AtomicU32::new(0);
/// A reload (SIGHUP) or a log re-open (SIGUSR1) is asked for.
static RELOAD: AtomicBool = AtomicBool::new(false);
static REOPEN: AtomicBool = AtomicBool::new(false);
/// The write end of the pipe that wakes the loop when a signal arrives (-1: none).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGUSR1: i32 = 10;
const SIGTERM: i32 = 15;

extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
    fn read(fd: i32, buf: *mut u8, count: usize) -> isize;
}

extern "C" fn on_signal(signum: i32) {
    // Only atomics and write(2), which are async-signal-safe.
    match signum {
        SIGHUP => RELOAD.store(true, Ordering::Relaxed),
        SIGUSR1 => REOPEN.store(true, Ordering::Relaxed),
        _ => {
            STOPS.fetch_add(1, Ordering::Relaxed);
        }
    }
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: `fd` is the write end of a non-blocking pipe that lives as long as the
        // process (see `SignalPipe`); a full pipe (EAGAIN) already means "wake up".
        unsafe {
            write(fd, [1u8].as_ptr(), 1);
        }
    }
}

/// What the signals that arrived since the last [`take_signals`] ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// SIGTERM/SIGINT received in all (1: drain and stop; 2 or more: stop now).
    pub stops: u32,
    /// SIGHUP: re-read the block lists and re-open the access log.
    pub reload: bool,
    /// SIGUSR1: re-open the access log.
    pub reopen: bool,
}

/// Turns SIGTERM and SIGINT into a request to stop, SIGHUP into a reload and SIGUSR1
/// into a re-open of the access log, all reported by [`take_signals`]. The loop is
/// woken at once: `epoll_wait` is never restarted after a handler runs (signal(7)),
/// and a signal that lands outside it writes to [`SignalPipe`], which the loop polls.
pub fn catch_signals() {
    let handler = on_signal as extern "C" fn(i32) as usize;
    // SAFETY: `on_signal` has the C signature of a handler and only touches atomics and
    // calls write(2). If installing fails, the default action stays.
    unsafe {
        signal(SIGTERM, handler);
        signal(SIGINT, handler);
        signal(SIGHUP, handler);
        signal(SIGUSR1, handler);
    }
}

/// The signals received since the last call (the stop count is a running total).
pub fn take_signals() -> Signals {
    Signals {
        stops: STOPS.load(Ordering::Relaxed),
        reload: RELOAD.swap(false, Ordering::Relaxed),
        reopen: REOPEN.swap(false, Ordering::Relaxed),
    }
}

/// SIGTERM and SIGINT received since [`catch_signals`].
pub fn stops() -> u32 {
    STOPS.load(Ordering::Relaxed)
}

/// A pipe a signal handler writes a byte to, so that the loop, which polls its read
/// end, wakes even when the signal did not interrupt `epoll_wait`.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct SignalPipe {
    r: std::os::fd::OwnedFd,
    /// Kept open for the handler, which finds it through `WAKE_FD`.
    _w: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl SignalPipe {
    /// Makes the pipe and points the signal handler at it (one per process: a later
    /// one replaces the earlier one for the handler).
    pub fn new() -> std::io::Result<SignalPipe> {
        use std::os::fd::AsRawFd;
        let (r, w) = pipe_pair()?;
        WAKE_FD.store(w.as_raw_fd(), Ordering::Relaxed);
        Ok(SignalPipe { r, _w: w })
    }

    /// The read end, to register with the poller.
    pub fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.r.as_raw_fd()
    }

    /// Empties the pipe (its bytes only say "look at the signals").
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a valid local buffer from a descriptor we own; the pipe
        // is non-blocking, so this ends at EAGAIN.
        while unsafe { read(self.fd(), buf.as_mut_ptr(), buf.len()) } > 0 {}
    }
}

/// Elsewhere the loop notices signals when they interrupt its wait, or at its next
/// tick.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub struct SignalPipe;

#[cfg(not(target_os = "linux"))]
impl SignalPipe {
    pub fn new() -> std::io::Result<SignalPipe> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    pub fn fd(&self) -> i32 {
        -1
    }

    pub fn drain(&self) {}
}

#[cfg(target_os = "linux")]
impl Drop for SignalPipe {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        let _ = WAKE_FD.compare_exchange(
            self._w.as_raw_fd(),
            -1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

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

/// A pipe that moves bytes between two sockets inside the kernel
/// (`splice(2)`): a bulk CONNECT tunnel then costs no copy into larder's memory.
///
/// Contract: `len` counts the bytes in the pipe; [`Pipe::fill`] is called only
/// while `len < cap`. Both calls are non-blocking and report `WouldBlock` as an
/// error of that kind; `fill` returns `Ok(0)` at the source's EOF.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct Pipe {
    r: std::os::fd::OwnedFd,
    w: std::os::fd::OwnedFd,
    /// Bytes now in the pipe.
    pub len: usize,
    /// The pipe's size in bytes, as the kernel granted it.
    pub cap: usize,
}

/// Sets TCP_NODELAY on a listening socket. On Linux an accepted socket inherits
/// it, which spares a system call per connection; the caller checks the first
/// accepted socket before relying on that. `false` if the option could not be set.
#[cfg(target_os = "linux")]
pub fn set_listener_nodelay(listener: &impl std::os::fd::AsRawFd) -> bool {
    const TCP_NODELAY: i32 = 1;
    let on: i32 = 1;
    // SAFETY: `on` is a valid i32 for the call's duration and its size is passed.
    unsafe {
        setsockopt(
            listener.as_raw_fd(),
            IPPROTO_TCP,
            TCP_NODELAY,
            (&on as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        ) == 0
    }
}

/// Elsewhere accepted sockets get TCP_NODELAY one by one.
#[cfg(not(target_os = "linux"))]
pub fn set_listener_nodelay(_listener: &impl std::os::fd::AsRawFd) -> bool {
    false
}

#[cfg(target_os = "linux")]
extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const std::ffi::c_void, len: u32) -> i32;
}

#[cfg(target_os = "linux")]
const IPPROTO_TCP: i32 = 6;
#[cfg(target_os = "linux")]
const TCP_CONGESTION: i32 = 13;

/// Sets a socket's TCP congestion control (`TCP_CONGESTION`) by name. A listening
/// socket's is inherited by the sockets it accepts; one set on a connecting socket
/// applies from the handshake on. `NotFound` if the kernel has no such algorithm,
/// `PermissionDenied` if it is not among those an unprivileged process may choose.
#[cfg(target_os = "linux")]
pub fn set_congestion(sock: &impl std::os::fd::AsRawFd, name: &str) -> std::io::Result<()> {
    // SAFETY: `name` is valid for `len` bytes for the call's duration; the kernel
    // copies at most that many.
    let r = unsafe {
        setsockopt(
            sock.as_raw_fd(),
            IPPROTO_TCP,
            TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The socket's TCP congestion control, by name.
#[cfg(target_os = "linux")]
pub fn congestion(sock: &impl std::os::fd::AsRawFd) -> std::io::Result<String> {
    extern "C" {
        fn getsockopt(fd: i32, level: i32, name: i32, value: *mut u8, len: *mut u32) -> i32;
    }
    let mut buf = [0u8; 16];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` is writable for `len` bytes and `len` is a valid pointer; the
    // kernel writes at most `len` bytes and stores the length it wrote.
    let r = unsafe {
        getsockopt(
            sock.as_raw_fd(),
            IPPROTO_TCP,
            TCP_CONGESTION,
            buf.as_mut_ptr(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let got = buf.get(..len as usize).unwrap_or(&buf);
    let end = got.iter().position(|&b| b == 0).unwrap_or(got.len());
    Ok(String::from_utf8_lossy(got.get(..end).unwrap_or(got)).into_owned())
}

/// Elsewhere there is no congestion control to choose.
#[cfg(not(target_os = "linux"))]
pub fn set_congestion(_sock: &impl std::os::fd::AsRawFd, _name: &str) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Bytes free for unprivileged use on the file system holding `path` (`statvfs(2)`:
/// available blocks times the fragment size).
#[cfg(target_os = "linux")]
pub fn free_space(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    /// The leading fields of `struct statvfs` on Linux: two `unsigned long` (the size
    /// of a `usize` on every Linux target), then the block counts, 64-bit with musl and
    /// on 64-bit glibc (`statvfs64` on 32-bit glibc); the rest of the struct lands in
    /// `_rest`, which is larger than it.
    #[repr(C)]
    struct StatVfs {
        bsize: usize,
        frsize: usize,
        _blocks: u64,
        _bfree: u64,
        bavail: u64,
        _rest: [u64; 16],
    }
    extern "C" {
        #[cfg_attr(
            all(target_pointer_width = "32", target_env = "gnu"),
            link_name = "statvfs64"
        )]
        fn statvfs(path: *const std::ffi::c_char, buf: *mut StatVfs) -> i32;
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = StatVfs {
        bsize: 0,
        frsize: 0,
        _blocks: 0,
        _bfree: 0,
        bavail: 0,
        _rest: [0; 16],
    };
    // SAFETY: `c_path` is a NUL-terminated string and `st` a writable buffer at least
    // as large as the C struct, whose leading fields it mirrors.
    if unsafe { statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unit = if st.frsize > 0 { st.frsize } else { st.bsize };
    Ok(st.bavail.saturating_mul(unit as u64))
}

#[cfg(not(target_os = "linux"))]
pub fn free_space(_path: &std::path::Path) -> std::io::Result<u64> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
#[cfg(target_os = "linux")]
fn pipe_pair() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [-1i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { ffi::pipe2(fds.as_mut_ptr(), ffi::O_NONBLOCK | ffi::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(target_os = "linux")]
mod ffi {
    extern "C" {
        pub(super) fn pipe2(fds: *mut i32, flags: i32) -> i32;
        pub(super) fn splice(
            fd_in: i32,
            off_in: *mut i64,
            fd_out: i32,
            off_out: *mut i64,
            len: usize,
            flags: u32,
        ) -> isize;
        pub(super) fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    }
    pub(super) const O_NONBLOCK: i32 = 0o4000;
    pub(super) const O_CLOEXEC: i32 = 0o2000000;
    pub(super) const F_SETPIPE_SZ: i32 = 1031;
    pub(super) const SPLICE_F_MOVE: u32 = 1;
    pub(super) const SPLICE_F_NONBLOCK: u32 = 2;
}

#[cfg(target_os = "linux")]
impl Pipe {
    /// Bytes a tunnel pipe asks for (the kernel may give less; the default
    /// `pipe-max-size` allows this much to unprivileged processes).
    const WANT: i32 = 1 << 20;

    /// Makes a pipe and asks the kernel to grow it to 1 MiB; `cap` is what was granted
    /// (64 KiB, the usual default, if the request failed).
    pub fn new() -> std::io::Result<Pipe> {
        let (r, w) = pipe_pair()?;
        use std::os::fd::AsRawFd;
        // SAFETY: a plain fcntl on a descriptor we own; failure keeps the default size.
        let size = unsafe { ffi::fcntl(w.as_raw_fd(), ffi::F_SETPIPE_SZ, Self::WANT) };
        let cap = if size > 0 { size as usize } else { 64 * 1024 };
        Ok(Pipe { r, w, len: 0, cap })
    }

    /// Moves what the socket `from` has (up to the free room) into the pipe.
    pub fn fill(&mut self, from: &impl std::os::fd::AsRawFd) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let room = self.cap.saturating_sub(self.len);
        let n = splice_once(from.as_raw_fd(), self.w.as_raw_fd(), room)?;
        self.len += n;
        Ok(n)
    }

    /// Moves bytes from the pipe to the socket `to`.
    pub fn drain(&mut self, to: &impl std::os::fd::AsRawFd) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let n = splice_once(self.r.as_raw_fd(), to.as_raw_fd(), self.len)?;
        self.len -= n.min(self.len);
        Ok(n)
    }
}

/// Elsewhere tunnels keep copying: a pipe is never available.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub struct Pipe {
    pub len: usize,
    pub cap: usize,
}

#[cfg(not(target_os = "linux"))]
impl Pipe {
    pub fn new() -> std::io::Result<Pipe> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    pub fn fill(&mut self, _from: &impl std::os::fd::AsRawFd) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    pub fn drain(&mut self, _to: &impl std::os::fd::AsRawFd) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

#[cfg(target_os = "linux")]
fn splice_once(from: i32, to: i32, len: usize) -> std::io::Result<usize> {
    loop {
        // SAFETY: both descriptors are open (borrowed from live owners) and the
        // offsets are null, as splice requires for pipes and sockets.
        let n = unsafe {
            ffi::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                ffi::SPLICE_F_MOVE | ffi::SPLICE_F_NONBLOCK,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The addresses of this machine's network interfaces (`getifaddrs(3)`), loopback
/// included, each once: what "the box itself" means to the destination rules
/// (`acl::dest`). std has no call for it.
#[cfg(target_os = "linux")]
pub fn interface_addrs() -> std::io::Result<Vec<std::net::IpAddr>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    /// `struct ifaddrs` as glibc and musl lay it out.
    #[repr(C)]
    struct IfAddrs {
        next: *mut IfAddrs,
        name: *mut std::ffi::c_char,
        flags: u32,
        addr: *mut SockAddr,
        netmask: *mut SockAddr,
        ifu: *mut SockAddr,
        data: *mut std::ffi::c_void,
    }
    /// `struct sockaddr`, read only through the family it names.
    enum SockAddr {}
    extern "C" {
        fn getifaddrs(ifap: *mut *mut IfAddrs) -> i32;
        fn freeifaddrs(ifa: *mut IfAddrs);
    }
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    let mut head: *mut IfAddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid place for the list's pointer; on success the list is
    // ours until `freeifaddrs`, which is called once below.
    if unsafe { getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out: Vec<IpAddr> = Vec::new();
    let mut at = head;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs made, not yet freed.
        let node = unsafe { &*at };
        let sa = node.addr.cast::<u8>();
        if !sa.is_null() {
            // SAFETY: a non-null `ifa_addr` points at a sockaddr of the family its
            // first two bytes name, and only the bytes that family has are read:
            // `sockaddr_in` has its address at 4..8, `sockaddr_in6` at 8..24.
            let ip = unsafe {
                match sa.cast::<u16>().read_unaligned() {
                    AF_INET => Some(IpAddr::V4(Ipv4Addr::from(
                        sa.add(4).cast::<[u8; 4]>().read_unaligned(),
                    ))),
                    AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(
                        sa.add(8).cast::<[u8; 16]>().read_unaligned(),
                    ))),
                    _ => None,
                }
            };
            if let Some(ip) = ip.filter(|ip| !out.contains(ip)) {
                out.push(ip);
            }
        }
        at = node.next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { freeifaddrs(head) };
    Ok(out)
}

/// Elsewhere the interfaces are not read: the destination rules then know the box by
/// its loopback and listening addresses only.
#[cfg(not(target_os = "linux"))]
pub fn interface_addrs() -> std::io::Result<Vec<std::net::IpAddr>> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn accepted_sockets_inherit_the_listeners_nodelay() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(set_listener_nodelay(&listener));
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        drop(client);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn accepted_and_connecting_sockets_take_the_congestion_control_asked_for() {
        // reno is built into every Linux kernel and any process may choose it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_congestion(&listener, "reno").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(congestion(&accepted).unwrap(), "reno");
        set_congestion(&client, "reno").unwrap();
        assert_eq!(congestion(&client).unwrap(), "reno");
        let err = set_congestion(&client, "no_such_cc").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn limit_leaves_room_for_upstreams() {
        assert_eq!(max_conns_for(Some(20_000)), 14_952);
        assert_eq!(max_conns_for(Some(10)), 16);
        assert!(raise_nofile_limit().is_some_and(|n| n > 0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pipe_moves_socket_bytes_in_order_and_reports_eof() {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l2.local_addr().unwrap()).unwrap();
        let (mut d, _) = l2.accept().unwrap();
        let mut pipe = Pipe::new().unwrap();
        assert!(pipe.cap >= 4096);
        a.write_all(b"hello through the kernel").unwrap();
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let mut moved = 0;
        loop {
            match pipe.fill(&b) {
                Ok(0) => break,
                Ok(n) => moved += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(pipe.len, moved);
        while pipe.len > 0 {
            pipe.drain(&c).unwrap();
        }
        drop(c);
        let mut got = Vec::new();
        d.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hello through the kernel");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_interfaces_include_loopback_once() {
        let addrs = interface_addrs().expect("getifaddrs");
        let lo = std::net::IpAddr::from([127, 0, 0, 1]);
        assert_eq!(addrs.iter().filter(|&&ip| ip == lo).count(), 1, "{addrs:?}");
        // 127.0.0.2 is routed to the loopback interface, but no interface has it.
        assert!(
            !addrs.contains(&std::net::IpAddr::from([127, 0, 0, 2])),
            "{addrs:?}"
        );
    }
}
