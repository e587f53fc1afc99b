#!/usr/bin/env python3
"""test_hostile.py - hostile input against the real memfill (and nginx).

Two memcached nodes, memfill (ONE worker, so "the worker keeps serving" is
the same process all along), nginx from `memfillctl nginx-conf`, and
origin.py. Every hostile input must get a clear answer (an HTTP error, or
the FastCGI connection closed) and a normal request must work right after
it. At the end the worker's pid is unchanged and the master saw no
abnormal exit. Inputs:

- FastCGI records sent raw to memfill's socket: not FastCGI at all, a bad
  version, a truncated header, a record announcing more content than is
  sent, name/value lengths of 2^31-1 (the shape of CVE-2025-23016 in
  libfcgi), a 64 MiB name announced and not sent, management and unknown
  record types, records for another request id, an abort mid-params.
- params over max_params (one big header; 2 MiB of params over many
  records), CONTENT_LENGTH over max_body (413, also through nginx), a
  CONTENT_LENGTH larger or smaller than the body, malformed ones.
- URIs with NUL, CR, LF (nginx answers 400 for the ones it refuses; sent
  straight to memfill, control bytes in REQUEST_URI are a 400 and in
  DOCUMENT_URI never reach a response header or memcached unescaped);
  overlong paths (414 from nginx; straight to memfill, answered and not
  stored); invalid UTF-8 (served and stored under nginx's key).
- Keys of 249, 250 and 251 bytes after escaping: stored, stored, not
  stored (skip_key_too_long counted).
- MEMC_BACKEND naming an address that is not a configured node: a TCP
  listener on that port records connections; there must be none, and the
  page is stored on the node memfill computes (memfillctl where).
- MEMC_KEY with control bytes (stored escaped, as nginx asks for it) and
  a memcached command smuggled in a key (it stays a key).
- Escapes from the document root through DOCUMENT_URI (dot segments,
  encoded dots, backslashes, a symlink out of the root).
- Origin answers with a bare CR, a folded header, a NUL, a line without a
  colon (origin.py /crlf, /nul, /badheader).
"""
import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import admin_get as harness_admin_get  # noqa: E402
from harness import (FAILURES, MEMFILL, MEMFILLCTL, Memcached, Stack, check, ctl, default_key,
                     finish, free_port, http, memc_escape, need)
from fcgi_client import (FCGI_BEGIN_REQUEST, FCGI_ABORT_REQUEST, FCGI_PARAMS, FCGI_RESPONDER,
                         FCGI_STDIN, FastCGIClient, FastCGIError, encode_params, nginx_params,
                         record, stream)

for b in ("nginx", "memcached", MEMFILL, MEMFILLCTL):
    need(b)

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "hostile-token-0123456789"
SECRET = b"SECRET-OUTSIDE-THE-ROOT"
passed = 0


class Trap:
    """A TCP listener that records every connection made to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", free_port()))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            c.close()

    def close(self):
        self.stop = True
        self.t.join(2)
        self.sock.close()


def admin_get(port, path):
    return harness_admin_get(port, path, TOKEN)


def raw_exchange(port, payload, timeout=5.0):
    """Sends raw bytes to the FastCGI socket, half-closes, reads until the
    server closes. Returns (bytes read, seconds) or (None, seconds) when
    the server kept the connection open past timeout."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close while we still send: that is an answer too
        data = b""
        while True:
            try:
                c = s.recv(65536)
            except socket.timeout:
                return None, time.monotonic() - t0
            except OSError:
                break
            if not c:
                break
            data += c
        return data, time.monotonic() - t0
    finally:
        s.close()


def records(data):
    """Parses FastCGI records: [(type, request_id, content)]."""
    out, i = [], 0
    while i + 8 <= len(data):
        _, rtype, rid, clen, plen, _ = struct.unpack(">BBHHBB", data[i:i + 8])
        out.append((rtype, rid, data[i + 8:i + 8 + clen]))
        i += 8 + clen + plen
    return out


def begin(request_id=1, role=FCGI_RESPONDER, version=1):
    r = record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", role, 0), request_id)
    return bytes([version]) + r[1:]


st = Stack("hostile", deadline=150)
trap = Trap()
try:
    mc_ports = [free_port(), free_port()]
    app_port, web_port, admin_port, origin_port = free_port(), free_port(), free_port(), free_port()
    for p in mc_ports:
        st.memcached(port=p)
    mcs = [Memcached(port=p) for p in mc_ports]
    origin = st.origin(origin_port)

    st.write("site/page.mustache", "<p>page {{path}}</p>\n")
    st.write("site/docroot_parent/files/hello.html", "<p>hello</p>\n")
    st.write("site/secret.txt", SECRET.decode() + "\n")
    st.write("secret.txt", SECRET.decode() + "\n")
    os.symlink("../../secret.txt", st.path("site/docroot_parent/files/link.txt"))
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 1,
        "max_params": 8192,
        "max_body": 4096,
        "log": {"level": "info", "access": True},
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
        "memcached": {"servers": [f"127.0.0.1:{p}" for p in mc_ports]},
        "cache": {"key": "$uri$is_args$args", "ttl": 120},
        "routes": [
            {"prefix": "/files/", "handler": "static", "root": "site/docroot_parent"},
            {"regex": "^/(crlf|nul|badheader)$", "handler": "upstream",
             "origin": f"http://127.0.0.1:{origin_port}", "timeout_ms": 3000},
            {"prefix": "/", "handler": "template", "template": "site/page.mustache",
             "methods": ["GET", "HEAD", "POST"]},
        ],
    }
    conf = st.write("memfill.json", json.dumps(cfg, indent=1))
    t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
    check(t.returncode == 0, f"nginx-conf: {t.stderr!r}")
    st.nginx(t.stdout.decode(), web_port)
    st.memfill(conf, port=app_port)
    fc = FastCGIClient(("127.0.0.1", app_port), timeout=5)

    def status():
        s, b = admin_get(admin_port, "/status")
        return json.loads(b)

    def counters():
        return status()["counters"]

    def worker_pids():
        end = time.monotonic() + 5
        while time.monotonic() < end:
            pids = sorted(w["pid"] for w in status()["workers"])
            if pids:
                return pids
            time.sleep(0.05)
        return []

    def holder(esc_key):
        return [i for i, m in enumerate(mcs) if m.get(esc_key) is not None]

    def stored(esc_key, timeout=2.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            h = holder(esc_key)
            if h:
                return h
            time.sleep(0.02)
        return []

    def where(raw_key):
        r = ctl("where", raw_key, config=conf)
        line = r.stdout.decode("latin-1").strip().split("\t")
        return [f"127.0.0.1:{p}" for p in mc_ports].index(line[0])

    alive_n = [0]

    def alive(what):
        """A normal request straight to memfill and one through nginx."""
        alive_n[0] += 1
        u = f"/alive/{alive_n[0]}"
        try:
            r = fc.request(nginx_params("GET", u))
            ok = r.status == 200 and u.encode() in r.body
        except (OSError, FastCGIError) as e:
            ok, r = False, e
        s, h, b = http(web_port, u + "/nginx")
        return check(ok and s == 200, f"after {what}: normal request failed ({r!r}, nginx {s})")

    first_pids = worker_pids()
    check(len(first_pids) == 1, f"expected one worker, got {first_pids}")
    alive("start")

    # ================= raw FastCGI protocol abuse =================
    big_len = struct.pack(">I", 0x7FFFFFFF | 0x80000000)
    cases = [
        ("not FastCGI at all", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("record version 2", begin(version=2) + stream(FCGI_PARAMS, b"")),
        ("truncated record header", b"\x01\x01\x00"),
        ("BEGIN_REQUEST only, then EOF", begin()),
        ("PARAMS record announcing 65535 bytes, 10 sent",
         begin() + struct.pack(">BBHHBB", 1, FCGI_PARAMS, 1, 65535, 0, 0) + b"x" * 10),
        ("name and value lengths of 2^31-1 (CVE-2025-23016 shape)",
         begin() + record(FCGI_PARAMS, big_len + big_len + b"abc") + record(FCGI_PARAMS, b"")),
        ("a 64 MiB name announced, not sent",
         begin() + record(FCGI_PARAMS, struct.pack(">I", (64 << 20) | 0x80000000) + b"\x01ab")),
        ("management record GET_VALUES",
         record(9, encode_params({"FCGI_MAX_CONNS": "", "FCGI_MPXS_CONNS": ""}), 0)),
        ("unknown record type 42 mid-request",
         begin() + record(42, b"??") + stream(FCGI_PARAMS, encode_params(
             nginx_params("GET", "/x"))) + stream(FCGI_STDIN, b"")),
        ("records for another request id",
         begin() + stream(FCGI_PARAMS, encode_params({"A": "1"}), 7)),
        ("ABORT_REQUEST mid-params",
         begin() + record(FCGI_PARAMS, encode_params({"REQUEST_METHOD": "GET"}))
         + record(FCGI_ABORT_REQUEST, b"")),
        ("role FILTER", begin(role=3) + stream(FCGI_PARAMS, encode_params(
            nginx_params("GET", "/role"))) + stream(FCGI_STDIN, b"")),
        ("BEGIN_REQUEST with short content", record(FCGI_BEGIN_REQUEST, b"\x00")),
        ("padding length 255 and garbage",
         struct.pack(">BBHHBB", 1, FCGI_BEGIN_REQUEST, 1, 8, 255, 0) + b"\x00\x01" + b"\xff" * 300),
    ]
    for what, payload in cases:
        data, took = raw_exchange(app_port, payload)
        if check(data is not None, f"{what}: memfill kept the connection open for {took:.1f}s"):
            types = [r[0] for r in records(data)]
            print(f"raw FastCGI: {what}: closed after {took * 1000:.0f} ms, "
                  f"{len(data)} bytes back, record types {types}")
        if alive(what):
            passed += 1

    # ================= params and body limits =================
    c0 = counters()
    r = fc.request(nginx_params("GET", "/big-header", headers={"X-Big": "x" * 10000}))
    if check(r.status == 400, f"params over max_params: {r.status}"):
        passed += 1
    # 2 MiB of params over many records
    many = [(f"HTTP_X_{i}", "y" * 1000) for i in range(2048)]
    r = fc.request(list(nginx_params("GET", "/many").items()) + many)
    if check(r.status == 400, f"2 MiB of params: {r.status}"):
        passed += 1
    c1 = counters()
    check(c1["bad_request"] - c0["bad_request"] == 2,
          f"bad_request counted {c1['bad_request'] - c0['bad_request']} for 2 refusals")
    alive("params over max_params")

    body = b"b" * 5000
    r = fc.request(nginx_params("POST", "/post", body=body), stdin=body)
    if check(r.status == 413, f"body over max_body, straight: {r.status}"):
        passed += 1
    s, h, b = http(web_port, "/post", method="POST", body=body)
    if check(s == 413, f"body over max_body through nginx: {s}"):
        passed += 1
    p = nginx_params("POST", "/post")
    p["CONTENT_LENGTH"] = "1000000000000"
    r = fc.request(p, stdin=b"tiny")
    if check(r.status == 413, f"CONTENT_LENGTH 10^12 with a tiny body: {r.status}"):
        passed += 1
    p["CONTENT_LENGTH"] = "100"
    r = fc.request(p, stdin=b"only ten b")
    if check(r.status == 400, f"CONTENT_LENGTH 100 with 10 bytes: {r.status}"):
        passed += 1
    p["CONTENT_LENGTH"] = "3"
    r = fc.request(p, stdin=b"x" * 100)
    if check(r.status == 200, f"CONTENT_LENGTH 3 with 100 bytes: {r.status}"):
        passed += 1
    for bad in ("abc", "-1", "1e3", " 12", "99999999999999999999999"):
        p["CONTENT_LENGTH"] = bad
        r = fc.request(p, stdin=b"x" * 12)
        if check(r.status in (400, 413), f"CONTENT_LENGTH {bad!r}: {r.status}"):
            passed += 1
    alive("lying CONTENT_LENGTH")

    # ================= URIs =================
    for target in (b"/a%00b", b"/a\x00b", b"/a\rb", b"/a b\r"):
        try:
            s, h, b = http(web_port, target)
        except (ValueError, IndexError, OSError):
            s = None
        if check(s == 400, f"nginx for {target!r}: {s}"):
            passed += 1
    # %0D%0A is legal for nginx: $uri holds CR LF, the key is escaped
    u = b"/inj%0D%0AX-Injected:%20yes"
    s, h, b = http(web_port, u)
    check(s == 200 and "x-injected" not in h, f"CRLF in $uri: {s} {h}")
    key = memc_escape(default_key(u))
    if check(stored(key), f"CRLF page not stored under {key!r}"):
        passed += 1

    # straight to memfill: control bytes in REQUEST_URI are a 400
    for target in (b"/a\r\nX-Injected: yes", b"/a\nb", b"/tab\tx", b"/del\x7f"):
        p = nginx_params("GET", target)
        del p["DOCUMENT_URI"]
        r = fc.request(p)
        if check(r.status == 400 and "x-injected" not in r.headers,
                 f"REQUEST_URI {target!r}: {r.status} {r.headers}"):
            passed += 1
    # ...and in DOCUMENT_URI (what nginx would send for %0D%0A) they never
    # reach a header, and the key memcached gets is escaped
    r = fc.request(nginx_params("GET", b"/d%0D%0AX-Injected:%20yes",
                                document_uri=b"/d\r\nX-Injected: yes"))
    check(r.status == 200 and "x-injected" not in r.headers, f"DOCUMENT_URI CRLF: {r!r} {r.headers}")
    if check(stored(memc_escape(b"/d\r\nX-Injected: yes")), "DOCUMENT_URI CRLF page not stored escaped"):
        passed += 1
    # NUL inside a param value: libfcgi ends the value there
    r = fc.request(nginx_params("GET", b"/nulbyte\x00/../../x", document_uri=b"/nulbyte\x00/x"))
    if check(r.status == 200 and b"/nulbyte</p>" in r.body,
             f"NUL in params: {r.status} {r.body[:80]!r}"):
        passed += 1
    alive("control bytes in URIs")

    # overlong: nginx refuses a request line past its header buffers
    s, h, b = http(web_port, "/" + "L" * 10000)
    if check(s == 414, f"10 kB URI through nginx: {s}"):
        passed += 1
    c0 = counters()
    # (REQUEST_URI, DOCUMENT_URI and SCRIPT_NAME each hold it: 3 x 2 kB < max_params)
    long_path = "/" + "L" * 2000
    r = fc.request(nginx_params("GET", long_path))
    check(r.status == 200 and long_path.encode() in r.body, f"2 kB path: {r.status}")
    r = fc.request(nginx_params("GET", "/files/" + "F" * 2000))
    check(r.status == 404, f"2 kB static path (a file name past NAME_MAX): {r.status}")
    c1 = counters()
    if check(c1["skip_key_too_long"] - c0["skip_key_too_long"] == 1,
             f"2 kB key not counted as too long: {c1['skip_key_too_long'] - c0['skip_key_too_long']}"):
        passed += 1
    alive("overlong paths")

    # invalid UTF-8 is just bytes
    u = b"/bad-utf8/\xff\xfe\xc3(\xed\xa0\x80"
    s, h, b = http(web_port, u)
    check(s == 200, f"invalid UTF-8 through nginx: {s}")
    if check(stored(memc_escape(default_key(u))), "invalid UTF-8 page not stored under nginx's key"):
        passed += 1
    r = fc.request(nginx_params("GET", b"/raw/\xff\xfe\x80"))
    check(r.status == 200, f"invalid UTF-8 straight: {r.status}")
    alive("invalid UTF-8")

    # ================= keys at the 250-byte limit =================
    c0 = counters()
    for n in (249, 250, 251):
        # "/" + 10 spaces (30 bytes escaped) + k... + "-NNN": n bytes escaped
        u = b"/" + b"%20" * 10 + b"k" * (n - 35) + b"-%d" % n
        key = memc_escape(default_key(u))
        check(len(key) == n, f"test bug: key length {len(key)} != {n}")
        s, h, b = http(web_port, u)
        check(s == 200, f"{n}-byte key: status {s}")
        if n <= 250:
            if check(stored(key), f"{n}-byte key not stored"):
                passed += 1
            before = counters()["requests"]
            s2, h2, b2 = http(web_port, u)
            check(s2 == 200 and b2 == b and counters()["requests"] == before,
                  f"{n}-byte key: second request was not a memcached hit")
        else:
            time.sleep(0.2)
    c1 = counters()
    if check(c1["skip_key_too_long"] - c0["skip_key_too_long"] == 1,
             f"251-byte key: skip_key_too_long +{c1['skip_key_too_long'] - c0['skip_key_too_long']}"):
        passed += 1
    alive("251-byte key")

    # ================= MEMC_BACKEND naming no configured node =================
    c0 = counters()
    bogus = [f"127.0.0.1:{trap.port}", f"localhost:{trap.port}", f"[::1]:{trap.port}",
             f"127.0.0.1:{mc_ports[0]}, 127.0.0.1:{trap.port}", "unix:/tmp/memfill-trap.sock",
             f"127.0.0.2:{mc_ports[0]}", "memfill_memcached", f"127.0.0.1:{trap.port}\r\nflush_all"]
    ok_nodes = 0
    for i, backend in enumerate(bogus * 3):
        u = f"/backend/{i}"
        r = fc.request(nginx_params("GET", u, extra={"MEMC_BACKEND": backend, "MEMC_KEY": u,
                                                      "MEMC_STATUS": "404"}))
        check(r.status == 200, f"MEMC_BACKEND {backend!r}: {r.status}")
        h = stored(u.encode())
        if check(h == [where(u)], f"MEMC_BACKEND {backend!r}: stored on {h}, computed {where(u)}"):
            ok_nodes += 1
    # a client cannot set it through nginx: it arrives as HTTP_MEMC_BACKEND
    s, h, b = http(web_port, "/backend/header", headers={"Memc-Backend": f"127.0.0.1:{trap.port}"})
    check(s == 200 and stored(b"/backend/header") == [where("/backend/header")],
          "Memc-Backend request header moved the store")
    time.sleep(0.3)
    c1 = counters()
    print(f"MEMC_BACKEND: {len(bogus) * 3} requests naming no configured node, "
          f"{trap.connections} connections to the trap port, {ok_nodes} stored on the computed "
          f"node, backend_mismatch +{c1['backend_mismatch'] - c0['backend_mismatch']}")
    if check(trap.connections == 0, f"memfill connected to the MEMC_BACKEND trap {trap.connections} times"):
        passed += 1
    check(ok_nodes == len(bogus) * 3, "pages not stored on the computed node")
    check(c1["backend_mismatch"] - c0["backend_mismatch"] == len(bogus) * 3,
          f"backend_mismatch +{c1['backend_mismatch'] - c0['backend_mismatch']}")
    check("names no configured memcached node" in st.log("memfill"), "mismatch not logged")
    check("\r\nflush_all" not in st.log("memfill"), "raw CR LF from MEMC_BACKEND reached the log")
    # the warning must not eat the access line's method and URI
    if check(st.log("memfill").count("access: GET /backend/") == len(bogus) * 3 + 1,
             "access log lines lost their method and URI next to a MEMC_BACKEND warning"):
        passed += 1
    alive("MEMC_BACKEND trap")

    # ================= MEMC_KEY with control bytes =================
    mcs[0].cmd(b"set sentinel 0 0 2\r\nok")
    mcs[1].cmd(b"set sentinel 0 0 2\r\nok")
    for raw in (b"/ctl/\x01\x02\x1f\x7f x\ty%", b"/smuggle\r\nflush_all", b"/smuggle2 0 0 1\r\nset a",
                b"/sp ace"):
        r = fc.request(nginx_params("GET", "/ctl", extra={"MEMC_KEY": raw}))
        check(r.status == 200, f"MEMC_KEY {raw!r}: {r.status}")
        esc = memc_escape(raw)
        h = stored(esc)
        if check(len(h) == 1 and h[0] == where(raw), f"MEMC_KEY {raw!r}: stored as {esc!r} on {h}"):
            passed += 1
    check(all(m.get(b"sentinel") for m in mcs), "a key smuggled a memcached command (flush_all ran)")
    alive("MEMC_KEY control bytes")

    # ================= docroot escapes via DOCUMENT_URI =================
    escapes = [b"/files/../secret.txt", b"/files/../../secret.txt", b"/files/../../../secret.txt",
               b"/files/%2e%2e/%2e%2e/secret.txt", b"/files/..%2F..%2Fsecret.txt",
               b"/files/link.txt", b"/files/./../../secret.txt", b"/files/hello.html/../../secret.txt",
               b"/files/\\..\\..\\secret.txt", b"/files//../../secret.txt", b"/files/..",
               b"/files/.../secret.txt", b"/files/" + b"../" * 30 + b"secret.txt",
               b"/files/..\x00/hello.html"]
    leaked = 0
    for d in escapes:
        r = fc.request(nginx_params("GET", d, document_uri=d))
        if SECRET in r.body:
            leaked += 1
        if check(SECRET not in r.body and r.status in (400, 403, 404),
                 f"DOCUMENT_URI {d!r}: {r.status} {r.body[:80]!r}"):
            passed += 1
        s, h, b = http(web_port, d.replace(b"\x00", b"%00"))
        check(SECRET not in b, f"through nginx {d!r}: the secret leaked")
    r = fc.request(nginx_params("GET", "/files/hello.html"))
    check(r.status == 200 and b"hello" in r.body, f"a file inside the root: {r.status}")
    print(f"docroot: {len(escapes)} escape attempts, {leaked} leaked")
    alive("docroot escapes")

    # ================= origin answers with CR, LF, NUL =================
    s, h, b = http(web_port, "/crlf")
    check(s in (200, 502), f"/crlf: {s}")
    if s == 200:
        check(h.get("x-before") == "ok" and h.get("x-after") == "ok", f"/crlf good headers lost: {h}")
        check(all("\r" not in v and "two" not in k for k, v in h.items()), f"/crlf smuggled: {h}")
    passed += 1
    print(f"origin /crlf (bare CR, folded line): {s}, headers {sorted(h)}")
    for path in ("/nul", "/badheader"):
        s, h, b = http(web_port, path)
        if check(s == 502 and not stored(memc_escape(path.encode()), 0.3), f"origin {path}: {s}"):
            passed += 1
    alive("origin CR/LF/NUL")

    # ================= the same worker served everything =================
    last = status()
    check(worker_pids() == first_pids, f"worker changed: {first_pids} -> {worker_pids()}")
    if check(last["abnormal_exits"] == 0 and last["restarts"] == 0,
             f"abnormal_exits {last['abnormal_exits']}, restarts {last['restarts']}"):
        passed += 1
    print(f"one worker (pid {first_pids}) answered {last['counters']['requests']} requests; "
          f"bad_request {last['counters']['bad_request']}, abnormal exits {last['abnormal_exits']}")
    for m in mcs:
        m.close()
finally:
    trap.close()
    if FAILURES:
        print(st.log("memfill")[-4000:])
    st.close()
finish(passed)
