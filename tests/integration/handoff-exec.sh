#!/bin/bash
# handoff-exec runs a socket-activated program (tests/activated-server.py)
# and upgrades it: the successor's child gets the same sockets as
# LISTEN_FDS/LISTEN_FDNAMES, requests never fail under a request loop,
# the old handoff-exec exits 0 once its child is gone; with --notify the
# upgrade waits for READY=1 (sent when the test says); a COMMAND that
# cannot run, or never gets ready, leaves the incumbent serving; a
# rollback starts the child again while the old child finishes a request
# the test holds.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

EXEC="$top_builddir/tools/handoff-exec"
SERVER="$top_srcdir/tests/activated-server.py"
PY=/usr/bin/python3
[ -x "$PY" ] || skip "no $PY"

set -- $(free_ports 2)
port=$1 aport=$2
url="http://127.0.0.1:$port/"
aurl="http://127.0.0.1:$aport/"
LISTEN="--listen http=tcp://127.0.0.1:$port --listen admin=tcp://127.0.0.1:$aport"

# start_exec NAME EXEC-ARGS... -- SERVER-ARGS...: handoff-exec running the
# server, logging to $T/NAME.log; its pid in $LAST_PID. No rollback window:
# each old generation leaves with its child (exec-release-fails tests the
# window).
start_exec() {
	_name=$1; shift
	_args=""
	while [ "$1" != -- ]; do _args="$_args $1"; shift; done
	shift
	# shellcheck disable=SC2086
	"$EXEC" --control "$CONTROL" $LISTEN --rollback-window 0 $_args -- \
	    "$PY" "$SERVER" "$@" \
	    >"$T/$_name.log" 2>&1 &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
}

# child_of PID: the child pid PID logged it started last.
child_of() {
	sed -n 's/.*started child pid \([0-9]*\):.*/\1/p' "$T/$1.log" | tail -n 1
}

# field URL KEY: one KEY=VALUE of the server's answer.
field() { get "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# sock_inode PID FD: the socket inode behind that fd.
sock_inode() { readlink "/proc/$1/fd/$2" | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p'; }

# has_sockets PID N: PID holds at least N sockets (2 listeners + accepted).
has_sockets() {
	[ "$(ls -l "/proc/$1/fd" 2>/dev/null | grep -c 'socket:')" -ge "$2" ]
}

# answers_pid URL PID: the server that answers URL is PID.
answers_pid() { [ "$(field "$1" pid)" = "$2" ]; }

# client_loop NAME URL: GETs URL until $T/stop-NAME exists (at most 2000),
# "request N failed" and exit 1 on the first failure.
client_loop() {
	(
		i=0
		while [ "$i" -lt 2000 ] && [ ! -e "$T/stop-$1" ]; do
			get "$2" || { echo "request $i failed"; exit 1; }
			i=$((i + 1))
		done
		echo "$i requests"
	) >"$T/$1.out" 2>&1 &
	CLIENT=$!
	PIDS="$PIDS $CLIENT"
}

# client_done NAME WANT: stops the loop, fails on a failed request or if
# no response contained WANT.
client_done() {
	touch "$T/stop-$1"
	reap 60 "$CLIENT" "request loop $1"
	[ "$STATUS" = 0 ] || fail "a request failed: $(tail -n 3 "$T/$1.out")"
	grep -q -- "$2" "$T/$1.out" || fail "no response with $2 in loop $1:" \
	    "$(tail -n 3 "$T/$1.out")"
	log "loop $1: $(tail -n 1 "$T/$1.out")"
}

# ---- v1: a fresh start
start_exec v1 --tag v1 --drain-timeout 20 -- --tag v1
v1=$LAST_PID
wait_for 60 is_serving "$v1" || fail "v1 (pid $v1) never served on $CONTROL"
c1=$(child_of v1)
[ -n "$c1" ] || fail "v1 did not log its child"
PIDS="$PIDS $c1"
[ "$(ppid_of "$c1")" = "$v1" ] || fail "child $c1 is not v1's"
want="pid=$c1 tag=v1 listener=http listen_fds=2 names=http:admin inherited=3,4 notify=no"
[ "$(get "$url")" = "$want" ] || fail "v1 answers \"$(get "$url")\", want \"$want\""
[ "$(field "$aurl" listener)" = admin ] || fail "fd 4 is not the admin listener"
inode=$(sock_inode "$c1" 3)
[ -n "$inode" ] || fail "child $c1 has no socket on fd 3"
logged v1 "gen 1: started child pid $c1: $PY\$" || fail "v1 did not log its child"

# ---- a COMMAND that cannot run: the successor says why, v1 serves on
"$EXEC" --control "$CONTROL" $LISTEN -- "$T/no-such-program" \
    >"$T/noexec.log" 2>&1 &
bad=$!
PIDS="$PIDS $bad"
reap 30 "$bad" "handoff-exec of a missing program"
[ "$STATUS" = 127 ] || fail "a missing COMMAND exited $STATUS, want 127"
logged noexec "cannot run $T/no-such-program: No such file or directory\$" ||
    fail "no reason given: $(cat "$T/noexec.log")"
is_serving "$v1" || fail "v1 stopped serving after a failed successor"
answers_pid "$url" "$c1" || fail "v1's child no longer answers"
wait_for 30 logged v1 "went away before ready: still serving" ||
    fail "v1 did not log the failed successor"

# ---- v2 without --notify, under a request loop
client_loop up2 "$url"
start_exec v2 --tag v2 --drain-timeout 20 -- --tag v2
v2=$LAST_PID
wait_for 60 is_serving "$v2" || fail "v2 (pid $v2) never served on $CONTROL"
c2=$(child_of v2)
PIDS="$PIDS $c2"
reap_ok 60 "$v1" "v1 after the handoff"
gone "$c1" || fail "v1's child $c1 outlived v1"
wait_for 30 answers_pid "$url" "$c2" || fail "v2's child does not answer"
client_done up2 "tag=v2"
want="pid=$c2 tag=v2 listener=http listen_fds=2 names=http:admin inherited=3,4 notify=no"
[ "$(get "$url")" = "$want" ] || fail "v2 answers \"$(get "$url")\", want \"$want\""
[ "$(sock_inode "$c2" 3)" = "$inode" ] ||
    fail "fd 3 of v2's child is socket $(sock_inode "$c2" 3), want $inode"
logged v2 "gen 2: took over from pid $v1: adopted 2 (http,admin)" ||
    fail "v2 did not log the takeover"
logged v1 "stopping child pid $c1 with signal 15" ||
    fail "v1 did not log stopping its child"
logged v1 "child pid $c1 exited with status 0\$" ||
    fail "v1 did not log its child's exit"
logged v1 "gen 1: exiting" || fail "v1 did not log exiting"

# ---- v3 with --notify, under wrk: v2 serves until the child says READY=1,
# which it does once the test has seen v2 serve on while it waited.
client_loop up3 "$url"
WRK_PID=""
command -v wrk >/dev/null && start_load "$url" -t 1 -c 8
go_fifo v3-ready
start_exec v3 --tag v3 --notify --drain-timeout 20 -- --tag v3 \
    --ready-file "$T/v3-ready.go"
v3=$LAST_PID
wait_for 30 logged v3 "waiting up to 30000 ms for READY=1" ||
    fail "v3 did not wait for READY=1: $(cat "$T/v3.log")"
c3=$(child_of v3)
PIDS="$PIDS $c3"
is_serving "$v2" && alive "$v2" || fail "v2 let go before READY=1"
answers_pid "$url" "$c2" || fail "v2's child does not answer before READY=1"
go_on v3-ready
wait_for 60 is_serving "$v3" || fail "v3 (pid $v3) never served on $CONTROL"
reap_ok 60 "$v2" "v2 after the handoff"
gone "$c2" || fail "v2's child $c2 outlived v2"
client_done up3 "tag=v3"
if [ -n "$WRK_PID" ]; then
	stop_wrk upgrade-to-v3
	log "wrk: $(grep '^totals ' "$T/wrk.out")"
	wrk_none_failed
else
	log "no wrk: the request loop alone was the load"
fi
want="pid=$c3 tag=v3 listener=http listen_fds=2 names=http:admin inherited=3,4 notify=yes"
[ "$(get "$url")" = "$want" ] || fail "v3 answers \"$(get "$url")\", want \"$want\""
[ "$(sock_inode "$c3" 3)" = "$inode" ] || fail "v3's fd 3 is another socket"
logged v3 "child pid $c3 is ready (READY=1)" || fail "v3 did not log READY=1"

# ---- --notify and no READY=1: the successor gives up, v3 serves on
start_exec noready --notify --ready-timeout 1 -- --tag never --no-ready
nr=$LAST_PID
reap 60 "$nr" "handoff-exec whose child never gets ready"
[ "$STATUS" = 1 ] || fail "no READY=1: exited $STATUS, want 1"
logged noready "sent no READY=1 within 1000 ms; giving up" ||
    fail "no reason given: $(cat "$T/noready.log")"
ncr=$(child_of noready)
PIDS="$PIDS $ncr"
wait_for 30 gone "$ncr" || fail "the unready child $ncr is still running"
is_serving "$v3" || fail "v3 stopped serving after an unready successor"
answers_pid "$url" "$c3" || fail "v3's child no longer answers"

# ---- rollback: v4 dies while v3's child finishes a request the test
# holds; v3 starts a new child
hold held
wait_for 30 has_sockets "$c3" 3 || fail "the held request did not reach $c3"
start_exec v4 --tag v4 -- --tag v4
v4=$LAST_PID
wait_for 60 is_serving "$v4" || fail "v4 (pid $v4) never served"
c4=$(child_of v4)
PIDS="$PIDS $c4"
wait_for 30 logged v3 "stopping child pid $c3" || fail "v3 did not stop $c3"
kill -KILL "$v4"
wait_for 30 logged v3 "rolled back: started child pid" ||
    fail "v3 did not roll back: $(tail -n 5 "$T/v3.log")"
c3b=$(child_of v3)
PIDS="$PIDS $c3b"
[ "$c3b" != "$c3" ] || fail "v3 did not start a new child"
# The same command: the new child too serves once told.
go_on v3-ready
wait_for 30 gone "$c4" || fail "v4's child $c4 outlived v4"
wait_for 30 is_serving "$v3" || fail "v3 does not serve after the rollback"
wait_for 30 answers_pid "$url" "$c3b" || fail "v3's new child does not answer"
alive "$c3" || fail "v3's old child $c3 exited with a held request in flight"
release "$held" "$c3"
wait_for 60 gone "$c3" || fail "v3's old child $c3 is still running"
alive "$v3" || fail "v3 exited when its old child did"

# ---- a child that dies on its own: handoff-exec exits with its status
kill -KILL "$c3b"
reap 30 "$v3" "v3 after its child was killed"
[ "$STATUS" = 137 ] || fail "v3 exited $STATUS after its child was killed, want 137"
logged v3 "child pid $c3b was killed by signal 9" ||
    fail "v3 did not log its child's death"

# ---- graceful stop of a fresh v5 with SIGTERM
start_exec v5 --tag v5 -- --tag v5
v5=$LAST_PID
wait_for 60 is_serving "$v5" || fail "v5 never served"
c5=$(child_of v5)
PIDS="$PIDS $c5"
kill -TERM "$v5"
reap_ok 60 "$v5" "v5 after SIGTERM"
gone "$c5" || fail "v5's child $c5 outlived it"
refuses "$url" || fail "$url still accepts after a graceful stop"
pass
