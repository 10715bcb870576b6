#!/bin/sh
# Every message the library sends validates against proto/schema: offer,
# fds, released, progress, report, stopping and error from handoff-httpd as
# the incumbent; hello, ready and error from it as the successor; takeover
# and superseded from it to a draining predecessor that announced the chain
# extension, sent, and forwarded down the chain (tests/peer.py plays the
# other side). Invalid messages are rejected by the schemas and, with the
# same verdict, by the library itself.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

PY=/usr/bin/python3
PEER="$PY $top_srcdir/tests/peer.py"
$PY -c 'import jsonschema' 2>/dev/null || skip "$PY has no jsonschema module"

# field LOG TYPE KEY: a field of the first message of TYPE received in LOG.
field() { $PEER find "$T/$1.out" --type "$2" --field "$3"; }
# no_invalid LOG: every message received was valid and the peer exited 0.
no_invalid() {
	! grep -q '"valid":false' "$T/$1.out" || fail "$1: invalid message: $(grep '"valid":false' "$T/$1.out")"
	[ "$($PEER find "$T/$1.out" --event exit --field status)" = 0 ] ||
	    fail "$1: peer did not exit 0: $(tail -n 3 "$T/$1.out")"
}
# raw NAME ARGS...: one raw conversation with the incumbent.
raw() { _n=$1; shift; $PEER raw --control "$CONTROL" "$@" >"$T/$_n.out" 2>&1; }

port=$(free_port)
start_httpd v1 --listen "http=tcp://127.0.0.1:$port" \
    --listen "sock=unix:$T/http.sock" --tag v1
v1=$LAST_PID
wait_for 10 is_serving "$v1" || fail "v1 (pid $v1) never served"

# report
raw status --send '{"type":"status","proto":1}' || fail "status: peer exit $?"
no_invalid status
[ "$(field status report msg.state)" = serving ] || fail "report state is not serving"
[ "$(field status report msg.listeners.0.name)" = @control ] ||
    fail "report does not list @control first"

# error, one per code the incumbent sends on a first message
check_error() {	# NAME CODE ARGS...
	_n=$1 _c=$2; shift 2
	raw "$_n" "$@"
	no_invalid "$_n"
	[ "$(field "$_n" error msg.code)" = "$_c" ] ||
	    fail "$_n: want error $_c, got: $(tail -n 3 "$T/$_n.out")"
}
check_error garbage malformed --send 'not json'
check_error version version --send '{"type":"status","proto":2}'
check_error unknown unknown-type --send '{"type":"frob","proto":1}'
check_error unexpected unexpected --send '{"type":"hammer","proto":1}'
check_error fds malformed --fds 2 --send '{"type":"status","proto":1}'
check_error big malformed --send-big 70000
check_error toomany too-many-fds \
    --send '{"type":"hello","proto":1,"pid":1,"tag":"x","max_fds":1}'
[ "$(field fds error msg.message)" = "2 unsolicited fds closed" ] ||
    fail "unsolicited fds: wrong message: $(field fds error msg.message)"

# offer, fds, released, progress: a full takeover by the peer, fds
# verified, while v1 has a request in flight. The peer then says what a
# chain-aware successor says (takeover ended, and superseded by 0 with keep
# 0): v1 takes both and hammers itself, which the peer sees as end of file.
curl -sS --max-time 120 "http://127.0.0.1:$port/slow?ms=100000" >"$T/slow1.body" 2>&1 &
slow1=$!
PIDS="$PIDS $slow1"
wait_for 10 has_connections 1 || fail "the slow request never reached v1"
$PEER successor --control "$CONTROL" --tag peer --max-draining 1 \
    --takeover 0 --superseded 0 --keep 0 --then stay --hold 20 >"$T/succ.out" 2>&1
no_invalid succ
[ "$(grep -c '"event":"verify","name":"[^"]*","ok":true' "$T/succ.out")" = 4 ] ||
    fail "peer did not verify 4 fds (@control, http, sock, state): $(grep verify "$T/succ.out")"
[ "$(field succ offer msg.count)" = 4 ] || fail "offer count is not 4"
[ "$(field succ offer msg.extensions)" = '["superseded","datagrams","conns"]' ] ||
    fail "offer.extensions: $(field succ offer msg.extensions)"
[ "$(field succ released msg.pid)" = "$v1" ] || fail "released pid is not $v1"
[ "$(field succ released msg.connections)" = 1 ] || fail "released does not count the slow request"
# The first progress comes with the drain clock running: what released
# said, less the moments since (PROTOCOL.md 4.6a), never 0.
rem=$(field succ progress msg.remaining_ms)
deadline=$(field succ released msg.deadline_ms)
[ "$rem" -gt 0 ] && [ "$rem" -le "$deadline" ] ||
    fail "the first progress says remaining_ms $rem after released said deadline_ms $deadline"
[ "$(field succ progress msg.generation) $(field succ progress msg.tag)" = "1 v1" ] ||
    fail "progress does not name generation 1, tag v1: $(field succ progress msg)"
[ "$($PEER find "$T/succ.out" --event sent --type superseded --field msg.keep)" = 0 ] ||
    fail "the peer did not send superseded with keep 0"
wait_exit "$v1"
[ "$STATUS" = 0 ] || fail "v1 exit $STATUS after releasing, want 0"
p=$($PEER find "$T/succ.out" --event sent --type hello --field msg.pid)
logged v1 "successor pid $p serves on: its takeover ended before ready" ||
    fail "v1 did not take the peer's takeover"
logged v1 "hammered: more than 1 older generations would drain" ||
    fail "v1 did not take the peer's superseded: $(tail -n 3 "$T/v1.log")"
wait_exit "$slow1"

# inc_event LOG EVENT FIELD: a field of the first such event of a peer
# incumbent (takeover, superseded, released...).
inc_event() { $PEER find "$T/$1.out" --event "$2" --field "$3"; }
# released_to LOG: the peer incumbent of LOG has released its successor.
released_to() { grep -q '"event":"released"' "$T/$1.out"; }
# incumbent LOG ARGS...: the peer as a generation 1 that announces the
# chain extension and stays, reading, after released; pid in $inc.
incumbent() {
	_n=$1; shift
	rm -f "$CONTROL"
	$PEER incumbent --control "$CONTROL" --then stay --hold 60 "$@" \
	    >"$T/$_n.out" 2>&1 &
	inc=$!
	PIDS="$PIDS $inc"
	wait_for 10 grep -q '"event":"listening"' "$T/$_n.out" ||
	    fail "peer incumbent $_n never listened"
}

# hello, ready: handoff-httpd as successor of the peer
incumbent inc --listen "http=tcp://127.0.0.1:$port" \
    --listen "old=tcp://127.0.0.1:0" --state '{"from":"peer"}' --batch-size 2
start_httpd v2 --listen "http=tcp://127.0.0.1:$port" --tag v2 --max-draining 3
v2=$LAST_PID
wait_for 10 released_to inc || fail "the peer never released v2: $(tail -n 3 "$T/inc.out")"
[ "$(field inc ready msg.adopted)" = '["http"]' ] || fail "ready.adopted: $(field inc ready msg.adopted)"
[ "$(field inc ready msg.retired)" = '["old"]' ] || fail "ready.retired: $(field inc ready msg.retired)"
[ "$(field inc ready msg.max_draining)" = 3 ] || fail "ready.max_draining is not 3"
[ "$(field inc hello msg.tag)" = v2 ] || fail "hello.tag is not v2"
wait_for 10 is_serving "$v2" || fail "v2 (pid $v2) never served"
body_has "http://127.0.0.1:$port/" "pid=$v2 tag=v2 gen=2" || fail "v2 does not answer"

# takeover: a process says hello to v2 and goes before ready; v2 tells
# its draining predecessor, the peer, both.
$PEER successor --control "$CONTROL" --stop-after offer >"$T/early.out" 2>&1 ||
    fail "early successor: peer exit $?: $(tail -n 3 "$T/early.out")"
early=$($PEER find "$T/early.out" --event sent --type hello --field msg.pid)
wait_for 10 grep -q '"event":"takeover","by":0' "$T/inc.out" ||
    fail "v2 never said the takeover by $early ended: $(tail -n 3 "$T/inc.out")"
[ "$(inc_event inc takeover by)" = "$early" ] ||
    fail "first takeover is not by pid $early: $(inc_event inc takeover by)"

# stopping; superseded by 0 to the peer first
raw stop --send '{"type":"stop","proto":1}' || fail "stop: peer exit $?"
no_invalid stop
[ "$(field stop stopping msg.pid)" = "$v2" ] || fail "stopping pid is not $v2"
wait_exit "$v2"
[ "$STATUS" = 0 ] || fail "v2 exit $STATUS after stop, want 0"
wait_exit "$inc"
[ "$STATUS" = 0 ] || fail "peer incumbent exit $STATUS: $(tail -n 3 "$T/inc.out")"
no_invalid inc
[ "$(field inc superseded msg.pid) $(field inc superseded msg.by)" = "$v2 0" ] ||
    fail "superseded at the stop: $(field inc superseded msg)"
[ "$(field inc superseded msg.keep) $(field inc superseded msg.max_draining)" = "3 3" ] ||
    fail "superseded at the stop does not keep 3 of 3 (a stop hammers none): $(field inc superseded msg)"

# An incumbent that names no extension is sent neither takeover nor
# superseded: not for a takeover of its successor, not for its stop.
incumbent plain --listen "http=tcp://127.0.0.1:$port" --extensions ''
start_httpd v2b --listen "http=tcp://127.0.0.1:$port" --tag v2b
v2b=$LAST_PID
wait_for 10 released_to plain || fail "the peer never released v2b: $(tail -n 3 "$T/plain.out")"
grep '"type":"offer"' "$T/plain.out" | grep -q '"extensions"' && fail "the peer named an extension"
wait_for 10 is_serving "$v2b" || fail "v2b (pid $v2b) never served"
$PEER successor --control "$CONTROL" --stop-after offer >"$T/early2.out" 2>&1 ||
    fail "early successor: peer exit $?: $(tail -n 3 "$T/early2.out")"
wait_for 10 logged v2b "went away before ready" || fail "v2b did not see the early successor go"
raw stop2 --send '{"type":"stop","proto":1}' || fail "stop: peer exit $?"
wait_exit "$v2b"
[ "$STATUS" = 0 ] || fail "v2b exit $STATUS after stop, want 0"
wait_exit "$inc"
[ "$STATUS" = 0 ] || fail "peer incumbent exit $STATUS: $(tail -n 3 "$T/plain.out")"
no_invalid plain
! grep -Eq '"type":"(takeover|superseded)"' "$T/plain.out" ||
    fail "v2b sent chain messages to a predecessor without the extension: $(grep -E 'takeover|superseded' "$T/plain.out")"

# error from the successor side: an offer without @control
rm -f "$CONTROL"
$PEER incumbent --control "$CONTROL" --no-control \
    --listen "http=tcp://127.0.0.1:$port" >"$T/noctl.out" 2>&1 &
inc=$!
PIDS="$PIDS $inc"
wait_for 10 grep -q '"event":"listening"' "$T/noctl.out" || fail "peer incumbent never listened"
start_httpd v3 --listen "http=tcp://127.0.0.1:$port" --tag v3
wait_exit "$LAST_PID"
[ "$STATUS" = 1 ] || fail "v3 exit $STATUS with no @control offered, want 1"
wait_exit "$inc"
[ "$STATUS" = 4 ] || fail "peer incumbent exit $STATUS, want 4 (error received)"
[ "$(field noctl error msg.code)" = mismatch ] || fail "successor error is not mismatch"
! grep -q '"valid":false' "$T/noctl.out" || fail "invalid error message from the successor"

# The chain: the peer drains while a real c2 hands over to c3, which
# hands over to c4 (handoffctl upgrade). c2 tells the peer of the takeover
# and that it is superseded, and c3 reports c2 draining; c4's cap of 1
# makes c3 tell c2 to keep 0, which c2 forwards to the peer before it
# hammers itself.
incumbent chain --listen "http=tcp://127.0.0.1:$port"
start_httpd c2 --listen "http=tcp://127.0.0.1:$port" --tag c2
c2=$LAST_PID
wait_for 10 released_to chain || fail "the peer never released c2: $(tail -n 3 "$T/chain.out")"
wait_for 10 is_serving "$c2" || fail "c2 (pid $c2) never served"
# In flight on c2 until its hammer.
curl -sS --max-time 120 "http://127.0.0.1:$port/slow?ms=100000" >"$T/slow.body" 2>&1 &
slow=$!
PIDS="$PIDS $slow"
wait_for 10 has_connections 1 || fail "the slow request never reached c2"
ctl_upgrade c3 --listen "http=tcp://127.0.0.1:$port"
c3=$NEW_PID
PIDS="$PIDS $c3"
wait_for 10 grep -q '"event":"superseded"' "$T/chain.out" ||
    fail "c2 never said it was superseded: $(tail -n 3 "$T/chain.out")"
[ "$(inc_event chain takeover by)" = "$c3" ] ||
    fail "c2 did not say pid $c3 was taking over: $(tail -n 3 "$T/chain.out")"
[ "$(field chain superseded msg.by) $(field chain superseded msg.keep)" = "$c3 3" ] ||
    fail "c2's superseded is not by $c3 keeping 3: $(field chain superseded msg)"
c2_draining() {
	raw status-c3 --send '{"type":"status","proto":1}' &&
	    [ "$(field status-c3 report msg.draining.0.pid)" = "$c2" ]
}
wait_for 10 c2_draining || fail "c3 does not report c2 draining: $(field status-c3 report msg)"
no_invalid status-c3
[ "$(field status-c3 report msg.draining.0.generation) $(field status-c3 report msg.draining.0.tag)" = "2 c2" ] ||
    fail "c3 reports c2 without generation 2, tag c2: $(field status-c3 report msg.draining)"
ctl_upgrade c4 --listen "http=tcp://127.0.0.1:$port" --max-draining 1
c4=$NEW_PID
PIDS="$PIDS $c4"
reap 15 "$c2" "c2, told to keep 0"
[ "$STATUS" = 0 ] || fail "c2 exit $STATUS after its hammer, want 0"
logged c2 "hammered: more than 1 older generations would drain" ||
    fail "c2 does not say why it was hammered"
reap 15 "$inc" "the peer, told to keep 0"
[ "$STATUS" = 0 ] || fail "peer incumbent exit $STATUS: $(tail -n 3 "$T/chain.out")"
no_invalid chain
grep '"event":"superseded"' "$T/chain.out" | tail -n 1 |
    grep -q "\"by\":$c4,\"keep\":0,\"max_draining\":1" ||
    fail "c2 did not forward superseded by $c4 keeping 0: $(grep superseded "$T/chain.out")"
grep -q '"event":"hammered"' "$T/chain.out" || fail "the peer was not hammered"
reap 15 "$slow" "the slow request c2 was hammered with"
wait_for 15 gone "$c3" || fail "c3 (pid $c3) did not exit after handing over to c4"
# Not our child: wait_exit only takes it off $PIDS (wait says 127), so that
# cleanup does not kill whoever reuses its pid.
wait_exit "$c3" 2>/dev/null

# Schemas and library agree: invalid lines are rejected by both (error
# malformed, version or unknown-type), valid lines pass both (as a first
# message the library then answers "unexpected"). c4 serves.
long=$($PY -c 'print("n" * 65)')
# fds listeners are columns: one value per fd in each.
col='"kind":["tcp"],"family":["inet"],"socktype":["stream"],"address":["127.0.0.1:1"],"listening":[true],"spec":[null]'
empty='"name":[],"kind":[],"family":[],"socktype":[],"address":[],"listening":[],"spec":[]'
many=$($PY -c 'import json; n=253; print(json.dumps({"name": ["n%d" % i for i in range(n)], "kind": ["tcp"] * n, "family": ["inet"] * n, "socktype": ["stream"] * n, "address": ["127.0.0.1:1"] * n, "listening": [True] * n, "spec": [None] * n})[1:-1])')
cat >"$T/invalid.jsonl" <<EOF
[1,2]
{"type":1,"proto":1}
{"type":"status"}
{"type":"status","proto":"1"}
{"type":"status","proto":true}
{"type":"status","proto":1.0}
{"type":"status","proto":2}
{"type":"frob","proto":1}
{"type":"listener","proto":1}
{"type":"status","proto":1,"type":"stop"}
{"type":"hello","proto":1,"pid":0,"max_fds":10}
{"type":"hello","proto":1,"pid":1}
{"type":"hello","proto":1,"pid":1,"max_fds":-1}
{"type":"hello","proto":1,"pid":2147483648,"max_fds":1}
{"type":"hello","proto":1,"pid":1,"max_fds":1,"tag":7}
{"type":"hello","proto":1,"pid":1,"max_fds":1,"tag":"a\u0000b"}
{"type":"offer","proto":1,"pid":1,"generation":0,"tag":"","count":0,"batches":0,"state":null}
{"type":"offer","proto":1,"pid":1,"generation":1,"tag":"","count":0,"batches":0}
{"type":"offer","proto":1,"pid":1,"generation":1,"tag":"","count":0,"batches":0,"state":[]}
{"type":"offer","proto":1,"pid":1,"generation":1,"count":0,"batches":0,"state":null}
{"type":"fds","proto":1,"batch":0}
{"type":"fds","proto":1,"batch":-1,"listeners":{$empty}}
{"type":"fds","proto":1,"batch":0,"listeners":[]}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":["a b"],$col}}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":["$long"],$col}}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":[""],$col}}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":["a"],"kind":["sctp"],"family":["inet"],"socktype":["stream"],"address":["x"],"listening":[true],"spec":[null]}}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":["a"],"kind":["tcp"],"family":["ipx"],"socktype":["stream"],"address":["x"],"listening":[true],"spec":[null]}}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":["a"],"kind":["tcp"],"family":["inet"],"socktype":["raw"],"address":["x"],"listening":[true],"spec":[null]}}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":["a"],"kind":["tcp"],"family":["inet"],"socktype":["stream"],"listening":[true],"spec":[null]}}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":["a"],"kind":["tcp"],"family":["inet"],"socktype":["stream"],"address":["x"],"listening":["yes"],"spec":[null]}}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":["a"],"kind":["tcp"],"family":["inet"],"socktype":["stream"],"address":["x"],"listening":[true],"spec":[7]}}
{"type":"fds","proto":1,"batch":0,"listeners":{$many}}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":"a","kind":"tcp","family":"inet","socktype":"stream","address":"x","listening":true,"spec":null}}
{"type":"fds","proto":1,"batch":0,"listeners":{"name":["a"],"kind":"sctp","family":"inet","socktype":"stream","address":"x","listening":true,"spec":null}}
{"type":"ready","proto":1,"pid":1,"adopted":["a b"],"added":[],"retired":[]}
{"type":"ready","proto":1,"pid":1,"adopted":[],"added":[""],"retired":[]}
{"type":"ready","proto":1,"pid":1,"adopted":[],"added":[]}
{"type":"released","proto":1,"pid":1,"connections":0,"deadline_ms":-1}
{"type":"stopping","proto":1,"pid":1,"deadline_ms":0}
{"type":"report","proto":1,"pid":1,"generation":1,"tag":"","state":"dead","connections":0,"listeners":[]}
{"type":"report","proto":1,"pid":1,"generation":1,"tag":"","state":"serving","connections":0,"listeners":{}}
{"type":"error","proto":1,"code":"x"}
{"type":"error","proto":1,"code":"$long","message":""}
{"type":"error","proto":1,"code":"x","message":"a\u0000b"}
{"type":"ready","proto":1,"pid":1,"adopted":[],"added":[],"retired":[],"max_draining":-1}
{"type":"ready","proto":1,"pid":1,"adopted":[],"added":[],"retired":[],"max_draining":2147483648}
{"type":"progress","proto":1,"pid":1,"connections":0,"remaining_ms":0,"generation":0}
{"type":"progress","proto":1,"pid":1,"connections":0,"remaining_ms":0,"tag":7}
{"type":"progress","proto":1,"pid":1,"connections":0,"remaining_ms":0,"draining":[{"pid":2,"connections":0,"remaining_ms":0,"tag":null}]}
{"type":"report","proto":1,"pid":1,"generation":1,"tag":"","state":"serving","connections":0,"listeners":[],"draining":[{"pid":2,"connections":0,"remaining_ms":0,"generation":1.0}]}
{"type":"takeover","proto":1,"pid":1}
{"type":"takeover","proto":1,"pid":0,"by":1}
{"type":"takeover","proto":1,"pid":1,"by":-1}
{"type":"superseded","proto":1,"pid":1,"by":0}
{"type":"superseded","proto":1,"pid":1,"by":0,"keep":-1}
{"type":"superseded","proto":1,"pid":1,"by":0,"keep":"1"}
{"type":"superseded","proto":1,"pid":1,"by":0,"keep":1,"max_draining":-1}
{"type":"datagram","proto":1,"pid":1,"listener":"dns","data":"eA=="}
{"type":"datagram","proto":1,"pid":0,"listener":"dns","peer":"1.2.3.4:5","data":"eA=="}
{"type":"datagram","proto":1,"pid":1,"listener":"a b","peer":"1.2.3.4:5","data":"eA=="}
{"type":"datagram","proto":1,"pid":1,"listener":"dns","peer":"1.2.3.4:5","data":"eA="}
{"type":"datagram","proto":1,"pid":1,"listener":"dns","peer":"1.2.3.4:5","data":"e=A="}
{"type":"datagram","proto":1,"pid":1,"listener":"dns","peer":"1.2.3.4:5","data":"eA*="}
{"type":"datagram","proto":1,"pid":1,"listener":"dns","peer":"1.2.3.4:5","data":7}
{"type":"datagram","proto":1,"pid":1,"listener":"dns","peer":"1.2.3.4:5","data":"$(head -c 32770 /dev/zero | base64 -w0)"}
{"type":"conns","proto":1,"pid":1,"conns":{"id":[1],"listener":"http","peer":"127.0.0.1:5","data":""}}
{"type":"conns","proto":1,"pid":1,"conns":{"id":[0],"listener":"http","peer":"127.0.0.1:5","local":"127.0.0.1:80","data":""}}
{"type":"conns","proto":1,"pid":1,"conns":{"id":[1],"listener":"http","peer":"127.0.0.1:5","local":"127.0.0.1:80","data":"x"}}
{"type":"conns","proto":1,"pid":1,"conns":{"id":[1],"listener":"http","peer":"127.0.0.1:5","local":"127.0.0.1:80","data":"","state":[[1]]}}
{"type":"conns","proto":1,"pid":1,"conns":{}}
{"type":"conns","proto":1,"pid":1,"conns":[]}
{"type":"conns","proto":1,"pid":1,"conns":{"id":1,"listener":"http","peer":"127.0.0.1:5","local":"127.0.0.1:80","data":""}}
{"type":"conns","proto":1,"pid":1,"conns":{"id":[$(seq -s, 253)],"listener":"http","peer":"127.0.0.1:5","local":"127.0.0.1:80","data":""}}
{"type":"conns","proto":1,"pid":1,"conns":{"id":[1],"inode":0,"listener":"http","peer":"127.0.0.1:5","local":"127.0.0.1:80","data":""}}
{"type":"conns","proto":1,"pid":1,"conns":{"id":[1],"inode":["7"],"listener":"http","peer":"127.0.0.1:5","local":"127.0.0.1:80","data":""}}
{"type":"conns_taken","proto":1,"pid":1,"taken":[0],"refused":[]}
{"type":"conns_taken","proto":1,"pid":1,"taken":[]}
EOF
cat >"$T/valid.jsonl" <<EOF
{"type":"offer","proto":1,"pid":1,"generation":1,"tag":"","count":0,"batches":0,"state":null,"extra":[1]}
{"type":"offer","proto":1,"pid":2147483647,"generation":7,"tag":"t","count":1,"batches":1,"state":{"a":1}}
{"type":"fds","proto":1,"batch":0,"listeners":{$empty}}
{"type":"fds","proto":1,"batch":1,"listeners":{"name":["a","b"],"kind":"tcp","family":"inet","socktype":"stream","address":["127.0.0.1:1","127.0.0.1:2"],"listening":true,"spec":null}}
{"type":"fds","proto":1,"batch":3,"listeners":{"name":["@control","a.b:c-d_e"],"kind":["unix","tcp"],"family":["unix","inet"],"socktype":["seqpacket","stream"],"address":["/x","127.0.0.1:1"],"listening":[true,true],"spec":[null,"tcp://127.0.0.1:1"],"more":[1]}}
{"type":"ready","proto":1,"pid":1,"adopted":["a"],"added":["b","c"],"retired":[]}
{"type":"released","proto":1,"pid":1,"connections":0,"deadline_ms":0}
{"type":"stopping","proto":1,"pid":1,"connections":5,"deadline_ms":30000}
{"type":"report","proto":1,"pid":1,"generation":2,"tag":"","state":"draining","connections":0,"listeners":[],"successor":null,"predecessor":"whatever"}
{"type":"error","proto":1,"code":"not-a-known-code","message":""}
{"type":"hammer","proto":1,"why":"unknown fields are ignored"}
{"type":"offer","proto":1,"pid":1,"generation":1,"tag":"","count":0,"batches":0,"state":null,"extensions":["superseded","not-yet-known"]}
{"type":"ready","proto":1,"pid":1,"adopted":[],"added":[],"retired":[],"max_draining":0}
{"type":"progress","proto":1,"pid":1,"generation":3,"tag":"v3","connections":2,"remaining_ms":100,"draining":[{"pid":2,"generation":2,"tag":"","connections":0,"remaining_ms":5},{"pid":3,"connections":1,"remaining_ms":0}]}
{"type":"report","proto":1,"pid":1,"generation":4,"tag":"","state":"serving","connections":0,"listeners":[],"draining":[{"pid":3,"generation":3,"tag":"v3","connections":1,"remaining_ms":7}]}
{"type":"takeover","proto":1,"pid":1,"by":0}
{"type":"takeover","proto":1,"pid":2147483647,"by":2147483647}
{"type":"superseded","proto":1,"pid":1,"by":0,"keep":0}
{"type":"superseded","proto":1,"pid":1,"by":5,"keep":3,"max_draining":4}
{"type":"datagram","proto":1,"pid":1,"listener":"dns","peer":"1.2.3.4:5","data":""}
{"type":"datagram","proto":1,"pid":1,"listener":"dns","peer":"[::1]:53","data":"eHk=","more":1}
{"type":"datagram","proto":1,"pid":1,"listener":"dns","peer":"@abstract","data":"$(head -c 32768 /dev/zero | base64 -w0)"}
{"type":"conns","proto":1,"pid":1,"conns":{"id":[],"listener":[],"peer":[],"local":[],"data":[]}}
{"type":"conns","proto":1,"pid":1,"conns":{"id":[7],"listener":"http","peer":"[::1]:5","local":"[::1]:80","data":"R0VUIC8=","state":{"n":2}}}
{"type":"conns","proto":1,"pid":1,"conns":{"id":[8,9],"inode":[9223372036854775807,5],"listener":["http","b"],"peer":["127.0.0.1:5","@x"],"local":"127.0.0.1:80","data":"","state":[null,{}]}}
{"type":"conns_taken","proto":1,"pid":1,"taken":[1,2],"refused":[3]}
EOF
$PEER check --expect invalid --control "$CONTROL" <"$T/invalid.jsonl" \
    >"$T/check-invalid.out" ||
    fail "schemas or library accept: $(grep '"ok":false' "$T/check-invalid.out")"
$PEER check --expect valid --control "$CONTROL" <"$T/valid.jsonl" \
    >"$T/check-valid.out" ||
    fail "schemas or library reject: $(grep '"ok":false' "$T/check-valid.out")"
[ "$(grep -c '"ok":true' "$T/check-invalid.out")" = 78 ] ||
    fail "not all 78 invalid lines were checked"
[ "$(grep -c '"library":"unexpected"' "$T/check-valid.out")" = 26 ] ||
    { cp "$T/check-valid.out" /tmp/cv.out; fail "the library did not answer unexpected to all 26 valid lines"; }
pass
