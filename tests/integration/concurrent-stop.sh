#!/bin/bash
# Two handoffctl stop at once (issue 10, item 4). v1 drains a request the
# test holds, so its stop lasts until the test lets go. While it lasts, a
# second stop gets error "busy" and exit 4 (not a reset, exit 1, nor a
# wait for an answer that never comes), status answers "stopping", and a
# successor is refused with busy in one line. Then the first stop ends:
# exit 0, and v1 exits 0.
# handoffctl stop waits for the process it stopped: v3 drains a held
# request after v4 took over, and v3 created the control socket (so
# SO_PEERCRED names it); stopping v4 ends when v4 has exited, not v3.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

port=$(free_port)
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1 --drain-timeout 60
v1=$LAST_PID

hold req
wait_for 10 has_connections 1 || fail "the held request never reached v1"
"$CTL" stop --control "$CONTROL" --timeout 60 >"$T/stop1.out" 2>&1 &
stop1=$!
PIDS="$PIDS $stop1"
wait_for 10 logged v1 "draining 1 connection" ||
    fail "v1 did not begin the first stop: $(cat "$T/stop1.out")"

"$CTL" stop --control "$CONTROL" --timeout 60 >"$T/stop2.out" 2>&1
rc=$?
[ "$rc" = 4 ] || fail "second stop: exit $rc, want 4 (refused): $(cat "$T/stop2.out")"
grep -q "refused stop: busy: a takeover or stop is under way" "$T/stop2.out" ||
    fail "second stop does not say busy: $(cat "$T/stop2.out")"
logged v1 "control: pid [0-9]* uid [0-9]*: busy: a takeover or stop is under way" ||
    fail "v1 did not log the busy refusal"

[ "$(status_field state)" = stopping ] ||
    fail "status while stopping: $(status_json)"
start_httpd v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$LAST_PID
reap 15 "$v2" "a successor of a stopping server"
[ "$STATUS" = 1 ] || fail "v2 exit $STATUS, want 1"
[ "$(cat "$T/v2.log")" = "handoff-httpd: incumbent pid $v1 refused the takeover: busy: this server is stopping or draining (pid $v1)" ] ||
    fail "v2 said: $(cat "$T/v2.log")"
alive "$stop1" || fail "the first stop ended while v1 still drained"

release "$req" "$v1"
reap 15 "$stop1" "the first handoffctl stop"
[ "$STATUS" = 0 ] || fail "first stop: exit $STATUS: $(cat "$T/stop1.out")"
grep -q "^pid $v1 exited\$" "$T/stop1.out" || fail "first stop printed: $(cat "$T/stop1.out")"
reap_ok 15 "$v1" v1

serve v3 --listen "http=tcp://127.0.0.1:$port" --tag v3 --drain-timeout 60
v3=$LAST_PID
hold req3
wait_for 10 has_connections 1 || fail "the held request never reached v3"
serve v4 --listen "http=tcp://127.0.0.1:$port" --tag v4
v4=$LAST_PID
wait_for 10 logged v3 "released to pid $v4" || fail "v3 never released v4"
"$CTL" stop --control "$CONTROL" --timeout 20 >"$T/stop4.out" 2>&1 ||
    fail "stop v4: exit $?: $(cat "$T/stop4.out")"
grep -q "^pid $v4 exited\$" "$T/stop4.out" || fail "stop printed: $(cat "$T/stop4.out")"
gone "$v4" || fail "v4 still running after stop returned"
alive "$v3" || fail "v3 exited before its held request was answered"
release "$req3" "$v3"
reap_ok 15 "$v3" v3
pass
