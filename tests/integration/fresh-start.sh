#!/bin/sh
# A fresh start binds, serves GET / with pid and tag, answers status, and
# stops gracefully on SIGTERM with exit 0.
. "$(dirname "$0")/../lib.sh"

port=$(free_port)
start_httpd v1 --listen "http=tcp://127.0.0.1:$port" --tag v1
pid=$LAST_PID
wait_for 30 is_serving "$pid" || fail "pid $pid never served on $CONTROL"
body=$(get "http://127.0.0.1:$port/") || fail "GET / failed"
echo "$body" | grep -q "pid=$pid" || fail "body lacks pid=$pid: $body"
echo "$body" | grep -q "tag=v1" || fail "body lacks tag=v1: $body"
logged v1 "started fresh" || fail "no 'started fresh' log line"
"$CTL" status --control "$CONTROL" | grep -q "generation 1" ||
    fail "status does not say generation 1"
kill -TERM "$pid"
wait_exit "$pid"
[ "$STATUS" = 0 ] || fail "SIGTERM: exit status $STATUS, want 0"
logged v1 "stopping" || fail "no 'stopping' log line"
pass
