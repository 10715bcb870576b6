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
# Held requests keep older generations draining here: no migration.
no_migrate

command -v wrk >/dev/null || skip "wrk is not installed"
install_package runsv runit
command -v runsvdir >/dev/null && command -v sv >/dev/null ||
    skip "the runit package gave no runsvdir or sv"

respawn_setup runit
SUP_PROC=runsv
sup_pid() { cat "$SVC/supervise/pid" 2>/dev/null; }
sup_send() { sv "$1" "$SVC"; }
sup_down() { [ "$(cat "$SVC/supervise/stat" 2>/dev/null)" = down ]; }

# HUP: runsvdir tells each runsv to stop its service and exit, and exits.
start_scanner HUP service runsvdir -P

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

stop_scanner runsvdir
pass
