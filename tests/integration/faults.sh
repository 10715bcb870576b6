#!/bin/bash
# Faults at each protocol step, under load where it matters:
# - a successor (tests/peer.py) SIGKILLed after connecting, after hello,
#   in the middle of the batches, after all of them, and after released:
#   before released the incumbent never stopped serving; after it, the
#   incumbent rolls back; either way the next real successor takes over,
#   and the incumbent holds no more fds than before (wrk runs until then,
#   and the request in flight at the rollback is one the test holds);
# - an incumbent (tests/peer.py) that dies in the middle of an offer: the
#   real successor starts fresh with what it received plus fresh binds.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

use_peer

# shellcheck disable=SC2046
set -- $(free_ports 3)
port=$1 p2=$2 p3=$3
url="http://127.0.0.1:$port/"
serve_under_wrk v1 "$WRK_BOUND" "$url" --listen "http=tcp://127.0.0.1:$port" \
    --tag v1 --drain-timeout 60
v1=$LAST_PID
base_fds=$(fd_count "$v1")	# with wrk's 64 keep-alive connections

# kill_at STEP: a peer successor stops after STEP and hangs; SIGKILL it.
kill_at() {
	$PEER successor --control "$CONTROL" --stop-after "$1" --then hang \
	    --hold 120 >"$T/peer-$1.out" 2>&1 &
	_peer=$!
	PIDS="$PIDS $_peer"
	# The peer says "stopped" once it has done STEP and hangs.
	wait_for 60 grep -q '"event":"stopped"' "$T/peer-$1.out" ||
	    fail "peer never got to $1: $(tail -n 3 "$T/peer-$1.out")"
	kill -KILL "$_peer"
	wait "$_peer" 2>/dev/null
}

for step in connect hello offer batch; do
	kill_at "$step"
	# It must find v1 serving again (or still), and take the next one.
	wait_for 30 is_serving "$v1" || fail "after a kill at $step, v1 does not serve"
	body_has "$url" "pid=$v1 tag=v1" || fail "after a kill at $step, v1 does not answer"
	[ "$(fd_count "$v1")" -le $((base_fds + 2)) ] ||
	    fail "after a kill at $step v1 holds $(fd_count "$v1") fds (base $base_fds)"
	log "successor killed after $step: v1 serving"
done
logged v1 "went away before ready: still serving" ||
    fail "v1 never logged a successor lost before ready"

# Killed after released, while v1 drains a held request: v1 rolls back.
# (wrk's connections, told Connection: close, wait in the shared backlog
# meanwhile: the fake successor accepts none, v1 does again.)
hold held
wait_for 30 has_connections 65 || fail "the held request never reached v1"
kill_at released
wait_for 30 logged v1 "rolled back: successor pid [0-9]* vanished while we drained" ||
    fail "v1 did not roll back when the successor died after released"
wait_for 30 is_serving "$v1" || fail "v1 does not serve after the rollback"
release "$held" "$v1"
log "successor killed after released: v1 rolled back and serves"

# A real successor takes over after all that.
upgrade "$v1" v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$NEW_PID
body_has "$url" "pid=$v2 tag=v2" || fail "v2 does not serve"
stop_wrk faults
wrk_none_failed
log "under load: $(grep '^totals' "$T/wrk.out")"
"$CTL" stop --control "$CONTROL" >/dev/null || fail "stop v2"
reap_ok 60 "$v2" v2

# An incumbent that dies in the middle of its offer (after 1 of 3 batches).
CONTROL=$T/ctl-dead.sock
$PEER incumbent --control "$CONTROL" --batch-size 1 --die-after-batches 1 \
    --listen "a=tcp://127.0.0.1:$p2" --listen "b=tcp://127.0.0.1:$p3" \
    >"$T/dying.out" 2>&1 &
dying=$!
PIDS="$PIDS $dying"
wait_for 60 test -S "$CONTROL" || fail "the dying incumbent never bound"
start_httpd orphan --listen "a=tcp://127.0.0.1:$p2" --listen "b=tcp://127.0.0.1:$p3" --tag orphan
orphan=$LAST_PID
# No status query before the takeover began: the fake takes one client.
wait_for 30 logged orphan "taking over from pid $dying" ||
    fail "the successor did not reach the dying incumbent: $(cat "$T/orphan.log")"
wait_for 30 is_serving "$orphan" || fail "the successor of a dead incumbent does not serve: $(cat "$T/orphan.log")"
logged orphan "died during the offer (.*): continuing as a fresh start with the 1 listener received" ||
    fail "no fresh-start line: $(cat "$T/orphan.log")"
logged orphan "started from a partial offer: adopted 0; added 2 (a,b); retired 0" ||
    fail "the partial offer was not completed with fresh binds: $(cat "$T/orphan.log")"
body_has "http://127.0.0.1:$p2/" "pid=$orphan tag=orphan" || fail "a does not serve"
body_has "http://127.0.0.1:$p3/" "pid=$orphan tag=orphan" || fail "b does not serve"
pass
