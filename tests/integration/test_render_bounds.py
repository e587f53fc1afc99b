#!/usr/bin/env python3
"""test_render_bounds.py - bounded renders, data files and FastCGI reads.

memcached + memfill (two workers, its own TCP socket, params_timeout_ms
1000) + nginx from `memfillctl nginx-conf` + origin.py. Every attack is
shown to have happened (the log line, the counter, the workers busy with
it) before its harm is ruled out, and a normal visitor gets the normal
page right after:

- Render: four nested sections over a 100-item list (a 1.2 GB page) stop
  at template.max_output (default 4 MiB): 500 with the clear page, the
  route and template:line:col logged, render_too_large counted, nothing
  stored; every worker's peak RSS (VmHWM) stays below 64 MB.
- Data: a 2 MiB data file over template.max_data (1 MiB) and a sparse
  100 MB one are 500 (refused from stat(), the 100 MB one at once), the
  file and the cap logged, data_too_large counted, not stored; data_url
  documents over the cap (with a Content-Length, and chunked) are 502;
  the log line is rate-limited per route and worker. 64 data files of
  ~250 KB (several MB each once parsed: far beyond template.data_cache,
  8 MiB) keep each worker's cache within the budget (its debug lines) and
  its RSS bounded.
- FastCGI: as many idle connections as there are workers, then half-sent
  ones (BEGIN_REQUEST only; half a PARAMS record), then a request dripped
  one byte per 100 ms, then requests whose stdin never ends: each time a
  normal miss through nginx is answered within the params deadline plus a
  margin (not request_timeout, 30 s), the stalled connections read EOF
  (memfill closed them), and params_timeout counts the ones that never
  delivered their params (logged, rate-limited).
- A GET (and a HEAD) with a body, through nginx and straight to memfill
  (fcgi_client), is answered 200 as without it, and stored.
"""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fcgi_client import (FCGI_BEGIN_REQUEST, FCGI_PARAMS, FCGI_RESPONDER, FCGI_STDIN,  # noqa: E402
                         FastCGIClient, encode_params, nginx_params, record, stream)
from harness import (FAILURES, MEMFILL, MEMFILLCTL, Memcached, Stack, admin_status, check,  # noqa: E402
                     ctl, finish, free_port, http, need)
from proctools import LogMark  # noqa: E402

for b in ("nginx", "memcached", MEMFILL, MEMFILLCTL):
    need(b)

TOKEN = "render-bounds-token-0123456789"
WORKERS = 2
PARAMS_MS = 1000
MARGIN_S = 2.0           # on top of the params deadline, for a loaded machine
MAX_DATA = 1 << 20       # template.max_data in this test
CACHE_BUDGET = 8 << 20   # template.data_cache in this test
RSS_BOUND_KB = 64 * 1024
# Under AddressSanitizer freed memory sits in a quarantine and every
# allocation has shadow memory: RSS says nothing about memfill there, so
# the RSS bounds are checked in the normal build only (figures printed in
# both).
with open(MEMFILL, "rb") as _f:
    SANITIZED = b"__asan_init" in _f.read()
passed = 0


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1
    return cond


def figure(what, value):
    print(f"FIGURE: {what}: {value}", flush=True)


class Dripper(threading.Thread):
    """Sends data one byte per interval until it is all sent or the server
    closes the connection."""

    def __init__(self, sock, data, interval=0.1):
        super().__init__(daemon=True)
        self.sock, self.data, self.interval = sock, data, interval
        self.sent = 0
        self.stop = False

    def run(self):
        while not self.stop and self.sent < len(self.data):
            try:
                self.sock.send(self.data[self.sent:self.sent + 1])
            except OSError:
                return
            self.sent += 1
            time.sleep(self.interval)


def proc_kb(pid, field):
    """VmHWM / VmRSS of pid in kB (0 when unreadable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


st = Stack("render-bounds", deadline=240)
try:
    mc_port, app_port, web_port, admin_port, origin_port = (free_port() for _ in range(5))
    st.memcached(port=mc_port)
    mc = Memcached(port=mc_port)
    st.origin(origin_port)
    origin = f"http://127.0.0.1:{origin_port}"

    # ---- the site ----
    st.write("site/nested.mustache",
             "<ul>\n{{#items}}{{#items}}{{#items}}\n"
             "{{#items}}<li>{{.}}</li>{{/items}}{{/items}}{{/items}}{{/items}}</ul>\n")
    st.write("site/data/list100.json", json.dumps({"items": list(range(100))}))
    st.write("site/page.mustache", "<h1>{{title}}</h1>\n{{#items}}<p>{{name}}</p>\n{{/items}}")
    st.write("site/data/normal.json", json.dumps({"title": "normal", "items": [{"name": "a"}]}))

    def records_json(title, approx_bytes):
        items, size, k = [], 0, 0
        while size < approx_bytes:
            it = {"name": f"item-{k}", "n": k, "ok": True, "tags": ["a", "b"]}
            items.append(it)
            size += len(json.dumps(it)) + 2
            k += 1
        return json.dumps({"title": title, "items": items})

    # 2 MiB of valid JSON: over max_data
    st.write("site/big/big.json", records_json("big", 2 << 20))
    # 100 MB that would take a second to read: sparse, never read
    os.makedirs(st.path("site/sparse"), exist_ok=True)
    with open(st.path("site/sparse/huge.json"), "wb") as f:
        f.truncate(100 << 20)
    MANY = 64
    for i in range(MANY):
        st.write(f"site/data/many-{i}.json", records_json(f"many {i}", 250 << 10))

    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": WORKERS,
        "params_timeout_ms": PARAMS_MS,
        "log": {"level": "debug"},
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
        "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
        "cache": {"ttl": 120},
        "template": {"max_data": MAX_DATA, "data_cache": CACHE_BUDGET},
        "routes": [
            {"prefix": "/nested/", "handler": "template", "template": "site/nested.mustache",
             "data": "site/data/list100.json"},
            {"regex": "^/page/(?<name>[a-z0-9-]+)$", "handler": "template",
             "template": "site/page.mustache", "data": "site/data/{name}.json"},
            {"regex": "^/big/(?<name>[a-z0-9-]+)$", "handler": "template",
             "template": "site/page.mustache", "data": "site/big/{name}.json"},
            {"regex": "^/sparse/(?<name>[a-z0-9-]+)$", "handler": "template",
             "template": "site/page.mustache", "data": "site/sparse/{name}.json"},
            {"prefix": "/remote/length", "handler": "template", "template": "site/page.mustache",
             "data_url": origin + "/big?bytes=2097152"},
            {"prefix": "/remote/chunked", "handler": "template",
             "template": "site/page.mustache", "data_url": origin + "/big?bytes=2097152&chunked=1"},
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg, indent=1))
    os.chmod(conf, 0o600)
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    check(t.returncode == 0, f"nginx-conf: {t.stderr!r}")
    st.nginx(t.stdout.decode(), web_port)
    mlog = st.path("memfill.log")
    st.memfill(conf, port=app_port)
    fc = FastCGIClient(("127.0.0.1", app_port), timeout=10)

    # the defaults this test relies on
    printed = subprocess.run([MEMFILL, "--print-config", "-c", conf],
                             capture_output=True).stdout.decode()
    ok("template.max_output = 4194304" in printed and "params_timeout_ms = 1000" in printed
       and "template.data_cache = 8388608" in printed,
       f"--print-config: {printed[-600:]!r}")

    def status():
        return admin_status(admin_port, TOKEN)

    def counters():
        return status()["counters"]

    def worker_pids():
        end = time.monotonic() + 5
        while time.monotonic() < end:
            pids = sorted(w["pid"] for w in status()["workers"])
            if len(pids) == WORKERS:
                return pids
            time.sleep(0.05)
        return []

    def peak_kb(pids):
        return max(proc_kb(p, "VmHWM") for p in pids)

    def not_stored(key):
        return mc.wait(key.encode(), 0.3) is None

    normal_n = [0]

    def normal_visitor(what):
        """A normal miss through nginx: 200, the normal page, stored."""
        normal_n[0] += 1
        u = f"/page/normal?n={normal_n[0]}"
        t0 = time.monotonic()
        try:
            s, h, b = http(web_port, u, timeout=40)
        except OSError as e:
            s, b = None, repr(e).encode()
        took = time.monotonic() - t0
        good = s == 200 and b.startswith(b"<h1>normal</h1>")
        check(good, f"after {what}: normal visitor got {s} {b[:120]!r}")
        check(not good or mc.wait(u.encode(), 2.0) is not None,
              f"after {what}: the normal page was not stored")
        return good, took

    pids = worker_pids()
    check(len(pids) == WORKERS, f"workers: {pids}")
    ok(normal_visitor("start")[0], "a normal page at the start")
    hwm_start = peak_kb(pids)
    figure("worker peak RSS at start", f"{hwm_start} kB")

    # ================= render: nested sections over a 100-item list =================
    c0 = counters()
    mark = LogMark(mlog)
    t0 = time.monotonic()
    s, h, b = http(web_port, "/nested/x", timeout=60)
    took = time.monotonic() - t0
    figure("nested sections over a 100-item list (1.2 GB uncapped): answered",
           f"{s} after {took:.2f} s")
    ok(s == 500 and b"too large to be rendered" in b, f"nested render: {s} {b[:200]!r}")
    m = mark.wait_for(r"W error: routes\[0\] /nested/x: render stopped at template\.max_output: "
                      r"\S*site/nested\.mustache:3:1: output larger than 4194304 bytes")
    ok(m is not None, f"nested render not logged: {mark.text()[-1500:]}")
    c1 = counters()
    ok(c1["render_too_large"] - c0["render_too_large"] == 1,
       f"render_too_large +{c1['render_too_large'] - c0['render_too_large']}")
    ok(not_stored("/nested/x"), "the nested page was stored")
    hwm = peak_kb(pids)
    figure("worker peak RSS after the nested-section attack", f"{hwm} kB (bound {RSS_BOUND_KB})")
    ok(SANITIZED or 0 < hwm < RSS_BOUND_KB, f"worker peak RSS {hwm} kB")
    ok(normal_visitor("the nested-section attack")[0], "normal page after the nested render")

    # ================= data files and documents over template.max_data =================
    c0 = counters()
    mark = LogMark(mlog)
    s, h, b = http(web_port, "/big/big")
    ok(s == 500 and b"page data is too large" in b, f"2 MiB data file: {s} {b[:200]!r}")
    m = mark.wait_for(r"W error: routes\[2\] /big/big: data \S*site/big/big\.json is \d+ bytes, "
                      r"above template\.max_data \(1048576 bytes\)")
    ok(m is not None, f"big data file not logged: {mark.text()[-1500:]}")
    ok(not_stored("/big/big"), "the big-data page was stored")

    t0 = time.monotonic()
    s, h, b = http(web_port, "/sparse/huge")
    took = time.monotonic() - t0
    figure("a 100 MB data file: refused", f"{s} after {took * 1000:.0f} ms")
    ok(s == 500 and b"page data is too large" in b and took < 2.0,
       f"100 MB data file: {s} after {took:.2f}s")
    m = mark.wait_for(r"routes\[3\] /sparse/huge: data \S*site/sparse/huge\.json is 104857600 "
                      r"bytes, above template\.max_data \(1048576 bytes\)")
    ok(m is not None, f"100 MB data file not logged: {mark.text()[-1500:]}")
    ok(not_stored("/sparse/huge"), "the sparse-data page was stored")

    for path in ("/remote/length", "/remote/chunked"):
        s, h, b = http(web_port, path)
        ok(s == 502 and b"page data is too large" in b, f"data_url {path}: {s} {b[:200]!r}")
        m = mark.wait_for(r"routes\[\d\] " + re.escape(path) + r": data_url \S+/big\?bytes="
                          r"2097152\S*: the document is larger than template\.max_data "
                          r"\(1048576 bytes\)")
        ok(m is not None, f"data_url {path} not logged: {mark.text()[-1500:]}")
        ok(not_stored(path), f"{path} was stored")
    c1 = counters()
    ok(c1["data_too_large"] - c0["data_too_large"] == 4,
       f"data_too_large +{c1['data_too_large'] - c0['data_too_large']} for 4 refusals")

    # the log line is rate-limited per route and worker: 6 more, at most one line each
    mark = LogMark(mlog)
    for i in range(6):
        s, _, _ = http(web_port, f"/big/big?again={i}")
        check(s == 500, f"big data again: {s}")
    time.sleep(0.3)
    lines = len(re.findall(r"routes\[2\] /big/big: data", mark.text()))
    c2 = counters()
    ok(lines <= WORKERS and c2["data_too_large"] - c1["data_too_large"] == 6,
       f"6 refusals: {lines} log lines, +{c2['data_too_large'] - c1['data_too_large']} counted")
    ok(normal_visitor("oversized data")[0], "normal page after oversized data")

    # ================= many data files, far beyond template.data_cache =================
    mark = LogMark(mlog)
    for i in range(MANY):
        s, _, b = http(web_port, f"/page/many-{i}")
        check(s == 200 and b.startswith(f"<h1>many {i}</h1>".encode()), f"many-{i}: {s}")
    text = mark.text()
    held = [(int(a), int(u), int(bud)) for a, u, bud in re.findall(
        r"the data cache holds (\d+) files, (\d+) of (\d+) bytes", text)]
    costs = [int(c) for c in re.findall(r"many-\d+\.json: \d+ bytes parsed into about (\d+)", text)]
    figure("a ~250 KB data file parsed", f"about {sum(costs) // max(len(costs), 1)} bytes each")
    ok(len(held) == MANY and all(u <= bud == CACHE_BUDGET for _, u, bud in held),
       f"cache over its budget: {held[:8]}")
    ok(sum(costs) > 4 * WORKERS * CACHE_BUDGET,
       f"the files were not beyond the budget: {sum(costs)} bytes parsed in all")
    ok(0 < max(n for n, _, _ in held) < MANY // WORKERS, f"files held: {[n for n, _, _ in held]}")
    hwm = peak_kb(pids)
    rss = max(proc_kb(p, "VmRSS") for p in pids)
    figure(f"{MANY} data files (~{sum(costs) >> 20} MB parsed): worker peak RSS, RSS now",
           f"{hwm} kB, {rss} kB (bound {RSS_BOUND_KB})")
    ok(SANITIZED or 0 < hwm < RSS_BOUND_KB, f"worker peak RSS {hwm} kB after many data files")
    ok(normal_visitor("many data files")[0], "normal page after many data files")

    # ================= FastCGI: stalled connections =================
    def begin():
        return record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", FCGI_RESPONDER, 0))

    full = begin() + stream(FCGI_PARAMS, encode_params(nginx_params("GET", "/page/normal?raw=1")))
    half_params = encode_params(nginx_params("GET", "/page/normal?half=1"))
    rounds = [
        ("idle connections", [b""] * WORKERS, True),
        ("half-sent connections (BEGIN_REQUEST only; half a PARAMS record)",
         [begin(), begin() + struct.pack(">BBHHBB", 1, FCGI_PARAMS, 1, len(half_params), 0, 0)
          + half_params[:len(half_params) // 2]], True),
        ("a request dripped one byte per 100 ms, and an idle connection", ["drip", b""], True),
        ("requests whose stdin never ends", [full] * WORKERS, False),
    ]
    first_round = True
    for what, payloads, counted in rounds:
        c0 = counters()
        mark = LogMark(mlog)
        socks, drippers = [], []
        opened = time.monotonic()
        for p in payloads:
            s = socket.create_connection(("127.0.0.1", app_port), timeout=10)
            if p == "drip":
                drippers.append(Dripper(s, full))
                drippers[-1].start()
            elif p:
                s.sendall(p)
            socks.append(s)
        # the attack reached memfill: every worker is busy with one of these
        # connections (a complete request may be answered already)
        busy = 0
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            busy = sum(1 for w in status()["workers"] if w["state"] == "busy" and not w["uri"])
            if busy == WORKERS:
                break
            time.sleep(0.05)
        check(busy == WORKERS or not counted, f"{what}: only {busy} workers busy with them")
        # a normal miss meanwhile (the drip goes on: a byte per 100 ms)
        good, took = normal_visitor(what)
        figure(f"normal miss through nginx while these are open: {what}", f"{took:.2f} s")
        ok(good and took < PARAMS_MS / 1000 + MARGIN_S,
           f"{what}: normal miss took {took:.2f} s (params deadline {PARAMS_MS} ms)")
        # every stalled connection was closed by memfill: it reads EOF
        closed_at = []
        for s in socks:
            s.settimeout(PARAMS_MS / 1000 + MARGIN_S + 3)
            data, eof = b"", False
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        eof = True
                        break
                    data += chunk
            except (ConnectionResetError, BrokenPipeError):
                eof = True
            except socket.timeout:
                pass
            closed_at.append(time.monotonic() - opened)
            if not counted:
                check(b"Status: 200" in data or b"<h1>normal</h1>" in data,
                      f"{what}: the complete request was not answered: {data[:200]!r}")
            s.close()
            ok(eof, f"{what}: memfill did not close the connection")
        for d in drippers:
            d.stop = True
            d.join(2)
            figure(f"{what}: bytes dripped before memfill closed", f"{d.sent} of {len(full)}")
            ok(0 < d.sent < len(full), f"{what}: dripped {d.sent} of {len(full)} bytes")
        figure(f"{what}: closed by memfill after", ", ".join(f"{x:.2f} s" for x in closed_at))
        ok(max(closed_at) < PARAMS_MS / 1000 + MARGIN_S + 1,
           f"{what}: closed after {closed_at}")
        c1 = counters()
        n = c1["params_timeout"] - c0["params_timeout"]
        if counted:
            ok(n == len(payloads), f"{what}: params_timeout +{n}, expected {len(payloads)}")
        else:
            ok(n == 0, f"{what}: params_timeout +{n} for requests that were complete")
        if first_round:
            lines = re.findall(r"W warn: closed a FastCGI connection from 127\.0\.0\.1:\d+: a "
                               r"complete request did not arrive within params_timeout_ms "
                               r"\(1000 ms\)", mark.text())
            ok(1 <= len(lines) <= WORKERS, f"{what}: {len(lines)} log lines: {mark.text()[-800:]}")
            first_round = False
        ok(normal_visitor(f"{what} (after)")[0], f"normal page after {what}")

    # ================= a GET or HEAD with a body =================
    c0 = counters()
    s, h, b = http(web_port, "/page/normal?getbody=1", body=b"hello=world")
    ok(s == 200 and b.startswith(b"<h1>normal</h1>"), f"GET with a body through nginx: {s} {b[:100]!r}")
    ok(mc.wait(b"/page/normal?getbody=1", 2.0) is not None, "GET with a body: not stored")
    s, h, b = http(web_port, "/page/normal?headbody=1", method="HEAD", body=b"hello=world")
    ok(s == 200 and b == b"", f"HEAD with a body through nginx: {s} {b[:100]!r}")
    r = fc.request(nginx_params("GET", "/page/normal?direct=1", body=b"abcde"), stdin=b"abcde")
    ok(r.status == 200 and r.body.startswith(b"<h1>normal</h1>"), f"GET with a body, direct: {r!r}")
    ok(mc.wait(b"/page/normal?direct=1", 2.0) is not None, "direct GET with a body: not stored")
    # what nginx sends after its memcached module discarded the body
    r = fc.request(nginx_params("GET", "/page/normal?discarded=1", body=b"abcde"), stdin=b"")
    ok(r.status == 200, f"GET with CONTENT_LENGTH and no body: {r!r}")
    ok(mc.wait(b"/page/normal?discarded=1", 2.0) is not None,
       "GET with CONTENT_LENGTH and no body: not stored")
    c1 = counters()
    ok(c1["bad_request"] == c0["bad_request"], "a GET with a body counted as a bad request")

    # ================= the end: same workers, small, no crash =================
    ok(worker_pids() == pids, f"workers changed: {pids} -> {worker_pids()}")
    final = status()
    ok(final["abnormal_exits"] == 0 and final["timeouts_killed"] == 0,
       f"abnormal exits {final['abnormal_exits']}, timeouts killed {final['timeouts_killed']}")
    hwm = peak_kb(pids)
    figure("worker peak RSS at the end", f"{hwm} kB")
    ok(SANITIZED or 0 < hwm < RSS_BOUND_KB, f"worker peak RSS at the end {hwm} kB")
    mc.close()
finally:
    if FAILURES:
        print(st.log("memfill")[-4000:])
    st.close()
finish(passed)
