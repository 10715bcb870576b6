#!/bin/sh
# A udp:// listener is served: each datagram gets one back, "pid=P tag=T
# gen=G " and its own bytes. Across a takeover none is lost or answered
# twice (the socket is handed over, never closed: the incumbent stops
# reading at released and what is queued is the successor's), and
# afterwards the successor answers all.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

port=$(free_port)
uport=$(free_port)
serve v1 --listen "http=tcp://127.0.0.1:$port" \
    --listen "dns=udp://127.0.0.1:$uport" --tag v1
v1=$LAST_PID

python3 "$top_srcdir/tests/udp-client.py" 127.0.0.1 "$uport" \
    "$T/stop-client" >"$T/client.out" 2>&1 &
client=$!
PIDS="$PIDS $client"
wait_for 60 grep -q "^first answer" "$T/client.out" ||
    fail "no answer to the first datagram: $(cat "$T/client.out")"

serve v2 --listen "http=tcp://127.0.0.1:$port" \
    --listen "dns=udp://127.0.0.1:$uport" --tag v2
v2=$LAST_PID
reap_ok 60 "$v1" "v1"
touch "$T/stop-client"
reap 120 "$client" "udp client"
[ "$STATUS" = 0 ] || fail "udp client failed: $(cat "$T/client.out")"
log "$(tr '\n' ';' <"$T/client.out")"
grep -q "^sent [0-9]* answered [0-9]* lost 0 wrong 0\$" "$T/client.out" ||
    fail "datagrams lost or answered wrongly: $(cat "$T/client.out")"
n1=$(sed -n "s/^pid $v1 tag v1 gen 1: //p" "$T/client.out")
n2=$(sed -n "s/^pid $v2 tag v2 gen 2: //p" "$T/client.out")
[ "${n1:-0}" -gt 0 ] || fail "v1 answered no datagram: $(cat "$T/client.out")"
[ "${n2:-0}" -ge 50 ] || fail "v2 answered ${n2:-0} datagrams, want 50 or more"
others=$(grep -c "^pid " "$T/client.out")
[ "$others" = 2 ] || fail "answers from other than v1 and v2: $(cat "$T/client.out")"
# An unrelated server (another control socket) cannot bind the same
# UDP address and take its datagrams: it fails as for TCP.
"$HTTPD" --control "$T/other.sock" --listen "dns=udp://127.0.0.1:$uport" \
    --tag other >"$T/other.log" 2>&1 &
other=$!
PIDS="$PIDS $other"
reap 30 "$other" "the other server"
[ "$STATUS" = 1 ] || fail "a second server bound udp port $uport" \
    "(exit $STATUS): $(tail -n 2 "$T/other.log")"
grep -q "Address already in use" "$T/other.log" ||
    fail "the other server: $(tail -n 2 "$T/other.log")"
grep -Eq "adopted 3 \((dns,http|http,dns),state\)" "$T/v2.log" ||
    fail "v2 did not adopt the udp listener: $(grep 'took over' "$T/v2.log")"
pass
