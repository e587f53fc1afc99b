"""proctools.py - helpers for the process-manager suites (test_process*.py).

wrk under load (bounded, loopback only) with its error counts parsed; the
worker pids of a memfill master read from /proc; a stack of memcached +
nginx (config from `memfillctl nginx-conf`) in front of a memfill that the
test starts, signals and restarts itself; log-reading helpers that only
look at what was written since a mark.
"""
import json
import os
import re
import signal
import subprocess
import time

from harness import MEMFILL, BUILDDIR, ctl, http, parse_wrk

CHAOS = os.path.join(BUILDDIR, "tests", "plugins", "chaos_plugin.so")


def children(pid):
    """The pids of pid's children (the master's workers), from /proc."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return sorted(int(x) for x in f.read().split())
    except OSError:
        out = set()
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        st = f.read()
                    if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                        out.add(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        return sorted(out)


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(cond, timeout, step=0.02):
    """Polls cond() until it is true; returns the seconds it took, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(step)
    return None


class Wrk:
    """wrk running in the background against url; .result() waits and
    returns {"requests", "non2xx", "socket_errors", "errors"}."""

    def __init__(self, url, seconds, conns=8, threads=2, timeout=5):
        self.p = subprocess.Popen(
            ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", f"--timeout={timeout}s", url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.seconds = seconds

    def result(self):
        out, _ = self.p.communicate(timeout=self.seconds + 30)
        r = parse_wrk(out)
        r["raw"] = out
        return r


def page_pid(port, target, timeout=10.0):
    """GETs target through nginx; returns (status, pid from the chaos page
    or None, body)."""
    try:
        s, h, b = http(port, target, timeout=timeout)
    except OSError:
        return None, None, b""
    m = re.search(rb"chaos pid=(\d+)", b)
    return s, int(m.group(1)) if m else None, b


class LogMark:
    """Reads a log file from a remembered offset on."""

    def __init__(self, path):
        self.path = path
        self.off = self._size()

    def _size(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def text(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for(self, pattern, timeout=3.0):
        """Waits until pattern (a regex) appears after the mark; returns the
        match or None."""
        end = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.text(), re.M)
            if m or time.monotonic() > end:
                return m
            time.sleep(0.02)


def base_config(st, mc_port, app_port=None, text="v1", **extra):
    """A memfill config: a chaos route that is never stored (every request
    reaches memfill), and a stored one for the store tests."""
    cfg = {
        "workers": 2,
        "request_timeout": 30,
        "shutdown_timeout": 5,
        "log": {"level": "info"},
        "memcached": {"servers": [f"127.0.0.1:{mc_port}"]},
        "cache": {"ttl": 60},
        "routes": [
            {"prefix": "/store/", "handler": "plugin", "plugin": CHAOS,
             "config": {"text": text}},
            {"prefix": "/", "handler": "plugin", "plugin": CHAOS, "cache": False,
             "config": {"text": text}},
        ],
    }
    if app_port:
        cfg["listen"] = f"127.0.0.1:{app_port}"
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    return cfg


def write_config(st, cfg, name="memfill.json"):
    return st.write(name, json.dumps(cfg, indent=1) + "\n")


def nginx_for(st, conf, web_port, app_port, fastcgi=None):
    """nginx with the config memfillctl prints for conf."""
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", "--fastcgi",
            fastcgi or f"127.0.0.1:{app_port}", config=conf)
    if t.returncode != 0:
        raise RuntimeError(f"nginx-conf failed: {t.stderr!r}")
    return st.nginx(t.stdout.decode(), web_port)


def start_memfill(st, conf, port=None, unix=None):
    """memfill on its own listen socket; waits until a worker answers."""
    p = st.spawn("memfill", [MEMFILL, "-c", conf])
    st.wait_port(p, port=port, unix=unix)
    return p


def stop_memfill(st, p, timeout=10.0):
    """SIGTERM and wait; returns the exit code (SIGKILL after timeout)."""
    return st.stop(p, sig=signal.SIGTERM, timeout=timeout)
