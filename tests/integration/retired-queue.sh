#!/bin/bash
# Connections queued on a port the successor retires are served, not reset
# (issue 10, item 1). tests/peer.py takes v1's listeners over and retires
# http (as a successor does that moves the port), but sends ready only when
# the test says: v1 is stopped (SIGSTOP) first, the peer's ready reaches
# it, and then 20 clients connect to http and send a whole GET /, which
# the kernel queues on the stopped v1's listener. v1 continues, reads
# ready before its listener: it must accept and answer all 20 before it
# shuts the port (the log says how many were queued), then refuse new
# connections there, drain and exit 0.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

use_peer
port=$(free_port)
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1
v1=$LAST_PID

go_fifo peer
$PEER successor --control "$CONTROL" --retire http --ready-when "$T/peer.go" \
    --then stay --hold 60 >"$T/peer.out" 2>&1 &
peer=$!
PIDS="$PIDS $peer"
wait_for 10 grep -q '"event":"recv","type":"fds"' "$T/peer.out" ||
    fail "the peer never got the offer: $(tail -n 3 "$T/peer.out")"

stopped() { grep -q '^State:[[:space:]]*T' "/proc/$1/status"; }
kill -STOP "$v1"
wait_for 10 stopped "$v1" || fail "v1 did not stop"
go_on peer
wait_for 10 grep -q '"event":"sent","type":"ready"' "$T/peer.out" ||
    fail "the peer never sent ready: $(tail -n 3 "$T/peer.out")"

# Each connect returns once the kernel has queued the connection.
clients=""
for _ in $(seq 20); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to $port"
	printf 'GET / HTTP/1.1\r\nHost: queued\r\nConnection: close\r\n\r\n' >&"$fd"
	clients="$clients $fd"
done
kill -CONT "$v1"

answered=0
for fd in $clients; do
	timeout 20 cat <&"$fd" >"$T/answer.$fd" 2>&1
	eval "exec $fd>&-"
	grep -q "pid=$v1 tag=v1" "$T/answer.$fd" && answered=$((answered + 1))
done
[ "$answered" = 20 ] || fail "$answered of 20 queued requests answered by v1"
logged v1 "retired http=127.0.0.1:$port: 20 connections queued; accepting them before refusing new ones" ||
    fail "v1 does not say what was queued: $(grep retired "$T/v1.log")"
wait_for 10 logged v1 "retired http=127.0.0.1:$port: refusing new connections" ||
    fail "v1 never shut the retired port"
! logged v1 "still queued, reset" || fail "v1 reset queued connections"
refuses "http://127.0.0.1:$port/" || fail "the retired port still takes connections"
reap_ok 15 "$v1" "v1, drained"
reap 15 "$peer" "the peer"
[ "$STATUS" = 0 ] || fail "peer exit $STATUS: $(tail -n 3 "$T/peer.out")"
pass
