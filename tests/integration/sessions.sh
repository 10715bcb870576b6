#!/bin/bash
# Flows that belong to a draining generation: a datagram that begins
# "sess=ID" is answered by the generation that first saw ID, for as long
# as it drains; the one that reads it hands it back along the line
# (handoff_flow_send, the "datagrams" extension). Three generations, the
# two older ones held draining by a request of ours: each session is
# answered by its owner, a new one by the newest, one on a UDP port the
# newest bound itself by the newest; a burst the owner cannot take while
# it is stopped is dropped, not taken over; once an owner has
# exited, its sessions are answered by the newest, and the generation
# after it says so (HANDOFF_PREDECESSOR_GONE).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

port=$(free_port)	# free for UDP too
uport=$port
url="http://127.0.0.1:$port"
listen="--listen http=tcp://127.0.0.1:$port --listen dns=udp://127.0.0.1:$uport"

coproc CLIENT { python3 "$top_srcdir/tests/sess-client.py" 127.0.0.1 "$uport" 3; }
PIDS="$PIDS $CLIENT_PID"

# ask ID [TRIES]: the pid that answered session ID, in $ANSWER; a
# datagram lost is sent again, TRIES times in all (default 1).
ask() {
	_tries=${2:-1}
	while :; do
		echo "$1" >&"${CLIENT[1]}"
		read -r -t 30 _id ANSWER _gen <&"${CLIENT[0]}" ||
		    fail "the session client said nothing for $1"
		[ "$_id" = "$1" ] ||
		    fail "the session client answered $_id for $1"
		_tries=$((_tries - 1))
		[ "$ANSWER" = lost ] && [ "$_tries" -gt 0 ] || break
	done
	case $ANSWER in
	lost|wrong) fail "session $1: $ANSWER $_gen" ;;
	esac
}

# owner ID PID WHO [TRIES]: session ID is answered by PID (WHO).
owner() {
	ask "$1" "${4:-1}"
	[ "$ANSWER" = "$2" ] ||
	    fail "session $1 answered by pid $ANSWER, want $3 (pid $2)"
}

# next TAG [OLD]: TAG serves, OLD (a tag) released to it and draining.
next() {
	# shellcheck disable=SC2086
	serve "$1" $listen --tag "$1" --drain-timeout 120
	[ $# = 1 ] || wait_for 30 logged "$2" "released to pid $LAST_PID" ||
	    fail "$2 was not released to $1"
}

# holding TAG: a request of ours in flight on TAG, in $HELD.
holding() {
	hold HELD
	wait_for 30 has_connections 1 ||
	    fail "the held request never reached $1"
}

next v1
v1=$LAST_PID
owner a "$v1" v1
holding v1
held1=$HELD

next v2 v1
v2=$LAST_PID
owner a "$v1" "v1, which saw it first and drains"
owner b "$v2" "v2, the newest"
owner a "$v1" "v1, again"
holding v2
held2=$HELD

# v3 also binds a UDP port of its own: no older generation has that
# socket, so its sessions are v3's, never handed back (and lost).
uport2=$(free_port)
listen="$listen --listen dns2=udp://127.0.0.1:$uport2"
next v3 v2
v3=$LAST_PID
owner a "$v1" "v1, two generations back"
owner b "$v2" "v2, one back"
owner c "$v3" "v3, the newest"
owner c "$v3" "v3, again"
alive "$v1" && alive "$v2" || fail "v1 or v2 exited while it drained"
one=$(python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(b"sess=own 0", ("127.0.0.1", int(sys.argv[1])))
print(s.recv(70000).split()[0].decode())' "$uport2") ||
    fail "a session on v3's own port got no answer"
[ "$one" = "pid=$v3" ] || fail "a session on v3's own port answered by $one, want v3"

# v1 stopped while session a floods in: v2 cannot hand more back and
# drops them (the network may), rather than answer and take a over; on a
# busy machine v3's line to v2 may fill first, and v3 drops them.
kill -STOP "$v1"
python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(400):
    s.sendto(b"sess=a %d " % i + b"x" * 1000, ("127.0.0.1", int(sys.argv[1])))' "$uport"
wait_for 30 grep -q "session datagrams\? dropped: predecessor pid [0-9]* has not read what we sent yet" \
    "$T/v2.log" "$T/v3.log" ||
    fail "neither v2 nor v3 dropped session datagrams v1 could not take"
kill -CONT "$v1"
# What v1 read late it answered to that sender; ours sees its own. Until
# v1 has read its backlog, the line back to it is full, and a datagram
# may be dropped: the client sends again, as a UDP client does.
owner a "$v1" "v1, still, after it was stopped" 10

# v1's drain ends: its sessions are the newest's.
release "$held1" "$v1"
reap_ok 30 "$v1" "v1, drained"
wait_for 30 logged v2 "predecessor pid $v1 has gone" ||
    fail "v2 was not told that v1 has gone"
owner a "$v3" "v3, once v1 has gone"
owner b "$v2" "v2, which still drains"

release "$held2" "$v2"
reap_ok 30 "$v2" "v2, drained"
owner b "$v3" "v3, once v2 has gone"
owner a "$v3" "v3"
body_has "$url/" "pid=$v3 " || fail "v3 does not answer HTTP"
pass
