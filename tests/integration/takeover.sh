#!/bin/sh
# Starting the same command again takes over: the successor (a child of
# this shell, not of the incumbent) serves every request within a bound,
# status says generation 2, and the incumbent exits 0.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

port=$(free_port)
url="http://127.0.0.1:$port/"
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1
v1=$LAST_PID
body_has "$url" "pid=$v1 tag=v1 gen=1" || fail "v1 does not answer $url"

# Requests all through the takeover: each must succeed, from v1 or v2.
(
	i=0
	while [ "$i" -lt 400 ] && [ ! -e "$T/stop-client" ]; do
		get "$url" || { echo "request $i failed"; exit 1; }
		i=$((i + 1))
	done
	echo "$i requests"
) >"$T/client.out" 2>&1 &
client=$!
PIDS="$PIDS $client"

start=$(now_ms)
serve v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$LAST_PID
reap_ok 60 "$v1" "v1"
log "takeover done in $(( $(now_ms) - start )) ms"
touch "$T/stop-client"
reap 60 "$client" "request loop"
[ "$STATUS" = 0 ] || fail "a request failed during the takeover:" \
    "$(cat "$T/client.out")"
grep -q "tag=v2" "$T/client.out" || fail "no response from v2 during the" \
    "request loop: $(tail -n 3 "$T/client.out")"

i=0
while [ "$i" -lt 20 ]; do
	body=$(get "$url") || fail "GET $url failed after the takeover"
	case $body in
	"pid=$v2 tag=v2 gen=2 served="[0-9]*) ;;
	*) fail "response $i after the takeover: \"$body\", want pid=$v2 tag=v2 gen=2 served=N" ;;
	esac
	i=$((i + 1))
done

ppid=$(ppid_of "$v2")
[ "$ppid" = "$$" ] || fail "v2's parent is pid $ppid, want this shell ($$)"
"$CTL" status --control "$CONTROL" >"$T/status.out" ||
    fail "handoffctl status failed"
grep -q "^pid $v2  generation 2  tag v2  state serving" "$T/status.out" ||
    fail "status: $(cat "$T/status.out")"
grep -q "^predecessor pid $v1\$" "$T/status.out" ||
    fail "status does not name predecessor $v1: $(cat "$T/status.out")"
logged v2 "gen 2: taking over from pid $v1 (gen 1, tag \"v1\")" ||
    fail "v2 did not log 'taking over from pid $v1'"
logged v2 "gen 2: took over from pid $v1: adopted 2 (http,state); added 0; retired 0\$" ||
    fail "v2 did not log 'took over': $(grep 'took over' "$T/v2.log")"
logged v2 "gen 2: ready: serving" || fail "v2 did not log 'ready'"
logged v1 "gen 1: released to pid $v2\$" ||
    fail "v1 did not log 'released to pid $v2'"
logged v1 "gen 1: exiting" || fail "v1 did not log 'exiting'"
pass
