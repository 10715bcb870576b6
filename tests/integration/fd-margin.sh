#!/bin/sh
# What a successor keeps back from the fds it can take (issue 10, item
# 7): hello.max_fds is RLIMIT_NOFILE less the fds open less the library's
# own few (16), not a margin of 64. v1 serves 200 listeners (port 0, so
# matched by name); v2, with ulimit -n 260, takes all 201 fds (the
# control socket too) over and says how few fds it has left; v3, with
# ulimit -n 150, is refused by v2 with too-many-fds, and the reason says
# how its count was made. --no-state: the fds counted are the listeners
# and the control socket only.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

n=200
args="--no-state $(seq "$n" | sed 's|.*|--listen l&=tcp://127.0.0.1:0|' | tr '\n' ' ')"

# shellcheck disable=SC2086
serve v1 $args --tag v1
v1=$LAST_PID

# limited NAME LIMIT: handoff-httpd NAME with ulimit -n LIMIT; $LAST_PID.
limited() {
	_name=$1 _limit=$2
	# shellcheck disable=SC2086
	(ulimit -n "$_limit" && exec "$HTTPD" --control "$CONTROL" $args \
	    --tag "$_name") >"$T/$_name.log" 2>&1 &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
}

limited v2 260
v2=$LAST_PID
wait_for 15 is_serving "$v2" || fail "v2 (pid $v2, ulimit -n 260) never served: $(tail -n 3 "$T/v2.log")"
logged v2 "took over from pid $v1: adopted $n" || fail "v2 did not adopt all $n"
logged v2 "only [0-9]* fds free now (RLIMIT_NOFILE 260, [0-9]* open): the application may run short of them" ||
    fail "v2 did not say how few fds it has left"
reap_ok 15 "$v1" v1
limited v3 150
v3=$LAST_PID
reap 15 "$v3" "v3, with too few fds"
[ "$STATUS" = 1 ] || fail "v3 exit $STATUS, want 1: $(cat "$T/v3.log")"
grep -q "refused the takeover: too-many-fds: $((n + 1)) listeners to pass but the successor can take [0-9]* more fds; raise its RLIMIT_NOFILE (here RLIMIT_NOFILE is 150, [0-9]* fds are open and 16 are kept for the library)" "$T/v3.log" ||
    fail "v3 said: $(cat "$T/v3.log")"
is_serving "$v2" || fail "v2 no longer serves after refusing v3"

pass
