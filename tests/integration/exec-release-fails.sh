#!/bin/sh
# handoff-exec without --notify keeps the service up when a release fails:
# (a) a release whose COMMAND exits before the settle time never becomes
# ready, says why and exits non-zero; the incumbent serves on; (b) a
# release that serves past the settle time and then crashes makes the
# lingering incumbent roll back and start its COMMAND again; (c) that
# rollback runs the file the incumbent started, though a package upgrade
# renamed another over it; (d) an incumbent held by the library while it
# learns whether a newer generation serves neither exits nor starts
# anything, though its child is gone, and rolls back once none does.
# Also: a signal ends the rollback window, the window ends by itself, and
# a graceful stop does not linger.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

EXEC="$top_builddir/tools/handoff-exec"
SERVER="$top_srcdir/tests/activated-server.py"
PY=/usr/bin/python3
[ -x "$PY" ] || skip "no $PY"

port=$(free_port)
url="http://127.0.0.1:$port/"
LISTEN="--listen http=tcp://127.0.0.1:$port"

# start_exec NAME EXEC-ARGS... -- COMMAND...: handoff-exec logging to
# $T/NAME.log; its pid in $LAST_PID.
start_exec() {
	_name=$1; shift
	_args=""
	while [ "$1" != -- ]; do _args="$_args $1"; shift; done
	shift
	# shellcheck disable=SC2086
	"$EXEC" --control "$CONTROL" $LISTEN $_args -- "$@" \
	    >"$T/$_name.log" 2>&1 &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
}

# child_of NAME: the child pid that handoff-exec NAME started last.
child_of() {
	sed -n 's/.*started child pid \([0-9]*\):.*/\1/p' "$T/$1.log" | tail -n 1
}

# field KEY: one KEY=VALUE of the answer on $url.
field() { get "$url" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
answers_pid() { [ "$(field pid)" = "$1" ]; }

# The incumbent's COMMAND is a script in $T, as a package would install
# it; (c) renames another over it.
printf '#!/bin/sh\nexec %s %s "$@"\n' "$PY" "$SERVER" >"$T/app"
chmod 755 "$T/app"

# A release that serves, and exits 1 once told to stop by SIGTERM (the
# server alone would exit 0): a crash that handoff-exec did not cause.
CRASHING="import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
except SystemExit:
    pass
sys.exit(1)"

# ---- v1: a fresh start through the script, ready after the settle time
start_exec v1 --tag v1 --settle 0.5 --rollback-window 120 \
    --drain-timeout 120 --max-draining 2 -- "$T/app" --tag v1
v1=$LAST_PID
wait_for 20 is_serving "$v1" || fail "v1 (pid $v1) never served on $CONTROL"
c1=$(child_of v1)
[ -n "$c1" ] || fail "v1 did not log its child"
PIDS="$PIDS $c1"
answers_pid "$c1" || fail "v1's child $c1 does not answer: $(get "$url")"
logged v1 "child pid $c1 has run 500 ms without exiting: ready" ||
    fail "v1 did not wait for the settle time"

# ---- (a) a release whose COMMAND exits 1 at once: v1 serves on
start_exec fail1 --tag broken -- false
bad=$LAST_PID
reap 20 "$bad" "a release that exits 1 at start"
[ "$STATUS" = 1 ] || fail "the failed release exited $STATUS, want 1"
logged fail1 "child pid [0-9]* exited with status 1 before it was ready (settle time 2000 ms): not ready; pid $v1 serves on\$" ||
    fail "the failed release gave no reason: $(cat "$T/fail1.log")"
wait_for 20 logged v1 "went away before ready: still serving" ||
    fail "v1 did not see the failed release go"
alive "$c1" || fail "v1's child $c1 was stopped for a failed release"
answers_pid "$c1" || fail "v1's child no longer answers: $(get "$url")"
is_serving "$v1" || fail "status does not name v1: $(serving_pid)"

# ---- (a) one that exits 3 within the settle time, not at once: it runs
# until the test has seen it waited for, then exits when told.
go_fifo fail3
start_exec fail3 --settle 30 -- /bin/bash -c \
    'exec 200<>"$0"; read -r -t 120 -u 200 _; exit 3' "$T/fail3.go"
bad=$LAST_PID
wait_for 30 logged fail3 "is ready if it runs 30000 ms" ||
    fail "fail3 did not start its program: $(cat "$T/fail3.log")"
go_on fail3
reap 40 "$bad" "a release that exits 3 within the settle time"
[ "$STATUS" = 3 ] || fail "the failed release exited $STATUS, want 3"
logged fail3 "exited with status 3 before it was ready (settle time 30000 ms)" ||
    fail "no reason given: $(cat "$T/fail3.log")"
answers_pid "$c1" || fail "v1's child no longer answers: $(get "$url")"
is_serving "$v1" || fail "status does not name v1: $(serving_pid)"

# ---- (c) a package upgrade renames a broken COMMAND over v1's script
printf '#!/bin/sh\necho "the replaced script ran" >&2\nexit 1\n' >"$T/app.new"
chmod 755 "$T/app.new"
mv -f "$T/app.new" "$T/app"

# ---- (b) v2 serves past the settle time, v1 stops its child and lingers
start_exec v2 --tag v2 --settle 0.5 -- "$PY" -c "$CRASHING" "$SERVER" --tag v2
v2=$LAST_PID
wait_for 20 is_serving "$v2" || fail "v2 (pid $v2) never served on $CONTROL"
c2=$(child_of v2)
[ -n "$c2" ] || fail "v2 did not log its child"
PIDS="$PIDS $c2"
wait_for 20 answers_pid "$c2" || fail "v2's child $c2 does not answer"
wait_for 20 gone "$c1" || fail "v1's child $c1 outlived the release"
wait_for 20 logged v1 "child pid $c1 exited with status 0\$" ||
    fail "v1 did not log its child's exit"
alive "$v1" || fail "v1 exited with its child: no rollback window"
logged v1 "staying up to 120000 ms, holding the listeners" ||
    fail "v1 did not say it lingers"

# v2's child crashes: v2 exits 1, v1 rolls back with the original script
kill -TERM "$c2"
reap 20 "$v2" "v2 after its child crashed"
[ "$STATUS" = 1 ] || fail "v2 exited $STATUS after its child exited 1, want 1"
logged v2 "child pid $c2 exited with status 1\$" ||
    fail "v2 did not log its child's exit"
# The library may first check for up to its I/O timeout (5 s) whether a
# newer generation serves: a generous bound.
wait_for 30 logged v1 "rolled back: started child pid [0-9]*: $T/app\$" ||
    fail "v1 did not roll back: $(tail -n 5 "$T/v1.log")"
c1b=$(child_of v1)
PIDS="$PIDS $c1b"
[ "$c1b" != "$c1" ] || fail "v1 did not start a new child"
wait_for 20 answers_pid "$c1b" ||
    fail "v1's new child $c1b does not answer: $(get "$url")"
[ "$(field tag)" = v1 ] || fail "the rollback serves tag $(field tag), want v1"
wait_for 20 is_serving "$v1" || fail "status does not name v1 after the rollback"
! logged v1 "the replaced script ran" ||
    fail "the rollback ran the file renamed over v1's COMMAND"
alive "$v1" || fail "v1 exited after the rollback"

# ---- a signal ends the rollback window: v1 exits once v3 took over
start_exec v3 --tag v3 --settle 0.5 --rollback-window 0.5 -- \
    "$PY" "$SERVER" --tag v3
v3=$LAST_PID
wait_for 20 is_serving "$v3" || fail "v3 (pid $v3) never served"
c3=$(child_of v3)
PIDS="$PIDS $c3"
wait_for 20 gone "$c1b" || fail "v1's child $c1b outlived the release"
alive "$v1" || fail "v1 exited with its child: no rollback window"
kill -TERM "$v1"
reap_ok 20 "$v1" "v1 after SIGTERM in its rollback window"
logged v1 "signal 15: no rollback any more" ||
    fail "v1 did not say why it left early"
answers_pid "$c3" || fail "v3's child $c3 does not answer"

# ---- the window ends by itself: v3 (0.5 s) exits after v4 took over
start_exec v4 --tag v4 --settle 0.5 -- tail -f /dev/null
v4=$LAST_PID
wait_for 20 is_serving "$v4" || fail "v4 (pid $v4) never served"
c4=$(child_of v4)
PIDS="$PIDS $c4"
reap_ok 20 "$v3" "v3 after its rollback window"
logged v3 "rollback window of 500 ms over: no rollback any more" ||
    fail "v3 did not say its window ended"
gone "$c3" || fail "v3's child $c3 outlived v3"

# ---- a graceful stop does not linger
kill -TERM "$v4"
reap_ok 20 "$v4" "v4 after SIGTERM"
! logged v4 "staying up to" || fail "v4 lingered after a stop"
gone "$c4" || fail "v4's child $c4 outlived v4"
refuses "$url" || fail "$url still accepts after a graceful stop"

# ---- (d) a hold: w2 dies while w3 takes over from it, so w1 holds until
# it knows whether w3 serves. w1's child ignores the stop signal (WINCH),
# so the test decides when it is gone: during the hold, and w1 must stay.
start_exec w1 --tag w1 --settle 0.5 --rollback-window 0 --stop-signal WINCH \
    --drain-timeout 120 -- "$PY" "$SERVER" --tag w1
w1=$LAST_PID
wait_for 20 is_serving "$w1" || fail "w1 (pid $w1) never served"
d1=$(child_of w1)
PIDS="$PIDS $d1"
start_exec w2 --tag w2 --settle 0.5 -- tail -f /dev/null
w2=$LAST_PID
wait_for 20 is_serving "$w2" || fail "w2 (pid $w2) never served"
wait_for 20 logged w1 "stopping child pid $d1 with signal" ||
    fail "w1 did not stop its child"
start_exec w3 --tag w3 --settle 100 -- tail -f /dev/null
w3=$LAST_PID
wait_for 20 logged w1 "successor pid $w2 is being taken over by pid $w3" ||
    fail "w1 did not hear of the takeover of w2 by w3"
kill -KILL "$w2"
reap 20 "$w2" "w2 after SIGKILL"
wait_for 20 logged w1 "successor pid $w2 vanished while we drained, without saying it was superseded: holding" ||
    fail "w1 did not hold: $(tail -n 5 "$T/w1.log")"
kill -KILL "$d1"
wait_for 20 logged w1 "child pid $d1 was killed by signal 9" ||
    fail "w1 did not see its child go"
# No child, no rollback window, but held: w1 must wait for the verdict,
# which comes once w3's start has ended without serving.
kill -KILL "$w3"
reap 20 "$w3" "w3 after SIGKILL"
wait_for 30 logged w1 "rolled back: started child pid" ||
    fail "w1 did not roll back after the hold: $(tail -n 5 "$T/w1.log")"
d1b=$(child_of w1)
PIDS="$PIDS $d1b"
wait_for 20 answers_pid "$d1b" || fail "w1's new child $d1b does not answer"
wait_for 20 is_serving "$w1" || fail "status does not name w1 after the hold"
# Its child exits 0 on SIGTERM, on its own: w1 exits with that status.
kill -TERM "$d1b"
reap_ok 20 "$w1" "w1 after its child exited"

# ---- usage errors
"$EXEC" --control "$CONTROL" $LISTEN --max-draining x -- true \
    >"$T/usage.log" 2>&1 && fail "--max-draining x was accepted"
logged usage 'max-draining: "x" is not a whole number' ||
    fail "no reason for --max-draining x: $(cat "$T/usage.log")"
"$EXEC" --control "$CONTROL" $LISTEN --notify --settle 1 -- true \
    >"$T/usage.log" 2>&1 && fail "--notify --settle was accepted"
logged usage "settle is for COMMANDs without --notify" ||
    fail "no reason for --notify --settle: $(cat "$T/usage.log")"
pass
