#!/bin/sh
# supervisord (Debian package supervisor) runs the example configuration
# tools/examples/supervisord/handoff-httpd.conf, two program slots, as its
# own private instance. It starts slot A; under wrk load
# `supervisorctl start app-b` starts B, which takes over; A exits 0,
# which supervisord records as an expected exit (EXITED, exit status 0)
# and does not restart. Then `supervisorctl start app-a` takes over from
# B the same way. wrk runs until both switches are done and is then
# stopped; it saw no socket error and no non-2xx response.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

command -v wrk >/dev/null || skip "wrk is not installed"
install_package supervisord supervisor
# supervisor's own Python modules, for the exit status over XML-RPC.
SV_PYTHON=$(sed -n '1s/^#! *//p' "$(command -v supervisord)")

port=$(free_port)
url="http://127.0.0.1:$port/"
SV_CONF=$T/supervisord.conf
SV_SOCK=$T/supervisor.sock
SV_LOG=$T/supervisord.log
EXAMPLE=$top_srcdir/tools/examples/supervisord/handoff-httpd.conf

# The example as shipped, with this build, a private control socket and
# port, and logs in $T (its drain and stop times as they are: bounds).
sed -e "s|/opt/app/[ab]/bin/handoff-httpd|$HTTPD|" \
    -e "s|/run/app/control.sock|$CONTROL|" \
    -e "s|tcp://0.0.0.0:8080|tcp://127.0.0.1:$port|" \
    -e "s|/var/log/supervisor/|$T/|" "$EXAMPLE" >"$T/app.conf" ||
    fail "cannot read $EXAMPLE"
! grep -v '^;' "$T/app.conf" | grep '/opt/\|/run/\|/var/log\|0\.0\.0\.0' ||
    fail "the example changed: adapt the substitutions above"
cat >"$SV_CONF" <<EOF
[unix_http_server]
file=$SV_SOCK
chmod=0700

[supervisord]
logfile=$SV_LOG
pidfile=$T/supervisord.pid
childlogdir=$T
loglevel=info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$SV_SOCK

[include]
files = $T/app.conf
EOF

ctl() { supervisorctl -c "$SV_CONF" "$@"; }

# state PROGRAM: its state as supervisorctl status shows it.
state() { ctl status "$1" | awk '{ print $2 }'; }
state_is() { [ "$(state "$1")" = "$2" ]; }

# info PROGRAM: "STATE PID EXITSTATUS" from supervisord over XML-RPC.
info() {
	"$SV_PYTHON" - "$SV_SOCK" "$1" <<'EOF'
import sys, xmlrpc.client
from supervisor.xmlrpc import SupervisorTransport
rpc = xmlrpc.client.ServerProxy("http://localhost",
    SupervisorTransport(None, None, "unix://" + sys.argv[1]))
i = rpc.supervisor.getProcessInfo(sys.argv[2])
print(i["statename"], i["pid"], i["exitstatus"])
EOF
}

# Stopped the way its users stop it, so that it stops its programs; what
# is left of our servers afterwards is killed.
sv_cleanup() {
	if [ -n "${SV_PID:-}" ] && alive "$SV_PID"; then
		ctl shutdown >/dev/null 2>&1
		wait_for 60 gone "$SV_PID"
	fi
	for p in $(pgrep -f -- "--control $CONTROL"); do
		kill -KILL "$p" 2>/dev/null
	done
	cleanup
}
trap sv_cleanup EXIT

supervisord -c "$SV_CONF" -n >"$T/supervisord.out" 2>&1 &
SV_PID=$!
PIDS="$PIDS $SV_PID"
wait_for 60 state_is app-a RUNNING ||
    fail "supervisord did not start app-a: $(ctl status 2>&1)"
a=$(ctl pid app-a)
wait_for 30 is_serving "$a" || fail "app-a (pid $a) does not serve on $CONTROL"
body_has "$url" "pid=$a tag=a gen=1" || fail "app-a does not answer $url"
log "supervisord (pid $SV_PID) started app-a, pid $a"
state_is app-b STOPPED || fail "app-b is $(state app-b), want STOPPED"

# unchanged SECONDS PROGRAM: PROGRAM stays EXITED and is not spawned
# again for that long, over more than one of supervisord's 1 s ticks.
unchanged() {
	_end=$(( $(now_ms) + $1 * 1000 ))
	_spawned=$(grep -c "spawned: '$2'" "$SV_LOG")
	while [ "$(now_ms)" -lt "$_end" ]; do
		_st=$(ctl status "$2")
		case $_st in
		*EXITED*) ;;
		*) fail "$2 came back: $_st" ;;
		esac
		[ "$(grep -c "spawned: '$2'" "$SV_LOG")" = "$_spawned" ] ||
		    fail "$2 was spawned again: $(grep "spawned: '$2'" "$SV_LOG")"
		poll_pause 0.1
	done
}

# switch OLD NEW OLD_PID GEN: starts slot NEW, which must be idle (not
# restarted behind our back), through supervisorctl; it takes over from
# OLD_PID as generation GEN; OLD exits 0, recorded as an expected exit.
# The new pid in $NEW_PID.
switch() {
	_old=$1 _new=$2 _old_pid=$3 _gen=$4
	_st=$(ctl status "$_new")
	case $_st in
	*STOPPED*|*EXITED*) log "before: $_st" ;;
	*) fail "$_new is not idle before its start: $_st" ;;
	esac
	_start=$(now_ms)
	ctl start "$_new" >"$T/start-$_new.out" 2>&1 ||
	    fail "supervisorctl start $_new: $(cat "$T/start-$_new.out")"
	log "supervisorctl start $_new: $(cat "$T/start-$_new.out")" \
	    "($(( $(now_ms) - _start )) ms, startsecs=1)"
	NEW_PID=$(ctl pid "$_new")
	wait_for 60 gone "$_old_pid" ||
	    fail "$_old (pid $_old_pid) still runs after $_new took over"
	wait_for 30 grep -q "exited: $_old (exit status 0; expected)" "$SV_LOG" ||
	    fail "supervisord did not record an expected exit of $_old:" \
	    "$(grep "$_old" "$SV_LOG")"
	_st=$(ctl status "$_old")
	case $_st in
	*EXITED*) log "after: $_st" ;;
	*) fail "$_old is not EXITED after the takeover: $_st" ;;
	esac
	body_has "$url" "pid=$NEW_PID tag=${_new#app-} gen=$_gen" ||
	    fail "$_new (pid $NEW_PID) does not answer $url: $(get "$url")"
	log "$_new pid $NEW_PID took over from $_old pid $_old_pid" \
	    "(switch and checks took $(( $(now_ms) - _start )) ms)"
}

# check_exited PROGRAM: EXITED with exit status 0 and no pid over
# XML-RPC, and it stays so, not spawned again.
check_exited() {
	# shellcheck disable=SC2046
	set -- "$1" $(info "$1")
	log "getProcessInfo($1): state $2, pid $3, exitstatus $4"
	[ "$2 $3 $4" = "EXITED 0 0" ] ||
	    fail "$1: state, pid and exit status \"$2 $3 $4\", want EXITED 0 0"
	unchanged 2 "$1"
	log "$1 stayed EXITED for 2 s"
}

# wrk runs until the switches are done (SIGINT ends it with its totals).
start_load "$url"
wait_for 30 has_connections 1 || fail "wrk never connected to $url"
start=$(now_ms)
switch app-a app-b "$a" 2
b=$NEW_PID
switch app-b app-a "$b" 3
a2=$NEW_PID
took=$(( $(now_ms) - start ))
stop_wrk switches
log "wrk: $(grep '^totals ' "$T/wrk.out"); two switches in $took ms"
wrk_none_failed
check_exited app-b
is_serving "$a2" || fail "app-a (pid $a2) does not serve after the load"

# Each slot spawned only when asked, never restarted, never backed off.
[ "$(grep -c "spawned: 'app-a'" "$SV_LOG")" = 2 ] ||
    fail "app-a spawned other than twice: $(grep spawned "$SV_LOG")"
[ "$(grep -c "spawned: 'app-b'" "$SV_LOG")" = 1 ] ||
    fail "app-b spawned other than once: $(grep spawned "$SV_LOG")"
! grep -n 'BACKOFF\|FATAL\|not expected\|gave up' "$SV_LOG" ||
    fail "supervisord saw a failure"
ctl status >"$T/status.out" 2>&1
log "supervisorctl status:"
sed 's/^/    /' "$T/status.out"

# supervisord stops the serving slot gracefully on shutdown.
ctl shutdown >/dev/null || fail "supervisorctl shutdown"
reap 60 "$SV_PID" supervisord
[ "$STATUS" = 0 ] || fail "supervisord exited $STATUS"
gone "$a2" || fail "app-a (pid $a2) outlived supervisord"
grep -q "stopped: app-a (exit status 0)" "$SV_LOG" ||
    fail "app-a was not stopped cleanly: $(grep app-a "$SV_LOG" | tail -n 2)"
log "supervisord log:"
sed 's/^/    /' "$SV_LOG"
pass
