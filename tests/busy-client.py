#!/usr/bin/env python3
"""busy-client.py PORT COUNT GO OUT: one HTTP/1.1 connection to
handoff-httpd on 127.0.0.1:PORT, kept busy for as long as the test says.
It sends COUNT pipelined "GET /" and reads nothing, so that the server's
answers wait in its output: the connection is not idle, and does not
move to a successor. (No small SO_RCVBUF: a receive window below the
sender's MSS makes Linux send only on its persist timer, and a read of
them all stalls for minutes.) Writes "busy" to OUT once
answers have begun to come.
On a line on the FIFO GO it reads the COUNT answers and writes "read N
PID" (how many it read, and the pid that gave the last); on the next
line it sends one more "GET /" and writes "next PID keep" or "next PID
close" (whether the answer says Connection: close), or "next closed";
then "done". Each wait is bounded (60 s)."""
import os
import re
import select
import socket
import sys
import threading

port, count, go, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], \
    sys.argv[4]
f = open(out, "w")
pid_re = re.compile(rb"pid=(\d+) ")
REQ = b"GET / HTTP/1.1\r\nHost: busy\r\n\r\n"


def say(line):
    f.write(line + "\n")
    f.flush()


def wait_go():
    # Read-write: the open does not wait for a writer.
    fd = os.open(go, os.O_RDWR)
    ready, _, _ = select.select([fd], [], [], 60)
    if ready:
        os.read(fd, 64)
    os.close(fd)
    if not ready:
        say("no word on %s within 60 s" % go)
        sys.exit(1)


class Reader:
    def __init__(self, s):
        self.s, self.buf = s, b""

    def more(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def response(self):
        """(head, body) of the next response; EOFError if it closed."""
        while b"\r\n\r\n" not in self.buf:
            self.more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length: *(\d+)", head)
        size = int(m.group(1)) if m else 0
        while len(self.buf) < size:
            self.more()
        body, self.buf = self.buf[:size], self.buf[size:]
        return head, body


s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(("127.0.0.1", port))
# The server may stop reading while its answers wait: the requests go
# from a thread, so that reading them later unblocks it.
sender = threading.Thread(target=s.sendall, args=(REQ * count,),
                          daemon=True)
sender.start()
# Answers have begun once the socket is readable (60 s at most).
ready, _, _ = select.select([s], [], [], 60)
if not ready:
    say("no answer within 60 s")
    sys.exit(1)
say("busy")
wait_go()
r = Reader(s)
n, pid = 0, "?"
try:
    while n < count:
        head, body = r.response()
        if not head.startswith(b"HTTP/1.1 200 "):
            break
        m = pid_re.search(body)
        pid = m.group(1).decode() if m else "?"
        n += 1
except (EOFError, OSError):
    pass
sender.join(60)
say("read %d %s" % (n, pid))
wait_go()
try:
    s.sendall(REQ)
    head, body = r.response()
    m = pid_re.search(body)
    say("next %s %s" % (m.group(1).decode() if m else "?",
                        "close" if re.search(rb"(?i)connection: *close",
                                             head) else "keep"))
except (EOFError, OSError):
    say("next closed")
s.close()
say("done")
