#!/usr/bin/python3
"""hostile.py: hostile and broken peers for a handoff control socket.

Python's standard library only. Every connection made is reported as one
JSON line on stdout with what the server answered; with --expect-log FILE
the one line the server must have logged for it is appended to FILE:

  {"case":"random","pid":123,"code":"malformed","message":"...","ok":true}
  control: pid 123 uid 0: malformed: invalid JSON at byte 1: ...

Commands (CONTROL is the control socket path):
  inputs CONTROL [--rounds N] [--case NAME]...
      bad messages, each on a connection of its own: random bytes, over
      the size limit, invalid JSON, wrong types, missing fields, unknown
      type, wrong version, fds where none belong; `list` names them
  fds CONTROL [--count N] [--type TYPE] [--rounds N]
      a TYPE message (default hello) with N copies of a pipe's write end
      attached; afterwards the read end must see end-of-file, which proves
      that the server kept no copy
  silent CONTROL [--count N]
      N peers that connect and say nothing; each must get error timeout
  flood CONTROL [--count N] [--cap N]
      N connections at once: the server must close all but CAP (256) of
      them, and answer status on each of those it keeps
  list
      the cases of `inputs`, with the code and message expected

With --forbidden (inputs, fds, silent), every connection must be answered
error forbidden instead: for a peer whose uid the server does not allow.

Exit status: 0 when every connection ended as expected, 1 otherwise,
2 usage.
"""
import argparse, errno, json, os, random, re, resource, select, socket, sys, time

MAX_MSG, MAX_FDS = 65536, 252
FORBIDDEN = ("forbidden", r"uid not allowed on this control socket")


def hello(**kw):
    return json.dumps(dict({"type": "hello", "proto": 1, "pid": os.getpid(), "max_fds": 1000}, **kw),
                      separators=(",", ":")).encode()


def padded(n):
    """A valid status message of exactly n bytes."""
    head, tail = b'{"type":"status","proto":1,"pad":"', b'"}'
    return head + b"x" * (n - len(head) - len(tail)) + tail


# name: (bytes sent, error code expected, message expected (a regex))
CASES = {
    "random": (random.Random(5).randbytes(4096), "malformed", r"invalid JSON at byte \d+: .+"),
    "random-short": (random.Random(6).randbytes(3), "malformed",
                     r"invalid JSON at byte \d+: .+|message is not a JSON object"),
    "random-65536": (random.Random(7).randbytes(MAX_MSG), "malformed", r"invalid JSON at byte \d+: .+"),
    "over-limit": (padded(MAX_MSG + 1), "malformed", r"receive failed: message over 65536 bytes"),
    "far-over-limit": (padded(3 * MAX_MSG), "malformed", r"receive failed: message over 65536 bytes"),
    "truncated-json": (hello()[:-9], "malformed", r"invalid JSON at byte \d+: .+"),
    "bad-utf8": (hello(tag="x")[:-3] + b'\xff"}', "malformed", r"invalid JSON at byte \d+: .+"),
    "duplicate-key": (b'{"type":"status","type":"stop","proto":1}', "malformed",
                      r'invalid JSON at byte \d+: duplicate object key.*'),
    "not-object": (b'["hello",1]', "malformed", r"message is not a JSON object"),
    "no-type": (b'{"proto":1,"pid":1}', "malformed", r'message has no "type" string'),
    "type-not-string": (b'{"type":["hello"],"proto":1}', "malformed", r'message has no "type" string'),
    "proto-string": (b'{"type":"hello","proto":"1","pid":1,"max_fds":1}', "malformed",
                     r'hello: missing integer field "proto"'),
    "missing-field": (b'{"type":"hello","proto":1,"pid":1}', "malformed", r'hello: missing field "max_fds"'),
    "wrong-type": (hello(max_fds="many"), "malformed",
                   r'hello: field "max_fds" must be an integer from 0 to 2147483647'),
    "negative": (hello(pid=-1), "malformed", r'hello: field "pid" must be an integer from 1 to 2147483647'),
    "real-not-int": (b'{"type":"hello","proto":1,"pid":1,"max_fds":1.0}', "malformed",
                     r'hello: field "max_fds" must be an integer from 0 to 2147483647'),
    "tag-too-long": (hello(tag="t" * 257), "malformed", r'hello: field "tag" must be a string of at most 256 bytes'),
    "unknown-type": (b'{"type":"teleport","proto":1}', "unknown-type", r'unknown message type "teleport"'),
    "forged-line": (b'{"type":"x\\nhandoff[1]: released to pid 1","proto":1}', "unknown-type",
                    r'unknown message type "x\?handoff\[1\]: released to pid 1"'),
    "version": (hello(proto=2), "version", r"protocol version 2 is not supported \(this side speaks 1\)"),
    "version-0": (hello(proto=0), "version", r"protocol version 0 is not supported \(this side speaks 1\)"),
    "wrong-opener": (b'{"type":"hammer","proto":1}', "unexpected",
                     r'"hammer" cannot open a conversation; send hello, status or stop'),
    "fd-on-status": (b'{"type":"status","proto":1}', "malformed", r"1 unsolicited fd closed", 1),
    "fds-on-garbage": (b"\x00\x01garbage", "malformed", r"3 unsolicited fds closed", 3),
    "fds-on-empty": (b"", "malformed", r"receive failed: empty message carrying fds", 2),
}


def emit(**kw):
    print(json.dumps(kw, separators=(",", ":")), flush=True)


def connect(path, blocking=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    s.setblocking(blocking)
    s.connect(path)
    return s


def send(s, data, fds=()):
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))] \
        if fds else []
    s.sendmsg([data], anc)


def recv(s, timeout):
    """The next message (bytes), b"" at end of file, None on timeout."""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            return None
        try:
            data, anc, _, _ = s.recvmsg(MAX_MSG + 1, socket.CMSG_SPACE(4 * MAX_FDS))
        except ConnectionResetError:
            # The server closed with our message unread: Linux says so
            # once, before the datagrams it queued for us.
            continue
        except BlockingIOError:
            continue
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                for i in range(0, len(payload) - len(payload) % 4, 4):
                    os.close(int.from_bytes(payload[i:i + 4], sys.byteorder))
                return None     # the server never sends fds on an error
        return data


def refusal(s, timeout):
    """(code, message) of the error the server answers, then end of file."""
    data = recv(s, timeout)
    if not data:
        return None, "no answer" if data is None else "closed without an answer"
    try:
        msg = json.loads(data)
    except ValueError:
        return None, "answer is not JSON: %r" % data[:200]
    if not isinstance(msg, dict) or msg.get("type") != "error":
        return None, "answer is not an error: %r" % data[:200]
    if recv(s, timeout) != b"":
        return None, "connection still open after %s" % msg.get("code")
    return msg.get("code"), msg.get("message")


def expect_log(a, text):
    if a.expect_log:
        with open(a.expect_log, "a") as f:
            f.write("control: %s\n" % text)


def matches(code, message, want):
    """want: (code, a regex the whole message must match)."""
    return code == want[0] and re.fullmatch(want[1], message or "") is not None


def report(a, case, code, message, ok):
    emit(case=case, pid=os.getpid(), code=code, message=message, ok=ok)
    expect_log(a, "pid %d uid %d: %s: %s" % (os.getpid(), os.geteuid(), code, message))
    return ok


def run_inputs(a):
    names = a.case or list(CASES)
    ok = True
    for _ in range(a.rounds):
        for name in names:
            data, code, pattern, *nfds = CASES[name]
            want = FORBIDDEN if a.forbidden else (code, pattern)
            fds = [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) for _ in range(nfds[0] if nfds else 0)]
            with connect(a.control) as s:
                send(s, data, fds)
                for fd in fds:
                    os.close(fd)
                code, message = refusal(s, a.timeout)
            ok &= report(a, name, code, message, matches(code, message, want))
    return ok


def run_fds(a):
    """The server must close every fd: then the pipe reads end of file."""
    if a.forbidden:
        want = FORBIDDEN
    elif a.count > MAX_FDS:
        want = "malformed", (r"receive failed: the fds attached did not all arrive "
                             r"\(more than 252, or our fd table is full: raise "
                             r"RLIMIT_NOFILE\); those that did were closed")
    else:
        want = "malformed", r"%d unsolicited fds? closed" % a.count
    ok = True
    for _ in range(a.rounds):
        r, w = os.pipe2(os.O_CLOEXEC)
        copies = [os.dup(w) for _ in range(a.count)]
        os.close(w)
        with connect(a.control) as s:
            try:
                send(s, hello() if a.type == "hello" else b'{"type":"%s","proto":1}' % a.type.encode(), copies)
            finally:
                for fd in copies:
                    os.close(fd)
            code, message = refusal(s, a.timeout)
        eof = bool(select.select([r], [], [], a.timeout)[0]) and os.read(r, 1) == b""
        os.close(r)
        ok &= report(a, "fds-%d" % a.count, code, message, matches(code, message, want))
        emit(case="fds-%d" % a.count, pipe_eof=eof, ok=eof)
        ok &= eof
    return ok


def run_silent(a):
    socks = [connect(a.control) for _ in range(a.count)]
    want = FORBIDDEN if a.forbidden else ("timeout", r"nothing received within \d+ ms")
    ok = True
    for s in socks:
        code, message = refusal(s, a.timeout)
        s.close()
        ok &= report(a, "silent", code, message, matches(code, message, want))
    return ok


def open_flood(path, count, seconds):
    """count connections; one that finds the backlog full is retried as a
    blocking connect, which waits (bounded) until the server makes room."""
    socks, retries = [], 0
    end = time.monotonic() + seconds
    while len(socks) < count and time.monotonic() < end:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        try:
            s.connect(path)
        except BlockingIOError:
            retries += 1
            s.settimeout(max(end - time.monotonic(), 0.001))
            try:
                s.connect(path)
            except (socket.timeout, BlockingIOError):
                s.close()
                continue
            s.setblocking(False)
        socks.append(s)
    return socks, retries


def closed_by_server(s):
    try:
        return s.recv(MAX_MSG + 1) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except ConnectionResetError:
        return True


def run_flood(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.count + 64)), hard))
    socks, retries = open_flood(a.control, a.count, a.timeout)
    kept = {s.fileno(): s for s in socks}
    end = time.monotonic() + a.timeout
    while len(kept) > a.cap and time.monotonic() < end:
        poller = select.poll()
        for fd in kept:
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(100):
            if closed_by_server(kept[fd]):
                kept.pop(fd).close()
    # What is left must be the peers the server keeps: each is served.
    reports = 0
    for s in kept.values():
        s.setblocking(True)
        send(s, b'{"type":"status","proto":1}')
        data = recv(s, a.timeout)
        reports += bool(data) and json.loads(data).get("type") == "report"
        s.close()
    ok = len(socks) == a.count and len(kept) == a.cap and reports == a.cap
    emit(case="flood", pid=os.getpid(), connected=len(socks), retried=retries,
         closed_by_server=len(socks) - len(kept), kept=len(kept), reports=reports, ok=ok)
    expect_log(a, "%d connections open; closing new ones until some finish (the first from pid %d uid %d)"
               % (a.cap, os.getpid(), os.geteuid()))
    return ok


def run_list(a):
    for name, (data, code, pattern, *nfds) in CASES.items():
        emit(case=name, bytes=len(data), fds=nfds[0] if nfds else 0, code=code, message=pattern)
    return True


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("inputs", "fds", "silent", "flood"):
        r = sub.add_parser(name)
        r.add_argument("control")
        r.add_argument("--timeout", type=float, default=15, help="seconds to wait for each answer")
        r.add_argument("--expect-log", metavar="FILE",
                       help="append the line the server must log for each connection to FILE")
    for name in ("inputs", "fds"):
        sub.choices[name].add_argument("--rounds", type=int, default=1)
    sub.choices["inputs"].add_argument("--case", action="append", choices=list(CASES))
    sub.choices["fds"].add_argument("--count", type=int, default=MAX_FDS)
    sub.choices["fds"].add_argument("--type", default="hello")
    sub.choices["silent"].add_argument("--count", type=int, default=1)
    sub.choices["flood"].add_argument("--count", type=int, default=1000)
    sub.choices["flood"].add_argument("--cap", type=int, default=256)
    for name in ("inputs", "fds", "silent"):
        sub.choices[name].add_argument("--forbidden", action="store_true",
                                       help="expect error forbidden for every connection")
    sub.add_parser("list")
    return p.parse_args()


def main():
    a = parse_args()
    try:
        ok = {"inputs": run_inputs, "fds": run_fds, "silent": run_silent, "flood": run_flood,
              "list": run_list}[a.cmd](a)
    except OSError as e:
        emit(case=a.cmd, error=e.strerror, errno=errno.errorcode.get(e.errno))
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
