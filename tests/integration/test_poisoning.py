#!/usr/bin/env python3
"""test_poisoning.py - nobody can make memfill store a page other visitors
would not get (doc/security.md).

Real nginx with exactly the config `memfillctl nginx-conf` prints,
memcached, memfill and origin.py, whose /app/* pages trust what a front
proxy normally asserts (Host, X-Forwarded-*, Forwarded, X-Original-URL,
X-HTTP-Method-Override, a sessionid cookie, Accept-Language) and which
records every request it receives (/_log). Each attack is sent through
nginx and then:
  (a) proven to have happened: the origin's log shows the request the
      attack produced (and what it carried), and a control request sent
      straight to the origin with the same hostile input shows the origin
      would have built a different page from it;
  (b) proven harmless: the item in memcached (read directly) is the normal
      page or absent, and a later normal visitor through nginx gets the
      normal page.
Two sites: A keys on "$uri$is_args$args" (the default) with
cache.skip_cookies ["sessionid"]; B keys on the host, a cookie and a
header too, so the relay must send exactly those values (and MEMC_KEY must
not drift from memfill's own key when headers come twice).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, Memcached, Stack, admin_status, check, ctl, finish,  # noqa: E402
                     free_port, need, raw_http)

for b in ("nginx", "memcached", "python3", MEMFILL):
    need(b)

TOKEN = "poisoning-test-token-0123456789"
SITE = "example.org"
passed = 0


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1
    return cond


def get(port, target, host=SITE, headers=()):
    """GET target with Host host and the (name, value) pairs in headers,
    repeated names sent as separate lines."""
    req = b"GET " + target.encode("latin-1") + b" HTTP/1.1\r\n"
    if host is not None:
        req += b"Host: " + host.encode("latin-1") + b"\r\n"
    for k, v in headers:
        req += f"{k}: {v}\r\n".encode("latin-1")
    req += b"Connection: close\r\n\r\n"
    return raw_http(port, req)


class Origin:
    """The origin's request log, and direct (control) requests to it."""

    def __init__(self, port):
        self.port = port

    def log(self, clear=False):
        s, h, b = get(self.port, "/_log?clear=1" if clear else "/_log", host="origin")
        return json.loads(b)

    def seen(self, target):
        """The headers (lower-cased dict of lists) of the requests the origin
        received for target since the last clear."""
        out = []
        for e in self.log():
            if e["target"] == target:
                d = {}
                for k, v in e["headers"]:
                    d.setdefault(k.lower(), []).append(v)
                out.append(d)
        return out

    def direct(self, target, host=SITE, headers=()):
        """A control request straight to the origin; the log is cleared
        after it, so seen() shows only what came through memfill."""
        body = get(self.port, target, host, headers)[2]
        self.log(clear=True)
        return body


def normal_page(body, resource, site=SITE, query=""):
    """The page a normal visitor gets: the resource asked for, links to the
    site itself, no greeting for a user, in English, method GET."""
    return (isinstance(body, bytes)
            and f"<p>resource: {resource}</p>".encode() in body
            and f"<p>query: {query}</p>".encode() in body
            and f'<a href="http://{site}{resource}/next">'.encode() in body
            and b"<p>Hello, visitor</p>" in body and b"<p>method: GET</p>" in body
            and b"evil" not in body and b"VICTIM" not in body and b"Bonjour" not in body)


def item(mc, key):
    got = mc.wait(key.encode("latin-1"), 1.0)
    return got[0] if got else None


def hits(origin, path):
    return int(json.loads(get(origin.port, f"/_hits?path={path}", host="origin")[2])["hits"])


def start_site(st, key, routes_extra=()):
    mc_port, app_port, web_port, admin_port, origin_port = (free_port() for _ in range(5))
    origin_url = f"http://127.0.0.1:{origin_port}"
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 2,
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
        "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
        "cache": {"key": key, "skip_cookies": ["sessionid"]},
        "routes": list(routes_extra) + [
            {"prefix": "/", "handler": "upstream", "origin": origin_url,
             "methods": ["GET", "HEAD", "POST"]},
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg, indent=1))
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", "--server-name", SITE,
            config=conf)
    check(t.returncode == 0, f"nginx-conf exit {t.returncode}: {t.stderr!r}")
    ok(b"fastcgi_param MEMFILL_HOST" in t.stdout, "nginx-conf passes nginx's $host")
    st.memcached(port=mc_port)
    st.origin(origin_port)
    st.memfill(conf, port=app_port)
    st.nginx(t.stdout.decode(), web_port)
    return web_port, admin_port, Memcached(port=mc_port), Origin(origin_port)


def counters(admin_port):
    return admin_status(admin_port, TOKEN)["counters"]


# ---------------------------------------------------------------------------
# Site A: the default key, "$uri$is_args$args"
# ---------------------------------------------------------------------------

def site_a():
    st = Stack("poisoning-a", deadline=150)
    try:
        web, admin, mc, origin = start_site(st, "$uri$is_args$args")
        origin.log(clear=True)

        # ---- Host poisoning: the key does not cover the host ----
        ctrl = origin.direct("/app/host", host="evil.example")
        ok(b'href="http://evil.example/app/host/next"' in ctrl,
           f"control: the origin builds links from Host: {ctrl[:300]!r}")
        s, h, b = get(web, "/app/host", host="evil.example")
        seen = origin.seen("/app/host")
        ok(s == 200 and len(seen) == 1, f"Host attack reached the origin: {s}, {len(seen)} requests")
        ok(seen and seen[0].get("host") == [f"127.0.0.1:{origin.port}"]
           and seen[0].get("x-forwarded-host") == [SITE],
           f"Host sent to the origin is memfill's, not the client's: {seen}")
        ok(normal_page(item(mc, "/app/host"), "/app/host"),
           f"memcached holds the normal page: {item(mc, '/app/host')!r}")
        before = hits(origin, "/app/host")
        s, h, b = get(web, "/app/host")
        ok(s == 200 and normal_page(b, "/app/host") and hits(origin, "/app/host") == before,
           f"normal visitor after a Host attack: {s} {b[:200]!r}")

        # ---- the key and the target must name the same resource ----
        # "/cat/zzz/..%2Fb": nginx's $uri (the key) is /app/cat/b
        ctrl = origin.direct("/app/cat/zzz/..%2Fb")
        ok(b"<p>resource: /app/cat/zzz/../b</p>" in ctrl,
           f"control: the origin decodes %2F itself: {ctrl[:200]!r}")
        s, h, b = get(web, "/app/cat/zzz/..%2Fb")
        ok(s == 200 and len(origin.seen("/app/cat/b")) == 1
           and not origin.seen("/app/cat/zzz/..%2Fb"),
           f"dot-segment attack reached the origin as /app/cat/b: {s} "
           f"{[e['target'] for e in origin.log()][-3:]}")
        ok(normal_page(item(mc, "/app/cat/b"), "/app/cat/b"),
           f"memcached /app/cat/b: {item(mc, '/app/cat/b')!r}")
        before = hits(origin, "/app/cat/b")
        s, h, b = get(web, "/app/cat/b")
        ok(s == 200 and normal_page(b, "/app/cat/b") and hits(origin, "/app/cat/b") == before,
           f"normal visitor of /app/cat/b: {s} {b[:200]!r}")
        for target in ("//app//cat/./c", "/app/cat/%63", "/app/x/%2E%2E/cat/c"):
            s, h, b = get(web, target)
            ok(s == 200 and normal_page(b, "/app/cat/c"), f"{target} relayed as /app/cat/c: {s}")
            item(mc, "/app/cat/c")  # stored before the next one asks
        ok(len(origin.seen("/app/cat/c")) == 1 and normal_page(item(mc, "/app/cat/c"), "/app/cat/c"),
           "/app/cat/c: one origin request, the normal page stored")

        # "/cat/x%3Fpage=2": its key "/app/cat/x?page=2" is also the key of
        # /app/cat/x with page=2, another resource: never stored
        skip_before = counters(admin)["skip_target"]
        ctrl = origin.direct("/app/cat/x%3Fpage=2")
        ok(b"<p>resource: /app/cat/x?page=2</p>" in ctrl, f"control: {ctrl[:200]!r}")
        s, h, b = get(web, "/app/cat/x%3Fpage=2")
        ok(s == 200 and len(origin.seen("/app/cat/x%3Fpage=2")) == 1
           and b"<p>resource: /app/cat/x?page=2</p>" in b,
           f"encoded-'?' attack reached the origin: {s} {b[:200]!r}")
        ok(item(mc, "/app/cat/x?page=2") is None, "the encoded-'?' page was stored")
        ok(counters(admin)["skip_target"] == skip_before + 1,
           f"skip_target counted: {skip_before} -> {counters(admin)['skip_target']}")
        s, h, b = get(web, "/app/cat/x?page=2")
        ok(s == 200 and normal_page(b, "/app/cat/x", query="page=2")
           and normal_page(item(mc, "/app/cat/x?page=2"), "/app/cat/x", query="page=2"),
           f"normal visitor of /app/cat/x?page=2: {s} {b[:200]!r}")

        # ---- split cookies: the session cookie in a second Cookie line ----
        s, h, b = get(web, "/app/account", headers=[("Cookie", "a=1"),
                                                   ("Cookie", "sessionid=VICTIM123")])
        seen = origin.seen("/app/account")
        ok(s == 200 and b"Hello, VICTIM123" in b and len(seen) == 1
           and "sessionid=VICTIM123" in "; ".join(seen[0].get("cookie", [])),
           f"split-cookie request reached the origin with its session: {s} {seen}")
        ok(item(mc, "/app/account") is None, "a personal page was stored")
        s, h, b = get(web, "/app/account")
        ok(s == 200 and normal_page(b, "/app/account")
           and normal_page(item(mc, "/app/account"), "/app/account"),
           f"anonymous visitor of /app/account: {s} {b[:200]!r}")
        # the same with the session first, and with one line holding both
        for i, cookies in enumerate(([("Cookie", "sessionid=VICTIM123"), ("Cookie", "a=1")],
                                     [("Cookie", "a=1, sessionid=VICTIM123")])):
            path = f"/app/account{i}"
            s, h, b = get(web, path, headers=cookies)
            ok(s == 200 and b"VICTIM123" in "; ".join(origin.seen(path)[0].get("cookie", [""])).encode()
               and item(mc, path) is None, f"{cookies}: {s}, stored {item(mc, path)!r}")

        # ---- a header the key does not cover: Accept-Language ----
        ctrl = origin.direct("/app/lang", headers=[("Accept-Language", "fr")])
        ok(b"Bonjour" in ctrl, f"control: the origin answers in French: {ctrl[:200]!r}")
        s, h, b = get(web, "/app/lang", headers=[("Accept-Language", "fr"), ("Accept", "text/x-evil"),
                                                ("User-Agent", "evil-agent"),
                                                ("X-Requested-With", "XMLHttpRequest")])
        seen = origin.seen("/app/lang")
        ok(s == 200 and len(seen) == 1
           and not {"accept-language", "accept", "user-agent", "x-requested-with"} & set(seen[0]),
           f"a storable GET relays no header the key does not cover: {s} {seen}")
        ok(normal_page(item(mc, "/app/lang"), "/app/lang"), f"memcached: {item(mc, '/app/lang')!r}")
        s, h, b = get(web, "/app/lang")
        ok(s == 200 and normal_page(b, "/app/lang"), f"normal visitor of /app/lang: {b[:200]!r}")

        # ---- forwarding and re-targeting headers, one at a time ----
        hostile = [
            ("Forwarded", "for=6.6.6.6;host=evil.example;proto=https", b"https://evil.example"),
            ("X-Forwarded-Host", "evil.example", b"//evil.example"),
            ("X-Forwarded-Proto", "https", b"https://"),
            ("X-Forwarded-Port", "8443", b":8443"),
            ("X-Forwarded-Prefix", "/evil", b"/evil/app"),
            ("X-Original-URL", "/app/admin", b"resource: /app/admin"),
            ("X-Rewrite-URL", "/app/admin", b"resource: /app/admin"),
            ("X-HTTP-Method-Override", "DELETE", b"method: DELETE"),
            ("X-Memfill-Token", TOKEN, None),
            ("X-Forwarded-For", "6.6.6.6", None),
            ("X-Real-IP", "6.6.6.6", None),
        ]
        for name, value, mark in hostile:
            path = "/app/fwd-" + name.lower()
            if mark is not None:
                ctrl = origin.direct(path, headers=[(name, value)])
                ok(mark in ctrl, f"control: the origin honours {name}: {ctrl[:300]!r}")
            s, h, b = get(web, path, headers=[(name, value)])
            seen = origin.seen(path)
            # absent, or memfill's own value for the ones it sends itself
            own = {"x-forwarded-host": [SITE], "x-forwarded-proto": ["http"],
                   "x-forwarded-for": ["127.0.0.1"]}.get(name.lower())
            ok(s == 200 and len(seen) == 1 and seen[0].get(name.lower()) == own,
               f"{name} relayed to the origin: {s} {seen}")
            ok(normal_page(item(mc, path), path), f"{name}: memcached holds {item(mc, path)!r}")
            s, h, b = get(web, path)
            ok(s == 200 and normal_page(b, path), f"{name}: normal visitor got {b[:200]!r}")
        # a POST (never stored) passes the client's headers, not these
        req = (b"POST /app/post HTTP/1.1\r\nHost: example.org\r\nContent-Length: 3\r\n"
               b"X-Original-URL: /app/admin\r\nX-Memfill-Token: " + TOKEN.encode() +
               b"\r\nX-Forwarded-Host: evil.example\r\nX-Custom: kept\r\nConnection: close\r\n\r\nx=1")
        s, h, b = raw_http(web, req)
        seen = origin.seen("/app/post")
        ok(s == 200 and len(seen) == 1 and seen[0].get("x-custom") == ["kept"]
           and not {"x-original-url", "x-memfill-token"} & set(seen[0])
           and seen[0].get("x-forwarded-host") == [SITE],
           f"POST: forwarding headers dropped, end-to-end ones kept: {s} {seen}")

        c = counters(admin)
        ok(c["key_drift"] == 0, f"key_drift after site A: {c['key_drift']}")
        log = st.log("memfill")
        ok("Sanitizer" not in log and "runtime error:" not in log, "sanitizer report in memfill's log")
        mc.close()
    finally:
        if FAILURES:
            print(st.log("memfill")[-3000:])
        st.close()


# ---------------------------------------------------------------------------
# Site B: a key with $host, a cookie and a header
# ---------------------------------------------------------------------------

def site_b():
    st = Stack("poisoning-b", deadline=120)
    try:
        key = "$host$uri$is_args$args|$cookie_lang|$http_x_variant"
        web, admin, mc, origin = start_site(st, key)
        origin.log(clear=True)

        def bkey(path, lang="", variant=""):
            return f"{SITE}{path}|{lang}|{variant}"

        # ---- Host with $host in the key: nginx's $host, never the raw header ----
        ctrl = origin.direct("/app/h", host="example.org:@evil.example")
        ok(b'href="http://example.org:@evil.example/app/h/next"' in ctrl, f"control: {ctrl[:300]!r}")
        s, h, b = get(web, "/app/h", host="example.org:@evil.example")
        seen = origin.seen("/app/h")
        ok(s == 200 and len(seen) == 1 and seen[0].get("host") == [SITE]
           and seen[0].get("x-forwarded-host") == [SITE],
           f"raw Host attack reached the origin with nginx's $host: {s} {seen}")
        ok(normal_page(item(mc, bkey("/app/h")), "/app/h"), f"memcached: {item(mc, bkey('/app/h'))!r}")
        before = hits(origin, "/app/h")
        s, h, b = get(web, "/app/h")
        ok(s == 200 and normal_page(b, "/app/h") and hits(origin, "/app/h") == before,
           f"normal visitor of /app/h: {b[:200]!r}")

        # an absolute target names the host; the Host line says otherwise
        req = (b"GET http://example.org/app/abs HTTP/1.1\r\nHost: evil.example\r\n"
               b"Connection: close\r\n\r\n")
        s, h, b = raw_http(web, req)
        seen = origin.seen("/app/abs")
        ok(s == 200 and len(seen) == 1 and seen[0].get("host") == [SITE],
           f"absolute-target attack reached the origin with the target's host: {s} {seen}")
        ok(normal_page(item(mc, bkey("/app/abs")), "/app/abs"),
           f"memcached: {item(mc, bkey('/app/abs'))!r}")
        s, h, b = get(web, "/app/abs")
        ok(s == 200 and normal_page(b, "/app/abs"), f"normal visitor of /app/abs: {b[:200]!r}")
        # a Host nginx normalises: same key, same page
        s, h, b = get(web, "/app/h", host="EXAMPLE.org.:8080")
        ok(s == 200 and normal_page(b, "/app/h") and hits(origin, "/app/h") == before,
           f"Host EXAMPLE.org.:8080 is a hit on the same page: {s}")

        # ---- a cookie and a header in the key: exactly those values go ----
        s, h, b = get(web, "/app/k", headers=[("Cookie", "theme=dark"), ("Cookie", "lang=fr; x=1"),
                                             ("X-Variant", "a"), ("X-Variant", "b"),
                                             ("Accept-Language", "fr")])
        seen = origin.seen("/app/k")
        ok(s == 200 and len(seen) == 1 and seen[0].get("cookie") == ["lang=fr"]
           and seen[0].get("x-variant") == ["a"] and "accept-language" not in seen[0],
           f"key-covered cookie and header relayed with the key's values only: {seen}")
        ok(normal_page(item(mc, bkey("/app/k", "fr", "a")), "/app/k"),
           f"stored under the key nginx read: {item(mc, bkey('/app/k', 'fr', 'a'))!r}")
        s, h, b = get(web, "/app/k", headers=[("Cookie", "lang=fr"), ("X-Variant", "a")])
        ok(s == 200 and normal_page(b, "/app/k") and len(origin.seen("/app/k")) == 1,
           f"the same key from one Cookie line is a hit: {s}")
        # a session cookie in a second line: nothing stored, the origin saw it
        s, h, b = get(web, "/app/s", headers=[("Cookie", "lang=de"), ("Cookie", "sessionid=VICTIM9")])
        ok(s == 200 and b"Hello, VICTIM9" in b and item(mc, bkey("/app/s", "de")) is None,
           f"split session cookie with a cookie key: {s}")

        c = counters(admin)
        ok(c["key_drift"] == 0 and c["skip_target"] == 0,
           f"no MEMC_KEY drift with repeated headers, nothing refused as ambiguous: {c}")
        log = st.log("memfill")
        ok("Sanitizer" not in log and "runtime error:" not in log, "sanitizer report in memfill's log")
        mc.close()
    finally:
        if FAILURES:
            print(st.log("memfill")[-3000:])
        st.close()


site_a()
site_b()
finish(passed)
