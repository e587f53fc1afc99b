#!/usr/bin/env python3
"""origin.py - a small real HTTP origin for memfill's upstream tests.

Usage: python3 origin.py PORT [PIDFILE]

Binds 127.0.0.1:PORT (PORT 0 picks a free port), then writes its pid to
PIDFILE (when given; written after the bind, so the file appearing means
the port accepts connections) and prints "listening on 127.0.0.1:PORT".
Exits on SIGTERM or SIGINT, removing PIDFILE. HTTP/1.1 with keep-alive;
python3 standard library only. Set ORIGIN_VERBOSE=1 to log requests to
stderr.

Every response is 200 with a text/plain body naming the endpoint unless
said otherwise. Any method is answered (HEAD gets the headers only).

Caching rules (one endpoint per rule memfill's cachepolicy applies):
  /plain          Cache-Control: max-age=120                  -> store, 120 s
  /default        no caching header at all                    -> store, route default
  /private        Cache-Control: private, max-age=60          -> refuse
  /nostore        Cache-Control: no-store                     -> refuse
  /nocache        Cache-Control: no-cache                     -> refuse
  /maxage0        Cache-Control: max-age=0                    -> refuse
  /smaxage        Cache-Control: s-maxage=30, max-age=100     -> store, 30 s
  /smaxage0       Cache-Control: public, s-maxage=0           -> refuse
  /age            Cache-Control: max-age=100 and Age: 40      -> store, 60 s
  /accel          X-Accel-Expires: 42 (and max-age=100)       -> store, 42 s
  /accel0         X-Accel-Expires: 0 (and max-age=100)        -> refuse
  /accel-abs      X-Accel-Expires: @<now + 75>                -> store, ~75 s
  /accel-private  X-Accel-Expires: 60, Cache-Control: private -> store, 60 s
                  (a positive X-Accel-Expires overrides Cache-Control, as in nginx)
  /expires        Expires: Date + 90 s                        -> store, 90 s
  /expires-past   Expires one hour ago                        -> refuse
  /expires-bad    Expires: 0                                  -> refuse
  /cookie         Set-Cookie: sid=abc; max-age=120            -> refuse
  /vary-ae        Vary: Accept-Encoding; max-age=120          -> store, 120 s
  /vary-cookie    Vary: Cookie; max-age=120                   -> refuse
  /gzip           Content-Encoding: gzip (a real gzip body), max-age=60
                  -> relayed as is, refused (nginx would replay it unlabelled)
  /status/NNN     status NNN (max-age=120; 3xx add Location: /plain) -> refuse

Relay behaviour:
  /echo, /echo/*  JSON of what arrived: {"method", "target" (raw request
                  target), "headers": [[name, value], ...] in arrival order,
                  "body" (latin-1 decoded), "body_len"}. Cache-Control:
                  no-store unless ?cc=VALUE gives another Cache-Control.
  /app/*          a page as a typical web application builds it, trusting
                  what a front proxy would normally assert (the poisoning
                  tests prove these reach it only when memfill lets them):
                  the resource is the decoded path, or X-Original-URL /
                  X-Rewrite-URL when sent; its links use X-Forwarded-Host,
                  else Forwarded's host=, else Host (with X-Forwarded-Proto
                  or Forwarded's proto=, X-Forwarded-Port and
                  X-Forwarded-Prefix); the method shown is
                  X-HTTP-Method-Override when sent; a sessionid cookie (in
                  any Cookie line) greets that user; Accept-Language fr
                  says Bonjour. Cache-Control: max-age=120 and no Vary, as
                  careless applications do. The page ends with an HTML
                  comment holding the /echo JSON of the request.
  /_log           JSON list of {"method", "target", "headers"} of every
                  request since the last /_log?clear=1 (in arrival order;
                  /_log and /_hits are not recorded).
  /tags           X-Memfill-Tags: a b (and a second header "c,d"), max-age=60
  /hop            headers a relay must drop (Keep-Alive, Upgrade, Trailer,
                  TE, Proxy-Foo, Proxy-Authenticate, Status: 500) plus one
                  it must keep (X-Kept: yes); max-age=60
  /crlf           raw bytes: a header value with a bare CR ("X-Bad-Cr:
                  one<CR>two"), an obsolete folded line ("X-Folded: one" then
                  " two"), between good headers X-Before: ok and X-After: ok;
                  max-age=60; then the connection closes
  /nul            raw bytes: like /crlf with a NUL in a header value
                  ("X-Bad-Nul"); libcurl refuses such a response outright
  /interim        a 103 Early Hints (Link: </a.css>) before the 200
                  (X-Final: yes, max-age=60)
  /badheader      raw bytes: a header line without a colon (invalid HTTP)
  /reset          closes the connection without answering
  /slow?ms=N      sleeps N ms (default 1000), then /plain's answer
  /big?bytes=N    a body of N bytes of 'x' (default 1 MiB), max-age=60, with a
                  Content-Length; add &chunked=1 to send it chunked instead
  /_hits?path=P   {"path": P, "hits": N}: how many requests reached path P
                  (the path without its query; /_hits itself is not counted)
  anything else   404, Cache-Control: max-age=120
"""
import email.utils
import gzip
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

HITS = {}
HITS_LOCK = threading.Lock()
LOG = []  # (method, target, headers) of each request, for /_log

SIMPLE = {
    "/plain": [("Cache-Control", "max-age=120")],
    "/default": [],
    "/private": [("Cache-Control", "private, max-age=60")],
    "/nostore": [("Cache-Control", "no-store")],
    "/nocache": [("Cache-Control", "no-cache")],
    "/maxage0": [("Cache-Control", "max-age=0")],
    "/smaxage": [("Cache-Control", "s-maxage=30, max-age=100")],
    "/smaxage0": [("Cache-Control", "public, s-maxage=0")],
    "/age": [("Cache-Control", "max-age=100"), ("Age", "40")],
    "/accel": [("X-Accel-Expires", "42"), ("Cache-Control", "max-age=100")],
    "/accel0": [("X-Accel-Expires", "0"), ("Cache-Control", "max-age=100")],
    "/accel-private": [("X-Accel-Expires", "60"), ("Cache-Control", "private")],
    "/expires-bad": [("Expires", "0")],
    "/cookie": [("Set-Cookie", "sid=abc; Path=/; HttpOnly"), ("Cache-Control", "max-age=120")],
    "/vary-ae": [("Vary", "Accept-Encoding"), ("Cache-Control", "max-age=120")],
    "/vary-cookie": [("Vary", "Cookie"), ("Cache-Control", "max-age=120")],
    "/tags": [("X-Memfill-Tags", "a b"), ("X-Memfill-Tags", "c,d"),
              ("Cache-Control", "max-age=60")],
}


def http_date(t):
    return email.utils.formatdate(t, usegmt=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "origin.py"

    now = None  # the second this request is answered in (Date, Expires)

    def date_time_string(self, timestamp=None):
        # One clock reading per request, so Expires - Date is exact.
        return http_date(timestamp if timestamp is not None else (self.now or time.time()))

    def log_message(self, fmt, *args):
        if os.environ.get("ORIGIN_VERBOSE") == "1":
            sys.stderr.write("origin: " + (fmt % args) + "\n")

    # --- helpers ---

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def reply(self, status, headers, body, content_type="text/plain; charset=utf-8"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def raw(self, data):
        """Writes bytes as they are, then closes the connection."""
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    # --- dispatch ---

    def handle_any(self):
        try:
            self.dispatch()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def dispatch(self):
        url = urlsplit(self.path)
        path, q = url.path, parse_qs(url.query)
        body = self.read_body()
        if path not in ("/_hits", "/_log"):
            with HITS_LOCK:
                HITS[path] = HITS.get(path, 0) + 1
                LOG.append({"method": self.command, "target": self.path,
                            "headers": [[k, v] for k, v in self.headers.items()]})
        now = self.now = int(time.time())

        if path in SIMPLE:
            return self.reply(200, SIMPLE[path], path[1:] + "\n")
        if path == "/_hits":
            p = q.get("path", [""])[0]
            with HITS_LOCK:
                n = HITS.get(p, 0)
            return self.reply(200, [("Cache-Control", "no-store")],
                              json.dumps({"path": p, "hits": n}), "application/json")
        if path == "/_log":
            with HITS_LOCK:
                doc = json.dumps(LOG)
                if q.get("clear"):
                    LOG.clear()
            return self.reply(200, [("Cache-Control", "no-store")], doc, "application/json")
        if path.startswith("/app/"):
            return self.app_page(path, url.query, body)
        if path == "/accel-abs":
            return self.reply(200, [("X-Accel-Expires", "@%d" % int(now + 75))], "accel-abs\n")
        if path == "/expires":
            return self.reply(200, [("Expires", http_date(now + 90))], "expires\n")
        if path == "/expires-past":
            return self.reply(200, [("Expires", http_date(now - 3600))], "expires-past\n")
        if path == "/gzip":
            return self.reply(200, [("Content-Encoding", "gzip"), ("Cache-Control", "max-age=60")],
                              gzip.compress(b"gzip\n"))
        if path.startswith("/status/"):
            code = int(path[8:]) if path[8:].isdigit() else 500
            hdrs = [("Cache-Control", "max-age=120")]
            if 300 <= code < 400:
                hdrs.append(("Location", "/plain"))
            return self.reply(code, hdrs, "status %d\n" % code)
        if path == "/echo" or path.startswith("/echo/"):
            cc = q.get("cc", ["no-store"])[0]
            doc = {
                "method": self.command,
                "target": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("latin-1"),
                "body_len": len(body),
            }
            return self.reply(200, [("Cache-Control", cc)], json.dumps(doc), "application/json")
        if path == "/hop":
            return self.reply(200, [("Keep-Alive", "timeout=5"), ("Upgrade", "h2c"),
                                    ("Trailer", "X-T"), ("TE", "trailers"),
                                    ("Proxy-Foo", "bar"), ("Proxy-Authenticate", "Basic"),
                                    ("Status", "500"), ("X-Kept", "yes"),
                                    ("Cache-Control", "max-age=60")], "hop\n")
        if path == "/crlf":
            return self.raw(b"HTTP/1.1 200 OK\r\n"
                            b"Content-Type: text/plain\r\n"
                            b"Cache-Control: max-age=60\r\n"
                            b"X-Before: ok\r\n"
                            b"X-Bad-Cr: one\rtwo\r\n"
                            b"X-Folded: one\r\n two\r\n"
                            b"X-After: ok\r\n"
                            b"Content-Length: 5\r\n"
                            b"Connection: close\r\n"
                            b"\r\n"
                            b"crlf\n")
        if path == "/nul":
            return self.raw(b"HTTP/1.1 200 OK\r\n"
                            b"Content-Type: text/plain\r\n"
                            b"X-Bad-Nul: one\x00two\r\n"
                            b"Content-Length: 4\r\n"
                            b"Connection: close\r\n"
                            b"\r\n"
                            b"nul\n")
        if path == "/interim":
            return self.raw(b"HTTP/1.1 103 Early Hints\r\n"
                            b"Link: </a.css>; rel=preload\r\n"
                            b"\r\n"
                            b"HTTP/1.1 200 OK\r\n"
                            b"Content-Type: text/plain\r\n"
                            b"Cache-Control: max-age=60\r\n"
                            b"X-Final: yes\r\n"
                            b"Content-Length: 8\r\n"
                            b"Connection: close\r\n"
                            b"\r\n"
                            b"interim\n")
        if path == "/badheader":
            return self.raw(b"HTTP/1.1 200 OK\r\n"
                            b"Content-Type: text/plain\r\n"
                            b"this line has no colon\r\n"
                            b"Content-Length: 4\r\n"
                            b"Connection: close\r\n"
                            b"\r\n"
                            b"bad\n")
        if path == "/reset":
            self.close_connection = True
            return None
        if path == "/slow":
            ms = int(q.get("ms", ["1000"])[0])
            time.sleep(ms / 1000.0)
            return self.reply(200, [("Cache-Control", "max-age=120")], "slow\n")
        if path == "/big":
            n = int(q.get("bytes", [str(1 << 20)])[0])
            chunked = q.get("chunked", ["0"])[0] == "1"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Cache-Control", "max-age=60")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command == "HEAD":
                return None
            block = b"x" * 65536
            left = n
            while left > 0:
                part = block[:min(left, len(block))]
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                else:
                    self.wfile.write(part)
                left -= len(part)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            return None
        return self.reply(404, [("Cache-Control", "max-age=120")], "not found\n")

    def app_page(self, path, query, body):
        h = self.headers
        original = h.get("X-Original-URL") or h.get("X-Rewrite-URL")
        resource = unquote(urlsplit(original).path if original else path, "latin-1")
        fwd = {}
        for part in (h.get("Forwarded") or "").replace(",", ";").split(";"):
            k, _, v = part.strip().partition("=")
            fwd.setdefault(k.lower(), v.strip('"'))
        host = h.get("X-Forwarded-Host") or fwd.get("host") or h.get("Host") or ""
        scheme = h.get("X-Forwarded-Proto") or fwd.get("proto") or "http"
        port = h.get("X-Forwarded-Port")
        base = "%s://%s%s%s" % (scheme, host, ":" + port if port else "",
                                h.get("X-Forwarded-Prefix") or "")
        cookies = {}
        for line in h.get_all("Cookie") or []:
            for pair in line.split(";"):
                k, _, v = pair.strip().partition("=")
                cookies.setdefault(k, v)
        user = cookies.get("sessionid")
        greeting = "Bonjour" if (h.get("Accept-Language") or "").startswith("fr") else "Hello"
        echo = json.dumps({"method": self.command, "target": self.path,
                           "headers": [[k, v] for k, v in h.items()],
                           "body_len": len(body)})
        page = ("<!DOCTYPE html>\n<title>%s</title>\n<p>resource: %s</p>\n<p>query: %s</p>\n"
                "<p>method: %s</p>\n<p>%s, %s</p>\n<a href=\"%s%s/next\">next</a>\n"
                "<!-- %s -->\n" % (resource, resource, query,
                                   h.get("X-HTTP-Method-Override") or self.command, greeting,
                                   user or "visitor", base, resource, echo.replace("--", "- -")))
        return self.reply(200, [("Cache-Control", "max-age=120")], page.encode("latin-1", "replace"),
                          "text/html; charset=utf-8")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: origin.py PORT [PIDFILE]\n")
        return 64
    port = int(sys.argv[1])
    pidfile = sys.argv[2] if len(sys.argv) > 2 else None
    server = Server(("127.0.0.1", port), Handler)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if pidfile:
            tmp = pidfile + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % os.getpid())
            os.rename(tmp, pidfile)
        print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
