//! CONNECT tunnels: bytes both ways, early bytes, half-close in each direction, and the
//! port policy. (The tunnel idle timeout is tested in memory, with the other deadlines:
//! `src/conn/tests/timeouts.rs`.)

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread;

use crate::support::{Client, Proxy, Server, IO_TIMEOUT};

/// Echoes everything; when the client half-closes, writes `bye\n` and closes.
fn echo_then_bye(mut stream: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = stream.write_all(b"bye\n");
}

fn connect_head(authority: &str) -> String {
    format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
}

/// Opens a tunnel to `server` through `proxy` and checks the 200.
fn open_tunnel(proxy: &Proxy, server: &Server) -> Client {
    let mut client = proxy.client();
    client.send(connect_head(&server.authority()).as_bytes());
    let response = client.read_response_for("CONNECT");
    assert_eq!(response.status, 200, "CONNECT refused: {}", response.text());
    assert_eq!(response.header("content-length"), None);
    assert_eq!(response.header("transfer-encoding"), None);
    client
}

/// larder allowing CONNECT to `server`'s port, plus `args`.
fn proxy_for(server: &Server, args: &[&str]) -> Proxy {
    let port = server.port().to_string();
    let mut all = vec!["--connect-ports", port.as_str()];
    all.extend_from_slice(args);
    Proxy::start(&all)
}

/// Sends `data` through an echoing tunnel from a thread of its own (then half-closes,
/// with `half_close`) while reading the echo here, so that neither direction waits
/// for the other, and checks that every byte came back in order.
fn echo_through(client: &mut Client, data: &[u8], half_close: bool) {
    let mut writer = client.writer();
    let sent = data.to_vec();
    let writing = thread::spawn(move || {
        writer.write_all(&sent)?;
        if half_close {
            writer.shutdown(Shutdown::Write)?;
        }
        Ok::<(), std::io::Error>(())
    });
    let echoed = client.read_exact(data.len());
    writing
        .join()
        .expect("writer thread")
        .expect("write through the tunnel");
    assert!(echoed == data, "tunnel changed the bytes");
}

#[test]
fn connect_relays_bytes_both_ways() {
    let server = Server::start(echo_then_bye);
    let proxy = proxy_for(&server, &[]);
    let mut client = open_tunnel(&proxy, &server);
    client.send(b"ping\n");
    assert_eq!(client.read_exact(5), b"ping\n");

    // 1 MiB each way at once: neither direction may wait for the other.
    let data: Vec<u8> = (0..1usize << 20).map(|i| (i % 253) as u8).collect();
    echo_through(&mut client, &data, false);
    assert_eq!(server.conns(), 1);
}

#[test]
fn bytes_sent_with_the_connect_head_are_delivered() {
    let server = Server::start(echo_then_bye);
    let proxy = proxy_for(&server, &[]);
    let mut client = proxy.client();
    let mut first = connect_head(&server.authority()).into_bytes();
    first.extend_from_slice(b"early bytes\n");
    client.send(&first);
    assert_eq!(client.read_response_for("CONNECT").status, 200);
    assert_eq!(client.read_exact(12), b"early bytes\n");
}

#[test]
fn client_half_close_reaches_upstream_and_replies_still_flow() {
    let server = Server::start(echo_then_bye);
    let proxy = proxy_for(&server, &[]);
    let mut client = open_tunnel(&proxy, &server);
    client.send(b"abc");
    client.shutdown_write();
    // The echo server writes `bye` only after it read EOF: larder passed the half-close
    // on and kept the other direction open.
    assert_eq!(client.read_to_close(), b"abcbye\n");
}

#[test]
fn upstream_half_close_reaches_client_and_client_can_still_send() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |mut stream| {
        let _ = stream.write_all(b"hello\n");
        let _ = stream.shutdown(Shutdown::Write);
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got);
        let _ = tx.send(got);
    });
    let proxy = proxy_for(&server, &[]);
    let mut client = open_tunnel(&proxy, &server);
    assert_eq!(client.read_to_close(), b"hello\n");
    client.send(b"after\n");
    client.shutdown_write();
    let got = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("upstream got the client's bytes and EOF");
    assert_eq!(got, b"after\n");
}

#[test]
fn connect_to_a_port_not_allowed_is_403() {
    let server = Server::start(echo_then_bye);
    // Default policy: 443 only.
    let proxy = Proxy::start(&[]);
    let mut client = proxy.client();
    client.send(connect_head(&server.authority()).as_bytes());
    let response = client.read_response_for("CONNECT");
    assert_eq!(response.status, 403);
    let detail = format!("does not open tunnels to port {}", server.port());
    assert!(
        response.text().contains(&detail),
        "page: {}",
        response.text()
    );
    assert_eq!(server.conns(), 0);
}

#[test]
fn connect_ports_accept_lists_and_ranges() {
    let server = Server::start(echo_then_bye);
    let port = server.port();
    let around = format!("443,{}-{}", port - 1, port + 1);
    let proxy = Proxy::start(&["--connect-ports", &around]);
    let mut client = open_tunnel(&proxy, &server);
    client.send(b"in range\n");
    assert_eq!(client.read_exact(9), b"in range\n");

    let above = format!("443,{}-{}", port + 1, port + 2);
    let proxy = Proxy::start(&["--connect-ports", &above]);
    let mut client = proxy.client();
    client.send(connect_head(&server.authority()).as_bytes());
    assert_eq!(client.read_response_for("CONNECT").status, 403);
    assert_eq!(server.conns(), 1);
}

/// Past `SPLICE_AFTER` (64 KiB) a direction moves through a kernel pipe; its EOF
/// must still become a half-close towards the other side, in order, after the
/// last byte, and the other direction must keep flowing.
#[test]
fn half_close_after_a_bulk_transfer_is_delivered_in_order() {
    let server = Server::start(echo_then_bye);
    let proxy = proxy_for(&server, &[]);
    let mut client = open_tunnel(&proxy, &server);
    let data: Vec<u8> = (0..4usize << 20).map(|i| (i * 7 % 251) as u8).collect();
    echo_through(&mut client, &data, true);
    // The server saw our EOF only after every byte, then said goodbye and closed.
    assert_eq!(client.read_to_close(), b"bye\n");
}

#[test]
fn a_tunnel_through_sockets_with_a_chosen_congestion_control_keeps_its_bytes() {
    // reno is built into every Linux kernel and any process may choose it.
    let server = Server::start(echo_then_bye);
    let proxy = proxy_for(&server, &["--tcp-congestion", "reno"]);
    let mut client = open_tunnel(&proxy, &server);
    // Past the bytes a direction copies before it splices.
    let data: Vec<u8> = (0..4usize << 20).map(|i| (i % 251) as u8).collect();
    echo_through(&mut client, &data, false);
}

/// The congestion control `ss` reports for the established sockets matching `filter`
/// (e.g. `sport = :3128`), one name per socket.
fn congestion_of(filter: &str) -> Vec<String> {
    let out = std::process::Command::new("ss")
        .args(["-Htin", "state", "established", filter])
        .output()
        .expect("ss (iproute2) runs");
    assert!(out.status.success(), "ss {filter}: {:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // Each socket is an address line, then a tab-indented line of details that starts
    // with its congestion control's name.
    text.lines()
        .filter(|l| l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn where_the_system_paces_loopback_tunnels_do_not() {
    let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .expect("Linux names its congestion control")
        .trim()
        .to_string();
    let server = Server::start(echo_then_bye);
    let proxy = proxy_for(&server, &[]);
    let mut client = open_tunnel(&proxy, &server);
    client.send(b"ping\n");
    assert_eq!(client.read_exact(5), b"ping\n");
    // larder's end of the client's connection, and its connection to the server.
    let sides = [
        congestion_of(&format!("sport = :{}", proxy.addr().port())),
        congestion_of(&format!("dport = :{}", server.port())),
    ];
    for side in &sides {
        assert_eq!(side.len(), 1, "one socket each: {sides:?}");
        let name = side[0].as_str();
        if system.starts_with("bbr") {
            // cubic where this process may choose it, reno (always allowed) elsewhere.
            assert!(
                name == "cubic" || name == "reno",
                "{sides:?} on a {system} system"
            );
        } else {
            assert_eq!(name, system, "{sides:?}: the system's is kept");
        }
    }
}
