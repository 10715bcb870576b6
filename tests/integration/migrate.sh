#!/bin/bash
# handoff-httpd's connections migrate (the "conns" extension): with 200
# idle keep-alive connections to v1 (drain deadline 60 s), one of them
# with a request answered and the next half read, and half of them with
# half a request read, v2 takes over: v1 gives them all and exits at once,
# and every next request, and both of a pipelined pair, is answered once,
# by v2, on the same connection; none is closed. Then a successor that
# is given them and killed before it answers for them: v2 serves them
# all. With --no-migrate, v3's connections stay with it and are closed
# after their next response (Connection: close), as before.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

use_peer

port=$(free_port)
listen="--listen http=tcp://127.0.0.1:$port"
N=200

# clients NAME: $N connections (tests/http-client.py); the rest of what
# they send waits for finish NAME.
clients() {
	start_clients "$1" "$top_srcdir/tests/http-client.py" "$port" "$N"
}

finish() { finish_clients "$1"; }

# answered NAME PID COUNT: COUNT responses after "ready", all from PID.
answered() {
	_after=$(sed -n '/^ready$/,$p' "$T/$1.out" | grep -v '^ready$\|^done$')
	_n=$(printf '%s\n' "$_after" | grep -c " $2\$")
	[ "$_n" = "$3" ] || fail "$1: $_n of $3 responses from pid $2:" \
	    "$(printf '%s\n' "$_after" | grep -v " $2\$" | head -n 3)"
}

# shellcheck disable=SC2086
serve v1 $listen --tag v1 --drain-timeout 60
v1=$LAST_PID
clients c1
[ "$(grep -c " $v1\$" "$T/c1.out")" = $((N + 1)) ] ||
    fail "v1 did not answer the first $((N + 1)) requests"
# shellcheck disable=SC2086
serve v2 $listen --tag v2 --drain-timeout 60
v2=$LAST_PID
# Nobody has sent a byte since: v1 exits now only if it gave them all.
reap_ok 30 "$v1" "v1, which gave its connections"
logged v1 "exiting, 0 connections left; accepted $N, taken over 0" ||
    fail "v1: $(grep exiting "$T/v1.log")"
finish c1
# 0 and the odd ones: one response each; the even ones but 0: a pair.
answered c1 "$v2" $((N / 2 + (N / 2 - 1) * 2 + 1))
grep -q " closed\$" "$T/c1.out" && fail "a connection was closed: $(grep closed "$T/c1.out" | head -n 3)"

# A successor given them and killed before it answers for them.
clients c2
conns_peer peer
peer=$PEER_PID
conns_back v2
finish c2
answered c2 "$v2" $((N / 2 + (N / 2 - 1) * 2 + 1))

# --no-migrate: the connections stay, and close after their next answer.
clients c3
# shellcheck disable=SC2086
serve v3 $listen --tag v3 --no-migrate
v3=$LAST_PID
wait_for 30 logged v2 "released to pid $v3" || fail "v2 was not released"
alive "$v2" || fail "v2 exited with connections v3 does not take"
finish c3
# One answer each; a pipelined pair loses its second to the close (what
# migration is for).
answered c3 "$v2" "$N"
[ "$(grep -c " closed\$" "$T/c3.out")" = $((N / 2 - 1)) ] ||
    fail "want the $((N / 2 - 1)) pairs' second requests unanswered without migration"
reap_ok 30 "$v2" "v2, drained"
kill -TERM "$v3"
reap_ok 30 "$v3" "v3, stopped"
pass
