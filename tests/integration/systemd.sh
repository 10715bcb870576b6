#!/bin/sh
# systemd's protocols, with its own tools where they exist:
# - systemd-socket-activate passes two sockets (named, then both with the
#   unit's default name); handoff-httpd adopts them by name or address
#   and a plain successor takes them over;
# - a datagram socket as NOTIFY_SOCKET records what each process says:
#   READY=1 from a fresh start, RELOADING=1 and MAINPID=<successor> from
#   the incumbent, READY=1 from the successor, STOPPING=1 only from a
#   main pid that really stops (never from one that handed off).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

command -v systemd-socket-activate >/dev/null ||
    skip "systemd-socket-activate not installed (Debian package systemd)"
# systemd-socket-activate passes no environment of ours; the libtool
# wrapper sets up the library path itself and execs (same pid).
REAL_HTTPD=$HTTPD

# shellcheck disable=SC2046
set -- $(free_ports 4)
p1=$1 p2=$2 p3=$3 p4=$4

# 1. Named sockets, adopted by name.
systemd-socket-activate -l "127.0.0.1:$p1" -l "127.0.0.1:$p2" \
    --fdname=http:admin "$REAL_HTTPD" --control "$CONTROL" \
    --listen "http=tcp://127.0.0.1:$p1" --listen "admin=tcp://127.0.0.1:$p2" \
    --tag v1 >"$T/v1.log" 2>&1 &
act=$!
PIDS="$PIDS $act"
wait_for 30 logged v1 "as 4\." || fail "systemd-socket-activate did not listen"
# systemd-socket-activate starts the program at the first connection.
curl -fsS --max-time 5 "http://127.0.0.1:$p1/" >"$T/first.out" ||
    fail "no answer through socket activation: $(cat "$T/v1.log")"
grep -q "tag=v1" "$T/first.out" || fail "first answer: $(cat "$T/first.out")"
v1=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' "$T/first.out")
logged v1 "socket activation passed 2 fds: adopted 2 (http,admin); added 0; retired 0" ||
    fail "v1 did not adopt both: $(grep activation "$T/v1.log")"
body_has "http://127.0.0.1:$p2/" "pid=$v1 " || fail "admin does not serve from v1"

# A successor takes over what systemd passed.
upgrade "$v1" v2 --listen "http=tcp://127.0.0.1:$p1" \
    --listen "admin=tcp://127.0.0.1:$p2" --tag v2
v2=$NEW_PID
body_has "http://127.0.0.1:$p1/" "pid=$v2 tag=v2" || fail "v2 does not serve http"
body_has "http://127.0.0.1:$p2/" "pid=$v2 tag=v2" || fail "v2 does not serve admin"
"$CTL" stop --control "$CONTROL" >/dev/null || fail "stop v2"
reap_ok 60 "$v2" v2

# 2. Both sockets under the unit's default name: matched by address.
CONTROL=$T/ctl2.sock
systemd-socket-activate -l "127.0.0.1:$p3" -l "127.0.0.1:$p4" \
    --fdname=app.socket:app.socket "$REAL_HTTPD" --control "$CONTROL" \
    --listen "web=tcp://127.0.0.1:$p3" --listen "api=tcp://127.0.0.1:$p4" \
    --tag d1 >"$T/d1.log" 2>&1 &
PIDS="$PIDS $!"
wait_for 30 logged d1 "as 4\." || fail "systemd-socket-activate did not listen"
curl -fsS --max-time 5 "http://127.0.0.1:$p3/" >/dev/null ||
    fail "default names: no answer: $(cat "$T/d1.log")"
logged d1 "socket activation passed 2 fds: adopted 2 (web,api)" ||
    fail "default names not adopted by address: $(cat "$T/d1.log")"
body_has "http://127.0.0.1:$p4/" "tag=d1" || fail "default names: api does not serve"
"$CTL" stop --control "$CONTROL" >/dev/null || fail "stop d1"

# 3. NOTIFY_SOCKET: what each process says.
CONTROL=$T/ctl3.sock
NOTES=$T/notes.jsonl
/usr/bin/python3 "$top_srcdir/tests/notify-recorder.py" "$T/notify.sock" "$NOTES" &
PIDS="$PIDS $!"
wait_for 30 test -S "$T/notify.sock" || fail "notify recorder did not bind"
port=$(free_port)
NOTIFY_SOCKET=$T/notify.sock
export NOTIFY_SOCKET
serve n1 --listen "http=tcp://127.0.0.1:$port" --tag n1
n1=$LAST_PID
upgrade "$n1" n2 --listen "http=tcp://127.0.0.1:$port" --tag n2
n2=$NEW_PID
reap_ok 60 "$n1" n1
"$CTL" stop --control "$CONTROL" >/dev/null || fail "stop n2"
reap_ok 60 "$n2" n2
unset NOTIFY_SOCKET

# said PID FIELD VALUE-ERE: PID sent FIELD=VALUE, in a line of $NOTES as
# tests/notify-recorder.py writes it ({"pid": N, "fields": {...}}): grep,
# not an interpreter for each poll.
said() {
	grep "^{\"pid\": $1, " "$NOTES" | grep -Eq "[{ ]\"$2\": \"$3\"[,}]"
}
wait_for 30 said "$n2" STOPPING 1 || fail "n2 never said STOPPING=1: $(cat "$NOTES")"
said "$n1" READY 1 || fail "n1 never said READY=1: $(cat "$NOTES")"
said "$n1" RELOADING 1 || fail "n1 never said RELOADING=1"
said "$n1" MONOTONIC_USEC '[0-9]+' || fail "RELOADING=1 without MONOTONIC_USEC"
said "$n1" MAINPID "$n2" || fail "n1 never said MAINPID=$n2: $(cat "$NOTES")"
said "$n2" READY 1 || fail "n2 never said READY=1"
said "$n1" STOPPING '[^"]*' && fail "n1 said STOPPING=1 though it handed off"
log "notify: $(wc -l <"$NOTES") messages; n1 $n1 handed MAINPID to n2 $n2"
pass
