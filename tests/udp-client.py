#!/usr/bin/env python3
"""udp-client.py HOST PORT STOPFILE: one datagram at a time to a udp://
listener of handoff-httpd, each waited for (5 s at most), until STOPFILE
exists and 50 more were answered after it, or 30000 were sent. Prints one
line per answering pid ("pid P tag T gen G: N") and "sent N answered N
lost N wrong N"; a wrong answer is one that does not end with what was
sent or does not start "pid=P tag=T gen=G "."""
import os
import re
import socket
import sys

host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect((host, port))
by, sent, answered, lost, wrong, after = {}, 0, 0, 0, 0, None
head = re.compile(rb"^pid=(\d+) tag=(\S+) gen=(\d+) ")
while sent < 30000 and (after is None or answered - after < 50):
    if after is None and os.path.exists(stop):
        after = answered
    payload = b"datagram %d " % sent + b"x" * (sent % 300)
    s.send(payload)
    sent += 1
    try:
        got = s.recv(70000)
    except socket.timeout:
        lost += 1
        continue
    m = head.match(got)
    if m is None or got[m.end():] != payload:
        wrong += 1
        continue
    answered += 1
    if answered == 1:
        print("first answer", flush=True)
    k = b"pid %s tag %s gen %s" % m.groups()
    by[k] = by.get(k, 0) + 1
for k, n in sorted(by.items()):
    print("%s: %d" % (k.decode(), n))
print("sent %d answered %d lost %d wrong %d" % (sent, answered, lost, wrong))
