#!/bin/sh
# After ready, an incumbent that neither releases the successor nor dies
# still serves, so the successor must not: it logs why, stops accepting,
# drains and exits 1. Played by tests/peer.py as the incumbent: once it
# refuses ready (its ready timeout won the race), once it never answers.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

use_peer

port=$(free_port)
for mode in refuse-ready no-release; do
	CONTROL=$T/ctl-$mode.sock
	$PEER incumbent --control "$CONTROL" --listen "http=tcp://127.0.0.1:$port" \
	    --"$mode" --then stay --hold 30 >"$T/inc-$mode.out" 2>&1 &
	inc=$!
	PIDS="$PIDS $inc"
	wait_for 30 test -S "$CONTROL" || fail "$mode: the fake incumbent never bound"
	start=$(now_ms)
	start_httpd "succ-$mode" --listen "http=tcp://127.0.0.1:$port" --tag v2
	succ=$LAST_PID
	reap 60 "$succ" "successor ($mode)"
	took=$(( $(now_ms) - start ))
	[ "$STATUS" = 1 ] || fail "$mode: successor exit $STATUS, want 1"
	logged "succ-$mode" "failed after ready: .*; it keeps serving" ||
	    fail "$mode: no abort line: $(tail -n 5 "$T/succ-$mode.log")"
	logged "succ-$mode" "^handoff-httpd: takeover from pid $inc failed after ready" ||
	    fail "$mode: no one-line reason on exit: $(tail -n 3 "$T/succ-$mode.log")"
	logged "succ-$mode" "ready: serving" && ! logged "succ-$mode" "released by" ||
	    fail "$mode: the successor should have sent ready and never been released"
	log "$mode: successor exited 1 after $took ms: $(grep 'failed after ready' "$T/succ-$mode.log" | head -n 1)"
	kill "$inc" 2>/dev/null
done
logged succ-refuse-ready "failed after ready: it answered timeout: no ready" ||
    fail "refuse-ready: the reason does not carry the incumbent's error"
logged succ-no-release "failed after ready: no released within 5000 ms" ||
    fail "no-release: the reason does not name the timeout"
pass
