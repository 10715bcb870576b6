#!/bin/bash
# --max-draining N: at most N older generations drain at once.
# Five upgrades with --max-draining 2, each incumbent holding a request
# (the test's, half sent): after each, at most 2 older generations are
# alive, the oldest beyond the cap logged why it was hammered, and status
# lists the 2 draining ones with their generation and tag. Then a sixth
# with --max-draining 0 hammers its predecessor at once, and the two older
# drainers with it.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

port=$(free_port)
url="http://127.0.0.1:$port"
listen="http=tcp://127.0.0.1:$port"
cap="--max-draining 2"

serve v1 --listen "$listen" --tag v1 --drain-timeout 120 $cap
pids=("" "$LAST_PID")
held=()		# held[g]: the request v$g drains
for g in 2 3 4 5 6; do
	hold h
	held[g - 1]=$h
	wait_for 30 has_connections 1 ||
	    fail "the held request never reached v$((g - 1))"
	ctl_upgrade "v$g" --listen "$listen" --drain-timeout 120 $cap
	pids+=("$NEW_PID")
	# Older than the 2 allowed: v(g-3) and before.
	for ((o = 1; o <= g - 3; o++)); do
		wait_for 60 gone "${pids[o]}" ||
		    fail "v$o (pid ${pids[o]}) still drains after v$g took over"
	done
	for ((o = g - 2; o >= 1 && o < g; o++)); do
		alive "${pids[o]}" ||
		    fail "v$o (pid ${pids[o]}) exited, though within the cap"
	done
done
for o in 1 2 3; do
	logged "v$o" "hammered: more than 2 older generations would drain" ||
	    fail "v$o did not log why it was hammered"
done
reap_ok 5 "${pids[1]}" "v1, hammered"
# lists_drainers: status names v5 and v4 draining, and no other.
lists_drainers() {
	"$CTL" status --control "$CONTROL" >"$T/status.out" &&
	    grep -q "^draining: pid ${pids[5]}  generation 5  tag v5  connections 1  [1-9]" "$T/status.out" &&
	    grep -q "^draining: pid ${pids[4]}  generation 4  tag v4  connections 1  [1-9]" "$T/status.out" &&
	    [ "$(grep -c '^draining:' "$T/status.out")" = 2 ]
}
wait_for 30 lists_drainers ||
    fail "status does not list v5 and v4 alone as draining: $(cat "$T/status.out")"
only_newest "${pids[6]}"

# --max-draining 0: no older generation drains; the incumbent is hammered
# as soon as it has released, and the word goes down the chain.
hold h
held[6]=$h
wait_for 30 has_connections 1 || fail "the held request never reached v6"
ctl_upgrade v7 --listen "$listen" --drain-timeout 120 --max-draining 0
for g in 6 5 4; do
	wait_for 60 gone "${pids[g]}" ||
	    fail "v$g still drains under --max-draining 0"
	logged "v$g" "hammered" || fail "v$g did not log its hammer"
done
only_newest "$NEW_PID"
pass
