//! `Closing` state: the last answer is flushed, the write side shut, and the client
//! drained until EOF, so it reads that answer instead of a reset (closing a socket
//! with unread bytes in it sends RST, which may destroy what is still in flight).

use super::Socket;
use std::time::Duration;

use super::{flush_out, read_into, Flushed, Io, Linger, Scope, State};

/// Longest we linger after our last response to let the client read it.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 256 * 1024;

/// Flush `out`, half-close, then drain until EOF (or [`LINGER`], or
/// [`LINGER_BYTES`]). Until `out` is flushed the deadline is the body timeout set
/// when the answer was queued.
pub(super) fn step<S: Socket>(cx: &mut Scope<S>, mut linger: Linger) -> (State, bool) {
    let conn = &mut *cx.conn;
    if !conn.out.is_empty() {
        return match flush_out(conn) {
            Flushed::Some => (State::Closing(linger), true),
            Flushed::Blocked => (State::Closing(linger), false),
            Flushed::Failed => (State::Closed, true),
        };
    }
    if !linger.shut {
        linger.shut = true;
        conn.inbuf.clear(&mut cx.ctx.bufs);
        if conn.eof || conn.sock.shutdown(std::net::Shutdown::Write).is_err() {
            return (State::Closed, true);
        }
        conn.deadline = Some(cx.ctx.now + LINGER);
    }
    if !conn.ready.r {
        return (State::Closing(linger), false);
    }
    let mut scratch = [0u8; 4096];
    match read_into(&mut conn.sock, &mut conn.ready, &mut scratch) {
        Io::Done(n) => {
            linger.drained += n;
            if linger.drained > LINGER_BYTES {
                return (State::Closed, true);
            }
            (State::Closing(linger), true)
        }
        Io::Blocked => (State::Closing(linger), false),
        Io::Eof | Io::Failed(_) => (State::Closed, true),
    }
}
