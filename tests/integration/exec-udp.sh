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
SEQ="$top_builddir/tests/progs/udpseq"
[ -x "$ECHO" ] && [ -x "$SEQ" ] ||
    fail "$ECHO or $SEQ is not built (make check builds them)"

uport=$(python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

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

# answered_by PID N: the sender's log has N answers or more from PID.
answered_by() {
	[ "$(awk -v p="$1" '$2 == p { n++ } END { print n + 0 }' \
	    "$T/answers")" -ge "$2" ]
}

start_exec v1
prev=$LAST_PID
wait_for 60 is_serving "$prev" || fail "v1 (pid $prev) never served"
wait_for 30 logged v1 "is ready (READY=1)" || fail "v1's child sent no READY=1"
child=$(child_of v1)
children=$child
logged v1 "udpecho: pid $child serves 1 datagram sockets (dns)" ||
    fail "v1's child did not get the udp listener as LISTEN_FDS"

"$SEQ" -r 2000 -w 16 -n 100000 -s "$T/stop" -a 500 -t 10000 \
    -l "$T/answers" 127.0.0.1 "$uport" >"$T/seq.out" 2>"$T/seq.log" &
sender=$!
PIDS="$PIDS $sender"
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
	alive "$sender" || fail "the sender ended before $v: $(cat "$T/seq.log")"
	prev=$new
done

touch "$T/stop"
reap 120 "$sender" "udpseq"
[ "$STATUS" = 0 ] || fail "udpseq exited $STATUS: $(cat "$T/seq.log")"
log "$(tr '\n' ';' <"$T/seq.out")"
grep -q '^sent [0-9]* answered [0-9]* lost 0 duplicate 0 wrong 0 ' \
    "$T/seq.out" || fail "datagrams lost or answered twice: $(cat "$T/seq.out")"
for c in $children; do
	answered_by "$c" 1 || fail "child $c answered nothing"
done
[ "$(grep -c '^pid ' "$T/seq.out")" = 4 ] ||
    fail "answers from other than the 4 children: $(cat "$T/seq.out")"
for v in v1 v2 v3; do
	c=$(child_of "$v")
	logged "$v" "udpecho: pid $c stops" || fail "$v's child did not stop"
	logged "$v" "child pid $c exited with status 0" ||
	    fail "$v's child: $(grep "child pid $c" "$T/$v.log")"
done
"$CTL" stop --control "$CONTROL" >/dev/null || fail "handoffctl stop failed"
reap_ok 60 "$prev" "v4"
pass
