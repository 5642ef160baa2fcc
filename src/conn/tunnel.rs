//! `Tunnel` state: a CONNECT splice, bytes moved both ways.
//!
//! Each direction runs on its own: client → upstream through the client's
//! `inbuf` (which may already hold bytes the client sent right behind its CONNECT
//! head), upstream → client through the upstream's `inbuf` after larder's own
//! `200 Connection established` (in `out`). When one side sends EOF and its
//! direction is drained, larder shuts down the write half towards the other side,
//! so half-closed protocols keep working; when both directions are shut the
//! tunnel ends.
//!
//! A direction starts by copying through a buffer. Once it has moved
//! [`SPLICE_AFTER`] bytes and its buffer is empty it switches to a kernel pipe
//! (`splice(2)`, Linux), so a bulk transfer is never copied into larder's memory,
//! while short tunnels (most HTTPS requests) never pay for creating pipes. If a
//! pipe cannot be had (e.g. out of descriptors) the direction keeps copying.

use super::Socket;
use crate::access_log::ResultCode;
use std::net::Shutdown;

use super::request::{abort, drop_upstream, log_exchange};
use super::{
    end_exchange, read_into, recycle, write_two, Exchange, Io, OutBuf, Readiness, Scope, Splice,
    State,
};
use crate::buf::{Buf, BufPool};
use crate::sys::Pipe;

/// Bytes a direction copies before it switches to splicing.
pub const SPLICE_AFTER: u64 = 64 * 1024;

/// One direction of a tunnel.
struct Dir<'a, S> {
    src: &'a mut S,
    src_ready: &'a mut Readiness,
    src_eof: &'a mut bool,
    dst: &'a mut S,
    dst_ready: &'a mut Readiness,
    /// Copied bytes not yet written.
    buf: &'a mut Buf,
    /// Bytes larder itself sends first (the `200`), upstream → client only.
    prefix: Option<&'a mut OutBuf>,
    pipe: &'a mut Option<Pipe>,
    moved: &'a mut u64,
}

#[derive(Default)]
struct Flow {
    progress: bool,
    broken: bool,
    sent: usize,
}

impl<S: Socket> Dir<'_, S> {
    fn copied_pending(&self) -> bool {
        !self.buf.is_empty() || self.prefix.as_ref().is_some_and(|p| !p.is_empty())
    }

    /// Everything that will ever cross has crossed.
    fn drained(&self) -> bool {
        *self.src_eof && !self.copied_pending() && self.pipe.as_ref().is_none_or(|p| p.len == 0)
    }

    fn pump(&mut self, bufs: &mut BufPool) -> Flow {
        let mut f = Flow::default();
        if self.copied_pending() {
            if !self.dst_ready.w {
                return f;
            }
            let pre = self.prefix.as_ref().map_or(&[][..], |p| p.pending());
            match write_two(self.dst, self.dst_ready, pre, self.buf.data()) {
                Io::Done(n) => {
                    let p = n.min(pre.len());
                    if let Some(prefix) = self.prefix.as_mut() {
                        prefix.advance(p);
                    }
                    self.buf.consume(n - p);
                    f.sent += n;
                    f.progress = true;
                }
                Io::Blocked => {}
                Io::Eof | Io::Failed(_) => f.broken = true,
            }
            self.buf.release_if_empty(bufs);
            if self.copied_pending() || f.broken {
                *self.moved += f.sent as u64;
                return f;
            }
        }
        let kernel_sockets = self.src.fd().is_some() && self.dst.fd().is_some();
        if self.pipe.is_none() && *self.moved >= SPLICE_AFTER && !*self.src_eof && kernel_sockets {
            if let Ok(p) = Pipe::new() {
                *self.pipe = Some(p);
            }
        }
        match self.pipe.as_mut() {
            Some(pipe) => {
                let (src, dst) = (&*self.src, &*self.dst);
                splice_step(
                    pipe,
                    src,
                    self.src_ready,
                    self.src_eof,
                    dst,
                    self.dst_ready,
                    &mut f,
                );
            }
            None if self.src_ready.r && !*self.src_eof => {
                match read_into(self.src, self.src_ready, self.buf.space(bufs)) {
                    Io::Done(n) => {
                        self.buf.filled(n);
                        f.progress = true;
                    }
                    Io::Blocked => self.buf.release_if_empty(bufs),
                    Io::Eof => {
                        *self.src_eof = true;
                        f.progress = true;
                    }
                    Io::Failed(_) => f.broken = true,
                }
            }
            None => {}
        }
        *self.moved += f.sent as u64;
        f
    }
}

/// Source → pipe → destination, as far as both sockets allow. A pipe is made only
/// for kernel sockets, so both have descriptors.
fn splice_step<S: Socket>(
    pipe: &mut Pipe,
    src: &S,
    src_ready: &mut Readiness,
    src_eof: &mut bool,
    dst: &S,
    dst_ready: &mut Readiness,
    f: &mut Flow,
) {
    let (Some(src), Some(dst)) = (src.fd(), dst.fd()) else {
        f.broken = true;
        return;
    };
    let mut drain = |pipe: &mut Pipe, f: &mut Flow| {
        if pipe.len > 0 && dst_ready.w {
            match pipe.drain(&dst) {
                Ok(n) => {
                    f.sent += n;
                    f.progress |= n > 0;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => dst_ready.w = false,
                Err(_) => f.broken = true,
            }
        }
    };
    drain(pipe, f);
    if pipe.len < pipe.cap && src_ready.r && !*src_eof && !f.broken {
        match pipe.fill(&src) {
            Ok(0) => {
                *src_eof = true;
                f.progress = true;
            }
            Ok(_) => {
                f.progress = true;
                drain(pipe, f);
            }
            // With bytes still in the pipe, WouldBlock may mean "pipe full", not
            // "socket drained": only an empty pipe proves the socket is dry.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if pipe.len == 0 {
                    src_ready.r = false;
                }
            }
            Err(_) => f.broken = true,
        }
    }
}

/// Relays a CONNECT tunnel's bytes both ways, spending at most `budget` bytes.
/// Returns the next state and whether anything was done.
pub fn step<S: Socket>(
    cx: &mut Scope<S>,
    mut ex: Box<Exchange>,
    mut splice: Box<Splice>,
    budget: &mut usize,
) -> (State, bool) {
    let conn = &mut *cx.conn;
    let Some(up) = cx.ups.get_mut(splice.up) else {
        // Cannot happen: the socket is closed only through this connection.
        return (abort(cx, ex, None), true);
    };
    let bufs = &mut cx.ctx.bufs;
    let sp = &mut *splice;
    let [pipe_up, pipe_down] = &mut sp.pipes;
    let [moved_up, moved_down] = &mut sp.moved;

    let mut c2u = Dir {
        src: &mut conn.sock,
        src_ready: &mut conn.ready,
        src_eof: &mut conn.eof,
        dst: &mut up.sock,
        dst_ready: &mut up.ready,
        buf: &mut conn.inbuf,
        prefix: None,
        pipe: pipe_up,
        moved: moved_up,
    };
    let a = c2u.pump(bufs);
    let c2u_drained = c2u.drained();

    let mut u2c = Dir {
        src: &mut up.sock,
        src_ready: &mut up.ready,
        src_eof: &mut up.eof,
        dst: &mut conn.sock,
        dst_ready: &mut conn.ready,
        buf: &mut up.inbuf,
        prefix: Some(&mut conn.out),
        pipe: pipe_down,
        moved: moved_down,
    };
    let b = u2c.pump(bufs);
    let u2c_drained = u2c.drained();

    let mut progress = a.progress || b.progress;
    ex.bytes += b.sent as u64;
    *budget = budget.saturating_sub(a.sent + b.sent);
    // Both ways done: `close` sends both FINs (nothing unread is left, so no RST),
    // and the two `shutdown` calls would only cost system calls.
    if c2u_drained && u2c_drained {
        return (end(cx, ex, &splice), true);
    }
    if c2u_drained && !splice.upstream_write_shut {
        splice.upstream_write_shut = true;
        let _ = up.sock.shutdown(Shutdown::Write);
        progress = true;
    }
    if u2c_drained && !splice.client_write_shut {
        splice.client_write_shut = true;
        let _ = conn.sock.shutdown(Shutdown::Write);
        progress = true;
    }
    if progress {
        conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.tunnel);
    }
    if a.broken || b.broken || (splice.upstream_write_shut && splice.client_write_shut) {
        return (end(cx, ex, &splice), true);
    }
    (State::Tunnel { ex, splice }, progress)
}

/// Logs the tunnel and closes both sides.
pub fn end<S: Socket>(cx: &mut Scope<S>, ex: Box<Exchange>, splice: &Splice) -> State {
    let ex = end_exchange(cx, ex);
    cx.ctx.stats.bytes_from_upstream += splice.moved[1];
    log_exchange(cx, &ex, ResultCode::Tunnel);
    recycle(cx.ctx, ex);
    drop_upstream(cx, splice.up);
    State::Closed
}
