#!/usr/bin/env python3
"""takeover_clock: times takeovers for tools/bench/takeover-time.

handoff DIR N RUNS HTTPD [PREFIX...]
    Starts handoff-httpd with N listeners (tcp://127.0.0.1:0) on
    DIR/ctl.sock, then RUNS successors one after another. For each, prints
    one line of milliseconds since posix_spawn() of the successor:
      run R took_over=MS ready=MS released=MS incumbent_exit=MS inc_released=MS
    from the successor's stderr lines "took over", "ready: serving" and
    "released by pid", a pidfd of the incumbent, and the incumbent's
    own line "released to pid". PREFIX (say, perf
    record ...) runs the successor under a profiler.

haproxy DIR N RUNS HAPROXY
    Writes DIR/haproxy.cfg with N bind lines on distinct free ports and a
    stats socket with expose-fd listeners, starts haproxy -D, then RUNS
    seamless reloads: haproxy -D -x DIR/stats.sock -sf OLDPID. Prints:
      run R return=MS old_exit=MS
    (the new haproxy's exit: listeners fetched and bound, daemon forked;
    the old process's exit, by pidfd).

Options, before the rest: --timeout S (per step, default 60), --short-names (handoff
listener names of at most 3 characters instead of lN), --httpd-arg ARG (one
more argument for every handoff-httpd; repeatable).

Every process it starts is killed (SIGKILL) before it exits, and every
wait is bounded.
"""
import os
import select
import signal
import socket
import sys
import time

TIMEOUT = 60.0
SHORT_NAMES = False
HTTPD_ARGS = []
started = []


def ms(t0, t1):
    return "%.3f" % ((t1 - t0) / 1e6) if t1 is not None else "-"


def spawn(argv, stderr_fd):
    fa = [(os.POSIX_SPAWN_DUP2, stderr_fd, 2),
          (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
          (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)]
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
    started.append(pid)
    return pid


def pidfd(pid):
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


class Pipes:
    """Stderr pipes of the servers, drained all the time so that none
    blocks; lines are timestamped and copied to a log file."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.open = {}        # fd -> (log file, partial line)
        self.lines = []       # (fd, t, line) not consumed yet

    def new(self, name):
        r, w = os.pipe()
        self.open[r] = [open(os.path.join(self.logdir, name), "a"), b""]
        return r, w

    def poll(self, extra, deadline):
        """Reads what is there; returns the extra fds that are readable."""
        p = select.poll()
        for fd in self.open:
            p.register(fd, select.POLLIN)
        for fd in extra:
            p.register(fd, select.POLLIN)
        left = max(0, deadline - time.monotonic())
        ready = p.poll(min(left, 0.5) * 1000)
        now = time.monotonic_ns()
        hit = []
        for fd, _ in ready:
            if fd in extra:
                hit.append(fd)
                continue
            data = os.read(fd, 65536)
            log, part = self.open[fd]
            if not data:
                log.close()
                del self.open[fd]
                os.close(fd)
                continue
            log.write(data.decode(errors="replace"))
            log.flush()
            part += data
            *whole, part = part.split(b"\n")
            self.open[fd][1] = part
            for line in whole:
                self.lines.append((fd, now, line.decode(errors="replace")))
        return hit

    def wait_line(self, fd, text, deadline, extra=()):
        """Time the first line from fd containing text (or None), and the
        extra fds seen readable meanwhile, with their times. That line and
        fd's lines before it are consumed; other fds' lines are kept."""
        seen = {}
        while time.monotonic() < deadline:
            for i, (f, t, line) in enumerate(self.lines):
                if f == fd and text in line:
                    self.lines = [x for x in self.lines[:i] if x[0] != fd] + self.lines[i + 1:]
                    return t, seen
            for e in self.poll([e for e in extra if e not in seen], deadline):
                seen[e] = time.monotonic_ns()
        return None, seen


def wait_fd(fd, deadline, pipes):
    while time.monotonic() < deadline:
        if pipes.poll([fd], deadline):
            return time.monotonic_ns()
    return None


def short_name(i):
    """At most 3 characters: 10000 names fit a 64 KiB ready message."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        s = digits[i % 36] + s
        i //= 36
        if i == 0:
            return s


def handoff(d, n, runs, httpd, prefix):
    ctl = os.path.join(d, "ctl.sock")
    if SHORT_NAMES:
        names = [short_name(i) for i in range(n)]
    else:
        names = ["l%d" % i for i in range(1, n + 1)]
    listen = ["--listen=%s=tcp://127.0.0.1:0" % x for x in names]
    base = [httpd, "--control", ctl, "--drain-timeout", "10"] + listen + HTTPD_ARGS
    pipes = Pipes(d)
    r, w = pipes.new("httpd-0.log")
    pid = spawn(base + ["--tag", "v0"], w)
    os.close(w)
    t, _ = pipes.wait_line(r, "ready: serving", time.monotonic() + TIMEOUT)
    if t is None:
        sys.exit("takeover_clock: the first handoff-httpd (%d listeners) "
                 "never served; see %s/httpd-0.log" % (n, d))
    for run in range(1, runs + 1):
        inc, inc_r = pidfd(pid), r
        r, w = pipes.new("httpd-%d.log" % run)
        argv = prefix + base + ["--tag", "v%d" % run]
        t0 = time.monotonic_ns()
        pid = spawn(argv, w)
        os.close(w)
        deadline = time.monotonic() + TIMEOUT
        tt, _ = pipes.wait_line(r, "took over", deadline)
        tr, _ = pipes.wait_line(r, "ready: serving", deadline)
        tl, seen = pipes.wait_line(r, "released by pid", deadline, [inc])
        te = seen.get(inc) or wait_fd(inc, deadline, pipes)
        os.close(inc)
        ti, _ = pipes.wait_line(inc_r, "released to pid", deadline)
        print("run %d took_over=%s ready=%s released=%s incumbent_exit=%s "
              "inc_released=%s" % (run, ms(t0, tt), ms(t0, tr), ms(t0, tl),
                                   ms(t0, te), ms(t0, ti)), flush=True)
        if tl is None:
            sys.exit("takeover_clock: run %d never released; see %s: %s"
                     % (run, d, last_line(d, run)))
    if prefix:
        stop_profiler(pid)


def stop_profiler(pid):
    """SIGINT lets perf or strace write its data; bounded, then SIGKILL."""
    os.kill(pid, signal.SIGINT)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            started.remove(pid)
            return
        time.sleep(0.05)


def last_line(d, run):
    try:
        with open(os.path.join(d, "httpd-%d.log" % run)) as f:
            return f.read().strip().splitlines()[-1][:300]
    except (OSError, IndexError):
        return "no log"


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def haproxy(d, n, runs, exe):
    cfg = os.path.join(d, "haproxy.cfg")
    pidf = os.path.join(d, "haproxy.pid")
    sock = os.path.join(d, "stats.sock")
    with open(cfg, "w") as f:
        f.write("global\n\tnbthread 1\n\tmaxconn 1000\n"
                "\tstats socket %s mode 600 level admin expose-fd listeners\n"
                "defaults\n\tmode http\n\ttimeout connect 5s\n"
                "\ttimeout client 30s\n\ttimeout server 30s\n"
                "frontend fe\n" % sock)
        for p in free_ports(n):
            f.write("\tbind 127.0.0.1:%d\n" % p)
        f.write("\thttp-request return status 200 content-type text/plain "
                "string \"ok\\n\"\n")
    pipes = Pipes(d)
    base = [exe, "-D", "-f", cfg, "-p", pidf]

    def run_cmd(argv, name):
        r, w = pipes.new(name)
        t0 = time.monotonic_ns()
        pid = spawn(argv, w)
        os.close(w)
        fd = os.pidfd_open(pid)
        t1 = wait_fd(fd, time.monotonic() + TIMEOUT, pipes)
        os.close(fd)
        _, status = os.waitpid(pid, 0)
        if t1 is None or status != 0:
            sys.exit("takeover_clock: %s failed (status %d); see %s/%s"
                     % (" ".join(argv[:6]), status, d, name))
        return t0, t1

    run_cmd(base, "haproxy-0.log")
    for run in range(1, runs + 1):
        old = int(open(pidf).read().split()[0])
        started.append(old)
        inc = pidfd(old)
        t0, t1 = run_cmd(base + ["-x", sock, "-sf", str(old)],
                         "haproxy-%d.log" % run)
        te = wait_fd(inc, time.monotonic() + TIMEOUT, pipes) if inc else None
        if inc:
            os.close(inc)
        print("run %d return=%s old_exit=%s" % (run, ms(t0, t1), ms(t0, te)),
              flush=True)
    started.append(int(open(pidf).read().split()[0]))


def main():
    global TIMEOUT, SHORT_NAMES
    args = sys.argv[1:]
    while args and args[0].startswith("--"):
        if args[0] == "--short-names":
            SHORT_NAMES = True
            del args[0]
        elif args[0] == "--httpd-arg" and len(args) > 1:
            HTTPD_ARGS.append(args[1])
            del args[:2]
        elif args[0] == "--timeout" and len(args) > 1:
            TIMEOUT = float(args[1])
            del args[:2]
        else:
            sys.exit(__doc__)
    if len(args) < 5 or args[0] not in ("handoff", "haproxy"):
        sys.exit(__doc__)
    what, d, n, runs, exe = args[:5]
    try:
        if what == "handoff":
            handoff(d, int(n), int(runs), exe, args[5:])
        else:
            haproxy(d, int(n), int(runs), exe)
    finally:
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in started:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    main()
