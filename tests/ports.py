#!/usr/bin/env python3
"""Ports for one integration test: ports.py --dir DIR --owner PID --list
FILE N prints N distinct ports, each free for TCP and UDP on 127.0.0.1
(and ::1 where it exists).

A test picks its ports once and may bind one again minutes later (a
server stopped, the next one started on the same port). In between, a
port of the kernel's ephemeral range (net.ipv4.ip_local_port_range) can be
taken by any client's connect() or its TIME_WAIT, or by another test's
bind to port 0: the later bind then fails with EADDRINUSE. So the ports
come from below that range, where neither happens, and each is reserved
for the test that picked it by a directory DIR/PORT (mkdir is atomic) with
the owner's pid in it. The test appends the ports to FILE and removes
their directories as it exits (tests/lib.sh, cleanup). A reservation
whose owner has gone for an hour or more (a test killed with SIGKILL) is
taken back.
"""
import argparse
import errno
import os
import random
import socket
import sys
import time

STALE_S = 3600


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def bindable(port):
    """The port can be bound now for TCP and UDP, on 127.0.0.1 and ::1."""
    for family, host in ((socket.AF_INET, "127.0.0.1"),
                         (socket.AF_INET6, "::1")):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            try:
                s = socket.socket(family, kind)
            except OSError as e:
                if family == socket.AF_INET6 and e.errno == errno.EAFNOSUPPORT:
                    break  # no IPv6 here
                raise
            try:
                s.bind((host, port))
            except OSError as e:
                if e.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6:
                    break  # no ::1 here
                return False
            finally:
                s.close()
    return True


def reclaim(path):
    """Removes a reservation left by an owner gone for STALE_S."""
    try:
        with open(os.path.join(path, "owner")) as f:
            owner = int(f.read())
        age = time.time() - os.stat(path).st_mtime
    except (OSError, ValueError):
        return False
    if age < STALE_S or alive(owner):
        return False
    try:
        os.unlink(os.path.join(path, "owner"))
        os.rmdir(path)
    except OSError:
        return False
    return True


def reserve(args, port):
    path = os.path.join(args.dir, str(port))
    try:
        os.mkdir(path)
    except FileExistsError:
        if not reclaim(path):
            return False
        try:
            os.mkdir(path)
        except FileExistsError:
            return False
    if not bindable(port):
        os.rmdir(path)
        return False
    with open(os.path.join(path, "owner"), "w") as f:
        f.write("%d\n" % args.owner)
    with open(args.list, "a") as f:
        f.write("%d\n" % port)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--owner", type=int, required=True)
    ap.add_argument("--list", required=True)
    ap.add_argument("n", type=int)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    try:
        os.chmod(args.dir, 0o1777)  # shared by every user's tests, as /tmp
    except PermissionError:
        pass  # another user's
    low = ephemeral_low()
    first, last = 10000, low - 1
    if last - first < 1000:
        sys.exit("ports.py: the ephemeral range starts at %d: no room below "
                 "it for test ports (net.ipv4.ip_local_port_range)" % low)
    picked = []
    rng = random.SystemRandom()
    for _ in range(args.n * 200):
        if len(picked) == args.n:
            break
        port = rng.randint(first, last)
        if port not in picked and reserve(args, port):
            picked.append(port)
    if len(picked) < args.n:
        sys.exit("ports.py: found %d of %d free ports in %d-%d"
                 % (len(picked), args.n, first, last))
    print(" ".join(str(p) for p in picked))


if __name__ == "__main__":
    main()
