#!/usr/bin/env python3
"""idle_clients: the client and the clocks of tools/bench/idle-conns.

clients PORT N GO OUT [--sources K] [--bound S]
    Opens N keep-alive HTTP/1.1 connections to 127.0.0.1:PORT from
    127.0.0.2 .. 127.0.0.(K+1) (ephemeral ports per source address), sends
    "GET /" on each and reads the answer, then writes "ready N" to OUT and
    holds them idle, watching each for an end (EOF or reset) until the
    file GO exists. Then each sends one more "GET /" on its connection. A
    connection that ends before the answer (while idle, or after the
    request) is a reconnect: a new connection sends the request again,
    once; a request that gets no answer even so has failed. An answer
    with "Connection: close" also costs the client a new connection for
    its next request and is counted apart. One thread, one selector, no
    process per connection. Bounded: S seconds in all (default 120).
    Writes to OUT, after "ready":
      result conns=N ended_idle=A no_answer=B answered_close=C
          reconnects=A+B+C failed=D answered=E pids=PID:COUNT,...
    (pids: the pid= of each answer to the second request, where the body
    has one).

stamp OUT FIFO
    Creates OUT, then copies what comes through FIFO to it, each line
    prefixed with the wall clock in nanoseconds when it was read: "NS
    line". Started and waited for (OUT exists) before the program that
    writes to FIFO, so no line waits for the interpreter to start.

exit PID BOUND
    Prints the wall clock in nanoseconds when process PID exits (pidfd),
    or "running" if it has not within BOUND seconds. Prints "armed" first,
    once the pidfd is open.
"""
import gc
import os
import selectors
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
CONNECTING_MAX = 256        # connects in flight at once, below any backlog


class Conn:
    __slots__ = ("k", "sock", "buf", "state", "retried", "close", "pid")

    def __init__(self, k):
        self.k = k
        self.sock = None
        self.buf = b""
        self.state = "new"
        self.retried = False
        self.close = False
        self.pid = None


def parse(buf):
    """(complete, close, pid) of one response at the start of buf."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False, False, None
    head = buf[:head_end].lower().split(b"\r\n")
    length = 0
    close = False
    for line in head[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            length = int(value.strip())
        elif name.strip() == b"connection" and b"close" in value:
            close = True
    body = buf[head_end + 4:]
    if len(body) < length:
        return False, close, None
    pid = None
    at = body.find(b"pid=")
    if at >= 0:
        digits = body[at + 4:].split()[0] if body[at + 4:].split() else b""
        pid = digits.decode(errors="replace")
    return True, close, pid


class Clients:
    def __init__(self, port, n, sources):
        self.port = port
        self.n = n
        self.sources = ["127.0.0.%d" % (2 + i) for i in range(sources)]
        self.sel = selectors.DefaultSelector()
        self.conns = [Conn(k) for k in range(n)]
        self.ended_idle = self.no_answer = self.answered_close = 0
        self.failed = self.answered = 0
        self.pids = {}
        self.busy = 0          # connections waiting for an answer
        self.connecting = 0

    def connect(self, c):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((self.sources[c.k % len(self.sources)], 0))
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", self.port))
        if err not in (0, 115):     # EINPROGRESS
            s.close()
            raise OSError(err, os.strerror(err))
        c.sock = s
        c.buf = b""
        c.state = "connecting"
        self.connecting += 1
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def drop(self, c):
        if c.sock is not None:
            self.sel.unregister(c.sock)
            c.sock.close()
            c.sock = None

    def send(self, c):
        c.buf = b""
        try:
            c.sock.sendall(REQUEST)
        except OSError:
            return False
        c.state = "waiting"
        self.sel.modify(c.sock, selectors.EVENT_READ, c)
        return True

    def ended(self, c, second):
        """c's connection ended before an answer."""
        self.drop(c)
        if not second:
            c.state = "dead"
            self.busy -= 1
            return
        if c.retried:
            self.failed += 1
            c.state = "done"
            self.busy -= 1
            return
        c.retried = True
        self.no_answer += 1
        self.connect(c)

    def on_event(self, c, mask, second):
        if c.state == "connecting":
            self.connecting -= 1
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err or not self.send(c):
                self.ended(c, second)
            return
        try:
            data = c.sock.recv(65536)
        except OSError:
            data = b""
        if c.state == "done":
            self.drop(c)        # its answer is in; what follows is not ours
            return
        if c.state == "idle":
            # Anything while idle is the server ending the connection.
            self.drop(c)
            c.state = "ended"
            self.ended_idle += 1
            return
        if not data:
            self.ended(c, second)
            return
        c.buf += data
        done, close, pid = parse(c.buf)
        if not done:
            return
        self.busy -= 1
        if not second:
            c.state = "idle"
            return
        c.state = "done"
        self.answered += 1
        if pid is not None:
            self.pids[pid] = self.pids.get(pid, 0) + 1
        if close:
            self.answered_close += 1

    def loop(self, second, deadline, until):
        while not until() and time.monotonic() < deadline:
            for key, mask in self.sel.select(0.02):
                self.on_event(key.data, mask, second)

    def first(self, deadline):
        """Every connection opened and answered once; False if not."""
        todo = list(self.conns)
        self.busy = self.n
        while todo or self.busy > 0:
            while todo and self.connecting < CONNECTING_MAX:
                self.connect(todo.pop())
            self.loop(False, min(deadline, time.monotonic() + 0.05),
                      lambda: False)
            if time.monotonic() >= deadline:
                return False
        return all(c.state == "idle" for c in self.conns)

    def second(self, deadline):
        self.busy = 0
        for c in self.conns:
            self.busy += 1
            if c.state == "ended":
                c.retried = True
                self.connect(c)
            elif not self.send(c):
                self.ended(c, True)
        self.loop(True, deadline, lambda: self.busy == 0)
        self.failed += self.busy    # still waiting at the bound

    def result(self):
        pids = ",".join("%s:%d" % kv for kv in sorted(self.pids.items()))
        return ("result conns=%d ended_idle=%d no_answer=%d "
                "answered_close=%d reconnects=%d failed=%d answered=%d "
                "pids=%s" % (self.n, self.ended_idle, self.no_answer,
                             self.answered_close, self.ended_idle +
                             self.no_answer + self.answered_close,
                             self.failed, self.answered, pids or "-"))


def clients(argv):
    port, n, go, out = int(argv[0]), int(argv[1]), argv[2], argv[3]
    sources, bound = 4, 120.0
    rest = argv[4:]
    while rest:
        if rest[0] == "--sources":
            sources = int(rest[1])
        elif rest[0] == "--bound":
            bound = float(rest[1])
        else:
            sys.exit("idle_clients: unknown option " + rest[0])
        rest = rest[2:]
    deadline = time.monotonic() + bound
    cl = Clients(port, n, sources)
    with open(out, "w") as f:
        if not cl.first(deadline):
            bad = sum(c.state != "idle" for c in cl.conns)
            f.write("error %d of %d connections not answered\n" % (bad, n))
            return 1
        f.write("ready %d\n" % n)
        f.flush()
        # The collector walks every connection object now and then: at
        # 10000 it took a tenth of a core beside the upgrade it measures.
        # Nothing here makes cycles to collect.
        gc.freeze()
        gc.disable()
        cl.loop(False, deadline, lambda: os.path.exists(go))
        cl.second(deadline)
        f.write(cl.result() + "\n")
    return 0


def stamp(argv):
    with open(argv[0], "w") as f, open(argv[1], "rb", buffering=0) as r:
        part = b""
        while True:
            data = r.read(65536)
            if not data:
                break
            now = time.time_ns()
            *whole, part = (part + data).split(b"\n")
            for line in whole:
                f.write("%d %s\n" % (now, line.decode(errors="replace")))
            f.flush()
    return 0


def exit_clock(argv):
    pid, bound = int(argv[0]), float(argv[1])
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        print("gone", flush=True)
        return 0
    print("armed", flush=True)
    p = selectors.DefaultSelector()
    p.register(fd, selectors.EVENT_READ)
    print(time.time_ns() if p.select(bound) else "running", flush=True)
    return 0


def main():
    cmds = {"clients": clients, "stamp": stamp, "exit": exit_clock}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    if sys.argv[1] != "clients":
        gc.disable()    # short-lived helpers beside the measurement
    return cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
