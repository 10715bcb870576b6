#!/bin/sh
# Requests in flight on the incumbent when a successor takes over all
# complete with 200 from the incumbent, which stays alive until they have
# and then exits 0; new requests meanwhile go to the successor.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

N=4
port=$(free_port)
url="http://127.0.0.1:$port"
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1 --drain-timeout 10
v1=$LAST_PID

slows=""
i=1
while [ "$i" -le "$N" ]; do
	curl -sS --max-time 15 -o "$T/slow$i.body" -w '%{http_code}\n' \
	    "$url/slow?ms=5000" >"$T/slow$i.code" 2>&1 &
	slows="$slows $!"
	i=$((i + 1))
done
PIDS="$PIDS $slows"
wait_for 5 has_connections "$N" || fail "the $N slow requests never reached v1"

start=$(now_ms)
serve v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$LAST_PID
log "v2 serving $(( $(now_ms) - start )) ms after it started"
# Still within the 5 s of the slow requests (room for a loaded machine): v1 must be alive, draining.
for p in $slows; do
	gone "$p" && fail "a slow request finished before v2 served;" \
	    "the takeover was too slow to test draining"
done
gone "$v1" && fail "v1 exited with $N requests in flight"
body_has "$url/" "pid=$v2 tag=v2" || fail "a new request was not served by v2"
logged v1 "gen 1: draining $N connections, deadline 10000 ms" ||
    fail "v1 did not log draining $N connections"
# The successor's status shows the generation still draining.
draining_shown() {
	"$CTL" status --control "$CONTROL" |
	    grep -q "^draining: pid $v1  generation 1  tag v1  connections $N  [0-9]* ms to the deadline\$"
}
wait_for 10 draining_shown || fail "status does not show v1 draining:" \
    "$("$CTL" status --control "$CONTROL")"

i=1
for p in $slows; do
	reap 15 "$p" "slow request $i"
	[ "$STATUS" = 0 ] || fail "slow request $i: curl exited $STATUS:" \
	    "$(cat "$T/slow$i.code")"
	[ "$(cat "$T/slow$i.code")" = 200 ] ||
	    fail "slow request $i: status $(cat "$T/slow$i.code"), want 200"
	grep -q "^pid=$v1 tag=v1 gen=1\$" "$T/slow$i.body" ||
	    fail "slow request $i not answered by v1: $(cat "$T/slow$i.body")"
	i=$((i + 1))
done
reap_ok 5 "$v1" v1
logged v1 "gen 1: exiting, 0 connections left" ||
    fail "v1 did not exit with 0 connections left: $(tail -n 1 "$T/v1.log")"
logged v1 "hammered" && fail "v1 was hammered though its requests finished"
is_serving "$v2" || fail "v2 no longer serves after v1 exited"
pass
