#!/usr/bin/env python3
"""The hit ratio a proxy (one larder, or HAProxy in front of several) reaches on a
Zipf-distributed trace: a few objects asked for often, most of them rarely, as on a
real network. The trace is the same for a given seed, so two set-ups compare on exactly
the same requests.

    tools/cluster/zipf_hits.py --proxy 127.0.0.1:3128 --origin 127.0.0.1:8080

Each request is `GET http://ORIGIN/obj/RANK` (the `origin` example answers every path,
cacheably, with its --size bytes), sent in absolute form over one kept-alive
connection; a response whose Cache-Status says `hit` counts as a hit. The first
--warm requests of the trace fill the cache and are not counted. Prints one line:
requests, hits, the hit ratio, and the bytes served from the cache over all bytes.
"""

import argparse
import bisect
import http.client
import random
import sys


def zipf_trace(objects, requests, alpha, seed):
    """`requests` ranks from 1..objects, rank k with probability ~ 1/k^alpha."""
    weights = [1.0 / (k**alpha) for k in range(1, objects + 1)]
    cumulative = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    rng = random.Random(seed)
    # Ranks are shuffled onto object names, so popularity does not follow name order.
    names = list(range(objects))
    rng.shuffle(names)
    for _ in range(requests):
        k = bisect.bisect_left(cumulative, rng.random() * total)
        yield names[min(k, objects - 1)]


def host_port(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not HOST:PORT")
    return host, int(port)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--proxy", type=host_port, required=True, help="HOST:PORT of the proxy")
    p.add_argument("--origin", required=True, help="HOST:PORT of the origin, as in the URLs")
    p.add_argument("--objects", type=int, default=6000, help="distinct objects (6000)")
    p.add_argument("--requests", type=int, default=30000, help="requests counted (30000)")
    p.add_argument("--warm", type=int, default=10000, help="requests first, not counted (10000)")
    p.add_argument("--alpha", type=float, default=0.8, help="Zipf exponent (0.8)")
    p.add_argument("--seed", type=int, default=1, help="trace seed (1)")
    args = p.parse_args()
    if min(args.objects, args.requests) < 1 or args.warm < 0 or args.alpha <= 0:
        p.error("--objects and --requests must be at least 1, --warm at least 0, --alpha above 0")

    conn = http.client.HTTPConnection(*args.proxy, timeout=30)
    hits = counted = bytes_all = bytes_hit = 0
    trace = zipf_trace(args.objects, args.warm + args.requests, args.alpha, args.seed)
    for i, name in enumerate(trace):
        conn.request("GET", f"http://{args.origin}/obj/{name}")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            sys.exit(f"zipf_hits: /obj/{name}: status {resp.status}")
        if i < args.warm:
            continue
        counted += 1
        bytes_all += len(body)
        status = resp.getheader("Cache-Status", "")
        if any(part.strip() == "hit" for part in status.split(";")):
            hits += 1
            bytes_hit += len(body)
    print(
        f"requests {counted}, hits {hits}, hit ratio {hits / counted:.4f}, "
        f"byte hit ratio {bytes_hit / max(bytes_all, 1):.4f}"
    )


if __name__ == "__main__":
    main()
