#!/usr/bin/env python3
"""test_faults.py - faults under load, through the real stack.

Two memcached nodes, memfill (2 workers), nginx from `memfillctl
nginx-conf` (which carries memfill's short memcached timeouts over to
nginx), origin.py, and wrk as
the load. Each fault prints its measured figures ("FIGURE ...") and must
hold:

1. A memcached node killed (SIGKILL) in the middle of a wrk run: clients
   see no non-2xx answer and no socket error (nginx falls back to memfill,
   which serves; stores for the dead node are skipped or fail and are
   counted).
2. A node frozen with SIGSTOP: every request is still answered within
   nginx's memcached connect + read timeout plus render time (wrk's max
   latency), memfill's own stores to the frozen node give up after
   memcached.timeout_ms; after SIGCONT, pages are stored on it again.
3. The origin down: 502 (through nginx and straight), nothing stored.
4. The origin slow: the route's timeout_ms is respected (504 in about that
   time), nothing stored; a fast page right after is fine.
5. A page larger than memcached's item limit (-I 1m): served whole, not
   stored, skip_size counted.
All loopback, bounded (the whole file runs in about 30 s).
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import admin_status as harness_admin_status, parse_wrk  # noqa: E402
from harness import (FAILURES, MEMFILL, MEMFILLCTL, Memcached, Stack, check, ctl, finish,
                     free_port, http, memc_escape, need)
from fcgi_client import FastCGIClient, nginx_params

for b in ("nginx", "memcached", "wrk", MEMFILL, MEMFILLCTL):
    need(b)

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "faults-token-0123456789"
MEMFILL_MC_TIMEOUT_MS = 200  # memcached.connect_timeout_ms / timeout_ms in memfill
NGINX_MC_TIMEOUT_MS = MEMFILL_MC_TIMEOUT_MS  # nginx-conf emits the same timeouts
passed = 0


def admin_status(port):
    return harness_admin_status(port, TOKEN)


def wrk(port, script, seconds, conns=8, during=None):
    """Runs wrk for seconds; during(elapsed) is called every 0.1 s."""
    argv = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "-s", script,
            f"http://127.0.0.1:{port}/"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    while p.poll() is None:
        if during:
            during(time.monotonic() - t0)
        time.sleep(0.1)
    out = p.stdout.read()
    return parse_wrk(out), out


st = Stack("faults", deadline=150)
try:
    mc_ports = [free_port(), free_port()]
    app_port, web_port, admin_port = free_port(), free_port(), free_port()
    origin_port, dead_port = free_port(), free_port()
    mc_procs = [st.memcached(port=p, extra=("-I", "1m")) for p in mc_ports]
    origin = st.origin(origin_port)
    st.write("page.mustache", "<html><body><h1>{{path}}</h1>" + "<p>filler</p>" * 40 +
             "</body></html>\n")
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 2,
        "log": {"level": "warn"},
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
        "memcached": {"servers": [f"127.0.0.1:{p}" for p in mc_ports],
                      "connect_timeout_ms": MEMFILL_MC_TIMEOUT_MS,
                      "timeout_ms": MEMFILL_MC_TIMEOUT_MS},
        "cache": {"ttl": 300},
        "routes": [
            {"regex": "^/(big|slow|plain)$", "handler": "upstream",
             "origin": f"http://127.0.0.1:{origin_port}", "timeout_ms": 500},
            {"prefix": "/down/", "handler": "upstream", "origin": f"http://127.0.0.1:{dead_port}",
             "connect_timeout_ms": 300, "timeout_ms": 500},
            {"prefix": "/", "handler": "template", "template": "page.mustache"},
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg, indent=1))
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    check(t.returncode == 0, f"nginx-conf: {t.stderr!r}")
    ngx = t.stdout.decode()
    check(f"memcached_read_timeout {NGINX_MC_TIMEOUT_MS}ms;" in ngx
          and f"memcached_connect_timeout {NGINX_MC_TIMEOUT_MS}ms;" in ngx,
          "nginx-conf does not carry memfill's memcached timeouts over to nginx")
    st.nginx(ngx, web_port)
    st.memfill(conf, port=app_port)
    mcs = [Memcached(port=p) for p in mc_ports]

    def counters():
        return admin_status(admin_port)["counters"]

    def node_of(raw):
        r = ctl("where", raw, config=conf)
        return [f"127.0.0.1:{p}" for p in mc_ports].index(r.stdout.decode().split("\t")[0])

    def stored_on(node, esc, timeout=2.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if mcs[node].get(esc) is not None:
                return True
            time.sleep(0.02)
        return False

    def script(name, prefix, n):
        return st.write(f"{name}.lua", f"""
local i = 0
request = function()
    i = i + 1
    return wrk.format("GET", "{prefix}" .. (i % {n}))
end
""")

    # ---------- 1. a node killed mid-run ----------
    c0 = counters()
    killed = [False]

    def kill_at_2s(elapsed):
        if elapsed > 2.0 and not killed[0]:
            killed[0] = True
            os.kill(mc_procs[1].pid, signal.SIGKILL)

    res, out = wrk(web_port, script("kill", "/kill/", 400), 5, during=kill_at_2s)
    mc_procs[1].wait(5)
    c1 = counters()
    d = {k: c1[k] - c0[k] for k in c1}
    print(f"FIGURE kill: node 2 of 2 SIGKILLed at 2 s of a 5 s wrk run: {res['requests']} "
          f"requests ({res['rps']:.0f}/s), non-2xx {res['non2xx']}, socket errors "
          f"{res['socket_errors']}, max latency {res['max_ms']} ms; memfill rendered "
          f"{d['requests']}, stored {d['stored']}, skip_node_trouble {d['skip_node_trouble']}, "
          f"fail_connection {d['fail_connection']}, fail_timeout {d['fail_timeout']}, "
          f"node_drift {d['node_drift']}")
    if check(res["requests"] > 100 and res["non2xx"] == 0 and res["socket_errors"] == 0,
             f"node kill: {res} \n{out}"):
        passed += 1
    # after the kill, a page for the dead node is served (and never stored there)
    dead_keys = [f"/after-kill/{i}" for i in range(40) if node_of(f"/after-kill/{i}") == 1][:5]
    for u in dead_keys:
        s, h, b = http(web_port, u)
        check(s == 200, f"{u} with its node dead: {s}")
    passed += 1
    # memfill straight (no MEMC_STATUS): it tries the dead node and counts it
    fc = FastCGIClient(("127.0.0.1", app_port), timeout=5)
    c0 = counters()
    t0 = time.monotonic()
    for u in dead_keys:
        r = fc.request(nginx_params("GET", u))
        check(r.status == 200, f"{u} straight with its node dead: {r.status}")
    took = (time.monotonic() - t0) / max(1, len(dead_keys))
    time.sleep(0.3)
    c1 = counters()
    fails = c1["fail_connection"] + c1["fail_timeout"] - c0["fail_connection"] - c0["fail_timeout"]
    print(f"FIGURE kill: {len(dead_keys)} direct requests for the dead node: {took * 1000:.1f} ms "
          f"each, store failures counted {fails}")
    if check(fails == len(dead_keys), f"store failures for a dead node counted {fails}"):
        passed += 1
    # bring the node back for the next test
    mc_procs[1] = st.memcached(port=mc_ports[1], extra=("-I", "1m"))
    mcs[1] = Memcached(port=mc_ports[1])

    # ---------- 2. a node frozen with SIGSTOP ----------
    time.sleep(0.5)
    c0 = counters()
    os.kill(mc_procs[1].pid, signal.SIGSTOP)
    try:
        res, out = wrk(web_port, script("stop", "/frozen/", 200), 4)
        # memfill's own writes to the frozen node give up after timeout_ms
        frozen_keys = [f"/frozen-direct/{i}" for i in range(40)
                       if node_of(f"/frozen-direct/{i}") == 1][:4]
        lat = []
        for u in frozen_keys:
            t0 = time.monotonic()
            r = fc.request(nginx_params("GET", u))
            lat.append((time.monotonic() - t0) * 1000)
            check(r.status == 200, f"{u} straight with its node frozen: {r.status}")
        time.sleep(0.5)
        c1 = counters()
    finally:
        os.kill(mc_procs[1].pid, signal.SIGCONT)
    d = {k: c1[k] - c0[k] for k in c1}
    bound = 2 * NGINX_MC_TIMEOUT_MS + 300  # connect + read timeout, then render
    print(f"FIGURE sigstop: node 2 frozen during a 4 s wrk run: {res['requests']} requests "
          f"({res['rps']:.0f}/s), non-2xx {res['non2xx']}, socket errors {res['socket_errors']}, "
          f"avg {res.get('avg_ms')} ms, max latency {res['max_ms']} ms (bound {bound} ms); "
          f"direct requests {', '.join('%.0f' % x for x in lat)} ms; memfill stored "
          f"{d['stored']}, skip_node_trouble {d['skip_node_trouble']}, fail_timeout "
          f"{d['fail_timeout']}, fail_connection {d['fail_connection']}")
    if check(res["requests"] > 20 and res["non2xx"] == 0 and res["socket_errors"] == 0 and
             res["max_ms"] is not None and res["max_ms"] < bound,
             f"frozen node: {res}\n{out}"):
        passed += 1
    check(d["fail_timeout"] + d["fail_connection"] >= len(frozen_keys),
          f"stores to the frozen node not counted as failures: {d}")
    # the client answer does not wait for the store; the store gives up in time
    check(max(lat) < MEMFILL_MC_TIMEOUT_MS * 3 + 300, f"direct answers while frozen: {lat}")
    # after SIGCONT the node takes stores again
    time.sleep(0.5)
    resumed = [f"/resumed/{i}" for i in range(40) if node_of(f"/resumed/{i}") == 1][:3]
    ok = 0
    for u in resumed:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            s, h, b = http(web_port, u)
            if stored_on(1, u.encode(), 0.5):
                ok += 1
                break
    print(f"FIGURE sigstop: after SIGCONT {ok}/{len(resumed)} new pages stored on node 2")
    if check(ok == len(resumed), f"stores did not resume after SIGCONT: {ok}/{len(resumed)}"):
        passed += 1

    # ---------- 3. origin down ----------
    # Let the stores of the requests above land first, so the counter
    # delta below belongs to this step alone.
    c0 = counters()
    end = time.monotonic() + 3
    while time.monotonic() < end:
        time.sleep(0.3)
        c_next = counters()
        if c_next["stored"] == c0["stored"]:
            break
        c0 = c_next
    t0 = time.monotonic()
    s, h, b = http(web_port, "/down/page")
    took = time.monotonic() - t0
    r = fc.request(nginx_params("GET", "/down/other"))
    time.sleep(0.2)
    c1 = counters()
    print(f"FIGURE origin down: {s} through nginx in {took * 1000:.0f} ms, {r.status} straight; "
          f"stored +{c1['stored'] - c0['stored']}")
    if check(s == 502 and r.status == 502 and c1["stored"] == c0["stored"] and
             all(m.get(b"/down/page") is None for m in mcs), f"origin down: {s} {r.status}"):
        passed += 1

    # ---------- 4. origin slow ----------
    c0 = counters()
    t0 = time.monotonic()
    s, h, b = http(web_port, "/slow?ms=3000")
    took = time.monotonic() - t0
    t1 = time.monotonic()
    s2, h2, b2 = http(web_port, "/plain")
    fast = time.monotonic() - t1
    time.sleep(0.2)
    c1 = counters()
    print(f"FIGURE origin slow: /slow?ms=3000 with timeout_ms 500: {s} in {took * 1000:.0f} ms; "
          f"next page {s2} in {fast * 1000:.0f} ms")
    if check(s == 504 and 0.45 < took < 1.5 and mcs[node_of("/slow?ms=3000")].get(
            memc_escape(b"/slow?ms=3000")) is None, f"slow origin: {s} in {took:.2f}s"):
        passed += 1
    check(s2 == 200 and fast < 1.0, f"page after a slow origin: {s2} in {fast:.2f}s")

    # ---------- 5. item larger than memcached's limit ----------
    c0 = counters()
    u = "/big?bytes=2000000"
    s, h, b = http(web_port, u)
    time.sleep(0.3)
    c1 = counters()
    esc = memc_escape(u.encode())
    print(f"FIGURE too large: {len(b)} bytes served with status {s}; skip_size "
          f"+{c1['skip_size'] - c0['skip_size']}, stored +{c1['stored'] - c0['stored']}")
    if check(s == 200 and len(b) == 2000000 and c1["skip_size"] - c0["skip_size"] == 1 and
             all(m.get(esc) is None for m in mcs), f"big page: {s} {len(b)}"):
        passed += 1
    s, h, b = http(web_port, "/big?bytes=1000")
    check(s == 200 and stored_on(node_of("/big?bytes=1000"), b"/big?bytes=1000"),
          "a small page after the big one was not stored")

    last = admin_status(admin_port)
    check(last["abnormal_exits"] == 0, f"workers died: {last['abnormal_exits']}")
    for m in mcs:
        m.close()
finally:
    if FAILURES:
        print(st.log("memfill")[-3000:])
    for p in st.procs:  # never leave a memcached stopped
        try:
            os.kill(p[1].pid, signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass
    st.close()
finish(passed)
