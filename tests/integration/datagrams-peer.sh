#!/bin/bash
# The "datagrams" extension against an independent peer (tests/peer.py),
# both ways, and what a broken peer sends.
# 1. handoff-httpd v1 owns session a and drains a request of ours; a
#    peer.py successor that announced the extension sends it datagram
#    messages after released: one of session a, which v1 answers to the
#    client from its own copy of the UDP socket; one of an unknown
#    session, which v1 returns to the peer (a valid datagram message);
#    and three broken ones (data not base64: malformed; an unknown
#    listener; a peer address of another family), each dropped with a
#    line that says why, v1 serving its held request on.
# 2. A peer.py incumbent that announces the extension in its offer, and
#    handoff-httpd v2 taking over from it: a datagram of a session v2
#    has not seen is handed back to the peer, valid, with the client's
#    address; a peer that does not announce it is sent none, and v2
#    answers such datagrams itself.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

use_peer

read -r port uport <<<"$(free_ports 2)"
listen="--listen http=tcp://127.0.0.1:$port --listen dns=udp://127.0.0.1:$uport"

# client NAME: a UDP client that writes "port P" (its own) to
# $T/NAME.out, sends "sess=a 1" to the dns port, then writes each
# datagram that comes ("got ..."), until SIGTERM or 60 s.
client() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(60)
print("port", s.getsockname()[1], flush=True)
s.sendto(b"sess=a 1", ("127.0.0.1", int(sys.argv[1])))
while True:
    print("got", s.recv(70000).decode(), flush=True)' "$uport" >"$T/$1.out" 2>&1 &
	PIDS="$PIDS $!"
	wait_for 30 grep -q "^port " "$T/$1.out" ||
	    fail "the UDP client did not start: $(cat "$T/$1.out")"
	CPORT=$(sed -n 's/^port //p' "$T/$1.out")
}

b64() { printf '%s' "$1" | base64 -w0; }

# datagram LISTENER PEER DATA: a datagram message, as JSON.
datagram() {
	printf '{"type":"datagram","proto":1,"pid":1,"listener":"%s","peer":"%s","data":"%s"}' \
	    "$1" "$2" "$3"
}

# ---- 1. peer.py as the successor
# shellcheck disable=SC2086
serve v1 $listen --tag v1 --drain-timeout 60
v1=$LAST_PID
client c1
wait_for 30 grep -q "^got pid=$v1 tag=v1 gen=1 sess=a 1\$" "$T/c1.out" ||
    fail "v1 did not answer the first datagram: $(cat "$T/c1.out")"
hold held1
wait_for 30 has_connections 1 || fail "the held request never reached v1"
$PEER successor --control "$CONTROL" --announce datagrams \
    --send-after-released "$(datagram dns "127.0.0.1:$CPORT" "$(b64 'sess=a 2')")" \
    --send-after-released "$(datagram dns "127.0.0.1:$CPORT" "$(b64 'sess=z 3')")" \
    --send-after-released "$(datagram dns "127.0.0.1:$CPORT" 'not*base64')" \
    --send-after-released "$(datagram nosuch "127.0.0.1:$CPORT" "$(b64 x)")" \
    --send-after-released "$(datagram dns /tmp/not-inet "$(b64 x)")" \
    --then stay --hold 60 >"$T/peer1.out" 2>&1 &
peer=$!
PIDS="$PIDS $peer"
wait_for 30 grep -q "^got pid=$v1 tag=v1 gen=1 sess=a 2\$" "$T/c1.out" ||
    fail "v1 did not answer session a handed back to it: $(cat "$T/c1.out")"
wait_for 30 grep -q '"type":"datagram"' "$T/peer1.out" ||
    fail "v1 did not return session z to its successor: $(tail -n 5 "$T/peer1.out")"
grep '"type":"datagram"' "$T/peer1.out" | grep -q '"valid":true' ||
    fail "the returned datagram is not valid: $(grep datagram "$T/peer1.out")"
grep '"type":"datagram"' "$T/peer1.out" | grep -q "\"peer\":\"127.0.0.1:$CPORT\"" ||
    fail "the returned datagram lost the client's address"
grep '"type":"datagram"' "$T/peer1.out" | grep -q "\"data\":\"$(b64 'sess=z 3')\"" ||
    fail "the returned datagram lost its bytes"
wait_for 30 logged v1 "successor pid $peer: malformed: datagram: field \"data\" is not base64 (RFC 4648, padded) of at most 32768 bytes; ignored" ||
    fail "v1 did not drop the datagram that is not base64"
wait_for 30 logged v1 "sent a datagram of \"nosuch\", which is not a datagram listener we share with it: dropped" ||
    fail "v1 did not drop the datagram of an unknown listener"
wait_for 30 logged v1 "sent a datagram from \"/tmp/not-inet\", which is not a numeric inet address: dropped" ||
    fail "v1 did not drop the datagram from an address of another family"
alive "$v1" || fail "v1 exited on broken datagram messages"
release "$held1" "$v1"
reap_ok 30 "$v1" "v1, drained"
kill "$peer" 2>/dev/null
wait_exit "$peer"

# ---- 2. peer.py as the incumbent, handoff-httpd v2 its successor
for ext in superseded,datagrams superseded; do
	rm -f "$CONTROL"	# peer.py binds it afresh
	read -r port uport <<<"$(free_ports 2)"
	listen="--listen http=tcp://127.0.0.1:$port --listen dns=udp://127.0.0.1:$uport"
	$PEER incumbent --control "$CONTROL" --extensions "$ext" \
	    --listen "http=tcp://127.0.0.1:$port" \
	    --listen "dns=udp://127.0.0.1:$uport" \
	    --then stay --hold 60 >"$T/peer2.out" 2>&1 &
	peer=$!
	PIDS="$PIDS $peer"
	wait_for 30 grep -q '"event":"listening"' "$T/peer2.out" ||
	    fail "the peer incumbent did not listen: $(cat "$T/peer2.out")"
	# shellcheck disable=SC2086
	start_httpd v2 $listen --tag v2
	v2=$LAST_PID
	wait_for 30 logged v2 "released by pid $peer" ||
	    fail "v2 was not released by the peer: $(tail -n 3 "$T/v2.log")"
	client c2
	if [ "$ext" = superseded ]; then
		# No extension: nobody to hand it to, v2 answers.
		wait_for 30 grep -q "^got pid=$v2 tag=v2 gen=2 sess=a 1\$" "$T/c2.out" ||
		    fail "v2 did not answer a session it could not hand back: $(cat "$T/c2.out")"
		grep -q '"type":"datagram"' "$T/peer2.out" &&
		    fail "v2 sent a datagram to a peer without the extension"
	else
		wait_for 30 grep -q '"type":"datagram"' "$T/peer2.out" ||
		    fail "v2 did not hand session a back to the peer"
		grep '"type":"datagram"' "$T/peer2.out" | grep -q '"valid":true' ||
		    fail "v2's datagram is not valid: $(grep datagram "$T/peer2.out")"
		grep '"type":"datagram"' "$T/peer2.out" |
		    grep -q "\"peer\":\"127.0.0.1:$CPORT\",\"data\":\"$(b64 'sess=a 1')\"\\|\"data\":\"$(b64 'sess=a 1')\".*\"peer\":\"127.0.0.1:$CPORT\"" ||
		    fail "v2's datagram does not carry the client and its bytes: $(grep datagram "$T/peer2.out")"
	fi
	kill "$peer" 2>/dev/null
	wait_exit "$peer"
	wait_for 30 logged v2 "predecessor pid $peer has gone" ||
	    fail "v2 was not told that the peer has gone"
	kill -TERM "$v2"
	reap_ok 30 "$v2" "v2, stopped"
done
pass
