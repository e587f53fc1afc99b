#!/usr/bin/env python3
"""test_admin_guard.py - the admin listener cannot stall the master, and
the admin endpoints are hardened. Real memfill, memcached, nginx (from
`memfillctl nginx-conf`) and origin.py.

Slow clients (the master never waits on a client):
- A (admin.allow = loopback, 1 worker, request_timeout 2 s): 20 clients
  each drip one byte of a status request every 150 ms into admin.listen,
  reconnecting whenever memfill closes them. While they drip: /status
  answers within 2 s (and shows the drip connections open), a SIGKILLed
  worker is reaped (no zombie) and replaced within 2 s, SIGUSR1 reopens
  the moved log within 2 s, and a request running past request_timeout is
  killed at the limit. Every drip connection is closed at the 2 s
  deadline (admin_timeouts); 40 connections at once: 32 held, the rest
  closed at once (admin_overflow).
- B (admin.allow = 10.0.0.0/8, so 127.0.0.1 is not allowed, 2 workers):
  the same drip; every connection is closed at accept without a byte read
  or written, and respawn, SIGUSR1 and request_timeout stay prompt. The
  refusal log lines are rate-limited and account for every refusal.

Hardening:
- `memfill -t` refuses an empty and a 15-byte admin.token (file:line:col),
  warns (still "configuration ok") when a config holding the token is
  readable by others; `--print-config` masks the token.
- a relative unix admin.listen is created in the config's folder, not in
  the working directory.
- PURGE with an empty X-Memfill-Token (through nginx, and as a raw
  FastCGI param) is refused; status with an empty token too.
- 500 refused PURGEs through nginx leave a couple of log lines, and the
  next line after the interval counts exactly the suppressed ones.
"""
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, Memcached, Stack, check, ctl, finish, free_port,
                     http, need)
from harness import admin_get as harness_admin_get  # noqa: E402
from fcgi_client import FastCGIClient, FastCGIError, nginx_params
from proctools import children, wait_until

for b in ("nginx", "memcached", "python3", MEMFILL):
    need(b)

TOKEN = "guard-token-0123456789abcdef"
DRIPPERS = 20
DRIP_S = 0.15
REQUEST_TIMEOUT = 2
REFUSAL_LOG_S = 10  # the rate limit of refusal lines (admin.c, statusd.c)
passed = 0


def admin_get(port, path, token=TOKEN):
    return harness_admin_get(port, path, token)


def admin_status(port):
    s, b = admin_get(port, "/status")
    if s != 200:
        raise RuntimeError(f"status answered {s}")
    return json.loads(b)


class Dripper(threading.Thread):
    """One slow client: connects to the admin listener and sends one byte
    of a never-ending request head every DRIP_S; when memfill closes the
    connection, records how long it lived, waits `pause` and reconnects."""

    def __init__(self, port, stop, pause=0.0):
        super().__init__(daemon=True)
        self.port, self.stop_evt, self.pause = port, stop, pause
        self.connects = 0
        self.lifetimes = []  # seconds each connection lived until memfill closed it
        self.answered = 0    # connections that got bytes back (none expected)
        self.bytes_sent = 0
        self.is_open = False

    def run(self):
        head = b"GET /status HTTP/1.0\r\nX-Memfill-Token: " + b"x" * 4000
        while not self.stop_evt.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            except OSError:
                self.stop_evt.wait(0.05)
                continue
            self.connects += 1
            self.is_open = True
            t0 = time.monotonic()
            i, closed = 0, False
            while not self.stop_evt.is_set():
                r, _, _ = select.select([s], [], [], DRIP_S)
                if r:
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    if data:
                        self.answered += 1
                    closed = True
                    break
                try:
                    s.send(head[i:i + 1])
                    i += 1
                    self.bytes_sent += 1
                except OSError:
                    closed = True
                    break
            self.is_open = False
            if closed:
                self.lifetimes.append(time.monotonic() - t0)
            s.close()
            if self.pause:
                self.stop_evt.wait(self.pause)


class Drip:
    """DRIPPERS drip clients against port, started together."""

    def __init__(self, port, pause=0.0):
        self.stop_evt = threading.Event()
        self.clients = [Dripper(port, self.stop_evt, pause) for _ in range(DRIPPERS)]
        for c in self.clients:
            c.start()

    def open_now(self):
        return sum(c.is_open for c in self.clients)

    def stop(self):
        self.stop_evt.set()
        for c in self.clients:
            c.join(5)

    def connects(self):
        return sum(c.connects for c in self.clients)

    def lifetimes(self):
        return [t for c in self.clients for t in c.lifetimes]

    def answered(self):
        return sum(c.answered for c in self.clients)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def not_a_zombie(pid):
    """True once pid is gone from /proc: dead and reaped by its parent."""
    return not os.path.exists(f"/proc/{pid}")


def refusal_accounting(text, what):
    """(lines, total) for the rate-limited lines containing what: each line
    stands for itself plus the N it says it left out."""
    lines = [l for l in text.splitlines() if what in l]
    total = 0
    for l in lines:
        m = re.search(r"\((\d+) more like this in the last \d+ s\)", l)
        total += 1 + (int(m.group(1)) if m else 0)
    return lines, total


def master_keeps_working(label, master, workers, log_path, app_port, drip, status_port=None):
    """While drip runs: respawn, SIGUSR1 and request_timeout are prompt
    (and status answers within 2 s when status_port is given). Returns the
    figures."""
    global passed
    fig = {}
    time.sleep(0.5)  # every drip client connected and dripping
    if status_port:
        open_before = drip.open_now()
        t0 = time.monotonic()
        try:
            s, b = admin_get(status_port, "/status")
        except OSError as e:
            s, b = str(e), b""
        took = time.monotonic() - t0
        doc = json.loads(b) if s == 200 else {}
        fig["status_ms"] = took * 1000
        if check(s == 200 and took < 2.0, f"{label}: status under drip: {s} in {took:.2f} s"):
            passed += 1
        # the drip connections are really held open by memfill right now
        check(open_before >= DRIPPERS - 2 and doc.get("admin_open", 0) >= DRIPPERS - 2,
              f"{label}: drip connections open: client side {open_before}, "
              f"memfill side {doc.get('admin_open')}")
        fig["admin_open"] = doc.get("admin_open")

    # a worker SIGKILLed: reaped and replaced within 2 s
    pids = children(master.pid)
    check(len(pids) == workers, f"{label}: workers before the kill: {pids}")
    victim = pids[0]
    open_at_kill = drip.open_now()
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)

    def replaced():
        now = children(master.pid)
        return victim not in now and len(now) == workers and not_a_zombie(victim)
    took = wait_until(replaced, 2.0, step=0.01)
    fig["respawn_ms"] = took * 1000 if took is not None else None
    if check(took is not None, f"{label}: killed worker {victim} not reaped and replaced "
                               f"within 2 s under drip ({children(master.pid)})"):
        passed += 1
    if label == "not-allowed":
        check(drip.connects() > DRIPPERS, f"{label}: drip clients did not keep reconnecting")
    else:
        check(open_at_kill >= DRIPPERS - 2, f"{label}: only {open_at_kill} drip connections "
                                            "open at the kill")
    if status_port and took is not None:
        doc = admin_status(status_port)
        now_pids = {w["pid"] for w in doc["workers"]}
        check(victim not in now_pids and now_pids == set(children(master.pid)),
              f"{label}: status workers {now_pids} vs {children(master.pid)}")

    # SIGUSR1: the moved log is reopened promptly
    os.rename(log_path, log_path + ".1")
    t0 = time.monotonic()
    os.kill(master.pid, signal.SIGUSR1)
    took = wait_until(lambda: "log reopened" in read(log_path), 2.0, step=0.01)
    fig["reopen_ms"] = took * 1000 if took is not None else None
    if check(took is not None, f"{label}: SIGUSR1 not handled within 2 s under drip"):
        passed += 1

    # request_timeout: a request running past it is killed at the limit
    t0 = time.monotonic()
    outcome = None
    try:
        r = FastCGIClient(("127.0.0.1", app_port), timeout=15).request(
            nginx_params("GET", "/slow?ms=8000"))
        outcome = f"answered {r.status}"
    except (FastCGIError, OSError) as e:
        outcome = f"closed ({e})"
    took = time.monotonic() - t0
    fig["timeout_kill_ms"] = took * 1000
    killed = wait_until(lambda: 'killed: request "/slow?ms=8000"' in read(log_path), 2.0)
    if check(outcome.startswith("closed") and REQUEST_TIMEOUT <= took < REQUEST_TIMEOUT + 1.5
             and killed is not None,
             f"{label}: request_timeout under drip: {outcome} after {took:.2f} s "
             f"(limit {REQUEST_TIMEOUT} s)"):
        passed += 1
    check(wait_until(lambda: len(children(master.pid)) == workers, 2.0) is not None,
          f"{label}: worker killed by request_timeout not replaced")
    return fig


st = Stack("admin-guard", deadline=200)
try:
    mc_port, origin_port = free_port(), free_port()
    app_a, web_a, admin_a = free_port(), free_port(), free_port()
    app_b, admin_b = free_port(), free_port()
    st.memcached(port=mc_port)
    mc = Memcached(port=mc_port)
    st.origin(origin_port)
    st.write("page.mustache", "<p>{{path}}</p>\n")

    def config(app_port, admin_listen, workers, log_name, allow=None, **extra):
        cfg = {
            "listen": f"127.0.0.1:{app_port}",
            "workers": workers,
            "request_timeout": REQUEST_TIMEOUT,
            "log": {"file": log_name},
            "admin": {"listen": admin_listen, "token": TOKEN},
            "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
            "routes": [
                {"prefix": "/slow", "handler": "upstream",
                 "origin": f"http://127.0.0.1:{origin_port}", "timeout_ms": 20000},
                {"prefix": "/", "handler": "template", "template": st.path("page.mustache")},
            ],
        }
        if allow:
            cfg["admin"]["allow"] = allow
        cfg.update(extra)
        return cfg

    def write_conf(name, cfg, mode=0o600):
        p = st.write(name, json.dumps(cfg, indent=1))
        os.chmod(p, mode)
        return p

    # ---------- memfill -t, --print-config ----------
    for name, token, length in (("empty", "", 0), ("short", "0123456789abcde", 15)):
        cfg = config(app_a, f"127.0.0.1:{admin_a}", 1, "x.log")
        cfg["admin"]["token"] = token
        p = write_conf(f"t-{name}.json", cfg)
        lines = open(p).read().splitlines()
        ln = next(i + 1 for i, l in enumerate(lines) if '"token"' in l)
        col = lines[ln - 1].index(json.dumps(token), lines[ln - 1].index('"token"') + 8) + 1
        t = subprocess.run([MEMFILL, "-t", "-c", p], capture_output=True, text=True)
        if check(t.returncode == 78 and t.stderr.startswith(
                f"{p}:{ln}:{col}: admin.token: expected at least 16 bytes"),
                f"-t with a {length}-byte token: {t.returncode} {t.stderr!r}"):
            passed += 1
    conf_a = write_conf("a.json", config(app_a, f"127.0.0.1:{admin_a}", 1, "a.log"))
    t = subprocess.run([MEMFILL, "-t", "-c", conf_a], capture_output=True, text=True)
    check(t.returncode == 0 and t.stdout == "configuration ok\n" and "warning" not in t.stderr,
          f"-t, mode 0600: {t.returncode} {t.stdout!r} {t.stderr!r}")
    os.chmod(conf_a, 0o644)
    t = subprocess.run([MEMFILL, "-t", "-c", conf_a], capture_output=True, text=True)
    if check(t.returncode == 0 and t.stdout == "configuration ok\n"
             and f"{conf_a}: admin.token: warning: the file is readable by others (mode 0644)"
             in t.stderr, f"-t, mode 0644: {t.returncode} {t.stdout!r} {t.stderr!r}"):
        passed += 1
    os.chmod(conf_a, 0o640)
    t = subprocess.run([MEMFILL, "-t", "-c", conf_a], capture_output=True, text=True)
    check(t.returncode == 0 and "readable by its group (mode 0640)" in t.stderr,
          f"-t, mode 0640: {t.stderr!r}")
    os.chmod(conf_a, 0o600)
    t = subprocess.run([MEMFILL, "--print-config", "-c", conf_a], capture_output=True, text=True)
    if check(t.returncode == 0 and TOKEN not in t.stdout
             and "admin.token = (set, not shown)\n" in t.stdout
             and f"admin.listen = 127.0.0.1:{admin_a}\n" in t.stdout,
             f"--print-config: {t.returncode} token shown or missing: {t.stdout[-400:]!r}"):
        passed += 1

    # ---------- a relative unix admin.listen lives in the config's folder ----------
    os.makedirs(st.path("conf-c"))
    os.makedirs(st.path("elsewhere"))
    app_c = free_port()
    conf_c = st.write("conf-c/c.json", json.dumps(config(app_c, "unix:admin.sock", 1, "c.log")))
    os.chmod(conf_c, 0o600)
    pc = st.spawn("memfill-c", [MEMFILL, "-c", conf_c], cwd=st.path("elsewhere"))
    st.wait_port(pc, port=app_c)
    sock_c = st.path("conf-c", "admin.sock")
    found = wait_until(lambda: os.path.exists(sock_c), 5.0)
    check(found is not None and not os.path.exists(st.path("elsewhere", "admin.sock")),
          f"relative admin.listen: {os.listdir(st.path('conf-c'))} / "
          f"{os.listdir(st.path('elsewhere'))}")
    got = b""
    if found is not None:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(sock_c)
        s.sendall(f"GET /status HTTP/1.0\r\nX-Memfill-Token: {TOKEN}\r\n\r\n".encode())
        while True:
            c = s.recv(65536)
            if not c:
                break
            got += c
        s.close()
    if check(got.startswith(b"HTTP/1.0 200") and b'"master_pid":%d' % pc.pid in got,
             f"status over the relative unix socket: {got[:200]!r}"):
        passed += 1
    st.stop(pc)

    # ---------- A: allowed drip, with nginx in front for PURGE ----------
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_a}", config=conf_a)
    check(t.returncode == 0, f"nginx-conf: {t.stderr!r}")
    st.nginx(t.stdout.decode(), web_a)
    ma = st.memfill(conf_a, port=app_a)
    log_a = st.path("a.log")
    conf_b = write_conf("b.json", config(app_b, f"127.0.0.1:{admin_b}", 2, "b.log",
                                         allow=["10.0.0.0/8"]), mode=0o644)
    mb = st.memfill(conf_b, port=app_b)
    log_b = st.path("b.log")
    check("admin.token: warning: the file is readable by others" in read(log_b),
          "start-up with a world-readable config: no warning in the log")
    check("warning" not in read(log_a), "start-up with a 0600 config: a warning")

    # ---------- PURGE with an empty token, and the refusal log limit ----------
    check(http(web_a, "/p/page")[0] == 200 and mc.wait(b"/p/page") is not None,
          "page not stored")
    s, h, b = http(web_a, "/p/page", method="PURGE", headers={"X-Memfill-Token": ""})
    refused_log = wait_until(lambda: "PURGE refused for /p/page from 127.0.0.1" in read(log_a),
                             2.0)
    if check(s == 403 and mc.get(b"/p/page") is not None and refused_log is not None,
             f"PURGE with an empty token through nginx: {s} {b!r}"):
        passed += 1
    r = FastCGIClient(("127.0.0.1", app_a)).request(
        nginx_params("PURGE", "/p/page", headers={"X-Memfill-Token": ""},
                     extra={"MEMC_KEY": "/p/page"}))
    check(r.status == 403 and mc.get(b"/p/page") is not None,
          f"PURGE with an empty HTTP_X_MEMFILL_TOKEN param: {r.status}")
    # the token sent twice (a wrong one first or last, or the right one
    # twice) is refused: which copy a proxy in front checked is unknowable
    for pair in ((b"nope", TOKEN.encode()), (TOKEN.encode(), b"nope"),
                 (TOKEN.encode(), TOKEN.encode())):
        sock = socket.create_connection(("127.0.0.1", web_a), timeout=5)
        sock.sendall(b"PURGE /p/page HTTP/1.0\r\nHost: a\r\nX-Memfill-Token: " + pair[0] +
                     b"\r\nX-Memfill-Token: " + pair[1] + b"\r\n\r\n")
        got = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        sock.close()
        check(got.startswith(b"HTTP/1.1 403") and mc.get(b"/p/page") is not None,
              f"PURGE with two X-Memfill-Token headers {pair!r}: {got[:40]!r}")
    s, h, b = http(web_a, "/p/page", method="PURGE", headers={"X-Memfill-Token": TOKEN})
    check(s == 200 and mc.get(b"/p/page") is None, f"PURGE with the token: {s} {b!r}")
    # status with an empty token header
    sock = socket.create_connection(("127.0.0.1", admin_a), timeout=5)
    sock.sendall(b"GET /status HTTP/1.0\r\nX-Memfill-Token: \r\n\r\n")
    got = sock.recv(4096)
    sock.close()
    check(got.startswith(b"HTTP/1.0 403"), f"status with an empty token: {got[:40]!r}")

    t_burst = time.monotonic()
    sent = 5  # the refused above: nginx and raw FastCGI empty tokens, three doubled tokens
    statuses = set()
    for i in range(500):
        tok = "" if i % 2 else "wrong-token-0123456789"
        statuses.add(http(web_a, f"/p/{i}", method="PURGE", headers={"X-Memfill-Token": tok})[0])
        sent += 1
    burst_s = time.monotonic() - t_burst
    lines, _ = refusal_accounting(read(log_a), "PURGE refused")
    if check(statuses == {403} and len(lines) <= 2,
             f"500 refused PURGEs in {burst_s:.1f} s: answers {statuses}, "
             f"{len(lines)} log lines"):
        passed += 1

    # ---------- B: not-allowed drip (while A's refusal interval runs out) ----------
    first_b_conn = time.monotonic()
    drip_b = Drip(admin_b, pause=DRIP_S)
    try:
        probe = socket.create_connection(("127.0.0.1", admin_b), timeout=5)
        probe.sendall(f"GET /status HTTP/1.0\r\nX-Memfill-Token: {TOKEN}\r\n\r\n".encode())
        t0 = time.monotonic()
        try:
            got = probe.recv(4096)
        except OSError:
            got = b""
        probe_s = time.monotonic() - t0
        probe.close()
        check(got == b"" and probe_s < 1.0,
              f"not-allowed status request: {got[:40]!r} after {probe_s:.2f} s")
        fig_b = master_keeps_working("not-allowed", mb, 2, log_b, app_b, drip_b)
    finally:
        drip_b.stop()
    drip_b_s = time.monotonic() - first_b_conn
    life_b = drip_b.lifetimes()
    if check(drip_b.connects() >= DRIPPERS * 3 and drip_b.answered() == 0
             and life_b and max(life_b) < 0.5,
             f"not-allowed drip: {drip_b.connects()} connections, {drip_b.answered()} "
             f"answered, longest {max(life_b or [0]):.2f} s"):
        passed += 1

    # ---------- A: the PURGE refusal count comes with the next line ----------
    time.sleep(max(0.0, t_burst + REFUSAL_LOG_S + 0.5 - time.monotonic()))
    http(web_a, "/p/last", method="PURGE", headers={"X-Memfill-Token": "nope"})
    sent += 1
    done = wait_until(lambda: refusal_accounting(read(log_a), "PURGE refused")[1] == sent, 2.0)
    lines, total = refusal_accounting(read(log_a), "PURGE refused")
    if check(done is not None and len(lines) <= 3 and any("more like this" in l for l in lines),
             f"PURGE refusal lines {len(lines)} account for {total} of {sent}: "
             f"{lines[:1] + lines[-1:]}"):
        passed += 1
    print(f"FIGURE {sent} refused PURGEs (500 in {burst_s:.1f} s): {len(lines)} log lines, "
          f"{sum(len(l) + 1 for l in lines)} bytes of log")

    # ---------- A: allowed drip ----------
    before = admin_status(admin_a)
    drip_a = Drip(admin_a)
    try:
        fig_a = master_keeps_working("allowed", ma, 1, log_a, app_a, drip_a, status_port=admin_a)
        time.sleep(2.5)  # every drip connection reaches its deadline at least once
    finally:
        drip_a.stop()
    after = admin_status(admin_a)
    life_a = drip_a.lifetimes()
    timeouts = after.get("admin_timeouts", 0) - before.get("admin_timeouts", 0)
    if check(life_a and min(life_a) >= 1.9 and max(life_a) < 3.0 and drip_a.answered() == 0
             and timeouts >= len(life_a),
             f"allowed drip: {len(life_a)} connections closed, lifetimes "
             f"{min(life_a or [0]):.2f}-{max(life_a or [0]):.2f} s, admin_timeouts +{timeouts}"):
        passed += 1

    # ---------- A: more connections than the cap ----------
    time.sleep(0.3)
    base = admin_status(admin_a)
    socks = [socket.create_connection(("127.0.0.1", admin_a), timeout=5) for _ in range(40)]
    time.sleep(0.5)
    closed_at_once = 0
    for s in socks:
        r, _, _ = select.select([s], [], [], 0)
        if r:
            closed_at_once += 1
    held = wait_until(lambda: all(select.select([s], [], [], 0)[0] for s in socks), 4.0)
    for s in socks:
        s.close()
    time.sleep(0.2)
    doc = admin_status(admin_a)
    over = doc["admin_overflow"] - base["admin_overflow"]
    if check(closed_at_once == 40 - 32 and over == 8 and held is not None
             and doc["admin_timeouts"] - base["admin_timeouts"] >= 32,
             f"cap: {closed_at_once} closed at once, admin_overflow +{over}, "
             f"the rest closed by their deadline: {held is not None}"):
        passed += 1
    s, b = admin_get(admin_a, "/metrics")
    check(s == 200 and b"memfill_admin_connections_total{outcome=\"overflow\"}" in b
          and b"memfill_admin_connections_open " in b, "admin counters missing from /metrics")

    # ---------- B: the status refusal lines account for every connection ----------
    time.sleep(max(0.0, first_b_conn + REFUSAL_LOG_S + 0.5 - time.monotonic()))
    socket.create_connection(("127.0.0.1", admin_b), timeout=5).close()
    conns_b = drip_b.connects() + 2  # the drips, the probe, the one just now
    def log_b_all():  # SIGUSR1 above moved the first part to b.log.1
        return read(log_b + ".1") + read(log_b)
    done = wait_until(lambda: refusal_accounting(
        log_b_all(), "status connection refused from 127.0.0.1")[1] == conns_b, 2.0)
    lines, total = refusal_accounting(log_b_all(), "status connection refused from 127.0.0.1")
    if check(done is not None and len(lines) <= 3,
             f"status refusal lines {len(lines)} account for {total} of {conns_b}: "
             f"{lines[:1] + lines[-1:]}"):
        passed += 1

    print(f"FIGURE {DRIPPERS} allowed drip clients: status in {fig_a.get('status_ms', 0):.0f} ms "
          f"(admin_open {fig_a.get('admin_open')}), killed worker replaced in "
          f"{fig_a.get('respawn_ms') or -1:.0f} ms, SIGUSR1 reopen in "
          f"{fig_a.get('reopen_ms') or -1:.0f} ms, request_timeout {REQUEST_TIMEOUT} s kill "
          f"after {fig_a.get('timeout_kill_ms', 0):.0f} ms")
    print(f"FIGURE {DRIPPERS} not-allowed drip clients ({conns_b} connections refused, "
          f"{drip_b.connects()} of them in {drip_b_s:.1f} s of drip): killed "
          f"worker replaced in {fig_b.get('respawn_ms') or -1:.0f} ms, SIGUSR1 reopen in "
          f"{fig_b.get('reopen_ms') or -1:.0f} ms, request_timeout {REQUEST_TIMEOUT} s kill "
          f"after {fig_b.get('timeout_kill_ms', 0):.0f} ms")
    mc.close()
finally:
    if FAILURES:
        print(read(st.path("a.log"))[-3000:])
        print(read(st.path("b.log"))[-2000:])
    st.close()
finish(passed)
