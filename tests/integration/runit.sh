#!/bin/bash
# runit (Debian package runit): runsvdir on a service directory of the
# test's own runs tools/examples/runit/app (run, finish, check, log/run
# with svlogd), which execs $T/app/current/bin/handoff-httpd, release r1.
# `sv hup` is logged and ignored. Under wrk load, the README's recipe
# (tools/examples/respawn-upgrade) upgrades it twice: first r1 -> r2
# step by step, with a request held on each old process so that the
# order is the test's: the process started outside runsv takes over and
# serves while runsv's drains; runsv starts ./run again only once that
# one has exited 0; the new one takes over from the outside one, which
# drains and exits 0. Then r2 -> r3 as an operator runs it. wrk, stopped
# once both are done, counts no failed request; one server is left, a
# child of runsv, serving r3 as generation 5, and each supervised one
# exited 0 (./finish says so). `sv down` is a graceful stop: the held
# request is answered, the server exits 0 and stays down.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
. "$(dirname "$0")/../respawn.sh"

command -v wrk >/dev/null || skip "wrk is not installed"
install_package runsv runit
command -v runsvdir >/dev/null && command -v sv >/dev/null ||
    skip "the runit package gave no runsvdir or sv"

respawn_setup runit
SUP_PROC=runsv
sup_pid() { cat "$SVC/supervise/pid" 2>/dev/null; }
sup_send() { sv "$1" "$SVC"; }
sup_down() { [ "$(cat "$SVC/supervise/stat" 2>/dev/null)" = down ]; }

# runsvdir is told to stop its runsv processes (HUP: each stops its
# service and exits); what is left of ours is killed by pid.
runit_cleanup() {
	_under=""
	if [ -n "${SCANNER:-}" ] && alive "$SCANNER"; then
		_under=$(descendants "$SCANNER")
		kill -HUP "$SCANNER"
		wait_for 30 gone "$SCANNER"
	fi
	for p in $_under $(pgrep -f -- "--control $CONTROL"); do
		kill -KILL "$p" 2>/dev/null
	done
	cleanup
}
trap runit_cleanup EXIT

mkdir "$T/service" && ln -s "$SVC" "$T/service/app" || fail "cannot make $T/service"
runsvdir -P "$T/service" </dev/null >"$T/runsvdir.log" 2>&1 &
SCANNER=$!
PIDS="$PIDS $SCANNER"

respawn_first_start
wait_for 30 sv check "$SVC" || fail "sv check: $(sv check "$SVC")"
log "sv status: $(sv status "$SVC")"
respawn_hup
respawn_under_load
log "sv status: $(sv status "$SVC")"
respawn_down
log "sv status: $(sv status "$SVC")"
log "log of the service:"
sed 's/^/    /' "$T/log/current"

# runsvdir's HUP: each runsv ends with its log service, and runsvdir
# exits.
under=$(descendants "$SCANNER")
kill -HUP "$SCANNER"
reap 30 "$SCANNER" runsvdir
for p in $under; do
	wait_for 30 gone "$p" || fail "pid $p ($(cat "/proc/$p/comm")) outlived runsvdir"
done
pass
