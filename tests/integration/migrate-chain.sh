#!/bin/bash
# A second upgrade while the first one's connections still move strands
# none in the oldest generation (PROTOCOL.md 6.9 item 7). v1 has an idle
# connection and two busy ones (tests/busy-client.py: pipelined requests
# whose answers wait in v1's output, so they are not idle and do not
# move yet); v2 takes over, and only the idle one moves. A busy
# connection of v2's own keeps it draining, and v3 takes over from v2:
# v1 is superseded. Then v1's first busy connection is read to its end
# and becomes idle: v1 gives it to v2, which passes it on to v3, and v3
# answers its next request on it, keeping it open. Then v2's busy
# connection is read: v2 gives it to v3 (which answers its next
# request), drains, and exits, handing v3 its connection to v1 as a link. Last, v1's second busy connection is
# read: v1 gives it on that link, v3 takes it and answers its next
# request, keeping it open; v1 exits 0. (A superseded incumbent used to
# give no more: both stayed in v1 and were answered Connection: close.)
# Then the hammer: v4 takes over from v3, which has 600 idle connections
# (tests/http-client.py: half requests, pipelined pairs to come), with
# --max-draining 0: v3 is hammered right after it releases v4, and first
# gives every idle connection (it gave the first 252 and closed the
# rest); v4 answers every next request, and closes none.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

port=$(free_port)
listen="--listen http=tcp://127.0.0.1:$port"
# About 9 MB of answers: more than the kernel holds for one socket.
COUNT=60000

# busy NAME [N]: a connection (tests/busy-client.py) with N pipelined
# requests sent (COUNT: busy; 1: idle once answered), answering.
busy() {
	go_fifo "$1"
	python3 "$top_srcdir/tests/busy-client.py" "$port" "${2:-$COUNT}" \
	    "$T/$1.go" "$T/$1.out" 2>"$T/$1.err" &
	PIDS="$PIDS $!"
	eval "$1=\$!"
	wait_for 60 grep -q '^busy$' "$T/$1.out" ||
	    fail "$1: no answers: $(cat "$T/$1.out" "$T/$1.err")"
}

# logged_n NAME N TEXT: NAME's log has TEXT on N lines or more.
logged_n() { [ "$(grep -c -- "$3" "$T/$1.log")" -ge "$2" ]; }

# drained NAME [N]: NAME read all its N (COUNT) answers (the last may
# come from a newer generation: what its server had not read yet moves
# with it).
drained() {
	go_on "$1"
	wait_for 60 grep -q '^read ' "$T/$1.out" ||
	    fail "$1 did not read its answers: $(cat "$T/$1.err")"
	grep -q "^read ${2:-$COUNT} " "$T/$1.out" ||
	    fail "$1: $(grep '^read ' "$T/$1.out"), want ${2:-$COUNT} answers"
}

# next_from NAME PID: NAME's next request is answered by PID, and its
# connection stays open.
next_from() {
	go_on "$1"
	wait_for 60 grep -q '^done$' "$T/$1.out" ||
	    fail "$1 did not finish: $(cat "$T/$1.out" "$T/$1.err")"
	grep -q "^next $2 keep\$" "$T/$1.out" ||
	    fail "$1: $(grep '^next' "$T/$1.out"), want pid $2, kept open"
}

# shellcheck disable=SC2086
serve v1 $listen --tag v1 --drain-timeout 60
v1=$LAST_PID
busy idle 1
busy b1
busy b2

# shellcheck disable=SC2086
serve v2 $listen --tag v2 --drain-timeout 60
v2=$LAST_PID
wait_for 30 logged v1 "successor pid $v2 took 1 connection;" ||
    fail "v1 did not give the idle connection: $(tail -n 3 "$T/v1.log")"
alive "$v1" || fail "v1 exited: its busy connections moved while busy"
busy b3
wait_for 30 has_connections 2 || fail "v2 does not hold two connections"

# shellcheck disable=SC2086
serve v3 $listen --tag v3 --drain-timeout 60
v3=$LAST_PID
wait_for 30 logged v1 "handed over to pid $v3" ||
    fail "v1 was not told v3 serves: $(tail -n 3 "$T/v1.log")"

# v2 gave v3 the idle connection: one "took" line each so far.
wait_for 30 logged v2 "successor pid $v3 took 1 connection;" ||
    fail "v2 did not give v3 the idle connection: $(tail -n 3 "$T/v2.log")"

# Through v2, which drains and passes it on.
drained b1
wait_for 30 logged_n v2 2 "successor pid $v3 took 1 connection;" ||
    fail "v2 did not pass b1 on: $(tail -n 3 "$T/v2.log")"
logged_n v1 2 "successor pid $v2 took 1 connection;" ||
    fail "v1 did not give b1 to v2: $(tail -n 3 "$T/v1.log")"
next_from b1 "$v3"

# v2 goes, and v3 holds v1's connection as a link.
drained b3
reap_ok 30 "$v2" "v2, drained"
wait_for 30 logged v3 "handed us 1 link" ||
    fail "v2 did not hand v3 its link: $(tail -n 3 "$T/v3.log")"
alive "$v1" || fail "v1 exited with a busy connection"
next_from b3 "$v3"

# On the link, to v3 directly.
drained b2
wait_for 30 logged v1 "took 1 connection; 0 given and not taken yet (answered by pid $v3," ||
    fail "v3 did not take b2 on the link: $(tail -n 3 "$T/v1.log")"
next_from b2 "$v3"
reap_ok 30 "$v1" "v1, drained"
logged v1 "connections stay here" &&
    fail "v1 kept connections: $(grep 'stay here' "$T/v1.log")"

drained idle 1
next_from idle "$v3"

N=600
start_clients c4 "$top_srcdir/tests/http-client.py" "$port" "$N"
# shellcheck disable=SC2086
serve v4 $listen --tag v4 --drain-timeout 60 --max-draining 0
v4=$LAST_PID
reap_ok 30 "$v3" "v3, hammered"
logged v3 "hammered: no older generation may drain" ||
    fail "v3 was not hammered: $(tail -n 3 "$T/v3.log")"
finish_clients c4
# 0 and the odd ones: one answer each; the even ones but 0: a pair.
_n=$(sed -n '/^ready$/,$p' "$T/c4.out" | grep -c " $v4\$")
[ "$_n" = $((N / 2 + (N / 2 - 1) * 2 + 1)) ] ||
    fail "v4 answered $_n requests of $((N / 2 + (N / 2 - 1) * 2 + 1)):" \
    "$(grep -c ' closed$' "$T/c4.out") connections closed"
kill -TERM "$v4"
reap_ok 30 "$v4" "v4, stopped"
pass
