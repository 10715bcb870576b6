#!/bin/sh
# wrk with 64 keep-alive connections while 10 successive upgrades happen
# (wrk runs until they are done, then is stopped): no socket error
# (connect, read, write, timeout), no non-2xx response. The connections
# migrate: each later generation was handed wrk's 64, and together they
# accepted only the final check's (no client reconnected).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

command -v wrk >/dev/null || skip "wrk is not installed"
load_with_upgrades 10
last=$LAST_PID
kill -TERM "$last"
reap_ok 30 "$last" "the last generation, stopped"
# v1 accepted wrk's 64 (and the one wrk opens first to test the
# address); the later ones only the final check's: nobody reconnected.
later=$(for i in 2 3 4 5 6 7 8 9 10 11; do cat "$T/v$i.log"; done |
    sed -n 's/.*exiting, .*; accepted \([0-9]*\), taken over [0-9]*$/\1/p' |
    awk '{ n += $1 } END { print n + 0 }')
log "connections accepted by v2 to v11: $later"
[ "$later" = 1 ] ||
    fail "v2 to v11 accepted $later connections, want 1 (the final check): clients reconnected"
for i in 2 3 4 5 6 7 8 9 10 11; do
	grep -q "exiting, .*; accepted [0-9]*, taken over 64\$" "$T/v$i.log" ||
	    fail "v$i was not handed wrk's 64 connections: $(grep exiting "$T/v$i.log")"
done
pass
