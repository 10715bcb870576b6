# Shared by the takeover and load integration tests, after tests/lib.sh:
# process checks that see through zombies, one bounded upgrade step, and a
# wrk run whose totals come out of a done() hook.

# gone PID: the process has exited (absent, or a zombie not yet reaped).
gone() {
	[ ! -e "/proc/$1/stat" ] ||
	    [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ]
}

# ppid_of PID: the parent pid, from /proc/PID/stat (after the comm field).
ppid_of() { sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f2; }

# reap SECONDS PID WHAT: waits (bounded) for PID, a child of this shell, to
# exit; its status in $STATUS. Fails if it is still running.
reap() {
	wait_for "$1" gone "$2" || fail "$3 (pid $2) still running after $1 s"
	wait_exit "$2"
}

# reap_ok SECONDS PID WHAT: reap, and fail unless it exited 0.
reap_ok() {
	reap "$@"
	[ "$STATUS" = 0 ] || fail "$3 (pid $2) exited $STATUS, want 0"
}

# serve NAME ARGS...: start_httpd, then waits until it answers status on
# $CONTROL; its pid in $LAST_PID.
serve() {
	start_httpd "$@"
	wait_for 60 is_serving "$LAST_PID" ||
	    fail "$1 (pid $LAST_PID) never served on $CONTROL"
}

# upgrade OLD NAME ARGS...: starts NAME (handoff-httpd ARGS) as the
# successor of pid OLD, waits until it answers status and OLD has exited 0
# after draining; the new pid in $NEW_PID.
upgrade() {
	_old=$1 _uname=$2
	shift
	serve "$@"
	NEW_PID=$LAST_PID
	reap_ok 60 "$_old" "incumbent replaced by $_uname"
}

# status_json: the --json status report of whoever serves on $CONTROL.
status_json() { "$CTL" status --control "$CONTROL" --json; }

# status_value KEY: pid, generation, state or connections of whoever
# serves on $CONTROL, from the first line of the text report ("pid P
# generation G  tag T  state S  connections N"): no interpreter started
# for each poll. Nothing if no server answered.
status_value() {
	"$CTL" status --control "$CONTROL" 2>/dev/null |
	    sed -n "1s/^\(.*  \)\{0,1\}$1 \([^ ]*\).*/\2/p"
}

# status_field KEY: one top-level field of that report; the fields of the
# text report's first line without starting python3.
status_field() {
	case $1 in
	pid|generation|state|connections) status_value "$1" ;;
	*) status_json | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])" ;;
	esac
}

# has_connections N: the server on $CONTROL counts at least N connections.
has_connections() {
	_conns=$(status_value connections)
	[ -n "$_conns" ] && [ "$_conns" -ge "$1" ]
}

# refuses URL: nothing accepts TCP connections there (curl exit 7).
refuses() {
	curl -sS --max-time 3 -o /dev/null "$1" 2>/dev/null
	[ $? = 7 ]
}

# now_ms: milliseconds since the epoch.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# start_wrk SECONDS URL [WRK ARGS...]: wrk with 2 threads and 64
# connections in the background, its output in $T/wrk.out, pid in $WRK_PID.
# A done() hook prints one "totals" line (non2xx is wrk's errors.status:
# responses with a status above 399; the server sends no 3xx). A request
# counts as a timeout after 30 s: slow is not lost on a busy machine.
start_wrk() {
	_wsecs=$1 _wurl=$2
	shift 2
	cat >"$T/totals.lua" <<'EOF'
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("totals requests=%d duration_us=%d " ..
	    "connect=%d read=%d write=%d timeout=%d non2xx=%d\n",
	    summary.requests, summary.duration, e.connect, e.read, e.write,
	    e.timeout, e.status))
end
EOF
	wrk -t 2 -c 64 -d "${_wsecs}s" --timeout 30s -s "$T/totals.lua" \
	    "$@" "$_wurl" >"$T/wrk.out" 2>&1 &
	WRK_PID=$!
	PIDS="$PIDS $WRK_PID"
}

# WRK_BOUND: how long a wrk that the test stops itself (stop_wrk) may run
# at most; a bound against a hung test, never the length of the load.
WRK_BOUND=${WRK_BOUND:-1200}

# start_load URL [WRK ARGS...]: start_wrk that runs until stop_wrk ends it
# (WRK_BOUND seconds at most).
start_load() { start_wrk "$WRK_BOUND" "$@"; }

# serve_under_wrk NAME SECONDS URL ARGS...: serve NAME ARGS, then wrk on
# URL for SECONDS (at most, with stop_wrk), and waits until the server
# counts wrk's 64 connections; the server's pid stays in $LAST_PID.
serve_under_wrk() {
	_lname=$1 _lsecs=$2 _lurl=$3
	shift 3
	serve "$_lname" "$@"
	start_wrk "$_lsecs" "$_lurl"
	wait_for 60 has_connections 64 || fail "wrk never made its 64 connections"
}

# totals_field KEY: a number from wrk's "totals" line.
totals_field() {
	sed -n "s/^totals.* $1=\([0-9]*\).*/\1/p" "$T/wrk.out"
}

# load_with_upgrades UPGRADES [WRK ARGS...]: serves on a free port, puts
# it under wrk load, does UPGRADES successive takeovers, each started once
# the previous successor serves and its predecessor has exited 0, then
# stops wrk and asserts that it saw no socket error and no non-2xx and
# made requests. Summary to stdout.
load_with_upgrades() {
	_ups=$1
	shift
	_port=$(free_port)
	_url="http://127.0.0.1:$_port/"
	_args="--listen http=tcp://127.0.0.1:$_port --drain-timeout 30"
	# shellcheck disable=SC2086
	serve v1 $_args --tag v1
	_pid=$LAST_PID
	start_load "$_url" "$@"
	wait_for 60 has_connections 1 ||
	    fail "wrk never connected to $_url"
	_start=$(now_ms)
	_i=2
	while [ "$_i" -le $(( _ups + 1 )) ]; do
		# shellcheck disable=SC2086
		upgrade "$_pid" "v$_i" $_args --tag "v$_i"
		_pid=$NEW_PID
		_i=$(( _i + 1 ))
	done
	_took=$(( $(now_ms) - _start ))
	stop_wrk upgrades
	cat "$T/wrk.out"
	_req=$(totals_field requests)
	_us=$(totals_field duration_us)
	log "summary: $_req requests in $_us us," \
	    "$(( _req * 1000000 / (_us > 0 ? _us : 1) )) req/s," \
	    "$_ups upgrades in $_took ms," \
	    "errors connect=$(totals_field connect) read=$(totals_field read)" \
	    "write=$(totals_field write) timeout=$(totals_field timeout)," \
	    "non-2xx=$(totals_field non2xx)"
	wrk_none_failed
	body_has "$_url" "pid=$_pid tag=v$(( _ups + 1 )) gen=$(( _ups + 1 ))" ||
	    fail "the last successor (pid $_pid) does not answer $_url"
}

# wrk_failed: socket errors plus non-2xx in wrk's totals line.
wrk_failed() {
	_f=0
	for _k in connect read write timeout non2xx; do
		_f=$((_f + $(totals_field "$_k")))
	done
	echo "$_f"
}

# wrk_none_failed: fails unless wrk's totals line counts no socket error
# and no non-2xx response.
wrk_none_failed() {
	for _k in connect read write timeout non2xx; do
		[ "$(totals_field "$_k")" = 0 ] || fail "wrk counted" \
		    "$(totals_field "$_k") $_k errors: $(grep '^totals' "$T/wrk.out")"
	done
}

# stop_wrk NAME: interrupts wrk started by start_wrk (it prints its totals
# then), after checking it was still running: what came before was under
# load. Checks it made requests, and keeps its output as $T/wrk-NAME.out.
stop_wrk() {
	alive "$WRK_PID" || fail "wrk ended before $1 was over: $(cat "$T/wrk.out")"
	kill -INT "$WRK_PID"
	reap 60 "$WRK_PID" wrk
	grep -q '^totals ' "$T/wrk.out" || fail "no totals from wrk: $(cat "$T/wrk.out")"
	[ "$(totals_field requests)" -gt 0 ] || fail "wrk made no request"
	cp "$T/wrk.out" "$T/wrk-$1.out"
}

# hold NAME [PORT]: opens a connection to 127.0.0.1:PORT (default $port),
# sends half a request; the fd in $NAME. The request stays in flight until
# the test completes it with release (needs bash).
hold() {
	_hport=${2:-$port}
	exec {fd}<>"/dev/tcp/127.0.0.1/$_hport" || fail "cannot connect to $_hport"
	printf -v "$1" '%s' "$fd"
	printf 'GET / HTTP/1.1\r\nHost: held\r\n' >&"$fd"
}

# hold_unix NAME PATH: hold on the Unix stream socket PATH. bash cannot
# open one: curl's telnet:// relays a fifo (the fd in $NAME) to it, and
# its answer to a file.
hold_unix() {
	HOLD_N=$(( ${HOLD_N:-0} + 1 ))
	_hout=$T/held-unix.$HOLD_N
	rm -f "$T/hold.fifo"
	mkfifo "$T/hold.fifo" || fail "cannot make $T/hold.fifo"
	curl -sSN --unix-socket "$2" telnet://localhost >"$_hout" 2>&1 \
	    <"$T/hold.fifo" &
	_hpid=$!
	PIDS="$PIDS $_hpid"
	exec {fd}>"$T/hold.fifo"
	rm -f "$T/hold.fifo"
	echo "$_hpid $_hout" >"$T/relay.$fd"
	printf -v "$1" '%s' "$fd"
	printf 'GET / HTTP/1.1\r\nHost: held\r\n' >&"$fd"
}

# release FD PID: completes the held request, which PID must answer.
release() {
	printf 'Connection: close\r\n\r\n' >&"$1"
	if [ -f "$T/relay.$1" ]; then
		# The relay ends with its input, which processes started since
		# may hold open too: done once the body line is there.
		read -r _hpid _hout <"$T/relay.$1"
		wait_for 60 grep -q '^pid=' "$_hout" ||
		    fail "held request: no answer within 60 s: $(cat "$_hout")"
		kill "$_hpid" 2>/dev/null
		wait_exit "$_hpid"
		cp "$_hout" "$T/held.$1"
		rm -f "$T/relay.$1"
	else
		timeout 60 head -c 4096 <&"$1" >"$T/held.$1" 2>/dev/null
	fi
	eval "exec $1>&-"
	grep -q "pid=$2 " "$T/held.$1" ||
	    fail "held request not answered by pid $2: $(cat "$T/held.$1")"
}

# only_newest PID: 20 fresh requests to $url, every one answered by PID,
# and status names PID.
only_newest() {
	for i in $(seq 20); do
		b=$(get "$url/") || fail "request $i failed"
		case $b in
		*"pid=$1 "*) ;;
		*) fail "request $i answered by another process: $b" ;;
		esac
	done
	is_serving "$1" || fail "status does not name pid $1"
}

# ctl_upgrade TAG ARGS...: handoffctl upgrade to handoff-httpd --tag TAG
# ARGS, logging to $T/TAG.log; the pid that serves then in $NEW_PID.
ctl_upgrade() {
	_tag=$1; shift
	"$CTL" upgrade --control "$CONTROL" --timeout 30 --log "$T/$_tag.log" \
	    -- "$HTTPD" --control "$CONTROL" --tag "$_tag" "$@" \
	    >"$T/upgrade-$_tag.out" 2>&1 ||
	    fail "upgrade to $_tag: $(cat "$T/upgrade-$_tag.out")"
	NEW_PID=$(serving_pid)
	# Not our child: killed at cleanup, never waited for.
	PIDS="$PIDS $NEW_PID"
}

# exec_sleeper NAME PORT WINDOW: handoff-exec on $CONTROL with one listener,
# http=tcp://127.0.0.1:PORT, running a child that waits for a signal and
# does nothing else (ready after a settle time of 0.2 s), with a rollback
# window of WINDOW seconds;
# logging to $T/NAME.log, its pid in $LAST_PID.
exec_sleeper() {
	"$top_builddir/tools/handoff-exec" --control "$CONTROL" \
	    --listen "http=tcp://127.0.0.1:$2" --settle 0.2 \
	    --rollback-window "$3" -- \
	    /usr/bin/python3 -c 'import signal; signal.pause()' \
	    >"$T/$1.log" 2>&1 &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
}

# start_udpseq PORT WINDOW: tests/progs/udpseq to 127.0.0.1:PORT, 2000
# numbered datagrams a second, at most WINDOW unanswered, until
# udpseq_done (then 500 more; 100000 at most); each answer "SEQ PID GEN"
# in $T/answers. Pid in $SENDER.
start_udpseq() {
	"$top_builddir/tests/progs/udpseq" -r 2000 -w "$2" -n 100000 \
	    -s "$T/stop-udpseq" -a 500 -t 10000 -l "$T/answers" \
	    127.0.0.1 "$1" >"$T/udpseq.out" 2>"$T/udpseq.log" &
	SENDER=$!
	PIDS="$PIDS $SENDER"
}

# answered_by PID N: the sender's log has N answers or more from PID.
answered_by() {
	[ "$(awk -v p="$1" '$2 == p { n++ } END { print n + 0 }' \
	    "$T/answers")" -ge "$2" ]
}

# udpseq_done: stops the sender and fails unless every datagram it sent
# was answered exactly once (its summary line: lost 0 duplicate 0 wrong 0).
udpseq_done() {
	touch "$T/stop-udpseq"
	reap 120 "$SENDER" "udpseq"
	[ "$STATUS" = 0 ] || fail "udpseq exited $STATUS: $(cat "$T/udpseq.log")"
	log "$(tr '\n' ';' <"$T/udpseq.out")"
	grep -q '^sent [0-9]* answered [0-9]* lost 0 duplicate 0 wrong 0 ' \
	    "$T/udpseq.out" ||
	    fail "datagrams lost or answered twice: $(cat "$T/udpseq.out")"
}

# start_clients NAME SCRIPT ARGS...: python3 SCRIPT ARGS GO OUT, a client
# of tests/ (conn-client.py, http-client.py) that writes "ready" to OUT
# ($T/NAME.out) once connected and waits for a line on the FIFO GO
# ($T/NAME.go, go_fifo) before it sends the rest; its pid in $CLIENT.
start_clients() {
	_cn=$1
	shift
	go_fifo "$_cn"
	python3 "$@" "$T/$_cn.go" "$T/$_cn.out" 2>"$T/$_cn.err" &
	CLIENT=$!
	PIDS="$PIDS $CLIENT"
	wait_for 60 grep -q '^ready$' "$T/$_cn.out" ||
	    fail "the clients did not connect: $(cat "$T/$_cn.err")"
}

# finish_clients NAME: lets them send the rest; their answers are in.
finish_clients() {
	go_on "$1"
	reap 60 "$CLIENT" "the clients"
	grep -q '^done$' "$T/$1.out" ||
	    fail "the clients did not finish: $(cat "$T/$1.err")"
}

# peer_incumbent NAME ARGS...: tests/peer.py as the incumbent on a fresh
# $CONTROL (ARGS: its options), staying until the other side closes;
# its events in $T/NAME.out, its pid in PEER_PID, once it listens.
peer_incumbent() {
	_pn=$1
	shift
	rm -f "$CONTROL"	# it binds the path afresh
	$PEER incumbent --control "$CONTROL" "$@" --then stay --hold 60 \
	    >"$T/$_pn.out" 2>&1 &
	PEER_PID=$!
	PIDS="$PIDS $PEER_PID"
	wait_for 30 grep -q '"event":"listening"' "$T/$_pn.out" ||
	    fail "the peer incumbent did not listen: $(cat "$T/$_pn.out")"
}

# conns_peer NAME [ARGS...]: tests/peer.py as a successor that announces
# the conns extension and stays (ARGS: --conns take|refuse), logging to
# $T/NAME.out; returns once it was given connections; its pid in $PEER_PID.
conns_peer() {
	_pn=$1
	shift
	$PEER successor --control "$CONTROL" --announce conns --then stay \
	    --hold 120 "$@" >"$T/$_pn.out" 2>&1 &
	PEER_PID=$!
	PIDS="$PIDS $PEER_PID"
	wait_for 30 grep -q '"type":"conns"' "$T/$_pn.out" ||
	    fail "$_pn was given no connection: $(tail -n 3 "$T/$_pn.out")"
}

# conns_back NAME: SIGKILL of the conns_peer, which answered for none:
# NAME serves every connection it gave again, and rolls back.
conns_back() {
	kill -KILL "$PEER_PID"
	wait_exit "$PEER_PID" 2>/dev/null
	wait_for 30 logged "$1" "given and not taken (our successor went away): serving them again" ||
	    fail "$1 did not take its connections back"
	wait_for 30 logged "$1" "rolled back" || fail "$1 did not roll back"
}
