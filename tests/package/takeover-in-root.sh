#!/bin/bash
# One takeover with the installed packages, inside the clean root that
# tests/package/check-debs.sh made: run there as pid 1 of its own pid,
# mount and network namespaces (so port 8080 on 127.0.0.1 is ours alone,
# and every process left when this script ends is killed with it).
# Uses only what the packages and their dependencies installed, and bash,
# coreutils, grep and sed of the minimal root: no curl (bash's /dev/tcp).
#
# v1 (handoff-httpd from /usr/bin) binds and serves; v2 takes over on the
# same control socket; status names v2, GET / is answered by v2, v1 exits
# 0; handoffctl stop stops v2, which exits 0. Waits by bounded polling.
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

# wait_until SECONDS COMMAND...: polls every 50 ms until COMMAND succeeds.
wait_until() {
	local end=$(( $(date +%s%N) / 1000000 + $1 * 1000 ))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $(( $(date +%s%N) / 1000000 )) -lt "$end" ] || return 1
		sleep 0.05
	done
}

# serving PID GEN TAG: the first line of handoffctl status names them.
serving() {
	"$CTL" status --control "$CONTROL" 2>/dev/null | head -n 1 |
	    grep -q "^pid $1  generation $2  tag $3  state serving"
}

# A zombie has exited: this shell reaps it with wait.
exited() { grep -q '^State:[[:space:]]*[ZX]' "/proc/$1/status" 2>/dev/null ||
    [ ! -e "/proc/$1" ]; }

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

"$HTTPD" --control "$CONTROL" --listen "http=tcp://127.0.0.1:$PORT" \
    --tag v1 --drain-timeout 10 >"$D/v1.log" 2>&1 &
v1=$!
wait_until 10 serving "$v1" 1 v1 ||
    fail "handoffctl status never named v1 (pid $v1) serving"
http_get >"$D/get1.out" 2>&1 || fail "GET / from v1 failed"
grep -q "pid=$v1 tag=v1 gen=1" "$D/get1.out" ||
    fail "v1 answered: $(tail -n 1 "$D/get1.out")"

"$HTTPD" --control "$CONTROL" --listen "http=tcp://127.0.0.1:$PORT" \
    --tag v2 --drain-timeout 10 >"$D/v2.log" 2>&1 &
v2=$!
wait_until 15 serving "$v2" 2 v2 ||
    fail "handoffctl status never named v2 (pid $v2, generation 2) serving"
wait_until 20 exited "$v1" || fail "v1 (pid $v1) did not exit after the takeover"
wait "$v1"
status=$?
[ "$status" = 0 ] || fail "v1 exited $status after the takeover, want 0"
grep -q "gen 1: released to pid $v2\$" "$D/v1.log" ||
    fail "v1 did not log 'released to pid $v2'"

http_get >"$D/get2.out" 2>&1 || fail "GET / after the takeover failed"
grep -q "pid=$v2 tag=v2 gen=2" "$D/get2.out" ||
    fail "after the takeover GET / answered: $(tail -n 1 "$D/get2.out")"
"$CTL" status --control "$CONTROL" >"$D/status.out" 2>&1 ||
    fail "handoffctl status exited $?"
sed 's/^/  /' "$D/status.out"

"$CTL" stop --control "$CONTROL" --timeout 10 >"$D/stop.log" 2>&1 ||
    fail "handoffctl stop exited $?"
wait_until 10 exited "$v2" || fail "v2 (pid $v2) did not exit after stop"
wait "$v2"
status=$?
[ "$status" = 0 ] || fail "v2 exited $status after handoffctl stop, want 0"

log "PASS: v2 (pid $v2) took over from v1 (pid $v1), which exited 0; v2 stopped with exit 0"
rm -rf "$D"
