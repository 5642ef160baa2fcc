#!/usr/bin/env python3
"""Idle-connection RSS of larder: open N client connections through the proxy (default
10000), each sending one request (a 1 KiB `no-store` response from the origin example,
so the cache stays out of it) and then holding its connection open, idle; print
larder's RSS (VmRSS, and its anonymous part) idle, after 1,000 connections and after N,
and the bytes each connection beyond the first 1,000 added.

    python3 tools/rss_idle.py target/release/larder target/release/examples/origin [N]

Everything listens on 127.0.0.1 (ports 19121 and 19122); the cache lives in a
temporary directory that is removed at the end. Needs an open-file limit (hard) above
N + 100: the soft limit is raised to it, for larder too.
"""
import re, resource, shutil, socket, subprocess, sys, tempfile

larder, origin_bin = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
FIRST = min(1000, count)
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < count + 100:
    sys.exit(f"the open-file limit ({hard}) is too low for {count} connections")
# The children inherit it: larder sizes --max-conns from it.
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

cache = tempfile.mkdtemp(prefix="larder-rss-idle-")
origin = subprocess.Popen([origin_bin, "--listen", "127.0.0.1:19121", "--size", "1024"],
                          stdout=subprocess.PIPE)
origin.stdout.readline()
# --timeout-idle: the first connections must still be open when the last is made.
proxy = subprocess.Popen([larder, "--listen", "127.0.0.1:19122", "--cache-dir", cache,
                          "--timeout-idle", "600"], stderr=subprocess.PIPE)
while b"listening" not in proxy.stderr.readline():
    if proxy.poll() is not None:
        sys.exit("larder exited at start-up")

REQUEST = (b"GET http://127.0.0.1:19121/nc/size/1024 HTTP/1.1\r\n"
           b"Host: 127.0.0.1:19121\r\n\r\n")


def kib(status, key):
    return int(re.search(key + r":\s+(\d+)", status).group(1))


def rss():
    with open(f"/proc/{proxy.pid}/status") as f:
        status = f.read()
    return kib(status, "VmRSS"), kib(status, "RssAnon")


def show(what, sample):
    print(f"{what}: VmRSS {sample[0] / 1024:.1f} MiB (anon {sample[1] / 1024:.1f})")


def one_request():
    """A new connection, one request and its whole response; the socket stays open."""
    s = socket.create_connection(("127.0.0.1", 19122))
    s.sendall(REQUEST)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("larder closed a connection before answering")
        got += chunk
    head, body = got.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit(f"unexpected answer: {head[:80]!r}")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("larder closed a connection mid-body")
        body += chunk
    return s


held = []
try:
    idle = rss()
    show("idle", idle)
    for i in range(count):
        held.append(one_request())
        if i + 1 == FIRST:
            first = rss()
            show(f"holding {FIRST} idle connections", first)
    last = rss()
    show(f"holding {count} idle connections", last)
    if count > FIRST:
        per = (last[0] - first[0]) * 1024 / (count - FIRST)
        print(f"each connection beyond the first {FIRST}: {per:.0f} bytes of RSS")
finally:
    for s in held:
        s.close()
    proxy.terminate()
    origin.terminate()
    proxy.wait()
    origin.wait()
    shutil.rmtree(cache, ignore_errors=True)
