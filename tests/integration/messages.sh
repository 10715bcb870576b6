#!/bin/bash
# Messages that misled (issue 10, item 6); each line now says what is so.
# 1. One address given twice is two of our own listeners, not "another
#    process"; a wildcard and an address on one port cannot both be
#    bound either. Both are said before anything is bound, and so is
#    that tcp://*:PORT (and any name that resolves to several addresses)
#    listens on the first address only.
# 2. At the hammer v1 says "exiting, 1 connection left; accepted N, taken
#    over 0", and not then
#    "drained: no connection left" as the HTTP server closes that
#    connection.
# 3. Under handoff-exec, which does not count connections, the successor
#    does not say its predecessor "drains 0 connections", and handoffctl
#    status shows "connections -".
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

port=$(free_port)
# one_line NAME TEXT ARGS...: handoff-httpd ARGS exits 1 saying only TEXT.
one_line() {
	_n=$1 _text=$2; shift 2
	"$HTTPD" --control "$CONTROL" "$@" >"$T/$_n.log" 2>&1
	_rc=$?
	[ "$_rc" = 1 ] || fail "$_n: exit $_rc, want 1: $(cat "$T/$_n.log")"
	[ "$(tail -n 1 "$T/$_n.log")" = "$_text" ] ||
	    fail "$_n said: $(cat "$T/$_n.log"); want: $_text"
}
one_line twice "handoff-httpd: listeners \"a\" and \"b\" both ask for 127.0.0.1:$port; give each an address of its own" \
    --listen "a=tcp://127.0.0.1:$port" --listen "b=tcp://127.0.0.1:$port"
one_line wildcard "handoff-httpd: listeners \"a\" (0.0.0.0:$port) and \"b\" (127.0.0.1:$port) cannot both be bound: a wildcard address takes its port on every address" \
    --listen "a=tcp://*:$port" --listen "b=tcp://127.0.0.1:$port"
grep -q "listener a: tcp://\*:$port resolves to 2 addresses; only the first, 0.0.0.0:$port, is used (give each address a listener of its own to listen on all)" \
    "$T/wildcard.log" || fail "wildcard: resolution not said: $(cat "$T/wildcard.log")"
[ ! -e "$CONTROL" ] || fail "a control socket was bound before the clash was found"
# Port 0 asks for a port of its own each time: no clash.
serve zero --listen "a=tcp://127.0.0.1:0" --listen "b=tcp://127.0.0.1:0"
"$CTL" stop --control "$CONTROL" >/dev/null || fail "cannot stop zero"
reap_ok 15 "$LAST_PID" zero

# 2. The hammer.
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1 --drain-timeout 1
v1=$LAST_PID
hold req
wait_for 10 has_connections 1 || fail "the held request never reached v1"
serve v2 --listen "http=tcp://127.0.0.1:$port" --tag v2 --no-migrate
v2=$LAST_PID
reap_ok 15 "$v1" "v1, hammered with a request held"
eval "exec $req>&-"
logged v1 "hammered: drain deadline of 1000 ms passed; closing 1 connection" ||
    fail "v1 does not say it was hammered: $(tail -n 3 "$T/v1.log")"
tail -n 1 "$T/v1.log" | grep -q "^handoff-httpd\[$v1\] gen 1: exiting, 1 connection left; accepted [0-9]*, taken over 0\$" ||
    fail "v1 said after the hammer: $(tail -n 3 "$T/v1.log")"
! logged v1 "drained" || fail "v1 says it drained though it was hammered"
"$CTL" stop --control "$CONTROL" >/dev/null || fail "cannot stop v2"
reap_ok 15 "$v2" v2

# 3. handoff-exec does not count connections.
exec_sleeper e1 "$port" 0
e1=$LAST_PID
wait_for 15 is_serving "$e1" || fail "e1 (pid $e1) never served"
"$CTL" status --control "$CONTROL" >"$T/e1-status.out" || fail "no status from e1"
grep -q "^pid $e1  generation 1  tag -  state serving  connections -\$" "$T/e1-status.out" ||
    fail "e1's status: $(head -n 1 "$T/e1-status.out")"
exec_sleeper e2 "$port" 0
e2=$LAST_PID
wait_for 15 logged e2 "released by pid $e1" || fail "e2 was not released"
logged e2 "released by pid $e1: it drains its application's connections (not counted) within 30000 ms" ||
    fail "e2 said: $(grep 'released by' "$T/e2.log")"
reap_ok 15 "$e1" e1
"$CTL" stop --control "$CONTROL" >"$T/e2-stop.out" || fail "cannot stop e2"
grep -q "^stopping pid $e2: draining its connections (not counted), deadline 30000 ms\$" \
    "$T/e2-stop.out" || fail "stop printed: $(cat "$T/e2-stop.out")"
reap_ok 15 "$e2" e2
pass
