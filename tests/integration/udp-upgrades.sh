#!/bin/sh
# Datagrams at a steady rate across 10 upgrades of handoff-httpd: each is
# answered exactly once, by the generation that held the socket when it
# was read. tests/progs/udpseq sends numbered datagrams (2000 a second,
# up to 100000, until the upgrades are done and 500 more) and logs each
# answer's number, pid and generation in the order they arrive. After
# each upgrade, once the old generation has logged "released", the test
# has the sender read every answer already queued and log a mark: no
# answer of that generation may come after its mark (it stops reading
# at released; its last answers were sent before it said so), every
# generation answers under its own pid, and each one answers some.
#
# The sender never has more than 32 datagrams unanswered (it waits for
# answers before it sends more), so on loopback no socket buffer can
# overflow however busy the machine: a datagram not answered is one
# handoff lost, never the kernel. Each upgrade starts once the newest
# generation has answered 20, so every generation serves some.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

[ -x "$top_builddir/tests/progs/udpseq" ] ||
    fail "tests/progs/udpseq is not built (make check builds it)"
UPGRADES=10

uport=$(free_port)
LISTEN="--listen dns=udp://127.0.0.1:$uport --drain-timeout 30"

# shellcheck disable=SC2086
serve v1 $LISTEN --tag v1
prev=$LAST_PID
pids=$prev
start_udpseq "$uport" 32
wait_for 60 answered_by "$prev" 20 || fail "no answers from v1"

i=2
while [ "$i" -le $((UPGRADES + 1)) ]; do
	# shellcheck disable=SC2086
	serve "v$i" $LISTEN --tag "v$i"
	new=$LAST_PID
	pids="$pids $new"
	wait_for 60 logged "v$((i - 1))" "released to pid $new" ||
	    fail "v$((i - 1)) never released to v$i (pid $new)"
	kill -USR1 "$SENDER" || fail "the sender ended: $(cat "$T/udpseq.log")"
	wait_for 60 grep -qx "mark $((i - 1))" "$T/answers" ||
	    fail "the sender wrote no mark $((i - 1))"
	reap_ok 60 "$prev" "v$((i - 1))"
	wait_for 60 answered_by "$new" 20 || fail "v$i (pid $new) answers nothing"
	prev=$new
	i=$((i + 1))
done

udpseq_done
sent=$(sed -n 's/^sent \([0-9]*\) .*/\1/p' "$T/udpseq.out")
awk -v pids="$pids" -v sent="$sent" '
BEGIN { n = split(pids, pid, " ") }
$1 == "mark" { released = $2; next }
{
	if ($3 <= released)
		bad = bad sprintf("datagram %s answered by gen %s after its " \
		    "released; ", $1, $3)
	if ($3 < 1 || $3 > n || pid[$3] != $2)
		bad = bad sprintf("datagram %s answered by pid %s gen %s; ",
		    $1, $2, $3)
	if (seen[$1]++)
		bad = bad sprintf("datagram %s answered twice; ", $1)
	by[$3]++
}
END {
	for (s = 0; s < sent; s++)
		if (!(s in seen))
			bad = bad sprintf("datagram %d never answered; ", s)
	for (g = 1; g <= n; g++)
		if (!by[g])
			bad = bad sprintf("gen %d answered nothing; ", g)
	if (bad != "") {
		print substr(bad, 1, 2000)
		exit 1
	}
	for (g = 1; g <= n; g++)
		printf "gen %d: %d; ", g, by[g]
}' "$T/answers" >"$T/check.out" || fail "$(cat "$T/check.out")"
log "answers by generation: $(cat "$T/check.out")"
"$CTL" stop --control "$CONTROL" >/dev/null || fail "handoffctl stop failed"
reap_ok 60 "$prev" "v$((UPGRADES + 1))"
pass
