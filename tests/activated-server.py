#!/usr/bin/python3
"""A small socket-activated HTTP server for the handoff-exec test.

Takes its listeners from LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES, as systemd
passes them. GET / answers one line:

  pid=PID tag=TAG listener=NAME listen_fds=N names=A:B inherited=3,4 notify=yes|no

(listener is the name of the socket that accepted the connection,
inherited the fds above 2 that were open when the program started).
GET /slow?ms=N answers the same after N ms. With NOTIFY_SOCKET set, sends
READY=1 once it serves (after --ready-delay MS, or once a line comes on
the FIFO --ready-file names; never with --no-ready). A request may take
its time to arrive (a test holds one half sent): 300 s.
SIGTERM or SIGINT: stops accepting, finishes the requests in flight (300 s
at most) and exits 0.
"""
import argparse
import os
import select
import selectors
import signal
import socket
import sys
import threading
import time
import urllib.parse

LISTEN_FDS_START = 3


def inherited_fds():
    """Fds above 2 open now, found without opening one (fstat only)."""
    found = []
    for fd in range(3, 1024):
        try:
            os.fstat(fd)
        except OSError:
            continue
        found.append(fd)
    return found


def listen_fds():
    """The (name, socket) pairs passed to us, as sd_listen_fds(1) does."""
    try:
        if int(os.environ.get("LISTEN_PID", "")) != os.getpid():
            sys.exit("activated-server: LISTEN_PID is not our pid %d"
                     % os.getpid())
        n = int(os.environ["LISTEN_FDS"])
    except (KeyError, ValueError):
        sys.exit("activated-server: no LISTEN_PID/LISTEN_FDS: "
                 "run me under socket activation")
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    socks = []
    for i in range(n):
        fd = LISTEN_FDS_START + i
        name = names[i] if i < len(names) and names[i] else "fd%d" % fd
        s = socket.socket(fileno=fd)
        s.setblocking(False)
        socks.append((name, s))
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    return n, ":".join(names), socks


def notify(text):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(text.encode(), path)
        except OSError as e:    # not applicable is not a failure
            print("activated-server: NOTIFY_SOCKET: %s" % e, file=sys.stderr)


class Server:
    def __init__(self, args):
        self.tag = args.tag
        self.inherited = ",".join(str(fd) for fd in inherited_fds())
        self.has_notify = "yes" if os.environ.get("NOTIFY_SOCKET") else "no"
        self.nfds, self.names, self.socks = listen_fds()
        self.lock = threading.Lock()
        self.inflight = 0
        self.idle = threading.Condition(self.lock)

    def body(self, listener):
        return ("pid=%d tag=%s listener=%s listen_fds=%d names=%s "
                "inherited=%s notify=%s\n" % (
                    os.getpid(), self.tag, listener, self.nfds, self.names,
                    self.inherited, self.has_notify))

    def handle(self, conn, listener):
        try:
            conn.settimeout(300)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            target = data.split(b"\r\n", 1)[0].split(b" ")
            url = urllib.parse.urlsplit(
                target[1].decode() if len(target) > 1 else "/")
            code, text = 200, self.body(listener)
            if url.path == "/slow":
                query = urllib.parse.parse_qs(url.query)
                time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
            elif url.path != "/":
                code, text = 404, "not found\n"
            payload = text.encode()
            conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                         % (code, b"OK" if code == 200 else b"Not Found",
                            len(payload)) + payload)
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                self.inflight -= 1
                self.idle.notify_all()

    def serve(self, ready_delay, ready_file, send_ready):
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        stop = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda s, f: stop.append(s))
        if ready_delay:
            time.sleep(ready_delay / 1000)
        # The test says when, with a line on the FIFO (read-write: the
        # open never blocks); a stop signal wakes us too. Bounded against
        # a test that never says.
        if ready_file:
            go = os.open(ready_file, os.O_RDWR)
            deadline = time.monotonic() + 300
            while not stop and time.monotonic() < deadline:
                r, _, _ = select.select([go, wake_r], [], [],
                                        deadline - time.monotonic())
                if go in r:
                    break
                if wake_r in r:
                    os.read(wake_r, 512)
            os.close(go)
        sel = selectors.DefaultSelector()
        sel.register(wake_r, selectors.EVENT_READ, None)
        for name, s in self.socks:
            sel.register(s, selectors.EVENT_READ, name)
        if send_ready and not stop:
            notify("READY=1\nSTATUS=serving, tag %s" % self.tag)
        while not stop:
            for key, _ in sel.select():
                if key.data is None:
                    os.read(wake_r, 512)
                    continue
                try:
                    conn, _ = key.fileobj.accept()
                except (BlockingIOError, InterruptedError):
                    continue    # the other version took it
                with self.lock:
                    self.inflight += 1
                threading.Thread(target=self.handle, daemon=True,
                                 args=(conn, key.data)).start()
        # Stop accepting: what is queued goes to the other holders.
        for _, s in self.socks:
            sel.unregister(s)
            s.close()
        notify("STOPPING=1")
        with self.lock:
            self.idle.wait_for(lambda: self.inflight == 0, timeout=300)
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tag", default="")
    p.add_argument("--ready-delay", type=int, default=0, metavar="MS",
                   help="wait this long before serving and READY=1")
    p.add_argument("--ready-file", metavar="PATH",
                   help="wait for a line on the FIFO PATH before serving and READY=1")
    p.add_argument("--no-ready", action="store_true",
                   help="never send READY=1")
    args = p.parse_args()
    return Server(args).serve(args.ready_delay, args.ready_file,
                              not args.no_ready)


if __name__ == "__main__":
    sys.exit(main())
