#!/bin/sh
# 253, 504 and 1000 listeners on port 0 (matched by name): the takeover
# passes them in batches of at most 252 fds (the control socket is one
# more), every listener keeps its address, and a sample serves from the
# successor. --no-state: the fds counted are the listeners and the
# control socket only.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

# bound_addresses NAME: "name address" lines a fresh start logged.
bound_addresses() {
	sed -n 's/.* bound \(l[0-9]*\)=\(.*\)$/\1 \2/p' "$T/$1.log"
}

# listening PID: the TCP addresses PID listens on, sorted, from the kernel.
listening() {
	ss -Hltnp | grep "pid=$1," | awk '{print $4}' | sort
}

# reported_count: how many listeners status says there are (the report
# itself lists only as many as fit in one message).
reported_count() {
	status_json | python3 -c 'import json, sys
print(json.load(sys.stdin)["count"])'
}

for n in 253 504 1000; do
	CONTROL=$T/ctl-$n.sock
	args="--no-state"
	i=1
	while [ "$i" -le "$n" ]; do
		args="$args --listen l$i=tcp://127.0.0.1:0"
		i=$((i + 1))
	done
	# shellcheck disable=SC2086
	serve "v1-$n" $args --tag v1
	v1=$LAST_PID
	bound_addresses "v1-$n" >"$T/before-$n"
	[ "$(grep -c '^l' "$T/before-$n")" = "$n" ] ||
	    fail "$n listeners: v1 bound $(grep -c '^l' "$T/before-$n")"
	[ "$(reported_count)" = "$((n + 1))" ] ||
	    fail "$n listeners: status counts $(reported_count), want $((n + 1))"
	listening "$v1" >"$T/ports-before-$n"
	[ "$(wc -l <"$T/ports-before-$n")" = "$n" ] ||
	    fail "$n listeners: v1 listens on $(wc -l <"$T/ports-before-$n")"

	start=$(now_ms)
	# shellcheck disable=SC2086
	upgrade "$v1" "v2-$n" $args --tag v2
	v2=$NEW_PID
	took=$(( $(now_ms) - start ))
	entries=$((n + 1))
	batches=$(( (entries + 251) / 252 ))
	[ "$batches" = 1 ] && unit=batch || unit=batches
	logged "v1-$n" "successor pid $v2 (uid [0-9]*, tag \"v2\") connected: offering $entries listeners in $batches $unit\$" ||
	    fail "$n listeners: v1 did not log $entries listeners in $batches $unit:" \
	    "$(grep offering "$T/v1-$n.log")"
	logged "v2-$n" ": $entries listeners in $batches $unit\$" ||
	    fail "$n listeners: v2 did not log $batches $unit: $(grep 'taking over' "$T/v2-$n.log")"
	logged "v2-$n" "took over from pid $v1: adopted $n (l1,l2," ||
	    fail "$n listeners: v2 did not adopt all $n: $(grep 'took over' "$T/v2-$n.log")"
	wait_for 20 dead "$v1" || fail "$n listeners: v1 still running"
	listening "$v2" >"$T/ports-after-$n"
	cmp -s "$T/ports-before-$n" "$T/ports-after-$n" ||
	    fail "$n listeners: addresses changed:" \
	    "$(diff "$T/ports-before-$n" "$T/ports-after-$n" | head -5)"
	for name in l1 l2 "l$((n / 2))" "l$((n - 1))" "l$n"; do
		addr=$(sed -n "s/^$name //p" "$T/before-$n")
		[ -n "$addr" ] || fail "$n listeners: no address for $name"
		body_has "http://$addr/" "pid=$v2 tag=v2" ||
		    fail "$n listeners: $name ($addr) does not serve from v2"
	done
	log "$n listeners: $entries entries in $batches $unit, upgrade took $took ms"
	kill -TERM "$v2"
	reap_ok 60 "$v2" "v2 with $n listeners"
done
pass
