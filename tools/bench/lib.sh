# Shared by the benchmark scripts in tools/bench: a private directory,
# cleanup of every process started (and everything they forked), bounded
# polling, package installation, and the handoff-httpd binary to run.
# Source it after setting BENCH_NAME.
set -u

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
: "${top_builddir:=$(cd "$BENCH_DIR/../.." && pwd)}"
: "${HTTPD:=$top_builddir/tools/handoff-httpd}"
T=""
PIDS=""
KEEP_TMP=${KEEP_TMP:-0}

die() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }

make_tmp() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/handoff-bench-$BENCH_NAME.XXXXXX") ||
	    die "cannot make a temporary directory"
}

# descendants PID: every process forked below PID, depth first.
descendants() {
	for _c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		echo "$_c"
		descendants "$_c"
	done
}

# owned_pids DIR: processes whose command line names DIR (every server,
# wrk and helper is started with a path inside it), their descendants
# (nginx workers do not name it), and the pids this script recorded.
owned_pids() {
	_seen=""
	for _f in /proc/[0-9]*/cmdline; do
		_p=${_f#/proc/}
		_p=${_p%/cmdline}
		[ "$_p" = $$ ] && continue
		tr '\0' ' ' 2>/dev/null <"$_f" | grep -qF -- "$1" &&
		    _seen="$_seen $_p"
	done
	for _p in $_seen $PIDS; do
		echo "$_p"
		descendants "$_p"
	done | sort -un
}

# kill_owned DIR: SIGKILL, by pid, to every process owned_pids finds.
kill_owned() {
	[ -n "$1" ] && [ -d "$1" ] || return 0
	for _p in $(owned_pids "$1"); do
		kill -KILL "$_p" 2>/dev/null
	done
	for _p in $PIDS; do
		wait "$_p" 2>/dev/null
	done
	PIDS=""
}

cleanup() {
	kill_owned "$T"
	if [ -n "$T" ] && [ "$KEEP_TMP" = 1 ]; then
		note "kept $T"
	elif [ -n "$T" ]; then
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The wall clock without a fork (bash's EPOCHREALTIME, microseconds): a
# poll loop beside a measurement should not take a core from it.
now_ns() { local _t=${EPOCHREALTIME//[!0-9]/}; echo "${_t}000"; }
now_ms() { local _t=${EPOCHREALTIME//[!0-9]/}; echo "${_t%???}"; }

# wait_for SECONDS COMMAND...: polls every 10 ms until COMMAND succeeds.
wait_for() {
	_limit=$1; shift
	_end=$(( $(now_ms) + ${_limit%.*} * 1000 ))
	while ! "$@" >/dev/null 2>&1; do
		[ "$(now_ms)" -lt "$_end" ] || return 1
		sleep 0.01
	done
	return 0
}

# nap SECONDS: a sleep without a fork (a read with a timeout on a FIFO
# of our own that nobody writes to).
nap() {
	if [ -z "${NAP_FD:-}" ]; then
		mkfifo "$T/nap.fifo" && exec {NAP_FD}<>"$T/nap.fifo" ||
		    die "cannot make $T/nap.fifo"
	fi
	read -r -t "$1" -u "$NAP_FD" _ 2>/dev/null
	return 0
}

gone() {
	local _s
	{ read -r _s <"/proc/$1/stat"; } 2>/dev/null || return 0
	_s=${_s##*) }
	[ "${_s%% *}" = Z ]
}

# free_port: a TCP port on 127.0.0.1 that nobody listens on right now.
free_port() {
	python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

answers() { curl -fsS --max-time 2 -o /dev/null "$1"; }

# need_packages CMD=PKG[|PKG2]...: installs from Debian whatever command
# is missing; apt-get update only when the first try fails.
need_packages() {
	_missing=""
	for _spec in "$@"; do
		command -v "${_spec%%=*}" >/dev/null 2>&1 ||
		    PATH="$PATH:/usr/sbin:/sbin" command -v "${_spec%%=*}" \
		    >/dev/null 2>&1 || _missing="$_missing ${_spec#*=}"
	done
	[ -z "$_missing" ] && return 0
	[ "$(id -u)" = 0 ] || die "missing:$_missing; install them (as root)"
	for _alts in $_missing; do
		_ok=0
		for _try in 1 2; do
			for _pkg in $(echo "$_alts" | tr '|' ' '); do
				note "installing $_pkg from Debian"
				# policy-rc.d (if any) keeps the system services
				# from starting; we run our own copies.
				DEBIAN_FRONTEND=noninteractive apt-get install \
				    -y -q "$_pkg" >"${T:-/tmp}/apt.log" 2>&1 &&
				    { _ok=1; break; }
			done
			[ "$_ok" = 1 ] && break
			apt-get update -q >/dev/null 2>&1
		done
		[ "$_ok" = 1 ] || die "cannot install $_alts: see ${T:-/tmp}/apt.log"
	done
	PATH="$PATH:/usr/sbin:/sbin"
}

# resolve_httpd: the real handoff-httpd binary behind a libtool wrapper,
# so exec times and profiles are the program's, not /bin/sh's.
resolve_httpd() {
	_d=$(cd "$(dirname "$HTTPD")" && pwd)
	_n=$(basename "$HTTPD")
	[ -x "$HTTPD" ] || die "$HTTPD: not built; run make first"
	if [ -x "$_d/.libs/$_n" ] && grep -q 'libtool' "$HTTPD" 2>/dev/null; then
		HTTPD_REAL="$_d/.libs/$_n"
		_lib=$(cd "$_d/.." && pwd)/.libs
		export LD_LIBRARY_PATH="$_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	else
		HTTPD_REAL=$HTTPD
	fi
	"$HTTPD_REAL" --version >/dev/null 2>&1 ||
	    die "$HTTPD_REAL does not run (library path?)"
}

raise_nofile() {
	ulimit -n "$(ulimit -Hn)" 2>/dev/null
}

# median of the numbers given.
median() {
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
	    END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
	    else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
