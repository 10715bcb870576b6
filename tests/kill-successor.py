#!/usr/bin/python3
"""kill-successor.py: start a successor, SIGKILL it at a chosen moment, and
say how many client connections it had accepted by then.

  kill-successor.py --port PORT --log FILE [--after TEXT] --ms MS
                    -- COMMAND [ARGS...]

COMMAND runs with stdout and stderr appended to FILE. MS milliseconds
after it was started, or after a line containing TEXT appeared in FILE,
it is stopped (SIGSTOP), so that nothing changes while its TCP
connections with local port PORT are counted (accepted ones, not the
listener; ss(8) lists them), then killed (SIGKILL) and reaped. FILE is
read every millisecond meanwhile.

Prints one line of five fields:

  PID DELAY_MS OFFER_MS READY_MS HELD

OFFER_MS and READY_MS: ms from the start to the successor's "taking over
from" line (it has the offer) and "ready: serving" line (written just
after it sent ready), or "-" if the line was not there when it was
stopped. HELD: the connections counted. Exit status: 0 done, 1 COMMAND
exited by itself or TEXT did not appear within 30 s, 2 usage.
"""
import argparse, ctypes, os, signal, subprocess, sys, time

LINES = {"offer": b"taking over from", "ready": b"ready: serving"}
AFTER_WAIT_S = 30
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """In the child: a SIGKILLed helper takes its successor with it."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def socket_inodes(pid):
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def held_connections(pid, port):
    """TCP connections of pid with local port `port` (not the listener),
    from ss(8): its netlink dump is quicker than /proc/net/tcp."""
    # Its stderr is kept out of this helper's result line: where no cgroup2
    # is mounted (a package build's chroot) ss says "Failed to find
    # cgroup2 mount" there, and lists the sockets all the same.
    r = subprocess.run(["ss", "-Htne", "state", "connected", "sport", "=",
                        ":%d" % port], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("ss exited %d: %s" % (r.returncode, r.stderr.strip()))
    out = r.stdout
    listed = {w[4:] for w in out.split() if w.startswith("ino:")}
    return len(listed & socket_inodes(pid))


class Watch:
    """When each line of LINES (and TEXT) first appeared in the log."""

    def __init__(self, path, start):
        self.log, self.start, self.seen = open(path, "rb"), start, {}

    def poll(self, texts):
        self.log.seek(0)
        data = self.log.read()
        now = (time.monotonic() - self.start) * 1000
        for t in texts:
            if t not in self.seen and t in data:
                self.seen[t] = now

    def ms(self, text):
        v = self.seen.get(text)
        return "-" if v is None else "%.2f" % v


def main():
    ap = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--after", default="")
    ap.add_argument("--ms", type=float, required=True)
    ap.add_argument("command", nargs="+")
    a = ap.parse_args()

    after = a.after.encode()
    texts = list(LINES.values()) + ([after] if after else [])
    out = open(a.log, "ab")
    start = time.monotonic()
    child = subprocess.Popen(a.command, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=out, preexec_fn=die_with_parent)
    watch = Watch(a.log, start)
    stop_at = None if after else start + a.ms / 1000
    while True:
        watch.poll(texts)
        now = time.monotonic()
        if stop_at is None and after in watch.seen:
            stop_at = start + (watch.seen[after] + a.ms) / 1000
        if stop_at is not None and now >= stop_at:
            break
        if child.poll() is not None or (stop_at is None and now - start > AFTER_WAIT_S):
            child.kill()
            child.wait()
            print("pid %d: exited with status %s, or no line %r within %d s"
                  % (child.pid, child.returncode, a.after, AFTER_WAIT_S))
            return 1
        time.sleep(min(0.001, stop_at - now) if stop_at is not None else 0.001)
    child.send_signal(signal.SIGSTOP)
    # Returns once it is stopped (SIGSTOP cannot be caught) or has exited.
    _, status = os.waitpid(child.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        child.returncode = os.waitstatus_to_exitcode(status)
        print("pid %d exited by itself before the kill: status %s"
              % (child.pid, child.returncode))
        return 1
    watch.poll(texts)
    held = held_connections(child.pid, a.port)
    child.kill()
    child.wait()
    print("%d %.2f %s %s %d" % (child.pid, a.ms, watch.ms(LINES["offer"]),
                                watch.ms(LINES["ready"]), held))
    return 0


if __name__ == "__main__":
    sys.exit(main())
