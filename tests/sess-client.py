#!/usr/bin/env python3
"""sess-client.py HOST PORT [SECONDS]: for each line ID read on stdin, sends the
datagram "sess=ID N" to a udp:// listener of handoff-httpd and prints
"ID PID GEN" from the answer ("pid=P tag=T gen=G " and the bytes sent),
or "ID lost" if none came within SECONDS (10), or "ID wrong ANSWER". One
process for the whole test: no interpreter started per datagram."""
import re
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[3]) if len(sys.argv) > 3 else 10)
s.connect((host, port))
head = re.compile(rb"^pid=(\d+) tag=\S+ gen=(\d+) ")
n = 0
for line in sys.stdin:
    sid = line.strip()
    n += 1
    payload = b"sess=%s %d" % (sid.encode(), n)
    s.send(payload)
    try:
        while True:
            got = s.recv(70000)
            # An answer to an earlier, lost one is not this one's.
            if got.endswith(payload) or not got.endswith(b" %d" % (n - 1)):
                break
    except socket.timeout:
        print("%s lost" % sid, flush=True)
        continue
    m = head.match(got)
    if m is None or not got.endswith(payload):
        print("%s wrong %r" % (sid, got), flush=True)
        continue
    print("%s %s %s" % (sid, m.group(1).decode(), m.group(2).decode()),
          flush=True)
