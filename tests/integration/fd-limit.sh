#!/bin/bash
# A server at its fd limit (issue 10, item 2). v1 runs with ulimit -n 32
# and gets 40 idle connections: its fd table fills. It says so once and
# pauses its HTTP listener, trying again every 100 ms, instead of logging
# an accept error in a loop; and an upgrade, the usual way out, works:
# the control socket takes v2's connection in with the fd it keeps spare,
# v2 takes over and serves (the connections still queued included), and
# v1 drains and exits 0.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

port=$(free_port)
url="http://127.0.0.1:$port"
(ulimit -n 32 && exec "$HTTPD" --control "$CONTROL" \
    --listen "http=tcp://127.0.0.1:$port" --tag v1 --drain-timeout 1) \
    >"$T/v1.log" 2>&1 &
v1=$!
PIDS="$PIDS $v1"
wait_for 15 logged v1 "ready: serving" || fail "v1 never served"

# Idle connections, more than the table holds: the kernel queues the rest.
for _ in $(seq 40); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to $port"
done
wait_for 15 grep -q 'accept' "$T/v1.log" || fail "v1 never ran out of fds"

start_httpd v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$LAST_PID
wait_for 15 logged v2 "released by pid $v1" ||
    fail "v2 was not released: $(tail -n 3 "$T/v2.log")"
logged v1 "control: accept: Too many open files: took pid $v2 (uid [0-9]*) in with the spare fd" ||
    fail "v1 does not say how it took v2 in"
reap_ok 15 "$v1" "v1, after v2 took over"
body_has "$url/" "pid=$v2 tag=v2 gen=2" || fail "v2 does not answer"

accept_lines=$(grep -c 'accept' "$T/v1.log")
[ "$accept_lines" -le 3 ] ||
    fail "v1 logged $accept_lines lines about accept: $(grep accept "$T/v1.log" | sort | uniq -c | head -n 5)"
logged v1 "accept on http: Too many open files; pausing the HTTP listeners, trying again every 100 ms" ||
    fail "v1 does not say why it pauses its listener"
pass
