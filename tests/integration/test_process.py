#!/usr/bin/env python3
"""test_process.py - the process manager under real load and real faults.

nginx (config from `memfillctl nginx-conf`) + memcached + memfill binding
its own socket, so signals go straight to the master. Load is wrk on
loopback against a route that is never stored (every request reaches a
worker); handlers are made slow, stuck or crashing on demand by the chaos
test plugin. For each fault the failed requests are counted by wrk and
printed ("figure:" lines), then checked:
  - SIGKILL of a worker under load: a replacement serves within 1 s and at
    most the killed worker's in-flight request fails;
  - SIGHUP with a broken config under load: no failed request, the old
    behaviour stays, the error is logged as file:line:col;
  - SIGHUP with a changed config under load (and a burst of reloads): no
    failed request, the new behaviour shows, the old workers are gone;
  - max_requests: workers are recycled (pids change) with no failed request;
  - request_timeout: a stuck handler is killed and logged, and replaced;
  - SIGTERM under load: requests in flight finish with 200; idle workers
    leave at once; a second SIGTERM stops at once; shutdown_timeout kills;
  - SIGKILL of the master: idle workers go at once, a busy one finishes
    its request first;
  - a crash loop trips the crash-storm guard instead of a fork storm.
"""
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MEMFILL, Stack, check, finish, free_port, http, need  # noqa: E402
from proctools import (CHAOS, LogMark, Wrk, alive, base_config, children, nginx_for,  # noqa: E402
                       page_pid, start_memfill, stop_memfill, wait_until, write_config)

for b in ("nginx", "memcached", "wrk", MEMFILL, CHAOS):
    need(b)

st = Stack("process", deadline=150)
passed = 0
figures = []


def ok(cond, what):
    global passed
    if check(cond, what):
        passed += 1
    return cond


def figure(name, value):
    figures.append((name, value))
    print(f"figure: {name}: {value}", flush=True)


def slow_get(port, target, out, i):
    try:
        out[i] = http(port, target, timeout=20)
    except OSError as e:
        out[i] = e


try:
    mc_port, app_port, web_port = free_port(), free_port(), free_port()
    st.memcached(port=mc_port)
    conf = write_config(st, base_config(st, mc_port, app_port))
    mlog = st.path("memfill.log")
    master = start_memfill(st, conf, port=app_port)
    nginx_for(st, conf, web_port, app_port)
    url = f"http://127.0.0.1:{web_port}"

    s, pid, body = page_pid(web_port, "/chaos/first")
    ok(s == 200 and pid in children(master.pid), f"first page: {s} {body!r}")
    ok(b"text=v1" in body, f"first page text: {body!r}")
    workers0 = wait_until(lambda: len(children(master.pid)) == 2, 3)
    ok(workers0 is not None, f"2 workers: {children(master.pid)}")

    # ---- baseline: the measure itself shows no errors without a fault
    r = Wrk(f"{url}/chaos/base?sleep_ms=2", 1).result()
    figure("baseline errors", f"{r['errors']} of {r['requests']}")
    ok(r["requests"] > 50 and r["errors"] == 0, f"baseline: {r['raw']}")

    # ---- SIGKILL one worker under load
    mark = LogMark(mlog)
    w = Wrk(f"{url}/chaos/kill?sleep_ms=20", 3)
    time.sleep(1.0)
    before = children(master.pid)
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    t_kill = time.monotonic()
    new_pid = None
    served_in = None
    while time.monotonic() - t_kill < 2.0:
        s, pid, _ = page_pid(web_port, "/chaos/probe?sleep_ms=1", timeout=5)
        if s == 200 and pid not in before:
            new_pid, served_in = pid, time.monotonic() - t_kill
            break
    r = w.result()
    figure("SIGKILL worker: failed requests", f"{r['errors']} of {r['requests']}")
    figure("SIGKILL worker: replacement served after", f"{served_in and round(served_in, 3)} s")
    ok(served_in is not None and served_in < 1.0, f"replacement served in {served_in}")
    ok(r["errors"] <= 2, f"SIGKILL: {r['errors']} failed requests:\n{r['raw']}")
    ok(mark.wait_for(rf"M error: worker {victim} died from signal 9") is not None,
       f"death not logged: {mark.text()[-2000:]}")
    ok(len(children(master.pid)) == 2, f"workers after kill: {children(master.pid)}")

    # ---- SIGHUP with a broken config under load
    good_text = open(conf).read()
    broken = good_text.replace('"workers": 2', '"workers": "two"')
    assert broken != good_text
    line = next(i + 1 for i, l in enumerate(broken.splitlines()) if '"workers"' in l)
    col = broken.splitlines()[line - 1].index('"two"') + 1
    with open(conf, "w") as f:
        f.write(broken)
    before = children(master.pid)
    mark = LogMark(mlog)
    w = Wrk(f"{url}/chaos/badhup?sleep_ms=5", 2)
    time.sleep(0.7)
    os.kill(master.pid, signal.SIGHUP)
    m = mark.wait_for(r"reload failed, still serving the previous config: (.*)$")
    r = w.result()
    figure("SIGHUP broken config: failed requests", f"{r['errors']} of {r['requests']}")
    ok(r["errors"] == 0 and r["requests"] > 50, f"broken reload: {r['raw']}")
    ok(m is not None and m.group(1).startswith(f"{conf}:{line}:{col}: workers"),
       f"error position (want {conf}:{line}:{col}): {m and m.group(1)!r}")
    s, pid, body = page_pid(web_port, "/chaos/after-bad")
    ok(s == 200 and b"text=v1" in body, f"old behaviour kept: {s} {body!r}")
    ok(children(master.pid) == before, f"workers changed on a failed reload: {before} -> "
       f"{children(master.pid)}")

    # ---- SIGHUP with a changed config under load (one, then a burst)
    cfg2 = base_config(st, mc_port, app_port, text="v2")
    write_config(st, cfg2)
    before = children(master.pid)
    mark = LogMark(mlog)
    w = Wrk(f"{url}/chaos/hup?sleep_ms=5", 3)
    time.sleep(0.7)
    os.kill(master.pid, signal.SIGHUP)
    ok(mark.wait_for(r"generation 1 serving") is not None, "reload not done")
    # the old generation leaves while the load goes on (a stop signal that
    # stays pending behind a busy listening socket would keep it serving)
    gone = wait_until(lambda: not any(alive(p) for p in before), 1.0)
    figure("SIGHUP under load: old generation gone after", f"{gone and round(gone * 1000)} ms")
    ok(gone is not None, f"old workers still serving under load: "
       f"{[p for p in before if alive(p)]}")
    for i in range(5):  # a burst: 5 more generations while loaded
        os.kill(master.pid, signal.SIGHUP)
        time.sleep(0.15)
    r = w.result()
    figure("SIGHUP changed config (6 reloads): failed requests",
           f"{r['errors']} of {r['requests']}")
    ok(r["errors"] == 0 and r["requests"] > 50, f"reload under load: {r['raw']}")
    s, pid, body = page_pid(web_port, "/chaos/after-good")
    ok(s == 200 and b"text=v2" in body, f"new behaviour: {s} {body!r}")
    ok(wait_until(lambda: len(children(master.pid)) == 2 and
                  not set(children(master.pid)) & set(before), 3) is not None,
       f"old generation still there: {before} / {children(master.pid)}")

    # ---- max_requests recycling, with request_timeout 1 for the next step
    write_config(st, base_config(st, mc_port, app_port, text="v3", max_requests=15,
                                 request_timeout=1))
    mark = LogMark(mlog)
    os.kill(master.pid, signal.SIGHUP)
    ok(mark.wait_for(r"generation \d+ serving") is not None, f"reload: {mark.text()[-1500:]}")
    time.sleep(0.3)
    mark = LogMark(mlog)
    seen = set()
    w = Wrk(f"{url}/chaos/recycle?sleep_ms=2", 2)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.8:
        s, pid, body = page_pid(web_port, "/chaos/which", timeout=5)
        if pid:
            seen.add(pid)
    r = w.result()
    recycled = len(re.findall(r"W info: recycling after 1[5-9] requests", mark.text()))
    figure("max_requests=15: failed requests", f"{r['errors']} of {r['requests']}")
    figure("max_requests=15: recycles, pids seen", f"{recycled}, {len(seen)}")
    ok(r["errors"] == 0 and r["requests"] > 100, f"recycling: {r['raw']}")
    ok(recycled >= 4 and len(seen) >= 4, f"recycled {recycled}, pids {sorted(seen)}")
    ok(not re.search(r"recycling after ([0-9]|1[0-4]|[2-9][0-9]) requests", mark.text()),
       "recycled outside max_requests..+25%")

    # ---- request_timeout: a stuck handler is killed and logged
    mark = LogMark(mlog)
    t0 = time.monotonic()
    s, _, _ = page_pid(web_port, "/chaos/stuck?sleep_ms=8000", timeout=15)
    took = time.monotonic() - t0
    figure("request_timeout=1: stuck request answered after", f"{took:.2f} s (status {s})")
    ok(s == 502 and 0.9 < took < 2.0, f"stuck request: status {s} after {took:.2f}s")
    m = mark.wait_for(r'M error: worker (\d+) killed: request "/chaos/stuck\?sleep_ms=8000" '
                      r"ran (\d+) ms, past request_timeout \(1 s\)")
    ok(m is not None, f"timeout kill not logged: {mark.text()[-1500:]}")
    ok(not re.search(r"died from signal", mark.text()), "timeout kill counted as a crash")
    ok(wait_until(lambda: len(children(master.pid)) == 2, 2) is not None, "not replaced")
    s, pid, _ = page_pid(web_port, "/chaos/after-stuck")
    ok(s == 200, f"after a timeout kill: {s}")
    # a FastCGI connection that never sends its request holds a worker in
    # libfcgi's read: request_timeout ends that too
    mark = LogMark(mlog)
    silent = socket.create_connection(("127.0.0.1", app_port))
    m = mark.wait_for(r"M error: worker \d+ killed: a connection sent no complete request in "
                      r"\d+ ms, past request_timeout", timeout=3)
    silent.close()
    ok(m is not None, f"silent connection not ended: {mark.text()[-1500:]}")
    s, pid, _ = page_pid(web_port, "/chaos/after-silent")
    ok(s == 200, f"after the silent connection: {s}")

    # ---- SIGTERM under load: in-flight requests finish with 200
    workers = children(master.pid)
    res = [None, None]
    ths = [threading.Thread(target=slow_get, args=(web_port, f"/chaos/slow{i}?sleep_ms=800",
                                                   res, i)) for i in range(2)]
    for t in ths:
        t.start()
    time.sleep(0.3)
    # more load queues behind them: it must not keep the workers serving
    w = Wrk(f"{url}/chaos/queued?sleep_ms=5", 3)
    time.sleep(0.2)
    mark = LogMark(mlog)
    t0 = time.monotonic()
    os.kill(master.pid, signal.SIGTERM)
    rc = master.wait(10)
    took = time.monotonic() - t0
    for t in ths:
        t.join(20)
    r = w.result()
    statuses = [x[0] if isinstance(x, tuple) else repr(x) for x in res]
    figure("SIGTERM with 2 requests in flight (800 ms) and wrk load", f"in-flight statuses "
           f"{statuses}, master exited after {took:.2f} s with {rc}")
    ok(all(isinstance(x, tuple) and x[0] == 200 and b"text=v3" in x[2] for x in res),
       f"in-flight requests after SIGTERM: {res}")
    ok(rc == 0 and took < 1.5, f"graceful stop under load: rc {rc} after {took:.2f}s")
    ok(not any(alive(p) for p in workers), "workers left behind")
    ok(re.search(r"graceful stop \(signal 15\)", mark.text()) is not None, "stop not logged")

    # ---- idle workers blocked waiting for a connection leave at once
    write_config(st, base_config(st, mc_port, app_port, workers=4))
    times = []
    for i in range(3):
        master = start_memfill(st, conf, port=app_port)
        wait_until(lambda: len(children(master.pid)) == 4, 3)
        time.sleep(0.2)
        t0 = time.monotonic()
        os.kill(master.pid, signal.SIGTERM)
        rc = master.wait(10)
        times.append(time.monotonic() - t0)
        ok(rc == 0, f"idle stop rc {rc}")
    figure("SIGTERM, 4 idle workers: master exit after", ", ".join(f"{t * 1000:.0f} ms"
                                                                   for t in times))
    ok(max(times) < 0.5, f"idle stop too slow: {times}")

    # ---- a second SIGTERM stops at once; shutdown_timeout kills
    write_config(st, base_config(st, mc_port, app_port, shutdown_timeout=1))
    master = start_memfill(st, conf, port=app_port)
    res = [None]
    t = threading.Thread(target=slow_get, args=(web_port, "/chaos/long?sleep_ms=6000", res, 0))
    t.start()
    time.sleep(0.4)
    t0 = time.monotonic()
    os.kill(master.pid, signal.SIGTERM)
    rc = master.wait(10)
    took = time.monotonic() - t0
    t.join(20)
    figure("shutdown_timeout=1 with a 6 s request", f"master exited after {took:.2f} s")
    ok(0.9 < took < 2.0 and rc == 0, f"shutdown_timeout: {took:.2f}s rc {rc}")
    ok(isinstance(res[0], tuple) and res[0][0] == 502, f"killed request: {res[0]!r}")

    write_config(st, base_config(st, mc_port, app_port, shutdown_timeout=30))
    master = start_memfill(st, conf, port=app_port)
    res = [None]
    t = threading.Thread(target=slow_get, args=(web_port, "/chaos/long?sleep_ms=6000", res, 0))
    t.start()
    time.sleep(0.4)
    os.kill(master.pid, signal.SIGTERM)
    time.sleep(0.3)
    ok(alive(master.pid), "master left before its busy worker finished")
    t0 = time.monotonic()
    os.kill(master.pid, signal.SIGTERM)
    rc = master.wait(10)
    took = time.monotonic() - t0
    t.join(20)
    figure("second SIGTERM: master exit after", f"{took * 1000:.0f} ms")
    ok(took < 0.5, f"second SIGTERM took {took:.2f}s")

    # ---- SIGKILL of the master takes the workers down
    master = start_memfill(st, conf, port=app_port)
    wait_until(lambda: len(children(master.pid)) == 2, 3)
    res = [None]
    t = threading.Thread(target=slow_get, args=(web_port, "/chaos/orphan?sleep_ms=700", res, 0))
    t.start()
    time.sleep(0.3)
    workers = children(master.pid)
    os.kill(master.pid, signal.SIGKILL)
    master.wait(5)
    t0 = time.monotonic()
    first_gone = wait_until(lambda: not all(alive(p) for p in workers), 2)
    all_gone = wait_until(lambda: not any(alive(p) for p in workers), 3)
    t.join(10)
    figure("SIGKILL master: idle worker gone after, busy one after",
           f"{first_gone and round(first_gone * 1000)} ms, "
           f"{all_gone and round((time.monotonic() - t0) * 1000)} ms")
    ok(first_gone is not None and first_gone < 0.5, f"idle worker outlived the master: {workers}")
    ok(all_gone is not None, f"workers outlived the master: {[p for p in workers if alive(p)]}")
    ok(isinstance(res[0], tuple) and res[0][0] == 200, f"busy orphan's request: {res[0]!r}")

    # ---- a crash loop trips the guard instead of a fork storm
    write_config(st, base_config(st, mc_port, app_port))
    mark = LogMark(mlog)
    master = start_memfill(st, conf, port=app_port)
    wait_until(lambda: len(children(master.pid)) == 2, 3)
    w = Wrk(f"{url}/chaos/boom?crash=1", 4, conns=4)
    r = w.result()
    text = mark.text()
    deaths = len(re.findall(r"died from signal 6", text))
    storm = re.search(r"M error: CRASH STORM: (\d+) workers died abnormally within 10 s", text)
    figure("crash loop for 4 s: worker deaths (forks)", f"{deaths} (requests {r['requests']})")
    ok(storm is not None, f"no CRASH STORM line: {text[-2000:]}")
    ok(5 <= deaths <= 12, f"{deaths} deaths in 4 s")
    ok(alive(master.pid), "master died in the crash loop")
    ok(stop_memfill(st, master) == 0, "stop after the crash loop")
except Exception as e:  # noqa: BLE001
    import traceback
    traceback.print_exc()
    check(False, f"exception: {e!r}")
finally:
    print("figures:", "; ".join(f"{n} = {v}" for n, v in figures))
    st.close()
finish(passed)
