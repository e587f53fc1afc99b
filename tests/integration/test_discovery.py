#!/usr/bin/env python3
"""test_discovery.py - ElastiCache-style cluster discovery.

A small fake configuration endpoint (the one test double allowed: there is
no cloud here) answers `config get cluster` in ElastiCache's format over
real memcached nodes. memfill polls it; when the node list changes it
logs the change and rolls its workers onto the new list; memfillctl where
and nginx-conf print the discovered list; nginx configured from that
output then reads every stored page (100% hits with memfill stopped). An
endpoint that answers ERROR (a plain memcached) sends memfill back to its
configured node.
"""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FAILURES, MEMFILL, Memcached, Stack, check, ctl, default_key, finish,
                     free_port, http, memc_escape, need)

for b in ("nginx", "memcached", MEMFILL):
    need(b)


class FakeConfigEndpoint:
    """Answers `config get cluster` with self.nodes, or ERROR when None."""

    def __init__(self, port):
        self.nodes = None
        self.version = 0
        self.asked = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        threading.Thread(target=self.serve, daemon=True).start()

    def set(self, nodes):
        self.nodes = nodes
        self.version += 1

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                data = b""
                while not data.endswith(b"\r\n"):
                    chunk = c.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                self.asked += 1
                if data.strip() != b"config get cluster" or self.nodes is None:
                    c.sendall(b"ERROR\r\n")
                    continue
                body = (f"{self.version}\n" + " ".join(
                    f"node{i}.cache.local|127.0.0.1|{p}" for i, p in enumerate(self.nodes))
                    + "\n\r\n").encode()
                c.sendall(b"CONFIG cluster 0 %d\r\n" % len(body) + body + b"END\r\n")


def wait_log(st, text, timeout=8.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in st.log("memfill"):
            return True
        time.sleep(0.05)
    return False


passed = 0
st = Stack("discovery", deadline=120)
try:
    ports = [free_port() for _ in range(3)]
    for p in ports:
        st.memcached(port=p)
    mcs = {f"127.0.0.1:{p}": Memcached(port=p) for p in ports}
    ep_port, app_port, web_port = free_port(), free_port(), free_port()
    ep = FakeConfigEndpoint(ep_port)
    ep.set(ports[:2])
    st.write("page.mustache", "<p>{{path}}</p>\n")
    cfg = {
        "listen": f"127.0.0.1:{app_port}",
        "workers": 2,
        "memcached": {"servers": [f"127.0.0.1:{ports[0]}"],
                      "discovery": {"endpoint": f"127.0.0.1:{ep_port}", "interval": 1}},
        "routes": [{"prefix": "/", "handler": "template", "template": "page.mustache"}],
    }
    conf = st.write("memfill.json", json.dumps(cfg))
    memfill = st.memfill(conf, port=app_port)
    check(wait_log(st, "lists 2 nodes"), "first discovered list not logged")

    def nginx_conf():
        t = ctl("nginx-conf", "--listen", f"127.0.0.1:{web_port}", config=conf)
        check(t.returncode == 0, f"nginx-conf: {t.stderr!r}")
        return t.stdout.decode()

    def run_round(label, nodes):
        global passed
        for m in mcs.values():
            m.flush()
        uris = [f"/{label}/{i}".encode() for i in range(60)]
        bodies = {u: http(web_port, u)[2] for u in uris}
        w = ctl("where", "-", config=conf,
                input=b"\n".join(default_key(u) for u in uris) + b"\n")
        lines = w.stdout.decode().splitlines()
        seen = set()
        for u, line in zip(uris, lines):
            node = line.split("\t")[0]
            item = mcs[node].wait(memc_escape(default_key(u))) if node in mcs else None
            others = [a for a, m in mcs.items() if a != node and m.get(memc_escape(default_key(u)))]
            if check(item is not None and item[0] == bodies[u] and not others,
                     f"{label}: {u!r} expected on {node}, others {others}"):
                passed += 1
                seen.add(node)
        check(seen == {f"127.0.0.1:{p}" for p in nodes}, f"{label}: nodes used {seen}")
        return uris, bodies

    text = nginx_conf()
    check(text.count("server 127.0.0.1:") == 3 and f":{ports[2]} " not in text,
          "nginx-conf does not show the 2 discovered nodes")
    ng = st.nginx(text, web_port)
    run_round("two", ports[:2])

    # the cluster grows: memfill follows, nginx is regenerated and reloaded
    ep.set(ports)
    check(wait_log(st, "lists 3 nodes"), "changed node list not logged")
    time.sleep(0.5)  # the old generation retires
    text = nginx_conf()
    check(f"server 127.0.0.1:{ports[2]} " in text, "nginx-conf misses the new node")
    st.nginx(text, web_port, reload_proc=ng)
    uris, bodies = run_round("three", ports)

    # a plain memcached endpoint (ERROR): back to the configured node
    ep.set(None)
    check(wait_log(st, "answers ERROR"), "ERROR fallback not logged")
    w = ctl("where", "/x", config=conf)
    if check(w.stdout.decode().startswith(f"127.0.0.1:{ports[0]}\t"), f"fallback where: {w.stdout!r}"):
        passed += 1

    st.stop(memfill)
    hits = sum(1 for u in uris if http(web_port, u)[2] == bodies[u])
    if check(hits == len(uris), f"{hits}/{len(uris)} hits with memfill stopped"):
        passed += 1
    print(f"after the cluster grew to 3 nodes: {hits}/{len(uris)} pages served from memcached")
finally:
    if FAILURES:
        print(st.log("memfill")[-3000:])
    st.close()
finish(passed)
