#!/bin/bash
# s6 (Debian package s6): s6-svscan on a scan directory of the test's own
# runs tools/examples/s6/app (run, finish, log/run with s6-log), which
# execs $T/app/current/bin/handoff-httpd, release r1. `s6-svc -h` is
# logged and ignored. Under wrk load, the README's recipe
# (tools/examples/respawn-upgrade) upgrades it twice, as in runit.sh:
# r1 -> r2 step by step with a request held on each old process (the
# process started outside s6-supervise serves while the supervised one
# drains; s6-supervise starts ./run again once that one has exited 0;
# the new one takes over from the outside one), then r2 -> r3 as an
# operator runs it. wrk, stopped once both are done, counts no failed
# request; one server is left, a child of s6-supervise, serving r3 as
# generation 5, and each supervised one exited 0 (./finish says so).
# `s6-svc -d` is a graceful stop: the held request is answered, the
# server exits 0 and stays down. SIGTERM to s6-svscan ends the tree.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
. "$(dirname "$0")/../respawn.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

command -v wrk >/dev/null || skip "wrk is not installed"
install_package s6-svscan s6

respawn_setup s6
SUP_PROC=s6-supervise
sup_pid() { s6-svstat -o pid "$SVC" 2>/dev/null | sed '/^-1$/d'; }
sup_send() {
	case $1 in
	hup) s6-svc -h "$SVC" ;;
	down) s6-svc -d "$SVC" ;;
	esac
}
sup_down() { [ "$(s6-svstat -o up,wantedup "$SVC" 2>/dev/null)" = "false false" ]; }

# TERM: s6-svscan brings every service down, then exits.
start_scanner TERM scan s6-svscan

respawn_first_start
log "s6-svstat: $(s6-svstat "$SVC")"
respawn_hup
respawn_under_load
log "s6-svstat: $(s6-svstat "$SVC")"
respawn_down
log "s6-svstat: $(s6-svstat "$SVC")"
log "log of the service:"
sed 's/^/    /' "$T/log/current"

# SIGTERM, as at shutdown: s6-svscan stops every service and exits 0.
stop_scanner s6-svscan
[ "$STATUS" = 0 ] || fail "s6-svscan exited $STATUS on SIGTERM"
pass
