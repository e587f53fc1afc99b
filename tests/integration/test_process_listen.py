#!/usr/bin/env python3
"""test_process_listen.py - sockets, start-up, logging and request hygiene.

Four memfill instances behind one nginx, each reached the way production
reaches it:
  A  "listen": 127.0.0.1:port, pid_file, log.file with log.access, small
     max_body/max_params; nginx in front as `memfillctl nginx-conf` says;
  B  "listen": unix:/path with listen_mode 0660 (and, when the test runs as
     root, "user": "nobody" / "group": "nogroup"), log.level warn;
  C  "listen": [::1]:port (skipped, alone, when ::1 is not configured);
  D  under spawn-fcgi -n (socket on fd 0), reloaded with SIGHUP.
Checks: memfill -t exit codes (0; 78 with file:line:col), pid_file,
socket mode and removal, the privilege drop, 413/400 for oversized bodies
and params, a page still stored when the client went away, the access-log
line (format, store decision, escaping) and SIGUSR1 log reopening.
"""
import grp
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MEMFILL, Memcached, Stack, check, ctl, finish, free_port, http, need  # noqa
from proctools import (CHAOS, LogMark, alive, base_config, children, page_pid,  # noqa: E402
                       start_memfill, wait_until, write_config)

for b in ("nginx", "memcached", "spawn-fcgi", MEMFILL, CHAOS):
    need(b)

st = Stack("process-listen", deadline=120)
passed = 0
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\d+) ([MW]) "
                  r"(error|warn|info|debug|access): (.*)$")


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1
    return cond


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def fcgi_location(port, target):
    return f"""
server {{
    listen 127.0.0.1:{port};
    location / {{
        include /etc/nginx/fastcgi_params;
        fastcgi_pass {target};
    }}
}}
"""


try:
    mc_port = free_port()
    st.memcached(port=mc_port)

    # ---- memfill -t: exit codes and positions
    good = write_config(st, base_config(st, mc_port, free_port()), "t-good.json")
    t = subprocess.run([MEMFILL, "-t", "-c", good], capture_output=True, text=True)
    ok(t.returncode == 0 and "configuration ok" in t.stdout, f"-t good: {t.returncode} {t!r}")
    bad_json = st.write("t-bad.json", '{\n  "workers": 2\n  "listen": "127.0.0.1:9000"\n}\n')
    t = subprocess.run([MEMFILL, "-t", "-c", bad_json], capture_output=True, text=True)
    ok(t.returncode == 78 and re.match(rf"{re.escape(bad_json)}:3:\d+: ", t.stderr),
       f"-t syntax error: {t.returncode} {t.stderr!r}")
    cfg = base_config(st, mc_port)
    cfg["listen"] = "nowhere"
    bad_listen = write_config(st, cfg, "t-listen.json")
    lines = open(bad_listen).read().splitlines()
    ln = next(i + 1 for i, l in enumerate(lines) if '"nowhere"' in l)
    col = lines[ln - 1].index('"nowhere"') + 1
    t = subprocess.run([MEMFILL, "-t", "-c", bad_listen], capture_output=True, text=True)
    ok(t.returncode == 78 and t.stderr.startswith(f"{bad_listen}:{ln}:{col}: listen: "),
       f"-t bad listen (want :{ln}:{col}): {t.returncode} {t.stderr!r}")
    t = subprocess.run([MEMFILL], capture_output=True, text=True)
    ok(t.returncode == 64, f"no -c: exit {t.returncode}")

    # ---- the four instances
    port_a, port_c, port_d = free_port(), free_port(), free_port()
    web_a, web_b, web_c, web_d = free_port(), free_port(), free_port(), free_port()
    root = os.geteuid() == 0
    rundir = st.path("run")
    os.makedirs(rundir)
    if root:
        os.chown(rundir, pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
    sock = os.path.join(rundir, "memfill.sock")
    pid_file = st.path("memfill.pid")
    log_a = st.path("logs", "a.log")
    os.makedirs(st.path("logs"))
    cfg_a = base_config(st, mc_port, port_a, max_body=2048, max_params=4096, pid_file=pid_file,
                        log={"file": log_a, "access": True})
    cfg_a["routes"].insert(0, {"prefix": "/post/", "handler": "plugin", "plugin": CHAOS,
                               "cache": False, "methods": ["GET", "POST"]})
    conf_a = write_config(st, cfg_a, "a.json")
    log_b = os.path.join(rundir, "b.log")
    cfg_b = base_config(st, mc_port, listen=f"unix:{sock}", listen_mode="0660",
                        log={"file": log_b, "level": "warn", "access": True})
    if root:
        cfg_b.update(user="nobody", group="nogroup")
    conf_b = write_config(st, cfg_b, "b.json")
    v6 = have_ipv6_loopback()
    conf_c = write_config(st, base_config(st, mc_port, listen=f"[::1]:{port_c}"), "c.json")
    conf_d = write_config(st, base_config(st, mc_port, text="d1"), "d.json")

    ma = start_memfill(st, conf_a, port=port_a)
    mb = start_memfill(st, conf_b, unix=sock)
    mc_ = None
    if v6:
        mc_ = st.spawn("memfill", [MEMFILL, "-c", conf_c])
    md = st.memfill_spawnfcgi(conf_d, port_d)

    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_a}", "--fastcgi", f"127.0.0.1:{port_a}",
            config=conf_a)
    body = t.stdout.decode() + fcgi_location(web_b, f"unix:{sock}") + \
        fcgi_location(web_d, f"127.0.0.1:{port_d}")
    if v6:
        body += fcgi_location(web_c, f"[::1]:{port_c}")
    st.nginx(body, web_a)

    # A: pid_file names the master
    ok(wait_until(lambda: os.path.exists(pid_file), 2) is not None, "no pid_file")
    ok(open(pid_file).read().strip() == str(ma.pid), f"pid_file: {open(pid_file).read()!r}")
    s, pid, b = page_pid(web_a, "/chaos/a")
    ok(s == 200 and pid in children(ma.pid), f"A page: {s} {b!r}")

    # B: unix socket, mode 0660, workers dropped to nobody
    s, pid, b = page_pid(web_b, "/chaos/b")
    ok(s == 200 and pid in children(mb.pid), f"B (unix socket) page: {s} {b!r}")
    mode = os.stat(sock).st_mode & 0o7777
    ok(mode == 0o660, f"socket mode {oct(mode)}")
    if root:
        nobody = pwd.getpwnam("nobody").pw_uid
        for p in [mb.pid] + children(mb.pid):
            uids = open(f"/proc/{p}/status").read().split("Uid:")[1].split("\n")[0].split()
            ok(set(int(u) for u in uids) == {nobody}, f"pid {p} uids {uids}")
        with open(log_b) as f:
            blog = f.read()
        ok("running as root" not in blog, "warned about root although user is set")
    # log.level warn keeps info lines out, access lines still come
    bm = LogMark(log_b)
    bm.off = 0
    ok(bm.wait_for(r" W access: GET /chaos/b 200 ") is not None, f"B access line: {bm.text()!r}")
    ok(not re.search(r" [MW] info: ", bm.text()), f"info lines at level warn: {bm.text()!r}")

    # C: IPv6 loopback
    if v6:
        got = None
        for _ in range(100):
            s, pid, b = page_pid(web_c, "/chaos/c")
            if s == 200:
                got = (s, pid)
                break
            time.sleep(0.05)
        ok(got is not None and got[1] in children(mc_.pid), f"C ([::1]) page: {got}")
    else:
        print("SKIP: [::1] is not configured here; the IPv6 listen case is skipped")

    # D: spawn-fcgi -n execs memfill: its pid is the master; SIGHUP reloads
    ok(os.path.realpath(f"/proc/{md.pid}/exe") == os.path.realpath(MEMFILL),
       "spawn-fcgi -n did not exec memfill")
    s, pid, b = page_pid(web_d, "/chaos/d")
    ok(s == 200 and b"text=d1" in b and pid in children(md.pid), f"D page: {s} {b!r}")
    write_config(st, base_config(st, mc_port, text="d2"), "d.json")
    os.kill(md.pid, signal.SIGHUP)
    ok(wait_until(lambda: b"text=d2" in page_pid(web_d, "/chaos/d2")[2], 3) is not None,
       "reload under spawn-fcgi")

    # ---- request hygiene on A
    s, h, b = http(web_a, "/post/x", method="POST", body=b"y" * 1000)
    ok(s == 200, f"POST 1000 bytes: {s}")
    s, h, b = http(web_a, "/post/x", method="POST", body=b"y" * 5000)
    ok(s == 413, f"POST over max_body: {s}")
    s, h, b = http(web_a, "/chaos/big", headers={"X-Big": "z" * 5000})
    ok(s == 400, f"params over max_params: {s}")
    s, pid, b = page_pid(web_a, "/chaos/after-refusals")
    ok(s == 200, f"after refusals: {s}")

    # the client goes away before the answer: the page is stored all the same
    mc = Memcached(port=mc_port)
    c = socket.create_connection(("127.0.0.1", web_a))
    c.sendall(b"GET /store/gone?sleep_ms=400 HTTP/1.0\r\nHost: localhost\r\n\r\n")
    time.sleep(0.1)
    c.close()
    item = mc.wait(b"/store/gone?sleep_ms=400", timeout=3)
    ok(item is not None and b"chaos pid=" in item[0], f"page of a vanished client: {item!r}")

    # ---- the access log and escaping on A
    am = LogMark(log_a)
    am.off = 0
    http(web_a, b'/chaos/esc\xff"q?x=1')
    m = am.wait_for(r'^.* W access: GET /chaos/esc\\xff\\"q\?x=1 200 (\d+) (\d+)ms skip_rule$')
    ok(m is not None, f"escaped access line: {am.text()[-800:]!r}")
    ok(b"\xff" not in open(log_a, "rb").read(), "a raw byte reached the log")
    ok(am.wait_for(r" W access: GET /store/gone\?sleep_ms=400 200 \d+ \d+ms stored") is not None,
       "access line of the stored page")
    ok(am.wait_for(r" W access: POST /post/x 413 ") is not None, "access line of the 413")
    bad_lines = [l for l in open(log_a).read().splitlines() if not LINE.match(l)]
    ok(not bad_lines, f"lines not in the log format: {bad_lines[:3]}")
    roles = set(m.group(2) for m in map(LINE.match, open(log_a).read().splitlines()) if m)
    ok(roles == {"M", "W"}, f"roles in the log: {roles}")

    # ---- SIGUSR1 reopens the log (master and workers)
    os.rename(log_a, log_a + ".1")
    os.kill(ma.pid, signal.SIGUSR1)
    ok(wait_until(lambda: os.path.exists(log_a), 2) is not None, "log not reopened")
    time.sleep(0.2)
    http(web_a, "/chaos/rotated")
    nm = LogMark(log_a)
    nm.off = 0
    ok(nm.wait_for(r" M info: log reopened \(SIGUSR1\)") is not None, "master line after reopen")
    ok(nm.wait_for(r" W access: GET /chaos/rotated 200 ") is not None,
       f"worker line after reopen: {nm.text()!r}")
    ok("/chaos/rotated" not in open(log_a + ".1").read(), "worker wrote to the rotated file")

    # ---- stops: pid_file and socket file removed, exit 0
    for name, p in (("A", ma), ("B", mb), ("D", md)) + ((("C", mc_),) if v6 else ()):
        os.kill(p.pid, signal.SIGTERM)
        ok(p.wait(10) == 0, f"{name} exit code {p.returncode}")
    ok(not os.path.exists(pid_file), "pid_file left behind")
    ok(not os.path.exists(sock), "unix socket file left behind")
except Exception as e:  # noqa: BLE001
    import traceback
    traceback.print_exc()
    check(False, f"exception: {e!r}")
finally:
    st.close()
finish(passed)
