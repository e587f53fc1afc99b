#!/usr/bin/env python3
"""test_ops.py - purge (URI, key, tag), the tag index, and the status
endpoint, through real nginx + memcached (3 nodes) + memfill + an origin.

- PURGE through nginx: refused (403) without the token, with a wrong token;
  accepted with it: the item is gone from its node and the next request is
  rendered again.
- Tags from a route and from the origin's X-Memfill-Tags header: purging a
  tag removes every page carrying it, on every node; X-Memfill-Tags never
  reaches the client.
- memfillctl purge URI / --key / --tag compute key and node like nginx.
- Status (JSON and Prometheus) is served by the master on admin.listen and
  answers while every worker is busy on a slow origin request; it is
  guarded (403 without the token); memfillctl stats prints it; the
  "why not stored" counters move for the right reasons.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import admin_get as harness_admin_get  # noqa: E402
from harness import (FAILURES, MEMFILL, Memcached, Stack, check, ctl, default_key, finish,
                     free_port, http, memc_escape, need)

for b in ("nginx", "memcached", "spawn-fcgi", "python3", MEMFILL):
    need(b)

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "s3cret-token-0123456789"
passed = 0


def admin_get(port, path, token=TOKEN):
    return harness_admin_get(port, path, token)


st = Stack("ops", deadline=120)
try:
    mc_ports = [free_port() for _ in range(3)]
    app_port, web_port, admin_port, origin_port = free_port(), free_port(), free_port(), free_port()
    mc_procs = [st.memcached(port=p) for p in mc_ports]
    mcs = [Memcached(port=p) for p in mc_ports]
    origin = st.origin(origin_port)
    st.write("page.mustache", "<p>{{path}}</p>\n")
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 2,
        "log": {"access": True},
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
        "memcached": {"servers": [f"127.0.0.1:{p}" for p in mc_ports]},
        "routes": [
            {"regex": "^/(tags|slow|cookie|private|status/[0-9]+)$", "handler": "upstream", "origin": f"http://127.0.0.1:{origin_port}",
             "timeout_ms": 8000},
            {"prefix": "/news/", "handler": "template", "template": "page.mustache",
             "tags": ["news"]},
            {"prefix": "/", "handler": "template", "template": "page.mustache"},
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg))
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    check(t.returncode == 0, f"nginx-conf: {t.stderr!r}")
    st.nginx(t.stdout.decode(), web_port)
    memfill = st.memfill(conf, port=app_port)

    def holder(key):
        k = memc_escape(key)
        return [i for i, m in enumerate(mcs) if m.get(k) is not None]

    def stored(key):
        end = time.monotonic() + 2
        while time.monotonic() < end:
            if holder(key):
                return True
            time.sleep(0.02)
        return False

    # ---- PURGE through nginx ----
    http(web_port, "/a/page")
    check(stored(b"/a/page"), "page not stored")
    s, h, b = http(web_port, "/a/page", method="PURGE")
    check(s == 403 and holder(b"/a/page"), f"PURGE without token: {s}")
    s, h, b = http(web_port, "/a/page", method="PURGE", headers={"X-Memfill-Token": "wrong"})
    check(s == 403 and holder(b"/a/page"), f"PURGE wrong token: {s}")
    s, h, b = http(web_port, "/a/page", method="PURGE", headers={"X-Memfill-Token": TOKEN})
    if check(s == 200 and not holder(b"/a/page"), f"PURGE with token: {s} {b!r}"):
        passed += 1
    s, h, b = http(web_port, "/a/page", method="PURGE", headers={"X-Memfill-Token": TOKEN})
    check(s == 404, f"PURGE of a page not cached: {s}")
    check("PURGE refused" in st.log("memfill"), "refused PURGE not logged")
    passed += 3

    # ---- tags: route tags and origin X-Memfill-Tags, across nodes ----
    news = [f"/news/{i}".encode() for i in range(12)]
    for u in news:
        http(web_port, u)
    s, h, b = http(web_port, "/tags")
    check("x-memfill-tags" not in h, f"X-Memfill-Tags relayed to the client: {h}")
    check(all(stored(u) for u in news) and stored(b"/tags"), "tagged pages not stored")
    nodes_used = {holder(u)[0] for u in news if holder(u)}
    check(len(nodes_used) >= 2, f"news pages all on one node: {nodes_used}")
    # each page has its tag marker on its own node (written just after it)
    check(all(holder(u) and mcs[holder(u)[0]].wait(b"memfill:t:news=" + memc_escape(u))
              is not None for u in news), "news pages not indexed")
    s, h, b = http(web_port, "/", method="PURGE",
                   headers={"X-Memfill-Token": TOKEN, "X-Memfill-Purge-Tag": "news"})
    doc = json.loads(b) if s == 200 else {}
    if check(doc.get("purged") == len(news) and doc.get("entries") == len(news)
             and doc.get("complete") is True, f"tag purge: {s} {b!r}"):
        passed += 1
    check(all(not holder(u) for u in news), "tagged pages survived the tag purge")
    check(holder(b"/tags"), "an untagged-news page was purged")
    for m in mcs:
        check(all(m.get(b"memfill:t:news=" + memc_escape(u)) is None for u in news),
              "tag index survived its purge")
    # origin tags "a b" and "c,d"
    r = ctl("purge", "--tag", "c", config=conf)
    check(r.returncode == 0 and b"1 purged" in r.stdout, f"ctl purge --tag: {r.stdout!r}")
    check(not holder(b"/tags"), "origin-tagged page survived memfillctl purge --tag")
    passed += 4

    # ---- memfillctl purge URI and --key ----
    for u in (b"/x/one", b"/x/two%20words", b"/x/q?a=1"):
        http(web_port, u)
        check(stored(default_key(u)), f"{u!r} not stored")
    r = ctl("purge", "/x/one", "http://example.org/x/two%20words", config=conf)
    check(r.returncode == 0 and r.stdout.count(b"purged") == 2, f"ctl purge URIs: {r.stdout!r}")
    check(not holder(b"/x/one") and not holder(b"/x/two words"), "ctl purge URI left items")
    r = ctl("purge", "--key", "/x/q?a=1", config=conf)
    check(r.returncode == 0 and b"purged" in r.stdout and not holder(b"/x/q?a=1"),
          f"ctl purge --key: {r.stdout!r}")
    passed += 3

    # ---- status: guarded, and answers while every worker is busy ----
    s, b = admin_get(admin_port, "/status", token=None)
    check(s == 403, f"status without token: {s}")
    results = []

    def slow(i):
        results.append(http(web_port, f"/slow?ms=2500&i={i}", timeout=20)[0])
    threads = [threading.Thread(target=slow, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.8)
    t0 = time.monotonic()
    s, b = admin_get(admin_port, "/status")
    took = time.monotonic() - t0
    doc = json.loads(b) if s == 200 else {}
    if check(s == 200 and took < 1.0, f"status under load: {s} in {took:.2f}s"):
        passed += 1
    check(doc.get("active") == 2 and doc.get("idle") == 0, f"active/idle {doc.get('active')}/{doc.get('idle')}")
    check(any("/slow" in w["uri"] for w in doc.get("workers", [])), "busy worker URIs missing")
    check(doc.get("listen_queue", -1) >= 1, f"listen_queue {doc.get('listen_queue')}")
    print(f"status answered in {took * 1000:.0f} ms with every worker busy; "
          f"listen_queue={doc.get('listen_queue')}")
    for th in threads:
        th.join()
    check(results == [200] * 4, f"slow requests: {results}")
    s, b = admin_get(admin_port, "/metrics")
    check(s == 200 and b'memfill_events_total{event="stored"}' in b, "prometheus text")
    r = ctl("stats", config=conf)
    doc = json.loads(r.stdout) if r.returncode == 0 else {}
    c = doc.get("counters", {})
    check(c.get("stored", 0) >= 20 and c.get("purged", 0) >= 13
          and c.get("tag_index_failed") == 0, f"counters {c}")
    # a reason per skip
    http(web_port, "/cookie")
    http(web_port, "/private")
    http(web_port, "/status/404")
    http(web_port, "/" + "k" * 260)
    time.sleep(0.3)
    c = json.loads(ctl("stats", config=conf).stdout)["counters"]
    check(c["skip_cookie"] >= 1 and c["skip_cache_control"] >= 1 and c["skip_status"] >= 1
          and c["skip_key_too_long"] >= 1, f"skip counters {c}")
    check(len(doc.get("nodes", [])) == 3, "per-node stats missing")
    passed += 5

    # ---- a node down: a tag purge never claims success ----
    st.stop(mc_procs[2])
    dead = f"127.0.0.1:{mc_ports[2]}"
    r = ctl("purge", "--tag", "news", config=conf)
    check(r.returncode != 0 and b"may be incomplete" in r.stderr and dead.encode() in r.stderr,
          f"ctl purge --tag with a node down: {r.returncode} {r.stderr!r}")
    s, h, b = http(web_port, "/", method="PURGE",
                   headers={"X-Memfill-Token": TOKEN, "X-Memfill-Purge-Tag": "news"})
    doc = json.loads(b) if b.startswith(b"{") else {}
    check(s == 502 and doc.get("complete") is False and doc.get("failed_nodes") == [dead],
          f"PURGE tag with a node down: {s} {b!r}")
    passed += 2
    for m in mcs[:2]:
        m.close()
finally:
    if FAILURES:
        print(st.log("memfill")[-3000:])
    st.close()
finish(passed)
