#!/bin/bash
# Requests in flight on the incumbent when a successor takes over all
# complete with 200 from the incumbent, which stays alive until they have
# and then exits 0; new requests meanwhile go to the successor. The test
# holds each request (half sent) and completes it only once v2 serves and
# v1's drain has been seen: no step races the clock.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

N=4
port=$(free_port)
url="http://127.0.0.1:$port"
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1 --drain-timeout 60
v1=$LAST_PID

held=""
i=1
while [ "$i" -le "$N" ]; do
	hold h
	held="$held $h"
	i=$((i + 1))
done
wait_for 30 has_connections "$N" || fail "the $N held requests never reached v1"

start=$(now_ms)
serve v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$LAST_PID
log "v2 serving $(( $(now_ms) - start )) ms after it started"
gone "$v1" && fail "v1 exited with $N requests in flight"
body_has "$url/" "pid=$v2 tag=v2" || fail "a new request was not served by v2"
wait_for 30 logged v1 "gen 1: draining $N connections, deadline 60000 ms" ||
    fail "v1 did not log draining $N connections"
# The successor's status shows the generation still draining.
draining_shown() {
	"$CTL" status --control "$CONTROL" |
	    grep -q "^draining: pid $v1  generation 1  tag v1  connections $N  [0-9]* ms to the deadline\$"
}
wait_for 30 draining_shown || fail "status does not show v1 draining:" \
    "$("$CTL" status --control "$CONTROL")"

i=1
for fd in $held; do
	alive "$v1" || fail "v1 exited before held request $i was answered"
	release "$fd" "$v1"
	head -n 1 "$T/held.$fd" | grep -q '^HTTP/1.1 200 ' ||
	    fail "held request $i: $(head -n 1 "$T/held.$fd"), want 200"
	grep -q "^pid=$v1 tag=v1 gen=1 served=[0-9]*\$" "$T/held.$fd" ||
	    fail "held request $i not answered by v1: $(cat "$T/held.$fd")"
	i=$((i + 1))
done
reap_ok 30 "$v1" v1
logged v1 "gen 1: exiting, 0 connections left" ||
    fail "v1 did not exit with 0 connections left: $(tail -n 1 "$T/v1.log")"
logged v1 "hammered" && fail "v1 was hammered though its requests finished"
is_serving "$v2" || fail "v2 no longer serves after v1 exited"
pass
