#!/bin/bash
# valgrind memcheck over a whole takeover and drain. handoff-httpd v1 runs
# under memcheck, serves keep-alive clients and a request that the test
# holds until v2 serves, and sees a
# successor (tests/peer.py) vanish after the offer; v2, also under
# memcheck, takes over; v1 drains and exits 0. handoffctl status and stop,
# under memcheck too, then stop v2 while a slow request outlives its drain
# deadline (the hammer). Each run exits 0 with no memcheck error, no
# definite leak and no fd open at exit that it did not inherit. The
# servers find their control socket themselves ($RUNTIME_DIRECTORY).
# Skipped in a sanitizer build (ASan and valgrind do not mix), or when
# valgrind is missing and cannot be installed.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

sanitized && skip "built with -fsanitize: ASan and valgrind do not mix"
install_package valgrind valgrind

# memcheck NAME PROGRAM ARGS...: replaces this (sub)shell with PROGRAM (a
# libtool wrapper or a binary) under memcheck, so that the pid stays the
# program's; memcheck exits 99 on any error or definite leak. Its report
# goes to $T/NAME.vg.log.
memcheck() {
	_vname=$1
	shift
	exec "$top_builddir/libtool" --mode=execute valgrind --tool=memcheck \
	    --leak-check=full --errors-for-leak-kinds=definite \
	    --error-exitcode=99 --track-fds=yes --num-callers=30 \
	    --log-file="$T/$_vname.vg.log" "$@"
}

# memcheck_clean NAME: NAME's report is complete, counts no error, and
# every fd still open at exit was inherited.
memcheck_clean() {
	_report="$T/$1.vg.log"
	grep -q 'FILE DESCRIPTORS: .* at exit' "$_report" &&
	    grep -q 'ERROR SUMMARY: ' "$_report" ||
	    fail "no complete memcheck report for $1"
	grep -q 'ERROR SUMMARY: 0 errors' "$_report" ||
	    fail "memcheck: $1: $(grep 'ERROR SUMMARY' "$_report")"
	# Each "Open ... N:" is followed by where it was opened, or by
	# "<inherited from parent>".
	_open=$(awk '/^==[0-9]+== Open / { fd = $0; next }
	    fd != "" { if ($0 !~ /<inherited from parent>/) print fd; fd = "" }' \
	    "$_report")
	[ -z "$_open" ] || fail "$1 left fds open at exit: $_open"
	log "memcheck: $1: no error, no definite leak, no fd left open"
}

# vg_serve NAME ARGS...: handoff-httpd ARGS under memcheck in the
# background, logging to $T/NAME.log; waits until it answers status.
vg_serve() {
	_sname=$1
	shift
	(memcheck "$_sname" "$HTTPD" "$@") >"$T/$_sname.log" 2>&1 &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
	wait_for 120 is_serving "$LAST_PID" ||
	    fail "$_sname (pid $LAST_PID) never served on $CONTROL under memcheck"
}

# client N: batches of 20 GETs, each batch on one keep-alive connection,
# until $T/stop exists (100 batches at most); one status code a line.
client() {
	_n=$1 _b=0
	while [ "$_b" -lt 100 ] && [ ! -e "$T/stop" ]; do
		set --
		while [ "$#" -lt 40 ]; do
			set -- "$@" -o /dev/null "$url"
		done
		curl -sS --max-time 120 -w '%{http_code}\n' "$@" ||
		    echo "curl exit $?"
		_b=$((_b + 1))
	done >"$T/client-$_n.out" 2>&1
}

# idle: the server on $CONTROL counts no connection.
idle() { [ "$(status_field connections)" = 0 ]; }

export RUNTIME_DIRECTORY="$T"
CONTROL="$T/handoff-httpd.sock"
port=$(free_port)
url="http://127.0.0.1:$port/"
listen="http=tcp://127.0.0.1:$port"

vg_serve v1 --listen "$listen" --tag v1 --drain-timeout 120
v1=$LAST_PID
body_has "$url" "pid=$v1 tag=v1" || fail "v1 does not answer $url"

# A successor that vanishes after the offer: v1 frees it and serves on.
if /usr/bin/python3 -c 'import jsonschema' 2>/dev/null; then
	use_peer
	$PEER successor --control "$CONTROL" --stop-after offer --then close \
	    --timeout 60 >"$T/peer.out" 2>&1 ||
	    fail "peer successor: $(tail -n 3 "$T/peer.out")"
	wait_for 60 logged v1 "went away before ready: still serving" ||
	    fail "v1 never logged the vanished successor"
	is_serving "$v1" || fail "v1 does not serve after the vanished successor"
else
	log "no jsonschema for tests/peer.py: no successor vanishing after the offer"
fi

# In flight across the takeover: a held request, then keep-alive clients.
wait_for 60 idle || fail "v1 never saw its first connections close"
hold held1
wait_for 60 has_connections 1 || fail "the held request never reached v1"
clients=""
for i in 1 2 3; do
	client "$i" &
	clients="$clients $!"
	PIDS="$PIDS $!"
done
wait_for 60 grep -q '^200$' "$T/client-3.out" || fail "client 3 got no answer"

vg_serve v2 --listen "$listen" --tag v2 --drain-timeout 3 --no-migrate
v2=$LAST_PID
alive "$v1" || fail "v1 exited with a held request in flight"
release "$held1" "$v1"
reap_ok 180 "$v1" "v1 under memcheck, draining"
logged v1 "released to pid $v2" || fail "v1 did not log its release to v2"
logged v1 "hammered" && fail "v1 was hammered instead of draining"
memcheck_clean v1

body_has "$url" "pid=$v2 tag=v2" || fail "v2 does not answer $url"
touch "$T/stop"
for c in $clients; do
	reap 180 "$c" "client"
done
answers=$(cat "$T"/client-*.out | grep -c '^200$')
others=$(cat "$T"/client-*.out | grep -cv '^200$')
[ "$others" = 0 ] || fail "clients: $others failures:" \
    "$(cat "$T"/client-*.out | grep -v '^200$' | sort | uniq -c)"
log "clients: $answers answers across the takeover, none failed"

(memcheck ctl-status "$CTL" status --control "$CONTROL") >"$T/status.out" 2>&1 ||
    fail "handoffctl status: $(cat "$T/status.out")"
grep -q "^pid $v2  generation 2  tag v2" "$T/status.out" ||
    fail "status does not show v2: $(cat "$T/status.out")"
memcheck_clean ctl-status

# Stopped with a request that outlives the drain deadline: the hammer.
wait_for 60 idle || fail "v2 never saw the clients' connections close"
curl -sS --max-time 120 -o /dev/null "${url}slow?ms=600000" \
    >"$T/slow2.out" 2>&1 &
slow2=$!
PIDS="$PIDS $slow2"
wait_for 60 has_connections 1 || fail "the slow request never reached v2"
(memcheck ctl-stop "$CTL" stop --control "$CONTROL" --timeout 120) \
    >"$T/stop.out" 2>&1 || fail "handoffctl stop: $(cat "$T/stop.out")"
memcheck_clean ctl-stop
reap_ok 60 "$v2" "v2 under memcheck, stopped"
logged v2 "hammered: drain deadline of 3000 ms passed" ||
    fail "v2 was not hammered"
memcheck_clean v2
reap 60 "$slow2" "slow request cut by the hammer"
pass
