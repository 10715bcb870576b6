#!/usr/bin/env python3
"""http-client.py PORT N GO OUT: N keep-alive HTTP/1.1 connections to
handoff-httpd on 127.0.0.1:PORT. Each sends "GET /?k=K" and reads the
response; connection 0 then sends a whole request and half of another
in one write ("GET /?k=0a" answered before GO, "GET /?k=0b" half), and
the odd ones send half a request ("GET /?k=K" without its last line).
Writes "ready" to OUT, waits (60 s at most) for a line on the FIFO GO, then every
connection sends the rest (the odd ones and 0 finish their half; the
even ones a pipelined pair "GET /?k=Kc" and "GET /?k=Kd" in one write)
and reads every response owed. One line per response, "K PID",
or "K closed"; then "done". (The body, "pid=P tag=T gen=G", does not
echo the request: responses are told apart by their number and order.)"""
import os
import re
import select
import socket
import sys

port, n, go, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
f = open(out, "w")
pid_re = re.compile(rb"pid=(\d+) ")


def say(line):
    f.write(line + "\n")
    f.flush()


def req(k, last=True):
    r = b"GET /?k=%s HTTP/1.1\r\nHost: t\r\n" % k.encode()
    return r + b"\r\n" if last else r


class Reader:
    def __init__(self, s):
        self.s, self.buf = s, b""

    def response(self):
        """One response's body, or None if the connection closed."""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length: *(\d+)", head)
        size = int(m.group(1)) if m else 0
        while len(rest) < size:
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            rest += chunk
        self.buf = rest[size:]
        return rest[:size]


def report(k, body):
    if body is None:
        say("%d closed" % k)
        return
    p = pid_re.search(body)
    say("%d %s" % (k, p.group(1).decode() if p else "?"))


conns = []
for k in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    conns.append((s, Reader(s)))
for k, (s, r) in enumerate(conns):
    s.sendall(req(str(k)))
for k, (s, r) in enumerate(conns):
    report(k, r.response())
s0, r0 = conns[0]
s0.sendall(req("0a") + req("0b", last=False))
report(0, r0.response())
for k, (s, r) in enumerate(conns):
    if k % 2:
        s.sendall(req(str(k) + "b", last=False))
say("ready")
# GO is a FIFO the test writes a line to (read-write: no blocking open).
gofd = os.open(go, os.O_RDWR)
select.select([gofd], [], [], 60)
os.close(gofd)
for k, (s, r) in enumerate(conns):
    try:
        if k == 0 or k % 2:
            s.sendall(b"\r\n")
        else:
            s.sendall(req(str(k) + "c") + req(str(k) + "d"))
    except OSError:
        pass
for k, (s, r) in enumerate(conns):
    for _ in range(1 if k == 0 or k % 2 else 2):
        try:
            report(k, r.response())
        except OSError:
            report(k, None)
    s.close()
say("done")
