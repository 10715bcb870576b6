#!/bin/bash
# A successor that vanishes costs nothing. tests/peer.py plays it:
# - gone after the offer, before ready: the incumbent never stopped serving;
# - gone after ready and released, while the incumbent drains an in-flight
#   request: the incumbent rolls back (logs "rolled back", accepts again,
#   status says serving), and the in-flight request still completes;
# - the same, with a request queued while the incumbent was paused: it is
#   served after the rollback, not lost.
# Afterwards a real handoff-httpd still takes over while the incumbent
# drains. Every in-flight request is one the test holds (half sent, the
# rest when the test decides), so no step races the clock.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

use_peer

port=$(free_port)
url="http://127.0.0.1:$port"
start_httpd v1 --listen "http=tcp://127.0.0.1:$port" --tag v1 --drain-timeout 60
v1=$LAST_PID
wait_for 30 is_serving "$v1" || fail "v1 (pid $v1) never served"

state() { [ "$(status_field state)" = "$1" ]; }
peer_pid() { $PEER find "$T/$1.out" --event sent --type hello --field msg.pid; }

# 1. Gone after the offer, before ready.
$PEER successor --control "$CONTROL" --stop-after offer --then close >"$T/early.out" 2>&1 ||
    fail "early peer exit $?: $(tail -n 3 "$T/early.out")"
[ "$($PEER find "$T/early.out" --type offer --field msg.pid)" = "$v1" ] || fail "no offer from v1"
p=$(peer_pid early)
wait_for 30 logged v1 "successor pid $p went away before ready: still serving" ||
    fail "v1 did not log that pid $p went away before ready"
wait_for 30 state serving || fail "v1 not serving after the early exit"
body_has "$url/" "pid=$v1 tag=v1" || fail "v1 does not answer after the early exit"

# 2. Gone after released, while v1 drains a held request.
hold held1
wait_for 30 has_connections 1 || fail "the held request never reached v1"
$PEER successor --control "$CONTROL" --then close >"$T/rb.out" 2>&1 ||
    fail "peer exit $?: $(tail -n 3 "$T/rb.out")"
[ "$($PEER find "$T/rb.out" --type released --field msg.connections)" = 1 ] ||
    fail "released does not count the held request"
p=$(peer_pid rb)
wait_for 30 logged v1 "rolled back: successor pid $p vanished while we drained; accepting again" ||
    fail "v1 did not log the rollback from pid $p"
wait_for 30 state serving || fail "status does not say serving after the rollback"
is_serving "$v1" || fail "v1 does not answer status after the rollback"
body_has "$url/" "pid=$v1 tag=v1" || fail "v1 does not answer GET after the rollback"
release "$held1" "$v1"

# 3. A request arrives while v1 is paused: served after the rollback.
# The held request keeps v1 draining however slowly the steps below run.
hold held2
wait_for 30 has_connections 1 || fail "the second held request never reached v1"
$PEER successor --control "$CONTROL" --then hang >"$T/hang.out" 2>&1 &
peer=$!
PIDS="$PIDS $peer"
wait_for 30 grep -q '"event":"stopped"' "$T/hang.out" || fail "peer never got released"
established() { [ "$(ss -Htn state established "( dport = :$port )" | wc -l)" -ge 2 ]; }
curl -fsS --max-time 30 "$url/" >"$T/queued.body" 2>&1 &
queued=$!
PIDS="$PIDS $queued"
wait_for 30 established || fail "the queued request never connected"
kill -TERM "$peer"
wait_exit "$peer"
wait_for 30 logged v1 "rolled back: successor pid $peer vanished" || fail "no second rollback"
wait_exit "$queued"
[ "$STATUS" = 0 ] || fail "the request queued during the pause failed: $(cat "$T/queued.body")"
grep -q "pid=$v1" "$T/queued.body" || fail "queued request not answered by v1"

# 4. A real successor still takes over; v1 drains the held request.
serve v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$LAST_PID
body_has "$url/" "pid=$v2 tag=v2 gen=2" || fail "v2 does not answer"
alive "$v1" || fail "v1 exited with a held request in flight"
release "$held2" "$v1"
reap_ok 60 "$v1" "v1, drained"
[ "$(grep -c 'rolled back' "$T/v1.log")" = 2 ] || fail "v1 logged other than 2 rollbacks"
pass
