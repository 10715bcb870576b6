#!/bin/bash
# handoff-httpd's served= count lives in a sealed memfd handed from each
# generation to the next (tools/httpd-state.c):
# 1. across 5 upgrades, each with a GET / held on the old generation and
#    answered by it while it drains, every served= is one more than the
#    one before, and the last is the number of GET / this test made
#    (GET /slow shows the count and adds nothing); a successor started
#    with another --state-mb keeps the size it is given and says so;
# 2. a real successor that counted and was killed while its predecessor
#    drained: the predecessor rolls back and counts on from what the
#    dead one left, and hands that on to the next successor;
# 3. an incumbent with no state (--no-state, as before state existed):
#    its successor starts a new count and says why; a --no-state
#    successor of a stateful one says no served= at all;
# 4. state offered by tests/peer.py as incumbent: a good one (a sealed
#    memfd with our header, served=41) is counted on; a pipe, an unsealed
#    memfd, one too small for the header, and ones with another version
#    or magic are each refused with their reason, and the successor
#    serves a new count.
# Every in-flight request is one the test holds; no step races a clock,
# and --no-migrate keeps it with the generation that holds it.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

use_peer
no_migrate

read -r port p3 p4 <<<"$(free_ports 3)"
url="http://127.0.0.1:$port"
TOTAL=0		# GET / made against $CONTROL's servers so far

# served_is PID N: GET / is answered by PID with served=N; counts it.
served_is() {
	_b=$(get "$url/") || fail "GET $url/ failed"
	TOTAL=$((TOTAL + 1))
	case $_b in
	*"pid=$1 "*" served=$2") ;;
	*) fail "GET / #$TOTAL: want pid=$1 ... served=$2, got: $_b" ;;
	esac
}

# released_served FD PID N: completes the GET / held on FD; PID answers
# it with served=N.
released_served() {
	release "$1" "$2"
	TOTAL=$((TOTAL + 1))
	grep -q "^pid=$2 .* served=$3\$" "$T/held.$1" ||
	    fail "held GET / #$TOTAL: want pid=$2 served=$3, got:" \
	    "$(tail -n 1 "$T/held.$1")"
}

args="--listen http=tcp://127.0.0.1:$port --drain-timeout 60"

# 1. Five upgrades.
serve v1 $args --tag v1 --state-mb 2
old=$LAST_PID
logged v1 "state: new, 2 MiB, served=0" || fail "v1 did not make 2 MiB of state"
served_is "$old" 1
served_is "$old" 2
for i in 2 3 4 5 6; do
	hold held
	wait_for 30 has_connections 1 || fail "the held GET / never reached v$((i - 1))"
	if [ "$i" = 3 ]; then
		serve "v$i" $args --tag "v$i" --state-mb 3
	else
		serve "v$i" $args --tag "v$i"
	fi
	new=$LAST_PID
	logged "v$i" "state: adopted the predecessor's, 2 MiB, served=$TOTAL" ||
	    fail "v$i did not adopt v$((i - 1))'s state at served=$TOTAL"
	served_is "$new" $((TOTAL + 1))
	alive "$old" || fail "v$((i - 1)) exited with a GET / held"
	released_served "$held" "$old" $((TOTAL + 1))
	served_is "$new" $((TOTAL + 1))
	reap_ok 60 "$old" "v$((i - 1)), drained"
	old=$new
done
logged v3 "(--state-mb 3 applies to a new state only)" ||
    fail "v3 did not say it kept 2 MiB: $(grep 'state:' "$T/v3.log")"
# GET /slow with no delay (ms=0): a read of served= that does not count.
get "$url/slow?ms=0" | grep -q "^pid=$old .* served=$TOTAL\$" ||
    fail "GET /slow does not show served=$TOTAL, or counted itself"
served_is "$old" $((TOTAL + 1))
log "5 upgrades: served=$TOTAL after $TOTAL GET /, 5 of them held and" \
    "answered by a draining generation"

# 2. Rollback: v7 counts, then dies while v6 drains a held GET /.
v6=$old
hold held
wait_for 30 has_connections 1 || fail "the held GET / never reached v6"
serve v7 $args --tag v7
v7=$LAST_PID
served_is "$v7" $((TOTAL + 1))
served_is "$v7" $((TOTAL + 1))
kill -KILL "$v7"
wait_exit "$v7" 2>/dev/null
wait_for 30 logged v6 "rolled back: successor pid $v7 vanished" ||
    fail "v6 did not roll back after v7 was killed"
served_is "$v6" $((TOTAL + 1))
released_served "$held" "$v6" $((TOTAL + 1))
upgrade "$v6" v8 $args --tag v8
logged v8 "state: adopted the predecessor's, 2 MiB, served=$TOTAL" ||
    fail "v8 did not adopt the rolled-back state at served=$TOTAL"
served_is "$NEW_PID" $((TOTAL + 1))
"$CTL" stop --control "$CONTROL" >/dev/null || fail "handoffctl stop failed"
reap_ok 60 "$NEW_PID" v8
log "rollback: v6 counted on from what killed v7 left; served=$TOTAL"

# 3. An incumbent without state, then a successor without it.
CONTROL=$T/ctl-old.sock
url="http://127.0.0.1:$p3"
args="--listen http=tcp://127.0.0.1:$p3"
serve old $args --tag old --no-state
oldpid=$LAST_PID
get "$url/" | grep -q "^pid=$oldpid tag=old gen=1\$" ||
    fail "a --no-state server says more than pid= tag= gen=: $(get "$url/")"
upgrade "$oldpid" new $args --tag new
logged new "state: pid $oldpid offered none (a version without it); starting a new count" ||
    fail "no log of the missing state: $(grep 'state' "$T/new.log")"
TOTAL=0
served_is "$NEW_PID" 1
upgrade "$NEW_PID" nostate $args --tag nostate --no-state
get "$url/" | grep -q "^pid=$NEW_PID tag=nostate gen=3\$" ||
    fail "a --no-state successor says more than pid= tag= gen=: $(get "$url/")"
"$CTL" stop --control "$CONTROL" >/dev/null || fail "handoffctl stop failed"
reap_ok 60 "$NEW_PID" nostate

# usage errors
"$HTTPD" --state-mb 65537 >"$T/usage.out" 2>&1
[ $? = 2 ] && grep -q -- "--state-mb: \"65537\" is not a whole number from 0 to 65536" \
    "$T/usage.out" || fail "--state-mb 65537: $(cat "$T/usage.out")"
"$HTTPD" --state-mb 1 --no-state >"$T/usage.out" 2>&1
[ $? = 2 ] && grep -q -- "--state-mb and --no-state exclude each other" \
    "$T/usage.out" || fail "--state-mb with --no-state: $(cat "$T/usage.out")"

# 4. What tests/peer.py offers as "state".
url="http://127.0.0.1:$p4"
header() { # VERSION HEADER_SIZE SIZE SERVED [MAGIC]: our header, in hex
	python3 -c 'import struct, sys
v, h, s, n = (int(x) for x in sys.argv[1:5])
magic = sys.argv[5].encode() if len(sys.argv) > 5 else b"hoffstat"
print((magic + struct.pack("=IIQQ", v, h, s, n)).hex())' "$@"
}
# offered CASE WHAT: peer.py offers WHAT as "state" to a real successor,
# which then serves; stopped after the caller's checks by next_case.
offered() {
	CONTROL=$T/ctl-$1.sock
	$PEER incumbent --control "$CONTROL" --pass-fd "state=$2" \
	    >"$T/peer-$1.out" 2>&1 &
	peer=$!
	PIDS="$PIDS $peer"
	wait_for 30 grep -q '"event":"listening"' "$T/peer-$1.out" ||
	    fail "$1: peer.py never listened: $(cat "$T/peer-$1.out")"
	# No status query before the takeover: the peer takes one client.
	start_httpd "$1" --listen "http=tcp://127.0.0.1:$p4" --tag "$1"
	succ=$LAST_PID
	wait_for 30 logged "$1" "took over from pid $peer" ||
	    fail "$1: no takeover from peer.py: $(cat "$T/$1.log")"
	wait_for 30 is_serving "$succ" || fail "$1 (pid $succ) never served"
	reap 60 "$peer" "peer.py ($1)"
	[ "$STATUS" = 0 ] || fail "$1: peer.py exit $STATUS: $(tail -n 3 "$T/peer-$1.out")"
	grep -q '"event":"released","adopted":\["state"\]' "$T/peer-$1.out" ||
	    fail "$1: the successor did not take state: $(tail -n 3 "$T/peer-$1.out")"
}
next_case() {
	"$CTL" stop --control "$CONTROL" >/dev/null || fail "$1: handoffctl stop failed"
	reap_ok 60 "$succ" "$1"
}
# refused CASE WHAT REASON: WHAT is refused for REASON, and a new count
# served.
refused() {
	offered "$1" "$2"
	logged "$1" "state: refused the \"state\" fd offered ($3): $4; starting a new count" ||
	    fail "$1: no refusal for $4: $(grep 'state' "$T/$1.log")"
	logged "$1" "state: new, 4096 bytes, served=0" || fail "$1: no new state"
	get "$url/" | grep -q "^pid=$succ tag=$1 gen=2 served=1\$" ||
	    fail "$1: GET / says: $(get "$url/")"
	next_case "$1"
}

offered good "memfd:8192:sealed:$(header 1 32 8192 41)"
logged good "state: adopted the predecessor's, 8192 bytes, served=41" ||
    fail "good: not adopted: $(grep 'state' "$T/good.log")"
get "$url/" | grep -q "^pid=$succ tag=good gen=2 served=42\$" ||
    fail "good: GET / says: $(get "$url/")"
next_case good
memfd="/memfd:state (deleted)"
refused pipe pipe 'pipe:\[[0-9]*\]' "not a memfd (no seals to read)"
refused unsealed "memfd:4096:$(header 1 32 4096 41)" "$memfd" \
    "a memfd not sealed against resizing (seals 0x0): it could shrink under our mapping"
refused small "memfd:16:sealed:$(header 1 32 4096 41 | cut -c1-32)" "$memfd" \
    "16 bytes: not between the 32-byte header and 65536 MiB"
refused version "memfd:4096:sealed:$(header 2 32 4096 41)" "$memfd" \
    "state version 2; this version reads 1 only"
refused magic "memfd:4096:sealed:$(header 1 32 4096 41 notstate)" "$memfd" \
    "no handoff-httpd state header in it"
refused size "memfd:8192:sealed:$(header 1 32 4096 41)" "$memfd" \
    "its header says a 32-byte header and 4096 bytes, not 32 and the memfd's 8192"
pass
