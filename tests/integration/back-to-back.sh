#!/bin/bash
# Sequences inside one drain window; exactly one version serves after each.
# Every in-flight request is one the test holds: half a request sent, the
# rest when the test decides.
# 1. v1 drains a held request; v2 and then v3 take over back to back. v2
#    hands over to v3 and exits, saying so first: v1 does not roll back.
#    20 fresh requests are all answered by v3, status names v3, v1
#    answers its held request when the test completes it, and exits 0.
# 2. A fourth upgrade works (nothing left behind on the port).
# 3. v4 drains a held request; v5 takes over and is stopped with
#    handoffctl stop: v4 does not roll back, both exit 0.
# 4. v6 drains a held request; v7 serves; a successor of v7 (tests/peer.py)
#    holds the lock mid-takeover when v7 is killed: v6 holds (neither
#    accepts nor exits, even drained), waits for the lock, finds nobody
#    answering on the control socket and rolls back.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

use_peer

port=$(free_port)
url="http://127.0.0.1:$port"
listen="http=tcp://127.0.0.1:$port"

# serve_holding TAG: a fresh start of TAG holding one request of ours in
# flight; its pid in $LAST_PID, the held connection in $HELD.
serve_holding() {
	serve "$1" --listen "$listen" --tag "$1" --drain-timeout 60
	hold HELD
	wait_for 30 has_connections 1 ||
	    fail "the held request never reached $1"
}

# 1. Two upgrades inside one drain window.
serve_holding v1
v1=$LAST_PID held1=$HELD
ctl_upgrade v2 --listen "$listen" --drain-timeout 60
v2=$NEW_PID
ctl_upgrade v3 --listen "$listen" --drain-timeout 60
v3=$NEW_PID
wait_for 60 gone "$v2" || fail "v2 (pid $v2) did not exit after handing over"
wait_for 30 logged v1 "successor pid $v2 handed over to pid $v3: no rollback" ||
    fail "v1 did not log that v2 handed over"
only_newest "$v3"
logged v1 "rolled back" && fail "v1 rolled back"
alive "$v1" || fail "v1 exited before its held request was answered"
release "$held1" "$v1"
reap_ok 20 "$v1" "v1, drained"
only_newest "$v3"

# 2. The next upgrade works.
ctl_upgrade v4 --listen "$listen" --drain-timeout 60
v4=$NEW_PID
only_newest "$v4"

# 3. A stop of the successor while its predecessor drains.
hold held4
wait_for 30 has_connections 1 || fail "the held request never reached v4"
ctl_upgrade v5 --listen "$listen" --drain-timeout 60
v5=$NEW_PID
"$CTL" stop --control "$CONTROL" --timeout 30 >"$T/stop.out" 2>&1 ||
    fail "stop of v5: $(cat "$T/stop.out")"
wait_for 60 gone "$v5" || fail "v5 did not exit after the stop"
wait_for 30 logged v4 "successor pid $v5 is stopping: no rollback" ||
    fail "v4 did not log that v5 stops"
alive "$v4" || fail "v4 exited before its held request was answered"
release "$held4" "$v4"
wait_for 60 gone "$v4" || fail "v4 did not exit after its drain"
logged v4 "rolled back" && fail "v4 rolled back after a stop"
refuses "$url/" || fail "something still answers after the stop"

# 4. The successor vanishes while a takeover of it is under way.
serve_holding v6
v6=$LAST_PID held6=$HELD
ctl_upgrade v7 --listen "$listen" --drain-timeout 60
v7=$NEW_PID
$PEER successor --control "$CONTROL" --lock --stop-after batch --then hang --hold 120 \
    >"$T/peer.out" 2>&1 &
peer=$!
PIDS="$PIDS $peer"
wait_for 30 grep -q '"event":"stopped"' "$T/peer.out" ||
    fail "the peer never received the offer: $(tail -n 3 "$T/peer.out")"
wait_for 30 logged v6 "successor pid $v7 is being taken over by pid $peer" ||
    fail "v6 was not told of the takeover of v7"
kill -KILL "$v7"
wait_for 30 logged v6 "holding until we know" || fail "v6 did not hold"
wait_for 30 logged v6 "pid $peer holds" || fail "v6 did not wait for the lock"
# Drained during the hold: v6 stays.
release "$held6" "$v6"
alive "$v6" || fail "v6 exited during the hold"
kill -TERM "$peer"
wait_exit "$peer"
wait_for 30 logged v6 "rolled back: successor pid $v7 vanished" ||
    fail "v6 did not roll back once nobody answered"
only_newest "$v6"
"$CTL" stop --control "$CONTROL" --timeout 30 >"$T/stop6.out" 2>&1 ||
    fail "stop of v6: $(cat "$T/stop6.out")"
reap_ok 30 "$v6" "v6, stopped"

# 5. A newer generation served and stopped while the holder looked away.
serve_holding v8
v8=$LAST_PID held8=$HELD
ctl_upgrade v9 --listen "$listen" --drain-timeout 60
v9=$NEW_PID
kill -STOP "$v8"
# v10's program says READY=1 once told on $T/v10.go (bounded: 60 s).
go_fifo v10
"$top_builddir/tools/handoff-exec" --control "$CONTROL" --listen "$listen" \
    --tag v10 --notify --ready-timeout 90 -- /bin/bash -c \
    'exec 200<>"$0"; read -r -t 60 -u 200 _; exec 200<&-; exec "$@"' \
    "$T/v10.go" "$HTTPD" --control "$T/child.sock" --tag v10 --listen "$listen" \
    >"$T/v10.log" 2>&1 &
v10=$!
PIDS="$PIDS $v10"
wait_for 30 logged v10 "took over from pid $v9" ||
    fail "v10 never took over from v9"
kill -KILL "$v9"
go_on v10
wait_for 30 logged v10 "predecessor pid $v9 died before ready: serving" ||
    fail "v10 did not serve after v9 died"
"$CTL" stop --control "$CONTROL" --timeout 30 >"$T/stop10.out" 2>&1 ||
    fail "stop of v10: $(cat "$T/stop10.out")"
reap_ok 30 "$v10" "v10, stopped"
kill -CONT "$v8"
wait_for 30 logged v8 "holding until we know" || fail "v8 did not hold"
wait_for 30 logged v8 "served after successor pid $v9, as .* says: no rollback" ||
    fail "v8 did not learn that a newer generation served"
logged v8 "rolled back" && fail "v8 rolled back after the newest was stopped"
release "$held8" "$v8"
reap_ok 30 "$v8" "v8, drained"
refuses "$url/" || fail "something answers after the newest was stopped"
pass
