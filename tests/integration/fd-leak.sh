#!/bin/sh
# 20 successive upgrades: each successor serves, every predecessor is
# gone, and once a takeover has finished every generation holds exactly
# as many fds as the first successor did.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

UPGRADES=20

fd_count_is() { [ "$(fd_count "$1")" = "$2" ]; }
port=$(free_port)
url="http://127.0.0.1:$port/"
args="--listen http=tcp://127.0.0.1:$port --listen unix=unix:$T/web.sock"
# shellcheck disable=SC2086
serve v1 $args --tag v1
pid=$LAST_PID
old=$pid
counts=""
first=""
i=2
while [ "$i" -le $((UPGRADES + 1)) ]; do
	# shellcheck disable=SC2086
	upgrade "$pid" "v$i" $args --tag "v$i"
	old="$old $pid"
	pid=$NEW_PID
	# Finished: it has seen its predecessor's connection close.
	wait_for 30 logged "v$i" "predecessor pid .* has exited" ||
	    fail "v$i (pid $pid) never saw its predecessor exit"
	# Counted before any client connects: the status queries that found
	# it serving are closed by the server itself once answered.
	[ -z "$first" ] || wait_for 30 fd_count_is "$pid" "$first"
	n=$(fd_count "$pid")
	counts="$counts $n"
	[ -n "$first" ] || first=$n
	[ "$n" = "$first" ] || fail "v$i (gen $i) holds $n fds, the first" \
	    "successor $first: $(ls -l "/proc/$pid/fd")"
	body_has "$url" "pid=$pid tag=v$i gen=$i" || fail "v$i does not serve $url"
	curl -fsS --max-time 5 --unix-socket "$T/web.sock" http://x/ |
	    grep -q "pid=$pid " || fail "v$i does not serve unix:$T/web.sock"
	i=$((i + 1))
done
log "fd counts after each upgrade:$counts"
for p in $old; do
	gone "$p" && ! [ -e "/proc/$p" ] || fail "old pid $p still exists"
done
is_serving "$pid" || fail "the last successor (pid $pid) does not answer status"
pass
