#!/bin/sh
# SOAK_UPGRADES (default 100) successive upgrades under wrk load (64
# keep-alive connections), each started once the previous successor
# serves and its predecessor has exited 0 (each bounded against a hang,
# and the whole run by SOAK_SECONDS if set); wrk runs until the last is
# done and is then stopped. No failed request. The
# serving process after the last upgrade holds exactly as many fds as the
# one after the first, and its VmRSS is within SOAK_RSS_PERCENT (default
# 10) % of that one's, both sampled once their predecessor has exited
# and wrk's 64 connections are theirs. In a build with --enable-sanitizers
# VmRSS is reported, not compared: ASan's quarantine keeps what was freed
# resident, so it grows with the requests served; LeakSanitizer checks
# each generation as it exits (0 expected) instead. The long run:
#   make soak   (SOAK_UPGRADES=1000 make check TESTS=tests/integration/soak.sh)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

command -v wrk >/dev/null || skip "wrk is not installed"
upgrades=${SOAK_UPGRADES:-100}
limit=${SOAK_SECONDS:-}
rss_percent=${SOAK_RSS_PERCENT:-10}
[ "$upgrades" -ge 1 ] || skip "SOAK_UPGRADES=$upgrades: nothing to do"

port=$(free_port)
url="http://127.0.0.1:$port/"
args="--listen http=tcp://127.0.0.1:$port --drain-timeout 30"

# has_all_of_wrk PID: PID serves and counts wrk's 64 connections, no more.
has_all_of_wrk() {
	"$CTL" status --control "$CONTROL" |
	    grep -q "^pid $1 .* connections 64\$"
}

# vm_rss PID: its resident set, in kB.
vm_rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$1/status"; }

# sample PID NAME: fds and VmRSS of PID into FDS and RSS, once it has
# closed its connection to its predecessor and has all of wrk's
# connections.
sample() {
	wait_for 30 logged "$2" "predecessor pid [0-9]* has exited" ||
	    fail "$2 (pid $1) never logged its predecessor's exit"
	wait_for 60 has_all_of_wrk "$1" ||
	    fail "pid $1 does not get wrk's 64 connections"
	# The status connection just answered may not be closed yet: the
	# count once two readings 50 ms apart agree (5 s at most).
	_n=0
	FDS=$(fd_count "$1")
	while [ "$_n" -lt 100 ]; do
		poll_pause 0.05
		_again=$(fd_count "$1")
		[ "$_again" = "$FDS" ] && break
		FDS=$_again _n=$((_n + 1))
	done
	RSS=$(vm_rss "$1")
}

# shellcheck disable=SC2086
serve v1 $args --tag v1
pid=$LAST_PID
# wrk's own bound: longer than every upgrade's bounds put together.
start_wrk $((upgrades * 180 + 60)) "$url"
wait_for 60 has_all_of_wrk "$pid" || fail "wrk never made its 64 connections"
start=$(now_ms)
i=1
while [ "$i" -le "$upgrades" ]; do
	gen=$((i + 1))
	# shellcheck disable=SC2086
	upgrade "$pid" "v$gen" $args --tag "v$gen"
	pid=$NEW_PID
	# Logs of the generations before the last two are not needed.
	[ "$i" -lt 2 ] || rm -f "$T/v$((gen - 2)).log"
	if [ "$i" = 1 ]; then
		sample "$pid" "v$gen"
		first_fds=$FDS first_rss=$RSS
	fi
	took=$(( $(now_ms) - start ))
	[ -z "$limit" ] || [ "$took" -le $((limit * 1000)) ] ||
	    fail "$i of $upgrades upgrades took $took ms, over SOAK_SECONDS=$limit"
	[ $((i % 100)) != 0 ] || log "$i upgrades in $took ms"
	i=$((i + 1))
done
sample "$pid" "v$gen"
last_fds=$FDS last_rss=$RSS
body_has "$url" "pid=$pid tag=v$gen gen=$gen" ||
    fail "the last successor (pid $pid) does not answer $url"
stop_wrk soak
log "$upgrades upgrades in $took ms ($((took / upgrades)) ms each);" \
    "fds $first_fds after the first, $last_fds after the last;" \
    "VmRSS $first_rss kB after the first, $last_rss kB after the last;" \
    "$(grep '^totals' "$T/wrk-soak.out")"
[ "$(wrk_failed)" = 0 ] || fail "$(wrk_failed) requests failed"
[ "$last_fds" = "$first_fds" ] ||
    fail "generation $gen holds $last_fds fds, generation 2 held $first_fds"
if grep -q '^SAN_CFLAGS = -fsanitize' "$top_builddir/Makefile"; then
	log "VmRSS not compared: built with sanitizers"
	pass
fi
if [ $((last_rss * 100)) -gt $((first_rss * (100 + rss_percent))) ] ||
    [ $((last_rss * 100)) -lt $((first_rss * (100 - rss_percent))) ]; then
	fail "generation $gen has VmRSS $last_rss kB, more than" \
	    "$rss_percent % off generation 2's $first_rss kB"
fi
pass
