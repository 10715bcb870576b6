#!/bin/bash
# Fds of any kind go across takeovers by name (handoff_pass_fd, "fd:"),
# and survive a successor that dies with them. tests/progs/fdkeeper keeps
# a counter in a memfd, a line in a pipe, the last counter in an eventfd,
# a timerfd set to a 1234 s interval, and a TCP connection to a backend
# (a Python server here that answers each line "ok LINE" and logs it).
# Each turn reads what the one before left in each and writes its own:
#   v1 fresh; v2 takes over;
#   v3a receives the fds and is SIGKILLed before ready: v2 serves on;
#   v3 takes over (ready, released) and is SIGKILLed while v2 drains:
#   v2 rolls back and takes its turn again with the same fds;
#   v4 takes over from v2.
# Every turn finds exactly what the turn before left (the backend's
# answer to it included), the backend sees one connection carry every
# line in order, v4 holds v1's very memfd, pipe and socket (their /proc
# links), and status lists them (the connection as a tcp socket that
# does not listen, the others as kind fd).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

KEEPER="$top_builddir/tests/progs/fdkeeper"
[ -x "$KEEPER" ] || fail "$KEEPER is not built (make check builds it)"

cat >"$T/backend.py" <<'EOF'
import socket, sys, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
out = open(sys.argv[1], "w", buffering=1)
print("port", srv.getsockname()[1], file=out)
def serve(conn, n):
    try:
        for line in conn.makefile("rb"):
            line = line.decode().rstrip("\n")
            conn.sendall(b"ok %s\n" % line.encode())
            print("conn %d: %s" % (n, line), file=out)
    except ConnectionResetError:
        pass    # closed with our last answer unread
    print("conn %d: closed" % n, file=out)
n = 0
while True:
    conn, _ = srv.accept()
    n += 1
    threading.Thread(target=serve, args=(conn, n), daemon=True).start()
EOF
python3 "$T/backend.py" "$T/backend.out" 2>"$T/backend.log" &
PIDS="$PIDS $!"
wait_for 30 grep -q '^port ' "$T/backend.out" || fail "the backend never listened"
bport=$(sed -n 's/^port //p' "$T/backend.out")

# keeper NAME [ARGS]: fdkeeper with ARGS, output in $T/NAME.out; pid in
# $LAST_PID. Returns at once.
keeper() {
	_name=$1; shift
	"$KEEPER" "$@" "$CONTROL" "$_name" "$bport" >"$T/$_name.out" \
	    2>"$T/$_name.log" &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
}

# turn NAME WHAT LINE: waits for NAME's line for its turn WHAT ("gen G",
# "resumed gen G") and checks it is "NAME WHAT: LINE"; then waits until
# the backend has logged NAME's line there.
turn() {
	wait_for 60 grep -q "^$1 $2:" "$T/$1.out" ||
	    fail "$1 never took its turn ($2): $(cat "$T/$1.log")"
	grep -qx "$1 $2: $3" "$T/$1.out" ||
	    fail "$1 $2 found \"$(grep "^$1 $2:" "$T/$1.out")\", want \"$3\""
	_want=$(( $(grep -c "^conn [0-9]*: $1\$" "$T/backend.out.seen" \
	    2>/dev/null) + 1 ))
	wait_for 60 eval "[ \$(grep -c '^conn 1: $1\$' '$T/backend.out') -ge $_want ]" ||
	    fail "the backend never got $1's line: $(cat "$T/backend.out")"
	grep "^conn 1: $1\$" "$T/backend.out" >>"$T/backend.out.seen"
}

# fd_addresses: what status says of each fd, "NAME=ADDRESS" a line,
# sorted: the /proc link of a memfd, a pipe, an eventfd, a timerfd.
fd_addresses() {
	status_json | python3 -c 'import json, sys
r = json.load(sys.stdin)
print("\n".join(sorted("%s=%s" % (l["name"], l["address"])
    for l in r["listeners"] if l["kind"] == "fd")))'
}

# backend_inode: the inode of the one connection to the backend.
backend_inode() {
	ss -Htne state established "( dport = :$bport )" |
	    sed -n 's/.* ino:\([0-9]*\) .*/\1/p'
}

keeper v1
v1=$LAST_PID
turn v1 "gen 1" "counter=1 pipe=- eventfd=0 timer=1234 backend=-"
fds_v1=$(fd_addresses)
case $fds_v1 in
*"counter=/memfd:counter"*"pipe-r=pipe:["*"timer=anon_inode:[timerfd]"*) ;;
*) fail "status lists other fds: $fds_v1" ;;
esac
ino=$(backend_inode)
[ -n "$ino" ] && [ -e "/proc/$v1/fd" ] &&
    ls -l "/proc/$v1/fd" | grep -q "socket:\[$ino\]" ||
    fail "v1 holds no connection to the backend (inode ${ino:-none})"

keeper v2 -h "$T/hold-v2"
v2=$LAST_PID
turn v2 "gen 2" "counter=2 pipe=v1 eventfd=1 timer=1234 backend=ok v1"
reap_ok 60 "$v1" v1
wait_for 30 is_serving "$v2" || fail "v2 does not serve"

# v3a dies with the fds received, before ready: v2 serves on.
keeper v3a -w "$T/never"
v3a=$LAST_PID
wait_for 60 grep -q '^v3a received gen 3$' "$T/v3a.out" ||
    fail "v3a never received the fds: $(cat "$T/v3a.log")"
ls -l "/proc/$v3a/fd" | grep -q "socket:\[$ino\]" ||
    fail "v3a does not hold the backend connection"
kill -KILL "$v3a"
wait_exit "$v3a"
wait_for 30 grep -q "successor pid $v3a went away before ready: still serving" \
    "$T/v2.log" || fail "v2 did not carry on after v3a: $(tail -n 3 "$T/v2.log")"
is_serving "$v2" || fail "v2 does not serve after v3a died"

# v3 takes over and dies while v2 drains: v2 rolls back.
keeper v3
v3=$LAST_PID
turn v3 "gen 3" "counter=3 pipe=v2 eventfd=2 timer=1234 backend=ok v2"
wait_for 60 grep -q "released to pid $v3" "$T/v2.log" || fail "v2 never released to v3"
kill -KILL "$v3"
wait_exit "$v3"
wait_for 60 grep -q "rolled back: successor pid $v3 vanished" "$T/v2.log" ||
    fail "v2 did not roll back: $(tail -n 3 "$T/v2.log")"
turn v2 "resumed gen 2" "counter=4 pipe=v3 eventfd=3 timer=1234 backend=ok v3"
wait_for 30 is_serving "$v2" || fail "v2 does not serve after the rollback"

touch "$T/hold-v2"
keeper v4
v4=$LAST_PID
turn v4 "gen 3" "counter=5 pipe=v2 eventfd=4 timer=1234 backend=ok v2"
reap_ok 60 "$v2" v2
grep -q "took over from pid $v2: adopted 6 (" "$T/v4.log" ||
    fail "v4 did not adopt the 6 fds: $(grep 'took over' "$T/v4.log")"
[ "$(fd_addresses)" = "$fds_v1" ] ||
    fail "v4 holds other fds than v1: $(fd_addresses), v1: $fds_v1"
while read -r f; do
	ls -l "/proc/$v4/fd" | grep -qF -- "-> ${f#*=}" ||
	    fail "v4 does not hold v1's ${f%%=*} (${f#*=})"
done <<EOF
$fds_v1
EOF
[ "$(backend_inode)" = "$ino" ] || fail "the backend connection changed"
ls -l "/proc/$v4/fd" | grep -q "socket:\[$ino\]" ||
    fail "v4 does not hold v1's connection to the backend"
[ "$(grep -v '^port ' "$T/backend.out" | tr '\n' ' ')" = \
    "conn 1: v1 conn 1: v2 conn 1: v3 conn 1: v2 conn 1: v4 " ] ||
    fail "the backend saw: $(cat "$T/backend.out")"

"$CTL" status --control "$CONTROL" --json >"$T/status.json" ||
    fail "handoffctl status failed"
python3 - "$T/status.json" <<'PY' || fail "status: $(cat "$T/status.json")"
import json, sys
r = json.load(open(sys.argv[1]))
kinds = {l["name"]: (l["kind"], l["family"], l["socktype"], l["address"])
         for l in r["listeners"]}
assert kinds["counter"][:3] == ("fd", "other", "other"), kinds
assert kinds["counter"][3].startswith("/memfd:counter"), kinds
assert kinds["pipe-r"][3].startswith("pipe:["), kinds
assert kinds["events"][3] == "anon_inode:[eventfd]", kinds
assert kinds["timer"][3] == "anon_inode:[timerfd]", kinds
# A socket is described by what it is, even when passed as "fd:".
assert kinds["backend"][:3] == ("tcp", "inet", "stream"), kinds
assert not [l for l in r["listeners"] if l["name"] == "backend"][0]["listening"]
assert r["count"] == 7, r["count"]
PY
"$CTL" stop --control "$CONTROL" >/dev/null || fail "handoffctl stop failed"
reap_ok 60 "$v4" v4
wait_for 30 grep -q '^conn 1: closed$' "$T/backend.out" ||
    fail "the backend connection outlived the last holder"
pass
