#!/usr/bin/python3
"""peer.py: a handoff protocol v1 test peer (see proto/PROTOCOL.md).

Every message received is checked against proto/schema and printed as one
JSON line on stdout, so shell tests can assert on it:

  {"event":"recv","type":"offer","valid":true,"nfds":0,"msg":{...}}

Roles:
  successor  connect, hello, offer, fds batches (fds verified with
             getsockname/SO_DOMAIN/SO_TYPE/SO_ACCEPTCONN), ready (once
             a line comes on the FIFO --ready-when names, if given), released;
             --stop-after STEP; after released, the chain messages asked
             for (--takeover, --superseded, --send-after-released, e.g. a
             datagram) in command-line order, then --hammer; then --then
             close|hang|stay (what comes then is printed: a datagram
             returned to us, with --announce datagrams)
  incumbent  bind a control socket and listeners (and --pass-fd: a pipe or a
             memfd offered as kind fd), take one real successor
             through hello, offer (announcing --extensions, by default
             "superseded"), fds, ready, released; with --then stay, read
             what the successor says while we "drain": takeover and
             superseded are printed as events of their own, and superseded
             with keep 0 hammers us (we close and exit)
  raw        send arbitrary bytes or JSON, with fds attached, print replies
  check      validate JSON lines from stdin against the schemas
  find       print a field of the first matching event in a peer.py log

Exit status: 0 done, 1 protocol or validation failure, 2 usage, 3 cannot
connect or bind, 4 the other side sent "error", 5 lock held by another
process, 6 timed out.
"""
import argparse, array, errno, fcntl, json, os, select, signal, socket, sys, time

import jsonschema

MAX_MSG, MAX_FDS = 65536, 252
STEPS = ["connect", "hello", "offer", "batch", "ready", "released"]
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_DIR = os.path.join(HERE, "..", "proto", "schema")
FAMILIES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6", socket.AF_UNIX: "unix"}
TYPES = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "dgram",
         socket.SOCK_SEQPACKET: "seqpacket"}


class PeerExit(Exception):
    """Ends the run with an exit status."""


def emit(event, **kw):
    print(json.dumps(dict(event=event, **kw), separators=(",", ":")), flush=True)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in object")
    return dict(pairs)


class Schemas:
    """One validator per message type; integers are strict, as in jansson."""

    def __init__(self, directory):
        store, self.schemas = {}, {}
        for f in sorted(os.listdir(directory)):
            if f.endswith(".schema.json"):
                with open(os.path.join(directory, f)) as fh:
                    s = json.load(fh)
                store[s["$id"]] = s
                self.schemas[f[:-len(".schema.json")]] = s
        base = jsonschema.Draft202012Validator
        checker = base.TYPE_CHECKER.redefine(
            "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool))
        self.cls = jsonschema.validators.extend(base, type_checker=checker)
        self.store = store

    def check(self, raw):
        """Returns (message or None, error text or None) for raw bytes."""
        if len(raw) > MAX_MSG:
            return None, "message of %d bytes is over the limit" % len(raw)
        try:
            msg = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
        except ValueError as e:
            return None, "invalid JSON: %s" % e
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            return msg, "not an object with a \"type\" string"
        s = self.schemas.get(msg["type"])
        if s is None or msg["type"] == "listener":
            return msg, "unknown message type %r" % msg["type"]
        resolver = jsonschema.RefResolver.from_schema(s, store=self.store)
        err = jsonschema.exceptions.best_match(self.cls(s, resolver=resolver).iter_errors(msg))
        return msg, None if err is None else "%s: %s" % ("/".join(map(str, err.path)) or "(top)", err.message)


class Conn:
    """One SOCK_SEQPACKET connection: send, receive with fds, report."""

    def __init__(self, sock, schemas, timeout):
        self.sock, self.schemas, self.timeout, self.bad = sock, schemas, timeout, False

    def send(self, obj=None, raw=None, fds=(), quiet=False):
        data = raw if raw is not None else json.dumps(obj, separators=(",", ":")).encode()
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        if obj is None:
            obj, _ = self.schemas.check(data)   # for the report only
        kind = obj.get("type") if isinstance(obj, dict) else None
        try:
            self.sock.sendmsg([data], anc)
        except OSError as e:
            emit("send-failed", type=kind, bytes=len(data), nfds=len(fds), error=e.strerror)
            return False
        if not quiet:
            emit("sent", type=kind, bytes=len(data), nfds=len(fds), msg=obj)
        return True

    def recv(self, timeout=None, quiet=False):
        """Returns (msg, fds), or (None, []) when the peer has closed."""
        wait = self.timeout if timeout is None else timeout
        if not select.select([self.sock], [], [], wait)[0]:
            emit("timeout", seconds=wait)
            raise PeerExit(6)
        space = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
        try:
            data, anc, flags, _ = self.sock.recvmsg(MAX_MSG + 1, space, socket.MSG_CMSG_CLOEXEC)
        except ConnectionResetError:
            # Linux reports a peer that closed with our message unread as
            # ECONNRESET once, before what it sent us: read on.
            quiet or emit("reset")
            return self.recv(timeout, quiet)
        except OSError as e:
            emit("recv-failed", error=e.strerror)
            raise PeerExit(1)
        fds = array.array("i")
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
        fds = list(fds)
        if not data and not fds:
            quiet or emit("closed")
            return None, []
        msg, err = self.schemas.check(data)
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            err = "truncated (flags 0x%x)" % flags
        self.bad |= err is not None
        quiet or emit("recv", type=msg.get("type") if isinstance(msg, dict) else None, valid=err is None,
             error=err, nfds=len(fds), bytes=len(data),
             msg=msg if msg is not None else data[:512].decode("utf-8", "replace"))
        return msg, fds

    def expect(self, kind, timeout=None, skip=()):
        """The next message, which must be of type kind; those of a type
        in skip (printed as received) are passed over first."""
        msg, fds = self.recv(timeout)
        while isinstance(msg, dict) and msg.get("type") in skip:
            for fd in fds:
                os.close(fd)
            msg, fds = self.recv(timeout)
        if msg is None:
            raise PeerExit(1)
        if isinstance(msg, dict) and msg.get("type") == "error" and kind != "error":
            raise PeerExit(4)
        if not isinstance(msg, dict) or msg.get("type") != kind or self.bad:
            emit("unexpected", want=kind)
            raise PeerExit(1)
        return msg, fds


def identify(sock):
    """What the kernel says a socket is, formatted as the protocol does."""
    fam = sock.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
    typ = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    addr = sock.getsockname()
    if fam == socket.AF_INET:
        text = "%s:%d" % addr[:2]
    elif fam == socket.AF_INET6:
        text = "[%s]:%d" % addr[:2]
    elif fam == socket.AF_UNIX:
        if isinstance(addr, bytes):
            text = "@" + addr[1:].decode("utf-8", "replace") if addr else "(unnamed)"
        else:
            text = addr or "(unnamed)"
    else:
        text = "(family %d)" % fam
    kind = {"unix": "unix"}.get(FAMILIES.get(fam, ""), "fd")
    if fam in (socket.AF_INET, socket.AF_INET6):
        kind = "udp" if typ == socket.SOCK_DGRAM else "tcp"
    return {"kind": kind, "family": FAMILIES.get(fam, "other"), "socktype": TYPES.get(typ, "other"),
            "address": text,
            "listening": bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))}


class PassedFd:
    """A non-socket fd offered as kind fd (--pass-fd): the entry says what
    the kernel calls it, as the library's does."""

    def __init__(self, fd, others=()):
        self.fd, self.others = fd, list(others)

    def fileno(self):
        return self.fd

    def entry(self):
        return {"kind": "fd", "family": "other", "socktype": "other",
                "address": os.readlink("/proc/self/fd/%d" % self.fd), "listening": False}

    def close(self):
        for fd in [self.fd] + self.others:
            os.close(fd)
        self.fd, self.others = -1, []


def adopt_fd(fd):
    """A socket owning fd, or for an fd of another kind a PassedFd."""
    try:
        return socket.socket(fileno=fd)
    except OSError as e:
        if e.errno != errno.ENOTSOCK:
            raise
        return PassedFd(fd)


def verify(entry, fd):
    """Checks fd against its entry; returns the socket or PassedFd, which
    owns fd."""
    try:
        sock = adopt_fd(fd)
        got = sock.entry() if isinstance(sock, PassedFd) else identify(sock)
    except OSError as e:
        os.close(fd)
        emit("verify", name=entry.get("name"), ok=False, error=e.strerror)
        raise PeerExit(1)
    keys = ("family", "socktype", "address", "listening")
    ok = all(got[k] == entry.get(k) for k in keys)
    emit("verify", name=entry.get("name"), ok=ok, actual=got)
    if not ok:
        raise PeerExit(1)
    return sock


def connect(path, quiet=False):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as e:
        emit("connect-failed", control=path, error=e.strerror)
        raise PeerExit(3)
    quiet or emit("connected", control=path)
    return s


def take_lock(path):
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        emit("lock-busy", lock=path + ".lock")
        raise PeerExit(5)
    emit("locked", lock=path + ".lock")
    return fd


def linger(conn, then, hold, on_msg=None):
    """What to do once the last step is done. With stay, on_msg(msg) sees
    each message read; it returns True to end the conversation."""
    emit("stopped", then=then)
    if then == "close":
        conn.sock.close()
    elif then == "hang":
        time.sleep(hold)
    else:
        end = time.monotonic() + hold
        while True:
            msg, fds = conn.recv(max(0.0, end - time.monotonic()))
            for fd in fds:
                os.close(fd)
            if msg is None or (on_msg is not None and on_msg(msg)):
                break


CHAIN = "superseded"    # the extension that brings takeover and superseded


def chain_message(conn, msg, announced):
    """A draining incumbent's part of the chain (PROTOCOL.md 6.7): prints
    takeover and superseded; True when superseded tells us to hammer."""
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind not in ("takeover", "superseded"):
        return False
    if not announced:
        # Sent only to a predecessor whose offer named the extension.
        emit("unannounced", type=kind)
        conn.bad = True
    if kind == "takeover":
        emit("takeover", by=msg.get("by"), under_way=msg.get("by") != 0)
        return False
    emit("superseded", by=msg.get("by"), keep=msg.get("keep"),
         max_draining=msg.get("max_draining"))
    if msg.get("keep") != 0:
        return False
    emit("hammered", why="superseded with keep 0: no older generation may drain")
    conn.sock.close()
    return True


def chain_messages(a, me):
    """The messages a successor sends its predecessor after released."""
    out = []
    for op, value in a.ops:
        if op == "takeover":
            out.append({"type": "takeover", "proto": 1, "pid": me, "by": int(value)})
        elif op == "superseded":
            m = {"type": "superseded", "proto": 1, "pid": me, "by": int(value), "keep": a.keep}
            if a.max_draining is not None:
                m["max_draining"] = a.max_draining
            out.append(m)
        else:
            out.append(json.loads(value))
    return out


def answer_conns(conn, msg, how):
    """Connections given to us (PROTOCOL.md 6.9): answered as told, their
    fds already closed; with ignore, not answered at all."""
    if not isinstance(msg, dict) or msg.get("type") != "conns" or how == "ignore":
        return False
    table = msg.get("conns")
    ids = table.get("id", []) if isinstance(table, dict) else []
    conn.send({"type": "conns_taken", "proto": 1, "pid": os.getpid(),
               "taken": ids if how == "take" else [],
               "refused": ids if how == "refuse" else []})
    return False


COLUMNS = ("name", "kind", "family", "socktype", "address", "listening", "spec")


def columns(entries):
    """The listeners of an fds message: the entries' fields in columns."""
    return {k: [e.get(k) for e in entries] for k in COLUMNS}


def rows(cols):
    """The entries of an fds message's columns (each an array, or one value
    for every row); a null spec is no spec."""
    def cell(k, i):
        return cols[k][i] if isinstance(cols[k], list) else cols[k]
    n = len(cols["name"])
    return [{k: cell(k, i) for k in COLUMNS if cell(k, i) is not None} for i in range(n)]


def run_successor(a, schemas):
    lock = take_lock(a.control) if a.lock else None
    conn = Conn(connect(a.control), schemas, a.timeout)
    held, stop = [], STEPS.index(a.stop_after)
    if stop >= 1:
        hello = {"type": "hello", "proto": 1, "pid": a.pid or os.getpid(), "tag": a.tag,
                 "max_fds": a.max_fds}
        if a.announce:
            hello["extensions"] = a.announce.split(",")
        conn.send(hello)
    if stop >= 2:
        offer, fds = conn.expect("offer")
        held += [adopt_fd(fd) for fd in fds]
    names = []
    for b in range(offer["batches"] if stop >= 3 else 0):
        msg, fds = conn.expect("fds")
        entries = rows(msg["listeners"])
        if msg["batch"] != b or len(entries) != len(fds):
            emit("unexpected", want="batch %d with one fd per entry" % b)
            raise PeerExit(1)
        for e, fd in zip(entries, fds):
            held.append(verify(e, fd) if a.verify else adopt_fd(fd))
            names.append(e["name"])
    if stop >= 4 and a.ready_when:
        # The test decides when ready goes: once it has set the scene,
        # it writes a line to the FIFO. Opened read-write, the open does
        # not wait for a writer.
        go = os.open(a.ready_when, os.O_RDWR)
        said, _, _ = select.select([go], [], [], a.timeout)
        os.close(go)
        if not said:
            emit("timeout", seconds=a.timeout, waiting_for=a.ready_when)
            raise PeerExit(6)
    if stop >= 4:
        offered = [n for n in names if n != "@control"]
        ready = {"type": "ready", "proto": 1, "pid": a.pid or os.getpid(),
                 "adopted": [n for n in offered if n not in a.retire],
                 "added": a.add, "retired": [n for n in offered if n in a.retire]}
        if a.max_draining is not None:
            ready["max_draining"] = a.max_draining
        if a.announce:
            ready["extensions"] = a.announce.split(",")
        conn.send(ready)
    if stop >= 5:
        conn.expect("released")
        after = chain_messages(a, a.pid or os.getpid())
        if any(m.get("type") in ("takeover", "superseded") for m in after) and \
                CHAIN not in (offer.get("extensions") or []):
            # A real successor would not send them: we do, to test.
            emit("sending-unannounced", extensions=offer.get("extensions"))
        for m in after:
            conn.send(m)
        if a.hammer:
            conn.send({"type": "hammer", "proto": 1})
    linger(conn, a.then, a.hold, lambda m: answer_conns(conn, m, a.conns))
    if lock is not None:
        os.close(lock)
    return 1 if conn.bad else 0


def bind_listener(arg, blocking):
    name, _, spec = arg.partition("=")
    if spec.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(spec[5:])
    elif spec.startswith(("tcp://", "udp://")):
        host, _, port = spec[6:].rpartition(":")
        v6 = host.startswith("[")
        s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET,
                          socket.SOCK_STREAM if spec[0] == "t" else socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host.strip("[]"), int(port)))
    else:
        raise SystemExit("peer.py: --listen %s: use NAME=tcp://HOST:PORT, "
                         "NAME=udp://HOST:PORT or NAME=unix:PATH" % arg)
    if s.type == socket.SOCK_STREAM:
        s.listen(128)
    s.setblocking(blocking)
    return name, spec, s


def passed_fd(arg):
    """NAME=pipe (its read end) or NAME=memfd:SIZE[:sealed][:HEX] (a memfd
    called NAME of SIZE bytes, HEX written at offset 0; sealed: against
    growing, shrinking and more seals)."""
    name, _, what = arg.partition("=")
    if what == "pipe":
        r, w = os.pipe()
        return name, None, PassedFd(r, [w])
    parts = what.split(":")
    if parts[0] != "memfd" or len(parts) < 2 or not parts[1].isdigit():
        raise SystemExit("peer.py: --pass-fd %s: use NAME=pipe or NAME=memfd:SIZE[:sealed][:HEX]" % arg)
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, int(parts[1]))
    data = bytes.fromhex(parts[-1]) if len(parts) > 2 and parts[-1] != "sealed" else b""
    os.pwrite(fd, data, 0)
    if "sealed" in parts[2:]:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
    return name, None, PassedFd(fd)


def connections(n):
    """n connections of our own on loopback: their client ends, and the
    ends we accepted, to give away."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(n)
    clients, accepted = [], []
    for _ in range(n):
        clients.append(socket.create_connection(lst.getsockname()))
        accepted.append(lst.accept()[0])
    lst.close()
    return clients, accepted


def give_conns(conn, ready):
    """Gives the successor rows as a broken incumbent would (PROTOCOL.md
    6.9), in three messages: 1 right (inode), 2 the same socket again, 3 a
    socket with another's inode; then, without inodes, 4 right
    (addresses, and the state {"n": 5}) and 5 a wrong peer; then 6 a
    listener and 7 a connected UDP socket, with their true inodes, and
    7 again.
    Prints the three conns_taken as one, and what each of the four
    connections' clients got (a line sent, then the answer or "closed")."""
    if "conns" not in ready.get("extensions", []):
        emit("conns-not-announced")
        conn.bad = True
        return
    clients, accepted = connections(4)

    ino = [os.fstat(s.fileno()).st_ino for s in accepted]
    a1, a2, a3, a4 = accepted
    rows = [a1, a1, a2, a3, a4]
    peers = ["%s:%d" % s.getpeername()[:2] for s in rows]
    peers[4] = "127.0.0.1:1"
    # Rows 4 and 5 carry no inode: the successor checks their addresses.
    # A column left out must be left out for all, so row 4 and 5 come in
    # a second message.
    table = {"id": [1, 2, 3], "inode": [ino[0], ino[0], ino[2]], "listener": "http",
             "peer": peers[:3], "local": ["%s:%d" % s.getsockname()[:2] for s in rows[:3]],
             "data": ""}
    conn.send({"type": "conns", "proto": 1, "pid": os.getpid(), "conns": table},
              fds=[s.fileno() for s in rows[:3]])
    first, _ = conn.expect("conns_taken")
    table = {"id": [4, 5], "listener": "http", "peer": peers[3:],
             "local": ["%s:%d" % s.getsockname()[:2] for s in rows[3:]],
             "data": ["", ""], "state": [{"n": 5}, None]}
    conn.send({"type": "conns", "proto": 1, "pid": os.getpid(), "conns": table},
              fds=[s.fileno() for s in rows[3:]])
    second, _ = conn.expect("conns_taken")
    # Not connections, with their true inodes: a listener, a connected
    # UDP socket; and id 7 once more, which is answered once.
    lst2 = socket.socket()
    lst2.bind(("127.0.0.1", 0))
    lst2.listen(1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.connect(lst2.getsockname())
    odd = [lst2, udp, udp]
    table = {"id": [6, 7, 7], "inode": [os.fstat(s.fileno()).st_ino for s in odd],
             "listener": "http", "peer": "127.0.0.1:1", "local": "127.0.0.1:2", "data": ""}
    conn.send({"type": "conns", "proto": 1, "pid": os.getpid(), "conns": table},
              fds=[s.fileno() for s in odd])
    third, _ = conn.expect("conns_taken")
    for s in odd[:2]:
        s.close()
    taken = {"taken": [], "refused": []}
    for m in (first, second, third):
        taken["taken"] += m.get("taken", [])
        taken["refused"] += m.get("refused", [])
    emit("conns-answered", taken=taken.get("taken"), refused=taken.get("refused"))
    # Ours go: the successor holds what it took.
    for s in accepted:
        s.close()
    for i, c in enumerate(clients):
        c.settimeout(5)
        try:
            c.sendall(b"line%d\n" % (i + 1))
            got = c.recv(256).decode(errors="replace").strip() or "closed"
        except OSError as e:
            got = "closed (%s)" % e.strerror
        emit("conn-client", n=i + 1, got=got)
        c.close()


def http_answer(sock):
    """One HTTP/1.1 response read whole: status line, Connection header,
    body; "closed" if the connection ended first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            return "closed"
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    fields = dict(l.split(":", 1) for l in lines[1:] if ":" in l)
    fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
    want = int(fields.get("content-length", "0"))
    while len(body) < want:
        data = sock.recv(4096)
        if not data:
            return "closed"
        body += data
    return "%s|connection=%s|%s" % (lines[0], fields.get("connection", "-"),
                                     body.decode(errors="replace").strip())


def give_many(conn, n):
    """Gives n idle connections of ours in one message; prints the answer
    (conns-answered, with counts) and keeps them open until we exit."""
    clients, ours = connections(n)
    table = {"id": list(range(1, n + 1)),
             "inode": [os.fstat(s.fileno()).st_ino for s in ours], "listener": "http",
             "peer": ["%s:%d" % s.getpeername()[:2] for s in ours],
             "local": "%s:%d" % ours[0].getsockname()[:2], "data": ""}
    conn.send({"type": "conns", "proto": 1, "pid": os.getpid(), "conns": table},
              fds=[s.fileno() for s in ours])
    answer, _ = conn.expect("conns_taken", skip=("takeover", "superseded"))
    emit("conns-answered", taken=len(answer.get("taken", [])),
         refused=len(answer.get("refused", [])))
    give_many.keep = clients + ours


def give_http(conn, fifo, hold):
    """Once told (a line on fifo), gives our successor one connection we
    accepted, idle, as a predecessor whose gift crosses its successor's
    own takeover would; then sends two requests on it and prints both
    answers (http-answer), or what failed."""
    # Read-write, so that its open never waits for the writer.
    fd = os.open(fifo, os.O_RDWR)
    try:
        if not select.select([fd], [], [], hold)[0]:
            emit("give-http-timeout")
            conn.bad = True
            return
        os.read(fd, 64)
    finally:
        os.close(fd)
    (client,), (ours,) = connections(1)
    table = {"id": [1], "inode": [os.fstat(ours.fileno()).st_ino], "listener": "http",
             "peer": "%s:%d" % ours.getpeername()[:2],
             "local": "%s:%d" % ours.getsockname()[:2], "data": ""}
    conn.send({"type": "conns", "proto": 1, "pid": os.getpid(), "conns": table},
              fds=[ours.fileno()])
    # Our successor's own takeover brings takeover and superseded too.
    answer, _ = conn.expect("conns_taken", skip=("takeover", "superseded"))
    emit("conns-answered", taken=answer.get("taken"), refused=answer.get("refused"))
    ours.close()
    client.settimeout(10)
    for i in range(2):
        try:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            got = http_answer(client)
        except OSError as e:
            got = "closed (%s)" % e.strerror
        emit("http-answer", n=i + 1, got=got)
    client.close()


def run_incumbent(a, schemas):
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        ctl.bind(a.control)
        ctl.listen(8)
        ctl.setblocking(a.blocking)
        listeners = [] if a.no_control else [("@control", None, ctl)]
        listeners += [bind_listener(x, a.blocking) for x in a.listen]
        listeners += [passed_fd(x) for x in a.pass_fd]
    except OSError as e:
        emit("bind-failed", error=str(e))
        raise PeerExit(3)
    entries = []
    for name, spec, s in listeners:
        e = dict(name=name, **(s.entry() if isinstance(s, PassedFd) else identify(s)))
        if spec is not None:
            e["spec"] = spec
        entries.append(e)
    emit("listening", listeners=entries)
    if not select.select([ctl], [], [], a.timeout)[0]:
        emit("timeout", seconds=a.timeout)
        raise PeerExit(6)
    conn = Conn(ctl.accept()[0], schemas, a.timeout)
    conn.sock.setblocking(True)
    emit("accepted")
    hello, _ = conn.expect("hello")
    size = a.batch_size
    batches = [entries[i:i + size] for i in range(0, len(entries), size)]
    offer = {"type": "offer", "proto": 1, "pid": os.getpid(), "generation": a.generation,
             "tag": a.tag, "count": len(entries), "batches": len(batches),
             "state": json.loads(a.state)}
    extensions = [x for x in a.extensions.split(",") if x]
    if extensions:
        offer["extensions"] = extensions
    conn.send(offer)
    for b, part in enumerate(batches):
        if a.die_after_batches is not None and b == a.die_after_batches:
            emit("dying", batches_sent=b)
            os._exit(9)     # an incumbent killed in the middle of an offer
        fds = [s.fileno() for _, _, s in listeners[b * size:b * size + len(part)]]
        conn.send({"type": "fds", "proto": 1, "batch": b, "listeners": columns(part)}, fds=fds)
    ready, _ = conn.expect("ready", a.ready_timeout)
    if a.refuse_ready:
        # An incumbent that lets its ready timeout win the race.
        conn.send({"type": "error", "proto": 1, "code": "timeout",
                   "message": "no ready within the ready timeout; still serving"})
        emit("refused", adopted=ready["adopted"])
        linger(conn, a.then, a.hold)
        return 1 if conn.bad else 0
    if a.no_release:
        emit("ready", adopted=ready["adopted"])
        linger(conn, a.then, a.hold)
        return 1 if conn.bad else 0
    conn.send({"type": "released", "proto": 1, "pid": os.getpid(), "connections": 0,
               "deadline_ms": a.deadline_ms})
    for _, _, s in listeners:
        s.close()
    emit("released", adopted=ready["adopted"], added=ready["added"], retired=ready["retired"],
         max_draining=ready.get("max_draining"))
    if a.give_conns:
        give_conns(conn, ready)
    if a.give_http_when:
        give_http(conn, a.give_http_when, a.hold)
    if a.give_many:
        give_many(conn, a.give_many)
    linger(conn, a.then, a.hold, lambda m: chain_message(conn, m, CHAIN in extensions))
    return 1 if conn.bad else 0


class Op(argparse.Action):
    """Keeps raw-mode operations in command-line order."""

    def __call__(self, parser, ns, value, option=None):
        ns.ops = (ns.ops or []) + [(self.dest, value)]


def run_raw(a, schemas):
    conn = Conn(connect(a.control), schemas, a.timeout)
    nfds, junk = 0, []
    for op, value in a.ops or []:
        if op == "fds":
            nfds = int(value)
            continue
        fds = [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) for _ in range(nfds)]
        junk += fds
        if op == "send":
            conn.send(raw=value.encode(), fds=fds)
        elif op == "send_hex":
            conn.send(raw=bytes.fromhex(value), fds=fds)
        elif op == "send_big":
            head = b'{"type":"status","proto":1,"pad":"'
            conn.send(raw=head + b"x" * max(0, int(value) - len(head) - 2) + b'"}', fds=fds)
        nfds = 0
    for fd in junk:
        os.close(fd)
    while True:
        msg, fds = conn.recv()
        for fd in fds:
            os.close(fd)
        if msg is None:
            return 1 if conn.bad else 0


def run_check(a, schemas):
    failed = 0
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip() or line.startswith("#"):
            continue
        _, err = schemas.check(line.strip().encode())
        ev = dict(line=n, valid=err is None, error=err, text=line.strip()[:200])
        ok = (err is None) == (a.expect == "valid")
        if a.control:
            # The library's verdict: a first message it parses is answered
            # "unexpected" (or served); one it rejects gets these codes.
            conn = Conn(connect(a.control, quiet=True), schemas, a.timeout)
            conn.send(raw=line.strip().encode(), quiet=True)
            reply, _ = conn.recv(quiet=True)
            conn.sock.close()
            ev["library"] = reply.get("code") if isinstance(reply, dict) else None
            ok &= (ev["library"] in ("malformed", "version", "unknown-type")) == (err is not None)
        emit("check", ok=ok, **ev)
        failed += not ok
    return 1 if failed else 0


def run_find(a, _):
    with open(a.log) as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") != a.event or (a.type and ev.get("type") != a.type):
                continue
            value = ev
            for key in a.field.split(".") if a.field else []:
                value = value[int(key)] if isinstance(value, list) else value.get(key)
            print(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))
            return 0
    return 1


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--schemas", default=SCHEMA_DIR, help="schema directory (default %(default)s)")
    sub = p.add_subparsers(dest="role", required=True)
    for role in ("successor", "incumbent", "raw"):
        r = sub.add_parser(role, help="play the %s" % role if role != "raw" else "send raw messages")
        r.add_argument("--control", required=True, help="control socket path")
        r.add_argument("--timeout", type=float, default=10, help="seconds to wait for each message")
        if role != "raw":
            r.add_argument("--tag", default="peer", help="tag sent in hello or offer")
            r.add_argument("--then", choices=["close", "hang", "stay"], default="close",
                           help="after the last step: close, hang without reading, or stay "
                                "reading until the other side closes (default close)")
            r.add_argument("--hold", type=float, default=3600, help="seconds to hang or stay at most")
    s = sub.choices["successor"]
    s.add_argument("--stop-after", choices=STEPS, default="released", help="last step to do")
    s.add_argument("--pid", type=int, help="pid claimed in hello and ready (default ours)")
    s.add_argument("--max-fds", type=int, default=1000, help="max_fds claimed in hello")
    s.add_argument("--no-verify", dest="verify", action="store_false", help="do not check fds")
    s.add_argument("--retire", action="append", default=[], help="name to list as retired")
    s.add_argument("--add", action="append", default=[], help="name to list as added")
    s.add_argument("--ready-when", metavar="FIFO",
                   help="send ready only once a line comes on FIFO (at most --timeout seconds)")
    s.set_defaults(ops=[])
    s.add_argument("--max-draining", type=int, metavar="N",
                   help="max_draining sent in ready, and in superseded (default: none)")
    s.add_argument("--takeover", action=Op, metavar="BY",
                   help="after released, send takeover {by: BY} (0: the takeover ended)")
    s.add_argument("--superseded", action=Op, metavar="BY",
                   help="after released, send superseded {by: BY, keep: --keep} (0: stopping)")
    s.add_argument("--keep", type=int, default=0, help="keep sent in superseded (default 0)")
    s.add_argument("--send-after-released", action=Op, metavar="JSON",
                   help="after released, send this message as it is")
    s.add_argument("--hammer", action="store_true",
                   help="send hammer after released (and after the messages above)")
    s.add_argument("--lock", action="store_true", help="hold CONTROL.lock as a real successor does")
    s.add_argument("--conns", choices=["ignore", "take", "refuse"], default="ignore",
                   help="with --then stay, answer each conns message given to us: take them, "
                   "refuse them, or say nothing (default); their fds are closed")
    s.add_argument("--announce", metavar="LIST", default="",
                   help="comma-separated extensions named in hello and ready (default: none), "
                   "e.g. datagrams to be sent datagram messages")
    i = sub.choices["incumbent"]
    i.add_argument("--listen", action="append", default=[],
                   help="NAME=tcp://HOST:PORT, NAME=udp://HOST:PORT or NAME=unix:PATH")
    i.add_argument("--pass-fd", action="append", default=[], metavar="NAME=WHAT",
                   help="also offer a non-socket fd of kind fd: NAME=pipe, or "
                        "NAME=memfd:SIZE[:sealed][:HEX] (HEX written at offset 0)")
    i.add_argument("--generation", type=int, default=1)
    i.add_argument("--extensions", default=CHAIN,
                   help="comma-separated extensions announced in the offer "
                        "(default %(default)s; '' for none, as before the chain)")
    i.add_argument("--state", default="null", help="state object sent in the offer (JSON)")
    i.add_argument("--batch-size", type=int, default=MAX_FDS, help="fds per batch (default 252)")
    i.add_argument("--ready-timeout", type=float, default=30, help="seconds to wait for ready")
    i.add_argument("--blocking", action="store_true",
                   help="pass the listeners without O_NONBLOCK (the library passes them non-blocking)")
    i.add_argument("--no-control", action="store_true", help="do not offer @control")
    i.add_argument("--deadline-ms", type=int, default=30000, help="deadline_ms sent in released")
    i.add_argument("--die-after-batches", type=int, metavar="K",
                   help="exit at once after sending K batches of the offer")
    i.add_argument("--no-release", action="store_true",
                   help="take ready and never answer released (then --then)")
    i.add_argument("--refuse-ready", action="store_true",
                   help="answer ready with error timeout (then --then)")
    i.add_argument("--give-http-when", metavar="FIFO",
                   help="after released, once a line comes on FIFO (at most --hold seconds), "
                        "give the successor one connection of ours and send two HTTP/1.1 "
                        "requests on it, printing each answer")
    i.add_argument("--give-many", type=int, metavar="N",
                   help="after released, give N idle connections of ours in one conns "
                        "message and print the successor's answer")
    i.add_argument("--give-conns", action="store_true",
                   help="after released, give connections of our own as a broken "
                        "incumbent would (one socket twice, a wrong inode, addresses "
                        "only, a wrong peer, a listener, a UDP socket) and print the "
                        "successor's conns_taken")
    r = sub.choices["raw"]
    r.set_defaults(ops=[])
    r.add_argument("--send", action=Op, metavar="TEXT", help="send TEXT (e.g. JSON) as one message")
    r.add_argument("--send-hex", action=Op, metavar="HEX", help="send these bytes as one message")
    r.add_argument("--send-big", action=Op, metavar="N", help="send a status message padded to N bytes")
    r.add_argument("--fds", action=Op, metavar="N", help="attach N fds (/dev/null) to the next send")
    c = sub.add_parser("check", help="validate JSON lines from stdin")
    c.add_argument("--expect", choices=["valid", "invalid"], default="valid",
                   help="exit 0 only if every line is so (default valid)")
    c.add_argument("--control", help="also send each line to the incumbent at this path; "
                   "its verdict must agree with the schemas'")
    c.add_argument("--timeout", type=float, default=10, help="seconds to wait for its answer")
    f = sub.add_parser("find", help="print a field of the first matching event in a log")
    f.add_argument("log")
    f.add_argument("--event", default="recv")
    f.add_argument("--type", help="message type of the event")
    f.add_argument("--field", help="dotted path, e.g. msg.code (default: the whole event)")
    return p.parse_args()


def main():
    a = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run = {"successor": run_successor, "incumbent": run_incumbent, "raw": run_raw,
           "check": run_check, "find": run_find}[a.role]
    try:
        status = run(a, Schemas(a.schemas) if a.role != "find" else None)
    except PeerExit as e:
        status = e.args[0]
    if a.role not in ("check", "find"):
        emit("exit", status=status)
    return status


if __name__ == "__main__":
    sys.exit(main())
