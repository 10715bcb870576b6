# Shared by the tests of supervisors that start a service's run script
# again whenever it exits (runit.sh, s6.sh, container.sh), after
# tests/lib.sh and tests/load.sh: three releases behind a link, the
# example service directory with its paths moved into $T, and the steps
# of the README's recipe (tools/examples/respawn-upgrade) under wrk load,
# with held requests that fix their order.
#
# Pids are the server's own, as status, responses and the supervisor
# report them (in container.sh, pids in a PID namespace of their own);
# host_pid turns one into this shell's view for /proc. The test defines:
#   sup_pid           the pid the supervisor watches now, nothing if none
#   sup_send hup|down the supervisor's own command (sv hup, s6-svc -d ...)
#   sup_down          the supervisor says the service is down, wanted down
#   SUP_PROC          the supervising program's name (runsv, s6-supervise)
#   SCANNER           this shell's pid of runsvdir or s6-svscan
# and may redefine in_service (how an operator runs a command where the
# service runs: as it is, or through nsenter) and set OUTSIDE_REAPER, the
# pid (this shell's) that must adopt and reap the process started
# outside the supervisor.

EXAMPLES=$top_srcdir/tools/examples
CONTROL=$T/run/control.sock
SVC=$T/sv/app
port=$(free_port)
url="http://127.0.0.1:$port/"

in_service() { "$@"; }
OUTSIDE_REAPER=""

# respawn_setup SUPERVISOR: releases r1, r2 and r3 in $T/app/releases,
# each bin/handoff-httpd a link to this build's, $T/app/current -> r1;
# tools/examples/SUPERVISOR/app as $SVC with its paths in $T (the log in
# $T/log/current, also $T/service.log for fail), and a drain timeout of
# 300 s instead of 30: held requests wait for the test's steps, which a
# busy machine slows, and must not be hammered meanwhile.
respawn_setup() {
	for _r in r1 r2 r3; do
		mkdir -p "$T/app/releases/$_r/bin" &&
		    ln -s "$HTTPD" "$T/app/releases/$_r/bin/handoff-httpd" ||
		    fail "cannot make release $_r"
	done
	ln -s releases/r1 "$T/app/current" || fail "cannot link $T/app/current"
	mkdir -p "$T/sv" && cp -R "$EXAMPLES/$1/app" "$SVC" ||
	    fail "cannot copy $EXAMPLES/$1/app"
	grep -q -- '--drain-timeout 30 ' "$SVC/run" ||
	    fail "$SVC/run has no --drain-timeout 30: adapt respawn_setup"
	while IFS= read -r -d '' _f; do
		sed -i -e "s|/srv/app|$T/app|g" -e "s|/run/app|$T/run|g" \
		    -e "s|--drain-timeout 30 |--drain-timeout 300 |" \
		    -e "s|tcp://0.0.0.0:8080|tcp://127.0.0.1:$port|g" \
		    -e "s|/var/log/app|$T/log|g" \
		    -e "s|/usr/local/bin/handoffctl|$CTL|g" "$_f" ||
		    fail "cannot adapt $_f"
		! grep -v '^#' "$_f" | sed "s|${T}[^ \"]*|X|g" |
		    grep '/srv/\|/run/\|/var/log\|0\.0\.0\.0\|/usr/local' ||
		    fail "the example $_f changed: adapt respawn_setup"
	done < <(find "$SVC" -type f -print0)
	ln -s log/current "$T/service.log"
}

# start_scanner STOPSIG DIR COMMAND...: $SVC linked into a new $T/DIR,
# and COMMAND DIR (runsvdir, s6-svscan) started on it, its pid in
# $SCANNER. At exit STOPSIG tells it to stop its services and exit;
# whatever of ours is left then is killed by pid.
start_scanner() {
	SCANNER_STOP=$1 _sdir=$T/$2
	shift 2
	mkdir "$_sdir" && ln -s "$SVC" "$_sdir/app" || fail "cannot make $_sdir"
	"$@" "$_sdir" </dev/null >"$T/scanner.log" 2>&1 &
	SCANNER=$!
	PIDS="$PIDS $SCANNER"
	trap scanner_cleanup EXIT
}

scanner_cleanup() {
	local under="" p
	if alive "$SCANNER"; then
		under=$(descendants "$SCANNER")
		kill -"$SCANNER_STOP" "$SCANNER"
		wait_for 30 gone "$SCANNER"
	fi
	for p in $under $(pgrep -f -- "--control $CONTROL"); do
		kill -KILL "$p" 2>/dev/null
	done
	cleanup
}

# stop_scanner WHAT: STOPSIG to the scanner, which must exit within 30 s
# (its status in $STATUS), and so must everything it started.
stop_scanner() {
	local under p
	under=$(descendants "$SCANNER")
	kill -"$SCANNER_STOP" "$SCANNER"
	reap 30 "$SCANNER" "$1"
	for p in $under; do
		wait_for 30 gone "$p" ||
		    fail "pid $p ($(cat "/proc/$p/comm")) outlived $1"
	done
}

# release_to TAG: points $T/app/current at release TAG, atomically.
release_to() {
	ln -sfn "releases/$1" "$T/app/current.new" &&
	    mv -T "$T/app/current.new" "$T/app/current" ||
	    fail "cannot point $T/app/current at $1"
}

# server_pids: this shell's pids of the live handoff-httpd processes on
# $CONTROL (not handoffctl, not the shells that exec into them).
server_pids() {
	for _p in $(pgrep -f -- "--control $CONTROL"); do
		alive "$_p" || continue
		case $(tr '\0' '\n' <"/proc/$_p/cmdline" 2>/dev/null | head -n 1) in
		*/handoff-httpd) echo "$_p" ;;
		esac
	done
}

# ns_pid PID: the pid that process (this shell's PID) has in its own
# PID namespace.
ns_pid() {
	sed -n 's/^NSpid:.*[[:space:]]\([0-9]*\)$/\1/p' "/proc/$1/status" 2>/dev/null
}

# host_pid PID: this shell's pid of the live server whose own pid is PID.
host_pid() {
	for _p in $(server_pids); do
		[ "$(ns_pid "$_p")" = "$1" ] || continue
		echo "$_p"
		return 0
	done
	return 1
}

srv_alive() { host_pid "$1" >/dev/null; }
srv_gone() { ! srv_alive "$1"; }

# supervised SERVER: SERVER is a child of a $SUP_PROC that is a child of
# $SCANNER; says which otherwise.
supervised() {
	_h=$(host_pid "$1") || { echo "pid $1 is not running"; return 1; }
	_pp=$(ppid_of "$_h")
	_pc=$(cat "/proc/$_pp/comm" 2>/dev/null)
	[ "$_pc" = "$SUP_PROC" ] && [ "$(ppid_of "$_pp")" = "$SCANNER" ] && return 0
	echo "pid $1's parent is pid $_pp ($_pc), not a $SUP_PROC under pid $SCANNER"
	return 1
}

# descendants PID: the pids below PID.
descendants() {
	local c
	for c in $(pgrep -P "$1"); do
		echo "$c"
		descendants "$c"
	done
}

# tree: on lines of their own, the processes under $SCANNER (pid, parent
# pid, command) and then any server outside it.
tree() {
	local under p
	under=$(descendants "$SCANNER" | tr '\n' ,)
	echo
	ps -o pid,ppid,args --forest -p "$SCANNER,${under%,}" | sed 's/^/    /'
	for p in $(server_pids); do
		case ,$under in
		*",$p,"*) ;;
		*) ps -o pid,ppid,args --no-headers -p "$p" | sed 's/^/    outside: /' ;;
		esac
	done
}

serves_supervised() {
	_s=$(sup_pid)
	[ -n "$_s" ] && [ "$(serving_pid)" = "$_s" ]
}

# respawn_first_start: the supervisor starts r1 fresh; its pid in $SRV.
respawn_first_start() {
	wait_for 60 serves_supervised ||
	    fail "the supervisor's pid $(sup_pid) does not serve on $CONTROL"
	SRV=$(sup_pid)
	_why=$(supervised "$SRV") || fail "after the first start: $_why"
	body_has "$url" "pid=$SRV tag=r1 gen=1" ||
	    fail "pid $SRV does not answer $url as r1: $(get "$url")"
	log "the supervisor started r1, pid $SRV"
}

# respawn_hup: SIGHUP through the supervisor is logged and ignored.
respawn_hup() {
	sup_send hup || fail "could not send hup"
	wait_for 30 grep -q "handoff-httpd\[$SRV\] gen 1: SIGHUP ignored" \
	    "$T/log/current" || fail "pid $SRV did not log the SIGHUP"
	serves_supervised && [ "$(sup_pid)" = "$SRV" ] ||
	    fail "after hup pid $(serving_pid) serves, the supervisor watches $(sup_pid)"
	log "hup: pid $SRV logged it and serves on"
}

# upgrade_under_way: the upgrade of the recipe, started in the
# background, its output in $T/upgrade.log.
upgrade_under_way() {
	in_service env HANDOFFCTL="$CTL" "$EXAMPLES/respawn-upgrade" -t 300 \
	    -l "$T/outside.log" "$CONTROL" "$SVC" >"$T/upgrade.log" 2>&1 &
	UPGRADE_PID=$!
	PIDS="$PIDS $UPGRADE_PID"
}

# upgrade_done TAG GEN: the upgrade script exited 0 saying that the
# supervised pid serves; that pid, answering as TAG generation GEN, is
# the only server left and the supervisor's child.
upgrade_done() {
	reap_ok 300 "$UPGRADE_PID" respawn-upgrade
	_s=$(sup_pid)
	grep -q "pid $_s, started by the supervisor of $SVC, serves (generation $2)" \
	    "$T/upgrade.log" || fail "respawn-upgrade: $(cat "$T/upgrade.log")"
	only_server "$_s" "$1" "$2"
	SRV=$_s
}

# only_server PID TAG GEN: PID, answering as TAG generation GEN, is
# once its predecessor has drained the one server left, and supervised.
only_server() {
	_only=$1
	wait_for 60 eval '[ "$(server_pids | tr "\n" " ")" = "$(host_pid "$_only") " ]' ||
	    fail "servers left: $(server_pids | tr '\n' ' '), want only pid $1:$(tree)"
	_why=$(supervised "$1") || fail "at the end of the upgrade: $_why"
	body_has "$url" "pid=$1 tag=$2 gen=$3" ||
	    fail "not pid $1 as $2 generation $3: $(get "$url")"
	[ "$(status_value generation)" = "$3" ] ||
	    fail "status says generation $(status_value generation), want $3"
}

# respawn_upgrade_held: under wrk load, r1 -> r2 step by step. A request
# held on the supervised pid keeps it draining after the process started
# outside took over, so the supervisor has nothing to restart yet; one
# held on the outside process keeps it draining after the supervisor's
# new process took over from it.
respawn_upgrade_held() {
	_s1=$SRV
	hold h1
	wait_for 60 has_connections 65 ||
	    fail "pid $_s1 never accepted the held request (wrk's 64 and it)"
	release_to r2
	upgrade_under_way
	wait_for 60 eval 'gone "$UPGRADE_PID" ||
	    { [ -n "$(serving_pid)" ] && [ "$(serving_pid)" != "$_s1" ]; }'
	_o=$(serving_pid)
	[ -n "$_o" ] && [ "$_o" != "$_s1" ] ||
	    fail "nothing took over from pid $_s1: $(cat "$T/upgrade.log")"
	srv_alive "$_s1" || fail "pid $_s1 exited with a request in flight"
	[ "$(sup_pid)" = "$_s1" ] ||
	    fail "the supervisor watches pid $(sup_pid), want $_s1 (draining)"
	! supervised "$_o" >/dev/null || fail "pid $_o, outside, is supervised"
	_oh=$(host_pid "$_o")
	[ -z "$OUTSIDE_REAPER" ] || [ "$(ppid_of "$_oh")" = "$OUTSIDE_REAPER" ] ||
	    fail "pid $_o's parent is $(ppid_of "$_oh"), want $OUTSIDE_REAPER"
	body_has "$url" "pid=$_o tag=r2 gen=2" ||
	    fail "pid $_o does not answer as r2: $(get "$url")"
	log "outside pid $_o (r2, gen 2) serves; supervised pid $_s1 drains:$(tree)"
	hold h2
	wait_for 60 has_connections 65 ||
	    fail "pid $_o never accepted the held request (wrk's 64 and it)"
	release "$h1" "$_s1"
	wait_for 60 srv_gone "$_s1" || fail "pid $_s1 still runs, drained"
	wait_for 60 serves_supervised ||
	    fail "the supervisor's new pid $(sup_pid) does not serve"
	_s2=$(sup_pid)
	[ "$_s2" != "$_s1" ] || fail "the supervisor still watches pid $_s1"
	srv_alive "$_o" || fail "pid $_o exited with a request in flight"
	body_has "$url" "pid=$_s2 tag=r2 gen=3" ||
	    fail "pid $_s2 does not answer as r2: $(get "$url")"
	log "supervised pid $_s2 (r2, gen 3) serves; outside pid $_o drains:$(tree)"
	release "$h2" "$_o"
	wait_for 60 srv_gone "$_o" || fail "pid $_o still runs, drained"
	[ -z "$OUTSIDE_REAPER" ] || wait_for 30 test ! -e "/proc/$_oh" ||
	    fail "pid $_o (here $_oh) was not reaped: $(cat "/proc/$_oh/status")"
	grep -q "gen 2: released to pid $_s2" "$T/outside.log" &&
	    grep -q "gen 2: exiting, 0 connections left" "$T/outside.log" ||
	    fail "pid $_o did not hand over and exit: $(tail -n 5 "$T/outside.log")"
	upgrade_done r2 3
}

# respawn_upgrade: under wrk load, r2 -> r3 as an operator does it.
respawn_upgrade() {
	_s1=$SRV
	release_to r3
	upgrade_under_way
	upgrade_done r3 5
	srv_gone "$_s1" || fail "pid $_s1 still runs"
	log "$(cat "$T/upgrade.log")"
}

# finish_codes: the exit codes that the finish script logged, in order.
finish_codes() {
	sed -n 's/.*finish: \.\/run exited with code \([-0-9]*\).*/\1/p' \
	    "$T/log/current" | tr '\n' ' '
}

# respawn_under_load: both upgrades under one wrk run, stopped when they
# are done; no request failed, each supervised process exited 0.
respawn_under_load() {
	start_load "$url"
	wait_for 60 has_connections 64 || fail "wrk never made its 64 connections"
	_t0=$(now_ms)
	respawn_upgrade_held
	respawn_upgrade
	_took=$(( $(now_ms) - _t0 ))
	stop_wrk upgrades
	log "wrk: $(grep '^totals ' "$T/wrk.out"); two upgrades in $_took ms"
	wrk_none_failed
	[ "$(finish_codes)" = "0 0 " ] ||
	    fail "the supervised processes exited with codes $(finish_codes), want 0 0"
	log "one server left, pid $SRV (r3, gen 5), under the supervisor:$(tree)"
}

# respawn_down: the supervisor's down is a graceful stop: a held
# request is answered, then the server exits 0 and is not restarted.
respawn_down() {
	hold h3
	wait_for 60 has_connections 1 || fail "pid $SRV never accepted the held request"
	sup_send down || fail "could not send down"
	wait_for 30 grep -q "handoff-httpd\[$SRV\] gen 5: stopping" \
	    "$T/log/current" || fail "pid $SRV did not begin a stop"
	srv_alive "$SRV" || fail "pid $SRV exited with a request in flight"
	release "$h3" "$SRV"
	wait_for 60 srv_gone "$SRV" || fail "pid $SRV still runs, drained"
	wait_for 30 sup_down || fail "the supervisor does not say down"
	[ "$(finish_codes)" = "0 0 0 " ] ||
	    fail "exit codes $(finish_codes), want 0 0 0"
	[ -z "$(server_pids)" ] || fail "servers left: $(server_pids)"
	refuses "$url" || fail "something still accepts on $url"
	log "down: pid $SRV answered the held request, exited 0, not restarted"
}
