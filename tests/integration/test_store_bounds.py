#!/usr/bin/env python3
"""test_store_bounds.py - a store ends within memcached.timeout_ms, however
the node answers.

Fake memcached nodes (this file run with --serve, as their own processes)
that log every command they receive:
  drip    answers each command as memcached would, one byte every 100 ms
          (so no single read ever waits long, while the reply takes seconds);
          only a `get` miss is answered at once, so that nginx sees a clean
          miss: nginx bounds its own read of a dripping reply (504 after
          memcached_read_timeout) and memfill never stores after a 504
  silent  accepts, reads, never answers (a frozen node whose kernel still
          completes the handshake)

memfill runs with ONE worker and the fake node as its only memcached node;
its state is read from the master's /status.

1. Dripping node, through real nginx (from `memfillctl nginx-conf`), with
   cache.max_item set (so no `stats settings` is asked): the miss is
   answered with the normal page; the worker is idle again within
   2 x timeout_ms of the answer; the store counts as fail_timeout; the drip
   node did receive the `set` (its log) and memfill hung up on it before
   the reply was complete.
2. Dripping node without cache.max_item: the item limit is learned within
   the store's own deadline (`stats settings` received by the node), the
   worker is idle again within 2 x timeout_ms.
3. Silent node: each store costs about one timeout_ms (the store latency
   memfill reports stays under 1.5 x timeout_ms), not two; each counts as
   fail_timeout; the node did receive memfill's command.
4. request_timeout covers the storing state: with timeout_ms (5 s) above
   request_timeout (1 s), the master kills the worker that is still
   storing, logs it and replaces it.
After each: the next visitor gets the normal page, no worker died.
"""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, MEMFILLCTL, Stack, admin_status, check, ctl,  # noqa: E402
                     finish, free_port, http, need)
from fcgi_client import FastCGIClient, nginx_params  # noqa: E402

TOKEN = "store-bounds-token-0123456789"
DRIP_S = 0.1

# What the fake node answers (memcached 1.6's replies; settings shortened).
SETTINGS = (b"STAT maxbytes 67108864\r\nSTAT maxconns 4096\r\nSTAT tcpport 11211\r\n"
            b"STAT evictions on\r\nSTAT growth_factor 1.25\r\nSTAT chunk_size 48\r\n"
            b"STAT num_threads 2\r\nSTAT cas_enabled yes\r\nSTAT tcp_backlog 1024\r\n"
            b"STAT item_size_max 1048576\r\nSTAT idle_timeout 0\r\nEND\r\n")
REPLIES = {"set": b"STORED\r\n", "add": b"STORED\r\n", "append": b"STORED\r\n",
           "get": b"END\r\n", "delete": b"NOT_FOUND\r\n", "version": b"VERSION 1.6.18\r\n"}
STORAGE = ("set", "add", "append", "prepend", "replace", "cas")


def serve_conn(c, mode):
    buf = b""
    try:
        while True:
            while b"\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    print("CLOSED", flush=True)
                    return
                buf += d
            line, _, buf = buf.partition(b"\r\n")
            words = line.split()
            cmd = words[0].decode("ascii", "replace") if words else ""
            if cmd in STORAGE and len(words) >= 5:
                need_bytes = int(words[4]) + 2
                while len(buf) < need_bytes:
                    d = c.recv(65536)
                    if not d:
                        print("CLOSED", flush=True)
                        return
                    buf += d
                buf = buf[need_bytes:]
            print("RECV", line.decode("ascii", "replace"), flush=True)
            if mode == "silent":
                continue
            if cmd == "get":
                c.sendall(b"END\r\n")
                print("REPLIED get", flush=True)
                continue
            if cmd == "stats" and words[1:] == [b"settings"]:
                reply = SETTINGS
            else:
                reply = REPLIES.get(cmd, b"ERROR\r\n")
            for i in range(len(reply)):
                time.sleep(DRIP_S)
                try:
                    c.sendall(reply[i:i + 1])
                except OSError:
                    print(f"HUNG UP after {i} of {len(reply)} bytes of the {cmd} reply",
                          flush=True)
                    return
            print("REPLIED", cmd, flush=True)
    except OSError:
        print("CLOSED", flush=True)
    finally:
        c.close()


def serve(mode, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        print("ACCEPT", flush=True)
        threading.Thread(target=serve_conn, args=(c, mode), daemon=True).start()


if len(sys.argv) == 4 and sys.argv[1] == "--serve":
    serve(sys.argv[2], int(sys.argv[3]))
    sys.exit(0)

for b in ("nginx", MEMFILL, MEMFILLCTL):
    need(b)

passed = 0
st = Stack("store-bounds", deadline=180)


def fake_node(mode):
    port = free_port()
    p = st.spawn(f"{mode}-{port}", [sys.executable, os.path.abspath(__file__), "--serve", mode,
                                    str(port)])
    st.wait_port(p, port=port)
    return port, f"{mode}-{port}"


def node_log(name):
    return st.log(name)


def memfill_with(node_port, timeout_ms, max_item=0, request_timeout=30):
    app_port, admin_port = free_port(), free_port()
    st.write("page.mustache", "<html><body><h1>{{path}}</h1><p>normal page</p></body></html>\n")
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 1,
        "request_timeout": request_timeout,
        "log": {"level": "warn"},
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
        "memcached": {"servers": [f"127.0.0.1:{node_port}"], "connect_timeout_ms": 250,
                      "timeout_ms": timeout_ms},
        "cache": {"ttl": 300},
        "routes": [{"prefix": "/", "handler": "template", "template": "page.mustache"}],
    }
    if max_item:
        cfg["cache"]["max_item"] = max_item
    conf = st.write(f"memfill-{app_port}.json", json.dumps(cfg, indent=1))
    proc = st.memfill(conf, port=app_port)
    return proc, conf, app_port, admin_port


def status(admin_port):
    return admin_status(admin_port, TOKEN)


def idle_after(admin_port, limit_s):
    """Seconds until the worker is idle again, polled every 10 ms (None
    after limit_s), and the states seen on the way."""
    t0 = time.monotonic()
    seen = []
    while time.monotonic() - t0 < limit_s:
        ws = status(admin_port)["workers"]
        states = [w["state"] for w in ws]
        if not seen or seen[-1] != states:
            seen.append(states)
        if ws and all(s == "idle" for s in states):
            return time.monotonic() - t0, seen
        time.sleep(0.01)
    return None, seen


def normal_page(body, path):
    return f"<h1>{path}</h1>".encode() in body and b"normal page" in body


try:
    # ---------- 1. dripping node through nginx, cache.max_item set ----------
    TIMEOUT_MS = 500
    drip_port, drip_log = fake_node("drip")
    mf, conf, app_port, admin_port = memfill_with(drip_port, TIMEOUT_MS, max_item=1048576)
    web_port = free_port()
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    check(t.returncode == 0, f"nginx-conf: {t.stderr!r}")
    ngx = st.nginx(t.stdout.decode(), web_port)
    c0 = status(admin_port)["counters"]
    t0 = time.monotonic()
    s, h, body = http(web_port, "/drip/one")
    answered = time.monotonic() - t0
    idle, seen = idle_after(admin_port, 40)
    c1 = status(admin_port)["counters"]
    time.sleep(DRIP_S * 3)  # the node notices the hang-up at its next byte
    log = node_log(drip_log)
    print(f"FIGURE drip (max_item set): answered {s} in {answered * 1000:.0f} ms through nginx; "
          f"worker idle {idle * 1000 if idle is not None else -1:.0f} ms after the answer "
          f"(timeout_ms {TIMEOUT_MS}); states {seen}; fail_timeout "
          f"+{c1['fail_timeout'] - c0['fail_timeout']}; node: "
          f"{[x for x in log.splitlines() if x.startswith('HUNG UP')][:1]}")
    check(s == 200 and normal_page(body, "/drip/one"), f"drip: the miss got {s} {body[:200]!r}")
    check("RECV set /drip/one 0 " in log, f"the drip node never received the set:\n{log}")
    check("HUNG UP" in log and "REPLIED set" not in log,
          f"memfill did not hang up on the dripping reply:\n{log}")
    check(any("storing" in x for x in seen), f"the worker was never seen storing: {seen}")
    if check(idle is not None and idle <= 2 * TIMEOUT_MS / 1000,
             f"drip: worker idle again after {idle} s, bound {2 * TIMEOUT_MS} ms") and \
            check(c1["fail_timeout"] - c0["fail_timeout"] == 1 and
                  c1["stored"] == c0["stored"], f"drip: counters {c0} -> {c1}"):
        passed += 1
    # the next visitor gets the normal page, the worker is the same process
    pid = status(admin_port)["workers"][0]["pid"]
    s, h, body = http(web_port, "/drip/two")
    idle2, _ = idle_after(admin_port, 40)
    last = status(admin_port)
    if check(s == 200 and normal_page(body, "/drip/two") and idle2 is not None and
             idle2 <= 2 * TIMEOUT_MS / 1000 and last["workers"][0]["pid"] == pid and
             last["abnormal_exits"] == 0 and last["timeouts_killed"] == 0,
             f"drip: next visitor {s} {body[:100]!r}, idle after {idle2}, status {last}"):
        passed += 1
    st.stop(ngx)
    st.stop(mf)

    # ---------- 2. dripping node, item limit from `stats settings` ----------
    mf, conf, app_port, admin_port = memfill_with(drip_port, TIMEOUT_MS)
    fc = FastCGIClient(("127.0.0.1", app_port), timeout=5)
    before = len(node_log(drip_log))
    c0 = status(admin_port)["counters"]
    t0 = time.monotonic()
    r = fc.request(nginx_params("GET", "/drip/settings"))
    answered = time.monotonic() - t0
    idle, seen = idle_after(admin_port, 60)
    c1 = status(admin_port)["counters"]
    log = node_log(drip_log)[before:]
    print(f"FIGURE drip (item limit asked): answered {r.status} in {answered * 1000:.0f} ms; "
          f"worker idle {idle * 1000 if idle is not None else -1:.0f} ms after the answer; "
          f"fail_timeout +{c1['fail_timeout'] - c0['fail_timeout']}")
    check("RECV stats settings" in log, f"the drip node was not asked for its settings:\n{log}")
    if check(r.status == 200 and normal_page(r.body, "/drip/settings") and idle is not None and
             idle <= 2 * TIMEOUT_MS / 1000 and c1["fail_timeout"] - c0["fail_timeout"] == 1,
             f"drip with settings: {r.status}, idle after {idle}, {c0} -> {c1}"):
        passed += 1
    st.stop(mf)

    # ---------- 3. silent node: one timeout per store, not two ----------
    SILENT_MS = 600
    silent_port, silent_log = fake_node("silent")
    mf, conf, app_port, admin_port = memfill_with(silent_port, SILENT_MS)
    fc = FastCGIClient(("127.0.0.1", app_port), timeout=5)
    c0 = status(admin_port)["counters"]
    took = []
    for i in range(3):
        r = fc.request(nginx_params("GET", f"/silent/{i}"))
        check(r.status == 200 and normal_page(r.body, f"/silent/{i}"),
              f"silent: /silent/{i} got {r.status}")
        idle, _ = idle_after(admin_port, 30)
        took.append(idle)
    last = status(admin_port)
    c1 = last["counters"]
    avg_us = last["nodes"][0]["avg_store_us"]
    log = node_log(silent_log)
    print(f"FIGURE silent node: 3 stores, memfill's store latency avg {avg_us / 1000:.0f} ms "
          f"(timeout_ms {SILENT_MS}); worker idle after "
          f"{', '.join('%.0f' % (x * 1000) for x in took if x is not None)} ms; fail_timeout "
          f"+{c1['fail_timeout'] - c0['fail_timeout']}; node log: "
          f"{log.count('ACCEPT')} connections, {log.count('RECV')} commands")
    check(log.count("RECV") >= 3, f"the silent node did not receive memfill's commands:\n{log}")
    if check(c1["fail_timeout"] - c0["fail_timeout"] == 3 and
             SILENT_MS * 1000 * 0.9 <= avg_us <= SILENT_MS * 1000 * 1.5 and
             all(x is not None and x <= 2 * SILENT_MS / 1000 for x in took),
             f"silent: avg store {avg_us} us, idle after {took}, {c0} -> {c1}"):
        passed += 1
    st.stop(mf)

    # ---------- 4. request_timeout covers storing ----------
    mf, conf, app_port, admin_port = memfill_with(silent_port, 5000, request_timeout=1)
    fc = FastCGIClient(("127.0.0.1", app_port), timeout=5)
    pid0 = status(admin_port)["workers"][0]["pid"]
    t0 = time.monotonic()
    r = fc.request(nginx_params("GET", "/silent/killed"))
    answered = time.monotonic() - t0
    killed_after = None
    end = time.monotonic() + 4
    while time.monotonic() < end:
        last = status(admin_port)
        if last["timeouts_killed"] >= 1:
            killed_after = time.monotonic() - t0
            break
        time.sleep(0.02)
    end = time.monotonic() + 4
    while time.monotonic() < end:
        ws = status(admin_port)["workers"]
        if ws and ws[0]["pid"] != pid0 and ws[0]["state"] == "idle":
            break
        time.sleep(0.02)
    r2 = fc.request(nginx_params("GET", "/after/kill"))
    mlog = st.log("memfill")
    print(f"FIGURE request_timeout 1 s, timeout_ms 5000, silent node: answered in "
          f"{answered * 1000:.0f} ms, worker killed while storing "
          f"{killed_after * 1000 if killed_after else -1:.0f} ms after the request began")
    if check(r.status == 200 and killed_after is not None and killed_after < 3.0 and
             "storing" in mlog and r2.status == 200 and normal_page(r2.body, "/after/kill"),
             f"request_timeout while storing: killed after {killed_after}, next {r2.status}\n"
             f"{mlog[-1500:]}"):
        passed += 1
    st.stop(mf)
finally:
    if FAILURES:
        print(st.log("memfill")[-3000:])
    st.close()
finish(passed)
