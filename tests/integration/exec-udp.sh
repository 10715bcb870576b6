#!/bin/sh
# handoff-exec passes a udp:// listener to a socket-activated program
# (tests/progs/udpecho, which knows nothing of libhandoff: LISTEN_FDS,
# READY=1 to NOTIFY_SOCKET, SIGTERM stops its reading) and upgrades it
# three times with --notify while tests/progs/udpseq keeps 16 numbered
# datagrams in flight: every datagram is answered exactly once, by one of
# the children, each child answers some, each old child stops on its
# signal and exits 0, and each old handoff-exec exits 0.
#
# The sender never has more than 16 datagrams unanswered, so no socket
# buffer can overflow on loopback: a datagram not answered is one the
# programs lost, never the kernel.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

EXEC="$top_builddir/tools/handoff-exec"
ECHO="$top_builddir/tests/progs/udpecho"
[ -x "$ECHO" ] && [ -x "$top_builddir/tests/progs/udpseq" ] ||
    fail "tests/progs/udpecho or udpseq is not built (make check builds them)"

uport=$(free_port)

# start_exec NAME: handoff-exec (--notify, no rollback window) running
# udpecho on dns=udp://127.0.0.1:$uport; pid in $LAST_PID.
start_exec() {
	"$EXEC" --control "$CONTROL" --listen "dns=udp://127.0.0.1:$uport" \
	    --notify --rollback-window 0 --drain-timeout 30 --tag "$1" \
	    -- "$ECHO" >"$T/$1.log" 2>&1 &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
}

child_of() {
	sed -n 's/.*started child pid \([0-9]*\):.*/\1/p' "$T/$1.log" | tail -n 1
}

start_exec v1
prev=$LAST_PID
wait_for 60 is_serving "$prev" || fail "v1 (pid $prev) never served"
wait_for 30 logged v1 "is ready (READY=1)" || fail "v1's child sent no READY=1"
child=$(child_of v1)
children=$child
logged v1 "udpecho: pid $child serves 1 datagram sockets (dns)" ||
    fail "v1's child did not get the udp listener as LISTEN_FDS"

start_udpseq "$uport" 16
wait_for 60 answered_by "$child" 20 || fail "no answers from v1's child"

for v in v2 v3 v4; do
	start_exec "$v"
	new=$LAST_PID
	wait_for 60 is_serving "$new" || fail "$v (pid $new) never served"
	child=$(child_of "$v")
	children="$children $child"
	logged "$v" "udpecho: pid $child serves 1 datagram sockets (dns)" ||
	    fail "$v's child did not get the udp listener"
	reap_ok 60 "$prev" "handoff-exec before $v"
	# The new child alone reads from here: it answers before the next.
	wait_for 60 answered_by "$child" 20 ||
	    fail "$v's child (pid $child) answers nothing"
	alive "$SENDER" || fail "the sender ended before $v: $(cat "$T/udpseq.log")"
	prev=$new
done

udpseq_done
for c in $children; do
	answered_by "$c" 1 || fail "child $c answered nothing"
done
[ "$(grep -c '^pid ' "$T/udpseq.out")" = 4 ] ||
    fail "answers from other than the 4 children: $(cat "$T/udpseq.out")"
for v in v1 v2 v3; do
	c=$(child_of "$v")
	logged "$v" "udpecho: pid $c stops" || fail "$v's child did not stop"
	logged "$v" "child pid $c exited with status 0" ||
	    fail "$v's child: $(grep "child pid $c" "$T/$v.log")"
done
"$CTL" stop --control "$CONTROL" >/dev/null || fail "handoffctl stop failed"
reap_ok 60 "$prev" "v4"
pass
