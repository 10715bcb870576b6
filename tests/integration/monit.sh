#!/bin/bash
# monit (Debian package monit) runs the example check
# tools/examples/monit/handoff-httpd.monitrc, `check process ... matching`
# with no pid file, as its own private instance with 1 s cycles. monit
# starts the server; `monit restart app` runs the restart program
# (handoffctl upgrade), whose new process takes over while the old one
# drains an in-flight request that the test holds until monit has been
# seen reporting the old pid while the new one serves; then a takeover
# started by hand, outside
# monit. Sampled all along, `monit status app` says OK with a pid every
# time: the old pid while it drains (monit picks the oldest match), then
# the new one. monit never finds the service missing and never starts it
# again. Finally `monit stop app` stops it gracefully.
#
# The servers are nobody's child but a reaper's, as under systemd: a
# subreaper above monit reaps them at once. (Under a pid 1 that reaps
# late, monit sees the old pid as a zombie for a cycle: "Data access
# error".)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

install_package monit monit

port=$(free_port)
url="http://127.0.0.1:$port/"
MONITRC=$T/monitrc
EXAMPLE=$top_srcdir/tools/examples/monit/handoff-httpd.monitrc
LISTEN="http=tcp://127.0.0.1:$port"

# The example as shipped, with this build, a private control socket and
# port, and its log in $T.
python3 - "$EXAMPLE" "$T/app.monitrc" "$CTL" "$HTTPD" "$CONTROL" \
    "$port" "$T" <<'EOF' || fail "cannot adapt $EXAMPLE"
import re, sys
src, dst, ctl, httpd, control, port, tmp = sys.argv[1:]
text = open(src).read()
# The control path in monit's POSIX extended regular expression.
control_ere = re.sub(r"([][.^$*+?(){}|\\])", r"\\\1", control)
for old, new in [
        ("/usr/local/bin/handoffctl", ctl),
        ("/usr/local/bin/handoff-httpd", httpd),
        ("/run/app/control\\.sock", control_ere),
        ("/run/app/control.sock", control),
        ("0.0.0.0:8080", "127.0.0.1:" + port),
        ("port 8080", "port " + port),
        ("/var/log/app.log", tmp + "/app.log"),
        # Held requests keep older generations draining: no migration.
        ("--drain-timeout 30\"", "--drain-timeout 30 --no-migrate\"")]:
    if old not in text:
        sys.exit("the example changed: %r is gone; adapt monit.sh" % old)
    text = text.replace(old, new)
open(dst, "w").write(text)
EOF
cat >"$MONITRC" <<EOF
set daemon 1
set logfile $T/monit.log
set idfile $T/monit.id
set statefile $T/monit.state
set pidfile $T/monit.pid
set httpd unixsocket $T/monit.sock
    allow localhost
include $T/app.monitrc
EOF
chmod 0700 "$MONITRC"
monit -c "$MONITRC" -t >"$T/syntax.out" 2>&1 ||
    fail "monit -t: $(cat "$T/syntax.out")"

mon() { monit -c "$MONITRC" "$@"; }

# mon_field NAME: one field of `monit status app` ("status", "pid").
mon_field() { mon status app 2>&1 | sed -n "s/^  $1   *//p"; }
mon_status_is() { [ "$(mon_field status)" = "$1" ]; }
mon_ok_with() { mon_status_is OK && [ "$(mon_field pid)" = "$1" ]; }

# Stopped the way its users stop it; what is left of our servers is
# killed by pid.
monit_cleanup() {
	if [ -f "$T/monit.pid" ] && alive "$(cat "$T/monit.pid")"; then
		mon quit >/dev/null 2>&1
		wait_for 60 gone "$(cat "$T/monit.pid")"
	fi
	for p in $(pgrep -f -- "--control $CONTROL"); do
		kill -KILL "$p" 2>/dev/null
	done
	cleanup
}
trap monit_cleanup EXIT

# A child subreaper that reaps every orphan below it at once, as
# systemd does, and ends when monit does.
python3 -c 'import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
	sys.exit("prctl(PR_SET_CHILD_SUBREAPER): errno %d" % ctypes.get_errno())
main = os.fork()
if main == 0:
	os.execvp(sys.argv[1], sys.argv[1:])
while True:
	pid, status = os.waitpid(-1, 0)
	if pid == main:
		sys.exit(os.waitstatus_to_exitcode(status))' \
    monit -c "$MONITRC" -I >"$T/monit.out" 2>&1 &
REAPER=$!
PIDS="$PIDS $REAPER"

# 1. monit starts the server (the start program: a fresh start).
is_serving_any() { [ -n "$(serving_pid)" ]; }
wait_for 60 is_serving_any ||
    fail "monit did not start the server: $(cat "$T/monit.out")"
p1=$(serving_pid)
wait_for 30 mon_ok_with "$p1" ||
    fail "monit does not report pid $p1: $(mon status app 2>&1)"
[ "$(ppid_of "$p1")" = "$REAPER" ] ||
    fail "pid $p1's parent is $(ppid_of "$p1"), want the reaper $REAPER"
body_has "$url" "pid=$p1 tag= gen=1" || fail "pid $p1 does not answer $url"
log "monit started pid $p1 (parent: the reaper $REAPER):" \
    "$(grep "'app'" "$T/monit.log" | sed 's/^.*: //' | tr '\n' '|')"

# sample: one line "MS STATUS|PID|SERVING" in $T/samples: what monit
# reports, and who answers on the control socket.
sample() {
	mon status app >"$T/status.out" 2>&1
	printf '%s %s|%s|%s\n' "$(now_ms)" \
	    "$(sed -n 's/^  status   *//p' "$T/status.out")" \
	    "$(sed -n 's/^  pid   *//p' "$T/status.out")" \
	    "$(serving_pid)" >>"$T/samples"
}

# sample_draining SECONDS OLD: samples every 200 ms until one shows monit
# reporting OLD while another pid serves (OLD draining); that pid in
# $NEW_PID.
sample_draining() {
	_end=$(( $(now_ms) + $1 * 1000 ))
	while [ "$(now_ms)" -lt "$_end" ]; do
		sample
		_last=$(tail -n 1 "$T/samples")
		NEW_PID=${_last##*|}
		case $_last in
		*"|$2|$NEW_PID")
			[ -z "$NEW_PID" ] || [ "$NEW_PID" = "$2" ] || return 0 ;;
		esac
		poll_pause 0.2
	done
	fail "monit never reported pid $2 while another served within $1 s:" \
	    "$(tail -n 5 "$T/samples")"
}

# sample_until SECONDS OLD: samples every 200 ms until another pid than
# OLD serves, monit has reported it for 2 s (two cycles) and OLD is gone;
# that pid in $NEW_PID.
sample_until() {
	_end=$(( $(now_ms) + $1 * 1000 ))
	_since=""
	while [ "$(now_ms)" -lt "$_end" ]; do
		sample
		_last=$(tail -n 1 "$T/samples")
		NEW_PID=${_last##*|}
		_reported=$(echo "$_last" | cut -d'|' -f2)
		if [ -n "$NEW_PID" ] && [ "$NEW_PID" != "$2" ] &&
		    [ "$_reported" = "$NEW_PID" ] && gone "$2"; then
			[ -n "$_since" ] || _since=$(now_ms)
			[ $(( $(now_ms) - _since )) -lt 2000 ] || return 0
		else
			_since=""
		fi
		case $_last in
		*"restart pending"*)
			[ -e "$T/pending.out" ] || cp "$T/status.out" "$T/pending.out" ;;
		esac
		poll_pause 0.2
	done
	fail "no takeover from pid $2 that monit reported within $1 s:" \
	    "$(tail -n 5 "$T/samples")"
}

# check_samples OLD NEW: every sample says OK (a pending restart
# included), with OLD, then NEW; logs how many showed OLD while NEW
# served already (the drain).
check_samples() {
	_bad=$(grep -v "^[0-9]* OK\(\| - restart pending\)|" "$T/samples")
	[ -z "$_bad" ] || fail "monit reported other than OK: $_bad"
	_pids=$(cut -d'|' -f2 "$T/samples" | grep -v '^-$' | uniq | tr '\n' ' ')
	[ "$_pids" = "$1 $2 " ] ||
	    fail "monit reported pids \"$_pids\", want \"$1 $2 \""
	log "samples (ms, monit status|pid|serving pid):"
	_t0=$(head -n 1 "$T/samples" | cut -d' ' -f1)
	awk -v t0="$_t0" '{ printf "    +%5d ms %s %s %s %s\n", $1 - t0, $2, $3, $4, $5 }' \
	    "$T/samples"
	_n=$(grep -c "|$1|$2\$" "$T/samples")
	log "$_n samples while draining: monit showed old pid $1, pid $2 served"
}

# 2. `monit restart app` runs the restart program; an in-flight request
# that the test holds keeps the old process draining until monit has
# been seen reporting it while the new one serves.
hold held
wait_for 30 has_connections 1 || fail "the held request never connected"
: >"$T/samples"
sample
start=$(now_ms)
mon restart app >"$T/restart.out" 2>&1 ||
    fail "monit restart app: $(cat "$T/restart.out")"
sample_draining 60 "$p1"
alive "$p1" || fail "pid $p1 exited with a held request in flight"
release "$held" "$p1"
sample_until 60 "$p1"
p2=$NEW_PID
if [ -e "$T/pending.out" ]; then
	log "monit status app while the restart was pending:"
	sed -n '/^Process/,/^  uptime/p' "$T/pending.out" | sed 's/^/    /'
fi
gone "$p1" || fail "pid $p1 still runs"
check_samples "$p1" "$p2"
[ "$(ppid_of "$p2")" = "$REAPER" ] ||
    fail "pid $p2's parent is $(ppid_of "$p2"), want the reaper $REAPER"
log "restart took $(( $(now_ms) - start )) ms, drain included"

# 3. A takeover started by hand: monit follows it.
: >"$T/samples"
sample
start=$(now_ms)
"$CTL" upgrade --control "$CONTROL" --log "$T/app.log" -- \
    "$HTTPD" --control "$CONTROL" --listen "$LISTEN" --drain-timeout 30 \
    --no-migrate >"$T/upgrade.out" 2>&1 ||
    fail "handoffctl upgrade: $(cat "$T/upgrade.out")"
log "handoffctl upgrade: $(cat "$T/upgrade.out")"
sample_until 60 "$p2"
p3=$NEW_PID
check_samples "$p2" "$p3"
body_has "$url" "pid=$p3 tag= gen=3" || fail "pid $p3 does not answer $url"

# Started once (the first start), restarted once (on request), never
# found missing or dead after that.
[ "$(grep -c "'app' process is not running" "$T/monit.log")" = 1 ] ||
    fail "monit found the process missing more than once"
[ "$(grep -c "'app' restart: " "$T/monit.log")" = 2 ] ||
    fail "monit ran the restart program other than twice (start, upgrade)"
! grep -n "'app'.*\(zombie\|does not exist\|failed\)" "$T/monit.log" ||
    fail "monit saw a failure"

# 4. `monit stop app`: the stop program stops it gracefully.
mon stop app >"$T/stop.out" 2>&1 || fail "monit stop app: $(cat "$T/stop.out")"
wait_for 60 gone "$p3" || fail "monit stop did not stop pid $p3"
wait_for 30 mon_status_is "Not monitored" ||
    fail "after stop: $(mon status app 2>&1)"
grep -q "gen 3: exiting" "$T/app.log" || fail "pid $p3 did not exit gracefully"
log "after monit stop app: status $(mon_field status)"

# 5. `monit start app`: the start program, a fresh start.
mon start app >"$T/start.out" 2>&1 || fail "monit start app: $(cat "$T/start.out")"
wait_for 60 is_serving_any || fail "monit start app: nothing serves"
p4=$(serving_pid)
wait_for 30 mon_ok_with "$p4" ||
    fail "monit does not report pid $p4: $(mon status app 2>&1)"
body_has "$url" "pid=$p4 tag= gen=1" || fail "pid $p4 is not a fresh start"
log "after monit start app: status $(mon_field status), pid $p4, gen 1"
grep -q "'app' start: " "$T/monit.log" || fail "monit did not run the start program"
log "monit log:"
grep "'app'" "$T/monit.log" | sed 's/^/    /'
mon quit >/dev/null 2>&1
reap 60 "$REAPER" "monit (under the reaper)"
"$CTL" stop --control "$CONTROL" >/dev/null || fail "handoffctl stop"
wait_for 60 gone "$p4" || fail "pid $p4 did not stop"
pass
