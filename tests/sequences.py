#!/usr/bin/python3
"""sequences.py: random sequences of what operators and failures do to a
handoff service, with invariants checked after every step.

  sequences.py [--build DIR]

Plays SEQUENCES sequences of STEPS steps each against the real programs of
the build in DIR (default: $BUILD_DIR, $top_builddir, or the tree this file
is in): tools/handoff-httpd, tools/handoffctl and tools/handoff-exec, on a
loopback address of its own (127.x.y.z) and a private directory under
$TMPDIR. One interpreter runs everything: it spawns the programs itself,
reaps them all (it is their child subreaper, so it also gets the exit
status of what `handoffctl upgrade` started), holds requests in flight on
raw sockets, and finds which process holds a connection (a sock_diag
lookup of the socket's inode, then /proc/PID/fd).

The steps: a fresh start; upgrades with the same and with changed
arguments (a port added, moved or removed), by `handoffctl upgrade` or by
starting the new process in the background, with the control path spelled
absolute or relative from another directory; several upgrades back to
back while requests are in flight; requests held in flight (half a
request, completed when the step says so) and GET /slow; `handoffctl
stop` and SIGTERM; a release that fails at start; SIGKILL of the newest
generation, of a draining one, of a successor at a moment of its takeover
(after its start, the offer, ready or released), and of the incumbent
during a takeover; SIGSTOP and SIGCONT of the incumbent, a successor or a
draining generation; two successors started at once. Under handoff-exec
(a sequence in MODES=exec, with handoff-httpd as the socket-activated
program) also releases that exit at start and releases that crash while
the previous one drains, when handoff-exec has --settle and
--rollback-window.

After every step it waits, with a bound, until each process started has
served or exited, then checks:
- every fresh request on every listener of the newest ready generation is
  answered by it (pid, tag and generation) and by no other process, and
  when no generation may serve, by none;
- `handoffctl status --json` names that generation, serving, with its
  listeners and (handoff-httpd) every older generation still draining;
- a generation that was released and holds no request of ours exits
  promptly, and every one exits by its drain deadline plus MARGIN s;
- at most the cap (--max-draining, default 4) of older generations drain;
- a generation that served exits 0 unless it was killed; a release that
  failed at start exits non-zero and leaves the incumbent serving;
- no request fails, held or fresh, unless a process holding it was
  killed or hammered (its log says so, or its drain deadline had passed);
- at the end, after a final stop: every process started is gone and
  nothing listens on the sequence's ports or control path.

A failure prints the step, the invariant, the logs, and the command that
replays the sequence. Environment:

  SEED=N          seed of the first sequence (default: a random one);
                  sequence i plays seed N+i
  SEQUENCES=N     sequences to play (default 1)
  STEPS=N         steps in each (default 20)
  MODES=LIST      httpd,exec (default both: one sequence in 4 under exec)
  SPELLINGS=KIND  all (default), absolute or relative spellings of the
                  control path
  ONLY=LIST       only these steps (upgrade, upgrade-changed, storm, hold,
                  release, stop, kill-newest, kill-draining, kill-successor,
                  kill-incumbent, stop-cont, race, fail-at-start,
                  crash-in-drain); a fresh start follows a stop regardless
  NO_DRAINING_LIST=1  do not check status' list of draining generations
  KEEP_GOING=1    play on after a failure; sum up at the end
  MARGIN=S        seconds past a drain deadline before an exit is late (10)
  KEEP_TMP=1      keep the private directories

Exit status: 0 all invariants held, 1 one broke, 77 cannot run here.
"""
import argparse
import ctypes
import json
import os
import random
import re
import resource
import select
import signal
import socket
import shutil
import struct
import sys
import tempfile
import time
import traceback

PR_SET_CHILD_SUBREAPER = 36

# Generous bounds against hangs: none is an outcome the checks depend on.
START_BOUND = 40        # a start or an upgrade is over, one way or another
SETTLE_BOUND = 30       # every process has served or exited
PROMPT_BOUND = 10       # a drained generation exits, the cap is enforced
REQUEST_BOUND = 15      # a fresh request is answered
HOLD_MAX_AGE = 20       # held requests are released before evhttp's timeout
READ_TIMEOUT_AGE = 45   # after this, evhttp itself may close a held request
FRESH_PER_LISTENER = 6  # fresh requests on each listener at each check
DOWN_PROBE = 0.5        # how long an unwanted answer is waited for
POLL = 0.02             # the pause between two polls of a bounded loop


class Fail(Exception):
    """An invariant broke: the message says which and how."""


class Skip(Exception):
    """This machine cannot run the test."""


def now():
    return time.monotonic()


def pause(s=POLL):
    """The pause between two polls; never a wait for a condition itself."""
    time.sleep(s)


def out(msg):
    print(msg, flush=True)


def read_pipe(r, bound, what, tick=None):
    """Everything from pipe r until EOF, then r is closed; tick() runs
    between reads. Fails if EOF has not come within bound seconds."""
    data = b""
    end = now() + bound
    try:
        while True:
            if now() > end:
                raise Fail("%s still running after %d s" % (what, bound))
            ready, _, _ = select.select([r], [], [], POLL)
            if ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    return data.decode(errors="replace")
                data += chunk
            elif tick is not None:
                tick()
    finally:
        os.close(r)


# ---------------------------------------------------------------- /proc

def proc_state(pid):
    """The one-letter state of pid, or None if there is no such process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def proc_ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def children_of(ppid):
    """The pids whose parent is ppid: for the driver, every process it
    started that still runs, or that was orphaned on the way (it is their
    subreaper)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        found.append(int(name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def socket_inodes(pid):
    found = set()
    d = "/proc/%d/fd" % pid
    try:
        names = os.listdir(d)
    except OSError:
        return found
    for fd in names:
        try:
            t = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            found.add(int(t[8:-1]))
    return found


def hex_addr(addr):
    return "%08X" % struct.unpack("<I", socket.inet_aton(addr))[0]


def tcp_rows():
    """(local, remote, state, inode) of every IPv4 TCP socket; local and
    remote as "HEXADDR:HEXPORT" the way /proc/net/tcp spells them."""
    rows = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            w = line.split()
            rows.append((w[1], w[2], w[3], int(w[9])))
    return rows


NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
INET_DIAG_NOCOOKIE = 0xffffffff


def tcp_inode(laddr, lport, raddr, rport):
    """The inode of the TCP socket with that local and remote end (0 while
    it waits in an accept queue), or None if there is none: one exact
    sock_diag lookup, as quick with 50000 sockets in TIME-WAIT as with
    none (/proc/net/tcp lists them all)."""
    req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0,
                      0xffffffff)
    req += struct.pack("!HH", lport, rport)
    req += socket.inet_aton(laddr) + bytes(12)
    req += socket.inet_aton(raddr) + bytes(12)
    req += struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)
    msg = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, 1, 1,
                      0) + req
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                       NETLINK_SOCK_DIAG) as s:
        s.sendto(msg, (0, 0))
        data = s.recv(65536)
    if struct.unpack_from("=H", data, 4)[0] == NLMSG_ERROR:
        return None
    # inet_diag_msg after the 16-byte header: family, state, timer,
    # retrans, then the id (sport, dport, ...), and the inode at 68. A
    # lookup that finds no connection answers with the listener.
    if struct.unpack_from("!H", data, 22)[0] != rport:
        return None
    return struct.unpack_from("=I", data, 16 + 68)[0]


def endpoint(addr, port):
    return "%s:%04X" % (hex_addr(addr), port)


def listening_on(addr, ports):
    """The ports of `ports` something listens on at addr."""
    want = {endpoint(addr, p): p for p in ports}
    return sorted(want[r[0]] for r in tcp_rows()
                  if r[2] == "0A" and r[0] in want)


def unix_listening(paths):
    """Those of paths that a listening AF_UNIX socket is bound to."""
    found = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            w = line.split()
            if len(w) >= 8 and w[7] in paths:
                found.add(w[7])
    return sorted(found)


# ---------------------------------------------------------------- HTTP

BODY = re.compile(rb"pid=(\d+) tag=(\S+) gen=(\d+)")


def parse_response(data):
    """(status, pid, tag, gen) of a response, or None if it is not one."""
    if not data.startswith(b"HTTP/1."):
        return None
    try:
        code = int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None
    m = BODY.search(data.partition(b"\r\n\r\n")[2])
    if m is None:
        return (code, None, None, None)
    return (code, int(m.group(1)), m.group(2).decode(), int(m.group(3)))


def read_all(sock, bound):
    """Everything until EOF; raises OSError (or socket.timeout) if the
    connection is reset or nothing ends it within bound seconds."""
    end = now() + bound
    data = b""
    while True:
        left = end - now()
        if left <= 0:
            raise socket.timeout("no end of the response within %d s" % bound)
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def request(addr, port, path="/", bound=REQUEST_BOUND):
    """One fresh GET: (status, pid, tag, gen), or a string saying why it
    failed."""
    try:
        with socket.create_connection((addr, port), timeout=bound) as s:
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: seq\r\n"
                      b"Connection: close\r\n\r\n")
            data = read_all(s, bound)
    except OSError as e:
        return "%s (%s)" % (e.strerror or str(e), type(e).__name__)
    r = parse_response(data)
    if r is None:
        return "not an HTTP response: %r" % data[:80]
    if r[0] != 200 or r[1] is None:
        return "answered %r" % data[:120]
    return r


# ---------------------------------------------------------------- records

class Gen:
    """One started process: a handoff-httpd, or a handoff-exec and its
    child (a handoff-httpd started under socket activation)."""

    def __init__(self, seq, idx, mode, listeners, drain, cap):
        self.seq, self.idx, self.mode = seq, idx, mode
        self.tag = "v%d" % idx
        self.listeners = dict(listeners)   # name -> port
        self.drain, self.cap = drain, cap
        self.pid = None
        self.log = os.path.join(seq.dir, "%s.log" % self.tag)
        self.how = ""
        self.gen = None             # generation, once known
        self.pred = self.succ = None
        self.served = False         # seen serving, or its log says it did
        self.pending = True         # neither served nor exited yet
        self.released_at = None     # when it was seen released (drain start)
        self.release_lb = None      # the earliest its drain can have begun
        self.started_at = None
        self.handed_off = False     # its successor serves
        self.stopping = False       # stopped gracefully
        self.final = False          # superseded: may never serve again
        self.killed = False         # by us, or its child (exec)
        self.expect_fail = False
        self.stopped_since = None
        self.stopped_total = 0.0
        self.window = 0.0           # handoff-exec --rollback-window
        self.checked_exit = False
        self.exit = None            # wait status, once reaped

    def __str__(self):
        g = " gen %d" % self.gen if self.gen else ""
        return "%s (pid %s%s)" % (self.tag, self.pid, g)

    def alive(self):
        return self.pid is not None and self.exit is None and \
            self.seq.alive(self.pid)

    def lines(self):
        """This process's own log lines (handoff-exec's child writes to the
        same file with its own pid)."""
        try:
            with open(self.log, errors="replace") as f:
                text = f.read()
        except OSError:
            return []
        pre = "[%d] " % self.pid
        return [l for l in text.splitlines()
                if pre in l.split(":", 1)[0] + " "]

    def log_has(self, pattern):
        return any(re.search(pattern, l) for l in self.lines())

    def children(self):
        """handoff-exec: the child pids it logged, newest last (each
        tracked as soon as it is seen, see Sequence.track)."""
        if self.mode != "exec" or self.pid is None:
            return []
        found = (re.search(r"started child pid (\d+)", l)
                 for l in self.lines())
        kids = [int(m.group(1)) for m in found if m]
        for c in kids:
            self.seq.track(c, self)
        return kids

    def pids(self):
        return [self.pid] + self.children()

    def answer_pids(self):
        """Who answers HTTP for this generation."""
        return self.children() if self.mode == "exec" else [self.pid]

    def answers(self, pid):
        """pid answers HTTP for this generation: a child handoff-exec
        started may serve before handoff-exec has logged it."""
        return pid in self.answer_pids() or (
            self.mode == "exec" and self.pid is not None and
            proc_ppid(pid) == self.pid)

    def log_says_served(self):
        return self.log_has(r"released by pid|died before ready: serving|"
                            r"ready: serving, tag \"[^\"]*\"$")

    def hammered(self):
        """Its log, or its child's, says it closed connections at a
        deadline or for the cap."""
        try:
            with open(self.log, errors="replace") as f:
                return re.search(r"(?i)hammer|after the stop signal: killing",
                                 f.read()) is not None
        except OSError:
            return False

    def spec(self, name):
        return "%s=tcp://%s:%d" % (name, self.seq.addr, self.listeners[name])


class Held:
    """A request in flight, held by the test: half a request (completed
    when the test decides) or a GET /slow."""
    count = 0

    def __init__(self, sock, name, port, kind, ms):
        Held.count += 1
        self.id = Held.count
        self.sock, self.name, self.port = sock, name, port
        self.kind, self.ms = kind, ms
        self.opened = now()
        self.inode = 0
        self.holder = None          # the Gen whose process holds it
        self.seen = set()           # every Gen seen holding it (it may
                                    # migrate to a newer one)
        self.victims = []           # processes killed while holding it

    def __str__(self):
        what = "half a request" if self.kind == "half" else \
            "GET /slow?ms=%d" % self.ms
        return "request #%d (%s on %s)" % (self.id, what, self.name)


# ---------------------------------------------------------------- the run

class Features:
    def __init__(self, build):
        self.httpd = os.path.join(build, "tools", "handoff-httpd")
        self.ctl = os.path.join(build, "tools", "handoffctl")
        self.exec = os.path.join(build, "tools", "handoff-exec")
        for p in (self.httpd, self.ctl):
            if not os.access(p, os.X_OK):
                raise Skip("%s is not built" % p)
        self.httpd_help = self.help(self.httpd)
        self.exec_help = self.help(self.exec) if os.access(
            self.exec, os.X_OK) else ""
        self.httpd_cap = "--max-draining" in self.httpd_help
        self.exec_cap = "--max-draining" in self.exec_help
        self.settle = "--settle" in self.exec_help
        self.window = "--rollback-window" in self.exec_help

    @staticmethod
    def help(path):
        r, w = os.pipe()
        pid = os.posix_spawn(path, [path, "--help"], os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
        os.close(w)
        text = read_pipe(r, 20, path + " --help")
        os.waitpid(pid, 0)
        return text

    def __str__(self):
        names = [n for n, on in (("httpd --max-draining", self.httpd_cap),
                                 ("exec --max-draining", self.exec_cap),
                                 ("exec --settle", self.settle),
                                 ("exec --rollback-window", self.window))
                 if on]
        return ", ".join(names) or "none of the new options"


class Sequence:
    """One sequence: its directory, address, processes and requests."""

    def __init__(self, run, seed, steps):
        Held.count = 0
        self.run, self.f = run, run.features
        self.seed, self.nsteps = seed, steps
        self.rng = random.Random(seed)
        # Draws made while polling, as many as the machine's speed makes
        # polls: from their own generator, so that the steps replay.
        self.poll_rng = random.Random(-seed)
        self.dir = tempfile.mkdtemp(prefix="s%d." % seed,
                                    dir=run.tmp)
        os.mkdir(os.path.join(self.dir, "sub"))
        self.control = os.path.join(self.dir, "ctl.sock")
        self.addr = "127.%d.%d.%d" % (self.rng.randrange(1, 255),
                                      self.rng.randrange(0, 256),
                                      self.rng.randrange(1, 255))
        modes = run.modes
        if "exec" in modes and not os.access(self.f.exec, os.X_OK):
            modes = [m for m in modes if m != "exec"]
        if modes == ["httpd", "exec"]:
            self.mode = "exec" if self.rng.random() < 0.25 else "httpd"
        else:
            self.mode = modes[0]
        caps = self.f.exec_cap if self.mode == "exec" else self.f.httpd_cap
        # One cap for the whole sequence: whose setting a takeover obeys
        # is then no question.
        self.cap = self.rng.choice([None, 1, 2, 3, 4]) if caps else None
        self.gens = []
        self.held = []
        self.exits = {}             # pid -> (wait status, when)
        self.spawned = set()        # every pid that was a child of ours
        self.pidfds = {}            # pid -> pidfd, see track()
        self.untracked = set()      # pids gone before they were tracked
        self.ports = set()          # every port any generation listened on
        self.step_no = 0
        self.doing = ""
        self.blockers = []          # sockets taking a port away

    # ------------------------------------------------------- processes

    def env(self):
        e = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS",
                  "LISTEN_FDNAMES", "RUNTIME_DIRECTORY"):
            e.pop(k, None)
        return e

    def spawn(self, argv, cwd, log=None, pipe_fd=None):
        """Starts argv in cwd; output appended to log, or to pipe_fd."""
        acts = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)]
        if log is not None:
            acts += [(os.POSIX_SPAWN_OPEN, 1, log,
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                     (os.POSIX_SPAWN_DUP2, 1, 2)]
        elif pipe_fd is not None:
            acts += [(os.POSIX_SPAWN_DUP2, pipe_fd, 1),
                     (os.POSIX_SPAWN_DUP2, pipe_fd, 2)]
        home = os.getcwd()
        os.chdir(cwd)
        try:
            pid = os.posix_spawn(argv[0], argv, self.env(), file_actions=acts)
        finally:
            os.chdir(home)
        # A pid the machine reused for this child: what was known of its
        # last holder is of no use, and wrong for this one.
        self.exits.pop(pid, None)
        self.untracked.discard(pid)
        if pid in self.pidfds:
            os.close(self.pidfds.pop(pid))
        self.spawned.add(pid)
        return pid

    def reap(self):
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exits[pid] = (st, now())
            for g in self.gens:
                if g.pid == pid and g.exit is None:
                    g.exit = st

    def track(self, pid, g):
        """Holds a pidfd on pid once its command line shows it is g's
        process (its tag and the sequence's address): pids wrap at
        32768 here, and one learned from a log or from handoffctl may
        name another process by then, another test's or anybody's.
        False if it cannot be known any more."""
        if pid in self.pidfds:
            return True
        if pid in self.untracked:
            return False
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            self.untracked.add(pid)
            return False
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            cmd = b""
        if b"\0--tag\0%s\0" % g.tag.encode() not in cmd or \
                self.addr.encode() not in cmd:
            # Another process's, a zombie's, or one caught in execve:
            # asked again next time.
            os.close(fd)
            return False
        self.pidfds[pid] = fd
        return True

    def ours(self, pid):
        """pid is a child of the driver not reaped yet: it cannot have
        been reused."""
        return pid in self.spawned and pid not in self.exits

    def alive(self, pid):
        """The process the driver knows as pid runs (not a zombie)."""
        if pid in self.exits:
            return False
        fd = self.pidfds.get(pid)
        if fd is not None:
            return not select.select([fd], [], [], 0)[0]
        if self.ours(pid):
            s = proc_state(pid)
            return s is not None and s not in "ZX"
        return False

    def send(self, pid, sig):
        """A signal to pid, only through its pidfd or while it is an
        unreaped child: never to a pid that may name another process
        now. False if it is gone."""
        try:
            fd = self.pidfds.get(pid)
            if fd is not None:
                signal.pidfd_send_signal(fd, sig)
                return True
            if self.ours(pid):
                os.kill(pid, sig)
                return True
        except ProcessLookupError:
            pass
        return False

    def wait_exit(self, pid, bound, what):
        end = now() + bound
        while True:
            self.reap()
            if pid in self.exits:
                return self.exits[pid][0]
            if now() > end:
                raise Fail("%s (pid %d) still running after %d s"
                           % (what, pid, bound))
            pause()

    def wait_gone(self, pid, bound, what):
        """Like wait_exit for a process that another (handoffctl) may
        have reaped: its exit code if we reaped it, else None."""
        end = now() + bound
        while self.alive(pid):
            if now() > end:
                raise Fail("%s (pid %d) still running after %d s"
                           % (what, pid, bound))
            self.reap()
            pause()
        self.reap()
        return os.waitstatus_to_exitcode(self.exits[pid][0]) \
            if pid in self.exits else None

    def run_bg(self, argv, cwd):
        """Starts a command whose output the driver reads: (pid, pipe)."""
        r, w = os.pipe()
        try:
            pid = self.spawn(argv, cwd, pipe_fd=w)
        finally:
            os.close(w)
        return pid, r

    def collect(self, pid, r, bound, what, tick=None):
        """The end of a command run_bg started: (exit code, output)."""
        text = read_pipe(r, bound, what, tick)
        st = self.wait_exit(pid, bound, what)
        return os.waitstatus_to_exitcode(st), text

    def command(self, argv, cwd, bound):
        """Runs a short command to its end: (exit code, output)."""
        pid, r = self.run_bg(argv, cwd)
        return self.collect(pid, r, bound, " ".join(argv[:2]))

    # ------------------------------------------------------- spellings

    def spelling(self, rng=None):
        """(cwd, spelling of the control path) at random, as SPELLINGS
        says."""
        d, sub = self.dir, os.path.join(self.dir, "sub")
        absolute = [("/", self.control), (sub, self.control),
                    (d, self.control)]
        relative = [(d, "ctl.sock"), (d, "./ctl.sock"), (sub, "../ctl.sock"),
                    (d, "sub/../ctl.sock")]
        kind = self.run.spellings
        pool = absolute if kind == "absolute" else \
            relative if kind == "relative" else absolute + relative
        return (rng or self.rng).choice(pool)

    def status(self):
        """The --json report of whoever answers on the control socket, or
        None; asked with a random spelling from a random directory."""
        cwd, spell = self.spelling(self.poll_rng)
        rc, text = self.command([self.f.ctl, "status", "--control", spell,
                                 "--json"], cwd, 20)
        if rc != 0:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise Fail("handoffctl status --json printed no JSON: %r"
                       % text[:200])

    # ------------------------------------------------------- model

    def live(self):
        return [g for g in self.gens if g.alive()]

    def by_pid(self, pid):
        for g in self.gens:
            if g.pid == pid:
                return g
        return None

    def owner(self, pid):
        """The generation whose process, or child, pid is."""
        for g in self.gens:
            self.find_pid(g)
        for g in self.gens:
            if pid in g.pids() or g.answers(pid):
                return g
        return None

    def may_serve(self, g):
        """g may accept fresh connections: not superseded, not stopped,
        and not released, unless its successor vanished (rollback)."""
        if g.final or g.stopping or not g.served:
            return False
        if g.released_at is None:
            return True
        s = g.succ
        return s is not None and not s.alive() and not self.superseded_by(s)

    def superseded_by(self, s):
        """s handed off in its turn, or stopped gracefully: then its
        predecessor may never serve again. Its log says so even when
        the driver has not seen it yet (between two status polls)."""
        if s.handed_off or s.stopping:
            return True
        return s.pid is not None and s.log_has(
            r"released to pid|stop requested|: stopping$")

    def newest(self):
        """The generation that must serve alone, or None (service down)."""
        c = [g for g in self.gens if g.alive() and self.may_serve(g)]
        return max(c, key=lambda g: g.idx) if c else None

    def released_live(self, exclude=None):
        return [g for g in self.gens if g.alive() and g is not exclude and
                (g.released_at is not None or g.stopping)]

    def link(self, pred, succ):
        """succ was seen serving after taking over from pred."""
        if pred.succ is succ and pred.released_at is not None:
            return
        pred.succ = succ
        succ.pred = pred
        pred.served = True      # it released to succ, so it served
        pred.pending = False
        pred.released_at = now()
        pred.release_lb = succ.started_at or pred.released_at
        pred.handed_off = True
        if succ.gen is None and pred.gen is not None:
            succ.gen = pred.gen + 1
        if pred.pred is not None:
            pred.pred.final = True   # pred handed off: its own is superseded

    def mark_served(self, g, report=None):
        g.served = True
        g.pending = False
        if report is not None:
            g.gen = report.get("generation", g.gen)

    def check_exit(self, g):
        """The exit status of g once it is reaped."""
        if g.checked_exit or g.exit is None:
            return
        g.checked_exit = True
        code = os.waitstatus_to_exitcode(g.exit)
        if not g.served and g.log_says_served():
            g.served = True
        g.pending = False
        if g.killed:
            return
        if g.served and code != 0:
            raise Fail("%s served, was not killed, and exited %d, want 0: %s"
                       % (g, code, self.last_line(g)))
        if g.expect_fail and not g.served and code == 0:
            raise Fail("%s failed at start but exited 0" % g)

    def last_line(self, g):
        try:
            with open(g.log, errors="replace") as f:
                ls = f.read().splitlines()
        except OSError:
            ls = []
        return " / ".join(ls[-2:]) if ls else "(no log)"

    # ------------------------------------------------------- requests

    def holder_of(self, h):
        """The generation whose process holds h's connection now (after
        accept), or None; h.inode is learned on the way."""
        if not h.inode:
            me = h.sock.getsockname()
            h.inode = tcp_inode(self.addr, h.port, me[0], me[1]) or 0
            if not h.inode:
                return None
        for g in self.gens:
            for pid in g.pids():
                if self.alive(pid) and h.inode in socket_inodes(pid):
                    h.seen.add(g)
                    return g
        return None

    def open_held(self, kind):
        """A request in flight on the newest generation."""
        e = self.newest()
        name = self.rng.choice(sorted(e.listeners))
        port = e.listeners[name]
        ms = self.rng.choice([200, 1000, 3000]) if kind == "slow" else 0
        try:
            s = socket.create_connection((self.addr, port), timeout=10)
        except OSError as x:
            raise Fail("connect to %s (port %d) of %s: %s"
                       % (name, port, e, x))
        h = Held(s, name, port, kind, ms)
        if kind == "half":
            s.sendall(b"GET /?held=%d HTTP/1.1\r\nHost: seq\r\n"
                      b"Connection: close\r\n" % h.id)
        else:
            s.sendall(b"GET /slow?ms=%d HTTP/1.1\r\nHost: seq\r\n"
                      b"Connection: close\r\n\r\n" % ms)
        end = now() + REQUEST_BOUND
        while True:
            g = self.holder_of(h) or self.answered_by(h)
            if g is not None:
                break
            if now() > end:
                raise Fail("%s on port %d was never accepted by any process"
                           " (the newest is %s); %s" % (
                               h, port, e, self.port_report(port)))
            pause(0.005)
        h.holder = g
        self.held.append(h)
        if g is not e:
            raise Fail("a fresh connection to %s was accepted by %s, not by "
                       "the newest ready generation %s" % (name, g, e))
        return h

    def answered_by(self, h):
        """A GET /slow may be answered before its holder is seen: then
        the answer says who held it."""
        if not select.select([h.sock], [], [], 0)[0]:
            return None
        try:
            data = h.sock.recv(65536, socket.MSG_PEEK)
        except OSError:
            return None
        r = parse_response(data)
        return self.owner(r[1]) if r and r[1] else None

    def port_report(self, port):
        """Who holds the sockets of a port, for a failure message."""
        states = {"01": "established", "0A": "listening", "06": "time-wait"}
        who = {}
        for g in self.gens:
            for pid in g.pids():
                if self.alive(pid):
                    for i in socket_inodes(pid):
                        who.setdefault(i, []).append("%s pid %d" % (g.tag,
                                                                    pid))
        rows = ["%s inode %d (%s)" % (states.get(st, st), inode, ", ".join(
            who.get(inode, [])) or "no process of ours") for local, _, st,
            inode in tcp_rows() if local == endpoint(self.addr, port)]
        return "port %d: %s" % (port, "; ".join(rows) or "no socket")

    def finish_held(self, h):
        """Completes h and checks its answer; it may fail only if a
        process holding it was killed or hammered."""
        self.held.remove(h)
        g = self.holder_of(h) or h.holder
        why = None
        try:
            if h.kind == "half":
                h.sock.sendall(b"\r\n")
            data = read_all(h.sock, REQUEST_BOUND + h.ms / 1000.0)
            r = parse_response(data)
            if r is None or r[0] != 200 or r[1] is None:
                why = "answered %r" % data[:120]
        except OSError as x:
            why = "%s (%s)" % (x.strerror or str(x), type(x).__name__)
        finally:
            h.sock.close()
        if why is None:
            owner = self.owner(r[1])
            if owner is None or owner.idx < h.holder.idx:
                raise Fail("%s accepted by %s was answered by pid %d (tag %s),"
                           " not by it or a newer generation"
                           % (h, h.holder, r[1], r[2]))
            if r[2] != owner.tag:
                raise Fail("%s answered by pid %d with tag %s, want %s"
                           % (h, r[1], r[2], owner.tag))
            return "%s answered by %s" % (h, owner.tag)
        if h.victims:
            return "%s failed, as a killed process held it (%s)" % (h, why)
        for who in {g, h.holder} | h.seen:
            if who is not None and who.hammered():
                return "%s failed: %s was hammered (%s)" % (h, who, why)
            if who is not None and who.release_lb is not None and \
                    now() > who.release_lb + who.drain:
                return "%s failed after %s's drain deadline (%s)" \
                    % (h, who, why)
        if now() - h.opened > READ_TIMEOUT_AGE:
            return "%s failed after %d s in flight (%s)" \
                % (h, now() - h.opened, why)
        raise Fail("%s, accepted by %s, failed: %s; no process holding it "
                   "was killed or hammered" % (h, h.holder, why))

    def mark_victims(self, pid):
        """Before pid is killed: the held requests it holds may fail."""
        inodes = socket_inodes(pid)
        for h in self.held:
            if h.inode and h.inode in inodes:
                h.victims.append(pid)

    def fresh_check(self, e, n=FRESH_PER_LISTENER):
        """Every fresh request on every listener of e is answered by e."""
        gen = 1 if e.mode == "exec" else e.gen
        for name, port in sorted(e.listeners.items()):
            for _ in range(n):
                r = request(self.addr, port)
                if isinstance(r, str):
                    raise Fail("a fresh request on %s (port %d) failed: %s; "
                               "the newest ready generation is %s"
                               % (name, port, r, e))
                if not e.answers(r[1]) or r[2] != e.tag or \
                        (gen is not None and r[3] != gen):
                    who = self.owner(r[1])
                    two = ""
                    if who is not None and who is not e and who.alive() and \
                            self.may_serve(who):
                        two = "two generations serve: "
                    raise Fail("%sa fresh request on %s (port %d) was answered"
                               " by pid %d tag %s gen %d (%s), not by the "
                               "newest ready generation %s"
                               % (two, name, port, r[1], r[2], r[3],
                                  self.describe(who), e))

    def describe(self, g):
        if g is None:
            return "not a process of this sequence"
        if g.final or (g.succ is not None and self.superseded_by(g.succ)):
            return "%s, superseded: its successor %s handed off or stopped" \
                % (g, g.succ.tag if g.succ else "")
        if g.stopping:
            return "%s, stopped" % g
        if g.released_at is not None:
            return "%s, released to %s" % (g, g.succ)
        return str(g)

    def down_check(self):
        """Nobody may serve: no fresh request may be answered."""
        for port in sorted(self.ports):
            try:
                s = socket.create_connection((self.addr, port), timeout=5)
            except OSError:
                continue
            with s:
                try:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: seq\r\n"
                              b"Connection: close\r\n\r\n")
                    data = read_all(s, DOWN_PROBE)
                except OSError:
                    continue
            r = parse_response(data)
            if r is not None and r[1] is not None:
                raise Fail("no generation may serve now, but pid %d (tag %s) "
                           "answered a fresh request on port %d: %s"
                           % (r[1], r[2], port,
                              self.describe(self.owner(r[1]))))

    # ------------------------------------------------------- settling

    def note_status(self, st):
        """What a status report tells: who serves, and whom it took over
        from. Fails if a generation that may not serve says it does."""
        if st is None or st.get("state") != "serving":
            return
        g = self.by_pid(st.get("pid"))
        if g is None:
            raise Fail("status names pid %s, not a process of this sequence"
                       % st.get("pid"))
        if g.pending:
            self.mark_served(g, st)
            p = self.by_pid(st.get("predecessor") or 0)
            if p is not None and p is not g:
                self.link(p, g)
            return
        s = g.succ
        if not self.may_serve(g) and s is not None and s.killed and \
                not self.superseded_by(s):
            # Its successor dies (we killed it or its program): it may
            # roll back before that process is quite gone.
            self.wait_gone(s.pid, PROMPT_BOUND, "%s, killed" % s)
        if not self.may_serve(g):
            raise Fail("status says %s is serving, but %s; the newest "
                       "generation started is %s" % (g, self.describe(g),
                                                     self.gens[-1]))
        if g.released_at is not None:
            g.released_at = None     # rolled back: its successor vanished
            g.handed_off = False

    def resolve_exited(self, g):
        """A process that was pending has exited (or was killed): what
        its log says it did."""
        g.pending = False
        for l in g.lines():
            m = re.search(r"released by pid (\d+)", l)
            if m and self.by_pid(int(m.group(1))) is not None:
                self.link(self.by_pid(int(m.group(1))), g)
        if g.log_says_served():
            g.served = True

    def holder_pids(self):
        """The processes holding one of our requests now."""
        inodes = set()
        for h in self.held:
            if self.holder_of(h) is not None:
                inodes.add(h.inode)
        return {p for g in self.gens for p in g.pids()
                if self.alive(p) and inodes & socket_inodes(p)}

    def lingering(self, e):
        """A process that no longer serves, holds none of our requests,
        and so should have exited: (pid, what it is), or None."""
        holding = self.holder_pids()
        for g in self.gens:
            kids = [c for c in g.children() if self.alive(c)]
            for c in (kids[:-1] if g is e else kids):
                if c not in holding:
                    return c, "%s's program, pid %d, stopped" % (g, c)
            if g is e or not g.alive() or g.released_at is None and \
                    not g.stopping:
                continue
            if g.mode == "exec" and (kids or g.window):
                continue    # it waits for its program, or for a rollback
            if g.pid not in holding:
                return g.pid, self.describe(g)
        return None

    def check_deadlines(self):
        t = now()
        for g in self.live():
            if g.released_at is None:
                continue
            stopped = g.stopped_total + (t - g.stopped_since
                                         if g.stopped_since else 0)
            late = t - (g.released_at + max(g.drain, g.window) + stopped +
                        self.run.margin)
            if late > 0:
                raise Fail("%s drains past its deadline: released %.1f s ago "
                           "with --drain-timeout %g, still running (margin "
                           "%g s)" % (self.describe(g), t - g.released_at,
                                      g.drain, self.run.margin))

    def unsettled(self):
        """Why the system has not settled yet, or None once it has: a
        (key, reason) pair. Keys starting with "prompt" name what must
        happen promptly (PROMPT_BOUND), the others within SETTLE_BOUND."""
        self.reap()
        for g in self.gens:
            if g.pending and not g.alive():
                self.resolve_exited(g)
            self.check_exit(g)
        self.check_deadlines()
        st = None
        if any(g.pending for g in self.gens) or self.newest() is not None:
            st = self.status()
            self.note_status(st)
        pend = [g for g in self.gens if g.pending]
        if pend:
            return ("pending", "%s neither serves nor has exited" % pend[0])
        e = self.newest()
        left = self.lingering(e)
        if left is not None:
            return ("prompt exit %d" % left[0], "%s, holds no request of "
                    "ours, so its drain is over, but it has not exited"
                    % left[1])
        if e is None:
            return None
        if st is None or st.get("pid") != e.pid or st.get("state") != \
                "serving":
            return ("status", "status names %s, not %s serving" % (
                "nobody" if st is None else "pid %s (state %s)"
                % (st.get("pid"), st.get("state")), e))
        d = self.draining(e)
        # A generation we killed in the middle cuts the chain: those older
        # hear of no later takeover, a limit the README states. Those
        # still linked must keep within the cap.
        linked = [g for g in d if not self.chain_cut(g, e)]
        if len(linked) > self.cap_of(e):
            return ("prompt cap", "%d older generations linked to %s drain "
                    "at once, more than the cap of %d%s: %s" % (
                        len(linked), e, self.cap_of(e), "" if e.cap is not
                        None else " (the default)",
                        ", ".join(str(g) for g in linked)))
        return None

    def chain_cut(self, g, e):
        """Was a generation between g and e (the newest) killed?"""
        s = g.succ
        while s is not None and s is not e:
            if s.killed:
                return True
            s = s.succ
        return False

    def cap_of(self, e):
        return e.cap if e.cap is not None else 4

    def draining(self, e):
        """Older generations still draining (exec: whose child is alive)."""
        gs = [g for g in self.released_live(exclude=e) if g.idx < e.idx]
        if e.mode == "exec":
            gs = [g for g in gs if any(self.alive(c) for c in g.children())]
        return gs

    def settle(self, why):
        """Waits (bounded) until the system settles, then checks."""
        end = now() + SETTLE_BOUND
        since = {}
        while True:
            r = self.unsettled()
            if r is None:
                break
            key, reason = r
            since.setdefault(key, now())
            if key.startswith("prompt") and now() - since[key] > \
                    PROMPT_BOUND:
                self.serving_check()    # a stale one that serves is worse
                raise Fail("after %s, for %d s: %s" % (why, PROMPT_BOUND,
                                                       reason))
            if now() > end:
                raise Fail("after %s, not settled within %d s: %s"
                           % (why, SETTLE_BOUND, reason))
            pause()
        e = self.newest()
        if e is None:
            self.down_check()
            return "nobody serves"
        self.fresh_check(e)
        st = self.status()
        self.note_status(st)
        if st is None or st.get("pid") != e.pid:
            raise Fail("status names %s, want %s" % (
                st and st.get("pid"), e))
        if st.get("generation") != e.gen or st.get("tag") != e.tag:
            raise Fail("status says generation %s tag %s for %s, want "
                       "generation %s tag %s" % (st.get("generation"),
                                                 st.get("tag"), e, e.gen,
                                                 e.tag))
        got = {l["name"]: l.get("address") for l in st.get("listeners", [])
               if l.get("name") != "@control" and l.get("kind") != "fd"}
        want = {n: "%s:%d" % (self.addr, p) for n, p in e.listeners.items()}
        if got != want:
            raise Fail("status lists listeners %s, want %s" % (got, want))
        self.check_draining_listed(e)
        d = self.draining(e)
        return "%s serves%s" % (e, "; draining: " + " ".join(
            g.tag for g in d) if d else "")

    def serving_check(self):
        """Only the newest answers fresh requests (none when none may)."""
        e = self.newest()
        if e is None:
            self.down_check()
        else:
            self.fresh_check(e)

    def check_draining_listed(self, e):
        """Every older generation still draining is in status' draining
        list (bounded: it is refreshed once a second)."""
        if self.run.no_draining_list or e.mode == "exec":
            return
        end = now() + PROMPT_BOUND
        while True:
            # Not those a killed middle generation cut off (the
            # README's limit): nobody tells the newest of them.
            want = {g.pid for g in self.draining(e) if g.stopped_since is
                    None and not self.chain_cut(g, e)}
            st = self.status()
            self.note_status(st)
            listed = {d.get("pid") for d in (st or {}).get("draining", [])}
            missing = {p for p in want if self.alive(p)} - listed
            if not missing:
                return
            if now() > end:
                # A generation that serves again is the worse news.
                self.fresh_check(e, 4 * FRESH_PER_LISTENER)
                raise Fail("status does not list draining generations %s "
                           "(lists %s)" % (
                               ", ".join(str(self.by_pid(p)) for p in
                                         sorted(missing)), sorted(listed)))
            pause(0.1)

    # ------------------------------------------------------- starting

    def new_gen(self, listeners=None, drain=None):
        """The next generation: the newest's listeners unless told, and a
        short drain timeout unless told (a long one where the cap is
        exercised, so that no deadline ends a drain the cap should)."""
        base = self.newest()
        if base is None:
            served = [g for g in self.gens if g.served]
            base = served[-1] if served else None
        if listeners is None:
            if base is not None:
                listeners = base.listeners
            else:
                names = ["http"] + (["admin"] if self.rng.random() < 0.5
                                    else [])
                listeners = {n: self.port() for n in names}
        if drain is None:
            drain = self.rng.choice([1, 2, 3, 30])
        return Gen(self, len(self.gens) + 1, self.mode, listeners, drain,
                   self.cap)

    def argv(self, g, spell, bad=False):
        """The command line of g; bad: a release that fails at start."""
        common = ["--tag", g.tag, "--drain-timeout", "%g" % g.drain,
                  "--ready-timeout", "10"]
        listen = []
        for name in sorted(g.listeners):
            listen += ["--listen", g.spec(name)]
        if g.mode == "httpd":
            a = [self.f.httpd, "--control", spell] + common
            if g.cap is not None:
                a += ["--max-draining", str(g.cap)]
            return a + listen
        a = [self.f.exec, "--control", spell] + common + listen
        if g.cap is not None:
            a += ["--max-draining", str(g.cap)]
        if self.rng.random() < 0.4:
            a.append("--notify")
        elif self.f.settle:
            a += ["--settle", self.rng.choice(["0.2", "0.5"])]
        if self.f.window:
            g.window = 10
            a += ["--rollback-window", "10"]
        if bad:
            return a + ["--", "/bin/sh", "-c", "exit 1"]
        # The program: handoff-httpd under socket activation, with a
        # control socket of its own per process (a release restarted by a
        # rollback must not take over from its draining first child).
        return a + ["--", "/bin/sh", "-c",
                    'd=$1; shift; exec "$0" --control "$d/child-$$.sock" "$@"',
                    self.f.httpd, self.dir, "--tag", g.tag,
                    "--drain-timeout", "%g" % g.drain] + listen

    def port(self):
        """A port free on our address now."""
        with socket.socket() as s:
            s.bind((self.addr, 0))
            p = s.getsockname()[1]
        self.ports.add(p)
        return p

    def start(self, g, method=None, bad=False):
        """Starts g in the background or with handoffctl upgrade; returns
        the handoffctl pid (or None), g.pid set when known."""
        cwd, spell = self.spelling()
        method = method or self.rng.choice(["plain", "ctl"])
        argv = self.argv(g, spell, bad)
        g.how = "%s, --control %s from %s" % (
            "handoffctl upgrade" if method == "ctl" else "started",
            spell.replace(self.dir, "DIR"), cwd.replace(self.dir, "DIR"))
        self.gens.append(g)
        g.started_at = now()
        for p in g.listeners.values():
            self.ports.add(p)
        if method == "plain":
            g.pid = self.spawn(argv, cwd, log=g.log)
            return None
        ctl = [self.f.ctl, "upgrade", "--control", spell, "--timeout",
               str(START_BOUND - 10), "--log", g.log, "--"] + argv
        g.ctl = self.run_bg(ctl, cwd)
        return g.ctl[0]

    def ctl_result(self, g, probe=None):
        """Waits for g's handoffctl upgrade; (exit code, output)."""
        code, text = self.collect(g.ctl[0], g.ctl[1], START_BOUND,
                                  "handoffctl upgrade to %s" % g.tag, probe)
        m = re.search(r"(?:upgraded: pid \d+ -> |started: )pid (\d+)", text)
        if m and g.pid is None:
            g.pid = int(m.group(1))
            self.track(g.pid, g)
        return code, text.strip()

    def find_pid(self, g):
        """g's pid, from its log, when handoffctl started it."""
        if g.pid is None:
            for l in open(g.log, errors="replace").read().splitlines() \
                    if os.path.exists(g.log) else []:
                m = re.match(r"handoff-(?:httpd|exec)\[(\d+)\]", l)
                if m and (g.mode == "httpd" or "handoff-exec" in l):
                    g.pid = int(m.group(1))
                    self.track(g.pid, g)
                    break
        return g.pid

    def upgrade(self, listeners=None, method=None, what="upgrade",
                drain=None):
        """An upgrade that must succeed: the new generation serves, its
        predecessor drains; requests meanwhile are answered by one of the
        two."""
        e = self.newest()
        g = self.new_gen(listeners, drain)
        ctl = self.start(g, method)
        common = {n: p for n, p in g.listeners.items()
                  if e is not None and e.listeners.get(n) == p}
        allowed = lambda pid: (e is not None and e.answers(pid)) or (
            self.find_pid(g) is not None and g.answers(pid))
        probe = lambda: self.probe(common, allowed, "during the %s to %s"
                                   % (what, g.tag))
        if ctl is not None:
            rc, text = self.ctl_result(g, probe)
            self.find_pid(g)
            if rc != 0:
                self.reap()
                raise Fail("%s to %s (%s) failed: handoffctl exited %d: %s"
                           % (what, g.tag, g.how, rc, text))
        end = now() + START_BOUND
        while True:
            self.reap()
            st = self.status()
            if st is not None and st.get("pid") == g.pid and \
                    st.get("state") == "serving":
                break
            if g.pid is not None and not g.alive():
                self.reap()
                code = os.waitstatus_to_exitcode(g.exit) \
                    if g.exit is not None else "?"
                raise Fail("%s to %s (%s) failed: it exited %s: %s"
                           % (what, g.tag, g.how, code, self.last_line(g)))
            if now() > end:
                raise Fail("%s to %s (%s): not serving after %d s"
                           % (what, g.tag, g.how, START_BOUND))
            self.note_status(st)
            probe()
            pause()
        self.mark_served(g, st)
        if e is not None:
            if st.get("predecessor") != e.pid:
                p = self.by_pid(st.get("predecessor"))
                raise Fail("%s took over from pid %s (%s), want %s" % (
                    g, st.get("predecessor"), self.describe(p), e))
            self.link(e, g)
            if st.get("generation") != e.gen + 1:
                raise Fail("%s has generation %s after %s" % (
                    g, st.get("generation"), e))
        elif st.get("generation") != 1:
            raise Fail("%s started fresh with generation %s, want 1" % (
                g, st.get("generation")))
        return g

    def probe(self, listeners, allowed, when):
        """One fresh request on each listener both generations share: it
        must not fail, and only they (allowed(pid), asked once the answer
        is in) may answer."""
        for name, port in sorted(listeners.items()):
            r = request(self.addr, port)
            if isinstance(r, str):
                raise Fail("a request on %s %s failed: %s" % (name, when, r))
            if not allowed(r[1]):
                raise Fail("a request on %s %s was answered by pid %d tag %s "
                           "(%s)" % (name, when, r[1], r[2],
                                     self.describe(self.owner(r[1]))))

    # ------------------------------------------------------- steps

    def changed_listeners(self):
        """The newest's listeners with one added, moved or removed."""
        ls = dict(self.newest().listeners)
        names = sorted(ls)
        kind = self.rng.choice(["add", "move", "remove"] if len(ls) > 1
                               else ["add", "move"])
        if kind == "add" and len(ls) < 4:
            free = [n for n in ("admin", "api", "metrics", "b") if n not in ls]
            n = self.rng.choice(free)
            ls[n] = self.port()
            return ls, "adds %s" % n
        if kind == "remove":
            n = self.rng.choice(names)
            del ls[n]
            return ls, "removes %s" % n
        n = self.rng.choice(names)
        ls[n] = self.port()
        return ls, "moves %s" % n

    def step_upgrade(self):
        g = self.upgrade()
        return "upgrade to %s (%s)" % (g.tag, g.how)

    def step_upgrade_changed(self):
        ls, what = self.changed_listeners()
        g = self.upgrade(ls)
        return "upgrade to %s that %s (%s)" % (g.tag, what, g.how)

    def step_storm(self):
        """Several upgrades back to back, each with a request in flight on
        the generation it replaces (as deploys during long requests)."""
        n = self.rng.randrange(2, 8)
        held = self.rng.choice([1.0, 0.7])
        done = []
        for _ in range(n):
            if self.rng.random() < held:
                # Half a request: in flight until the driver completes it,
                # as long a request as the 30 s ones.
                self.open_held("half")
            g = self.upgrade(drain=30)
            done.append(g.tag)
        return "%d upgrades back to back with requests in flight: %s" % (
            n, " ".join(done))

    def step_hold(self):
        n = self.rng.randrange(1, 4)
        hs = [self.open_held(self.rng.choice(["half", "half", "slow"]))
              for _ in range(n)]
        return "hold " + ", ".join(str(h) for h in hs) + " on " + \
            hs[0].holder.tag

    def step_release(self):
        if not self.held:
            return self.step_hold()
        hs = self.rng.sample(self.held, self.rng.randrange(
            1, len(self.held) + 1))
        return "release: " + "; ".join(self.finish_held(h) for h in hs)

    def release_aged(self):
        old = [h for h in self.held if now() - h.opened > HOLD_MAX_AGE]
        return [self.finish_held(h) for h in old]

    def step_stop(self):
        """handoffctl stop, or SIGTERM, of the newest: it drains and exits
        0; its predecessors never serve again."""
        e = self.newest()
        e.stopping = True
        e.released_at = e.release_lb = now()
        if e.pred is not None:
            e.pred.final = True
        mine = [h for h in self.held if h.holder is e]
        if self.rng.random() < 0.5:
            cwd, spell = self.spelling()
            pid, r = self.run_bg([self.f.ctl, "stop", "--control", spell,
                                  "--timeout", str(e.drain + 30)], cwd)
            how = "handoffctl stop --control %s" % spell.replace(self.dir,
                                                                 "DIR")
        else:
            self.send(e.pid, signal.SIGTERM)
            pid, r, how = None, None, "SIGTERM"
        done = []
        if mine:
            end = now() + PROMPT_BOUND
            while not e.log_has(r"stopping") and e.alive():
                if now() > end:
                    raise Fail("%s never logged stopping after %s" % (e, how))
                pause()
            done = [self.finish_held(h) for h in mine]
        if pid is not None:
            code, text = self.collect(pid, r, e.drain + START_BOUND, how)
            if code != 0:
                raise Fail("%s exited %d: %s" % (how, code, text))
        self.wait_gone(e.pid, e.drain + PROMPT_BOUND, "%s after %s"
                       % (e, how))
        self.check_exit(e)
        return "stop %s by %s%s" % (e, how, "; " + "; ".join(done)
                                    if done else "")

    def step_restart(self):
        """Nobody serves: release everything, let every generation exit,
        and start fresh."""
        done = [self.finish_held(h) for h in list(self.held)]
        for g in self.live():
            self.wait_gone(g.pid, g.drain + PROMPT_BOUND, str(g))
            self.check_exit(g)
        g = self.upgrade(method=self.rng.choice(["plain", "ctl"]),
                         what="fresh start")
        return "fresh start of %s (%s)%s" % (g.tag, g.how, "; " + "; ".join(
            done) if done else "")

    def kill(self, g, pid=None, sig=signal.SIGKILL):
        """SIGKILL of g (or of its child pid): first stopped, so that the
        requests it holds are known."""
        pid = pid or g.pid
        if not self.alive(pid) or not self.send(pid, signal.SIGSTOP):
            return False
        end = now() + PROMPT_BOUND
        while proc_state(pid) not in ("T", "t", "Z", "X", None):
            if now() > end:
                raise Fail("pid %d never stopped on SIGSTOP" % pid)
            pause(0.001)
        self.mark_victims(pid)
        if pid == g.pid or g.children():
            # handoff-exec's death, or its serving child's (it then exits),
            # sends its children the stop signal: a second one for a child
            # already draining, which then closes what it still holds (a
            # version is the two processes).
            for c in g.children():
                self.mark_victims(c)
        self.send(pid, sig)
        self.send(pid, signal.SIGCONT)
        g.killed = True
        if sig == signal.SIGKILL:
            # Its fds close before /proc says it is a zombie: its
            # predecessor may roll back while it still looks alive here.
            end = now() + PROMPT_BOUND
            while self.alive(pid):
                if now() > end:
                    raise Fail("pid %d still alive after SIGKILL" % pid)
                pause(0.001)
                self.reap()
        return True

    def victim_pid(self, g):
        """The process of g to kill: under exec, its child or itself."""
        if g.mode == "exec" and self.rng.random() < 0.6:
            kids = [c for c in g.children() if self.alive(c)]
            if kids:
                return kids[-1]
        return g.pid

    def step_kill_newest(self):
        e = self.newest()
        pid = self.victim_pid(e)
        self.kill(e, pid)
        return "SIGKILL %s%s" % (e, "'s child %d" % pid if pid != e.pid
                                   else "")

    def step_kill_draining(self):
        e = self.newest()
        d = [g for g in self.released_live(exclude=e)]
        if not d:
            return self.step_hold()
        g = self.rng.choice(d)
        pid = self.victim_pid(g)
        self.kill(g, pid)
        return "SIGKILL draining %s%s" % (g, "'s child %d" % pid
                                          if pid != g.pid else "")

    MOMENTS = [None, r"taking over from", r"ready: serving", r"released by"]

    def wait_moment(self, g, moment):
        """Until g's log has moment (or g has exited); then a random few
        ms more."""
        end = now() + START_BOUND
        while moment is not None and not g.log_has(moment):
            if not g.alive() or now() > end:
                break
            pause(0.001)
        pause(self.rng.random() * 0.03)

    def step_kill_successor(self):
        """A successor SIGKILLed at a random moment of its takeover."""
        g = self.new_gen()
        self.start(g, "plain")
        moment = self.rng.choice(self.MOMENTS)
        self.wait_moment(g, moment)
        pid = self.victim_pid(g)
        killed = self.kill(g, pid)
        return "%s started (%s), SIGKILLed %s%s" % (
            g.tag, g.how, "at once" if moment is None else "after '%s'"
            % moment, "" if killed else " (it had exited)")

    def step_kill_incumbent(self):
        """The incumbent SIGKILLed while a successor takes over."""
        e = self.newest()
        g = self.new_gen()
        self.start(g, "plain")
        moment = self.rng.choice(self.MOMENTS[:3])
        self.wait_moment(g, moment)
        pid = self.victim_pid(e)
        self.kill(e, pid)
        return "%s started (%s); incumbent %s%s SIGKILLed %s" % (
            g.tag, g.how, e, "'s child %d" % pid if pid != e.pid else "",
            "at once" if moment is None else "after the successor's '%s'"
            % moment)

    def sigstop(self, g):
        if self.send(g.pid, signal.SIGSTOP):
            g.stopped_since = now()

    def sigcont(self, g):
        if g.stopped_since is not None:
            g.stopped_total += now() - g.stopped_since
            g.stopped_since = None
        self.send(g.pid, signal.SIGCONT)

    def step_stop_cont(self):
        """SIGSTOP of the incumbent (while a successor starts), of a
        successor at a moment of its takeover, or of a draining
        generation (while an upgrade happens); then SIGCONT."""
        e = self.newest()
        d = self.released_live(exclude=e)
        kind = self.rng.choice(["incumbent", "successor"] +
                               (["draining"] if d else []))
        held_for = self.rng.choice([0.05, 0.3, 1.0])
        if kind == "draining":
            g = self.rng.choice(d)
            self.sigstop(g)
            try:
                n = self.upgrade()
            finally:
                self.sigcont(g)
            return "SIGSTOP draining %s during the upgrade to %s (%s)" % (
                g, n.tag, n.how)
        n = self.new_gen()
        if kind == "incumbent":
            self.sigstop(e)
            try:
                self.start(n, "plain")
                pause(held_for)
            finally:
                self.sigcont(e)
            return "SIGSTOP incumbent %s for %g s while %s starts (%s)" % (
                e, held_for, n.tag, n.how)
        self.start(n, "plain")
        moment = self.rng.choice(self.MOMENTS[1:])
        self.wait_moment(n, moment)
        if not n.alive():
            return "%s exited before it could be stopped" % n
        self.sigstop(n)
        pause(held_for)
        self.sigcont(n)
        return "SIGSTOP successor %s (%s) after '%s' for %g s" % (
            n, n.how, moment, held_for)

    def step_race(self):
        """Two successors started at once."""
        a, b = self.new_gen(), None
        self.start(a, "plain")
        b = self.new_gen()
        self.start(b, "plain")
        return "%s and %s started at once (%s; %s)" % (a.tag, b.tag, a.how,
                                                       b.how)

    def step_fail_at_start(self):
        """A release that fails at start: the incumbent serves on."""
        g = self.new_gen()
        if self.mode == "exec":
            bad = True
            what = "whose program exits 1 at start"
        else:
            bad = False
            blocker = socket.socket()
            blocker.bind((self.addr, 0))
            blocker.listen(1)
            self.blockers.append(blocker)
            g.listeners = dict(g.listeners)
            g.listeners["taken"] = blocker.getsockname()[1]
            what = "asking for a port in use"
        g.expect_fail = True
        ctl = self.start(g, None, bad)
        if ctl is not None:
            rc, text = self.ctl_result(g)
            self.find_pid(g)
            if rc == 0:
                raise Fail("handoffctl upgrade to %s (a release %s) exited 0:"
                           " %s" % (g.tag, what, text))
        if g.pid is not None:
            self.wait_gone(g.pid, START_BOUND, "%s (%s)" % (g, what))
        g.pending = False
        self.check_exit(g)
        for b in self.blockers:
            b.close()
        self.blockers = []
        return "a release %s: %s (%s)" % (what, g.tag, g.how)

    def step_crash_in_drain(self):
        """exec: a release whose program crashes while the previous one
        drains; the previous one starts its program again."""
        e = self.newest()
        if not any(h.holder is e for h in self.held):
            self.open_held("half")
        g = self.upgrade()
        kids = [c for c in g.children() if self.alive(c)]
        if not kids:
            raise Fail("%s serves without a live child" % g)
        self.kill(g, kids[-1], signal.SIGSEGV)
        # Its handoff-exec exits with the child, and its fds close before
        # it can be reaped: until then it looks alive here while the
        # predecessor already serves again.
        self.wait_gone(g.pid, PROMPT_BOUND, "%s, whose program crashed" % g)
        self.check_exit(g)
        return "upgrade to %s (%s), whose program crashed (SIGSEGV) while " \
            "%s drained" % (g.tag, g.how, e.tag)

    def choose(self):
        e = self.newest()
        if e is None:
            return self.step_restart
        w = [(self.step_upgrade, 14), (self.step_upgrade_changed, 8),
             (self.step_storm, 4), (self.step_hold, 12),
             (self.step_release, 10), (self.step_stop, 3),
             (self.step_kill_newest, 3), (self.step_kill_draining, 3),
             (self.step_kill_successor, 5), (self.step_kill_incumbent, 2),
             (self.step_stop_cont, 5), (self.step_race, 3)]
        if self.mode == "httpd" or self.f.settle:
            w.append((self.step_fail_at_start, 4))
        if self.mode == "exec" and self.f.window:
            w.append((self.step_crash_in_drain, 4))
        if len(self.held) > 8:
            w = [(f, n) for f, n in w if f not in (self.step_hold,
                                                   self.step_storm)]
        only = self.run.only
        if only:
            w = [(f, n) for f, n in w if
                 f.__name__[5:].replace("_", "-") in only] or \
                [(self.step_upgrade, 1)]
        total = sum(n for _, n in w)
        x = self.rng.random() * total
        for f, n in w:
            x -= n
            if x < 0:
                return f
        return w[-1][0]

    # ------------------------------------------------------- the play

    def play(self):
        out("sequence seed %d: %s mode, %d steps, address %s, directory %s"
            % (self.seed, self.mode, self.nsteps, self.addr, self.dir))
        self.own_fds = sorted(os.listdir("/proc/self/fd"))
        self.step_no = 0
        self.doing = "fresh start"
        g = self.upgrade(what="fresh start")
        out("  step 0: fresh start of %s (%s): %s"
            % (g.tag, g.how, self.settle("the fresh start")))
        for k in range(1, self.nsteps + 1):
            self.step_no = k
            t = now()
            aged = self.release_aged()
            f = self.choose()
            self.doing = f.__name__[5:].replace("_", "-")
            what = f()
            if aged:
                what = "; ".join(aged) + "; " + what
            result = self.settle("step %d" % k)
            out("  step %d: %s: %s (%.1f s)" % (k, what, result, now() - t))
        self.finish()

    def finish(self):
        """Releases everything, stops the newest, and checks nothing is
        left: no process, no listening socket."""
        self.step_no = self.nsteps + 1
        self.doing = "final stop"
        done = [self.finish_held(h) for h in list(self.held)]
        if self.newest() is not None:
            what = self.step_stop()
        else:
            what = "nobody serves"
        self.settle("the final stop")
        for g in self.live():
            self.wait_gone(g.pid, PROMPT_BOUND + max(g.drain, g.window),
                           "%s at the end" % g)
        end = now() + PROMPT_BOUND
        while True:
            self.reap()
            for g in self.gens:
                self.check_exit(g)
            self.spawned.update(children_of(os.getpid()))
            left = [p for g in self.gens for p in g.pids() if self.alive(p)]
            left += [p for p in self.spawned if self.alive(p)]
            if not left:
                break
            if now() > end:
                raise Fail("after the final stop, pids %s are still running"
                           % sorted(set(left)))
            pause()
        ports = listening_on(self.addr, self.ports)
        if ports:
            raise Fail("after the final stop, something listens on %s:%s"
                       % (self.addr, ports))
        socks = unix_listening({self.control} | {
            os.path.join(self.dir, n) for n in os.listdir(self.dir)
            if n.startswith("child-")})
        if socks:
            raise Fail("after the final stop, %s still listen" % socks)
        fds = sorted(os.listdir("/proc/self/fd"))
        if len(fds) - len(self.pidfds) != len(self.own_fds):
            raise Fail("the driver holds fds %s after the sequence, %s before"
                       % (fds, self.own_fds))
        out("  end: %s%s; %d processes started, all gone; nothing listens"
            % (what, "; " + "; ".join(done) if done else "",
               len(self.gens)))

    def cleanup(self):
        for h in self.held:
            h.sock.close()
        for b in self.blockers:
            b.close()
        for g in self.gens:
            self.find_pid(g)
        # What the driver knows of, then whatever else it is the parent
        # of: orphans of handoffctl upgrade come to it, pid unknown.
        end = now() + 10
        while True:
            self.reap()
            self.spawned.update(children_of(os.getpid()))
            pids = {p for g in self.gens if g.pid for p in g.pids()}
            pids = {p for p in pids | self.spawned if self.alive(p)}
            if not pids:
                break
            if now() > end:
                out("cleanup: pids %s would not die" % sorted(pids))
                break
            for p in pids:
                self.send(p, signal.SIGKILL)
                self.send(p, signal.SIGCONT)
            pause()
        for fd in self.pidfds.values():
            os.close(fd)
        self.pidfds = {}

    def dump(self):
        """The logs of the sequence's processes, for a failure report."""
        for g in self.gens:
            try:
                with open(g.log, errors="replace") as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            code = ""
            if g.exit is not None:
                code = ", exit %d" % os.waitstatus_to_exitcode(g.exit)
            out("---- %s %s (%s%s; %s) last %d of %d lines" % (
                g.tag, g.pid, g.how, code, self.describe(g),
                min(len(lines), 25), len(lines)))
            for l in lines[-25:]:
                out("  " + l)


class Run:
    def __init__(self, args):
        env = os.environ
        self.build = os.path.abspath(args.build)
        self.features = Features(self.build)
        self.seed = int(env.get("SEED") or int.from_bytes(os.urandom(3),
                                                          "big"))
        self.sequences = int(env.get("SEQUENCES", "1"))
        self.steps = int(env.get("STEPS", "20"))
        self.modes = [m for m in env.get("MODES", "httpd,exec").split(",")
                      if m in ("httpd", "exec")] or ["httpd"]
        self.spellings = env.get("SPELLINGS", "all")
        if self.spellings not in ("all", "absolute", "relative"):
            raise SystemExit("SPELLINGS must be all, absolute or relative")
        self.only = [s for s in env.get("ONLY", "").split(",") if s]
        self.keep_going = env.get("KEEP_GOING") == "1"
        self.margin = float(env.get("MARGIN", "10"))
        self.no_draining_list = env.get("NO_DRAINING_LIST") == "1"
        self.keep = env.get("KEEP_TMP") == "1"
        self.tmp = tempfile.mkdtemp(prefix="handoff-seq.",
                                    dir=env.get("TMPDIR", "/tmp"))
        self.failures = []

    def replay(self, seed, step):
        extra = ""
        for k in ("MODES", "SPELLINGS", "ONLY", "MARGIN", "NO_DRAINING_LIST"):
            if os.environ.get(k):
                extra += "%s=%s " % (k, os.environ[k])
        return ("SEED=%d SEQUENCES=1 STEPS=%d %stop_builddir=%s "
                "tests/integration/sequences.sh" % (seed, step, extra,
                                                     self.build))

    def main(self):
        if ctypes.CDLL(None, use_errno=True).prctl(
                PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise Skip("cannot become a child subreaper")
        # SIGSEGV stands for a crash: no core files.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        out("sequences: SEED=%d SEQUENCES=%d STEPS=%d, build %s (%s)"
            % (self.seed, self.sequences, self.steps, self.build,
               self.features))
        started = now()
        steps = 0
        for i in range(self.sequences):
            seq = Sequence(self, self.seed + i, self.steps)
            try:
                seq.play()
                steps += seq.nsteps
            except Exception as x:
                if not isinstance(x, Fail):
                    x = "the driver broke: %s" % traceback.format_exc()
                steps += seq.step_no
                out("FAIL sequence seed %d, step %d (%s): %s"
                    % (seq.seed, seq.step_no, seq.doing, x))
                seq.dump()
                # A failure at the final stop replays the whole sequence:
                # one step more would be another sequence.
                out("replay: " + self.replay(
                    seq.seed, min(max(seq.step_no, 1), seq.nsteps)))
                self.failures.append((seq.seed, seq.step_no,
                                      "(%s) %s" % (seq.doing, x)))
                if not self.keep_going:
                    break
            finally:
                seq.cleanup()
        out("sequences: %d sequences, %d steps in %.0f s; %d failed" % (
            i + 1, steps, now() - started, len(self.failures)))
        for seed, step, why in self.failures:
            out("  seed %d step %d: %s" % (seed, step, why))
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            out("kept " + self.tmp)
        return 1 if self.failures else 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR") or
                    os.environ.get("top_builddir") or os.path.dirname(here))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    try:
        return Run(args).main()
    except Skip as x:
        out("sequences: SKIP: %s" % x)
        return 77


if __name__ == "__main__":
    sys.exit(main())
