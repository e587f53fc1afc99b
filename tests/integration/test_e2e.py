#!/usr/bin/env python3
"""test_e2e.py - a miss becomes a memcached hit, through the real stack.

memcached + memfill (under spawn-fcgi, socket on fd 0) + nginx configured
by `memfillctl nginx-conf`. For each URI (spaces, %, UTF-8, dot segments,
query strings): the first request is rendered by memfill and the item
appears in memcached under nginx's escaped key (computed here by an
independent model of nginx); then memfill is stopped and every page still
comes back, served by nginx from memcached. Pages that must not be stored
(404, a non-GET method, a session cookie) leave no item.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, Memcached, Stack, check, ctl, default_key, finish, free_port,
                     http, memc_escape, need)

for b in ("nginx", "memcached", "spawn-fcgi", MEMFILL):
    need(b)

st = Stack("e2e")
passed = 0
try:
    mc_port, app_port, web_port = free_port(), free_port(), free_port()
    st.write("site/docroot/hello.html", "<p>hello from a file</p>\n")
    st.write("site/docroot/style.css", "body { color: red }\n")
    st.write("site/page.mustache", "<h1>{{path}}</h1><p>query={{query}}</p>\n")
    cfg = {
        "workers": 2,
        "log": {"level": "info", "access": True},
        "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
        "cache": {"key": "$uri$is_args$args", "ttl": 120, "skip_cookies": ["sessionid"]},
        "routes": [
            {"prefix": "/files/", "handler": "static", "root": "site/docroot_parent"},
            {"prefix": "/", "handler": "template", "template": "site/page.mustache",
             "methods": ["GET", "HEAD", "POST"]},
        ],
    }
    # static files live under /files/ (nginx root semantics: root + $uri)
    os.makedirs(st.path("site/docroot_parent/files"), exist_ok=True)
    for f in ("hello.html", "style.css"):
        os.rename(st.path("site/docroot", f), st.path("site/docroot_parent/files", f))
    conf = st.write("memfill.json", json.dumps(cfg, indent=1))

    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", "--fastcgi",
            f"127.0.0.1:{app_port}", config=conf)
    check(t.returncode == 0, f"nginx-conf exit {t.returncode}: {t.stderr!r}")
    st.memcached(port=mc_port)
    memfill = st.memfill_spawnfcgi(conf, app_port)
    st.nginx(t.stdout.decode(), web_port)
    mc = Memcached(port=mc_port)

    uris = [b"/", b"/plain", b"/a%20b", b"/caf%C3%A9", b"/caf%c3%a9/x", b"/p%25q",
            b"/a/./b/../c", b"//x//y/", b"/q?x=1&y=a%20b", b"/q?", b"/q?z=%25",
            b"/files/hello.html", b"/files/style.css", b"/deep/a+b/c;d",
            b"/utf8/\xe2\x82\xac", b"/tab%09x"]
    bodies = {}
    for u in uris:
        status, hdrs, body = http(web_port, u)
        if check(status == 200, f"{u!r}: first request status {status}"):
            passed += 1
        key = memc_escape(default_key(u))
        item = mc.wait(key)
        if check(item is not None and item[0] == body, f"{u!r}: item under {key!r} = {item!r}"):
            passed += 1
        bodies[u] = body
    # content types by extension survive on the miss
    s, h, b = http(web_port, "/files/style.css")
    check(h.get("content-type", "").startswith("text/css"), f"css content-type {h}")

    # pages that must not be stored
    s, h, b = http(web_port, "/files/missing.html")
    check(s == 404, f"missing file status {s}") and check(
        mc.get(memc_escape(b"/files/missing.html")) is None, "404 page was stored")
    s, h, b = http(web_port, "/posted", method="POST", body=b"a=1")
    check(s == 200, f"POST status {s}") and check(
        mc.get(b"/posted") is None, "POST response was stored")
    s, h, b = http(web_port, "/session", headers={"Cookie": "a=1; sessionid=abc"})
    check(s == 200, f"session status {s}") and check(
        mc.get(b"/session") is None, "page for a session cookie was stored")
    check(mc.ttl(memc_escape(b"/plain")) and 100 < mc.ttl(b"/plain") <= 120,
          f"ttl {mc.ttl(b'/plain')}")
    passed += 4

    # prove the second request never reaches memfill: stop it, ask again
    st.stop(memfill)
    for u in uris:
        status, hdrs, body = http(web_port, u)
        if check(status == 200 and body == bodies[u],
                 f"{u!r}: with memfill stopped got {status} {body[:60]!r}"):
            passed += 1
    mc.close()
finally:
    if FAILURES:
        print(st.log("memfill")[-3000:])
    st.close()
finish(passed)
