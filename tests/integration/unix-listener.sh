#!/bin/bash
# A unix stream listener serves before and after a takeover, and its socket
# file is the same inode throughout (passed, never unlinked and re-bound).
# A stale socket file from a dead process is replaced on a fresh start.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

sock=$T/web.sock
uget() { curl -fsS --max-time 5 --unix-socket "$sock" http://localhost/; }
serves_unix() { uget | grep -q "$1"; }

# A stale web.sock: bound by a process that has exited, never unlinked.
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1])
s.listen(); s.close()' "$sock" || fail "cannot make a stale $sock"
[ -S "$sock" ] || fail "no stale socket at $sock"
uget >/dev/null 2>&1 && fail "the stale $sock accepts connections"

serve v1 --listen "web=unix:$sock" --tag v1
v1=$LAST_PID
logged v1 "bound web=$sock" || fail "v1 did not log binding web=$sock"
serves_unix "pid=$v1 tag=v1 gen=1" || fail "v1 does not serve on $sock"
# (The replacement may reuse the freed inode number: serving is the proof.)
inode=$(stat -c %i "$sock")

upgrade "$v1" v2 --listen "web=unix:$sock" --tag v2
v2=$NEW_PID
serves_unix "pid=$v2 tag=v2 gen=2" || fail "v2 does not serve on $sock"
[ "$(stat -c %i "$sock")" = "$inode" ] || fail "$sock changed inode across" \
    "the takeover: $inode, now $(stat -c %i "$sock")"
logged v2 "took over from pid $v1: adopted 2 (web,state); added 0; retired 0\$" ||
    fail "v2 did not adopt web: $(grep 'took over' "$T/v2.log")"

# Once more, with v2 draining a request on $sock that the test holds.
hold_unix held "$sock"
wait_for 30 has_connections 1 || fail "the held request never reached v2"
serve v3 --listen "web=unix:$sock" --tag v3
v3=$LAST_PID
serves_unix "pid=$v3 tag=v3 gen=3" || fail "v3 does not serve on $sock"
alive "$v2" || fail "v2 exited with a held request in flight"
release "$held" "$v2"
reap_ok 30 "$v2" "v2, drained"
[ "$(stat -c %i "$sock")" = "$inode" ] || fail "$sock changed inode at v3"
pass
