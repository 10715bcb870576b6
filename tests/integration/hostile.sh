#!/bin/sh
# Hostile and broken peers on the control socket of handoff-httpd under
# wrk load (tests/hostile.py plays them; `tests/hostile.py list` shows
# the bad messages). Each must be answered with its error, leave the
# server serving, and be logged in exactly one line with the peer's pid:
# - bad messages: random bytes, over the size limit, invalid JSON, wrong
#   types, missing fields, unknown type, wrong version, stray fds;
# - 252 fds on a hello (and 253): every one closed, since the pipe they
#   are copies of reads end-of-file once the sender has closed its own;
# - peers that say nothing: cut at the I/O timeout;
# - 1000 connections at once: 256 kept and served, the rest closed;
# - a peer of another uid (nobody): forbidden, with fds or silent
#   (peer-uid.sh covers hello, status and stop);
# then the same again many times: no fd and no RSS growth, no failed
# request, and a real successor takes over. Last, what a start finds at
# the control path: a symbolic link, a regular file, a foreign socket, a
# symbolic link as lock file, a directory others may write to or that
# another uid owns: each is refused in one line and left as it was.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

command -v wrk >/dev/null || skip "wrk is not installed"
[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3"
HOSTILE=$top_srcdir/tests/hostile.py

port=$(free_port)
url="http://127.0.0.1:$port/"
serve_under_wrk v1 "$WRK_BOUND" "$url" --listen "http=tcp://127.0.0.1:$port" --tag v1 \
    --drain-timeout 5
v1=$LAST_PID
base_fds=$(fd_count "$v1")	# with wrk's 64 keep-alive connections

# step NAME: starts a step; every hostile.py run of it adds the lines v1
# must log to $T/NAME.expect (step_check compares).
step() {
	STEP=$1
	STEP_LINE=$(wc -l <"$T/v1.log")
	STEP_START=$(now_ms)
	: >"$T/$STEP.expect"
	chmod 0666 "$T/$STEP.expect"	# a peer of another uid writes too
}

# hostile [-b] [-n] CMD ARGS...: tests/hostile.py CMD on $CONTROL for
# this step, in the background with -b (pid in $HOSTILE_PID, then
# hostile_wait), as nobody with -n; fails unless every connection ended
# as expected.
hostile() {
	_bg=0 _as=""
	while :; do
		case $1 in
		-b) _bg=1 ;;
		-n) _as=as_nobody ;;
		*) break ;;
		esac
		shift
	done
	_cmd=$1
	shift
	$_as /usr/bin/python3 "$HOSTILE" "$_cmd" "$CONTROL" \
	    --expect-log "$T/$STEP.expect" "$@" \
	    >>"$T/$STEP.out" 2>&1 &
	HOSTILE_PID=$!
	PIDS="$PIDS $HOSTILE_PID"
	[ "$_bg" = 1 ] || hostile_wait
}

hostile_wait() {
	wait "$HOSTILE_PID" ||
	    fail "$STEP: $(grep -v '"ok":true' "$T/$STEP.out" | head -n 5)"
}

# step_check: since step, v1 logged exactly the expected lines, each as
# often as expected, and nothing else; its fds are back to base.
step_check() {
	tail -n +$((STEP_LINE + 1)) "$T/v1.log" |
	    sed 's/^handoff-httpd\[[0-9]*\] gen [0-9]*: //' | sort >"$T/$STEP.logged"
	sort "$T/$STEP.expect" | diff "$T/$STEP.logged" - >"$T/$STEP.diff" ||
	    fail "$STEP: v1 logged (<) other than expected (>): $(head -n 10 "$T/$STEP.diff")"
	wait_for 30 fds_back || fail "$STEP: v1 holds $(fd_count "$v1") fds, base $base_fds"
	log "$STEP: $(wc -l <"$T/$STEP.expect") lines, each as expected;" \
	    "$(fd_count "$v1") fds; $(( $(now_ms) - STEP_START )) ms"
}

fds_back() { [ "$(fd_count "$v1")" -le "$base_fds" ]; }
has_no_connections() { [ "$(status_field connections)" = 0 ]; }

nobody_ok=0
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
	as_nobody() { setpriv --reuid=nobody --regid="$(id -gn nobody)" --clear-groups "$@"; }
	# Only the peer check may stand between nobody and v1.
	chmod 0755 "$T"
	chmod 0777 "$CONTROL"
	as_nobody test -r "$HOSTILE" && nobody_ok=1
fi
[ "$nobody_ok" = 1 ] || log "no peer of another uid here (needs root, setpriv, nobody): peer-uid.sh covers it"

# One of each, under load; then exactly the log lines they call for.
step first
hostile -b silent --count 2
silent=$HOSTILE_PID
hostile inputs
hostile fds --count 252
hostile fds --count 253
hostile fds --count 20 --type status
if [ "$nobody_ok" = 1 ]; then
	hostile -n -b silent --forbidden
	nobody_silent=$HOSTILE_PID
	hostile -n fds --count 252 --forbidden
	hostile -n inputs --case random --case version --forbidden
	HOSTILE_PID=$nobody_silent
	hostile_wait
fi
HOSTILE_PID=$silent
hostile_wait
step_check
sed 's/^/    /' "$T/first.expect"

# With no other peer connected: exactly 256 kept.
step flood
hostile flood --count 1000
step_check
grep '"case":"flood"' "$T/flood.out"

is_serving "$v1" || fail "v1 no longer serves on $CONTROL"
body_has "$url" "pid=$v1 tag=v1" || fail "v1 does not answer $url"
stop_wrk steps-under-load
wrk_none_failed
log "under load: $(grep '^totals' "$T/wrk.out")"
wait_for 30 has_no_connections || fail "v1 still counts wrk's connections"

# The same many times over, without load (under load it is 10 times
# slower): v1 must not grow. An ASan build is slower still and its RSS
# says nothing: fewer rounds there, and LeakSanitizer checks v1 at exit.
rounds=200
asan=0
grep -q -- '-fsanitize=address' "$top_builddir/Makefile" && asan=1 rounds=20
vmrss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$v1/status"; }
base_fds=$(fd_count "$v1")
rss0=$(vmrss)
step repeat
for _ in 1 2 3; do
	hostile flood --count 1000
done
hostile -b silent --count 50
silent=$HOSTILE_PID
hostile inputs --rounds "$rounds"
hostile fds --count 252 --rounds 20
HOSTILE_PID=$silent
hostile_wait
step_check
rss1=$(vmrss)
log "RSS of v1 before the repeated run ${rss0} kB, after ${rss1} kB"
[ "$asan" = 1 ] || [ $((rss1 - rss0)) -le 128 ] ||
    fail "v1 grew from $rss0 kB to $rss1 kB over the repeated run"
is_serving "$v1" || fail "v1 no longer serves on $CONTROL"

# After all that, a real successor takes over; v1 exits 0.
upgrade "$v1" v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$NEW_PID
body_has "$url" "pid=$v2 tag=v2" || fail "v2 does not answer $url"

# refused NAME PATH WHY: a start with --control PATH fails with one line
# that says WHY (a grep pattern).
refused() {
	"$HTTPD" --control "$2" --listen "http=tcp://127.0.0.1:0" \
	    >"$T/$1.log" 2>&1 &
	_pid=$!
	PIDS="$PIDS $_pid"
	reap 60 "$_pid" "start on $1"
	[ "$STATUS" = 1 ] || fail "a start on $1 exited $STATUS, want 1: $(cat "$T/$1.log")"
	[ "$(grep -c . "$T/$1.log")" = 1 ] || fail "$1: want one line: $(cat "$T/$1.log")"
	grep -q -- "^handoff-httpd: $3" "$T/$1.log" || fail "$1: unclear: $(cat "$T/$1.log")"
	log "$1: $(cat "$T/$1.log")"
}

# A symbolic link, even to a live control socket, is never followed.
ln -s "$CONTROL" "$T/link.sock"
refused symlink "$T/link.sock" "control path $T/link.sock is a symbolic link, which is never followed"
[ "$(readlink "$T/link.sock")" = "$CONTROL" ] || fail "the link was changed"
! logged v2 "successor pid" || fail "v2 was asked to hand over through a link"
ln -s "$T/nowhere" "$T/dangling.sock"
refused dangling "$T/dangling.sock" "control path $T/dangling.sock is a symbolic link"
[ -L "$T/dangling.sock" ] || fail "the dangling link was removed"
[ ! -e "$T/nowhere" ] || fail "the dangling link was followed"
echo "not a socket" >"$T/file.sock"
refused file "$T/file.sock" "control path $T/file.sock exists and is not a socket"
[ "$(cat "$T/file.sock")" = "not a socket" ] || fail "the regular file was changed"
ln -s "$T/nowhere" "$T/locked.sock.lock"
refused lock-symlink "$T/locked.sock" "lock file $T/locked.sock.lock is a symbolic link"
[ ! -e "$T/nowhere" ] || fail "the lock's link was followed"
[ ! -e "$T/locked.sock" ] || fail "a start with a linked lock made $T/locked.sock"

# Directories: others may not write unless the sticky bit is set.
mkdir "$T/d"
chmod 0777 "$T/d"
refused world-writable "$T/d/ctl.sock" "control directory $T/d is writable by others (mode 0777)"
chmod 0775 "$T/d"
refused group-writable "$T/d/ctl.sock" "control directory $T/d is writable by its group (mode 0775)"
[ -z "$(ls -A "$T/d")" ] || fail "a refused start left $(ls -A "$T/d") in $T/d"
chmod 1777 "$T/d"
CONTROL=$T/d/ctl.sock
serve sticky --listen "http=tcp://127.0.0.1:0"
"$CTL" stop --control "$CONTROL" >/dev/null || fail "stop the server in the sticky directory"
reap_ok 60 "$LAST_PID" "server in a sticky directory"
if [ "$nobody_ok" = 1 ]; then
	# A socket of another uid in a sticky directory is not ours to use.
	rm -f "$CONTROL" "$CONTROL.lock"
	as_nobody /usr/bin/python3 -c 'import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).bind(sys.argv[1])' "$CONTROL" ||
	    fail "nobody cannot bind in $T/d"
	refused foreign-socket "$CONTROL" "control socket $CONTROL belongs to uid $(id -u nobody), which is not allowed"
	[ -S "$CONTROL" ] || fail "the foreign socket was removed"
	mkdir "$T/theirs"
	chown nobody "$T/theirs"
	refused foreign-dir "$T/theirs/ctl.sock" "control directory $T/theirs belongs to uid $(id -u nobody)"
fi

"$CTL" stop --control "$T/ctl.sock" >/dev/null || fail "stop v2"
reap_ok 60 "$v2" v2
pass
