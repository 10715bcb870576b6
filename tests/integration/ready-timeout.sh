#!/bin/sh
# A successor that takes the offer and every fd but never sends ready is
# cut off at --ready-timeout with error "timeout"; the incumbent never
# stopped serving, and the next real successor takes over. A client that
# connects and says nothing is cut off at the I/O timeout (5 s).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

use_peer

port=$(free_port)
url="http://127.0.0.1:$port/"
start_httpd v1 --listen "http=tcp://127.0.0.1:$port" --tag v1 --ready-timeout 1
v1=$LAST_PID
wait_for 30 is_serving "$v1" || fail "v1 (pid $v1) never served"

# Silent from the start: runs in the background while the slow one goes on.
mute_start=$(now_ms)
$PEER successor --control "$CONTROL" --stop-after connect --then stay --hold 20 \
    >"$T/mute.out" 2>&1 &
mute=$!
PIDS="$PIDS $mute"

start=$(now_ms)
$PEER successor --control "$CONTROL" --stop-after batch --then stay --hold 20 \
    >"$T/slow.out" 2>&1 || fail "peer exit $?: $(tail -n 3 "$T/slow.out")"
took=$(( $(now_ms) - start ))
[ "$($PEER find "$T/slow.out" --type error --field msg.code)" = timeout ] ||
    fail "no error timeout: $(tail -n 3 "$T/slow.out")"
[ "$($PEER find "$T/slow.out" --type error --field msg.message)" = \
    "no ready within 1000 ms; still serving" ] || fail "wrong timeout message"
grep -q '"event":"closed"' "$T/slow.out" || fail "v1 did not close after the timeout"
! grep -q '"valid":false' "$T/slow.out" || fail "invalid message from v1"
[ "$(grep -c '"event":"verify","name":"[^"]*","ok":true' "$T/slow.out")" = 3 ] ||
    fail "peer did not receive and verify the 3 fds (control, http, state)"
[ "$took" -ge 900 ] && [ "$took" -lt 5000 ] ||
    fail "cut off after $took ms, want about 1000"
p=$($PEER find "$T/slow.out" --event sent --type hello --field msg.pid)
logged v1 "pid $p uid [0-9]*: timeout: no ready within 1000 ms; still serving" ||
    fail "v1 did not log the timeout"
logged v1 "successor pid $p went away before ready: still serving" ||
    fail "v1 did not log that pid $p went away"
is_serving "$v1" || fail "v1 not serving after the timeout"
body_has "$url" "pid=$v1 tag=v1" || fail "v1 does not answer GET after the timeout"

wait_exit "$mute"
[ "$STATUS" = 0 ] || fail "mute peer exit $STATUS: $(tail -n 3 "$T/mute.out")"
took=$(( $(now_ms) - mute_start ))
[ "$($PEER find "$T/mute.out" --type error --field msg.code)" = timeout ] ||
    fail "no error timeout for the silent client: $(tail -n 3 "$T/mute.out")"
[ "$($PEER find "$T/mute.out" --type error --field msg.message)" = \
    "nothing received within 5000 ms" ] || fail "wrong I/O timeout message"
[ "$took" -ge 4900 ] && [ "$took" -lt 15000 ] ||
    fail "silent client cut off after $took ms, want about 5000"

upgrade "$v1" v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
body_has "$url" "pid=$NEW_PID tag=v2 gen=2" || fail "v2 does not answer"
pass
