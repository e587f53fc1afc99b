#!/usr/bin/env python3
"""test_content.py - memfill's content layer through the real stack.

memcached + memfill + nginx (configured by `memfillctl nginx-conf`) +
origin.py, with one site holding every kind of content route:

  - templates: captures choose the data file; a missing file is 404 and a
    broken one 500 with file:line:col in the log, neither stored; data_url
    fetched from origin.py (captures percent-encoded; origin 404 -> 404,
    origin down or too slow -> 502, broken JSON -> 500 with URL:line:col
    logged; none stored);
  - static: content types from the mime map; a file above cache.max_item is
    served but not stored; no way out of the root through nginx (.., %2e,
    %2f, %00) nor straight at memfill's FastCGI socket with hostile
    DOCUMENT_URI / REQUEST_URI values, nor through a symlink leading out;
  - the example plugin (hello_plugin.so) through nginx;
  - route options: methods (405), cache:false, content_type, per-route
    ttl, cache.skip_uri, cache.skip_cookies, Authorization;
  - memfillctl render (partials folder, missing data, syntax errors) and
    the example site in conf/.
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fcgi_client import FastCGIClient, nginx_params  # noqa: E402
from harness import (BUILDDIR, FAILURES, MEMFILL, SRCDIR, Memcached, Stack, check, ctl,  # noqa: E402
                     finish, free_port, http, need)

PLUGIN = os.path.join(BUILDDIR, "tests", "plugins", "hello_plugin.so")
for b in ("nginx", "memcached", MEMFILL, PLUGIN):
    need(b)

SECRET = "TOP-SECRET-CONTENT"
MAX_ITEM = 4096

st = Stack("content")
passed = 0


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1
    return cond


def stored(mc, key, timeout=1.0):
    return mc.wait(key if isinstance(key, bytes) else key.encode(), timeout)


def not_stored(mc, key):
    # memfill stores after answering: give a store the time to land
    return stored(mc, key, timeout=0.3) is None


try:
    mc_port, app_port, web_port, origin_port, closed_port = (free_port() for _ in range(5))

    # ---- the site ----
    st.write("secret.txt", SECRET + "\n")
    st.write("site/static/style.css", "body { color: #333 }\n")
    st.write("site/static/app.js", "console.log(1);\n")
    st.write("site/static/data.json", '{"a": 1}\n')
    st.write("site/static/logo.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>\n")
    st.write("site/static/blob.qqq", "unknown type\n")
    st.write("site/static/ok.txt", "inside the root\n")
    st.write("site/static/big.txt", "b" * (MAX_ITEM * 3))
    st.write("site/static/sub/index.html", "<p>index</p>\n")
    os.symlink(st.path("secret.txt"), st.path("site/static/leak.txt"))
    os.symlink(st.dir, st.path("site/static/updir"))
    os.symlink(st.path("site/static/ok.txt"), st.path("site/static/alias.txt"))
    st.write("site/templates/header.mustache", "<header>{{title}}</header>\n")
    st.write("site/templates/trek.mustache",
             "{{> header}}<h1>{{name}}</h1><ul>{{#stages}}<li>{{.}}</li>{{/stages}}</ul>\n")
    st.write("site/templates/page.mustache", "<p>path={{path}} query={{query}}</p>\n")
    st.write("site/templates/api.mustache", "<p>target={{target}} method={{method}}</p>\n")
    st.write("site/data/treks/tmb.json",
             json.dumps({"title": "Treks", "name": "Tour du Mont Blanc",
                         "stages": ["Les Houches", "Courmayeur"]}))
    st.write("site/data/treks/broken.json", '{"name": "x",\n  "stages": [1, 2,]\n}\n')

    origin = f"http://127.0.0.1:{origin_port}"
    page = {"handler": "template", "template": "site/templates/page.mustache"}
    api = {"handler": "template", "template": "site/templates/api.mustache"}
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 2,
        "log": {"level": "info"},
        "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
        "cache": {"ttl": 300, "max_item": MAX_ITEM, "skip_uri": ["^/skipme/", "\\.private$"],
                  "skip_cookies": ["sessionid"]},
        "routes": [
            {"prefix": "/static/", "handler": "static", "root": "site"},
            {"regex": "^/treks/(?<slug>[^/]+)$", "handler": "template",
             "template": "site/templates/trek.mustache", "data": "site/data/treks/{slug}.json"},
            dict(api, regex="^/api/(?<slug>.+)$",
                 data_url=origin + "/echo?slug={slug}&cc=max-age%3D60"),
            dict(api, regex="^/api404/(?<slug>.+)$", data_url=origin + "/missing/{slug}"),
            dict(api, regex="^/apibad/(?<slug>.+)$", data_url=origin + "/plain?{slug}"),
            dict(api, prefix="/apidown/", data_url=f"http://127.0.0.1:{closed_port}/x"),
            dict(api, prefix="/apislow/", data_url=origin + "/slow?ms=3000", timeout_ms=400),
            {"regex": "^/hello/(?<name>[^/]+)$", "handler": "plugin", "plugin": PLUGIN,
             "config": {"greeting": "Hi"}},
            dict(page, prefix="/postok/", methods=["GET", "HEAD", "POST"]),
            dict(page, prefix="/nocache/", cache=False),
            dict(page, prefix="/json/", content_type="application/json"),
            dict(page, prefix="/ttl/", ttl=77),
            dict(page, prefix="/"),
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg, indent=1))
    t = subprocess.run([MEMFILL, "-t", "-c", conf], capture_output=True, text=True)
    ok(t.returncode == 0, f"memfill -t: {t.returncode} {t.stdout} {t.stderr}")
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    ok(t.returncode == 0, f"nginx-conf exit {t.returncode}: {t.stderr!r}")

    st.memcached(port=mc_port)
    op = st.origin(origin_port)
    st.memfill(conf, port=app_port)
    st.nginx(t.stdout.decode(), web_port)
    mc = Memcached(port=mc_port)
    fcgi = FastCGIClient(("127.0.0.1", app_port))

    # ---- templates over data files ----
    s, h, b = http(web_port, "/treks/tmb")
    ok(s == 200 and b"<header>Treks</header>\n<h1>Tour du Mont Blanc</h1>" in b
       and b"<li>Courmayeur</li>" in b, f"trek page: {s} {b!r}")
    ok(h.get("content-type", "").startswith("text/html"), f"trek content-type {h}")
    item = stored(mc, "/treks/tmb")
    ok(item is not None and item[0] == b, f"trek page stored: {item!r}")
    s, h, b = http(web_port, "/treks/nope")
    ok(s == 404, f"missing data file status {s}")
    ok(not_stored(mc, "/treks/nope"), "404 for a missing data file was stored")
    s, h, b = http(web_port, "/treks/broken")
    ok(s == 500 and SECRET.encode() not in b, f"broken data file status {s}")
    ok(not_stored(mc, "/treks/broken"), "500 for a broken data file was stored")
    ok(re.search(r"data \S*site/data/treks/broken\.json:2:\d+: ", st.log("memfill")),
       "no log line naming broken.json:2:COL")
    # a capture that could climb out of the data folder names no file
    r = fcgi.request(nginx_params("GET", "/treks/..", document_uri="/treks/.."))
    ok(r.status == 404, f"capture '..' status {r.status}")
    # workers keep parsed data files while unchanged; an edited file is
    # read again at once (straight to memfill: nginx would serve the hit)
    for _ in range(4):
        fcgi.request(nginx_params("GET", "/treks/tmb"))
    st.write("site/data/treks/tmb.json",
             json.dumps({"title": "Treks", "name": "Tour du Mont Blanc, edited",
                         "stages": ["Les Houches"]}))
    bodies = [fcgi.request(nginx_params("GET", "/treks/tmb")).body for _ in range(4)]
    ok(all(b"edited" in b and b"Courmayeur" not in b for b in bodies),
       f"a worker served stale data after the file changed: {bodies!r}")

    # ---- templates over data_url ----
    s, h, b = http(web_port, "/api/a%20b&c%2Fd")
    # $uri is decoded: the capture is "a b&c/d", percent-encoded in the URL
    ok(s == 200 and b"target=/echo?slug=a%20b%26c%2Fd&amp;cc=max-age%3D60 method=GET" in b,
       f"data_url page: {s} {b!r}")
    ok(stored(mc, b"/api/a%20b&c/d") is not None, "data_url page not stored")
    s, h, b = http(web_port, "/api404/x")
    ok(s == 404, f"data_url origin 404 -> {s}")
    ok(not_stored(mc, "/api404/x"), "data_url 404 stored")
    s, h, b = http(web_port, "/apidown/x")
    ok(s == 502, f"data_url origin down -> {s}")
    ok(not_stored(mc, "/apidown/x"), "data_url 502 stored")
    s, h, b = http(web_port, "/apislow/x")
    ok(s == 502, f"data_url origin slow -> {s}")
    ok(not_stored(mc, "/apislow/x"), "data_url timeout stored")
    s, h, b = http(web_port, "/apibad/q=1")
    ok(s == 500, f"data_url broken JSON -> {s}")
    ok(not_stored(mc, "/apibad/q=1"), "data_url broken JSON stored")
    ok(re.search(r"data_url http://127\.0\.0\.1:\d+/plain\?q%3D1:1:\d+: ", st.log("memfill")),
       "no log line naming the data URL and position")

    # ---- static ----
    for path, ctype in (("style.css", "text/css"), ("app.js", "application/javascript"),
                        ("data.json", "application/json"), ("logo.svg", "image/svg+xml"),
                        ("blob.qqq", "application/octet-stream"), ("sub/", "text/html")):
        s, h, b = http(web_port, "/static/" + path)
        ok(s == 200 and h.get("content-type", "").startswith(ctype),
           f"static {path}: {s} {h.get('content-type')}")
    ok(stored(mc, "/static/style.css") is not None, "static css not stored")
    s, h, b = http(web_port, "/static/big.txt")
    ok(s == 200 and len(b) == MAX_ITEM * 3, f"big file served: {s} {len(b)}")
    ok(not_stored(mc, "/static/big.txt"), "file above cache.max_item was stored")
    s, h, b = http(web_port, "/static/alias.txt")
    ok(s == 200 and b == b"inside the root\n", f"symlink inside the root: {s} {b!r}")

    # through nginx: whatever nginx makes of these, the secret never leaks
    for target in (b"/static/../secret.txt", b"/static/../../secret.txt",
                   b"/static/%2e%2e/secret.txt", b"/static/%2e%2e/%2e%2e/secret.txt",
                   b"/static/..%2fsecret.txt", b"/static/..%2f..%2fsecret.txt",
                   b"/static/%2E%2E%2F%2E%2E%2Fsecret.txt", b"/static/..%5csecret.txt",
                   b"/static/leak.txt", b"/static/updir/secret.txt",
                   b"/static/ok.txt%00/../../secret.txt"):
        s, h, b = http(web_port, target)
        ok(SECRET.encode() not in b and s in (200, 400, 404),
           f"nginx {target!r}: {s} {b[:80]!r}")
    s, h, b = http(web_port, b"/static/ok.txt%00.html")
    ok(s == 400, f"%00 through nginx: {s}")
    s, h, b = http(web_port, "/static/leak.txt")
    ok(s == 404, f"symlink leading out: {s}")

    # straight at memfill's FastCGI socket, with params nginx never sends
    hostile = [
        ("/static/../secret.txt", "/static/../secret.txt"),
        ("/static/../../secret.txt", "/static/../../secret.txt"),
        ("/static/./../secret.txt", "/static/./../secret.txt"),
        ("/static/%2e%2e/secret.txt", "/static/%2e%2e/secret.txt"),
        ("/static/..\\secret.txt", "/static/..\\secret.txt"),
        ("/static/leak.txt", "/static/leak.txt"),
        ("/static/updir/secret.txt", "/static/updir/secret.txt"),
        (b"/static/ok.txt\x00/../../secret.txt", b"/static/ok.txt"),
        (b"/static/../secret.txt\x00.html", b"/x"),
    ]
    for doc, uri in hostile:
        r = fcgi.request(nginx_params("GET", uri, document_uri=doc))
        ok(SECRET.encode() not in r.body and r.status in (200, 400, 404),
           f"fcgi DOCUMENT_URI {doc!r}: {r.status} {r.body[:80]!r}")
    # without DOCUMENT_URI memfill decodes and normalises REQUEST_URI itself
    # (/static/../x is /x, which the catch-all route answers)
    for uri in (b"/static/../secret.txt", b"/static/%2e%2e/%2e%2e/secret.txt",
                b"/static/..%2f..%2fsecret.txt", b"/static/%2E%2E%2Fsecret.txt",
                b"/static/ok.txt%00/../../secret.txt", b"/static/%5c..%5c..%5csecret.txt",
                b"/static/updir/secret.txt"):
        p = nginx_params("GET", uri)
        del p["DOCUMENT_URI"]
        r = fcgi.request(p)
        ok(SECRET.encode() not in r.body and r.status in (200, 400, 404),
           f"fcgi REQUEST_URI {uri!r}: {r.status} {r.body[:80]!r}")
    r = fcgi.request(nginx_params("GET", "/static/ok.txt"))
    ok(r.status == 200 and r.body == b"inside the root\n", f"fcgi plain static: {r.status}")

    # ---- the example plugin ----
    s, h, b = http(web_port, "/hello/World%3Cb%3E")
    ok(s == 200 and b == b"<p>Hi, World&lt;b&gt;</p>" and h.get("x-plugin") == "hello",
       f"plugin: {s} {h} {b!r}")
    ok(stored(mc, "/hello/World<b>") is not None, "plugin page not stored")
    s, h, b = http(web_port, "/hello/x?nostore=1")
    ok(s == 200 and not_stored(mc, "/hello/x?nostore=1"), f"plugin no_store: {s}")
    s, h, b = http(web_port, "/hello/x?fail=1")
    ok(s == 500 and not_stored(mc, "/hello/x?fail=1"), f"failing plugin: {s}")

    # ---- route options ----
    s, h, b = http(web_port, "/plain", method="POST", body=b"a=1")
    ok(s == 405, f"POST to a GET/HEAD route: {s}")
    s, h, b = http(web_port, "/postok/x", method="POST", body=b"a=1")
    ok(s == 200 and not_stored(mc, "/postok/x"), f"POST allowed, not stored: {s}")
    s, h, b = http(web_port, "/nocache/x")
    ok(s == 200 and not_stored(mc, "/nocache/x"), f"cache:false route: {s}")
    s, h, b = http(web_port, "/json/x")
    ok(s == 200 and h.get("content-type") == "application/json", f"content_type: {h}")
    s, h, b = http(web_port, "/ttl/x")
    ttl = stored(mc, "/ttl/x") and mc.ttl(b"/ttl/x")
    ok(s == 200 and ttl and 70 <= ttl <= 77, f"route ttl 77: {ttl}")
    stored(mc, "/treks/tmb")
    ttl = mc.ttl(b"/treks/tmb")
    ok(ttl and 290 <= ttl <= 300, f"cache.ttl 300: {ttl}")
    s, h, b = http(web_port, "/skipme/x")
    ok(s == 200 and not_stored(mc, "/skipme/x"), f"skip_uri: {s}")
    s, h, b = http(web_port, "/a/b.private")
    ok(s == 200 and not_stored(mc, "/a/b.private"), f"skip_uri suffix: {s}")
    s, h, b = http(web_port, "/session", headers={"Cookie": "theme=dark; sessionid=abc"})
    ok(s == 200 and not_stored(mc, "/session"), f"skip_cookies: {s}")
    s, h, b = http(web_port, "/othercookie", headers={"Cookie": "theme=dark"})
    ok(s == 200 and stored(mc, "/othercookie") is not None, "a non-session cookie blocked the store")
    s, h, b = http(web_port, "/authz", headers={"Authorization": "Basic dTpw"})
    ok(s == 200 and not_stored(mc, "/authz"), f"Authorization: {s}")
    r = fcgi.request(nginx_params("GET", "/authz2", headers={"Authorization": "Bearer x"}))
    ok(r.status == 200 and not_stored(mc, "/authz2"), f"Authorization (fcgi): {r.status}")

    # ---- memfillctl render ----
    st.write("r/tpl/main.mustache", "<main>{{> part}}</main>\n")
    st.write("r/parts/part.mustache", "<b>{{who}}</b>")
    st.write("r/tpl/bad.mustache", "line one\n  {{#list}}\n  {{/other}}\n")
    data = st.write("r/data.json", '{"who": "you & me"}')
    r = ctl("render", st.path("r/tpl/main.mustache"), data, "--partials", st.path("r/parts"))
    ok(r.returncode == 0 and r.stdout == b"<main><b>you &amp; me</b></main>\n",
       f"render with partials: {r.returncode} {r.stdout!r} {r.stderr!r}")
    r = ctl("render", st.path("r/tpl/main.mustache"), data)
    ok(r.returncode == 0 and r.stdout == b"<main></main>\n", f"render, no partial: {r.stdout!r}")
    r = ctl("render", st.path("r/tpl/main.mustache"), st.path("r/none.json"))
    ok(r.returncode == 65 and b"none.json" in r.stderr and b":-1" not in r.stderr,
       f"render, missing data: {r.returncode} {r.stderr!r}")
    r = ctl("render", st.path("r/tpl/bad.mustache"), data)
    ok(r.returncode == 65 and re.match(rb".*bad\.mustache:3:3: \S", r.stderr),
       f"render, syntax error: {r.returncode} {r.stderr!r}")
    r = ctl("render", st.path("site/templates/trek.mustache"),
            st.path("site/data/treks/broken.json"))
    ok(r.returncode == 65 and re.match(rb".*broken\.json:2:\d+: ", r.stderr),
       f"render, broken data: {r.returncode} {r.stderr!r}")

    # ---- the example site in conf/ ----
    conf_dir = os.path.join(SRCDIR, "conf")
    t = subprocess.run([MEMFILL, "-t", "-c", os.path.join(conf_dir, "memfill.json")],
                       capture_output=True, text=True)
    ok(t.returncode == 0, f"memfill -t conf/memfill.json: {t.stdout} {t.stderr}")
    r = ctl("render", os.path.join(conf_dir, "site/templates/index.mustache"),
            os.path.join(conf_dir, "site/data/index.json"))
    ok(r.returncode == 0 and b"Tour du Mont Blanc" in r.stdout and b"</html>" in r.stdout,
       f"conf index render: {r.returncode} {r.stderr!r}")
    for slug in ("tour-du-mont-blanc", "haute-route", "alta-via-1"):
        r = ctl("render", os.path.join(conf_dir, "site/templates/trek.mustache"),
                os.path.join(conf_dir, f"site/data/treks/{slug}.json"))
        ok(r.returncode == 0 and b"<h1>" in r.stdout and b"</html>" in r.stdout,
           f"conf trek {slug}: {r.returncode} {r.stderr!r}")
    log = st.log("memfill")
    ok("Sanitizer" not in log and "runtime error:" not in log, "sanitizer report in memfill's log")
    mc.close()
finally:
    if FAILURES:
        print(st.log("memfill")[-4000:])
    st.close()
finish(passed)
