#!/bin/sh
# Any spelling of the control path is one control socket: a start with a
# relative path, then takeovers with the absolute path, with ./ and ..
# from another directory, and through a symbolic link to the directory;
# handoffctl with each spelling too. One length limit everywhere: 107
# bytes, checked once the path is absolute, with a message that says so.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

port=$(free_port)
url="http://127.0.0.1:$port"
listen="http=tcp://127.0.0.1:$port"
mkdir -m 700 "$T/run" "$T/elsewhere" || fail "mkdir"
ln -s "$T/run" "$T/link" || fail "ln -s"
CONTROL="$T/run/ctl.sock"

# start_in DIR NAME PATH: handoff-httpd started from DIR with --control
# PATH; waits until it serves; pid in $LAST_PID.
start_in() {
	(cd "$1" && exec "$HTTPD" --control "$3" --listen "$listen" \
	    --tag "$2" --drain-timeout 10) >"$T/$2.log" 2>&1 &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
	wait_for 60 is_serving "$LAST_PID" ||
	    fail "$2 (--control $3 from $1) never served: $(tail -n 3 "$T/$2.log")"
}

start_in "$T/run" v1 ctl.sock
prev=$LAST_PID
n=1
for spelling in "$T/elsewhere $CONTROL" "$T/run ./ctl.sock" \
    "$T/elsewhere ../run/ctl.sock" "$T/elsewhere ../run//./ctl.sock" \
    "$T $T/link/ctl.sock"; do
	set -- $spelling
	n=$((n + 1))
	start_in "$1" "v$n" "$2"
	reap_ok 60 "$prev" "v$((n - 1)), replaced by --control $2 from $1"
	body_has "$url/" "pid=$LAST_PID tag=v$n gen=$n" ||
	    fail "v$n (--control $2 from $1) does not answer"
	prev=$LAST_PID
done
(cd "$T/elsewhere" && "$CTL" status --control ../run/ctl.sock) >"$T/st.out" 2>&1 ||
    fail "handoffctl status with a relative path: $(cat "$T/st.out")"
grep -q "^pid $prev " "$T/st.out" || fail "status names another: $(cat "$T/st.out")"
grep -q "@control  *unix seqpacket $T/run/ctl.sock$" "$T/st.out" ||
    fail "the control socket is not listed by its absolute path: $(cat "$T/st.out")"

# 107 bytes once absolute: refused with the reason, nothing left behind.
pad=$(printf '%0*d' $((108 - ${#T} - 5)) 0)
long="$T/run/$pad"		# 108 bytes once absolute
"$HTTPD" --control "$long" --listen "http=tcp://127.0.0.1:$(free_port)" \
    >"$T/long.out" 2>&1 && fail "a 108-byte control path was accepted"
grep -q "must be 1 to 107 bytes" "$T/long.out" ||
    fail "unclear refusal: $(cat "$T/long.out")"
(cd "$T/run" && "$HTTPD" --control "$pad" \
    --listen "http=tcp://127.0.0.1:$(free_port)") >"$T/rel.out" 2>&1 &&
    fail "a relative path of 108 bytes once absolute was accepted"
grep -q "is 108 bytes once absolute" "$T/rel.out" ||
    fail "unclear refusal of the relative path: $(cat "$T/rel.out")"
[ ! -e "$long" ] || fail "the refused start left $long"
"$CTL" status --control "$long" >"$T/ctl-long.out" 2>&1
[ $? != 0 ] || fail "handoffctl accepted a 108-byte path"
grep -q "is 108 bytes; a socket path holds at most 107" "$T/ctl-long.out" ||
    fail "unclear handoffctl refusal: $(cat "$T/ctl-long.out")"
"$CTL" stop --control "$CONTROL" >/dev/null 2>&1 || fail "stop failed"
reap_ok 60 "$prev" "the last generation, stopped"
pass
