#!/bin/sh
# Real successors SIGKILLed at random moments under wrk load. Each is
# started by tests/kill-successor.py, which stops it at the moment drawn,
# counts the client connections it had accepted, then kills it.
# - After ready (RANDOM_KILLS_AFTER, default 20): 0 to 200 ms after the
#   successor's ready line. An idle connection held open on v1 keeps its
#   drain going, so every kill finds v1 draining: it must roll back and
#   serve again. Only requests on connections the killed successor had
#   accepted may fail: wrk's failures must not exceed their count. Every
#   other one asks for http alone: v1 shuts the listeners it retires and
#   must listen on each at its own address again. These kills also time
#   exec to ready, so they come first.
# - Before ready (RANDOM_KILLS_BEFORE, default 100): half at a random
#   moment under the shortest exec to ready measured, half under the
#   shortest offer to ready after the successor logged the offer (the
#   exec takes most of the time before that). v1's log says where each
#   landed: before v1 had a hello, during the offer, or after ready (then
#   counted with the kills after ready, and another is drawn). No failed
#   request; after each kill v1 serves with exactly the fds it had.
# Then a real successor takes over normally. RANDOM_KILLS_SEED=N draws the
# same random numbers again (the bounds they scale are measured each run).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

command -v wrk >/dev/null || skip "wrk is not installed"
command -v ss >/dev/null || skip "ss is not installed (iproute2)"
KILLER="/usr/bin/python3 $top_srcdir/tests/kill-successor.py"
kills_after=${RANDOM_KILLS_AFTER:-20}
kills_before=${RANDOM_KILLS_BEFORE:-100}
seed=${RANDOM_KILLS_SEED:-$(date +%s)}
[ "$kills_after" -ge 1 ] || skip "RANDOM_KILLS_AFTER=0: the kills after ready time the others"
log "seed $seed (RANDOM_KILLS_SEED=$seed draws the same numbers)"

port=$(free_port)
url="http://127.0.0.1:$port/"
# Extra listeners on port 0 (matched by name) make the offer take a few
# ms (two batches): long enough for random moments to land in it too.
# On 127.0.0.2: the ports they take stay free on 127.0.0.1, where the
# tests running beside this one bind theirs.
http_only="--listen http=tcp://127.0.0.1:$port --drain-timeout 60"
args=$http_only
extra=${RANDOM_KILLS_EXTRA:-260}
i=0
while [ "$i" -lt "$extra" ]; do
	i=$((i + 1))
	args="$args --listen x$i=tcp://127.0.0.2:0"
done
# shellcheck disable=SC2086
serve v1 $args --tag v1
v1=$LAST_PID

# An idle connection to v1, opened while it alone serves: it never gets
# a response, so v1 drains until its deadline and a kill after ready
# always finds it draining.
python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.recv(1)' "$port" &
hold=$!
PIDS="$PIDS $hold"
wait_for 30 has_connections 1 || fail "the idle connection never reached v1"

# fractions N: N random numbers in [0, 1), one a line, from the seed.
draws=0
fractions() {
	draws=$((draws + 1))
	awk -v seed=$((seed + draws)) -v n="$1" 'BEGIN {
		srand(seed); for (i = 0; i < n; i++) printf "%.4f\n", rand() }'
}

# delay FILE I MAX_MS: line I of FILE times MAX_MS.
delay() {
	awk -v i="$2" -v max="$3" 'NR == i { printf "%.2f\n", $1 * max }' "$1"
}

# min A B: the smaller of two decimal numbers; "-" stands for none.
min() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		print (b == "-" || (a != "-" && a + 0 < b + 0)) ? a : b }'
}

# minus A B: A - B, or "-" if either is "-".
minus() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "-" || b == "-") print "-"; else print a - b }'
}

# v1_settled FDS: v1 answers status as serving, then holds FDS fds. In
# that order: a dead successor's connection, queued on the control socket
# before ours, has been accepted when v1 answers; it is closed, its end
# logged, when v1 is back to FDS fds.
v1_settled() {
	"$CTL" status --control "$CONTROL" |
	    grep -q "^pid $v1 .* state serving " &&
	    [ "$(fd_count "$v1")" = "$1" ]
}

# kill_one NAME ARGS [--after TEXT] --ms MS: a successor (handoff-httpd
# ARGS) started and killed by the helper; its pid, ms to the offer and to
# ready, and the connections it held in K_PID, K_OFFER_MS, K_READY_MS,
# K_HELD.
kill_one() {
	_name=$1 _args=$2
	shift 2
	rm -f "$T/successor.log"
	# shellcheck disable=SC2086
	$KILLER --port "$port" --log "$T/successor.log" "$@" -- \
	    "$HTTPD" --control "$CONTROL" $_args --tag "$_name" >"$T/kill.out" 2>&1 ||
	    fail "$_name: $(cat "$T/kill.out")"
	read -r K_PID _ K_OFFER_MS K_READY_MS K_HELD _ <"$T/kill.out"
	[ -n "$K_HELD" ] || fail "$_name: no result from the helper: $(cat "$T/kill.out")"
}

# rolled_back: after a kill after ready, v1 rolls back and serves with
# the fds it had; the kill is counted.
rolled_back() {
	wait_for 30 logged v1 "rolled back: successor pid $K_PID vanished" ||
	    fail "v1 did not roll back after pid $K_PID was killed after ready"
	wait_for 60 v1_settled "$base_fds" ||
	    fail "after pid $K_PID was killed after ready, v1 does not serve" \
	    "with $base_fds fds ($(fd_count "$v1"))"
	late=$((late + 1))
	held=$((held + K_HELD))
}

late=0 held=0
start_load "$url"
wait_for 60 has_connections 65 || fail "wrk never made its 64 connections"
wait_for 30 v1_settled "$(fd_count "$v1")"
base_fds=$(fd_count "$v1")

# note_times: the shortest exec to ready and offer to ready seen so far,
# the bounds of the kills before ready.
note_times() {
	ready_ms=$(min "$K_READY_MS" "$ready_ms")
	offer_ms=$(min "$(minus "$K_READY_MS" "$K_OFFER_MS")" "$offer_ms")
}

# After ready.
fractions "$kills_after" >"$T/after"
ready_ms=- offer_ms=- relistens=0 i=0
while [ "$i" -lt "$kills_after" ]; do
	i=$((i + 1))
	alive "$hold" || fail "v1 closed the idle connection that keeps it draining"
	if [ $((i % 2)) = 0 ]; then
		kill_one "after$i" "$http_only" --after "ready: serving" \
		    --ms "$(delay "$T/after" "$i" 200)"
		rolled_back
		relistens=$((relistens + 1))
		[ "$extra" = 0 ] || [ "$(grep -c "rollback: listening on x$extra=" \
		    "$T/v1.log")" = "$relistens" ] ||
		    fail "v1 did not listen again on what pid $K_PID retired"
		continue
	fi
	kill_one "after$i" "$args" --after "ready: serving" \
	    --ms "$(delay "$T/after" "$i" 200)"
	rolled_back
	note_times
done
! grep -E "rollback: .*(listens on .* now|cannot)|cannot keep" "$T/v1.log" ||
    fail "v1 lost the address of a listener it had retired, at a rollback"
stop_wrk after-ready
failed_after=$(wrk_failed)
log "after ready: $late kills; exec to ready took at least $ready_ms ms," \
    "offer to ready $offer_ms ms; $(grep '^totals' "$T/wrk-after-ready.out")"

# Before ready.
start_load "$url"
wait_for 60 v1_settled "$base_fds" ||
    fail "v1 does not hold $base_fds fds with wrk's 64 connections ($(fd_count "$v1"))"
fractions $((kills_before * 2)) >"$T/before"
n=0 tries=0 before_hello=0 in_offer=0 had_offer=0
late_before=$late held_before=$held
while [ "$n" -lt "$kills_before" ]; do
	tries=$((tries + 1))
	[ "$tries" -le $((kills_before * 2)) ] ||
	    fail "$tries kills, only $n of them before ready"
	if [ $((tries % 2)) = 1 ]; then
		kill_one "before$tries" "$args" \
		    --ms "$(delay "$T/before" "$tries" "$ready_ms")"
	else
		kill_one "before$tries" "$args" --after "taking over from" \
		    --ms "$(delay "$T/before" "$tries" "$offer_ms")"
	fi
	wait_for 60 v1_settled "$base_fds" ||
	    fail "after pid $K_PID was killed, v1 does not serve with" \
	    "$base_fds fds ($(fd_count "$v1"))"
	if logged v1 "successor pid $K_PID ready"; then
		rolled_back
		note_times
		continue
	fi
	[ "$K_READY_MS" = - ] ||
	    fail "pid $K_PID logged ready, but v1 did not: $(cat "$T/kill.out")"
	[ "$K_HELD" = 0 ] ||
	    fail "pid $K_PID held $K_HELD connections before ready"
	if logged v1 "successor pid $K_PID went away before ready"; then
		in_offer=$((in_offer + 1))
	else
		! logged v1 "successor pid $K_PID " ||
		    fail "pid $K_PID: v1 logged it but not its end"
		before_hello=$((before_hello + 1))
	fi
	[ "$K_OFFER_MS" = - ] || had_offer=$((had_offer + 1))
	n=$((n + 1))
done
alive "$hold" || fail "v1 closed the idle connection that kept it draining"
kill "$hold"

# A real successor takes over normally, still under load.
# shellcheck disable=SC2086
upgrade "$v1" v2 $args --tag v2
body_has "$url" "pid=$NEW_PID tag=v2 gen=2" || fail "v2 does not serve $url"
stop_wrk before-ready
failed_before=$(wrk_failed)
log "before ready: $n kills: $before_hello before v1 had a hello," \
    "$in_offer during the offer ($had_offer after the successor had it);" \
    "$((late - late_before)) more landed after ready;" \
    "$(grep '^totals' "$T/wrk-before-ready.out")"
[ "$failed_before" -le $((held - held_before)) ] ||
    fail "$failed_before requests failed while successors were killed" \
    "before ready; those killed after ready had accepted" \
    "$((held - held_before)) connections"
[ "$failed_after" -le "$held_before" ] ||
    fail "$failed_after requests failed while successors were killed" \
    "after ready, more than the $held_before connections they had accepted"
log "after ready: $late kills, all rolled back; the killed successors had" \
    "accepted $held connections; $((failed_after + failed_before))" \
    "requests failed"
pass
