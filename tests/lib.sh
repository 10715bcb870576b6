# Shared by the integration tests: a private directory, cleanup of every
# process started, bounded polling, and small helpers. Source it; then
# call `fail "why"` to fail, `skip "why"` to skip, and end with `pass`.
set -u

: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
HTTPD="$top_builddir/tools/handoff-httpd"
CTL="$top_builddir/tools/handoffctl"
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/handoff-$TEST_NAME.XXXXXX")
CONTROL="$T/ctl.sock"
PIDS=""

cleanup() {
	for p in $PIDS; do
		kill -KILL "$p" 2>/dev/null
	done
	for p in $PIDS; do
		wait "$p" 2>/dev/null
	done
	if [ -f "$T/ports" ]; then
		while read -r p; do
			rm -f "$PORT_DIR/$p/owner"
			rmdir "$PORT_DIR/$p"
		done <"$T/ports"
	fi
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "kept $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

log() { printf '%s: %s\n' "$TEST_NAME" "$*"; }

fail() {
	log "FAIL: $*"
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		echo "---- $f (last 30 lines)"
		tail -n 30 "$f"
	done
	exit 1
}

skip() { log "SKIP: $*"; exit 77; }
pass() { log "PASS"; exit 0; }

# poll_pause [SECONDS]: the pause between two polls of a bounded loop
# (default 0.05 s); never a wait for a condition by itself.
poll_pause() { sleep "${1:-0.05}"; }

# wait_for SECONDS COMMAND...: polls every 50 ms until COMMAND succeeds.
wait_for() {
	_limit=$1; shift
	_end=$(( $(date +%s%N) / 1000000 + _limit * 1000 ))
	while ! "$@" >/dev/null 2>&1; do
		[ $(( $(date +%s%N) / 1000000 )) -lt "$_end" ] || return 1
		poll_pause
	done
	return 0
}

# use_peer: $PEER runs tests/peer.py, which needs Debian's jsonschema.
use_peer() {
	PEER="/usr/bin/python3 $top_srcdir/tests/peer.py"
	/usr/bin/python3 -c 'import jsonschema' 2>/dev/null ||
	    skip "/usr/bin/python3 has no jsonschema (python3-jsonschema)"
}

# free_ports N: N distinct ports, free for TCP and UDP on 127.0.0.1 (and
# ::1), from below the kernel's ephemeral range and reserved for this test
# until it exits, so that a port stopped and bound again later has not
# been taken meanwhile by a client's connection or by another test
# (tests/ports.py says how). free_port: one.
PORT_DIR=${TMPDIR:-/tmp}/handoff-test-ports
free_ports() {
	python3 "$top_srcdir/tests/ports.py" --dir "$PORT_DIR" --owner $$ \
	    --list "$T/ports" "$1"
}
free_port() { free_ports 1; }

# go_fifo NAME: the FIFO $T/NAME.go that a process waits on, opened
# read-write so its open never blocks, reading one line with a bound of
# its own; go_on NAME writes that line. No polling for a file.
go_fifo() { mkfifo "$T/$1.go" || fail "cannot make $T/$1.go"; }
go_on() {
	timeout 10 sh -c 'echo go >"$1"' sh "$T/$1.go" ||
	    fail "nobody waits on $T/$1.go"
}

# no_migrate: every handoff-httpd the test starts from now on, by
# $HTTPD, keeps its connections to the end of its drain (--no-migrate),
# for a test whose held requests must keep an older generation draining
# (by default they would move to the successor; migration has tests of
# its own). $HTTPD becomes a script that execs the real one: the same
# process, with --no-migrate first.
no_migrate() {
	mkdir -p "$T/bin" || fail "cannot make $T/bin"
	printf '#!/bin/sh\nexec %s --no-migrate "$@"\n' "$HTTPD" \
	    >"$T/bin/handoff-httpd" && chmod 755 "$T/bin/handoff-httpd" ||
	    fail "cannot write $T/bin/handoff-httpd"
	HTTPD=$T/bin/handoff-httpd
}

# start_httpd NAME ARGS...: starts handoff-httpd in the background with
# --control $CONTROL, logging to $T/NAME.log; sets $LAST_PID.
start_httpd() {
	_name=$1; shift
	"$HTTPD" --control "$CONTROL" "$@" >"$T/$_name.log" 2>&1 &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
}

# A zombie has exited: its parent may not have reaped it yet.
alive() {
	kill -0 "$1" 2>/dev/null &&
	    ! grep -q '^State:[[:space:]]*[ZX]' "/proc/$1/status" 2>/dev/null
}
dead() { ! alive "$1"; }

# wait_exit PID: waits for a child of this shell; its status in $STATUS.
# Not in $(...): a subshell cannot wait for its parent's children. The
# pid leaves $PIDS: once reaped it may be reused by any process, which
# cleanup must not kill.
wait_exit() {
	wait "$1"
	STATUS=$?
	_keep=""
	for _p in $PIDS; do
		[ "$_p" = "$1" ] || _keep="$_keep $_p"
	done
	PIDS=$_keep
}

# serving_pid: the pid that answers status on $CONTROL, or nothing. From
# the first line of the text report ("pid P  generation G ..."): no
# interpreter started for each poll.
serving_pid() {
	"$CTL" status --control "$CONTROL" 2>/dev/null |
	    sed -n '1s/^pid \([0-9]*\) .*/\1/p'
}

is_serving() { [ "$(serving_pid)" = "$1" ]; }

# get URL: body of a GET, fails on a non-2xx.
get() { curl -fsS --max-time 5 "$1"; }

body_has() { get "$1" | grep -q -- "$2"; }

fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

logged() { grep -q -- "$2" "$T/$1.log"; }

# install_package COMMAND PACKAGE: installs the Debian PACKAGE if COMMAND
# is missing, with policy-rc.d keeping its service from starting, one
# test at a time (make -j2 check runs tests in parallel); skips if it
# cannot.
install_package() {
	command -v "$1" >/dev/null && return 0
	[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null &&
	    command -v flock >/dev/null ||
	    skip "$1 is not installed; installing $2 needs root, apt-get, flock"
	log "installing $2"
	(
		flock -w 300 9 || exit 1
		command -v "$1" >/dev/null && exit 0
		policy=/usr/sbin/policy-rc.d
		if [ -e "$policy" ]; then
			policy=""
		else
			printf '#!/bin/sh\nexit 101\n' >"$policy" &&
			    chmod 755 "$policy" || exit 1
		fi
		export DEBIAN_FRONTEND=noninteractive
		apt-get -o DPkg::Lock::Timeout=120 install -y "$2" || {
			apt-get update &&
			    apt-get -o DPkg::Lock::Timeout=120 install -y "$2"
		}
		rc=$?
		[ -z "$policy" ] || rm -f "$policy"
		exit "$rc"
	) 9>>"${TMPDIR:-/tmp}/handoff-apt.lock" >"$T/apt.out" 2>&1
	command -v "$1" >/dev/null ||
	    skip "cannot install $2: $(tail -n 3 "$T/apt.out")"
}

# sanitized: this build compiles with -fsanitize (configure
# --enable-sanitizers, or in CFLAGS).
sanitized() {
	grep -Eq '^(SAN_CFLAGS|CFLAGS) = .*-fsanitize' "$top_builddir/Makefile"
}
