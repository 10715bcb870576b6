#!/bin/sh
# One takeover at a time. While tests/peer.py, stopped after the offer,
# holds the takeover, a second hello gets error "busy" and a second
# handoff-httpd exits 1 with one line saying so. While a peer holds the lock
# file as a starting successor does, another handoff-httpd exits 1 with one
# line naming the lock holder. Through all of it the incumbent serves, and
# a takeover succeeds once the way is clear.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

use_peer

port=$(free_port)
url="http://127.0.0.1:$port/"
start_httpd v1 --listen "http=tcp://127.0.0.1:$port" --tag v1
v1=$LAST_PID
wait_for 30 is_serving "$v1" || fail "v1 (pid $v1) never served"

# hold NAME ARGS...: a peer that stops after the offer and hangs; $HOLDER.
hold() {
	_n=$1; shift
	$PEER successor --control "$CONTROL" --stop-after offer --then hang "$@" \
	    >"$T/$_n.out" 2>&1 &
	HOLDER=$!
	PIDS="$PIDS $HOLDER"
	wait_for 30 grep -q '"event":"stopped"' "$T/$_n.out" ||
	    fail "$_n never got the offer: $(tail -n 3 "$T/$_n.out")"
}
# one_line NAME TEXT: handoff-httpd NAME exited 1 and said exactly TEXT.
one_line() {
	wait_exit "$LAST_PID"
	[ "$STATUS" = 1 ] || fail "$1 exit $STATUS, want 1"
	[ "$(wc -l <"$T/$1.log")" = 1 ] || fail "$1 said more than one line: $(cat "$T/$1.log")"
	[ "$(cat "$T/$1.log")" = "$2" ] || fail "$1 said: $(cat "$T/$1.log"); want: $2"
}

hold holder
a=$HOLDER
"$CTL" status --control "$CONTROL" --json >"$T/status.json" || fail "no status while offering"
grep -q '"state": "offering"' "$T/status.json" || fail "state is not offering: $(cat "$T/status.json")"
grep -q "\"successor\": $a" "$T/status.json" || fail "status does not name successor $a"

$PEER successor --control "$CONTROL" >"$T/second.out" 2>&1
rc=$?
[ "$rc" = 4 ] || fail "second peer exit $rc, want 4 (error): $(tail -n 3 "$T/second.out")"
[ "$($PEER find "$T/second.out" --type error --field msg.code)" = busy ] ||
    fail "second hello did not get busy"
[ "$($PEER find "$T/second.out" --type error --field msg.message)" = \
    "pid $a is already taking over; one takeover at a time" ] || fail "wrong busy message"
b=$($PEER find "$T/second.out" --event sent --type hello --field msg.pid)
logged v1 "control: pid $b uid [0-9]*: busy: pid $a is already taking over" ||
    fail "v1 did not log the busy refusal"

start_httpd v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
one_line v2 "handoff-httpd: incumbent pid $v1 refused the takeover: busy: pid $a is already taking over; one takeover at a time"
body_has "$url" "pid=$v1 tag=v1" || fail "v1 does not answer while busy"

kill -TERM "$a"
wait_exit "$a"
wait_for 30 logged v1 "successor pid $a went away before ready: still serving" ||
    fail "v1 did not log that the holder went away"

# The lock: held by a peer as a starting successor holds it.
hold locker --lock
c=$HOLDER
start_httpd v3 --listen "http=tcp://127.0.0.1:$port" --tag v3
one_line v3 "handoff-httpd: another start or takeover is under way on $CONTROL (pid $c holds $CONTROL.lock); try again when it has finished"
kill -TERM "$c"
wait_exit "$c"
wait_for 30 logged v1 "successor pid $c went away before ready: still serving" ||
    fail "v1 did not log that the lock holder went away"
is_serving "$v1" || fail "v1 not serving after the busy spell"

upgrade "$v1" v4 --listen "http=tcp://127.0.0.1:$port" --tag v4
body_has "$url" "pid=$NEW_PID tag=v4 gen=2" || fail "v4 does not answer"
pass
