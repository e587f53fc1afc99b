#!/usr/bin/env python3
"""test_stampede.py - stampede protection (cache.lock_wait) through the
real stack: nginx + memcached + memfill relaying to origin.py.

50 clients ask nginx at once for the same cold page, /slow?ms=500 (origin
answers after 500 ms; origin.py counts the requests that reach each path,
/_hits?path=/slow). With cache.lock_wait = 3000 ms one memfill worker takes
the lock, asks the origin once and stores the page; the others wait for it
and serve it. The same burst with the feature off (lock_wait 0, the
default) reaches the origin once per request that misses. Both counts are
printed. Also checked:
  - every client gets 200 and the page, with and without the feature;
  - the lock is gone after the store;
  - a wait that runs out (lock_wait 300 ms against a 1500 ms page) makes
    the waiters produce the page themselves without storing it
    (skip_lock_lost in the access log), while the holder stores it;
  - a page that turns out not storable (/nostore) leaves the "pass" mark
    in its lock, so later misses do not queue behind each other.
"""
import json
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, SRCDIR, Memcached, Stack, check, ctl,  # noqa: E402
                     finish, free_port, http, need)

for b in ("nginx", "memcached", MEMFILL):
    need(b)

st = Stack("stampede")
passed = 0
WORKERS = 8
CLIENTS = 50


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1
    return cond


def hits(origin_port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{origin_port}/_hits?path={path}",
                                timeout=5) as r:
        return json.loads(r.read())["hits"]


def burst(port, target, n):
    """n clients at once (a barrier releases them together). Returns the
    list of (status, body) and the elapsed seconds."""
    results = [None] * n
    gate = threading.Barrier(n)

    def one(i):
        gate.wait()
        try:
            s, h, b = http(port, target, timeout=30)
            results[i] = (s, b)
        except Exception as e:  # noqa: BLE001 - reported as a failure below
            results[i] = (0, repr(e).encode())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, time.monotonic() - t0


def access_count(word):
    return sum(1 for ln in st.log("memfill").splitlines() if "access:" in ln and ln.endswith(word))


try:
    mc_port, app_port, web_port, origin_port = (free_port() for _ in range(4))
    op = st.origin(origin_port)
    origin = f"http://127.0.0.1:{origin_port}"

    def config(lock_wait, name):
        cfg = {
            "listen": f"127.0.0.1:{app_port}",
            "workers": WORKERS,
            "log": {"level": "info", "access": True},
            "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
            "cache": {"key": "$uri$is_args$args", "ttl": 120, "lock_wait": lock_wait,
                      "lock_ttl": 10},
            # origin.py's listen queue is short: a burst of connects can
            # overflow it and wait for a SYN retransmit (1 s)
            "routes": [{"prefix": "/", "handler": "upstream", "origin": origin,
                        "connect_timeout_ms": 5000}],
        }
        return st.write(name, json.dumps(cfg, indent=1))

    conf_on = config(3000, "on.json")
    conf_off = config(0, "off.json")
    conf_short = config(300, "short.json")
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf_on)
    ok(t.returncode == 0, f"nginx-conf exit {t.returncode}: {t.stderr!r}")
    st.memcached(port=mc_port)
    st.nginx(t.stdout.decode(), web_port)
    mc = Memcached(port=mc_port)

    # ---- feature on ----
    memfill = st.memfill(conf_on, port=app_port)
    before = hits(origin_port, "/slow")
    res, took_on = burst(web_port, "/slow?ms=500", CLIENTS)
    on_hits = hits(origin_port, "/slow") - before
    bad = [r for r in res if r != (200, b"slow\n")]
    ok(not bad, f"lock on: {len(bad)} clients got something else, e.g. {bad[:2]}")
    ok(on_hits == 1, f"lock on: the origin was asked {on_hits} times for one cold page")
    ok(mc.get(b"/slow?ms=500") == (b"slow\n", 0), "lock on: the page is not stored")
    ok(mc.get(b"memfill:lock:/slow?ms=500") is None, "lock on: the lock was left behind")
    served = access_count("lock_served")
    ok(served >= 1, f"lock on: no request was served from the holder's store ({served})")
    print(f"stampede: lock_wait 3000: {CLIENTS} concurrent misses -> {on_hits} origin "
          f"request(s), {served} served from the holder's store, {took_on:.2f} s")

    # the "pass" mark for a page that cannot be stored
    s, h, b = http(web_port, "/nostore")
    ok(s == 200, f"/nostore: {s}")
    mark = mc.wait(b"memfill:lock:/nostore", want=(b"pass", 0))
    ok(mark == (b"pass", 0), f"/nostore: lock holds {mark!r}, expected the pass mark")
    ok(mc.get(b"/nostore") is None, "/nostore was stored")
    before = hits(origin_port, "/nostore")
    res, took = burst(web_port, "/nostore", 8)
    ok(all(r == (200, b"nostore\n") for r in res), f"/nostore burst: {res[:2]}")
    ok(hits(origin_port, "/nostore") - before == 8, "/nostore burst: not every miss relayed")
    ok(took < 2.0, f"/nostore burst queued behind a lock: {took:.2f} s")
    st.stop(memfill)

    # ---- feature off (the default) ----
    mc.flush()
    memfill = st.memfill(conf_off, port=app_port)
    before = hits(origin_port, "/slow")
    res, took_off = burst(web_port, "/slow?ms=500", CLIENTS)
    off_hits = hits(origin_port, "/slow") - before
    bad = [r for r in res if r != (200, b"slow\n")]
    ok(not bad, f"lock off: {len(bad)} clients got something else, e.g. {bad[:2]}")
    ok(off_hits > 10, f"lock off: only {off_hits} origin requests (the burst was not concurrent?)")
    ok(mc.get(b"memfill:lock:/slow?ms=500") is None, "lock off: a lock was taken")
    print(f"stampede: lock_wait 0 (off): {CLIENTS} concurrent misses -> {off_hits} origin "
          f"requests, {took_off:.2f} s")
    st.stop(memfill)

    # ---- a wait that runs out ----
    mc.flush()
    memfill = st.memfill(conf_short, port=app_port)
    lost_before = access_count("skip_lock_lost")
    before = hits(origin_port, "/slow")
    res, took = burst(web_port, "/slow?ms=1500", 3)
    short_hits = hits(origin_port, "/slow") - before
    ok(all(r == (200, b"slow\n") for r in res), f"short wait: {res}")
    ok(short_hits == 3, f"short wait: {short_hits} origin requests, expected 3")
    ok(mc.wait(b"/slow?ms=1500", timeout=3.0) == (b"slow\n", 0),
       "short wait: the holder did not store the page")
    time.sleep(0.3)
    lost = access_count("skip_lock_lost") - lost_before
    ok(lost == 2, f"short wait: {lost} skip_lock_lost in the access log, expected 2")
    mc.close()
finally:
    if FAILURES:
        print(st.log("memfill")[-4000:])
    st.close()
finish(passed)
