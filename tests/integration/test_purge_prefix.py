#!/usr/bin/env python3
"""test_purge_prefix.py - purge by prefix and by regex through real nginx +
2 memcached + memfill, and with memfillctl.

- PURGE with X-Memfill-Purge-Prefix: refused (403) without the token and
  with a wrong one, the pages still there; with the token every page whose
  raw key ($uri$is_args$args) starts with the prefix is gone from its node
  (keys with a space, '%' and UTF-8 included), every other page and the
  tag markers (memfill bookkeeping) stay; the JSON counts them; the next
  visitor gets the page rendered again.
- X-Memfill-Purge-Regex likewise; both headers at once, or a bad regex: 400.
- memfillctl purge --prefix / --regex print the JSON report; with a node
  that refuses connections the purge is partial: exit 1, the JSON names
  the node in failed_nodes, the reachable node is still purged.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (MEMFILL, Memcached, Stack, check, ctl, default_key, finish, free_port,
                     http, memc_escape, need)

for b in ("nginx", "memcached", "python3", MEMFILL):
    need(b)

TOKEN = "s3cret-token-0123456789"
passed = 0

st = Stack("purge_prefix", deadline=90)
try:
    mc_ports = [free_port() for _ in range(2)]
    app_port, web_port = free_port(), free_port()
    for p in mc_ports:
        st.memcached(port=p)
    mcs = [Memcached(port=p) for p in mc_ports]
    st.write("page.mustache", "<p>{{path}}</p>\n")
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 2,
        "admin": {"token": TOKEN},
        "memcached": {"servers": [f"127.0.0.1:{p}" for p in mc_ports]},
        "routes": [
            {"prefix": "/", "handler": "template", "template": "page.mustache",
             "tags": ["all"]},
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg))
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    check(t.returncode == 0, f"nginx-conf: {t.stderr!r}")
    st.nginx(t.stdout.decode(), web_port)
    st.memfill(conf, port=app_port)

    def holder(key):
        k = memc_escape(key)
        return [i for i, m in enumerate(mcs) if m.get(k) is not None]

    def stored(key):
        end = time.monotonic() + 3
        while time.monotonic() < end:
            if holder(key):
                return True
            time.sleep(0.02)
        return False

    treks = [b"/treks/a", b"/treks/caf%C3%A9%20x", b"/treks/50%25?q=a%20b", b"/treks/"]
    others = [b"/treksx", b"/news/1", b"/Treks/a", b"/tre"]

    def visit_all(targets):
        for u in targets:
            s, _, _ = http(web_port, u)
            check(s == 200, f"GET {u!r}: {s}")
            check(stored(default_key(u)), f"{u!r} not stored")

    visit_all(treks + others)
    nodes_used = {holder(default_key(u))[0] for u in treks + others if holder(default_key(u))}
    check(len(nodes_used) == 2, f"pages all on one node: {nodes_used}")
    check(any(m.get(b"memfill:t:all=/treks/a") is not None for m in mcs), "no tag index stored")

    # ---- the admin guard ----
    s, _, b = http(web_port, "/", method="PURGE", headers={"X-Memfill-Purge-Prefix": "/treks/"})
    check(s == 403, f"prefix PURGE without token: {s} {b!r}")
    s, _, b = http(web_port, "/", method="PURGE",
                   headers={"X-Memfill-Purge-Prefix": "/treks/", "X-Memfill-Token": "wrong"})
    check(s == 403, f"prefix PURGE with a wrong token: {s} {b!r}")
    if check(all(holder(default_key(u)) for u in treks), "a refused PURGE removed pages"):
        passed += 1

    # ---- prefix over HTTP ----
    s, _, b = http(web_port, "/", method="PURGE",
                   headers={"X-Memfill-Purge-Prefix": "/treks/", "X-Memfill-Token": TOKEN})
    rep = json.loads(b) if s in (200, 502) else {}
    check(s == 200 and rep.get("complete") is True and rep.get("purged") == len(treks),
          f"prefix PURGE: {s} {b!r}")
    check(rep.get("scanned", 0) >= len(treks) + len(others) and rep.get("failed_nodes") == [],
          f"prefix PURGE report: {rep}")
    gone = [u for u in treks if not holder(default_key(u))]
    kept = [u for u in others if holder(default_key(u))]
    check(len(gone) == len(treks), f"pages under the prefix left: {set(treks) - set(gone)}")
    check(len(kept) == len(others), f"pages outside the prefix purged: {set(others) - set(kept)}")
    check(any(m.get(b"memfill:t:all=/treks/a") is not None for m in mcs),
          "the prefix purge removed memfill's bookkeeping")
    s, _, body = http(web_port, b"/treks/caf%C3%A9%20x")
    check(s == 200 and "café x".encode() in body and stored("/treks/café x".encode()),
          f"a purged page is not rendered and stored again: {s} {body!r}")
    passed += 3

    # ---- regex over HTTP, bad requests ----
    s, _, b = http(web_port, "/", method="PURGE",
                   headers={"X-Memfill-Purge-Regex": "^/(news|tre)$|^/news/",
                            "X-Memfill-Token": TOKEN})
    check(s == 200 and json.loads(b).get("purged") == 2, f"regex PURGE: {s} {b!r}")
    check(not holder(b"/news/1") and not holder(b"/tre") and holder(b"/treksx")
          and holder(b"/Treks/a"), "regex PURGE removed the wrong pages")
    s, _, b = http(web_port, "/", method="PURGE",
                   headers={"X-Memfill-Purge-Regex": "(", "X-Memfill-Token": TOKEN})
    check(s == 400 and b"regex" in b, f"bad regex: {s} {b!r}")
    s, _, b = http(web_port, "/", method="PURGE",
                   headers={"X-Memfill-Purge-Regex": "x", "X-Memfill-Purge-Prefix": "/x",
                            "X-Memfill-Token": TOKEN})
    check(s == 400, f"prefix and regex together: {s} {b!r}")
    check(holder(b"/treksx"), "a refused purge removed pages")
    passed += 2

    # ---- memfillctl, and a node that cannot be reached ----
    visit_all(treks)
    r = ctl("purge", "--regex", "^/treks/[ac]", config=conf)
    rep = json.loads(r.stdout) if r.returncode == 0 else {}
    check(r.returncode == 0 and rep.get("purged") == 2 and rep.get("complete") is True,
          f"ctl purge --regex: {r.returncode} {r.stdout!r} {r.stderr!r}")
    check(not holder(b"/treks/a") and holder(b"/treks/"), "ctl --regex removed the wrong pages")
    dead = free_port()
    bad = dict(cfg)
    bad["memcached"] = {"servers": [f"127.0.0.1:{mc_ports[0]}", f"127.0.0.1:{dead}",
                                    f"127.0.0.1:{mc_ports[1]}"]}
    badconf = st.write("dead-node.json", json.dumps(bad))
    t0 = time.monotonic()
    r = ctl("purge", "--prefix", "/treks/", config=badconf)
    took = time.monotonic() - t0
    rep = json.loads(r.stdout) if r.stdout.strip() else {}
    check(r.returncode == 1 and rep.get("complete") is False
          and rep.get("failed_nodes") == [f"127.0.0.1:{dead}"],
          f"partial purge: {r.returncode} {r.stdout!r} {r.stderr!r}")
    check(f"127.0.0.1:{dead}".encode() in r.stderr, f"stderr does not name the node: {r.stderr!r}")
    check(took < 10, f"a refused node held the purge {took:.1f} s")
    check(not any(holder(default_key(u)) for u in treks) and holder(b"/treksx"),
          "the reachable nodes were not purged when one failed")
    r = ctl("purge", "--prefix", "", config=conf)
    check(r.returncode == 64 and b"empty" in r.stderr, f"empty prefix: {r.returncode} {r.stderr!r}")
    passed += 3
finally:
    st.close()
finish(passed)
