"""Records what processes send to a NOTIFY_SOCKET, one JSON line each.

usage: notify-recorder.py PATH OUT   (path socket; @NAME for abstract)
Writes {"pid": N, "fields": {...}} lines to OUT until killed.
"""
import json
import socket
import struct
import sys


def main():
    path, out = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + path[1:] if path.startswith("@") else path)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    with open(out, "a", buffering=1) as f:
        while True:
            data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
            pid = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", value[:12])[0]
            fields = dict(line.split("=", 1) for line in
                          data.decode().split("\n") if "=" in line)
            f.write(json.dumps({"pid": pid, "fields": fields}) + "\n")


if __name__ == "__main__":
    main()
