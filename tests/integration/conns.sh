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
# 3. A successor that first answers for ids it was never given (taken
#    and refused at once), then refuses them: the bogus answer changes
#    nothing, and v2 serves them again.
# 4. A successor without the extension (connkeeper -n): v2 keeps its
#    connections and drains them itself.
# 5. A successor with room for few fds (ulimit -n 150): v4 gives it no
#    more than its hello said it could take, keeps the rest and serves
#    them; nothing is lost, nobody rolls back, and v5 serves.
# 6. A broken incumbent (tests/peer.py --give-conns) gives connkeeper v6
#    one socket twice, one with another's inode, then (without inodes)
#    one by its addresses with a state and one with a wrong peer, then a
#    listener and a connected UDP socket with their true inodes (and id 7
#    twice, answered once): v6 takes
#    the first and the fourth and serves them; the rest it refuses,
#    closes and names.
# 7. A broken incumbent gives 252 connections in one message to a
#    successor whose fd table cannot hold them (ulimit -n 100): the
#    message is read without its fds, and every connection is refused,
#    so that the incumbent serves them again at once.
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
conns_peer peer3 --conns refuse --send-after-released \
    '{"type":"conns_taken","proto":1,"pid":1,"taken":[999999,7],"refused":[424242,7]}'
peer=$PEER_PID
wait_for 30 logged v2 "successor pid $peer took 0 connections; [0-9]* given and not taken yet" ||
    fail "v2 did not ignore an answer for connections it never gave: $(tail -n 3 "$T/v2.log")"
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

# ---- 5. a successor with room for few fds
keeper v4
v4=$LAST_PID
clients c5
(ulimit -n 150 && exec "$KEEPER" "$CONTROL" v5 "$listen") >"$T/v5.log" 2>&1 &
v5=$!
PIDS="$PIDS $v5"
wait_for 30 logged v5 "ready: serving" || fail "v5 never served: $(tail -n 3 "$T/v5.log")"
wait_for 30 logged v4 "successor pid $v5 took [0-9]* connection" ||
    fail "v4 gave v5 nothing: $(tail -n 3 "$T/v4.log")"
finish c5
[ "$(grep -c '^[0-9]* second [0-9]* 2 ' "$T/c5.out")" = "$N" ] ||
    fail "not every connection was answered once: $(grep -v ' 2 ' "$T/c5.out" | head -n 3)"
grep -q "^[0-9]* second $v5 2 " "$T/c5.out" || fail "v5 answered none of them"
grep -q "^[0-9]* second $v4 2 " "$T/c5.out" || fail "v4 kept none of them"
logged v4 "rolled back" && fail "v4 rolled back beside v5"
is_serving "$v5" || fail "status does not name v5"
reap_ok 30 "$v4" "v4, drained"
kill -TERM "$v5"
reap_ok 30 "$v5" "v5, stopped"

# ---- 6. a broken incumbent's entries
port=$(free_port)
listen="tcp=tcp://127.0.0.1:$port"
peer_incumbent peer6 --listen "$listen" --give-conns
peer=$PEER_PID
keeper v6
v6=$LAST_PID
wait_for 30 grep -q '"event":"conn-client","n":4' "$T/peer6.out" ||
    fail "the peer's clients did not finish: $(tail -n 3 "$T/peer6.out")"
grep -q '"event":"conns-answered","taken":\[1,4\],"refused":\[2,3,5,6,7\]' "$T/peer6.out" ||
    fail "v6 did not take 1 and 4 and refuse the rest: $(grep conns-answered "$T/peer6.out")"
# Rows 1 and 4 are clients 1 and 3 (row 4 with the state n=5); clients
# 2 and 4 were refused.
for n in "1 1" "3 6"; do
	set -- $n
	grep "\"event\":\"conn-client\",\"n\":$1," "$T/peer6.out" |
	    grep -q "pid=$v6 tag=v6 n=$2 line$1" ||
	    fail "v6 did not serve connection $1: $(grep conn-client "$T/peer6.out")"
done
for n in 2 4; do
	grep "\"event\":\"conn-client\",\"n\":$n," "$T/peer6.out" |
	    grep -q '"got":"closed' ||
	    fail "connection $n was not closed: $(grep conn-client "$T/peer6.out")"
done
logged v6 "refused 2 of 3 connections from predecessor pid $peer (ids 2, 3)" &&
    logged v6 "refused 1 of 2 connections from predecessor pid $peer (ids 5)" &&
    logged v6 "refused 2 of 3 connections from predecessor pid $peer (ids 6, 7)" ||
    fail "v6 did not say what it refused: $(tail -n 3 "$T/v6.log")"
kill "$peer" 2>/dev/null
wait_exit "$peer"
kill -TERM "$v6"
reap_ok 30 "$v6" "v6, stopped"

# ---- 7. more fds than the successor can hold
port=$(free_port)
listen="tcp=tcp://127.0.0.1:$port"
peer_incumbent peer7 --listen "$listen" --give-many 252
peer=$PEER_PID
(ulimit -n 100 && exec "$KEEPER" "$CONTROL" v7 "$listen") >"$T/v7.log" 2>&1 &
v7=$!
PIDS="$PIDS $v7"
wait_for 30 grep -q '"event":"conns-answered"' "$T/peer7.out" ||
    fail "v7 did not answer: $(tail -n 3 "$T/peer7.out"; tail -n 3 "$T/v7.log")"
grep -q '"event":"conns-answered","taken":0,"refused":252' "$T/peer7.out" ||
    fail "v7 did not refuse all 252: $(grep conns-answered "$T/peer7.out")"
logged v7 'predecessor pid [0-9]*: "conns": the fds attached did not all arrive' ||
    fail "v7 did not say its fds were lost: $(tail -n 3 "$T/v7.log")"
alive "$v7" || fail "v7 died of the lost fds"
kill "$peer" 2>/dev/null
wait_exit "$peer"
kill -TERM "$v7"
reap_ok 30 "$v7" "v7, stopped"
pass
