#!/usr/bin/env python3
"""Warm-cache RSS of larder: fill a 1 GiB cache through the proxy with N objects of
256 KiB (default 3800, about 950 MiB), fetch every one again as a hit, and print
larder's RSS (VmRSS, and its anonymous and file-backed parts) after each step.

    python3 tools/rss_warm.py target/release/larder target/release/examples/origin [N]

Everything listens on 127.0.0.1 (ports 19111 and 19112); the cache lives in a
temporary directory that is removed at the end.
"""
import http.client, re, shutil, subprocess, sys, tempfile, time

larder, origin_bin = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 3800
cache = tempfile.mkdtemp(prefix="larder-rss-")
origin = subprocess.Popen([origin_bin, "--listen", "127.0.0.1:19111", "--size", "262144"],
                          stdout=subprocess.PIPE)
origin.stdout.readline()
proxy = subprocess.Popen([larder, "--listen", "127.0.0.1:19112", "--cache-dir", cache,
                          "--cache-size", "1G", "--admit-after", "0"], stderr=subprocess.PIPE)
while b"listening" not in proxy.stderr.readline():
    pass


def rss():
    status = open(f"/proc/{proxy.pid}/status").read()
    kib = lambda key: int(re.search(key + r":\s+(\d+)", status).group(1)) / 1024
    return f"VmRSS {kib('VmRSS'):.1f} MiB (anon {kib('RssAnon'):.1f}, file {kib('RssFile'):.1f})"


try:
    print("idle:", rss())
    for step in ("fill", "hit"):
        conn = http.client.HTTPConnection("127.0.0.1", 19112)
        start, got = time.time(), 0
        for i in range(count):
            conn.request("GET", f"http://127.0.0.1:19111/o/{i}")
            resp = conn.getresponse()
            got += len(resp.read())
            if step == "hit" and "hit" not in (resp.getheader("Cache-Status") or ""):
                sys.exit(f"not a hit: object {i}, {resp.getheader('Cache-Status')}")
        print(f"{step}: {count} objects, {got / 2**20:.0f} MiB in {time.time() - start:.1f} s;", rss())
finally:
    proxy.terminate()
    origin.terminate()
    proxy.wait()
    origin.wait()
    shutil.rmtree(cache, ignore_errors=True)
