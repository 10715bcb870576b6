#!/bin/sh
# A successor that cannot bind a port (another process holds it) exits
# non-zero with a one-line reason naming the address; the incumbent keeps
# serving, unchanged; a correct successor then takes over.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

# shellcheck disable=SC2046
set -- $(free_ports 2)
port=$1 held=$2
url="http://127.0.0.1:$port/"
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1
v1=$LAST_PID

# Something else listens on $held until cleanup kills it.
python3 -c 'import signal, socket, sys
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("holding", flush=True); signal.pause()' "$held" >"$T/holder.out" 2>&1 &
holder=$!
PIDS="$PIDS $holder"
wait_for 30 grep -q holding "$T/holder.out" || fail "cannot hold port $held"

start_httpd bad --listen "http=tcp://127.0.0.1:$port" \
    --listen "extra=tcp://127.0.0.1:$held" --tag bad
bad=$LAST_PID
reap 60 "$bad" "failing successor"
[ "$STATUS" != 0 ] || fail "the failing successor exited 0"
log "failing successor exited $STATUS"
# Its own reason: one line "handoff-httpd: ..." naming the held address.
reasons=$(grep -c '^handoff-httpd: ' "$T/bad.log")
[ "$reasons" = 1 ] || fail "$reasons reason lines from the failing successor, want 1"
grep '^handoff-httpd: ' "$T/bad.log" | grep -q "127.0.0.1:$held" ||
    fail "the reason does not name 127.0.0.1:$held: $(grep '^handoff-httpd: ' "$T/bad.log")"
log "reason: $(grep '^handoff-httpd: ' "$T/bad.log")"

gone "$v1" && fail "v1 exited after a failed takeover"
is_serving "$v1" || fail "status no longer names v1 (pid $v1)"
[ "$(status_field state)" = serving ] ||
    fail "v1's state is $(status_field state), want serving"
body_has "$url" "pid=$v1 tag=v1" || fail "v1 no longer serves $url"
wait_for 30 grep -Eq "successor pid $bad (went away before ready|gave up)" \
    "$T/v1.log" || fail "v1 did not log that pid $bad went away or gave up"
logged v1 "released to" && fail "v1 released to the failing successor"

upgrade "$v1" v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
body_has "$url" "pid=$NEW_PID tag=v2 gen=2" ||
    fail "the correct successor does not serve $url"
pass
