#!/bin/sh
# An IPv6 loopback listener beside an IPv4 one: both serve before and after
# a takeover, adopted as they are.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

python3 -c 'import socket
socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>"$T/v6.err" ||
    skip "::1 is not available: $(tail -n 1 "$T/v6.err")"
read -r port4 port6 <<<"$(free_ports 2)"
url4="http://127.0.0.1:$port4/"
url6="http://[::1]:$port6/"
g6() { curl -fsS -g --max-time 5 "$url6" | grep -q "$1"; }
args="--listen v4=tcp://127.0.0.1:$port4 --listen v6=tcp://[::1]:$port6"

# shellcheck disable=SC2086
serve v1 $args --tag v1
v1=$LAST_PID
logged v1 "bound v6=\[::1\]:$port6" || fail "v1 did not log v6=[::1]:$port6"
body_has "$url4" "pid=$v1 tag=v1" || fail "v1 does not serve $url4"
g6 "pid=$v1 tag=v1" || fail "v1 does not serve $url6"

# shellcheck disable=SC2086
upgrade "$v1" v2 $args --tag v2
v2=$NEW_PID
body_has "$url4" "pid=$v2 tag=v2 gen=2" || fail "v2 does not serve $url4"
g6 "pid=$v2 tag=v2 gen=2" || fail "v2 does not serve $url6"
logged v2 "took over from pid $v1: adopted 3 (v4,v6,state); added 0; retired 0\$" ||
    fail "v2 did not adopt both: $(grep 'took over' "$T/v2.log")"
status_json | grep -q "\"address\": \"\[::1\]:$port6\"" ||
    fail "status lacks [::1]:$port6: $(status_json)"
pass
