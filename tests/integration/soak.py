#!/usr/bin/env python3
"""soak.py REQUESTS - a long run through the real stack, watching memory.

Run by scripts/soak.sh (not by `make check`). memcached + memfill (2
workers, never recycled) + nginx from `memfillctl nginx-conf` + origin.py.
wrk sends REQUESTS requests, every one a different URL so every one misses
in memcached and reaches memfill: template pages (80 %), static files
under unique query strings (10 %), origin relays (5 %), 404s (5 %). The
workers' resident memory (VmRSS) is read after a warm-up and again at the
end; with per-request buffers reset between requests it should stay flat.
Prints the figures; exits 1 when a worker grew by more than
SOAK_MAX_GROWTH_KB (default 4096) or any request failed.
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
from harness import admin_status as harness_admin_status  # noqa: E402
from harness import MEMFILL, MEMFILLCTL, Stack, ctl, free_port, need

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "soak-token-0123456789"
requests = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
max_growth_kb = int(os.environ.get("SOAK_MAX_GROWTH_KB", "4096"))
for b in ("nginx", "memcached", "wrk", MEMFILL, MEMFILLCTL):
    need(b)

LUA = r"""
local counter = 0
function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
end
local limit = tonumber(os.getenv("SOAK_PER_THREAD"))
local run = os.getenv("SOAK_RUN")
local n = 0
local answered = 0
function request()
    n = n + 1
    local r = n % 20
    local path
    if r == 0 then
        path = "/files/missing-" .. run .. "-" .. tid .. "-" .. n
    elseif r < 3 then
        path = "/files/hello.html?r=" .. run .. "&t=" .. tid .. "&n=" .. n
    elseif r == 3 then
        path = "/plain?r=" .. run .. "&t=" .. tid .. "&n=" .. n
    else
        path = "/page/" .. run .. "/" .. tid .. "/" .. n .. "?q=caf%C3%A9+" .. n
    end
    return wrk.format("GET", path)
end
function response(status, headers, body)
    answered = answered + 1
    if answered >= limit then
        wrk.thread:stop()
    end
end
"""


def admin_status(port):
    return harness_admin_status(port, TOKEN)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_wrk(port, script, n, admin_port, threads=2, conns=16):
    """wrk sends n requests (each thread stops after n/threads answers).
    wrk itself always waits out its -d duration, so it is stopped with
    SIGINT (it then prints its figures) once memfill's request counter
    shows all n arrived, or when it stops moving for 5 s."""
    run_wrk.runs = getattr(run_wrk, "runs", 0) + 1
    env = dict(os.environ, SOAK_PER_THREAD=str(max(1, n // threads)), SOAK_RUN=str(run_wrk.runs))
    base = admin_status(admin_port)["counters"]["requests"]
    t0 = time.monotonic()
    p = subprocess.Popen(["wrk", f"-t{threads}", f"-c{conns}", "-d3600s", "--timeout", "10s",
                          "-s", script, f"http://127.0.0.1:{port}/"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    last, last_t = -1, time.monotonic()
    while p.poll() is None:
        time.sleep(0.25)
        served = admin_status(admin_port)["counters"]["requests"] - base
        if served != last:
            last, last_t = served, time.monotonic()
        if served >= threads * (n // threads) or time.monotonic() - last_t > 5:
            break
    took = time.monotonic() - t0
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
    out = p.communicate(timeout=60)[0]
    m = re.search(r"(\d+) requests in", out)
    done = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in m.groups()) if m else 0
    return done, non2xx, errors, took, out


st = Stack("soak", deadline=1800)
rc = 0
try:
    mc_port, app_port, web_port = free_port(), free_port(), free_port()
    admin_port, origin_port = free_port(), free_port()
    st.memcached(port=mc_port)
    origin = st.spawn("origin", ["python3", os.path.join(HERE, "origin.py"), str(origin_port)])
    st.wait_port(origin, port=origin_port)
    st.write("site/page.mustache",
             "<html><head><title>{{path}}</title></head><body><h1>{{path}}</h1>"
             "<p>query: {{query}}</p>" + "<p>{{path}} and some filler text</p>" * 20 +
             "</body></html>\n")
    st.write("site/root/files/hello.html", "<p>hello</p>\n" * 50)
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 2,
        "max_requests": 0,
        "log": {"level": "warn"},
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
        "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
        "routes": [
            {"prefix": "/files/", "handler": "static", "root": "site/root"},
            {"regex": "^/plain$", "handler": "upstream",
             "origin": f"http://127.0.0.1:{origin_port}"},
            {"prefix": "/", "handler": "template", "template": "site/page.mustache"},
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg, indent=1))
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    if t.returncode != 0:
        raise RuntimeError(f"nginx-conf: {t.stderr!r}")
    st.nginx(t.stdout.decode(), web_port)
    memfill = st.memfill(conf, port=app_port)
    script = st.write("soak.lua", LUA)

    warm = min(5000, max(1000, requests // 20))
    run_wrk(web_port, script, warm, admin_port)
    time.sleep(0.5)
    s0 = admin_status(admin_port)
    pids = sorted(w["pid"] for w in s0["workers"])
    before = {p: rss_kb(p) for p in pids}
    master_before = rss_kb(memfill.pid)

    done, non2xx, errors, took, out = run_wrk(web_port, script, requests, admin_port)
    time.sleep(0.5)
    s1 = admin_status(admin_port)
    after = {p: rss_kb(p) for p in pids if os.path.exists(f"/proc/{p}")}
    master_after = rss_kb(memfill.pid)
    served = s1["counters"]["requests"] - s0["counters"]["requests"]
    stored = s1["counters"]["stored"] - s0["counters"]["stored"]

    print(f"soak: {done} requests through nginx in {took:.1f} s ({done / took:.0f}/s), "
          f"non-2xx {non2xx} (the 5 % of 404s by design), socket errors {errors}")
    print(f"soak: memfill served {served} of them, stored {stored}; "
          f"restarts {s1['restarts']}, abnormal exits {s1['abnormal_exits']}")
    for p in pids:
        a = after.get(p)
        grow = (a - before[p]) if a is not None else None
        print(f"soak: worker {p}: VmRSS {before[p]} kB after {warm} warm-up requests, "
              f"{a} kB after {done} more ({'+' if grow and grow > 0 else ''}{grow} kB)")
        if a is None or grow > max_growth_kb:
            rc = 1
    print(f"soak: master {memfill.pid}: VmRSS {master_before} kB -> {master_after} kB")
    expected_404 = done // 20
    if errors or abs(non2xx - expected_404) > max(50, done // 1000) or s1["abnormal_exits"]:
        print("soak: FAILED: unexpected errors\n" + out)
        rc = 1
    if sorted(w["pid"] for w in s1["workers"]) != pids:
        print("soak: FAILED: a worker was replaced during the run")
        rc = 1
    print("soak: " + ("ok" if rc == 0 else "FAILED"))
finally:
    st.close(keep=rc != 0)
sys.exit(rc)
