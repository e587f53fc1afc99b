#!/usr/bin/env python3
"""test_warm.py - memfillctl warm through the real stack.

memcached + memfill (binding its config's "listen") + nginx configured by
`memfillctl nginx-conf`. Pages are warmed from a URL list (comments, a
query, an encoded path, a full URL, a 404 and a route with caching off)
and from a sitemap.xml, before any visitor came. Then:
  - the summary line counts what memfill said for each URL: stored,
    skipped by reason (handler for the missing file, rule for "cache":
    false),
    failed; the exit code is 0 without failures;
  - each stored item is in memcached under nginx's key (an independent
    model of nginx computes it);
  - memfill is stopped and nginx still serves every warmed page, from
    memcached only;
  - a visitor's miss never carries the X-Memfill-Store header (nginx never
    sends MEMFILL_WARM);
  - warming with memfill down, or a URL nginx would refuse, counts failures
    and exits 1;
  - --progress draws a bar on the stream; 40 URLs at --concurrency 8.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, Memcached, Stack, check, ctl, default_key,  # noqa: E402
                     finish, free_port, http, memc_escape, need)

for b in ("nginx", "memcached", MEMFILL):
    need(b)

st = Stack("warm")
passed = 0


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1
    return cond


def summary(stderr):
    lines = [ln.rpartition("\x1b[K")[2] for ln in stderr.decode("utf-8", "replace").split("\n")]
    lines = [ln for ln in lines if ln.startswith("warm: ") and " requested, " in ln]
    return lines[-1] if lines else ""


def expected(path):
    """What the template renders for a $uri (bytes)."""
    return b"<h1>" + path + b"</h1>\n"


try:
    mc_port, app_port, web_port = free_port(), free_port(), free_port()
    st.write("site/page.mustache", "<h1>{{path}}</h1>\n")
    os.makedirs(st.path("site/root/files"), exist_ok=True)
    st.write("site/root/files/a.txt", "a file\n")
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 3,
        "log": {"level": "info", "access": True},
        "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
        "cache": {"key": "$uri$is_args$args", "ttl": 300},
        "routes": [
            {"prefix": "/files/", "handler": "static", "root": "site/root"},
            {"prefix": "/private/", "handler": "template", "template": "site/page.mustache",
             "cache": False},
            {"prefix": "/", "handler": "template", "template": "site/page.mustache"},
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg, indent=1))
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    ok(t.returncode == 0, f"nginx-conf exit {t.returncode}: {t.stderr!r}")
    st.memcached(port=mc_port)
    memfill = st.memfill(conf, port=app_port)
    st.nginx(t.stdout.decode(), web_port)
    mc = Memcached(port=mc_port)

    # ---- a URL list ----
    listed = [b"/", b"/news/today", b"/q?x=1&y=a%20b", b"/caf%C3%A9/menu",
              b"/files/a.txt"]
    list_text = ("# pages to warm after a deploy\n\n" +
                 "\n".join(u.decode() for u in listed) +
                 "\n   http://localhost/full/url?z=9   \n"
                 "/files/missing.txt\n"      # 404: skipped (the handler said no)
                 "/private/page\n")          # cache: false: skipped (rule)
    listed.append(b"/full/url?z=9")
    lst = st.write("urls.txt", list_text)
    r = ctl("warm", "--from", lst, "--concurrency", "4", config=conf)
    line = summary(r.stderr)
    ok(r.returncode == 0, f"warm --from exit {r.returncode}: {r.stderr!r}")
    ok(line == "warm: 8 requested, 6 stored, 2 skipped (rule: 1, handler: 1), 0 failed",
       f"summary line {line!r}")
    ok(len(r.stderr.decode().strip().splitlines()) == 1,
       f"not a TTY: one line expected, got {r.stderr!r}")
    for u in listed:
        key = memc_escape(default_key(u))
        item = mc.get(key)
        if u.startswith(b"/files/"):
            ok(item is not None and item[0] == b"a file\n", f"{u!r}: item {item!r}")
        else:
            path = default_key(u).partition(b"?")[0]
            ok(item is not None and item[0] == expected(path), f"{u!r}: item {item!r}")
    ok(mc.get(b"/files/missing.txt") is None, "the 404 was stored")
    ok(mc.get(b"/private/page") is None, "a cache:false page was stored")

    # ---- a sitemap ----
    sitemap = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>http://localhost/map/one</loc><lastmod>2026-11-01</lastmod></url>
  <url>
    <loc>
      http://localhost/map/two?a=1&amp;b=2
    </loc>
  </url>
  <!-- <url><loc>http://localhost/map/commented-out</loc></url> -->
  <url><loc><![CDATA[http://localhost/map/three]]></loc></url>
</urlset>
"""
    sm = st.write("sitemap.xml", sitemap)
    r = ctl("warm", "--sitemap", sm, "-v", config=conf)
    line = summary(r.stderr)
    ok(r.returncode == 0, f"warm --sitemap exit {r.returncode}: {r.stderr!r}")
    ok(line == "warm: 3 requested, 3 stored, 0 skipped, 0 failed", f"sitemap summary {line!r}")
    ok(r.stderr.decode().count("warm: stored ") == 3, f"-v lines: {r.stderr!r}")
    mapped = [b"/map/one", b"/map/two?a=1&b=2", b"/map/three"]
    for u in mapped:
        item = mc.get(memc_escape(default_key(u)))
        ok(item is not None and item[0] == expected(u.partition(b"?")[0]),
           f"sitemap {u!r}: item {item!r}")
    ok(mc.get(b"/map/commented-out") is None, "a commented-out <loc> was warmed")

    # ---- many at once, with the progress bar forced on ----
    many = [f"/many/{i}?n={i}" for i in range(40)]
    t0 = time.monotonic()
    r = ctl("warm", "--concurrency", "8", "--progress", *many, config=conf)
    took = time.monotonic() - t0
    err = r.stderr.decode()
    ok(r.returncode == 0, f"warm 40 exit {r.returncode}: {err[-300:]!r}")
    ok(summary(r.stderr) == "warm: 40 requested, 40 stored, 0 skipped, 0 failed",
       f"40 summary {summary(r.stderr)!r}")
    ok("\r\x1b[Kwarm: [" in err and "40/40" in err, f"progress bar: {err[-300:]!r}")
    missing = [u for u in many if mc.get(memc_escape(default_key(u.encode()))) is None]
    ok(not missing, f"not stored: {missing[:5]}")
    print(f"warm: 40 pages at concurrency 8 in {took:.2f} s")

    # ---- a visitor's miss never shows X-Memfill-Store ----
    s, h, b = http(web_port, "/visitor/page")
    ok(s == 200 and "x-memfill-store" not in h, f"visitor miss: {s} {h}")
    ok(mc.wait(b"/visitor/page") is not None, "the visitor's page was not stored")

    # ---- bad URLs fail, the rest still goes ----
    r = ctl("warm", "/ok/after", "/../escape", "ftp://x/y", config=conf)
    line = summary(r.stderr)
    ok(r.returncode == 1, f"bad URLs: exit {r.returncode}")
    ok(line == "warm: 3 requested, 1 stored, 0 skipped, 2 failed", f"bad URLs summary {line!r}")
    ok("failed /../escape" in r.stderr.decode(), f"failure line: {r.stderr!r}")

    # ---- memfill stopped: nginx serves every warmed page from memcached ----
    st.stop(memfill)
    for u in listed + mapped:
        s, h, b = http(web_port, u)
        if u.startswith(b"/files/"):
            ok(s == 200 and b == b"a file\n", f"{u!r} with memfill stopped: {s} {b!r}")
        else:
            ok(s == 200 and b == expected(default_key(u).partition(b"?")[0]),
               f"{u!r} with memfill stopped: {s} {b[:80]!r}")
    s, h, b = http(web_port, "/files/missing.txt")
    ok(s in (502, 504), f"an unwarmed 404 page answered {s} with memfill stopped")

    # ---- warming with memfill down: every URL fails, exit 1 ----
    r = ctl("warm", "/a", "/b", "--timeout", "5", config=conf)
    ok(r.returncode == 1, f"memfill down: exit {r.returncode}")
    ok(summary(r.stderr) == "warm: 2 requested, 0 stored, 0 skipped, 2 failed",
       f"memfill down summary {summary(r.stderr)!r}")
    ok("refused" in r.stderr.decode(), f"memfill down: {r.stderr!r}")

    # ---- usage errors ----
    r = ctl("warm", config=conf)
    ok(r.returncode == 64, f"no URLs: exit {r.returncode}")
    r = ctl("warm", "--from", st.path("nope.txt"), config=conf)
    ok(r.returncode == 66, f"unreadable list: exit {r.returncode}")
    mc.close()
finally:
    if FAILURES:
        print(st.log("memfill")[-3000:])
    st.close()
finish(passed)
