#!/usr/bin/env python3
"""test_cluster.py - memfill writes every page where nginx reads it.

For each nginx setup (hash ... consistent over 3 nodes; hash over 4 nodes
with one weight=2; consistent over a set with a unix-socket node and a
"localhost:PORT" server text; set_hashed_upstream over upstream_list read
through memc_pass), nginx is configured from `memfillctl nginx-conf`, and
320+ URIs (spaces, %, UTF-8, dot segments, queries, long and near-250-byte
keys) are requested twice: once with MEMC_BACKEND passed to memfill and
once without it (memfill then computes the node). For every URI: the first
request is a miss that memfill stores on exactly one node; after memfill is
stopped, the second request is still served by nginx from memcached (100%
hits); no item is left on a node nginx does not read; `memfillctl where`
names the node that holds the item. Keys over 250 bytes once escaped are
answered but never stored.
"""
import json
import time
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, Memcached, Stack, check, ctl, default_key, finish,
                     free_port, http, memc_escape, need)

for b in ("nginx", "memcached", "spawn-fcgi", MEMFILL):
    need(b)


def corpus():
    """Request targets (bytes, as sent on the request line)."""
    out = []
    for i in range(40):
        out += [b"/p/%d" % i, b"/sp%%20ace/%d" % i, b"/pct%%25/%d" % i,
                b"/caf%%C3%%A9/%d" % i, b"/raw/\xc3\xa9\xe2\x82\xac/%d" % i,
                b"/q/%d?x=%d&y=a%%20b" % (i, i), b"/dots/./a/../%d" % i,
                b"/Mixed/CASE/%d/" % i]
    # long keys, and keys right at the 250-byte limit once escaped
    for n in range(120, 250, 13):
        out.append(b"/long/" + b"x" * (n - 6))
    base = b"/edge/"
    for total in (248, 249, 250, 251, 252):
        out.append(base + b"y" * (total - len(base)))
    # "%20" decodes to a space, escaped back to 3 bytes: 82 spaces = 246 + /e/ 3 + ...
    for spaces in (81, 82, 83, 84):
        out.append(b"/e/" + b"%20" * spaces)
    return out


URIS = corpus()
assert len(URIS) >= 320


def run_setup(name, servers, distribution, unix_nodes=()):
    """servers: list of (address_text, weight, upstream_name, port_or_path)."""
    global passed
    st = Stack(f"cluster-{name}", deadline=300)
    try:
        mcs = {}
        for addr, w, uname, where in servers:
            if isinstance(where, int):
                st.memcached(port=where)
                mcs[addr] = Memcached(port=where)
            else:
                st.memcached(unix=where)
                mcs[addr] = Memcached(unix=where)
        app_port, web_a, web_b = free_port(), free_port(), free_port()
        st.write("page.mustache", "<p>{{path}}</p><p>{{query}}</p>\n")
        cfg = {
            "workers": 2,
            "memcached": {"distribution": distribution, "servers": [
                dict({"address": a, "weight": w}, **({"name": u} if u else {}))
                for a, w, u, _ in servers]},
            "cache": {"key": "$uri$is_args$args", "ttl": 300},
            "routes": [{"prefix": "/", "handler": "template", "template": "page.mustache"}],
        }
        conf = st.write("memfill.json", json.dumps(cfg, indent=1))
        # nginx A passes MEMC_BACKEND; nginx B does not (memfill computes the node)
        gen = {}
        for port in (web_a, web_b):
            t = ctl("nginx-conf", "--listen", f"127.0.0.1:{port}", "--fastcgi",
                    f"127.0.0.1:{app_port}", config=conf)
            check(t.returncode == 0, f"{name}: nginx-conf failed: {t.stderr!r}")
            text = t.stdout.decode()
            if port == web_b:
                text = "\n".join(l for l in text.splitlines() if "MEMC_BACKEND" not in l)
                check("MEMC_BACKEND" not in text, "MEMC_BACKEND still in config B")
            gen[port] = text
        # two server blocks in one nginx; the upstream blocks only once
        a_text = gen[web_a]
        b_server = gen[web_b][gen[web_b].index("server {"):]
        st.nginx(a_text + "\n" + b_server, web_a)
        keys = {u: memc_escape(default_key(u)) for u in URIS}
        raw_keys = [default_key(u) for u in URIS]
        # memfillctl where, for every key at once (stdin, hex)
        w = ctl("where", "--hex", "-", config=conf,
                input=b"\n".join(k.hex().encode() for k in raw_keys) + b"\n")
        where_lines = w.stdout.decode("latin-1").splitlines()
        check(len(where_lines) == len(URIS), f"{name}: where gave {len(where_lines)} lines")
        name_to_addr = {u: a for a, _, u, _ in servers if u}

        for port, label in ((web_a, "MEMC_BACKEND"), (web_b, "computed")):
            for m in mcs.values():
                m.flush()
            memfill = st.memfill_spawnfcgi(conf, app_port)
            bodies = {}
            for u in URIS:
                s, h, body = http(port, u)
                check(s == 200, f"{name}/{label}: {u!r} first request {s}")
                bodies[u] = body
            # memfill stores after answering: wait until the items are in
            expect = sum(1 for u in URIS if len(keys[u]) <= 250)
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if sum(int(m.stats()["curr_items"]) for m in mcs.values()) >= expect:
                    break
                time.sleep(0.05)
            # where did the items land?
            stored = 0
            for i, u in enumerate(URIS):
                k = keys[u]
                too_long = len(k) > 250
                holders = []
                for addr, m in mcs.items():
                    item = m.get(k)
                    if item is not None:
                        holders.append(addr)
                        check(item[0] == bodies[u], f"{name}: {u!r} stored body differs")
                if too_long:
                    if check(not holders, f"{name}/{label}: {len(k)}-byte key was stored"):
                        passed += 1
                    continue
                if check(len(holders) == 1, f"{name}/{label}: {u!r} key {k!r} on {holders}"):
                    stored += 1
                    node, _, esc = where_lines[i].partition("\t") if i < len(where_lines) else ("", "", "")
                    node = name_to_addr.get(node, node)
                    if check(node == holders[0] and esc.encode("latin-1") == k,
                             f"{name}: where says {where_lines[i]!r}, item on {holders[0]}"):
                        passed += 1
            st.stop(memfill)
            # memfill is gone: every stored page must now be a memcached hit
            hits = 0
            for u in URIS:
                if len(keys[u]) > 250:
                    continue
                s, h, body = http(port, u)
                if check(s == 200 and body == bodies[u],
                         f"{name}/{label}: {u!r} not served from memcached ({s})"):
                    hits += 1
            total = sum(1 for u in URIS if len(keys[u]) <= 250)
            print(f"{name}/{label}: {stored}/{total} stored on one node, {hits}/{total} hits "
                  f"with memfill stopped")
            passed += hits
        for m in mcs.values():
            m.close()
    finally:
        if FAILURES:
            print(st.log("memfill")[-2000:])
        st.close()


passed = 0
ports = [free_port() for _ in range(5)]
run_setup("consistent3", [(f"127.0.0.1:{p}", 1, None, p) for p in ports[:3]], "consistent")
run_setup("hash4w", [(f"127.0.0.1:{p}", 2 if i == 1 else 1, None, p)
                     for i, p in enumerate(ports[:4])], "hash")
sock = f"/tmp/memfill-cluster-{os.getpid()}.sock"
run_setup("consistent-unix", [(f"127.0.0.1:{ports[0]}", 1, None, ports[0]),
                              (f"unix:{sock}", 1, None, sock),
                              (f"localhost:{ports[1]}", 2, None, ports[1])], "consistent")
run_setup("upstream_list", [(f"127.0.0.1:{ports[0]}", 1, "moon", ports[0]),
                            (f"127.0.0.1:{ports[1]}", 2, "sun", ports[1]),
                            (f"127.0.0.1:{ports[2]}", 1, "earth", ports[2])], "upstream_list")
finish(passed)
