#!/usr/bin/env python3
"""test_gzip.py - cache.gzip_flag through the real stack.

With cache.gzip_flag set, memfill stores each page gzip-compressed under
that flag bit, and `memfillctl nginx-conf` emits `memcached_gzip_flag N;
gunzip on; gzip_vary on;`. Checked here with Debian's nginx and a real memcached:
  - the miss is answered identity (no Content-Encoding);
  - the item in memcached carries the flag and is a gzip member that
    decompresses to the page;
  - on a hit, an HTTP/1.1 client sending Accept-Encoding: gzip gets the
    stored gzip bytes with Content-Encoding: gzip, and one that does not
    gets identity (nginx's gunzip), both with Vary: Accept-Encoding;
    memfill is stopped first, so only memcached can have answered;
  - the item size limit applies to the compressed size: a compressible page
    larger than cache.max_item is stored, an incompressible one is not;
  - a flag that is not a single bit is refused by memfill -t.
"""
import gzip
import json
import os
import random
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, Memcached, Stack, check, ctl, finish, free_port,  # noqa: E402
                     http, need)

for b in ("nginx", "memcached", MEMFILL):
    need(b)

FLAG = 4
MAX_ITEM = 8192

st = Stack("gzip")
passed = 0


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1
    return cond


def http11(port, target, headers=None, timeout=10.0):
    """GET over HTTP/1.1 (Connection: close), chunked bodies decoded.
    Returns (status, headers dict lower-cased, body bytes)."""
    req = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        req += f"{k}: {v}\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall((req + "\r\n").encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.decode().strip().lower()] = v.decode("latin-1").strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            body += rest[:n]
            rest = rest[n + 2:]
        rest = body
    return int(lines[0].split()[1]), hdrs, rest


try:
    mc_port, app_port, web_port = free_port(), free_port(), free_port()
    st.write("site/page.mustache", "<html><body><h1>{{path}}</h1>"
             + "<p>memfill stores this page compressed.</p>" * 40 + "</body></html>\n")
    st.write("site/static/zeros.txt", "0" * (MAX_ITEM * 4))
    rnd = random.Random(5)
    st.write("site/static/noise.txt",
             "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(MAX_ITEM * 2)))
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 1,
        "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
        "cache": {"ttl": 300, "gzip_flag": FLAG, "max_item": MAX_ITEM},
        "routes": [
            {"prefix": "/static/", "handler": "static", "root": "site"},
            {"prefix": "/", "handler": "template", "template": "site/page.mustache"},
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg))
    bad = st.write("bad.json", json.dumps(dict(cfg, cache={"gzip_flag": 3})))
    t = subprocess.run([MEMFILL, "-t", "-c", bad], capture_output=True, text=True)
    ok(t.returncode == 78 and "cache.gzip_flag" in t.stderr and "single flag bit" in t.stderr,
       f"gzip_flag 3 refused: {t.returncode} {t.stderr!r}")

    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    nconf = t.stdout.decode()
    ok(t.returncode == 0 and f"memcached_gzip_flag {FLAG};" in nconf and "gunzip on;" in nconf,
       f"nginx-conf gzip lines: {nconf}")
    st.memcached(port=mc_port)
    memfill = st.memfill(conf, port=app_port)
    st.nginx(nconf, web_port)  # runs nginx -t first
    mc = Memcached(port=mc_port)

    pages = {}
    for target in ("/a", "/b/c?x=1"):
        # the miss: identity, even for a client that takes gzip
        s, h, b = http11(web_port, target, {"Accept-Encoding": "gzip"})
        ok(s == 200 and "content-encoding" not in h and b.startswith(b"<html>"),
           f"miss {target}: {s} {h} {b[:40]!r}")
        pages[target] = b
        item = mc.wait(target.encode())
        ok(item is not None and item[1] == FLAG, f"item flags for {target}: {item and item[1]}")
        ok(item is not None and item[0][:2] == b"\x1f\x8b" and gzip.decompress(item[0]) == b
           and len(item[0]) < len(b), f"item for {target} is gzip of the page")

    s, h, b = http11(web_port, "/static/zeros.txt")
    ok(s == 200 and len(b) == MAX_ITEM * 4, f"zeros served: {s} {len(b)}")
    item = mc.wait(b"/static/zeros.txt")
    ok(item is not None and gzip.decompress(item[0]) == b,
       "a compressible page above max_item was not stored compressed")
    s, h, b = http11(web_port, "/static/noise.txt")
    ok(s == 200 and len(b) == MAX_ITEM * 2, f"noise served: {s} {len(b)}")
    ok(mc.wait(b"/static/noise.txt", 0.3) is None, "an incompressible page above max_item stored")

    # hits only from here on
    st.stop(memfill)
    for target, page in pages.items():
        s, h, b = http11(web_port, target, {"Accept-Encoding": "gzip, deflate"})
        ok(s == 200 and h.get("content-encoding") == "gzip" and b[:2] == b"\x1f\x8b"
           and gzip.decompress(b) == page, f"hit {target} with gzip: {s} {h}")
        ok(h.get("vary") == "Accept-Encoding", f"hit {target} with gzip lacks Vary: {h}")
        s, h, b = http11(web_port, target)
        ok(s == 200 and "content-encoding" not in h and b == page,
           f"hit {target} without gzip: {s} {h} {b[:40]!r}")
        ok(h.get("vary") == "Accept-Encoding", f"hit {target} gunzipped lacks Vary: {h}")
        # HTTP/1.0 is below nginx's default gzip_http_version: identity too
        s, h, b = http(web_port, target, headers={"Accept-Encoding": "gzip"})
        ok(s == 200 and "content-encoding" not in h and b == page,
           f"hit {target} over HTTP/1.0: {s} {h}")
    s, h, b = http11(web_port, "/static/zeros.txt")
    ok(s == 200 and b == b"0" * (MAX_ITEM * 4), f"zeros hit gunzipped: {s} {len(b)}")
    log = st.log("memfill")
    ok("Sanitizer" not in log and "runtime error:" not in log, "sanitizer report in memfill's log")
    mc.close()
finally:
    if FAILURES:
        print(st.log("memfill")[-3000:])
        print(st.log("nginx")[-2000:])
    st.close()
finish(passed)
