#!/bin/sh
# Two successors started at the same moment: exactly one takes over, the
# other exits non-zero saying a start or takeover is under way (or the
# incumbent is busy). Repeated a few rounds, each from the last winner.
# A takeover takes about a millisecond, less than the jitter between two
# exec()s on a busy machine, so the incumbent is stopped (SIGSTOP) while the
# racers start: the first cannot finish, the second must meet it.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

ROUNDS=4
port=$(free_port)
url="http://127.0.0.1:$port/"
listen="http=tcp://127.0.0.1:$port"
serve v1 --listen "$listen" --tag v1
inc=$LAST_PID

# racer NAME: a successor that first blocks reading the gate FIFO, then
# execs handoff-httpd (same pid). The test holds the FIFO's only writer
# (fd 9); closing it once every racer reads ends all the reads at once.
# The libtool wrapper script takes ~20 ms to exec the binary, longer than a
# takeover: race the binary itself when there is one.
bin=$HTTPD
if [ -x "$top_builddir/tools/.libs/handoff-httpd" ]; then
	bin=$top_builddir/tools/.libs/handoff-httpd
	LD_LIBRARY_PATH="$top_builddir/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	export LD_LIBRARY_PATH
fi
mkfifo "$T/gate"
racer() {
	sh -c 'read _ <"$1"; shift; exec "$@"' racer "$T/gate" "$bin" \
	    --control "$CONTROL" --listen "$listen" --tag "$1" \
	    >"$T/$1.log" 2>&1 9>&- &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
}
at_gate() { [ /proc/$1/fd/0 -ef "$T/gate" ]; }
one_gone() { gone "$a" || gone "$b"; }

r=1
while [ "$r" -le "$ROUNDS" ]; do
	exec 9<>"$T/gate"
	racer "r${r}a"
	a=$LAST_PID
	racer "r${r}b"
	b=$LAST_PID
	wait_for 30 at_gate "$a" && wait_for 30 at_gate "$b" ||
	    fail "round $r: the racers never reached the gate"
	kill -STOP "$inc"
	exec 9>&-
	wait_for 30 one_gone || { kill -CONT "$inc"
		fail "round $r: both racers still run after 30 s"; }
	kill -CONT "$inc"
	reap_ok 60 "$inc" "round $r incumbent"
	if is_serving "$a"; then
		win=$a wtag=r${r}a lose=$b ltag=r${r}b
	elif is_serving "$b"; then
		win=$b wtag=r${r}b lose=$a ltag=r${r}a
	else
		fail "round $r: neither $a nor $b serves: $(status_json)"
	fi
	reap 60 "$lose" "round $r loser"
	[ "$STATUS" != 0 ] ||
	    fail "round $r: the losing successor $ltag (pid $lose) exited 0"
	grep -Eq '^handoff-httpd: .*(another start or takeover is under way|busy)' \
	    "$T/$ltag.log" || fail "round $r: $ltag gave no clear reason:" \
	    "$(cat "$T/$ltag.log")"
	gone "$win" && fail "round $r: the winner $wtag (pid $win) exited"
	logged "$wtag" "took over" || fail "round $r: $wtag did not log 'took over'"
	logged "$ltag" "took over" && fail "round $r: both $wtag and $ltag took over"
	body_has "$url" "pid=$win tag=$wtag gen=$((r + 1))" ||
	    fail "round $r: the winner $wtag does not serve $url"
	log "round $r: $wtag won; $ltag exited $STATUS:" \
	    "$(grep '^handoff-httpd: ' "$T/$ltag.log")"
	inc=$win
	r=$((r + 1))
done
pass
