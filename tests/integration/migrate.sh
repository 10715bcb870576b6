#!/bin/bash
# handoff-httpd's connections migrate (the "conns" extension): with 200
# idle keep-alive connections to v1 (drain deadline 60 s), one of them
# with a request answered and the next half read, and half of them with
# half a request read, v2 takes over: v1 gives them all and exits at once,
# and every next request, and both of a pipelined pair, is answered once,
# by v2, on the same connection; none is closed. Then a successor that
# is given them and killed before it answers for them: v2 serves them
# all. With --no-migrate, v3's connections stay with it and are closed
# after their next response (Connection: close), as before. Last, a
# predecessor's gift that crosses its successor's own takeover: an
# incumbent (tests/peer.py) gives v4 a connection after v5 has taken over
# from v4; v4 passes it on, and v5 answers both requests on it, keeping
# it open.
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

# A gift that crosses a takeover: passed on, not closed.
port=$(free_port)
listen="--listen http=tcp://127.0.0.1:$port"
go_fifo give
peer_incumbent peer4 --listen "http=tcp://127.0.0.1:$port" \
    --give-http-when "$T/give.go"
peer=$PEER_PID
# Not serve: the peer answers one conversation, and status would be it.
# shellcheck disable=SC2086
start_httpd v4 $listen --tag v4 --drain-timeout 60
v4=$LAST_PID
wait_for 30 logged v4 "released by pid $peer" ||
    fail "the peer did not release v4: $(tail -n 3 "$T/peer4.out")"
# A request in flight keeps v4 draining (idle ones would move to v5);
# the test ends it by killing v4 once done.
exec {slow}<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to $port"
printf 'GET /slow?ms=60000 HTTP/1.1\r\nHost: held\r\n\r\n' >&"$slow"
wait_for 30 has_connections 1 || fail "v4 does not count the held request"
# shellcheck disable=SC2086
serve v5 $listen --tag v5
v5=$LAST_PID
wait_for 30 logged v4 "released to pid $v5" || fail "v4 was not released to v5"
go_on give
wait_for 30 grep -q '"event":"http-answer","n":2' "$T/peer4.out" ||
    fail "the peer's client got no second answer: $(tail -n 3 "$T/peer4.out")"
grep -q '"event":"conns-answered","taken":\[1\],"refused":\[\]' "$T/peer4.out" ||
    fail "v4 did not take the connection: $(grep conns-answered "$T/peer4.out")"
for n in 1 2; do
	grep "\"event\":\"http-answer\",\"n\":$n," "$T/peer4.out" |
	    grep -q "200 OK|connection=-|pid=$v5 tag=v5 " ||
	    fail "answer $n was not v5's, on an open connection: $(grep http-answer "$T/peer4.out")"
done
logged v4 "successor pid $v5 took 1 connection" ||
    fail "v4 did not pass the connection on: $(tail -n 3 "$T/v4.log")"
alive "$v4" || fail "v4 exited with a request in flight"
kill "$peer" 2>/dev/null
wait_exit "$peer"
exec {slow}>&-
kill -KILL "$v4"
wait_exit "$v4"
kill -TERM "$v5"
reap_ok 30 "$v5" "v5, stopped"
pass
