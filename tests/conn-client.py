#!/usr/bin/env python3
"""conn-client.py PORT N GO OUT: N connections to a line server on
127.0.0.1:PORT (tests/progs/connkeeper). Each sends "hello K" and reads
its answer; the odd ones then send half a line ("part"). Writes "ready"
to OUT, waits (60 s at most) for a line on the FIFO GO, then each sends the rest
of its line ("ial K", or "again K") on the same connection and reads the
answer. Writes one line per connection and answer ("K first PID N
TEXT", "K second PID N TEXT" or "K closed") and ends with "done".
One process for every connection: no interpreter started per request."""
import os
import re
import select
import socket
import sys

port, n, go, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
answer = re.compile(rb"^pid=(\d+) tag=\S+ n=(\d+) (.*)\n$")
f = open(out, "w")


def say(line):
    f.write(line + "\n")
    f.flush()


def read_line(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data


socks = []
for k in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    socks.append(s)
for k, s in enumerate(socks):
    s.sendall(b"hello %d\n" % k)
for k, s in enumerate(socks):
    got = read_line(s)
    m = answer.match(got or b"")
    say("%d first %s" % (k, "%s %s %s" % (m.group(1).decode(), m.group(2).decode(),
                                          m.group(3).decode()) if m else "closed"))
    if k % 2:
        s.sendall(b"part")
say("ready")
# GO is a FIFO the test writes a line to (read-write: no blocking open).
gofd = os.open(go, os.O_RDWR)
select.select([gofd], [], [], 60)
os.close(gofd)
for k, s in enumerate(socks):
    try:
        s.sendall(b"ial %d\n" % k if k % 2 else b"again %d\n" % k)
    except OSError:
        pass
for k, s in enumerate(socks):
    try:
        got = read_line(s)
    except OSError:
        got = None
    m = answer.match(got or b"")
    say("%d second %s" % (k, "%s %s %s" % (m.group(1).decode(), m.group(2).decode(),
                                           m.group(3).decode()) if m else "closed"))
    s.close()
say("done")
