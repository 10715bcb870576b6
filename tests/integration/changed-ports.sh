#!/bin/bash
# A successor with different --listen options: a port added, one moved
# (same name, another port) and one removed. The added and moved ports
# serve from the successor while the incumbent still drains a request the
# test holds; the moved and removed ports refuse connections once the
# incumbent has exited.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

# shellcheck disable=SC2046
set -- $(free_ports 5)
keep=$1 moved_from=$2 removed=$3 moved_to=$4 added=$5
u() { echo "http://127.0.0.1:$1/"; }

serve v1 --listen "keep=tcp://127.0.0.1:$keep" \
    --listen "moved=tcp://127.0.0.1:$moved_from" \
    --listen "removed=tcp://127.0.0.1:$removed" --tag v1 --drain-timeout 60
v1=$LAST_PID
for p in $keep $moved_from $removed; do
	body_has "$(u "$p")" "pid=$v1 " || fail "v1 does not serve port $p"
done

# A held request keeps v1 draining while the successor serves.
hold held "$keep"
wait_for 30 has_connections 1 || fail "the held request never reached v1"

serve v2 --listen "keep=tcp://127.0.0.1:$keep" \
    --listen "moved=tcp://127.0.0.1:$moved_to" \
    --listen "added=tcp://127.0.0.1:$added" --tag v2
v2=$LAST_PID
gone "$v1" && fail "v1 exited with a held request still in flight"
for p in $keep $moved_to $added; do
	body_has "$(u "$p")" "pid=$v2 tag=v2" ||
	    fail "v2 does not serve port $p while v1 drains"
done

alive "$v1" || fail "v1 exited before its held request was answered"
release "$held" "$v1"
grep -q "pid=$v1 tag=v1" "$T/held.$held" ||
    fail "held request not answered by v1: $(cat "$T/held.$held")"
reap_ok 30 "$v1" v1
for p in $keep $moved_to $added; do
	body_has "$(u "$p")" "pid=$v2 tag=v2" ||
	    fail "v2 does not serve port $p after v1 exited"
done
refuses "$(u "$moved_from")" ||
    fail "port $moved_from (moved away) still accepts after v1 exited"
refuses "$(u "$removed")" ||
    fail "port $removed (removed) still accepts after v1 exited"

want="gen 2: took over from pid $v1: adopted 2 (keep,state); added 2 (moved,added); retired 2 (moved,removed)\$"
logged v2 "$want" || fail "v2 log lacks \"$want\": $(grep 'took over' "$T/v2.log")"
want="successor pid $v2 ready: adopted 2 (keep,state); added 2 (moved,added); retired 2 (moved,removed)\$"
logged v1 "$want" || fail "v1 log lacks \"$want\": $(grep 'ready:' "$T/v1.log")"
pass
