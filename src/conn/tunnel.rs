//! `Tunnel` state: a CONNECT splice, bytes copied both ways.
//!
//! Each direction runs on its own: client → upstream through the client's
//! `inbuf` (which may already hold bytes the client sent right behind its CONNECT
//! head), upstream → client through the upstream's `inbuf` after larder's own
//! `200 Connection established`. When one side sends EOF and its buffer is drained,
//! larder shuts down the write half towards the other side, so half-closed
//! protocols keep working; when both directions are shut the tunnel ends.

use std::net::Shutdown;

use super::request::{drop_upstream, log_exchange};
use super::{read_into, write_two, Cx, Io, State};

pub fn step(cx: &mut Cx, budget: &mut usize) -> bool {
    let Some(idx) = cx.conn.up else {
        cx.conn.state = State::Closed;
        return true;
    };
    let conn = &mut *cx.conn;
    let (Some(ex), Some(up)) = (conn.ex.as_deref_mut(), cx.ups.get_mut(idx)) else {
        conn.state = State::Closed;
        return true;
    };
    let bufs = &mut cx.ctx.bufs;
    let mut progress = false;
    let mut broken = false;

    // client → upstream
    if !conn.inbuf.is_empty() && up.ready.w {
        match write_two(&mut up.sock, &mut up.ready, conn.inbuf.data(), &[]) {
            Io::Done(n) => {
                conn.inbuf.consume(n);
                *budget = budget.saturating_sub(n);
                progress = true;
            }
            Io::Blocked => up.ready.w = false,
            Io::Eof | Io::Failed(_) => broken = true,
        }
    }
    if conn.inbuf.is_empty() && conn.ready.r && !conn.eof && !broken {
        match read_into(&mut conn.sock, &mut conn.ready, conn.inbuf.space(bufs)) {
            Io::Done(n) => {
                conn.inbuf.filled(n);
                progress = true;
            }
            Io::Blocked => conn.ready.r = false,
            Io::Eof => {
                conn.eof = true;
                progress = true;
            }
            Io::Failed(_) => broken = true,
        }
    }
    if conn.eof && conn.inbuf.is_empty() && !ex.shut_up {
        ex.shut_up = true;
        let _ = up.sock.shutdown(Shutdown::Write);
        progress = true;
    }
    conn.inbuf.release_if_empty(bufs);

    // upstream → client (our 200 first)
    let out = conn.out.pending();
    let data = up.inbuf.data();
    if (!out.is_empty() || !data.is_empty()) && conn.ready.w && !broken {
        match write_two(&mut conn.sock, &mut conn.ready, out, data) {
            Io::Done(n) => {
                let o = n.min(out.len());
                conn.out.advance(o);
                up.inbuf.consume(n - o);
                ex.bytes += n as u64;
                *budget = budget.saturating_sub(n);
                progress = true;
            }
            Io::Blocked => conn.ready.w = false,
            Io::Eof | Io::Failed(_) => broken = true,
        }
    }
    if up.inbuf.is_empty() && up.ready.r && !up.eof && !broken {
        match read_into(&mut up.sock, &mut up.ready, up.inbuf.space(bufs)) {
            Io::Done(n) => {
                up.inbuf.filled(n);
                progress = true;
            }
            Io::Blocked => up.ready.r = false,
            Io::Eof => {
                up.eof = true;
                progress = true;
            }
            Io::Failed(_) => broken = true,
        }
    }
    let client_drained = up.inbuf.is_empty() && conn.out.is_empty();
    if up.eof && client_drained && !ex.shut_client {
        ex.shut_client = true;
        let _ = conn.sock.shutdown(Shutdown::Write);
        progress = true;
    }
    up.inbuf.release_if_empty(bufs);

    if progress {
        conn.deadline = Some(cx.ctx.now + cx.ctx.cfg.timeouts.tunnel);
    }
    if broken || (ex.shut_up && ex.shut_client) {
        end(cx);
        return true;
    }
    progress
}

/// Logs the tunnel and closes both sides.
pub fn end(cx: &mut Cx) {
    if let Some(ex) = cx.conn.ex.take() {
        log_exchange(cx, &ex, "TCP_TUNNEL");
    }
    drop_upstream(cx);
    cx.conn.state = State::Closed;
}
