"""harness.py - real processes for memfill's integration tests.

Starts memcached, memfill (under spawn-fcgi, or on its own) and nginx on
127.0.0.1 high ports under a throw-away prefix, and stops every process it
started by its PID. Each start waits for readiness by polling, checking on
each poll that the process is still alive, so a crash fails at once.

Environment: top_srcdir / top_builddir (set by `make check`), and
MEMFILL_NO_SKIP=1 turns a missing binary into a failure instead of a skip
(exit 77).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SRCDIR = os.environ.get("top_srcdir", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILDDIR = os.environ.get("top_builddir", SRCDIR)
MEMFILL = os.path.join(BUILDDIR, "src", "memfill")
MEMFILLCTL = os.path.join(BUILDDIR, "src", "memfillctl")
NGINX_MODULES = "/usr/lib/nginx/modules"

FAILURES = []


def need(binary):
    """Exit 77 (skip) when binary is missing, or fail under MEMFILL_NO_SKIP."""
    if shutil.which(binary) or os.path.exists(binary):
        return
    if os.environ.get("MEMFILL_NO_SKIP") == "1":
        print(f"FAIL: required binary {binary} is missing (MEMFILL_NO_SKIP=1)")
        sys.exit(1)
    print(f"SKIP: {binary} is not installed")
    sys.exit(77)


# Test listeners take ports below the kernel's ephemeral range (32768-60999
# on Debian), so an outgoing connection can never hold a port a test is
# about to bind. Each process starts at a random offset and hands out
# distinct ports; a port is returned only after a bind to it succeeded.
_PORT_LO, _PORT_HI = 20000, 32000
_ports_given = set()


def free_port():
    import random
    for _ in range(2000):
        port = random.randrange(_PORT_LO, _PORT_HI)
        if port in _ports_given:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port below 32768")


def check(cond, what):
    """Records a failed expectation (the test goes on, and fails at the end)."""
    if not cond:
        FAILURES.append(what)
        if len(FAILURES) <= 40:
            print("FAIL:", what, flush=True)
    return cond


def finish(passed):
    failed = len(FAILURES)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


class Stack:
    """Owns a temp prefix and every process started in it."""

    def __init__(self, name, deadline=240):
        self.dir = tempfile.mkdtemp(prefix=f"memfill-{name}-")
        os.chmod(self.dir, 0o755)
        self.procs = []  # (name, Popen)
        self.deadline = time.monotonic() + deadline
        signal.signal(signal.SIGALRM, self._watchdog)
        signal.signal(signal.SIGTERM, self._watchdog)
        signal.signal(signal.SIGINT, self._watchdog)
        signal.alarm(deadline)

    def _watchdog(self, signum, frame):
        print("FAIL: watchdog: the test ran out of time" if signum == signal.SIGALRM
              else f"FAIL: stopped by signal {signum}", flush=True)
        self.stop_all()
        os._exit(1)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, rel, text, mode="w"):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, mode) as f:
            f.write(text)
        return p

    def spawn(self, name, argv, **kw):
        log = open(self.path(f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, **kw)
        self.procs.append((name, p))
        return p

    def log(self, name):
        try:
            with open(self.path(f"{name}.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_port(self, proc, port=None, unix=None, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode}")
            try:
                if unix:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(unix)
                else:
                    s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
                s.close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{proc.args[0]} did not listen in {timeout}s")

    def memcached(self, port=None, unix=None, extra=()):
        argv = ["memcached", "-U", "0", "-m", "64", "-t", "2", "-c", "4096"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        if unix:
            argv += ["-s", unix, "-a", "0666"]
        else:
            argv += ["-l", "127.0.0.1", "-p", str(port)]
        p = self.spawn(f"memcached-{port or os.path.basename(unix)}", argv + list(extra))
        self.wait_port(p, port=port, unix=unix)
        return p

    def origin(self, port):
        """The real HTTP origin (tests/integration/origin.py) on port."""
        script = os.path.join(SRCDIR, "tests", "integration", "origin.py")
        p = self.spawn("origin", [sys.executable, script, str(port)])
        self.wait_port(p, port=port)
        return p

    def memfill_spawnfcgi(self, config, port):
        """memfill under spawn-fcgi -n, the socket on fd 0 (the production way)."""
        argv = ["spawn-fcgi", "-n", "-a", "127.0.0.1", "-p", str(port), "--", MEMFILL, "-c", config]
        p = self.spawn("memfill", argv)
        self.wait_port(p, port=port)
        return p

    def memfill(self, config, port=None, unix=None):
        """memfill binding its own "listen" socket."""
        p = self.spawn("memfill", [MEMFILL, "-c", config])
        self.wait_port(p, port=port, unix=unix)
        return p

    def nginx(self, http_body, port, reload_proc=None):
        """Starts nginx with http_body inside http {}; with reload_proc, rewrites
        the config of that running nginx and reloads it (SIGHUP) instead."""
        os.makedirs(self.path("nginx", "logs"), exist_ok=True)
        mods = ""
        for m in ("ndk_http_module.so", "ngx_http_set_misc_module.so",
                  "ngx_http_memc_module.so", "ngx_http_srcache_filter_module.so"):
            if os.path.exists(os.path.join(NGINX_MODULES, m)):
                mods += f"load_module {NGINX_MODULES}/{m};\n"
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = f"""{mods}{user}worker_processes 1;
error_log {self.path('nginx', 'logs', 'error.log')} info;
pid {self.path('nginx', 'nginx.pid')};
events {{ worker_connections 4096; }}
http {{
    access_log off;
    include /etc/nginx/mime.types;
    client_body_temp_path {self.path('nginx', 'tmp_body')};
    fastcgi_temp_path {self.path('nginx', 'tmp_fcgi')};
    proxy_temp_path {self.path('nginx', 'tmp_proxy')};
    uwsgi_temp_path {self.path('nginx', 'tmp_uwsgi')};
    scgi_temp_path {self.path('nginx', 'tmp_scgi')};
{http_body}
}}
"""
        conf_path = self.write("nginx/nginx.conf", conf)
        t = subprocess.run(["nginx", "-t", "-p", self.path("nginx"), "-c", conf_path],
                           capture_output=True, text=True)
        if t.returncode != 0:
            raise RuntimeError("nginx -t failed:\n" + t.stderr + "\n" + conf)
        if reload_proc is not None:
            os.kill(reload_proc.pid, signal.SIGHUP)
            time.sleep(1.0)  # new workers up, old ones finishing
            return reload_proc
        p = self.spawn("nginx", ["nginx", "-p", self.path("nginx"), "-c", conf_path,
                                 "-g", "daemon off;"])
        self.wait_port(p, port=port)
        return p

    def stop(self, proc, sig=signal.SIGTERM, timeout=10.0):
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode

    def stop_all(self):
        for name, p in reversed(self.procs):
            try:
                self.stop(p, timeout=5)
            except Exception:
                pass
            # any process left in its session (memfill workers under spawn-fcgi)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self, keep=False):
        self.stop_all()
        signal.alarm(0)
        if not keep and not FAILURES:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("kept", self.dir)


def ctl(*args, config=None, input=None):
    argv = [MEMFILLCTL] + (["-c", config] if config else []) + list(args)
    return subprocess.run(argv, capture_output=True, input=input)


# ---- clients ----

def raw_http(port, request, timeout=10.0):
    """Sends request (bytes, exactly as given; it must ask to close) and
    returns (status, headers dict lower-cased, body bytes), a chunked body
    decoded."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(request)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.decode().strip().lower()] = v.decode("latin-1").strip()
    if hdrs.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0] or b"0", 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return int(lines[0].split()[1]), hdrs, body


def http(port, target, method="GET", headers=None, body=b"", timeout=10.0):
    """Raw HTTP/1.0 request; target is bytes or str sent as is. Returns
    (status, headers dict lower-cased, body bytes)."""
    if isinstance(target, str):
        target = target.encode()
    req = method.encode() + b" " + target + b" HTTP/1.0\r\nHost: localhost\r\n"
    for k, v in (headers or {}).items():
        req += f"{k}: {v}\r\n".encode()
    if body:
        req += f"Content-Length: {len(body)}\r\n".encode()
    req += b"\r\n" + body
    return raw_http(port, req, timeout)


class Memcached:
    """A tiny text-protocol client for checking what is stored."""

    def __init__(self, port=None, unix=None):
        if unix:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.connect(unix)
        else:
            self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.s.makefile("rb")

    def cmd(self, line):
        self.s.sendall(line + b"\r\n")
        return self.f.readline()

    def get(self, key):
        """Returns (value, flags) or None. Keys memcached cannot hold (over
        250 bytes) are not asked for: they cannot exist."""
        if len(key) > 250:
            return None
        self.s.sendall(b"get " + key + b"\r\n")
        line = self.f.readline()
        if line.startswith(b"END"):
            return None
        parts = line.split()
        if parts[0] != b"VALUE":
            raise RuntimeError(f"memcached said {line!r}")
        n = int(parts[3])
        val = self.f.read(n + 2)[:-2]
        self.f.readline()  # END
        return val, int(parts[2])

    def wait(self, key, timeout=2.0, want=None):
        """get, retried until the item appears (or, with want, until it is
        want): memfill stores after it has answered nginx, so the item
        lands a moment after the response."""
        end = time.monotonic() + timeout
        while True:
            item = self.get(key)
            if (item == want if want is not None else item is not None) or \
                    time.monotonic() > end:
                return item
            time.sleep(0.01)

    def ttl(self, key):
        """Remaining TTL via the meta protocol (-1 = never expires)."""
        line = self.cmd(b"mg " + key + b" t")
        parts = line.split()
        if parts[0] != b"HD":
            return None
        for p in parts[1:]:
            if p.startswith(b"t"):
                return int(p[1:])
        return None

    def flush(self):
        return self.cmd(b"flush_all")

    def stats(self):
        self.s.sendall(b"stats\r\n")
        out = {}
        while True:
            line = self.f.readline()
            if line.startswith(b"END") or not line:
                return out
            _, k, v = line.decode().split(" ", 2)
            out[k] = v.strip()

    def close(self):
        self.s.close()


# ---- independent models of nginx (doc/nginx.md §1-§3) ----

def memc_escape(raw):
    out = bytearray()
    for b in raw:
        if b <= 0x20 or b == 0x25:
            out += b"%%%02X" % b
        else:
            out.append(b)
    return bytes(out)


def nginx_uri(path):
    """$uri of a request path (bytes, no query): %XX decoded, slashes
    merged, "." and ".." segments removed after decoding."""
    hexd = b"0123456789abcdefABCDEF"
    dec = bytearray()
    i = 0
    while i < len(path):
        if path[i] == 0x25 and i + 2 < len(path) + 1 and len(path[i + 1:i + 3]) == 2 \
                and all(x in hexd for x in path[i + 1:i + 3]):
            dec.append(int(path[i + 1:i + 3], 16))
            i += 3
        else:
            dec.append(path[i])
            i += 1
    parts = bytes(dec).split(b"/")[1:]
    segs = []
    for seg in parts:
        if seg in (b"", b"."):
            continue
        if seg == b"..":
            if segs:
                segs.pop()
            continue
        segs.append(seg)
    out = b"/" + b"/".join(segs)
    if parts and parts[-1] in (b"", b".", b"..") and out != b"/":
        out += b"/"
    return out


def default_key(target):
    """$uri$is_args$args for a request target (bytes)."""
    path, q, args = target.partition(b"?")
    return nginx_uri(path) + (b"?" + args if args else b"")


# ---- memfill's status listener (admin.listen) ----

def admin_get(port, path, token=None, wait=10.0):
    """GET path from the master's status listener with token in
    X-Memfill-Token (None: no token). The master binds the listener after
    the FastCGI socket: on a slow machine (valgrind, ASan) it may not accept
    yet, so connecting is retried for up to wait seconds. Returns (status,
    body bytes)."""
    end = time.monotonic() + wait
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except ConnectionRefusedError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)
    req = f"GET {path} HTTP/1.0\r\n" + (f"X-Memfill-Token: {token}\r\n" if token else "") + "\r\n"
    s.sendall(req.encode())
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def admin_status(port, token):
    """The JSON status document."""
    status, body = admin_get(port, "/status", token)
    if status != 200:
        raise RuntimeError(f"status endpoint answered {status}")
    return json.loads(body)


# ---- wrk ----

def to_ms(v):
    """wrk's "1.23ms" / "450.00us" / "2.01s" / "1.00m" in milliseconds."""
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    n, u = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60000}[u]


def parse_wrk(out):
    """wrk's report as {"requests", "non2xx", "socket_errors", "errors",
    "avg_ms", "max_ms", "rps"} (missing lines count as 0 / None)."""
    r = {"requests": 0, "non2xx": 0, "socket_errors": 0, "avg_ms": None, "max_ms": None,
         "rps": 0.0}
    m = re.search(r"(\d+) requests in", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if m:
        r["avg_ms"], r["max_ms"] = to_ms(m.group(1)), to_ms(m.group(3))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    r["errors"] = r["non2xx"] + r["socket_errors"]
    return r
