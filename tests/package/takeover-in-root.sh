#!/bin/bash
# One takeover with the installed packages, inside the clean root that
# tests/package/check-debs.sh made: run there as pid 1 of its own pid,
# mount and network namespaces (so port 8080 on 127.0.0.1 is ours alone,
# and every process left when this script ends is killed with it).
# Uses only what the packages and their dependencies installed, and bash,
# coreutils, grep and sed of the minimal root: no curl (bash's /dev/tcp).
#
# handoffctl upgrade starts v1 (handoff-httpd from /usr/bin), which binds
# and serves, then v2, which takes over on the same control socket: each
# returns once the new generation answers there. Status names v2, GET / is
# answered by v2, v1 exits 0; handoffctl stop stops v2 and returns once it
# has exited, 0. Neither is this script's child (handoffctl starts each in
# a session of its own; here, pid 1, it reaps them): an exit 0 is the
# server's last log line, "exiting, ...", which it prints just before.
set -u

HTTPD=/usr/bin/handoff-httpd
CTL=/usr/bin/handoffctl
EXEC=/usr/bin/handoff-exec
PORT=8080
D=$(mktemp -d /tmp/takeover.XXXXXX) || exit 1
CONTROL=$D/ctl.sock

log() { printf 'takeover-in-root: %s\n' "$*"; }

fail() {
	log "FAIL: $*"
	for f in "$D"/*.log; do
		[ -f "$f" ] || continue
		echo "---- $f (last 20 lines)"
		tail -n 20 "$f"
	done
	exit 1
}

# start TAG: handoffctl upgrade starts handoff-httpd tagged TAG and
# returns once it answers on the control socket (10 s at most); its pid
# in $STARTED.
start() {
	"$CTL" upgrade --control "$CONTROL" --timeout 10 --log "$D/$1.log" -- \
	    "$HTTPD" --control "$CONTROL" --listen "http=tcp://127.0.0.1:$PORT" \
	    --tag "$1" --drain-timeout 10 >"$D/upgrade-$1.out" 2>&1 ||
	    fail "handoffctl upgrade starting $1 exited $?: $(cat "$D/upgrade-$1.out")"
	# "started: pid P (generation 1)", "upgraded: pid O -> pid P (...)"
	STARTED=$(sed -n 's/.*pid \([0-9]*\) (generation.*/\1/p' \
	    "$D/upgrade-$1.out")
	[ -n "$STARTED" ] || fail "handoffctl upgrade said: $(cat "$D/upgrade-$1.out")"
}

# serving PID GEN TAG: the first line of handoffctl status names them.
serving() {
	"$CTL" status --control "$CONTROL" 2>/dev/null | head -n 1 |
	    grep -q "^pid $1  generation $2  tag $3  state serving"
}

# exited_0 NAME PID SECONDS: PID ends within SECONDS (tail --pid), and its
# log's last line is the one handoff-httpd prints just before exit 0.
exited_0() {
	timeout "$3" tail -s 0.1 --pid="$2" -f /dev/null ||
	    fail "$1 (pid $2) did not exit within $3 s"
	tail -n 1 "$D/$1.log" | grep -q "^handoff-httpd\[$2\] gen [0-9]*: exiting, " ||
	    fail "$1 (pid $2) did not exit 0: $(tail -n 1 "$D/$1.log")"
}

# http_get: the response to GET / on 127.0.0.1:$PORT, through bash's
# /dev/tcp; the server closes the connection (Connection: close).
http_get() {
	exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
	printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
	timeout 5 cat <&3
	local rc=$?
	exec 3<&-
	return "$rc"
}

for p in "$HTTPD" "$CTL" "$EXEC"; do
	[ -x "$p" ] || fail "$p is not installed"
	"$p" --version >"$D/version.out" 2>&1 ||
	    fail "$p --version exited $?: $(cat "$D/version.out")"
	log "$(head -n 1 "$D/version.out")"
done

start v1
v1=$STARTED
serving "$v1" 1 v1 || fail "handoffctl status does not name v1 (pid $v1) serving"
http_get >"$D/get1.out" 2>&1 || fail "GET / from v1 failed"
grep -q "pid=$v1 tag=v1 gen=1" "$D/get1.out" ||
    fail "v1 answered: $(tail -n 1 "$D/get1.out")"

start v2
v2=$STARTED
serving "$v2" 2 v2 ||
    fail "handoffctl status does not name v2 (pid $v2, generation 2) serving"
exited_0 v1 "$v1" 20
grep -q "gen 1: released to pid $v2\$" "$D/v1.log" ||
    fail "v1 did not log 'released to pid $v2'"

http_get >"$D/get2.out" 2>&1 || fail "GET / after the takeover failed"
grep -q "pid=$v2 tag=v2 gen=2" "$D/get2.out" ||
    fail "after the takeover GET / answered: $(tail -n 1 "$D/get2.out")"
"$CTL" status --control "$CONTROL" >"$D/status.out" 2>&1 ||
    fail "handoffctl status exited $?"
sed 's/^/  /' "$D/status.out"

"$CTL" stop --control "$CONTROL" --timeout 10 >"$D/stop.out" 2>&1 ||
    fail "handoffctl stop exited $?: $(cat "$D/stop.out")"
grep -q "^pid $v2 exited\$" "$D/stop.out" ||
    fail "handoffctl stop said: $(cat "$D/stop.out")"
exited_0 v2 "$v2" 5

log "PASS: v2 (pid $v2) took over from v1 (pid $v1), which exited 0; v2 stopped with exit 0"
rm -rf "$D"
