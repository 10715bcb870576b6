#!/bin/bash
# Containers, as far as they can run here: a PID namespace of its own
# (unshare --pid --fork --mount-proc) stands for the container, and
# nsenter into it for docker exec.
#
# 1. What goes wrong when the server is the container's PID 1, or the
#    one child of a PID 1 that exits with it: handoff-httpd as PID 1;
#    tini as PID 1 (docker run --init) with handoff-httpd its child;
#    handoff-exec as PID 1 (--rollback-window 0) with
#    tests/activated-server.py. Each time a successor started with
#    nsenter takes over while the old server finishes a request the test
#    holds; once that is answered the old server exits 0, so does PID 1,
#    and the kernel kills the successor (SIGKILL): nothing serves.
# 2. What to do instead: s6-svscan as PID 1 runs tools/examples/s6/app,
#    and the README's recipe, respawn-upgrade run through nsenter,
#    upgrades it twice under wrk load as in s6.sh (the process started
#    outside s6-supervise is adopted and reaped by s6-svscan). No failed
#    request; one server left, a child of s6-supervise, serving r3.
#    Then SIGTERM to s6-svscan (docker stop): the server drains a held
#    request, exits 0, and s6-svscan exits 0, ending the namespace.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
. "$(dirname "$0")/../respawn.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

command -v wrk >/dev/null || skip "wrk is not installed"
command -v unshare >/dev/null && command -v nsenter >/dev/null ||
    skip "unshare and nsenter (util-linux) are not installed"
command -v ss >/dev/null || skip "ss (iproute2) is not installed"
unshare --pid --fork --mount-proc true 2>/dev/null ||
    skip "cannot make a PID namespace here (unshare --pid needs root)"
PY=/usr/bin/python3
[ -x "$PY" ] || skip "no $PY"
install_package s6-svscan s6
install_package tini tini

respawn_setup s6
# The run script makes it; the first servers here run without it.
mkdir -m 0700 "$T/run" || fail "cannot make $T/run"

# The namespaces' first processes (unshare's children) are killed at
# cleanup, which kills whatever their namespaces hold.
NS_INITS=""
container_cleanup() {
	for p in $NS_INITS; do
		kill -KILL "$p" 2>/dev/null
	done
	for p in $(pgrep -f -- "--control $CONTROL"); do
		kill -KILL "$p" 2>/dev/null
	done
	cleanup
}
trap container_cleanup EXIT

# start_container NAME COMMAND...: COMMAND as PID 1 of a new PID
# namespace, output in $T/NAME.log; unshare's pid in $NS, this shell's
# pid of the namespace's PID 1 in $INIT.
start_container() {
	_cname=$1; shift
	unshare --pid --fork --mount-proc "$@" >"$T/$_cname.log" 2>&1 &
	NS=$!
	PIDS="$PIDS $NS"
	wait_for 30 eval 'INIT=$(pgrep -P "$NS") && [ -n "$INIT" ]' ||
	    fail "unshare (pid $NS) started no PID 1"
	NS_INITS="$NS_INITS $INIT"
}

# answering: the pid in the body of GET /, nothing if none answers.
answering() { get "$url" 2>/dev/null | sed -n 's/^pid=\([0-9]*\) .*/\1/p'; }

# accepted_by HOSTPID: the process holds an established TCP connection
# on $port (the held request is its, not queued for whoever comes next).
accepted_by() {
	ss -Htnp state established "( sport = :$port )" 2>/dev/null |
	    grep -q "pid=$1,"
}

# pid1_dies NAME COMMAND... THEN SUCCESSOR...: COMMAND as a container's
# PID 1; SUCCESSOR started in it with nsenter takes over while the first
# server drains a held request; once it is answered PID 1 exits 0, the
# successor is killed and nothing serves.
pid1_dies() {
	_pname=$1; shift
	_first=()
	while [ "$1" != THEN ]; do _first+=("$1"); shift; done
	shift
	start_container "$_pname" "${_first[@]}"
	wait_for 30 eval '[ "$(status_value state)" = serving ] &&
	    [ -n "$(answering)" ]' || fail "$_pname: nothing serves $url"
	_p1=$(answering)
	_p1h=""
	for _h in $INIT $(descendants "$INIT"); do
		[ "$(ns_pid "$_h")" = "$_p1" ] && _p1h=$_h
	done
	[ -n "$_p1h" ] || fail "$_pname: no process is pid $_p1 of the namespace"
	hold held
	wait_for 30 accepted_by "$_p1h" ||
	    fail "$_pname: pid $_p1 never accepted the held request"
	# Through sh, which reports nsenter's death by SIGKILL as status
	# 137 without bash's job message.
	sh -c '"$@"; exit $?' sh nsenter -t "$INIT" -p -m -- "$@" \
	    >"$T/$_pname-exec.log" 2>&1 &
	_ex=$!
	PIDS="$PIDS $_ex"
	wait_for 30 eval '[ "$(status_value generation)" = 2 ]' ||
	    fail "$_pname: no successor took over"
	log "$_pname: the successor, pid $(serving_pid) in the namespace," \
	    "serves; pid $_p1 drains a held request:"
	ps -o pid,ppid,args --forest -p "$(echo "$NS" "$INIT" \
	    $(descendants "$INIT") "$_ex" $(descendants "$_ex") | tr ' ' ,)" |
	    sed 's/^/    /'
	release "$held" "$_p1"
	reap 60 "$NS" "$_pname: unshare"
	[ "$STATUS" = 0 ] || fail "$_pname: PID 1 exited $STATUS, want 0"
	reap 30 "$_ex" "$_pname: the successor (nsenter)"
	[ "$STATUS" = 137 ] ||
	    fail "$_pname: nsenter exited $STATUS, want 137 (successor SIGKILLed)"
	refuses "$url" || fail "$_pname: something still accepts on $url"
	"$CTL" status --control "$CONTROL" >/dev/null 2>&1
	[ $? = 3 ] || fail "$_pname: a server answers on $CONTROL"
	log "$_pname: PID 1 exited 0, the successor was killed (nsenter 137)," \
	    "$url refuses connections"
}

LISTEN="http=tcp://127.0.0.1:$port"
pid1_dies httpd-pid1 "$HTTPD" --control "$CONTROL" --listen "$LISTEN" --tag r1 \
    THEN "$HTTPD" --control "$CONTROL" --listen "$LISTEN" --tag r2
pid1_dies tini-pid1 tini -- "$HTTPD" --control "$CONTROL" --listen "$LISTEN" \
    --tag r1 THEN "$HTTPD" --control "$CONTROL" --listen "$LISTEN" --tag r2
EXEC="$top_builddir/tools/handoff-exec"
SERVER="$top_srcdir/tests/activated-server.py"
pid1_dies exec-pid1 "$EXEC" --control "$CONTROL" --listen "$LISTEN" \
    --rollback-window 0 -- "$PY" "$SERVER" --tag r1 \
    THEN "$EXEC" --control "$CONTROL" --listen "$LISTEN" --rollback-window 0 \
    -- "$PY" "$SERVER" --tag r2

# 2. s6-svscan as PID 1.
mkdir "$T/scan" && ln -s "$SVC" "$T/scan/app" || fail "cannot make $T/scan"
start_container svscan s6-svscan "$T/scan"
SCANNER=$INIT
OUTSIDE_REAPER=$INIT
SUP_PROC=s6-supervise
sup_pid() { s6-svstat -o pid "$SVC" 2>/dev/null | sed '/^-1$/d'; }
sup_send() { s6-svc -h "$SVC"; }
in_service() { nsenter -t "$SCANNER" -p -m -- "$@"; }

respawn_first_start
respawn_hup
respawn_under_load

# docker stop: SIGTERM to PID 1.
hold h3
wait_for 60 has_connections 1 || fail "pid $SRV never accepted the held request"
kill -TERM "$SCANNER"
wait_for 30 grep -q "handoff-httpd\[$SRV\] gen 5: stopping" "$T/log/current" ||
    fail "pid $SRV did not begin a stop"
srv_alive "$SRV" || fail "pid $SRV exited with a request in flight"
release "$h3" "$SRV"
reap 60 "$NS" "s6-svscan's namespace"
[ "$STATUS" = 0 ] || fail "s6-svscan as PID 1 exited $STATUS, want 0"
grep -q "handoff-httpd\[$SRV\] gen 5: exiting, 0 connections left" \
    "$T/log/current" || fail "pid $SRV did not stop gracefully"
[ -z "$(server_pids)" ] || fail "servers left: $(server_pids)"
refuses "$url" || fail "something still accepts on $url"
log "SIGTERM to PID 1: pid $SRV answered the held request and exited;" \
    "s6-svscan exited 0"
log "log of the service:"
sed 's/^/    /' "$T/log/current"
pass
