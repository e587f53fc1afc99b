#!/usr/bin/env python3
"""test_bench.py - scripts/bench.sh still measures what it says it measures.

Runs the benchmark driver in its smallest form (20 connections, 1 s per
scenario, no warm-up) over every scenario, with the memfill built by this
tree, and checks the things a figure rests on, never the figures
themselves (speed is a benchmark question, not a test): each scenario
printed a line with completed requests and no error; memcached saw what
the scenario's name promises (a get hit per request for the hits, a miss
and a set per request for the misses, 90/10 for the mixes); memfill's
status counted every page as stored; the report printed every ratio row
and the worker memory line; and nothing the driver started outlives it
(it stops everything by PID).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MEMFILL, MEMFILLCTL, SRCDIR, check, finish, need  # noqa: E402

for b in ("nginx", "memcached", "spawn-fcgi", "wrk", "cc", "curl", MEMFILL, MEMFILLCTL):
    need(b)

SCENARIOS = ["static", "hit", "fcache", "ref", "ref-store", "srcache", "ref-mixed",
             "mf-miss", "mf-relay", "mf-hit", "mf-mixed"]


def free_base(span=7):
    """A base port with span free ports above it, outside the ephemeral range."""
    for base in range(24100, 31000, 97):
        socks = []
        try:
            for p in range(base, base + span):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SystemExit("FAIL: no free port range")


passed = 0


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1


# The driver's prefix goes under a directory of this test's own, so the
# leftover check below cannot see another benchmark running on the machine.
tmp = tempfile.mkdtemp(prefix="memfill-test-bench-")
os.chmod(tmp, 0o755)  # nginx's workers may run as another user
env = dict(os.environ, MEMFILL=MEMFILL, MEMFILLCTL=MEMFILLCTL, SCENARIOS=" ".join(SCENARIOS),
           CONNS="20", DURATION="1", WARMUP="0", HOT_N="50", MF_WORKERS="2", REF_FORKS="2",
           BASE_PORT=str(free_base()), TMPDIR=tmp)
env.pop("RESULTS", None)
env.pop("KEEP", None)
p = subprocess.Popen(["bash", os.path.join(SRCDIR, "scripts", "bench.sh")], env=env,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
try:
    out, _ = p.communicate(timeout=240)
except subprocess.TimeoutExpired:
    # SIGTERM lets the driver stop what it started (its EXIT trap)
    p.terminate()
    out, _ = p.communicate(timeout=30)
    ok(False, "bench.sh ran for more than 240 s")
out = out.decode("utf-8", "replace")
print(out)
ok(p.returncode == 0, f"bench.sh exit status {p.returncode}")

# scenario conns req/s p50 p99 non2xx sockerr | 6 cpu | us app | hit miss set
row = re.compile(r"^(\S+)\s+20\s+(\d+)\s+\S+\s+\S+\s+(\d+)\s+(\d+) \|.*\| +(\S+) +(\S+) +(\S+)\s*$")
rows = {}
for line in out.splitlines():
    m = row.match(line)
    if m:
        rows[m.group(1)] = m
for s in SCENARIOS:
    m = rows.get(s)
    if not ok(m is not None, f"{s}: no result line"):
        continue
    ok(int(m.group(2)) > 0, f"{s}: no request completed: {m.group(0)}")
    ok(m.group(3) == "0" and m.group(4) == "0", f"{s}: errors: {m.group(0)}")
    hit, miss, sets = (float(m.group(i)) for i in (5, 6, 7))
    if s in ("hit", "mf-hit"):
        ok(hit >= 0.95 and miss < 0.05 and sets < 0.05, f"{s}: not a hit per request: {m.group(0)}")
    elif s in ("ref-store", "srcache", "mf-miss", "mf-relay"):
        ok(hit < 0.05 and miss >= 0.95 and sets >= 0.95, f"{s}: not a stored miss per request: "
           f"{m.group(0)}")
    elif s in ("ref-mixed", "mf-mixed"):
        ok(0.8 <= hit <= 0.97 and 0.05 <= sets <= 0.2, f"{s}: not a 90/10 mix: {m.group(0)}")
    else:
        ok(hit + miss + sets < 0.05, f"{s}: touched memcached: {m.group(0)}")

for label in ("mf-miss / srcache", "mf-miss / ref-store", "mf-hit / tuned hit",
              "mixed p99 at 500 conns", "memfill worker VmRSS"):
    ok(label in out, f"report row missing: {label}")
m = re.search(r"memfill counters \(non-zero\): requests (\d+) stored (\d+)(.*)$", out, re.M)
ok(m is not None and int(m.group(1)) > 100 and m.group(1) == m.group(2) and "fail" not in m.group(3),
   f"memfill's own counters: {m and m.group(0)}")

# nothing left behind: no process still runs from the bench's prefix, and
# the prefix itself is gone
left = subprocess.run(["pgrep", "-f", tmp], stdout=subprocess.PIPE).stdout.split()
ok(not left, f"processes left behind: {left}")
ok(os.listdir(tmp) == [], f"prefix left behind: {os.listdir(tmp)}")
shutil.rmtree(tmp, ignore_errors=True)
finish(passed)
