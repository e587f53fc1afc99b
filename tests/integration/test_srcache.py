#!/usr/bin/env python3
"""test_srcache.py - routes with "srcache": true, read by srcache_fetch
through real nginx (srcache + memc + set-misc) and memcached.

memfill stores the whole response (status line, headers, body) in the
format srcache_store writes (doc/nginx.md §13); nginx reads it with
`srcache_fetch GET /memc key=$escaped_key` and never stores anything
itself. Checked:
  - the stored bytes, exactly: Content-Type first, the origin's other
    headers in order, hop-by-hop ones, Date, Server and Content-Length
    left out;
  - a template page stored as srcache_store stored the same page in the
    captured vector (tests/vectors/srcache_store_format.tsv, row /echo/x),
    byte for byte, with the same TTL;
  - redirects (301, 302, 307, 308) are stored, 303, 404 and Set-Cookie
    pages are not;
  - memfillctl warm fills a srcache route too, without X-Memfill-Store in
    the item;
  - with memfill stopped, nginx serves every stored page from memcached
    with its status and headers (custom header, Cache-Control, Location).
Two memcached nodes: the upstream memc_pass uses hashes $memc_key, the
raw key as the /memc subrequest sees it (set_unescape_uri of $arg_key), so
nginx reads each page from the node memfill wrote it to (30 pages spread
over both nodes). Hashing $memcached_key there instead (set in the main
request) sent about half of the reads to the wrong node: the subrequest
does not see it, so the upstream must be a separate one.
"""
import json
import time
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, NGINX_MODULES, SRCDIR, Memcached, Stack, check,  # noqa: E402
                     ctl, finish, free_port, http, need)

for b in ("nginx", "memcached", MEMFILL):
    need(b)
for m in ("ndk_http_module.so", "ngx_http_set_misc_module.so", "ngx_http_memc_module.so",
          "ngx_http_srcache_filter_module.so"):
    need(os.path.join(NGINX_MODULES, m))

st = Stack("srcache")
passed = 0


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1
    return cond


def vector_row(target):
    with open(os.path.join(SRCDIR, "tests", "vectors", "srcache_store_format.tsv")) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(head, line.rstrip("\n").split("\t")))
            if row["request_target"] == target:
                return row
    raise RuntimeError(f"no vector row for {target}")


PARAMS = """
        fastcgi_param QUERY_STRING      $query_string;
        fastcgi_param REQUEST_METHOD    $request_method;
        fastcgi_param CONTENT_TYPE      $content_type;
        fastcgi_param CONTENT_LENGTH    $content_length;
        fastcgi_param REQUEST_URI       $request_uri;
        fastcgi_param DOCUMENT_URI      $document_uri;
        fastcgi_param SERVER_PROTOCOL   $server_protocol;
        fastcgi_param REQUEST_SCHEME    $scheme;
        fastcgi_param GATEWAY_INTERFACE CGI/1.1;
        fastcgi_param REMOTE_ADDR       $remote_addr;
        fastcgi_param SERVER_PORT       $server_port;
        fastcgi_param SERVER_NAME       $server_name;
        fastcgi_param HTTP_HOST         $http_host;
"""

try:
    mc_port, mc2_port, app_port, web_port, origin_port = (free_port() for _ in range(5))
    op = st.origin(origin_port)
    st.write("site/echo.mustache", "echo body for {{path}}\n")
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 2,
        "log": {"level": "info", "access": True},
        "memcached": {"servers": [f"127.0.0.1:{mc_port}", f"127.0.0.1:{mc2_port}"]},
        "cache": {"key": "$uri$is_args$args", "ttl": 300},
        "routes": [
            # the vector's app answered "Content-Type: text/html"
            {"prefix": "/echo/", "handler": "template", "template": "site/echo.mustache",
             "content_type": "text/html", "srcache": True},
            {"prefix": "/", "handler": "upstream", "origin": f"http://127.0.0.1:{origin_port}",
             "srcache": True},
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg, indent=1))
    # nginx-conf explains the srcache side in a comment, with the upstream
    # this test uses
    t = ctl("nginx-conf", config=conf)
    out = t.stdout.decode()
    ok(t.returncode == 0 and "#       hash $memc_key consistent;" in out and
       "#       memc_pass memfill_srcache;" in out and "#   location /echo/ {" in out and
       "#       srcache_fetch GET /memc key=$escaped_key;" in out,
       f"nginx-conf srcache note: {out[-1500:]}")
    nginx_conf = f"""
upstream memfill_memcached {{
    hash $memc_key consistent;
    server 127.0.0.1:{mc_port} max_fails=0;
    server 127.0.0.1:{mc2_port} max_fails=0;
    keepalive 8;
}}

server {{
    listen 127.0.0.1:{web_port};
    server_name _;

    location = /memc {{
        internal;
        set_unescape_uri $memc_key $arg_key;
        memc_pass memfill_memcached;
    }}

    location / {{
        set $memcached_key "$uri$is_args$args";
        set_escape_uri $escaped_key $memcached_key;
        srcache_fetch GET /memc key=$escaped_key;
        default_type text/html;
{PARAMS}
        fastcgi_param MEMC_KEY          $memcached_key;
        fastcgi_pass 127.0.0.1:{app_port};
    }}
}}
"""
    st.memcached(port=mc_port)
    st.memcached(port=mc2_port)
    memfill = st.memfill(conf, port=app_port)
    st.nginx(nginx_conf, web_port)

    class Both:
        """Reads go to whichever node holds the key (memfill picked it)."""

        def __init__(self):
            self.nodes = [Memcached(port=mc_port), Memcached(port=mc2_port)]

        def get(self, key):
            for n in self.nodes:
                item = n.get(key)
                if item is not None:
                    return item
            return None

        def wait(self, key, timeout=2.0):
            """get, retried on both nodes until the item appears (memfill
            stores after answering)."""
            end = time.monotonic() + timeout
            while True:
                item = self.get(key)
                if item is not None or time.monotonic() > end:
                    return item
                time.sleep(0.01)

        def ttl(self, key):
            for n in self.nodes:
                t = n.ttl(key)
                if t is not None:
                    return t
            return None

        def where(self, key):
            return [i for i, n in enumerate(self.nodes) if n.get(key) is not None]

        def close(self):
            for n in self.nodes:
                n.close()

    mc = Both()

    # ---- misses: memfill answers and stores whole responses ----
    want_items = {
        b"/plain": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   b"Cache-Control: max-age=120\r\n\r\nplain\n",
        b"/hop": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 b"X-Kept: yes\r\nCache-Control: max-age=60\r\n\r\nhop\n",
    }
    for code, text in ((301, b"Moved Permanently"), (302, b"Moved Temporarily"),
                       (307, b"Temporary Redirect"), (308, b"Permanent Redirect")):
        want_items[b"/status/%d" % code] = (
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Cache-Control: max-age=120\r\nLocation: /plain\r\n\r\nstatus %d\n" % (code, text, code))
    for target, item in want_items.items():
        s, h, b = http(web_port, target)
        status = int(item.split(b" ")[1])
        ok(s == status, f"{target!r}: miss answered {s}")
        got = mc.wait(target)
        ok(got is not None and got[0] == item and got[1] == 0,
           f"{target!r}: stored {got!r}\n  expected {item!r}")
    ttl = mc.ttl(b"/plain")
    ok(ttl is not None and 100 < ttl <= 120, f"/plain TTL {ttl} (max-age=120)")

    for target in (b"/status/303", b"/status/404", b"/cookie"):
        s, h, b = http(web_port, target)
        ok(s in (200, 303, 404), f"{target!r}: {s}")
    # stores happen after the answer: wait for the last one to be sure
    mc.wait(b"/nothing-here", timeout=0.3)
    for target in (b"/status/303", b"/status/404", b"/cookie"):
        ok(mc.get(target) is None, f"{target!r} was stored")

    # ---- the captured srcache_store vector, reproduced ----
    row = vector_row("/echo/x")
    s, h, b = http(web_port, "/echo/x")
    ok(s == 200 and b == b"echo body for /echo/x\n", f"/echo/x miss: {s} {b!r}")
    got = mc.wait(b"/echo/x")
    want = bytes.fromhex(row["value_hex"])
    ok(got is not None and got[0] == want, f"/echo/x stored {got!r}\n  srcache_store wrote {want!r}")
    ttl = mc.ttl(b"/echo/x")
    ok(ttl is not None and 290 < ttl <= 300, f"/echo/x TTL {ttl}, the vector's {row['meta_get_t_f_s']}")

    # ---- warm-up into a srcache route ----
    r = ctl("warm", "/echo/warmed", "/status/404", config=conf)
    ok(r.returncode == 0, f"warm exit {r.returncode}: {r.stderr!r}")
    line = r.stderr.decode().strip().splitlines()[-1] if r.stderr else ""
    ok(line == "warm: 2 requested, 1 stored, 1 skipped (status: 1), 0 failed",
       f"warm summary {line!r}")
    got = mc.get(b"/echo/warmed")
    ok(got is not None and got[0] == b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
                                     b"echo body for /echo/warmed\n", f"warmed item {got!r}")

    # ---- many pages over both nodes ----
    spread = [f"/echo/p{i}?v={i}" for i in range(30)]
    for u in spread:
        s, h, b = http(web_port, u)
        ok(s == 200, f"{u}: {s}")
    placed = [mc.where(u.encode()) if mc.wait(u.encode()) else [] for u in spread]
    ok(all(len(p) == 1 for p in placed), f"each page on exactly one node: {placed}")
    ok({p[0] for p in placed if p} == {0, 1}, f"pages did not spread over both nodes: {placed}")

    # ---- memfill stopped: srcache_fetch serves status, headers and body ----
    st.stop(memfill)
    for u in spread:
        s, h, b = http(web_port, u)
        ok(s == 200 and b == b"echo body for " + u.partition("?")[0].encode() + b"\n",
           f"{u} from memcached: {s} {b!r}")
    s, h, b = http(web_port, "/plain")
    ok(s == 200 and b == b"plain\n", f"/plain from memcached: {s} {b!r}")
    ok(h.get("content-type") == "text/plain; charset=utf-8", f"/plain content-type {h}")
    ok(h.get("cache-control") == "max-age=120", f"/plain cache-control {h}")
    ok(h.get("content-length") == "6", f"/plain content-length {h}")
    s, h, b = http(web_port, "/hop")
    ok(s == 200 and h.get("x-kept") == "yes" and b == b"hop\n", f"/hop from memcached: {s} {h}")
    ok("keep-alive" not in h and "upgrade" not in h, f"/hop hop-by-hop headers came back: {h}")
    for code in (301, 302, 307, 308):
        s, h, b = http(web_port, "/status/%d" % code)
        ok(s == code and h.get("location", "").endswith("/plain") and b == b"status %d\n" % code,
           f"/status/{code} from memcached: {s} {h} {b!r}")
    for target in ("/echo/x", "/echo/warmed"):
        s, h, b = http(web_port, target)
        ok(s == 200 and h.get("content-type") == "text/html" and
           b == b"echo body for " + target.encode() + b"\n", f"{target} from memcached: {s} {h} {b!r}")
        ok("x-memfill-store" not in h, f"{target}: X-Memfill-Store reached a client")
    s, h, b = http(web_port, "/status/404")
    ok(s == 502, f"/status/404 (never stored) with memfill stopped: {s}")
    mc.close()
finally:
    if FAILURES:
        print(st.log("memfill")[-3000:])
        print(st.log("nginx")[-2000:])
    st.close()
finish(passed)
