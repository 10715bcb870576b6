#!/bin/bash
# Established connections migrate ("conns" extension), with the bytes
# already read, and nothing is lost on any path. tests/progs/connkeeper
# answers each line "pid=P tag=T n=N LINE", N counting the lines of that
# connection across generations (it travels in the connection's state).
# 1. 200 idle connections to v1, half with half a line read; v2 takes
#    over: v1 gives them all and exits at once (its drain deadline is
#    60 s), and each next line is answered by v2 on the same connection
#    (n=2, the half line completed), none closed; v2 accepted none.
# 2. A successor (tests/peer.py) that takes the connections and is
#    SIGKILLed before it answers for them: v2 serves every one again,
#    and rolls back.
# 3. A successor that refuses them: served again by v2.
# 4. A successor without the extension (connkeeper -n): v2 keeps its
#    connections and drains them itself.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

use_peer

KEEPER="$top_builddir/tests/progs/connkeeper"
port=$(free_port)
listen="tcp=tcp://127.0.0.1:$port"
N=200

# keeper NAME [-n]: connkeeper NAME on $CONTROL, logging to $T/NAME.log.
keeper() {
	# shellcheck disable=SC2086
	"$KEEPER" ${2:-} "$CONTROL" "$1" "$listen" >"$T/$1.log" 2>&1 &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
	wait_for 30 logged "$1" "ready: serving" ||
	    fail "$1 never served: $(tail -n 3 "$T/$1.log")"
}

# clients NAME: $N connections (tests/conn-client.py); the rest of what
# they send waits for finish NAME.
clients() {
	start_clients "$1" "$top_srcdir/tests/conn-client.py" "$port" "$N"
}

# answered NAME WHICH PID N: every connection's WHICH answer came from
# PID with n=N, none closed.
answered() {
	_got=$(grep -c "^[0-9]* $2 $3 $4 " "$T/$1.out")
	[ "$_got" = "$N" ] || fail "$1: $_got of $N $2 answers from pid $3" \
	    "with n=$4: $(grep " $2 " "$T/$1.out" | grep -v " $3 $4 " | head -n 3)"
}

finish() { finish_clients "$1"; }

# ---- 1. 200 idle connections, half with half a line read
keeper v1
v1=$LAST_PID
clients c1
answered c1 first "$v1" 1
keeper v2
v2=$LAST_PID
# Nobody has sent anything since: v1 exits only if it gave them all.
reap_ok 30 "$v1" "v1, which gave its connections"
logged v1 "took $N connections\|took [0-9]* connection" ||
    fail "v1 did not log what its successor took"
logged v1 "accepted $N connections, was given 0" || fail "v1 did not accept $N"
finish c1
answered c1 second "$v2" 2
grep -q "^1 second $v2 2 partial 1\$" "$T/c1.out" ||
    fail "the half line read by v1 was not completed on v2: $(grep '^1 second' "$T/c1.out")"

# ---- 2. a successor killed before it answers for them: v2 serves them
clients c2
answered c2 first "$v2" 1
conns_peer peer2
peer=$PEER_PID
grep '"type":"conns"' "$T/peer2.out" | grep -q '"valid":true' ||
    fail "v2's conns message is not valid: $(grep '"type":"conns"' "$T/peer2.out" | head -c 600)"
wait_for 30 logged v2 "released to pid $peer" || fail "v2 was not released"
conns_back v2
finish c2
answered c2 second "$v2" 2

# ---- 3. a successor that refuses them
clients c3
conns_peer peer3 --conns refuse
peer=$PEER_PID
wait_for 30 logged v2 "and refused $N: serving those again\|refused [0-9]*: serving those again" ||
    fail "v2 did not serve the refused connections again: $(tail -n 3 "$T/v2.log")"
kill -KILL "$peer"
wait_exit "$peer" 2>/dev/null
wait_for 30 logged v2 "rolled back: successor pid $peer" || fail "v2 did not roll back after the peer"
finish c3
answered c3 second "$v2" 2

# ---- 4. a successor without the extension: v2 keeps its connections
clients c4
keeper v3 -n
v3=$LAST_PID
wait_for 30 logged v2 "released to pid $v3" || fail "v2 was not released to v3"
alive "$v2" || fail "v2 exited with connections it could not give"
finish c4
answered c4 second "$v2" 2
reap_ok 30 "$v2" "v2, drained"
kill -TERM "$v3"
reap_ok 30 "$v3" "v3, stopped"
pass
