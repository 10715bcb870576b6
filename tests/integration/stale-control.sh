#!/bin/sh
# A control socket left by a dead process: handoffctl status says "no
# server" (exit 3) and a fresh start replaces it. A regular file at the
# control path is never removed: the start fails with a clear reason.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

# stale_socket PATH TYPE: a unix socket file nobody accepts on.
stale_socket() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, getattr(socket, sys.argv[2]))
s.bind(sys.argv[1]); s.close()' "$1" "$2" || fail "cannot make a stale $1"
	[ -S "$1" ] || fail "$1 is not a socket"
}

stale_socket "$CONTROL" SOCK_SEQPACKET
"$CTL" status --control "$CONTROL" >"$T/status.out" 2>"$T/status.err"
code=$?
[ "$code" = 3 ] || fail "status on a stale socket exited $code, want 3"
grep -q "no server at $CONTROL" "$T/status.err" ||
    fail "status on a stale socket: $(cat "$T/status.err")"
[ -s "$T/status.out" ] && fail "status printed $(cat "$T/status.out")"

port=$(free_port)
url="http://127.0.0.1:$port/"
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1
v1=$LAST_PID
logged v1 "stale control socket $CONTROL" || fail "v1 did not log 'stale control socket'"
logged v1 "started fresh" || fail "v1 did not start fresh"
body_has "$url" "pid=$v1 tag=v1 gen=1" || fail "v1 does not serve $url"
kill -TERM "$v1"
reap_ok 60 "$v1" v1

CONTROL=$T/file.sock
echo "not a socket" >"$CONTROL"
start_httpd file --listen "http=tcp://127.0.0.1:$port" --tag file
reap 60 "$LAST_PID" "start on a regular file"
[ "$STATUS" != 0 ] || fail "a start on a regular file exited 0"
reason=$(grep '^handoff-httpd: ' "$T/file.log")
[ "$(echo "$reason" | grep -c .)" = 1 ] ||
    fail "want one reason line: $(cat "$T/file.log")"
echo "$reason" | grep -q "$CONTROL exists and is not a socket" ||
    fail "unclear reason: $reason"
log "regular file: exit $STATUS: $reason"
[ "$(cat "$CONTROL")" = "not a socket" ] || fail "$CONTROL was changed"
# Tests run in parallel and ports are reused: another test's server may
# answer on this port by now, but never the failed start.
if ! refuses "$url"; then
	body_has "$url" "tag=file" && fail "the failed start serves $url"
fi

# A lock file others may write to (they could hold it, or forge the
# serving record in it) is refused, and left as it is.
rm -f "$CONTROL"
chmod 666 "$CONTROL.lock" || fail "no lock file at $CONTROL.lock"
start_httpd lockmode --listen "http=tcp://127.0.0.1:$port" --tag lockmode
wait_exit "$LAST_PID"
[ "$STATUS" = 1 ] || fail "a start with a lock file of mode 0666 exited $STATUS"
logged lockmode "lock file $CONTROL.lock is writable by others (mode 0666), who could hold it or forge what it says; run chmod 600 $CONTROL.lock" ||
    fail "unclear reason: $(cat "$T/lockmode.log")"
[ "$(stat -c %a "$CONTROL.lock")" = 666 ] || fail "the lock file was changed"
pass
