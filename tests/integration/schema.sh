#!/bin/sh
# Every message the library sends validates against proto/schema: offer,
# fds, released, report, stopping and error from handoff-httpd as the
# incumbent; hello, ready and error from it as the successor (tests/peer.py
# plays the other side). Invalid messages are rejected by the schemas and,
# with the same verdict, by the library itself.
. "$(dirname "$0")/../lib.sh"

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

# offer, fds, released: a full takeover by the peer, fds verified
$PEER successor --control "$CONTROL" --tag peer >"$T/succ.out" 2>&1
no_invalid succ
[ "$(grep -c '"event":"verify","name":"[^"]*","ok":true' "$T/succ.out")" = 3 ] ||
    fail "peer did not verify 3 fds: $(grep verify "$T/succ.out")"
[ "$(field succ offer msg.count)" = 3 ] || fail "offer count is not 3"
[ "$(field succ released msg.pid)" = "$v1" ] || fail "released pid is not $v1"
wait_exit "$v1"
[ "$STATUS" = 0 ] || fail "v1 exit $STATUS after releasing, want 0"

# hello, ready: handoff-httpd as successor of the peer
rm -f "$CONTROL"
$PEER incumbent --control "$CONTROL" --listen "http=tcp://127.0.0.1:$port" \
    --listen "old=tcp://127.0.0.1:0" --state '{"from":"peer"}' \
    --batch-size 2 >"$T/inc.out" 2>&1 &
inc=$!
PIDS="$PIDS $inc"
wait_for 10 grep -q '"event":"listening"' "$T/inc.out" || fail "peer incumbent never listened"
start_httpd v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$LAST_PID
wait_exit "$inc"
[ "$STATUS" = 0 ] || fail "peer incumbent exit $STATUS: $(tail -n 3 "$T/inc.out")"
no_invalid inc
[ "$(field inc ready msg.adopted)" = '["http"]' ] || fail "ready.adopted: $(field inc ready msg.adopted)"
[ "$(field inc ready msg.retired)" = '["old"]' ] || fail "ready.retired: $(field inc ready msg.retired)"
[ "$(field inc hello msg.tag)" = v2 ] || fail "hello.tag is not v2"
wait_for 10 is_serving "$v2" || fail "v2 (pid $v2) never served"
body_has "http://127.0.0.1:$port/" "pid=$v2 tag=v2 gen=2" || fail "v2 does not answer"

# stopping
raw stop --send '{"type":"stop","proto":1}' || fail "stop: peer exit $?"
no_invalid stop
[ "$(field stop stopping msg.pid)" = "$v2" ] || fail "stopping pid is not $v2"
wait_exit "$v2"
[ "$STATUS" = 0 ] || fail "v2 exit $STATUS after stop, want 0"

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

# Schemas and library agree: invalid lines are rejected by both (error
# malformed, version or unknown-type), valid lines pass both (as a first
# message the library then answers "unexpected").
rm -f "$CONTROL"
start_httpd v4 --listen "http=tcp://127.0.0.1:$port" --tag v4
wait_for 10 is_serving "$LAST_PID" || fail "v4 never served"
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
EOF
$PEER check --expect invalid --control "$CONTROL" <"$T/invalid.jsonl" \
    >"$T/check-invalid.out" ||
    fail "schemas or library accept: $(grep '"ok":false' "$T/check-invalid.out")"
$PEER check --expect valid --control "$CONTROL" <"$T/valid.jsonl" \
    >"$T/check-valid.out" ||
    fail "schemas or library reject: $(grep '"ok":false' "$T/check-valid.out")"
[ "$(grep -c '"ok":true' "$T/check-invalid.out")" = 45 ] ||
    fail "not all 45 invalid lines were checked"
[ "$(grep -c '"library":"unexpected"' "$T/check-valid.out")" = 11 ] ||
    fail "the library did not answer unexpected to all 11 valid lines"
pass
