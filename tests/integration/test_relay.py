#!/usr/bin/env python3
"""test_relay.py - the upstream relay against a real origin, through nginx.

memcached + memfill + nginx (configured by `memfillctl nginx-conf`) in
front of origin.py. Each cacheability rule is one origin endpoint: stored
ones are checked in memcached with their TTL (meta protocol), refused ones
must leave no item. Also: 404 / 301 / 500 relayed and not stored, origin
down -> 502 with a clear page, origin too slow -> 504, request headers and
bodies relayed (only what the key describes on a GET that may be stored,
the client's headers on a POST, X-Forwarded-* always memfill's), hop-by-hop and CR/LF-bearing headers from
the origin dropped, X-Memfill-Tags kept from the client, Set-Cookie relayed
but never stored, and a stored page is really served from memcached (the
origin's hit counter does not move).
"""
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, SRCDIR, Memcached, Stack, check, ctl, finish,  # noqa: E402
                     free_port, http, need)

for b in ("nginx", "memcached", MEMFILL):
    need(b)

st = Stack("relay")
passed = 0


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1
    return cond


try:
    mc_port, app_port, web_port, origin_port, closed_port = (free_port() for _ in range(5))
    origin = f"http://127.0.0.1:{origin_port}"
    up = {"handler": "upstream", "origin": origin}
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 2,
        "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
        "cache": {"ttl": 300},
        "routes": [
            {"prefix": "/down/", "handler": "upstream", "origin": f"http://127.0.0.1:{closed_port}"},
            dict(up, prefix="/slow", timeout_ms=500),
            dict(up, prefix="/default", ttl=200),
            dict(up, prefix="/", methods=["GET", "HEAD", "POST", "PUT"]),
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg, indent=1))
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    check(t.returncode == 0, f"nginx-conf exit {t.returncode}: {t.stderr!r}")
    st.memcached(port=mc_port)
    op = st.origin(origin_port)
    st.memfill(conf, port=app_port)
    st.nginx(t.stdout.decode(), web_port)
    mc = Memcached(port=mc_port)

    def origin_hits(path):
        s, h, b = http(origin_port, f"/_hits?path={path}")
        return json.loads(b)["hits"]

    # ---- stored, with the TTL the rule gives ----
    miss_headers = {}
    for path, lo, hi in (("/plain", 115, 120), ("/smaxage", 25, 30), ("/age", 55, 60),
                         ("/accel", 37, 42), ("/accel-abs", 65, 75), ("/accel-private", 55, 60),
                         ("/expires", 85, 90), ("/default", 195, 200), ("/vary-ae", 115, 120),
                         ("/tags", 55, 60)):
        s, h, b = http(web_port, path)
        miss_headers[path] = h
        item = mc.wait(path.encode())
        ttl = mc.ttl(path.encode()) if item else None
        ok(s == 200 and item is not None and item[0] == b and ttl is not None and lo <= ttl <= hi,
           f"{path}: status {s}, stored {item is not None}, ttl {ttl} (want {lo}..{hi})")
    # the second request is a memcached hit: the origin sees no new request
    before = origin_hits("/plain")
    s, h, b = http(web_port, "/plain")
    ok(s == 200 and b == b"plain\n" and origin_hits("/plain") == before == 1,
       f"/plain hit: {s} {b!r} origin hits {before} -> {origin_hits('/plain')}")

    # ---- relayed, never stored ----
    for path in ("/private", "/nostore", "/nocache", "/maxage0", "/smaxage0", "/accel0",
                 "/expires-past", "/expires-bad", "/vary-cookie"):
        s, h, b = http(web_port, path)
        ok(s == 200 and b == path[1:].encode() + b"\n" and mc.wait(path.encode(), 0.3) is None,
           f"{path}: status {s} {b!r}, must not be stored")
    s, h, b = http(web_port, "/cookie")
    ok(s == 200 and h.get("set-cookie", "").startswith("sid=abc"), f"Set-Cookie relayed: {h}")
    ok(mc.wait(b"/cookie", 0.3) is None, "page with Set-Cookie stored")
    for code in (404, 301, 500):
        s, h, b = http(web_port, f"/status/{code}")
        ok(s == code and b == b"status %d\n" % code, f"status {code} relayed: {s} {b!r}")
        ok(mc.wait(b"/status/%d" % code, 0.3) is None, f"status {code} stored")
    s, h, b = http(web_port, "/status/301")
    ok(h.get("location", "").endswith("/plain"), f"301 Location relayed: {h}")
    s, h, b = http(web_port, "/gzip")
    ok(s == 200 and h.get("content-encoding") == "gzip" and gzip.decompress(b) == b"gzip\n",
       f"encoded body relayed as is: {s} {h}")
    ok(mc.wait(b"/gzip", 0.3) is None, "an encoded body was stored")

    # ---- origin failures ----
    s, h, b = http(web_port, "/down/x")
    ok(s == 502 and b"The origin server did not answer" in b, f"origin down: {s} {b!r}")
    ok(mc.wait(b"/down/x", 0.3) is None, "502 stored")
    s, h, b = http(web_port, "/slow?ms=2500")
    ok(s == 504 and b"did not answer in time" in b, f"origin slow: {s} {b!r}")
    ok(mc.wait(b"/slow?ms=2500", 0.3) is None, "504 stored")
    s, h, b = http(web_port, "/reset")
    ok(s == 502, f"origin reset: {s}")
    s, h, b = http(web_port, "/badheader")
    ok(s == 502, f"origin broken header: {s}")

    # ---- what the origin receives ----
    s, h, b = http(web_port, "/echo?a=1%202&b", headers={
        "X-Custom-Thing": "yes", "X-Forwarded-For": "10.1.1.1", "Cookie": "c=1",
        "Accept-Encoding": "gzip", "If-None-Match": '"abc"', "Accept-Language": "fr"})
    e = json.loads(b) if s == 200 else {}
    hd = {k.lower(): v for k, v in e.get("headers", [])}
    ok(e.get("method") == "GET" and e.get("target") == "/echo?a=1%202&b", f"echo target: {e}")
    # a GET that may be stored relays what the key describes, no client header
    # (doc/security.md): the origin sees memfill's own Host and X-Forwarded-*
    ok(not {"x-custom-thing", "cookie", "accept-language"} & set(hd),
       f"client headers relayed on a storable GET: {hd}")
    ok(hd.get("x-forwarded-for") == "127.0.0.1" and hd.get("x-forwarded-proto") == "http"
       and "x-forwarded-host" not in hd and hd.get("host") == f"127.0.0.1:{origin_port}",
       f"X-Forwarded-* (server_name _ names no host): {hd}")
    ok("accept-encoding" not in hd and "if-none-match" not in hd,
       f"Accept-Encoding / conditionals not relayed on GET: {hd}")
    ok(mc.wait(b"/echo?a=1%202&b", 0.3) is None, "no-store echo stored")
    body = b"name=memfill&x=" + b"y" * 3000
    s, h, b = http(web_port, "/echo", method="POST", body=body,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    e = json.loads(b) if s == 200 else {}
    hd = {k.lower(): v for k, v in e.get("headers", [])}
    ok(e.get("method") == "POST" and e.get("body") == body.decode() and e.get("body_len") == len(body)
       and hd.get("content-type") == "application/x-www-form-urlencoded", f"POST relayed: {s} {e}")
    # a POST is never stored: the client's end-to-end headers go through,
    # its forwarding headers do not
    s, h, b = http(web_port, "/echo", method="POST", body=b"x=1", headers={
        "X-Custom-Thing": "yes", "X-Forwarded-For": "10.1.1.1", "Cookie": "c=1",
        "Accept-Language": "fr", "Accept-Encoding": "gzip"})
    e = json.loads(b) if s == 200 else {}
    hd = {k.lower(): v for k, v in e.get("headers", [])}
    ok(hd.get("x-custom-thing") == "yes" and hd.get("cookie") == "c=1"
       and hd.get("accept-language") == "fr", f"request headers relayed on a POST: {hd}")
    ok(hd.get("x-forwarded-for") == "127.0.0.1" and "accept-encoding" not in hd,
       f"client's X-Forwarded-For / Accept-Encoding relayed on a POST: {hd}")
    s, h, b = http(web_port, "/echo?cc=max-age%3D60", method="POST", body=b"a=1")
    ok(s == 200 and mc.wait(b"/echo?cc=max-age%3D60", 0.3) is None, "POST response stored")

    # ---- what the client receives ----
    s, h, b = http(web_port, "/crlf")
    ok(s == 200 and h.get("x-before") == "ok" and h.get("x-after") == "ok" and "x-bad-cr" not in h,
       f"CR in an origin header dropped: {h}")
    s, h, b = http(web_port, "/hop")
    ok(s == 200 and h.get("x-kept") == "yes" and not
       ({"keep-alive", "upgrade", "trailer", "te", "proxy-foo", "proxy-authenticate"} & set(h)),
       f"hop-by-hop headers dropped: {s} {h}")
    h = miss_headers["/tags"]  # the miss, answered by memfill
    ok("x-memfill-tags" not in h and h.get("cache-control") == "max-age=60",
       f"X-Memfill-Tags relayed: {h}")
    s, h, b = http(web_port, "/interim")
    ok(s == 200 and h.get("x-final") == "yes" and b == b"interim\n", f"after a 103: {s} {h}")
    log = st.log("memfill")
    ok("Sanitizer" not in log and "runtime error:" not in log, "sanitizer report in memfill's log")
    mc.close()
finally:
    if FAILURES:
        print(st.log("memfill")[-3000:])
    st.close()
finish(passed)
