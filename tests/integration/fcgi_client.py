"""fcgi_client.py - a small FastCGI client for tests (Python 3 stdlib only).

Speaks the FastCGI 1.0 responder protocol the way nginx's fastcgi_pass
does, so a test can send memfill requests that nginx would never let
through: hostile DOCUMENT_URI / REQUEST_URI values, params with NUL or
control bytes, missing params, odd methods.

    from fcgi_client import FastCGIClient, nginx_params

    c = FastCGIClient(("127.0.0.1", 9000))          # or FastCGIClient("/run/memfill.sock")
    r = c.request(nginx_params("GET", b"/a/b?x=1"))  # params: dict or list of pairs
    r.status, r.headers["content-type"], r.body      # the CGI answer, parsed
    r.stderr, r.app_status, r.protocol_status        # the rest of what came back

One request per connection (FCGI_KEEP_CONN is not set, so the server closes
the connection after FCGI_END_REQUEST, as with nginx's default). Names and
values may be str (encoded as UTF-8) or bytes (sent as is, NUL included).
Every socket operation is bounded by the client's timeout; a server that
closes the connection before FCGI_END_REQUEST raises FastCGIError.
"""
import socket
import struct

FCGI_VERSION_1 = 1
FCGI_BEGIN_REQUEST = 1
FCGI_ABORT_REQUEST = 2
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_RESPONDER = 1
FCGI_KEEP_CONN = 1
FCGI_REQUEST_COMPLETE = 0

MAX_CONTENT = 65535


class FastCGIError(Exception):
    """The server broke the protocol or closed the connection early."""


def _b(s):
    return s if isinstance(s, bytes) else str(s).encode("utf-8")


def _length(n):
    """A name-value pair length: 1 byte below 128, else 4 bytes, top bit set."""
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params):
    """Encodes params (a dict or an iterable of (name, value) pairs) as the
    body of FCGI_PARAMS records."""
    items = params.items() if isinstance(params, dict) else params
    out = bytearray()
    for name, value in items:
        name, value = _b(name), _b(value)
        out += _length(len(name)) + _length(len(value)) + name + value
    return bytes(out)


def record(rtype, content=b"", request_id=1):
    """One record with content (at most 65535 bytes), padded to 8 bytes."""
    if len(content) > MAX_CONTENT:
        raise ValueError("record content too long")
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBB", FCGI_VERSION_1, rtype, request_id, len(content), pad, 0) \
        + content + b"\0" * pad


def stream(rtype, data, request_id=1):
    """data split into records, followed by the empty record ending the stream."""
    out = bytearray()
    for i in range(0, len(data), MAX_CONTENT):
        out += record(rtype, data[i:i + MAX_CONTENT], request_id)
    out += record(rtype, b"", request_id)
    return bytes(out)


class Response:
    """What one request brought back. status, headers (lower-cased names,
    the last value wins; every value is also in header_list) and body come
    from parsing stdout as a CGI response ("Status: 404 ..." line, blank
    line, body); status is 200 when there is no Status header."""

    def __init__(self, stdout, stderr, app_status, protocol_status):
        self.stdout = stdout
        self.stderr = stderr
        self.app_status = app_status
        self.protocol_status = protocol_status
        self.status = 200
        self.headers = {}
        self.header_list = []
        head, sep, body = stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = stdout.partition(b"\n\n")
        self.body = body
        for line in head.splitlines():
            name, _, value = line.partition(b":")
            name = name.decode("latin-1").strip().lower()
            value = value.decode("latin-1").strip()
            self.header_list.append((name, value))
            self.headers[name] = value
            if name == "status":
                self.status = int(value.split()[0])

    def __repr__(self):
        return f"<Response {self.status} {len(self.body)} bytes>"


class FastCGIClient:
    def __init__(self, address, timeout=10.0):
        """address: (host, port) for TCP, or a path for a unix socket."""
        self.address = address
        self.timeout = timeout

    def _connect(self):
        if isinstance(self.address, (str, bytes)):
            s = socket.socket(socket.AF_UNIX)
        else:
            s = socket.socket(socket.AF_INET)
        s.settimeout(self.timeout)
        s.connect(self.address)
        return s

    def request(self, params, stdin=b"", request_id=1):
        """Sends BEGIN_REQUEST (responder), PARAMS, STDIN; reads STDOUT,
        STDERR and END_REQUEST. Returns a Response."""
        payload = record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", FCGI_RESPONDER, 0), request_id)
        payload += stream(FCGI_PARAMS, encode_params(params), request_id)
        payload += stream(FCGI_STDIN, _b(stdin), request_id)
        return self.exchange(payload, request_id)

    def exchange(self, payload, request_id=1):
        """Sends raw bytes (records built with record()/stream(), for tests
        that need malformed sequences) and reads the answer to request_id."""
        s = self._connect()
        try:
            s.sendall(payload)
            f = s.makefile("rb")
            out, err = bytearray(), bytearray()
            while True:
                head = f.read(8)
                if len(head) < 8:
                    raise FastCGIError("connection closed before FCGI_END_REQUEST")
                version, rtype, rid, clen, plen, _ = struct.unpack(">BBHHBB", head)
                if version != FCGI_VERSION_1:
                    raise FastCGIError(f"bad record version {version}")
                content = f.read(clen)
                f.read(plen)
                if len(content) < clen:
                    raise FastCGIError("truncated record")
                if rid != request_id:
                    continue
                if rtype == FCGI_STDOUT:
                    out += content
                elif rtype == FCGI_STDERR:
                    err += content
                elif rtype == FCGI_END_REQUEST:
                    app, proto = struct.unpack(">IB3x", content)
                    return Response(bytes(out), bytes(err), app, proto)
                else:
                    raise FastCGIError(f"unexpected record type {rtype}")
        finally:
            s.close()


def nginx_params(method, target, document_uri=None, headers=None, body=b"", extra=None):
    """The params nginx's fastcgi_params (plus memfill's generated ones)
    would send for method and target (the raw request target, bytes or
    str). document_uri defaults to the target's path as sent (not decoded:
    pass the decoded $uri explicitly when it matters). headers become
    HTTP_* params; extra params are added last and override earlier ones."""
    target = _b(target)
    path, _, query = target.partition(b"?")
    p = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": method,
        "REQUEST_URI": target,
        "DOCUMENT_URI": path if document_uri is None else _b(document_uri),
        "QUERY_STRING": query,
        "SCRIPT_NAME": path,
        "REQUEST_SCHEME": "http",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "SERVER_ADDR": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_NAME": "localhost",
        "HTTP_HOST": "localhost",
    }
    if body:
        p["CONTENT_LENGTH"] = str(len(body))
    for k, v in (headers or {}).items():
        p["HTTP_" + k.upper().replace("-", "_")] = v
    p.update(extra or {})
    return p
